/* Start-up code for the Cortex-M4F of qemu's mps2-an386 board: the vector table, the FPU
 * enabled, .data copied and .bss zeroed, then newlib's semihosting (librdimon) opened so
 * that printf and fopen reach the host, main, and exit through semihosting. */
#include <stdint.h>
#include <stdlib.h>

extern uint32_t __stack_top[], __data_load[], __data_start[], __data_end[], __bss_start[],
    __bss_end[];
extern int main(int argc, char **argv);
extern void initialise_monitor_handles(void);

void reset_handler(void);
void fault_handler(void);

/* Semihosting SYS_EXIT with ADP_Stopped_InternalError: qemu exits with status 1. */
void fault_handler(void)
{
    __asm__ volatile("mov r0, #0x18\n\tldr r1, =0x20024\n\tbkpt 0xab" : : : "r0", "r1");
    for (;;) {
    }
}

__attribute__((section(".vectors"), used)) static void (*const vectors[16])(void) = {
    (void (*)(void))__stack_top, /* initial stack pointer */
    reset_handler,
    fault_handler, /* NMI */
    fault_handler, /* HardFault */
    fault_handler, /* MemManage */
    fault_handler, /* BusFault */
    fault_handler, /* UsageFault */
    0, 0, 0, 0,
    fault_handler, /* SVCall */
    fault_handler, /* DebugMonitor */
    0,
    fault_handler, /* PendSV */
    fault_handler, /* SysTick (never enabled as an interrupt) */
};

void reset_handler(void)
{
    uint32_t *src = __data_load, *dst = __data_start;
    /* CP10 and CP11 (the FPU) full access, before any floating-point instruction. */
    *(volatile uint32_t *)0xE000ED88u |= 0xFu << 20;
    __asm__ volatile("dsb\n\tisb");
    while (dst < __data_end) {
        *dst++ = *src++;
    }
    for (dst = __bss_start; dst < __bss_end; dst++) {
        *dst = 0;
    }
    initialise_monitor_handles();
    exit(main(0, 0));
}

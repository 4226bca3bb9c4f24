/* Instruction counts and stack use on the emulated Cortex-M4F (mps2-an386).
 *
 * qemu has no cycle model: under `-icount shift=N` its virtual clock advances 2^N ns per
 * executed instruction, and SysTick, clocked from the 25 MHz system clock, ticks every
 * 40 ns of that clock. A SysTick interval therefore counts instructions (at shift=0, one
 * tick per 40 instructions). counter_calibrate measures the ratio on a loop of known
 * length rather than assuming it. These are instruction counts, not cycles: a real M4
 * adds flash wait states, load-use stalls, FPU latencies and taken-branch refills. */
#include <stdint.h>

#define SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018u)
#define SYST_CSR_ENABLE 1u
#define SYST_CSR_CPU_CLOCK 4u
#define SYST_CSR_COUNTFLAG (1u << 16)
#define SYST_MAX 0x00FFFFFFu

static uint32_t start_value;

void counter_start(void)
{
    SYST_CSR = 0;
    SYST_RVR = SYST_MAX;
    SYST_CVR = 0; /* any write clears the counter and COUNTFLAG */
    SYST_CSR = SYST_CSR_ENABLE | SYST_CSR_CPU_CLOCK;
    /* The counter reads 0 until its first tick reloads it from RVR: wait for that, so
     * that the interval starts on a tick edge, then clear COUNTFLAG (reading CSR does). */
    while (SYST_CVR == 0) {
    }
    (void)SYST_CSR;
    start_value = SYST_CVR;
}

/* Ticks since counter_start; 0xFFFFFFFF if the 24-bit counter wrapped. */
uint32_t counter_stop(void)
{
    const uint32_t now = SYST_CVR;
    if (SYST_CSR & SYST_CSR_COUNTFLAG) {
        return 0xFFFFFFFFu;
    }
    return start_value - now; /* counts down */
}

/* 2n + a few instructions: subs and bne per iteration. */
static void spin(uint32_t n)
{
    __asm__ volatile("1: subs %0, %0, #1\n\tbne 1b" : "+r"(n) : : "cc");
}

/* SysTick ticks for `instructions` instructions: the difference of two loops whose
 * lengths differ by that many (their equal call overheads cancel). */
uint32_t counter_calibrate(uint32_t instructions)
{
    uint32_t short_ticks, long_ticks;
    counter_start();
    spin(1000u);
    short_ticks = counter_stop();
    counter_start();
    spin(1000u + instructions / 2u);
    long_ticks = counter_stop();
    return long_ticks - short_ticks;
}

/* The stack region, from the linker script. */
extern uint32_t __stack_limit[];

static uint32_t *paint_base, *paint_top;
#define PAINT 0xDEADBEEFu

static uint32_t *current_sp(void)
{
    uint32_t *sp;
    __asm__ volatile("mov %0, sp" : "=r"(sp));
    return sp;
}

/* Fills the free stack with a pattern, up to 64 bytes below the caller's stack pointer
 * (clear of this function's own frame). */
void stack_paint(void)
{
    uint32_t *p;
    paint_base = current_sp();
    paint_top = paint_base - 16;
    for (p = __stack_limit; p < paint_top; p++) {
        *p = PAINT;
    }
}

/* Bytes of stack below the caller's stack pointer (as stack_paint saw it) written since
 * stack_paint; at least 64, the unpainted gap. */
uint32_t stack_used(void)
{
    uint32_t *p = __stack_limit;
    while (p < paint_top && *p == PAINT) {
        p++;
    }
    return (uint32_t)((paint_base - p) * sizeof(uint32_t));
}

/* Runs a model exported by `cargo xtask export --format c` over a file of inputs and
 * compares its logits with the sparse engine's (files from
 * `cargo run --release --example embedded_vectors -- vectors`).
 *
 * One source for every target: the host (gcc, clang, sanitizers), the Cortex-A53 (Linux
 * user mode under qemu-aarch64) and the Cortex-M4F (bare metal under qemu-system-arm,
 * where newlib's stdio reaches the host's files through semihosting; m4/ adds the
 * start-up code and the instruction counter).
 *
 * Build with -DMODEL=<name> -DMODEL_UPPER=<NAME> -DMODEL_H='"<name>.h"'.
 * Usage: harness INPUTS EXPECTED [PRINT]  (the M4 build reads fixed names, see below).
 * Prints the logits of the first PRINT images (default 2) and one summary line:
 *   result: images N max_rel_err E over_tol T class_mismatches M
 * where the relative error of an image is max|c - rust| / max|rust| over its logits and
 * over_tol counts images above 1e-5. Exit status 0 only when T and M are 0.
 * With -DHARNESS_TIME (hosted builds) it also times the inferences: the best of 5 passes
 * over all the images, in microseconds per inference (wall clock, one thread). */
#ifdef HARNESS_TIME
#define _POSIX_C_SOURCE 199309L /* clock_gettime */
#include <time.h>
#endif
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include MODEL_H

#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)
#define INFER CAT(MODEL, _infer)
#define IN_LEN CAT(MODEL_UPPER, _INPUT_LEN)
#define OUT_LEN CAT(MODEL_UPPER, _OUTPUT_LEN)
#define ARENA_FLOATS CAT(MODEL_UPPER, _ARENA_FLOATS)

#define TOLERANCE 1e-5f

#ifdef HARNESS_M4
#define CAL_INSNS 200000u
/* Ticks to instructions, through the calibration ratio. */
#define INSNS(ticks) ((unsigned long)(((uint64_t)(ticks) * CAL_INSNS + cal_ticks / 2u) / cal_ticks))
#endif

#ifdef HARNESS_M4
/* m4/counter.c: SysTick under qemu -icount, and the stack high-water mark. */
void counter_start(void);
uint32_t counter_stop(void); /* ticks since counter_start, 0xFFFFFFFF on overflow */
uint32_t counter_calibrate(uint32_t instructions); /* ticks for that many */
void stack_paint(void);
uint32_t stack_used(void);
#endif

static float arena[ARENA_FLOATS];
static float input[IN_LEN], logits[OUT_LEN], expected[OUT_LEN];

#ifdef HARNESS_TIME
static double now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e6 + (double)t.tv_nsec * 1e-3;
}

/* Best of 5 passes over the n inputs of `path`, microseconds per inference. */
static double time_inferences(const char *path, unsigned n)
{
    float *all = malloc((size_t)n * IN_LEN * sizeof(float));
    FILE *f = fopen(path, "rb");
    double best = 1e300;
    unsigned pass, i;
    if (all == NULL || f == NULL || fread(all, sizeof(float) * IN_LEN, n, f) != n) {
        return -1.0;
    }
    fclose(f);
    for (pass = 0; pass < 5; pass++) {
        double t0 = now_us(), t;
        for (i = 0; i < n; i++) {
            INFER(all + (size_t)i * IN_LEN, logits, arena);
        }
        t = (now_us() - t0) / n;
        best = t < best ? t : best;
    }
    free(all);
    return best;
}
#endif

static unsigned argmax(const float *v, unsigned n)
{
    unsigned i, best = 0;
    for (i = 1; i < n; i++) {
        if (v[i] > v[best]) {
            best = i;
        }
    }
    return best;
}

int main(int argc, char **argv)
{
#ifdef HARNESS_M4
    /* Semihosting gives no arguments here: fixed names, in qemu's working directory. */
    const char *in_path = "inputs.f32", *want_path = "expected.f32";
    unsigned print = 2;
    uint32_t ticks_min = 0xFFFFFFFFu, ticks_max = 0, cal_ticks, empty;
    uint64_t ticks_sum = 0;
    uint32_t stack = 0;
    unsigned overflows = 0;
    (void)argc;
    (void)argv;
#else
    const char *in_path = argc > 1 ? argv[1] : "inputs.f32";
    const char *want_path = argc > 2 ? argv[2] : "expected.f32";
    unsigned print = argc > 3 ? (unsigned)atoi(argv[3]) : 2;
#endif
    FILE *fin = fopen(in_path, "rb"), *fwant = fopen(want_path, "rb");
    unsigned n = 0, over = 0, mismatches = 0, i;
    float worst = 0.0f;
    if (fin == NULL || fwant == NULL) {
        printf("harness: cannot open %s or %s\n", in_path, want_path);
        return 2;
    }
#ifdef HARNESS_M4
    cal_ticks = counter_calibrate(CAL_INSNS);
    /* The counter's own cost: an empty interval. */
    counter_start();
    empty = counter_stop();
#endif
    while (fread(input, sizeof(float), IN_LEN, fin) == IN_LEN) {
        float scale = 0.0f, diff = 0.0f, rel;
        int rc;
        if (fread(expected, sizeof(float), OUT_LEN, fwant) != OUT_LEN) {
            printf("harness: %s has fewer samples than %s\n", want_path, in_path);
            return 2;
        }
#ifdef HARNESS_M4
        if (n == 0) {
            stack_paint();
        }
        counter_start();
        rc = INFER(input, logits, arena);
        {
            uint32_t t = counter_stop();
            if (t == 0xFFFFFFFFu) {
                overflows++;
            }
            t -= t >= empty ? empty : t;
            ticks_min = t < ticks_min ? t : ticks_min;
            ticks_max = t > ticks_max ? t : ticks_max;
            ticks_sum += t;
        }
        if (n == 0) {
            stack = stack_used();
        }
#else
        rc = INFER(input, logits, arena);
#endif
        if (rc != 0) {
            printf("harness: infer returned %d\n", rc);
            return 2;
        }
        for (i = 0; i < OUT_LEN; i++) {
            float d = logits[i] - expected[i], e = expected[i];
            d = d < 0.0f ? -d : d;
            e = e < 0.0f ? -e : e;
            diff = d > diff ? d : diff;
            scale = e > scale ? e : scale;
        }
        rel = scale > 0.0f ? diff / scale : diff;
        /* A NaN anywhere counts as over the tolerance. */
        if (!(rel <= TOLERANCE)) {
            over++;
        }
        worst = rel > worst ? rel : worst;
        if (argmax(logits, OUT_LEN) != argmax(expected, OUT_LEN)) {
            mismatches++;
        }
        if (n < print) {
            printf("image %u logits", n);
            for (i = 0; i < OUT_LEN; i++) {
                printf(" %.9g", (double)logits[i]);
            }
            printf("\n");
        }
        n++;
    }
    fclose(fin);
    fclose(fwant);
#ifdef HARNESS_M4
    if (n > 0) {
        printf("m4: calibration: %lu SysTick ticks per %lu instructions; counter overhead "
               "%lu ticks (subtracted); overflows %u\n",
               (unsigned long)cal_ticks, (unsigned long)CAL_INSNS, (unsigned long)empty,
               overflows);
        printf("m4: instructions per inference (emulated, qemu -icount; not cycles): min %lu "
               "mean %lu max %lu\n",
               INSNS(ticks_min), INSNS(ticks_sum / n), INSNS(ticks_max));
        printf("m4: stack used by one inference: %lu bytes\n", (unsigned long)stack);
    }
#endif
#ifdef HARNESS_TIME
    if (n > 0) {
        printf("host: %.2f us per inference (best of 5 passes over %u images)\n",
               time_inferences(in_path, n), n);
    }
#endif
    printf("result: images %u max_rel_err %.3e over_tol %u class_mismatches %u\n", n,
           (double)worst, over, mismatches);
    return (n > 0 && over == 0 && mismatches == 0) ? 0 : 1;
}

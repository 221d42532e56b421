/*
 * Tasks of px_bench, shared by the bench executable (in-process workers) and
 * the MODULE library libpx_bench_tasks.so (for `pollux worker --lib`).
 */
#ifndef PX_BENCH_TASKS_H
#define PX_BENCH_TASKS_H

#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

/* Names of the PX_TASK definitions in bench_tasks.c. */
#define BENCH_NOOP "bench_noop"
#define BENCH_STAMP "bench_stamp"

/* Incremented by every run of bench_noop (in the process that runs it). */
extern _Atomic uint64_t bench_noop_count;

/* CLOCK_MONOTONIC is system-wide, so stamps compare across processes. */
static inline uint64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

#endif

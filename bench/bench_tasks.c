/*
 * The tasks px_bench measures. Compiled into px_bench itself and, unchanged,
 * into libpx_bench_tasks.so for a separate `pollux worker --lib` process.
 */
#include "bench_tasks.h"

#include <pollux.h>

_Atomic uint64_t bench_noop_count;

/* Does nothing but count, so that the producer can tell when all ran. */
PX_TASK(bench_noop, PX_THREAD)
{
    (void)ctx, (void)args, (void)len;
    atomic_fetch_add_explicit(&bench_noop_count, 1, memory_order_relaxed);
    return 0;
}

/* Returns the time its body began (CLOCK_MONOTONIC ns) as its result. */
PX_TASK(bench_stamp, PX_THREAD)
{
    (void)args, (void)len;
    uint64_t started = bench_now_ns();
    return px_result(ctx, &started, sizeof started);
}

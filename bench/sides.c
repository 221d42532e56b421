/*
 * The two sides of the no-op path, each alone (throughput group): how fast
 * one thread submits when no worker takes anything, and how fast one worker
 * thread runs tasks that are all queued already. In the paired rows
 * (noop_submit) the slower side sets the pace, and the two also share cache
 * lines, so neither alone tells where the time goes; these rows do.
 *
 * Each round uses a region large enough for all n tasks at once (capacity
 * and one lane of the next power of two >= n) and makes two passes: the
 * first touches every page of the region, the second is measured.
 * - noop_submit_only: n px_submit calls (detached bench_noop tasks) with no
 *   worker running.
 * - noop_run_only: one worker thread, started while the queue is paused
 *   (0.3 s before: its supervisor's first retention sweep is over),
 *   runs the n queued tasks from the moment the queue is resumed (the
 *   clock's start); this thread checks the count every 100 us, asleep in
 *   between, so that it does not pull the counter's line away from the
 *   worker.
 */
#define _GNU_SOURCE
#include "bench_tasks.h"
#include "px_bench.h"

#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

static char shm_path[96];
static volatile sig_atomic_t shm_path_set;

void sides_cleanup(void)
{
    if (shm_path_set)
        unlink(shm_path);
}

static uint32_t pow2_at_least(uint64_t n)
{
    uint32_t p = 1;
    while (p < n)
        p <<= 1;
    return p;
}

px_region *bench_sides_region(char *name, size_t cap, uint64_t n)
{
    snprintf(name, cap, "/px-bench-sides-%d", (int)getpid());
    px_region_destroy(name);
    uint32_t slots = pow2_at_least(n);
    px_region_opts o = {
        .flags = PX_REGION_CREATE, .capacity = slots, .lanes = 4, .lane_depth = slots};
    px_region *r;
    int rc = px_region_open(name, &o, &r);
    if (rc)
        die(name, rc);
    snprintf(shm_path, sizeof shm_path, "/dev/shm%s", name);
    shm_path_set = 1;
    if ((rc = px_task_register_all(r)) < 0)
        die("px_task_register_all", rc);
    return r;
}

void bench_sides_remove(px_region *r, const char *name)
{
    int rc = px_region_close(r);
    if (rc)
        die("px_region_close", rc);
    px_region_destroy(name);
    shm_path_set = 0;
}

/* Runs what is queued on a fresh worker thread until the count reaches
 * target; returns the time from resuming the queue, the worker already
 * started (and idle: the queue was paused) by then. */
static uint64_t drain(px_region *r, uint64_t target)
{
    int rc = px_queue_pause(r, "default");
    if (rc)
        die("px_queue_pause", rc);
    px_workers *w = bench_one_worker(r);
    /* The supervisor's first sweep of retention (a window of the slots)
     * runs as the workers start; it is over before the clock starts. */
    struct timespec nap = {0, 100000}, settle = {0, 300000000};
    nanosleep(&settle, NULL);
    uint64_t t0 = bench_now_ns();
    if ((rc = px_queue_resume(r, "default")) != 0)
        die("px_queue_resume", rc);
    uint64_t deadline = t0 + 60ull * 1000000000ull;
    while (atomic_load_explicit(&bench_noop_count, memory_order_relaxed) < target) {
        if (bench_now_ns() > deadline)
            fail("only %llu of %llu queued no-op tasks ran",
                 (unsigned long long)atomic_load(&bench_noop_count), (unsigned long long)target);
        nanosleep(&nap, NULL);
    }
    uint64_t t1 = bench_now_ns();
    bench_workers_stop(w);
    return t1 - t0;
}

void bench_sides_round(px_region *r, uint64_t n, double *submit_ops, double *run_ops)
{
    atomic_store(&bench_noop_count, 0);
    bench_submit_singles(r, n); /* the first pass touches the pages */
    drain(r, n);
    uint64_t t0 = bench_now_ns();
    bench_submit_singles(r, n);
    uint64_t t1 = bench_now_ns();
    *submit_ops = (double)n * 1e9 / (double)(t1 - t0);
    *run_ops = (double)n * 1e9 / (double)drain(r, 2 * n);
}

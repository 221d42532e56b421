/*
 * Metrics: px_stats counts what happened per queue (submitted, started,
 * succeeded, failed, retried, cancelled) whichever process did it, its
 * latency percentiles bracket what the bodies did, tasks are counted by
 * state with the oldest pending one's age, and the histogram buckets hold
 * what they say.
 */
#include "common.h"
#include "shm/stats.h"

#include <errno.h>
#include <stdatomic.h>
#include <sys/wait.h>

static char rname[64];

static void fini(void)
{
    px_region_destroy(rname);
}

TestSuite(stats, .fini = fini, .timeout = 60);

static int nap(px_ctx *ctx, const void *a, size_t n)
{
    (void)ctx, (void)a, (void)n;
    usleep(2000);
    return 0;
}

static int boom(px_ctx *ctx, const void *a, size_t n)
{
    (void)a, (void)n;
    return px_fail(ctx, "boom");
}

static int twice(px_ctx *ctx, const void *a, size_t n)
{
    (void)a, (void)n;
    return px_task_attempt(ctx) == 1 ? px_retry(ctx, 0) : 0;
}

static _Atomic int *hold;

static int held(px_ctx *ctx, const void *a, size_t n)
{
    (void)ctx, (void)a, (void)n;
    while (atomic_load(hold))
        usleep(1000);
    return 0;
}

static const px_task_def defs[] = {
    {.name = "held", .fn = held, .mode = PX_THREAD},
    {.name = "nap", .fn = nap, .mode = PX_THREAD},
    {.name = "boom", .fn = boom, .mode = PX_THREAD},
    {.name = "twice", .fn = twice, .mode = PX_THREAD, .max_retries = 1},
    {.name = "other", .fn = nap, .mode = PX_PROCESS, .queue = "other"},
};

static px_region *open_r(void)
{
    px_region *r = px_test_region(rname, sizeof rname, &(px_region_opts){.capacity = 256});
    cr_assert_eq(px_task_register_range(r, defs, defs + 5), 5);
    return r;
}

static px_id submit(px_region *r, const char *task)
{
    px_id id;
    cr_assert_eq(px_submit(r, task, NULL, 0, NULL, &id), 0);
    return id;
}

static const px_queue_stats *queue(const px_region_stats *st, const char *name)
{
    for (uint32_t q = 0; q < st->nqueues; q++)
        if (!strcmp(st->queues[q].name, name))
            return &st->queues[q];
    cr_assert_fail("no queue %s", name);
    return NULL;
}

Test(stats, counters_latencies_and_states_per_queue)
{
    px_region *r = open_r();
    px_id cancelled[3], ids[60];
    for (int i = 0; i < 3; i++)
        cancelled[i] = submit(r, "nap");
    for (int i = 0; i < 3; i++)
        cr_assert_eq(px_cancel(r, cancelled[i]), 0);
    int n = 0;
    for (int i = 0; i < 40; i++)
        ids[n++] = submit(r, "nap");
    for (int i = 0; i < 5; i++)
        ids[n++] = submit(r, "boom");
    for (int i = 0; i < 4; i++)
        ids[n++] = submit(r, "twice");
    usleep(50000);
    px_region_stats st;
    cr_assert_eq(px_stats(r, &st), 0);
    const px_queue_stats *d = queue(&st, "default");
    cr_assert_eq(d->by_state[PX_PENDING], 49);
    cr_assert_geq(d->oldest_pending_age_ns, 50000000ull, "oldest waited %llu ns",
                  (unsigned long long)d->oldest_pending_age_ns);
    px_workers *w = px_test_workers(r, 2, 0);
    for (int i = 0; i < n; i++)
        px_join(r, ids[i], 10, NULL, 0, NULL);
    cr_assert_eq(px_workers_stop(w), 0);
    cr_assert_eq(px_stats(r, &st), 0);
    d = queue(&st, "default");
    cr_assert_eq(d->submitted, 52);
    cr_assert_eq(d->cancelled, 3);
    cr_assert_eq(d->succeeded, 44, "40 naps and 4 second tries");
    cr_assert_eq(d->failed, 5);
    cr_assert_eq(d->retried, 4);
    cr_assert_eq(d->started, 53, "49 runs and 4 retries");
    cr_assert_eq(d->wait.count, 53);
    cr_assert_eq(d->run.count, 53);
    cr_assert_geq(d->wait.p99_ns, 50000000ull, "most waited for the workers to start");
    cr_assert_geq(d->run.max_ns, 2000000ull, "a nap is 2 ms");
    cr_assert_leq(d->run.p50_ns, d->run.p90_ns);
    cr_assert_leq(d->run.p90_ns, d->run.p99_ns);
    cr_assert_leq(d->run.p99_ns, d->run.max_ns);
    cr_assert_eq(d->by_state[PX_SUCCESS], 44);
    cr_assert_eq(d->by_state[PX_FAILED], 5);
    cr_assert_eq(d->by_state[PX_CANCELLED], 3);
    cr_assert_eq(d->by_state[PX_PENDING], 0);
    cr_assert_eq(d->oldest_pending_age_ns, 0);
    cr_assert_eq(st.by_state[PX_SUCCESS], 44);
    cr_assert_eq(px_region_close(r), 0);
}

Test(stats, every_process_counts_and_shards_are_reused)
{
    px_region *r = open_r();
    /* More processes than shards, one after another, each submitting from
     * its own thread: every count lands, in an owned shard or the shared
     * one. */
    for (int c = 0; c < 40; c++) {
        pid_t kid = fork();
        cr_assert_geq(kid, 0);
        if (kid == 0) {
            px_region *cr;
            if (px_region_open(rname, NULL, &cr))
                _exit(2);
            for (int i = 0; i < 3; i++)
                if (px_submit(cr, "other", NULL, 0, NULL, NULL))
                    _exit(3);
            px_region_close(cr);
            _exit(0);
        }
        int status;
        cr_assert_eq(waitpid(kid, &status, 0), kid);
        cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    px_region_stats st;
    cr_assert_eq(px_stats(r, &st), 0);
    cr_assert_eq(queue(&st, "other")->submitted, 120);
    cr_assert_eq(queue(&st, "other")->by_state[PX_PENDING], 120);
    px_workers *w;
    cr_assert_eq(px_workers_start(
                     r, &(px_workers_opts){.threads = 1, .processes = 2, .queues = "other"}, &w),
                 0);
    double end = px_test_now() + 20;
    while (px_stats(r, &st) == 0 && queue(&st, "other")->succeeded < 120 && px_test_now() < end)
        usleep(10000);
    cr_assert_eq(queue(&st, "other")->succeeded, 120, "process tasks count too");
    cr_assert_eq(queue(&st, "other")->started, 120);
    cr_assert_eq(px_workers_stop(w), 0);
    cr_assert_eq(px_region_close(r), 0);
}

Test(stats, a_histogram_bucket_holds_its_values_within_a_fifth)
{
    uint32_t last = 0;
    for (uint64_t v = 0; v < (1ull << 42); v = v < 64 ? v + 1 : v + v / 7) {
        uint32_t b = px__hist_bucket(v);
        cr_assert_geq(b, last, "buckets grow with values (%llu)", (unsigned long long)v);
        last = b;
        uint64_t up = px__hist_upper(b);
        cr_assert_geq(up, v, "bucket %u of %llu ends at %llu", b, (unsigned long long)v,
                      (unsigned long long)up);
        cr_assert_leq((double)up, (double)v * 1.25 + 1, "%llu in a bucket up to %llu",
                      (unsigned long long)v, (unsigned long long)up);
        if (b > 0)
            cr_assert_lt(px__hist_upper(b - 1), v, "and not in the one below");
    }
    cr_assert_eq(px__hist_bucket(UINT64_MAX), PX__HIST_BUCKETS - 1);
}

Test(stats, attached_processes_show_their_worker_slots_and_how_many_are_busy)
{
    px_region *r = open_r();
    if (!hold)
        hold = px_test_shared(sizeof *hold);
    atomic_store(hold, 1);
    px_workers *w = px_test_workers(r, 3, 1);
    px_id a = submit(r, "held"), b = submit(r, "held");
    cr_assert_eq(px_test_wait_state(r, a, PX_RUNNING, 5), PX_RUNNING);
    cr_assert_eq(px_test_wait_state(r, b, PX_RUNNING, 5), PX_RUNNING);
    px_proc_info procs[8];
    int n = px_region_procs(r, procs, 8);
    cr_assert_geq(n, 1);
    int me = -1;
    for (int i = 0; i < n && i < 8; i++)
        if (procs[i].pid == getpid())
            me = i;
    cr_assert_geq(me, 0);
    cr_assert_eq(procs[me].role, PX_ROLE_WORKER);
    cr_assert_eq(procs[me].threads, 3);
    cr_assert_eq(procs[me].children, 1);
    cr_assert_eq(procs[me].threads_busy, 2);
    cr_assert_eq(procs[me].children_busy, 0);
    atomic_store(hold, 0);
    cr_assert_eq(px_join(r, a, 5, NULL, 0, NULL), 0);
    cr_assert_eq(px_join(r, b, 5, NULL, 0, NULL), 0);
    cr_assert_eq(px_workers_stop(w), 0);
    /* The pool children detached: find this process again. */
    n = px_region_procs(r, procs, 8);
    me = -1;
    for (int i = 0; i < n && i < 8; i++)
        if (procs[i].pid == getpid())
            me = i;
    cr_assert_geq(me, 0);
    cr_assert_eq(procs[me].threads, 0, "a stopped set is taken off");
    cr_assert_eq(procs[me].children, 0);
    cr_assert_eq(procs[me].threads_busy, 0);
    cr_assert_eq(px_region_close(r), 0);
}

Test(stats, a_region_made_without_metrics_counts_only_states)
{
    px_region *r = px_test_region(rname, sizeof rname,
                                  &(px_region_opts){.capacity = 64, .flags = PX_REGION_NO_METRICS});
    cr_assert_eq(px_task_register_range(r, defs, defs + 5), 5);
    px_workers *w = px_test_workers(r, 1, 0);
    px_id ids[5];
    for (int i = 0; i < 5; i++)
        ids[i] = submit(r, "nap");
    for (int i = 0; i < 5; i++)
        cr_assert_eq(px_join(r, ids[i], 5, NULL, 0, NULL), 0);
    cr_assert_eq(px_workers_stop(w), 0);
    px_region_stats st;
    cr_assert_eq(px_stats(r, &st), 0);
    const px_queue_stats *d = queue(&st, "default");
    cr_assert_eq(d->by_state[PX_SUCCESS], 5);
    cr_assert_eq(d->submitted, 0);
    cr_assert_eq(d->started, 0);
    cr_assert_eq(d->run.count, 0);
    cr_assert_eq(px_region_close(r), 0);
}

/*
 * Result retention: a finished task's slot is freed once its result_ttl_s
 * has run out (by a worker's supervisor), never before; < 0 keeps it until
 * forgotten; the region's default applies otherwise; bad values change
 * nothing; an expiry is logged in a durable region; a sweep looks at a
 * window of slots at a time.
 */
#include "common.h"
#include "executor/executor.h"

#include <errno.h>
#include <math.h>

static char rname[64], dir[64];

static void fini(void)
{
    px_region_destroy(rname);
    if (dir[0])
        px_test_rmtree(dir);
}

TestSuite(retention, .fini = fini, .timeout = 60);

static int echo(px_ctx *ctx, const void *a, size_t n)
{
    return px_result(ctx, a, n);
}

static px_region *open_r(double default_ttl, const char *logdir)
{
    px_region_opts o = {.capacity = 64,
                        .reap_interval_s = 0.01,
                        .result_ttl_s = default_ttl,
                        .durability = logdir ? PX_DURABLE_SYNC : PX_DURABLE_NONE,
                        .log_dir = logdir};
    px_region *r = px_test_region(rname, sizeof rname, &o);
    cr_assert_eq(px_task_register(r, &(px_task_def){.name = "echo", .fn = echo, .mode = PX_THREAD}),
                 0);
    return r;
}

static px_workers *start(px_region *r)
{
    px_workers *w;
    cr_assert_eq(px_workers_start(r, &(px_workers_opts){.threads = 1, .processes = 1}, &w), 0);
    return w;
}

static double wall_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Seconds until px_status says the task is gone (or `limit`). */
static double until_gone(px_region *r, px_id id, double limit)
{
    double t0 = px_test_now();
    while (px_status(r, id) != -ENOENT && px_test_now() - t0 < limit)
        usleep(2000);
    return px_test_now() - t0;
}

Test(retention, a_result_is_freed_after_its_ttl_and_not_before)
{
    px_region *r = open_r(-1, NULL); /* the default keeps; the task says 0.3 s */
    px_workers *w = start(r);
    px_id id, kept;
    cr_assert_eq(px_submit(r, "echo", "a", 1, &(px_submit_opts){.result_ttl_s = 0.3}, &id), 0);
    cr_assert_eq(px_submit(r, "echo", "b", 1, NULL, &kept), 0);
    char buf[4];
    size_t len;
    cr_assert_eq(px_join(r, id, 5, buf, sizeof buf, &len), 0);
    cr_assert_eq(px_join(r, kept, 5, buf, sizeof buf, &len), 0);
    px_task_info ti;
    cr_assert_eq(px_info(r, id, &ti), 0);
    double fin = (double)ti.finished_ns / 1e9;
    if (wall_now() - fin < 0.25)
        cr_assert_eq(px_status(r, id), PX_SUCCESS, "still there well before its ttl");
    cr_assert_lt(until_gone(r, id, 5), 5, "freed after its ttl");
    cr_assert_geq(wall_now() - fin, 0.29, "not freed before its ttl (%.3f s)", wall_now() - fin);
    cr_assert_eq(px_status(r, kept), PX_SUCCESS, "a task kept until forgotten stays");
    cr_assert_eq(px_workers_stop(w), 0);
    px_region_info info;
    cr_assert_eq(px_region_info_get(r, &info), 0);
    cr_assert_eq(info.slots_used, 1);
    px_region_close(r);
}

Test(retention, the_region_default_applies_and_covers_failures_and_cancels)
{
    px_region *r = open_r(0.05, NULL);
    px_id ok, cancelled;
    cr_assert_eq(px_submit(r, "echo", "a", 1, NULL, &ok), 0);
    cr_assert_eq(px_submit(r, "echo", "c", 1, NULL, &cancelled), 0);
    cr_assert_eq(px_cancel(r, cancelled), 0);
    px_workers *w = start(r);
    cr_assert_eq(px_join(r, ok, 5, NULL, 0, NULL), 0);
    cr_assert_lt(until_gone(r, ok, 5), 5);
    cr_assert_lt(until_gone(r, cancelled, 5), 5, "a cancelled task expires too");
    cr_assert_eq(px_workers_stop(w), 0);
    px_region_close(r);
}

/* The supervisor's sweep covers a window of slots per call (all of them
 * when producers wait for room): the window's expired results go, the
 * others stay, and the cursor moves on, wrapping at the end. */
Test(retention, a_sweep_frees_the_expired_results_of_its_window_only)
{
    px_region *r = open_r(0.3, NULL);
    enum { N = 40 };
    px_id ids[N];
    /* This thread reserves slots in turn from its cursor: from 50 on, the
     * tasks take 50..63 and 0..25, so that a window from 60 wraps. */
    px__tls_get(r)->slot_cursor = 50;
    for (int i = 0; i < N; i++)
        cr_assert_eq(px_submit(r, "echo", "a", 1, NULL, &ids[i]), 0);
    px_workers *w = start(r);
    for (int i = 0; i < N; i++)
        cr_assert_eq(px_join(r, ids[i], 5, NULL, 0, NULL), 0);
    cr_assert_eq(px_workers_stop(w), 0); /* no supervisor sweeps from here on */
    for (int i = 0; i < N; i++)
        cr_assert_eq(px_status(r, ids[i]), PX_SUCCESS, "not expired yet");
    usleep(400000);
    uint32_t cap = 64, start_at = 60, cursor = start_at, window = 20;
    int in_window = 0;
    for (int i = 0; i < N; i++)
        in_window += (PX__ID_IDX(ids[i]) - start_at + cap) % cap < window;
    cr_assert_eq(in_window, 20, "%d of the tasks in the window", in_window);
    cr_assert_eq(px__expire(r, &cursor, window), in_window);
    cr_assert_eq(cursor, (start_at + window) % cap, "the cursor wrapped past the end");
    for (int i = 0; i < N; i++) {
        bool inside = (PX__ID_IDX(ids[i]) - start_at + cap) % cap < window;
        cr_assert_eq(px_status(r, ids[i]), inside ? -ENOENT : PX_SUCCESS, "slot %u",
                     PX__ID_IDX(ids[i]));
    }
    cr_assert_eq(px__expire(r, &cursor, 1000), N - in_window, "a window past capacity is all");
    cr_assert_eq(cursor, (start_at + window) % cap);
    px_region_info info;
    cr_assert_eq(px_region_info_get(r, &info), 0);
    cr_assert_eq(info.slots_used, 0);
    px_region_close(r);
}

/* A region of four sweep windows, full of kept results but for the last
 * window's, which expire: a producer waiting for room gets it from the
 * next sweep, which then covers every slot, not three sweeps (seconds)
 * later when the window comes round. */
Test(retention, a_producer_short_of_room_gets_a_sweep_of_every_slot)
{
    enum { CAP = 4 * 65536 };
    px_region_opts o = {.capacity = CAP, .reap_interval_s = 0.01, .result_ttl_s = -1};
    px_region *r = px_test_region(rname, sizeof rname, &o);
    cr_assert_eq(px_task_register(r, &(px_task_def){.name = "echo", .fn = echo, .mode = PX_THREAD}),
                 0);
    double t0 = px_test_now();
    px_workers *w = start(r); /* its first sweep: now, of slots [0, 65536) */
    px_id id;
    cr_assert_eq(px_submit(r, "echo", NULL, 0, &(px_submit_opts){.timeout_s = -1}, &id), 0);
    uint32_t first = PX__ID_IDX(id);
    for (uint32_t k = 1; k < CAP; k++) {
        uint32_t idx = (first + k) % CAP; /* a thread reserves slots in turn */
        px_submit_opts so = {.timeout_s = -1, .result_ttl_s = idx >= 3 * 65536 ? 0.2 : -1};
        cr_assert_eq(px_submit(r, "echo", NULL, 0, &so, &id), 0);
        cr_assert_eq(PX__ID_IDX(id), idx, "the slots were not reserved in turn");
    }
    cr_assert_eq(px_submit(r, "echo", NULL, 0, NULL, &id), -EAGAIN, "the region is full");
    cr_assert_eq(px_submit(r, "echo", NULL, 0, &(px_submit_opts){.timeout_s = 10}, &id), 0);
    double waited = px_test_now() - t0;
    cr_assert_lt(waited, 2.5, "room came %.2f s after the workers started", waited);
    cr_assert_eq(px_workers_stop(w), 0);
    px_region_close(r);
}

Test(retention, bad_values_are_refused)
{
    px_region *r = open_r(0, NULL);
    cr_assert_eq(px_submit(r, "echo", "a", 1, &(px_submit_opts){.result_ttl_s = NAN}, NULL),
                 -EINVAL);
    cr_assert_eq(px_submit(r, "echo", "a", 1, &(px_submit_opts){.result_ttl_s = 5e6}, NULL),
                 -EINVAL);
    px_region_info info;
    cr_assert_eq(px_region_info_get(r, &info), 0);
    cr_assert_eq(info.slots_used, 0, "nothing was submitted");
    px_region_close(r);
    char other[64];
    px_region *r2 = NULL;
    px_test_name(other, sizeof other);
    cr_assert_eq(px_region_open(other, &(px_region_opts){.result_ttl_s = 1e7}, &r2), -EINVAL);
    cr_assert_null(r2);
}

Test(retention, an_expiry_is_logged_in_a_durable_region)
{
    px_test_tmpdir(dir, sizeof dir, "ttl");
    px_region *r = open_r(0.05, dir);
    px_id id, kept;
    cr_assert_eq(px_submit(r, "echo", "a", 1, NULL, &id), 0);
    cr_assert_eq(px_submit(r, "echo", "b", 1, &(px_submit_opts){.result_ttl_s = -1}, &kept), 0);
    px_workers *w = start(r);
    cr_assert_eq(px_join(r, kept, 5, NULL, 0, NULL), 0);
    cr_assert_lt(until_gone(r, id, 5), 5);
    cr_assert_eq(px_workers_stop(w), 0);
    cr_assert_eq(px_region_close(r), 0);
    cr_assert_eq(px_region_destroy(rname), 0);
    cr_assert_eq(
        px_region_open(
            rname, &(px_region_opts){.capacity = 64, .durability = PX_DURABLE_SYNC, .log_dir = dir},
            &r),
        0);
    px_recovery_info rec;
    cr_assert_eq(px_region_recovery(r, &rec), 0);
    cr_assert_eq(rec.restored, 1, "the expired task stays gone");
    cr_assert_eq(px_status(r, kept), PX_SUCCESS);
    cr_assert_eq(px_status(r, id), -ENOENT);
    px_region_close(r);
}

/*
 * Result retention: a finished task's slot is freed once its result_ttl_s
 * has run out (by a worker's supervisor), never before; < 0 keeps it until
 * forgotten; the region's default applies otherwise; bad values change
 * nothing; an expiry is logged in a durable region.
 */
#include "common.h"

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

/*
 * Time limits: a thread body is asked to stop at its limit and its run
 * fails with the limit's text; one that does not listen is failed a grace
 * later without it and its late return changes nothing; a process body's
 * child is killed at the limit; a submit's limit overrides its
 * definition's; a timed-out run is retried like any failure; bad limits
 * are refused.
 */
#include "common.h"
#include "executor/executor.h"

#include <errno.h>
#include <math.h>
#include <stdatomic.h>
#include <sys/mman.h>

static char rname[64];

static void fini(void)
{
    px_region_destroy(rname);
}

TestSuite(limits, .fini = fini, .timeout = 60);

struct seen {
    _Atomic int stopped;    /* a body saw px_should_continue() turn 0 */
    _Atomic int returned;   /* bodies that returned */
    _Atomic int ms;         /* how long bodies run (unless told to stop) */
    _Atomic int quick_from; /* attempt from which bodies return at once */
};
static struct seen *seen;

/* Runs for seen->ms, checking px_should_continue() every millisecond. */
static int polite(px_ctx *ctx, const void *a, size_t n)
{
    int from = atomic_load(&seen->quick_from);
    if (from && px_task_attempt(ctx) >= from)
        return px_result(ctx, a, n);
    double end = px_test_now() + atomic_load(&seen->ms) / 1000.0;
    while (px_test_now() < end) {
        if (!px_should_continue(ctx)) {
            atomic_store(&seen->stopped, 1);
            break;
        }
        usleep(1000);
    }
    atomic_fetch_add(&seen->returned, 1);
    return px_result(ctx, a, n);
}

/* Sleeps seen->ms without asking. */
static int deaf(px_ctx *ctx, const void *a, size_t n)
{
    usleep((useconds_t)atomic_load(&seen->ms) * 1000);
    atomic_fetch_add(&seen->returned, 1);
    return px_result(ctx, a, n);
}

static const px_task_def defs[] = {
    {.name = "polite", .fn = polite, .mode = PX_THREAD, .time_limit_s = 0.2},
    {.name = "deaf", .fn = deaf, .mode = PX_THREAD, .time_limit_s = 0.2},
    {.name = "unlimited", .fn = polite, .mode = PX_THREAD},
    {.name = "deaf_proc", .fn = deaf, .mode = PX_PROCESS, .time_limit_s = 0.2},
    {.name = "polite_retry",
     .fn = polite,
     .mode = PX_THREAD,
     .time_limit_s = 0.1,
     .max_retries = 1},
};

static px_region *open_r(void)
{
    if (!seen)
        seen = px_test_shared(sizeof *seen);
    memset(seen, 0, sizeof *seen);
    return px_test_region_defs(rname, sizeof rname, defs, sizeof defs / sizeof defs[0]);
}

static px_workers *start(px_region *r)
{
    return px_test_workers(r, 2, 1);
}

static px_id submit(px_region *r, const char *task, double limit)
{
    px_id id;
    int rc = px_submit(r, task, "x", 1, &(px_submit_opts){.time_limit_s = limit}, &id);
    cr_assert_eq(rc, 0, "%s", px_strerror(rc));
    return id;
}

/* Joins a task expected to fail; returns the seconds it took. */
static double join_failed(px_region *r, px_id id, const char *text)
{
    char err[256] = "";
    double t0 = px_test_now();
    cr_assert_eq(px_join(r, id, 10, err, sizeof err, NULL), PX_ETASKFAILED, "error: %s", err);
    cr_assert_str_eq(err, text);
    return px_test_now() - t0;
}

Test(limits, a_polite_body_is_asked_to_stop_and_its_run_fails)
{
    px_region *r = open_r();
    px_workers *w = start(r);
    atomic_store(&seen->ms, 5000);
    px_id id = submit(r, "polite", 0);
    double took = join_failed(r, id, "time limit of 0.2 s exceeded");
    cr_assert_geq(took, 0.19);
    cr_assert_lt(took, 1.0, "asked within a few reap intervals, not the grace");
    cr_assert_eq(atomic_load(&seen->stopped), 1);
    cr_assert_eq(px_status(r, id), PX_FAILED, "whatever the body returned");
    px_workers_stats st;
    cr_assert_eq(px_workers_stats_get(w, &st), 0);
    cr_assert_eq(st.timed_out, 1);
    cr_assert_eq(px_workers_stop(w), 0);
    cr_assert_eq(px_region_close(r), 0);
}

Test(limits, a_deaf_body_is_failed_after_a_grace_and_its_late_return_changes_nothing)
{
    px_region *r = open_r();
    px_workers *w = start(r);
    atomic_store(&seen->ms, 2500);
    px_id id = submit(r, "deaf", 0);
    double took = join_failed(r, id, "time limit of 0.2 s exceeded");
    cr_assert_geq(took, 1.19, "a one-second grace after the limit");
    cr_assert_lt(took, 2.3, "failed before the body returned");
    cr_assert_eq(atomic_load(&seen->returned), 0);
    /* The other thread still works meanwhile. */
    atomic_store(&seen->ms, 0);
    px_id quick = submit(r, "unlimited", 0);
    char out[4];
    cr_assert_eq(px_join(r, quick, 5, out, sizeof out, NULL), 0);
    double end = px_test_now() + 5;
    while (atomic_load(&seen->returned) < 2 && px_test_now() < end)
        usleep(10000);
    cr_assert_eq(atomic_load(&seen->returned), 2, "the deaf body returned at last");
    cr_assert_eq(px_status(r, id), PX_FAILED, "its late result is dropped");
    px_region_info ri;
    cr_assert_eq(px_forget(r, id), 0);
    cr_assert_eq(px_forget(r, quick), 0);
    cr_assert_eq(px_region_info_get(r, &ri), 0);
    cr_assert_eq(ri.arena_used, 0);
    cr_assert_eq(px_workers_stop(w), 0);
    cr_assert_eq(px_region_close(r), 0);
}

Test(limits, a_process_body_is_killed_at_its_limit)
{
    px_region *r = open_r();
    px_workers *w = start(r);
    atomic_store(&seen->ms, 5000);
    px_id id = submit(r, "deaf_proc", 0);
    double took = join_failed(r, id, "time limit of 0.2 s exceeded");
    cr_assert_geq(took, 0.19);
    cr_assert_lt(took, 1.5);
    cr_assert_eq(atomic_load(&seen->returned), 0, "killed, never returned");
    /* The pool's replacement child runs the next one. */
    atomic_store(&seen->ms, 0);
    px_id next = submit(r, "deaf_proc", 0);
    char out[4];
    cr_assert_eq(px_join(r, next, 10, out, sizeof out, NULL), 0);
    px_workers_stats st;
    cr_assert_eq(px_workers_stats_get(w, &st), 0);
    cr_assert_eq(st.timed_out, 1);
    cr_assert_eq(px_workers_stop(w), 0);
    cr_assert_eq(px_region_close(r), 0);
}

Test(limits, a_submit_limit_overrides_the_definitions)
{
    px_region *r = open_r();
    px_workers *w = start(r);
    atomic_store(&seen->ms, 400);
    px_id longer = submit(r, "polite", 5); /* the definition says 0.2 s */
    px_id shorter = submit(r, "unlimited", 0.1);
    char out[4];
    cr_assert_eq(px_join(r, longer, 10, out, sizeof out, NULL), 0);
    join_failed(r, shorter, "time limit of 0.1 s exceeded");
    cr_assert_eq(px_workers_stop(w), 0);
    cr_assert_eq(px_region_close(r), 0);
}

Test(limits, a_timed_out_run_is_retried)
{
    px_region *r = open_r();
    px_workers *w = start(r);
    atomic_store(&seen->ms, 5000);
    atomic_store(&seen->quick_from, 2);
    px_id id = submit(r, "polite_retry", 0);
    char out[4];
    cr_assert_eq(px_join(r, id, 10, out, sizeof out, NULL), 0);
    px_task_info ti;
    cr_assert_eq(px_info(r, id, &ti), 0);
    cr_assert_eq(ti.attempts, 2);
    cr_assert_eq(px_workers_stop(w), 0);
    cr_assert_eq(px_region_close(r), 0);
}

Test(limits, bad_limits_are_refused)
{
    px_region *r = open_r();
    const double bad[] = {-1, NAN, INFINITY, 5e6};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        px_id id = 0;
        cr_assert_eq(px_submit(r, "polite", "x", 1, &(px_submit_opts){.time_limit_s = bad[i]}, &id),
                     -EINVAL, "limit %g", bad[i]);
        px_task_def d = {
            .name = "bad_limit", .fn = polite, .mode = PX_THREAD, .time_limit_s = bad[i]};
        cr_assert_eq(px_task_register(r, &d), -EINVAL, "limit %g", bad[i]);
    }
    px_region_info ri;
    cr_assert_eq(px_region_info_get(r, &ri), 0);
    cr_assert_eq(ri.slots_used, 0);
    cr_assert_eq(px_region_close(r), 0);
}

Test(limits, failing_a_live_run_never_takes_over_its_own_finish)
{
    px_region *r = open_r();
    px_id id;
    cr_assert_eq(px_submit(r, "polite", "x", 1, NULL, &id), 0);
    struct px__scan scan = {0};
    uint64_t claimed;
    cr_assert_eq(px__take(r, 1, PX_THREAD, &scan, &claimed), id);
    /* Its runner is writing its outcome: FINISHING, owned by this process. */
    struct px__slot *s = &r->slots[PX__ID_IDX(id)];
    uint64_t fin = PX__CTL_WITH(claimed, PX__S_FINISHING, PX__CTL_OWNER(claimed));
    atomic_store(&s->ctl, fin);
    cr_assert_eq(px__fail_live(r, id, claimed, "late"), PX__DONE_REVOKED);
    cr_assert_eq(atomic_load(&s->ctl), fin, "the runner's hold is left alone");
    /* And a run asked to stop is the body's to end. */
    uint64_t creq = PX__CTL_WITH(claimed, PX__S_CANCEL_REQUESTED, PX__CTL_OWNER(claimed));
    atomic_store(&s->ctl, creq);
    cr_assert_eq(px__fail_live(r, id, claimed, "late"), PX__DONE_REVOKED);
    cr_assert_eq(atomic_load(&s->ctl), creq);
    atomic_store(&s->ctl, claimed);
    cr_assert_eq(px__fail_live(r, id, claimed, "late"), PX__DONE_FAILED);
    cr_assert_eq(px_status(r, id), PX_FAILED);
    cr_assert_eq(px_region_close(r), 0);
}

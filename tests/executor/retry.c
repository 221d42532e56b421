/*
 * Retries and dead letters: failed runs retried within max_retries after a
 * backoff that grows, is capped and jittered; px_retry and PX_ERETRY; DEAD
 * with its args and error kept (detached too) until px_requeue or
 * px_forget; a cancelled retry; a pool child's death and a worker
 * process's death counted as attempts.
 */
#include "common.h"
#include "shm/region.h"

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/wait.h>

static char rname[64];

static void fini(void)
{
    px_region_destroy(rname);
}

TestSuite(retry, .fini = fini, .timeout = 60);

/* Shared with pool children: when each attempt began, and switches. */
struct book {
    _Atomic int runs;
    _Atomic uint64_t began[16];
    _Atomic int succeed_from; /* attempt from which bodies succeed; 0 never */
    _Atomic int ask_delay_ms; /* px_retry's delay; < 0 backoff */
};
static struct book *book;

static void note_run(px_ctx *ctx)
{
    int n = atomic_fetch_add(&book->runs, 1);
    if (n < 16)
        atomic_store(&book->began[n], px_test_wall_ns());
    (void)ctx;
}

static bool succeeds(px_ctx *ctx)
{
    int from = atomic_load(&book->succeed_from);
    return from > 0 && px_task_attempt(ctx) >= from;
}

static int flaky(px_ctx *ctx, const void *a, size_t n)
{
    note_run(ctx);
    if (succeeds(ctx))
        return px_result(ctx, a, n);
    return px_fail(ctx, "attempt %d failed, and this text is long enough to need the arena",
                   px_task_attempt(ctx));
}

static int asker(px_ctx *ctx, const void *a, size_t n)
{
    note_run(ctx);
    if (succeeds(ctx))
        return px_result(ctx, a, n);
    int ms = atomic_load(&book->ask_delay_ms);
    return ms >= 0 ? px_retry(ctx, ms / 1000.0) : PX_ERETRY;
}

static int suicidal(px_ctx *ctx, const void *a, size_t n)
{
    note_run(ctx);
    if (succeeds(ctx))
        return px_result(ctx, a, n);
    raise(SIGKILL);
    return 0;
}

static int stall(px_ctx *ctx, const void *a, size_t n)
{
    note_run(ctx);
    if (succeeds(ctx))
        return px_result(ctx, a, n);
    for (;;)
        pause(); /* until its process is killed */
}

static const px_task_def defs[] = {
    {.name = "flaky3", .fn = flaky, .mode = PX_THREAD, .max_retries = 3, .retry_delay_s = 0.01},
    {.name = "flaky0", .fn = flaky, .mode = PX_THREAD},
    {.name = "backoff",
     .fn = flaky,
     .mode = PX_THREAD,
     .max_retries = 3,
     .retry_delay_s = 0.05,
     .retry_backoff = 2,
     .retry_jitter = -1},
    {.name = "capped",
     .fn = flaky,
     .mode = PX_THREAD,
     .max_retries = 2,
     .retry_delay_s = 0.05,
     .retry_backoff = 10,
     .retry_max_delay_s = 0.08,
     .retry_jitter = -1},
    {.name = "jittered", .fn = flaky, .mode = PX_THREAD, .max_retries = 4, .retry_delay_s = 0.04},
    {.name = "slowretry", .fn = flaky, .mode = PX_THREAD, .max_retries = 1, .retry_delay_s = 30},
    {.name = "asker", .fn = asker, .mode = PX_THREAD, .max_retries = 2, .retry_delay_s = 5},
    {.name = "asker0", .fn = asker, .mode = PX_THREAD},
    {.name = "suicidal", .fn = suicidal, .mode = PX_PROCESS, .max_retries = 1},
    {.name = "stall", .fn = stall, .mode = PX_THREAD, .max_retries = 2},
};

static px_region *open_r(void)
{
    if (!book)
        book = px_test_shared(sizeof *book);
    memset(book, 0, sizeof *book);
    return px_test_region_defs(rname, sizeof rname, defs, sizeof defs / sizeof defs[0]);
}

static px_workers *start(px_region *r)
{
    return px_test_workers(r, 2, 1);
}

static px_id submit(px_region *r, const char *task, const px_submit_opts *o)
{
    px_id id;
    int rc = px_submit(r, task, "args", 4, o, &id);
    cr_assert_eq(rc, 0, "submit %s: %s", task, px_strerror(rc));
    return id;
}

/* The workers' counters once `succeeded + failed + dead` reach n: a join
 * returns when the outcome is published, a moment before it is counted. */
static px_workers_stats stats_after(px_workers *w, uint64_t n)
{
    px_workers_stats st;
    double end = px_test_now() + 5;
    do
        cr_assert_eq(px_workers_stats_get(w, &st), 0);
    while (st.succeeded + st.failed + st.dead < n && px_test_now() < end && !usleep(1000));
    return st;
}

/* Submits task and waits until it fails for good after `runs` runs. */
static void fails_after(px_region *r, const char *task, int runs)
{
    px_id id = submit(r, task, NULL);
    cr_assert_eq(px_join(r, id, 10, NULL, 0, NULL), PX_ETASKFAILED);
    cr_assert_eq(atomic_load(&book->runs), runs);
}

static double gap(int i)
{
    return (double)(atomic_load(&book->began[i]) - atomic_load(&book->began[i - 1])) / 1e9;
}

Test(retry, failures_are_retried_until_one_succeeds)
{
    px_region *r = open_r();
    px_workers *w = start(r);
    atomic_store(&book->succeed_from, 3);
    px_id id = submit(r, "flaky3", NULL);
    char out[8];
    size_t len;
    cr_assert_eq(px_join(r, id, 10, out, sizeof out, &len), 0);
    cr_assert_eq(len, 4);
    cr_assert_eq(memcmp(out, "args", 4), 0);
    px_task_info info;
    cr_assert_eq(px_info(r, id, &info), 0);
    cr_assert_eq(info.state, PX_SUCCESS);
    cr_assert_eq(info.attempts, 3);
    cr_assert_str_empty(info.error);
    px_workers_stats st = stats_after(w, 1);
    cr_assert_eq(st.retried, 2);
    cr_assert_eq(st.succeeded, 1);
    cr_assert_eq(st.failed + st.dead, 0);
    cr_assert_eq(px_workers_stop(w), 0);
    px_region_info ri;
    cr_assert_eq(px_forget(r, id), 0);
    cr_assert_eq(px_region_info_get(r, &ri), 0);
    cr_assert_eq(ri.arena_used, 0, "an old attempt's error text leaked");
    cr_assert_eq(px_region_close(r), 0);
}

Test(retry, out_of_retries_is_dead_and_stays_with_its_error)
{
    px_region *r = open_r();
    px_workers *w = start(r);
    px_id id = submit(r, "flaky3", &(px_submit_opts){.result_ttl_s = 0.01});
    char err[256];
    cr_assert_eq(px_join(r, id, 10, err, sizeof err, NULL), PX_ETASKFAILED);
    cr_assert(strstr(err, "attempt 4 failed"), "error: %s", err);
    cr_assert_eq(px_status(r, id), PX_DEAD);
    cr_assert_str_eq(px_state_name(px_status(r, id)), "DEAD");
    px_task_info info;
    cr_assert_eq(px_info(r, id, &info), 0);
    cr_assert_eq(info.attempts, 4);
    cr_assert(strstr(info.error, "attempt 4 failed"));
    cr_assert_eq(atomic_load(&book->runs), 4);
    /* Retention does not apply to dead letters: past the ttl and the
     * supervisor's once-a-second sweep, it is still there. */
    usleep(1300000);
    cr_assert_eq(px_status(r, id), PX_DEAD);
    px_workers_stats st = stats_after(w, 1);
    cr_assert_eq(st.retried, 3);
    cr_assert_eq(st.dead, 1);
    cr_assert_eq(px_cancel(r, id), -EALREADY);
    cr_assert_eq(px_forget(r, id), 0);
    cr_assert_eq(px_status(r, id), -ENOENT);
    cr_assert_eq(px_workers_stop(w), 0);
    cr_assert_eq(px_region_close(r), 0);
}

Test(retry, without_max_retries_a_failure_is_final)
{
    px_region *r = open_r();
    px_workers *w = start(r);
    px_id id = submit(r, "flaky0", NULL);
    cr_assert_eq(px_join(r, id, 10, NULL, 0, NULL), PX_ETASKFAILED);
    cr_assert_eq(px_status(r, id), PX_FAILED);
    cr_assert_eq(atomic_load(&book->runs), 1);
    cr_assert_eq(px_requeue(r, id), -EPERM, "a FAILED task has no args left to run");
    cr_assert_eq(px_workers_stop(w), 0);
    cr_assert_eq(px_region_close(r), 0);
}

Test(retry, backoff_doubles)
{
    px_region *r = open_r();
    px_workers *w = start(r);
    fails_after(r, "backoff", 4);
    /* 0.05, 0.1, 0.2 s without jitter; never earlier. */
    cr_assert_geq(gap(1), 0.05);
    cr_assert_geq(gap(2), 0.10);
    cr_assert_geq(gap(3), 0.20);
    cr_assert_lt(gap(3), 1.0);
    cr_assert_eq(px_workers_stop(w), 0);
    cr_assert_eq(px_region_close(r), 0);
}

Test(retry, backoff_is_capped)
{
    px_region *r = open_r();
    px_workers *w = start(r);
    fails_after(r, "capped", 3);
    cr_assert_geq(gap(1), 0.05);
    cr_assert_geq(gap(2), 0.08);
    cr_assert_lt(gap(2), 0.4, "0.5 s uncapped; capped at 0.08 s");
    cr_assert_eq(px_workers_stop(w), 0);
    cr_assert_eq(px_region_close(r), 0);
}

Test(retry, jitter_takes_off_at_most_half)
{
    px_region *r = open_r();
    px_workers *w = start(r);
    fails_after(r, "jittered", 5);
    double d = 0.04;
    for (int i = 1; i < 5; i++, d *= 2)
        cr_assert_geq(gap(i), d / 2, "retry %d after %.3f s, less than half of %.3f", i, gap(i), d);
    cr_assert_eq(px_workers_stop(w), 0);
    cr_assert_eq(px_region_close(r), 0);
}

Test(retry, px_retry_sets_the_delay_and_eretry_uses_the_backoff)
{
    char buf[8];
    px_region *r = open_r();
    px_workers *w = start(r);
    atomic_store(&book->succeed_from, 2);
    atomic_store(&book->ask_delay_ms, 150);
    px_id id = submit(r, "asker", NULL);
    cr_assert_eq(px_test_wait_state(r, id, PX_RETRY, 10), PX_RETRY);
    px_task_info info;
    cr_assert_eq(px_info(r, id, &info), 0);
    cr_assert_str_eq(info.error, "retry requested");
    cr_assert_gt(info.next_run_ns, 0);
    cr_assert_eq(px_join(r, id, 10, buf, sizeof buf, NULL), 0);
    cr_assert_geq(gap(1), 0.15);
    cr_assert_lt(gap(1), 4.0, "the explicit delay, not the definition's 5 s");

    /* PX_ERETRY without px_retry: the definition's 5 s backoff. */
    memset(book, 0, sizeof *book);
    atomic_store(&book->ask_delay_ms, -1);
    id = submit(r, "asker", NULL);
    cr_assert_eq(px_test_wait_state(r, id, PX_RETRY, 10), PX_RETRY);
    cr_assert_eq(px_info(r, id, &info), 0);
    cr_assert_geq(info.next_run_ns, px_test_wall_ns() + 2000000000ull, "jitter takes off <= half");
    cr_assert_eq(px_cancel(r, id), 0);
    cr_assert_eq(px_status(r, id), PX_CANCELLED);

    /* max_retries 0: asking is a failure. */
    id = submit(r, "asker0", NULL);
    char err[64];
    cr_assert_eq(px_join(r, id, 10, err, sizeof err, NULL), PX_ETASKFAILED);
    cr_assert_str_eq(err, "retry requested");
    cr_assert_eq(px_status(r, id), PX_FAILED);
    cr_assert_eq(px_workers_stop(w), 0);
    cr_assert_eq(px_region_close(r), 0);
}

Test(retry, a_cancelled_retry_frees_its_error_and_never_runs_again)
{
    px_region *r = open_r();
    px_workers *w = start(r);
    px_id id = submit(r, "slowretry", NULL);
    cr_assert_eq(px_test_wait_state(r, id, PX_RETRY, 10), PX_RETRY);
    px_region_info ri;
    cr_assert_eq(px_region_info_get(r, &ri), 0);
    cr_assert_gt(ri.arena_used, 0, "the long error text lives in the arena");
    cr_assert_eq(px_cancel(r, id), 0);
    cr_assert_eq(px_join(r, id, 1, NULL, 0, NULL), -ECANCELED);
    cr_assert_eq(px_forget(r, id), 0);
    cr_assert_eq(px_region_info_get(r, &ri), 0);
    cr_assert_eq(ri.arena_used, 0);
    cr_assert_eq(ri.slots_used, 0);
    cr_assert_eq(atomic_load(&book->runs), 1);
    cr_assert_eq(px_workers_stop(w), 0);
    cr_assert_eq(px_region_close(r), 0);
}

Test(retry, a_dead_task_is_requeued_under_its_id_with_its_args)
{
    px_region *r = open_r();
    px_workers *w = start(r);
    px_id id = submit(r, "flaky3", &(px_submit_opts){.flags = PX_SUBMIT_DETACHED});
    cr_assert_eq(px_test_wait_state(r, id, PX_DEAD, 10), PX_DEAD, "a detached dead letter is kept");
    cr_assert_eq(px_requeue(r, 0), -ENOENT);
    cr_assert_eq(px_requeue(r, id + (1ull << 32)), -ENOENT);
    atomic_store(&book->succeed_from, 1);
    cr_assert_eq(px_requeue(r, id), 0);
    int again = px_requeue(r, id); /* not dead: queued or running, or done and freed */
    cr_assert(again == -EBUSY || again == -ENOENT, "%s", px_strerror(again));
    /* Detached: the success frees the slot. */
    cr_assert_eq(px_test_wait_state(r, id, -ENOENT, 10), -ENOENT);
    cr_assert_eq(atomic_load(&book->runs), 5);

    atomic_store(&book->succeed_from, 0); /* before the submit: it may run at once */
    id = submit(r, "flaky3", NULL);
    cr_assert_eq(px_join(r, id, 10, NULL, 0, NULL), PX_ETASKFAILED);
    atomic_store(&book->succeed_from, 1);
    cr_assert_eq(px_requeue(r, id), 0);
    char out[8];
    size_t len;
    cr_assert_eq(px_join(r, id, 10, out, sizeof out, &len), 0);
    cr_assert_eq(len, 4);
    cr_assert_eq(memcmp(out, "args", 4), 0);
    px_task_info info;
    cr_assert_eq(px_info(r, id, &info), 0);
    cr_assert_eq(info.attempts, 1, "attempts count again from 0");
    cr_assert_str_empty(info.error);
    cr_assert_eq(px_requeue(r, id), -EPERM);
    cr_assert_eq(px_workers_stop(w), 0);
    cr_assert_eq(px_region_close(r), 0);
}

Test(retry, a_pool_childs_death_is_an_attempt)
{
    px_region *r = open_r();
    px_workers *w = start(r);
    px_id id = submit(r, "suicidal", NULL);
    char err[256];
    cr_assert_eq(px_join(r, id, 20, err, sizeof err, NULL), PX_ETASKFAILED);
    cr_assert_eq(px_status(r, id), PX_DEAD);
    cr_assert(strstr(err, "signal 9"), "error: %s", err);
    cr_assert_eq(atomic_load(&book->runs), 2);
    cr_assert_eq(px_workers_stop(w), 0);
    cr_assert_eq(px_region_close(r), 0);
}

Test(retry, a_worker_process_killed_mid_run_counts_an_attempt)
{
    char buf[8];
    px_region *r = open_r();
    px_id id = submit(r, "stall", NULL);
    pid_t kid = fork();
    cr_assert_geq(kid, 0);
    if (kid == 0) {
        px_region *cr;
        if (px_region_open(rname, NULL, &cr) != 0 ||
            px_task_register_range(cr, defs, defs + sizeof defs / sizeof defs[0]) < 0)
            _exit(2);
        px_workers *cw;
        if (px_workers_start(cr, &(px_workers_opts){.threads = 1, .processes = 1}, &cw))
            _exit(3);
        pause();
        _exit(0);
    }
    /* Its body runs (RUNNING alone is the claim: the body may not have
     * begun yet). */
    double end = px_test_now() + 10;
    while (atomic_load(&book->runs) == 0 && px_test_now() < end)
        usleep(1000);
    cr_assert_eq(atomic_load(&book->runs), 1);
    cr_assert_eq(px_status(r, id), PX_RUNNING);
    kill(kid, SIGKILL);
    int st;
    waitpid(kid, &st, 0);
    atomic_store(&book->succeed_from, 2);
    px_workers *w = start(r); /* its supervisor reaps the dead process */
    cr_assert_eq(px_join(r, id, 10, buf, sizeof buf, NULL), 0);
    px_task_info info;
    cr_assert_eq(px_info(r, id, &info), 0);
    cr_assert_eq(info.attempts, 2);
    cr_assert_eq(atomic_load(&book->runs), 2);
    px_workers_stats ws = stats_after(w, 1);
    cr_assert_eq(ws.succeeded, 1);
    cr_assert_eq(px_workers_stop(w), 0);
    cr_assert_eq(px_region_close(r), 0);
}

Test(retry, a_long_error_in_a_small_region_is_cut_to_fit_and_ephemeral_dead_letters_stay)
{
    if (!book)
        book = px_test_shared(sizeof *book);
    memset(book, 0, sizeof *book);
    px_region *r =
        px_test_region(rname, sizeof rname, &(px_region_opts){.capacity = 16, .max_payload = 40});
    px_task_def d = {.name = "wordy", .fn = flaky, .mode = PX_THREAD, .max_retries = 1};
    cr_assert_eq(px_task_register(r, &d), 0);
    px_workers *w = start(r);
    px_id id;
    cr_assert_eq(
        px_submit(r, "wordy", "a", 1, &(px_submit_opts){.flags = PX_SUBMIT_EPHEMERAL}, &id), 0);
    char err[256];
    cr_assert_eq(px_join(r, id, 10, err, sizeof err, NULL), PX_ETASKFAILED);
    cr_assert_eq(strlen(err), 40, "cut to max_payload: %s", err);
    cr_assert(strncmp(err, "attempt 2 failed", 16) == 0, "%s", err);
    cr_assert_eq(px_status(r, id), PX_DEAD, "an ephemeral join leaves a dead letter");
    px_task_info info;
    cr_assert_eq(px_info(r, id, &info), 0);
    cr_assert_eq(strlen(info.error), 40);
    cr_assert_eq(px_workers_stop(w), 0);
    cr_assert_eq(px_region_close(r), 0);
}

Test(retry, a_process_dying_mid_cancel_of_a_waiting_task_costs_no_attempt)
{
    px_region *r = open_r();
    px_id id = submit(r, "slowretry", NULL); /* a retry would wait 30 s */
    pid_t kid = fork();
    cr_assert_geq(kid, 0);
    if (kid == 0) {
        /* A px_cancel cut short: the task held in FINISHING by this
         * process, never started. */
        px_region *cr;
        if (px_region_open(rname, NULL, &cr))
            _exit(2);
        struct px__slot *s = &cr->slots[PX__ID_IDX(id)];
        uint64_t c = atomic_load(&s->ctl);
        atomic_store(&s->ctl, PX__CTL_WITH(c, PX__S_FINISHING, cr->self + 1));
        raise(SIGKILL);
    }
    waitpid(kid, NULL, 0);
    atomic_store(&book->succeed_from, 1);
    px_workers *w = start(r);
    char buf[8];
    cr_assert_eq(px_join(r, id, 5, buf, sizeof buf, NULL), 0, "requeued, not a retry");
    px_task_info info;
    cr_assert_eq(px_info(r, id, &info), 0);
    cr_assert_eq(info.attempts, 1, "the dead hold was not counted as a run");
    cr_assert_eq(px_workers_stop(w), 0);
    cr_assert_eq(px_region_close(r), 0);
}

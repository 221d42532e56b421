/*
 * Delayed tasks: SCHEDULED until due and never claimed before, fired by the
 * timer thread of any worker set (once, with several processes attached),
 * cancelled at once, stale heap entries harmless, a heap rebuilt after a
 * process died holding its lock, bad options refused.
 */
#include "common.h"
#include "executor/timer.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/wait.h>

static char rname[64];

static void fini(void)
{
    px_region_destroy(rname);
}

TestSuite(schedule, .fini = fini, .timeout = 60);

/* Per task index, shared with other processes: runs and when each began. */
struct marks {
    _Atomic int runs[4096];
    _Atomic uint64_t began[4096];
};
static struct marks *marks;

/* Args: a task index (u32). Records the run and returns the index. */
static int mark(px_ctx *ctx, const void *a, size_t n)
{
    uint32_t i;
    if (n != sizeof i)
        return px_fail(ctx, "bad args");
    memcpy(&i, a, sizeof i);
    if (i < 4096) {
        atomic_store(&marks->began[i], px_test_wall_ns());
        atomic_fetch_add(&marks->runs[i], 1);
    }
    return px_result(ctx, &i, sizeof i);
}

static px_region *open_r(uint32_t capacity)
{
    if (!marks)
        marks = px_test_shared(sizeof *marks);
    memset(marks, 0, sizeof *marks);
    px_region *r = px_test_region(rname, sizeof rname,
                                  &(px_region_opts){.capacity = capacity, .reap_interval_s = 0.02});
    cr_assert_eq(px_task_register(r, &(px_task_def){.name = "mark", .fn = mark, .mode = PX_THREAD}),
                 0);
    return r;
}

static px_workers *start(px_region *r)
{
    return px_test_workers(r, 2, 1);
}

/* Joins a task of `mark`; returns the index it ran with. */
static uint32_t joined(px_region *r, px_id id, double timeout)
{
    uint32_t out = UINT32_MAX;
    size_t len = 0;
    int rc = px_join(r, id, timeout, &out, sizeof out, &len);
    cr_assert_eq(rc, 0, "join: %s", px_strerror(rc));
    cr_assert_eq(len, sizeof out);
    return out;
}

static px_id submit_at(px_region *r, uint32_t i, const px_submit_opts *o)
{
    px_id id;
    int rc = px_submit(r, "mark", &i, sizeof i, o, &id);
    cr_assert_eq(rc, 0, "submit: %s", px_strerror(rc));
    return id;
}

Test(schedule, a_delayed_task_waits_for_its_time_and_runs_once)
{
    px_region *r = open_r(64);
    px_workers *w = start(r);
    uint64_t before = px_test_wall_ns();
    px_id id = submit_at(r, 0, &(px_submit_opts){.delay_s = 0.2});
    cr_assert_eq(px_status(r, id), PX_SCHEDULED);
    px_task_info info;
    cr_assert_eq(px_info(r, id, &info), 0);
    cr_assert_eq(info.state, PX_SCHEDULED);
    cr_assert_geq(info.next_run_ns, before + 200000000ull);
    cr_assert_leq(info.next_run_ns, px_test_wall_ns() + 200000000ull);
    cr_assert_eq(info.attempts, 0);
    usleep(100000);
    cr_assert_eq(px_status(r, id), PX_SCHEDULED, "ran early");
    uint32_t out;
    size_t len;
    cr_assert_eq(px_join(r, id, 5, &out, sizeof out, &len), 0);
    cr_assert_eq(out, 0);
    cr_assert_geq(atomic_load(&marks->began[0]), info.next_run_ns, "started before its time");
    cr_assert_eq(atomic_load(&marks->runs[0]), 1);
    cr_assert_eq(px_info(r, id, &info), 0);
    cr_assert_eq(info.next_run_ns, 0, "a finished task has no next run");
    cr_assert_eq(px_workers_stop(w), 0);
    cr_assert_eq(px_region_close(r), 0);
}

Test(schedule, at_unix_ns_in_the_future_waits_and_in_the_past_runs_at_once)
{
    px_region *r = open_r(64);
    px_workers *w = start(r);
    uint64_t at = px_test_wall_ns() + 150000000ull;
    px_id later = submit_at(r, 1, &(px_submit_opts){.at_unix_ns = at});
    px_id now = submit_at(r, 2, &(px_submit_opts){.at_unix_ns = px_test_wall_ns() - 1000000000ull});
    cr_assert_neq(px_status(r, now), PX_SCHEDULED);
    cr_assert_eq(px_status(r, later), PX_SCHEDULED);
    cr_assert_eq(joined(r, now, 5), 2);
    joined(r, later, 5);
    cr_assert_geq(atomic_load(&marks->began[1]), at);
    /* The later of delay_s and at_unix_ns applies. */
    uint64_t t0 = px_test_wall_ns();
    px_id both = submit_at(r, 3, &(px_submit_opts){.delay_s = 0.25, .at_unix_ns = t0 + 50000000});
    px_task_info info;
    cr_assert_eq(px_info(r, both, &info), 0);
    cr_assert_geq(info.next_run_ns, t0 + 250000000ull);
    joined(r, both, 5);
    cr_assert_geq(atomic_load(&marks->began[3]), info.next_run_ns);
    cr_assert_eq(px_workers_stop(w), 0);
    cr_assert_eq(px_region_close(r), 0);
}

Test(schedule, without_a_timer_thread_nothing_fires_and_a_late_start_fires_what_is_due)
{
    px_region *r = open_r(64);
    px_id id = submit_at(r, 4, &(px_submit_opts){.delay_s = 0.05});
    usleep(150000);
    cr_assert_eq(px_status(r, id), PX_SCHEDULED);
    cr_assert_eq(atomic_load(&marks->runs[4]), 0);
    px_workers *w = start(r);
    joined(r, id, 5);
    cr_assert_eq(atomic_load(&marks->runs[4]), 1);
    cr_assert_eq(px_workers_stop(w), 0);
    cr_assert_eq(px_region_close(r), 0);
}

Test(schedule, many_random_delays_never_run_early_and_each_runs_once)
{
    px_region *r = open_r(1024);
    px_workers *w = start(r);
    srand(px_test_seed());
    enum { N = 500 };
    px_id ids[N];
    uint64_t due[N];
    for (uint32_t i = 0; i < N; i++) {
        double d = (double)(rand() % 300) / 1000.0;
        ids[i] = submit_at(r, i, &(px_submit_opts){.delay_s = d});
        px_task_info info;
        cr_assert_eq(px_info(r, ids[i], &info), 0);
        due[i] = d > 0 && info.state == PX_SCHEDULED ? info.next_run_ns : 0;
    }
    for (uint32_t i = 0; i < N; i++) {
        uint32_t out;
        cr_assert_eq(px_join(r, ids[i], 10, &out, sizeof out, NULL), 0);
        cr_assert_eq(out, i);
        cr_assert_eq(atomic_load(&marks->runs[i]), 1, "task %u ran %d times", i,
                     atomic_load(&marks->runs[i]));
        cr_assert_geq(atomic_load(&marks->began[i]), due[i], "task %u early", i);
    }
    cr_assert_eq(px_workers_stop(w), 0);
    cr_assert_eq(px_region_close(r), 0);
}

Test(schedule, submit_many_delays_every_job)
{
    px_region *r = open_r(256);
    px_workers *w = start(r);
    enum { N = 100 };
    uint32_t idx[N];
    px_job jobs[N];
    px_id ids[N];
    for (uint32_t i = 0; i < N; i++) {
        idx[i] = i;
        jobs[i] = (px_job){"mark", &idx[i], sizeof idx[i]};
    }
    uint64_t t0 = px_test_wall_ns();
    cr_assert_eq(px_submit_many(r, jobs, N, &(px_submit_opts){.delay_s = 0.1}, ids), N);
    for (uint32_t i = 0; i < N; i++)
        cr_assert(px_status(r, ids[i]) == PX_SCHEDULED || atomic_load(&marks->runs[i]) > 0);
    for (uint32_t i = 0; i < N; i++) {
        cr_assert_eq(joined(r, ids[i], 10), i);
        cr_assert_geq(atomic_load(&marks->began[i]), t0 + 100000000ull);
        cr_assert_eq(atomic_load(&marks->runs[i]), 1);
    }
    cr_assert_eq(px_workers_stop(w), 0);
    cr_assert_eq(px_region_close(r), 0);
}

Test(schedule, cancel_is_immediate_and_a_stale_entry_never_fires_the_slots_next_task)
{
    /* One slot: the cancelled task's entry stays in the heap, due in 0.1 s,
     * while the next task in the same slot is due in 1 s. */
    px_region *r = open_r(1);
    px_workers *w = start(r);
    px_id first = submit_at(r, 5, &(px_submit_opts){.delay_s = 0.1});
    cr_assert_eq(px_cancel(r, first), 0);
    cr_assert_eq(px_status(r, first), PX_CANCELLED);
    cr_assert_eq(px_join(r, first, 1, NULL, 0, NULL), -ECANCELED);
    cr_assert_eq(px_forget(r, first), 0);
    px_id next = submit_at(r, 6, &(px_submit_opts){.delay_s = 1});
    cr_assert_eq(PX__ID_IDX(next), PX__ID_IDX(first));
    usleep(300000);
    cr_assert_eq(px_status(r, next), PX_SCHEDULED, "fired by the stale entry");
    cr_assert_eq(atomic_load(&marks->runs[5]), 0);
    cr_assert_eq(atomic_load(&marks->runs[6]), 0);
    cr_assert_eq(px_cancel(r, next), 0);
    cr_assert_eq(px_cancel(r, next), 0, "cancelling twice is fine");
    cr_assert_eq(px_workers_stop(w), 0);
    cr_assert_eq(px_region_close(r), 0);
}

Test(schedule, stale_entries_filling_the_heap_are_swept)
{
    /* Eight slots, two hundred cancelled timers: the heap fills with stale
     * entries and a push rebuilds it. */
    px_region *r = open_r(8);
    px_workers *w = start(r);
    for (int i = 0; i < 200; i++) {
        px_id id = submit_at(r, 7, &(px_submit_opts){.delay_s = 30});
        cr_assert_eq(px_cancel(r, id), 0);
        cr_assert_eq(px_forget(r, id), 0);
    }
    px_id keep = submit_at(r, 8, &(px_submit_opts){.delay_s = 30});
    px_id soon = submit_at(r, 9, &(px_submit_opts){.delay_s = 0.05});
    joined(r, soon, 5);
    cr_assert_eq(px_status(r, keep), PX_SCHEDULED);
    cr_assert_eq(atomic_load(&marks->runs[7]), 0);
    cr_assert_eq(px_workers_stop(w), 0);
    cr_assert_eq(px_region_close(r), 0);
}

Test(schedule, bad_delays_are_refused_and_leave_nothing)
{
    px_region *r = open_r(8);
    uint32_t i = 0;
    const double bad[] = {-1, -1e-9, NAN, INFINITY, 2e9};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        px_id id = 0;
        cr_assert_eq(px_submit(r, "mark", &i, sizeof i, &(px_submit_opts){.delay_s = bad[k]}, &id),
                     -EINVAL, "delay %g", bad[k]);
        cr_assert_eq(id, 0);
        px_job j = {"mark", &i, sizeof i};
        cr_assert_eq(px_submit_many(r, &j, 1, &(px_submit_opts){.delay_s = bad[k]}, &id), -EINVAL);
    }
    px_region_info ri;
    cr_assert_eq(px_region_info_get(r, &ri), 0);
    cr_assert_eq(ri.slots_used, 0);
    cr_assert_eq(px_region_close(r), 0);
}

Test(schedule, several_processes_fire_each_task_exactly_once)
{
    px_region *r = open_r(4096);
    enum { KIDS = 3, N = 3000 };
    pid_t kids[KIDS];
    int go[2];
    cr_assert_eq(pipe(go), 0);
    for (int k = 0; k < KIDS; k++) {
        kids[k] = fork();
        cr_assert_geq(kids[k], 0);
        if (kids[k] == 0) {
            close(go[1]);
            px_region *cr;
            if (px_region_open(rname, NULL, &cr) != 0 ||
                px_task_register(cr, &(px_task_def){.name = "mark", .fn = mark, .mode = PX_THREAD}))
                _exit(2);
            px_workers *cw;
            if (px_workers_start(cr, &(px_workers_opts){.threads = 1, .processes = 1}, &cw))
                _exit(3);
            char c;
            (void)!read(go[0], &c, 1); /* until the parent closes its end */
            px_workers_stop(cw);
            px_region_close(cr);
            _exit(0);
        }
    }
    close(go[0]);
    static px_id ids[N];
    uint64_t t0 = px_test_wall_ns();
    for (uint32_t i = 0; i < N; i++)
        ids[i] = submit_at(
            r, i,
            &(px_submit_opts){.at_unix_ns = t0 + 200000000ull + i * 100000ull, .timeout_s = 5});
    for (uint32_t i = 0; i < N; i++)
        cr_assert_eq(joined(r, ids[i], 20), i);
    close(go[1]);
    for (int k = 0; k < KIDS; k++) {
        int st;
        cr_assert_eq(waitpid(kids[k], &st, 0), kids[k]);
        cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child %d: status 0x%x", k, st);
    }
    for (uint32_t i = 0; i < N; i++) {
        cr_assert_eq(atomic_load(&marks->runs[i]), 1, "task %u ran %d times", i,
                     atomic_load(&marks->runs[i]));
        cr_assert_geq(atomic_load(&marks->began[i]), t0 + 200000000ull + i * 100000ull);
    }
    cr_assert_eq(px_region_close(r), 0);
}

Test(schedule, a_process_killed_holding_the_heap_lock_leaves_a_heap_that_is_rebuilt)
{
    px_region *r = open_r(64);
    px_id a = submit_at(r, 10, &(px_submit_opts){.delay_s = 0.1});
    px_id b = submit_at(r, 11, &(px_submit_opts){.delay_s = 0.2});
    int ready[2];
    cr_assert_eq(pipe(ready), 0);
    px_region *cr;
    pid_t kid = px_test_fork_attached(rname, &cr);
    if (kid == 0) {
        /* Take the lock and scribble over the heap, as a push or a pop cut
         * short would. */
        px__timers_lock(cr);
        cr->hdr->timer_n = 1;
        cr->timers[0] = (struct px__timer){UINT64_MAX, 12345};
        (void)!write(ready[1], "x", 1);
        pause();
        _exit(0);
    }
    char c;
    cr_assert_eq(read(ready[0], &c, 1), 1);
    kill(kid, SIGKILL);
    int st;
    waitpid(kid, &st, 0);
    px_workers *w = start(r);
    joined(r, a, 5);
    joined(r, b, 5);
    cr_assert_eq(atomic_load(&marks->runs[10]), 1);
    cr_assert_eq(atomic_load(&marks->runs[11]), 1);
    cr_assert_eq(px_workers_stop(w), 0);
    cr_assert_eq(px_region_close(r), 0);
}

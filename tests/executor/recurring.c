/*
 * Recurring schedules (every_s): exactly `times` runs, none due after
 * `until`, one run per occurrence with several worker processes and after
 * the only one running is killed, cancelling stops them, the missed-run
 * policy (once or skip) after a time with no worker, a maker killed
 * between two steps is repaired, and bad options are refused and leave
 * nothing.
 */
#include "common.h"
#include "shm/region.h"

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/wait.h>

static char rname[64];
static pid_t kids[3];

static void fini(void)
{
    for (int i = 0; i < 3; i++)
        if (kids[i] > 0)
            kill(kids[i], SIGKILL);
    px_region_destroy(rname);
}

TestSuite(recurring, .fini = fini, .timeout = 60);

#define MAX_RUNS 64

/* Shared with forked worker processes. */
struct book {
    _Atomic int runs;
    _Atomic int seen[MAX_RUNS]; /* per run number (px_task_attempt is 1) */
    _Atomic uint64_t began[MAX_RUNS];
};
static struct book *book;

static int tick(px_ctx *ctx, const void *a, size_t n)
{
    (void)a, (void)n;
    int i = atomic_fetch_add(&book->runs, 1);
    if (i < MAX_RUNS)
        atomic_store(&book->began[i], px_test_wall_ns());
    (void)ctx;
    return 0;
}

static const px_task_def defs[] = {{.name = "tick", .fn = tick, .mode = PX_THREAD}};

static px_region *open_r(void)
{
    if (!book)
        book = px_test_shared(sizeof *book);
    memset(book, 0, sizeof *book);
    memset(kids, 0, sizeof kids);
    return px_test_region_defs(rname, sizeof rname, defs, 1);
}

static px_id every(px_region *r, const px_submit_opts *o)
{
    px_id id = 0;
    int rc = px_submit(r, "tick", "x", 1, o, &id);
    cr_assert_eq(rc, 0, "schedule: %s", px_strerror(rc));
    cr_assert_neq(id, 0);
    return id;
}

static px_schedule_info info_of(px_region *r, px_id id)
{
    px_schedule_info si;
    int rc = px_schedule_get(r, id, &si);
    cr_assert_eq(rc, 0, "px_schedule_get: %s", px_strerror(rc));
    return si;
}

static void wait_runs(int n, double limit)
{
    double end = px_test_now() + limit;
    while (atomic_load(&book->runs) < n && px_test_now() < end)
        usleep(1000);
    cr_assert_geq(atomic_load(&book->runs), n, "%d of %d runs", atomic_load(&book->runs), n);
}

static void wait_ended(px_region *r, px_id id, double limit)
{
    double end = px_test_now() + limit;
    while (info_of(r, id).state == PX_SCHEDULE_ACTIVE && px_test_now() < end)
        usleep(2000);
    cr_assert_eq(info_of(r, id).state, PX_SCHEDULE_ENDED);
}

/* A worker process of the test's (kids[k]): its timer thread fires runs. */
static void fork_workers(int k)
{
    kids[k] = fork();
    cr_assert_geq(kids[k], 0);
    if (kids[k] == 0) {
        px_region *cr;
        px_workers *cw;
        if (px_region_open(rname, NULL, &cr) || px_task_register_range(cr, defs, defs + 1) < 0 ||
            px_workers_start(cr, &(px_workers_opts){.threads = 1, .processes = 1}, &cw))
            _exit(2);
        pause();
        _exit(0);
    }
}

static void kill_workers(int k)
{
    kill(kids[k], SIGKILL);
    waitpid(kids[k], NULL, 0);
    kids[k] = 0;
}

Test(recurring, times_makes_exactly_that_many_runs_each_linked_to_its_schedule)
{
    px_region *r = open_r();
    px_workers *w = px_test_workers(r, 2, 1);
    px_id s = every(r, &(px_submit_opts){.every_s = 0.05, .times = 5});
    px_task_info none;
    cr_assert_eq(px_info(r, s, &none), -ENOENT, "a schedule's id names no task");
    wait_ended(r, s, 10);
    usleep(200000);
    cr_assert_eq(atomic_load(&book->runs), 5);
    px_schedule_info si = info_of(r, s);
    cr_assert_eq(si.made, 5);
    cr_assert_eq(si.times, 5);
    cr_assert_str_eq(si.task, "tick");
    cr_assert_eq(si.every_s, 0.05);
    px_task_info ti;
    cr_assert_eq(px_info(r, si.next_id, &ti), 0);
    cr_assert_eq(ti.schedule, s, "a run names its schedule");
    cr_assert_eq(ti.state, PX_SUCCESS);
    /* Runs keep the phase, 50 ms apart: run i starts i periods after run 0,
     * less at most the one period run 0 may have started late (a loaded
     * machine delays a start, and the next run stays on its due time), and
     * not much more. All five at once would fail it, and so would a drift. */
    for (int i = 1; i < 5; i++) {
        int64_t span = (int64_t)(atomic_load(&book->began[i]) - atomic_load(&book->began[0]));
        cr_assert(span > (i - 1) * 50000000ll && span < i * 50000000ll + 150000000ll,
                  "run %d began %lld ns after run 0", i, (long long)span);
    }
    cr_assert_eq(px_workers_stop(w), 0);
    cr_assert_eq(px_region_close(r), 0);
}

Test(recurring, no_run_is_due_after_until)
{
    px_region *r = open_r();
    uint64_t t0 = px_test_wall_ns();
    px_id s = every(r, &(px_submit_opts){.every_s = 0.1,
                                         .at_unix_ns = t0 + 100000000ull,
                                         .until_unix_ns = t0 + 550000000ull});
    px_workers *w = px_test_workers(r, 2, 1);
    wait_ended(r, s, 10);
    usleep(200000);
    /* Due at t0 + 0.1, 0.2, 0.3, 0.4, 0.5 s; 0.6 s is past until. */
    cr_assert_eq(atomic_load(&book->runs), 5);
    cr_assert_eq(info_of(r, s).made, 5);
    cr_assert_eq(px_workers_stop(w), 0);
    cr_assert_eq(px_region_close(r), 0);
}

Test(recurring, three_worker_processes_fire_each_occurrence_once)
{
    px_region *r = open_r();
    for (int k = 0; k < 3; k++)
        fork_workers(k);
    px_id s = every(r, &(px_submit_opts){.every_s = 0.03, .times = 20});
    wait_ended(r, s, 20);
    usleep(300000);
    cr_assert_eq(atomic_load(&book->runs), 20, "%d runs", atomic_load(&book->runs));
    cr_assert_eq(info_of(r, s).made, 20);
    for (int k = 0; k < 3; k++)
        kill_workers(k);
    cr_assert_eq(px_region_close(r), 0);
}

Test(recurring, the_schedule_goes_on_after_its_only_worker_process_is_killed)
{
    px_region *r = open_r();
    fork_workers(0);
    px_id s = every(r, &(px_submit_opts){.every_s = 0.05, .times = 12});
    wait_runs(3, 10);
    kill_workers(0);
    int before = atomic_load(&book->runs);
    cr_assert_lt(before, 12);
    usleep(200000);
    cr_assert_eq(atomic_load(&book->runs), before, "nothing fires without a worker");
    /* These workers' timer thread fires the armed run (late: once, for
     * the missed ones) and makes the rest. */
    px_workers *w = px_test_workers(r, 2, 1);
    wait_ended(r, s, 20);
    usleep(200000);
    cr_assert_eq(atomic_load(&book->runs), 12);
    cr_assert_eq(info_of(r, s).made, 12);
    cr_assert_eq(px_workers_stop(w), 0);
    cr_assert_eq(px_region_close(r), 0);
}

Test(recurring, cancelling_a_schedule_stops_its_runs)
{
    px_region *r = open_r();
    px_workers *w = px_test_workers(r, 2, 1);
    px_id s = every(r, &(px_submit_opts){.every_s = 0.05});
    wait_runs(3, 10);
    cr_assert_eq(px_cancel(r, s), 0);
    px_schedule_info si = info_of(r, s);
    cr_assert_eq(si.state, PX_SCHEDULE_CANCELLED);
    cr_assert_eq(si.next_run_ns, 0);
    cr_assert_eq(px_status(r, si.next_id), PX_CANCELLED, "its waiting run is cancelled");
    int at = atomic_load(&book->runs);
    usleep(300000);
    cr_assert_eq(atomic_load(&book->runs), at, "no run after the cancel");
    cr_assert_eq(px_cancel(r, s), -EALREADY);
    cr_assert_eq(px_cancel(r, s ^ (1ull << 40)), -ENOENT, "another generation");
    cr_assert_eq(px_workers_stop(w), 0);
    cr_assert_eq(px_region_close(r), 0);
}

/* A schedule made with no worker running; after `idle` seconds, workers
 * start. Returns how many runs started in the 40 ms after. */
static int runs_after_idle(px_region *r, px_missed missed, px_id *first, px_workers **w)
{
    px_id s = every(r, &(px_submit_opts){.every_s = 0.1, .missed = missed});
    *first = info_of(r, s).next_id;
    usleep(550000); /* five occurrences pass */
    *w = px_test_workers(r, 2, 1);
    usleep(40000);
    return atomic_load(&book->runs);
}

Test(recurring, missed_runs_fire_once_by_default)
{
    px_region *r = open_r();
    px_id first;
    px_workers *w;
    cr_assert_eq(runs_after_idle(r, PX_MISSED_ONCE, &first, &w), 1, "one run for the missed");
    cr_assert_eq(px_join(r, first, 5, NULL, 0, NULL), 0);
    usleep(100000);
    cr_assert_leq(atomic_load(&book->runs), 2, "then on time, not catching up");
    cr_assert_eq(px_workers_stop(w), 0);
    cr_assert_eq(px_region_close(r), 0);
}

Test(recurring, missed_runs_are_skipped_when_asked)
{
    px_region *r = open_r();
    px_id first;
    px_workers *w;
    cr_assert_eq(runs_after_idle(r, PX_MISSED_SKIP, &first, &w), 0, "none for the missed");
    cr_assert_eq(px_status(r, first), PX_CANCELLED, "the late run was skipped");
    wait_runs(1, 5); /* the next occurrence, on time */
    cr_assert_eq(px_workers_stop(w), 0);
    cr_assert_eq(px_region_close(r), 0);
}

Test(recurring, a_cron_schedule_is_due_on_a_minute_in_its_zone)
{
    px_region *r = open_r();
    uint64_t now = px_test_wall_ns();
    px_id s = every(r, &(px_submit_opts){.cron = "*/5 * * * *", .tz = "Asia/Kolkata"});
    px_schedule_info si = info_of(r, s);
    cr_assert_str_eq(si.cron, "*/5 * * * *");
    cr_assert_str_eq(si.tz, "Asia/Kolkata");
    cr_assert_gt(si.next_run_ns, now);
    cr_assert_leq(si.next_run_ns, now + 300000000000ull);
    /* UTC+5:30: minutes divisible by 5 there are 0 or 30 past 5 in UTC. */
    uint64_t min = si.next_run_ns / 60000000000ull;
    cr_assert_eq(si.next_run_ns % 60000000000ull, 0);
    cr_assert_eq((min + 30) % 5, 0, "minute %llu", (unsigned long long)(min % 60));
    cr_assert_eq(px_status(r, si.next_id), PX_SCHEDULED);
    cr_assert_eq(px_region_close(r), 0);
}

Test(recurring, bad_options_are_refused_and_leave_nothing)
{
    px_region *r = open_r();
    char big[300] = {0};
    px_id id = 0;
    const px_submit_opts bad[] = {
        {.every_s = 1, .cron = "* * * * *"},
        {.every_s = -1},
        {.every_s = 0.0001},
        {.cron = "61 * * * *"},
        {.cron = "* * * *"},
        {.cron = "@reboot"},
        {.cron = "* * * * *", .tz = "Nowhere/City"},
        {.every_s = 1, .tz = "UTC"},
        {.every_s = 1, .key = "k"},
        {.every_s = 1, .missed = 7},
        {.every_s = 10, .until_unix_ns = 1},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_eq(px_submit(r, "tick", NULL, 0, &bad[i], &id), -EINVAL, "case %zu", i);
    cr_assert_eq(px_submit(r, "tick", big, sizeof big, &(px_submit_opts){.every_s = 1}, &id),
                 -E2BIG);
    px_job job = {.task = "tick"};
    cr_assert_eq(px_submit_many(r, &job, 1, &(px_submit_opts){.every_s = 1}, &id), -EINVAL);
    cr_assert_eq(px_submit_many(r, &job, 1, &(px_submit_opts){.cron = "@daily"}, &id), -EINVAL);
    cr_assert_eq(px_schedule_list(r, NULL, 0), 0, "no schedule was made");
    uint32_t cursor = 0;
    px_id ids[4];
    cr_assert_eq(px_list(r, &(px_list_opts){0}, ids, 4, &cursor), 0, "and no task");
    cr_assert_eq(px_region_close(r), 0);
}

/* A process killed while making a schedule's run, after the commit and
 * before the run reached the timer heap (armed = 0, the pending run a
 * slot that never got there): the next timer thread to take the lock
 * makes that same run again, once, and the schedule makes exactly its
 * `times` runs. The child builds that state by hand under the lock and
 * dies holding it. */
Test(recurring, a_maker_killed_between_commit_and_heap_is_repaired_once)
{
    px_region *r = open_r();
    px_id s = every(r, &(px_submit_opts){.every_s = 0.1, .times = 4});
    px_schedule_info si = info_of(r, s);
    cr_assert_eq(si.made, 1);
    int ready[2];
    cr_assert_eq(pipe(ready), 0);
    kids[0] = fork();
    cr_assert_geq(kids[0], 0);
    if (kids[0] == 0) {
        px_region *cr;
        if (px_region_open(rname, NULL, &cr))
            _exit(2);
        struct px__sched *e = &cr->scheds[PX__ID_IDX(s) - PX__SCHED_BIT];
        px__sched_lock(cr);
        /* Its first run never reached the heap: cancel the real one, and
         * leave the entry pointing at a slot of another generation. */
        px_id run = atomic_load(&e->next_id);
        if (px_cancel(cr, run))
            _exit(3);
        atomic_store(&e->pend_id, run ^ (1ull << 40));
        atomic_store(&e->pend_ns, atomic_load(&e->next_ns));
        atomic_store(&e->pend_run, 1);
        atomic_store(&e->armed, 0);
        (void)!write(ready[1], "x", 1);
        pause();
        _exit(0);
    }
    char c;
    cr_assert_eq(read(ready[0], &c, 1), 1);
    kill_workers(0);
    px_workers *w = px_test_workers(r, 2, 1);
    wait_ended(r, s, 10);
    usleep(300000);
    cr_assert_eq(atomic_load(&book->runs), 4, "%d runs", atomic_load(&book->runs));
    cr_assert_eq(info_of(r, s).made, 4);
    cr_assert_eq(px_status(r, si.next_id), PX_CANCELLED, "the cancelled run stayed cancelled");
    cr_assert_eq(px_workers_stop(w), 0);
    cr_assert_eq(px_region_close(r), 0);
}

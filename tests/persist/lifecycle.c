/*
 * Durable regions and the task lifecycle: delayed (SCHEDULED), retrying
 * (RETRY) and dead (DEAD) tasks after their region's shared memory is lost
 * (handle closed, region destroyed, log kept), rebuilt from the log alone
 * or from a checkpoint that let the original records go. Tasks are run by
 * real workers (px_workers_start), through the public API only.
 */
#include "common.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/mman.h>

static char rname[64], dir[64], logdir[128];

static void fini(void)
{
    if (rname[0])
        px_region_destroy(rname);
    if (dir[0])
        px_test_rmtree(dir);
}

TestSuite(lifecycle, .fini = fini, .timeout = 60);

/* Shared with the workers' pool children (MAP_SHARED): what the bodies
 * saw, and whether `flaky` may succeed. */
struct shared {
    _Atomic int succeed;
    _Atomic int runs[8];
    _Atomic uint64_t began[8]; /* CLOCK_REALTIME at the start of the body */
};
static struct shared *sh;

static uint64_t wall_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Args: an index (u32) below 8. Records the run; returns the index. */
static int stamp(px_ctx *ctx, const void *a, size_t n)
{
    uint64_t now = wall_ns();
    uint32_t i;
    if (n != sizeof i)
        return px_fail(ctx, "bad args");
    memcpy(&i, a, sizeof i);
    if (i >= 8)
        return px_fail(ctx, "bad index");
    atomic_store(&sh->began[i], now);
    atomic_fetch_add(&sh->runs[i], 1);
    return px_result(ctx, &i, sizeof i);
}

static int boom(px_ctx *ctx, const void *a, size_t n)
{
    (void)a;
    (void)n;
    return px_fail(ctx, "boom %d", px_task_attempt(ctx));
}

/* Fails until sh->succeed is set; then returns its args. */
static int flaky(px_ctx *ctx, const void *a, size_t n)
{
    if (!atomic_load(&sh->succeed))
        return px_fail(ctx, "flaky %d", px_task_attempt(ctx));
    return px_result(ctx, a, n);
}

static int echo(px_ctx *ctx, const void *a, size_t n)
{
    return px_result(ctx, a, n);
}

static const px_task_def stamp_def = {.name = "stamp", .fn = stamp, .mode = PX_THREAD};
/* Retries after exactly 60 s (no jitter), three times. */
static const px_task_def boom_def = {.name = "boom",
                                     .fn = boom,
                                     .mode = PX_THREAD,
                                     .max_retries = 3,
                                     .retry_delay_s = 60,
                                     .retry_jitter = -1};
/* One retry at once, then DEAD. */
static const px_task_def flaky_def = {.name = "flaky",
                                      .fn = flaky,
                                      .mode = PX_THREAD,
                                      .max_retries = 1,
                                      .retry_delay_s = 0,
                                      .retry_jitter = -1};
static const px_task_def echo_def = {.name = "echo", .fn = echo, .mode = PX_THREAD};

static px_region_opts opts(uint64_t segment_bytes)
{
    return (px_region_opts){.capacity = 256,
                            .max_payload = 4096,
                            .arena_bytes = 256 * 4096,
                            .lanes = 8,
                            .lane_depth = 256,
                            .reap_interval_s = 0.01,
                            .durability = PX_DURABLE_SYNC,
                            .log_dir = logdir,
                            .segment_bytes = segment_bytes};
}

/* A fresh durable region with its log in a new temporary directory. */
static px_region *open_first(uint64_t segment_bytes)
{
    if (!sh) {
        sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        cr_assert_neq(sh, MAP_FAILED);
    }
    memset(sh, 0, sizeof *sh);
    px_test_tmpdir(dir, sizeof dir, "lifecycle");
    snprintf(logdir, sizeof logdir, "%s/log", dir);
    px_region_opts o = opts(segment_bytes);
    px_region *r = px_test_region(rname, sizeof rname, &o);
    px_region_info info;
    cr_assert_eq(px_region_info_get(r, &info), 0);
    cr_assert_eq(info.durability, PX_DURABLE_SYNC);
    return r;
}

static void reg(px_region *r, const px_task_def *d)
{
    int rc = px_task_register(r, d);
    cr_assert_eq(rc, 0, "register %s: %s", d->name, px_strerror(rc));
}

/* Closes the handle and removes the shared memory: what a reboot does.
 * The log directory stays. */
static void lose_memory(px_region *r)
{
    cr_assert_eq(px_region_close(r), 0);
    cr_assert_eq(px_region_destroy(rname), 0);
    cr_assert_eq(access(logdir, F_OK), 0, "the log survives");
}

/* Opens the region again from its log alone. */
static px_region *recover(uint64_t segment_bytes, px_recovery_info *rec)
{
    px_region_opts o = opts(segment_bytes);
    px_region *r = NULL;
    int rc = px_region_open(rname, &o, &r);
    cr_assert_eq(rc, 0, "reopen: %s", px_strerror(rc));
    cr_assert_eq(px_region_recovery(r, rec), 0);
    cr_assert_gt(rec->records, 0, "the region was rebuilt from its log");
    cr_assert_eq(rec->bytes_cut, 0);
    /* Without a checkpoint the log holds every task's SUBMIT: no record
     * can be about a task it lacks. After one, the records of tasks whose
     * SUBMIT went with a dropped segment are orphans. */
    if (segment_bytes == 0)
        cr_assert_eq(rec->orphans, 0);
    return r;
}

static px_workers *start(px_region *r)
{
    px_workers *w = NULL;
    int rc = px_workers_start(r, &(px_workers_opts){.threads = 2, .processes = 1}, &w);
    cr_assert_eq(rc, 0, "workers: %s", px_strerror(rc));
    return w;
}

/* Polls until the task is in state `want`; fails after timeout_s, or at
 * once if it finished in another state. */
static void wait_state(px_region *r, px_id id, int want, double timeout_s)
{
    double end = px_test_now() + timeout_s;
    int st;
    while ((st = px_status(r, id)) != want) {
        bool finished = st == PX_SUCCESS || st == PX_FAILED || st == PX_CANCELLED || st == PX_DEAD;
        cr_assert(st >= 0 && !finished && px_test_now() < end,
                  "waiting for %s, the task is %s (%d)", px_state_name(want),
                  st >= 0 ? px_state_name(st) : px_strerror(st), st);
        usleep(1000);
    }
}

static px_task_info info_of(px_region *r, px_id id)
{
    px_task_info ti;
    int rc = px_info(r, id, &ti);
    cr_assert_eq(rc, 0, "px_info: %s", px_strerror(rc));
    return ti;
}

static px_id submit_stamp(px_region *r, uint32_t i, double delay_s)
{
    px_id id;
    int rc = px_submit(r, "stamp", &i, sizeof i, &(px_submit_opts){.delay_s = delay_s}, &id);
    cr_assert_eq(rc, 0, "submit: %s", px_strerror(rc));
    return id;
}

/* 200 bytes of args: more than the slot's 60 inline bytes, so that they
 * live in arena chunks. */
static void fill_args(uint8_t *a, size_t n)
{
    for (size_t i = 0; i < n; i++)
        a[i] = (uint8_t)(i * 7 + 3);
}

/* A `flaky` task run by workers until it is DEAD: two attempts, both
 * failed. The workers are stopped again. */
static px_id make_dead(px_region *r, const uint8_t *args, size_t len)
{
    px_id id;
    cr_assert_eq(px_submit(r, "flaky", args, len, NULL, &id), 0);
    px_workers *w = start(r);
    wait_state(r, id, PX_DEAD, 5);
    cr_assert_eq(px_workers_stop(w), 0);
    px_task_info ti = info_of(r, id);
    cr_assert_eq(ti.state, PX_DEAD);
    cr_assert_eq(ti.attempts, 2, "one run and one retry");
    cr_assert_str_eq(ti.error, "flaky 2");
    return id;
}

/* ---- SCHEDULED ------------------------------------------------------- */

Test(lifecycle, a_tasks_priority_comes_back_with_it)
{
    px_region *r = open_first(0);
    reg(r, &stamp_def);
    uint32_t i = 0;
    px_id low, high, plain;
    cr_assert_eq(px_submit(r, "stamp", &i, sizeof i,
                           &(px_submit_opts){.priority = PX_PRIORITY_LOW, .delay_s = 30}, &low),
                 0);
    cr_assert_eq(px_submit(r, "stamp", &i, sizeof i,
                           &(px_submit_opts){.priority = PX_PRIORITY_HIGHEST}, &high),
                 0);
    plain = submit_stamp(r, 0, 0);
    lose_memory(r);

    px_recovery_info rec;
    r = recover(0, &rec);
    cr_assert_eq(rec.restored, 3);
    cr_assert_eq(info_of(r, low).priority, PX_PRIORITY_LOW);
    cr_assert_eq(info_of(r, low).state, PX_SCHEDULED);
    cr_assert_eq(info_of(r, high).priority, PX_PRIORITY_HIGHEST);
    cr_assert_eq(info_of(r, high).state, PX_PENDING);
    cr_assert_eq(info_of(r, plain).priority, PX_PRIORITY_NORMAL);
    /* The restored tasks are queued at their levels: one worker thread
     * takes the HIGHEST one first. */
    reg(r, &stamp_def);
    px_workers *w = px_test_workers(r, 1, 0);
    cr_assert_eq(px_join(r, high, 5, NULL, 0, NULL), 0);
    cr_assert_eq(px_join(r, plain, 5, NULL, 0, NULL), 0);
    cr_assert_leq(info_of(r, high).started_ns, info_of(r, plain).started_ns);
    cr_assert_eq(px_workers_stop(w), 0);
    cr_assert_eq(px_region_close(r), 0);
}

Test(lifecycle, a_scheduled_task_comes_back_scheduled_at_the_same_time)
{
    px_region *r = open_first(0);
    reg(r, &stamp_def);
    uint64_t t0 = wall_ns();
    px_id id = submit_stamp(r, 0, 30);
    px_task_info before = info_of(r, id);
    cr_assert_eq(before.state, PX_SCHEDULED);
    cr_assert_geq(before.next_run_ns, t0 + 30000000000ull);
    cr_assert_leq(before.next_run_ns, wall_ns() + 30000000000ull);
    lose_memory(r);

    px_recovery_info rec;
    r = recover(0, &rec);
    cr_assert_eq(rec.restored, 1);
    cr_assert_eq(rec.scheduled, 1);
    cr_assert_eq(rec.pending, 0);
    cr_assert_eq(rec.finished, 0);
    cr_assert_eq(px_status(r, id), PX_SCHEDULED, "%s", px_state_name(px_status(r, id)));
    px_task_info after = info_of(r, id);
    cr_assert_eq(after.state, PX_SCHEDULED);
    cr_assert_eq(after.next_run_ns, before.next_run_ns, "due %llu, was %llu",
                 (unsigned long long)after.next_run_ns, (unsigned long long)before.next_run_ns);
    cr_assert_eq(after.attempts, 0);
    cr_assert_str_eq(after.name, "stamp");
    cr_assert_str_eq(after.queue, "default");
    cr_assert_eq(after.mode, PX_THREAD);

    /* Workers with a timer thread do not run it now: it is not due. */
    reg(r, &stamp_def);
    px_workers *w = start(r);
    usleep(300000);
    cr_assert_eq(px_status(r, id), PX_SCHEDULED, "ran 30 s early");
    cr_assert_eq(atomic_load(&sh->runs[0]), 0);
    cr_assert_eq(px_join(r, id, 0, NULL, 0, NULL), -ETIMEDOUT);
    cr_assert_eq(px_workers_stop(w), 0);
    cr_assert_eq(info_of(r, id).next_run_ns, before.next_run_ns);
    cr_assert_eq(px_region_close(r), 0);
}

Test(lifecycle, a_delayed_task_runs_after_recovery_and_not_before_its_time)
{
    px_region *r = open_first(0);
    reg(r, &stamp_def);
    px_id later = submit_stamp(r, 0, 30);
    px_id soon = submit_stamp(r, 1, 0.2);
    px_task_info later0 = info_of(r, later), soon0 = info_of(r, soon);
    cr_assert_eq(soon0.state, PX_SCHEDULED);
    cr_assert_lt(soon0.next_run_ns, later0.next_run_ns);
    lose_memory(r);

    px_recovery_info rec;
    r = recover(0, &rec);
    cr_assert_eq(rec.restored, 2);
    cr_assert_eq(rec.scheduled, 2);
    cr_assert_eq(rec.pending, 0);
    /* No timer thread runs yet: both wait, whatever the time. */
    cr_assert_eq(px_status(r, soon), PX_SCHEDULED);
    cr_assert_eq(px_status(r, later), PX_SCHEDULED);
    cr_assert_eq(info_of(r, soon).next_run_ns, soon0.next_run_ns);
    cr_assert_eq(info_of(r, later).next_run_ns, later0.next_run_ns);
    if (wall_ns() >= soon0.next_run_ns)
        cr_log_warn("the recovery took longer than the delay; its early start is not tested");

    reg(r, &stamp_def);
    px_workers *w = start(r);
    uint32_t out = UINT32_MAX;
    size_t len = 0;
    int rc = px_join(r, soon, 5, &out, sizeof out, &len);
    cr_assert_eq(rc, 0, "join: %s", px_strerror(rc));
    cr_assert_eq(len, sizeof out);
    cr_assert_eq(out, 1);
    cr_assert_eq(atomic_load(&sh->runs[1]), 1, "ran once");
    cr_assert_geq(atomic_load(&sh->began[1]), soon0.next_run_ns,
                  "the body began %lld ns before its time",
                  (long long)(soon0.next_run_ns - atomic_load(&sh->began[1])));
    px_task_info ti = info_of(r, soon);
    cr_assert_eq(ti.state, PX_SUCCESS);
    cr_assert_eq(ti.attempts, 1);
    cr_assert_geq(ti.started_ns, soon0.next_run_ns, "started %lld ns before its time",
                  (long long)(soon0.next_run_ns - ti.started_ns));
    cr_assert_eq(ti.next_run_ns, 0);

    /* The other one still waits for its own time. */
    cr_assert_eq(px_status(r, later), PX_SCHEDULED);
    cr_assert_eq(atomic_load(&sh->runs[0]), 0);
    cr_assert_eq(info_of(r, later).next_run_ns, later0.next_run_ns);
    cr_assert_eq(px_workers_stop(w), 0);
    cr_assert_eq(px_region_close(r), 0);
}

/* ---- RETRY ----------------------------------------------------------- */

Test(lifecycle, a_retrying_task_comes_back_with_its_attempt_error_and_time)
{
    px_region *r = open_first(0);
    reg(r, &boom_def);
    px_id id;
    uint64_t t0 = wall_ns();
    cr_assert_eq(px_submit(r, "boom", "x", 1, NULL, &id), 0);
    px_workers *w = start(r);
    wait_state(r, id, PX_RETRY, 5);
    cr_assert_eq(px_workers_stop(w), 0);
    px_task_info before = info_of(r, id);
    cr_assert_eq(before.state, PX_RETRY);
    cr_assert_eq(before.attempts, 1);
    cr_assert_str_eq(before.error, "boom 1");
    cr_assert_geq(before.next_run_ns, t0 + 60000000000ull, "no jitter: 60 s exactly");
    cr_assert_leq(before.next_run_ns, wall_ns() + 60000000000ull);
    lose_memory(r);

    px_recovery_info rec;
    r = recover(0, &rec);
    cr_assert_eq(rec.restored, 1);
    cr_assert_eq(rec.scheduled, 1, "RETRY counts as scheduled");
    cr_assert_eq(rec.pending, 0);
    cr_assert_eq(rec.finished, 0);
    cr_assert_eq(px_status(r, id), PX_RETRY, "%s", px_state_name(px_status(r, id)));
    px_task_info after = info_of(r, id);
    cr_assert_eq(after.state, PX_RETRY);
    cr_assert_eq(after.attempts, 1);
    cr_assert_str_eq(after.error, "boom 1");
    cr_assert_eq(after.next_run_ns, before.next_run_ns, "due %llu, was %llu",
                 (unsigned long long)after.next_run_ns, (unsigned long long)before.next_run_ns);
    cr_assert_eq(px_join(r, id, 0, NULL, 0, NULL), -ETIMEDOUT, "a RETRY task is not finished");

    /* Cancelled after the recovery: at once, and for good. */
    cr_assert_eq(px_cancel(r, id), 0);
    cr_assert_eq(px_status(r, id), PX_CANCELLED);
    cr_assert_eq(px_join(r, id, 0, NULL, 0, NULL), -ECANCELED);
    cr_assert_eq(px_requeue(r, id), -EPERM);
    lose_memory(r);
    r = recover(0, &rec);
    cr_assert_eq(rec.restored, 1);
    cr_assert_eq(rec.finished, 1);
    cr_assert_eq(rec.scheduled, 0);
    cr_assert_eq(px_status(r, id), PX_CANCELLED, "%s", px_state_name(px_status(r, id)));
    cr_assert_eq(px_region_close(r), 0);
}

/* ---- DEAD ------------------------------------------------------------ */

Test(lifecycle, a_dead_task_comes_back_with_its_args_and_can_be_requeued)
{
    px_region *r = open_first(0);
    reg(r, &flaky_def);
    uint8_t args[200];
    fill_args(args, sizeof args);
    px_id id = make_dead(r, args, sizeof args);
    lose_memory(r);

    px_recovery_info rec;
    r = recover(0, &rec);
    cr_assert_eq(rec.restored, 1);
    cr_assert_eq(rec.finished, 1);
    cr_assert_eq(rec.pending + rec.scheduled, 0);
    px_task_info ti = info_of(r, id);
    cr_assert_eq(ti.state, PX_DEAD, "%s", px_state_name(ti.state));
    cr_assert_eq(ti.attempts, 2);
    cr_assert_str_eq(ti.error, "flaky 2");
    cr_assert_str_eq(ti.name, "flaky");
    char err[64] = "";
    size_t len = 0;
    cr_assert_eq(px_join(r, id, 0, err, sizeof err, &len), PX_ETASKFAILED);
    cr_assert_str_eq(err, "flaky 2");

    /* The same name, mode and queue, and a body that now succeeds and
     * returns its args. */
    atomic_store(&sh->succeed, 1);
    reg(r, &flaky_def);
    cr_assert_eq(px_requeue(r, id), 0);
    cr_assert_eq(px_status(r, id), PX_PENDING);
    cr_assert_eq(info_of(r, id).attempts, 0, "attempts count from 0 again");
    px_workers *w = start(r);
    uint8_t out[512];
    memset(out, 0, sizeof out);
    int rc = px_join(r, id, 5, out, sizeof out, &len);
    cr_assert_eq(rc, 0, "join: %s", px_strerror(rc));
    cr_assert_eq(len, sizeof args);
    cr_assert_eq(memcmp(out, args, sizeof args), 0, "the args came back intact");
    ti = info_of(r, id);
    cr_assert_eq(ti.state, PX_SUCCESS);
    cr_assert_eq(ti.attempts, 1);
    cr_assert_eq(ti.result_len, sizeof args);
    cr_assert_eq(px_workers_stop(w), 0);
    cr_assert_eq(px_region_close(r), 0);
}

/* A definition that recovery recreated knows only its name, mode and
 * queue: the first registration after it gives it its options (here more
 * retries than before), and a later one does not change them again. */
Test(lifecycle, a_recovered_definition_takes_the_first_registrations_options)
{
    px_region *r = open_first(0);
    reg(r, &flaky_def);
    uint8_t args[200];
    fill_args(args, sizeof args);
    px_id id = make_dead(r, args, sizeof args);
    lose_memory(r);

    px_recovery_info rec;
    r = recover(0, &rec);
    cr_assert_eq(px_status(r, id), PX_DEAD);
    px_task_def two = flaky_def;
    two.max_retries = 2;
    two.retry_delay_s = 0.01;
    reg(r, &two);
    px_task_def none = flaky_def;
    none.max_retries = 0; /* ignored: the options are recorded already */
    reg(r, &none);
    px_task_def other_queue = flaky_def;
    other_queue.queue = "elsewhere";
    cr_assert_eq(px_task_register(r, &other_queue), -EEXIST);

    cr_assert_eq(px_requeue(r, id), 0);
    px_workers *w = start(r);
    wait_state(r, id, PX_DEAD, 5);
    /* The outcome is published a moment before the worker counts it. */
    px_workers_stats st;
    double end = px_test_now() + 5;
    do
        cr_assert_eq(px_workers_stats_get(w, &st), 0);
    while (st.dead == 0 && px_test_now() < end && !usleep(1000));
    cr_assert_eq(px_workers_stop(w), 0);
    cr_assert_eq(st.retried, 2, "retried %llu times", (unsigned long long)st.retried);
    cr_assert_eq(st.dead, 1);
    cr_assert_eq(st.failed, 0, "FAILED would mean max_retries 0");
    cr_assert_eq(st.succeeded, 0);
    px_task_info ti = info_of(r, id);
    cr_assert_eq(ti.state, PX_DEAD);
    cr_assert_eq(ti.attempts, 3, "one run and two retries: %u", ti.attempts);
    cr_assert_str_eq(ti.error, "flaky 3");
    cr_assert_eq(px_region_close(r), 0);
}

/* ---- Checkpoints ----------------------------------------------------- */

#define MAX_SEGS 256

/* The log's segment file names; returns how many. */
static int segment_names(char names[][256], int cap)
{
    DIR *d = opendir(logdir);
    cr_assert_not_null(d, "opendir %s", logdir);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strstr(e->d_name, ".wal") && n < cap)
            snprintf(names[n++], 256, "%s", e->d_name);
    closedir(d);
    return n;
}

static bool segment_exists(const char *name)
{
    int dfd = open(logdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    cr_assert_geq(dfd, 0, "open %s", logdir);
    bool there = faccessat(dfd, name, F_OK, 0) == 0;
    close(dfd);
    return there;
}

/* Runs 3000 plain tasks with 100-byte args through the workers (joined,
 * so their slots go) and waits until a checkpoint has let every segment
 * that was there before go: the tasks that stayed are then in the log only
 * as the checkpoint wrote them. */
static void churn_until_checkpointed(px_region *r)
{
    static char old[MAX_SEGS][256];
    int nold = segment_names(old, MAX_SEGS);
    cr_assert_gt(nold, 0);
    char args[100];
    memset(args, 'c', sizeof args);
    const px_submit_opts eph = {.timeout_s = 5, .flags = PX_SUBMIT_EPHEMERAL};
    for (int i = 0; i < 3000; i += 100) {
        px_id ids[100];
        for (int j = 0; j < 100; j++) {
            args[0] = (char)j;
            int rc = px_submit(r, "echo", args, sizeof args, &eph, &ids[j]);
            cr_assert_eq(rc, 0, "submit %d: %s", i + j, px_strerror(rc));
        }
        for (int j = 0; j < 100; j++) {
            char out[128];
            size_t len = 0;
            int rc = px_join(r, ids[j], 5, out, sizeof out, &len);
            cr_assert_eq(rc, 0, "join %d: %s", i + j, px_strerror(rc));
            cr_assert_eq(len, sizeof args);
            cr_assert_eq(out[0], (char)j);
        }
    }
    double end = px_test_now() + 3;
    for (;;) {
        int left = 0;
        for (int i = 0; i < nold; i++)
            left += segment_exists(old[i]);
        if (left == 0)
            break;
        cr_assert_lt(px_test_now(), end, "%d of %d old segments are still there", left, nold);
        usleep(10000);
    }
}

Test(lifecycle, a_checkpoint_keeps_scheduled_retrying_and_dead_tasks)
{
    px_region *r = open_first(65536);
    reg(r, &stamp_def);
    reg(r, &boom_def);
    reg(r, &flaky_def);
    reg(r, &echo_def);
    uint8_t args[200];
    fill_args(args, sizeof args);
    px_id dead = make_dead(r, args, sizeof args);
    px_id sched = submit_stamp(r, 0, 30);
    px_id retry;
    cr_assert_eq(px_submit(r, "boom", "y", 1, NULL, &retry), 0);
    px_workers *w = start(r);
    wait_state(r, retry, PX_RETRY, 5);
    px_task_info sched0 = info_of(r, sched), retry0 = info_of(r, retry), dead0 = info_of(r, dead);

    churn_until_checkpointed(r);
    cr_assert_eq(px_workers_stop(w), 0);
    cr_assert_eq(px_status(r, sched), PX_SCHEDULED);
    cr_assert_eq(px_status(r, retry), PX_RETRY);
    cr_assert_eq(px_status(r, dead), PX_DEAD);
    lose_memory(r);

    px_recovery_info rec;
    r = recover(65536, &rec);
    cr_assert_eq(rec.restored, 3, "the three that stayed, none of the churn: %llu",
                 (unsigned long long)rec.restored);
    cr_assert_eq(rec.scheduled, 2);
    cr_assert_eq(rec.finished, 1);
    cr_assert_eq(rec.pending, 0);

    px_task_info ti = info_of(r, sched);
    cr_assert_eq(ti.state, PX_SCHEDULED, "%s", px_state_name(ti.state));
    cr_assert_eq(ti.next_run_ns, sched0.next_run_ns);
    cr_assert_eq(ti.attempts, 0);
    cr_assert_str_eq(ti.name, "stamp");

    ti = info_of(r, retry);
    cr_assert_eq(ti.state, PX_RETRY, "%s", px_state_name(ti.state));
    cr_assert_eq(ti.next_run_ns, retry0.next_run_ns);
    cr_assert_eq(ti.attempts, 1);
    cr_assert_str_eq(ti.error, "boom 1");
    cr_assert_str_eq(ti.name, "boom");

    ti = info_of(r, dead);
    cr_assert_eq(ti.state, PX_DEAD, "%s", px_state_name(ti.state));
    cr_assert_eq(ti.attempts, dead0.attempts);
    cr_assert_str_eq(ti.error, "flaky 2");
    cr_assert_str_eq(ti.name, "flaky");
    cr_assert_eq(px_region_close(r), 0);
}

/* A dead task is kept to be requeued: a checkpoint must write its args
 * too, or the requeued run gets none. */
Test(lifecycle, a_checkpoint_keeps_a_dead_tasks_args)
{
    px_region *r = open_first(65536);
    reg(r, &flaky_def);
    reg(r, &echo_def);
    uint8_t args[200];
    fill_args(args, sizeof args);
    px_id dead = make_dead(r, args, sizeof args);
    px_workers *w = start(r);
    churn_until_checkpointed(r);
    cr_assert_eq(px_workers_stop(w), 0);
    lose_memory(r);

    px_recovery_info rec;
    r = recover(65536, &rec);
    cr_assert_eq(rec.restored, 1);
    cr_assert_eq(px_status(r, dead), PX_DEAD);
    atomic_store(&sh->succeed, 1);
    reg(r, &flaky_def);
    cr_assert_eq(px_requeue(r, dead), 0);
    w = start(r);
    uint8_t out[512];
    size_t len = 0;
    int rc = px_join(r, dead, 5, out, sizeof out, &len);
    cr_assert_eq(px_workers_stop(w), 0);
    cr_assert_eq(rc, 0, "join: %s", px_strerror(rc));
    cr_assert_eq(len, sizeof args, "the requeued run got %zu bytes of args, not %zu", len,
                 sizeof args);
    cr_assert_eq(memcmp(out, args, sizeof args), 0);
    cr_assert_eq(px_region_close(r), 0);
}

/* ---- Recurring schedules ------------------------------------------------ */

/* A schedule of `stamp` (index 1) every `every` s, for `times` runs (0: no
 * limit): after two or more runs the workers stop and the memory is lost;
 * the schedule comes back with its id and runs made, and the workers then
 * make exactly the rest (or, unlimited, go on making runs until it is
 * cancelled). With `checkpoint`, a checkpoint lets its first records go. */
static void schedule_survives(uint64_t segment_bytes, bool checkpoint, double every, uint32_t times)
{
    px_region *r = open_first(segment_bytes);
    reg(r, &stamp_def);
    reg(r, &echo_def);
    uint32_t i = 1;
    px_id s;
    cr_assert_eq(px_submit(r, "stamp", &i, sizeof i,
                           &(px_submit_opts){.every_s = every, .times = times}, &s),
                 0);
    px_workers *w = start(r);
    double end = px_test_now() + 10;
    while (atomic_load(&sh->runs[1]) < 2 && px_test_now() < end)
        usleep(1000);
    if (checkpoint)
        churn_until_checkpointed(r);
    cr_assert_eq(px_workers_stop(w), 0);
    cr_assert_geq(atomic_load(&sh->runs[1]), 2);
    px_schedule_info before;
    cr_assert_eq(px_schedule_get(r, s, &before), 0);
    cr_assert_eq(before.state, PX_SCHEDULE_ACTIVE, "the machine was too slow for this test");
    lose_memory(r);

    px_recovery_info rec;
    r = recover(segment_bytes, &rec);
    cr_assert_eq(rec.schedules, 1);
    px_schedule_info after;
    cr_assert_eq(px_schedule_get(r, s, &after), 0, "the schedule keeps its id");
    cr_assert_eq(after.state, PX_SCHEDULE_ACTIVE);
    cr_assert_eq(after.made, before.made, "made %u, was %u", after.made, before.made);
    cr_assert_eq(after.times, times);
    cr_assert_eq(after.every_s, every);
    cr_assert_str_eq(after.task, "stamp");
    reg(r, &stamp_def);
    w = start(r);
    end = px_test_now() + 20;
    while (px_schedule_get(r, s, &after) == 0 && after.state == PX_SCHEDULE_ACTIVE &&
           (times || after.made < before.made + 3) && px_test_now() < end)
        usleep(2000);
    if (!times)
        cr_assert_eq(px_cancel(r, s), 0);
    usleep(300000);
    cr_assert_eq(px_workers_stop(w), 0);
    cr_assert_eq(px_schedule_get(r, s, &after), 0);
    int runs = atomic_load(&sh->runs[1]);
    if (times) {
        cr_assert_eq(after.state, PX_SCHEDULE_ENDED);
        cr_assert_eq(after.made, times);
        cr_assert_eq(runs, (int)times, "%d runs in all", runs);
    } else {
        /* Each run made ran once, but the last one if the cancel caught
         * it waiting. */
        cr_assert_geq(after.made, before.made + 3);
        cr_assert(runs == (int)after.made || runs == (int)after.made - 1, "%d runs, %u made", runs,
                  after.made);
    }
    cr_assert_eq(px_region_close(r), 0);
}

Test(lifecycle, a_schedule_comes_back_from_the_log_and_makes_only_the_rest)
{
    schedule_survives(0, false, 0.2, 6);
}

Test(lifecycle, a_schedule_comes_back_from_a_checkpoint)
{
    schedule_survives(65536, true, 0.2, 0);
}

Test(lifecycle, a_cancelled_schedule_stays_cancelled_after_a_checkpoint_and_recovery)
{
    px_region *r = open_first(65536);
    reg(r, &stamp_def);
    reg(r, &echo_def);
    uint32_t i = 2;
    px_id s;
    cr_assert_eq(px_submit(r, "stamp", &i, sizeof i, &(px_submit_opts){.every_s = 0.05}, &s), 0);
    px_workers *w = start(r);
    double end = px_test_now() + 10;
    while (atomic_load(&sh->runs[2]) < 1 && px_test_now() < end)
        usleep(1000);
    cr_assert_eq(px_cancel(r, s), 0);
    churn_until_checkpointed(r);
    cr_assert_eq(px_workers_stop(w), 0);
    int ran = atomic_load(&sh->runs[2]);
    lose_memory(r);

    px_recovery_info rec;
    r = recover(65536, &rec);
    px_schedule_info si;
    int rc = px_schedule_get(r, s, &si);
    cr_assert(rc == -ENOENT || (rc == 0 && si.state == PX_SCHEDULE_CANCELLED), "rc %d state %d", rc,
              rc == 0 ? (int)si.state : 0);
    reg(r, &stamp_def);
    w = start(r);
    usleep(300000);
    cr_assert_eq(px_workers_stop(w), 0);
    cr_assert_eq(atomic_load(&sh->runs[2]), ran, "no run after recovery");
    cr_assert_eq(px_region_close(r), 0);
}

/*
 * Workers: thread and process modes, crashing children, queue routing,
 * graceful stop, statistics, idleness, events.
 */
#define _GNU_SOURCE
#include "common.h"
#include "executor/executor.h"
#include "steps.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

static char rname[64];
static px_region *g_r;

static void cleanup(void)
{
    px_region_destroy(rname);
}

TestSuite(workers, .fini = cleanup, .timeout = 30);

/* ---- Bodies ------------------------------------------------------------- */

static int echo(px_ctx *ctx, const void *args, size_t len)
{
    return px_result(ctx, args, len);
}

/* The pid that ran it, then the args. */
static int whoami(px_ctx *ctx, const void *args, size_t len)
{
    uint8_t out[8 + 256];
    int32_t pid = getpid();
    if (len > 256)
        return px_fail(ctx, "too long");
    memcpy(out, &pid, sizeof pid);
    memcpy(out + sizeof pid, args, len);
    return px_result(ctx, out, sizeof pid + len);
}

static int do_abort(px_ctx *ctx, const void *args, size_t len)
{
    (void)ctx, (void)args, (void)len;
    abort();
}

static int do_segv(px_ctx *ctx, const void *args, size_t len)
{
    (void)ctx, (void)args, (void)len;
    raise(SIGSEGV);
    return 0;
}

static int do_exit3(px_ctx *ctx, const void *args, size_t len)
{
    (void)ctx, (void)args, (void)len;
    exit(3);
}

static int do_fail(px_ctx *ctx, const void *args, size_t len)
{
    return px_fail(ctx, "failed on purpose: %.*s", (int)len, (const char *)args);
}

/* Sleeps the ms in its args. */
static int nap(px_ctx *ctx, const void *args, size_t len)
{
    uint32_t ms = 0;
    if (len == sizeof ms)
        memcpy(&ms, args, sizeof ms);
    usleep(ms * 1000);
    return px_result(ctx, &ms, sizeof ms);
}

/* Shared with process-mode bodies through an anonymous shared page. */
struct shared {
    _Atomic int started;
    _Atomic uint64_t saw_stop_ns; /* CLOCK_MONOTONIC */
    _Atomic int late_calls;
};
static struct shared *sh;

static uint64_t mono_ns(void)
{
    return px__mono_ns();
}

/* Runs until asked to stop; on a later attempt, succeeds at once. */
static int until_stopped(px_ctx *ctx, const void *args, size_t len)
{
    (void)args, (void)len;
    int attempt = px_task_attempt(ctx);
    if (attempt > 1)
        return px_result(ctx, &attempt, sizeof attempt);
    atomic_fetch_add(&sh->started, 1);
    while (px_should_continue(ctx))
        usleep(1000);
    atomic_store(&sh->saw_stop_ns, mono_ns());
    return 1;
}

/* Runs until asked to stop, then claims success anyway. */
static int until_stopped_ok(px_ctx *ctx, const void *args, size_t len)
{
    (void)args, (void)len;
    atomic_fetch_add(&sh->started, 1);
    while (px_should_continue(ctx))
        usleep(1000);
    atomic_fetch_add(&sh->late_calls, 1);
    return px_result(ctx, "late", 4);
}

/* Process mode: ignores stop requests (the pool must kill it). */
static int sleep_forever(px_ctx *ctx, const void *args, size_t len)
{
    (void)ctx, (void)args, (void)len;
    atomic_fetch_add(&sh->started, 1);
    for (;;)
        pause();
    return 0;
}

/* ---- Helpers ------------------------------------------------------------ */

struct def {
    const char *name;
    px_task_fn fn;
    px_mode mode;
    const char *queue;
    int daemon;
};

static const struct def all_defs[] = {
    {"echo", echo, PX_THREAD, NULL, 0},
    {"p_echo", echo, PX_PROCESS, NULL, 0},
    {"whoami", whoami, PX_THREAD, NULL, 0},
    {"p_whoami", whoami, PX_PROCESS, NULL, 0},
    {"p_abort", do_abort, PX_PROCESS, NULL, 0},
    {"p_segv", do_segv, PX_PROCESS, NULL, 0},
    {"p_exit3", do_exit3, PX_PROCESS, NULL, 0},
    {"fail", do_fail, PX_THREAD, NULL, 0},
    {"p_fail", do_fail, PX_PROCESS, NULL, 0},
    {"nap", nap, PX_THREAD, NULL, 0},
    {"p_nap", nap, PX_PROCESS, NULL, 0},
    {"daemon", until_stopped, PX_THREAD, NULL, 1},
    {"stubborn", until_stopped, PX_THREAD, NULL, 0},
    {"stubborn_ok", until_stopped_ok, PX_THREAD, NULL, 0},
    {"p_daemon", until_stopped, PX_PROCESS, NULL, 1},
    {"p_forever", sleep_forever, PX_PROCESS, NULL, 0},
    {"in_a", whoami, PX_THREAD, "a", 0},
    {"in_b", whoami, PX_THREAD, "b", 0},
    {"p_in_b", whoami, PX_PROCESS, "b", 0},
    {"no_body", NULL, PX_THREAD, NULL, 0},
    {"p_no_body", NULL, PX_PROCESS, NULL, 0},
};

static void register_defs(px_region *r)
{
    for (size_t i = 0; i < sizeof all_defs / sizeof *all_defs; i++) {
        const struct def *d = &all_defs[i];
        int rc = px_task_register(r, &(px_task_def){.name = d->name,
                                                    .fn = d->fn,
                                                    .mode = d->mode,
                                                    .queue = d->queue,
                                                    .daemon = d->daemon});
        cr_assert_eq(rc, 0, "register %s: %s", d->name, px_strerror(rc));
    }
}

static px_region *open_w(void)
{
    px_region *r = px_test_region(rname, sizeof rname,
                                  &(px_region_opts){.capacity = 1024,
                                                    .max_payload = 16384,
                                                    .arena_bytes = 1 << 20,
                                                    .lanes = 32,
                                                    .lane_depth = 1024,
                                                    .reap_interval_s = 0.05});
    register_defs(r);
    if (!sh) {
        sh = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        cr_assert_neq(sh, MAP_FAILED);
    }
    memset(sh, 0, sizeof *sh);
    g_r = r;
    return r;
}

static px_workers *start(px_region *r, px_workers_opts o)
{
    px_workers *w = NULL;
    int rc = px_workers_start(r, &o, &w);
    cr_assert_eq(rc, 0, "px_workers_start: %s", px_strerror(rc));
    cr_assert_not_null(w);
    return w;
}

static px_id submit(px_region *r, const char *task, const void *args, size_t len)
{
    px_id id;
    int rc = px_submit(r, task, args, len, NULL, &id);
    cr_assert_eq(rc, 0, "submit %s: %s", task, px_strerror(rc));
    return id;
}

/* Joins a whoami task; returns the pid that ran it. */
static int32_t join_pid(px_region *r, px_id id, const char *want)
{
    uint8_t buf[300];
    size_t len;
    int rc = px_join(r, id, 10.0, buf, sizeof buf, &len);
    cr_assert_eq(rc, 0, "join: %s", px_strerror(rc));
    cr_assert_eq(len, 4 + strlen(want));
    cr_assert_eq(memcmp(buf + 4, want, strlen(want)), 0);
    int32_t pid;
    memcpy(&pid, buf, sizeof pid);
    return pid;
}

/* Waits until the task's state is st (or 5 s). */
static void await_state(px_region *r, px_id id, int st)
{
    double until = px_test_now() + 5;
    while (px_status(r, id) != st && px_test_now() < until)
        usleep(1000);
    cr_assert_eq(px_status(r, id), st, "state %d, wanted %d", px_status(r, id), st);
}

static void await_started(int n)
{
    double until = px_test_now() + 5;
    while (atomic_load(&sh->started) < n && px_test_now() < until)
        usleep(1000);
    cr_assert_geq(atomic_load(&sh->started), n, "the task body started");
}

static px_task_info info_of(px_region *r, px_id id)
{
    px_task_info ti;
    int rc = px_info(r, id, &ti);
    cr_assert_eq(rc, 0, "px_info: %s", px_strerror(rc));
    return ti;
}

/* ---- Running ------------------------------------------------------------ */

Test(workers, thread_mode_runs_tasks)
{
    px_region *r = open_w();
    px_workers *w = start(r, (px_workers_opts){.threads = 2, .processes = 1});
    enum { N = 50 };
    px_id ids[N];
    char arg[N][16];
    for (int i = 0; i < N; i++) {
        snprintf(arg[i], sizeof arg[i], "task-%d", i);
        ids[i] = submit(r, "whoami", arg[i], strlen(arg[i]));
    }
    for (int i = 0; i < N; i++)
        cr_assert_eq(join_pid(r, ids[i], arg[i]), getpid(), "ran on a thread of this process");
    px_task_info ti = info_of(r, ids[0]);
    cr_assert_eq(ti.worker_pid, getpid());
    cr_assert_eq(ti.attempts, 1);
    cr_assert_eq(ti.mode, PX_THREAD);
    cr_assert_eq(px_region_close(r), -EBUSY, "workers still run on the handle");
    cr_assert_eq(px_workers_stop(w), 0);
    cr_assert_eq(px_region_close(r), 0);
}

Test(workers, process_mode_runs_tasks)
{
    px_region *r = open_w();
    px_workers *w = start(r, (px_workers_opts){.threads = 1, .processes = 2});
    enum { N = 20 };
    px_id ids[N];
    static uint8_t bigarg[10000], out[10000];
    for (int i = 0; i < (int)sizeof bigarg; i++)
        bigarg[i] = (uint8_t)(i * 7);
    for (int i = 0; i < N; i++)
        ids[i] = submit(r, "p_whoami", "x", 1);
    px_id large = submit(r, "p_echo", bigarg, sizeof bigarg);
    int32_t pids[N];
    for (int i = 0; i < N; i++)
        pids[i] = join_pid(r, ids[i], "x");
    /* Children attach themselves after the fork; by now they have. */
    px_proc_info procs[16];
    int np = px_region_procs(r, procs, 16);
    cr_assert_eq(np, 3, "this process and two children");
    for (int i = 0; i < N; i++) {
        int32_t pid = pids[i];
        cr_assert_neq(pid, getpid(), "ran in a child process");
        bool child = false;
        for (int k = 0; k < np && k < 16; k++)
            child |= procs[k].pid == pid && procs[k].role == PX_ROLE_WORKER;
        cr_assert(child, "pid %d is an attached worker process", pid);
        cr_assert_eq(info_of(r, ids[i]).worker_pid, pid);
    }
    size_t len;
    cr_assert_eq(px_join(r, large, 10, out, sizeof out, &len), 0);
    cr_assert_eq(len, sizeof bigarg);
    cr_assert_eq(memcmp(out, bigarg, len), 0, "arena args and results cross processes");
    px_id f = submit(r, "p_fail", "z", 1);
    char err[64];
    cr_assert_eq(px_join(r, f, 10, err, sizeof err, &len), PX_ETASKFAILED);
    cr_assert_str_eq(err, "failed on purpose: z");
    cr_assert_eq(px_workers_stop(w), 0);
    px_region_close(r);
}

Test(workers, both_modes_under_load)
{
    unsigned seed = px_test_seed();
    srand(seed);
    px_region *r = open_w();
    px_workers *w = start(r, (px_workers_opts){.threads = 3, .processes = 2});
    enum { N = 400 };
    static px_id ids[N];
    static uint8_t args[N][600];
    static size_t lens[N];
    for (int i = 0; i < N; i++) {
        lens[i] = (size_t)(rand() % 600);
        for (size_t k = 0; k < lens[i]; k++)
            args[i][k] = (uint8_t)(i + k);
        ids[i] = submit(r, i % 4 == 0 ? "p_echo" : "echo", args[i], lens[i]);
    }
    for (int i = 0; i < N; i++) {
        uint8_t out[600];
        size_t len;
        int rc = px_join(r, ids[i], 10, out, sizeof out, &len);
        cr_assert_eq(rc, 0, "task %d: %s (seed %u)", i, px_strerror(rc), seed);
        cr_assert_eq(len, lens[i]);
        cr_assert_eq(memcmp(out, args[i], len), 0, "task %d (seed %u)", i, seed);
        cr_assert_eq(px_forget(r, ids[i]), 0);
    }
    px_workers_stats st;
    cr_assert_eq(px_workers_stats_get(w, &st), 0);
    cr_assert_eq(px_workers_stop(w), 0);
    px_region_info info;
    px_region_info_get(r, &info);
    cr_assert_eq(info.slots_used, 0);
    cr_assert_eq(info.arena_used, 0);
    px_region_close(r);
}

/* ---- Crashes ------------------------------------------------------------ */

static void expect_crash(px_region *r, const char *task, const char *text)
{
    px_id id = submit(r, task, NULL, 0);
    char err[256];
    size_t len;
    int rc = px_join(r, id, 10, err, sizeof err, &len);
    cr_assert_eq(rc, PX_ETASKFAILED, "%s: %s", task, px_strerror(rc));
    cr_assert(strstr(err, text), "%s: error \"%s\" names \"%s\"", task, err, text);
    px_task_info ti = info_of(r, id);
    cr_assert_eq(ti.state, PX_FAILED);
    cr_assert_str_eq(ti.error, err);
    cr_assert_eq(ti.attempts, 1);
    cr_assert_neq(ti.finished_ns, 0);
    /* The pool replaced the child: the next task succeeds. */
    px_id next = submit(r, "p_whoami", "next", 4);
    cr_assert_neq(join_pid(r, next, "next"), getpid());
}

Test(workers, crashing_children_fail_their_task_and_are_replaced)
{
    px_region *r = open_w();
    px_workers *w = start(r, (px_workers_opts){.threads = 1, .processes = 1});
    px_id first = submit(r, "p_whoami", "a", 1);
    int32_t pid0 = join_pid(r, first, "a");
    expect_crash(r, "p_abort", "signal 6");
    expect_crash(r, "p_segv", "signal 11");
    expect_crash(r, "p_exit3", "exited with status 3");
    px_id last = submit(r, "p_whoami", "b", 1);
    cr_assert_neq(join_pid(r, last, "b"), pid0, "a new child");
    px_workers_stats st;
    double until = px_test_now() + 5;
    do {
        px_workers_stats_get(w, &st);
    } while ((st.failed != 3 || st.succeeded != 5) && px_test_now() < until && !usleep(1000));
    cr_assert_eq(st.failed, 3);
    cr_assert_eq(st.succeeded, 5);
    cr_assert_eq(st.processes, 1);
    /* The supervisor reaps the dead children's entries. */
    px_region_info info;
    until = px_test_now() + 2;
    do {
        px_region_info_get(r, &info);
    } while (info.processes > 2 && px_test_now() < until && !usleep(1000));
    cr_assert_eq(info.processes, 2, "this process and its one live child");
    cr_assert_eq(px_workers_stop(w), 0);
    px_region_close(r);
}

/* A child stopped (SIGSTOP) while idle never acknowledges the next task:
 * its dispatcher kills it after the acknowledgement timeout (5 s) and
 * hands the task, which never started, to a replacement. */
Test(workers, a_child_that_never_acknowledges_is_replaced, .timeout = 60)
{
    px_region *r = open_w();
    px_workers *w = start(r, (px_workers_opts){.threads = 1, .processes = 1});
    int32_t pid0 = join_pid(r, submit(r, "p_whoami", "a", 1), "a");
    cr_assert_neq(pid0, getpid());
    /* The child finishes its task in the region before it replies: stop it
     * only once the dispatcher has its reply (counted), so that it is idle
     * and not stopped between the two. */
    px_workers_stats st;
    double until = px_test_now() + 5;
    do {
        px_workers_stats_get(w, &st);
    } while (st.succeeded < 1 && px_test_now() < until && !usleep(1000));
    cr_assert_eq(st.succeeded, 1, "the dispatcher has the first reply");
    cr_assert_eq(kill(pid0, SIGSTOP), 0);
    double t0 = px_test_now();
    px_id next = submit(r, "p_whoami", "b", 1);
    uint8_t buf[300];
    size_t len;
    int rc = px_join(r, next, 30, buf, sizeof buf, &len);
    cr_assert_eq(rc, 0, "join: %s", px_strerror(rc));
    double took = px_test_now() - t0;
    int32_t pid1;
    memcpy(&pid1, buf, sizeof pid1);
    cr_assert_neq(pid1, pid0, "run by a replacement");
    cr_assert_geq(took, 4.5, "after the acknowledgement timeout, not before (%.2f s)", took);
    cr_assert_eq(info_of(r, next).attempts, 1, "the stopped child never started it");
    cr_assert_eq(kill(pid0, 0), -1, "the stopped child was killed and reaped");
    cr_assert_eq(errno, ESRCH);
    cr_assert_eq(px_workers_stats_get(w, &st), 0);
    cr_assert_eq(st.failed, 0);
    cr_assert_eq(px_workers_stop(w), 0);
    px_region_close(r);
}

Test(workers, a_task_without_a_body_fails_clearly)
{
    px_region *r = open_w();
    px_workers *w = start(r, (px_workers_opts){.threads = 1, .processes = 1});
    const char *tasks[] = {"no_body", "p_no_body"};
    for (int i = 0; i < 2; i++) {
        px_id id = submit(r, tasks[i], NULL, 0);
        char err[256];
        size_t len;
        cr_assert_eq(px_join(r, id, 10, err, sizeof err, &len), PX_ETASKFAILED);
        cr_assert(strstr(err, tasks[i]) && strstr(err, "not implemented"), "error: %s", err);
    }
    /* The workers keep going. */
    cr_assert_eq(join_pid(r, submit(r, "whoami", "ok", 2), "ok"), getpid());
    cr_assert_eq(px_workers_stop(w), 0);
    px_region_close(r);
}

/* ---- Queues ------------------------------------------------------------- */

Test(workers, queue_routing)
{
    px_region *r = open_w();
    px_workers *wa = start(r, (px_workers_opts){.threads = 2, .processes = 1, .queues = "a"});
    px_id b1 = submit(r, "in_b", "b1", 2);
    px_id b2 = submit(r, "p_in_b", "b2", 2);
    px_id b3;
    cr_assert_eq(px_submit(r, "in_a", "b3", 2, &(px_submit_opts){.queue = "b"}, &b3), 0);
    px_id a1 = submit(r, "in_a", "a1", 2);
    px_id a2;
    cr_assert_eq(px_submit(r, "in_b", "a2", 2, &(px_submit_opts){.queue = "a"}, &a2), 0);
    cr_assert_eq(join_pid(r, a1, "a1"), getpid());
    cr_assert_eq(join_pid(r, a2, "a2"), getpid(), "the submit's queue decides");
    usleep(300000);
    cr_assert_eq(px_status(r, b1), PX_PENDING, "not a queue of these workers");
    cr_assert_eq(px_status(r, b2), PX_PENDING);
    cr_assert_eq(px_status(r, b3), PX_PENDING);
    cr_assert_eq(px_status(r, a1), PX_SUCCESS);

    /* Workers for "b" (and "a") on the same handle take them. */
    px_workers *wb = start(r, (px_workers_opts){.threads = 1, .processes = 1, .queues = "a,b"});
    cr_assert_eq(join_pid(r, b1, "b1"), getpid());
    cr_assert_neq(join_pid(r, b2, "b2"), getpid());
    cr_assert_eq(join_pid(r, b3, "b3"), getpid());
    cr_assert_eq(px_workers_stop(wb), 0);
    cr_assert_eq(px_workers_stop(wa), 0);
    px_region_close(r);
}

Test(workers, bad_options)
{
    px_region *r = open_w();
    px_workers *w = NULL;
    cr_assert_eq(px_workers_start(r, &(px_workers_opts){.grace_s = -1}, &w), -EINVAL);
    cr_assert_eq(px_workers_start(r, &(px_workers_opts){.threads = 1, .queues = ""}, &w), -EINVAL);
    cr_assert_eq(px_workers_start(r, &(px_workers_opts){.threads = 1, .queues = "a,,b"}, &w),
                 -EINVAL);
    cr_assert_eq(px_workers_start(NULL, NULL, &w), -EINVAL);
    cr_assert_eq(px_workers_start(r, NULL, NULL), -EINVAL);
    /* More sleeping threads than the region has places for: nothing
     * starts, and every place claimed on the way is given back. */
    cr_assert_eq(px_workers_start(r, &(px_workers_opts){.threads = 1100, .processes = 1}, &w),
                 -EAGAIN);
    cr_assert_null(w);
    for (uint32_t i = 0; i < PX__MAX_PARKS; i++)
        cr_assert_eq(atomic_load(&r->parks[i].owner), 0, "place %u kept", i);
    cr_assert_eq(px_workers_stop(NULL), -EINVAL);
    px_workers_stats st;
    cr_assert_eq(px_workers_stats_get(NULL, &st), -EINVAL);
    cr_assert_eq(px_region_close(r), 0, "failed starts leave no workers counted");
}

/* ---- Stopping ----------------------------------------------------------- */

Test(workers, stop_waits_for_a_task_within_grace)
{
    px_region *r = open_w();
    px_workers *w = start(r, (px_workers_opts){.threads = 1, .processes = 1, .grace_s = 5});
    uint32_t ms = 300;
    px_id t = submit(r, "nap", &ms, sizeof ms);
    px_id p = submit(r, "p_nap", &ms, sizeof ms);
    await_state(r, t, PX_RUNNING);
    await_state(r, p, PX_RUNNING);
    double t0 = px_test_now();
    cr_assert_eq(px_workers_stop(w), 0);
    double took = px_test_now() - t0;
    cr_assert_eq(px_status(r, t), PX_SUCCESS, "finished within the grace period");
    cr_assert_eq(px_status(r, p), PX_SUCCESS);
    cr_assert_geq(took, 0.15, "stop waited for the tasks (%.3f s)", took);
    cr_assert_lt(took, 3.0, "but not for the whole grace period (%.3f s)", took);
    px_region_close(r);
}

struct events {
    pthread_mutex_t mu;
    int n;
    px_event_kind kind[256];
    px_id id[256];
    char task[256][64];
    char error[256][256];
};
static struct events ev = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void on_event(const px_event *e, void *user)
{
    struct events *E = user;
    pthread_mutex_lock(&E->mu);
    if (E->n < 256) {
        E->kind[E->n] = e->kind;
        E->id[E->n] = e->id;
        snprintf(E->task[E->n], sizeof E->task[0], "%s", e->task ? e->task : "(null)");
        snprintf(E->error[E->n], sizeof E->error[0], "%s", e->error ? e->error : "");
        E->n++;
    }
    pthread_mutex_unlock(&E->mu);
}

/* Index of the first event of kind for id, or -1. */
static int find_event(px_event_kind kind, px_id id)
{
    pthread_mutex_lock(&ev.mu);
    int at = -1;
    for (int i = 0; i < ev.n && at < 0; i++)
        if (ev.kind[i] == kind && ev.id[i] == id)
            at = i;
    pthread_mutex_unlock(&ev.mu);
    return at;
}

static int count_events(px_event_kind kind, px_id id)
{
    pthread_mutex_lock(&ev.mu);
    int n = 0;
    for (int i = 0; i < ev.n; i++)
        n += ev.kind[i] == kind && ev.id[i] == id;
    pthread_mutex_unlock(&ev.mu);
    return n;
}

Test(workers, daemon_task_stops_at_once_and_goes_back_to_pending)
{
    px_region *r = open_w();
    px_workers *w = start(
        r, (px_workers_opts){.threads = 1, .processes = 1, .on_event = on_event, .user = &ev});
    px_id id = submit(r, "daemon", NULL, 0);
    await_started(1);
    double t0 = px_test_now();
    uint64_t stop_ns = mono_ns();
    cr_assert_eq(px_workers_stop(w), 0); /* default grace: 10 s */
    double took = px_test_now() - t0;
    uint64_t saw = atomic_load(&sh->saw_stop_ns);
    cr_assert_neq(saw, 0, "the task saw px_should_continue() == 0");
    cr_assert_lt((saw - stop_ns) / 1e9, 0.2, "promptly (%.3f s)", (saw - stop_ns) / 1e9);
    cr_assert_lt(took, 1.0, "stop did not wait for the daemon (%.3f s)", took);
    cr_assert_eq(px_status(r, id), PX_PENDING, "back to PENDING, not FAILED");
    px_task_info ti = info_of(r, id);
    cr_assert_eq(ti.attempts, 1);
    cr_assert_str_eq(ti.error, "");
    cr_assert_geq(find_event(PX_EV_START, id), 0);
    cr_assert_eq(count_events(PX_EV_REQUEUED, id), 1, "one REQUEUED event");
    cr_assert_eq(find_event(PX_EV_FAILED, id), -1);
    cr_assert_eq(find_event(PX_EV_SUCCESS, id), -1);

    /* The next workers run it again: a second attempt. */
    w = start(r, (px_workers_opts){.threads = 1, .processes = 1});
    int attempt = 0;
    size_t len;
    cr_assert_eq(px_join(r, id, 10, &attempt, sizeof attempt, &len), 0);
    cr_assert_eq(attempt, 2);
    cr_assert_eq(info_of(r, id).attempts, 2);
    cr_assert_eq(px_workers_stop(w), 0);
    px_region_close(r);
}

Test(workers, task_past_grace_goes_back_to_pending)
{
    px_region *r = open_w();
    px_workers *w = start(r, (px_workers_opts){.threads = 2, .processes = 1, .grace_s = 0.3});
    px_id fails = submit(r, "stubborn", NULL, 0);
    px_id succeeds = submit(r, "stubborn_ok", NULL, 0);
    await_started(2);
    double t0 = px_test_now();
    cr_assert_eq(px_workers_stop(w), 0);
    double took = px_test_now() - t0;
    cr_assert_geq(took, 0.25, "stop waited for the grace period (%.3f s)", took);
    cr_assert_lt(took, 2.0, "and not much longer (%.3f s)", took);
    cr_assert_neq(atomic_load(&sh->saw_stop_ns), 0);
    cr_assert_eq(atomic_load(&sh->late_calls), 1);
    cr_assert_eq(px_status(r, fails), PX_PENDING, "non-zero after the grace: PENDING");
    cr_assert_eq(px_status(r, succeeds), PX_PENDING, "a late success is discarded");
    cr_assert_eq(info_of(r, succeeds).result_len, 0);
    px_region_info info;
    px_region_info_get(r, &info);
    cr_assert_eq(info.queued, 2, "both are queued again");
    cr_assert_eq(info.arena_used, 0);
    px_region_close(r);
}

Test(workers, process_tasks_past_grace_or_daemon_go_back_to_pending)
{
    px_region *r = open_w();
    px_workers *w = start(r, (px_workers_opts){.threads = 1, .processes = 2, .grace_s = 0.3});
    px_id d = submit(r, "p_daemon", NULL, 0);
    px_id f = submit(r, "p_forever", NULL, 0);
    await_started(2);
    double t0 = px_test_now();
    cr_assert_eq(px_workers_stop(w), 0);
    double took = px_test_now() - t0;
    cr_assert_lt(took, 2.0, "the pool killed what ignored the stop (%.3f s)", took);
    cr_assert_eq(px_status(r, d), PX_PENDING);
    cr_assert_eq(px_status(r, f), PX_PENDING);
    cr_assert_str_eq(info_of(r, f).error, "");
    /* The killed children left their entries; a reap returns them and
     * leaves the tasks PENDING. */
    px__reap(r);
    px_region_info info;
    px_region_info_get(r, &info);
    cr_assert_eq(info.processes, 1, "killed children reaped");
    cr_assert_eq(info.queued, 2);
    cr_assert_eq(px_status(r, d), PX_PENDING);
    cr_assert_eq(px_status(r, f), PX_PENDING);
    px_region_close(r);
}

Test(workers, stop_with_queued_work_leaves_it_pending)
{
    px_region *r = open_w();
    px_workers *w = start(r, (px_workers_opts){.threads = 1, .processes = 1, .grace_s = 2});
    uint32_t ms = 200;
    px_id first = submit(r, "nap", &ms, sizeof ms);
    await_state(r, first, PX_RUNNING);
    px_id later[5];
    for (int i = 0; i < 5; i++)
        later[i] = submit(r, "nap", &ms, sizeof ms);
    cr_assert_eq(px_workers_stop(w), 0);
    cr_assert_eq(px_status(r, first), PX_SUCCESS);
    for (int i = 0; i < 5; i++)
        cr_assert_eq(px_status(r, later[i]), PX_PENDING, "no new task after stop");
    px_region_close(r);
}

Test(workers, signal_stop_takes_no_new_tasks)
{
    px_region *r = open_w();
    px_workers *w = start(r, (px_workers_opts){.threads = 2, .processes = 1});
    cr_assert_eq(join_pid(r, submit(r, "whoami", "1", 1), "1"), getpid());
    px_workers_signal_stop(w);
    px_workers_signal_stop(NULL); /* harmless */
    px_id t = submit(r, "echo", "2", 1);
    px_id p = submit(r, "p_echo", "3", 1);
    usleep(200000);
    cr_assert_eq(px_status(r, t), PX_PENDING);
    cr_assert_eq(px_status(r, p), PX_PENDING);
    double t0 = px_test_now();
    cr_assert_eq(px_workers_stop(w), 0);
    cr_assert_lt(px_test_now() - t0, 1.0);
    cr_assert_eq(px_status(r, t), PX_PENDING);
    px_region_close(r);
}

/* ---- Waking a sleeping worker ---------------------------------------------- */

/* Submits and joins n tasks, each after a random pause of up to 30 us, so
 * that the worker (spin_us = 1) has just gone to sleep, or is on its way,
 * when the task arrives. A lost wake-up leaves the task in its lane until
 * the worker's 1 s safety sleep ends: the join's 0.5 s runs out first. */
static void submit_to_sleeper(px_region *r, int n)
{
    uint64_t x = 88172645463325252ull;
    double worst = 0;
    for (int i = 0; i < n; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        double until = px_test_now() + (double)(x % 30) * 1e-6;
        while (px_test_now() < until)
            ;
        double t0 = px_test_now();
        px_id id;
        int rc = px_submit(r, "echo", "w", 1, &(px_submit_opts){.flags = PX_SUBMIT_EPHEMERAL}, &id);
        cr_assert_eq(rc, 0, "submit: %s", px_strerror(rc));
        char out[8];
        size_t len;
        rc = px_join(r, id, 0.5, out, sizeof out, &len);
        cr_assert_eq(rc, 0, "task %d of %d: %s (a lost wake-up?)", i, n, px_strerror(rc));
        if (px_test_now() - t0 > worst)
            worst = px_test_now() - t0;
    }
    cr_log_info("%d tasks to a sleeping worker, slowest %.1f ms", n, worst * 1e3);
}

Test(workers, a_sleeping_worker_misses_no_task, .timeout = 120)
{
    px_region *r = open_w();
    px_workers *w = start(r, (px_workers_opts){.threads = 1, .processes = 1, .spin_us = 1});
    submit_to_sleeper(r, 3000);
    cr_assert_eq(px_workers_stop(w), 0);
    px_region_close(r);
}

/* The same with the worker in another process, which attached (and
 * registered for the sleepers' barriers, shm/fence.h) on its own. */
Test(workers, a_sleeping_worker_in_another_process_misses_no_task, .timeout = 120)
{
    px_region *r = open_w();
    int go[2];
    cr_assert_eq(pipe(go), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        close(go[1]); /* a parent that dies ends the read below */
        px_region *cr;
        px_workers *cw;
        char b;
        if (px_region_open(rname, NULL, &cr) != 0)
            _exit(2);
        register_defs(cr);
        if (px_workers_start(cr, &(px_workers_opts){.threads = 1, .processes = 1, .spin_us = 1},
                             &cw) != 0)
            _exit(3);
        if (read(go[0], &b, 1) != 1) /* the parent is done */
            _exit(4);
        _exit(px_workers_stop(cw) == 0 && px_region_close(cr) == 0 ? 0 : 5);
    }
    close(go[0]);
    submit_to_sleeper(r, 2000);
    cr_assert_eq(write(go[1], "x", 1), 1);
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "worker process status 0x%x", status);
    px_region_close(r);
}

/* A producer killed with SIGKILL after its tail store and before it looked
 * for sleepers to wake: the worker asleep on the lane is not woken by it,
 * but by its own timed wake (at most 1 s) or the reaper's requeue, and the
 * task runs. The child makes the submit's steps itself (reserve, fill,
 * PENDING, push) so that the kill lands exactly between the two. */
Test(workers, a_producer_killed_between_push_and_wake_loses_no_task, .timeout = 60)
{
    px_region *r = open_w();
    px_workers *w = start(r, (px_workers_opts){.threads = 1, .processes = 1, .spin_us = 1});
    usleep(20000); /* the worker has gone to sleep */
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    px_region *cr;
    pid_t pid = px_test_fork_attached(rname, &cr);
    if (pid == 0) {
        px_id id;
        if (px_test_reserve(cr, "echo", NULL, 0, &id) != 0)
            _exit(3);
        px_test_publish(cr, id);
        struct px__slot *sl = &cr->slots[PX__ID_IDX(id)];
        int lane = px__lane_for(cr, px__tls_get(cr), PX__KEY(sl->queue, sl->level, PX_THREAD));
        if (lane < 0 || px__lane_push(&cr->lanes[lane], px__lane_entries(cr, (uint32_t)lane),
                                      cr->lane_mask, &id, 1) != 1)
            _exit(4);
        if (write(fds[1], &id, sizeof id) != (ssize_t)sizeof id)
            _exit(5);
        raise(SIGKILL);
        _exit(6);
    }
    close(fds[1]);
    px_id id = 0;
    cr_assert_eq(read(fds[0], &id, sizeof id), (ssize_t)sizeof id, "the child pushed its task");
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "status 0x%x", status);
    double t0 = px_test_now();
    char out[8];
    size_t len;
    int rc = px_join(r, id, 3, out, sizeof out, &len);
    cr_assert_eq(rc, 0, "the orphaned entry ran: %s", px_strerror(rc));
    cr_log_info("ran %.3f s after its producer died", px_test_now() - t0);
    cr_assert_eq(info_of(r, id).attempts, 1);
    cr_assert_eq(px_workers_stop(w), 0);
    px_region_close(r);
}

/* ---- Statistics and events ------------------------------------------------ */

Test(workers, stats_count_outcomes)
{
    px_region *r = open_w();
    px_workers *w = start(r, (px_workers_opts){.threads = 3, .processes = 2});
    px_workers_stats st;
    cr_assert_eq(px_workers_stats_get(w, &st), 0);
    cr_assert_eq(st.threads, 3);
    cr_assert_eq(st.processes, 2);
    cr_assert_eq(st.succeeded + st.failed + st.requeued + st.running, 0);
    px_id ids[10];
    for (int i = 0; i < 6; i++)
        ids[i] = submit(r, i % 2 ? "echo" : "p_echo", "s", 1);
    for (int i = 6; i < 9; i++)
        ids[i] = submit(r, i % 2 ? "fail" : "p_fail", "f", 1);
    ids[9] = submit(r, "p_abort", NULL, 0);
    for (int i = 0; i < 10; i++) {
        int rc = px_join(r, ids[i], 10, NULL, 0, NULL);
        if (rc != 0 && rc != PX_ETASKFAILED) { /* say where it was stuck */
            px_task_info ti = {0};
            px_info(r, ids[i], &ti);
            fprintf(stderr, "task %d (%s): %s; state %d, attempts %u, worker %d\n", i, ti.name,
                    px_strerror(rc), ti.state, ti.attempts, ti.worker_pid);
        }
    }
    double until = px_test_now() + 5;
    do {
        px_workers_stats_get(w, &st);
    } while ((st.succeeded != 6 || st.failed != 4) && px_test_now() < until && !usleep(1000));
    cr_assert_eq(st.succeeded, 6);
    cr_assert_eq(st.failed, 4);
    cr_assert_eq(st.requeued, 0);
    cr_assert_eq(st.running, 0);

    uint32_t ms = 300;
    px_id slow = submit(r, "nap", &ms, sizeof ms);
    await_state(r, slow, PX_RUNNING);
    cr_assert_eq(px_workers_stats_get(w, &st), 0);
    cr_assert_eq(st.running, 1);
    cr_assert_eq(px_workers_stop(w), 0);
    px_region_close(r);
}

Test(workers, events_report_start_success_and_failure)
{
    px_region *r = open_w();
    pthread_mutex_lock(&ev.mu);
    ev.n = 0;
    pthread_mutex_unlock(&ev.mu);
    px_workers *w = start(
        r, (px_workers_opts){.threads = 2, .processes = 1, .on_event = on_event, .user = &ev});
    px_id ok = submit(r, "echo", "e", 1);
    px_id pok = submit(r, "p_echo", "e", 1);
    px_id bad = submit(r, "fail", "because", 7);
    px_id crash = submit(r, "p_segv", NULL, 0);
    px_id all[4] = {ok, pok, bad, crash};
    for (int i = 0; i < 4; i++)
        px_join(r, all[i], 10, NULL, 0, NULL);
    double until = px_test_now() + 5;
    while (px_test_now() < until &&
           (find_event(PX_EV_SUCCESS, pok) < 0 || find_event(PX_EV_FAILED, crash) < 0 ||
            find_event(PX_EV_SUCCESS, ok) < 0 || find_event(PX_EV_FAILED, bad) < 0))
        usleep(1000);
    const char *names[4] = {"echo", "p_echo", "fail", "p_segv"};
    for (int i = 0; i < 4; i++) {
        int s = find_event(PX_EV_START, all[i]);
        int e = find_event(i < 2 ? PX_EV_SUCCESS : PX_EV_FAILED, all[i]);
        cr_assert_geq(s, 0, "START of %s", names[i]);
        cr_assert_geq(e, 0, "end of %s", names[i]);
        cr_assert_lt(s, e, "START before the outcome");
        cr_assert_str_eq(ev.task[s], names[i]);
        cr_assert_str_eq(ev.task[e], names[i]);
        cr_assert_eq(find_event(i < 2 ? PX_EV_FAILED : PX_EV_SUCCESS, all[i]), -1);
    }
    cr_assert_str_eq(ev.error[find_event(PX_EV_FAILED, bad)], "failed on purpose: because");
    cr_assert(strstr(ev.error[find_event(PX_EV_FAILED, crash)], "signal 11"), "%s",
              ev.error[find_event(PX_EV_FAILED, crash)]);
    cr_assert_eq(px_workers_stop(w), 0);
    px_region_close(r);
}

/* ---- Idleness and wake-ups ---------------------------------------------- */

/* utime + stime of a process in seconds, from /proc/PID/stat. */
static double proc_cpu(int pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    unsigned long ut = 0, stt = 0;
    /* After ")": state(3) ... utime(14) stime(15). */
    for (int field = 3; field < 14 && p; field++)
        p = strchr(p + 1, ' ');
    if (!p || sscanf(p, " %lu %lu", &ut, &stt) != 2)
        return 0;
    return (double)(ut + stt) / (double)sysconf(_SC_CLK_TCK);
}

static double self_cpu(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

Test(workers, idle_workers_sleep)
{
    px_region *r = open_w();
    px_workers *w = start(r, (px_workers_opts){.threads = 4, .processes = 2});
    /* Some work first, then idleness. */
    for (int i = 0; i < 10; i++)
        px_join(r, submit(r, i % 2 ? "echo" : "p_echo", "w", 1), 10, NULL, 0, NULL);
    usleep(200000);
    px_proc_info procs[8];
    int np = px_region_procs(r, procs, 8);
    double kids0 = 0, kids1 = 0;
    for (int i = 0; i < np && i < 8; i++)
        if (procs[i].pid != getpid())
            kids0 += proc_cpu(procs[i].pid);
    double c0 = self_cpu(), t0 = px_test_now();
    usleep(500000);
    double c1 = self_cpu(), t1 = px_test_now();
    for (int i = 0; i < np && i < 8; i++)
        if (procs[i].pid != getpid())
            kids1 += proc_cpu(procs[i].pid);
    double used = c1 - c0;
    cr_assert_lt(used, 0.02, "this process used %.3f s of CPU in %.3f s of idleness", used,
                 t1 - t0);
    cr_assert_lt(kids1 - kids0, 0.02, "children used %.3f s of CPU", kids1 - kids0);
    cr_assert_eq(px_workers_stop(w), 0);
    px_region_close(r);
}

/* Latency of one submit to an idle pool, everyone asleep. */
static double idle_latency(px_region *r, const char *task, const char *queue)
{
    usleep(250000); /* past the spin: every worker sleeps on the futex */
    px_id id;
    double t0 = px_test_now();
    cr_assert_eq(px_submit(r, task, "z", 1, &(px_submit_opts){.queue = queue}, &id), 0);
    int rc = px_join(r, id, 10, NULL, 0, NULL);
    if (rc) {
        /* Say where the task was stuck. */
        px_task_info ti = {0};
        px_region_info ri = {0};
        px_info(r, id, &ti);
        px_region_info_get(r, &ri);
        fprintf(stderr, "%s on %s: state %d, attempts %u, worker %d, %llu queued\n", task,
                queue ? queue : "default", ti.state, ti.attempts, ti.worker_pid,
                (unsigned long long)ri.queued);
    }
    cr_assert_eq(rc, 0, "%s", px_strerror(rc));
    return px_test_now() - t0;
}

Test(workers, an_idle_pool_wakes_the_right_worker)
{
    px_region *r = open_w();
    /* One thread worker, one process dispatcher, and another handle's
     * worth of workers for queue "b": a wake-up meant for one kind must
     * not be spent on another, which would leave the task waiting for the
     * right worker's periodic wake. */
    px_workers *w = start(r, (px_workers_opts){.threads = 1, .processes = 1});
    px_workers *wb = start(r, (px_workers_opts){.threads = 1, .processes = 1, .queues = "b"});
    double worst = 0;
    for (int i = 0; i < 4; i++) {
        double l1 = idle_latency(r, "echo", NULL);
        double l2 = idle_latency(r, "p_echo", NULL);
        double l3 = idle_latency(r, "echo", "b");
        double l4 = idle_latency(r, "p_echo", "b");
        double m = l1 > l2 ? l1 : l2;
        m = m > l3 ? m : l3;
        m = m > l4 ? m : l4;
        worst = worst > m ? worst : m;
    }
    cr_assert_lt(worst, 0.1, "worst wake-up latency %.3f s", worst);
    cr_assert_eq(px_workers_stop(wb), 0);
    cr_assert_eq(px_workers_stop(w), 0);
    px_region_close(r);
}

Test(workers, an_idle_pool_wakes_the_right_worker_with_many_queues)
{
    /* Past 16 queues, two queues share a wake bit. */
    px_region *r = open_w();
    char q[16];
    for (int i = 0; i < 20; i++) {
        snprintf(q, sizeof q, "q%d", i);
        cr_assert_geq(px__queue_find(r, q, true), 0);
    }
    int q17 = px__queue_find(r, "q17", false);
    cr_assert_gt(q17, 16);
    px_workers *w = start(r, (px_workers_opts){.threads = 1, .processes = 1});
    px_workers *w17 = start(r, (px_workers_opts){.threads = 1, .processes = 1, .queues = "q17"});
    double worst = 0;
    for (int i = 0; i < 2; i++) {
        double l1 = idle_latency(r, "echo", "q17");
        double l2 = idle_latency(r, "p_echo", "q17");
        double l3 = idle_latency(r, "echo", NULL);
        double m = l1 > l2 ? l1 : l2;
        m = m > l3 ? m : l3;
        worst = worst > m ? worst : m;
    }
    cr_assert_lt(worst, 0.1, "worst wake-up latency %.3f s", worst);
    cr_assert_eq(px_workers_stop(w17), 0);
    cr_assert_eq(px_workers_stop(w), 0);
    px_region_close(r);
}

/* ---- Parking places (shm/park.h) ------------------------------------------ */

/* Waits until every place in [from, to) is PARKED. */
static void await_parked(px_region *r, uint32_t from, uint32_t to)
{
    double until = px_test_now() + 10;
    for (uint32_t i = from; i < to; i++)
        while (atomic_load(&r->parks[i].state) != PX__PARK_PARKED)
            cr_assert(px_test_now() < until, "place %u never parked", i);
}

/* Forks a process that attaches and starts one thread and one dispatcher;
 * returns its pid once they run. */
static pid_t fork_worker(int *done_fd)
{
    int ready[2], done[2];
    cr_assert_eq(pipe(ready), 0);
    cr_assert_eq(pipe(done), 0);
    px_region *cr;
    pid_t pid = px_test_fork_attached(rname, &cr);
    if (pid == 0) {
        close(ready[0]);
        close(done[1]); /* a parent that dies ends the read below */
        px_workers *cw;
        register_defs(cr);
        if (px_workers_start(cr, &(px_workers_opts){.threads = 1, .processes = 1, .spin_us = 1},
                             &cw) != 0)
            _exit(3);
        char b = 'x';
        if (write(ready[1], &b, 1) != 1 || read(done[0], &b, 1) != 1)
            _exit(4);
        _exit(px_workers_stop(cw) == 0 && px_region_close(cr) == 0 ? 0 : 5);
    }
    close(ready[1]);
    close(done[0]);
    char b;
    cr_assert_eq(read(ready[0], &b, 1), 1, "the worker process started");
    close(ready[0]);
    *done_fd = done[1];
    return pid;
}

/* A parked worker stays counted as a sleeper until it has woken, and it
 * cannot wake while stopped (SIGSTOP): four submits in that window claim
 * it once, not four times (each used to make a futex call). */
Test(workers, a_sleeping_worker_is_woken_once_not_per_submit)
{
    px_region *r = open_w();
    int done;
    pid_t pid = fork_worker(&done);
    cr_assert_eq(atomic_load(&r->hdr->parks_hwm), 2, "a thread and a dispatcher");
    await_parked(r, 0, 2);
    cr_assert_eq(kill(pid, SIGSTOP), 0);
    int st;
    cr_assert_eq(waitpid(pid, &st, WUNTRACED), pid);
    uint32_t word[2] = {atomic_load(&r->parks[0].word), atomic_load(&r->parks[1].word)};
    px_id ids[4];
    for (int i = 0; i < 4; i++)
        ids[i] = submit(r, "echo", "s", 1);
    uint32_t bumps[2] = {atomic_load(&r->parks[0].word) - word[0],
                         atomic_load(&r->parks[1].word) - word[1]};
    cr_assert_eq(bumps[0] + bumps[1], 1, "woken %u and %u times for four submits", bumps[0],
                 bumps[1]);
    uint32_t t = bumps[0] ? 0 : 1;
    cr_assert_eq(atomic_load(&r->parks[t].state), PX__PARK_WOKEN);
    cr_assert_eq(atomic_load(&r->parks[1 - t].state), PX__PARK_PARKED,
                 "the dispatcher serves other tasks: not woken");
    cr_assert_eq(kill(pid, SIGCONT), 0);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(px_join(r, ids[i], 10, NULL, 0, NULL), 0, "task %d ran", i);
    cr_assert_eq(write(done, "x", 1), 1);
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "worker process status 0x%x", st);
    cr_assert_eq(atomic_load(&r->parks[0].owner), 0, "its places were given back");
    px_region_close(r);
}

/* Two tasks submitted one by one to two parked workers run side by side:
 * the second submit wakes the second worker, not the first again. */
Test(workers, two_submits_wake_two_parked_workers)
{
    px_region *r = open_w();
    px_workers *w = start(r, (px_workers_opts){.threads = 2, .processes = 1, .spin_us = 1});
    await_parked(r, 0, 3);
    uint32_t ms = 300;
    double t0 = px_test_now();
    px_id a = submit(r, "nap", &ms, sizeof ms), b = submit(r, "nap", &ms, sizeof ms);
    cr_assert_eq(px_join(r, a, 10, NULL, 0, NULL), 0);
    cr_assert_eq(px_join(r, b, 10, NULL, 0, NULL), 0);
    double took = px_test_now() - t0;
    cr_assert_lt(took, 0.55, "two 0.3 s tasks took %.3f s: one worker ran both", took);
    cr_assert_neq(info_of(r, a).worker_pid, 0);
    cr_assert_eq(px_workers_stop(w), 0);
    px_region_close(r);
}

/* A batch larger than its lane, to a sleeping worker: the lane fills, and
 * the producer must wake the worker before it waits for the room only the
 * worker can make (it used to wait for the worker's timed wake, 0.9 s). */
Test(workers, a_batch_larger_than_its_lane_wakes_the_worker_before_waiting)
{
    px_region *r = px_test_region(rname, sizeof rname,
                                  &(px_region_opts){.capacity = 256, .lanes = 4, .lane_depth = 8});
    register_defs(r);
    px_workers *w = start(r, (px_workers_opts){.threads = 1, .processes = 1, .spin_us = 1});
    enum { N = 64 };
    px_job jobs[N];
    px_id ids[N];
    for (int i = 0; i < N; i++)
        jobs[i] = (px_job){.task = "echo", .args = "b", .len = 1};
    const px_submit_opts wait = {.timeout_s = 10, .flags = PX_SUBMIT_DETACHED};
    double worst = 0;
    for (int round = 0; round < 3; round++) {
        await_parked(r, 0, 2);
        double t0 = px_test_now();
        cr_assert_eq(px_submit_many(r, jobs, N, &wait, ids), N);
        double took = px_test_now() - t0;
        worst = took > worst ? took : worst;
    }
    cr_assert_lt(worst, 0.5, "a batch of %d through a lane of 8 took %.3f s", N, worst);
    cr_assert_eq(px_workers_stop(w), 0);
    px_region_close(r);
}

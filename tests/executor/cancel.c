/*
 * Cancellation: pending tasks at once, running cancellable ones through
 * CANCEL_REQUESTED and px_should_continue, refusals, races with finishing,
 * requests from another process, a worker dying after the request, and a
 * durable region remembering cancels across the loss of its memory.
 */
#include "common.h"
#include "executor/executor.h"

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/wait.h>

static char rname[64], dir[64];

static void fini(void)
{
    px_region_destroy(rname);
    if (dir[0])
        px_test_rmtree(dir);
}

TestSuite(cancel, .fini = fini, .timeout = 60);

/* Shared with pool children: what the bodies saw. */
struct seen {
    _Atomic int started, stopped_early;
};
static struct seen *seen;

static int loop_until_asked(px_ctx *ctx, const void *a, size_t n)
{
    (void)a;
    (void)n;
    atomic_store(&seen->started, 1);
    double end = px_test_now() + 20;
    while (px_test_now() < end) {
        if (!px_should_continue(ctx)) {
            atomic_store(&seen->stopped_early, 1);
            return 0;
        }
        usleep(100);
    }
    return px_result(ctx, "ran out", 7);
}

static int deaf(px_ctx *ctx, const void *a, size_t n)
{
    (void)ctx;
    (void)a;
    (void)n;
    atomic_store(&seen->started, 1);
    for (;;)
        pause(); /* never asks */
    return 0;
}

static int quick(px_ctx *ctx, const void *a, size_t n)
{
    return px_result(ctx, a, n);
}

static const px_task_def defs[] = {
    {.name = "loop", .fn = loop_until_asked, .mode = PX_THREAD, .cancellable = 1},
    {.name = "loop_proc", .fn = loop_until_asked, .mode = PX_PROCESS, .cancellable = 1},
    {.name = "stubborn", .fn = loop_until_asked, .mode = PX_THREAD},
    {.name = "deaf_proc", .fn = deaf, .mode = PX_PROCESS, .cancellable = 1},
    {.name = "quick", .fn = quick, .mode = PX_THREAD},
};

static px_region *open_r(const px_region_opts *o)
{
    if (!seen) {
        seen = mmap(NULL, sizeof *seen, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        cr_assert_neq(seen, MAP_FAILED);
    }
    px_region *r = px_test_region(rname, sizeof rname, o);
    for (size_t i = 0; i < sizeof defs / sizeof defs[0]; i++)
        cr_assert_eq(px_task_register(r, &defs[i]), 0);
    return r;
}

static void wait_started(void)
{
    double end = px_test_now() + 10;
    while (!atomic_load(&seen->started) && px_test_now() < end)
        usleep(200);
    cr_assert(atomic_load(&seen->started), "the body started");
}

Test(cancel, a_pending_task_is_cancelled_at_once_and_never_runs)
{
    px_region *r = open_r(NULL);
    px_id id, det;
    cr_assert_eq(px_submit(r, "quick", "x", 1, NULL, &id), 0);
    cr_assert_eq(
        px_submit(r, "quick", "x", 1, &(px_submit_opts){.flags = PX_SUBMIT_DETACHED}, &det), 0);
    cr_assert_eq(px_cancel(r, id), 0);
    cr_assert_eq(px_status(r, id), PX_CANCELLED);
    cr_assert_eq(px_cancel(r, id), 0, "cancelling twice is no error");
    cr_assert_eq(px_cancel(r, det), 0);
    cr_assert_eq(px_status(r, det), -ENOENT, "a detached task is freed when cancelled");
    px_workers *w;
    cr_assert_eq(px_workers_start(r, &(px_workers_opts){.threads = 1, .processes = 1}, &w), 0);
    char buf[8];
    size_t len = 99;
    cr_assert_eq(px_join(r, id, 1, buf, sizeof buf, &len), -ECANCELED);
    cr_assert_eq(len, 0);
    usleep(20000);
    px_workers_stats st;
    cr_assert_eq(px_workers_stats_get(w, &st), 0);
    cr_assert_eq(st.succeeded + st.failed, 0, "neither task ran");
    cr_assert_eq(px_workers_stop(w), 0);
    px_task_info ti;
    cr_assert_eq(px_info(r, id, &ti), 0);
    cr_assert_eq(ti.state, PX_CANCELLED);
    cr_assert_eq(ti.attempts, 0);
    cr_assert_eq(px_forget(r, id), 0);
    px_region_info info;
    cr_assert_eq(px_region_info_get(r, &info), 0);
    cr_assert_eq(info.slots_used, 0);
    cr_assert_eq(info.arena_used, 0);
    px_region_close(r);
}

static void running_cancel(const char *task)
{
    px_region *r = open_r(NULL);
    atomic_store(&seen->started, 0);
    atomic_store(&seen->stopped_early, 0);
    px_workers *w;
    cr_assert_eq(px_workers_start(r, &(px_workers_opts){.threads = 1, .processes = 1}, &w), 0);
    px_id id;
    cr_assert_eq(px_submit(r, task, NULL, 0, NULL, &id), 0);
    wait_started();
    cr_assert_eq(px_cancel(r, id), 0);
    int st = px_status(r, id);
    cr_assert(st == PX_CANCEL_REQUESTED || st == PX_CANCELLED, "state %d", st);
    cr_assert_eq(px_join(r, id, 10, NULL, 0, NULL), -ECANCELED);
    cr_assert(atomic_load(&seen->stopped_early), "the body saw px_should_continue turn false");
    /* The worker counts the run after publishing it: give it a moment. */
    px_workers_stats ws = {0};
    for (int i = 0; i < 1000 && ws.cancelled == 0; i++) {
        cr_assert_eq(px_workers_stats_get(w, &ws), 0);
        usleep(1000);
    }
    cr_assert_eq(ws.cancelled, 1);
    cr_assert_eq(ws.succeeded + ws.failed, 0);
    cr_assert_eq(px_workers_stop(w), 0);
    px_region_close(r);
}

Test(cancel, a_running_thread_task_is_asked_to_stop)
{
    running_cancel("loop");
}

Test(cancel, a_running_process_task_is_asked_to_stop_in_its_child)
{
    running_cancel("loop_proc");
}

Test(cancel, refusals)
{
    px_region *r = open_r(NULL);
    atomic_store(&seen->started, 0);
    cr_assert_eq(px_cancel(NULL, 1), -EINVAL);
    cr_assert_eq(px_cancel(r, 0), -ENOENT);
    px_workers *w;
    cr_assert_eq(px_workers_start(r, &(px_workers_opts){.threads = 1, .processes = 1}, &w), 0);
    px_id id, done;
    cr_assert_eq(px_submit(r, "quick", "q", 1, NULL, &done), 0);
    cr_assert_eq(px_join(r, done, 5, NULL, 0, NULL), 0);
    cr_assert_eq(px_cancel(r, done), -EALREADY);
    cr_assert_eq(px_status(r, done), PX_SUCCESS, "a refused cancel changes nothing");
    cr_assert_eq(px_submit(r, "stubborn", NULL, 0, NULL, &id), 0);
    wait_started();
    cr_assert_eq(px_cancel(r, id), -EPERM, "not cancellable while it runs");
    cr_assert_eq(px_status(r, id), PX_RUNNING);
    cr_assert_eq(px_workers_stop(w), 0); /* the shutdown stops it instead */
    px_region_close(r);
}

/* Cancelling from another attached process, and a worker child that dies
 * after the request: the task ends CANCELLED, not FAILED or re-run. */
Test(cancel, from_another_process_and_through_a_dying_child)
{
    px_region *r = open_r(NULL);
    atomic_store(&seen->started, 0);
    px_workers *w;
    cr_assert_eq(px_workers_start(r, &(px_workers_opts){.threads = 1, .processes = 1}, &w), 0);
    px_id id;
    cr_assert_eq(px_submit(r, "deaf_proc", NULL, 0, NULL, &id), 0);
    wait_started();
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        px_region *c;
        if (px_region_open(rname, &(px_region_opts){.flags = PX_REGION_ATTACH}, &c) != 0)
            _exit(2);
        _exit(px_cancel(c, id) == 0 ? 0 : 3);
    }
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the other process cancelled");
    cr_assert_eq(px_status(r, id), PX_CANCEL_REQUESTED, "the body never asks");
    px_task_info ti;
    cr_assert_eq(px_info(r, id, &ti), 0);
    cr_assert_gt(ti.worker_pid, 0);
    kill(ti.worker_pid, SIGKILL);
    cr_assert_eq(px_join(r, id, 10, NULL, 0, NULL), -ECANCELED);
    px_workers_stats st;
    cr_assert_eq(px_workers_stats_get(w, &st), 0);
    cr_assert_eq(st.failed, 0);
    cr_assert_eq(px_workers_stop(w), 0);
    px_region_close(r);
}

/* Cancels are kept in a durable region's log: neither a cancelled pending
 * task nor one asked to stop comes back to run after the memory is lost. */
Test(cancel, a_durable_region_remembers_cancels)
{
    px_test_tmpdir(dir, sizeof dir, "cancel");
    px_region_opts o = {.capacity = 64, .durability = PX_DURABLE_SYNC, .log_dir = dir};
    px_region *r = open_r(&o);
    px_id pend, run;
    cr_assert_eq(px_submit(r, "quick", "p", 1, NULL, &pend), 0);
    cr_assert_eq(px_cancel(r, pend), 0);
    cr_assert_eq(px_submit(r, "loop", NULL, 0, NULL, &run), 0);
    struct px__scan scan = {0};
    uint64_t claimed;
    cr_assert_eq(px__take(r, ~0ull, PX_THREAD, &scan, &claimed), run);
    cr_assert_eq(px_cancel(r, run), 0);
    cr_assert_eq(px_status(r, run), PX_CANCEL_REQUESTED);
    /* The memory is lost while the run was asked to stop. */
    cr_assert_eq(px_region_close(r), 0);
    cr_assert_eq(px_region_destroy(rname), 0);
    cr_assert_eq(px_region_open(rname, &o, &r), 0);
    px_recovery_info rec;
    cr_assert_eq(px_region_recovery(r, &rec), 0);
    cr_assert_eq(rec.restored, 2);
    cr_assert_eq(rec.pending, 0);
    cr_assert_eq(px_status(r, pend), PX_CANCELLED);
    cr_assert_eq(px_status(r, run), PX_CANCELLED);
    cr_assert_eq(px_join(r, run, 0, NULL, 0, NULL), -ECANCELED);
    px_region_close(r);
}

/*
 * Pausing a queue: its tasks (plain and delayed) wait while other queues
 * flow, a task already running finishes, a pause from another process
 * holds here too, and a resume wakes the sleeping workers at once.
 */
#include "common.h"

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/wait.h>

static char rname[64];

static void fini(void)
{
    px_region_destroy(rname);
}

TestSuite(queues, .fini = fini, .timeout = 60);

static _Atomic int *ran;

static int count(px_ctx *ctx, const void *a, size_t n)
{
    (void)ctx;
    if (n == sizeof(int)) {
        int ms;
        memcpy(&ms, a, sizeof ms);
        usleep((useconds_t)ms * 1000);
    }
    atomic_fetch_add(ran, 1);
    return 0;
}

static px_region *open_r(void)
{
    if (!ran)
        ran = px_test_shared(sizeof *ran);
    atomic_store(ran, 0);
    px_region *r = px_test_region(rname, sizeof rname, &(px_region_opts){.capacity = 64});
    px_task_def a = {.name = "in_a", .fn = count, .mode = PX_THREAD, .queue = "a"};
    px_task_def d = {.name = "in_default", .fn = count, .mode = PX_THREAD};
    cr_assert_eq(px_task_register(r, &a), 0);
    cr_assert_eq(px_task_register(r, &d), 0);
    return r;
}

static px_workers *start(px_region *r)
{
    px_workers *w;
    px_workers_opts o = {.threads = 2, .processes = 1, .queues = "a,default"};
    cr_assert_eq(px_workers_start(r, &o, &w), 0);
    return w;
}

static px_id submit(px_region *r, const char *task, int ms, double delay)
{
    px_id id;
    cr_assert_eq(px_submit(r, task, &ms, sizeof ms, &(px_submit_opts){.delay_s = delay}, &id), 0);
    return id;
}

Test(queues, a_paused_queue_holds_its_tasks_while_others_flow)
{
    px_region *r = open_r();
    px_workers *w = start(r);
    cr_assert_eq(px_queue_paused(r, "a"), 0);
    px_id running = submit(r, "in_a", 300, 0);
    cr_assert_eq(px_test_wait_state(r, running, PX_RUNNING, 5), PX_RUNNING);
    cr_assert_eq(px_queue_pause(r, "a"), 0);
    cr_assert_eq(px_queue_paused(r, "a"), 1);
    px_id held[4];
    for (int i = 0; i < 3; i++)
        held[i] = submit(r, "in_a", 0, 0);
    held[3] = submit(r, "in_a", 0, 0.05); /* fired into the queue, not taken */
    px_id other = submit(r, "in_default", 0, 0);
    cr_assert_eq(px_join(r, other, 5, NULL, 0, NULL), 0, "another queue flows");
    cr_assert_eq(px_join(r, running, 5, NULL, 0, NULL), 0, "a running task finishes");
    usleep(300000);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(px_status(r, held[i]), PX_PENDING, "task %d was taken while paused", i);
    cr_assert_eq(atomic_load(ran), 2);
    usleep(1200000); /* every worker now sleeps on the futex */
    double t0 = px_test_now();
    cr_assert_eq(px_queue_resume(r, "a"), 0);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(px_join(r, held[i], 5, NULL, 0, NULL), 0);
    cr_assert_lt(px_test_now() - t0, 0.5, "the resume woke the workers");
    cr_assert_eq(px_queue_paused(r, "a"), 0);
    cr_assert_eq(px_workers_stop(w), 0);
    cr_assert_eq(px_region_close(r), 0);
}

Test(queues, a_pause_from_another_process_holds_here)
{
    px_region *r = open_r();
    px_workers *w = start(r);
    pid_t kid = fork();
    cr_assert_geq(kid, 0);
    if (kid == 0) {
        px_region *cr;
        _exit(px_region_open(rname, NULL, &cr) || px_queue_pause(cr, "a") || px_region_close(cr)
                  ? 1
                  : 0);
    }
    int st;
    cr_assert_eq(waitpid(kid, &st, 0), kid);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    px_id id = submit(r, "in_a", 0, 0);
    usleep(200000);
    cr_assert_eq(px_status(r, id), PX_PENDING);
    cr_assert_eq(px_queue_resume(r, "a"), 0);
    cr_assert_eq(px_join(r, id, 5, NULL, 0, NULL), 0);
    cr_assert_eq(px_workers_stop(w), 0);
    cr_assert_eq(px_region_close(r), 0);
}

Test(queues, unknown_queues_and_bad_arguments_are_refused)
{
    px_region *r = open_r();
    cr_assert_eq(px_queue_pause(r, "nope"), -ENOENT);
    cr_assert_eq(px_queue_resume(r, "nope"), -ENOENT);
    cr_assert_eq(px_queue_paused(r, "nope"), -ENOENT);
    cr_assert_eq(px_queue_pause(r, NULL), -EINVAL);
    cr_assert_eq(px_queue_pause(NULL, "a"), -EINVAL);
    cr_assert_eq(px_queue_paused(r, "a"), 0, "nothing changed");
    cr_assert_eq(px_region_close(r), 0);
}

/* Runs a body that only counts, with the worker processes given. */
static double time_to_run(px_region *r, int n, int *in_first_half)
{
    px_id ids[64];
    double t0 = px_test_now();
    for (int i = 0; i < n; i++)
        ids[i] = submit(r, "in_a", 0, 0);
    usleep(500000);
    *in_first_half = atomic_load(ran);
    for (int i = 0; i < n; i++)
        cr_assert_eq(px_join(r, ids[i], 10, NULL, 0, NULL), 0);
    return px_test_now() - t0;
}

Test(queues, a_rate_limit_holds_across_workers_and_processes)
{
    px_region *r = open_r();
    cr_assert_eq(px_queue_set_rate(r, "a", 10), 0);
    cr_assert_eq(px_queue_rate(r, "a"), 10);
    cr_assert_eq(px_queue_rate(r, "default"), 0);
    px_workers *w = start(r);
    /* A second process of workers: the limit is the region's, not one
     * worker's. */
    pid_t kid = fork();
    cr_assert_geq(kid, 0);
    if (kid == 0) {
        px_region *cr;
        px_workers *cw;
        if (px_region_open(rname, NULL, &cr) ||
            px_task_register(
                cr, &(px_task_def){.name = "in_a", .fn = count, .mode = PX_THREAD, .queue = "a"}) ||
            px_workers_start(cr, &(px_workers_opts){.threads = 2, .queues = "a"}, &cw))
            _exit(2);
        pause();
        _exit(0);
    }
    /* 25 tasks at 10/s with a burst of 10: 15 more tokens take 1.5 s. */
    int early;
    double took = time_to_run(r, 25, &early);
    kill(kid, SIGKILL);
    waitpid(kid, NULL, 0);
    cr_assert_leq(early, 16, "%d started in the first 0.5 s", early);
    cr_assert_geq(took, 1.4, "25 starts in %.2f s", took);
    cr_assert_lt(took, 4, "throttled workers wake for each token");
    /* Lifted: the rest flows at once. */
    cr_assert_eq(px_queue_set_rate(r, "a", 0), 0);
    atomic_store(ran, 0);
    took = time_to_run(r, 25, &early);
    cr_assert_eq(early, 25);
    cr_assert_eq(px_queue_set_rate(r, "a", -1), -EINVAL);
    cr_assert_eq(px_queue_set_rate(r, "a", 70000), -EINVAL);
    cr_assert_eq(px_queue_set_rate(r, "nope", 5), -ENOENT);
    cr_assert_eq(px_workers_stop(w), 0);
    cr_assert_eq(px_region_close(r), 0);
}

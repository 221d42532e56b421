/*
 * Per-queue concurrency limits: with many workers in several processes,
 * thread and process tasks alike, never more than K of a queue's tasks run
 * at once (and K do); other queues are not held back; a worker process
 * killed while holding places leaks none; lifting a limit starts the
 * waiting tasks at once; bad input is refused.
 */
#include "common.h"

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/wait.h>

static char rname[64];
static pid_t kid; /* a worker process of the test's, killed if still there */

static void fini(void)
{
    if (kid > 0)
        kill(kid, SIGKILL);
    px_region_destroy(rname);
}

TestSuite(concurrency, .fini = fini, .timeout = 60);

/* Shared with pool children and forked worker processes. */
struct book {
    _Atomic int running, most, done, other_done;
    _Atomic int hold; /* non-zero: `busy` bodies wait until it is 0 */
};
static struct book *book;

/* Args: milliseconds to run. Counts how many run at once. */
static int busy(px_ctx *ctx, const void *a, size_t n)
{
    (void)ctx;
    int ms = 0;
    if (n == sizeof ms)
        memcpy(&ms, a, sizeof ms);
    int now = atomic_fetch_add(&book->running, 1) + 1;
    int most = atomic_load(&book->most);
    while (now > most && !atomic_compare_exchange_weak(&book->most, &most, now))
        ;
    usleep((useconds_t)ms * 1000);
    while (atomic_load(&book->hold))
        usleep(1000);
    atomic_fetch_sub(&book->running, 1);
    atomic_fetch_add(&book->done, 1);
    return 0;
}

static int other(px_ctx *ctx, const void *a, size_t n)
{
    (void)ctx, (void)a, (void)n;
    atomic_fetch_add(&book->other_done, 1);
    return 0;
}

static const px_task_def defs[] = {
    {.name = "busy", .fn = busy, .mode = PX_THREAD, .queue = "api"},
    {.name = "busy_proc", .fn = busy, .mode = PX_PROCESS, .queue = "api"},
    {.name = "other", .fn = other, .mode = PX_THREAD},
};
#define NDEFS (sizeof defs / sizeof defs[0])

static px_region *open_r(void)
{
    if (!book)
        book = px_test_shared(sizeof *book);
    memset(book, 0, sizeof *book);
    return px_test_region_defs(rname, sizeof rname, defs, NDEFS);
}

static px_workers *start(px_region *r, unsigned threads, unsigned processes)
{
    px_workers *w;
    px_workers_opts o = {.threads = threads, .processes = processes, .queues = "api,default"};
    cr_assert_eq(px_workers_start(r, &o, &w), 0);
    return w;
}

static px_id submit(px_region *r, const char *task, int ms)
{
    px_id id;
    int rc = px_submit(r, task, &ms, sizeof ms, NULL, &id);
    cr_assert_eq(rc, 0, "submit: %s", px_strerror(rc));
    return id;
}

static void wait_done(_Atomic int *counter, int n, double limit)
{
    double end = px_test_now() + limit;
    while (atomic_load(counter) < n && px_test_now() < end)
        usleep(1000);
    cr_assert_eq(atomic_load(counter), n, "%d of %d done", atomic_load(counter), n);
}

/* A worker process of the test's on the region (kid): threads and pool
 * children. */
static void fork_workers(unsigned threads, unsigned processes)
{
    kid = fork();
    cr_assert_geq(kid, 0);
    if (kid == 0) {
        px_region *cr;
        px_workers *cw;
        if (px_region_open(rname, NULL, &cr) != 0 ||
            px_task_register_range(cr, defs, defs + NDEFS) < 0)
            _exit(2);
        px_workers_opts o = {.threads = threads, .processes = processes, .queues = "api,default"};
        if (px_workers_start(cr, &o, &cw))
            _exit(3);
        pause();
        _exit(0);
    }
}

Test(concurrency, at_most_k_run_at_once_across_processes_and_modes)
{
    px_region *r = open_r();
    cr_assert_eq(px_queue_set_concurrency(r, "api", 3), 0);
    fork_workers(3, 2);
    px_workers *w = start(r, 3, 2);
    for (int i = 0; i < 40; i++)
        submit(r, i % 2 ? "busy" : "busy_proc", 20);
    /* The other queue flows while "api" is at its limit. */
    for (int i = 0; i < 20; i++)
        submit(r, "other", 0);
    wait_done(&book->other_done, 20, 10);
    cr_assert_lt(atomic_load(&book->done), 40, "the limited queue was not drained first");
    wait_done(&book->done, 40, 20);
    cr_assert_eq(atomic_load(&book->most), 3, "at most 3 and at times 3 ran (most %d)",
                 atomic_load(&book->most));
    /* A place is given back after its body returns, which is after the
     * body counted itself done: the last ones may still be on the way. */
    int running = -1;
    double end = px_test_now() + 10;
    while (px_queue_concurrency(r, "api", &running) == 3 && running != 0 && px_test_now() < end)
        usleep(1000);
    cr_assert_eq(px_queue_concurrency(r, "api", &running), 3);
    cr_assert_eq(running, 0, "every place was given back");
    kill(kid, SIGKILL);
    waitpid(kid, NULL, 0);
    kid = 0;
    cr_assert_eq(px_workers_stop(w), 0);
    cr_assert_eq(px_region_close(r), 0);
}

Test(concurrency, a_killed_worker_process_leaks_no_place)
{
    px_region *r = open_r();
    cr_assert_eq(px_queue_set_concurrency(r, "api", 1), 0);
    atomic_store(&book->hold, 1);
    fork_workers(2, 0);
    px_id a = submit(r, "busy", 0);
    double end = px_test_now() + 10;
    while (atomic_load(&book->running) == 0 && px_test_now() < end)
        usleep(1000);
    cr_assert_eq(atomic_load(&book->running), 1, "the child runs the task");
    int running = 0;
    cr_assert_eq(px_queue_concurrency(r, "api", &running), 1);
    cr_assert_eq(running, 1);
    kill(kid, SIGKILL);
    waitpid(kid, NULL, 0);
    kid = 0;
    atomic_store(&book->running, 0);
    atomic_store(&book->hold, 0);
    /* The reaper of these workers frees the dead process's place; the
     * task it ran is requeued and runs here, then the next one. */
    px_id b = submit(r, "busy", 0);
    px_workers *w = start(r, 2, 0);
    cr_assert_eq(px_join(r, a, 10, NULL, 0, NULL), 0);
    cr_assert_eq(px_join(r, b, 10, NULL, 0, NULL), 0);
    cr_assert_eq(atomic_load(&book->most), 1);
    cr_assert_eq(px_workers_stop(w), 0);
    cr_assert_eq(px_queue_concurrency(r, "api", &running), 1);
    cr_assert_eq(running, 0);
    cr_assert_eq(px_region_close(r), 0);
}

Test(concurrency, lifting_a_limit_starts_the_waiting_tasks_at_once)
{
    px_region *r = open_r();
    cr_assert_eq(px_queue_set_concurrency(r, "api", 1), 0);
    atomic_store(&book->hold, 1);
    px_workers *w = start(r, 4, 0);
    for (int i = 0; i < 4; i++)
        submit(r, "busy", 0);
    usleep(200000);
    cr_assert_eq(atomic_load(&book->running), 1, "one runs, three wait");
    double t0 = px_test_now();
    cr_assert_eq(px_queue_set_concurrency(r, "api", 0), 0);
    double end = t0 + 10;
    while (atomic_load(&book->running) < 4 && px_test_now() < end)
        usleep(1000);
    cr_assert_eq(atomic_load(&book->running), 4);
    /* Workers sleep up to a second between looks: a wake, not a look,
     * started them. */
    cr_assert_lt(px_test_now() - t0, 0.5, "took %.3f s", px_test_now() - t0);
    atomic_store(&book->hold, 0);
    wait_done(&book->done, 4, 10);
    cr_assert_eq(px_workers_stop(w), 0);
    cr_assert_eq(px_region_close(r), 0);
}

Test(concurrency, bad_limits_are_refused_and_change_nothing)
{
    px_region *r = open_r();
    cr_assert_eq(px_queue_set_concurrency(r, "api", 4), 0);
    cr_assert_eq(px_queue_set_concurrency(r, "api", -1), -EINVAL);
    cr_assert_eq(px_queue_set_concurrency(r, "api", 257), -EINVAL);
    cr_assert_eq(px_queue_set_concurrency(r, "nosuch", 2), -ENOENT);
    cr_assert_eq(px_queue_set_concurrency(NULL, "api", 2), -EINVAL);
    cr_assert_eq(px_queue_set_concurrency(r, NULL, 2), -EINVAL);
    cr_assert_eq(px_queue_concurrency(r, "nosuch", NULL), -ENOENT);
    cr_assert_eq(px_queue_concurrency(r, "api", NULL), 4, "unchanged");
    cr_assert_eq(px_queue_concurrency(r, "default", NULL), 0);
    cr_assert_eq(px_region_close(r), 0);
}

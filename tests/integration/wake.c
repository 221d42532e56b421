/*
 * Idle workers wake promptly: a task submitted while every worker sleeps
 * (on the region's work futex) must start at once, whatever else sleeps on
 * the same futex: the process pool's dispatcher threads, workers of other
 * queues, workers of other processes. A lost wake shows as a join that
 * takes the workers' idle sleep (about 1 s) instead of microseconds.
 */
#include "it.h"

static int body_echo(px_ctx *ctx, const void *args, size_t len)
{
    return px_result(ctx, args, len);
}

static const px_task_def defs[] = {
    {.name = "t_default", .fn = body_echo, .mode = PX_THREAD},
    {.name = "p_default", .fn = body_echo, .mode = PX_PROCESS},
    {.name = "t_a", .fn = body_echo, .mode = PX_THREAD, .queue = "a"},
    {.name = "t_b", .fn = body_echo, .mode = PX_THREAD, .queue = "b"},
};
#define NDEFS (sizeof defs / sizeof defs[0])

#define SAMPLES 30
#define SLOW_S 0.5 /* a lost wake costs the idle sleep, about 1 s */

/* Submits `task` to idle workers SAMPLES times (or until 3 are slow) and
 * expects each join within SLOW_S. */
static void expect_prompt(px_region *r, const char *const *tasks, int ntasks)
{
    int slow = 0, n = 0;
    double worst = 0;
    const char *worst_task = "";
    for (; n < SAMPLES && slow < 3; n++) {
        it_sleep(0.02); /* past the workers' 50 us spin: they sleep */
        const char *task = tasks[n % ntasks];
        uint64_t v = (uint64_t)n;
        px_id id;
        double t0 = it_now();
        int rc = px_submit(r, task, &v, sizeof v, NULL, &id);
        cr_assert_eq(rc, 0, "submit %s: %s", task, px_strerror(rc));
        uint64_t got = 0;
        size_t len;
        rc = px_join(r, id, 10, &got, sizeof got, &len);
        double took = it_now() - t0;
        cr_assert_eq(rc, 0, "join %s: %s", task, px_strerror(rc));
        cr_assert_eq(got, v);
        cr_assert_eq(px_forget(r, id), 0);
        if (took > worst) {
            worst = took;
            worst_task = task;
        }
        slow += took > SLOW_S;
    }
    fprintf(stderr, "%d tasks to idle workers: %d took more than %.1f s (slowest %.3f s, %s)\n", n,
            slow, SLOW_S, worst, worst_task);
    cr_assert_eq(slow, 0,
                 "%d of %d tasks submitted to idle workers waited more than %.1f s "
                 "(slowest %.3f s, %s): a lost wake",
                 slow, n, SLOW_S, worst, worst_task);
}

static px_region *setup(void)
{
    px_region *r = it_region_new(&(px_region_opts){.capacity = 256, .max_payload = 1024});
    for (size_t i = 0; i < NDEFS; i++)
        cr_assert_eq(px_task_register(r, &defs[i]), 0);
    return r;
}

Test(wake, thread_task_with_a_process_pool, .fini = it_cleanup, .timeout = 60)
{
    px_region *r = setup();
    px_workers *w;
    cr_assert_eq(px_workers_start(r, &(px_workers_opts){.threads = 1, .processes = 1}, &w), 0);
    const char *t[] = {"t_default"};
    expect_prompt(r, t, 1);
    px_workers_stop(w);
    px_region_close(r);
}

Test(wake, process_task_with_thread_workers, .fini = it_cleanup, .timeout = 60)
{
    px_region *r = setup();
    px_workers *w;
    cr_assert_eq(px_workers_start(r, &(px_workers_opts){.threads = 2, .processes = 1}, &w), 0);
    const char *t[] = {"p_default"};
    expect_prompt(r, t, 1);
    px_workers_stop(w);
    px_region_close(r);
}

Test(wake, workers_of_other_queues_and_processes, .fini = it_cleanup, .timeout = 60)
{
    px_region *r = setup();
    /* Two worker processes, one per queue, both idle on the same futex. */
    pid_t a = it_worker_spawn(it_region, defs, NDEFS,
                              &(px_workers_opts){.threads = 1, .processes = 1, .queues = "a"});
    pid_t b = it_worker_spawn(it_region, defs, NDEFS,
                              &(px_workers_opts){.threads = 1, .processes = 1, .queues = "b"});
    it_sleep(0.2);
    const char *t[] = {"t_a", "t_b"};
    expect_prompt(r, t, 2);
    it_worker_stop(a, 10);
    it_worker_stop(b, 10);
    px_region_close(r);
}

/*
 * SIGSTOP tests: a stopped worker process, producer process or pool child
 * is alive, so nothing it holds may be taken from it (no task runs twice),
 * and nobody waits for it (the others keep flowing). After SIGCONT every
 * task completes exactly once and the region empties.
 */
#include "it.h"
#include "trace.h"

/* Sleeps (rather than spins) spin_ns, so that a stopped worker's tasks sit
 * in the middle of their run. */
static int body_nap(px_ctx *ctx, const void *args, size_t len)
{
    struct targs a;
    int rc = 0;
    struct trace *t = trace_begin(ctx, args, len, &a, &rc);
    if (!t)
        return rc;
    if (a.spin_ns >= 100000)
        it_sleep((double)a.spin_ns / 1e9);
    else
        it_spin_ns(a.spin_ns);
    uint8_t out[128];
    size_t n = make_result(out, a.seq);
    if ((rc = px_result(ctx, out, n)) != 0)
        return px_fail(ctx, "px_result: %s", px_strerror(rc));
    note_done(t);
    return 0;
}

static const px_task_def nap_def = {.name = "nap", .fn = body_nap, .mode = PX_THREAD};
static const px_task_def pnap_def = {.name = "pnap", .fn = body_nap, .mode = PX_PROCESS};

static uint64_t total_done(uint64_t n)
{
    uint64_t d = 0;
    for (uint64_t i = 0; i < n; i++)
        d += done_count(&g_trace[i]);
    return d;
}

/* Seqs in [0, n) that `pid` started and has not completed. */
static int held_by(int32_t pid, uint64_t n, uint64_t *out, int cap)
{
    int k = 0;
    for (uint64_t i = 0; i < n; i++) {
        struct trace *t = &g_trace[i];
        if (atomic_load(&t->first_start_pid) == pid && done_count(t) == 0) {
            if (k < cap)
                out[k] = i;
            k++;
        }
    }
    return k;
}

/* Stops `pid` at a moment when it is running at least one task (a body
 * started by it and not completed); returns how many it holds. */
static int stop_while_holding(pid_t pid, uint64_t n, uint64_t *held, int cap)
{
    for (int tries = 0; tries < 50; tries++) {
        double until = it_now() + 2;
        while (held_by(pid, n, held, cap) == 0 && it_now() < until)
            it_sleep(0.0005);
        it_stop(pid);
        int k = held_by(pid, n, held, cap);
        if (k > 0)
            return k < cap ? k : cap;
        kill(pid, SIGCONT);
    }
    cr_assert_fail("process %d never held a task", (int)pid);
    return 0;
}

/* While `pid` is stopped: its held tasks stay RUNNING on it, unfinished
 * and started once; and the others complete at least `min_progress` tasks
 * within `secs`. */
static void check_stopped_period(px_region *r, pid_t pid, const px_id *ids, const uint64_t *held,
                                 int nheld, uint64_t n, double secs, uint64_t min_progress)
{
    uint64_t before = total_done(n);
    double t0 = it_now();
    while (it_now() - t0 < secs) {
        for (int j = 0; j < nheld; j++) {
            struct trace *t = &g_trace[held[j]];
            px_task_info info;
            cr_assert_eq(px_info(r, ids[held[j]], &info), 0);
            cr_assert_eq(info.state, PX_RUNNING,
                         "seq %llu held by stopped %d is in state %d after %.2f s",
                         (unsigned long long)held[j], (int)pid, (int)info.state, it_now() - t0);
            cr_assert_eq(info.worker_pid, pid, "seq %llu was taken from stopped %d by %d",
                         (unsigned long long)held[j], (int)pid, (int)info.worker_pid);
            cr_assert_eq(info.attempts, 1);
            cr_assert_eq(atomic_load(&t->starts), 1, "seq %llu started again",
                         (unsigned long long)held[j]);
            cr_assert_eq(done_count(t), 0);
        }
        it_sleep(0.05);
    }
    uint64_t progress = total_done(n) - before;
    fprintf(stderr, "while %d was stopped for %.1f s (holding %d tasks): %llu tasks completed\n",
            (int)pid, secs, nheld, (unsigned long long)progress);
    cr_assert_geq(progress, min_progress, "only %llu tasks completed while %d was stopped: wedged?",
                  (unsigned long long)progress, (int)pid);
}

/* Joins every task: SUCCESS, right result, run exactly once, first try. */
static void check_all_once(px_region *r, const px_id *ids, uint64_t n)
{
    for (uint64_t i = 0; i < n; i++) {
        uint8_t out[128];
        size_t len = 0;
        int rc = px_join(r, ids[i], 20, out, sizeof out, &len);
        px_task_info info;
        cr_assert_eq(px_info(r, ids[i], &info), 0);
        if (rc)
            it_dump(r, 40);
        cr_assert_eq(rc, 0, "seq %llu: %s (%s)", (unsigned long long)i, px_strerror(rc),
                     info.error);
        cr_assert(result_ok(out, len, i), "seq %llu: wrong result", (unsigned long long)i);
        struct trace *t = &g_trace[i];
        cr_assert_eq(atomic_load(&t->starts), 1, "seq %llu started %u times", (unsigned long long)i,
                     atomic_load(&t->starts));
        cr_assert_eq(done_count(t), 1, "seq %llu completed %u times", (unsigned long long)i,
                     done_count(t));
        cr_assert_eq(info.attempts, 1, "seq %llu: attempts %u", (unsigned long long)i,
                     info.attempts);
        cr_assert_eq(info.worker_pid, done_pid(t, 0));
        cr_assert_eq(px_forget(r, ids[i]), 0);
    }
}

static void check_empty(px_region *r, uint32_t processes)
{
    px_region_info info;
    bool empty = it_wait_empty(r, 5, NULL, NULL, &info);
    if (!empty || info.processes != processes)
        it_dump(r, 40);
    cr_assert(empty, "left: %u slots, %llu arena bytes, %llu queued", info.slots_used,
              (unsigned long long)info.arena_used, (unsigned long long)info.queued);
    cr_assert_eq(info.processes, processes, "attached: %u", info.processes);
}

/* ---- a stopped worker process ------------------------------------------------ */

#define S_TASKS 5000
#define S_FIRST 1500

Test(stop, worker_sigstop_keeps_its_tasks, .fini = it_cleanup, .timeout = 60)
{
    uint64_t rng = px_test_seed();
    g_ntrace = S_TASKS;
    g_trace = it_shared(sizeof *g_trace * S_TASKS);
    px_region *r = it_region_new(&(px_region_opts){.capacity = 8192, .max_payload = 4096});
    cr_assert_eq(px_task_register(r, &nap_def), 0);
    px_workers_opts wo = {.threads = 2, .processes = 1};
    pid_t a = it_worker_spawn(it_region, &nap_def, 1, &wo);
    pid_t b = it_worker_spawn(it_region, &nap_def, 1, &wo);
    px_id *ids = calloc(S_TASKS, sizeof *ids);
    px_submit_opts so = {.timeout_s = 10};
    uint64_t seq = 0;
    for (; seq < S_FIRST; seq++) {
        struct targs t;
        size_t len = make_args(&t, seq, 500000 + it_rand(&rng) % 1000000, seq % 2);
        cr_assert_eq(px_submit(r, "nap", &t, len, &so, &ids[seq]), 0);
    }
    it_sleep(it_uniform(&rng, 0.01, 0.2));
    uint64_t held[64];
    int nheld = stop_while_holding(a, S_FIRST, held, 64);
    /* More work arrives while it is stopped. */
    for (; seq < S_TASKS; seq++) {
        struct targs t;
        size_t len = make_args(&t, seq, 500000 + it_rand(&rng) % 1000000, seq % 2);
        cr_assert_eq(px_submit(r, "nap", &t, len, &so, &ids[seq]), 0);
    }
    check_stopped_period(r, a, ids, held, nheld, S_TASKS, 1.0, 300);
    cr_assert_eq(kill(a, SIGCONT), 0);
    check_all_once(r, ids, S_TASKS);
    for (int j = 0; j < nheld; j++)
        cr_assert_eq(done_pid(&g_trace[held[j]], 0), a, "a held task was finished elsewhere");
    check_empty(r, 5);
    it_worker_stop(a, 15);
    it_worker_stop(b, 15);
    check_empty(r, 1);
    px_region_close(r);
    free(ids);
}

/* ---- a stopped producer process ---------------------------------------------- */

#define PR_FIXED 3000 /* tasks of the producer that is stopped */
#define PR_MAX 200000 /* the other one submits until told to stop */
#define PR_WINDOW 128

struct progress {
    _Atomic uint64_t submitted, joined;
    _Atomic int stop;
};

/* Submits seqs [first, first + max) (until p->stop), keeping at most
 * PR_WINDOW unjoined; joins, checks and forgets each. Exit 0 if all good. */
static void producer_main(uint64_t first, uint64_t max, struct progress *p, unsigned seed)
{
    px_region *r;
    if (px_region_open(it_region, &(px_region_opts){.flags = PX_REGION_ATTACH}, &r) != 0)
        _exit(11);
    if (px_task_register(r, &(px_task_def){.name = "nap", .mode = PX_THREAD}) != 0)
        _exit(12);
    uint64_t rng = seed;
    px_id win[PR_WINDOW];
    uint64_t head = 0, n = 0;
    for (;;) {
        bool more = n < max && !atomic_load(&p->stop);
        if (!more && head == n)
            break;
        if (more && n - head < PR_WINDOW) {
            struct targs t;
            uint64_t seq = first + n;
            size_t len = make_args(&t, seq, it_rand(&rng) % 50000, seq % 2);
            int flags = (seq % 3 == 0) ? PX_SUBMIT_EPHEMERAL : 0;
            if (px_submit(r, "nap", &t, len,
                          &(px_submit_opts){.timeout_s = -1, .flags = (uint32_t)flags},
                          &win[n % PR_WINDOW]) != 0)
                _exit(13);
            atomic_store(&p->submitted, ++n);
            continue;
        }
        uint64_t seq = first + head;
        uint8_t out[128];
        size_t len;
        if (px_join(r, win[head % PR_WINDOW], 30, out, sizeof out, &len) != 0)
            _exit(14);
        if (!result_ok(out, len, seq))
            _exit(15);
        if (seq % 3 != 0 && px_forget(r, win[head % PR_WINDOW]) != 0)
            _exit(16);
        atomic_store(&p->joined, ++head);
    }
    px_region_close(r);
    _exit(0);
}

Test(stop, producer_sigstop_others_flow, .fini = it_cleanup, .timeout = 60)
{
    uint64_t rng = px_test_seed();
    g_ntrace = PR_FIXED + PR_MAX;
    g_trace = it_shared(sizeof *g_trace * g_ntrace);
    struct progress *prog = it_shared(2 * sizeof *prog);
    /* Small, so that the producers compete for slots, arena and lane room. */
    px_region *r = it_region_new(&(px_region_opts){.capacity = 512,
                                                   .max_payload = 1024,
                                                   .arena_bytes = 64u << 10,
                                                   .lanes = 32,
                                                   .lane_depth = 64});
    cr_assert_eq(px_task_register(r, &nap_def), 0);
    pid_t w =
        it_worker_spawn(it_region, &nap_def, 1, &(px_workers_opts){.threads = 2, .processes = 1});
    pid_t p[2];
    for (int j = 0; j < 2; j++) {
        unsigned s = (unsigned)it_rand(&rng);
        if ((p[j] = it_fork()) == 0)
            producer_main(j ? PR_FIXED : 0, j ? PR_MAX : PR_FIXED, &prog[j], s);
    }
    /* Stop the first at a random point of its stream. */
    uint64_t at = 100 + it_rand(&rng) % (PR_FIXED - 600);
    double until = it_now() + 20;
    while (atomic_load(&prog[0].submitted) < at && it_now() < until)
        it_sleep(0.0002);
    cr_assert_geq(atomic_load(&prog[0].submitted), at, "the first producer did not get going");
    it_stop(p[0]);
    uint64_t sub0 = atomic_load(&prog[0].submitted), join0 = atomic_load(&prog[0].joined);
    uint64_t join1 = atomic_load(&prog[1].joined);
    it_sleep(1.0);
    uint64_t flow = atomic_load(&prog[1].joined) - join1;
    fprintf(stderr, "first producer stopped after %llu submits for 1 s: the other joined %llu\n",
            (unsigned long long)sub0, (unsigned long long)flow);
    cr_assert_eq(atomic_load(&prog[0].submitted), sub0);
    cr_assert_eq(atomic_load(&prog[0].joined), join0);
    cr_assert_geq(flow, 500, "the other producer's tasks did not flow: %llu in 1 s",
                  (unsigned long long)flow);
    cr_assert_eq(kill(p[0], SIGCONT), 0);
    int st;
    cr_assert_eq(it_wait(p[0], 30, &st), 0, "the resumed producer did not finish");
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "resumed producer: 0x%x", st);
    atomic_store(&prog[1].stop, 1);
    cr_assert_eq(it_wait(p[1], 30, &st), 0, "the other producer did not finish");
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "other producer: 0x%x", st);

    uint64_t n1 = atomic_load(&prog[1].submitted);
    for (uint64_t i = 0; i < PR_FIXED + n1; i++) {
        struct trace *t = &g_trace[i];
        cr_assert_eq(done_count(t), 1, "seq %llu completed %u times", (unsigned long long)i,
                     done_count(t));
        cr_assert_eq(atomic_load(&t->starts), 1);
    }
    for (uint64_t i = PR_FIXED + n1; i < g_ntrace; i++)
        cr_assert_eq(atomic_load(&g_trace[i].starts), 0);
    check_empty(r, 3);
    it_worker_stop(w, 15);
    check_empty(r, 1);
    px_region_close(r);
}

/* ---- a stopped process-pool child ---------------------------------------------- */

#define C_TASKS 3000

Test(stop, pool_child_sigstop, .fini = it_cleanup, .timeout = 60)
{
    uint64_t rng = px_test_seed();
    g_ntrace = C_TASKS;
    g_trace = it_shared(sizeof *g_trace * C_TASKS);
    px_region *r = it_region_new(&(px_region_opts){.capacity = 8192, .max_payload = 4096});
    cr_assert_eq(px_task_register(r, &pnap_def), 0);
    px_workers *w;
    cr_assert_eq(px_workers_start(r, &(px_workers_opts){.threads = 1, .processes = 2}, &w), 0);
    px_id *ids = calloc(C_TASKS, sizeof *ids);
    for (uint64_t seq = 0; seq < C_TASKS; seq++) {
        struct targs t;
        size_t len = make_args(&t, seq, 200000 + it_rand(&rng) % 800000, seq % 2);
        cr_assert_eq(px_submit(r, "pnap", &t, len, &(px_submit_opts){.timeout_s = 10}, &ids[seq]),
                     0);
    }
    it_sleep(it_uniform(&rng, 0.01, 0.3));
    /* The pool's children are ours (px_workers_start forked them here). */
    int32_t child = 0;
    double until = it_now() + 5;
    while (!child && it_now() < until) {
        for (uint64_t i = 0; i < C_TASKS && !child; i++)
            if (atomic_load(&g_trace[i].starts) && !done_count(&g_trace[i]))
                child = atomic_load(&g_trace[i].first_start_pid);
        it_sleep(0.001);
    }
    cr_assert_gt(child, 0);
    uint64_t held[8];
    int nheld = stop_while_holding(child, C_TASKS, held, 8);
    check_stopped_period(r, child, ids, held, nheld, C_TASKS, 1.0, 150);
    cr_assert_eq(kill(child, SIGCONT), 0);
    check_all_once(r, ids, C_TASKS);
    px_workers_stats st;
    px_workers_stats_get(w, &st);
    cr_assert_eq(st.failed, 0);
    cr_assert_eq(st.requeued, 0);
    cr_assert_eq(px_workers_stop(w), 0);
    check_empty(r, 1);
    px_region_close(r);
    free(ids);
}

/*
 * Crash tests: worker processes, producer processes and process-pool
 * children killed with SIGKILL in the middle of streams of thousands of
 * tasks. Every acknowledged task must finish (exactly once, or re-run with
 * its attempt count raised when its worker died), no queue may stay wedged,
 * and slot and arena usage must return to zero.
 *
 * Task bodies record their runs in MAP_SHARED arrays created before the
 * fork, indexed by a sequence number carried in the args.
 */
#include "it.h"
#include "trace.h"

#include <pthread.h>

/* Runs: records the start, spins, sets the result, records completion. */
static int body_run(px_ctx *ctx, const void *args, size_t len)
{
    struct targs a;
    int rc = 0;
    struct trace *t = trace_begin(ctx, args, len, &a, &rc);
    if (!t)
        return rc;
    it_spin_ns(a.spin_ns);
    uint8_t out[128];
    size_t n = make_result(out, a.seq);
    if ((rc = px_result(ctx, out, n)) != 0)
        return px_fail(ctx, "px_result: %s", px_strerror(rc));
    note_done(t);
    return 0;
}

static bool in_set(const pid_t *set, int n, int32_t pid)
{
    for (int i = 0; i < n; i++)
        if (set[i] == pid)
            return true;
    return false;
}

/* ---- 1. a worker process killed mid-stream ---------------------------------- */

#define W_WINDOW 2000 /* tasks in flight at most; the producer joins the oldest */
#define W_MAX_KILLS 8

struct fin {
    int join_rc;
    int state;
    uint32_t attempts;
    int32_t worker_pid;
    bool result_ok;
};

/* One run of the test: a task stream served by two worker processes, of
 * which one (the last time: both) is killed at random points. */
struct wrun {
    const px_task_def *def;
    px_workers_opts wo;
    uint64_t tasks;
    int kills;
    uint64_t spin_min_ns, spin_max_ns;
    bool process_mode; /* bodies run in pool children: trace their parent */
};

struct wctx {
    const struct wrun *run;
    px_region *r;
    px_id *ids;
    struct fin *fin;
    pid_t workers[2];
    pid_t killed[2 * W_MAX_KILLS];
    int nkilled;
    int held_at_kills; /* tasks the killed workers held, over all kills */
    double max_requeue_s;
};

static const px_task_def run_def = {.name = "run", .fn = body_run, .mode = PX_THREAD};
static const px_task_def prun_def = {.name = "prun", .fn = body_run, .mode = PX_PROCESS};
static const px_workers_opts two_threads = {.threads = 2, .processes = 1};

/* Joins task i, records how it ended, frees its slot. */
static void collect_one(struct wctx *c, uint64_t i)
{
    uint8_t out[256];
    size_t n = 0;
    struct fin *f = &c->fin[i];
    f->join_rc = px_join(c->r, c->ids[i], 15.0, out, sizeof out, &n);
    px_task_info info;
    int rc = px_info(c->r, c->ids[i], &info);
    if (f->join_rc != 0 || rc != 0) {
        fprintf(stderr, "seq %llu: join %s, info %s, state %d, attempts %u, error '%s'\n",
                (unsigned long long)i, px_strerror(f->join_rc), px_strerror(rc), (int)info.state,
                info.attempts, info.error);
        it_dump(c->r, 40);
    }
    cr_assert_eq(f->join_rc, 0, "task seq %llu did not finish SUCCESS: %s (%s)",
                 (unsigned long long)i, px_strerror(f->join_rc), info.error);
    f->state = (int)info.state;
    f->attempts = info.attempts;
    f->worker_pid = info.worker_pid;
    f->result_ok = result_ok(out, n, i);
    cr_assert_eq(px_forget(c->r, c->ids[i]), 0);
}

/* Tasks of ids[from, to) that are RUNNING and owned by one of dead[]. */
static int held_by_dead(px_region *r, const px_id *ids, uint64_t from, uint64_t to,
                        const pid_t *dead, int nd)
{
    int held = 0;
    for (uint64_t i = from; i < to; i++) {
        uint64_t c = atomic_load(&r->slots[PX__ID_IDX(ids[i])].ctl);
        uint32_t own = PX__CTL_OWNER(c);
        if (PX__CTL_GEN(c) == PX__ID_GEN(ids[i]) &&
            (PX__CTL_STATE(c) == PX__S_RUNNING || PX__CTL_STATE(c) == PX__S_FINISHING) && own &&
            in_set(dead, nd, r->procs[own - 1].pid))
            held++;
    }
    return held;
}

/* Kills one worker (or both) and measures how long its RUNNING tasks stay
 * with it: a survivor's supervisor (or a new process's px_region_open) must
 * put them back to PENDING within about a second. */
static void kill_workers(struct wctx *c, uint64_t *rng, bool both, uint64_t head, uint64_t end)
{
    const struct wrun *run = c->run;
    int victims[2], nv = 0;
    if (both) {
        victims[nv++] = 0;
        victims[nv++] = 1;
    } else {
        victims[nv++] = (int)(it_rand(rng) % 2);
    }
    pid_t dead[2];
    int held_at_kill = 0;
    for (int v = 0; v < nv; v++) {
        dead[v] = c->workers[victims[v]];
        kill(dead[v], SIGKILL);
    }
    held_at_kill = held_by_dead(c->r, c->ids, head, end, dead, nv);
    c->held_at_kills += held_at_kill;
    for (int v = 0; v < nv; v++) {
        it_kill_wait(dead[v]);
        c->killed[c->nkilled++] = dead[v];
    }
    double t0 = it_now();
    if (both) /* no survivor: the new processes' px_region_open reaps */
        for (int v = 0; v < nv; v++)
            c->workers[victims[v]] = it_worker_spawn(it_region, run->def, 1, &run->wo);
    int held;
    while ((held = held_by_dead(c->r, c->ids, head, end, dead, nv)) > 0 && it_now() - t0 < 2.0)
        it_sleep(0.002);
    double took = it_now() - t0;
    if (took > c->max_requeue_s)
        c->max_requeue_s = took;
    fprintf(stderr, "killed %d worker(s) (pid %d%s) holding %d tasks: requeued in %.3f s\n", nv,
            (int)dead[0], both ? " and another" : "", held_at_kill, took);
    if (held)
        it_dump(c->r, 40);
    cr_assert_eq(held, 0, "%d tasks still RUNNING on a dead worker %.1f s after its death", held,
                 took);
    cr_assert_lt(took, 1.5, "requeue took %.3f s (reap interval 0.2 s)", took);
    if (!both)
        c->workers[victims[0]] = it_worker_spawn(it_region, run->def, 1, &run->wo);
}

static void worker_kill_run(const struct wrun *run)
{
    uint64_t rng = px_test_seed();
    uint64_t n = run->tasks;
    g_ntrace = n;
    g_trace = it_shared(sizeof *g_trace * n);
    g_trace_ppid = run->process_mode;
    px_region *r = it_region_new(&(px_region_opts){.capacity = 4096,
                                                   .max_payload = 4096,
                                                   .arena_bytes = 4u << 20,
                                                   .lanes = 64,
                                                   .lane_depth = 1024});
    cr_assert_eq(px_task_register(r, run->def), 0);
    struct wctx c = {
        .run = run, .r = r, .ids = calloc(n, sizeof(px_id)), .fin = calloc(n, sizeof(struct fin))};
    cr_assert(c.ids && c.fin && run->kills <= W_MAX_KILLS);
    for (int i = 0; i < 2; i++)
        c.workers[i] = it_worker_spawn(it_region, run->def, 1, &run->wo);

    /* Kills at random points, spread over the stream. */
    uint64_t kill_at[W_MAX_KILLS], part = n / (uint64_t)(run->kills + 1);
    for (int k = 0; k < run->kills; k++)
        kill_at[k] = part * (uint64_t)(k + 1) - part / 2 + it_rand(&rng) % (part / 2);
    int k = 0;
    uint64_t head = 0;
    double t_start = it_now();
    for (uint64_t seq = 0; seq < n; seq++) {
        if (k < run->kills && seq == kill_at[k]) {
            kill_workers(&c, &rng, k == run->kills - 1, head, seq);
            k++;
        }
        struct targs a;
        uint64_t spin =
            run->spin_min_ns + it_rand(&rng) % (run->spin_max_ns - run->spin_min_ns + 1);
        size_t len = make_args(&a, seq, spin, seq % 2 == 1);
        int rc =
            px_submit(r, run->def->name, &a, len, &(px_submit_opts){.timeout_s = 10}, &c.ids[seq]);
        cr_assert_eq(rc, 0, "submit seq %llu: %s", (unsigned long long)seq, px_strerror(rc));
        while (seq + 1 - head > W_WINDOW)
            collect_one(&c, head++);
    }
    while (head < n)
        collect_one(&c, head++);
    double took = it_now() - t_start;

    int interrupted = 0, reran_after_completion = 0;
    for (uint64_t i = 0; i < n; i++) {
        struct trace *t = &g_trace[i];
        struct fin *f = &c.fin[i];
        uint32_t starts = atomic_load(&t->starts), done = done_count(t);
        cr_assert_eq(f->state, PX_SUCCESS, "seq %llu state %d", (unsigned long long)i, f->state);
        cr_assert(f->result_ok, "seq %llu: wrong result", (unsigned long long)i);
        cr_assert_eq(atomic_load(&t->body_id), c.ids[i], "seq %llu ran under another id",
                     (unsigned long long)i);
        cr_assert_geq(done, 1, "seq %llu is SUCCESS but its body never completed",
                      (unsigned long long)i);
        cr_assert_geq(starts, done);
        cr_assert_geq(f->attempts, starts, "seq %llu: %u body runs but attempts %u",
                      (unsigned long long)i, starts, f->attempts);
        if (starts >= 2) {
            interrupted++;
            cr_assert(in_set(c.killed, c.nkilled, atomic_load(&t->first_start_pid)),
                      "seq %llu ran %u times though its first worker %d was not killed",
                      (unsigned long long)i, starts, (int)atomic_load(&t->first_start_pid));
            cr_assert_geq(f->attempts, 2);
        }
        if (done > 1)
            fprintf(stderr,
                    "seq %llu: %u starts, %u completions (by %d, %d), attempts %u, first run by "
                    "%d\n",
                    (unsigned long long)i, starts, done, (int)done_pid(t, 0), (int)done_pid(t, 1),
                    f->attempts, (int)atomic_load(&t->first_start_pid));
        /* A completion whose outcome was never published (the worker died
         * between the body's return and the SUCCESS store) is the only
         * allowed second completion. */
        for (uint32_t j = 0; j + 1 < done && j < 2; j++) {
            reran_after_completion++;
            cr_assert(in_set(c.killed, c.nkilled, done_pid(t, j)),
                      "seq %llu completed %u times; completion %u was by live process %d",
                      (unsigned long long)i, done, j + 1, (int)done_pid(t, j));
        }
        if (done <= 2 && !run->process_mode)
            cr_assert_eq(f->worker_pid, done_pid(t, done - 1),
                         "seq %llu: SUCCESS reported for pid %d, completed last by %d",
                         (unsigned long long)i, (int)f->worker_pid, (int)done_pid(t, done - 1));
    }
    fprintf(stderr,
            "%llu %s tasks in %.2f s, %d worker kills: %d runs interrupted and redone, %d "
            "completed again after an unpublished completion, slowest requeue %.3f s\n",
            (unsigned long long)n, run->process_mode ? "process" : "thread", took, c.nkilled,
            interrupted, reran_after_completion, c.max_requeue_s);
    cr_assert_gt(c.held_at_kills, 0, "no kill hit a worker holding tasks: the test did not test");
    /* Thread tasks die with their worker; a pool child may finish its task
     * while the killed worker exits, so process tasks are only sometimes
     * interrupted. */
    if (!run->process_mode)
        cr_assert_gt(interrupted, 0, "no kill interrupted a running task");

    for (int i = 0; i < 2; i++)
        it_worker_stop(c.workers[i], 15);
    it_reap_now(it_region);
    px_region_info info;
    bool empty = it_wait_empty(r, 5, NULL, NULL, &info);
    if (!empty || info.processes != 1)
        it_dump(r, 40);
    cr_assert(empty, "left: %u slots, %llu arena bytes, %llu queued", info.slots_used,
              (unsigned long long)info.arena_used, (unsigned long long)info.queued);
    cr_assert_eq(info.processes, 1, "dead processes were not reaped: %u attached", info.processes);
    cr_assert_leq(info.lanes_used, 1, "lanes still owned: %u", info.lanes_used);
    px_region_close(r);
    free(c.ids);
    free(c.fin);
}

Test(crash, worker_sigkill_midstream, .fini = it_cleanup, .timeout = 60)
{
    struct wrun run = {.def = &run_def,
                       .wo = two_threads,
                       .tasks = 30000,
                       .kills = 6,
                       .spin_min_ns = 20000,
                       .spin_max_ns = 200000};
    worker_kill_run(&run);
}

/* The worker's pool children die with it (PR_SET_PDEATHSIG); their tasks
 * are the worker's and are requeued like its thread tasks. (A child may
 * still finish its task during the worker's exit: the tasks are long enough
 * that most kills interrupt them.) */
Test(crash, worker_with_process_tasks_sigkill_midstream, .fini = it_cleanup, .timeout = 60)
{
    struct wrun run = {.def = &prun_def,
                       .wo = {.threads = 1, .processes = 2},
                       .tasks = 2000,
                       .kills = 4,
                       .spin_min_ns = 1000000,
                       .spin_max_ns = 3000000,
                       .process_mode = true};
    worker_kill_run(&run);
}

/* ---- 2. producer processes killed while submitting ---------------------------- */

#define P_PRODUCERS 40
#define P_PER 5000
#define P_TASKS (P_PRODUCERS * P_PER)

/* How a seq is submitted: plain (joined, then forgotten), detached, or
 * ephemeral; in blocks of 8 so that px_submit_many batches share flags. */
static int seq_class(uint64_t seq)
{
    return (int)((seq >> 3) % 3);
}

static uint32_t class_flags(int cls)
{
    return cls == 1 ? PX_SUBMIT_DETACHED : cls == 2 ? PX_SUBMIT_EPHEMERAL : 0;
}

static int body_quick(px_ctx *ctx, const void *args, size_t len)
{
    struct targs a;
    int rc = 0;
    struct trace *t = trace_begin(ctx, args, len, &a, &rc);
    if (!t)
        return rc;
    it_spin_ns(a.spin_ns);
    uint64_t v = a.seq * 7 + 1;
    px_result(ctx, &v, sizeof v);
    note_done(t);
    return 0;
}

static const px_task_def quick_def = {.name = "quick", .fn = body_quick, .mode = PX_THREAD};

/* A producer process: submits its range, single or batched, and writes each
 * acknowledged id to the shared trace. Killed at a random moment. */
static void producer_main(uint64_t first, uint64_t count, unsigned seed)
{
    px_region *r;
    if (px_region_open(it_region, &(px_region_opts){.flags = PX_REGION_ATTACH}, &r) != 0)
        _exit(11);
    px_task_def def = {.name = "quick", .mode = PX_THREAD};
    if (px_task_register(r, &def) != 0)
        _exit(12);
    uint64_t rng = seed;
    for (uint64_t b = first; b < first + count; b += 8) {
        struct targs a[8];
        px_job jobs[8];
        px_id ids[8];
        int cls = seq_class(b);
        px_submit_opts o = {.timeout_s = -1, .flags = class_flags(cls)};
        for (int j = 0; j < 8; j++) {
            size_t len = make_args(&a[j], b + (uint64_t)j, it_rand(&rng) % 3000, true);
            jobs[j] = (px_job){"quick", &a[j], len};
        }
        if ((b >> 3) % 2) {
            for (int done = 0; done < 8;) {
                int k = px_submit_many(r, jobs + done, (size_t)(8 - done), &o, ids + done);
                if (k <= 0)
                    _exit(13);
                for (int j = done; j < done + k; j++)
                    atomic_store(&g_trace[b + (uint64_t)j].acked_id, ids[j]);
                done += k;
            }
        } else {
            for (int j = 0; j < 8; j++) {
                if (px_submit(r, "quick", jobs[j].args, jobs[j].len, &o, &ids[j]) != 0)
                    _exit(14);
                atomic_store(&g_trace[b + (uint64_t)j].acked_id, ids[j]);
            }
        }
        /* Ephemeral results are taken by whoever joins first: this producer
         * (maybe killed half-way through, leaving CONSUMING) or the test. */
        for (int j = 0; cls == 2 && j < 8; j++) {
            uint64_t v;
            px_join(r, ids[j], 0.01, &v, sizeof v, NULL);
        }
    }
    px_region_close(r);
    _exit(0);
}

/* The test's collector: frees finished tasks (forget, or an ephemeral join)
 * as their bodies report their ids, and checks their outcome. */
struct collector {
    px_region *r;
    uint8_t *collected;
    _Atomic int stop;
    _Atomic uint64_t bad, ncollected;
    char first_bad[256];
};

static void collect_pass(struct collector *c)
{
    for (uint64_t seq = 0; seq < P_TASKS; seq++) {
        if (c->collected[seq])
            continue;
        px_id id = atomic_load(&g_trace[seq].body_id);
        if (!id)
            continue;
        int cls = seq_class(seq), rc;
        uint64_t v = 0;
        size_t n = 0;
        if (cls == 1) {
            rc = 0; /* detached: its slot frees itself */
        } else if (cls == 2) {
            rc = px_join(c->r, id, 0, &v, sizeof v, &n);
            if (rc == -ETIMEDOUT)
                continue;
            if (rc == -ENOENT) /* its producer took the result */
                rc = 0, n = 8, v = seq * 7 + 1;
            if (rc == 0 && (n != 8 || v != seq * 7 + 1))
                rc = -EPROTO;
        } else {
            px_task_info info;
            rc = px_info(c->r, id, &info);
            if (rc == 0 && info.state != PX_SUCCESS && info.state != PX_FAILED)
                continue;
            if (rc == 0 && info.state != PX_SUCCESS)
                rc = PX_ETASKFAILED;
            if (rc == 0)
                rc = px_forget(c->r, id);
        }
        if (rc != 0 && atomic_fetch_add(&c->bad, 1) == 0)
            snprintf(c->first_bad, sizeof c->first_bad, "seq %llu (class %d): %s",
                     (unsigned long long)seq, cls, px_strerror(rc));
        c->collected[seq] = 1;
        atomic_fetch_add(&c->ncollected, 1);
    }
}

static void *collector_main(void *p)
{
    struct collector *c = p;
    while (!atomic_load(&c->stop)) {
        collect_pass(c);
        it_sleep(0.001);
    }
    return NULL;
}

static void collect_cb(void *p)
{
    collect_pass(p);
}

Test(crash, producer_sigkill_while_submitting, .fini = it_cleanup, .timeout = 60)
{
    unsigned seed = px_test_seed();
    uint64_t rng = seed;
    g_ntrace = P_TASKS;
    g_trace = it_shared(sizeof *g_trace * P_TASKS);
    /* Small: producers often wait for a slot, an arena run or lane room. */
    px_region *r = it_region_new(&(px_region_opts){.capacity = 1024,
                                                   .max_payload = 1024,
                                                   .arena_bytes = 128u << 10,
                                                   .lanes = 64,
                                                   .lane_depth = 256});
    cr_assert_eq(px_task_register(r, &quick_def), 0);
    pid_t worker = it_worker_spawn(it_region, &quick_def, 1, &two_threads);
    struct collector col = {.r = r, .collected = calloc(P_TASKS, 1)};
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, collector_main, &col), 0);

    int killed = 0, finished = 0;
    double t_start = it_now();
    for (int p = 0; p < P_PRODUCERS; p += 2) {
        pid_t pp[2];
        for (int j = 0; j < 2; j++) {
            unsigned s = (unsigned)it_rand(&rng);
            if ((pp[j] = it_fork()) == 0)
                producer_main((uint64_t)(p + j) * P_PER, P_PER, s);
        }
        for (int j = 0; j < 2; j++) {
            it_sleep(it_uniform(&rng, 0.001, 0.025));
            int st;
            if (it_wait(pp[j], 0, &st) == 0) {
                cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "producer exited with 0x%x", st);
                finished++;
            } else {
                it_kill_wait(pp[j]);
                killed++;
            }
        }
    }
    /* Every acknowledged task must run; then everything must be freed. */
    double until = it_now() + 15;
    uint64_t missing = 0, missing_seq = 0;
    do {
        missing = 0;
        for (uint64_t seq = 0; seq < P_TASKS; seq++) {
            if (atomic_load(&g_trace[seq].acked_id) && done_count(&g_trace[seq]) == 0) {
                if (!missing++)
                    missing_seq = seq;
            }
        }
        if (missing)
            it_sleep(0.01);
    } while (missing && it_now() < until);
    if (missing) {
        px_task_info info = {0};
        int rc = px_info(r, atomic_load(&g_trace[missing_seq].acked_id), &info);
        fprintf(stderr, "seq %llu: px_info %s, state %d attempts %u\n",
                (unsigned long long)missing_seq, px_strerror(rc), (int)info.state, info.attempts);
        it_dump(r, 40);
    }
    cr_assert_eq(missing, 0, "%llu acknowledged tasks never ran (first: seq %llu)",
                 (unsigned long long)missing, (unsigned long long)missing_seq);
    atomic_store(&col.stop, 1);
    pthread_join(th, NULL);
    it_reap_now(it_region);
    px_region_info info;
    bool empty = it_wait_empty(r, 10, collect_cb, &col, &info);
    if (!empty)
        it_dump(r, 40);
    cr_assert(empty, "left: %u slots, %llu arena bytes, %llu queued", info.slots_used,
              (unsigned long long)info.arena_used, (unsigned long long)info.queued);
    cr_assert_eq(atomic_load(&col.bad), 0, "%llu bad outcomes, first %s",
                 (unsigned long long)atomic_load(&col.bad), col.first_bad);

    uint64_t acked = 0, unacked_ran = 0;
    for (uint64_t seq = 0; seq < P_TASKS; seq++) {
        struct trace *t = &g_trace[seq];
        uint64_t ack = atomic_load(&t->acked_id);
        uint32_t done = done_count(t);
        cr_assert_leq(done, 1, "seq %llu ran %u times with no worker killed",
                      (unsigned long long)seq, done);
        cr_assert_eq(atomic_load(&t->starts), done, "seq %llu: a run did not complete",
                     (unsigned long long)seq);
        if (ack) {
            acked++;
            cr_assert_eq(atomic_load(&t->body_id), ack, "seq %llu ran under another id",
                         (unsigned long long)seq);
        } else if (done) {
            unacked_ran++;
        }
    }
    fprintf(stderr,
            "%d producers (%d killed, %d finished) in %.2f s: %llu tasks acknowledged and run, "
            "%llu more ran though their producer died before its acknowledgement\n",
            P_PRODUCERS, killed, finished, it_now() - t_start, (unsigned long long)acked,
            (unsigned long long)unacked_ran);
    cr_assert_gt(killed, 0);
    cr_assert_eq(info.processes, 3, "attached: %u (test, worker, its pool child)", info.processes);
    it_worker_stop(worker, 15);
    px_region_info_get(r, &info);
    cr_assert_eq(info.processes, 1);
    px_region_close(r);
    free(col.collected);
}

/* ---- 3. a process-pool child killed from outside -------------------------------- */

static _Atomic int32_t *g_child_pid; /* the pool child that ran a body last */

static int body_psleep(px_ctx *ctx, const void *args, size_t len)
{
    (void)args, (void)len;
    atomic_store(g_child_pid, (int32_t)getpid());
    double until = it_now() + 10;
    while (px_should_continue(ctx) && it_now() < until)
        it_sleep(0.002);
    return px_fail(ctx, "psleep was not killed");
}

static int body_pquick(px_ctx *ctx, const void *args, size_t len)
{
    atomic_store(g_child_pid, (int32_t)getpid());
    return body_quick(ctx, args, len);
}

static const px_task_def psleep_def = {.name = "psleep", .fn = body_psleep, .mode = PX_PROCESS};
static const px_task_def pquick_def = {.name = "pquick", .fn = body_pquick, .mode = PX_PROCESS};

static px_region *pool_setup(px_workers **w, uint64_t ntrace)
{
    g_ntrace = ntrace;
    g_trace = it_shared(sizeof *g_trace * ntrace);
    g_child_pid = it_shared(sizeof *g_child_pid);
    px_region *r = it_region_new(&(px_region_opts){.capacity = 8192, .max_payload = 4096});
    cr_assert_eq(px_task_register(r, &psleep_def), 0);
    cr_assert_eq(px_task_register(r, &pquick_def), 0);
    cr_assert_eq(px_workers_start(r, &(px_workers_opts){.threads = 1, .processes = 1}, w), 0);
    return r;
}

static void pool_teardown(px_region *r, px_workers *w)
{
    cr_assert_eq(px_workers_stop(w), 0);
    px_region_info info;
    bool empty = it_wait_empty(r, 5, NULL, NULL, &info);
    if (!empty)
        it_dump(r, 40);
    cr_assert(empty, "left: %u slots, %llu arena bytes, %llu queued", info.slots_used,
              (unsigned long long)info.arena_used, (unsigned long long)info.queued);
    cr_assert_eq(px_region_close(r), 0);
}

/* Submits n pquick tasks from first; they must all succeed, on a child
 * other than `not_pid`. */
static void pquick_batch(px_region *r, uint64_t first, int n, int32_t not_pid)
{
    px_id ids[64];
    cr_assert_leq(n, 64);
    for (int i = 0; i < n; i++) {
        struct targs a;
        size_t len = make_args(&a, first + (uint64_t)i, 0, i % 2);
        cr_assert_eq(px_submit(r, "pquick", &a, len, &(px_submit_opts){.timeout_s = 5}, &ids[i]),
                     0);
    }
    for (int i = 0; i < n; i++) {
        int rc = px_join(r, ids[i], 10, NULL, 0, NULL);
        px_task_info info;
        px_info(r, ids[i], &info);
        cr_assert_eq(rc, 0, "process task after the kill: %s (%s)", px_strerror(rc), info.error);
        cr_assert_neq(info.worker_pid, not_pid, "ran on the killed child");
        cr_assert_eq(done_count(&g_trace[first + (uint64_t)i]), 1);
        px_forget(r, ids[i]);
    }
}

Test(crash, process_child_sigkill_long_task, .fini = it_cleanup, .timeout = 60)
{
    px_workers *w;
    px_region *r = pool_setup(&w, 1000);
    px_id id;
    cr_assert_eq(px_submit(r, "psleep", NULL, 0, NULL, &id), 0);
    double until = it_now() + 5;
    while ((atomic_load(g_child_pid) == 0 || px_status(r, id) != PX_RUNNING) && it_now() < until)
        it_sleep(0.001);
    int32_t child = atomic_load(g_child_pid);
    cr_assert_gt(child, 0, "the long task never started");
    cr_assert_eq(kill(child, SIGKILL), 0);
    double t0 = it_now();
    int rc = px_join(r, id, 5, NULL, 0, NULL);
    double took = it_now() - t0;
    px_task_info info;
    cr_assert_eq(px_info(r, id, &info), 0);
    cr_assert_eq(rc, PX_ETASKFAILED, "join: %s", px_strerror(rc));
    cr_assert_eq(info.state, PX_FAILED);
    cr_assert(strstr(info.error, "killed by signal 9"), "error: '%s'", info.error);
    cr_assert_eq(info.attempts, 1);
    cr_assert_lt(took, 2.0, "FAILED %.2f s after the kill", took);
    cr_assert_eq(px_forget(r, id), 0);

    /* The pool replaced the child: later process tasks succeed. */
    pquick_batch(r, 0, 50, child);
    px_workers_stats st;
    px_workers_stats_get(w, &st);
    cr_assert_eq(st.failed, 1);
    cr_assert_eq(st.processes, 1);
    pool_teardown(r, w);
}

Test(crash, process_child_sigkill_while_idle, .fini = it_cleanup, .timeout = 60)
{
    px_workers *w;
    px_region *r = pool_setup(&w, 1000);
    pquick_batch(r, 0, 4, 0);
    int32_t child = atomic_load(g_child_pid);
    cr_assert_gt(child, 0);
    /* Killed between two tasks: nothing ran in it, so nothing may fail. */
    cr_assert_eq(kill(child, SIGKILL), 0);
    it_sleep(0.3);
    pquick_batch(r, 4, 20, child);
    pool_teardown(r, w);
}

#define C_TASKS 4000
#define C_KILLS 6

Test(crash, process_child_sigkill_midstream, .fini = it_cleanup, .timeout = 60)
{
    uint64_t rng = px_test_seed();
    px_workers *w;
    px_region *r = pool_setup(&w, C_TASKS);
    px_id *ids = calloc(C_TASKS, sizeof *ids);
    uint64_t kill_at[C_KILLS];
    for (int k = 0; k < C_KILLS; k++)
        kill_at[k] = (uint64_t)(C_TASKS / C_KILLS) * (uint64_t)k + 100 +
                     it_rand(&rng) % (C_TASKS / C_KILLS - 200);
    int k = 0, kills = 0;
    int32_t last_killed = 0;
    uint64_t head = 0;
    for (uint64_t seq = 0; seq < C_TASKS; seq++) {
        if (k < C_KILLS && seq == kill_at[k]) {
            k++;
            it_sleep(it_uniform(&rng, 0, 0.01));
            int32_t child = atomic_load(g_child_pid);
            if (child > 0 && child != last_killed && kill(child, SIGKILL) == 0) {
                last_killed = child;
                kills++;
            }
        }
        struct targs a;
        size_t len = make_args(&a, seq, it_rand(&rng) % 100000, seq % 2);
        cr_assert_eq(px_submit(r, "pquick", &a, len, &(px_submit_opts){.timeout_s = 10}, &ids[seq]),
                     0);
        while (seq + 1 - head > 200) {
            int rc = px_join(r, ids[head], 10, NULL, 0, NULL);
            cr_assert(rc == 0 || rc == PX_ETASKFAILED, "seq %llu: %s", (unsigned long long)head,
                      px_strerror(rc));
            head++;
        }
    }
    int failed = 0, failed_unstarted = 0;
    for (uint64_t i = 0; i < C_TASKS; i++) {
        int rc = px_join(r, ids[i], 10, NULL, 0, NULL);
        px_task_info info;
        cr_assert_eq(px_info(r, ids[i], &info), 0);
        struct trace *t = &g_trace[i];
        cr_assert_leq(done_count(t), 1, "seq %llu ran twice", (unsigned long long)i);
        cr_assert_eq(info.attempts, 1, "process tasks are not retried");
        if (rc == 0) {
            cr_assert_eq(done_count(t), 1, "seq %llu SUCCESS without a completed run",
                         (unsigned long long)i);
        } else {
            cr_assert_eq(rc, PX_ETASKFAILED, "seq %llu: %s", (unsigned long long)i,
                         px_strerror(rc));
            cr_assert(strstr(info.error, "killed by signal 9"), "seq %llu: error '%s'",
                      (unsigned long long)i, info.error);
            failed++;
            failed_unstarted += atomic_load(&t->starts) == 0;
        }
        cr_assert_eq(px_forget(r, ids[i]), 0);
    }
    fprintf(stderr,
            "%d process tasks, %d child kills: %d tasks FAILED (%d of them never started)\n",
            C_TASKS, kills, failed, failed_unstarted);
    cr_assert_gt(kills, 0);
    cr_assert_leq(failed, kills, "more tasks failed than children were killed");
    free(ids);
    pool_teardown(r, w);
}

/* px_workers_start() called from a thread that then exits (an init thread):
 * the pool's children must not die with that thread. PR_SET_PDEATHSIG fires
 * when the thread that forked the child exits, not the process. */
struct starter {
    px_region *r;
    px_workers *w;
    int rc;
};

static void *start_workers(void *p)
{
    struct starter *s = p;
    s->rc = px_workers_start(s->r, &(px_workers_opts){.threads = 1, .processes = 1}, &s->w);
    it_sleep(0.1); /* some more initialisation; the child is set up by now */
    return NULL;
}

Test(crash, pool_survives_exit_of_starting_thread, .fini = it_cleanup, .timeout = 60)
{
    g_ntrace = 100;
    g_trace = it_shared(sizeof *g_trace * 100);
    g_child_pid = it_shared(sizeof *g_child_pid);
    px_region *r = it_region_new(&(px_region_opts){.capacity = 256, .max_payload = 4096});
    cr_assert_eq(px_task_register(r, &pquick_def), 0);
    struct starter s = {.r = r};
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, start_workers, &s), 0);
    pthread_join(th, NULL);
    cr_assert_eq(s.rc, 0);
    it_sleep(0.2);
    pquick_batch(r, 0, 10, 0);
    px_workers_stats st;
    px_workers_stats_get(s.w, &st);
    cr_assert_eq(st.failed, 0);
    pool_teardown(r, s.w);
}

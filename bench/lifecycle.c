/*
 * px_bench's lifecycle group: what delayed tasks and cancellation cost.
 *
 * lifecycle_plain_submit, lifecycle_at_now_submit, lifecycle_delay1ms_submit,
 * lifecycle_key_submit, lifecycle_priority_submit, lifecycle_observed_submit
 *                Rounds (5) of six measurements, interleaved so that each
 *                round sees the same machine load, each like noop_submit:
 *                n bench_noop tasks (1M; --quick 100k) submitted one by one
 *                with px_submit from this thread, PX_SUBMIT_DETACHED, after
 *                a warm-up of n/10 submitted the same way, run by one
 *                in-process worker thread (threads = 1, processes = 1,
 *                default spin) started for the round; the clock stops when
 *                the task bodies have counted n runs.
 *                - plain: no delay (ratio 1.0).
 *                - at_now: at_unix_ns = CLOCK_REALTIME read once just before
 *                  the loop, so never in the future: due_of() (submit.c)
 *                  then reads the clock, finds no due time and takes the
 *                  plain path. Its ratio to plain is the cost of the check,
 *                  which is what a plain submit pays for the feature.
 *                - delay1ms: delay_s = 0.001: every task goes through
 *                  SCHEDULED, the timer heap and the timer thread. Its
 *                  tasks/s includes the last task's 1 ms delay; the note
 *                  gives the submit loop's own rate.
 *                ops/s is the median over the rounds; ratio_to_baseline is
 *                the median of the per-round ratios to plain.
 *
 *                - key: a distinct px_submit_opts.key each.
 *                - observed: plain, while another thread reads what one
 *                  frame of pollux top reads (px_stats, px_region_procs,
 *                  px_info of every task) 20 times a second, ten times
 *                  top's rate: what watching costs the workers.
 *                - priority: HIGH and NORMAL in turn, in a region of its
 *                  own each round (two levels in use make every take walk
 *                  the lanes level by level, which would stay for the
 *                  other kinds).
 *
 * lifecycle_timers_insert, lifecycle_timers_lateness
 *                A region with capacity the next power of two >= n (1M;
 *                --quick 100k; --timers N), 16 lanes of 65536 entries (room
 *                for what the timer thread fires while the worker is busy),
 *                one worker thread (processes = 1, default spin). This
 *                thread submits n detached tasks, each with at_unix_ns =
 *                due = t0 + 1.5 s + a uniformly random offset in [0, 3 s)
 *                (t0: CLOCK_REALTIME before the first submit), and the due
 *                time and the task's index in its 16 bytes of args, so that
 *                the heap gets random inserts and holds up to n timers.
 *                insert: n / the time of the submit loop. lateness: every
 *                task's body stores CLOCK_REALTIME at its start minus its
 *                due time in an array of n samples, at its index; all n are
 *                reported (ops/s: n / (last body start - first due time)),
 *                and the note has p50/p90/p99/p99.9/max in us. A task that
 *                runs twice or never fails the run; a body that starts
 *                before its due time is warned about (counted as 0). If
 *                the submit loop ends after the first due time, tasks due
 *                before its end could not be on time:
 *                lifecycle_timers_lateness_after_insert then reports those
 *                due after it only, and both notes say so.
 *
 * lifecycle_cancel
 *                A cancellable thread task whose body checks
 *                px_should_continue() every 10 us (busy-waiting between
 *                checks), on one worker thread (threads = 1, processes = 1,
 *                default spin). This thread submits it (ephemeral), waits
 *                until its body runs and then a random 0-50 us more (so
 *                that the request lands at a random phase of the body's
 *                checks), then times px_cancel + px_join, which
 *                must return -ECANCELED: the time from the request to
 *                CANCELLED as the canceller sees it. Repeated 2000 times
 *                (--quick 200) after 100 unrecorded; every sample is kept.
 *                ops/s: cancels measured / the loop's time.
 */
#define _GNU_SOURCE
#include "bench_tasks.h"
#include "px_bench.h"

#include <pollux.h>

#include <ck_pr.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define LC_ROUNDS 5
#define DRAIN_TIMEOUT_S 60.0
#define LEAD_NS 1500000000ull          /* first due time after t0 */
#define WINDOW_NS 3000000000ull        /* due times spread over this */
#define FIRE_TIMEOUT_NS 60000000000ull /* after the last due time */
#define POLL_NS 10000ull               /* the cancel task's check interval */
#define PHASE_NS 50000ull              /* cancel 0-50 us after the body started */
#define CANCEL_WARM 100
#define SPIN_LIMIT_NS 10000000000ull /* a cancel task that is never cancelled */
#define WAIT_RUN_NS 10000000000ull

static const char *const TIMER_TASK = "lc_timer";
static const char *const SPIN_TASK = "lc_spin";

/* ---- Cleanup ---------------------------------------------------------------- */

static char live_shm[96]; /* "/dev/shm/<name>" */
static volatile sig_atomic_t live_shm_set;

/* Async-signal-safe. */
void lifecycle_cleanup(void)
{
    if (live_shm_set) {
        unlink(live_shm);
        live_shm_set = 0;
    }
}

static px_region *lregion_create(char *name, size_t cap, const px_region_opts *o)
{
    static int seq;
    snprintf(name, cap, "/px-bench-%d-l%d", (int)getpid(), seq++);
    snprintf(live_shm, sizeof live_shm, "/dev/shm%s", name);
    live_shm_set = 1;
    px_region *r;
    int rc = px_region_open(name, o, &r);
    if (rc)
        die(name, rc);
    rc = px_task_register_all(r); /* bench_noop */
    if (rc < 0)
        die("px_task_register_all", rc);
    return r;
}

static void lregion_remove(px_region *r, const char *name)
{
    int rc = px_region_close(r);
    if (rc)
        die("px_region_close", rc);
    if ((rc = px_region_destroy(name)) != 0)
        die("px_region_destroy", rc);
    live_shm_set = 0;
}

/* ---- Small helpers ----------------------------------------------------------- */

static uint64_t real_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void sleep_ns(uint64_t ns)
{
    struct timespec ts = {.tv_sec = (time_t)(ns / 1000000000ull),
                          .tv_nsec = (long)(ns % 1000000000ull)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* Waits until the task bodies have counted `target` runs. Yields: on a
 * small machine the worker and the timer thread need the CPUs. */
static void drain(uint64_t target)
{
    uint64_t deadline = bench_now_ns() + (uint64_t)(DRAIN_TIMEOUT_S * 1e9);
    while (atomic_load_explicit(&bench_noop_count, memory_order_relaxed) < target) {
        if (bench_now_ns() > deadline)
            fail("only %llu of %llu detached no-op tasks ran within %.0f s",
                 (unsigned long long)atomic_load(&bench_noop_count), (unsigned long long)target,
                 DRAIN_TIMEOUT_S);
        sched_yield();
    }
}

/* ---- Delayed submits on the no-op path --------------------------------------- */

enum submit_kind { PLAIN, AT_NOW, DELAY_1MS, KEYED, PRIORITY, OBSERVED, NKINDS };

static const char *const kind_row[NKINDS] = {
    "lifecycle_plain_submit", "lifecycle_at_now_submit",   "lifecycle_delay1ms_submit",
    "lifecycle_key_submit",   "lifecycle_priority_submit", "lifecycle_observed_submit"};

/* ---- An observer, as pollux top is -------------------------------------------- */

struct observer {
    px_region *r;
    _Atomic int stop;
    uint64_t frames;
    pthread_t thread;
};

/* Reads what one frame of pollux top reads (px_stats, px_region_procs,
 * every task's px_info), 20 times a second: ten times top's rate. */
static void *observe(void *p)
{
    struct observer *o = p;
    static px_region_stats st;
    static px_proc_info procs[64];
    static px_id ids[512];
    while (!atomic_load(&o->stop)) {
        px_stats(o->r, &st);
        px_region_procs(o->r, procs, 64);
        uint32_t cursor = 0;
        int n;
        px_task_info ti;
        while ((n = px_list(o->r, &(px_list_opts){0}, ids, 512, &cursor)) > 0)
            for (int i = 0; i < n; i++)
                px_info(o->r, ids[i], &ti);
        o->frames++;
        sleep_ns(50000000);
    }
    return NULL;
}

/* Distinct keys, made before the clock starts: keys[i] for the i-th submit
 * of a round (warm-up included). */
static char **keys_made;
static uint64_t keys_n;

static void make_keys(uint64_t n)
{
    keys_made = malloc(n * sizeof *keys_made);
    char *text = malloc(n * 24);
    if (!keys_made || !text)
        die("malloc", -ENOMEM);
    for (uint64_t i = 0; i < n; i++) {
        keys_made[i] = text + i * 24;
        snprintf(keys_made[i], 24, "o%llu", (unsigned long long)(i % 1000000000000000ull));
    }
    keys_n = n;
}

static void free_keys(void)
{
    if (keys_made)
        free(keys_made[0]);
    free(keys_made);
    keys_made = NULL;
}

/* Submits n no-op tasks; for KEYED, each with the next distinct key from
 * *next; for PRIORITY, HIGH and NORMAL in turn. */
static void submit_n(px_region *r, uint64_t n, const px_submit_opts *o, enum submit_kind kind,
                     uint64_t *next)
{
    px_submit_opts k = *o;
    for (uint64_t i = 0; i < n; i++) {
        if (kind == KEYED)
            k.key = keys_made[(*next)++ % keys_n];
        if (kind == PRIORITY)
            k.priority = i & 1 ? PX_PRIORITY_HIGH : PX_PRIORITY_NORMAL;
        int rc = px_submit(r, BENCH_NOOP, NULL, 0, &k, NULL);
        if (rc)
            die("px_submit", rc);
    }
}

/* n tasks of `kind` after a warm-up of n/10, on fresh workers; returns
 * tasks/s until the bodies counted them all, and in *sub_rate the submit
 * loop's own rate. */
static double kind_round(px_region *r, enum submit_kind kind, uint64_t n, double *sub_rate)
{
    px_submit_opts o = {.timeout_s = -1, .flags = PX_SUBMIT_DETACHED};
    if (kind == DELAY_1MS)
        o.delay_s = 0.001;
    px_workers *w = bench_one_worker(r);
    uint64_t warm = n / 10;
    atomic_store(&bench_noop_count, 0);
    struct observer obs = {.r = r};
    if (kind == OBSERVED && pthread_create(&obs.thread, NULL, observe, &obs) != 0)
        die("pthread_create", -EAGAIN);
    if (kind == AT_NOW)
        o.at_unix_ns = real_ns();
    uint64_t next = 0;
    submit_n(r, warm, &o, kind, &next);
    drain(warm);
    if (kind == AT_NOW)
        o.at_unix_ns = real_ns(); /* never in the future from here on */
    uint64_t t0 = bench_now_ns();
    submit_n(r, n, &o, kind, &next);
    uint64_t ts = bench_now_ns();
    drain(warm + n);
    uint64_t t1 = bench_now_ns();
    if (kind == OBSERVED) {
        atomic_store(&obs.stop, 1);
        pthread_join(obs.thread, NULL);
    }
    bench_workers_stop(w);
    *sub_rate = (double)n * 1e9 / (double)(ts - t0);
    return (double)n * 1e9 / (double)(t1 - t0);
}

static void bench_delayed_submit(const struct config *c)
{
    char name[64];
    px_region *r = lregion_create(name, sizeof name, &(px_region_opts){.flags = PX_REGION_CREATE});
    double ops[NKINDS][LC_ROUNDS], sub[NKINDS][LC_ROUNDS], ratio[NKINDS][LC_ROUNDS];
    make_keys(c->noop_n + c->noop_n / 10);
    for (int i = 0; i < LC_ROUNDS; i++) {
        for (int k = 0; k < NKINDS; k++) {
            /* Two levels in use change how every take walks the lanes:
             * PRIORITY gets a region of its own each round, so that the
             * others' stays on one level. */
            char pname[64];
            px_region *pr = k == PRIORITY
                                ? lregion_create(pname, sizeof pname,
                                                 &(px_region_opts){.flags = PX_REGION_CREATE})
                                : r;
            ops[k][i] = kind_round(pr, (enum submit_kind)k, c->noop_n, &sub[k][i]);
            if (pr != r) {
                lregion_remove(pr, pname);
                snprintf(live_shm, sizeof live_shm, "/dev/shm%s", name);
                live_shm_set = 1; /* r's again, for the cleanup */
            }
        }
        for (int k = 0; k < NKINDS; k++)
            ratio[k][i] = ops[k][i] / ops[PLAIN][i];
    }
    free_keys();
    lregion_remove(r, name);
    static const char *const what[NKINDS] = {
        "no delay",
        "at_unix_ns = a moment already past (the plain path behind the check)",
        "delay_s = 0.001 (timer heap)",
        "a distinct key each (the key index)",
        "priority HIGH and NORMAL in turn (two levels: takes walk the lanes level by level)",
        "no delay, while a thread reads what a pollux top frame reads 20 times a second"};
    for (int k = 0; k < NKINDS; k++) {
        struct result *res =
            add_result(kind_row[k], c->noop_n * LC_ROUNDS, median(ops[k], LC_ROUNDS));
        double sub_med = median(sub[k], LC_ROUNDS);
        res->ratio = median(ratio[k], LC_ROUNDS); /* sorts ratio[k] */
        snprintf(res->note, sizeof res->note,
                 "1 thread, detached px_submit, %s; submit loop alone %.0f/s; per-round ratios "
                 "%.3f-%.3f",
                 what[k], sub_med, ratio[k][0], ratio[k][LC_ROUNDS - 1]);
    }
}

/* ---- One million timers -------------------------------------------------------- */

struct timer_args {
    uint64_t due; /* CLOCK_REALTIME ns */
    uint64_t idx;
};

static _Atomic int64_t *lc_late; /* body start - due, per task; INT64_MIN: not run */
static uint64_t lc_n;
static _Atomic uint64_t lc_fired, lc_dup, lc_bad;
static _Atomic uint64_t lc_last_start; /* the latest body start, CLOCK_REALTIME ns */

static int timer_body(px_ctx *ctx, const void *args, size_t len)
{
    (void)ctx;
    uint64_t now = real_ns();
    struct timer_args a;
    if (len != sizeof a) {
        atomic_fetch_add(&lc_bad, 1);
        return 0;
    }
    memcpy(&a, args, sizeof a);
    if (a.idx >= lc_n) {
        atomic_fetch_add(&lc_bad, 1);
        return 0;
    }
    int64_t late = (int64_t)(now - a.due);
    if (atomic_exchange_explicit(&lc_late[a.idx], late, memory_order_relaxed) != INT64_MIN)
        atomic_fetch_add(&lc_dup, 1);
    uint64_t seen = atomic_load_explicit(&lc_last_start, memory_order_relaxed);
    while (now > seen &&
           !atomic_compare_exchange_weak_explicit(&lc_last_start, &seen, now, memory_order_relaxed,
                                                  memory_order_relaxed))
        ;
    atomic_fetch_add_explicit(&lc_fired, 1, memory_order_release);
    return 0;
}

/* xorshift64*: the offsets need to be spread, not secret. */
static uint64_t rng_next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1Dull;
}

/* Adds a lateness row of samples[0..n) (sorted here) with its note. */
static void add_lateness_row(const char *row, uint64_t *s, size_t n, double rate, const char *tail)
{
    struct result *res = add_result(row, n, rate);
    set_latency(res, s, n);
    size_t over = 0; /* s is sorted now */
    while (over < n && s[n - 1 - over] > 1000000)
        over++;
    snprintf(res->note, sizeof res->note,
             "fire lateness us: p50 %.1f p90 %.1f p99 %.1f p99.9 %.1f max %.1f; %zu over 1 ms; "
             "%s",
             (double)percentile(s, n, 0.50) / 1e3, (double)percentile(s, n, 0.90) / 1e3,
             (double)percentile(s, n, 0.99) / 1e3, (double)percentile(s, n, 0.999) / 1e3,
             (double)s[n - 1] / 1e3, over, tail);
}

static void bench_timers(const struct config *c)
{
    uint64_t n = c->timers_n;
    uint32_t cap = 1024;
    while (cap < n)
        cap *= 2;
    char name[64];
    px_region_opts ro = {
        .capacity = cap, .lanes = 16, .lane_depth = 1u << 16, .flags = PX_REGION_CREATE};
    px_region *r = lregion_create(name, sizeof name, &ro);
    int rc = px_task_register(
        r, &(px_task_def){.name = TIMER_TASK, .fn = timer_body, .mode = PX_THREAD});
    if (rc)
        die("px_task_register", rc);
    lc_n = n;
    lc_late = malloc(n * sizeof *lc_late);
    uint64_t *dues = malloc(n * sizeof *dues);
    if (!lc_late || !dues)
        die("samples", -ENOMEM);
    for (uint64_t i = 0; i < n; i++)
        atomic_init(&lc_late[i], INT64_MIN);
    atomic_store(&lc_fired, 0);
    atomic_store(&lc_dup, 0);
    atomic_store(&lc_bad, 0);
    atomic_store(&lc_last_start, 0);
    uint64_t seed;
    if (getrandom(&seed, sizeof seed, 0) != sizeof seed || seed == 0)
        seed = 0x9E3779B97F4A7C15ull ^ bench_now_ns();
    px_workers *w = bench_one_worker(r);

    /* timeout 0: a region too small fails at once rather than wait. */
    px_submit_opts o = {.timeout_s = 0, .flags = PX_SUBMIT_DETACHED};
    uint64_t t0 = real_ns(), m0 = bench_now_ns();
    uint64_t first_due = UINT64_MAX, last_due = 0;
    for (uint64_t i = 0; i < n; i++) {
        struct timer_args a = {t0 + LEAD_NS + rng_next(&seed) % WINDOW_NS, i};
        dues[i] = a.due;
        if (a.due < first_due)
            first_due = a.due;
        if (a.due > last_due)
            last_due = a.due;
        o.at_unix_ns = a.due;
        if ((rc = px_submit(r, TIMER_TASK, &a, sizeof a, &o, NULL)) != 0)
            fail("px_submit of timer %llu of %llu: %s", (unsigned long long)i,
                 (unsigned long long)n, px_strerror(rc));
    }
    uint64_t m1 = bench_now_ns(), insert_end = real_ns();
    uint64_t fired_at_end = atomic_load(&lc_fired);

    /* Sleep (the machine stays idle but for the runtime) until all ran. */
    uint64_t give_up = last_due + FIRE_TIMEOUT_NS;
    while (atomic_load_explicit(&lc_fired, memory_order_acquire) < n) {
        if (real_ns() > give_up)
            fail("only %llu of %llu timers fired within %.0f s of the last due time",
                 (unsigned long long)atomic_load(&lc_fired), (unsigned long long)n,
                 (double)FIRE_TIMEOUT_NS / 1e9);
        sleep_ns(10000000);
    }
    uint64_t last_start = atomic_load(&lc_last_start);
    px_workers_stats st;
    if ((rc = px_workers_stats_get(w, &st)) != 0)
        die("px_workers_stats_get", rc);
    bench_workers_stop(w);
    lregion_remove(r, name);
    if (atomic_load(&lc_dup) || atomic_load(&lc_bad))
        fail("timers: %llu ran twice, %llu had bad args", (unsigned long long)atomic_load(&lc_dup),
             (unsigned long long)atomic_load(&lc_bad));

    /* All samples, and those due after the last insert. */
    uint64_t *all = malloc(n * sizeof *all), *after = malloc(n * sizeof *after);
    if (!all || !after)
        die("samples", -ENOMEM);
    uint64_t nafter = 0, early = 0;
    int64_t earliest = 0;
    for (uint64_t i = 0; i < n; i++) {
        int64_t late = atomic_load_explicit(&lc_late[i], memory_order_relaxed);
        if (late == INT64_MIN)
            fail("timer %llu never ran", (unsigned long long)i);
        if (late < 0) {
            early++;
            if (late < earliest)
                earliest = late;
        }
        all[i] = late < 0 ? 0 : (uint64_t)late;
        if (dues[i] > insert_end)
            after[nafter++] = all[i];
    }
    if (early) /* the runtime promises never to run a task before its time */
        fprintf(stderr,
                "px_bench: warning: %llu of %llu timer bodies started before their due time "
                "(earliest %.1f us early); counted as 0 lateness\n",
                (unsigned long long)early, (unsigned long long)n, (double)-earliest / 1e3);

    double secs = (double)(m1 - m0) / 1e9;
    struct result *res = add_result("lifecycle_timers_insert", n, (double)n / secs);
    snprintf(res->note, sizeof res->note,
             "%llu detached px_submit with at_unix_ns random in [t0+1.5 s, t0+4.5 s) took %.3f "
             "s; %llu fired meanwhile, so the heap held %llu; capacity %u",
             (unsigned long long)n, secs, (unsigned long long)fired_at_end,
             (unsigned long long)(n - fired_at_end), cap);
    double fire_rate = (double)n * 1e9 / (double)(last_start - first_due);
    bool overran = insert_end > first_due;
    char tail[160];
    if (overran)
        snprintf(tail, sizeof tail,
                 "all %llu tasks; inserts ended %.3f s after the first due time, so the early "
                 "ones were late by design",
                 (unsigned long long)n, (double)(insert_end - first_due) / 1e9);
    else
        snprintf(tail, sizeof tail,
                 "all %llu tasks; inserts ended %.3f s before the first due time; %llu ran%s",
                 (unsigned long long)n, (double)(first_due - insert_end) / 1e9,
                 (unsigned long long)st.succeeded, early ? "; SOME RAN EARLY" : "");
    add_lateness_row("lifecycle_timers_lateness", all, n, fire_rate, tail);
    if (overran && nafter) {
        snprintf(tail, sizeof tail, "only the %llu tasks due after the last insert",
                 (unsigned long long)nafter);
        add_lateness_row("lifecycle_timers_lateness_after_insert", after, nafter,
                         (double)nafter * 1e9 / (double)(last_start - insert_end), tail);
    }
    free(all);
    free(after);
    free(dues);
    free((void *)lc_late);
    lc_late = NULL;
}

/* ---- Cancel latency ----------------------------------------------------------- */

static _Atomic uint64_t lc_running; /* id of the spin task whose body runs */

static int spin_body(px_ctx *ctx, const void *args, size_t len)
{
    (void)args, (void)len;
    uint64_t start = bench_now_ns();
    atomic_store_explicit(&lc_running, px_task_id(ctx), memory_order_release);
    while (px_should_continue(ctx)) {
        uint64_t next = bench_now_ns() + POLL_NS;
        uint64_t now;
        while ((now = bench_now_ns()) < next)
            ck_pr_stall();
        if (now - start > SPIN_LIMIT_NS)
            return px_fail(ctx, "never cancelled");
    }
    return 0;
}

static void bench_cancel(const struct config *c)
{
    char name[64];
    px_region *r = lregion_create(name, sizeof name, &(px_region_opts){.flags = PX_REGION_CREATE});
    int rc = px_task_register(
        r, &(px_task_def){.name = SPIN_TASK, .fn = spin_body, .mode = PX_THREAD, .cancellable = 1});
    if (rc)
        die("px_task_register", rc);
    px_workers *w = bench_one_worker(r);
    uint64_t n = c->cancel_n;
    uint64_t *s = malloc(n * sizeof *s);
    if (!s)
        die("samples", -ENOMEM);
    const px_submit_opts o = {.timeout_s = -1, .flags = PX_SUBMIT_EPHEMERAL};
    uint64_t t0 = 0, seed = bench_now_ns() | 1;
    for (uint64_t i = 0; i < CANCEL_WARM + n; i++) {
        if (i == CANCEL_WARM)
            t0 = bench_now_ns();
        px_id id;
        if ((rc = px_submit(r, SPIN_TASK, NULL, 0, &o, &id)) != 0)
            die("px_submit", rc);
        uint64_t deadline = bench_now_ns() + WAIT_RUN_NS;
        while (atomic_load_explicit(&lc_running, memory_order_acquire) != id) {
            if (bench_now_ns() > deadline)
                fail("the cancellable task did not start within 10 s");
            sched_yield();
        }
        /* A random phase against the body's checks: cancelling right after
         * its first check would always wait a whole interval. */
        uint64_t a = bench_now_ns() + rng_next(&seed) % PHASE_NS;
        while (bench_now_ns() < a)
            ck_pr_stall();
        a = bench_now_ns();
        if ((rc = px_cancel(r, id)) != 0)
            die("px_cancel", rc);
        rc = px_join(r, id, 10.0, NULL, 0, NULL);
        uint64_t b = bench_now_ns();
        if (rc != -ECANCELED)
            fail("px_join of a cancelled task returned %d (%s), not -ECANCELED", rc,
                 px_strerror(rc));
        if (i >= CANCEL_WARM)
            s[i - CANCEL_WARM] = b - a;
    }
    double elapsed = (double)(bench_now_ns() - t0);
    bench_workers_stop(w);
    lregion_remove(r, name);
    struct result *res = add_result("lifecycle_cancel", n, (double)n * 1e9 / elapsed);
    set_latency(res, s, n);
    snprintf(res->note, sizeof res->note,
             "px_cancel 0-%llu us (random) after the body of a cancellable task polling "
             "px_should_continue every %llu us started, until px_join returns -ECANCELED; us: "
             "p50 %.1f p90 %.1f p99 %.1f max %.1f",
             (unsigned long long)(PHASE_NS / 1000), (unsigned long long)(POLL_NS / 1000),
             (double)percentile(s, n, 0.50) / 1e3, (double)percentile(s, n, 0.90) / 1e3,
             (double)percentile(s, n, 0.99) / 1e3, (double)s[n - 1] / 1e3);
    free(s);
}

/* ---- The group ---------------------------------------------------------------- */

void bench_lifecycle(const struct config *c)
{
    uint64_t t0 = bench_now_ns();
    bench_delayed_submit(c);
    uint64_t t1 = bench_now_ns();
    bench_timers(c);
    uint64_t t2 = bench_now_ns();
    bench_cancel(c);
    uint64_t t3 = bench_now_ns();
    fprintf(stderr,
            "px_bench: lifecycle took %.1f s (delayed submits %.1f s, %llu timers %.1f s, "
            "%llu cancels %.1f s)\n",
            (double)(t3 - t0) / 1e9, (double)(t1 - t0) / 1e9, (unsigned long long)c->timers_n,
            (double)(t2 - t1) / 1e9, (unsigned long long)c->cancel_n, (double)(t3 - t2) / 1e9);
}

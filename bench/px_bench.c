/*
 * px_bench: throughput and latency of Pollux against a bare ck_ring.
 *
 * What is measured, in one run (each group can be picked with --only):
 *
 * throughput     Rounds of six measurements, interleaved so that each round
 *                sees the same machine load:
 *                - ring_spsc: 64-bit values through a ck_ring (SPSC) from this
 *                  thread to one consumer thread: the raw baseline.
 *                - noop_submit / noop_submit_many64: no-op tasks submitted
 *                  from this thread with px_submit / px_submit_many (batches
 *                  of 64), PX_SUBMIT_DETACHED, run by one worker thread
 *                  (px_workers_start with threads = 1, processes = 1,
 *                  default spin). The clock stops when the task bodies'
 *                  counter reaches n.
 *                - noop_submit_many64_nometrics: the same batches in a
 *                  region made with PX_REGION_NO_METRICS (created for the
 *                  round): what the metrics cost on the no-op path.
 *                - noop_submit_only / noop_run_only: each side of that
 *                  path alone, in a region that holds all n tasks: n
 *                  submits with no worker, then one worker thread running
 *                  the n queued tasks (sides.c).
 *                ops/s is the median over the rounds; ratio_to_baseline is
 *                the median of the per-round ratios to ring_spsc.
 *
 * futex          futex_wake_baseline: one thread asleep in FUTEX_WAIT woken
 *                by another, a wake every 200 us on a fixed schedule: the
 *                floor under the sleeping-worker rows on this machine.
 *
 * latency_spin   submit-to-start and submit-to-join of a task that returns
 *                its start time; one in-process worker thread (threads = 1,
 *                processes = 1) spinning between tasks (spin_us = 1 s); a task
 *                every 40 us.
 * latency_spin1ms The same with spin_us = 1 ms: still far longer than the
 *                interval, but the process pool's idle dispatcher thread,
 *                which spins for spin_us too, then stays mostly asleep.
 * latency_sleep  spin_us = 1 and a task every 200 us, so that the worker is
 *                asleep on its futex when each task arrives.
 * xproc_spin     The same across processes: the worker is a separate
 * xproc_sleep    `pollux worker --workers 1 --threads 1` serving the tasks of
 *                libpx_bench_tasks.so (bench_tasks.c); the producer registers
 *                the definition without a body. xproc_spin keeps the CLI's
 *                default spin of 50 us, so a task every 40 us finds it
 *                spinning; xproc_sleep passes --spin-us 1, as latency_sleep
 *                sets spin_us = 1, and a task every 200 us finds it asleep.
 *
 * Latency methodology (no coordinated omission): the sends follow a fixed
 * schedule, intended[i] = t0 + i * interval, fixed before the first send.
 * The producer waits for intended[i] (sleeps, with a 1 ns timer slack, until
 * 60 us before it, then spins), submits, and joins. Every latency is measured
 * from intended[i], not from when px_submit was actually called, so a slow
 * join that delays later sends is charged to those sends as well, as a queue
 * of real requests would be:
 *
 *   submit-to-start = the task body's CLOCK_MONOTONIC stamp - intended[i]
 *   submit-to-join  = CLOCK_MONOTONIC when px_join has returned - intended[i]
 *   send-lag        = CLOCK_MONOTONIC just before px_submit - intended[i]
 *
 * The send lag is how late the producer itself was (its own wake-up, or the
 * backlog of earlier slow joins); it is reported to help read the other two,
 * not subtracted from them. CLOCK_MONOTONIC is system-wide, so the stamps of
 * the worker process compare with the producer's. Every sample after a
 * warm-up schedule is recorded; percentiles are nearest-rank over all of
 * them. ops/s of a latency row is the rate of samples actually achieved. A
 * schedule that overruns its time budget (1.5 times its length + 1 s) is cut
 * short and flagged, so that a stalling runtime cannot make a run last hours.
 *
 * durable_sync   PX_DURABLE_SYNC px_submit against pwrite + fdatasync per
 * durable_async  task, PX_DURABLE_ASYNC against PX_DURABLE_NONE, and the
 * recovery       time px_region_open takes to rebuild a region from a log
 *                of 1M tasks: see durable.c, which has these groups.
 *
 * lifecycle      Delayed submits against plain ones, 1M timers scheduled
 *                and fired (insert rate, lateness of every task), and
 *                cancel-to-CANCELLED latency: see lifecycle.c.
 *
 * Usage: px_bench [--json] [--quick] [--only GROUP] [--timers N]
 */
#define _GNU_SOURCE
#include "bench_tasks.h"
#include "px_bench.h"

#include <pollux.h>

#include <ck_pr.h>
#include <ck_ring.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <linux/futex.h>
#include <stdatomic.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define RING_SIZE 4096       /* ck_ring entries; as deep as a Pollux lane */
#define BATCH 64             /* jobs per px_submit_many */
#define ROUNDS 5             /* throughput rounds */
#define SLEEP_SLACK_NS 60000 /* pacing: wake this early, then spin */
#define JOIN_TIMEOUT_S 10.0
#define READY_TIMEOUT_S 10.0
#define MAX_RESULTS 48

/* ---- Results (struct config and struct result are in px_bench.h) -------- */

static struct result results[MAX_RESULTS];
static int nresults;

/* ---- Cleanup on errors and signals ---------------------------------------- */

/* The region file and worker process in use, for cleanup_live(). */
static char live_path[96];
static volatile sig_atomic_t live_path_set;
static volatile pid_t live_worker;

/* Async-signal-safe. */
static void cleanup_live(void)
{
    if (live_worker > 0)
        kill(live_worker, SIGTERM);
    if (live_path_set)
        unlink(live_path);
    durable_cleanup();
    lifecycle_cleanup();
    sides_cleanup();
}

static void on_signal(int sig)
{
    cleanup_live();
    signal(sig, SIG_DFL);
    raise(sig);
}

static void install_cleanup(void)
{
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGHUP, on_signal);
}

/* Reports an error, removes what this run created, and exits. */
void fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "px_bench: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    cleanup_live();
    exit(1);
}

void die(const char *what, int err)
{
    fail("%s: %s", what, px_strerror(err));
}

struct result *add_result(const char *name, uint64_t n, double ops)
{
    if (nresults == MAX_RESULTS)
        fail("too many results");
    struct result *res = &results[nresults++];
    *res = (struct result){.n = n, .ops_per_sec = ops, .ratio = NAN};
    snprintf(res->name, sizeof res->name, "%s", name);
    return res;
}

/* ---- Small helpers -------------------------------------------------------- */

static void cpu_relax(void)
{
    ck_pr_stall();
}

static struct timespec ts_of(uint64_t ns)
{
    return (struct timespec){.tv_sec = (time_t)(ns / 1000000000ull),
                             .tv_nsec = (long)(ns % 1000000000ull)};
}

/* Waits until CLOCK_MONOTONIC reaches t: sleeps while far, spins when near. */
static void wait_until(uint64_t t)
{
    uint64_t now = bench_now_ns();
    if (t > now + SLEEP_SLACK_NS) {
        struct timespec ts = ts_of(t - SLEEP_SLACK_NS);
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
            ;
    }
    while (bench_now_ns() < t)
        cpu_relax();
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

px_workers *bench_one_worker(px_region *r)
{
    px_workers_opts o = {.threads = 1, .processes = 1};
    px_workers *w;
    int rc = px_workers_start(r, &o, &w);
    if (rc)
        die("px_workers_start", rc);
    return w;
}

void bench_workers_stop(px_workers *w)
{
    int rc = px_workers_stop(w);
    if (rc)
        die("px_workers_stop", rc);
}

double median(double *v, size_t n)
{
    qsort(v, n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

uint64_t percentile(const uint64_t *sorted, size_t n, double q)
{
    size_t k = (size_t)ceil(q * (double)n);
    if (k < 1)
        k = 1;
    if (k > n)
        k = n;
    return sorted[k - 1];
}

/* Sorts the samples in place and stores their percentiles in res. */
void set_latency(struct result *res, uint64_t *samples, size_t n)
{
    qsort(samples, n, sizeof *samples, cmp_u64);
    res->has_lat = true;
    res->p50 = percentile(samples, n, 0.50);
    res->p99 = percentile(samples, n, 0.99);
    res->p999 = percentile(samples, n, 0.999);
    res->max = samples[n - 1];
}

static bool wanted(const struct config *c, const char *group)
{
    return !c->only || strncmp(group, c->only, strlen(c->only)) == 0;
}

/* ---- Regions -------------------------------------------------------------- */

/* Creates a fresh region with a name unique to this process and run. */
static px_region *region_create_with(char *name, size_t cap, uint32_t flags)
{
    static int seq;
    snprintf(name, cap, "/px-bench-%d-%d", (int)getpid(), seq++);
    px_region *r;
    int rc = px_region_open(name, &(px_region_opts){.flags = PX_REGION_CREATE | flags}, &r);
    if (rc)
        die(name, rc);
    snprintf(live_path, sizeof live_path, "/dev/shm%s", name);
    live_path_set = 1;
    return r;
}

static px_region *region_create(char *name, size_t cap)
{
    return region_create_with(name, cap, 0);
}

static void region_remove(px_region *r, const char *name)
{
    int rc = px_region_close(r);
    if (rc)
        die("px_region_close", rc);
    px_region_destroy(name);
    live_path_set = 0;
}

static px_workers *workers_start(px_region *r, unsigned spin_us)
{
    px_workers_opts o = {.threads = 1, .processes = 1, .spin_us = spin_us};
    px_workers *w;
    int rc = px_workers_start(r, &o, &w);
    if (rc)
        die("px_workers_start", rc);
    return w;
}

/* ---- (a) Baseline: a bare ck_ring ---------------------------------------- */

/* The buffer, and the fields after it, start lines of their own: ck_ring_t
 * ends with the size and mask that both threads read on every operation,
 * and the producer writes the buffer's first and last entries. Sharing
 * those lines made the baseline bimodal, 12 or 100 M/s from run to run. */
struct ring_bench {
    ck_ring_t ring;
    _Alignas(CK_MD_CACHELINE) ck_ring_buffer_t buf[RING_SIZE];
    _Alignas(CK_MD_CACHELINE) uint64_t n;
    _Atomic int go;
    uint64_t sum, end_ns;
};

static void *ring_consumer(void *p)
{
    struct ring_bench *b = p;
    while (!atomic_load_explicit(&b->go, memory_order_acquire))
        cpu_relax();
    uint64_t got = 0, sum = 0;
    void *v;
    while (got < b->n) {
        if (ck_ring_dequeue_spsc(&b->ring, b->buf, &v)) {
            sum += (uintptr_t)v;
            got++;
        } else {
            cpu_relax();
        }
    }
    b->sum = sum;
    b->end_ns = bench_now_ns();
    return NULL;
}

/* Sends 1..n from this thread to a consumer thread; returns values/s. */
static double ring_round(uint64_t n)
{
    struct ring_bench *b = aligned_alloc(64, sizeof *b);
    if (!b)
        die("ring", -ENOMEM);
    memset(b, 0, sizeof *b);
    ck_ring_init(&b->ring, RING_SIZE);
    b->n = n;
    pthread_t t;
    if (pthread_create(&t, NULL, ring_consumer, b) != 0)
        die("pthread_create", -EAGAIN);
    uint64_t t0 = bench_now_ns();
    atomic_store_explicit(&b->go, 1, memory_order_release);
    for (uint64_t i = 1; i <= n; i++)
        while (!ck_ring_enqueue_spsc(&b->ring, b->buf, (void *)(uintptr_t)i))
            cpu_relax();
    pthread_join(t, NULL);
    if (b->sum != n * (n + 1) / 2)
        fail("ck_ring lost values");
    double ops = (double)n * 1e9 / (double)(b->end_ns - t0);
    free(b);
    return ops;
}

/* ---- (b) No-op task throughput ------------------------------------------- */

static const px_submit_opts detached = {.timeout_s = -1, .flags = PX_SUBMIT_DETACHED};

void bench_submit_singles(px_region *r, uint64_t n)
{
    for (uint64_t i = 0; i < n; i++) {
        int rc = px_submit(r, BENCH_NOOP, NULL, 0, &detached, NULL);
        if (rc)
            die("px_submit", rc);
    }
}

static void submit_batches(px_region *r, uint64_t n)
{
    px_job jobs[BATCH];
    px_id ids[BATCH];
    for (int i = 0; i < BATCH; i++)
        jobs[i] = (px_job){.task = BENCH_NOOP};
    for (uint64_t done = 0; done < n;) {
        size_t want = n - done < BATCH ? (size_t)(n - done) : BATCH;
        int k = px_submit_many(r, jobs, want, &detached, ids);
        if (k < 0)
            die("px_submit_many", k);
        done += (uint64_t)k;
    }
}

/* Waits until the task bodies have counted `target` runs. */
static void wait_count(uint64_t target)
{
    uint64_t deadline = bench_now_ns() + (uint64_t)(JOIN_TIMEOUT_S * 1e9);
    while (atomic_load_explicit(&bench_noop_count, memory_order_relaxed) < target) {
        if (bench_now_ns() > deadline)
            fail("only %llu of %llu no-op tasks ran",
                 (unsigned long long)atomic_load(&bench_noop_count), (unsigned long long)target);
        cpu_relax();
    }
}

static void submit_noops(px_region *r, uint64_t n, bool batched)
{
    if (batched)
        submit_batches(r, n);
    else
        bench_submit_singles(r, n);
}

/* Runs n no-op tasks (after a warm-up) on fresh workers; returns tasks/s. */
static double noop_round(px_region *r, uint64_t n, bool batched)
{
    px_workers *w = workers_start(r, 0);
    uint64_t warm = n / 10;
    atomic_store(&bench_noop_count, 0);
    submit_noops(r, warm, batched);
    wait_count(warm);
    uint64_t t0 = bench_now_ns();
    submit_noops(r, n, batched);
    wait_count(warm + n);
    uint64_t t1 = bench_now_ns();
    int rc = px_workers_stop(w);
    if (rc)
        die("px_workers_stop", rc);
    return (double)n * 1e9 / (double)(t1 - t0);
}

static void bench_throughput(const struct config *c)
{
    char name[64], bare_name[64];
    px_region *r = region_create(name, sizeof name);
    int rc = px_task_register_all(r);
    if (rc < 0)
        die("px_task_register_all", rc);
    double ring[ROUNDS], single[ROUNDS], batch[ROUNDS], rs[ROUNDS], rb[ROUNDS];
    double bare[ROUNDS], rbare[ROUNDS];
    double sub_only[ROUNDS], run_only[ROUNDS], rsub[ROUNDS], rrun[ROUNDS];
    char sides_name[64];
    px_region *sides = bench_sides_region(sides_name, sizeof sides_name, c->noop_n);
    for (int i = 0; i < ROUNDS; i++) {
        ring[i] = ring_round(c->ring_n);
        single[i] = noop_round(r, c->noop_n, false);
        batch[i] = noop_round(r, c->noop_n, true);
        /* The same batches in a region that keeps no metrics: their cost. */
        px_region *b = region_create_with(bare_name, sizeof bare_name, PX_REGION_NO_METRICS);
        if ((rc = px_task_register_all(b)) < 0)
            die("px_task_register_all", rc);
        bare[i] = noop_round(b, c->noop_n, true);
        region_remove(b, bare_name);
        snprintf(live_path, sizeof live_path, "/dev/shm%s", name);
        live_path_set = 1;
        rs[i] = single[i] / ring[i];
        rb[i] = batch[i] / ring[i];
        rbare[i] = bare[i] / ring[i];
        bench_sides_round(sides, c->noop_n, &sub_only[i], &run_only[i]);
        rsub[i] = sub_only[i] / ring[i];
        rrun[i] = run_only[i] / ring[i];
    }
    bench_sides_remove(sides, sides_name);
    region_remove(r, name);
    add_result("ring_spsc", c->ring_n * ROUNDS, median(ring, ROUNDS))->ratio = 1.0;
    add_result("noop_submit", c->noop_n * ROUNDS, median(single, ROUNDS))->ratio =
        median(rs, ROUNDS);
    add_result("noop_submit_many64", c->noop_n * ROUNDS, median(batch, ROUNDS))->ratio =
        median(rb, ROUNDS);
    add_result("noop_submit_many64_nometrics", c->noop_n * ROUNDS, median(bare, ROUNDS))->ratio =
        median(rbare, ROUNDS);
    add_result("noop_submit_only", c->noop_n * ROUNDS, median(sub_only, ROUNDS))->ratio =
        median(rsub, ROUNDS);
    add_result("noop_run_only", c->noop_n * ROUNDS, median(run_only, ROUNDS))->ratio =
        median(rrun, ROUNDS);
}

/* ---- (c, d) Latency on a fixed schedule ---------------------------------- */

struct lat_case {
    const char *group;
    uint64_t interval_ns;
    uint64_t samples; /* full run; --quick takes a tenth */
    unsigned spin_us; /* the worker's; 0: a `pollux worker`'s default */
    bool cross_process;
};

struct lat_run {
    uint64_t *lag, *start, *join; /* per sample, from the intended send time */
    uint64_t n;                   /* samples recorded */
    uint64_t scheduled;           /* samples the schedule had */
    uint64_t elapsed_ns;
};

static const px_submit_opts ephemeral = {.timeout_s = -1, .flags = PX_SUBMIT_EPHEMERAL};

/* Submits one stamp task and joins it; returns the task's start stamp in
 * *started and the time px_join returned in *joined. */
static int stamp_once(px_region *r, uint64_t *started, uint64_t *joined)
{
    px_id id;
    int rc = px_submit(r, BENCH_STAMP, NULL, 0, &ephemeral, &id);
    if (rc)
        return rc;
    size_t len = 0;
    rc = px_join(r, id, JOIN_TIMEOUT_S, started, sizeof *started, &len);
    *joined = bench_now_ns();
    if (rc == 0 && len != sizeof *started)
        rc = -EPROTO;
    return rc;
}

static uint64_t since(uint64_t t, uint64_t intended)
{
    return t > intended ? t - intended : 0;
}

/* How long a schedule of n sends may overrun before it is cut short, so that
 * a stalling runtime cannot make the run last for hours. */
static uint64_t budget_ns(uint64_t interval_ns, uint64_t n)
{
    return n * interval_ns * 3 / 2 + 1000000000ull;
}

/*
 * Sends out->scheduled tasks on a fixed schedule starting one interval from
 * now and records each one's latencies (if out->start) from its intended
 * send time. Stops early once the budget is spent; out->n says how many
 * were sent.
 */
static void run_schedule(px_region *r, uint64_t interval_ns, struct lat_run *out)
{
    uint64_t t0 = bench_now_ns() + interval_ns;
    uint64_t stop = t0 + budget_ns(interval_ns, out->scheduled);
    uint64_t i;
    for (i = 0; i < out->scheduled && bench_now_ns() < stop; i++) {
        uint64_t intended = t0 + i * interval_ns, started = 0, joined = 0;
        wait_until(intended);
        uint64_t sent = bench_now_ns();
        int rc = stamp_once(r, &started, &joined);
        if (rc)
            die("submit/join of " BENCH_STAMP, rc);
        if (out->start) {
            out->lag[i] = since(sent, intended);
            out->start[i] = since(started, intended);
            out->join[i] = since(joined, intended);
        }
    }
    out->n = i;
    out->elapsed_ns = bench_now_ns() - t0;
}

/* A warm-up schedule (not recorded), then the measured one. */
static void run_warm_and_measure(px_region *r, const struct lat_case *lc, uint64_t warm,
                                 struct lat_run *run)
{
    struct lat_run w = {.scheduled = warm};
    run_schedule(r, lc->interval_ns, &w);
    run_schedule(r, lc->interval_ns, run);
}

/* ---- The separate worker process ------------------------------------------ */

/* path = the directory of this executable + "/" + file. */
static void sibling_path(const char *file, char *path, size_t cap)
{
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0)
        die("/proc/self/exe", -errno);
    self[n] = '\0';
    *strrchr(self, '/') = '\0';
    int len = snprintf(path, cap, "%s/%s", self, file);
    if (len < 0 || (size_t)len >= cap || access(path, R_OK) != 0)
        fail("%s not found (build the px_bench target)", path);
}

/* Starts `pollux worker` on the region, with --spin-us spin_us unless it is
 * 0; it dies with us (PDEATHSIG). */
static pid_t worker_spawn(const char *region, unsigned spin_us)
{
    char pollux[PATH_MAX], lib[PATH_MAX];
    sibling_path("pollux", pollux, sizeof pollux);
    sibling_path("libpx_bench_tasks.so", lib, sizeof lib);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0)
        die("fork", -errno);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent)
            _exit(127);
        /* Its periodic summary lines would interleave with our output. */
        if (!freopen("/dev/null", "w", stderr))
            _exit(127);
        char spin[16];
        snprintf(spin, sizeof spin, "%u", spin_us);
        execl(pollux, pollux, "worker", "--region", region, "--lib", lib, "--workers", "1",
              "--threads", "1", spin_us ? "--spin-us" : (char *)NULL, spin, (char *)NULL);
        _exit(127);
    }
    live_worker = pid;
    return pid;
}

/* Waits until the worker has run a probe task. */
static void worker_wait_ready(px_region *r, pid_t pid)
{
    px_id id;
    int rc = px_submit(r, BENCH_STAMP, NULL, 0, &ephemeral, &id);
    if (rc)
        die("probe submit", rc);
    uint64_t stamp, deadline = bench_now_ns() + (uint64_t)(READY_TIMEOUT_S * 1e9);
    while ((rc = px_join(r, id, 0.1, &stamp, sizeof stamp, NULL)) == -ETIMEDOUT) {
        if (waitpid(pid, NULL, WNOHANG) == pid) {
            live_worker = 0;
            fail("pollux worker exited before it was ready");
        }
        if (bench_now_ns() > deadline)
            die("waiting for pollux worker", rc);
    }
    if (rc)
        die("probe join", rc);
}

/* SIGTERM, then SIGKILL if it has not exited within its grace. */
static void worker_stop(pid_t pid)
{
    kill(pid, SIGTERM);
    uint64_t deadline = bench_now_ns() + 15000000000ull;
    while (waitpid(pid, NULL, WNOHANG) == 0) {
        if (bench_now_ns() > deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
            break;
        }
        usleep(1000);
    }
    live_worker = 0;
}

/* ---- Latency cases -------------------------------------------------------- */

static void measure_in_process(const struct lat_case *lc, uint64_t warm, struct lat_run *run)
{
    char name[64];
    px_region *r = region_create(name, sizeof name);
    int rc = px_task_register_all(r);
    if (rc < 0)
        die("px_task_register_all", rc);
    px_workers *w = workers_start(r, lc->spin_us);
    run_warm_and_measure(r, lc, warm, run);
    if ((rc = px_workers_stop(w)) != 0)
        die("px_workers_stop", rc);
    region_remove(r, name);
}

static void measure_cross_process(const struct lat_case *lc, uint64_t warm, struct lat_run *run)
{
    char name[64];
    px_region *r = region_create(name, sizeof name);
    /* Decoupled: the definition without a body; the worker's library has it. */
    int rc = px_task_register(r, &(px_task_def){.name = BENCH_STAMP, .mode = PX_THREAD});
    if (rc)
        die("px_task_register", rc);
    pid_t pid = worker_spawn(name, lc->spin_us);
    worker_wait_ready(r, pid);
    run_warm_and_measure(r, lc, warm, run);
    worker_stop(pid);
    region_remove(r, name);
}

static void add_latency(const struct lat_case *lc, const char *what, uint64_t *samples,
                        const struct lat_run *run)
{
    char row[48];
    snprintf(row, sizeof row, "%s_%s", lc->group, what);
    double rate = (double)run->n * 1e9 / (double)run->elapsed_ns;
    struct result *res = add_result(row, run->n, rate);
    res->scheduled = run->scheduled;
    set_latency(res, samples, run->n);
}

static void bench_latency(const struct config *c, const struct lat_case *lc)
{
    struct lat_run run = {.scheduled = lc->samples / c->lat_div};
    run.lag = calloc(run.scheduled, sizeof *run.lag);
    run.start = calloc(run.scheduled, sizeof *run.start);
    run.join = calloc(run.scheduled, sizeof *run.join);
    if (!run.lag || !run.start || !run.join)
        die("samples", -ENOMEM);
    if (lc->cross_process)
        measure_cross_process(lc, c->lat_warm, &run);
    else
        measure_in_process(lc, c->lat_warm, &run);
    add_latency(lc, "submit_to_start", run.start, &run);
    add_latency(lc, "submit_to_join", run.join, &run);
    add_latency(lc, "send_lag", run.lag, &run);
    free(run.lag);
    free(run.start);
    free(run.join);
}

/* ---- Baseline: a bare futex wake-up --------------------------------------- */

/* What the sleeping-worker rows cannot beat on this machine: one thread
 * sleeping in FUTEX_WAIT, another waking it on the same schedule (one every
 * 200 us); the sample is the sleeper's wake-up stamp minus the intended send
 * time. */
struct futex_ping {
    _Atomic uint32_t word;
    _Atomic uint64_t woke_ns;
    _Atomic int stop;
};

static void *futex_sleeper(void *p)
{
    struct futex_ping *f = p;
    uint32_t seen = 0;
    while (!atomic_load(&f->stop)) {
        while (atomic_load(&f->word) == seen && !atomic_load(&f->stop))
            syscall(SYS_futex, &f->word, FUTEX_WAIT, seen, NULL, NULL, 0);
        seen = atomic_load(&f->word);
        atomic_store(&f->woke_ns, bench_now_ns());
    }
    return NULL;
}

static void futex_poke(struct futex_ping *f)
{
    atomic_fetch_add(&f->word, 1);
    syscall(SYS_futex, &f->word, FUTEX_WAKE, 1, NULL, NULL, 0);
}

static void bench_futex(const struct config *c)
{
    uint64_t n = 50000 / c->lat_div, interval = 200000;
    uint64_t *samples = calloc(n, sizeof *samples);
    struct futex_ping f = {0};
    pthread_t t;
    if (!samples || pthread_create(&t, NULL, futex_sleeper, &f) != 0)
        die("futex baseline", -ENOMEM);
    uint64_t t0 = bench_now_ns() + 1000000;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t intended = t0 + i * interval, woke;
        wait_until(intended);
        atomic_store(&f.woke_ns, 0);
        futex_poke(&f);
        /* Yield rather than spin: the sleeper may be woken on this CPU. */
        while ((woke = atomic_load(&f.woke_ns)) == 0)
            sched_yield();
        samples[i] = since(woke, intended);
    }
    double elapsed = (double)(bench_now_ns() - t0);
    atomic_store(&f.stop, 1);
    futex_poke(&f);
    pthread_join(t, NULL);
    set_latency(add_result("futex_wake_baseline", n, (double)n * 1e9 / elapsed), samples, n);
    free(samples);
}

/* ---- Output --------------------------------------------------------------- */

/* Formats nanoseconds with a unit that keeps 3-4 significant digits. */
static const char *fmt_ns(char *buf, size_t cap, uint64_t ns)
{
    if (ns < 10000)
        snprintf(buf, cap, "%llu ns", (unsigned long long)ns);
    else if (ns < 10000000)
        snprintf(buf, cap, "%.1f us", (double)ns / 1e3);
    else
        snprintf(buf, cap, "%.1f ms", (double)ns / 1e6);
    return buf;
}

static bool cut_short(const struct result *res)
{
    return res->scheduled && res->n < res->scheduled;
}

static void print_row(const struct result *res)
{
    char name[64], p50[32] = "-", p99[32] = "-", p999[32] = "-", max[32] = "-", ratio[16] = "-";
    snprintf(name, sizeof name, "%.47s%s", res->name, cut_short(res) ? " (*)" : "");
    if (!isnan(res->ratio))
        snprintf(ratio, sizeof ratio, "%.2f%%", res->ratio * 100);
    if (res->has_lat) {
        fmt_ns(p50, sizeof p50, res->p50);
        fmt_ns(p99, sizeof p99, res->p99);
        fmt_ns(p999, sizeof p999, res->p999);
        fmt_ns(max, sizeof max, res->max);
    }
    printf("%-34s %9llu %12.0f %10s %10s %10s %10s %8s\n", name, (unsigned long long)res->n,
           res->ops_per_sec, p50, p99, p999, max, ratio);
}

static void print_json(const struct result *res)
{
    printf("{\"name\":\"%s\",\"n\":%llu,\"ops_per_sec\":%.1f", res->name,
           (unsigned long long)res->n, res->ops_per_sec);
    if (res->has_lat)
        printf(",\"p50_ns\":%llu,\"p99_ns\":%llu,\"p999_ns\":%llu,\"max_ns\":%llu",
               (unsigned long long)res->p50, (unsigned long long)res->p99,
               (unsigned long long)res->p999, (unsigned long long)res->max);
    else
        printf(",\"p50_ns\":null,\"p99_ns\":null,\"p999_ns\":null,\"max_ns\":null");
    if (!isnan(res->ratio))
        printf(",\"ratio_to_baseline\":%.4f", res->ratio);
    if (res->scheduled)
        printf(",\"scheduled\":%llu,\"cut_short\":%s", (unsigned long long)res->scheduled,
               cut_short(res) ? "true" : "false");
    if (res->note[0])
        printf(",\"note\":\"%s\"", res->note); /* our own text: no quotes or backslashes */
    printf("}\n");
}

static const struct result *find_result(const char *name)
{
    for (int i = 0; i < nresults; i++)
        if (strcmp(results[i].name, name) == 0)
            return &results[i];
    return NULL;
}

/* One of the targets, checked against a measured row. */
struct target {
    const char *row;
    const char *what;
    enum { RATIO_MIN, RATIO_X_MIN, P50_MAX, P99_MAX, OPS_MIN, SECS_MAX } kind;
    double limit; /* a fraction (RATIO_*), nanoseconds (P*_MAX), ops/s, or seconds */
};

static const struct target targets[] = {
    {"noop_submit", "ratio to ring_spsc >= 25%", RATIO_MIN, 0.25},
    {"noop_submit_many64", "ratio to ring_spsc >= 25%", RATIO_MIN, 0.25},
    {"latency_spin_submit_to_start", "p50 < 2 us", P50_MAX, 2000},
    {"latency_spin1ms_submit_to_start", "p50 < 2 us", P50_MAX, 2000},
    {"xproc_spin_submit_to_start", "p50 < 2 us", P50_MAX, 2000},
    {"latency_sleep_submit_to_join", "p99 < 50 us", P99_MAX, 50000},
    {"xproc_sleep_submit_to_join", "p99 < 50 us", P99_MAX, 50000},
    {"sync_submit_t1", "ratio to naive_fdatasync_t1 >= 100x", RATIO_X_MIN, 100},
    {"sync_submit_t8", "ratio to naive_fdatasync_t8 >= 100x", RATIO_X_MIN, 100},
    {"sync_submit_t8", ">= 500,000 tasks/s", OPS_MIN, 500000},
    {"sync_submit_many64_t1", "ratio to naive_fdatasync_t1 >= 100x", RATIO_X_MIN, 100},
    {"sync_submit_many64_t8", "ratio to naive_fdatasync_t8 >= 100x", RATIO_X_MIN, 100},
    {"sync_submit_many64_t8", ">= 500,000 tasks/s", OPS_MIN, 500000},
    {"sync_submit_many256_t1", "ratio to naive_fdatasync_t1 >= 100x", RATIO_X_MIN, 100},
    {"sync_submit_many256_t2", "ratio to naive_fdatasync_t2 >= 100x", RATIO_X_MIN, 100},
    {"sync_submit_many256_t8", "ratio to naive_fdatasync_t8 >= 100x", RATIO_X_MIN, 100},
    {"async_submit", "ratio to none_submit >= 50%", RATIO_MIN, 0.50},
    {"recovery_1m", "1M tasks recovered in < 1 s", SECS_MAX, 1.0},
    {"recovery_1m_cold", "the same, log not in page cache", SECS_MAX, 1.0},
    /* --quick builds a log of 100k tasks: the same rate. */
    {"recovery_100k", "< 0.1 s (1M in < 1 s, scaled)", SECS_MAX, 0.1},
    {"recovery_100k_cold", "the same, log not in page cache", SECS_MAX, 0.1},
    {"lifecycle_timers_lateness", "p99 < 1 ms (machine otherwise idle)", P99_MAX, 1000000},
    {"lifecycle_timers_lateness_after_insert", "p99 < 1 ms (machine otherwise idle)", P99_MAX,
     1000000},
};

static void print_target(const struct target *t, const struct result *res)
{
    char value[32];
    bool met;
    if (t->kind == RATIO_MIN) {
        snprintf(value, sizeof value, "%.2f%%", res->ratio * 100);
        met = res->ratio >= t->limit;
    } else if (t->kind == RATIO_X_MIN) {
        snprintf(value, sizeof value, "%.2fx", res->ratio);
        met = res->ratio >= t->limit;
    } else if (t->kind == OPS_MIN) {
        snprintf(value, sizeof value, "%.0f/s", res->ops_per_sec);
        met = res->ops_per_sec >= t->limit;
    } else if (t->kind == SECS_MAX) {
        /* Rows with this target have ops_per_sec = n / elapsed. */
        double secs = (double)res->n / res->ops_per_sec;
        snprintf(value, sizeof value, "%.3f s", secs);
        met = secs < t->limit;
    } else {
        uint64_t ns = t->kind == P50_MAX ? res->p50 : res->p99;
        fmt_ns(value, sizeof value, ns);
        met = (double)ns < t->limit;
    }
    printf("  %-34s %-36s %12s  %s\n", t->row, t->what, value, met ? "met" : "NOT met");
}

/* The targets, for the rows that were measured. */
static void print_targets(void)
{
    printf("\ntargets:\n");
    for (size_t i = 0; i < sizeof targets / sizeof targets[0]; i++) {
        const struct result *res = find_result(targets[i].row);
        if (res)
            print_target(&targets[i], res);
    }
}

static void print_results(const struct config *c)
{
    if (c->json) {
        for (int i = 0; i < nresults; i++)
            print_json(&results[i]);
        return;
    }
    printf("%-34s %9s %12s %10s %10s %10s %10s %8s\n", "name", "n", "ops/s", "p50", "p99", "p99.9",
           "max", "ratio");
    bool any_cut = false;
    for (int i = 0; i < nresults; i++) {
        print_row(&results[i]);
        any_cut |= cut_short(&results[i]);
    }
    if (any_cut)
        printf("(*) cut short: the schedule overran its time budget; n of the planned sends\n"
               "    were made, and the percentiles cover those only (lower bounds).\n");
    bool any_note = false;
    for (int i = 0; i < nresults; i++) {
        if (!results[i].note[0])
            continue;
        if (!any_note)
            printf("\nnotes:\n");
        any_note = true;
        printf("  %-34s %s\n", results[i].name, results[i].note);
    }
    print_targets();
}

/* ---- Main ----------------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: px_bench [--json] [--quick] [--only GROUP] [--timers N]\n"
            "  --json        one JSON object per result line\n"
            "  --quick       smaller counts (a few seconds)\n"
            "  --only GROUP  run the groups whose name starts with GROUP: throughput, futex,\n"
            "                latency_spin, latency_spin1ms, latency_sleep, xproc_spin,\n"
            "                xproc_sleep, durable_sync, durable_async, recovery, lifecycle\n"
            "                (\"latency\" runs the three latency_*, \"durable\" both durable_*)\n"
            "  --timers N    lifecycle: delayed tasks scheduled and fired (default 1000000,\n"
            "                --quick 100000)\n");
}

static void parse_args(int argc, char **argv, struct config *c)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            c->json = true;
        } else if (strcmp(argv[i], "--quick") == 0) {
            c->quick = true;
        } else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc) {
            c->only = argv[++i];
        } else if (strcmp(argv[i], "--timers") == 0 && i + 1 < argc) {
            char *end;
            c->timers_n = strtoull(argv[++i], &end, 10);
            if (*end || c->timers_n == 0 || c->timers_n > (1ull << 31)) {
                usage(stderr);
                exit(2);
            }
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            exit(0);
        } else {
            usage(stderr);
            exit(2);
        }
    }
    c->ring_n = c->quick ? 2000000 : 20000000;
    c->noop_n = c->quick ? 100000 : 1000000;
    c->lat_div = c->quick ? 10 : 1;
    c->lat_warm = c->quick ? 200 : 2000;
    c->dur_secs = c->quick ? 0.3 : 2.0;
    c->dur_async_n = c->quick ? 50000 : 500000;
    c->recovery_n = c->quick ? 100000 : 1000000;
    if (c->timers_n == 0)
        c->timers_n = c->quick ? 100000 : 1000000;
    c->cancel_n = c->quick ? 200 : 2000;
}

static const struct lat_case lat_cases[] = {
    {.group = "latency_spin", .interval_ns = 40000, .samples = 75000, .spin_us = 1000000},
    {.group = "latency_spin1ms", .interval_ns = 40000, .samples = 75000, .spin_us = 1000},
    {.group = "latency_sleep", .interval_ns = 200000, .samples = 50000, .spin_us = 1},
    {.group = "xproc_spin", .interval_ns = 40000, .samples = 75000, .cross_process = true},
    {.group = "xproc_sleep",
     .interval_ns = 200000,
     .samples = 50000,
     .spin_us = 1,
     .cross_process = true},
};

int main(int argc, char **argv)
{
    struct config c = {0};
    parse_args(argc, argv, &c);
    install_cleanup();
    /* Sleeps end within 1 ns of their deadline rather than the default 50 us
     * late, so that the paced producer sends on time (inherited by the
     * threads started after this). */
    prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
    if (wanted(&c, "throughput"))
        bench_throughput(&c);
    if (wanted(&c, "futex"))
        bench_futex(&c);
    for (size_t i = 0; i < sizeof lat_cases / sizeof lat_cases[0]; i++)
        if (wanted(&c, lat_cases[i].group))
            bench_latency(&c, &lat_cases[i]);
    if (wanted(&c, "durable_sync"))
        bench_durable_sync(&c);
    if (wanted(&c, "durable_async"))
        bench_durable_async(&c);
    if (wanted(&c, "recovery"))
        bench_recovery(&c);
    if (wanted(&c, "lifecycle"))
        bench_lifecycle(&c);
    if (nresults == 0) {
        fprintf(stderr, "px_bench: no group matches '%s'\n", c.only);
        return 2;
    }
    print_results(&c);
    return 0;
}

/*
 * px_bench: throughput and latency of Pollux against a bare ck_ring.
 *
 * What is measured, in one run (each group can be picked with --only):
 *
 * throughput     Rounds of three measurements, interleaved so that each round
 *                sees the same machine load:
 *                - ring_spsc: 64-bit values through a ck_ring (SPSC) from this
 *                  thread to one consumer thread: the raw baseline.
 *                - noop_submit / noop_submit_many64: no-op tasks submitted
 *                  from this thread with px_submit / px_submit_many (batches
 *                  of 64), PX_SUBMIT_DETACHED, run by one worker thread
 *                  (px_workers_start with threads = 1, processes = 1). The
 *                  clock stops when the task bodies' counter reaches n.
 *                ops/s is the median over the rounds; ratio_to_baseline is
 *                the median of the per-round ratios to ring_spsc.
 *
 * latency_spin   submit-to-start and submit-to-join of a task that returns
 *                its start time, one in-process worker thread that spins
 *                (spin_us = 1 s) between tasks, a task every 20 us.
 * latency_sleep  The same with spin_us = 1 and a task every 200 us, so the
 *                worker is asleep on its futex when each task arrives.
 * xproc_spin     The same across processes: the worker is a separate
 * xproc_sleep    `pollux worker --workers 1 --threads 1` serving the tasks of
 *                libpx_bench_tasks.so (its spin is the default 50 us, so a
 *                task every 20 us finds it spinning, one every 200 us asleep).
 *
 * Latency methodology (no coordinated omission): the sends follow a fixed
 * schedule, intended[i] = t0 + i * interval, fixed before the first send.
 * The producer waits for intended[i] (sleeps, then spins the last stretch),
 * submits, and joins. Every latency is measured from intended[i], not from
 * when px_submit was actually called, so a slow join that delays later sends
 * is charged to those sends as well, as a queue of real requests would be.
 *   submit-to-start = task body's CLOCK_MONOTONIC stamp - intended[i]
 *   submit-to-join  = CLOCK_MONOTONIC after px_join returns - intended[i]
 * CLOCK_MONOTONIC is system-wide, so stamps from the worker process compare
 * with the producer's. Every sample after a warm-up is recorded; percentiles
 * are nearest-rank over all of them. ops/s of a latency row is the rate of
 * samples actually achieved.
 *
 * Usage: px_bench [--json] [--quick] [--only GROUP]
 */
#define _GNU_SOURCE
#include "bench_tasks.h"

#include <pollux.h>

#include <ck_pr.h>
#include <ck_ring.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#define RING_SIZE 4096      /* ck_ring entries; as deep as a Pollux lane */
#define BATCH 64            /* jobs per px_submit_many */
#define ROUNDS 5            /* throughput rounds */
#define SLEEP_SLACK_NS 60000 /* pacing: wake this early, then spin */
#define JOIN_TIMEOUT_S 10.0
#define READY_TIMEOUT_S 10.0
#define MAX_RESULTS 16

/* ---- Configuration and results ----------------------------------------- */

struct config {
    bool json;
    bool quick;
    const char *only;
    uint64_t ring_n, noop_n;  /* per throughput round */
    uint64_t lat_n, lat_warm; /* latency samples per case, and warm-up */
};

struct result {
    char name[48];
    uint64_t n;
    double ops_per_sec;
    bool has_lat;
    uint64_t p50, p99, p999, max;
    double ratio; /* NAN: not meaningful */
};

static struct result results[MAX_RESULTS];
static int nresults;

static void die(const char *what, int err)
{
    fprintf(stderr, "px_bench: %s: %s\n", what, px_strerror(err));
    exit(1);
}

static struct result *add_result(const char *name, uint64_t n, double ops)
{
    if (nresults == MAX_RESULTS) {
        fprintf(stderr, "px_bench: too many results\n");
        exit(1);
    }
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

static double median(double *v, size_t n)
{
    qsort(v, n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Nearest-rank percentile of sorted[0..n). */
static uint64_t percentile(const uint64_t *sorted, size_t n, double q)
{
    size_t k = (size_t)ceil(q * (double)n);
    if (k < 1)
        k = 1;
    if (k > n)
        k = n;
    return sorted[k - 1];
}

/* Sorts the samples in place and stores their percentiles in res. */
static void set_latency(struct result *res, uint64_t *samples, size_t n)
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
static px_region *region_create(char *name, size_t cap)
{
    static int seq;
    snprintf(name, cap, "/px-bench-%d-%d", (int)getpid(), seq++);
    px_region *r;
    int rc = px_region_open(name, &(px_region_opts){.flags = PX_REGION_CREATE}, &r);
    if (rc)
        die(name, rc);
    return r;
}

static void region_remove(px_region *r, const char *name)
{
    int rc = px_region_close(r);
    if (rc)
        die("px_region_close", rc);
    px_region_destroy(name);
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

struct ring_bench {
    ck_ring_t ring;
    ck_ring_buffer_t buf[RING_SIZE];
    uint64_t n;
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
    if (b->sum != n * (n + 1) / 2) {
        fprintf(stderr, "px_bench: ck_ring lost values\n");
        exit(1);
    }
    double ops = (double)n * 1e9 / (double)(b->end_ns - t0);
    free(b);
    return ops;
}

/* ---- (b) No-op task throughput --------------------------------------------- */

static const px_submit_opts detached = {.timeout_s = -1, .flags = PX_SUBMIT_DETACHED};

static void submit_singles(px_region *r, uint64_t n)
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
        if (bench_now_ns() > deadline) {
            fprintf(stderr, "px_bench: only %llu of %llu no-op tasks ran\n",
                    (unsigned long long)atomic_load(&bench_noop_count),
                    (unsigned long long)target);
            exit(1);
        }
        cpu_relax();
    }
}

static void submit_noops(px_region *r, uint64_t n, bool batched)
{
    if (batched)
        submit_batches(r, n);
    else
        submit_singles(r, n);
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
    char name[64];
    px_region *r = region_create(name, sizeof name);
    int rc = px_task_register_all(r);
    if (rc < 0)
        die("px_task_register_all", rc);
    double ring[ROUNDS], single[ROUNDS], batch[ROUNDS], rs[ROUNDS], rb[ROUNDS];
    for (int i = 0; i < ROUNDS; i++) {
        ring[i] = ring_round(c->ring_n);
        single[i] = noop_round(r, c->noop_n, false);
        batch[i] = noop_round(r, c->noop_n, true);
        rs[i] = single[i] / ring[i];
        rb[i] = batch[i] / ring[i];
    }
    region_remove(r, name);
    add_result("ring_spsc", c->ring_n * ROUNDS, median(ring, ROUNDS))->ratio = 1.0;
    add_result("noop_submit", c->noop_n * ROUNDS, median(single, ROUNDS))->ratio =
        median(rs, ROUNDS);
    add_result("noop_submit_many64", c->noop_n * ROUNDS, median(batch, ROUNDS))->ratio =
        median(rb, ROUNDS);
}

/* ---- (c, d) Latency on a fixed schedule ------------------------------------- */

struct lat_case {
    const char *group;
    uint64_t interval_ns;
    unsigned spin_us; /* in-process worker; 0 for a `pollux worker` */
    bool cross_process;
};

struct lat_run {
    uint64_t *start, *join; /* one per sample, from the intended send time */
    uint64_t n;
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

/* Sends warm + n tasks on the schedule; records the last n. */
static void run_schedule(px_region *r, const struct lat_case *lc, uint64_t warm,
                         struct lat_run *out)
{
    uint64_t total = warm + out->n;
    uint64_t t0 = bench_now_ns() + lc->interval_ns, measured_from = 0;
    for (uint64_t i = 0; i < total; i++) {
        uint64_t intended = t0 + i * lc->interval_ns, started, joined;
        if (i == warm)
            measured_from = intended;
        wait_until(intended);
        int rc = stamp_once(r, &started, &joined);
        if (rc)
            die("submit/join of " BENCH_STAMP, rc);
        if (i >= warm) {
            out->start[i - warm] = since(started, intended);
            out->join[i - warm] = since(joined, intended);
        }
    }
    out->elapsed_ns = bench_now_ns() - measured_from;
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
    if (len < 0 || (size_t)len >= cap || access(path, R_OK) != 0) {
        fprintf(stderr, "px_bench: %s not found (build the px_bench target)\n", path);
        exit(1);
    }
}

/* Starts `pollux worker` on the region; it dies with us (PDEATHSIG). */
static pid_t worker_spawn(const char *region)
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
        execl(pollux, pollux, "worker", "--region", region, "--lib", lib, "--workers", "1",
              "--threads", "1", (char *)NULL);
        _exit(127);
    }
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
            fprintf(stderr, "px_bench: pollux worker exited before it was ready\n");
            exit(1);
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
            return;
        }
        usleep(1000);
    }
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
    run_schedule(r, lc, warm, run);
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
    pid_t pid = worker_spawn(name);
    worker_wait_ready(r, pid);
    run_schedule(r, lc, warm, run);
    worker_stop(pid);
    region_remove(r, name);
}

static void add_latency(const struct lat_case *lc, const char *what, uint64_t *samples,
                        const struct lat_run *run)
{
    char row[48];
    snprintf(row, sizeof row, "%s_%s", lc->group, what);
    double rate = (double)run->n * 1e9 / (double)run->elapsed_ns;
    set_latency(add_result(row, run->n, rate), samples, run->n);
}

static void bench_latency(const struct config *c, const struct lat_case *lc)
{
    struct lat_run run = {.n = c->lat_n};
    run.start = calloc(run.n, sizeof *run.start);
    run.join = calloc(run.n, sizeof *run.join);
    if (!run.start || !run.join)
        die("samples", -ENOMEM);
    if (lc->cross_process)
        measure_cross_process(lc, c->lat_warm, &run);
    else
        measure_in_process(lc, c->lat_warm, &run);
    add_latency(lc, "submit_to_start", run.start, &run);
    add_latency(lc, "submit_to_join", run.join, &run);
    free(run.start);
    free(run.join);
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

static void print_row(const struct result *res)
{
    char a[32], b[32], d[32], e[32], ratio[16] = "-";
    if (!isnan(res->ratio))
        snprintf(ratio, sizeof ratio, "%.2f%%", res->ratio * 100);
    if (res->has_lat)
        printf("%-32s %10llu %12.0f %10s %10s %10s %10s %9s\n", res->name,
               (unsigned long long)res->n, res->ops_per_sec, fmt_ns(a, sizeof a, res->p50),
               fmt_ns(b, sizeof b, res->p99), fmt_ns(d, sizeof d, res->p999),
               fmt_ns(e, sizeof e, res->max), ratio);
    else
        printf("%-32s %10llu %12.0f %10s %10s %10s %10s %9s\n", res->name,
               (unsigned long long)res->n, res->ops_per_sec, "-", "-", "-", "-", ratio);
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
    printf("}\n");
}

static const struct result *find_result(const char *name)
{
    for (int i = 0; i < nresults; i++)
        if (strcmp(results[i].name, name) == 0)
            return &results[i];
    return NULL;
}

/* The targets, for the rows that were measured. */
static void print_targets(void)
{
    const struct result *s = find_result("noop_submit");
    const struct result *b = find_result("noop_submit_many64");
    const struct result *spin = find_result("latency_spin_submit_to_start");
    const struct result *sleep = find_result("latency_sleep_submit_to_join");
    printf("\ntargets:\n");
    if (s && b)
        printf("  no-op throughput >= 25%% of ring:      single %.2f%%, batched %.2f%%: %s\n",
               s->ratio * 100, b->ratio * 100,
               s->ratio >= 0.25 && b->ratio >= 0.25 ? "met"
               : b->ratio >= 0.25                  ? "met batched only"
                                                   : "NOT met");
    if (spin)
        printf("  spin submit-to-start p50 < 2 us:       %.2f us: %s\n", spin->p50 / 1e3,
               spin->p50 < 2000 ? "met" : "NOT met");
    if (sleep)
        printf("  sleep submit-to-join p99 < 50 us:      %.2f us: %s\n", sleep->p99 / 1e3,
               sleep->p99 < 50000 ? "met" : "NOT met");
}

static void print_results(const struct config *c)
{
    if (c->json) {
        for (int i = 0; i < nresults; i++)
            print_json(&results[i]);
        return;
    }
    printf("%-32s %10s %12s %10s %10s %10s %10s %9s\n", "name", "n", "ops/s", "p50", "p99",
           "p99.9", "max", "ratio");
    for (int i = 0; i < nresults; i++)
        print_row(&results[i]);
    print_targets();
}

/* ---- Main ----------------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f, "usage: px_bench [--json] [--quick] [--only GROUP]\n"
               "  --json        one JSON object per result line\n"
               "  --quick       smaller counts (a few seconds)\n"
               "  --only GROUP  run the groups whose name starts with GROUP: throughput,\n"
               "                latency_spin, latency_sleep, xproc_spin, xproc_sleep\n");
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
    c->lat_n = c->quick ? 5000 : 40000;
    c->lat_warm = c->quick ? 500 : 2000;
}

static const struct lat_case lat_cases[] = {
    {.group = "latency_spin", .interval_ns = 20000, .spin_us = 1000000},
    {.group = "latency_sleep", .interval_ns = 200000, .spin_us = 1},
    {.group = "xproc_spin", .interval_ns = 20000, .cross_process = true},
    {.group = "xproc_sleep", .interval_ns = 200000, .cross_process = true},
};

int main(int argc, char **argv)
{
    struct config c = {0};
    parse_args(argc, argv, &c);
    if (wanted(&c, "throughput"))
        bench_throughput(&c);
    for (size_t i = 0; i < sizeof lat_cases / sizeof lat_cases[0]; i++)
        if (wanted(&c, lat_cases[i].group))
            bench_latency(&c, &lat_cases[i]);
    if (nresults == 0) {
        fprintf(stderr, "px_bench: no group matches '%s'\n", c.only);
        return 2;
    }
    print_results(&c);
    return 0;
}

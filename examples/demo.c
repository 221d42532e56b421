/*
 * The demo: one producer thread and embedded worker threads push a large
 * number of tasks through a region. Two phases:
 *
 * 1. Throughput: TASKS detached tasks submitted in batches as fast as the
 *    workers take them.
 * 2. Latency: TASKS / 10 tasks sent on a fixed schedule (one every 20 us),
 *    each sample measured from its intended send time to the start of its
 *    body, so a stall delays every later sample instead of hiding them.
 *
 * Then a few joined results.
 *
 *     ./px_demo [TASKS] [THREADS]
 */
#include <pollux.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct job {
    uint64_t seq;
    uint64_t sent_ns;
};

static uint64_t *latency; /* one sample per task, indexed by seq */
static uint64_t total;
static _Atomic uint64_t target; /* done count that wakes main */
static atomic_uint_fast64_t done;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t all_done = PTHREAD_COND_INITIALIZER;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

PX_TASK(square, PX_THREAD)
{
    struct job j;
    if (len != sizeof j)
        return px_fail(ctx, "bad args");
    memcpy(&j, args, sizeof j);
    if (j.seq < total)
        latency[j.seq] = now_ns() - j.sent_ns;
    uint64_t sq = j.seq * j.seq;
    px_result(ctx, &sq, sizeof sq);
    if (atomic_fetch_add(&done, 1) + 1 == atomic_load(&target)) {
        pthread_mutex_lock(&mu);
        pthread_cond_signal(&all_done);
        pthread_mutex_unlock(&mu);
    }
    return 0;
}

static int cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static double pct(const uint64_t *v, uint64_t n, double p)
{
    uint64_t i = (uint64_t)(p / 100.0 * (double)(n - 1));
    return (double)v[i] / 1000.0;
}

static void wait_done(uint64_t n)
{
    pthread_mutex_lock(&mu);
    target = n;
    while (atomic_load(&done) < n)
        pthread_cond_wait(&all_done, &mu);
    pthread_mutex_unlock(&mu);
}

/* Submits total tasks in batches, as fast as they are taken. */
static int flood(px_region *r, const px_submit_opts *o)
{
    enum { BATCH = 32 };
    struct job jobs[BATCH];
    px_job batch[BATCH];
    px_id ids[BATCH];
    for (uint64_t seq = 0; seq < total;) {
        unsigned n = 0;
        uint64_t sent = now_ns();
        for (; n < BATCH && seq < total; n++, seq++) {
            jobs[n] = (struct job){seq, sent};
            batch[n] = (px_job){"square", &jobs[n], sizeof jobs[n]};
        }
        for (unsigned k = 0; k < n;) {
            int rc = px_submit_many(r, batch + k, n - k, o, ids + k);
            if (rc < 0) {
                fprintf(stderr, "px_demo: submit: %s\n", px_strerror(rc));
                return -1;
            }
            k += (unsigned)rc;
        }
    }
    return 0;
}

/* Submits n tasks, one every gap_ns, each stamped with its intended send
 * time. */
static int pace(px_region *r, const px_submit_opts *o, uint64_t n, uint64_t gap_ns)
{
    uint64_t t0 = now_ns() + 1000000;
    for (uint64_t seq = 0; seq < n; seq++) {
        struct job j = {seq, t0 + seq * gap_ns};
        while (now_ns() < j.sent_ns)
            ;
        int rc = px_submit(r, "square", &j, sizeof j, o, NULL);
        if (rc) {
            fprintf(stderr, "px_demo: submit: %s\n", px_strerror(rc));
            return -1;
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    total = argc > 1 ? strtoull(argv[1], NULL, 10) : 1000000;
    unsigned threads = argc > 2 ? (unsigned)atoi(argv[2]) : 1;
    if (total < 10 || threads < 1) {
        fprintf(stderr, "usage: %s [TASKS >= 10] [THREADS >= 1]\n", argv[0]);
        return 2;
    }
    latency = calloc(total, sizeof *latency);
    char name[64];
    snprintf(name, sizeof name, "/px-demo-%d", (int)getpid());
    px_region *r;
    int rc = px_region_open(name, NULL, &r);
    if (rc || !latency) {
        fprintf(stderr, "px_demo: cannot open %s: %s\n", name, px_strerror(rc));
        return 1;
    }
    px_task_register_all(r);
    px_workers *w;
    if ((rc = px_workers_start(r, &(px_workers_opts){.threads = threads, .processes = 1}, &w))) {
        fprintf(stderr, "px_demo: workers: %s\n", px_strerror(rc));
        return 1;
    }
    printf("pollux demo: %llu tasks, 1 producer, %u worker thread(s), region %s\n",
           (unsigned long long)total, threads, name);

    /* Detached tasks: the slot is freed as soon as the task finishes. */
    px_submit_opts detached = {.timeout_s = -1, .flags = PX_SUBMIT_DETACHED};
    uint64_t start = now_ns();
    if (flood(r, &detached) != 0)
        return 1;
    wait_done(total);
    double secs = (double)(now_ns() - start) / 1e9;
    printf("throughput  %.0f tasks/s (%llu tasks in %.3f s)\n", (double)total / secs,
           (unsigned long long)total, secs);

    uint64_t paced = total / 10;
    atomic_store(&done, 0);
    if (pace(r, &detached, paced, 20000) != 0)
        return 1;
    wait_done(paced);
    qsort(latency, paced, sizeof *latency, cmp);
    printf("latency     submit-to-start at 50k tasks/s (us): p50 %.1f  p99 %.1f  p99.9 %.1f  "
           "max %.1f\n",
           pct(latency, paced, 50), pct(latency, paced, 99), pct(latency, paced, 99.9),
           (double)latency[paced - 1] / 1000.0);

    /* A few joined results. */
    for (uint64_t seq = 7; seq < 10; seq++) {
        struct job j = {seq, now_ns()};
        px_id id;
        uint64_t sq = 0;
        size_t n;
        atomic_fetch_add(&done, 1);
        px_submit(r, "square", &j, sizeof j, &(px_submit_opts){.flags = PX_SUBMIT_EPHEMERAL}, &id);
        rc = px_join(r, id, 5.0, &sq, sizeof sq, &n);
        char text[PX_ID_LEN + 1];
        px_id_format(id, text);
        printf("task %s square(%llu) = %llu (%s)\n", text, (unsigned long long)seq,
               (unsigned long long)sq, px_strerror(rc));
    }
    px_workers_stop(w);
    px_region_info info;
    px_region_info_get(r, &info);
    printf("slots in use after the run: %u, arena bytes in use: %llu\n", info.slots_used,
           (unsigned long long)info.arena_used);
    px_region_close(r);
    px_region_destroy(name);
    free(latency);
    return 0;
}

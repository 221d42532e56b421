/*
 * A multi-threaded stress run of one process's producers, joiners and
 * workers, written as a plain program rather than a Criterion test so that
 * it runs under ThreadSanitizer (Criterion's inheritable arena cannot be
 * set up in a TSan process). Exits non-zero on any wrong result.
 *
 * Four producer threads submit tasks singly and in batches, in the three
 * retention modes (kept, ephemeral, detached) and delayed by a few
 * milliseconds (through the timer heap; half of these fail their first
 * run and are retried), while three worker threads
 * and a process pool run them; each producer joins its kept and ephemeral
 * tasks (some through px_wait_any, some after px_info), checks every result,
 * and forgets what it kept. Workers are stopped and started again half-way.
 * At the end every task has run exactly once and the region is empty.
 * With "sync" or "async", the region is durable, with small log segments
 * so that checkpoints run while all this goes on.
 *
 *     px_stress_threads [TASKS_PER_PRODUCER [sync|async]]
 */
#include <pollux.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/mman.h>
#include <unistd.h>

#define PRODUCERS 4
#define BATCH 16

static _Atomic uint32_t *runs; /* per task: times its body ran */
static uint64_t per_producer;
static px_region *region;
static _Atomic int failures;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "px_stress_threads: " __VA_ARGS__);                                    \
            fputc('\n', stderr);                                                                   \
            atomic_fetch_add(&failures, 1);                                                        \
        }                                                                                          \
    } while (0)

static int body(px_ctx *ctx, const void *args, size_t len)
{
    uint64_t seq;
    if (len != sizeof seq)
        return px_fail(ctx, "bad args");
    memcpy(&seq, args, sizeof seq);
    atomic_fetch_add(&runs[seq], 1);
    uint64_t out = seq * 3 + 1;
    return px_result(ctx, &out, sizeof out);
}

/* Fails its first attempt, then runs as `body`. */
static int flaky_body(px_ctx *ctx, const void *args, size_t len)
{
    if (px_task_attempt(ctx) == 1)
        return px_fail(ctx, "first attempt");
    return body(ctx, args, len);
}

static void expect_result(px_id id, uint64_t seq, bool any)
{
    if (any) {
        int i = px_wait_any(region, &id, 1, 10);
        CHECK(i == 0, "wait_any: %s", px_strerror(i));
    }
    uint64_t out = 0;
    size_t n = 0;
    int rc = px_join(region, id, 10, &out, sizeof out, &n);
    CHECK(rc == 0 && n == sizeof out && out == seq * 3 + 1, "task %llu: %s, result %llu",
          (unsigned long long)seq, px_strerror(rc), (unsigned long long)out);
}

/* Submits one batch of tasks [first, first + n) with the given flags. */
static void submit_batch(uint64_t first, unsigned n, uint32_t flags, bool delayed, px_id *ids)
{
    uint64_t seqs[BATCH];
    px_job jobs[BATCH];
    for (unsigned i = 0; i < n; i++) {
        seqs[i] = first + i;
        const char *task = i % 2 ? "stress" : delayed ? "stress_retry" : "stress_proc";
        jobs[i] = (px_job){task, &seqs[i], sizeof seqs[i]};
    }
    px_submit_opts o = {.timeout_s = -1, .flags = flags, .delay_s = delayed ? 0.002 : 0};
    for (unsigned k = 0; k < n;) {
        int rc = px_submit_many(region, jobs + k, n - k, &o, ids + k);
        CHECK(rc > 0, "submit_many: %s", px_strerror(rc));
        if (rc <= 0)
            return;
        k += (unsigned)rc;
    }
}

static void *producer(void *arg)
{
    uint64_t base = (uint64_t)(uintptr_t)arg * per_producer;
    px_id ids[BATCH];
    for (uint64_t done = 0; done < per_producer; done += BATCH) {
        unsigned n = per_producer - done < BATCH ? (unsigned)(per_producer - done) : BATCH;
        unsigned mode = (unsigned)(done / BATCH) % 4;
        uint32_t flags = mode == 1 ? PX_SUBMIT_EPHEMERAL : mode == 2 ? PX_SUBMIT_DETACHED : 0;
        submit_batch(base + done, n, flags, mode == 3, ids);
        if (flags == PX_SUBMIT_DETACHED)
            continue;
        for (unsigned i = 0; i < n; i++) {
            expect_result(ids[i], base + done + i, i % 4 == 0);
            if (flags == 0) {
                px_task_info info;
                CHECK(px_info(region, ids[i], &info) == 0 && info.state == PX_SUCCESS,
                      "info of a finished task");
                CHECK(px_forget(region, ids[i]) == 0, "forget");
            }
        }
    }
    return NULL;
}

static void wait_runs(uint64_t total)
{
    for (int tries = 0; tries < 2000; tries++) {
        uint64_t ran = 0;
        for (uint64_t i = 0; i < total; i++)
            ran += atomic_load(&runs[i]) > 0;
        if (ran == total)
            return;
        usleep(5000);
    }
}

static void remove_dir(const char *dir)
{
    DIR *d = dir[0] ? opendir(dir) : NULL;
    if (!d)
        return;
    struct dirent *e;
    char path[512];
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.') {
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            unlink(path);
        }
    closedir(d);
    rmdir(dir);
}

int main(int argc, char **argv)
{
    per_producer = argc > 1 ? strtoull(argv[1], NULL, 10) : 3000;
    uint64_t total = per_producer * PRODUCERS;
    /* Pool children write the run counts too: the array is shared. */
    runs =
        mmap(NULL, total * sizeof *runs, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    char name[64], dir[64] = "";
    snprintf(name, sizeof name, "/px-stress-%d", (int)getpid());
    px_region_destroy(name);
    px_region_opts ro = {.capacity = 4096};
    if (argc > 2) {
        strcpy(dir, "/tmp/px-stress-XXXXXX");
        if (!mkdtemp(dir))
            return 2;
        ro.durability = strcmp(argv[2], "sync") == 0 ? PX_DURABLE_SYNC : PX_DURABLE_ASYNC;
        ro.log_dir = dir;
        ro.segment_bytes = 65536;
        ro.reap_interval_s = 0.01;
    }
    if (runs == MAP_FAILED || px_region_open(name, &ro, &region))
        return 2;
    px_task_def defs[] = {
        {.name = "stress", .fn = body, .mode = PX_THREAD},
        {.name = "stress_proc", .fn = body, .mode = PX_PROCESS},
        {.name = "stress_retry", .fn = flaky_body, .mode = PX_THREAD, .max_retries = 1}};
    for (size_t i = 0; i < sizeof defs / sizeof defs[0]; i++)
        px_task_register(region, &defs[i]);
    px_workers *w;
    px_workers_opts wo = {.threads = 3, .processes = 2};
    CHECK(px_workers_start(region, &wo, &w) == 0, "workers start");
    pthread_t th[PRODUCERS];
    for (uintptr_t i = 0; i < PRODUCERS; i++)
        pthread_create(&th[i], NULL, producer, (void *)i);
    usleep(20000);
    /* Restart the workers while producers run: interrupted tasks go back
     * to PENDING and run again on the new workers. */
    CHECK(px_workers_stop(w) == 0, "workers stop");
    CHECK(px_workers_start(region, &wo, &w) == 0, "workers restart");
    for (int i = 0; i < PRODUCERS; i++)
        pthread_join(th[i], NULL);
    wait_runs(total);
    px_workers_stop(w);
    for (uint64_t i = 0; i < total; i++)
        CHECK(atomic_load(&runs[i]) == 1, "task %llu ran %u times", (unsigned long long)i,
              atomic_load(&runs[i]));
    px_region_info info;
    px_region_info_get(region, &info);
    CHECK(info.slots_used == 0 && info.arena_used == 0, "region not empty: %u slots, %llu bytes",
          info.slots_used, (unsigned long long)info.arena_used);
    px_region_close(region);
    px_region_destroy(name);
    remove_dir(dir);
    int f = atomic_load(&failures);
    printf("px_stress_threads: %llu tasks, %d failures\n", (unsigned long long)total, f);
    return f ? 1 : 0;
}

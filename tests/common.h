/*
 * Helpers shared by the tests.
 */
#ifndef PX_TESTS_COMMON_H
#define PX_TESTS_COMMON_H

#include <pollux.h>

#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

/* A region name unique to this process and call. */
static inline const char *px_test_name(char *buf, size_t cap)
{
    static int n;
    snprintf(buf, cap, "/px-test-%d-%d", (int)getpid(), n++);
    return buf;
}

/* Opens a fresh region; the test destroys it. */
static inline px_region *px_test_region(char *name, size_t cap, const px_region_opts *o)
{
    px_test_name(name, cap);
    px_region_destroy(name);
    px_region *r = NULL;
    int rc = px_region_open(name, o, &r);
    cr_assert_eq(rc, 0, "px_region_open(%s): %s", name, px_strerror(rc));
    return r;
}

/* A fresh region (capacity 64, a 20 ms reap interval: quick recovery of
 * dead workers) with the definitions [defs, defs + n) registered. */
static inline px_region *px_test_region_defs(char *name, size_t cap, const px_task_def *defs,
                                             size_t n)
{
    px_region *r =
        px_test_region(name, cap, &(px_region_opts){.capacity = 64, .reap_interval_s = 0.02});
    int rc = px_task_register_range(r, defs, defs + n);
    cr_assert_eq(rc, (int)n, "px_task_register_range: %s", px_strerror(rc));
    return r;
}

/* A seed for randomised tests: PX_SEED from the environment, or the time;
 * printed so that a failure can be replayed. */
/* Forks a child attached to region `name`: the parent gets the child's pid
 * (the fork is asserted), the child 0 and its own handle in *child; a child
 * that cannot attach exits with status 2. */
static inline pid_t px_test_fork_attached(const char *name, px_region **child)
{
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0 && px_region_open(name, NULL, child) != 0)
        _exit(2);
    return pid;
}

static inline unsigned px_test_seed(void)
{
    const char *s = getenv("PX_SEED");
    unsigned seed = s ? (unsigned)strtoul(s, NULL, 10) : (unsigned)time(NULL) ^ (unsigned)getpid();
    fprintf(stderr, "seed: PX_SEED=%u\n", seed);
    return seed;
}

/* CLOCK_MONOTONIC in seconds, for measuring waits. */
static inline double px_test_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A zeroed mapping shared with forked children (pool children, or a
 * test's own), for what task bodies record. Never unmapped. */
static inline void *px_test_shared(size_t bytes)
{
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(p, MAP_FAILED);
    return p;
}

/* Starts workers on r; the test stops them. */
static inline px_workers *px_test_workers(px_region *r, unsigned threads, unsigned processes)
{
    px_workers *w = NULL;
    int rc =
        px_workers_start(r, &(px_workers_opts){.threads = threads, .processes = processes}, &w);
    cr_assert_eq(rc, 0, "px_workers_start: %s", px_strerror(rc));
    return w;
}

/* CLOCK_REALTIME in nanoseconds: what due times (at_unix_ns, next_run_ns)
 * count in. */
static inline uint64_t px_test_wall_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Polls until the task is in `state` or `limit` seconds passed; returns the
 * last status seen. */
static inline int px_test_wait_state(px_region *r, px_id id, int state, double limit)
{
    double end = px_test_now() + limit;
    int st;
    while ((st = px_status(r, id)) != state && px_test_now() < end)
        usleep(1000);
    return st;
}

/* Makes a fresh directory /tmp/px-TAG-XXXXXX in buf (at least 64 bytes). */
static inline void px_test_tmpdir(char *buf, size_t cap, const char *tag)
{
    snprintf(buf, cap, "/tmp/px-%s-XXXXXX", tag);
    cr_assert_not_null(mkdtemp(buf), "mkdtemp %s", buf);
}

/* Removes dir and everything below it (test files only: no symlink is
 * followed). */
static inline void px_test_rmtree(const char *dir)
{
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        char path[1024];
        while ((e = readdir(d)) != NULL) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                continue;
            if (snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >= (int)sizeof path)
                continue;
            struct stat st;
            if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode))
                px_test_rmtree(path);
            else
                unlink(path);
        }
        closedir(d);
    }
    rmdir(dir);
}

#endif

/*
 * Helpers shared by the tests.
 */
#ifndef PX_TESTS_COMMON_H
#define PX_TESTS_COMMON_H

#include <pollux.h>

#include <criterion/criterion.h>
#include <stdio.h>
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

/* A seed for randomised tests: PX_SEED from the environment, or the time;
 * printed so that a failure can be replayed. */
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

#endif

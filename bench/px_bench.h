/*
 * What px_bench.c, durable.c and lifecycle.c share: the configuration, the
 * result table, statistics, a worker set and the error exits.
 */
#ifndef PX_BENCH_H
#define PX_BENCH_H

#include <pollux.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct config {
    bool json;
    bool quick;
    const char *only;
    uint64_t ring_n, noop_n; /* per throughput round */
    uint64_t lat_div;        /* divides each latency case's sample count */
    uint64_t lat_warm;       /* warm-up sends before each latency case */
    double dur_secs;         /* durable_sync: length of each measured loop */
    uint64_t dur_async_n;    /* durable_async: tasks per round */
    uint64_t recovery_n;     /* recovery: tasks in the log */
    uint64_t timers_n;       /* lifecycle: delayed tasks in the timer heap */
    uint64_t cancel_n;       /* lifecycle: cancels timed */
};

struct result {
    char name[48];
    uint64_t n;
    double ops_per_sec;
    bool has_lat;
    uint64_t p50, p99, p999, max;
    double ratio;       /* NAN: not meaningful */
    uint64_t scheduled; /* latency rows: sends planned; n < scheduled if cut short */
    char note[256];     /* printed under the table and as "note" in JSON; "" if none */
};

/* Appends a row to the result table. */
struct result *add_result(const char *name, uint64_t n, double ops);

/* Report an error, remove what this run created (cleanup_live), exit(1). */
void fail(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
void die(const char *what, int err) __attribute__((noreturn));

/* Sorts the samples in place and stores their percentiles in res. */
void set_latency(struct result *res, uint64_t *samples, size_t n);

/* Sorts v in place and returns its median. */
double median(double *v, size_t n);
/* Nearest-rank percentile of sorted[0..n). */
uint64_t percentile(const uint64_t *sorted, size_t n, double q);
/* One thread worker and one pool child on r; exits on failure. */
px_workers *bench_one_worker(px_region *r);
void bench_workers_stop(px_workers *w);

/* n detached bench_noop tasks, one px_submit each, waiting for room. */
void bench_submit_singles(px_region *r, uint64_t n);

/* sides.c: the no-op path's submit side and run side, each alone. A
 * region that holds n queued tasks, and one round on it (tasks/s). */
px_region *bench_sides_region(char *name, size_t cap, uint64_t n);
void bench_sides_round(px_region *r, uint64_t n, double *submit_ops, double *run_ops);
void bench_sides_remove(px_region *r, const char *name);
/* Removes the sides region if the run fails; async-signal-safe. */
void sides_cleanup(void);

/* durable.c: the durability groups. */
void bench_durable_sync(const struct config *c);
void bench_durable_async(const struct config *c);
void bench_recovery(const struct config *c);

/* Removes the durability groups' regions and log directories; called by
 * cleanup_live(), so async-signal-safe. */
void durable_cleanup(void);

/* lifecycle.c: delayed submits, a heap of timers, cancel latency. */
void bench_lifecycle(const struct config *c);

/* Removes the lifecycle group's region; called by cleanup_live(), so
 * async-signal-safe. */
void lifecycle_cleanup(void);

#endif

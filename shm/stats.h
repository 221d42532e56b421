/*
 * Metrics in the region: per-queue counters and latency histograms, kept
 * in shards so that no cache line is written by every worker on every
 * task.
 *
 * The region has PX__STAT_SHARDS shards. Shard 0 is shared: it is updated
 * with atomic adds. Every other shard is owned by one thread at a time
 * (owner: proc index + 1, taken by CAS when a thread first counts
 * something, given back when the thread exits or its handle closes, and by
 * the reaper for a dead process); its owner updates it with a relaxed load
 * and store, no locked instruction, and a thread that finds no free shard
 * counts in shard 0. A shard keeps its counts when its owner changes, so
 * readers merge all shards: sums of counters and of histogram buckets.
 * Readers take no lock and may see a count one update behind.
 *
 * Histograms are log-bucketed, HDR style: 4 buckets per power of two
 * (values within 19% share a bucket) from 1 ns to 2^42 ns (73 minutes),
 * with larger values in the last bucket. Buckets of any two histograms
 * line up, so merging is adding.
 */
#ifndef PX_SHM_STATS_H
#define PX_SHM_STATS_H

#include "region.h"

#include <stdbool.h>
#include <stdint.h>

static inline uint32_t px__hist_bucket(uint64_t ns)
{
    if (ns < 4)
        return (uint32_t)ns;
    uint32_t e = 63u - (uint32_t)__builtin_clzll(ns); /* >= 2 */
    uint32_t b = (e - 1) * 4 + (uint32_t)((ns >> (e - 2)) & 3);
    return b < PX__HIST_BUCKETS ? b : PX__HIST_BUCKETS - 1;
}

/* The largest value bucket b holds. */
static inline uint64_t px__hist_upper(uint32_t b)
{
    if (b < 4)
        return b;
    uint32_t e = b / 4 + 1, sub = b % 4;
    return ((4ull + sub + 1) << (e - 2)) - 1;
}

/* Takes a shard for the thread (its index + 1), or 0 if none is free. */
uint32_t px__stats_own_shard(px_region *r, struct px__tls *t);

/* The calling thread's shard's entry for queue q (the shared shard if it
 * has none); *owned says which. NULL for a bad q. Inline: it is on every
 * run's path. */
static inline struct px__qstats *px__stats_of(px_region *r, struct px__tls *t, uint32_t q,
                                              bool *owned)
{
    if (q >= PX__MAX_QUEUES)
        return NULL;
    uint32_t s = !t ? 0 : t->stat_shard || t->stat_none ? t->stat_shard : px__stats_own_shard(r, t);
    *owned = s != 0;
    return &r->stats[s ? s - 1 : 0].q[q];
}

static inline void px__stat_add(_Atomic uint64_t *c, bool owned, uint64_t n)
{
    if (owned)
        atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
                              memory_order_relaxed);
    else
        atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

/* Counts one event of `field` for queue q on the calling thread's shard. */
void px__stat_count(px_region *r, struct px__tls *t, uint32_t q, int field, uint64_t n);
/* Records a latency (ns) in queue q's wait or run histogram. */
void px__stat_time(px_region *r, struct px__tls *t, uint32_t q, bool run, uint64_t ns);

/* Gives back the shard the thread owns, and all of a dead process's. */
void px__stats_release(px_region *r, struct px__tls *t);
void px__stats_release_proc(px_region *r, uint32_t proc);

/* Adds every shard's entry for queue q into out. */
void px__stats_merge(px_region *r, uint32_t q, struct px__qstats *out);

#endif

/*
 * Metrics shards; see stats.h.
 */
#include "stats.h"

/* Takes a free shard for the calling thread, once; after a failure the
 * thread counts in the shared shard for good rather than look again on
 * every task. */
uint32_t px__stats_own_shard(px_region *r, struct px__tls *t)
{
    for (uint32_t i = 1; i < PX__STAT_SHARDS; i++) {
        uint32_t free_owner = 0;
        if (atomic_load_explicit(&r->stats[i].owner, memory_order_relaxed) == 0 &&
            atomic_compare_exchange_strong_explicit(&r->stats[i].owner, &free_owner, r->self + 1,
                                                    memory_order_acq_rel, memory_order_relaxed)) {
            t->stat_shard = i + 1;
            return t->stat_shard;
        }
    }
    t->stat_none = true;
    return 0;
}

void px__stat_count(px_region *r, struct px__tls *t, uint32_t q, int field, uint64_t n)
{
    if (!r->metrics)
        return;
    bool owned;
    struct px__qstats *qs = px__stats_of(r, t, q, &owned);
    if (qs)
        px__stat_add(&qs->count[field], owned, n);
}

void px__stat_time(px_region *r, struct px__tls *t, uint32_t q, bool run, uint64_t ns)
{
    if (!r->metrics)
        return;
    bool owned;
    struct px__qstats *qs = px__stats_of(r, t, q, &owned);
    if (qs)
        px__stat_add(&(run ? qs->run : qs->wait)[px__hist_bucket(ns)], owned, 1);
}

void px__stats_release(px_region *r, struct px__tls *t)
{
    if (t->stat_shard)
        atomic_store_explicit(&r->stats[t->stat_shard - 1].owner, 0, memory_order_release);
    t->stat_shard = 0;
    t->stat_none = false;
}

void px__stats_release_proc(px_region *r, uint32_t proc)
{
    for (uint32_t i = 1; i < PX__STAT_SHARDS; i++) {
        uint32_t want = proc + 1;
        atomic_compare_exchange_strong_explicit(&r->stats[i].owner, &want, 0, memory_order_acq_rel,
                                                memory_order_relaxed);
    }
}

void px__stats_merge(px_region *r, uint32_t q, struct px__qstats *out)
{
    if (q >= PX__MAX_QUEUES)
        return;
    for (uint32_t s = 0; s < PX__STAT_SHARDS; s++) {
        struct px__qstats *in = &r->stats[s].q[q];
        for (int c = 0; c < PX__ST_COUNTERS; c++)
            atomic_fetch_add_explicit(&out->count[c],
                                      atomic_load_explicit(&in->count[c], memory_order_relaxed),
                                      memory_order_relaxed);
        for (uint32_t b = 0; b < PX__HIST_BUCKETS; b++) {
            atomic_fetch_add_explicit(&out->wait[b],
                                      atomic_load_explicit(&in->wait[b], memory_order_relaxed),
                                      memory_order_relaxed);
            atomic_fetch_add_explicit(&out->run[b],
                                      atomic_load_explicit(&in->run[b], memory_order_relaxed),
                                      memory_order_relaxed);
        }
    }
}

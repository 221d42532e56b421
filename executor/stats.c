/*
 * Feeding the region's metrics (shm/stats.h) from the executor, and
 * px_stats: the counters and latency percentiles per queue, and the tasks
 * by state, as every attached process sees them.
 */
#include "executor.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

const int8_t px__outcome_field[PX__DONE_DEAD + 1] = {
    [PX__DONE_OK] = PX__ST_SUCCEEDED, [PX__DONE_FAILED] = PX__ST_FAILED,
    [PX__DONE_REVOKED] = -1,          [PX__DONE_REQUEUED] = -1,
    [PX__DONE_CANCELLED] = -1,        [PX__DONE_RETRY] = PX__ST_RETRIED,
    [PX__DONE_DEAD] = PX__ST_FAILED,
};

void px__stat_begin(px_region *r, px_id id, struct px__stat_run *sr)
{
    struct px__slot *s = &r->slots[PX__ID_IDX(id)];
    sr->q = atomic_load_explicit(&s->queue, memory_order_relaxed);
    sr->enq = atomic_load_explicit(&s->enq_tick, memory_order_relaxed);
    sr->due = atomic_load_explicit(&s->due_ns, memory_order_relaxed);
    sr->t0 = px__ticks(r->tsc);
}

void px__stat_ran(px_region *r, const struct px__stat_run *sr, uint64_t t1, enum px__outcome out)
{
    uint64_t run = t1 > sr->t0 ? px__clock_span_ns(&r->hdr->clock, t1 - sr->t0) : 0;
    px__stat_ended(r, px__tls_get(r), sr->q, px__stat_wait_ns(r, sr->enq, sr->due, sr->t0), true,
                   run, out);
}

/* A percentile of a histogram: the upper bound of the bucket that holds
 * it. */
static uint64_t percentile(const _Atomic uint64_t *h, uint64_t n, double p)
{
    if (n == 0)
        return 0;
    uint64_t want = (uint64_t)(p * (double)n + 0.999999), seen = 0;
    for (uint32_t b = 0; b < PX__HIST_BUCKETS; b++) {
        seen += atomic_load_explicit(&h[b], memory_order_relaxed);
        if (seen >= want)
            return px__hist_upper(b);
    }
    return px__hist_upper(PX__HIST_BUCKETS - 1);
}

static void summarize(const _Atomic uint64_t *h, px_latency *l)
{
    uint64_t n = 0, max = 0;
    for (uint32_t b = 0; b < PX__HIST_BUCKETS; b++) {
        uint64_t c = atomic_load_explicit(&h[b], memory_order_relaxed);
        n += c;
        if (c)
            max = px__hist_upper(b);
    }
    l->count = n;
    l->p50_ns = percentile(h, n, 0.50);
    l->p90_ns = percentile(h, n, 0.90);
    l->p99_ns = percentile(h, n, 0.99);
    l->max_ns = max;
}

/* Counts the tasks of each queue by state, and the oldest PENDING one's
 * enqueue time: a scan of the slots, as px_list makes. */
static void scan_slots(px_region *r, px_region_stats *st, uint64_t *oldest)
{
    for (uint32_t i = 0; i < r->hdr->capacity; i++) {
        struct px__slot *s = &r->slots[i];
        uint64_t c = atomic_load_explicit(&s->ctl, memory_order_acquire);
        uint32_t state = PX__CTL_STATE(c);
        int pub = px__public_state(state);
        if (pub <= 0)
            continue;
        st->by_state[pub]++;
        uint32_t q = atomic_load_explicit(&s->queue, memory_order_relaxed);
        if (q >= st->nqueues)
            continue;
        st->queues[q].by_state[pub]++;
        uint32_t lv = atomic_load_explicit(&s->level, memory_order_relaxed);
        if (pub == PX_PENDING && lv < PX__LEVELS)
            st->queues[q].pending_by_priority[lv + 1]++;
        uint64_t enq = atomic_load_explicit(&s->enq_tick, memory_order_relaxed);
        if (pub == PX_PENDING && (oldest[q] == 0 || enq < oldest[q]))
            oldest[q] = enq;
    }
}

int px_stats(px_region *r, px_region_stats *st)
{
    if (!r || !st)
        return -EINVAL;
    memset(st, 0, sizeof *st);
    uint32_t nq = atomic_load_explicit(&r->hdr->nqueues, memory_order_acquire);
    st->nqueues = nq < PX_MAX_QUEUES ? nq : PX_MAX_QUEUES;
    uint64_t oldest[PX_MAX_QUEUES] = {0};
    scan_slots(r, st, oldest);
    const struct px__clock *clk = &r->hdr->clock;
    uint64_t now = px__clock_real(clk, px__ticks(r->tsc));
    static struct px__qstats zero;
    for (uint32_t q = 0; q < st->nqueues; q++) {
        px_queue_stats *qs = &st->queues[q];
        snprintf(qs->name, sizeof qs->name, "%s", r->queues[q].name);
        struct px__qstats m;
        memcpy(&m, &zero, sizeof m);
        px__stats_merge(r, q, &m);
        uint64_t *c[] = {&qs->submitted, &qs->started, &qs->succeeded,
                         &qs->failed,    &qs->retried, &qs->cancelled};
        for (int k = 0; k < PX__ST_COUNTERS; k++)
            *c[k] = atomic_load_explicit(&m.count[k], memory_order_relaxed);
        summarize(m.wait, &qs->wait);
        summarize(m.run, &qs->run);
        uint64_t o = oldest[q] ? px__clock_real(clk, oldest[q]) : 0;
        qs->oldest_pending_age_ns = o && now > o ? now - o : 0;
        qs->paused = (atomic_load(&r->hdr->paused) >> q) & 1;
    }
    return 0;
}

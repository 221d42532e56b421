/*
 * Retries and dead letters.
 *
 * A run that fails (returns non-zero, calls px_fail or px_retry, or, with
 * max_retries > 0, dies with its worker) is one attempt. The finisher holds
 * the task in FINISHING, writes the error text as its out bytes and then
 * decides here what it becomes:
 *
 *   attempts <= max_retries          -> RETRY, due after the backoff
 *   attempts >  max_retries > 0      -> DEAD  (args and error kept)
 *   max_retries == 0                 -> FAILED
 *
 * A DEAD task stays until px_requeue (DEAD -> FINISHING, held by us while
 * the requeue is logged -> PENDING with attempts 0, pushed) or px_forget.
 */
#include "timer.h"
#include "../persist/journal.h"
#include "../shm/futex.h"

#include <errno.h>
#include <math.h>

/* A per-thread xorshift generator for jitter: it need not be good, only
 * cheap and different across threads and processes. */
static double uniform01(px_id id)
{
    static _Thread_local uint64_t x;
    if (x == 0)
        x = (px__mono_ns() ^ id ^ ((uint64_t)(uintptr_t)&x << 17)) | 1;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return (double)(x >> 11) / 9007199254740992.0;
}

/* The delay before the n-th retry, in seconds. */
static double backoff_s(const struct px__def *d, uint32_t n, px_id id)
{
    double delay = d->retry_delay_s * pow(d->retry_backoff, (double)(n > 0 ? n - 1 : 0));
    if (!(delay <= d->retry_max_delay_s))
        delay = d->retry_max_delay_s;
    return delay * (1 - d->retry_jitter * uniform01(id));
}

uint32_t px__retry_decide(px_region *r, struct px__slot *s, uint64_t fin, bool asked,
                          int64_t delay_ns, uint64_t *due)
{
    uint32_t def = atomic_load_explicit(&s->def, memory_order_relaxed);
    if (def >= r->hdr->max_defs)
        return PX__S_FAILED;
    const struct px__def *d = &r->defs[def];
    int max = d->max_retries;
    uint32_t att = PX__CTL_ATT(fin);
    if (max <= 0 || att > (uint32_t)max)
        return max > 0 ? PX__S_DEAD : PX__S_FAILED;
    px_id id = PX__ID(PX__CTL_GEN(fin), (uint32_t)(s - r->slots));
    double delay = asked && delay_ns >= 0 ? (double)delay_ns / 1e9 : backoff_s(d, att, id);
    *due = px__now_ns() + (uint64_t)(delay * 1e9);
    return PX__S_RETRY;
}

int px_retry(px_ctx *ctx, double delay_s)
{
    if (!ctx)
        return -EINVAL;
    ctx->retry_asked = true;
    ctx->retry_delay_ns = delay_s >= 0 && delay_s < 4e6 ? (int64_t)(delay_s * 1e9) : -1;
    return PX_ERETRY;
}

/* Holds a DEAD task in FINISHING; -errno if it is not DEAD. */
static int hold_dead(struct px__slot *s, px_id id, uint32_t self, uint64_t *held)
{
    for (;;) {
        uint64_t c = atomic_load(&s->ctl);
        uint32_t st = PX__CTL_STATE(c);
        if (PX__CTL_GEN(c) != PX__ID_GEN(id) || st == PX__S_FREE || st == PX__S_RESERVED ||
            st == PX__S_CONSUMING)
            return -ENOENT;
        if (st == PX__S_FINISHING) {
            px__cpu_relax();
            continue;
        }
        if (st != PX__S_DEAD)
            return px__state_finished(st) ? -EPERM : -EBUSY;
        uint64_t want = PX__CTL_WITH(c, PX__S_FINISHING, self);
        if (atomic_compare_exchange_strong(&s->ctl, &c, want)) {
            *held = want;
            return 0;
        }
    }
}

int px_requeue(px_region *r, px_id id)
{
    if (!r)
        return -EINVAL;
    struct px__slot *s = px__slot_of(r, id);
    if (!s)
        return -ENOENT;
    uint32_t key;
    if (!px__slot_key(r, s, &key))
        return -ENOENT;
    struct px__tls *t = px__tls_get(r);
    if (!t)
        return -ENOMEM;
    uint64_t held;
    int rc = hold_dead(s, id, r->self + 1, &held);
    if (rc)
        return rc;
    px__journal_retry(r, id, 0, 0, NULL, 0);
    atomic_store_explicit(&s->start_tick, 0, memory_order_relaxed); /* see limits.c */
    uint64_t pend = PX__CTL(PX__CTL_GEN(held), PX__S_PENDING, r->self + 1, 0, PX__CTL_FLAGS(held));
    atomic_store(&s->ctl, pend);
    rc = px__publish(r, t, key, &id, 1, 0);
    if (rc > 0)
        return 0;
    /* No lane to push into: dead again, as the log will say too. */
    uint64_t back = PX__CTL_WITH(held, PX__S_DEAD, 0);
    if (atomic_compare_exchange_strong(&s->ctl, &pend, back))
        px__journal_finish(r, id, PX__S_DEAD, px__slot_out(r, s),
                           atomic_load_explicit(&s->out_len, memory_order_relaxed));
    return rc;
}

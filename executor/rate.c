/*
 * Per-queue rate limits: at most `rate` starts per second across every
 * worker of every process, with a burst of one second's worth.
 *
 * Each queue has a token bucket in its region entry: one 64-bit word
 * holding the tokens (in 1/256ths, 24 bits) and the CLOCK_MONOTONIC
 * millisecond of the last refill (40 bits; the clock is system-wide, so
 * every process reads the same one). Taking a token is one CAS that refills
 * by the time elapsed and takes 256; a worker that finds fewer leaves the
 * task in its lane and sleeps no longer than until the next token. A
 * process that dies between a take and its claim loses one token, which the
 * refill replaces within 1/rate seconds: no lock, nothing to recover.
 * Queues without a limit cost a take one bit test of the header's `rated`
 * mask, on a line it reads anyway.
 */
#include "executor.h"
#include "../shm/futex.h"
#include "../shm/park.h"

#include <errno.h>
#include <limits.h>

#define MS_BITS 40
#define MS_MASK ((1ull << MS_BITS) - 1)
#define ONE 256ull      /* a token, in 1/256ths */
#define MAX_RATE 65535u /* tokens fit 24 bits with a burst of one second */

static uint64_t now_ms(void)
{
    return (px__mono_ns() / 1000000ull) & MS_MASK;
}

/* The bucket refilled to `now`: tokens, and the refill time to store (the
 * old one if less than 1/256th of a token accrued, so that slow rates
 * accrue across many calls). */
static uint64_t refilled(uint64_t b, uint32_t rate, uint64_t now, uint64_t *at)
{
    uint64_t tok = b >> MS_BITS, last = b & MS_MASK;
    uint64_t add = now > last ? (now - last) * rate * ONE / 1000 : 0;
    *at = add ? now : last;
    uint64_t cap = (uint64_t)rate * ONE;
    return tok + add > cap ? cap : tok + add;
}

bool px__rate_take(px_region *r, uint32_t q, uint64_t *wait_ns)
{
    struct px__queue *e = &r->queues[q];
    uint32_t rate = atomic_load_explicit(&e->rate, memory_order_relaxed);
    if (rate == 0 || rate > MAX_RATE)
        return true;
    uint64_t now = now_ms(), b = atomic_load(&e->bucket), at;
    for (;;) {
        uint64_t tok = refilled(b, rate, now, &at);
        if (tok < ONE) {
            *wait_ns = (ONE - tok) * 1000000000ull / ((uint64_t)rate * ONE) + 1000000;
            return false;
        }
        if (atomic_compare_exchange_weak(&e->bucket, &b, ((tok - ONE) << MS_BITS) | at))
            return true;
    }
}

void px__rate_give(px_region *r, uint32_t q)
{
    struct px__queue *e = &r->queues[q];
    uint32_t rate = atomic_load_explicit(&e->rate, memory_order_relaxed);
    if (rate == 0 || rate > MAX_RATE)
        return;
    uint64_t b = atomic_load(&e->bucket), tok;
    do {
        tok = (b >> MS_BITS) + ONE;
        if (tok > (uint64_t)rate * ONE)
            tok = (uint64_t)rate * ONE;
    } while (!atomic_compare_exchange_weak(&e->bucket, &b, (tok << MS_BITS) | (b & MS_MASK)));
}

int px_queue_set_rate(px_region *r, const char *queue, double per_s)
{
    if (!r || !queue || !(per_s >= 0 && per_s <= MAX_RATE))
        return -EINVAL;
    int q = px__queue_find(r, queue, false);
    if (q < 0)
        return q;
    struct px__queue *e = &r->queues[q];
    uint32_t rate = per_s > 0 && per_s < 1 ? 1 : (uint32_t)per_s;
    /* A full bucket: a burst of one second's worth from now. */
    atomic_store(&e->bucket, ((uint64_t)rate * ONE << MS_BITS) | now_ms());
    atomic_store(&e->rate, rate);
    if (rate) {
        atomic_fetch_or(&r->hdr->rated, 1ull << q);
    } else {
        atomic_fetch_and(&r->hdr->rated, ~(1ull << q));
        /* Workers throttled on it may sleep: the tasks can go now. */
        px__park_wake(r, UINT32_MAX, UINT32_MAX);
    }
    return 0;
}

double px_queue_rate(px_region *r, const char *queue)
{
    if (!r || !queue)
        return -EINVAL;
    int q = px__queue_find(r, queue, false);
    return q < 0 ? q : (double)atomic_load(&r->queues[q].rate);
}

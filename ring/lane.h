/*
 * A lane: a bounded single-producer, multi-consumer ring of 64-bit task ids
 * in the region, following Concurrency Kit's SPMC ring protocol
 * (ck_ring_enqueue_spmc / ck_ring_trydequeue_spmc) with two changes:
 *
 * - The counters are 64 bits. ck_ring's are 32-bit and free-running, so a
 *   consumer stopped (SIGSTOP) between reading head and its CAS could, after
 *   2^32 operations, succeed with a stale value: an ABA that would lose an
 *   entry. 2^64 operations do not happen.
 * - A consumer claims the task an entry names (a CAS on the task's slot)
 *   before it advances head. A consumer that dies between the two steps
 *   leaves a RUNNING task owned by a dead process, which the reaper
 *   requeues, and an entry that the next consumer skips because its claim
 *   fails. Advancing head first would lose the task if it died in between.
 *
 * Invariants:
 * - Only the lane's owner writes tail and the entries; it publishes entries
 *   with a store of tail (see px__lane_push_cached). It writes entry t only once
 *   t - head < depth, i.e. once every consumer has moved past entry
 *   t - depth, so an entry is never overwritten while it can still be read
 *   and then successfully claimed.
 * - Consumers read tail (acquire), read the entry, then CAS head. A consumer
 *   that loses the CAS read a value that another consumer took; it retries.
 * - A producer that dies after writing an entry but before storing tail has
 *   published nothing. A stopped producer or consumer blocks no one: the
 *   others never wait for it.
 *
 * The memory orderings are C11 atomics rather than ck_pr so that
 * ThreadSanitizer can check them (ck_pr on x86-64 is inline assembly).
 */
#ifndef PX_RING_LANE_H
#define PX_RING_LANE_H

#include "../shm/layout.h"

#include <stdbool.h>
#include <stdint.h>

static inline uint64_t px__lane_size(struct px__lane *l)
{
    uint64_t h = atomic_load_explicit(&l->head, memory_order_acquire);
    uint64_t t = atomic_load_explicit(&l->tail, memory_order_acquire);
    return t - h;
}

/* Owner only. Pushes ids[0..n); returns how many fit (all or a prefix). The
 * publication is one store, so a batch costs one cache-line transfer of
 * tail. *head_seen is the owner's last reading of head, a lower bound of it
 * (head only grows): head, a line that consumers write, is read again only
 * when that bound says there is not enough room. `light`: publish with a
 * release store, the sleepers' barrier standing in for the fence
 * (shm/fence.h); otherwise seq_cst. */
static inline uint32_t px__lane_push_cached(struct px__lane *l, _Atomic uint64_t *ent,
                                            uint32_t mask, const uint64_t *ids, uint32_t n,
                                            uint64_t *head_seen, bool light)
{
    uint64_t t = atomic_load_explicit(&l->tail, memory_order_relaxed);
    uint64_t depth = (uint64_t)mask + 1;
    if (t - *head_seen > depth || depth - (t - *head_seen) < n)
        *head_seen = atomic_load_explicit(&l->head, memory_order_acquire);
    uint64_t room = depth - (t - *head_seen);
    if (n > room)
        n = (uint32_t)room;
    for (uint32_t i = 0; i < n; i++)
        atomic_store_explicit(&ent[(t + i) & mask], ids[i], memory_order_relaxed);
    /* The caller then reads the sleeper count, and a worker going to sleep
     * announces itself before reading tail: one of the two must see the
     * other. seq_cst on both sides does it, or (light) a release store
     * here and the sleeper's barrier on our CPU (shm/fence.h). */
    if (n && light)
        atomic_store_explicit(&l->tail, t + n, memory_order_release);
    else if (n)
        atomic_store_explicit(&l->tail, t + n, memory_order_seq_cst);
    return n;
}

static inline uint32_t px__lane_push(struct px__lane *l, _Atomic uint64_t *ent, uint32_t mask,
                                     const uint64_t *ids, uint32_t n)
{
    uint64_t head_seen = atomic_load_explicit(&l->head, memory_order_acquire);
    return px__lane_push_cached(l, ent, mask, ids, n, &head_seen, false);
}

/* Reads the entry at head without taking it. Returns false if empty.
 * *tail_seen is the caller's last reading of this lane's tail, or a reading
 * of its head if it has none:
 * tail is read again, a line the owner writes on every push, only when that
 * lower bound says the lane may be empty. A consumer behind the producer
 * thus takes a run of entries for one transfer of tail. An entry below a
 * tail this thread read with acquire is published, and tail only grows, so
 * the bound is always safe to use. */
static inline bool px__lane_peek(struct px__lane *l, _Atomic uint64_t *ent, uint32_t mask,
                                 uint64_t *pos, uint64_t *id, uint64_t *tail_seen)
{
    uint64_t h = atomic_load_explicit(&l->head, memory_order_acquire);
    /* The bound is usable while 1 <= bound - head <= depth; differences,
     * not comparisons, so that counters may wrap. Other consumers may have
     * moved head past it, which makes the difference huge. */
    if (*tail_seen - h - 1 > mask) {
        *tail_seen = atomic_load_explicit(&l->tail, memory_order_seq_cst);
        if (*tail_seen == h)
            return false;
    }
    *id = atomic_load_explicit(&ent[h & mask], memory_order_relaxed);
    *pos = h;
    return true;
}

/* Moves head past pos if no one has yet. */
static inline void px__lane_advance(struct px__lane *l, uint64_t pos)
{
    atomic_compare_exchange_strong_explicit(&l->head, &pos, pos + 1, memory_order_seq_cst,
                                            memory_order_relaxed);
}

#endif

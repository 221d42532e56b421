/*
 * Task slots: reserving, freeing, locating payloads, waking waiters.
 *
 * A slot changes hands only by CAS on its ctl word (see layout.h), so one
 * process holds it at a time:
 *
 *   FREE(g) --reserve--> RESERVED(g, producer) --publish--> PENDING(g)
 *   PENDING --claim--> RUNNING(g, worker) --finish--> FINISHING --> SUCCESS
 *                                                               \-> FAILED
 *   SUCCESS/FAILED --forget, join of an ephemeral--> FREE(g + 1)
 *   RUNNING --finish of a detached task--> FREE(g + 1)
 *
 * Freeing bumps the generation in the same CAS, so every id of the old task
 * is stale from that instant. The chunks of the old task are released after
 * the CAS, by tag; a process that dies in between leaves orphans that the
 * arena sweep releases (their tag's generation no longer matches).
 */
#include "region.h"
#include "futex.h"
#include "../ring/lane.h"

#include <errno.h>
#include <limits.h>
#include <string.h>

int px__slot_reserve(px_region *r, struct px__tls *t, uint32_t flags, px_id *id)
{
    uint32_t cap = r->hdr->capacity, idx = t->slot_cursor < cap ? t->slot_cursor : 0;
    uint32_t owner = r->self + 1;
    for (uint32_t seen = 0; seen < cap; seen++, idx = idx + 1 == cap ? 0 : idx + 1) {
        struct px__slot *s = &r->slots[idx];
        uint64_t c = atomic_load_explicit(&s->ctl, memory_order_relaxed);
        if (PX__CTL_STATE(c) != PX__S_FREE)
            continue;
        uint64_t want = PX__CTL(PX__CTL_GEN(c), PX__S_RESERVED, owner, 0, flags);
        if (atomic_compare_exchange_strong_explicit(&s->ctl, &c, want, memory_order_acq_rel,
                                                    memory_order_relaxed)) {
            t->slot_cursor = idx + 1 == cap ? 0 : idx + 1;
            *id = PX__ID(PX__CTL_GEN(c), idx);
            return 0;
        }
    }
    return -EAGAIN;
}

bool px__slot_free(px_region *r, uint32_t idx, uint64_t seen)
{
    struct px__slot *s = &r->slots[idx];
    uint32_t args_chunk = atomic_load_explicit(&s->args_chunk, memory_order_relaxed);
    uint32_t args_len = atomic_load_explicit(&s->args_len, memory_order_relaxed);
    uint32_t out_chunk = atomic_load_explicit(&s->out_chunk, memory_order_relaxed);
    uint32_t out_len = atomic_load_explicit(&s->out_len, memory_order_relaxed);
    uint32_t gen = PX__CTL_GEN(seen) + 1;
    if (gen == 0)
        gen = 1;
    if (!atomic_compare_exchange_strong(&s->ctl, &seen, PX__CTL(gen, PX__S_FREE, 0, 0, 0)))
        return false;
    uint64_t tag = PX__ID(PX__CTL_GEN(seen), idx);
    px__arena_free(r, tag, args_chunk, args_len);
    px__arena_free(r, tag, out_chunk, out_len);
    px__wake_slot(r, s);
    px__wake_room(r);
    return true;
}

void px__slot_unreserve(px_region *r, px_id id)
{
    uint32_t gen = PX__ID_GEN(id) + 1;
    atomic_store_explicit(&r->slots[PX__ID_IDX(id)].ctl,
                          PX__CTL(gen ? gen : 1, PX__S_FREE, 0, 0, 0), memory_order_release);
}

const uint8_t *px__slot_chunks(px_region *r, uint32_t c, uint32_t len)
{
    if (len > r->hdr->max_payload || c >= r->hdr->nchunks ||
        px__arena_chunks(r, len) > r->hdr->nchunks - c)
        return NULL;
    return px__arena_ptr(r, c);
}

#if defined(__SANITIZE_THREAD__)
__attribute__((no_sanitize("thread"))) void px__copy_checked(void *dst, const void *src, size_t n)
{
    /* Volatile, so that the loop is not turned into a call of memcpy,
     * which ThreadSanitizer intercepts. */
    const volatile uint8_t *from = src;
    uint8_t *to = dst;
    for (size_t i = 0; i < n; i++)
        to[i] = from[i];
}
#else
void px__copy_checked(void *dst, const void *src, size_t n)
{
    memcpy(dst, src, n);
}
#endif

/*
 * Called after a transition that a joiner may wait for. The transition was a
 * seq_cst CAS and joiners increment `waiters` (seq_cst) before re-checking
 * ctl, so either they see the new ctl or we see their count: no lost wake.
 * The counts were read once already (region.h); each is read again here,
 * since only one of the two may be non-zero.
 */
void px__wake_slot_waiters(px_region *r, struct px__slot *s)
{
    if (atomic_load(&s->waiters) != 0) {
        atomic_fetch_add(&s->wake, 1);
        px__futex_wake(&s->wake, INT_MAX);
    }
    if (atomic_load(&r->hdr->done_waiters) != 0) {
        atomic_fetch_add(&r->hdr->done_seq, 1);
        px__futex_wake(&r->hdr->done_seq, INT_MAX);
    }
}

/*
 * Waiters for room stay counted from before they sleep until after they
 * wake, tens of microseconds on a busy machine, and every slot or lane
 * entry freed meanwhile would wake them again: a system call a task, for
 * nothing, on the worker's path. So a waiter arms its word (seq_cst) after
 * it is counted and after it has read the sequence, and a waker disarms it
 * (exchange) before it bumps the sequence and wakes them all:
 * - a waiter that armed before a disarm read the sequence before the bump
 *   that follows it, so its wait fails or that bump's wake reaches it;
 * - one that armed after the last disarm leaves the word armed for the
 *   next waker;
 * - a waker that finds the word unarmed made its room (a seq_cst
 *   read-modify-write) before the waiter armed, so the waiter's retry,
 *   after its arming, sees that room; should another producer take it
 *   first, the next room made finds the word armed.
 * (Arming before reading the sequence would lose a wake: a waiter whose
 * arming a waker consumed could read the sequence after that waker's bump,
 * lose the room it was woken for to another producer, and sleep with the
 * word unarmed.)
 */
static bool disarm(_Atomic uint32_t *armed)
{
    return atomic_load(armed) && atomic_exchange(armed, 0);
}

void px__wake_room_waiters(px_region *r)
{
    if (!disarm(&r->hdr->room_armed))
        return;
    atomic_fetch_add(&r->hdr->room_seq, 1);
    px__futex_wake(&r->hdr->room_seq, INT_MAX);
}

/* Waking on every entry taken would cost a context switch a task: only
 * once the lane is at most half full. */
void px__wake_lane_waiters(px_region *r, struct px__lane *l)
{
    if (px__lane_size(l) <= (r->lane_mask + 1) / 2 && disarm(&r->hdr->lane_armed)) {
        atomic_fetch_add(&r->hdr->lane_seq, 1);
        px__futex_wake(&r->hdr->lane_seq, INT_MAX);
    }
}

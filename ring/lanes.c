/*
 * Lane ownership.
 *
 * A lane's owner is a proc index + 1 (0: free) and is changed only by CAS,
 * so two threads never own one lane. Within a process the owning thread is
 * the one whose per-thread state lists the lane; it releases the lane when
 * it exits (pthread key destructor) or the handle closes, and the reaper
 * releases the lanes of a dead process. Entries a released lane still holds
 * stay consumable, and a new owner continues from its tail.
 *
 * A lane keeps its key (queue, level and mode) while it holds entries: an owner
 * may take a lane of another key only when the lane is empty, so a worker
 * never finds a task of a queue it does not serve. Since the new owner is
 * the only producer, "empty" cannot change to "not empty" under it.
 */
#include "lanes.h"

#include <errno.h>

static void raise_hwm(px_region *r, uint32_t idx)
{
    uint32_t hwm = atomic_load_explicit(&r->hdr->lanes_hwm, memory_order_relaxed);
    while (hwm <= idx &&
           !atomic_compare_exchange_weak_explicit(&r->hdr->lanes_hwm, &hwm, idx + 1,
                                                  memory_order_release, memory_order_relaxed))
        ;
}

/* Records that a lane holds key's priority level, so that takes walk the
 * lanes level by level from now on (executor/run.c). */
static void note_level(px_region *r, uint32_t key)
{
    uint32_t bit = 1u << PX__KEY_LEVEL(key);
    /* A locked RMW, ordered before the tail store that follows: a worker
     * that sees the entry sees the level too, and one going to sleep reads
     * levels only after its count and barrier (shm/fence.h). */
    if (!(atomic_load_explicit(&r->hdr->levels, memory_order_relaxed) & bit))
        atomic_fetch_or(&r->hdr->levels, bit);
}

/*
 * Picks a free lane, in order of preference: one with our key that is at
 * most half full (its entries keep their order, and it has room), then an
 * empty one of any key, then one with our key and any room at all.
 */
static bool wanted(px_region *r, struct px__lane *l, uint32_t key, int pass)
{
    uint64_t size = px__lane_size(l), depth = (uint64_t)r->lane_mask + 1;
    uint32_t k = atomic_load_explicit(&l->key, memory_order_relaxed);
    if (pass == 0)
        return k == key && size <= depth / 2;
    if (pass == 1)
        return size == 0;
    return k == key && size < depth;
}

static int acquire(px_region *r, uint32_t key)
{
    uint32_t me = r->self + 1;
    for (int pass = 0; pass < 3; pass++) {
        for (uint32_t i = 0; i < r->hdr->lanes; i++) {
            struct px__lane *l = &r->lanes[i];
            uint32_t free_owner = 0;
            if (atomic_load_explicit(&l->owner, memory_order_relaxed) != 0 ||
                !wanted(r, l, key, pass))
                continue;
            if (!atomic_compare_exchange_strong_explicit(
                    &l->owner, &free_owner, me, memory_order_acq_rel, memory_order_relaxed))
                continue;
            if (atomic_load_explicit(&l->key, memory_order_relaxed) != key) {
                if (px__lane_size(l) != 0) {
                    atomic_store_explicit(&l->owner, 0, memory_order_release);
                    continue;
                }
                atomic_store_explicit(&l->key, key, memory_order_release);
            }
            note_level(r, key);
            raise_hwm(r, i);
            return (int)i;
        }
    }
    return -EAGAIN;
}

int px__lane_for(px_region *r, struct px__tls *t, uint32_t key)
{
    for (uint32_t i = 0; i < t->nlanes; i++)
        if (t->lane_key[i] == key)
            return (int)t->lane_idx[i];
    if (t->nlanes == PX__TLS_LANES)
        return -EAGAIN;
    int idx = acquire(r, key);
    if (idx < 0)
        return idx;
    t->lane_key[t->nlanes] = key;
    t->lane_idx[t->nlanes] = (uint32_t)idx;
    t->lane_head[t->nlanes] = atomic_load_explicit(&r->lanes[idx].head, memory_order_acquire);
    t->nlanes++;
    return idx;
}

void px__lanes_release_proc(px_region *r, uint32_t proc)
{
    uint32_t hwm = atomic_load_explicit(&r->hdr->lanes_hwm, memory_order_acquire);
    for (uint32_t i = 0; i < hwm && i < r->hdr->lanes; i++) {
        uint32_t want = proc + 1;
        atomic_compare_exchange_strong_explicit(&r->lanes[i].owner, &want, 0, memory_order_acq_rel,
                                                memory_order_relaxed);
    }
}

uint64_t *px__lane_head_seen(struct px__tls *t, uint32_t lane)
{
    for (uint32_t i = 0; i < t->nlanes; i++)
        if (t->lane_idx[i] == lane)
            return &t->lane_head[i];
    return NULL;
}

uint32_t px__lanes_fill(px_region *r, uint32_t key, const uint64_t *ids, uint32_t n)
{
    uint32_t done = 0;
    while (done < n) {
        int i = acquire(r, key);
        if (i < 0)
            break;
        struct px__lane *l = &r->lanes[i];
        uint32_t k =
            px__lane_push(l, px__lane_entries(r, (uint32_t)i), r->lane_mask, ids + done, n - done);
        atomic_store_explicit(&l->owner, 0, memory_order_release);
        if (k == 0)
            break;
        done += k;
    }
    return done;
}

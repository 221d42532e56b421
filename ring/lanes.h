/*
 * The lane table: which thread produces into which lane.
 */
#ifndef PX_RING_LANES_H
#define PX_RING_LANES_H

#include "../shm/region.h"
#include "lane.h"

/* The lane the calling thread owns for key, acquiring a free one if it has
 * none. -EAGAIN if every lane is owned. */
int px__lane_for(px_region *r, struct px__tls *t, uint32_t key);

/* The calling thread's cached reading of its lane's head. */
uint64_t *px__lane_head_seen(struct px__tls *t, uint32_t lane);

/* Pushes ids of one key into as many free lanes as they need, releasing
 * each lane once filled (its entries stay consumable): for a recovery that
 * queues more tasks than one lane holds. Returns how many were pushed. */
uint32_t px__lanes_fill(px_region *r, uint32_t key, const uint64_t *ids, uint32_t n);

/* Releases every lane owned by proc index `proc` (a dead process's). */
void px__lanes_release_proc(px_region *r, uint32_t proc);

static inline _Atomic uint64_t *px__lane_entries(px_region *r, uint32_t lane)
{
    return r->entries + (size_t)lane * r->hdr->lane_depth;
}

#endif

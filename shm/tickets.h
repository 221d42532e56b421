/*
 * Concurrency tickets: how a queue with a concurrency limit K lets at most
 * K of its tasks run at once, across every worker of every process.
 *
 * Each queue has PX__CONC_MAX ticket words in the region; a task may start
 * only while its worker holds one of the queue's first K. A word is 0 when
 * free, or (holder's proc index + 1) << 32 | the task's slot index:
 *
 * - Taking is a CAS 0 -> value on a free word among the first K, before the
 *   claim; a claim that then fails gives the ticket back. Giving back is a
 *   CAS value -> 0, so it never frees a ticket someone else took since.
 * - The holder gives its ticket back when the task's body has returned
 *   (not when the task's state changes: a run failed past its time limit
 *   keeps its ticket until its body really stops), or the claim failed.
 * - A process that dies holding tickets (between a take and its claim,
 *   while running, or before giving back) leaks none: the holder is in the
 *   word, and the reaper frees every ticket of a dead process, as a
 *   process that detaches frees its own. There is no count to repair.
 * - Lowering K leaves tickets held above it; they are given back as their
 *   tasks end, and until then at most the old K run.
 */
#ifndef PX_SHM_TICKETS_H
#define PX_SHM_TICKETS_H

#include "region.h"

#include <stdint.h>

/* Takes a free ticket among queue q's first `limit` for the task in slot
 * idx, looking from `hint` on; returns its position in the table + 1, or 0
 * if all are held. */
uint32_t px__ticket_take(px_region *r, uint32_t q, uint32_t limit, uint32_t idx, uint32_t hint);

/* Gives back the ticket at pos (as px__ticket_take returned it) if it still
 * holds our value for slot idx. The store is seq_cst, and the caller then
 * calls px__tickets_wake, which reads the sleepers: a worker that goes to
 * sleep announces itself before it reads the tickets, so either it sees
 * this one free or the wake sees it. */
void px__ticket_give(px_region *r, uint32_t pos, uint32_t idx);

/* How many of queue q's tickets are held. */
uint32_t px__tickets_held(px_region *r, uint32_t q);

/* Frees every ticket held by proc index `proc`; returns a mask of the
 * queues that had one. */
uint64_t px__tickets_release_proc(px_region *r, uint32_t proc);

/* Wakes the sleeping workers of the queues in the mask, if there are any:
 * after tickets were given back. */
void px__tickets_wake(px_region *r, uint64_t queues);

#endif

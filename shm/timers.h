/*
 * The timer heap: every SCHEDULED or RETRY task, by due time.
 *
 * A binary min-heap of (due, id) pairs in the region, one entry per slot at
 * most, under the header's robust, process-shared timer_lock. The slots are
 * the truth and the heap is an index of them:
 *
 * - A task enters SCHEDULED or RETRY only under the lock, in the critical
 *   section that pushes its entry, so outside the lock every slot in those
 *   states has an entry, and one whose due time is the slot's due_ns.
 * - A task leaves them by one CAS on its ctl word, under the lock (a timer
 *   thread firing it) or not (px_cancel). An entry whose slot has moved on,
 *   or was reused (the generation in its id differs), is stale: popping it
 *   does nothing.
 * - A process that dies holding the lock may leave the heap half-sifted.
 *   The next locker gets EOWNERDEAD and rebuilds the heap from the slots.
 *   Stale entries filling the heap cause a rebuild too: live entries are at
 *   most one per slot, so a rebuild always makes room.
 *
 * timer_next mirrors the root's due time (UINT64_MAX when empty); it is
 * stored under the lock and read without it by timer threads choosing how
 * long to sleep. Due times are CLOCK_REALTIME nanoseconds, because at_unix_ns
 * is and because a durable region's timers outlive a reboot.
 */
#ifndef PX_SHM_TIMERS_H
#define PX_SHM_TIMERS_H

#include "pollux.h"

#include <stdbool.h>
#include <stdint.h>

struct px__timer {
    uint64_t due;
    uint64_t id;
};

/* Takes the heap lock, rebuilding the heap if its last holder died. */
void px__timers_lock(px_region *r);
void px__timers_unlock(px_region *r);

/* Under the lock: adds an entry for a slot already stored in its timed
 * state. Returns true if it is now the earliest,
 * so that the caller wakes a timer thread (px__timers_kick) once unlocked. */
bool px__timers_push(px_region *r, uint64_t due, uint64_t id);

/* Under the lock: the earliest entry, if any. */
bool px__timers_peek(px_region *r, struct px__timer *out);
/* Under the lock: removes the earliest entry. */
void px__timers_pop(px_region *r);

/* Under the lock: rebuilds the heap from the slots' states. */
void px__timers_rebuild(px_region *r);

/* Wakes one sleeping timer thread: the earliest due time changed. */
void px__timers_kick(px_region *r);

#endif

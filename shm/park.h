/*
 * Parking places: where idle workers sleep, one place per worker thread or
 * process dispatcher, so that a sleeping worker is woken once per sleep.
 *
 * Why places and not one futex word: a worker stays counted in sleepers[]
 * from before it sleeps until after it has woken, tens of microseconds on a
 * busy machine, and with one shared word every submit in that window saw
 * the count and made a futex call (about 200 per sleep in a stream of
 * durable submits, on the producer's path). A waker now claims a sleeper
 * before it wakes it, and a sleeper already claimed is not woken again.
 *
 * Who writes what (struct px__park, shm/layout.h):
 * - owner: set by CAS 0 -> proc index + 1 when a worker set claims the
 *   place (px_workers_start), cleared by its release when the set stops,
 *   or by the reaper for a dead process.
 * - bits: the work bits (futex.h) its sleeper serves, written by the owner
 *   before it parks.
 * - state: IDLE -> PARKED by the owner (seq_cst), before the sleepers'
 *   barrier and its last look at the lanes; PARKED -> WOKEN by a waker's
 *   CAS; PARKED or WOKEN -> IDLE by the owner once awake.
 * - word: the owner's futex word; the waker whose CAS claimed the place
 *   bumps it, then wakes the owner.
 *
 * Why no task waits for a sleeper that nobody wakes: the owner counts
 * itself in sleepers[] and stores PARKED, then issues the sleepers'
 * barrier (or, in a symmetric region, relies on seq_cst on both sides;
 * shm/fence.h), then looks at the lanes once more. A producer stores its
 * lane's tail, then reads sleepers[] and the states. By the barrier's
 * argument either that last look sees the entry, or the producer sees the
 * count and this sleep's PARKED. Seeing PARKED, it claims the place and
 * wakes the owner (its futex wait, on the word it read before parking,
 * fails or is woken), or finds the place claimed by another waker, whose
 * wake is on its way; an owner already awake looks at the lanes before it
 * sleeps again. A producer that reads IDLE or WOKEN read it before this
 * sleep's PARKED, so before the barrier, and its entry is seen.
 *
 * What a death or a delay costs: a waker that dies between its claim and
 * its wake leaves the owner asleep until its timeout (at most a second);
 * one stopped or descheduled there delays it as long, and meanwhile other
 * wakers pass the claimed place by. A waker whose view of a place is old
 * (released and claimed again by another worker set between its reads)
 * may wake a sleeper of other bits and count it; the sleeper it meant to
 * wake then also waits for its timeout. Both are rare and bounded. An owner
 * that dies parked leaves a PARKED place: the next waker claims it, finds
 * nobody to wake (the futex wake returns 0) and wakes another sleeper in
 * its stead; the reaper then frees the place. A claimed sleeper not yet in
 * its futex wait also makes the wake return 0, and so does a stopped one
 * (SIGSTOP takes a thread out of its wait; the kernel restarts the wait
 * when it continues): either finds the bumped word and does not sleep, and
 * the extra wake is a wasted one, never a lost one.
 */
#ifndef PX_SHM_PARK_H
#define PX_SHM_PARK_H

#include "region.h"

#include <stdint.h>

/* Claims a free place for this process: its index, or -EAGAIN if all
 * PX__MAX_PARKS are taken. */
int px__park_claim(px_region *r);

/* Gives back a place the caller claimed; its owner no longer sleeps. */
void px__park_release(px_region *r, uint32_t i);

/* Frees every place of proc, a dead process (the reaper). */
void px__park_release_proc(px_region *r, uint32_t proc);

/* The owner's side. px__park_arm stores PARKED with the sleeper's bits and
 * returns the word to wait on; the caller then issues the sleepers'
 * barrier, looks at the lanes, and sleeps with px__park_sleep unless it
 * found a task; px__park_leave ends the sleep (or the attempt). */
uint32_t px__park_arm(px_region *r, uint32_t i, uint32_t bits);
void px__park_sleep(px_region *r, uint32_t i, uint32_t seen, int64_t ns);
void px__park_leave(px_region *r, uint32_t i);

/* The waker's side: wakes up to nr parked sleepers that serve a bit of
 * `bits` (UINT32_MAX: every one); returns how many it woke. The caller
 * has published what they are woken for, and read a non-zero sleeper
 * count for one of the bits. */
uint32_t px__park_wake(px_region *r, uint32_t bits, uint32_t nr);

#endif

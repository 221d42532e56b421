/*
 * Asymmetric fences for the one store-then-load handshake on the submit
 * path.
 *
 * A producer publishes lane entries by storing the lane's tail, then reads
 * the count of sleeping workers to decide whether to wake one; a worker on
 * its way to sleep counts itself in, then reads tail once more. Each side
 * needs its store ordered before its load, or both can miss the other and
 * the entry waits in the lane while the worker sleeps. With a fence on both
 * sides every publication pays a locked instruction on a line the workers
 * read, the most expensive step of a submit.
 *
 * So the producer pays nothing: it publishes with a release store. The
 * worker, on its rare way to sleep, has the kernel run a full memory
 * barrier on every CPU that runs a thread of a registered process
 * (membarrier, MEMBARRIER_CMD_GLOBAL_EXPEDITED; a thread not running has
 * passed a barrier in its context switch). For any producer, the barrier
 * falls either after its tail store, which the worker's read of tail then
 * sees, or before its read of the sleeper count, which then sees the
 * worker.
 *
 * Who may do what:
 * - A region is asymmetric (hdr->fences) if the process that made it could
 *   register for those barriers. In an asymmetric region every worker
 *   issues the barrier before it sleeps; a process that cannot issue it
 *   cannot start workers there (-EPERM).
 * - A process publishes with a release store only if the region is
 *   asymmetric and the process itself is registered; otherwise it uses a
 *   seq_cst store, which pairs with the worker's seq_cst count as before.
 * - Registration is per process and a fork does not inherit it: the child
 *   counts as unregistered (a pthread_atfork handler) until it registers
 *   again, which a pool child does when it attaches.
 */
#ifndef PX_SHM_FENCE_H
#define PX_SHM_FENCE_H

#include <stdatomic.h>
#include <stdbool.h>

enum { PX__FENCES_SYMMETRIC = 0, PX__FENCES_ASYMMETRIC = 1 };

/* 1 while this process is registered for the sleepers' barriers. */
extern _Atomic int px__fence_registered;

/* Registers this process (once; again in a forked child); true if it is
 * registered. */
bool px__fence_register(void);

/* The sleeper's side: a full barrier on every CPU running a registered
 * process. 0 or a negative errno. */
int px__fence_all(void);

/* The producer's side: may this process publish with a release store in a
 * region whose header says `fences`? */
static inline bool px__fence_light(unsigned fences)
{
    return fences == PX__FENCES_ASYMMETRIC &&
           atomic_load_explicit(&px__fence_registered, memory_order_relaxed) == 1;
}

#endif

/*
 * What the executor tells the log: one call per task event. Each is a no-op
 * (and costs one branch) in a region that is not durable.
 *
 * Order matters and is the executor's to keep: a SUBMIT is appended before
 * its task is pushed to a lane (so a START, appended after a claim, always
 * has a larger LSN), and in sync mode px_submit waits for it before the
 * push, so a task never runs before its submit is durable and a submit
 * whose flush failed can be undone without anyone having seen it.
 */
#ifndef PX_PERSIST_JOURNAL_H
#define PX_PERSIST_JOURNAL_H

#include "record.h"
#include "../shm/region.h"

#include <stdint.h>

/* Returns the record's ticket for px__journal_wait (0 when not durable),
 * or a negative errno if it could not be appended. */
int64_t px__journal_submit(px_region *r, px_id id, uint32_t flags, const void *args, uint32_t len,
                           uint64_t due_ns, uint64_t key);
/*
 * The SUBMITs of one px_submit_many call, gathered into SUBMIT_MANY records
 * built in place in the log's ring: a task goes into the open record if it
 * shares its definition, queue, priority, flags and due time and fits,
 * else the open record is ended and a new one begun. While one is open the
 * calling thread appends nothing else to the log (a thread without a ring
 * of its own holds the shared ring's lock), so the caller ends it before
 * anything that may wait or log: a wait for room, an undo. Each task's slot
 * is marked before its record takes its LSN, as for a SUBMIT.
 */
struct px__journal_many {
    struct px__put put; /* put.p: the open record's body in the ring; NULL: none */
    uint32_t count, def, queue, level, flags;
    uint64_t due;
    int64_t ticket; /* the last record ended, or the first error */
};
int px__journal_many_add(px_region *r, struct px__journal_many *m, px_id id, uint32_t flags,
                         const void *args, uint32_t len, uint64_t due_ns);
/* Ends the open record, if any; returns the ticket for px__journal_wait of
 * every record the call made so far, or the first error. */
int64_t px__journal_many_end(px_region *r, struct px__journal_many *m);
/* The SUBMIT of a schedule's run-th run. */
int64_t px__journal_run(px_region *r, px_id id, uint32_t flags, const void *args, uint32_t len,
                        uint64_t due_ns, px_id sched, uint32_t run);
/* A checkpoint's copy of a task's SUBMIT (either kind): it does not mark
 * the slot as its producer's SUBMIT does (shm/layout.h, `logged`). */
int64_t px__journal_copy(px_region *r, px_id id, uint32_t flags, const void *args, uint32_t len,
                         uint64_t due_ns, uint64_t key, px_id sched, uint32_t run);
/* A schedule as it is now (made, and as a checkpoint sees it), and its
 * end (state PX__SCHED_ENDED or PX__SCHED_CANCELLED). */
int64_t px__journal_sched(px_region *r, const struct px__sched *e, px_id id);
void px__journal_sched_end(px_region *r, px_id id, uint32_t state);
/* A record whose body is a task id and a count: START, FREE, CANCEL,
 * SCHED_END. The task path's two are inline, so that a region that is not
 * durable pays one branch, not a call. */
void px__journal_id(px_region *r, uint16_t type, px_id id, uint32_t count);
/* A START that also says its thread freed task `freed` before it. */
void px__journal_start_freed(px_region *r, px_id id, uint32_t attempts, px_id freed);

/*
 * A worker thread's FREE of a detached task it has just run is not logged
 * at once: it rides on the thread's next START, one record instead of two
 * (half the log appends a detached task costs its worker). t is the
 * thread's, marked free_defer by its worker loop; any other thread (a
 * reaper, a pool child, a canceller) logs its FREE at once. The loop owes
 * at most one FREE, and pays it alone (px__journal_settle) as soon as it
 * finds no task to take, and when it ends. Until then a crash, which would
 * lose the record anyway had it been appended and not yet written, makes
 * the finished task run once more after recovery. A FREE logged after the
 * slot's next SUBMIT is harmless: replay ignores a FREE whose id is not
 * the slot's.
 */
static inline void px__journal_settle(px_region *r, struct px__tls *t)
{
    if (t && t->free_owed) {
        px_id id = t->free_owed;
        t->free_owed = 0;
        px__journal_id(r, PX__REC_FREE, id, 0);
    }
}

static inline void px__journal_free_later(px_region *r, struct px__tls *t, px_id id)
{
    if (!r->wal)
        return;
    if (!t || !t->free_defer) {
        px__journal_id(r, PX__REC_FREE, id, 0);
        return;
    }
    px__journal_settle(r, t);
    t->free_owed = id;
}

static inline void px__journal_start(px_region *r, struct px__tls *t, px_id id, uint32_t attempts)
{
    if (!r->wal)
        return;
    if (t && t->free_owed) {
        px_id freed = t->free_owed;
        t->free_owed = 0;
        px__journal_start_freed(r, id, attempts, freed);
    } else {
        px__journal_id(r, PX__REC_START, id, attempts);
    }
}
void px__journal_finish(px_region *r, px_id id, uint32_t state, const void *out, uint32_t len);
static inline void px__journal_free(px_region *r, px_id id)
{
    if (r->wal)
        px__journal_id(r, PX__REC_FREE, id, 0);
}
/* A running task was asked to stop (recovery makes it CANCELLED). */
void px__journal_cancel(px_region *r, px_id id);
/* A run failed and the task runs again at due_ns (0: now, after a
 * px_requeue; attempts restart from the given count). */
void px__journal_retry(px_region *r, px_id id, uint32_t attempts, uint64_t due_ns, const void *err,
                       uint32_t len);

/* In sync mode, waits until the record with this ticket is on stable
 * storage; 0 at once otherwise. */
int px__journal_wait(px_region *r, int64_t ticket);

#endif

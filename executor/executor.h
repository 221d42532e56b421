/*
 * Internal calls of the executor: claiming, running and finishing tasks,
 * publishing them into lanes, and returning the tasks of dead processes.
 */
#ifndef PX_EXECUTOR_H
#define PX_EXECUTOR_H

#include "../ring/lanes.h"
#include "../shm/region.h"
#include "../shm/stats.h"
#include "../shm/tickets.h"

#include <stdatomic.h>
#include <stdbool.h>

struct px_ctx {
    px_region *r;
    px_id id;
    struct px__slot *s;
    uint64_t claimed; /* ctl value of our claim: RUNNING, owner us */
    uint64_t t1;      /* ticks when the body returned */
    struct px__tls *t;
    uint32_t out_chunk; /* result chunks claimed so far, PX__NO_CHUNK */
    uint32_t out_len;
    uint8_t out_inline[PX__INLINE_OUT];
    bool failed;
    bool retry_asked;       /* px_retry() was called */
    int64_t retry_delay_ns; /* its delay; < 0: the definition's backoff */
    char err[PX__ERR_MAX];
    const _Atomic int *stop;    /* non-zero: px_should_continue() says 0 */
    const _Atomic int *expired; /* non-zero: past the time limit; NULL: none */
};

/* How a run ended, for the caller's counters and events. */
enum px__outcome {
    PX__DONE_OK,
    PX__DONE_FAILED,
    PX__DONE_REVOKED,
    PX__DONE_REQUEUED,
    PX__DONE_CANCELLED,
    PX__DONE_RETRY, /* failed; waits to run again */
    PX__DONE_DEAD,  /* failed, out of retries */
};

/* Claims the task id names: PENDING -> RUNNING owned by us, attempts + 1.
 * On success *claimed is the new ctl. */
bool px__claim(px_region *r, px_id id, uint64_t *claimed);

/* The lane key of the task in slot s (its queue, priority level and its
 * definition's mode); false if a field read from the slot is out of range. */
static inline bool px__slot_key(px_region *r, struct px__slot *s, uint32_t *key)
{
    uint32_t def = atomic_load_explicit(&s->def, memory_order_relaxed);
    uint32_t q = atomic_load_explicit(&s->queue, memory_order_relaxed);
    uint32_t lv = atomic_load_explicit(&s->level, memory_order_relaxed);
    if (def >= r->hdr->max_defs || q >= r->hdr->max_queues || lv >= PX__LEVELS)
        return false;
    *key = PX__KEY(q, lv, r->defs[def].mode);
    return true;
}

/* Where a consumer's scan of the lanes resumes: the lane it last took from,
 * and that lane's tail as it last read it (see px__lane_peek; 0: none). */
struct px__scan {
    uint32_t lane;
    uint64_t tail_seen;
    uint32_t turn;   /* takes so far, for the order of priority levels */
    uint32_t ticket; /* the concurrency ticket of the task taken (0: none) */
    /* Set by a take that left tasks because their queue's rate limit had
     * no token: how long until the next one (ns); 0 otherwise. */
    uint64_t throttled_ns;
    uint32_t park; /* where the thread sleeps (shm/park.h): index + 1 */
};

/* The public state a slot's state reports (px_status), or 0 for none
 * (free, being filled or consumed). */
static inline int px__public_state(uint32_t st)
{
    if (st == PX__S_RUNNING || st == PX__S_FINISHING)
        return PX_RUNNING;
    if (st == PX__S_FREE || st == PX__S_RESERVED || st == PX__S_CONSUMING || st > PX__S_DEAD)
        return 0;
    return (int)st;
}

/* The metrics counter a run's outcome adds to (shm/stats.h); -1: none (a
 * cancellation is counted where it ends, run.c). */
extern const int8_t px__outcome_field[PX__DONE_DEAD + 1];

/* Counts one run of a task of queue q in the calling thread's metrics
 * shard: started, its outcome, its wait and, if `timed`, its run time.
 * Inline: it is on every run's path, where a call and a struct to carry
 * its inputs cost about as much as the counting. */
static inline void px__stat_ended(px_region *r, struct px__tls *t, uint32_t q, uint64_t wait_ns,
                                  bool timed, uint64_t run_ns, enum px__outcome out)
{
    if (out == PX__DONE_REQUEUED || out == PX__DONE_REVOKED)
        return; /* not a run that ended: it goes again, or another ended it */
    bool owned;
    struct px__qstats *qs = px__stats_of(r, t, q, &owned);
    if (!qs)
        return;
    int field = px__outcome_field[out];
    px__stat_add(&qs->count[PX__ST_STARTED], owned, 1);
    if (field >= 0)
        px__stat_add(&qs->count[field], owned, 1);
    px__stat_add(&qs->wait[px__hist_bucket(wait_ns)], owned, 1);
    if (timed)
        px__stat_add(&qs->run[px__hist_bucket(run_ns)], owned, 1);
}

/* How long a task waited to start at tick t0: from its due time (a
 * delayed or retried task, CLOCK_REALTIME ns) or else from its enqueue
 * stamp. Only a due time costs a clock read. */
static inline uint64_t px__stat_wait_ns(px_region *r, uint64_t enq, uint64_t due, uint64_t t0)
{
    if (due) {
        uint64_t now = px__now_ns();
        return now > due ? now - due : 0;
    }
    return t0 > enq ? px__clock_span_ns(&r->hdr->clock, t0 - enq) : 0;
}

/* A pool dispatcher's run, counted from the outside: the stamps it takes
 * around the child's run (executor/stats.c). Both calls only in a region
 * that keeps metrics. */
struct px__stat_run {
    uint32_t q;
    uint64_t enq, due, t0;
};
void px__stat_begin(px_region *r, px_id id, struct px__stat_run *sr);
void px__stat_ran(px_region *r, const struct px__stat_run *sr, uint64_t t1, enum px__outcome out);

/* What one run of a schedule is made of (submit.c, sched.c). */
struct px__run_spec {
    uint32_t def, queue, level, limit_ms, flags, ttl_ms;
    const void *args;
    size_t len;
    uint64_t due; /* CLOCK_REALTIME */
    px_id sched;  /* the schedule's id */
    uint32_t run; /* which run of it, from 1 */
};

/* submit.c: reserves and fills a slot for a run of a schedule and logs its
 * submit (without waiting: *ticket is for px__journal_wait); the slot stays
 * RESERVED until px__run_arm enters it into the timer heap, due at `due`.
 * Never waits for room: -EAGAIN. */
int px__run_make(px_region *r, struct px__tls *t, const struct px__run_spec *sp, px_id *out,
                 int64_t *ticket);
void px__run_arm(px_region *r, px_id id, uint64_t due);

/* sched.c: px_submit of a recurring task (every_s or cron): creates the
 * schedule and its first run. */
int px__sched_create(px_region *r, const struct px__run_spec *proto, const px_submit_opts *o,
                     px_id *out);
/* Makes the next run of every schedule whose armed run has fired, and
 * repairs what a process that died mid-step left; the timer threads call
 * it. */
void px__sched_advance(px_region *r);
/* Whether a run of a schedule that should have fired at `due` is to be
 * skipped now (its schedule's missed-run policy is skip and it is late). */
bool px__sched_skips(px_region *r, uint32_t sched, uint64_t due, uint64_t now);
/* px_cancel of a schedule's id. */
int px__sched_cancel(px_region *r, px_id id);

static inline bool px__is_sched_id(px_id id)
{
    return (PX__ID_IDX(id) & PX__SCHED_BIT) != 0;
}

/* concurrency.c: gives back the concurrency ticket of the task `id` that
 * scan's take claimed, if it had one (checked inline: most queues have no
 * limit), and wakes workers waiting for it. */
void px__conc_give_back(px_region *r, struct px__scan *scan, px_id id);
static inline void px__conc_release(px_region *r, struct px__scan *scan, px_id id)
{
    if (scan->ticket)
        px__conc_give_back(r, scan, id);
}

/* rate.c: takes a start token from rated queue q; false (with *wait_ns,
 * the time until the next token) if there is none. */
bool px__rate_take(px_region *r, uint32_t q, uint64_t *wait_ns);
/* Gives back a token taken for a claim that failed. */
void px__rate_give(px_region *r, uint32_t q);

/* Takes one task from the lanes whose key is in (qmask, mode), starting the
 * scan at scan->lane. Returns its id and claimed ctl, or 0. */
px_id px__take(px_region *r, uint64_t qmask, uint32_t mode, struct px__scan *scan,
               uint64_t *claimed);

/* Ends a task as CANCELLED from the state `seen` (PENDING, SCHEDULED,
 * RETRY, or CANCEL_REQUESTED of a run that ended or died): one CAS to FINISHING, then
 * the outcome is published as for any finish. False if seen was stale. */
bool px__end_cancelled(px_region *r, uint32_t idx, uint64_t seen);

/* Frees finished tasks whose result retention (px_submit_opts.result_ttl_s)
 * has run out among the `max` slots from *cursor on (wrapping), and moves
 * *cursor past them; returns how many. Workers' supervisors call it. */
int px__expire(px_region *r, uint32_t *cursor, uint32_t max);

/* Frees a task's slot (px__slot_free) and, if that was ours to do, logs
 * it, so that recovery does not bring the task back. */
bool px__task_free(px_region *r, uint32_t idx, uint64_t seen);

/* Runs a claimed task on this thread and finishes it (writes the outcome
 * into the slot and wakes joiners). `stop` is the flag px_should_continue()
 * reads; if it is set when the body returns non-zero, the task goes back to
 * PENDING instead of failing. `expired` (may be NULL), set by a supervisor
 * when the run passed its time limit, makes px_should_continue() say 0 too
 * and the run fail with the limit's error text. `count`: the run is counted
 * in the region's metrics here (a pool child's is counted by its
 * dispatcher instead). */
enum px__outcome px__run(px_region *r, px_id id, uint64_t claimed, const _Atomic int *stop,
                         const _Atomic int *expired, char *err_out, size_t err_cap, bool count);

/* The error text of a run past its time limit. */
void px__limit_text(uint32_t limit_ms, char *buf, size_t cap);

/* Finishes a claimed task as failed with text (FAILED, RETRY or DEAD, as
 * its retries say), from another process than the one that ran it (a child
 * that died, or the reaper); as CANCELLED if it had been asked to stop.
 * Releases result chunks it left. Returns how it ended. */
enum px__outcome px__fail_claimed(px_region *r, px_id id, uint64_t claimed, const char *text);

/* The same for a run whose body still runs (past its time limit): the
 * result chunks it holds are its own to release when it returns. */
enum px__outcome px__fail_live(px_region *r, px_id id, uint64_t claimed, const char *text);

/* Puts a task whose ctl is `seen` (RUNNING, FINISHING or PENDING) back to
 * PENDING, owned by us, and into one of our lanes. */
bool px__requeue(px_region *r, uint32_t idx, uint64_t seen);

/* Pushes ids (all of key) into the calling thread's lane, waiting for room
 * until deadline (CLOCK_MONOTONIC ns, 0: forever; now: not at all), and
 * wakes sleeping workers. Returns how many were pushed, or a negative
 * code if none. */
int px__publish(px_region *r, struct px__tls *t, uint32_t key, const uint64_t *ids, uint32_t n,
                int64_t deadline);

/* Returns the tasks, lanes, slots and chunks of dead processes. Returns how
 * many tasks it put back to PENDING. */
int px__reap(px_region *r);

#endif

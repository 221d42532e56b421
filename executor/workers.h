/*
 * The workers of one handle: thread workers, the process pool, the
 * supervisor. Shared between workers.c and pool.c.
 */
#ifndef PX_EXECUTOR_WORKERS_H
#define PX_EXECUTOR_WORKERS_H

#include "timer.h"

#include <pthread.h>
#include <sys/types.h>

/* One thread's view of its current task, read by the stopping thread
 * and px_workers_stats. Padded: each thread writes its own line only, and
 * is the only writer of its counters (so they are bumped without a locked
 * instruction); `expired` is also written by the supervisor. */
struct px__wslot {
    _Atomic px_id current;
    _Atomic uint64_t claimed;
    _Atomic uint64_t succeeded, failed, requeued, cancelled, retried, dead;
    /* Past its time limit: 1 asked to stop (by the supervisor), 2 failed
     * without it (thread) or killed (process). Reset per task. */
    _Atomic int expired;
    uint32_t park; /* its parking place (shm/park.h), index + 1; 0: none */
    char pad[PX__LINE - sizeof(int) - sizeof(uint32_t)];
};
_Static_assert(sizeof(struct px__wslot) == 2 * PX__LINE, "a worker's slot is two lines");

/* Flags shared with the pool's children (an anonymous shared page). */
struct px__stopflags {
    _Atomic int daemon; /* daemon tasks: stop now */
    _Atomic int all;    /* every task: stop now */
};

struct px__child {
    _Atomic pid_t pid; /* 0 while being replaced */
    int sock;          /* parent's end of a socketpair; the dispatcher's */
    pthread_t thread;  /* the dispatcher; it forks the child */
    bool started;
};

struct px_workers {
    px_region *r;
    px_workers_opts o;
    uint64_t qmask;
    _Atomic int stopping; /* take no new tasks */
    struct px__stopflags *flags;
    unsigned nthreads;
    pthread_t *threads;
    struct px__wslot *ws; /* nthreads + nchildren entries */
    unsigned nchildren;
    struct px__child *children;
    pthread_t super;
    bool super_started;
    struct px__timer_thread timer;
    unsigned spawned; /* dispatchers that forked their first child; under mu */
    int spawn_error;
    pthread_mutex_t mu; /* guards the cond below; not on the task path */
    pthread_cond_t cond;
    _Atomic uint64_t reaped;
    _Atomic uint64_t timed_out;
};

/* limits.c: enforces the time limits of the thread workers' runs. */
void px__limits_check(px_workers *w);

void px__emit_event(px_workers *w, px_event_kind kind, px_id id, const char *error);
/* Reports an event to opts.on_event, if set (checked inline: on the task
 * path it usually is not). */
static inline void px__emit(px_workers *w, px_event_kind kind, px_id id, const char *error)
{
    if (w->o.on_event)
        px__emit_event(w, kind, id, error);
}
/* After a task: count it, report it, signal a stopping px_workers_stop(). */
void px__account(px_workers *w, struct px__wslot *ws, px_id id, enum px__outcome out,
                 const char *err);
bool px__is_daemon(px_region *r, px_id id);
/* Idle wait for work: returns a claimed task or 0 when stopping. */
px_id px__next_task(px_workers *w, uint32_t mode, struct px__scan *scan, uint64_t *claimed);

/* pool.c */
int px__pool_start(px_workers *w);
void px__pool_kill(px_workers *w, bool daemon_only);
void px__pool_join(px_workers *w);

#endif

/*
 * Timed tasks: the executor's side of the timer heap (shm/timers.h) and
 * of retries. See timer.c and retry.c.
 */
#ifndef PX_EXECUTOR_TIMER_H
#define PX_EXECUTOR_TIMER_H

#include "executor.h"

#include <pthread.h>

/* Moves a task whose ctl is `held` (RESERVED by our submit, FINISHING by
 * our run, or PENDING and ours to put back) into `state` (SCHEDULED or
 * RETRY), due at `due`, by one CAS under the heap lock. False if ctl was
 * no longer `held`. */
bool px__timed_enter(px_region *r, uint32_t idx, uint64_t held, uint32_t state, uint64_t due);

/* Fires every task due now (moves it to PENDING and into a lane). Returns
 * the next due time (UINT64_MAX: none); *stuck if some could not be pushed
 * and were put back; *fired counts those fired. */
uint64_t px__fire_due(px_region *r, bool *stuck, uint32_t *fired);

struct px__timer_thread {
    px_region *r;
    pthread_t thread;
    _Atomic int stop;
    bool started;
};
int px__timer_start(struct px__timer_thread *tt, px_region *r);
void px__timer_stop(struct px__timer_thread *tt);

/* retry.c: what a failed run becomes. `delay_ns` is an explicit
 * px_retry()'s delay (< 0: the definition's backoff); `asked` says whether
 * the body asked for the retry. Returns RETRY (with *due), DEAD or FAILED. */
uint32_t px__retry_decide(px_region *r, struct px__slot *s, uint64_t fin, bool asked,
                          int64_t delay_ns, uint64_t *due);

#endif

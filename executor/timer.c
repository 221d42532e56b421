/*
 * Delayed and retried tasks: entering the timer heap, and the timer thread
 * that fires them.
 *
 *   RESERVED  (our submit)       -> SCHEDULED  px__timed_enter, under the
 *   FINISHING (our failed run)   -> RETRY      heap lock, entry pushed
 *   SCHEDULED, RETRY             -> PENDING    a timer thread, under the
 *                                               lock, once due; then pushed
 *                                               into one of its lanes
 *   SCHEDULED, RETRY             -> CANCELLED  px_cancel (cancel.c); the
 *                                               entry goes stale
 *
 * A timed task has no owner: no process's death can lose it, and only the
 * CAS of a firer makes it claimable, so it never runs before its time. The
 * firer owns the task in PENDING until its push; if it dies in between,
 * the reaper pushes it (reaper.c), as for any PENDING task of a dead
 * process. If the push finds the lane full for too long, the firer puts the
 * task back (PENDING -> its timed state, by CAS, so a cancel in between
 * wins) and tries again later.
 *
 * Every worker set (px_workers) runs one timer thread; any of them may fire
 * any task, so several processes share the work without double fires (one
 * CAS from the timed state succeeds). They sleep on the header's timer_seq
 * until the earliest due time, and whoever pushes an earlier one wakes one.
 */
#define _GNU_SOURCE
#include "timer.h"
#include "../shm/futex.h"

#include <errno.h>
#include <limits.h>
#include <sys/prctl.h>
#include <time.h>

#define FIRE_BATCH 64
#define MAX_SLEEP_NS 1000000000ll /* re-read the clock at least this often */
#define STUCK_NS 10000000ll       /* after a full lane, wait this long */
#define PUSH_WAIT_NS 50000000ll   /* how long a push waits for lane room */
#define BUSY_SLEEP_NS 50000ll     /* the shortest sleep after firing some */
#define ADVANCE_NS 100000000ull   /* the least time between looks at the schedules */

bool px__timed_enter(px_region *r, uint32_t idx, uint64_t held, uint32_t state, uint64_t due)
{
    struct px__slot *s = &r->slots[idx];
    atomic_store_explicit(&s->due_ns, due, memory_order_relaxed);
    px__timers_lock(r);
    /* A CAS: a task put back from PENDING may have been cancelled since. */
    bool ok = atomic_compare_exchange_strong(&s->ctl, &held, PX__CTL_WITH(held, state, 0));
    bool first = ok && px__timers_push(r, due, PX__ID(PX__CTL_GEN(held), idx));
    px__timers_unlock(r);
    if (first)
        px__timers_kick(r);
    return ok;
}

/* Under the heap lock: moves a due task to PENDING, owned by us. False if
 * the entry was stale, or the task a schedule's run that was skipped
 * (*skipped set). */
static bool fire_one(px_region *r, const struct px__timer *e, uint32_t *key, uint32_t *was,
                     bool *skipped)
{
    struct px__slot *s = px__slot_of(r, e->id);
    if (!s)
        return false;
    uint64_t c = atomic_load_explicit(&s->ctl, memory_order_acquire);
    /* An entry due before the task's own time is an older one of the same
     * task (it went back to RETRY, due later): stale. */
    if (PX__CTL_GEN(c) != PX__ID_GEN(e->id) || !px__state_timed(PX__CTL_STATE(c)) ||
        !px__slot_key(r, s, key) || e->due < atomic_load_explicit(&s->due_ns, memory_order_relaxed))
        return false;
    uint32_t sched = atomic_load_explicit(&s->sched, memory_order_relaxed);
    if (sched && PX__CTL_STATE(c) == PX__S_SCHEDULED &&
        px__sched_skips(r, sched, e->due, px__now_ns())) {
        /* A schedule's run missed while no timer thread ran, and its
         * schedule skips those: it ends CANCELLED instead. */
        px__end_cancelled(r, PX__ID_IDX(e->id), c);
        *skipped = true;
        return false;
    }
    uint64_t want = PX__CTL_WITH(c, PX__S_PENDING, r->self + 1);
    if (!atomic_compare_exchange_strong(&s->ctl, &c, want))
        return false;
    *was = PX__CTL_STATE(c);
    return true;
}

/* Puts back a task we fired but could not push. */
static void put_back(px_region *r, px_id id, uint32_t was)
{
    struct px__slot *s = &r->slots[PX__ID_IDX(id)];
    uint64_t c = atomic_load(&s->ctl);
    if (PX__CTL_GEN(c) != PX__ID_GEN(id) || PX__CTL_STATE(c) != PX__S_PENDING ||
        PX__CTL_OWNER(c) != r->self + 1)
        return;
    px__timed_enter(r, PX__ID_IDX(id), c, was, atomic_load(&s->due_ns));
}

/* Pushes fired tasks into lanes, runs of one key at a time. False if some
 * had to be put back. */
static bool push_fired(px_region *r, struct px__tls *t, const uint64_t *ids, const uint32_t *keys,
                       const uint32_t *was, uint32_t n)
{
    bool ok = true;
    for (uint32_t i = 0; i < n;) {
        uint32_t k = 1;
        while (i + k < n && keys[i + k] == keys[i])
            k++;
        int64_t deadline = (int64_t)(px__mono_ns() + PUSH_WAIT_NS);
        int done = t ? px__publish(r, t, keys[i], ids + i, k, deadline) : -ENOMEM;
        uint32_t pushed = done > 0 ? (uint32_t)done : 0;
        for (uint32_t j = pushed; j < k; j++) {
            put_back(r, ids[i + j], was[i + j]);
            ok = false;
        }
        i += k;
    }
    return ok;
}

uint64_t px__fire_due(px_region *r, bool *stuck, uint32_t *fired)
{
    struct px__tls *t = px__tls_get(r);
    uint64_t ids[FIRE_BATCH];
    uint32_t keys[FIRE_BATCH], was[FIRE_BATCH];
    *stuck = false;
    *fired = 0;
    for (;;) {
        uint32_t n = 0;
        struct px__timer top;
        px__timers_lock(r);
        uint64_t now = px__now_ns();
        bool skipped = false;
        while (n < FIRE_BATCH && px__timers_peek(r, &top) && top.due <= now) {
            px__timers_pop(r);
            if (fire_one(r, &top, &keys[n], &was[n], &skipped))
                ids[n++] = top.id;
        }
        bool more = n == FIRE_BATCH;
        px__timers_unlock(r);
        *fired += n + skipped; /* a skipped run's schedule wants its next */
        if (n && !push_fired(r, t, ids, keys, was, n)) {
            *stuck = true;
            more = false;
        }
        if (!more)
            return atomic_load_explicit(&r->hdr->timer_next, memory_order_acquire);
    }
}

static void *timer_main(void *p)
{
    struct px__timer_thread *tt = p;
    px_region *r = tt->r;
    struct px__hdr *h = r->hdr;
    /* Fire times are the point of this thread: no slack on its sleeps. */
    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
    uint64_t next_advance = 0;
    while (!atomic_load(&tt->stop)) {
        /* The word is read before the heap: a push after this read bumps
         * it, and the wait below then returns at once. */
        uint32_t seen = atomic_load(&h->timer_seq);
        bool stuck;
        uint32_t fired;
        uint64_t next = px__fire_due(r, &stuck, &fired);
        uint64_t now = px__now_ns();
        /* A fired run may be a schedule's, whose next run is then due to
         * be made; and a schedule left half-advanced by a dead process is
         * repaired at the next look, at least a second later. */
        if (fired || now >= next_advance) {
            px__sched_advance(r);
            next_advance = now + ADVANCE_NS;
            next = atomic_load_explicit(&h->timer_next, memory_order_acquire);
        }
        int64_t ns = next == UINT64_MAX ? MAX_SLEEP_NS : next > now ? (int64_t)(next - now) : 0;
        /* Under a stream of timers a few microseconds apart, sleeping
         * until each would be a system call per task and a CPU taken from
         * the workers: after firing some, wait a little and fire a batch. */
        if (fired && ns < BUSY_SLEEP_NS)
            ns = BUSY_SLEEP_NS;
        if (stuck && ns < STUCK_NS)
            ns = STUCK_NS;
        if (ns > MAX_SLEEP_NS)
            ns = MAX_SLEEP_NS;
        if (ns == 0)
            continue;
        atomic_fetch_add(&h->timer_sleepers, 1);
        if (!atomic_load(&tt->stop))
            px__futex_wait(&h->timer_seq, seen, ns);
        atomic_fetch_sub(&h->timer_sleepers, 1);
    }
    return NULL;
}

int px__timer_start(struct px__timer_thread *tt, px_region *r)
{
    tt->r = r;
    atomic_store(&tt->stop, 0);
    int rc = pthread_create(&tt->thread, NULL, timer_main, tt);
    tt->started = rc == 0;
    return -rc;
}

void px__timer_stop(struct px__timer_thread *tt)
{
    if (!tt->started)
        return;
    atomic_store(&tt->stop, 1);
    /* Other processes' timer threads may wake too; they find nothing new
     * and sleep again. */
    atomic_fetch_add(&tt->r->hdr->timer_seq, 1);
    px__futex_wake(&tt->r->hdr->timer_seq, INT_MAX);
    pthread_join(tt->thread, NULL);
    tt->started = false;
}

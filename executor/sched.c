/*
 * Recurring schedules: every_s or cron, with times, until and a policy for
 * missed occurrences.
 *
 * A schedule is an entry of the region's schedule table; its next run is an
 * ordinary task waiting in the timer heap (SCHEDULED, due at the
 * occurrence). The heap fires that task exactly once, whichever timer
 * thread of whichever process gets there, so no occurrence runs twice. Once
 * it has fired, a timer thread makes the following run. Every change to
 * the table is made under the header's sched_lock, taken before timer_lock.
 *
 * Making a run is four steps, each safe to die after:
 *   1. a slot is reserved and filled for it (RESERVED, its submit logged),
 *      and pend_id, pend_ns and pend_run say which run it is;
 *   2. armed = 0: the commit; then next_id, next_ns and made take the
 *      pending values;
 *   3. the run enters the heap (SCHEDULED);
 *   4. armed = 1.
 * A process that dies in step 1 leaves a RESERVED slot that the reaper
 * frees (logging the free, so that a recovery does not bring the run
 * back) and an entry that is unchanged. The next locker repairs an entry
 * left with armed = 0 from the pending values: if the pending run is in
 * the heap or went on (its generation still matches and it is past
 * RESERVED), only the copy and step 4 were missing; otherwise it never got
 * into the heap and the same run is made again. One window is left: a run
 * that entered the heap, fired, finished and was freed before anyone
 * repaired its schedule (a detached run, in the instant between steps 3
 * and 4) is made again. A schedule whose creator died before px_submit
 * returned is cancelled by the repair: no one has its id.
 *
 * An occurrence missed while no timer thread ran is the armed run, fired
 * late. With PX_MISSED_ONCE it runs (once for all missed), with
 * PX_MISSED_SKIP the timer thread cancels it instead (px__sched_skips);
 * either way the following run is the first occurrence after now.
 */
#include "executor.h"
#include "cron.h"
#include "../persist/journal.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define NS 1000000000ull
#define GRACE_NS NS /* later than this (or half a period), a run was missed */

/* The lock if it is free: a timer thread that finds another advancing the
 * schedules leaves it to that one rather than wait and fire late. */
static bool sched_trylock(px_region *r)
{
    int rc = pthread_mutex_trylock(&r->hdr->sched_lock);
    if (rc == EOWNERDEAD)
        pthread_mutex_consistent(&r->hdr->sched_lock);
    return rc == 0 || rc == EOWNERDEAD;
}

/* The entry an id names, or NULL. */
static struct px__sched *sched_of(px_region *r, px_id id)
{
    uint32_t idx = PX__ID_IDX(id);
    if (!(idx & PX__SCHED_BIT) || idx - PX__SCHED_BIT >= PX__MAX_SCHEDS)
        return NULL;
    struct px__sched *e = &r->scheds[idx - PX__SCHED_BIT];
    if (atomic_load_explicit(&e->state, memory_order_acquire) == PX__SCHED_FREE ||
        atomic_load_explicit(&e->gen, memory_order_relaxed) != PX__ID_GEN(id))
        return NULL;
    return e;
}

static px_id id_of(px_region *r, struct px__sched *e)
{
    return PX__ID(atomic_load(&e->gen), PX__SCHED_BIT | (uint32_t)(e - r->scheds));
}

/* The occurrence after the one due at `last`, and after `now`: occurrences
 * that passed meanwhile were missed and are not made. every_s keeps its
 * phase: the result is last + k * every_ns. -ERANGE if a cron expression
 * has none left; another error (a zone file that cannot be read now) is
 * worth trying again later. */
static int following(const struct px__sched *e, uint64_t last, uint64_t now, uint64_t *next)
{
    if (!(e->flags & PX__SCHED_CRON)) {
        if (e->every_ns == 0)
            return -ERANGE; /* damaged: never divide by it */
        *next = last + e->every_ns;
        if (*next <= now)
            *next += ((now - *next) / e->every_ns + 1) * e->every_ns;
        return 0;
    }
    struct px__cron c;
    int rc = px__cron_parse(e->cron, &c);
    if (rc)
        return -ERANGE; /* it parsed when made: damaged */
    return px__cron_next(&c, e->tz[0] ? e->tz : NULL, last > now ? last : now, next);
}

bool px__sched_skips(px_region *r, uint32_t sched, uint64_t due, uint64_t now)
{
    if (sched == 0 || sched > PX__MAX_SCHEDS)
        return false;
    struct px__sched *e = &r->scheds[sched - 1];
    if (atomic_load_explicit(&e->state, memory_order_acquire) == PX__SCHED_FREE ||
        !(e->flags & PX__SCHED_SKIP))
        return false;
    uint64_t grace = e->every_ns && e->every_ns / 2 < GRACE_NS ? e->every_ns / 2 : GRACE_NS;
    return now > due && now - due > grace;
}

/* Ends an active schedule (ENDED or CANCELLED), under the lock. */
static void end(px_region *r, struct px__sched *e, uint32_t state)
{
    atomic_store(&e->state, state);
    atomic_fetch_sub(&r->hdr->sched_active, 1);
    px__journal_sched_end(r, id_of(r, e), state);
}

/* Steps 1-4 of the file comment for run number `run`, due at `due`.
 * *ticket is its submit record's, for px__journal_wait. */
static int make_run(px_region *r, struct px__tls *t, struct px__sched *e, uint64_t due,
                    uint32_t run, int64_t *ticket)
{
    if (e->def >= r->hdr->max_defs || e->queue >= r->hdr->max_queues || e->level >= PX__LEVELS ||
        e->args_len > PX__SCHED_ARGS)
        return PX_ECORRUPT;
    struct px__run_spec sp = {.def = e->def,
                              .queue = e->queue,
                              .level = e->level,
                              .limit_ms = e->limit_ms,
                              .flags = e->slot_flags,
                              .ttl_ms = e->ttl_ms,
                              .args = e->args,
                              .len = e->args_len,
                              .due = due,
                              .sched = id_of(r, e),
                              .run = run};
    px_id id;
    int rc = px__run_make(r, t, &sp, &id, ticket);
    if (rc)
        return rc; /* no room: the next advance tries again */
    atomic_store(&e->pend_id, id);
    atomic_store(&e->pend_ns, due);
    atomic_store(&e->pend_run, run);
    atomic_store(&e->armed, 0);
    atomic_store(&e->next_id, id);
    atomic_store(&e->next_ns, due);
    atomic_store(&e->made, run);
    px__run_arm(r, id, due);
    atomic_store(&e->armed, 1);
    return 0;
}

/* Where an active schedule's armed run stands, as far as making the next
 * one is concerned. */
enum run_stage { RUN_WAITING, RUN_LOST, RUN_FIRED };

/* The run id names: in the heap, or past RESERVED, or neither. */
static bool run_entered(px_region *r, px_id id, bool *waiting)
{
    struct px__slot *s = px__slot_of(r, id);
    uint64_t c = s ? atomic_load(&s->ctl) : 0;
    uint32_t st = PX__CTL_STATE(c);
    *waiting = s && PX__CTL_GEN(c) == PX__ID_GEN(id) && st == PX__S_SCHEDULED;
    return s && PX__CTL_GEN(c) == PX__ID_GEN(id) && st != PX__S_FREE && st != PX__S_RESERVED;
}

static enum run_stage stage_of(px_region *r, struct px__sched *e)
{
    bool waiting;
    if (!atomic_load(&e->armed)) {
        /* Its maker died after the commit (we hold the lock: no one else
         * is making it). */
        if (!run_entered(r, atomic_load(&e->pend_id), &waiting))
            return RUN_LOST;
        atomic_store(&e->next_id, atomic_load(&e->pend_id));
        atomic_store(&e->next_ns, atomic_load(&e->pend_ns));
        atomic_store(&e->made, atomic_load(&e->pend_run));
        atomic_store(&e->armed, 1);
    }
    run_entered(r, atomic_load(&e->next_id), &waiting);
    return waiting ? RUN_WAITING : RUN_FIRED;
}

/* Cancels the run id names if it still waits for its time (one already
 * going finishes). Without the lock. */
static void cancel_waiting(px_region *r, px_id run)
{
    struct px__slot *s = px__slot_of(r, run);
    if (run && s && PX__CTL_STATE(atomic_load(&s->ctl)) == PX__S_SCHEDULED)
        px_cancel(r, run);
}

/* One active schedule, under the lock. */
static void advance_one(px_region *r, struct px__tls *t, struct px__sched *e, uint64_t now)
{
    int64_t ticket; /* not waited for: a run lost with the log is made again */
    if (atomic_load(&e->creating)) {
        /* Its creator died inside px_submit: no one has its id. */
        px_id run = atomic_load(&e->pend_id);
        end(r, e, PX__SCHED_CANCELLED);
        cancel_waiting(r, run);
        return;
    }
    enum run_stage stage = stage_of(r, e);
    if (stage == RUN_WAITING)
        return;
    if (stage == RUN_LOST) {
        uint64_t due = atomic_load(&e->pend_ns);
        make_run(r, t, e, due > now ? due : now, atomic_load(&e->pend_run), &ticket);
        return;
    }
    uint64_t next = 0;
    int rc = following(e, atomic_load(&e->next_ns), now, &next);
    if (rc && rc != -ERANGE)
        return; /* the zone could not be read: try again next time */
    if (rc || (e->times && atomic_load(&e->made) >= e->times) ||
        (e->until_ns && next > e->until_ns)) {
        end(r, e, PX__SCHED_ENDED);
        return;
    }
    make_run(r, t, e, next, atomic_load(&e->made) + 1, &ticket);
}

void px__sched_advance(px_region *r)
{
    if (atomic_load_explicit(&r->hdr->sched_active, memory_order_relaxed) == 0)
        return;
    struct px__tls *t = px__tls_get(r);
    if (!t)
        return;
    uint64_t now = px__now_ns();
    if (!sched_trylock(r))
        return;
    uint32_t hwm = atomic_load(&r->hdr->sched_hwm);
    for (uint32_t i = 0; i < hwm && i < PX__MAX_SCHEDS; i++)
        if (atomic_load(&r->scheds[i].state) == PX__SCHED_ACTIVE)
            advance_one(r, t, &r->scheds[i], now);
    px__sched_unlock(r);
}

/* Checks a recurring submit's options and finds its first occurrence. */
static int check(const px_submit_opts *o, const struct px__run_spec *p, uint64_t now,
                 uint64_t *first)
{
    bool cron = o->cron != NULL;
    if ((o->every_s != 0) == cron || o->key || (o->tz && !cron) ||
        (o->missed != PX_MISSED_ONCE && o->missed != PX_MISSED_SKIP))
        return -EINVAL;
    if (!cron && !(o->every_s >= 0.001 && o->every_s < 1e9))
        return -EINVAL;
    if (cron && (strlen(o->cron) >= sizeof(((struct px__sched *)0)->cron) ||
                 (o->tz && strlen(o->tz) >= sizeof(((struct px__sched *)0)->tz))))
        return -EINVAL;
    if (p->len > PX__SCHED_ARGS)
        return -E2BIG;
    uint64_t start = now + (uint64_t)(o->delay_s * 1e9);
    if (o->at_unix_ns > start)
        start = o->at_unix_ns;
    if (!cron) {
        *first = start > now ? start : now + (uint64_t)(o->every_s * 1e9);
    } else {
        struct px__cron c;
        int rc = px__cron_parse(o->cron, &c);
        if (rc == 0 && (rc = px__tz_check(o->tz)) == 0)
            rc = px__cron_next(&c, o->tz, start > now ? start - 1 : now, first);
        if (rc)
            return rc == -ERANGE ? -EINVAL : rc;
    }
    if (o->until_unix_ns && *first > o->until_unix_ns)
        return -EINVAL; /* it would never run */
    return 0;
}

/* A free entry, else an ended or cancelled one (they stay listable until
 * then). Under the lock. */
static struct px__sched *free_entry(px_region *r)
{
    uint32_t hwm = atomic_load(&r->hdr->sched_hwm);
    if (hwm > PX__MAX_SCHEDS)
        hwm = PX__MAX_SCHEDS;
    for (uint32_t i = 0; i < hwm; i++)
        if (atomic_load(&r->scheds[i].state) == PX__SCHED_FREE)
            return &r->scheds[i];
    if (hwm < PX__MAX_SCHEDS) {
        atomic_store(&r->hdr->sched_hwm, hwm + 1);
        return &r->scheds[hwm];
    }
    for (uint32_t i = 0; i < PX__MAX_SCHEDS; i++)
        if (atomic_load(&r->scheds[i].state) != PX__SCHED_ACTIVE)
            return &r->scheds[i];
    return NULL;
}

static void fill(struct px__sched *e, const struct px__run_spec *p, const px_submit_opts *o,
                 uint64_t now)
{
    e->def = p->def;
    e->queue = p->queue;
    e->level = p->level;
    e->limit_ms = p->limit_ms;
    e->slot_flags = p->flags;
    e->ttl_ms = p->ttl_ms;
    e->flags = (o->missed == PX_MISSED_SKIP ? PX__SCHED_SKIP : 0) | (o->cron ? PX__SCHED_CRON : 0);
    e->times = o->times;
    e->until_ns = o->until_unix_ns;
    e->created_ns = now;
    e->every_ns = o->cron ? 0 : (uint64_t)(o->every_s * 1e9);
    snprintf(e->cron, sizeof e->cron, "%s", o->cron ? o->cron : "");
    snprintf(e->tz, sizeof e->tz, "%s", o->tz ? o->tz : "");
    e->args_len = (uint32_t)p->len;
    if (p->len)
        memcpy(e->args, p->args, p->len);
    atomic_store(&e->made, 0);
    atomic_store(&e->next_id, 0);
    atomic_store(&e->pend_id, 0);
    atomic_store(&e->armed, 1);
}

int px__sched_create(px_region *r, const struct px__run_spec *proto, const px_submit_opts *o,
                     px_id *out)
{
    uint64_t now = px__now_ns(), first;
    int rc = check(o, proto, now, &first);
    if (rc)
        return rc;
    struct px__tls *t = px__tls_get(r);
    if (!t)
        return -ENOMEM;
    px__sched_lock(r);
    struct px__sched *e = free_entry(r);
    if (!e) {
        px__sched_unlock(r);
        return -EAGAIN;
    }
    atomic_store(&e->state, PX__SCHED_FREE);
    atomic_fetch_add(&e->gen, 1);
    fill(e, proto, o, now);
    atomic_store(&e->next_ns, first);
    atomic_store(&e->creating, 1);
    px_id id = id_of(r, e);
    int64_t ticket = px__journal_sched(r, e, id);
    atomic_store_explicit(&e->state, PX__SCHED_ACTIVE, memory_order_release);
    atomic_fetch_add(&r->hdr->sched_active, 1);
    int64_t run_ticket = 0;
    if (ticket < 0 || (rc = make_run(r, t, e, first, 1, &run_ticket)) != 0) {
        end(r, e, PX__SCHED_CANCELLED);
        atomic_store(&e->state, PX__SCHED_FREE);
        atomic_store(&e->creating, 0);
        px__sched_unlock(r);
        return ticket < 0 ? (int)ticket : rc;
    }
    atomic_store(&e->creating, 0);
    px__sched_unlock(r);
    /* Durable (sync mode) before it is acknowledged: the schedule's record
     * precedes its first run's, so waiting for the run's waits for both.
     * If that fails, nothing of it may stay. */
    if ((rc = px__journal_wait(r, run_ticket)) != 0) {
        px__sched_cancel(r, id);
        return rc;
    }
    if (out)
        *out = id;
    return 0;
}

int px__sched_cancel(px_region *r, px_id id)
{
    px__sched_lock(r);
    struct px__sched *e = sched_of(r, id);
    int rc = !e ? -ENOENT : atomic_load(&e->state) != PX__SCHED_ACTIVE ? -EALREADY : 0;
    px_id run = e ? atomic_load(&e->next_id) : 0;
    if (rc == 0)
        end(r, e, PX__SCHED_CANCELLED);
    px__sched_unlock(r);
    if (rc == 0)
        cancel_waiting(r, run);
    return rc;
}

int px_schedule_get(px_region *r, px_id id, px_schedule_info *info)
{
    if (!r || !info)
        return -EINVAL;
    struct px__sched *e = sched_of(r, id);
    if (!e)
        return -ENOENT;
    memset(info, 0, sizeof *info);
    info->id = id;
    info->state = (px_schedule_state)atomic_load(&e->state);
    snprintf(info->task, sizeof info->task, "%s", px__def_name(r, e->def));
    if (e->queue < atomic_load(&r->hdr->nqueues))
        snprintf(info->queue, sizeof info->queue, "%s", r->queues[e->queue].name);
    info->priority = e->level < PX__LEVELS ? (px_priority)(e->level + 1) : PX_PRIORITY_NORMAL;
    info->every_s = (double)e->every_ns / 1e9;
    snprintf(info->cron, sizeof info->cron, "%s", e->cron);
    snprintf(info->tz, sizeof info->tz, "%s", e->tz);
    info->times = e->times;
    info->made = atomic_load(&e->made);
    info->until_unix_ns = e->until_ns;
    info->missed = e->flags & PX__SCHED_SKIP ? PX_MISSED_SKIP : PX_MISSED_ONCE;
    info->next_run_ns = info->state == PX_SCHEDULE_ACTIVE ? atomic_load(&e->next_ns) : 0;
    info->next_id = atomic_load(&e->next_id);
    /* A reuse of the entry meanwhile makes the copy another's: say so. */
    return atomic_load(&e->gen) == PX__ID_GEN(id) ? 0 : -ENOENT;
}

int px_schedule_list(px_region *r, px_id *ids, size_t cap)
{
    if (!r || (cap && !ids))
        return -EINVAL;
    uint32_t hwm = atomic_load(&r->hdr->sched_hwm), n = 0;
    for (int pass = 0; pass < 2; pass++)
        for (uint32_t i = 0; i < hwm && i < PX__MAX_SCHEDS; i++) {
            uint32_t st = atomic_load_explicit(&r->scheds[i].state, memory_order_acquire);
            if (st == PX__SCHED_FREE || (st == PX__SCHED_ACTIVE) != (pass == 0))
                continue;
            if (n < cap)
                ids[n] = id_of(r, &r->scheds[i]);
            n++;
        }
    return (int)n;
}

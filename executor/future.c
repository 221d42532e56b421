/*
 * Futures: status, join, wait-any, info, forget.
 *
 * A joiner spins briefly on the slot's ctl (pausing, then yielding its CPU),
 * then sleeps on the slot's futex word `wake`. Sleeping follows the Dekker pattern with the
 * finisher (see px__wake_slot): increment `waiters`, read `wake`, re-check ctl, then wait only if
 * `wake` still has the value read. Results are read after an acquire load of a finished ctl and
 * validated by re-reading ctl: if the slot was freed meanwhile (its generation changed), the copy
 * is discarded and the call answers -ENOENT.
 */
#include "executor.h"
#include "../shm/futex.h"

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>

#define SPIN_NS 100000 /* spin before sleeping on the futex */
#define PAUSE_NS 2000  /* of which with the pause instruction; then yielding */

/*
 * One step of a joiner's spin. After the first PAUSE_NS it yields instead:
 * the worker that will finish the task may have been woken on this CPU, and
 * a joiner that spins with pause would hold the CPU from it until the end of
 * its spin (seen as a p99 of the spin's length on a 2-CPU machine).
 */
static void px__spin_step(uint64_t spun_ns)
{
    if (spun_ns < PAUSE_NS)
        px__cpu_relax();
    else
        sched_yield();
}

static bool done(uint32_t st)
{
    return px__state_finished(st) || st == PX__S_CONSUMING || st == PX__S_FREE;
}

static int lookup(px_region *r, px_id id, struct px__slot **out)
{
    if (!r)
        return -EINVAL;
    if (!(*out = px__slot_of(r, id)))
        return -ENOENT;
    return 0;
}

int px_status(px_region *r, px_id id)
{
    struct px__slot *s;
    int rc = lookup(r, id, &s);
    if (rc)
        return rc;
    uint64_t c = atomic_load_explicit(&s->ctl, memory_order_acquire);
    uint32_t st = PX__CTL_STATE(c);
    if (PX__CTL_GEN(c) != PX__ID_GEN(id) || st == PX__S_FREE || st == PX__S_CONSUMING)
        return -ENOENT;
    switch (st) {
    case PX__S_RESERVED:
    case PX__S_PENDING:
        return PX_PENDING;
    case PX__S_RUNNING:
    case PX__S_FINISHING:
        return PX_RUNNING;
    default:
        return (int)st;
    }
}

/* Waits until the task is finished or gone; returns its ctl. */
static int wait_slot(struct px__slot *s, px_id id, int64_t deadline, uint64_t *out)
{
    uint64_t c = atomic_load_explicit(&s->ctl, memory_order_acquire);
    uint64_t start = px__mono_ns();
    while (PX__CTL_GEN(c) == PX__ID_GEN(id) && !done(PX__CTL_STATE(c))) {
        uint64_t now = px__mono_ns();
        int64_t left = px__left(deadline, now);
        if (left == 0)
            return -ETIMEDOUT;
        if (now < start + SPIN_NS) {
            px__spin_step(now - start);
            c = atomic_load_explicit(&s->ctl, memory_order_acquire);
            continue;
        }
        atomic_fetch_add(&s->waiters, 1);
        uint32_t seen = atomic_load(&s->wake);
        c = atomic_load(&s->ctl);
        if (PX__CTL_GEN(c) == PX__ID_GEN(id) && !done(PX__CTL_STATE(c)))
            px__futex_wait(&s->wake, seen, left);
        atomic_fetch_sub(&s->waiters, 1);
        c = atomic_load_explicit(&s->ctl, memory_order_acquire);
    }
    *out = c;
    return 0;
}

/* Copies the out bytes of a finished ctl c; -ENOENT if the slot moved on. */
static int copy_out(px_region *r, struct px__slot *s, uint64_t c, void *buf, size_t cap,
                    size_t *len, bool text)
{
    uint32_t n = atomic_load_explicit(&s->out_len, memory_order_relaxed);
    const uint8_t *src = px__slot_out(r, s);
    if (!src || n > (text ? PX__ERR_MAX : r->hdr->max_payload))
        return PX_ECORRUPT;
    if (len)
        *len = n;
    if (text) {
        if (buf && cap) {
            size_t k = n < cap - 1 ? n : cap - 1;
            px__copy_checked(buf, src, k);
            ((char *)buf)[k] = '\0';
        }
    } else if (n > cap) {
        return -ENOBUFS;
    } else if (n) {
        if (!buf)
            return -EINVAL;
        px__copy_checked(buf, src, n);
    }
    if (atomic_load_explicit(&s->ctl, memory_order_acquire) != c)
        return -ENOENT;
    return 0;
}

/* Reports a finished task; frees an ephemeral one once it has been taken. */
static int take_result(px_region *r, struct px__slot *s, px_id id, uint64_t c, void *buf,
                       size_t cap, size_t *len)
{
    uint32_t st = PX__CTL_STATE(c);
    if (PX__CTL_GEN(c) != PX__ID_GEN(id) || !px__state_finished(st))
        return -ENOENT;
    /* A dead letter stays until requeued or forgotten, ephemeral or not. */
    bool failed = st == PX__S_FAILED || st == PX__S_DEAD;
    bool ephemeral = (PX__CTL_FLAGS(c) & PX__F_EPHEMERAL) && st != PX__S_DEAD;
    if (st == PX__S_CANCELLED) {
        /* No result to copy; an ephemeral one is consumed all the same. */
        uint64_t mine = PX__CTL_WITH(c, PX__S_CONSUMING, r->self + 1);
        if (ephemeral && atomic_compare_exchange_strong(&s->ctl, &c, mine))
            px__task_free(r, PX__ID_IDX(id), mine);
        if (len)
            *len = 0;
        return -ECANCELED;
    }
    if (!failed && !buf && cap == 0 && len == NULL && !ephemeral)
        return 0;
    if (ephemeral) {
        if (!failed && atomic_load_explicit(&s->out_len, memory_order_relaxed) > cap) {
            if (len)
                *len = atomic_load_explicit(&s->out_len, memory_order_relaxed);
            return -ENOBUFS;
        }
        uint64_t mine = PX__CTL_WITH(c, PX__S_CONSUMING, r->self + 1);
        if (!atomic_compare_exchange_strong(&s->ctl, &c, mine))
            return -ENOENT;
        c = mine;
    }
    int rc = copy_out(r, s, c, buf, cap, len, failed);
    if (ephemeral)
        px__task_free(r, PX__ID_IDX(id), c);
    if (rc)
        return rc;
    return failed ? PX_ETASKFAILED : 0;
}

int px_join(px_region *r, px_id id, double timeout_s, void *buf, size_t cap, size_t *len)
{
    struct px__slot *s;
    int rc = lookup(r, id, &s);
    if (rc)
        return rc;
    uint64_t c;
    if ((rc = wait_slot(s, id, px__deadline(timeout_s, px__mono_ns()), &c)) != 0)
        return rc;
    return take_result(r, s, id, c, buf, cap, len);
}

int px_try_join(px_region *r, px_id id, void *buf, size_t cap, size_t *len)
{
    int rc = px_join(r, id, 0, buf, cap, len);
    return rc == -ETIMEDOUT ? -EAGAIN : rc;
}

static int first_done(px_region *r, const px_id *ids, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct px__slot *s = px__slot_of(r, ids[i]);
        if (!s)
            return (int)i;
        uint64_t c = atomic_load(&s->ctl);
        if (PX__CTL_GEN(c) != PX__ID_GEN(ids[i]) || done(PX__CTL_STATE(c)))
            return (int)i;
    }
    return -1;
}

int px_wait_any(px_region *r, const px_id *ids, size_t n, double timeout_s)
{
    if (!r || !ids || n == 0 || n > (size_t)INT32_MAX)
        return -EINVAL;
    int64_t deadline = px__deadline(timeout_s, px__mono_ns());
    uint64_t start = px__mono_ns();
    for (;;) {
        int i = first_done(r, ids, n);
        if (i >= 0)
            return i;
        uint64_t now = px__mono_ns();
        int64_t left = px__left(deadline, now);
        if (left == 0)
            return -ETIMEDOUT;
        if (now < start + SPIN_NS) {
            px__spin_step(now - start);
            continue;
        }
        px__announce(r, PX__WAIT_DONE);
        uint32_t seen = atomic_load(&r->hdr->done_seq);
        if ((i = first_done(r, ids, n)) < 0)
            px__futex_wait(&r->hdr->done_seq, seen, left);
        px__retract(r, PX__WAIT_DONE);
        if (i >= 0)
            return i;
    }
}

static void fill_info(px_region *r, struct px__slot *s, uint64_t c, px_task_info *info)
{
    uint32_t def = atomic_load_explicit(&s->def, memory_order_relaxed);
    uint32_t q = atomic_load_explicit(&s->queue, memory_order_relaxed);
    snprintf(info->name, sizeof info->name, "%s", px__def_name(r, def));
    if (q < atomic_load_explicit(&r->hdr->nqueues, memory_order_acquire))
        snprintf(info->queue, sizeof info->queue, "%s", r->queues[q].name);
    if (def < r->hdr->max_defs)
        info->mode = (px_mode)r->defs[def].mode;
    uint32_t lv = atomic_load_explicit(&s->level, memory_order_relaxed);
    info->priority = lv < PX__LEVELS ? (px_priority)(lv + 1) : PX_PRIORITY_NORMAL;
    info->attempts = PX__CTL_ATT(c);
    uint32_t sched = atomic_load_explicit(&s->sched, memory_order_relaxed);
    if (sched && sched <= PX__MAX_SCHEDS)
        info->schedule =
            PX__ID(atomic_load(&r->scheds[sched - 1].gen), PX__SCHED_BIT | (sched - 1));
    info->worker_pid = atomic_load_explicit(&s->worker_pid, memory_order_relaxed);
    const struct px__clock *clk = &r->hdr->clock;
    info->enqueued_ns =
        px__clock_real(clk, atomic_load_explicit(&s->enq_tick, memory_order_relaxed));
    info->started_ns =
        px__clock_real(clk, atomic_load_explicit(&s->start_tick, memory_order_relaxed));
    info->finished_ns =
        px__clock_real(clk, atomic_load_explicit(&s->fin_tick, memory_order_relaxed));
    uint32_t st = PX__CTL_STATE(c);
    if (st == PX__S_FAILED || st == PX__S_DEAD || st == PX__S_RETRY)
        copy_out(r, s, c, info->error, sizeof info->error, NULL, true);
    if (px__state_timed(st))
        info->next_run_ns = atomic_load_explicit(&s->due_ns, memory_order_relaxed);
    else if (PX__CTL_STATE(c) == PX__S_SUCCESS)
        info->result_len = atomic_load_explicit(&s->out_len, memory_order_relaxed);
}

int px_info(px_region *r, px_id id, px_task_info *info)
{
    struct px__slot *s;
    int rc = lookup(r, id, &s);
    if (rc || !info)
        return rc ? rc : -EINVAL;
    /* The fields are read while the task may move on: retry until ctl is the
     * same before and after, so the report is one consistent moment. */
    for (int tries = 0; tries < 100; tries++) {
        int st = px_status(r, id);
        if (st < 0)
            return st;
        uint64_t c = atomic_load_explicit(&s->ctl, memory_order_acquire);
        memset(info, 0, sizeof *info);
        info->id = id;
        info->state = (px_state)st;
        fill_info(r, s, c, info);
        if (atomic_load_explicit(&s->ctl, memory_order_acquire) == c)
            return 0;
    }
    return -EAGAIN;
}

int px_forget(px_region *r, px_id id)
{
    struct px__slot *s;
    int rc = lookup(r, id, &s);
    if (rc)
        return rc;
    for (;;) {
        uint64_t c = atomic_load(&s->ctl);
        if (PX__CTL_GEN(c) != PX__ID_GEN(id) || PX__CTL_STATE(c) == PX__S_FREE ||
            PX__CTL_STATE(c) == PX__S_CONSUMING)
            return -ENOENT;
        if (!px__state_finished(PX__CTL_STATE(c)))
            return -EBUSY;
        if (px__task_free(r, PX__ID_IDX(id), c))
            return 0;
    }
}

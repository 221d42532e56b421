/*
 * Returning what dead processes held.
 *
 * Any attached process may reap; workers do it every reap interval and
 * px_region_open() does it once. A dead process's entry is taken with a CAS
 * ALIVE -> REAPING (or from a reaper that is itself dead), so one process
 * reaps it at a time, and every step below is idempotent, so a reaper that
 * dies half-way leaves work that the next one redoes:
 *
 * 1. Release its lanes (CAS owner -> 0); their published entries stay
 *    consumable. Take back its share of the waiter counts (an exchange
 *    with 0, so it is taken once).
 * 2. For each slot it owns:
 *    RESERVED, CONSUMING -> free the slot (its submit never returned; its
 *                           ephemeral result was being taken by it).
 *    PENDING             -> take ownership and push the id again (it may
 *                           have died between PENDING and its push).
 *    RUNNING, FINISHING  -> release result chunks, back to PENDING (the
 *                           attempt stays counted), push; or, if its
 *                           definition has max_retries > 0 and it was a
 *                           run, the death is a failed attempt: RETRY or
 *                           DEAD (retry.c).
 *    CANCEL_REQUESTED    -> release result chunks, CANCELLED: it was asked
 *                           to stop, and it has.
 * 3. Sweep the arena for chunks of freed slots.
 * 4. Free the entry.
 */
#include "executor.h"
#include "../shm/park.h"

#include <errno.h>
#include <sched.h>
#include <stdio.h>

static bool take_entry(px_region *r, uint32_t i)
{
    struct px__proc *p = &r->procs[i];
    uint32_t st = atomic_load_explicit(&p->state, memory_order_acquire);
    if (st == PX__PROC_FREE || i == r->self)
        return false;
    if (st >= PX__PROC_REAPING) {
        uint32_t reaper = st - PX__PROC_REAPING;
        if (reaper == r->self || reaper >= r->hdr->max_procs || px__proc_alive(&r->procs[reaper]))
            return false;
    } else if (px__proc_alive(p)) {
        return false;
    }
    return atomic_compare_exchange_strong(&p->state, &st, PX__PROC_REAPING + r->self);
}

/* A run whose process died: an attempt that failed if the task has
 * retries, otherwise back to PENDING. */
static int reap_run(px_region *r, uint32_t idx, uint64_t c, uint32_t dead)
{
    struct px__slot *s = &r->slots[idx];
    px_id id = PX__ID(PX__CTL_GEN(c), idx);
    uint32_t def = atomic_load_explicit(&s->def, memory_order_relaxed);
    /* FINISHING with no start stamp is not a run ending but a hold (a
     * cancel of a task that was waiting, or a px_requeue): no attempt. */
    bool ran = PX__CTL_STATE(c) == PX__S_RUNNING ||
               atomic_load_explicit(&s->start_tick, memory_order_relaxed) != 0;
    if (ran && def < r->hdr->max_defs && r->defs[def].max_retries > 0) {
        char text[96];
        snprintf(text, sizeof text, "worker process %d died while running it",
                 (int)r->procs[dead].pid);
        return px__fail_claimed(r, id, c, text) == PX__DONE_RETRY;
    }
    px__arena_free_stray(r, id, atomic_load_explicit(&s->args_chunk, memory_order_relaxed),
                         atomic_load_explicit(&s->args_len, memory_order_relaxed));
    /* The stray sweep released any error an earlier attempt left. */
    atomic_store_explicit(&s->out_chunk, PX__NO_CHUNK, memory_order_relaxed);
    atomic_store_explicit(&s->out_len, 0, memory_order_relaxed);
    return px__requeue(r, idx, c);
}

static int reap_slots(px_region *r, uint32_t dead)
{
    int requeued = 0;
    for (uint32_t i = 0; i < r->hdr->capacity; i++) {
        struct px__slot *s = &r->slots[i];
        uint64_t c = atomic_load(&s->ctl);
        if (PX__CTL_OWNER(c) != dead + 1)
            continue;
        switch (PX__CTL_STATE(c)) {
        case PX__S_RESERVED:
            /* A SUBMIT logged while RESERVED (a schedule's run always is,
             * sched.c; a checkpoint may have copied any): its free is
             * logged too, or a recovery would bring back a task whose
             * submit never returned, or a run made again in its place. */
            if (atomic_load(&s->logged) == PX__CTL_GEN(c))
                px__task_free(r, i, c);
            else
                px__slot_free(r, i, c);
            break;
        case PX__S_CONSUMING:
            px__task_free(r, i, c); /* logged: the result was being taken */
            break;
        case PX__S_RUNNING:
        case PX__S_FINISHING:
            requeued += reap_run(r, i, c, dead);
            break;
        case PX__S_CANCEL_REQUESTED:
            px__arena_free_stray(r, PX__ID(PX__CTL_GEN(c), i),
                                 atomic_load_explicit(&s->args_chunk, memory_order_relaxed),
                                 atomic_load_explicit(&s->args_len, memory_order_relaxed));
            px__end_cancelled(r, i, c);
            break;
        case PX__S_PENDING:
            px__requeue(r, i, c);
            break;
        default:
            break;
        }
    }
    return requeued;
}

int px__reap(px_region *r)
{
    int requeued = 0;
    for (uint32_t i = 0; i < r->hdr->max_procs; i++) {
        if (!take_entry(r, i))
            continue;
        px__lanes_release_proc(r, i);
        px__tickets_wake(r, px__tickets_release_proc(r, i));
        px__stats_release_proc(r, i);
        uint32_t owner = i + 1; /* a checkpoint it was running is given up */
        atomic_compare_exchange_strong(&r->hdr->ckpt_owner, &owner, 0);
        px__retract_dead(r, i);
        px__park_release_proc(r, i);
        requeued += reap_slots(r, i);
        px__arena_sweep(r);
        atomic_store_explicit(&r->procs[i].state, PX__PROC_FREE, memory_order_release);
    }
    return requeued;
}

/* Reads each slot's first line, so a large window takes milliseconds: it
 * yields the CPU every few thousand slots, so as not to hold it from a
 * worker or the timer thread for that long on a small machine. */
int px__expire(px_region *r, uint32_t *cursor, uint32_t max)
{
    uint64_t now = px__ticks(r->tsc);
    const struct px__clock *clk = &r->hdr->clock;
    uint32_t cap = r->hdr->capacity, i = *cursor < cap ? *cursor : 0;
    int n = 0;
    if (max > cap)
        max = cap;
    for (uint32_t k = 0; k < max; k++, i = i + 1 == cap ? 0 : i + 1) {
        if (k % 4096 == 4095)
            sched_yield();
        struct px__slot *s = &r->slots[i];
        uint64_t c = atomic_load_explicit(&s->ctl, memory_order_acquire);
        if (!px__state_finished(PX__CTL_STATE(c)) || PX__CTL_STATE(c) == PX__S_DEAD)
            continue; /* dead letters stay until requeued or forgotten */
        uint32_t ttl = atomic_load_explicit(&s->ttl_ms, memory_order_relaxed);
        uint64_t fin = atomic_load_explicit(&s->fin_tick, memory_order_relaxed);
        if (ttl == PX__TTL_FOREVER || fin == 0 || fin > now ||
            now - fin < px__clock_ticks(clk, (uint64_t)ttl * 1000000ull))
            continue;
        /* One CAS from the finished state we saw: a slot reused or freed
         * meanwhile is left alone. */
        n += px__task_free(r, i, c);
    }
    *cursor = i;
    return n;
}

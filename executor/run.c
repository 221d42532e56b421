/*
 * Claiming, running and finishing one task.
 *
 * Claim: CAS PENDING(g) -> RUNNING(g, owner us, attempts + 1). The claim is
 * the single point that makes a run exactly-once: an id may sit in two lanes
 * (see submit.c) or be read twice by racing consumers, but only one CAS from
 * PENDING succeeds.
 *
 * Finish: CAS RUNNING(ours) -> FINISHING(ours); write the result fields;
 * store SUCCESS or FAILED (seq_cst, then wake). A detached task's outcome is
 * read by no one: its slot is freed by one CAS from RUNNING(ours). FINISHING exists so that
 * nobody can take the task back (a shutdown requeue is a CAS from RUNNING)
 * while its result is being written. If that first CAS fails, the run was
 * revoked: our result chunks are released and nothing else is touched.
 *
 * A worker that dies while RUNNING or FINISHING leaves the task owned by a
 * dead process; the reaper returns it to PENDING (attempts stay counted)
 * and releases the result chunks it had claimed.
 */
#define _GNU_SOURCE
#include "timer.h"
#include "../shm/futex.h"
#include "../persist/journal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

bool px__task_free(px_region *r, uint32_t idx, uint64_t seen)
{
    if (!px__slot_free(r, idx, seen))
        return false;
    px__journal_free(r, PX__ID(PX__CTL_GEN(seen), idx));
    return true;
}

/* The claim's CAS from c, a reading of ctl that showed the task PENDING
 * under id's generation; retried while it still does. */
static bool claim_from(px_region *r, struct px__slot *s, px_id id, uint64_t c, uint64_t *claimed)
{
    while (PX__CTL_GEN(c) == PX__ID_GEN(id) && PX__CTL_STATE(c) == PX__S_PENDING) {
        uint32_t att = PX__CTL_ATT(c) + 1;
        uint64_t want = PX__CTL(PX__CTL_GEN(c), PX__S_RUNNING, r->self + 1,
                                att > 0xfff ? 0xfff : att, PX__CTL_FLAGS(c));
        if (atomic_compare_exchange_weak_explicit(&s->ctl, &c, want, memory_order_acq_rel,
                                                  memory_order_acquire)) {
            *claimed = want;
            return true;
        }
    }
    return false;
}

bool px__claim(px_region *r, px_id id, uint64_t *claimed)
{
    struct px__slot *s = px__slot_of(r, id);
    return s && claim_from(r, s, id, atomic_load_explicit(&s->ctl, memory_order_acquire), claimed);
}

/* True if the PENDING task in s belongs to a queue in qmask and runs in
 * mode. The lane's key says so already, but a lane can change key (when
 * empty) between our read of the key and of an entry. */
static bool serves(px_region *r, struct px__slot *s, uint64_t qmask, uint32_t mode)
{
    uint32_t q = atomic_load_explicit(&s->queue, memory_order_relaxed);
    uint32_t def = atomic_load_explicit(&s->def, memory_order_relaxed);
    if (q >= 64 || def >= r->hdr->max_defs)
        return true; /* nonsense: the claim decides, as for any entry */
    return (qmask & (1ull << q)) && r->defs[def].mode == mode;
}

/* What one take looks for, and what it found. */
struct take {
    uint64_t qmask, rated, conc;
    uint64_t full; /* queues found with no free ticket in this take */
    uint32_t mode, hwm;
    int level; /* the only level it takes; -1: any */
};

/* Takes the first claimable task of lane i, if its key matches. */
static px_id take_lane(px_region *r, struct take *k, uint32_t i, struct px__scan *scan,
                       uint64_t *claimed)
{
    struct px__lane *l = &r->lanes[i];
    uint32_t key = atomic_load_explicit(&l->key, memory_order_acquire);
    if (PX__KEY_MODE(key) != k->mode || PX__KEY_QUEUE(key) >= 64 ||
        !(k->qmask & (1ull << PX__KEY_QUEUE(key))) ||
        (k->level >= 0 && PX__KEY_LEVEL(key) != (uint32_t)k->level))
        return 0;
    uint64_t pos, id;
    uint64_t seen = i == scan->lane && scan->tail_seen
                        ? scan->tail_seen
                        : atomic_load_explicit(&l->head, memory_order_relaxed);
    uint32_t q = PX__KEY_QUEUE(key);
    bool limited = (k->rated >> q) & 1;
    uint32_t conc = (k->conc >> q) & 1 ? atomic_load(&r->queues[q].conc_limit) : 0;
    uint64_t wait;
    if (conc && (k->full >> q) & 1)
        return 0;
    while (px__lane_peek(l, px__lane_entries(r, i), r->lane_mask, &pos, &id, &seen)) {
        /* One reading of ctl for both the check and the claim: an entry
         * whose task moved on (a stale id, or a duplicate of one that was
         * claimed) is not claimed, only passed. */
        struct px__slot *s = px__slot_of(r, id);
        uint64_t c = s ? atomic_load_explicit(&s->ctl, memory_order_acquire) : 0;
        bool live = s && PX__CTL_GEN(c) == PX__ID_GEN(id) && PX__CTL_STATE(c) == PX__S_PENDING;
        if (live && !serves(r, s, k->qmask, k->mode))
            break; /* the lane changed key under us; leave it to others */
        if (limited && !px__rate_take(r, q, &wait)) {
            if (!scan->throttled_ns || wait < scan->throttled_ns)
                scan->throttled_ns = wait ? wait : 1;
            break; /* no start left this instant: the task waits */
        }
        uint32_t ticket = conc ? px__ticket_take(r, q, conc, PX__ID_IDX(id), scan->lane) : 0;
        if (conc && !ticket) {
            /* K of its tasks run: this one waits for a ticket given back,
             * which wakes us. */
            k->full |= 1ull << q;
            if (limited)
                px__rate_give(r, q);
            break;
        }
        bool mine = live && claim_from(r, s, id, c, claimed);
        if (!mine && limited)
            px__rate_give(r, q);
        if (!mine && ticket) {
            px__ticket_give(r, ticket, PX__ID_IDX(id));
            px__tickets_wake(r, 1ull << q);
        }
        px__lane_advance(l, pos);
        px__wake_lane(r, l);
        if (mine) {
            /* Stay on this lane next time: its producer is active. */
            scan->lane = i;
            scan->tail_seen = seen;
            scan->ticket = ticket;
            return id;
        }
    }
    return 0;
}

/* One walk of the lanes, starting where the last take stopped. */
static px_id take_walk(px_region *r, struct take *k, struct px__scan *scan, uint64_t *claimed)
{
    /* i walks [lane, hwm) then [0, lane), wrapping without a division. */
    for (uint32_t n = 0, i = scan->lane; n < k->hwm; n++, i = i + 1 == k->hwm ? 0 : i + 1) {
        px_id id = take_lane(r, k, i, scan, claimed);
        if (id)
            return id;
    }
    return 0;
}

/*
 * The level a worker's take tries first: for turn t, 4 - ctz(t % 31 + 1),
 * which in every 31 turns gives HIGHEST 16, HIGH 8, NORMAL 4, LOW 2 and
 * LOWEST 1, spread out. The other levels follow, highest first, so a level
 * with no work never wastes a turn, and a level with work gets at least its
 * share however busy the higher ones are: none starves.
 */
static px_id take_levels(px_region *r, struct take *k, uint32_t levels, struct px__scan *scan,
                         uint64_t *claimed)
{
    int first = (int)PX__LEVELS - 1 - __builtin_ctz(scan->turn % 31 + 1);
    for (int n = -1; n < (int)PX__LEVELS; n++) {
        int lv = n < 0 ? first : (int)PX__LEVELS - 1 - n;
        if ((n >= 0 && lv == first) || !((levels >> lv) & 1))
            continue;
        k->level = lv;
        px_id id = take_walk(r, k, scan, claimed);
        if (id) {
            scan->turn++;
            return id;
        }
    }
    return 0;
}

px_id px__take(px_region *r, uint64_t qmask, uint32_t mode, struct px__scan *scan,
               uint64_t *claimed)
{
    struct take k = {
        .qmask = qmask & ~atomic_load_explicit(&r->hdr->paused, memory_order_relaxed),
        .rated = atomic_load_explicit(&r->hdr->rated, memory_order_relaxed),
        .conc = atomic_load_explicit(&r->hdr->conc_limited, memory_order_relaxed),
        .mode = mode,
        .hwm = atomic_load_explicit(&r->hdr->lanes_hwm, memory_order_acquire),
        .level = -1,
    };
    uint32_t levels = atomic_load(&r->hdr->levels); /* seq_cst: see ring/lanes.c */
    scan->throttled_ns = 0;
    if (k.hwm > r->hdr->lanes)
        k.hwm = r->hdr->lanes;
    if (scan->lane >= k.hwm)
        scan->lane = 0;
    /* One level in use (the common case): one walk, whatever the level. */
    px_id id = levels & (levels - 1) ? take_levels(r, &k, levels, scan, claimed)
                                     : take_walk(r, &k, scan, claimed);
    if (id)
        return id;
    scan->lane = scan->lane + 1 < k.hwm ? scan->lane + 1 : 0;
    scan->tail_seen = 0;
    return 0;
}

int px_result(px_ctx *ctx, const void *data, size_t len)
{
    if (!ctx || (len && !data))
        return -EINVAL;
    px_region *r = ctx->r;
    if (len > r->hdr->max_payload)
        return -E2BIG;
    uint32_t chunk = PX__NO_CHUNK;
    if (len > PX__INLINE_OUT) {
        int rc = px__arena_alloc(r, ctx->t, ctx->id, len, &chunk);
        if (rc)
            return rc;
        memcpy(px__arena_ptr(r, chunk), data, len);
    } else if (len) {
        memcpy(ctx->out_inline, data, len);
    }
    if (ctx->out_chunk != PX__NO_CHUNK) {
        px__arena_free(r, ctx->id, ctx->out_chunk, ctx->out_len);
        px__wake_room(r);
    }
    ctx->out_chunk = chunk;
    ctx->out_len = (uint32_t)len;
    return 0;
}

int px_fail(px_ctx *ctx, const char *fmt, ...)
{
    if (!ctx)
        return -EINVAL;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx->err, sizeof ctx->err, fmt ? fmt : "failed", ap);
    va_end(ap);
    ctx->failed = true;
    return PX_ETASKFAILED;
}

int px_should_continue(px_ctx *ctx)
{
    if (!ctx || (ctx->stop && atomic_load_explicit(ctx->stop, memory_order_relaxed)) ||
        (ctx->expired && atomic_load_explicit(ctx->expired, memory_order_relaxed)))
        return 0;
    return PX__CTL_STATE(atomic_load_explicit(&ctx->s->ctl, memory_order_relaxed)) !=
           PX__S_CANCEL_REQUESTED;
}

px_id px_task_id(px_ctx *ctx)
{
    return ctx ? ctx->id : 0;
}

int px_task_attempt(px_ctx *ctx)
{
    return ctx ? (int)PX__CTL_ATT(ctx->claimed) : -EINVAL;
}

/* Writes out bytes into a slot we hold in FINISHING, releasing what an
 * earlier attempt left there (a RETRY's error, when it is cancelled).
 * Returns where they are now. */
static const uint8_t *set_out(px_region *r, struct px__slot *s, uint64_t tag, uint32_t out_chunk,
                              uint32_t out_len, const void *inl)
{
    uint32_t old = atomic_load_explicit(&s->out_chunk, memory_order_relaxed);
    if (old != PX__NO_CHUNK && old != out_chunk)
        px__arena_free(r, tag, old, atomic_load_explicit(&s->out_len, memory_order_relaxed));
    if (out_chunk == PX__NO_CHUNK && out_len)
        memcpy(s->out, inl, out_len);
    atomic_store_explicit(&s->out_chunk, out_chunk, memory_order_relaxed);
    atomic_store_explicit(&s->out_len, out_len, memory_order_relaxed);
    return out_chunk == PX__NO_CHUNK ? s->out : px__arena_ptr(r, out_chunk);
}

/* Writes the outcome into a slot we hold in FINISHING and publishes it.
 * `keep`: a body still runs (failed past its time limit) and may read its
 * args, so they stay, and so does a detached task's slot, until the slot is
 * freed (retention, px_forget). */
static void publish_outcome(px_region *r, struct px__slot *s, uint64_t fin, uint32_t state,
                            uint32_t out_chunk, uint32_t out_len, const void *inl, bool keep,
                            uint64_t fin_tick)
{
    uint64_t tag = PX__ID(PX__CTL_GEN(fin), (uint32_t)(s - r->slots));
    const uint8_t *out = set_out(r, s, tag, out_chunk, out_len, inl);
    /* A run's end was stamped when its body returned (px__run): reading
     * the TSC again would cost as much as a no-op task's run. */
    atomic_store_explicit(&s->fin_tick, fin_tick ? fin_tick : px__ticks(r->tsc),
                          memory_order_relaxed);
    uint32_t args_chunk = atomic_load_explicit(&s->args_chunk, memory_order_relaxed);
    uint32_t args_len = atomic_load_explicit(&s->args_len, memory_order_relaxed);
    uint64_t final = PX__CTL_WITH(fin, state, PX__CTL_OWNER(fin));
    /* A dead task keeps its args (for px_requeue) and its slot, detached
     * or not: dead letters are there to be looked at. */
    bool dead = state == PX__S_DEAD, detached = PX__CTL_FLAGS(fin) & PX__F_DETACHED;
    keep = keep || dead;
    if (!detached || keep)
        px__journal_finish(r, tag, state, out, out_len);
    atomic_store(&s->ctl, final);
    if (!keep) {
        px__arena_free(r, tag, args_chunk, args_len);
        if (args_chunk != PX__NO_CHUNK)
            px__wake_room(r);
    }
    if (detached && !keep)
        px__task_free(r, (uint32_t)(s - r->slots), final);
    else
        px__wake_slot(r, s);
}

/* Publishes a failed run of a task we hold in FINISHING: its error text
 * becomes the out bytes (inline or in chunks), and the task becomes RETRY,
 * DEAD or FAILED (retry.c). */
static enum px__outcome publish_failure(px_region *r, struct px__tls *t, struct px__slot *s,
                                        uint64_t fin, const char *text, bool asked,
                                        int64_t delay_ns, bool live)
{
    /* Out bytes are at most max_payload, error texts included. */
    size_t cap = PX__ERR_MAX - 1 < r->hdr->max_payload ? PX__ERR_MAX - 1 : r->hdr->max_payload;
    size_t n = strnlen(text, cap);
    uint32_t chunk = PX__NO_CHUNK, idx = (uint32_t)(s - r->slots);
    px_id id = PX__ID(PX__CTL_GEN(fin), idx);
    if (n > PX__INLINE_OUT && (!t || px__arena_alloc(r, t, id, n, &chunk) != 0))
        n = PX__INLINE_OUT; /* no room for the whole text: keep its start */
    if (chunk != PX__NO_CHUNK)
        memcpy(px__arena_ptr(r, chunk), text, n);
    uint64_t due = 0;
    uint32_t state = px__retry_decide(r, s, fin, asked, delay_ns, &due);
    if (state != PX__S_RETRY) {
        publish_outcome(r, s, fin, state, chunk, (uint32_t)n, text, live, 0);
        return state == PX__S_DEAD ? PX__DONE_DEAD : PX__DONE_FAILED;
    }
    const uint8_t *out = set_out(r, s, id, chunk, (uint32_t)n, text);
    atomic_store_explicit(&s->fin_tick, px__ticks(r->tsc), memory_order_relaxed);
    /* Not started until its next run: a time limit must not count from
     * this one (limits.c). */
    atomic_store_explicit(&s->start_tick, 0, memory_order_relaxed);
    px__journal_retry(r, id, PX__CTL_ATT(fin), due, out, (uint32_t)n);
    px__timed_enter(r, idx, fin, PX__S_RETRY, due);
    return PX__DONE_RETRY;
}

bool px__end_cancelled(px_region *r, uint32_t idx, uint64_t seen)
{
    struct px__slot *s = &r->slots[idx];
    uint32_t st = PX__CTL_STATE(seen);
    uint32_t owner = st == PX__S_PENDING || px__state_timed(st) ? r->self + 1 : PX__CTL_OWNER(seen);
    uint64_t fin = PX__CTL_WITH(seen, PX__S_FINISHING, owner);
    if (!atomic_compare_exchange_strong(&s->ctl, &seen, fin))
        return false;
    publish_outcome(r, s, fin, PX__S_CANCELLED, PX__NO_CHUNK, 0, NULL, false, 0);
    /* The shared shard: cancels are rare, and this may run in a pool child
     * that should not take a shard of its own. */
    px__stat_count(r, NULL, atomic_load_explicit(&s->queue, memory_order_relaxed), PX__ST_CANCELLED,
                   1);
    return true;
}

/* True if the run we claimed was asked to stop (px_cancel): it then ends
 * CANCELLED, whatever the body returned. */
static bool cancel_requested(px_ctx *ctx, uint64_t *creq)
{
    *creq = PX__CTL_WITH(ctx->claimed, PX__S_CANCEL_REQUESTED, PX__CTL_OWNER(ctx->claimed));
    return atomic_load(&ctx->s->ctl) == *creq;
}

static enum px__outcome finish_cancelled(px_ctx *ctx, uint64_t creq)
{
    px__arena_free(ctx->r, ctx->id, ctx->out_chunk, ctx->out_len);
    return px__end_cancelled(ctx->r, PX__ID_IDX(ctx->id), creq) ? PX__DONE_CANCELLED
                                                                : PX__DONE_REVOKED;
}

static bool to_finishing(struct px__slot *s, uint64_t claimed, uint64_t *fin)
{
    uint64_t want = PX__CTL_WITH(claimed, PX__S_FINISHING, PX__CTL_OWNER(claimed));
    if (!atomic_compare_exchange_strong(&s->ctl, &claimed, want))
        return false;
    *fin = want;
    return true;
}

static enum px__outcome finish(px_ctx *ctx, int rc, char *err_out, size_t err_cap)
{
    px_region *r = ctx->r;
    struct px__slot *s = ctx->s;
    uint64_t fin, creq;
    bool stopping = ctx->stop && atomic_load(ctx->stop);
    if (cancel_requested(ctx, &creq))
        return finish_cancelled(ctx, creq);
    if (rc != 0 && stopping) {
        /* Interrupted by shutdown: back to PENDING, not a failure. */
        if (px__requeue(r, PX__ID_IDX(ctx->id), ctx->claimed)) {
            px__arena_free(r, ctx->id, ctx->out_chunk, ctx->out_len);
            return PX__DONE_REQUEUED;
        }
        if (cancel_requested(ctx, &creq))
            return finish_cancelled(ctx, creq);
        px__arena_free(r, ctx->id, ctx->out_chunk, ctx->out_len);
        return PX__DONE_REVOKED;
    }
    if (ctx->expired && atomic_load(ctx->expired)) {
        /* Past its limit: a failed run, whatever the body said. */
        px__limit_text(px__slot_limit_ms(r, s), ctx->err, sizeof ctx->err);
        ctx->failed = true;
        ctx->retry_asked = false;
    }
    bool asked = ctx->retry_asked || rc == PX_ERETRY;
    bool ok = rc == 0 && !ctx->failed && !asked;
    if (!ok && !ctx->failed) {
        if (asked)
            snprintf(ctx->err, sizeof ctx->err, "retry requested");
        else
            snprintf(ctx->err, sizeof ctx->err, "task returned %d", rc);
    }
    if (!ok && err_out && err_cap)
        snprintf(err_out, err_cap, "%s", ctx->err);
    if (ok && (PX__CTL_FLAGS(ctx->claimed) & PX__F_DETACHED)) {
        /* No one will read the outcome: free the slot in the one CAS that
         * ends our claim. */
        if (px__slot_free(r, PX__ID_IDX(ctx->id), ctx->claimed)) {
            px__journal_free_later(r, ctx->t, ctx->id);
            px__arena_free(r, ctx->id, ctx->out_chunk, ctx->out_len);
            return PX__DONE_OK;
        }
        if (cancel_requested(ctx, &creq))
            return finish_cancelled(ctx, creq);
        px__arena_free(r, ctx->id, ctx->out_chunk, ctx->out_len);
        return PX__DONE_REVOKED;
    }
    if (!to_finishing(s, ctx->claimed, &fin)) {
        if (cancel_requested(ctx, &creq))
            return finish_cancelled(ctx, creq);
        px__arena_free(r, ctx->id, ctx->out_chunk, ctx->out_len);
        return PX__DONE_REVOKED;
    }
    if (ok) {
        publish_outcome(r, s, fin, PX__S_SUCCESS, ctx->out_chunk, ctx->out_len, ctx->out_inline,
                        false, ctx->t1);
        return PX__DONE_OK;
    }
    px__arena_free(r, ctx->id, ctx->out_chunk, ctx->out_len);
    return publish_failure(r, ctx->t, s, fin, ctx->err, asked,
                           ctx->retry_asked ? ctx->retry_delay_ns : -1, false);
}

/* A retried or requeued task still holds its last error: it goes now, as
 * this run writes its own outcome. */
static void clear_last_error(px_region *r, struct px__slot *s, px_id id)
{
    uint32_t chunk = atomic_load_explicit(&s->out_chunk, memory_order_relaxed);
    if (chunk != PX__NO_CHUNK)
        px__arena_free(r, id, chunk, atomic_load_explicit(&s->out_len, memory_order_relaxed));
    atomic_store_explicit(&s->out_chunk, PX__NO_CHUNK, memory_order_relaxed);
    atomic_store_explicit(&s->out_len, 0, memory_order_relaxed);
}

void px__limit_text(uint32_t limit_ms, char *buf, size_t cap)
{
    snprintf(buf, cap, "time limit of %g s exceeded", limit_ms / 1000.0);
}

enum px__outcome px__run(px_region *r, px_id id, uint64_t claimed, const _Atomic int *stop,
                         const _Atomic int *expired, char *err_out, size_t err_cap, bool count)
{
    struct px__slot *s = &r->slots[PX__ID_IDX(id)];
    px_ctx ctx;
    ctx.r = r;
    ctx.id = id;
    ctx.s = s;
    ctx.claimed = claimed;
    ctx.t = px__tls_get(r);
    ctx.out_chunk = PX__NO_CHUNK;
    ctx.out_len = 0;
    ctx.failed = false;
    ctx.retry_asked = false;
    ctx.err[0] = '\0';
    ctx.stop = stop;
    ctx.expired = expired;
    if (atomic_load_explicit(&s->out_len, memory_order_relaxed))
        clear_last_error(r, s, id);
    atomic_store_explicit(&s->worker_pid, r->procs[r->self].pid, memory_order_relaxed);
    px__journal_start(r, ctx.t, id, PX__CTL_ATT(claimed));
    uint64_t t0 = px__ticks(r->tsc);
    atomic_store_explicit(&s->start_tick, t0, memory_order_relaxed);
    /* What the metrics need, read while the slot is ours; the wait is
     * measured to the start's own stamp, not a second clock read. */
    count = count && r->metrics;
    uint32_t q = count ? atomic_load_explicit(&s->queue, memory_order_relaxed) : 0;
    uint64_t wait =
        count ? px__stat_wait_ns(r, atomic_load_explicit(&s->enq_tick, memory_order_relaxed),
                                 atomic_load_explicit(&s->due_ns, memory_order_relaxed), t0)
              : 0;
    uint32_t def = atomic_load_explicit(&s->def, memory_order_relaxed);
    uint32_t len = atomic_load_explicit(&s->args_len, memory_order_relaxed);
    const uint8_t *args = px__slot_args(r, s);
    px_task_fn fn =
        def < r->hdr->max_defs ? atomic_load_explicit(&r->fns[def], memory_order_acquire) : NULL;
    int rc;
    if (!ctx.t) {
        rc = px_fail(&ctx, "out of memory in worker %d", (int)getpid());
    } else if (!args || len > r->hdr->max_payload) {
        rc = px_fail(&ctx, "corrupt task slot (args out of bounds)");
    } else if (!fn) {
        rc = px_fail(&ctx, "task '%s' is not implemented by worker %d", px__def_name(r, def),
                     (int)getpid());
    } else {
        rc = fn(&ctx, args, len);
    }
    /* A detached task's end is read by no one: it is not stamped, not
     * even for the metrics, since a TSC read costs a third of a no-op
     * task's whole run (the README's measurements). */
    bool detached = PX__CTL_FLAGS(claimed) & PX__F_DETACHED;
    ctx.t1 = detached ? 0 : px__ticks(r->tsc);
    enum px__outcome out = finish(&ctx, rc, err_out, err_cap);
    if (count)
        px__stat_ended(r, ctx.t, q, wait, !detached,
                       ctx.t1 > t0 ? px__clock_span_ns(&r->hdr->clock, ctx.t1 - t0) : 0, out);
    return out;
}

/* px__fail_claimed and px__fail_live: `sweep` releases the chunks the run
 * left, which only a run that has ended may have done. */
static enum px__outcome fail_run(px_region *r, px_id id, uint64_t claimed, const char *text,
                                 bool sweep)
{
    struct px__slot *s = &r->slots[PX__ID_IDX(id)];
    uint64_t c = atomic_load(&s->ctl), fin = 0;
    if (c == claimed && !to_finishing(s, claimed, &fin))
        c = atomic_load(&s->ctl); /* a cancel came in between */
    else if (c == claimed)
        c = fin;
    if (c == PX__CTL_WITH(claimed, PX__S_CANCEL_REQUESTED, PX__CTL_OWNER(claimed))) {
        /* A live body asked to stop ends it itself when it returns. */
        if (!sweep)
            return PX__DONE_REVOKED;
        /* It was asked to stop, and now it has: its result chunks go, its
         * args stay for publish_outcome to release. */
        if (sweep)
            px__arena_free_stray(r, id, atomic_load_explicit(&s->args_chunk, memory_order_relaxed),
                                 atomic_load_explicit(&s->args_len, memory_order_relaxed));
        return px__end_cancelled(r, PX__ID_IDX(id), c) ? PX__DONE_CANCELLED : PX__DONE_REVOKED;
    }
    /* Ours in FINISHING now: taken just above, or (only when its runner is
     * known dead: `sweep`) left there by a runner that died writing its
     * outcome. A live runner's FINISHING is its own finish under way. */
    if (c != PX__CTL_WITH(claimed, PX__S_FINISHING, PX__CTL_OWNER(claimed)) || (!sweep && c != fin))
        return PX__DONE_REVOKED;
    fin = c;
    if (sweep) {
        px__arena_free_stray(r, id, atomic_load_explicit(&s->args_chunk, memory_order_relaxed),
                             atomic_load_explicit(&s->args_len, memory_order_relaxed));
        /* The stray sweep released any error an earlier attempt left. */
        atomic_store_explicit(&s->out_chunk, PX__NO_CHUNK, memory_order_relaxed);
    }
    return publish_failure(r, px__tls_get(r), s, fin, text, false, -1, !sweep);
}

enum px__outcome px__fail_claimed(px_region *r, px_id id, uint64_t claimed, const char *text)
{
    return fail_run(r, id, claimed, text, true);
}

enum px__outcome px__fail_live(px_region *r, px_id id, uint64_t claimed, const char *text)
{
    return fail_run(r, id, claimed, text, false);
}

bool px__requeue(px_region *r, uint32_t idx, uint64_t seen)
{
    struct px__slot *s = &r->slots[idx];
    uint32_t key;
    if (!px__slot_key(r, s, &key))
        return false;
    uint64_t want = PX__CTL_WITH(seen, PX__S_PENDING, r->self + 1);
    if (!atomic_compare_exchange_strong(&s->ctl, &seen, want))
        return false;
    atomic_store_explicit(&s->start_tick, 0, memory_order_relaxed); /* see limits.c */
    struct px__tls *t = px__tls_get(r);
    uint64_t id = PX__ID(PX__CTL_GEN(want), idx);
    /* Wait as long as it takes: the task must not stay out of every lane
     * while we live. If we die first, the next reaper pushes it again. */
    if (!t || px__publish(r, t, key, &id, 1, 0) < 0)
        return false;
    return true;
}

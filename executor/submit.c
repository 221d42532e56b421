/*
 * Submitting tasks.
 *
 * A submit reserves a slot (CAS FREE -> RESERVED, owner us), writes the
 * definition, queue and args (inline, or arena chunks tagged with the new
 * id), logs it in a durable region (and in sync mode waits until that is on
 * stable storage), stores PENDING (release), pushes the id into the calling
 * thread's lane, and wakes a worker only if one sleeps. No lock and no
 * system call unless a worker sleeps, there is no room, or the region is
 * durable in sync mode.
 *
 * If the producer dies: while RESERVED (logging included), the reaper frees
 * the slot and the arena sweep its chunks, so nothing runs whose submit was
 * not durable; after PENDING but before the push, the reaper
 * pushes every PENDING task the dead process owned (a task that was pushed
 * as well is then in two lanes, which is harmless: only one claim of it
 * succeeds). So a submit that returned 0 is never lost, and one that did
 * not leaves nothing behind.
 *
 * A delayed submit (delay_s, at_unix_ns) logs its due time with the submit
 * and then, instead of PENDING and a push, enters SCHEDULED and the timer
 * heap (timer.c); a timer thread makes it PENDING when it is due.
 */
#include "timer.h"
#include "../shm/fence.h"
#include "../shm/futex.h"
#include "../shm/park.h"
#include "../persist/journal.h"

#include <errno.h>
#include <limits.h>
#include <string.h>

#define BATCH 64

struct target {
    int def;
    uint32_t key;
    uint32_t queue;
    uint32_t level;
    uint32_t limit_ms;
    uint32_t sched; /* the schedule making it, index + 1; 0: none */
};

/* px__def_find through the thread's one-entry cache. */
static int find_def(px_region *r, struct px__tls *t, const char *task)
{
    if (t->def_cached && task && strcmp(task, t->def_name) == 0)
        return (int)t->def_cached - 1;
    int def = px__def_find(r, task);
    if (def >= 0) {
        /* px__def_find checked that the name fits. */
        strcpy(t->def_name, task);
        t->def_cached = (uint32_t)def + 1;
    }
    return def;
}

static int resolve(px_region *r, struct px__tls *t, const char *task, const px_submit_opts *o,
                   struct target *tg)
{
    int def = find_def(r, t, task);
    if (def < 0)
        return def;
    int queue = (int)r->defs[def].queue;
    if ((uint32_t)queue >= r->hdr->max_queues)
        return PX_ECORRUPT;
    if (o && o->queue && (queue = px__queue_find(r, o->queue, true)) < 0)
        return queue;
    /* A definition made by recovery has no priority yet: NORMAL. */
    int prio = o && o->priority ? o->priority : r->defs[def].priority;
    if (o && (o->priority < 0 || o->priority > PX_PRIORITY_HIGHEST))
        return -EINVAL;
    if (prio < PX_PRIORITY_LOWEST || prio > PX_PRIORITY_HIGHEST)
        prio = PX_PRIORITY_NORMAL;
    tg->def = def;
    tg->queue = (uint32_t)queue;
    tg->level = (uint32_t)prio - 1;
    tg->key = PX__KEY(queue, tg->level, r->defs[def].mode);
    tg->limit_ms = o ? px__limit_ms(o->time_limit_s) : 0;
    tg->sched = 0;
    return 0;
}

/* Reserves a slot and, for args that do not fit inline, arena chunks. A
 * slot taken without chunks is given back quietly: waking room waiters for
 * room we took ourselves a moment ago would wake us too, in a loop. */
static int try_reserve(px_region *r, struct px__tls *t, size_t len, uint32_t flags, px_id *id,
                       uint32_t *chunk)
{
    int rc = px__slot_reserve(r, t, flags, id);
    if (rc == 0 && len > PX__INLINE_ARGS && (rc = px__arena_alloc(r, t, *id, len, chunk)) != 0)
        px__slot_unreserve(r, *id);
    return rc;
}

/* Sleeps until room may have been freed; false once the deadline passed.
 * Producers announce themselves only after failing once, so a submit that
 * finds room writes nothing shared. */
static bool await_room(px_region *r, enum px__wait_kind k, int64_t deadline, int (*retry)(void *),
                       void *arg)
{
    uint64_t now = px__mono_ns();
    if (px__left(deadline, now) == 0)
        return false;
    _Atomic uint32_t *seq = k == PX__WAIT_LANE ? &r->hdr->lane_seq : &r->hdr->room_seq;
    px__announce(r, k);
    uint32_t seen = atomic_load(seq);
    /* Armed after the sequence is read: see px__wake_room_waiters. */
    atomic_store(k == PX__WAIT_LANE ? &r->hdr->lane_armed : &r->hdr->room_armed, 1);
    bool ok = retry(arg) == 0;
    if (!ok) {
        int64_t left = px__left(deadline, px__mono_ns());
        if ((ok = left != 0))
            px__futex_wait(seq, seen, left);
    }
    px__retract(r, k);
    return ok;
}

struct reserve_call {
    px_region *r;
    struct px__tls *t;
    size_t len;
    uint32_t flags;
    px_id id;
    uint32_t chunk;
    int rc;
};

static int reserve_again(void *p)
{
    struct reserve_call *c = p;
    return c->rc = try_reserve(c->r, c->t, c->len, c->flags, &c->id, &c->chunk);
}

/* Reserves and fills a slot, waiting for room as opts say. */
static int fill(px_region *r, struct px__tls *t, const struct target *tg, const void *args,
                size_t len, uint32_t flags, uint32_t ttl_ms, int64_t deadline, px_id *out)
{
    struct reserve_call c = {r, t, len, flags, 0, PX__NO_CHUNK, 0};
    while (reserve_again(&c) != 0)
        if (!await_room(r, PX__WAIT_ROOM, deadline, reserve_again, &c))
            return -EAGAIN;
        else if (c.rc == 0)
            break;
    px_id id = c.id;
    uint32_t chunk = c.chunk;
    struct px__slot *s = &r->slots[PX__ID_IDX(id)];
    atomic_store_explicit(&s->def, (uint32_t)tg->def, memory_order_relaxed);
    atomic_store_explicit(&s->queue, tg->queue, memory_order_relaxed);
    atomic_store_explicit(&s->level, tg->level, memory_order_relaxed);
    atomic_store_explicit(&s->sched, tg->sched, memory_order_relaxed);
    atomic_store_explicit(&s->due_ns, 0, memory_order_relaxed);
    atomic_store_explicit(&s->args_len, (uint32_t)len, memory_order_relaxed);
    atomic_store_explicit(&s->args_chunk, chunk, memory_order_relaxed);
    atomic_store_explicit(&s->out_len, 0, memory_order_relaxed);
    atomic_store_explicit(&s->out_chunk, PX__NO_CHUNK, memory_order_relaxed);
    atomic_store_explicit(&s->worker_pid, 0, memory_order_relaxed);
    atomic_store_explicit(&s->ttl_ms, ttl_ms, memory_order_relaxed);
    atomic_store_explicit(&s->limit_ms, tg->limit_ms, memory_order_relaxed);
    atomic_store_explicit(&s->start_tick, 0, memory_order_relaxed);
    atomic_store_explicit(&s->fin_tick, 0, memory_order_relaxed);
    atomic_store_explicit(&s->enq_tick, px__ticks(r->tsc), memory_order_relaxed);
    if (len)
        memcpy(chunk == PX__NO_CHUNK ? s->args : px__arena_ptr(r, chunk), args, len);
    *out = id;
    return 0;
}

/* RESERVED -> PENDING for tasks filled and logged, just before their push. */
static void pend(px_region *r, const uint64_t *ids, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        struct px__slot *s = &r->slots[PX__ID_IDX(ids[i])];
        uint64_t ctl = atomic_load_explicit(&s->ctl, memory_order_relaxed);
        atomic_store_explicit(&s->ctl, PX__CTL_WITH(ctl, PX__S_PENDING, r->self + 1),
                              memory_order_release);
    }
}

/* Undoes fill() for tasks that could not be pushed: they are RESERVED, or
 * PENDING but in no lane, so no one else can have claimed them. Their submit records may
 * be in the log: the frees are logged too. */
static void unfill(px_region *r, const uint64_t *ids, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        uint32_t idx = PX__ID_IDX(ids[i]);
        px__task_free(r, idx, atomic_load(&r->slots[idx].ctl));
    }
}

static void wake_workers(px_region *r, uint32_t key, uint32_t n)
{
    /* Our tail store came first; a worker going to sleep counts itself in
     * its bits' sleepers and parks (seq_cst) before its last scan reads
     * tail. Either both sides are seq_cst, or our store was a release store
     * and the worker's barrier ordered it (shm/fence.h): either it sees our
     * entry or we see it, counted and parked (shm/park.h). */
    uint32_t bit = px__work_bit(PX__KEY_QUEUE(key), PX__KEY_MODE(key));
    uint32_t sleepers = atomic_load(&r->hdr->sleepers[__builtin_ctz(bit)]);
    if (sleepers == 0)
        return;
    /* With more than 16 queues a bit is shared, and a sleeper woken for
     * it may serve the other queue only: wake them all. */
    bool shared_bit = atomic_load_explicit(&r->hdr->nqueues, memory_order_relaxed) > 16;
    px__park_wake(r, bit, shared_bit ? UINT32_MAX : n < sleepers ? n : sleepers);
}

struct push_call {
    px_region *r;
    uint32_t key;
    struct px__lane *l;
    _Atomic uint64_t *ent;
    uint32_t mask;
    const uint64_t *ids;
    uint32_t n, done;
    uint64_t *head_seen;
    bool light;
};

/* Pushes what is left and wakes workers for what went in; 0 once
 * everything is in. Waking at once matters when the lane is full: the
 * producer then sleeps until workers make room, and entries pushed by the
 * retry of that wait (await_room) would otherwise wait with it, for a
 * worker's timed wake, a second. */
static int push_more(void *p)
{
    struct push_call *c = p;
    uint32_t k = px__lane_push_cached(c->l, c->ent, c->mask, c->ids + c->done, c->n - c->done,
                                      c->head_seen, c->light);
    c->done += k;
    if (k)
        wake_workers(c->r, c->key, k);
    return c->done == c->n ? 0 : -EAGAIN;
}

int px__publish(px_region *r, struct px__tls *t, uint32_t key, const uint64_t *ids, uint32_t n,
                int64_t deadline)
{
    int lane = px__lane_for(r, t, key);
    if (lane < 0)
        return lane;
    struct push_call c = {r,
                          key,
                          &r->lanes[lane],
                          px__lane_entries(r, (uint32_t)lane),
                          r->lane_mask,
                          ids,
                          n,
                          0,
                          px__lane_head_seen(t, (uint32_t)lane),
                          px__fence_light(r->hdr->fences)};
    while (push_more(&c) != 0 && await_room(r, PX__WAIT_LANE, deadline, push_more, &c))
        ;
    return c.done ? (int)c.done : -EAGAIN;
}

/* The submit's deadline. Only a positive timeout reads the clock: "never"
 * is 0 and "at once" is 1, a moment always past. */
static int64_t deadline_of(const px_submit_opts *o)
{
    double timeout = o ? o->timeout_s : 0;
    if (timeout < 0)
        return 0;
    if (timeout == 0)
        return 1;
    return px__deadline(timeout, px__mono_ns());
}

static int check_common(px_region *r, const px_submit_opts *o)
{
    if (!r)
        return -EINVAL;
    if (o && (o->flags & ~(uint32_t)(PX_SUBMIT_DETACHED | PX_SUBMIT_EPHEMERAL)))
        return -EINVAL;
    if (o && (o->flags & PX_SUBMIT_DETACHED) && (o->flags & PX_SUBMIT_EPHEMERAL))
        return -EINVAL;
    if (o && (o->result_ttl_s != o->result_ttl_s || o->result_ttl_s > 4e6))
        return -EINVAL;
    if (o && o->delay_s != 0 && !(o->delay_s > 0 && o->delay_s < 1e9))
        return -EINVAL;
    if (o && o->time_limit_s != 0 && !(o->time_limit_s > 0 && o->time_limit_s < 4e6))
        return -EINVAL;
    return 0;
}

/* When a delayed submit is due (CLOCK_REALTIME ns); 0: now. */
static uint64_t due_of(const px_submit_opts *o)
{
    if (!o || (o->delay_s == 0 && o->at_unix_ns == 0))
        return 0;
    uint64_t now = px__now_ns();
    uint64_t due = now + (uint64_t)(o->delay_s * 1e9);
    if (o->at_unix_ns > due)
        due = o->at_unix_ns;
    return due > now ? due : 0;
}

/* Delayed tasks filled and logged wait in the timer heap. */
static void schedule(px_region *r, const uint64_t *ids, uint32_t n, uint64_t due)
{
    for (uint32_t i = 0; i < n; i++) {
        uint32_t idx = PX__ID_IDX(ids[i]);
        px__timed_enter(r, idx, atomic_load(&r->slots[idx].ctl), PX__S_SCHEDULED, due);
    }
}

/* The retention a submit asks for, in the slot's terms. */
static uint32_t ttl_of(px_region *r, const px_submit_opts *o)
{
    double s = o ? o->result_ttl_s : 0;
    if (s == 0)
        return r->hdr->result_ttl_ms;
    return s < 0 ? PX__TTL_FOREVER : (uint32_t)(s * 1000 < 1 ? 1 : s * 1000);
}

static uint32_t slot_flags(const px_submit_opts *o)
{
    uint32_t f = o ? o->flags : 0;
    return ((f & PX_SUBMIT_DETACHED) ? PX__F_DETACHED : 0) |
           ((f & PX_SUBMIT_EPHEMERAL) ? PX__F_EPHEMERAL : 0);
}

/* "No room" is -EAGAIN for a submit that would not wait, -ETIMEDOUT for one
 * that waited. */
static int no_room(const px_submit_opts *o, int rc)
{
    if (rc == -EAGAIN && o && o->timeout_s != 0)
        return -ETIMEDOUT;
    return rc;
}

/* Under the key's shard lock: the live task with our key, if any (then our
 * reservation goes, unlogged, and that id is the answer); otherwise our id
 * is recorded under the key. */
static int claim_key(px_region *r, uint64_t key, px_id *id)
{
    px__keys_lock(r, key);
    px_id other = px__keys_find(r, key);
    int rc = other ? 1 : px__keys_put(r, key, *id);
    px__keys_unlock(r, key);
    if (other || rc < 0) {
        /* A duplicate, or no room in the index: our slot goes, unlogged. */
        uint32_t idx = PX__ID_IDX(*id);
        px__slot_free(r, idx, atomic_load(&r->slots[idx].ctl));
        *id = other;
    }
    return rc;
}

/* px_submit of a task with a key, a delay or a time, kept out of the plain
 * path: a key that a live task holds answers with that task (returns 1);
 * a delayed task enters the timer heap instead of a lane. */
__attribute__((noinline, cold)) static int submit_special(px_region *r, struct px__tls *t,
                                                          const struct target *tg, const void *args,
                                                          size_t len, const px_submit_opts *opts,
                                                          px_id *out)
{
    uint64_t due = due_of(opts);
    uint64_t key = opts->key ? px__key_hash(opts->key, strlen(opts->key)) : 0;
    uint32_t flags = slot_flags(opts);
    int64_t deadline = deadline_of(opts);
    px_id id;
    int rc = fill(r, t, tg, args, len, flags, ttl_of(r, opts), deadline, &id);
    if (rc)
        return no_room(opts, rc);
    if (key && (rc = claim_key(r, key, &id)) != 0) {
        if (rc == 1 && out)
            *out = id;
        return rc;
    }
    rc = px__journal_wait(r, px__journal_submit(r, id, flags, args, (uint32_t)len, due, key));
    if (rc) {
        unfill(r, &id, 1);
        return rc;
    }
    if (due) {
        schedule(r, &id, 1, due);
    } else {
        pend(r, &id, 1);
        if ((rc = px__publish(r, t, tg->key, &id, 1, deadline)) < 0) {
            unfill(r, &id, 1);
            return no_room(opts, rc);
        }
    }
    px__stat_count(r, t, tg->queue, PX__ST_SUBMITTED, 1);
    if (out)
        *out = id;
    return 0;
}

int px__run_make(px_region *r, struct px__tls *t, const struct px__run_spec *sp, px_id *out,
                 int64_t *ticket)
{
    struct target tg = {.def = (int)sp->def,
                        .queue = sp->queue,
                        .level = sp->level,
                        .limit_ms = sp->limit_ms,
                        .sched = PX__ID_IDX(sp->sched) - PX__SCHED_BIT + 1};
    tg.key = PX__KEY(sp->queue, sp->level, r->defs[sp->def].mode);
    px_id id;
    int rc = fill(r, t, &tg, sp->args, sp->len, sp->flags, sp->ttl_ms, 1, &id);
    if (rc)
        return rc;
    int64_t lsn =
        px__journal_run(r, id, sp->flags, sp->args, (uint32_t)sp->len, sp->due, sp->sched, sp->run);
    if (lsn < 0) {
        unfill(r, &id, 1);
        return (int)lsn;
    }
    *ticket = lsn;
    *out = id;
    px__stat_count(r, t, sp->queue, PX__ST_SUBMITTED, 1);
    return 0;
}

void px__run_arm(px_region *r, px_id id, uint64_t due)
{
    schedule(r, &id, 1, due);
}

int px_submit(px_region *r, const char *task, const void *args, size_t len,
              const px_submit_opts *opts, px_id *out)
{
    int rc = check_common(r, opts);
    if (rc)
        return rc;
    if (len && !args)
        return -EINVAL;
    if (len > r->hdr->max_payload)
        return -E2BIG;
    struct px__tls *t = px__tls_get(r);
    if (!t)
        return -ENOMEM;
    struct target tg;
    if ((rc = resolve(r, t, task, opts, &tg)) != 0)
        return rc;
    if (opts && (opts->every_s != 0 || opts->cron)) {
        struct px__run_spec proto = {.def = (uint32_t)tg.def,
                                     .queue = tg.queue,
                                     .level = tg.level,
                                     .limit_ms = tg.limit_ms,
                                     .flags = slot_flags(opts),
                                     .ttl_ms = ttl_of(r, opts),
                                     .args = args,
                                     .len = len};
        return px__sched_create(r, &proto, opts, out);
    }
    if (opts && (opts->delay_s != 0 || opts->at_unix_ns != 0 || opts->key))
        return submit_special(r, t, &tg, args, len, opts, out);
    int64_t deadline = deadline_of(opts);
    px_id id;
    uint32_t flags = slot_flags(opts);
    if ((rc = fill(r, t, &tg, args, len, flags, ttl_of(r, opts), deadline, &id)) != 0)
        return no_room(opts, rc);
    /* Durable before anyone can run it (journal.h). */
    if ((rc = px__journal_wait(r, px__journal_submit(r, id, flags, args, (uint32_t)len, 0, 0))) !=
        0) {
        unfill(r, &id, 1);
        return rc;
    }
    pend(r, &id, 1);
    if ((rc = px__publish(r, t, tg.key, &id, 1, deadline)) < 0) {
        unfill(r, &id, 1);
        return no_room(opts, rc);
    }
    px__stat_count(r, t, tg.queue, PX__ST_SUBMITTED, 1);
    if (out)
        *out = id;
    return 0;
}

/*
 * A px_submit_many call gathers its tasks in chunks of at most BATCH that
 * share a lane key (one publication each). In sync mode it waits for their
 * submit records once for up to CHUNKS chunks: one flush for up to
 * CHUNKS * BATCH tasks instead of one per chunk. Otherwise each chunk is
 * pushed as soon as it closes, so workers start on a long call's first
 * tasks at once.
 */
#define CHUNKS 16

/* Chunks a call may hold before pushing them: in a small region, few
 * enough that the slots they hold leave room for the rest. */
static uint32_t chunks_held(const px_region *r)
{
    if (r->hdr->durability != PX_DURABLE_SYNC)
        return 1;
    uint32_t fit = r->hdr->capacity / (4 * BATCH);
    return fit < 1 ? 1 : fit > CHUNKS ? CHUNKS : fit;
}

struct batch {
    int64_t deadline, ticket; /* ticket: the last submit record's */
    uint64_t due;
    uint32_t key[CHUNKS], n[CHUNKS];
    uint32_t nchunks, filled; /* filled: tasks in the chunks */
};

/* Pushes the gathered chunks, once their submit records are durable (in
 * sync mode); undoes what could not be pushed, and empties the batch. */
static int flush(px_region *r, struct px__tls *t, struct batch *b, uint64_t *ids, uint32_t *pushed)
{
    int rc = px__journal_wait(r, b->ticket);
    uint32_t at = 0;
    for (uint32_t c = 0; c < b->nchunks && rc == 0; c++) {
        uint32_t key = b->key[c], n = b->n[c];
        if (b->due) {
            schedule(r, ids + at, n, b->due);
            at += n;
            px__stat_count(r, t, PX__KEY_QUEUE(key), PX__ST_SUBMITTED, n);
            continue;
        }
        pend(r, ids + at, n);
        int prc = px__publish(r, t, key, ids + at, n, b->deadline);
        uint32_t k = prc > 0 ? (uint32_t)prc : 0;
        at += k;
        px__stat_count(r, t, PX__KEY_QUEUE(key), PX__ST_SUBMITTED, k);
        if (k != n)
            rc = prc < 0 ? prc : -EAGAIN;
    }
    unfill(r, ids + at, b->filled - at);
    *pushed = at;
    b->nchunks = b->filled = 0;
    return rc;
}

/* Closes the open chunk of `open` tasks for lane key. */
static void close_chunk(struct batch *b, uint32_t key, uint32_t open)
{
    b->key[b->nchunks] = key;
    b->n[b->nchunks++] = open;
}

int px_submit_many(px_region *r, const px_job *jobs, size_t n, const px_submit_opts *opts,
                   px_id *ids)
{
    int rc = check_common(r, opts);
    if (rc)
        return rc;
    if (!jobs || !ids || n > INT_MAX || (opts && (opts->key || opts->every_s != 0 || opts->cron)))
        return -EINVAL;
    struct px__tls *t = px__tls_get(r);
    if (!t)
        return -ENOMEM;
    struct batch b = {.deadline = deadline_of(opts), .due = due_of(opts)};
    struct px__journal_many log = {0};
    uint32_t flags = slot_flags(opts), open = 0, pushed, held = chunks_held(r);
    size_t done = 0;
    struct target tg = {0}, next;
    for (size_t i = 0; i < n; i++) {
        const px_job *j = &jobs[i];
        if ((j->len && !j->args) || !j->task)
            rc = -EINVAL;
        else if (j->len > r->hdr->max_payload)
            rc = -E2BIG;
        else
            rc = resolve(r, t, j->task, opts, &next);
        if (rc == 0 && open && (next.key != tg.key || open == BATCH)) {
            close_chunk(&b, tg.key, open);
            open = 0;
            if (b.nchunks == held) {
                b.ticket = px__journal_many_end(r, &log);
                rc = flush(r, t, &b, ids + done, &pushed);
                done += pushed;
            }
        }
        if (rc == 0) {
            tg = next;
            px_id *id = &ids[done + b.filled];
            /* A wait for room, with a record open, would hold up the log
             * (see journal.h): try at once first, and close it to wait. */
            rc = fill(r, t, &tg, j->args, j->len, flags, ttl_of(r, opts),
                      log.put.p ? 1 : b.deadline, id);
            if (rc == -EAGAIN && log.put.p) {
                px__journal_many_end(r, &log);
                rc = fill(r, t, &tg, j->args, j->len, flags, ttl_of(r, opts), b.deadline, id);
            }
        }
        if (rc)
            break;
        rc = px__journal_many_add(r, &log, ids[done + b.filled], flags, j->args, (uint32_t)j->len,
                                  b.due);
        b.filled++;
        open++;
        if (rc)
            break;
    }
    b.ticket = px__journal_many_end(r, &log);
    if (open)
        close_chunk(&b, tg.key, open);
    if (b.nchunks) {
        int frc = flush(r, t, &b, ids + done, &pushed);
        done += pushed;
        if (rc == 0)
            rc = frc;
    }
    if (done)
        return (int)done;
    return no_room(opts, rc);
}

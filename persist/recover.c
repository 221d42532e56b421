/*
 * Rebuilding a region's tasks from its log.
 *
 * The records are replayed in LSN order into a table with one entry per
 * slot: a SUBMIT puts a task in its slot (replacing an earlier one, which a
 * lost FREE would otherwise leave) as PENDING or, with a due time,
 * SCHEDULED; START counts an attempt (a timed task that starts was fired);
 * RETRY makes it wait for its next run (or, with no due time, a requeued
 * dead task PENDING again); FINISH records the outcome; FREE empties the
 * slot. Records about a task the table does
 * not hold (its SUBMIT was never acknowledged and is not in the log) are
 * counted as orphans and ignored. A checkpoint's end record (durable.c)
 * empties every entry no record since the checkpoint's beginning touched:
 * the checkpoint wrote every task live at its beginning again, so such an
 * entry is one whose freeing was in a segment the checkpoint let go.
 *
 * Then each task left is written into its slot under its old id: PENDING
 * and RUNNING ones as PENDING (attempts kept), SCHEDULED and RETRY ones
 * with their due time, finished ones with their outcome. The region is not
 * yet visible to anyone else, so plain stores do; the pending ones are then
 * pushed into lanes and the timed ones into the timer heap.
 */
#include "durable.h"
#include "../ring/lanes.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct entry {
    uint64_t id;      /* 0: empty */
    uint64_t touched; /* LSN of the last record applied to it */
    uint32_t state, attempts;
    const struct px__rec *submit, *finish, *retry;
    uint32_t task_at; /* a SUBMIT_MANY's: the body offset of this task */
    uint64_t due;
    bool cancel;  /* asked to stop while it ran */
    uint64_t key; /* its idempotency key's hash, 0: none */
};

/* A checkpoint's end: forget what it did not write again. */
static void checkpoint_end(struct entry *t, uint32_t cap, uint64_t begin)
{
    for (uint32_t i = 0; i < cap; i++)
        if (t[i].id && t[i].touched < begin)
            t[i] = (struct entry){0};
}

/* A START: the run counts, and a timed task that starts was fired. */
static void started(struct entry *e, uint32_t att)
{
    if (att > e->attempts)
        e->attempts = att;
    if (px__state_timed(e->state))
        e->state = PX__S_PENDING;
}

/* A START's folded-in FREE (journal.h) empties its task's entry first. */
static void freed_before(struct entry *t, uint32_t cap, const struct px__rec *r)
{
    uint64_t freed = px__rec_start_freed(r);
    if (freed && PX__ID_IDX(freed) < cap && t[PX__ID_IDX(freed)].id == freed)
        t[PX__ID_IDX(freed)] = (struct entry){0};
}

static bool replay_retry(struct entry *t, uint32_t cap, const struct px__rec *r)
{
    struct px__rec_retry rt;
    if (!px__rec_retry_get(r, &rt) || PX__ID_IDX(rt.id) >= cap)
        return false;
    struct entry *e = &t[PX__ID_IDX(rt.id)];
    if (e->id != rt.id)
        return false;
    e->touched = r->lsn;
    e->finish = NULL;
    e->cancel = false;
    if (rt.due_ns == 0) { /* px_requeue: PENDING, attempts from 0 */
        e->state = PX__S_PENDING;
        e->attempts = rt.attempts;
        e->retry = NULL;
    } else {
        e->state = PX__S_RETRY;
        e->attempts = rt.attempts > e->attempts ? rt.attempts : e->attempts;
        e->due = rt.due_ns;
        e->retry = r;
    }
    return true;
}

/* A task's SUBMIT, alone or at body offset `at` of a SUBMIT_MANY; false
 * if it cannot be this region's. */
static bool replay_submit(struct entry *t, uint32_t cap, const struct px__rec *r,
                          struct px__rec_submit *s, uint32_t at)
{
    if (PX__ID_IDX(s->id) >= cap || PX__ID_GEN(s->id) == 0)
        return false;
    struct entry *e = &t[PX__ID_IDX(s->id)];
    /* A checkpoint's copy of a task that was since freed can come after
     * the SUBMIT of the slot's next task: generations only grow while a
     * slot is reused, so an older one is stale. Only within one region's
     * life: a region rebuilt from the log starts its free slots'
     * generations afresh, and there the later record wins. */
    if (e->id && e->id != s->id && e->submit->nonce == r->nonce &&
        (int32_t)(PX__ID_GEN(s->id) - PX__ID_GEN(e->id)) < 0)
        return true;
    /* A checkpoint's copy of a task whose key it read before the task
     * claimed it carries none: a live task keeps its key until it
     * finishes, so the earlier SUBMIT's holds. */
    uint64_t key = s->key ? s->key : e->id == s->id ? e->key : 0;
    *e = (struct entry){.id = s->id,
                        .touched = r->lsn,
                        .state = s->due_ns ? PX__S_SCHEDULED : PX__S_PENDING,
                        .submit = r,
                        .task_at = at,
                        .due = s->due_ns,
                        .key = key};
    return true;
}

/* Each task of a SUBMIT_MANY as a SUBMIT; false if the record is damaged. */
static bool replay_many(struct entry *t, uint32_t cap, const struct px__rec *r,
                        px_recovery_info *rep)
{
    struct px__rec_many m;
    struct px__rec_submit s;
    if (!px__rec_many_get(r, &m))
        return false;
    uint32_t at = m.first, this = at;
    while (px__rec_many_next(r, &m, &at, &s)) {
        if (!replay_submit(t, cap, r, &s, this))
            rep->orphans++;
        this = at;
    }
    return true;
}

static void replay(const struct px__log *log, struct entry *t, uint32_t cap, px_recovery_info *rep)
{
    uint64_t begun = 0; /* the last checkpoint begun, 0: none */
    for (size_t i = 0; i < log->nrecs; i++) {
        const struct px__rec *r = log->recs[i];
        uint64_t id, at;
        uint32_t att;
        bool end;
        struct px__rec_submit s;
        struct px__rec_finish f;
        struct entry *e;
        switch (r->type) {
        case PX__REC_CHECKPOINT:
            if (!px__rec_ckpt_get(r, &at, &end))
                break;
            if (!end)
                begun = at;
            else if (at == begun)
                checkpoint_end(t, cap, at);
            continue;
        case PX__REC_SUBMIT:
            if (!px__rec_submit_get(r, &s) || !replay_submit(t, cap, r, &s, 0))
                break;
            continue;
        case PX__REC_SUBMIT_MANY:
            if (!replay_many(t, cap, r, rep))
                break;
            continue;
        case PX__REC_RETRY:
            if (!replay_retry(t, cap, r))
                break;
            continue;
        case PX__REC_START:
        case PX__REC_FREE:
        case PX__REC_CANCEL:
            if (!px__rec_id_get(r, &id, &att) || PX__ID_IDX(id) >= cap)
                break;
            freed_before(t, cap, r);
            e = &t[PX__ID_IDX(id)];
            if (e->id != id)
                break;
            e->touched = r->lsn;
            if (r->type == PX__REC_FREE)
                *e = (struct entry){0};
            else if (r->type == PX__REC_CANCEL)
                e->cancel = true;
            else
                started(e, att);
            continue;
        case PX__REC_FINISH:
            if (!px__rec_finish_get(r, &f) || PX__ID_IDX(f.id) >= cap)
                break;
            e = &t[PX__ID_IDX(f.id)];
            if (e->id != f.id || !px__state_finished(f.state))
                break;
            e->state = f.state;
            e->finish = r;
            e->retry = NULL;
            e->touched = r->lsn;
            continue;
        default:
            continue; /* SEGMENT */
        }
        rep->orphans++;
    }
}

/* Copies a payload into the slot's inline bytes or new arena chunks. */
static int put_payload(px_region *r, struct px__tls *t, uint64_t id, uint8_t *inl, size_t inl_cap,
                       const uint8_t *p, uint32_t len, uint32_t *chunk)
{
    *chunk = PX__NO_CHUNK;
    if (len > r->hdr->max_payload)
        return -E2BIG;
    if (len <= inl_cap) {
        if (len)
            memcpy(inl, p, len);
        return 0;
    }
    int rc = px__arena_alloc(r, t, id, len, chunk);
    if (rc == 0)
        memcpy(px__arena_ptr(r, *chunk), p, len);
    return rc;
}

/* The definition and queue of the last task restored: most logs hold long
 * runs of one task name, and registering takes the header lock. */
struct last_def {
    char name[64], queue[64];
    uint8_t mode;
    int def, q;
};

/* Finds or registers the definition a SUBMIT names. */
static int resolve_def(px_region *r, const struct px__rec_submit *s, struct last_def *c)
{
    if (c->def >= 0 && c->mode == s->mode && strcmp(c->name, s->name) == 0 &&
        strcmp(c->queue, s->queue) == 0)
        return 0;
    int q = px__queue_find(r, s->queue, true);
    if (q < 0)
        return q;
    px_task_def d = {.name = s->name, .mode = (px_mode)s->mode, .queue = s->queue};
    int rc = px__def_register(r, &d, PX__DEF_RECOVERED);
    if (rc && rc != -EEXIST)
        return rc;
    int def = px__def_find(r, s->name);
    if (def < 0)
        return def;
    memcpy(c->name, s->name, sizeof c->name);
    memcpy(c->queue, s->queue, sizeof c->queue);
    c->mode = s->mode;
    c->def = def;
    c->q = q;
    return 0;
}

/* ---- Schedules ----------------------------------------------------------- */

/* What the log says of one schedule entry: its latest SCHED record, how it
 * ended, and the latest run any SUBMIT made of it. */
struct sched_seen {
    const struct px__rec *rec;
    uint64_t id;
    uint32_t end_state;
    uint32_t max_run;
    uint64_t max_run_due;
};

static struct sched_seen *seen_of(struct sched_seen *seen, uint64_t id)
{
    uint32_t idx = PX__ID_IDX(id);
    if (!(idx & PX__SCHED_BIT) || idx - PX__SCHED_BIT >= PX__MAX_SCHEDS)
        return NULL;
    return &seen[idx - PX__SCHED_BIT];
}

static void replay_scheds(const struct px__log *log, struct sched_seen *seen)
{
    for (size_t i = 0; i < log->nrecs; i++) {
        const struct px__rec *r = log->recs[i];
        struct px__rec_sched sc;
        struct px__rec_submit su;
        struct sched_seen *e;
        uint64_t id;
        uint32_t state;
        if (px__rec_sched_get(r, &sc) && (e = seen_of(seen, sc.id)) != NULL) {
            if (e->id != sc.id) /* a later use of the entry */
                *e = (struct sched_seen){.id = sc.id};
            e->rec = r;
            if (sc.made >= e->max_run) {
                e->max_run = sc.made;
                e->max_run_due = sc.next_ns;
            }
        } else if (r->type == PX__REC_SCHED_END && px__rec_id_get(r, &id, &state) &&
                   (e = seen_of(seen, id)) != NULL && e->id == id) {
            e->end_state = state;
        } else if (r->type == PX__REC_SUBMIT && px__rec_submit_get(r, &su) && su.sched &&
                   (e = seen_of(seen, su.sched)) != NULL && e->id == su.sched &&
                   su.run > e->max_run) {
            e->max_run = su.run;
            e->max_run_due = su.due_ns;
        }
    }
}

/* Writes one schedule into its entry; the region is not yet shared. */
static int restore_sched(px_region *r, const struct sched_seen *e, struct last_def *c)
{
    struct px__rec_sched sc;
    px__rec_sched_get(e->rec, &sc);
    struct px__rec_submit as = {.mode = sc.mode};
    memcpy(as.name, sc.name, sizeof as.name);
    memcpy(as.queue, sc.queue, sizeof as.queue);
    int rc = resolve_def(r, &as, c);
    if (rc)
        return rc;
    bool cron = sc.flags & PX__SCHED_CRON;
    if (sc.args_len > PX__SCHED_ARGS || sc.level >= PX__LEVELS ||
        (sc.flags & ~(uint32_t)(PX__SCHED_SKIP | PX__SCHED_CRON)) || cron != (sc.cron[0] != 0) ||
        (!cron && sc.every_ns == 0) ||
        (e->end_state && e->end_state != PX__SCHED_ENDED && e->end_state != PX__SCHED_CANCELLED))
        return PX_ECORRUPT;
    struct px__sched *d = &r->scheds[PX__ID_IDX(sc.id) - PX__SCHED_BIT];
    d->def = (uint32_t)c->def;
    d->queue = (uint32_t)c->q;
    d->level = sc.level;
    d->flags = sc.flags;
    d->slot_flags = sc.slot_flags;
    d->ttl_ms = sc.ttl_ms;
    d->limit_ms = sc.limit_ms;
    d->times = sc.times;
    d->every_ns = sc.every_ns;
    d->until_ns = sc.until_ns;
    d->created_ns = px__now_ns();
    memcpy(d->cron, sc.cron, sizeof d->cron);
    memcpy(d->tz, sc.tz, sizeof d->tz);
    d->args_len = sc.args_len;
    if (sc.args_len)
        memcpy(d->args, sc.args, sc.args_len);
    atomic_store(&d->gen, PX__ID_GEN(sc.id));
    atomic_store(&d->made, e->max_run);
    atomic_store(&d->next_ns, e->max_run_due);
    atomic_store(&d->next_id, 0);
    atomic_store(&d->creating, 0);
    /* No run made at all (its SUBMIT was lost): the first is pending, and
     * made again (sched.c). Otherwise the latest run, if it is still
     * there, is linked to it when the tasks are restored (link_run); if
     * not, it ran. */
    atomic_store(&d->pend_id, 0);
    atomic_store(&d->pend_ns, e->max_run_due);
    atomic_store(&d->pend_run, e->max_run ? e->max_run : 1);
    atomic_store(&d->armed, e->max_run > 0);
    uint32_t state = e->end_state ? e->end_state : PX__SCHED_ACTIVE;
    atomic_store(&d->state, state);
    if (state == PX__SCHED_ACTIVE)
        atomic_fetch_add(&r->hdr->sched_active, 1);
    uint32_t hwm = PX__ID_IDX(sc.id) - PX__SCHED_BIT + 1;
    if (atomic_load(&r->hdr->sched_hwm) < hwm)
        atomic_store(&r->hdr->sched_hwm, hwm);
    return 0;
}

static int recover_scheds(px_region *r, const struct px__log *log, px_recovery_info *rep)
{
    struct sched_seen *seen = calloc(PX__MAX_SCHEDS, sizeof *seen);
    if (!seen)
        return -ENOMEM;
    replay_scheds(log, seen);
    struct last_def last = {.def = -1};
    int rc = 0;
    for (uint32_t i = 0; i < PX__MAX_SCHEDS && rc == 0; i++)
        if (seen[i].rec && (rc = restore_sched(r, &seen[i], &last)) == 0)
            rep->schedules++;
    free(seen);
    return rc;
}

/* The schedule link of a restored task (index + 1, or 0), making it its
 * schedule's armed run if it is the latest. */
static uint32_t link_run(px_region *r, const struct px__rec_submit *s, uint64_t id)
{
    uint32_t idx = PX__ID_IDX(s->sched);
    if (!s->sched || !(idx & PX__SCHED_BIT) || idx - PX__SCHED_BIT >= PX__MAX_SCHEDS)
        return 0;
    struct px__sched *d = &r->scheds[idx - PX__SCHED_BIT];
    if (atomic_load(&d->state) == PX__SCHED_FREE || atomic_load(&d->gen) != PX__ID_GEN(s->sched))
        return 0;
    if (s->run && s->run == atomic_load(&d->made)) {
        atomic_store(&d->next_id, id);
        atomic_store(&d->armed, 1);
    }
    return idx - PX__SCHED_BIT + 1;
}

static int restore(px_region *r, struct px__tls *t, const struct entry *e, struct last_def *c,
                   uint32_t *key)
{
    struct px__rec_submit s;
    px__rec_submit_at(e->submit, e->task_at, &s);
    int rc = resolve_def(r, &s, c);
    if (rc)
        return rc;
    int q = c->q, def = c->def;
    uint32_t idx = PX__ID_IDX(e->id), args_chunk, out_chunk = PX__NO_CHUNK, out_len = 0;
    struct px__slot *sl = &r->slots[idx];
    /* A finished task's args were released when it finished (a DEAD one
     * keeps them for px_requeue), and one asked to stop while it ran comes
     * back CANCELLED: restoring them could need more arena than the region
     * ever held at once. */
    if ((px__state_finished(e->state) || e->cancel) && e->state != PX__S_DEAD)
        s.args_len = 0;
    if ((rc = put_payload(r, t, e->id, sl->args, PX__INLINE_ARGS, s.args, s.args_len,
                          &args_chunk)) != 0)
        return rc;
    const uint8_t *out = NULL;
    if (e->finish) {
        struct px__rec_finish f;
        px__rec_finish_get(e->finish, &f);
        out = f.out;
        out_len = f.out_len;
    } else if (e->retry) {
        struct px__rec_retry rt;
        px__rec_retry_get(e->retry, &rt);
        out = rt.err;
        out_len = rt.err_len;
    }
    if (out_len &&
        (rc = put_payload(r, t, e->id, sl->out, PX__INLINE_OUT, out, out_len, &out_chunk)) != 0)
        return rc;
    atomic_store(&sl->def, (uint32_t)def);
    atomic_store(&sl->queue, (uint32_t)q);
    uint32_t level = (uint32_t)(s.prio ? s.prio : PX_PRIORITY_NORMAL) - 1;
    atomic_store(&sl->level, level);
    atomic_store(&sl->sched, link_run(r, &s, e->id));
    atomic_store(&sl->args_len, s.args_len);
    atomic_store(&sl->args_chunk, args_chunk);
    atomic_store(&sl->out_len, out_len);
    atomic_store(&sl->out_chunk, out_chunk);
    atomic_store(&sl->enq_tick, px__ticks(r->tsc));
    /* Retention is not logged: a restored result keeps the region's default
     * from the recovery on. */
    atomic_store(&sl->ttl_ms, r->hdr->result_ttl_ms);
    atomic_store(&sl->limit_ms, 0); /* not logged: the definition's applies */
    atomic_store(&sl->fin_tick, px__state_finished(e->state) || e->cancel ? px__ticks(r->tsc) : 0);
    atomic_store(&sl->due_ns, e->due);
    /* A run asked to stop that the crash cut short ends as it would have. */
    bool done = px__state_finished(e->state) || e->cancel;
    bool timed = !done && px__state_timed(e->state);
    uint32_t state = px__state_finished(e->state) ? e->state
                     : e->cancel                  ? PX__S_CANCELLED
                     : timed                      ? e->state
                                                  : PX__S_PENDING;
    uint32_t owner = done || timed ? 0 : r->self + 1;
    uint32_t att = e->attempts > 0xfff ? 0xfff : e->attempts;
    atomic_store(&sl->ctl, PX__CTL(PX__ID_GEN(e->id), state, owner, att, s.flags & 0xf));
    *key = PX__KEY((uint32_t)q, level, (uint32_t)s.mode);
    if (!done && e->key) {
        /* Its key holds again while it is not finished. */
        px__keys_lock(r, e->key);
        rc = px__keys_put(r, e->key, e->id);
        px__keys_unlock(r, e->key);
        if (rc)
            return rc;
    }
    return done ? 1 : timed ? 2 : 0;
}

/* Queues the restored pending tasks, grouped by lane key. */
static int queue_pending(px_region *r, uint64_t *ids, uint32_t *keys, uint32_t n)
{
    for (uint32_t i = 0; i < n;) {
        uint32_t key = keys[i], k = 0;
        for (uint32_t j = i; j < n; j++)
            if (keys[j] == key) {
                uint64_t id = ids[j];
                ids[j] = ids[i + k];
                ids[i + k] = id;
                uint32_t kk = keys[j];
                keys[j] = keys[i + k];
                keys[i + k] = kk;
                k++;
            }
        if (px__lanes_fill(r, key, ids + i, k) != k)
            return -ENOSPC;
        i += k;
    }
    return 0;
}

int px__recover(px_region *r, const struct px__log *log, px_recovery_info *rep)
{
    memset(rep, 0, sizeof *rep);
    rep->segments = log->nsegs;
    rep->records = log->nrecs;
    rep->bytes_cut = log->bytes_cut;
    rep->last_lsn = log->max_lsn;
    atomic_store(&r->hdr->lsn, log->max_lsn);
    uint32_t cap = r->hdr->capacity;
    struct entry *t = calloc(cap, sizeof *t);
    uint64_t *ids = malloc(cap * sizeof *ids);
    uint32_t *keys = malloc(cap * sizeof *keys);
    struct px__tls *tls = px__tls_get(r);
    int rc = -ENOMEM;
    if (!t || !ids || !keys || !tls)
        goto out;
    replay(log, t, cap, rep);
    uint32_t npend = 0;
    struct last_def last = {.def = -1};
    if ((rc = recover_scheds(r, log, rep)) != 0)
        goto out;
    for (uint32_t i = 0; i < cap && rc >= 0; i++) {
        if (!t[i].id)
            continue;
        uint32_t key = 0;
        if ((rc = restore(r, tls, &t[i], &last, &key)) < 0)
            break;
        rep->restored++;
        if (rc == 1) {
            rep->finished++;
        } else if (rc == 2) {
            rep->scheduled++;
        } else {
            ids[npend] = t[i].id;
            keys[npend++] = key;
        }
    }
    if (rc >= 0)
        rc = queue_pending(r, ids, keys, npend);
    if (rc >= 0) {
        px__timers_lock(r);
        px__timers_rebuild(r);
        px__timers_unlock(r);
    }
    rep->pending = npend;
out:
    free(t);
    free(ids);
    free(keys);
    return rc < 0 ? rc : 0;
}

static bool mem_any(px_region *r)
{
    for (uint32_t i = 0; i < r->hdr->capacity; i++)
        if (px__state_logged(PX__CTL_STATE(atomic_load(&r->slots[i].ctl))))
            return true;
    return false;
}

/* Counts how the log's rebuilt table differs from the slots. */
static void compare(px_region *r, const struct entry *t, px_recovery_info *rep)
{
    for (uint32_t i = 0; i < r->hdr->capacity; i++) {
        uint64_t c = atomic_load(&r->slots[i].ctl);
        uint32_t st = PX__CTL_STATE(c);
        px_id id = PX__ID(PX__CTL_GEN(c), i);
        bool mem = px__state_logged(st), log = t[i].id != 0;
        if (log && (!mem || t[i].id != id))
            rep->log_ahead++;
        if (mem && (!log || t[i].id != id))
            rep->log_behind++;
        else if (mem && px__state_finished(st) && t[i].state != st)
            rep->log_behind++; /* an outcome the log lacks */
    }
}

int px__reconcile(px_region *r, px_recovery_info *rep)
{
    memset(rep, 0, sizeof *rep);
    struct px__log log;
    int rc = px__log_load(r->hdr->log_dir, &log);
    if (rc == -ENOENT) {
        memset(&log, 0, sizeof log); /* no log at all: as empty */
        rc = 0;
    }
    if (rc)
        return rc;
    if (log.nsegs == 0 && !mem_any(r)) {
        px__log_free(&log);
        return 0;
    }
    rep->segments = log.nsegs;
    rep->records = log.nrecs;
    rep->bytes_cut = log.bytes_cut;
    rep->last_lsn = log.max_lsn;
    /* LSNs must keep growing past anything the log holds. */
    uint64_t cur = atomic_load(&r->hdr->lsn);
    while (cur < log.max_lsn && !atomic_compare_exchange_weak(&r->hdr->lsn, &cur, log.max_lsn))
        ;
    struct entry *t = calloc(r->hdr->capacity, sizeof *t);
    if (!t) {
        px__log_free(&log);
        return -ENOMEM;
    }
    replay(&log, t, r->hdr->capacity, rep);
    compare(r, t, rep);
    free(t);
    px__log_free(&log);
    if (!rep->log_behind && !rep->log_ahead)
        return 0;
    fprintf(stderr,
            "pollux: %s: the log lacked %llu tasks or outcomes the memory holds and held "
            "%llu the memory no longer does; writing the memory's state to it\n",
            r->name, (unsigned long long)rep->log_behind, (unsigned long long)rep->log_ahead);
    uint64_t dropped;
    return px__checkpoint(r, &dropped);
}

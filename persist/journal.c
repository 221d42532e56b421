/*
 * Task events as log records; see journal.h.
 */
#include "journal.h"
#include "wal.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* The producer's mark, before the record's LSN is taken. A release store:
 * a checkpoint that reads it (acquire) copies the slot's fields, the due
 * time among them (px__timed_enter stores it again). No fence: the LSN's
 * increment and the checkpoint's begin are read-modify-writes of one
 * counter, so if ours comes first the checkpoint's synchronizes with it and
 * sees the mark (durable.c). */
static void mark(struct px__slot *s, px_id id, uint64_t due_ns)
{
    atomic_store_explicit(&s->due_ns, due_ns, memory_order_relaxed);
    atomic_store_explicit(&s->logged, PX__ID_GEN(id), memory_order_release);
}

/* A record's priority field for the slot's level: 0 for NORMAL. */
static uint64_t prio_of(struct px__slot *s)
{
    uint32_t prio = atomic_load_explicit(&s->level, memory_order_relaxed) + 1;
    return prio == PX_PRIORITY_NORMAL ? 0 : prio;
}

/* Why px__wal_begin(max) gave no room. */
static int begin_failed(uint32_t max)
{
    return max > PX__REC_MAX_BODY ? -E2BIG : -ENOMEM;
}

/* A SUBMIT record from the slot's fields, with its optional ones. This
 * runs once per submit: the names are copied once, from the definition and
 * the queue straight into the log, and the record struct is not zeroed. */
static int64_t submit_record(px_region *r, uint64_t id, uint32_t flags, const void *args,
                             uint32_t len, uint64_t due_ns, uint64_t key, uint64_t sched,
                             uint64_t run, bool copy)
{
    struct px__slot *s = &r->slots[PX__ID_IDX(id)];
    uint32_t def = atomic_load_explicit(&s->def, memory_order_relaxed);
    uint32_t q = atomic_load_explicit(&s->queue, memory_order_relaxed);
    struct px__rec_submit rec;
    rec.id = id;
    rec.flags = flags;
    rec.mode = (uint8_t)r->defs[def].mode;
    rec.args = args;
    rec.args_len = len;
    rec.due_ns = due_ns;
    rec.key = key;
    rec.prio = prio_of(s);
    rec.sched = sched;
    rec.run = run;
    uint32_t max = 8 + 4 + 1 + 1 + 64 + 1 + 64 + 4 + len + 5 * 9;
    /* A checkpoint's copy leaves the mark alone: the slot may be a newer
     * task's by now. */
    if (!copy)
        mark(s, id, due_ns);
    uint8_t *dst = px__wal_begin(r->wal, max);
    if (!dst)
        return begin_failed(max);
    struct px__put p = {dst, 0, max, false};
    px__rec_submit_put_names(&p, &rec, r->defs[def].name, PX__NAME_MAX - 1, r->queues[q].name,
                             PX__QNAME_MAX - 1);
    return (int64_t)px__wal_end(r->wal, PX__REC_SUBMIT, (uint32_t)p.len);
}

int64_t px__journal_submit(px_region *r, px_id id, uint32_t flags, const void *args, uint32_t len,
                           uint64_t due_ns, uint64_t key)
{
    if (!r->wal)
        return 0;
    return submit_record(r, id, flags, args, len, due_ns, key, 0, 0, false);
}

int64_t px__journal_run(px_region *r, px_id id, uint32_t flags, const void *args, uint32_t len,
                        uint64_t due_ns, px_id sched, uint32_t run)
{
    if (!r->wal)
        return 0;
    return submit_record(r, id, flags, args, len, due_ns, 0, sched, run, false);
}

int64_t px__journal_copy(px_region *r, px_id id, uint32_t flags, const void *args, uint32_t len,
                         uint64_t due_ns, uint64_t key, px_id sched, uint32_t run)
{
    if (!r->wal)
        return 0;
    return submit_record(r, id, flags, args, len, due_ns, key, sched, run, true);
}

/* Room a SUBMIT_MANY is begun with, unless its first task needs more: a
 * batch of 64 tasks with 64-byte args (76 bytes each) fits in one. */
#define MANY_ROOM 8192u
/* Its shared fields, at most: count, flags, mode, two names, due, prio. */
#define MANY_HEAD (4 + 4 + 1 + 64 + 64 + 8 + 1)

int64_t px__journal_many_end(px_region *r, struct px__journal_many *m)
{
    if (!m->put.p)
        return m->ticket;
    px__rec_many_set_count(m->put.p, m->count);
    uint64_t ticket = px__wal_end(r->wal, PX__REC_SUBMIT_MANY, (uint32_t)m->put.len);
    m->put.p = NULL;
    if (m->ticket >= 0)
        m->ticket = (int64_t)ticket;
    return m->ticket;
}

/* Begins a SUBMIT_MANY for the task in slot s, with room for at least
 * `need` bytes of tasks. */
static int many_begin(px_region *r, struct px__journal_many *m, struct px__slot *s, uint32_t flags,
                      uint64_t due_ns, uint32_t need)
{
    uint32_t def = atomic_load_explicit(&s->def, memory_order_relaxed);
    uint32_t q = atomic_load_explicit(&s->queue, memory_order_relaxed);
    uint32_t max = MANY_HEAD + (need > MANY_ROOM ? need : MANY_ROOM);
    uint8_t *dst = px__wal_begin(r->wal, max);
    if (!dst)
        return begin_failed(max);
    struct px__rec_submit common = {
        .flags = flags, .mode = (uint8_t)r->defs[def].mode, .due_ns = due_ns, .prio = prio_of(s)};
    m->put = (struct px__put){dst, 0, max, false};
    px__rec_many_put(&m->put, &common, r->defs[def].name, PX__NAME_MAX - 1, r->queues[q].name,
                     PX__QNAME_MAX - 1);
    m->count = 0;
    m->def = def;
    m->queue = q;
    m->level = atomic_load_explicit(&s->level, memory_order_relaxed);
    m->flags = flags;
    m->due = due_ns;
    return 0;
}

int px__journal_many_add(px_region *r, struct px__journal_many *m, px_id id, uint32_t flags,
                         const void *args, uint32_t len, uint64_t due_ns)
{
    if (!r->wal)
        return 0;
    struct px__slot *s = &r->slots[PX__ID_IDX(id)];
    uint32_t need = 8 + 4 + len;
    bool open = m->put.p != NULL;
    bool alike = open && m->def == atomic_load_explicit(&s->def, memory_order_relaxed) &&
                 m->queue == atomic_load_explicit(&s->queue, memory_order_relaxed) &&
                 m->level == atomic_load_explicit(&s->level, memory_order_relaxed) &&
                 m->flags == flags && m->due == due_ns;
    if (open && (!alike || m->put.cap - m->put.len < need))
        px__journal_many_end(r, m);
    int rc;
    if (!m->put.p && (rc = many_begin(r, m, s, flags, due_ns, need)) != 0) {
        if (m->ticket >= 0)
            m->ticket = rc;
        return rc;
    }
    mark(s, id, due_ns);
    px__rec_many_task_put(&m->put, id, args, len);
    m->count++;
    return 0;
}

int64_t px__journal_sched(px_region *r, const struct px__sched *e, px_id id)
{
    if (!r->wal)
        return 0;
    struct px__rec_sched rec = {.id = id,
                                .mode = (uint8_t)r->defs[e->def].mode,
                                .level = (uint8_t)e->level,
                                .flags = e->flags,
                                .slot_flags = e->slot_flags,
                                .ttl_ms = e->ttl_ms,
                                .limit_ms = e->limit_ms,
                                .times = e->times,
                                .made = atomic_load(&e->made),
                                .every_ns = e->every_ns,
                                .until_ns = e->until_ns,
                                .next_ns = atomic_load(&e->next_ns),
                                .args = e->args,
                                .args_len = e->args_len};
    snprintf(rec.name, sizeof rec.name, "%s", r->defs[e->def].name);
    snprintf(rec.queue, sizeof rec.queue, "%s", r->queues[e->queue].name);
    snprintf(rec.cron, sizeof rec.cron, "%s", e->cron);
    snprintf(rec.tz, sizeof rec.tz, "%s", e->tz);
    uint32_t max = 8 + 2 + 65 * 2 + 6 * 4 + 3 * 8 + 65 * 2 + 4 + e->args_len;
    uint8_t *dst = px__wal_begin(r->wal, max);
    if (!dst)
        return -ENOMEM;
    struct px__put p = {dst, 0, max, false};
    px__rec_sched_put(&p, &rec);
    return (int64_t)px__wal_end(r->wal, PX__REC_SCHED, (uint32_t)p.len);
}

/* Put straight into the log's ring: a worker writes one or two of these a
 * task. `freed` (a START's only, 0: none) is appended as its last field. */
static void id_record(px_region *r, uint16_t type, px_id id, uint32_t attempts, px_id freed)
{
    uint32_t max = freed ? 20 : 12;
    uint8_t *dst = px__wal_begin(r->wal, max);
    if (!dst)
        return;
    struct px__put p = {dst, 0, max, false};
    px__rec_id_put(&p, id, attempts);
    if (freed)
        px__put_u64(&p, freed);
    px__wal_end(r->wal, type, (uint32_t)p.len);
}

void px__journal_start_freed(px_region *r, px_id id, uint32_t attempts, px_id freed)
{
    id_record(r, PX__REC_START, id, attempts, freed);
}

void px__journal_id(px_region *r, uint16_t type, px_id id, uint32_t attempts)
{
    if (r->wal)
        id_record(r, type, id, attempts, 0);
}

void px__journal_finish(px_region *r, px_id id, uint32_t state, const void *out, uint32_t len)
{
    if (!r->wal)
        return;
    uint32_t max = 8 + 1 + 4 + len;
    uint8_t *dst = px__wal_begin(r->wal, max);
    if (!dst)
        return;
    struct px__put p = {dst, 0, max, false};
    struct px__rec_finish f = {.id = id, .state = (uint8_t)state, .out = out, .out_len = len};
    px__rec_finish_put(&p, &f);
    px__wal_end(r->wal, PX__REC_FINISH, (uint32_t)p.len);
}

void px__journal_cancel(px_region *r, px_id id)
{
    px__journal_id(r, PX__REC_CANCEL, id, 0);
}

void px__journal_sched_end(px_region *r, px_id id, uint32_t state)
{
    px__journal_id(r, PX__REC_SCHED_END, id, state);
}

void px__journal_retry(px_region *r, px_id id, uint32_t attempts, uint64_t due_ns, const void *err,
                       uint32_t len)
{
    if (!r->wal)
        return;
    uint32_t max = 8 + 4 + 8 + 4 + len;
    uint8_t *dst = px__wal_begin(r->wal, max);
    if (!dst)
        return;
    struct px__put p = {dst, 0, max, false};
    struct px__rec_retry t = {id, attempts, due_ns, err, len};
    px__rec_retry_put(&p, &t);
    px__wal_end(r->wal, PX__REC_RETRY, (uint32_t)p.len);
}

int px__journal_wait(px_region *r, int64_t ticket)
{
    if (ticket < 0)
        return (int)ticket;
    if (!r->wal || r->hdr->durability != PX_DURABLE_SYNC)
        return 0;
    return px__wal_wait(r->wal, (uint64_t)ticket);
}

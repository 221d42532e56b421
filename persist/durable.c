/*
 * A durable region's log directory and each process's log writer.
 */
#define _GNU_SOURCE
#include "durable.h"
#include "wal.h"
#include "journal.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DEF_ASYNC_MS 10u
#define DEF_SEGMENT (64ull << 20)

/* "<name>.wal": beside a file region; in the working directory for a
 * "/name" one, since /dev/shm is memory. Made absolute, so that every
 * process that attaches finds the same directory. */
static int default_dir(const char *name, char *out, size_t cap)
{
    char rel[PX__PATH_MAX];
    bool shm = name[0] == '/' && strchr(name + 1, '/') == NULL;
    int n = snprintf(rel, sizeof rel, "%s.wal", shm ? name + 1 : name);
    if (n < 0 || (size_t)n >= sizeof rel)
        return -ENAMETOOLONG;
    if (rel[0] == '/') {
        n = snprintf(out, cap, "%s", rel);
    } else {
        char cwd[PATH_MAX];
        if (!getcwd(cwd, sizeof cwd))
            return -errno;
        n = snprintf(out, cap, "%s/%s", cwd, rel);
    }
    return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

int px__durable_plan(const char *name, const px_region_opts *o, struct px__durable_plan *p)
{
    memset(p, 0, sizeof *p);
    p->durability = o ? (uint32_t)o->durability : PX_DURABLE_NONE;
    if (p->durability > PX_DURABLE_SYNC)
        return -EINVAL;
    if (p->durability == PX_DURABLE_NONE)
        return 0;
    p->async_ms = o->async_ms ? o->async_ms : DEF_ASYNC_MS;
    p->segment_bytes = o->segment_bytes ? o->segment_bytes : DEF_SEGMENT;
    /* A record must hold the largest payload with room to spare. */
    if (p->segment_bytes < 65536 || p->async_ms > 60000 ||
        (o->max_payload && o->max_payload > PX__REC_MAX_BODY - 1024))
        return -EINVAL;
    int rc;
    if (o->log_dir && o->log_dir[0]) {
        if (o->log_dir[0] == '/') {
            if (strlen(o->log_dir) >= sizeof p->dir)
                return -ENAMETOOLONG;
            strcpy(p->dir, o->log_dir);
        } else {
            char cwd[PATH_MAX];
            if (!getcwd(cwd, sizeof cwd))
                return -errno;
            int n = snprintf(p->dir, sizeof p->dir, "%s/%s", cwd, o->log_dir);
            if (n < 0 || (size_t)n >= sizeof p->dir)
                return -ENAMETOOLONG;
        }
    } else if ((rc = default_dir(name, p->dir, sizeof p->dir)) != 0) {
        return rc;
    }
    rc = px__log_load(p->dir, &p->log);
    if (rc == -ENOENT)
        return 0;
    if (rc)
        return rc;
    p->have_log = p->log.nsegs > 0;
    return 0;
}

void px__durable_plan_free(struct px__durable_plan *p)
{
    px__log_free(&p->log);
}

/* The newest segment head: the sizes the region had when last written. */
static const struct px__rec_segment *newest_head(const struct px__log *l)
{
    const struct px__seg *best = NULL;
    for (size_t i = 0; i < l->nsegs; i++) {
        const struct px__seg *s = &l->segs[i];
        if (s->has_head && (!best || s->max_lsn > best->max_lsn))
            best = s;
    }
    return best ? &best->head : NULL;
}

void px__durable_params(const struct px__durable_plan *p, struct px__hdr *h)
{
    const struct px__rec_segment *s = p->have_log ? newest_head(&p->log) : NULL;
    if (!s)
        return;
    h->capacity = s->capacity;
    h->max_payload = s->max_payload;
    h->lanes = s->lanes;
    h->lane_depth = s->lane_depth;
    h->chunk_size = s->chunk_size;
    h->nchunks = s->nchunks;
    h->reap_interval_ns = s->reap_interval_ns;
}

void px__durable_init(const struct px__durable_plan *p, struct px__hdr *h)
{
    h->durability = p->durability;
    h->async_ms = p->async_ms;
    h->segment_bytes = p->segment_bytes;
    snprintf(h->log_dir, sizeof h->log_dir, "%s", p->dir);
}

static int open_wal(px_region *r, struct px__wal **out)
{
    struct px__hdr *h = r->hdr;
    struct px__wal_opts o = {
        .dir = h->log_dir,
        .async_ms = h->async_ms,
        .ahead = h->durability == PX_DURABLE_SYNC,
        .segment_bytes = h->segment_bytes,
        .max_record = h->max_payload + 256,
        .lsn = &h->lsn,
        .bytes = &h->log_bytes,
        .pub_writer = &r->procs[r->self].wal_writer,
        .pub_seq = &r->procs[r->self].wal_seq,
        .params = {.nonce = h->nonce,
                   .capacity = h->capacity,
                   .max_payload = h->max_payload,
                   .lanes = h->lanes,
                   .lane_depth = h->lane_depth,
                   .chunk_size = h->chunk_size,
                   .nchunks = h->nchunks,
                   .reap_interval_ns = h->reap_interval_ns},
    };
    return px__wal_open(&o, out);
}

int px__durable_attach(px_region *r)
{
    if (r->hdr->durability == PX_DURABLE_NONE)
        return 0;
    int rc = open_wal(r, &r->wal);
    if (rc)
        fprintf(stderr, "pollux: cannot open the log in %s: %s\n", r->hdr->log_dir,
                strerror(rc < 0 ? -rc : EIO));
    return rc;
}

void px__durable_detach(px_region *r)
{
    if (!r->wal_borrowed)
        px__wal_close(r->wal);
    r->wal = NULL;
    r->wal_borrowed = false;
}

int px__durable_after_fork(px_region *r)
{
    /* The parent's writer is in shared memory and its log thread drains
     * what we append: nothing to open, nothing to allocate. */
    r->wal_borrowed = r->wal != NULL;
    return 0;
}

/* A slot a worker is finishing is waited for a moment, so that the
 * checkpoint writes its outcome rather than run it again after a crash. A
 * worker that died there is given up on: the task is written as running. */
static uint64_t settled_ctl(struct px__slot *s)
{
    uint64_t c = atomic_load(&s->ctl);
    for (int i = 0; i < 1000 && PX__CTL_STATE(c) == PX__S_FINISHING; i++) {
        usleep(1);
        c = atomic_load(&s->ctl);
    }
    return c;
}

/* Scratch space for one task's payloads while a checkpoint copies them. */
struct scratch {
    uint8_t *args, *out;
    uint64_t *key;    /* by slot: the key hash of a live keyed task */
    px_id *key_owner; /* and which task it is */
    px_id *held;      /* RESERVED slots whose SUBMIT is logged: written last */
    uint32_t nheld;
};

/* A slot its producer holds RESERVED while it logs the SUBMIT (or waits
 * for its flush): its fields are final, and it is written as pending. */
static bool logged_reserved(struct px__slot *s, uint64_t c)
{
    return PX__CTL_STATE(c) == PX__S_RESERVED &&
           atomic_load_explicit(&s->logged, memory_order_acquire) == PX__CTL_GEN(c);
}

/* Copies a consistent view of slot idx: its ctl, and the payloads that ctl
 * makes valid, read again until ctl did not change while they were copied
 * (a task that finishes releases its args; one that is freed, its result).
 * Returns false if the slot holds no task the log records. */
static bool snapshot(px_region *r, uint32_t idx, struct scratch *sc, uint64_t *ctl,
                     uint32_t *args_len, uint32_t *out_len, uint64_t *due)
{
    struct px__slot *s = &r->slots[idx];
    for (;;) {
        uint64_t c = settled_ctl(s);
        uint32_t st = PX__CTL_STATE(c);
        if (!px__state_logged(st) && !logged_reserved(s, c))
            return false;
        bool done = px__state_finished(st);
        /* A finished task's args are released: it will not run again,
         * unless it is DEAD (px_requeue runs it again). A task waiting to
         * retry has both: its args and its last error. */
        uint32_t al = done && st != PX__S_DEAD ? 0 : atomic_load(&s->args_len);
        uint32_t ol = done || st == PX__S_RETRY ? atomic_load(&s->out_len) : 0;
        *due = atomic_load(&s->due_ns);
        const uint8_t *a = al ? px__slot_args(r, s) : NULL;
        const uint8_t *o = ol ? px__slot_out(r, s) : NULL;
        if ((al && (!a || al > r->hdr->max_payload)) || (ol && (!o || ol > r->hdr->max_payload))) {
            if (atomic_load(&s->ctl) == c)
                return false; /* damaged: nothing sane to write */
            continue;
        }
        if (al)
            px__copy_checked(sc->args, a, al);
        if (ol)
            px__copy_checked(sc->out, o, ol);
        if (atomic_load(&s->ctl) == c) {
            *ctl = c;
            *args_len = al;
            *out_len = ol;
            return true;
        }
        sched_yield();
    }
}

/* Writes one task as the records that rebuild it, from a consistent copy.
 * A slot being consumed holds no task to write (its consumer logs its
 * FREE), nor does one being reserved, unless its SUBMIT is logged
 * (emit_tasks). A task that is
 * freed after the copy gets a FREE after the records, which cancels them;
 * one that moves on otherwise has its own records, which may come before
 * these in LSN order and then make it run once more after a crash (with its
 * own args), never be lost. */
static int emit_task(px_region *r, uint32_t idx, struct scratch *sc)
{
    uint64_t c;
    uint32_t al, ol;
    uint64_t due;
    if (!snapshot(r, idx, sc, &c, &al, &ol, &due))
        return 0;
    uint32_t st = PX__CTL_STATE(c);
    px_id id = PX__ID(PX__CTL_GEN(c), idx);
    uint64_t at = st == PX__S_SCHEDULED || st == PX__S_RESERVED ? due : 0;
    uint32_t sched = atomic_load(&r->slots[idx].sched);
    int64_t t;
    if (sched && sched <= PX__MAX_SCHEDS) {
        /* A schedule's run: linked again on recovery, and numbered if it
         * is the schedule's latest. */
        struct px__sched *e = &r->scheds[sched - 1];
        px_id sid = PX__ID(atomic_load(&e->gen), PX__SCHED_BIT | (sched - 1));
        uint32_t run = atomic_load(&e->next_id) == id ? atomic_load(&e->made) : 0;
        t = px__journal_copy(r, id, PX__CTL_FLAGS(c), sc->args, al, at, 0, sid, run);
    } else {
        t = px__journal_copy(r, id, PX__CTL_FLAGS(c), sc->args, al, at,
                             sc->key[idx] && sc->key_owner[idx] == id ? sc->key[idx] : 0, 0, 0);
    }
    if (t < 0)
        return (int)t;
    if (PX__CTL_ATT(c))
        px__journal_start(r, NULL, id, PX__CTL_ATT(c));
    if (st == PX__S_RETRY)
        px__journal_retry(r, id, PX__CTL_ATT(c), due, sc->out, ol);
    if (st == PX__S_CANCEL_REQUESTED)
        px__journal_cancel(r, id);
    if (px__state_finished(st))
        px__journal_finish(r, id, st, sc->out, ol);
    uint64_t now = atomic_load(&r->slots[idx].ctl);
    if (PX__CTL_GEN(now) != PX__CTL_GEN(c) || PX__CTL_STATE(now) == PX__S_FREE)
        px__journal_free(r, id);
    return 0;
}

static void checkpoint_mark(px_region *r, uint64_t begin, bool end)
{
    uint8_t body[9];
    struct px__put p = {body, 0, sizeof body, false};
    px__rec_ckpt_put(&p, begin, end);
    px__wal_append(r->wal, PX__REC_CHECKPOINT, body, (uint32_t)p.len);
}

/* Waits for what was appended; fails if any group since `failed` did. */
static int flush_clean(px_region *r, uint64_t failed)
{
    int rc = px__wal_flush(r->wal);
    struct px__wal_stats st;
    px__wal_stats(r->wal, &st);
    return rc ? rc : st.failed_groups != failed ? -EIO : 0;
}

/* True if a live process appends to this writer's segment seq. */
static bool in_use(px_region *r, uint64_t writer, uint32_t seq)
{
    for (uint32_t i = 0; i < r->hdr->max_procs; i++) {
        struct px__proc *p = &r->procs[i];
        if (atomic_load(&p->state) != PX__PROC_FREE && atomic_load(&p->wal_writer) == writer &&
            atomic_load(&p->wal_seq) == seq)
            return true;
    }
    return false;
}

/* True if every record of segment h is older than begin. A segment the
 * same writer followed with one whose head is older than begin is (see
 * log.h), and no file but its head needs reading; only the last segment
 * of a writer that is gone is read whole. A segment whose head cannot be
 * read yet may be one a live writer is making: in_use says so first. */
static bool all_older(px_region *r, const struct px__seg_head *hs, size_t n,
                      const struct px__seg_head *h, uint64_t begin)
{
    if (in_use(r, h->writer, h->seq))
        return false;
    for (size_t j = 0; j < n; j++)
        if (hs[j].writer == h->writer && hs[j].seq == h->seq + 1)
            return hs[j].has_lsn && hs[j].lsn <= begin;
    uint64_t max;
    return px__log_segment_max(r->hdr->log_dir, h->name, &max) == 0 && max < begin;
}

/* Deletes every segment all of whose records are older than begin and
 * that no live process appends to. */
static int drop_old(px_region *r, uint64_t begin, uint64_t *dropped)
{
    struct px__seg_head *hs;
    size_t n;
    int rc = px__log_heads(r->hdr->log_dir, &hs, &n);
    if (rc)
        return rc;
    int dfd = open(r->hdr->log_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        free(hs);
        return -errno;
    }
    /* Decided on the heads as read, before any is deleted. */
    bool *drop = calloc(n ? n : 1, sizeof *drop);
    for (size_t i = 0; drop && i < n; i++)
        drop[i] = all_older(r, hs, n, &hs[i], begin);
    for (size_t i = 0; drop && i < n; i++)
        if (drop[i] && unlinkat(dfd, hs[i].name, 0) == 0)
            (*dropped)++;
    rc = !drop ? -ENOMEM : fsync(dfd) == 0 ? 0 : -errno;
    close(dfd);
    free(drop);
    free(hs);
    return rc;
}

/* Writes every active schedule as it is now, before the tasks (its runs
 * among them), under the schedule lock so that none is half-advanced; and
 * the end of every ended or cancelled one, since the record of its end may
 * be in a segment this checkpoint lets go while its SCHED record stays. */
static int emit_scheds(px_region *r)
{
    px__sched_lock(r);
    int rc = 0;
    uint32_t hwm = atomic_load(&r->hdr->sched_hwm);
    for (uint32_t i = 0; i < hwm && i < PX__MAX_SCHEDS && rc == 0; i++) {
        struct px__sched *e = &r->scheds[i];
        uint32_t st = atomic_load(&e->state);
        px_id id = PX__ID(atomic_load(&e->gen), PX__SCHED_BIT | i);
        if (st == PX__SCHED_ENDED || st == PX__SCHED_CANCELLED)
            px__journal_sched_end(r, id, st);
        if (st != PX__SCHED_ACTIVE)
            continue;
        int64_t t = px__journal_sched(r, e, id);
        rc = t < 0 ? (int)t : 0;
    }
    px__sched_unlock(r);
    return rc;
}

/* Writes every task live now. A slot its producer holds RESERVED may hold
 * a task whose SUBMIT is older than the checkpoint's begin (logged, and in
 * sync mode flushed, but not yet published), and the checkpoint's end would
 * make a recovery forget it: those marked `logged` are written as pending,
 * last, with their keys read again (a key is claimed before the SUBMIT is
 * logged, perhaps after the keys were read for the rest). A RESERVED slot
 * without the mark logs its SUBMIT after the begin: the mark is stored
 * before the record's LSN is taken from hdr->lsn, and the begin was taken
 * from it before this read; had the record's increment come first, the
 * begin's (acquire) would synchronize with it (release, the same counter)
 * and this read would see the mark. If the producer then fails, or dies and the reaper
 * frees its slot, the FREE that undoes its submit comes after this copy. */
static int emit_tasks(px_region *r, struct scratch *sc)
{
    int rc = 0;
    sc->nheld = 0;
    for (uint32_t i = 0; i < r->hdr->capacity && rc == 0; i++) {
        uint64_t c = atomic_load(&r->slots[i].ctl);
        if (logged_reserved(&r->slots[i], c))
            sc->held[sc->nheld++] = PX__ID(PX__CTL_GEN(c), i);
        else
            rc = emit_task(r, i, sc);
    }
    if (rc != 0 || sc->nheld == 0)
        return rc;
    px__keys_by_slot(r, sc->key, sc->key_owner);
    /* A schedule's run is made under the schedule lock, its SUBMIT logged
     * before the schedule names it: under the lock a held run is either
     * made, and copied with its number, or not begun. */
    px__sched_lock(r);
    for (uint32_t j = 0; j < sc->nheld && rc == 0; j++)
        rc = emit_task(r, PX__ID_IDX(sc->held[j]), sc);
    px__sched_unlock(r);
    return rc;
}

int px__checkpoint(px_region *r, uint64_t *dropped)
{
    *dropped = 0;
    if (!r->wal)
        return 0;
    struct px__wal_stats st;
    px__wal_stats(r->wal, &st);
    uint64_t begin = atomic_fetch_add(&r->hdr->lsn, 1) + 1;
    checkpoint_mark(r, begin, false);
    uint32_t cap = r->hdr->capacity;
    struct scratch sc = {malloc(r->hdr->max_payload),   malloc(r->hdr->max_payload),
                         malloc(cap * sizeof *sc.key),  malloc(cap * sizeof *sc.key_owner),
                         malloc(cap * sizeof *sc.held), 0};
    int rc = sc.args && sc.out && sc.key && sc.key_owner && sc.held ? 0 : -ENOMEM;
    /* Keys taken after this are in their own SUBMIT records, after ours. */
    if (rc == 0)
        px__keys_by_slot(r, sc.key, sc.key_owner);
    if (rc == 0)
        rc = emit_scheds(r);
    if (rc == 0)
        rc = emit_tasks(r, &sc);
    free(sc.args);
    free(sc.out);
    free(sc.key);
    free(sc.key_owner);
    free(sc.held);
    if (rc == 0)
        rc = flush_clean(r, st.failed_groups);
    if (rc == 0) {
        /* Only a checkpoint whose every record is on disk may end. */
        checkpoint_mark(r, begin, true);
        rc = flush_clean(r, st.failed_groups);
    }
    if (rc == 0)
        rc = drop_old(r, begin, dropped);
    if (rc)
        fprintf(stderr, "pollux: checkpoint of %s in %s failed: %s\n", r->name, r->hdr->log_dir,
                px_strerror(rc));
    return rc;
}

void px__checkpoint_maybe(px_region *r)
{
    struct px__hdr *h = r->hdr;
    if (!r->wal)
        return;
    uint64_t written = atomic_load(&h->log_bytes);
    if (written - atomic_load(&h->ckpt_bytes) < h->segment_bytes)
        return;
    uint32_t none = 0;
    if (!atomic_compare_exchange_strong(&h->ckpt_owner, &none, r->self + 1))
        return;
    atomic_store(&h->ckpt_bytes, written);
    uint64_t dropped;
    px__checkpoint(r, &dropped);
    atomic_store(&h->ckpt_owner, 0);
}

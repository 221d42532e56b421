/*
 * A durable region's log directory and each process's log writer.
 */
#define _GNU_SOURCE
#include "durable.h"
#include "wal.h"
#include "journal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
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
    const struct px__rec_segment *best = NULL;
    for (size_t i = 0; i < l->nsegs; i++) {
        const struct px__seg *s = &l->segs[i];
        if (s->has_head && (!best || s->head.writer > best->writer ||
                            (s->head.writer == best->writer && s->head.seq > best->seq)))
            best = &s->head;
    }
    return best;
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
    h->async_ms = DEF_ASYNC_MS;
    h->segment_bytes = DEF_SEGMENT;
    snprintf(h->log_dir, sizeof h->log_dir, "%s", p->dir);
}

static int open_wal(px_region *r, struct px__wal **out)
{
    struct px__hdr *h = r->hdr;
    struct px__wal_opts o = {
        .dir = h->log_dir,
        .sync = h->durability == PX_DURABLE_SYNC,
        .async_ms = h->async_ms,
        .segment_bytes = h->segment_bytes,
        .max_record = h->max_payload + 256,
        .lsn = &h->lsn,
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
    px__wal_close(r->wal);
    r->wal = NULL;
}

int px__durable_after_fork(px_region *r)
{
    r->wal = NULL; /* the parent's; its memory is a copy, its thread is gone */
    return px__durable_attach(r);
}

/* Writes one restored task as the records that rebuild it. */
static int emit_task(px_region *r, uint32_t idx)
{
    struct px__slot *s = &r->slots[idx];
    uint64_t c = atomic_load(&s->ctl);
    uint32_t st = PX__CTL_STATE(c);
    if (st == PX__S_FREE)
        return 0;
    px_id id = PX__ID(PX__CTL_GEN(c), idx);
    const uint8_t *args = px__slot_args(r, s);
    uint32_t len = atomic_load(&s->args_len);
    if (!args)
        return PX_ECORRUPT;
    int64_t t = px__journal_submit(r, id, PX__CTL_FLAGS(c), args, len);
    if (t < 0)
        return (int)t;
    if (PX__CTL_ATT(c))
        px__journal_start(r, id, PX__CTL_ATT(c));
    if (st == PX__S_SUCCESS || st == PX__S_FAILED) {
        const uint8_t *out = px__slot_out(r, s);
        if (!out)
            return PX_ECORRUPT;
        px__journal_finish(r, id, st, out, atomic_load(&s->out_len));
    }
    return 0;
}

int px__durable_checkpoint(px_region *r, const struct px__durable_plan *p)
{
    int rc = 0;
    for (uint32_t i = 0; i < r->hdr->capacity && rc == 0; i++)
        rc = emit_task(r, i);
    if (rc == 0)
        rc = px__wal_flush(r->wal);
    if (rc) {
        fprintf(stderr, "pollux: cannot write the checkpoint of %s in %s: %s\n", r->name, p->dir,
                px_strerror(rc));
        return rc;
    }
    /* The live tasks are all in the new log now: the old segments go. A
     * crash part-way leaves some of them, whose records are older than the
     * checkpoint's and are overridden by it on the next recovery. */
    int dfd = open(p->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return -errno;
    for (size_t i = 0; i < p->log.nsegs; i++)
        unlinkat(dfd, p->log.segs[i].name, 0);
    rc = fsync(dfd) == 0 ? 0 : -errno;
    close(dfd);
    return rc;
}

/*
 * A durable region's log directory and each process's log writer.
 */
#define _GNU_SOURCE
#include "durable.h"
#include "wal.h"

#include <errno.h>
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

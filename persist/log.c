/*
 * Reading a log directory; see log.h.
 *
 * A segment's records are replayed up to its first invalid frame, and not
 * past a cut its writer's next segment names (a group whose write or flush
 * failed). Records of all segments are then ordered by LSN. Duplicated
 * LSNs cannot come from a sound log; one copy, either, is kept.
 */
#define _GNU_SOURCE
#include "log.h"

#include <pollux.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int read_file(int dirfd, const char *name, uint8_t **data, size_t *size)
{
    /* Non-blocking, so that a FIFO named like a segment cannot hang us. */
    int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOFOLLOW);
    if (fd < 0)
        return errno == ELOOP ? -ENOENT : -errno;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int rc = -errno;
        close(fd);
        return rc;
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return -ENOENT;
    }
    size_t n = (size_t)st.st_size, got = 0;
    uint8_t *p = malloc(n ? n : 1);
    if (!p) {
        close(fd);
        return -ENOMEM;
    }
    while (got < n) {
        ssize_t k = pread(fd, p + got, n - got, (off_t)got);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            int rc = k < 0 ? -errno : -EIO;
            free(p);
            close(fd);
            return rc;
        }
        got += (size_t)k;
    }
    close(fd);
    *data = p;
    *size = n;
    return 0;
}

static void scan_segment(struct px__seg *s)
{
    size_t off = 0, k;
    struct px__rec r;
    while ((k = px__rec_read(s->data, s->size, off, &r)) > 0) {
        if (off == 0) {
            /* A segment must open with its SEGMENT record. */
            if (!px__rec_segment_get(&r, &s->head))
                break;
            s->has_head = 1;
        } else if (r.type == PX__REC_SEGMENT) {
            break;
        }
        off += k;
        s->records++;
        if (r.lsn > s->max_lsn)
            s->max_lsn = r.lsn;
    }
    s->valid = s->used = off;
    s->bad_at = off;
    for (size_t i = off; i < s->size; i++)
        if (s->data[i]) {
            s->nonzero_tail = 1;
            break;
        }
}

static bool is_segment_name(const char *n)
{
    size_t len = strlen(n);
    return len > 4 && len < 64 && strcmp(n + len - 4, ".wal") == 0;
}

static int load_segments(const char *dir, struct px__log *l)
{
    DIR *d = opendir(dir);
    if (!d)
        return -errno;
    int rc = 0;
    size_t cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!is_segment_name(e->d_name))
            continue;
        if (l->nsegs == cap) {
            cap = cap ? cap * 2 : 16;
            struct px__seg *n = realloc(l->segs, cap * sizeof *n);
            if (!n) {
                rc = -ENOMEM;
                break;
            }
            l->segs = n;
        }
        struct px__seg *s = &l->segs[l->nsegs];
        memset(s, 0, sizeof *s);
        snprintf(s->name, sizeof s->name, "%s", e->d_name);
        if ((rc = read_file(dirfd(d), s->name, &s->data, &s->size)) == -ENOENT) {
            rc = 0; /* not a regular file, or gone: not a segment */
            continue;
        }
        if (rc)
            break;
        l->nsegs++;
        scan_segment(s);
    }
    closedir(d);
    return rc;
}

/* Applies each segment's cut_prev to its writer's previous segment. */
static void apply_cuts(struct px__log *l)
{
    for (size_t i = 0; i < l->nsegs; i++) {
        struct px__seg *s = &l->segs[i];
        if (!s->has_head || s->head.cut_prev == UINT64_MAX || s->head.seq < 2)
            continue;
        for (size_t j = 0; j < l->nsegs; j++) {
            struct px__seg *p = &l->segs[j];
            if (p->has_head && p->head.writer == s->head.writer && p->head.seq == s->head.seq - 1 &&
                s->head.cut_prev < p->used)
                p->used = s->head.cut_prev < PX__REC_HDR ? 0 : s->head.cut_prev;
        }
    }
}

static int by_lsn(const void *a, const void *b)
{
    const struct px__rec *x = *(const struct px__rec *const *)a;
    const struct px__rec *y = *(const struct px__rec *const *)b;
    return x->lsn < y->lsn ? -1 : x->lsn > y->lsn;
}

static int collect(struct px__log *l)
{
    size_t n = 0;
    for (size_t i = 0; i < l->nsegs; i++)
        n += l->segs[i].records;
    struct px__rec *all = l->all = calloc(n ? n : 1, sizeof *all);
    l->recs = calloc(n ? n : 1, sizeof *l->recs);
    if (!all || !l->recs)
        return -ENOMEM;
    size_t k = 0;
    for (size_t i = 0; i < l->nsegs; i++) {
        struct px__seg *s = &l->segs[i];
        size_t off = 0, f;
        /* [0, valid) is a run of frames scan_segment checked; a cut inside
         * a frame drops that frame. */
        while (off < s->used && (f = px__rec_decoded(s->data + off, &all[k])) <= s->used - off) {
            if (all[k].lsn > l->max_lsn)
                l->max_lsn = all[k].lsn;
            all[k].nonce = s->has_head ? s->head.nonce : 0;
            off += f;
            k++;
        }
        for (size_t b = s->used; b < s->size; b++)
            l->bytes_cut += s->data[b] != 0;
    }
    for (size_t i = 0; i < k; i++)
        l->recs[i] = &all[i];
    qsort(l->recs, k, sizeof *l->recs, by_lsn);
    size_t out = 0;
    for (size_t i = 0; i < k; i++)
        if (out == 0 || l->recs[out - 1]->lsn != l->recs[i]->lsn)
            l->recs[out++] = l->recs[i];
    l->nrecs = out;
    return 0;
}

/* Parses a writer's segment name, "<16 hex digits>-<decimal seq>.wal". */
static bool parse_name(const char *n, uint64_t *writer, uint32_t *seq)
{
    size_t len = strlen(n);
    if (len < 16 + 1 + 1 + 4 || len > 16 + 1 + 10 + 4 || n[16] != '-' ||
        strcmp(n + len - 4, ".wal") != 0)
        return false;
    uint64_t w = 0, q = 0;
    for (size_t i = 0; i < 16; i++) {
        int c = n[i], d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0)
            return false;
        w = w << 4 | (uint64_t)d;
    }
    for (size_t i = 17; i < len - 4; i++) {
        if (n[i] < '0' || n[i] > '9')
            return false;
        q = q * 10 + (uint64_t)(n[i] - '0');
    }
    if (q > UINT32_MAX)
        return false;
    *writer = w;
    *seq = (uint32_t)q;
    return true;
}

/* The LSN of the SEGMENT record a segment opens with, if it is valid. */
static int read_head(int dirfd, struct px__seg_head *h)
{
    int fd = openat(dirfd, h->name, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOFOLLOW);
    if (fd < 0)
        return errno == ELOOP || errno == ENOENT ? 0 : -errno;
    uint8_t buf[512];
    struct stat st;
    ssize_t got = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) ? pread(fd, buf, sizeof buf, 0) : 0;
    int rc = got < 0 ? -errno : 0;
    close(fd);
    struct px__rec r;
    struct px__rec_segment head;
    if (got > 0 && px__rec_read(buf, (size_t)got, 0, &r) > 0 && px__rec_segment_get(&r, &head)) {
        h->has_lsn = 1;
        h->lsn = r.lsn;
    }
    return rc;
}

int px__log_heads(const char *dir, struct px__seg_head **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d)
        return -errno;
    int rc = 0;
    size_t cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && rc == 0) {
        struct px__seg_head h = {0};
        if (!parse_name(e->d_name, &h.writer, &h.seq))
            continue;
        snprintf(h.name, sizeof h.name, "%s", e->d_name);
        if ((rc = read_head(dirfd(d), &h)) != 0)
            break;
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            struct px__seg_head *m = realloc(*out, cap * sizeof *m);
            if (!m) {
                rc = -ENOMEM;
                break;
            }
            *out = m;
        }
        (*out)[(*n)++] = h;
    }
    closedir(d);
    if (rc) {
        free(*out);
        *out = NULL;
        *n = 0;
    }
    return rc;
}

int px__log_segment_max(const char *dir, const char *name, uint64_t *max)
{
    *max = 0;
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return -errno;
    struct px__seg s = {0};
    snprintf(s.name, sizeof s.name, "%s", name);
    int rc = read_file(dfd, s.name, &s.data, &s.size);
    close(dfd);
    if (rc == -ENOENT)
        return 0;
    if (rc)
        return rc;
    scan_segment(&s);
    *max = s.max_lsn;
    free(s.data);
    return 0;
}

/* A segment of a later format may hold records this build cannot read:
 * reading on would cut the log at the first of them. */
static int check_formats(const char *dir, const struct px__log *l)
{
    for (size_t i = 0; i < l->nsegs; i++) {
        const struct px__seg *s = &l->segs[i];
        if (s->has_head && s->head.format > PX__LOG_FORMAT) {
            fprintf(stderr,
                    "pollux: log %s: segment %s has format %u; this build reads formats up to %u\n",
                    dir, s->name, s->head.format, PX__LOG_FORMAT);
            return PX_EVERSION;
        }
    }
    return 0;
}

int px__log_load(const char *dir, struct px__log *out)
{
    memset(out, 0, sizeof *out);
    int rc = load_segments(dir, out);
    if (rc == 0)
        rc = check_formats(dir, out);
    if (rc == 0) {
        apply_cuts(out);
        rc = collect(out);
    }
    if (rc)
        px__log_free(out);
    return rc;
}

void px__log_free(struct px__log *l)
{
    free(l->all);
    free(l->recs);
    for (size_t i = 0; i < l->nsegs; i++)
        free(l->segs[i].data);
    free(l->segs);
    memset(l, 0, sizeof *l);
}

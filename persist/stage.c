/*
 * Block-aligned writes of a log segment; see stage.h.
 */
#define _GNU_SOURCE
#include "stage.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int px__stage_init(struct px__stage *s, size_t cap)
{
    void *p;
    cap = cap < PX__STAGE_BLOCK ? PX__STAGE_BLOCK : px__stage_ceil(cap);
    if (posix_memalign(&p, PX__STAGE_BLOCK, cap) != 0)
        return -ENOMEM;
    s->buf = p;
    s->cap = cap;
    return 0;
}

void px__stage_free(struct px__stage *s)
{
    free(s->buf);
    s->buf = NULL;
}

void px__stage_direct(int fd)
{
    /* Only where the file system says its direct I/O takes our alignment:
     * one that accepted O_DIRECT but wanted larger blocks would fail every
     * write. Kernels before 6.1 do not say; there fcntl's answer decides. */
    struct statx sx;
    if (statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &sx) == 0 && (sx.stx_mask & STATX_DIOALIGN) &&
        (sx.stx_dio_offset_align == 0 || sx.stx_dio_offset_align > PX__STAGE_BLOCK ||
         sx.stx_dio_mem_align > PX__STAGE_BLOCK))
        return;
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0)
        fcntl(fd, F_SETFL, fl | O_DIRECT);
}

/* Copies from iov[*i] (at *skip into it) into dst, up to room bytes;
 * returns the bytes copied and moves (*i, *skip) past them. */
static size_t gather(uint8_t *dst, size_t room, const struct iovec *iov, int n, int *i,
                     size_t *skip)
{
    size_t got = 0;
    while (*i < n && got < room) {
        size_t part = iov[*i].iov_len - *skip;
        if (part > room - got)
            part = room - got;
        memcpy(dst + got, (const uint8_t *)iov[*i].iov_base + *skip, part);
        got += part;
        *skip += part;
        if (*skip == iov[*i].iov_len) {
            (*i)++;
            *skip = 0;
        }
    }
    return got;
}

int px__stage_write(struct px__stage *s, struct px__io *io, int fd, uint64_t off,
                    const struct iovec *iov, int n, bool flush)
{
    size_t keep = (size_t)(off - px__stage_floor(off)), skip = 0;
    uint64_t base = px__stage_floor(off);
    int i = 0;
    while (i < n && iov[i].iov_len == 0)
        i++;
    if (i == n) { /* nothing to write: a flush of earlier writes, or nothing */
        static const struct iovec none;
        return flush ? io->ops->write(io, fd, &none, 0, off, true) : 0;
    }
    for (;;) {
        /* keep < PX__STAGE_BLOCK <= cap, and fill <= cap rounds up to at
         * most cap: a piece never runs past the buffer. */
        size_t fill = keep + gather(s->buf + keep, s->cap - keep, iov, n, &i, &skip);
        while (i < n && iov[i].iov_len == 0)
            i++;
        size_t len = (size_t)px__stage_ceil(fill);
        memset(s->buf + fill, 0, len - fill);
        struct iovec v = {s->buf, len};
        int rc = io->ops->write(io, fd, &v, 1, base, flush && i == n);
        if (rc)
            return rc;
        size_t whole = (size_t)px__stage_floor(fill);
        keep = fill - whole;
        memmove(s->buf, s->buf + whole, keep);
        base += whole;
        if (i == n)
            return 0;
    }
}

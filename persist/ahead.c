/*
 * Zeros written ahead of a log segment's writes; see ahead.h.
 *
 * Invariants (all fields under mu):
 * - [busy_from, busy_to) is the chunk the zeroer is writing now (empty
 *   when busy_to == 0); it starts at or past `front`, and the log thread
 *   never writes into it: a claim that overlaps it waits on `done`.
 * - `front` only grows within a segment: the log's writes end there, so
 *   zeros never land on a record. Both sides write whole 4 KiB blocks (the
 *   log claims from the block holding its end, a chunk starts on a block),
 *   so with direct I/O neither rewrites a block the other is writing.
 * - [zero_from, zeroed) of the current segment holds zeros written and
 *   flushed (a chunk starts at least a chunk past the front, skipping ahead
 *   of a log that caught up); `gen` counts segments, so a chunk that
 *   completes after the log moved on changes nothing of the new segment.
 */
#define _GNU_SOURCE
#include "ahead.h"
#include "stage.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/uio.h>
#include <unistd.h>

/* A chunk is both the zeros written and flushed at a time and how far past
 * the front a chunk starts, at least: a segment's eighth, from 256 KiB to
 * 1 MiB. Every chunk's flush is a flush of the disk, which the log's own
 * flushes queue behind, so fewer and larger chunks cost submits less
 * (docs/architecture.md has the numbers). */
#define CHUNK_MIN (256u << 10)
#define CHUNK_MAX (1u << 20)
#define AHEAD (8ull << 20)   /* how far past the front zeros go */
#define ZERO_BUF (64u << 10) /* one buffer, repeated in an iovec */

struct px__ahead {
    pthread_mutex_t mu;
    pthread_cond_t wake, done;
    pthread_t thread;
    bool stop;
    int fd; /* the zeroer's own descriptor of the segment; -1: none */
    uint64_t gen, front, end, busy_from, busy_to, chunk;
    uint64_t zero_from, zeroed; /* [zero_from, zeroed): zeros written and flushed */
    struct px__ahead_stats st;
};

/* Aligned for direct I/O, which the zeroer uses as the log does. */
static _Alignas(PX__STAGE_BLOCK) const uint8_t zeros[ZERO_BUF];

/* Writes zeros over [from, to) of fd and flushes them. */
static int write_zeros(int fd, uint64_t from, uint64_t to)
{
    struct iovec v[CHUNK_MAX / ZERO_BUF];
    while (from < to) {
        int n = 0;
        uint64_t len = 0;
        while (n < (int)(CHUNK_MAX / ZERO_BUF) && len < to - from) {
            uint64_t part = to - from - len < ZERO_BUF ? to - from - len : ZERO_BUF;
            v[n++] = (struct iovec){(void *)zeros, part};
            len += part;
        }
        ssize_t k = pwritev(fd, v, n, (off_t)from);
        if (k <= 0)
            return k < 0 ? -errno : -EIO;
        from += (uint64_t)k;
    }
    return fdatasync(fd) == 0 ? 0 : -errno;
}

/* True if the zeroer has a chunk to write now. */
static bool has_work(const struct px__ahead *a)
{
    return a->fd >= 0 && a->zeroed < a->end && a->zeroed < a->front + AHEAD;
}

static void *zeroer_main(void *p)
{
    struct px__ahead *a = p;
    pthread_mutex_lock(&a->mu);
    for (;;) {
        while (!a->stop && !has_work(a))
            pthread_cond_wait(&a->wake, &a->mu);
        if (a->stop)
            break;
        /* Never right at the front: the log's next groups go there, and
         * one that reached a chunk being written would wait for it. If
         * the log has caught up, the zeros skip ahead of it instead. */
        uint64_t lead = a->front + a->chunk;
        uint64_t from = px__stage_ceil(a->zeroed > lead ? a->zeroed : lead);
        uint64_t last = px__stage_floor(a->end); /* whole blocks only */
        if (from >= last) {
            a->end = 0; /* the rest of this segment gets no zeros */
            continue;
        }
        uint64_t to = from + a->chunk < last ? from + a->chunk : last;
        uint64_t gen = a->gen;
        int fd = a->fd;
        a->busy_from = from;
        a->busy_to = to;
        pthread_mutex_unlock(&a->mu);
        int rc = write_zeros(fd, from, to);
        pthread_mutex_lock(&a->mu);
        a->busy_from = a->busy_to = 0;
        if (gen == a->gen) {
            if (rc == 0) {
                if (from != a->zeroed)
                    a->zero_from = from; /* it skipped ahead of the log */
                a->zeroed = to;
                a->st.zeroed += to - from;
            } else {
                a->end = 0; /* no more zeros for this segment */
            }
        }
        pthread_cond_broadcast(&a->done);
    }
    pthread_mutex_unlock(&a->mu);
    return NULL;
}

int px__ahead_start(struct px__ahead **out)
{
    struct px__ahead *a = calloc(1, sizeof *a);
    if (!a)
        return -ENOMEM;
    a->fd = -1;
    pthread_mutex_init(&a->mu, NULL);
    pthread_cond_init(&a->wake, NULL);
    pthread_cond_init(&a->done, NULL);
    int rc = pthread_create(&a->thread, NULL, zeroer_main, a);
    if (rc) {
        free(a);
        return -rc;
    }
    *out = a;
    return 0;
}

void px__ahead_stop(struct px__ahead *a)
{
    if (!a)
        return;
    pthread_mutex_lock(&a->mu);
    a->stop = true;
    pthread_cond_signal(&a->wake);
    pthread_mutex_unlock(&a->mu);
    pthread_join(a->thread, NULL);
    if (a->fd >= 0)
        close(a->fd);
    pthread_cond_destroy(&a->wake);
    pthread_cond_destroy(&a->done);
    pthread_mutex_destroy(&a->mu);
    free(a);
}

void px__ahead_segment(struct px__ahead *a, int dirfd, const char *name, uint64_t from,
                       uint64_t end)
{
    /* Opened before the lock: an open can take a while, and the zeroer
     * only ever writes to the descriptor it holds under the lock. */
    int fd = openat(dirfd, name, O_WRONLY | O_CLOEXEC);
    if (fd >= 0)
        px__stage_direct(fd);
    pthread_mutex_lock(&a->mu);
    while (a->busy_to)
        pthread_cond_wait(&a->done, &a->mu);
    if (a->fd >= 0)
        close(a->fd);
    a->fd = fd;
    a->gen++;
    a->front = a->zero_from = a->zeroed = from;
    a->end = fd >= 0 ? end : 0;
    a->chunk = px__stage_floor(end / 8);
    a->chunk = a->chunk < CHUNK_MIN ? CHUNK_MIN : a->chunk > CHUNK_MAX ? CHUNK_MAX : a->chunk;
    pthread_cond_signal(&a->wake);
    pthread_mutex_unlock(&a->mu);
}

/* True if [off, to) overlaps the chunk being zeroed. */
static bool overlaps_busy(const struct px__ahead *a, uint64_t off, uint64_t to)
{
    return a->busy_to && off < a->busy_to && to > a->busy_from;
}

void px__ahead_claim(struct px__ahead *a, uint64_t off, uint64_t len)
{
    uint64_t to = off + len;
    pthread_mutex_lock(&a->mu);
    if (overlaps_busy(a, off, to))
        a->st.waited++;
    while (overlaps_busy(a, off, to))
        pthread_cond_wait(&a->done, &a->mu);
    if (a->zeroed > off && off >= a->zero_from)
        a->st.ready += (a->zeroed < to ? a->zeroed : to) - off;
    if (to > a->front)
        a->front = to;
    if (has_work(a) && !a->busy_to)
        pthread_cond_signal(&a->wake);
    pthread_mutex_unlock(&a->mu);
}

void px__ahead_stats(struct px__ahead *a, struct px__ahead_stats *s)
{
    pthread_mutex_lock(&a->mu);
    *s = a->st;
    pthread_mutex_unlock(&a->mu);
}

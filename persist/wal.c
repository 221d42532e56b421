/*
 * The write-ahead log of one process: append, group commit, segments.
 * See wal.h for what it guarantees.
 *
 * Invariants:
 * - fill, fill_group, done_group, results[], sync_waiters, stop and the
 *   stats are guarded by mu. The segment fields (fd, off, seq, cut) belong
 *   to the log thread alone once it runs.
 * - A record is in exactly one group: the fill buffer at the time of its
 *   px__wal_end. The log thread takes the fill buffer whole, so a group's
 *   records are written in one call, in buffer (LSN) order.
 * - done_group only grows; results[g % RESULTS] is group g's outcome from
 *   the moment done_group reaches g until group g + RESULTS completes.
 */
#define _GNU_SOURCE
#include "wal.h"
#include "io.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define RESULTS 1024
#define MIN_BUF (4u << 20)
#define PREALLOC_STEP (4ull << 20)

struct buf {
    uint8_t *p;
    size_t len, cap;
};

struct px__wal {
    struct px__wal_opts o;
    char *dir;
    int dirfd;
    struct px__io *io;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t work; /* the log thread waits for records */
    pthread_cond_t done; /* appenders wait for room, waiters for groups */
    struct buf fill, spare;
    uint64_t fill_group, done_group;
    int results[RESULTS];
    unsigned sync_waiters;
    bool stop, flushing;
    size_t buf_cap; /* of each buffer; set at open, then read-only */
    struct px__wal_stats st;
    /* Log thread only. */
    int fd;
    uint32_t seq;
    uint64_t writer, off, allocated, cut; /* cut: where the last segment must be cut */
};

/* Memory shared with the pool children this process forks later: the
 * writer and its buffers, so that a child appends to its parent's log
 * without a thread or an allocation of its own (see wal.h). */
static void *shared_alloc(size_t size)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

static int buf_make(struct buf *b, size_t cap)
{
    b->p = shared_alloc(cap);
    b->cap = cap;
    b->len = 0;
    return b->p ? 0 : -ENOMEM;
}

/* Locks the writer. A holder that died (a child killed while appending)
 * left the buffer valid: its bytes past fill.len are simply not used. */
static void wal_lock(struct px__wal *w)
{
    if (pthread_mutex_lock(&w->mu) == EOWNERDEAD)
        pthread_mutex_consistent(&w->mu);
}

/* Waits on c (until ts, if given) as wal_lock locks; true on a timeout. */
static bool wal_cond_wait(struct px__wal *w, pthread_cond_t *c, const struct timespec *ts)
{
    int rc = ts ? pthread_cond_timedwait(c, &w->mu, ts) : pthread_cond_wait(c, &w->mu);
    if (rc == EOWNERDEAD)
        pthread_mutex_consistent(&w->mu);
    return rc == ETIMEDOUT;
}

/* ---- Segments (log thread) ------------------------------------------------ */

static int segment_header(struct px__wal *w, uint8_t *dst, size_t cap, size_t *size)
{
    struct px__rec_segment s = w->o.params;
    s.writer = w->writer;
    s.seq = w->seq;
    s.pid = (int32_t)getpid();
    s.cut_prev = w->cut;
    struct px__put p = {dst + PX__REC_HDR, 0, cap - PX__REC_HDR, false};
    px__rec_segment_put(&p, &s);
    if (p.overflow)
        return -EOVERFLOW;
    uint64_t lsn = atomic_fetch_add(w->o.lsn, 1) + 1;
    *size = px__rec_seal(dst, PX__REC_SEGMENT, lsn, (uint32_t)p.len);
    return 0;
}

static int sync_dir(struct px__wal *w)
{
    return fsync(w->dirfd) == 0 ? 0 : -errno;
}

static int segment_try(struct px__wal *w)
{
    uint8_t head[256];
    size_t hsize;
    int rc = segment_header(w, head, sizeof head, &hsize);
    if (rc)
        return rc;
    char name[64];
    snprintf(name, sizeof name, "%016" PRIx64 "-%06u.wal", w->writer, w->seq);
    int fd = openat(w->dirfd, name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    uint64_t want = w->o.segment_bytes < PREALLOC_STEP ? w->o.segment_bytes : PREALLOC_STEP;
    struct iovec v = {head, hsize};
    if ((rc = w->io->ops->prealloc(w->io, fd, 0, want)) != 0 ||
        (rc = w->io->ops->write(w->io, fd, &v, 1, 0, true)) != 0 || (rc = sync_dir(w)) != 0) {
        close(fd);
        unlinkat(w->dirfd, name, 0);
        return rc;
    }
    if (w->fd >= 0)
        close(w->fd);
    w->fd = fd;
    w->off = hsize;
    w->allocated = want;
    w->cut = UINT64_MAX;
    wal_lock(w); /* the counters are read under it */
    w->st.segments++;
    pthread_mutex_unlock(&w->mu);
    return 0;
}

/* Starts the next segment: a new file, its space, its first record, all on
 * stable storage (and the directory entry too) before it is used. On
 * failure nothing changes, so the next attempt takes the same number. */
static int segment_open(struct px__wal *w)
{
    w->seq++;
    /* Published before the file exists, so that a checkpoint that sees the
     * file also sees that it is in use. */
    atomic_store(w->o.pub_writer, w->writer);
    atomic_store(w->o.pub_seq, w->seq);
    int rc = segment_try(w);
    if (rc)
        w->seq--;
    return rc;
}

/* Writes one group and flushes it. On failure the segment is abandoned at
 * the group's offset and a new one started at once, whose first record
 * tells recovery to cut the old one there. */
static int write_group(struct px__wal *w, struct buf *b)
{
    int rc = 0;
    if (w->fd < 0 || w->off + b->len > w->o.segment_bytes)
        if ((rc = segment_open(w)) != 0) {
            fprintf(stderr, "pollux: cannot start a log segment in %s: %s\n", w->dir,
                    strerror(-rc));
            return rc;
        }
    if (w->off + b->len > w->allocated) {
        uint64_t end = w->off + b->len + PREALLOC_STEP;
        if (w->io->ops->prealloc(w->io, w->fd, w->allocated, end - w->allocated) == 0)
            w->allocated = end;
    }
    struct iovec v = {b->p, b->len};
    rc = w->io->ops->write(w->io, w->fd, &v, 1, w->off, true);
    if (rc == 0) {
        w->off += b->len;
        atomic_fetch_add(w->o.bytes, b->len);
        return 0;
    }
    fprintf(stderr, "pollux: log %s/%016" PRIx64 "-%06u.wal: write at %" PRIu64 " failed: %s\n",
            w->dir, w->writer, w->seq, w->off, strerror(-rc));
    uint64_t cut = w->off;
    close(w->fd);
    w->fd = -1;
    w->cut = cut;
    /* If this fails, the next group tries again; w->cut still says where. */
    segment_open(w);
    return rc;
}

/* ---- The log thread --------------------------------------------------- */

static void deadline_in(struct timespec *ts, unsigned ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    uint64_t ns = (uint64_t)ts->tv_nsec + (uint64_t)ms * 1000000ull;
    ts->tv_sec += (time_t)(ns / 1000000000ull);
    ts->tv_nsec = (long)(ns % 1000000000ull);
}

/* True when the (non-empty) fill buffer should be written at once, without
 * waiting for the async window to close. */
static bool due_now(struct px__wal *w)
{
    return w->o.sync || w->stop || w->sync_waiters || w->fill.len >= w->fill.cap / 2;
}

/* Waits, under mu, until there is a group to write (true) or the writer
 * stops with nothing left (false). An empty buffer is waited on without a
 * timeout; in async mode a buffer that is not due yet is given until
 * async_ms after the log thread first saw it non-empty. */
static bool await_group(struct px__wal *w)
{
    struct timespec ts;
    bool have_deadline = false;
    for (;;) {
        if (w->fill.len == 0) {
            if (w->stop)
                return false;
            wal_cond_wait(w, &w->work, NULL);
            continue;
        }
        if (due_now(w))
            return true;
        if (!have_deadline) {
            deadline_in(&ts, w->o.async_ms ? w->o.async_ms : 1);
            have_deadline = true;
        }
        if (wal_cond_wait(w, &w->work, &ts))
            return true;
    }
}

static void *log_main(void *p)
{
    struct px__wal *w = p;
    wal_lock(w);
    while (await_group(w)) {
        struct buf b = w->fill;
        w->fill = w->spare;
        uint64_t g = w->fill_group++;
        w->flushing = true;
        pthread_mutex_unlock(&w->mu);
        int rc = write_group(w, &b);
        wal_lock(w);
        w->flushing = false;
        w->results[g % RESULTS] = rc;
        w->done_group = g;
        w->st.groups++;
        w->st.flushes++;
        w->st.bytes += b.len;
        if (rc)
            w->st.failed_groups++;
        b.len = 0;
        w->spare = b;
        pthread_cond_broadcast(&w->done);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

/* ---- Appending and waiting ---------------------------------------------- */

uint8_t *px__wal_begin(struct px__wal *w, uint32_t max)
{
    if (max > PX__REC_MAX_BODY)
        return NULL; /* a frame the reader would refuse */
    size_t need = px__rec_size(max);
    if (need > w->buf_cap)
        return NULL; /* larger than the writer was made for */
    wal_lock(w);
    /* A full buffer waits for the log thread to take it; an empty one has
     * room for the largest record. */
    while (w->fill.cap - w->fill.len < need) {
        pthread_cond_signal(&w->work);
        wal_cond_wait(w, &w->done, NULL);
    }
    return w->fill.p + w->fill.len + PX__REC_HDR;
}

uint64_t px__wal_end(struct px__wal *w, uint16_t type, uint32_t len)
{
    uint64_t lsn = atomic_fetch_add(w->o.lsn, 1) + 1;
    bool first = w->fill.len == 0;
    w->fill.len += px__rec_seal(w->fill.p + w->fill.len, type, lsn, len);
    w->st.records++;
    uint64_t ticket = w->fill_group;
    /* The log thread sleeps without a timeout on an empty buffer: the first
     * record wakes it (to start the async window, or to write at once). */
    if (!w->flushing && (first || w->o.sync))
        pthread_cond_signal(&w->work);
    pthread_mutex_unlock(&w->mu);
    return ticket;
}

uint64_t px__wal_append(struct px__wal *w, uint16_t type, const void *body, uint32_t len)
{
    uint8_t *dst = px__wal_begin(w, len);
    if (!dst)
        return 0;
    memcpy(dst, body, len);
    return px__wal_end(w, type, len);
}

int px__wal_wait(struct px__wal *w, uint64_t ticket)
{
    if (ticket == 0)
        return -ENOMEM; /* the append itself failed */
    wal_lock(w);
    w->sync_waiters++;
    pthread_cond_signal(&w->work);
    while (w->done_group < ticket)
        wal_cond_wait(w, &w->done, NULL);
    w->sync_waiters--;
    /* A waiter that slept through RESULTS groups cannot tell how its own
     * went; it reports a failure rather than claim success. */
    int rc = w->done_group - ticket < RESULTS ? w->results[ticket % RESULTS] : -EIO;
    pthread_mutex_unlock(&w->mu);
    return rc;
}

int px__wal_flush(struct px__wal *w)
{
    wal_lock(w);
    uint64_t last = w->fill.len ? w->fill_group : w->fill_group - 1;
    pthread_mutex_unlock(&w->mu);
    return last ? px__wal_wait(w, last) : 0;
}

void px__wal_stats(struct px__wal *w, struct px__wal_stats *s)
{
    wal_lock(w);
    *s = w->st;
    pthread_mutex_unlock(&w->mu);
}

/* ---- Opening and closing ---------------------------------------------- */

static int open_dir(const char *dir)
{
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return -errno;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    return fd < 0 ? -errno : fd;
}

static int writable(const char *dir)
{
    return access(dir, W_OK | X_OK) == 0 ? 0 : -errno;
}

static void wal_free(struct px__wal *w)
{
    if (w->io)
        w->io->ops->destroy(w->io);
    if (w->fd >= 0)
        close(w->fd);
    if (w->dirfd >= 0)
        close(w->dirfd);
    /* No pthread_*_destroy: a pool child killed while it waited leaves a
     * waiter count in a condition variable that destroy would wait on for
     * ever. The memory goes with the mapping. */
    if (w->fill.p)
        munmap(w->fill.p, w->fill.cap);
    if (w->spare.p)
        munmap(w->spare.p, w->spare.cap);
    free(w->dir);
    munmap(w, sizeof *w);
}

int px__wal_open(const struct px__wal_opts *o, struct px__wal **out)
{
    if (!o || !o->dir || !o->lsn || !o->bytes || !o->pub_writer || !o->pub_seq ||
        o->segment_bytes < 4096)
        return -EINVAL;
    struct px__wal *w = shared_alloc(sizeof *w); /* zeroed */
    if (!w)
        return -ENOMEM;
    w->o = *o;
    w->fd = w->dirfd = -1;
    w->fill_group = 1;
    w->cut = UINT64_MAX;
    /* A writer is named at random: not by an LSN, since a writer that died
     * before its first write left LSNs that a recovery cannot know were
     * taken. */
    while (w->writer == 0)
        if (getrandom(&w->writer, sizeof w->writer, 0) != sizeof w->writer)
            w->writer = ((uint64_t)getpid() << 32) ^ (uint64_t)time(NULL) ^ (uintptr_t)w;
    /* Process-shared, so that pool children append too; robust, so that
     * a child killed while holding it blocks no one. */
    pthread_mutexattr_t ma;
    pthread_mutexattr_init(&ma);
    pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&ma, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_init(&w->mu, &ma);
    pthread_mutexattr_destroy(&ma);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setpshared(&ca, PTHREAD_PROCESS_SHARED);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&w->work, &ca);
    pthread_cond_init(&w->done, &ca);
    pthread_condattr_destroy(&ca);
    int rc = -ENOMEM;
    size_t cap = 2 * px__rec_size(o->max_record);
    if (cap < MIN_BUF)
        cap = MIN_BUF;
    w->buf_cap = cap;
    if (!(w->dir = strdup(o->dir)) || (rc = buf_make(&w->fill, cap)) != 0 ||
        (rc = buf_make(&w->spare, cap)) != 0)
        goto fail;
    /* The first segment is made by the first write: a process that only
     * looks at a region leaves no file behind. The directory must be
     * writable now, though, so that the problem shows at open. */
    if ((rc = w->dirfd = open_dir(o->dir)) < 0 || (rc = writable(o->dir)) != 0 ||
        (rc = px__io_new(&w->io)) != 0)
        goto fail;
    if ((rc = -pthread_create(&w->thread, NULL, log_main, w)) != 0)
        goto fail;
    *out = w;
    return 0;
fail:
    if (w->dirfd < 0)
        w->dirfd = -1;
    wal_free(w);
    return rc;
}

void px__wal_close(struct px__wal *w)
{
    if (!w)
        return;
    wal_lock(w);
    w->stop = true;
    pthread_cond_signal(&w->work);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    wal_free(w);
}

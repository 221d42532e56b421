/*
 * The write-ahead log of one process: append, group commit, segments.
 * See wal.h for what it guarantees.
 *
 * Invariants:
 * - Ring i > 0 has one appending thread at a time, its owner: the owner
 *   alone writes its tail and the bytes past it; the log thread alone
 *   writes its head. Ring 0 is appended to under mu, by threads that found
 *   no ring of their own. Bytes [head, tail) of a ring are sealed records
 *   the log thread has not written yet; bytes past tail are a record being
 *   built (or the remains of one whose builder died) and are never read.
 * - A ring's tail is published with a sequentially consistent store, and
 *   the appender reads fill_group after it; the log thread moves
 *   fill_group from g to g + 1 before it reads the tails for group g. So a
 *   record whose appender read ticket t is in a group <= t, and waiting
 *   for done_group >= t waits for it.
 * - The log thread advances a ring's head (release) only after the write
 *   of those bytes returned, so an owner (acquire) never overwrites bytes
 *   not yet written.
 * - A segment the log thread set out to leave (full) is closed at once,
 *   flushed if anything in it was owed a flush; nothing more is appended
 *   to it, even if no next segment can be made. After a failed write or
 *   flush the next segment's head cuts the old one at flushed_off.
 * - The log thread's stage holds the current segment's bytes
 *   [floor(off), off), its last partial 4 KiB block: every write starts
 *   at that block and covers whole blocks (stage.h), and a new segment's
 *   head is copied in only once the segment is in use.
 * - done_group is the last group settled: it and every group before it
 *   are durable or failed (settle). It only grows; results[g % RESULTS] is
 *   group g's outcome from the moment done_group reaches g until group
 *   g + RESULTS completes. A waiter that raises `want` past done_group
 *   makes the log thread flush, even if its group was already written.
 * - The log thread sleeps only after announcing it in `sleeping` and then
 *   finding nothing to do; an appender reads `sleeping` after publishing,
 *   so either the log thread sees the record or the appender wakes it.
 * - The log thread reads `stop` before the tails, and exits only if both
 *   say so: a closer publishes its last records before it sets `stop`.
 *
 * If a thread dies between reserving room and publishing, its ring holds
 * a partial record past the tail, which the next owner overwrites. A ring
 * whose owner thread no longer exists is taken over by the next thread
 * that finds none free.
 */
#define _GNU_SOURCE
#include "wal.h"
#include "ahead.h"
#include "io.h"
#include "stage.h"
#include "../shm/futex.h"
#include "../shm/region.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define RESULTS 1024
#define RINGS PX__WAL_RINGS
#define MIN_RING (2u << 20)
#define PREALLOC_STEP (4ull << 20)
#define STAGE (4u << 20) /* bytes a write carries, at most */
#define HEAD_MAX 256u    /* a SEGMENT record, at most */

/* The log thread's sleep: not at all, without a deadline (nothing to
 * write: any record wakes it) or until the async window closes (only a
 * record that must go out at once wakes it). */
enum { AWAKE = 0, IDLE = 1, TIMED = 2 };

struct ring {
    _Atomic uint64_t owner;   /* 0: free; pid << 32 | tid of the appending thread */
    _Atomic uint64_t tail;    /* bytes published, from the ring's creation */
    _Atomic uint64_t records; /* records published */
    uint8_t pad1[40];
    _Atomic uint64_t head; /* bytes written to the log */
    uint8_t pad2[56];
};

struct px__wal {
    struct px__wal_opts o;
    char *dir;
    int dirfd;
    struct px__io *io;
    /* The opening process's zeroer: started by the log thread with the
     * first segment (a process that only looks at a region starts none),
     * read by px__wal_stats; NULL if none. */
    struct px__ahead *_Atomic ahead;
    pid_t owner_pid; /* that process: a pool child never uses it */
    pthread_t thread;
    pthread_mutex_t mu; /* ring 0's appenders */
    struct ring rings[RINGS];
    uint8_t *mem;   /* rings[i]'s bytes at mem + 2 * i * cap, mapped twice */
    size_t cap;     /* bytes of each ring; set at open, then read-only */
    size_t max_rec; /* the largest frame an append may make */
    _Atomic uint64_t fill_group, done_group;
    _Atomic uint64_t want; /* the largest group a waiter waits for */
    int results[RESULTS];
    _Atomic uint32_t sleeping, kick_seq, done_seq, room_seq;
    _Atomic uint32_t done_waiters, room_waiters, urgent;
    _Atomic bool stop;
    _Atomic uint64_t groups, flushes, bytes, failed_groups, segments;
    /* Log thread only. */
    struct px__stage stage; /* the segment's last partial block, and room */
    int fd;
    uint32_t seq;
    uint64_t writer, off, allocated, cut; /* cut: where the last segment must be cut */
    uint64_t flushed_off;                 /* the segment is durable up to here */
    uint64_t group;                       /* the group being taken */
    uint64_t flushed_ns;                  /* when the last flush was */
    uint64_t due_ns;  /* the oldest unwritten record must be written by then (0: none seen) */
    uint64_t owed_ns; /* the oldest written, unflushed one must be flushed by then */
    bool dirty;       /* written since the last flush */
};

/* The ring this thread appends to, for the writer it last appended to;
 * reset in a forked child, whose thread is not the ring's owner. The model
 * is initial-exec (PX__TLS_IE): read straight off the thread pointer on
 * every append, not through __tls_get_addr; these 20 bytes and region.c's
 * 16 come from the static TLS that glibc keeps for libraries, even one
 * loaded with dlopen. */
static __thread PX__TLS_IE struct px__wal *tl_wal;
static __thread PX__TLS_IE uint32_t tl_ring;
static __thread PX__TLS_IE uint64_t tl_token;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;
static _Atomic(px__wal_gap_fn) gap_fn;

void px__wal_set_gap(px__wal_gap_fn f)
{
    atomic_store(&gap_fn, f);
}

static void forget_ring(void)
{
    tl_wal = NULL;
    tl_token = 0;
}

static void register_atfork(void)
{
    pthread_atfork(NULL, NULL, forget_ring);
}

static uint8_t *ring_base(const struct px__wal *w, uint32_t i)
{
    return w->mem + 2 * (size_t)i * w->cap;
}

/* Where byte pos of a ring is: cap is a power of two, so that this is a
 * mask and not a division (two a record, on the path of every submit). */
static size_t ring_off(const struct px__wal *w, uint64_t pos)
{
    return (size_t)(pos & (w->cap - 1));
}

/* Memory shared with the pool children this process forks later: the
 * writer and its rings, so that a child appends to its parent's log
 * without a thread or an allocation of its own (see wal.h). */
static void *shared_alloc(size_t size)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

/* Maps each ring's bytes twice in a row, so that a record that runs past
 * the end of a ring is still one contiguous range: no record, and no
 * group's part of a ring, is ever split. */
static int rings_map(struct px__wal *w)
{
    size_t total = 2 * (size_t)RINGS * w->cap;
    int fd = memfd_create("pollux-wal", MFD_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = 0;
    void *base = MAP_FAILED;
    if (ftruncate(fd, (off_t)(RINGS * w->cap)) != 0 ||
        (base = mmap(NULL, total, PROT_NONE, MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)) ==
            MAP_FAILED)
        rc = -errno;
    for (uint32_t i = 0; rc == 0 && i < 2 * RINGS; i++) {
        void *at = (uint8_t *)base + (size_t)i * w->cap;
        if (mmap(at, w->cap, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd,
                 (off_t)((i / 2) * w->cap)) == MAP_FAILED)
            rc = -errno;
    }
    close(fd);
    if (rc && base != MAP_FAILED)
        munmap(base, total);
    if (rc == 0)
        w->mem = base;
    return rc;
}

/* Locks ring 0. A holder that died (a child killed while appending) left
 * the ring valid: its bytes past the tail are simply not used. */
static void wal_lock(struct px__wal *w)
{
    if (pthread_mutex_lock(&w->mu) == EOWNERDEAD)
        pthread_mutex_consistent(&w->mu);
}

/* Wakes the log thread if it sleeps, or (force false) only if it sleeps
 * with nothing to write. */
static void kick(struct px__wal *w, bool force)
{
    uint32_t s = atomic_load(&w->sleeping);
    if (s == AWAKE || (s == TIMED && !force))
        return;
    if (atomic_compare_exchange_strong(&w->sleeping, &s, AWAKE)) {
        atomic_fetch_add(&w->kick_seq, 1);
        px__futex_wake(&w->kick_seq, 1);
    }
}

/* ---- Segments (log thread) ------------------------------------------------ */

static int segment_header(struct px__wal *w, uint8_t *dst, size_t cap, size_t *size)
{
    struct px__rec_segment s = w->o.params;
    s.writer = w->writer;
    s.seq = w->seq;
    s.pid = (int32_t)getpid();
    s.cut_prev = w->cut;
    s.format = PX__LOG_FORMAT;
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

/* Makes segment w->seq, the writer having left the one before (w->fd is
 * -1). Its first block is written from a buffer of its own and copied into
 * the stage once the segment is in use. */
static int segment_try(struct px__wal *w)
{
    _Alignas(PX__STAGE_BLOCK) uint8_t head[PX__STAGE_BLOCK] = {0};
    size_t hsize;
    int rc = segment_header(w, head, HEAD_MAX, &hsize);
    if (rc)
        return rc;
    char name[64];
    snprintf(name, sizeof name, "%016" PRIx64 "-%06u.wal", w->writer, w->seq);
    int fd = openat(w->dirfd, name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    px__stage_direct(fd);
    uint64_t want = w->o.segment_bytes < PREALLOC_STEP ? w->o.segment_bytes : PREALLOC_STEP;
    struct iovec v = {head, sizeof head};
    if ((rc = w->io->ops->prealloc(w->io, fd, 0, want)) != 0 ||
        (rc = w->io->ops->write(w->io, fd, &v, 1, 0, true)) != 0 || (rc = sync_dir(w)) != 0) {
        close(fd);
        unlinkat(w->dirfd, name, 0);
        return rc;
    }
    w->fd = fd;
    w->off = w->flushed_off = hsize;
    memcpy(w->stage.buf, head, hsize);
    w->allocated = want;
    w->cut = UINT64_MAX;
    atomic_fetch_add(&w->segments, 1);
    struct px__ahead *a = atomic_load_explicit(&w->ahead, memory_order_relaxed);
    if (w->o.ahead && !a && px__ahead_start(&a) == 0)
        atomic_store_explicit(&w->ahead, a, memory_order_release);
    if (a) /* without one, the log works as before: fallocated space */
        px__ahead_segment(a, w->dirfd, name, px__stage_ceil(hsize), w->o.segment_bytes);
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

/* Closes the current segment for good: nothing is appended to a segment
 * once its writer set out to leave it, so that a checkpoint that finds it
 * left may delete it even if no next segment could be made. */
static void leave(struct px__wal *w)
{
    if (w->io->ops->forget)
        w->io->ops->forget(w->io, w->fd);
    close(w->fd);
    w->fd = -1;
}

/* Abandons the current segment after a failed write or flush, and starts
 * the next, whose first record tells recovery to cut the old one where it
 * was last flushed: what was written after that was reported failed
 * (settle), and must not come back. */
static void abandon(struct px__wal *w, const char *what, int rc)
{
    fprintf(stderr, "pollux: log %s/%016" PRIx64 "-%06u.wal: %s at %" PRIu64 " failed: %s\n",
            w->dir, w->writer, w->seq, what, w->off, strerror(-rc));
    w->cut = w->flushed_off;
    /* The cut reaches the disk with the next segment's head; should none
     * be made before a crash, the file itself ends there (best effort: the
     * disk may be failing). */
    if (ftruncate(w->fd, (off_t)w->flushed_off) == 0)
        fdatasync(w->fd);
    leave(w);
    /* If this fails, the next group tries again; w->cut still says where. */
    segment_open(w);
}

/* Flushes the segment being left for the next one: its groups written
 * since the last flush are owed one, and no later flush of another file
 * covers them. They are durable now: settled, whatever becomes of the
 * group being taken. */
static int flush_before_leaving(struct px__wal *w)
{
    static const struct iovec none;
    int rc = w->io->ops->write(w->io, w->fd, &none, 0, w->off, true);
    if (rc) {
        abandon(w, "flush", rc);
        return rc;
    }
    w->dirty = false;
    w->flushed_off = w->off;
    if (w->group - 1 > atomic_load_explicit(&w->done_group, memory_order_relaxed))
        atomic_store_explicit(&w->done_group, w->group - 1, memory_order_release);
    return 0;
}

/* Writes one group and, if flush, makes the segment durable. On failure
 * the segment is abandoned (abandon) and a new one started at once. */
static int write_group(struct px__wal *w, const struct iovec *v, int n, size_t len, bool flush)
{
    int rc = 0;
    bool full = w->fd >= 0 && w->off + len > w->o.segment_bytes;
    if (full && w->dirty && (rc = flush_before_leaving(w)) != 0)
        return rc;
    if (full)
        leave(w);
    if (w->fd < 0)
        if ((rc = segment_open(w)) != 0) {
            fprintf(stderr, "pollux: cannot start a log segment in %s: %s\n", w->dir,
                    strerror(-rc));
            return rc;
        }
    /* The write covers whole blocks, from the one holding the end. */
    uint64_t from = px__stage_floor(w->off), to = px__stage_ceil(w->off + len);
    if (to > w->allocated) {
        uint64_t end = to + PREALLOC_STEP;
        if (w->io->ops->prealloc(w->io, w->fd, w->allocated, end - w->allocated) == 0)
            w->allocated = end;
    }
    struct px__ahead *a = atomic_load_explicit(&w->ahead, memory_order_relaxed);
    if (a && len)
        px__ahead_claim(a, from, to - from);
    rc = px__stage_write(&w->stage, w->io, w->fd, w->off, v, n, flush);
    if (rc == 0) {
        w->off += len;
        if (flush)
            w->flushed_off = w->off;
        atomic_fetch_add(w->o.bytes, len);
        return 0;
    }
    abandon(w, "write", rc);
    return rc;
}

/* ---- The log thread --------------------------------------------------- */

static bool pending(struct px__wal *w)
{
    for (uint32_t i = 0; i < RINGS; i++)
        if (atomic_load(&w->rings[i].tail) !=
            atomic_load_explicit(&w->rings[i].head, memory_order_relaxed))
            return true;
    return false;
}

/* True if a waiter waits for a group not yet done. */
static bool wanted(struct px__wal *w)
{
    return atomic_load(&w->want) > atomic_load_explicit(&w->done_group, memory_order_relaxed);
}

/* True when a group should be written at once, without waiting for the
 * async window to close: a waiter, a ring half full, closing. Sync mode
 * adds nothing here: its submits wait, and a record nobody waits for (a
 * START or FINISH) goes with the next waited group or within async_ms,
 * as in async mode, instead of costing a flush of its own that the next
 * submit would have to wait behind. */
static bool due_now(struct px__wal *w)
{
    return atomic_load(&w->stop) || wanted(w) || atomic_load(&w->room_waiters) ||
           atomic_load(&w->urgent);
}

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t window_ns(const struct px__wal *w)
{
    return (uint64_t)(w->o.async_ms ? w->o.async_ms : 1) * 1000000ull;
}

/* Waits until there is a group to take (true), or the writer stops with
 * nothing left (false). A sync waiter takes a group even when there is
 * nothing to write: its group's completion is what it waits for. In async
 * mode a record is written within async_ms of the log thread first seeing
 * it, and flushed by then too (see take_group), so the log thread also
 * wakes when a flush is owed. */
static bool await_group(struct px__wal *w)
{
    for (;;) {
        /* stop first: a closer appended its last records before it set
         * stop, so once stop reads true the tails read after it hold them.
         * Read the other way round, a record appended between the two
         * reads was never written. */
        bool stop = atomic_load(&w->stop);
        px__wal_gap_fn gap = atomic_load_explicit(&gap_fn, memory_order_relaxed);
        if (gap)
            gap(w);
        bool have = pending(w);
        if (!have && !w->dirty && stop)
            return false;
        if ((have && due_now(w)) || wanted(w) || (stop && w->dirty))
            return true;
        uint64_t now = mono_ns(), until = 0;
        if (have && w->due_ns == 0)
            w->due_ns = now + window_ns(w);
        if (have)
            until = w->due_ns;
        if (w->dirty && (!until || w->owed_ns < until))
            until = w->owed_ns;
        if (until && now >= until)
            return true;
        uint32_t seen = atomic_load(&w->kick_seq);
        atomic_store(&w->sleeping, until ? TIMED : IDLE);
        /* Looked at again after announcing the sleep: see the invariants. */
        bool again =
            pending(w) != have || atomic_load(&w->stop) || (have && due_now(w)) || wanted(w);
        if (!again)
            px__futex_wait(&w->kick_seq, seen, until ? (int64_t)(until - now) : -1);
        atomic_store(&w->sleeping, AWAKE);
    }
}

/* True if a group taken now must be flushed: for a waiter and when
 * closing, always. Otherwise a group taken early, because a ring is half
 * full, is only written: the window bounds what a power loss can take,
 * and a flush per half ring would cost more than the write. Its records
 * are then owed a flush by the time they were due (group_due). */
static bool flush_due(struct px__wal *w, uint64_t now, uint64_t group_due)
{
    if (wanted(w) || atomic_load(&w->stop) || now >= group_due)
        return true;
    return (w->dirty && now >= w->owed_ns) || now - w->flushed_ns >= window_ns(w);
}

/* Group g was written (rc 0) or failed. It is settled, with every group
 * before it, once nothing written is owed a flush: they are durable. A
 * failure settles them too, as failed: the segment holding the unflushed
 * ones was abandoned. A group only written waits for a later flush, so
 * that no waiter takes a write for a flush. */
static void settle(struct px__wal *w, uint64_t g, int rc)
{
    w->results[g % RESULTS] = rc;
    if (rc == 0 && w->dirty)
        return;
    uint64_t from = atomic_load_explicit(&w->done_group, memory_order_relaxed);
    if (g - from > RESULTS)
        from = g - RESULTS;
    for (uint64_t x = from + 1; rc && x < g; x++)
        w->results[x % RESULTS] = rc;
    atomic_store_explicit(&w->done_group, g, memory_order_release);
}

/* Writes every ring's published records as group g. */
static void take_group(struct px__wal *w, uint64_t g)
{
    struct iovec v[RINGS];
    uint64_t tails[RINGS];
    int n = 0;
    size_t len = 0;
    for (uint32_t i = 0; i < RINGS; i++) {
        struct ring *r = &w->rings[i];
        uint64_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
        tails[i] = atomic_load(&r->tail);
        if (tails[i] == head)
            continue;
        v[n].iov_base = ring_base(w, i) + ring_off(w, head);
        v[n].iov_len = tails[i] - head;
        len += v[n++].iov_len;
    }
    atomic_store(&w->urgent, 0);
    uint64_t now = mono_ns(), group_due = w->due_ns ? w->due_ns : now + window_ns(w);
    w->due_ns = 0;
    w->group = g;
    /* A group may have nothing new but earlier groups' writes to flush. */
    bool flush = (n || w->dirty) && flush_due(w, now, group_due);
    int rc = n || flush ? write_group(w, v, n, len, flush) : 0;
    if (rc == 0 && flush) {
        w->flushed_ns = mono_ns();
        w->dirty = false;
    } else if (rc == 0 && n) {
        w->owed_ns = w->dirty && w->owed_ns < group_due ? w->owed_ns : group_due;
        w->dirty = true;
    } else if (rc) {
        /* A failed group abandons its segment, and with it what was not
         * flushed: recovery stops at the first record the disk lost. */
        w->dirty = false;
    }
    for (uint32_t i = 0; i < RINGS; i++)
        atomic_store_explicit(&w->rings[i].head, tails[i], memory_order_release);
    settle(w, g, rc);
    if (n) {
        atomic_fetch_add(&w->groups, 1);
        atomic_fetch_add(&w->flushes, flush);
        atomic_fetch_add(&w->bytes, len);
    }
    if (rc)
        atomic_fetch_add(&w->failed_groups, 1);
    atomic_fetch_add(&w->done_seq, 1);
    if (atomic_load(&w->done_waiters))
        px__futex_wake(&w->done_seq, INT32_MAX);
    atomic_fetch_add(&w->room_seq, 1);
    if (atomic_load(&w->room_waiters))
        px__futex_wake(&w->room_seq, INT32_MAX);
}

static void *log_main(void *p)
{
    struct px__wal *w = p;
    while (await_group(w))
        take_group(w, atomic_fetch_add(&w->fill_group, 1));
    return NULL;
}

/* ---- Appending and waiting ---------------------------------------------- */

/* True if the thread whose token this is has exited. */
static bool owner_gone(uint64_t token)
{
    pid_t pid = (pid_t)(token >> 32), tid = (pid_t)(token & 0xffffffffu);
    return syscall(SYS_tgkill, pid, tid, 0) != 0 && errno == ESRCH;
}

/* Finds this thread's ring of w, or takes a free one, or one whose owner
 * has exited; 0 (the shared ring) if there is none. */
static uint32_t claim_ring(struct px__wal *w)
{
    if (tl_token == 0)
        tl_token = (uint64_t)getpid() << 32 | (uint32_t)gettid();
    for (uint32_t i = 1; i < RINGS; i++)
        if (atomic_load(&w->rings[i].owner) == tl_token)
            return i;
    for (int pass = 0; pass < 2; pass++)
        for (uint32_t i = 1; i < RINGS; i++) {
            uint64_t o = atomic_load(&w->rings[i].owner);
            if ((o == 0 || (pass == 1 && owner_gone(o))) &&
                atomic_compare_exchange_strong(&w->rings[i].owner, &o, tl_token))
                return i;
        }
    return 0;
}

/* The ring this thread appends to; ring 0 is returned locked. */
static uint32_t my_ring(struct px__wal *w)
{
    if (tl_wal != w ||
        atomic_load_explicit(&w->rings[tl_ring].owner, memory_order_relaxed) != tl_token ||
        tl_token == 0) {
        tl_ring = claim_ring(w);
        tl_wal = w;
    }
    if (tl_ring == 0)
        wal_lock(w);
    return tl_ring;
}

/* Waits until ring r has need bytes free past its tail. */
static void wait_room(struct px__wal *w, struct ring *r, size_t need)
{
    uint64_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
    while (tail + need - atomic_load_explicit(&r->head, memory_order_acquire) > w->cap) {
        uint32_t seen = atomic_load(&w->room_seq);
        atomic_fetch_add(&w->room_waiters, 1);
        kick(w, true);
        if (tail + need - atomic_load(&r->head) > w->cap)
            px__futex_wait(&w->room_seq, seen, -1);
        atomic_fetch_sub(&w->room_waiters, 1);
    }
}

uint8_t *px__wal_begin(struct px__wal *w, uint32_t max)
{
    if (max > PX__REC_MAX_BODY)
        return NULL; /* a frame the reader would refuse */
    size_t need = px__rec_size(max);
    if (need > w->max_rec)
        return NULL; /* larger than the writer was made for */
    uint32_t i = my_ring(w);
    struct ring *r = &w->rings[i];
    wait_room(w, r, need);
    return ring_base(w, i) + ring_off(w, atomic_load_explicit(&r->tail, memory_order_relaxed)) +
           PX__REC_HDR;
}

uint64_t px__wal_end(struct px__wal *w, uint16_t type, uint32_t len)
{
    uint32_t i = tl_ring;
    struct ring *r = &w->rings[i];
    uint64_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
    uint64_t lsn = atomic_fetch_add(w->o.lsn, 1) + 1;
    tail += px__rec_seal(ring_base(w, i) + ring_off(w, tail), type, lsn, len);
    atomic_store_explicit(&r->records, atomic_load_explicit(&r->records, memory_order_relaxed) + 1,
                          memory_order_relaxed);
    atomic_store(&r->tail, tail);
    uint64_t ticket = atomic_load(&w->fill_group);
    bool half = tail - atomic_load_explicit(&r->head, memory_order_relaxed) > w->cap / 2;
    if (half && !atomic_load_explicit(&w->urgent, memory_order_relaxed))
        atomic_store(&w->urgent, 1);
    kick(w, half);
    if (i == 0)
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
    uint64_t want = atomic_load(&w->want);
    while (want < ticket && !atomic_compare_exchange_weak(&w->want, &want, ticket))
        ;
    kick(w, true);
    while (atomic_load_explicit(&w->done_group, memory_order_acquire) < ticket) {
        uint32_t seen = atomic_load(&w->done_seq);
        atomic_fetch_add(&w->done_waiters, 1);
        if (atomic_load(&w->done_group) < ticket)
            px__futex_wait(&w->done_seq, seen, -1);
        atomic_fetch_sub(&w->done_waiters, 1);
    }
    /* A waiter that slept through RESULTS groups cannot tell how its own
     * went; it reports a failure rather than claim success. */
    uint64_t done = atomic_load_explicit(&w->done_group, memory_order_acquire);
    return done - ticket < RESULTS ? w->results[ticket % RESULTS] : -EIO;
}

int px__wal_flush(struct px__wal *w)
{
    return px__wal_wait(w, atomic_load(&w->fill_group));
}

void px__wal_stats(struct px__wal *w, struct px__wal_stats *s)
{
    memset(s, 0, sizeof *s);
    for (uint32_t i = 0; i < RINGS; i++)
        s->records += atomic_load_explicit(&w->rings[i].records, memory_order_relaxed);
    s->shared_records = atomic_load_explicit(&w->rings[0].records, memory_order_relaxed);
    for (uint32_t i = 0; i < RINGS; i++)
        s->unwritten += atomic_load(&w->rings[i].tail) - atomic_load(&w->rings[i].head);
    s->ring_bytes = w->cap;
    s->groups = atomic_load(&w->groups);
    s->flushes = atomic_load(&w->flushes);
    s->bytes = atomic_load(&w->bytes);
    s->failed_groups = atomic_load(&w->failed_groups);
    s->segments = atomic_load(&w->segments);
    struct px__ahead *ahead = atomic_load_explicit(&w->ahead, memory_order_acquire);
    if (ahead && getpid() == w->owner_pid) {
        struct px__ahead_stats a;
        px__ahead_stats(ahead, &a);
        s->zeroed = a.zeroed;
        s->ready = a.ready;
        s->zero_waits = a.waited;
    }
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
    if (getpid() == w->owner_pid)
        px__ahead_stop(atomic_load(&w->ahead));
    if (w->io)
        w->io->ops->destroy(w->io);
    if (w->fd >= 0)
        close(w->fd);
    if (w->dirfd >= 0)
        close(w->dirfd);
    /* No pthread_mutex_destroy: a pool child killed while it held ring 0
     * leaves it owned. The memory goes with the mapping. */
    if (w->mem)
        munmap(w->mem, 2 * (size_t)RINGS * w->cap);
    px__stage_free(&w->stage);
    free(w->dir);
    if (tl_wal == w)
        forget_ring();
    munmap(w, sizeof *w);
}

int px__wal_open(const struct px__wal_opts *o, struct px__wal **out)
{
    if (!o || !o->dir || !o->lsn || !o->bytes || !o->pub_writer || !o->pub_seq ||
        o->segment_bytes < 4096)
        return -EINVAL;
    pthread_once(&atfork_once, register_atfork);
    struct px__wal *w = shared_alloc(sizeof *w); /* zeroed */
    if (!w)
        return -ENOMEM;
    w->o = *o;
    w->owner_pid = getpid();
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
    /* A ring holds two of the largest record, so that one can be appended
     * while the other is written. */
    size_t rec = px__rec_size(o->max_record);
    w->cap = MIN_RING; /* a power of two, and of the page size */
    while (w->cap < 2 * rec)
        w->cap *= 2;
    w->max_rec = w->cap / 2;
    int rc = -ENOMEM;
    if (!(w->dir = strdup(o->dir)) || (rc = rings_map(w)) != 0 ||
        (rc = px__stage_init(&w->stage, STAGE)) != 0)
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
    atomic_store(&w->stop, true);
    kick(w, true);
    pthread_join(w->thread, NULL);
    wal_free(w);
}

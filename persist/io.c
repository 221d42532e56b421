/*
 * The log's two I/O backends: io_uring, and pwritev + fdatasync.
 */
#define _GNU_SOURCE
#include "io.h"

#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_IOV 64

/* Drops the first n bytes of iov[0, *cnt), in place. */
static void iov_advance(struct iovec *iov, int *cnt, size_t n)
{
    int i = 0;
    while (i < *cnt && n >= iov[i].iov_len)
        n -= iov[i++].iov_len;
    memmove(iov, iov + i, (size_t)(*cnt - i) * sizeof *iov);
    *cnt -= i;
    if (*cnt > 0) {
        iov[0].iov_base = (char *)iov[0].iov_base + n;
        iov[0].iov_len -= n;
    }
}

static size_t iov_total(const struct iovec *iov, int cnt)
{
    size_t t = 0;
    for (int i = 0; i < cnt; i++)
        t += iov[i].iov_len;
    return t;
}

static int copy_iov(struct iovec *dst, const struct iovec *iov, int cnt)
{
    if (cnt < 0 || cnt > MAX_IOV)
        return -EINVAL;
    memcpy(dst, iov, (size_t)cnt * sizeof *iov);
    return 0;
}

static int prealloc(struct px__io *io, int fd, uint64_t off, uint64_t len)
{
    (void)io;
    if (fallocate(fd, 0, (off_t)off, (off_t)len) == 0)
        return 0;
    /* A file system without fallocate still works, with more metadata
     * updates; a full one does not. */
    return errno == EOPNOTSUPP ? 0 : -errno;
}

/* ---- pwritev + fdatasync ------------------------------------------------ */

static int posix_write(struct px__io *io, int fd, const struct iovec *iov, int iovcnt, uint64_t off,
                       bool sync)
{
    (void)io;
    struct iovec v[MAX_IOV];
    int cnt = iovcnt, rc = copy_iov(v, iov, iovcnt);
    if (rc)
        return rc;
    while (cnt > 0) {
        ssize_t n = pwritev(fd, v, cnt, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            return -EIO;
        off += (uint64_t)n;
        iov_advance(v, &cnt, (size_t)n);
    }
    if (sync && fdatasync(fd) != 0)
        return -errno;
    return 0;
}

static void posix_destroy(struct px__io *io)
{
    free(io);
}

static const struct px__io_ops posix_ops = {posix_write, prealloc, posix_destroy};

int px__io_posix_new(struct px__io **out)
{
    struct px__io *io = calloc(1, sizeof *io);
    if (!io)
        return -ENOMEM;
    io->ops = &posix_ops;
    io->name = "pwritev";
    *out = io;
    return 0;
}

/* ---- io_uring ----------------------------------------------------------- */

enum { NONE = -1, SEVERAL = -2 };

struct uring_io {
    struct px__io io;
    struct io_uring ring;
    int unflushed; /* the file written since its last flush: NONE, an fd, or SEVERAL */
    bool no_dsync; /* the kernel refused RWF_DSYNC once */
};

/* One round: a write of v, made durable if sync. Returns bytes written
 * (>= 0) with *synced set if they are durable, or -errno.
 *
 * A write that must be durable and follows no unflushed write goes out
 * alone with RWF_DSYNC: the kernel flushes when it completes, with no
 * second request (a linked fdatasync is handed to a kernel worker thread,
 * a context switch per group). RWF_DSYNC makes durable only the write
 * itself where the device has FUA, so any earlier unflushed write takes the
 * linked fdatasync, which covers the whole file. */
static ssize_t uring_round(struct uring_io *u, int fd, const struct iovec *v, int cnt, uint64_t off,
                           bool sync, bool *synced)
{
    struct io_uring_sqe *w = io_uring_get_sqe(&u->ring);
    io_uring_prep_writev(w, fd, v, (unsigned)cnt, off);
    w->user_data = 1;
    unsigned want = 1;
    bool dsync = sync && cnt > 0 && u->unflushed == NONE && !u->no_dsync;
    if (dsync) {
        w->rw_flags = RWF_DSYNC;
    } else if (sync) {
        w->flags |= IOSQE_IO_LINK;
        struct io_uring_sqe *f = io_uring_get_sqe(&u->ring);
        io_uring_prep_fsync(f, fd, IORING_FSYNC_DATASYNC);
        f->user_data = 2;
        want = 2;
    }
    int rc = io_uring_submit_and_wait(&u->ring, want);
    if (rc < 0)
        return rc;
    ssize_t wrote = -EIO;
    int flushed = -ECANCELED;
    for (unsigned i = 0; i < want; i++) {
        struct io_uring_cqe *cqe;
        while ((rc = io_uring_wait_cqe(&u->ring, &cqe)) == -EINTR)
            ;
        if (rc < 0)
            return rc;
        if (cqe->user_data == 1)
            wrote = cqe->res;
        else
            flushed = cqe->res;
        io_uring_cqe_seen(&u->ring, cqe);
    }
    if (dsync && (wrote == -EOPNOTSUPP || wrote == -EINVAL)) {
        u->no_dsync = true; /* nothing was written: again, linked */
        return -EAGAIN;
    }
    *synced = dsync ? wrote >= 0 : sync && flushed == 0;
    if (*synced && u->unflushed == fd)
        u->unflushed = NONE;
    else if (!*synced && wrote > 0)
        u->unflushed = u->unflushed == NONE || u->unflushed == fd ? fd : SEVERAL;
    if (wrote >= 0 && sync && !dsync && flushed != 0 && flushed != -ECANCELED)
        return flushed; /* the flush itself failed */
    return wrote;
}

static int uring_write(struct px__io *io, int fd, const struct iovec *iov, int iovcnt, uint64_t off,
                       bool sync)
{
    struct uring_io *u = (struct uring_io *)io;
    struct iovec v[MAX_IOV];
    int cnt = iovcnt, rc = copy_iov(v, iov, iovcnt);
    if (rc)
        return rc;
    size_t left = iov_total(v, cnt);
    bool synced = false;
    while (left > 0 || (sync && !synced)) {
        ssize_t n = uring_round(u, fd, v, cnt, off, sync, &synced);
        if (n == -EINTR || n == -EAGAIN)
            continue;
        if (n < 0)
            return (int)n;
        if (n == 0 && left > 0)
            return -EIO;
        /* A short write cancels the linked flush: go on from where it
         * stopped; the last round's flush covers everything. */
        off += (uint64_t)n;
        left -= (size_t)n;
        iov_advance(v, &cnt, (size_t)n);
    }
    return 0;
}

static void uring_forget(struct px__io *io, int fd)
{
    struct uring_io *u = (struct uring_io *)io;
    if (u->unflushed == fd)
        u->unflushed = NONE;
}

static void uring_destroy(struct px__io *io)
{
    struct uring_io *u = (struct uring_io *)io;
    io_uring_queue_exit(&u->ring);
    free(u);
}

static const struct px__io_ops uring_ops = {uring_write, prealloc, uring_destroy, uring_forget};

int px__io_uring_new(struct px__io **out)
{
    struct uring_io *u = calloc(1, sizeof *u);
    if (!u)
        return -ENOMEM;
    int rc = io_uring_queue_init(8, &u->ring, 0);
    if (rc < 0) {
        free(u);
        return rc;
    }
    u->unflushed = NONE;
    u->io.ops = &uring_ops;
    u->io.name = "io_uring";
    *out = &u->io;
    return 0;
}

int px__io_default(struct px__io **out)
{
    static atomic_flag said = ATOMIC_FLAG_INIT;
    int rc = px__io_uring_new(out);
    if (rc == -ENOSYS || rc == -EPERM) {
        if (!atomic_flag_test_and_set(&said))
            fprintf(stderr, "pollux: io_uring is not available (%s); the log uses pwritev\n",
                    strerror(-rc));
        return px__io_posix_new(out);
    }
    return rc;
}

static _Atomic(px__io_factory) factory;

void px__io_set_factory(px__io_factory f)
{
    atomic_store(&factory, f);
}

int px__io_new(struct px__io **out)
{
    px__io_factory f = atomic_load(&factory);
    return f ? f(out) : px__io_default(out);
}

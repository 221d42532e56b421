/*
 * The log's file I/O, behind a table of functions.
 *
 * The writer calls only these, so that tests can put a layer in between
 * that fails the Nth write or flush, or that simulates a crash by keeping,
 * dropping or garbling what was written since the last flush. Two backends:
 * io_uring (the default) and pwritev + fdatasync, used when io_uring cannot
 * be set up (ENOSYS, or EPERM in some containers).
 *
 * An io is used by one thread at a time (a process's log thread). Every
 * call returns 0 or a negative errno.
 */
#ifndef PX_PERSIST_IO_H
#define PX_PERSIST_IO_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

struct px__io;

struct px__io_ops {
    /* Writes all of iov at off and, if sync, then makes the file's data
     * durable: io_uring writes with RWF_DSYNC when no earlier write is
     * unflushed, else links the write to an fdatasync (io_uring does not
     * order the two by itself). A short write is continued; an error is
     * returned as is, never retried. */
    int (*write)(struct px__io *io, int fd, const struct iovec *iov, int iovcnt, uint64_t off,
                 bool sync);
    /* Allocates [off, off + len) of the file, zero-filled, so that later
     * writes there change neither its size nor its block map (fallocate). */
    int (*prealloc)(struct px__io *io, int fd, uint64_t off, uint64_t len);
    void (*destroy)(struct px__io *io);
    /* The caller is about to close fd and write it no more (may be NULL):
     * what is unflushed there is no longer the io's concern. */
    void (*forget)(struct px__io *io, int fd);
};

struct px__io {
    const struct px__io_ops *ops;
    const char *name; /* "io_uring", "pwritev" or a test layer's */
};

int px__io_uring_new(struct px__io **out);
int px__io_posix_new(struct px__io **out);

/* io_uring if it can be set up, else pwritev, saying so once on stderr. */
int px__io_default(struct px__io **out);

/* The hook tests use to put their layer under every log opened after it;
 * NULL restores the default. The factory is called once per log. */
typedef int (*px__io_factory)(struct px__io **out);
void px__io_set_factory(px__io_factory f);
int px__io_new(struct px__io **out);

#endif

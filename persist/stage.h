/*
 * Block-aligned writes of a log segment, for direct I/O.
 *
 * A segment is opened with O_DIRECT where the file system allows it: the
 * records then go from this buffer to the disk, without the kernel's copy
 * into the page cache and the write-back of it later (docs/architecture.md
 * has what each costs on a test machine). Direct I/O wants the buffer, the
 * offset and the length aligned to the device's block; a group of records
 * is neither, so the writer copies each group into this buffer behind the
 * segment's last partial block and writes whole blocks, zero-filled past
 * the last record (zeros end a segment for a reader, as preallocated space
 * does). The next group writes that partial block again, with the same
 * bytes first: a write torn at any sector leaves the records already there
 * as they were, as the page cache's write-back of a partial page does.
 *
 * Used by one thread at a time (the log thread).
 */
#ifndef PX_PERSIST_STAGE_H
#define PX_PERSIST_STAGE_H

#include "io.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The alignment of every write: a page, which covers the logical block
 * of any device direct I/O runs on. */
#define PX__STAGE_BLOCK 4096u

struct px__stage {
    uint8_t *buf; /* PX__STAGE_BLOCK aligned; cap bytes */
    size_t cap;   /* bytes a single write carries, at most */
};

int px__stage_init(struct px__stage *s, size_t cap);
void px__stage_free(struct px__stage *s);

static inline uint64_t px__stage_floor(uint64_t off)
{
    return off & ~(uint64_t)(PX__STAGE_BLOCK - 1);
}

static inline uint64_t px__stage_ceil(uint64_t off)
{
    return px__stage_floor(off + PX__STAGE_BLOCK - 1);
}

/* Asks for direct I/O on fd where the file system has it with an
 * alignment of at most PX__STAGE_BLOCK; elsewhere fd stays buffered, and
 * the aligned writes work the same. */
void px__stage_direct(int fd);

/* Appends iov[0, n) to fd, whose records end at off, through io: writes
 * from the block holding off, in pieces of at most cap bytes, the last
 * one flushed if flush. The buffer must hold the file's bytes
 * [floor(off), off), as the previous call for this file left them (none
 * for a new file, whose first call is at 0). 0 or the io's error, after
 * which the caller abandons the file. */
int px__stage_write(struct px__stage *s, struct px__io *io, int fd, uint64_t off,
                    const struct iovec *iov, int n, bool flush);

#endif

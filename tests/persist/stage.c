/*
 * Block-aligned log writes (persist/stage.c): every write is whole blocks
 * from an aligned buffer, the file reads back as exactly the bytes
 * appended followed by zeros, a group larger than the buffer goes out in
 * pieces of which only the last is flushed, and a real file opened for
 * direct I/O holds the same bytes.
 */
#define _GNU_SOURCE
#include "common.h"
#include "rng.h"
#include "persist/stage.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>

#define FILE_MAX (4u << 20)

/* An io that applies writes to a memory file and checks their shape. */
static struct mem_io {
    struct px__io io;
    uint8_t file[FILE_MAX];
    size_t writes, flushes, cap;
    bool last_flushed;
} mem;

static int mem_write(struct px__io *io, int fd, const struct iovec *iov, int n, uint64_t off,
                     bool sync)
{
    (void)io;
    (void)fd;
    for (int i = 0; i < n; i++) {
        cr_assert_eq((uintptr_t)iov[i].iov_base % PX__STAGE_BLOCK, 0, "buffer aligned");
        cr_assert_eq(iov[i].iov_len % PX__STAGE_BLOCK, 0, "whole blocks");
        cr_assert_eq(off % PX__STAGE_BLOCK, 0, "offset aligned");
        cr_assert_leq(iov[i].iov_len, mem.cap, "no piece larger than the stage");
        cr_assert_leq(off + iov[i].iov_len, FILE_MAX);
        memcpy(mem.file + off, iov[i].iov_base, iov[i].iov_len);
        off += iov[i].iov_len;
    }
    mem.writes++;
    mem.flushes += sync;
    mem.last_flushed = sync;
    return 0;
}

static int mem_prealloc(struct px__io *io, int fd, uint64_t off, uint64_t len)
{
    (void)io, (void)fd, (void)off, (void)len;
    return 0;
}

static void mem_destroy(struct px__io *io)
{
    (void)io;
}

static const struct px__io_ops mem_ops = {mem_write, mem_prealloc, mem_destroy};

/* Appends `groups` groups of up to `most` bytes in up to 5 parts each
 * through a stage of `cap` bytes; returns the bytes appended, in want. */
static size_t append_random(struct px__stage *s, struct px__io *io, int fd, uint8_t *want,
                            int groups, size_t most)
{
    size_t end = 0;
    for (int g = 0; g < groups; g++) {
        struct iovec v[5];
        int n = 1 + (int)below(5);
        size_t before = mem.writes;
        for (int i = 0; i < n; i++) {
            size_t len = below(most / (size_t)n + 1);
            uint8_t *p = want + end;
            for (size_t k = 0; k < len; k++)
                p[k] = (uint8_t)(1 + below(255)); /* never zero: a hole would show */
            v[i] = (struct iovec){p, len};
            end += len;
        }
        size_t len = 0;
        for (int i = 0; i < n; i++)
            len += v[i].iov_len;
        uint64_t off = end - len;
        bool flush = below(2);
        cr_assert_eq(px__stage_write(s, io, fd, off, v, n, flush), 0);
        if (len && io == &mem.io) {
            size_t span = (size_t)(px__stage_ceil(end) - px__stage_floor(off));
            size_t pieces = mem.writes - before;
            cr_assert_leq(pieces, 1 + span / (s->cap - PX__STAGE_BLOCK + 1) + 1,
                          "%zu pieces for %zu bytes: no more than it takes", pieces, span);
            cr_assert_eq(mem.last_flushed, flush, "only the last piece carries the flush");
        }
    }
    return end;
}

Test(stage, groups_land_as_whole_blocks_and_read_back_exactly)
{
    rng_state = px_test_seed();
    for (int round = 0; round < 50; round++) {
        size_t cap = PX__STAGE_BLOCK * (1 + below(4));
        struct px__stage s;
        cr_assert_eq(px__stage_init(&s, cap), 0);
        memset(&mem, 0xee, sizeof mem); /* garbage the writes must cover */
        mem.io.ops = &mem_ops;
        mem.writes = mem.flushes = 0;
        mem.cap = s.cap;
        static uint8_t want[FILE_MAX];
        size_t end = append_random(&s, &mem.io, -1, want, 40, 3 * cap);
        cr_assert_arr_eq(mem.file, want, end, "round %d: the bytes appended, in order", round);
        for (size_t i = end; i < px__stage_ceil(end); i++)
            cr_assert_eq(mem.file[i], 0, "round %d: zeros after the end (byte %zu)", round, i);
        px__stage_free(&s);
    }
}

Test(stage, a_flush_with_nothing_new_writes_nothing)
{
    struct px__stage s;
    cr_assert_eq(px__stage_init(&s, PX__STAGE_BLOCK), 0);
    mem.io.ops = &mem_ops;
    mem.cap = s.cap;
    mem.writes = mem.flushes = 0;
    cr_assert_eq(px__stage_write(&s, &mem.io, -1, 100, NULL, 0, true), 0);
    cr_assert_eq(mem.flushes, 1);
    struct iovec empty = {mem.file, 0};
    cr_assert_eq(px__stage_write(&s, &mem.io, -1, 100, &empty, 1, false), 0);
    cr_assert_eq(mem.writes, 1, "an empty write without a flush is no call");
    px__stage_free(&s);
}

/* The same through a real file beside the build (a disk's file system,
 * where direct I/O is there to use), read back through the page cache. */
Test(stage, a_direct_file_reads_back_exactly)
{
    rng_state = px_test_seed();
    const char *bin = getenv("PX_BIN_DIR");
    char path[1024];
    snprintf(path, sizeof path, "%s/px-stage-%d.seg", bin ? bin : "/var/tmp", (int)getpid());
    unlink(path);
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL, 0600);
    cr_assert_geq(fd, 0, "%s: %s", path, strerror(errno));
    /* Both descriptors first, then the name goes: a failed assertion
     * below leaves no file behind. */
    int rd = open(path, O_RDONLY);
    unlink(path);
    cr_assert_geq(rd, 0);
    px__stage_direct(fd);
    bool direct = fcntl(fd, F_GETFL) & O_DIRECT;
    cr_log_info("%s: %s I/O", path, direct ? "direct" : "buffered");
    /* Where the file system says it takes direct I/O at our alignment,
     * the stage must use it. */
    struct statx sx;
    if (statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &sx) == 0 && (sx.stx_mask & STATX_DIOALIGN) &&
        sx.stx_dio_offset_align > 0 && sx.stx_dio_offset_align <= PX__STAGE_BLOCK &&
        sx.stx_dio_mem_align <= PX__STAGE_BLOCK)
        cr_assert(direct, "the file system offers direct I/O (offsets aligned to %u)",
                  sx.stx_dio_offset_align);
    struct px__io *io;
    cr_assert_eq(px__io_default(&io), 0);
    struct px__stage s;
    cr_assert_eq(px__stage_init(&s, 64 * 1024), 0);
    static uint8_t want[FILE_MAX], got[FILE_MAX];
    size_t end = append_random(&s, io, fd, want, 60, 16 * 1024);
    cr_assert_eq(pread(rd, got, sizeof got, 0), (ssize_t)px__stage_ceil(end));
    cr_assert_arr_eq(got, want, end);
    for (size_t i = end; i < px__stage_ceil(end); i++)
        cr_assert_eq(got[i], 0);
    close(rd);
    close(fd);
    io->ops->destroy(io);
    px__stage_free(&s);
}

/*
 * Log I/O failures and crashes, injected under the log writer through
 * px__io_set_factory:
 * - the Nth write (with its flush) fails with EIO or ENOSPC, for each N in
 *   turn across a short workload, once or from then on: submits whose
 *   record was not durable fail, nothing half-applied stays in the region,
 *   and recovery brings back exactly the submits that returned 0;
 * - a crash at the Nth flush in a child process: that flush's data is
 *   kept, dropped, cut short or garbled, then the child dies; recovery
 *   brings back every submit acknowledged before it.
 */
#define _GNU_SOURCE
#include "common.h"
#include "persist/io.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/wait.h>

#define TASKS 12

static char rname[64], dir[64], logdir[128];

static void fresh_dirs(void)
{
    if (dir[0])
        px_test_rmtree(dir);
    px_test_tmpdir(dir, sizeof dir, "faults");
    snprintf(logdir, sizeof logdir, "%s/log", dir);
    px_test_name(rname, sizeof rname);
    px_region_destroy(rname);
}

static void teardown(void)
{
    px__io_set_factory(NULL);
    px_region_destroy(rname);
    if (dir[0])
        px_test_rmtree(dir);
}

TestSuite(faults, .fini = teardown);

/* ---- A layer that fails the Nth write ---------------------------------- */

static _Atomic int calls, fail_at, fail_err, persistent;

struct layer {
    struct px__io io;
    struct px__io *inner;
};

static int fault_write(struct px__io *io, int fd, const struct iovec *iov, int n, uint64_t off,
                       bool sync)
{
    struct layer *l = (struct layer *)io;
    int k = atomic_fetch_add(&calls, 1) + 1;
    int at = atomic_load(&fail_at);
    if (at && (k == at || (atomic_load(&persistent) && k > at)))
        return atomic_load(&fail_err);
    return l->inner->ops->write(l->inner, fd, iov, n, off, sync);
}

static int fault_prealloc(struct px__io *io, int fd, uint64_t off, uint64_t len)
{
    struct layer *l = (struct layer *)io;
    return l->inner->ops->prealloc(l->inner, fd, off, len);
}

static void fault_destroy(struct px__io *io)
{
    struct layer *l = (struct layer *)io;
    l->inner->ops->destroy(l->inner);
    free(l);
}

static const struct px__io_ops fault_ops = {fault_write, fault_prealloc, fault_destroy};

static int fault_factory(struct px__io **out)
{
    struct layer *l = calloc(1, sizeof *l);
    cr_assert_not_null(l);
    int rc = px__io_posix_new(&l->inner);
    cr_assert_eq(rc, 0);
    l->io.ops = &fault_ops;
    l->io.name = "faults";
    *out = &l->io;
    return 0;
}

static int echo(px_ctx *ctx, const void *args, size_t len)
{
    return px_result(ctx, args, len);
}

static px_region *open_sync(px_recovery_info *rec)
{
    px_region *r;
    int rc = px_region_open(rname,
                            &(px_region_opts){.capacity = 64,
                                              .max_payload = 1024,
                                              .arena_bytes = 64 * 1024,
                                              .lanes = 4,
                                              .lane_depth = 64,
                                              .durability = PX_DURABLE_SYNC,
                                              .log_dir = logdir},
                            &r);
    cr_assert_eq(rc, 0, "open: %s", px_strerror(rc));
    cr_assert_eq(px_task_register(r, &(px_task_def){.name = "echo", .fn = echo, .mode = PX_THREAD}),
                 0);
    if (rec)
        cr_assert_eq(px_region_recovery(r, rec), 0);
    return r;
}

/* Submits TASKS tasks with distinct args; acked[i] says which returned 0. */
static void workload(px_region *r, px_id *ids, bool *acked)
{
    for (int i = 0; i < TASKS; i++) {
        char args[100];
        memset(args, 'A' + i, sizeof args);
        int rc = px_submit(r, "echo", args, 10 + (size_t)i * 7, NULL, &ids[i]);
        acked[i] = rc == 0;
        if (rc)
            cr_assert(rc == -EIO || rc == -ENOSPC, "submit %d: %s", i, px_strerror(rc));
    }
}

/* Recovers without faults and checks that exactly the acked tasks came
 * back, with their args. */
static void check_recovered(const px_id *ids, const bool *acked, const char *what)
{
    px__io_set_factory(NULL);
    px_recovery_info rec;
    px_region *r = open_sync(&rec);
    uint64_t want = 0;
    for (int i = 0; i < TASKS; i++) {
        if (!acked[i])
            continue;
        want++;
        cr_assert_eq(px_status(r, ids[i]), PX_PENDING, "%s: acked task %d is back", what, i);
        px_task_info ti;
        cr_assert_eq(px_info(r, ids[i], &ti), 0);
    }
    cr_assert_eq(rec.restored, want, "%s: %lu restored, %lu acked", what,
                 (unsigned long)rec.restored, (unsigned long)want);
    px_region_info info;
    cr_assert_eq(px_region_info_get(r, &info), 0);
    cr_assert_eq(info.slots_used, want, "%s: nothing else holds a slot", what);
    px_region_close(r);
    px_region_destroy(rname);
}

static void each_n(int err, bool persist)
{
    for (int n = 1; n <= TASKS + 4; n++) {
        fresh_dirs();
        atomic_store(&calls, 0);
        atomic_store(&fail_at, n);
        atomic_store(&fail_err, err);
        atomic_store(&persistent, persist);
        px__io_set_factory(fault_factory);
        px_region *r = open_sync(NULL);
        px_id ids[TASKS];
        bool acked[TASKS];
        workload(r, ids, acked);
        int nacked = 0;
        for (int i = 0; i < TASKS; i++)
            nacked += acked[i];
        /* The region holds the acked tasks and nothing of the failed ones. */
        px_region_info info;
        cr_assert_eq(px_region_info_get(r, &info), 0);
        cr_assert_eq(info.slots_used, (uint32_t)nacked, "n=%d: failed submits left nothing", n);
        /* Each submit is one write here, and the first segment's head one
         * more: a failure at a write that happened costs one submit
         * (transient) or every one from there on (persistent). */
        bool hit = atomic_load(&calls) >= n;
        int lost = !hit ? 0 : persist ? TASKS - (n > 1 ? n - 2 : 0) : 1;
        cr_assert_eq(nacked, TASKS - lost, "n=%d: %d acked, %d lost expected", n, nacked, lost);
        px_region_close(r);
        px_region_destroy(rname);
        char what[64];
        snprintf(what, sizeof what, "%s %s at write %d", persist ? "persistent" : "transient",
                 strerror(-err), n);
        check_recovered(ids, acked, what);
    }
}

Test(faults, a_transient_eio_fails_only_its_group)
{
    each_n(-EIO, false);
}

Test(faults, a_transient_enospc_fails_only_its_group)
{
    each_n(-ENOSPC, false);
}

Test(faults, a_persistent_eio_fails_everything_after_it)
{
    each_n(-EIO, true);
}

Test(faults, a_persistent_enospc_fails_everything_after_it)
{
    each_n(-ENOSPC, true);
}

/* A log directory that cannot be one: the open fails, says why, and
 * leaves no region behind. */
Test(faults, a_log_directory_that_cannot_be_made_is_refused_at_open)
{
    fresh_dirs();
    FILE *f = fopen(logdir, "w"); /* a file where the directory should be */
    cr_assert_not_null(f);
    fclose(f);
    px_region *r = NULL;
    int rc = px_region_open(
        rname, &(px_region_opts){.durability = PX_DURABLE_SYNC, .log_dir = logdir}, &r);
    cr_assert_eq(rc, -ENOTDIR, "got %s", px_strerror(rc));
    cr_assert_null(r);
    cr_assert_eq(px_region_destroy(rname), -ENOENT, "no region was left");
}

/* ---- A crash at the Nth flush ------------------------------------------- */

enum { KEEP, DROP, PREFIX, GARBLE, MODES };
static int crash_at, crash_mode;

static int crash_write(struct px__io *io, int fd, const struct iovec *iov, int n, uint64_t off,
                       bool sync)
{
    struct layer *l = (struct layer *)io;
    if (atomic_fetch_add(&calls, 1) + 1 != crash_at)
        return l->inner->ops->write(l->inner, fd, iov, n, off, sync);
    /* What power loss during this flush may leave: all of it, none, a
     * prefix, or the right length with a damaged range. The log writes
     * whole blocks, the first of them again with the bytes it already
     * held: a write leaves the bytes it does not change as they were, so
     * the damage falls on the bytes it changes. Written here byte by byte
     * (not through direct I/O), the worst case of a torn write. */
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_DIRECT);
    size_t len = 0;
    for (int i = 0; i < n; i++)
        len += iov[i].iov_len;
    uint8_t *buf = malloc(len ? len : 1), *old = malloc(len ? len : 1), *p = buf;
    for (int i = 0; i < n; i++, p += iov[i - 1].iov_len)
        memcpy(p, iov[i].iov_base, iov[i].iov_len);
    ssize_t had = pread(fd, old, len, (off_t)off);
    size_t same = 0;
    while (had > 0 && same < (size_t)had && old[same] == buf[same])
        same++;
    size_t keep = crash_mode == DROP ? 0 : crash_mode == PREFIX ? (size_t)rand() % (len + 1) : len;
    if (crash_mode == GARBLE && len > same) {
        size_t at = same + (size_t)rand() % (len - same), k = 1 + (size_t)rand() % 64;
        for (size_t i = at; i < at + k && i < len; i++)
            buf[i] ^= (uint8_t)(1 + rand() % 255);
    }
    if (keep && pwrite(fd, buf, keep, (off_t)off) < 0)
        _exit(3);
    fsync(fd);
    _exit(0);
}

static const struct px__io_ops crash_ops = {crash_write, fault_prealloc, fault_destroy};

static int crash_factory(struct px__io **out)
{
    struct layer *l = calloc(1, sizeof *l);
    if (!l || px__io_posix_new(&l->inner) != 0)
        return -ENOMEM;
    l->io.ops = &crash_ops;
    l->io.name = "crash";
    *out = &l->io;
    return 0;
}

struct ack {
    int i;
    px_id id;
};

/* The child: submits until the layer kills it, telling the parent each
 * acknowledged id. */
static void crash_child(int fd)
{
    px__io_set_factory(crash_factory);
    px_region *r = open_sync(NULL);
    for (int i = 0; i < TASKS; i++) {
        char args[100];
        memset(args, 'A' + i, sizeof args);
        struct ack a = {i, 0};
        if (px_submit(r, "echo", args, 10 + (size_t)i * 7, NULL, &a.id) != 0)
            _exit(2);
        if (write(fd, &a, sizeof a) != sizeof a)
            _exit(2);
    }
    _exit(0);
}

Test(faults, a_crash_at_any_flush_keeps_every_acknowledged_submit)
{
    srand(px_test_seed());
    for (int n = 1; n <= TASKS + 1; n++) {
        for (int mode = 0; mode < MODES; mode++) {
            fresh_dirs();
            atomic_store(&calls, 0);
            crash_at = n;
            crash_mode = mode;
            int p[2];
            cr_assert_eq(pipe(p), 0);
            pid_t pid = fork();
            cr_assert_geq(pid, 0);
            if (pid == 0) {
                close(p[0]);
                crash_child(p[1]);
            }
            close(p[1]);
            px_id ids[TASKS];
            bool acked[TASKS] = {false};
            struct ack a;
            int nacked = 0;
            while (read(p[0], &a, sizeof a) == sizeof a) {
                cr_assert(a.i >= 0 && a.i < TASKS);
                ids[a.i] = a.id;
                acked[a.i] = true;
                nacked++;
            }
            close(p[0]);
            int st;
            cr_assert_eq(waitpid(pid, &st, 0), pid);
            cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "n=%d mode=%d: child status %d", n,
                      mode, st);
            /* Power is lost: the shared memory goes too. */
            px_region_destroy(rname);
            px__io_set_factory(NULL);
            px_recovery_info rec;
            px_region *r = open_sync(&rec);
            for (int i = 0; i < TASKS; i++)
                if (acked[i])
                    cr_assert_eq(px_status(r, ids[i]), PX_PENDING,
                                 "n=%d mode=%d: acked task %d is back", n, mode, i);
            /* At most the submit whose flush the crash cut may be back too. */
            cr_assert(rec.restored >= (uint64_t)nacked && rec.restored <= (uint64_t)nacked + 1,
                      "n=%d mode=%d: %lu restored, %d acked", n, mode, (unsigned long)rec.restored,
                      nacked);
            px_region_close(r);
            px_region_destroy(rname);
        }
    }
}

/*
 * Power loss, modelled under the log writer (px__io_set_factory): every
 * write the log makes is recorded with the bytes it overwrote, and a
 * successful flush of a file makes that file's writes durable. A power
 * loss is a copy of the log directory with every write not yet durable
 * undone, newest first; a recovery from the copy must hold every submit
 * that returned 0. The writes go to the real backend (io_uring where it
 * can be set up), so the model checks what the writer asks for, not how
 * the backend does it. Directory entries count as durable (the writer
 * syncs the directory after it makes or deletes a segment).
 */
#define _GNU_SOURCE
#include "common.h"
#include "persist/durable.h"
#include "persist/io.h"
#include "persist/log.h"
#include "persist/record.h"
#include "persist/wal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/stat.h>

static char rname[64], rname2[80], dir[64], logdir[128], lostdir[128];

struct undo {
    dev_t dev;
    ino_t ino;
    uint64_t off;
    size_t len;
    uint8_t *old;
    struct undo *next; /* older */
};

static struct undo *undos;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static _Atomic int fail_new; /* a new segment's space: ENOSPC */

static void forget_undos(dev_t dev, ino_t ino)
{
    for (struct undo **pp = &undos; *pp;) {
        struct undo *u = *pp;
        if (dev == (dev_t)-1 || (u->dev == dev && u->ino == ino)) {
            *pp = u->next;
            free(u->old);
            free(u);
        } else {
            pp = &u->next;
        }
    }
}

/* The bytes [off, off + len) of fd as they are, read through a second
 * descriptor (fd may be open for direct I/O); zeros past the end. Runs on
 * the log thread, where a Criterion assertion cannot. */
static uint8_t *read_old(int fd, uint64_t off, size_t len)
{
    uint8_t *old = calloc(1, len ? len : 1);
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    int rfd = open(path, O_RDONLY | O_CLOEXEC);
    if (!old || rfd < 0 || pread(rfd, old, len, (off_t)off) < 0)
        abort(); /* the model cannot go on: the test fails loudly */
    close(rfd);
    return old;
}

struct layer {
    struct px__io io;
    struct px__io *inner;
};

static int pl_write(struct px__io *io, int fd, const struct iovec *iov, int n, uint64_t off,
                    bool sync)
{
    struct layer *l = (struct layer *)io;
    struct stat st;
    if (fstat(fd, &st) != 0)
        abort();
    size_t len = 0;
    for (int i = 0; i < n; i++)
        len += iov[i].iov_len;
    pthread_mutex_lock(&mu);
    struct undo *u = calloc(1, sizeof *u);
    if (!u)
        abort();
    *u = (struct undo){st.st_dev, st.st_ino, off, len, read_old(fd, off, len), undos};
    undos = u;
    int rc = l->inner->ops->write(l->inner, fd, iov, n, off, sync);
    if (rc == 0 && sync)
        forget_undos(st.st_dev, st.st_ino);
    pthread_mutex_unlock(&mu);
    return rc;
}

static int pl_prealloc(struct px__io *io, int fd, uint64_t off, uint64_t len)
{
    struct layer *l = (struct layer *)io;
    if (off == 0 && atomic_load(&fail_new))
        return -ENOSPC;
    return l->inner->ops->prealloc(l->inner, fd, off, len);
}

static void pl_destroy(struct px__io *io)
{
    struct layer *l = (struct layer *)io;
    l->inner->ops->destroy(l->inner);
    free(l);
}

static void pl_forget(struct px__io *io, int fd)
{
    struct layer *l = (struct layer *)io;
    if (l->inner->ops->forget)
        l->inner->ops->forget(l->inner, fd);
}

static const struct px__io_ops pl_ops = {pl_write, pl_prealloc, pl_destroy, pl_forget};

static int pl_factory(struct px__io **out)
{
    struct layer *l = calloc(1, sizeof *l);
    if (!l || px__io_default(&l->inner) != 0)
        return -ENOMEM;
    l->io.ops = &pl_ops;
    l->io.name = "powerloss";
    *out = &l->io;
    return 0;
}

static void copy_file(const char *from, const char *to)
{
    int in = open(from, O_RDONLY | O_CLOEXEC), out = open(to, O_WRONLY | O_CREAT | O_EXCL, 0600);
    cr_assert(in >= 0 && out >= 0, "copy %s", from);
    static uint8_t buf[1 << 16];
    ssize_t k;
    while ((k = read(in, buf, sizeof buf)) > 0)
        cr_assert_eq(write(out, buf, (size_t)k), k);
    cr_assert_eq(k, 0);
    close(in);
    close(out);
}

/* The log directory as the disk holds it after a power loss now: a copy
 * in lostdir, every write not flushed undone. Returns the bytes undone. */
static size_t power_loss(void)
{
    pthread_mutex_lock(&mu);
    cr_assert_eq(mkdir(lostdir, 0700), 0);
    DIR *d = opendir(logdir);
    cr_assert_not_null(d);
    size_t undone = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        char from[400], to[400];
        snprintf(from, sizeof from, "%s/%s", logdir, e->d_name);
        snprintf(to, sizeof to, "%s/%s", lostdir, e->d_name);
        struct stat st;
        if (stat(from, &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        copy_file(from, to);
        int fd = open(to, O_WRONLY | O_CLOEXEC);
        cr_assert_geq(fd, 0);
        for (struct undo *u = undos; u; u = u->next)
            if (u->dev == st.st_dev && u->ino == st.st_ino) {
                cr_assert_eq(pwrite(fd, u->old, u->len, (off_t)u->off), (ssize_t)u->len);
                undone += u->len;
            }
        close(fd);
    }
    closedir(d);
    pthread_mutex_unlock(&mu);
    return undone;
}

static void setup(void)
{
    px_test_tmpdir(dir, sizeof dir, "powerloss");
    snprintf(logdir, sizeof logdir, "%s/log", dir);
    snprintf(lostdir, sizeof lostdir, "%s/lost", dir);
    px_test_name(rname, sizeof rname);
    snprintf(rname2, sizeof rname2, "%s-after", rname);
    px_region_destroy(rname);
    px_region_destroy(rname2);
    atomic_store(&fail_new, 0);
    px__io_set_factory(pl_factory);
}

static void teardown(void)
{
    px__io_set_factory(NULL);
    pthread_mutex_lock(&mu);
    forget_undos((dev_t)-1, 0);
    pthread_mutex_unlock(&mu);
    px_region_destroy(rname);
    px_region_destroy(rname2);
    px_test_rmtree(dir);
}

TestSuite(powerloss, .init = setup, .fini = teardown);

static int noop(px_ctx *ctx, const void *args, size_t len)
{
    (void)ctx;
    (void)args;
    (void)len;
    return 0;
}

static px_region *open_sync(const char *name, const char *log, uint64_t segment)
{
    px_region *r = NULL;
    int rc = px_region_open(name,
                            &(px_region_opts){.capacity = 16384,
                                              .max_payload = 1024,
                                              .arena_bytes = 32u << 20,
                                              .lanes = 8,
                                              .lane_depth = 16384,
                                              .durability = PX_DURABLE_SYNC,
                                              .segment_bytes = segment,
                                              .log_dir = log},
                            &r);
    cr_assert_eq(rc, 0, "open %s: %s", name, px_strerror(rc));
    cr_assert_eq(px_task_register(r, &(px_task_def){.name = "noop", .fn = noop, .mode = PX_THREAD}),
                 0);
    return r;
}

/* Recovers a region from the log as the power loss left it; every id in
 * ids must be there. */
static void assert_all_recovered(const px_id *ids, int n, uint64_t segment)
{
    px__io_set_factory(NULL);
    px_region *r = open_sync(rname2, lostdir, segment);
    px_recovery_info rec;
    cr_assert_eq(px_region_recovery(r, &rec), 0);
    int missing = 0;
    for (int i = 0; i < n; i++)
        missing += px_status(r, ids[i]) != PX_PENDING;
    cr_assert_eq(missing, 0, "%d of %d acknowledged submits lost (restored %llu)", missing, n,
                 (unsigned long long)rec.restored);
    px_region_close(r);
}

enum { BATCH = 1024, BATCHES = 6, ARGS = 1000 };

/* Batches of about a megabyte into 1 MiB segments: a batch's records span
 * a rotation, and the group that closes the old segment was only written.
 * The writer flushes a segment before it leaves it, or the acknowledged
 * first half of the batch is lost with the power. */
Test(powerloss, a_batch_that_spans_a_rotation_survives, .timeout = 120)
{
    px_region *r = open_sync(rname, logdir, 1u << 20);
    static uint8_t args[ARGS];
    static px_job jobs[BATCH];
    static px_id ids[BATCH * BATCHES];
    for (int i = 0; i < BATCH; i++)
        jobs[i] = (px_job){.task = "noop", .args = args, .len = sizeof args};
    int acked = 0;
    for (int b = 0; b < BATCHES; b++) {
        int got = px_submit_many(r, jobs, BATCH, NULL, ids + acked);
        cr_assert_eq(got, BATCH, "submit_many: %s", px_strerror(got));
        acked += got;
    }
    power_loss();
    assert_all_recovered(ids, acked, 1u << 20);
    px_region_close(r);
}

/* A checkpoint whose copies of the live tasks fill more than a segment:
 * its end record is flushed in a later segment than its first copies, and
 * the segments with the original submits are deleted. */
Test(powerloss, a_checkpoint_that_rotates_survives, .timeout = 120)
{
    enum { N = 6000 };
    px_region *r = open_sync(rname, logdir, 1u << 20);
    static uint8_t args[400];
    static px_id ids[N];
    for (int i = 0; i < N; i++) {
        memcpy(args, &i, sizeof i);
        cr_assert_eq(px_submit(r, "noop", args, sizeof args, NULL, &ids[i]), 0);
    }
    uint64_t dropped = 0;
    cr_assert_eq(px__checkpoint(r, &dropped), 0);
    cr_assert_gt(dropped, 0, "the checkpoint let the submits' segments go");
    power_loss();
    assert_all_recovered(ids, N, 1u << 20);
    px_region_close(r);
}

/* Cancels and forgets a pending task: its slot is free again. */
static void drop(px_region *r, px_id id)
{
    cr_assert_eq(px_cancel(r, id), 0);
    cr_assert_eq(px_forget(r, id), 0);
}

/* A writer that cannot make its next segment (no space) appends to the one
 * it set out to leave no more: submits fail until a segment can be made. A
 * checkpoint by another writer meanwhile may delete the old segment, whose
 * records are all flushed and older than it, and nothing acknowledged is
 * lost. */
Test(powerloss, a_writer_that_cannot_rotate_appends_to_its_old_segment_no_more, .timeout = 120)
{
    px_region *a = open_sync(rname, logdir, 65536);
    px_region *b = open_sync(rname, logdir, 65536); /* a second writer */
    static uint8_t big[1000], tiny[8];
    px_id id;
    /* Both writers make their first segment while there is room. */
    cr_assert_eq(px_submit(b, "noop", tiny, sizeof tiny, NULL, &id), 0);
    drop(b, id);
    cr_assert_eq(px_submit(a, "noop", tiny, sizeof tiny, NULL, &id), 0);
    drop(a, id);
    atomic_store(&fail_new, 1);
    int rc, cycles = 0;
    px_id ids[64];
    int acked = 0;
    while ((rc = px_submit(a, "noop", big, sizeof big, NULL, &id)) == 0) {
        if (cycles % 8 == 0 && acked < 32)
            ids[acked++] = id; /* kept: they must survive */
        else
            drop(a, id);
        cr_assert_lt(++cycles, 1000, "the segment never filled");
    }
    cr_assert_eq(rc, -ENOSPC, "the submit that needed a new segment: %s", px_strerror(rc));
    cr_assert_eq(px_status(a, id), -ENOENT, "the failed submit left nothing");
    cr_assert_eq(px_submit(a, "noop", tiny, sizeof tiny, NULL, &id), -ENOSPC,
                 "not even a small record goes to the segment it left");
    uint64_t dropped;
    cr_assert_eq(px__checkpoint(b, &dropped), 0);
    atomic_store(&fail_new, 0);
    cr_assert_eq(px_submit(a, "noop", tiny, sizeof tiny, NULL, &ids[acked++]), 0,
                 "a new segment once there is room");
    power_loss();
    assert_all_recovered(ids, acked, 65536);
    px_region_close(b);
    px_region_close(a);
}

/* A log writer of its own (no region) in logdir, under the power-loss
 * layer: the region's counters it would share are the test's. */
static _Atomic uint64_t wal_lsn; /* the LSN counter of open_wal's writer */

static struct px__wal *open_wal(unsigned async_ms, uint64_t segment_bytes, uint32_t max_record)
{
    static _Atomic uint64_t bytes, writer;
    static _Atomic uint32_t seq;
    struct px__wal_opts o = {.dir = logdir,
                             .async_ms = async_ms,
                             .segment_bytes = segment_bytes,
                             .max_record = max_record,
                             .lsn = &wal_lsn,
                             .bytes = &bytes,
                             .pub_writer = &writer,
                             .pub_seq = &seq};
    struct px__wal *w;
    cr_assert_eq(px__wal_open(&o, &w), 0);
    return w;
}

struct burst {
    struct px__wal *w;
    int n, failed;
};

/* Another thread's records, enough to fill its ring past half. */
static void *burst_main(void *p)
{
    struct burst *b = p;
    static uint8_t body[1000];
    for (int i = 0; i < b->n; i++)
        b->failed += px__wal_append(b->w, PX__REC_FINISH, body, sizeof body) == 0;
    return NULL;
}

/* A record appended just before another thread fills its ring past half:
 * the log thread writes that group at once, without a flush (the window
 * allows it). The first thread's wait must still wait for a flush: a group
 * only written is not on stable storage. */
Test(powerloss, a_wait_does_not_take_a_write_for_a_flush, .timeout = 60)
{
    struct px__wal *w = open_wal(1000, 64u << 20, 2048);
    uint8_t body[12] = {0};
    cr_assert_eq(px__wal_wait(w, px__wal_append(w, PX__REC_START, body, sizeof body)), 0);
    body[0] = 0xaa;
    uint64_t ticket = px__wal_append(w, PX__REC_SUBMIT, body, sizeof body);
    uint64_t mine = atomic_load(&wal_lsn);
    struct burst b = {w, 1100, 0};
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, burst_main, &b), 0);
    cr_assert_eq(pthread_join(th, NULL), 0);
    cr_assert_eq(b.failed, 0);
    usleep(100000); /* the log thread writes the early group meanwhile */
    struct px__wal_stats st;
    px__wal_stats(w, &st);
    cr_assert_eq(st.unwritten, 0, "the early group was written");
    cr_assert_eq(px__wal_wait(w, ticket), 0);
    power_loss();
    struct px__log l;
    cr_assert_eq(px__log_load(lostdir, &l), 0);
    bool found = false;
    for (size_t i = 0; i < l.nrecs; i++)
        found |= l.recs[i]->lsn == mine;
    px__log_free(&l);
    cr_assert(found, "the record a wait returned 0 for is on stable storage");
    px__wal_close(w);
}

/* Groups written early (a ring past half full) and then flushed because
 * the writer leaves their segment are durable, even if the next segment
 * cannot be made and the group that needed it fails: their waiters are
 * told so, not that they failed. */
Test(powerloss, groups_flushed_on_leaving_a_segment_are_not_failed_with_the_next, .timeout = 60)
{
    struct px__wal *w = open_wal(10000, 1536 * 1024, 65536);
    static uint8_t body[64000];
    cr_assert_eq(px__wal_wait(w, px__wal_append(w, PX__REC_FINISH, body, 16)), 0);
    uint64_t first = 0, second = 0;
    for (int i = 0; i < 17; i++) /* past half the ring: written at once, not flushed */
        first = px__wal_append(w, PX__REC_FINISH, body, sizeof body);
    usleep(200000);
    struct px__wal_stats st;
    px__wal_stats(w, &st);
    cr_assert_eq(st.unwritten, 0, "the first batch was written");
    atomic_store(&fail_new, 1);
    for (int i = 0; i < 17; i++) /* does not fit: the segment is left, no new one made */
        second = px__wal_append(w, PX__REC_FINISH, body, sizeof body);
    cr_assert_lt(px__wal_wait(w, second), 0, "the group that needed a new segment failed");
    cr_assert_eq(px__wal_wait(w, first), 0, "the first batch was flushed on leaving");
    atomic_store(&fail_new, 0);
    px__wal_close(w);
}

/*
 * px_bench's durability groups: what a durable region costs, against what
 * a program would do without Pollux, measured in the same run.
 *
 * Every log lives in a fresh directory under /var/tmp (a disk on most
 * machines, unlike /tmp or /dev/shm), removed when the group ends or the
 * run fails. Its file system is given in the rows' notes; if it is tmpfs or
 * ramfs a warning is printed and the notes say "NOT A DISK", since then
 * nothing is flushed to stable storage and the numbers mean little.
 *
 * The workload of every submit row: bench_noop tasks with 64 bytes of args,
 * PX_SUBMIT_DETACHED, run by one in-process worker thread (px_workers_start
 * with threads = 1, processes = 1, default spin) so that the region never
 * fills. Such a task's SUBMIT record is 128 bytes: a 24-byte frame header
 * and a 100-byte body (id 8, flags 4, mode 1, name 1 + 10, queue 1 + 7,
 * args 4 + 64) padded to 104 (persist/record.h).
 *
 * durable_sync   Rounds (3) of pairs, interleaved so that each pair sees the
 *                same disk: for 1, 2 and 8 threads,
 *                - naive_fdatasync_tN: each thread appends 128-byte records
 *                  to its own file in the log directory with pwrite, and
 *                  calls fdatasync after each one: what durable submission
 *                  costs without group commit. Its ratio is 1.0.
 *                - sync_submit_tN: each thread calls px_submit on one
 *                  PX_DURABLE_SYNC region, which returns once the task's
 *                  record is flushed (group commit: one flush for all the
 *                  records appended meanwhile, by any thread, including
 *                  the worker's START and FREE records, which nobody
 *                  waits for).
 *                - sync_submit_manyB_tN, B = 64 and 256: each thread calls
 *                  px_submit_many with B tasks, which returns once all B
 *                  records are flushed; ops/s counts tasks, the latency
 *                  columns calls.
 *                Each loop runs for dur_secs (2 s; --quick 0.3 s) of wall
 *                time; ops/s = operations completed / (last thread's end -
 *                start), the median over the rounds; ratio_to_baseline is
 *                the median of the per-round ratios of sync_submit_tN to
 *                naive_fdatasync_tN. The latency columns are every single
 *                call (pwrite + fdatasync, or px_submit) of every round,
 *                timed around the call. These rows are closed loops (each
 *                thread sends its next operation when the last returned),
 *                so they measure throughput and the service time of one
 *                call; there is no send schedule for a correction of
 *                coordinated omission to refer to, and none is made. Do
 *                not read them as the latency of an open-loop load.
 *
 * durable_async  Rounds (3) of pairs, like the throughput group: n tasks
 *                (500k; --quick 50k) submitted one by one from this thread
 *                after a warm-up of n/10, on two regions that differ only
 *                in durability: none_submit (PX_DURABLE_NONE, ratio 1.0)
 *                and async_submit (PX_DURABLE_ASYNC, default async_ms).
 *                Workers are started for each round and the clock stops
 *                when the task bodies have counted n runs, as in
 *                noop_submit. ops/s and ratio: medians over the rounds.
 *
 * recovery       A PX_DURABLE_ASYNC region (capacity the next power of two
 *                >= n, 4 lanes of that depth, so that n pending tasks fit
 *                with no worker) gets n tasks (1M; --quick 100k) with
 *                px_submit_many, no worker runs them; the region is closed
 *                (which writes the log out) and its shared memory destroyed.
 *                recovery_1m times px_region_open of the same name and log
 *                directory, which creates the region and rebuilds it from
 *                the log; px_region_recovery() must report every task
 *                restored and pending, and px_region_info_get() as many
 *                slots used and entries queued. The log is written with
 *                direct I/O, so the first of these runs reads it from the
 *                disk and the others from the page cache, which the median
 *                reports (like a restart after a process crash).
 *                recovery_1m_cold does the same after
 *                fdatasync + posix_fadvise(DONTNEED) on every segment, so
 *                that the log is read from the disk (like a restart after
 *                a reboot). Each is timed REC_RUNS (3) times, destroying the
 *                shared memory in between; the same log is replayed every
 *                time, since a recovered region with no worker writes
 *                nothing to it. n = tasks restored by one open, ops/s =
 *                n / the median time (px_submit_many logs its tasks in
 *                shared records, so there are far fewer records than
 *                tasks); the note has the time, its range, the records
 *                replayed, and for comparison the median time
 *                px_region_open takes to create an empty region of the
 *                same sizes.
 */
#define _GNU_SOURCE
#include "bench_tasks.h"
#include "px_bench.h"

#include <pollux.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/magic.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#define DUR_ROUNDS 3
#define ARGS_BYTES 64
#define RECORD_BYTES 128 /* the SUBMIT record of a task with ARGS_BYTES of args */
#define MAX_THREADS 8
#define TMP_PARENT "/var/tmp"
#define DRAIN_TIMEOUT_S 30.0
#define MAX_LIVE 4
#define REC_RUNS 3 /* recoveries timed, each way */

static const px_submit_opts detached = {.timeout_s = -1, .flags = PX_SUBMIT_DETACHED};

/* ---- Cleanup ---------------------------------------------------------------- */

/* The group's temporary directory and regions, for durable_cleanup(). */
static char tmp_root[PATH_MAX];
static volatile sig_atomic_t tmp_root_set;
static char live_shm[MAX_LIVE][96]; /* "/dev/shm/<name>" */
static volatile sig_atomic_t live_shm_set[MAX_LIVE];

struct dirent64_raw {
    uint64_t d_ino;
    int64_t d_off;
    unsigned short d_reclen;
    unsigned char d_type;
    char d_name[];
};

/* Removes everything in the directory dfd (a few levels deep) with system
 * calls only, so that a signal handler may call it. Entries removed while
 * reading may make getdents skip others: read again until a pass finds
 * nothing left, or removes nothing. */
static void remove_in(int dfd, int depth)
{
    char buf[4096] __attribute__((aligned(8)));
    for (int pass = 0; pass < 100; pass++) {
        bool any = false, removed = false;
        long n;
        if (lseek(dfd, 0, SEEK_SET) != 0)
            return;
        while ((n = syscall(SYS_getdents64, dfd, buf, sizeof buf)) > 0) {
            for (long off = 0; off < n;) {
                struct dirent64_raw *d = (struct dirent64_raw *)(buf + off);
                off += d->d_reclen;
                if (strcmp(d->d_name, ".") == 0 || strcmp(d->d_name, "..") == 0)
                    continue;
                any = true;
                if (unlinkat(dfd, d->d_name, 0) == 0) {
                    removed = true;
                    continue;
                }
                if (errno != EISDIR || depth >= 3)
                    continue;
                int sub = openat(dfd, d->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (sub >= 0) {
                    remove_in(sub, depth + 1);
                    close(sub);
                }
                if (unlinkat(dfd, d->d_name, AT_REMOVEDIR) == 0)
                    removed = true;
            }
        }
        if (!any || !removed)
            return;
    }
}

static void remove_tree(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd >= 0) {
        remove_in(fd, 0);
        close(fd);
    }
    rmdir(path);
}

/* Async-signal-safe. */
void durable_cleanup(void)
{
    int saved = errno;
    for (int i = 0; i < MAX_LIVE; i++)
        if (live_shm_set[i]) {
            unlink(live_shm[i]);
            live_shm_set[i] = 0;
        }
    if (tmp_root_set) {
        remove_tree(tmp_root);
        tmp_root_set = 0;
    }
    errno = saved;
}

/* ---- The temporary directory ------------------------------------------------- */

struct tmp {
    char root[64];      /* /var/tmp/px-bench-XXXXXX */
    char log[PATH_MAX]; /* root/log: the log directory (made by the library) */
    char fs[32];        /* the file system's name */
    bool not_disk;      /* tmpfs or ramfs */
};

static const char *fs_name(unsigned long type)
{
    switch (type) {
    case EXT4_SUPER_MAGIC:
        return "ext2/3/4";
    case XFS_SUPER_MAGIC:
        return "xfs";
    case BTRFS_SUPER_MAGIC:
        return "btrfs";
    case TMPFS_MAGIC:
        return "tmpfs";
    case RAMFS_MAGIC:
        return "ramfs";
    case OVERLAYFS_SUPER_MAGIC:
        return "overlayfs";
    case NFS_SUPER_MAGIC:
        return "nfs";
    default:
        return NULL;
    }
}

static void tmp_make(struct tmp *t)
{
    memset(t, 0, sizeof *t);
    snprintf(t->root, sizeof t->root, TMP_PARENT "/px-bench-XXXXXX");
    if (!mkdtemp(t->root))
        die(TMP_PARENT, -errno);
    snprintf(tmp_root, sizeof tmp_root, "%s", t->root);
    tmp_root_set = 1;
    snprintf(t->log, sizeof t->log, "%s/log", t->root);
    struct statfs sf;
    if (statfs(t->root, &sf) != 0)
        die("statfs", -errno);
    const char *name = fs_name((unsigned long)sf.f_type);
    if (name)
        snprintf(t->fs, sizeof t->fs, "%s", name);
    else
        snprintf(t->fs, sizeof t->fs, "fs 0x%lx", (unsigned long)sf.f_type);
    t->not_disk = sf.f_type == TMPFS_MAGIC || sf.f_type == RAMFS_MAGIC;
    if (t->not_disk)
        fprintf(stderr,
                "px_bench: warning: %s is on %s, not a disk: flushes cost nothing there and\n"
                "          the durability numbers are not disk numbers\n",
                TMP_PARENT, t->fs);
}

static void tmp_remove(struct tmp *t)
{
    remove_tree(t->root);
    tmp_root_set = 0;
}

/* Where the log was, for the rows' notes. */
static const char *tmp_where(const struct tmp *t, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s on %s%s", TMP_PARENT, t->fs, t->not_disk ? " (NOT A DISK)" : "");
    return buf;
}

/* ---- Regions -------------------------------------------------------------- */

/* Creates a fresh region (name unique to this process) in live slot `slot`. */
static px_region *dregion_create(char *name, size_t cap, const px_region_opts *o, int slot)
{
    static int seq;
    snprintf(name, cap, "/px-bench-%d-d%d", (int)getpid(), seq++);
    px_region *r;
    snprintf(live_shm[slot], sizeof live_shm[slot], "/dev/shm%s", name);
    live_shm_set[slot] = 1;
    int rc = px_region_open(name, o, &r);
    if (rc)
        die(name, rc);
    return r;
}

/* Opens (creates, recovering) a region of a name already in live slot `slot`. */
static px_region *dregion_reopen(const char *name, const px_region_opts *o, int slot)
{
    px_region *r;
    live_shm_set[slot] = 1;
    int rc = px_region_open(name, o, &r);
    if (rc)
        die(name, rc);
    return r;
}

static void dregion_remove(px_region *r, const char *name, int slot)
{
    int rc = px_region_close(r);
    if (rc)
        die("px_region_close", rc);
    if ((rc = px_region_destroy(name)) != 0)
        die("px_region_destroy", rc);
    live_shm_set[slot] = 0;
}

static void register_tasks(px_region *r)
{
    int rc = px_task_register_all(r);
    if (rc < 0)
        die("px_task_register_all", rc);
}

/* Waits until the task bodies have counted `target` runs. */
static void drain(uint64_t target)
{
    uint64_t deadline = bench_now_ns() + (uint64_t)(DRAIN_TIMEOUT_S * 1e9);
    while (atomic_load_explicit(&bench_noop_count, memory_order_relaxed) < target) {
        if (bench_now_ns() > deadline)
            fail("only %llu of %llu detached no-op tasks ran within %.0f s",
                 (unsigned long long)atomic_load(&bench_noop_count), (unsigned long long)target,
                 DRAIN_TIMEOUT_S);
        sched_yield(); /* on a small machine, the worker may need this CPU */
    }
}

static void sleep_s(double s)
{
    struct timespec ts = {.tv_sec = (time_t)s, .tv_nsec = (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* ---- Samples ------------------------------------------------------------------ */

struct samples {
    uint64_t *v;
    size_t n, cap;
};

static void samples_push(struct samples *s, uint64_t x)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 4096;
        uint64_t *v = realloc(s->v, cap * sizeof *v);
        if (!v)
            die("samples", -ENOMEM);
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = x;
}

static void samples_append(struct samples *dst, const struct samples *src)
{
    for (size_t i = 0; i < src->n; i++)
        samples_push(dst, src->v[i]);
}

/* ---- durable_sync: closed loops of durable operations ---------------------- */

enum loop_kind { NAIVE, SYNC, SYNC_MANY };

/* Tasks per px_submit_many call in SYNC_MANY loops: each size is a row. */
static const unsigned many_sizes[] = {64, 256};
#define MANY_MAX 256

struct loop {
    pthread_barrier_t start;
    _Atomic int stop;
};

struct loop_thread {
    struct loop *l;
    enum loop_kind kind;
    px_region *r;   /* SYNC */
    int fd;         /* NAIVE: this thread's file */
    unsigned batch; /* SYNC_MANY: tasks per call */
    uint64_t ops, end_ns;
    struct samples lat;
    int err;
    const char *what; /* of err */
};

static int pwrite_all(int fd, const void *p, size_t n, uint64_t off)
{
    while (n > 0) {
        ssize_t k = pwrite(fd, p, n, (off_t)off);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return k < 0 ? -errno : -EIO;
        p = (const char *)p + k;
        n -= (size_t)k;
        off += (uint64_t)k;
    }
    return 0;
}

/* A SYNC_MANY call: t->batch tasks, one wait for their records. Returns
 * how many were submitted, or a negative code. */
static int many_op(struct loop_thread *t, uint8_t *buf)
{
    px_job jobs[MANY_MAX];
    px_id ids[MANY_MAX];
    uint8_t args[MANY_MAX][ARGS_BYTES];
    for (unsigned i = 0; i < t->batch; i++) {
        memcpy(args[i], buf, ARGS_BYTES);
        args[i][0] = (uint8_t)i;
        jobs[i] = (px_job){.task = BENCH_NOOP, .args = args[i], .len = ARGS_BYTES};
    }
    t->what = "px_submit_many";
    int k = px_submit_many(t->r, jobs, t->batch, &detached, ids);
    return k == 0 ? -EAGAIN : k;
}

/* One operation: a NAIVE record (pwrite + fdatasync), a SYNC px_submit or a
 * SYNC_MANY px_submit_many. Returns the tasks or records it made durable,
 * or a negative code. */
static int loop_op(struct loop_thread *t, uint8_t *buf, uint64_t *off)
{
    memcpy(buf, &t->ops, sizeof t->ops); /* every record differs */
    if (t->kind == SYNC_MANY)
        return many_op(t, buf);
    if (t->kind == SYNC) {
        int rc = px_submit(t->r, BENCH_NOOP, buf, ARGS_BYTES, &detached, NULL);
        t->what = "px_submit";
        return rc ? rc : 1;
    }
    int rc = pwrite_all(t->fd, buf, RECORD_BYTES, *off);
    t->what = "pwrite";
    if (rc == 0 && fdatasync(t->fd) != 0) {
        rc = -errno;
        t->what = "fdatasync";
    }
    *off += RECORD_BYTES;
    return rc ? rc : 1;
}

static void *loop_main(void *p)
{
    struct loop_thread *t = p;
    uint8_t buf[RECORD_BYTES];
    memset(buf, 0x5a, sizeof buf);
    uint64_t off = 0;
    pthread_barrier_wait(&t->l->start);
    while (!atomic_load_explicit(&t->l->stop, memory_order_relaxed)) {
        uint64_t a = bench_now_ns();
        int rc = loop_op(t, buf, &off);
        uint64_t b = bench_now_ns();
        if (rc < 0) {
            t->err = rc;
            break;
        }
        samples_push(&t->lat, b - a);
        t->ops += (uint64_t)rc;
    }
    t->end_ns = bench_now_ns();
    return NULL;
}

/* Runs nthreads loops of `kind` for secs; appends every call's latency to
 * *lat, adds the operations to *ops and returns operations/s. */
static double run_loops(enum loop_kind kind, unsigned batch, unsigned nthreads, px_region *r,
                        const char *dir, double secs, struct samples *lat, uint64_t *ops)
{
    struct loop l = {0};
    struct loop_thread th[MAX_THREADS] = {0};
    pthread_t tid[MAX_THREADS];
    char path[MAX_THREADS][PATH_MAX];
    if (pthread_barrier_init(&l.start, NULL, nthreads + 1) != 0)
        die("pthread_barrier_init", -EAGAIN);
    for (unsigned i = 0; i < nthreads; i++) {
        th[i] = (struct loop_thread){.l = &l, .kind = kind, .r = r, .fd = -1, .batch = batch};
        if (kind == NAIVE) {
            if (snprintf(path[i], sizeof path[i], "%s/naive-%u.dat", dir, i) >= (int)sizeof path[i])
                die(dir, -ENAMETOOLONG);
            th[i].fd = open(path[i], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
            if (th[i].fd < 0)
                die(path[i], -errno);
        }
        if (pthread_create(&tid[i], NULL, loop_main, &th[i]) != 0)
            die("pthread_create", -EAGAIN);
    }
    pthread_barrier_wait(&l.start);
    uint64_t t0 = bench_now_ns();
    sleep_s(secs);
    atomic_store(&l.stop, 1);
    uint64_t end = t0, n = 0;
    int err = 0;
    const char *what = NULL;
    for (unsigned i = 0; i < nthreads; i++) {
        pthread_join(tid[i], NULL);
        if (th[i].end_ns > end)
            end = th[i].end_ns;
        n += th[i].ops;
        samples_append(lat, &th[i].lat);
        free(th[i].lat.v);
        if (th[i].err && !err) {
            err = th[i].err;
            what = th[i].what;
        }
        if (kind == NAIVE) {
            close(th[i].fd);
            unlink(path[i]);
        }
    }
    pthread_barrier_destroy(&l.start);
    if (err)
        die(what, err);
    *ops += n;
    return (double)n * 1e9 / (double)(end - t0);
}

static struct result *add_loop_row(const char *name, uint64_t n, double ops, struct samples *lat)
{
    struct result *res = add_result(name, n, ops);
    if (lat->n)
        set_latency(res, lat->v, lat->n);
    free(lat->v);
    *lat = (struct samples){0};
    return res;
}

void bench_durable_sync(const struct config *c)
{
    static const unsigned nthreads[] = {1, 2, 8};
    struct tmp tmp;
    tmp_make(&tmp);
    char name[64], where[64];
    tmp_where(&tmp, where, sizeof where);
    px_region_opts o = {
        .flags = PX_REGION_CREATE, .durability = PX_DURABLE_SYNC, .log_dir = tmp.log};
    px_region *r = dregion_create(name, sizeof name, &o, 0);
    register_tasks(r);
    atomic_store(&bench_noop_count, 0);
    px_workers *w = bench_one_worker(r);
    /* Warm-up: the first submits open the first segment; the naive files
     * go in the same directory, which the library has now made. */
    struct samples none = {0};
    uint64_t submitted = 0;
    run_loops(SYNC, 1, 1, r, NULL, c->dur_secs / 4, &none, &submitted);
    free(none.v);
    drain(submitted);
    enum { NM = sizeof many_sizes / sizeof many_sizes[0] };
    for (size_t k = 0; k < sizeof nthreads / sizeof nthreads[0]; k++) {
        unsigned t = nthreads[k];
        double naive[DUR_ROUNDS], sync[DUR_ROUNDS], ratio[DUR_ROUNDS];
        double many[NM][DUR_ROUNDS], mratio[NM][DUR_ROUNDS];
        struct samples nl = {0}, sl = {0}, ml[NM] = {{0}};
        uint64_t nn = 0, sn = 0, mn[NM] = {0};
        for (int i = 0; i < DUR_ROUNDS; i++) {
            naive[i] = run_loops(NAIVE, 1, t, NULL, tmp.log, c->dur_secs, &nl, &nn);
            uint64_t before = sn;
            sync[i] = run_loops(SYNC, 1, t, r, NULL, c->dur_secs, &sl, &sn);
            submitted += sn - before;
            drain(submitted); /* not timed: the next loop starts with no backlog */
            ratio[i] = sync[i] / naive[i];
            for (size_t m = 0; m < NM; m++) {
                before = mn[m];
                many[m][i] =
                    run_loops(SYNC_MANY, many_sizes[m], t, r, NULL, c->dur_secs, &ml[m], &mn[m]);
                submitted += mn[m] - before;
                drain(submitted);
                mratio[m][i] = many[m][i] / naive[i];
            }
        }
        char row[48];
        snprintf(row, sizeof row, "naive_fdatasync_t%u", t);
        struct result *res = add_loop_row(row, nn, median(naive, DUR_ROUNDS), &nl);
        res->ratio = 1.0;
        snprintf(res->note, sizeof res->note,
                 "%u thread(s), own file each: pwrite %d B + fdatasync; %s", t, RECORD_BYTES,
                 where);
        snprintf(row, sizeof row, "sync_submit_t%u", t);
        res = add_loop_row(row, sn, median(sync, DUR_ROUNDS), &sl);
        res->ratio = median(ratio, DUR_ROUNDS);
        snprintf(res->note, sizeof res->note,
                 "%u thread(s), PX_DURABLE_SYNC px_submit, %d B args; closed loop; %s", t,
                 ARGS_BYTES, where);
        for (size_t m = 0; m < NM; m++) {
            snprintf(row, sizeof row, "sync_submit_many%u_t%u", many_sizes[m], t);
            res = add_loop_row(row, mn[m], median(many[m], DUR_ROUNDS), &ml[m]);
            res->ratio = median(mratio[m], DUR_ROUNDS);
            snprintf(res->note, sizeof res->note,
                     "%u thread(s), PX_DURABLE_SYNC px_submit_many of %u, %d B args; ops/s in "
                     "tasks, latency per call; %s",
                     t, many_sizes[m], ARGS_BYTES, where);
        }
    }
    bench_workers_stop(w);
    dregion_remove(r, name, 0);
    tmp_remove(&tmp);
}

/* ---- durable_async: async and none against each other -------------------- */

/* n detached tasks with 64-byte args after a warm-up of n/10, on fresh
 * workers; tasks/s until the bodies have counted them all. */
static double submit_round(px_region *r, uint64_t n)
{
    uint8_t args[ARGS_BYTES];
    memset(args, 0x5a, sizeof args);
    px_workers *w = bench_one_worker(r);
    uint64_t warm = n / 10;
    atomic_store(&bench_noop_count, 0);
    uint64_t t0 = 0;
    for (uint64_t i = 0; i < warm + n; i++) {
        if (i == warm) {
            drain(warm);
            t0 = bench_now_ns();
        }
        memcpy(args, &i, sizeof i);
        int rc = px_submit(r, BENCH_NOOP, args, sizeof args, &detached, NULL);
        if (rc)
            die("px_submit", rc);
    }
    if (n == 0)
        t0 = bench_now_ns();
    drain(warm + n);
    uint64_t t1 = bench_now_ns();
    bench_workers_stop(w);
    return (double)n * 1e9 / (double)(t1 - t0);
}

void bench_durable_async(const struct config *c)
{
    struct tmp tmp;
    tmp_make(&tmp);
    char none_name[64], async_name[64], where[64];
    tmp_where(&tmp, where, sizeof where);
    px_region_opts on = {.flags = PX_REGION_CREATE, .durability = PX_DURABLE_NONE};
    px_region_opts oa = {
        .flags = PX_REGION_CREATE, .durability = PX_DURABLE_ASYNC, .log_dir = tmp.log};
    px_region *rn = dregion_create(none_name, sizeof none_name, &on, 0);
    px_region *ra = dregion_create(async_name, sizeof async_name, &oa, 1);
    register_tasks(rn);
    register_tasks(ra);
    double none[DUR_ROUNDS], async[DUR_ROUNDS], ratio[DUR_ROUNDS];
    for (int i = 0; i < DUR_ROUNDS; i++) {
        none[i] = submit_round(rn, c->dur_async_n);
        async[i] = submit_round(ra, c->dur_async_n);
        ratio[i] = async[i] / none[i];
    }
    dregion_remove(rn, none_name, 0);
    dregion_remove(ra, async_name, 1);
    tmp_remove(&tmp);
    struct result *res =
        add_result("none_submit", c->dur_async_n * DUR_ROUNDS, median(none, DUR_ROUNDS));
    res->ratio = 1.0;
    snprintf(res->note, sizeof res->note, "1 thread, PX_DURABLE_NONE px_submit, %d B args",
             ARGS_BYTES);
    res = add_result("async_submit", c->dur_async_n * DUR_ROUNDS, median(async, DUR_ROUNDS));
    res->ratio = median(ratio, DUR_ROUNDS);
    snprintf(res->note, sizeof res->note,
             "1 thread, PX_DURABLE_ASYNC px_submit, %d B args; ratio to none_submit; %s",
             ARGS_BYTES, where);
}

/* ---- recovery ------------------------------------------------------------ */

/* Submits n pending tasks (no worker) in batches of 64. */
static void fill_pending(px_region *r, uint64_t n)
{
    enum { B = 64 };
    static uint8_t args[B][ARGS_BYTES];
    px_job jobs[B];
    px_id ids[B];
    /* timeout 0: a region or lane too small fails at once, rather than hang */
    const px_submit_opts now = {.timeout_s = 0};
    for (uint64_t done = 0; done < n;) {
        size_t want = n - done < B ? (size_t)(n - done) : B;
        for (size_t j = 0; j < want; j++) {
            uint64_t v = done + j;
            memset(args[j], 0x5a, ARGS_BYTES);
            memcpy(args[j], &v, sizeof v);
            jobs[j] = (px_job){.task = BENCH_NOOP, .args = args[j], .len = ARGS_BYTES};
        }
        int k = px_submit_many(r, jobs, want, &now, ids);
        if (k <= 0)
            fail("px_submit_many after %llu of %llu tasks: %s", (unsigned long long)done,
                 (unsigned long long)n, px_strerror(k ? k : -EAGAIN));
        done += (uint64_t)k;
    }
}

/* Bytes of the *.wal files in dir; with drop, also evicts them from the
 * page cache (after a flush, so that no page is dirty). */
static uint64_t log_files(const char *dir, bool drop)
{
    DIR *d = opendir(dir);
    if (!d)
        die(dir, -errno);
    uint64_t bytes = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len < 5 || strcmp(e->d_name + len - 4, ".wal") != 0)
            continue;
        int fd = openat(dirfd(d), e->d_name, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            die(e->d_name, -errno);
        struct stat st;
        if (fstat(fd, &st) == 0)
            bytes += (uint64_t)st.st_size;
        if (drop) {
            int rc = fdatasync(fd) != 0 ? -errno : 0;
            if (rc == 0)
                rc = -posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
            if (rc)
                die("fdatasync/posix_fadvise", rc);
        }
        close(fd);
    }
    closedir(d);
    return bytes;
}

/* Times px_region_open recovering `name` from its log and checks what it
 * says it restored; leaves the region closed and destroyed. */
static uint64_t recover_once(const char *name, const px_region_opts *o, uint64_t n,
                             px_recovery_info *info)
{
    uint64_t t0 = bench_now_ns();
    px_region *r = dregion_reopen(name, o, 0);
    uint64_t t1 = bench_now_ns();
    int rc = px_region_recovery(r, info);
    if (rc)
        die("px_region_recovery", rc);
    if (info->restored != n || info->pending != n || info->bytes_cut != 0)
        fail("recovery of %s from %s: restored %llu (pending %llu, finished %llu, orphans "
             "%llu), %llu records, %llu bytes cut; expected %llu restored and pending",
             name, o->log_dir, (unsigned long long)info->restored,
             (unsigned long long)info->pending, (unsigned long long)info->finished,
             (unsigned long long)info->orphans, (unsigned long long)info->records,
             (unsigned long long)info->bytes_cut, (unsigned long long)n);
    px_region_info ri;
    if ((rc = px_region_info_get(r, &ri)) != 0)
        die("px_region_info_get", rc);
    if (ri.slots_used != n || ri.queued != n)
        fail("recovered region %s: %u slots used, %llu queued; expected %llu", name, ri.slots_used,
             (unsigned long long)ri.queued, (unsigned long long)n);
    dregion_remove(r, name, 0);
    return t1 - t0;
}

/* How long px_region_open takes to create an empty region of these sizes
 * (no log): the part of a recovery that is not the log's. */
static uint64_t empty_open_ns(const px_region_opts *sized)
{
    px_region_opts o = *sized;
    o.durability = PX_DURABLE_NONE;
    o.log_dir = NULL;
    char name[64];
    uint64_t t0 = bench_now_ns();
    px_region *r = dregion_create(name, sizeof name, &o, 1);
    uint64_t t1 = bench_now_ns();
    dregion_remove(r, name, 1);
    return t1 - t0;
}

/* ns: the REC_RUNS opens' times (sorted here); the row has their median. */
static struct result *add_recovery_row(const char *row, double *ns, const px_recovery_info *info,
                                       uint64_t log_bytes, double empty_ns, const char *how,
                                       const char *where)
{
    double med = median(ns, REC_RUNS);
    struct result *res = add_result(row, info->restored, (double)info->restored * 1e9 / med);
    snprintf(res->note, sizeof res->note,
             "px_region_open %.3f s (median of %d, %.3f-%.3f; empty region %.3f s): %llu tasks "
             "restored from %llu records, %llu segments of %.0f MB; %s; %s",
             med / 1e9, REC_RUNS, ns[0] / 1e9, ns[REC_RUNS - 1] / 1e9, empty_ns / 1e9,
             (unsigned long long)info->restored, (unsigned long long)info->records,
             (unsigned long long)info->segments, (double)log_bytes / 1e6, how, where);
    return res;
}

void bench_recovery(const struct config *c)
{
    uint64_t n = c->recovery_n;
    uint32_t cap = 1024;
    while (cap < n)
        cap *= 2;
    struct tmp tmp;
    tmp_make(&tmp);
    char name[64], where[64];
    tmp_where(&tmp, where, sizeof where);
    /* 64-byte args do not fit in a slot: each takes an arena chunk, which
     * a max_payload of 1 KiB makes 64 bytes, so the default arena holds
     * a million of them. */
    px_region_opts o = {.capacity = cap,
                        .max_payload = 1024,
                        .lanes = 4,
                        .lane_depth = cap,
                        .flags = PX_REGION_CREATE,
                        .durability = PX_DURABLE_ASYNC,
                        .log_dir = tmp.log};
    px_region *r = dregion_create(name, sizeof name, &o, 0);
    register_tasks(r);
    fill_pending(r, n);
    /* Closing writes the log out; destroying drops the shared memory, so
     * that the next open creates the region and recovers it. */
    dregion_remove(r, name, 0);
    uint64_t log_bytes = log_files(tmp.log, false);
    char size[16], row[48];
    if (n % 1000000 == 0)
        snprintf(size, sizeof size, "%llum", (unsigned long long)(n / 1000000));
    else
        snprintf(size, sizeof size, "%lluk", (unsigned long long)(n / 1000));
    double empty[REC_RUNS], warm[REC_RUNS], cold[REC_RUNS];
    px_recovery_info info;
    for (int i = 0; i < REC_RUNS; i++)
        empty[i] = (double)empty_open_ns(&o);
    for (int i = 0; i < REC_RUNS; i++)
        warm[i] = (double)recover_once(name, &o, n, &info);
    for (int i = 0; i < REC_RUNS; i++) {
        log_files(tmp.log, true);
        cold[i] = (double)recover_once(name, &o, n, &info);
    }
    tmp_remove(&tmp);
    double empty_ns = median(empty, REC_RUNS);
    snprintf(row, sizeof row, "recovery_%s", size);
    add_recovery_row(row, warm, &info, log_bytes, empty_ns, "log in page cache", where);
    snprintf(row, sizeof row, "recovery_%s_cold", size);
    add_recovery_row(row, cold, &info, log_bytes, empty_ns, "log evicted", where);
}

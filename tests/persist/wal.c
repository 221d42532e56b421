/*
 * The log writer on its own: appends from more threads than it has rings,
 * rings of exited threads taken over, a forked child appending beside its
 * parent or killed holding the shared ring, unwaited records sharing a
 * waited group's flush, zeros written ahead of the log (and a writer
 * killed while its zeroer works), and a flush that
 * must make earlier unflushed writes durable.
 * Every record is checked in the log as read back.
 */
#include "common.h"
#include "persist/io.h"
#include "persist/log.h"
#include "persist/wal.h"

#include <dirent.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#define TYPE PX__REC_FREE /* a body of id and attempts: (thread, n) here */

static char dir[64], logdir[128];
/* The region's counters, which a forked child shares. */
struct counters {
    _Atomic uint64_t lsn, bytes, pub_writer;
    _Atomic uint32_t pub_seq;
    _Atomic int ready, go;
};
static struct counters *ct;

static void setup(void)
{
    px_test_tmpdir(dir, sizeof dir, "wal");
    snprintf(logdir, sizeof logdir, "%s/log", dir);
    ct = mmap(NULL, sizeof *ct, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(ct, MAP_FAILED);
}

static void teardown(void)
{
    px__io_set_factory(NULL);
    px_test_rmtree(dir);
}

TestSuite(wal, .init = setup, .fini = teardown);

static struct px__wal_opts wal_opts(unsigned async_ms, int ahead, uint64_t segment_bytes)
{
    return (struct px__wal_opts){.dir = logdir,
                                 .async_ms = async_ms,
                                 .ahead = ahead,
                                 .segment_bytes = segment_bytes,
                                 .max_record = 4096,
                                 .lsn = &ct->lsn,
                                 .bytes = &ct->bytes,
                                 .pub_writer = &ct->pub_writer,
                                 .pub_seq = &ct->pub_seq};
}

static struct px__wal *open_wal_with(unsigned async_ms, int ahead, uint64_t segment_bytes)
{
    struct px__wal_opts o = wal_opts(async_ms, ahead, segment_bytes);
    struct px__wal *w;
    int rc = px__wal_open(&o, &w);
    cr_assert_eq(rc, 0, "px__wal_open: %s", strerror(-rc));
    return w;
}

static struct px__wal *open_wal(unsigned async_ms)
{
    return open_wal_with(async_ms, 0, 64ull << 20);
}

/* Appends record n of thread t; its ticket. */
static uint64_t append(struct px__wal *w, uint32_t t, uint32_t n)
{
    uint8_t body[12];
    struct px__put p = {body, 0, sizeof body, false};
    px__rec_id_put(&p, t, n);
    return px__wal_append(w, TYPE, body, (uint32_t)p.len);
}

/* Moves *i to the next record of TYPE in l, at or after *i, and reads its
 * (thread, number) into *t and *n; false when there is none. */
static bool next_test_record(const struct px__log *l, size_t *i, uint64_t *t, uint32_t *n)
{
    for (; *i < l->nrecs; (*i)++)
        if (l->recs[*i]->type == TYPE) {
            cr_assert(px__rec_id_get(l->recs[*i], t, n));
            return true;
        }
    return false;
}

/* Asserts the log holds record n of thread t exactly once for every t <
 * threads and n < per, and nothing else of TYPE. */
static void expect_records(uint32_t threads, uint32_t per)
{
    struct px__log l;
    cr_assert_eq(px__log_load(logdir, &l), 0);
    uint8_t *seen = calloc((size_t)threads * per, 1);
    size_t n = 0;
    uint64_t t;
    uint32_t k;
    for (size_t i = 0; next_test_record(&l, &i, &t, &k); i++) {
        cr_assert(t < threads && k < per, "record (%lu, %u) was never appended", (unsigned long)t,
                  k);
        cr_assert_eq(seen[t * per + k]++, 0, "record (%lu, %u) twice", (unsigned long)t, k);
        n++;
    }
    cr_assert_eq(n, (size_t)threads * per, "%zu of %u records in the log", n, threads * per);
    free(seen);
    px__log_free(&l);
}

struct crowd {
    struct px__wal *w;
    pthread_barrier_t *all_alive;
    uint32_t t, per;
};

static void *crowd_main(void *p)
{
    struct crowd *c = p;
    pthread_barrier_wait(c->all_alive);
    for (uint32_t n = 0; n < c->per; n++)
        cr_assert_eq(px__wal_wait(c->w, append(c->w, c->t, n)), 0);
    return NULL;
}

/* Threads that all append at once. */
static void run_crowd(struct px__wal *w, uint32_t threads, uint32_t per)
{
    pthread_t th[128];
    struct crowd c[128];
    pthread_barrier_t b;
    pthread_barrier_init(&b, NULL, threads);
    for (uint32_t i = 0; i < threads; i++) {
        c[i] = (struct crowd){w, &b, i, per};
        cr_assert_eq(pthread_create(&th[i], NULL, crowd_main, &c[i]), 0);
    }
    for (uint32_t i = 0; i < threads; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&b);
}

Test(wal, more_threads_than_rings_all_get_their_records_in)
{
    struct px__wal *w = open_wal(0);
    run_crowd(w, PX__WAL_RINGS + 16, 40);
    struct px__wal_stats st;
    px__wal_stats(w, &st);
    cr_assert_eq(st.records, (PX__WAL_RINGS + 16) * 40);
    cr_assert_gt(st.shared_records, 0, "threads beyond the rings shared one");
    cr_assert_lt(st.groups, st.records, "sync appends shared groups");
    px__wal_close(w);
    expect_records(PX__WAL_RINGS + 16, 40);
}

/* Records nobody waits for (a worker's START and FINISH) must not each
 * cost a flush that the next waiting submit queues behind: they wait for
 * the window, or go out with the next waited group. */
Test(wal, unwaited_records_go_with_the_next_waited_group)
{
    struct px__wal *w = open_wal(60000);
    for (uint32_t n = 0; n < 100; n++)
        append(w, 0, n);
    usleep(50 * 1000);
    struct px__wal_stats st;
    px__wal_stats(w, &st);
    cr_assert_eq(st.flushes, 0, "no flush before anyone waits");
    cr_assert_eq(st.groups, 0, "nothing written before the window closes");
    cr_assert_eq(px__wal_wait(w, append(w, 0, 100)), 0);
    px__wal_stats(w, &st);
    cr_assert_eq(st.groups, 1, "the waiter's group took the earlier records");
    cr_assert_eq(st.flushes, 1);
    cr_assert_eq(st.unwritten, 0);
    px__wal_close(w);
    expect_records(1, 101);
}

/* Appends `per` records, waiting for every 50th. */
static void *ahead_main(void *p)
{
    struct crowd *c = p;
    for (uint32_t n = 0; n < c->per; n++) {
        uint64_t t = append(c->w, c->t, n);
        if (n % 50 == 49)
            cr_assert_eq(px__wal_wait(c->w, t), 0);
    }
    return NULL;
}

/* Zeros written ahead of the log must never land on a record, across
 * segment changes too, and the log must mostly write over zeros that were
 * already flushed (the point of writing them). */
Test(wal, zeros_ahead_of_the_log_never_overwrite_a_record)
{
    struct px__wal *w = open_wal_with(1, 1, 1u << 20);
    pthread_t th[4];
    struct crowd c[4];
    for (uint32_t i = 0; i < 4; i++) {
        c[i] = (struct crowd){w, NULL, i, 20000};
        cr_assert_eq(pthread_create(&th[i], NULL, ahead_main, &c[i]), 0);
    }
    for (uint32_t i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    cr_assert_eq(px__wal_flush(w), 0);
    struct px__wal_stats st;
    px__wal_stats(w, &st);
    cr_assert_gt(st.segments, 2, "the log changed segments");
    cr_assert_gt(st.zeroed, 0);
    cr_assert_gt(st.ready, st.bytes / 4, "%" PRIu64 " of %" PRIu64 " bytes written over zeros",
                 st.ready, st.bytes);
    /* A chunk starts at least 256 KiB ahead of the log, and a group here
     * is a few KiB: the log should almost never wait for zeros. */
    cr_assert_leq(st.zero_waits * 10, st.groups, "%" PRIu64 " of %" PRIu64 " groups waited",
                  st.zero_waits, st.groups);
    px__wal_close(w);
    expect_records(4, 20000);
}

/*
 * A writer killed (SIGKILL) at a random moment while its zeroer is at work:
 * the zeroer may be in the middle of a chunk, or between its write and its
 * flush. Every record whose wait returned must still be in the log, once,
 * and the zeros must not have cut the log short or made a record up.
 */
#define KILLS 6
struct killed {
    _Atomic uint32_t acked[KILLS];   /* records whose wait returned */
    _Atomic uint32_t zeroing[KILLS]; /* 1 once the child saw zeros written */
};

static void killed_child(struct killed *k, uint32_t t)
{
    struct px__wal_opts o = wal_opts(1, 1, 1u << 20);
    struct px__wal *w;
    if (px__wal_open(&o, &w) != 0)
        _exit(2);
    for (uint32_t n = 0;; n++) {
        uint64_t ticket = append(w, t, n);
        if (n % 20 != 19)
            continue;
        if (px__wal_wait(w, ticket) != 0)
            _exit(3);
        atomic_store(&k->acked[t], n + 1);
        struct px__wal_stats st;
        px__wal_stats(w, &st);
        if (st.zeroed)
            atomic_store(&k->zeroing[t], 1);
    }
}

Test(wal, a_writer_killed_while_its_zeroer_works_keeps_every_acked_record, .timeout = 60)
{
    struct killed *k =
        mmap(NULL, sizeof *k, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(k, MAP_FAILED);
    srand(px_test_seed());
    for (uint32_t t = 0; t < KILLS; t++) {
        pid_t pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0)
            killed_child(k, t);
        double end = px_test_now() + 20;
        while (!atomic_load(&k->zeroing[t]) && px_test_now() < end)
            usleep(200);
        cr_assert(atomic_load(&k->zeroing[t]), "child %u never wrote zeros", t);
        usleep((useconds_t)(rand() % 20000));
        kill(pid, SIGKILL);
        int status;
        cr_assert_eq(waitpid(pid, &status, 0), pid);
        cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "child %u: status %d", t,
                  status);
    }
    struct px__log l;
    cr_assert_eq(px__log_load(logdir, &l), 0);
    uint32_t found[KILLS] = {0}, most[KILLS] = {0};
    uint64_t child;
    uint32_t n;
    for (size_t i = 0; next_test_record(&l, &i, &child, &n); i++) {
        cr_assert_lt(child, KILLS, "a record no child appended");
        found[child]++;
        most[child] = n + 1 > most[child] ? n + 1 : most[child];
    }
    for (uint32_t t = 0; t < KILLS; t++) {
        uint32_t acked = atomic_load(&k->acked[t]);
        cr_assert_gt(acked, 0);
        /* Records 0..most-1 appear once each: a gap or a repeat would show
         * as found != most. */
        cr_assert_eq(found[t], most[t], "child %u: %u records, up to %u", t, found[t], most[t]);
        cr_assert_geq(most[t], acked, "child %u: %u acked, %u in the log", t, acked, most[t]);
    }
    px__log_free(&l);
    munmap(k, sizeof *k);
}

/* This process's threads, leaving out io_uring's own workers. */
static int threads_now(void)
{
    DIR *d = opendir("/proc/self/task");
    cr_assert_not_null(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        if (e->d_name[0] == '.')
            continue;
        char path[300], comm[32] = "";
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
        FILE *f = fopen(path, "r");
        if (f) {
            if (!fgets(comm, sizeof comm, f))
                comm[0] = '\0';
            fclose(f);
        }
        n += strncmp(comm, "iou-", 4) != 0;
    }
    closedir(d);
    return n;
}

/* A process that only looks at a sync region (pollux status, list, top)
 * writes no segment, so it must not start a zeroer either. */
Test(wal, the_zeroer_starts_with_the_first_segment)
{
    int before = threads_now();
    struct px__wal *w = open_wal_with(1, 1, 1u << 20);
    cr_assert_eq(threads_now(), before + 1, "only the log thread, before any record");
    cr_assert_eq(px__wal_wait(w, append(w, 0, 0)), 0);
    cr_assert_eq(threads_now(), before + 2, "the zeroer came with the first segment: %d, %d",
                 before, threads_now());
    px__wal_close(w);
    cr_assert_eq(threads_now(), before);
    expect_records(1, 1);
}

/* One appender at a time, each exiting before the next starts. */
static void *once_main(void *p)
{
    struct crowd *c = p;
    append(c->w, c->t, 0);
    return NULL;
}

Test(wal, the_ring_of_a_thread_that_exited_is_taken_over)
{
    struct px__wal *w = open_wal(10);
    /* Every private ring goes to a thread that then exits. */
    for (uint32_t i = 0; i < PX__WAL_RINGS - 1; i++) {
        pthread_t th;
        struct crowd c = {w, NULL, i, 1};
        cr_assert_eq(pthread_create(&th, NULL, once_main, &c), 0);
        pthread_join(th, NULL);
    }
    struct px__wal_stats st;
    px__wal_stats(w, &st);
    cr_assert_eq(st.shared_records, 0);
    append(w, PX__WAL_RINGS - 1, 0);
    px__wal_stats(w, &st);
    cr_assert_eq(st.shared_records, 0, "the new thread took an exited one's ring");
    cr_assert_eq(px__wal_flush(w), 0);
    px__wal_close(w);
    expect_records(PX__WAL_RINGS, 1);
}

/* A child forked by a thread that has a ring must not append to that
 * ring, which its parent's thread goes on appending to. */
Test(wal, a_forked_child_appends_beside_its_parent)
{
    struct px__wal *w = open_wal(1);
    const uint32_t per = 200000;
    append(w, 0, 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        atomic_store(&ct->ready, 1);
        while (!atomic_load(&ct->go))
            ;
        for (uint32_t n = 0; n < per; n++)
            append(w, 1, n);
        _exit(px__wal_flush(w) == 0 ? 0 : 1);
    }
    /* Both append at once. */
    while (!atomic_load(&ct->ready))
        ;
    atomic_store(&ct->go, 1);
    for (uint32_t n = 1; n < per; n++)
        append(w, 0, n);
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    cr_assert_eq(px__wal_flush(w), 0);
    px__wal_close(w);
    expect_records(2, per);
}

/* Appends one record, then keeps its ring (stays alive) until released. */
static _Atomic int release_holders;

static void *holder_main(void *p)
{
    struct crowd *c = p;
    append(c->w, c->t, 0);
    pthread_barrier_wait(c->all_alive);
    while (!atomic_load(&release_holders))
        usleep(1000);
    return NULL;
}

/* The shared ring's mutex is robust: a pool child killed by SIGKILL while
 * it holds it, in the middle of building a record, must block no one, and
 * its half-built record must never reach the log. */
Test(wal, a_child_killed_holding_the_shared_ring_blocks_no_one, .timeout = 30)
{
    struct px__wal *w = open_wal(1);
    enum { HOLDERS = PX__WAL_RINGS - 1 };
    pthread_t th[HOLDERS];
    struct crowd c[HOLDERS];
    pthread_barrier_t b;
    pthread_barrier_init(&b, NULL, HOLDERS + 1);
    for (uint32_t i = 0; i < HOLDERS; i++) {
        c[i] = (struct crowd){w, &b, i, 1};
        cr_assert_eq(pthread_create(&th[i], NULL, holder_main, &c[i]), 0);
    }
    pthread_barrier_wait(&b); /* every private ring is now a live thread's */
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        uint8_t *dst = px__wal_begin(w, 12); /* the shared ring, locked */
        if (dst)
            memset(dst, 0xab, 12);
        atomic_store(&ct->ready, 1);
        for (;;)
            pause();
    }
    while (!atomic_load(&ct->ready))
        usleep(100);
    cr_assert_eq(kill(pid, SIGKILL), 0);
    cr_assert_eq(waitpid(pid, NULL, 0), pid);
    struct px__wal_stats st;
    px__wal_stats(w, &st);
    uint64_t shared = st.shared_records;
    cr_assert_eq(px__wal_wait(w, append(w, HOLDERS, 0)), 0, "the shared ring is usable again");
    px__wal_stats(w, &st);
    cr_assert_eq(st.shared_records, shared + 1, "the record went through the shared ring");
    atomic_store(&release_holders, 1);
    for (uint32_t i = 0; i < HOLDERS; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&b);
    cr_assert_eq(px__wal_flush(w), 0);
    px__wal_close(w);
    expect_records(HOLDERS + 1, 1);
}

/* ---- A flush after writes that were not flushed ---------------------- */

static _Atomic int writes, flushes_after_write;
static struct px__io *inner;

static int count_write(struct px__io *io, int fd, const struct iovec *iov, int n, uint64_t off,
                       bool sync)
{
    (void)io;
    size_t len = 0;
    for (int i = 0; i < n; i++)
        len += iov[i].iov_len;
    if (len)
        atomic_store(&flushes_after_write, 0);
    if (sync)
        atomic_fetch_add(&flushes_after_write, 1);
    atomic_fetch_add(&writes, 1);
    return inner->ops->write(inner, fd, iov, n, off, sync);
}

static int count_prealloc(struct px__io *io, int fd, uint64_t off, uint64_t len)
{
    (void)io;
    return inner->ops->prealloc(inner, fd, off, len);
}

static void count_destroy(struct px__io *io)
{
    inner->ops->destroy(inner);
    free(io);
}

static const struct px__io_ops count_ops = {count_write, count_prealloc, count_destroy};

static int count_factory(struct px__io **out)
{
    int rc = px__io_default(&inner);
    if (rc)
        return rc;
    struct px__io *io = calloc(1, sizeof *io);
    io->ops = &count_ops;
    io->name = "count";
    *out = io;
    return 0;
}

/* Appends until the ring is half full, which has it written at once, and
 * waits until it is: nothing is left unwritten. (Counted here, not from
 * the stats: the log thread may have written the ring by the time they
 * are read.) */
static void fill_half_ring(struct px__wal *w, uint32_t *n)
{
    struct px__wal_stats st;
    px__wal_stats(w, &st);
    cr_assert_eq(st.unwritten, 0);
    for (uint64_t appended = 0; appended <= st.ring_bytes / 2; appended += px__rec_size(12))
        append(w, 0, (*n)++);
    do {
        usleep(1000);
        px__wal_stats(w, &st);
    } while (st.unwritten);
}

Test(wal, a_flush_makes_earlier_unflushed_writes_durable)
{
    px__io_set_factory(count_factory);
    /* A window far longer than the test: only half-full rings and the
     * flush make the log thread write. */
    struct px__wal *w = open_wal(60000);
    uint32_t n = 0;
    fill_half_ring(w, &n); /* the first group: flushed, the window has passed */
    fill_half_ring(w, &n); /* the next: written only, within the window */
    struct px__wal_stats st;
    px__wal_stats(w, &st);
    cr_assert_eq(st.groups, 2);
    cr_assert_eq(st.flushes, 1, "a group written for room is not flushed within the window");
    cr_assert_eq(atomic_load(&flushes_after_write), 0);
    cr_assert_eq(px__wal_flush(w), 0);
    cr_assert_eq(atomic_load(&flushes_after_write), 1, "the flush flushed the writes before it");
    px__wal_close(w);
    expect_records(1, n);
}

Test(wal, a_write_made_for_room_is_flushed_within_the_window_unasked)
{
    px__io_set_factory(count_factory);
    struct px__wal *w = open_wal(1000);
    uint32_t n = 0;
    fill_half_ring(w, &n);
    double t0 = px_test_now();
    fill_half_ring(w, &n);
    struct px__wal_stats st;
    px__wal_stats(w, &st);
    cr_assert_eq(st.flushes, 1, "the second group, within the window, was only written");
    cr_assert_eq(atomic_load(&flushes_after_write), 0);
    while (atomic_load(&flushes_after_write) == 0 && px_test_now() - t0 < 5)
        usleep(1000);
    cr_assert_eq(atomic_load(&flushes_after_write), 1, "flushed without a waiter");
    cr_assert_lt(px_test_now() - t0, 2.0, "by the end of its 1 s window, not much later");
    px__wal_close(w);
    expect_records(1, n);
}

/* The log thread's window between its read of the stop flag and its look
 * at the rings, held open once everything appended so far is written: the
 * test appends a record and closes while the log thread is inside it.
 * Reading the rings before the flag, it found nothing, then took the stop
 * for "nothing left" and exited without writing the record. */
static _Atomic int gap_state; /* 1: armed, 2: the log thread is inside, 3: go on */

static void hold_gap(struct px__wal *w)
{
    struct px__wal_stats s;
    px__wal_stats(w, &s);
    int armed = 1;
    if (s.records < 2 || s.unwritten != 0 || !atomic_compare_exchange_strong(&gap_state, &armed, 2))
        return;
    while (atomic_load(&gap_state) != 3)
        sched_yield();
}

static void *go_on_soon(void *p)
{
    usleep(20000); /* px__wal_close has set stop by then */
    atomic_store(&gap_state, 3);
    (void)p;
    return NULL;
}

Test(wal, a_record_appended_just_before_close_is_written)
{
    struct px__wal *w = open_wal(1000);
    cr_assert_eq(px__wal_wait(w, append(w, 0, 0)), 0);
    px__wal_set_gap(hold_gap);
    atomic_store(&gap_state, 1);
    /* Written at once (it is waited for); the log thread's next look
     * finds nothing unwritten and stops in the gap. */
    cr_assert_eq(px__wal_wait(w, append(w, 0, 1)), 0);
    double until = px_test_now() + 10;
    while (atomic_load(&gap_state) != 2)
        cr_assert(px_test_now() < until, "the log thread never reached the gap");
    append(w, 0, 2);
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, go_on_soon, NULL), 0);
    px__wal_close(w);
    pthread_join(t, NULL);
    px__wal_set_gap(NULL);
    expect_records(1, 3);
}

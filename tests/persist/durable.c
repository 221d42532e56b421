/*
 * Durable regions: what a region recovered from its log holds after its
 * shared memory is gone. Tasks are run on the test's own thread (px__take,
 * px__run) so that each state is staged exactly.
 */
#include "common.h"
#include "executor/executor.h"
#include "shm/region.h"
#include "persist/durable.h"
#include "persist/journal.h"
#include "persist/log.h"
#include "persist/wal.h"
#include "steps.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <xxhash.h>

static char rname[64], dir[64];

static void setup(void)
{
    px_test_tmpdir(dir, sizeof dir, "durable");
    px_test_name(rname, sizeof rname);
    px_region_destroy(rname);
}

static pid_t stopped_child; /* killed in teardown should a test fail */

static void teardown(void)
{
    if (stopped_child > 0)
        kill(stopped_child, SIGKILL);
    px_region_destroy(rname);
    px_test_rmtree(dir);
}

TestSuite(durable, .init = setup, .fini = teardown);

static int echo(px_ctx *ctx, const void *args, size_t len)
{
    return px_result(ctx, args, len);
}

static int fail_task(px_ctx *ctx, const void *args, size_t len)
{
    (void)args;
    (void)len;
    return px_fail(ctx, "no luck");
}

/* Opens the test's region with its log in dir/log; px_region_open's code. */
static int try_open_durable(px_durability d, px_region **r)
{
    char logdir[128];
    snprintf(logdir, sizeof logdir, "%s/log", dir);
    return px_region_open(rname,
                          &(px_region_opts){.capacity = 256,
                                            .max_payload = 4096,
                                            .arena_bytes = 64 * 4096,
                                            .lanes = 8,
                                            .lane_depth = 64,
                                            .durability = d,
                                            .log_dir = logdir},
                          r);
}

static px_region *open_durable(px_durability d, px_recovery_info *rec)
{
    px_region *r = NULL;
    int rc = try_open_durable(d, &r);
    cr_assert_eq(rc, 0, "open: %s", px_strerror(rc));
    cr_assert_eq(px_task_register(r, &(px_task_def){.name = "echo", .fn = echo, .mode = PX_THREAD}),
                 0);
    cr_assert_eq(
        px_task_register(r, &(px_task_def){.name = "fail", .fn = fail_task, .mode = PX_THREAD}), 0);
    if (rec)
        cr_assert_eq(px_region_recovery(r, rec), 0);
    return r;
}

static int segments(void)
{
    char logdir[128];
    snprintf(logdir, sizeof logdir, "%s/log", dir);
    DIR *d = opendir(logdir);
    cr_assert_not_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += strstr(e->d_name, ".wal") != NULL;
    closedir(d);
    return n;
}

/* Closes the handle and removes the shared memory: what a reboot does. */
static void lose_memory(px_region *r)
{
    cr_assert_eq(px_region_close(r), 0);
    cr_assert_eq(px_region_destroy(rname), 0);
}

static _Atomic int no_stop;

static int run_one(px_region *r)
{
    struct px__scan scan = {0};
    uint64_t claimed;
    px_id id = px__take(r, ~0ull, PX_THREAD, &scan, &claimed);
    if (!id)
        return 0;
    px__run(r, id, claimed, &no_stop, NULL, NULL, 0, NULL);
    return 1;
}

Test(durable, sync_submits_come_back_pending_with_their_args)
{
    px_region *r = open_durable(PX_DURABLE_SYNC, NULL);
    px_id ids[20];
    char args[20][200];
    for (int i = 0; i < 20; i++) {
        /* Inline and arena-sized args alike. */
        size_t n = i % 2 ? 200 : 10;
        memset(args[i], 'a' + i, n);
        cr_assert_eq(px_submit(r, "echo", args[i], n, NULL, &ids[i]), 0);
    }
    lose_memory(r);

    px_recovery_info rec;
    r = open_durable(PX_DURABLE_SYNC, &rec);
    cr_assert_eq(rec.restored, 20);
    cr_assert_eq(rec.pending, 20);
    cr_assert_eq(rec.finished, 0);
    cr_assert_eq(rec.bytes_cut, 0);
    for (int i = 0; i < 20; i++)
        cr_assert_eq(px_status(r, ids[i]), PX_PENDING, "task %d", i);
    while (run_one(r))
        ;
    for (int i = 0; i < 20; i++) {
        char out[256];
        size_t len;
        cr_assert_eq(px_join(r, ids[i], 1, out, sizeof out, &len), 0, "task %d", i);
        cr_assert_eq(len, i % 2 ? 200u : 10u);
        cr_assert_eq(memcmp(out, args[i], len), 0, "task %d's args came back intact", i);
    }
    px_region_close(r);
}

Test(durable, results_survive_and_forgotten_tasks_do_not_return)
{
    px_region *r = open_durable(PX_DURABLE_SYNC, NULL);
    px_id ok, bad, gone, detached;
    cr_assert_eq(px_submit(r, "echo", "kept", 4, NULL, &ok), 0);
    cr_assert_eq(px_submit(r, "fail", NULL, 0, NULL, &bad), 0);
    cr_assert_eq(px_submit(r, "echo", "x", 1, NULL, &gone), 0);
    cr_assert_eq(
        px_submit(r, "echo", "d", 1, &(px_submit_opts){.flags = PX_SUBMIT_DETACHED}, &detached), 0);
    while (run_one(r))
        ;
    cr_assert_eq(px_forget(r, gone), 0);
    lose_memory(r);

    px_recovery_info rec;
    r = open_durable(PX_DURABLE_SYNC, &rec);
    cr_assert_eq(rec.restored, 2, "the result and the failure, not the freed two");
    cr_assert_eq(rec.finished, 2);
    cr_assert_eq(rec.pending, 0);
    char out[16];
    size_t len;
    cr_assert_eq(px_join(r, ok, 0, out, sizeof out, &len), 0);
    cr_assert_eq(len, 4);
    cr_assert_eq(memcmp(out, "kept", 4), 0);
    px_task_info ti;
    cr_assert_eq(px_info(r, bad, &ti), 0);
    cr_assert_eq(ti.state, PX_FAILED);
    cr_assert_str_eq(ti.error, "no luck");
    cr_assert_eq(ti.attempts, 1);
    cr_assert_eq(px_status(r, gone), -ENOENT);
    cr_assert_eq(px_status(r, detached), -ENOENT);
    px_region_close(r);
}

Test(durable, a_running_task_comes_back_pending_with_its_attempt_counted)
{
    px_region *r = open_durable(PX_DURABLE_SYNC, NULL);
    px_id id;
    cr_assert_eq(px_submit(r, "echo", "r", 1, NULL, &id), 0);
    struct px__scan scan = {0};
    uint64_t claimed;
    cr_assert_eq(px__take(r, ~0ull, PX_THREAD, &scan, &claimed), id);
    /* The START record is written by the run, not the claim: log it as a
     * run that was cut short by a crash would have. */
    px__journal_start(r, NULL, id, 1);
    cr_assert_eq(px_status(r, id), PX_RUNNING);
    lose_memory(r);

    px_recovery_info rec;
    r = open_durable(PX_DURABLE_SYNC, &rec);
    cr_assert_eq(rec.pending, 1);
    px_task_info ti;
    cr_assert_eq(px_info(r, id, &ti), 0);
    cr_assert_eq(ti.state, PX_PENDING);
    cr_assert_eq(ti.attempts, 1);
    cr_assert_eq(run_one(r), 1);
    cr_assert_eq(px_info(r, id, &ti), 0);
    cr_assert_eq(ti.attempts, 2);
    cr_assert_eq(ti.state, PX_SUCCESS);
    px_region_close(r);
}

Test(durable, recovery_twice_keeps_ids_and_continues_the_lsns)
{
    px_region *r = open_durable(PX_DURABLE_SYNC, NULL);
    px_id a, b;
    cr_assert_eq(px_submit(r, "echo", "a", 1, NULL, &a), 0);
    lose_memory(r);
    px_recovery_info rec;
    r = open_durable(PX_DURABLE_SYNC, &rec);
    cr_assert_eq(rec.restored, 1);
    uint64_t lsn1 = rec.last_lsn;
    cr_assert_eq(px_submit(r, "echo", "b", 1, NULL, &b), 0);
    cr_assert_neq(a, b);
    lose_memory(r);
    cr_assert_eq(segments(), 2, "the first writer's and the recovering one's");
    r = open_durable(PX_DURABLE_SYNC, &rec);
    cr_assert_eq(rec.restored, 2);
    cr_assert_gt(rec.last_lsn, lsn1);
    /* A checkpoint rewrites both tasks and lets every older segment go. */
    uint64_t dropped;
    cr_assert_eq(px__checkpoint(r, &dropped), 0);
    cr_assert_eq(dropped, 2);
    cr_assert_eq(segments(), 1);
    cr_assert_eq(px_status(r, a), PX_PENDING);
    cr_assert_eq(px_status(r, b), PX_PENDING);
    lose_memory(r);
    r = open_durable(PX_DURABLE_SYNC, &rec);
    cr_assert_eq(rec.restored, 2, "the checkpoint alone rebuilds both");
    cr_assert_eq(px_status(r, a), PX_PENDING);
    px_region_close(r);
}

/* A writer publishes its next segment before it makes the file, and the
 * file is empty until its first record is written: a checkpoint that
 * reads it then must keep it, and keep the segment before it, whose
 * successor's head it cannot read yet. */
Test(durable, a_checkpoint_keeps_a_segment_its_writer_is_still_making)
{
    px_region *r = open_durable(PX_DURABLE_SYNC, NULL);
    cr_assert_eq(px_submit(r, "echo", "a", 1, NULL, NULL), 0);
    cr_assert_eq(segments(), 1);
    struct px__proc *me = &r->procs[r->self];
    uint64_t writer = atomic_load(&me->wal_writer);
    uint32_t seq = atomic_load(&me->wal_seq);
    char path[256];
    snprintf(path, sizeof path, "%s/log/%016llx-%06u.wal", dir, (unsigned long long)writer,
             seq + 1);
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL, 0600);
    cr_assert_geq(fd, 0);
    close(fd);
    atomic_store(&me->wal_seq, seq + 1);
    uint64_t dropped;
    cr_assert_eq(px__checkpoint(r, &dropped), 0);
    cr_assert_eq(dropped, 0);
    cr_assert_eq(segments(), 2);
    cr_assert_eq(access(path, F_OK), 0, "the segment being made is still there");
    atomic_store(&me->wal_seq, seq);
    cr_assert_eq(unlink(path), 0);
    px_region_close(r);
}

enum stop_at { BEFORE_LOG, MARKED, BEFORE_PUBLISH, BATCH_BEFORE_PUBLISH };

/* A child process that makes a submit's steps itself and stops with
 * SIGSTOP before logging the SUBMIT, after marking the slot but before the
 * record takes its LSN (MARKED), or before publishing the slot (after the
 * SUBMIT's flush: sync mode), as a producer descheduled there would;
 * BATCH_BEFORE_PUBLISH logs it as px_submit_many does, in a SUBMIT_MANY.
 * With a key, it claims the key first, as px_submit does. Once continued it
 * finishes the submit and exits. Returns its pid, stopped, and the task's
 * id. */
static pid_t producer_stopped(enum stop_at at, const char *key, px_id *id)
{
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        px_region *cr;
        px_id cid;
        if (px_region_open(rname, NULL, &cr) != 0 || px_test_reserve(cr, "echo", "held", 4, &cid))
            _exit(2);
        uint64_t hash = key ? px__key_hash(key, strlen(key)) : 0;
        if (hash) {
            px__keys_lock(cr, hash);
            int rc = px__keys_put(cr, hash, cid);
            px__keys_unlock(cr, hash);
            if (rc != 0)
                _exit(3);
        }
        if (write(fds[1], &cid, sizeof cid) != (ssize_t)sizeof cid)
            _exit(4);
        if (at == BEFORE_LOG)
            raise(SIGSTOP);
        if (at == MARKED) {
            /* The mark a SUBMIT sets before it takes its LSN, and no more. */
            atomic_store(&cr->slots[PX__ID_IDX(cid)].logged, PX__ID_GEN(cid));
            raise(SIGSTOP);
        }
        struct px__journal_many many = {0};
        int64_t ticket = at != BATCH_BEFORE_PUBLISH
                             ? px__journal_submit(cr, cid, 0, "held", 4, 0, hash)
                         : px__journal_many_add(cr, &many, cid, 0, "held", 4, 0) == 0
                             ? px__journal_many_end(cr, &many)
                             : -1;
        if (px__journal_wait(cr, ticket) != 0)
            _exit(5);
        if (at != BEFORE_LOG)
            raise(SIGSTOP);
        px_test_publish(cr, cid);
        _exit(px_region_close(cr) == 0 ? 0 : 6);
    }
    close(fds[1]);
    cr_assert_eq(read(fds[0], id, sizeof *id), (ssize_t)sizeof *id, "the child reserved its slot");
    close(fds[0]);
    int status;
    cr_assert_eq(waitpid(pid, &status, WUNTRACED), pid);
    cr_assert(WIFSTOPPED(status), "status 0x%x", status);
    stopped_child = pid;
    return pid;
}

static void reap_child(pid_t pid)
{
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status 0x%x", status);
    stopped_child = 0;
}

/* The held task, recovered, runs with its args. */
static void assert_held_task_runs(px_region *r, px_id id)
{
    cr_assert_eq(run_one(r), 1);
    char out[8];
    size_t len;
    cr_assert_eq(px_join(r, id, 1, out, sizeof out, &len), 0);
    cr_assert_eq(len, 4);
    cr_assert_arr_eq(out, "held", 4);
}

/* A checkpoint while the producer, stopped at `at`, holds its slot; then
 * the producer finishes its submit, the memory is lost, and the task must
 * come back. The checkpoint does not wait for the producer. */
static px_region *checkpoint_while_held(enum stop_at at, const char *key, px_id *id)
{
    px_region *r = open_durable(PX_DURABLE_SYNC, NULL);
    pid_t pid = producer_stopped(at, key, id);
    uint64_t dropped;
    double t0 = px_test_now();
    cr_assert_eq(px__checkpoint(r, &dropped), 0);
    cr_assert_lt(px_test_now() - t0, 0.5, "the checkpoint did not wait for the producer");
    cr_assert_eq(kill(pid, SIGCONT), 0);
    reap_child(pid);
    cr_assert_eq(px_status(r, *id), PX_PENDING);
    lose_memory(r);
    px_recovery_info rec;
    r = open_durable(PX_DURABLE_SYNC, &rec);
    cr_assert_eq(px_status(r, *id), PX_PENDING, "the task is back");
    return r;
}

/* A task whose SUBMIT is older than a checkpoint but whose slot is still
 * RESERVED when the checkpoint looks: the checkpoint writes it, with its
 * key. Skipping it would make a recovery that meets the checkpoint's end
 * forget a task its producer was told is durable. */
Test(durable, a_checkpoint_keeps_a_task_logged_but_not_yet_published, .timeout = 30)
{
    px_id id;
    px_region *r = checkpoint_while_held(BEFORE_PUBLISH, "k1", &id);
    px_id again;
    cr_assert_eq(px_submit(r, "echo", "x", 1, &(px_submit_opts){.key = "k1"}, &again), 1,
                 "the key came back with its task");
    cr_assert_eq(again, id);
    assert_held_task_runs(r, id);
    px_region_close(r);
}

/* The same for a task a batch logged: px_submit_many marks each slot
 * before its SUBMIT_MANY takes its LSN, as px_submit does. */
Test(durable, a_checkpoint_keeps_a_batch_task_logged_but_not_yet_published, .timeout = 30)
{
    px_id id;
    px_region *r = checkpoint_while_held(BATCH_BEFORE_PUBLISH, NULL, &id);
    assert_held_task_runs(r, id);
    px_region_close(r);
}

/* A slot reserved but not yet logged when the checkpoint looks: its SUBMIT
 * comes after the checkpoint's begin and survives the checkpoint's end on
 * its own. */
Test(durable, a_task_logged_after_a_checkpoint_looked_survives_it, .timeout = 30)
{
    px_id id;
    px_region *r = checkpoint_while_held(BEFORE_LOG, NULL, &id);
    assert_held_task_runs(r, id);
    px_region_close(r);
}

/* A producer killed while it held a logged task never returned from its
 * submit. The checkpoint copied the task; the reaper that frees the dead
 * producer's slot logs a FREE after the copy, so the task, never
 * acknowledged, does not come back after a crash. */
static void dead_producers_copy_does_not_return(enum stop_at at)
{
    px_region *r = open_durable(PX_DURABLE_SYNC, NULL);
    px_id id;
    pid_t pid = producer_stopped(at, NULL, &id);
    uint64_t dropped;
    cr_assert_eq(px__checkpoint(r, &dropped), 0);
    cr_assert_eq(kill(pid, SIGKILL), 0);
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    stopped_child = 0;
    cr_assert_geq(px__reap(r), 0);
    cr_assert_eq(px_status(r, id), -ENOENT, "the reaper freed the slot");
    cr_assert_eq(px__wal_flush(r->wal), 0);
    lose_memory(r);
    px_recovery_info rec;
    r = open_durable(PX_DURABLE_SYNC, &rec);
    cr_assert_eq(px_status(r, id), -ENOENT, "the task whose submit never returned stays gone");
    px_region_close(r);
}

Test(durable, a_dead_producers_logged_task_copied_by_a_checkpoint_does_not_return, .timeout = 30)
{
    dead_producers_copy_does_not_return(BEFORE_PUBLISH);
}

/* The same for a producer killed between its mark and its record's LSN:
 * the checkpoint copied a task whose SUBMIT was never written at all. */
Test(durable, a_task_marked_but_never_logged_by_a_dead_producer_does_not_return, .timeout = 30)
{
    dead_producers_copy_does_not_return(MARKED);
}

/* A delayed task held RESERVED (logged, flushed, not yet in the timer
 * heap) when a checkpoint copies it keeps its due time: the copy must not
 * turn it into a task that runs at once after a crash. */
Test(durable, a_checkpoints_copy_of_a_held_delayed_task_keeps_its_due_time, .timeout = 30)
{
    px_region *r = open_durable(PX_DURABLE_SYNC, NULL);
    px_id id;
    cr_assert_eq(px_test_reserve(r, "echo", "held", 4, &id), 0);
    uint64_t due = (uint64_t)time(NULL) * 1000000000ull + 3600ull * 1000000000ull;
    cr_assert_eq(px__journal_wait(r, px__journal_submit(r, id, 0, "held", 4, due, 0)), 0);
    uint64_t dropped;
    cr_assert_eq(px__checkpoint(r, &dropped), 0);
    lose_memory(r);
    px_recovery_info rec;
    r = open_durable(PX_DURABLE_SYNC, &rec);
    cr_assert_eq(px_status(r, id), PX_SCHEDULED, "still waiting for its time");
    px_task_info ti;
    cr_assert_eq(px_info(r, id, &ti), 0);
    cr_assert_eq(ti.next_run_ns, due);
    px_region_close(r);
}

/* A checkpoint may copy a keyed task without its key (it read the keys
 * before the task claimed its own): replay keeps the key of the task's
 * earlier SUBMIT, since a live task holds its key until it finishes. */
Test(durable, a_keyless_copy_of_a_keyed_task_keeps_its_key)
{
    px_region *r = open_durable(PX_DURABLE_SYNC, NULL);
    px_id id, again;
    cr_assert_eq(px_submit(r, "echo", "k", 1, &(px_submit_opts){.key = "once"}, &id), 0);
    cr_assert_geq(px__journal_wait(r, px__journal_copy(r, id, 0, "k", 1, 0, 0, 0, 0)), 0);
    lose_memory(r);
    px_recovery_info rec;
    r = open_durable(PX_DURABLE_SYNC, &rec);
    cr_assert_eq(px_submit(r, "echo", "k", 1, &(px_submit_opts){.key = "once"}, &again), 1,
                 "the key still names the live task");
    cr_assert_eq(again, id);
    px_region_close(r);
}

/* Finished tasks whose args and results together never fit the arena at
 * once: the args were released as each finished, and recovery restores
 * only the results, as the memory held them. */
Test(durable, finished_tasks_come_back_without_their_args)
{
    enum { N = 50, LEN = 3000 };
    px_region *r = open_durable(PX_DURABLE_SYNC, NULL);
    static uint8_t args[LEN];
    px_id ids[N];
    for (int i = 0; i < N; i++) {
        memset(args, 'a' + i % 26, sizeof args);
        cr_assert_eq(px_submit(r, "echo", args, sizeof args, NULL, &ids[i]), 0, "submit %d", i);
        cr_assert_eq(run_one(r), 1);
    }
    px_region_info info;
    cr_assert_eq(px_region_info_get(r, &info), 0);
    cr_assert_lt(info.arena_used + N * LEN, info.arena_bytes * 2,
                 "results alone fit; results and args would not");
    cr_assert_gt(info.arena_used + N * LEN, info.arena_bytes);
    lose_memory(r);
    px_recovery_info rec;
    r = open_durable(PX_DURABLE_SYNC, &rec);
    cr_assert_eq(rec.restored, N);
    static uint8_t out[LEN];
    size_t len;
    cr_assert_eq(px_join(r, ids[N - 1], 1, out, sizeof out, &len), 0);
    cr_assert_eq(len, LEN);
    cr_assert_eq(out[0], 'a' + (N - 1) % 26);
    px_region_close(r);
}

/* One round of the lifetimes test: task a is submitted and then, through
 * a second writer, cancelled and forgotten; the region is lost and rebuilt;
 * task b is submitted in a's slot; the second writer's segment (the FREE) is gone, as
 * a checkpoint deletes a segment while keeping an older one of another
 * writer whose next segment has no readable head. Returns whether b's
 * generation compares "older" than a's, the case that lost b when
 * generations were compared across lifetimes. */
static bool lifetimes_round(void)
{
    px_region *r = open_durable(PX_DURABLE_SYNC, NULL);
    px_region *second = NULL;
    cr_assert_eq(px_region_open(rname, NULL, &second), 0);
    px_id a, b;
    cr_assert_eq(px_submit(r, "echo", "a", 1, NULL, &a), 0);
    cr_assert_eq(px_cancel(second, a), 0);
    cr_assert_eq(px_forget(second, a), 0);
    cr_assert_eq(px__wal_flush(second->wal), 0, "the FREE is in the second writer's segment");
    char gone[256];
    snprintf(gone, sizeof gone, "%s/log/%016llx-%06u.wal", dir,
             (unsigned long long)atomic_load(&second->procs[second->self].wal_writer),
             atomic_load(&second->procs[second->self].wal_seq));
    cr_assert_eq(px_region_close(second), 0);
    lose_memory(r);
    px_recovery_info rec;
    r = open_durable(PX_DURABLE_SYNC, &rec);
    cr_assert_eq(rec.restored, 0, "a was forgotten");
    /* Slots are taken in no fixed order: submit until one lands in a's
     * (delayed, so that they wait in the timer heap, not in a lane). */
    px_submit_opts later = {.delay_s = 3600};
    int n = 0;
    do
        cr_assert_eq(px_submit(r, "echo", "b", 1, &later, &b), 0, "submit %d", n);
    while (PX__ID_IDX(b) != PX__ID_IDX(a) && ++n < 256);
    cr_assert_eq(PX__ID_IDX(b), PX__ID_IDX(a));
    cr_assert_eq(unlink(gone), 0, "%s", gone);
    lose_memory(r);
    r = open_durable(PX_DURABLE_SYNC, &rec);
    cr_assert_eq(px_status(r, b), PX_SCHEDULED, "the task of the later lifetime is back");
    lose_memory(r);
    px_test_rmtree(dir);
    cr_assert_eq(mkdir(dir, 0700), 0);
    return (int32_t)(PX__ID_GEN(b) - PX__ID_GEN(a)) < 0;
}

/* Each rebuilt region draws its slots' generations afresh, so a slot's
 * next task may carry a generation that compares older than a task of the
 * region's earlier life still in the log. Replay must let the later record
 * win there, not skip it as a stale copy. Rounds repeat until that case
 * came up three times (each round has an even chance of it). */
Test(durable, a_task_of_a_later_lifetime_wins_its_slot, .timeout = 120)
{
    int hits = 0;
    for (int round = 0; round < 64 && hits < 3; round++)
        hits += lifetimes_round();
    cr_assert_geq(hits, 1, "the case never came up: the test checked nothing");
}

/* Counts the log's START records that carry a freed task, and whether a
 * FREE or a START names `freed` as freed. */
static int starts_with_free(px_id freed, bool *found)
{
    char logdir[128];
    snprintf(logdir, sizeof logdir, "%s/log", dir);
    struct px__log l;
    cr_assert_eq(px__log_load(logdir, &l), 0);
    int n = 0;
    *found = false;
    for (size_t i = 0; i < l.nrecs; i++) {
        const struct px__rec *rec = l.recs[i];
        uint64_t id, f = px__rec_start_freed(rec);
        uint32_t att;
        n += f != 0;
        *found |= f == freed ||
                  (rec->type == PX__REC_FREE && px__rec_id_get(rec, &id, &att) && id == freed);
    }
    px__log_free(&l);
    return n;
}

static void wait_succeeded(px_workers *w, uint64_t n)
{
    px_workers_stats st;
    double t0 = px_test_now();
    do {
        cr_assert_eq(px_workers_stats_get(w, &st), 0);
        cr_assert_lt(px_test_now() - t0, 10, "%llu of %llu ran", (unsigned long long)st.succeeded,
                     (unsigned long long)n);
        usleep(1000);
    } while (st.succeeded < n);
}

/* A worker thread logs a detached task's FREE with its next START: the
 * records say each task is gone all the same, and none comes back. */
Test(durable, detached_tasks_run_by_a_worker_do_not_come_back, .timeout = 60)
{
    enum { N = 60 }; /* a lane holds 64 */
    px_region *r = open_durable(PX_DURABLE_SYNC, NULL);
    px_job jobs[N];
    px_id ids[N];
    for (int i = 0; i < N; i++)
        jobs[i] = (px_job){.task = "echo", .args = "d", .len = 1};
    px_submit_opts detached = {.flags = PX_SUBMIT_DETACHED};
    cr_assert_eq(px_submit_many(r, jobs, N, &detached, ids), N);
    px_workers *w;
    cr_assert_eq(px_workers_start(r, &(px_workers_opts){.threads = 1}, &w), 0);
    wait_succeeded(w, N);
    cr_assert_eq(px_workers_stop(w), 0);
    cr_assert_eq(px__wal_flush(r->wal), 0);
    bool last_freed;
    int folded = starts_with_free(ids[N - 1], &last_freed);
    cr_assert_gt(folded, N / 2, "most FREEs rode on a START (%d)", folded);
    cr_assert(last_freed, "the last task's FREE was paid when the worker stopped");
    lose_memory(r);
    px_recovery_info rec;
    r = open_durable(PX_DURABLE_SYNC, &rec);
    cr_assert_eq(rec.restored, 0, "%llu finished tasks came back",
                 (unsigned long long)rec.restored);
    px_region_close(r);
}

/* A worker with nothing more to run pays the FREE it owes at once, not at
 * its next task, which may be long in coming. */
Test(durable, an_idle_worker_logs_the_free_it_owes, .timeout = 60)
{
    px_region *r = open_durable(PX_DURABLE_SYNC, NULL);
    px_workers *w;
    cr_assert_eq(px_workers_start(r, &(px_workers_opts){.threads = 1}, &w), 0);
    px_id id;
    px_submit_opts detached = {.flags = PX_SUBMIT_DETACHED};
    cr_assert_eq(px_submit(r, "echo", "i", 1, &detached, &id), 0);
    wait_succeeded(w, 1);
    bool freed = false;
    double t0 = px_test_now();
    while (!freed && px_test_now() - t0 < 5) {
        cr_assert_eq(px__wal_flush(r->wal), 0);
        starts_with_free(id, &freed);
        usleep(5000);
    }
    cr_assert(freed, "the FREE of the last task is in the log while the worker idles");
    cr_assert_eq(px_workers_stop(w), 0);
    px_region_close(r);
}

Test(durable, async_mode_writes_within_its_window)
{
    px_region *r = open_durable(PX_DURABLE_ASYNC, NULL);
    px_id id;
    cr_assert_eq(px_submit(r, "echo", "z", 1, NULL, &id), 0);
    /* Closing writes everything out. */
    lose_memory(r);
    px_recovery_info rec;
    r = open_durable(PX_DURABLE_ASYNC, &rec);
    cr_assert_eq(rec.restored, 1,
                 "restored %llu from %llu records in %llu segments, %llu bytes cut",
                 (unsigned long long)rec.restored, (unsigned long long)rec.records,
                 (unsigned long long)rec.segments, (unsigned long long)rec.bytes_cut);
    cr_assert_eq(px_status(r, id), PX_PENDING);
    px_region_close(r);
}

Test(durable, a_region_that_is_not_durable_writes_no_log)
{
    px_region *r = open_durable(PX_DURABLE_NONE, NULL);
    cr_assert_eq(px_submit(r, "echo", "z", 1, NULL, NULL), 0);
    px_region_close(r);
    char logdir[128];
    snprintf(logdir, sizeof logdir, "%s/log", dir);
    cr_assert_eq(access(logdir, F_OK), -1);
    cr_assert_eq(errno, ENOENT);
}

/* Tasks come and go while a few stay: checkpoints keep the log to a few
 * segments, and a recovery after them finds exactly the tasks that
 * stayed, although their submits were in segments long deleted. */
Test(durable, checkpoints_bound_the_log_while_tasks_come_and_go)
{
    px_region *r;
    char logdir[128];
    snprintf(logdir, sizeof logdir, "%s/log", dir);
    px_region_opts o = {.capacity = 512,
                        .max_payload = 4096,
                        .arena_bytes = 64 * 4096,
                        .lanes = 8,
                        .lane_depth = 256,
                        .reap_interval_s = 0.005,
                        .durability = PX_DURABLE_SYNC,
                        .segment_bytes = 65536,
                        .log_dir = logdir};
    cr_assert_eq(px_region_open(rname, &o, &r), 0);
    cr_assert_eq(px_task_register(r, &(px_task_def){.name = "echo", .fn = echo, .mode = PX_THREAD}),
                 0);
    cr_assert_eq(
        px_task_register(
            r, &(px_task_def){.name = "later", .fn = echo, .mode = PX_THREAD, .queue = "later"}),
        0);
    px_id keep[10];
    for (int i = 0; i < 10; i++)
        cr_assert_eq(px_submit(r, "later", "keep", 4, NULL, &keep[i]), 0);
    px_workers *w;
    cr_assert_eq(px_workers_start(r, &(px_workers_opts){.threads = 1, .queues = "default"}, &w), 0);
    char args[300];
    memset(args, 'x', sizeof args);
    const px_submit_opts det = {.timeout_s = 5, .flags = PX_SUBMIT_DETACHED};
    for (int i = 0; i < 3000; i++)
        cr_assert_eq(px_submit(r, "echo", args, sizeof args, &det, NULL), 0);
    /* Let the workers finish and the supervisor see the log's growth. */
    px_region_info info = {0};
    for (int i = 0; i < 500; i++) {
        cr_assert_eq(px_region_info_get(r, &info), 0);
        if (info.slots_used == 10 && segments() <= 3)
            break;
        usleep(10000);
    }
    cr_assert_eq(info.slots_used, 10, "the churn ran");
    cr_assert_eq(px_workers_stop(w), 0);
    int n = segments();
    cr_assert_leq(n, 3, "%d segments after 3000 tasks in 64 KiB segments", n);
    lose_memory(r);

    px_recovery_info rec;
    r = open_durable(PX_DURABLE_SYNC, &rec);
    cr_assert_eq(rec.restored, 10, "only the tasks that stayed: %lu", (unsigned long)rec.restored);
    for (int i = 0; i < 10; i++)
        cr_assert_eq(px_status(r, keep[i]), PX_PENDING);
    px_region_close(r);
}

/* A process-mode task is finished by a pool child, which writes its own
 * log: its FINISH record survives too. */
Test(durable, a_pool_child_logs_what_it_finishes)
{
    px_region *r = open_durable(PX_DURABLE_SYNC, NULL);
    cr_assert_eq(
        px_task_register(r, &(px_task_def){.name = "pecho", .fn = echo, .mode = PX_PROCESS}), 0);
    px_workers *w;
    cr_assert_eq(px_workers_start(r, &(px_workers_opts){.threads = 1, .processes = 1}, &w), 0);
    px_id id;
    cr_assert_eq(px_submit(r, "pecho", "child", 5, NULL, &id), 0);
    char out[16];
    size_t len;
    cr_assert_eq(px_join(r, id, 10, out, sizeof out, &len), 0);
    cr_assert_eq(px_workers_stop(w), 0);
    lose_memory(r);

    px_recovery_info rec;
    r = open_durable(PX_DURABLE_SYNC, &rec);
    cr_assert_eq(rec.finished, 1);
    cr_assert_eq(px_try_join(r, id, out, sizeof out, &len), 0);
    cr_assert_eq(len, 5);
    cr_assert_eq(memcmp(out, "child", 5), 0);
    px_region_close(r);
}

/* The memory survived but the log lost what it said: the first process to
 * attach writes the memory's state to the log. */
Test(durable, a_log_behind_the_surviving_memory_is_brought_up_to_it)
{
    px_region *r = open_durable(PX_DURABLE_ASYNC, NULL);
    px_id ids[5];
    for (int i = 0; i < 5; i++)
        cr_assert_eq(px_submit(r, "echo", "b", 1, NULL, &ids[i]), 0);
    cr_assert_eq(px_region_close(r), 0);
    char logdir[128];
    snprintf(logdir, sizeof logdir, "%s/log", dir);
    px_test_rmtree(logdir); /* every record lost; the memory keeps the tasks */

    px_recovery_info rec;
    r = open_durable(PX_DURABLE_ASYNC, &rec);
    cr_assert_eq(rec.log_behind, 5);
    cr_assert_eq(rec.log_ahead, 0);
    lose_memory(r);
    r = open_durable(PX_DURABLE_ASYNC, &rec);
    cr_assert_eq(rec.restored, 5, "the checkpoint carried the memory's tasks");
    for (int i = 0; i < 5; i++)
        cr_assert_eq(px_status(r, ids[i]), PX_PENDING);
    px_region_close(r);
}

/* The log holds a task the memory freed without a record of it (a FREE
 * lost): the memory wins, and the task does not come back. */
Test(durable, a_log_ahead_of_the_surviving_memory_is_corrected)
{
    px_region *r = open_durable(PX_DURABLE_SYNC, NULL);
    px_id ids[3];
    for (int i = 0; i < 3; i++)
        cr_assert_eq(px_submit(r, "echo", "a", 1, NULL, &ids[i]), 0);
    uint32_t idx = PX__ID_IDX(ids[1]);
    cr_assert(px__slot_free(r, idx, atomic_load(&r->slots[idx].ctl)), "freed, unlogged");
    cr_assert_eq(px_region_close(r), 0);

    px_recovery_info rec;
    r = open_durable(PX_DURABLE_SYNC, &rec);
    cr_assert_eq(rec.log_ahead, 1);
    cr_assert_eq(rec.log_behind, 0);
    lose_memory(r);
    r = open_durable(PX_DURABLE_SYNC, &rec);
    cr_assert_eq(rec.restored, 2);
    cr_assert_eq(px_status(r, ids[1]), -ENOENT);
    px_region_close(r);
}

/* Memory and log that agree: nothing is rewritten. */
Test(durable, a_log_that_agrees_with_the_memory_is_left_alone)
{
    px_region *r = open_durable(PX_DURABLE_SYNC, NULL);
    cr_assert_eq(px_submit(r, "echo", "a", 1, NULL, NULL), 0);
    cr_assert_eq(px_region_close(r), 0);
    px_recovery_info rec;
    r = open_durable(PX_DURABLE_SYNC, &rec);
    cr_assert_eq(rec.log_behind + rec.log_ahead, 0);
    cr_assert_eq(segments(), 1, "no checkpoint was written");
    px_region_close(r);
}

/* n jobs of task, job i with the 4-byte args i. */
static void numbered_jobs(px_job *jobs, uint32_t *args, uint32_t n, const char *task)
{
    for (uint32_t i = 0; i < n; i++) {
        args[i] = i;
        jobs[i] = (px_job){.task = task, .args = &args[i], .len = sizeof args[i]};
    }
}

/* A sync px_submit_many waits once for many chunks of tasks, not once per
 * chunk, and every task it acknowledged comes back after a reboot, in
 * whichever queue it went to. */
Test(durable, a_sync_batch_is_one_flush_and_comes_back_whole)
{
    char logdir[128];
    snprintf(logdir, sizeof logdir, "%s/log", dir);
    px_region_opts o = {.capacity = 8192,
                        .lanes = 8,
                        .lane_depth = 4096,
                        .durability = PX_DURABLE_SYNC,
                        .log_dir = logdir};
    px_region *r;
    cr_assert_eq(px_region_open(rname, &o, &r), 0);
    px_task_def a = {.name = "echo", .fn = echo, .mode = PX_THREAD};
    px_task_def b = {.name = "echo_b", .fn = echo, .mode = PX_THREAD, .queue = "b"};
    cr_assert_eq(px_task_register(r, &a), 0);
    cr_assert_eq(px_task_register(r, &b), 0);
    enum { N = 1024 };
    static px_job jobs[N];
    static px_id ids[N];
    static uint32_t args[N];
    numbered_jobs(jobs, args, N, "echo");
    struct px__wal_stats before, after;
    px__wal_stats(r->wal, &before);
    cr_assert_eq(px_submit_many(r, jobs, N, NULL, ids), N);
    px__wal_stats(r->wal, &after);
    cr_assert_eq(after.flushes - before.flushes, 1, "one flush for %d tasks, not %" PRIu64, N,
                 after.flushes - before.flushes);
    /* Every 10th task to another queue: chunks close on each change. */
    for (uint32_t i = 0; i < N; i += 10)
        jobs[i].task = "echo_b";
    static px_id more[N];
    cr_assert_eq(px_submit_many(r, jobs, N, NULL, more), N);
    lose_memory(r);

    px_recovery_info rec;
    cr_assert_eq(px_region_open(rname, &o, &r), 0);
    cr_assert_eq(px_region_recovery(r, &rec), 0);
    cr_assert_eq(rec.restored, 2 * N);
    cr_assert_eq(rec.pending, 2 * N);
    for (uint32_t i = 0; i < N; i++) {
        cr_assert_eq(px_status(r, ids[i]), PX_PENDING, "task %u", i);
        cr_assert_eq(px_status(r, more[i]), PX_PENDING, "task %u", i);
        px_task_info info;
        cr_assert_eq(px_info(r, more[i], &info), 0);
        cr_assert_str_eq(info.queue, i % 10 ? "default" : "b");
    }
    px_region_close(r);
}

/* A batch logs its tasks in shared SUBMIT_MANY records: each task still
 * comes back with its own task name, args (inline or in the arena) and the
 * call's priority and due time, and a name change in the middle of the call
 * starts a new record without losing a task. */
Test(durable, a_batchs_tasks_come_back_with_their_own_names_args_and_options)
{
    px_region *r = open_durable(PX_DURABLE_SYNC, NULL);
    enum { N = 30 };
    px_job jobs[N];
    px_id now_ids[N], later_ids[N];
    static char args[N][300];
    size_t lens[N];
    for (int i = 0; i < N; i++) {
        lens[i] = (size_t)(i % 3 == 0 ? 0 : i % 3 == 1 ? 17 : 300);
        memset(args[i], 'A' + i, lens[i]);
        jobs[i] = (px_job){.task = i % 7 < 4 ? "echo" : "fail", .args = args[i], .len = lens[i]};
    }
    px_submit_opts high = {.priority = PX_PRIORITY_HIGH};
    cr_assert_eq(px_submit_many(r, jobs, N, &high, now_ids), N);
    px_submit_opts later = {.delay_s = 1000};
    cr_assert_eq(px_submit_many(r, jobs, N, &later, later_ids), N);
    px_task_info before;
    cr_assert_eq(px_info(r, later_ids[0], &before), 0);
    lose_memory(r);

    px_recovery_info rec;
    r = open_durable(PX_DURABLE_SYNC, &rec);
    cr_assert_eq(rec.restored, 2 * N);
    cr_assert_eq(rec.pending, N);
    cr_assert_eq(rec.orphans, 0);
    for (int i = 0; i < N; i++) {
        px_task_info info;
        cr_assert_eq(px_info(r, now_ids[i], &info), 0);
        cr_assert_str_eq(info.name, jobs[i].task, "task %d", i);
        cr_assert_eq(info.state, PX_PENDING);
        cr_assert_eq(info.priority, PX_PRIORITY_HIGH, "task %d", i);
        cr_assert_eq(px_info(r, later_ids[i], &info), 0);
        cr_assert_str_eq(info.name, jobs[i].task, "task %d", i);
        cr_assert_eq(info.state, PX_SCHEDULED, "task %d", i);
        cr_assert_eq(info.priority, PX_PRIORITY_NORMAL);
        cr_assert_eq(info.next_run_ns, before.next_run_ns, "task %d keeps the call's due time", i);
    }
    while (run_one(r))
        ;
    for (int i = 0; i < N; i++) {
        char out[512];
        size_t len;
        int rc = px_join(r, now_ids[i], 1, out, sizeof out, &len);
        if (i % 7 >= 4) {
            cr_assert_eq(rc, PX_ETASKFAILED, "task %d", i);
            continue;
        }
        cr_assert_eq(rc, 0, "task %d", i);
        cr_assert_eq(len, lens[i]);
        cr_assert(len == 0 || memcmp(out, args[i], len) == 0, "task %d's args came back", i);
    }
    px_region_close(r);
}

static _Atomic uint32_t tallied;

static int tally(px_ctx *ctx, const void *args, size_t len)
{
    (void)ctx;
    (void)args;
    (void)len;
    atomic_fetch_add(&tallied, 1);
    return 0;
}

/* A batch that runs out of slots in the middle waits for room with its
 * open record closed (journal.h): the worker, whose STARTs go to the same
 * log, frees the room, every task runs once, and none comes back after a
 * reboot, since each was run and freed. */
Test(durable, a_batch_that_waits_for_room_loses_nothing, .timeout = 60)
{
    px_region *r = open_durable(PX_DURABLE_SYNC, NULL);
    cr_assert_eq(
        px_task_register(r, &(px_task_def){.name = "tally", .fn = tally, .mode = PX_THREAD}), 0);
    enum { N = 3000 }; /* the region holds 256 */
    static px_job jobs[N];
    static px_id ids[N];
    static uint32_t args[N];
    numbered_jobs(jobs, args, N, "tally");
    atomic_store(&tallied, 0);
    px_workers *w;
    cr_assert_eq(px_workers_start(r, &(px_workers_opts){.threads = 1}, &w), 0);
    px_submit_opts wait = {.timeout_s = 30, .flags = PX_SUBMIT_DETACHED};
    cr_assert_eq(px_submit_many(r, jobs, N, &wait, ids), N);
    double t0 = px_test_now();
    while (atomic_load(&tallied) < N && px_test_now() - t0 < 30)
        usleep(1000);
    cr_assert_eq(px_workers_stop(w), 0);
    cr_assert_eq(atomic_load(&tallied), N, "every task ran once");
    lose_memory(r);

    px_recovery_info rec;
    r = open_durable(PX_DURABLE_SYNC, &rec);
    cr_assert_eq(rec.restored, 0, "%" PRIu64 " tasks came back", rec.restored);
    px_region_close(r);
}

/* A digest of every file in a directory: names, sizes and bytes. */
static uint64_t dir_digest(const char *path)
{
    DIR *d = opendir(path);
    cr_assert_not_null(d);
    uint64_t sum = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char f[512];
        snprintf(f, sizeof f, "%s/%s", path, e->d_name);
        int fd = open(f, O_RDONLY);
        cr_assert_geq(fd, 0);
        off_t size = lseek(fd, 0, SEEK_END);
        uint8_t *p = malloc(size > 0 ? (size_t)size : 1);
        cr_assert_not_null(p);
        cr_assert_eq(pread(fd, p, (size_t)size, 0), (ssize_t)size);
        close(fd);
        /* Order-free: a sum of each file's own digest. */
        sum += XXH3_64bits_withSeed(p, (size_t)size, XXH3_64bits(e->d_name, strlen(e->d_name)));
        free(p);
    }
    closedir(d);
    return sum;
}

/* A log holding a segment of a later format (one a newer build wrote) is
 * not recovered: this build cannot read all its records, and would cut
 * the log at the first. The open fails with PX_EVERSION and changes no
 * file; without that segment the same log recovers. */
Test(durable, a_log_of_a_later_format_is_refused_and_left_alone, .timeout = 30)
{
    px_region *r = open_durable(PX_DURABLE_SYNC, NULL);
    px_id ids[3];
    for (int i = 0; i < 3; i++)
        cr_assert_eq(px_submit(r, "echo", "v", 1, NULL, &ids[i]), 0);
    cr_assert_eq(px_region_close(r), 0);
    cr_assert_eq(px_region_destroy(rname), 0);
    char logdir[128], later[256];
    snprintf(logdir, sizeof logdir, "%s/log", dir);
    snprintf(later, sizeof later, "%s/00000000000000ff-1.wal", logdir);
    uint8_t head[256] = {0};
    struct px__put w = {head + PX__REC_HDR, 0, sizeof head - PX__REC_HDR, false};
    px__rec_segment_put(&w, &(struct px__rec_segment){.writer = 0xff,
                                                      .seq = 1,
                                                      .cut_prev = UINT64_MAX,
                                                      .capacity = 256,
                                                      .format = PX__LOG_FORMAT + 1});
    size_t n = px__rec_seal(head, PX__REC_SEGMENT, 1000, (uint32_t)w.len);
    int fd = open(later, O_WRONLY | O_CREAT | O_EXCL, 0600);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, head, n), (ssize_t)n);
    close(fd);

    uint64_t before = dir_digest(logdir);
    px_region *rr = NULL;
    int rc = try_open_durable(PX_DURABLE_SYNC, &rr);
    cr_assert_eq(rc, PX_EVERSION, "open: %s", px_strerror(rc));
    cr_assert_null(rr);
    cr_assert_eq(px_region_destroy(rname), -ENOENT, "no region was left behind");
    cr_assert_eq(dir_digest(logdir), before, "the log is as it was");

    cr_assert_eq(unlink(later), 0);
    px_recovery_info rec;
    r = open_durable(PX_DURABLE_SYNC, &rec);
    cr_assert_eq(rec.restored, 3);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(px_status(r, ids[i]), PX_PENDING);
    px_region_close(r);
}

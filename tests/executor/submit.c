/*
 * Submitting: args inline and in the arena, limits, batches, concurrency.
 * Tasks are run on the test's own thread (px__take + px__run), so results
 * are deterministic and no worker is needed.
 */
#include "common.h"
#include "executor/executor.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <string.h>

#define MAXP 8192u

static char rname[64];

static pid_t stopped_child; /* killed here should a test fail */

static void cleanup(void)
{
    if (stopped_child > 0)
        kill(stopped_child, SIGKILL);
    px_region_destroy(rname);
}

TestSuite(submit, .fini = cleanup);

static int echo(px_ctx *ctx, const void *args, size_t len)
{
    return px_result(ctx, args, len);
}

/* Appends its length so that two tasks are told apart. */
static int other(px_ctx *ctx, const void *args, size_t len)
{
    (void)args;
    uint32_t n = (uint32_t)len | 0x80000000u;
    return px_result(ctx, &n, sizeof n);
}

static px_region *open_r(uint32_t capacity, uint32_t lane_depth)
{
    px_region *r = px_test_region(rname, sizeof rname,
                                  &(px_region_opts){.capacity = capacity,
                                                    .max_payload = MAXP,
                                                    .arena_bytes = 64 * MAXP,
                                                    .lanes = 16,
                                                    .lane_depth = lane_depth});
    cr_assert_eq(px_task_register(r, &(px_task_def){.name = "echo", .fn = echo, .mode = PX_THREAD}),
                 0);
    cr_assert_eq(
        px_task_register(r, &(px_task_def){.name = "other", .fn = other, .mode = PX_THREAD}), 0);
    cr_assert_eq(
        px_task_register(r, &(px_task_def){.name = "proc", .fn = echo, .mode = PX_PROCESS}), 0);
    return r;
}

static _Atomic int no_stop;

/* Runs every pending task of mode on this thread; returns how many. */
static int run_all(px_region *r, uint32_t mode)
{
    struct px__scan scan = {0};
    uint64_t claimed;
    char err[PX__ERR_MAX];
    int n = 0;
    px_id id;
    while ((id = px__take(r, ~0ull, mode, &scan, &claimed)) != 0) {
        px__run(r, id, claimed, &no_stop, NULL, err, sizeof err, NULL);
        n++;
    }
    return n;
}

static px_region_info info_of(px_region *r)
{
    px_region_info info;
    cr_assert_eq(px_region_info_get(r, &info), 0);
    return info;
}

static void fill_pattern(uint8_t *buf, size_t len, unsigned seed)
{
    for (size_t i = 0; i < len; i++)
        buf[i] = (uint8_t)(seed * 31 + i * 7 + (i >> 8));
}

/* Submits len bytes, checks where they went, runs, joins the echo. */
static void roundtrip(px_region *r, size_t len, bool inline_expected)
{
    static uint8_t in[MAXP], out[MAXP];
    fill_pattern(in, len, (unsigned)len);
    px_id id;
    int rc = px_submit(r, "echo", len ? in : NULL, len, NULL, &id);
    cr_assert_eq(rc, 0, "submit %zu bytes: %s", len, px_strerror(rc));
    struct px__slot *s = &r->slots[PX__ID_IDX(id)];
    cr_assert_eq(atomic_load(&s->args_len), len);
    if (inline_expected) {
        cr_assert_eq(atomic_load(&s->args_chunk), PX__NO_CHUNK, "%zu bytes inline", len);
        cr_assert_eq(info_of(r).arena_used, 0);
    } else {
        uint32_t c = atomic_load(&s->args_chunk);
        cr_assert_neq(c, PX__NO_CHUNK, "%zu bytes in the arena", len);
        cr_assert_eq(memcmp(px__arena_ptr(r, c), in, len), 0);
        cr_assert_eq(atomic_load(&r->tags[c]), id, "chunks tagged with the task id");
        cr_assert_eq(info_of(r).arena_used,
                     (uint64_t)px__arena_chunks(r, len) * r->hdr->chunk_size);
    }
    cr_assert_eq(run_all(r, PX_THREAD), 1);
    size_t n = 12345;
    rc = px_join(r, id, 1.0, out, sizeof out, &n);
    cr_assert_eq(rc, 0, "join: %s", px_strerror(rc));
    cr_assert_eq(n, len);
    cr_assert_eq(memcmp(out, in, len), 0, "%zu bytes came back intact", len);
    cr_assert_eq(px_forget(r, id), 0);
    px_region_info info = info_of(r);
    cr_assert_eq(info.slots_used, 0);
    cr_assert_eq(info.arena_used, 0, "args and result released");
}

Test(submit, args_inline_up_to_the_slots_inline_bytes)
{
    px_region *r = open_r(64, 64);
    size_t sizes[] = {0, 1, 7, 48, 49, 56, 57, 60, PX__INLINE_ARGS - 1, PX__INLINE_ARGS};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++)
        roundtrip(r, sizes[i], true);
    px_region_close(r);
}

Test(submit, args_in_the_arena_up_to_max_payload)
{
    px_region *r = open_r(64, 64);
    size_t sizes[] = {PX__INLINE_ARGS + 1, 100, 128, 129, 1000, MAXP - 1, MAXP};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++)
        roundtrip(r, sizes[i], false);
    px_region_close(r);
}

Test(submit, above_max_payload_leaves_nothing)
{
    px_region *r = open_r(64, 64);
    static uint8_t big[MAXP + 1];
    px_id id = 77;
    cr_assert_eq(px_submit(r, "echo", big, MAXP + 1, NULL, &id), -E2BIG);
    cr_assert_eq(px_submit(r, "echo", big, MAXP + 1, &(px_submit_opts){.timeout_s = 1}, &id),
                 -E2BIG, "no wait for what can never fit");
    cr_assert_eq(id, 77);
    px_region_info info = info_of(r);
    cr_assert_eq(info.slots_used, 0);
    cr_assert_eq(info.arena_used, 0);
    cr_assert_eq(info.queued, 0);
    px_region_close(r);
}

Test(submit, bad_arguments)
{
    px_region *r = open_r(64, 64);
    px_id id;
    cr_assert_eq(px_submit(NULL, "echo", NULL, 0, NULL, &id), -EINVAL);
    cr_assert_eq(px_submit(r, "echo", NULL, 5, NULL, &id), -EINVAL, "len without args");
    cr_assert_eq(px_submit(r, NULL, NULL, 0, NULL, &id), -EINVAL);
    cr_assert_eq(px_submit(r, "echo", NULL, 0,
                           &(px_submit_opts){.flags = PX_SUBMIT_DETACHED | PX_SUBMIT_EPHEMERAL},
                           &id),
                 -EINVAL);
    cr_assert_eq(px_submit(r, "echo", NULL, 0, &(px_submit_opts){.flags = 1u << 7}, &id), -EINVAL);
    cr_assert_eq(px_submit(r, "nope", NULL, 0, NULL, &id), PX_ENOTASK);
    char q32[33];
    memset(q32, 'q', 32);
    q32[32] = '\0';
    cr_assert_eq(px_submit(r, "echo", NULL, 0, &(px_submit_opts){.queue = q32}, &id), -EINVAL);
    px_region_info info = info_of(r);
    cr_assert_eq(info.slots_used, 0);
    cr_assert_eq(info.queued, 0);
    cr_assert_eq(px_submit(r, "echo", NULL, 0, NULL, NULL), 0, "out may be NULL");
    cr_assert_eq(info_of(r).queued, 1);
    px_region_close(r);
}

Test(submit, a_submitted_task_is_pending)
{
    px_region *r = open_r(64, 64);
    px_id id;
    uint64_t t0 = px__now_ns();
    cr_assert_eq(px_submit(r, "proc", "abc", 3, NULL, &id), 0);
    uint64_t t1 = px__now_ns();
    cr_assert_eq(px_status(r, id), PX_PENDING);
    px_task_info ti;
    cr_assert_eq(px_info(r, id, &ti), 0);
    cr_assert_eq(ti.id, id);
    cr_assert_str_eq(ti.name, "proc");
    cr_assert_str_eq(ti.queue, "default");
    cr_assert_eq(ti.state, PX_PENDING);
    cr_assert_eq(ti.mode, PX_PROCESS);
    cr_assert_eq(ti.attempts, 0);
    cr_assert_eq(ti.worker_pid, 0);
    cr_assert_eq(ti.result_len, 0);
    cr_assert(ti.enqueued_ns >= t0 && ti.enqueued_ns <= t1);
    cr_assert_eq(ti.started_ns, 0);
    cr_assert_eq(ti.finished_ns, 0);
    cr_assert_str_eq(ti.error, "");
    px_region_info info = info_of(r);
    cr_assert_eq(info.slots_used, 1);
    cr_assert_eq(info.queued, 1);
    cr_assert_eq(info.lanes_used, 1);
    /* A PX_PROCESS task is not taken by a thread-mode consumer. */
    cr_assert_eq(run_all(r, PX_THREAD), 0);
    cr_assert_eq(px_status(r, id), PX_PENDING);
    cr_assert_eq(run_all(r, PX_PROCESS), 1);
    cr_assert_eq(px_status(r, id), PX_SUCCESS);
    px_region_close(r);
}

/* The thread's cache of its last task name follows the name's text, not the
 * pointer: a buffer rewritten between submits names another task. */
Test(submit, a_reused_name_buffer_names_the_new_task)
{
    px_region *r = open_r(64, 64);
    char name[16];
    px_id a, b, c;
    strcpy(name, "echo");
    cr_assert_eq(px_submit(r, name, "x", 1, NULL, &a), 0);
    strcpy(name, "other");
    cr_assert_eq(px_submit(r, name, "x", 1, NULL, &b), 0);
    strcpy(name, "echo");
    cr_assert_eq(px_submit(r, name, "x", 1, NULL, &c), 0);
    strcpy(name, "nope");
    cr_assert_eq(px_submit(r, name, "x", 1, NULL, NULL), PX_ENOTASK);
    cr_assert_eq(px_submit(r, NULL, "x", 1, NULL, NULL), -EINVAL);
    const char *want[3] = {"echo", "other", "echo"};
    px_id ids[3] = {a, b, c};
    for (int i = 0; i < 3; i++) {
        px_task_info ti;
        cr_assert_eq(px_info(r, ids[i], &ti), 0);
        cr_assert_str_eq(ti.name, want[i], "task %d", i);
    }
    cr_assert_eq(run_all(r, PX_THREAD), 3, "nothing was queued for the bad names");
    px_region_close(r);
}

Test(submit, queue_override)
{
    px_region *r = open_r(64, 64);
    px_id a, b;
    cr_assert_eq(px_submit(r, "echo", NULL, 0, &(px_submit_opts){.queue = "fast"}, &a), 0);
    cr_assert_eq(px_submit(r, "echo", NULL, 0, NULL, &b), 0);
    px_task_info ti;
    cr_assert_eq(px_info(r, a, &ti), 0);
    cr_assert_str_eq(ti.queue, "fast");
    cr_assert_eq(px_info(r, b, &ti), 0);
    cr_assert_str_eq(ti.queue, "default");
    cr_assert_eq(info_of(r).lanes_used, 2, "one lane per queue");
    /* A consumer of "default" only does not take the "fast" one. */
    struct px__scan scan = {0};
    uint64_t claimed;
    cr_assert_eq(px__take(r, 1ull << 0, PX_THREAD, &scan, &claimed), b);
    cr_assert_eq(px__take(r, 1ull << 0, PX_THREAD, &scan, &claimed), 0);
    int q = px__queue_find(r, "fast", false);
    cr_assert_eq(px__take(r, 1ull << q, PX_THREAD, &scan, &claimed), a);
    px_region_close(r);
}

/* ---- Batches ------------------------------------------------------------ */

Test(submit, many_mixed_tasks)
{
    px_region *r = open_r(512, 512);
    unsigned seed = px_test_seed();
    srand(seed);
    enum { N = 300 };
    static px_job jobs[N];
    static uint8_t args[N][200];
    px_id ids[N];
    for (int i = 0; i < N; i++) {
        size_t len = (size_t)(rand() % 200);
        fill_pattern(args[i], len, (unsigned)i);
        /* Runs of each task, so that the batch switches lanes. */
        jobs[i] = (px_job){(i / 7) % 2 ? "other" : "echo", args[i], len};
    }
    int n = px_submit_many(r, jobs, N, NULL, ids);
    cr_assert_eq(n, N, "all submitted (seed %u): %d", seed, n);
    for (int i = 0; i < N; i++) {
        cr_assert_eq(px_status(r, ids[i]), PX_PENDING);
        for (int j = 0; j < i; j++)
            cr_assert_neq(ids[i], ids[j]);
    }
    px_region_info info = info_of(r);
    cr_assert_eq(info.slots_used, N);
    cr_assert_eq(info.queued, N);
    cr_assert_eq(run_all(r, PX_THREAD), N);
    for (int i = 0; i < N; i++) {
        uint8_t out[256];
        size_t len;
        cr_assert_eq(px_join(r, ids[i], 1, out, sizeof out, &len), 0);
        if (strcmp(jobs[i].task, "echo") == 0) {
            cr_assert_eq(len, jobs[i].len);
            cr_assert_eq(memcmp(out, args[i], len), 0, "job %d got its own args", i);
        } else {
            uint32_t v;
            cr_assert_eq(len, sizeof v);
            memcpy(&v, out, sizeof v);
            cr_assert_eq(v, (uint32_t)jobs[i].len | 0x80000000u, "job %d", i);
        }
    }
    px_region_close(r);
}

Test(submit, many_partial_when_the_region_fills)
{
    px_region *r = open_r(4, 64);
    px_job jobs[6];
    px_id ids[6] = {0};
    for (int i = 0; i < 6; i++)
        jobs[i] = (px_job){"echo", "x", 1};
    cr_assert_eq(px_submit_many(r, jobs, 6, &(px_submit_opts){.timeout_s = 0}, ids), 4);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(px_status(r, ids[i]), PX_PENDING, "ids[%d] is returned", i);
    px_region_info info = info_of(r);
    cr_assert_eq(info.slots_used, 4);
    cr_assert_eq(info.queued, 4);
    /* None fit: a negative code, no wait without a timeout. */
    cr_assert_eq(px_submit_many(r, jobs, 2, NULL, ids), -EAGAIN);
    double t0 = px_test_now();
    cr_assert_eq(px_submit_many(r, jobs, 2, &(px_submit_opts){.timeout_s = 0.2}, ids), -ETIMEDOUT);
    cr_assert_geq(px_test_now() - t0, 0.18);
    cr_assert_eq(info_of(r).slots_used, 4);
    px_region_close(r);
}

Test(submit, many_partial_when_the_lane_fills)
{
    px_region *r = open_r(64, 4);
    px_job jobs[6];
    px_id ids[6] = {0};
    int vals[6];
    for (int i = 0; i < 6; i++) {
        vals[i] = i;
        jobs[i] = (px_job){"echo", &vals[i], sizeof vals[i]};
    }
    cr_assert_eq(px_submit_many(r, jobs, 6, NULL, ids), 4);
    px_region_info info = info_of(r);
    cr_assert_eq(info.slots_used, 4, "the two that could not be pushed were freed");
    cr_assert_eq(info.queued, 4);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(px_status(r, ids[i]), PX_PENDING);
    px_region_close(r);
}

Test(submit, many_stops_at_the_first_bad_job)
{
    px_region *r = open_r(64, 64);
    static uint8_t big[MAXP + 1];
    px_id ids[4];
    px_job jobs[4] = {{"echo", "a", 1}, {"other", "b", 1}, {"missing", NULL, 0}, {"echo", "d", 1}};
    cr_assert_eq(px_submit_many(r, jobs, 4, NULL, ids), 2, "the first two");
    cr_assert_eq(info_of(r).slots_used, 2);
    jobs[2] = (px_job){"echo", big, sizeof big};
    cr_assert_eq(px_submit_many(r, jobs, 4, NULL, ids), 2);
    jobs[2] = (px_job){NULL, NULL, 0};
    cr_assert_eq(px_submit_many(r, jobs, 4, NULL, ids), 2);
    jobs[2] = (px_job){"echo", NULL, 3};
    cr_assert_eq(px_submit_many(r, jobs, 4, NULL, ids), 2);
    cr_assert_eq(info_of(r).slots_used, 8);
    /* A bad first job: its code. */
    cr_assert_eq(px_submit_many(r, jobs + 2, 2, NULL, ids), -EINVAL);
    jobs[2] = (px_job){"missing", NULL, 0};
    cr_assert_eq(px_submit_many(r, jobs + 2, 2, NULL, ids), PX_ENOTASK);
    jobs[2] = (px_job){"echo", big, sizeof big};
    cr_assert_eq(px_submit_many(r, jobs + 2, 2, NULL, ids), -E2BIG);
    cr_assert_eq(info_of(r).slots_used, 8);
    cr_assert_eq(info_of(r).queued, 8);
    /* Argument checks. */
    cr_assert_eq(px_submit_many(r, NULL, 1, NULL, ids), -EINVAL);
    cr_assert_eq(px_submit_many(r, jobs, 1, NULL, NULL), -EINVAL);
    cr_assert_eq(px_submit_many(NULL, jobs, 1, NULL, ids), -EINVAL);
    cr_assert_eq(px_submit_many(r, jobs, 0, NULL, ids), 0);
    px_region_close(r);
}

Test(submit, many_with_flags_and_queue)
{
    px_region *r = open_r(64, 64);
    px_job jobs[3] = {{"echo", "a", 1}, {"echo", "b", 1}, {"other", "c", 1}};
    px_id ids[3];
    cr_assert_eq(px_submit_many(r, jobs, 3,
                                &(px_submit_opts){.flags = PX_SUBMIT_DETACHED, .queue = "batch"},
                                ids),
                 3);
    px_task_info ti;
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(px_info(r, ids[i], &ti), 0);
        cr_assert_str_eq(ti.queue, "batch");
        cr_assert_eq(PX__CTL_FLAGS(atomic_load(&r->slots[PX__ID_IDX(ids[i])].ctl)), PX__F_DETACHED);
    }
    cr_assert_eq(run_all(r, PX_THREAD), 3);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(px_status(r, ids[i]), -ENOENT, "detached: freed when done");
    cr_assert_eq(info_of(r).slots_used, 0);
    px_region_close(r);
}

static void stale_duplicate_case(const char *reuser, const px_submit_opts *reuse_opts)
{
    /* The reaper pushes a dead producer's PENDING task again, so a task can
     * sit in a lane twice; the second entry is stale once the first was
     * run. If its slot is then reused by a task of another queue or mode,
     * consumers must still skip the stale entry (its generation is old),
     * not stop at it: the tasks behind it would never run. */
    px_region *r = open_r(8, 64);
    struct px__tls *t = px__tls_get(r);
    px_id x;
    cr_assert_eq(px_submit(r, "echo", "x", 1, NULL, &x), 0);
    uint32_t idx = PX__ID_IDX(x);
    cr_assert(px__requeue(r, idx, atomic_load(&r->slots[idx].ctl)), "pushed a second time");
    cr_assert_eq(info_of(r).queued, 2);
    struct px__scan scan = {0};
    uint64_t claimed;
    cr_assert_eq(px__take(r, 1ull << 0, PX_THREAD, &scan, &claimed), x);
    px__run(r, x, claimed, &no_stop, NULL, NULL, 0, NULL);
    cr_assert_eq(px_forget(r, x), 0);

    t->slot_cursor = idx;
    px_id y, z;
    cr_assert_eq(px_submit(r, reuser, "y", 1, reuse_opts, &y), 0);
    cr_assert_eq(PX__ID_IDX(y), idx, "the slot was reused");
    cr_assert_eq(px_submit(r, "echo", "z", 1, NULL, &z), 0);
    scan = (struct px__scan){0};
    px_id got = px__take(r, 1ull << 0, PX_THREAD, &scan, &claimed);
    cr_assert_eq(got, z, "the task behind the stale entry is taken (got %016lx)",
                 (unsigned long)got);
    px_region_close(r);
}

Test(submit, a_stale_duplicate_entry_does_not_block_its_lane_other_mode)
{
    stale_duplicate_case("proc", NULL);
}

Test(submit, a_stale_duplicate_entry_does_not_block_its_lane_other_queue)
{
    stale_duplicate_case("echo", &(px_submit_opts){.queue = "elsewhere"});
}

/* ---- Threads ------------------------------------------------------------ */

#define PER_THREAD 400

struct producer {
    px_region *r;
    unsigned seed;
    int me;
    px_id ids[PER_THREAD];
    uint16_t lens[PER_THREAD];
    int errors; /* the first failed submit's code */
};

static void *produce(void *p)
{
    struct producer *pr = p;
    uint8_t buf[300];
    for (int i = 0; i < PER_THREAD; i++) {
        uint16_t len = (uint16_t)(rand_r(&pr->seed) % sizeof buf);
        fill_pattern(buf, len, (unsigned)(pr->me * PER_THREAD + i));
        pr->lens[i] = len;
        int rc = px_submit(pr->r, "echo", buf, len, NULL, &pr->ids[i]);
        if (rc) {
            pr->errors = rc;
            break;
        }
    }
    return NULL;
}

Test(submit, concurrent_producers)
{
    unsigned seed = px_test_seed();
    /* Lanes deep enough for every task: whichever lanes the threads get,
     * there is room. */
    px_region *r = open_r(4096, 2048);
    enum { T = 4 };
    static struct producer pr[T];
    pthread_t th[T];
    for (int i = 0; i < T; i++) {
        pr[i] = (struct producer){.r = r, .seed = seed + (unsigned)i, .me = i};
        pthread_create(&th[i], NULL, produce, &pr[i]);
    }
    for (int i = 0; i < T; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < T; i++)
        cr_assert_eq(pr[i].errors, 0, "thread %d: %s (seed %u)", i, px_strerror(pr[i].errors),
                     seed);
    px_region_info info = info_of(r);
    cr_assert_eq(info.slots_used, T * PER_THREAD);
    cr_assert_eq(info.queued, T * PER_THREAD);
    cr_assert_eq(info.lanes_used, 0, "lanes are released when their threads exit");
    cr_assert_eq(run_all(r, PX_THREAD), T * PER_THREAD);
    for (int i = 0; i < T; i++)
        for (int k = 0; k < PER_THREAD; k++) {
            uint8_t want[300], got[300];
            size_t n;
            fill_pattern(want, pr[i].lens[k], (unsigned)(i * PER_THREAD + k));
            cr_assert_eq(px_join(r, pr[i].ids[k], 1, got, sizeof got, &n), 0);
            cr_assert_eq(n, pr[i].lens[k]);
            cr_assert_eq(memcmp(got, want, n), 0, "thread %d task %d (seed %u)", i, k, seed);
            cr_assert_eq(px_forget(r, pr[i].ids[k]), 0);
        }
    info = info_of(r);
    cr_assert_eq(info.slots_used, 0);
    cr_assert_eq(info.arena_used, 0);
    px_region_close(r);
}

static void *submit_n(void *p)
{
    struct producer *pr = p;
    for (int i = 0; i < pr->me; i++) {
        int rc = px_submit(pr->r, "echo", NULL, 0, NULL, NULL);
        if (rc) {
            pr->errors = rc;
            return NULL;
        }
        pr->lens[0]++;
    }
    return NULL;
}

Test(submit, a_new_thread_is_not_stuck_behind_a_full_released_lane)
{
    /* 16 lanes of 64 entries, 4096 slots. A thread submits 60 tasks and
     * exits (its lane is released, still holding them); a second thread
     * then submits 60 more. The region has room for thousands and 15 lanes
     * are empty, so "no room" is wrong. */
    px_region *r = open_r(4096, 64);
    static struct producer pr[2];
    for (int k = 0; k < 2; k++) {
        pr[k] = (struct producer){.r = r, .me = 60};
        pthread_t th;
        pthread_create(&th, NULL, submit_n, &pr[k]);
        pthread_join(th, NULL);
    }
    cr_assert_eq(pr[0].errors, 0);
    cr_assert_eq(pr[1].errors, 0, "second thread: %s after %u submits with %u slots free",
                 px_strerror(pr[1].errors), pr[1].lens[0], 4096 - 60 - pr[1].lens[0]);
    cr_assert_eq(info_of(r).queued, 120);
    px_region_close(r);
}

Test(submit, a_thread_owns_one_lane_per_key)
{
    /* One thread, nine queues: PX__TLS_LANES lanes per thread. */
    px_region *r = open_r(64, 64);
    char q[16];
    int ok = 0, rc = 0;
    for (int i = 0; i < PX__TLS_LANES + 1; i++) {
        snprintf(q, sizeof q, "q%d", i);
        rc = px_submit(r, "echo", NULL, 0, &(px_submit_opts){.queue = q}, NULL);
        if (rc == 0)
            ok++;
        else
            break;
    }
    cr_assert_eq(ok, PX__TLS_LANES);
    cr_assert_eq(rc, -EAGAIN, "%s", px_strerror(rc));
    cr_assert_eq(info_of(r).slots_used, PX__TLS_LANES, "the refused submit left nothing");
    px_region_close(r);
}

/* A producer asleep for room is woken once, not by every slot freed before
 * it has retracted: stopped (SIGSTOP) while it is counted and armed as a
 * waiter, it sees four slots freed bump room_seq once. */
Test(submit, a_waiter_for_room_is_woken_once_not_per_slot_freed, .timeout = 30)
{
    px_region *r = open_r(4, 64);
    const px_submit_opts detached = {.flags = PX_SUBMIT_DETACHED};
    for (int i = 0; i < 4; i++)
        cr_assert_eq(px_submit(r, "echo", "x", 1, &detached, NULL), 0);
    px_region *cr;
    pid_t pid = px_test_fork_attached(rname, &cr);
    if (pid == 0) {
        px_submit_opts wait = {.timeout_s = 20, .flags = PX_SUBMIT_DETACHED};
        _exit(px_submit(cr, "echo", "y", 1, &wait, NULL) == 0 ? 0 : 3);
    }
    double until = px_test_now() + 10;
    while (atomic_load(&r->hdr->room_waiters) != 1 || atomic_load(&r->hdr->room_armed) != 1)
        cr_assert(px_test_now() < until, "the child never waited for room");
    stopped_child = pid;
    cr_assert_eq(kill(pid, SIGSTOP), 0);
    int st;
    cr_assert_eq(waitpid(pid, &st, WUNTRACED), pid);
    uint32_t seq = atomic_load(&r->hdr->room_seq);
    cr_assert_eq(run_all(r, PX_THREAD), 4);
    cr_assert_eq(atomic_load(&r->hdr->room_seq) - seq, 1, "woken %u times for four slots",
                 atomic_load(&r->hdr->room_seq) - seq);
    cr_assert_eq(kill(pid, SIGCONT), 0);
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    stopped_child = 0;
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status 0x%x", st);
    cr_assert_eq(run_all(r, PX_THREAD), 1, "the child's task went in once it was woken");
    px_region_close(r);
}

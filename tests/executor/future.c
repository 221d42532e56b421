/*
 * Futures: join, try_join, wait_any, info, forget, ephemeral and detached
 * tasks, and the calls a task body makes (px_result, px_fail, ...). Tasks
 * run on the test's thread or on a helper thread (px__take/px__claim +
 * px__run), so each step is under the test's control.
 */
#include "common.h"
#include "executor/executor.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>

#define MAXP 8192u

static char rname[64];
static px_region *g_r; /* for bodies that look at their own task */

static void cleanup(void)
{
    px_region_destroy(rname);
}

TestSuite(future, .fini = cleanup);

static int echo(px_ctx *ctx, const void *args, size_t len)
{
    return px_result(ctx, args, len);
}

/* Fails with the args as text. */
static int fail_text(px_ctx *ctx, const void *args, size_t len)
{
    return px_fail(ctx, "%.*s", (int)len, (const char *)args);
}

static int ret5(px_ctx *ctx, const void *args, size_t len)
{
    (void)ctx, (void)args, (void)len;
    return 5;
}

/* Result: n bytes of a pattern, n a uint32 in the args. */
static int big(px_ctx *ctx, const void *args, size_t len)
{
    static uint8_t buf[MAXP + 1];
    uint32_t n;
    if (len != sizeof n)
        return px_fail(ctx, "bad args");
    memcpy(&n, args, sizeof n);
    for (uint32_t i = 0; i < n && i < sizeof buf; i++)
        buf[i] = (uint8_t)(i * 13 + 1);
    int rc = px_result(ctx, buf, n);
    if (rc)
        return px_fail(ctx, "px_result: %d", rc);
    return 0;
}

/* Sets a large result, then replaces it by the args. */
static int replace(px_ctx *ctx, const void *args, size_t len)
{
    static uint8_t first[3000];
    memset(first, 0xee, sizeof first);
    int rc = px_result(ctx, first, sizeof first);
    if (rc)
        return rc;
    return px_result(ctx, args, len);
}

/* px_fail, then success anyway. */
static int fail_then_zero(px_ctx *ctx, const void *args, size_t len)
{
    (void)args, (void)len;
    px_fail(ctx, "recorded failure");
    return 0;
}

/* A large result, then a non-zero return. */
static int result_then_error(px_ctx *ctx, const void *args, size_t len)
{
    (void)args, (void)len;
    static uint8_t out[4000];
    int rc = px_result(ctx, out, sizeof out);
    return rc ? rc : 9;
}

/* Reports what a body sees of itself. */
struct self_view {
    px_id id;
    int attempt;
    int status;
    px_task_info info;
    int cont;
    int rc_too_big, rc_null;
};

static int introspect(px_ctx *ctx, const void *args, size_t len)
{
    (void)args, (void)len;
    struct self_view v;
    memset(&v, 0, sizeof v);
    v.id = px_task_id(ctx);
    v.attempt = px_task_attempt(ctx);
    v.status = px_status(g_r, v.id);
    px_info(g_r, v.id, &v.info);
    v.cont = px_should_continue(ctx);
    static uint8_t huge[MAXP + 1];
    v.rc_too_big = px_result(ctx, huge, sizeof huge);
    v.rc_null = px_result(ctx, NULL, 3);
    return px_result(ctx, &v, sizeof v);
}

/* Sleeps for the ms in its args, then echoes them. */
static int nap(px_ctx *ctx, const void *args, size_t len)
{
    uint32_t ms;
    memcpy(&ms, args, sizeof ms);
    usleep(ms * 1000);
    return px_result(ctx, args, len);
}

static px_region *open_r(uint32_t capacity, uint64_t arena)
{
    px_region *r = px_test_region(rname, sizeof rname,
                                  &(px_region_opts){.capacity = capacity,
                                                    .max_payload = MAXP,
                                                    .arena_bytes = arena,
                                                    .lanes = 16,
                                                    .lane_depth = 256});
    struct {
        const char *name;
        px_task_fn fn;
    } defs[] = {{"echo", echo},
                {"fail_text", fail_text},
                {"ret5", ret5},
                {"big", big},
                {"replace", replace},
                {"introspect", introspect},
                {"nap", nap},
                {"fail_then_zero", fail_then_zero},
                {"result_then_error", result_then_error}};
    for (size_t i = 0; i < sizeof defs / sizeof *defs; i++)
        cr_assert_eq(
            px_task_register(
                r, &(px_task_def){.name = defs[i].name, .fn = defs[i].fn, .mode = PX_THREAD}),
            0);
    g_r = r;
    return r;
}

static _Atomic int no_stop;

/* Claims exactly id and runs it on this thread. */
static void run_id(px_region *r, px_id id)
{
    uint64_t claimed;
    char err[PX__ERR_MAX];
    cr_assert(px__claim(r, id, &claimed), "claim %016lx", (unsigned long)id);
    px__run(r, id, claimed, &no_stop, NULL, err, sizeof err, NULL);
}

static px_id submit(px_region *r, const char *task, const void *args, size_t len, uint32_t flags)
{
    px_id id;
    int rc = px_submit(r, task, args, len, &(px_submit_opts){.flags = flags}, &id);
    cr_assert_eq(rc, 0, "submit %s: %s", task, px_strerror(rc));
    return id;
}

static px_id submit_run(px_region *r, const char *task, const void *args, size_t len,
                        uint32_t flags)
{
    px_id id = submit(r, task, args, len, flags);
    run_id(r, id);
    return id;
}

static px_region_info info_of(px_region *r)
{
    px_region_info info;
    cr_assert_eq(px_region_info_get(r, &info), 0);
    return info;
}

/* ---- join ------------------------------------------------------------------ */

Test(future, join_copies_the_result)
{
    px_region *r = open_r(64, 64 * MAXP);
    px_id id = submit_run(r, "echo", "hello", 5, 0);
    char buf[16] = {0};
    size_t len = 0;
    cr_assert_eq(px_status(r, id), PX_SUCCESS);
    cr_assert_eq(px_join(r, id, 1.0, buf, sizeof buf, &len), 0);
    cr_assert_eq(len, 5);
    cr_assert_str_eq(buf, "hello");
    /* A join takes nothing away: the result stays until forgotten. */
    memset(buf, 0, sizeof buf);
    cr_assert_eq(px_join(r, id, 0, buf, 5, &len), 0, "exact capacity");
    cr_assert_str_eq(buf, "hello");
    cr_assert_eq(px_try_join(r, id, buf, sizeof buf, &len), 0);
    cr_assert_eq(px_join(r, id, 1.0, NULL, 0, NULL), 0, "join only to wait");
    /* An empty result. */
    px_id e = submit_run(r, "echo", NULL, 0, 0);
    len = 99;
    cr_assert_eq(px_join(r, e, 1.0, NULL, 0, &len), 0);
    cr_assert_eq(len, 0);
    px_region_close(r);
}

Test(future, small_buffer_is_enobufs_and_keeps_the_result)
{
    px_region *r = open_r(64, 64 * MAXP);
    uint32_t n = 1000;
    px_id id = submit_run(r, "big", &n, sizeof n, 0);
    uint8_t buf[1000];
    size_t len = 0;
    cr_assert_eq(px_join(r, id, 1.0, buf, 999, &len), -ENOBUFS);
    cr_assert_eq(len, 1000, "len says how much is needed");
    len = 0;
    cr_assert_eq(px_try_join(r, id, NULL, 0, &len), -ENOBUFS);
    cr_assert_eq(len, 1000);
    cr_assert_eq(px_status(r, id), PX_SUCCESS, "the result is left in place");
    cr_assert_eq(px_join(r, id, 1.0, buf, sizeof buf, &len), 0);
    cr_assert_eq(len, 1000);
    for (uint32_t i = 0; i < n; i++)
        cr_assert_eq(buf[i], (uint8_t)(i * 13 + 1), "byte %u", i);
    px_region_close(r);
}

Test(future, large_results)
{
    px_region *r = open_r(64, 64 * MAXP);
    static uint8_t buf[MAXP];
    uint32_t sizes[] = {48, 49, 56, 57, 64, 4096, MAXP};
    for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
        uint32_t n = sizes[k];
        px_id id = submit_run(r, "big", &n, sizeof n, 0);
        size_t len;
        int rc = px_join(r, id, 1.0, buf, sizeof buf, &len);
        cr_assert_eq(rc, 0, "%u bytes: %s", n, px_strerror(rc));
        cr_assert_eq(len, n);
        for (uint32_t i = 0; i < n; i++)
            cr_assert_eq(buf[i], (uint8_t)(i * 13 + 1), "%u bytes: byte %u", n, i);
        struct px__slot *s = &r->slots[PX__ID_IDX(id)];
        cr_assert_eq(atomic_load(&s->out_chunk) == PX__NO_CHUNK, n <= PX__INLINE_OUT,
                     "results up to %u bytes are inline", PX__INLINE_OUT);
        px_task_info ti;
        cr_assert_eq(px_info(r, id, &ti), 0);
        cr_assert_eq(ti.result_len, n);
        cr_assert_eq(px_forget(r, id), 0);
        cr_assert_eq(info_of(r).arena_used, 0);
    }
    px_region_close(r);
}

Test(future, failed_task_reports_its_text)
{
    px_region *r = open_r(64, 64 * MAXP);
    const char *text = "bad input: 42";
    px_id id = submit_run(r, "fail_text", text, strlen(text), 0);
    cr_assert_eq(px_status(r, id), PX_FAILED);
    char buf[64];
    size_t len = 0;
    memset(buf, 'x', sizeof buf);
    cr_assert_eq(px_join(r, id, 1.0, buf, sizeof buf, &len), PX_ETASKFAILED);
    cr_assert_str_eq(buf, text, "the error text is copied, NUL-terminated");
    cr_assert_eq(len, strlen(text));
    px_task_info ti;
    cr_assert_eq(px_info(r, id, &ti), 0);
    cr_assert_eq(ti.state, PX_FAILED);
    cr_assert_str_eq(ti.error, text);
    cr_assert_eq(ti.result_len, 0);
    /* A short buffer gets the start of the text. */
    cr_assert_eq(px_join(r, id, 1.0, buf, 5, &len), PX_ETASKFAILED);
    cr_assert_str_eq(buf, "bad ");
    cr_assert_eq(px_join(r, id, 1.0, NULL, 0, NULL), PX_ETASKFAILED);
    cr_assert_eq(px_try_join(r, id, NULL, 0, NULL), PX_ETASKFAILED);
    cr_assert_eq(px_wait_any(r, &id, 1, 0), 0);
    px_region_close(r);
}

Test(future, long_error_texts)
{
    px_region *r = open_r(64, 64 * MAXP);
    char text[400];
    for (int i = 0; i < 399; i++)
        text[i] = (char)('a' + i % 26);
    text[399] = '\0';
    px_id a = submit_run(r, "fail_text", text, 200, 0);
    px_id b = submit_run(r, "fail_text", text, 399, 0);
    px_task_info ti;
    cr_assert_eq(px_info(r, a, &ti), 0);
    cr_assert_eq(strlen(ti.error), 200, "a 200-byte text is kept whole");
    cr_assert_eq(strncmp(ti.error, text, 200), 0);
    cr_assert_eq(px_info(r, b, &ti), 0);
    cr_assert_eq(strlen(ti.error), 255, "truncated to 255 bytes");
    cr_assert_eq(strncmp(ti.error, text, 255), 0);
    char buf[512];
    size_t len;
    cr_assert_eq(px_join(r, b, 1.0, buf, sizeof buf, &len), PX_ETASKFAILED);
    cr_assert_eq(len, 255);
    cr_assert_eq(strncmp(buf, text, 255), 0);
    cr_assert_gt(info_of(r).arena_used, 0, "long texts live in the arena");
    cr_assert_eq(px_forget(r, a), 0);
    cr_assert_eq(px_forget(r, b), 0);
    cr_assert_eq(info_of(r).arena_used, 0);
    px_region_close(r);
}

Test(future, nonzero_return_without_text)
{
    px_region *r = open_r(64, 64 * MAXP);
    px_id id = submit_run(r, "ret5", NULL, 0, 0);
    px_task_info ti;
    cr_assert_eq(px_join(r, id, 1.0, NULL, 0, NULL), PX_ETASKFAILED);
    cr_assert_eq(px_info(r, id, &ti), 0);
    cr_assert_str_eq(ti.error, "task returned 5");
    px_region_close(r);
}

Test(future, a_recorded_failure_wins_over_a_zero_return)
{
    px_region *r = open_r(64, 64 * MAXP);
    px_id id = submit_run(r, "fail_then_zero", NULL, 0, 0);
    char buf[64];
    size_t len;
    cr_assert_eq(px_join(r, id, 1.0, buf, sizeof buf, &len), PX_ETASKFAILED);
    cr_assert_str_eq(buf, "recorded failure");
    px_region_close(r);
}

Test(future, a_failed_task_keeps_no_result)
{
    px_region *r = open_r(64, 64 * MAXP);
    px_id id = submit_run(r, "result_then_error", NULL, 0, 0);
    px_task_info ti;
    cr_assert_eq(px_join(r, id, 1.0, NULL, 0, NULL), PX_ETASKFAILED);
    cr_assert_eq(px_info(r, id, &ti), 0);
    cr_assert_str_eq(ti.error, "task returned 9");
    cr_assert_eq(ti.result_len, 0);
    cr_assert_eq(info_of(r).arena_used, 0, "the result's chunks were released");
    px_region_close(r);
}

Test(future, result_and_fail_outside_a_task)
{
    cr_assert_eq(px_result(NULL, "x", 1), -EINVAL);
    cr_assert_eq(px_fail(NULL, "x"), -EINVAL);
    cr_assert_eq(px_should_continue(NULL), 0);
    cr_assert_eq(px_task_id(NULL), 0);
    cr_assert_eq(px_task_attempt(NULL), -EINVAL);
}

/* ---- waiting ------------------------------------------------------------ */

Test(future, try_join_while_pending)
{
    px_region *r = open_r(64, 64 * MAXP);
    px_id id = submit(r, "echo", "p", 1, 0);
    char buf[4];
    size_t len;
    cr_assert_eq(px_try_join(r, id, buf, sizeof buf, &len), -EAGAIN);
    /* While RUNNING too. */
    uint64_t claimed;
    cr_assert(px__claim(r, id, &claimed));
    cr_assert_eq(px_status(r, id), PX_RUNNING);
    cr_assert_eq(px_try_join(r, id, buf, sizeof buf, &len), -EAGAIN);
    px__run(r, id, claimed, &no_stop, NULL, NULL, 0, NULL);
    cr_assert_eq(px_try_join(r, id, buf, sizeof buf, &len), 0);
    cr_assert_eq(buf[0], 'p');
    px_region_close(r);
}

Test(future, join_times_out)
{
    px_region *r = open_r(64, 64 * MAXP);
    px_id id = submit(r, "echo", "p", 1, 0);
    double t0 = px_test_now();
    cr_assert_eq(px_join(r, id, 0.25, NULL, 0, NULL), -ETIMEDOUT);
    double waited = px_test_now() - t0;
    cr_assert_geq(waited, 0.24, "waited %.3f s", waited);
    cr_assert_lt(waited, 1.0, "waited %.3f s", waited);
    cr_assert_eq(px_status(r, id), PX_PENDING);
    cr_assert_eq(atomic_load(&r->slots[PX__ID_IDX(id)].waiters), 0, "the waiter left");
    px_region_close(r);
}

struct joiner {
    px_region *r;
    px_id id;
    int rc;
    uint32_t got;
};

struct later {
    px_region *r;
    px_id id;
    double delay;
};

static void *run_later(void *p)
{
    struct later *l = p;
    usleep((useconds_t)(l->delay * 1e6));
    uint64_t claimed;
    if (px__claim(l->r, l->id, &claimed))
        px__run(l->r, l->id, claimed, &no_stop, NULL, NULL, 0, NULL);
    return NULL;
}

Test(future, join_sleeps_until_the_task_finishes)
{
    px_region *r = open_r(64, 64 * MAXP);
    px_id id = submit(r, "echo", "woken", 5, 0);
    struct later l = {r, id, 0.2};
    pthread_t th;
    pthread_create(&th, NULL, run_later, &l);
    char buf[8];
    size_t len;
    double t0 = px_test_now();
    int rc = px_join(r, id, 5.0, buf, sizeof buf, &len);
    double waited = px_test_now() - t0;
    pthread_join(th, NULL);
    cr_assert_eq(rc, 0, "%s", px_strerror(rc));
    cr_assert_eq(len, 5);
    cr_assert_eq(memcmp(buf, "woken", 5), 0);
    cr_assert_geq(waited, 0.15);
    cr_assert_lt(waited, 1.0, "woken by the finish, not the timeout (%.3f s)", waited);
    px_region_close(r);
}

Test(future, join_forever)
{
    px_region *r = open_r(64, 64 * MAXP);
    px_id id = submit(r, "echo", "w", 1, 0);
    struct later l = {r, id, 0.1};
    pthread_t th;
    pthread_create(&th, NULL, run_later, &l);
    cr_assert_eq(px_join(r, id, -1, NULL, 0, NULL), 0);
    pthread_join(th, NULL);
    px_region_close(r);
}

Test(future, wait_any)
{
    px_region *r = open_r(64, 64 * MAXP);
    px_id ids[3];
    for (int i = 0; i < 3; i++)
        ids[i] = submit(r, "echo", &i, sizeof i, 0);
    double t0 = px_test_now();
    cr_assert_eq(px_wait_any(r, ids, 3, 0.2), -ETIMEDOUT);
    cr_assert_geq(px_test_now() - t0, 0.18);
    cr_assert_eq(px_wait_any(r, ids, 3, 0), -ETIMEDOUT);
    run_id(r, ids[1]);
    cr_assert_eq(px_wait_any(r, ids, 3, 1.0), 1, "the index of the finished one");
    cr_assert_eq(px_wait_any(r, ids, 3, 0), 1);
    cr_assert_eq(px_wait_any(r, ids, 1, 0), -ETIMEDOUT, "only ids[0..n) count");
    /* Woken from sleep by a finish on another thread. */
    struct later l = {r, ids[2], 0.2};
    pthread_t th;
    pthread_create(&th, NULL, run_later, &l);
    px_id rest[2] = {ids[0], ids[2]};
    t0 = px_test_now();
    int i = px_wait_any(r, rest, 2, 5.0);
    double waited = px_test_now() - t0;
    pthread_join(th, NULL);
    cr_assert_eq(i, 1);
    cr_assert_lt(waited, 1.0, "woken by the finish (%.3f s)", waited);
    /* A forgotten id counts as finished. */
    cr_assert_eq(px_forget(r, ids[2]), 0);
    cr_assert_eq(px_wait_any(r, rest, 2, 0), 1);
    cr_assert_eq(px_wait_any(r, NULL, 2, 0), -EINVAL);
    cr_assert_eq(px_wait_any(r, rest, 0, 0), -EINVAL);
    cr_assert_eq(px_wait_any(NULL, rest, 2, 0), -EINVAL);
    cr_assert_eq(atomic_load(&r->hdr->done_waiters), 0);
    px_region_close(r);
}

/* ---- ephemeral, detached, forget ----------------------------------------- */

Test(future, ephemeral_frees_after_one_join)
{
    px_region *r = open_r(64, 64 * MAXP);
    uint32_t n = 3000;
    px_id id = submit_run(r, "big", &n, sizeof n, PX_SUBMIT_EPHEMERAL);
    cr_assert_eq(px_status(r, id), PX_SUCCESS);
    px_task_info ti;
    cr_assert_eq(px_info(r, id, &ti), 0, "info does not consume");
    static uint8_t buf[MAXP];
    size_t len = 0;
    cr_assert_eq(px_join(r, id, 1.0, buf, 100, &len), -ENOBUFS);
    cr_assert_eq(len, 3000);
    cr_assert_eq(px_status(r, id), PX_SUCCESS, "a join that got nothing does not free");
    cr_assert_eq(px_join(r, id, 1.0, buf, sizeof buf, &len), 0);
    cr_assert_eq(len, 3000);
    cr_assert_eq(buf[2999], (uint8_t)(2999 * 13 + 1));
    cr_assert_eq(px_join(r, id, 1.0, buf, sizeof buf, &len), -ENOENT, "second join");
    cr_assert_eq(px_status(r, id), -ENOENT);
    px_region_info info = info_of(r);
    cr_assert_eq(info.slots_used, 0);
    cr_assert_eq(info.arena_used, 0);

    /* A failed ephemeral task: the join reports it and frees it. */
    id = submit_run(r, "fail_text", "oops", 4, PX_SUBMIT_EPHEMERAL);
    char text[16];
    cr_assert_eq(px_join(r, id, 1.0, text, sizeof text, &len), PX_ETASKFAILED);
    cr_assert_str_eq(text, "oops");
    cr_assert_eq(px_join(r, id, 1.0, text, sizeof text, &len), -ENOENT);
    cr_assert_eq(info_of(r).slots_used, 0);
    px_region_close(r);
}

Test(future, detached_frees_on_completion)
{
    px_region *r = open_r(64, 64 * MAXP);
    static uint8_t args[2000];
    memset(args, 3, sizeof args);
    px_id id = submit(r, "echo", args, sizeof args, PX_SUBMIT_DETACHED);
    cr_assert_eq(px_status(r, id), PX_PENDING);
    cr_assert_gt(info_of(r).arena_used, 0);
    run_id(r, id);
    cr_assert_eq(px_status(r, id), -ENOENT);
    cr_assert_eq(px_join(r, id, 1.0, NULL, 0, NULL), -ENOENT);
    px_region_info info = info_of(r);
    cr_assert_eq(info.slots_used, 0);
    cr_assert_eq(info.arena_used, 0, "args and result chunks released");
    /* Failed detached tasks are freed too. */
    id = submit_run(r, "fail_text", args, 100, PX_SUBMIT_DETACHED);
    cr_assert_eq(px_status(r, id), -ENOENT);
    info = info_of(r);
    cr_assert_eq(info.slots_used, 0);
    cr_assert_eq(info.arena_used, 0);
    px_region_close(r);
}

Test(future, forget)
{
    px_region *r = open_r(64, 64 * MAXP);
    static uint8_t args[500];
    px_id id = submit(r, "echo", args, sizeof args, 0);
    cr_assert_eq(px_forget(r, id), -EBUSY, "pending");
    uint64_t claimed;
    cr_assert(px__claim(r, id, &claimed));
    cr_assert_eq(px_forget(r, id), -EBUSY, "running");
    px__run(r, id, claimed, &no_stop, NULL, NULL, 0, NULL);
    cr_assert_gt(info_of(r).arena_used, 0);
    cr_assert_eq(px_forget(r, id), 0);
    cr_assert_eq(px_status(r, id), -ENOENT);
    cr_assert_eq(px_forget(r, id), -ENOENT);
    px_region_info info = info_of(r);
    cr_assert_eq(info.slots_used, 0);
    cr_assert_eq(info.arena_used, 0);
    cr_assert_eq(px_forget(NULL, id), -EINVAL);
    px_region_close(r);
}

static void *join_ephemeral(void *p)
{
    struct joiner *j = p;
    size_t len;
    j->rc = px_join(j->r, j->id, 5.0, &j->got, sizeof j->got, &len);
    return NULL;
}

Test(future, one_ephemeral_join_among_many_gets_the_result)
{
    px_region *r = open_r(64, 64 * MAXP);
    for (int round = 0; round < 20; round++) {
        uint32_t v = 1000 + (uint32_t)round;
        px_id id = submit(r, "echo", &v, sizeof v, PX_SUBMIT_EPHEMERAL);
        enum { J = 4 };
        pthread_t th[J];
        struct joiner js[J];
        for (int i = 0; i < J; i++) {
            js[i] = (struct joiner){r, id, 1, 0};
            pthread_create(&th[i], NULL, join_ephemeral, &js[i]);
        }
        run_id(r, id);
        int got = 0, gone = 0;
        for (int i = 0; i < J; i++) {
            pthread_join(th[i], NULL);
            got += js[i].rc == 0 && js[i].got == v;
            gone += js[i].rc == -ENOENT;
        }
        cr_assert_eq(got, 1, "round %d: exactly one joiner takes the result", round);
        cr_assert_eq(gone, J - 1, "round %d: the others find it gone", round);
        cr_assert_eq(info_of(r).slots_used, 0);
    }
    px_region_close(r);
}

/* ---- inside a task ------------------------------------------------------- */

Test(future, info_fields)
{
    px_region *r = open_r(64, 64 * MAXP);
    uint64_t t0 = px__now_ns();
    px_id id = submit(r, "echo", "12345678", 8, 0);
    usleep(2000);
    run_id(r, id);
    uint64_t t1 = px__now_ns();
    px_task_info ti;
    cr_assert_eq(px_info(r, id, &ti), 0);
    cr_assert_eq(ti.id, id);
    cr_assert_str_eq(ti.name, "echo");
    cr_assert_str_eq(ti.queue, "default");
    cr_assert_eq(ti.state, PX_SUCCESS);
    cr_assert_eq(ti.mode, PX_THREAD);
    cr_assert_eq(ti.attempts, 1);
    cr_assert_eq(ti.worker_pid, getpid());
    cr_assert_eq(ti.result_len, 8);
    cr_assert_str_eq(ti.error, "");
    cr_assert(t0 <= ti.enqueued_ns, "enqueued after the call began");
    cr_assert(ti.enqueued_ns < ti.started_ns, "started after enqueued");
    cr_assert(ti.started_ns <= ti.finished_ns, "finished after started");
    cr_assert(ti.finished_ns <= t1);
    cr_assert_eq(px_info(r, id, NULL), -EINVAL);
    px_region_close(r);
}

Test(future, a_task_sees_itself)
{
    px_region *r = open_r(64, 64 * MAXP);
    px_id id = submit_run(r, "introspect", NULL, 0, 0);
    struct self_view v;
    size_t len;
    cr_assert_eq(px_join(r, id, 1.0, &v, sizeof v, &len), 0);
    cr_assert_eq(len, sizeof v);
    cr_assert_eq(v.id, id, "px_task_id");
    cr_assert_eq(v.attempt, 1, "px_task_attempt on the first run");
    cr_assert_eq(v.status, PX_RUNNING);
    cr_assert_eq(v.info.state, PX_RUNNING);
    cr_assert_eq(v.info.attempts, 1);
    cr_assert_eq(v.info.worker_pid, getpid());
    cr_assert_neq(v.info.started_ns, 0);
    cr_assert_eq(v.info.finished_ns, 0);
    cr_assert_eq(v.cont, 1, "px_should_continue while not stopping");
    cr_assert_eq(v.rc_too_big, -E2BIG, "px_result above max_payload");
    cr_assert_eq(v.rc_null, -EINVAL);
    px_region_close(r);
}

Test(future, attempts_count_interrupted_runs)
{
    px_region *r = open_r(64, 64 * MAXP);
    px_id id = submit(r, "introspect", NULL, 0, 0);
    /* First run interrupted: claimed, then put back (what a shutdown or
     * the reaper does). */
    uint64_t claimed;
    cr_assert(px__claim(r, id, &claimed));
    cr_assert(px__requeue(r, PX__ID_IDX(id), claimed));
    cr_assert_eq(px_status(r, id), PX_PENDING);
    px_task_info ti;
    cr_assert_eq(px_info(r, id, &ti), 0);
    cr_assert_eq(ti.attempts, 1, "the interrupted run is counted");
    run_id(r, id);
    struct self_view v;
    size_t len;
    cr_assert_eq(px_join(r, id, 1.0, &v, sizeof v, &len), 0);
    cr_assert_eq(v.attempt, 2);
    cr_assert_eq(px_info(r, id, &ti), 0);
    cr_assert_eq(ti.attempts, 2);
    px_region_close(r);
}

Test(future, a_later_result_replaces_an_earlier_one)
{
    px_region *r = open_r(64, 64 * MAXP);
    px_id small = submit_run(r, "replace", "tiny", 4, 0);
    char buf[4000];
    size_t len;
    cr_assert_eq(px_join(r, small, 1.0, buf, sizeof buf, &len), 0);
    cr_assert_eq(len, 4);
    cr_assert_eq(memcmp(buf, "tiny", 4), 0);
    cr_assert_eq(info_of(r).arena_used, 0, "the replaced result's chunks were released");

    static uint8_t args[1000];
    memset(args, 0x5a, sizeof args);
    px_id large = submit_run(r, "replace", args, sizeof args, 0);
    cr_assert_eq(px_join(r, large, 1.0, buf, sizeof buf, &len), 0);
    cr_assert_eq(len, 1000);
    cr_assert_eq(memcmp(buf, args, 1000), 0);
    cr_assert_eq(info_of(r).arena_used, (uint64_t)px__arena_chunks(r, 1000) * r->hdr->chunk_size,
                 "only the final result holds chunks");
    px_region_close(r);
}

Test(future, result_with_a_full_arena_is_enomem)
{
    /* 64 chunks of 128 bytes (max_payload 8192): one full-size payload
     * fills the arena. */
    px_region *r = open_r(64, 64 * 128);
    static uint8_t args[MAXP];
    px_id hog = submit(r, "echo", args, sizeof args, 0);
    cr_assert_eq(info_of(r).arena_used, 64 * 128);
    uint32_t n = 100;
    px_id id = submit_run(r, "big", &n, sizeof n, 0);
    px_task_info ti;
    cr_assert_eq(px_join(r, id, 1.0, NULL, 0, NULL), PX_ETASKFAILED);
    cr_assert_eq(px_info(r, id, &ti), 0);
    char want[64];
    snprintf(want, sizeof want, "px_result: %d", -ENOMEM);
    cr_assert_str_eq(ti.error, want);
    cr_assert_eq(px_status(r, hog), PX_PENDING);
    px_region_close(r);
}

static void *join_main(void *p)
{
    struct joiner *j = p;
    size_t len;
    j->rc = px_join(j->r, j->id, 5.0, &j->got, sizeof j->got, &len);
    return NULL;
}

Test(future, concurrent_joiners_all_wake)
{
    px_region *r = open_r(64, 64 * MAXP);
    uint32_t ms = 150;
    px_id id = submit(r, "nap", &ms, sizeof ms, 0);
    enum { J = 4 };
    pthread_t th[J];
    struct joiner js[J];
    for (int i = 0; i < J; i++) {
        js[i] = (struct joiner){r, id, 1, 0};
        pthread_create(&th[i], NULL, join_main, &js[i]);
    }
    struct later l = {r, id, 0.05};
    pthread_t runner;
    double t0 = px_test_now();
    pthread_create(&runner, NULL, run_later, &l);
    for (int i = 0; i < J; i++)
        pthread_join(th[i], NULL);
    double waited = px_test_now() - t0;
    pthread_join(runner, NULL);
    for (int i = 0; i < J; i++) {
        cr_assert_eq(js[i].rc, 0, "joiner %d: %s", i, px_strerror(js[i].rc));
        cr_assert_eq(js[i].got, 150);
    }
    cr_assert_lt(waited, 1.5, "every joiner woke at the finish (%.3f s)", waited);
    cr_assert_eq(atomic_load(&r->slots[PX__ID_IDX(id)].waiters), 0);
    px_region_close(r);
}

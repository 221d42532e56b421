/*
 * Unique tasks: while a task with a key is not finished, a submit with the
 * same key creates nothing and answers with that task (also from other
 * threads and processes at once, and after a recovery from the log); once
 * it finished, the key is free again; a process killed holding a shard's
 * lock blocks no one.
 */
#include "common.h"
#include "persist/durable.h"
#include "persist/log.h"
#include "shm/region.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/wait.h>

static char rname[64], dir[64];

static void fini(void)
{
    px_region_destroy(rname);
    if (dir[0])
        px_test_rmtree(dir);
}

TestSuite(keys, .fini = fini, .timeout = 60);

enum { NKEYS = 64 };

/* Per key, shared with children: runs in flight, most ever, runs. */
struct flight {
    _Atomic int now[NKEYS], most[NKEYS], runs[NKEYS];
};
static struct flight *fl;

static int keyed(px_ctx *ctx, const void *a, size_t n)
{
    uint32_t k;
    if (n != sizeof k)
        return px_fail(ctx, "bad args");
    memcpy(&k, a, sizeof k);
    k %= NKEYS;
    int now = atomic_fetch_add(&fl->now[k], 1) + 1;
    int most = atomic_load(&fl->most[k]);
    while (now > most && !atomic_compare_exchange_weak(&fl->most[k], &most, now))
        ;
    usleep(200);
    atomic_fetch_sub(&fl->now[k], 1);
    atomic_fetch_add(&fl->runs[k], 1);
    return 0;
}

static px_region *open_r(const px_region_opts *o)
{
    if (!fl)
        fl = px_test_shared(sizeof *fl);
    memset(fl, 0, sizeof *fl);
    px_region_opts d = {.capacity = 1024, .reap_interval_s = 0.02};
    px_region *r = px_test_region(rname, sizeof rname, o ? o : &d);
    cr_assert_eq(
        px_task_register(r, &(px_task_def){.name = "keyed", .fn = keyed, .mode = PX_THREAD}), 0);
    return r;
}

static int submit_key(px_region *r, uint32_t k, const char *key, const px_submit_opts *base,
                      px_id *id)
{
    px_submit_opts o = base ? *base : (px_submit_opts){0};
    o.key = key;
    o.timeout_s = -1;
    return px_submit(r, "keyed", &k, sizeof k, &o, id);
}

Test(keys, a_live_key_answers_with_its_task_and_a_finished_one_frees_it)
{
    px_region *r = open_r(NULL);
    px_id a, b, c, d;
    cr_assert_eq(submit_key(r, 0, "order-17", NULL, &a), 0);
    cr_assert_eq(submit_key(r, 0, "order-17", NULL, &b), 1, "the same key again");
    cr_assert_eq(b, a);
    cr_assert_eq(submit_key(r, 1, "order-18", NULL, &c), 0);
    cr_assert_neq(c, a);
    px_region_info ri;
    cr_assert_eq(px_region_info_get(r, &ri), 0);
    cr_assert_eq(ri.slots_used, 2, "nothing was created for the duplicate");
    px_workers *w = px_test_workers(r, 1, 1);
    cr_assert_eq(px_join(r, a, 5, NULL, 0, NULL), 0);
    cr_assert_eq(submit_key(r, 0, "order-17", NULL, &d), 0, "finished: the key is free");
    cr_assert_neq(d, a);
    cr_assert_eq(px_join(r, d, 5, NULL, 0, NULL), 0);
    cr_assert_eq(atomic_load(&fl->runs[0]), 2);
    cr_assert_eq(px_workers_stop(w), 0);
    px_job j = {"keyed", "k", 1};
    px_id ids[1];
    cr_assert_eq(px_submit_many(r, &j, 1, &(px_submit_opts){.key = "x"}, ids), -EINVAL);
    cr_assert_eq(px_region_close(r), 0);
}

Test(keys, a_scheduled_or_cancelled_task_holds_or_frees_its_key)
{
    px_region *r = open_r(NULL);
    px_id a, b;
    cr_assert_eq(submit_key(r, 2, "later", &(px_submit_opts){.delay_s = 30}, &a), 0);
    cr_assert_eq(submit_key(r, 2, "later", NULL, &b), 1);
    cr_assert_eq(b, a);
    cr_assert_eq(px_status(r, a), PX_SCHEDULED);
    cr_assert_eq(px_cancel(r, a), 0);
    cr_assert_eq(submit_key(r, 2, "later", NULL, &b), 0, "cancelled is finished");
    cr_assert_neq(b, a);
    cr_assert_eq(px_region_close(r), 0);
}

struct racer {
    px_region *r;
    int seed;
};

static void *race(void *p)
{
    struct racer *rc = p;
    char key[16];
    for (int i = 0; i < 2000; i++) {
        uint32_t k = (uint32_t)(i * 7 + rc->seed) % NKEYS;
        snprintf(key, sizeof key, "k%u", k);
        px_id id;
        int rv = submit_key(rc->r, k, key, NULL, &id);
        if (rv != 0 && rv != 1)
            return (void *)1;
    }
    return NULL;
}

Test(keys, racing_threads_never_run_one_key_twice_at_once)
{
    px_region *r = open_r(NULL);
    px_workers *w = px_test_workers(r, 4, 1);
    pthread_t th[4];
    struct racer rc[4];
    for (int i = 0; i < 4; i++) {
        rc[i] = (struct racer){r, i};
        cr_assert_eq(pthread_create(&th[i], NULL, race, &rc[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        void *res;
        pthread_join(th[i], &res);
        cr_assert_null(res, "a submit failed");
    }
    px_region_info ri;
    double end = px_test_now() + 10;
    do
        cr_assert_eq(px_region_info_get(r, &ri), 0);
    while (ri.queued > 0 && px_test_now() < end && !usleep(5000));
    cr_assert_eq(px_workers_stop(w), 0);
    int runs = 0;
    for (int k = 0; k < NKEYS; k++) {
        cr_assert_leq(atomic_load(&fl->most[k]), 1, "key %d ran %d at once", k,
                      atomic_load(&fl->most[k]));
        runs += atomic_load(&fl->runs[k]);
    }
    cr_assert_gt(runs, 0);
    cr_assert_lt(runs, 8000, "duplicates were folded");
    cr_assert_eq(px_region_close(r), 0);
}

Test(keys, processes_submitting_one_key_at_once_get_one_task)
{
    px_region *r = open_r(NULL); /* no workers: every task stays PENDING */
    enum { KIDS = 4 };
    px_id *got = px_test_shared(sizeof(px_id) * KIDS * NKEYS);
    pid_t kids[KIDS];
    for (int c = 0; c < KIDS; c++) {
        kids[c] = fork();
        cr_assert_geq(kids[c], 0);
        if (kids[c] == 0) {
            px_region *cr;
            if (px_region_open(rname, NULL, &cr))
                _exit(2);
            char key[16];
            for (uint32_t k = 0; k < NKEYS; k++) {
                snprintf(key, sizeof key, "p%u", k);
                int rv = submit_key(cr, k, key, NULL, &got[c * NKEYS + k]);
                if (rv != 0 && rv != 1)
                    _exit(3);
            }
            px_region_close(cr);
            _exit(0);
        }
    }
    for (int c = 0; c < KIDS; c++) {
        int st;
        cr_assert_eq(waitpid(kids[c], &st, 0), kids[c]);
        cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child %d: 0x%x", c, st);
    }
    for (uint32_t k = 0; k < NKEYS; k++)
        for (int c = 1; c < KIDS; c++)
            cr_assert_eq(got[c * NKEYS + k], got[k], "key %u: two tasks", k);
    px_region_info ri;
    cr_assert_eq(px_region_info_get(r, &ri), 0);
    cr_assert_eq(ri.slots_used, NKEYS);
    cr_assert_eq(px_region_close(r), 0);
}

Test(keys, a_process_killed_holding_a_shard_lock_blocks_no_one)
{
    px_region *r = open_r(NULL);
    uint64_t h = px__key_hash("stuck", 5);
    int ready[2];
    cr_assert_eq(pipe(ready), 0);
    pid_t kid = fork();
    cr_assert_geq(kid, 0);
    if (kid == 0) {
        px_region *cr;
        if (px_region_open(rname, NULL, &cr))
            _exit(2);
        px__keys_lock(cr, h);
        (void)!write(ready[1], "x", 1);
        pause();
        _exit(0);
    }
    char c;
    cr_assert_eq(read(ready[0], &c, 1), 1);
    kill(kid, SIGKILL);
    waitpid(kid, NULL, 0);
    px_id a, b;
    cr_assert_eq(submit_key(r, 3, "stuck", NULL, &a), 0);
    cr_assert_eq(submit_key(r, 3, "stuck", NULL, &b), 1);
    cr_assert_eq(a, b);
    cr_assert_eq(px_region_close(r), 0);
}

Test(keys, a_key_holds_again_after_recovery_from_the_log)
{
    px_test_tmpdir(dir, sizeof dir, "keys");
    px_region_opts o = {.capacity = 256, .durability = PX_DURABLE_SYNC, .log_dir = dir};
    px_region *r = open_r(&o);
    px_id a, b;
    cr_assert_eq(submit_key(r, 4, "invoice-9", &(px_submit_opts){.delay_s = 60}, &a), 0);
    /* A checkpoint writes the task again, with its key. */
    uint64_t dropped;
    cr_assert_eq(px__checkpoint(r, &dropped), 0);
    struct px__log log;
    cr_assert_eq(px__log_load(dir, &log), 0);
    int copies = 0;
    for (size_t i = 0; i < log.nrecs; i++) {
        struct px__rec_submit sub;
        if (px__rec_submit_get(log.recs[i], &sub) && sub.id == a)
            copies += sub.key == px__key_hash("invoice-9", 9) && sub.due_ns != 0;
    }
    px__log_free(&log);
    cr_assert_eq(copies, 2, "the submit and the checkpoint's copy both carry the key");
    cr_assert_eq(px_region_close(r), 0);
    cr_assert_eq(px_region_destroy(rname), 0);
    cr_assert_eq(px_region_open(rname, &o, &r), 0);
    cr_assert_eq(px_status(r, a), PX_SCHEDULED);
    cr_assert_eq(submit_key(r, 4, "invoice-9", NULL, &b), 1, "the key came back with the task");
    cr_assert_eq(b, a);
    cr_assert_eq(px_region_close(r), 0);
}

Test(keys, a_full_shard_refuses_and_leaves_nothing)
{
    /* 512 slots: 16 entries a shard. Seventeen keys of one shard. */
    px_region *r = open_r(&(px_region_opts){.capacity = 512});
    char keys[17][16];
    int n = 0;
    uint64_t shard = UINT64_MAX;
    for (int i = 0; n < 17 && i < 100000; i++) {
        char k[16];
        snprintf(k, sizeof k, "s%d", i);
        uint64_t s = px__key_hash(k, strlen(k)) >> 58;
        if (shard == UINT64_MAX)
            shard = s;
        if (s == shard)
            memcpy(keys[n++], k, sizeof k);
    }
    cr_assert_eq(n, 17);
    px_id id;
    for (int i = 0; i < 16; i++)
        cr_assert_eq(submit_key(r, 0, keys[i], NULL, &id), 0, "key %d", i);
    px_region_info before, after;
    cr_assert_eq(px_region_info_get(r, &before), 0);
    cr_assert_eq(submit_key(r, 0, keys[16], NULL, &id), -EAGAIN);
    cr_assert_eq(px_region_info_get(r, &after), 0);
    cr_assert_eq(after.slots_used, before.slots_used, "the refused submit left its slot");
    cr_assert_eq(px_region_close(r), 0);
}

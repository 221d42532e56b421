/*
 * Durable regions under kill -9: producer and worker processes are killed
 * at random moments during a stream of sync-mode submits; then the shared
 * memory is destroyed (what a reboot does) and the region recovered from
 * its log. Every submit that returned 0 must be back, PENDING or finished
 * with its result intact; nothing else may be, beyond what each killed
 * producer had in flight: one submit, or for producer 0, which submits
 * batches of BATCH with px_submit_many (logged as SUBMIT_MANY records, one
 * of them open in its log ring while it fills slots), one batch.
 */
#include "it.h"

#define PRODUCERS 3
#define MAXSEQ 4096
#define ROUNDS 3
#define BATCH 16

struct dargs {
    uint32_t producer, seq;
    uint64_t magic;
};

#define MAGIC 0x5eed0f00dull

static int dc_echo(px_ctx *ctx, const void *args, size_t len)
{
    return px_result(ctx, args, len);
}

static const px_task_def def = {.name = "dc_echo", .fn = dc_echo, .mode = PX_THREAD};

static char dir[64], logdir[128];

static void fini(void)
{
    it_cleanup();
    if (dir[0])
        px_test_rmtree(dir);
}

TestSuite(durable_crash, .fini = fini, .timeout = 120);

static px_region_opts opts(void)
{
    return (px_region_opts){.capacity = 1u << 15,
                            .max_payload = 1024,
                            .durability = PX_DURABLE_SYNC,
                            .log_dir = logdir};
}

/* Producers wait for room rather than fail: this test is about kills. */
static const px_submit_opts wait_room = {.timeout_s = 10};

/* acked[p][seq]: the id of producer p's submit seq once it returned 0. */
static _Atomic uint64_t (*acked)[MAXSEQ];

static void producer(uint32_t p)
{
    px_region *r;
    px_region_opts o = opts();
    o.flags = PX_REGION_ATTACH;
    if (px_region_open(it_region, &o, &r) != 0 || px_task_register(r, &def) != 0)
        _exit(2);
    if (p == 0) {
        struct dargs a[BATCH];
        px_job jobs[BATCH];
        px_id ids[BATCH];
        for (uint32_t seq = 0; seq < MAXSEQ; seq += BATCH) {
            for (uint32_t i = 0; i < BATCH; i++) {
                a[i] = (struct dargs){p, seq + i, MAGIC};
                jobs[i] = (px_job){.task = def.name, .args = &a[i], .len = sizeof a[i]};
            }
            int k = px_submit_many(r, jobs, BATCH, &wait_room, ids);
            if (k != BATCH) {
                fprintf(stderr, "producer 0: px_submit_many gave %d: %s\n", k, px_strerror(k));
                _exit(3);
            }
            for (uint32_t i = 0; i < BATCH; i++)
                atomic_store(&acked[p][seq + i], ids[i]);
        }
        _exit(0);
    }
    for (uint32_t seq = 0; seq < MAXSEQ; seq++) {
        struct dargs a = {p, seq, MAGIC};
        px_id id;
        int rc = px_submit(r, def.name, &a, sizeof a, &wait_room, &id);
        if (rc != 0) {
            fprintf(stderr, "producer %u: px_submit: %s\n", p, px_strerror(rc));
            _exit(3);
        }
        atomic_store(&acked[p][seq], id);
    }
    _exit(0);
}

static void worker(void)
{
    px_region *r;
    px_region_opts o = opts();
    o.flags = PX_REGION_ATTACH;
    px_workers *w;
    if (px_region_open(it_region, &o, &r) != 0 || px_task_register(r, &def) != 0 ||
        px_workers_start(r, &(px_workers_opts){.threads = 2, .processes = 1}, &w) != 0)
        _exit(2);
    for (;;)
        pause();
}

static pid_t spawn(int p)
{
    pid_t pid = it_fork();
    if (pid == 0) {
        if (p < 0)
            worker();
        producer((uint32_t)p);
    }
    return pid;
}

/* Checks the recovered region against what was acknowledged. */
static void check(px_region *r, const px_recovery_info *rec, int round)
{
    uint64_t nacked = 0, finished = 0;
    for (int p = 0; p < PRODUCERS; p++)
        for (int s = 0; s < MAXSEQ; s++) {
            px_id id = atomic_load(&acked[p][s]);
            if (!id)
                continue;
            nacked++;
            int st = px_status(r, id);
            cr_assert(st == PX_PENDING || st == PX_SUCCESS, "round %d: acked %d/%d is %d", round, p,
                      s, st);
            if (st != PX_SUCCESS)
                continue;
            finished++;
            struct dargs out;
            size_t len;
            cr_assert_eq(px_try_join(r, id, &out, sizeof out, &len), 0);
            cr_assert(len == sizeof out && out.producer == (uint32_t)p && out.seq == (uint32_t)s &&
                          out.magic == MAGIC,
                      "round %d: result of %d/%d intact", round, p, s);
        }
    cr_assert_gt(nacked, 0, "round %d: some submits were acknowledged", round);
    cr_assert_geq(rec->restored, nacked, "round %d: all %lu acked back", round,
                  (unsigned long)nacked);
    cr_assert_leq(rec->restored, nacked + PRODUCERS - 1 + BATCH,
                  "round %d: %lu restored for %lu acked", round, (unsigned long)rec->restored,
                  (unsigned long)nacked);
    fprintf(stderr, "round %d: %lu acked, %lu restored (%lu finished), %lu records, %lu cut\n",
            round, (unsigned long)nacked, (unsigned long)rec->restored, (unsigned long)finished,
            (unsigned long)rec->records, (unsigned long)rec->bytes_cut);
}

/* After recovery the tasks still run: every pending one finishes. */
static void drain(px_region *r)
{
    px_workers *w;
    cr_assert_eq(px_workers_start(r, &(px_workers_opts){.threads = 2, .processes = 1}, &w), 0);
    for (int p = 0; p < PRODUCERS; p++)
        for (int s = 0; s < MAXSEQ; s++) {
            px_id id = atomic_load(&acked[p][s]);
            struct dargs out;
            size_t len;
            if (id)
                cr_assert_eq(px_join(r, id, 10, &out, sizeof out, &len), 0, "%d/%d ran", p, s);
        }
    cr_assert_eq(px_workers_stop(w), 0);
}

Test(durable_crash, kill9_producers_and_workers_then_lose_the_memory)
{
    uint64_t rs = px_test_seed();
    px_test_tmpdir(dir, sizeof dir, "dcrash");
    acked = it_shared(sizeof(_Atomic uint64_t) * PRODUCERS * MAXSEQ);
    for (int round = 0; round < ROUNDS; round++) {
        snprintf(logdir, sizeof logdir, "%s/log%d", dir, round);
        memset((void *)acked, 0, sizeof(_Atomic uint64_t) * PRODUCERS * MAXSEQ);
        px_region_opts o = opts();
        px_region *r = it_region_new(&o);
        cr_assert_eq(px_task_register(r, &def), 0);
        pid_t kids[PRODUCERS + 1];
        for (int p = 0; p < PRODUCERS; p++)
            kids[p] = spawn(p);
        kids[PRODUCERS] = spawn(-1);
        /* The stream is on once every producer has had a submit
         * acknowledged (a loaded machine can take a while to start them). */
        double until = px_test_now() + 20;
        for (int p = 0; p < PRODUCERS; p++)
            while (atomic_load(&acked[p][0]) == 0) {
                int st;
                cr_assert_neq(waitpid(kids[p], &st, WNOHANG), kids[p],
                              "round %d: producer %d ended (status 0x%x) before its first ack",
                              round, p, st);
                if (px_test_now() > until)
                    break; /* slow to start (seen under ASan): the kills begin anyway */
                it_sleep(0.001);
            }
        /* Kill children at random moments, replacing killed workers, so
         * that runs are cut at every step too. */
        for (int k = 0; k < 6; k++) {
            it_sleep(it_uniform(&rs, 0.02, 0.08));
            int victim = (int)(it_rand(&rs) % (PRODUCERS + 1));
            if (kids[victim] <= 0)
                continue; /* a producer already killed stays dead */
            it_kill_wait(kids[victim]);
            kids[victim] = victim == PRODUCERS ? spawn(-1) : 0;
        }
        for (int i = 0; i <= PRODUCERS; i++)
            if (kids[i] > 0)
                it_kill_wait(kids[i]);
        cr_assert_eq(px_region_close(r), 0);
        cr_assert_eq(px_region_destroy(it_region), 0);

        px_recovery_info rec;
        px_region *rr;
        o = opts();
        o.flags = PX_REGION_CREATE;
        cr_assert_eq(px_region_open(it_region, &o, &rr), 0);
        cr_assert_eq(px_task_register(rr, &def), 0);
        cr_assert_eq(px_region_recovery(rr, &rec), 0);
        check(rr, &rec, round);
        drain(rr);
        cr_assert_eq(px_region_close(rr), 0);
        px_region_destroy(it_region);
    }
}

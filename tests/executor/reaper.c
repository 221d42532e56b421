/*
 * The reaper, step by step: a process that died between two steps of a
 * protocol is staged exactly (a proc entry of a process that has exited,
 * and the slot, chunks and lanes it would have left), then px__reap() must
 * leave the region as the protocol's comments say.
 */
#include "common.h"
#include "executor/executor.h"

#include <errno.h>
#include <string.h>
#include <sys/wait.h>

static char rname[64];

static void cleanup(void)
{
    px_region_destroy(rname);
}

TestSuite(reaper, .fini = cleanup);

static int echo(px_ctx *ctx, const void *args, size_t len)
{
    return px_result(ctx, args, len);
}

static _Atomic int no_stop;

static px_region *open_r(void)
{
    px_region *r = px_test_region(rname, sizeof rname,
                                  &(px_region_opts){.capacity = 64, .lanes = 16, .lane_depth = 64});
    cr_assert_eq(px_task_register(r, &(px_task_def){.name = "echo", .fn = echo, .mode = PX_THREAD}),
                 0);
    return r;
}

/* A proc entry for a process that has exited: what a kill -9 leaves. */
static uint32_t dead_proc(px_region *r)
{
    pid_t pid = fork();
    if (pid == 0)
        _exit(0);
    cr_assert_gt(pid, 0);
    uint64_t st = 0;
    waitpid(pid, NULL, 0);
    for (uint32_t i = 0; i < r->hdr->max_procs; i++) {
        struct px__proc *p = &r->procs[i];
        if (atomic_load(&p->state) != PX__PROC_FREE)
            continue;
        p->pid = pid;
        p->start_time = st;
        atomic_store(&p->state, PX__PROC_ALIVE);
        return i;
    }
    cr_assert_fail("no free proc entry");
    return 0;
}

/* Reserves a slot as process `owner` and fills it with args of len bytes
 * (in the arena when long), leaving it in `state`. */
static px_id stage(px_region *r, uint32_t owner, uint32_t state, size_t len)
{
    struct px__tls *t = px__tls_get(r);
    px_id id;
    cr_assert_eq(px__slot_reserve(r, t, 0, &id), 0);
    struct px__slot *s = &r->slots[PX__ID_IDX(id)];
    uint8_t args[200];
    memset(args, 0x5a, sizeof args);
    uint32_t chunk = PX__NO_CHUNK;
    if (len > PX__INLINE_ARGS)
        cr_assert_eq(px__arena_alloc(r, t, id, len, &chunk), 0);
    memcpy(chunk == PX__NO_CHUNK ? s->args : px__arena_ptr(r, chunk), args, len);
    atomic_store(&s->def, (uint32_t)px__def_find(r, "echo"));
    atomic_store(&s->queue, 0);
    atomic_store(&s->args_len, (uint32_t)len);
    atomic_store(&s->args_chunk, chunk);
    atomic_store(&s->out_chunk, PX__NO_CHUNK);
    atomic_store(&s->out_len, 0);
    uint64_t c = atomic_load(&s->ctl);
    atomic_store(&s->ctl, PX__CTL(PX__CTL_GEN(c), state, owner + 1, state == PX__S_RUNNING, 0));
    return id;
}

static px_region_info info_of(px_region *r)
{
    px_region_info i;
    cr_assert_eq(px_region_info_get(r, &i), 0);
    return i;
}

/* Takes and runs every task the lanes hold; returns how many ran. */
static int run_all(px_region *r)
{
    struct px__scan scan = {0};
    uint64_t claimed;
    px_id id;
    int n = 0;
    while ((id = px__take(r, 1, PX_THREAD, &scan, &claimed)) != 0) {
        cr_assert_eq(px__run(r, id, claimed, &no_stop, NULL, NULL, 0, NULL), PX__DONE_OK);
        n++;
    }
    return n;
}

Test(reaper, producer_dead_while_reserved_frees_slot_and_chunks)
{
    px_region *r = open_r();
    uint32_t dead = dead_proc(r);
    px_id id = stage(r, dead, PX__S_RESERVED, 150);
    cr_assert_gt(info_of(r).arena_used, 0);
    cr_assert_eq(px__reap(r), 0, "nothing to requeue");
    px_region_info i = info_of(r);
    cr_assert_eq(i.slots_used, 0);
    cr_assert_eq(i.arena_used, 0, "the sweep released the dead producer's chunks");
    cr_assert_eq(px_status(r, id), -ENOENT);
    cr_assert_eq(atomic_load(&r->procs[dead].state), PX__PROC_FREE);
    px_region_close(r);
}

Test(reaper, producer_dead_between_pending_and_push_gets_its_task_pushed)
{
    px_region *r = open_r();
    uint32_t dead = dead_proc(r);
    px_id id = stage(r, dead, PX__S_PENDING, 100);
    cr_assert_eq(info_of(r).queued, 0, "the task is in no lane");
    cr_assert_eq(run_all(r), 0);
    px__reap(r);
    cr_assert_eq(info_of(r).queued, 1, "the reaper pushed it");
    cr_assert_eq(run_all(r), 1);
    uint8_t out[200];
    size_t n;
    cr_assert_eq(px_join(r, id, 1, out, sizeof out, &n), 0);
    cr_assert_eq(n, 100);
    cr_assert_eq(out[99], 0x5a, "the args survived the producer");
    px_region_close(r);
}

Test(reaper, worker_dead_while_running_requeues_with_the_attempt_counted)
{
    px_region *r = open_r();
    uint32_t dead = dead_proc(r);
    px_id id = stage(r, dead, PX__S_RUNNING, 8);
    /* A result chunk the dead worker had claimed. */
    uint32_t stray;
    cr_assert_eq(px__arena_alloc(r, px__tls_get(r), id, 150, &stray), 0);
    cr_assert_eq(px__reap(r), 1);
    cr_assert_eq(px_status(r, id), PX_PENDING);
    cr_assert_eq(info_of(r).arena_used, 0, "the stray result chunk is released");
    cr_assert_eq(run_all(r), 1);
    px_task_info ti;
    cr_assert_eq(px_info(r, id, &ti), 0);
    cr_assert_eq(ti.state, PX_SUCCESS);
    cr_assert_eq(ti.attempts, 2, "the interrupted run counts");
    px_region_close(r);
}

Test(reaper, a_dead_reaper_is_taken_over)
{
    px_region *r = open_r();
    uint32_t worker = dead_proc(r), reaper = dead_proc(r);
    px_id id = stage(r, worker, PX__S_RUNNING, 8);
    /* The reaper died after taking the worker's entry, before any step. */
    atomic_store(&r->procs[worker].state, PX__PROC_REAPING + reaper);
    cr_assert_eq(px__reap(r), 1);
    cr_assert_eq(px_status(r, id), PX_PENDING);
    cr_assert_eq(atomic_load(&r->procs[worker].state), PX__PROC_FREE);
    cr_assert_eq(atomic_load(&r->procs[reaper].state), PX__PROC_FREE);
    cr_assert_eq(run_all(r), 1);
    px_region_close(r);
}

Test(reaper, a_live_reaper_is_left_alone)
{
    px_region *r = open_r();
    /* Another live process (here: a second handle of ours) is reaping. */
    px_region *other;
    cr_assert_eq(px_region_open(rname, NULL, &other), 0);
    uint32_t worker = dead_proc(r);
    px_id id = stage(r, worker, PX__S_RUNNING, 8);
    atomic_store(&r->procs[worker].state, PX__PROC_REAPING + other->self);
    cr_assert_eq(px__reap(r), 0);
    cr_assert_eq(px_status(r, id), PX_RUNNING, "not taken from a live reaper");
    px_region_close(other);
    px_region_close(r);
}

Test(reaper, waiter_counts_of_a_dead_process_are_taken_back)
{
    px_region *r = open_r();
    uint32_t dead = dead_proc(r);
    atomic_fetch_add(&r->hdr->room_waiters, 2);
    atomic_store(&r->procs[dead].waiting[PX__WAIT_ROOM], 2);
    atomic_fetch_add(&r->hdr->sleepers[3], 1);
    atomic_store(&r->procs[dead].sleeping[3], 1);
    px__reap(r);
    cr_assert_eq(atomic_load(&r->hdr->room_waiters), 0);
    cr_assert_eq(atomic_load(&r->hdr->sleepers[3]), 0);
    px__reap(r);
    cr_assert_eq(atomic_load(&r->hdr->room_waiters), 0, "taken back once only");
    px_region_close(r);
}

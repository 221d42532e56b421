/*
 * Task slots: reservation, generations, stale ids, and what a producer sees
 * when the region has no room.
 */
#include "common.h"
#include "executor/executor.h"
#include "shm/region.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>

static char rname[64];

static void cleanup(void)
{
    px_region_destroy(rname);
}

TestSuite(slot, .fini = cleanup);

static int echo(px_ctx *ctx, const void *args, size_t len)
{
    return px_result(ctx, args, len);
}

static px_region *open_small(uint32_t capacity, uint32_t lane_depth)
{
    px_region *r = px_test_region(rname, sizeof rname,
                                  &(px_region_opts){.capacity = capacity,
                                                    .max_payload = 4096,
                                                    .arena_bytes = 256 * 64,
                                                    .lanes = 8,
                                                    .lane_depth = lane_depth});
    cr_assert_eq(px_task_register(r, &(px_task_def){.name = "echo", .fn = echo, .mode = PX_THREAD}),
                 0);
    return r;
}

static _Atomic int no_stop;

/* Takes and runs one task on the calling thread; returns its id or 0. */
static px_id run_one(px_region *r)
{
    struct px__scan scan = {0};
    uint64_t claimed;
    char err[PX__ERR_MAX];
    px_id id = px__take(r, ~0ull, PX_THREAD, &scan, &claimed);
    if (id)
        px__run(r, id, claimed, &no_stop, NULL, err, sizeof err, NULL);
    return id;
}

static px_region_info info_of(px_region *r)
{
    px_region_info info;
    cr_assert_eq(px_region_info_get(r, &info), 0);
    return info;
}

Test(slot, reserve_and_free_bump_the_generation)
{
    px_region *r = open_small(16, 8);
    struct px__tls *t = px__tls_get(r);
    px_id id;
    cr_assert_eq(px__slot_reserve(r, t, PX__F_EPHEMERAL, &id), 0);
    cr_assert_neq(id, 0);
    uint32_t idx = PX__ID_IDX(id);
    cr_assert_lt(idx, 16);
    uint64_t c = atomic_load(&r->slots[idx].ctl);
    cr_assert_eq(PX__CTL_STATE(c), PX__S_RESERVED);
    cr_assert_eq(PX__CTL_OWNER(c), r->self + 1, "owned by this process");
    cr_assert_eq(PX__CTL_FLAGS(c), PX__F_EPHEMERAL);
    cr_assert_eq(PX__CTL_ATT(c), 0);
    cr_assert_eq(PX__CTL_GEN(c), PX__ID_GEN(id), "the id carries the slot's generation");
    cr_assert_eq(px_status(r, id), PX_PENDING, "RESERVED reads as PENDING");
    cr_assert_eq(info_of(r).slots_used, 1);

    cr_assert(px__slot_free(r, idx, c));
    uint64_t c2 = atomic_load(&r->slots[idx].ctl);
    cr_assert_eq(PX__CTL_STATE(c2), PX__S_FREE);
    cr_assert_eq(PX__CTL_GEN(c2), PX__ID_GEN(id) + 1);
    cr_assert_eq(PX__CTL_OWNER(c2), 0);
    cr_assert_eq(PX__CTL_FLAGS(c2), 0);
    cr_assert_eq(px_status(r, id), -ENOENT);
    cr_assert_not(px__slot_free(r, idx, c), "a free with a stale ctl fails");
    cr_assert_eq(atomic_load(&r->slots[idx].ctl), c2);
    cr_assert_eq(info_of(r).slots_used, 0);

    /* Reserving the slot again gives a new id. */
    t->slot_cursor = idx;
    px_id again;
    cr_assert_eq(px__slot_reserve(r, t, 0, &again), 0);
    cr_assert_eq(PX__ID_IDX(again), idx);
    cr_assert_neq(again, id);
    cr_assert_eq(PX__ID_GEN(again), PX__ID_GEN(id) + 1);
    px_region_close(r);
}

Test(slot, generations_differ_between_slots_and_regions)
{
    px_region *r = open_small(64, 8);
    uint32_t g0 = PX__CTL_GEN(atomic_load(&r->slots[0].ctl));
    int same = 0;
    for (uint32_t i = 0; i < 64; i++) {
        uint32_t g = PX__CTL_GEN(atomic_load(&r->slots[i].ctl));
        cr_assert_neq(g, 0, "generation 0 is never used");
        same += g == g0;
    }
    cr_assert_lt(same, 4, "generations start from a per-region hash");
    px_region_close(r);
}

Test(slot, generation_skips_zero_on_wrap)
{
    px_region *r = open_small(16, 8);
    struct px__tls *t = px__tls_get(r);
    atomic_store(&r->slots[3].ctl, PX__CTL(UINT32_MAX, PX__S_FREE, 0, 0, 0));
    t->slot_cursor = 3;
    px_id id;
    cr_assert_eq(px__slot_reserve(r, t, 0, &id), 0);
    cr_assert_eq(id, PX__ID(UINT32_MAX, 3));
    cr_assert(px__slot_free(r, 3, atomic_load(&r->slots[3].ctl)));
    cr_assert_eq(PX__CTL_GEN(atomic_load(&r->slots[3].ctl)), 1, "0 is skipped");
    px_region_close(r);
}

Test(slot, reserve_until_full)
{
    px_region *r = open_small(8, 8);
    struct px__tls *t = px__tls_get(r);
    px_id ids[8], extra;
    uint32_t seen = 0;
    for (int i = 0; i < 8; i++) {
        cr_assert_eq(px__slot_reserve(r, t, 0, &ids[i]), 0);
        cr_assert_eq(seen & (1u << PX__ID_IDX(ids[i])), 0, "each slot reserved once");
        seen |= 1u << PX__ID_IDX(ids[i]);
    }
    cr_assert_eq(px__slot_reserve(r, t, 0, &extra), -EAGAIN);
    uint32_t idx = PX__ID_IDX(ids[5]);
    cr_assert(px__slot_free(r, idx, atomic_load(&r->slots[idx].ctl)));
    cr_assert_eq(px__slot_reserve(r, t, 0, &extra), 0);
    cr_assert_eq(PX__ID_IDX(extra), idx, "the freed slot is found from any cursor");
    px_region_close(r);
}

Test(slot, free_releases_the_slots_chunks)
{
    px_region *r = open_small(16, 8);
    struct px__tls *t = px__tls_get(r);
    px_id id;
    cr_assert_eq(px__slot_reserve(r, t, 0, &id), 0);
    struct px__slot *s = &r->slots[PX__ID_IDX(id)];
    uint32_t a, o;
    cr_assert_eq(px__arena_alloc(r, t, id, 300, &a), 0);
    cr_assert_eq(px__arena_alloc(r, t, id, 1000, &o), 0);
    atomic_store(&s->args_chunk, a);
    atomic_store(&s->args_len, 300);
    atomic_store(&s->out_chunk, o);
    atomic_store(&s->out_len, 1000);
    cr_assert_eq(px__slot_args(r, s), px__arena_ptr(r, a));
    cr_assert_eq(px__slot_out(r, s), px__arena_ptr(r, o));
    cr_assert_eq(info_of(r).arena_used, (5 + 16) * 64);
    cr_assert(px__slot_free(r, PX__ID_IDX(id), atomic_load(&s->ctl)));
    cr_assert_eq(info_of(r).arena_used, 0);

    /* Inline payloads point into the slot. */
    atomic_store(&s->args_chunk, PX__NO_CHUNK);
    atomic_store(&s->out_chunk, PX__NO_CHUNK);
    atomic_store(&s->args_len, PX__INLINE_ARGS);
    atomic_store(&s->out_len, PX__INLINE_OUT);
    cr_assert_eq(px__slot_args(r, s), s->args);
    cr_assert_eq(px__slot_out(r, s), s->out);
    /* Whatever shared memory says out of bounds gives NULL. */
    atomic_store(&s->args_len, PX__INLINE_ARGS + 1);
    atomic_store(&s->out_len, PX__INLINE_OUT + 1);
    cr_assert_null(px__slot_args(r, s), "inline but longer than the slot's bytes");
    cr_assert_null(px__slot_out(r, s));
    atomic_store(&s->args_len, 100);
    atomic_store(&s->args_chunk, r->hdr->nchunks);
    atomic_store(&s->out_chunk, r->hdr->nchunks + 5);
    cr_assert_null(px__slot_args(r, s), "chunk index beyond the arena");
    cr_assert_null(px__slot_out(r, s));
    atomic_store(&s->args_chunk, r->hdr->nchunks - 1);
    cr_assert_null(px__slot_args(r, s), "a run crossing the arena's end");
    atomic_store(&s->args_len, 64);
    cr_assert_eq(px__slot_args(r, s), px__arena_ptr(r, r->hdr->nchunks - 1));
    atomic_store(&s->args_chunk, 0);
    atomic_store(&s->args_len, r->hdr->max_payload + 1);
    cr_assert_null(px__slot_args(r, s), "longer than max_payload");
    px_region_close(r);
}

static void assert_gone(px_region *r, px_id id)
{
    px_task_info ti;
    char buf[16];
    size_t len = 99;
    cr_assert_eq(px_status(r, id), -ENOENT);
    cr_assert_eq(px_info(r, id, &ti), -ENOENT);
    cr_assert_eq(px_join(r, id, 1.0, buf, sizeof buf, &len), -ENOENT);
    cr_assert_eq(px_try_join(r, id, buf, sizeof buf, &len), -ENOENT);
    cr_assert_eq(px_forget(r, id), -ENOENT);
    cr_assert_eq(px_wait_any(r, &id, 1, 1.0), 0, "a gone task counts as finished");
}

Test(slot, stale_ids_answer_enoent)
{
    px_region *r = open_small(1, 8); /* one slot: the next task reuses it */
    px_id old, fresh;
    cr_assert_eq(px_submit(r, "echo", "a", 1, NULL, &old), 0);
    cr_assert_eq(run_one(r), old);
    cr_assert_eq(px_status(r, old), PX_SUCCESS);
    cr_assert_eq(px_forget(r, old), 0);
    assert_gone(r, old);

    cr_assert_eq(px_submit(r, "echo", "bb", 2, NULL, &fresh), 0);
    cr_assert_eq(PX__ID_IDX(fresh), PX__ID_IDX(old), "the same slot");
    cr_assert_neq(fresh, old);
    cr_assert_eq(px_status(r, fresh), PX_PENDING);
    assert_gone(r, old); /* the old id does not see the new task */
    cr_assert_eq(px_forget(r, old), -ENOENT, "and cannot free it");
    cr_assert_eq(px_status(r, fresh), PX_PENDING);

    cr_assert_eq(run_one(r), fresh);
    char out[4];
    size_t n;
    cr_assert_eq(px_join(r, old, 1.0, out, sizeof out, &n), -ENOENT,
                 "a stale id never reads another task's result");
    cr_assert_eq(px_join(r, fresh, 1.0, out, sizeof out, &n), 0);
    cr_assert_eq(n, 2);
    cr_assert_eq(memcmp(out, "bb", 2), 0);
    px_region_close(r);
}

Test(slot, invalid_ids_answer_enoent)
{
    px_region *r = open_small(16, 8);
    px_id id;
    cr_assert_eq(px_submit(r, "echo", NULL, 0, NULL, &id), 0);
    assert_gone(r, 0);
    assert_gone(r, PX__ID(PX__ID_GEN(id), 16)); /* index beyond capacity */
    assert_gone(r, PX__ID(0, PX__ID_IDX(id)));  /* generation 0 */
    assert_gone(r, id + (1ull << 32));          /* another generation */
    cr_assert_eq(px_status(r, id), PX_PENDING);
    cr_assert_eq(px_status(NULL, id), -EINVAL);
    px_region_close(r);
}

/* ---- No room ------------------------------------------------------------ */

static void fill_region(px_region *r, px_id *ids, int n)
{
    for (int i = 0; i < n; i++)
        cr_assert_eq(px_submit(r, "echo", &i, sizeof i, NULL, &ids[i]), 0, "submit %d", i);
}

Test(slot, region_full_without_waiting)
{
    px_region *r = open_small(4, 8);
    px_id ids[4], extra = 0;
    fill_region(r, ids, 4);
    double t0 = px_test_now();
    cr_assert_eq(px_submit(r, "echo", "x", 1, &(px_submit_opts){.timeout_s = 0}, &extra), -EAGAIN);
    cr_assert_eq(px_submit(r, "echo", "x", 1, NULL, &extra), -EAGAIN, "NULL opts: no wait");
    cr_assert_lt(px_test_now() - t0, 0.1, "did not wait");
    cr_assert_eq(extra, 0, "no id on failure");
    px_region_info info = info_of(r);
    cr_assert_eq(info.slots_used, 4);
    cr_assert_eq(info.queued, 4, "nothing else was published");
    px_region_close(r);
}

Test(slot, region_full_times_out)
{
    px_region *r = open_small(4, 8);
    px_id ids[4], extra;
    fill_region(r, ids, 4);
    double t0 = px_test_now();
    int rc = px_submit(r, "echo", "x", 1, &(px_submit_opts){.timeout_s = 0.3}, &extra);
    double waited = px_test_now() - t0;
    cr_assert_eq(rc, -ETIMEDOUT, "%s", px_strerror(rc));
    cr_assert_geq(waited, 0.28, "waited %.3f s", waited);
    cr_assert_lt(waited, 1.5, "waited %.3f s", waited);
    px_region_info info = info_of(r);
    cr_assert_eq(info.slots_used, 4);
    cr_assert_eq(info.queued, 4);
    cr_assert_eq(atomic_load(&r->hdr->room_waiters), 0, "the waiter left");
    px_region_close(r);
}

struct freer {
    px_region *r;
    double delay;
    px_id ran;
};

/* After a delay, runs one task and forgets it: one slot becomes free. */
static void *free_one_later(void *p)
{
    struct freer *f = p;
    usleep((useconds_t)(f->delay * 1e6));
    f->ran = run_one(f->r);
    if (f->ran)
        px_forget(f->r, f->ran);
    return NULL;
}

static void submit_when_room_frees(double timeout)
{
    px_region *r = open_small(4, 8);
    px_id ids[4], extra;
    fill_region(r, ids, 4);
    struct freer f = {r, 0.15, 0};
    pthread_t th;
    pthread_create(&th, NULL, free_one_later, &f);
    double t0 = px_test_now();
    int rc = px_submit(r, "echo", "late", 4, &(px_submit_opts){.timeout_s = timeout}, &extra);
    double waited = px_test_now() - t0;
    pthread_join(th, NULL);
    cr_assert_eq(rc, 0, "%s", px_strerror(rc));
    cr_assert_neq(f.ran, 0);
    cr_assert_geq(waited, 0.1, "it had to wait (%.3f s)", waited);
    cr_assert_lt(waited, 1.0, "woken when the slot was freed, not at the deadline (%.3f s)",
                 waited);
    cr_assert_eq(PX__ID_IDX(extra), PX__ID_IDX(f.ran), "it took the freed slot");
    cr_assert_eq(px_status(r, extra), PX_PENDING);
    px_region_close(r);
}

Test(slot, region_full_succeeds_when_room_frees)
{
    submit_when_room_frees(5.0);
}

Test(slot, region_full_waits_forever_until_room_frees)
{
    submit_when_room_frees(-1);
}

Test(slot, lane_full_waits_for_a_consumer)
{
    px_region *r = open_small(16, 2); /* two entries per lane */
    px_id a, b, c;
    cr_assert_eq(px_submit(r, "echo", NULL, 0, NULL, &a), 0);
    cr_assert_eq(px_submit(r, "echo", NULL, 0, NULL, &b), 0);
    cr_assert_eq(px_submit(r, "echo", NULL, 0, NULL, &c), -EAGAIN);
    cr_assert_eq(info_of(r).slots_used, 2, "the slot of a refused submit is freed");
    cr_assert_eq(px_submit(r, "echo", NULL, 0, &(px_submit_opts){.timeout_s = 0.2}, &c),
                 -ETIMEDOUT);
    cr_assert_eq(info_of(r).slots_used, 2);

    struct freer f = {r, 0.15, 0};
    pthread_t th;
    pthread_create(&th, NULL, free_one_later, &f);
    double t0 = px_test_now();
    int rc = px_submit(r, "echo", NULL, 0, &(px_submit_opts){.timeout_s = 5}, &c);
    double waited = px_test_now() - t0;
    pthread_join(th, NULL);
    cr_assert_eq(rc, 0, "%s", px_strerror(rc));
    cr_assert_lt(waited, 1.0, "woken when an entry was taken (%.3f s)", waited);
    cr_assert_eq(info_of(r).queued, 2);
    px_region_close(r);
}

Test(slot, arena_full_is_no_room)
{
    px_region *r = open_small(64, 64);
    static char big[4096];
    px_id ids[4], extra;
    /* 256 chunks of 64 bytes: four 4096-byte payloads fill the arena when
     * allocated from its start. */
    px__tls_get(r)->chunk_cursor = 0;
    for (int i = 0; i < 4; i++)
        cr_assert_eq(px_submit(r, "echo", big, sizeof big, NULL, &ids[i]), 0);
    cr_assert_eq(px_submit(r, "echo", big, sizeof big, NULL, &extra), -EAGAIN);
    cr_assert_eq(px_submit(r, "echo", big, sizeof big, &(px_submit_opts){.timeout_s = 0.1}, &extra),
                 -ETIMEDOUT);
    px_region_info info = info_of(r);
    cr_assert_eq(info.slots_used, 4, "the reserved slot was given back");
    cr_assert_eq(info.arena_used, 4 * 4096);
    cr_assert_eq(px_submit(r, "echo", big, PX__INLINE_ARGS, NULL, &extra), 0,
                 "inline args still fit");
    px_region_close(r);
}

static double cpu_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A producer waiting for room sleeps; it does not spin through its
 * timeout. */
static void waits_without_spinning(px_region *r, const void *args, size_t len, const char *what)
{
    px_id extra;
    double c0 = cpu_seconds(), t0 = px_test_now();
    int rc = px_submit(r, "echo", args, len, &(px_submit_opts){.timeout_s = 0.5}, &extra);
    double cpu = cpu_seconds() - c0, waited = px_test_now() - t0;
    cr_assert_eq(rc, -ETIMEDOUT, "%s: %s", what, px_strerror(rc));
    cr_assert_geq(waited, 0.45, "%s: waited %.3f s", what, waited);
    cr_assert_lt(cpu, 0.05, "%s: %.3f s of CPU while waiting %.3f s", what, cpu, waited);
}

Test(slot, waiting_for_a_slot_sleeps)
{
    px_region *r = open_small(4, 8);
    px_id ids[4];
    fill_region(r, ids, 4);
    waits_without_spinning(r, "x", 1, "region full");
    px_region_close(r);
}

Test(slot, waiting_for_a_lane_entry_sleeps)
{
    px_region *r = open_small(16, 2);
    px_id ids[2];
    fill_region(r, ids, 2);
    waits_without_spinning(r, "x", 1, "lane full");
    px_region_close(r);
}

Test(slot, waiting_for_arena_room_sleeps)
{
    px_region *r = open_small(64, 64);
    static char big[4096];
    px_id ids[4];
    px__tls_get(r)->chunk_cursor = 0;
    for (int i = 0; i < 4; i++)
        cr_assert_eq(px_submit(r, "echo", big, sizeof big, NULL, &ids[i]), 0);
    waits_without_spinning(r, big, sizeof big, "arena full");
    px_region_close(r);
}

static int tiny(px_ctx *ctx, const void *args, size_t len)
{
    (void)args, (void)len;
    return px_result(ctx, "ok", 2);
}

/* After a delay, runs one task (its args chunks are released when it
 * finishes; its slot stays, holding a small result). */
static void *run_one_later(void *p)
{
    struct freer *f = p;
    usleep((useconds_t)(f->delay * 1e6));
    f->ran = run_one(f->r);
    return NULL;
}

Test(slot, arena_room_freed_while_waiting)
{
    px_region *r = open_small(64, 64);
    cr_assert_eq(px_task_register(r, &(px_task_def){.name = "tiny", .fn = tiny, .mode = PX_THREAD}),
                 0);
    static char big[4096];
    px_id ids[4], extra;
    px__tls_get(r)->chunk_cursor = 0;
    for (int i = 0; i < 4; i++)
        cr_assert_eq(px_submit(r, "tiny", big, sizeof big, NULL, &ids[i]), 0);
    struct freer f = {r, 0.15, 0};
    pthread_t th;
    pthread_create(&th, NULL, run_one_later, &f);
    double t0 = px_test_now();
    int rc = px_submit(r, "tiny", big, sizeof big, &(px_submit_opts){.timeout_s = 5}, &extra);
    double waited = px_test_now() - t0;
    pthread_join(th, NULL);
    cr_assert_eq(rc, 0, "%s", px_strerror(rc));
    cr_assert_neq(f.ran, 0);
    cr_assert_eq(px_status(r, f.ran), PX_SUCCESS, "the finished task keeps its slot");
    cr_assert_lt(waited, 1.0, "woken when the args chunks were released (%.3f s)", waited);
    px_region_close(r);
}

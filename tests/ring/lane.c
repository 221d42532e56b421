/*
 * Lanes: the SPMC ring protocol (push, peek, advance) on a lane outside any
 * region, then lane ownership (px__lane_for) in a region.
 */
#include "common.h"
#include "ring/lanes.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#define MAXDEPTH 1024

static struct px__lane lane;
static _Atomic uint64_t ent[MAXDEPTH];

/* Resets the test lane to depth entries with both counters at base. */
static uint32_t lane_init(uint32_t depth, uint64_t base)
{
    cr_assert(depth <= MAXDEPTH && (depth & (depth - 1)) == 0);
    memset(&lane, 0, sizeof lane);
    atomic_store(&lane.head, base);
    atomic_store(&lane.tail, base);
    for (uint32_t i = 0; i < MAXDEPTH; i++)
        atomic_store(&ent[i], 0xdeadull);
    return depth - 1;
}

/* A tail bound for a consumer that has none: a reading of head. */
static uint64_t *no_bound(void)
{
    static _Thread_local uint64_t b;
    b = atomic_load(&lane.head);
    return &b;
}

/* Peek, then advance: what one consumer does when it wins. */
static bool pop(uint32_t mask, uint64_t *id)
{
    uint64_t pos;
    if (!px__lane_peek(&lane, ent, mask, &pos, id, no_bound()))
        return false;
    px__lane_advance(&lane, pos);
    return true;
}

Test(lane, empty_peek_fails)
{
    uint32_t mask = lane_init(8, 0);
    uint64_t pos = 77, id = 77;
    cr_assert_not(px__lane_peek(&lane, ent, mask, &pos, &id, no_bound()));
    cr_assert_eq(pos, 77, "a failed peek leaves pos alone");
    cr_assert_eq(id, 77);
    cr_assert_eq(px__lane_size(&lane), 0);
}

/* A consumer's tail bound spares it reading tail while entries remain
 * below the bound, and is refreshed, never trusted past, once it is used up. */
Test(lane, peek_uses_the_tail_bound_until_caught_up)
{
    uint32_t mask = lane_init(8, 5);
    uint64_t ids[2] = {11, 22}, pos, id, seen = 0;
    cr_assert_eq(px__lane_push(&lane, ent, mask, ids, 2), 2);
    cr_assert(px__lane_peek(&lane, ent, mask, &pos, &id, &seen));
    cr_assert_eq(seen, 7, "the first peek reads tail");
    cr_assert_eq(id, 11);
    px__lane_advance(&lane, pos);

    /* Tail moves but the bound says an entry is left: tail is not read. */
    uint64_t more = 33;
    cr_assert_eq(px__lane_push(&lane, ent, mask, &more, 1), 1);
    cr_assert(px__lane_peek(&lane, ent, mask, &pos, &id, &seen));
    cr_assert_eq(seen, 7, "tail was not read again");
    cr_assert_eq(id, 22);
    px__lane_advance(&lane, pos);

    /* Caught up with the bound: tail is read and the new entry found. */
    cr_assert(px__lane_peek(&lane, ent, mask, &pos, &id, &seen));
    cr_assert_eq(seen, 8);
    cr_assert_eq(id, 33);
    px__lane_advance(&lane, pos);
    cr_assert_not(px__lane_peek(&lane, ent, mask, &pos, &id, &seen));
    cr_assert_eq(atomic_load(&lane.head), 8, "head never passes tail");

    /* A bound left behind by other consumers is refreshed, not used. */
    seen = 6;
    cr_assert_not(px__lane_peek(&lane, ent, mask, &pos, &id, &seen));
    cr_assert_eq(seen, 8);
}

Test(lane, push_peek_advance)
{
    uint32_t mask = lane_init(8, 0);
    uint64_t ids[3] = {11, 22, 33}, pos, id;
    cr_assert_eq(px__lane_push(&lane, ent, mask, ids, 3), 3);
    cr_assert_eq(px__lane_size(&lane), 3);
    cr_assert_eq(atomic_load(&lane.tail), 3, "one publication for the batch");

    /* Peeking does not take. */
    cr_assert(px__lane_peek(&lane, ent, mask, &pos, &id, no_bound()));
    cr_assert_eq(pos, 0);
    cr_assert_eq(id, 11);
    cr_assert(px__lane_peek(&lane, ent, mask, &pos, &id, no_bound()));
    cr_assert_eq(id, 11, "peek twice reads the same entry");
    cr_assert_eq(px__lane_size(&lane), 3);

    px__lane_advance(&lane, 0);
    cr_assert_eq(atomic_load(&lane.head), 1);
    /* A second advance of the same position is a no-op: another consumer
     * already moved past it. */
    px__lane_advance(&lane, 0);
    cr_assert_eq(atomic_load(&lane.head), 1);
    /* An advance of a position not yet at head is a no-op too. */
    px__lane_advance(&lane, 2);
    cr_assert_eq(atomic_load(&lane.head), 1);

    cr_assert(px__lane_peek(&lane, ent, mask, &pos, &id, no_bound()));
    cr_assert_eq(pos, 1);
    cr_assert_eq(id, 22);
    px__lane_advance(&lane, pos);
    cr_assert(pop(mask, &id));
    cr_assert_eq(id, 33);
    cr_assert_not(pop(mask, &id));
    cr_assert_eq(px__lane_size(&lane), 0);
}

Test(lane, push_zero_publishes_nothing)
{
    uint32_t mask = lane_init(4, 5);
    uint64_t ids[1] = {9};
    cr_assert_eq(px__lane_push(&lane, ent, mask, ids, 0), 0);
    cr_assert_eq(atomic_load(&lane.tail), 5);
    cr_assert_eq(px__lane_size(&lane), 0);
}

Test(lane, full_lane_takes_a_prefix)
{
    uint32_t mask = lane_init(8, 0);
    uint64_t ids[12], id;
    for (int i = 0; i < 12; i++)
        ids[i] = 100 + (uint64_t)i;
    cr_assert_eq(px__lane_push(&lane, ent, mask, ids, 5), 5);
    cr_assert_eq(px__lane_push(&lane, ent, mask, ids + 5, 7), 3, "only the room left: a prefix");
    cr_assert_eq(px__lane_size(&lane), 8);
    cr_assert_eq(px__lane_push(&lane, ent, mask, ids + 8, 4), 0, "full");
    cr_assert_eq(atomic_load(&lane.tail), 8, "a refused push publishes nothing");

    /* Every entry is still intact: nothing was overwritten. */
    for (int i = 0; i < 2; i++) {
        cr_assert(pop(mask, &id));
        cr_assert_eq(id, 100 + (uint64_t)i);
    }
    cr_assert_eq(px__lane_push(&lane, ent, mask, ids + 8, 4), 2, "room for two after two pops");
    for (int i = 2; i < 10; i++) {
        cr_assert(pop(mask, &id));
        cr_assert_eq(id, 100 + (uint64_t)i, "FIFO across the wrap");
    }
    cr_assert_not(pop(mask, &id));
}

Test(lane, wraps_over_many_laps)
{
    unsigned seed = px_test_seed();
    srand(seed);
    uint32_t mask = lane_init(16, 0);
    uint64_t next_in = 1, next_out = 1, batch[32];
    while (next_out < 200000) {
        uint32_t n = (uint32_t)(rand() % 20);
        for (uint32_t i = 0; i < n; i++)
            batch[i] = next_in + i;
        uint64_t before = px__lane_size(&lane);
        uint32_t k = px__lane_push(&lane, ent, mask, batch, n);
        uint64_t room = 16 - before;
        cr_assert_eq(k, n < room ? n : room, "push took %u of %u with room %lu", k, n,
                     (unsigned long)room);
        next_in += k;
        uint32_t m = (uint32_t)(rand() % 20);
        for (uint32_t i = 0; i < m; i++) {
            uint64_t id;
            if (!pop(mask, &id)) {
                cr_assert_eq(next_out, next_in, "empty only when everything was taken");
                break;
            }
            cr_assert_eq(id, next_out, "FIFO (seed %u)", seed);
            next_out++;
        }
        cr_assert_eq(px__lane_size(&lane), next_in - next_out);
    }
    cr_assert_gt(atomic_load(&lane.tail), 16 * 1000, "many laps");
}

Test(lane, counters_cross_32_bits)
{
    /* Counters are 64-bit: crossing 2^32 changes nothing. */
    uint64_t base = (1ull << 32) - 3;
    uint32_t mask = lane_init(4, base);
    uint64_t ids[6] = {1, 2, 3, 4, 5, 6}, id;
    cr_assert_eq(px__lane_push(&lane, ent, mask, ids, 6), 4);
    cr_assert_eq(atomic_load(&lane.tail), base + 4);
    for (int i = 0; i < 4; i++) {
        cr_assert(pop(mask, &id));
        cr_assert_eq(id, (uint64_t)i + 1);
    }
    cr_assert_eq(px__lane_push(&lane, ent, mask, ids + 4, 2), 2);
    cr_assert(pop(mask, &id));
    cr_assert_eq(id, 5);
    cr_assert(pop(mask, &id));
    cr_assert_eq(id, 6);
    cr_assert_eq(atomic_load(&lane.head), (1ull << 32) + 3);
    cr_assert_not(pop(mask, &id));
}

Test(lane, stale_position_one_32bit_epoch_later_is_refused)
{
    /* A consumer stopped between peek and advance while the lane moved
     * exactly 2^32 positions: with 32-bit counters its CAS would succeed and
     * skip an entry (the ABA that 64-bit counters rule out). */
    uint32_t mask = lane_init(8, 0);
    uint64_t ids[2] = {1, 2}, pos, id;
    cr_assert_eq(px__lane_push(&lane, ent, mask, ids, 1), 1);
    cr_assert(px__lane_peek(&lane, ent, mask, &pos, &id, no_bound()));
    cr_assert_eq(pos, 0);
    atomic_store(&lane.head, pos + (1ull << 32));
    atomic_store(&lane.tail, pos + (1ull << 32));
    cr_assert_eq(px__lane_push(&lane, ent, mask, ids + 1, 1), 1);
    px__lane_advance(&lane, pos);
    cr_assert_eq(atomic_load(&lane.head), pos + (1ull << 32), "stale advance is a no-op");
    cr_assert(pop(mask, &id));
    cr_assert_eq(id, 2, "the new entry is still there");
}

Test(lane, counters_wrap_at_64_bits)
{
    uint64_t base = UINT64_MAX - 2;
    uint32_t mask = lane_init(4, base);
    uint64_t ids[4] = {7, 8, 9, 10}, id;
    cr_assert_eq(px__lane_push(&lane, ent, mask, ids, 4), 4);
    cr_assert_eq(px__lane_size(&lane), 4);
    cr_assert_eq(px__lane_push(&lane, ent, mask, ids, 1), 0, "full across the wrap of 2^64");
    for (int i = 0; i < 4; i++) {
        cr_assert(pop(mask, &id));
        cr_assert_eq(id, ids[i]);
    }
    cr_assert_eq(px__lane_size(&lane), 0);
}

Test(lane, consumer_stopped_between_peek_and_advance_blocks_no_one)
{
    /* Single-threaded replay of the interleaving: consumer A peeks (and
     * claims) entry 0 and stops; B carries on for several laps; A's late
     * advance must neither move head nor lose anything. */
    uint32_t mask = lane_init(4, 0);
    static _Atomic uint8_t taken[1000];
    uint64_t next_in = 1, pos_a, id_a, id;
    uint64_t one = next_in++;
    cr_assert_eq(px__lane_push(&lane, ent, mask, &one, 1), 1);
    cr_assert(px__lane_peek(&lane, ent, mask, &pos_a, &id_a, no_bound()));
    uint8_t zero = 0;
    cr_assert(atomic_compare_exchange_strong(&taken[id_a], &zero, 1), "A claims entry 0");

    /* B: the entry A claimed fails B's claim; B advances past it. */
    uint64_t pos_b;
    cr_assert(px__lane_peek(&lane, ent, mask, &pos_b, &id, no_bound()));
    cr_assert_eq(id, id_a);
    zero = 0;
    cr_assert_not(atomic_compare_exchange_strong(&taken[id], &zero, 1));
    px__lane_advance(&lane, pos_b);

    /* Ten laps while A stays stopped. */
    int b_took = 0;
    for (int lap = 0; lap < 10; lap++) {
        uint64_t batch[4];
        for (int i = 0; i < 4; i++)
            batch[i] = next_in + (uint64_t)i;
        cr_assert_eq(px__lane_push(&lane, ent, mask, batch, 4), 4, "the producer never waits");
        next_in += 4;
        for (int i = 0; i < 4; i++) {
            cr_assert(px__lane_peek(&lane, ent, mask, &pos_b, &id, no_bound()));
            zero = 0;
            b_took += atomic_compare_exchange_strong(&taken[id], &zero, 1);
            px__lane_advance(&lane, pos_b);
        }
    }
    cr_assert_eq(b_took, 40);
    uint64_t head = atomic_load(&lane.head);
    px__lane_advance(&lane, pos_a); /* A resumes */
    cr_assert_eq(atomic_load(&lane.head), head, "a late advance moves nothing");
    for (uint64_t v = 1; v < next_in; v++)
        cr_assert_eq(taken[v], 1, "value %lu taken once", (unsigned long)v);
}

/* ---- Threads ------------------------------------------------------------ */

#define NVALUES 1000000u
#define NCONSUMERS 3

static unsigned stress_seed;

struct stress {
    uint32_t mask;
    _Atomic uint8_t *taken;
    _Atomic int producer_done;
    _Atomic uint64_t took[NCONSUMERS + 1];
    _Atomic uint64_t bad;   /* ids outside [1, NVALUES] */
    _Atomic uint64_t twice; /* a claim of an already-taken id by its taker */
    /* Stalling consumer: 1 stalls after peek, 2 after claim. */
    int stall_kind;
    _Atomic int stalled;
    _Atomic int release;
    uint64_t stalled_id;
};

static void *producer(void *p)
{
    struct stress *st = p;
    unsigned seed = stress_seed;
    uint64_t next = 1, batch[16];
    while (next <= NVALUES) {
        uint32_t n = 1 + (uint32_t)(rand_r(&seed) % 16);
        if (next + n - 1 > NVALUES)
            n = (uint32_t)(NVALUES - next + 1);
        for (uint32_t i = 0; i < n; i++)
            batch[i] = next + i;
        uint32_t k = px__lane_push(&lane, ent, st->mask, batch, n);
        next += k;
        if (k == 0)
            sched_yield();
    }
    atomic_store(&st->producer_done, 1);
    return NULL;
}

struct consumer_arg {
    struct stress *st;
    int me;
};

static bool claim(struct stress *st, uint64_t id)
{
    if (id == 0 || id > NVALUES) {
        atomic_fetch_add(&st->bad, 1);
        return false;
    }
    uint8_t zero = 0;
    return atomic_compare_exchange_strong(&st->taken[id], &zero, 1);
}

static void *consumer(void *p)
{
    struct consumer_arg *a = p;
    struct stress *st = a->st;
    uint64_t pos, id, tail_seen = atomic_load(&lane.head);
    for (;;) {
        if (!px__lane_peek(&lane, ent, st->mask, &pos, &id, &tail_seen)) {
            if (atomic_load(&st->producer_done) && px__lane_size(&lane) == 0)
                return NULL;
            sched_yield();
            continue;
        }
        if (claim(st, id))
            atomic_fetch_add(&st->took[a->me], 1);
        px__lane_advance(&lane, pos);
    }
}

/* Takes one entry, stopping between peek and advance until released. */
static void *staller(void *p)
{
    struct consumer_arg *a = p;
    struct stress *st = a->st;
    uint64_t pos, id;
    while (!px__lane_peek(&lane, ent, st->mask, &pos, &id, no_bound()))
        sched_yield();
    bool mine = false;
    if (st->stall_kind == 2)
        mine = claim(st, id);
    st->stalled_id = id;
    atomic_store(&st->stalled, 1);
    while (!atomic_load(&st->release))
        usleep(1000);
    if (st->stall_kind == 1)
        mine = claim(st, id); /* must fail: others took it meanwhile */
    if (mine)
        atomic_fetch_add(&st->took[a->me], 1);
    px__lane_advance(&lane, pos);
    return NULL;
}

static void run_stress(int stall_kind)
{
    stress_seed = px_test_seed();
    struct stress *st = calloc(1, sizeof *st);
    st->taken = calloc(NVALUES + 1, 1);
    st->mask = lane_init(64, 0);
    st->stall_kind = stall_kind;
    pthread_t prod, cons[NCONSUMERS], stal;
    struct consumer_arg args[NCONSUMERS + 1];
    for (int i = 0; i <= NCONSUMERS; i++)
        args[i] = (struct consumer_arg){st, i};
    if (stall_kind) {
        /* The staller takes the first entry before the others start. */
        cr_assert_eq(pthread_create(&stal, NULL, staller, &args[NCONSUMERS]), 0);
    }
    cr_assert_eq(pthread_create(&prod, NULL, producer, st), 0);
    if (stall_kind) {
        double until = px_test_now() + 5;
        while (!atomic_load(&st->stalled) && px_test_now() < until)
            usleep(100);
        cr_assert(atomic_load(&st->stalled), "the staller got an entry");
    }
    for (int i = 0; i < NCONSUMERS; i++)
        cr_assert_eq(pthread_create(&cons[i], NULL, consumer, &args[i]), 0);
    if (stall_kind) {
        /* While the staller sits between peek and advance, the others must
         * go round the lane many times. */
        double until = px_test_now() + 10;
        uint64_t progress = 0;
        while (px_test_now() < until) {
            progress = 0;
            for (int i = 0; i < NCONSUMERS; i++)
                progress += atomic_load(&st->took[i]);
            if (progress >= NVALUES - 1 || atomic_load(&st->producer_done))
                break;
            usleep(1000);
        }
        cr_assert(atomic_load(&st->producer_done),
                  "the producer finished while a consumer was stopped (others took %lu)",
                  (unsigned long)progress);
        atomic_store(&st->release, 1);
        pthread_join(stal, NULL);
    }
    pthread_join(prod, NULL);
    for (int i = 0; i < NCONSUMERS; i++)
        pthread_join(cons[i], NULL);
    uint64_t total = 0;
    for (int i = 0; i <= NCONSUMERS; i++)
        total += atomic_load(&st->took[i]);
    fprintf(stderr, "taken per consumer: %lu %lu %lu, staller %lu\n", (unsigned long)st->took[0],
            (unsigned long)st->took[1], (unsigned long)st->took[2], (unsigned long)st->took[3]);
    cr_assert_eq(atomic_load(&st->bad), 0, "consumers read ids that were never pushed");
    cr_assert_eq(total, NVALUES, "every value taken exactly once (took %lu)", (unsigned long)total);
    for (uint64_t v = 1; v <= NVALUES; v++)
        cr_assert_eq(st->taken[v], 1, "value %lu not taken", (unsigned long)v);
    cr_assert_eq(px__lane_size(&lane), 0);
    cr_assert_eq(atomic_load(&lane.head), NVALUES);
    if (stall_kind == 2)
        cr_assert_eq(atomic_load(&st->took[NCONSUMERS]), 1, "the staller's claim stands");
    if (stall_kind == 1)
        cr_assert_eq(atomic_load(&st->took[NCONSUMERS]), 0, "others took the staller's entry");
    free((void *)st->taken);
    free(st);
}

Test(lane, stress_one_producer_many_consumers)
{
    run_stress(0);
}

Test(lane, stress_consumer_stopped_after_peek)
{
    run_stress(1);
}

Test(lane, stress_consumer_stopped_after_claim)
{
    run_stress(2);
}

/* ---- Ownership (lanes.c) -------------------------------------------------- */

static char rname[64];

static void cleanup(void)
{
    px_region_destroy(rname);
}

TestSuite(lanes, .fini = cleanup);

Test(lanes, one_lane_per_key_and_thread)
{
    px_region *r = px_test_region(
        rname, sizeof rname,
        &(px_region_opts){.capacity = 64, .lanes = 16, .lane_depth = 8, .arena_bytes = 64 * 1024});
    struct px__tls *t = px__tls_get(r);
    cr_assert_not_null(t);
    int a = px__lane_for(r, t, PX__KEY(0, 2, PX_THREAD));
    int b = px__lane_for(r, t, PX__KEY(0, 2, PX_PROCESS));
    cr_assert_geq(a, 0);
    cr_assert_geq(b, 0);
    cr_assert_neq(a, b, "another key, another lane");
    cr_assert_eq(px__lane_for(r, t, PX__KEY(0, 2, PX_THREAD)), a, "the same key, the same lane");
    cr_assert_eq(atomic_load(&r->lanes[a].owner), r->self + 1);
    cr_assert_eq(atomic_load(&r->lanes[a].key), PX__KEY(0, 2, PX_THREAD));
    cr_assert_geq(atomic_load(&r->hdr->lanes_hwm), (uint32_t)(a > b ? a : b) + 1);
    px_region_info info;
    px_region_info_get(r, &info);
    cr_assert_eq(info.lanes_used, 2);

    /* A thread may own PX__TLS_LANES lanes at most. */
    for (uint32_t q = 1; q < PX__TLS_LANES - 1; q++)
        cr_assert_geq(px__lane_for(r, t, PX__KEY(q, 2, PX_THREAD)), 0);
    cr_assert_eq(px__lane_for(r, t, PX__KEY(50, 2, PX_THREAD)), -EAGAIN);
    px_region_close(r);
}

static void *own_lane(void *p)
{
    px_region *r = p;
    struct px__tls *t = px__tls_get(r);
    return (void *)(intptr_t)px__lane_for(r, t, PX__KEY(0, 2, PX_THREAD));
}

Test(lanes, threads_get_distinct_lanes_and_release_them_on_exit)
{
    px_region *r = px_test_region(
        rname, sizeof rname,
        &(px_region_opts){.capacity = 64, .lanes = 2, .lane_depth = 8, .arena_bytes = 64 * 1024});
    struct px__tls *t = px__tls_get(r);
    int mine = px__lane_for(r, t, PX__KEY(0, 2, PX_THREAD));
    cr_assert_geq(mine, 0);
    pthread_t th;
    void *ret;
    pthread_create(&th, NULL, own_lane, r);
    pthread_join(th, &ret);
    int other = (int)(intptr_t)ret;
    cr_assert_geq(other, 0);
    cr_assert_neq(other, mine, "single producer: two threads never share a lane");
    cr_assert_eq(atomic_load(&r->lanes[other].owner), 0, "released when the thread exits");

    /* With both lanes owned a third producer gets -EAGAIN. */
    int held = px__lane_for(r, t, PX__KEY(1, 2, PX_THREAD));
    cr_assert_eq(held, other);
    pthread_create(&th, NULL, own_lane, r);
    pthread_join(th, &ret);
    cr_assert_eq((int)(intptr_t)ret, -EAGAIN);
    px_region_close(r);
}

static void *push_one_and_exit(void *p)
{
    px_region *r = p;
    struct px__tls *t = px__tls_get(r);
    int l = px__lane_for(r, t, PX__KEY(3, 2, PX_THREAD));
    uint64_t id = 42;
    if (l >= 0)
        px__lane_push(&r->lanes[l], px__lane_entries(r, (uint32_t)l), r->lane_mask, &id, 1);
    return (void *)(intptr_t)l;
}

Test(lanes, a_lane_keeps_its_key_while_it_holds_entries)
{
    px_region *r = px_test_region(
        rname, sizeof rname,
        &(px_region_opts){.capacity = 64, .lanes = 2, .lane_depth = 8, .arena_bytes = 64 * 1024});
    pthread_t th;
    void *ret;
    pthread_create(&th, NULL, push_one_and_exit, r);
    pthread_join(th, &ret);
    int l = (int)(intptr_t)ret;
    cr_assert_geq(l, 0);
    cr_assert_eq(atomic_load(&r->lanes[l].owner), 0);
    cr_assert_eq(px__lane_size(&r->lanes[l]), 1);

    struct px__tls *t = px__tls_get(r);
    int other = px__lane_for(r, t, PX__KEY(0, 2, PX_THREAD));
    cr_assert_geq(other, 0);
    cr_assert_neq(other, l, "a non-empty lane of another key is not taken over");
    cr_assert_eq(atomic_load(&r->lanes[l].key), PX__KEY(3, 2, PX_THREAD));
    cr_assert_eq(atomic_load(&r->lanes[l].owner), 0);

    /* The same key continues in the released lane, after its entries. */
    int same = px__lane_for(r, t, PX__KEY(3, 2, PX_THREAD));
    cr_assert_eq(same, l);
    uint64_t id = 43, pos, got, bound = atomic_load(&r->lanes[l].head);
    cr_assert_eq(
        px__lane_push(&r->lanes[l], px__lane_entries(r, (uint32_t)l), r->lane_mask, &id, 1), 1);
    cr_assert(px__lane_peek(&r->lanes[l], px__lane_entries(r, (uint32_t)l), r->lane_mask, &pos,
                            &got, &bound));
    cr_assert_eq(got, 42, "the earlier entry keeps its place");
    px_region_close(r);
}

Test(lanes, an_empty_lane_changes_key)
{
    px_region *r = px_test_region(
        rname, sizeof rname,
        &(px_region_opts){.capacity = 64, .lanes = 1, .lane_depth = 8, .arena_bytes = 64 * 1024});
    pthread_t th;
    void *ret;
    pthread_create(&th, NULL, own_lane, r); /* owns lane 0 for key 0, leaves it empty */
    pthread_join(th, &ret);
    cr_assert_eq((int)(intptr_t)ret, 0);
    struct px__tls *t = px__tls_get(r);
    cr_assert_eq(px__lane_for(r, t, PX__KEY(5, 2, PX_PROCESS)), 0);
    cr_assert_eq(atomic_load(&r->lanes[0].key), PX__KEY(5, 2, PX_PROCESS));
    px_region_close(r);
}

Test(lanes, release_proc_frees_its_lanes_only)
{
    px_region *r = px_test_region(
        rname, sizeof rname,
        &(px_region_opts){.capacity = 64, .lanes = 4, .lane_depth = 8, .arena_bytes = 64 * 1024});
    struct px__tls *t = px__tls_get(r);
    int a = px__lane_for(r, t, PX__KEY(0, 2, PX_THREAD));
    int b = px__lane_for(r, t, PX__KEY(1, 2, PX_THREAD));
    /* Pretend lane b belongs to another process. */
    atomic_store(&r->lanes[b].owner, r->self + 2);
    px__lanes_release_proc(r, r->self + 1);
    cr_assert_eq(atomic_load(&r->lanes[b].owner), 0);
    cr_assert_eq(atomic_load(&r->lanes[a].owner), r->self + 1);
    px_region_close(r);
}

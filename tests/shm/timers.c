/*
 * The timer heap: pops in due order whatever the push order, keeps the
 * earliest due time in timer_next, rebuilds from the slots' states (timed
 * ones only, with their due times), and makes room by a rebuild when stale
 * entries fill it.
 */
#include "common.h"
#include "shm/region.h"

#include <stdlib.h>

static char rname[64];

static void fini(void)
{
    px_region_destroy(rname);
}

TestSuite(timers, .fini = fini, .timeout = 30);

static px_region *open_r(uint32_t capacity)
{
    return px_test_region(rname, sizeof rname, &(px_region_opts){.capacity = capacity});
}

/* Pops everything; checks the order and returns how many there were. */
static uint32_t drain_sorted(px_region *r)
{
    struct px__timer t, prev = {0, 0};
    uint32_t n = 0;
    while (px__timers_peek(r, &t)) {
        cr_assert_eq(atomic_load(&r->hdr->timer_next), t.due);
        cr_assert(t.due > prev.due || (t.due == prev.due && t.id > prev.id) || n == 0,
                  "popped %lu after %lu", (unsigned long)t.due, (unsigned long)prev.due);
        prev = t;
        px__timers_pop(r);
        n++;
    }
    cr_assert_eq(atomic_load(&r->hdr->timer_next), UINT64_MAX);
    return n;
}

Test(timers, pops_in_due_order)
{
    px_region *r = open_r(4096);
    srand(px_test_seed());
    px__timers_lock(r);
    uint64_t min = UINT64_MAX;
    for (uint32_t i = 0; i < 4096; i++) {
        uint64_t due = (uint64_t)(rand() % 1000) + 1; /* many equal dues */
        bool first = px__timers_push(r, due, i + 1);
        cr_assert_eq(first, due < min, "push %u: first=%d", i, first);
        if (due < min)
            min = due;
        cr_assert_eq(atomic_load(&r->hdr->timer_next), min);
    }
    cr_assert_eq(drain_sorted(r), 4096);
    px__timers_unlock(r);
    cr_assert_eq(px_region_close(r), 0);
}

Test(timers, rebuild_takes_the_timed_slots_and_nothing_else)
{
    px_region *r = open_r(256);
    px__timers_lock(r);
    uint32_t timed = 0;
    for (uint32_t i = 0; i < 256; i++) {
        uint64_t c = atomic_load(&r->slots[i].ctl);
        uint32_t st = i % 3 == 0 ? PX__S_SCHEDULED : i % 3 == 1 ? PX__S_RETRY : PX__S_PENDING;
        atomic_store(&r->slots[i].due_ns, 1000 + (i * 7919) % 256);
        atomic_store(&r->slots[i].ctl, PX__CTL_WITH(c, st, 0));
        timed += st != PX__S_PENDING;
    }
    px__timers_push(r, 1, 424242); /* junk that a rebuild drops */
    px__timers_rebuild(r);
    struct px__timer t;
    cr_assert(px__timers_peek(r, &t));
    cr_assert_neq(t.id, 424242);
    cr_assert_eq(drain_sorted(r), timed);
    /* Back to FREE so that closing finds a clean region. */
    for (uint32_t i = 0; i < 256; i++) {
        uint64_t c = atomic_load(&r->slots[i].ctl);
        atomic_store(&r->slots[i].ctl, PX__CTL_WITH(c, PX__S_FREE, 0));
    }
    px__timers_unlock(r);
    cr_assert_eq(px_region_close(r), 0);
}

Test(timers, a_full_heap_of_stale_entries_makes_room)
{
    px_region *r = open_r(8);
    px__timers_lock(r);
    for (uint32_t i = 0; i < 8; i++)
        px__timers_push(r, 5, 100 + i); /* stale: no slot is timed */
    cr_assert_eq(r->hdr->timer_n, 8);
    uint64_t c = atomic_load(&r->slots[3].ctl);
    atomic_store(&r->slots[3].due_ns, 9);
    atomic_store(&r->slots[3].ctl, PX__CTL_WITH(c, PX__S_SCHEDULED, 0));
    px__timers_push(r, 9, PX__ID(PX__CTL_GEN(c), 3));
    /* The rebuild kept the timed slot, and the push added it once more:
     * a duplicate, which fires nothing twice (one CAS wins). */
    cr_assert_leq(r->hdr->timer_n, 2);
    struct px__timer t;
    cr_assert(px__timers_peek(r, &t));
    cr_assert_eq(t.due, 9);
    cr_assert_eq(PX__ID_IDX(t.id), 3);
    atomic_store(&r->slots[3].ctl, c);
    px__timers_unlock(r);
    cr_assert_eq(px_region_close(r), 0);
}

/*
 * Parking places for idle workers; see park.h for the protocol.
 */
#include "park.h"
#include "futex.h"

#include <errno.h>

int px__park_claim(px_region *r)
{
    for (uint32_t i = 0; i < PX__MAX_PARKS; i++) {
        struct px__park *p = &r->parks[i];
        uint32_t free_owner = 0;
        if (atomic_load_explicit(&p->owner, memory_order_relaxed) != 0 ||
            !atomic_compare_exchange_strong(&p->owner, &free_owner, r->self + 1))
            continue;
        atomic_store(&p->state, PX__PARK_IDLE);
        uint32_t hwm = atomic_load(&r->hdr->parks_hwm);
        while (hwm <= i && !atomic_compare_exchange_weak(&r->hdr->parks_hwm, &hwm, i + 1))
            ;
        return (int)i;
    }
    return -EAGAIN;
}

void px__park_release(px_region *r, uint32_t i)
{
    if (i >= PX__MAX_PARKS)
        return;
    atomic_store(&r->parks[i].state, PX__PARK_IDLE);
    atomic_store(&r->parks[i].owner, 0);
}

void px__park_release_proc(px_region *r, uint32_t proc)
{
    for (uint32_t i = 0; i < PX__MAX_PARKS; i++) {
        uint32_t owner = proc + 1;
        if (atomic_load_explicit(&r->parks[i].owner, memory_order_relaxed) != owner)
            continue;
        atomic_store(&r->parks[i].state, PX__PARK_IDLE);
        atomic_compare_exchange_strong(&r->parks[i].owner, &owner, 0);
    }
}

uint32_t px__park_arm(px_region *r, uint32_t i, uint32_t bits)
{
    struct px__park *p = &r->parks[i];
    atomic_store_explicit(&p->bits, bits, memory_order_relaxed);
    uint32_t seen = atomic_load(&p->word);
    atomic_store(&p->state, PX__PARK_PARKED);
    return seen;
}

void px__park_sleep(px_region *r, uint32_t i, uint32_t seen, int64_t ns)
{
    px__futex_wait(&r->parks[i].word, seen, ns);
}

void px__park_leave(px_region *r, uint32_t i)
{
    atomic_store(&r->parks[i].state, PX__PARK_IDLE);
}

/* Claims place i for a wake if it is PARKED with one of bits; true if the
 * owner was then found asleep and woken. */
static bool claim_and_wake(struct px__park *p, uint32_t bits)
{
    uint32_t parked = PX__PARK_PARKED;
    if (atomic_load(&p->state) != PX__PARK_PARKED ||
        !(atomic_load_explicit(&p->bits, memory_order_relaxed) & bits) ||
        !atomic_compare_exchange_strong(&p->state, &parked, PX__PARK_WOKEN))
        return false;
    atomic_fetch_add(&p->word, 1);
    return px__futex_wake(&p->word, 1) > 0;
}

uint32_t px__park_wake(px_region *r, uint32_t bits, uint32_t nr)
{
    uint32_t hwm = atomic_load(&r->hdr->parks_hwm), woken = 0;
    if (hwm > PX__MAX_PARKS)
        hwm = PX__MAX_PARKS; /* not ours to trust */
    for (uint32_t i = 0; i < hwm && woken < nr; i++)
        woken += claim_and_wake(&r->parks[i], bits);
    return woken;
}

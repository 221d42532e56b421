/*
 * Concurrency tickets; see tickets.h for the protocol.
 */
#include "tickets.h"
#include "futex.h"
#include "park.h"

#include <limits.h>

static uint64_t value_of(uint32_t proc, uint32_t idx)
{
    return ((uint64_t)(proc + 1) << 32) | idx;
}

uint32_t px__ticket_take(px_region *r, uint32_t q, uint32_t limit, uint32_t idx, uint32_t hint)
{
    if (q >= r->hdr->max_queues || limit == 0 || limit > PX__CONC_MAX)
        return 0;
    _Atomic uint64_t *t = r->tickets + (size_t)q * PX__CONC_MAX;
    uint64_t mine = value_of(r->self, idx);
    for (uint32_t n = 0, i = hint % limit; n < limit; n++, i = i + 1 == limit ? 0 : i + 1) {
        uint64_t free_word = 0;
        /* seq_cst: a worker going to sleep reads the tickets after it
         * announced itself, and a holder giving one back reads the
         * sleepers after its store (executor/concurrency.c). */
        if (atomic_load(&t[i]) == 0 && atomic_compare_exchange_strong(&t[i], &free_word, mine))
            return q * PX__CONC_MAX + i + 1;
    }
    return 0;
}

void px__ticket_give(px_region *r, uint32_t pos, uint32_t idx)
{
    if (pos == 0 || pos > r->hdr->max_queues * PX__CONC_MAX)
        return;
    uint64_t mine = value_of(r->self, idx);
    atomic_compare_exchange_strong(&r->tickets[pos - 1], &mine, 0);
}

uint32_t px__tickets_held(px_region *r, uint32_t q)
{
    if (q >= r->hdr->max_queues)
        return 0;
    uint32_t n = 0;
    for (uint32_t i = 0; i < PX__CONC_MAX; i++)
        n += atomic_load_explicit(&r->tickets[(size_t)q * PX__CONC_MAX + i],
                                  memory_order_relaxed) != 0;
    return n;
}

uint64_t px__tickets_release_proc(px_region *r, uint32_t proc)
{
    uint64_t queues = 0;
    uint32_t nq = atomic_load_explicit(&r->hdr->nqueues, memory_order_acquire);
    for (uint32_t q = 0; q < nq && q < r->hdr->max_queues; q++) {
        _Atomic uint64_t *t = r->tickets + (size_t)q * PX__CONC_MAX;
        for (uint32_t i = 0; i < PX__CONC_MAX; i++) {
            uint64_t v = atomic_load_explicit(&t[i], memory_order_relaxed);
            if (v && (uint32_t)(v >> 32) == proc + 1 &&
                atomic_compare_exchange_strong(&t[i], &v, 0))
                queues |= 1ull << q;
        }
    }
    return queues;
}

void px__tickets_wake(px_region *r, uint64_t queues)
{
    uint32_t bits = 0;
    for (uint32_t q = 0; q < 64; q++)
        if (queues & (1ull << q))
            bits |= px__work_bit(q, PX_THREAD) | px__work_bit(q, PX_PROCESS);
    bool asleep = false;
    for (uint32_t b = 0; b < 32 && !asleep; b++)
        asleep = (bits >> b & 1) && atomic_load(&r->hdr->sleepers[b]) > 0;
    if (!asleep)
        return;
    px__park_wake(r, bits, UINT32_MAX);
}

/*
 * Per-queue concurrency limits: at most K of a queue's tasks run at once,
 * across every worker of every process.
 *
 * A worker takes one of the queue's first K tickets (shm/tickets.h) before
 * it claims a task of the queue, and gives it back once the task's body
 * has returned; with none free it leaves the task in its lane, skips the
 * queue for the rest of that take, and sleeps until a ticket is given back
 * (which wakes the queue's sleepers) or its usual timeout. Tickets name
 * their holder, so the reaper frees a dead process's: nothing to count
 * again after a crash. Queues without a limit cost a take one bit test of
 * the header's `conc_limited` mask, on a line it reads anyway.
 */
#include "executor.h"

#include <errno.h>

void px__conc_give_back(px_region *r, struct px__scan *scan, px_id id)
{
    uint32_t q = (scan->ticket - 1) / PX__CONC_MAX;
    px__ticket_give(r, scan->ticket, PX__ID_IDX(id));
    scan->ticket = 0;
    px__tickets_wake(r, 1ull << q);
}

int px_queue_set_concurrency(px_region *r, const char *queue, int limit)
{
    if (!r || !queue || limit < 0 || limit > (int)PX__CONC_MAX)
        return -EINVAL;
    int q = px__queue_find(r, queue, false);
    if (q < 0)
        return q;
    atomic_store(&r->queues[q].conc_limit, (uint32_t)limit);
    if (limit) {
        atomic_fetch_or(&r->hdr->conc_limited, 1ull << q);
    } else {
        atomic_fetch_and(&r->hdr->conc_limited, ~(1ull << q));
    }
    /* A raised or lifted limit lets waiting tasks start now. */
    px__tickets_wake(r, 1ull << q);
    return 0;
}

int px_queue_concurrency(px_region *r, const char *queue, int *running)
{
    if (!r || !queue)
        return -EINVAL;
    int q = px__queue_find(r, queue, false);
    if (q < 0)
        return q;
    if (running)
        *running = (int)px__tickets_held(r, (uint32_t)q);
    return (int)atomic_load(&r->queues[q].conc_limit);
}

/*
 * Cancellation, cooperative as in Castor and optio.
 *
 * px_cancel moves a task by one CAS on its ctl word, so it races safely with
 * a claim, a finish or another cancel from any process:
 *
 *   PENDING, SCHEDULED, RETRY
 *                    --cancel--> CANCELLED (through FINISHING, like a finish;
 *                                 a timed task's heap entry goes stale)
 *   RUNNING          --cancel--> CANCEL_REQUESTED (owner, attempts kept),
 *                                 if its definition is cancellable
 *   CANCEL_REQUESTED --the body returns, or its worker dies--> CANCELLED
 *
 * A claim only moves PENDING tasks, so a cancelled task's lane entry is
 * skipped. px_should_continue() reads the state, so the request reaches the
 * body wherever it runs (a thread, a pool child, a `pollux worker`). The
 * request is in the region, and logged in a durable one: a restart does not
 * bring the task back.
 */
#include "executor.h"
#include "../persist/journal.h"
#include "../shm/futex.h"

#include <errno.h>

static bool cancellable(px_region *r, struct px__slot *s)
{
    uint32_t def = atomic_load_explicit(&s->def, memory_order_relaxed);
    return def < r->hdr->max_defs && (r->defs[def].flags & PX__DEF_CANCELLABLE);
}

int px_cancel(px_region *r, px_id id)
{
    if (!r)
        return -EINVAL;
    if (px__is_sched_id(id))
        return px__sched_cancel(r, id);
    struct px__slot *s = px__slot_of(r, id);
    if (!s)
        return -ENOENT;
    for (;;) {
        uint64_t c = atomic_load(&s->ctl);
        uint32_t st = PX__CTL_STATE(c);
        if (PX__CTL_GEN(c) != PX__ID_GEN(id) || st == PX__S_FREE || st == PX__S_RESERVED ||
            st == PX__S_CONSUMING)
            return -ENOENT;
        switch (st) {
        case PX__S_PENDING:
        case PX__S_SCHEDULED:
        case PX__S_RETRY:
            if (px__end_cancelled(r, PX__ID_IDX(id), c))
                return 0;
            continue;
        case PX__S_RUNNING: {
            if (!cancellable(r, s))
                return -EPERM;
            uint64_t want = PX__CTL_WITH(c, PX__S_CANCEL_REQUESTED, PX__CTL_OWNER(c));
            if (!atomic_compare_exchange_strong(&s->ctl, &c, want))
                continue;
            px__journal_cancel(r, id);
            px__wake_slot(r, s);
            return 0;
        }
        case PX__S_CANCEL_REQUESTED:
        case PX__S_CANCELLED:
            return 0;
        case PX__S_FINISHING:
            px__cpu_relax(); /* a worker is writing its outcome: a moment */
            continue;
        default:
            return -EALREADY; /* finished */
        }
    }
}

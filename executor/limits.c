/*
 * Time limits of thread-mode runs.
 *
 * A thread cannot be stopped from outside, so a limit is cooperative: the
 * supervisor (once per reap interval) finds the runs of its threads that
 * passed their limit and sets their worker slot's `expired` flag, which
 * px_should_continue() reads; the run then fails with the limit's error
 * text however its body returns (run.c). A run still going GRACE_NS later
 * is failed without it: px__fail_live moves the task on by one CAS from
 * the claimed state, and the body's late return finds its claim gone and
 * changes nothing. Its thread stays busy until the body returns.
 *
 * The run's start is the slot's start_tick, in the header's clock, which
 * is 0 from the moment a task is made runnable again until its next run
 * stamps it (so an old run's start is never taken for a new one's); the
 * limit is the slot's (or its definition's). A worker slot is read while
 * its thread may move to the next task: the claimed ctl it holds names the
 * run, and px__fail_claimed acts only if the task is still in that run.
 * (Process-mode runs are limited by their dispatcher, pool.c.)
 */
#include "workers.h"

#define GRACE_NS 1000000000ull

void px__limits_check(px_workers *w)
{
    px_region *r = w->r;
    const struct px__clock *clk = &r->hdr->clock;
    uint64_t now = px__ticks(r->tsc);
    for (unsigned i = 0; i < w->nthreads; i++) {
        struct px__wslot *ws = &w->ws[i];
        px_id id = atomic_load_explicit(&ws->current, memory_order_acquire);
        if (!id || atomic_load(&ws->expired) == 2)
            continue;
        uint64_t claimed = atomic_load(&ws->claimed);
        struct px__slot *s = px__slot_of(r, id);
        if (!s || PX__CTL_GEN(claimed) != PX__ID_GEN(id))
            continue;
        uint32_t ms = px__slot_limit_ms(r, s);
        uint64_t start = atomic_load_explicit(&s->start_tick, memory_order_relaxed);
        uint64_t limit = px__clock_ticks(clk, (uint64_t)ms * 1000000ull);
        if (ms == 0 || start == 0 || start > now || now - start < limit)
            continue;
        if (atomic_load(&ws->expired) == 0) {
            atomic_store(&ws->expired, 1);
            atomic_fetch_add(&w->timed_out, 1);
        } else if (now - start >= limit + px__clock_ticks(clk, GRACE_NS)) {
            char text[64];
            px__limit_text(ms, text, sizeof text);
            atomic_store(&ws->expired, 2);
            px__fail_live(r, id, claimed, text);
        }
    }
}

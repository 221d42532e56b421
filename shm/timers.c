/*
 * The timer heap; see timers.h for what it guarantees.
 */
#include "region.h"
#include "futex.h"

#include <errno.h>
#include <limits.h>

static bool before(const struct px__timer *a, const struct px__timer *b)
{
    return a->due < b->due || (a->due == b->due && a->id < b->id);
}

static void sift_up(struct px__timer *h, uint32_t i)
{
    struct px__timer e = h[i];
    while (i > 0) {
        uint32_t p = (i - 1) / 2;
        if (!before(&e, &h[p]))
            break;
        h[i] = h[p];
        i = p;
    }
    h[i] = e;
}

static void sift_down(struct px__timer *h, uint32_t n, uint32_t i)
{
    struct px__timer e = h[i];
    for (;;) {
        uint32_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && before(&h[c + 1], &h[c]))
            c++;
        if (!before(&h[c], &e))
            break;
        h[i] = h[c];
        i = c;
    }
    h[i] = e;
}

static void publish_next(px_region *r)
{
    uint64_t next = r->hdr->timer_n ? r->timers[0].due : UINT64_MAX;
    atomic_store_explicit(&r->hdr->timer_next, next, memory_order_release);
}

void px__timers_rebuild(px_region *r)
{
    struct px__timer *h = r->timers;
    uint32_t n = 0;
    for (uint32_t i = 0; i < r->hdr->capacity; i++) {
        uint64_t c = atomic_load_explicit(&r->slots[i].ctl, memory_order_acquire);
        if (!px__state_timed(PX__CTL_STATE(c)))
            continue;
        h[n].due = atomic_load_explicit(&r->slots[i].due_ns, memory_order_relaxed);
        h[n].id = PX__ID(PX__CTL_GEN(c), i);
        n++;
    }
    /* Floyd's heapify: O(n). */
    for (uint32_t i = n / 2; i-- > 0;)
        sift_down(h, n, i);
    r->hdr->timer_n = n;
    publish_next(r);
}

void px__timers_lock(px_region *r)
{
    int rc = pthread_mutex_lock(&r->hdr->timer_lock);
    if (rc == EOWNERDEAD) {
        px__timers_rebuild(r);
        pthread_mutex_consistent(&r->hdr->timer_lock);
    } else if (r->hdr->timer_n > r->hdr->capacity) {
        px__timers_rebuild(r); /* a damaged count: never index past the table */
    }
}

void px__timers_unlock(px_region *r)
{
    pthread_mutex_unlock(&r->hdr->timer_lock);
}

bool px__timers_push(px_region *r, uint64_t due, uint64_t id)
{
    if (r->hdr->timer_n >= r->hdr->capacity)
        px__timers_rebuild(r);
    uint32_t n = r->hdr->timer_n;
    if (n >= r->hdr->capacity)
        return false; /* every slot is timed: the rebuild counted this one */
    r->timers[n] = (struct px__timer){due, id};
    sift_up(r->timers, n);
    r->hdr->timer_n = n + 1;
    bool first = r->timers[0].id == id && r->timers[0].due == due;
    publish_next(r);
    return first;
}

bool px__timers_peek(px_region *r, struct px__timer *out)
{
    if (r->hdr->timer_n == 0)
        return false;
    *out = r->timers[0];
    return true;
}

void px__timers_pop(px_region *r)
{
    uint32_t n = r->hdr->timer_n;
    if (n == 0)
        return;
    r->timers[0] = r->timers[n - 1];
    r->hdr->timer_n = n - 1;
    if (n > 1)
        sift_down(r->timers, n - 1, 0);
    publish_next(r);
}

void px__timers_kick(px_region *r)
{
    /* The bump and the load are seq_cst, as are a sleeper's count and its
     * futex check of the word: either it sees the bump or we see it. */
    atomic_fetch_add(&r->hdr->timer_seq, 1);
    if (atomic_load(&r->hdr->timer_sleepers))
        px__futex_wake(&r->hdr->timer_seq, 1);
}

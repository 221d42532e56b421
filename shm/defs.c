/*
 * Task definitions and queue names, recorded in the region so that every
 * attached process sees them, and which queues are paused (a bit mask in
 * the header, changed by one atomic OR or AND, read by every take).
 *
 * Both tables are append-only. Writers hold the header lock (a cold path:
 * registration), fill an entry, then publish it with a release store
 * (def->state = READY, or nqueues + 1). Readers take no lock: they load the
 * publication with acquire and only then read the entry. A writer that dies
 * before publishing leaves an entry that readers never look at and the next
 * writer overwrites.
 */
#include "region.h"
#include "futex.h"
#include "park.h"

#include <errno.h>
#include <limits.h>
#include <string.h>
#include <xxhash.h>

static int queue_lookup(px_region *r, const char *name, uint64_t h)
{
    uint32_t n = atomic_load_explicit(&r->hdr->nqueues, memory_order_acquire);
    if (n > r->hdr->max_queues)
        n = r->hdr->max_queues;
    for (uint32_t i = 0; i < n; i++)
        if (r->queues[i].hash == h && strncmp(r->queues[i].name, name, PX__QNAME_MAX) == 0)
            return (int)i;
    return -ENOENT;
}

/* Returns the queue's index, creating the queue if asked. */
int px__queue_find(px_region *r, const char *name, bool create)
{
    if (!name)
        name = "default";
    size_t len = strlen(name);
    if (len == 0 || len >= PX__QNAME_MAX)
        return -EINVAL;
    uint64_t h = XXH3_64bits(name, len);
    int q = queue_lookup(r, name, h);
    if (q >= 0 || !create)
        return q;
    int rc = px__hdr_lock(r);
    if (rc)
        return rc;
    q = queue_lookup(r, name, h);
    if (q < 0) {
        uint32_t n = atomic_load_explicit(&r->hdr->nqueues, memory_order_relaxed);
        if (n >= r->hdr->max_queues) {
            q = -ENOSPC;
        } else {
            memset(&r->queues[n], 0, sizeof r->queues[n]);
            memcpy(r->queues[n].name, name, len);
            r->queues[n].hash = h;
            atomic_store_explicit(&r->hdr->nqueues, n + 1, memory_order_release);
            q = (int)n;
        }
    }
    px__hdr_unlock(r);
    return q;
}

/* Probes for name; returns its index, or -(first free index) - 1 so that a
 * writer knows where to insert, or -ENOSPC-like sentinel when full. */
static int def_probe(px_region *r, const char *name, uint64_t h, uint32_t *free_at)
{
    uint32_t mask = r->hdr->max_defs - 1;
    *free_at = UINT32_MAX;
    for (uint32_t i = 0; i <= mask; i++) {
        uint32_t at = (uint32_t)(h + i) & mask;
        struct px__def *d = &r->defs[at];
        if (atomic_load_explicit(&d->state, memory_order_acquire) != PX__DEF_READY) {
            *free_at = at;
            return -ENOENT;
        }
        if (d->hash == h && strncmp(d->name, name, PX__NAME_MAX) == 0)
            return (int)at;
    }
    return -ENOENT;
}

int px__def_find(px_region *r, const char *name)
{
    if (!name)
        return -EINVAL;
    size_t len = strlen(name);
    if (len == 0 || len >= PX__NAME_MAX)
        return -EINVAL;
    uint32_t free_at;
    int d = def_probe(r, name, XXH3_64bits(name, len), &free_at);
    return d >= 0 ? d : PX_ENOTASK;
}

const char *px__def_name(px_region *r, uint32_t def)
{
    if (def >= r->hdr->max_defs ||
        atomic_load_explicit(&r->defs[def].state, memory_order_acquire) != PX__DEF_READY)
        return "?";
    return r->defs[def].name;
}

static int check_def(const px_task_def *def)
{
    if (!def || !def->name || (def->mode != PX_THREAD && def->mode != PX_PROCESS))
        return -EINVAL;
    size_t len = strlen(def->name);
    if (len == 0 || len >= PX__NAME_MAX)
        return -EINVAL;
    if (def->max_retries < 0 || def->max_retries > 4000 ||
        !(def->retry_delay_s >= 0 && def->retry_delay_s < 4e6) || !(def->retry_backoff >= 0) ||
        !(def->retry_max_delay_s >= 0 && def->retry_max_delay_s < 4e6) || def->retry_jitter > 1 ||
        def->retry_jitter != def->retry_jitter ||
        !(def->time_limit_s >= 0 && def->time_limit_s < 4e6) || def->priority < 0 ||
        def->priority > PX_PRIORITY_HIGHEST)
        return -EINVAL;
    return 0;
}

/* The options of a definition, defaults applied. */
static void fill_options(struct px__def *d, const px_task_def *def, uint32_t extra_flags)
{
    d->flags = (def->daemon ? PX__DEF_DAEMON : 0) | (def->cancellable ? PX__DEF_CANCELLABLE : 0) |
               extra_flags;
    d->priority = def->priority ? def->priority : PX_PRIORITY_NORMAL;
    d->max_retries = def->max_retries;
    d->retry_delay_s = def->retry_delay_s;
    d->retry_backoff = def->retry_backoff > 0 ? def->retry_backoff : 2;
    d->retry_max_delay_s = def->retry_max_delay_s > 0 ? def->retry_max_delay_s : 3600;
    d->retry_jitter = def->retry_jitter == 0 ? 0.5 : def->retry_jitter < 0 ? 0 : def->retry_jitter;
    d->time_limit_s = def->time_limit_s;
    d->time_limit_ms = px__limit_ms(def->time_limit_s);
}

static void fill_def(struct px__def *d, const px_task_def *def, uint64_t h, int queue,
                     uint32_t extra_flags)
{
    memset(d->name, 0, sizeof d->name);
    strcpy(d->name, def->name);
    d->hash = h;
    d->mode = (uint32_t)def->mode;
    d->queue = (uint32_t)queue;
    fill_options(d, def, extra_flags);
}

/* px_task_register; `extra` is PX__DEF_RECOVERED for recovery's own. */
int px__def_register(px_region *r, const px_task_def *def, uint32_t extra)
{
    int rc = check_def(def);
    if (!r || rc)
        return r ? rc : -EINVAL;
    int queue = px__queue_find(r, def->queue, true);
    if (queue < 0)
        return queue;
    uint64_t h = XXH3_64bits(def->name, strlen(def->name));
    if ((rc = px__hdr_lock(r)) != 0)
        return rc;
    uint32_t free_at;
    int at = def_probe(r, def->name, h, &free_at);
    if (at >= 0) {
        struct px__def *d = &r->defs[at];
        rc = (d->mode == (uint32_t)def->mode && d->queue == (uint32_t)queue) ? 0 : -EEXIST;
        if (rc == 0 && (d->flags & PX__DEF_RECOVERED) && !extra)
            fill_options(d, def, 0); /* word-sized stores: readers see old or new */
    } else if (free_at == UINT32_MAX) {
        rc = -ENOSPC;
    } else {
        at = (int)free_at;
        fill_def(&r->defs[at], def, h, queue, extra);
        atomic_store_explicit(&r->defs[at].state, PX__DEF_READY, memory_order_release);
        rc = 0;
    }
    px__hdr_unlock(r);
    if (rc == 0 && def->fn)
        atomic_store_explicit(&r->fns[at], def->fn, memory_order_release);
    return rc;
}

int px_task_register(px_region *r, const px_task_def *def)
{
    return px__def_register(r, def, 0);
}

int px_task_register_range(px_region *r, const px_task_def *begin, const px_task_def *end)
{
    if (!r)
        return -EINVAL;
    if (!begin || !end || begin == end)
        return 0;
    if (end < begin)
        return -EINVAL;
    int n = 0;
    for (const px_task_def *d = begin; d < end; d++) {
        int rc = px_task_register(r, d);
        if (rc)
            return rc;
        n++;
    }
    return n;
}

/* Sets or clears a queue's paused bit; a resume wakes every idle worker,
 * which sleep without a timeout short enough to notice. */
static int set_paused(px_region *r, const char *queue, bool pause)
{
    if (!r || !queue)
        return -EINVAL;
    int q = px__queue_find(r, queue, false);
    if (q < 0)
        return q;
    uint64_t bit = 1ull << q;
    if (pause) {
        atomic_fetch_or(&r->hdr->paused, bit);
        return 0;
    }
    atomic_fetch_and(&r->hdr->paused, ~bit);
    px__park_wake(r, UINT32_MAX, UINT32_MAX);
    return 0;
}

int px_queue_pause(px_region *r, const char *queue)
{
    return set_paused(r, queue, true);
}

int px_queue_resume(px_region *r, const char *queue)
{
    return set_paused(r, queue, false);
}

int px_queue_paused(px_region *r, const char *queue)
{
    if (!r || !queue)
        return -EINVAL;
    int q = px__queue_find(r, queue, false);
    if (q < 0)
        return q;
    return (atomic_load(&r->hdr->paused) >> q) & 1;
}

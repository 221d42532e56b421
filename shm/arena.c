/*
 * The payload arena: args and results too large for a slot's inline bytes.
 *
 * The arena is an array of equal chunks (max_payload / 64, at least 64
 * bytes); a payload takes a run of at most 64 contiguous chunks. Each chunk
 * has a 64-bit tag: 0 when free, otherwise the id of the task that owns it.
 * A chunk is claimed by CAS 0 -> id and released by CAS id -> 0, so:
 *
 * - Allocation is lock-free: scan for a run of free tags from a per-thread
 *   cursor, claim them in order, and on losing a race release what was
 *   claimed and scan on.
 * - Ownership is exact after a crash: whatever a dead process claimed is
 *   still tagged with a task id, and the task's slot says whether that task
 *   is alive. A chunk whose task's slot has another generation, or is FREE,
 *   is an orphan that px__arena_sweep() releases. Releasing is a CAS on the
 *   old tag, so it never frees a chunk that was claimed again meanwhile.
 */
#include "region.h"

#include <errno.h>

uint32_t px__arena_chunks(px_region *r, size_t len)
{
    return (uint32_t)((len + r->hdr->chunk_size - 1) / r->hdr->chunk_size);
}

static void release(px_region *r, uint64_t tag, uint32_t first, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        uint64_t want = tag;
        atomic_compare_exchange_strong_explicit(&r->tags[first + i], &want, 0, memory_order_release,
                                                memory_order_relaxed);
    }
}

/* Tries to claim [at, at + n); returns how many it claimed before a race. */
static uint32_t claim_run(px_region *r, uint64_t tag, uint32_t at, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        uint64_t want = 0;
        if (!atomic_compare_exchange_strong_explicit(&r->tags[at + i], &want, tag,
                                                     memory_order_acq_rel, memory_order_relaxed))
            return i;
    }
    return n;
}

int px__arena_alloc(px_region *r, struct px__tls *t, uint64_t tag, size_t len, uint32_t *first)
{
    uint32_t n = px__arena_chunks(r, len), total = r->hdr->nchunks;
    if (n == 0 || n > 64 || n > total)
        return -E2BIG;
    uint32_t at = t->chunk_cursor < total ? t->chunk_cursor : 0;
    uint32_t run = 0;
    /* One pass over the arena (plus a run's length for the wrap). */
    for (uint64_t seen = 0; seen < (uint64_t)total + n; seen++, at++) {
        if (at >= total) {
            at = 0;
            run = 0;
        }
        if (atomic_load_explicit(&r->tags[at], memory_order_relaxed) != 0) {
            run = 0;
            continue;
        }
        if (++run < n)
            continue;
        uint32_t start = at + 1 - n;
        uint32_t got = claim_run(r, tag, start, n);
        if (got == n) {
            t->chunk_cursor = at + 1;
            *first = start;
            return 0;
        }
        release(r, tag, start, got);
        run = 0;
    }
    return -ENOMEM;
}

void px__arena_free_chunks(px_region *r, uint64_t tag, uint32_t first, size_t len)
{
    uint32_t n = px__arena_chunks(r, len);
    if (n == 0 || first >= r->hdr->nchunks || n > r->hdr->nchunks - first)
        return;
    release(r, tag, first, n);
}

void px__arena_free_stray(px_region *r, uint64_t tag, uint32_t keep_first, size_t keep_len)
{
    uint32_t keep_n = keep_first == PX__NO_CHUNK ? 0 : px__arena_chunks(r, keep_len);
    for (uint32_t i = 0; i < r->hdr->nchunks; i++) {
        if (atomic_load_explicit(&r->tags[i], memory_order_relaxed) != tag)
            continue;
        if (keep_n && i >= keep_first && i - keep_first < keep_n)
            continue;
        release(r, tag, i, 1);
    }
}

void px__arena_sweep(px_region *r)
{
    for (uint32_t i = 0; i < r->hdr->nchunks; i++) {
        uint64_t tag = atomic_load_explicit(&r->tags[i], memory_order_acquire);
        if (tag == 0)
            continue;
        uint32_t idx = PX__ID_IDX(tag);
        bool orphan = idx >= r->hdr->capacity;
        if (!orphan) {
            uint64_t c = atomic_load_explicit(&r->slots[idx].ctl, memory_order_acquire);
            orphan = PX__CTL_GEN(c) != PX__ID_GEN(tag) || PX__CTL_STATE(c) == PX__S_FREE;
        }
        if (orphan)
            release(r, tag, i, 1);
    }
}

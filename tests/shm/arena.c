/*
 * The payload arena: runs of chunks claimed by tag, released by CAS on the
 * tag, stray and orphan release.
 */
#include "common.h"
#include "shm/region.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>

#define CHUNK 64u /* max_payload 4096 -> 4096 / 64 */
#define NCHUNKS 256u

static char rname[64];

static void cleanup(void)
{
    px_region_destroy(rname);
}

TestSuite(arena, .fini = cleanup);

static px_region *open_arena(void)
{
    px_region *r = px_test_region(rname, sizeof rname,
                                  &(px_region_opts){.capacity = 64,
                                                    .max_payload = 4096,
                                                    .arena_bytes = NCHUNKS * CHUNK,
                                                    .lanes = 4,
                                                    .lane_depth = 8});
    cr_assert_eq(r->hdr->chunk_size, CHUNK);
    cr_assert_eq(r->hdr->nchunks, NCHUNKS);
    return r;
}

static uint64_t tag_at(px_region *r, uint32_t i)
{
    return atomic_load(&r->tags[i]);
}

static uint32_t count_tag(px_region *r, uint64_t tag)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < r->hdr->nchunks; i++)
        n += tag_at(r, i) == tag;
    return n;
}

static uint64_t arena_used(px_region *r)
{
    px_region_info info;
    cr_assert_eq(px_region_info_get(r, &info), 0);
    return info.arena_used;
}

Test(arena, chunk_count)
{
    px_region *r = open_arena();
    cr_assert_eq(px__arena_chunks(r, 0), 0);
    cr_assert_eq(px__arena_chunks(r, 1), 1);
    cr_assert_eq(px__arena_chunks(r, CHUNK), 1);
    cr_assert_eq(px__arena_chunks(r, CHUNK + 1), 2);
    cr_assert_eq(px__arena_chunks(r, 4096), 64);
    px_region_close(r);
}

Test(arena, runs_of_1_to_64_chunks)
{
    px_region *r = open_arena();
    struct px__tls *t = px__tls_get(r);
    for (uint32_t n = 1; n <= 64; n++) {
        for (int exact = 0; exact < 2; exact++) {
            size_t len = exact ? (size_t)n * CHUNK : (size_t)(n - 1) * CHUNK + 1;
            uint64_t tag = PX__ID(7 + n, n);
            uint32_t first = PX__NO_CHUNK;
            int rc = px__arena_alloc(r, t, tag, len, &first);
            cr_assert_eq(rc, 0, "alloc of %zu bytes: %d", len, rc);
            cr_assert_leq(first + n, NCHUNKS, "a run does not cross the arena's end");
            for (uint32_t i = 0; i < n; i++)
                cr_assert_eq(tag_at(r, first + i), tag, "chunk %u of the run", i);
            cr_assert_eq(count_tag(r, tag), n, "exactly the run is tagged");
            cr_assert_eq(arena_used(r), (uint64_t)n * CHUNK);
            /* The run is usable memory of that size. */
            memset(px__arena_ptr(r, first), 0xab, len);
            px__arena_free(r, tag, first, len);
            cr_assert_eq(count_tag(r, tag), 0);
            cr_assert_eq(arena_used(r), 0);
        }
    }
    px_region_close(r);
}

Test(arena, too_big_and_empty)
{
    px_region *r = open_arena();
    struct px__tls *t = px__tls_get(r);
    uint32_t first = 123;
    cr_assert_eq(px__arena_alloc(r, t, 5, 64 * CHUNK + 1, &first), -E2BIG);
    cr_assert_eq(px__arena_alloc(r, t, 5, 65 * CHUNK, &first), -E2BIG);
    cr_assert_eq(px__arena_alloc(r, t, 5, 0, &first), -E2BIG, "nothing to allocate");
    cr_assert_eq(first, 123, "untouched on failure");
    cr_assert_eq(arena_used(r), 0);
    px_region_close(r);
}

Test(arena, exhaustion_and_fragmentation)
{
    px_region *r = open_arena();
    struct px__tls *t = px__tls_get(r);
    uint32_t first, n = 0;
    uint32_t got[NCHUNKS];
    while (px__arena_alloc(r, t, 1000 + n, 1, &first) == 0) {
        cr_assert_lt(n, NCHUNKS, "more chunks than the arena has");
        got[n++] = first;
    }
    cr_assert_eq(n, NCHUNKS, "every chunk can be allocated");
    cr_assert_eq(px__arena_alloc(r, t, 9, 1, &first), -ENOMEM);
    cr_assert_eq(arena_used(r), (uint64_t)NCHUNKS * CHUNK);

    /* Free every other chunk: half the arena is free but no run of 2. */
    for (uint32_t i = 0; i < n; i++)
        if (got[i] % 2 == 0)
            px__arena_free(r, 1000 + i, got[i], 1);
    cr_assert_eq(px__arena_alloc(r, t, 9, CHUNK + 1, &first), -ENOMEM);
    cr_assert_eq(count_tag(r, 9), 0, "a failed allocation claims nothing");
    cr_assert_eq(px__arena_alloc(r, t, 9, CHUNK, &first), 0);
    cr_assert_eq(first % 2, 0);
    px_region_close(r);
}

Test(arena, finds_the_only_run_around_the_cursor)
{
    px_region *r = open_arena();
    struct px__tls *t = px__tls_get(r);
    /* Fill everything but [100, 104). */
    for (uint32_t i = 0; i < NCHUNKS; i++)
        if (!(i >= 100 && i < 104))
            atomic_store(&r->tags[i], 77);
    uint32_t first;
    /* Cursor inside the free run: the scan wraps to find its start. */
    t->chunk_cursor = 102;
    cr_assert_eq(px__arena_alloc(r, t, 8, 4 * CHUNK, &first), 0);
    cr_assert_eq(first, 100, "got %u", first);
    /* Now only [252, 256) is free and the cursor is inside it: the run is
     * found after a full lap. */
    for (uint32_t i = 252; i < NCHUNKS; i++)
        atomic_store(&r->tags[i], 0);
    t->chunk_cursor = 254;
    cr_assert_eq(px__arena_alloc(r, t, 9, 4 * CHUNK, &first), 0);
    cr_assert_eq(first, 252, "got %u", first);
    cr_assert_eq(px__arena_alloc(r, t, 10, 1, &first), -ENOMEM);
    /* A stale cursor past the end is harmless. */
    px__arena_free(r, 8, 100, 4 * CHUNK);
    t->chunk_cursor = 100000;
    cr_assert_eq(px__arena_alloc(r, t, 8, 3 * CHUNK, &first), 0);
    cr_assert_eq(first, 100, "got %u", first);
    px_region_close(r);
}

Test(arena, free_is_idempotent_and_respects_new_owners)
{
    px_region *r = open_arena();
    struct px__tls *t = px__tls_get(r);
    uint32_t a, b;
    t->chunk_cursor = 10;
    cr_assert_eq(px__arena_alloc(r, t, 0xa, 3 * CHUNK, &a), 0);
    px__arena_free(r, 0xa, a, 3 * CHUNK);
    px__arena_free(r, 0xa, a, 3 * CHUNK); /* twice: harmless */
    cr_assert_eq(count_tag(r, 0xa), 0);

    /* Another tag claims the same chunks; a late free of the old tag must
     * not release them. */
    t->chunk_cursor = a;
    cr_assert_eq(px__arena_alloc(r, t, 0xb, 3 * CHUNK, &b), 0);
    cr_assert_eq(b, a, "the same chunks were reused");
    px__arena_free(r, 0xa, a, 3 * CHUNK);
    cr_assert_eq(count_tag(r, 0xb), 3, "the new owner keeps its chunks");

    /* Out-of-bounds or empty frees are ignored. */
    px__arena_free(r, 0xb, PX__NO_CHUNK, CHUNK);
    px__arena_free(r, 0xb, NCHUNKS, CHUNK);
    px__arena_free(r, 0xb, NCHUNKS - 1, 3 * CHUNK);
    px__arena_free(r, 0xb, b, 0);
    cr_assert_eq(count_tag(r, 0xb), 3);
    /* A free of a partial length releases only that prefix. */
    px__arena_free(r, 0xb, b, CHUNK);
    cr_assert_eq(count_tag(r, 0xb), 2);
    cr_assert_eq(tag_at(r, b), 0);
    px_region_close(r);
}

Test(arena, free_stray_keeps_one_run)
{
    px_region *r = open_arena();
    struct px__tls *t = px__tls_get(r);
    uint32_t keep, s1, s2, other;
    cr_assert_eq(px__arena_alloc(r, t, 0x51, 5 * CHUNK, &keep), 0);
    cr_assert_eq(px__arena_alloc(r, t, 0x51, 2 * CHUNK, &s1), 0);
    cr_assert_eq(px__arena_alloc(r, t, 0x99, 4 * CHUNK, &other), 0);
    cr_assert_eq(px__arena_alloc(r, t, 0x51, 64 * CHUNK, &s2), 0);
    cr_assert_eq(count_tag(r, 0x51), 71);
    px__arena_free_stray(r, 0x51, keep, 5 * CHUNK);
    cr_assert_eq(count_tag(r, 0x51), 5, "only the kept run stays");
    for (uint32_t i = 0; i < 5; i++)
        cr_assert_eq(tag_at(r, keep + i), 0x51);
    cr_assert_eq(count_tag(r, 0x99), 4, "other tags untouched");
    px__arena_free_stray(r, 0x51, PX__NO_CHUNK, 5 * CHUNK);
    cr_assert_eq(count_tag(r, 0x51), 0, "no kept run: everything goes");
    cr_assert_eq(count_tag(r, 0x99), 4);
    px_region_close(r);
}

Test(arena, sweep_releases_orphans_only)
{
    px_region *r = open_arena();
    struct px__tls *t = px__tls_get(r);
    px_id live, dead;
    cr_assert_eq(px__slot_reserve(r, t, 0, &live), 0);
    cr_assert_eq(px__slot_reserve(r, t, 0, &dead), 0);
    uint32_t c_live, c_dead, c_far, c_free, c_oldgen;
    cr_assert_eq(px__arena_alloc(r, t, live, 3 * CHUNK, &c_live), 0);
    cr_assert_eq(px__arena_alloc(r, t, dead, 2 * CHUNK, &c_dead), 0);
    /* Free the slot without its chunks being recorded in it: what a process
     * that died between the two steps leaves behind. */
    struct px__slot *s = &r->slots[PX__ID_IDX(dead)];
    atomic_store(&s->args_chunk, PX__NO_CHUNK);
    atomic_store(&s->args_len, 0);
    atomic_store(&s->out_chunk, PX__NO_CHUNK);
    atomic_store(&s->out_len, 0);
    cr_assert(px__slot_free(r, PX__ID_IDX(dead), atomic_load(&s->ctl)));
    cr_assert_eq(count_tag(r, dead), 2, "still tagged after the slot was freed");
    /* A tag naming a slot index beyond capacity. */
    cr_assert_eq(px__arena_alloc(r, t, PX__ID(5, 1000), CHUNK, &c_far), 0);
    /* A tag whose generation matches a FREE slot. */
    uint32_t free_idx = (PX__ID_IDX(live) + 7) % r->hdr->capacity;
    uint64_t fc = atomic_load(&r->slots[free_idx].ctl);
    cr_assert_eq(PX__CTL_STATE(fc), PX__S_FREE);
    px_id free_tag = PX__ID(PX__CTL_GEN(fc), free_idx);
    cr_assert_eq(px__arena_alloc(r, t, free_tag, CHUNK, &c_free), 0);
    /* A tag of another generation of the live slot. */
    px_id old = PX__ID(PX__ID_GEN(live) + 2, PX__ID_IDX(live));
    cr_assert_eq(px__arena_alloc(r, t, old, CHUNK, &c_oldgen), 0);

    px__arena_sweep(r);
    cr_assert_eq(count_tag(r, live), 3, "chunks of a live slot stay");
    cr_assert_eq(count_tag(r, dead), 0, "generation moved on: released");
    cr_assert_eq(count_tag(r, PX__ID(5, 1000)), 0, "index out of range: released");
    cr_assert_eq(count_tag(r, free_tag), 0, "slot FREE: released");
    cr_assert_eq(count_tag(r, old), 0, "other generation: released");
    cr_assert_eq(arena_used(r), 3 * CHUNK);
    px_region_close(r);
}

/* ---- Threads ------------------------------------------------------------ */

struct churn {
    px_region *r;
    unsigned seed;
    int me;
    _Atomic int *errors;
};

static void *churn_main(void *p)
{
    struct churn *c = p;
    px_region *r = c->r;
    struct px__tls *t = px__tls_get(r);
    uint64_t tag = 0x1000 + (uint64_t)c->me;
    uint32_t held_first[8], held_len[8], nheld = 0;
    for (int it = 0; it < 20000; it++) {
        if (nheld < 8 && (rand_r(&c->seed) % 2 || nheld == 0)) {
            uint32_t len = 1 + rand_r(&c->seed) % (16 * CHUNK);
            uint32_t first;
            int rc = px__arena_alloc(r, t, tag, len, &first);
            if (rc == -ENOMEM)
                continue;
            if (rc != 0) {
                atomic_fetch_add(c->errors, 1);
                continue;
            }
            /* Check that no one else holds any chunk of the run. */
            for (uint32_t i = 0; i < px__arena_chunks(r, len); i++)
                if (atomic_load(&r->tags[first + i]) != tag)
                    atomic_fetch_add(c->errors, 1);
            memset(px__arena_ptr(r, first), c->me, len);
            held_first[nheld] = first;
            held_len[nheld++] = len;
        } else {
            uint32_t k = rand_r(&c->seed) % nheld;
            const uint8_t *p8 = px__arena_ptr(r, held_first[k]);
            for (uint32_t i = 0; i < held_len[k]; i++)
                if (p8[i] != (uint8_t)c->me) {
                    atomic_fetch_add(c->errors, 1);
                    break;
                }
            px__arena_free(r, tag, held_first[k], held_len[k]);
            held_first[k] = held_first[nheld - 1];
            held_len[k] = held_len[--nheld];
        }
    }
    while (nheld--)
        px__arena_free(r, tag, held_first[nheld], held_len[nheld]);
    return NULL;
}

Test(arena, concurrent_allocations_never_overlap)
{
    unsigned seed = px_test_seed();
    px_region *r = open_arena();
    _Atomic int errors = 0;
    pthread_t th[4];
    struct churn c[4];
    for (int i = 0; i < 4; i++) {
        c[i] = (struct churn){r, seed + (unsigned)i, i + 1, &errors};
        pthread_create(&th[i], NULL, churn_main, &c[i]);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    cr_assert_eq(atomic_load(&errors), 0, "overlapping or corrupted runs (seed %u)", seed);
    cr_assert_eq(arena_used(r), 0, "everything was released");
    px_region_close(r);
}

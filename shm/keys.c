/*
 * The key index; see keys.h for what it guarantees.
 */
#include "region.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

uint64_t px__key_hash(const char *key, size_t len)
{
    uint64_t h = XXH3_64bits(key, len);
    return h ? h : 1;
}

static uint32_t shard_of(uint64_t hash)
{
    return (uint32_t)(hash >> 58) % PX__KEY_SHARDS;
}

static struct px__keyent *shard_base(px_region *r, uint32_t shard)
{
    return r->keys + (size_t)shard * r->hdr->key_shard_size;
}

/* True if id names a task that exists and is not finished. */
static bool live(px_region *r, px_id id)
{
    struct px__slot *s = px__slot_of(r, id);
    if (!s)
        return false;
    uint64_t c = atomic_load_explicit(&s->ctl, memory_order_acquire);
    uint32_t st = PX__CTL_STATE(c);
    return PX__CTL_GEN(c) == PX__ID_GEN(id) && st != PX__S_FREE && st != PX__S_CONSUMING &&
           !px__state_finished(st);
}

/* Places hash -> id at the first empty entry from its home. */
static bool place(struct px__keyent *e, uint32_t n, uint64_t hash, px_id id)
{
    uint32_t at = (uint32_t)hash & (n - 1);
    for (uint32_t i = 0; i < n; i++, at = (at + 1) & (n - 1))
        if (atomic_load_explicit(&e[at].hash, memory_order_relaxed) == 0) {
            atomic_store_explicit(&e[at].id, id, memory_order_relaxed);
            atomic_store_explicit(&e[at].hash, hash, memory_order_relaxed);
            return true;
        }
    return false;
}

/*
 * Rebuilds a shard from its live entries: after its lock's holder died,
 * perhaps half-way through moving entries (delete_at), which could have cut
 * a probe chain.
 */
static void shard_rebuild(px_region *r, uint32_t shard)
{
    uint32_t n = r->hdr->key_shard_size, k = 0;
    struct px__keyent *e = shard_base(r, shard);
    struct {
        uint64_t hash, id;
    } *keep = malloc((size_t)n * sizeof *keep);
    for (uint32_t i = 0; i < n; i++) {
        uint64_t h = atomic_load_explicit(&e[i].hash, memory_order_relaxed);
        px_id id = atomic_load_explicit(&e[i].id, memory_order_relaxed);
        bool dup = false;
        for (uint32_t j = 0; keep && j < k && !dup; j++)
            dup = keep[j].hash == h; /* a half-done move copies an entry */
        if (keep && h && !dup && live(r, id))
            keep[k++] = (typeof(*keep)){h, id};
        atomic_store_explicit(&e[i].hash, 0, memory_order_relaxed);
        atomic_store_explicit(&e[i].id, 0, memory_order_relaxed);
    }
    for (uint32_t j = 0; j < k; j++)
        place(e, n, keep[j].hash, keep[j].id);
    free(keep);
}

void px__keys_lock(px_region *r, uint64_t hash)
{
    uint32_t shard = shard_of(hash);
    pthread_mutex_t *m = &r->key_shards[shard].lock;
    if (pthread_mutex_lock(m) == EOWNERDEAD) {
        shard_rebuild(r, shard);
        pthread_mutex_consistent(m);
    }
}

void px__keys_unlock(px_region *r, uint64_t hash)
{
    pthread_mutex_unlock(&r->key_shards[shard_of(hash)].lock);
}

/*
 * Empties entry i of a linear-probing run and moves later entries of its
 * chain back (backward-shift deletion), so that no probe chain has a hole
 * and no tombstone is left: chains stay as short as the live keys make
 * them.
 */
static void delete_at(struct px__keyent *e, uint32_t n, uint32_t i)
{
    for (uint32_t j = i, steps = 1; steps < n; steps++) {
        j = (j + 1) & (n - 1);
        uint64_t h = atomic_load_explicit(&e[j].hash, memory_order_relaxed);
        if (h == 0)
            break;
        uint32_t home = (uint32_t)h & (n - 1);
        /* An entry whose home lies cyclically in (i, j] stays. */
        bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
        if (stays)
            continue;
        atomic_store_explicit(&e[i].id, atomic_load_explicit(&e[j].id, memory_order_relaxed),
                              memory_order_relaxed);
        atomic_store_explicit(&e[i].hash, h, memory_order_relaxed);
        i = j;
    }
    atomic_store_explicit(&e[i].hash, 0, memory_order_relaxed);
    atomic_store_explicit(&e[i].id, 0, memory_order_relaxed);
}

px_id px__keys_find(px_region *r, uint64_t hash)
{
    uint32_t n = r->hdr->key_shard_size, at = (uint32_t)hash & (n - 1);
    struct px__keyent *e = shard_base(r, shard_of(hash));
    for (uint32_t steps = 0; steps < n;) {
        uint64_t h = atomic_load_explicit(&e[at].hash, memory_order_relaxed);
        if (h == 0)
            return 0; /* the end of the chain */
        px_id id = atomic_load_explicit(&e[at].id, memory_order_relaxed);
        if (!live(r, id)) {
            delete_at(e, n, at); /* a finished task's: gone, look here again */
            continue;
        }
        if (h == hash)
            return id;
        at = (at + 1) & (n - 1);
        steps++;
    }
    return 0;
}

/* Deletes the dead entries among `count` entries from the shard's sweep
 * cursor on. */
static void sweep(px_region *r, uint32_t shard, uint32_t count)
{
    uint32_t n = r->hdr->key_shard_size;
    struct px__keyent *e = shard_base(r, shard);
    uint32_t at = r->key_shards[shard].sweep & (n - 1);
    for (uint32_t i = 0; i < count && i < n; i++) {
        while (atomic_load_explicit(&e[at].hash, memory_order_relaxed) &&
               !live(r, atomic_load_explicit(&e[at].id, memory_order_relaxed)))
            delete_at(e, n, at); /* something else may have moved here */
        at = (at + 1) & (n - 1);
    }
    r->key_shards[shard].sweep = at;
}

int px__keys_put(px_region *r, uint64_t hash, px_id id)
{
    uint32_t n = r->hdr->key_shard_size, shard = shard_of(hash);
    sweep(r, shard, 4);
    if (place(shard_base(r, shard), n, hash, id))
        return 0;
    sweep(r, shard, n); /* full: of dead entries, perhaps */
    return place(shard_base(r, shard), n, hash, id) ? 0 : -EAGAIN;
}

void px__keys_by_slot(px_region *r, uint64_t *out, px_id *ids)
{
    uint32_t cap = r->hdr->capacity, n = r->hdr->key_shard_size;
    memset(out, 0, (size_t)cap * sizeof *out);
    for (uint32_t shard = 0; shard < PX__KEY_SHARDS; shard++) {
        struct px__keyent *e = shard_base(r, shard);
        /* A key in this shard: its lock, so that no entry is mid-move. */
        uint64_t any = (uint64_t)shard << 58;
        px__keys_lock(r, any);
        for (uint32_t i = 0; i < n; i++) {
            uint64_t h = atomic_load_explicit(&e[i].hash, memory_order_relaxed);
            px_id id = atomic_load_explicit(&e[i].id, memory_order_relaxed);
            if (h && live(r, id)) {
                out[PX__ID_IDX(id)] = h;
                ids[PX__ID_IDX(id)] = id;
            }
        }
        px__keys_unlock(r, any);
    }
}

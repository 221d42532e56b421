/*
 * The key index: idempotent submits (px_submit_opts.key).
 *
 * A table of (key hash, task id) pairs in the region, split into
 * PX__KEY_SHARDS shards; shard s owns a contiguous run of the table and is
 * guarded by its own robust, process-shared mutex, so submits of different
 * keys rarely meet on a lock and the hot path of unkeyed submits never
 * touches the index. Within a shard, linear probing from the hash.
 *
 * Keys are compared by their XXH3-64 hash. An entry is live while the task
 * it names exists and is not finished (its slot's generation matches the
 * id's and its state is neither finished nor free). A finished task's
 * entry is dead; a lookup that meets one deletes it (backward-shift
 * deletion: later entries of the chain move back, so chains have no holes
 * and no tombstones), and every insert also sweeps a few entries further
 * on, so that dead entries no lookup meets go too: the shard holds little
 * more than its live keys and chains stay short. Live
 * entries are at most one per slot and the table has twice as many entries
 * as slots, so an insert finds room unless one shard holds far more than
 * its share of the live keys (then it fails with -EAGAIN).
 *
 * Every read and write of a shard's entries is under its lock. A process
 * that dies holding it may leave a move half done (an entry copied twice,
 * or a chain cut); the next locker gets EOWNERDEAD and rebuilds the shard
 * from its live entries.
 */
#ifndef PX_SHM_KEYS_H
#define PX_SHM_KEYS_H

#include "pollux.h"

#include <pthread.h>
#include <stdint.h>

#define PX__KEY_SHARDS 64u

struct px__keyent {
    _Atomic uint64_t hash; /* 0: empty */
    _Atomic uint64_t id;
};

/* A shard's lock, and where its incremental sweep for dead entries is. */
struct px__keyshard {
    pthread_mutex_t lock;
    uint32_t sweep; /* under the lock */
};

/* The hash of a key as the index stores it (never 0). */
uint64_t px__key_hash(const char *key, size_t len);

/* Under the shard lock: the live task with this key hash, or 0. */
px_id px__keys_find(px_region *r, uint64_t hash);
/* Under the shard lock: records hash -> id; -EAGAIN if the shard is full. */
int px__keys_put(px_region *r, uint64_t hash, px_id id);

void px__keys_lock(px_region *r, uint64_t hash);
void px__keys_unlock(px_region *r, uint64_t hash);

/* The key hash and id of every live keyed task, by slot index (hash 0:
 * none), for a checkpoint: both arrays have capacity entries. */
void px__keys_by_slot(px_region *r, uint64_t *hash, px_id *ids);

#endif

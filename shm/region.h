/*
 * The process-local side of a region: the handle, per-thread state, and the
 * internal calls of shm/ that other modules use.
 */
#ifndef PX_SHM_REGION_H
#define PX_SHM_REGION_H

#include "layout.h"
#include "keys.h"
#include "timers.h"
#include "pollux.h"

#include <pthread.h>
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>

/* Lanes one thread may own at once in one region (one per queue, priority
 * level and mode). */
#define PX__TLS_LANES 16

/*
 * Per-thread, per-region state, found through the handle's pthread key. It
 * holds the lanes the thread owns (single producer: only this thread pushes
 * into them) and its allocation cursors. Released when the thread exits or
 * the handle is closed.
 */
struct px__tls {
    struct px__tls *next; /* the handle's list, under r->tls_lock */
    px_region *r;
    uint32_t nlanes;
    uint32_t lane_key[PX__TLS_LANES];
    uint32_t lane_idx[PX__TLS_LANES];
    uint64_t lane_head[PX__TLS_LANES]; /* last head read, see px__lane_push_cached */
    uint32_t slot_cursor;
    uint32_t chunk_cursor;
    /* The last task name this thread submitted and its definition's index
     * + 1 (0: none). Definitions never change once published, so a submit
     * of the same name again needs no hash and no probe. */
    uint32_t def_cached;
    uint32_t stat_shard; /* the metrics shard it owns + 1; 0: none yet */
    bool stat_none;      /* none was free: it counts in the shared one */
    bool free_defer;     /* a worker thread: its FREEs ride on its next START */
    px_id free_owed;     /* the FREE it owes the log (journal.h); 0: none */
    char def_name[PX__NAME_MAX];
};

struct px_region {
    uint8_t *base;
    size_t size;
    struct px__hdr *hdr;
    struct px__proc *procs;
    struct px__queue *queues;
    struct px__def *defs;
    struct px__lane *lanes;
    _Atomic uint64_t *entries;
    struct px__slot *slots;
    struct px__timer *timers;
    struct px__keyshard *key_shards;
    struct px__keyent *keys;
    _Atomic uint64_t *tickets;    /* max_queues * PX__CONC_MAX */
    struct px__sched *scheds;     /* PX__MAX_SCHEDS */
    struct px__stat_shard *stats; /* PX__STAT_SHARDS */
    struct px__park *parks;       /* PX__MAX_PARKS */
    struct px__tls fork_tls;      /* a pool child's own (px__tls_reset_after_fork) */
    struct px__tls *tls_forked;   /* in a pool child, the parent's threads' copies */
    _Atomic uint64_t *tags;
    uint8_t *arena;
    uint32_t self; /* our proc index */
    uint32_t lane_mask;
    bool tsc;                  /* task stamps are TSC ticks (the header's clock) */
    bool metrics;              /* the region keeps metrics (shm/stats.h) */
    struct px__wal *wal;       /* this process's log writer; NULL: not durable */
    bool wal_borrowed;         /* a pool child's: its parent's writer */
    px_recovery_info recovery; /* what opening recovered from the log */
    pthread_key_t tls_key;
    uint64_t tls_id; /* unique among this process's handles: px__tls_get's cache */
    pthread_mutex_t tls_lock;
    struct px__tls *tls_list;
    _Atomic(px_task_fn) fns[PX__MAX_DEFS]; /* bound bodies, by definition index */
    _Atomic int workers;                   /* px_workers started on this handle */
    char name[256];
};

struct px__wal;

/* region.c */
/* A one-entry cache in front of the handle's pthread key: the handle (by
 * tls_id, never reused, so a handle closed and another opened at its
 * address do not match) and the thread's struct for it, read inline on
 * every submit and run. Initial-exec (PX__TLS_IE, used by persist/wal.c
 * too): read straight off the thread pointer, not through __tls_get_addr. */
#define PX__TLS_IE __attribute__((tls_model("initial-exec")))
extern __thread PX__TLS_IE uint64_t px__tl_tls_id;
extern __thread PX__TLS_IE struct px__tls *px__tl_tls;
/* The thread's struct through the pthread key, made if there is none yet,
 * and put in the cache; NULL if out of memory. */
struct px__tls *px__tls_lookup(px_region *r);
static inline struct px__tls *px__tls_get(px_region *r)
{
    return px__tl_tls_id == r->tls_id ? px__tl_tls : px__tls_lookup(r);
}
void px__tls_release_all(px_region *r);
/* Forget the calling thread's lanes without releasing them; for a child just
 * forked, whose lanes belong to the parent's thread. */
void px__tls_reset_after_fork(px_region *r);
int px__hdr_lock(px_region *r);
void px__hdr_unlock(px_region *r);

/* executor/reaper.c: returns what dead processes held (see there). */
int px__reap(px_region *r);

/* Waiter counts in the header that wakers read before a futex wake. */
enum px__wait_kind { PX__WAIT_DONE = 0, PX__WAIT_ROOM = 1, PX__WAIT_LANE = 2 };
/* Counts the caller in (announce) or out (retract). The header's count is
 * raised before and lowered after this process's share, so a process that
 * dies in between leaves the header counting too many (a needless wake
 * call), never too few (a lost wake). */
void px__announce(px_region *r, enum px__wait_kind k);
void px__retract(px_region *r, enum px__wait_kind k);
/* The same for an idle worker, once per bit of its futex bitset. */
void px__announce_sleep(px_region *r, uint32_t bits);
void px__retract_sleep(px_region *r, uint32_t bits);
/* Takes back a dead process's share; idempotent. */
void px__retract_dead(px_region *r, uint32_t proc);

/* proc.c */
int px__proc_attach(px_region *r, px_role role);
void px__proc_detach(px_region *r);
/* True if the process recorded in procs[idx] still runs (same pid and same
 * start time). A stopped process is alive. */
bool px__proc_alive(const struct px__proc *p);
int px__proc_start_time(int pid, uint64_t *out);

/* A time limit in seconds as a slot holds it: ms, 0 none, at least 1. */
static inline uint32_t px__limit_ms(double s)
{
    return s > 0 ? (s * 1000 < 1 ? 1 : (uint32_t)(s * 1000)) : 0;
}

/* The time limit of a run of the task in slot s, in ms (0: none). */
static inline uint32_t px__slot_limit_ms(px_region *r, struct px__slot *s)
{
    uint32_t ms = atomic_load_explicit(&s->limit_ms, memory_order_relaxed);
    uint32_t def = atomic_load_explicit(&s->def, memory_order_relaxed);
    if (ms == 0 && def < r->hdr->max_defs)
        ms = r->defs[def].time_limit_ms;
    return ms;
}

/* defs.c */
int px__queue_find(px_region *r, const char *name, bool create);
int px__def_find(px_region *r, const char *name);
int px__def_register(px_region *r, const px_task_def *def, uint32_t extra_flags);
const char *px__def_name(px_region *r, uint32_t def);

/* arena.c */
int px__arena_alloc(px_region *r, struct px__tls *t, uint64_t tag, size_t len, uint32_t *first);
void px__arena_free_chunks(px_region *r, uint64_t tag, uint32_t first, size_t len);
/* Releases the chunks [first, first + chunks(len)) tagged `tag`; nothing
 * for an inline payload (PX__NO_CHUNK), the common case, decided here
 * without a call. */
static inline void px__arena_free(px_region *r, uint64_t tag, uint32_t first, size_t len)
{
    if (first != PX__NO_CHUNK)
        px__arena_free_chunks(r, tag, first, len);
}
void px__arena_free_stray(px_region *r, uint64_t tag, uint32_t keep_first, size_t keep_len);
void px__arena_sweep(px_region *r);
uint32_t px__arena_chunks(px_region *r, size_t len);
static inline uint8_t *px__arena_ptr(px_region *r, uint32_t chunk)
{
    return r->arena + (size_t)chunk * r->hdr->chunk_size;
}

/* slot.c */
static inline struct px__slot *px__slot_of(px_region *r, px_id id)
{
    uint32_t idx = PX__ID_IDX(id);
    if (id == 0 || idx >= r->hdr->capacity || PX__ID_GEN(id) == 0)
        return NULL;
    return &r->slots[idx];
}
int px__slot_reserve(px_region *r, struct px__tls *t, uint32_t flags, px_id *id);
/* Frees the slot whose ctl is `seen` (CAS), with its chunks; false if ctl
 * changed meanwhile. */
bool px__slot_free(px_region *r, uint32_t idx, uint64_t seen);
/* Gives back a slot we reserved and never published, without waking room
 * waiters. */
void px__slot_unreserve(px_region *r, px_id id);
/* A payload in the arena at chunk c, or NULL if shared memory says
 * something out of bounds. */
const uint8_t *px__slot_chunks(px_region *r, uint32_t c, uint32_t len);
/* A payload of len bytes: inline (chunk PX__NO_CHUNK, at most inl_cap
 * bytes), decided without a call, or at chunk c; NULL if out of bounds. */
static inline const uint8_t *px__slot_payload(px_region *r, const uint8_t *inl, uint32_t c,
                                              uint32_t len, uint32_t inl_cap)
{
    if (c == PX__NO_CHUNK)
        return len <= inl_cap ? inl : NULL;
    return px__slot_chunks(r, c, len);
}
static inline const uint8_t *px__slot_args(px_region *r, struct px__slot *s)
{
    return px__slot_payload(r, s->args, atomic_load_explicit(&s->args_chunk, memory_order_relaxed),
                            atomic_load_explicit(&s->args_len, memory_order_relaxed),
                            PX__INLINE_ARGS);
}
static inline const uint8_t *px__slot_out(px_region *r, struct px__slot *s)
{
    return px__slot_payload(r, s->out, atomic_load_explicit(&s->out_chunk, memory_order_relaxed),
                            atomic_load_explicit(&s->out_len, memory_order_relaxed),
                            PX__INLINE_OUT);
}
/*
 * Copies n bytes of a slot's payload that a writer may be changing, for a
 * caller that then reads the slot's ctl again and discards the copy if it
 * moved: the read side of a sequence lock (px_join, px_info, checkpoints).
 * A discarded copy raced with a plain write, which C11 calls a data race;
 * the check makes it harmless, and under ThreadSanitizer the copy is made
 * with volatile byte loads it does not watch.
 */
void px__copy_checked(void *dst, const void *src, size_t n);
/*
 * Wakes whoever waits for what just happened: joiners of slot s and
 * px_wait_any callers (after a transition they may wait for), producers
 * waiting for room (after a slot or chunk was freed), producers waiting
 * for room in lane l (once it is at most half full). Each first reads its
 * waiter count (seq_cst; see slot.c) inline, and calls only if someone
 * waits: on the task path no one usually does.
 */
void px__wake_slot_waiters(px_region *r, struct px__slot *s);
void px__wake_room_waiters(px_region *r);
void px__wake_lane_waiters(px_region *r, struct px__lane *l);
static inline void px__wake_slot(px_region *r, struct px__slot *s)
{
    if (atomic_load(&s->waiters) != 0 || atomic_load(&r->hdr->done_waiters) != 0)
        px__wake_slot_waiters(r, s);
}
static inline void px__wake_room(px_region *r)
{
    if (atomic_load(&r->hdr->room_waiters) != 0)
        px__wake_room_waiters(r);
}
static inline void px__wake_lane(px_region *r, struct px__lane *l)
{
    if (atomic_load(&r->hdr->lane_waiters) != 0)
        px__wake_lane_waiters(r, l);
}

/* The schedule table's robust lock (executor/sched.c). A holder that died
 * leaves the table as it was between two steps; the repair is
 * px__sched_advance's, so taking the lock only marks it consistent. */
static inline void px__sched_lock(px_region *r)
{
    if (pthread_mutex_lock(&r->hdr->sched_lock) == EOWNERDEAD)
        pthread_mutex_consistent(&r->hdr->sched_lock);
}

static inline void px__sched_unlock(px_region *r)
{
    pthread_mutex_unlock(&r->hdr->sched_lock);
}

#endif

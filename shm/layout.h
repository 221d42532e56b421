/*
 * The region's layout: an ABI shared by every process that maps it.
 *
 * A region is one mapping: a header, then fixed-size tables placed at
 * offsets recorded in the header. Nothing in it is a pointer: every process
 * maps the region at its own address and turns offsets and indices into
 * pointers itself, after checking them against the header's sizes.
 *
 *   header | procs[max_procs] | queues[max_queues] | defs[max_defs]
 *          | lanes[lanes] | lane entries[lanes * lane_depth]
 *          | slots[capacity] | timers[capacity]
 *          | key locks[64] | keys[64 * key_shard_size]
 *          | tickets[max_queues * PX__CONC_MAX] | schedules[PX__MAX_SCHEDS]
 *          | stat shards[PX__STAT_SHARDS] | parks[PX__MAX_PARKS]
 *          | chunk tags[nchunks]
 *          | arena[nchunks * chunk]
 *
 * Who writes what, and the ordering that makes reads safe, is stated beside
 * each structure below; docs/architecture.md walks through the protocols and
 * what happens when a process dies between two steps.
 */
#ifndef PX_SHM_LAYOUT_H
#define PX_SHM_LAYOUT_H

#include "clock.h"

#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdint.h>

#define PX__MAGIC 0x31584c4c4f50ULL /* "POLLX1" */
#define PX__ABI 9u
#define PX__LINE 64

#define PX__MAX_PROCS 1024u /* fits the 12-bit owner field of a slot */
#define PX__MAX_QUEUES 64u  /* a worker's queue set is a 64-bit mask */
#define PX__MAX_DEFS 1024u  /* open addressing, power of two */
#define PX__NAME_MAX 64u    /* task names, with the NUL */
#define PX__PATH_MAX 512u   /* the log directory, with the NUL */
#define PX__TTL_FOREVER UINT32_MAX
#define PX__QNAME_MAX 32u         /* queue names, with the NUL */
#define PX__INLINE_ARGS 64u       /* args up to this size live in the slot */
#define PX__INLINE_OUT 32u        /* results and error texts, likewise */
#define PX__LEVELS 5u             /* priority levels, px_priority - 1 */
#define PX__CONC_MAX 256u         /* the highest per-queue concurrency limit */
#define PX__MAX_SCHEDS 256u       /* recurring schedules in a region */
#define PX__SCHED_ARGS 256u       /* the most args a schedule keeps for its runs */
#define PX__SCHED_BIT 0x80000000u /* in the index half of a schedule's id */
#define PX__ERR_MAX 256u          /* error texts, with the NUL */
#define PX__MAX_PARKS 1024u       /* idle workers' parking places (shm/park.h) */
#define PX__NO_CHUNK UINT32_MAX

/*
 * Region header. Written once by the creator before it publishes `magic`
 * (release); attachers read `magic` (acquire) before anything else. The
 * futex words below it are the only fields written after creation, each
 * pair on its own cache line so that the hot path only reads them.
 */
struct px__hdr {
    _Atomic uint64_t magic;
    uint32_t abi;
    uint32_t hdr_size;
    uint64_t size; /* bytes of the whole mapping */
    uint64_t nonce;
    uint64_t created_ns;
    uint64_t reap_interval_ns;
    uint32_t capacity, max_payload, lanes, lane_depth;
    uint32_t chunk_size, nchunks, max_procs, max_queues, max_defs;
    uint64_t off_procs, off_queues, off_defs, off_lanes, off_entries;
    uint64_t off_slots, off_timers, off_key_locks, off_keys, off_tickets, off_scheds, off_stats;
    uint64_t off_parks, off_tags, off_arena;
    uint32_t key_shard_size; /* key index entries per shard, a power of two */
    struct px__clock clock;  /* what task stamps count in (clock.h) */
    uint32_t result_ttl_ms;  /* the default retention; PX__TTL_FOREVER */
    uint32_t durability;     /* px_durability */
    uint32_t no_metrics;     /* made with PX_REGION_NO_METRICS */
    uint32_t async_ms;
    /* How lane publications and sleeping workers order themselves
     * (shm/fence.h): PX__FENCES_ASYMMETRIC if the creator could register
     * for the sleepers' barriers. */
    uint32_t fences;
    uint32_t unused;
    uint64_t segment_bytes;
    char log_dir[PX__PATH_MAX]; /* absolute; "" when not durable */
    /* Cold-path writers (attach, registration) take this robust,
     * process-shared mutex; readers never do. */
    pthread_mutex_t lock;
    _Atomic uint32_t nqueues;   /* queues[0..nqueues) are published */
    _Atomic uint32_t lanes_hwm; /* lanes[0..hwm) were ever owned */
    /* Queues whose tasks no worker takes (px_queue_pause), a bit per
     * queue index; beside lanes_hwm, which every take reads already. */
    _Atomic uint64_t paused;
    _Atomic uint64_t rated;        /* queues with a rate limit, likewise */
    _Atomic uint64_t conc_limited; /* queues with a concurrency limit */
    /* Priority levels any lane was ever keyed with, a bit per level: a
     * take walks the lanes level by level only once there are two. */
    _Atomic uint32_t levels;
    /* Idle workers sleep in their parking places (shm/park.h), counted
     * per work bit (the (queue, mode) pairs they serve) in sleepers; a
     * submit looks for one to wake only if its bit counts a sleeper.
     * parks_hwm: parks[0..hwm) were ever claimed. */
    alignas(PX__LINE) _Atomic uint32_t sleepers[32];
    _Atomic uint32_t parks_hwm;
    /* px_wait_any() sleeps on done_seq. */
    alignas(PX__LINE) _Atomic uint32_t done_seq;
    _Atomic uint32_t done_waiters;
    /* Producers waiting for a free slot or arena chunk sleep on room_seq. */
    alignas(PX__LINE) _Atomic uint32_t room_seq;
    _Atomic uint32_t room_waiters;
    /* 1: a waiter went to sleep since the last wake (shm/slot.c). */
    _Atomic uint32_t room_armed;
    /* Producers waiting for room in their full lane sleep on lane_seq; a
     * consumer wakes them once a lane is at most half full, not on every
     * entry it takes. */
    alignas(PX__LINE) _Atomic uint32_t lane_seq;
    _Atomic uint32_t lane_waiters;
    _Atomic uint32_t lane_armed; /* as room_armed */
    /* The last log sequence number handed out (persist/wal.h). */
    alignas(PX__LINE) _Atomic uint64_t lsn;
    /* Bytes the log writers have written, the count when the last
     * checkpoint began, and who runs one now (proc index + 1, 0: none). */
    alignas(PX__LINE) _Atomic uint64_t log_bytes;
    _Atomic uint64_t ckpt_bytes;
    _Atomic uint32_t ckpt_owner;
    /* The timer heap (shm/timers.h): its entries and count are written
     * under timer_lock, a robust process-shared mutex; timer_next, the
     * earliest due time (UINT64_MAX: none), is stored under it and read
     * without it. Timer threads sleep on timer_seq, counted in
     * timer_sleepers; whoever makes an earlier timer the first bumps and
     * wakes it. */
    alignas(PX__LINE) pthread_mutex_t timer_lock;
    uint32_t timer_n;
    _Atomic uint64_t timer_next;
    alignas(PX__LINE) _Atomic uint32_t timer_seq;
    _Atomic uint32_t timer_sleepers;
    /* Recurring schedules (executor/sched.c): every change to the table
     * is made under sched_lock, a robust process-shared mutex, taken
     * before timer_lock when both are held; sched_hwm bounds the entries
     * ever used, sched_active counts the ACTIVE ones. */
    alignas(PX__LINE) pthread_mutex_t sched_lock;
    _Atomic uint32_t sched_hwm;
    _Atomic uint32_t sched_active;
};

/*
 * An attached process. `state` goes FREE -> ALIVE (attach, under the header
 * lock) -> REAPING + reaper's index (one CAS by the process that found it
 * dead) -> FREE. A reaper that dies while reaping is itself found dead and
 * another takes the entry over (CAS again): every reaping step is
 * idempotent.
 */
enum { PX__PROC_FREE = 0, PX__PROC_ALIVE = 1, PX__PROC_REAPING = 2 };

struct px__proc {
    _Atomic uint32_t state;
    uint32_t unused;
    int32_t pid;
    _Atomic uint32_t role;
    uint64_t start_time; /* clock ticks since boot, /proc/PID/stat field 22 */
    uint64_t attached_ns;
    /* This process's share of the header's waiter counts (done_waiters,
     * room_waiters, sleepers[]), so that the reaper can take back the share
     * of a process that died while waiting. */
    _Atomic uint32_t waiting[3];
    _Atomic uint32_t sleeping[32];
    /* This process's log writer and the segment it appends to: a
     * checkpoint never deletes it (persist/durable.c). Published before
     * the segment file is created. */
    _Atomic uint32_t wal_seq;
    _Atomic uint64_t wal_writer;
    /* The worker threads and pool children its worker sets run (added
     * when a set starts, taken off when it stops); for dashboards. */
    _Atomic uint32_t threads, children;
};

/* A queue name; append-only, published by nqueues (release). */
struct px__queue {
    uint64_t hash;
    char name[PX__QNAME_MAX];
    /* Rate limit (executor/rate.c): starts per second, 0 none; and the
     * token bucket, tokens (1/256ths, 24 bits) and the CLOCK_MONOTONIC ms
     * of its last refill (40 bits), changed by one CAS. */
    _Atomic uint64_t bucket;
    _Atomic uint32_t rate;
    /* Concurrency limit (executor/concurrency.c): at most this many of
     * its tasks run at once, each holding one of its first conc_limit
     * tickets; 0 none. */
    _Atomic uint32_t conc_limit;
    char pad[8];
};

/*
 * A task definition: an open-addressing table keyed by the XXH3 hash of the
 * name. Writers hold the header lock, fill the entry and then store
 * state = READY (release); readers probe without the lock and read an entry
 * only after loading READY (acquire). Entries are never removed. The
 * options of an entry made by recovery (PX__DEF_RECOVERED: it knew only the
 * name, mode and queue) are written once more, by the first registration
 * after it, one word-sized store each.
 */
enum { PX__DEF_EMPTY = 0, PX__DEF_READY = 1 };

struct px__def {
    _Atomic uint32_t state;
    uint32_t mode;
    uint32_t queue;
    uint32_t flags; /* PX__DEF_DAEMON, PX__DEF_CANCELLABLE */
    int32_t priority;
    int32_t max_retries;
    uint64_t hash;
    double retry_delay_s;
    double retry_backoff;
    double retry_max_delay_s;
    double retry_jitter;
    double time_limit_s;
    uint32_t time_limit_ms; /* the same, as slots hold it; 0: none */
    char name[PX__NAME_MAX];
};
enum { PX__DEF_DAEMON = 1, PX__DEF_CANCELLABLE = 2, PX__DEF_RECOVERED = 4 };

/*
 * A producer lane: a single-producer, multi-consumer ring of task ids with
 * 64-bit counters (see ring/lane.h for the protocol). `owner` is the owning
 * proc index + 1, or 0 while free; `key` is the queue, level and mode its entries
 * belong to and changes only while the lane is owned and empty.
 */
struct px__lane {
    _Atomic uint32_t owner;
    _Atomic uint32_t key;
    alignas(PX__LINE) _Atomic uint64_t head; /* consumers, CAS */
    alignas(PX__LINE) _Atomic uint64_t tail; /* the owner, release store */
    char pad[PX__LINE - sizeof(uint64_t)];
};

/*
 * A task slot. `ctl` packs the state, owner, attempts, flags and generation
 * so that every transition is one CAS. The other fields are written only by
 * the process the state gives the slot to (the producer while RESERVED, the
 * worker while RUNNING or FINISHING) and read by others after an acquire
 * load of ctl; they are relaxed atomics so that readers that race with a
 * transition (px_info) read stale values, never torn ones.
 */
struct px__slot {
    _Atomic uint64_t ctl;
    _Atomic uint32_t wake;    /* futex word, bumped when waiters > 0 */
    _Atomic uint32_t waiters; /* joiners sleeping on wake */
    _Atomic uint32_t def;
    _Atomic uint32_t queue;
    _Atomic uint32_t args_len;
    _Atomic uint32_t args_chunk; /* PX__NO_CHUNK: inline */
    _Atomic uint32_t out_len;
    _Atomic uint32_t out_chunk; /* PX__NO_CHUNK: inline */
    _Atomic int32_t worker_pid;
    _Atomic uint32_t ttl_ms; /* result retention once finished; PX__TTL_FOREVER */
    _Atomic uint64_t enq_tick, start_tick, fin_tick; /* stamps in the header's clock */
    /* When a SCHEDULED or RETRY task becomes PENDING (CLOCK_REALTIME ns),
     * written by the holder before the state. */
    _Atomic uint64_t due_ns;
    /* How long a run may take (ms), as the submit said; 0: as the
     * definition says when it runs. Written by the producer while
     * RESERVED. */
    _Atomic uint32_t limit_ms;
    /* Its priority level (px_priority - 1), written by the producer while
     * RESERVED; picks its lane whenever it is queued. */
    _Atomic uint32_t level;
    /* The schedule that made it (index + 1; 0: none), written by the
     * producer while RESERVED. */
    _Atomic uint32_t sched;
    /* The generation whose SUBMIT its producer logs: stored before the
     * record takes its LSN, so that a checkpoint that finds a RESERVED slot
     * without it knows the SUBMIT comes after the checkpoint began
     * (persist/durable.c). */
    _Atomic uint32_t logged;
    uint8_t args[PX__INLINE_ARGS];
    uint8_t out[PX__INLINE_OUT];
};

/*
 * A recurring schedule (executor/sched.c). Entries are written only under
 * the header's sched_lock. The fields without _Atomic are written once, by
 * the creator, before it stores state = ACTIVE (release); readers without
 * the lock (px_schedule_get, the timer thread deciding to skip a missed
 * run) read them only after loading a state other than FREE (acquire). The
 * schedule's next run is an ordinary SCHEDULED task in the timer heap:
 * next_id names it, next_ns is its due time, and armed says that it was
 * entered into the heap (see sched.c for why each step is crash-safe).
 */
enum { PX__SCHED_FREE = 0, PX__SCHED_ACTIVE = 1, PX__SCHED_ENDED = 2, PX__SCHED_CANCELLED = 3 };
enum { PX__SCHED_SKIP = 1, PX__SCHED_CRON = 2 };

struct px__sched {
    _Atomic uint32_t state;
    _Atomic uint32_t gen; /* changes when the entry is reused */
    uint32_t def, queue, level, flags;
    uint32_t slot_flags, ttl_ms, limit_ms; /* for its runs' slots */
    uint32_t times;                        /* runs to make; 0: no limit */
    uint32_t args_len;
    _Atomic uint32_t made; /* runs made so far */
    _Atomic uint32_t armed;
    _Atomic uint32_t creating;               /* its px_submit has not returned yet */
    uint64_t every_ns, until_ns, created_ns; /* until: CLOCK_REALTIME; 0 none */
    _Atomic uint64_t next_ns;                /* CLOCK_REALTIME */
    _Atomic uint64_t next_id;
    /* The run being made: written before armed = 0, so that a repair
     * knows it whole (sched.c). */
    _Atomic uint64_t pend_id, pend_ns;
    _Atomic uint32_t pend_run;
    uint32_t pad;
    char cron[64]; /* the expression, "" for every_ns */
    char tz[64];   /* its time zone, "" for UTC */
    uint8_t args[PX__SCHED_ARGS];
};

/* Metrics (shm/stats.h): a shard per owning thread, shard 0 shared. */
#define PX__STAT_SHARDS 32u
#define PX__HIST_BUCKETS 168u /* 4 per power of two, up to 2^42 ns */
enum {
    PX__ST_SUBMITTED,
    PX__ST_STARTED,
    PX__ST_SUCCEEDED,
    PX__ST_FAILED,
    PX__ST_RETRIED,
    PX__ST_CANCELLED,
    PX__ST_COUNTERS
};

struct px__qstats {
    _Atomic uint64_t count[PX__ST_COUNTERS];
    _Atomic uint64_t wait[PX__HIST_BUCKETS]; /* enqueued (or due) to start, ns */
    _Atomic uint64_t run[PX__HIST_BUCKETS];  /* start to finish, ns */
};

struct px__stat_shard {
    _Atomic uint32_t owner; /* proc index + 1; 0 free; shard 0 never owned */
    alignas(PX__LINE) struct px__qstats q[PX__MAX_QUEUES];
};

/* An idle worker's parking place (shm/park.h says who writes what). */
enum { PX__PARK_IDLE = 0, PX__PARK_PARKED = 1, PX__PARK_WOKEN = 2 };
struct px__park {
    _Atomic uint32_t owner; /* proc index + 1; 0: free */
    _Atomic uint32_t state; /* PX__PARK_* */
    _Atomic uint32_t bits;  /* the work bits its sleeper serves */
    _Atomic uint32_t word;  /* its futex word, bumped by the waker that claims it */
};

_Static_assert(sizeof(struct px__slot) == 192, "slot is three cache lines");
_Static_assert(sizeof(struct px__proc) == 3 * PX__LINE, "proc entry is three lines");
_Static_assert(sizeof(struct px__queue) == 64, "queue entry is one line");
_Static_assert(sizeof(struct px__lane) == 3 * PX__LINE, "lane is three lines");

/*
 * ctl bits: state 0-3, owner 4-15 (proc index + 1, 0 none), attempts 16-27,
 * flags 28-31, generation 32-63. The generation changes only when the slot
 * is freed, so (generation, index) names one task for the slot's life.
 */
enum {
    PX__S_FREE = 0,
    PX__S_PENDING = 1,
    PX__S_SCHEDULED = 2, /* waiting for due_ns; in the timer heap */
    PX__S_RUNNING = 3,
    PX__S_RETRY = 4,            /* failed, runs again at due_ns; in the heap */
    PX__S_CANCEL_REQUESTED = 5, /* running; its body should stop */
    PX__S_SUCCESS = 6,
    PX__S_FAILED = 7,
    PX__S_CANCELLED = 8,
    PX__S_DEAD = 9,       /* out of retries; kept until requeued or forgotten */
    PX__S_RESERVED = 12,  /* a producer is filling it */
    PX__S_FINISHING = 13, /* a worker is writing the result */
    PX__S_CONSUMING = 14, /* an ephemeral join is taking the result */
};
enum { PX__F_DETACHED = 1, PX__F_EPHEMERAL = 2 };

#define PX__CTL(gen, st, own, att, fl)                                                             \
    (((uint64_t)(gen) << 32) | ((uint64_t)((fl)&0xf) << 28) | ((uint64_t)((att)&0xfff) << 16) |    \
     ((uint64_t)((own)&0xfff) << 4) | (uint64_t)((st)&0xf))
#define PX__CTL_STATE(c) ((uint32_t)((c)&0xf))
#define PX__CTL_OWNER(c) ((uint32_t)(((c) >> 4) & 0xfff))
#define PX__CTL_ATT(c) ((uint32_t)(((c) >> 16) & 0xfff))
#define PX__CTL_FLAGS(c) ((uint32_t)(((c) >> 28) & 0xf))
#define PX__CTL_GEN(c) ((uint32_t)((c) >> 32))
#define PX__CTL_WITH(c, st, own) (((c) & ~(uint64_t)0xfff) | ((uint64_t)((own)&0xfff) << 4) | (st))

#define PX__ID(gen, idx) (((uint64_t)(gen) << 32) | (uint32_t)(idx))
#define PX__ID_GEN(id) ((uint32_t)((id) >> 32))
#define PX__ID_IDX(id) ((uint32_t)(id))

/* Finished: an outcome is published and joiners return. */
static inline int px__state_finished(uint32_t st)
{
    return st == PX__S_SUCCESS || st == PX__S_FAILED || st == PX__S_CANCELLED || st == PX__S_DEAD;
}

/* Holding a task the log records: submitted and not yet freed. */
static inline int px__state_logged(uint32_t st)
{
    return st == PX__S_PENDING || st == PX__S_SCHEDULED || st == PX__S_RUNNING ||
           st == PX__S_RETRY || st == PX__S_FINISHING || st == PX__S_CANCEL_REQUESTED ||
           px__state_finished(st);
}

/* Waiting in the timer heap for its due time. */
static inline int px__state_timed(uint32_t st)
{
    return st == PX__S_SCHEDULED || st == PX__S_RETRY;
}

/* The lane key: which queue, priority level and mode its entries are for. */
#define PX__KEY(queue, level, mode)                                                                \
    (((uint32_t)(queue) << 8) | ((uint32_t)(level) << 4) | (uint32_t)(mode))
#define PX__KEY_QUEUE(k) ((k) >> 8)
#define PX__KEY_LEVEL(k) (((k) >> 4) & 0xf)
#define PX__KEY_MODE(k) ((k)&0xf)

#endif

/*
 * Pollux: an embedded task runtime over shared memory.
 *
 * Producers (any thread of any process) submit named tasks with a byte
 * payload into a region; workers (threads of the same process, pre-forked
 * child processes, or a separate `pollux worker`) run them; futures wake
 * waiters through a futex in the region.
 *
 * Conventions of this header:
 * - Every call returns 0 (or a non-negative count or state) on success and a
 *   negative code on failure: a negated errno, or one of the PX_E* codes
 *   below. px_strerror() names both. There is no errno side channel.
 * - Structs named *_opts are zero-initialised to mean "defaults", so
 *   `(px_region_opts){0}` works and fields can be added later.
 * - Handles (px_region, px_workers, px_ctx) are opaque. The call that creates
 *   one says which call releases it.
 */
#ifndef POLLUX_H
#define POLLUX_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PX_VERSION_MAJOR 0
#define PX_VERSION_MINOR 1
#define PX_VERSION_PATCH 0

#if defined(__GNUC__)
#define PX_API __attribute__((visibility("default")))
#define PX_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define PX_API
#define PX_PRINTF(f, a)
#endif

/* ---- Errors ------------------------------------------------------------ */

/* Project codes sit below the errno range (errno values are < 4096). */
enum {
    PX_ENOTASK = -10001,     /* no task of that name is defined in the region */
    PX_ETASKFAILED = -10002, /* the task finished FAILED; see px_info().error */
    PX_EVERSION = -10003,    /* the region has another layout version */
    PX_ECORRUPT = -10004,    /* the region is not a Pollux region, or damaged */
    PX_ERETRY = -10005,      /* returned by a task body: run me again (px_retry) */
};

/* A static, human-readable text for any code returned by this library. */
PX_API const char *px_strerror(int err);

/* ---- Ids --------------------------------------------------------------- */

/*
 * A task id: the slot index in the low 32 bits, the slot's generation in the
 * high 32 bits. 0 is never a valid id. When a slot is reused its generation
 * changes, so a stale id answers -ENOENT, never another task's data.
 */
typedef uint64_t px_id;

/* Characters of the text form, without the terminating NUL. */
#define PX_ID_LEN 17

/* Writes the fixed-width text form ("gggggggg-ssssssss", lowercase hex) and a
 * NUL into buf, which must hold PX_ID_LEN + 1 bytes. Returns PX_ID_LEN. */
PX_API int px_id_format(px_id id, char *buf);

/* Parses the text form. Returns 0, or -EINVAL for anything else. */
PX_API int px_id_parse(const char *text, px_id *out);

/* ---- Region -------------------------------------------------------------- */

typedef struct px_region px_region;

/* Flags for px_region_opts.flags. */
enum {
    PX_REGION_CREATE = 1u << 0, /* fail with -EEXIST if the region exists */
    PX_REGION_ATTACH = 1u << 1, /* fail with -ENOENT if it does not exist */
    /* At creation: keep no metrics (px_stats then reports counts by state
     * only), for the last nanoseconds of a no-op task: about one TSC read
     * and four stores per task (see the README's measurements). */
    PX_REGION_NO_METRICS = 1u << 2,
};

/* What survives what (see the README's guarantees). */
typedef enum px_durability {
    PX_DURABLE_NONE = 0,  /* shared memory only: survives process crashes */
    PX_DURABLE_ASYNC = 1, /* and a log written within async_ms: a power
                             loss loses at most the last async_ms of it */
    PX_DURABLE_SYNC = 2,  /* px_submit returns once its record is on stable
                             storage (group commit) */
} px_durability;

typedef struct px_region_opts {
    uint32_t capacity;        /* task slots; 0: 65536 */
    uint32_t max_payload;     /* largest args or result in bytes; 0: 65536 */
    uint64_t arena_bytes;     /* payload arena; 0: max(64 MiB, 64 * max_payload) */
    uint32_t lanes;           /* producer lanes (one per producing thread and
                                 queue); 0: 256 */
    uint32_t lane_depth;      /* entries per lane, a power of two; 0: 4096 */
    uint32_t file_mode;       /* permissions of a new region; 0: 0600 */
    uint32_t flags;           /* PX_REGION_* */
    double reap_interval_s;   /* how often workers look for dead processes;
                                 0: 0.2 */
    px_durability durability; /* of a new region; an existing region keeps
                                 its own. A durable region's max_payload is
                                 at most 16 MiB - 1 KiB */
    const char *log_dir;      /* where the log is; NULL: "<name>.wal" beside a
                                 file region, or in the working directory for
                                 a "/name" one (/dev/shm does not survive a
                                 reboot) */
    unsigned async_ms;        /* PX_DURABLE_ASYNC's window; 0: 10 */
    double result_ttl_s;      /* tasks' default px_submit_opts.result_ttl_s;
                                 0: 3600, < 0: until forgotten */
    uint64_t segment_bytes;   /* log segment size, at least 64 KiB; 0: 64 MiB.
                                 Writing this much starts a checkpoint. */
} px_region_opts;

/*
 * Creates the region, or attaches to it if it exists (sizing and durability
 * options are then ignored: the region's own are used). Creating a durable
 * region whose log directory holds a log recovers it: the region gets the
 * log's sizes, and every task the log knows and had not forgotten comes back
 * under its old id (PENDING and RUNNING ones as PENDING, attempts counted;
 * finished ones with their results). A name of the form "/app" is a POSIX
 * shared-memory object in /dev/shm; a name with another '/' in it is a file
 * path that is mmap'd. On success *out is a handle that px_region_close()
 * releases. Attaching to something that is not a Pollux region returns
 * PX_ECORRUPT; to a region of another layout version, PX_EVERSION.
 */
PX_API int px_region_open(const char *name, const px_region_opts *opts, px_region **out);

/* What creating a durable region recovered from its log. */
typedef struct px_recovery_info {
    uint64_t segments;  /* log segment files read */
    uint64_t records;   /* valid records replayed */
    uint64_t bytes_cut; /* damaged or torn bytes not replayed */
    uint64_t last_lsn;  /* the highest log sequence number found */
    uint64_t restored;  /* tasks put back under their ids */
    uint64_t pending;   /* of which queued again (were PENDING or RUNNING) */
    uint64_t finished;  /* of which finished, with their results */
    uint64_t scheduled; /* of which waiting for their time (SCHEDULED, RETRY) */
    uint64_t orphans;   /* records about tasks the log does not hold */
    uint64_t schedules; /* recurring schedules put back (any state) */
    /* When the region's memory survived and this handle was the first to
     * attach: how the log differed from it. The memory wins: a checkpoint
     * then makes the log say what the memory holds. */
    uint64_t log_behind; /* tasks (or outcomes) in memory the log lacked */
    uint64_t log_ahead;  /* tasks in the log the memory no longer holds */
} px_recovery_info;

/* Fills *out with what this handle's px_region_open recovered from the log,
 * or found when it reconciled the log with surviving memory (all zero if it
 * did neither). */
PX_API int px_region_recovery(px_region *r, px_recovery_info *out);

/* Detaches and frees the handle. Tasks stay in the region. Workers started on
 * this handle must be stopped first (-EBUSY otherwise). */
PX_API int px_region_close(px_region *r);

/* Removes the region's name; processes still attached keep their mapping. */
PX_API int px_region_destroy(const char *name);

typedef struct px_region_info {
    uint32_t version;
    uint32_t capacity;
    uint32_t max_payload;
    uint32_t lanes;
    uint32_t lane_depth;
    uint64_t arena_bytes;
    uint64_t size_bytes;    /* whole mapping */
    uint32_t slots_used;    /* slots not FREE */
    uint64_t arena_used;    /* bytes of arena chunks in use */
    uint32_t lanes_used;    /* lanes owned by a thread */
    uint64_t queued;        /* entries published in lanes, not yet taken */
    uint32_t processes;     /* attached processes */
    uint32_t tasks_defined; /* task definitions */
    uint64_t created_ns;    /* CLOCK_REALTIME */
    px_durability durability;
    char log_dir[512]; /* "" when not durable */
} px_region_info;

/* Fills *info by scanning the region (a cold call: O(capacity)). */
PX_API int px_region_info_get(px_region *r, px_region_info *info);

/* Attached processes, as px_region_procs() reports them. */
typedef enum px_role { PX_ROLE_CLIENT = 1, PX_ROLE_WORKER = 2 } px_role;

typedef struct px_proc_info {
    int32_t pid;
    px_role role;
    uint64_t attached_ns; /* CLOCK_REALTIME */
    /* Its workers: thread slots and process (pool child) slots, and how
     * many of each run a task now. */
    uint32_t threads, children;
    uint32_t threads_busy, children_busy;
} px_proc_info;

/* Copies up to cap attached processes into procs; returns how many there are
 * (which may exceed cap). The busy counts come from a scan of the task
 * slots: a cold call. */
PX_API int px_region_procs(px_region *r, px_proc_info *procs, int cap);

/* ---- Task definitions ----------------------------------------------------- */

typedef struct px_ctx px_ctx;

/* A task body. args is valid until it returns. Return 0 for success, anything
 * else to fail (px_fail() sets a text and returns non-zero). */
typedef int (*px_task_fn)(px_ctx *ctx, const void *args, size_t len);

typedef enum px_mode {
    PX_THREAD = 1,  /* runs on a worker thread */
    PX_PROCESS = 2, /* runs in a pre-forked child process */
} px_mode;

/* Priority levels within a queue. Workers start higher levels first, but
 * not only: of every 31 starts a worker makes while every level has work,
 * 16 go to HIGHEST, 8 to HIGH, 4 to NORMAL, 2 to LOW and 1 to LOWEST, so no
 * level starves (docs/lifecycle.md). 0 in a definition means NORMAL, in
 * px_submit_opts the definition's. */
typedef enum px_priority {
    PX_PRIORITY_LOWEST = 1,
    PX_PRIORITY_LOW = 2,
    PX_PRIORITY_NORMAL = 3,
    PX_PRIORITY_HIGH = 4,
    PX_PRIORITY_HIGHEST = 5,
} px_priority;

typedef struct px_task_def {
    const char *name;  /* at most 63 bytes */
    px_task_fn fn;     /* may be NULL in a process that only submits */
    px_mode mode;      /* mandatory */
    int daemon;        /* on shutdown, stop at once instead of waiting */
    int cancellable;   /* px_cancel may stop it while it runs */
    const char *queue; /* NULL: "default"; at most 31 bytes */
    int priority;      /* a px_priority; 0: NORMAL */
    /* Retries (see docs/lifecycle.md). A failed run, a px_retry() and, when
     * max_retries > 0, a worker's death while running it count as attempts.
     * While fewer than max_retries retries were made the task goes to RETRY
     * and runs again after a backoff: retry_delay_s * retry_backoff^(n-1)
     * for the n-th retry, at most retry_max_delay_s, of which a random
     * fraction retry_jitter is taken off. Then it is DEAD. With
     * max_retries 0 a failure is FAILED. */
    int max_retries;
    double retry_delay_s;     /* 0: retry at once */
    double retry_backoff;     /* 0: 2 (doubling); 1: a constant delay */
    double retry_max_delay_s; /* 0: 3600 */
    double retry_jitter;      /* 0: 0.5 (delays in [d/2, d]); < 0: none */
    /* How long one run may take; 0: no limit. Past it, a PX_THREAD body is
     * asked to stop (px_should_continue() turns 0: cooperative), and if it
     * still runs a second later its run is failed without it; a PX_PROCESS
     * body's child is killed at once. Either way the run fails with the
     * error "time limit of N s exceeded", whatever the body returned, and
     * is retried if max_retries allows. Checked every reap interval
     * (px_region_opts.reap_interval_s) for threads. */
    double time_limit_s;
} px_task_def;

/*
 * Records the definition in the region (name, XXH3 hash of the name, mode,
 * options) so that every attached process sees it, and binds fn for this
 * handle. Registering a name again with the same mode and queue is allowed
 * (producers and workers usually share definitions) and keeps the options
 * first recorded, except over a definition that recovery from the log made
 * (it knows only name, mode and queue): the first registration after it
 * records its options. Another mode or queue returns -EEXIST. The struct
 * and strings are copied.
 */
PX_API int px_task_register(px_region *r, const px_task_def *def);

/* Binds the definitions in [begin, end); used by px_task_register_all().
 * Returns how many were registered. */
PX_API int px_task_register_range(px_region *r, const px_task_def *begin, const px_task_def *end);

/*
 * Blueprint style: PX_TASK declares a definition in the "px_tasks" linker
 * section of the module it is written in, with no region attached, and
 * opens the task's body:
 *
 *     PX_TASK(resize, PX_THREAD, .queue = "images") {
 *         return px_result(ctx, args, len);
 *     }
 *
 * The name is the identifier. px_task_register_all(r) binds every definition
 * of the calling module (executable or shared library), and
 * `pollux worker --lib ./libtasks.so` binds those of a library.
 */
/* The linker defines these for the "px_tasks" section of each module that
 * refers to them; PX_TASK refers to them so that a task library exports its
 * range for `pollux worker --lib`. */
extern const px_task_def __start_px_tasks[] __attribute__((weak, visibility("default")));
extern const px_task_def __stop_px_tasks[] __attribute__((weak, visibility("default")));

#define PX_TASK(NAME, MODE, ...)                                                                   \
    static int px__fn_##NAME(px_ctx *ctx, const void *args, size_t len);                           \
    __attribute__((used, section("px_tasks"),                                                      \
                   aligned(8))) static const px_task_def px__def_##NAME = {                        \
        .name = #NAME, .fn = px__fn_##NAME, .mode = MODE, __VA_ARGS__};                            \
    __attribute__((used)) static const px_task_def *const px__ref_##NAME[2] = {__start_px_tasks,   \
                                                                               __stop_px_tasks};   \
    static int px__fn_##NAME(px_ctx *ctx, const void *args, size_t len)

#define px_task_register_all(r) px_task_register_range((r), __start_px_tasks, __stop_px_tasks)

/* ---- Inside a task ------------------------------------------------------- */

/* Sets the result bytes (copied; a later call replaces them). -E2BIG above the
 * region's max_payload, -ENOMEM if the arena is full. */
PX_API int px_result(px_ctx *ctx, const void *data, size_t len);

/* Sets the error text (truncated to 255 bytes) and returns PX_ETASKFAILED, so
 * that `return px_fail(ctx, "...")` fails the task. */
PX_API int px_fail(px_ctx *ctx, const char *fmt, ...) PX_PRINTF(2, 3);

/* Cooperative checkpoint: 0 once the task is asked to stop (worker shutdown
 * for daemon tasks or past the grace period, px_cancel, or its time limit
 * passed), 1 otherwise. */
PX_API int px_should_continue(px_ctx *ctx);

PX_API px_id px_task_id(px_ctx *ctx);

/* 1 for the first run, 2 after one interrupted run, and so on. */
PX_API int px_task_attempt(px_ctx *ctx);

/* Asks for this run to count as a failed attempt and for the task to run
 * again after delay_s seconds (< 0: the definition's backoff), within its
 * max_retries: `return px_retry(ctx, 5);`. Returns PX_ERETRY, which a body
 * may also return itself. Out of retries, the task is DEAD (FAILED if
 * max_retries is 0), with the error text "retry requested". */
PX_API int px_retry(px_ctx *ctx, double delay_s);

/* ---- Submit -------------------------------------------------------------- */

enum {
    /* Free the slot as soon as the task finishes; no result is kept and the
     * id answers -ENOENT afterwards. For fire-and-forget work. */
    PX_SUBMIT_DETACHED = 1u << 0,
    /* Free the slot when one px_join() has taken the result. */
    PX_SUBMIT_EPHEMERAL = 1u << 1,
};

typedef struct px_submit_opts {
    /* Wait for room when the region or the lane is full: 0 fails at once
     * with -EAGAIN, > 0 waits up to that many seconds (-ETIMEDOUT after),
     * < 0 waits forever. */
    double timeout_s;
    uint32_t flags;    /* PX_SUBMIT_* */
    const char *queue; /* NULL: the definition's queue */
    /* How long a finished task keeps its result before a worker's
     * supervisor frees its slot: > 0 seconds (at most 49 days), < 0 until
     * px_forget or a join of an ephemeral task, 0 the region's default.
     * The supervisor looks at 65,536 slots a second (a region of 1M slots
     * in 16 s), and at every slot while a submit waits for room. */
    double result_ttl_s;
    /* Delayed tasks: SCHEDULED until then, claimed by no one before. The
     * later of the two applies; 0 and 0: at once. */
    double delay_s;      /* seconds from now, >= 0 */
    uint64_t at_unix_ns; /* CLOCK_REALTIME nanoseconds */
    /* This task's px_task_def.time_limit_s; 0: the definition's. Not
     * logged: a recovered task has its definition's. */
    double time_limit_s;
    /* An idempotency key (NULL: none). While a task submitted with the
     * same key is not finished, px_submit creates nothing and returns 1
     * with that task's id. Keys are compared by their 64-bit XXH3 hash.
     * Not for px_submit_many (-EINVAL). */
    const char *key;
    int priority; /* a px_priority; 0: the definition's */
    /* Recurring tasks: px_submit makes a schedule instead of one task, and
     * returns the schedule's id (px_schedule_get, px_cancel). Each
     * occurrence submits one run: a task with these args and options.
     * Either every_s or cron. The first run is at delay_s / at_unix_ns if
     * given, else one period from now (every_s) or the first match after
     * now (cron). Args are at most 256 bytes here (-E2BIG); not with a key
     * nor for px_submit_many (-EINVAL). Making one never waits for room:
     * -EAGAIN if the region is full. See docs/lifecycle.md. */
    double every_s;
    const char *cron;       /* 5 fields, or @hourly, @daily, ... */
    const char *tz;         /* cron's time zone: NULL UTC, or e.g. "Europe/Paris" */
    uint32_t times;         /* at most this many runs; 0: no limit */
    uint64_t until_unix_ns; /* no run due after this time; 0: none */
    int missed;             /* a px_missed: occurrences missed while no worker ran */
} px_submit_opts;

/* What a schedule does about occurrences that passed while no worker's
 * timer thread ran (more than min(1 s, every_s / 2) late): */
typedef enum px_missed {
    PX_MISSED_ONCE = 0, /* run once for all of them, then go on from now */
    PX_MISSED_SKIP = 1, /* run none of them; go on from now */
} px_missed;

/*
 * Submits one task. args (len bytes, copied) may be NULL when len is 0. On
 * success (0, or 1 when opts->key named a task already there) *out (if not
 * NULL) is the task's id. PX_ENOTASK if no process
 * defined the name, -E2BIG above max_payload, -EAGAIN / -ETIMEDOUT when there
 * is no room. On failure nothing is left in the region.
 */
PX_API int px_submit(px_region *r, const char *task, const void *args, size_t len,
                     const px_submit_opts *opts, px_id *out);

typedef struct px_job {
    const char *task;
    const void *args;
    size_t len;
} px_job;

/*
 * Submits n tasks with one publication and at most one wake-up. Returns how
 * many were submitted (the first k of jobs, ids in ids[0..k)); a negative
 * code only if none was. Stops at the first job that fails.
 */
PX_API int px_submit_many(px_region *r, const px_job *jobs, size_t n, const px_submit_opts *opts,
                          px_id *ids);

/* ---- Futures ------------------------------------------------------------- */

/* A task's state; docs/lifecycle.md has the transitions. */
typedef enum px_state {
    PX_PENDING = 1,
    PX_SCHEDULED = 2, /* delayed: waits for its time (px_submit_opts.delay_s) */
    PX_RUNNING = 3,
    PX_RETRY = 4,            /* failed, waits to run again (max_retries) */
    PX_CANCEL_REQUESTED = 5, /* running, asked to stop (px_cancel) */
    PX_SUCCESS = 6,
    PX_FAILED = 7,
    PX_CANCELLED = 8,
    PX_DEAD = 9, /* out of retries: kept until px_requeue or px_forget */
} px_state;

/* The state's name in capitals ("PENDING"), or "?" */
PX_API const char *px_state_name(int state);

/* Returns the task's state (a px_state), or -ENOENT. */
PX_API int px_status(px_region *r, px_id id);

/*
 * Waits up to timeout_s (< 0: forever) for the task to finish, sleeping on a
 * futex after a short spin. On SUCCESS copies the result into buf (up to cap
 * bytes), sets *len to its full length and returns 0; if cap is too small it
 * returns -ENOBUFS with *len set and the result left in place. FAILED and
 * DEAD return PX_ETASKFAILED (with the error text in buf, NUL-terminated, if
 * it fits; px_info() has it too), CANCELLED -ECANCELED. A task in RETRY is
 * not finished: the join waits on. -ETIMEDOUT, -ENOENT.
 */
PX_API int px_join(px_region *r, px_id id, double timeout_s, void *buf, size_t cap, size_t *len);

/* px_join() that never blocks: -EAGAIN while the task is not finished. */
PX_API int px_try_join(px_region *r, px_id id, void *buf, size_t cap, size_t *len);

/* Waits until one of ids[0..n) is finished (or gone) and returns its index;
 * -ETIMEDOUT after timeout_s (< 0: forever). */
PX_API int px_wait_any(px_region *r, const px_id *ids, size_t n, double timeout_s);

typedef struct px_task_info {
    px_id id;
    char name[64];
    char queue[32];
    px_state state;
    px_mode mode;
    px_priority priority;
    uint32_t attempts;  /* runs started */
    int32_t worker_pid; /* process that ran it last; 0 if none */
    uint32_t result_len;
    uint64_t enqueued_ns; /* CLOCK_REALTIME */
    uint64_t started_ns;  /* 0 if not started */
    uint64_t finished_ns; /* 0 if not finished */
    uint64_t next_run_ns; /* SCHEDULED, RETRY: when it runs (CLOCK_REALTIME) */
    px_id schedule;       /* the schedule that made it; 0: none */
    char error[256];      /* FAILED, DEAD: why; RETRY: why the last run failed */
} px_task_info;

PX_API int px_info(px_region *r, px_id id, px_task_info *info);

typedef enum px_schedule_state {
    PX_SCHEDULE_ACTIVE = 1,
    PX_SCHEDULE_ENDED = 2,     /* made its `times` runs, or past `until` */
    PX_SCHEDULE_CANCELLED = 3, /* px_cancel of its id */
} px_schedule_state;

typedef struct px_schedule_info {
    px_id id;
    px_schedule_state state;
    char task[64];
    char queue[32];
    px_priority priority;
    double every_s;         /* 0 for cron */
    char cron[64];          /* "" for every_s */
    char tz[64];            /* "" for UTC */
    uint32_t times;         /* 0: no limit */
    uint32_t made;          /* runs made so far */
    uint64_t until_unix_ns; /* 0: none */
    px_missed missed;
    uint64_t next_run_ns; /* ACTIVE: when its next run is due (CLOCK_REALTIME) */
    px_id next_id;        /* the task of its latest run */
} px_schedule_info;

/* A schedule's description; -ENOENT for an id that names none. */
PX_API int px_schedule_get(px_region *r, px_id id, px_schedule_info *info);

/* Writes the ids of up to cap schedules (active first, then ended and
 * cancelled ones, which stay until their entry is reused) and returns how
 * many there are. */
PX_API int px_schedule_list(px_region *r, px_id *ids, size_t cap);

/* Copies the args of a task that still has them (any state but SUCCESS,
 * FAILED and CANCELLED, whose args are released when they finish) into buf,
 * like px_join copies a result: *len is set to their length, -ENOBUFS if
 * cap is too small. -ENODATA once they are released, -ENOENT. */
PX_API int px_task_args(px_region *r, px_id id, void *buf, size_t cap, size_t *len);

typedef struct px_list_opts {
    int state;         /* a px_state; 0: any */
    const char *queue; /* NULL: any */
    const char *task;  /* NULL: any */
} px_list_opts;

/*
 * Lists the tasks that match opts, in slot order, starting at *cursor (0 for
 * the first call): writes up to cap ids and sets *cursor to where the next
 * call continues (the region's capacity once every slot was read). Returns
 * how many ids it wrote. A cold call: it reads the slots, and a task that
 * changes state meanwhile may be listed in its old or new state, or missed.
 */
PX_API int px_list(px_region *r, const px_list_opts *opts, px_id *ids, size_t cap,
                   uint32_t *cursor);

/* Frees a finished (or DEAD) task's slot now. -EBUSY while it is not
 * finished. */
PX_API int px_forget(px_region *r, px_id id);

/* Runs a DEAD task again (a dead letter: its args were kept), under its id,
 * with its attempts counted from 0: it becomes PENDING. -EPERM for another
 * finished task (FAILED, SUCCESS, CANCELLED: their args are gone), -EBUSY
 * for one not finished, -ENOENT. */
PX_API int px_requeue(px_region *r, px_id id);

/*
 * Cancels a task, from any attached process. A PENDING, SCHEDULED or RETRY
 * task becomes CANCELLED at once. A RUNNING task whose definition is cancellable becomes
 * CANCEL_REQUESTED: px_should_continue() returns 0 in its body from then
 * on, and it becomes CANCELLED when the body returns (cooperative: a body
 * that never asks runs to its end, and its result is dropped). Returns 0,
 * also for a task already cancelled or asked to be; -EPERM for a running
 * task that is not cancellable; -EALREADY for a finished one; -ENOENT.
 * px_join on a cancelled task returns -ECANCELED. The id of a schedule
 * cancels the schedule: it makes no more runs, and its run waiting for its
 * time is cancelled (one already running goes on); -EALREADY if it ended.
 */
PX_API int px_cancel(px_region *r, px_id id);

/* ---- Queues -------------------------------------------------------------- */

/*
 * Pauses a queue, from any attached process: no worker takes a task of it
 * until px_queue_resume (running ones go on; submits and timers still add
 * to it). -ENOENT for a queue the region does not know. A pause is region
 * state: it lasts while the region's memory does, and is not logged.
 */
PX_API int px_queue_pause(px_region *r, const char *queue);
PX_API int px_queue_resume(px_region *r, const char *queue);
/* 1 if the queue is paused, 0 if not, or -ENOENT. */
PX_API int px_queue_paused(px_region *r, const char *queue);

/*
 * Limits a queue to per_s task starts a second (at most 65535; a fraction
 * below 1 is 1), counted across every worker of every process, with a burst
 * of one second's worth; 0 lifts the limit. Tasks over the limit wait in
 * their lanes. Region state, not logged. -ENOENT, -EINVAL.
 */
PX_API int px_queue_set_rate(px_region *r, const char *queue, double per_s);
/* The queue's limit in starts a second (0: none), or a negative code. */
PX_API double px_queue_rate(px_region *r, const char *queue);

/*
 * Lets at most `limit` (1 to 256) of the queue's tasks run at once, across
 * every worker of every process; 0 lifts the limit. Tasks over it wait in
 * their lanes. A task counts from its start until its body returns, even
 * past a failure for its time limit. Lowering the limit lets the tasks
 * already running finish: until they have, up to the old limit may run.
 * Region state, not logged. -ENOENT, -EINVAL.
 */
PX_API int px_queue_set_concurrency(px_region *r, const char *queue, int limit);
/* The queue's concurrency limit (0: none), or a negative code; *running
 * (if not NULL) is how many of its tasks hold a place under it now. */
PX_API int px_queue_concurrency(px_region *r, const char *queue, int *running);

/* ---- Metrics ------------------------------------------------------------- */

#define PX_MAX_QUEUES 64

/* A latency distribution from a log-bucketed histogram: each figure is
 * the upper bound of its bucket (within 19% of the true value). */
typedef struct px_latency {
    uint64_t count;
    uint64_t p50_ns, p90_ns, p99_ns, max_ns;
} px_latency;

typedef struct px_queue_stats {
    char name[32];
    /* Since the region was made (counted by every process that ran or
     * submitted its tasks; a recovered region starts again from 0). */
    uint64_t submitted, started, succeeded, failed, retried, cancelled;
    px_latency wait;                 /* enqueued (or due, for delayed and retried) to start */
    px_latency run;                  /* start to finish; not for detached thread tasks, whose
                                      * end is not stamped (it would cost a TSC read) */
    uint64_t by_state[10];           /* tasks now, by px_state */
    uint64_t pending_by_priority[6]; /* PENDING tasks now, by px_priority */
    uint64_t oldest_pending_age_ns;  /* the longest a PENDING task has waited */
    int paused;
} px_queue_stats;

typedef struct px_region_stats {
    uint32_t nqueues;
    px_queue_stats queues[PX_MAX_QUEUES];
    uint64_t by_state[10]; /* all tasks now, by px_state */
} px_region_stats;

/*
 * Fills st: counters and latencies per queue, kept in the region in
 * shards that each thread writes alone and this call merges, and the
 * tasks by state from a scan of the slots (a cold call: milliseconds for
 * a large region). Reads only; costs the workers nothing.
 */
PX_API int px_stats(px_region *r, px_region_stats *st);

/* ---- Workers ------------------------------------------------------------- */

typedef struct px_workers px_workers;

typedef enum px_event_kind {
    PX_EV_START = 1,
    PX_EV_SUCCESS = 2,
    PX_EV_FAILED = 3,
    PX_EV_REQUEUED = 4,  /* a dead process's task went back to PENDING */
    PX_EV_CANCELLED = 5, /* a run ended after px_cancel asked it to stop */
    PX_EV_RETRY = 6,     /* a run failed; the task waits to run again */
    PX_EV_DEAD = 7,      /* a run failed and the task is out of retries */
} px_event_kind;

typedef struct px_event {
    px_event_kind kind;
    px_id id;
    const char *task;  /* valid during the callback */
    const char *error; /* for FAILED, RETRY, DEAD; valid during the callback */
} px_event;

typedef struct px_workers_opts {
    unsigned threads;   /* thread-mode workers; 0: 2 * cores */
    unsigned processes; /* pre-forked children for PX_PROCESS tasks; 0: cores */
    const char *queues; /* comma-separated queue names; NULL: "default" */
    double grace_s;     /* shutdown grace for non-daemon tasks; 0: 10 */
    unsigned spin_us;   /* spin before sleeping when idle; 0: 50 */
    /* Called from worker threads; must be thread-safe and quick. */
    void (*on_event)(const px_event *ev, void *user);
    void *user;
} px_workers_opts;

/*
 * Starts workers on the region: threads for PX_THREAD tasks and a pool of
 * pre-forked children for PX_PROCESS tasks, plus a supervisor thread that
 * returns tasks of dead processes to PENDING and a timer thread that makes
 * SCHEDULED and RETRY tasks PENDING when they are due (for every queue:
 * any worker set fires any task). Children are forked before this
 * call returns. px_workers_stop() releases *out. -EPERM: the region's
 * producers rely on a memory barrier (membarrier(2)) that sleeping workers
 * issue, and this process may not issue it (a seccomp filter, say).
 * -EAGAIN: the region has room for 1,024 sleeping threads (each worker
 * thread and each pool child's dispatcher sleeps in its own place), and
 * the worker sets already started there use them.
 */
PX_API int px_workers_start(px_region *r, const px_workers_opts *opts, px_workers **out);

/*
 * Graceful stop: take no new tasks, ask daemon tasks to stop at once, wait up
 * to grace_s for the others, then ask those to stop too. Every task that did
 * not finish goes back to PENDING (not counted as failed). Joins the threads
 * (thread-mode tasks are cooperative: a task that ignores
 * px_should_continue() delays this call until it returns) and reaps the
 * children. Frees w.
 */
PX_API int px_workers_stop(px_workers *w);

/* Asks the workers to stop; async-signal-safe. px_workers_stop() still has to
 * be called. */
PX_API void px_workers_signal_stop(px_workers *w);

typedef struct px_workers_stats {
    uint64_t succeeded;
    uint64_t failed;
    uint64_t requeued;  /* tasks of dead processes returned to PENDING */
    uint64_t cancelled; /* runs that ended CANCELLED */
    uint64_t retried;   /* failed runs whose task went to RETRY */
    uint64_t dead;      /* failed runs whose task went to DEAD */
    uint64_t timed_out; /* runs that passed their time limit */
    uint32_t running;
    uint32_t threads;
    uint32_t processes;
} px_workers_stats;

PX_API int px_workers_stats_get(px_workers *w, px_workers_stats *st);

#ifdef __cplusplus
}
#endif
#endif

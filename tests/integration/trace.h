/*
 * What task bodies of the integration tests record about their runs, in
 * MAP_SHARED arrays created before the fork and indexed by a sequence number
 * carried in the args; and the args and results they check.
 */
#ifndef PX_TESTS_TRACE_H
#define PX_TESTS_TRACE_H

#include "it.h"

struct trace {
    _Atomic uint32_t starts;         /* body entered */
    _Atomic uint64_t done_log;       /* completions: count, pids of the first two */
    _Atomic int32_t first_start_pid; /* process of the first run */
    _Atomic uint64_t body_id;        /* px_task_id() seen by the body */
    _Atomic uint64_t acked_id;       /* the id a producer got back */
};

static struct trace *g_trace;
static uint64_t g_ntrace;
/* Record the parent's pid instead of our own: for process-mode bodies, the
 * worker process whose pool child ran them. */
static bool g_trace_ppid;

static inline int32_t trace_pid(void)
{
    return (int32_t)(g_trace_ppid ? getppid() : getpid());
}

struct targs {
    uint64_t seq;
    uint64_t spin_ns;
    uint8_t pad[112];
};
#define TARGS_SMALL 16u /* inline in the slot */

static inline uint8_t pad_byte(uint64_t seq, size_t i)
{
    return (uint8_t)(seq * 131 + i * 7 + 1);
}

static inline size_t make_args(struct targs *a, uint64_t seq, uint64_t spin_ns, bool big)
{
    a->seq = seq;
    a->spin_ns = spin_ns;
    if (!big)
        return TARGS_SMALL;
    for (size_t i = 0; i < sizeof a->pad; i++)
        a->pad[i] = pad_byte(seq, i);
    return sizeof *a;
}

static inline void note_start(struct trace *t, px_ctx *ctx);

/* Checks the args and records the start of a run; returns the trace, or
 * NULL after px_fail(). */
static inline struct trace *trace_begin(px_ctx *ctx, const void *args, size_t len, struct targs *a,
                                        int *rc)
{
    memset(a, 0, sizeof *a);
    if (len < TARGS_SMALL || len > sizeof *a) {
        *rc = px_fail(ctx, "bad args length %zu", len);
        return NULL;
    }
    memcpy(a, args, len);
    if (a->seq >= g_ntrace) {
        *rc = px_fail(ctx, "bad seq %llu", (unsigned long long)a->seq);
        return NULL;
    }
    for (size_t i = 0; len > TARGS_SMALL && i < sizeof a->pad; i++) {
        if (a->pad[i] != pad_byte(a->seq, i)) {
            *rc =
                px_fail(ctx, "corrupt args of seq %llu at byte %zu", (unsigned long long)a->seq, i);
            return NULL;
        }
    }
    note_start(&g_trace[a->seq], ctx);
    return &g_trace[a->seq];
}

static inline void note_start(struct trace *t, px_ctx *ctx)
{
    int32_t zero = 0;
    atomic_compare_exchange_strong(&t->first_start_pid, &zero, trace_pid());
    atomic_fetch_add(&t->starts, 1);
    atomic_store(&t->body_id, px_task_id(ctx));
}

/* One atomic step counts a completion and records its process (pids are
 * below 2^22), so a kill cannot separate the two. */
static inline void note_done(struct trace *t)
{
    uint64_t old = atomic_load(&t->done_log), want;
    do {
        uint64_t k = old & 0xff;
        want = old + 1;
        if (k < 2)
            want |= ((uint64_t)trace_pid() & 0x3fffff) << (8 + 22 * k);
    } while (!atomic_compare_exchange_weak(&t->done_log, &old, want));
}

static inline uint32_t done_count(struct trace *t)
{
    return (uint32_t)(atomic_load(&t->done_log) & 0xff);
}

/* The process of completion j (0 or 1). */
static inline int32_t done_pid(struct trace *t, uint32_t j)
{
    return (int32_t)((atomic_load(&t->done_log) >> (8 + 22 * j)) & 0x3fffff);
}

/* The result: 8 bytes, or 100 (in the arena) for every fourth seq. */
static inline size_t make_result(uint8_t *out, uint64_t seq)
{
    uint64_t v = seq * 7 + 1;
    memcpy(out, &v, sizeof v);
    size_t n = seq % 4 == 0 ? 100 : 8;
    for (size_t i = 8; i < n; i++)
        out[i] = pad_byte(seq, i + 1000);
    return n;
}

static inline bool result_ok(const uint8_t *out, size_t n, uint64_t seq)
{
    uint8_t want[128];
    size_t wn = make_result(want, seq);
    return n == wn && memcmp(out, want, n) == 0;
}

#endif

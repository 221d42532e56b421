/*
 * Creating, attaching to and validating a region.
 *
 * Creation protocol: the creator opens the name with O_EXCL, sizes it, maps
 * it, fills the header and tables, and stores the magic last (release). An
 * attacher that finds the name waits a bounded time for the magic, then
 * checks the ABI version and recomputes the layout from the header's
 * parameters: every offset must match and the file must be exactly that
 * size. So a foreign file, a truncated one, or a creator that died half-way
 * is reported (PX_ECORRUPT / PX_EVERSION), never mapped and trusted.
 */
#define _GNU_SOURCE
#include "region.h"
#include "stats.h"
#include "tickets.h"
#include "fence.h"
#include "futex.h"
#include "../persist/durable.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

__thread PX__TLS_IE uint64_t px__tl_tls_id;
__thread PX__TLS_IE struct px__tls *px__tl_tls;
static _Atomic uint64_t tls_ids;

#define DEF_CAPACITY 65536u
#define DEF_MAX_PAYLOAD 65536u
#define DEF_LANES 256u
#define DEF_LANE_DEPTH 4096u
#define DEF_REAP_NS 200000000ull
#define DEF_TTL_MS 3600000u
#define MAX_CAPACITY (1u << 26)
#define MAX_PAYLOAD_LIMIT (64u << 20)

static uint64_t align_up(uint64_t v, uint64_t a)
{
    return (v + a - 1) / a * a;
}

static uint32_t pow2_at_least(uint32_t v)
{
    uint32_t p = 1;
    while (p < v)
        p <<= 1;
    return p;
}

/* Places the tables after the header. Used by the creator and, to check the
 * header, by every attacher: both must get the same answer. */
static void layout(struct px__hdr *h)
{
    uint64_t off = align_up(sizeof(struct px__hdr), 4096);
    h->off_procs = off;
    off = align_up(off + (uint64_t)h->max_procs * sizeof(struct px__proc), PX__LINE);
    h->off_queues = off;
    off = align_up(off + (uint64_t)h->max_queues * sizeof(struct px__queue), PX__LINE);
    h->off_defs = off;
    off = align_up(off + (uint64_t)h->max_defs * sizeof(struct px__def), PX__LINE);
    h->off_lanes = off;
    off = align_up(off + (uint64_t)h->lanes * sizeof(struct px__lane), PX__LINE);
    h->off_entries = off;
    off = align_up(off + (uint64_t)h->lanes * h->lane_depth * sizeof(uint64_t), PX__LINE);
    h->off_slots = off;
    off = align_up(off + (uint64_t)h->capacity * sizeof(struct px__slot), PX__LINE);
    h->off_timers = off;
    off = align_up(off + (uint64_t)h->capacity * sizeof(struct px__timer), PX__LINE);
    /* Twice as many key entries as slots, in 64 shards: a shard at most
     * half full on average. */
    uint32_t per = (uint32_t)(((uint64_t)h->capacity * 2 + PX__KEY_SHARDS - 1) / PX__KEY_SHARDS);
    h->key_shard_size = pow2_at_least(per < 16 ? 16 : per);
    h->off_key_locks = off;
    off = align_up(off + PX__KEY_SHARDS * sizeof(struct px__keyshard), PX__LINE);
    h->off_keys = off;
    off = align_up(off + (uint64_t)PX__KEY_SHARDS * h->key_shard_size * sizeof(struct px__keyent),
                   PX__LINE);
    h->off_tickets = off;
    off = align_up(off + (uint64_t)h->max_queues * PX__CONC_MAX * sizeof(uint64_t), PX__LINE);
    h->off_scheds = off;
    off = align_up(off + (uint64_t)PX__MAX_SCHEDS * sizeof(struct px__sched), PX__LINE);
    h->off_stats = off;
    off = align_up(off + (uint64_t)PX__STAT_SHARDS * sizeof(struct px__stat_shard), PX__LINE);
    h->off_parks = off;
    off = align_up(off + (uint64_t)PX__MAX_PARKS * sizeof(struct px__park), PX__LINE);
    h->off_tags = off;
    off = align_up(off + (uint64_t)h->nchunks * sizeof(uint64_t), 4096);
    h->off_arena = off;
    off = align_up(off + (uint64_t)h->nchunks * h->chunk_size, 4096);
    h->size = off;
}

static int params_from_opts(const px_region_opts *o, struct px__hdr *h)
{
    px_region_opts z = {0};
    if (!o)
        o = &z;
    h->capacity = o->capacity ? o->capacity : DEF_CAPACITY;
    h->max_payload = o->max_payload ? o->max_payload : DEF_MAX_PAYLOAD;
    h->lanes = o->lanes ? o->lanes : DEF_LANES;
    h->lane_depth = o->lane_depth ? o->lane_depth : DEF_LANE_DEPTH;
    if (h->capacity > MAX_CAPACITY || h->max_payload > MAX_PAYLOAD_LIMIT || h->lanes > 65536 ||
        h->lane_depth < 2 || h->lane_depth > (1u << 24) ||
        (h->lane_depth & (h->lane_depth - 1)) != 0 || o->reap_interval_s < 0)
        return -EINVAL;
    /* A payload is at most 64 chunks, so that one allocation scans a short
     * run of tags. */
    h->chunk_size = pow2_at_least(h->max_payload) / 64;
    if (h->chunk_size < 64)
        h->chunk_size = 64;
    uint64_t arena = o->arena_bytes;
    if (arena == 0) {
        arena = (uint64_t)64 * h->max_payload;
        if (arena < (64ull << 20))
            arena = 64ull << 20;
    }
    uint64_t n = arena / h->chunk_size;
    if (n < 64 || n > UINT32_MAX - 1)
        return -EINVAL;
    h->nchunks = (uint32_t)n;
    h->max_procs = PX__MAX_PROCS;
    h->max_queues = PX__MAX_QUEUES;
    h->max_defs = PX__MAX_DEFS;
    h->reap_interval_ns =
        o->reap_interval_s > 0 ? (uint64_t)(o->reap_interval_s * 1e9) : DEF_REAP_NS;
    if (o->result_ttl_s > 4e6)
        return -EINVAL;
    h->no_metrics = (o->flags & PX_REGION_NO_METRICS) != 0;
    h->result_ttl_ms = o->result_ttl_s < 0    ? PX__TTL_FOREVER
                       : o->result_ttl_s == 0 ? DEF_TTL_MS
                                              : (uint32_t)(o->result_ttl_s * 1000);
    return 0;
}

static void bind_tables(px_region *r)
{
    struct px__hdr *h = r->hdr;
    r->procs = (struct px__proc *)(r->base + h->off_procs);
    r->queues = (struct px__queue *)(r->base + h->off_queues);
    r->defs = (struct px__def *)(r->base + h->off_defs);
    r->lanes = (struct px__lane *)(r->base + h->off_lanes);
    r->entries = (_Atomic uint64_t *)(r->base + h->off_entries);
    r->slots = (struct px__slot *)(r->base + h->off_slots);
    r->timers = (struct px__timer *)(r->base + h->off_timers);
    r->key_shards = (struct px__keyshard *)(r->base + h->off_key_locks);
    r->keys = (struct px__keyent *)(r->base + h->off_keys);
    r->tickets = (_Atomic uint64_t *)(r->base + h->off_tickets);
    r->scheds = (struct px__sched *)(r->base + h->off_scheds);
    r->stats = (struct px__stat_shard *)(r->base + h->off_stats);
    r->parks = (struct px__park *)(r->base + h->off_parks);
    r->tags = (_Atomic uint64_t *)(r->base + h->off_tags);
    r->arena = r->base + h->off_arena;
    r->lane_mask = h->lane_depth - 1;
    r->tsc = h->clock.kind == PX__CLOCK_TSC;
    r->metrics = !h->no_metrics;
}

/* Everything but the magic; the file is fresh, so it is all zero. */
static int init_region(px_region *r, const struct px__hdr *params)
{
    struct px__hdr *h = r->hdr;
    memcpy((char *)h + sizeof(h->magic), (const char *)params + sizeof(h->magic),
           offsetof(struct px__hdr, lock) - sizeof(h->magic));
    r->metrics = !h->no_metrics; /* bound before the parameters were in */
    h->abi = PX__ABI;
    h->hdr_size = sizeof(struct px__hdr);
    h->created_ns = px__now_ns();
    h->fences = px__fence_register() ? PX__FENCES_ASYMMETRIC : PX__FENCES_SYMMETRIC;
    px__clock_init(&h->clock);
    if (getrandom(&h->nonce, sizeof h->nonce, 0) != sizeof h->nonce)
        h->nonce = px__mono_ns() ^ ((uint64_t)getpid() << 32);
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    int rc = pthread_mutex_init(&h->lock, &a);
    if (rc == 0)
        rc = pthread_mutex_init(&h->timer_lock, &a);
    if (rc == 0)
        rc = pthread_mutex_init(&h->sched_lock, &a);
    bind_tables(r);
    for (uint32_t i = 0; i < PX__KEY_SHARDS && rc == 0; i++)
        rc = pthread_mutex_init(&r->key_shards[i].lock, &a);
    pthread_mutexattr_destroy(&a);
    if (rc)
        return -rc;
    atomic_store_explicit(&h->timer_next, UINT64_MAX, memory_order_relaxed);
    /* Generations start at a value derived from the region's nonce, so an id
     * from another region is very unlikely to name a task here. */
    for (uint32_t i = 0; i < h->capacity; i++) {
        uint32_t gen = (uint32_t)XXH3_64bits_withSeed(&i, sizeof i, h->nonce) | 1u;
        atomic_store_explicit(&r->slots[i].ctl, PX__CTL(gen, PX__S_FREE, 0, 0, 0),
                              memory_order_relaxed);
    }
    struct px__queue *q = &r->queues[0];
    strcpy(q->name, "default");
    q->hash = XXH3_64bits(q->name, strlen(q->name));
    atomic_store_explicit(&h->nqueues, 1, memory_order_relaxed);
    return 0;
}

/* Sizes that a layout can be computed from and trusted. */
static bool sane(const struct px__hdr *h)
{
    return h->capacity != 0 && h->capacity <= MAX_CAPACITY && h->lanes != 0 && h->lanes <= 65536 &&
           h->lane_depth >= 2 && (h->lane_depth & (h->lane_depth - 1)) == 0 &&
           h->chunk_size >= 64 && h->max_payload != 0 && h->max_payload <= 64 * h->chunk_size &&
           h->max_procs == PX__MAX_PROCS && h->max_queues == PX__MAX_QUEUES &&
           h->max_defs == PX__MAX_DEFS && h->nchunks != 0 && h->nchunks != UINT32_MAX;
}

/* Checks a mapped header against the file size before any table is used. */
static int validate(px_region *r, const char *name)
{
    struct px__hdr *h = r->hdr;
    if (r->size < sizeof(struct px__hdr) ||
        atomic_load_explicit(&h->magic, memory_order_acquire) != PX__MAGIC) {
        fprintf(stderr, "pollux: %s is not a Pollux region (bad magic)\n", name);
        return PX_ECORRUPT;
    }
    if (h->abi != PX__ABI || h->hdr_size != sizeof(struct px__hdr)) {
        fprintf(stderr, "pollux: %s has layout version %u, this library reads %u\n", name, h->abi,
                PX__ABI);
        return PX_EVERSION;
    }
    struct px__hdr chk;
    memcpy(&chk, h, offsetof(struct px__hdr, lock));
    if (!sane(&chk) || chk.durability > PX_DURABLE_SYNC ||
        (chk.durability && !memchr(chk.log_dir, '\0', sizeof chk.log_dir)))
        goto corrupt;
    int rc = px__clock_check(&chk.clock);
    if (rc == PX_EVERSION) {
        fprintf(stderr, "pollux: %s counts time in TSC ticks, which this machine lacks\n", name);
        return rc;
    }
    if (rc)
        goto corrupt;
    layout(&chk);
    if (chk.size != h->size || chk.size != r->size || chk.off_arena != h->off_arena ||
        chk.off_slots != h->off_slots || chk.off_timers != h->off_timers ||
        chk.off_keys != h->off_keys || chk.off_key_locks != h->off_key_locks ||
        chk.off_tags != h->off_tags || chk.off_tickets != h->off_tickets ||
        chk.off_scheds != h->off_scheds || chk.off_stats != h->off_stats ||
        chk.off_parks != h->off_parks || chk.off_lanes != h->off_lanes ||
        chk.off_entries != h->off_entries || chk.off_defs != h->off_defs ||
        chk.off_queues != h->off_queues || chk.off_procs != h->off_procs)
        goto corrupt;
    return 0;
corrupt:
    fprintf(stderr, "pollux: %s is damaged or truncated (layout does not match its size)\n", name);
    return PX_ECORRUPT;
}

static bool is_shm_name(const char *name)
{
    return name[0] == '/' && strchr(name + 1, '/') == NULL;
}

static int open_fd(const char *name, int flags, mode_t mode)
{
    int fd = is_shm_name(name) ? shm_open(name, flags | O_CLOEXEC, mode)
                               : open(name, flags | O_CLOEXEC, mode);
    return fd < 0 ? -errno : fd;
}

/* Maps an existing region, waiting up to a second for a creator that is
 * still initialising it. */
static int attach_fd(px_region *r, int fd, const char *name)
{
    uint64_t until = px__mono_ns() + 1000000000ull;
    for (;;) {
        struct stat st;
        if (fstat(fd, &st) < 0)
            return -errno;
        if (st.st_size >= (off_t)sizeof(struct px__hdr)) {
            void *p = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
            if (p == MAP_FAILED)
                return -errno;
            r->base = p;
            r->size = (size_t)st.st_size;
            r->hdr = p;
            if (atomic_load_explicit(&r->hdr->magic, memory_order_acquire) == PX__MAGIC ||
                px__mono_ns() > until)
                break;
            munmap(p, r->size);
            r->base = NULL;
        } else if (px__mono_ns() > until) {
            fprintf(stderr, "pollux: %s is not a Pollux region (too small)\n", name);
            return PX_ECORRUPT;
        }
        usleep(1000);
    }
    int rc = validate(r, name);
    if (rc == 0)
        bind_tables(r);
    return rc;
}

/* Sizes, fills and (unless a recovery must come first) publishes a new
 * region. */
static int create_fd(px_region *r, int fd, const struct px__hdr *params, bool publish)
{
    if (ftruncate(fd, (off_t)params->size) < 0)
        return -errno;
    void *p = mmap(NULL, params->size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED)
        return -errno;
    r->base = p;
    r->size = params->size;
    r->hdr = p;
    int rc = init_region(r, params);
    if (rc == 0)
        bind_tables(r);
    if (rc == 0 && publish)
        atomic_store_explicit(&r->hdr->magic, PX__MAGIC, memory_order_release);
    return rc;
}

static void tls_destructor(void *p);

/* Maps the region, creating it if it does not exist (and may be created).
 * *created says which; a created region that must first be recovered from
 * plan's log is not yet published. */
static int map_region(px_region *r, const char *name, const px_region_opts *opts,
                      const struct px__durable_plan *plan, bool *created)
{
    struct px__hdr params = {0};
    int rc = params_from_opts(opts, &params);
    if (rc)
        return rc;
    px__durable_params(plan, &params);
    px__durable_init(plan, &params);
    if (!sane(&params))
        return PX_ECORRUPT; /* the log's sizes make no sense */
    layout(&params);
    uint32_t flags = opts ? opts->flags : 0;
    mode_t mode = opts && opts->file_mode ? (mode_t)opts->file_mode : 0600;
    int fd = -1;
    if (!(flags & PX_REGION_ATTACH)) {
        fd = open_fd(name, O_RDWR | O_CREAT | O_EXCL, mode);
        if (fd >= 0) {
            *created = true;
            rc = create_fd(r, fd, &params, !plan->have_log);
            close(fd);
            if (rc) {
                if (r->base)
                    munmap(r->base, r->size);
                r->base = NULL;
                is_shm_name(name) ? shm_unlink(name) : unlink(name);
            }
            return rc;
        }
        if (fd != -EEXIST || (flags & PX_REGION_CREATE))
            return fd;
    }
    fd = open_fd(name, O_RDWR, 0);
    if (fd < 0)
        return fd;
    rc = attach_fd(r, fd, name);
    close(fd);
    if (rc && r->base) {
        munmap(r->base, r->size);
        r->base = NULL;
    }
    return rc;
}

/* Rebuilds a region just created from its log, then publishes it. Nobody
 * else can attach before the magic is stored, so nothing races the restored
 * slots. The segments read stay until a checkpoint finds them all older
 * than itself: checkpointing here would write the whole log again before
 * the region could be used. */
static int recover(px_region *r, const struct px__durable_plan *plan)
{
    int rc = px__recover(r, &plan->log, &r->recovery);
    if (rc) {
        fprintf(stderr, "pollux: cannot recover %s from %s: %s\n", r->name, plan->dir,
                px_strerror(rc));
        return rc;
    }
    if ((rc = px__durable_attach(r)) != 0)
        return rc;
    atomic_store_explicit(&r->hdr->magic, PX__MAGIC, memory_order_release);
    return 0;
}

/* True if no other process is attached (the dead ones were reaped). */
static bool alone(px_region *r)
{
    for (uint32_t i = 0; i < r->hdr->max_procs; i++)
        if (i != r->self && atomic_load(&r->procs[i].state) != PX__PROC_FREE)
            return false;
    return true;
}

int px_region_open(const char *name, const px_region_opts *opts, px_region **out)
{
    if (!name || !out || name[0] == '\0' || strlen(name) >= sizeof(((px_region *)0)->name) ||
        (name[0] == '/' && name[1] == '\0'))
        return -EINVAL;
    if (opts && (opts->flags & PX_REGION_CREATE) && (opts->flags & PX_REGION_ATTACH))
        return -EINVAL;
    px_region *r = calloc(1, sizeof *r);
    if (!r)
        return -ENOMEM;
    strcpy(r->name, name);
    struct px__durable_plan plan;
    bool created = false;
    int rc = px__durable_plan(name, opts, &plan);
    if (rc == 0)
        rc = map_region(r, name, opts, &plan, &created);
    if (rc)
        goto fail;
    pthread_mutex_init(&r->tls_lock, NULL);
    if ((rc = -pthread_key_create(&r->tls_key, tls_destructor)) != 0)
        goto fail_map;
    r->tls_id = atomic_fetch_add(&tls_ids, 1) + 1;
    if ((rc = px__proc_attach(r, PX_ROLE_CLIENT)) < 0)
        goto fail_key;
    if (created && plan.have_log)
        rc = recover(r, &plan);
    else
        rc = px__durable_attach(r);
    if (rc)
        goto fail_proc;
    px__durable_plan_free(&plan);
    px__reap(r);
    /* The memory outlived every process that used it: it may be ahead of
     * the log (async records lost) or behind it. The memory wins. A
     * failure here leaves the region usable; it is said on stderr. */
    if (!created && r->wal && alone(r))
        px__reconcile(r, &r->recovery);
    *out = r;
    return 0;
fail_proc:
    px__durable_detach(r);
    px__tls_release_all(r);
    px__proc_detach(r);
fail_key:
    pthread_key_delete(r->tls_key);
fail_map:
    /* A region we created but never published is nobody's: remove it. */
    if (created && atomic_load(&r->hdr->magic) != PX__MAGIC)
        is_shm_name(name) ? shm_unlink(name) : unlink(name);
    munmap(r->base, r->size);
fail:
    px__durable_plan_free(&plan);
    free(r);
    return rc;
}

int px_region_recovery(px_region *r, px_recovery_info *out)
{
    if (!r || !out)
        return -EINVAL;
    *out = r->recovery;
    return 0;
}

int px_region_close(px_region *r)
{
    if (!r)
        return -EINVAL;
    if (atomic_load(&r->workers) > 0)
        return -EBUSY;
    px__durable_detach(r);
    px__tls_release_all(r);
    pthread_key_delete(r->tls_key);
    px__tickets_wake(r, px__tickets_release_proc(r, r->self));
    px__proc_detach(r);
    munmap(r->base, r->size);
    pthread_mutex_destroy(&r->tls_lock);
    free(r);
    return 0;
}

int px_region_destroy(const char *name)
{
    if (!name || !name[0])
        return -EINVAL;
    int rc = is_shm_name(name) ? shm_unlink(name) : unlink(name);
    return rc < 0 ? -errno : 0;
}

int px__hdr_lock(px_region *r)
{
    int rc = pthread_mutex_lock(&r->hdr->lock);
    if (rc == EOWNERDEAD) {
        /* The holder died. Every cold-path writer leaves the tables valid at
         * each step (entries are published last), so the state is usable. */
        pthread_mutex_consistent(&r->hdr->lock);
        rc = 0;
    }
    return -rc;
}

void px__hdr_unlock(px_region *r)
{
    pthread_mutex_unlock(&r->hdr->lock);
}

/* ---- Per-thread state ---------------------------------------------------- */

static void release_lanes(px_region *r, struct px__tls *t)
{
    for (uint32_t i = 0; i < t->nlanes; i++)
        atomic_store_explicit(&r->lanes[t->lane_idx[i]].owner, 0, memory_order_release);
    t->nlanes = 0;
}

static void unlink_tls(px_region *r, struct px__tls *t)
{
    for (struct px__tls **pp = &r->tls_list; *pp; pp = &(*pp)->next) {
        if (*pp == t) {
            *pp = t->next;
            return;
        }
    }
}

static void tls_forget(void)
{
    px__tl_tls_id = 0;
    px__tl_tls = NULL;
}

static void tls_destructor(void *p)
{
    struct px__tls *t = p;
    if (px__tl_tls == t)
        tls_forget(); /* another key's destructor may still submit */
    px_region *r = t->r;
    pthread_mutex_lock(&r->tls_lock);
    release_lanes(r, t);
    px__stats_release(r, t);
    unlink_tls(r, t);
    pthread_mutex_unlock(&r->tls_lock);
    if (t != &r->fork_tls)
        free(t);
}

struct px__tls *px__tls_lookup(px_region *r)
{
    struct px__tls *t = pthread_getspecific(r->tls_key);
    if (t) {
        px__tl_tls_id = r->tls_id;
        px__tl_tls = t;
        return t;
    }
    t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->r = r;
    /* Spread threads' cursors so that they do not contend for the same
     * slots and chunks. */
    uint64_t seed = XXH3_64bits(&t, sizeof t);
    t->slot_cursor = (uint32_t)(seed % r->hdr->capacity);
    t->chunk_cursor = (uint32_t)((seed >> 32) % r->hdr->nchunks);
    if (pthread_setspecific(r->tls_key, t) != 0) {
        free(t);
        return NULL;
    }
    pthread_mutex_lock(&r->tls_lock);
    t->next = r->tls_list;
    r->tls_list = t;
    pthread_mutex_unlock(&r->tls_lock);
    px__tl_tls_id = r->tls_id;
    px__tl_tls = t;
    return t;
}

void px__tls_release_all(px_region *r)
{
    pthread_mutex_lock(&r->tls_lock);
    for (struct px__tls *t = r->tls_list, *n; t; t = n) {
        n = t->next;
        release_lanes(r, t);
        px__stats_release(r, t);
        free(t);
    }
    r->tls_list = NULL;
    if (r->fork_tls.r) { /* a pool child's own, not in the list */
        release_lanes(r, &r->fork_tls);
        px__stats_release(r, &r->fork_tls);
    }
    pthread_mutex_unlock(&r->tls_lock);
    pthread_setspecific(r->tls_key, NULL);
    if (px__tl_tls_id == r->tls_id)
        tls_forget();
}

void px__tls_reset_after_fork(px_region *r)
{
    /* The child has one thread; the lanes in these structs belong to the
     * parent's threads, so the child drops its copies without touching the
     * lanes, and without free() or calloc(): another thread of the parent
     * may have held the allocator's lock when it forked (glibc's malloc
     * handles that, AddressSanitizer's does not), so the child's own state
     * is the struct the handle carries for this. The copies stay listed
     * in tls_forked: not freed, not lost. */
    r->tls_forked = r->tls_list;
    r->tls_list = NULL;
    pthread_mutex_init(&r->tls_lock, NULL);
    struct px__tls *t = &r->fork_tls;
    memset(t, 0, sizeof *t);
    t->r = r;
    uint64_t seed = XXH3_64bits(&r, sizeof r) ^ (uint64_t)getpid();
    t->slot_cursor = (uint32_t)(seed % r->hdr->capacity);
    t->chunk_cursor = (uint32_t)((seed >> 32) % r->hdr->nchunks);
    pthread_setspecific(r->tls_key, t);
    px__tl_tls_id = r->tls_id;
    px__tl_tls = t;
}

/*
 * Thread workers, the supervisor, and graceful stop.
 *
 * A worker thread takes tasks from the lanes of its queues, spins for
 * spin_us when it finds none, then sleeps in its parking place (one per
 * thread or dispatcher, claimed when the set starts) after announcing
 * itself in `sleepers` (one count per work bit it serves) and parking; a
 * submit looks for a parked sleeper to wake only if one counts in its bit,
 * and wakes each sleep once (shm/park.h). Both are seq_cst and are
 * followed, in an asymmetric region, by the sleepers' barrier
 * (shm/fence.h); the producer's tail store is seq_cst, or a release store
 * ordered by that barrier. Either way the worker's last scan sees the new
 * entry or the producer sees the sleeper parked. A producer killed between
 * its tail store and its wake leaves the entry to the next submit's wake or
 * to the sleeper's own, at most SLEEP_NS later.
 *
 * Stopping: `stopping` makes every thread finish its task and exit; the
 * stop flags tell running tasks (through px_should_continue) to stop,
 * daemon tasks at once and the others after the grace period; whatever
 * still runs then is put back to PENDING by a CAS from its claimed RUNNING
 * state, so its late result is discarded (see run.c).
 */
#define _GNU_SOURCE
#include "workers.h"
#include "../persist/durable.h"
#include "../persist/journal.h"
#include "../shm/fence.h"
#include "../shm/futex.h"
#include "../shm/park.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define SLEEP_NS 1000000000ll
#define UNFENCED_SLEEP_NS 1000000ll
/* Retention: every EXPIRY_NS the supervisor looks at EXPIRY_SLOTS slots
 * (all of a region of up to that many), so that a large region costs an
 * idle worker set no more than a small one: a region of 1M slots is looked
 * over in 16 s, not every second (which kept 1.3% of a core busy). While
 * a producer waits for room, each look covers every slot. */
#define EXPIRY_NS 1000000000ull
#define EXPIRY_SLOTS 65536u

void px__emit_event(px_workers *w, px_event_kind kind, px_id id, const char *error)
{
    struct px__slot *s = px__slot_of(w->r, id);
    uint32_t def = s ? atomic_load_explicit(&s->def, memory_order_relaxed) : UINT32_MAX;
    px_event ev = {.kind = kind, .id = id, .task = px__def_name(w->r, def), .error = error};
    w->o.on_event(&ev, w->o.user);
}

/* A worker slot's counters have one writer, the slot's thread: a relaxed
 * load and store, no locked instruction on every task. */
static void bump(_Atomic uint64_t *c)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + 1,
                          memory_order_relaxed);
}

void px__account(px_workers *w, struct px__wslot *ws, px_id id, enum px__outcome out,
                 const char *err)
{
    switch (out) {
    case PX__DONE_OK:
        bump(&ws->succeeded);
        px__emit(w, PX_EV_SUCCESS, id, NULL);
        break;
    case PX__DONE_FAILED:
        bump(&ws->failed);
        px__emit(w, PX_EV_FAILED, id, err);
        break;
    case PX__DONE_REQUEUED:
        bump(&ws->requeued);
        px__emit(w, PX_EV_REQUEUED, id, NULL);
        break;
    case PX__DONE_CANCELLED:
        bump(&ws->cancelled);
        px__emit(w, PX_EV_CANCELLED, id, NULL);
        break;
    case PX__DONE_RETRY:
        bump(&ws->retried);
        px__emit(w, PX_EV_RETRY, id, err);
        break;
    case PX__DONE_DEAD:
        bump(&ws->dead);
        px__emit(w, PX_EV_DEAD, id, err);
        break;
    case PX__DONE_REVOKED:
        break;
    }
    atomic_store_explicit(&ws->current, 0, memory_order_release);
    if (atomic_load_explicit(&w->stopping, memory_order_relaxed)) {
        pthread_mutex_lock(&w->mu);
        pthread_cond_broadcast(&w->cond);
        pthread_mutex_unlock(&w->mu);
    }
}

bool px__is_daemon(px_region *r, px_id id)
{
    uint32_t def = atomic_load_explicit(&r->slots[PX__ID_IDX(id)].def, memory_order_relaxed);
    return def < r->hdr->max_defs && (r->defs[def].flags & PX__DEF_DAEMON);
}

/* The futex bits of the (queue, mode) pairs a worker serves. */
static uint32_t work_bits(uint64_t qmask, uint32_t mode)
{
    uint32_t bits = 0;
    for (uint32_t q = 0; q < 64; q++)
        if (qmask & (1ull << q))
            bits |= px__work_bit(q, mode);
    return bits;
}

/* A stop asked for while we took a task, after we last looked: it goes
 * back to PENDING untouched (its body has not run; the claim's attempt
 * stays counted), so that no task starts once px_workers_signal_stop has
 * returned. */
static bool stopped_after(px_workers *w, struct px__scan *scan, px_id id, uint64_t claimed)
{
    if (!atomic_load_explicit(&w->stopping, memory_order_acquire))
        return false;
    px__requeue(w->r, PX__ID_IDX(id), claimed);
    px__conc_release(w->r, scan, id);
    return true;
}

px_id px__next_task(px_workers *w, uint32_t mode, struct px__scan *scan, uint64_t *claimed)
{
    px_region *r = w->r;
    /* Process tasks cost a fork-free round trip to a child anyway; their
     * dispatchers sleep at once instead of spinning. */
    uint64_t spin_ns = mode == PX_THREAD ? (uint64_t)w->o.spin_us * 1000 : 0;
    uint64_t spin_end = 0; /* read lazily: a busy worker never needs it */
    for (uint32_t spins = 1; !atomic_load_explicit(&w->stopping, memory_order_acquire); spins++) {
        px_id id = px__take(r, w->qmask, mode, scan, claimed);
        if (id)
            return stopped_after(w, scan, id, *claimed) ? 0 : id;
        /* Read the clock every 32 empty scans, not on each. */
        if (spins % 32 != 0) {
            px__cpu_relax();
            continue;
        }
        if (spin_end == 0) {
            /* No task for a moment: the FREE this thread owes goes now. */
            if (r->wal)
                px__journal_settle(r, px__tls_get(r));
            spin_end = px__mono_ns() + spin_ns;
        }
        if (px__mono_ns() < spin_end) {
            /* A producer waiting for our result may share this CPU (the
             * kernel tends to wake a worker on its waker's CPU): let it
             * run rather than spin it out of its time. */
            sched_yield();
            continue;
        }
        uint32_t bits = work_bits(w->qmask, mode), park = scan->park - 1;
        px__announce_sleep(r, bits);
        uint32_t seen = px__park_arm(r, park, bits);
        /* Producers in an asymmetric region publish with a release store:
         * this barrier orders their stores against our count.
         * px_workers_start() checked that this process may issue it; should
         * one still fail (a kernel that allocates a CPU mask for it can
         * answer ENOMEM), the sleep is kept short instead. */
        bool unfenced = r->hdr->fences == PX__FENCES_ASYMMETRIC && px__fence_all() != 0;
        id = px__take(r, w->qmask, mode, scan, claimed);
        /* A rate limit held tasks back: sleep until its next token. */
        int64_t sleep_ns = scan->throttled_ns && scan->throttled_ns < SLEEP_NS
                               ? (int64_t)scan->throttled_ns
                               : SLEEP_NS;
        if (unfenced && sleep_ns > UNFENCED_SLEEP_NS)
            sleep_ns = UNFENCED_SLEEP_NS;
        if (!id && !atomic_load(&w->stopping))
            px__park_sleep(r, park, seen, sleep_ns);
        px__park_leave(r, park);
        px__retract_sleep(r, bits);
        if (id)
            return stopped_after(w, scan, id, *claimed) ? 0 : id;
        spin_end = px__mono_ns() + spin_ns;
    }
    return 0;
}

struct thread_arg {
    px_workers *w;
    unsigned i;
};

static void *thread_main(void *p)
{
    struct thread_arg *a = p;
    px_workers *w = a->w;
    struct px__wslot *ws = &w->ws[a->i];
    struct px__scan scan = {.lane = a->i, .park = ws->park};
    free(a);
    /* This loop logs each detached task's FREE with its next START. */
    struct px__tls *t = px__tls_get(w->r);
    if (t)
        t->free_defer = true;
    uint64_t claimed;
    char err[PX__ERR_MAX];
    px_id id;
    while ((id = px__next_task(w, PX_THREAD, &scan, &claimed)) != 0) {
        /* Reset before `current` names the run, so that the supervisor
         * never reads an old run's flag for this one. */
        atomic_store_explicit(&ws->expired, 0, memory_order_relaxed);
        atomic_store_explicit(&ws->claimed, claimed, memory_order_relaxed);
        atomic_store_explicit(&ws->current, id, memory_order_release);
        px__emit(w, PX_EV_START, id, NULL);
        const _Atomic int *stop = px__is_daemon(w->r, id) ? &w->flags->daemon : &w->flags->all;
        enum px__outcome out =
            px__run(w->r, id, claimed, stop, &ws->expired, err, sizeof err, true);
        px__conc_release(w->r, &scan, id);
        px__account(w, ws, id, out, err);
    }
    px__journal_settle(w->r, t);
    return NULL;
}

static void *super_main(void *p)
{
    px_workers *w = p;
    uint64_t next_expiry = 0;
    uint32_t expiry_cursor = 0;
    pthread_mutex_lock(&w->mu);
    while (!atomic_load(&w->stopping)) {
        pthread_mutex_unlock(&w->mu);
        int n = px__reap(w->r);
        /* Expiry reads a slot's line per slot: a window at a time, once a
         * second, so that the sweep does not crowd the workers' caches. */
        uint64_t now = px__mono_ns();
        if (now >= next_expiry) {
            bool short_of_room =
                atomic_load_explicit(&w->r->hdr->room_waiters, memory_order_relaxed);
            px__expire(w->r, &expiry_cursor, short_of_room ? w->r->hdr->capacity : EXPIRY_SLOTS);
            next_expiry = now + EXPIRY_NS;
        }
        px__checkpoint_maybe(w->r);
        px__limits_check(w);
        if (n > 0)
            atomic_fetch_add(&w->reaped, (uint64_t)n);
        pthread_mutex_lock(&w->mu);
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t ns = (uint64_t)ts.tv_nsec + w->r->hdr->reap_interval_ns;
        ts.tv_sec += (time_t)(ns / 1000000000ull);
        ts.tv_nsec = (long)(ns % 1000000000ull);
        if (!atomic_load(&w->stopping))
            pthread_cond_timedwait(&w->cond, &w->mu, &ts);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

/* Parses "a,b,c" into a mask of queue indices, creating the queues. */
static int parse_queues(px_region *r, const char *list, uint64_t *mask)
{
    *mask = 0;
    if (!list)
        list = "default";
    char buf[PX__QNAME_MAX];
    while (*list) {
        size_t n = strcspn(list, ",");
        if (n == 0 || n >= sizeof buf)
            return -EINVAL;
        memcpy(buf, list, n);
        buf[n] = '\0';
        int q = px__queue_find(r, buf, true);
        if (q < 0)
            return q;
        *mask |= 1ull << q;
        list += n + (list[n] == ',');
    }
    return *mask ? 0 : -EINVAL;
}

static void set_defaults(px_workers_opts *o)
{
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    if (cores < 1)
        cores = 1;
    if (o->threads == 0)
        o->threads = (unsigned)(2 * cores);
    if (o->processes == 0)
        o->processes = (unsigned)cores;
    if (o->grace_s == 0)
        o->grace_s = 10;
    if (o->spin_us == 0)
        o->spin_us = 50;
}

static int start_threads(px_workers *w)
{
    for (unsigned i = 0; i < w->o.threads; i++) {
        struct thread_arg *a = malloc(sizeof *a);
        if (!a)
            return -ENOMEM;
        *a = (struct thread_arg){w, i};
        int rc = pthread_create(&w->threads[i], NULL, thread_main, a);
        if (rc) {
            free(a);
            return -rc;
        }
        w->nthreads++;
    }
    int rc = pthread_create(&w->super, NULL, super_main, w);
    w->super_started = rc == 0;
    if (rc == 0)
        rc = -px__timer_start(&w->timer, w->r);
    return -rc;
}

static void free_workers(px_workers *w)
{
    for (unsigned i = 0; w->ws && i < w->o.threads + w->o.processes; i++)
        if (w->ws[i].park)
            px__park_release(w->r, w->ws[i].park - 1);
    if (w->flags)
        munmap(w->flags, 4096);
    free(w->threads);
    free(w->ws);
    free(w->children);
    free(w);
}

static px_workers *alloc_workers(px_region *r, const px_workers_opts *opts)
{
    px_workers *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    w->r = r;
    w->o = opts ? *opts : (px_workers_opts){0};
    set_defaults(&w->o);
    w->threads = calloc(w->o.threads, sizeof *w->threads);
    w->ws = aligned_alloc(PX__LINE, sizeof(struct px__wslot) * (w->o.threads + w->o.processes));
    /* Zeroed before anything can fail: free_workers releases the places
     * it names. */
    if (w->ws)
        memset(w->ws, 0, sizeof(struct px__wslot) * (w->o.threads + w->o.processes));
    w->children = calloc(w->o.processes, sizeof *w->children);
    void *page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    w->flags = page == MAP_FAILED ? NULL : page;
    if (!w->threads || !w->ws || !w->children || !w->flags) {
        free_workers(w);
        return NULL;
    }
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cond, NULL);
    return w;
}

int px_workers_start(px_region *r, const px_workers_opts *opts, px_workers **out)
{
    if (!r || !out ||
        (opts && (opts->grace_s < 0 || opts->threads > 4096 || opts->processes > 4096)))
        return -EINVAL;
    /* Its workers could not order the region's producers before sleeping
     * (shm/fence.h), and would miss their tasks. */
    if (r->hdr->fences == PX__FENCES_ASYMMETRIC && px__fence_all() != 0)
        return -EPERM;
    px_workers *w = alloc_workers(r, opts);
    if (!w)
        return -ENOMEM;
    int rc = parse_queues(r, w->o.queues, &w->qmask);
    /* Every thread that takes tasks sleeps in its own place. */
    for (unsigned i = 0; rc == 0 && i < w->o.threads + w->o.processes; i++) {
        int park = px__park_claim(r);
        if (park < 0)
            rc = park;
        else
            w->ws[i].park = (uint32_t)park + 1;
    }
    if (rc) {
        pthread_mutex_destroy(&w->mu);
        pthread_cond_destroy(&w->cond);
        free_workers(w);
        return rc;
    }
    atomic_store(&r->procs[r->self].role, PX_ROLE_WORKER);
    atomic_fetch_add(&r->workers, 1);
    atomic_fetch_add(&r->procs[r->self].threads, w->o.threads);
    atomic_fetch_add(&r->procs[r->self].children, w->o.processes);
    /* The pool first: its dispatchers fork the children before any worker
     * thread takes a task. */
    if ((rc = px__pool_start(w)) == 0 && (rc = start_threads(w)) == 0) {
        *out = w;
        return 0;
    }
    px_workers_stop(w);
    return rc;
}

void px_workers_signal_stop(px_workers *w)
{
    if (!w)
        return;
    atomic_store(&w->stopping, 1);
    px__park_wake(w->r, UINT32_MAX, UINT32_MAX);
}

static unsigned running(px_workers *w, bool daemon_too)
{
    unsigned n = 0;
    for (unsigned i = 0; i < w->o.threads + w->nchildren; i++) {
        px_id id = atomic_load(&w->ws[i].current);
        if (id && (daemon_too || !px__is_daemon(w->r, id)))
            n++;
    }
    return n;
}

/* Waits until no non-daemon task runs, or the grace period ends. */
static void wait_grace(px_workers *w)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t ns = (uint64_t)ts.tv_nsec + (uint64_t)(w->o.grace_s * 1e9);
    ts.tv_sec += (time_t)(ns / 1000000000ull);
    ts.tv_nsec = (long)(ns % 1000000000ull);
    pthread_mutex_lock(&w->mu);
    while (running(w, false) > 0 && pthread_cond_timedwait(&w->cond, &w->mu, &ts) != ETIMEDOUT)
        ;
    pthread_mutex_unlock(&w->mu);
}

/* Puts the thread tasks still running back to PENDING; their late results
 * are discarded when they return. */
static void requeue_running(px_workers *w)
{
    for (unsigned i = 0; i < w->nthreads; i++) {
        px_id id = atomic_load(&w->ws[i].current);
        if (!id)
            continue;
        uint64_t claimed = atomic_load(&w->ws[i].claimed);
        if (px__requeue(w->r, PX__ID_IDX(id), claimed)) {
            atomic_fetch_add(&w->ws[i].requeued, 1);
            px__emit(w, PX_EV_REQUEUED, id, NULL);
        }
    }
}

int px_workers_stop(px_workers *w)
{
    if (!w)
        return -EINVAL;
    px_workers_signal_stop(w);
    atomic_store(&w->flags->daemon, 1);
    px__pool_kill(w, true);
    pthread_mutex_lock(&w->mu);
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->mu);
    wait_grace(w);
    atomic_store(&w->flags->all, 1);
    requeue_running(w);
    px__pool_kill(w, false);
    for (unsigned i = 0; i < w->nthreads; i++)
        pthread_join(w->threads[i], NULL);
    if (w->super_started)
        pthread_join(w->super, NULL);
    px__timer_stop(&w->timer);
    px__pool_join(w);
    atomic_fetch_sub(&w->r->procs[w->r->self].threads, w->o.threads);
    atomic_fetch_sub(&w->r->procs[w->r->self].children, w->o.processes);
    atomic_fetch_sub(&w->r->workers, 1);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cond);
    free_workers(w);
    return 0;
}

int px_workers_stats_get(px_workers *w, px_workers_stats *st)
{
    if (!w || !st)
        return -EINVAL;
    memset(st, 0, sizeof *st);
    for (unsigned i = 0; i < w->o.threads + w->nchildren; i++) {
        st->succeeded += atomic_load_explicit(&w->ws[i].succeeded, memory_order_relaxed);
        st->failed += atomic_load_explicit(&w->ws[i].failed, memory_order_relaxed);
        st->cancelled += atomic_load_explicit(&w->ws[i].cancelled, memory_order_relaxed);
        st->retried += atomic_load_explicit(&w->ws[i].retried, memory_order_relaxed);
        st->dead += atomic_load_explicit(&w->ws[i].dead, memory_order_relaxed);
        st->requeued += atomic_load_explicit(&w->ws[i].requeued, memory_order_relaxed);
        st->running += atomic_load_explicit(&w->ws[i].current, memory_order_relaxed) != 0;
    }
    st->requeued += atomic_load(&w->reaped);
    st->timed_out = atomic_load(&w->timed_out);
    st->threads = w->nthreads;
    st->processes = w->nchildren;
    return 0;
}

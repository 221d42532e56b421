/*
 * The table of attached processes, and the liveness check.
 *
 * A process is alive while a process with its pid exists and started at the
 * same time (field 22 of /proc/PID/stat, in clock ticks since boot): pids
 * are reused, start times of one pid are not. A stopped (SIGSTOP) process is
 * alive. There is no timeout: a process is declared dead only by the
 * operating system, so a slow or stopped one never has its tasks or lanes
 * taken from under it.
 */
#define _GNU_SOURCE
#include "region.h"
#include "fence.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

/* Reads /proc/PID/stat with open and read, not stdio: this runs in a child
 * just forked from a multi-threaded process, where only async-signal-safe
 * calls are sure not to find a lock held by a thread that no longer
 * exists. */
static int read_stat(int pid, char *buf, size_t cap)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t n = read(fd, buf, cap - 1);
    int e = errno;
    close(fd);
    if (n < 0)
        return -e;
    buf[n] = '\0';
    return 0;
}

int px__proc_start_time(int pid, uint64_t *out)
{
    char buf[1024];
    int rc = read_stat(pid, buf, sizeof buf);
    if (rc)
        return rc;
    /* The command name is in parentheses and may contain spaces: start after
     * the last ')'. Field 3 (state) follows; start time is field 22. */
    char *p = strrchr(buf, ')');
    if (!p)
        return -EINVAL;
    p++;
    for (int field = 3; field < 22 && p; field++)
        p = strchr(p + 1, ' ');
    if (!p)
        return -EINVAL;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(p + 1, &end, 10);
    if (errno || end == p + 1)
        return -EINVAL;
    *out = v;
    return 0;
}

bool px__proc_alive(const struct px__proc *p)
{
    if (p->pid <= 0)
        return false;
    if (kill(p->pid, 0) < 0 && errno == ESRCH)
        return false;
    uint64_t st;
    int rc = px__proc_start_time(p->pid, &st);
    if (rc == -ENOENT)
        return false;
    if (rc < 0)
        return true; /* cannot tell: never declare dead on doubt */
    if (st != p->start_time)
        return false;
    /* A zombie has exited; its parent has just not collected it yet. */
    char buf[1024];
    if (read_stat(p->pid, buf, sizeof buf) != 0)
        return true;
    char *q = strrchr(buf, ')');
    char state = q && q[1] == ' ' ? q[2] : 0;
    return state != 'Z' && state != 'X';
}

int px__proc_attach(px_region *r, px_role role)
{
    /* Before this process publishes anything (a pool child registers
     * again: a fork does not inherit it). */
    px__fence_register();
    uint64_t st;
    int rc = px__proc_start_time(getpid(), &st);
    if (rc)
        return rc;
    if ((rc = px__hdr_lock(r)) != 0)
        return rc;
    rc = -EMFILE;
    for (uint32_t i = 0; i < r->hdr->max_procs; i++) {
        struct px__proc *p = &r->procs[i];
        if (atomic_load_explicit(&p->state, memory_order_acquire) != PX__PROC_FREE)
            continue;
        p->pid = getpid();
        p->start_time = st;
        p->role = role;
        p->attached_ns = px__now_ns();
        for (int k = 0; k < 3; k++)
            atomic_store_explicit(&p->waiting[k], 0, memory_order_relaxed);
        for (int b = 0; b < 32; b++)
            atomic_store_explicit(&p->sleeping[b], 0, memory_order_relaxed);
        atomic_store_explicit(&p->state, PX__PROC_ALIVE, memory_order_release);
        r->self = i;
        rc = 0;
        break;
    }
    px__hdr_unlock(r);
    return rc;
}

void px__proc_detach(px_region *r)
{
    atomic_store_explicit(&r->procs[r->self].state, PX__PROC_FREE, memory_order_release);
}

static _Atomic uint32_t *header_count(px_region *r, enum px__wait_kind k)
{
    if (k == PX__WAIT_DONE)
        return &r->hdr->done_waiters;
    return k == PX__WAIT_ROOM ? &r->hdr->room_waiters : &r->hdr->lane_waiters;
}

void px__announce(px_region *r, enum px__wait_kind k)
{
    atomic_fetch_add(header_count(r, k), 1);
    atomic_fetch_add(&r->procs[r->self].waiting[k], 1);
}

void px__retract(px_region *r, enum px__wait_kind k)
{
    atomic_fetch_sub(&r->procs[r->self].waiting[k], 1);
    atomic_fetch_sub(header_count(r, k), 1);
}

void px__announce_sleep(px_region *r, uint32_t bits)
{
    for (uint32_t b = 0; b < 32; b++) {
        if (!(bits & (1u << b)))
            continue;
        atomic_fetch_add(&r->hdr->sleepers[b], 1);
        atomic_fetch_add(&r->procs[r->self].sleeping[b], 1);
    }
}

void px__retract_sleep(px_region *r, uint32_t bits)
{
    for (uint32_t b = 0; b < 32; b++) {
        if (!(bits & (1u << b)))
            continue;
        atomic_fetch_sub(&r->procs[r->self].sleeping[b], 1);
        atomic_fetch_sub(&r->hdr->sleepers[b], 1);
    }
}

void px__retract_dead(px_region *r, uint32_t proc)
{
    struct px__proc *p = &r->procs[proc];
    for (int k = PX__WAIT_DONE; k <= PX__WAIT_LANE; k++) {
        uint32_t n = atomic_exchange(&p->waiting[k], 0);
        if (n)
            atomic_fetch_sub(header_count(r, (enum px__wait_kind)k), n);
    }
    for (uint32_t b = 0; b < 32; b++) {
        uint32_t n = atomic_exchange(&p->sleeping[b], 0);
        if (n)
            atomic_fetch_sub(&r->hdr->sleepers[b], n);
    }
}

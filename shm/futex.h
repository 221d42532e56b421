/*
 * Futex waits and wakes on 32-bit words in the region. The words live in a
 * MAP_SHARED mapping and are used across processes, so the calls are the
 * shared (not FUTEX_PRIVATE) variants. A wait returns when the word differs
 * from `seen`, on a wake, on a signal or at the deadline; callers always
 * re-check their condition.
 */
#ifndef PX_SHM_FUTEX_H
#define PX_SHM_FUTEX_H

#include <ck_pr.h>
#include <linux/futex.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* Waits at most `ns` nanoseconds (< 0: no limit). */
static inline void px__futex_wait(_Atomic uint32_t *word, uint32_t seen, int64_t ns)
{
    struct timespec ts, *tp = NULL;
    if (ns >= 0) {
        ts.tv_sec = ns / 1000000000;
        ts.tv_nsec = ns % 1000000000;
        tp = &ts;
    }
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT, seen, tp, NULL, 0);
}

/* Returns how many waiters it woke (0 on an error). */
static inline int px__futex_wake(_Atomic uint32_t *word, int n)
{
    long woken = syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE, n, NULL, NULL, 0);
    return woken > 0 ? (int)woken : 0;
}

/*
 * Work bits: the (queue, mode) pairs an idle worker serves, one bit each, so
 * that a submit wakes only a sleeper that can run its task (shm/park.h); a
 * worker of another queue, or a dispatcher of process tasks, would find
 * nothing and sleep again while the worker that could run it slept on. Bits
 * are (queue % 16) * 2 + mode - 1; with more than 16 queues two queues can
 * share a bit, and a submit then wakes every sleeper of the bit.
 */
static inline uint32_t px__work_bit(uint32_t queue, uint32_t mode)
{
    return 1u << ((queue % 16) * 2 + (mode - 1) % 2);
}

/* A deadline in CLOCK_MONOTONIC ns from a timeout in seconds: < 0 never (0),
 * otherwise now + timeout. */
static inline int64_t px__deadline(double timeout_s, uint64_t now)
{
    if (timeout_s < 0)
        return 0;
    return (int64_t)(now + (uint64_t)(timeout_s * 1e9));
}

/* Nanoseconds left before the deadline (-1: none; 0: expired). */
static inline int64_t px__left(int64_t deadline, uint64_t now)
{
    if (deadline == 0)
        return -1;
    return deadline > (int64_t)now ? deadline - (int64_t)now : 0;
}

static inline void px__cpu_relax(void)
{
    ck_pr_stall();
}

#endif

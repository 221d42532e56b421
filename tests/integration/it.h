/*
 * Helpers of the multi-process integration tests: shared counters, child
 * processes with deadlines, worker processes, programs of the build
 * directory, and a dump of the region for failure reports.
 *
 * Children forked by a test never return into Criterion: they end with
 * _exit(), and report failures through their exit status.
 */
#ifndef PX_TESTS_IT_H
#define PX_TESTS_IT_H

#define _GNU_SOURCE
#include "common.h"
#include "shm/region.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>

/* ---- time and randomness -------------------------------------------------- */

static inline double it_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static inline void it_sleep(double s)
{
    if (s <= 0)
        return;
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* Busy-waits for ns nanoseconds (keeps a worker thread "inside" a task). */
static inline void it_spin_ns(uint64_t ns)
{
    double until = it_now() + (double)ns / 1e9;
    while (it_now() < until)
        ;
}

/* splitmix64: a small seeded generator. */
static inline uint64_t it_rand(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Uniform in [lo, hi). */
static inline double it_uniform(uint64_t *state, double lo, double hi)
{
    return lo + (hi - lo) * (double)(it_rand(state) >> 11) / 9007199254740992.0;
}

/* ---- shared memory between the test and its children ------------------------ */

/* Zeroed MAP_SHARED memory, inherited by children forked afterwards. */
static inline void *it_shared(size_t bytes)
{
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(p, MAP_FAILED, "mmap of %zu shared bytes: %s", bytes, strerror(errno));
    return p;
}

/* ---- child processes ------------------------------------------------------ */

/* Children and the region of the running test, so that .fini = it_cleanup
 * leaves nothing behind when an assertion ends the test early. */
static pid_t it_children[512];
static int it_nchildren;
static char it_region[64];

static inline void it_track(pid_t pid)
{
    if (it_nchildren < (int)(sizeof it_children / sizeof it_children[0]))
        it_children[it_nchildren++] = pid;
}

static inline void it_untrack(pid_t pid)
{
    for (int i = 0; i < it_nchildren; i++)
        if (it_children[i] == pid)
            it_children[i] = it_children[--it_nchildren];
}

static inline void it_cleanup(void)
{
    for (int i = 0; i < it_nchildren; i++) {
        kill(it_children[i], SIGKILL);
        kill(it_children[i], SIGCONT);
        waitpid(it_children[i], NULL, 0);
    }
    it_nchildren = 0;
    if (it_region[0])
        px_region_destroy(it_region);
    it_region[0] = '\0';
}

/* A fresh region whose name it_cleanup() removes. */
static inline px_region *it_region_new(const px_region_opts *o)
{
    px_region *r = px_test_region(it_region, sizeof it_region, o);
    return r;
}

/* In a forked child: die with the test process. */
static inline void it_child_init(void)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
}

/* Waits up to timeout_s for pid; returns 0 and *status, or -ETIMEDOUT. */
static inline int it_wait(pid_t pid, double timeout_s, int *status)
{
    double until = it_now() + timeout_s;
    for (;;) {
        int st;
        pid_t got = waitpid(pid, &st, WNOHANG);
        if (got == pid) {
            it_untrack(pid);
            if (status)
                *status = st;
            return 0;
        }
        if (got < 0 && errno != EINTR)
            return -errno;
        if (it_now() > until)
            return -ETIMEDOUT;
        it_sleep(0.002);
    }
}

/* fork() for a test's child process: tracked, and dies with the test. */
static inline pid_t it_fork(void)
{
    pid_t pid = fork();
    cr_assert_geq(pid, 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        it_child_init();
        return 0;
    }
    it_track(pid);
    return pid;
}

/* SIGSTOPs a child of ours and waits until all its threads are stopped. */
static inline void it_stop(pid_t pid)
{
    kill(pid, SIGSTOP);
    double until = it_now() + 5;
    int st;
    for (;;) {
        pid_t got = waitpid(pid, &st, WUNTRACED | WNOHANG);
        if (got == pid && WIFSTOPPED(st))
            return;
        cr_assert(got == 0 || (got < 0 && errno == EINTR), "waiting for %d to stop: %d", (int)pid,
                  (int)got);
        cr_assert(it_now() < until, "process %d did not stop", (int)pid);
        it_sleep(0.001);
    }
}

/* Kills pid with SIGKILL and collects it. */
static inline void it_kill_wait(pid_t pid)
{
    if (pid <= 0)
        return;
    kill(pid, SIGKILL);
    kill(pid, SIGCONT);
    waitpid(pid, NULL, 0);
    it_untrack(pid);
}

/* Text of a wait status, for messages. */
static inline const char *it_status_text(int st, char *buf, size_t cap)
{
    if (WIFEXITED(st))
        snprintf(buf, cap, "exited with %d", WEXITSTATUS(st));
    else if (WIFSIGNALED(st))
        snprintf(buf, cap, "killed by signal %d", WTERMSIG(st));
    else
        snprintf(buf, cap, "status 0x%x", st);
    return buf;
}

/* ---- worker processes ------------------------------------------------------ */

/*
 * Forks a worker process: it attaches to the region, registers defs[0..n)
 * with their bodies, starts px_workers with opts, and on SIGTERM stops them
 * gracefully and exits 0. Exit status 10 + step on a failure.
 */
static inline pid_t it_worker_spawn(const char *region, const px_task_def *defs, size_t n,
                                    const px_workers_opts *opts)
{
    sigset_t set, old;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigprocmask(SIG_BLOCK, &set, &old);
    pid_t pid = fork();
    if (pid != 0) {
        sigprocmask(SIG_SETMASK, &old, NULL);
        cr_assert_gt(pid, 0, "fork: %s", strerror(errno));
        it_track(pid);
        return pid;
    }
    it_child_init();
    px_region *r;
    if (px_region_open(region, &(px_region_opts){.flags = PX_REGION_ATTACH}, &r) != 0)
        _exit(11);
    for (size_t i = 0; i < n; i++)
        if (px_task_register(r, &defs[i]) != 0)
            _exit(12);
    px_workers *w;
    if (px_workers_start(r, opts, &w) != 0)
        _exit(13);
    int sig;
    sigwait(&set, &sig);
    if (px_workers_stop(w) != 0)
        _exit(14);
    if (px_region_close(r) != 0)
        _exit(15);
    _exit(0);
}

/* SIGTERMs a worker process and expects a clean exit within timeout_s. */
static inline void it_worker_stop(pid_t pid, double timeout_s)
{
    kill(pid, SIGTERM);
    int st = 0;
    int rc = it_wait(pid, timeout_s, &st);
    if (rc != 0)
        it_kill_wait(pid);
    char text[64];
    cr_assert_eq(rc, 0, "worker %d did not stop within %.1f s of SIGTERM", (int)pid, timeout_s);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "worker %d: %s", (int)pid,
              it_status_text(st, text, sizeof text));
}

/* ---- programs of the build directory ---------------------------------------- */

static inline const char *it_bin(char *buf, size_t cap, const char *file)
{
    const char *dir = getenv("PX_BIN_DIR");
    if (!dir || !*dir)
        cr_skip_test("PX_BIN_DIR is not set (run the tests under ctest)");
    snprintf(buf, cap, "%s/%s", dir, file);
    if (access(buf, F_OK) != 0)
        cr_assert_fail("%s: not built", buf);
    return buf;
}

/* Starts argv[0] with stdout (and stderr if err_too) into *out_fd if not
 * NULL; returns its pid. */
static inline pid_t it_spawn(char *const argv[], int *out_fd, bool err_too)
{
    int p[2] = {-1, -1};
    if (out_fd)
        cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        it_child_init();
        if (out_fd) {
            dup2(p[1], 1);
            if (err_too)
                dup2(p[1], 2);
        }
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        execv(argv[0], argv);
        _exit(127);
    }
    it_track(pid);
    if (out_fd) {
        close(p[1]);
        *out_fd = p[0];
    }
    return pid;
}

/* Reads fd to EOF (or until the deadline) into buf, NUL-terminated. */
static inline size_t it_read_all(int fd, char *buf, size_t cap, double timeout_s)
{
    size_t n = 0;
    double until = it_now() + timeout_s;
    while (n + 1 < cap) {
        int left = (int)((until - it_now()) * 1000);
        if (left <= 0)
            break;
        struct pollfd pf = {fd, POLLIN, 0};
        if (poll(&pf, 1, left) <= 0)
            continue;
        ssize_t k = read(fd, buf + n, cap - 1 - n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        n += (size_t)k;
    }
    buf[n] = '\0';
    return n;
}

/*
 * Runs a program to its end (killed after timeout_s) and returns its exit
 * code, -signal if killed, or -1000 on timeout. Output (stdout and stderr)
 * goes to out.
 */
static inline int it_run(char *const argv[], char *out, size_t cap, double timeout_s)
{
    int fd;
    pid_t pid = it_spawn(argv, &fd, true);
    it_read_all(fd, out, cap, timeout_s);
    close(fd);
    int st;
    if (it_wait(pid, 1.0 + timeout_s / 4, &st) != 0) {
        it_kill_wait(pid);
        return -1000;
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st);
}

/* ---- the region --------------------------------------------------------------- */

static inline const char *it_state_name(uint32_t st)
{
    switch (st) {
    case PX__S_FREE:
        return "FREE";
    case PX__S_PENDING:
        return "PENDING";
    case PX__S_RUNNING:
        return "RUNNING";
    case PX__S_SUCCESS:
        return "SUCCESS";
    case PX__S_FAILED:
        return "FAILED";
    case PX__S_RESERVED:
        return "RESERVED";
    case PX__S_FINISHING:
        return "FINISHING";
    case PX__S_CONSUMING:
        return "CONSUMING";
    default:
        return "?";
    }
}

/* Prints what is left in the region: slots not FREE, chunks in use, lanes
 * with entries, attached processes. For failure reports. */
static inline void it_dump(px_region *r, int max_lines)
{
    struct px__hdr *h = r->hdr;
    int lines = 0;
    for (uint32_t i = 0; i < h->capacity && lines < max_lines; i++) {
        uint64_t c = atomic_load(&r->slots[i].ctl);
        if (PX__CTL_STATE(c) == PX__S_FREE)
            continue;
        uint32_t own = PX__CTL_OWNER(c);
        fprintf(stderr,
                "  slot %u: %s owner %u (pid %d) attempts %u flags %u gen %08x args %u@%u "
                "out %u@%u\n",
                i, it_state_name(PX__CTL_STATE(c)), own, own ? r->procs[own - 1].pid : 0,
                PX__CTL_ATT(c), PX__CTL_FLAGS(c), PX__CTL_GEN(c),
                atomic_load(&r->slots[i].args_len), atomic_load(&r->slots[i].args_chunk),
                atomic_load(&r->slots[i].out_len), atomic_load(&r->slots[i].out_chunk));
        lines++;
    }
    for (uint32_t i = 0; i < h->nchunks && lines < max_lines; i++) {
        uint64_t tag = atomic_load(&r->tags[i]);
        if (!tag)
            continue;
        uint32_t idx = PX__ID_IDX(tag);
        uint64_t c = idx < h->capacity ? atomic_load(&r->slots[idx].ctl) : 0;
        fprintf(stderr, "  chunk %u: tag gen %08x slot %u (slot now %s gen %08x)\n", i,
                PX__ID_GEN(tag), idx, it_state_name(PX__CTL_STATE(c)), PX__CTL_GEN(c));
        lines++;
    }
    for (uint32_t i = 0; i < h->lanes; i++) {
        struct px__lane *l = &r->lanes[i];
        uint64_t hd = atomic_load(&l->head), tl = atomic_load(&l->tail);
        if (hd != tl || atomic_load(&l->owner))
            fprintf(stderr, "  lane %u: owner %u key %x head %llu tail %llu\n", i,
                    atomic_load(&l->owner), atomic_load(&l->key), (unsigned long long)hd,
                    (unsigned long long)tl);
    }
    for (uint32_t i = 0; i < h->max_procs; i++) {
        struct px__proc *p = &r->procs[i];
        uint32_t st = atomic_load(&p->state);
        if (st != PX__PROC_FREE)
            fprintf(stderr, "  proc %u: state %u pid %d role %u\n", i, st, p->pid,
                    atomic_load(&p->role));
    }
}

/*
 * Waits up to timeout_s until nothing is left: no slot in use, no arena
 * bytes, no queued entry. `collect` (may be NULL) is called on every round
 * to free what the test still holds. Fills *info with the last reading.
 */
static inline bool it_wait_empty(px_region *r, double timeout_s, void (*collect)(void *), void *arg,
                                 px_region_info *info)
{
    double until = it_now() + timeout_s;
    for (;;) {
        if (collect)
            collect(arg);
        px_region_info_get(r, info);
        if (info->slots_used == 0 && info->arena_used == 0 && info->queued == 0)
            return true;
        if (it_now() > until)
            return false;
        it_sleep(0.01);
    }
}

/* A second handle reaps what dead processes left (px_region_open does it
 * once), then goes away. */
static inline void it_reap_now(const char *name)
{
    px_region *tmp;
    if (px_region_open(name, &(px_region_opts){.flags = PX_REGION_ATTACH}, &tmp) == 0)
        px_region_close(tmp);
}

#endif

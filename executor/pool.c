/*
 * The process pool: pre-forked children that run PX_PROCESS tasks.
 *
 * Each child has a dispatcher thread in the parent, which forks it (and any
 * replacement). The dispatcher claims a task from the lanes (so the task is
 * owned by the parent's proc entry), sends (id, claimed ctl) to its child
 * over a SOCK_SEQPACKET pair, and waits for an acknowledgement, then for the
 * reply. The child runs the body and finishes the task itself, through the
 * region mapping it inherited, exactly as a worker thread would; its reply
 * only reports the outcome.
 *
 * If the child dies before acknowledging (it died while idle), the task
 * never started: the dispatcher forks a replacement and hands it the task.
 * If it dies after (signal, exit, abort), the socket reads EOF: the
 * dispatcher collects the status, marks the task FAILED with it (or, when
 * the child was killed by a shutdown, returns it to PENDING), releases any
 * result chunks the child had claimed, and forks a replacement. If the
 * parent dies, the children die with it (PR_SET_PDEATHSIG) and the reaper
 * requeues the parent's tasks.
 */
#define _GNU_SOURCE
#include "workers.h"
#include "../persist/durable.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

/* How long a child may take to acknowledge a task. A live child answers
 * in microseconds; one that does not (stopped, or stuck before its loop,
 * as a child forked while another thread of the parent held a lock can
 * be) would otherwise hold its dispatcher and the task forever. */
#define ACK_TIMEOUT_MS 5000

struct msg {
    px_id id;
    uint64_t claimed;
};

struct reply {
    uint8_t outcome;
    char err[PX__ERR_MAX];
};

static void child_main(px_workers *w, unsigned me, pid_t parent)
{
    px_region *r = w->r;
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(0);
    /* The parent shuts children down itself (SIGKILL after the grace):
     * a terminal's ^C to the whole process group must not fail tasks. */
    signal(SIGINT, SIG_IGN);
    signal(SIGTERM, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    for (unsigned i = 0; i < w->o.processes; i++)
        if (i != me && w->children[i].sock >= 0)
            close(w->children[i].sock);
    int sock = w->children[me].sock;
    px__tls_reset_after_fork(r);
    if (px__proc_attach(r, PX_ROLE_WORKER) != 0 || px__durable_after_fork(r) != 0)
        _exit(1);
    struct msg m;
    struct reply rep;
    while (recv(sock, &m, sizeof m, 0) == (ssize_t)sizeof m &&
           send(sock, "A", 1, MSG_NOSIGNAL) == 1) {
        const _Atomic int *stop = px__is_daemon(r, m.id) ? &w->flags->daemon : &w->flags->all;
        rep.err[0] = '\0';
        rep.outcome =
            (uint8_t)px__run(r, m.id, m.claimed, stop, NULL, rep.err, sizeof rep.err, false);
        if (send(sock, &rep, sizeof rep, MSG_NOSIGNAL) < 0)
            break;
    }
    px__durable_detach(r);
    px__proc_detach(r);
    _exit(0);
}

/* Forks child i; the socketpair is made here so that a replacement gets a
 * fresh one. */
static int spawn(px_workers *w, unsigned i)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
        return -errno;
    struct px__child *c = &w->children[i];
    c->sock = sv[1];
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        close(sv[0]);
        close(sv[1]);
        c->sock = -1;
        return -e;
    }
    if (pid == 0) {
        close(sv[0]);
        c->sock = sv[1];
        child_main(w, i, parent);
    }
    close(sv[1]);
    c->sock = sv[0];
    /* Every receive on the dispatcher's end gives up after the
     * acknowledgement timeout (see recv_within), so that waiting for an
     * acknowledgement costs no call besides the receive itself. */
    struct timeval tv = {ACK_TIMEOUT_MS / 1000, ACK_TIMEOUT_MS % 1000 * 1000};
    setsockopt(c->sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    atomic_store(&c->pid, pid);
    return 0;
}

static void describe(int status, char *buf, size_t cap)
{
    if (WIFSIGNALED(status))
        snprintf(buf, cap, "child process killed by signal %d (%s)", WTERMSIG(status),
                 strsignal(WTERMSIG(status)));
    else if (WIFEXITED(status))
        snprintf(buf, cap, "child process exited with status %d", WEXITSTATUS(status));
    else
        snprintf(buf, cap, "child process ended (status 0x%x)", status);
}

/* Collects a dead child; its status goes to *status. */
static void collect(px_workers *w, unsigned i, int *status)
{
    struct px__child *c = &w->children[i];
    *status = 0;
    waitpid(atomic_load(&c->pid), status, 0);
    close(c->sock);
    c->sock = -1;
    atomic_store(&c->pid, 0);
}

static void replace(px_workers *w, unsigned i)
{
    int rc;
    if (!atomic_load(&w->stopping) && (rc = spawn(w, i)) != 0)
        fprintf(stderr, "pollux: cannot replace child process %u: %s\n", i, strerror(-rc));
}

/* The child died while running id: record why, then replace it. */
static enum px__outcome child_died(px_workers *w, unsigned i, px_id id, uint64_t claimed, char *err,
                                   size_t cap)
{
    int status;
    collect(w, i, &status);
    struct px__wslot *ws = &w->ws[w->o.threads + i];
    if (atomic_load(&ws->expired))
        px__limit_text(px__slot_limit_ms(w->r, &w->r->slots[PX__ID_IDX(id)]), err, cap);
    else
        describe(status, err, cap);
    bool stopped =
        atomic_load(&w->flags->all) || (atomic_load(&w->flags->daemon) && px__is_daemon(w->r, id));
    enum px__outcome out;
    if (stopped) {
        px__arena_free_stray(w->r, id, atomic_load(&w->r->slots[PX__ID_IDX(id)].args_chunk),
                             atomic_load(&w->r->slots[PX__ID_IDX(id)].args_len));
        out = px__requeue(w->r, PX__ID_IDX(id), claimed) ? PX__DONE_REQUEUED : PX__DONE_REVOKED;
    } else {
        out = px__fail_claimed(w->r, id, claimed, err);
    }
    replace(w, i);
    return out;
}

/* Waits for child i's reply for as long as its task's time limit allows,
 * then kills it: the reply is then the end of the socket. */
static void await_reply(px_workers *w, unsigned i, px_id id)
{
    uint32_t ms = px__slot_limit_ms(w->r, &w->r->slots[PX__ID_IDX(id)]);
    if (ms == 0)
        return;
    struct px__child *c = &w->children[i];
    struct pollfd p = {.fd = c->sock, .events = POLLIN};
    uint64_t end = px__mono_ns() + (uint64_t)ms * 1000000ull;
    for (;;) {
        uint64_t now = px__mono_ns();
        uint64_t ms_left = now >= end ? 0 : (end - now + 999999) / 1000000;
        int left = ms_left > (1u << 30) ? 1 << 30 : (int)ms_left;
        int rc = poll(&p, 1, left);
        if (rc > 0 || (rc < 0 && errno != EINTR))
            return;
        if (rc == 0 && px__mono_ns() >= end)
            break;
    }
    pid_t pid = atomic_load(&c->pid);
    struct px__wslot *ws = &w->ws[w->o.threads + i];
    atomic_store(&ws->expired, 2);
    atomic_fetch_add(&w->timed_out, 1);
    if (pid > 0)
        kill(pid, SIGKILL);
}

/* A receive on the dispatcher's end; -EAGAIN once ACK_TIMEOUT_MS passed
 * with nothing (SO_RCVTIMEO, set by spawn). */
static ssize_t recv_within(struct px__child *c, void *buf, size_t len)
{
    ssize_t n;
    while ((n = recv(c->sock, buf, len, 0)) < 0 && errno == EINTR)
        ;
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) ? -EAGAIN : n;
}

/* Waits for child i's acknowledgement; true once it came. A child silent
 * past ACK_TIMEOUT_MS is killed (SIGKILL ends a stopped process too); an
 * acknowledgement sent just before the kill is still read, so a task that
 * may have started is never handed to another child. */
static bool await_ack(struct px__child *c)
{
    char ack;
    ssize_t n = recv_within(c, &ack, 1);
    pid_t pid = atomic_load(&c->pid);
    if (n == -EAGAIN && pid > 0) {
        fprintf(stderr, "pollux: child process %d did not take a task within %d ms; replacing it\n",
                (int)pid, ACK_TIMEOUT_MS);
        kill(pid, SIGKILL);
        n = recv_within(c, &ack, 1); /* the raced acknowledgement, or the end */
    }
    return n == 1;
}

/* The child's reply, however long its run takes: the receive's timeout
 * only bounds each wait. */
static bool recv_reply(struct px__child *c, struct reply *rep)
{
    ssize_t n;
    while ((n = recv_within(c, rep, sizeof *rep)) == -EAGAIN)
        ;
    return n == (ssize_t)sizeof *rep;
}

/*
 * Hands a claimed task to child i and waits for the outcome. The child
 * acknowledges a task before it runs it: a child found dead before the
 * acknowledgement (it died while idle, or was killed for not answering)
 * never started the task, which goes to a replacement child instead of
 * failing. The dead child is reaped before that, so it cannot run the task
 * too, however late it would have woken.
 */
static enum px__outcome dispatch(px_workers *w, unsigned i, px_id id, uint64_t claimed,
                                 struct reply *rep)
{
    struct msg m = {id, claimed};
    for (int tries = 0; tries < 3; tries++) {
        struct px__child *c = &w->children[i];
        if (c->sock < 0)
            replace(w, i);
        if (c->sock < 0)
            break;
        if (send(c->sock, &m, sizeof m, MSG_NOSIGNAL) == (ssize_t)sizeof m && await_ack(c)) {
            await_reply(w, i, id);
            if (recv_reply(c, rep))
                return (enum px__outcome)rep->outcome;
            return child_died(w, i, id, claimed, rep->err, sizeof rep->err);
        }
        int status;
        collect(w, i, &status);
    }
    return px__requeue(w->r, PX__ID_IDX(id), claimed) ? PX__DONE_REQUEUED : PX__DONE_REVOKED;
}

struct dispatch_arg {
    px_workers *w;
    unsigned i;
};

/* Tells px__pool_start() that this dispatcher forked its first child. */
static void report_spawn(px_workers *w, int rc)
{
    pthread_mutex_lock(&w->mu);
    if (rc && !w->spawn_error)
        w->spawn_error = rc;
    w->spawned++;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->mu);
}

/*
 * A dispatcher forks its own child, and its replacements: PR_SET_PDEATHSIG
 * fires when the forking *thread* exits, so children must be forked by a
 * thread that lives as long as the pool.
 */
static void *dispatch_main(void *p)
{
    struct dispatch_arg *a = p;
    px_workers *w = a->w;
    unsigned i = a->i;
    struct px__wslot *ws = &w->ws[w->o.threads + i];
    struct px__scan scan = {.lane = i, .park = ws->park};
    uint64_t claimed;
    px_id id;
    struct reply rep;
    int rc = spawn(w, i);
    report_spawn(w, rc);
    if (rc)
        return a;
    while ((id = px__next_task(w, PX_PROCESS, &scan, &claimed)) != 0) {
        atomic_store(&ws->expired, 0);
        atomic_store(&ws->claimed, claimed);
        atomic_store(&ws->current, id);
        px__emit(w, PX_EV_START, id, NULL);
        rep.err[0] = '\0';
        struct px__stat_run sr = {0};
        if (w->r->metrics)
            px__stat_begin(w->r, id, &sr);
        enum px__outcome out = dispatch(w, i, id, claimed, &rep);
        if (w->r->metrics)
            px__stat_ran(w->r, &sr, px__ticks(w->r->tsc), out);
        px__conc_release(w->r, &scan, id);
        px__account(w, ws, id, out, rep.err);
    }
    /* Stopping: the child reads EOF, detaches and exits. */
    struct px__child *c = &w->children[i];
    if (c->sock >= 0) {
        int status;
        shutdown(c->sock, SHUT_RDWR);
        collect(w, i, &status);
    }
    return a;
}

int px__pool_start(px_workers *w)
{
    for (unsigned i = 0; i < w->o.processes; i++) {
        w->children[i].sock = -1;
        atomic_store(&w->children[i].pid, 0);
    }
    int rc = 0;
    for (unsigned i = 0; i < w->o.processes && rc == 0; i++) {
        struct dispatch_arg *a = malloc(sizeof *a);
        if (!a) {
            rc = -ENOMEM;
            break;
        }
        *a = (struct dispatch_arg){w, i};
        if ((rc = -pthread_create(&w->children[i].thread, NULL, dispatch_main, a)) != 0) {
            free(a);
            break;
        }
        w->children[i].started = true;
        w->nchildren++;
    }
    pthread_mutex_lock(&w->mu);
    while (w->spawned < w->nchildren)
        pthread_cond_wait(&w->cond, &w->mu);
    if (rc == 0)
        rc = w->spawn_error;
    pthread_mutex_unlock(&w->mu);
    return rc;
}

void px__pool_kill(px_workers *w, bool daemon_only)
{
    for (unsigned i = 0; i < w->nchildren; i++) {
        px_id id = atomic_load(&w->ws[w->o.threads + i].current);
        pid_t pid = atomic_load(&w->children[i].pid);
        if (id && pid > 0 && (!daemon_only || px__is_daemon(w->r, id)))
            kill(pid, SIGKILL);
    }
}

void px__pool_join(px_workers *w)
{
    for (unsigned i = 0; i < w->nchildren; i++) {
        void *a;
        pthread_join(w->children[i].thread, &a);
        free(a);
    }
}

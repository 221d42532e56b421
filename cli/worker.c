/*
 * pollux worker: runs the tasks of a shared library against a region.
 *
 * SIGTERM and SIGINT are blocked in every thread and taken by the main
 * thread with sigtimedwait, which also paces the summary line. On a signal
 * the workers stop gracefully (see px_workers_stop); a second signal ends
 * the process at once, and so does a thread task that ignores
 * px_should_continue() for a few seconds past the grace period. Tasks still
 * running then are returned to PENDING by the next reaper (any other worker
 * of the region), as for any process that dies.
 */
#define _GNU_SOURCE
#include "cli.h"

#include <dlfcn.h>
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SUMMARY_S 5

static void usage(FILE *f)
{
    fprintf(f, "usage: pollux worker --region NAME --lib PATH [--workers N] [--threads M]\n"
               "                     [--queues a,b] [--grace S] [--spin-us US] [--verbose]\n"
               "\n"
               "  --region NAME  region to serve (it must exist: `pollux region create`)\n"
               "  --lib PATH     shared library whose PX_TASK definitions to run\n"
               "  --workers N    child processes for PX_PROCESS tasks (default: cores)\n"
               "  --threads M    threads for PX_THREAD tasks (default: 2 * N)\n"
               "  --queues LIST  comma-separated queues to take tasks from (default: default)\n"
               "  --grace S      seconds to let running tasks finish on SIGTERM (default: 10)\n"
               "  --spin-us US   microseconds an idle thread spins before it sleeps, 1 to\n"
               "                 10000000 (default: 50); longer: less wake-up latency, more CPU\n"
               "  --verbose      a line per task start and finish\n");
}

struct opts {
    const char *region, *lib, *queues;
    unsigned workers, threads, spin_us;
    double grace;
    int verbose;
};

static int parse(int argc, char **argv, struct opts *o)
{
    static const struct option longs[] = {
        {"region", required_argument, 0, 'r'},  {"lib", required_argument, 0, 'l'},
        {"workers", required_argument, 0, 'w'}, {"threads", required_argument, 0, 't'},
        {"queues", required_argument, 0, 'q'},  {"grace", required_argument, 0, 'g'},
        {"spin-us", required_argument, 0, 's'}, {"verbose", no_argument, 0, 'v'},
        {"help", no_argument, 0, 'h'},          {0, 0, 0, 0}};
    int c;
    double v;
    optind = 1;
    while ((c = getopt_long(argc, argv, "hv", longs, NULL)) != -1) {
        switch (c) {
        case 'r':
            o->region = optarg;
            break;
        case 'l':
            o->lib = optarg;
            break;
        case 'q':
            o->queues = optarg;
            break;
        case 'v':
            o->verbose = 1;
            break;
        case 'w':
        case 't':
            if (cli_number(optarg, &v) || v < 1 || v > 4096 || v != (unsigned)v)
                return CLI_USAGE;
            *(c == 'w' ? &o->workers : &o->threads) = (unsigned)v;
            break;
        case 'g':
            if (cli_number(optarg, &o->grace))
                return CLI_USAGE;
            break;
        case 's':
            if (cli_number(optarg, &v) || v < 1 || v > 1e7 || v != (unsigned)v)
                return CLI_USAGE;
            o->spin_us = (unsigned)v;
            break;
        case 'h':
            return -1;
        default:
            return CLI_USAGE;
        }
    }
    if (optind != argc || !o->region || !o->lib)
        return CLI_USAGE;
    return 0;
}

static int verbose;

static void on_event(const px_event *ev, void *user)
{
    (void)user;
    char id[PX_ID_LEN + 1];
    px_id_format(ev->id, id);
    switch (ev->kind) {
    case PX_EV_FAILED:
        fprintf(stderr, "pollux worker: task %s (%s) failed: %s\n", id, ev->task, ev->error);
        break;
    case PX_EV_START:
        if (verbose)
            fprintf(stderr, "pollux worker: task %s (%s) started\n", id, ev->task);
        break;
    case PX_EV_SUCCESS:
        if (verbose)
            fprintf(stderr, "pollux worker: task %s (%s) succeeded\n", id, ev->task);
        break;
    case PX_EV_REQUEUED:
        fprintf(stderr, "pollux worker: task %s (%s) returned to PENDING\n", id, ev->task);
        break;
    case PX_EV_CANCELLED:
        fprintf(stderr, "pollux worker: task %s (%s) cancelled\n", id, ev->task);
        break;
    case PX_EV_RETRY:
        fprintf(stderr, "pollux worker: task %s (%s) failed, will retry: %s\n", id, ev->task,
                ev->error);
        break;
    case PX_EV_DEAD:
        fprintf(stderr, "pollux worker: task %s (%s) failed, out of retries: %s\n", id, ev->task,
                ev->error);
        break;
    }
}

/* Binds the library's PX_TASK definitions; returns how many. */
static int load_tasks(px_region *r, const char *lib)
{
    void *h = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        fprintf(stderr, "pollux: cannot load %s: %s\n", lib, dlerror());
        return -1;
    }
    const px_task_def *begin = dlsym(h, "__start_px_tasks");
    const px_task_def *end = dlsym(h, "__stop_px_tasks");
    if (!begin || !end || end <= begin) {
        fprintf(stderr, "pollux: %s defines no tasks (no PX_TASK in it)\n", lib);
        return -1;
    }
    int n = px_task_register_range(r, begin, end);
    if (n < 0) {
        fprintf(stderr, "pollux: cannot register the tasks of %s: %s\n", lib, px_strerror(n));
        return -1;
    }
    return n;
}

static void summary(px_workers *w)
{
    px_workers_stats st;
    px_workers_stats_get(w, &st);
    fprintf(stderr, "pollux worker: %llu done, %llu failed, %u running, %llu requeued\n",
            (unsigned long long)st.succeeded, (unsigned long long)st.failed, st.running,
            (unsigned long long)st.requeued);
}

static void *stopper(void *p)
{
    px_workers_stop(p);
    return NULL;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/*
 * Stops gracefully, but never waits on a task that ignores its stop flag for
 * more than a few seconds past the grace, and a second signal ends the
 * process at once. The join is taken in short steps so that the signal is
 * seen promptly.
 */
static void stop(px_workers *w, double grace, sigset_t *set)
{
    pthread_t t;
    if (pthread_create(&t, NULL, stopper, w) != 0) {
        px_workers_stop(w);
        return;
    }
    double until = now_s() + grace + 3;
    for (;;) {
        double step = now_s() + 0.1;
        struct timespec ts = {(time_t)step, (long)((step - (double)(time_t)step) * 1e9)};
        if (pthread_timedjoin_np(t, NULL, &ts) == 0)
            return;
        struct timespec zero = {0, 0};
        if (now_s() >= until || sigtimedwait(set, NULL, &zero) > 0) {
            fprintf(stderr, "pollux worker: exiting with tasks still running; the next "
                            "reaper returns them to PENDING\n");
            _exit(CLI_OK);
        }
    }
}

int cli_worker(int argc, char **argv)
{
    struct opts o = {0};
    int rc = parse(argc, argv, &o);
    if (rc) {
        usage(rc < 0 ? stdout : stderr);
        return rc < 0 ? CLI_OK : CLI_USAGE;
    }
    verbose = o.verbose;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    px_region *r;
    px_region_opts ro = {.flags = PX_REGION_ATTACH};
    if ((rc = px_region_open(o.region, &ro, &r)) != 0)
        return cli_fail(o.region, rc);
    int n = load_tasks(r, o.lib);
    if (n < 0) {
        px_region_close(r);
        return CLI_FAILED;
    }
    px_workers_opts wo = {.processes = o.workers,
                          .threads = o.threads ? o.threads : 2 * o.workers,
                          .queues = o.queues,
                          .grace_s = o.grace,
                          .spin_us = o.spin_us,
                          .on_event = on_event};
    px_workers *w;
    if ((rc = px_workers_start(r, &wo, &w)) != 0) {
        px_region_close(r);
        return cli_fail("cannot start workers", rc);
    }
    fprintf(stderr, "pollux worker: pid %d serving %s with %d tasks from %s\n", (int)getpid(),
            o.region, n, o.lib);
    struct timespec every = {SUMMARY_S, 0};
    while (sigtimedwait(&set, NULL, &every) < 0)
        summary(w);
    fprintf(stderr, "pollux worker: stopping\n");
    summary(w);
    stop(w, o.grace > 0 ? o.grace : 10, &set);
    px_region_close(r);
    return CLI_OK;
}

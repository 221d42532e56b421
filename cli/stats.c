/*
 * pollux stats --region NAME [--interval S] [--json | --prometheus]: the
 * region's counters, queue depths, latencies and workers, as text, JSON
 * lines or the Prometheus text exposition format. The snapshot it prints
 * is also what `pollux top` draws.
 */
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void usage(FILE *f)
{
    fprintf(f, "usage: pollux stats --region NAME [--interval S] [--json | --prometheus]\n"
               "\n"
               "Per queue: tasks by state, the oldest pending task's age, the counts of\n"
               "submitted, started, succeeded, failed, retried and cancelled tasks since\n"
               "the region was made, wait (enqueued to start) and run time percentiles;\n"
               "then each attached process with its worker slots busy/total. With\n"
               "--interval S (default 1; 0: none) it samples twice, S apart, and adds\n"
               "the tasks finished per second. --json prints one object per line;\n"
               "--prometheus the text exposition format. Exits 1 for an unknown region.\n");
}

int cli_snapshot_take(px_region *r, struct cli_snapshot *s)
{
    memset(s, 0, sizeof *s);
    int rc = px_region_info_get(r, &s->info);
    if (rc == 0)
        rc = px_stats(r, &s->st);
    if (rc == 0 && (rc = px_region_procs(r, s->procs, CLI_MAX_PROCS)) >= 0) {
        s->nprocs = rc < CLI_MAX_PROCS ? rc : CLI_MAX_PROCS;
        rc = 0;
    }
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    s->taken_ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
    return rc;
}

uint64_t cli_finished(const px_queue_stats *q)
{
    return q->succeeded + q->failed + q->retried;
}

double cli_rate(const struct cli_snapshot *a, const struct cli_snapshot *b, uint32_t q)
{
    if (!a || b->taken_ns <= a->taken_ns || q >= a->st.nqueues)
        return 0;
    uint64_t d = cli_finished(&b->st.queues[q]) - cli_finished(&a->st.queues[q]);
    return (double)d * 1e9 / (double)(b->taken_ns - a->taken_ns);
}

void cli_duration(uint64_t ns, char *buf, size_t cap)
{
    if (ns < 1000)
        snprintf(buf, cap, "%lluns", (unsigned long long)ns);
    else if (ns < 1000000)
        snprintf(buf, cap, "%.1fus", (double)ns / 1e3);
    else if (ns < 1000000000)
        snprintf(buf, cap, "%.1fms", (double)ns / 1e6);
    else
        snprintf(buf, cap, "%.1fs", (double)ns / 1e9);
}

static const char *const state_key[10] = {
    "",        "pending", "scheduled", "running", "retry", "cancel_requested",
    "success", "failed",  "cancelled", "dead"};

static void print_text(const char *name, const struct cli_snapshot *a, const struct cli_snapshot *s)
{
    printf("region %s durability=%s processes=%u slots=%u/%u\n", name,
           s->info.durability == PX_DURABLE_SYNC    ? "sync"
           : s->info.durability == PX_DURABLE_ASYNC ? "async"
                                                    : "none",
           s->info.processes, s->info.slots_used, s->info.capacity);
    for (uint32_t q = 0; q < s->st.nqueues; q++) {
        const px_queue_stats *qs = &s->st.queues[q];
        char old[32], w50[32], w99[32], r50[32], r99[32];
        cli_duration(qs->oldest_pending_age_ns, old, sizeof old);
        cli_duration(qs->wait.p50_ns, w50, sizeof w50);
        cli_duration(qs->wait.p99_ns, w99, sizeof w99);
        cli_duration(qs->run.p50_ns, r50, sizeof r50);
        cli_duration(qs->run.p99_ns, r99, sizeof r99);
        printf("queue %s%s pending=%llu running=%llu scheduled=%llu retry=%llu oldest=%s "
               "submitted=%llu started=%llu succeeded=%llu failed=%llu retried=%llu "
               "cancelled=%llu wait_p50=%s wait_p99=%s run_p50=%s run_p99=%s",
               qs->name, qs->paused ? " (paused)" : "",
               (unsigned long long)qs->by_state[PX_PENDING],
               (unsigned long long)qs->by_state[PX_RUNNING],
               (unsigned long long)qs->by_state[PX_SCHEDULED],
               (unsigned long long)qs->by_state[PX_RETRY], old, (unsigned long long)qs->submitted,
               (unsigned long long)qs->started, (unsigned long long)qs->succeeded,
               (unsigned long long)qs->failed, (unsigned long long)qs->retried,
               (unsigned long long)qs->cancelled, w50, w99, r50, r99);
        if (a)
            printf(" per_s=%.1f", cli_rate(a, s, q));
        printf("\n");
    }
    for (int i = 0; i < s->nprocs; i++) {
        const px_proc_info *p = &s->procs[i];
        printf("process %d %s threads=%u/%u children=%u/%u\n", (int)p->pid,
               p->role == PX_ROLE_WORKER ? "worker" : "client", p->threads_busy, p->threads,
               p->children_busy, p->children);
    }
}

static json_t *latency_json(const px_latency *l)
{
    return json_pack("{s:I, s:I, s:I, s:I, s:I}", "count", (json_int_t)l->count, "p50_ns",
                     (json_int_t)l->p50_ns, "p90_ns", (json_int_t)l->p90_ns, "p99_ns",
                     (json_int_t)l->p99_ns, "max_ns", (json_int_t)l->max_ns);
}

static void print_json(const char *name, const struct cli_snapshot *a, const struct cli_snapshot *s)
{
    cli_json_print(json_pack("{s:s, s:s, s:i, s:i, s:i, s:i}", "kind", "region", "region", name,
                             "processes", (int)s->info.processes, "slots_used",
                             (int)s->info.slots_used, "capacity", (int)s->info.capacity,
                             "durability", (int)s->info.durability));
    for (uint32_t q = 0; q < s->st.nqueues; q++) {
        const px_queue_stats *qs = &s->st.queues[q];
        json_t *o =
            json_pack("{s:s, s:s, s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:o, s:o}", "kind",
                      "queue", "queue", qs->name, "paused", qs->paused, "submitted",
                      (json_int_t)qs->submitted, "started", (json_int_t)qs->started, "succeeded",
                      (json_int_t)qs->succeeded, "failed", (json_int_t)qs->failed, "retried",
                      (json_int_t)qs->retried, "cancelled", (json_int_t)qs->cancelled,
                      "oldest_pending_age_ns", (json_int_t)qs->oldest_pending_age_ns, "wait",
                      latency_json(&qs->wait), "run", latency_json(&qs->run));
        json_t *states = json_object();
        for (int k = 1; k < 10; k++)
            json_object_set_new(states, state_key[k], json_integer((json_int_t)qs->by_state[k]));
        json_object_set_new(o, "tasks", states);
        if (a)
            json_object_set_new(o, "per_s", json_real(cli_rate(a, s, q)));
        cli_json_print(o);
    }
    for (int i = 0; i < s->nprocs; i++) {
        const px_proc_info *p = &s->procs[i];
        cli_json_print(json_pack("{s:s, s:i, s:s, s:i, s:i, s:i, s:i}", "kind", "process", "pid",
                                 (int)p->pid, "role",
                                 p->role == PX_ROLE_WORKER ? "worker" : "client", "threads",
                                 (int)p->threads, "threads_busy", (int)p->threads_busy, "children",
                                 (int)p->children, "children_busy", (int)p->children_busy));
    }
}

/* A label value, escaped as the exposition format asks. */
static void label(const char *key, const char *v)
{
    printf("%s=\"", key);
    for (; *v; v++) {
        if (*v == '\\' || *v == '"')
            printf("\\%c", *v);
        else if (*v == '\n')
            printf("\\n");
        else
            putchar(*v);
    }
    putchar('"');
}

static void metric(const char *name, const char *region, const char *queue, const char *k2,
                   const char *v2, double value)
{
    printf("%s{", name);
    label("region", region);
    if (queue) {
        putchar(',');
        label("queue", queue);
    }
    if (k2) {
        putchar(',');
        label(k2, v2);
    }
    printf("} %.17g\n", value);
}

static void print_latency_prom(const char *name, const char *region, const char *queue,
                               const px_latency *l)
{
    static const char *const qs[] = {"0.5", "0.9", "0.99"};
    const uint64_t v[] = {l->p50_ns, l->p90_ns, l->p99_ns};
    for (int i = 0; i < 3; i++)
        metric(name, region, queue, "quantile", qs[i], (double)v[i] / 1e9);
    char count[96];
    snprintf(count, sizeof count, "%s_count", name);
    metric(count, region, queue, NULL, NULL, (double)l->count);
}

static void print_prometheus(const char *region, const struct cli_snapshot *s)
{
    static const char *const events[] = {"submitted", "started", "succeeded",
                                         "failed",    "retried", "cancelled"};
    printf("# HELP pollux_tasks_total Task events per queue since the region was made.\n"
           "# TYPE pollux_tasks_total counter\n");
    for (uint32_t q = 0; q < s->st.nqueues; q++) {
        const px_queue_stats *qs = &s->st.queues[q];
        const uint64_t v[] = {qs->submitted, qs->started, qs->succeeded,
                              qs->failed,    qs->retried, qs->cancelled};
        for (int e = 0; e < 6; e++)
            metric("pollux_tasks_total", region, qs->name, "event", events[e], (double)v[e]);
    }
    printf("# HELP pollux_tasks Tasks per queue and state now.\n# TYPE pollux_tasks gauge\n");
    for (uint32_t q = 0; q < s->st.nqueues; q++)
        for (int k = 1; k < 10; k++)
            metric("pollux_tasks", region, s->st.queues[q].name, "state", state_key[k],
                   (double)s->st.queues[q].by_state[k]);
    printf("# HELP pollux_queue_oldest_pending_seconds Age of the oldest pending task.\n"
           "# TYPE pollux_queue_oldest_pending_seconds gauge\n");
    for (uint32_t q = 0; q < s->st.nqueues; q++)
        metric("pollux_queue_oldest_pending_seconds", region, s->st.queues[q].name, NULL, NULL,
               (double)s->st.queues[q].oldest_pending_age_ns / 1e9);
    printf("# HELP pollux_task_wait_seconds Enqueued (or due) to start.\n"
           "# TYPE pollux_task_wait_seconds summary\n");
    for (uint32_t q = 0; q < s->st.nqueues; q++)
        print_latency_prom("pollux_task_wait_seconds", region, s->st.queues[q].name,
                           &s->st.queues[q].wait);
    printf("# HELP pollux_task_run_seconds Start to finish.\n"
           "# TYPE pollux_task_run_seconds summary\n");
    for (uint32_t q = 0; q < s->st.nqueues; q++)
        print_latency_prom("pollux_task_run_seconds", region, s->st.queues[q].name,
                           &s->st.queues[q].run);
    printf("# HELP pollux_worker_slots Worker slots of attached processes.\n"
           "# TYPE pollux_worker_slots gauge\n");
    for (int i = 0; i < s->nprocs; i++) {
        const px_proc_info *p = &s->procs[i];
        char pid[16];
        snprintf(pid, sizeof pid, "%d", (int)p->pid);
        const char *kinds[] = {"thread_total", "thread_busy", "process_total", "process_busy"};
        const uint32_t v[] = {p->threads, p->threads_busy, p->children, p->children_busy};
        for (int k = 0; k < 4; k++) {
            printf("pollux_worker_slots{");
            label("region", region);
            putchar(',');
            label("pid", pid);
            putchar(',');
            label("slots", kinds[k]);
            printf("} %u\n", v[k]);
        }
    }
}

int cli_stats(int argc, char **argv)
{
    static const struct option longs[] = {
        {"region", required_argument, NULL, 'r'}, {"interval", required_argument, NULL, 'i'},
        {"json", no_argument, NULL, 'j'},         {"prometheus", no_argument, NULL, 'p'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0}};
    const char *name = NULL;
    double interval = 1;
    bool json = false, prom = false;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", longs, NULL)) != -1) {
        if (c == 'r')
            name = optarg;
        else if (c == 'i' && cli_number(optarg, &interval) == 0 && interval <= 3600)
            continue;
        else if (c == 'j')
            json = true;
        else if (c == 'p')
            prom = true;
        else if (c == 'h') {
            usage(stdout);
            return CLI_OK;
        } else {
            usage(stderr);
            return CLI_USAGE;
        }
    }
    if (!name || optind != argc || (json && prom)) {
        usage(stderr);
        return CLI_USAGE;
    }
    px_region *r;
    int rc = px_region_open(name, &(px_region_opts){.flags = PX_REGION_ATTACH}, &r);
    if (rc)
        return cli_fail(name, rc);
    struct cli_snapshot *s = calloc(2, sizeof *s);
    if (!s || (rc = cli_snapshot_take(r, &s[0])) != 0) {
        free(s);
        px_region_close(r);
        return cli_fail(name, rc ? rc : -ENOMEM);
    }
    bool sampled = interval > 0 && !prom;
    if (sampled) {
        struct timespec ts = {(time_t)interval,
                              (long)((interval - (double)(time_t)interval) * 1e9)};
        nanosleep(&ts, NULL);
        rc = cli_snapshot_take(r, &s[1]);
    }
    px_region_close(r);
    const struct cli_snapshot *a = sampled ? &s[0] : NULL, *b = sampled ? &s[1] : &s[0];
    if (rc == 0) {
        if (prom)
            print_prometheus(name, b);
        else if (json)
            print_json(name, a, b);
        else
            print_text(name, a, b);
    }
    free(s);
    return rc ? cli_fail(name, rc) : CLI_OK;
}

/*
 * pollux stats and pollux top against a region with a real worker: the
 * counts and states they print (text, JSON parsed back, the Prometheus
 * format), and the dashboard both as one --once frame and live in a tmux
 * pane, where a known task's id must appear and `q` must end it.
 */
#include "it.h"

#include <jansson.h>

static char out[65536], bin[512], session[64], want[160];

static void fini(void)
{
    if (session[0]) {
        char *kill[] = {"/usr/bin/tmux", "kill-session", "-t", session, NULL};
        char tmp[256];
        it_run(kill, tmp, sizeof tmp, 5);
    }
    it_cleanup();
}

TestSuite(cli_top, .fini = fini, .timeout = 60);

static int echo(px_ctx *ctx, const void *a, size_t n)
{
    return px_result(ctx, a, n);
}

static int boom(px_ctx *ctx, const void *a, size_t n)
{
    (void)a, (void)n;
    return px_fail(ctx, "kaboom on purpose");
}

static const px_task_def defs[] = {
    {.name = "echo", .fn = echo, .mode = PX_THREAD},
    {.name = "boom", .fn = boom, .mode = PX_THREAD, .queue = "risky"},
};

/* A region with a worker that ran 20 echoes and one failure; *known is
 * one echo's id. */
static px_region *busy_region(px_workers **w, px_id *known)
{
    it_bin(bin, sizeof bin, "pollux");
    px_region *r = it_region_new(NULL);
    cr_assert_eq(px_task_register_range(r, defs, defs + 2), 2);
    cr_assert_eq(
        px_workers_start(
            r, &(px_workers_opts){.threads = 2, .processes = 1, .queues = "default,risky"}, w),
        0);
    px_id ids[20], bad;
    for (int i = 0; i < 20; i++)
        cr_assert_eq(px_submit(r, "echo", "hi", 2, NULL, &ids[i]), 0);
    cr_assert_eq(px_submit(r, "boom", NULL, 0, NULL, &bad), 0);
    for (int i = 0; i < 20; i++)
        cr_assert_eq(px_join(r, ids[i], 5, NULL, 0, NULL), 0);
    cr_assert_eq(px_join(r, bad, 5, NULL, 0, NULL), PX_ETASKFAILED);
    *known = ids[19];
    return r;
}

Test(cli_top, stats_prints_counts_states_and_workers_three_ways)
{
    px_workers *w;
    px_id known;
    px_region *r = busy_region(&w, &known);
    char *text[] = {bin, "stats", "--region", it_region, "--interval", "0", NULL};
    cr_assert_eq(it_run(text, out, sizeof out, 10), 0, "%s", out);
    cr_assert(strstr(out, "queue default pending=0 running=0"), "%s", out);
    cr_assert(strstr(out, "submitted=20 started=20 succeeded=20 failed=0"), "%s", out);
    cr_assert(strstr(out, "queue risky"), "%s", out);

    snprintf(want, sizeof want, "process %d worker threads=0/2 children=0/1", (int)getpid());
    cr_assert(strstr(out, want), "%s not in %s", want, out);

    char *js[] = {bin, "stats", "--region", it_region, "--interval", "0.1", "--json", NULL};
    cr_assert_eq(it_run(js, out, sizeof out, 10), 0, "%s", out);
    int queues = 0;
    for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
        json_error_t err;
        json_t *o = json_loads(line, 0, &err);
        cr_assert(o, "not JSON: %s", line);
        const char *kind = json_string_value(json_object_get(o, "kind"));
        cr_assert(kind);
        if (!strcmp(kind, "queue") &&
            !strcmp(json_string_value(json_object_get(o, "queue")), "risky")) {
            queues++;
            cr_assert_eq(json_integer_value(json_object_get(o, "failed")), 1);
            cr_assert_eq(json_integer_value(json_object_get(json_object_get(o, "tasks"), "failed")),
                         1);
            cr_assert(json_is_real(json_object_get(o, "per_s")));
            cr_assert_eq(json_integer_value(json_object_get(json_object_get(o, "run"), "count")),
                         1);
        }
        json_decref(o);
    }
    cr_assert_eq(queues, 1);

    char *prom[] = {bin, "stats", "--region", it_region, "--prometheus", NULL};
    cr_assert_eq(it_run(prom, out, sizeof out, 10), 0, "%s", out);
    cr_assert(strstr(out, "# TYPE pollux_tasks_total counter"), "%s", out);
    snprintf(want, sizeof want, "region=\"%s\",queue=\"default\",event=\"succeeded\"} 20",
             it_region);
    cr_assert(strstr(out, want), "%s not in %s", want, out);
    cr_assert(strstr(out, "pollux_task_run_seconds{"), "%s", out);
    cr_assert(strstr(out, "quantile=\"0.99\"}"), "%s", out);

    char *info[] = {bin, "region", "info", it_region, "--json", NULL};
    cr_assert_eq(it_run(info, out, sizeof out, 10), 0, "%s", out);
    json_error_t err;
    json_t *o = json_loads(out, 0, &err);
    cr_assert(o, "not JSON: %s", out);
    cr_assert_str_eq(json_string_value(json_object_get(o, "durability")), "none");
    json_t *procs = json_object_get(o, "processes"), *p;
    size_t k;
    int mine = 0;
    json_array_foreach(procs, k, p)
    {
        if (json_integer_value(json_object_get(p, "pid")) == getpid()) {
            mine++;
            cr_assert_str_eq(json_string_value(json_object_get(p, "role")), "worker");
            cr_assert_eq(json_integer_value(json_object_get(p, "threads")), 2);
            cr_assert_eq(json_integer_value(json_object_get(p, "children")), 1);
        }
    }
    cr_assert_eq(mine, 1, "%s", out);
    json_decref(o);
    char *text_info[] = {bin, "region", "info", it_region, NULL};
    cr_assert_eq(it_run(text_info, out, sizeof out, 10), 0, "%s", out);
    snprintf(want, sizeof want, "pid %-8d worker threads 0/2 busy, processes 0/1 busy",
             (int)getpid());
    cr_assert(strstr(out, want), "%s not in %s", want, out);

    char *both[] = {bin, "stats", "--region", it_region, "--json", "--prometheus", NULL};
    cr_assert_eq(it_run(both, out, sizeof out, 10), 2, "%s", out);
    char *none[] = {bin, "stats", "--region", "/px-no-such-region", NULL};
    cr_assert_eq(it_run(none, out, sizeof out, 10), 1, "%s", out);
    cr_assert_eq(px_workers_stop(w), 0);
    px_region_close(r);
}

Test(cli_top, top_once_prints_every_section_and_the_latest_tasks)
{
    px_workers *w;
    px_id known;
    px_region *r = busy_region(&w, &known);
    char id[PX_ID_LEN + 1];
    px_id_format(known, id);
    char *once[] = {bin, "top", it_region, "--once", NULL};
    cr_assert_eq(it_run(once, out, sizeof out, 10), 0, "%s", out);
    const char *sections[] = {"POLLUX", "WORKERS", "QUEUES", "THROUGHPUT", "TASKS", "FAILURES"};
    for (size_t i = 0; i < 6; i++)
        cr_assert(strstr(out, sections[i]), "no %s in %s", sections[i], out);
    cr_assert(strstr(out, id), "task %s not listed: %s", id, out);
    cr_assert(strstr(out, "kaboom on purpose"), "the failure's text: %s", out);
    char *bad[] = {bin, "top", "--region", it_region, "--interval", "0", NULL};
    cr_assert_eq(it_run(bad, out, sizeof out, 10), 2, "%s", out);
    cr_assert_eq(px_workers_stop(w), 0);
    px_region_close(r);
}

/* The pane's text now. */
static void capture(void)
{
    char *cap[] = {"/usr/bin/tmux", "capture-pane", "-p", "-t", session, NULL};
    cr_assert_eq(it_run(cap, out, sizeof out, 5), 0, "%s", out);
}

Test(cli_top, top_is_live_in_a_terminal_and_q_quits)
{
    px_workers *w;
    px_id known;
    px_region *r = busy_region(&w, &known);
    char id[PX_ID_LEN + 1], cmd[1024];
    px_id_format(known, id);
    snprintf(session, sizeof session, "pxtop%d", (int)getpid());
    snprintf(cmd, sizeof cmd, "%s top --region %s --interval 0.2", bin, it_region);
    char *start[] = {"/usr/bin/tmux", "new-session", "-d", "-s", session, "-x",
                     "200",           "-y",          "50", cmd,  NULL};
    cr_assert_eq(it_run(start, out, sizeof out, 5), 0, "tmux: %s", out);
    double end = it_now() + 10;
    do {
        usleep(200000);
        capture();
    } while ((!strstr(out, "QUEUES") || !strstr(out, id)) && it_now() < end);
    cr_assert(strstr(out, "POLLUX") && strstr(out, "WORKERS") && strstr(out, "QUEUES") &&
                  strstr(out, "TASKS"),
              "%s", out);
    cr_assert(strstr(out, id), "task %s not shown: %s", id, out);
    /* New work shows up while it runs. */
    px_id fresh;
    cr_assert_eq(px_submit(r, "echo", "x", 1, NULL, &fresh), 0);
    cr_assert_eq(px_join(r, fresh, 5, NULL, 0, NULL), 0);
    char fid[PX_ID_LEN + 1];
    px_id_format(fresh, fid);
    end = it_now() + 10;
    do {
        usleep(200000);
        capture();
    } while (!strstr(out, fid) && it_now() < end);
    cr_assert(strstr(out, fid), "the new task %s did not appear: %s", fid, out);
    char *q[] = {"/usr/bin/tmux", "send-keys", "-t", session, "q", NULL};
    cr_assert_eq(it_run(q, out, sizeof out, 5), 0);
    char *has[] = {"/usr/bin/tmux", "has-session", "-t", session, NULL};
    end = it_now() + 5;
    int alive;
    while ((alive = it_run(has, out, sizeof out, 5)) == 0 && it_now() < end)
        usleep(100000);
    cr_assert_neq(alive, 0, "q did not end pollux top");
    session[0] = '\0';
    cr_assert_eq(px_workers_stop(w), 0);
    px_region_close(r);
}

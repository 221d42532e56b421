/*
 * pollux status, inspect, join and list: look at tasks and schedules by
 * id, or list the tasks of a region.
 */
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static void status_usage(FILE *f)
{
    fprintf(f, "usage: pollux status --region NAME ID\n"
               "\n"
               "Prints the task's state (PENDING, SCHEDULED, RUNNING, RETRY,\n"
               "CANCEL_REQUESTED, SUCCESS, FAILED, CANCELLED or DEAD), or for a recurring\n"
               "schedule \"schedule active|ended|cancelled\".\n"
               "Exits 1 for an unknown id, 2 for a malformed one.\n");
}

static void inspect_usage(FILE *f)
{
    fprintf(f, "usage: pollux inspect --region NAME ID [--json]\n"
               "\n"
               "Prints what the region knows of a task, one \"key: value\" a line (\"-\"\n"
               "for none): its task, queue, state, mode, priority, attempts, worker pid,\n"
               "result length, when it was enqueued, started and finished (UTC), how long\n"
               "it waited (wait_s) and ran (run_s), its next run, the schedule that made\n"
               "it and its error. For a schedule's id, the schedule. --json prints one\n"
               "object with the same keys, and the times in nanoseconds as KEY_ns.\n"
               "Exits 1 for an unknown id, 2 for a malformed one.\n");
}

static void join_usage(FILE *f)
{
    fprintf(f, "usage: pollux join --region NAME ID [--timeout S] [--hex] [--json]\n"
               "\n"
               "Waits up to S seconds (default forever) for the task to finish and prints\n"
               "its result bytes as they are, or in hex. --json prints one object: id,\n"
               "state, and result_hex (and result when it is UTF-8) or error.\n"
               "Exits 1 if the task failed (its error goes to stderr), was cancelled or\n"
               "did not finish in time, or is unknown; 2 for a malformed id.\n");
}

static void list_usage(FILE *f)
{
    fprintf(f, "usage: pollux list --region NAME [--state S] [--queue Q] [--task T]\n"
               "                  [--limit N] [--json]\n"
               "\n"
               "Lists the tasks in slot order, one line each: \"ID STATE TASK queue=Q\n"
               "attempts=N\", or one JSON object a line. S is a state as `pollux status`\n"
               "prints it, in any case. An unknown queue or task lists nothing.\n");
}

const char *cli_priority_name(int p)
{
    static const char *const names[] = {"?", "lowest", "low", "normal", "high", "highest"};
    return p >= PX_PRIORITY_LOWEST && p <= PX_PRIORITY_HIGHEST ? names[p] : names[0];
}

/* ---- Options ------------------------------------------------------------- */

struct view_args {
    const char *region, *id_text, *queue, *task;
    px_id id;
    int state;
    double timeout_s, limit;
    bool json, hex;
};

static int parse_state(const char *s, int *out)
{
    for (int st = PX_PENDING; st <= PX_DEAD; st++)
        if (!strcasecmp(s, px_state_name(st))) {
            *out = st;
            return 0;
        }
    fprintf(stderr, "pollux: unknown state '%s'\n", s);
    return -EINVAL;
}

static int view_opt(int c, struct view_args *a)
{
    switch (c) {
    case 'r':
        a->region = optarg;
        return 0;
    case 'q':
        a->queue = optarg;
        return 0;
    case 't':
        a->task = optarg;
        return 0;
    case 's':
        return parse_state(optarg, &a->state);
    case 'l':
        return cli_number(optarg, &a->limit) || a->limit < 1 || a->limit > 1e9 ||
                       a->limit != (double)(long)a->limit
                   ? -EINVAL
                   : 0;
    case 'T':
        return cli_number(optarg, &a->timeout_s);
    case 'j':
        a->json = true;
        return 0;
    case 'x':
        a->hex = true;
        return 0;
    }
    return -EINVAL;
}

/* Parses the options a command allows (longs) and, if it takes one, the id.
 * 0, 1 for --help, -1 for a usage error. */
static int parse(int argc, char **argv, const struct option *longs, bool with_id,
                 struct view_args *a)
{
    *a = (struct view_args){.timeout_s = -1};
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "h", longs, NULL)) != -1) {
        if (c == 'h')
            return 1;
        if (view_opt(c, a) != 0)
            return -1;
    }
    if (with_id && optind < argc)
        a->id_text = argv[optind++];
    if (optind != argc || !a->region || with_id != (a->id_text != NULL))
        return -1;
    if (with_id && px_id_parse(a->id_text, &a->id) != 0) {
        fprintf(stderr, "pollux: '%s' is not an id (gggggggg-ssssssss)\n", a->id_text);
        return -1;
    }
    return 0;
}

/* Runs one command: parse, then act on the attached region. */
static int run(int argc, char **argv, const struct option *longs, bool with_id,
               void (*usage)(FILE *), int (*act)(px_region *, const struct view_args *))
{
    struct view_args a;
    int rc = parse(argc, argv, longs, with_id, &a);
    if (rc != 0) {
        usage(rc > 0 ? stdout : stderr);
        return rc > 0 ? CLI_OK : CLI_USAGE;
    }
    px_region *r;
    if (cli_attach(a.region, &r))
        return CLI_FAILED;
    rc = act(r, &a);
    px_region_close(r);
    return rc;
}

#define OPT_REGION                                                                                 \
    {                                                                                              \
        "region", required_argument, NULL, 'r'                                                     \
    }
#define OPT_JSON                                                                                   \
    {                                                                                              \
        "json", no_argument, NULL, 'j'                                                             \
    }
#define OPT_HELP                                                                                   \
    {                                                                                              \
        "help", no_argument, NULL, 'h'                                                             \
    }
#define OPT_END                                                                                    \
    {                                                                                              \
        NULL, 0, NULL, 0                                                                           \
    }

/* ---- status -------------------------------------------------------------- */

static const char *schedule_state(px_schedule_state st)
{
    return st == PX_SCHEDULE_ACTIVE ? "active" : st == PX_SCHEDULE_ENDED ? "ended" : "cancelled";
}

static int status(px_region *r, const struct view_args *a)
{
    px_schedule_info si;
    if (px_schedule_get(r, a->id, &si) == 0) {
        printf("schedule %s\n", schedule_state(si.state));
        return CLI_OK;
    }
    int st = px_status(r, a->id);
    if (st < 0)
        return cli_fail(a->id_text, st);
    printf("%s\n", px_state_name(st));
    return CLI_OK;
}

int cli_status(int argc, char **argv)
{
    static const struct option longs[] = {OPT_REGION, OPT_HELP, OPT_END};
    return run(argc, argv, longs, true, status_usage, status);
}

/* ---- inspect -------------------------------------------------------------- */

/* KEY as UTC text and KEY_ns, or both null when ns is 0 (never). */
static void set_time(json_t *o, const char *key, uint64_t ns)
{
    char when[40], key_ns[40];
    cli_utc_text(ns, when, sizeof when);
    snprintf(key_ns, sizeof key_ns, "%s_ns", key);
    json_object_set_new(o, key, ns ? json_string(when) : json_null());
    json_object_set_new(o, key_ns, ns ? json_integer((json_int_t)ns) : json_null());
}

/* Seconds from a to b, or null unless both happened. */
static json_t *span(uint64_t a, uint64_t b)
{
    return a && b >= a ? json_real((double)(b - a) / 1e9) : json_null();
}

static json_t *id_json(px_id id)
{
    char text[PX_ID_LEN + 1];
    px_id_format(id, text);
    return id ? json_string(text) : json_null();
}

static json_t *task_json(const px_task_info *ti)
{
    json_t *o = json_object();
    json_object_set_new(o, "id", id_json(ti->id));
    json_object_set_new(o, "kind", json_string("task"));
    json_object_set_new(o, "task", json_string(ti->name));
    json_object_set_new(o, "queue", json_string(ti->queue));
    json_object_set_new(o, "state", json_string(px_state_name((int)ti->state)));
    json_object_set_new(o, "mode", json_string(ti->mode == PX_PROCESS ? "process" : "thread"));
    json_object_set_new(o, "priority", json_string(cli_priority_name((int)ti->priority)));
    json_object_set_new(o, "attempts", json_integer(ti->attempts));
    json_object_set_new(o, "worker_pid", json_integer(ti->worker_pid));
    json_object_set_new(o, "result_len", json_integer(ti->result_len));
    set_time(o, "enqueued", ti->enqueued_ns);
    set_time(o, "started", ti->started_ns);
    set_time(o, "finished", ti->finished_ns);
    json_object_set_new(o, "wait_s", span(ti->enqueued_ns, ti->started_ns));
    json_object_set_new(o, "run_s", span(ti->started_ns, ti->finished_ns));
    set_time(o, "next_run", ti->next_run_ns);
    json_object_set_new(o, "schedule", id_json(ti->schedule));
    json_object_set_new(o, "error", ti->error[0] ? json_string(ti->error) : json_null());
    return o;
}

static json_t *schedule_json(const px_schedule_info *si)
{
    json_t *o = json_object();
    json_object_set_new(o, "id", id_json(si->id));
    json_object_set_new(o, "kind", json_string("schedule"));
    json_object_set_new(o, "task", json_string(si->task));
    json_object_set_new(o, "queue", json_string(si->queue));
    json_object_set_new(o, "state", json_string(schedule_state(si->state)));
    json_object_set_new(o, "priority", json_string(cli_priority_name((int)si->priority)));
    json_object_set_new(o, "every_s", si->cron[0] ? json_null() : json_real(si->every_s));
    json_object_set_new(o, "cron", si->cron[0] ? json_string(si->cron) : json_null());
    json_object_set_new(o, "tz",
                        si->cron[0] ? json_string(si->tz[0] ? si->tz : "UTC") : json_null());
    json_object_set_new(o, "times", si->times ? json_integer(si->times) : json_null());
    json_object_set_new(o, "made", json_integer(si->made));
    set_time(o, "until", si->until_unix_ns);
    json_object_set_new(o, "missed", json_string(si->missed == PX_MISSED_SKIP ? "skip" : "once"));
    set_time(o, "next_run", si->next_run_ns);
    json_object_set_new(o, "last_run", id_json(si->next_id));
    return o;
}

/* The text form shows the JSON object's keys in order, but not the *_ns
 * twins of the times, which only programs want. */
static void print_keys(json_t *o)
{
    const char *key;
    json_t *v;
    json_object_foreach(o, key, v)
    {
        size_t n = strlen(key);
        if (n > 3 && !strcmp(key + n - 3, "_ns"))
            continue;
        if (json_is_string(v))
            printf("%s: %s\n", key, json_string_value(v));
        else if (json_is_integer(v))
            printf("%s: %lld\n", key, (long long)json_integer_value(v));
        else if (json_is_real(v))
            printf("%s: %.6f\n", key, json_real_value(v));
        else
            printf("%s: -\n", key);
    }
}

static int inspect(px_region *r, const struct view_args *a)
{
    px_schedule_info si;
    px_task_info ti;
    json_t *o = NULL;
    int rc = px_schedule_get(r, a->id, &si);
    if (rc == 0)
        o = schedule_json(&si);
    else if ((rc = px_info(r, a->id, &ti)) == 0)
        o = task_json(&ti);
    if (rc)
        return cli_fail(a->id_text, rc);
    if (a->json)
        return cli_json_print(o) ? cli_fail("inspect", -ENOMEM) : CLI_OK;
    print_keys(o);
    json_decref(o);
    return CLI_OK;
}

int cli_inspect(int argc, char **argv)
{
    static const struct option longs[] = {OPT_REGION, OPT_JSON, OPT_HELP, OPT_END};
    return run(argc, argv, longs, true, inspect_usage, inspect);
}

/* ---- join ------------------------------------------------------------------- */

static int join(px_region *r, const struct view_args *a)
{
    return cli_join_print(r, a->id, a->timeout_s, a->hex, a->json);
}

int cli_join(int argc, char **argv)
{
    static const struct option longs[] = {OPT_REGION,
                                          {"timeout", required_argument, NULL, 'T'},
                                          {"hex", no_argument, NULL, 'x'},
                                          OPT_JSON,
                                          OPT_HELP,
                                          OPT_END};
    return run(argc, argv, longs, true, join_usage, join);
}

/* ---- list ------------------------------------------------------------------- */

static int print_task(const px_task_info *ti, bool json)
{
    if (json)
        return cli_json_print(json_pack("{s:o, s:s, s:s, s:s, s:i, s:s}", "id", id_json(ti->id),
                                        "state", px_state_name((int)ti->state), "task", ti->name,
                                        "queue", ti->queue, "attempts", (int)ti->attempts,
                                        "priority", cli_priority_name((int)ti->priority)));
    char id[PX_ID_LEN + 1];
    px_id_format(ti->id, id);
    printf("%s %s %s queue=%s attempts=%u\n", id, px_state_name((int)ti->state), ti->name,
           ti->queue, ti->attempts);
    return 0;
}

/* Pages through px_list, printing as it goes, up to the limit. A task that
 * is gone by the time px_info reads it is not printed. */
static int list(px_region *r, const struct view_args *a)
{
    px_list_opts o = {.state = a->state, .queue = a->queue, .task = a->task};
    size_t left = a->limit ? (size_t)a->limit : SIZE_MAX;
    px_id ids[256];
    uint32_t cursor = 0;
    for (;;) {
        size_t want = left < 256 ? left : 256;
        int k = px_list(r, &o, ids, want, &cursor);
        if (k < 0)
            return cli_fail("list", k);
        for (int i = 0; i < k && left; i++) {
            px_task_info ti;
            if (px_info(r, ids[i], &ti) != 0)
                continue;
            if (print_task(&ti, a->json))
                return cli_fail("list", -ENOMEM);
            left--;
        }
        if ((size_t)k < want || !left)
            return CLI_OK; /* it stopped short: it read the last slot */
    }
}

int cli_list(int argc, char **argv)
{
    static const struct option longs[] = {OPT_REGION,
                                          {"state", required_argument, NULL, 's'},
                                          {"queue", required_argument, NULL, 'q'},
                                          {"task", required_argument, NULL, 't'},
                                          {"limit", required_argument, NULL, 'l'},
                                          OPT_JSON,
                                          OPT_HELP,
                                          OPT_END};
    return run(argc, argv, longs, false, list_usage, list);
}

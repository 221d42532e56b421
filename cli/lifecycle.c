/*
 * pollux dead ... and pollux schedule ...: the dead-letter set and the
 * tasks waiting for their time, from a terminal.
 */
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void dead_usage(FILE *f)
{
    fprintf(f, "usage: pollux dead list --region NAME [--task T] [--queue Q] [--json]\n"
               "       pollux dead retry --region NAME ID|--all\n"
               "       pollux dead purge --region NAME ID|--all\n"
               "\n"
               "Dead tasks failed with their retries used up (max_retries). list prints\n"
               "each with its attempts, last error and args; retry runs them again under\n"
               "their ids (attempts from 0); purge frees them.\n"
               "Exits 1 if a task is unknown or not dead, 2 on a usage error.\n");
}

static void schedule_usage(FILE *f)
{
    fprintf(f, "usage: pollux schedule list --region NAME [--task T] [--queue Q] [--json]\n"
               "       pollux schedule cancel --region NAME ID\n"
               "\n"
               "list prints the recurring schedules (every or cron, with their next run\n"
               "time and runs made), then the tasks waiting for their time, SCHEDULED\n"
               "(delayed) and RETRY (failed, to run again), by next run time.\n"
               "cancel stops a schedule: no more runs. Exits 1 for an unknown id.\n");
}

struct args {
    const char *region, *task, *queue, *id;
    bool json, all;
};

/* Parses the options after `dead VERB` or `schedule VERB`. */
static int parse(int argc, char **argv, struct args *a)
{
    static const struct option longs[] = {{"region", required_argument, NULL, 'r'},
                                          {"task", required_argument, NULL, 't'},
                                          {"queue", required_argument, NULL, 'q'},
                                          {"json", no_argument, NULL, 'j'},
                                          {"all", no_argument, NULL, 'a'},
                                          {"help", no_argument, NULL, 'h'},
                                          {NULL, 0, NULL, 0}};
    *a = (struct args){0};
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "r:t:q:jah", longs, NULL)) != -1) {
        switch (c) {
        case 'r':
            a->region = optarg;
            break;
        case 't':
            a->task = optarg;
            break;
        case 'q':
            a->queue = optarg;
            break;
        case 'j':
            a->json = true;
            break;
        case 'a':
            a->all = true;
            break;
        case 'h':
            return 1;
        default:
            return -1;
        }
    }
    if (optind < argc)
        a->id = argv[optind++];
    return optind == argc && a->region ? 0 : -1;
}

/* Every task of one state (matching the filters), in slot order. The
 * caller frees *ids. */
static int collect(px_region *r, int state, const struct args *a, px_id **ids, size_t *n)
{
    px_list_opts o = {.state = state, .queue = a->queue, .task = a->task};
    size_t cap = 0;
    *ids = NULL;
    *n = 0;
    for (uint32_t cursor = 0;;) {
        if (*n == cap) {
            cap = cap ? cap * 2 : 256;
            px_id *more = realloc(*ids, cap * sizeof **ids);
            if (!more)
                return -ENOMEM;
            *ids = more;
        }
        int k = px_list(r, &o, *ids + *n, cap - *n, &cursor);
        if (k < 0)
            return k;
        *n += (size_t)k;
        if (*n < cap)
            return 0; /* the list stopped short of cap: it reached the end */
    }
}

/* A task as listed: what px_info knows and, for a dead one, its args. */
struct row {
    px_task_info ti;
    char *args;
    size_t args_len;
};

static int load_row(px_region *r, px_id id, bool with_args, struct row *w)
{
    *w = (struct row){0};
    int rc = px_info(r, id, &w->ti);
    if (rc || !with_args)
        return rc;
    size_t len = 0;
    rc = px_task_args(r, id, NULL, 0, &len);
    if (rc && rc != -ENOBUFS)
        return rc;
    if (!(w->args = malloc(len ? len : 1)))
        return -ENOMEM;
    w->args_len = len;
    return px_task_args(r, id, w->args, len, &w->args_len);
}

static json_t *row_json(const struct row *w)
{
    char id[PX_ID_LEN + 1];
    const px_task_info *ti = &w->ti;
    px_id_format(ti->id, id);
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:i, s:s}", "id", id, "task", ti->name, "queue",
                          ti->queue, "state", px_state_name((int)ti->state), "attempts",
                          (int)ti->attempts, "error", ti->error);
    if (o && ti->next_run_ns) {
        char when[40];
        cli_utc_text(ti->next_run_ns, when, sizeof when);
        json_object_set_new(o, "next_run", json_string(when));
        json_object_set_new(o, "next_run_ns", json_integer((json_int_t)ti->next_run_ns));
    }
    if (o && w->args) {
        char *hex = malloc(2 * w->args_len + 1);
        for (size_t i = 0; hex && i < w->args_len; i++)
            snprintf(hex + 2 * i, 3, "%02x", (unsigned char)w->args[i]);
        if (hex) {
            hex[2 * w->args_len] = '\0';
            json_object_set_new(o, "args_hex", json_string(hex));
        }
        free(hex);
    }
    return o;
}

/* One line per task: a JSON object, or "ID TASK STATE key=value ..." with
 * text values quoted and unprintable bytes escaped. */
static void put_quoted(const char *key, const char *p, size_t n)
{
    printf(" %s=\"", key);
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)p[i];
        if (ch >= 0x20 && ch < 0x7f && ch != '"' && ch != '\\')
            putchar(ch);
        else
            printf("\\x%02x", ch);
    }
    putchar('"');
}

static int print_row(const struct row *w, bool as_json)
{
    if (as_json)
        return cli_json_print(row_json(w));
    char id[PX_ID_LEN + 1];
    px_id_format(w->ti.id, id);
    printf("%s %s %s attempts=%u", id, w->ti.name, px_state_name((int)w->ti.state), w->ti.attempts);
    if (w->ti.next_run_ns) {
        char when[40];
        cli_utc_text(w->ti.next_run_ns, when, sizeof when);
        printf(" next_run=%s", when);
    }
    if (w->ti.error[0])
        put_quoted("error", w->ti.error, strlen(w->ti.error));
    if (w->args)
        put_quoted("args", w->args, w->args_len);
    putchar('\n');
    return 0;
}

static int open_region(const char *name, px_region **r)
{
    int rc = px_region_open(name, &(px_region_opts){.flags = PX_REGION_ATTACH}, r);
    return rc ? cli_fail(name, rc) : CLI_OK;
}

static int by_next_run(const void *a, const void *b)
{
    const struct row *x = a, *y = b;
    return (x->ti.next_run_ns > y->ti.next_run_ns) - (x->ti.next_run_ns < y->ti.next_run_ns);
}

/* Lists the tasks in the given states (0-terminated), with or without
 * their args, sorted by next run time if asked. */
static int list(const struct args *a, const int *states, bool with_args, bool sort)
{
    px_region *r;
    if (open_region(a->region, &r))
        return CLI_FAILED;
    struct row *rows = NULL;
    size_t nrows = 0;
    int rc = 0;
    for (const int *st = states; *st && rc == 0; st++) {
        px_id *ids;
        size_t n;
        if ((rc = collect(r, *st, a, &ids, &n)) != 0)
            break;
        struct row *more = realloc(rows, (nrows + n + 1) * sizeof *rows);
        if (!more) {
            free(ids);
            rc = -ENOMEM;
            break;
        }
        rows = more;
        for (size_t i = 0; i < n; i++)
            if (load_row(r, ids[i], with_args, &rows[nrows]) == 0)
                nrows++; /* a task gone meanwhile is not listed */
            else
                free(rows[nrows].args);
        free(ids);
    }
    px_region_close(r);
    if (sort && rc == 0)
        qsort(rows, nrows, sizeof *rows, by_next_run);
    for (size_t i = 0; i < nrows && rc == 0; i++)
        rc = print_row(&rows[i], a->json);
    for (size_t i = 0; i < nrows; i++)
        free(rows[i].args);
    free(rows);
    return rc ? cli_fail("list", rc) : CLI_OK;
}

/* Requeues or purges one dead task, or all of them. */
static int act(const struct args *a, bool purge)
{
    px_id one;
    if (!a->all && (!a->id || px_id_parse(a->id, &one) != 0))
        return CLI_USAGE;
    if (a->all && a->id)
        return CLI_USAGE;
    px_region *r;
    if (open_region(a->region, &r))
        return CLI_FAILED;
    px_id *ids = &one;
    size_t n = 1;
    int rc = 0, failed = 0;
    if (a->all && (rc = collect(r, PX_DEAD, a, &ids, &n)) != 0) {
        px_region_close(r);
        return cli_fail("list", rc);
    }
    for (size_t i = 0; i < n; i++) {
        char id[PX_ID_LEN + 1];
        px_id_format(ids[i], id);
        rc = px_status(r, ids[i]);
        if (rc >= 0 && rc != PX_DEAD) {
            fprintf(stderr, "pollux: task %s is %s, not DEAD\n", id, px_state_name(rc));
            failed++;
            continue;
        }
        rc = rc < 0 ? rc : purge ? px_forget(r, ids[i]) : px_requeue(r, ids[i]);
        if (rc) {
            cli_fail(id, rc);
            failed++;
            continue;
        }
        printf("%s %s\n", id, purge ? "purged" : "requeued");
    }
    if (ids != &one)
        free(ids);
    px_region_close(r);
    return failed ? CLI_FAILED : CLI_OK;
}

int cli_dead(int argc, char **argv)
{
    if (argc < 2)
        goto bad;
    const char *verb = argv[1];
    struct args a;
    int rc = parse(argc - 1, argv + 1, &a);
    if (rc == 1 || !strcmp(verb, "--help") || !strcmp(verb, "-h")) {
        dead_usage(stdout);
        return CLI_OK;
    }
    if (rc < 0)
        goto bad;
    if (!strcmp(verb, "list") && !a.id && !a.all)
        return list(&a, (const int[]){PX_DEAD, 0}, true, false);
    if (!strcmp(verb, "retry") || !strcmp(verb, "purge")) {
        rc = act(&a, verb[0] == 'p');
        if (rc != CLI_USAGE)
            return rc;
    }
bad:
    dead_usage(stderr);
    return CLI_USAGE;
}

int cli_schedule(int argc, char **argv)
{
    if (argc < 2)
        goto bad;
    struct args a;
    int rc = parse(argc - 1, argv + 1, &a);
    if (rc == 1 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        schedule_usage(stdout);
        return CLI_OK;
    }
    if (rc == 0 && !strcmp(argv[1], "list") && !a.id && !a.all) {
        px_region *r;
        if (open_region(a.region, &r))
            return CLI_FAILED;
        rc = cli_schedules_print(r, a.task, a.queue, a.json);
        px_region_close(r);
        if (rc)
            return cli_fail("list", rc);
        return list(&a, (const int[]){PX_SCHEDULED, PX_RETRY, 0}, false, true);
    }
    if (rc == 0 && !strcmp(argv[1], "cancel") && a.id && !a.all) {
        rc = cli_cancel_id(a.region, a.id);
        if (rc != CLI_USAGE)
            return rc;
    }
bad:
    schedule_usage(stderr);
    return CLI_USAGE;
}

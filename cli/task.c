/*
 * pollux submit: submit a task or make a recurring schedule from a
 * terminal, and wait for its result. The join of `pollux join` lives here
 * too, since `submit --wait` is the same wait.
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

static void usage(FILE *f)
{
    fprintf(f, "usage: pollux submit --region NAME TASK [OPTIONS]\n"
               "       pollux submit NAME TASK [OPTIONS]\n"
               "\n"
               "options:\n"
               "  --arg STRING | --arg-file PATH | --arg-stdin   the task's args (default none)\n"
               "  --queue Q              another queue than the definition's\n"
               "  --priority P           1-5 or lowest|low|normal|high|highest\n"
               "  --delay S              run no sooner than S seconds from now\n"
               "  --at TIME              run no sooner than TIME\n"
               "  --every S | --cron EXPR  make a recurring schedule instead of one task\n"
               "  --tz ZONE              --cron's time zone (default UTC)\n"
               "  --times N              a schedule makes at most N runs\n"
               "  --until TIME           a schedule makes no run due after TIME\n"
               "  --missed once|skip     what a schedule does about runs missed while no\n"
               "                         worker ran (default once)\n"
               "  --key K                an idempotency key: while a task with it is not\n"
               "                         finished, print its id and submit nothing\n"
               "  --wait [TIMEOUT]       then wait up to TIMEOUT seconds (default forever)\n"
               "                         and print the result bytes as they are\n"
               "  --hex                  print the result in hex (with --wait)\n"
               "  --json                 print one JSON object per line\n"
               "\n"
               "TIME is unix seconds (1795600800.5) or ISO-8601 UTC (2026-11-25T10:00:00Z).\n"
               "Prints the task's or schedule's id, followed by \" existing\" when --key\n"
               "named a task already there (on stderr with --wait, unless --json, so that\n"
               "stdout holds the result alone). With --wait, exits 1 if the task failed\n"
               "(its error goes to stderr), was cancelled or did not finish in time.\n"
               "Exits 1 if the submit fails, 2 on a usage error.\n");
}

/* ---- Parsing -------------------------------------------------------------- */

static bool all_digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return n > 0;
}

/* Reads ".ddd" (up to 9 digits) as nanoseconds; NULL if malformed. */
static const char *fraction_ns(const char *s, uint64_t *ns)
{
    *ns = 0;
    if (*s != '.')
        return s;
    size_t n = strspn(++s, "0123456789");
    if (n == 0 || n > 9)
        return NULL;
    for (size_t i = 0; i < 9; i++)
        *ns = *ns * 10 + (i < n ? (uint64_t)(s[i] - '0') : 0);
    return s + n;
}

/* "2026-11-25T10:00:00Z", optionally with a fraction before the Z. The
 * fields are checked by converting back, so that Feb 30 is refused rather
 * than turned into March 2 as timegm would. */
static int parse_iso(const char *s, uint64_t *ns)
{
    static const char shape[] = "dddd-dd-ddTdd:dd:dd";
    for (size_t i = 0; i < sizeof shape - 1; i++)
        if (shape[i] == 'd' ? !all_digits(s + i, 1) : s[i] != shape[i])
            return -EINVAL;
    struct tm tm = {0}, back;
    tm.tm_year = atoi(s) - 1900;
    tm.tm_mon = atoi(s + 5) - 1;
    tm.tm_mday = atoi(s + 8);
    tm.tm_hour = atoi(s + 11);
    tm.tm_min = atoi(s + 14);
    tm.tm_sec = atoi(s + 17);
    uint64_t frac;
    const char *end = fraction_ns(s + 19, &frac);
    if (!end || strcmp(end, "Z") != 0)
        return -EINVAL;
    struct tm norm = tm; /* timegm normalises its argument */
    time_t t = timegm(&norm);
    if (t < 0 || !gmtime_r(&t, &back) || back.tm_year != tm.tm_year || back.tm_mon != tm.tm_mon ||
        back.tm_mday != tm.tm_mday || back.tm_hour != tm.tm_hour || back.tm_min != tm.tm_min ||
        back.tm_sec != tm.tm_sec)
        return -EINVAL;
    *ns = (uint64_t)t * 1000000000ull + frac;
    return 0;
}

/* Unix seconds with an optional fraction, or ISO-8601 UTC; the result is
 * CLOCK_REALTIME nanoseconds. Seconds are kept below 10^10 so that the
 * nanoseconds fit in 64 bits. */
static int parse_time(const char *s, uint64_t *ns)
{
    size_t n = strspn(s, "0123456789");
    if (n == 0 || n > 10)
        return -EINVAL;
    if (s[n] == '-')
        return parse_iso(s, ns);
    uint64_t frac;
    const char *end = fraction_ns(s + n, &frac);
    if (!end || *end != '\0' || strtoull(s, NULL, 10) >= 10000000000ull)
        return -EINVAL;
    *ns = strtoull(s, NULL, 10) * 1000000000ull + frac;
    return 0;
}

static int parse_priority(const char *s, int *out)
{
    for (int p = PX_PRIORITY_LOWEST; p <= PX_PRIORITY_HIGHEST; p++) {
        char digit[2] = {(char)('0' + p), '\0'};
        if (!strcmp(s, digit) || !strcasecmp(s, cli_priority_name(p))) {
            *out = p;
            return 0;
        }
    }
    return -EINVAL;
}

struct submit_args {
    const char *region, *task, *arg, *arg_file;
    bool arg_stdin, wait, hex, json, missed_set;
    double wait_s;
    px_submit_opts o;
};

enum {
    O_REGION = 256,
    O_ARG,
    O_ARG_FILE,
    O_ARG_STDIN,
    O_QUEUE,
    O_PRIORITY,
    O_DELAY,
    O_AT,
    O_EVERY,
    O_CRON,
    O_TZ,
    O_TIMES,
    O_UNTIL,
    O_MISSED,
    O_KEY,
    O_WAIT,
    O_HEX,
    O_JSON,
};

/* Takes the TIMEOUT of `--wait TIMEOUT` as well as of `--wait=TIMEOUT`:
 * getopt hands an optional argument only in the second form, so a number
 * right after a bare --wait is taken here. */
static int wait_timeout(int argc, char **argv, struct submit_args *a)
{
    a->wait = true;
    a->wait_s = -1;
    const char *s = optarg;
    if (!s && optind < argc && cli_number(argv[optind], &a->wait_s) == 0)
        optind++;
    return s ? cli_number(s, &a->wait_s) : 0;
}

/* Applies one option; 0 or -EINVAL. */
static int submit_opt(int c, int argc, char **argv, struct submit_args *a)
{
    px_submit_opts *o = &a->o;
    double v = 0;
    switch (c) {
    case O_REGION:
        a->region = optarg;
        return 0;
    case O_ARG:
        a->arg = optarg;
        return 0;
    case O_ARG_FILE:
        a->arg_file = optarg;
        return 0;
    case O_ARG_STDIN:
        a->arg_stdin = true;
        return 0;
    case O_QUEUE:
        o->queue = optarg;
        return 0;
    case O_PRIORITY:
        return parse_priority(optarg, &o->priority);
    case O_DELAY:
        return cli_number(optarg, &o->delay_s);
    case O_AT:
        return parse_time(optarg, &o->at_unix_ns);
    case O_EVERY:
        return cli_number(optarg, &o->every_s) || o->every_s == 0 ? -EINVAL : 0;
    case O_CRON:
        o->cron = optarg;
        return 0;
    case O_TZ:
        o->tz = optarg;
        return 0;
    case O_TIMES:
        if (cli_number(optarg, &v) || v < 1 || v > UINT32_MAX || v != (uint32_t)v)
            return -EINVAL;
        o->times = (uint32_t)v;
        return 0;
    case O_UNTIL:
        return parse_time(optarg, &o->until_unix_ns);
    case O_MISSED:
        a->missed_set = true;
        o->missed = !strcmp(optarg, "skip") ? PX_MISSED_SKIP : PX_MISSED_ONCE;
        return strcmp(optarg, "skip") && strcmp(optarg, "once") ? -EINVAL : 0;
    case O_KEY:
        o->key = optarg;
        return 0;
    case O_WAIT:
        return wait_timeout(argc, argv, a);
    case O_HEX:
        a->hex = true;
        return 0;
    case O_JSON:
        a->json = true;
        return 0;
    }
    return -EINVAL;
}

/* Checks the combinations no single option can: one source of args, and
 * the schedule options only for a schedule and the task ones only for a
 * task. Returns why they do not fit, or NULL. */
static const char *incoherent(const struct submit_args *a)
{
    const px_submit_opts *o = &a->o;
    bool recurring = o->every_s != 0 || o->cron;
    if ((a->arg != NULL) + (a->arg_file != NULL) + a->arg_stdin > 1)
        return "one of --arg, --arg-file and --arg-stdin";
    if (o->every_s != 0 && o->cron)
        return "--every or --cron, not both";
    if (o->tz && !o->cron)
        return "--tz goes with --cron";
    if (recurring && (a->wait || o->key))
        return "a schedule takes no --wait nor --key";
    if (!recurring && (o->times || o->until_unix_ns || a->missed_set))
        return "--times, --until and --missed go with --every or --cron";
    return a->hex && !a->wait ? "--hex goes with --wait" : NULL;
}

/* 0, 1 for --help, -1 for a usage error. */
static int parse_submit(int argc, char **argv, struct submit_args *a)
{
    static const struct option longs[] = {{"region", required_argument, NULL, O_REGION},
                                          {"arg", required_argument, NULL, O_ARG},
                                          {"arg-file", required_argument, NULL, O_ARG_FILE},
                                          {"arg-stdin", no_argument, NULL, O_ARG_STDIN},
                                          {"queue", required_argument, NULL, O_QUEUE},
                                          {"priority", required_argument, NULL, O_PRIORITY},
                                          {"delay", required_argument, NULL, O_DELAY},
                                          {"at", required_argument, NULL, O_AT},
                                          {"every", required_argument, NULL, O_EVERY},
                                          {"cron", required_argument, NULL, O_CRON},
                                          {"tz", required_argument, NULL, O_TZ},
                                          {"times", required_argument, NULL, O_TIMES},
                                          {"until", required_argument, NULL, O_UNTIL},
                                          {"missed", required_argument, NULL, O_MISSED},
                                          {"key", required_argument, NULL, O_KEY},
                                          {"wait", optional_argument, NULL, O_WAIT},
                                          {"hex", no_argument, NULL, O_HEX},
                                          {"json", no_argument, NULL, O_JSON},
                                          {"help", no_argument, NULL, 'h'},
                                          {NULL, 0, NULL, 0}};
    *a = (struct submit_args){0};
    optind = 1;
    int c, at = 0;
    while ((c = getopt_long(argc, argv, "h", longs, &at)) != -1) {
        if (c == 'h')
            return 1;
        if (submit_opt(c, argc, argv, a) != 0) {
            if (c != '?')
                fprintf(stderr, "pollux: bad --%s: '%s'\n", longs[at].name, optarg ? optarg : "");
            return -1;
        }
    }
    /* The region may come first as a positional argument instead. */
    if (!a->region && argc - optind == 2)
        a->region = argv[optind++];
    if (argc - optind != 1 || !a->region)
        return -1;
    a->task = argv[optind];
    const char *why = incoherent(a);
    if (why)
        fprintf(stderr, "pollux: %s\n", why);
    return why ? -1 : 0;
}

/* ---- Args ------------------------------------------------------------------ */

/* Reads a whole stream; the caller frees *buf. Its size is checked by
 * px_submit against the region's max_payload. */
static int read_all(FILE *f, char **buf, size_t *len)
{
    size_t cap = 4096;
    *len = 0;
    if (!(*buf = malloc(cap)))
        return -ENOMEM;
    for (;;) {
        *len += fread(*buf + *len, 1, cap - *len, f);
        if (*len < cap)
            return ferror(f) ? -EIO : 0;
        char *more = realloc(*buf, cap *= 2);
        if (!more)
            return -ENOMEM;
        *buf = more;
    }
}

/* The args from --arg, --arg-file or --arg-stdin; *owned is what to free. */
static int load_args(const struct submit_args *a, const char **args, size_t *len, char **owned)
{
    *owned = NULL;
    *args = a->arg;
    *len = a->arg ? strlen(a->arg) : 0;
    if (!a->arg_file && !a->arg_stdin)
        return CLI_OK;
    FILE *f = a->arg_stdin ? stdin : fopen(a->arg_file, "rb");
    if (!f)
        return cli_fail(a->arg_file, -errno);
    int rc = read_all(f, owned, len);
    if (f != stdin)
        fclose(f);
    *args = *owned;
    return rc ? cli_fail(a->arg_stdin ? "stdin" : a->arg_file, rc) : CLI_OK;
}

/* ---- Output ------------------------------------------------------------------ */

int cli_attach(const char *name, px_region **r)
{
    int rc = px_region_open(name, &(px_region_opts){.flags = PX_REGION_ATTACH}, r);
    return rc ? cli_fail(name, rc) : CLI_OK;
}

int cli_json_print(json_t *o)
{
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!s)
        return -ENOMEM;
    puts(s);
    free(s);
    return 0;
}

static char *hex_of(const char *p, size_t n)
{
    char *hex = malloc(2 * n + 1);
    for (size_t i = 0; hex && i < n; i++)
        snprintf(hex + 2 * i, 3, "%02x", (unsigned char)p[i]);
    if (hex)
        hex[2 * n] = '\0';
    return hex;
}

/* A finished task's outcome as JSON: a failed task's error; a successful
 * one's result in hex always, and as a string too when it is valid UTF-8
 * (jansson refuses it otherwise). */
static json_t *outcome_json(const char *id, int state, const char *data, size_t len)
{
    json_t *o = json_pack("{s:s, s:s}", "id", id, "state", px_state_name(state));
    if (o && (state == PX_FAILED || state == PX_DEAD))
        json_object_set_new(o, "error", json_string(data));
    if (!o || state != PX_SUCCESS)
        return o;
    char *hex = hex_of(data, len);
    json_object_set_new(o, "result_len", json_integer((json_int_t)len));
    json_object_set_new(o, "result_hex", hex ? json_string(hex) : json_null());
    json_t *text = json_stringn(data, len);
    if (text)
        json_object_set_new(o, "result", text);
    free(hex);
    return o;
}

static void print_result(const char *data, size_t len, bool hex)
{
    char *h = hex ? hex_of(data, len) : NULL;
    if (h)
        printf("%s\n", h);
    else
        fwrite(data, 1, len, stdout);
    free(h);
}

/* The state a join's code stands for; 0 when the task did not finish. */
static int joined_state(px_region *r, px_id id, int rc)
{
    if (rc == 0)
        return PX_SUCCESS;
    if (rc == -ECANCELED)
        return PX_CANCELLED;
    return rc == PX_ETASKFAILED ? px_status(r, id) : 0;
}

/* Joins with a small buffer first: it holds the error text of a failed
 * task and most results, and px_join says how long a larger result is. */
int cli_join_print(px_region *r, px_id id, double timeout_s, bool hex, bool json)
{
    char small[256], text[PX_ID_LEN + 1], *big = NULL;
    const char *data = small;
    size_t len = 0;
    px_id_format(id, text);
    int rc = px_join(r, id, timeout_s, small, sizeof small, &len);
    if (rc == -ENOBUFS) {
        big = malloc(len);
        rc = big ? px_try_join(r, id, big, len, &len) : -ENOMEM;
        data = big;
    }
    int st = joined_state(r, id, rc);
    if (st > 0 && json)
        cli_json_print(outcome_json(text, st, data, len));
    else if (rc == 0)
        print_result(data, len, hex);
    free(big);
    fflush(stdout); /* the outcome before the error, even through a pipe */
    if (rc == PX_ETASKFAILED)
        fprintf(stderr, "pollux: task %s %s: %s\n", text, px_state_name(st), small);
    else if (rc == -ECANCELED)
        fprintf(stderr, "pollux: task %s was cancelled\n", text);
    else if (rc)
        return cli_fail(text, rc);
    return rc ? CLI_FAILED : CLI_OK;
}

/* Says which option a refused submit is about where the code alone
 * would not. */
static int submit_failed(const struct submit_args *a, int rc)
{
    const px_submit_opts *o = &a->o;
    if (rc == -E2BIG && (o->every_s != 0 || o->cron)) {
        fprintf(stderr, "pollux: args: a recurring schedule's args are at most 256 bytes\n");
        return CLI_FAILED;
    }
    if (rc == -EINVAL && o->cron) {
        fprintf(stderr, "pollux: bad --cron or --tz: \"%s\" in %s%s\n", o->cron,
                o->tz ? o->tz : "UTC",
                o->until_unix_ns ? " (or --until is before its first run)" : "");
        return CLI_FAILED;
    }
    if (rc == -EINVAL && o->until_unix_ns) {
        fprintf(stderr, "pollux: --until is before the schedule's first run\n");
        return CLI_FAILED;
    }
    return cli_fail(rc == -E2BIG ? "args" : rc == PX_ENOTASK ? a->task : "submit", rc);
}

/* The id goes to stdout, unless --wait will print raw result bytes there:
 * then to stderr, so that `pollux submit --wait ... > out` holds only the
 * result. */
static void print_id(px_id id, bool existing, bool schedule, bool json, bool wait)
{
    char text[PX_ID_LEN + 1];
    px_id_format(id, text);
    if (json)
        cli_json_print(json_pack("{s:s, s:s, s:b}", "id", text, "kind",
                                 schedule ? "schedule" : "task", "existing", existing));
    else
        fprintf(wait ? stderr : stdout, "%s%s\n", text, existing ? " existing" : "");
    fflush(stdout);
}

int cli_submit(int argc, char **argv)
{
    struct submit_args a;
    int rc = parse_submit(argc, argv, &a);
    if (rc != 0) {
        usage(rc > 0 ? stdout : stderr);
        return rc > 0 ? CLI_OK : CLI_USAGE;
    }
    const char *args;
    size_t len;
    char *owned;
    px_region *r = NULL;
    if (load_args(&a, &args, &len, &owned) || cli_attach(a.region, &r)) {
        free(owned);
        return CLI_FAILED;
    }
    px_id id;
    rc = px_submit(r, a.task, args, len, &a.o, &id);
    free(owned);
    if (rc < 0) {
        px_region_close(r);
        return submit_failed(&a, rc);
    }
    print_id(id, rc == 1, a.o.every_s != 0 || a.o.cron, a.json, a.wait);
    rc = a.wait ? cli_join_print(r, id, a.wait_s, a.hex, a.json) : CLI_OK;
    px_region_close(r);
    return rc;
}

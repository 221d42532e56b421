/*
 * pollux: operate a region from a terminal.
 */
#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void usage(FILE *f)
{
    fprintf(f, "usage: pollux COMMAND [ARGS]\n"
               "\n"
               "commands:\n"
               "  region create|info|destroy NAME   manage a region\n"
               "  worker --region NAME --lib PATH   run the tasks of a library\n"
               "  recover --region NAME             rebuild a lost region from its log\n"
               "  submit --region NAME TASK         submit a task or a recurring schedule\n"
               "  status|inspect --region NAME ID   a task's or schedule's state, or all of it\n"
               "  join --region NAME ID             wait for a task and print its result\n"
               "  list --region NAME                the tasks, filtered by state, queue, task\n"
               "  cancel --region NAME ID           cancel a task or a schedule\n"
               "  dead list|retry|purge --region NAME  the dead letters\n"
               "  schedule list|cancel --region NAME  schedules, tasks waiting for their time\n"
               "  queue pause|resume|status|rate|concurrency --region NAME QUEUE\n"
               "  stats --region NAME               counts, depths, latencies (--json,\n"
               "                                    --prometheus)\n"
               "  top --region NAME                 a live dashboard (--once: one frame)\n"
               "  wal dump|verify DIR               read a region's log\n"
               "  version                           print the version\n"
               "\n"
               "`pollux COMMAND --help` describes each command.\n"
               "exit codes: 0 ok, 1 operation failed, 2 usage error\n");
}

void cli_utc_text(uint64_t ns, char *buf, size_t cap)
{
    time_t s = (time_t)(ns / 1000000000ull);
    struct tm tm;
    gmtime_r(&s, &tm);
    size_t k = strftime(buf, cap, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + k, cap - k, ".%03uZ", (unsigned)(ns / 1000000ull % 1000));
}

int cli_fail(const char *what, int err)
{
    fprintf(stderr, "pollux: %s: %s\n", what, px_strerror(err));
    return CLI_FAILED;
}

int cli_number(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end != '\0' || v < 0 || v != v)
        return -EINVAL;
    *out = v;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return CLI_USAGE;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "worker") == 0)
        return cli_worker(argc - 1, argv + 1);
    if (strcmp(cmd, "region") == 0)
        return cli_region(argc - 1, argv + 1);
    if (strcmp(cmd, "wal") == 0)
        return cli_wal(argc - 1, argv + 1);
    if (strcmp(cmd, "recover") == 0)
        return cli_recover(argc - 1, argv + 1);
    if (strcmp(cmd, "submit") == 0)
        return cli_submit(argc - 1, argv + 1);
    if (strcmp(cmd, "status") == 0)
        return cli_status(argc - 1, argv + 1);
    if (strcmp(cmd, "inspect") == 0)
        return cli_inspect(argc - 1, argv + 1);
    if (strcmp(cmd, "join") == 0)
        return cli_join(argc - 1, argv + 1);
    if (strcmp(cmd, "list") == 0)
        return cli_list(argc - 1, argv + 1);
    if (strcmp(cmd, "cancel") == 0)
        return cli_cancel(argc - 1, argv + 1);
    if (strcmp(cmd, "dead") == 0)
        return cli_dead(argc - 1, argv + 1);
    if (strcmp(cmd, "schedule") == 0)
        return cli_schedule(argc - 1, argv + 1);
    if (strcmp(cmd, "queue") == 0)
        return cli_queue(argc - 1, argv + 1);
    if (strcmp(cmd, "stats") == 0)
        return cli_stats(argc - 1, argv + 1);
    if (strcmp(cmd, "top") == 0)
        return cli_top(argc - 1, argv + 1);
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        printf("pollux %d.%d.%d\n", PX_VERSION_MAJOR, PX_VERSION_MINOR, PX_VERSION_PATCH);
        return CLI_OK;
    }
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        usage(stdout);
        return CLI_OK;
    }
    fprintf(stderr, "pollux: unknown command '%s'\n", cmd);
    usage(stderr);
    return CLI_USAGE;
}

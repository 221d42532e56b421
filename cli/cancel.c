/*
 * pollux cancel --region NAME ID: cancel a task or a schedule from a terminal.
 */
#include "cli.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static void usage(FILE *f)
{
    fprintf(f, "usage: pollux cancel --region NAME ID\n"
               "\n"
               "Cancels the task or recurring schedule ID. A pending task is cancelled at\n"
               "once; a running cancellable task is asked to stop (px_should_continue()\n"
               "turns false) and is cancelled when it returns; a schedule makes no more\n"
               "runs. Exits 1 if ID is unknown, finished or not cancellable.\n");
}

int cli_cancel_id(const char *region, const char *text)
{
    px_id id;
    if (px_id_parse(text, &id) != 0)
        return CLI_USAGE;
    px_region *r;
    int rc = px_region_open(region, &(px_region_opts){.flags = PX_REGION_ATTACH}, &r);
    if (rc)
        return cli_fail(region, rc);
    px_schedule_info si;
    bool sched = px_schedule_get(r, id, &si) == 0;
    rc = px_cancel(r, id);
    int st = px_status(r, id);
    px_region_close(r);
    if (rc == -EPERM) {
        fprintf(stderr, "pollux: task %s is running and its definition is not cancellable\n", text);
        return CLI_FAILED;
    }
    if (rc == -EALREADY) {
        fprintf(stderr, "pollux: %s %s has already %s\n", sched ? "schedule" : "task", text,
                sched ? "ended" : "finished");
        return CLI_FAILED;
    }
    if (rc)
        return cli_fail(text, rc);
    printf("%s %s\n", text, sched || st == PX_CANCELLED ? "cancelled" : "asked to stop");
    return CLI_OK;
}

int cli_cancel(int argc, char **argv)
{
    const char *name = NULL, *text = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return CLI_OK;
        }
        if (!strcmp(argv[i], "--region") && i + 1 < argc)
            name = argv[++i];
        else if (argv[i][0] != '-' && !text)
            text = argv[i];
        else
            goto bad;
    }
    if (!name || !text)
        goto bad;
    int rc = cli_cancel_id(name, text);
    if (rc != CLI_USAGE)
        return rc;
bad:
    usage(stderr);
    return CLI_USAGE;
}

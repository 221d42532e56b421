/*
 * pollux cancel --region NAME ID: cancel a task from a terminal.
 */
#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static void usage(FILE *f)
{
    fprintf(f, "usage: pollux cancel --region NAME ID\n"
               "\n"
               "A pending task is cancelled at once; a running cancellable task is asked\n"
               "to stop (px_should_continue() turns false) and is cancelled when it\n"
               "returns. Exits 1 if the task is unknown, finished or not cancellable.\n");
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
    px_id id;
    if (!name || !text || px_id_parse(text, &id) != 0)
        goto bad;
    px_region *r;
    int rc = px_region_open(name, &(px_region_opts){.flags = PX_REGION_ATTACH}, &r);
    if (rc)
        return cli_fail(name, rc);
    rc = px_cancel(r, id);
    int st = px_status(r, id);
    px_region_close(r);
    if (rc == -EPERM) {
        fprintf(stderr, "pollux: task %s is running and its definition is not cancellable\n", text);
        return CLI_FAILED;
    }
    if (rc == -EALREADY) {
        fprintf(stderr, "pollux: task %s has already finished\n", text);
        return CLI_FAILED;
    }
    if (rc)
        return cli_fail(text, rc);
    printf("%s %s\n", text, st == PX_CANCELLED ? "cancelled" : "asked to stop");
    return CLI_OK;
bad:
    usage(stderr);
    return CLI_USAGE;
}

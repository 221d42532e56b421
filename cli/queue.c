/*
 * pollux queue pause|resume|status|rate --region NAME QUEUE [PER_S]: stop,
 * restart or limit a queue's flow from a terminal.
 */
#include "cli.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static void usage(FILE *f)
{
    fprintf(f, "usage: pollux queue pause|resume|status --region NAME QUEUE\n"
               "       pollux queue rate --region NAME QUEUE PER_S\n"
               "\n"
               "A paused queue keeps its tasks: workers take none of them until it is\n"
               "resumed (running ones go on). rate limits the queue to PER_S starts a\n"
               "second across all workers (0: no limit). Each prints \"QUEUE paused\" or\n"
               "\"QUEUE running\", and \" rate=N/s\" if limited. Exits 1 for an unknown\n"
               "region or queue.\n");
}

int cli_queue(int argc, char **argv)
{
    const char *verb = argc > 1 ? argv[1] : "", *name = NULL, *queue = NULL, *per = NULL;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--region") && i + 1 < argc)
            name = argv[++i];
        else if (argv[i][0] != '-' && !queue)
            queue = argv[i];
        else if (argv[i][0] != '-' && !per)
            per = argv[i];
        else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
            verb = "--help";
        else
            goto bad;
    }
    if (!strcmp(verb, "--help") || !strcmp(verb, "-h")) {
        usage(stdout);
        return CLI_OK;
    }
    bool pause = !strcmp(verb, "pause"), resume = !strcmp(verb, "resume");
    bool rate = !strcmp(verb, "rate");
    double per_s = 0;
    if ((!pause && !resume && !rate && strcmp(verb, "status")) || !name || !queue ||
        (rate != (per != NULL)) || (rate && (cli_number(per, &per_s) || per_s > 65535)))
        goto bad;
    px_region *r;
    int rc = px_region_open(name, &(px_region_opts){.flags = PX_REGION_ATTACH}, &r);
    if (rc)
        return cli_fail(name, rc);
    rc = pause    ? px_queue_pause(r, queue)
         : resume ? px_queue_resume(r, queue)
         : rate   ? px_queue_set_rate(r, queue, per_s)
                  : 0;
    int paused = rc ? rc : px_queue_paused(r, queue);
    double limit = paused < 0 ? 0 : px_queue_rate(r, queue);
    px_region_close(r);
    if (paused < 0)
        return cli_fail(queue, paused);
    printf("%s %s", queue, paused ? "paused" : "running");
    if (limit > 0)
        printf(" rate=%.0f/s", limit);
    printf("\n");
    return CLI_OK;
bad:
    usage(stderr);
    return CLI_USAGE;
}

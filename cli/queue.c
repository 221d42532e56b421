/*
 * pollux queue pause|resume|status|rate|concurrency --region NAME QUEUE [N]:
 * stop, restart or limit a queue's flow from a terminal.
 */
#include "cli.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static void usage(FILE *f)
{
    fprintf(f, "usage: pollux queue pause|resume|status --region NAME QUEUE\n"
               "       pollux queue rate --region NAME QUEUE PER_S\n"
               "       pollux queue concurrency --region NAME QUEUE K\n"
               "\n"
               "A paused queue keeps its tasks: workers take none of them until it is\n"
               "resumed (running ones go on). rate limits the queue to PER_S starts a\n"
               "second across all workers (0: no limit); concurrency to K (1-256) of its\n"
               "tasks running at once (0: no limit). Each prints \"QUEUE paused\" or\n"
               "\"QUEUE running\", then \" rate=N/s\" and \" concurrency=RUNNING/K\" for\n"
               "the limits it has. Exits 1 for an unknown region or queue.\n");
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
    bool rate = !strcmp(verb, "rate"), conc = !strcmp(verb, "concurrency");
    double per_s = 0;
    if ((!pause && !resume && !rate && !conc && strcmp(verb, "status")) || !name || !queue ||
        ((rate || conc) != (per != NULL)) || (rate && (cli_number(per, &per_s) || per_s > 65535)) ||
        (conc && (cli_number(per, &per_s) || per_s > 256 || per_s != (int)per_s)))
        goto bad;
    px_region *r;
    int rc = px_region_open(name, &(px_region_opts){.flags = PX_REGION_ATTACH}, &r);
    if (rc)
        return cli_fail(name, rc);
    rc = pause    ? px_queue_pause(r, queue)
         : resume ? px_queue_resume(r, queue)
         : rate   ? px_queue_set_rate(r, queue, per_s)
         : conc   ? px_queue_set_concurrency(r, queue, (int)per_s)
                  : 0;
    int paused = rc ? rc : px_queue_paused(r, queue), running = 0;
    double limit = paused < 0 ? 0 : px_queue_rate(r, queue);
    int k = paused < 0 ? 0 : px_queue_concurrency(r, queue, &running);
    px_region_close(r);
    if (paused < 0)
        return cli_fail(queue, paused);
    printf("%s %s", queue, paused ? "paused" : "running");
    if (limit > 0)
        printf(" rate=%.0f/s", limit);
    if (k > 0)
        printf(" concurrency=%d/%d", running, k);
    printf("\n");
    return CLI_OK;
bad:
    usage(stderr);
    return CLI_USAGE;
}

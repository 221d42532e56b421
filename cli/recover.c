/*
 * pollux recover --region NAME: rebuild a lost region from its log.
 */
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

static void usage(FILE *f)
{
    fprintf(f, "usage: pollux recover --region NAME [--log-dir DIR] [--durability sync|async]\n"
               "\n"
               "Creates the region NAME from its log (by default NAME.wal) and prints what\n"
               "was read and restored. Fails if the region still exists.\n");
}

int cli_durability(const char *s, px_durability *out)
{
    if (!strcmp(s, "none"))
        *out = PX_DURABLE_NONE;
    else if (!strcmp(s, "async"))
        *out = PX_DURABLE_ASYNC;
    else if (!strcmp(s, "sync"))
        *out = PX_DURABLE_SYNC;
    else
        return -EINVAL;
    return 0;
}

int cli_recover(int argc, char **argv)
{
    static const struct option longs[] = {{"region", required_argument, 0, 'r'},
                                          {"log-dir", required_argument, 0, 'l'},
                                          {"durability", required_argument, 0, 'd'},
                                          {"help", no_argument, 0, 'h'},
                                          {0, 0, 0, 0}};
    px_region_opts o = {.flags = PX_REGION_CREATE, .durability = PX_DURABLE_SYNC};
    const char *name = NULL;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", longs, NULL)) != -1) {
        switch (c) {
        case 'r':
            name = optarg;
            break;
        case 'l':
            o.log_dir = optarg;
            break;
        case 'd':
            if (cli_durability(optarg, &o.durability) || o.durability == PX_DURABLE_NONE)
                goto bad;
            break;
        case 'h':
            usage(stdout);
            return CLI_OK;
        default:
            goto bad;
        }
    }
    if (!name || optind != argc)
        goto bad;
    px_region *r;
    int rc = px_region_open(name, &o, &r);
    if (rc == -EEXIST) {
        fprintf(stderr, "pollux: %s exists: its shared memory is intact, nothing to recover\n",
                name);
        return CLI_FAILED;
    }
    if (rc)
        return cli_fail(name, rc);
    px_recovery_info rec;
    px_region_info info;
    px_region_recovery(r, &rec);
    px_region_info_get(r, &info);
    printf("recovered   %s from %s\n", name, info.log_dir);
    printf("read        %llu segments, %llu records, last lsn %llu\n",
           (unsigned long long)rec.segments, (unsigned long long)rec.records,
           (unsigned long long)rec.last_lsn);
    printf("cut         %llu bytes of torn or damaged tail\n", (unsigned long long)rec.bytes_cut);
    printf("restored    %llu tasks: %llu pending again, %llu finished\n",
           (unsigned long long)rec.restored, (unsigned long long)rec.pending,
           (unsigned long long)rec.finished);
    if (rec.orphans)
        printf("ignored     %llu records about tasks the log does not hold\n",
               (unsigned long long)rec.orphans);
    px_region_close(r);
    return CLI_OK;
bad:
    usage(stderr);
    return CLI_USAGE;
}

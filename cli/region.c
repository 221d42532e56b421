/*
 * pollux region create|info|destroy NAME
 */
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f)
{
    fprintf(f, "usage: pollux region create NAME [--capacity N] [--max-payload BYTES]\n"
               "                            [--arena-bytes BYTES] [--mode OCTAL]\n"
               "                            [--durability none|async|sync] [--log-dir DIR]\n"
               "       pollux region info NAME\n"
               "       pollux region destroy NAME\n"
               "\n"
               "NAME is /name (in /dev/shm) or a file path containing another '/'.\n"
               "A durable region's log is in DIR, by default NAME.wal beside a file region\n"
               "or in the working directory for /name; creating a region whose log exists\n"
               "recovers it.\n");
}

static int create(int argc, char **argv)
{
    static const struct option longs[] = {{"capacity", required_argument, 0, 'c'},
                                          {"max-payload", required_argument, 0, 'p'},
                                          {"arena-bytes", required_argument, 0, 'a'},
                                          {"mode", required_argument, 0, 'm'},
                                          {"durability", required_argument, 0, 'd'},
                                          {"log-dir", required_argument, 0, 'l'},
                                          {"help", no_argument, 0, 'h'},
                                          {0, 0, 0, 0}};
    px_region_opts o = {.flags = PX_REGION_CREATE};
    int c;
    double v;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", longs, NULL)) != -1) {
        char *end = NULL;
        switch (c) {
        case 'c':
            if (cli_number(optarg, &v) || v < 1 || v > 1e8)
                goto bad;
            o.capacity = (uint32_t)v;
            break;
        case 'p':
            if (cli_number(optarg, &v) || v < 1 || v > 4e9)
                goto bad;
            o.max_payload = (uint32_t)v;
            break;
        case 'a':
            if (cli_number(optarg, &v) || v < 1)
                goto bad;
            o.arena_bytes = (uint64_t)v;
            break;
        case 'm':
            o.file_mode = (uint32_t)strtoul(optarg, &end, 8);
            if (!end || *end || o.file_mode == 0 || o.file_mode > 0777)
                goto bad;
            break;
        case 'd':
            if (cli_durability(optarg, &o.durability))
                goto bad;
            break;
        case 'l':
            o.log_dir = optarg;
            break;
        case 'h':
            usage(stdout);
            return CLI_OK;
        default:
            goto bad;
        }
    }
    if (optind != argc - 1)
        goto bad;
    px_region *r;
    int rc = px_region_open(argv[optind], &o, &r);
    if (rc)
        return cli_fail(argv[optind], rc);
    px_region_close(r);
    printf("created %s\n", argv[optind]);
    return CLI_OK;
bad:
    usage(stderr);
    return CLI_USAGE;
}

static int info(const char *name)
{
    px_region *r;
    px_region_opts o = {.flags = PX_REGION_ATTACH};
    int rc = px_region_open(name, &o, &r);
    if (rc)
        return cli_fail(name, rc);
    px_region_info i;
    px_region_info_get(r, &i);
    printf("region      %s\n", name);
    printf("version     %u\n", i.version);
    printf("size        %llu bytes\n", (unsigned long long)i.size_bytes);
    printf("capacity    %u slots, %u used\n", i.capacity, i.slots_used);
    printf("payload     max %u bytes; arena %llu bytes, %llu used\n", i.max_payload,
           (unsigned long long)i.arena_bytes, (unsigned long long)i.arena_used);
    printf("lanes       %u of depth %u, %u owned, %llu entries queued\n", i.lanes, i.lane_depth,
           i.lanes_used, (unsigned long long)i.queued);
    printf("tasks       %u defined\n", i.tasks_defined);
    static const char *dur[] = {"none", "async", "sync"};
    printf("durability  %s%s%s\n", dur[i.durability <= PX_DURABLE_SYNC ? i.durability : 0],
           i.log_dir[0] ? ", log in " : "", i.log_dir);
    px_proc_info procs[64];
    int n = px_region_procs(r, procs, 64);
    printf("processes   %d attached (this one included)\n", n);
    for (int k = 0; k < n && k < 64; k++)
        printf("  pid %-8d %s\n", procs[k].pid,
               procs[k].role == PX_ROLE_WORKER ? "worker" : "client");
    px_region_close(r);
    return CLI_OK;
}

int cli_region(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? CLI_USAGE : CLI_OK;
    }
    const char *sub = argv[1];
    if (strcmp(sub, "create") == 0)
        return create(argc - 1, argv + 1);
    if (argc != 3) {
        usage(stderr);
        return CLI_USAGE;
    }
    if (strcmp(sub, "info") == 0)
        return info(argv[2]);
    if (strcmp(sub, "destroy") == 0) {
        int rc = px_region_destroy(argv[2]);
        if (rc)
            return cli_fail(argv[2], rc);
        printf("destroyed %s\n", argv[2]);
        return CLI_OK;
    }
    fprintf(stderr, "pollux: unknown region command '%s'\n", sub);
    usage(stderr);
    return CLI_USAGE;
}

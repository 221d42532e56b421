/*
 * pollux region create|info|destroy NAME
 */
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f)
{
    fprintf(f, "usage: pollux region create NAME [--capacity N] [--max-payload BYTES]\n"
               "                            [--arena-bytes BYTES] [--mode OCTAL]\n"
               "                            [--durability none|async|sync] [--log-dir DIR]\n"
               "       pollux region info NAME [--json]\n"
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

static const char *const durability_name[] = {"none", "async", "sync"};

/* The same as one JSON object: the region, then its processes. */
static void info_json(const char *name, const px_region_info *i, const px_proc_info *procs, int n)
{
    json_t *list = json_array();
    for (int k = 0; k < n && k < 64; k++)
        json_array_append_new(
            list,
            json_pack("{s:i, s:s, s:i, s:i, s:i, s:i}", "pid", (int)procs[k].pid, "role",
                      procs[k].role == PX_ROLE_WORKER ? "worker" : "client", "threads",
                      (int)procs[k].threads, "threads_busy", (int)procs[k].threads_busy, "children",
                      (int)procs[k].children, "children_busy", (int)procs[k].children_busy));
    cli_json_print(json_pack("{s:s, s:i, s:I, s:i, s:i, s:i, s:I, s:I, s:i, s:s, s:s, s:o}",
                             "region", name, "version", (int)i->version, "size_bytes",
                             (json_int_t)i->size_bytes, "capacity", (int)i->capacity, "slots_used",
                             (int)i->slots_used, "max_payload", (int)i->max_payload, "arena_bytes",
                             (json_int_t)i->arena_bytes, "arena_used", (json_int_t)i->arena_used,
                             "tasks_defined", (int)i->tasks_defined, "durability",
                             durability_name[i->durability <= PX_DURABLE_SYNC ? i->durability : 0],
                             "log_dir", i->log_dir, "processes", list));
}

static int info(const char *name, bool json)
{
    px_region *r;
    px_region_opts o = {.flags = PX_REGION_ATTACH};
    int rc = px_region_open(name, &o, &r);
    if (rc)
        return cli_fail(name, rc);
    px_region_info i;
    px_region_info_get(r, &i);
    px_proc_info procs[64];
    int n = px_region_procs(r, procs, 64);
    if (json) {
        info_json(name, &i, procs, n);
        px_region_close(r);
        return CLI_OK;
    }
    printf("region      %s\n", name);
    printf("version     %u\n", i.version);
    printf("size        %llu bytes\n", (unsigned long long)i.size_bytes);
    printf("capacity    %u slots, %u used\n", i.capacity, i.slots_used);
    printf("payload     max %u bytes; arena %llu bytes, %llu used\n", i.max_payload,
           (unsigned long long)i.arena_bytes, (unsigned long long)i.arena_used);
    printf("lanes       %u of depth %u, %u owned, %llu entries queued\n", i.lanes, i.lane_depth,
           i.lanes_used, (unsigned long long)i.queued);
    printf("tasks       %u defined\n", i.tasks_defined);
    printf("durability  %s%s%s\n",
           durability_name[i.durability <= PX_DURABLE_SYNC ? i.durability : 0],
           i.log_dir[0] ? ", log in " : "", i.log_dir);
    printf("processes   %d attached (this one included)\n", n);
    for (int k = 0; k < n && k < 64; k++)
        printf("  pid %-8d %-6s threads %u/%u busy, processes %u/%u busy\n", procs[k].pid,
               procs[k].role == PX_ROLE_WORKER ? "worker" : "client", procs[k].threads_busy,
               procs[k].threads, procs[k].children_busy, procs[k].children);
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
    bool json = argc == 4 && strcmp(sub, "info") == 0 && strcmp(argv[3], "--json") == 0;
    if (argc != 3 && !json) {
        usage(stderr);
        return CLI_USAGE;
    }
    if (strcmp(sub, "info") == 0)
        return info(argv[2], json);
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

/*
 * The pollux command: shared pieces of its subcommands.
 *
 * Exit codes: 0 the operation succeeded, 1 it failed, 2 usage error.
 */
#ifndef PX_CLI_H
#define PX_CLI_H

#include "pollux.h"

#include <stdbool.h>

/* jansson's object type, declared here so that cli.h needs no jansson.h. */
struct json_t;

enum { CLI_OK = 0, CLI_FAILED = 1, CLI_USAGE = 2 };

int cli_worker(int argc, char **argv);
int cli_region(int argc, char **argv);
int cli_wal(int argc, char **argv);
int cli_recover(int argc, char **argv);
int cli_cancel(int argc, char **argv);
int cli_dead(int argc, char **argv);
int cli_schedule(int argc, char **argv);
int cli_queue(int argc, char **argv);
int cli_submit(int argc, char **argv);
int cli_join(int argc, char **argv);
int cli_status(int argc, char **argv);
int cli_inspect(int argc, char **argv);
int cli_list(int argc, char **argv);
/* Prints the recurring schedules (filtered by task and queue when not
 * NULL), one line each; 0 or a negative code. */
int cli_schedules_print(px_region *r, const char *task, const char *queue, bool as_json);
/* px_cancel of the task or schedule the id text names, with the message
 * and exit code of `pollux cancel`; CLI_USAGE for a malformed id. */
int cli_cancel_id(const char *region, const char *id);
/* Parses none|async|sync; returns 0 or -EINVAL. */
int cli_durability(const char *s, px_durability *out);

/* Waits for the task like px_join and prints its result (raw, in hex, or
 * as one JSON object), or its error on stderr: CLI_OK or CLI_FAILED. */
int cli_join_print(px_region *r, px_id id, double timeout_s, bool hex, bool json);
/* Attaches to an existing region: CLI_OK, or CLI_FAILED once it said why. */
int cli_attach(const char *name, px_region **r);
/* Prints o (a json_t) as one compact line and releases it; 0 or -ENOMEM. */
int cli_json_print(struct json_t *o);
/* The lowercase name of a px_priority ("normal"), or "?". */
const char *cli_priority_name(int p);

/* A picture of a region for `pollux stats` and `pollux top`. */
#define CLI_MAX_PROCS 64
struct cli_snapshot {
    px_region_info info;
    px_region_stats st;
    px_proc_info procs[CLI_MAX_PROCS];
    int nprocs;
    uint64_t taken_ns; /* CLOCK_MONOTONIC */
};
int cli_stats(int argc, char **argv);
int cli_top(int argc, char **argv);
int cli_snapshot_take(px_region *r, struct cli_snapshot *s);
/* Tasks of queue q finished (succeeded, failed, retried) per second
 * between two snapshots; 0 without the first. */
double cli_rate(const struct cli_snapshot *a, const struct cli_snapshot *b, uint32_t q);
uint64_t cli_finished(const px_queue_stats *q);
/* "850ns", "12.3us", "4.5ms", "2.0s". */
void cli_duration(uint64_t ns, char *buf, size_t cap);

/* "2026-11-25T00:55:01.123Z": CLOCK_REALTIME ns as UTC text. */
void cli_utc_text(uint64_t ns, char *buf, size_t cap);

/* Prints "pollux: what: reason" and returns CLI_FAILED. */
int cli_fail(const char *what, int err);
/* Parses a non-negative number; returns 0 or -EINVAL. */
int cli_number(const char *s, double *out);

#endif

/*
 * The pollux command: shared pieces of its subcommands.
 *
 * Exit codes: 0 the operation succeeded, 1 it failed, 2 usage error.
 */
#ifndef PX_CLI_H
#define PX_CLI_H

#include "pollux.h"

#include <stdbool.h>

enum { CLI_OK = 0, CLI_FAILED = 1, CLI_USAGE = 2 };

int cli_worker(int argc, char **argv);
int cli_region(int argc, char **argv);
int cli_wal(int argc, char **argv);
int cli_recover(int argc, char **argv);
int cli_cancel(int argc, char **argv);
int cli_dead(int argc, char **argv);
int cli_schedule(int argc, char **argv);
int cli_queue(int argc, char **argv);
/* Prints the recurring schedules (filtered by task and queue when not
 * NULL), one line each; 0 or a negative code. */
int cli_schedules_print(px_region *r, const char *task, const char *queue, bool as_json);
/* px_cancel of the task or schedule the id text names, with the message
 * and exit code of `pollux cancel`; CLI_USAGE for a malformed id. */
int cli_cancel_id(const char *region, const char *id);
/* Parses none|async|sync; returns 0 or -EINVAL. */
int cli_durability(const char *s, px_durability *out);

/* Prints "pollux: what: reason" and returns CLI_FAILED. */
int cli_fail(const char *what, int err);
/* Parses a non-negative number; returns 0 or -EINVAL. */
int cli_number(const char *s, double *out);

#endif

/*
 * Cron expressions evaluated in a time zone, for recurring schedules.
 *
 * Guarantees: every function here is pure apart from reading the zone
 * file, keeps no global state, never calls setenv, tzset or localtime, and
 * so may be called from any thread at any time (as long as no thread
 * changes the TZDIR environment variable meanwhile). Nothing allocated
 * here outlives a call. A malformed expression or zone file gives -EINVAL,
 * never a crash or an endless loop.
 *
 * Semantics are those of Vixie cron and cronie: five fields (minute, hour,
 * day of month, month, day of week) or an @shortcut; when both day fields
 * are restricted a day matches if either matches, and a day field counts
 * as unrestricted when its first character is '*' (a star with a step
 * included, as cronie does). Matching is on local wall-clock time: a local time skipped by a
 * forward clock change never matches, and a local time repeated by a
 * backward change matches only at its first occurrence.
 */
#ifndef PX_EXECUTOR_CRON_H
#define PX_EXECUTOR_CRON_H

#include <stdint.h>

struct px__cron {
    uint64_t minutes; /* bit m: minute m (0-59) */
    uint32_t hours;   /* bit h: hour h (0-23) */
    uint32_t days;    /* bit d: day of month d (1-31) */
    uint16_t months;  /* bit m: month m (1-12) */
    uint8_t weekdays; /* bit w: weekday w (0 Sunday .. 6 Saturday) */
    uint8_t flags;    /* PX__CRON_DOM_STAR, PX__CRON_DOW_STAR: the field was '*' */
};
enum { PX__CRON_DOM_STAR = 1, PX__CRON_DOW_STAR = 2 };

/* Parses a standard 5-field cron expression or an @shortcut; 0, or -EINVAL
 * (out untouched).
 *
 * Fields are separated by spaces or tabs; leading and trailing whitespace
 * is allowed. An item is '*', N or N-M, optionally followed by /STEP; N
 * alone with a step means N to the field's maximum. Month (jan..dec) and
 * weekday (sun..sat) names are accepted, case-insensitively, wherever a
 * number is; weekday 7 is Sunday. A step must be between 1 and the number
 * of values of its field (60 for minutes, 8 for weekdays). Shortcuts are
 * @yearly, @annually, @monthly, @weekly, @daily, @midnight and @hourly,
 * lower case; @reboot is rejected. */
int px__cron_parse(const char *expr, struct px__cron *out);

/* Checks a time zone name: NULL, "" and "UTC" mean UTC; otherwise an IANA
 * name like "Europe/Paris" that exists as a TZif file under $TZDIR or
 * /usr/share/zoneinfo. 0 or -EINVAL (-ENOMEM if the file cannot be read
 * into memory). */
int px__tz_check(const char *tz);

/* The first time strictly after after_ns (CLOCK_REALTIME ns since the
 * epoch) that matches c in zone tz, as ns since the epoch (always on a
 * whole minute). 0; -EINVAL for a bad zone or a struct that
 * px__cron_parse cannot produce (an empty field, a bit out of range);
 * -ERANGE if nothing matches within 1827 days (five years) after after_ns
 * (e.g. "0 0 30 2 *") or the match does not fit 64 bits of ns; -ENOMEM.
 * *next_ns is written only on success.
 *
 * Zone rules come from the TZif file's transition list only: its POSIX TZ
 * footer is not interpreted, so past the last listed transition (2037 in
 * "fat" files such as Debian's, earlier in "slim" ones) the last offset
 * stays in force. */
int px__cron_next(const struct px__cron *c, const char *tz, uint64_t after_ns, uint64_t *next_ns);

#endif

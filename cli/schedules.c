/*
 * The recurring schedules of `pollux schedule list`, and
 * `pollux schedule cancel`.
 */
#include "cli.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *state_text(px_schedule_state st)
{
    return st == PX_SCHEDULE_ACTIVE ? "active" : st == PX_SCHEDULE_ENDED ? "ended" : "cancelled";
}

/* "2026-11-25T00:55:01Z"; "-" for 0. */
static void when_text(uint64_t ns, char *buf, size_t cap)
{
    if (!ns) {
        snprintf(buf, cap, "-");
        return;
    }
    time_t s = (time_t)(ns / 1000000000ull);
    struct tm tm;
    gmtime_r(&s, &tm);
    strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static json_t *schedule_json(const px_schedule_info *si)
{
    char id[PX_ID_LEN + 1], next[PX_ID_LEN + 1], when[32];
    px_id_format(si->id, id);
    px_id_format(si->next_id, next);
    when_text(si->next_run_ns, when, sizeof when);
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:i, s:i, s:s}", "id", id, "kind",
                          "schedule", "task", si->task, "queue", si->queue, "state",
                          state_text(si->state), "next_run_ns", (json_int_t)si->next_run_ns, "made",
                          (int)si->made, "times", (int)si->times, "next_run", when);
    if (!o)
        return NULL;
    if (si->cron[0]) {
        json_object_set_new(o, "cron", json_string(si->cron));
        json_object_set_new(o, "tz", json_string(si->tz[0] ? si->tz : "UTC"));
    } else {
        json_object_set_new(o, "every_s", json_real(si->every_s));
    }
    json_object_set_new(o, "missed", json_string(si->missed == PX_MISSED_SKIP ? "skip" : "once"));
    if (si->until_unix_ns)
        json_object_set_new(o, "until_ns", json_integer((json_int_t)si->until_unix_ns));
    if (si->next_id)
        json_object_set_new(o, "last_run_id", json_string(next));
    return o;
}

static void print_text(const px_schedule_info *si)
{
    char id[PX_ID_LEN + 1], when[32];
    px_id_format(si->id, id);
    when_text(si->next_run_ns, when, sizeof when);
    printf("%s %s schedule %s", id, si->task, state_text(si->state));
    if (si->cron[0])
        printf(" cron=\"%s\" tz=%s", si->cron, si->tz[0] ? si->tz : "UTC");
    else
        printf(" every=%gs", si->every_s);
    printf(" next_run=%s made=%u", when, si->made);
    if (si->times)
        printf("/%u", si->times);
    printf(" missed=%s\n", si->missed == PX_MISSED_SKIP ? "skip" : "once");
}

int cli_schedules_print(px_region *r, const char *task, const char *queue, bool as_json)
{
    int n = px_schedule_list(r, NULL, 0);
    if (n <= 0)
        return n;
    px_id *ids = malloc((size_t)n * sizeof *ids);
    if (!ids)
        return -ENOMEM;
    int got = px_schedule_list(r, ids, (size_t)n);
    if (got < n)
        n = got < 0 ? 0 : got; /* some ended and were reused meanwhile */
    for (int i = 0; i < n; i++) {
        px_schedule_info si;
        if (px_schedule_get(r, ids[i], &si) != 0 || (task && strcmp(task, si.task)) ||
            (queue && strcmp(queue, si.queue)))
            continue; /* gone meanwhile, or filtered out */
        if (!as_json) {
            print_text(&si);
            continue;
        }
        cli_json_print(schedule_json(&si));
    }
    free(ids);
    return 0;
}

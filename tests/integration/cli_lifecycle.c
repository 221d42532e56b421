/*
 * pollux dead list|retry|purge and pollux schedule list: what they print
 * (text and JSON), what they do, and their exit codes.
 */
#include "it.h"

#include <stdatomic.h>

static char out[16384], bin[512];
static _Atomic int *healed;

TestSuite(cli_lifecycle, .fini = it_cleanup, .timeout = 60);

static int fragile(px_ctx *ctx, const void *a, size_t n)
{
    if (atomic_load(healed))
        return px_result(ctx, a, n);
    return px_fail(ctx, "no luck on attempt %d", px_task_attempt(ctx));
}

static const px_task_def defs[] = {
    {.name = "fragile", .fn = fragile, .mode = PX_THREAD, .max_retries = 1},
    {.name = "later", .fn = fragile, .mode = PX_THREAD},
};

static px_region *setup(px_workers **w)
{
    it_bin(bin, sizeof bin, "pollux");
    healed = it_shared(sizeof *healed);
    px_region *r = it_region_new(NULL);
    cr_assert_eq(px_task_register_range(r, defs, defs + 2), 2);
    cr_assert_eq(px_workers_start(r, &(px_workers_opts){.threads = 1, .processes = 1}, w), 0);
    return r;
}

static px_id dead_task(px_region *r, const char *args)
{
    px_id id;
    cr_assert_eq(px_submit(r, "fragile", args, strlen(args), NULL, &id), 0);
    cr_assert_eq(px_join(r, id, 10, NULL, 0, NULL), PX_ETASKFAILED);
    cr_assert_eq(px_status(r, id), PX_DEAD);
    return id;
}

Test(cli_lifecycle, dead_list_retry_and_purge)
{
    px_workers *w;
    px_region *r = setup(&w);
    px_id a = dead_task(r, "first \"args\"");
    px_id b = dead_task(r, "second");
    px_id ok;
    atomic_store(healed, 1);
    cr_assert_eq(px_submit(r, "later", "x", 1, NULL, &ok), 0);
    cr_assert_eq(px_join(r, ok, 10, out, sizeof out, NULL), 0);
    atomic_store(healed, 0);
    char ta[PX_ID_LEN + 1], tb[PX_ID_LEN + 1], tok[PX_ID_LEN + 1];
    px_id_format(a, ta);
    px_id_format(b, tb);
    px_id_format(ok, tok);

    char *list[] = {bin, "dead", "list", "--region", it_region, NULL};
    cr_assert_eq(it_run(list, out, sizeof out, 10), 0, "%s", out);
    cr_assert(strstr(out, ta) && strstr(out, tb), "%s", out);
    cr_assert(!strstr(out, tok), "a successful task is not dead: %s", out);
    cr_assert(strstr(out, "DEAD attempts=2"), "%s", out);
    cr_assert(strstr(out, "error=\"no luck on attempt 2\""), "%s", out);
    cr_assert(strstr(out, "args=\"first \\x22args\\x22\""), "escaped args: %s", out);

    char *json[] = {bin, "dead", "list", "--region", it_region, "--json", NULL};
    cr_assert_eq(it_run(json, out, sizeof out, 10), 0, "%s", out);
    cr_assert(strstr(out, "\"state\":\"DEAD\""), "%s", out);
    cr_assert(strstr(out, "\"args_hex\":\"7365636f6e64\""), "second in hex: %s", out);
    int lines = 0;
    for (char *p = out; (p = strchr(p, '\n')); p++)
        lines++;
    cr_assert_eq(lines, 2, "one object per line: %s", out);

    char *filtered[] = {bin, "dead", "list", "--region", it_region, "--task", "later", NULL};
    cr_assert_eq(it_run(filtered, out, sizeof out, 10), 0, "%s", out);
    cr_assert_str_empty(out, "no dead task of that name: %s", out);

    /* Retry one: it runs again under its id. */
    atomic_store(healed, 1);
    char *retry[] = {bin, "dead", "retry", "--region", it_region, ta, NULL};
    cr_assert_eq(it_run(retry, out, sizeof out, 10), 0, "%s", out);
    cr_assert(strstr(out, "requeued"), "%s", out);
    char res[64];
    size_t len;
    cr_assert_eq(px_join(r, a, 10, res, sizeof res, &len), 0);
    cr_assert_eq(len, strlen("first \"args\""));
    cr_assert_eq(px_status(r, b), PX_DEAD, "only the one named");
    /* Not dead any more: refused, exit 1. */
    cr_assert_eq(it_run(retry, out, sizeof out, 10), 1, "%s", out);
    cr_assert(strstr(out, "not DEAD"), "%s", out);

    char *purge[] = {bin, "dead", "purge", "--region", it_region, "--all", NULL};
    cr_assert_eq(it_run(purge, out, sizeof out, 10), 0, "%s", out);
    cr_assert(strstr(out, tb) && strstr(out, "purged"), "%s", out);
    cr_assert_eq(px_status(r, b), -ENOENT);
    cr_assert_eq(px_status(r, ok), PX_SUCCESS, "purge takes dead tasks only");

    char *bad_id[] = {bin, "dead", "retry", "--region", it_region, "nonsense", NULL};
    cr_assert_eq(it_run(bad_id, out, sizeof out, 10), 2, "%s", out);
    char *both[] = {bin, "dead", "purge", "--region", it_region, "--all", ta, NULL};
    cr_assert_eq(it_run(both, out, sizeof out, 10), 2, "%s", out);
    char *verb[] = {bin, "dead", "bury", "--region", it_region, NULL};
    cr_assert_eq(it_run(verb, out, sizeof out, 10), 2, "%s", out);
    char *noregion[] = {bin, "dead", "list", "--region", "/px-no-such-region", NULL};
    cr_assert_eq(it_run(noregion, out, sizeof out, 10), 1, "%s", out);
    char *help[] = {bin, "dead", "--help", NULL};
    cr_assert_eq(it_run(help, out, sizeof out, 10), 0, "%s", out);
    cr_assert(strstr(out, "usage: pollux dead"), "%s", out);
    cr_assert_eq(px_workers_stop(w), 0);
    px_region_close(r);
}

Test(cli_lifecycle, schedule_list_shows_timed_tasks_by_next_run)
{
    it_bin(bin, sizeof bin, "pollux");
    healed = it_shared(sizeof *healed);
    px_region *r = it_region_new(NULL);
    cr_assert_eq(px_task_register_range(r, defs, defs + 2), 2);
    px_id late, soon, now;
    cr_assert_eq(px_submit(r, "later", "l", 1, &(px_submit_opts){.delay_s = 60}, &late), 0);
    cr_assert_eq(px_submit(r, "fragile", "s", 1, &(px_submit_opts){.delay_s = 30}, &soon), 0);
    cr_assert_eq(px_submit(r, "later", "n", 1, NULL, &now), 0);
    char tl[PX_ID_LEN + 1], ts[PX_ID_LEN + 1], tn[PX_ID_LEN + 1];
    px_id_format(late, tl);
    px_id_format(soon, ts);
    px_id_format(now, tn);

    char *list[] = {bin, "schedule", "list", "--region", it_region, NULL};
    cr_assert_eq(it_run(list, out, sizeof out, 10), 0, "%s", out);
    char *ps = strstr(out, ts), *pl = strstr(out, tl);
    cr_assert(ps && pl && ps < pl, "the earlier first: %s", out);
    cr_assert(!strstr(out, tn), "a pending task is not listed: %s", out);
    cr_assert(strstr(out, "SCHEDULED attempts=0 next_run=20"), "%s", out);

    char *json[] = {bin,      "schedule", "list",  "--region", it_region,
                    "--json", "--task",   "later", NULL};
    cr_assert_eq(it_run(json, out, sizeof out, 10), 0, "%s", out);
    cr_assert(strstr(out, tl) && !strstr(out, ts), "%s", out);
    px_task_info ti;
    cr_assert_eq(px_info(r, late, &ti), 0);
    char want[64];
    snprintf(want, sizeof want, "\"next_run_ns\":%llu", (unsigned long long)ti.next_run_ns);
    cr_assert(strstr(out, want), "%s not in %s", want, out);

    char *extra[] = {bin, "schedule", "list", "--region", it_region, tl, NULL};
    cr_assert_eq(it_run(extra, out, sizeof out, 10), 2, "%s", out);
    char *noverb[] = {bin, "schedule", NULL};
    cr_assert_eq(it_run(noverb, out, sizeof out, 10), 2, "%s", out);
    px_region_close(r);
}

Test(cli_lifecycle, schedule_list_shows_recurring_schedules_and_cancel_stops_one)
{
    it_bin(bin, sizeof bin, "pollux");
    px_region *r = it_region_new(NULL);
    cr_assert_eq(px_task_register_range(r, defs, defs + 2), 2);
    px_id every, cron;
    cr_assert_eq(
        px_submit(r, "later", "e", 1, &(px_submit_opts){.every_s = 90, .times = 3}, &every), 0);
    cr_assert_eq(px_submit(r, "later", "c", 1,
                           &(px_submit_opts){.cron = "0 9 * * mon-fri", .tz = "Europe/Paris"},
                           &cron),
                 0);
    char te[PX_ID_LEN + 1], tc[PX_ID_LEN + 1];
    px_id_format(every, te);
    px_id_format(cron, tc);

    char *list[] = {bin, "schedule", "list", "--region", it_region, NULL};
    cr_assert_eq(it_run(list, out, sizeof out, 10), 0, "%s", out);
    char want[128];
    snprintf(want, sizeof want, "%s later schedule active every=90s next_run=20", te);
    cr_assert(strstr(out, want), "%s not in %s", want, out);
    cr_assert(strstr(out, "made=1/3 missed=once"), "%s", out);
    snprintf(want, sizeof want, "%s later schedule active cron=\"0 9 * * mon-fri\" tz=Europe/Paris",
             tc);
    cr_assert(strstr(out, want), "%s not in %s", want, out);
    /* Their runs wait for their time, listed after the schedules. */
    cr_assert_eq(strstr(out, "SCHEDULED attempts=0") > strstr(out, want), 1, "%s", out);

    char *json[] = {bin, "schedule", "list", "--region", it_region, "--json", NULL};
    cr_assert_eq(it_run(json, out, sizeof out, 10), 0, "%s", out);
    px_schedule_info si;
    cr_assert_eq(px_schedule_get(r, cron, &si), 0);
    snprintf(want, sizeof want, "\"next_run_ns\":%llu", (unsigned long long)si.next_run_ns);
    cr_assert(strstr(out, want), "%s not in %s", want, out);
    cr_assert(strstr(out, "\"kind\":\"schedule\""), "%s", out);

    char *cancel[] = {bin, "schedule", "cancel", "--region", it_region, te, NULL};
    cr_assert_eq(it_run(cancel, out, sizeof out, 10), 0, "%s", out);
    cr_assert_eq(px_schedule_get(r, every, &si), 0);
    cr_assert_eq(si.state, PX_SCHEDULE_CANCELLED);
    cr_assert_eq(px_status(r, si.next_id), PX_CANCELLED, "its waiting run went too");
    cr_assert_eq(it_run(cancel, out, sizeof out, 10), 1, "cancelled already: %s", out);
    /* pollux cancel takes a schedule's id as well. */
    char *plain[] = {bin, "cancel", "--region", it_region, tc, NULL};
    cr_assert_eq(it_run(plain, out, sizeof out, 10), 0, "%s", out);
    cr_assert_eq(px_schedule_get(r, cron, &si), 0);
    cr_assert_eq(si.state, PX_SCHEDULE_CANCELLED);
    char *bad[] = {bin, "schedule", "cancel", "--region", it_region, "zz", NULL};
    cr_assert_eq(it_run(bad, out, sizeof out, 10), 2, "%s", out);
    px_region_close(r);
}

Test(cli_lifecycle, queue_pause_status_and_resume)
{
    it_bin(bin, sizeof bin, "pollux");
    px_region *r = it_region_new(NULL);
    cr_assert_eq(px_task_register_range(r, defs, defs + 2), 2);
    char *pause[] = {bin, "queue", "pause", "--region", it_region, "default", NULL};
    cr_assert_eq(it_run(pause, out, sizeof out, 10), 0, "%s", out);
    cr_assert_str_eq(out, "default paused\n");
    cr_assert_eq(px_queue_paused(r, "default"), 1);
    char *status[] = {bin, "queue", "status", "--region", it_region, "default", NULL};
    cr_assert_eq(it_run(status, out, sizeof out, 10), 0, "%s", out);
    cr_assert_str_eq(out, "default paused\n");
    char *resume[] = {bin, "queue", "resume", "--region", it_region, "default", NULL};
    cr_assert_eq(it_run(resume, out, sizeof out, 10), 0, "%s", out);
    cr_assert_str_eq(out, "default running\n");
    cr_assert_eq(px_queue_paused(r, "default"), 0);
    char *rate[] = {bin, "queue", "rate", "--region", it_region, "default", "25", NULL};
    cr_assert_eq(it_run(rate, out, sizeof out, 10), 0, "%s", out);
    cr_assert_str_eq(out, "default running rate=25/s\n");
    cr_assert_eq(px_queue_rate(r, "default"), 25);
    char *badrate[] = {bin, "queue", "rate", "--region", it_region, "default", "-3", NULL};
    cr_assert_eq(it_run(badrate, out, sizeof out, 10), 2, "%s", out);
    char *norate[] = {bin, "queue", "rate", "--region", it_region, "default", NULL};
    cr_assert_eq(it_run(norate, out, sizeof out, 10), 2, "%s", out);
    char *conc[] = {bin, "queue", "concurrency", "--region", it_region, "default", "4", NULL};
    cr_assert_eq(it_run(conc, out, sizeof out, 10), 0, "%s", out);
    cr_assert_str_eq(out, "default running rate=25/s concurrency=0/4\n");
    cr_assert_eq(px_queue_concurrency(r, "default", NULL), 4);
    char *badconc[] = {bin, "queue", "concurrency", "--region", it_region, "default", "2.5", NULL};
    cr_assert_eq(it_run(badconc, out, sizeof out, 10), 2, "%s", out);
    char *bigconc[] = {bin, "queue", "concurrency", "--region", it_region, "default", "300", NULL};
    cr_assert_eq(it_run(bigconc, out, sizeof out, 10), 2, "%s", out);
    cr_assert_eq(px_queue_concurrency(r, "default", NULL), 4, "unchanged");
    char *unknown[] = {bin, "queue", "pause", "--region", it_region, "nope", NULL};
    cr_assert_eq(it_run(unknown, out, sizeof out, 10), 1, "%s", out);
    char *noqueue[] = {bin, "queue", "pause", "--region", it_region, NULL};
    cr_assert_eq(it_run(noqueue, out, sizeof out, 10), 2, "%s", out);
    char *verb[] = {bin, "queue", "drain", "--region", it_region, "default", NULL};
    cr_assert_eq(it_run(verb, out, sizeof out, 10), 2, "%s", out);
    px_region_close(r);
}

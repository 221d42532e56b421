/*
 * pollux submit, status, inspect, join and list: what they print (text and
 * JSON), what they do to the region, and their exit codes.
 */
#include "it.h"

#include <jansson.h>

static char out[16384], bin[512];

TestSuite(cli_task, .fini = it_cleanup, .timeout = 30);

static int echo(px_ctx *ctx, const void *a, size_t n)
{
    return px_result(ctx, a, n);
}

static int boom(px_ctx *ctx, const void *a, size_t n)
{
    return px_fail(ctx, "boom %.*s", (int)n, (const char *)a);
}

static const px_task_def defs[] = {
    {.name = "echo", .fn = echo, .mode = PX_THREAD},
    {.name = "boom", .fn = boom, .mode = PX_THREAD},
};

/* ---- reading the JSON back ------------------------------------------------ */

/* Parses line n (from 0) of text as one JSON object. */
static json_t *js_line(const char *text, int n)
{
    const char *p = text;
    for (int i = 0; i < n && p; i++)
        if ((p = strchr(p, '\n')))
            p++;
    cr_assert(p && *p, "no line %d in: %s", n, text);
    char line[4096];
    size_t len = strcspn(p, "\n");
    cr_assert_lt(len, sizeof line);
    memcpy(line, p, len);
    line[len] = '\0';
    json_error_t err;
    json_t *o = json_loads(line, 0, &err);
    cr_assert(o && json_is_object(o), "line %d is not a JSON object (%s): %s", n, err.text, line);
    return o;
}

/* The string at key, or NULL when it is missing, null or not a string. */
static const char *js_str(json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

/* ---- helpers -------------------------------------------------------------- */

static px_region *setup(const px_region_opts *o)
{
    it_bin(bin, sizeof bin, "pollux");
    px_region *r = it_region_new(o);
    cr_assert_eq(px_task_register_range(r, defs, defs + 2), 2);
    return r;
}

static px_workers *workers(px_region *r)
{
    px_workers *w;
    cr_assert_eq(px_workers_start(r, &(px_workers_opts){.threads = 1, .processes = 1}, &w), 0);
    return w;
}

/* The id a command printed first. */
static px_id first_id(const char *text)
{
    char head[PX_ID_LEN + 1] = {0};
    memcpy(head, text, strnlen(text, PX_ID_LEN));
    px_id id;
    cr_assert_eq(px_id_parse(head, &id), 0, "no id first in: %s", text);
    return id;
}

static int lines_of(const char *text)
{
    int n = 0;
    for (const char *p = text; (p = strchr(p, '\n')); p++)
        n++;
    return n;
}

#define RUN(code, ...)                                                                             \
    do {                                                                                           \
        char *argv_[] = {bin, __VA_ARGS__, NULL};                                                  \
        int rc_ = it_run(argv_, out, sizeof out, 10);                                              \
        cr_assert_eq(rc_, (code), "exit %d, not %d: %s", rc_, (code), out);                        \
    } while (0)

/* ---- submit ---------------------------------------------------------------- */

Test(cli_task, submit_wait_prints_the_result)
{
    px_region *r = setup(NULL);
    px_workers *w = workers(r);
    char want[64], id[PX_ID_LEN + 1];

    RUN(0, "submit", "--region", it_region, "echo", "--arg", "hello", "--wait", "5");
    px_id a = first_id(out);
    px_id_format(a, id);
    snprintf(want, sizeof want, "%s\nhello", id);
    cr_assert_str_eq(out, want, "the id, then the result as it is");
    cr_assert_eq(px_status(r, a), PX_SUCCESS);

    /* The region as the first positional argument; --wait=TIMEOUT; hex. */
    RUN(0, "submit", it_region, "echo", "--arg", "hi", "--wait=5", "--hex");
    cr_assert(strstr(out, "\n6869\n"), "%s", out);

    RUN(0, "submit", it_region, "echo", "--arg", "hello", "--wait", "--json");
    cr_assert_eq(lines_of(out), 2, "one object per line: %s", out);
    json_t *sub = js_line(out, 0), *res = js_line(out, 1);
    cr_assert_str_eq(js_str(sub, "kind"), "task");
    cr_assert(json_is_false(json_object_get(sub, "existing")));
    cr_assert_str_eq(js_str(res, "id"), js_str(sub, "id"));
    cr_assert_str_eq(js_str(res, "state"), "SUCCESS");
    cr_assert_str_eq(js_str(res, "result"), "hello");
    cr_assert_str_eq(js_str(res, "result_hex"), "68656c6c6f");
    cr_assert_eq(json_integer_value(json_object_get(res, "result_len")), 5);
    json_decref(sub);
    json_decref(res);

    /* Binary args from a file come back byte for byte. */
    char path[] = "/tmp/px-cli-task-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, "\x00\x01\xff", 3), 3);
    close(fd);
    RUN(0, "submit", it_region, "echo", "--arg-file", path, "--wait", "5", "--hex");
    unlink(path);
    cr_assert(strstr(out, "\n0001ff\n"), "%s", out);
    RUN(1, "submit", it_region, "echo", "--arg-file", "/nonexistent/px-args");
    cr_assert(strstr(out, "pollux: /nonexistent/px-args: "), "%s", out);

    char cmd[1024];
    snprintf(cmd, sizeof cmd, "printf 'from stdin' | '%s' submit '%s' echo --arg-stdin --wait 5",
             bin, it_region);
    char *sh[] = {"/bin/sh", "-c", cmd, NULL};
    cr_assert_eq(it_run(sh, out, sizeof out, 10), 0, "%s", out);
    cr_assert(strstr(out, "\nfrom stdin"), "%s", out);

    /* A failed task: its error on stderr, exit 1. */
    RUN(1, "submit", it_region, "boom", "--arg", "here", "--wait", "5");
    cr_assert(strstr(out, "FAILED: boom here\n"), "%s", out);
    cr_assert_eq(px_status(r, first_id(out)), PX_FAILED);
    cr_assert_eq(px_workers_stop(w), 0);
    px_region_close(r);
}

Test(cli_task, submit_options_reach_the_task)
{
    px_region *r = setup(NULL);
    px_task_info ti;

    RUN(0, "submit", "--region", it_region, "echo", "--queue", "other", "--priority", "high",
        "--delay", "60");
    cr_assert_eq(lines_of(out), 1, "%s", out);
    cr_assert_eq(px_info(r, first_id(out), &ti), 0);
    cr_assert_str_eq(ti.queue, "other");
    cr_assert_eq(ti.priority, PX_PRIORITY_HIGH);
    cr_assert_eq(ti.state, PX_SCHEDULED);

    RUN(0, "submit", it_region, "echo", "--priority", "1", "--at", "2030-01-02T03:04:05.5Z");
    cr_assert_eq(px_info(r, first_id(out), &ti), 0);
    cr_assert_eq(ti.priority, PX_PRIORITY_LOWEST);
    cr_assert_eq(ti.next_run_ns, 1893553445500000000ull, "%llu",
                 (unsigned long long)ti.next_run_ns);
    RUN(0, "submit", it_region, "echo", "--priority", "HIGHEST", "--at", "1893456000.25");
    cr_assert_eq(px_info(r, first_id(out), &ti), 0);
    cr_assert_eq(ti.next_run_ns, 1893456000250000000ull);
    cr_assert_eq(ti.priority, PX_PRIORITY_HIGHEST);

    /* A key names the task already there: the same id, said to be existing. */
    RUN(0, "submit", it_region, "echo", "--key", "k1", "--delay", "60");
    px_id keyed = first_id(out);
    cr_assert_eq(lines_of(out), 1);
    cr_assert(!strstr(out, "existing"), "%s", out);
    RUN(0, "submit", it_region, "echo", "--key", "k1");
    cr_assert_eq(first_id(out), keyed);
    cr_assert(strstr(out, " existing\n"), "%s", out);
    RUN(0, "submit", it_region, "echo", "--key", "k1", "--json");
    json_t *o = js_line(out, 0);
    cr_assert(json_is_true(json_object_get(o, "existing")), "%s", out);
    char id[PX_ID_LEN + 1];
    px_id_format(keyed, id);
    cr_assert_str_eq(js_str(o, "id"), id);
    json_decref(o);
    px_region_close(r);
}

Test(cli_task, submit_makes_recurring_schedules)
{
    px_region *r = setup(NULL);
    px_schedule_info si;

    RUN(0, "submit", it_region, "echo", "--every", "90", "--times", "3", "--missed", "skip");
    px_id every = first_id(out);
    cr_assert_eq(px_schedule_get(r, every, &si), 0, "a schedule's id: %s", out);
    cr_assert_eq(si.every_s, 90);
    cr_assert_eq(si.times, 3);
    cr_assert_eq(si.missed, PX_MISSED_SKIP);

    RUN(0, "submit", it_region, "echo", "--cron", "0 9 * * mon-fri", "--tz", "Europe/Paris",
        "--until", "2099-01-01T00:00:00Z", "--json");
    json_t *o = js_line(out, 0);
    cr_assert_str_eq(js_str(o, "kind"), "schedule");
    px_id cron;
    cr_assert_eq(px_id_parse(js_str(o, "id"), &cron), 0);
    json_decref(o);
    cr_assert_eq(px_schedule_get(r, cron, &si), 0);
    cr_assert_str_eq(si.cron, "0 9 * * mon-fri");
    cr_assert_str_eq(si.tz, "Europe/Paris");
    cr_assert_eq(si.until_unix_ns, 4070908800000000000ull);

    RUN(1, "submit", it_region, "echo", "--cron", "61 * * * *");
    cr_assert(strstr(out, "pollux: bad --cron or --tz: \"61 * * * *\" in UTC"), "%s", out);
    RUN(1, "submit", it_region, "echo", "--cron", "@daily", "--tz", "Mars/Olympus_Mons");
    cr_assert(strstr(out, "pollux: bad --cron or --tz:"), "%s", out);
    char big[300];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    RUN(1, "submit", it_region, "echo", "--every", "5", "--arg", big);
    cr_assert(strstr(out, "at most 256 bytes"), "%s", out);

    RUN(2, "submit", it_region, "echo", "--every", "5", "--wait");
    cr_assert(strstr(out, "no --wait"), "%s", out);
    RUN(2, "submit", it_region, "echo", "--every", "5", "--cron", "@daily");
    RUN(2, "submit", it_region, "echo", "--tz", "UTC");
    RUN(2, "submit", it_region, "echo", "--times", "2");
    RUN(2, "submit", it_region, "echo", "--every", "0");
    RUN(2, "submit", it_region, "echo", "--every", "5", "--missed", "sometimes");
    cr_assert_eq(px_schedule_list(r, NULL, 0), 2, "only the two good ones were made");
    px_region_close(r);
}

Test(cli_task, submit_refuses_bad_input)
{
    px_region *r = setup(&(px_region_opts){.max_payload = 64});
    RUN(1, "submit", "--region", "/px-no-such-region", "echo");
    cr_assert(strstr(out, "pollux: /px-no-such-region: "), "%s", out);
    RUN(1, "submit", it_region, "nosuch");
    cr_assert_str_eq(out, "pollux: nosuch: no task of that name is defined in the region\n");
    char big[100];
    memset(big, 'b', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    RUN(1, "submit", it_region, "echo", "--arg", big);
    cr_assert(strstr(out, "pollux: args: payload larger than the region's max_payload"), "%s", out);

    const char *priorities[] = {"0", "6", "urgent", ""};
    for (size_t i = 0; i < sizeof priorities / sizeof *priorities; i++) {
        RUN(2, "submit", it_region, "echo", "--priority", (char *)priorities[i]);
        cr_assert(strstr(out, "pollux: bad --priority"), "%s", out);
    }
    const char *times[] = {"2026-02-30T00:00:00Z",
                           "2026-11-25 10:00:00Z",
                           "2026-11-25T10:00:00",
                           "2026-11-25T24:00:00Z",
                           "12abc",
                           "-5",
                           "1e9",
                           "99999999999",
                           "1795600800.",
                           "tomorrow"};
    for (size_t i = 0; i < sizeof times / sizeof *times; i++) {
        RUN(2, "submit", it_region, "echo", "--at", (char *)times[i]);
        cr_assert(strstr(out, "pollux: bad --at"), "%s: %s", times[i], out);
    }
    RUN(2, "submit", it_region, "echo", "--delay", "soon");
    RUN(2, "submit", it_region, "echo", "--arg", "a", "--arg-stdin");
    RUN(2, "submit", it_region, "echo", "--hex");
    RUN(2, "submit", it_region, "echo", "--wait", "-1");
    RUN(2, "submit", "--region", it_region);
    RUN(2, "submit", "--region", it_region, "echo", "extra");
    RUN(2, "submit", "--bogus", it_region, "echo");
    RUN(0, "submit", "--help");
    cr_assert(strstr(out, "usage: pollux submit --region NAME TASK"), "%s", out);
    uint32_t cursor = 0;
    px_id ids[4];
    cr_assert_eq(px_list(r, NULL, ids, 4, &cursor), 0, "nothing was submitted");
    px_region_close(r);
}

/* ---- status, inspect, join ------------------------------------------------ */

Test(cli_task, status_and_inspect_of_tasks_and_schedules)
{
    px_region *r = setup(NULL);
    px_workers *w = workers(r);
    px_id done, failed, later, sched;
    cr_assert_eq(px_submit(r, "echo", "hello", 5, NULL, &done), 0);
    cr_assert_eq(px_join(r, done, 5, NULL, 0, NULL), 0);
    cr_assert_eq(px_submit(r, "boom", "x", 1, NULL, &failed), 0);
    cr_assert_eq(px_join(r, failed, 5, NULL, 0, NULL), PX_ETASKFAILED);
    cr_assert_eq(px_submit(r, "echo", NULL, 0, &(px_submit_opts){.delay_s = 60}, &later), 0);
    cr_assert_eq(px_submit(r, "echo", NULL, 0, &(px_submit_opts){.every_s = 90}, &sched), 0);
    cr_assert_eq(px_workers_stop(w), 0);
    char td[PX_ID_LEN + 1], tf[PX_ID_LEN + 1], tl[PX_ID_LEN + 1], ts[PX_ID_LEN + 1];
    px_id_format(done, td);
    px_id_format(failed, tf);
    px_id_format(later, tl);
    px_id_format(sched, ts);

    RUN(0, "status", "--region", it_region, td);
    cr_assert_str_eq(out, "SUCCESS\n");
    RUN(0, "status", "--region", it_region, tl);
    cr_assert_str_eq(out, "SCHEDULED\n");
    RUN(0, "status", "--region", it_region, ts);
    cr_assert_str_eq(out, "schedule active\n");
    RUN(2, "status", "--region", it_region, "nonsense");
    cr_assert(strstr(out, "'nonsense' is not an id"), "%s", out);
    RUN(1, "status", "--region", it_region, "00000007-0000fff0");
    RUN(1, "status", "--region", "/px-no-such-region", td);
    RUN(2, "status", "--region", it_region);

    px_task_info ti;
    cr_assert_eq(px_info(r, done, &ti), 0);
    RUN(0, "inspect", "--region", it_region, td);
    char want[128];
    snprintf(want, sizeof want, "id: %s\nkind: task\ntask: echo\nqueue: default\nstate: SUCCESS\n",
             td);
    cr_assert(strncmp(out, want, strlen(want)) == 0, "%s", out);
    snprintf(want, sizeof want, "\nworker_pid: %d\nresult_len: 5\nenqueued: 20", ti.worker_pid);
    cr_assert(strstr(out, want), "%s not in %s", want, out);
    cr_assert(strstr(out, "\nmode: thread\npriority: normal\nattempts: 1\n"), "%s", out);
    cr_assert(strstr(out, "\nnext_run: -\nschedule: -\nerror: -\n"), "%s", out);
    cr_assert(!strstr(out, "_ns"), "no nanoseconds in text: %s", out);

    RUN(0, "inspect", "--region", it_region, td, "--json");
    json_t *o = js_line(out, 0);
    /* Times are kept in clock ticks and converted by each process with its
     * own reading of the tick rate: they agree within nanoseconds, not to
     * the nanosecond. */
    cr_assert_float_eq((double)json_integer_value(json_object_get(o, "enqueued_ns")),
                       (double)ti.enqueued_ns, 1e6, "%llu: %s", (unsigned long long)ti.enqueued_ns,
                       out);
    cr_assert_float_eq((double)json_integer_value(json_object_get(o, "finished_ns")),
                       (double)ti.finished_ns, 1e6);
    cr_assert_eq(json_integer_value(json_object_get(o, "worker_pid")), ti.worker_pid);
    cr_assert_gt(ti.worker_pid, 0);
    double wait_s = (double)(ti.started_ns - ti.enqueued_ns) / 1e9;
    double run_s = (double)(ti.finished_ns - ti.started_ns) / 1e9;
    cr_assert_float_eq(json_real_value(json_object_get(o, "wait_s")), wait_s, 1e-6);
    cr_assert_float_eq(json_real_value(json_object_get(o, "run_s")), run_s, 1e-6);
    cr_assert_gt(json_real_value(json_object_get(o, "run_s")), 0);
    cr_assert(json_is_null(json_object_get(o, "error")) &&
              json_is_null(json_object_get(o, "schedule")));
    json_decref(o);

    RUN(0, "inspect", "--region", it_region, tf);
    cr_assert(strstr(out, "\nstate: FAILED\n") && strstr(out, "\nerror: boom x\n"), "%s", out);
    RUN(0, "inspect", "--region", it_region, tl);
    cr_assert(strstr(out, "\nstarted: -\n") && strstr(out, "\nwait_s: -\n"), "%s", out);

    px_schedule_info si;
    cr_assert_eq(px_schedule_get(r, sched, &si), 0);
    RUN(0, "inspect", "--region", it_region, ts, "--json");
    o = js_line(out, 0);
    cr_assert_str_eq(js_str(o, "kind"), "schedule");
    cr_assert_str_eq(js_str(o, "state"), "active");
    cr_assert_float_eq(json_real_value(json_object_get(o, "every_s")), 90, 1e-9);
    cr_assert_eq(json_integer_value(json_object_get(o, "next_run_ns")), (json_int_t)si.next_run_ns);
    cr_assert_eq(json_integer_value(json_object_get(o, "made")), 1);
    px_id run;
    cr_assert_eq(px_id_parse(js_str(o, "last_run"), &run), 0);
    cr_assert_eq(run, si.next_id);
    json_decref(o);
    /* The run knows the schedule that made it. */
    char tr[PX_ID_LEN + 1];
    px_id_format(si.next_id, tr);
    RUN(0, "inspect", "--region", it_region, tr);
    snprintf(want, sizeof want, "\nschedule: %s\n", ts);
    cr_assert(strstr(out, want), "%s", out);

    cr_assert_eq(px_cancel(r, sched), 0);
    RUN(0, "status", "--region", it_region, ts);
    cr_assert_str_eq(out, "schedule cancelled\n");
    RUN(2, "inspect", "--region", it_region, "0000000g-00000000");
    RUN(1, "inspect", "--region", it_region, "00000007-0000fff0");
    RUN(0, "inspect", "--help");
    cr_assert(strstr(out, "usage: pollux inspect"), "%s", out);
    px_region_close(r);
}

Test(cli_task, join_waits_for_an_existing_task)
{
    px_region *r = setup(NULL);
    px_workers *w = workers(r);
    px_id done, failed, later, gone;
    cr_assert_eq(px_submit(r, "echo", "hi", 2, NULL, &done), 0);
    cr_assert_eq(px_submit(r, "boom", "j", 1, NULL, &failed), 0);
    cr_assert_eq(px_submit(r, "echo", NULL, 0, &(px_submit_opts){.delay_s = 60}, &later), 0);
    cr_assert_eq(px_submit(r, "echo", NULL, 0, &(px_submit_opts){.delay_s = 60}, &gone), 0);
    cr_assert_eq(px_cancel(r, gone), 0);
    char td[PX_ID_LEN + 1], tf[PX_ID_LEN + 1], tl[PX_ID_LEN + 1], tg[PX_ID_LEN + 1];
    px_id_format(done, td);
    px_id_format(failed, tf);
    px_id_format(later, tl);
    px_id_format(gone, tg);

    RUN(0, "join", "--region", it_region, td, "--timeout", "5");
    cr_assert_str_eq(out, "hi");
    RUN(0, "join", "--region", it_region, td, "--hex");
    cr_assert_str_eq(out, "6869\n");
    RUN(0, "join", "--region", it_region, td, "--json");
    json_t *o = js_line(out, 0);
    cr_assert_str_eq(js_str(o, "state"), "SUCCESS");
    cr_assert_str_eq(js_str(o, "result"), "hi");
    json_decref(o);

    RUN(1, "join", "--region", it_region, tf, "--timeout", "5");
    char want[128];
    snprintf(want, sizeof want, "pollux: task %s FAILED: boom j\n", tf);
    cr_assert_str_eq(out, want);
    RUN(1, "join", "--region", it_region, tf, "--timeout", "5", "--json");
    o = js_line(out, 0);
    cr_assert_str_eq(js_str(o, "error"), "boom j");
    json_decref(o);

    double t0 = it_now();
    RUN(1, "join", "--region", it_region, tl, "--timeout", "0.2");
    cr_assert_geq(it_now() - t0, 0.2, "it waited");
    snprintf(want, sizeof want, "pollux: %s: timed out\n", tl);
    cr_assert_str_eq(out, want);
    RUN(1, "join", "--region", it_region, tg);
    snprintf(want, sizeof want, "pollux: task %s was cancelled\n", tg);
    cr_assert_str_eq(out, want);

    RUN(1, "join", "--region", it_region, "00000007-0000fff0");
    RUN(2, "join", "--region", it_region, "zz");
    RUN(2, "join", "--region", it_region, td, "--timeout", "never");
    RUN(1, "join", "--region", "/px-no-such-region", td);
    cr_assert_eq(px_workers_stop(w), 0);
    px_region_close(r);
}

/* ---- list ------------------------------------------------------------------ */

Test(cli_task, list_filters_and_limits)
{
    px_region *r = setup(NULL);
    px_id a, b, c;
    cr_assert_eq(px_submit(r, "echo", NULL, 0, NULL, &a), 0);
    cr_assert_eq(px_submit(r, "echo", NULL, 0, &(px_submit_opts){.delay_s = 60}, &b), 0);
    cr_assert_eq(px_submit(r, "boom", NULL, 0, &(px_submit_opts){.queue = "other"}, &c), 0);
    char ta[PX_ID_LEN + 1], tb[PX_ID_LEN + 1], tc[PX_ID_LEN + 1], want[128];
    px_id_format(a, ta);
    px_id_format(b, tb);
    px_id_format(c, tc);

    RUN(0, "list", "--region", it_region);
    cr_assert_eq(lines_of(out), 3, "%s", out);
    snprintf(want, sizeof want, "%s PENDING echo queue=default attempts=0\n", ta);
    cr_assert(strstr(out, want), "%s not in %s", want, out);
    snprintf(want, sizeof want, "%s SCHEDULED echo queue=default attempts=0\n", tb);
    cr_assert(strstr(out, want), "%s not in %s", want, out);
    snprintf(want, sizeof want, "%s PENDING boom queue=other attempts=0\n", tc);
    cr_assert(strstr(out, want), "%s not in %s", want, out);

    RUN(0, "list", "--region", it_region, "--state", "scheduled");
    cr_assert(lines_of(out) == 1 && strstr(out, tb), "%s", out);
    RUN(0, "list", "--region", it_region, "--state", "Pending", "--task", "echo");
    cr_assert(lines_of(out) == 1 && strstr(out, ta), "%s", out);
    RUN(0, "list", "--region", it_region, "--queue", "other");
    cr_assert(lines_of(out) == 1 && strstr(out, tc), "%s", out);
    RUN(0, "list", "--region", it_region, "--limit", "2");
    cr_assert_eq(lines_of(out), 2, "%s", out);
    RUN(0, "list", "--region", it_region, "--queue", "nowhere");
    cr_assert_str_empty(out);

    RUN(0, "list", "--region", it_region, "--json");
    cr_assert_eq(lines_of(out), 3, "%s", out);
    for (int i = 0; i < 3; i++) {
        json_t *o = js_line(out, i);
        const char *id = js_str(o, "id");
        cr_assert(id && (!strcmp(id, ta) || !strcmp(id, tb) || !strcmp(id, tc)), "%s", out);
        cr_assert_str_eq(js_str(o, "queue"), !strcmp(id, tc) ? "other" : "default");
        cr_assert_str_eq(js_str(o, "state"), !strcmp(id, tb) ? "SCHEDULED" : "PENDING");
        cr_assert_eq(json_integer_value(json_object_get(o, "attempts")), 0);
        json_decref(o);
    }

    RUN(2, "list", "--region", it_region, "--state", "bogus");
    cr_assert(strstr(out, "pollux: unknown state 'bogus'"), "%s", out);
    RUN(2, "list", "--region", it_region, "--limit", "0");
    RUN(2, "list", "--region", it_region, ta);
    RUN(2, "list");
    RUN(1, "list", "--region", "/px-no-such-region");
    RUN(0, "list", "--help");
    cr_assert(strstr(out, "usage: pollux list"), "%s", out);
    px_region_close(r);
}

/*
 * pollux wal dump|verify and pollux recover against a log written by the
 * library: what they print, their exit codes, and damage found by name and
 * offset.
 */
#include "it.h"
#include "persist/record.h"

#include <dirent.h>
#include <fcntl.h>

static char dir[64], logdir[128], out[1 << 18], bin[512];

static void fini(void)
{
    it_cleanup();
    if (dir[0])
        px_test_rmtree(dir);
}

TestSuite(cli_wal, .fini = fini, .timeout = 60);

static int echo(px_ctx *ctx, const void *args, size_t len)
{
    return px_result(ctx, args, len);
}

/* A new sync region logging to a new directory (logdir). */
static px_region *log_region(void)
{
    px_test_tmpdir(dir, sizeof dir, "cliwal");
    snprintf(logdir, sizeof logdir, "%s/log", dir);
    return it_region_new(
        &(px_region_opts){.capacity = 64, .durability = PX_DURABLE_SYNC, .log_dir = logdir});
}

/* A region with 5 tasks in its log: 3 submitted and left pending, 2 run
 * (one finished, one freed). Leaves its shared memory destroyed. */
static void write_log(void)
{
    px_region *r = log_region();
    cr_assert_eq(px_task_register(r, &(px_task_def){.name = "echo", .fn = echo, .mode = PX_THREAD}),
                 0);
    px_id ids[5];
    for (int i = 0; i < 5; i++)
        cr_assert_eq(px_submit(r, "echo", "abc", 3, NULL, &ids[i]), 0);
    px_workers *w;
    cr_assert_eq(px_workers_start(r, &(px_workers_opts){.threads = 1}, &w), 0);
    char buf[8];
    size_t len;
    for (int i = 0; i < 5; i++)
        cr_assert_eq(px_join(r, ids[i], 5, buf, sizeof buf, &len), 0);
    cr_assert_eq(px_workers_stop(w), 0);
    cr_assert_eq(px_forget(r, ids[4]), 0);
    cr_assert_eq(px_region_close(r), 0);
    cr_assert_eq(px_region_destroy(it_region), 0);
}

static int pollux(const char *a, const char *b, const char *c, const char *d)
{
    char *argv[] = {bin, (char *)a, (char *)b, (char *)c, (char *)d, NULL};
    return it_run(argv, out, sizeof out, 20);
}

static int count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p++)
        n++;
    return n;
}

Test(cli_wal, dump_verify_recover)
{
    it_bin(bin, sizeof bin, "pollux");
    write_log();
    cr_assert_eq(pollux("wal", "verify", logdir, NULL), 0, "%s", out);
    cr_assert(strstr(out, ": ok"), "%s", out);

    cr_assert_eq(pollux("wal", "dump", logdir, "--json"), 0, "%s", out);
    cr_assert_eq(count(out, "\"type\":\"submit\""), 5, "%s", out);
    cr_assert_eq(count(out, "\"type\":\"start\""), 5, "%s", out);
    cr_assert_eq(count(out, "\"type\":\"finish\""), 5, "%s", out);
    cr_assert_eq(count(out, "\"type\":\"free\""), 1, "%s", out);
    cr_assert_eq(count(out, "\"task\":\"echo\""), 5, "%s", out);
    cr_assert_eq(pollux("wal", "dump", logdir, NULL), 0, "%s", out);
    cr_assert_eq(count(out, " submit "), 5, "text form: %s", out);

    cr_assert_eq(pollux("recover", "--region", it_region, "--log-dir"), 2, "missing value");
    char *argv[] = {bin, "recover", "--region", it_region, "--log-dir", logdir, NULL};
    cr_assert_eq(it_run(argv, out, sizeof out, 20), 0, "%s", out);
    cr_assert(strstr(out, "restored    4 tasks: 0 pending again, 4 finished"), "%s", out);
    cr_assert_eq(it_run(argv, out, sizeof out, 20), 1, "the region exists now: %s", out);
    cr_assert(strstr(out, "exists"), "%s", out);
    cr_assert_eq(px_region_destroy(it_region), 0);
}

Test(cli_wal, verify_names_the_damaged_segment_and_offset)
{
    it_bin(bin, sizeof bin, "pollux");
    write_log();
    /* Flip a byte inside the third record of the (only) segment. */
    struct {
        char name[512];
    } seg = {""};
    DIR *d = opendir(logdir);
    cr_assert_not_null(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strstr(e->d_name, ".wal"))
            snprintf(seg.name, sizeof seg.name, "%s/%s", logdir, e->d_name);
    closedir(d);
    cr_assert(seg.name[0]);
    cr_assert_eq(pollux("wal", "dump", logdir, "--json"), 0, "%s", out);
    const char *third = out;
    for (int i = 0; i < 2; i++)
        third = strchr(third, '\n') + 1;
    long off = strtol(strstr(third, "\"offset\":") + 9, NULL, 10);
    int fd = open(seg.name, O_RDWR);
    cr_assert_geq(fd, 0);
    uint8_t b;
    cr_assert_eq(pread(fd, &b, 1, off + 30), 1);
    b ^= 0x40;
    cr_assert_eq(pwrite(fd, &b, 1, off + 30), 1);
    close(fd);

    cr_assert_eq(pollux("wal", "verify", logdir, NULL), 1, "%s", out);
    char want[64];
    snprintf(want, sizeof want, "damaged at offset %ld", off);
    cr_assert(strstr(out, want), "wanted '%s' in: %s", want, out);
    cr_assert(strstr(out, strrchr(seg.name, '/') + 1), "names the segment: %s", out);
    cr_assert(strstr(out, "DAMAGED"), "%s", out);

    /* Recovery stops at the damage: only the first record after the head
     * (one submit) is replayed. */
    char *argv[] = {bin, "recover", "--region", it_region, "--log-dir", logdir, NULL};
    cr_assert_eq(it_run(argv, out, sizeof out, 20), 0, "%s", out);
    cr_assert(strstr(out, "restored    1 tasks: 1 pending again"), "%s", out);
    cr_assert_eq(px_region_destroy(it_region), 0);
}

Test(cli_wal, usage_and_missing_directory)
{
    it_bin(bin, sizeof bin, "pollux");
    cr_assert_eq(pollux("wal", NULL, NULL, NULL), 2);
    cr_assert_eq(pollux("wal", "fix", "/tmp", NULL), 2, "%s", out);
    cr_assert_eq(pollux("wal", "verify", NULL, NULL), 2);
    cr_assert_eq(pollux("wal", "verify", "/nonexistent/px-log", NULL), 1, "%s", out);
    cr_assert(strstr(out, "No such file"), "%s", out);
    cr_assert_eq(pollux("recover", NULL, NULL, NULL), 2);
    cr_assert_eq(pollux("recover", "--region", "/x", "--durability"), 2);
}

static int fails(px_ctx *ctx, const void *a, size_t n)
{
    (void)a;
    (void)n;
    return px_fail(ctx, "nope");
}

Test(cli_wal, dump_shows_due_times_keys_retries_and_dead_letters)
{
    it_bin(bin, sizeof bin, "pollux");
    px_region *r = log_region();
    px_task_def d = {.name = "fails", .fn = fails, .mode = PX_THREAD, .max_retries = 1};
    cr_assert_eq(px_task_register(r, &d), 0);
    px_id later, dead;
    cr_assert_eq(
        px_submit(r, "fails", "a", 1, &(px_submit_opts){.delay_s = 60, .key = "k1"}, &later), 0);
    cr_assert_eq(px_submit(r, "fails", "b", 1, NULL, &dead), 0);
    px_workers *w;
    cr_assert_eq(px_workers_start(r, &(px_workers_opts){.threads = 1}, &w), 0);
    cr_assert_eq(px_join(r, dead, 5, NULL, 0, NULL), PX_ETASKFAILED);
    cr_assert_eq(px_workers_stop(w), 0);
    cr_assert_eq(px_region_close(r), 0);
    cr_assert_eq(px_region_destroy(it_region), 0);

    cr_assert_eq(pollux("wal", "dump", logdir, "--json"), 0, "%s", out);
    cr_assert_eq(count(out, "\"due_ns\""), 2, "the delayed submit and the retry: %s", out);
    char want[64];
    snprintf(want, sizeof want, "\"key_hash\":\"");
    cr_assert_eq(count(out, want), 1, "%s", out);
    cr_assert_eq(count(out, "\"type\":\"retry\""), 1, "%s", out);
    cr_assert(strstr(out, "\"error\":\"nope\""), "%s", out);
    cr_assert(strstr(out, "\"state\":\"DEAD\""), "%s", out);
}

/* A px_submit_many call's tasks show as SUBMIT_MANY records, one per run
 * of tasks alike, each with its count, ids and args lengths. */
Test(cli_wal, dump_shows_a_batch_with_each_task_id)
{
    it_bin(bin, sizeof bin, "pollux");
    px_region *r = log_region();
    cr_assert_eq(px_task_register(r, &(px_task_def){.name = "echo", .fn = echo, .mode = PX_THREAD}),
                 0);
    cr_assert_eq(
        px_task_register(r, &(px_task_def){.name = "echo2", .fn = echo, .mode = PX_THREAD}), 0);
    px_job jobs[5] = {{"echo", "a", 1},
                      {"echo", "bb", 2},
                      {"echo", "ccc", 3},
                      {"echo2", NULL, 0},
                      {"echo2", "e", 1}};
    px_id ids[5];
    cr_assert_eq(px_submit_many(r, jobs, 5, NULL, ids), 5);
    cr_assert_eq(px_region_close(r), 0);
    cr_assert_eq(px_region_destroy(it_region), 0);

    cr_assert_eq(pollux("wal", "dump", logdir, "--json"), 0, "%s", out);
    cr_assert_eq(count(out, "\"type\":\"submit_many\""), 2, "a record per task name: %s", out);
    cr_assert_eq(count(out, "\"type\":\"submit\""), 0, "%s", out);
    cr_assert(strstr(out, "\"count\":3"), "%s", out);
    cr_assert(strstr(out, "\"args_lens\":[1,2,3]"), "%s", out);
    cr_assert(strstr(out, "\"args_lens\":[0,1]"), "%s", out);
    for (int i = 0; i < 5; i++) {
        char idtext[PX_ID_LEN + 3];
        snprintf(idtext, sizeof idtext, "\"");
        px_id_format(ids[i], idtext + 1);
        cr_assert(strstr(out, idtext), "task %d's id in the dump: %s", i, out);
    }
    cr_assert_eq(pollux("wal", "dump", logdir, NULL), 0, "%s", out);
    cr_assert_eq(count(out, " submit_many "), 2, "text form: %s", out);
    cr_assert(strstr(out, " args_lens=1,2,3"), "%s", out);
}

/* A log with a segment of a later format: verify and dump refuse it with
 * one line naming the segment (exit 1), and change nothing. */
Test(cli_wal, a_log_of_a_later_format_is_refused)
{
    it_bin(bin, sizeof bin, "pollux");
    px_test_tmpdir(dir, sizeof dir, "cliwal");
    uint8_t head[256] = {0};
    struct px__put w = {head + PX__REC_HDR, 0, sizeof head - PX__REC_HDR, false};
    px__rec_segment_put(
        &w, &(struct px__rec_segment){
                .writer = 0xab, .seq = 1, .cut_prev = UINT64_MAX, .format = PX__LOG_FORMAT + 7});
    size_t n = px__rec_seal(head, PX__REC_SEGMENT, 1, (uint32_t)w.len);
    char path[256];
    snprintf(path, sizeof path, "%s/00000000000000ab-1.wal", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, head, n), (ssize_t)n);
    close(fd);
    cr_assert_eq(pollux("wal", "verify", dir, NULL), 1, "%s", out);
    cr_assert(strstr(out, "00000000000000ab-1.wal has format 9"), "%s", out);
    cr_assert_eq(pollux("wal", "dump", dir, NULL), 1, "%s", out);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq(st.st_size, (off_t)n);
}

/*
 * `pollux worker` end to end: the CLI creates a region, serves the example
 * task library to the example producer, stops on SIGTERM; its error exit
 * codes; and graceful stop with tasks that finish within --grace, that do
 * not (they go back to PENDING and a new worker completes them), and that
 * ignore their stop flag.
 *
 * Long tasks come from a small task library compiled here with the
 * project's C compiler (found in CMakeCache.txt of PX_BIN_DIR).
 */
#include "it.h"

#include <dirent.h>

static char out[1 << 16];
static char tmpdir[256];

static void cleanup(void)
{
    it_cleanup();
    if (!tmpdir[0])
        return;
    DIR *d = opendir(tmpdir);
    struct dirent *e;
    char path[600];
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "%s/%s", tmpdir, e->d_name);
        unlink(path);
    }
    if (d)
        closedir(d);
    rmdir(tmpdir);
    tmpdir[0] = '\0';
}

static const char *make_tmpdir(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/px-it-cli-XXXXXX");
    cr_assert(mkdtemp(tmpdir), "mkdtemp: %s", strerror(errno));
    return tmpdir;
}

/* A value of PX_BIN_DIR/CMakeCache.txt ("KEY:TYPE=value"). */
static const char *cache_value(const char *key, char *buf, size_t cap)
{
    char path[512], line[1024];
    snprintf(path, sizeof path, "%s/CMakeCache.txt", getenv("PX_BIN_DIR"));
    FILE *f = fopen(path, "r");
    cr_assert(f, "%s: %s", path, strerror(errno));
    size_t klen = strlen(key);
    buf[0] = '\0';
    while (fgets(line, sizeof line, f)) {
        char *eq = strchr(line, '=');
        if (strncmp(line, key, klen) == 0 && line[klen] == ':' && eq) {
            snprintf(buf, cap, "%s", eq + 1);
            buf[strcspn(buf, "\n")] = '\0';
            break;
        }
    }
    fclose(f);
    cr_assert(buf[0], "%s has no %s", path, key);
    return buf;
}

/* Compiles source into tmpdir/name as a shared object; returns its path. */
static const char *build_lib(const char *name, const char *source, char *lib, size_t cap)
{
    char bin[512], cc[512], src_dir[512], inc[600], src[600];
    it_bin(bin, sizeof bin, "pollux");
    cache_value("CMAKE_C_COMPILER", cc, sizeof cc);
    cache_value("pollux_SOURCE_DIR", src_dir, sizeof src_dir);
    snprintf(inc, sizeof inc, "-I%s/include", src_dir);
    snprintf(src, sizeof src, "%s/%s.c", tmpdir, name);
    snprintf(lib, cap, "%s/%s.so", tmpdir, name);
    FILE *f = fopen(src, "w");
    cr_assert(f);
    fputs(source, f);
    fclose(f);
    char *argv[] = {cc, "-shared", "-fPIC", "-O1", inc, "-o", lib, src, NULL};
    int rc = it_run(argv, out, sizeof out, 60);
    cr_assert_eq(rc, 0, "compiling %s: %d\n%s", src, rc, out);
    return lib;
}

static const char *nap_source =
    "#include <pollux.h>\n"
    "#include <stdint.h>\n"
    "#include <string.h>\n"
    "#include <time.h>\n"
    "static double now(void)\n"
    "{\n"
    "    struct timespec ts;\n"
    "    clock_gettime(CLOCK_MONOTONIC, &ts);\n"
    "    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;\n"
    "}\n"
    "/* Sleeps args (int64 ms); returns its attempt number. A stubborn nap\n"
    " * ignores px_should_continue(). */\n"
    "static int nap(px_ctx *ctx, const void *args, size_t len, int stubborn)\n"
    "{\n"
    "    int64_t ms;\n"
    "    if (len != sizeof ms)\n"
    "        return px_fail(ctx, \"want 8 bytes, got %zu\", len);\n"
    "    memcpy(&ms, args, sizeof ms);\n"
    "    double until = now() + (double)ms / 1000.0;\n"
    "    while (now() < until) {\n"
    "        if (!stubborn && !px_should_continue(ctx))\n"
    "            return px_fail(ctx, \"asked to stop\");\n"
    "        struct timespec d = {0, 2000000};\n"
    "        nanosleep(&d, NULL);\n"
    "    }\n"
    "    int64_t attempt = px_task_attempt(ctx);\n"
    "    return px_result(ctx, &attempt, sizeof attempt);\n"
    "}\n"
    "PX_TASK(tnap, PX_THREAD) { return nap(ctx, args, len, 0); }\n"
    "PX_TASK(pnap, PX_PROCESS) { return nap(ctx, args, len, 0); }\n"
    "PX_TASK(tstubborn, PX_THREAD) { return nap(ctx, args, len, 1); }\n";

static const px_task_def nap_defs[] = {
    {.name = "tnap", .mode = PX_THREAD},
    {.name = "pnap", .mode = PX_PROCESS},
    {.name = "tstubborn", .mode = PX_THREAD},
};

/* Starts `pollux worker`, with `flag value` if flag is not NULL, and its
 * output in tmpdir/worker-N.log. */
static pid_t start_worker(const char *region, const char *lib, const char *flag, const char *value,
                          char *log, size_t cap)
{
    static int n;
    char bin[512];
    it_bin(bin, sizeof bin, "pollux");
    snprintf(log, cap, "%s/worker-%d.log", tmpdir, n++);
    char *argv[] = {bin,          "worker",      "--region", (char *)region, "--lib",
                    (char *)lib,  "--workers",   "1",        "--threads",    "2",
                    (char *)flag, (char *)value, NULL};
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        it_child_init();
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        dup2(fd, 1);
        dup2(fd, 2);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        execv(bin, argv);
        _exit(127);
    }
    it_track(pid);
    return pid;
}

static const char *read_log(const char *log)
{
    int fd = open(log, O_RDONLY);
    size_t n = fd >= 0 ? (size_t)read(fd, out, sizeof out - 1) : 0;
    if (fd >= 0)
        close(fd);
    out[n < sizeof out ? n : 0] = '\0';
    return out;
}

/* Waits until `pid` is attached to the region as a worker. */
static void wait_ready(px_region *r, pid_t pid, const char *log)
{
    double until = it_now() + 10;
    for (;;) {
        px_proc_info procs[64];
        int n = px_region_procs(r, procs, 64);
        for (int i = 0; i < n && i < 64; i++)
            if (procs[i].pid == pid && procs[i].role == PX_ROLE_WORKER)
                return;
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            it_untrack(pid);
            cr_assert_fail("pollux worker exited (0x%x):\n%s", st, read_log(log));
        }
        cr_assert(it_now() < until, "pollux worker not ready:\n%s", read_log(log));
        it_sleep(0.005);
    }
}

/* SIGTERMs the worker; expects exit 0 within timeout_s. Returns seconds. */
static double term_worker(pid_t pid, double timeout_s, const char *log)
{
    double t0 = it_now();
    cr_assert_eq(kill(pid, SIGTERM), 0);
    int st = 0;
    int rc = it_wait(pid, timeout_s, &st);
    double took = it_now() - t0;
    if (rc)
        it_kill_wait(pid);
    char text[64];
    cr_assert_eq(rc, 0, "pollux worker still running %.1f s after SIGTERM:\n%s", timeout_s,
                 read_log(log));
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "pollux worker %s:\n%s",
              it_status_text(st, text, sizeof text), read_log(log));
    return took;
}

static void wait_status(px_region *r, px_id id, int state, double timeout_s)
{
    double until = it_now() + timeout_s;
    int st;
    while ((st = px_status(r, id)) != state && it_now() < until)
        it_sleep(0.002);
    cr_assert_eq(st, state, "task state %d, want %d", st, state);
}

static px_id submit_nap(px_region *r, const char *task, int64_t ms)
{
    px_id id;
    int rc = px_submit(r, task, &ms, sizeof ms, NULL, &id);
    cr_assert_eq(rc, 0, "submit %s: %s", task, px_strerror(rc));
    return id;
}

/* Joins a nap: SUCCESS, and it reports the attempt it ran as. */
static void expect_nap_done(px_region *r, px_id id, int64_t attempt, double timeout_s)
{
    int64_t got = 0;
    size_t n = 0;
    int rc = px_join(r, id, timeout_s, &got, sizeof got, &n);
    px_task_info info;
    cr_assert_eq(px_info(r, id, &info), 0);
    cr_assert_eq(rc, 0, "%s: %s (%s)", info.name, px_strerror(rc), info.error);
    cr_assert_eq(n, sizeof got);
    cr_assert_eq(got, attempt, "%s ran as attempt %lld", info.name, (long long)got);
    cr_assert_eq(info.attempts, (uint32_t)attempt);
    cr_assert_eq(px_forget(r, id), 0);
}

static void region_create_cli(const char *name)
{
    char bin[512];
    it_bin(bin, sizeof bin, "pollux");
    char *argv[] = {bin, "region", "create", (char *)name, "--capacity", "1024", NULL};
    int rc = it_run(argv, out, sizeof out, 10);
    cr_assert_eq(rc, 0, "pollux region create: %d\n%s", rc, out);
}

static px_region *attach(const char *name)
{
    px_region *r;
    int rc = px_region_open(name, &(px_region_opts){.flags = PX_REGION_ATTACH}, &r);
    cr_assert_eq(rc, 0, "attach %s: %s", name, px_strerror(rc));
    return r;
}

static void check_idle(px_region *r, uint32_t processes)
{
    px_region_info info;
    bool empty = it_wait_empty(r, 5, NULL, NULL, &info);
    if (!empty || info.processes != processes)
        it_dump(r, 40);
    cr_assert(empty, "left: %u slots, %llu arena bytes, %llu queued", info.slots_used,
              (unsigned long long)info.arena_used, (unsigned long long)info.queued);
    cr_assert_eq(info.processes, processes, "attached: %u", info.processes);
}

/* ---- end to end with the examples -------------------------------------------- */

Test(cli, worker_serves_example_producer, .fini = cleanup, .timeout = 60)
{
    make_tmpdir();
    char bin[512], lib[512], producer[512], log[512];
    it_bin(bin, sizeof bin, "pollux");
    it_bin(lib, sizeof lib, "libpx_example_tasks.so");
    it_bin(producer, sizeof producer, "px_example_producer");
    px_test_name(it_region, sizeof it_region);
    px_region_destroy(it_region);
    region_create_cli(it_region);
    cr_assert(strstr(out, "created"), "%s", out);
    px_region *r = attach(it_region);

    pid_t w = start_worker(it_region, lib, NULL, NULL, log, sizeof log);
    wait_ready(r, w, log);
    char *pargv[] = {producer, it_region, NULL};
    int rc = it_run(pargv, out, sizeof out, 30);
    cr_assert_eq(rc, 0, "px_example_producer: %d\n%s\nworker:\n%s", rc, out, read_log(log));
    cr_assert(strstr(out, "upper: HELLO FROM A PRODUCER\n"), "%s", out);
    cr_assert(strstr(out, "sum: 55\n"), "%s", out);

    /* A few producers at once. */
    pid_t p[4];
    int fds[4];
    for (int i = 0; i < 4; i++)
        p[i] = it_spawn(pargv, &fds[i], false);
    for (int i = 0; i < 4; i++) {
        char buf[1024];
        it_read_all(fds[i], buf, sizeof buf, 30);
        close(fds[i]);
        int st;
        cr_assert_eq(it_wait(p[i], 10, &st), 0);
        cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "producer %d: 0x%x\n%s", i, st, buf);
        cr_assert(strstr(buf, "upper: HELLO FROM A PRODUCER\n") && strstr(buf, "sum: 55\n"), "%s",
                  buf);
    }
    check_idle(r, 3); /* the test, the worker, its pool child */

    double took = term_worker(w, 5, log);
    cr_assert_lt(took, 2.0, "an idle worker took %.2f s to stop", took);
    read_log(log);
    cr_assert(strstr(out, "pollux worker: stopping"), "%s", out);
    cr_assert(strstr(out, "with 2 tasks from"), "%s", out);
    check_idle(r, 1);
    px_region_close(r);

    char *info[] = {bin, "region", "info", it_region, NULL};
    cr_assert_eq(it_run(info, out, sizeof out, 10), 0, "%s", out);
    char *destroy[] = {bin, "region", "destroy", it_region, NULL};
    cr_assert_eq(it_run(destroy, out, sizeof out, 10), 0, "%s", out);
    cr_assert_eq(it_run(destroy, out, sizeof out, 10), 1, "destroying twice: %s", out);
    it_region[0] = '\0';
}

/* ---- error exit codes -------------------------------------------------------- */

static int worker_rc(const char *region, const char *lib, const char *extra)
{
    char bin[512];
    it_bin(bin, sizeof bin, "pollux");
    char *argv[10];
    int n = 0;
    argv[n++] = bin;
    argv[n++] = "worker";
    if (region) {
        argv[n++] = "--region";
        argv[n++] = (char *)region;
    }
    if (lib) {
        argv[n++] = "--lib";
        argv[n++] = (char *)lib;
    }
    if (extra) {
        argv[n++] = (char *)extra;
        argv[n++] = "0";
    }
    argv[n] = NULL;
    return it_run(argv, out, sizeof out, 10);
}

Test(cli, worker_error_exit_codes, .fini = cleanup, .timeout = 60)
{
    make_tmpdir();
    char lib[512], tiny[512], missing[512];
    it_bin(lib, sizeof lib, "libpx_example_tasks.so");
    build_lib("libtiny", "int px_it_tiny(void) { return 42; }\n", tiny, sizeof tiny);
    snprintf(missing, sizeof missing, "%s/nonexistent.so", tmpdir);
    px_region *r = it_region_new(&(px_region_opts){.capacity = 256});
    char unknown[64];
    snprintf(unknown, sizeof unknown, "/px-it-no-such-region-%d", (int)getpid());
    px_region_destroy(unknown);

    int rc;
    cr_assert_eq(rc = worker_rc(it_region, NULL, NULL), 2, "no --lib: %d\n%s", rc, out);
    cr_assert_eq(rc = worker_rc(NULL, lib, NULL), 2, "no --region: %d\n%s", rc, out);
    cr_assert_eq(rc = worker_rc(it_region, lib, "--workers"), 2, "--workers 0: %d\n%s", rc, out);
    cr_assert_eq(rc = worker_rc(it_region, lib, "--spin-us"), 2, "--spin-us 0: %d\n%s", rc, out);
    cr_assert_eq(rc = worker_rc(unknown, lib, NULL), 1, "unknown region: %d\n%s", rc, out);
    cr_assert_eq(rc = worker_rc(it_region, "libc.so.6", NULL), 1, "libc: %d\n%s", rc, out);
    cr_assert(strstr(out, "defines no tasks"), "%s", out);
    cr_assert_eq(rc = worker_rc(it_region, tiny, NULL), 1, "tiny .so: %d\n%s", rc, out);
    cr_assert(strstr(out, "defines no tasks"), "%s", out);
    cr_assert_eq(rc = worker_rc(it_region, missing, NULL), 1, "missing .so: %d\n%s", rc, out);
    cr_assert(strstr(out, "cannot load"), "%s", out);
    /* A file that is not a region. */
    char notregion[600];
    snprintf(notregion, sizeof notregion, "%s/not-a-region", tmpdir);
    FILE *f = fopen(notregion, "w");
    fputs("hello\n", f);
    fclose(f);
    cr_assert_eq(rc = worker_rc(notregion, lib, NULL), 1, "not a region: %d\n%s", rc, out);
    /* The region is not created by a worker, nor left attached. */
    struct stat sb;
    char shm[128];
    snprintf(shm, sizeof shm, "/dev/shm%s", unknown);
    cr_assert_neq(stat(shm, &sb), 0, "pollux worker created %s", unknown);
    check_idle(r, 1);
    px_region_close(r);
}

/* CPU seconds the process has used (user and system). */
static double cpu_s(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY);
    cr_assert_geq(fd, 0);
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    cr_assert_gt(n, 0);
    buf[n] = '\0';
    unsigned long ut, st;
    /* The fields after the command name, which ends with the last ')'. */
    const char *p = strrchr(buf, ')');
    cr_assert_not_null(p);
    cr_assert_eq(sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st), 2);
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* --spin-us is how long an idle thread spins before it sleeps: a worker
 * told to spin 3 s keeps its threads busy for the first second of having
 * nothing to do, one with the default spin (50 us) sleeps at once. */
Test(cli, spin_us_sets_how_long_an_idle_thread_spins, .fini = cleanup, .timeout = 60)
{
    make_tmpdir();
    char lib[512], log[512];
    it_bin(lib, sizeof lib, "libpx_example_tasks.so");
    px_region *r = it_region_new(&(px_region_opts){.capacity = 256});
    double used[2];
    const char *spin[2] = {NULL, "3000000"};
    for (int i = 0; i < 2; i++) {
        pid_t w =
            start_worker(it_region, lib, spin[i] ? "--spin-us" : NULL, spin[i], log, sizeof log);
        wait_ready(r, w, log);
        double c0 = cpu_s(w);
        it_sleep(1.0);
        used[i] = cpu_s(w) - c0;
        term_worker(w, 15, log);
    }
    cr_assert_lt(used[0], 0.2, "an idle worker with the default spin used %.2f s of CPU", used[0]);
    cr_assert_gt(used[1], 0.4, "an idle worker spinning 3 s used %.2f s of CPU", used[1]);
    px_region_close(r);
}

/* ---- graceful stop ------------------------------------------------------------- */

Test(cli, sigterm_waits_for_tasks_within_grace, .fini = cleanup, .timeout = 60)
{
    make_tmpdir();
    char lib[512], log[512];
    build_lib("libnap", nap_source, lib, sizeof lib);
    px_region *r = it_region_new(&(px_region_opts){.capacity = 1024});
    for (size_t i = 0; i < 3; i++)
        cr_assert_eq(px_task_register(r, &nap_defs[i]), 0);
    pid_t w = start_worker(it_region, lib, "--grace", "5", log, sizeof log);
    wait_ready(r, w, log);
    px_id t = submit_nap(r, "tnap", 1000), p = submit_nap(r, "pnap", 1000);
    wait_status(r, t, PX_RUNNING, 5);
    wait_status(r, p, PX_RUNNING, 5);
    double took = term_worker(w, 10, log);
    fprintf(stderr, "worker stopped %.2f s after SIGTERM, with 1 s tasks running\n", took);
    cr_assert_gt(took, 0.5, "the worker did not wait for its tasks");
    expect_nap_done(r, t, 1, 0);
    expect_nap_done(r, p, 1, 0);
    check_idle(r, 1);
    px_region_close(r);
}

Test(cli, sigterm_past_grace_requeues, .fini = cleanup, .timeout = 60)
{
    make_tmpdir();
    char lib[512], log[512];
    build_lib("libnap", nap_source, lib, sizeof lib);
    px_region *r = it_region_new(&(px_region_opts){.capacity = 1024});
    for (size_t i = 0; i < 3; i++)
        cr_assert_eq(px_task_register(r, &nap_defs[i]), 0);
    pid_t w = start_worker(it_region, lib, "--grace", "0.3", log, sizeof log);
    wait_ready(r, w, log);
    px_id t = submit_nap(r, "tnap", 2500), p = submit_nap(r, "pnap", 2500);
    wait_status(r, t, PX_RUNNING, 5);
    wait_status(r, p, PX_RUNNING, 5);
    double took = term_worker(w, 10, log);
    fprintf(stderr, "worker stopped %.2f s after SIGTERM (grace 0.3 s)\n", took);
    cr_assert_lt(took, 2.0, "the worker waited %.2f s past its grace", took);
    /* Back to PENDING, not FAILED, with the interrupted attempt counted. */
    px_task_info info;
    cr_assert_eq(px_status(r, t), PX_PENDING, "thread task: %d", px_status(r, t));
    cr_assert_eq(px_status(r, p), PX_PENDING, "process task: %d", px_status(r, p));
    cr_assert_eq(px_info(r, t, &info), 0);
    cr_assert_eq(info.attempts, 1);
    cr_assert_eq(px_info(r, p, &info), 0);
    cr_assert_eq(info.attempts, 1);
    read_log(log);
    cr_assert(strstr(out, "returned to PENDING"), "%s", out);

    /* A new worker completes them. */
    pid_t w2 = start_worker(it_region, lib, NULL, NULL, log, sizeof log);
    expect_nap_done(r, t, 2, 15);
    expect_nap_done(r, p, 2, 15);
    term_worker(w2, 5, log);
    check_idle(r, 1);
    px_region_close(r);
}

Test(cli, stubborn_task_does_not_hold_the_worker, .fini = cleanup, .timeout = 60)
{
    make_tmpdir();
    char lib[512], log[512];
    build_lib("libnap", nap_source, lib, sizeof lib);
    px_region *r = it_region_new(&(px_region_opts){.capacity = 1024});
    for (size_t i = 0; i < 3; i++)
        cr_assert_eq(px_task_register(r, &nap_defs[i]), 0);
    pid_t w = start_worker(it_region, lib, "--grace", "0.3", log, sizeof log);
    wait_ready(r, w, log);
    /* Ignores px_should_continue() for 4.5 s: the worker gives up on it a
     * few seconds past the grace (before it ends), with the task back to
     * PENDING; a new worker runs it again to the end. */
    px_id t = submit_nap(r, "tstubborn", 4500);
    wait_status(r, t, PX_RUNNING, 5);
    double took = term_worker(w, 10, log);
    fprintf(stderr, "worker with a stubborn task stopped %.2f s after SIGTERM\n", took);
    cr_assert_lt(took, 4.5, "the worker waited for the stubborn task to end");
    cr_assert_eq(px_status(r, t), PX_PENDING, "state %d", px_status(r, t));
    read_log(log);
    cr_assert(strstr(out, "exiting with tasks still running"), "%s", out);

    pid_t w2 = start_worker(it_region, lib, NULL, NULL, log, sizeof log);
    expect_nap_done(r, t, 2, 15);
    term_worker(w2, 5, log);
    check_idle(r, 1);
    px_region_close(r);
}

Test(cli, second_sigterm_exits_at_once, .fini = cleanup, .timeout = 60)
{
    make_tmpdir();
    char lib[512], log[512];
    build_lib("libnap", nap_source, lib, sizeof lib);
    px_region *r = it_region_new(&(px_region_opts){.capacity = 1024});
    for (size_t i = 0; i < 3; i++)
        cr_assert_eq(px_task_register(r, &nap_defs[i]), 0);
    pid_t w = start_worker(it_region, lib, "--grace", "10", log, sizeof log);
    wait_ready(r, w, log);
    px_id t = submit_nap(r, "tnap", 3000), p = submit_nap(r, "pnap", 3000);
    wait_status(r, t, PX_RUNNING, 5);
    wait_status(r, p, PX_RUNNING, 5);
    cr_assert_eq(kill(w, SIGTERM), 0);
    it_sleep(0.3);
    double took = term_worker(w, 2, log); /* the second signal */
    fprintf(stderr, "worker exited %.2f s after its second SIGTERM\n", took);
    cr_assert_lt(took, 1.0);
    read_log(log);
    cr_assert(strstr(out, "exiting with tasks still running"), "%s", out);
    /* The tasks were taken back (by the reaper, if not by the worker) and
     * a new worker completes them. */
    pid_t w2 = start_worker(it_region, lib, NULL, NULL, log, sizeof log);
    expect_nap_done(r, t, 2, 15);
    expect_nap_done(r, p, 2, 15);
    term_worker(w2, 5, log);
    check_idle(r, 1);
    px_region_close(r);
}

/*
 * The example programs run to success.
 */
#include "it.h"

static char out[1 << 16];

Test(examples, embedded, .fini = it_cleanup, .timeout = 60)
{
    char bin[512];
    char *argv[] = {(char *)it_bin(bin, sizeof bin, "px_example_embedded"), NULL};
    int rc = it_run(argv, out, sizeof out, 30);
    cr_assert_eq(rc, 0, "px_example_embedded: %d\n%s", rc, out);
    cr_assert(strstr(out, "reverse(pollux) = xullop (success)"), "%s", out);
    cr_assert(strstr(out, "reverse(gemini) = inimeg (success)"), "%s", out);
    cr_assert(strstr(out, "crash: the task failed: child process killed by signal 6"), "%s", out);
}

static void demo(const char *tasks, const char *threads)
{
    char bin[512];
    char *argv[] = {(char *)it_bin(bin, sizeof bin, "px_demo"), (char *)tasks, (char *)threads,
                    NULL};
    int rc = it_run(argv, out, sizeof out, 40);
    cr_assert_eq(rc, 0, "px_demo %s %s: %d\n%s", tasks, threads, rc, out);
    cr_assert(strstr(out, "slots in use after the run: 0, arena bytes in use: 0"), "%s", out);
    cr_assert(strstr(out, "square(9) = 81 (success)"), "%s", out);
    cr_assert(strstr(out, "throughput"), "%s", out);
}

Test(examples, demo_one_thread, .fini = it_cleanup, .timeout = 60)
{
    demo("20000", "1");
}

Test(examples, demo_two_threads, .fini = it_cleanup, .timeout = 60)
{
    demo("20000", "2");
}

Test(examples, cli_version_and_usage, .fini = it_cleanup, .timeout = 60)
{
    char bin[512];
    it_bin(bin, sizeof bin, "pollux");
    char *v[] = {bin, "version", NULL};
    cr_assert_eq(it_run(v, out, sizeof out, 10), 0);
    cr_assert(strstr(out, "pollux 0.1.0"), "%s", out);
    char *none[] = {bin, NULL};
    cr_assert_eq(it_run(none, out, sizeof out, 10), 2);
    char *bad[] = {bin, "frobnicate", NULL};
    cr_assert_eq(it_run(bad, out, sizeof out, 10), 2);
}

/*
 * pollux cancel: what it prints and its exit codes.
 */
#include "it.h"

static char out[4096], bin[512];

TestSuite(cli_cancel, .fini = it_cleanup, .timeout = 30);

static int nothing(px_ctx *ctx, const void *a, size_t n)
{
    (void)ctx;
    (void)a;
    (void)n;
    return 0;
}

Test(cli_cancel, cancels_a_pending_task_and_says_why_it_cannot)
{
    it_bin(bin, sizeof bin, "pollux");
    px_region *r = it_region_new(NULL);
    cr_assert_eq(px_task_register(r, &(px_task_def){.name = "t", .fn = nothing, .mode = PX_THREAD}),
                 0);
    px_id id, other;
    cr_assert_eq(px_submit(r, "t", NULL, 0, NULL, &id), 0);
    cr_assert_eq(px_submit(r, "t", NULL, 0, NULL, &other), 0);
    char text[PX_ID_LEN + 1];
    px_id_format(id, text);
    char *argv[] = {bin, "cancel", "--region", it_region, text, NULL};
    cr_assert_eq(it_run(argv, out, sizeof out, 10), 0, "%s", out);
    cr_assert(strstr(out, "cancelled"), "%s", out);
    cr_assert_eq(px_status(r, id), PX_CANCELLED);
    cr_assert_eq(px_status(r, other), PX_PENDING, "only the one named");
    cr_assert_eq(px_forget(r, id), 0);
    cr_assert_eq(it_run(argv, out, sizeof out, 10), 1, "a forgotten task: %s", out);
    char *bad[] = {bin, "cancel", "--region", it_region, "not-an-id", NULL};
    cr_assert_eq(it_run(bad, out, sizeof out, 10), 2, "%s", out);
    char *none[] = {bin, "cancel", text, NULL};
    cr_assert_eq(it_run(none, out, sizeof out, 10), 2, "no region: %s", out);
    px_region_close(r);
}

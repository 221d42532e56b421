/*
 * Priority levels within a queue: with every level full, one worker's
 * starts follow the documented weights (16, 8, 4, 2, 1 of every 31), the
 * highest level first; a sustained flood of high-priority work does not
 * starve the lowest level; a submit overrides its definition's level; bad
 * levels are refused and change nothing.
 */
#include "common.h"

#include <errno.h>
#include <stdatomic.h>

static char rname[64];

static void fini(void)
{
    px_region_destroy(rname);
}

TestSuite(priority, .fini = fini, .timeout = 60);

#define MAX_RUNS 512

/* The level of each start, in start order. */
static _Atomic int nstarts;
static int starts[MAX_RUNS];

static int record(px_ctx *ctx, const void *a, size_t n)
{
    (void)ctx;
    int lv;
    if (n != sizeof lv)
        return 1;
    memcpy(&lv, a, sizeof lv);
    int i = atomic_fetch_add(&nstarts, 1);
    if (i < MAX_RUNS)
        starts[i] = lv;
    return 0;
}

static const px_task_def defs[] = {
    {.name = "record", .fn = record, .mode = PX_THREAD},
    {.name = "urgent", .fn = record, .mode = PX_THREAD, .priority = PX_PRIORITY_HIGH},
};

static px_region *open_r(void)
{
    atomic_store(&nstarts, 0);
    px_region *r = px_test_region(rname, sizeof rname, &(px_region_opts){.capacity = 1024});
    for (size_t i = 0; i < sizeof defs / sizeof defs[0]; i++)
        cr_assert_eq(px_task_register(r, &defs[i]), 0);
    return r;
}

static px_id submit(px_region *r, const char *task, int prio)
{
    px_id id;
    int rc = px_submit(r, task, &prio, sizeof prio, &(px_submit_opts){.priority = prio}, &id);
    cr_assert_eq(rc, 0, "submit: %s", px_strerror(rc));
    return id;
}

/* Waits for n starts in all. */
static void wait_starts(int n)
{
    double end = px_test_now() + 20;
    while (atomic_load(&nstarts) < n && px_test_now() < end)
        usleep(1000);
    cr_assert_geq(atomic_load(&nstarts), n, "only %d of %d ran", atomic_load(&nstarts), n);
}

Test(priority, with_every_level_full_one_worker_follows_the_weights)
{
    px_region *r = open_r();
    /* Lowest first, so that submit order cannot explain the result. */
    for (int lv = PX_PRIORITY_LOWEST; lv <= PX_PRIORITY_HIGHEST; lv++)
        for (int i = 0; i < 40; i++)
            submit(r, "record", lv);
    px_workers *w = px_test_workers(r, 1, 0);
    wait_starts(200);
    cr_assert_eq(px_workers_stop(w), 0);
    cr_assert_eq(starts[0], PX_PRIORITY_HIGHEST, "the highest level starts first");
    int per[6] = {0};
    for (int i = 0; i < 31; i++)
        per[starts[i]]++;
    cr_assert_eq(per[PX_PRIORITY_HIGHEST], 16);
    cr_assert_eq(per[PX_PRIORITY_HIGH], 8);
    cr_assert_eq(per[PX_PRIORITY_NORMAL], 4);
    cr_assert_eq(per[PX_PRIORITY_LOW], 2);
    cr_assert_eq(per[PX_PRIORITY_LOWEST], 1);
    /* Once HIGHEST (40 tasks) runs out, its turns go to the next level
     * down, never to a lower one while a higher has work. */
    int last_highest = 0;
    for (int i = 0; i < 200; i++)
        if (starts[i] == PX_PRIORITY_HIGHEST)
            last_highest = i;
    cr_assert_lt(last_highest, 100, "HIGHEST was served first: its last start was %d",
                 last_highest);
    cr_assert_eq(px_region_close(r), 0);
}

Test(priority, a_flood_of_high_work_does_not_starve_the_lowest_level)
{
    px_region *r = open_r();
    /* 400 HIGHEST tasks queued before 5 LOWEST ones: HIGHEST has work
     * the whole time, yet a LOWEST task starts at least once in every 31
     * starts. */
    for (int i = 0; i < 400; i++)
        submit(r, "record", PX_PRIORITY_HIGHEST);
    for (int i = 0; i < 5; i++)
        submit(r, "record", PX_PRIORITY_LOWEST);
    px_workers *w = px_test_workers(r, 1, 0);
    wait_starts(405);
    cr_assert_eq(px_workers_stop(w), 0);
    int k = 0;
    for (int i = 0; i < 405; i++)
        if (starts[i] == PX_PRIORITY_LOWEST) {
            k++;
            cr_assert_lt(i, 31 * k, "LOWEST start %d came at %d, later than %d", k, i, 31 * k);
        }
    cr_assert_eq(k, 5);
    cr_assert_eq(px_region_close(r), 0);
}

Test(priority, a_submit_overrides_its_definitions_level)
{
    px_region *r = open_r();
    px_task_info in;
    px_id a = submit(r, "urgent", 0);
    cr_assert_eq(px_info(r, a, &in), 0);
    cr_assert_eq(in.priority, PX_PRIORITY_HIGH, "the definition's level");
    px_id b = submit(r, "urgent", PX_PRIORITY_LOWEST);
    cr_assert_eq(px_info(r, b, &in), 0);
    cr_assert_eq(in.priority, PX_PRIORITY_LOWEST, "the submit's level");
    px_id c = submit(r, "record", 0);
    cr_assert_eq(px_info(r, c, &in), 0);
    cr_assert_eq(in.priority, PX_PRIORITY_NORMAL, "0 in a definition is NORMAL");
    cr_assert_eq(px_region_close(r), 0);
}

Test(priority, bad_levels_are_refused_and_leave_nothing)
{
    px_region *r = open_r();
    cr_assert_eq(
        px_task_register(r, &(px_task_def){.name = "p6", .mode = PX_THREAD, .priority = 6}),
        -EINVAL);
    cr_assert_eq(
        px_task_register(r, &(px_task_def){.name = "pneg", .mode = PX_THREAD, .priority = -1}),
        -EINVAL);
    px_id id = 0;
    int args = 0;
    cr_assert_eq(px_submit(r, "record", &args, sizeof args, &(px_submit_opts){.priority = 6}, &id),
                 -EINVAL);
    cr_assert_eq(px_submit(r, "record", &args, sizeof args, &(px_submit_opts){.priority = -2}, &id),
                 -EINVAL);
    uint32_t cursor = 0;
    px_id ids[4];
    cr_assert_eq(px_list(r, &(px_list_opts){0}, ids, 4, &cursor), 0, "nothing was left behind");
    cr_assert_eq(px_region_close(r), 0);
}

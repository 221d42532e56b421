/*
 * The region's clock: stamps in ticks convert back to wall-clock time, in
 * order, whichever clock the machine gives; nonsense headers are refused.
 */
#include "common.h"
#include "shm/clock.h"

#include <string.h>

#define MS 1000000ull

Test(clock, a_fresh_stamp_reads_as_now)
{
    struct px__clock c;
    px__clock_init(&c);
    cr_assert_eq(px__clock_check(&c), 0);
    bool tsc = c.kind == PX__CLOCK_TSC;
    uint64_t before = px__now_ns();
    uint64_t stamp = px__ticks(tsc);
    uint64_t real = px__clock_real(&c, stamp);
    uint64_t after = px__now_ns();
    /* The conversion reads the clocks again after the stamp, so allow for
     * the time that took, and for the rate measured over 2 ms. */
    cr_assert_geq(real + MS, before, "stamp %lu before %lu", (unsigned long)real,
                  (unsigned long)before);
    cr_assert_leq(real, after + MS);
}

Test(clock, stamps_keep_their_order_and_spacing)
{
    struct px__clock c;
    px__clock_init(&c);
    bool tsc = c.kind == PX__CLOCK_TSC;
    uint64_t a = px__ticks(tsc);
    usleep(20000);
    uint64_t b = px__ticks(tsc);
    uint64_t ra = px__clock_real(&c, a), rb = px__clock_real(&c, b);
    cr_assert_lt(ra, rb);
    /* 20 ms of sleep reads as at least 20 ms, give or take 1%. */
    cr_assert_geq(rb - ra, 19800000ull, "20 ms read as %lu ns", (unsigned long)(rb - ra));
    cr_assert_lt(rb - ra, 2000 * MS, "and not as seconds");
}

Test(clock, zero_stays_zero)
{
    struct px__clock c;
    px__clock_init(&c);
    cr_assert_eq(px__clock_real(&c, 0), 0, "0 means not stamped");
}

Test(clock, nonsense_is_refused)
{
    struct px__clock c;
    px__clock_init(&c);
    struct px__clock bad = c;
    bad.kind = 0;
    cr_assert_eq(px__clock_check(&bad), PX_ECORRUPT);
    bad.kind = 77;
    cr_assert_eq(px__clock_check(&bad), PX_ECORRUPT);
    bad = c;
    bad.kind = PX__CLOCK_TSC;
    bad.ns_q32 = 0;
    cr_assert_eq(px__clock_check(&bad), PX_ECORRUPT, "a TSC that runs at no rate");
    bad.ns_q32 = 1000ull << 32;
    cr_assert_eq(px__clock_check(&bad), PX_ECORRUPT, "a 1 MHz TSC");
    bad = c;
    bad.kind = PX__CLOCK_MONO;
    bad.ns_q32 = 3ull << 32;
    cr_assert_eq(px__clock_check(&bad), PX_ECORRUPT, "a monotonic clock at another rate");
}

/* px_info reports stamps as wall-clock time around the submit and run. */
Test(clock, task_stamps_read_as_wall_clock)
{
    char name[64];
    px_region *r = px_test_region(name, sizeof name, &(px_region_opts){.flags = PX_REGION_CREATE});
    cr_assert_geq(px_task_register(r, &(px_task_def){.name = "t", .mode = PX_THREAD}), 0);
    uint64_t before = px__now_ns();
    px_id id;
    cr_assert_eq(px_submit(r, "t", NULL, 0, NULL, &id), 0);
    px_task_info info;
    cr_assert_eq(px_info(r, id, &info), 0);
    uint64_t after = px__now_ns();
    cr_assert_geq(info.enqueued_ns + MS, before);
    cr_assert_leq(info.enqueued_ns, after + MS);
    cr_assert_eq(info.started_ns, 0, "not started");
    cr_assert_eq(info.finished_ns, 0);
    px_region_close(r);
    px_region_destroy(name);
}

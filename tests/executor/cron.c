/*
 * Cron expressions: parsing (fields, names, steps, shortcuts, errors); the
 * next matching instant in UTC and in zones with clock changes, checked
 * against dates written out by hand and, at random, against a minute by
 * minute search with the C library's localtime_r; zone names; malformed
 * TZif files (crafted, cut short at every length, mutated at random).
 */
#include "../../executor/cron.h"
#include "../rng.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define NS 1000000000ull
#define MIN (60 * NS)

TestSuite(cron_parse, .timeout = 30);
TestSuite(cron_next, .timeout = 60);
TestSuite(cron_zone, .timeout = 120);

/* An instant given in UTC, as ns since the epoch (timegm, not the code
 * under test). */
static uint64_t utc(int y, int mo, int d, int h, int mi)
{
    struct tm tm = {
        .tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h, .tm_min = mi};
    return (uint64_t)timegm(&tm) * NS;
}

static struct px__cron parse(const char *expr)
{
    struct px__cron c;
    int rc = px__cron_parse(expr, &c);
    cr_assert_eq(rc, 0, "parse \"%s\": %d", expr, rc);
    return c;
}

/* The next instant after `after` for expr in tz; asserts success. */
static uint64_t next(const char *expr, const char *tz, uint64_t after)
{
    struct px__cron c = parse(expr);
    uint64_t t = 0;
    int rc = px__cron_next(&c, tz, after, &t);
    cr_assert_eq(rc, 0, "next \"%s\" in %s: %d", expr, tz ? tz : "UTC", rc);
    cr_assert_eq(t % MIN, 0, "on a whole minute");
    return t;
}

static void expect_next(const char *expr, const char *tz, uint64_t after, uint64_t want)
{
    uint64_t got = next(expr, tz, after);
    cr_assert_eq(got, want, "\"%s\" in %s after %llu: got %llu, want %llu (diff %lld min)", expr,
                 tz ? tz : "UTC", (unsigned long long)(after / NS), (unsigned long long)(got / NS),
                 (unsigned long long)(want / NS),
                 ((long long)got - (long long)want) / (long long)MIN);
}

static uint64_t bits(int lo, int hi, int step)
{
    uint64_t b = 0;
    for (int i = lo; i <= hi; i += step)
        b |= 1ull << i;
    return b;
}

/* ---- Parsing ---- */

Test(cron_parse, shortcuts)
{
    static const char *const pairs[][2] = {
        {"@yearly", "0 0 1 1 *"}, {"@annually", "0 0 1 1 *"}, {"@monthly", "0 0 1 * *"},
        {"@weekly", "0 0 * * 0"}, {"@daily", "0 0 * * *"},    {"@midnight", "0 0 * * *"},
        {"@hourly", "0 * * * *"},
    };
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        struct px__cron a = parse(pairs[i][0]), b = parse(pairs[i][1]);
        cr_assert(!memcmp(&a, &b, sizeof a), "%s", pairs[i][0]);
    }
    struct px__cron y = parse(" @yearly ");
    cr_assert_eq(y.minutes, 1);
    cr_assert_eq(y.hours, 1);
    cr_assert_eq(y.days, 1u << 1);
    cr_assert_eq(y.months, 1u << 1);
    cr_assert_eq(y.weekdays, 0x7f);
    cr_assert_eq(y.flags, PX__CRON_DOW_STAR);
    struct px__cron h = parse("@hourly");
    cr_assert_eq(h.minutes, 1);
    cr_assert_eq(h.hours, 0xffffff);
    cr_assert_eq(h.flags, PX__CRON_DOM_STAR | PX__CRON_DOW_STAR);
    struct px__cron w = parse("@weekly");
    cr_assert_eq(w.weekdays, 1);
    cr_assert_eq(w.days, 0xfffffffe);
    cr_assert_eq(w.flags, PX__CRON_DOM_STAR);
    struct px__cron m = parse("@monthly");
    cr_assert_eq(m.days, 1u << 1);
    cr_assert_eq(m.months, 0x1ffe);
}

Test(cron_parse, stars_cover_each_field)
{
    struct px__cron c = parse("* * * * *");
    cr_assert_eq(c.minutes, bits(0, 59, 1));
    cr_assert_eq(c.hours, bits(0, 23, 1));
    cr_assert_eq(c.days, bits(1, 31, 1));
    cr_assert_eq(c.months, bits(1, 12, 1));
    cr_assert_eq(c.weekdays, 0x7f);
}

Test(cron_parse, lists_ranges_steps)
{
    struct px__cron c = parse("*/15 9-17 1-30/5 */3 1,3,5");
    cr_assert_eq(c.minutes, bits(0, 59, 15));
    cr_assert_eq(c.hours, bits(9, 17, 1));
    cr_assert_eq(c.days, bits(1, 30, 5));
    cr_assert_eq(c.days, (1u << 1) | (1u << 6) | (1u << 11) | (1u << 16) | (1u << 21) | (1u << 26));
    cr_assert_eq(c.months, (1u << 1) | (1u << 4) | (1u << 7) | (1u << 10));
    cr_assert_eq(c.weekdays, (1u << 1) | (1u << 3) | (1u << 5));

    c = parse("5/10 0,12,23 31 12 0-6/2");
    cr_assert_eq(c.minutes, bits(5, 59, 10), "5/10 is 5-59/10");
    cr_assert_eq(c.hours, (1u << 0) | (1u << 12) | (1u << 23));
    cr_assert_eq(c.days, 1u << 31);
    cr_assert_eq(c.months, 1u << 12);
    cr_assert_eq(c.weekdays, (1u << 0) | (1u << 2) | (1u << 4) | (1u << 6));

    c = parse("0-4,10-12/2,59 */7 1,15-16 1-12/12 */8");
    cr_assert_eq(c.minutes, bits(0, 4, 1) | (1ull << 10) | (1ull << 12) | (1ull << 59));
    cr_assert_eq(c.hours, bits(0, 23, 7));
    cr_assert_eq(c.days, (1u << 1) | (1u << 15) | (1u << 16));
    cr_assert_eq(c.months, 1u << 1);
    cr_assert_eq(c.weekdays, 1u, "*/8 over 0-7 is Sunday alone");

    c = parse("00 007 01 01 00");
    cr_assert_eq(c.minutes, 1);
    cr_assert_eq(c.hours, 1u << 7);
    cr_assert_eq(c.weekdays, 1);
    cr_assert_eq(parse("*/60 * * * *").minutes, 1, "a step of the whole field");
}

Test(cron_parse, names)
{
    struct px__cron c = parse("0 0 * jan-mar mon-fri");
    cr_assert_eq(c.months, bits(1, 3, 1));
    cr_assert_eq(c.weekdays, bits(1, 5, 1));
    c = parse("0 0 * JAN,Jun,dEc SUN,sat");
    cr_assert_eq(c.months, (1u << 1) | (1u << 6) | (1u << 12));
    cr_assert_eq(c.weekdays, (1u << 0) | (1u << 6));
    c = parse("0 0 * feb/3 tue-6");
    cr_assert_eq(c.months, (1u << 2) | (1u << 5) | (1u << 8) | (1u << 11));
    cr_assert_eq(c.weekdays, bits(2, 6, 1));
    c = parse("0 0 * 1-Apr wed-7");
    cr_assert_eq(c.months, bits(1, 4, 1));
    cr_assert_eq(c.weekdays, bits(3, 6, 1) | 1);
}

Test(cron_parse, sunday_is_0_and_7)
{
    cr_assert_eq(parse("0 0 * * 7").weekdays, 1);
    cr_assert_eq(parse("0 0 * * 0").weekdays, 1);
    cr_assert_eq(parse("0 0 * * 5-7").weekdays, (1u << 5) | (1u << 6) | 1);
    cr_assert_eq(parse("0 0 * * 0-7").weekdays, 0x7f);
    cr_assert_eq(parse("0 0 * * 0,7").weekdays, 1);
}

Test(cron_parse, star_flags)
{
    cr_assert_eq(parse("* * * * *").flags, PX__CRON_DOM_STAR | PX__CRON_DOW_STAR);
    cr_assert_eq(parse("0 0 1 * *").flags, PX__CRON_DOW_STAR);
    cr_assert_eq(parse("0 0 * * 1").flags, PX__CRON_DOM_STAR);
    cr_assert_eq(parse("0 0 1 * 1").flags, 0);
    cr_assert_eq(parse("0 0 */2 * 1").flags, PX__CRON_DOM_STAR, "cronie: first char '*'");
    cr_assert_eq(parse("0 0 1 * */2").flags, PX__CRON_DOW_STAR);
    cr_assert_eq(parse("0 0 1-31 * 0-7").flags, 0, "a full range is not a star");
    cr_assert_eq(parse("0 0 1,* * 1").flags, 0, "'*' later in the list does not count");
}

Test(cron_parse, whitespace)
{
    struct px__cron a = parse("  0\t9 \t * *   mon-fri\t "), b = parse("0 9 * * mon-fri");
    cr_assert(!memcmp(&a, &b, sizeof a));
}

Test(cron_parse, bad_expressions)
{
    static const char *const bad[] = {
        "",
        "   ",
        "* * * *",
        "* * * * * *",
        "60 * * * *",
        "* 24 * * *",
        "* * 0 * *",
        "* * 32 * *",
        "* * * 0 *",
        "* * * 13 *",
        "* * * * 8",
        "1- * * * *",
        "-1 * * * *",
        "*/0 * * * *",
        "5-1 * * * *",
        "a * * * *",
        "@reboot",
        "@Yearly",
        "@",
        "@daily x",
        "@dailyx",
        "1,,2 * * * *",
        "1, * * * *",
        ",1 * * * *",
        "1x * * * *",
        "1.5 * * * *",
        "+1 * * * *",
        "99999999999999999999 * * * *",
        "* * * * 4294967297",
        "*/99999999999999999999 * * * *",
        "*/61 * * * *",
        "* * * * */9",
        "*/ * * * *",
        "/5 * * * *",
        "1/ * * * *",
        "1-2-3 * * * *",
        "*-5 * * * *",
        "** * * * *",
        "*/2/2 * * * *",
        "jan * * * *",
        "* * * * monday",
        "* * * * mo",
        "* * * * mon-",
        "* * * janu *",
        "* * * sun *",
        "* * * * jan",
        "* * * * 1/0",
        "* * * * sat-sun",
        "* * * * wed-sun",
        "* * * dec-jan *",
        "0 0 1 1 * #",
        "0\n0 * * *",
        "0,0 0 * * *,",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct px__cron c, before;
        memset(&c, 0xa5, sizeof c);
        before = c;
        cr_expect_eq(px__cron_parse(bad[i], &c), -EINVAL, "\"%s\" accepted", bad[i]);
        cr_expect(!memcmp(&c, &before, sizeof c), "\"%s\": out was written", bad[i]);
    }
    struct px__cron c;
    cr_assert_eq(px__cron_parse(NULL, &c), -EINVAL);
    cr_assert_eq(px__cron_parse("* * * * *", NULL), -EINVAL);
}

/* ---- Next, in UTC ---- */

Test(cron_next, every_quarter_hour)
{
    uint64_t after = utc(2026, 5, 4, 10, 7) + 30 * NS;
    expect_next("*/15 * * * *", NULL, after, utc(2026, 5, 4, 10, 15));
    expect_next("*/15 * * * *", "", after, utc(2026, 5, 4, 10, 15));
    expect_next("*/15 * * * *", "UTC", after, utc(2026, 5, 4, 10, 15));
    expect_next("*/15 * * * *", NULL, utc(2026, 5, 4, 10, 47), utc(2026, 5, 4, 11, 0));
}

Test(cron_next, strictly_after)
{
    uint64_t on = utc(2026, 5, 4, 10, 15);
    expect_next("*/15 * * * *", NULL, on, utc(2026, 5, 4, 10, 30));
    expect_next("*/15 * * * *", NULL, on - 1, on);
    expect_next("*/15 * * * *", NULL, on + 1, utc(2026, 5, 4, 10, 30));
    expect_next("* * * * *", NULL, on, on + MIN);
    expect_next("0 0 * * *", NULL, utc(2026, 5, 4, 0, 0), utc(2026, 5, 5, 0, 0));
}

Test(cron_next, weekdays_skip_the_weekend)
{
    /* 2026-01-02 is a Friday, 2026-01-05 a Monday. */
    expect_next("0 9 * * mon-fri", NULL, utc(2026, 1, 2, 10, 0), utc(2026, 1, 5, 9, 0));
    expect_next("0 9 * * mon-fri", NULL, utc(2026, 1, 2, 8, 59), utc(2026, 1, 2, 9, 0));
    expect_next("0 9 * * 6,7", NULL, utc(2026, 1, 2, 10, 0), utc(2026, 1, 3, 9, 0));
    expect_next("0 9 * * 7", NULL, utc(2026, 1, 3, 10, 0), utc(2026, 1, 4, 9, 0));
}

Test(cron_next, leap_day)
{
    expect_next("0 0 29 2 *", NULL, utc(2025, 3, 1, 0, 0), utc(2028, 2, 29, 0, 0));
    expect_next("0 0 29 2 *", NULL, utc(2028, 2, 28, 23, 59), utc(2028, 2, 29, 0, 0));
    expect_next("0 0 29 2 *", NULL, utc(2099, 6, 1, 0, 0), utc(2104, 2, 29, 0, 0) /* no 2100 */);
}

Test(cron_next, impossible_dates_are_erange)
{
    static const char *const never[] = {"0 0 30 2 *", "0 0 31 4 *", "0 0 31 2,4,6,9,11 *"};
    for (size_t i = 0; i < 3; i++) {
        struct px__cron c = parse(never[i]);
        uint64_t t = 12345;
        cr_assert_eq(px__cron_next(&c, NULL, utc(2026, 1, 1, 0, 0), &t), -ERANGE, "%s", never[i]);
        cr_assert_eq(t, 12345, "not written");
        cr_assert_eq(px__cron_next(&c, "Europe/Paris", utc(2026, 1, 1, 0, 0), &t), -ERANGE);
    }
    /* Beyond five years is out of reach: from 2096-03-01 the next 29
     * February is in 2104, 2100 being no leap year. */
    struct px__cron c = parse("0 0 29 2 *");
    uint64_t t;
    cr_assert_eq(px__cron_next(&c, NULL, utc(2096, 3, 1, 0, 0), &t), -ERANGE);
}

/* The successive matches of expr from `after`. */
static void expect_sequence(const char *expr, const char *tz, uint64_t after, const uint64_t *want,
                            size_t n)
{
    for (size_t i = 0; i < n; i++) {
        expect_next(expr, tz, after, want[i]);
        after = want[i];
    }
}

Test(cron_next, day_of_month_or_day_of_week)
{
    /* The 13th or any Friday: 2026-01-13 is a Tuesday, 2026-02-13 a Friday. */
    const uint64_t either[] = {
        utc(2026, 1, 2, 0, 0),  utc(2026, 1, 9, 0, 0),  utc(2026, 1, 13, 0, 0),
        utc(2026, 1, 16, 0, 0), utc(2026, 1, 23, 0, 0), utc(2026, 1, 30, 0, 0),
        utc(2026, 2, 6, 0, 0),  utc(2026, 2, 13, 0, 0), utc(2026, 2, 20, 0, 0),
    };
    expect_sequence("0 0 13 * 5", NULL, utc(2026, 1, 1, 0, 0), either, 9);
    const uint64_t only13[] = {utc(2026, 1, 13, 0, 0), utc(2026, 2, 13, 0, 0)};
    expect_sequence("0 0 13 * *", NULL, utc(2026, 1, 1, 0, 0), only13, 2);
    const uint64_t fridays[] = {utc(2026, 1, 2, 0, 0), utc(2026, 1, 9, 0, 0)};
    expect_sequence("0 0 * * fri", NULL, utc(2026, 1, 1, 0, 0), fridays, 2);
    /* As in cronie, a day-of-month field starting with '*' counts as a
     * star: odd days AND Fridays. */
    const uint64_t odd_fridays[] = {utc(2026, 1, 9, 0, 0), utc(2026, 1, 23, 0, 0),
                                    utc(2026, 2, 13, 0, 0), utc(2026, 2, 27, 0, 0)};
    expect_sequence("0 0 */2 * 5", NULL, utc(2026, 1, 1, 0, 0), odd_fridays, 4);
}

Test(cron_next, month_and_year_rollover)
{
    expect_next("0 0 * * *", NULL, utc(2026, 1, 31, 12, 0), utc(2026, 2, 1, 0, 0));
    expect_next("30 23 31 * *", NULL, utc(2026, 1, 31, 23, 30), utc(2026, 3, 31, 23, 30));
    expect_next("0 12 28-31 2 *", NULL, utc(2026, 2, 28, 12, 0), utc(2027, 2, 28, 12, 0));
    expect_next("* * * * *", NULL, utc(2026, 12, 31, 23, 59), utc(2027, 1, 1, 0, 0));
    expect_next("59 23 31 12 *", NULL, utc(2026, 12, 31, 23, 59), utc(2027, 12, 31, 23, 59));
    expect_next("0 0 1 1 *", NULL, utc(2026, 6, 15, 8, 0), utc(2027, 1, 1, 0, 0));
    expect_next("@yearly", NULL, utc(2026, 1, 1, 0, 0), utc(2027, 1, 1, 0, 0));
    expect_next("0 6 * 2 *", NULL, utc(2026, 2, 28, 6, 0), utc(2027, 2, 1, 6, 0));
    expect_next("15 10 1 mar *", NULL, utc(2024, 2, 29, 23, 0), utc(2024, 3, 1, 10, 15));
}

Test(cron_next, hours_and_minutes_lists)
{
    const uint64_t want[] = {utc(2026, 7, 1, 9, 5),  utc(2026, 7, 1, 9, 35),
                             utc(2026, 7, 1, 13, 5), utc(2026, 7, 1, 13, 35),
                             utc(2026, 7, 1, 17, 5), utc(2026, 7, 1, 17, 35),
                             utc(2026, 7, 2, 9, 5)};
    expect_sequence("5,35 9-17/4 * * *", NULL, utc(2026, 7, 1, 0, 0), want, 7);
}

Test(cron_next, bad_arguments)
{
    struct px__cron c = parse("* * * * *"), z = {0};
    uint64_t t = 7;
    cr_assert_eq(px__cron_next(NULL, NULL, 0, &t), -EINVAL);
    cr_assert_eq(px__cron_next(&c, NULL, 0, NULL), -EINVAL);
    cr_assert_eq(px__cron_next(&z, NULL, 0, &t), -EINVAL, "empty fields");
    struct px__cron bad = c;
    bad.days |= 1; /* day 0 */
    cr_assert_eq(px__cron_next(&bad, NULL, 0, &t), -EINVAL);
    bad = c;
    bad.weekdays |= 0x80;
    cr_assert_eq(px__cron_next(&bad, NULL, 0, &t), -EINVAL);
    bad = c;
    bad.months |= 1u << 13;
    cr_assert_eq(px__cron_next(&bad, NULL, 0, &t), -EINVAL);
    cr_assert_eq(px__cron_next(&c, "Nowhere/City", 0, &t), -EINVAL);
    cr_assert_eq(t, 7, "not written on failure");
}

Test(cron_next, end_of_the_uint64_range)
{
    struct px__cron c = parse("* * * * *");
    uint64_t t = 0;
    cr_assert_eq(px__cron_next(&c, NULL, UINT64_MAX, &t), -ERANGE);
    /* UINT64_MAX ns is 18446744073.7 s; the last whole minute below it is
     * 18446743980 s. */
    cr_assert_eq(px__cron_next(&c, NULL, UINT64_MAX - 120 * NS, &t), 0);
    cr_assert_eq(t, 18446743980ull * NS);
    expect_next("* * * * *", NULL, 0, MIN);
}

/* Worst cases for the search (nothing matching for five years; one match
 * in four years) stay far below a millisecond each, file loading included. */
Test(cron_next, sparse_expressions_are_fast)
{
    struct px__cron never = parse("0 0 30 2 *"), leap = parse("0 0 29 2 *");
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (int i = 0; i < 200; i++) {
        uint64_t t;
        cr_assert_eq(px__cron_next(&never, "Europe/Paris", utc(2026, 1, 1, 0, 0), &t), -ERANGE);
        cr_assert_eq(px__cron_next(&leap, "America/New_York", utc(2025, 3, 1, 0, 0), &t), 0);
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    double s = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
    cr_assert_lt(s, 2.0, "400 searches took %.3f s", s);
}

/* ---- Zones ---- */

Test(cron_zone, paris_winter_and_summer)
{
    expect_next("0 9 * * *", "Europe/Paris", utc(2026, 1, 15, 0, 0), utc(2026, 1, 15, 8, 0));
    expect_next("0 9 * * *", "Europe/Paris", utc(2026, 7, 15, 0, 0), utc(2026, 7, 15, 7, 0));
    /* Local midnight of 1 January is 23:00 UTC the day before. */
    expect_next("@yearly", "Europe/Paris", utc(2026, 6, 1, 0, 0), utc(2026, 12, 31, 23, 0));
    expect_next("0 0 * * mon", "Europe/Paris", utc(2026, 1, 4, 22, 59), utc(2026, 1, 4, 23, 0));
}

Test(cron_zone, paris_spring_forward_skips_the_missing_time)
{
    /* 2026-03-29 02:00 CET becomes 03:00 CEST (01:00 UTC). */
    expect_next("30 2 * * *", "Europe/Paris", utc(2026, 3, 28, 0, 0), utc(2026, 3, 28, 1, 30));
    expect_next("30 2 * * *", "Europe/Paris", utc(2026, 3, 28, 1, 30), utc(2026, 3, 30, 0, 30));
    expect_next("0 * * * *", "Europe/Paris", utc(2026, 3, 29, 0, 0), utc(2026, 3, 29, 1, 0));
    expect_next("59 1 * * *", "Europe/Paris", utc(2026, 3, 29, 0, 0), utc(2026, 3, 29, 0, 59));
    expect_next("59 2 * * *", "Europe/Paris", utc(2026, 3, 29, 0, 0), utc(2026, 3, 30, 0, 59));
    /* Just before the change, in CET: 01:59 local, then 03:00 local. */
    expect_next("* * * * *", "Europe/Paris", utc(2026, 3, 29, 0, 58), utc(2026, 3, 29, 0, 59));
    expect_next("* * * * *", "Europe/Paris", utc(2026, 3, 29, 0, 59), utc(2026, 3, 29, 1, 0));
    expect_next("0 3 * * *", "Europe/Paris", utc(2026, 3, 29, 0, 0), utc(2026, 3, 29, 1, 0));
}

Test(cron_zone, paris_fall_back_fires_once)
{
    /* 2026-10-25 03:00 CEST becomes 02:00 CET (01:00 UTC): 02:00-02:59
     * local happens twice; only the first counts. */
    expect_next("30 2 * * *", "Europe/Paris", utc(2026, 10, 24, 12, 0), utc(2026, 10, 25, 0, 30));
    expect_next("30 2 * * *", "Europe/Paris", utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30));
    /* Even from inside the second occurrence. */
    expect_next("30 2 * * *", "Europe/Paris", utc(2026, 10, 25, 1, 10), utc(2026, 10, 26, 1, 30));
    /* Every minute: 02:59 CEST, then 03:00 CET, an hour of UTC later. */
    expect_next("* * * * *", "Europe/Paris", utc(2026, 10, 25, 0, 58), utc(2026, 10, 25, 0, 59));
    expect_next("* * * * *", "Europe/Paris", utc(2026, 10, 25, 0, 59), utc(2026, 10, 25, 2, 0));
    expect_next("* * * * *", "Europe/Paris", utc(2026, 10, 25, 1, 30), utc(2026, 10, 25, 2, 0));
}

Test(cron_zone, paris_fall_back_hourly)
{
    /* Local hours 00, 01, 02 (CEST), [02 CET skipped], 03, 04. */
    const uint64_t want[] = {utc(2026, 10, 24, 22, 0), utc(2026, 10, 24, 23, 0),
                             utc(2026, 10, 25, 0, 0), utc(2026, 10, 25, 2, 0),
                             utc(2026, 10, 25, 3, 0)};
    const int local_hour[] = {0, 1, 2, 3, 4};
    uint64_t after = utc(2026, 10, 24, 21, 30);
    for (int i = 0; i < 5; i++) {
        uint64_t t = next("0 * * * *", "Europe/Paris", after);
        cr_assert_eq(t, want[i], "match %d", i);
        cr_assert_neq(t, utc(2026, 10, 25, 1, 0), "02:00 local a second time");
        int off_h = t < utc(2026, 10, 25, 1, 0) ? 2 : 1;
        cr_assert_eq((int)((t / NS / 3600 + (uint64_t)off_h) % 24), local_hour[i]);
        after = t;
    }
}

Test(cron_zone, new_york)
{
    const char *ny = "America/New_York";
    expect_next("0 9 * * *", ny, utc(2026, 1, 15, 0, 0), utc(2026, 1, 15, 14, 0));
    expect_next("0 9 * * *", ny, utc(2026, 7, 15, 0, 0), utc(2026, 7, 15, 13, 0));
    /* 2026-03-08 02:00 EST becomes 03:00 EDT (07:00 UTC). */
    expect_next("30 2 * * *", ny, utc(2026, 3, 7, 12, 0), utc(2026, 3, 9, 6, 30));
    /* 2026-11-01 02:00 EDT becomes 01:00 EST (06:00 UTC). */
    expect_next("30 1 * * *", ny, utc(2026, 10, 31, 12, 0), utc(2026, 11, 1, 5, 30));
    expect_next("30 1 * * *", ny, utc(2026, 11, 1, 5, 30), utc(2026, 11, 2, 6, 30));
    /* A local date differs from the UTC date in the evening. */
    expect_next("0 20 * * fri", ny, utc(2026, 1, 1, 0, 0), utc(2026, 1, 3, 1, 0));
}

Test(cron_zone, names)
{
    cr_assert_eq(px__tz_check(NULL), 0);
    cr_assert_eq(px__tz_check(""), 0);
    cr_assert_eq(px__tz_check("UTC"), 0);
    cr_assert_eq(px__tz_check("Europe/Paris"), 0);
    cr_assert_eq(px__tz_check("America/New_York"), 0);
    cr_assert_eq(px__tz_check("Etc/GMT+5"), 0);
    static const char *const bad[] = {
        "Nowhere/City",  "../etc/passwd",  "/etc/localtime",
        "Europe/../UTC", "Europe/./Paris", "Europe//Paris",
        "Europe/Paris/", "Europe",         "zone.tab",
        "Europe/Paris ", "Europe\\Paris",  "Europe/Paris\n",
        "~/x",           "Europe/Pa*",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_expect_eq(px__tz_check(bad[i]), -EINVAL, "\"%s\" accepted", bad[i]);
    char longname[400];
    memset(longname, 'A', sizeof longname - 1);
    longname[sizeof longname - 1] = 0;
    cr_assert_eq(px__tz_check(longname), -EINVAL);
}

/* ---- Against the C library, at random ---- */

static unsigned test_seed(void)
{
    const char *s = getenv("PX_SEED");
    unsigned seed = s ? (unsigned)strtoul(s, NULL, 10) : (unsigned)time(NULL) ^ (unsigned)getpid();
    fprintf(stderr, "seed: PX_SEED=%u\n", seed);
    return seed;
}

static uint64_t random_mask(int lo, int hi, int density)
{
    uint64_t m = 0;
    for (int i = lo; i <= hi; i++)
        if ((int)below(100) < density)
            m |= 1ull << i;
    return m ? m : 1ull << (lo + (int)below((size_t)(hi - lo + 1)));
}

static bool tm_matches(const struct px__cron *c, const struct tm *tm)
{
    bool dom = c->days >> tm->tm_mday & 1, dow = c->weekdays >> tm->tm_wday & 1;
    bool day = (c->flags & 3) ? dom && dow : dom || dow;
    return (c->minutes >> tm->tm_min & 1) && (c->hours >> tm->tm_hour & 1) &&
           (c->months >> (tm->tm_mon + 1) & 1) && day;
}

/* The first minute after `after`, within `span` minutes, that matches c in
 * the process's TZ and shows a local minute not shown before (looking back
 * three hours, more than any clock change of the zones used); 0 if none. */
static uint64_t brute_next(const struct px__cron *c, uint64_t after, int span)
{
    int64_t first = (int64_t)(after / MIN) + 1, seen = INT64_MIN;
    for (int64_t m = first - 180; m < first + span; m++) {
        time_t t = (time_t)(m * 60);
        struct tm tm;
        localtime_r(&t, &tm);
        int64_t lm = (m * 60 + tm.tm_gmtoff) / 60;
        bool fresh = lm > seen;
        if (fresh)
            seen = lm;
        if (m >= first && fresh && tm_matches(c, &tm))
            return (uint64_t)m * MIN;
    }
    return 0;
}

/* Random expressions from random instants, many of them near the clock
 * changes of 2024-2027, against a minute by minute search. */
static void compare_with_libc(const char *zone, const uint64_t *changes, size_t nchanges)
{
    char tzenv[64];
    snprintf(tzenv, sizeof tzenv, ":%s", zone);
    setenv("TZ", tzenv, 1);
    tzset();
    rng_state = test_seed();
    const int span = 4 * 1440;
    for (int i = 0; i < 300; i++) {
        struct px__cron c = {
            .minutes = random_mask(0, 59, (int)below(30) + 1),
            .hours = (uint32_t)random_mask(0, 23, (int)below(100) + 1),
            .days = (uint32_t)random_mask(1, 31, 70),
            .months = 0x1ffe,
            .weekdays = (uint8_t)random_mask(0, 6, 50),
            .flags = (uint8_t)below(4),
        };
        uint64_t base = below(2) ? changes[below(nchanges)] : utc(2024, 1, 1, 0, 0);
        uint64_t after = base - 2 * 86400 * NS + below(4 * 86400) * NS + below(NS);
        uint64_t want = brute_next(&c, after, span), got = 0;
        cr_assert_eq(px__cron_next(&c, zone, after, &got), 0, "case %d", i);
        if (want)
            cr_assert_eq(got, want, "%s case %d after %llu: got %llu want %llu", zone, i,
                         (unsigned long long)after, (unsigned long long)got,
                         (unsigned long long)want);
        else
            cr_assert_geq(got, (after / MIN + 1 + span) * MIN, "case %d: missed", i);
    }
}

Test(cron_zone, paris_against_localtime)
{
    const uint64_t changes[] = {
        utc(2024, 3, 31, 1, 0),  utc(2024, 10, 27, 1, 0), utc(2025, 3, 30, 1, 0),
        utc(2025, 10, 26, 1, 0), utc(2026, 3, 29, 1, 0),  utc(2026, 10, 25, 1, 0),
    };
    compare_with_libc("Europe/Paris", changes, 6);
}

Test(cron_zone, new_york_against_localtime)
{
    const uint64_t changes[] = {
        utc(2024, 3, 10, 7, 0), utc(2024, 11, 3, 6, 0), utc(2025, 3, 9, 7, 0),
        utc(2025, 11, 2, 6, 0), utc(2026, 3, 8, 7, 0),  utc(2026, 11, 1, 6, 0),
    };
    compare_with_libc("America/New_York", changes, 6);
}

/* ---- Zone files of our own, under TZDIR ---- */

static char tzdir[64];

static void make_tzdir(void)
{
    snprintf(tzdir, sizeof tzdir, "/tmp/px-cron-XXXXXX");
    cr_assert_not_null(mkdtemp(tzdir));
    setenv("TZDIR", tzdir, 1);
}

/* Runs as the test's fini, so a failed test leaves nothing behind. */
static void drop_tzdir(void)
{
    char path[128];
    if (!tzdir[0])
        return;
    snprintf(path, sizeof path, "%s/Test", tzdir);
    unlink(path);
    rmdir(tzdir);
}

static void put_zone(const unsigned char *data, size_t len)
{
    char path[128];
    snprintf(path, sizeof path, "%s/Test", tzdir);
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(data, 1, len, f), len);
    cr_assert_eq(fclose(f), 0);
}

struct tzif {
    unsigned char b[4096];
    size_t n;
};

static void put8(struct tzif *z, unsigned v)
{
    z->b[z->n++] = (unsigned char)v;
}

static void put32(struct tzif *z, uint32_t v)
{
    for (int s = 24; s >= 0; s -= 8)
        put8(z, (v >> s) & 0xff);
}

static void put_header(struct tzif *z, char version, uint32_t ntime, uint32_t ntype, uint32_t nchar)
{
    memcpy(z->b + z->n, "TZif", 4);
    z->n += 4;
    put8(z, (unsigned char)version);
    for (int i = 0; i < 15; i++)
        put8(z, 0);
    const uint32_t counts[6] = {0, 0, 0, ntime, ntype, nchar};
    for (int i = 0; i < 6; i++)
        put32(z, counts[i]);
}

/* A version 2 file as zic -b slim writes it: an empty version 1 block,
 * then the transitions (at, type) and types (offs, dst), then a footer. */
static struct tzif make_tzif(int ntime, const int64_t *at, const uint8_t *type, int ntype,
                             const int32_t *offs, const uint8_t *dst)
{
    struct tzif z = {.n = 0};
    put_header(&z, '2', 0, 1, 1);
    put32(&z, 0);
    put8(&z, 0);
    put8(&z, 0);
    put8(&z, 0);
    put_header(&z, '2', (uint32_t)ntime, (uint32_t)ntype, 4);
    for (int i = 0; i < ntime; i++) {
        put32(&z, (uint32_t)((uint64_t)at[i] >> 32));
        put32(&z, (uint32_t)at[i]);
    }
    for (int i = 0; i < ntime; i++)
        put8(&z, type[i]);
    for (int i = 0; i < ntype; i++) {
        put32(&z, (uint32_t)offs[i]);
        put8(&z, dst[i]);
        put8(&z, 0);
    }
    memcpy(z.b + z.n, "XYZ\0\n<+0530>-5:30\n", 18);
    z.n += 18;
    return z;
}

/* The v2 header follows the v1 header and its block (one type, one char). */
#define V2 (44 + 7)

Test(cron_zone, own_files_are_read, .fini = drop_tzdir)
{
    make_tzdir();
    const int32_t off = 19800; /* +05:30 */
    const uint8_t std = 0;
    struct tzif z = make_tzif(0, NULL, NULL, 1, &off, &std);
    put_zone(z.b, z.n);
    cr_assert_eq(px__tz_check("Test"), 0);
    expect_next("0 9 * * *", "Test", utc(2026, 1, 1, 0, 0), utc(2026, 1, 1, 3, 30));

    /* +1 h until 2026-01-10, then -1 h (a 2-hour fall back at 00:00 UTC),
     * then +3 h from 2026-01-20 (a 4-hour spring forward). */
    const int64_t at[] = {(int64_t)(utc(2026, 1, 10, 0, 0) / NS),
                          (int64_t)(utc(2026, 1, 20, 0, 0) / NS)};
    const uint8_t types[] = {2, 0};
    const int32_t offs[] = {10800, 3600, -3600};
    const uint8_t dst[] = {1, 0, 0};
    z = make_tzif(2, at, types, 3, offs, dst);
    put_zone(z.b, z.n);
    cr_assert_eq(px__tz_check("Test"), 0);
    /* Local 2026-01-09 23:00-01:00 happens twice; 00:30 local first is at
     * 23:30 UTC on the 9th. */
    expect_next("30 0 * * *", "Test", utc(2026, 1, 9, 12, 0), utc(2026, 1, 9, 23, 30));
    expect_next("30 0 * * *", "Test", utc(2026, 1, 9, 23, 30), utc(2026, 1, 11, 1, 30));
    expect_next("* * * * *", "Test", utc(2026, 1, 9, 23, 59), utc(2026, 1, 10, 2, 0));
    /* 2026-01-19 23:00 local (00:00 UTC) jumps to 03:00 local. */
    expect_next("0 1 * * *", "Test", utc(2026, 1, 19, 12, 0), utc(2026, 1, 20, 22, 0));
    expect_next("0 3 * * *", "Test", utc(2026, 1, 19, 12, 0), utc(2026, 1, 20, 0, 0));
    /* Before the first transition: the first non-DST type (+1 h), not
     * type 0 (+3 h, DST). */
    expect_next("0 12 * * *", "Test", utc(2025, 6, 1, 0, 0), utc(2025, 6, 1, 11, 0));
}

/* A version 1 file (32-bit times, no footer), as old zic wrote them. */
Test(cron_zone, version_1_files_are_read, .fini = drop_tzdir)
{
    make_tzdir();
    struct tzif z = {.n = 0};
    put_header(&z, 0, 1, 2, 4);
    put32(&z, (uint32_t)(utc(2026, 1, 10, 0, 0) / NS));
    put8(&z, 1);
    const int32_t offs[] = {7200, -18000};
    for (int i = 0; i < 2; i++) {
        put32(&z, (uint32_t)offs[i]);
        put8(&z, 0);
        put8(&z, 0);
    }
    memcpy(z.b + z.n, "XYZ", 4);
    z.n += 4;
    put_zone(z.b, z.n);
    cr_assert_eq(px__tz_check("Test"), 0);
    expect_next("0 12 * * *", "Test", utc(2026, 1, 5, 0, 0), utc(2026, 1, 5, 10, 0));
    expect_next("0 12 * * *", "Test", utc(2026, 1, 15, 0, 0), utc(2026, 1, 15, 17, 0));
    z.b[z.n - 5] = 2; /* the second type's desigidx, fine */
    put_zone(z.b, z.n);
    cr_assert_eq(px__tz_check("Test"), 0);
    z.b[44 + 4] = 2; /* the transition's type index */
    put_zone(z.b, z.n);
    cr_assert_eq(px__tz_check("Test"), -EINVAL);
    put_zone(z.b, z.n - 1);
    cr_assert_eq(px__tz_check("Test"), -EINVAL, "cut short");
}

Test(cron_zone, crafted_bad_files, .fini = drop_tzdir)
{
    make_tzdir();
    const int64_t at[] = {1000000, 2000000};
    const uint8_t types[] = {1, 0};
    const int32_t offs[] = {3600, 7200};
    const uint8_t dst[] = {0, 1};
    const struct tzif good = make_tzif(2, at, types, 2, offs, dst);
    put_zone(good.b, good.n);
    cr_assert_eq(px__tz_check("Test"), 0, "the unmodified file is good");
    /* Byte offsets in the v2 block: times at V2+44, indices after 16
     * bytes, types after 2 more, chars after 12 more. */
    const size_t data = V2 + 44, idx = data + 16, ttinfo = idx + 2;
    struct {
        size_t at;
        unsigned char v;
        const char *what;
    } flips[] = {
        {0, 'X', "v1 magic"},
        {4, '1', "version 1 is not a version"},
        {V2, 'X', "v2 magic"},
        {V2 + 4, 0, "v2 header of version 0"},
        {V2 + 20 + 12 + 3, 3, "timecnt past the end"},
        {V2 + 20 + 12, 0xff, "timecnt huge"},
        {V2 + 20 + 16 + 3, 0, "typecnt 0"},
        {V2 + 20 + 16, 0xff, "typecnt huge"},
        {V2 + 20 + 20 + 3, 0, "charcnt 0"},
        {V2 + 20 + 3, 1, "isutcnt neither 0 nor typecnt"},
        {V2 + 20 + 8 + 3, 3, "leapcnt past the end"},
        {20 + 12 + 3, 200, "v1 timecnt past the end"},
        {idx, 2, "type index out of range"},
        {idx + 1, 0xff, "type index out of range"},
        {data + 8 + 5, 0, "second transition before the first"},
        {data, 0x7f, "first transition after the second"},
        {ttinfo, 0x80, "utoff below -25 hours"},
        {ttinfo + 1, 0x02, "utoff beyond 26 hours"},
        {ttinfo + 4, 2, "isdst 2"},
        {ttinfo + 5, 4, "desigidx past charcnt"},
        {good.n - 1, 'x', "footer without final newline"},
        {good.n - 14, 'x', "footer without leading newline"},
    };
    for (size_t i = 0; i < sizeof flips / sizeof flips[0]; i++) {
        struct tzif z = good;
        cr_assert_lt(flips[i].at, z.n);
        cr_assert_neq(z.b[flips[i].at], flips[i].v, "%s: changes nothing", flips[i].what);
        z.b[flips[i].at] = flips[i].v;
        put_zone(z.b, z.n);
        cr_expect_eq(px__tz_check("Test"), -EINVAL, "%s accepted", flips[i].what);
        struct px__cron c = parse("* * * * *");
        uint64_t t;
        cr_expect_eq(px__cron_next(&c, "Test", 0, &t), -EINVAL, "%s", flips[i].what);
    }
    put_zone((const unsigned char *)"", 0);
    cr_assert_eq(px__tz_check("Test"), -EINVAL, "empty file");
    put_zone((const unsigned char *)"hello, world\n", 13);
    cr_assert_eq(px__tz_check("Test"), -EINVAL, "text");
}

static size_t read_real(const char *name, unsigned char *buf, size_t cap)
{
    char path[256];
    snprintf(path, sizeof path, "/usr/share/zoneinfo/%s", name);
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s", path);
    size_t n = fread(buf, 1, cap, f);
    fclose(f);
    cr_assert(n > 0 && n < cap);
    return n;
}

Test(cron_zone, truncated_files, .fini = drop_tzdir)
{
    static unsigned char real[1 << 16];
    size_t n = read_real("Europe/Paris", real, sizeof real);
    make_tzdir();
    put_zone(real, n);
    cr_assert_eq(px__tz_check("Test"), 0, "the whole file is good");
    for (size_t len = 0; len < n; len++) {
        put_zone(real, len);
        cr_assert_eq(px__tz_check("Test"), -EINVAL, "cut at %zu of %zu accepted", len, n);
    }
}

/* Random bytes overwritten in real files: whatever the result, no crash
 * (run it under the sanitizers) and no answer but 0, -EINVAL or -ERANGE. */
Test(cron_zone, mutated_files, .fini = drop_tzdir)
{
    static unsigned char real[1 << 16], buf[1 << 16];
    size_t n = read_real("America/New_York", real, sizeof real);
    make_tzdir();
    rng_state = test_seed();
    struct px__cron c = parse("30 2 * * *");
    int accepted = 0;
    for (int i = 0; i < 1500; i++) {
        memcpy(buf, real, n);
        int flips = 1 + (int)below(4);
        for (int f = 0; f < flips; f++)
            buf[below(n)] = (unsigned char)rnd();
        size_t len = below(8) ? n : below(n + 1);
        put_zone(buf, len);
        int rc = px__tz_check("Test");
        cr_assert(rc == 0 || rc == -EINVAL, "case %d: %d", i, rc);
        uint64_t t;
        int rn =
            px__cron_next(&c, "Test", below(2) ? utc(2026, 3, 1, 0, 0) : below(1ull << 62), &t);
        cr_assert(rn == 0 || rn == -EINVAL || rn == -ERANGE, "case %d: %d", i, rn);
        cr_assert_eq(rn == -EINVAL, rc == -EINVAL, "case %d: check %d, next %d", i, rc, rn);
        accepted += rc == 0;
    }
    cr_assert_gt(accepted, 0, "some mutations (in names, offsets) stay valid");
}

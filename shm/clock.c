/*
 * The region's clock: choosing it, measuring the TSC's rate, and turning
 * stamps into wall-clock time. See clock.h.
 */
#include "clock.h"
#include "pollux.h"

#include <fcntl.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define CALIBRATE_NS 2000000ull /* the rate is measured over this long */
#define LONG_BASE_NS 1000000000ull

uint64_t px__now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t px__mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* True if the kernel keeps time with the TSC, and so vouches for it. */
static bool kernel_uses_tsc(void)
{
#if defined(__x86_64__) || defined(__i386__)
    int fd = open("/sys/devices/system/clocksource/clocksource0/current_clocksource",
                  O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    char buf[16] = {0};
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    return n >= 3 && strncmp(buf, "tsc", 3) == 0 && (n == 3 || buf[3] == '\n');
#else
    return false;
#endif
}

/* A (ticks, mono) pair read as close together as this thread can: the mono
 * reading bracketed by two tick readings, the tightest of a few tries. */
static void pair(uint64_t *ticks, uint64_t *mono)
{
    uint64_t best = UINT64_MAX;
    for (int i = 0; i < 8; i++) {
        uint64_t a = px__ticks(true), m = px__mono_ns(), b = px__ticks(true);
        if (b - a < best) {
            best = b - a;
            *ticks = a + (b - a) / 2;
            *mono = m;
        }
    }
}

static void use_mono(struct px__clock *c)
{
    c->kind = PX__CLOCK_MONO;
    c->ns_q32 = 1ull << 32;
    c->mono0 = c->tick0 = px__mono_ns();
}

void px__clock_init(struct px__clock *c)
{
    memset(c, 0, sizeof *c);
    if (!kernel_uses_tsc()) {
        use_mono(c);
        return;
    }
    uint64_t t1 = 0, m1 = 0, t2 = 0, m2 = 0;
    pair(&t1, &m1);
    while (px__mono_ns() - m1 < CALIBRATE_NS)
        ;
    pair(&t2, &m2);
    if (t2 <= t1) { /* a TSC that does not count: keep to the kernel's clock */
        use_mono(c);
        return;
    }
    c->kind = PX__CLOCK_TSC;
    c->tick0 = t1;
    c->mono0 = m1;
    c->ns_q32 = (uint64_t)(((unsigned __int128)(m2 - m1) << 32) / (t2 - t1));
}

int px__clock_check(const struct px__clock *c)
{
    if (c->kind == PX__CLOCK_MONO)
        return c->ns_q32 == 1ull << 32 ? 0 : PX_ECORRUPT;
    if (c->kind != PX__CLOCK_TSC)
        return PX_ECORRUPT;
#if !defined(__x86_64__) && !defined(__i386__)
    return PX_EVERSION;
#endif
    /* Between 100 MHz and 100 GHz. */
    if (c->ns_q32 < (1ull << 32) / 100 || c->ns_q32 > (10ull << 32))
        return PX_ECORRUPT;
    return 0;
}

/* ns = ticks * rate, with the rate over the region's life once that is
 * long enough to beat the creation-time measurement. */
static uint64_t ticks_to_ns(const struct px__clock *c, uint64_t dt, uint64_t tick_now,
                            uint64_t mono_now)
{
    if (c->kind == PX__CLOCK_TSC && mono_now > c->mono0 && mono_now - c->mono0 > LONG_BASE_NS &&
        tick_now > c->tick0)
        return (uint64_t)((unsigned __int128)dt * (mono_now - c->mono0) / (tick_now - c->tick0));
    return (uint64_t)(((unsigned __int128)dt * c->ns_q32) >> 32);
}

uint64_t px__clock_real(const struct px__clock *c, uint64_t ticks)
{
    if (ticks == 0)
        return 0;
    bool tsc = c->kind == PX__CLOCK_TSC;
    uint64_t tick_now = px__ticks(tsc), mono_now = px__mono_ns(), real_now = px__now_ns();
    uint64_t age = tick_now > ticks ? ticks_to_ns(c, tick_now - ticks, tick_now, mono_now) : 0;
    return age < real_now ? real_now - age : 0;
}

uint64_t px__clock_ticks(const struct px__clock *c, uint64_t ns)
{
    if (c->kind != PX__CLOCK_TSC || c->ns_q32 == 0)
        return ns;
    return (uint64_t)(((unsigned __int128)ns << 32) / c->ns_q32);
}

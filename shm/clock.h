/*
 * Task timestamps.
 *
 * Each task is stamped three times on the hot path (enqueued, started,
 * finished). clock_gettime costs about 25 ns in a virtual machine whose
 * kernel reads the TSC through a paravirtual clock; the TSC itself costs
 * about 10. So slots hold stamps in ticks of the region's clock, and ticks
 * become CLOCK_REALTIME nanoseconds only when someone reads them (px_info).
 *
 * The creator of a region picks its clock once, in the header, and every
 * process follows the header:
 * - PX__CLOCK_TSC when the kernel's own clocksource is the TSC: the kernel
 *   has then checked that it is invariant and synchronised across CPUs, so
 *   ticks read by different processes on different CPUs compare. Its rate is
 *   measured against CLOCK_MONOTONIC when the region is created.
 * - PX__CLOCK_MONO otherwise: ticks are CLOCK_MONOTONIC nanoseconds.
 *
 * A stamp is converted by its age: now in realtime minus (ticks now - stamp)
 * at the tick rate. The rate's error therefore scales with a stamp's age,
 * not the region's; once the region is older than a second the rate is
 * taken over its whole life, which makes it exact to a few parts in 10^8.
 * Stamp 0 means "not stamped" and stays 0.
 */
#ifndef PX_SHM_CLOCK_H
#define PX_SHM_CLOCK_H

#include <stdbool.h>
#include <stdint.h>

enum { PX__CLOCK_MONO = 1, PX__CLOCK_TSC = 2 };

/* In the header; written by the creator before the magic, then read-only. */
struct px__clock {
    uint32_t kind;
    uint32_t unused;
    uint64_t tick0;  /* ticks at mono0 */
    uint64_t mono0;  /* CLOCK_MONOTONIC ns */
    uint64_t ns_q32; /* ns per tick, times 2^32 */
};

uint64_t px__mono_ns(void); /* CLOCK_MONOTONIC */
uint64_t px__now_ns(void);  /* CLOCK_REALTIME */

#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
static inline uint64_t px__ticks(bool tsc)
{
    return tsc ? __rdtsc() : px__mono_ns();
}
#else
static inline uint64_t px__ticks(bool tsc)
{
    (void)tsc;
    return px__mono_ns();
}
#endif

/* Picks and calibrates the clock of a new region (takes about 2 ms with
 * the TSC). */
void px__clock_init(struct px__clock *c);

/* 0 if a mapped header's clock can be used by this process, else
 * PX_ECORRUPT (nonsense values) or PX_EVERSION (a TSC clock here, where
 * there is no TSC). */
int px__clock_check(const struct px__clock *c);

/* The ticks that make up ns nanoseconds, at the rate measured when the
 * region was created. */
uint64_t px__clock_ticks(const struct px__clock *c, uint64_t ns);

/* CLOCK_REALTIME ns of a stamp; 0 for 0. */
uint64_t px__clock_real(const struct px__clock *c, uint64_t ticks);

/* A short span of ticks in ns, at the creation-time rate: one multiply,
 * no clock read, for the hot path (latency histograms). */
static inline uint64_t px__clock_span_ns(const struct px__clock *c, uint64_t dt)
{
    if (c->kind != PX__CLOCK_TSC || c->ns_q32 == 0)
        return dt;
    return (uint64_t)(((unsigned __int128)dt * c->ns_q32) >> 32);
}

#endif

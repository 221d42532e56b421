/*
 * splitmix64 for randomised tests: the same sequence everywhere for a given
 * seed, so that a printed seed replays a failure. No test framework needed
 * (the log fuzzer also builds as a libFuzzer target).
 */
#ifndef PX_TESTS_RNG_H
#define PX_TESTS_RNG_H

#include <stddef.h>
#include <stdint.h>

static uint64_t rng_state;

static inline uint64_t rnd(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Uniform in [0, n); 0 for n = 0. */
static inline size_t below(size_t n)
{
    return n ? (size_t)(rnd() % n) : 0;
}

#endif

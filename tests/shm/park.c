/*
 * Parking places (shm/park.h) on their own, with no worker set and so no
 * reaper: sleepers here are threads or forked processes that park through
 * the same calls a worker makes.
 */
#define _GNU_SOURCE
#include "common.h"
#include "shm/park.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>

static char rname[64];
static pid_t sleeper_pid;

static void cleanup(void)
{
    if (sleeper_pid > 0) {
        kill(sleeper_pid, SIGKILL);
        waitpid(sleeper_pid, NULL, 0);
    }
    px_region_destroy(rname);
}

TestSuite(park, .fini = cleanup, .timeout = 30);

#define BIT 1u

struct sleeper {
    px_region *r;
    uint32_t park;
    _Atomic int woke;
};

/* Parks in place s->park and sleeps up to 10 s; counts its wake. */
static void *sleep_once(void *p)
{
    struct sleeper *s = p;
    px__announce_sleep(s->r, BIT);
    uint32_t seen = px__park_arm(s->r, s->park, BIT);
    px__park_sleep(s->r, s->park, seen, 10000000000ll);
    px__park_leave(s->r, s->park);
    px__retract_sleep(s->r, BIT);
    atomic_store(&s->woke, 1);
    return NULL;
}

static void await_state(px_region *r, uint32_t i, uint32_t state)
{
    double until = px_test_now() + 10;
    while (atomic_load(&r->parks[i].state) != state)
        cr_assert(px_test_now() < until, "place %u never reached state %u", i, state);
}

/* Forks a process that claims a place, parks in it and sleeps there until
 * its word changes, then exits with status 0; returns the place once it is
 * parked. */
static uint32_t fork_parked(px_region *r)
{
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    px_region *cr;
    pid_t pid = px_test_fork_attached(rname, &cr);
    if (pid == 0) {
        int park = px__park_claim(cr);
        if (park < 0 || write(fds[1], &park, sizeof park) != (ssize_t)sizeof park)
            _exit(3);
        px__announce_sleep(cr, BIT);
        uint32_t seen = px__park_arm(cr, (uint32_t)park, BIT);
        while (atomic_load(&cr->parks[park].word) == seen)
            px__park_sleep(cr, (uint32_t)park, seen, -1);
        _exit(0);
    }
    sleeper_pid = pid;
    int park;
    cr_assert_eq(read(fds[0], &park, sizeof park), (ssize_t)sizeof park);
    close(fds[0]);
    close(fds[1]);
    await_state(r, (uint32_t)park, PX__PARK_PARKED);
    return (uint32_t)park;
}

Test(park, a_wake_claims_the_sleeper_and_wakes_it)
{
    px_region *r = px_test_region(rname, sizeof rname, &(px_region_opts){.capacity = 64});
    int park = px__park_claim(r);
    cr_assert_geq(park, 0);
    struct sleeper s = {.r = r, .park = (uint32_t)park};
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, sleep_once, &s), 0);
    await_state(r, s.park, PX__PARK_PARKED);
    cr_assert_eq(px__park_wake(r, BIT << 1, 1), 0, "it serves another bit");
    cr_assert_eq(atomic_load(&r->parks[s.park].state), PX__PARK_PARKED);
    uint32_t word = atomic_load(&r->parks[s.park].word);
    /* Until its thread wakes and leaves, the place is claimed: a second
     * wake finds no one (or, if the thread was quick, an idle place). */
    uint32_t woken = px__park_wake(r, BIT, 1);
    uint32_t again = px__park_wake(r, BIT, 1);
    cr_assert_eq(pthread_join(t, NULL), 0);
    cr_assert_eq(atomic_load(&s.woke), 1);
    cr_assert_leq(woken, 1);
    cr_assert_eq(again, 0);
    cr_assert_eq(atomic_load(&r->parks[s.park].word) - word, 1, "claimed and bumped once");
    cr_assert_eq(atomic_load(&r->parks[s.park].state), PX__PARK_IDLE);
    px__park_release(r, s.park);
    cr_assert_eq(atomic_load(&r->parks[s.park].owner), 0);
    px_region_close(r);
}

/* A process killed (SIGKILL) while parked leaves a PARKED place that no
 * one will leave. A wake that claims it finds nobody asleep there and must
 * wake the next sleeper instead. */
Test(park, a_sleeper_killed_parked_does_not_take_the_wake)
{
    px_region *r = px_test_region(rname, sizeof rname, &(px_region_opts){.capacity = 64});
    uint32_t dead = fork_parked(r);
    cr_assert_eq(kill(sleeper_pid, SIGKILL), 0);
    cr_assert_eq(waitpid(sleeper_pid, NULL, 0), sleeper_pid);
    sleeper_pid = 0;
    int park = px__park_claim(r);
    cr_assert_gt(park, (int)dead, "the dead place comes first in a wake's scan");
    struct sleeper s = {.r = r, .park = (uint32_t)park};
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, sleep_once, &s), 0);
    await_state(r, s.park, PX__PARK_PARKED);
    double t0 = px_test_now();
    /* The live sleeper may still be on its way into the futex wait: then
     * this wake finds it not asleep yet and counts nobody, but it sees its
     * word bumped and wakes all the same. */
    cr_assert_leq(px__park_wake(r, BIT, 1), 1);
    cr_assert_eq(pthread_join(t, NULL), 0);
    cr_assert_lt(px_test_now() - t0, 5, "woken, not timed out");
    cr_assert_eq(atomic_load(&r->parks[dead].state), PX__PARK_WOKEN, "the dead place was claimed");
    cr_assert_eq(atomic_load(&r->parks[s.park].state), PX__PARK_IDLE);
    /* The reaper's part: the dead process's places become free. */
    uint32_t proc = atomic_load(&r->parks[dead].owner) - 1;
    px__park_release_proc(r, proc);
    cr_assert_eq(atomic_load(&r->parks[dead].owner), 0);
    cr_assert_eq(atomic_load(&r->parks[dead].state), PX__PARK_IDLE);
    cr_assert_eq(atomic_load(&r->parks[s.park].owner), r->self + 1, "ours is kept");
    px_region_close(r);
}

/* A stopped (SIGSTOP) sleeper is alive but not in its futex wait (the
 * kernel restarts the wait when it continues), so a wake counts nobody
 * woken there and would go on to another sleeper. The place stays claimed,
 * so later wakes skip it, and once continued the sleeper finds its word
 * changed and wakes. */
Test(park, a_stopped_sleeper_is_woken_once)
{
    px_region *r = px_test_region(rname, sizeof rname, &(px_region_opts){.capacity = 64});
    uint32_t p = fork_parked(r);
    cr_assert_eq(kill(sleeper_pid, SIGSTOP), 0);
    int st;
    cr_assert_eq(waitpid(sleeper_pid, &st, WUNTRACED), sleeper_pid);
    uint32_t word = atomic_load(&r->parks[p].word);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(px__park_wake(r, BIT, 1), 0);
    cr_assert_eq(atomic_load(&r->parks[p].word) - word, 1, "claimed once in four wakes");
    cr_assert_eq(atomic_load(&r->parks[p].state), PX__PARK_WOKEN);
    cr_assert_eq(kill(sleeper_pid, SIGCONT), 0);
    cr_assert_eq(waitpid(sleeper_pid, &st, 0), sleeper_pid);
    sleeper_pid = 0;
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the sleeper woke: status 0x%x", st);
    px_region_close(r);
}

/* Every place taken: a claim fails cleanly, and a place given back can be
 * claimed again. */
Test(park, claims_run_out_cleanly)
{
    px_region *r = px_test_region(rname, sizeof rname, &(px_region_opts){.capacity = 64});
    for (uint32_t i = 0; i < PX__MAX_PARKS; i++)
        cr_assert_eq(px__park_claim(r), (int)i);
    cr_assert_eq(px__park_claim(r), -EAGAIN);
    cr_assert_eq(atomic_load(&r->hdr->parks_hwm), PX__MAX_PARKS);
    px__park_release(r, 7);
    cr_assert_eq(px__park_claim(r), 7);
    px_region_close(r);
}

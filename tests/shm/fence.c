/*
 * The sleepers' barrier (shm/fence.h), run as the store-buffering litmus
 * test it stands in for: a "producer" thread stores X with a release store
 * and then loads Y; a "sleeper" thread stores Y, issues the barrier, and
 * loads X. Both reading the other's old value is what would let a submit
 * miss a worker falling asleep; with the barrier it must never happen.
 *
 * A smoke test, not a proof: without the barrier this machine shows that
 * reordering in only about one round in a million (measured while writing
 * this test), so 50,000 rounds would rarely catch a missing barrier. It
 * checks that the barrier works where it is used and orders these rounds.
 */
#define _GNU_SOURCE
#include "common.h"
#include "shm/fence.h"

#include <pthread.h>
#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>

#define ROUNDS 50000

struct litmus {
    _Atomic uint64_t x, y, arrive, done;
    uint64_t *seen_y, *seen_x;
    bool fenced; /* the sleeper issues the barrier */
    bool light;  /* the producer uses a release store (else seq_cst) */
};

static void await(_Atomic uint64_t *c, uint64_t v)
{
    while (atomic_load_explicit(c, memory_order_acquire) < v)
        ;
}

static void *producer(void *p)
{
    struct litmus *l = p;
    for (uint64_t i = 1; i <= ROUNDS; i++) {
        atomic_fetch_add(&l->arrive, 1);
        await(&l->arrive, 2 * i);
        if (l->light)
            atomic_store_explicit(&l->x, i, memory_order_release);
        else
            atomic_store_explicit(&l->x, i, memory_order_seq_cst);
        l->seen_y[i - 1] = atomic_load_explicit(&l->y, memory_order_relaxed);
        atomic_fetch_add(&l->done, 1);
        await(&l->done, 2 * i);
    }
    return NULL;
}

static void *sleeper(void *p)
{
    struct litmus *l = p;
    for (uint64_t i = 1; i <= ROUNDS; i++) {
        atomic_fetch_add(&l->arrive, 1);
        await(&l->arrive, 2 * i);
        atomic_store_explicit(&l->y, i, memory_order_seq_cst);
        if (l->fenced)
            cr_assert_eq(px__fence_all(), 0);
        l->seen_x[i - 1] = atomic_load_explicit(&l->x, memory_order_relaxed);
        atomic_fetch_add(&l->done, 1);
        await(&l->done, 2 * i);
    }
    return NULL;
}

/* Rounds in which each thread missed the other's store. */
static int run_litmus(bool fenced, bool light)
{
    static uint64_t seen_y[ROUNDS], seen_x[ROUNDS];
    struct litmus l = {.seen_y = seen_y, .seen_x = seen_x, .fenced = fenced, .light = light};
    pthread_t a, b;
    cr_assert_eq(pthread_create(&a, NULL, producer, &l), 0);
    cr_assert_eq(pthread_create(&b, NULL, sleeper, &l), 0);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    int missed = 0;
    for (uint64_t i = 1; i <= ROUNDS; i++)
        missed += seen_y[i - 1] < i && seen_x[i - 1] < i;
    return missed;
}

Test(fence, a_sleeper_barrier_orders_a_release_store_before_the_producers_load, .timeout = 120)
{
    bool registered = px__fence_register();
    cr_log_info("registered for the sleepers' barriers: %s", registered ? "yes" : "no");
    /* Where the kernel refuses the barrier, regions are made symmetric and
     * producers use seq_cst: test that path instead of none. */
    int missed = run_litmus(registered, registered);
    cr_assert_eq(missed, 0, "%d of %d rounds missed both stores", missed, ROUNDS);
}

Test(fence, registration_is_forgotten_in_a_forked_child)
{
    if (!px__fence_register())
        cr_assert_eq(atomic_load(&px__fence_registered), 0);
    else
        cr_assert(px__fence_light(PX__FENCES_ASYMMETRIC));
    cr_assert_not(px__fence_light(PX__FENCES_SYMMETRIC));
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        /* A new address space the kernel has not registered: plain stores
         * would not be ordered by anyone's barrier. */
        if (px__fence_light(PX__FENCES_ASYMMETRIC))
            _exit(1);
        _exit(px__fence_register() == (atomic_load(&px__fence_registered) == 1) ? 0 : 2);
    }
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status 0x%x", status);
}

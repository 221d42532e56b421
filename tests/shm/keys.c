/*
 * The key index against a model: random inserts of keys for slots made
 * live and finishes that kill them, with hashes crowded into one shard and
 * onto few homes so that chains are long and deletions move entries. After
 * every step each key finds exactly the live task the model says, or none.
 * Also: a shard whose lock holder died mid-move is rebuilt.
 */
#include "common.h"
#include "shm/region.h"

#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>

static char rname[64];

static void fini(void)
{
    px_region_destroy(rname);
}

TestSuite(keys_index, .fini = fini, .timeout = 60);

enum { CAP = 4096, NK = 100 }; /* 128 entries a shard: room for every key */

/* Keys of shard 5 with homes among 8 positions: long shared chains. */
static uint64_t crowded(uint32_t k)
{
    return (5ull << 58) | ((uint64_t)k << 20) | (k % 8);
}

static px_id make_live(px_region *r, uint32_t idx)
{
    uint64_t c = atomic_load(&r->slots[idx].ctl);
    uint32_t gen = PX__CTL_GEN(c) + 1;
    atomic_store(&r->slots[idx].ctl, PX__CTL(gen, PX__S_PENDING, 0, 0, 0));
    return PX__ID(gen, idx);
}

static void make_dead(px_region *r, uint32_t idx)
{
    uint64_t c = atomic_load(&r->slots[idx].ctl);
    atomic_store(&r->slots[idx].ctl, PX__CTL_WITH(c, PX__S_SUCCESS, 0));
}

Test(keys_index, finds_what_the_model_says_through_churn)
{
    px_region *r = px_test_region(rname, sizeof rname, &(px_region_opts){.capacity = CAP});
    srand(px_test_seed());
    px_id model[NK] = {0}; /* key -> live id, 0 none */
    int owner[CAP];        /* slot -> key, -1 none */
    for (int i = 0; i < CAP; i++)
        owner[i] = -1;
    for (int step = 0; step < 20000; step++) {
        uint32_t k = (uint32_t)rand() % NK;
        uint64_t h = crowded(k);
        if (model[k] && rand() % 2) {
            make_dead(r, PX__ID_IDX(model[k])); /* the task finished */
            owner[PX__ID_IDX(model[k])] = -1;
            model[k] = 0;
        } else if (!model[k]) {
            uint32_t idx = (uint32_t)rand() % CAP;
            if (owner[idx] >= 0)
                continue;
            px__keys_lock(r, h);
            cr_assert_eq(px__keys_find(r, h), 0, "step %d: key %u found while dead", step, k);
            px_id id = make_live(r, idx);
            cr_assert_eq(px__keys_put(r, h, id), 0, "step %d: no room", step);
            px__keys_unlock(r, h);
            model[k] = id;
            owner[idx] = (int)k;
        }
        uint32_t probe = (uint32_t)rand() % NK;
        px__keys_lock(r, crowded(probe));
        px_id got = px__keys_find(r, crowded(probe));
        px__keys_unlock(r, crowded(probe));
        cr_assert_eq(got, model[probe], "step %d: key %u found %llx, the model says %llx", step,
                     probe, (unsigned long long)got, (unsigned long long)model[probe]);
    }
    for (uint32_t k = 0; k < NK; k++) {
        px__keys_lock(r, crowded(k));
        cr_assert_eq(px__keys_find(r, crowded(k)), model[k]);
        px__keys_unlock(r, crowded(k));
    }
    for (uint32_t i = 0; i < CAP; i++) {
        uint64_t c = atomic_load(&r->slots[i].ctl);
        atomic_store(&r->slots[i].ctl, PX__CTL_WITH(c, PX__S_FREE, 0));
    }
    cr_assert_eq(px_region_close(r), 0);
}

Test(keys_index, a_shard_left_mid_move_is_rebuilt)
{
    px_region *r = px_test_region(rname, sizeof rname, &(px_region_opts){.capacity = CAP});
    px_id a = make_live(r, 1), b = make_live(r, 2);
    px__keys_lock(r, crowded(0));
    cr_assert_eq(px__keys_put(r, crowded(0), a), 0);
    cr_assert_eq(px__keys_put(r, crowded(8), b), 0); /* the same home: next to it */
    px__keys_unlock(r, crowded(0));
    pid_t kid = fork();
    cr_assert_geq(kid, 0);
    if (kid == 0) {
        px_region *cr;
        if (px_region_open(rname, NULL, &cr))
            _exit(2);
        px__keys_lock(cr, crowded(0));
        /* Cut the chain as a move cut short would: the home entry emptied
         * before the next one moved into it. */
        struct px__keyent *e = cr->keys + 5 * cr->hdr->key_shard_size;
        atomic_store(&e[0].hash, 0);
        raise(SIGKILL);
    }
    int st;
    waitpid(kid, &st, 0);
    cr_assert(WIFSIGNALED(st));
    px__keys_lock(r, crowded(8));
    cr_assert_eq(px__keys_find(r, crowded(8)), b, "found again after the rebuild");
    px__keys_unlock(r, crowded(8));
    for (uint32_t i = 1; i <= 2; i++) {
        uint64_t c = atomic_load(&r->slots[i].ctl);
        atomic_store(&r->slots[i].ctl, PX__CTL_WITH(c, PX__S_FREE, 0));
    }
    cr_assert_eq(px_region_close(r), 0);
}

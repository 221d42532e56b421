/*
 * A submit's steps made one at a time, for tests that stop or kill a
 * producer exactly between two of them. Internal headers: tests only.
 */
#ifndef PX_TEST_STEPS_H
#define PX_TEST_STEPS_H

#include "executor/executor.h"

#include <string.h>

/* Reserves a slot for `task` and fills it with args (inline: at most
 * PX__INLINE_ARGS bytes), as a submit does before it logs and publishes.
 * The slot stays RESERVED. 0 or a negative code. */
static inline int px_test_reserve(px_region *r, const char *task, const void *args, uint32_t len,
                                  px_id *id)
{
    struct px__tls *t = px__tls_get(r);
    int def = px__def_find(r, task);
    if (!t || def < 0 || len > PX__INLINE_ARGS)
        return -EINVAL;
    int rc = px__slot_reserve(r, t, 0, id);
    if (rc)
        return rc;
    struct px__slot *s = &r->slots[PX__ID_IDX(*id)];
    atomic_store(&s->def, (uint32_t)def);
    atomic_store(&s->queue, r->defs[def].queue);
    atomic_store(&s->level, PX_PRIORITY_NORMAL - 1);
    atomic_store(&s->args_len, len);
    atomic_store(&s->args_chunk, PX__NO_CHUNK);
    atomic_store(&s->out_len, 0);
    atomic_store(&s->out_chunk, PX__NO_CHUNK);
    if (len)
        memcpy(s->args, args, len);
    return 0;
}

/* RESERVED -> PENDING: the task is published, though in no lane yet. */
static inline void px_test_publish(px_region *r, px_id id)
{
    struct px__slot *s = &r->slots[PX__ID_IDX(id)];
    uint64_t c = atomic_load(&s->ctl);
    atomic_store(&s->ctl, PX__CTL_WITH(c, PX__S_PENDING, r->self + 1));
}

#endif

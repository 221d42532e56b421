/*
 * Looking at many tasks: px_list and px_task_args, for operators and the
 * pollux command. Both read slots without taking anything, and check that
 * the slot did not move on while they read it.
 */
#include "executor.h"

#include <errno.h>
#include <string.h>

int px_task_args(px_region *r, px_id id, void *buf, size_t cap, size_t *len)
{
    if (!r || (cap && !buf))
        return -EINVAL;
    struct px__slot *s = px__slot_of(r, id);
    if (!s)
        return -ENOENT;
    uint64_t c = atomic_load_explicit(&s->ctl, memory_order_acquire);
    uint32_t st = PX__CTL_STATE(c);
    if (PX__CTL_GEN(c) != PX__ID_GEN(id) || st == PX__S_FREE || st == PX__S_RESERVED ||
        st == PX__S_CONSUMING)
        return -ENOENT;
    if (px__state_finished(st) && st != PX__S_DEAD)
        return -ENODATA;
    uint32_t n = atomic_load_explicit(&s->args_len, memory_order_relaxed);
    const uint8_t *src = px__slot_args(r, s);
    if (!src || n > r->hdr->max_payload)
        return PX_ECORRUPT;
    if (len)
        *len = n;
    if (n > cap)
        return -ENOBUFS;
    if (n)
        memcpy(buf, src, n);
    if (atomic_load_explicit(&s->ctl, memory_order_acquire) != c)
        return -EAGAIN; /* it moved on while we copied: ask again */
    return 0;
}

struct filter {
    int state;
    int queue; /* -1: any */
    int def;   /* -1: any */
};

static int make_filter(px_region *r, const px_list_opts *o, struct filter *f)
{
    *f = (struct filter){o ? o->state : 0, -1, -1};
    if (f->state < 0 || f->state > PX_DEAD)
        return -EINVAL;
    if (o && o->queue && (f->queue = px__queue_find(r, o->queue, false)) < 0)
        return f->queue;
    if (o && o->task && (f->def = px__def_find(r, o->task)) < 0)
        return f->def;
    return 0;
}

int px_list(px_region *r, const px_list_opts *opts, px_id *ids, size_t cap, uint32_t *cursor)
{
    if (!r || !cursor || (cap && !ids) || cap > INT32_MAX)
        return -EINVAL;
    struct filter f;
    int rc = make_filter(r, opts, &f);
    if (rc == -ENOENT || rc == PX_ENOTASK) {
        *cursor = r->hdr->capacity; /* no such queue or task: nothing matches */
        return 0;
    }
    if (rc)
        return rc;
    size_t n = 0;
    uint32_t i = *cursor;
    for (; i < r->hdr->capacity && n < cap; i++) {
        struct px__slot *s = &r->slots[i];
        uint64_t c = atomic_load_explicit(&s->ctl, memory_order_acquire);
        px_id id = PX__ID(PX__CTL_GEN(c), i);
        int st = px_status(r, id);
        if (st < 0 || (f.state && st != f.state))
            continue;
        if (f.queue >= 0 &&
            atomic_load_explicit(&s->queue, memory_order_relaxed) != (uint32_t)f.queue)
            continue;
        if (f.def >= 0 && atomic_load_explicit(&s->def, memory_order_relaxed) != (uint32_t)f.def)
            continue;
        ids[n++] = id;
    }
    *cursor = i;
    return (int)n;
}

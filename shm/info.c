/*
 * Names and reports: error texts, the id text form, region information.
 */
#include "region.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *px_strerror(int err)
{
    switch (err) {
    case 0:
        return "success";
    case PX_ENOTASK:
        return "no task of that name is defined in the region";
    case PX_ETASKFAILED:
        return "the task failed";
    case PX_EVERSION:
        return "the region has another layout version";
    case PX_ECORRUPT:
        return "not a Pollux region, or a damaged one";
    case PX_ERETRY:
        return "the task asked to be retried";
    case -ENOENT:
        return "no such task or region";
    case -EAGAIN:
        return "no room: the region or the queue is full";
    case -ETIMEDOUT:
        return "timed out";
    case -E2BIG:
        return "payload larger than the region's max_payload";
    default:
        if (err < 0 && err > -4096)
            return strerror(-err);
        return "unknown error";
    }
}

const char *px_state_name(int state)
{
    static const char *const names[] = {
        [PX_PENDING] = "PENDING",
        [PX_SCHEDULED] = "SCHEDULED",
        [PX_RUNNING] = "RUNNING",
        [PX_RETRY] = "RETRY",
        [PX_CANCEL_REQUESTED] = "CANCEL_REQUESTED",
        [PX_SUCCESS] = "SUCCESS",
        [PX_FAILED] = "FAILED",
        [PX_CANCELLED] = "CANCELLED",
        [PX_DEAD] = "DEAD",
    };
    if (state <= 0 || state >= (int)(sizeof names / sizeof names[0]) || !names[state])
        return "?";
    return names[state];
}

int px_id_format(px_id id, char *buf)
{
    if (!buf)
        return -EINVAL;
    snprintf(buf, PX_ID_LEN + 1, "%08x-%08x", PX__ID_GEN(id), PX__ID_IDX(id));
    return PX_ID_LEN;
}

static int hex8(const char *s, uint32_t *out)
{
    uint32_t v = 0;
    for (int i = 0; i < 8; i++) {
        char c = s[i];
        uint32_t d;
        if (c >= '0' && c <= '9')
            d = (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f')
            d = (uint32_t)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            d = (uint32_t)(c - 'A' + 10);
        else
            return -EINVAL;
        v = v << 4 | d;
    }
    *out = v;
    return 0;
}

int px_id_parse(const char *text, px_id *out)
{
    uint32_t gen, idx;
    if (!text || !out || strlen(text) != PX_ID_LEN || text[8] != '-' || hex8(text, &gen) ||
        hex8(text + 9, &idx) || gen == 0)
        return -EINVAL;
    *out = PX__ID(gen, idx);
    return 0;
}

int px_region_info_get(px_region *r, px_region_info *info)
{
    if (!r || !info)
        return -EINVAL;
    struct px__hdr *h = r->hdr;
    memset(info, 0, sizeof *info);
    info->version = h->abi;
    info->capacity = h->capacity;
    info->max_payload = h->max_payload;
    info->lanes = h->lanes;
    info->lane_depth = h->lane_depth;
    info->arena_bytes = (uint64_t)h->nchunks * h->chunk_size;
    info->size_bytes = h->size;
    info->created_ns = h->created_ns;
    for (uint32_t i = 0; i < h->capacity; i++)
        info->slots_used += PX__CTL_STATE(atomic_load(&r->slots[i].ctl)) != PX__S_FREE;
    for (uint32_t i = 0; i < h->nchunks; i++)
        info->arena_used += atomic_load(&r->tags[i]) != 0 ? h->chunk_size : 0;
    for (uint32_t i = 0; i < h->lanes; i++) {
        struct px__lane *l = &r->lanes[i];
        info->lanes_used += atomic_load(&l->owner) != 0;
        info->queued += atomic_load(&l->tail) - atomic_load(&l->head);
    }
    for (uint32_t i = 0; i < h->max_procs; i++)
        info->processes += atomic_load(&r->procs[i].state) != PX__PROC_FREE;
    for (uint32_t i = 0; i < h->max_defs; i++)
        info->tasks_defined += atomic_load(&r->defs[i].state) == PX__DEF_READY;
    info->durability = (px_durability)h->durability;
    snprintf(info->log_dir, sizeof info->log_dir, "%s", h->log_dir);
    return 0;
}

/* Adds to each listed process the tasks it runs now, by mode. */
static void count_busy(px_region *r, px_proc_info *procs, const uint32_t *index, int n)
{
    for (uint32_t i = 0; i < r->hdr->capacity; i++) {
        struct px__slot *s = &r->slots[i];
        uint64_t c = atomic_load_explicit(&s->ctl, memory_order_acquire);
        uint32_t st = PX__CTL_STATE(c), owner = PX__CTL_OWNER(c);
        if ((st != PX__S_RUNNING && st != PX__S_CANCEL_REQUESTED && st != PX__S_FINISHING) ||
            owner == 0)
            continue;
        uint32_t def = atomic_load_explicit(&s->def, memory_order_relaxed);
        bool child = def < r->hdr->max_defs && r->defs[def].mode == PX_PROCESS;
        for (int k = 0; k < n; k++)
            if (index[k] == owner - 1) {
                (child ? &procs[k].children_busy : &procs[k].threads_busy)[0]++;
                break;
            }
    }
}

int px_region_procs(px_region *r, px_proc_info *procs, int cap)
{
    if (!r || cap < 0 || (cap > 0 && !procs))
        return -EINVAL;
    int n = 0;
    uint32_t *index = cap ? malloc((size_t)cap * sizeof *index) : NULL;
    if (cap && !index)
        return -ENOMEM;
    for (uint32_t i = 0; i < r->hdr->max_procs; i++) {
        struct px__proc *p = &r->procs[i];
        if (atomic_load_explicit(&p->state, memory_order_acquire) != PX__PROC_ALIVE)
            continue;
        if (n < cap) {
            procs[n] = (px_proc_info){.pid = p->pid,
                                      .role = (px_role)p->role,
                                      .attached_ns = p->attached_ns,
                                      .threads = atomic_load(&p->threads),
                                      .children = atomic_load(&p->children)};
            index[n] = i;
        }
        n++;
    }
    if (cap)
        count_busy(r, procs, index, n < cap ? n : cap);
    free(index);
    return n;
}

/*
 * A durable region's life: where its log is, recovering a region from its
 * log, and each process's own log writer. The region calls these; they are
 * no-ops for a region that is not durable.
 */
#ifndef PX_PERSIST_DURABLE_H
#define PX_PERSIST_DURABLE_H

#include "log.h"
#include "../shm/region.h"

/* What opening found in the log directory, before the region exists. */
struct px__durable_plan {
    uint32_t durability;
    char dir[PX__PATH_MAX];
    struct px__log log;
    bool have_log; /* the directory held at least one segment */
};

/* Resolves the log directory for a region being opened and, if the region
 * is to be durable, loads what the directory holds. */
int px__durable_plan(const char *name, const px_region_opts *o, struct px__durable_plan *p);
void px__durable_plan_free(struct px__durable_plan *p);

/* Sizes a new region from its log (the sizes ids were made for). */
void px__durable_params(const struct px__durable_plan *p, struct px__hdr *h);

/* Writes the plan's durability and directory into a new region's header. */
void px__durable_init(const struct px__durable_plan *p, struct px__hdr *h);

/* Rebuilds the tasks of a freshly created region from its log. The region
 * must not be visible to others yet. */
int px__recover(px_region *r, const struct px__log *log, px_recovery_info *rep);

/* After a recovery: writes every restored task into this process's new log
 * and, once that is on stable storage, deletes the segments recovered
 * from, so that the log holds only what is live. */
int px__durable_checkpoint(px_region *r, const struct px__durable_plan *p);

/* Opens this process's log writer if the region is durable. */
int px__durable_attach(px_region *r);
/* Writes out and closes it. */
void px__durable_detach(px_region *r);
/* In a child just forked: the parent's writer is not ours to touch (its
 * thread is gone); open our own. */
int px__durable_after_fork(px_region *r);

#endif

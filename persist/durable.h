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
    uint32_t async_ms;
    uint64_t segment_bytes;
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

/*
 * A checkpoint: takes an LSN B, writes a CHECKPOINT(B) begin record, then
 * every task live in the region as the records that rebuild it, then, once
 * all that is on stable storage, a CHECKPOINT(B) end record. A recovery
 * that meets the end record drops every task no record since B touched, so
 * after it no record older than B matters: every segment whose records are
 * all older than B, and to which no live process appends, is deleted. This
 * is what keeps the log from growing while tasks come and go. *dropped
 * counts the segments deleted.
 */
int px__checkpoint(px_region *r, uint64_t *dropped);

/* Runs a checkpoint if the writers have written more than a segment's
 * worth since the last one and no other process runs one. */
void px__checkpoint_maybe(px_region *r);

/* For a durable region whose memory survived, opened by its only live
 * process: compares the log with the memory and, if they differ, writes a
 * checkpoint of the memory (which wins). Reports in rep. */
int px__reconcile(px_region *r, px_recovery_info *rep);

/* Opens this process's log writer if the region is durable. */
int px__durable_attach(px_region *r);
/* Writes out and closes it. */
void px__durable_detach(px_region *r);
/* In a pool child just forked: it appends to its parent's writer (which
 * lives in shared memory, see wal.h) and never closes it. */
int px__durable_after_fork(px_region *r);

#endif

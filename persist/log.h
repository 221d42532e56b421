/*
 * Reading a log directory: every segment's valid prefix, the cuts that
 * failed groups left, and the records in LSN order. Used by recovery,
 * `pollux wal dump|verify` and the tests. Reading never changes a file.
 */
#ifndef PX_PERSIST_LOG_H
#define PX_PERSIST_LOG_H

#include "record.h"

#include <stddef.h>
#include <stdint.h>

struct px__seg {
    char name[64];
    uint8_t *data;
    size_t size;  /* bytes in the file */
    size_t valid; /* bytes of the valid frames from the start */
    size_t used;  /* valid, or less where a later segment cut it */
    uint64_t records;
    uint64_t max_lsn;            /* of its valid records */
    struct px__rec_segment head; /* from its first record, if valid */
    int has_head;
    /* Where the first invalid frame is, what was wrong with it. */
    size_t bad_at;
    int nonzero_tail; /* bytes after valid that are not zero: damage, not just preallocation */
};

struct px__log {
    struct px__seg *segs;
    size_t nsegs;
    struct px__rec *all;         /* every replayable record, segment by segment */
    const struct px__rec **recs; /* the same, in LSN order */
    size_t nrecs;
    uint64_t max_lsn;
    uint64_t bytes_cut; /* non-zero bytes past the valid prefixes and cut points */
};

/* What a checkpoint needs to know of a segment without reading all of it:
 * whose it is (from its name, "<writer>-<seq>.wal") and the LSN of its
 * first frame, the SEGMENT record. Every record a writer put in one
 * segment has a smaller LSN than its next segment's head, which was taken
 * after the writer had taken the last group of the one before. */
struct px__seg_head {
    char name[64];
    uint64_t writer;
    uint32_t seq;
    int has_lsn; /* the first frame is a valid SEGMENT record */
    uint64_t lsn;
};

/* Reads the first frame of every *.wal file in dir whose name a writer
 * gives its segments; *out is malloc'ed. -ENOENT if dir does not exist. */
int px__log_heads(const char *dir, struct px__seg_head **out, size_t *n);

/* Reads one segment whole: the largest LSN of its valid records (0 if
 * none). */
int px__log_segment_max(const char *dir, const char *name, uint64_t *max);

/* Loads every *.wal file in dir. -ENOENT if dir does not exist;
 * PX_EVERSION, with a line on stderr naming the segment, if a segment
 * opens with a head of a later format than this build reads (nothing is
 * loaded, and nothing is cut). */
int px__log_load(const char *dir, struct px__log *out);
void px__log_free(struct px__log *l);

#endif

/*
 * Zeros written ahead of a log segment's writes.
 *
 * On ext4 and XFS, space reserved with fallocate is "unwritten": the first
 * write into it changes the file's block map, so the flush after it must
 * also commit that change to the file system's journal, which costs about
 * as much again as the flush of the data itself. A segment whose space was
 * already written (with zeros) and flushed needs no such commit: a group's
 * flush then carries only its data. That is what a sync-mode submit waits
 * for, so a thread of the log writer's process writes zeros a few MiB
 * ahead of the log and flushes them, off the path of any submit.
 *
 * Who writes what: the log thread alone writes records, below the front
 * it claims; the zeroer alone writes zeros, starting at least one chunk
 * (256 KiB to 1 MiB) past that front (so that the log's next groups do not
 * reach them), in chunks
 * it marks busy under the mutex before writing. A claim that overlaps a
 * busy chunk waits for it, so the two never write the same bytes. Zeros
 * read as the end of a segment, as unwritten space does. A process killed
 * while its zeroer writes leaves zeros past its last record, or less of
 * them: nothing a reader takes for a record.
 *
 * The zeroer opens each segment itself (its own open file description, so
 * that a write-back error reported to its flush is still reported to the
 * log thread's), and a failure only stops the zeros: the log's own writes
 * go on into the reserved space, slower to flush, and report their own
 * errors. It belongs to the process that opened it; a forked child never
 * calls it.
 */
#ifndef PX_PERSIST_AHEAD_H
#define PX_PERSIST_AHEAD_H

#include <stdint.h>

struct px__ahead;

struct px__ahead_stats {
    uint64_t zeroed; /* bytes of zeros written and flushed */
    uint64_t ready;  /* bytes the log claimed over zeros already flushed */
    uint64_t waited; /* claims that waited for a chunk being written */
};

/* Starts the zeroer thread: 0 or a negative errno. */
int px__ahead_start(struct px__ahead **out);

/* Stops it (after its chunk in progress) and frees it; NULL is ignored. */
void px__ahead_stop(struct px__ahead *a);

/* The log moved to segment `name` in dirfd, whose bytes before `from` are
 * written; zeros go up to `end`. Waits for a chunk of the last segment in
 * progress. A segment the zeroer cannot open gets no zeros. */
void px__ahead_segment(struct px__ahead *a, int dirfd, const char *name, uint64_t from,
                       uint64_t end);

/* The log is about to write [off, off + len) of the current segment:
 * waits until no zeros are being written there, and moves the front. */
void px__ahead_claim(struct px__ahead *a, uint64_t off, uint64_t len);

void px__ahead_stats(struct px__ahead *a, struct px__ahead_stats *s);

#endif

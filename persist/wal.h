/*
 * The write-ahead log of one process attached to a durable region.
 *
 * Each attached process writes its own segment files in the region's log
 * directory with its own io (io_uring) from its own log thread; no process
 * waits for another's log, and recovery merges every segment by LSN. LSNs
 * come from one counter in the region header, taken as a record is sealed,
 * so a record sealed after another was published (a START after its
 * task's SUBMIT) has a larger LSN; within a segment they need not
 * increase, but every record of a segment has a smaller LSN than the head
 * of the writer's next segment.
 *
 * Appending takes no lock: each thread appends to a ring of its own
 * (there are PX__WAL_RINGS - 1 of them; threads beyond that share one more
 * under a mutex), sealing a record in place and publishing it by moving
 * the ring's tail. The log thread takes what every ring has published as
 * one group: one write of all of it and, when a waiter asks (a sync-mode
 * submit), one flush, then wakes the waiters of that group. That is group
 * commit: many submits, one flush. A record nobody waits for is written
 * within async_ms (sooner when a ring is half full, or with the next
 * waited group) and flushed within async_ms too, in either mode.
 *
 * A group whose write or flush fails is not retried (after a failed flush
 * the kernel may have dropped the dirty pages): its waiters get the error,
 * the segment is abandoned at the group's offset (the next segment's first
 * record says so, so recovery never replays what followed) and a new
 * segment is started for the next group.
 *
 * If the process dies, records not yet written are lost; a sync-mode
 * submit returns only after its group's flush, so what was acknowledged
 * was on disk. Records written but not flushed may survive or not; recovery
 * takes what checks out.
 *
 * The writer and its rings live in shared memory, so the pool children a
 * process forks append to their parent's log: a child needs no thread and
 * no allocation of its own after the fork, where a lock another thread
 * held at the fork could never be released. A child killed while building
 * a record leaves it past its ring's tail, unused; its ring goes to the
 * next thread that finds none free.
 */
#ifndef PX_PERSIST_WAL_H
#define PX_PERSIST_WAL_H

#include "record.h"

#include <stdint.h>

/* Rings per writer: one shared, the rest one thread's each. */
#define PX__WAL_RINGS 64

struct px__wal;

struct px__wal_opts {
    const char *dir;               /* created if missing */
    unsigned async_ms;             /* longest wait of an unwaited record for its flush */
    int ahead;                     /* 1: write zeros ahead of the log (ahead.h) */
    uint64_t segment_bytes;        /* rotate past this size */
    uint32_t max_record;           /* largest body a record may have */
    _Atomic uint64_t *lsn;         /* the region's counter */
    _Atomic uint64_t *bytes;       /* the region's count of bytes written */
    _Atomic uint64_t *pub_writer;  /* where this writer and its segment are */
    _Atomic uint32_t *pub_seq;     /* published (the process's entry) */
    struct px__rec_segment params; /* written at the head of every segment */
};

int px__wal_open(const struct px__wal_opts *o, struct px__wal **out);

/* Writes and flushes everything appended, stops the log thread, frees. */
void px__wal_close(struct px__wal *w);

/*
 * Appending is two calls: px__wal_begin returns room for a body of up to
 * max bytes in the calling thread's ring (or in the shared ring, which it
 * then holds locked), px__wal_end seals a body of len bytes there and
 * returns the record's ticket (> 0) for px__wal_wait. Between the two the
 * thread appends nothing else (a second begin would hand out the same
 * bytes) and waits for nothing: the shared ring stays locked, and no
 * waiter's group can hold the open record. A SUBMIT_MANY
 * (journal.h) stays open while its call fills slots, trying each without
 * waiting, and is ended before anything that waits or logs.
 */
uint8_t *px__wal_begin(struct px__wal *w, uint32_t max);

/* Tests only: a function the log thread calls between its read of the
 * stop flag and its look at the rings, to hold that window open; NULL
 * (the default) for none. */
typedef void (*px__wal_gap_fn)(struct px__wal *w);
void px__wal_set_gap(px__wal_gap_fn f);
uint64_t px__wal_end(struct px__wal *w, uint16_t type, uint32_t len);

/* Appends a record whose body is small and already built. */
uint64_t px__wal_append(struct px__wal *w, uint16_t type, const void *body, uint32_t len);

/* Waits until the record with this ticket is on stable storage: 0, or the
 * negative errno of the write or flush that failed it. */
int px__wal_wait(struct px__wal *w, uint64_t ticket);

/* Waits until everything appended so far is on stable storage, in either
 * mode: 0 or the first error. */
int px__wal_flush(struct px__wal *w);

/* Counters for tests and benchmarks. */
struct px__wal_stats {
    uint64_t records, groups, flushes, bytes, failed_groups, segments;
    uint64_t shared_records; /* appended to the shared ring */
    uint64_t unwritten;      /* bytes appended, not yet written */
    uint64_t ring_bytes;     /* of each ring; a ring half full is written at once */
    uint64_t zeroed;         /* bytes of zeros written ahead of the log */
    uint64_t ready;          /* bytes the log wrote over zeros already flushed */
    uint64_t zero_waits;     /* groups that waited for zeros being written */
};
void px__wal_stats(struct px__wal *w, struct px__wal_stats *s);

#endif

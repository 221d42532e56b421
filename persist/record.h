/*
 * Log records: framing, checksums and the record bodies.
 *
 * A frame is a 24-byte header and a body, padded with zeros to a multiple
 * of 8 bytes, all little-endian:
 *
 *   0   u64 sum   XXH3-64 of bytes 8 .. 24 + len (the rest of the header
 *                 and the body), seeded with PX__REC_SEED
 *   8   u32 len   body bytes, at most PX__REC_MAX_BODY
 *   12  u16 type  PX__REC_*
 *   14  u16 zero
 *   16  u64 lsn   log sequence number, unique across the region's processes
 *   24  body, then padding to the next multiple of 8
 *
 * A reader accepts a frame only if its length is in bounds, its type is
 * known, its reserved field and padding are zero and its sum matches. The
 * first frame that fails ends the segment: everything from it on is a torn
 * or damaged tail, cut and never replayed. Zeroes (a preallocated, unwritten
 * tail) never form a valid frame, since the sum of a zero header and body is
 * not zero.
 */
#ifndef PX_PERSIST_RECORD_H
#define PX_PERSIST_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <endian.h>
#include <string.h>

#define PX__REC_HDR 24u
#define PX__REC_MAX_BODY (1u << 24)
#define PX__REC_SEED 0x706f6c6c75780001ull /* "pollux", framing 1 */

/* The record types and bodies a log may hold, as a number a segment's head
 * carries: a reader refuses a log with a segment of a later format
 * (PX_EVERSION) rather than cut it at the first record it cannot read.
 * Format 2: types SEGMENT to SUBMIT_MANY. A head without the field was
 * written before it existed, by a writer of format 2. */
#define PX__LOG_FORMAT 2u

enum px__rec_type {
    PX__REC_SEGMENT = 1,      /* first frame of every segment: who wrote it, region params */
    PX__REC_SUBMIT = 2,       /* a task was submitted: id, definition, queue, flags, args */
    PX__REC_START = 3,        /* a worker claimed it: attempts so far */
    PX__REC_FINISH = 4,       /* it finished: outcome and result or error text */
    PX__REC_FREE = 5,         /* its slot was freed (forgotten, consumed, detached) */
    PX__REC_CHECKPOINT = 6,   /* a checkpoint begins or ends (see durable.c) */
    PX__REC_CANCEL = 7,       /* a running task was asked to stop (px_cancel) */
    PX__REC_RETRY = 8,        /* a run failed and the task waits to run again, or
                                 a dead task was requeued (due 0) */
    PX__REC_SCHED = 9,        /* a recurring schedule: made, or as a checkpoint saw it */
    PX__REC_SCHED_END = 10,   /* a schedule ended or was cancelled */
    PX__REC_SUBMIT_MANY = 11, /* tasks of one px_submit_many call alike but
                                 for their ids and args */
};

/* A decoded frame; body points into the buffer it was read from. */
struct px__rec {
    uint16_t type;
    uint32_t len;
    uint64_t lsn;
    const uint8_t *body;
    uint64_t nonce; /* of the region whose writer made the segment holding it
                       (log.h sets it; 0 where unknown) */
};

/* Bytes a frame with a body of len bytes takes. */
static inline size_t px__rec_size(size_t len)
{
    return PX__REC_HDR + ((len + 7) & ~(size_t)7);
}

/* Writes a frame header for a body already at dst + PX__REC_HDR, pads it
 * and seals it with its sum. Returns the frame's size. */
size_t px__rec_seal(uint8_t *dst, uint16_t type, uint64_t lsn, uint32_t len);

/* Decodes the frame at buf[off, size). Returns its size, or 0 if there is
 * no valid frame there (end of data, torn or damaged). */
size_t px__rec_read(const uint8_t *buf, size_t size, size_t off, struct px__rec *out);

/* Decodes the header of a frame px__rec_read already accepted, without
 * checking it again. Returns its size. */
size_t px__rec_decoded(const uint8_t *frame, struct px__rec *out);

/*
 * Bodies. Writers append fields with px__put_*; readers take them with
 * px__get_*, which fail (return false) rather than read past the body.
 */
struct px__put {
    uint8_t *p;
    size_t len, cap;
    bool overflow;
};

/* Inline: a SUBMIT record is put field by field on every submit, and a
 * call with its own bounds check per field cost more than the copies. */
static inline void px__put_raw(struct px__put *w, const void *p, size_t n)
{
    if (w->overflow || w->cap - w->len < n) {
        w->overflow = true;
        return;
    }
    memcpy(w->p + w->len, p, n);
    w->len += n;
}

static inline void px__put_u8(struct px__put *w, uint8_t v)
{
    px__put_raw(w, &v, 1);
}

static inline void px__put_u32(struct px__put *w, uint32_t v)
{
    v = htole32(v);
    px__put_raw(w, &v, 4);
}

static inline void px__put_u64(struct px__put *w, uint64_t v)
{
    v = htole64(v);
    px__put_raw(w, &v, 8);
}

/* u32 length, bytes */
static inline void px__put_bytes(struct px__put *w, const void *p, uint32_t n)
{
    px__put_u32(w, n);
    if (n)
        px__put_raw(w, p, n);
}

void px__put_str(struct px__put *w, const char *s); /* u8 length, bytes */

struct px__get {
    const uint8_t *p;
    size_t len, at;
};
bool px__get_u8(struct px__get *g, uint8_t *v);
bool px__get_u32(struct px__get *g, uint32_t *v);
bool px__get_u64(struct px__get *g, uint64_t *v);
bool px__get_bytes(struct px__get *g, const uint8_t **p, uint32_t *n);
bool px__get_str(struct px__get *g, char *dst, size_t cap); /* NUL-terminated */

/* The body of a SUBMIT record. */
struct px__rec_submit {
    uint64_t id;
    uint32_t flags; /* PX__F_* of the slot */
    uint8_t mode;   /* px_mode */
    char name[64];
    char queue[64];
    const uint8_t *args;
    uint32_t args_len;
    /* Optional fields after the args, each a u8 tag and a u64, in this
     * order, written only when not 0: */
    uint64_t due_ns; /* tag 1: a delayed task's time */
    uint64_t key;    /* tag 2: the hash of its px_submit_opts.key */
    uint64_t prio;   /* tag 3: its px_priority, if not NORMAL */
    uint64_t sched;  /* tag 4: the schedule that made it (its id) */
    uint64_t run;    /* tag 5: which run of that schedule, from 1 */
};

/*
 * The body of a SUBMIT_MANY record: consecutive tasks of one px_submit_many
 * call that share their definition, queue, priority, flags and due time,
 * which the record holds once, then each task's id and args:
 *
 *   u32 count, u32 flags, u8 mode, str name, str queue, u64 due_ns (0:
 *   none), u8 prio (0: NORMAL), then count times: u64 id, bytes args
 *
 * A task in it costs its id and args, not a frame, two names and a sum of
 * its own: a third fewer bytes for a task with 64 bytes of args, on the
 * path where a sync submit waits for the disk. The count comes first so
 * that a writer can fill it in once it knows it.
 */
struct px__rec_many {
    struct px__rec_submit common; /* every field but id and args */
    uint32_t count;
    uint32_t first; /* the body offset of the first task */
};

/* The body of a SCHED record: what makes the schedule's runs, and how far
 * it got (runs made, and the due time of the latest). */
struct px__rec_sched {
    uint64_t id;
    uint8_t mode;
    uint8_t level;
    char name[64];
    char queue[64];
    uint32_t flags; /* PX__SCHED_SKIP, PX__SCHED_CRON */
    uint32_t slot_flags, ttl_ms, limit_ms, times, made;
    uint64_t every_ns, until_ns, next_ns;
    char cron[64];
    char tz[64];
    const uint8_t *args;
    uint32_t args_len;
};

/* The body of a FINISH record. */
struct px__rec_finish {
    uint64_t id;
    uint8_t state; /* PX__S_SUCCESS or PX__S_FAILED */
    const uint8_t *out;
    uint32_t out_len;
};

/* The body of a RETRY record: attempts made so far, when it runs again
 * (CLOCK_REALTIME ns; 0: PENDING at once, attempts reset by px_requeue),
 * and the last run's error text. */
struct px__rec_retry {
    uint64_t id;
    uint32_t attempts;
    uint64_t due_ns;
    const uint8_t *err;
    uint32_t err_len;
};

/* The body of a SEGMENT record: who wrote the segment, and the parameters
 * a region is rebuilt with. A writer's segments are numbered from 1; when a
 * group failed, the next segment says where its predecessor must be cut
 * (cut_prev, a byte offset; UINT64_MAX: nowhere), so that records whose
 * write or flush reported an error are never replayed. */
struct px__rec_segment {
    uint64_t writer; /* random, chosen when the writer opened */
    uint32_t seq;
    int32_t pid;
    uint64_t cut_prev;
    uint64_t nonce;
    uint32_t capacity, max_payload, lanes, lane_depth, chunk_size, nchunks;
    uint64_t reap_interval_ns;
    uint32_t format; /* PX__LOG_FORMAT of its writer */
};

void px__rec_submit_put(struct px__put *w, const struct px__rec_submit *s);
/* The same with the task and queue names taken from elsewhere (s->name and
 * s->queue are not read), each read up to its first NUL or its max bytes
 * (at most 63), so that a name in shared memory that lost its NUL is cut,
 * not overrun. */
void px__rec_submit_put_names(struct px__put *w, const struct px__rec_submit *s, const char *name,
                              size_t name_max, const char *queue, size_t queue_max);
bool px__rec_submit_get(const struct px__rec *r, struct px__rec_submit *s);
/* A SUBMIT_MANY's shared fields, count 0 (px__rec_many_set_count fills it
 * in); names as for px__rec_submit_put_names. Then one px__rec_many_task_put
 * per task. */
void px__rec_many_put(struct px__put *w, const struct px__rec_submit *s, const char *name,
                      size_t name_max, const char *queue, size_t queue_max);
static inline void px__rec_many_task_put(struct px__put *w, uint64_t id, const void *args,
                                         uint32_t len)
{
    px__put_u64(w, id);
    px__put_bytes(w, args, len);
}
void px__rec_many_set_count(uint8_t *body, uint32_t count);
/* Accepts a SUBMIT_MANY only if its shared fields and every one of its
 * count (at least one) tasks are well formed and nothing follows them. */
bool px__rec_many_get(const struct px__rec *r, struct px__rec_many *m);
/* The task at body offset *off (m->first for the first) of a record
 * px__rec_many_get accepted, as a SUBMIT would hold it; moves *off to the
 * next one. False past the last. */
bool px__rec_many_next(const struct px__rec *r, const struct px__rec_many *m, uint32_t *off,
                       struct px__rec_submit *s);
/* The task of a SUBMIT, or of a SUBMIT_MANY at body offset off, that a get
 * accepted before. */
bool px__rec_submit_at(const struct px__rec *r, uint32_t off, struct px__rec_submit *s);
void px__rec_finish_put(struct px__put *w, const struct px__rec_finish *f);
bool px__rec_finish_get(const struct px__rec *r, struct px__rec_finish *f);
void px__rec_retry_put(struct px__put *w, const struct px__rec_retry *t);
bool px__rec_retry_get(const struct px__rec *r, struct px__rec_retry *t);
void px__rec_segment_put(struct px__put *w, const struct px__rec_segment *s);
bool px__rec_segment_get(const struct px__rec *r, struct px__rec_segment *s);
/* CHECKPOINT: the LSN the checkpoint began at, and whether this is its
 * end. */
void px__rec_ckpt_put(struct px__put *w, uint64_t begin, bool end);
bool px__rec_ckpt_get(const struct px__rec *r, uint64_t *begin, bool *end);
void px__rec_sched_put(struct px__put *w, const struct px__rec_sched *s);
bool px__rec_sched_get(const struct px__rec *r, struct px__rec_sched *s);
/* START: id and attempts, and optionally the id of a task its worker
 * thread freed just before (START_FREED; a FREE folded in, see journal.h);
 * FREE, CANCEL: id (attempts 0); SCHED_END: the schedule's id and its
 * final state. */
static inline void px__rec_id_put(struct px__put *w, uint64_t id, uint32_t attempts)
{
    px__put_u64(w, id);
    px__put_u32(w, attempts);
}
bool px__rec_id_get(const struct px__rec *r, uint64_t *id, uint32_t *attempts);
/* The task a START says was freed before it (0: none); the record must be
 * one px__rec_id_get accepted. */
uint64_t px__rec_start_freed(const struct px__rec *r);

#endif

/*
 * Log records and the directory reader: every record type round trips,
 * every kind of damage a frame can suffer (torn writes, flipped bits,
 * reserved fields, padding, lengths, truncated or overlong bodies) is
 * rejected without reading out of bounds, and px__log_load keeps exactly the
 * valid, uncut records of a directory, in LSN order.
 */
#define _GNU_SOURCE
#include "common.h"
#include "persist/log.h"
#include "persist/record.h"
#include "rng.h"

#include <dirent.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <xxhash.h>

TestSuite(record);

/* The highest record type there is: every type up to it is a frame, every
 * type above it is not. */
#define LAST_TYPE PX__REC_SUBMIT_MANY

/* ---- Helpers ------------------------------------------------------------ */

static void fill_pattern(uint8_t *p, size_t n, unsigned salt)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(i * 31u + salt * 7u + (i >> 8) + 1u);
}

/* Recomputes a frame's sum the way the format defines it, so that a test can
 * change one field and know that the sum is not what rejects the frame. */
static void reseal(uint8_t *f)
{
    uint32_t len;
    memcpy(&len, f + 8, 4);
    len = le32toh(len);
    uint64_t sum =
        htole64(XXH3_64bits_withSeed(f + 8, PX__REC_HDR - 8 + (size_t)len, PX__REC_SEED));
    memcpy(f, &sum, 8);
}

static void set_u16(uint8_t *p, uint16_t v)
{
    v = htole16(v);
    memcpy(p, &v, 2);
}

static void set_u32(uint8_t *p, uint32_t v)
{
    v = htole32(v);
    memcpy(p, &v, 4);
}

/* A segment built in memory: frames back to back, with where each is. */
#define MAXF 1024
struct seg {
    uint8_t *p;
    size_t len, cap, n;
    size_t start[MAXF], end[MAXF], body_end[MAXF];
    uint64_t lsn[MAXF];
    uint16_t type[MAXF];
};

static struct seg *seg_new(size_t cap)
{
    struct seg *b = calloc(1, sizeof *b);
    cr_assert_not_null(b);
    b->p = calloc(1, cap);
    cr_assert_not_null(b->p);
    b->cap = cap;
    return b;
}

static void seg_free(struct seg *b)
{
    free(b->p);
    free(b);
}

/* Where the next frame's body goes. */
static struct px__put seg_body(struct seg *b)
{
    cr_assert_geq(b->cap - b->len, PX__REC_HDR + 8);
    return (struct px__put){b->p + b->len + PX__REC_HDR, 0,
                            (b->cap - b->len - PX__REC_HDR) & ~(size_t)7, false};
}

static size_t seg_seal(struct seg *b, struct px__put *w, uint16_t type, uint64_t lsn)
{
    cr_assert(!w->overflow, "body does not fit the test buffer");
    cr_assert_lt(b->n, MAXF);
    size_t off = b->len;
    size_t n = px__rec_seal(b->p + off, type, lsn, (uint32_t)w->len);
    cr_assert_eq(n, px__rec_size(w->len));
    cr_assert_eq(n % 8, 0);
    b->start[b->n] = off;
    b->end[b->n] = off + n;
    b->body_end[b->n] = off + PX__REC_HDR + w->len;
    b->lsn[b->n] = lsn;
    b->type[b->n] = type;
    b->n++;
    b->len += n;
    return off;
}

static struct px__rec_segment seg_params(uint64_t writer, uint32_t seq, uint64_t cut_prev)
{
    return (struct px__rec_segment){.writer = writer,
                                    .seq = seq,
                                    .pid = 4242,
                                    .cut_prev = cut_prev,
                                    .nonce = 0x1122334455667788ull,
                                    .capacity = 1024,
                                    .max_payload = 65536,
                                    .lanes = 8,
                                    .lane_depth = 256,
                                    .chunk_size = 1024,
                                    .nchunks = 4096,
                                    .reap_interval_ns = 100000000ull,
                                    .format = PX__LOG_FORMAT};
}

static size_t add_segment(struct seg *b, uint64_t lsn, uint64_t writer, uint32_t seq,
                          uint64_t cut_prev)
{
    struct px__put w = seg_body(b);
    struct px__rec_segment s = seg_params(writer, seq, cut_prev);
    px__rec_segment_put(&w, &s);
    return seg_seal(b, &w, PX__REC_SEGMENT, lsn);
}

static size_t add_submit(struct seg *b, uint64_t lsn, uint64_t id, uint32_t args_len)
{
    static uint8_t args[4096];
    cr_assert_leq(args_len, sizeof args);
    fill_pattern(args, args_len, (unsigned)lsn);
    struct px__rec_submit s = {.id = id, .flags = 3, .mode = 1, .args = args, .args_len = args_len};
    snprintf(s.name, sizeof s.name, "task-%llu", (unsigned long long)(id % 97));
    snprintf(s.queue, sizeof s.queue, "q%u", (unsigned)(id % 5));
    struct px__put w = seg_body(b);
    px__rec_submit_put(&w, &s);
    return seg_seal(b, &w, PX__REC_SUBMIT, lsn);
}

static size_t add_id(struct seg *b, uint16_t type, uint64_t lsn, uint64_t id, uint32_t attempts)
{
    struct px__put w = seg_body(b);
    px__rec_id_put(&w, id, attempts);
    return seg_seal(b, &w, type, lsn);
}

static size_t add_finish(struct seg *b, uint64_t lsn, uint64_t id, uint32_t out_len)
{
    static uint8_t out[4096];
    cr_assert_leq(out_len, sizeof out);
    fill_pattern(out, out_len, (unsigned)id);
    struct px__rec_finish f = {.id = id, .state = 6, .out = out, .out_len = out_len};
    struct px__put w = seg_body(b);
    px__rec_finish_put(&w, &f);
    return seg_seal(b, &w, PX__REC_FINISH, lsn);
}

static size_t add_ckpt(struct seg *b, uint64_t lsn, uint64_t begin, bool end)
{
    struct px__put w = seg_body(b);
    px__rec_ckpt_put(&w, begin, end);
    return seg_seal(b, &w, PX__REC_CHECKPOINT, lsn);
}

/* A random record of any kind but SEGMENT. */
static size_t add_random(struct seg *b, uint64_t lsn)
{
    uint64_t id = rnd();
    switch (rnd() % 5) {
    case 4:
        return add_ckpt(b, lsn, lsn - below(50), rnd() % 2);
    case 0:
        return add_submit(b, lsn, id, (uint32_t)below(301));
    case 1:
        return add_id(b, PX__REC_START, lsn, id, (uint32_t)rnd());
    case 2:
        return add_finish(b, lsn, id, (uint32_t)below(201));
    default:
        return add_id(b, PX__REC_FREE, lsn, id, 0);
    }
}

/* Reads frames from offset 0 of p[0, size) until one fails; checks each
 * against ref (if given) and returns how many were read. */
static size_t walk(const uint8_t *p, size_t size, const struct seg *ref)
{
    size_t off = 0, n = 0, k;
    struct px__rec r;
    while ((k = px__rec_read(p, size, off, &r)) > 0) {
        cr_assert_leq(off + k, size);
        cr_assert_eq(k, px__rec_size(r.len));
        cr_assert_eq(r.body, p + off + PX__REC_HDR);
        if (ref) {
            cr_assert_lt(n, ref->n, "read a frame past the last one written");
            cr_assert_eq(off, ref->start[n]);
            cr_assert_eq(r.lsn, ref->lsn[n]);
            cr_assert_eq(r.type, ref->type[n]);
        }
        off += k;
        n++;
    }
    return n;
}

/* Reads the frame at buf[off, size) that must be valid, and checks its header. */
static struct px__rec read_ok(const uint8_t *buf, size_t size, size_t off, uint16_t type,
                              uint64_t lsn, uint32_t len)
{
    struct px__rec r;
    memset(&r, 0x5a, sizeof r);
    size_t n = px__rec_read(buf, size, off, &r);
    cr_assert_eq(n, px__rec_size(len), "frame at %zu: read %zu, want %zu", off, n,
                 px__rec_size(len));
    cr_assert_eq(r.type, type);
    cr_assert_eq(r.len, len);
    cr_assert_eq(r.lsn, lsn);
    cr_assert_eq(r.body, buf + off + PX__REC_HDR);
    return r;
}

/* Whether the decoder for type accepts the body. */
static bool decode(uint16_t type, const uint8_t *body, uint32_t len)
{
    struct px__rec r = {.type = type, .len = len, .lsn = 1, .body = body};
    switch (type) {
    case PX__REC_SEGMENT: {
        struct px__rec_segment s;
        return px__rec_segment_get(&r, &s);
    }
    case PX__REC_SUBMIT: {
        struct px__rec_submit s;
        bool ok = px__rec_submit_get(&r, &s);
        if (ok) {
            cr_assert(s.args_len == 0 || (s.args >= body && s.args + s.args_len <= body + len));
            cr_assert_lt(strlen(s.name), sizeof s.name);
            cr_assert_lt(strlen(s.queue), sizeof s.queue);
        }
        return ok;
    }
    case PX__REC_SUBMIT_MANY: {
        struct px__rec_many m;
        struct px__rec_submit s;
        bool ok = px__rec_many_get(&r, &m);
        uint32_t at = m.first, n = 0;
        while (ok && px__rec_many_next(&r, &m, &at, &s)) {
            cr_assert(s.args_len == 0 || (s.args >= body && s.args + s.args_len <= body + len));
            n++;
        }
        cr_assert(!ok || (n == m.count && at == len));
        return ok;
    }
    case PX__REC_FINISH: {
        struct px__rec_finish f;
        bool ok = px__rec_finish_get(&r, &f);
        if (ok)
            cr_assert(f.out_len == 0 || (f.out >= body && f.out + f.out_len <= body + len));
        return ok;
    }
    case PX__REC_CHECKPOINT: {
        uint64_t begin;
        bool end;
        return px__rec_ckpt_get(&r, &begin, &end);
    }
    case PX__REC_RETRY: {
        struct px__rec_retry t;
        bool ok = px__rec_retry_get(&r, &t);
        if (ok)
            cr_assert(t.err_len == 0 || (t.err >= body && t.err + t.err_len <= body + len));
        return ok;
    }
    case PX__REC_SCHED: {
        struct px__rec_sched sc;
        bool ok = px__rec_sched_get(&r, &sc);
        if (ok) {
            cr_assert(sc.args_len == 0 || (sc.args >= body && sc.args + sc.args_len <= body + len));
            cr_assert_lt(strlen(sc.cron), sizeof sc.cron);
            cr_assert_lt(strlen(sc.tz), sizeof sc.tz);
        }
        return ok;
    }
    default: {
        cr_assert(type == PX__REC_START || type == PX__REC_FREE || type == PX__REC_CANCEL ||
                  type == PX__REC_SCHED_END);
        uint64_t id;
        uint32_t attempts;
        return px__rec_id_get(&r, &id, &attempts);
    }
    }
}

/* No decoder but that of its own type takes r. */
static void only_own_decoder(const struct px__rec *r)
{
    struct px__rec_segment seg;
    struct px__rec_submit sub;
    struct px__rec_finish fin;
    uint64_t id, begin;
    uint32_t att;
    bool end;
    if (r->type != PX__REC_SEGMENT)
        cr_assert(!px__rec_segment_get(r, &seg), "type %u taken as SEGMENT", r->type);
    if (r->type != PX__REC_SUBMIT)
        cr_assert(!px__rec_submit_get(r, &sub), "type %u taken as SUBMIT", r->type);
    if (r->type != PX__REC_FINISH)
        cr_assert(!px__rec_finish_get(r, &fin), "type %u taken as FINISH", r->type);
    struct px__rec_many many;
    if (r->type != PX__REC_SUBMIT_MANY)
        cr_assert(!px__rec_many_get(r, &many), "type %u taken as SUBMIT_MANY", r->type);
    if (r->type != PX__REC_START && r->type != PX__REC_FREE && r->type != PX__REC_CANCEL &&
        r->type != PX__REC_SCHED_END)
        cr_assert(!px__rec_id_get(r, &id, &att), "type %u taken as START/FREE", r->type);
    struct px__rec_sched sc;
    if (r->type != PX__REC_SCHED)
        cr_assert(!px__rec_sched_get(r, &sc), "type %u taken as SCHED", r->type);
    if (r->type != PX__REC_CHECKPOINT)
        cr_assert(!px__rec_ckpt_get(r, &begin, &end), "type %u taken as CHECKPOINT", r->type);
    struct px__rec_retry rt;
    if (r->type != PX__REC_RETRY)
        cr_assert(!px__rec_retry_get(r, &rt), "type %u taken as RETRY", r->type);
}

/* ---- Round trips -------------------------------------------------------- */

Test(record, segment_round_trip)
{
    const int32_t pids[] = {1, -42, INT32_MIN, INT32_MAX};
    for (size_t i = 0; i < sizeof pids / sizeof pids[0]; i++) {
        struct px__rec_segment s = {.writer = 0x0123456789abcdefull + i,
                                    .seq = 0xfffffff0u + (uint32_t)i,
                                    .pid = pids[i],
                                    .cut_prev = i ? 4096 * i : UINT64_MAX,
                                    .nonce = 0xfedcba9876543210ull ^ i,
                                    .capacity = 1u << 20,
                                    .max_payload = 65536 + (uint32_t)i,
                                    .lanes = 16,
                                    .lane_depth = 1024,
                                    .chunk_size = 4096,
                                    .nchunks = 0xffffffffu,
                                    .reap_interval_ns = 250000000ull + i,
                                    .format = PX__LOG_FORMAT + (uint32_t)i};
        uint8_t buf[256];
        memset(buf, 0xaa, sizeof buf);
        struct px__put w = {buf + PX__REC_HDR, 0, sizeof buf - PX__REC_HDR, false};
        px__rec_segment_put(&w, &s);
        cr_assert(!w.overflow);
        cr_assert_eq(w.len, 68);
        uint64_t lsn = UINT64_MAX - i;
        size_t n = px__rec_seal(buf, PX__REC_SEGMENT, lsn, (uint32_t)w.len);
        cr_assert_eq(n, px__rec_size(68));
        struct px__rec r = read_ok(buf, n, 0, PX__REC_SEGMENT, lsn, 68);
        struct px__rec_segment o;
        memset(&o, 0x55, sizeof o);
        cr_assert(px__rec_segment_get(&r, &o));
        cr_assert_eq(o.writer, s.writer);
        cr_assert_eq(o.seq, s.seq);
        cr_assert_eq(o.pid, s.pid);
        cr_assert_eq(o.cut_prev, s.cut_prev);
        cr_assert_eq(o.nonce, s.nonce);
        cr_assert_eq(o.capacity, s.capacity);
        cr_assert_eq(o.max_payload, s.max_payload);
        cr_assert_eq(o.lanes, s.lanes);
        cr_assert_eq(o.lane_depth, s.lane_depth);
        cr_assert_eq(o.chunk_size, s.chunk_size);
        cr_assert_eq(o.nchunks, s.nchunks);
        cr_assert_eq(o.reap_interval_ns, s.reap_interval_ns);
        cr_assert_eq(o.format, s.format);
        only_own_decoder(&r);
    }
}

Test(record, submit_round_trip)
{
    const uint32_t sizes[] = {0, 1, 64, 70000};
    size_t cap = PX__REC_HDR + 70000 + 256;
    uint8_t *buf = malloc(cap), *args = malloc(70000);
    cr_assert(buf && args);
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        fill_pattern(args, sizes[i], (unsigned)i);
        struct px__rec_submit s = {.id = UINT64_MAX - i,
                                   .flags = 0xdeadbeefu,
                                   .mode = (uint8_t)(200 + i),
                                   .args = args,
                                   .args_len = sizes[i]};
        if (i % 2) {
            memset(s.name, 'n', 63); /* the longest name there is */
            s.name[63] = '\0';
            s.queue[0] = '\0';
        } else {
            snprintf(s.name, sizeof s.name, "pkg.module:function_%zu", i);
            snprintf(s.queue, sizeof s.queue, "queue-%zu", i);
        }
        memset(buf, 0xcc, cap);
        struct px__put w = {buf + PX__REC_HDR, 0, cap - PX__REC_HDR, false};
        px__rec_submit_put(&w, &s);
        cr_assert(!w.overflow);
        cr_assert_eq(w.len, 8 + 4 + 1 + 1 + strlen(s.name) + 1 + strlen(s.queue) + 4 + sizes[i]);
        size_t n = px__rec_seal(buf, PX__REC_SUBMIT, 7 + i, (uint32_t)w.len);
        for (size_t p = PX__REC_HDR + w.len; p < n; p++)
            cr_assert_eq(buf[p], 0, "padding byte %zu not zeroed", p);
        /* The frame reads back in exactly its own bytes, and not in fewer. */
        struct px__rec r = read_ok(buf, n, 0, PX__REC_SUBMIT, 7 + i, (uint32_t)w.len);
        cr_assert_eq(px__rec_read(buf, n - 1, 0, &r), 0);
        r = read_ok(buf, n, 0, PX__REC_SUBMIT, 7 + i, (uint32_t)w.len);
        struct px__rec_submit o;
        memset(&o, 0x55, sizeof o);
        cr_assert(px__rec_submit_get(&r, &o));
        cr_assert_eq(o.id, s.id);
        cr_assert_eq(o.flags, s.flags);
        cr_assert_eq(o.mode, s.mode);
        cr_assert_str_eq(o.name, s.name);
        cr_assert_str_eq(o.queue, s.queue);
        cr_assert_eq(o.args_len, sizes[i]);
        if (sizes[i]) {
            cr_assert_eq(memcmp(o.args, args, sizes[i]), 0);
            cr_assert_eq(o.args + o.args_len, r.body + r.len);
        }
        only_own_decoder(&r);
    }
    free(buf);
    free(args);
}

/* Names taken from shared memory that lost their NUL are cut at their
 * bound, never read past it, and the record still reads back. */
/* Every task of a SUBMIT_MANY comes back with the fields it shares and its
 * own id and args, by walking the record and by its offset alone. */
Test(record, submit_many_round_trip)
{
    enum { N = 40 };
    static uint8_t buf[16384];
    uint8_t args[N + 301];
    fill_pattern(args, sizeof args, 3);
    struct px__rec_submit head = {
        .flags = 0x15, .mode = 2, .due_ns = 1764000000123456789ull, .prio = 1};
    struct px__put w = {buf + PX__REC_HDR, 0, sizeof buf - PX__REC_HDR, false};
    px__rec_many_put(&w, &head, "a_task", 63, "a_queue", 31);
    for (uint32_t k = 0; k < N; k++)
        px__rec_many_task_put(&w, (((uint64_t)(k + 1) << 32) | (1000 + k)), args + k, k * 7 % 301);
    cr_assert(!w.overflow);
    px__rec_many_set_count(buf + PX__REC_HDR, N);
    size_t size = px__rec_seal(buf, PX__REC_SUBMIT_MANY, 77, (uint32_t)w.len);
    struct px__rec r = read_ok(buf, size, 0, PX__REC_SUBMIT_MANY, 77, (uint32_t)w.len);
    only_own_decoder(&r);
    struct px__rec_many m;
    cr_assert(px__rec_many_get(&r, &m));
    cr_assert_eq(m.count, N);
    uint32_t at = m.first, k = 0, this = at;
    struct px__rec_submit s, again;
    while (px__rec_many_next(&r, &m, &at, &s)) {
        cr_assert_lt(k, N);
        cr_assert_eq(s.id, (((uint64_t)(k + 1) << 32) | (1000 + k)));
        cr_assert_eq(s.args_len, k * 7 % 301);
        cr_assert(s.args_len == 0 || memcmp(s.args, args + k, s.args_len) == 0);
        cr_assert_str_eq(s.name, "a_task");
        cr_assert_str_eq(s.queue, "a_queue");
        cr_assert_eq(s.flags, 0x15);
        cr_assert_eq(s.mode, 2);
        cr_assert_eq(s.due_ns, head.due_ns);
        cr_assert_eq(s.prio, 1);
        cr_assert_eq(s.key | s.sched | s.run, 0);
        cr_assert(px__rec_submit_at(&r, this, &again));
        cr_assert_eq(again.id, s.id);
        cr_assert_eq(again.args, s.args);
        cr_assert_eq(again.args_len, s.args_len);
        this = at;
        k++;
    }
    cr_assert_eq(k, N);
    cr_assert_eq(at, r.len);
}

Test(record, submit_names_without_a_nul_are_cut_at_their_bound)
{
    char name[80], queue[80];
    memset(name, 'n', sizeof name);
    memset(queue, 'q', sizeof queue);
    uint8_t buf[512];
    struct px__rec_submit s = {.id = 42, .flags = 1, .mode = 1};
    struct px__put w = {buf + PX__REC_HDR, 0, sizeof buf - PX__REC_HDR, false};
    px__rec_submit_put_names(&w, &s, name, 63, queue, 31);
    cr_assert(!w.overflow);
    cr_assert_eq(w.len, 8 + 4 + 1 + 1 + 63 + 1 + 31 + 4);
    size_t n = px__rec_seal(buf, PX__REC_SUBMIT, 9, (uint32_t)w.len);
    struct px__rec r = read_ok(buf, n, 0, PX__REC_SUBMIT, 9, (uint32_t)w.len);
    struct px__rec_submit o;
    cr_assert(px__rec_submit_get(&r, &o));
    cr_assert_eq(strlen(o.name), 63);
    cr_assert_eq(strlen(o.queue), 31);
    cr_assert_eq(strspn(o.name, "n"), 63);
    cr_assert_eq(strspn(o.queue, "q"), 31);
    /* A bound past what a reader takes is held to it. */
    w = (struct px__put){buf + PX__REC_HDR, 0, sizeof buf - PX__REC_HDR, false};
    px__rec_submit_put_names(&w, &s, name, sizeof name, "", 0);
    cr_assert_eq(w.len, 8 + 4 + 1 + 1 + 63 + 1 + 4);
}

Test(record, start_free_round_trip)
{
    const uint64_t ids[] = {0, 1, 0x8000000000000001ull, UINT64_MAX};
    const uint32_t attempts[] = {0, 1, 77, UINT32_MAX};
    for (size_t i = 0; i < 4; i++) {
        for (uint16_t type = PX__REC_START; type <= PX__REC_FREE; type += 2) {
            uint32_t a = type == PX__REC_FREE ? 0 : attempts[i];
            uint8_t buf[64];
            memset(buf, 0xee, sizeof buf);
            struct px__put w = {buf + PX__REC_HDR, 0, sizeof buf - PX__REC_HDR, false};
            px__rec_id_put(&w, ids[i], a);
            cr_assert(!w.overflow);
            cr_assert_eq(w.len, 12);
            size_t n = px__rec_seal(buf, type, 1000 + i, 12);
            cr_assert_eq(n, 40);
            struct px__rec r = read_ok(buf, sizeof buf, 0, type, 1000 + i, 12);
            uint64_t id = 12345;
            uint32_t got = 12345;
            cr_assert(px__rec_id_get(&r, &id, &got));
            cr_assert_eq(id, ids[i]);
            cr_assert_eq(got, a);
            only_own_decoder(&r);
        }
    }
}

Test(record, finish_round_trip)
{
    const uint32_t sizes[] = {0, 1, 3, 300, 70000};
    uint8_t *out = malloc(70000), *buf = malloc(70000 + 128);
    cr_assert(out && buf);
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        fill_pattern(out, sizes[i], 99);
        struct px__rec_finish f = {.id = 0xabcdef0123456789ull + i,
                                   .state = i % 2 ? 6 : 7,
                                   .out = out,
                                   .out_len = sizes[i]};
        memset(buf, 0x77, 70000 + 128);
        struct px__put w = {buf + PX__REC_HDR, 0, 70000 + 128 - PX__REC_HDR, false};
        px__rec_finish_put(&w, &f);
        cr_assert(!w.overflow);
        cr_assert_eq(w.len, 8 + 1 + 4 + sizes[i]);
        px__rec_seal(buf, PX__REC_FINISH, i, (uint32_t)w.len);
        struct px__rec r = read_ok(buf, 70000 + 128, 0, PX__REC_FINISH, i, (uint32_t)w.len);
        struct px__rec_finish o;
        memset(&o, 0x55, sizeof o);
        cr_assert(px__rec_finish_get(&r, &o));
        cr_assert_eq(o.id, f.id);
        cr_assert_eq(o.state, f.state);
        cr_assert_eq(o.out_len, sizes[i]);
        if (sizes[i])
            cr_assert_eq(memcmp(o.out, out, sizes[i]), 0);
        only_own_decoder(&r);
    }
    free(out);
    free(buf);
}

Test(record, checkpoint_round_trip)
{
    const uint64_t begins[] = {0, 1, 0x8000000000000000ull, UINT64_MAX};
    for (size_t i = 0; i < 4; i++)
        for (int e = 0; e < 2; e++) {
            uint8_t buf[64];
            memset(buf, 0x3c, sizeof buf);
            struct px__put w = {buf + PX__REC_HDR, 0, sizeof buf - PX__REC_HDR, false};
            px__rec_ckpt_put(&w, begins[i], e);
            cr_assert(!w.overflow);
            cr_assert_eq(w.len, 9);
            cr_assert_eq(px__rec_seal(buf, PX__REC_CHECKPOINT, 500 + i, 9), 40);
            struct px__rec r = read_ok(buf, sizeof buf, 0, PX__REC_CHECKPOINT, 500 + i, 9);
            uint64_t begin = 12345;
            bool end = !e;
            cr_assert(px__rec_ckpt_get(&r, &begin, &end));
            cr_assert_eq(begin, begins[i]);
            cr_assert_eq(end, (bool)e);
            only_own_decoder(&r);
        }
}

/* Frames are read at any offset, aligned or not, one after the other. */
Test(record, unaligned_and_consecutive)
{
    for (size_t base = 0; base < 8; base++) {
        uint8_t buf[512];
        memset(buf, 0, sizeof buf);
        struct seg *b = seg_new(400);
        add_segment(b, 1, 1, 1, UINT64_MAX);
        add_submit(b, 2, 10, 5);
        add_id(b, PX__REC_START, 3, 10, 1);
        add_finish(b, 4, 10, 9);
        add_id(b, PX__REC_FREE, 5, 10, 0);
        add_ckpt(b, 6, 2, true);
        memcpy(buf + base, b->p, b->len);
        for (size_t i = 0; i < b->n; i++)
            read_ok(buf, base + b->len, base + b->start[i], b->type[i], b->lsn[i],
                    (uint32_t)(b->body_end[i] - b->start[i] - PX__REC_HDR));
        /* Past the last frame: nothing, and an offset beyond the end is safe. */
        struct px__rec r;
        cr_assert_eq(px__rec_read(buf, base + b->len, base + b->len, &r), 0);
        cr_assert_eq(px__rec_read(buf, base + b->len, base + b->len + 1, &r), 0);
        cr_assert_eq(px__rec_read(buf, base + b->len, SIZE_MAX, &r), 0);
        seg_free(b);
    }
}

/* ---- Frames that must be rejected -------------------------------------- */

Test(record, zeroes_are_never_a_frame)
{
    size_t cap = 4096 + 64;
    uint8_t *z = calloc(1, cap);
    cr_assert_not_null(z);
    struct px__rec r;
    for (size_t size = 0; size <= cap; size += (size < 128 ? 1 : 61))
        for (size_t off = 0; off <= size; off += (off < 64 ? 1 : 40))
            cr_assert_eq(px__rec_read(z, size, off, &r), 0,
                         "zeroes read as a frame: size %zu off %zu", size, off);
    /* Not even with a sum that matches a zero body: the type is still 0. */
    reseal(z);
    cr_assert_eq(px__rec_read(z, cap, 0, &r), 0);
    free(z);
}

/* The control for the tests below: reseal() computes the same sum as the
 * library, so when a resealed frame is rejected the field is the reason. */
static size_t small_frame(uint8_t *buf, size_t cap, uint16_t type)
{
    memset(buf, 0, cap);
    uint8_t body[5] = {1, 2, 3, 4, 5};
    memcpy(buf + PX__REC_HDR, body, sizeof body);
    size_t n = px__rec_seal(buf, type, 77, sizeof body);
    cr_assert_eq(n, 32);
    reseal(buf);
    read_ok(buf, cap, 0, type, 77, 5);
    return n;
}

Test(record, reserved_field_nonzero)
{
    uint8_t buf[64];
    const uint16_t vals[] = {1, 2, 0x80, 0x100, 0x8000, 0xffff};
    struct px__rec r;
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        small_frame(buf, sizeof buf, PX__REC_START);
        set_u16(buf + 14, vals[i]);
        reseal(buf);
        cr_assert_eq(px__rec_read(buf, sizeof buf, 0, &r), 0, "reserved 0x%x accepted", vals[i]);
    }
}

Test(record, unknown_types)
{
    uint8_t buf[64];
    struct px__rec r;
    const uint16_t bad[] = {0, LAST_TYPE + 1, LAST_TYPE + 2, 0x100, 0x101, 0x7fff, 0x8001, 0xffff};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        small_frame(buf, sizeof buf, PX__REC_START);
        set_u16(buf + 12, bad[i]);
        reseal(buf);
        cr_assert_eq(px__rec_read(buf, sizeof buf, 0, &r), 0, "type %u accepted", bad[i]);
    }
    /* Every known type is a frame, whatever its body. */
    for (uint16_t t = PX__REC_SEGMENT; t <= LAST_TYPE; t++)
        small_frame(buf, sizeof buf, t);
}

Test(record, length_limits)
{
    size_t cap = px__rec_size(PX__REC_MAX_BODY + 64) + 64;
    uint8_t *big = calloc(1, cap);
    cr_assert_not_null(big);
    struct px__rec r;
    /* The largest body allowed is a frame. */
    fill_pattern(big + PX__REC_HDR, PX__REC_MAX_BODY, 3);
    size_t n = px__rec_seal(big, PX__REC_FINISH, 5, PX__REC_MAX_BODY);
    cr_assert_eq(n, px__rec_size(PX__REC_MAX_BODY));
    read_ok(big, cap, 0, PX__REC_FINISH, 5, PX__REC_MAX_BODY);
    cr_assert_eq(px__rec_read(big, n - 1, 0, &r), 0);
    /* One byte more is not, even with a sum that matches and room for it. */
    const uint32_t over[] = {PX__REC_MAX_BODY + 1, PX__REC_MAX_BODY + 8, PX__REC_MAX_BODY + 9};
    for (size_t i = 0; i < 3; i++) {
        memset(big + PX__REC_HDR + PX__REC_MAX_BODY, 0, cap - PX__REC_HDR - PX__REC_MAX_BODY);
        set_u32(big + 8, over[i]);
        reseal(big);
        cr_assert_eq(px__rec_read(big, cap, 0, &r), 0, "len %u accepted", over[i]);
    }
    free(big);
    /* Lengths far past the buffer are rejected without reading there. */
    const uint32_t lens[] = {
        9, 16, 1000, PX__REC_MAX_BODY, PX__REC_MAX_BODY + 1, UINT32_MAX - 7, UINT32_MAX};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        uint8_t *small = malloc(40);
        cr_assert_not_null(small);
        small_frame(small, 40, PX__REC_SUBMIT);
        set_u32(small + 8, lens[i]);
        cr_assert_eq(px__rec_read(small, 40, 0, &r), 0, "len %u accepted", lens[i]);
        cr_assert_eq(px__rec_read(small, 40, 8, &r), 0);
        free(small);
    }
}

Test(record, padding_nonzero)
{
    uint8_t buf[32];
    struct px__rec r;
    for (size_t at = PX__REC_HDR + 5; at < 32; at++)
        for (int bit = 0; bit < 8; bit++) {
            small_frame(buf, sizeof buf, PX__REC_FINISH);
            buf[at] = (uint8_t)(1u << bit);
            cr_assert_eq(px__rec_read(buf, sizeof buf, 0, &r), 0, "padding byte %zu accepted", at);
            buf[at] = 0;
            read_ok(buf, sizeof buf, 0, PX__REC_FINISH, 77, 5);
        }
}

/* Every single flipped bit of a frame, header, body or padding, is caught. */
Test(record, every_bit_flip)
{
    struct seg *b = seg_new(1024);
    add_id(b, PX__REC_START, 3, 0x55aa55aa55aa55aaull, 2); /* 12 bytes + 4 padding */
    add_finish(b, 4, 9, 3);                                /* 16 bytes, no padding */
    add_submit(b, 5, 10, 7);
    add_segment(b, 6, 6, 1, UINT64_MAX);
    add_id(b, PX__REC_FREE, 7, 0, 0);
    add_ckpt(b, 8, 1, false); /* 9 bytes + 7 padding */
    for (size_t i = 0; i < b->n; i++) {
        size_t fsize = b->end[i] - b->start[i];
        /* The frame alone, and the frame followed by zeroes (room to grow). */
        uint8_t *buf = calloc(1, fsize + 128);
        cr_assert_not_null(buf);
        memcpy(buf, b->p + b->start[i], fsize);
        uint32_t len = (uint32_t)(b->body_end[i] - b->start[i] - PX__REC_HDR);
        read_ok(buf, fsize, 0, b->type[i], b->lsn[i], len);
        struct px__rec r;
        for (size_t bit = 0; bit < fsize * 8; bit++) {
            buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
            cr_assert_eq(px__rec_read(buf, fsize, 0, &r), 0, "frame %zu: flip of bit %zu accepted",
                         i, bit);
            cr_assert_eq(px__rec_read(buf, fsize + 128, 0, &r), 0,
                         "frame %zu: flip of bit %zu accepted", i, bit);
            buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        }
        read_ok(buf, fsize + 128, 0, b->type[i], b->lsn[i], len);
        free(buf);
    }
    seg_free(b);
}

/* ---- Bodies ------------------------------------------------------------- */

/* Checks that the decoder of type takes body exactly: not any prefix of it,
 * not it with trailing bytes. Each try gets a heap copy of just its bytes, so
 * that ASan sees any read past them. */
static void exact_body(uint16_t type, const uint8_t *body, uint32_t len)
{
    uint8_t *copy = malloc(len ? len : 1);
    cr_assert_not_null(copy);
    memcpy(copy, body, len);
    cr_assert(decode(type, copy, len), "type %u body of %u bytes rejected", type, len);
    free(copy);
    /* A SUBMIT's optional fields (9 bytes each) may end it early: without
     * them, or with only the first few; a SEGMENT may end before its
     * format. */
    struct px__rec_submit s;
    struct px__rec whole = {.type = type, .len = len, .lsn = 1, .body = body};
    uint32_t nopt =
        type == PX__REC_SUBMIT && px__rec_submit_get(&whole, &s)
            ? (s.due_ns != 0) + (s.key != 0) + (s.prio != 0) + (s.sched != 0) + (s.run != 0)
            : 0;
    for (uint32_t l = 0; l < len; l++) {
        copy = malloc(l ? l : 1);
        cr_assert_not_null(copy);
        memcpy(copy, body, l);
        bool ok = nopt && l >= len - 9 * nopt && (len - l) % 9 == 0;
        /* A SEGMENT's format is optional too (heads from before it). */
        ok = ok || (type == PX__REC_SEGMENT && l == len - 4);
        cr_assert_eq(decode(type, copy, l), ok, "type %u: %u of %u bytes %s", type, l, len,
                     ok ? "rejected" : "accepted");
        free(copy);
    }
    for (uint32_t extra = 1; extra <= 9; extra++) {
        copy = malloc(len + extra);
        cr_assert_not_null(copy);
        memcpy(copy, body, len);
        memset(copy + len, extra == 1 ? 0 : 0xff, extra);
        /* Zero or 0xff bytes are no valid tag of an optional field; a
         * START may end with the non-zero id of a task freed before it. */
        bool freed = type == PX__REC_START && len == 12 && extra == 8 && copy[len] != 0;
        cr_assert_eq(decode(type, copy, len + extra), freed, "type %u: %u trailing bytes %s", type,
                     extra, freed ? "rejected" : "accepted");
        free(copy);
    }
}

static void rejects(uint16_t type, const uint8_t *body, uint32_t len);
static const uint32_t olens_retry[] = {0, 1, 100};

Test(record, bodies_truncated_or_trailing)
{
    uint8_t body[512], args[100];
    fill_pattern(args, sizeof args, 1);
    struct px__put w;

    struct px__rec_segment seg = seg_params(1, 1, UINT64_MAX);
    w = (struct px__put){body, 0, sizeof body, false};
    px__rec_segment_put(&w, &seg);
    exact_body(PX__REC_SEGMENT, body, (uint32_t)w.len);

    const uint32_t alens[] = {0, 1, 100};
    for (size_t i = 0; i < 3; i++) {
        struct px__rec_submit s = {
            .id = 1, .flags = 2, .mode = 3, .args = args, .args_len = alens[i]};
        snprintf(s.name, sizeof s.name, i == 1 ? "" : "name");
        snprintf(s.queue, sizeof s.queue, i == 2 ? "" : "queue");
        w = (struct px__put){body, 0, sizeof body, false};
        px__rec_submit_put(&w, &s);
        exact_body(PX__REC_SUBMIT, body, (uint32_t)w.len);
        /* With a due time, which must not be zero. */
        s.due_ns = 1764000000000000000ull + i;
        w = (struct px__put){body, 0, sizeof body, false};
        px__rec_submit_put(&w, &s);
        exact_body(PX__REC_SUBMIT, body, (uint32_t)w.len);
        memset(body + w.len - 8, 0, 8);
        rejects(PX__REC_SUBMIT, body, (uint32_t)w.len);
        /* With a key, then with both; fields out of order or repeated are
         * damage. */
        s.due_ns = 0;
        s.key = 0x1234567890abcdefull + i;
        w = (struct px__put){body, 0, sizeof body, false};
        px__rec_submit_put(&w, &s);
        exact_body(PX__REC_SUBMIT, body, (uint32_t)w.len);
        s.due_ns = 99;
        w = (struct px__put){body, 0, sizeof body, false};
        px__rec_submit_put(&w, &s);
        exact_body(PX__REC_SUBMIT, body, (uint32_t)w.len);
        struct px__rec_submit back;
        struct px__rec rr = {.type = PX__REC_SUBMIT, .len = (uint32_t)w.len, .body = body};
        cr_assert(px__rec_submit_get(&rr, &back));
        cr_assert_eq(back.due_ns, 99);
        cr_assert_eq(back.key, s.key);
        body[w.len - 18] = 2; /* the due time's tag becomes a second key */
        rejects(PX__REC_SUBMIT, body, (uint32_t)w.len);
        body[w.len - 18] = 3;
        rejects(PX__REC_SUBMIT, body, (uint32_t)w.len);
        s.key = 0;
    }

    /* A schedule's run: priority, schedule and run number, in tag order. */
    struct px__rec_submit run = {.id = 5,
                                 .mode = 1,
                                 .args = args,
                                 .args_len = 3,
                                 .due_ns = 7,
                                 .prio = 5,
                                 .sched = 0x80000001ull | (9ull << 32),
                                 .run = 12};
    snprintf(run.name, sizeof run.name, "n");
    snprintf(run.queue, sizeof run.queue, "q");
    w = (struct px__put){body, 0, sizeof body, false};
    px__rec_submit_put(&w, &run);
    exact_body(PX__REC_SUBMIT, body, (uint32_t)w.len);
    struct px__rec_submit back;
    struct px__rec rr = {.type = PX__REC_SUBMIT, .len = (uint32_t)w.len, .body = body};
    cr_assert(px__rec_submit_get(&rr, &back));
    cr_assert_eq(back.prio, 5);
    cr_assert_eq(back.sched, run.sched);
    cr_assert_eq(back.run, 12);
    body[w.len - 9] = 6; /* no such tag */
    rejects(PX__REC_SUBMIT, body, (uint32_t)w.len);
    run.sched = run.run = 0;
    run.prio = 6; /* no such priority */
    w = (struct px__put){body, 0, sizeof body, false};
    px__rec_submit_put(&w, &run);
    rejects(PX__REC_SUBMIT, body, (uint32_t)w.len);

    /* SUBMIT_MANY: one task or three, bare or with a due time and a
     * priority; a count that says more or fewer tasks than follow, none, or
     * a priority there is not is damage. */
    for (size_t i = 0; i < 4; i++) {
        uint32_t n = i % 2 ? 3 : 1;
        struct px__rec_submit head = {.flags = 4, .mode = 1};
        if (i >= 2) {
            head.due_ns = 1764000000000000000ull;
            head.prio = 5;
        }
        w = (struct px__put){body, 0, sizeof body, false};
        px__rec_many_put(&w, &head, "name", 63, i == 1 ? "" : "queue", 31);
        for (uint32_t k = 0; k < n; k++)
            px__rec_many_task_put(&w, 1 + k, args, alens[k]);
        cr_assert(!w.overflow);
        px__rec_many_set_count(body, n);
        exact_body(PX__REC_SUBMIT_MANY, body, (uint32_t)w.len);
        px__rec_many_set_count(body, n + 1);
        rejects(PX__REC_SUBMIT_MANY, body, (uint32_t)w.len);
        px__rec_many_set_count(body, n - 1);
        rejects(PX__REC_SUBMIT_MANY, body, (uint32_t)w.len);
        px__rec_many_set_count(body, n);
    }
    w = (struct px__put){body, 0, sizeof body, false};
    struct px__rec_submit bad = {.mode = 1, .prio = 6};
    px__rec_many_put(&w, &bad, "n", 63, "q", 31);
    px__rec_many_task_put(&w, 1, args, 3);
    px__rec_many_set_count(body, 1);
    rejects(PX__REC_SUBMIT_MANY, body, (uint32_t)w.len);

    for (size_t i = 0; i < 3; i++) {
        struct px__rec_sched sc = {.id = 0x80000003ull | (4ull << 32),
                                   .mode = 2,
                                   .level = 4,
                                   .flags = 3,
                                   .times = 9,
                                   .made = 4,
                                   .every_ns = i ? 0 : 1000,
                                   .until_ns = 5,
                                   .next_ns = 6,
                                   .args = args,
                                   .args_len = alens[i]};
        snprintf(sc.name, sizeof sc.name, "task");
        snprintf(sc.queue, sizeof sc.queue, "q");
        snprintf(sc.cron, sizeof sc.cron, i ? "*/5 * * * *" : "");
        snprintf(sc.tz, sizeof sc.tz, i == 2 ? "Europe/Paris" : "");
        w = (struct px__put){body, 0, sizeof body, false};
        px__rec_sched_put(&w, &sc);
        exact_body(PX__REC_SCHED, body, (uint32_t)w.len);
        struct px__rec_sched sb;
        struct px__rec sr = {.type = PX__REC_SCHED, .len = (uint32_t)w.len, .body = body};
        cr_assert(px__rec_sched_get(&sr, &sb));
        cr_assert_eq(sb.id, sc.id);
        cr_assert_eq(sb.made, 4);
        cr_assert_eq(sb.times, 9);
        cr_assert_eq(sb.next_ns, 6);
        cr_assert_str_eq(sb.cron, sc.cron);
        cr_assert_str_eq(sb.tz, sc.tz);
        cr_assert_eq(sb.args_len, alens[i]);
    }
    w = (struct px__put){body, 0, sizeof body, false};
    px__rec_id_put(&w, 0x80000003ull, 3);
    exact_body(PX__REC_SCHED_END, body, (uint32_t)w.len);

    for (size_t i = 0; i < 3; i++) {
        struct px__rec_retry t = {
            .id = 1, .attempts = 2, .due_ns = i, .err = args, .err_len = olens_retry[i]};
        w = (struct px__put){body, 0, sizeof body, false};
        px__rec_retry_put(&w, &t);
        exact_body(PX__REC_RETRY, body, (uint32_t)w.len);
    }

    const uint32_t olens[] = {0, 1, 100};
    for (size_t i = 0; i < 3; i++) {
        struct px__rec_finish f = {.id = 1, .state = 6, .out = args, .out_len = olens[i]};
        w = (struct px__put){body, 0, sizeof body, false};
        px__rec_finish_put(&w, &f);
        exact_body(PX__REC_FINISH, body, (uint32_t)w.len);
    }

    w = (struct px__put){body, 0, sizeof body, false};
    px__rec_id_put(&w, 42, 3);
    exact_body(PX__REC_START, body, (uint32_t)w.len);
    exact_body(PX__REC_FREE, body, (uint32_t)w.len);

    for (int e = 0; e < 2; e++) {
        w = (struct px__put){body, 0, sizeof body, false};
        px__rec_ckpt_put(&w, 77, e);
        exact_body(PX__REC_CHECKPOINT, body, (uint32_t)w.len);
    }
}

/* Checks that the decoder of type rejects body, reading only its bytes. */
static void rejects(uint16_t type, const uint8_t *body, uint32_t len)
{
    uint8_t *copy = malloc(len ? len : 1);
    cr_assert_not_null(copy);
    memcpy(copy, body, len);
    cr_assert(!decode(type, copy, len), "type %u: malformed body of %u bytes accepted", type, len);
    free(copy);
}

/* A SUBMIT body by hand: id, flags, mode, name, queue, args. */
static uint32_t raw_submit(uint8_t *body, size_t cap, const char *name, uint8_t nlen,
                           const char *queue, uint8_t qlen, uint32_t args_len_field,
                           uint32_t args_have)
{
    struct px__put w = {body, 0, cap, false};
    px__put_u64(&w, 9);
    px__put_u32(&w, 1);
    px__put_u8(&w, 0);
    px__put_u8(&w, nlen);
    for (uint8_t i = 0; i < nlen; i++)
        px__put_u8(&w, (uint8_t)name[i]);
    px__put_u8(&w, qlen);
    for (uint8_t i = 0; i < qlen; i++)
        px__put_u8(&w, (uint8_t)queue[i]);
    px__put_u32(&w, args_len_field);
    for (uint32_t i = 0; i < args_have; i++)
        px__put_u8(&w, (uint8_t)i);
    cr_assert(!w.overflow);
    return (uint32_t)w.len;
}

Test(record, bodies_malformed_names_and_lengths)
{
    uint8_t body[1024];
    char name[300];
    memset(name, 'a', sizeof name);
    uint32_t n;

    /* Control. */
    n = raw_submit(body, sizeof body, "abcde", 5, "q", 1, 3, 3);
    exact_body(PX__REC_SUBMIT, body, n);

    /* A NUL inside the name or the queue, at any place, is damage. */
    const char *nul[] = {"\0bcde", "ab\0de", "abcd\0", "\0\0\0\0\0"};
    for (size_t i = 0; i < 4; i++) {
        n = raw_submit(body, sizeof body, nul[i], 5, "q", 1, 0, 0);
        rejects(PX__REC_SUBMIT, body, n);
        n = raw_submit(body, sizeof body, "name", 4, nul[i], 5, 0, 0);
        rejects(PX__REC_SUBMIT, body, n);
    }

    /* The longest name that fits name[64], and the ones that do not. */
    n = raw_submit(body, sizeof body, name, 63, name, 63, 0, 0);
    exact_body(PX__REC_SUBMIT, body, n);
    const uint8_t long_lens[] = {64, 65, 200, 255};
    for (size_t i = 0; i < 4; i++) {
        n = raw_submit(body, sizeof body, name, long_lens[i], "q", 1, 0, 0);
        rejects(PX__REC_SUBMIT, body, n);
        n = raw_submit(body, sizeof body, "q", 1, name, long_lens[i], 0, 0);
        rejects(PX__REC_SUBMIT, body, n);
    }

    /* Args lengths that promise more (or fewer) bytes than there are. */
    const uint32_t promised[] = {4, 5, 100, 0x7fffffffu, 0xfffffff0u, UINT32_MAX};
    for (size_t i = 0; i < sizeof promised / sizeof promised[0]; i++) {
        n = raw_submit(body, sizeof body, "n", 1, "q", 1, promised[i], 3);
        rejects(PX__REC_SUBMIT, body, n);
    }
    n = raw_submit(body, sizeof body, "n", 1, "q", 1, 2, 3); /* one byte left over */
    rejects(PX__REC_SUBMIT, body, n);

    /* A checkpoint's end flag is 0 or 1, nothing else. */
    for (unsigned e = 2; e < 256; e++) {
        struct px__put w = {body, 0, sizeof body, false};
        px__put_u64(&w, 77);
        px__put_u8(&w, (uint8_t)e);
        rejects(PX__REC_CHECKPOINT, body, (uint32_t)w.len);
    }

    /* FINISH with an output length beyond the body. */
    for (size_t i = 0; i < sizeof promised / sizeof promised[0]; i++) {
        struct px__put w = {body, 0, sizeof body, false};
        px__put_u64(&w, 1);
        px__put_u8(&w, 6);
        px__put_u32(&w, promised[i]);
        px__put_u8(&w, 1);
        px__put_u8(&w, 2);
        px__put_u8(&w, 3);
        rejects(PX__REC_FINISH, body, (uint32_t)w.len);
    }
}

/* ---- Writing bodies ----------------------------------------------------- */

#define GUARD 64

/* Runs put_fn into a buffer of every capacity below the body's size: it must
 * flag overflow, write only a prefix of the body and nothing past cap. */
static void overflow_all_caps(void (*put_fn)(struct px__put *, const void *), const void *arg)
{
    uint8_t ref[1024];
    struct px__put w = {ref, 0, sizeof ref, false};
    put_fn(&w, arg);
    cr_assert(!w.overflow);
    size_t full = w.len;
    for (size_t cap = 0; cap <= full + 1; cap++) {
        uint8_t *buf = malloc(cap + GUARD);
        cr_assert_not_null(buf);
        memset(buf, 0xa5, cap + GUARD);
        w = (struct px__put){buf, 0, cap, false};
        put_fn(&w, arg);
        cr_assert_eq(w.overflow, cap < full, "cap %zu of %zu", cap, full);
        cr_assert_leq(w.len, cap);
        cr_assert_eq(memcmp(buf, ref, w.len), 0);
        for (size_t i = w.len; i < cap + GUARD; i++)
            cr_assert_eq(buf[i], 0xa5, "cap %zu: byte %zu written (len %zu)", cap, i, w.len);
        free(buf);
    }
}

static void put_submit(struct px__put *w, const void *a)
{
    px__rec_submit_put(w, a);
}

static void put_finish(struct px__put *w, const void *a)
{
    px__rec_finish_put(w, a);
}

static void put_segment(struct px__put *w, const void *a)
{
    px__rec_segment_put(w, a);
}

static void put_id(struct px__put *w, const void *a)
{
    (void)a;
    px__rec_id_put(w, 0x0102030405060708ull, 0x0a0b0c0d);
}

static void put_ckpt(struct px__put *w, const void *a)
{
    (void)a;
    px__rec_ckpt_put(w, 0x0102030405060708ull, true);
}

Test(record, put_overflow_never_writes_past_cap)
{
    uint8_t args[200];
    fill_pattern(args, sizeof args, 5);
    struct px__rec_submit s = {.id = 1, .flags = 2, .mode = 3, .args = args, .args_len = 200};
    strcpy(s.name, "some.task");
    strcpy(s.queue, "default");
    overflow_all_caps(put_submit, &s);
    struct px__rec_finish f = {.id = 1, .state = 7, .out = args, .out_len = 150};
    overflow_all_caps(put_finish, &f);
    struct px__rec_segment seg = seg_params(3, 4, 5);
    overflow_all_caps(put_segment, &seg);
    overflow_all_caps(put_id, NULL);
    overflow_all_caps(put_ckpt, NULL);

    /* Overflow sticks: once a field did not fit, a smaller one that would
     * fit is not written either, or the body would have a hole. */
    uint8_t buf[10 + GUARD];
    memset(buf, 0xa5, sizeof buf);
    struct px__put w = {buf, 0, 10, false};
    px__put_u64(&w, 1);
    cr_assert(!w.overflow);
    px__put_u32(&w, 2);
    cr_assert(w.overflow);
    px__put_u8(&w, 3);
    px__put_bytes(&w, "x", 0);
    px__put_str(&w, "");
    cr_assert(w.overflow);
    cr_assert_eq(w.len, 8);
    for (size_t i = 8; i < sizeof buf; i++)
        cr_assert_eq(buf[i], 0xa5);

    /* A string over 255 bytes does not fit its u8 length, whatever the room;
     * 255 does. */
    static char longs[300];
    static uint8_t big[400];
    memset(longs, 'x', 256);
    longs[256] = '\0';
    memset(big, 0xa5, sizeof big);
    w = (struct px__put){big, 0, 300, false};
    px__put_str(&w, longs);
    cr_assert(w.overflow);
    cr_assert_eq(w.len, 0);
    cr_assert_eq(big[0], 0xa5);
    longs[255] = '\0';
    w = (struct px__put){big, 0, 300, false};
    px__put_str(&w, longs);
    cr_assert(!w.overflow);
    cr_assert_eq(w.len, 256);
    cr_assert_eq(big[0], 255);
    cr_assert_eq(big[256], 0xa5);

    /* A zero capacity, and nothing to write. */
    w = (struct px__put){NULL, 0, 0, false};
    px__put_bytes(&w, NULL, 0);
    cr_assert(w.overflow);
    cr_assert_eq(w.len, 0);
}

/* ---- Power loss --------------------------------------------------------- */

static struct seg *mixed_segment(void)
{
    struct seg *b = seg_new(256 * 1024);
    add_segment(b, 1000, 1000, 1, UINT64_MAX);
    for (uint64_t i = 1; i <= 200; i++)
        add_random(b, 1000 + i);
    cr_assert_eq(b->n, 201);
    return b;
}

/* Leading frames of got that are byte for byte those of ref. */
static size_t intact_frames(const uint8_t *got, const struct seg *ref)
{
    size_t n = 0;
    while (n < ref->n &&
           memcmp(got + ref->start[n], ref->p + ref->start[n], ref->end[n] - ref->start[n]) == 0)
        n++;
    return n;
}

Test(record, power_loss_cuts)
{
    rng_state = px_test_seed();
    struct seg *b = mixed_segment();
    uint8_t *z = malloc(b->len), *g = malloc(b->len);
    cr_assert(z && g);
    cr_assert_eq(walk(b->p, b->len, b), b->n);

    /* Cuts at every frame boundary and a byte to either side, then at random. */
    size_t ncuts = 3 * b->n + 400;
    for (size_t t = 0; t < ncuts; t++) {
        size_t cut;
        if (t < 3 * b->n) {
            size_t e = b->end[t / 3];
            cut = t % 3 == 0 ? e : t % 3 == 1 ? e - 1 : (e + 1 <= b->len ? e + 1 : e);
        } else {
            cut = below(b->len + 1);
        }
        size_t want = 0;
        while (want < b->n && b->end[want] <= cut)
            want++;
        /* The file ends at the cut. */
        cr_assert_eq(walk(b->p, cut, b), want, "cut at %zu of %zu", cut, b->len);
        /* The file goes on, preallocated: zeroes from the cut on. Losing only
         * zero bytes (padding, a zero tail of a body) loses nothing. */
        memcpy(z, b->p, cut);
        memset(z + cut, 0, b->len - cut);
        size_t intact = intact_frames(z, b);
        cr_assert_geq(intact, want);
        cr_assert_eq(walk(z, b->len, b), intact, "cut at %zu, zero tail", cut);
        /* Or old garbage from the cut on. */
        memcpy(g, b->p, cut);
        for (size_t i = cut; i < b->len; i++)
            g[i] = (uint8_t)rnd();
        intact = intact_frames(g, b);
        cr_assert_geq(intact, want);
        cr_assert_eq(walk(g, b->len, b), intact, "cut at %zu, garbage tail", cut);
    }
    free(z);
    free(g);
    seg_free(b);
}

Test(record, power_loss_bit_flips)
{
    rng_state = px_test_seed();
    struct seg *b = mixed_segment();
    for (int t = 0; t < 1000; t++) {
        size_t at = below(b->len);
        uint8_t mask = (uint8_t)(1u << below(8));
        size_t frame = 0;
        while (b->end[frame] <= at)
            frame++;
        b->p[at] ^= mask;
        cr_assert_eq(walk(b->p, b->len, b), frame, "flip at byte %zu (frame %zu)", at, frame);
        b->p[at] ^= mask;
    }
    cr_assert_eq(walk(b->p, b->len, b), b->n);
    seg_free(b);
}

/* ---- The directory reader ----------------------------------------------- */

static char tmpdir[64];

static void make_tmpdir(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/px-record-XXXXXX");
    cr_assert_not_null(mkdtemp(tmpdir));
}

static void remove_tmpdir(void)
{
    if (!tmpdir[0])
        return;
    px_test_rmtree(tmpdir);
    tmpdir[0] = '\0';
}

static void write_file(const char *name, const void *p, size_t n)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, p, n), (ssize_t)n);
    cr_assert_eq(close(fd), 0);
}

static size_t nonzero(const uint8_t *p, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += p[i] != 0;
    return k;
}

static const struct px__seg *seg_named(const struct px__log *l, const char *name)
{
    for (size_t i = 0; i < l->nsegs; i++)
        if (strcmp(l->segs[i].name, name) == 0)
            return &l->segs[i];
    cr_assert_fail("no segment %s", name);
    return NULL;
}

/* The loaded records are exactly want[0, n), in that (LSN) order, and each
 * body lies in its segment's replayed part. */
static void expect_lsns(const struct px__log *l, const uint64_t *want, size_t n)
{
    cr_assert_eq(l->nrecs, n, "nrecs %zu, want %zu", l->nrecs, n);
    uint64_t max = 0;
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(l->recs[i]->lsn, want[i], "recs[%zu]: lsn %llu, want %llu", i,
                     (unsigned long long)l->recs[i]->lsn, (unsigned long long)want[i]);
        if (i)
            cr_assert_gt(l->recs[i]->lsn, l->recs[i - 1]->lsn);
        max = want[i] > max ? want[i] : max;
        bool inside = false;
        for (size_t s = 0; s < l->nsegs; s++) {
            const struct px__seg *g = &l->segs[s];
            if (l->recs[i]->body >= g->data + PX__REC_HDR &&
                l->recs[i]->body + l->recs[i]->len <= g->data + g->used)
                inside = true;
        }
        cr_assert(inside, "lsn %llu lies outside every replayed part", (unsigned long long)want[i]);
    }
    cr_assert_eq(l->max_lsn, max);
}

#define A1 "0000000000000001-000001.wal"
#define A2 "0000000000000001-000002.wal"
#define B1 "0000000000000002-000001.wal"

Test(record, log_load_directory, .init = make_tmpdir, .fini = remove_tmpdir)
{
    /* Writer A (its first LSN is 1): odd LSNs, then 4 KiB preallocated. */
    struct seg *a1 = seg_new(8192);
    add_segment(a1, 1, 1, 1, UINT64_MAX);
    add_submit(a1, 3, 100, 10);
    add_id(a1, PX__REC_START, 5, 100, 1);
    size_t cut = add_finish(a1, 7, 100, 4); /* A's group from here on failed */
    add_id(a1, PX__REC_FREE, 9, 100, 0);
    add_submit(a1, 11, 101, 0);
    size_t a1_valid = a1->len;
    a1->len += 4096;
    write_file(A1, a1->p, a1->len);

    /* Writer B (first LSN 2): even LSNs, then a torn frame and zeroes. */
    struct seg *b1 = seg_new(8192);
    add_segment(b1, 2, 2, 1, UINT64_MAX);
    add_submit(b1, 4, 200, 33);
    add_id(b1, PX__REC_START, 6, 200, 1);
    add_finish(b1, 8, 200, 20);
    add_ckpt(b1, 10, 4, true);
    size_t b1_valid = b1->len;
    add_submit(b1, 12, 202, 100);
    memset(b1->p + b1->start[5] + 70, 0, b1->end[5] - b1->start[5] - 70); /* torn */
    size_t torn_bytes = nonzero(b1->p + b1_valid, b1->end[5] - b1_valid);
    cr_assert_gt(torn_bytes, 0);
    b1->len += 512;
    write_file(B1, b1->p, b1->len);

    /* A's next segment, after the failed group: cut A1 at the FINISH. */
    struct seg *a2 = seg_new(1024);
    add_segment(a2, 13, 1, 2, cut);
    add_id(a2, PX__REC_START, 14, 101, 1);
    add_id(a2, PX__REC_FREE, 15, 101, 0);
    write_file(A2, a2->p, a2->len);

    /* A segment that does not open with a SEGMENT record, an empty one, and
     * files that are not segments. */
    struct seg *h = seg_new(1024);
    add_submit(h, 50, 500, 8);
    add_id(h, PX__REC_FREE, 51, 500, 0);
    write_file("0000000000000063-000001.wal", h->p, h->len);
    write_file("0000000000000064-000001.wal", "", 0);
    write_file("notes.txt", b1->p, b1_valid);
    write_file("0000000000000065-000001.wal.tmp", a2->p, a2->len);
    write_file(".wal", a2->p, a2->len);

    struct px__log l;
    cr_assert_eq(px__log_load(tmpdir, &l), 0);
    cr_assert_eq(l.nsegs, 5);
    const uint64_t want[] = {1, 2, 3, 4, 5, 6, 8, 10, 13, 14, 15};
    expect_lsns(&l, want, sizeof want / sizeof want[0]);
    cr_assert_eq(l.max_lsn, 15);
    cr_assert_eq(l.bytes_cut,
                 nonzero(a1->p + cut, a1->len - cut) + torn_bytes + nonzero(h->p, h->len),
                 "bytes_cut %llu", (unsigned long long)l.bytes_cut);

    const struct px__seg *s = seg_named(&l, A1);
    cr_assert(s->has_head);
    cr_assert_eq(s->head.writer, 1);
    cr_assert_eq(s->head.seq, 1);
    cr_assert_eq(s->valid, a1_valid);
    cr_assert_eq(s->used, cut);
    cr_assert_eq(s->records, 6);
    cr_assert_eq(s->max_lsn, 11); /* of its valid records, cut or not */
    cr_assert_eq(s->nonzero_tail, 0);
    s = seg_named(&l, B1);
    cr_assert(s->has_head);
    cr_assert_eq(s->valid, b1_valid);
    cr_assert_eq(s->used, b1_valid);
    cr_assert_eq(s->bad_at, b1_valid);
    cr_assert_eq(s->max_lsn, 10); /* not the torn frame's */
    cr_assert_eq(s->nonzero_tail, 1);
    s = seg_named(&l, A2);
    cr_assert_eq(s->head.seq, 2);
    cr_assert_eq(s->head.cut_prev, cut);
    cr_assert_eq(s->used, a2->len);
    cr_assert_eq(s->max_lsn, 15);
    s = seg_named(&l, "0000000000000063-000001.wal");
    cr_assert(!s->has_head);
    cr_assert_eq(s->valid, 0);
    cr_assert_eq(s->used, 0);
    cr_assert_eq(s->max_lsn, 0);
    cr_assert_eq(s->nonzero_tail, 1);

    /* The records decode to what was written. */
    struct px__rec_submit sub;
    cr_assert(px__rec_submit_get(l.recs[2], &sub));
    cr_assert_eq(sub.id, 100);
    cr_assert_eq(sub.args_len, 10);
    struct px__rec_finish fin;
    cr_assert(px__rec_finish_get(l.recs[6], &fin));
    cr_assert_eq(fin.id, 200);
    cr_assert_eq(fin.out_len, 20);
    uint64_t begin;
    bool end;
    cr_assert_eq(l.recs[7]->type, PX__REC_CHECKPOINT);
    cr_assert(px__rec_ckpt_get(l.recs[7], &begin, &end));
    cr_assert_eq(begin, 4);
    cr_assert(end);
    uint64_t id;
    uint32_t att;
    cr_assert(px__rec_id_get(l.recs[10], &id, &att));
    cr_assert_eq(id, 101);
    cr_assert_eq(l.recs[10]->type, PX__REC_FREE);

    /* Loading never changes a file: the same again. */
    struct px__log l2;
    cr_assert_eq(px__log_load(tmpdir, &l2), 0);
    expect_lsns(&l2, want, sizeof want / sizeof want[0]);
    cr_assert_eq(l2.bytes_cut, l.bytes_cut);
    px__log_free(&l2);
    px__log_free(&l);
    cr_assert_null(l.recs);
    cr_assert_eq(l.nrecs, 0);
    seg_free(a1);
    seg_free(a2);
    seg_free(b1);
    seg_free(h);
}

/* A cut applies to the writer's segment just before, and to nothing else. */
Test(record, log_load_cut_only_predecessor, .init = make_tmpdir, .fini = remove_tmpdir)
{
    /* Writer 1: seq 1 and seq 3 (seq 2 lost); writer 2: seq 2 naming a
     * cut — neither may cut writer 1's seq 1. */
    struct seg *w1 = seg_new(4096);
    add_segment(w1, 1, 1, 1, UINT64_MAX);
    add_id(w1, PX__REC_START, 2, 7, 1);
    size_t at = add_id(w1, PX__REC_FREE, 3, 7, 0);
    write_file("0000000000000001-000001.wal", w1->p, w1->len);
    struct seg *w3 = seg_new(1024);
    add_segment(w3, 10, 1, 3, at);
    write_file("0000000000000001-000003.wal", w3->p, w3->len);
    struct seg *x = seg_new(1024);
    add_segment(x, 11, 4, 2, at);
    write_file("0000000000000004-000002.wal", x->p, x->len);

    struct px__log l;
    cr_assert_eq(px__log_load(tmpdir, &l), 0);
    const uint64_t all[] = {1, 2, 3, 10, 11};
    expect_lsns(&l, all, 5);
    cr_assert_eq(l.bytes_cut, 0);
    px__log_free(&l);

    /* A cut past the end of the segment, or UINT64_MAX, changes nothing. */
    const uint64_t none[] = {w1->len, w1->len + 4096, UINT64_MAX};
    for (size_t i = 0; i < 3; i++) {
        struct seg *w2 = seg_new(1024);
        add_segment(w2, 12, 1, 2, none[i]);
        write_file("0000000000000001-000002.wal", w2->p, w2->len);
        cr_assert_eq(px__log_load(tmpdir, &l), 0);
        const uint64_t want[] = {1, 2, 3, 10, 11, 12};
        expect_lsns(&l, want, 6);
        px__log_free(&l);
        seg_free(w2);
    }

    /* A cut at 0, or inside the SEGMENT record's header, drops it all. */
    const uint64_t whole[] = {0, 1, 8, PX__REC_HDR - 1};
    for (size_t i = 0; i < 4; i++) {
        struct seg *w2 = seg_new(1024);
        add_segment(w2, 12, 1, 2, whole[i]);
        write_file("0000000000000001-000002.wal", w2->p, w2->len);
        cr_assert_eq(px__log_load(tmpdir, &l), 0);
        const uint64_t want[] = {10, 11, 12};
        expect_lsns(&l, want, 3);
        cr_assert_eq(l.bytes_cut, nonzero(w1->p, w1->len));
        cr_assert_eq(seg_named(&l, "0000000000000001-000001.wal")->used, 0);
        px__log_free(&l);
        seg_free(w2);
    }

    /* A cut inside a frame drops that frame. */
    struct seg *w2 = seg_new(1024);
    add_segment(w2, 12, 1, 2, w1->start[1] + 13);
    write_file("0000000000000001-000002.wal", w2->p, w2->len);
    cr_assert_eq(px__log_load(tmpdir, &l), 0);
    const uint64_t want[] = {1, 10, 11, 12};
    expect_lsns(&l, want, 4);
    px__log_free(&l);
    seg_free(w2);
    seg_free(w1);
    seg_free(w3);
    seg_free(x);
}

/* A SEGMENT record only opens a segment: one further on ends it, and one
 * that does not decode opens nothing. */
Test(record, log_load_segment_records, .init = make_tmpdir, .fini = remove_tmpdir)
{
    struct seg *s = seg_new(4096);
    add_segment(s, 1, 1, 1, UINT64_MAX);
    add_id(s, PX__REC_START, 2, 5, 1);
    add_segment(s, 3, 1, 1, UINT64_MAX);
    add_id(s, PX__REC_FREE, 4, 5, 0);
    write_file("0000000000000001-000001.wal", s->p, s->len);

    /* A head whose body is one byte short, resealed: a frame, not a head. */
    struct seg *bad = seg_new(4096);
    add_segment(bad, 20, 20, 1, UINT64_MAX);
    add_id(bad, PX__REC_START, 21, 5, 1);
    uint8_t *copy = calloc(1, bad->len);
    memcpy(copy, bad->p, bad->len);
    set_u32(copy + 8, 63);
    memset(copy + PX__REC_HDR + 63, 0, 1);
    reseal(copy);
    read_ok(copy, bad->len, 0, PX__REC_SEGMENT, 20, 63);
    write_file("0000000000000014-000001.wal", copy, bad->len);

    struct px__log l;
    cr_assert_eq(px__log_load(tmpdir, &l), 0);
    const uint64_t want[] = {1, 2};
    expect_lsns(&l, want, 2);
    const struct px__seg *g = seg_named(&l, "0000000000000001-000001.wal");
    cr_assert_eq(g->valid, s->start[2]);
    cr_assert_eq(g->records, 2);
    g = seg_named(&l, "0000000000000014-000001.wal");
    cr_assert(!g->has_head);
    cr_assert_eq(g->valid, 0);
    cr_assert_eq(l.bytes_cut,
                 nonzero(s->p + s->start[2], s->len - s->start[2]) + nonzero(copy, bad->len));
    px__log_free(&l);
    free(copy);
    seg_free(s);
    seg_free(bad);
}

/* Records of many writers, interleaved, come out in LSN order; a duplicated
 * LSN is kept once. */
Test(record, log_load_many_writers, .init = make_tmpdir, .fini = remove_tmpdir)
{
    rng_state = px_test_seed();
    enum { W = 6, PER = 60 };
    struct seg *w[W];
    uint64_t lsn = 1;
    for (int i = 0; i < W; i++) {
        w[i] = seg_new(64 * 1024);
        add_segment(w[i], lsn, lsn, 1, UINT64_MAX);
        lsn++;
    }
    for (int k = 0; k < W * PER; k++)
        add_random(w[below(W)], lsn++);
    for (int i = 0; i < W; i++) {
        char name[64];
        snprintf(name, sizeof name, "%016llx-%06u.wal", (unsigned long long)w[i]->lsn[0], 1u);
        write_file(name, w[i]->p, w[i]->len + 8 * below(100));
    }
    struct px__log l;
    cr_assert_eq(px__log_load(tmpdir, &l), 0);
    cr_assert_eq(l.nrecs, lsn - 1);
    for (size_t i = 0; i < l.nrecs; i++)
        cr_assert_eq(l.recs[i]->lsn, i + 1);
    cr_assert_eq(l.max_lsn, lsn - 1);
    cr_assert_eq(l.bytes_cut, 0);
    px__log_free(&l);

    /* The same segment under a second name: every LSN twice, kept once. */
    write_file("00000000000000ff-000001.wal", w[0]->p, w[0]->len);
    cr_assert_eq(px__log_load(tmpdir, &l), 0);
    cr_assert_eq(l.nrecs, lsn - 1);
    for (size_t i = 0; i < l.nrecs; i++)
        cr_assert_eq(l.recs[i]->lsn, i + 1);
    px__log_free(&l);
    for (int i = 0; i < W; i++)
        seg_free(w[i]);
}

Test(record, log_load_missing_or_empty, .init = make_tmpdir, .fini = remove_tmpdir)
{
    struct px__log l;
    char path[128];
    snprintf(path, sizeof path, "%s/does-not-exist", tmpdir);
    memset(&l, 0x5a, sizeof l);
    cr_assert_eq(px__log_load(path, &l), -ENOENT);
    cr_assert_eq(l.nrecs, 0);
    cr_assert_null(l.segs);
    px__log_free(&l); /* harmless after a failed load */

    cr_assert_eq(px__log_load(tmpdir, &l), 0);
    cr_assert_eq(l.nsegs, 0);
    cr_assert_eq(l.nrecs, 0);
    cr_assert_eq(l.max_lsn, 0);
    cr_assert_eq(l.bytes_cut, 0);
    px__log_free(&l);
}

/* A segment head written before heads carried a format reads as format 2;
 * a format below 2 is no valid head. */
Test(record, segment_heads_without_a_format_are_format_2)
{
    struct px__rec_segment s = seg_params(7, 1, UINT64_MAX);
    for (uint32_t format = 0; format <= 3; format++) {
        uint8_t buf[256];
        struct px__put w = {buf + PX__REC_HDR, 0, sizeof buf - PX__REC_HDR, false};
        s.format = format;
        px__rec_segment_put(&w, &s);
        /* Format 3 stands for the old layout: its field cut off. */
        size_t n = px__rec_seal(buf, PX__REC_SEGMENT, 1, (uint32_t)w.len - (format == 3 ? 4 : 0));
        struct px__rec r;
        cr_assert_gt(px__rec_read(buf, n, 0, &r), 0);
        struct px__rec_segment o;
        bool ok = px__rec_segment_get(&r, &o);
        cr_assert_eq(ok, format >= 2, "format %u", format);
        if (ok)
            cr_assert_eq(o.format, format == 3 ? 2 : format);
    }
}

/* A log with a segment of a later format is refused whole, not cut at the
 * first record this build cannot read, and its files are left as they
 * were. */
Test(record, log_load_refuses_a_later_format, .init = make_tmpdir, .fini = remove_tmpdir)
{
    struct seg *ok = seg_new(4096), *later = seg_new(4096);
    add_segment(ok, 1, 1, 1, UINT64_MAX);
    add_submit(ok, 2, 100, 8);
    struct px__put w = seg_body(later);
    struct px__rec_segment s = seg_params(2, 1, UINT64_MAX);
    s.format = PX__LOG_FORMAT + 1;
    px__rec_segment_put(&w, &s);
    seg_seal(later, &w, PX__REC_SEGMENT, 3);
    add_submit(later, 4, 101, 8);
    struct px__put u = seg_body(later);
    px__put_u64(&u, 42);
    seg_seal(later, &u, 99, 5); /* a type of that later format */
    write_file("0000000000000001-1.wal", ok->p, ok->len);
    write_file("0000000000000002-1.wal", later->p, later->len);
    struct px__log l;
    cr_assert_eq(px__log_load(tmpdir, &l), PX_EVERSION);
    cr_assert_eq(l.nsegs, 0, "nothing loaded");
    cr_assert_eq(l.nrecs, 0);
    px__log_free(&l);
    char path[256];
    snprintf(path, sizeof path, "%s/0000000000000002-1.wal", tmpdir);
    uint8_t back[4096];
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f);
    size_t size = fread(back, 1, sizeof back, f);
    fclose(f);
    cr_assert(size == later->len && memcmp(back, later->p, size) == 0, "left as it was");
    seg_free(ok);
    seg_free(later);
}

/* A START with a FREE folded in (journal.h): the freed id comes back, a
 * START without one says 0, and a folded-in id of 0 is no valid record. */
Test(record, a_start_carries_the_task_freed_before_it)
{
    uint8_t body[20];
    struct px__put p = {body, 0, sizeof body, false};
    px__rec_id_put(&p, 0x1234000000000007ull, 3);
    px__put_u64(&p, 0x0abc000000000009ull);
    cr_assert_eq(p.len, 20);
    struct px__rec r = {.type = PX__REC_START, .len = 20, .lsn = 1, .body = body};
    uint64_t id;
    uint32_t att;
    cr_assert(px__rec_id_get(&r, &id, &att));
    cr_assert_eq(id, 0x1234000000000007ull);
    cr_assert_eq(att, 3);
    cr_assert_eq(px__rec_start_freed(&r), 0x0abc000000000009ull);
    r.len = 12;
    cr_assert(px__rec_id_get(&r, &id, &att));
    cr_assert_eq(px__rec_start_freed(&r), 0);
    memset(body + 12, 0, 8);
    r.len = 20;
    cr_assert_not(px__rec_id_get(&r, &id, &att), "a freed id of 0");
    r.type = PX__REC_FREE;
    cr_assert_not(px__rec_id_get(&r, &id, &att), "only a START carries one");
}

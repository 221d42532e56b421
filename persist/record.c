/*
 * Log records: see record.h for the frame format.
 */
#include "record.h"
#include "pollux.h"

#include <endian.h>
#include <string.h>
/* XXH3 compiled in here, not called through the shared library: records
 * are short (40 to a few hundred bytes), where the call and the length
 * dispatch cost a good part of the hash. */
#define XXH_INLINE_ALL
#include <xxhash.h>

static uint64_t frame_sum(const uint8_t *frame, uint32_t len)
{
    return XXH3_64bits_withSeed(frame + 8, PX__REC_HDR - 8 + (size_t)len, PX__REC_SEED);
}

size_t px__rec_seal(uint8_t *dst, uint16_t type, uint64_t lsn, uint32_t len)
{
    uint32_t len_le = htole32(len);
    uint16_t type_le = htole16(type), zero = 0;
    uint64_t lsn_le = htole64(lsn);
    memcpy(dst + 8, &len_le, 4);
    memcpy(dst + 12, &type_le, 2);
    memcpy(dst + 14, &zero, 2);
    memcpy(dst + 16, &lsn_le, 8);
    size_t size = px__rec_size(len);
    size_t pad = size - PX__REC_HDR - len;
    if (pad) {
        /* The frame's last 8 bytes hold the body's end and the padding:
         * one masked word (little-endian: the body's bytes are the low
         * ones), not a call to memset for up to 7 bytes. */
        uint64_t last;
        memcpy(&last, dst + size - 8, 8);
        last = htole64(le64toh(last) & ((1ull << (8 * (8 - pad))) - 1));
        memcpy(dst + size - 8, &last, 8);
    }
    uint64_t sum = htole64(frame_sum(dst, len));
    memcpy(dst, &sum, 8);
    return size;
}

static bool known_type(uint16_t t)
{
    return t >= PX__REC_SEGMENT && t <= PX__REC_SUBMIT_MANY;
}

size_t px__rec_read(const uint8_t *buf, size_t size, size_t off, struct px__rec *out)
{
    if (off > size || size - off < PX__REC_HDR)
        return 0;
    const uint8_t *f = buf + off;
    uint64_t sum, lsn;
    uint32_t len;
    uint16_t type, zero;
    memcpy(&sum, f, 8);
    memcpy(&len, f + 8, 4);
    memcpy(&type, f + 12, 2);
    memcpy(&zero, f + 14, 2);
    memcpy(&lsn, f + 16, 8);
    len = le32toh(len);
    type = le16toh(type);
    if (zero != 0 || !known_type(type) || len > PX__REC_MAX_BODY)
        return 0;
    size_t fsize = px__rec_size(len);
    if (size - off < fsize)
        return 0;
    for (size_t i = PX__REC_HDR + len; i < fsize; i++)
        if (f[i] != 0)
            return 0;
    if (le64toh(sum) != frame_sum(f, len))
        return 0;
    out->type = type;
    out->len = len;
    out->lsn = le64toh(lsn);
    out->body = f + PX__REC_HDR;
    return fsize;
}

size_t px__rec_decoded(const uint8_t *f, struct px__rec *out)
{
    uint32_t len;
    uint16_t type;
    uint64_t lsn;
    memcpy(&len, f + 8, 4);
    memcpy(&type, f + 12, 2);
    memcpy(&lsn, f + 16, 8);
    out->len = le32toh(len);
    out->type = le16toh(type);
    out->lsn = le64toh(lsn);
    out->body = f + PX__REC_HDR;
    out->nonce = 0;
    return px__rec_size(out->len);
}

void px__put_str(struct px__put *w, const char *s)
{
    size_t n = strlen(s);
    if (n > 255) {
        w->overflow = true;
        return;
    }
    px__put_u8(w, (uint8_t)n);
    px__put_raw(w, s, n);
}

static bool get(struct px__get *g, void *dst, size_t n)
{
    if (g->len - g->at < n)
        return false;
    memcpy(dst, g->p + g->at, n);
    g->at += n;
    return true;
}

bool px__get_u8(struct px__get *g, uint8_t *v)
{
    return get(g, v, 1);
}

bool px__get_u32(struct px__get *g, uint32_t *v)
{
    if (!get(g, v, 4))
        return false;
    *v = le32toh(*v);
    return true;
}

bool px__get_u64(struct px__get *g, uint64_t *v)
{
    if (!get(g, v, 8))
        return false;
    *v = le64toh(*v);
    return true;
}

bool px__get_bytes(struct px__get *g, const uint8_t **p, uint32_t *n)
{
    if (!px__get_u32(g, n) || g->len - g->at < *n)
        return false;
    *p = g->p + g->at;
    g->at += *n;
    return true;
}

bool px__get_str(struct px__get *g, char *dst, size_t cap)
{
    uint8_t n;
    if (!px__get_u8(g, &n) || n >= cap || g->len - g->at < n)
        return false;
    memcpy(dst, g->p + g->at, n);
    dst[n] = '\0';
    g->at += n;
    return memchr(dst, '\0', n) == NULL; /* a name with a NUL inside is damage */
}

static struct px__get body_of(const struct px__rec *r)
{
    return (struct px__get){r->body, r->len, 0};
}

/* A string of at most max bytes, up to its first NUL: u8 length, bytes. */
static void put_strn(struct px__put *w, const char *s, size_t max)
{
    size_t n = strnlen(s, max);
    px__put_u8(w, (uint8_t)n);
    px__put_raw(w, s, n);
}

void px__rec_submit_put(struct px__put *w, const struct px__rec_submit *s)
{
    px__rec_submit_put_names(w, s, s->name, sizeof s->name - 1, s->queue, sizeof s->queue - 1);
}

void px__rec_submit_put_names(struct px__put *w, const struct px__rec_submit *s, const char *name,
                              size_t name_max, const char *queue, size_t queue_max)
{
    /* What the reader takes: no more than its arrays hold. */
    _Static_assert(sizeof s->name == sizeof s->queue, "one bound for both names");
    size_t cap = sizeof s->name - 1;
    px__put_u64(w, s->id);
    px__put_u32(w, s->flags);
    px__put_u8(w, s->mode);
    put_strn(w, name, name_max < cap ? name_max : cap);
    put_strn(w, queue, queue_max < cap ? queue_max : cap);
    px__put_bytes(w, s->args, s->args_len);
    if (s->due_ns) {
        px__put_u8(w, 1);
        px__put_u64(w, s->due_ns);
    }
    if (s->key) {
        px__put_u8(w, 2);
        px__put_u64(w, s->key);
    }
    const uint64_t more[] = {s->prio, s->sched, s->run};
    for (uint8_t i = 0; i < 3; i++)
        if (more[i]) {
            px__put_u8(w, (uint8_t)(3 + i));
            px__put_u64(w, more[i]);
        }
}

/* The optional fields after a SUBMIT's args: tagged, in tag order, each
 * at most once and never 0 (records without them read as before). */
static bool submit_trailer(struct px__get *g, struct px__rec_submit *s)
{
    uint64_t *field[] = {NULL, &s->due_ns, &s->key, &s->prio, &s->sched, &s->run};
    s->due_ns = s->key = s->prio = s->sched = s->run = 0;
    uint8_t last = 0, tag;
    uint64_t v;
    while (g->at < g->len) {
        if (!px__get_u8(g, &tag) || tag <= last || tag > 5 || !px__get_u64(g, &v) || v == 0 ||
            (tag == 3 && v > PX_PRIORITY_HIGHEST))
            return false;
        *field[tag] = v;
        last = tag;
    }
    return true;
}

bool px__rec_submit_get(const struct px__rec *r, struct px__rec_submit *s)
{
    struct px__get g = body_of(r);
    return r->type == PX__REC_SUBMIT && px__get_u64(&g, &s->id) && px__get_u32(&g, &s->flags) &&
           px__get_u8(&g, &s->mode) && px__get_str(&g, s->name, sizeof s->name) &&
           px__get_str(&g, s->queue, sizeof s->queue) &&
           px__get_bytes(&g, &s->args, &s->args_len) && submit_trailer(&g, s);
}

void px__rec_many_put(struct px__put *w, const struct px__rec_submit *s, const char *name,
                      size_t name_max, const char *queue, size_t queue_max)
{
    size_t cap = sizeof s->name - 1;
    px__put_u32(w, 0);
    px__put_u32(w, s->flags);
    px__put_u8(w, s->mode);
    put_strn(w, name, name_max < cap ? name_max : cap);
    put_strn(w, queue, queue_max < cap ? queue_max : cap);
    px__put_u64(w, s->due_ns);
    px__put_u8(w, (uint8_t)s->prio);
}

void px__rec_many_set_count(uint8_t *body, uint32_t count)
{
    count = htole32(count);
    memcpy(body, &count, 4);
}

static bool many_task(struct px__get *g, uint64_t *id, const uint8_t **args, uint32_t *len)
{
    return px__get_u64(g, id) && px__get_bytes(g, args, len);
}

/* A SUBMIT_MANY's shared fields; g is left at its first task. */
static bool many_head(const struct px__rec *r, struct px__get *g, struct px__rec_many *m)
{
    struct px__rec_submit *s = &m->common;
    uint8_t prio;
    if (r->type != PX__REC_SUBMIT_MANY || !px__get_u32(g, &m->count) ||
        !px__get_u32(g, &s->flags) || !px__get_u8(g, &s->mode) ||
        !px__get_str(g, s->name, sizeof s->name) || !px__get_str(g, s->queue, sizeof s->queue) ||
        !px__get_u64(g, &s->due_ns) || !px__get_u8(g, &prio) || prio > PX_PRIORITY_HIGHEST ||
        m->count == 0)
        return false;
    s->prio = prio;
    s->key = s->sched = s->run = 0;
    s->id = 0;
    s->args = NULL;
    s->args_len = 0;
    m->first = (uint32_t)g->at;
    return true;
}

bool px__rec_many_get(const struct px__rec *r, struct px__rec_many *m)
{
    struct px__get g = body_of(r);
    if (!many_head(r, &g, m))
        return false;
    for (uint32_t i = 0; i < m->count; i++) {
        uint64_t id;
        const uint8_t *args;
        uint32_t len;
        if (!many_task(&g, &id, &args, &len))
            return false;
    }
    return g.at == g.len;
}

bool px__rec_many_next(const struct px__rec *r, const struct px__rec_many *m, uint32_t *off,
                       struct px__rec_submit *s)
{
    struct px__get g = body_of(r);
    if (*off < m->first || *off >= g.len)
        return false;
    g.at = *off;
    *s = m->common;
    if (!many_task(&g, &s->id, &s->args, &s->args_len))
        return false;
    *off = (uint32_t)g.at;
    return true;
}

bool px__rec_submit_at(const struct px__rec *r, uint32_t off, struct px__rec_submit *s)
{
    if (r->type == PX__REC_SUBMIT)
        return px__rec_submit_get(r, s);
    /* Accepted as a whole before: only the shared fields and this task are
     * read again, so that restoring its n tasks costs n, not n squared. */
    struct px__get g = body_of(r);
    struct px__rec_many m;
    return many_head(r, &g, &m) && px__rec_many_next(r, &m, &off, s);
}

void px__rec_retry_put(struct px__put *w, const struct px__rec_retry *t)
{
    px__put_u64(w, t->id);
    px__put_u32(w, t->attempts);
    px__put_u64(w, t->due_ns);
    px__put_bytes(w, t->err, t->err_len);
}

bool px__rec_retry_get(const struct px__rec *r, struct px__rec_retry *t)
{
    struct px__get g = body_of(r);
    return r->type == PX__REC_RETRY && px__get_u64(&g, &t->id) && px__get_u32(&g, &t->attempts) &&
           px__get_u64(&g, &t->due_ns) && px__get_bytes(&g, &t->err, &t->err_len) && g.at == g.len;
}

void px__rec_finish_put(struct px__put *w, const struct px__rec_finish *f)
{
    px__put_u64(w, f->id);
    px__put_u8(w, f->state);
    px__put_bytes(w, f->out, f->out_len);
}

bool px__rec_finish_get(const struct px__rec *r, struct px__rec_finish *f)
{
    struct px__get g = body_of(r);
    return r->type == PX__REC_FINISH && px__get_u64(&g, &f->id) && px__get_u8(&g, &f->state) &&
           px__get_bytes(&g, &f->out, &f->out_len) && g.at == g.len;
}

void px__rec_segment_put(struct px__put *w, const struct px__rec_segment *s)
{
    px__put_u64(w, s->writer);
    px__put_u32(w, s->seq);
    px__put_u32(w, (uint32_t)s->pid);
    px__put_u64(w, s->cut_prev);
    px__put_u64(w, s->nonce);
    px__put_u32(w, s->capacity);
    px__put_u32(w, s->max_payload);
    px__put_u32(w, s->lanes);
    px__put_u32(w, s->lane_depth);
    px__put_u32(w, s->chunk_size);
    px__put_u32(w, s->nchunks);
    px__put_u64(w, s->reap_interval_ns);
    px__put_u32(w, s->format);
}

bool px__rec_segment_get(const struct px__rec *r, struct px__rec_segment *s)
{
    struct px__get g = body_of(r);
    uint32_t pid = 0;
    bool ok = r->type == PX__REC_SEGMENT && px__get_u64(&g, &s->writer) &&
              px__get_u32(&g, &s->seq) && px__get_u32(&g, &pid) && px__get_u64(&g, &s->cut_prev) &&
              px__get_u64(&g, &s->nonce) && px__get_u32(&g, &s->capacity) &&
              px__get_u32(&g, &s->max_payload) && px__get_u32(&g, &s->lanes) &&
              px__get_u32(&g, &s->lane_depth) && px__get_u32(&g, &s->chunk_size) &&
              px__get_u32(&g, &s->nchunks) && px__get_u64(&g, &s->reap_interval_ns);
    s->format = 2; /* a head from before the field */
    if (ok && g.at < g.len)
        ok = px__get_u32(&g, &s->format) && s->format >= 2;
    ok = ok && g.at == g.len;
    s->pid = (int32_t)pid;
    return ok;
}

bool px__rec_id_get(const struct px__rec *r, uint64_t *id, uint32_t *attempts)
{
    struct px__get g = body_of(r);
    uint64_t freed;
    if (!(r->type == PX__REC_START || r->type == PX__REC_FREE || r->type == PX__REC_CANCEL ||
          r->type == PX__REC_SCHED_END) ||
        !px__get_u64(&g, id) || !px__get_u32(&g, attempts))
        return false;
    if (r->type == PX__REC_START && g.at < g.len && !(px__get_u64(&g, &freed) && freed != 0))
        return false;
    return g.at == g.len;
}

uint64_t px__rec_start_freed(const struct px__rec *r)
{
    uint64_t freed = 0;
    if (r->type == PX__REC_START && r->len == 20)
        memcpy(&freed, r->body + 12, 8);
    return le64toh(freed);
}

void px__rec_ckpt_put(struct px__put *w, uint64_t begin, bool end)
{
    px__put_u64(w, begin);
    px__put_u8(w, end ? 1 : 0);
}

bool px__rec_ckpt_get(const struct px__rec *r, uint64_t *begin, bool *end)
{
    struct px__get g = body_of(r);
    uint8_t e;
    if (r->type != PX__REC_CHECKPOINT || !px__get_u64(&g, begin) || !px__get_u8(&g, &e) || e > 1 ||
        g.at != g.len)
        return false;
    *end = e == 1;
    return true;
}

void px__rec_sched_put(struct px__put *w, const struct px__rec_sched *s)
{
    px__put_u64(w, s->id);
    px__put_u8(w, s->mode);
    px__put_u8(w, s->level);
    px__put_str(w, s->name);
    px__put_str(w, s->queue);
    const uint32_t u32[] = {s->flags, s->slot_flags, s->ttl_ms, s->limit_ms, s->times, s->made};
    for (size_t i = 0; i < sizeof u32 / sizeof u32[0]; i++)
        px__put_u32(w, u32[i]);
    px__put_u64(w, s->every_ns);
    px__put_u64(w, s->until_ns);
    px__put_u64(w, s->next_ns);
    px__put_str(w, s->cron);
    px__put_str(w, s->tz);
    px__put_bytes(w, s->args, s->args_len);
}

bool px__rec_sched_get(const struct px__rec *r, struct px__rec_sched *s)
{
    struct px__get g = body_of(r);
    uint32_t *u32[] = {&s->flags, &s->slot_flags, &s->ttl_ms, &s->limit_ms, &s->times, &s->made};
    if (r->type != PX__REC_SCHED || !px__get_u64(&g, &s->id) || !px__get_u8(&g, &s->mode) ||
        !px__get_u8(&g, &s->level) || !px__get_str(&g, s->name, sizeof s->name) ||
        !px__get_str(&g, s->queue, sizeof s->queue))
        return false;
    for (size_t i = 0; i < sizeof u32 / sizeof u32[0]; i++)
        if (!px__get_u32(&g, u32[i]))
            return false;
    return px__get_u64(&g, &s->every_ns) && px__get_u64(&g, &s->until_ns) &&
           px__get_u64(&g, &s->next_ns) && px__get_str(&g, s->cron, sizeof s->cron) &&
           px__get_str(&g, s->tz, sizeof s->tz) && px__get_bytes(&g, &s->args, &s->args_len) &&
           g.at == g.len;
}

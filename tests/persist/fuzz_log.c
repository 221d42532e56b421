/*
 * Random input for the record reader, the body decoders and the directory
 * loader. one_input() takes any bytes and checks what must hold whatever
 * they are: accepted frames lie in the buffer and are exactly what
 * px__rec_seal writes, decoded lengths lie within the body and a decoded
 * body encodes back to the same bytes, and px__log_load of the bytes as
 * segment files keeps exactly the valid, uncut records, in LSN order. ASan
 * sees any read out of bounds.
 *
 * Under ctest it runs the seed corpus (tests/persist/corpus/) and random
 * mutations of it, seeded by px_test_seed(). Built with -DPX_LIBFUZZER it is
 * a libFuzzer target instead (px_fuzz_log, with clang):
 *   px_fuzz_log -max_len=65536 tests/persist/corpus
 */
#define _GNU_SOURCE
#include "persist/log.h"
#include "persist/record.h"
#include "rng.h"

#include <dirent.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

/* The highest record type there is. */
#define LAST_TYPE PX__REC_SUBMIT_MANY

#ifdef PX_LIBFUZZER
#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c);                  \
            abort();                                                                               \
        }                                                                                          \
    } while (0)
#else
#include "common.h"
/* What is being run, for the message of a failed check. */
static char what[512];
#define CHECK(c) cr_assert((c), "%s: check failed: %s", what, #c)
#endif

/* ---- A scratch directory for segment files ------------------------------ */

static char dir[64];

static void remove_dir(void)
{
    if (!dir[0])
        return;
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL)
            if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
                unlinkat(dirfd(d), e->d_name, 0);
        closedir(d);
    }
    rmdir(dir);
    dir[0] = '\0';
}

static void ensure_dir(void)
{
    if (dir[0])
        return;
    /* Thousands of small files are written and read: in memory (tmpfs) if
     * there is one, so that other work's fsyncs on the disk do not stall
     * the test. */
    struct stat st;
    const char *base =
        stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) && access("/dev/shm", W_OK) == 0
            ? "/dev/shm"
            : "/tmp";
    snprintf(dir, sizeof dir, "%s/px-fuzz-log-XXXXXX", base);
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        abort();
    }
}

static void put_file(const char *name, const uint8_t *p, size_t n)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    CHECK(fd >= 0);
    size_t done = 0;
    while (done < n) {
        ssize_t k = write(fd, p + done, n - done);
        CHECK(k > 0);
        done += (size_t)k;
    }
    CHECK(close(fd) == 0);
}

static void drop_file(const char *name)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    unlink(path);
}

/* ---- Frames -------------------------------------------------------------- */

static uint32_t le32_at(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return le32toh(v);
}

static uint16_t le16_at(const uint8_t *p)
{
    uint16_t v;
    memcpy(&v, p, 2);
    return le16toh(v);
}

static uint64_t le64_at(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return le64toh(v);
}

/* An accepted frame: inside the buffer, its header what the bytes say, and
 * byte for byte what px__rec_seal makes of its header and body. */
static void check_frame(const uint8_t *buf, size_t size, size_t off, size_t k,
                        const struct px__rec *r)
{
    CHECK(k >= PX__REC_HDR && k % 8 == 0);
    CHECK(off <= size && k <= size - off);
    CHECK(k == px__rec_size(r->len));
    CHECK(r->len <= PX__REC_MAX_BODY);
    CHECK(r->type >= PX__REC_SEGMENT && r->type <= LAST_TYPE);
    CHECK(r->body == buf + off + PX__REC_HDR);
    CHECK(le32_at(buf + off + 8) == r->len);
    CHECK(le16_at(buf + off + 12) == r->type);
    CHECK(le16_at(buf + off + 14) == 0);
    CHECK(le64_at(buf + off + 16) == r->lsn);
    uint8_t *copy = malloc(k);
    CHECK(copy != NULL);
    memcpy(copy + PX__REC_HDR, r->body, r->len);
    memset(copy, 0xa5, PX__REC_HDR);
    memset(copy + PX__REC_HDR + r->len, 0xa5, k - PX__REC_HDR - r->len);
    CHECK(px__rec_seal(copy, r->type, r->lsn, r->len) == k);
    CHECK(memcmp(copy, buf + off, k) == 0);
    free(copy);
}

/* Decodes a body as every record type, from a heap copy of exactly its
 * bytes; whatever decodes must lie within the body and encode back to it. */
static void decode_all(const struct px__rec *r)
{
    uint8_t *body = malloc(r->len ? r->len : 1);
    uint8_t *again = malloc(r->len + 8);
    CHECK(body && again);
    memcpy(body, r->body, r->len);
    const uint8_t *end = body + r->len;
    for (uint16_t t = PX__REC_SEGMENT; t <= LAST_TYPE; t++) {
        struct px__rec x = {.type = t, .len = r->len, .lsn = r->lsn, .body = body};
        /* Room for an old SEGMENT head's format field too (see below). */
        struct px__put w = {again, 0, r->len + (t == PX__REC_SEGMENT ? 4 : 0), false};
        bool ok;
        switch (t) {
        case PX__REC_SEGMENT: {
            struct px__rec_segment s;
            ok = px__rec_segment_get(&x, &s);
            if (ok) {
                /* A head from before the format field reads as format 2,
                 * and is put back without it. */
                CHECK(r->len == 68 || (r->len == 64 && s.format == 2));
                CHECK(s.format >= 2);
                px__rec_segment_put(&w, &s);
                if (r->len == 64)
                    w.len -= 4;
            }
            break;
        }
        case PX__REC_SUBMIT: {
            struct px__rec_submit s;
            ok = px__rec_submit_get(&x, &s);
            if (ok) {
                size_t nl = strnlen(s.name, sizeof s.name), ql = strnlen(s.queue, sizeof s.queue);
                CHECK(nl < sizeof s.name && ql < sizeof s.queue);
                CHECK(s.args_len <= r->len);
                CHECK(s.args >= body && s.args <= end && s.args_len <= (size_t)(end - s.args));
                CHECK(r->len == 8 + 4 + 1 + 1 + nl + 1 + ql + 4 + (size_t)s.args_len +
                                    (s.due_ns ? 9 : 0) + (s.key ? 9 : 0));
                px__rec_submit_put(&w, &s);
            }
            break;
        }
        case PX__REC_FINISH: {
            struct px__rec_finish f;
            ok = px__rec_finish_get(&x, &f);
            if (ok) {
                CHECK(f.out >= body && f.out <= end && f.out_len <= (size_t)(end - f.out));
                CHECK(r->len == 8 + 1 + 4 + (size_t)f.out_len);
                px__rec_finish_put(&w, &f);
            }
            break;
        }
        case PX__REC_CHECKPOINT: {
            uint64_t begin;
            bool fin;
            ok = px__rec_ckpt_get(&x, &begin, &fin);
            if (ok) {
                CHECK(r->len == 9);
                px__rec_ckpt_put(&w, begin, fin);
            }
            break;
        }
        case PX__REC_RETRY: {
            struct px__rec_retry rt;
            ok = px__rec_retry_get(&x, &rt);
            if (ok) {
                CHECK(rt.err >= body && rt.err <= end && rt.err_len <= (size_t)(end - rt.err));
                CHECK(r->len == 8 + 4 + 8 + 4 + (size_t)rt.err_len);
                px__rec_retry_put(&w, &rt);
            }
            break;
        }
        case PX__REC_SUBMIT_MANY: {
            struct px__rec_many m;
            ok = px__rec_many_get(&x, &m);
            if (ok) {
                struct px__rec_submit s;
                px__rec_many_put(&w, &m.common, m.common.name, 63, m.common.queue, 63);
                CHECK(w.len == m.first);
                uint32_t at = m.first, n = 0;
                while (px__rec_many_next(&x, &m, &at, &s)) {
                    CHECK(s.args >= body && s.args <= end && s.args_len <= (size_t)(end - s.args));
                    px__rec_many_task_put(&w, s.id, s.args, s.args_len);
                    n++;
                }
                CHECK(n == m.count && at == r->len);
                px__rec_many_set_count(again, m.count);
            }
            break;
        }
        case PX__REC_SCHED: {
            struct px__rec_sched sc;
            ok = px__rec_sched_get(&x, &sc);
            if (ok) {
                CHECK(sc.args >= body && sc.args <= end && sc.args_len <= (size_t)(end - sc.args));
                CHECK(strnlen(sc.cron, sizeof sc.cron) < sizeof sc.cron);
                CHECK(strnlen(sc.tz, sizeof sc.tz) < sizeof sc.tz);
                ok = false; /* bounds only: no byte-for-byte check */
            }
            break;
        }
        default: {
            uint64_t id;
            uint32_t attempts;
            CHECK(t == PX__REC_START || t == PX__REC_FREE || t == PX__REC_CANCEL ||
                  t == PX__REC_SCHED_END);
            ok = px__rec_id_get(&x, &id, &attempts);
            if (ok) {
                uint64_t freed = px__rec_start_freed(&x);
                CHECK(r->len == (freed ? 20u : 12u));
                CHECK(!freed || t == PX__REC_START);
                px__rec_id_put(&w, id, attempts);
                if (freed)
                    px__put_u64(&w, freed);
            }
            break;
        }
        }
        if (ok) {
            CHECK(!w.overflow);
            CHECK(w.len == r->len);
            CHECK(memcmp(again, body, r->len) == 0);
        }
    }
    /* A decoder takes only its own type. */
    for (uint16_t t = 0; t <= LAST_TYPE + 1; t++) {
        struct px__rec x = {.type = t, .len = r->len, .lsn = r->lsn, .body = body};
        struct px__rec_segment s;
        struct px__rec_submit sub;
        struct px__rec_finish f;
        uint64_t id, begin;
        uint32_t attempts;
        bool fin;
        if (t != PX__REC_SEGMENT)
            CHECK(!px__rec_segment_get(&x, &s));
        if (t != PX__REC_SUBMIT)
            CHECK(!px__rec_submit_get(&x, &sub));
        if (t != PX__REC_FINISH)
            CHECK(!px__rec_finish_get(&x, &f));
        if (t != PX__REC_START && t != PX__REC_FREE && t != PX__REC_CANCEL &&
            t != PX__REC_SCHED_END)
            CHECK(!px__rec_id_get(&x, &id, &attempts));
        struct px__rec_many many;
        if (t != PX__REC_SUBMIT_MANY)
            CHECK(!px__rec_many_get(&x, &many));
        struct px__rec_sched sc;
        if (t != PX__REC_SCHED)
            CHECK(!px__rec_sched_get(&x, &sc));
        if (t != PX__REC_CHECKPOINT)
            CHECK(!px__rec_ckpt_get(&x, &begin, &fin));
        struct px__rec_retry rt;
        if (t != PX__REC_RETRY)
            CHECK(!px__rec_retry_get(&x, &rt));
    }
    free(body);
    free(again);
}

/* Walks the frames from offset 0; returns where the valid prefix ends. */
static size_t walk_frames(const uint8_t *data, size_t size, size_t *nframes)
{
    size_t off = 0, k, n = 0;
    struct px__rec r;
    while ((k = px__rec_read(data, size, off, &r)) > 0) {
        check_frame(data, size, off, k, &r);
        decode_all(&r);
        off += k;
        n++;
    }
    CHECK(off <= size);
    *nframes = n;
    return off;
}

/* ---- The loader, and a model of what it must keep ------------------------ */

struct model {
    const uint8_t *data;
    size_t size, valid, used, records;
    uint64_t max_lsn;
    bool has_head;
    struct px__rec_segment head;
};

static void model_scan(struct model *m)
{
    size_t off = 0, k;
    struct px__rec r;
    m->valid = m->records = 0;
    m->max_lsn = 0;
    m->has_head = false;
    while ((k = px__rec_read(m->data, m->size, off, &r)) > 0) {
        if (off == 0) {
            if (r.type != PX__REC_SEGMENT || !px__rec_segment_get(&r, &m->head))
                break;
            m->has_head = true;
        } else if (r.type == PX__REC_SEGMENT) {
            break;
        }
        off += k;
        m->records++;
        if (r.lsn > m->max_lsn)
            m->max_lsn = r.lsn;
    }
    m->valid = m->used = off;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static const char *const names[2] = {"0000000000000001-000001.wal", "0000000000000001-000002.wal"};

/* Writes data as one segment file, or two if a second SEGMENT frame follows
 * the first segment's frames (a writer's next segment), loads the directory
 * and checks the result against the model. */
static void load_check(const uint8_t *data, size_t size)
{
    ensure_dir();
    size_t split = size, off = 0, k;
    struct px__rec r;
    for (size_t i = 0; (k = px__rec_read(data, size, off, &r)) > 0; i++, off += k)
        if (i > 0 && r.type == PX__REC_SEGMENT) {
            split = off;
            break;
        }
    struct model m[2] = {{.data = data, .size = split},
                         {.data = data + split, .size = size - split}};
    size_t nfiles = split < size ? 2 : 1;
    for (size_t i = 0; i < 2; i++) {
        if (i < nfiles)
            put_file(names[i], m[i].data, m[i].size);
        else
            drop_file(names[i]);
    }
    for (size_t i = 0; i < nfiles; i++)
        model_scan(&m[i]);
    for (size_t i = 0; i < nfiles; i++) {
        const struct px__rec_segment *h = &m[i].head;
        if (!m[i].has_head || h->cut_prev == UINT64_MAX || h->seq < 2)
            continue;
        for (size_t j = 0; j < nfiles; j++)
            if (m[j].has_head && m[j].head.writer == h->writer && m[j].head.seq == h->seq - 1 &&
                h->cut_prev < m[j].used)
                m[j].used = h->cut_prev < PX__REC_HDR ? 0 : (size_t)h->cut_prev;
    }
    /* What must survive: whole frames before each file's cut, once per LSN. */
    uint64_t *lsns = malloc((size / PX__REC_HDR + 2) * sizeof *lsns);
    CHECK(lsns != NULL);
    size_t nl = 0, cut = 0;
    for (size_t i = 0; i < nfiles; i++) {
        for (off = 0; (k = px__rec_read(m[i].data, m[i].used, off, &r)) > 0; off += k) {
            CHECK(nl < size / PX__REC_HDR + 2);
            lsns[nl++] = r.lsn;
        }
        for (size_t b = m[i].used; b < m[i].size; b++)
            cut += m[i].data[b] != 0;
    }
    qsort(lsns, nl, sizeof lsns[0], cmp_u64);
    size_t uniq = 0;
    for (size_t i = 0; i < nl; i++)
        if (uniq == 0 || lsns[uniq - 1] != lsns[i])
            lsns[uniq++] = lsns[i];

    /* A head of a later format makes the whole log refused, nothing read. */
    bool later = false;
    for (size_t i = 0; i < nfiles; i++)
        later = later || (m[i].has_head && m[i].head.format > PX__LOG_FORMAT);
    struct px__log l;
    int rc = px__log_load(dir, &l);
    if (later) {
        CHECK(rc == PX_EVERSION && l.nsegs == 0 && l.nrecs == 0);
        free(lsns);
        return;
    }
    CHECK(rc == 0);
    CHECK(l.nsegs == nfiles);
    for (size_t s = 0; s < l.nsegs; s++) {
        const struct px__seg *g = &l.segs[s];
        size_t i = strcmp(g->name, names[0]) == 0 ? 0 : 1;
        CHECK(strcmp(g->name, names[i]) == 0);
        CHECK(g->size == m[i].size);
        CHECK(g->size == 0 || memcmp(g->data, m[i].data, g->size) == 0);
        CHECK(g->valid == m[i].valid && g->valid % 8 == 0 && g->valid <= g->size);
        CHECK(g->used == m[i].used && g->used <= g->valid);
        CHECK(g->bad_at == g->valid);
        CHECK(g->records == m[i].records);
        CHECK(g->max_lsn == m[i].max_lsn);
        CHECK(!!g->has_head == m[i].has_head);
        CHECK(g->has_head || (g->valid == 0 && g->records == 0));
        if (g->has_head)
            CHECK(memcmp(&g->head, &m[i].head, sizeof g->head) == 0);
        bool tail = false;
        for (size_t b = g->valid; b < g->size; b++)
            tail |= g->data[b] != 0;
        CHECK(!!g->nonzero_tail == tail);
    }
    CHECK(l.nrecs == uniq);
    CHECK(l.bytes_cut == cut);
    CHECK(l.max_lsn == (uniq ? lsns[uniq - 1] : 0));
    for (size_t i = 0; i < l.nrecs; i++) {
        const struct px__rec *x = l.recs[i];
        CHECK(x->lsn == lsns[i]);
        bool inside = false;
        for (size_t s = 0; s < l.nsegs && !inside; s++) {
            const struct px__seg *g = &l.segs[s];
            if (x->body >= g->data + PX__REC_HDR && x->body <= g->data + g->used &&
                x->len <= (size_t)(g->data + g->used - x->body)) {
                size_t at = (size_t)(x->body - g->data) - PX__REC_HDR;
                struct px__rec y;
                CHECK(px__rec_read(g->data, g->used, at, &y) == px__rec_size(x->len));
                CHECK(y.lsn == x->lsn && y.type == x->type && y.body == x->body);
                inside = true;
            }
        }
        CHECK(inside);
    }
    px__log_free(&l);
    CHECK(l.nrecs == 0 && l.recs == NULL && l.segs == NULL);
    free(lsns);
}

/* A copy of data in which every header that is in bounds is made valid:
 * known type, zero reserved field and padding, and a matching sum, so that
 * damaged bodies reach the decoders and the loader. */
static uint8_t *resealed(const uint8_t *data, size_t size)
{
    uint8_t *c = malloc(size ? size : 1);
    CHECK(c != NULL);
    memcpy(c, data, size);
    size_t off = 0;
    while (size - off >= PX__REC_HDR) {
        uint8_t *f = c + off;
        uint32_t len = le32_at(f + 8);
        if (len > PX__REC_MAX_BODY || px__rec_size(len) > size - off)
            break;
        uint16_t type = le16_at(f + 12);
        if (type < PX__REC_SEGMENT || type > LAST_TYPE)
            type = (uint16_t)(PX__REC_SEGMENT + type % LAST_TYPE);
        size_t n = px__rec_seal(f, type, le64_at(f + 16), len);
        struct px__rec r;
        CHECK(px__rec_read(c, size, off, &r) == n);
        CHECK(r.type == type && r.len == len);
        off += n;
    }
    return c;
}

static void one_input(const uint8_t *data, size_t size)
{
    size_t nframes;
    walk_frames(data, size, &nframes);
    /* A frame at any offset, not only where the walk goes. */
    struct px__rec r;
    size_t limit = size < 8192 ? size + 1 : 8192;
    for (size_t off = 0; off < limit; off++) {
        size_t k = px__rec_read(data, size, off, &r);
        if (k)
            check_frame(data, size, off, k, &r);
    }
    CHECK(px__rec_read(data, size, size + 1, &r) == 0);
    CHECK(px__rec_read(data, size, SIZE_MAX, &r) == 0);
    load_check(data, size);

    uint8_t *c = resealed(data, size);
    size_t n2;
    walk_frames(c, size, &n2);
    CHECK(n2 >= nframes);
    load_check(c, size);
    free(c);
}

#ifdef PX_LIBFUZZER

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > (1u << 20))
        return 0;
    one_input(data, size);
    remove_dir(); /* libFuzzer may end with _Exit: leave nothing behind */
    return 0;
}

#else

#ifndef PX_CORPUS_DIR
#define PX_CORPUS_DIR "tests/persist/corpus"
#endif

struct input {
    char name[256];
    uint8_t *p;
    size_t n;
};

static struct input corpus[64];
static size_t ncorpus;

static void load_corpus(void)
{
    const char *path = getenv("PX_CORPUS_DIR");
    if (!path)
        path = PX_CORPUS_DIR;
    DIR *d = opendir(path);
    cr_assert_not_null(d, "corpus %s: %s", path, strerror(errno));
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        cr_assert_lt(ncorpus, sizeof corpus / sizeof corpus[0]);
        struct input *in = &corpus[ncorpus];
        snprintf(in->name, sizeof in->name, "%s", e->d_name);
        int fd = openat(dirfd(d), e->d_name, O_RDONLY | O_CLOEXEC);
        cr_assert_geq(fd, 0);
        struct stat st;
        cr_assert_eq(fstat(fd, &st), 0);
        in->n = (size_t)st.st_size;
        in->p = malloc(in->n ? in->n : 1);
        cr_assert_not_null(in->p);
        cr_assert_eq(read(fd, in->p, in->n), (ssize_t)in->n);
        close(fd);
        ncorpus++;
    }
    closedir(d);
    cr_assert_geq(ncorpus, 4, "corpus %s has %zu files", path, ncorpus);
}

static void teardown(void)
{
    for (size_t i = 0; i < ncorpus; i++)
        free(corpus[i].p);
    ncorpus = 0;
    remove_dir();
}

TestSuite(fuzz_log, .init = load_corpus, .fini = teardown);

/* The seeds themselves: the valid ones must load as valid. */
Test(fuzz_log, corpus)
{
    size_t valid_segments = 0;
    for (size_t i = 0; i < ncorpus; i++) {
        snprintf(what, sizeof what, "corpus %.200s", corpus[i].name);
        one_input(corpus[i].p, corpus[i].n);
        size_t n;
        walk_frames(corpus[i].p, corpus[i].n, &n);
        struct px__rec r;
        struct px__rec_segment s;
        if (n >= 2 && px__rec_read(corpus[i].p, corpus[i].n, 0, &r) && px__rec_segment_get(&r, &s))
            valid_segments++;
    }
    cr_assert_geq(valid_segments, 2, "the corpus has %zu valid segments", valid_segments);
}

#define MAXIN 65536

/* One random change to buf[0, *n), which has room for MAXIN bytes. */
static const char *mutate(uint8_t *buf, size_t *n)
{
    size_t len = *n;
    switch (rnd() % 9) {
    case 0: /* flip bits */
        if (!len)
            return "none";
        for (size_t i = 0, k = 1 + below(4); i < k; i++)
            buf[below(len)] ^= (uint8_t)(1u << below(8));
        return "flip";
    case 1: { /* insert bytes */
        size_t at = below(len + 1), k = 1 + below(16);
        if (len + k > MAXIN)
            return "none";
        memmove(buf + at + k, buf + at, len - at);
        for (size_t i = 0; i < k; i++)
            buf[at + i] = (uint8_t)(rnd() % 3 == 0 ? 0 : rnd());
        *n = len + k;
        return "insert";
    }
    case 2: { /* delete bytes */
        if (!len)
            return "none";
        size_t at = below(len), k = 1 + below(len - at < 16 ? len - at : 16);
        memmove(buf + at, buf + at + k, len - at - k);
        *n = len - k;
        return "delete";
    }
    case 3: /* truncate */
        *n = below(len + 1);
        return "truncate";
    case 4: { /* splice: our prefix, another input's suffix */
        const struct input *o = &corpus[below(ncorpus)];
        size_t at = below(len + 1), from = below(o->n + 1);
        size_t k = o->n - from;
        if (at + k > MAXIN)
            k = MAXIN - at;
        memcpy(buf + at, o->p + from, k);
        *n = at + k;
        return "splice";
    }
    case 5: { /* an interesting value at an interesting place */
        if (len < 8)
            return "none";
        static const uint64_t vals[] = {0,
                                        1,
                                        0xff,
                                        0xffffffffull,
                                        UINT64_MAX,
                                        PX__REC_MAX_BODY,
                                        PX__REC_MAX_BODY + 1,
                                        PX__REC_HDR,
                                        63,
                                        64,
                                        255,
                                        0x80000000ull};
        uint64_t v = htole64(vals[below(sizeof vals / sizeof vals[0])]);
        size_t w = (size_t)1 << below(4); /* 1, 2, 4 or 8 bytes */
        size_t at = rnd() % 2 ? (below(len / 8) * 8 + 8 + below(3) * 4) : below(len);
        if (at + w > len)
            at = len - w;
        memcpy(buf + at, &v, w);
        return "value";
    }
    case 6: { /* copy a stretch elsewhere (a frame written twice) */
        if (!len)
            return "none";
        size_t from = below(len), k = 1 + below(len - from), to = below(len + 1);
        if (len + k > MAXIN)
            return "none";
        uint8_t *tmp = malloc(k);
        cr_assert_not_null(tmp);
        memcpy(tmp, buf + from, k);
        memmove(buf + to + k, buf + to, len - to);
        memcpy(buf + to, tmp, k);
        free(tmp);
        *n = len + k;
        return "duplicate";
    }
    case 7: { /* zero a stretch (a torn write into preallocated space) */
        if (!len)
            return "none";
        size_t at = below(len);
        memset(buf + at, 0, below(len - at) + 1);
        return "zero";
    }
    default: { /* append zeroes (preallocation) or garbage */
        size_t k = 1 + below(256);
        if (len + k > MAXIN)
            return "none";
        bool zero = rnd() % 2;
        for (size_t i = 0; i < k; i++)
            buf[len + i] = zero ? 0 : (uint8_t)rnd();
        *n = len + k;
        return zero ? "append zeroes" : "append garbage";
    }
    }
}

Test(fuzz_log, mutations)
{
    unsigned seed = px_test_seed();
    rng_state = seed;
    uint8_t *buf = malloc(MAXIN);
    cr_assert_not_null(buf);
    enum { RUNS = 3000 };
    for (int run = 0; run < RUNS; run++) {
        const struct input *in = &corpus[below(ncorpus)];
        size_t n = in->n;
        memcpy(buf, in->p, n);
        int k = 1 + (int)below(4);
        int len = snprintf(what, sizeof what, "PX_SEED=%u run %d: %s", seed, run, in->name);
        for (int i = 0; i < k; i++) {
            const char *m = mutate(buf, &n);
            if (len > 0 && (size_t)len < sizeof what)
                len += snprintf(what + len, sizeof what - (size_t)len, " %s", m);
        }
        /* An exact-size copy, so that ASan sees a read past the input. */
        uint8_t *exact = malloc(n ? n : 1);
        cr_assert_not_null(exact);
        memcpy(exact, buf, n);
        one_input(exact, n);
        free(exact);
    }
    free(buf);
}

#endif

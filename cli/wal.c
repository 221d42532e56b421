/*
 * pollux wal dump|verify DIR: read a region's log without changing it.
 */
#include "cli.h"
#include "../persist/log.h"
#include "../shm/layout.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f)
{
    fprintf(f, "usage: pollux wal dump DIR [--json]   print every record, segment by segment\n"
               "       pollux wal verify DIR          check every frame of every segment\n"
               "\n"
               "DIR is a region's log directory (by default NAME.wal, see `pollux region`).\n"
               "verify exits 1 if a segment is damaged: a frame that fails its checksum\n"
               "with data after it, or a segment without its head; a torn tail of zeros\n"
               "and cuts left by failed writes are reported but are not damage.\n");
}

static const char *type_name(uint16_t t)
{
    static const char *names[] = {"?",      "segment", "submit",     "start",
                                  "finish", "free",    "checkpoint", "cancel",
                                  "retry",  "sched",   "sched_end",  "submit_many"};
    return t < sizeof names / sizeof *names ? names[t] : "?";
}

/* The record's fields as JSON (the same fields the text form prints). */
static json_t *record_json(const struct px__seg *s, size_t off, const struct px__rec *r)
{
    char idtext[PX_ID_LEN + 1] = "";
    json_t *o =
        json_pack("{s:s, s:I, s:I, s:s, s:I}", "segment", s->name, "offset", (json_int_t)off, "lsn",
                  (json_int_t)r->lsn, "type", type_name(r->type), "bytes", (json_int_t)r->len);
    struct px__rec_submit sub;
    struct px__rec_many many;
    struct px__rec_finish fin;
    struct px__rec_segment seg;
    struct px__rec_retry rt;
    struct px__rec_sched sc;
    uint64_t id, begin;
    uint32_t att;
    bool end;
    if (px__rec_submit_get(r, &sub)) {
        px_id_format(sub.id, idtext);
        json_object_set_new(o, "id", json_string(idtext));
        json_object_set_new(o, "task", json_string(sub.name));
        json_object_set_new(o, "queue", json_string(sub.queue));
        json_object_set_new(o, "args_len", json_integer(sub.args_len));
        json_object_set_new(o, "flags", json_integer(sub.flags));
        if (sub.due_ns)
            json_object_set_new(o, "due_ns", json_integer((json_int_t)sub.due_ns));
        if (sub.prio)
            json_object_set_new(o, "priority", json_integer((json_int_t)sub.prio));
        if (sub.sched) {
            char sid[PX_ID_LEN + 1];
            px_id_format(sub.sched, sid);
            json_object_set_new(o, "schedule", json_string(sid));
            if (sub.run)
                json_object_set_new(o, "run", json_integer((json_int_t)sub.run));
        }
        if (sub.key) {
            char key[17];
            snprintf(key, sizeof key, "%016" PRIx64, sub.key);
            json_object_set_new(o, "key_hash", json_string(key));
        }
    } else if (px__rec_many_get(r, &many)) {
        json_object_set_new(o, "task", json_string(many.common.name));
        json_object_set_new(o, "queue", json_string(many.common.queue));
        json_object_set_new(o, "flags", json_integer(many.common.flags));
        if (many.common.due_ns)
            json_object_set_new(o, "due_ns", json_integer((json_int_t)many.common.due_ns));
        if (many.common.prio)
            json_object_set_new(o, "priority", json_integer((json_int_t)many.common.prio));
        json_object_set_new(o, "count", json_integer(many.count));
        json_t *ids = json_array(), *lens = json_array();
        uint32_t at = many.first;
        while (px__rec_many_next(r, &many, &at, &sub)) {
            px_id_format(sub.id, idtext);
            json_array_append_new(ids, json_string(idtext));
            json_array_append_new(lens, json_integer(sub.args_len));
        }
        json_object_set_new(o, "ids", ids);
        json_object_set_new(o, "args_lens", lens);
    } else if (px__rec_finish_get(r, &fin)) {
        px_id_format(fin.id, idtext);
        json_object_set_new(o, "id", json_string(idtext));
        json_object_set_new(o, "state", json_string(px_state_name(fin.state)));
        json_object_set_new(o, "out_len", json_integer(fin.out_len));
    } else if (px__rec_retry_get(r, &rt)) {
        px_id_format(rt.id, idtext);
        json_object_set_new(o, "id", json_string(idtext));
        json_object_set_new(o, "attempts", json_integer(rt.attempts));
        json_object_set_new(o, "due_ns", json_integer((json_int_t)rt.due_ns));
        json_object_set_new(o, "error", json_stringn((const char *)rt.err, rt.err_len));
    } else if (px__rec_sched_get(r, &sc)) {
        px_id_format(sc.id, idtext);
        json_object_set_new(o, "id", json_string(idtext));
        json_object_set_new(o, "task", json_string(sc.name));
        if (sc.cron[0])
            json_object_set_new(o, "cron", json_string(sc.cron));
        else
            json_object_set_new(o, "every_ns", json_integer((json_int_t)sc.every_ns));
        json_object_set_new(o, "made", json_integer(sc.made));
        json_object_set_new(o, "next_ns", json_integer((json_int_t)sc.next_ns));
    } else if (px__rec_id_get(r, &id, &att)) {
        px_id_format(id, idtext);
        json_object_set_new(o, "id", json_string(idtext));
        if (r->type == PX__REC_START)
            json_object_set_new(o, "attempts", json_integer(att));
        uint64_t freed = px__rec_start_freed(r);
        if (freed) {
            px_id_format(freed, idtext);
            json_object_set_new(o, "freed", json_string(idtext));
        }
        if (r->type == PX__REC_SCHED_END)
            json_object_set_new(o, "state", json_string(att == 2 ? "ended" : "cancelled"));
    } else if (px__rec_ckpt_get(r, &begin, &end)) {
        json_object_set_new(o, "begin_lsn", json_integer((json_int_t)begin));
        json_object_set_new(o, "phase", json_string(end ? "end" : "begin"));
    } else if (px__rec_segment_get(r, &seg)) {
        json_object_set_new(o, "writer", json_integer((json_int_t)seg.writer));
        json_object_set_new(o, "seq", json_integer(seg.seq));
        json_object_set_new(o, "pid", json_integer(seg.pid));
        json_object_set_new(o, "capacity", json_integer(seg.capacity));
        json_object_set_new(o, "format", json_integer(seg.format));
        if (seg.cut_prev != UINT64_MAX)
            json_object_set_new(o, "cut_prev", json_integer((json_int_t)seg.cut_prev));
    }
    return o;
}

static void print_text(const json_t *o)
{
    printf("%-28s %10" JSON_INTEGER_FORMAT " lsn %-10" JSON_INTEGER_FORMAT " %-7s",
           json_string_value(json_object_get(o, "segment")),
           json_integer_value(json_object_get(o, "offset")),
           json_integer_value(json_object_get(o, "lsn")),
           json_string_value(json_object_get(o, "type")));
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)o, k, v)
    {
        if (!strcmp(k, "segment") || !strcmp(k, "offset") || !strcmp(k, "lsn") ||
            !strcmp(k, "type"))
            continue;
        if (json_is_string(v)) {
            printf(" %s=%s", k, json_string_value(v));
        } else if (json_is_array(v)) {
            size_t i;
            json_t *x;
            printf(" %s=", k);
            json_array_foreach(v, i, x)
            {
                if (json_is_string(x))
                    printf("%s%s", i ? "," : "", json_string_value(x));
                else
                    printf("%s%" JSON_INTEGER_FORMAT, i ? "," : "", json_integer_value(x));
            }
        } else
            printf(" %s=%" JSON_INTEGER_FORMAT, k, json_integer_value(v));
    }
    printf("\n");
}

static int dump(const struct px__log *l, bool as_json)
{
    for (size_t i = 0; i < l->nsegs; i++) {
        const struct px__seg *s = &l->segs[i];
        size_t off = 0, k;
        struct px__rec r;
        while (off < s->valid && (k = px__rec_read(s->data, s->valid, off, &r)) > 0) {
            json_t *o = record_json(s, off, &r);
            if (!o)
                return cli_fail("json", -ENOMEM);
            if (off >= s->used)
                json_object_set_new(o, "cut", json_true());
            if (as_json) {
                char *text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
                if (text)
                    puts(text);
                free(text);
            } else {
                print_text(o);
            }
            json_decref(o);
            off += k;
        }
    }
    return CLI_OK;
}

static int verify(const struct px__log *l)
{
    int bad = 0;
    uint64_t records = 0;
    for (size_t i = 0; i < l->nsegs; i++) {
        const struct px__seg *s = &l->segs[i];
        records += s->records;
        if (!s->has_head) {
            printf("%s: damaged at offset 0: no valid segment head\n", s->name);
            bad = 1;
        } else if (s->nonzero_tail) {
            printf("%s: damaged at offset %zu: the frame there fails its checks and data "
                   "follows\n",
                   s->name, s->bad_at);
            bad = 1;
        }
        if (s->used < s->valid)
            printf("%s: cut at offset %zu by a failed write (not replayed, not damage)\n", s->name,
                   s->used);
    }
    printf("%zu segments, %" PRIu64 " records, last lsn %" PRIu64 ": %s\n", l->nsegs, records,
           l->max_lsn, bad ? "DAMAGED" : "ok");
    return bad ? CLI_FAILED : CLI_OK;
}

int cli_wal(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? CLI_USAGE : CLI_OK;
    }
    bool is_dump = !strcmp(argv[1], "dump"), as_json = false;
    if (!is_dump && strcmp(argv[1], "verify") != 0) {
        fprintf(stderr, "pollux: unknown wal command '%s'\n", argv[1]);
        usage(stderr);
        return CLI_USAGE;
    }
    const char *dir = NULL;
    for (int i = 2; i < argc; i++) {
        if (is_dump && !strcmp(argv[i], "--json"))
            as_json = true;
        else if (argv[i][0] != '-' && !dir)
            dir = argv[i];
        else {
            usage(stderr);
            return CLI_USAGE;
        }
    }
    if (!dir) {
        usage(stderr);
        return CLI_USAGE;
    }
    struct px__log l;
    int rc = px__log_load(dir, &l);
    if (rc) {
        fprintf(stderr, "pollux: %s: %s\n", dir,
                rc == PX_EVERSION ? px_strerror(rc) : strerror(-rc));
        return CLI_FAILED;
    }
    rc = is_dump ? dump(&l, as_json) : verify(&l);
    px__log_free(&l);
    return rc;
}

/*
 * Cron expressions and the time zones they are evaluated in.
 *
 * The module guarantees what cron.h says: no global state, no TZ
 * environment, no localtime, so any thread may call it. A zone is read
 * from its TZif file (RFC 8536) on each call into a buffer freed before
 * the call returns; everything taken from the file (counts, sizes, type
 * indices, offsets, the order of transitions) is checked before use, so a
 * malformed file gives -EINVAL.
 *
 * Times are kept as int64 seconds since the epoch, always on a whole
 * minute for UTC instants. A zone is a list of segments: segment k runs
 * from transition k-1 (or the beginning of time) to transition k (or the
 * end of time) with one UT offset, so that inside a segment local time is
 * UTC plus a constant. The search walks forward through UTC, converting
 * to local time inside the current segment and jumping straight to the
 * next local minute that can match (next matching month, day, hour or
 * minute); a jump that leaves the segment stops at its end instead, where
 * the offset changes. A handful of iterations per month therefore
 * suffices whatever the expression.
 */
#if !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif
#include "cron.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define NS_PER_S 1000000000ull
#define LIMIT_S (1827ll * 86400) /* five years, leap days included */
#define MAX_TZIF (1 << 20)       /* real TZif files are a few KiB */
#define TZIF_HDR 44              /* magic, version, 15 unused, 6 counts */
#define MIN_UTOFF (-89999)       /* RFC 8536: more than -25 hours */
#define MAX_UTOFF 93599          /* RFC 8536: less than 26 hours */
#define FAR (1ll << 60)          /* transition times are clamped to +-FAR */
#define WINDOW (3ll * 86400)     /* more than twice the widest offset */
#define DEFAULT_TZDIR "/usr/share/zoneinfo"

/* ---- Parsing ---- */

struct field {
    int lo, hi;               /* the values a number may take */
    const char *const *names; /* nnames 3-letter names of values base.. */
    int nnames, base;
};

static const char *const month_names[] = {"jan", "feb", "mar", "apr", "may", "jun",
                                          "jul", "aug", "sep", "oct", "nov", "dec"};
static const char *const day_names[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};

static const struct field fields[5] = {
    {0, 59, NULL, 0, 0},         {0, 23, NULL, 0, 0},     {1, 31, NULL, 0, 0},
    {1, 12, month_names, 12, 1}, {0, 7, day_names, 7, 0},
};

static const struct {
    const char *name, *expr;
} shortcuts[] = {
    {"@yearly", "0 0 1 1 *"}, {"@annually", "0 0 1 1 *"}, {"@monthly", "0 0 1 * *"},
    {"@weekly", "0 0 * * 0"}, {"@daily", "0 0 * * *"},    {"@midnight", "0 0 * * *"},
    {"@hourly", "0 * * * *"},
};

static bool is_ws(char ch)
{
    return ch == ' ' || ch == '\t';
}

static bool is_digit(char ch)
{
    return ch >= '0' && ch <= '9';
}

static char lower(char ch)
{
    return ch >= 'A' && ch <= 'Z' ? (char)(ch - 'A' + 'a') : ch;
}

/* Reads decimal digits at *p into *v. The value is checked against max
 * digit by digit, so that no run of digits can overflow. */
static int read_number(const char **p, const char *end, int max, int *v)
{
    const char *s = *p;
    int n = 0;
    if (s == end || !is_digit(*s))
        return -EINVAL;
    for (; s < end && is_digit(*s); s++) {
        n = n * 10 + (*s - '0');
        if (n > max)
            return -EINVAL;
    }
    *p = s;
    *v = n;
    return 0;
}

/* Reads a 3-letter name of field f at *p into *v, case-insensitively.
 * What follows the name is left to the caller, which accepts only '-',
 * '/', ',' or the end of the field there, so "monday" is rejected. */
static int read_name(const char **p, const char *end, const struct field *f, int *v)
{
    const char *s = *p;
    if (end - s < 3)
        return -EINVAL;
    for (int i = 0; i < f->nnames; i++) {
        const char *name = f->names[i];
        if (lower(s[0]) == name[0] && lower(s[1]) == name[1] && lower(s[2]) == name[2]) {
            *p = s + 3;
            *v = f->base + i;
            return 0;
        }
    }
    return -EINVAL;
}

static int read_value(const char **p, const char *end, const struct field *f, int *v)
{
    if (*p < end && is_digit(**p)) {
        int rc = read_number(p, end, f->hi, v);
        return rc ? rc : (*v < f->lo ? -EINVAL : 0);
    }
    return read_name(p, end, f, v);
}

/* Parses one item of a list ('*', N or N-M, then an optional /STEP) into
 * bits. N alone with a step runs to the field's maximum, as in cronie. */
static int parse_item(const char *s, const char *end, const struct field *f, uint64_t *bits)
{
    int lo = f->lo, hi = f->hi, step = 1;
    bool single = false;
    if (s < end && *s == '*') {
        s++;
    } else {
        if (read_value(&s, end, f, &lo))
            return -EINVAL;
        hi = lo;
        single = true;
        if (s < end && *s == '-') {
            s++;
            if (read_value(&s, end, f, &hi) || hi < lo)
                return -EINVAL;
            single = false;
        }
    }
    if (s < end && *s == '/') {
        s++;
        if (read_number(&s, end, f->hi - f->lo + 1, &step) || step == 0)
            return -EINVAL;
        if (single)
            hi = f->hi;
    }
    if (s != end)
        return -EINVAL;
    for (int v = lo; v <= hi; v += step)
        *bits |= 1ull << v;
    return 0;
}

/* Parses a comma-separated list; an empty item anywhere is an error. */
static int parse_field(const char *s, const char *end, const struct field *f, uint64_t *bits)
{
    *bits = 0;
    for (;;) {
        const char *comma = memchr(s, ',', (size_t)(end - s));
        const char *stop = comma ? comma : end;
        if (stop == s || parse_item(s, stop, f, bits))
            return -EINVAL;
        if (!comma)
            return 0;
        s = comma + 1;
    }
}

/* Splits s into at most 5 whitespace-separated fields; returns how many
 * there are, 6 standing for "more than 5". */
static int split(const char *s, const char *start[5], const char *stop[5])
{
    int n = 0;
    for (;;) {
        while (is_ws(*s))
            s++;
        if (!*s)
            return n;
        if (n == 5)
            return 6;
        start[n] = s;
        while (*s && !is_ws(*s))
            s++;
        stop[n++] = s;
    }
}

static int parse_fields(const char *expr, struct px__cron *c)
{
    const char *start[5], *stop[5];
    uint64_t bits[5];
    if (split(expr, start, stop) != 5)
        return -EINVAL;
    for (int i = 0; i < 5; i++)
        if (parse_field(start[i], stop[i], &fields[i], &bits[i]))
            return -EINVAL;
    c->minutes = bits[0];
    c->hours = (uint32_t)bits[1];
    c->days = (uint32_t)bits[2];
    c->months = (uint16_t)bits[3];
    c->weekdays = (uint8_t)((bits[4] | bits[4] >> 7) & 0x7f);
    c->flags = (uint8_t)((*start[2] == '*' ? PX__CRON_DOM_STAR : 0) |
                         (*start[4] == '*' ? PX__CRON_DOW_STAR : 0));
    return 0;
}

/* Shortcuts are matched exactly (lower case, as cronie does), with only
 * whitespace allowed after them. */
static int parse_shortcut(const char *s, struct px__cron *c)
{
    size_t n = 0;
    while (s[n] && !is_ws(s[n]))
        n++;
    for (size_t i = n; s[i]; i++)
        if (!is_ws(s[i]))
            return -EINVAL;
    for (size_t i = 0; i < sizeof shortcuts / sizeof shortcuts[0]; i++)
        if (strlen(shortcuts[i].name) == n && !memcmp(s, shortcuts[i].name, n))
            return parse_fields(shortcuts[i].expr, c);
    return -EINVAL;
}

int px__cron_parse(const char *expr, struct px__cron *out)
{
    struct px__cron c = {0};
    if (!expr || !out)
        return -EINVAL;
    while (is_ws(*expr))
        expr++;
    int rc = *expr == '@' ? parse_shortcut(expr, &c) : parse_fields(expr, &c);
    if (rc == 0)
        *out = c;
    return rc;
}

/* ---- Civil dates ---- */

static int64_t floordiv(int64_t a, int64_t b)
{
    return a / b - (a % b < 0);
}

static int64_t ceil60(int64_t t)
{
    return -floordiv(-t, 60) * 60;
}

/* Days since 1970-01-01 of a proleptic Gregorian date; Howard Hinnant's
 * days_from_civil, valid for any year an int64 day count can hold. */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = floordiv(y, 400);
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

struct civil {
    int64_t y;
    int m, d;
};

static struct civil civil_from_days(int64_t z)
{
    z += 719468;
    int64_t era = floordiv(z, 146097);
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    struct civil c;
    c.d = (int)(doy - (153 * mp + 2) / 5 + 1);
    c.m = (int)(mp < 10 ? mp + 3 : mp - 9);
    c.y = yoe + era * 400 + (c.m <= 2);
    return c;
}

/* ---- Matching in local time ---- */

/* The first set bit of mask at or above from and below n, or -1. */
static int next_bit(uint64_t mask, int from, int n)
{
    for (int i = from; i < n; i++)
        if (mask >> i & 1)
            return i;
    return -1;
}

/* The standard cron day rule: with either day field unrestricted both
 * must match (the '*' one always does), otherwise either may. */
static bool day_matches(const struct px__cron *c, int mday, int wday)
{
    bool dom = c->days >> mday & 1, dow = c->weekdays >> wday & 1;
    if (c->flags & (PX__CRON_DOM_STAR | PX__CRON_DOW_STAR))
        return dom && dow;
    return dom || dow;
}

/* The first local minute at or after lm (minutes since the local epoch)
 * that may match: lm itself if it matches, else the first matching minute
 * of the day, or the start of the next day or month, where the search
 * resumes. Never before lm, so each call makes progress. */
static int64_t next_local(const struct px__cron *c, int64_t lm)
{
    int64_t day = floordiv(lm, 1440);
    int rest = (int)(lm - day * 1440), h = rest / 60, m = rest % 60;
    struct civil cv = civil_from_days(day);
    if (!(c->months >> cv.m & 1))
        return days_from_civil(cv.y + (cv.m == 12), cv.m % 12 + 1, 1) * 1440;
    if (!day_matches(c, cv.d, (int)(day + 4 - floordiv(day + 4, 7) * 7)))
        return (day + 1) * 1440;
    int nm = next_bit(c->minutes, m, 60);
    if ((c->hours >> h & 1) && nm >= 0)
        return day * 1440 + h * 60 + nm;
    int nh = next_bit(c->hours, h + 1, 24);
    if (nh < 0)
        return (day + 1) * 1440;
    return day * 1440 + nh * 60 + next_bit(c->minutes, 0, 60);
}

/* A struct that px__cron_parse could have produced: each field non-empty
 * and within range. Checked so that next_local always finds a minute. */
static bool cron_ok(const struct px__cron *c)
{
    return c->minutes && !(c->minutes >> 60) && c->hours && !(c->hours >> 24) && c->days &&
           !(c->days & 1) && c->months && !(c->months & ~0x1ffe) && c->weekdays &&
           !(c->weekdays & 0x80) && !(c->flags & ~(PX__CRON_DOM_STAR | PX__CRON_DOW_STAR));
}

/* ---- Zones ---- */

struct zone {
    unsigned char *buf;         /* the file; NULL for UTC */
    const unsigned char *times; /* n transition times, tsize bytes each */
    const unsigned char *idx;   /* n type indices */
    const unsigned char *types; /* 6 bytes each: utoff, isdst, desigidx */
    uint32_t n;
    int tsize;
    int32_t off0; /* offset before the first transition */
};

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Two's complement without implementation-defined conversions. */
static int64_t to_signed(uint64_t u, int bits)
{
    uint64_t sign = 1ull << (bits - 1);
    return u & sign ? -(int64_t)((~u & (sign - 1)) + 1) : (int64_t)u;
}

static int64_t raw_time(const struct zone *z, uint32_t i)
{
    const unsigned char *p = z->times + (size_t)i * (size_t)z->tsize;
    if (z->tsize == 4)
        return to_signed(be32(p), 32);
    return to_signed((uint64_t)be32(p) << 32 | be32(p + 4), 64);
}

/* Transition i, clamped so that arithmetic on it near the ends of int64
 * cannot overflow; no cron search reaches that far. */
static int64_t trans(const struct zone *z, uint32_t i)
{
    int64_t t = raw_time(z, i);
    return t > FAR ? FAR : t < -FAR ? -FAR : t;
}

static int32_t type_off(const struct zone *z, unsigned type)
{
    return (int32_t)to_signed(be32(z->types + 6 * type), 32);
}

/* Segment k's offset: the type of the transition that opened it. */
static int32_t seg_off(const struct zone *z, uint32_t k)
{
    return k == 0 ? z->off0 : type_off(z, z->idx[k - 1]);
}

/* The segment holding t: the number of transitions at or before t. */
static uint32_t seg_find(const struct zone *z, int64_t t)
{
    uint32_t lo = 0, hi = z->n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (trans(z, mid) <= t)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

struct counts {
    uint32_t isut, isstd, leap, time, type, chars;
};

static struct counts read_counts(const unsigned char *h)
{
    return (struct counts){be32(h + 20), be32(h + 24), be32(h + 28),
                           be32(h + 32), be32(h + 36), be32(h + 40)};
}

/* Size of a data block, in 64 bits so that no count can overflow it. */
static uint64_t block_size(const struct counts *c, int tsize)
{
    return (uint64_t)c->time * (uint64_t)(tsize + 1) + (uint64_t)c->type * 6 + c->chars +
           (uint64_t)c->leap * (uint64_t)(tsize + 4) + c->isstd + c->isut;
}

static bool header_ok(const unsigned char *h, const struct counts *c)
{
    return !memcmp(h, "TZif", 4) && (h[4] == 0 || h[4] >= '2') && c->type != 0 && c->chars != 0 &&
           (c->isut == 0 || c->isut == c->type) && (c->isstd == 0 || c->isstd == c->type);
}

/* Checks the block's types and transitions and picks off0: the first
 * non-DST type, or type 0 if all are DST (the rule zic and glibc apply to
 * times before the first transition). */
static int block_check(struct zone *z, const struct counts *c)
{
    int off0 = -1;
    for (uint32_t i = 0; i < c->type; i++) {
        const unsigned char *t = z->types + 6 * (size_t)i;
        int64_t off = to_signed(be32(t), 32);
        if (off < MIN_UTOFF || off > MAX_UTOFF || t[4] > 1 || t[5] >= c->chars)
            return -EINVAL;
        if (off0 < 0 && t[4] == 0)
            off0 = (int)i;
    }
    for (uint32_t i = 0; i < z->n; i++)
        if (z->idx[i] >= c->type || (i > 0 && raw_time(z, i) <= raw_time(z, i - 1)))
            return -EINVAL;
    z->off0 = type_off(z, off0 < 0 ? 0 : (unsigned)off0);
    return 0;
}

static void block_use(struct zone *z, const unsigned char *data, const struct counts *c, int tsize)
{
    z->n = c->time;
    z->tsize = tsize;
    z->times = data;
    z->idx = data + (size_t)c->time * (size_t)tsize;
    z->types = z->idx + c->time;
}

/* A version 2+ file ends with a footer: a POSIX TZ string between two
 * newlines. It is not interpreted (see cron.h), only required to be there,
 * so that a file cut short anywhere is rejected. */
static bool footer_ok(const unsigned char *p, size_t len)
{
    return len >= 2 && p[0] == '\n' && memchr(p + 1, '\n', len - 1);
}

/* Parses a TZif file, preferring the 64-bit block of version 2+ files. */
static int tzif_parse(struct zone *z, size_t len)
{
    const unsigned char *b = z->buf;
    if (len < TZIF_HDR)
        return -EINVAL;
    struct counts c1 = read_counts(b);
    uint64_t end1 = TZIF_HDR + block_size(&c1, 4);
    if (!header_ok(b, &c1) || end1 > len)
        return -EINVAL;
    if (b[4] == 0) {
        block_use(z, b + TZIF_HDR, &c1, 4);
        return block_check(z, &c1);
    }
    if (len - end1 < TZIF_HDR)
        return -EINVAL;
    const unsigned char *h2 = b + end1;
    struct counts c2 = read_counts(h2);
    uint64_t end2 = end1 + TZIF_HDR + block_size(&c2, 8);
    if (!header_ok(h2, &c2) || h2[4] < '2' || end2 > len || !footer_ok(b + end2, len - end2))
        return -EINVAL;
    block_use(z, h2 + TZIF_HDR, &c2, 8);
    return block_check(z, &c2);
}

/* Zone names are relative paths of plain components. The allowed
 * characters exclude '.', so no "." or ".." component can climb out of
 * the zone directory; a leading '/' would leave it too. */
static bool name_ok(const char *tz)
{
    size_t n = strlen(tz);
    if (n > 255 || tz[0] == '/' || tz[n - 1] == '/')
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = tz[i];
        bool alnum = is_digit(ch) || (lower(ch) >= 'a' && lower(ch) <= 'z');
        if (!alnum && ch != '_' && ch != '+' && ch != '-' && ch != '/')
            return false;
        if (ch == '/' && tz[i + 1] == '/')
            return false;
    }
    return true;
}

/* Reads a whole regular file. O_NONBLOCK keeps a FIFO planted under the
 * zone directory from blocking the caller; fstat then rejects it. */
static int read_file(const char *path, unsigned char **buf, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0)
        return -EINVAL;
    struct stat st;
    int rc = -EINVAL;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size <= MAX_TZIF) {
        size_t want = (size_t)st.st_size, got = 0;
        *buf = malloc(want ? want : 1);
        rc = *buf ? 0 : -ENOMEM;
        while (rc == 0 && got < want) {
            ssize_t r = read(fd, *buf + got, want - got);
            if (r > 0)
                got += (size_t)r;
            else if (r == 0 || errno != EINTR)
                break;
        }
        *len = got;
    }
    close(fd);
    return rc;
}

static bool is_utc(const char *tz)
{
    return !tz || !*tz || !strcmp(tz, "UTC");
}

/* Loads zone tz; the caller frees z->buf. UTC is one segment of offset 0. */
static int zone_load(const char *tz, struct zone *z)
{
    *z = (struct zone){0};
    if (is_utc(tz))
        return 0;
    if (!name_ok(tz))
        return -EINVAL;
    const char *dir = getenv("TZDIR");
    char path[4096];
    int n = snprintf(path, sizeof path, "%s/%s", dir && *dir ? dir : DEFAULT_TZDIR, tz);
    if (n < 0 || (size_t)n >= sizeof path)
        return -EINVAL;
    size_t len = 0;
    int rc = read_file(path, &z->buf, &len);
    if (rc == 0)
        rc = tzif_parse(z, len);
    if (rc) {
        free(z->buf);
        z->buf = NULL;
    }
    return rc;
}

int px__tz_check(const char *tz)
{
    struct zone z;
    int rc = zone_load(tz, &z);
    free(z.buf);
    return rc;
}

/* ---- Search ---- */

/* Whether local minute lm, seen at UTC t in segment k, was already shown
 * by an earlier UTC minute (a repeat after clocks went back); if so, *last
 * is the last local minute of that earlier run, so that the search can
 * skip past it. Only segments ending within WINDOW of t can hold lm. */
static bool shown_before(const struct zone *z, uint32_t k, int64_t t, int64_t lm, int64_t *last)
{
    for (uint32_t j = k; j-- > 0;) {
        int64_t end = trans(z, j), o = seg_off(z, j);
        if (end <= t - WINDOW)
            return false;
        int64_t first_t = j == 0 ? 0 : ceil60(trans(z, j - 1)), last_t = ceil60(end) - 60;
        if (j > 0 && first_t > last_t)
            continue;
        int64_t hi = floordiv(last_t + o, 60);
        if ((j == 0 || floordiv(first_t + o, 60) <= lm) && lm <= hi) {
            *last = hi;
            return true;
        }
    }
    return false;
}

/* The UTC minute at which to resume for local minute target, staying in
 * segment k (offset o, ending at end): past the segment's end the offset
 * changes, so the search goes on from there instead. */
static int64_t resume_at(const struct zone *z, uint32_t k, int64_t target, int64_t o)
{
    int64_t t = ceil60(target * 60 - o);
    if (k < z->n && t >= trans(z, k))
        t = ceil60(trans(z, k));
    return t;
}

/* The first UTC minute from t (included) to limit whose local time
 * matches c and is shown for the first time. */
static int search(const struct px__cron *c, const struct zone *z, int64_t t, int64_t limit,
                  int64_t *found)
{
    while (t <= limit) {
        uint32_t k = seg_find(z, t);
        int64_t o = seg_off(z, k), lm = floordiv(t + o, 60), last;
        int64_t target = next_local(c, lm);
        if (target == lm) {
            if (!shown_before(z, k, t, lm, &last)) {
                *found = t;
                return 0;
            }
            target = last + 1;
        }
        t = resume_at(z, k, target, o);
    }
    return -ERANGE;
}

int px__cron_next(const struct px__cron *c, const char *tz, uint64_t after_ns, uint64_t *next_ns)
{
    if (!c || !next_ns || !cron_ok(c))
        return -EINVAL;
    struct zone z;
    int rc = zone_load(tz, &z);
    if (rc)
        return rc;
    int64_t from = (int64_t)(after_ns / NS_PER_S / 60) * 60 + 60, t = 0;
    rc = search(c, &z, from, (int64_t)(after_ns / NS_PER_S) + LIMIT_S, &t);
    free(z.buf);
    if (rc == 0 && (uint64_t)t > UINT64_MAX / NS_PER_S)
        rc = -ERANGE;
    if (rc == 0)
        *next_ns = (uint64_t)t * NS_PER_S;
    return rc;
}

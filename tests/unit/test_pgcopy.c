/*
 * test_pgcopy.c -- the COPY BINARY parser (lake/pgcopy.c) on byte streams
 * built here by hand from PostgreSQL's documented format: the type mapping,
 * every kind of field with NULLs and extremes (each value checked through
 * the writer's statistics of a one-row file: min = max = the value), rows
 * fed in every possible chunking, and malformed input -- truncation at
 * every byte, garbage, wrong counts and lengths, infinities, NaN -- which
 * must be an error with a message, never a crash.
 */
#include "harness.h"
#include "parquet.h"
#include "pgcopy.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>

/* ------------------------------------------------------------ stream builder */

typedef struct bld {
    uint8_t b[4096];
    size_t n;
} bld;

static void put(bld *s, const void *p, size_t n) { memcpy(s->b + s->n, p, n); s->n += n; }
static void u16(bld *s, uint16_t v) { uint8_t b[2] = {(uint8_t)(v >> 8), (uint8_t)v}; put(s, b, 2); }
static void u32(bld *s, uint32_t v) { u16(s, (uint16_t)(v >> 16)); u16(s, (uint16_t)v); }
static void u64(bld *s, uint64_t v) { u32(s, (uint32_t)(v >> 32)); u32(s, (uint32_t)v); }
static void header(bld *s) { put(s, "PGCOPY\n\377\r\n\0", 11); u32(s, 0); u32(s, 0); }
static void trailer(bld *s) { u16(s, 0xffff); }
static void fnull(bld *s) { u32(s, 0xffffffffu); }

/* ------------------------------------------------------------ sink */

static int null_sink(void *arg, const void *buf, size_t len)
{
    (void)buf;
    *(size_t *)arg += len;
    return 0;
}

/* A one-column table of OID/TYPMOD: parse S (fed in pieces of CHUNK bytes,
 * 0: whole); the stats in *ST, rows in *ROWS; returns the parser's result
 * (feed or finish), message in MSG. */
static int run1(uint32_t oid, int32_t typmod, const bld *s, size_t chunk, pq_stats *st, pq_value *minv,
                uint64_t *rows, char *msg)
{
    pgcopy_col col;
    pq_column pc;
    const char *note;
    pgcopy_map("c", oid, typmod, 0, 0, &col, &pc, &note);
    size_t total = 0;
    pq_writer *w;
    int rc = pq_open(&pc, 1, NULL, null_sink, &total, &w);
    if (rc) { pq_free(w); return -100; }
    pgcopy *p;
    const char *names[1] = {"c"};
    if (pgcopy_new(&col, names, 1, w, &p)) { pq_free(w); return -101; }
    if (!chunk) chunk = s->n ? s->n : 1;
    for (size_t off = 0; off < s->n && !rc; off += chunk)
        rc = pgcopy_feed(p, s->b + off, s->n - off < chunk ? s->n - off : chunk);
    if (!rc) rc = pgcopy_finish(p);
    if (!rc) rc = pq_finish(w);
    *rows = pgcopy_rows(p);
    snprintf(msg, 256, "%s", pgcopy_error(p));
    if (st) {
        pq_stats_get(w, 0, st);
        if (minv) {
            *minv = st->min;
            static uint8_t copy[64];
            if (st->min.bytes && st->min.len <= sizeof copy) {
                memcpy(copy, st->min.bytes, st->min.len);
                minv->bytes = copy;
            }
        }
    }
    pgcopy_free(p);
    pq_free(w);
    return rc;
}

/* One row of one field F (LEN bytes, or NULL for a NULL) in a stream. */
static void one_row(bld *s, const void *f, int32_t len)
{
    s->n = 0;
    header(s);
    u16(s, 1);
    if (len < 0) fnull(s);
    else { u32(s, (uint32_t)len); put(s, f, (size_t)len); }
    trailer(s);
}

static int32_t num_typmod(int p, int sc) { return ((p << 16) | sc) + 4; }

/* A numeric field: SIGN, WEIGHT, DSCALE, digits. */
static size_t numeric(uint8_t *out, uint16_t sign, int16_t weight, int16_t dscale, int nd, const int *digits)
{
    bld s = {.n = 0};
    u16(&s, (uint16_t)nd);
    u16(&s, (uint16_t)weight);
    u16(&s, sign);
    u16(&s, (uint16_t)dscale);
    for (int i = 0; i < nd; i++) u16(&s, (uint16_t)digits[i]);
    memcpy(out, s.b, s.n);
    return s.n;
}

/* ------------------------------------------------------------ cases */

static void test_map(void)
{
    pgcopy_col c;
    pq_column pc;
    const char *note;
    pgcopy_map("a", PGCOPY_OID_INT2, -1, 0, 0, &c, &pc, &note);
    CHECK(c.kind == PGCOPY_INT16 && pc.type == PQ_INT32 && pc.logical == PQ_INT16 && !strcmp(c.spark, "short") && !note);
    pgcopy_map("a", PGCOPY_OID_INT8, -1, 0, 0, &c, &pc, &note);
    CHECK(c.kind == PGCOPY_INT64 && !strcmp(c.spark, "long") && !c.cast_text);
    pgcopy_map("a", PGCOPY_OID_NUMERIC, num_typmod(10, 2), 0, 0, &c, &pc, &note);
    CHECK(c.kind == PGCOPY_NUMERIC && pc.type == PQ_INT64 && pc.precision == 10 && pc.scale == 2 &&
          !strcmp(c.spark, "decimal(10,2)") && !note);
    pgcopy_map("a", PGCOPY_OID_NUMERIC, num_typmod(38, 0), 0, 0, &c, &pc, &note);
    CHECK(pc.type == PQ_FIXED_LEN_BYTE_ARRAY && pc.length == 16);
    pgcopy_map("a", PGCOPY_OID_NUMERIC, num_typmod(5, 5), 0, 0, &c, &pc, &note);
    CHECK(pc.type == PQ_INT32 && c.scale == 5);
    pgcopy_map("a", PGCOPY_OID_NUMERIC, -1, 0, 0, &c, &pc, &note);
    CHECK(c.kind == PGCOPY_TEXT && c.cast_text && note && !strcmp(c.spark, "string"));
    pgcopy_map("a", PGCOPY_OID_NUMERIC, num_typmod(39, 0), 0, 0, &c, &pc, &note);
    CHECK(c.cast_text && note);
    pgcopy_map("a", PGCOPY_OID_UUID, -1, 0, 0, &c, &pc, &note);
    CHECK(c.kind == PGCOPY_TEXT && c.cast_text && !note && pc.logical == PQ_STRING);
    pgcopy_map("a", 99999, -1, 1, 0, &c, &pc, &note);
    CHECK(c.cast_text && !note);          /* an array: documented */
    pgcopy_map("a", 99999, -1, 0, 0, &c, &pc, &note);
    CHECK(c.cast_text && note);           /* unknown: warned */
    pgcopy_map("a", PGCOPY_OID_TIMESTAMPTZ, -1, 0, 0, &c, &pc, &note);
    CHECK(c.kind == PGCOPY_TIMESTAMP && pc.logical == PQ_TIMESTAMP && !strcmp(c.spark, "timestamp"));
    pgcopy_map("a", PGCOPY_OID_BPCHAR, 14, 0, 0, &c, &pc, &note);
    CHECK(c.kind == PGCOPY_TEXT && !c.cast_text);
    pgcopy_map("a", PGCOPY_OID_BYTEA, -1, 0, 0, &c, &pc, &note);
    CHECK(c.kind == PGCOPY_BYTEA && !strcmp(c.spark, "binary"));
}

/* The value of a one-row stream of field F through column OID/TYPMOD. */
static int value1(uint32_t oid, int32_t typmod, const void *f, int32_t len, pq_stats *st, pq_value *v, char *msg)
{
    bld s;
    uint64_t rows;
    one_row(&s, f, len);
    return run1(oid, typmod, &s, 0, st, v, &rows, msg);
}

static void test_values(void)
{
    pq_stats st;
    pq_value v;
    char msg[256];
    uint8_t b[64];

    b[0] = 0x80; b[1] = 0x00;
    CHECK(value1(PGCOPY_OID_INT2, -1, b, 2, &st, &v, msg) == 0 && v.i32 == -32768);
    b[0] = 0x7f; b[1] = 0xff;
    CHECK(value1(PGCOPY_OID_INT2, -1, b, 2, &st, &v, msg) == 0 && v.i32 == 32767);
    uint8_t i4[4] = {0x80, 0, 0, 0};
    CHECK(value1(PGCOPY_OID_INT4, -1, i4, 4, &st, &v, msg) == 0 && v.i32 == INT32_MIN);
    uint8_t i8[8] = {0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    CHECK(value1(PGCOPY_OID_INT8, -1, i8, 8, &st, &v, msg) == 0 && v.i64 == INT64_MAX);
    uint8_t m1[8] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe};
    CHECK(value1(PGCOPY_OID_INT8, -1, m1, 8, &st, &v, msg) == 0 && v.i64 == -2);
    uint8_t f4[4] = {0x3f, 0xc0, 0, 0};   /* 1.5f */
    CHECK(value1(PGCOPY_OID_FLOAT4, -1, f4, 4, &st, &v, msg) == 0 && v.f32 == 1.5f);
    uint8_t f8[8] = {0xc0, 0x04, 0, 0, 0, 0, 0, 0};   /* -2.5 */
    CHECK(value1(PGCOPY_OID_FLOAT8, -1, f8, 8, &st, &v, msg) == 0 && v.f64 == -2.5);
    uint8_t nan8[8] = {0x7f, 0xf8, 0, 0, 0, 0, 0, 0};
    CHECK(value1(PGCOPY_OID_FLOAT8, -1, nan8, 8, &st, &v, msg) == 0 && st.nan_count == 1 && !st.has_min_max);
    uint8_t t = 1;
    CHECK(value1(PGCOPY_OID_BOOL, -1, &t, 1, &st, &v, msg) == 0 && v.i32 == 1);
    t = 2;
    CHECK(value1(PGCOPY_OID_BOOL, -1, &t, 1, &st, &v, msg) == -EINVAL && strstr(msg, "boolean"));
    const char *txt = "h\xc3\xa9llo \xe2\x82\xac";
    CHECK(value1(PGCOPY_OID_TEXT, -1, txt, (int32_t)strlen(txt), &st, &v, msg) == 0 &&
          v.len == strlen(txt) && !memcmp(v.bytes, txt, v.len));
    CHECK(value1(PGCOPY_OID_VARCHAR, -1, "", 0, &st, &v, msg) == 0 && st.has_min_max && v.len == 0 && st.null_count == 0);
    CHECK(value1(PGCOPY_OID_TEXT, -1, NULL, -1, &st, &v, msg) == 0 && st.null_count == 1 && !st.has_min_max);
    uint8_t by[3] = {0, 0xff, 0x10};
    CHECK(value1(PGCOPY_OID_BYTEA, -1, by, 3, &st, &v, msg) == 0 && v.len == 3 && !memcmp(v.bytes, by, 3));
    /* date: 2000-01-01 is 0 -> 10957; -1 -> 10956 */
    uint8_t d0[4] = {0, 0, 0, 0}, dm1[4] = {0xff, 0xff, 0xff, 0xff};
    CHECK(value1(PGCOPY_OID_DATE, -1, d0, 4, &st, &v, msg) == 0 && v.i32 == 10957);
    CHECK(value1(PGCOPY_OID_DATE, -1, dm1, 4, &st, &v, msg) == 0 && v.i32 == 10956);
    uint8_t dinf[4] = {0x7f, 0xff, 0xff, 0xff}, dninf[4] = {0x80, 0, 0, 0};
    CHECK(value1(PGCOPY_OID_DATE, -1, dinf, 4, &st, &v, msg) == -ERANGE && strstr(msg, "infinity"));
    CHECK(value1(PGCOPY_OID_DATE, -1, dninf, 4, &st, &v, msg) == -ERANGE && strstr(msg, "-infinity"));
    /* timestamp: 1 microsecond after 2000-01-01 */
    uint8_t ts[8] = {0, 0, 0, 0, 0, 0, 0, 1};
    CHECK(value1(PGCOPY_OID_TIMESTAMPTZ, -1, ts, 8, &st, &v, msg) == 0 && v.i64 == 946684800000001LL);
    uint8_t tsn[8] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    CHECK(value1(PGCOPY_OID_TIMESTAMP, -1, tsn, 8, &st, &v, msg) == 0 && v.i64 == 946684799999999LL);
    uint8_t tsinf[8] = {0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    CHECK(value1(PGCOPY_OID_TIMESTAMP, -1, tsinf, 8, &st, &v, msg) == -ERANGE && strstr(msg, "infinity") &&
          strstr(msg, "column \"c\", row 1"));
    CHECK(value1(PGCOPY_OID_TIMESTAMP, -1, ts, 4, &st, &v, msg) == -EINVAL && strstr(msg, "malformed"));

    /* numeric(10,2): 12345.67 = digits [1, 2345, 6700] weight 1 */
    size_t n = numeric(b, 0, 1, 2, 3, (int[]){1, 2345, 6700});
    CHECK(value1(PGCOPY_OID_NUMERIC, num_typmod(10, 2), b, (int32_t)n, &st, &v, msg) == 0 && v.i64 == 1234567);
    n = numeric(b, 0x4000, 1, 2, 3, (int[]){1, 2345, 6700});
    CHECK(value1(PGCOPY_OID_NUMERIC, num_typmod(10, 2), b, (int32_t)n, &st, &v, msg) == 0 && v.i64 == -1234567);
    /* numeric(5,3) 0.001 = digit [10] weight -1 -> unscaled 1 (INT32) */
    n = numeric(b, 0, -1, 3, 1, (int[]){10});
    CHECK(value1(PGCOPY_OID_NUMERIC, num_typmod(5, 3), b, (int32_t)n, &st, &v, msg) == 0 && v.i32 == 1);
    /* zero: no digits */
    n = numeric(b, 0, 0, 0, 0, NULL);
    CHECK(value1(PGCOPY_OID_NUMERIC, num_typmod(4, 0), b, (int32_t)n, &st, &v, msg) == 0 && v.i32 == 0);
    /* 9999 in numeric(4,0) fits, 10000 does not */
    n = numeric(b, 0, 0, 0, 1, (int[]){9999});
    CHECK(value1(PGCOPY_OID_NUMERIC, num_typmod(4, 0), b, (int32_t)n, &st, &v, msg) == 0 && v.i32 == 9999);
    n = numeric(b, 0, 1, 0, 1, (int[]){1});
    CHECK(value1(PGCOPY_OID_NUMERIC, num_typmod(4, 0), b, (int32_t)n, &st, &v, msg) == -ERANGE && strstr(msg, "numeric(4,0)"));
    /* too many decimal places */
    n = numeric(b, 0, -1, 4, 1, (int[]){1});
    CHECK(value1(PGCOPY_OID_NUMERIC, num_typmod(6, 2), b, (int32_t)n, &st, &v, msg) == -ERANGE);
    /* numeric(38,0): 10^37 = digit [10] weight 9 -> 16-byte big-endian */
    n = numeric(b, 0, 9, 0, 1, (int[]){10});
    CHECK(value1(PGCOPY_OID_NUMERIC, num_typmod(38, 0), b, (int32_t)n, &st, &v, msg) == 0 && v.len == 16);
    if (v.len == 16) {
        unsigned __int128 x = 0;
        for (int i = 0; i < 16; i++) x = x << 8 | v.bytes[i];
        unsigned __int128 want = 1;
        for (int i = 0; i < 37; i++) want *= 10;
        CHECK(x == want);
    }
    /* -1 in numeric(20,0): all 0xff in 9 bytes */
    n = numeric(b, 0x4000, 0, 0, 1, (int[]){1});
    CHECK(value1(PGCOPY_OID_NUMERIC, num_typmod(20, 0), b, (int32_t)n, &st, &v, msg) == 0 && v.len == 9 &&
          v.bytes[0] == 0xff && v.bytes[8] == 0xff);
    n = numeric(b, 0xC000, 0, 0, 0, NULL);
    CHECK(value1(PGCOPY_OID_NUMERIC, num_typmod(10, 2), b, (int32_t)n, &st, &v, msg) == -ERANGE && strstr(msg, "NaN"));
    n = numeric(b, 0, 0, 0, 1, (int[]){10000});
    CHECK(value1(PGCOPY_OID_NUMERIC, num_typmod(10, 2), b, (int32_t)n, &st, &v, msg) == -EINVAL);
    CHECK(value1(PGCOPY_OID_NUMERIC, num_typmod(10, 2), b, 9, &st, &v, msg) == -EINVAL);   /* length mismatch */
    CHECK(value1(PGCOPY_OID_NUMERIC, num_typmod(10, 2), b, 3, &st, &v, msg) == -EINVAL);
}

/* Several rows, three columns, fed in every chunk size. */
static void test_rows_chunked(void)
{
    bld s = {.n = 0};
    header(&s);
    for (int r = 0; r < 5; r++) {
        u16(&s, 3);
        if (r == 2) fnull(&s); else { u32(&s, 4); u32(&s, (uint32_t)(r * 1000 - 2000)); }
        u32(&s, (uint32_t)r); put(&s, "abcd", (size_t)r);
        if (r == 3) fnull(&s); else { u32(&s, 8); u64(&s, (uint64_t)r); }
    }
    trailer(&s);
    pgcopy_col cols[3];
    pq_column pcs[3];
    const char *note, *names[3] = {"a", "b", "c"};
    pgcopy_map("a", PGCOPY_OID_INT4, -1, 0, 0, &cols[0], &pcs[0], &note);
    pgcopy_map("b", PGCOPY_OID_TEXT, -1, 0, 0, &cols[1], &pcs[1], &note);
    pgcopy_map("c", PGCOPY_OID_TIMESTAMP, -1, 0, 0, &cols[2], &pcs[2], &note);
    int all_ok = 1;
    for (size_t chunk = 1; chunk <= s.n; chunk++) {
        size_t total = 0;
        pq_writer *w;
        pgcopy *p;
        int rc = pq_open(pcs, 3, NULL, null_sink, &total, &w);
        if (!rc) rc = pgcopy_new(cols, names, 3, w, &p);
        else p = NULL;
        for (size_t off = 0; off < s.n && !rc; off += chunk)
            rc = pgcopy_feed(p, s.b + off, s.n - off < chunk ? s.n - off : chunk);
        if (!rc) rc = pgcopy_finish(p);
        if (!rc) rc = pq_finish(w);
        pq_stats st0, st2;
        pq_stats_get(w, 0, &st0);
        int good = !rc && pgcopy_rows(p) == 5 && pq_num_rows(w) == 5 && st0.null_count == 1 &&
                   st0.min.i32 == -2000 && st0.max.i32 == 2000;
        pq_stats_get(w, 2, &st2);
        good = good && st2.null_count == 1 && st2.min.i64 == 946684800000000LL;
        if (!good) all_ok = 0;
        pgcopy_free(p);
        pq_free(w);
    }
    CHECK(all_ok);

    /* truncated at every byte: an error naming the truncation, or (cut inside
     * the stream) never success */
    int trunc_ok = 1;
    for (size_t cut = 0; cut < s.n; cut++) {
        bld t = s;
        t.n = cut;
        size_t total = 0;
        pq_writer *w;
        pgcopy *p = NULL;
        int rc = pq_open(pcs, 3, NULL, null_sink, &total, &w);
        if (!rc) rc = pgcopy_new(cols, names, 3, w, &p);
        if (!rc) rc = pgcopy_feed(p, t.b, t.n);
        if (!rc) rc = pgcopy_finish(p);
        if (rc != -EINVAL || !strstr(pgcopy_error(p), "truncated")) trunc_ok = 0;
        pgcopy_free(p);
        pq_free(w);
    }
    CHECK(trunc_ok);

    /* bytes after the trailer */
    bld t = s;
    put(&t, "x", 1);
    size_t total = 0;
    pq_writer *w;
    pgcopy *p;
    pq_open(pcs, 3, NULL, null_sink, &total, &w);
    pgcopy_new(cols, names, 3, w, &p);
    CHECK(pgcopy_feed(p, t.b, t.n) == -EINVAL && strstr(pgcopy_error(p), "after the COPY trailer"));
    CHECK(pgcopy_feed(p, "", 0) == -EINVAL);   /* sticky */
    pgcopy_free(p);
    pq_free(w);
}

static void test_bad_streams(void)
{
    bld s;
    uint64_t rows;
    char msg[256];
    pq_stats st;
    /* bad signature */
    s.n = 0;
    put(&s, "PGCOPY\nX", 8);
    CHECK(run1(PGCOPY_OID_INT4, -1, &s, 0, &st, NULL, &rows, msg) == -EINVAL && strstr(msg, "signature"));
    /* OIDs flag */
    s.n = 0;
    put(&s, "PGCOPY\n\377\r\n\0", 11); u32(&s, 1u << 16); u32(&s, 0); trailer(&s);
    CHECK(run1(PGCOPY_OID_INT4, -1, &s, 0, &st, NULL, &rows, msg) == -EINVAL && strstr(msg, "flags"));
    /* header extension is skipped */
    s.n = 0;
    put(&s, "PGCOPY\n\377\r\n\0", 11); u32(&s, 0); u32(&s, 3); put(&s, "abc", 3);
    u16(&s, 1); u32(&s, 4); u32(&s, 7); trailer(&s);
    pq_value v;
    CHECK(run1(PGCOPY_OID_INT4, -1, &s, 1, &st, &v, &rows, msg) == 0 && rows == 1 && v.i32 == 7);
    /* field count not the schema's */
    s.n = 0;
    header(&s); u16(&s, 2); u32(&s, 4); u32(&s, 7); u32(&s, 4); u32(&s, 7); trailer(&s);
    CHECK(run1(PGCOPY_OID_INT4, -1, &s, 0, &st, NULL, &rows, msg) == -EINVAL && strstr(msg, "fields"));
    /* negative length other than -1 */
    s.n = 0;
    header(&s); u16(&s, 1); u32(&s, 0xfffffff0u); trailer(&s);
    CHECK(run1(PGCOPY_OID_TEXT, -1, &s, 0, &st, NULL, &rows, msg) == -EINVAL && strstr(msg, "length"));
    /* huge length: waits for bytes, then truncated */
    s.n = 0;
    header(&s); u16(&s, 1); u32(&s, 0x3fffffffu); put(&s, "ab", 2);
    CHECK(run1(PGCOPY_OID_TEXT, -1, &s, 0, &st, NULL, &rows, msg) == -EINVAL && strstr(msg, "truncated"));
    s.n = 0;
    header(&s); u16(&s, 1); u32(&s, 0x7fffffffu);
    CHECK(run1(PGCOPY_OID_TEXT, -1, &s, 0, &st, NULL, &rows, msg) == -EFBIG);
    /* empty stream */
    s.n = 0;
    CHECK(run1(PGCOPY_OID_TEXT, -1, &s, 0, &st, NULL, &rows, msg) == -EINVAL && strstr(msg, "header"));
    /* an empty table */
    s.n = 0;
    header(&s); trailer(&s);
    CHECK(run1(PGCOPY_OID_TEXT, -1, &s, 0, &st, NULL, &rows, msg) == 0 && rows == 0);
    /* invalid UTF-8 in a text column: the writer's refusal, named */
    one_row(&s, "\xff\xfe", 2);
    CHECK(run1(PGCOPY_OID_TEXT, -1, &s, 0, &st, NULL, &rows, msg) == -EINVAL && strstr(msg, "column \"c\""));

    /* garbage: random bytes after a valid header, for every kind; must not
     * crash, and end in an error or a clean parse */
    static const uint32_t oids[] = {PGCOPY_OID_INT2, PGCOPY_OID_INT4, PGCOPY_OID_INT8, PGCOPY_OID_FLOAT4,
                                    PGCOPY_OID_FLOAT8, PGCOPY_OID_BOOL, PGCOPY_OID_TEXT, PGCOPY_OID_BYTEA,
                                    PGCOPY_OID_NUMERIC, PGCOPY_OID_DATE, PGCOPY_OID_TIMESTAMP};
    uint64_t rng = 88172645463325252ull;
    int crashed_not = 1;
    for (int iter = 0; iter < 20000; iter++) {
        s.n = 0;
        header(&s);
        size_t len = 1 + (size_t)(rng % 200);
        for (size_t i = 0; i < len; i++) {
            rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
            uint8_t c = (uint8_t)rng;
            /* bias toward small field counts and lengths */
            if (i < 2 || (i % 7) < 3) c = (uint8_t)(rng % 3 == 0 ? 0 : rng % 3 == 1 ? 1 : c);
            s.b[s.n++] = c;
        }
        uint32_t oid = oids[rng % (sizeof oids / sizeof oids[0])];
        int rc = run1(oid, oid == PGCOPY_OID_NUMERIC ? num_typmod(12, 3) : -1, &s, 1 + rng % 9, &st, NULL, &rows, msg);
        if (rc && !msg[0]) crashed_not = 0;
    }
    CHECK(crashed_not);
}

int main(void)
{
    test_map();
    test_values();
    test_rows_chunked();
    test_bad_streams();
    return harness_done();
}

/*
 * test_parquet.c -- the Parquet writer (lake/parquet.c).
 *
 * Definition-level runs are checked byte for byte against values worked
 * out by hand from the specification.  Files are written to a memory sink
 * and checked against the model of pq_model.c, which reads them back with
 * pq_reader.h, a reader written apart from the writer: magic at both
 * ends, footer length, schema elements, offsets and sizes of every chunk,
 * every value of every cell, and each chunk's statistics against ones
 * computed from the rows put in.  Cases: every type with NULLs and
 * extremes, several row groups and pages, empty files, bad schemas and
 * cells, a failing sink, a bound on what the writer holds, and random
 * schemas and rows.  The Thrift encoder has test_thrift.c.
 */
#include "harness.h"
#include "parquet.h"
#include "pq_reader.h"
#include "pq_model.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>

static uint64_t rng = 0x9E3779B97F4A7C15ull;

/* xorshift64: deterministic random numbers. */
static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* ------------------------------------------------------------ definition levels */

/* One INT32 column whose cells are NULL where PATTERN[i] is 0: the first
 * page's levels section must be exactly WANT. */
static void check_levels(const char *what, const uint8_t *pattern, size_t n, const uint8_t *want, size_t wlen)
{
    pq_column col = { .name = "v", .type = PQ_INT32 };
    table t = { .cols = &col, .ncols = 1 };
    membuf m = { 0 };
    pq_writer *w;
    rd_file f;
    size_t groups;

    for (size_t i = 0; i < n; i++) {
        cell *c = table_row(&t);
        c->null = !pattern[i];
        c->i = (int64_t)i;
    }
    CHECK(model_write_table(&t, NULL, &m, &w) == 0);
    CHECK(model_file_matches(&m, &t, &groups) && groups == 1);
    CHECK(rd_open(&f, m.p, m.len) == 0);
    const tnode *cc = &tf(&tf(&f.meta, 4)->kids[0], 1)->kids[0];
    rd_chunk ch;
    CHECK(rd_column(&f, cc, PQ_INT32, 0, &ch) == 0 && ch.npages == 1);
    if (ch.npages == 1) {
        const uint8_t *page = ch.pages[0];
        int same = rd_le32(page) == wlen && memcmp(page + 4, want, wlen) == 0;
        if (!same) {
            fprintf(stderr, "levels for %s:", what);
            for (size_t i = 0; i < rd_le32(page) && i < 40; i++)
                fprintf(stderr, " %02x", page[4 + i]);
            fprintf(stderr, "\n");
        }
        CHECK(same);
    }
    rd_chunk_free(&ch);
    rd_close(&f);
    pq_free(w);
    free(m.p);
    table_free(&t);
}

static void test_levels(void)
{
    uint8_t p[1000];

    memset(p, 1, 10);
    check_levels("all present", p, 10, (const uint8_t[]){ 0x14, 0x01 }, 2);
    memset(p, 0, 10);
    check_levels("all null", p, 10, (const uint8_t[]){ 0x14, 0x00 }, 2);
    for (int i = 0; i < 10; i++)
        p[i] = !(i % 2);
    check_levels("alternating", p, 10, (const uint8_t[]){ 0x05, 0x55, 0x01 }, 3);
    /* 3 present, 20 NULL, 5 present: 8 bit-packed (3 + 5 of the run), RLE 15, 5 bit-packed */
    memset(p, 1, 3);
    memset(p + 3, 0, 20);
    memset(p + 23, 1, 5);
    check_levels("runs", p, 28, (const uint8_t[]){ 0x03, 0x07, 0x1E, 0x00, 0x03, 0x1F }, 6);
    memset(p, 1, 8);
    check_levels("one RLE run of 8", p, 8, (const uint8_t[]){ 0x10, 0x01 }, 2);
    memset(p, 1, 7);
    p[7] = 0;
    check_levels("7 then 1", p, 8, (const uint8_t[]){ 0x03, 0x7F }, 2);
    /* 1 NULL then 600 present: a group of 8, then RLE 593 (varint 0xA2 0x09) */
    p[0] = 0;
    memset(p + 1, 1, 600);
    check_levels("null then run", p, 601, (const uint8_t[]){ 0x03, 0xFE, 0xA2, 0x09, 0x01 }, 5);
    /* 1000 alternating: bit-packed runs of at most 63 groups (504 levels) */
    uint8_t want[2 + 125];
    for (int i = 0; i < 1000; i++)
        p[i] = !(i % 2);
    want[0] = 63 << 1 | 1;
    memset(want + 1, 0x55, 63);
    want[64] = 62 << 1 | 1;
    memset(want + 65, 0x55, 62);
    check_levels("1000 alternating", p, 1000, want, sizeof(want));
}

/* ------------------------------------------------------------ every type */

enum { C_B, C_S16, C_I32, C_I64, C_F, C_D, C_STR, C_BIN, C_DATE, C_TS, C_DEC32, C_DEC64,
       C_DEC128, C_DEC2, C_UUID, C_FIXED, NCOLS_ALL };

static const pq_column all_cols[NCOLS_ALL] = {
    [C_B] = { "b", PQ_BOOLEAN, PQ_NONE, 0, 0, 0 },
    [C_S16] = { "s16", PQ_INT32, PQ_INT16, 0, 0, 0 },
    [C_I32] = { "i32", PQ_INT32, PQ_NONE, 0, 0, 0 },
    [C_I64] = { "i64", PQ_INT64, PQ_NONE, 0, 0, 0 },
    [C_F] = { "f", PQ_FLOAT, PQ_NONE, 0, 0, 0 },
    [C_D] = { "d", PQ_DOUBLE, PQ_NONE, 0, 0, 0 },
    [C_STR] = { "str", PQ_BYTE_ARRAY, PQ_STRING, 0, 0, 0 },
    [C_BIN] = { "bin", PQ_BYTE_ARRAY, PQ_NONE, 0, 0, 0 },
    [C_DATE] = { "date", PQ_INT32, PQ_DATE, 0, 0, 0 },
    [C_TS] = { "ts", PQ_INT64, PQ_TIMESTAMP, 0, 0, 0 },
    [C_DEC32] = { "dec32", PQ_INT32, PQ_DECIMAL, 0, 9, 2 },
    [C_DEC64] = { "dec64", PQ_INT64, PQ_DECIMAL, 0, 18, 4 },
    [C_DEC128] = { "dec128", PQ_FIXED_LEN_BYTE_ARRAY, PQ_DECIMAL, 16, 38, 10 },
    [C_DEC2] = { "dec2", PQ_FIXED_LEN_BYTE_ARRAY, PQ_DECIMAL, 2, 4, 1 },
    [C_UUID] = { "uuid", PQ_FIXED_LEN_BYTE_ARRAY, PQ_UUID, 16, 0, 0 },
    [C_FIXED] = { "fixed \xc3\xa9", PQ_FIXED_LEN_BYTE_ARRAY, PQ_NONE, 3, 0, 0 },
};

/* 10^38 - 1, big-endian in 16 bytes */
static const uint8_t dec38_max[16] = { 0x4B, 0x3B, 0x4C, 0xA8, 0x5A, 0x86, 0xC4, 0x7A,
                                       0x09, 0x8A, 0x22, 0x3F, 0xFF, 0xFF, 0xFF, 0xFF };

static void test_all_types(void)
{
    table t = { .cols = (pq_column *)all_cols, .ncols = NCOLS_ALL };
    static const char utf8[] = "h\xc3\xa9llo w\xc3\xb6rld \xe2\x9c\x93 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x8e\x89";
    uint8_t ff[16], zero[16] = { 0 }, neg1[16];
    char *longstr = malloc(100000);
    membuf m = { 0 };
    pq_writer *w;
    size_t groups;
    cell *r;

    memset(ff, 0xFF, 16);
    memset(neg1, 0xFF, 16);
    memset(longstr, 'x', 100000);

    r = table_row(&t);                                    /* all NULL */
    for (int k = 0; k < NCOLS_ALL; k++)
        r[k].null = 1;

    r = table_row(&t);                                    /* minima */
    r[C_B].i = 1;
    r[C_S16].i = INT16_MIN;
    r[C_I32].i = INT32_MIN;
    r[C_I64].i = INT64_MIN;
    r[C_F].f = -0.0f;
    r[C_D].d = -INFINITY;
    cell_bytes(&r[C_STR], "", 0);
    cell_bytes(&r[C_BIN], "", 0);
    r[C_DATE].i = -719528;                                /* 0000-01-01 */
    r[C_TS].i = INT64_MIN;
    r[C_DEC32].i = -999999999;
    r[C_DEC64].i = -999999999999999999;
    cell_bytes(&r[C_DEC128], neg1, 16);                   /* -1 */
    cell_decimal(&r[C_DEC2], -9999, 2);
    cell_bytes(&r[C_UUID], zero, 16);
    cell_bytes(&r[C_FIXED], zero, 3);

    r = table_row(&t);                                    /* maxima */
    r[C_B].i = 0;
    r[C_S16].i = INT16_MAX;
    r[C_I32].i = INT32_MAX;
    r[C_I64].i = INT64_MAX;
    r[C_F].f = INFINITY;
    r[C_D].d = NAN;
    cell_bytes(&r[C_STR], utf8, strlen(utf8));
    cell_bytes(&r[C_BIN], "\x00\xff\x80", 3);
    r[C_DATE].i = 2932896;                                /* 9999-12-31 */
    r[C_TS].i = INT64_MAX;
    r[C_DEC32].i = 999999999;
    r[C_DEC64].i = 999999999999999999;
    cell_bytes(&r[C_DEC128], dec38_max, 16);
    cell_decimal(&r[C_DEC2], 9999, 2);
    cell_bytes(&r[C_UUID], ff, 16);
    cell_bytes(&r[C_FIXED], ff, 3);

    r = table_row(&t);                                    /* zeros, NaN, a long string */
    r[C_B].i = 1;
    r[C_S16].i = 0;
    r[C_I32].i = 0;
    r[C_I64].i = 0;
    r[C_F].f = NAN;
    r[C_D].d = 0.0;
    cell_bytes(&r[C_STR], longstr, 100000);
    cell_bytes(&r[C_BIN], "\x80", 1);
    r[C_DATE].i = 0;
    r[C_TS].i = 0;
    r[C_DEC32].i = 0;
    r[C_DEC64].i = 0;
    cell_decimal(&r[C_DEC128], -5, 16);
    cell_decimal(&r[C_DEC2], 0, 2);
    cell_bytes(&r[C_UUID], "\x12\x34\x56\x78\x9a\xbc\xde\xf0\x12\x34\x56\x78\x9a\xbc\xde\xf0", 16);
    cell_bytes(&r[C_FIXED], "abc", 3);

    r = table_row(&t);                                    /* some NULL, -0.0 for d */
    r[C_B].null = r[C_I32].null = r[C_BIN].null = r[C_DATE].null = 1;
    r[C_DEC32].null = r[C_DEC2].null = r[C_UUID].null = 1;
    r[C_S16].i = -1;
    r[C_I64].i = -1;
    r[C_F].f = 1.5f;
    r[C_D].d = -0.0;
    cell_bytes(&r[C_STR], "a", 1);
    r[C_TS].i = 1700000000000000;
    r[C_DEC64].i = -1;
    cell_decimal(&r[C_DEC128], INT64_MIN, 16);
    cell_bytes(&r[C_FIXED], "\x01\x02\x03", 3);

    CHECK(model_write_table(&t, NULL, &m, &w) == 0);
    CHECK(model_file_matches(&m, &t, &groups) && groups == 1);
    CHECK(pq_num_rows(w) == 5 && pq_file_size(w) == m.len);
    for (int k = 0; k < NCOLS_ALL; k++)
        CHECK(model_file_stats_match(w, &t, (size_t)k));

    /* the statistics worked out by hand, through pq_stats */
    pq_stats s;
    CHECK(pq_stats_get(w, C_I64, &s) == 0 && s.min.i64 == INT64_MIN && s.max.i64 == INT64_MAX &&
          s.null_count == 1);
    CHECK(pq_stats_get(w, C_F, &s) == 0 && s.nan_count == 1 && s.min.f32 == 0 && signbit(s.min.f32) &&
          isinf(s.max.f32) && s.max.f32 > 0);
    CHECK(pq_stats_get(w, C_D, &s) == 0 && s.nan_count == 1 && isinf(s.min.f64) && s.min.f64 < 0 &&
          s.max.f64 == 0 && !signbit(s.max.f64));
    CHECK(pq_stats_get(w, C_STR, &s) == 0 && s.has_min_max && s.min.len == 0 && s.max.len == 100000);
    CHECK(pq_stats_get(w, C_DEC128, &s) == 0 && s.min.len == 16 &&
          s.min.bytes[0] == 0xFF && s.min.bytes[8] == 0x80 &&        /* INT64_MIN sign-extended */
          memcmp(s.max.bytes, dec38_max, 16) == 0);
    CHECK(pq_stats_get(w, C_DEC2, &s) == 0 && s.min.bytes[0] == 0xD8 && s.min.bytes[1] == 0xF1 &&
          s.max.bytes[0] == 0x27 && s.max.bytes[1] == 0x0F);         /* -9999, 9999 */
    CHECK(pq_stats_get(w, C_B, &s) == 0 && s.min.i32 == 0 && s.max.i32 == 1 && s.null_count == 2);
    CHECK(pq_stats_get(w, NCOLS_ALL, &s) == -EINVAL);

    /* the schema's annotations */
    rd_file f;
    CHECK(rd_open(&f, m.p, m.len) == 0);
    const tnode *schema = tf(&f.meta, 2);
    const tnode *se;
#define SE(k) (&schema->kids[(k) + 1])
    se = SE(C_STR);
    CHECK(ti(se, 6, -1) == 0 && tf(tf(se, 10), 1) && tf(se, 10)->nkids == 1);
    se = SE(C_S16);
    CHECK(ti(se, 6, -1) == 16 && ti(tf(tf(se, 10), 10), 1, 0) == 16 && ti(tf(tf(se, 10), 10), 2, 0) == 1);
    se = SE(C_DATE);
    CHECK(ti(se, 6, -1) == 6 && tf(tf(se, 10), 6));
    se = SE(C_TS);
    CHECK(ti(se, 6, -1) == 10 && ti(tf(tf(se, 10), 8), 1, 0) == 1 &&
          tf(tf(tf(tf(se, 10), 8), 2), 2));                          /* UTC, MICROS */
    se = SE(C_DEC128);
    CHECK(ti(se, 6, -1) == 5 && ti(se, 7, -1) == 10 && ti(se, 8, -1) == 38 && ti(se, 2, -1) == 16 &&
          ti(tf(tf(se, 10), 5), 1, -1) == 10 && ti(tf(tf(se, 10), 5), 2, -1) == 38);
    se = SE(C_DEC32);
    CHECK(ti(se, 6, -1) == 5 && ti(se, 7, -1) == 2 && ti(se, 8, -1) == 9 && ti(se, 1, -1) == 1);
    se = SE(C_UUID);
    CHECK(!tf(se, 6) && tf(tf(se, 10), 14) && ti(se, 2, -1) == 16);
    se = SE(C_BIN);
    CHECK(!tf(se, 6) && !tf(se, 10));
    se = SE(C_I64);
    CHECK(!tf(se, 6) && !tf(se, 10) && ti(se, 1, -1) == 2);
    /* the long string leaves the str chunk without min/max, other columns keep theirs */
    const tnode *ccs = tf(&tf(&f.meta, 4)->kids[0], 1);
    const tnode *st_str = tf(tf(&ccs->kids[C_STR], 3), 12), *st_bin = tf(tf(&ccs->kids[C_BIN], 3), 12);
    CHECK(st_str && !tf(st_str, 5) && !tf(st_str, 6) && ti(st_str, 3, -1) == 1);
    CHECK(st_bin && tf(st_bin, 6) && tf(st_bin, 6)->len == 0 && tf(st_bin, 5)->len == 1);
#undef SE
    rd_close(&f);
    pq_free(w);
    free(m.p);
    free(longstr);
    table_free(&t);
}

/* ------------------------------------------------------------ row groups */

static void test_row_groups(void)
{
    pq_column cols[3] = {
        { .name = "id", .type = PQ_INT64 },
        { .name = "name", .type = PQ_BYTE_ARRAY, .logical = PQ_STRING },
        { .name = "flag", .type = PQ_BOOLEAN },
    };
    table t = { .cols = cols, .ncols = 3 };
    pq_options opt = { .row_group_bytes = 64 << 10, .page_bytes = 4 << 10, .zstd_level = 1 };
    membuf m = { 0 };
    pq_writer *w;
    size_t groups = 0;

    for (int i = 0; i < 20000; i++) {
        cell *r = table_row(&t);
        char name[64];
        int n = snprintf(name, sizeof(name), "name-%d-%llu", i, (unsigned long long)(rnd() % 1000000));
        r[0].i = i * 7 - 50000;
        r[1].null = i % 17 == 0;
        if (!r[1].null)
            cell_bytes(&r[1], name, (size_t)n);
        r[2].null = i % 5 == 0;
        r[2].i = (int64_t)(rnd() & 1);
    }
    CHECK(model_write_table(&t, &opt, &m, &w) == 0);
    CHECK(model_file_matches(&m, &t, &groups));
    CHECK(groups >= 3);
    for (size_t k = 0; k < 3; k++)
        CHECK(model_file_stats_match(w, &t, k));

    /* several pages per chunk */
    rd_file f;
    rd_chunk ch;
    CHECK(rd_open(&f, m.p, m.len) == 0);
    CHECK(rd_column(&f, &tf(&tf(&f.meta, 4)->kids[0], 1)->kids[1], PQ_BYTE_ARRAY, 0, &ch) == 0);
    CHECK(ch.npages > 3);
    rd_chunk_free(&ch);
    rd_close(&f);
    pq_free(w);
    free(m.p);
    table_free(&t);
}

/* What test_files' file_done sees: the sink, the table, the files so far. */
typedef struct files_seen {
    membuf *m;
    const table *t;
    size_t files, rows;           /* finished so far, and their rows */
    size_t fail_at;               /* fail the file_done of this file (1-based; 0: never) */
    int ok;
} files_seen;

/* file_done: the file in the sink holds the next rows of the table,
 * exactly, with the file's own statistics; then empty the sink. */
static int check_file_done(void *arg, pq_writer *w)
{
    files_seen *f = arg;
    table sub = { .cols = f->t->cols, .ncols = f->t->ncols, .cells = f->t->cells + f->rows * f->t->ncols,
                  .rows = (size_t)pq_num_rows(w) };
    size_t groups = 0;

    f->files++;
    if (f->fail_at == f->files)
        return -EIO;
    if (sub.rows == 0 || f->rows + sub.rows > f->t->rows || pq_file_size(w) != f->m->len ||
        !model_file_matches(f->m, &sub, &groups))
        f->ok = 0;
    for (size_t k = 0; k < sub.ncols; k++)
        if (!model_file_stats_match(w, &sub, k))
            f->ok = 0;
    f->rows += sub.rows;
    f->m->len = 0;
    return 0;
}

/* pq_options.file_bytes: a stream cut into files of whole row groups,
 * each a file of its own (footer, rows, statistics); a failing file_done
 * fails the writer. */
static void test_files(void)
{
    pq_column cols[2] = {
        { .name = "id", .type = PQ_INT64 },
        { .name = "name", .type = PQ_BYTE_ARRAY, .logical = PQ_STRING },
    };
    table t = { .cols = cols, .ncols = 2 };
    membuf m = { 0 };
    files_seen f = { .m = &m, .t = &t, .ok = 1 };
    pq_options opt = { .row_group_bytes = 32 << 10, .page_bytes = 4 << 10, .zstd_level = 1,
                       .file_bytes = 100 << 10, .file_done = check_file_done, .file_arg = &f };
    pq_writer *w;

    for (int i = 0; i < 30000; i++) {
        cell *r = table_row(&t);
        char name[64];
        int n = snprintf(name, sizeof(name), "%llx", (unsigned long long)rnd());
        r[0].i = (int64_t)(rnd() >> 1) - (i % 3 ? 0 : INT64_MAX / 2);
        r[1].null = i % 13 == 0;
        if (!r[1].null)
            cell_bytes(&r[1], name, (size_t)n);
    }
    CHECK(model_write_table(&t, &opt, &m, &w) == 0);
    CHECK(f.files >= 3);          /* ~600 KB of mostly random values in 100 KB files */
    CHECK(f.ok);
    /* the last file, ended by pq_finish, holds the remaining rows */
    CHECK(pq_num_rows(w) > 0 && check_file_done(&f, w) == 0 && f.ok && f.rows == t.rows);
    pq_free(w);

    /* file_bytes without file_done; a failing file_done */
    opt.file_done = NULL;
    CHECK(pq_open(cols, 2, &opt, mem_sink, &m, &w) == -EINVAL && strstr(pq_error(w), "file_done"));
    pq_free(w);
    opt.file_done = check_file_done;
    f = (files_seen){ .m = &m, .t = &t, .ok = 1, .fail_at = 2 };
    m.len = 0;
    CHECK(pq_open(cols, 2, &opt, mem_sink, &m, &w) == 0);
    int rc = 0;
    for (size_t r = 0; r < t.rows && rc == 0; r++)
        rc = model_put_row(w, &t, r);
    CHECK(rc == -EIO && strstr(pq_error(w), "storing a finished file") && f.files == 2);
    CHECK(pq_finish(w) == -EIO);
    pq_free(w);
    free(m.p);
    table_free(&t);
}

/* An empty file: magic, footer, no row groups. */
static void test_empty(void)
{
    pq_column col = { .name = "x", .type = PQ_DOUBLE };
    table t = { .cols = &col, .ncols = 1 };
    membuf m = { 0 };
    pq_writer *w;
    pq_stats s;
    size_t groups = 9;

    CHECK(model_write_table(&t, NULL, &m, &w) == 0);
    CHECK(model_file_matches(&m, &t, &groups) && groups == 0);
    CHECK(pq_stats_get(w, 0, &s) == 0 && !s.has_min_max && s.null_count == 0);
    pq_free(w);
    free(m.p);

    /* all NULL: null_count, no min/max */
    t.rows = 0;
    for (int i = 0; i < 100; i++)
        table_row(&t)->null = 1;
    m = (membuf){ 0 };
    CHECK(model_write_table(&t, NULL, &m, &w) == 0);
    CHECK(model_file_matches(&m, &t, &groups) && groups == 1);
    CHECK(pq_stats_get(w, 0, &s) == 0 && !s.has_min_max && s.null_count == 100);
    pq_free(w);
    free(m.p);
    table_free(&t);
}

/* ------------------------------------------------------------ errors */

/* pq_open of the one column C fails with -EINVAL and a message holding WHAT. */
static int bad_schema(pq_column c, const char *what)
{
    membuf m = { 0 };
    pq_writer *w;
    int rc = pq_open(&c, 1, NULL, mem_sink, &m, &w);
    int ok = rc == -EINVAL && w && strstr(pq_error(w), what) && m.len == 0 &&
             pq_null(w) == -EINVAL && pq_finish(w) == -EINVAL;
    if (!ok)
        fprintf(stderr, "schema error \"%s\": rc %d, message \"%s\"\n", what, rc, w ? pq_error(w) : "");
    pq_free(w);
    free(m.p);
    return ok;
}

static void test_errors(void)
{
    CHECK(bad_schema((pq_column){ .name = "", .type = PQ_INT32 }, "name"));
    CHECK(bad_schema((pq_column){ .name = "a\xff", .type = PQ_INT32 }, "UTF-8"));
    CHECK(bad_schema((pq_column){ .name = "a", .type = 3 }, "physical type 3"));
    CHECK(bad_schema((pq_column){ .name = "a", .type = PQ_INT32, .logical = 42 }, "logical type 42"));
    CHECK(bad_schema((pq_column){ .name = "a", .type = PQ_INT64, .logical = PQ_STRING }, "STRING cannot be stored as INT64"));
    CHECK(bad_schema((pq_column){ .name = "a", .type = PQ_INT64, .logical = PQ_DATE }, "DATE cannot"));
    CHECK(bad_schema((pq_column){ .name = "a", .type = PQ_INT32, .logical = PQ_TIMESTAMP }, "TIMESTAMP cannot"));
    CHECK(bad_schema((pq_column){ .name = "a", .type = PQ_BYTE_ARRAY, .logical = PQ_UUID }, "UUID cannot"));
    CHECK(bad_schema((pq_column){ .name = "a", .type = PQ_FIXED_LEN_BYTE_ARRAY, .logical = PQ_UUID, .length = 8 }, "length of 16"));
    CHECK(bad_schema((pq_column){ .name = "a", .type = PQ_FIXED_LEN_BYTE_ARRAY }, "length of 1"));
    CHECK(bad_schema((pq_column){ .name = "a", .type = PQ_INT32, .length = 4 }, "only for FIXED"));
    CHECK(bad_schema((pq_column){ .name = "a", .type = PQ_DOUBLE, .logical = PQ_DECIMAL, .precision = 5 }, "DECIMAL cannot"));
    CHECK(bad_schema((pq_column){ .name = "a", .type = PQ_INT32, .logical = PQ_DECIMAL, .precision = 10 }, "precision 10 is not in 1..9"));
    CHECK(bad_schema((pq_column){ .name = "a", .type = PQ_INT64, .logical = PQ_DECIMAL, .precision = 0 }, "precision 0"));
    CHECK(bad_schema((pq_column){ .name = "a", .type = PQ_INT64, .logical = PQ_DECIMAL, .precision = 5, .scale = 6 }, "scale 6"));
    CHECK(bad_schema((pq_column){ .name = "a", .type = PQ_FIXED_LEN_BYTE_ARRAY, .logical = PQ_DECIMAL, .length = 4, .precision = 10 }, "precision 10 is not in 1..9"));
    CHECK(bad_schema((pq_column){ .name = "a", .type = PQ_FIXED_LEN_BYTE_ARRAY, .logical = PQ_DECIMAL, .length = 17, .precision = 10 }, "at most 16 bytes"));
    CHECK(bad_schema((pq_column){ .name = "a", .type = PQ_INT32, .precision = 3 }, "only for DECIMAL"));

    pq_column two[2] = { { .name = "a", .type = PQ_INT32 }, { .name = "a", .type = PQ_INT64 } };
    membuf m = { 0 };
    pq_writer *w;
    CHECK(pq_open(two, 2, NULL, mem_sink, &m, &w) == -EINVAL && strstr(pq_error(w), "used twice"));
    pq_free(w);
    CHECK(pq_open(two, 0, NULL, mem_sink, &m, &w) == -EINVAL && strstr(pq_error(w), "columns"));
    pq_free(w);
    CHECK(pq_open(two, 1, NULL, NULL, NULL, &w) == -EINVAL && strstr(pq_error(w), "sink"));
    pq_free(w);
    CHECK(pq_open(two, 1, &(pq_options){ .page_bytes = (size_t)1 << 30 }, mem_sink, &m, &w) == -EINVAL &&
          strstr(pq_error(w), "page_bytes"));
    pq_free(w);
    CHECK(pq_open(two, 1, &(pq_options){ .zstd_level = 1000 }, mem_sink, &m, &w) == -EINVAL &&
          strstr(pq_error(w), "zstd level"));
    pq_free(w);
    CHECK(m.len == 0);

    /* rejected cells change nothing: the right call then goes through */
    pq_column cols[5] = {
        { .name = "s", .type = PQ_INT32, .logical = PQ_INT16 },
        { .name = "t", .type = PQ_BYTE_ARRAY, .logical = PQ_STRING },
        { .name = "d", .type = PQ_INT64, .logical = PQ_DECIMAL, .precision = 3, .scale = 1 },
        { .name = "u", .type = PQ_FIXED_LEN_BYTE_ARRAY, .logical = PQ_UUID, .length = 16 },
        { .name = "b", .type = PQ_BOOLEAN },
    };
    CHECK(pq_open(cols, 5, NULL, mem_sink, &m, &w) == 0 && m.len == 4 && memcmp(m.p, "PAR1", 4) == 0);
    CHECK(pq_int64(w, 1) == -EINVAL && strstr(pq_error(w), "column 0 (s) is INT32 INT16: pq_int64"));
    CHECK(pq_int32(w, 32768) == -ERANGE && strstr(pq_error(w), "INT16"));
    CHECK(pq_int32(w, -32769) == -ERANGE);
    CHECK(pq_end_row(w) == -EINVAL && strstr(pq_error(w), "has 0 of its 5 cells"));
    CHECK(pq_int32(w, -32768) == 0);
    CHECK(pq_bytes(w, "\xc0\xaf", 2) == -EINVAL && strstr(pq_error(w), "UTF-8"));   /* overlong */
    CHECK(pq_bytes(w, "\xed\xa0\x80", 3) == -EINVAL);                              /* surrogate */
    CHECK(pq_bytes(w, "\xf4\x90\x80\x80", 4) == -EINVAL);                          /* past U+10FFFF */
    CHECK(pq_bytes(w, "\xe2\x82", 2) == -EINVAL);                                  /* cut short */
    CHECK(pq_double(w, 1) == -EINVAL);
    CHECK(pq_bytes(w, "\xe2\x82\xac", 3) == 0);                                    /* the euro sign */
    CHECK(pq_int64(w, 1000) == -ERANGE && strstr(pq_error(w), "more than 3 digits"));
    CHECK(pq_int64(w, -1000) == -ERANGE);
    CHECK(pq_int32(w, 5) == -EINVAL);                                              /* INT64 storage */
    CHECK(pq_int64(w, -999) == 0);
    CHECK(pq_bytes(w, "0123456789abcde", 15) == -EINVAL && strstr(pq_error(w), "takes 16"));
    CHECK(pq_int64(w, 5) == -EINVAL);
    CHECK(pq_bytes(w, "0123456789abcdef", 16) == 0);
    CHECK(pq_bytes(w, "x", 1) == -EINVAL);
    CHECK(pq_bool(w, 7) == 0);                                                     /* any non-zero is true */
    CHECK(pq_null(w) == -EINVAL && strstr(pq_error(w), "pq_end_row"));
    CHECK(pq_end_row(w) == 0);
    CHECK(pq_null(w) == 0);
    CHECK(pq_finish(w) == -EINVAL && strstr(pq_error(w), "1 of its 5"));
    for (int i = 0; i < 4; i++)
        CHECK(pq_null(w) == 0);
    CHECK(pq_end_row(w) == 0);
    CHECK(pq_finish(w) == 0);
    CHECK(pq_finish(w) == -EINVAL && pq_null(w) == -EINVAL && pq_end_row(w) == -EINVAL &&
          strstr(pq_error(w), "finished"));
    /* what went in is what comes out */
    table t = { .cols = cols, .ncols = 5 };
    cell *r = table_row(&t);
    r[0].i = -32768;
    cell_bytes(&r[1], "\xe2\x82\xac", 3);
    r[2].i = -999;
    cell_bytes(&r[3], "0123456789abcdef", 16);
    r[4].i = 1;
    r = table_row(&t);
    for (int k = 0; k < 5; k++)
        r[k].null = 1;
    size_t groups;
    CHECK(model_file_matches(&m, &t, &groups) && groups == 1);
    table_free(&t);
    pq_free(w);
    free(m.p);

    /* a failing sink: its error, then the same error for every call */
    pq_column one = { .name = "v", .type = PQ_INT64 };
    m = (membuf){ .fail_at = 2 };
    CHECK(pq_open(&one, 1, NULL, mem_sink, &m, &w) == -ENOSPC && strstr(pq_error(w), "writing"));
    CHECK(pq_int64(w, 1) == -ENOSPC && pq_finish(w) == -ENOSPC);
    pq_free(w);
    m = (membuf){ .fail_at = 100 };
    CHECK(pq_open(&one, 1, &(pq_options){ .row_group_bytes = 1 }, mem_sink, &m, &w) == 0);
    int rc = 0;
    for (int i = 0; i < 1000 && rc == 0; i++)
        if ((rc = pq_int64(w, (int64_t)rnd())) == 0)
            rc = pq_end_row(w);
    CHECK(rc == -ENOSPC && pq_int64(w, 1) == -ENOSPC && pq_end_row(w) == -ENOSPC && pq_finish(w) == -ENOSPC);
    pq_free(w);
    free(m.p);
    pq_free(NULL);
}

/* ------------------------------------------------------------ bounded memory */

typedef struct counting_sink {
    uint64_t bytes;
} counting_sink;

static int count_sink(void *arg, const void *buf, size_t len)
{
    (void)buf;
    ((counting_sink *)arg)->bytes += len;
    return 0;
}

/* Incompressible rows: what the writer holds back (rows put in since the
 * sink last got a row group) stays under one row group plus a row. */
static void test_bounded(void)
{
    pq_column cols[2] = { { .name = "k", .type = PQ_INT64 }, { .name = "blob", .type = PQ_BYTE_ARRAY } };
    pq_options opt = { .row_group_bytes = 1 << 20, .page_bytes = 64 << 10 };
    counting_sink cs = { 0 };
    pq_writer *w;
    uint8_t blob[3000];
    uint64_t put = 0, emitted = 0, flushed_at = 0, worst = 0, flushes = 0;

    CHECK(pq_open(cols, 2, &opt, count_sink, &cs, &w) == 0);
    for (int i = 0; i < 16000; i++) {
        size_t n = (size_t)(rnd() % sizeof(blob));
        for (size_t k = 0; k < n; k++)
            blob[k] = (uint8_t)rnd();
        CHECK(pq_int64(w, (int64_t)rnd()) == 0 && pq_bytes(w, blob, n) == 0 && pq_end_row(w) == 0);
        put += 8 + 4 + n + 2;     /* PLAIN values and one level byte each */
        if (cs.bytes != emitted) {
            emitted = cs.bytes;
            flushed_at = put;
            flushes++;
        }
        if (put - flushed_at > worst)
            worst = put - flushed_at;
    }
    CHECK(pq_finish(w) == 0);
    /* ~24 MiB went through in row groups of ~1 MiB */
    CHECK(put > 20u << 20);
    CHECK(flushes >= 20);
    CHECK(worst <= opt.row_group_bytes + sizeof(blob) + 64);
    CHECK(worst >= opt.row_group_bytes / 2);
    pq_free(w);
}

/* ------------------------------------------------------------ random */

static void random_column(pq_column *c, char *name, size_t i)
{
    static const struct { pq_physical t; pq_logical l; } kinds[] = {
        { PQ_BOOLEAN, PQ_NONE }, { PQ_INT32, PQ_NONE }, { PQ_INT32, PQ_INT16 }, { PQ_INT32, PQ_DATE },
        { PQ_INT32, PQ_DECIMAL }, { PQ_INT64, PQ_NONE }, { PQ_INT64, PQ_TIMESTAMP },
        { PQ_INT64, PQ_DECIMAL }, { PQ_FLOAT, PQ_NONE }, { PQ_DOUBLE, PQ_NONE },
        { PQ_BYTE_ARRAY, PQ_NONE }, { PQ_BYTE_ARRAY, PQ_STRING }, { PQ_FIXED_LEN_BYTE_ARRAY, PQ_NONE },
        { PQ_FIXED_LEN_BYTE_ARRAY, PQ_DECIMAL }, { PQ_FIXED_LEN_BYTE_ARRAY, PQ_UUID },
    };
    size_t k = (size_t)(rnd() % (sizeof(kinds) / sizeof(kinds[0])));
    memset(c, 0, sizeof(*c));
    sprintf(name, "c%zu", i);
    c->name = name;
    c->type = kinds[k].t;
    c->logical = kinds[k].l;
    if (c->type == PQ_FIXED_LEN_BYTE_ARRAY)
        c->length = c->logical == PQ_UUID ? 16 : 1 + (int32_t)(rnd() % 16);
    if (c->logical == PQ_DECIMAL) {
        static const int32_t most[17] = { 0, 2, 4, 6, 9, 11, 14, 16, 18, 21, 23, 26, 28, 31, 33, 35, 38 };
        int32_t top = c->type == PQ_INT32 ? 9 : c->type == PQ_INT64 ? 18 : most[c->length];
        c->precision = 1 + (int32_t)(rnd() % (uint64_t)top);
        c->scale = (int32_t)(rnd() % (uint64_t)(c->precision + 1));
    }
}

/* A random value for column C, from a small pool half the time so that
 * equal values and ties in the statistics happen. */
static void random_cell(const pq_column *c, cell *x)
{
    static const double pool[] = { 0.0, -0.0, 1.0, -1.0, INFINITY, -INFINITY, NAN, 1e300, -1e-300 };
    int small = rnd() % 2;
    if (rnd() % 5 == 0) {
        x->null = 1;
        return;
    }
    switch (c->type) {
    case PQ_BOOLEAN:
        x->i = (int64_t)(rnd() & 1);
        return;
    case PQ_INT32:
        if (c->logical == PQ_INT16)
            x->i = (int16_t)rnd();
        else if (c->logical == PQ_DECIMAL) {
            int64_t lim = 1;
            for (int d = 0; d < c->precision; d++)
                lim *= 10;
            x->i = (int64_t)(rnd() % (uint64_t)(2 * lim - 1)) - (lim - 1);
        } else
            x->i = small ? (int64_t)(rnd() % 5) - 2 : (int32_t)rnd();
        return;
    case PQ_INT64:
        if (c->logical == PQ_DECIMAL) {
            int64_t lim = 1;
            for (int d = 0; d < c->precision; d++)
                lim *= 10;
            x->i = (int64_t)(rnd() % (uint64_t)(2 * lim - 1)) - (lim - 1);
        } else
            x->i = small ? (int64_t)(rnd() % 5) - 2 : (int64_t)rnd();
        return;
    case PQ_FLOAT:
        if (small)
            x->f = (float)pool[rnd() % 9];
        else {
            uint32_t u = (uint32_t)rnd();
            memcpy(&x->f, &u, 4);
        }
        return;
    case PQ_DOUBLE:
        if (small)
            x->d = pool[rnd() % 9];
        else {
            uint64_t u = rnd();
            memcpy(&x->d, &u, 8);
        }
        return;
    case PQ_BYTE_ARRAY: {
        size_t n = (size_t)(rnd() % (rnd() % 50 == 0 ? 6000 : 12));
        uint8_t *p = malloc(n + 4);
        size_t len = 0;
        while (len < n) {
            if (c->logical == PQ_STRING) {
                /* ASCII, 2-, 3- and 4-byte characters */
                static const char *pieces[] = { "a", "Z", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x8e\x89", "\x7f" };
                const char *s = pieces[rnd() % 6];
                memcpy(p + len, s, strlen(s));
                len += strlen(s);
            } else {
                p[len++] = small ? (uint8_t)(rnd() % 3) : (uint8_t)rnd();
            }
        }
        x->b = p;
        x->len = len;
        return;
    }
    case PQ_FIXED_LEN_BYTE_ARRAY:
        if (c->logical == PQ_DECIMAL && (c->precision > 18 || rnd() % 2)) {
            int64_t v = (int64_t)rnd();
            if (c->precision <= 18) {
                int64_t lim = 1;
                for (int d = 0; d < c->precision; d++)
                    lim *= 10;
                v = (int64_t)(rnd() % (uint64_t)(2 * lim - 1)) - (lim - 1);
            }
            cell_decimal(x, v, (size_t)c->length);
            return;
        }
        x->b = malloc((size_t)c->length);
        x->len = (size_t)c->length;
        for (int32_t k = 0; k < c->length; k++)
            x->b[k] = small ? (uint8_t)(rnd() % 2 ? 0 : 0xFF) : (uint8_t)rnd();
        if (c->logical == PQ_DECIMAL) {
            /* a small value within the precision: -128..127 sign-extended,
             * or 0..9 for one or two digits */
            if (c->precision < 3)
                x->b[c->length - 1] = (uint8_t)(x->b[c->length - 1] % 10);
            memset(x->b, c->precision >= 3 && x->b[c->length - 1] & 0x80 ? 0xFF : 0,
                   (size_t)c->length - 1);
        }
        return;
    }
}

static void test_random(void)
{
    for (int round = 0; round < 150; round++) {
        size_t ncols = 1 + (size_t)(rnd() % 8), rows = (size_t)(rnd() % 3000);
        pq_column cols[8];
        char names[8][16];
        table t = { .cols = cols, .ncols = ncols };
        pq_options opt = { .row_group_bytes = (size_t)(1 + rnd() % (256 << 10)),
                           .page_bytes = (size_t)(1 + rnd() % (16 << 10)),
                           .zstd_level = 1 + (int)(rnd() % 5) };
        membuf m = { 0 };
        pq_writer *w;
        size_t groups;
        int ok = 1;

        for (size_t k = 0; k < ncols; k++)
            random_column(&cols[k], names[k], k);
        for (size_t r = 0; r < rows; r++) {
            cell *row = table_row(&t);
            for (size_t k = 0; k < ncols; k++)
                random_cell(&cols[k], &row[k]);
        }
        if (model_write_table(&t, &opt, &m, &w) < 0 || !model_file_matches(&m, &t, &groups))
            ok = 0;
        for (size_t k = 0; ok && k < ncols; k++)
            if (!model_file_stats_match(w, &t, k))
                ok = 0;
        if (!ok)
            fprintf(stderr, "random round %d (%zu columns, %zu rows) failed\n", round, ncols, rows);
        CHECK(ok);
        pq_free(w);
        free(m.p);
        table_free(&t);
    }
}

int main(void)
{
    test_levels();
    test_all_types();
    test_row_groups();
    test_files();
    test_empty();
    test_errors();
    test_bounded();
    test_random();
    return harness_done();
}

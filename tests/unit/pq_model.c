/*
 * pq_model.c -- the model of what a Parquet file must hold, and the checks
 * of a written file against it, for test_parquet.c.
 *
 * A file is read back by pq_reader.h, written apart from the writer, and
 * compared with the table of rows put in: magic, footer, schema, offsets
 * and sizes of every chunk, every value, and each chunk's statistics
 * against ones computed here the model's own way.  Shared by every test
 * case, so kept out of test_parquet.c, which holds the cases.
 */
#include "pq_model.h"
#include "pq_reader.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ memory sink */

int mem_sink(void *arg, const void *buf, size_t len)
{
    membuf *m = arg;
    if (m->fail_at && m->len + len > m->fail_at)
        return -ENOSPC;
    if (m->len + len > m->cap) {
        size_t cap = m->cap ? m->cap : 4096;
        while (cap < m->len + len)
            cap *= 2;
        m->p = realloc(m->p, cap);
        if (!m->p)
            abort();
        m->cap = cap;
    }
    memcpy(m->p + m->len, buf, len);
    m->len += len;
    return 0;
}

/* ------------------------------------------------------------ the model */

cell *table_row(table *t)
{
    if (t->rows == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 64;
        t->cells = realloc(t->cells, t->cap * t->ncols * sizeof(cell));
        if (!t->cells)
            abort();
    }
    cell *r = &t->cells[t->rows++ * t->ncols];
    memset(r, 0, t->ncols * sizeof(cell));
    return r;
}

void table_free(table *t)
{
    for (size_t i = 0; i < t->rows * t->ncols; i++)
        free(t->cells[i].b);
    free(t->cells);
    memset(t, 0, sizeof(*t));
}

void cell_bytes(cell *c, const void *p, size_t n)
{
    c->b = malloc(n ? n : 1);
    memcpy(c->b, p, n);
    c->len = n;
}

/* DECIMAL V as a big-endian two's complement of N bytes (the model's own
 * way: arithmetic on the magnitude, then negation). */
void cell_decimal(cell *c, int64_t v, size_t n)
{
    uint64_t mag = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    c->b = calloc(n, 1);
    c->len = n;
    for (size_t k = 0; k < n && k < 8; k++)
        c->b[n - 1 - k] = (uint8_t)(mag >> (8 * k));
    if (v < 0) {
        int carry = 1;
        for (size_t k = n; k-- > 0;) {
            int x = (uint8_t)~c->b[k] + carry;
            c->b[k] = (uint8_t)x;
            carry = x >> 8;
        }
    }
    c->i = v;
    c->via_int64 = 1;
}

/* Put row R of T into W. */
int model_put_row(pq_writer *w, const table *t, size_t r)
{
    for (size_t k = 0; k < t->ncols; k++) {
        const cell *c = &t->cells[r * t->ncols + k];
        const pq_column *col = &t->cols[k];
        int rc;
        if (c->null) {
            rc = pq_null(w);
        } else if (c->via_int64) {
            rc = pq_int64(w, c->i);
        } else {
            switch (col->type) {
            case PQ_BOOLEAN: rc = pq_bool(w, (int)c->i); break;
            case PQ_INT32: rc = pq_int32(w, (int32_t)c->i); break;
            case PQ_INT64: rc = pq_int64(w, c->i); break;
            case PQ_FLOAT: rc = pq_float(w, c->f); break;
            case PQ_DOUBLE: rc = pq_double(w, c->d); break;
            default: rc = pq_bytes(w, c->b, c->len); break;
            }
        }
        if (rc < 0) {
            fprintf(stderr, "row %zu col %zu: %d %s\n", r, k, rc, pq_error(w));
            return rc;
        }
    }
    return pq_end_row(w);
}

/* Write T to M with OPT; 0 or the failing call's error. */
int model_write_table(const table *t, const pq_options *opt, membuf *m, pq_writer **out)
{
    pq_writer *w;
    int rc = pq_open(t->cols, t->ncols, opt, mem_sink, m, &w);
    *out = w;
    if (rc < 0) {
        fprintf(stderr, "pq_open: %s\n", pq_error(w));
        return rc;
    }
    for (size_t r = 0; r < t->rows; r++)
        if ((rc = model_put_row(w, t, r)) < 0)
            return rc;
    rc = pq_finish(w);
    if (rc < 0)
        fprintf(stderr, "pq_finish: %s\n", pq_error(w));
    return rc;
}

/* ------------------------------------------------------------ checks */

static int is_decimal_flba(const pq_column *c)
{
    return c->logical == PQ_DECIMAL && c->type == PQ_FIXED_LEN_BYTE_ARRAY;
}

/* The stored form of model cell C equals decoded cell D. */
static int cell_equal(const pq_column *col, const cell *c, const rd_cell *d)
{
    uint32_t fb;
    uint64_t db;

    if (c->null || d->null)
        return c->null == d->null;
    switch (col->type) {
    case PQ_BOOLEAN: case PQ_INT32: case PQ_INT64:
        return c->i == d->i;
    case PQ_FLOAT:
        memcpy(&fb, &c->f, 4);
        return fb == d->f32;
    case PQ_DOUBLE:
        memcpy(&db, &c->d, 8);
        return db == d->f64;
    default:
        return c->len == d->len && (c->len == 0 || memcmp(c->b, d->b, c->len) == 0);
    }
}

/* Order of non-NULL, non-NaN cells A and B in column COL, computed the
 * model's way (decimals: sign bit flipped, then bytes unsigned). */
static int model_cmp(const pq_column *col, const cell *a, const cell *b)
{
    switch (col->type) {
    case PQ_BOOLEAN: case PQ_INT32: case PQ_INT64:
        return a->i < b->i ? -1 : a->i > b->i;
    case PQ_FLOAT:
        return a->f < b->f ? -1 : a->f > b->f;
    case PQ_DOUBLE:
        return a->d < b->d ? -1 : a->d > b->d;
    default:
        break;
    }
    for (size_t k = 0; k < a->len && k < b->len; k++) {
        int x = a->b[k], y = b->b[k];
        if (k == 0 && is_decimal_flba(col))
            x ^= 0x80, y ^= 0x80;
        if (x != y)
            return x < y ? -1 : 1;
    }
    return a->len < b->len ? -1 : a->len > b->len;
}

static int cell_is_nan(const pq_column *col, const cell *c)
{
    return (col->type == PQ_FLOAT && isnan(c->f)) || (col->type == PQ_DOUBLE && isnan(c->d));
}

/* C as a statistics value (PLAIN, no length) into OUT; MIN selects the
 * sign of a zero float. Returns the length. */
static size_t stat_encode(const pq_column *col, const cell *c, int min, uint8_t *out, const uint8_t **p)
{
    *p = out;
    switch (col->type) {
    case PQ_BOOLEAN:
        out[0] = (uint8_t)c->i;
        return 1;
    case PQ_INT32:
        for (int k = 0; k < 4; k++)
            out[k] = (uint8_t)((uint64_t)c->i >> (8 * k));
        return 4;
    case PQ_INT64:
        for (int k = 0; k < 8; k++)
            out[k] = (uint8_t)((uint64_t)c->i >> (8 * k));
        return 8;
    case PQ_FLOAT: {
        float f = c->f == 0 ? (min ? -0.0f : 0.0f) : c->f;
        memcpy(out, &f, 4);       /* little-endian host (x86-64, arm64) */
        return 4;
    }
    case PQ_DOUBLE: {
        double d = c->d == 0 ? (min ? -0.0 : 0.0) : c->d;
        memcpy(out, &d, 8);
        return 8;
    }
    default:
        *p = c->b;
        return c->len;
    }
}

/* Over rows [FROM, TO) of column K of T: the NULLs and NaNs counted into
 * *NULLS and *NANS (zeroed first by the caller), the least and greatest
 * other values into *LO and *HI (NULL if none). */
static void model_extremes(const table *t, size_t k, size_t from, size_t to,
                           const cell **lo, const cell **hi, uint64_t *nulls, uint64_t *nans)
{
    const pq_column *col = &t->cols[k];

    for (size_t r = from; r < to; r++) {
        const cell *c = &t->cells[r * t->ncols + k];
        if (c->null) {
            (*nulls)++;
        } else if (cell_is_nan(col, c)) {
            (*nans)++;
        } else {
            if (!*lo || model_cmp(col, c, *lo) < 0)
                *lo = c;
            if (!*hi || model_cmp(col, c, *hi) > 0)
                *hi = c;
        }
    }
}

/* Chunk statistics node ST agrees with rows [FROM, TO) of column K of T. */
static int stats_match(const table *t, size_t k, size_t from, size_t to, const tnode *st)
{
    const pq_column *col = &t->cols[k];
    const cell *lo = NULL, *hi = NULL;
    uint64_t nulls = 0, nans = 0;
    int ok = 1;

    model_extremes(t, k, from, to, &lo, &hi, &nulls, &nans);
    if (!st || ti(st, 3, -1) != (int64_t)nulls)
        ok = 0;
    if (col->type == PQ_FLOAT || col->type == PQ_DOUBLE) {
        if (ti(st, 9, -1) != (int64_t)nans)
            ok = 0;
    } else if (tf(st, 9)) {
        ok = 0;
    }
    const tnode *mx = tf(st, 5), *mn = tf(st, 6);
    if (lo && lo->len <= PQ_STATS_MAX && hi->len <= PQ_STATS_MAX) {
        uint8_t a[8], b[8];
        const uint8_t *pa, *pb;
        size_t la = stat_encode(col, lo, 1, a, &pa), lb = stat_encode(col, hi, 0, b, &pb);
        if (!mn || !mx || mn->len != la || mx->len != lb ||
            (la && memcmp(mn->bin, pa, la)) || (lb && memcmp(mx->bin, pb, lb)))
            ok = 0;
    } else if (mn || mx) {
        ok = 0;
    }
    if (!ok)
        fprintf(stderr, "column %zu (%s) rows %zu..%zu: statistics differ\n", k, col->name, from, to);
    return ok;
}

/* pq_stats_get agrees with the whole table, column K (exact min/max). */
int model_file_stats_match(pq_writer *w, const table *t, size_t k)
{
    const pq_column *col = &t->cols[k];
    const cell *lo = NULL, *hi = NULL;
    uint64_t nulls = 0, nans = 0;
    pq_stats s;

    if (pq_stats_get(w, k, &s) < 0)
        return 0;
    model_extremes(t, k, 0, t->rows, &lo, &hi, &nulls, &nans);
    if (s.null_count != nulls || s.nan_count != nans || s.has_min_max != (lo != NULL))
        return 0;
    if (!lo)
        return 1;
    uint8_t a[8], b[8];
    const uint8_t *pa, *pb;
    size_t la = stat_encode(col, lo, 1, a, &pa), lb = stat_encode(col, hi, 0, b, &pb);
    switch (col->type) {
    case PQ_BOOLEAN: case PQ_INT32:
        return s.min.i32 == lo->i && s.max.i32 == hi->i;
    case PQ_INT64:
        return s.min.i64 == lo->i && s.max.i64 == hi->i;
    case PQ_FLOAT:
        return memcmp(&s.min.f32, pa, 4) == 0 && memcmp(&s.max.f32, pb, 4) == 0;
    case PQ_DOUBLE:
        return memcmp(&s.min.f64, pa, 8) == 0 && memcmp(&s.max.f64, pb, 8) == 0;
    default:
        return s.min.len == la && s.max.len == lb && (la == 0 || memcmp(s.min.bytes, pa, la) == 0) &&
               (lb == 0 || memcmp(s.max.bytes, pb, lb) == 0);
    }
}

/* Read file M back and compare it with T in every respect the reader
 * sees; *GROUPS gets the number of row groups.  1 if all agree. */
int model_file_matches(const membuf *m, const table *t, size_t *groups)
{
    rd_file f;
    int ok = 1;
    uint64_t expect_at = 4, row = 0;

    if (rd_open(&f, m->p, m->len) < 0) {
        fprintf(stderr, "file does not parse\n");
        return 0;
    }
    const tnode *schema = tf(&f.meta, 2), *rgs = tf(&f.meta, 4), *orders = tf(&f.meta, 7);
    const tnode *by = tf(&f.meta, 6);
    static const char created[] = "lakefs version ";
    if (ti(&f.meta, 1, 0) != 1 || !schema || schema->nkids != t->ncols + 1 || !rgs ||
        ti(&f.meta, 3, -1) != (int64_t)t->rows || !orders || orders->nkids != t->ncols ||
        !by || by->len <= strlen(created) || memcmp(by->bin, created, strlen(created))) {
        fprintf(stderr, "FileMetaData is wrong\n");
        rd_close(&f);
        return 0;
    }
    if (ti(&schema->kids[0], 5, -1) != (int64_t)t->ncols || tf(&schema->kids[0], 1))
        ok = 0;
    for (size_t k = 0; k < t->ncols; k++) {
        const tnode *se = &schema->kids[k + 1], *name = tf(se, 4);
        const pq_column *col = &t->cols[k];
        if (ti(se, 1, -1) != col->type || ti(se, 3, -1) != 1 || !name ||
            name->len != strlen(col->name) || memcmp(name->bin, col->name, name->len) ||
            ti(se, 2, 0) != col->length)
            ok = 0;
        /* ColumnOrder: TYPE_ORDER */
        const tnode *o = &orders->kids[k];
        if (o->nkids != 1 || o->kids[0].id != 1 || o->kids[0].type != 12 || o->kids[0].nkids != 0)
            ok = 0;
    }
    *groups = rgs->nkids;
    for (size_t g = 0; g < rgs->nkids && ok; g++) {
        const tnode *rg = &rgs->kids[g], *ccs = tf(rg, 1);
        uint64_t nrows = (uint64_t)ti(rg, 3, -1), raw_sum = 0, packed_sum = 0;
        if (!ccs || ccs->nkids != t->ncols || nrows == 0 || row + nrows > t->rows ||
            ti(rg, 5, -1) != (int64_t)expect_at) {
            ok = 0;
            break;
        }
        for (size_t k = 0; k < t->ncols && ok; k++) {
            const tnode *cc = &ccs->kids[k], *md = tf(cc, 3), *path = tf(md, 3), *enc = tf(md, 2);
            const pq_column *col = &t->cols[k];
            rd_chunk ch;
            /* chunks follow each other from byte 4 */
            if (ti(md, 9, -1) != (int64_t)expect_at || ti(md, 4, -1) != 6 || ti(md, 1, -1) != col->type ||
                ti(md, 5, -1) != (int64_t)nrows || ti(cc, 2, -1) != 0 || !path || path->nkids != 1 ||
                path->kids[0].len != strlen(col->name) || !enc || enc->nkids != 2 ||
                enc->kids[0].i != 0 || enc->kids[1].i != 3) {
                fprintf(stderr, "group %zu column %zu: ColumnMetaData is wrong\n", g, k);
                ok = 0;
                break;
            }
            expect_at += (uint64_t)ti(md, 7, 0);
            raw_sum += (uint64_t)ti(md, 6, 0);
            packed_sum += (uint64_t)ti(md, 7, 0);
            if (rd_column(&f, cc, col->type, (size_t)col->length, &ch) < 0 || !ch.plain_rle_only) {
                fprintf(stderr, "group %zu column %zu: pages do not read back\n", g, k);
                ok = 0;
            }
            for (size_t r = 0; ok && r < ch.n; r++)
                if (!cell_equal(col, &t->cells[(row + r) * t->ncols + k], &ch.cells[r])) {
                    fprintf(stderr, "group %zu column %zu row %zu: value differs\n", g, k, (size_t)(row + r));
                    ok = 0;
                }
            /* total_uncompressed_size: every page header plus raw page */
            if (ok && ch.raw_size != (uint64_t)ti(md, 6, -1)) {
                fprintf(stderr, "group %zu column %zu: total_uncompressed_size is wrong\n", g, k);
                ok = 0;
            }
            if (ok && !stats_match(t, k, (size_t)row, (size_t)(row + nrows), tf(md, 12)))
                ok = 0;
            rd_chunk_free(&ch);
        }
        if (ok && (ti(rg, 2, -1) != (int64_t)raw_sum || ti(rg, 6, -1) != (int64_t)packed_sum)) {
            fprintf(stderr, "group %zu: total sizes are wrong\n", g);
            ok = 0;
        }
        row += nrows;
    }
    /* the footer starts where the last chunk ends; every row is in a group */
    if (ok && (expect_at != f.footer_at || row != t->rows)) {
        fprintf(stderr, "chunks end at %llu, footer at %zu; %llu of %zu rows\n",
                (unsigned long long)expect_at, f.footer_at, (unsigned long long)row, t->rows);
        ok = 0;
    }
    rd_close(&f);
    return ok;
}

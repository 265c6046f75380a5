/*
 * pq_reader.h -- a minimal Parquet reader for the lake tests (test_parquet.c,
 * pq_model.c; its Thrift decoder also for test_thrift.c), written from
 * the format's specification apart from lake/parquet.c, so that the tests
 * check the writer against an independent reading of the same spec.
 *
 * tdecode() turns Thrift compact bytes into a tree of nodes (any struct,
 * list, i8/i32/i64, bool, binary); rd_open() checks the magic at both ends
 * and the footer length, decodes FileMetaData, and rd_column() reads one
 * column chunk back: every page header, zstd frame, RLE/bit-packed
 * definition levels and PLAIN value.  Everything is bounds-checked: a
 * malformed file is an error (-1), never a crash.  Its functions are
 * static inline: each test uses a part of them.
 */
#ifndef LAKEFS_PQ_READER_H
#define LAKEFS_PQ_READER_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

/* ------------------------------------------------------------ thrift */

typedef struct tnode {
    int type;                     /* compact type: 1/2 bool, 3 i8, 5 i32, 6 i64, 8 binary, 9 list, 12 struct */
    int id;                       /* field id, in a struct */
    int64_t i;                    /* bool (0/1), i8, i32, i64 */
    const uint8_t *bin;           /* binary */
    size_t len;
    struct tnode *kids;           /* struct fields or list elements */
    size_t nkids;
} tnode;

typedef struct tcur {
    const uint8_t *p, *end;
} tcur;

static inline int tvarint(tcur *c, uint64_t *v)
{
    *v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (c->p >= c->end)
            return -1;
        uint8_t b = *c->p++;
        *v |= (uint64_t)(b & 0x7F) << shift;
        if (!(b & 0x80))
            return 0;
    }
    return -1;
}

static inline int tzigzag(tcur *c, int64_t *v)
{
    uint64_t u;
    if (tvarint(c, &u) < 0)
        return -1;
    *v = (int64_t)(u >> 1) ^ -(int64_t)(u & 1);
    return 0;
}

static inline void tfree(tnode *n)
{
    for (size_t i = 0; i < n->nkids; i++)
        tfree(&n->kids[i]);
    free(n->kids);
    n->kids = NULL;
    n->nkids = 0;
}

static inline int tvalue(tcur *c, int type, tnode *n, int depth);

/* Append an empty child to N. */
static inline tnode *tkid(tnode *n)
{
    tnode *k = realloc(n->kids, (n->nkids + 1) * sizeof(*k));
    if (!k)
        abort();
    n->kids = k;
    memset(&k[n->nkids], 0, sizeof(*k));
    return &k[n->nkids++];
}

static inline int tstruct(tcur *c, tnode *n, int depth)
{
    int last = 0;
    n->type = 12;
    for (;;) {
        if (c->p >= c->end)
            return -1;
        uint8_t h = *c->p++;
        if (h == 0)
            return 0;
        int type = h & 0x0F, id;
        if (h >> 4) {
            id = last + (h >> 4);
        } else {
            int64_t v;
            if (tzigzag(c, &v) < 0)
                return -1;
            id = (int)v;
        }
        last = id;
        tnode *k = tkid(n);
        k->id = id;
        if (type == 1 || type == 2) {
            k->type = type;
            k->i = type == 1;
        } else if (tvalue(c, type, k, depth + 1) < 0) {
            return -1;
        }
    }
}

static inline int tvalue(tcur *c, int type, tnode *n, int depth)
{
    uint64_t u;
    if (depth > 32)
        return -1;
    n->type = type;
    switch (type) {
    case 3:
        if (c->p >= c->end)
            return -1;
        n->i = (int8_t)*c->p++;
        return 0;
    case 5: case 6:
        return tzigzag(c, &n->i);
    case 8:
        if (tvarint(c, &u) < 0 || u > (uint64_t)(c->end - c->p))
            return -1;
        n->bin = c->p;
        n->len = u;
        c->p += u;
        return 0;
    case 9: {
        if (c->p >= c->end)
            return -1;
        uint8_t h = *c->p++;
        int elem = h & 0x0F;
        u = h >> 4;
        if (u == 15 && tvarint(c, &u) < 0)
            return -1;
        if (u > (uint64_t)(c->end - c->p))   /* each element takes >= 1 byte */
            return -1;
        n->i = elem;
        for (uint64_t i = 0; i < u; i++)
            if (tvalue(c, elem, tkid(n), depth + 1) < 0)
                return -1;
        return 0;
    }
    case 12:
        return tstruct(c, n, depth);
    }
    return -1;
}

/* Decode one struct from P[0..N) into *N; bytes used, or -1. */
static inline long tdecode(const uint8_t *p, size_t len, tnode *n)
{
    tcur c = { p, p + len };
    memset(n, 0, sizeof(*n));
    if (tstruct(&c, n, 0) < 0) {
        tfree(n);
        return -1;
    }
    return (long)(c.p - p);
}

/* Field ID of struct N, or NULL. */
static inline const tnode *tf(const tnode *n, int id)
{
    if (!n)
        return NULL;
    for (size_t i = 0; i < n->nkids; i++)
        if (n->kids[i].id == id)
            return &n->kids[i];
    return NULL;
}

/* Integer field ID of N, or DEF when absent. */
static inline int64_t ti(const tnode *n, int id, int64_t def)
{
    const tnode *f = tf(n, id);
    return f ? f->i : def;
}

/* ------------------------------------------------------------ file */

typedef struct rd_file {
    const uint8_t *buf;
    size_t len;
    size_t footer_at, footer_len; /* where FileMetaData is */
    tnode meta;                   /* decoded FileMetaData */
} rd_file;

/* Check magic, footer length, decode the footer; 0 or -1. */
static inline int rd_open(rd_file *f, const uint8_t *buf, size_t len)
{
    memset(f, 0, sizeof(*f));
    f->buf = buf;
    f->len = len;
    if (len < 12 || memcmp(buf, "PAR1", 4) || memcmp(buf + len - 4, "PAR1", 4))
        return -1;
    f->footer_len = (size_t)buf[len - 8] | (size_t)buf[len - 7] << 8 |
                    (size_t)buf[len - 6] << 16 | (size_t)buf[len - 5] << 24;
    if (f->footer_len > len - 12)
        return -1;
    f->footer_at = len - 8 - f->footer_len;
    long used = tdecode(buf + f->footer_at, f->footer_len, &f->meta);
    return used == (long)f->footer_len ? 0 : -1;
}

static inline void rd_close(rd_file *f)
{
    tfree(&f->meta);
}

/* One decoded cell. */
typedef struct rd_cell {
    int null;
    int64_t i;                    /* BOOLEAN, INT32, INT64 */
    uint32_t f32;                 /* FLOAT bits */
    uint64_t f64;                 /* DOUBLE bits */
    const uint8_t *b;             /* BYTE_ARRAY, FIXED_LEN_BYTE_ARRAY (in rd_chunk's pages) */
    size_t len;
} rd_cell;

typedef struct rd_chunk {
    rd_cell *cells;
    size_t n;
    uint8_t **pages;              /* decompressed pages, owned */
    size_t npages;
    uint64_t raw_size;            /* page headers + uncompressed pages */
    int plain_rle_only;           /* every page: DATA_PAGE, PLAIN, RLE levels */
} rd_chunk;

static inline void rd_chunk_free(rd_chunk *c)
{
    for (size_t i = 0; i < c->npages; i++)
        free(c->pages[i]);
    free(c->pages);
    free(c->cells);
    memset(c, 0, sizeof(*c));
}

static inline uint32_t rd_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t rd_le64(const uint8_t *p)
{
    return (uint64_t)rd_le32(p) | (uint64_t)rd_le32(p + 4) << 32;
}

/* Decode N levels of bit width 1 (RLE/bit-packed hybrid, no length) from
 * P[0..LEN) into LV; 0 or -1 (also when the runs do not end exactly at
 * LEN). */
static inline int rd_levels(const uint8_t *p, size_t len, uint8_t *lv, size_t n)
{
    tcur c = { p, p + len };
    size_t got = 0;
    while (got < n) {
        uint64_t h;
        if (tvarint(&c, &h) < 0)
            return -1;
        if (h & 1) {
            uint64_t groups = h >> 1;
            if (groups == 0 || groups > (uint64_t)(c.end - c.p))
                return -1;
            for (uint64_t i = 0; i < groups * 8 && got < n; i++)
                lv[got++] = (c.p[i / 8] >> (i % 8)) & 1;
            c.p += groups;
        } else {
            uint64_t run = h >> 1;
            if (run == 0 || run > n - got || c.p >= c.end || *c.p > 1)
                return -1;
            memset(lv + got, *c.p++, run);
            got += run;
        }
    }
    return c.p == c.end ? 0 : -1;
}

/* Read the pages of column chunk CC (a ColumnChunk node) of F; TYPE and
 * LENGTH are the column's physical type and FIXED_LEN_BYTE_ARRAY length.
 * 0 or -1. */
static inline int rd_column(const rd_file *f, const tnode *cc, int type, size_t length, rd_chunk *out)
{
    const tnode *md = tf(cc, 3);
    memset(out, 0, sizeof(*out));
    out->plain_rle_only = 1;
    if (!md)
        return -1;
    uint64_t at = (uint64_t)ti(md, 9, -1), size = (uint64_t)ti(md, 7, -1);
    uint64_t want = (uint64_t)ti(md, 5, -1);
    if (at > f->len || size > f->len - at || want > 100000000)
        return -1;
    out->cells = calloc(want ? want : 1, sizeof(rd_cell));
    const uint8_t *p = f->buf + at, *end = p + size;
    while (p < end) {
        tnode ph;
        long used = tdecode(p, (size_t)(end - p), &ph);
        if (used < 0)
            return -1;
        p += used;
        out->raw_size += (uint64_t)used;
        const tnode *dh = tf(&ph, 5);
        int64_t raw = ti(&ph, 2, -1), packed = ti(&ph, 3, -1), nv = ti(dh, 1, -1);
        if (ti(&ph, 1, -1) != 0 || ti(dh, 2, -1) != 0 || ti(dh, 3, -1) != 3)
            out->plain_rle_only = 0;
        tfree(&ph);
        if (raw < 4 || packed < 0 || nv < 0 || packed > end - p || (uint64_t)nv > want - out->n)
            return -1;
        out->raw_size += (uint64_t)raw;
        uint8_t *page = malloc((size_t)raw);
        out->pages = realloc(out->pages, (out->npages + 1) * sizeof(*out->pages));
        out->pages[out->npages++] = page;
        if (ZSTD_decompress(page, (size_t)raw, p, (size_t)packed) != (size_t)raw)
            return -1;
        p += packed;
        uint32_t lvlen = rd_le32(page);
        if (lvlen > (uint64_t)raw - 4)
            return -1;
        uint8_t *lv = malloc((size_t)nv + 1);
        int rc = rd_levels(page + 4, lvlen, lv, (size_t)nv);
        const uint8_t *v = page + 4 + lvlen, *vend = page + raw;
        size_t bools = 0;
        for (int64_t k = 0; rc == 0 && k < nv; k++) {
            rd_cell *cell = &out->cells[out->n++];
            if (!lv[k]) {
                cell->null = 1;
                continue;
            }
            size_t need = type == 0 ? 0 : type == 1 || type == 4 ? 4 : type == 2 || type == 5 ? 8
                        : type == 6 ? 4 : length;
            if ((size_t)(vend - v) < need) {
                rc = -1;
                break;
            }
            switch (type) {
            case 0:
                if (bools / 8 >= (size_t)(vend - v)) {
                    rc = -1;
                    break;
                }
                cell->i = (v[bools / 8] >> (bools % 8)) & 1;
                bools++;
                break;
            case 1: cell->i = (int32_t)rd_le32(v); v += 4; break;
            case 2: cell->i = (int64_t)rd_le64(v); v += 8; break;
            case 4: cell->f32 = rd_le32(v); v += 4; break;
            case 5: cell->f64 = rd_le64(v); v += 8; break;
            case 6:
                cell->len = rd_le32(v);
                v += 4;
                if (cell->len > (size_t)(vend - v)) {
                    rc = -1;
                    break;
                }
                cell->b = v;
                v += cell->len;
                break;
            case 7: cell->b = v; cell->len = length; v += length; break;
            default: rc = -1;
            }
        }
        if (type == 0)
            v += (bools + 7) / 8;
        free(lv);
        /* the values must fill the page exactly */
        if (rc < 0 || v != vend)
            return -1;
    }
    return out->n == want ? 0 : -1;
}

#endif

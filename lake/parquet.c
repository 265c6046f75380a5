/*
 * parquet.c -- the streaming Parquet writer (see parquet.h).
 *
 * Each column has a current page (one definition level byte per cell and
 * the PLAIN bytes of its non-NULL values) and a current chunk (the row
 * group's finished pages, each a Thrift PageHeader followed by one zstd
 * frame of: 4-byte length, RLE/bit-packed definition levels, values).  A
 * page is compressed once it passes page_bytes; at the end of a row that
 * brings the buffered bytes past row_group_bytes, every column's last page
 * is compressed and the chunks go to the sink one after the other, in
 * schema order.  The row group's metadata (chunk offsets, sizes, counts,
 * statistics) is encoded then and kept, as Thrift bytes, for the footer.
 *
 * Statistics are kept twice per column, for the current chunk and for the
 * file, and updated with every value in the column's sort order
 * (parquet_stats.c).
 */
#include "parquet.h"
#include "parquet_impl.h"
#include "thrift.h"
#include "../util/bytebuf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#ifndef LAKEFS_VERSION
#define LAKEFS_VERSION "dev"
#endif

#define DEFAULT_ROW_GROUP_BYTES ((size_t)64 << 20)
#define DEFAULT_PAGE_BYTES ((size_t)1 << 20)
#define PAGE_BYTES_MAX ((size_t)256 << 20)
#define DEFAULT_ZSTD_LEVEL 3
#define BITPACK_GROUPS_MAX 63     /* groups of 8 per bit-packed run: 1-byte header */

/* Parquet enum values the writer uses (parquet.thrift). */
enum {
    REP_OPTIONAL = 1,             /* FieldRepetitionType */
    ENC_PLAIN = 0, ENC_RLE = 3,   /* Encoding */
    CODEC_ZSTD = 6,               /* CompressionCodec */
    PAGE_DATA = 0,                /* PageType */
    CONV_UTF8 = 0, CONV_DECIMAL = 5, CONV_DATE = 6, /* ConvertedType */
    CONV_TIMESTAMP_MICROS = 10, CONV_INT_16 = 16
};

struct pq_writer {
    pq_col *cols;
    size_t ncols;
    pq_options opt;               /* defaults filled in */
    pq_sink_fn sink;
    void *sink_arg;
    ZSTD_CCtx *cctx;
    bytebuf raw;                  /* scratch: a page before compression */
    bytebuf packed;               /* scratch: a compressed page */
    thrift_out hdr;               /* scratch: a page header */
    thrift_out groups;            /* RowGroup structs written, for the footer */
    uint32_t ngroups;             /* row groups written */
    size_t cursor;                /* next column of the current row */
    size_t buffered;              /* bytes held for the current row group */
    uint64_t rows;                /* rows ended */
    uint64_t group_rows;          /* of those, in the current row group */
    uint64_t offset;              /* bytes given to the sink */
    int failed;                   /* -errno after ENOMEM or a sink error */
    int finished;                 /* footer written */
    int file_full;                /* past opt.file_bytes: the next row begins a new file */
    char err[256];                /* last error message */
};

/* ------------------------------------------------------------ bytes */

static void put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* ------------------------------------------------------------ errors */

/* Set W's message from FMT; returns RC. */
static int say(pq_writer *w, int rc, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(w->err, sizeof(w->err), fmt, ap);
    va_end(ap);
    return rc;
}

/* A failure that leaves W unusable (out of memory, sink, zstd). */
static int fail(pq_writer *w, int rc, const char *what)
{
    w->failed = rc;
    return say(w, rc, "%s: %s", what, strerror(-rc));
}

/* ------------------------------------------------------------ checks */

/* 1 if S[0..N) is well-formed UTF-8 (no overlong forms, surrogates or
 * code points past U+10FFFF). */
static int utf8_valid(const uint8_t *s, size_t n)
{
    size_t i = 0;

    while (i < n) {
        uint8_t c = s[i];
        size_t len, k;
        uint32_t cp, least;

        if (c < 0x80) {
            i++;
            continue;
        }
        if ((c & 0xE0) == 0xC0) {
            len = 2, cp = c & 0x1F, least = 0x80;
        } else if ((c & 0xF0) == 0xE0) {
            len = 3, cp = c & 0x0F, least = 0x800;
        } else if ((c & 0xF8) == 0xF0) {
            len = 4, cp = c & 0x07, least = 0x10000;
        } else {
            return 0;
        }
        if (n - i < len)
            return 0;
        for (k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return 0;
            cp = cp << 6 | (s[i + k] & 0x3F);
        }
        if (cp < least || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        i += len;
    }
    return 1;
}

/* Most decimal digits a DECIMAL in N bytes (1..16) holds:
 * floor(log10(2^(8N-1) - 1)). */
static const int32_t flba_decimal_digits[17] = {
    0, 2, 4, 6, 9, 11, 14, 16, 18, 21, 23, 26, 28, 31, 33, 35, 38
};

static const char *physical_name(pq_physical t)
{
    switch (t) {
    case PQ_BOOLEAN: return "BOOLEAN";
    case PQ_INT32: return "INT32";
    case PQ_INT64: return "INT64";
    case PQ_FLOAT: return "FLOAT";
    case PQ_DOUBLE: return "DOUBLE";
    case PQ_BYTE_ARRAY: return "BYTE_ARRAY";
    case PQ_FIXED_LEN_BYTE_ARRAY: return "FIXED_LEN_BYTE_ARRAY";
    }
    return NULL;
}

static const char *logical_name(pq_logical l)
{
    switch (l) {
    case PQ_NONE: return "no logical type";
    case PQ_STRING: return "STRING";
    case PQ_INT16: return "INT16";
    case PQ_DATE: return "DATE";
    case PQ_TIMESTAMP: return "TIMESTAMP";
    case PQ_DECIMAL: return "DECIMAL";
    case PQ_UUID: return "UUID";
    }
    return NULL;
}

/* Check column I of the schema against the table in parquet.h. */
static int check_column(pq_writer *w, const pq_column *cols, size_t i)
{
    const pq_column *c = &cols[i];
    const char *pn = physical_name(c->type), *ln = logical_name(c->logical);
    int ok;

    if (!c->name || !*c->name || !utf8_valid((const uint8_t *)c->name, strlen(c->name)))
        return say(w, -EINVAL, "column %zu: name is missing or not UTF-8", i);
    for (size_t j = 0; j < i; j++)
        if (strcmp(cols[j].name, c->name) == 0)
            return say(w, -EINVAL, "column %zu: name \"%s\" used twice", i, c->name);
    if (!pn)
        return say(w, -EINVAL, "column %zu (%s): unknown physical type %d", i, c->name, (int)c->type);
    if (!ln)
        return say(w, -EINVAL, "column %zu (%s): unknown logical type %d", i, c->name, (int)c->logical);
    switch (c->logical) {
    case PQ_NONE: ok = 1; break;
    case PQ_STRING: ok = c->type == PQ_BYTE_ARRAY; break;
    case PQ_INT16: case PQ_DATE: ok = c->type == PQ_INT32; break;
    case PQ_TIMESTAMP: ok = c->type == PQ_INT64; break;
    case PQ_DECIMAL:
        ok = c->type == PQ_INT32 || c->type == PQ_INT64 || c->type == PQ_FIXED_LEN_BYTE_ARRAY;
        break;
    case PQ_UUID: ok = c->type == PQ_FIXED_LEN_BYTE_ARRAY; break;
    default: ok = 0; break;
    }
    if (!ok)
        return say(w, -EINVAL, "column %zu (%s): %s cannot be stored as %s", i, c->name, ln, pn);
    if (c->type == PQ_FIXED_LEN_BYTE_ARRAY) {
        if (c->length < 1 || (uint32_t)c->length > PQ_VALUE_MAX)
            return say(w, -EINVAL, "column %zu (%s): FIXED_LEN_BYTE_ARRAY needs a length of 1 to %u bytes",
                       i, c->name, PQ_VALUE_MAX);
        if (c->logical == PQ_UUID && c->length != 16)
            return say(w, -EINVAL, "column %zu (%s): UUID needs a length of 16, not %d", i, c->name, (int)c->length);
    } else if (c->length != 0) {
        return say(w, -EINVAL, "column %zu (%s): a length is only for FIXED_LEN_BYTE_ARRAY", i, c->name);
    }
    if (c->logical == PQ_DECIMAL) {
        int32_t most = c->type == PQ_INT32 ? 9 : c->type == PQ_INT64 ? 18
                     : c->length <= 16 ? flba_decimal_digits[c->length] : 0;
        if (most == 0)
            return say(w, -EINVAL, "column %zu (%s): a DECIMAL takes at most 16 bytes (38 digits)", i, c->name);
        if (c->precision < 1 || c->precision > most)
            return say(w, -EINVAL, "column %zu (%s): DECIMAL precision %d is not in 1..%d for %s",
                       i, c->name, (int)c->precision, (int)most, pn);
        if (c->scale < 0 || c->scale > c->precision)
            return say(w, -EINVAL, "column %zu (%s): DECIMAL scale %d is not in 0..%d",
                       i, c->name, (int)c->scale, (int)c->precision);
    } else if (c->precision != 0 || c->scale != 0) {
        return say(w, -EINVAL, "column %zu (%s): precision and scale are only for DECIMAL", i, c->name);
    }
    return 0;
}

static sort_order column_order(const pq_column *c)
{
    switch (c->type) {
    case PQ_BOOLEAN: case PQ_INT32: return ORDER_INT32;
    case PQ_INT64: return ORDER_INT64;
    case PQ_FLOAT: return ORDER_FLOAT;
    case PQ_DOUBLE: return ORDER_DOUBLE;
    case PQ_BYTE_ARRAY: return ORDER_BYTES;
    case PQ_FIXED_LEN_BYTE_ARRAY: break;
    }
    return c->logical == PQ_DECIMAL ? ORDER_SIGNED_BE : ORDER_BYTES;
}

/* ------------------------------------------------------------ sink */

/* Give N bytes of P to the sink. */
static int emit(pq_writer *w, const void *p, size_t n)
{
    int rc = w->sink(w->sink_arg, p, n);

    if (rc < 0)
        return fail(w, rc, "writing the file");
    w->offset += n;
    return 0;
}

/* ------------------------------------------------------------ open */

int pq_open(const pq_column *cols, size_t ncols, const pq_options *opt,
            pq_sink_fn sink, void *arg, pq_writer **out)
{
    pq_writer *w = calloc(1, sizeof(*w));
    int rc;

    *out = w;
    if (!w)
        return -ENOMEM;
    thrift_init(&w->hdr);
    thrift_init(&w->groups);
    if (opt)
        w->opt = *opt;
    if (!w->opt.row_group_bytes)
        w->opt.row_group_bytes = DEFAULT_ROW_GROUP_BYTES;
    if (!w->opt.page_bytes)
        w->opt.page_bytes = DEFAULT_PAGE_BYTES;
    if (!w->opt.zstd_level)
        w->opt.zstd_level = DEFAULT_ZSTD_LEVEL;
    w->sink = sink;
    w->sink_arg = arg;
    /* a writer that failed to open takes nothing more */
    w->failed = -EINVAL;
    if (!sink)
        return say(w, -EINVAL, "no sink");
    if (w->opt.page_bytes > PAGE_BYTES_MAX)
        return say(w, -EINVAL, "page_bytes %zu is more than %zu", w->opt.page_bytes, PAGE_BYTES_MAX);
    if (w->opt.zstd_level < ZSTD_minCLevel() || w->opt.zstd_level > ZSTD_maxCLevel())
        return say(w, -EINVAL, "zstd level %d is not in %d..%d", w->opt.zstd_level,
                   ZSTD_minCLevel(), ZSTD_maxCLevel());
    if (w->opt.file_bytes && !w->opt.file_done)
        return say(w, -EINVAL, "file_bytes without file_done: the files would run together");
    if (ncols == 0 || ncols >= INT32_MAX)
        return say(w, -EINVAL, "a schema needs 1 to %d columns", INT32_MAX - 1);
    for (size_t i = 0; i < ncols; i++)
        if ((rc = check_column(w, cols, i)) < 0)
            return rc;
    w->failed = 0;
    w->cols = calloc(ncols, sizeof(*w->cols));
    w->cctx = ZSTD_createCCtx();
    if (!w->cols || !w->cctx)
        return fail(w, -ENOMEM, "opening");
    w->ncols = ncols;
    for (size_t i = 0; i < ncols; i++) {
        pq_col *c = &w->cols[i];
        c->def = cols[i];
        c->order = column_order(&cols[i]);
        if (!(c->def.name = strdup(cols[i].name)))
            return fail(w, -ENOMEM, "opening");
    }
    return emit(w, "PAR1", 4);
}

/* ------------------------------------------------------------ values */

/* V of column C as PLAIN bytes, without a length for byte arrays (as a
 * Statistics min/max holds it); returns its length, the bytes in TMP or
 * V's own buffer. */
size_t pq_value_plain(const pq_col *c, const pq_value *v, uint8_t tmp[8], const uint8_t **p)
{
    *p = tmp;
    switch (c->def.type) {
    case PQ_BOOLEAN:
        tmp[0] = (uint8_t)v->i32;
        return 1;
    case PQ_INT32:
        put_le32(tmp, (uint32_t)v->i32);
        return 4;
    case PQ_FLOAT: {
        uint32_t u;
        memcpy(&u, &v->f32, 4);
        put_le32(tmp, u);
        return 4;
    }
    case PQ_INT64:
        put_le64(tmp, (uint64_t)v->i64);
        return 8;
    case PQ_DOUBLE: {
        uint64_t u;
        memcpy(&u, &v->f64, 8);
        put_le64(tmp, u);
        return 8;
    }
    case PQ_BYTE_ARRAY: case PQ_FIXED_LEN_BYTE_ARRAY:
        break;
    }
    *p = v->bytes;
    return v->len;
}

/* ------------------------------------------------------------ pages */

/* Append N definition levels LV (0 or 1) to OUT as RLE/bit-packed hybrid
 * runs of bit width 1, without the length prefix: runs of 8 or more equal
 * levels as RLE runs, the rest bit-packed (LSB first) in groups of 8, the
 * last group padded with zeros. */
static int bitpack_run(bytebuf *out, const uint8_t *lv, size_t n)
{
    while (n > 0) {
        size_t groups = (n + 7) / 8, take;
        if (groups > BITPACK_GROUPS_MAX)
            groups = BITPACK_GROUPS_MAX;
        take = groups * 8 < n ? groups * 8 : n;
        if (bytebuf_varint(out, groups << 1 | 1) < 0 || bytebuf_reserve(out, groups) < 0)
            return -ENOMEM;
        memset(out->p + out->len, 0, groups);
        for (size_t i = 0; i < take; i++)
            out->p[out->len + i / 8] |= (uint8_t)(lv[i] << (i % 8));
        out->len += groups;
        lv += take;
        n -= take;
    }
    return 0;
}

static int rle_levels(bytebuf *out, const uint8_t *lv, size_t n)
{
    size_t i = 0, literal = 0;    /* levels [literal, i) wait to be bit-packed */

    while (i < n) {
        size_t run = 1, pending = i - literal, pad;
        while (i + run < n && lv[i + run] == lv[i])
            run++;
        /* the bit-packed levels before an RLE run must fill whole groups */
        pad = (8 - pending % 8) % 8;
        if (run >= 8 + pad) {
            if (bitpack_run(out, lv + literal, pending + pad) < 0 ||
                bytebuf_varint(out, (uint64_t)(run - pad) << 1) < 0 ||
                bytebuf_byte(out, lv[i]) < 0)
                return -ENOMEM;
            literal = i + run;
        }
        i += run;
    }
    return bitpack_run(out, lv + literal, n - literal);
}

/* Compress column C's current page into its chunk. */
static int flush_page(pq_writer *w, pq_col *c)
{
    size_t cells = c->levels.len, held = c->levels.len + c->values.len;
    size_t bound, packed;
    thrift_out *h = &w->hdr;

    if (cells == 0)
        return 0;
    w->raw.len = 0;
    if (bytebuf_reserve(&w->raw, 4) < 0)
        return fail(w, -ENOMEM, "making a page");
    w->raw.len = 4;
    if (rle_levels(&w->raw, c->levels.p, cells) < 0)
        return fail(w, -ENOMEM, "making a page");
    put_le32(w->raw.p, (uint32_t)(w->raw.len - 4));
    if (bytebuf_add(&w->raw, c->values.p, c->values.len) < 0)
        return fail(w, -ENOMEM, "making a page");
    bound = ZSTD_compressBound(w->raw.len);
    w->packed.len = 0;
    if (bytebuf_reserve(&w->packed, bound) < 0)
        return fail(w, -ENOMEM, "making a page");
    packed = ZSTD_compressCCtx(w->cctx, w->packed.p, bound, w->raw.p, w->raw.len,
                               w->opt.zstd_level);
    if (ZSTD_isError(packed))
        return say(w, w->failed = -EIO, "zstd: %s", ZSTD_getErrorName(packed));
    /* PageHeader */
    thrift_reset(h);
    thrift_struct_begin(h);
    thrift_field_i32(h, 1, PAGE_DATA);                         /* type */
    thrift_field_i32(h, 2, (int32_t)w->raw.len);               /* uncompressed_page_size */
    thrift_field_i32(h, 3, (int32_t)packed);                   /* compressed_page_size */
    thrift_field_struct(h, 5);                                 /* data_page_header */
    thrift_field_i32(h, 1, (int32_t)cells);                    /* num_values */
    thrift_field_i32(h, 2, ENC_PLAIN);                         /* encoding */
    thrift_field_i32(h, 3, ENC_RLE);                           /* definition_level_encoding */
    thrift_field_i32(h, 4, ENC_RLE);                           /* repetition_level_encoding */
    thrift_struct_end(h);
    thrift_struct_end(h);
    if (thrift_error(h) < 0 || bytebuf_add(&c->chunk, h->out.p, h->out.len) < 0 ||
        bytebuf_add(&c->chunk, w->packed.p, packed) < 0)
        return fail(w, -ENOMEM, "making a page");
    c->chunk_cells += cells;
    c->chunk_raw += h->out.len + w->raw.len;
    w->buffered = w->buffered - held + h->out.len + packed;
    c->levels.len = c->values.len = 0;
    c->page_bools = 0;
    return 0;
}

/* ------------------------------------------------------------ row groups */

/* Write the current row group: every column's chunk, in schema order, and
 * its RowGroup struct into w->groups. */
static int flush_row_group(pq_writer *w)
{
    thrift_out *g = &w->groups;
    uint64_t first = w->offset, raw_total = 0, packed_total = 0;
    int rc;

    if (w->group_rows == 0)
        return 0;
    thrift_struct_begin(g);                                    /* RowGroup */
    thrift_field_list(g, 1, THRIFT_STRUCT, (uint32_t)w->ncols); /* columns */
    for (size_t i = 0; i < w->ncols; i++) {
        pq_col *c = &w->cols[i];
        uint64_t at = w->offset;

        if ((rc = flush_page(w, c)) < 0 || (rc = emit(w, c->chunk.p, c->chunk.len)) < 0)
            return rc;
        thrift_struct_begin(g);                                /* ColumnChunk */
        thrift_field_i64(g, 2, 0);                             /* file_offset */
        thrift_field_struct(g, 3);                             /* meta_data */
        thrift_field_i32(g, 1, (int32_t)c->def.type);          /* type */
        thrift_field_list(g, 2, THRIFT_I32, 2);                /* encodings */
        thrift_i32(g, ENC_PLAIN);
        thrift_i32(g, ENC_RLE);
        thrift_field_list(g, 3, THRIFT_BINARY, 1);             /* path_in_schema */
        thrift_binary(g, c->def.name, strlen(c->def.name));
        thrift_field_i32(g, 4, CODEC_ZSTD);                    /* codec */
        thrift_field_i64(g, 5, (int64_t)c->chunk_cells);       /* num_values */
        thrift_field_i64(g, 6, (int64_t)c->chunk_raw);         /* total_uncompressed_size */
        thrift_field_i64(g, 7, (int64_t)c->chunk.len);         /* total_compressed_size */
        thrift_field_i64(g, 9, (int64_t)at);                   /* data_page_offset */
        pqstats_encode(g, 12, c);                                /* statistics */
        thrift_struct_end(g);
        thrift_struct_end(g);
        raw_total += c->chunk_raw;
        packed_total += c->chunk.len;
        c->chunk.len = 0;
        c->chunk_cells = c->chunk_raw = 0;
        pqstats_reset(&c->chunk_stats);
    }
    thrift_field_i64(g, 2, (int64_t)raw_total);                /* total_byte_size */
    thrift_field_i64(g, 3, (int64_t)w->group_rows);            /* num_rows */
    thrift_field_i64(g, 5, (int64_t)first);                    /* file_offset */
    thrift_field_i64(g, 6, (int64_t)packed_total);             /* total_compressed_size */
    thrift_struct_end(g);
    if (thrift_error(g) < 0)
        return fail(w, thrift_error(g), "encoding the row group");
    w->ngroups++;
    w->group_rows = 0;
    w->buffered = 0;
    return 0;
}

/* ------------------------------------------------------------ cells */

static int next_file(pq_writer *w);

/* The column the next cell goes to, in *OUT; 0, or -errno with W's
 * message set (the writer failed or finished, or the row is full). */
static int next_cell(pq_writer *w, pq_col **out)
{
    *out = NULL;
    if (w->failed)
        return w->failed;
    if (w->finished)
        return say(w, -EINVAL, "the file is finished");
    if (w->cursor == w->ncols)
        return say(w, -EINVAL, "row %llu has all its %zu cells: end it with pq_end_row",
                   (unsigned long long)w->rows, w->ncols);
    if (w->cursor == 0 && w->file_full) {
        int rc = next_file(w);
        if (rc < 0)
            return rc;
    }
    *out = &w->cols[w->cursor];
    return 0;
}

/* A cell of the wrong kind for column C. */
static int mismatch(pq_writer *w, const pq_col *c, const char *call)
{
    return say(w, -EINVAL, "column %zu (%s) is %s%s%s: %s does not fit it",
               w->cursor, c->def.name, physical_name(c->def.type),
               c->def.logical == PQ_NONE ? "" : " ",
               c->def.logical == PQ_NONE ? "" : logical_name(c->def.logical), call);
}

/* Append one cell to C: LEVEL 1 with value V (as C's physical type holds
 * it), or 0 for NULL; may compress the page. */
static int add_cell(pq_writer *w, pq_col *c, int level, const pq_value *v)
{
    size_t held = c->levels.len + c->values.len;
    uint8_t tmp[8];
    int rc = 0;

    if (level) {
        switch (c->def.type) {
        case PQ_BOOLEAN:
            if (c->page_bools % 8 == 0)
                rc = bytebuf_byte(&c->values, 0);
            if (rc == 0) {
                c->values.p[c->values.len - 1] |= (uint8_t)(v->i32 << (c->page_bools % 8));
                c->page_bools++;
            }
            break;
        case PQ_INT32: case PQ_FLOAT: case PQ_INT64: case PQ_DOUBLE: {
            const uint8_t *p;
            size_t n = pq_value_plain(c, v, tmp, &p);
            rc = bytebuf_add(&c->values, p, n);
            break;
        }
        case PQ_BYTE_ARRAY:
            put_le32(tmp, (uint32_t)v->len);
            rc = bytebuf_add(&c->values, tmp, 4);
            if (rc == 0)
                rc = bytebuf_add(&c->values, v->bytes, v->len);
            break;
        case PQ_FIXED_LEN_BYTE_ARRAY:
            rc = bytebuf_add(&c->values, v->bytes, v->len);
            break;
        }
        if (rc == 0)
            rc = pqstats_add(&c->chunk_stats, c->order, v);
        if (rc == 0)
            rc = pqstats_add(&c->file_stats, c->order, v);
    } else {
        c->chunk_stats.nulls++;
        c->file_stats.nulls++;
    }
    if (rc == 0)
        rc = bytebuf_byte(&c->levels, (uint8_t)level);
    if (rc < 0)
        return fail(w, rc, "adding a value");
    w->buffered += c->levels.len + c->values.len - held;
    w->cursor++;
    if (c->levels.len + c->values.len >= w->opt.page_bytes)
        return flush_page(w, c);
    return 0;
}

int pq_null(pq_writer *w)
{
    pq_col *c;
    int rc = next_cell(w, &c);

    return rc < 0 ? rc : add_cell(w, c, 0, NULL);
}

int pq_bool(pq_writer *w, int v)
{
    pq_col *c;
    int rc = next_cell(w, &c);
    pq_value val = { .i32 = v != 0 };

    if (rc < 0)
        return rc;
    if (c->def.type != PQ_BOOLEAN)
        return mismatch(w, c, "pq_bool");
    return add_cell(w, c, 1, &val);
}

int pq_int32(pq_writer *w, int32_t v)
{
    pq_col *c;
    int rc = next_cell(w, &c);
    pq_value val = { .i32 = v };

    if (rc < 0)
        return rc;
    if (c->def.type != PQ_INT32)
        return mismatch(w, c, "pq_int32");
    if (c->def.logical == PQ_INT16 && (v < INT16_MIN || v > INT16_MAX))
        return say(w, -ERANGE, "column %zu (%s): %ld is out of INT16's range",
                   w->cursor, c->def.name, (long)v);
    if (c->def.logical == PQ_DECIMAL)
        return pq_int64(w, v);
    return add_cell(w, c, 1, &val);
}

int pq_int64(pq_writer *w, int64_t v)
{
    pq_col *c;
    int rc = next_cell(w, &c);
    pq_value val = { .i64 = v };
    uint8_t be[16];

    if (rc < 0)
        return rc;
    if (c->def.logical == PQ_DECIMAL) {
        /* the unscaled value must have at most precision digits */
        if (c->def.precision <= 18) {
            int64_t limit = 1;
            for (int32_t d = 0; d < c->def.precision; d++)
                limit *= 10;
            if (v >= limit || v <= -limit)
                return say(w, -ERANGE, "column %zu (%s): unscaled value %lld has more than %d digits",
                           w->cursor, c->def.name, (long long)v, (int)c->def.precision);
        }
        if (c->def.type == PQ_INT32) {
            val.i32 = (int32_t)v;
        } else if (c->def.type == PQ_FIXED_LEN_BYTE_ARRAY) {
            /* big-endian two's complement, sign-extended to the length */
            size_t n = (size_t)c->def.length;
            uint64_t u = (uint64_t)v;
            for (size_t i = 0; i < n; i++)
                be[n - 1 - i] = i < 8 ? (uint8_t)(u >> (8 * i)) : (v < 0 ? 0xFF : 0);
            val.bytes = be;
            val.len = n;
        }
    } else if (c->def.type != PQ_INT64) {
        return mismatch(w, c, "pq_int64");
    }
    return add_cell(w, c, 1, &val);
}

int pq_float(pq_writer *w, float v)
{
    pq_col *c;
    int rc = next_cell(w, &c);
    pq_value val = { .f32 = v };

    if (rc < 0)
        return rc;
    if (c->def.type != PQ_FLOAT)
        return mismatch(w, c, "pq_float");
    return add_cell(w, c, 1, &val);
}

int pq_double(pq_writer *w, double v)
{
    pq_col *c;
    int rc = next_cell(w, &c);
    pq_value val = { .f64 = v };

    if (rc < 0)
        return rc;
    if (c->def.type != PQ_DOUBLE)
        return mismatch(w, c, "pq_double");
    return add_cell(w, c, 1, &val);
}

int pq_bytes(pq_writer *w, const void *p, size_t n)
{
    pq_col *c;
    int rc = next_cell(w, &c);
    pq_value val = { .bytes = p, .len = n };

    if (rc < 0)
        return rc;
    if (c->def.type != PQ_BYTE_ARRAY && c->def.type != PQ_FIXED_LEN_BYTE_ARRAY)
        return mismatch(w, c, "pq_bytes");
    if (n && !p)
        return say(w, -EINVAL, "column %zu (%s): no bytes", w->cursor, c->def.name);
    if (n > PQ_VALUE_MAX)
        return say(w, -EFBIG, "column %zu (%s): a value of %zu bytes is more than %u",
                   w->cursor, c->def.name, n, PQ_VALUE_MAX);
    if (c->def.type == PQ_FIXED_LEN_BYTE_ARRAY && n != (size_t)c->def.length)
        return say(w, -EINVAL, "column %zu (%s): %zu bytes, the column takes %d",
                   w->cursor, c->def.name, n, (int)c->def.length);
    if (c->def.logical == PQ_STRING && !utf8_valid(p, n))
        return say(w, -EINVAL, "column %zu (%s): the value is not valid UTF-8",
                   w->cursor, c->def.name);
    return add_cell(w, c, 1, &val);
}

int pq_end_row(pq_writer *w)
{
    if (w->failed)
        return w->failed;
    if (w->finished)
        return say(w, -EINVAL, "the file is finished");
    if (w->cursor != w->ncols)
        return say(w, -EINVAL, "row %llu has %zu of its %zu cells",
                   (unsigned long long)w->rows, w->cursor, w->ncols);
    w->cursor = 0;
    w->rows++;
    w->group_rows++;
    if (w->buffered < w->opt.row_group_bytes)
        return 0;
    int rc = flush_row_group(w);
    if (rc == 0 && w->opt.file_bytes && w->offset >= w->opt.file_bytes)
        w->file_full = 1;
    return rc;
}

/* ------------------------------------------------------------ footer */

/* Column C's SchemaElement. */
static void encode_schema_element(thrift_out *t, const pq_col *c)
{
    const pq_column *d = &c->def;

    thrift_struct_begin(t);
    thrift_field_i32(t, 1, (int32_t)d->type);                  /* type */
    if (d->type == PQ_FIXED_LEN_BYTE_ARRAY)
        thrift_field_i32(t, 2, d->length);                     /* type_length */
    thrift_field_i32(t, 3, REP_OPTIONAL);                      /* repetition_type */
    thrift_field_string(t, 4, d->name);                        /* name */
    switch (d->logical) {                                      /* converted_type */
    case PQ_STRING: thrift_field_i32(t, 6, CONV_UTF8); break;
    case PQ_INT16: thrift_field_i32(t, 6, CONV_INT_16); break;
    case PQ_DATE: thrift_field_i32(t, 6, CONV_DATE); break;
    case PQ_TIMESTAMP: thrift_field_i32(t, 6, CONV_TIMESTAMP_MICROS); break;
    case PQ_DECIMAL:
        thrift_field_i32(t, 6, CONV_DECIMAL);
        thrift_field_i32(t, 7, d->scale);                      /* scale */
        thrift_field_i32(t, 8, d->precision);                  /* precision */
        break;
    case PQ_NONE: case PQ_UUID: break;
    }
    if (d->logical != PQ_NONE) {
        thrift_field_struct(t, 10);                            /* logicalType (union) */
        switch (d->logical) {
        case PQ_STRING: thrift_field_struct(t, 1); break;      /* StringType {} */
        case PQ_DECIMAL:
            thrift_field_struct(t, 5);                         /* DecimalType */
            thrift_field_i32(t, 1, d->scale);
            thrift_field_i32(t, 2, d->precision);
            break;
        case PQ_DATE: thrift_field_struct(t, 6); break;        /* DateType {} */
        case PQ_TIMESTAMP:
            thrift_field_struct(t, 8);                         /* TimestampType */
            thrift_field_bool(t, 1, 1);                        /* isAdjustedToUTC */
            thrift_field_struct(t, 2);                         /* unit: TimeUnit */
            thrift_field_struct(t, 2);                         /* MICROS {} */
            thrift_struct_end(t);
            thrift_struct_end(t);
            break;
        case PQ_INT16:
            thrift_field_struct(t, 10);                        /* IntType */
            thrift_field_i8(t, 1, 16);                         /* bitWidth */
            thrift_field_bool(t, 2, 1);                        /* isSigned */
            break;
        case PQ_UUID: thrift_field_struct(t, 14); break;       /* UUIDType {} */
        case PQ_NONE: break;
        }
        thrift_struct_end(t);                                  /* the type's struct */
        thrift_struct_end(t);                                  /* the union */
    }
    thrift_struct_end(t);
}

/* Encode FileMetaData into T. */
static void encode_footer(pq_writer *w, thrift_out *t)
{
    thrift_struct_begin(t);
    thrift_field_i32(t, 1, 1);                                 /* version */
    thrift_field_list(t, 2, THRIFT_STRUCT, (uint32_t)w->ncols + 1); /* schema */
    thrift_struct_begin(t);                                    /* the root */
    thrift_field_string(t, 4, "schema");
    thrift_field_i32(t, 5, (int32_t)w->ncols);                 /* num_children */
    thrift_struct_end(t);
    for (size_t i = 0; i < w->ncols; i++)
        encode_schema_element(t, &w->cols[i]);
    thrift_field_i64(t, 3, (int64_t)w->rows);                  /* num_rows */
    thrift_field_list(t, 4, THRIFT_STRUCT, w->ngroups);        /* row_groups */
    thrift_raw(t, w->groups.out.p, w->groups.out.len);
    thrift_field_string(t, 6, "lakefs version " LAKEFS_VERSION); /* created_by */
    thrift_field_list(t, 7, THRIFT_STRUCT, (uint32_t)w->ncols); /* column_orders */
    for (size_t i = 0; i < w->ncols; i++) {
        thrift_struct_begin(t);                                /* ColumnOrder */
        thrift_field_struct(t, 1);                             /* TYPE_ORDER {} */
        thrift_struct_end(t);
        thrift_struct_end(t);
    }
    thrift_struct_end(t);
}

/* Write the last row group and the footer of the current file. */
static int end_file(pq_writer *w)
{
    thrift_out t;
    uint8_t tail[8];
    int rc;

    if ((rc = flush_row_group(w)) < 0)
        return rc;
    thrift_init(&t);
    encode_footer(w, &t);
    if ((rc = thrift_error(&t)) < 0) {
        thrift_free(&t);
        return fail(w, rc, "encoding the footer");
    }
    if (t.out.len > UINT32_MAX) {
        thrift_free(&t);
        return fail(w, -EFBIG, "encoding the footer");
    }
    put_le32(tail, (uint32_t)t.out.len);
    memcpy(tail + 4, "PAR1", 4);
    rc = emit(w, t.out.p, t.out.len);
    thrift_free(&t);
    if (rc < 0 || (rc = emit(w, tail, sizeof(tail))) < 0)
        return rc;
    w->finished = 1;
    return 0;
}

/* End the full current file, tell opt.file_done, begin the next one. */
static int next_file(pq_writer *w)
{
    int rc = end_file(w);

    if (rc < 0)
        return rc;
    if (w->opt.file_done && (rc = w->opt.file_done(w->opt.file_arg, w)) < 0)
        return fail(w, rc, "storing a finished file");
    for (size_t i = 0; i < w->ncols; i++)
        pqstats_reset(&w->cols[i].file_stats);
    thrift_reset(&w->groups);
    w->ngroups = 0;
    w->rows = 0;
    w->offset = 0;
    w->finished = 0;
    w->file_full = 0;
    return emit(w, "PAR1", 4);
}

int pq_finish(pq_writer *w)
{
    if (w->failed)
        return w->failed;
    if (w->finished)
        return say(w, -EINVAL, "the file is finished");
    if (w->cursor != 0)
        return say(w, -EINVAL, "row %llu has %zu of its %zu cells",
                   (unsigned long long)w->rows, w->cursor, w->ncols);
    return end_file(w);
}

/* ------------------------------------------------------------ the rest */

void pq_free(pq_writer *w)
{
    if (!w)
        return;
    for (size_t i = 0; i < w->ncols; i++) {
        pq_col *c = &w->cols[i];
        free((char *)c->def.name);
        bytebuf_free(&c->levels);
        bytebuf_free(&c->values);
        bytebuf_free(&c->chunk);
        pqstats_free(&c->chunk_stats);
        pqstats_free(&c->file_stats);
    }
    free(w->cols);
    ZSTD_freeCCtx(w->cctx);
    bytebuf_free(&w->raw);
    bytebuf_free(&w->packed);
    thrift_free(&w->hdr);
    thrift_free(&w->groups);
    free(w);
}

const char *pq_error(const pq_writer *w)
{
    return w ? w->err : "out of memory";
}

uint64_t pq_num_rows(const pq_writer *w)
{
    return w->rows;
}

uint64_t pq_file_size(const pq_writer *w)
{
    return w->offset;
}

int pq_stats_get(const pq_writer *w, size_t col, pq_stats *out)
{
    const stats_acc *s;

    if (col >= w->ncols)
        return -EINVAL;
    s = &w->cols[col].file_stats;
    memset(out, 0, sizeof(*out));
    out->null_count = s->nulls;
    out->nan_count = s->nans;
    out->has_min_max = s->has;
    if (s->has) {
        out->min = s->min;
        out->max = s->max;
    }
    return 0;
}

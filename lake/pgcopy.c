/*
 * pgcopy.c -- PostgreSQL COPY BINARY stream -> Parquet writer calls (see
 * pgcopy.h for the format, the type mapping and the error rules).
 *
 * The parser is a small state machine over a pending buffer: bytes are
 * appended, every complete item (header, field count, field) is consumed
 * and the rest moved to the front.  A field is decoded only when all its
 * bytes are there, so a value is never split across chunks.
 */
#include "pgcopy.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PG_EPOCH_DAYS 10957                      /* 1970-01-01 -> 2000-01-01 */
#define PG_EPOCH_MICROS 946684800000000LL

enum { ST_HEADER, ST_TUPLE, ST_FIELD, ST_DONE };

struct pgcopy {
    pgcopy_col *cols;
    char **names;
    size_t ncols;
    pq_writer *w;
    uint8_t *buf;                 /* pending bytes */
    size_t len, cap;
    int state;
    size_t field;                 /* next field of the current tuple */
    uint64_t rows;
    int err;
    char msg[256];
};

/* Record error RC with a message; returns RC. */
static int fail(pgcopy *p, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(pgcopy *p, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->msg, sizeof p->msg, fmt, ap);
    va_end(ap);
    p->err = rc;
    return rc;
}

static uint16_t be16(const uint8_t *b) { return (uint16_t)(b[0] << 8 | b[1]); }
static uint32_t be32(const uint8_t *b) { return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3]; }
static uint64_t be64(const uint8_t *b) { return (uint64_t)be32(b) << 32 | be32(b + 4); }

/* Bytes of a FIXED_LEN_BYTE_ARRAY DECIMAL of precision PREC (19..38). */
static int32_t dec_length(int32_t prec)
{
    static const int32_t maxprec[17] = {0, 2, 4, 6, 9, 11, 14, 16, 18, 21, 23, 26, 28, 31, 33, 35, 38};
    for (int32_t n = 1; n <= 16; n++)
        if (maxprec[n] >= prec) return n;
    return 16;
}

void pgcopy_map(const char *name, uint32_t oid, int32_t typmod, int is_array, int is_enum,
                pgcopy_col *col, pq_column *pq, const char **note)
{
    memset(col, 0, sizeof *col);
    memset(pq, 0, sizeof *pq);
    pq->name = name;
    *note = NULL;
    const char *spark = "string";
    switch (oid) {
    case PGCOPY_OID_INT2: col->kind = PGCOPY_INT16; pq->type = PQ_INT32; pq->logical = PQ_INT16; spark = "short"; break;
    case PGCOPY_OID_INT4: col->kind = PGCOPY_INT32; pq->type = PQ_INT32; spark = "integer"; break;
    case PGCOPY_OID_INT8: col->kind = PGCOPY_INT64; pq->type = PQ_INT64; spark = "long"; break;
    case PGCOPY_OID_FLOAT4: col->kind = PGCOPY_FLOAT4; pq->type = PQ_FLOAT; spark = "float"; break;
    case PGCOPY_OID_FLOAT8: col->kind = PGCOPY_FLOAT8; pq->type = PQ_DOUBLE; spark = "double"; break;
    case PGCOPY_OID_BOOL: col->kind = PGCOPY_BOOL; pq->type = PQ_BOOLEAN; spark = "boolean"; break;
    case PGCOPY_OID_TEXT: case PGCOPY_OID_VARCHAR: case PGCOPY_OID_BPCHAR: case PGCOPY_OID_NAME:
        col->kind = PGCOPY_TEXT; pq->type = PQ_BYTE_ARRAY; pq->logical = PQ_STRING; break;
    case PGCOPY_OID_BYTEA: col->kind = PGCOPY_BYTEA; pq->type = PQ_BYTE_ARRAY; spark = "binary"; break;
    case PGCOPY_OID_DATE: col->kind = PGCOPY_DATE; pq->type = PQ_INT32; pq->logical = PQ_DATE; spark = "date"; break;
    case PGCOPY_OID_TIMESTAMP: case PGCOPY_OID_TIMESTAMPTZ:
        col->kind = PGCOPY_TIMESTAMP; pq->type = PQ_INT64; pq->logical = PQ_TIMESTAMP; spark = "timestamp"; break;
    case PGCOPY_OID_NUMERIC:
        /* typmod = ((p << 16) | s) + VARHDRSZ; -1 without a precision */
        if (typmod >= 4) {
            int32_t p = ((typmod - 4) >> 16) & 0xffff, s = (typmod - 4) & 0x7ff;
            if (((typmod - 4) & 0xffff) > 0x7ff) s = -1;   /* negative scale (PG 15): not a DECIMAL */
            if (p >= 1 && p <= 38 && s >= 0 && s <= p) {
                col->kind = PGCOPY_NUMERIC;
                col->precision = pq->precision = p;
                col->scale = pq->scale = s;
                pq->logical = PQ_DECIMAL;
                if (p <= 9) pq->type = PQ_INT32;
                else if (p <= 18) pq->type = PQ_INT64;
                else { pq->type = PQ_FIXED_LEN_BYTE_ARRAY; pq->length = dec_length(p); }
                snprintf(col->spark, sizeof col->spark, "decimal(%d,%d)", (int)p, (int)s);
                return;
            }
        }
        *note = "numeric without a precision of at most 38 (and a scale 0..precision) is exported as string";
        goto as_text;
    case PGCOPY_OID_UUID: case PGCOPY_OID_JSON: case PGCOPY_OID_JSONB: case PGCOPY_OID_INTERVAL:
    case PGCOPY_OID_XML: case PGCOPY_OID_MONEY: case PGCOPY_OID_INET: case PGCOPY_OID_CIDR:
    case PGCOPY_OID_MACADDR: case PGCOPY_OID_TIME: case PGCOPY_OID_TIMETZ:
        goto as_text;
    default:
        if (!is_array && !is_enum) *note = "type without a Parquet mapping is exported as string (its text form)";
        goto as_text;
    }
    snprintf(col->spark, sizeof col->spark, "%s", spark);
    return;
as_text:
    col->kind = PGCOPY_TEXT;
    col->cast_text = 1;
    pq->type = PQ_BYTE_ARRAY;
    pq->logical = PQ_STRING;
    snprintf(col->spark, sizeof col->spark, "string");
}

int pgcopy_new(const pgcopy_col *cols, const char *const *names, size_t ncols, pq_writer *w,
               pgcopy **out)
{
    *out = NULL;
    pgcopy *p = calloc(1, sizeof *p);
    if (!p) return -ENOMEM;
    p->cols = malloc((ncols ? ncols : 1) * sizeof *p->cols);
    p->names = calloc(ncols ? ncols : 1, sizeof *p->names);
    if (!p->cols || !p->names) { pgcopy_free(p); return -ENOMEM; }
    p->ncols = ncols;
    for (size_t i = 0; i < ncols; i++) {
        p->cols[i] = cols[i];
        p->names[i] = strdup(names[i]);
        if (!p->names[i]) { p->ncols = i; pgcopy_free(p); return -ENOMEM; }
    }
    p->w = w;
    p->state = ST_HEADER;
    *out = p;
    return 0;
}

void pgcopy_free(pgcopy *p)
{
    if (!p) return;
    for (size_t i = 0; i < p->ncols; i++) free(p->names[i]);
    free(p->names);
    free(p->cols);
    free(p->buf);
    free(p);
}

uint64_t pgcopy_rows(const pgcopy *p) { return p->rows; }
const char *pgcopy_error(const pgcopy *p) { return p->msg; }

/* The writer refused a value: its error, named by column and row. */
static int wfail(pgcopy *p, int rc)
{
    return fail(p, rc, "column \"%s\", row %llu: %s", p->names[p->field],
                (unsigned long long)p->rows + 1, pq_error(p->w));
}

/* A numeric in binary send format (V, N bytes) to the unscaled value at
 * the column's scale, in *OUT (|value| < 10^precision). */
static int numeric_unscaled(pgcopy *p, const pgcopy_col *c, const uint8_t *v, size_t n, __int128 *out)
{
    const char *col = p->names[p->field];
    unsigned long long row = (unsigned long long)p->rows + 1;
    if (n < 8) return fail(p, -EINVAL, "column \"%s\", row %llu: numeric of %zu bytes (malformed COPY data)", col, row, n);
    int ndigits = (int16_t)be16(v), weight = (int16_t)be16(v + 2);
    uint16_t sign = be16(v + 4);
    if (ndigits < 0 || n != 8 + 2 * (size_t)ndigits)
        return fail(p, -EINVAL, "column \"%s\", row %llu: numeric with %d digits in %zu bytes (malformed COPY data)",
                    col, row, ndigits, n);
    if (sign == 0xC000 || sign == 0xD000 || sign == 0xF000)
        return fail(p, -ERANGE, "column \"%s\", row %llu: numeric %s cannot be a DECIMAL (export the column as text)",
                    col, row, sign == 0xC000 ? "NaN" : sign == 0xD000 ? "Infinity" : "-Infinity");
    if (sign != 0 && sign != 0x4000)
        return fail(p, -EINVAL, "column \"%s\", row %llu: numeric sign 0x%04x (malformed COPY data)", col, row, sign);
    __int128 limit = 1;
    for (int i = 0; i < c->precision; i++) limit *= 10;
    __int128 acc = 0;
    for (int i = 0; i < ndigits; i++) {
        int d = be16(v + 8 + 2 * i);
        if (d > 9999) return fail(p, -EINVAL, "column \"%s\", row %llu: numeric digit %d (malformed COPY data)", col, row, d);
        long e = 4L * ((long)weight - i) + c->scale;   /* power of ten of this digit's unit */
        if (d == 0) continue;
        if (e < 0) {
            long div = e <= -4 ? 10000 : e == -3 ? 1000 : e == -2 ? 100 : 10;
            if (e <= -4 || d % div)
                return fail(p, -ERANGE, "column \"%s\", row %llu: numeric has more than %d decimal places",
                            col, row, (int)c->scale);
            acc += d / div;
        } else {
            if (e > 38) goto range;
            __int128 t = d;
            for (long k = 0; k < e; k++) t *= 10;
            if (t >= limit) goto range;
            acc += t;
        }
        if (acc >= limit) goto range;
    }
    *out = sign == 0x4000 ? -acc : acc;
    return 0;
range:
    return fail(p, -ERANGE, "column \"%s\", row %llu: numeric does not fit numeric(%d,%d)", col, row,
                (int)c->precision, (int)c->scale);
}

/* Decode one non-NULL field V of N bytes into the writer. */
static int put_field(pgcopy *p, const uint8_t *v, size_t n)
{
    const pgcopy_col *c = &p->cols[p->field];
    const char *col = p->names[p->field];
    unsigned long long row = (unsigned long long)p->rows + 1;
    static const size_t fixed[] = {
        [PGCOPY_INT16] = 2, [PGCOPY_INT32] = 4, [PGCOPY_INT64] = 8, [PGCOPY_FLOAT4] = 4,
        [PGCOPY_FLOAT8] = 8, [PGCOPY_BOOL] = 1, [PGCOPY_DATE] = 4, [PGCOPY_TIMESTAMP] = 8,
    };
    if (fixed[c->kind] && n != fixed[c->kind])
        return fail(p, -EINVAL, "column \"%s\", row %llu: a field of %zu bytes where %zu are expected (malformed COPY data)",
                    col, row, n, fixed[c->kind]);
    int rc = 0;
    switch (c->kind) {
    case PGCOPY_INT16: rc = pq_int32(p->w, (int16_t)be16(v)); break;
    case PGCOPY_INT32: rc = pq_int32(p->w, (int32_t)be32(v)); break;
    case PGCOPY_INT64: rc = pq_int64(p->w, (int64_t)be64(v)); break;
    case PGCOPY_FLOAT4: {
        uint32_t u = be32(v);
        float f;
        memcpy(&f, &u, 4);
        rc = pq_float(p->w, f);
        break;
    }
    case PGCOPY_FLOAT8: {
        uint64_t u = be64(v);
        double d;
        memcpy(&d, &u, 8);
        rc = pq_double(p->w, d);
        break;
    }
    case PGCOPY_BOOL:
        if (v[0] > 1) return fail(p, -EINVAL, "column \"%s\", row %llu: boolean byte %u (malformed COPY data)", col, row, v[0]);
        rc = pq_bool(p->w, v[0]);
        break;
    case PGCOPY_TEXT: case PGCOPY_BYTEA: rc = pq_bytes(p->w, v, n); break;
    case PGCOPY_DATE: {
        int32_t d = (int32_t)be32(v);
        if (d == INT32_MAX || d == INT32_MIN)
            return fail(p, -ERANGE, "column \"%s\", row %llu: date %sinfinity has no Parquet DATE (export the column as text)",
                        col, row, d == INT32_MIN ? "-" : "");
        if (d > INT32_MAX - PG_EPOCH_DAYS)
            return fail(p, -ERANGE, "column \"%s\", row %llu: date out of range", col, row);
        rc = pq_int32(p->w, d + PG_EPOCH_DAYS);
        break;
    }
    case PGCOPY_TIMESTAMP: {
        int64_t t = (int64_t)be64(v);
        if (t == INT64_MAX || t == INT64_MIN)
            return fail(p, -ERANGE, "column \"%s\", row %llu: timestamp %sinfinity has no Parquet TIMESTAMP (export the column as text)",
                        col, row, t == INT64_MIN ? "-" : "");
        if (t > INT64_MAX - PG_EPOCH_MICROS)
            return fail(p, -ERANGE, "column \"%s\", row %llu: a timestamp after 294246 AD does not fit Parquet's microseconds since 1970 (export the column as text)", col, row);
        rc = pq_int64(p->w, t + PG_EPOCH_MICROS);
        break;
    }
    case PGCOPY_NUMERIC: {
        __int128 u = 0;
        if ((rc = numeric_unscaled(p, c, v, n, &u))) return rc;
        if (c->precision <= 9) rc = pq_int32(p->w, (int32_t)u);
        else if (c->precision <= 18) rc = pq_int64(p->w, (int64_t)u);
        else {
            uint8_t b[16];
            int32_t len = dec_length(c->precision);
            unsigned __int128 x = (unsigned __int128)u;
            for (int32_t i = len - 1; i >= 0; i--) { b[i] = (uint8_t)x; x >>= 8; }
            rc = pq_bytes(p->w, b, (size_t)len);
        }
        break;
    }
    }
    return rc ? wfail(p, rc) : 0;
}

/* Consume what complete items the pending buffer holds. */
static int parse(pgcopy *p)
{
    size_t off = 0;
    int rc = 0;
    for (;;) {
        const uint8_t *b = p->buf + off;
        size_t avail = p->len - off;
        if (p->state == ST_HEADER) {
            static const uint8_t sig[11] = {'P', 'G', 'C', 'O', 'P', 'Y', '\n', 0377, '\r', '\n', 0};
            if (avail < 19) {
                if (avail && memcmp(b, sig, avail < 11 ? avail : 11))
                    { rc = fail(p, -EINVAL, "not PostgreSQL COPY binary data (bad signature)"); break; }
                break;
            }
            if (memcmp(b, sig, 11)) { rc = fail(p, -EINVAL, "not PostgreSQL COPY binary data (bad signature)"); break; }
            uint32_t flags = be32(b + 11), ext = be32(b + 15);
            if (flags & 0xffff0000u)
                { rc = fail(p, -EINVAL, "COPY binary header flags 0x%08x (OIDs or unknown critical flags)", flags); break; }
            if (ext > 0x7fffffffu) { rc = fail(p, -EINVAL, "COPY binary header extension of %u bytes", ext); break; }
            if (avail - 19 < ext) break;
            off += 19 + ext;
            p->state = ST_TUPLE;
        } else if (p->state == ST_TUPLE) {
            if (avail < 2) break;
            int16_t nf = (int16_t)be16(b);
            off += 2;
            if (nf == -1) { p->state = ST_DONE; continue; }
            if (nf < 0 || (size_t)nf != p->ncols)
                { rc = fail(p, -EINVAL, "row %llu has %d fields, the table %zu (malformed COPY data)",
                            (unsigned long long)p->rows + 1, nf, p->ncols); break; }
            p->field = 0;
            p->state = ST_FIELD;
            if (p->ncols == 0) {
                if ((rc = pq_end_row(p->w))) { rc = fail(p, rc, "row %llu: %s", (unsigned long long)p->rows + 1, pq_error(p->w)); break; }
                p->rows++;
                p->state = ST_TUPLE;
            }
        } else if (p->state == ST_FIELD) {
            if (avail < 4) break;
            int32_t n = (int32_t)be32(b);
            if (n < -1)
                { rc = fail(p, -EINVAL, "column \"%s\", row %llu: field length %d (malformed COPY data)",
                            p->names[p->field], (unsigned long long)p->rows + 1, n); break; }
            if (n >= 0 && (size_t)n > PQ_VALUE_MAX)
                { rc = fail(p, -EFBIG, "column \"%s\", row %llu: a value of %d bytes", p->names[p->field],
                            (unsigned long long)p->rows + 1, n); break; }
            if (n >= 0 && avail - 4 < (size_t)n) break;
            if (n == -1) rc = pq_null(p->w) ? wfail(p, -EINVAL) : 0;
            else rc = put_field(p, b + 4, (size_t)n);
            if (rc) break;
            off += 4 + (n > 0 ? (size_t)n : 0);
            if (++p->field == p->ncols) {
                if ((rc = pq_end_row(p->w))) { rc = fail(p, rc, "row %llu: %s", (unsigned long long)p->rows + 1, pq_error(p->w)); break; }
                p->rows++;
                p->state = ST_TUPLE;
            }
        } else {
            if (avail) rc = fail(p, -EINVAL, "%zu bytes after the COPY trailer (malformed COPY data)", avail);
            break;
        }
    }
    if (off) {
        if (p->len > off) memmove(p->buf, p->buf + off, p->len - off);
        p->len -= off;
    }
    return rc;
}

int pgcopy_feed(pgcopy *p, const void *buf, size_t len)
{
    if (p->err) return p->err;
    if (len > SIZE_MAX / 2 - p->len) return fail(p, -ENOMEM, "COPY data too large");
    if (p->len + len > p->cap) {
        size_t cap = p->cap ? p->cap : 65536;
        while (cap < p->len + len) cap *= 2;
        uint8_t *nb = realloc(p->buf, cap);
        if (!nb) return fail(p, -ENOMEM, "out of memory buffering COPY data");
        p->buf = nb;
        p->cap = cap;
    }
    if (len) memcpy(p->buf + p->len, buf, len);
    p->len += len;
    return parse(p);
}

int pgcopy_finish(pgcopy *p)
{
    if (p->err) return p->err;
    if (p->state != ST_DONE)
        return fail(p, -EINVAL, "COPY data ends early, in the %s after %llu rows (truncated)",
                    p->state == ST_HEADER ? "header" : p->state == ST_TUPLE ? "rows" : "middle of a row",
                    (unsigned long long)p->rows);
    return 0;
}

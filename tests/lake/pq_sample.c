/*
 * pq_sample.c -- writes sample Parquet files with lake/parquet.c, each
 * with a JSON file of every value put in, for an independent reader
 * (DuckDB, in tests/lake/check_parquet.mjs) to compare against.
 *
 * usage: pq_sample DIR
 *
 * Samples: "types" (every column type the writer has, thousands of rows,
 * NULLs, empty strings, extremes, non-ASCII text and names, one very long
 * string, several row groups and pages), "big" (100000 rows in several
 * row groups of the default page size, finite floats), "allnull" (no value at all, so no
 * min/max) and "empty" (no rows).  DIR/NAME.json holds the schema, every
 * row (values in the canonical forms below), the row count and file size
 * the writer reports, PQ_STATS_MAX, and its whole-file statistics
 * (pq_stats_get).
 *
 * Canonical forms in the JSON: BOOLEAN true/false; INT32, INT16, DATE a
 * number; INT64, TIMESTAMP and DECIMAL (the unscaled value) a decimal
 * string; FLOAT and DOUBLE the hex of their bits; STRING the text; other
 * bytes and UUID lowercase hex; NULL null.
 */
#include "parquet.h"

#include <errno.h>
#include <math.h>
#include <float.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng = 0x2545F4914F6CDD1Dull;

/* xorshift64: deterministic random numbers. */
static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static int file_sink(void *arg, const void *buf, size_t len)
{
    return fwrite(buf, 1, len, arg) == len ? 0 : -EIO;
}

static void die(const char *what, pq_writer *w)
{
    fprintf(stderr, "pq_sample: %s: %s\n", what, w ? pq_error(w) : strerror(errno));
    exit(1);
}

/* ------------------------------------------------------------ JSON */

static void json_string(FILE *f, const uint8_t *s, size_t n)
{
    fputc('"', f);
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '"' || s[i] == '\\')
            fprintf(f, "\\%c", s[i]);
        else if (s[i] < 0x20)
            fprintf(f, "\\u%04x", s[i]);
        else
            fputc(s[i], f);
    }
    fputc('"', f);
}

static void json_hex(FILE *f, const uint8_t *p, size_t n)
{
    fputc('"', f);
    for (size_t i = 0; i < n; i++)
        fprintf(f, "%02x", p[i]);
    fputc('"', f);
}

/* A big-endian two's complement integer of N bytes as a decimal string. */
static void json_be_decimal(FILE *f, const uint8_t *be, size_t n)
{
    uint8_t mag[16];
    char digits[64];
    size_t nd = 0;
    int neg = be[0] & 0x80, nonzero;

    memcpy(mag, be, n);
    if (neg) {                    /* magnitude: invert and add one */
        int carry = 1;
        for (size_t i = n; i-- > 0;) {
            int x = (uint8_t)~mag[i] + carry;
            mag[i] = (uint8_t)x;
            carry = x >> 8;
        }
    }
    do {                          /* divide by 10 until zero */
        unsigned rem = 0;
        nonzero = 0;
        for (size_t i = 0; i < n; i++) {
            unsigned cur = rem << 8 | mag[i];
            mag[i] = (uint8_t)(cur / 10);
            rem = cur % 10;
            nonzero |= mag[i];
        }
        digits[nd++] = (char)('0' + rem);
    } while (nonzero);
    fputc('"', f);
    if (neg)
        fputc('-', f);
    while (nd > 0)
        fputc(digits[--nd], f);
    fputc('"', f);
}

/* ------------------------------------------------------------ values */

typedef struct value {
    int null;
    int64_t i;
    float f;
    double d;
    uint8_t b[128];               /* short bytes; long ones in big */
    const uint8_t *big;
    size_t len;
    int as_int64;                 /* DECIMAL in bytes put with pq_int64 */
} value;

static const uint8_t *value_bytes(const value *v)
{
    return v->big ? v->big : v->b;
}

/* Put V into W as column C takes it. */
static void put(pq_writer *w, const pq_column *c, const value *v)
{
    int rc;
    if (v->null)
        rc = pq_null(w);
    else if (v->as_int64)
        rc = pq_int64(w, v->i);
    else
        switch (c->type) {
        case PQ_BOOLEAN: rc = pq_bool(w, (int)v->i); break;
        case PQ_INT32: rc = pq_int32(w, (int32_t)v->i); break;
        case PQ_INT64: rc = pq_int64(w, v->i); break;
        case PQ_FLOAT: rc = pq_float(w, v->f); break;
        case PQ_DOUBLE: rc = pq_double(w, v->d); break;
        default: rc = pq_bytes(w, value_bytes(v), v->len); break;
        }
    if (rc < 0)
        die("putting a value", w);
}

/* V in its canonical JSON form for column C. */
static void json_value(FILE *f, const pq_column *c, const value *v)
{
    if (v->null) {
        fputs("null", f);
        return;
    }
    switch (c->type) {
    case PQ_BOOLEAN:
        fputs(v->i ? "true" : "false", f);
        return;
    case PQ_INT32:
        fprintf(f, c->logical == PQ_DECIMAL ? "\"%" PRId64 "\"" : "%" PRId64, v->i);
        return;
    case PQ_INT64:
        fprintf(f, "\"%" PRId64 "\"", v->i);
        return;
    case PQ_FLOAT: {
        uint32_t u;
        memcpy(&u, &v->f, 4);
        fprintf(f, "\"%08" PRIx32 "\"", u);
        return;
    }
    case PQ_DOUBLE: {
        uint64_t u;
        memcpy(&u, &v->d, 8);
        fprintf(f, "\"%016" PRIx64 "\"", u);
        return;
    }
    default:
        break;
    }
    if (c->logical == PQ_STRING)
        json_string(f, value_bytes(v), v->len);
    else if (c->logical == PQ_DECIMAL)
        json_be_decimal(f, value_bytes(v), v->len);
    else
        json_hex(f, value_bytes(v), v->len);
}

/* A pq_stats min or max (as pq_value) in canonical form. */
static void json_stat(FILE *f, const pq_column *c, const pq_value *pv)
{
    value v = { 0 };
    switch (c->type) {
    case PQ_BOOLEAN: case PQ_INT32: v.i = pv->i32; break;
    case PQ_INT64: v.i = pv->i64; break;
    case PQ_FLOAT: v.f = pv->f32; break;
    case PQ_DOUBLE: v.d = pv->f64; break;
    default: v.big = pv->bytes; v.len = pv->len; break;
    }
    json_value(f, c, &v);
}

/* ------------------------------------------------------------ samples */

static const char *physical_names[] = { "BOOLEAN", "INT32", "INT64", "INT96", "FLOAT", "DOUBLE",
                                        "BYTE_ARRAY", "FIXED_LEN_BYTE_ARRAY" };
static const char *logical_names[] = { "NONE", "STRING", "INT16", "DATE", "TIMESTAMP", "DECIMAL", "UUID" };

typedef void (*gen_fn)(const pq_column *c, size_t ncols, size_t row, value *out);

/* Write DIR/NAME.parquet with ROWS rows from GEN, and DIR/NAME.json. */
static void sample(const char *dir, const char *name, const pq_column *cols, size_t ncols,
                   size_t rows, const pq_options *opt, gen_fn gen)
{
    char path[4096];
    FILE *pf, *jf;
    pq_writer *w;
    value *row = calloc(ncols, sizeof(*row));

    snprintf(path, sizeof(path), "%s/%s.parquet", dir, name);
    if (!(pf = fopen(path, "wb")))
        die(path, NULL);
    snprintf(path, sizeof(path), "%s/%s.json", dir, name);
    if (!(jf = fopen(path, "w")))
        die(path, NULL);
    if (pq_open(cols, ncols, opt, file_sink, pf, &w) < 0)
        die("pq_open", w);
    fprintf(jf, "{\"file\": \"%s.parquet\",\n\"columns\": [", name);
    for (size_t k = 0; k < ncols; k++) {
        fprintf(jf, "%s\n {\"name\": ", k ? "," : "");
        json_string(jf, (const uint8_t *)cols[k].name, strlen(cols[k].name));
        fprintf(jf, ", \"physical\": \"%s\", \"logical\": \"%s\", \"length\": %d, \"precision\": %d, \"scale\": %d}",
                physical_names[cols[k].type], logical_names[cols[k].logical], (int)cols[k].length,
                (int)cols[k].precision, (int)cols[k].scale);
    }
    fprintf(jf, "],\n\"rows\": [");
    for (size_t r = 0; r < rows; r++) {
        gen(cols, ncols, r, row);
        fprintf(jf, "%s\n [", r ? "," : "");
        for (size_t k = 0; k < ncols; k++) {
            put(w, &cols[k], &row[k]);
            if (k)
                fputc(',', jf);
            json_value(jf, &cols[k], &row[k]);
        }
        fputc(']', jf);
        if (pq_end_row(w) < 0)
            die("pq_end_row", w);
    }
    if (pq_finish(w) < 0)
        die("pq_finish", w);
    if (fclose(pf) != 0)
        die("closing the file", NULL);
    fprintf(jf, "],\n\"num_rows\": %" PRIu64 ", \"file_size\": %" PRIu64 ", \"stats_max_bytes\": %d,"
            "\n\"file_stats\": [", pq_num_rows(w), pq_file_size(w), PQ_STATS_MAX);
    for (size_t k = 0; k < ncols; k++) {
        pq_stats s;
        if (pq_stats_get(w, k, &s) < 0)
            die("pq_stats_get", w);
        fprintf(jf, "%s\n {\"null_count\": %" PRIu64 ", \"nan_count\": %" PRIu64, k ? "," : "",
                s.null_count, s.nan_count);
        if (s.has_min_max) {
            fputs(", \"min\": ", jf);
            json_stat(jf, &cols[k], &s.min);
            fputs(", \"max\": ", jf);
            json_stat(jf, &cols[k], &s.max);
        }
        fputc('}', jf);
    }
    fputs("]}\n", jf);
    if (fclose(jf) != 0)
        die("closing the JSON file", NULL);
    pq_free(w);
    free(row);
}

/* ------------------------------------------------------------ "types" */

static const pq_column types_cols[] = {
    { "bool", PQ_BOOLEAN, PQ_NONE, 0, 0, 0 },
    { "int16", PQ_INT32, PQ_INT16, 0, 0, 0 },
    { "int32", PQ_INT32, PQ_NONE, 0, 0, 0 },
    { "int64", PQ_INT64, PQ_NONE, 0, 0, 0 },
    { "float", PQ_FLOAT, PQ_NONE, 0, 0, 0 },
    { "double", PQ_DOUBLE, PQ_NONE, 0, 0, 0 },
    { "text", PQ_BYTE_ARRAY, PQ_STRING, 0, 0, 0 },
    { "bytes", PQ_BYTE_ARRAY, PQ_NONE, 0, 0, 0 },
    { "date", PQ_INT32, PQ_DATE, 0, 0, 0 },
    { "ts", PQ_INT64, PQ_TIMESTAMP, 0, 0, 0 },
    { "dec_9_2", PQ_INT32, PQ_DECIMAL, 0, 9, 2 },
    { "dec_18_4", PQ_INT64, PQ_DECIMAL, 0, 18, 4 },
    { "dec_38_10", PQ_FIXED_LEN_BYTE_ARRAY, PQ_DECIMAL, 16, 38, 10 },
    { "dec_4_1", PQ_FIXED_LEN_BYTE_ARRAY, PQ_DECIMAL, 2, 4, 1 },
    { "uuid", PQ_FIXED_LEN_BYTE_ARRAY, PQ_UUID, 16, 0, 0 },
    { "fixed3", PQ_FIXED_LEN_BYTE_ARRAY, PQ_NONE, 3, 0, 0 },
    { "pr\xc3\xa9nom \xe6\x97\xa5\xe6\x9c\xac", PQ_BYTE_ARRAY, PQ_STRING, 0, 0, 0 },
};
#define TYPES_NCOLS (sizeof(types_cols) / sizeof(types_cols[0]))

static char *long_text;           /* 100000 characters, 2 and 3 bytes each */
static size_t long_text_len;

/* A decimal of up to DIGITS random digits (at least one), as big-endian
 * two's complement in N bytes. */
static void random_decimal(value *v, int digits, size_t n)
{
    int nd = 1 + (int)(rnd() % (uint64_t)digits), neg = rnd() % 2;
    memset(v->b, 0, n);
    for (int d = 0; d < nd; d++) {      /* mag = mag * 10 + digit */
        unsigned carry = (unsigned)(rnd() % 10);
        for (size_t i = n; i-- > 0;) {
            unsigned cur = v->b[i] * 10u + carry;
            v->b[i] = (uint8_t)cur;
            carry = cur >> 8;
        }
    }
    if (neg) {
        int carry = 1;
        for (size_t i = n; i-- > 0;) {
            int x = (uint8_t)~v->b[i] + carry;
            v->b[i] = (uint8_t)x;
            carry = x >> 8;
        }
    }
    v->len = n;
}

/* Random text from pieces: ASCII, quotes, controls, 2-, 3- and 4-byte characters. */
static void random_text(value *v)
{
    static const char *pieces[] = { "a", "Z", " ", "\"", "\\", "\n", "\t", "\x01", "\xc3\xa9",
                                    "\xe2\x82\xac", "\xe6\x97\xa5", "\xf0\x9f\x8e\x89", "\xef\xbf\xbf" };
    size_t want = (size_t)(rnd() % 30);
    v->len = 0;
    while (v->len < want) {
        const char *s = pieces[rnd() % (sizeof(pieces) / sizeof(pieces[0]))];
        memcpy(v->b + v->len, s, strlen(s));
        v->len += strlen(s);
    }
}

static void random_bytes(value *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        v->b[i] = (uint8_t)rnd();
    v->len = n;
}

static void gen_types(const pq_column *cols, size_t ncols, size_t row, value *out)
{
    static const float floats[] = { 0.0f, -0.0f, 1.0f, -1.5f, INFINITY, -INFINITY, FLT_MAX, -FLT_MAX,
                                    FLT_MIN, 1e-45f, 3.14159265f };
    static const double doubles[] = { 0.0, -0.0, 1.0, -1.5, INFINITY, -INFINITY, DBL_MAX, -DBL_MAX,
                                      DBL_MIN, 5e-324, 0.1 };
    (void)cols;
    for (size_t k = 0; k < ncols; k++) {
        value *v = &out[k];
        memset(v, 0, sizeof(*v));
        /* row 0 all NULL, rows 1-3 extremes, then one cell in 8 NULL */
        v->null = row == 0 || (row > 3 && rnd() % 8 == 0);
        if (v->null)
            continue;
        int lo = row == 1, hi = row == 2, zero = row == 3;
        switch (k) {
        case 0: v->i = lo ? 0 : hi ? 1 : (int64_t)(rnd() & 1); break;
        case 1: v->i = lo ? INT16_MIN : hi ? INT16_MAX : zero ? 0 : (int16_t)rnd(); break;
        case 2: v->i = lo ? INT32_MIN : hi ? INT32_MAX : zero ? 0 : (int32_t)rnd(); break;
        case 3: v->i = lo ? INT64_MIN : hi ? INT64_MAX : zero ? 0 : (int64_t)rnd(); break;
        case 4:
            if (lo || hi || zero) {
                v->f = lo ? -INFINITY : hi ? INFINITY : -0.0f;
            } else if (rnd() % 2) {
                v->f = floats[rnd() % (sizeof(floats) / sizeof(floats[0]))];
            } else {
                v->f = (float)((double)(int64_t)rnd() / 1e12);
            }
            if (row % 997 == 500)
                v->f = NAN;
            break;
        case 5:
            if (lo || hi || zero) {
                v->d = lo ? -DBL_MAX : hi ? DBL_MAX : 0.0;
            } else if (rnd() % 2) {
                v->d = doubles[rnd() % (sizeof(doubles) / sizeof(doubles[0]))];
            } else {
                v->d = (double)(int64_t)rnd() / 3e9;
            }
            if (row % 1009 == 700)
                v->d = NAN;
            break;
        case 6: case 16:
            if (zero) {
                v->len = 0;
            } else if (k == 6 && row == 1234) {
                v->big = (const uint8_t *)long_text;
                v->len = long_text_len;
            } else {
                random_text(v);
            }
            break;
        case 7: random_bytes(v, zero ? 0 : (size_t)(rnd() % 20)); break;
        case 8:
            /* PostgreSQL's range: 4714-11-24 BC .. 5874897-12-31 */
            v->i = lo ? -2440588 : hi ? 2145042905 : zero ? 0 : (int64_t)(rnd() % 40000) - 20000;
            break;
        case 9:
            /* PostgreSQL's first timestamp (4714-11-24 00:00 BC); its last
             * (294276-12-31) is past int64 microseconds since 1970, so the
             * largest int64 that is not DuckDB's infinity */
            v->i = lo ? INT64_C(-210866803200000000) : hi ? INT64_MAX - 1
                 : zero ? 0 : (int64_t)(rnd() % UINT64_C(4000000000000000)) - INT64_C(1000000000000000);
            break;
        case 10: v->i = lo ? -999999999 : hi ? 999999999 : zero ? 0 : (int64_t)(rnd() % 1999999999) - 999999999; break;
        case 11:
            v->i = lo ? -INT64_C(999999999999999999) : hi ? INT64_C(999999999999999999) : zero ? 0
                 : (int64_t)(rnd() % UINT64_C(1999999999999999999)) - INT64_C(999999999999999999);
            break;
        case 12:
            if (lo || hi) {
                /* -(10^38 - 1) and 10^38 - 1 */
                static const uint8_t max38[16] = { 0x4B, 0x3B, 0x4C, 0xA8, 0x5A, 0x86, 0xC4, 0x7A,
                                                   0x09, 0x8A, 0x22, 0x3F, 0xFF, 0xFF, 0xFF, 0xFF };
                static const uint8_t min38[16] = { 0xB4, 0xC4, 0xB3, 0x57, 0xA5, 0x79, 0x3B, 0x85,
                                                   0xF6, 0x75, 0xDD, 0xC0, 0x00, 0x00, 0x00, 0x01 };
                memcpy(v->b, lo ? min38 : max38, 16);
                v->len = 16;
            } else if (zero || rnd() % 4 == 0) {
                /* through pq_int64, sign-extended by the writer */
                int64_t x = zero ? 0 : (int64_t)rnd();
                v->as_int64 = 1;
                v->i = x;
                for (int i = 0; i < 16; i++)
                    v->b[15 - i] = i < 8 ? (uint8_t)((uint64_t)x >> (8 * i)) : (x < 0 ? 0xFF : 0);
                v->len = 16;
            } else {
                random_decimal(v, 38, 16);
            }
            break;
        case 13: {
            int64_t x = lo ? -9999 : hi ? 9999 : zero ? 0 : (int64_t)(rnd() % 19999) - 9999;
            v->as_int64 = 1;
            v->i = x;
            v->b[0] = (uint8_t)((uint64_t)x >> 8);
            v->b[1] = (uint8_t)x;
            v->len = 2;
            break;
        }
        case 14:
            if (lo || hi)
                memset(v->b, lo ? 0 : 0xFF, 16), v->len = 16;
            else
                random_bytes(v, 16);
            break;
        case 15:
            if (lo || hi)
                memset(v->b, lo ? 0 : 0xFF, 3), v->len = 3;
            else
                random_bytes(v, 3);
            break;
        }
    }
}

/* ------------------------------------------------------------ the others */

static const pq_column big_cols[] = {
    { "id", PQ_INT64, PQ_NONE, 0, 0, 0 },
    { "label", PQ_BYTE_ARRAY, PQ_STRING, 0, 0, 0 },
    { "amount", PQ_INT64, PQ_DECIMAL, 0, 12, 2 },
    { "ratio", PQ_DOUBLE, PQ_NONE, 0, 0, 0 },
    { "temp", PQ_FLOAT, PQ_NONE, 0, 0, 0 },
};

/* Finite floats (DuckDB shows no infinite min/max) so each row group's
 * min/max can be checked: ratio in [0, 1) (a zero min must be -0.0), temp
 * <= 0 (a zero max must be +0.0), zeros of both signs, a few NaN. */
static void gen_big(const pq_column *cols, size_t ncols, size_t row, value *out)
{
    (void)cols;
    memset(out, 0, ncols * sizeof(*out));
    out[0].i = (int64_t)row;
    out[1].null = row % 10 == 3;
    out[1].len = (size_t)snprintf((char *)out[1].b, sizeof(out[1].b), "label %zu \xe2\x82\xac", row % 777);
    out[2].null = row % 13 == 0;
    out[2].i = (int64_t)(rnd() % 2000000000) - 1000000000;
    out[3].null = row % 7 == 0;
    out[3].d = row % 5 == 0 ? (row % 2 ? -0.0 : 0.0) : (double)(rnd() >> 11) / 9007199254740992.0;
    out[4].f = row % 4999 == 17 ? NAN : row % 3 == 0 ? (row % 2 ? -0.0f : 0.0f) : -(float)(rnd() % 100000) / 7.0f;
}

static const pq_column allnull_cols[] = {
    { "nothing", PQ_DOUBLE, PQ_NONE, 0, 0, 0 },
    { "none", PQ_BYTE_ARRAY, PQ_STRING, 0, 0, 0 },
    { "nil", PQ_FIXED_LEN_BYTE_ARRAY, PQ_DECIMAL, 9, 20, 0 },
};

static void gen_allnull(const pq_column *cols, size_t ncols, size_t row, value *out)
{
    (void)cols;
    (void)row;
    memset(out, 0, ncols * sizeof(*out));
    for (size_t k = 0; k < ncols; k++)
        out[k].null = 1;
}

int main(int argc, char **argv)
{
    pq_options small = { .row_group_bytes = 96 << 10, .page_bytes = 8 << 10 };
    pq_options groups = { .row_group_bytes = 128 << 10 };

    if (argc != 2) {
        fprintf(stderr, "usage: pq_sample DIR\n");
        return 2;
    }
    /* U+10FFFF (the largest text there is: its row group's max) and
     * 100000 characters of 2 and 3 bytes: 250 KB, past PQ_STATS_MAX */
    long_text = malloc(300004);
    memcpy(long_text, "\xf4\x8f\xbf\xbf", 4);
    long_text_len = 4;
    for (size_t i = 0; i < 100000; i++) {
        const char *s = i % 2 ? "\xc3\xa9" : "\xe6\x97\xa5";
        memcpy(long_text + long_text_len, s, strlen(s));
        long_text_len += strlen(s);
    }
    sample(argv[1], "types", types_cols, TYPES_NCOLS, 5000, &small, gen_types);
    sample(argv[1], "big", big_cols, 5, 100000, &groups, gen_big);
    sample(argv[1], "allnull", allnull_cols, 3, 1000, NULL, gen_allnull);
    sample(argv[1], "empty", big_cols, 5, 0, NULL, gen_big);
    free(long_text);
    return 0;
}

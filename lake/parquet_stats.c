/*
 * parquet_stats.c -- the Parquet writer's column statistics: null and NaN
 * counts, min and max in the column's sort order, and their Thrift
 * Statistics struct.
 *
 * Each column keeps two accumulators (its current chunk's and the file's),
 * updated with every value the writer is given; a byte array's min and max
 * are copies, since the value's bytes belong to the caller.  Floating
 * point follows the format's rules: NaN is counted, never a min or max, and
 * a zero min is -0.0, a zero max +0.0.
 */
#include "parquet_impl.h"

#include <errno.h>
#include <math.h>
#include <string.h>

/* <0, 0, >0 as A sorts before, with, after B in order ORDER (not NaN). */
static int value_cmp(sort_order order, const pq_value *a, const pq_value *b)
{
    size_t n;
    int c;

    switch (order) {
    case ORDER_INT32: return (a->i32 > b->i32) - (a->i32 < b->i32);
    case ORDER_INT64: return (a->i64 > b->i64) - (a->i64 < b->i64);
    case ORDER_FLOAT: return (a->f32 > b->f32) - (a->f32 < b->f32);
    case ORDER_DOUBLE: return (a->f64 > b->f64) - (a->f64 < b->f64);
    case ORDER_SIGNED_BE:
        /* two's complement, same length: the sign byte signed, then unsigned */
        if ((int8_t)a->bytes[0] != (int8_t)b->bytes[0])
            return (int8_t)a->bytes[0] < (int8_t)b->bytes[0] ? -1 : 1;
        return memcmp(a->bytes + 1, b->bytes + 1, a->len - 1);
    case ORDER_BYTES:
        break;
    }
    n = a->len < b->len ? a->len : b->len;
    c = n ? memcmp(a->bytes, b->bytes, n) : 0;
    if (c)
        return c;
    return (a->len > b->len) - (a->len < b->len);
}

/* Make *DST (bytes kept in B) a copy of V. */
static int keep_value(pq_value *dst, bytebuf *b, const pq_value *v, int bytes)
{
    *dst = *v;
    if (!bytes)
        return 0;
    b->len = 0;
    if (bytebuf_add(b, v->bytes, v->len) < 0)
        return -ENOMEM;
    dst->bytes = b->p;
    return 0;
}

/* Count V (not NULL) in S. */
int pqstats_add(stats_acc *s, sort_order order, const pq_value *v)
{
    pq_value lo = *v, hi = *v;
    int bytes = order == ORDER_BYTES || order == ORDER_SIGNED_BE;

    if (order == ORDER_FLOAT) {
        if (isnan(v->f32)) {
            s->nans++;
            return 0;
        }
        /* a zero min is -0.0, a zero max +0.0 (either may be in the data) */
        if (v->f32 == 0) {
            lo.f32 = -0.0f;
            hi.f32 = 0.0f;
        }
    } else if (order == ORDER_DOUBLE) {
        if (isnan(v->f64)) {
            s->nans++;
            return 0;
        }
        if (v->f64 == 0) {
            lo.f64 = -0.0;
            hi.f64 = 0.0;
        }
    }
    if (!s->has || value_cmp(order, &lo, &s->min) < 0)
        if (keep_value(&s->min, &s->minb, &lo, bytes) < 0)
            return -ENOMEM;
    if (!s->has || value_cmp(order, &hi, &s->max) > 0)
        if (keep_value(&s->max, &s->maxb, &hi, bytes) < 0)
            return -ENOMEM;
    s->has = 1;
    return 0;
}

/* Forget S's counts and values, keeping its buffers. */
void pqstats_reset(stats_acc *s)
{
    s->nulls = s->nans = 0;
    s->has = 0;
}

/* Free S's buffers. */
void pqstats_free(stats_acc *s)
{
    bytebuf_free(&s->minb);
    bytebuf_free(&s->maxb);
}

/* The Statistics struct of column C's current chunk, as field ID. */
void pqstats_encode(thrift_out *t, int16_t id, const pq_col *c)
{
    const stats_acc *s = &c->chunk_stats;
    uint8_t lo_tmp[8], hi_tmp[8];
    const uint8_t *lo, *hi;
    size_t lo_len = 0, hi_len = 0;

    if (s->has) {
        lo_len = pq_value_plain(c, &s->min, lo_tmp, &lo);
        hi_len = pq_value_plain(c, &s->max, hi_tmp, &hi);
    }
    thrift_field_struct(t, id);
    thrift_field_i64(t, 3, (int64_t)s->nulls);                 /* null_count */
    if (s->has && lo_len <= PQ_STATS_MAX && hi_len <= PQ_STATS_MAX) {
        thrift_field_binary(t, 5, hi, hi_len);                 /* max_value */
        thrift_field_binary(t, 6, lo, lo_len);                 /* min_value */
    }
    if (c->order == ORDER_FLOAT || c->order == ORDER_DOUBLE)
        thrift_field_i64(t, 9, (int64_t)s->nans);              /* nan_count */
    thrift_struct_end(t);
}

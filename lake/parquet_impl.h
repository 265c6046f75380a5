/*
 * parquet_impl.h -- what the Parquet writer (parquet.c) and its column
 * statistics (parquet_stats.c) share: a column's state.
 */
#ifndef LAKEFS_PARQUET_IMPL_H
#define LAKEFS_PARQUET_IMPL_H

#include "parquet.h"
#include "thrift.h"
#include "../util/bytebuf.h"

#include <stddef.h>
#include <stdint.h>

/* How a column's values compare, for min/max. */
typedef enum sort_order {
    ORDER_INT32,                  /* signed: BOOLEAN, INT32 and what it stores */
    ORDER_INT64,                  /* signed */
    ORDER_FLOAT,                  /* IEEE, NaN left out */
    ORDER_DOUBLE,
    ORDER_BYTES,                  /* bytewise unsigned, a prefix first */
    ORDER_SIGNED_BE               /* DECIMAL in FIXED_LEN_BYTE_ARRAY */
} sort_order;

typedef struct stats_acc {
    uint64_t nulls, nans;         /* NULL cells, NaN values */
    int has;                      /* min and max are set */
    pq_value min, max;            /* bytes point into minb/maxb */
    bytebuf minb, maxb;           /* copies of a byte min and max */
} stats_acc;

typedef struct pq_col {
    pq_column def;                /* schema entry; name owned */
    sort_order order;             /* how its values compare */
    bytebuf levels;               /* page: 1 (value) or 0 (NULL) per cell */
    bytebuf values;               /* page: PLAIN bytes of the values */
    uint32_t page_bools;          /* page: BOOLEAN values bit-packed so far */
    bytebuf chunk;                /* row group: page headers + compressed pages */
    uint64_t chunk_cells;         /* row group: cells in chunk's pages */
    uint64_t chunk_raw;           /* row group: chunk's uncompressed size */
    stats_acc chunk_stats;        /* row group: statistics */
    stats_acc file_stats;         /* whole file: statistics */
} pq_col;

/* parquet.c */
size_t pq_value_plain(const pq_col *c, const pq_value *v, uint8_t tmp[8], const uint8_t **p);

/* parquet_stats.c */
int pqstats_add(stats_acc *s, sort_order order, const pq_value *v);
void pqstats_reset(stats_acc *s);
void pqstats_free(stats_acc *s);
void pqstats_encode(thrift_out *t, int16_t id, const pq_col *c);

#endif

/*
 * pq_model.h -- the model test_parquet.c checks Parquet files against:
 * the rows put into the writer as a table of cells, a memory sink, and
 * the comparison of a file, read back by pq_reader.h, with its table.
 *
 * Every test case builds a table, writes it and checks the file the same
 * way, so the model and its checks live here, apart from the cases, in
 * pq_model.c.
 */
#ifndef LAKEFS_PQ_MODEL_H
#define LAKEFS_PQ_MODEL_H

#include "parquet.h"

#include <stddef.h>
#include <stdint.h>

/* A memory sink for pq_open: what the writer wrote, in P[0..LEN). */
typedef struct membuf {
    uint8_t *p;
    size_t len, cap;
    size_t fail_at;               /* fail a write that would pass this many bytes (0: never) */
} membuf;

/* pq_sink appending to the membuf ARG; -ENOSPC past its fail_at. */
int mem_sink(void *arg, const void *buf, size_t len);

/* A cell put into the writer, and what the file must hold for it. */
typedef struct cell {
    int null;
    int64_t i;                    /* BOOLEAN, INT32, INT64 */
    float f;
    double d;
    uint8_t *b;                   /* BYTE_ARRAY, FIXED_LEN_BYTE_ARRAY (owned) */
    size_t len;
    int via_int64;                /* DECIMAL: put with pq_int64 (i), stored as b or i */
} cell;

typedef struct table {
    pq_column *cols;
    size_t ncols;
    cell *cells;                  /* rows * ncols */
    size_t rows, cap;
} table;

/* A new row of T, every cell zero (present); T grows as needed. */
cell *table_row(table *t);

/* Free T's cells and their bytes; T is left empty. */
void table_free(table *t);

/* C holds a copy of the N bytes at P. */
void cell_bytes(cell *c, const void *p, size_t n);

/* DECIMAL V as a big-endian two's complement of N bytes, put with
 * pq_int64. */
void cell_decimal(cell *c, int64_t v, size_t n);

/* Put row R of T into W. */
int model_put_row(pq_writer *w, const table *t, size_t r);

/* Write T to M with OPT; 0 or the failing call's error.  *OUT gets the
 * writer, for the caller to pq_free. */
int model_write_table(const table *t, const pq_options *opt, membuf *m, pq_writer **out);

/* Read file M back and compare it with T in every respect the reader
 * sees; *GROUPS gets the number of row groups.  1 if all agree. */
int model_file_matches(const membuf *m, const table *t, size_t *groups);

/* pq_stats_get agrees with the whole table, column K (exact min/max). */
int model_file_stats_match(pq_writer *w, const table *t, size_t k);

#endif

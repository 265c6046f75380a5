/*
 * parquet.h -- a streaming Parquet file writer (flat schema, nullable
 * columns), for the Delta Lake export.
 *
 * Debian 12 has no Parquet library, and the export needs only a small part
 * of the format, so this writes it directly: "PAR1", row groups of column
 * chunks made of data pages v1 (PLAIN values, definition levels in the
 * RLE/bit-packed hybrid with the 4-byte length prefix, no repetition
 * levels, each page one zstd frame), then the footer (FileMetaData in
 * Thrift's compact protocol, see thrift.h), its 4-byte length and "PAR1".
 * Every column is OPTIONAL (nullable); there is no nesting.
 *
 * Use: pq_open with the columns, then per row one call per column in
 * schema order (pq_null or the value call that fits the column) and
 * pq_end_row; pq_finish writes what is buffered and the footer; pq_free.
 * Bytes go to the caller's sink in file order, each byte once.
 *
 * Columns (pq_column.type / .logical; what is written; value call):
 *
 *   logical     physical              converted / logicalType     value call
 *   NONE        BOOLEAN               -                           pq_bool
 *   NONE        INT32, INT64          -                           pq_int32, pq_int64
 *   NONE        FLOAT, DOUBLE         -                           pq_float, pq_double
 *   NONE        BYTE_ARRAY            -                           pq_bytes
 *   NONE        FIXED_LEN_BYTE_ARRAY  - (.length bytes)           pq_bytes (exactly .length)
 *   STRING      BYTE_ARRAY            UTF8 / STRING               pq_bytes (valid UTF-8)
 *   INT16       INT32                 INT_16 / INTEGER(16,signed) pq_int32 (-32768..32767)
 *   DATE        INT32                 DATE / DATE                 pq_int32 (days since 1970-01-01)
 *   TIMESTAMP   INT64                 TIMESTAMP_MICROS /          pq_int64 (microseconds since
 *                                     TIMESTAMP(UTC, MICROS)        1970-01-01 00:00:00 UTC)
 *   DECIMAL     INT32 (precision 1-9),  DECIMAL / DECIMAL(p,s)      pq_int64 (unscaled value,
 *               INT64 (1-18), FIXED_LEN_BYTE_ARRAY (.length 1-16,  |v| < 10^p), pq_int32 for INT32,
 *               precision up to 2, 4, 6, 9, 11, 14, 16, 18, 21,    pq_bytes for FIXED_LEN_BYTE_ARRAY
 *               23, 26, 28, 31, 33, 35, 38 digits)                 (big-endian two's complement)
 *   UUID        FIXED_LEN_BYTE_ARRAY  - / UUID (.length 16)       pq_bytes (16 bytes)
 *
 * A value in a DECIMAL column is the unscaled integer: 12.345 in
 * DECIMAL(10,3) is 12345.  For the export (issue 7): smallint INT16,
 * integer INT32, bigint INT64, real FLOAT, double precision DOUBLE,
 * boolean BOOLEAN, text/varchar/char STRING, bytea BYTE_ARRAY, numeric(p,s)
 * with p <= 38 DECIMAL, date DATE, timestamp/timestamptz TIMESTAMP, uuid
 * UUID (or STRING), anything else STRING.
 *
 * Statistics: every column chunk gets null_count and, unless every value
 * was NULL (or NaN), min_value/max_value in the order the spec defines for
 * its type (signed for integers, DATE, TIMESTAMP; IEEE for FLOAT/DOUBLE
 * with NaN left out and counted in nan_count, a zero min written as -0.0
 * and a zero max as +0.0; bytewise unsigned for BYTE_ARRAY, STRING, UUID
 * and plain FIXED_LEN_BYTE_ARRAY; the signed value for DECIMAL) and the
 * footer says so (column_orders: TYPE_ORDER).  A chunk whose min or max
 * value is longer than PQ_STATS_MAX bytes has no min/max in the file (its
 * null_count stays).  pq_stats gives the same numbers for the whole file,
 * with exact min and max whatever their length, for the Delta "add"
 * action's stats.
 *
 * Memory: a writer buffers at most one row group.  Each value goes into its
 * column's current page (raw); a page that passes pq_options.page_bytes is
 * compressed into the column's chunk.  Once the buffered bytes (compressed
 * pages plus raw current pages) pass pq_options.row_group_bytes at the end
 * of a row, the row group is written to the sink and the buffers are
 * reused.  So the data held is at most row_group_bytes + one row, and the
 * memory allocated at most
 *     2 * (row_group_bytes + one row)       buffers grow by doubling
 *   + 2 * (page_bytes + the largest value)  a page before and after zstd
 *   + the zstd context                      ~1.3 MiB at level 3
 *   + 2 * (min + max) per column            chunk and file statistics
 *   + the footer: per row group ~100 bytes per column, plus its min/max
 *     values of at most PQ_STATS_MAX bytes each,
 * whatever the number of rows: ~135 MiB with the defaults (64 MiB row
 * groups, 1 MiB pages) plus the footer, which grows with the row groups.
 *
 * Several files: with pq_options.file_bytes the writer ends the file at
 * the first row after a row group ends past that size (so a file holds
 * whole row groups, at most file_bytes + one row group + its footer),
 * calls file_done, and begins the next file on the same sink with the
 * next row: each file stands alone (its own footer, row count and
 * statistics), and the footer held stays bounded too.  pq_finish ends the
 * last one; a file never ends empty of rows unless the whole stream is.
 *
 * Errors are -errno: -EINVAL for a bad schema or options, a value of the
 * wrong kind for its column, a cell past the row's end or a short row;
 * -ERANGE for a value out of its column's range; -EFBIG for a value of
 * more than PQ_VALUE_MAX bytes; -ENOMEM; whatever the sink returns.
 * pq_error tells what was wrong in one line.  A rejected cell or row end
 * (-EINVAL, -ERANGE, -EFBIG) changes nothing, so the caller may go on with
 * a right one; after -ENOMEM or a sink error every call returns that error.
 */
#ifndef LAKEFS_PARQUET_H
#define LAKEFS_PARQUET_H

#include <stddef.h>
#include <stdint.h>

#define PQ_STATS_MAX 4096         /* longest min/max value put in the file */
#define PQ_VALUE_MAX (1u << 30)   /* longest BYTE_ARRAY value (PostgreSQL's too) */

/* Physical types; the values are Parquet's (INT96 is not written). */
typedef enum pq_physical {
    PQ_BOOLEAN = 0,
    PQ_INT32 = 1,
    PQ_INT64 = 2,
    PQ_FLOAT = 4,
    PQ_DOUBLE = 5,
    PQ_BYTE_ARRAY = 6,
    PQ_FIXED_LEN_BYTE_ARRAY = 7
} pq_physical;

/* Logical types (see the table above for the physical types they allow). */
typedef enum pq_logical {
    PQ_NONE,
    PQ_STRING,
    PQ_INT16,
    PQ_DATE,
    PQ_TIMESTAMP,                 /* isAdjustedToUTC = true, MICROS */
    PQ_DECIMAL,
    PQ_UUID
} pq_logical;

typedef struct pq_column {
    const char *name;             /* non-empty UTF-8, unique in the schema */
    pq_physical type;
    pq_logical logical;
    int32_t length;               /* bytes per FIXED_LEN_BYTE_ARRAY value */
    int32_t precision, scale;     /* DECIMAL: 1 <= precision, 0 <= scale <= precision */
} pq_column;

typedef struct pq_writer pq_writer;

/* A file just finished (footer written) while rows keep coming, see
 * pq_options.file_bytes: W's rows, size and statistics are that file's
 * until the callback returns; then the writer begins the next file on the
 * same sink, which must be empty again by then.  0 or -errno. */
typedef int (*pq_file_fn)(void *arg, pq_writer *w);

typedef struct pq_options {       /* zero fields take the default */
    size_t row_group_bytes;       /* cut a row group past this (64 MiB) */
    size_t page_bytes;            /* cut a page past this (1 MiB, at most 256 MiB) */
    int zstd_level;               /* zstd compression level (3) */
    uint64_t file_bytes;          /* begin a new file at the first row after a
                                     row group ends past this (0: one file) */
    pq_file_fn file_done;         /* told of each file so finished (with file_bytes) */
    void *file_arg;               /* its ARG */
} pq_options;

/* Where the file goes: called with the file's bytes in order; returns 0 or
 * -errno (which the writer call then returns). */
typedef int (*pq_sink_fn)(void *arg, const void *buf, size_t len);

/* A writer of NCOLS columns COLS (copied) with OPT (NULL: defaults) to
 * SINK; writes the leading "PAR1".  0 or -errno; *OUT is set either way
 * (NULL only on -ENOMEM): on an error pq_error(*OUT) says why.  Free it
 * with pq_free. */
int pq_open(const pq_column *cols, size_t ncols, const pq_options *opt,
            pq_sink_fn sink, void *arg, pq_writer **out);

/* The next cell of the current row: NULL, or a value (see the table). */
int pq_null(pq_writer *w);
int pq_bool(pq_writer *w, int v);
int pq_int32(pq_writer *w, int32_t v);
int pq_int64(pq_writer *w, int64_t v);
int pq_float(pq_writer *w, float v);
int pq_double(pq_writer *w, double v);
int pq_bytes(pq_writer *w, const void *p, size_t n);

/* End the current row (every column must have its cell); may write a
 * row group to the sink. */
int pq_end_row(pq_writer *w);

/* Write the last row group and the footer; the writer then takes no more
 * rows (its statistics stay readable). */
int pq_finish(pq_writer *w);

/* Free W (NULL is fine).  Writes nothing: a file not finished is cut. */
void pq_free(pq_writer *w);

/* The last error, one line ("" if none). */
const char *pq_error(const pq_writer *w);

/* Rows ended so far in the current file, and bytes of it given to the
 * sink (the file's size once finished). */
uint64_t pq_num_rows(const pq_writer *w);
uint64_t pq_file_size(const pq_writer *w);

/* One value as its column's physical type holds it. */
typedef struct pq_value {
    union {
        int32_t i32;              /* BOOLEAN (0 or 1), INT32 */
        int64_t i64;              /* INT64 */
        float f32;                /* FLOAT */
        double f64;               /* DOUBLE */
    };
    const uint8_t *bytes;         /* BYTE_ARRAY, FIXED_LEN_BYTE_ARRAY */
    size_t len;
} pq_value;

typedef struct pq_stats {
    uint64_t null_count;          /* NULL cells */
    uint64_t nan_count;           /* NaN values (FLOAT, DOUBLE), not in min/max */
    int has_min_max;              /* 0 when every value was NULL or NaN */
    pq_value min, max;            /* in the column's order; bytes owned by W */
} pq_stats;

/* Column COL's statistics over every cell of the current file so far
 * (the whole file once finished); the pointers in *OUT stay valid until the next call on
 * W.  0, or -EINVAL for no such column. */
int pq_stats_get(const pq_writer *w, size_t col, pq_stats *out);

#endif

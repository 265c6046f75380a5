/*
 * pgcopy.h -- a streaming parser of PostgreSQL's COPY ... TO STDOUT (FORMAT
 * binary) output that puts every field into the Parquet writer (parquet.h),
 * for the Delta Lake export (issue 7).
 *
 * The exporter reads a table with libpq's PQgetCopyData and hands each
 * chunk, whatever its boundaries, to pgcopy_feed; the parser keeps what it
 * has not consumed yet (at most one field plus its 4-byte length), decodes
 * every complete field by its column's kind and calls pq_null / pq_int32 /
 * ... and pq_end_row.  Memory: one field (a value of up to 1 GiB, as
 * PostgreSQL allows) besides what the writer holds.
 *
 * The format (PostgreSQL docs, "COPY", Binary Format): an 11-byte signature
 * "PGCOPY\n\377\r\n\0", an int32 of flags (bit 16: OIDs included, which
 * this refuses, as it does any of the critical bits 17-31), an int32 header
 * extension length and that many bytes; then per tuple an int16 field
 * count and per field an int32 length (-1: NULL) and the value in the
 * type's binary send format, all integers big-endian; the trailer is a
 * field count of -1.  Anything else -- a wrong signature, a field count
 * that is not the schema's, a length past what a field of its type has,
 * bytes after the trailer, a stream that ends early -- is -EINVAL with a
 * one-line message (pgcopy_error), never a crash.
 *
 * Type mapping (pgcopy_map; PostgreSQL type -> Parquet -> Delta/Spark):
 *
 *   smallint (int2)             INT32 INT16           short
 *   integer (int4)              INT32                 integer
 *   bigint (int8)               INT64                 long
 *   real (float4)               FLOAT                 float
 *   double precision (float8)   DOUBLE                double
 *   boolean                     BOOLEAN               boolean
 *   text, varchar, char, name   BYTE_ARRAY STRING     string
 *   bytea                       BYTE_ARRAY            binary
 *   numeric(p,s), p <= 38       DECIMAL(p,s): INT32 p<=9, INT64 p<=18,
 *                               FIXED_LEN_BYTE_ARRAY above   decimal(p,s)
 *   date                        INT32 DATE            date
 *   timestamp, timestamptz      INT64 TIMESTAMP (micros, UTC)  timestamp
 *   anything else               BYTE_ARRAY STRING     string
 *
 * "Anything else" (uuid, json, jsonb, interval, arrays, numeric without a
 * precision or with p > 38, enums, ...) is read as PostgreSQL's text form:
 * the exporter selects such a column as COL::text (pgcopy_col.cast_text),
 * so the COPY stream holds text bytes.  uuid, json, jsonb, interval, xml,
 * money, inet, cidr, macaddr, enums and arrays are a documented mapping;
 * other types get a warning (pgcopy_map's NOTE).  timestamp (without time
 * zone) is written as if its wall-clock time were UTC.
 *
 * Values a Parquet column cannot hold are errors, not silent changes:
 * numeric NaN (numeric(p,s) may hold NaN since PostgreSQL 14) and date or
 * timestamp +/-infinity are -ERANGE naming the column and the row; the
 * exporter checks for NaN first and exports such a column as text.
 */
#ifndef LAKEFS_PGCOPY_H
#define LAKEFS_PGCOPY_H

#include "parquet.h"

#include <stddef.h>
#include <stdint.h>

/* How a column's binary fields are decoded. */
typedef enum pgcopy_kind {
    PGCOPY_INT16,
    PGCOPY_INT32,
    PGCOPY_INT64,
    PGCOPY_FLOAT4,
    PGCOPY_FLOAT8,
    PGCOPY_BOOL,
    PGCOPY_TEXT,                  /* UTF-8 bytes as they come (client_encoding UTF8) */
    PGCOPY_BYTEA,
    PGCOPY_NUMERIC,               /* to DECIMAL(precision, scale) */
    PGCOPY_DATE,
    PGCOPY_TIMESTAMP
} pgcopy_kind;

typedef struct pgcopy_col {
    pgcopy_kind kind;
    int32_t precision, scale;     /* PGCOPY_NUMERIC */
    int cast_text;                /* select the column as COL::text */
    char spark[32];               /* the Delta (Spark) type: "long", "decimal(10,2)" */
} pgcopy_col;

/* The well-known type OIDs (pg_type.dat). */
enum {
    PGCOPY_OID_BOOL = 16, PGCOPY_OID_BYTEA = 17, PGCOPY_OID_NAME = 19,
    PGCOPY_OID_INT8 = 20, PGCOPY_OID_INT2 = 21, PGCOPY_OID_INT4 = 23,
    PGCOPY_OID_TEXT = 25, PGCOPY_OID_JSON = 114, PGCOPY_OID_XML = 142,
    PGCOPY_OID_FLOAT4 = 700, PGCOPY_OID_FLOAT8 = 701, PGCOPY_OID_MONEY = 790,
    PGCOPY_OID_MACADDR = 829, PGCOPY_OID_INET = 869, PGCOPY_OID_CIDR = 650,
    PGCOPY_OID_BPCHAR = 1042, PGCOPY_OID_VARCHAR = 1043, PGCOPY_OID_DATE = 1082,
    PGCOPY_OID_TIME = 1083, PGCOPY_OID_TIMESTAMP = 1114,
    PGCOPY_OID_TIMESTAMPTZ = 1184, PGCOPY_OID_INTERVAL = 1186,
    PGCOPY_OID_TIMETZ = 1266, PGCOPY_OID_NUMERIC = 1700,
    PGCOPY_OID_UUID = 2950, PGCOPY_OID_JSONB = 3802
};

/* How to export a column of type OID with TYPMOD (atttypmod) named NAME:
 * fills *COL and the Parquet column *PQ (PQ->name = NAME).  IS_ARRAY and
 * IS_ENUM say what pg_type says of OID.  *NOTE is NULL or a warning (one
 * line, static) for a type exported as text without a documented mapping. */
void pgcopy_map(const char *name, uint32_t oid, int32_t typmod, int is_array, int is_enum,
                pgcopy_col *col, pq_column *pq, const char **note);

typedef struct pgcopy pgcopy;

/* A parser of rows of NCOLS columns COLS (copied; NAMES for messages,
 * copied) into W, which must have the matching schema.  0 or -ENOMEM. */
int pgcopy_new(const pgcopy_col *cols, const char *const *names, size_t ncols, pq_writer *w,
               pgcopy **out);

/* Consume LEN bytes of the stream.  0 or -errno (-EINVAL malformed,
 * -ERANGE a value Parquet cannot hold, or what the writer returned); after
 * an error every call returns it again. */
int pgcopy_feed(pgcopy *p, const void *buf, size_t len);

/* The stream has ended: 0 if it ended right after the trailer, else
 * -EINVAL (truncated). */
int pgcopy_finish(pgcopy *p);

/* Rows decoded so far. */
uint64_t pgcopy_rows(const pgcopy *p);

/* The last error, one line ("" if none). */
const char *pgcopy_error(const pgcopy *p);

/* Free P (NULL is fine). */
void pgcopy_free(pgcopy *p);

#endif

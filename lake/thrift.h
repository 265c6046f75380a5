/*
 * thrift.h -- an encoder for Thrift's compact protocol, as Parquet needs it.
 *
 * Parquet stores its page headers and its footer (FileMetaData) as Thrift
 * structs in the compact protocol.  This is the writing half only, for the
 * types Parquet uses: structs and unions (a union is a struct with one
 * field), i8/i32/i64 (zigzag varints; enums are i32), bool fields (the
 * value rides in the field header), binary/string (varint length + bytes)
 * and lists.  Field ids are written as a delta from the previous field of
 * the same struct when that delta is 1..15 (one byte with the type), else
 * in the long form (type byte + zigzag varint id).  Lists use the short
 * header (size in the high nibble) below 15 elements, else 0xF0|type and a
 * varint size.
 *
 * Output goes to a growable buffer.  Calls never fail one by one: the first
 * allocation failure (or a struct nested deeper than THRIFT_DEPTH_MAX, or
 * an unbalanced end) is kept in ->err, later calls do nothing, and the
 * caller checks thrift_error() once at the end.
 */
#ifndef LAKEFS_THRIFT_H
#define LAKEFS_THRIFT_H

#include "../util/bytebuf.h"

#include <stddef.h>
#include <stdint.h>

#define THRIFT_DEPTH_MAX 16

/* The compact protocol's type codes Parquet needs (of fields and of list
 * elements; i16, double, set and map are not used). */
enum thrift_type {
    THRIFT_TRUE = 1,              /* bool field holding true */
    THRIFT_FALSE = 2,             /* bool field holding false */
    THRIFT_I8 = 3,
    THRIFT_I32 = 5,
    THRIFT_I64 = 6,
    THRIFT_BINARY = 8,
    THRIFT_LIST = 9,
    THRIFT_STRUCT = 12
};

typedef struct thrift_out {
    bytebuf out;                  /* encoded bytes */
    int16_t last_id[THRIFT_DEPTH_MAX]; /* previous field id per open struct */
    int depth;                    /* open structs */
    int err;                      /* first error (-ENOMEM, -EINVAL), sticky */
} thrift_out;

/* An empty encoder (no allocation until the first byte). */
void thrift_init(thrift_out *t);
/* Release T's buffer. */
void thrift_free(thrift_out *t);
/* Forget what T holds and any error, keeping the allocation. */
void thrift_reset(thrift_out *t);
/* 0, or the first error any call on T met (-ENOMEM, -EINVAL). */
int thrift_error(const thrift_out *t);

/* Open a struct that has no field header of its own: the top-level struct
 * or an element of a list of structs.  Close it with thrift_struct_end. */
void thrift_struct_begin(thrift_out *t);
/* Close the innermost open struct (writes the stop byte). */
void thrift_struct_end(thrift_out *t);

/* Fields of the innermost open struct, in any order (ascending is
 * shortest).  A struct field is opened by thrift_field_struct and closed by
 * thrift_struct_end; a list field is followed by exactly N elements. */
void thrift_field_bool(thrift_out *t, int16_t id, int v);
void thrift_field_i8(thrift_out *t, int16_t id, int8_t v);
void thrift_field_i32(thrift_out *t, int16_t id, int32_t v);
void thrift_field_i64(thrift_out *t, int16_t id, int64_t v);
void thrift_field_binary(thrift_out *t, int16_t id, const void *p, size_t n);
void thrift_field_string(thrift_out *t, int16_t id, const char *s);
void thrift_field_struct(thrift_out *t, int16_t id);
void thrift_field_list(thrift_out *t, int16_t id, enum thrift_type elem, uint32_t n);

/* List elements. */
void thrift_i32(thrift_out *t, int32_t v);
void thrift_binary(thrift_out *t, const void *p, size_t n);
/* N bytes already encoded elsewhere (e.g. list elements built apart). */
void thrift_raw(thrift_out *t, const void *p, size_t n);

#endif

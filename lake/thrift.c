/*
 * thrift.c -- Thrift compact-protocol encoder (see thrift.h).
 *
 * Integers are zigzag-mapped ((n << 1) ^ (n >> 63), so small magnitudes of
 * either sign stay small) and written as little-endian base-128 varints:
 * 7 bits a byte, the high bit set on every byte but the last.  A struct
 * remembers the id of its previous field so the next header can be a
 * one-byte delta; a nested struct starts again from 0.
 */
#include "thrift.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* An empty encoder (no allocation until the first byte). */
void thrift_init(thrift_out *t)
{
    memset(t, 0, sizeof(*t));
}

/* Release T's buffer. */
void thrift_free(thrift_out *t)
{
    bytebuf_free(&t->out);
    thrift_init(t);
}

/* Forget what T holds and any error, keeping the allocation. */
void thrift_reset(thrift_out *t)
{
    t->out.len = 0;
    t->depth = 0;
    t->err = 0;
}

/* 0, or the first error any call on T met. */
int thrift_error(const thrift_out *t)
{
    return t->err;
}

/* Append N bytes of P, or record -ENOMEM. */
static void put(thrift_out *t, const void *p, size_t n)
{
    if (!t->err && bytebuf_add(&t->out, p, n) < 0)
        t->err = -ENOMEM;
}

static void put_byte(thrift_out *t, uint8_t b)
{
    put(t, &b, 1);
}

/* V as a base-128 varint, or record -ENOMEM. */
static void put_varint(thrift_out *t, uint64_t v)
{
    if (!t->err && bytebuf_varint(&t->out, v) < 0)
        t->err = -ENOMEM;
}

/* V zigzag-mapped, as a varint (shifts done unsigned: no overflow). */
static void put_zigzag(thrift_out *t, int64_t v)
{
    uint64_t u = (uint64_t)v;
    put_varint(t, (u << 1) ^ (v < 0 ? UINT64_MAX : 0));
}

/* Record -EINVAL (a caller bug: unbalanced or too deep structs). */
static void misuse(thrift_out *t)
{
    if (!t->err)
        t->err = -EINVAL;
}

/* Open a struct that has no field header of its own. */
void thrift_struct_begin(thrift_out *t)
{
    if (t->err)
        return;
    if (t->depth == THRIFT_DEPTH_MAX) {
        misuse(t);
        return;
    }
    t->last_id[t->depth++] = 0;
}

/* Close the innermost open struct (writes the stop byte). */
void thrift_struct_end(thrift_out *t)
{
    if (t->err)
        return;
    if (t->depth == 0) {
        misuse(t);
        return;
    }
    put_byte(t, 0);
    t->depth--;
}

/* The header of field ID of type TYPE in the innermost struct. */
static void field_header(thrift_out *t, int16_t id, enum thrift_type type)
{
    int16_t *last;

    if (t->err)
        return;
    if (t->depth == 0) {
        misuse(t);
        return;
    }
    last = &t->last_id[t->depth - 1];
    if (id > *last && id - *last <= 15) {
        put_byte(t, (uint8_t)((id - *last) << 4 | type));
    } else {
        put_byte(t, (uint8_t)type);
        put_zigzag(t, id);
    }
    *last = id;
}

void thrift_field_bool(thrift_out *t, int16_t id, int v)
{
    field_header(t, id, v ? THRIFT_TRUE : THRIFT_FALSE);
}

void thrift_field_i8(thrift_out *t, int16_t id, int8_t v)
{
    field_header(t, id, THRIFT_I8);
    put_byte(t, (uint8_t)v);
}

void thrift_field_i32(thrift_out *t, int16_t id, int32_t v)
{
    field_header(t, id, THRIFT_I32);
    put_zigzag(t, v);
}

void thrift_field_i64(thrift_out *t, int16_t id, int64_t v)
{
    field_header(t, id, THRIFT_I64);
    put_zigzag(t, v);
}

void thrift_field_binary(thrift_out *t, int16_t id, const void *p, size_t n)
{
    field_header(t, id, THRIFT_BINARY);
    thrift_binary(t, p, n);
}

void thrift_field_string(thrift_out *t, int16_t id, const char *s)
{
    thrift_field_binary(t, id, s, strlen(s));
}

void thrift_field_struct(thrift_out *t, int16_t id)
{
    field_header(t, id, THRIFT_STRUCT);
    thrift_struct_begin(t);
}

void thrift_field_list(thrift_out *t, int16_t id, enum thrift_type elem, uint32_t n)
{
    field_header(t, id, THRIFT_LIST);
    if (n < 15) {
        put_byte(t, (uint8_t)(n << 4 | elem));
    } else {
        put_byte(t, (uint8_t)(0xF0 | elem));
        put_varint(t, n);
    }
}

void thrift_i32(thrift_out *t, int32_t v)
{
    put_zigzag(t, v);
}

void thrift_binary(thrift_out *t, const void *p, size_t n)
{
    put_varint(t, n);
    put(t, p, n);
}

void thrift_raw(thrift_out *t, const void *p, size_t n)
{
    put(t, p, n);
}

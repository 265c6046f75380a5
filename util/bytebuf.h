/*
 * bytebuf.h -- a growable byte buffer with base-128 varints: what the
 * layer writer (store/layer_write.c) and the lake's Thrift and Parquet
 * encoders (lake/thrift.c, lake/parquet.c) append their output to.
 *
 * The capacity doubles, so appending N bytes one at a time costs O(N)
 * copies; an append that cannot grow the buffer leaves it as it was and
 * returns -ENOMEM.  Varints are unsigned LEB128: 7 bits a byte, low bits
 * first, the high bit set on every byte but the last (what the layer
 * format, Thrift's compact protocol and Parquet's RLE run headers all
 * use); layer_format.h decodes them.
 */
#ifndef LAKEFS_BYTEBUF_H
#define LAKEFS_BYTEBUF_H

#include <stddef.h>
#include <stdint.h>

typedef struct bytebuf {
    uint8_t *p;                   /* the bytes (NULL until the first append) */
    size_t len, cap;              /* used, allocated */
} bytebuf;

/* Make room for N more bytes; 0 or -ENOMEM. */
int bytebuf_reserve(bytebuf *b, size_t n);
/* Append N bytes of P; 0 or -ENOMEM. */
int bytebuf_add(bytebuf *b, const void *p, size_t n);
/* Append byte V; 0 or -ENOMEM. */
int bytebuf_byte(bytebuf *b, uint8_t v);
/* Append V as a varint (1 to 10 bytes); 0 or -ENOMEM. */
int bytebuf_varint(bytebuf *b, uint64_t v);
/* Free the bytes; B is empty again. */
void bytebuf_free(bytebuf *b);

#endif

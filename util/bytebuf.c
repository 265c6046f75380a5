/*
 * bytebuf.c -- the growable byte buffer of bytebuf.h.
 */
#include "bytebuf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int bytebuf_reserve(bytebuf *b, size_t n)
{
    if (n <= b->cap - b->len)
        return 0;
    if (n > SIZE_MAX / 2 - b->len)
        return -ENOMEM;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n)
        cap *= 2;
    uint8_t *p = realloc(b->p, cap);
    if (!p)
        return -ENOMEM;
    b->p = p;
    b->cap = cap;
    return 0;
}

int bytebuf_add(bytebuf *b, const void *p, size_t n)
{
    if (bytebuf_reserve(b, n) < 0)
        return -ENOMEM;
    if (n)
        memcpy(b->p + b->len, p, n);
    b->len += n;
    return 0;
}

int bytebuf_byte(bytebuf *b, uint8_t v)
{
    return bytebuf_add(b, &v, 1);
}

int bytebuf_varint(bytebuf *b, uint64_t v)
{
    uint8_t tmp[10];
    size_t n = 0;
    while (v >= 0x80) {
        tmp[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    tmp[n++] = (uint8_t)v;
    return bytebuf_add(b, tmp, n);
}

void bytebuf_free(bytebuf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

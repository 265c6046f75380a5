/*
 * layer_format.h -- the on-disk layout of a layer, shared by the writer
 * (layer_write.c) and the reader (layer_read.c).
 *
 *   block 0 | block 1 | ... | index | footer
 *
 * Block (zstd frame of ~64 KiB raw; all versions of one key in one block):
 *   entries: varint klen, key, u64 seq, u8 flags, varint vlen, value
 * Index (not compressed):
 *   varint nblocks, then per block: varint klen, first key, u64 offset,
 *   u32 compressed length, u32 raw length, u32 crc32c of compressed bytes;
 *   then varint klen + smallest key, varint klen + largest key
 * Footer (LAYER_FOOTER_SIZE bytes, little-endian):
 *   magic "LKFSLYR1", u32 version, u32 reserved (0), u64 index offset,
 *   u64 index length, u64 entries, u64 min seq, u64 max seq,
 *   u32 crc32c of index, u32 crc32c of the preceding footer bytes
 */
#ifndef LAKEFS_LAYER_FORMAT_H
#define LAKEFS_LAYER_FORMAT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define LAYER_MAGIC "LKFSLYR1"
#define LAYER_VERSION 1
#define LAYER_FOOTER_SIZE 64
#define LAYER_BLOCK_TARGET (64 * 1024)    /* raw bytes before a new block */
#define LAYER_BLOCK_MAX (1024u * 1024 * 1024) /* readers reject larger blocks */
#define LAYER_KEY_MAX 65535               /* longest key accepted */
#define LAYER_FLAG_TOMB 1                 /* entry flag: a deletion */

static inline void layer_put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) { p[i] = (uint8_t)v; v >>= 8; }
}

static inline void layer_put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) { p[i] = (uint8_t)v; v >>= 8; }
}

static inline uint32_t layer_get32(const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

static inline uint64_t layer_get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

/* Decode a varint (LEB128, as bytebuf_varint writes it) from [*P, END)
 * into *V, advancing *P; -1 if malformed. */
static inline int layer_get_varint(const uint8_t **p, const uint8_t *end,
                                   uint64_t *v)
{
    uint64_t r = 0;
    for (int shift = 0; shift < 64 && *p < end; shift += 7) {
        uint8_t b = *(*p)++;
        if (shift == 63 && b > 1)
            return -1;
        r |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) { *v = r; return 0; }
    }
    return -1;
}

/* Compare keys A and B as byte strings (shorter prefix first). */
static inline int layer_keycmp(const uint8_t *a, size_t al,
                               const uint8_t *b, size_t bl)
{
    size_t n = al < bl ? al : bl;
    int c = n ? memcmp(a, b, n) : 0;
    if (c)
        return c;
    return al < bl ? -1 : al > bl;
}

#endif

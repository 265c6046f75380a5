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
 *   then varint klen + smallest key, varint klen + largest key;
 *   then (version 2) the key filter: varint bits (0: none), and if not 0,
 *   u8 hashes and the bits, ceil(bits / 8) bytes, bit i in byte i / 8 at
 *   (1 << i % 8)
 * Footer (LAYER_FOOTER_SIZE bytes, little-endian):
 *   magic "LKFSLYR1", u32 version, u32 reserved (0), u64 index offset,
 *   u64 index length, u64 entries, u64 min seq, u64 max seq,
 *   u32 crc32c of index, u32 crc32c of the preceding footer bytes
 *
 * The key filter is a Bloom filter over the layer's distinct keys
 * (LAYER_FILTER_BITS_PER_KEY bits a key, LAYER_FILTER_HASHES bit positions
 * from one 64-bit hash by double hashing: about 1% false positives).  Its
 * cost model: a read probes the layers newest first, and a layer whose key
 * range holds a key it does not have still costs a block lookup (and a
 * decompression if the block is not cached); a time-travel view's replay
 * consulted 5.6 layers a read without filters.  With them a layer that
 * lacks the key is skipped for a hash and seven bit tests, at 1.25 bytes a
 * key in memory.  Version 1 layers (no filter) are read as before.
 */
#ifndef LAKEFS_LAYER_FORMAT_H
#define LAKEFS_LAYER_FORMAT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include "../util/fnv.h"

#define LAYER_MAGIC "LKFSLYR1"
#define LAYER_VERSION 2                   /* written: with a key filter */
#define LAYER_VERSION_UNFILTERED 1        /* also read: no key filter */
#define LAYER_FILTER_BITS_PER_KEY 10
#define LAYER_FILTER_HASHES 7
#define LAYER_FILTER_HASHES_MAX 32        /* readers reject more */
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

/* The key filter's hash of KEY: 64-bit FNV-1a (util/fnv.h), then a
 * finalizer that spreads keys differing only in their last bytes (page
 * numbers) over every bit. */
static inline uint64_t layer_filter_hash(const uint8_t *key, size_t klen)
{
    uint64_t h = fnv1a(FNV1A_INIT, key, klen);
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return h;
}

/* Bit I (of HASHES) of hash H in a filter of BITS bits (double hashing). */
static inline uint64_t layer_filter_bit(uint64_t h, unsigned i, uint64_t bits)
{
    uint64_t step = (h >> 32 | h << 32) | 1;
    return (h + i * step) % bits;
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

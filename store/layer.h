/*
 * layer.h -- immutable layer files: sorted runs of key versions.
 *
 * A layer holds versions (key, seq, value or tombstone) sorted by key
 * ascending and, within a key, by seq descending.  It is written once,
 * uploaded with put-if-absent and never changed.  On disk: a sequence of
 * zstd-compressed blocks (~64 KiB raw each), an index (first key, offset,
 * compressed length, crc32c of each block), and a fixed footer (index
 * offset/length/crc, key/seq ranges, magic).  Every block and the index
 * carry a CRC-32C, so a flipped byte is an error (-EIO), never wrong data.
 *
 * Readers load the footer and index once (layer_open) and fetch blocks with
 * ranged gets; decompressed blocks live in a process-wide LRU cache.  A
 * reader going through consecutive blocks of a layer has the blocks ahead of
 * it prefetched in parallel by a few background threads (read-ahead).
 */
#ifndef LAKEFS_LAYER_H
#define LAKEFS_LAYER_H

#include <stddef.h>
#include <stdint.h>
#include "../objstore/objstore.h"

typedef struct layer_writer layer_writer;

/* A writer that builds a layer in memory. */
layer_writer *layer_writer_new(void);
/* Compress W's blocks for speed, not size (zstd level -20 instead of 1:
 * on PostgreSQL's binary, 3.7x faster to compress and 3.2x to decompress,
 * 1.6x larger): for a layer that stays on this machine and is read back
 * soon (a view's spilled overlay). */
void layer_writer_fast(layer_writer *w);
/* Append a version; keys must come ascending, seqs descending within a key.
 * TOMB != 0 marks a deletion (VAL ignored).  Returns 0 or -errno. */
int layer_writer_add(layer_writer *w, const uint8_t *key, size_t klen,
                     uint64_t seq, int tomb, const void *val, size_t vlen);
/* Bytes the layer would have if finished now, less the index and footer
 * (the compressed blocks so far plus the raw current one). */
size_t layer_writer_size(const layer_writer *w);
/* Serialize into a new malloc'd buffer; the writer is left empty. */
int layer_writer_finish(layer_writer *w, void **buf, size_t *len);
void layer_writer_free(layer_writer *w);

typedef struct layer layer;

/* Open object KEY of OS as a layer: reads and checks footer and index. */
int layer_open(objstore *os, const char *key, layer **out);
/* The same for a layer known to be SIZE bytes (a manifest records it; 0:
 * unknown): one ranged get instead of a head and two. */
int layer_open_sized(objstore *os, const char *key, uint64_t size, layer **out);
/* The same for KEY just uploaded from BUF/LEN by this process: a caching
 * OS (objcache.h) learns the whole layer first, so reading it back needs
 * no download. */
int layer_open_uploaded(objstore *os, const char *key, const void *buf,
                        size_t len, layer **out);
/* Check object KEY of OS as a whole, read in one get: footer, index and
 * every block (checksum, decompression, entry order); the versions it
 * holds go to *ENTRIES.  0, or -EIO with a line naming the object and the
 * defect on stderr (-errno if it cannot be read).  For lakefs fsck. */
int layer_verify(objstore *os, const char *key, uint64_t *entries);
/* Free L; waits for its prefetches that are running (one get each). */
void layer_close(layer *l);
/* Object key, seq range and object size of an open layer. */
const char *layer_name(const layer *l);
uint64_t layer_min_seq(const layer *l);
uint64_t layer_max_seq(const layer *l);
uint64_t layer_size(const layer *l);

/* 1 if L may hold KEY (a layer_get of it may find it): KEY lies within
 * L's key range and passes its key filter, if it has one (never 0 for a
 * key L holds; 1 for about 1% of the keys it lacks); else 0. */
int layer_may_hold(const layer *l, const uint8_t *key, size_t klen);

/* Have the read-ahead threads bring the blocks of L that would hold the N
 * keys KEYS[i] (LENS[i] bytes) into the block cache (and a caching object
 * store), runs of consecutive blocks in one get each, unless there or on
 * their way, after any sequential read-ahead; waits while the warming
 * queue is full.  Queues no more than *BUDGET bytes of blocks and takes
 * what it queued from *BUDGET.  Errors are silent: a reader fetches the
 * block again and reports. */
void layer_warm(layer *l, const uint8_t *const *keys, const size_t *lens,
                size_t n, uint64_t *budget);
/* Newest version of KEY with seq <= MAX_SEQ.  Returns 1 if found (then
 * *TOMB tells a deletion, else *VAL is a malloc'd copy of *VLEN bytes and
 * *SEQ its seq), 0 if the layer has no such version, -EIO on a checksum or
 * read failure (logged with the object name). */
int layer_get(layer *l, const uint8_t *key, size_t klen, uint64_t max_seq,
              int *tomb, void **val, size_t *vlen, uint64_t *seq);

/* Call FN for the newest version with seq <= MAX_SEQ of each key starting
 * with PREFIX, in key order; FN returning non-zero stops the scan and that
 * value is returned.  Tombstones are passed too (TOMB != 0). */
typedef int (*layer_scan_fn)(void *arg, const uint8_t *key, size_t klen,
                             uint64_t seq, int tomb, const void *val, size_t vlen);
int layer_scan(layer *l, const uint8_t *prefix, size_t plen, uint64_t max_seq,
               layer_scan_fn fn, void *arg);
/* The same for every key at or after FROM (FLEN bytes), in order, until FN
 * returns non-zero. */
int layer_scan_from(layer *l, const uint8_t *from, size_t flen, uint64_t max_seq,
                    layer_scan_fn fn, void *arg);

/* Size the process-wide decompressed-block cache (bytes); a mount takes
 * at least LAYER_BLOCK_CACHE_MIN, a few 64 KiB blocks. */
#define LAYER_BLOCK_CACHE_MIN ((size_t)1 << 20)
void layer_cache_set_limit(size_t bytes);

/* Keep up to BLOCKS blocks (~64 KiB raw each) read ahead of a sequential
 * reader of a layer (default 32); 0 turns read-ahead off. */
void layer_readahead_set(size_t blocks);

typedef struct layer_ra_counters {
    uint64_t prefetched;          /* blocks loaded by read-ahead */
    uint64_t hits;                /* of those, read by a reader since */
} layer_ra_counters;

/* A snapshot of the process-wide read-ahead counters. */
void layer_readahead_stats(layer_ra_counters *out);

#endif

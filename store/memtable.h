/*
 * memtable.h -- the in-memory sorted table of recent key versions.
 *
 * A skiplist ordered by key (memcmp, shorter first on a tie) whose nodes
 * keep the versions of their key, newest first -- or, after
 * mt_keep_latest (as the store uses them), only the newest.  Not
 * thread-safe: the store serialises writers and lets readers in under a
 * read lock.  Its memory comes from 2 MiB chunks that outlive it (see
 * memtable.c): freeing a memtable gives them to the next one.
 */
#ifndef LAKEFS_MEMTABLE_H
#define LAKEFS_MEMTABLE_H

#include <stddef.h>
#include <stdint.h>

typedef struct memtable memtable;

typedef struct mt_version {
    struct mt_version *older;     /* next older version of the same key */
    uint64_t seq;                 /* batch that wrote it */
    uint32_t vlen;                /* value bytes following */
    uint32_t room;                /* value bytes allocated (a rewrite in place fits in them) */
    uint8_t tomb;                 /* 1: deletion */
    uint8_t val[];
} mt_version;

memtable *mt_new(void);
void mt_free(memtable *mt);
/* Add a version of KEY (seq must not be older than the key's newest). */
int mt_put(memtable *mt, const uint8_t *key, size_t klen, uint64_t seq,
           int tomb, const void *val, size_t vlen);
/* Newest version of KEY with seq <= MAX_SEQ, or NULL; valid while MT lives. */
const mt_version *mt_get(const memtable *mt, const uint8_t *key, size_t klen,
                         uint64_t max_seq);
/* From now on keep only the newest version of each key.  A put replaces
 * the newest version, in place when the new value fits in its room: no
 * reader may hold it then. */
void mt_keep_latest(memtable *mt);
/* Bytes of keys, values and their headers allocated (the flush trigger). */
size_t mt_bytes(const memtable *mt);
/* Lowest and highest seq held (0 when empty). */
uint64_t mt_min_seq(const memtable *mt);
uint64_t mt_max_seq(const memtable *mt);

/* Call FN for each key at or after FROM (all keys if FLEN == 0) in order
 * with its newest version; FN returning non-zero stops and is returned. */
typedef int (*mt_iter_fn)(void *arg, const uint8_t *key, size_t klen,
                          const mt_version *newest);
int mt_iterate(const memtable *mt, const uint8_t *from, size_t flen,
               mt_iter_fn fn, void *arg);

#endif

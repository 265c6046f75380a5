/*
 * layer_impl.h -- what the three parts of a layer's read side share:
 * layer_read.c (opening, validating and searching a layer),
 * layer_cache.c (the process-wide cache of decompressed blocks) and
 * layer_fetch.c (fetching blocks: one fetch per block at a time,
 * read-ahead, warming).  Not for use outside them: store code goes
 * through layer.h.
 */
#ifndef LAKEFS_LAYER_IMPL_H
#define LAKEFS_LAYER_IMPL_H

#include "layer.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define RA_STREAMS 4              /* sequential runs tracked per layer */
#define RA_RUN 3                  /* consecutive blocks read before prefetching */
#define RA_FIRST 4                /* window of a run's first prefetch */
#define RA_DEFAULT 256            /* largest window unless set (blocks) */
#define RA_WORKERS 32             /* prefetch threads */
#define RA_QUEUE 256              /* prefetch jobs queued at most */
#define RA_BATCH 16               /* consecutive blocks one prefetch gets at most */
#define RA_WARMERS 8              /* prefetch threads warming at once, at most */

typedef struct lblock {
    const uint8_t *first;         /* first key (points into the index) */
    size_t firstlen;
    uint64_t off;                 /* offset of the compressed block */
    uint32_t clen, rawlen;        /* compressed and raw lengths */
    uint32_t crc;                 /* crc32c of the compressed bytes */
} lblock;

typedef struct ra_stream {        /* one sequential run over a layer */
    size_t next;                  /* block that continues it; 0: unused */
    size_t len;                   /* consecutive blocks read */
    size_t end;                   /* blocks before it were queued or cached */
    size_t window;                /* blocks kept ahead; 0 until RA_RUN read */
    uint64_t used;                /* layer's ra_clock at its last read */
} ra_stream;

struct layer {
    objstore *os;                 /* repository; must outlive the layer */
    char *name;                   /* object key */
    char *id;                     /* cache identity: URL '\n' key */
    uint64_t size;                /* object size */
    uint64_t nentries, min_seq, max_seq;  /* from the footer */
    uint8_t *index;               /* raw index; keys below point into it */
    size_t nblocks;
    lblock *blocks;
    const uint8_t *minkey, *maxkey;  /* key range */
    size_t minlen, maxlen;
    const uint8_t *filter;        /* key filter bits, in index (NULL: none) */
    uint64_t filter_bits;
    unsigned filter_hashes;
    pthread_mutex_t ra_lock;      /* guards ra and ra_clock */
    ra_stream ra[RA_STREAMS];
    uint64_t ra_clock;            /* counts reads of a new block */
    int ra_busy;                  /* its prefetches running now (ra_mu) */
};

typedef struct lentry {
    const uint8_t *key;
    size_t klen;
    uint64_t seq;
    int tomb;
    const uint8_t *val;
    size_t vlen;
} lentry;

typedef struct cblock {
    struct cblock *hnext;         /* hash chain */
    struct cblock *prev, *next;   /* LRU list, most recently used first */
    char *id;                     /* layer identity: URL '\n' object key */
    uint64_t hash;                /* hash of (id, blockno) */
    size_t blockno;               /* block number within the layer */
    int refs;                     /* readers holding it, +1 while cached */
    atomic_int prefetched;        /* loaded by read-ahead, not read since */
    size_t len;                   /* bytes of data */
    uint8_t data[];               /* the decompressed block */
} cblock;

/* layer_cache.c */
uint64_t lcache_hash(const char *id, size_t b);
cblock *lcache_lookup(const char *id, uint64_t hash, size_t b);
int lcache_wants(const char *id, uint64_t hash, size_t b);
void lcache_insert(cblock **cp);
void lcache_release(cblock *c);
void lcache_lock(void);
void lcache_unlock(void);

/* layer_read.c */
int lread_entry_next(const uint8_t **p, const uint8_t *end, lentry *e);
int lread_block_check(const layer *l, size_t b, const uint8_t *data, size_t len);
long lread_block_find(const layer *l, const uint8_t *key, size_t klen);

/* layer_fetch.c */
int lfetch_block(layer *l, size_t b, cblock **out);
void lfetch_note_read(layer *l, size_t b, const uint8_t *key, size_t klen);
void lfetch_forget(layer *l);

#endif

/*
 * objcache_impl.h -- what the disk cache's two parts share: objcache.c
 * (the index, filling and reading files, the caching backend) and
 * objcache_scan.c (adopting the files a previous daemon left).
 */
#ifndef LAKEFS_OBJCACHE_IMPL_H
#define LAKEFS_OBJCACHE_IMPL_H

#include "objcache.h"

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#define OC_MAGIC "LKFSOC02"
#define OC_HDR 48                 /* header bytes before the part table */
#define OC_PART 24                /* part table bytes per part */
#define OC_PARTS_MAX 16           /* parts one file holds at most: read-ahead's job */
#define OC_KEY_MAX 1024           /* longer keys are not cached */
#define OC_BLOCK 4096             /* the bound counts whole blocks */
#define OC_TOUCH_SECS 60          /* refresh a hit file's mtime this seldom */
#define OC_BUCKETS0 1024          /* initial hash table size */

enum { OC_RANGE = 1, OC_SIZE = 2 };  /* file kinds: ranged gets, a head */

typedef struct oc_id {
    const char *key;              /* object key */
    uint32_t kind;                /* OC_RANGE or OC_SIZE */
    uint64_t off, len;            /* range as requested (0, 0 for OC_SIZE) */
} oc_id;

struct oc_file;

typedef struct oc_part {          /* one cached range */
    struct oc_part *hnext;        /* hash chain, while indexed */
    struct oc_file *file;         /* the file holding it */
    uint64_t hash;                /* oc_hash of its identity */
    uint64_t off, len;            /* identity: the range asked */
    uint64_t dlen;                /* data bytes */
    uint64_t at;                  /* offset of the data in the file */
    uint32_t crc;                 /* oc_part_crc of identity and data */
    int indexed;                  /* in the hash table (else a duplicate) */
} oc_part;

typedef struct oc_file {          /* one file of the directory */
    struct oc_file *prev, *next;  /* LRU list, most recently used first */
    uint64_t seq;                 /* its name; never reused while open */
    uint64_t charge;              /* bytes counted against the bound */
    int64_t touched;              /* mtime (s) as last set or seen */
    uint32_t kind;                /* OC_RANGE or OC_SIZE */
    uint32_t nparts;
    char *key;                    /* object key (stored after the parts) */
    oc_part parts[];
} oc_file;

struct objcache {
    objstore *inner;              /* the repository */
    objstore *view;               /* the caching store handed out */
    int dfd;                      /* the cache directory */
    int lockfd;                   /* DIR/lock, flocked while open */
    uint64_t limit;               /* bound on charged bytes */
    pthread_mutex_t mu;           /* guards everything below */
    oc_part **buckets;            /* indexed parts by hash, power-of-2 long */
    size_t nbuckets;
    size_t nindexed;              /* parts in the hash table */
    oc_file *head, *tail;         /* LRU ends */
    uint64_t next_seq;            /* name of the next file written */
    objcache_counters n;          /* counters; entries and bytes kept current */
};

/* Store V little-endian at P. */
static inline void oc_put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* Store V little-endian at P. */
static inline void oc_put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* Load a little-endian value from P. */
static inline uint32_t oc_get32(const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

/* Load a little-endian value from P. */
static inline uint64_t oc_get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

/* objcache.c */
void oc_fname(char *buf, uint64_t seq);
uint64_t oc_charge(uint64_t flen);
oc_file *oc_file_new(const char *key, size_t klen, uint32_t kind, uint32_t nparts);
void oc_part_set(oc_file *f, uint32_t i, uint64_t off, uint64_t len,
                 uint64_t dlen, uint64_t at);
int oc_insert(objcache *c, oc_file *f);
void oc_evict(objcache *c);
int oc_cacheable(const char *key);

/* objcache_scan.c */
int oc_scan(objcache *c);

#endif

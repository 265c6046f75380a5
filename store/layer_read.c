/*
 * layer_read.c -- reading layers, the process-wide block cache, and
 * read-ahead.
 *
 * layer_open fetches only the footer and the index (one ranged get of the
 * layer's tail when the size is known, layer_open_sized) and verifies both
 * checksums; after that the layer's contents are
 * immutable (only the read-ahead state changes, under its own mutex), so any
 * number of threads may call layer_get/layer_scan on it at once.  Blocks
 * are fetched on demand with one ranged get each, checked against the CRC-32C
 * in the index, decompressed and structurally validated once, then kept in a
 * process-wide LRU cache.  Nothing read from an object is trusted before it
 * is checked: every length is bounded by the buffer holding it, so a
 * truncated or corrupt layer yields -EIO, never a crash or wrong data.
 *
 * Cache entries are reference counted: a reader holds a reference while it
 * walks a block, so eviction by another thread only unlinks the entry and
 * the last holder frees it.  The cache is keyed by (repository URL + object
 * key, block number); objects are immutable, so an entry never goes stale.
 * A block is fetched by one thread at a time: while it is on the in-flight
 * list, a reader that needs it waits for that fetch and then finds it in
 * the cache (a prefetch skips it), so concurrent readers of one block, e.g.
 * FUSE threads serving neighbouring parts of one kernel read-ahead, do not
 * download it twice.
 *
 * Read-ahead.  One ranged get per block costs a round trip per ~64 KiB,
 * which on S3 limits a sequential reader to a few MB/s.  A PostgreSQL
 * sequential scan reads consecutive pages of a relation, which are
 * consecutive keys and so consecutive blocks of a layer.  Each layer tracks
 * a few sequential runs (RA_STREAMS): a read of block B continues the run
 * that last read B - 1 if it enters B at its first key, as a reader going
 * through consecutive keys does.  When a run has read RA_RUN blocks, it
 * queues prefetches of the next RA_FIRST blocks; each further block doubles
 * its window, up to the limit set by layer_readahead_set (RA_DEFAULT blocks
 * unless set; 0 turns read-ahead off), and the run keeps that many blocks
 * past the reader cached or queued.  Once a run's window is open, any read
 * within RA_BATCH blocks of it belongs to it: the kernel's read-ahead
 * reaches the daemon as several reads served by concurrent threads, out of
 * order and entering blocks anywhere, which would otherwise each start a
 * run of their own.  A read that continues no run replaces the least
 * recently used run and prefetches nothing.  Random reads almost never
 * prefetch: it would take RA_RUN - 1 of them in a row each landing on the
 * first key of the block after a recent one.
 *
 * Cost model of the prefetch requests: an S3 server's cost is per request
 * at these sizes (a local Ceph RGW on 2 cores serves ~1,000 ranged GETs a
 * second whether they ask 64 KiB or several times that; 1 MiB GETs run at
 * 800+ MB/s), and a real bucket adds 10-50 ms to each.  So a run queues its
 * window in jobs of up to RA_BATCH consecutive blocks (~1 MiB), each one
 * os_get_ranges: one ranged get for the blocks not already cached, which
 * the disk cache (objcache.c) still keeps as the same per-block ranges a
 * reader asks for.  A run tops its window up a slice at a time (ra_batch),
 * not a block each time the reader moves on, so jobs stay large; and a
 * reader that needs a block of a job still queued runs that job itself
 * (ra_take) instead of fetching the one block and splitting the job's range.
 * Throughput is then at most the bytes in flight per round trip.
 *
 * RA_WORKERS threads, started at the first prefetch, take jobs from a
 * bounded queue (RA_QUEUE; a job that does not fit is left out, and the run
 * tries it again at the reader's next block) and load blocks in parallel
 * (the S3 backend runs concurrent calls on separate connections) through
 * the reader's checks: checksum, decompression, block cache.  Prefetch
 * errors are silent: the reader then fetches the block itself and reports.
 * A job points at its layer without holding it, so a
 * queued prefetch never keeps a layer open: layer_close drops the layer's
 * queued jobs and waits for its running ones (one get each), after which no
 * prefetch touches the layer or its object store.  Read-ahead is on for
 * every backend: on file:// it still overlaps reads, checksums and
 * decompression of the blocks ahead with the reader's work.
 */
#include "layer.h"
#include "layer_format.h"
#include "../util/crc32c.h"
#include "../util/fnv.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

/* ---- block cache ---- */

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

static pthread_mutex_t cache_mu = PTHREAD_MUTEX_INITIALIZER;
static cblock **cache_buckets;    /* hash table, cache_nbuckets long */
static size_t cache_nbuckets;
static size_t cache_count;        /* entries cached */
static size_t cache_bytes;        /* data bytes cached */
static size_t cache_limit = (size_t)256 << 20;
static cblock *cache_head, *cache_tail;  /* LRU ends */

/* Hash of layer identity ID and block number B. */
static uint64_t cache_hash(const char *id, size_t b)
{
    uint64_t h = fnv1a(FNV1A_INIT, id, strlen(id));

    h ^= (uint64_t)b * 0x9E3779B97F4A7C15ull;
    return h ^ (h >> 29);
}

/* Unlink C from the LRU list (cache_mu held). */
static void lru_unlink(cblock *c)
{
    if (c->prev) c->prev->next = c->next; else cache_head = c->next;
    if (c->next) c->next->prev = c->prev; else cache_tail = c->prev;
    c->prev = c->next = NULL;
}

/* Put C at the front of the LRU list (cache_mu held). */
static void lru_push(cblock *c)
{
    c->prev = NULL;
    c->next = cache_head;
    if (cache_head) cache_head->prev = c; else cache_tail = c;
    cache_head = c;
}

/* Drop one reference to C, freeing it with the last (cache_mu held). */
static void cblock_unref_locked(cblock *c)
{
    if (--c->refs == 0) {
        free(c->id);
        free(c);
    }
}

/* Remove C from the cache (cache_mu held). */
static void cache_remove(cblock *c)
{
    cblock **pp = &cache_buckets[c->hash % cache_nbuckets];

    while (*pp != c)
        pp = &(*pp)->hnext;
    *pp = c->hnext;
    lru_unlink(c);
    cache_count--;
    cache_bytes -= c->len;
    cblock_unref_locked(c);
}

/* Evict least recently used entries until within the limit (cache_mu held). */
static void cache_evict(void)
{
    while (cache_tail && cache_bytes > cache_limit)
        cache_remove(cache_tail);
}

/* The cached block (ID, B), or NULL (cache_mu held). */
static cblock *cache_find(const char *id, uint64_t hash, size_t b)
{
    cblock *c = NULL;

    if (cache_nbuckets)
        for (c = cache_buckets[hash % cache_nbuckets]; c; c = c->hnext)
            if (c->hash == hash && c->blockno == b && strcmp(c->id, id) == 0)
                break;
    return c;
}

/* The cached block (ID, B) with a new reference, or NULL. */
static cblock *cache_lookup(const char *id, uint64_t hash, size_t b)
{
    cblock *c;

    pthread_mutex_lock(&cache_mu);
    if ((c = cache_find(id, hash, b)) != NULL) {
        c->refs++;
        lru_unlink(c);
        lru_push(c);
    }
    pthread_mutex_unlock(&cache_mu);
    return c;
}

/* 1 if the cache is on and lacks block (ID, B), else 0. */
static int cache_wants(const char *id, uint64_t hash, size_t b)
{
    int want;

    pthread_mutex_lock(&cache_mu);
    want = cache_limit > 0 && !cache_find(id, hash, b);
    pthread_mutex_unlock(&cache_mu);
    return want;
}

/* Double the hash table when it gets crowded (cache_mu held); best effort. */
static void cache_grow(void)
{
    size_t nb = cache_nbuckets ? cache_nbuckets * 2 : 1024;
    cblock **nt;

    if (cache_count < cache_nbuckets)
        return;
    nt = calloc(nb, sizeof(*nt));
    if (!nt)
        return;
    for (size_t i = 0; i < cache_nbuckets; i++)
        while (cache_buckets[i]) {
            cblock *c = cache_buckets[i];
            cache_buckets[i] = c->hnext;
            c->hnext = nt[c->hash % nb];
            nt[c->hash % nb] = c;
        }
    free(cache_buckets);
    cache_buckets = nt;
    cache_nbuckets = nb;
}

/* Insert *CP (held by the caller) into the cache; if another thread cached
 * the same block first, switch *CP to that one. */
static void cache_insert(cblock **cp)
{
    cblock *c = *cp, *o;

    pthread_mutex_lock(&cache_mu);
    if (cache_limit == 0)
        goto out;
    if ((o = cache_find(c->id, c->hash, c->blockno)) != NULL) {
        o->refs++;
        cblock_unref_locked(c);
        *cp = o;
        goto out;
    }
    cache_grow();
    if (!cache_nbuckets)
        goto out;
    c->hnext = cache_buckets[c->hash % cache_nbuckets];
    cache_buckets[c->hash % cache_nbuckets] = c;
    lru_push(c);
    c->refs++;
    cache_count++;
    cache_bytes += c->len;
    cache_evict();
out:
    pthread_mutex_unlock(&cache_mu);
}

/* Release a reference obtained from block_load. */
static void cblock_release(cblock *c)
{
    pthread_mutex_lock(&cache_mu);
    cblock_unref_locked(c);
    pthread_mutex_unlock(&cache_mu);
}

/* Size the process-wide decompressed-block cache (bytes); 0 empties it. */
void layer_cache_set_limit(size_t bytes)
{
    pthread_mutex_lock(&cache_mu);
    cache_limit = bytes;
    cache_evict();
    if (cache_count == 0) {
        free(cache_buckets);
        cache_buckets = NULL;
        cache_nbuckets = 0;
    }
    pthread_mutex_unlock(&cache_mu);
}

/* ---- layers ---- */

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

/* Decode the entry at *P (before END) into E and advance; -1 if malformed. */
static int entry_next(const uint8_t **p, const uint8_t *end, lentry *e)
{
    uint64_t klen, vlen;

    if (layer_get_varint(p, end, &klen) < 0 || klen > (uint64_t)(end - *p))
        return -1;
    e->key = *p;
    e->klen = (size_t)klen;
    *p += klen;
    if (end - *p < 9)
        return -1;
    e->seq = layer_get64(*p);
    if ((*p)[8] & ~LAYER_FLAG_TOMB)
        return -1;
    e->tomb = (*p)[8] & LAYER_FLAG_TOMB;
    *p += 9;
    if (layer_get_varint(p, end, &vlen) < 0 || vlen > (uint64_t)(end - *p) ||
        (e->tomb && vlen))
        return -1;
    e->val = *p;
    e->vlen = (size_t)vlen;
    *p += vlen;
    return 0;
}

/* 0 if block B's raw bytes DATA/LEN parse as sorted entries starting with
 * the index's first key, else -1. */
static int block_check(const layer *l, size_t b, const uint8_t *data, size_t len)
{
    const uint8_t *p = data, *end = data + len;
    lentry e, prev = { 0 };
    int first = 1;

    while (p < end) {
        if (entry_next(&p, end, &e) < 0)
            return -1;
        if (first) {
            if (layer_keycmp(e.key, e.klen, l->blocks[b].first,
                             l->blocks[b].firstlen) != 0)
                return -1;
        } else {
            int c = layer_keycmp(e.key, e.klen, prev.key, prev.klen);
            if (c < 0 || (c == 0 && e.seq >= prev.seq))
                return -1;
        }
        prev = e;
        first = 0;
    }
    return first ? -1 : 0;
}

/* ---- fetching blocks ---- */

typedef struct fetch {            /* a block being fetched by some thread */
    struct fetch *next;
    const char *id;               /* layer identity (the fetcher's layer's) */
    uint64_t hash;
    size_t blockno;
} fetch;

typedef struct ra_job {           /* a queued prefetch */
    layer *l;
    size_t b, n;                  /* blocks [b, b + n), n <= RA_BATCH */
} ra_job;

typedef struct ra_ring {          /* a bounded FIFO of jobs */
    ra_job job[RA_QUEUE];
    size_t head, len;             /* oldest job, jobs queued */
} ra_ring;

/* ra_mu guards the in-flight list, the job queue, the workers and every
 * layer's ra_busy; ra_done is broadcast when a fetch or a job ends. */
static pthread_mutex_t ra_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ra_done = PTHREAD_COND_INITIALIZER;
static pthread_cond_t ra_wake = PTHREAD_COND_INITIALIZER;  /* a job queued */
static fetch *inflight;           /* blocks being fetched */
static ra_ring ra_reads;          /* read-ahead jobs: served first */
static ra_ring ra_warms;          /* warming jobs (layer_warm) */
static int ra_warming;            /* workers running a warming job */
static int ra_workers;            /* prefetch threads started */
static layer *ra_running[RA_WORKERS];  /* the layer each worker prefetches from now */
static atomic_size_t ra_max = RA_DEFAULT;  /* largest window; 0: off */
static atomic_uint_fast64_t ra_prefetched, ra_hits;  /* layer_readahead_stats */

/* Take R's oldest job off it (R not empty; ra_mu held). */
static ra_job ring_pop(ra_ring *r)
{
    ra_job j = r->job[r->head];

    r->head = (r->head + 1) % RA_QUEUE;
    r->len--;
    return j;
}

/* Take the job of R that covers block B of L off R into *J; 1 if there was
 * one (ra_mu held). */
static int ring_take(ra_ring *r, const layer *l, size_t b, ra_job *j)
{
    size_t i;

    for (i = 0; i < r->len; i++) {
        ra_job *q = &r->job[(r->head + i) % RA_QUEUE];
        if (q->l == l && q->b <= b && b < q->b + q->n)
            break;
    }
    if (i == r->len)
        return 0;
    *j = r->job[(r->head + i) % RA_QUEUE];
    for (; i + 1 < r->len; i++)   /* close the gap it leaves */
        r->job[(r->head + i) % RA_QUEUE] = r->job[(r->head + i + 1) % RA_QUEUE];
    r->len--;
    return 1;
}

/* Drop every job of L from R (ra_mu held). */
static void ring_drop(ra_ring *r, const layer *l)
{
    size_t n = 0;

    for (size_t i = 0; i < r->len; i++) {
        ra_job j = r->job[(r->head + i) % RA_QUEUE];
        if (j.l != l)
            r->job[(r->head + n++) % RA_QUEUE] = j;
    }
    r->len = n;
}

/* The fetch of F's block under way, or NULL (ra_mu held). */
static fetch *fetch_find_locked(const fetch *f)
{
    fetch *o;

    for (o = inflight; o; o = o->next)
        if (o->hash == f->hash && o->blockno == f->blockno &&
            strcmp(o->id, f->id) == 0)
            break;
    return o;
}

/* Put F on the in-flight list and return 1, unless its block is being
 * fetched already: then return 0 (ra_mu held). */
static int fetch_claim_locked(fetch *f)
{
    if (fetch_find_locked(f))
        return 0;
    f->next = inflight;
    inflight = f;
    return 1;
}

/* fetch_claim_locked; but a 0 only once the fetch under way has ended. */
static int fetch_claim(fetch *f)
{
    int claimed;

    pthread_mutex_lock(&ra_mu);
    claimed = fetch_claim_locked(f);
    while (!claimed && fetch_find_locked(f))
        pthread_cond_wait(&ra_done, &ra_mu);
    pthread_mutex_unlock(&ra_mu);
    return claimed;
}

/* Take F off the in-flight list (ra_mu held; the caller wakes waiters). */
static void fetch_end_locked(fetch *f)
{
    fetch **pp;

    for (pp = &inflight; *pp != f; pp = &(*pp)->next)
        ;
    *pp = f->next;
}

/* Take F off the in-flight list and wake the threads waiting for it. */
static void fetch_end(fetch *f)
{
    pthread_mutex_lock(&ra_mu);
    fetch_end_locked(f);
    pthread_cond_broadcast(&ra_done);
    pthread_mutex_unlock(&ra_mu);
}

/* Verify and decompress block B (HASH) of L from BUF (GOT bytes, freed
 * here) into the cache and *OUT, which the caller releases; -EIO on any
 * defect, logged unless PREFETCH. */
static int block_decode(layer *l, size_t b, uint64_t hash, int prefetch,
                        void *buf, size_t got, cblock **out)
{
    const lblock *lb = &l->blocks[b];
    size_t r;
    cblock *c;

    if (got != lb->clen || crc32c(0, buf, got) != lb->crc) {
        if (!prefetch)
            fprintf(stderr, "lakefs: layer %s block %zu: %s\n", l->name, b,
                    got != lb->clen ? "short read" : "checksum mismatch");
        free(buf);
        return -EIO;
    }
    c = malloc(sizeof(*c) + lb->rawlen);
    if (!c || !(c->id = strdup(l->id))) {
        free(c);
        free(buf);
        return -ENOMEM;
    }
    r = ZSTD_decompress(c->data, lb->rawlen, buf, got);
    free(buf);
    if (ZSTD_isError(r) || r != lb->rawlen ||
        block_check(l, b, c->data, lb->rawlen) < 0) {
        if (!prefetch)
            fprintf(stderr, "lakefs: layer %s block %zu: malformed block\n",
                    l->name, b);
        free(c->id);
        free(c);
        return -EIO;
    }
    c->hnext = c->prev = c->next = NULL;
    c->hash = hash;
    c->blockno = b;
    c->refs = 1;
    atomic_init(&c->prefetched, prefetch);
    c->len = lb->rawlen;
    cache_insert(&c);
    *out = c;
    return 0;
}

/* Get, verify and decompress block B (HASH) of L into the cache and *OUT,
 * which the caller releases; -EIO on any defect, logged. */
static int block_fetch(layer *l, size_t b, uint64_t hash, cblock **out)
{
    const lblock *lb = &l->blocks[b];
    void *buf = NULL;
    size_t got = 0;
    int rc;

    rc = os_get(l->os, l->name, lb->off, lb->clen, &buf, &got);
    if (rc < 0) {
        fprintf(stderr, "lakefs: layer %s block %zu: %s\n", l->name, b,
                strerror(-rc));
        return -EIO;
    }
    return block_decode(l, b, hash, 0, buf, got, out);
}

static int ra_take(layer *l, size_t b);

/* Block B of L, from the cache or fetched, into *OUT, which the caller
 * releases with cblock_release; -EIO on any defect.  A reader waits for a
 * fetch of the block already under way, runs a queued prefetch of it
 * itself, and counts its first read of a prefetched block.  The cache is
 * looked at again once the block is claimed: a fetch that ended between
 * the first look and the claim has cached it, and fetching it again would
 * cost a second get of the same bytes. */
static int block_load(layer *l, size_t b, cblock **out)
{
    fetch f = { NULL, l->id, cache_hash(l->id, b), b };
    int claimed = 0, rc;

    for (;;) {
        if ((*out = cache_lookup(l->id, f.hash, b)) != NULL) {
            if (claimed)
                fetch_end(&f);
            if (atomic_exchange(&(*out)->prefetched, 0))
                atomic_fetch_add(&ra_hits, 1);
            return 0;
        }
        if (claimed)
            break;
        if (ra_take(l, b))
            continue;
        claimed = fetch_claim(&f);
    }
    rc = block_fetch(l, b, f.hash, out);
    fetch_end(&f);
    return rc;
}

/* ---- read-ahead ---- */

/* Load the blocks of [FROM, FROM + N) of L that are neither cached nor
 * being fetched, each run of consecutive ones with one os_get_ranges
 * (N <= RA_BATCH); errors are left to the reader to meet and report.
 * Called and returns with ra_mu held, which it drops around the gets: the
 * caller has taken the job off the queue under it, so the first run's
 * blocks are claimed before a reader could find them neither queued nor
 * in flight and fetch one alone, splitting the run. */
static void ra_prefetch_locked(layer *l, size_t from, size_t n)
{
    fetch f[RA_BATCH];
    uint32_t lens[RA_BATCH];
    void *bufs[RA_BATCH];
    size_t b = from, end = from + n, run, i;
    cblock *c;

    while (b < end) {
        for (run = 0; b + run < end; run++) {
            f[run] = (fetch){ NULL, l->id, cache_hash(l->id, b + run), b + run };
            if (!cache_wants(l->id, f[run].hash, b + run) ||
                !fetch_claim_locked(&f[run]))
                break;
            lens[run] = l->blocks[b + run].clen;
        }
        if (run > 0) {
            pthread_mutex_unlock(&ra_mu);
            if (os_get_ranges(l->os, l->name, l->blocks[b].off, lens, run, bufs) == 0)
                for (i = 0; i < run; i++)
                    if (block_decode(l, b + i, f[i].hash, 1, bufs[i], lens[i], &c) == 0) {
                        cblock_release(c);
                        atomic_fetch_add(&ra_prefetched, 1);
                    }
            pthread_mutex_lock(&ra_mu);
            for (i = 0; i < run; i++)
                fetch_end_locked(&f[i]);
            pthread_cond_broadcast(&ra_done);
        }
        b += run + 1;             /* past the run and the block ending it */
    }
}

/* If a queued prefetch job of L covers block B, take it off the queue and
 * run it in this thread (a reader that caught up with the read-ahead: one
 * get of the job's blocks, not one of B alone that would split the job's
 * range in two); 1 if it did. */
static int ra_take(layer *l, size_t b)
{
    ra_job j;
    int found;

    pthread_mutex_lock(&ra_mu);
    found = ring_take(&ra_reads, l, b, &j) || ring_take(&ra_warms, l, b, &j);
    if (found) {
        l->ra_busy++;
        ra_prefetch_locked(l, j.b, j.n);
        l->ra_busy--;
        pthread_cond_broadcast(&ra_done);
    }
    pthread_mutex_unlock(&ra_mu);
    return found;
}

/* A warming job may start: one is queued and fewer than RA_WARMERS run
 * (ra_mu held). */
static int ra_warm_ready_locked(void)
{
    return ra_warms.len > 0 && ra_warming < RA_WARMERS;
}

/* Prefetch thread number ARG: load queued blocks, forever; read-ahead
 * first, a warming job only when no read-ahead job waits. */
static void *ra_worker(void *arg)
{
    size_t me = (size_t)(uintptr_t)arg;
    pthread_mutex_lock(&ra_mu);
    for (;;) {
        ra_job j;
        int warm;

        while (ra_reads.len == 0 && !ra_warm_ready_locked())
            pthread_cond_wait(&ra_wake, &ra_mu);
        warm = ra_reads.len == 0;
        j = ring_pop(warm ? &ra_warms : &ra_reads);
        ra_warming += warm;
        j.l->ra_busy++;
        ra_running[me] = j.l;
        ra_prefetch_locked(j.l, j.b, j.n);
        ra_running[me] = NULL;
        j.l->ra_busy--;
        ra_warming -= warm;
        if (warm && ra_warm_ready_locked())
            pthread_cond_signal(&ra_wake);
        pthread_cond_broadcast(&ra_done);  /* for ra_forget, layer_warm */
    }
    return NULL;
}

/* fork(): the locks are taken around it, so that the child gets them in a
 * consistent state; the child has none of the prefetch threads, so it
 * forgets their jobs and fetches and starts threads of its own. */
static void ra_fork_prepare(void)
{
    pthread_mutex_lock(&ra_mu);
    pthread_mutex_lock(&cache_mu);
}

static void ra_fork_parent(void)
{
    pthread_mutex_unlock(&cache_mu);
    pthread_mutex_unlock(&ra_mu);
}

static void ra_fork_child(void)
{
    for (size_t i = 0; i < RA_WORKERS; i++)
        if (ra_running[i]) {
            ra_running[i]->ra_busy--;
            ra_running[i] = NULL;
        }
    ra_workers = ra_warming = 0;
    ra_reads.len = ra_warms.len = 0;
    inflight = NULL;              /* fetches of threads that are not here */
    pthread_cond_init(&ra_wake, NULL);
    pthread_cond_init(&ra_done, NULL);
    pthread_mutex_unlock(&cache_mu);
    pthread_mutex_unlock(&ra_mu);
}

static void ra_atfork(void)
{
    pthread_atfork(ra_fork_prepare, ra_fork_parent, ra_fork_child);
}

/* Start the prefetch threads, with every signal blocked as libfuse's own
 * workers have them (ra_mu held); returns how many run. */
static int ra_start(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    sigset_t all, old;
    pthread_t t;

    pthread_once(&once, ra_atfork);
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    while (ra_workers < RA_WORKERS &&
           pthread_create(&t, NULL, ra_worker, (void *)(uintptr_t)ra_workers) == 0) {
        pthread_detach(t);
        ra_workers++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return ra_workers;
}

/* Queue the job of blocks [B, B + N) of L on R for a prefetch thread
 * (ra_mu held, room in R). */
static void ra_push_locked(ra_ring *r, layer *l, size_t b, size_t n)
{
    r->job[(r->head + r->len++) % RA_QUEUE] = (ra_job){ l, b, n };
    pthread_cond_signal(&ra_wake);
}

/* Queue prefetches of the blocks in [FROM, TO) of L, RA_BATCH at most to
 * a job; returns the first block left out for want of queue room (else TO). */
static size_t ra_submit(layer *l, size_t from, size_t to)
{
    size_t b;

    pthread_mutex_lock(&ra_mu);
    for (b = from; b < to && ra_reads.len < RA_QUEUE && (ra_workers || ra_start());) {
        size_t n = to - b < RA_BATCH ? to - b : RA_BATCH;
        ra_push_locked(&ra_reads, l, b, n);
        b += n;
    }
    pthread_mutex_unlock(&ra_mu);
    return b;
}

/* Blocks a run with WINDOW blocks ahead queues at once: a slice of the
 * window up to RA_BATCH, so that its jobs become few large gets, not one
 * get per block the reader moves on. */
static size_t ra_batch(size_t window)
{
    return window / 2 < RA_BATCH ? (window / 2 ? window / 2 : 1) : RA_BATCH;
}

/* 1 if a read of block B (entered at its first key: AT_START) belongs to
 * run S: it reads S's last block again, or the next one from its start; or
 * S is established (its window open) and B lies within RA_BATCH blocks of
 * where S stands, as the reads of concurrent FUSE threads serving one
 * kernel read-ahead do, arriving out of order and entering blocks anywhere
 * (without that slack each of them would start a run of its own and reset
 * the window). */
static int ra_continues(const ra_stream *s, size_t b, int at_start)
{
    if (s->next == b + 1 || (b && at_start && s->next == b))
        return 1;
    return s->window && s->next && b + RA_BATCH >= s->next &&
           b < s->next + RA_BATCH;
}

/* Note a read of block B of L that enters it at KEY (NULL: at its start):
 * once it makes a sequential run RA_RUN blocks long, keep the run's window
 * of blocks past B cached or queued. */
static void ra_read(layer *l, size_t b, const uint8_t *key, size_t klen)
{
    size_t max = atomic_load(&ra_max), to;
    ra_stream *s = NULL;
    int at_start;

    if (max == 0)
        return;
    at_start = !key || layer_keycmp(key, klen, l->blocks[b].first,
                                    l->blocks[b].firstlen) <= 0;
    pthread_mutex_lock(&l->ra_lock);
    for (int i = 0; i < RA_STREAMS && !s; i++)
        if (ra_continues(&l->ra[i], b, at_start))
            s = &l->ra[i];
    if (!s) {                     /* a new run replaces the oldest */
        s = &l->ra[0];
        for (int i = 1; i < RA_STREAMS; i++)
            if (l->ra[i].used < s->used)
                s = &l->ra[i];
        *s = (ra_stream){ b + 1, 1, b + 1, 0, 0 };
    } else if (b >= s->next) {    /* the run goes on */
        s->next = b + 1;
        if (++s->len >= RA_RUN) { /* widen the window, top it up */
            s->window = !s->window ? RA_FIRST :
                        s->window > max / 2 ? max : s->window * 2;
            if (s->window > max)
                s->window = max;
            if (s->end < b + 1)
                s->end = b + 1;
            to = s->window < l->nblocks - b - 1 ? b + 1 + s->window : l->nblocks;
            if (s->end < to && (to - s->end >= ra_batch(s->window) || to == l->nblocks))
                s->end = ra_submit(l, s->end, to);
        }
    }
    s->used = ++l->ra_clock;
    pthread_mutex_unlock(&l->ra_lock);
}

/* Drop L's queued prefetches and wait for its running ones to end. */
static void ra_forget(layer *l)
{
    pthread_mutex_lock(&ra_mu);
    ring_drop(&ra_reads, l);
    ring_drop(&ra_warms, l);
    while (l->ra_busy)
        pthread_cond_wait(&ra_done, &ra_mu);
    pthread_mutex_unlock(&ra_mu);
}

/* Keep up to BLOCKS blocks read ahead of a sequential reader; 0: off. */
void layer_readahead_set(size_t blocks)
{
    atomic_store(&ra_max, blocks);
}

/* A snapshot of the read-ahead counters. */
void layer_readahead_stats(layer_ra_counters *out)
{
    out->prefetched = atomic_load(&ra_prefetched);
    out->hits = atomic_load(&ra_hits);
}

/* Read a varint-length key from [*P, END) into *K and *KLEN; -1 if malformed. */
static int index_key(const uint8_t **p, const uint8_t *end,
                     const uint8_t **k, size_t *klen)
{
    uint64_t n;

    if (layer_get_varint(p, end, &n) < 0 || n > (uint64_t)(end - *p) ||
        n > LAYER_KEY_MAX)
        return -1;
    *k = *p;
    *klen = (size_t)n;
    *p += n;
    return 0;
}

/* Parse and check L->index (ILEN bytes, data ending at IOFF); -1 on defect. */
static int index_parse(layer *l, size_t ilen, uint64_t ioff)
{
    const uint8_t *p = l->index, *end = l->index + ilen;
    uint64_t nb, next = 0;

    if (layer_get_varint(&p, end, &nb) < 0 || nb > ilen / 21)
        return -1;
    l->nblocks = (size_t)nb;
    l->blocks = calloc(nb ? nb : 1, sizeof(*l->blocks));
    if (!l->blocks)
        return -1;
    for (size_t i = 0; i < nb; i++) {
        lblock *b = &l->blocks[i];
        if (index_key(&p, end, &b->first, &b->firstlen) < 0 || end - p < 20)
            return -1;
        b->off = layer_get64(p);
        b->clen = layer_get32(p + 8);
        b->rawlen = layer_get32(p + 12);
        b->crc = layer_get32(p + 16);
        p += 20;
        /* blocks are contiguous from offset 0 and keys strictly ascend */
        if (b->off != next || b->clen == 0 || b->rawlen == 0 ||
            b->rawlen > LAYER_BLOCK_MAX ||
            (i > 0 && layer_keycmp(b->first, b->firstlen, b[-1].first,
                                   b[-1].firstlen) <= 0))
            return -1;
        next = b->off + b->clen;
    }
    if (next != ioff ||
        index_key(&p, end, &l->minkey, &l->minlen) < 0 ||
        index_key(&p, end, &l->maxkey, &l->maxlen) < 0 || p != end)
        return -1;
    if (nb == 0)
        return l->nentries == 0 && l->minlen == 0 && l->maxlen == 0 ? 0 : -1;
    if (l->nentries < nb || l->min_seq > l->max_seq ||
        layer_keycmp(l->minkey, l->minlen, l->blocks[0].first,
                     l->blocks[0].firstlen) != 0 ||
        layer_keycmp(l->maxkey, l->maxlen, l->blocks[nb - 1].first,
                     l->blocks[nb - 1].firstlen) < 0)
        return -1;
    return 0;
}

/* Bytes at the end of a layer fetched to open it: footer and, for layers
 * up to a few hundred MiB, the whole index, in one ranged get. */
#define LAYER_OPEN_TAIL ((uint64_t)64 * 1024)

/* The range layer_open_sized fetches first from a layer of SIZE bytes. */
static uint64_t layer_tail_len(uint64_t size)
{
    return size < LAYER_OPEN_TAIL ? size : LAYER_OPEN_TAIL;
}

int layer_open(objstore *os, const char *key, layer **out)
{
    return layer_open_sized(os, key, 0, out);
}

/* Cost model: a layer open is on the path of every mount, and each request
 * is a round trip (10-50 ms to a real bucket).  With the size known (the
 * manifest records it) one ranged get of the last LAYER_OPEN_TAIL bytes
 * brings footer and index together; only an index larger than that takes a
 * second get.  Unknown size costs a head first. */
int layer_open_sized(objstore *os, const char *key, uint64_t size, layer **out)
{
    uint8_t *tail = NULL;
    void *ibuf = NULL;
    size_t got = 0;
    uint64_t ioff, ilen, tlen;
    const char *why = NULL;
    layer *l;
    int rc;

    *out = NULL;
    l = calloc(1, sizeof(*l));
    if (!l)
        return -ENOMEM;
    pthread_mutex_init(&l->ra_lock, NULL);
    l->os = os;
    l->name = strdup(key);
    l->id = malloc(strlen(os_url(os)) + strlen(key) + 2);
    if (!l->name || !l->id) {
        rc = -ENOMEM;
        goto fail;
    }
    sprintf(l->id, "%s\n%s", os_url(os), key);
    l->size = size;
    if (!size && (rc = os_head(os, key, &l->size)) < 0)
        goto fail;
    if (l->size < LAYER_FOOTER_SIZE) {
        why = "too short for a footer";
        goto bad;
    }
    tlen = layer_tail_len(l->size);
    rc = os_get(os, key, l->size - tlen, tlen, (void **)&tail, &got);
    if (rc < 0)
        goto fail;
    const uint8_t *foot = tail + got - LAYER_FOOTER_SIZE;
    if (got != tlen || memcmp(foot, LAYER_MAGIC, 8) != 0 ||
        layer_get32(foot + 60) != crc32c(0, foot, 60)) {
        why = "bad footer";
        goto bad;
    }
    if (layer_get32(foot + 8) != LAYER_VERSION || layer_get32(foot + 12) != 0) {
        why = "unsupported format version";
        goto bad;
    }
    ioff = layer_get64(foot + 16);
    ilen = layer_get64(foot + 24);
    l->nentries = layer_get64(foot + 32);
    l->min_seq = layer_get64(foot + 40);
    l->max_seq = layer_get64(foot + 48);
    if (ioff > l->size - LAYER_FOOTER_SIZE ||
        ilen != l->size - LAYER_FOOTER_SIZE - ioff || ilen == 0) {
        why = "index out of bounds";
        goto bad;
    }
    if (ilen <= tlen - LAYER_FOOTER_SIZE) {
        if (!(ibuf = malloc(ilen))) {
            rc = -ENOMEM;
            goto fail;
        }
        memcpy(ibuf, foot - ilen, ilen);
        got = ilen;
    } else if ((rc = os_get(os, key, ioff, ilen, &ibuf, &got)) < 0) {
        goto fail;
    }
    l->index = ibuf;
    if (got != ilen || crc32c(0, l->index, got) != layer_get32(foot + 56)) {
        why = "index checksum mismatch";
        goto bad;
    }
    if (index_parse(l, got, ioff) < 0) {
        why = "malformed index";
        goto bad;
    }
    free(tail);
    *out = l;
    return 0;
bad:
    fprintf(stderr, "lakefs: layer %s: %s\n", key, why);
    rc = -EIO;
fail:
    free(tail);
    layer_close(l);
    return rc;
}

int layer_verify(objstore *os, const char *key, uint64_t *entries)
{
    uint8_t *buf = NULL, *raw = NULL;
    size_t len = 0;
    const char *why = NULL;
    size_t bad = (size_t)-1;
    layer *l = calloc(1, sizeof(*l));
    int rc = l ? os_get(os, key, 0, UINT64_MAX, (void **)&buf, &len) : -ENOMEM;

    *entries = 0;
    if (rc < 0)
        goto out;
    const uint8_t *foot = len < LAYER_FOOTER_SIZE ? NULL : buf + len - LAYER_FOOTER_SIZE;
    if (!foot || memcmp(foot, LAYER_MAGIC, 8) != 0 ||
        layer_get32(foot + 60) != crc32c(0, foot, 60)) {
        why = "bad footer";
        goto out;
    }
    uint64_t ioff = layer_get64(foot + 16), ilen = layer_get64(foot + 24);
    l->nentries = layer_get64(foot + 32);
    l->min_seq = layer_get64(foot + 40);
    l->max_seq = layer_get64(foot + 48);
    if (layer_get32(foot + 8) != LAYER_VERSION || ioff > len - LAYER_FOOTER_SIZE ||
        ilen != len - LAYER_FOOTER_SIZE - ioff || ilen == 0 ||
        crc32c(0, buf + ioff, ilen) != layer_get32(foot + 56)) {
        why = "index checksum mismatch";
        goto out;
    }
    l->index = buf + ioff;        /* not owned: cleared before the free */
    if (index_parse(l, ilen, ioff) < 0) {
        why = "malformed index";
        goto out;
    }
    for (size_t b = 0; b < l->nblocks && !why; b++) {
        const lblock *lb = &l->blocks[b];
        const uint8_t *p, *end;
        lentry e;
        uint8_t *nraw = realloc(raw, lb->rawlen);
        if (!nraw) { rc = -ENOMEM; break; }
        raw = nraw;
        size_t r = ZSTD_decompress(raw, lb->rawlen, buf + lb->off, lb->clen);
        bad = b;
        if (crc32c(0, buf + lb->off, lb->clen) != lb->crc)
            why = "checksum mismatch";
        else if (ZSTD_isError(r) || r != lb->rawlen || block_check(l, b, raw, lb->rawlen) < 0)
            why = "malformed block";
        for (p = raw, end = raw + lb->rawlen; !why && p < end && entry_next(&p, end, &e) == 0;)
            (*entries)++;
    }
    if (!why && !rc && *entries != l->nentries) {
        bad = (size_t)-1;
        why = "entry count differs from the footer";
    }
out:
    if (why) {
        if (bad != (size_t)-1) fprintf(stderr, "lakefs: layer %s block %zu: %s\n", key, bad, why);
        else fprintf(stderr, "lakefs: layer %s: %s\n", key, why);
        rc = -EIO;
    }
    if (l) {
        free(l->blocks);
        free(l);
    }
    free(raw);
    free(buf);
    return rc;
}

/* Open KEY, which this process has just uploaded from BUF/LEN: a caching
 * repository is primed with its size, footer, index and blocks first, so
 * that neither this open nor later reads of its blocks need the repository
 * (reads of what was just flushed keep working while it is unreachable). */
int layer_open_uploaded(objstore *os, const char *key, const void *buf,
                        size_t len, layer **out)
{
    const uint8_t *b = buf;
    uint64_t ioff, ilen;
    int rc;

    if (len >= LAYER_FOOTER_SIZE) {
        const uint8_t *foot = b + len - LAYER_FOOTER_SIZE;
        ioff = layer_get64(foot + 16);
        ilen = layer_get64(foot + 24);
        uint32_t tlen = (uint32_t)layer_tail_len(len);
        os_prime_size(os, key, len);
        os_prime(os, key, len - tlen, &tlen, 1, b + len - tlen);
        if (ioff <= len - LAYER_FOOTER_SIZE && ilen == len - LAYER_FOOTER_SIZE - ioff &&
            ilen > tlen - LAYER_FOOTER_SIZE && ilen <= UINT32_MAX) {
            uint32_t ilen32 = (uint32_t)ilen;
            os_prime(os, key, ioff, &ilen32, 1, b + ioff);
        }
    }
    if ((rc = layer_open_sized(os, key, len, out)) < 0)
        return rc;
    /* the index is checked now: blocks lie contiguously from offset 0 up
     * to it, within LEN */
    uint32_t *lens = malloc(((*out)->nblocks ? (*out)->nblocks : 1) * sizeof(*lens));
    for (size_t i = 0; lens && i < (*out)->nblocks; i++)
        lens[i] = (*out)->blocks[i].clen;
    if (lens)
        os_prime(os, key, 0, lens, (*out)->nblocks, b);
    free(lens);
    return 0;
}

/* Free an open layer once its prefetches are over (cached blocks stay). */
void layer_close(layer *l)
{
    if (!l)
        return;
    ra_forget(l);
    pthread_mutex_destroy(&l->ra_lock);
    free(l->name);
    free(l->id);
    free(l->index);
    free(l->blocks);
    free(l);
}

const char *layer_name(const layer *l) { return l->name; }
uint64_t layer_min_seq(const layer *l) { return l->min_seq; }
uint64_t layer_max_seq(const layer *l) { return l->max_seq; }
uint64_t layer_size(const layer *l) { return l->size; }

/* Index of the last block whose first key is <= KEY, or -1 if none. */
static long block_find(const layer *l, const uint8_t *key, size_t klen)
{
    size_t lo = 0, hi = l->nblocks;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (layer_keycmp(l->blocks[mid].first, l->blocks[mid].firstlen,
                         key, klen) <= 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return (long)lo - 1;
}

int layer_covers(const layer *l, const uint8_t *key, size_t klen)
{
    return l->nblocks > 0 && layer_keycmp(key, klen, l->minkey, l->minlen) >= 0 &&
           layer_keycmp(key, klen, l->maxkey, l->maxlen) <= 0;
}

/* qsort order of block numbers. */
static int cmp_blockno(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return (x > y) - (x < y);
}

/* Cost model: the keys a server read first at its last start are spread
 * over a few files, mostly their first pages, so many fall in the same or
 * adjacent blocks; one get per key (as a reader would do) costs a request
 * and a cache file each, where runs of blocks cost one of each per run.
 * Warming is a guess and readers are not: its jobs wait in a queue of
 * their own that the workers serve only when no read-ahead job waits, and
 * at most RA_WARMERS at once, so a sequential reader's window never queues
 * behind them and keeps most of the object store's concurrency. */
void layer_warm(layer *l, const uint8_t *const *keys, const size_t *lens,
                size_t n, uint64_t *budget)
{
    size_t *bs = malloc((n ? n : 1) * sizeof(*bs)), nb = 0, i;

    if (!bs)
        return;
    for (i = 0; i < n; i++)
        if (layer_covers(l, keys[i], lens[i]))
            bs[nb++] = (size_t)block_find(l, keys[i], lens[i]);
    qsort(bs, nb, sizeof(*bs), cmp_blockno);
    pthread_mutex_lock(&ra_mu);
    for (i = 0; i < nb && *budget > 0 && (ra_workers || ra_start());) {
        size_t from = bs[i], to = from + 1;
        uint64_t bytes = l->blocks[from].clen;
        for (i++; i < nb && bs[i] <= to && to - from < RA_BATCH && bytes < *budget; i++)
            if (bs[i] == to)
                bytes += l->blocks[to++].clen;
        while (i < nb && bs[i] < to)  /* the run's last block again */
            i++;
        while (ra_warms.len >= RA_QUEUE)
            pthread_cond_wait(&ra_done, &ra_mu);
        ra_push_locked(&ra_warms, l, from, to - from);
        *budget -= bytes < *budget ? bytes : *budget;
    }
    pthread_mutex_unlock(&ra_mu);
    free(bs);
}

/* Newest version of KEY with seq <= MAX_SEQ: 1 found, 0 none, -errno. */
int layer_get(layer *l, const uint8_t *key, size_t klen, uint64_t max_seq,
              int *tomb, void **val, size_t *vlen, uint64_t *seq)
{
    const uint8_t *p, *end;
    cblock *c;
    lentry e;
    long b;
    int rc = 0;

    *val = NULL;
    *vlen = 0;
    if (max_seq < l->min_seq || !layer_covers(l, key, klen))
        return 0;
    if ((b = block_find(l, key, klen)) < 0)
        return 0;
    ra_read(l, (size_t)b, key, klen);
    if ((rc = block_load(l, (size_t)b, &c)) < 0)
        return rc;
    p = c->data;
    end = c->data + c->len;
    while (p < end) {
        int cmp;
        if (entry_next(&p, end, &e) < 0) {
            rc = -EIO;          /* block_check accepted it: cannot happen */
            break;
        }
        cmp = layer_keycmp(e.key, e.klen, key, klen);
        if (cmp > 0)
            break;
        if (cmp == 0 && e.seq <= max_seq) {
            *tomb = e.tomb;
            *seq = e.seq;
            if (!e.tomb) {
                *val = malloc(e.vlen ? e.vlen : 1);
                if (!*val) {
                    rc = -ENOMEM;
                    break;
                }
                if (e.vlen)
                    memcpy(*val, e.val, e.vlen);
                *vlen = e.vlen;
            }
            rc = 1;
            break;
        }
    }
    cblock_release(c);
    return rc;
}

/* Call FN for the newest version <= MAX_SEQ of each key at or after FROM
 * (FLEN bytes) that starts with FROM's first PLEN bytes. */
static int layer_scan_at(layer *l, const uint8_t *from, size_t flen, size_t plen, uint64_t max_seq,
                         layer_scan_fn fn, void *arg)
{
    long start;

    if (l->nblocks == 0 || max_seq < l->min_seq ||
        layer_keycmp(from, flen, l->maxkey, l->maxlen) > 0)
        return 0;
    start = block_find(l, from, flen);
    for (size_t b = start < 0 ? 0 : (size_t)start; b < l->nblocks; b++) {
        const uint8_t *p, *end, *cur = NULL;
        size_t curlen = 0;
        int done = 0, past = 0, rc;
        cblock *c;
        lentry e;

        ra_read(l, b, (long)b == start ? from : NULL, flen);
        if ((rc = block_load(l, b, &c)) < 0)
            return rc;
        p = c->data;
        end = c->data + c->len;
        while (rc == 0 && !past && p < end) {
            if (entry_next(&p, end, &e) < 0) {
                rc = -EIO;      /* block_check accepted it: cannot happen */
                break;
            }
            if (e.klen < plen || (plen && memcmp(e.key, from, plen) != 0)) {
                /* keys sort, so one past the prefix ends the scan */
                past = layer_keycmp(e.key, e.klen, from, plen) > 0;
                continue;
            }
            if (flen > plen && layer_keycmp(e.key, e.klen, from, flen) < 0)
                continue;       /* before FROM (its first block only) */
            if (!cur || layer_keycmp(e.key, e.klen, cur, curlen) != 0) {
                cur = e.key;
                curlen = e.klen;
                done = 0;
            }
            if (!done && e.seq <= max_seq) {
                done = 1;
                rc = fn(arg, e.key, e.klen, e.seq, e.tomb,
                        e.tomb ? NULL : e.val, e.vlen);
            }
        }
        cblock_release(c);
        if (rc != 0 || past)
            return rc;
    }
    return 0;
}

int layer_scan(layer *l, const uint8_t *prefix, size_t plen, uint64_t max_seq,
               layer_scan_fn fn, void *arg)
{
    return layer_scan_at(l, prefix, plen, plen, max_seq, fn, arg);
}

int layer_scan_from(layer *l, const uint8_t *from, size_t flen, uint64_t max_seq,
                    layer_scan_fn fn, void *arg)
{
    return layer_scan_at(l, from, flen, 0, max_seq, fn, arg);
}

/*
 * objcache.c -- the local disk cache of layer objects (see objcache.h).
 *
 * Why a wrapping objstore: the layer reader already fetches exactly what it
 * needs with ranged gets (footer, index, then one block per get), so caching
 * those same (key, offset, length) ranges below the objstore interface makes
 * a cold mount download only the blocks it reads, and needs no change in the
 * store.  Only keys containing "/layers/" are cached: layer objects are
 * written once under unique names and never change, so an entry cannot go
 * stale.  Manifests (small, read once per open) and the mutable lease always
 * go to the repository.  Heads of layers are cached too, as 8-byte size
 * records, so a warm restart opens its layers without a round trip.  A layer
 * this daemon has just uploaded is entered whole, range by range as the
 * reader will ask for it (os_prime, called by layer_open_uploaded, which
 * knows the layout): reading back fresh writes costs no download, and keeps
 * working while the repository is unreachable.
 *
 * One file per entry, named by a 64-bit hash of (key, kind, offset, length)
 * in 16 hex digits.  Content: a 48-byte header (magic, kind, key length,
 * offset, length, data length, CRC-32C), the key, the data.  The CRC covers
 * header, key and data and is checked on every read; an entry that fails it
 * (or whose header names another range) is deleted and fetched again, never
 * returned.  Files are written under "tmp.N" and renamed in, so a crash
 * leaves whole entries or temporary files, which the next open removes.
 *
 * The LRU order lives in memory (hash table + list) under one mutex; file
 * I/O and repository fetches happen outside it, so FUSE threads proceed in
 * parallel (two threads missing the same range both fetch it; the second
 * fill is dropped).  Renames into place and evictions (unlinks) happen under
 * the mutex, so a file name always belongs to at most one entry.  A hit
 * refreshes the file's mtime at most once a minute, and the next open
 * rebuilds the LRU order from mtimes.  The bound counts each file's size
 * rounded up to 4 KiB, about the disk it occupies.  An flock on DIR/lock
 * keeps a second daemon from sharing, and overfilling, the directory.
 */
#include "objcache.h"
#include "objstore_backend.h"
#include "crc32c.h"
#include "dirlock.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define OC_MAGIC "LKFSOC01"
#define OC_HDR 48                 /* header bytes before the key */
#define OC_KEY_MAX 1024           /* longer keys are not cached */
#define OC_BLOCK 4096             /* the bound counts whole blocks */
#define OC_TOUCH_SECS 60          /* refresh a hit file's mtime this seldom */
#define OC_BUCKETS0 1024          /* initial hash table size */

enum { OC_RANGE = 1, OC_SIZE = 2 };  /* entry kinds: a ranged get, a head */

typedef struct oc_id {
    const char *key;              /* object key */
    uint32_t kind;                /* OC_RANGE or OC_SIZE */
    uint64_t off, len;            /* range as requested (0, 0 for OC_SIZE) */
} oc_id;

typedef struct oc_entry {
    struct oc_entry *hnext;       /* hash chain */
    struct oc_entry *prev, *next; /* LRU list, most recently used first */
    uint64_t name;                /* hash of the identity: the file name */
    uint64_t serial;              /* unique per insertion, tells refills apart */
    uint32_t kind;                /* identity: kind, range, key */
    uint64_t off, len;
    uint64_t dlen;                /* data bytes in the file */
    uint64_t charge;              /* bytes counted against the bound */
    int64_t touched;              /* file mtime (s) as last set or seen */
    char key[];                   /* object key, NUL-terminated */
} oc_entry;

struct objcache {
    objstore *inner;              /* the repository */
    objstore *view;               /* the caching store handed out */
    int dfd;                      /* the cache directory */
    int lockfd;                   /* DIR/lock, flocked while open */
    uint64_t limit;               /* bound on charged bytes */
    atomic_ullong tmpseq;         /* numbers temporary file names */
    pthread_mutex_t mu;           /* guards everything below */
    oc_entry **buckets;           /* hash table by name, power-of-2 long */
    size_t nbuckets;
    oc_entry *head, *tail;        /* LRU ends */
    uint64_t serial;              /* last serial handed out */
    objcache_counters n;          /* counters; entries and bytes kept current */
};

/* ---- encoding ---- */

/* Store V little-endian at P. */
static void oc_put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* Store V little-endian at P. */
static void oc_put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* Load a little-endian value from P. */
static uint32_t oc_get32(const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

/* Load a little-endian value from P. */
static uint64_t oc_get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

/* 64-bit FNV-1a of ID's key, kind and range: the entry's file name. */
static uint64_t oc_hash(const oc_id *id)
{
    uint64_t h = 0xcbf29ce484222325ull;
    uint8_t tail[20];

    for (const char *p = id->key; *p; p++)
        h = (h ^ (uint8_t)*p) * 0x100000001b3ull;
    oc_put32(tail, id->kind);
    oc_put64(tail + 4, id->off);
    oc_put64(tail + 12, id->len);
    for (size_t i = 0; i < sizeof(tail); i++)
        h = (h ^ tail[i]) * 0x100000001b3ull;
    return h;
}

/* File name of hash NAME into BUF (17 bytes). */
static void oc_fname(char *buf, uint64_t name)
{
    snprintf(buf, 17, "%016llx", (unsigned long long)name);
}

/* Bytes a file of FLEN bytes is charged. */
static uint64_t oc_charge(uint64_t flen)
{
    return (flen + OC_BLOCK - 1) / OC_BLOCK * OC_BLOCK;
}

/* Fill header H for ID with DLEN bytes of DATA (CRC over header, key, data). */
static void oc_header(uint8_t *h, const oc_id *id, size_t klen,
                      const void *data, size_t dlen)
{
    uint32_t crc;

    memcpy(h, OC_MAGIC, 8);
    oc_put32(h + 8, id->kind);
    oc_put32(h + 12, (uint32_t)klen);
    oc_put64(h + 16, id->off);
    oc_put64(h + 24, id->len);
    oc_put64(h + 32, dlen);
    crc = crc32c(0, h, 40);
    crc = crc32c(crc, id->key, klen);
    crc = crc32c(crc, data, dlen);
    oc_put32(h + 40, crc);
    oc_put32(h + 44, 0);
}

/* ---- the in-memory index (c->mu held) ---- */

/* Hash chain head for NAME. */
static oc_entry **oc_bucket(objcache *c, uint64_t name)
{
    return &c->buckets[(name ^ (name >> 32)) & (c->nbuckets - 1)];
}

/* The entry whose file is named NAME, or NULL. */
static oc_entry *oc_find(objcache *c, uint64_t name)
{
    oc_entry *e = *oc_bucket(c, name);

    while (e && e->name != name)
        e = e->hnext;
    return e;
}

/* 1 if E caches ID. */
static int oc_same(const oc_entry *e, const oc_id *id)
{
    return e->kind == id->kind && e->off == id->off && e->len == id->len &&
           strcmp(e->key, id->key) == 0;
}

/* Unlink E from the LRU list. */
static void oc_lru_unlink(objcache *c, oc_entry *e)
{
    if (e->prev) e->prev->next = e->next; else c->head = e->next;
    if (e->next) e->next->prev = e->prev; else c->tail = e->prev;
    e->prev = e->next = NULL;
}

/* Put E at the most recently used end. */
static void oc_lru_push(objcache *c, oc_entry *e)
{
    e->prev = NULL;
    e->next = c->head;
    if (c->head) c->head->prev = e; else c->tail = e;
    c->head = e;
}

/* Double the hash table if it is full; on ENOMEM chains just grow longer. */
static void oc_grow(objcache *c)
{
    size_t old = c->nbuckets;
    oc_entry **ob = c->buckets, *e, *next;

    if (c->n.entries < old)
        return;
    c->buckets = calloc(old * 2, sizeof(*c->buckets));
    if (!c->buckets) {
        c->buckets = ob;
        return;
    }
    c->nbuckets = old * 2;
    for (size_t i = 0; i < old; i++)
        for (e = ob[i]; e; e = next) {
            oc_entry **b = oc_bucket(c, e->name);
            next = e->hnext;
            e->hnext = *b;
            *b = e;
        }
    free(ob);
}

/* Index E (its file is in place) as the most recently used entry. */
static void oc_insert(objcache *c, oc_entry *e)
{
    oc_entry **b;

    oc_grow(c);
    b = oc_bucket(c, e->name);
    e->serial = ++c->serial;
    e->hnext = *b;
    *b = e;
    oc_lru_push(c, e);
    c->n.entries++;
    c->n.bytes += e->charge;
}

/* Drop E from the index and free it; UNLINK: delete its file too. */
static void oc_remove(objcache *c, oc_entry *e, int unlink)
{
    oc_entry **p = oc_bucket(c, e->name);

    while (*p != e)
        p = &(*p)->hnext;
    *p = e->hnext;
    oc_lru_unlink(c, e);
    c->n.entries--;
    c->n.bytes -= e->charge;
    if (unlink) {
        char fname[17];
        oc_fname(fname, e->name);
        unlinkat(c->dfd, fname, 0);
    }
    free(e);
}

/* Delete least recently used entries until under the bound. */
static void oc_evict(objcache *c)
{
    while (c->n.bytes > c->limit && c->tail) {
        oc_remove(c, c->tail, 1);
        c->n.evicted++;
    }
}

/* ---- entries on disk ---- */

/* Read entry NAME (DLEN data bytes) and check it caches ID; TOUCH: refresh
 * its mtime.  0 with the data in *BUF, *OUTLEN, -EIO if the file is bad,
 * else -errno. */
static int oc_read(objcache *c, const oc_id *id, uint64_t name, uint64_t dlen,
                   int touch, void **buf, size_t *outlen)
{
    size_t klen = strlen(id->key);
    uint8_t hdr[OC_HDR + OC_KEY_MAX], extra;
    char fname[17];
    void *data;
    ssize_t got;
    int fd, ok;

    oc_fname(fname, name);
    if (!(data = malloc(dlen ? dlen : 1)))
        return -ENOMEM;
    fd = openat(c->dfd, fname, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        int rc = -errno;
        free(data);
        return rc;
    }
    struct iovec iov[3] = { { hdr, OC_HDR + klen }, { data, dlen },
                            { &extra, 1 } };
    got = readv(fd, iov, 3);      /* one byte more than expected: too long */
    ok = got >= 0 && (uint64_t)got == OC_HDR + klen + dlen &&
         memcmp(hdr, OC_MAGIC, 8) == 0 && oc_get32(hdr + 8) == id->kind &&
         oc_get32(hdr + 12) == klen && oc_get64(hdr + 16) == id->off &&
         oc_get64(hdr + 24) == id->len && oc_get64(hdr + 32) == dlen &&
         memcmp(hdr + OC_HDR, id->key, klen) == 0 &&
         oc_get32(hdr + 40) == crc32c(crc32c(crc32c(0, hdr, 40), id->key, klen),
                                      data, dlen);
    if (ok && touch)
        futimens(fd, NULL);       /* LRU hint only: failure is harmless */
    close(fd);
    if (!ok) {
        free(data);
        return -EIO;
    }
    *buf = data;
    *outlen = dlen;
    return 0;
}

/* Answer ID from the cache: 0 with a new buffer in *BUF, *OUTLEN on a hit,
 * -ENOENT on a miss (a bad entry is deleted first). */
static int oc_lookup(objcache *c, const oc_id *id, void **buf, size_t *outlen)
{
    uint64_t name = oc_hash(id), serial, dlen;
    int64_t now = time(NULL);
    oc_entry *e;
    int touch, rc;

    pthread_mutex_lock(&c->mu);
    e = oc_find(c, name);
    if (!e || !oc_same(e, id)) {
        pthread_mutex_unlock(&c->mu);
        return -ENOENT;
    }
    oc_lru_unlink(c, e);
    oc_lru_push(c, e);
    serial = e->serial;
    dlen = e->dlen;
    touch = now - e->touched >= OC_TOUCH_SECS;
    if (touch)
        e->touched = now;
    pthread_mutex_unlock(&c->mu);

    rc = oc_read(c, id, name, dlen, touch, buf, outlen);

    pthread_mutex_lock(&c->mu);
    if (rc == 0) {
        c->n.hits++;
    } else if ((rc == -EIO || rc == -ENOENT) && (e = oc_find(c, name)) &&
               e->serial == serial) {
        /* still the entry we read (not evicted and refilled meanwhile) */
        oc_remove(c, e, 1);
        c->n.discarded++;
        if (rc == -EIO)
            fprintf(stderr, "lakefs: cache: entry for %s (%llu+%llu) is "
                    "corrupt; fetching it again\n", id->key,
                    (unsigned long long)id->off, (unsigned long long)id->len);
    }
    pthread_mutex_unlock(&c->mu);
    return rc == 0 ? 0 : -ENOENT;
}

/* Remember DLEN bytes of DATA as the answer to ID; best effort, since a
 * failure only costs a later miss. */
static void oc_fill(objcache *c, const oc_id *id, const void *data, size_t dlen)
{
    size_t klen = strlen(id->key);
    uint64_t flen = OC_HDR + klen + dlen, name = oc_hash(id);
    uint8_t hdr[OC_HDR];
    char tmp[32], fname[17];
    oc_entry *e, *old;
    int fd, ok;

    if (oc_charge(flen) > c->limit || !(e = malloc(sizeof(*e) + klen + 1)))
        return;
    e->name = name;
    e->kind = id->kind;
    e->off = id->off;
    e->len = id->len;
    e->dlen = dlen;
    e->charge = oc_charge(flen);
    e->touched = time(NULL);
    memcpy(e->key, id->key, klen + 1);
    oc_fname(fname, name);
    snprintf(tmp, sizeof(tmp), "tmp.%llu", atomic_fetch_add(&c->tmpseq, 1));
    oc_header(hdr, id, klen, data, dlen);

    fd = openat(c->dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC |
                O_NOFOLLOW, 0600);
    if (fd < 0) {
        free(e);
        return;
    }
    struct iovec iov[3] = { { hdr, OC_HDR }, { (void *)id->key, klen },
                            { (void *)data, dlen } };
    ok = writev(fd, iov, 3) == (ssize_t)flen;
    if (close(fd) < 0)
        ok = 0;

    pthread_mutex_lock(&c->mu);
    old = oc_find(c, name);
    if (ok && !(old && oc_same(old, id)) &&
        renameat(c->dfd, tmp, c->dfd, fname) == 0) {
        if (old)                  /* a hash collision: its file is replaced */
            oc_remove(c, old, 0);
        oc_insert(c, e);
        oc_evict(c);
        e = NULL;
    }
    pthread_mutex_unlock(&c->mu);
    if (e) {                      /* not used: failed, or filled meanwhile */
        unlinkat(c->dfd, tmp, 0);
        free(e);
    }
}

/* 1 if KEY is an immutable object the cache keeps. */
static int oc_cacheable(const char *key)
{
    return strstr(key, "/layers/") != NULL && strlen(key) <= OC_KEY_MAX;
}

/* ---- the backend behind objcache_store() ---- */

/* Create an object: straight to the repository. */
static int oc_put_if_absent(void *state, const char *key, const void *buf,
                            size_t len)
{
    objcache *c = state;
    return os_put_if_absent(c->inner, key, buf, len);
}

/* Ranged get: from disk for layers when possible, else from the repository. */
static int oc_get(void *state, const char *key, uint64_t off, uint64_t len,
                  void **buf, size_t *outlen)
{
    objcache *c = state;
    oc_id id = { key, OC_RANGE, off, len };
    int cache = oc_cacheable(key), rc;

    if (cache && oc_lookup(c, &id, buf, outlen) == 0)
        return 0;
    rc = os_get(c->inner, key, off, len, buf, outlen);
    pthread_mutex_lock(&c->mu);
    c->n.misses += cache;
    if (rc == 0)
        c->n.downloaded += *outlen;
    pthread_mutex_unlock(&c->mu);
    if (rc == 0 && cache)
        oc_fill(c, &id, *buf, *outlen);
    return rc;
}

/* Consecutive ranges: the cached ones from disk, the span from the first
 * missing range to the last in one get from the repository (ranges cached
 * in between are fetched again rather than split the request), each range
 * then cached on its own, as oc_get caches it. */
static int oc_get_ranges(void *state, const char *key, uint64_t off,
                         const uint32_t *lens, size_t n, void **bufs)
{
    objcache *c = state;
    size_t first = n, last = 0, got, i;
    uint64_t at, from = 0;
    void **fetched;
    int rc;

    for (i = 0, at = off; i < n; at += lens[i++]) {
        oc_id id = { key, OC_RANGE, at, lens[i] };
        bufs[i] = NULL;
        if (oc_cacheable(key) && oc_lookup(c, &id, &bufs[i], &got) == 0 &&
            got == lens[i])
            continue;
        free(bufs[i]);
        bufs[i] = NULL;
        if (first == n) {
            first = i;
            from = at;
        }
        last = i;
    }
    if (first == n)
        return 0;
    if (!(fetched = calloc(last - first + 1, sizeof(*fetched))))
        rc = -ENOMEM;
    else
        rc = os_get_ranges(c->inner, key, from, lens + first,
                           last - first + 1, fetched);
    pthread_mutex_lock(&c->mu);
    c->n.misses += oc_cacheable(key) ? last - first + 1 : 0;
    for (i = first; rc == 0 && i <= last; i++)
        c->n.downloaded += lens[i];
    pthread_mutex_unlock(&c->mu);
    for (i = first, at = from; rc == 0 && i <= last; at += lens[i++]) {
        oc_id id = { key, OC_RANGE, at, lens[i] };
        if (bufs[i]) {
            free(fetched[i - first]);
            continue;
        }
        bufs[i] = fetched[i - first];
        if (oc_cacheable(key))
            oc_fill(c, &id, bufs[i], lens[i]);
    }
    free(fetched);
    if (rc < 0)
        for (i = 0; i < n; i++) {
            free(bufs[i]);
            bufs[i] = NULL;
        }
    return rc;
}

/* Object size: from disk for layers when possible. */
static int oc_head(void *state, const char *key, uint64_t *size)
{
    objcache *c = state;
    oc_id id = { key, OC_SIZE, 0, 0 };
    uint8_t rec[8];
    void *buf;
    size_t n;
    int rc;

    if (!oc_cacheable(key))
        return os_head(c->inner, key, size);
    if (oc_lookup(c, &id, &buf, &n) == 0) {  /* n == 8: checked at load */
        *size = oc_get64(buf);
        free(buf);
        return 0;
    }
    rc = os_head(c->inner, key, size);
    pthread_mutex_lock(&c->mu);
    c->n.misses++;
    pthread_mutex_unlock(&c->mu);
    if (rc == 0) {
        oc_put64(rec, *size);
        oc_fill(c, &id, rec, sizeof(rec));
    }
    return rc;
}

/* Remember the answer to a ranged get of a layer this process wrote. */
static void oc_prime(void *state, const char *key, uint64_t off, uint64_t len,
                     const void *data, size_t dlen)
{
    objcache *c = state;
    oc_id id = { key, OC_RANGE, off, len };

    if (oc_cacheable(key))
        oc_fill(c, &id, data, dlen);
}

/* Remember the size of a layer this process wrote. */
static void oc_prime_size(void *state, const char *key, uint64_t size)
{
    objcache *c = state;
    oc_id id = { key, OC_SIZE, 0, 0 };
    uint8_t rec[8];

    if (oc_cacheable(key)) {
        oc_put64(rec, size);
        oc_fill(c, &id, rec, sizeof(rec));
    }
}

/* List keys: straight to the repository. */
static int oc_list(void *state, const char *prefix, char ***keys, size_t *n)
{
    objcache *c = state;
    return os_list(c->inner, prefix, keys, n);
}

/* Delete KEY from the repository and its entries from the cache. */
static int oc_del(void *state, const char *key)
{
    objcache *c = state;
    oc_entry *e, *next;
    int rc = os_delete(c->inner, key);

    if (rc == 0 && oc_cacheable(key)) {
        pthread_mutex_lock(&c->mu);
        for (e = c->head; e; e = next) {
            next = e->next;
            if (strcmp(e->key, key) == 0)
                oc_remove(c, e, 1);
        }
        pthread_mutex_unlock(&c->mu);
    }
    return rc;
}

/* qsort and bsearch order of an array of C strings. */
static int oc_strcmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Delete the N keys KEYS from the repository, and the entries of those keys
 * from the cache whatever the outcome, since some may be gone even after an
 * error: one pass over the entries, each looked up in a sorted copy. */
static int oc_del_many(void *state, const char *const *keys, size_t n)
{
    objcache *c = state;
    const char **sorted = malloc(n * sizeof(*sorted));
    oc_entry *e, *next;
    int rc;

    if (!sorted)
        return -ENOMEM;
    rc = os_delete_many(c->inner, keys, n);
    memcpy(sorted, keys, n * sizeof(*sorted));
    qsort(sorted, n, sizeof(*sorted), oc_strcmp);
    pthread_mutex_lock(&c->mu);
    for (e = c->head; e; e = next) {
        const char *k = e->key;
        next = e->next;
        if (bsearch(&k, sorted, n, sizeof(*sorted), oc_strcmp))
            oc_remove(c, e, 1);
    }
    pthread_mutex_unlock(&c->mu);
    free(sorted);
    return rc;
}

/* Free C and everything it holds (files stay). */
static void oc_free(void *state)
{
    objcache *c = state;
    oc_entry *e, *next;

    for (e = c->head; e; e = next) {
        next = e->next;
        free(e);
    }
    free(c->buckets);
    if (c->lockfd >= 0)
        close(c->lockfd);         /* releases the flock */
    if (c->dfd >= 0)
        close(c->dfd);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

/* Not reachable by URL: os_wrap installs it (scheme and open unused). */
static const os_backend oc_backend = {
    .scheme = NULL,
    .open = NULL,
    .close = oc_free,
    .put_if_absent = oc_put_if_absent,
    .get = oc_get,
    .get_ranges = oc_get_ranges,
    .head = oc_head,
    .list = oc_list,
    .del = oc_del,
    .del_many = oc_del_many,
    .prime = oc_prime,
    .prime_size = oc_prime_size,
};

/* ---- opening: adopt what a previous daemon left ---- */

/* 1 if S is a 16-digit lowercase hex entry name (its value in *NAME). */
static int oc_parse_fname(const char *s, uint64_t *name)
{
    uint64_t v = 0;
    size_t i;

    for (i = 0; s[i]; i++) {
        int d = s[i] >= '0' && s[i] <= '9' ? s[i] - '0' :
                s[i] >= 'a' && s[i] <= 'f' ? s[i] - 'a' + 10 : -1;
        if (d < 0 || i == 16)
            return 0;
        v = (v << 4) | (uint64_t)d;
    }
    *name = v;
    return i == 16;
}

/* An entry for file FNAME (hash NAME) if its header is sound and matches
 * the name, else NULL.  The data is checked when it is read. */
static oc_entry *oc_load(objcache *c, const char *fname, uint64_t name)
{
    uint8_t hdr[OC_HDR + OC_KEY_MAX];
    oc_entry *e = NULL;
    struct stat st;
    uint32_t kind, klen;
    uint64_t off, len, dlen;
    char key[OC_KEY_MAX + 1];
    oc_id id = { key, 0, 0, 0 };
    ssize_t got;
    int fd;

    fd = openat(c->dfd, fname, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return NULL;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
        (got = pread(fd, hdr, sizeof(hdr), 0)) < OC_HDR)
        goto out;
    kind = oc_get32(hdr + 8);
    klen = oc_get32(hdr + 12);
    off = oc_get64(hdr + 16);
    len = oc_get64(hdr + 24);
    dlen = oc_get64(hdr + 32);
    if (memcmp(hdr, OC_MAGIC, 8) != 0 || klen == 0 || klen > OC_KEY_MAX ||
        (size_t)got < OC_HDR + klen || dlen > (uint64_t)st.st_size ||
        (uint64_t)st.st_size != OC_HDR + klen + dlen ||
        !(kind == OC_RANGE || (kind == OC_SIZE && off == 0 && len == 0 &&
                               dlen == 8)) ||
        memchr(hdr + OC_HDR, 0, klen) != NULL)
        goto out;
    memcpy(key, hdr + OC_HDR, klen);
    key[klen] = 0;
    id.kind = kind;
    id.off = off;
    id.len = len;
    if (oc_hash(&id) != name || !oc_cacheable(key) ||
        !(e = malloc(sizeof(*e) + klen + 1)))
        goto out;
    e->name = name;
    e->kind = kind;
    e->off = off;
    e->len = len;
    e->dlen = dlen;
    e->charge = oc_charge((uint64_t)st.st_size);
    e->touched = st.st_mtim.tv_sec;
    memcpy(e->key, key, klen + 1);
out:
    close(fd);
    return e;
}

/* qsort order: least recently touched first. */
static int oc_cmp_touched(const void *a, const void *b)
{
    const oc_entry *x = *(oc_entry *const *)a, *y = *(oc_entry *const *)b;
    return (x->touched > y->touched) - (x->touched < y->touched);
}

/* Index the entries in the directory (most recently touched first), delete
 * temporary and unsound files, and trim to the bound. */
static int oc_scan(objcache *c)
{
    oc_entry **found = NULL, *e;
    size_t n = 0, cap = 0;
    struct dirent *de;
    uint64_t name;
    int fd, rc = 0;
    DIR *d;

    if ((fd = dup(c->dfd)) < 0)
        return -errno;
    if (!(d = fdopendir(fd))) {
        rc = -errno;
        close(fd);
        return rc;
    }
    while ((de = readdir(d))) {
        if (strncmp(de->d_name, "tmp.", 4) == 0) {
            unlinkat(c->dfd, de->d_name, 0);
            continue;
        }
        if (!oc_parse_fname(de->d_name, &name))
            continue;             /* ".", "..", "lock" */
        if (!(e = oc_load(c, de->d_name, name))) {
            unlinkat(c->dfd, de->d_name, 0);
            c->n.discarded++;
            continue;
        }
        if (n == cap) {
            oc_entry **nf = realloc(found, (cap ? cap * 2 : 256) * sizeof(*nf));
            if (!nf) {
                free(e);
                rc = -ENOMEM;
                break;
            }
            found = nf;
            cap = cap ? cap * 2 : 256;
        }
        found[n++] = e;
    }
    closedir(d);
    if (n)
        qsort(found, n, sizeof(*found), oc_cmp_touched);
    for (size_t i = 0; i < n; i++)
        oc_insert(c, found[i]);   /* each becomes the most recent */
    free(found);
    oc_evict(c);
    return rc;
}

/* Open the cache directory DIR in front of INNER (see objcache.h). */
int objcache_open(objstore *inner, const char *dir, uint64_t limit,
                  objcache **out, char *err, size_t errlen)
{
    objcache *c;
    struct stat st;
    int rc;

    *out = NULL;
    if (!(c = calloc(1, sizeof(*c)))) {
        snprintf(err, errlen, "out of memory opening cache %s", dir);
        return -ENOMEM;
    }
    c->inner = inner;
    c->limit = limit;
    c->dfd = c->lockfd = -1;
    atomic_init(&c->tmpseq, 0);
    pthread_mutex_init(&c->mu, NULL);
    c->nbuckets = OC_BUCKETS0;
    if (!(c->buckets = calloc(c->nbuckets, sizeof(*c->buckets)))) {
        rc = -ENOMEM;
        snprintf(err, errlen, "out of memory opening cache %s", dir);
        goto fail;
    }
    if ((mkdir(dir, 0700) < 0 && errno != EEXIST) ||
        (c->dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 ||
        fstat(c->dfd, &st) < 0) {
        rc = -errno;
        snprintf(err, errlen, "cache directory %s: %s", dir, strerror(-rc));
        goto fail;
    }
    if (st.st_uid != geteuid()) {
        rc = -EPERM;
        snprintf(err, errlen, "cache directory %s belongs to another user; "
                 "use a directory of your own", dir);
        goto fail;
    }
    if ((st.st_mode & 07777) != 0700 && fchmod(c->dfd, 0700) < 0) {
        rc = -errno;
        snprintf(err, errlen, "cannot make cache directory %s private: %s",
                 dir, strerror(-rc));
        goto fail;
    }
    char lockpath[PATH_MAX], what[PATH_MAX + 32], holder[32];
    snprintf(lockpath, sizeof lockpath, "%s/lock", dir);
    snprintf(what, sizeof what, "cache directory %s", dir);
    if ((rc = dirlock_take(lockpath, what, &c->lockfd, holder, sizeof holder))) {
        if (rc == -EBUSY)
            snprintf(err, errlen, "cache directory %s is in use by another "
                     "lakefs daemon (pid %s); give each daemon its own cache_dir", dir, holder);
        else
            snprintf(err, errlen, "cache directory %s: %s", dir, strerror(-rc));
        goto fail;
    }
    if ((rc = oc_scan(c)) < 0) {
        snprintf(err, errlen, "cannot read cache directory %s: %s", dir,
                 strerror(-rc));
        goto fail;
    }
    if ((rc = os_wrap(&oc_backend, c, os_url(inner), &c->view)) < 0) {
        snprintf(err, errlen, "out of memory opening cache %s", dir);
        goto fail;
    }
    *out = c;
    return 0;
fail:
    oc_free(c);
    return rc;
}

int objcache_unmounting(objcache *c)
{
    return dirlock_unmounting(c->lockfd);
}

/* The caching view of the repository; valid until objcache_close. */
objstore *objcache_store(objcache *c)
{
    return c->view;
}

/* A snapshot of the counters. */
void objcache_stats(objcache *c, objcache_counters *out)
{
    pthread_mutex_lock(&c->mu);
    *out = c->n;
    pthread_mutex_unlock(&c->mu);
}

/* Write the counters as "name value" lines to PATH (atomically replaced). */
int objcache_write_stats(objcache *c, const char *path)
{
    objcache_counters s;
    char tmp[PATH_MAX];
    FILE *f;
    int rc = 0;

    objcache_stats(c, &s);
    if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
        return -ENAMETOOLONG;
    if (!(f = fopen(tmp, "w")))
        return -errno;
    fprintf(f, "hits %llu\nmisses %llu\ndownloaded %llu\ndiscarded %llu\n"
            "evicted %llu\nentries %llu\nbytes %llu\n",
            (unsigned long long)s.hits, (unsigned long long)s.misses,
            (unsigned long long)s.downloaded, (unsigned long long)s.discarded,
            (unsigned long long)s.evicted, (unsigned long long)s.entries,
            (unsigned long long)s.bytes);
    if (ferror(f))
        rc = -EIO;
    if (fclose(f) != 0 && rc == 0)
        rc = -errno;
    if (rc == 0 && rename(tmp, path) < 0)
        rc = -errno;
    if (rc < 0)
        unlink(tmp);
    return rc;
}

/* Close the view and free the cache; files stay for the next open. */
void objcache_close(objcache *c)
{
    if (c)
        os_close(c->view);        /* calls oc_free through the backend */
}

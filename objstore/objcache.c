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
 * Files.  A file holds one or more consecutive ranges ("parts") of one
 * object, as one get brought them: a single range from os_get, up to a
 * read-ahead job's worth from os_get_ranges, or a run of blocks of a layer
 * just uploaded.  Cost model: on a local file system creating a file is
 * the dear part of a fill (the directory's lock and inode allocation: perf
 * put ~60% of the daemon's CPU there during a cold sequential read at one
 * file per 64 KiB block), so there is a file per get, not per range, while
 * every part keeps its identity and checksum: a reader asking for one
 * block reads that block alone.  Files are named by a sequence number in
 * 16 hex digits (the next after the highest found at open), never reused
 * while the cache is open, so a file is written in place without a rename.
 *
 * Layout: a 48-byte header (magic, kind, key length, offset of the first
 * part, number of parts, data bytes, CRC-32C of header, part table and
 * key), the part table (per part: length asked, data bytes, CRC-32C of the
 * part's identity and data), the key, the parts' data back to back.  The
 * header is checked when a file is indexed at open; a part's CRC on every
 * read of it.  A file that fails either, or whose size disagrees with its
 * header (a crash during its write leaves it so), is deleted and its
 * ranges fetched again, never returned.  A range cached in two files (two
 * threads missing it at once, a span fetched around a range cached before)
 * is indexed once; a file none of whose ranges is indexed is not kept.
 *
 * The LRU order of files lives in memory (a hash table of parts, a list of
 * files) under one mutex; file I/O and repository fetches happen outside
 * it, so FUSE threads proceed in parallel (two threads missing the same
 * range both fetch it; the second fill is dropped).  A hit refreshes its
 * file's mtime at most once a minute, and the next open rebuilds the LRU
 * order from mtimes.  The bound counts each file's size rounded up to
 * 4 KiB, about the disk it occupies; eviction deletes whole files.  An
 * flock on DIR/lock keeps a second daemon from sharing, and overfilling,
 * the directory.
 */
#include "objcache.h"
#include "objcache_impl.h"
#include "objstore_backend.h"
#include "../util/crc32c.h"
#include "../util/dirlock.h"
#include "../util/fnv.h"

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

/* ---- encoding ---- */

/* 64-bit FNV-1a of ID's key, kind and range: its place in the index. */
static uint64_t oc_hash(const oc_id *id)
{
    uint8_t tail[20];

    oc_put32(tail, id->kind);
    oc_put64(tail + 4, id->off);
    oc_put64(tail + 12, id->len);
    return fnv1a(fnv1a(FNV1A_INIT, id->key, strlen(id->key)), tail, sizeof(tail));
}

/* CRC-32C of a part's identity ID and its DLEN bytes of DATA: a read of
 * the part checks both what it holds and that it is the range asked. */
static uint32_t oc_part_crc(const oc_id *id, const void *data, uint64_t dlen)
{
    uint8_t b[28];

    oc_put32(b, id->kind);
    oc_put64(b + 4, id->off);
    oc_put64(b + 12, id->len);
    oc_put64(b + 20, dlen);
    return crc32c(crc32c(crc32c(0, id->key, strlen(id->key)), b, sizeof(b)),
                  data, dlen);
}

/* File name of sequence number SEQ into BUF (17 bytes). */
void oc_fname(char *buf, uint64_t seq)
{
    snprintf(buf, 17, "%016llx", (unsigned long long)seq);
}

/* Bytes a file of FLEN bytes is charged. */
uint64_t oc_charge(uint64_t flen)
{
    return (flen + OC_BLOCK - 1) / OC_BLOCK * OC_BLOCK;
}

/* A new file record for NPARTS parts of KEY (KLEN bytes), parts zeroed. */
oc_file *oc_file_new(const char *key, size_t klen, uint32_t kind,
                            uint32_t nparts)
{
    oc_file *f = calloc(1, sizeof(*f) + nparts * sizeof(oc_part) + klen + 1);

    if (!f)
        return NULL;
    f->kind = kind;
    f->nparts = nparts;
    f->key = (char *)&f->parts[nparts];
    memcpy(f->key, key, klen);
    f->key[klen] = 0;
    return f;
}

/* Set part I of F: the range LEN asked at OFF, DLEN data bytes at AT. */
void oc_part_set(oc_file *f, uint32_t i, uint64_t off, uint64_t len,
                        uint64_t dlen, uint64_t at)
{
    oc_part *p = &f->parts[i];
    oc_id id = { f->key, f->kind, off, len };

    p->file = f;
    p->hash = oc_hash(&id);
    p->off = off;
    p->len = len;
    p->dlen = dlen;
    p->at = at;
}

/* ---- the in-memory index (c->mu held) ---- */

/* Hash chain head for HASH. */
static oc_part **oc_bucket(objcache *c, uint64_t hash)
{
    return &c->buckets[(hash ^ (hash >> 32)) & (c->nbuckets - 1)];
}

/* The indexed part caching ID (whose oc_hash is HASH), or NULL. */
static oc_part *oc_find(objcache *c, const oc_id *id, uint64_t hash)
{
    for (oc_part *p = *oc_bucket(c, hash); p; p = p->hnext)
        if (p->hash == hash && p->file->kind == id->kind && p->off == id->off &&
            p->len == id->len && strcmp(p->file->key, id->key) == 0)
            return p;
    return NULL;
}

/* Unlink F from the LRU list. */
static void oc_lru_unlink(objcache *c, oc_file *f)
{
    if (f->prev) f->prev->next = f->next; else c->head = f->next;
    if (f->next) f->next->prev = f->prev; else c->tail = f->prev;
    f->prev = f->next = NULL;
}

/* Put F at the most recently used end. */
static void oc_lru_push(objcache *c, oc_file *f)
{
    f->prev = NULL;
    f->next = c->head;
    if (c->head) c->head->prev = f; else c->tail = f;
    c->head = f;
}

/* Double the hash table if it is full; on ENOMEM chains just grow longer. */
static void oc_grow(objcache *c)
{
    size_t old = c->nbuckets;
    oc_part **ob = c->buckets, *p, *next;

    if (c->nindexed < old)
        return;
    c->buckets = calloc(old * 2, sizeof(*c->buckets));
    if (!c->buckets) {
        c->buckets = ob;
        return;
    }
    c->nbuckets = old * 2;
    for (size_t i = 0; i < old; i++)
        for (p = ob[i]; p; p = next) {
            oc_part **b = oc_bucket(c, p->hash);
            next = p->hnext;
            p->hnext = *b;
            *b = p;
        }
    free(ob);
}

/* Index F (its file complete on disk) as the most recently used file; its
 * parts cached already in another file stay out of the index.  1 if it
 * added a part, else 0 with nothing changed. */
int oc_insert(objcache *c, oc_file *f)
{
    int added = 0;

    for (uint32_t i = 0; i < f->nparts; i++) {
        oc_part *p = &f->parts[i];
        oc_id id = { f->key, f->kind, p->off, p->len };
        oc_part **b;

        p->indexed = 0;
        if (oc_find(c, &id, p->hash))
            continue;
        oc_grow(c);
        b = oc_bucket(c, p->hash);
        p->hnext = *b;
        *b = p;
        p->indexed = 1;
        c->nindexed++;
        added = 1;
    }
    if (!added)
        return 0;
    oc_lru_push(c, f);
    c->n.entries++;
    c->n.bytes += f->charge;
    return 1;
}

/* Drop F from the index and free it; UNLINK: delete its file too. */
static void oc_remove(objcache *c, oc_file *f, int unlink)
{
    for (uint32_t i = 0; i < f->nparts; i++) {
        oc_part *p = &f->parts[i], **pp;
        if (!p->indexed)
            continue;
        for (pp = oc_bucket(c, p->hash); *pp != p; pp = &(*pp)->hnext)
            ;
        *pp = p->hnext;
        c->nindexed--;
    }
    oc_lru_unlink(c, f);
    c->n.entries--;
    c->n.bytes -= f->charge;
    if (unlink) {
        char fname[17];
        oc_fname(fname, f->seq);
        unlinkat(c->dfd, fname, 0);
    }
    free(f);
}

/* Delete least recently used files until under the bound. */
void oc_evict(objcache *c)
{
    while (c->n.bytes > c->limit && c->tail) {
        oc_remove(c, c->tail, 1);
        c->n.evicted++;
    }
}

/* ---- files on disk ---- */

/* Read part ID (DLEN bytes at AT of file SEQ, checked against CRC); TOUCH:
 * refresh the file's mtime.  0 with the data in *BUF, *OUTLEN, -EIO if the
 * file is bad, else -errno. */
static int oc_read(objcache *c, const oc_id *id, uint64_t seq, uint64_t at,
                   uint64_t dlen, uint32_t crc, int touch, void **buf,
                   size_t *outlen)
{
    char fname[17];
    void *data;
    ssize_t got;
    int fd, ok;

    oc_fname(fname, seq);
    if (!(data = malloc(dlen ? dlen : 1)))
        return -ENOMEM;
    fd = openat(c->dfd, fname, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        int rc = -errno;
        free(data);
        return rc;
    }
    got = pread(fd, data, dlen, (off_t)at);
    ok = got >= 0 && (uint64_t)got == dlen && oc_part_crc(id, data, dlen) == crc;
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
 * -ENOENT on a miss (a bad file is deleted first, with all its parts). */
static int oc_lookup(objcache *c, const oc_id *id, void **buf, size_t *outlen)
{
    uint64_t hash = oc_hash(id), seq, at, dlen;
    int64_t now = time(NULL);
    uint32_t crc;
    oc_part *p;
    int touch, rc;

    pthread_mutex_lock(&c->mu);
    if (!(p = oc_find(c, id, hash))) {
        pthread_mutex_unlock(&c->mu);
        return -ENOENT;
    }
    oc_lru_unlink(c, p->file);
    oc_lru_push(c, p->file);
    seq = p->file->seq;
    at = p->at;
    dlen = p->dlen;
    crc = p->crc;
    touch = now - p->file->touched >= OC_TOUCH_SECS;
    if (touch)
        p->file->touched = now;
    pthread_mutex_unlock(&c->mu);

    rc = oc_read(c, id, seq, at, dlen, crc, touch, buf, outlen);

    pthread_mutex_lock(&c->mu);
    if (rc == 0) {
        c->n.hits++;
    } else if ((rc == -EIO || rc == -ENOENT) && (p = oc_find(c, id, hash)) &&
               p->file->seq == seq) {
        /* still the file we read (not evicted and refilled meanwhile) */
        oc_remove(c, p->file, 1);
        c->n.discarded++;
        if (rc == -EIO)
            fprintf(stderr, "lakefs: cache: entry for %s (%llu+%llu) is "
                    "corrupt; fetching it again\n", id->key,
                    (unsigned long long)id->off, (unsigned long long)id->len);
    }
    pthread_mutex_unlock(&c->mu);
    return rc == 0 ? 0 : -ENOENT;
}

/* Remember N consecutive parts of KEY (KIND) from OFF in one new file: part
 * I asked LENS[I] bytes and got the DLENS[I] bytes at DATA[I] (only the
 * last may be short).  Best effort, since a failure only costs later
 * misses; parts cached already are left out of the index. */
static void oc_fill(objcache *c, const char *key, uint32_t kind, uint64_t off,
                    uint32_t n, const uint64_t *lens, const uint64_t *dlens,
                    const void *const *data)
{
    size_t klen = strlen(key), tlen = OC_HDR + (size_t)n * OC_PART + klen;
    uint64_t total = 0, at = off, data_at = tlen, seq;
    struct iovec iov[1 + OC_PARTS_MAX];
    uint8_t *hdr = NULL;
    char fname[17];
    oc_file *f;
    uint32_t i, fresh = 0;
    int fd, ok;

    if (n == 0 || n > OC_PARTS_MAX)
        return;
    for (i = 0; i < n; i++)
        total += dlens[i];
    if (oc_charge(tlen + total) > c->limit || !(f = oc_file_new(key, klen, kind, n)))
        return;
    for (i = 0; i < n; at += lens[i], data_at += dlens[i], i++)
        oc_part_set(f, i, at, lens[i], dlens[i], data_at);
    pthread_mutex_lock(&c->mu);
    for (i = 0; i < n; i++) {
        oc_id id = { key, kind, f->parts[i].off, f->parts[i].len };
        fresh += !oc_find(c, &id, f->parts[i].hash);
    }
    seq = c->next_seq++;
    pthread_mutex_unlock(&c->mu);
    if (!fresh || !(hdr = malloc(tlen))) {  /* filled meanwhile */
        free(f);
        return;
    }
    f->seq = seq;
    f->charge = oc_charge(tlen + total);
    f->touched = time(NULL);
    memcpy(hdr, OC_MAGIC, 8);
    oc_put32(hdr + 8, kind);
    oc_put32(hdr + 12, (uint32_t)klen);
    oc_put64(hdr + 16, off);
    oc_put32(hdr + 24, n);
    oc_put32(hdr + 28, 0);
    oc_put64(hdr + 32, total);
    iov[0] = (struct iovec){ hdr, tlen };
    for (i = 0; i < n; i++) {
        oc_part *p = &f->parts[i];
        oc_id id = { key, kind, p->off, p->len };
        uint8_t *t = hdr + OC_HDR + (size_t)i * OC_PART;
        p->crc = oc_part_crc(&id, data[i], p->dlen);
        oc_put64(t, p->len);
        oc_put64(t + 8, p->dlen);
        oc_put32(t + 16, p->crc);
        oc_put32(t + 20, 0);
        iov[1 + i] = (struct iovec){ (void *)data[i], p->dlen };
    }
    memcpy(hdr + OC_HDR + (size_t)n * OC_PART, key, klen);
    oc_put32(hdr + 40, crc32c(crc32c(0, hdr, 40), hdr + OC_HDR, tlen - OC_HDR));
    oc_put32(hdr + 44, 0);

    oc_fname(fname, seq);
    fd = openat(c->dfd, fname, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC |
                O_NOFOLLOW, 0600);
    ok = fd >= 0 && writev(fd, iov, (int)n + 1) == (ssize_t)(tlen + total);
    if (fd >= 0 && close(fd) < 0)
        ok = 0;
    free(hdr);
    pthread_mutex_lock(&c->mu);
    if (ok && oc_insert(c, f)) {
        oc_evict(c);
        f = NULL;
    }
    pthread_mutex_unlock(&c->mu);
    if (f) {                      /* not used: failed, or filled meanwhile */
        if (fd >= 0)
            unlinkat(c->dfd, fname, 0);
        free(f);
    }
}

/* Remember DLEN bytes of DATA as the answer to the one range ID. */
static void oc_fill_one(objcache *c, const oc_id *id, const void *data,
                        uint64_t dlen)
{
    oc_fill(c, id->key, id->kind, id->off, 1, &id->len, &dlen, &data);
}

/* 1 if KEY is an immutable object the cache keeps. */
int oc_cacheable(const char *key)
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
        oc_fill_one(c, &id, *buf, *outlen);
    return rc;
}

/* Consecutive ranges: the cached ones from disk, the span from the first
 * missing range to the last in one get from the repository (ranges cached
 * in between are fetched again rather than split the request), and that
 * span cached as one file of parts, each read back on its own. */
static int oc_get_ranges(void *state, const char *key, uint64_t off,
                         const uint32_t *lens, size_t n, void **bufs)
{
    objcache *c = state;
    size_t first = n, last = 0, got, span, i;
    uint64_t at, from = 0, lens64[OC_PARTS_MAX];
    void **fetched;
    int cache = oc_cacheable(key) && n <= OC_PARTS_MAX, rc;

    for (i = 0, at = off; i < n; at += lens[i++]) {
        oc_id id = { key, OC_RANGE, at, lens[i] };
        bufs[i] = NULL;
        if (cache && oc_lookup(c, &id, &bufs[i], &got) == 0 && got == lens[i])
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
    span = last - first + 1;
    if (!(fetched = calloc(span, sizeof(*fetched))))
        rc = -ENOMEM;
    else
        rc = os_get_ranges(c->inner, key, from, lens + first, span, fetched);
    pthread_mutex_lock(&c->mu);
    c->n.misses += cache ? span : 0;
    for (i = first; rc == 0 && i <= last; i++)
        c->n.downloaded += lens[i];
    pthread_mutex_unlock(&c->mu);
    if (rc == 0 && cache) {
        for (i = 0; i < span; i++)
            lens64[i] = lens[first + i];
        oc_fill(c, key, OC_RANGE, from, (uint32_t)span, lens64, lens64,
                (const void *const *)fetched);
    }
    for (i = first; rc == 0 && i <= last; i++) {
        if (bufs[i])
            free(fetched[i - first]);
        else
            bufs[i] = fetched[i - first];
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
        oc_fill_one(c, &id, rec, sizeof(rec));
    }
    return rc;
}

/* Remember the answers to ranged gets of a layer this process wrote: N
 * consecutive ranges from OFF, their bytes back to back at DATA, in files
 * of up to OC_PARTS_MAX parts. */
static void oc_prime(void *state, const char *key, uint64_t off,
                     const uint32_t *lens, size_t n, const void *data)
{
    objcache *c = state;
    const uint8_t *d = data;
    uint64_t lens64[OC_PARTS_MAX];
    const void *parts[OC_PARTS_MAX];

    if (!oc_cacheable(key))
        return;
    while (n > 0) {
        uint32_t k = n < OC_PARTS_MAX ? (uint32_t)n : OC_PARTS_MAX;
        uint64_t from = off;
        for (uint32_t i = 0; i < k; i++) {
            lens64[i] = lens[i];
            parts[i] = d;
            d += lens[i];
            off += lens[i];
        }
        oc_fill(c, key, OC_RANGE, from, k, lens64, lens64, parts);
        lens += k;
        n -= k;
    }
}

/* Remember the size of a layer this process wrote. */
static void oc_prime_size(void *state, const char *key, uint64_t size)
{
    objcache *c = state;
    oc_id id = { key, OC_SIZE, 0, 0 };
    uint8_t rec[8];

    if (oc_cacheable(key)) {
        oc_put64(rec, size);
        oc_fill_one(c, &id, rec, sizeof(rec));
    }
}

/* List keys: straight to the repository. */
static int oc_list(void *state, const char *prefix, char ***keys, size_t *n)
{
    objcache *c = state;
    return os_list(c->inner, prefix, keys, n);
}

/* Delete KEY from the repository and its files from the cache. */
static int oc_del(void *state, const char *key)
{
    objcache *c = state;
    oc_file *f, *next;
    int rc = os_delete(c->inner, key);

    if (rc == 0 && oc_cacheable(key)) {
        pthread_mutex_lock(&c->mu);
        for (f = c->head; f; f = next) {
            next = f->next;
            if (strcmp(f->key, key) == 0)
                oc_remove(c, f, 1);
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

/* Delete the N keys KEYS from the repository, and the files of those keys
 * from the cache whatever the outcome, since some may be gone even after an
 * error: one pass over the files, each looked up in a sorted copy. */
static int oc_del_many(void *state, const char *const *keys, size_t n)
{
    objcache *c = state;
    const char **sorted = malloc(n * sizeof(*sorted));
    oc_file *f, *next;
    int rc;

    if (!sorted)
        return -ENOMEM;
    rc = os_delete_many(c->inner, keys, n);
    memcpy(sorted, keys, n * sizeof(*sorted));
    qsort(sorted, n, sizeof(*sorted), oc_strcmp);
    pthread_mutex_lock(&c->mu);
    for (f = c->head; f; f = next) {
        const char *k = f->key;
        next = f->next;
        if (bsearch(&k, sorted, n, sizeof(*sorted), oc_strcmp))
            oc_remove(c, f, 1);
    }
    pthread_mutex_unlock(&c->mu);
    free(sorted);
    return rc;
}

/* Free C and everything it holds (files stay). */
static void oc_free(void *state)
{
    objcache *c = state;
    oc_file *f, *next;

    for (f = c->head; f; f = next) {
        next = f->next;
        free(f);
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

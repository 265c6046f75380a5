/*
 * layer_read.c -- opening, validating and searching layers.
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
 * Blocks come through layer_fetch.c (one fetch per block at a time,
 * read-ahead) into layer_cache.c's process-wide cache; this file decodes
 * their entries and answers point look-ups and prefix scans.
 */
#include "layer_impl.h"
#include "layer_format.h"
#include "../util/crc32c.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

/* Decode the entry at *P (before END) into E and advance; -1 if malformed. */
int lread_entry_next(const uint8_t **p, const uint8_t *end, lentry *e)
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
int lread_block_check(const layer *l, size_t b, const uint8_t *data, size_t len)
{
    const uint8_t *p = data, *end = data + len;
    lentry e, prev = { 0 };
    int first = 1;

    while (p < end) {
        if (lread_entry_next(&p, end, &e) < 0)
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

/* Parse the key filter at *P (before END) of a version 2 index into L;
 * -1 on defect. */
static int filter_parse(layer *l, const uint8_t **p, const uint8_t *end)
{
    uint64_t bits;

    if (layer_get_varint(p, end, &bits) < 0)
        return -1;
    if (bits == 0)
        return 0;
    if (*p == end || **p == 0 || **p > LAYER_FILTER_HASHES_MAX ||
        (bits + 7) / 8 != (uint64_t)(end - *p - 1))
        return -1;
    l->filter_hashes = *(*p)++;
    l->filter = *p;
    l->filter_bits = bits;
    *p = end;
    return 0;
}

/* Parse and check L->index (ILEN bytes, data ending at IOFF) of a layer of
 * format VERSION; -1 on defect. */
static int index_parse(layer *l, size_t ilen, uint64_t ioff, uint32_t version)
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
        index_key(&p, end, &l->maxkey, &l->maxlen) < 0 ||
        (version != LAYER_VERSION_UNFILTERED && filter_parse(l, &p, end) < 0) || p != end)
        return -1;
    if (nb == 0)
        return l->nentries == 0 && l->minlen == 0 && l->maxlen == 0 && !l->filter ? 0 : -1;
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
    uint32_t version = layer_get32(foot + 8);
    if ((version != LAYER_VERSION && version != LAYER_VERSION_UNFILTERED) || layer_get32(foot + 12) != 0) {
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
    if (index_parse(l, got, ioff, version) < 0) {
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
    uint32_t version = layer_get32(foot + 8);
    if ((version != LAYER_VERSION && version != LAYER_VERSION_UNFILTERED) || ioff > len - LAYER_FOOTER_SIZE ||
        ilen != len - LAYER_FOOTER_SIZE - ioff || ilen == 0 ||
        crc32c(0, buf + ioff, ilen) != layer_get32(foot + 56)) {
        why = "index checksum mismatch";
        goto out;
    }
    l->index = buf + ioff;        /* not owned: cleared before the free */
    if (index_parse(l, ilen, ioff, version) < 0) {
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
        else if (ZSTD_isError(r) || r != lb->rawlen || lread_block_check(l, b, raw, lb->rawlen) < 0)
            why = "malformed block";
        for (p = raw, end = raw + lb->rawlen; !why && p < end && lread_entry_next(&p, end, &e) == 0;) {
            if (!layer_may_hold(l, e.key, e.klen))
                why = "key filter lacks a key of the block";
            (*entries)++;
        }
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
    lfetch_forget(l);
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
long lread_block_find(const layer *l, const uint8_t *key, size_t klen)
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

int layer_may_hold(const layer *l, const uint8_t *key, size_t klen)
{
    if (l->nblocks == 0 || layer_keycmp(key, klen, l->minkey, l->minlen) < 0 ||
        layer_keycmp(key, klen, l->maxkey, l->maxlen) > 0)
        return 0;
    if (!l->filter)
        return 1;
    uint64_t h = layer_filter_hash(key, klen);
    for (unsigned i = 0; i < l->filter_hashes; i++) {
        uint64_t b = layer_filter_bit(h, i, l->filter_bits);
        if (!(l->filter[b / 8] & (1u << (b % 8))))
            return 0;
    }
    return 1;
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
    if (max_seq < l->min_seq || !layer_may_hold(l, key, klen))
        return 0;
    if ((b = lread_block_find(l, key, klen)) < 0)
        return 0;
    lfetch_note_read(l, (size_t)b, key, klen);
    if ((rc = lfetch_block(l, (size_t)b, &c)) < 0)
        return rc;
    p = c->data;
    end = c->data + c->len;
    while (p < end) {
        int cmp;
        if (lread_entry_next(&p, end, &e) < 0) {
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
    lcache_release(c);
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
    start = lread_block_find(l, from, flen);
    for (size_t b = start < 0 ? 0 : (size_t)start; b < l->nblocks; b++) {
        const uint8_t *p, *end, *cur = NULL;
        size_t curlen = 0;
        int done = 0, past = 0, rc;
        cblock *c;
        lentry e;

        lfetch_note_read(l, b, (long)b == start ? from : NULL, flen);
        if ((rc = lfetch_block(l, b, &c)) < 0)
            return rc;
        p = c->data;
        end = c->data + c->len;
        while (rc == 0 && !past && p < end) {
            if (lread_entry_next(&p, end, &e) < 0) {
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
        lcache_release(c);
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

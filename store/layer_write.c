/*
 * layer_write.c -- building a layer in memory.
 *
 * Versions arrive sorted (key ascending, seq descending within a key) and
 * are appended to a raw block buffer.  Once the buffer passes ~64 KiB it is
 * compressed with zstd (level 1: layers are written on the flush path, so
 * speed matters more than ratio; -20 for a layer that never leaves the
 * machine, layer_writer_fast) and appended to the output, and an index
 * entry (first key, offset, lengths, CRC-32C of the compressed bytes) is
 * recorded.  A block is only cut between keys, never inside one key's
 * versions, so a reader finds every version of a key in exactly one block;
 * a key with many versions simply makes a larger block.  finish() appends
 * the index, the key filter built from every distinct key's hash, and the
 * fixed footer (format in layer_format.h).
 */
#include "layer.h"
#include "layer_format.h"
#include "../util/crc32c.h"
#include "../util/bytebuf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

struct layer_writer {
    ZSTD_CCtx *cctx;              /* reused compression context */
    int level;                    /* zstd level: 1, or -20 (layer_writer_fast) */
    bytebuf out;                  /* compressed blocks written so far */
    bytebuf blk;                  /* raw entries of the current block */
    bytebuf idx;                  /* index entries of finished blocks */
    size_t nblocks;               /* blocks in out */
    uint64_t nentries;            /* versions added */
    uint64_t min_seq, max_seq;    /* seq range of versions added */
    uint8_t *first;               /* first key of the current block */
    size_t firstlen;
    uint8_t *minkey, *last;       /* smallest key; most recent key */
    size_t minlen, lastlen;
    uint64_t last_seq;            /* seq of the most recent version */
    uint64_t *hashes;             /* filter hash of each distinct key */
    size_t nhashes, caphashes;
    int err;                      /* sticky error from a failed add */
};

/* Replace the copy *DST (length *DLEN) by a copy of KEY. */
static int copy_key(uint8_t **dst, size_t *dlen, const uint8_t *key, size_t klen)
{
    uint8_t *p = realloc(*dst, klen ? klen : 1);

    if (!p)
        return -ENOMEM;
    if (klen)
        memcpy(p, key, klen);
    *dst = p;
    *dlen = klen;
    return 0;
}

/* A writer that builds a layer in memory. */
layer_writer *layer_writer_new(void)
{
    layer_writer *w = calloc(1, sizeof(*w));

    if (!w)
        return NULL;
    w->cctx = ZSTD_createCCtx();
    if (!w->cctx) {
        free(w);
        return NULL;
    }
    w->level = 1;
    return w;
}

void layer_writer_fast(layer_writer *w)
{
    w->level = -20;
}

/* Compress the current block into out and index it. */
static int flush_block(layer_writer *w)
{
    size_t bound = ZSTD_compressBound(w->blk.len), clen;
    uint8_t ent[20];
    uint64_t off = w->out.len;

    if (w->blk.len == 0)
        return 0;
    if (w->blk.len > LAYER_BLOCK_MAX)
        return -EFBIG;
    if (bytebuf_reserve(&w->out, bound) < 0)
        return -ENOMEM;
    clen = ZSTD_compressCCtx(w->cctx, w->out.p + off, bound, w->blk.p,
                             w->blk.len, w->level);
    if (ZSTD_isError(clen) || clen > UINT32_MAX)
        return -EIO;
    w->out.len += clen;
    layer_put64(ent, off);
    layer_put32(ent + 8, (uint32_t)clen);
    layer_put32(ent + 12, (uint32_t)w->blk.len);
    layer_put32(ent + 16, crc32c(0, w->out.p + off, clen));
    if (bytebuf_varint(&w->idx, w->firstlen) < 0 ||
        bytebuf_add(&w->idx, w->first, w->firstlen) < 0 ||
        bytebuf_add(&w->idx, ent, sizeof(ent)) < 0)
        return -ENOMEM;
    w->nblocks++;
    w->blk.len = 0;
    return 0;
}

/* Append a version; keys ascending, seqs descending within a key. */
int layer_writer_add(layer_writer *w, const uint8_t *key, size_t klen,
                     uint64_t seq, int tomb, const void *val, size_t vlen)
{
    int newkey = 1, rc;
    uint8_t hdr[9];

    if (w->err)
        return w->err;
    if (klen > LAYER_KEY_MAX || (!tomb && vlen && !val))
        return -EINVAL;
    if (tomb)
        vlen = 0;
    if (w->nentries > 0) {
        int c = layer_keycmp(key, klen, w->last, w->lastlen);
        if (c < 0 || (c == 0 && seq >= w->last_seq))
            return -EINVAL;
        newkey = c != 0;
    }
    if (newkey && w->blk.len >= LAYER_BLOCK_TARGET &&
        (rc = flush_block(w)) < 0)
        goto fail;
    if (w->blk.len == 0 && (rc = copy_key(&w->first, &w->firstlen, key, klen)) < 0)
        goto fail;
    if (newkey && (rc = copy_key(&w->last, &w->lastlen, key, klen)) < 0)
        goto fail;
    if (w->nentries == 0 && (rc = copy_key(&w->minkey, &w->minlen, key, klen)) < 0)
        goto fail;
    if (newkey && w->nhashes == w->caphashes) {
        size_t cap = w->caphashes ? 2 * w->caphashes : 1024;
        uint64_t *h = realloc(w->hashes, cap * sizeof(*h));
        if (!h) {
            rc = -ENOMEM;
            goto fail;
        }
        w->hashes = h;
        w->caphashes = cap;
    }
    if (newkey)
        w->hashes[w->nhashes++] = layer_filter_hash(key, klen);
    layer_put64(hdr, seq);
    hdr[8] = tomb ? LAYER_FLAG_TOMB : 0;
    if (bytebuf_varint(&w->blk, klen) < 0 || bytebuf_add(&w->blk, key, klen) < 0 ||
        bytebuf_add(&w->blk, hdr, sizeof(hdr)) < 0 ||
        bytebuf_varint(&w->blk, vlen) < 0 || bytebuf_add(&w->blk, val, vlen) < 0) {
        rc = -ENOMEM;
        goto fail;
    }
    if (w->nentries == 0 || seq < w->min_seq)
        w->min_seq = seq;
    if (w->nentries == 0 || seq > w->max_seq)
        w->max_seq = seq;
    w->last_seq = seq;
    w->nentries++;
    return 0;
fail:
    /* a half-added entry would leave the block inconsistent */
    w->err = rc;
    return rc;
}

/* Forget everything added, keeping allocations for reuse. */
static void writer_reset(layer_writer *w)
{
    w->out.len = w->blk.len = w->idx.len = 0;
    w->nblocks = 0;
    w->nentries = 0;
    w->nhashes = 0;
    w->min_seq = w->max_seq = w->last_seq = 0;
    w->firstlen = w->minlen = w->lastlen = 0;
    w->err = 0;
}

size_t layer_writer_size(const layer_writer *w)
{
    return w->out.len + w->blk.len;
}

/* Append the key filter of the keys added to OUT. */
static int append_filter(layer_writer *w, bytebuf *out)
{
    uint64_t bits = (uint64_t)w->nhashes * LAYER_FILTER_BITS_PER_KEY;
    size_t bytes = (size_t)((bits + 7) / 8);
    uint8_t k = LAYER_FILTER_HASHES;

    if (bytebuf_varint(out, bits) < 0)
        return -ENOMEM;
    if (bits == 0)
        return 0;
    if (bytebuf_add(out, &k, 1) < 0 || bytebuf_reserve(out, bytes) < 0)
        return -ENOMEM;
    uint8_t *f = out->p + out->len;
    memset(f, 0, bytes);
    for (size_t i = 0; i < w->nhashes; i++)
        for (unsigned j = 0; j < k; j++) {
            uint64_t b = layer_filter_bit(w->hashes[i], j, bits);
            f[b / 8] |= (uint8_t)(1u << (b % 8));
        }
    out->len += bytes;
    return 0;
}

/* Serialize into a new malloc'd buffer; the writer is left empty. */
int layer_writer_finish(layer_writer *w, void **buf, size_t *len)
{
    uint8_t foot[LAYER_FOOTER_SIZE];
    uint64_t ioff;
    size_t ilen;
    int rc;

    *buf = NULL;
    *len = 0;
    if (w->err) {
        rc = w->err;
        goto out;
    }
    if ((rc = flush_block(w)) < 0)
        goto out;
    ioff = w->out.len;
    if (bytebuf_varint(&w->out, w->nblocks) < 0 ||
        bytebuf_add(&w->out, w->idx.p, w->idx.len) < 0 ||
        bytebuf_varint(&w->out, w->minlen) < 0 ||
        bytebuf_add(&w->out, w->minkey, w->minlen) < 0 ||
        bytebuf_varint(&w->out, w->lastlen) < 0 ||
        bytebuf_add(&w->out, w->last, w->lastlen) < 0 ||
        append_filter(w, &w->out) < 0) {
        rc = -ENOMEM;
        goto out;
    }
    ilen = w->out.len - ioff;
    memcpy(foot, LAYER_MAGIC, 8);
    layer_put32(foot + 8, LAYER_VERSION);
    layer_put32(foot + 12, 0);
    layer_put64(foot + 16, ioff);
    layer_put64(foot + 24, ilen);
    layer_put64(foot + 32, w->nentries);
    layer_put64(foot + 40, w->min_seq);
    layer_put64(foot + 48, w->max_seq);
    layer_put32(foot + 56, crc32c(0, w->out.p + ioff, ilen));
    layer_put32(foot + 60, crc32c(0, foot, 60));
    if (bytebuf_add(&w->out, foot, sizeof(foot)) < 0) {
        rc = -ENOMEM;
        goto out;
    }
    *buf = w->out.p;
    *len = w->out.len;
    w->out.p = NULL;
    w->out.cap = 0;
out:
    writer_reset(w);
    return rc;
}

/* Free the writer and anything it holds. */
void layer_writer_free(layer_writer *w)
{
    if (!w)
        return;
    ZSTD_freeCCtx(w->cctx);
    bytebuf_free(&w->out);
    bytebuf_free(&w->blk);
    bytebuf_free(&w->idx);
    free(w->first);
    free(w->minkey);
    free(w->last);
    free(w->hashes);
    free(w);
}

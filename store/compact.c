/*
 * compact.c -- the compaction policy, its bound on the layers a read
 * consults, and the chunked merge of layers.
 *
 * The merge never holds whole layers in memory.  It walks the key space in
 * chunks: every input is scanned from the chunk's first key into one
 * memtable until it has contributed COMPACT_CHUNK_BYTES / N bytes; the
 * chunk ends at the smallest key where an input stopped, since up to it
 * every input has given all it has.  Inputs go largest first, and each
 * later one stops at the end found so far, so a small input is not read to
 * its end for every chunk of a large one: the reading stays linear in the
 * inputs.  Of two versions of a key the one with the higher seq wins: in a
 * branch's own layers, a newer layer's versions are the later ones.  The
 * chunk's keys go to the layer being built, which is cut into a new piece
 * past COMPACT_PIECE_BYTES.
 */
#include "compact.h"
#include "memtable.h"
#include "layer_format.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Size of a run in the policy: its bytes, at least the floor. */
static uint64_t compact_weight(uint64_t bytes)
{
    return bytes < COMPACT_FLOOR_BYTES ? COMPACT_FLOOR_BYTES : bytes;
}

/* Index of M's first own layer: from it up, every key starts with OWN_PREFIX. */
static size_t compact_own_start(const manifest *m, const char *own_prefix)
{
    size_t plen = strlen(own_prefix), own = m->nlayers;
    while (own > 0 && !strncmp(m->layers[own - 1].key, own_prefix, plen)) own--;
    return own;
}

/* First layer of the run that ends with layer END - 1, not below LO. */
static size_t compact_run_start(const manifest *m, size_t lo, size_t end)
{
    size_t start = end - 1;
    while (start > lo && m->layers[start - 1].min_seq == m->layers[end - 1].min_seq &&
           m->layers[start - 1].max_seq == m->layers[end - 1].max_seq)
        start--;
    return start;
}

/* Runs among layers LO .. HI - 1 of M. */
static size_t compact_runs(const manifest *m, size_t lo, size_t hi)
{
    size_t runs = 0;
    for (size_t end = hi; end > lo; end = compact_run_start(m, lo, end)) runs++;
    return runs;
}

/* Own runs of BYTES bytes in all with no merge due, at most:
 * 1 + floor(log1.5(BYTES / COMPACT_FLOOR_BYTES + 2)), counted as the runs
 * r whose smallest possible weight sum, 1.5^(r-1) floors, stays below
 * BYTES + 2 floors (compact.h).  The sum is kept rounded down, so the
 * count errs, if at all, on the large side. */
static size_t compact_own_bound(uint64_t bytes)
{
    uint64_t sum = COMPACT_FLOOR_BYTES, limit = bytes + 2 * (uint64_t)COMPACT_FLOOR_BYTES;
    size_t runs = 1;
    while (sum + sum / 2 < limit) {
        sum += sum / 2;
        runs++;
    }
    return runs;
}

/* Bytes of layers LO .. M's top. */
static uint64_t compact_bytes(const manifest *m, size_t lo)
{
    uint64_t bytes = 0;
    for (size_t i = lo; i < m->nlayers; i++) bytes += m->layers[i].size;
    return bytes;
}

size_t compact_bound(const manifest *m, const char *own_prefix)
{
    size_t own = compact_own_start(m, own_prefix);
    return compact_runs(m, 0, own) + compact_own_bound(compact_bytes(m, own)) + COMPACT_LAG_RUNS;
}

int compact_flush_fits(const manifest *m, const char *own_prefix)
{
    size_t own = compact_own_start(m, own_prefix);
    return compact_runs(m, own, m->nlayers) + 1 <= compact_own_bound(compact_bytes(m, own)) + COMPACT_LAG_RUNS;
}

int compact_pick(const manifest *m, const char *own_prefix, size_t *first, size_t *count)
{
    size_t own = compact_own_start(m, own_prefix);
    /* walk the runs from the newest down, summing the newer ones */
    uint64_t newer = 0;
    size_t end = m->nlayers, pick = m->nlayers, runs = 0;
    while (end > own) {
        size_t start = compact_run_start(m, own, end);
        uint64_t bytes = 0;
        for (size_t i = start; i < end; i++) bytes += m->layers[i].size;
        runs++;
        if (runs > 1 && 2 * compact_weight(bytes) <= newer) pick = start;   /* the oldest such run */
        newer += compact_weight(bytes);
        end = start;
    }
    if (pick == m->nlayers) return 0;
    *first = pick;
    *count = m->nlayers - pick;
    return 1;
}

void compact_pieces_free(compact_piece *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i].l) layer_close(p[i].l);
        free(p[i].key);
    }
    free(p);
}

typedef struct gather {
    memtable *chunk;              /* newest version per key of this chunk */
    const uint8_t *limit;         /* the chunk's end found so far (NULL: none yet) */
    size_t limitlen;
    size_t quota, taken;          /* bytes this input may give, has given */
    uint8_t stop[LAYER_KEY_MAX];  /* the key it stopped at */
    size_t stoplen;
    int stopped;
} gather;

/* Layer scan callback: take a version unless the chunk has a later one;
 * stop past the chunk's end so far, or after the input's quota. */
static int compact_gather(void *arg, const uint8_t *key, size_t klen, uint64_t seq, int tomb,
                          const void *val, size_t vlen)
{
    gather *g = arg;
    if (g->limit && layer_keycmp(key, klen, g->limit, g->limitlen) > 0) return 1;
    const mt_version *have = mt_get(g->chunk, key, klen, UINT64_MAX);
    if (!have || have->seq < seq) {
        int rc = mt_put(g->chunk, key, klen, seq, tomb, val, vlen);
        if (rc) return rc;
    }
    g->taken += klen + vlen + 16;
    if (g->taken < g->quota) return 0;
    memcpy(g->stop, key, klen);
    g->stoplen = klen;
    g->stopped = 1;
    return 1;
}

typedef struct merge {
    objstore *os;
    layer_writer *w;
    int drop_tombs;
    size_t piece_bytes;           /* cut a piece past this size */
    uint64_t min_seq, max_seq;    /* of all inputs: every piece carries it */
    compact_upload_fn upload;
    void *arg;
    const uint8_t *end;           /* the chunk's last key (NULL: no end) */
    size_t endlen;
    compact_piece *out;
    size_t nout, capout;
} merge;

/* Finish the piece being built, upload and open it. */
static int compact_cut(merge *m)
{
    void *buf = NULL;
    size_t len = 0;
    int rc = layer_writer_finish(m->w, &buf, &len);
    if (rc) return rc;
    if (m->nout == m->capout) {
        size_t cap = m->capout ? 2 * m->capout : 4;
        compact_piece *np = realloc(m->out, cap * sizeof *np);
        if (!np) { free(buf); return -ENOMEM; }
        m->out = np;
        m->capout = cap;
    }
    compact_piece *p = &m->out[m->nout];
    memset(p, 0, sizeof *p);
    rc = m->upload(m->arg, buf, len, m->min_seq, m->max_seq, &p->key);
    if (!rc) {
        p->size = len;
        p->min_seq = m->min_seq;
        p->max_seq = m->max_seq;
        rc = layer_open_uploaded(m->os, p->key, buf, len, &p->l);
        m->nout++;                /* freed with the others even if the open failed */
    }
    free(buf);
    return rc;
}

/* Write a chunk key to the piece being built, up to the chunk's end. */
static int compact_emit(void *arg, const uint8_t *key, size_t klen, const mt_version *v)
{
    merge *m = arg;
    if (m->end && layer_keycmp(key, klen, m->end, m->endlen) > 0) return 1;
    if (v->tomb && m->drop_tombs) return 0;
    int rc = layer_writer_add(m->w, key, klen, v->seq, v->tomb, v->val, v->vlen);
    if (!rc && layer_writer_size(m->w) >= m->piece_bytes) rc = compact_cut(m);
    return rc;
}

int compact_merge(objstore *os, layer *const *in, size_t n, int drop_tombs, size_t piece_bytes, size_t chunk_bytes,
                  compact_upload_fn upload, void *arg, compact_go_fn go, compact_piece **out, size_t *nout)
{
    merge m = { .os = os, .w = layer_writer_new(), .drop_tombs = drop_tombs, .piece_bytes = piece_bytes,
                .upload = upload, .arg = arg };
    gather *g = calloc(n ? n : 1, sizeof *g);
    uint8_t *from = malloc(LAYER_KEY_MAX + 1), *end = malloc(LAYER_KEY_MAX);
    size_t flen = 0;
    int rc = m.w && g && from && end ? 0 : -ENOMEM;
    size_t *order = malloc((n ? n : 1) * sizeof *order);
    if (!order) rc = -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        if (!m.min_seq || layer_min_seq(in[i]) < m.min_seq) m.min_seq = layer_min_seq(in[i]);
        if (layer_max_seq(in[i]) > m.max_seq) m.max_seq = layer_max_seq(in[i]);
        if (order) {              /* insertion sort by size, largest first */
            size_t k = i;
            while (k > 0 && layer_size(in[order[k - 1]]) < layer_size(in[i])) { order[k] = order[k - 1]; k--; }
            order[k] = i;
        }
    }
    for (int more = 1; !rc && more;) {
        if (go && go(arg)) { rc = -ECANCELED; break; }
        memtable *chunk = mt_new();
        if (!chunk) { rc = -ENOMEM; break; }
        mt_keep_latest(chunk);
        /* each input gives its share of the chunk, the largest first */
        int ends = 0;
        for (size_t k = 0; k < n && !rc; k++) {
            size_t i = order[k];
            g[i] = (gather){ .chunk = chunk, .quota = chunk_bytes / n + 1, .limit = ends ? end : NULL,
                             .limitlen = m.endlen };
            rc = layer_scan_from(in[i], from, flen, UINT64_MAX, compact_gather, &g[i]);
            if (rc == 1) rc = 0;
            if (!rc && g[i].stopped &&
                (!ends || layer_keycmp(g[i].stop, g[i].stoplen, end, m.endlen) < 0)) {
                memcpy(end, g[i].stop, g[i].stoplen);
                m.endlen = g[i].stoplen;
                ends = 1;
            }
        }
        m.end = ends ? end : NULL;
        if (!rc) rc = mt_iterate(chunk, NULL, 0, compact_emit, &m);
        if (rc == 1) rc = 0;
        mt_free(chunk);
        /* the next chunk starts right after this one's end */
        more = ends;
        if (ends) {
            memcpy(from, end, m.endlen);
            from[m.endlen] = 0;
            flen = m.endlen + 1;
        }
    }
    if (!rc && layer_writer_size(m.w) > 0) rc = compact_cut(&m);
    layer_writer_free(m.w);
    free(order);
    free(g);
    free(from);
    free(end);
    if (rc) {
        compact_pieces_free(m.out, m.nout);
        return rc;
    }
    *out = m.out;
    *nout = m.nout;
    return 0;
}

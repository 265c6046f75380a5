/*
 * memtable.c -- skiplist of key versions.
 *
 * A skiplist is the simplest ordered structure with O(log n) inserts and
 * cheap in-order iteration (for layer writing and directory scans).  Node
 * heights come from a xorshift generator, p = 1/4, at most 20 levels.
 * Versions are prepended to a node's list, so the newest is at the head
 * and a read at a past seq walks back through older ones.
 *
 * Memory.  Nodes and versions are carved from 2 MiB chunks of the
 * process-wide pool (util/chunkpool.h), never from malloc, and a memtable
 * is freed whole: its chunks go back to the pool for the next one.  Cost
 * model: the store fills a memtable of ~64 MiB in 8 KiB versions,
 * flushes it, and fills the next; from malloc, each fill faulted its
 * memory in again page by page after the flush's malloc_trim gave it back
 * (a fifth of the daemon's page faults in an fio run), and the versions
 * were spread over every FUSE thread's arena.  From the pool a fill
 * faults nothing.  A put that replaces the newest version of a key under
 * mt_keep_latest rewrites it in place when the value fits (a page written
 * again, the store's common case), else the old version's bytes stay
 * unused until the memtable is freed and count in mt_bytes.
 */
#include "memtable.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "chunkpool.h"

#define MT_ALIGN 16

typedef struct mt_chunk {
    struct mt_chunk *next;        /* the memtable's previous chunk */
    size_t size;                  /* bytes, this header included (CHUNK_SIZE: pooled) */
    size_t used;                  /* bytes handed out, this header included */
} mt_chunk;

#define MT_CHUNK_HDR ((sizeof(mt_chunk) + MT_ALIGN - 1) & ~(size_t)(MT_ALIGN - 1))

#define MT_LEVELS 20

typedef struct mt_node {
    mt_version *newest;           /* version list, newest first */
    uint16_t klen;
    uint8_t height;
    uint8_t *key;                 /* points into the allocation, after next[] */
    struct mt_node *next[];       /* HEIGHT forward pointers */
} mt_node;

struct memtable {
    mt_node *head;                /* sentinel with MT_LEVELS pointers */
    int height;                   /* levels in use */
    uint64_t rng;                 /* xorshift state for node heights */
    size_t bytes;                 /* keys + values + overhead held */
    uint64_t min_seq, max_seq;
    int latest_only;              /* mt_keep_latest: one version per key */
    mt_chunk *chunks;             /* the newest first; allocations are carved from it */
};

/* A chunk of SIZE bytes for MT: pooled if it is CHUNK_SIZE, else mapped
 * on its own; its free bytes poisoned. */
static mt_chunk *mt_chunk_get(size_t size)
{
    mt_chunk *c = size == CHUNK_SIZE ? chunk_get() : chunk_map_big(size);
    if (!c) return NULL;
    c->next = NULL; c->size = size; c->used = MT_CHUNK_HDR;
    CHUNK_POISON((uint8_t *)c + MT_CHUNK_HDR, size - MT_CHUNK_HDR);
    return c;
}

/* Give C back, to the pool or the kernel. */
static void mt_chunk_put(mt_chunk *c)
{
    if (c->size == CHUNK_SIZE) chunk_put(c);
    else chunk_unmap_big(c, c->size);
}

/* N bytes from MT's chunks (aligned to MT_ALIGN), counted in its bytes;
 * NULL when no memory is left. */
static void *mt_alloc(memtable *mt, size_t n)
{
    n = (n + MT_ALIGN - 1) & ~(size_t)(MT_ALIGN - 1);
    mt_chunk *c = mt->chunks;
    if (!c || c->size - c->used < n) {
        size_t size = MT_CHUNK_HDR + n <= CHUNK_SIZE ? CHUNK_SIZE
                    : (MT_CHUNK_HDR + n + 4095) & ~(size_t)4095;   /* a value past a chunk */
        mt_chunk *fresh = mt_chunk_get(size);
        if (!fresh) return NULL;
        if (c && size != CHUNK_SIZE) {              /* an oversized chunk goes second: */
            fresh->next = c->next;                /* the current one keeps its room */
            c->next = fresh;
            c = fresh;
        } else {
            fresh->next = c;
            mt->chunks = c = fresh;
        }
    }
    uint8_t *p = (uint8_t *)c + c->used;
    c->used += n;
    mt->bytes += n;
    CHUNK_UNPOISON(p, n);
    return p;
}

/* memcmp order, a prefix sorting before its extensions. */
static int mt_cmp(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    size_t n = alen < blen ? alen : blen;
    int c = memcmp(a, b, n);
    if (c) return c;
    return alen < blen ? -1 : alen > blen;
}

memtable *mt_new(void)
{
    memtable *mt = calloc(1, sizeof *mt);
    if (!mt) return NULL;
    mt->head = calloc(1, sizeof(mt_node) + MT_LEVELS * sizeof(mt_node *));
    if (!mt->head) { free(mt); return NULL; }
    mt->head->height = MT_LEVELS;
    mt->height = 1;
    mt->rng = 0x9e3779b97f4a7c15ull;
    return mt;
}

void mt_free(memtable *mt)
{
    if (!mt) return;
    for (mt_chunk *c = mt->chunks; c;) {
        mt_chunk *next = c->next;
        mt_chunk_put(c);
        c = next;
    }
    free(mt->head);
    free(mt);
}

/* Random height with P(h+1) = P(h)/4. */
static int mt_random_height(memtable *mt)
{
    uint64_t x = mt->rng;
    x ^= x << 13; x ^= x >> 7; x ^= x << 17;
    mt->rng = x;
    int h = 1;
    while (h < MT_LEVELS && (x & 3) == 0) { h++; x >>= 2; }
    return h;
}

/* Last node before KEY on each level into PREV; returns the node >= KEY. */
static mt_node *mt_seek(const memtable *mt, const uint8_t *key, size_t klen, mt_node **prev)
{
    mt_node *x = mt->head;
    for (int lvl = mt->height - 1; lvl >= 0; lvl--) {
        while (x->next[lvl] && mt_cmp(x->next[lvl]->key, x->next[lvl]->klen, key, klen) < 0)
            x = x->next[lvl];
        if (prev) prev[lvl] = x;
    }
    return x->next[0];
}

int mt_put(memtable *mt, const uint8_t *key, size_t klen, uint64_t seq,
           int tomb, const void *val, size_t vlen)
{
    size_t room = tomb ? 0 : vlen;
    mt_node *prev[MT_LEVELS];
    mt_node *n = mt_seek(mt, key, klen, prev);
    int found = n && mt_cmp(n->key, n->klen, key, klen) == 0;
    mt_version *v;
    if (found && mt->latest_only && n->newest->room >= room) {
        v = n->newest;                            /* rewritten in place */
    } else {
        /* both allocations before any link: a failure leaves MT as it was */
        int h = found ? 0 : mt_random_height(mt);
        mt_node *fresh = found ? NULL : mt_alloc(mt, sizeof *n + (size_t)h * sizeof(mt_node *) + klen);
        v = found || fresh ? mt_alloc(mt, sizeof *v + room) : NULL;
        if (!v) return -ENOMEM;
        v->room = (uint32_t)room;
        if (!found) {
            n = fresh;
            n->height = (uint8_t)h; n->klen = (uint16_t)klen; n->newest = NULL;
            n->key = (uint8_t *)&n->next[h];
            memcpy(n->key, key, klen);
            for (int lvl = mt->height; lvl < h; lvl++) prev[lvl] = mt->head;
            if (h > mt->height) mt->height = h;
            for (int lvl = 0; lvl < h; lvl++) {
                n->next[lvl] = prev[lvl]->next[lvl];
                prev[lvl]->next[lvl] = n;
            }
        }
        v->older = mt->latest_only ? NULL : n->newest;   /* no history wanted: the older goes */
        n->newest = v;
    }
    v->seq = seq; v->tomb = tomb ? 1 : 0; v->vlen = (uint32_t)room;
    if (room) memcpy(v->val, val, room);
    if (!mt->min_seq || seq < mt->min_seq) mt->min_seq = seq;
    if (seq > mt->max_seq) mt->max_seq = seq;
    return 0;
}

const mt_version *mt_get(const memtable *mt, const uint8_t *key, size_t klen, uint64_t max_seq)
{
    mt_node *n = mt_seek(mt, key, klen, NULL);
    if (!n || mt_cmp(n->key, n->klen, key, klen) != 0) return NULL;
    const mt_version *v = n->newest;
    while (v && v->seq > max_seq) v = v->older;
    return v;
}

void mt_keep_latest(memtable *mt) { mt->latest_only = 1; }

size_t mt_bytes(const memtable *mt) { return mt->bytes; }
uint64_t mt_min_seq(const memtable *mt) { return mt->min_seq; }
uint64_t mt_max_seq(const memtable *mt) { return mt->max_seq; }

int mt_iterate(const memtable *mt, const uint8_t *from, size_t flen, mt_iter_fn fn, void *arg)
{
    mt_node *n = flen ? mt_seek(mt, from, flen, NULL) : mt->head->next[0];
    for (; n; n = n->next[0]) {
        int rc = fn(arg, n->key, n->klen, n->newest);
        if (rc) return rc;
    }
    return 0;
}

/*
 * memtable.c -- skiplist of key versions.
 *
 * A skiplist is the simplest ordered structure with O(log n) inserts and
 * cheap in-order iteration (for layer writing and directory scans).  Node
 * heights come from a xorshift generator, p = 1/4, at most 20 levels.
 * Versions are prepended to a node's list, so the newest is at the head
 * and a read at a past seq walks back through older ones.
 */
#include "memtable.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

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
    int latest_only;              /* mt_keep_latest: older versions are freed */
};

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
    mt_node *n = mt->head->next[0];
    while (n) {
        mt_node *next = n->next[0];
        for (mt_version *v = n->newest; v;) {
            mt_version *o = v->older;
            free(v);
            v = o;
        }
        free(n);
        n = next;
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
    mt_version *v = malloc(sizeof *v + (tomb ? 0 : vlen));
    if (!v) return -ENOMEM;
    v->seq = seq; v->tomb = tomb ? 1 : 0; v->vlen = tomb ? 0 : (uint32_t)vlen;
    if (!tomb && vlen) memcpy(v->val, val, vlen);
    mt_node *prev[MT_LEVELS];
    mt_node *n = mt_seek(mt, key, klen, prev);
    if (!n || mt_cmp(n->key, n->klen, key, klen) != 0) {
        int h = mt_random_height(mt);
        n = malloc(sizeof *n + (size_t)h * sizeof(mt_node *) + klen);
        if (!n) { free(v); return -ENOMEM; }
        n->height = (uint8_t)h; n->klen = (uint16_t)klen; n->newest = NULL;
        n->key = (uint8_t *)&n->next[h];
        memcpy(n->key, key, klen);
        for (int lvl = mt->height; lvl < h; lvl++) prev[lvl] = mt->head;
        if (h > mt->height) mt->height = h;
        for (int lvl = 0; lvl < h; lvl++) {
            n->next[lvl] = prev[lvl]->next[lvl];
            prev[lvl]->next[lvl] = n;
        }
        mt->bytes += sizeof *n + (size_t)h * sizeof(mt_node *) + klen;
    }
    v->older = n->newest;
    n->newest = v;
    mt->bytes += sizeof *v + v->vlen;
    if (mt->latest_only && v->older) {   /* no history wanted: the older version goes */
        mt->bytes -= sizeof *v->older + v->older->vlen;
        free(v->older);
        v->older = NULL;
    }
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

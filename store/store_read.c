/*
 * store_read.c -- reads of one branch's store: store_get (memtables, then
 * layers newest first), store_peek through any committed manifest, and
 * scans that merge the memtables with every layer.
 *
 * A read shares the store's lock only to look into the memtables and take
 * a reference to the layer set; layer blocks are read after releasing it,
 * since a block may have to come from a slow or unreachable repository and
 * a writer queued behind the reader would stall every commit (store.c).
 */
#include "store_impl.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- reads ---- */

/* Count a read that consulted PROBES layers of set LS. */
static void store_count_read(store *st, const layerset *ls, uint64_t probes)
{
    __atomic_add_fetch(&st->reads, 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&st->probes, probes, __ATOMIC_RELAXED);
    uint64_t max = __atomic_load_n(&st->probes_max, __ATOMIC_RELAXED);
    while (probes > max &&
           !__atomic_compare_exchange_n(&st->probes_max, &max, probes, 1, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
        ;                         /* MAX reloaded: another read raised it */
    if (probes > ls->bound) __atomic_add_fetch(&st->over_bound, 1, __ATOMIC_RELAXED);
}

/* Copy a found value out to the caller. */
static void store_copy_out(const void *val, size_t vlen, void *buf, size_t cap, size_t *outlen)
{
    if (vlen) memcpy(buf, val, vlen < cap ? vlen : cap);
    *outlen = vlen;
}

/* Newest version of K in layer L, copied out as store_get does: 0, -ENOENT
 * (a deletion), 1 if L has no version of K, or -EIO. */
static int store_layer_get(layer *l, const skey *k, void *buf, size_t cap, size_t *vlen)
{
    int tomb; void *val = NULL; size_t len; uint64_t seq;
    int found = layer_get(l, k->b, k->len, UINT64_MAX, &tomb, &val, &len, &seq);
    if (found <= 0) return found < 0 ? found : 1;
    if (tomb) return -ENOENT;
    store_copy_out(val, len, buf, cap, vlen);
    free(val);
    return 0;
}

/* store_get without recording K as a start-up key. */
static int store_lookup(store *st, const skey *k, void *buf, size_t cap, size_t *vlen)
{
    int rc = -ENOENT;
    pthread_rwlock_rdlock(&st->lock);
    const mt_version *v = mt_get(st->active, k->b, k->len, UINT64_MAX);
    for (int i = st->nfrozen - 1; !v && i >= 0; i--)
        v = mt_get(st->frozen[i].mt, k->b, k->len, UINT64_MAX);
    if (v) {
        if (!v->tomb) { store_copy_out(v->val, v->vlen, buf, cap, vlen); rc = 0; }
        pthread_rwlock_unlock(&st->lock);
        return rc;
    }
    /* the layers as of this moment, read without the lock */
    layerset *ls = lset_hold(st);
    pthread_rwlock_unlock(&st->lock);
    rc = 1;
    size_t probes = 0;
    for (size_t i = ls->n; i-- > 0 && rc == 1;)
        if (layer_may_hold(ls->l[i]->l, k->b, k->len)) {
            probes++;
            rc = store_layer_get(ls->l[i]->l, k, buf, cap, vlen);
        }
    store_count_read(st, ls, probes);
    lset_release(ls);
    return rc == 1 ? -ENOENT : rc;
}

int store_get(store *st, const skey *k, void *buf, size_t cap, size_t *vlen)
{
    if (st->hot) hotset_note(st->hot, k->b, k->len);
    return store_lookup(st, k, buf, cap, vlen);
}

int store_peek(objstore *os, const manifest *m, const skey *k, void *buf, size_t cap, size_t *vlen)
{
    int rc = 1;
    for (size_t i = m->nlayers; i-- > 0 && rc == 1;) {   /* newest first: usually one layer opened */
        layer *l;
        if ((rc = layer_open_sized(os, m->layers[i].key, m->layers[i].size, &l))) {
            if (rc == -ENOENT) {  /* not "no such key": the state is incomplete */
                fprintf(stderr, "lakefs: layer %s named by manifest generation %" PRIu64 " is missing\n",
                        m->layers[i].key, m->gen);
                rc = -EIO;
            }
            break;
        }
        rc = store_layer_get(l, k, buf, cap, vlen);
        layer_close(l);
    }
    return rc == 1 ? -ENOENT : rc;
}

typedef struct scan_ctx {
    memtable *result;             /* newest version per key gathered so far */
    const uint8_t *prefix;        /* keys must start with it (plen 0: any) */
    size_t plen;
    const uint8_t *to;            /* ... and sort before it (NULL: no end) */
    size_t tlen;
} scan_ctx;

/* 1 if KEY lies past the scan's keys. */
static int store_scan_past(const scan_ctx *c, const uint8_t *key, size_t klen)
{
    if (klen < c->plen || (c->plen && memcmp(key, c->prefix, c->plen))) return 1;
    if (!c->to) return 0;
    int cmp = memcmp(key, c->to, klen < c->tlen ? klen : c->tlen);
    return cmp > 0 || (cmp == 0 && klen >= c->tlen);
}

/* Gather a memtable key into the scan result while it is the scan's
 * (sources come newest first: a key already gathered is kept). */
static int store_scan_mt(void *arg, const uint8_t *key, size_t klen, const mt_version *v)
{
    scan_ctx *c = arg;
    if (store_scan_past(c, key, klen)) return 1;
    if (mt_get(c->result, key, klen, UINT64_MAX)) return 0;
    return mt_put(c->result, key, klen, v->seq, v->tomb, v->val, v->vlen);
}

/* Gather a layer key into the scan result unless a newer source had it. */
static int store_scan_layer(void *arg, const uint8_t *key, size_t klen, uint64_t seq,
                            int tomb, const void *val, size_t vlen)
{
    scan_ctx *c = arg;
    if (c->to && store_scan_past(c, key, klen)) return 1;
    if (mt_get(c->result, key, klen, UINT64_MAX)) return 0;
    return mt_put(c->result, key, klen, seq, tomb, val, vlen);
}

typedef struct scan_out {
    store_scan_fn fn;
    void *arg;
} scan_out;

/* Hand live keys of the scan result to the caller. */
static int store_scan_emit(void *arg, const uint8_t *key, size_t klen, const mt_version *v)
{
    scan_out *o = arg;
    if (v->tomb) return 0;
    return o->fn(o->arg, key, klen, v->val, v->vlen);
}

/* The scan of C's keys from FROM (FLEN bytes) on. */
static int store_scan_run(store *st, scan_ctx *c, const uint8_t *from, size_t flen, store_scan_fn fn, void *arg)
{
    if (!c->result) return -ENOMEM;
    if (st->hot) hotset_note(st->hot, from, flen);   /* warming it fetches the scan's first block */
    /* newest first: the memtables under the lock, then the layers as of
     * that moment without it (their blocks may come from the repository) */
    pthread_rwlock_rdlock(&st->lock);
    int rc = mt_iterate(st->active, from, flen, store_scan_mt, c);
    for (int i = st->nfrozen - 1; i >= 0 && rc >= 0; i--)
        rc = mt_iterate(st->frozen[i].mt, from, flen, store_scan_mt, c);
    layerset *ls = lset_hold(st);
    pthread_rwlock_unlock(&st->lock);
    for (size_t i = ls->n; i-- > 0 && rc >= 0;)
        rc = c->to ? layer_scan_from(ls->l[i]->l, from, flen, UINT64_MAX, store_scan_layer, c)
                   : layer_scan(ls->l[i]->l, from, flen, UINT64_MAX, store_scan_layer, c);
    lset_release(ls);
    if (rc >= 0) {
        scan_out o = { fn, arg };
        rc = mt_iterate(c->result, NULL, 0, store_scan_emit, &o);
    }
    mt_free(c->result);
    return rc;
}

int store_scan(store *st, const uint8_t *prefix, size_t plen, store_scan_fn fn, void *arg)
{
    scan_ctx c = { mt_new(), prefix, plen, NULL, 0 };
    return store_scan_run(st, &c, prefix, plen, fn, arg);
}

int store_scan_range(store *st, const uint8_t *from, size_t flen, const uint8_t *to, size_t tlen,
                     store_scan_fn fn, void *arg)
{
    scan_ctx c = { mt_new(), NULL, 0, to, tlen };
    return store_scan_run(st, &c, from, flen, fn, arg);
}

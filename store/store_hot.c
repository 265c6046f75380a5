/*
 * store_hot.c -- a branch's start-up keys across mounts: the keys a mount
 * read as PostgreSQL started (hotset.h) are stored beside the closed
 * manifest at a clean close, and the next mount fetches them and has the
 * read-ahead threads warm the blocks that hold them while it already
 * serves, so the server's start finds them cached.
 */
#include "store_impl.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- start-up keys (hotset.h) ---- */

/* Object key of BRANCH's start-up keys stored with generation GEN. */
static void store_hot_key(char *key, size_t len, const char *branch, uint64_t gen)
{
    snprintf(key, len, "branches/%s/hot/%020" PRIu64, branch, gen);
}

int store_hot_key_gen(const char *branch, const char *key, uint64_t *gen)
{
    char prefix[512], *end;
    int n = snprintf(prefix, sizeof prefix, "branches/%s/hot/", branch);
    if (n < 0 || (size_t)n >= sizeof prefix || strncmp(key, prefix, (size_t)n) ||
        strlen(key + n) != 20 || key[n] < '0' || key[n] > '9')
        return -EINVAL;
    *gen = strtoull(key + n, &end, 10);
    return *end ? -EINVAL : 0;
}

/* Thread body: fetch and decode the start-up keys stored with generation
 * st->warm_gen (closed, so its close wrote them); none if anything fails. */
void *store_hot_fetch(void *arg)
{
    store *st = arg;
    char key[512];
    void *buf = NULL;
    size_t len;
    store_hot_key(key, sizeof key, st->branch, st->warm_gen);
    int rc = os_get(st->os, key, 0, UINT64_MAX, &buf, &len);
    if (!rc) rc = hotset_decode(buf, len, &st->warm, &st->nwarm);
    if (!rc) fprintf(stderr, "lakefs: branch %s: fetching the %zu start-up keys of the last mount\n", st->branch, st->nwarm);
    if (rc) st->warm_gen = 0;
    if (rc && rc != -ENOENT)
        fprintf(stderr, "lakefs: branch %s: start-up keys %s unusable (%s): this start fetches as it reads\n",
                st->branch, key, strerror(-rc));
    free(buf);
    return NULL;
}

/* Thread body: have the read-ahead threads bring in the blocks that may
 * hold the last mount's start-up keys, in every layer of the set as the
 * store started (slice by slice of keys in their order, each newest layer
 * first), until done or the store closes: a lookup would go through a
 * key's layers one after the other, a round trip each, where these fetch
 * all of them at once, runs of adjacent blocks in one get -- a few blocks
 * more, far fewer waits.  The blocks land in the block cache (and the disk
 * cache), where the server's reads find them or wait for the fetch already
 * running (layer_read.c).  Up to STORE_WARM_BYTES: PostgreSQL's start
 * needs a few MiB even of a large database, and a set recorded while a
 * workload read at random all over its files is a guess about the next
 * one that must not cost a fresh machine its bandwidth for long. */
void *store_warmer(void *arg)
{
    store *st = arg;
    layerset *ls = st->warm_ls;
    const uint8_t *keys[STORE_WARM_SLICE];
    size_t lens[STORE_WARM_SLICE];
    uint64_t budget = STORE_WARM_BYTES;
    for (size_t from = 0; from < st->nwarm; from += STORE_WARM_SLICE) {
        size_t n = st->nwarm - from < STORE_WARM_SLICE ? st->nwarm - from : STORE_WARM_SLICE;
        for (size_t i = 0; i < n; i++) {
            keys[i] = st->warm[from + i].b;
            lens[i] = st->warm[from + i].len;
        }
        for (size_t j = ls->n; j-- > 0;) {
            if (__atomic_load_n(&st->stopping, __ATOMIC_RELAXED)) return NULL;
            layer_warm(ls->l[j]->l, keys, lens, n, &budget);
        }
    }
    return NULL;
}

void store_hot_seal(store *st)
{
    if (st->hot) hotset_seal(st->hot);
}

void store_hot_restart(store *st)
{
    if (st->hot) hotset_restart(st->hot);
}

void store_hot_file(store *st, uint64_t ino, uint64_t size)
{
    uint64_t pages = (size + KEY_PAGE_BYTES - 1) / KEY_PAGE_BYTES;
    skey k;
    if (!st->hot || !hotset_recording(st->hot)) return;
    for (uint64_t p = 0; p < pages && p < STORE_HOT_FILE_PAGES; p++) {
        key_page(&k, ino, p);
        hotset_note(st->hot, k.b, k.len);
    }
}

/* Store this mount's start-up keys beside generation GEN, about to be
 * committed closed, and remove the ones this mount started from.  A
 * failure costs only the next start's prefetch. */
void store_hot_save(store *st, uint64_t gen)
{
    char key[512];
    void *buf;
    size_t len;
    if (!st->hot || !hotset_count(st->hot) || hotset_encode(st->hot, &buf, &len)) return;
    store_hot_key(key, sizeof key, st->branch, gen);
    int rc = os_put_if_absent(st->os, key, buf, len);
    free(buf);
    if (!rc) fprintf(stderr, "lakefs: branch %s: stored %zu start-up keys\n", st->branch, hotset_count(st->hot));
    if (rc && rc != -EEXIST)
        fprintf(stderr, "lakefs: branch %s: cannot store the start-up keys %s: %s\n", st->branch, key, strerror(-rc));
    if (st->warm_gen) {
        store_hot_key(key, sizeof key, st->branch, st->warm_gen);
        if ((rc = os_delete(st->os, key)))
            fprintf(stderr, "lakefs: branch %s: cannot remove the old start-up keys %s: %s\n", st->branch, key, strerror(-rc));
    }
}

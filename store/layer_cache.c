/*
 * layer_cache.c -- the process-wide cache of decompressed layer blocks.
 *
 * Cache entries are reference counted: a reader holds a reference while it
 * walks a block, so eviction by another thread only unlinks the entry and
 * the last holder frees it.  The cache is keyed by (repository URL + object
 * key, block number); objects are immutable, so an entry never goes stale.
 *
 * One LRU list and one hash table under one mutex: an entry is found,
 * referenced and moved to the front in a few instructions, far below the
 * cost of the block's fetch and decompression that it saves.
 */
#include "layer_impl.h"
#include "../util/fnv.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static pthread_mutex_t cache_mu = PTHREAD_MUTEX_INITIALIZER;
static cblock **cache_buckets;    /* hash table, cache_nbuckets long */
static size_t cache_nbuckets;
static size_t cache_count;        /* entries cached */
static size_t cache_bytes;        /* data bytes cached */
static size_t cache_limit = (size_t)256 << 20;
static cblock *cache_head, *cache_tail;  /* LRU ends */

/* Hash of layer identity ID and block number B. */
uint64_t lcache_hash(const char *id, size_t b)
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
cblock *lcache_lookup(const char *id, uint64_t hash, size_t b)
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
int lcache_wants(const char *id, uint64_t hash, size_t b)
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
void lcache_insert(cblock **cp)
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

/* Release a reference obtained from lcache_lookup or lfetch_block. */
void lcache_release(cblock *c)
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

/* Take and drop the cache's lock (around fork(), by layer_fetch.c). */
void lcache_lock(void)
{
    pthread_mutex_lock(&cache_mu);
}

void lcache_unlock(void)
{
    pthread_mutex_unlock(&cache_mu);
}

/*
 * hotset.c -- recording, encoding and decoding a branch's start-up keys
 * (see hotset.h).
 *
 * The recorder sits on the read path of every store_get, so once its
 * window has closed a note costs one atomic load.  While it is open, a
 * note takes a mutex, looks the key up in an open-addressing table of
 * 64-bit hashes and appends a new key to a byte buffer; a hash collision
 * drops a key (it is a prefetch hint, not data).
 */
#include "hotset.h"
#include "../util/crc32c.h"
#include "../util/fnv.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define HOTSET_MAGIC "LKHOTST1"
#define HOTSET_SLOTS (2 * HOTSET_MAX)  /* hash table: power of two, half full at most */

struct hotset {
    pthread_mutex_t mu;
    atomic_int open;              /* the window records */
    int64_t until;                /* monotonic seconds when the window closes */
    uint64_t slots[HOTSET_SLOTS]; /* hashes of recorded keys (0: free) */
    size_t count;                 /* keys recorded */
    size_t sealed, sealed_len;    /* the first keys, kept by a restart (hotset_seal) */
    uint8_t *bytes;               /* u16 length + key, per key */
    size_t len, cap;
};

static int64_t hotset_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec;
}

hotset *hotset_new(void)
{
    hotset *h = calloc(1, sizeof *h);
    if (!h) return NULL;
    pthread_mutex_init(&h->mu, NULL);
    hotset_restart(h);
    return h;
}

void hotset_free(hotset *h)
{
    if (!h) return;
    pthread_mutex_destroy(&h->mu);
    free(h->bytes);
    free(h);
}

/* FNV-1a of K, never 0 (0 marks a free slot). */
static uint64_t hotset_hash(const uint8_t *k, size_t len)
{
    uint64_t x = fnv1a(FNV1A_INIT, k, len);
    return x ? x : 1;
}

/* The slot holding hash X, or the free one where it goes (mu held; the
 * table is never more than half full). */
static size_t hotset_slot(const hotset *h, uint64_t x)
{
    size_t i = (size_t)x & (HOTSET_SLOTS - 1);
    while (h->slots[i] && h->slots[i] != x) i = (i + 1) & (HOTSET_SLOTS - 1);
    return i;
}

void hotset_seal(hotset *h)
{
    pthread_mutex_lock(&h->mu);
    h->sealed = h->count;
    h->sealed_len = h->len;
    pthread_mutex_unlock(&h->mu);
}

void hotset_restart(hotset *h)
{
    pthread_mutex_lock(&h->mu);
    memset(h->slots, 0, sizeof h->slots);
    for (size_t off = 0; off < h->sealed_len;) {   /* the sealed keys' hashes back */
        size_t kl = (size_t)h->bytes[off] | (size_t)h->bytes[off + 1] << 8;
        uint64_t x = hotset_hash(h->bytes + off + 2, kl);
        h->slots[hotset_slot(h, x)] = x;
        off += 2 + kl;
    }
    h->count = h->sealed;
    h->len = h->sealed_len;
    h->until = hotset_now() + HOTSET_WINDOW_S;
    atomic_store(&h->open, 1);
    pthread_mutex_unlock(&h->mu);
}

void hotset_note(hotset *h, const uint8_t *k, size_t len)
{
    if (!atomic_load_explicit(&h->open, memory_order_relaxed) || len > KEY_MAX) return;
    uint64_t x = hotset_hash(k, len);
    pthread_mutex_lock(&h->mu);
    if (!atomic_load(&h->open)) goto out;
    if (hotset_now() >= h->until) {
        atomic_store(&h->open, 0);
        goto out;
    }
    size_t i = hotset_slot(h, x);
    if (h->slots[i]) goto out;    /* seen (or a colliding key: dropped) */
    if (h->len + 2 + len > h->cap) {
        size_t cap = h->cap ? 2 * h->cap : 16384;
        while (cap < h->len + 2 + len) cap *= 2;
        uint8_t *nb = realloc(h->bytes, cap);
        if (!nb) goto out;
        h->bytes = nb;
        h->cap = cap;
    }
    h->slots[i] = x;
    h->bytes[h->len] = (uint8_t)len;
    h->bytes[h->len + 1] = (uint8_t)(len >> 8);
    memcpy(h->bytes + h->len + 2, k, len);
    h->len += 2 + len;
    if (++h->count == HOTSET_MAX) atomic_store(&h->open, 0);
out:
    pthread_mutex_unlock(&h->mu);
}

int hotset_recording(hotset *h)
{
    return atomic_load_explicit(&h->open, memory_order_relaxed);
}

size_t hotset_count(hotset *h)
{
    pthread_mutex_lock(&h->mu);
    size_t n = h->count;
    pthread_mutex_unlock(&h->mu);
    return n;
}

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) { p[i] = (uint8_t)v; v >>= 8; }
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

int hotset_encode(hotset *h, void **buf, size_t *len)
{
    pthread_mutex_lock(&h->mu);
    size_t n = 8 + 4 + h->len + 4;
    uint8_t *b = malloc(n);
    if (b) {
        memcpy(b, HOTSET_MAGIC, 8);
        put32(b + 8, (uint32_t)h->count);
        if (h->len) memcpy(b + 12, h->bytes, h->len);
        put32(b + n - 4, crc32c(0, b, n - 4));
    }
    pthread_mutex_unlock(&h->mu);
    if (!b) return -ENOMEM;
    *buf = b;
    *len = n;
    return 0;
}

int hotset_decode(const void *buf, size_t len, skey **keys, size_t *n)
{
    const uint8_t *b = buf;
    *keys = NULL;
    *n = 0;
    if (len < 16 || memcmp(b, HOTSET_MAGIC, 8) || get32(b + len - 4) != crc32c(0, b, len - 4)) return -EINVAL;
    uint32_t count = get32(b + 8);
    if (count > HOTSET_MAX || count > (len - 16) / 2) return -EINVAL;
    skey *k = calloc(count ? count : 1, sizeof *k);
    if (!k) return -ENOMEM;
    const uint8_t *p = b + 12, *end = b + len - 4;
    for (uint32_t i = 0; i < count; i++) {
        if (end - p < 2) goto bad;
        size_t kl = (size_t)p[0] | (size_t)p[1] << 8;
        p += 2;
        if (kl == 0 || kl > KEY_MAX || (size_t)(end - p) < kl) goto bad;
        k[i].len = (uint16_t)kl;
        memcpy(k[i].b, p, kl);
        p += kl;
    }
    if (p != end) goto bad;
    *keys = k;
    *n = count;
    return 0;
bad:
    free(k);
    return -EINVAL;
}

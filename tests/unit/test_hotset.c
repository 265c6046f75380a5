/*
 * test_hotset.c -- the start-up keys (store/hotset.c) and what a clean
 * close leaves for the next mount (store.c): the closed manifest and the
 * hot object beside it.
 *
 * What can go wrong: a key recorded twice or out of order; the recorder
 * growing without bound; a restart forgetting the open's own reads, or
 * keeping the previous start's; a decoder trusting a damaged object (every
 * byte flipped and every truncation must be refused, as must well-formed
 * objects with impossible contents); a close that leaves no closed
 * manifest, so the next mount folds a journal that cannot exist (two
 * round trips more), or leaves the old hot object behind.
 */
#include "harness.h"
#include "store.h"
#include "hotset.h"
#include "manifest.h"
#include "crc32c.h"
#include "harness_repo.h"

#include <errno.h>
#include <inttypes.h>
#include <stdint.h>

/* Key number I: a page key of inode I / 7, page I. */
static void key_n(skey *k, uint64_t i)
{
    key_page(k, i / 7 + 2, i);
}

/* Decode H's encoding into *KEYS; the count, or -1. */
static long roundtrip(hotset *h, skey **keys)
{
    void *buf;
    size_t len, n;
    if (hotset_encode(h, &buf, &len)) return -1;
    int rc = hotset_decode(buf, len, keys, &n);
    free(buf);
    return rc ? -1 : (long)n;
}

static void test_record(void)
{
    hotset *h = hotset_new();
    skey k, *got = NULL;
    CHECK(h != NULL && hotset_recording(h));
    for (uint64_t i = 0; i < 10; i++) {       /* each twice, in order */
        key_n(&k, i);
        hotset_note(h, k.b, k.len);
        hotset_note(h, k.b, k.len);
    }
    CHECK(hotset_count(h) == 10);
    CHECK(roundtrip(h, &got) == 10);
    int order = 1;
    for (uint64_t i = 0; got && i < 10; i++) {
        key_n(&k, i);
        order &= got[i].len == k.len && !memcmp(got[i].b, k.b, k.len);
    }
    CHECK(order);
    free(got);

    /* the open's keys (sealed) survive a restart; a start's do not */
    hotset_seal(h);
    key_n(&k, 100);
    hotset_note(h, k.b, k.len);
    CHECK(hotset_count(h) == 11);
    hotset_restart(h);
    CHECK(hotset_count(h) == 10);
    key_n(&k, 3);                             /* sealed: still known */
    hotset_note(h, k.b, k.len);
    key_n(&k, 100);                           /* forgotten: recorded anew */
    hotset_note(h, k.b, k.len);
    CHECK(hotset_count(h) == 11);

    /* bounded */
    for (uint64_t i = 1000; i < 1000 + 2 * HOTSET_MAX; i++) {
        key_n(&k, i);
        hotset_note(h, k.b, k.len);
    }
    CHECK(hotset_count(h) == HOTSET_MAX && !hotset_recording(h));  /* full: closed */
    CHECK(roundtrip(h, &got) == HOTSET_MAX);
    free(got);
    hotset_free(h);
}

/* A well-formed object (valid CRC) holding COUNT and the key records REC. */
static size_t craft(uint8_t *b, uint32_t count, const uint8_t *rec, size_t rlen)
{
    memcpy(b, "LKHOTST1", 8);
    for (int i = 0; i < 4; i++) b[8 + i] = (uint8_t)(count >> (8 * i));
    memcpy(b + 12, rec, rlen);
    uint32_t c = crc32c(0, b, 12 + rlen);
    for (int i = 0; i < 4; i++) b[12 + rlen + i] = (uint8_t)(c >> (8 * i));
    return 12 + rlen + 4;
}

static void test_decode(void)
{
    hotset *h = hotset_new();
    skey k, *got;
    size_t n, len;
    void *buf;
    for (uint64_t i = 0; i < 5; i++) {
        key_n(&k, i);
        hotset_note(h, k.b, k.len);
    }
    CHECK(hotset_encode(h, &buf, &len) == 0);
    uint8_t *b = buf;
    int refused = 1;
    for (size_t i = 0; i < len; i++)
        for (int bit = 0; bit < 8; bit++) {
            b[i] ^= (uint8_t)(1 << bit);
            got = NULL;
            refused &= hotset_decode(b, len, &got, &n) == -EINVAL && got == NULL;
            b[i] ^= (uint8_t)(1 << bit);
        }
    CHECK(refused);
    refused = 1;
    for (size_t l = 0; l < len; l++) refused &= hotset_decode(b, l, &got, &n) == -EINVAL;
    CHECK(refused);
    CHECK(hotset_decode(b, len, &got, &n) == 0 && n == 5);
    free(got);
    free(buf);
    hotset_free(h);

    uint8_t obj[1024], rec[600] = { 3, 0, 1, 2, 3 };
    CHECK(hotset_decode(obj, craft(obj, 1, rec, 5), &got, &n) == 0 && n == 1 && got[0].len == 3);
    free(got);
    CHECK(hotset_decode(obj, craft(obj, 2, rec, 5), &got, &n) == -EINVAL);      /* fewer keys than counted */
    CHECK(hotset_decode(obj, craft(obj, 0, rec, 5), &got, &n) == -EINVAL);      /* bytes left over */
    CHECK(hotset_decode(obj, craft(obj, HOTSET_MAX + 1, rec, 5), &got, &n) == -EINVAL);
    uint8_t zero[2] = { 0, 0 };
    CHECK(hotset_decode(obj, craft(obj, 1, zero, 2), &got, &n) == -EINVAL);     /* empty key */
    rec[0] = (uint8_t)(KEY_MAX + 1);
    rec[1] = (uint8_t)((KEY_MAX + 1) >> 8);
    CHECK(hotset_decode(obj, craft(obj, 1, rec, 2 + KEY_MAX + 1), &got, &n) == -EINVAL);   /* too long */
}

/* Generation of the newest manifest of main, and whether it is closed. */
static uint64_t newest(env *e, int *closed)
{
    manifest m;
    if (manifest_load_latest(e->os, "main", &m)) return 0;
    uint64_t gen = m.gen;
    *closed = m.closed;
    manifest_free(&m);
    return gen;
}

/* The keys of main's hot object of generation GEN (-1: none). */
static long hot_object(env *e, uint64_t gen, skey **keys)
{
    char key[128];
    void *buf;
    size_t len, n;
    snprintf(key, sizeof key, "branches/main/hot/%020" PRIu64, gen);
    if (os_get(e->os, key, 0, UINT64_MAX, &buf, &len)) return -1;
    int rc = hotset_decode(buf, len, keys, &n);
    free(buf);
    return rc ? -1 : (long)n;
}

static void test_close_leaves(void)
{
    env e;
    env_init(&e);
    store *st = env_open(&e, "main", 0);
    store_batch b;
    skey k, *got = NULL;
    uint8_t val[16];
    size_t vlen;
    store_batch_init(&b);
    for (uint64_t i = 0; i < 20; i++) {
        key_n(&k, i);
        store_batch_put(&b, &k, "page", 4);
    }
    CHECK(store_commit(st, &b) == 0);
    store_batch_free(&b);
    for (uint64_t i = 0; i < 20; i += 2) {    /* read: the start-up keys */
        key_n(&k, i);
        CHECK(store_get(st, &k, val, sizeof val, &vlen) == 0);
    }
    CHECK(store_close(st) == 0);
    int closed = 0;
    uint64_t g1 = newest(&e, &closed);
    CHECK(g1 > 0 && closed);
    long n = hot_object(&e, g1, &got);
    int all = n >= 10;
    for (uint64_t i = 0; all && i < 20; i += 2) {
        key_n(&k, i);
        int found = 0;
        for (long j = 0; j < n; j++) found |= got[j].len == k.len && !memcmp(got[j].b, k.b, k.len);
        all &= found;
    }
    CHECK(all);
    free(got);

    /* the next open: no journal to fold after a clean close, so two puts
     * (lease, fence) and a fence generation that is not closed */
    os_counters c0, c1;
    os_get_counters(e.os, &c0);
    st = env_open(&e, "main", 0);
    os_get_counters(e.os, &c1);
    CHECK(c1.puts - c0.puts == 2);
    CHECK(newest(&e, &closed) == g1 + 1 && !closed);
    key_n(&k, 5);
    CHECK(store_get(st, &k, val, sizeof val, &vlen) == 0 && vlen == 4);
    CHECK(store_close(st) == 0);
    uint64_t g2 = newest(&e, &closed);
    CHECK(g2 > g1 + 1 && closed);
    CHECK(hot_object(&e, g2, &got) >= 1);    /* the new one, and the old one gone */
    free(got);
    CHECK(hot_object(&e, g1, &got) == -1);
    env_free(&e);
}

int main(void)
{
    test_record();
    test_decode();
    test_close_leaves();
    return harness_done();
}

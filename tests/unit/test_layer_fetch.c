/*
 * test_layer_fetch.c -- fetching layer blocks (store/layer_fetch.c):
 * read-ahead and warming.
 *
 * Read-ahead runs behind the readers' backs: prefetches are queued and
 * fetched by other threads, and a layer may be closed while some of its
 * own are queued or running.  So the readers check exact data, and the
 * counters and a store that counts its gets check that read-ahead happens
 * where it should and nowhere else:
 *  - per layer two sequential readers and a random one, while another
 *    thread opens fresh layers, reads a few blocks and closes each at once:
 *    every read exact, blocks prefetched and prefetches hit;
 *  - random reads, and a sequential pass with read-ahead turned off,
 *    prefetch nothing;
 *  - a cold sequential pass fetches runs of blocks with one get each, not
 *    one get per block;
 *  - warming keys costs one get per run of blocks they fall in, and no
 *    more than a byte budget allows.
 * Kept apart from test_layer.c, which tests writing and reading layers.
 */
#include "harness.h"
#include "layer.h"
#include "layer_testlib.h"
#include "objstore_backend.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

/* ---- read-ahead ---- */

enum { RA_KEYS = 4096, RA_VLEN = 2000, RA_LAYERS = 4, RA_CLOSES = 40 };

/* Key of entry I of the read-ahead layers into KEY (16 bytes); its length. */
static size_t ra_key(unsigned i, uint8_t *key)
{
    return (size_t)snprintf((char *)key, 16, "k%06u", i);
}

/* Value of entry I into VAL (RA_VLEN bytes): differs per entry and byte. */
static void ra_value(unsigned i, uint8_t *val)
{
    for (unsigned j = 0; j < RA_VLEN; j++)
        val[j] = (uint8_t)(i * 131 + j / 61 + (j % 7 == 0 ? i >> 8 : 0));
}

/* 0 if entry I reads back exactly from L, else 1. */
static int ra_check(layer *l, unsigned i)
{
    uint8_t key[16], want[RA_VLEN];
    size_t klen = ra_key(i, key), vlen = 0;
    void *val = NULL;
    uint64_t seq = 0;
    int tomb = -1, bad;

    ra_value(i, want);
    bad = layer_get(l, key, klen, UINT64_MAX, &tomb, &val, &vlen, &seq) != 1 ||
          tomb || seq != 1000 + i || vlen != RA_VLEN ||
          memcmp(val, want, RA_VLEN) != 0;
    free(val);
    return bad;
}

/* ra_check of the first key of the block B describes. */
static int ra_check_block(layer *l, const blkinfo *b)
{
    char first[16] = "";

    memcpy(first, b->first, b->firstlen < 15 ? b->firstlen : 15);
    return ra_check(l, (unsigned)strtoul(first + 1, NULL, 10));
}

typedef struct ra_arg {
    objstore *os;
    layer *l;                     /* the layer read (NULL: the closer) */
    int random;                   /* random reads, else one sequential pass */
    uint64_t seed;
    int bad;
} ra_arg;

/* A reader of a read-ahead layer, or the closer: it opens fresh copies
 * ra/cN, reads ~5 blocks from a random entry on (read-ahead starts at the
 * third), and closes each at once, while its prefetches are queued or
 * running. */
static void *ra_thread(void *p)
{
    ra_arg *a = p;
    uint64_t x = a->seed;

    if (a->l && a->random) {
        for (int n = 0; n < 3000; n++) {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            a->bad += ra_check(a->l, (unsigned)(x % RA_KEYS));
        }
    } else if (a->l) {
        for (unsigned i = 0; i < RA_KEYS; i++)
            a->bad += ra_check(a->l, i);
    } else {
        for (int n = 0; n < RA_CLOSES; n++) {
            char key[32];
            layer *l;
            unsigned from;
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            from = (unsigned)(x % (RA_KEYS - 160));
            snprintf(key, sizeof(key), "ra/c%d", n);
            if (layer_open(a->os, key, &l) < 0) {
                a->bad++;
                continue;
            }
            for (unsigned i = from; i < from + 160; i++)
                a->bad += ra_check(l, i);
            layer_close(l);
        }
    }
    return NULL;
}

/* One sequential pass over every key of L, which it then closes, with the
 * read-ahead counters before (*C0) and after (*C1); the number of wrong
 * reads. */
static int ra_pass(layer *l, layer_ra_counters *c0, layer_ra_counters *c1)
{
    int bad = 0;

    layer_readahead_stats(c0);
    for (unsigned i = 0; i < RA_KEYS; i++)
        bad += ra_check(l, i);
    layer_close(l);
    layer_readahead_stats(c1);
    return bad;
}

/* A store that counts the gets it passes on to the store it wraps. */
typedef struct counting {
    objstore *inner;
    atomic_int gets;
} counting;

static int cnt_get(void *state, const char *key, uint64_t off, uint64_t len,
                   void **buf, size_t *outlen)
{
    counting *c = state;
    atomic_fetch_add(&c->gets, 1);
    return os_get(c->inner, key, off, len, buf, outlen);
}

static int cnt_head(void *state, const char *key, uint64_t *size)
{
    counting *c = state;
    return os_head(c->inner, key, size);
}

static void cnt_close(void *state)
{
    (void)state;
}

static const os_backend counting_backend = {
    .close = cnt_close, .get = cnt_get, .head = cnt_head,
};

/* Read-ahead: correctness under concurrency and close, counters, and the
 * cases that must not prefetch. */
static void readahead_tests(objstore *os)
{
    layer_writer *w = layer_writer_new();
    layer_ra_counters c0, c1;
    uint8_t key[16], val[RA_VLEN];
    blkinfo bi[1024];
    uint64_t ioff, ilen;
    char okey[32];
    size_t len, nb;
    void *buf;
    layer *l;

    for (unsigned i = 0; i < RA_KEYS; i++) {
        size_t klen = ra_key(i, key);
        ra_value(i, val);
        CHECK(layer_writer_add(w, key, klen, 1000 + i, 0, val, RA_VLEN) == 0);
    }
    CHECK(layer_writer_finish(w, &buf, &len) == 0);
    layer_writer_free(w);
    nb = parse_index(buf, len, bi, 1024, &ioff, &ilen);
    CHECK(nb > 64 && nb < 1024);
    for (int i = 0; i < RA_LAYERS; i++) {
        snprintf(okey, sizeof(okey), "ra/%d", i);
        CHECK(os_put_if_absent(os, okey, buf, len) == 0);
    }
    for (int i = 0; i < RA_CLOSES; i++) {
        snprintf(okey, sizeof(okey), "ra/c%d", i);
        CHECK(os_put_if_absent(os, okey, buf, len) == 0);
    }
    CHECK(os_put_if_absent(os, "ra/random", buf, len) == 0);
    CHECK(os_put_if_absent(os, "ra/off", buf, len) == 0);
    layer_cache_set_limit(0);                 /* start cold */
    layer_cache_set_limit((size_t)256 << 20);
    layer_readahead_set(32);

    /* per layer two sequential readers and a random one, and the closer */
    {
        enum { NT = RA_LAYERS * 3 + 1 };
        layer *ls[RA_LAYERS] = { 0 };
        pthread_t th[NT];
        ra_arg ra[NT];
        int bad = 0, opened = 0;

        layer_readahead_stats(&c0);
        for (int i = 0; i < RA_LAYERS; i++) {
            snprintf(okey, sizeof(okey), "ra/%d", i);
            opened += layer_open(os, okey, &ls[i]) == 0;
        }
        CHECK(opened == RA_LAYERS);
        for (int i = 0; i < NT; i++) {
            ra[i] = (ra_arg){ os, i < NT - 1 ? ls[i / 3] : NULL, i % 3 == 2,
                              0x9E3779B97F4A7C15ull * (uint64_t)(i + 1), 0 };
            pthread_create(&th[i], NULL, ra_thread, &ra[i]);
        }
        for (int i = 0; i < NT; i++) {
            pthread_join(th[i], NULL);
            bad += ra[i].bad;
        }
        for (int i = 0; i < RA_LAYERS; i++)
            layer_close(ls[i]);
        layer_readahead_stats(&c1);
        CHECK(bad == 0);
        CHECK(c1.prefetched > c0.prefetched);
        CHECK(c1.hits > c0.hits);
        CHECK(c1.hits - c0.hits <= c1.prefetched - c0.prefetched);
        printf("read-ahead: %llu blocks prefetched, %llu read\n",
               (unsigned long long)(c1.prefetched - c0.prefetched),
               (unsigned long long)(c1.hits - c0.hits));
    }

    /* random reads prefetch nothing: every block once at its first key, in
     * steps of 7, so no read continues any of the last four; then every
     * block in order, but entered past its first key, as random reads that
     * land next to each other do */
    CHECK(nb % 7 != 0);
    CHECK(layer_open(os, "ra/random", &l) == 0);
    if (l) {
        int bad = 0;
        layer_readahead_stats(&c0);
        for (size_t i = 0; i < 2 * nb; i++) {
            const blkinfo *b = &bi[i < nb ? i * 7 % nb : i - nb];
            char first[16] = "";
            if (i == nb) {                    /* cold again */
                layer_cache_set_limit(0);
                layer_cache_set_limit((size_t)256 << 20);
            }
            memcpy(first, b->first, b->firstlen < 15 ? b->firstlen : 15);
            bad += ra_check(l, (unsigned)strtoul(first + 1, NULL, 10) + (i >= nb));
        }
        layer_close(l);
        layer_readahead_stats(&c1);
        CHECK(bad == 0);
        CHECK(c1.prefetched == c0.prefetched && c1.hits == c0.hits);
    }

    /* turned off: a sequential pass prefetches nothing */
    layer_readahead_set(0);
    CHECK(layer_open(os, "ra/off", &l) == 0);
    if (l) {
        CHECK(ra_pass(l, &c0, &c1) == 0);
        CHECK(c1.prefetched == c0.prefetched && c1.hits == c0.hits);
    }
    layer_readahead_set(32);

    /* a cold sequential pass: the prefetches of consecutive blocks go out as
     * a few ranged gets of many blocks, not one get per block */
    {
        counting cnt = { os, 0 };
        objstore *cos = NULL;

        CHECK(os_wrap(&counting_backend, &cnt, "counting://", &cos) == 0);
        layer_cache_set_limit(0);
        layer_cache_set_limit((size_t)256 << 20);
        CHECK(cos && layer_open(cos, "ra/0", &l) == 0);
        if (l) {
            CHECK(ra_pass(l, &c0, &c1) == 0);
            CHECK(c1.prefetched - c0.prefetched > nb / 2);
            CHECK((size_t)atomic_load(&cnt.gets) < nb / 4);
            printf("sequential pass: %zu blocks, %d gets\n", nb,
                   atomic_load(&cnt.gets));
        }
        if (cos)
            os_close(cos);
    }

    /* warming keys: one get per run of adjacent blocks they fall in, which
     * the reads of those keys then find (or wait for, or take from the
     * queue), not one get per key; with read-ahead off, which would add
     * prefetches of its own as the reads happen to go in order */
    layer_readahead_set(0);
    {
        counting cnt = { os, 0 };
        objstore *cos = NULL;
        const size_t want[] = { 2, 0, 1, 3, 2, 10, 11, 40 };   /* runs 0-3, 10-11, 40 */
        enum { NW = sizeof(want) / sizeof(want[0]) };
        const uint8_t *wkeys[NW];
        size_t wlens[NW];
        int bad = 0;

        CHECK(os_wrap(&counting_backend, &cnt, "counting://", &cos) == 0);
        CHECK(cos && layer_open(cos, "ra/1", &l) == 0);
        if (l) {
            int opened = atomic_load(&cnt.gets);
            for (size_t i = 0; i < NW; i++) {
                wkeys[i] = bi[want[i]].first;
                wlens[i] = bi[want[i]].firstlen;
            }
            uint64_t budget = UINT64_MAX;
            layer_warm(l, wkeys, wlens, NW, &budget);
            for (size_t i = 0; i < NW; i++)
                bad += ra_check_block(l, &bi[want[i]]);
            CHECK(bad == 0);
            /* 3 runs, 3 gets; one get per key would be 6, and a reader
             * that fetched a block again after its prefetch ended between
             * the reader's cache look-up and its claim, 4 */
            CHECK(atomic_load(&cnt.gets) - opened == 3);
            layer_close(l);
        }
        if (cos)
            os_close(cos);
    }

    /* a budget of blocks 0 and 1's bytes: one get of them, then nothing
     * more is queued; the reads of the other five blocks fetch one each */
    {
        counting cnt = { os, 0 };
        objstore *cos = NULL;
        const size_t want[] = { 2, 0, 1, 3, 2, 10, 11, 40 };
        enum { NW = sizeof(want) / sizeof(want[0]) };
        const uint8_t *wkeys[NW];
        size_t wlens[NW];
        int bad = 0;

        layer_cache_set_limit(0);
        layer_cache_set_limit((size_t)256 << 20);
        CHECK(os_wrap(&counting_backend, &cnt, "counting://", &cos) == 0);
        CHECK(cos && layer_open(cos, "ra/1", &l) == 0);
        if (l) {
            int opened = atomic_load(&cnt.gets);
            uint64_t budget = (uint64_t)bi[0].clen + bi[1].clen;
            for (size_t i = 0; i < NW; i++) {
                wkeys[i] = bi[want[i]].first;
                wlens[i] = bi[want[i]].firstlen;
            }
            layer_warm(l, wkeys, wlens, NW, &budget);
            CHECK(budget == 0);
            for (size_t i = 0; i < NW; i++)
                bad += ra_check_block(l, &bi[want[i]]);
            CHECK(bad == 0);
            CHECK(atomic_load(&cnt.gets) - opened == 1 + 5);
            layer_close(l);
        }
        if (cos)
            os_close(cos);
    }
    layer_readahead_set(32);
    free(buf);
}

int main(void)
{
    char dir[64], url[128], err[256];
    objstore *os = NULL;

    harness_tmpdir(dir);
    snprintf(url, sizeof(url), "file://%s", dir);
    if (os_open(url, &os, err, sizeof(err)) != 0) {
        fprintf(stderr, "os_open %s: %s\n", url, err);
        harness_rmtree(dir);
        return 2;
    }
    readahead_tests(os);
    layer_cache_set_limit(0);
    os_close(os);
    harness_rmtree(dir);
    return harness_done();
}

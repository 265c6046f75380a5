/*
 * test_layer.c -- layers: write/read round trips against an in-memory model,
 * prefix scans, concurrent readers under cache pressure, and corruption
 * (flipped bytes, truncation, random and hostile buffers) that must give
 * -EIO or correct data, never a crash or wrong data; the key filter (no
 * false negatives, about 1% false positives, version 1 layers without one
 * still read, a malformed or lacking filter refused).  Read-ahead and
 * warming (store/layer_fetch.c) are tested in test_layer_fetch.c.
 */
#include "harness.h"
#include "layer.h"
#include "layer_format.h"
#include "layer_testlib.h"
#include "crc32c.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <unistd.h>

typedef struct ver {
    uint64_t seq;
    int tomb;
    uint8_t *val;
    size_t vlen;
} ver;

typedef struct mkey {
    uint8_t key[40];
    size_t klen;
    ver *v;                       /* seq descending */
    size_t nv;
} mkey;

static mkey *model;
static size_t nmodel;
static uint64_t rng = 88172645463325252ull;
static size_t value_max = 8192;   /* largest value model_build makes */

/* xorshift64: deterministic, thread-unsafe random numbers. */
static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* Order model keys as the layer does. */
static int mkey_cmp(const void *a, const void *b)
{
    const mkey *x = a, *y = b;
    return layer_keycmp(x->key, x->klen, y->key, y->klen);
}

/* Index of KEY in the model, or -1. */
static long model_find(const uint8_t *key, size_t klen)
{
    size_t lo = 0, hi = nmodel;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = layer_keycmp(model[mid].key, model[mid].klen, key, klen);
        if (c == 0)
            return (long)mid;
        if (c < 0) lo = mid + 1; else hi = mid;
    }
    return -1;
}

/* Newest version of model key K with seq <= MAX, or NULL. */
static const ver *model_get(const mkey *k, uint64_t max)
{
    for (size_t i = 0; i < k->nv; i++)
        if (k->v[i].seq <= max)
            return &k->v[i];
    return NULL;
}

/* Fill a random value into V. */
static void make_value(ver *v)
{
    unsigned r = (unsigned)(rnd() % 100);
    v->tomb = r < 10;
    v->vlen = r < 20 ? 0 : r < 25 ? value_max : 1 + rnd() % (value_max < 200 ? value_max : 200);
    v->val = malloc(v->vlen ? v->vlen : 1);
    for (size_t i = 0; i < v->vlen; i++)
        v->val[i] = (uint8_t)rnd();
}

/* Build the model: NK random keys, one with MANY versions. */
static void model_build(size_t nk, size_t many)
{
    model = calloc(nk, sizeof(*model));
    for (size_t i = 0; i < nk; i++) {
        mkey *k = &model[i];
        k->klen = 1 + rnd() % 30;
        k->key[0] = (uint8_t)('a' + rnd() % 4);
        for (size_t j = 1; j < k->klen; j++)
            k->key[j] = (uint8_t)rnd();
    }
    qsort(model, nk, sizeof(*model), mkey_cmp);
    nmodel = 0;
    for (size_t i = 0; i < nk; i++)
        if (nmodel == 0 || mkey_cmp(&model[nmodel - 1], &model[i]) != 0)
            model[nmodel++] = model[i];
    for (size_t i = 0; i < nmodel; i++) {
        mkey *k = &model[i];
        uint64_t seq = 1000000 + rnd() % 1000000;
        k->nv = i == nmodel / 2 ? many : 1 + rnd() % 4;
        k->v = calloc(k->nv, sizeof(*k->v));
        for (size_t j = 0; j < k->nv; j++) {
            seq -= 1 + rnd() % 50;
            k->v[j].seq = seq;
            make_value(&k->v[j]);
        }
    }
}

/* Free the model. */
static void model_free(void)
{
    for (size_t i = 0; i < nmodel; i++) {
        for (size_t j = 0; j < model[i].nv; j++)
            free(model[i].v[j].val);
        free(model[i].v);
    }
    free(model);
    model = NULL;
    nmodel = 0;
}

/* Serialize the whole model as a layer. */
static void model_write(void **buf, size_t *len)
{
    layer_writer *w = layer_writer_new();
    int bad = 0;

    for (size_t i = 0; i < nmodel; i++)
        for (size_t j = 0; j < model[i].nv; j++) {
            const ver *v = &model[i].v[j];
            bad += layer_writer_add(w, model[i].key, model[i].klen, v->seq,
                                    v->tomb, v->val, v->vlen) != 0;
        }
    CHECK(bad == 0);
    CHECK(layer_writer_finish(w, buf, len) == 0);
    layer_writer_free(w);
}

/* 0 if layer_get of KEY at MAX agrees with the model entry K (may be NULL). */
static int check_get(layer *l, const mkey *k, const uint8_t *key, size_t klen,
                     uint64_t max)
{
    const ver *want = k ? model_get(k, max) : NULL;
    int tomb = -1, rc;
    void *val = NULL;
    size_t vlen = 0;
    uint64_t seq = 0;

    rc = layer_get(l, key, klen, max, &tomb, &val, &vlen, &seq);
    if (!want) {
        free(val);
        return rc == 0 && val == NULL ? 0 : -1;
    }
    if (rc != 1 || seq != want->seq || tomb != want->tomb) {
        free(val);
        return -1;
    }
    rc = want->tomb ? (val == NULL ? 0 : -1)
                    : (vlen == want->vlen &&
                       (vlen == 0 || memcmp(val, want->val, vlen) == 0) ? 0 : -1);
    free(val);
    return rc;
}

/* Every key at every interesting seq; returns the number of mismatches. */
static int check_all(layer *l)
{
    int bad = 0;

    for (size_t i = 0; i < nmodel; i++) {
        const mkey *k = &model[i];
        size_t step = k->nv > 100 ? 37 : 1;
        bad += check_get(l, k, k->key, k->klen, UINT64_MAX) != 0;
        bad += check_get(l, k, k->key, k->klen, 0) != 0;
        for (size_t j = 0; j < k->nv; j += step) {
            bad += check_get(l, k, k->key, k->klen, k->v[j].seq) != 0;
            bad += check_get(l, k, k->key, k->klen, k->v[j].seq - 1) != 0;
            bad += check_get(l, k, k->key, k->klen, k->v[j].seq + 1) != 0;
        }
    }
    return bad;
}

typedef struct scan_state {
    const uint8_t *prefix;
    size_t plen;
    uint64_t max;
    size_t next;                  /* model index to look from */
    int bad, calls, stop_after;
} scan_state;

/* Model index of the next key with the prefix that has a version <= max. */
static size_t scan_expect(scan_state *s)
{
    while (s->next < nmodel) {
        const mkey *k = &model[s->next];
        if (k->klen >= s->plen && (s->plen == 0 ||
                                   memcmp(k->key, s->prefix, s->plen) == 0) &&
            model_get(k, s->max))
            break;
        s->next++;
    }
    return s->next;
}

/* Scan callback comparing each call with the model. */
static int scan_cb(void *arg, const uint8_t *key, size_t klen, uint64_t seq,
                   int tomb, const void *val, size_t vlen)
{
    scan_state *s = arg;
    size_t i = scan_expect(s);
    const ver *v;

    s->calls++;
    if (i >= nmodel) {
        s->bad++;
        return 0;
    }
    v = model_get(&model[i], s->max);
    if (layer_keycmp(key, klen, model[i].key, model[i].klen) != 0 ||
        seq != v->seq || tomb != v->tomb ||
        (!tomb && (vlen != v->vlen || (vlen && memcmp(val, v->val, vlen)))))
        s->bad++;
    s->next++;
    return s->stop_after && s->calls == s->stop_after ? 42 : 0;
}

/* Scan PREFIX at MAX and compare with the model; mismatches. */
static int check_scan(layer *l, const uint8_t *prefix, size_t plen, uint64_t max)
{
    scan_state s = { prefix, plen, max, 0, 0, 0, 0 };
    int rc = layer_scan(l, prefix, plen, max, scan_cb, &s);

    return rc != 0 || s.bad || scan_expect(&s) != nmodel ? 1 : 0;
}

typedef struct reader_arg {
    layer *l;
    uint64_t seed;
    int bad;
} reader_arg;

/* Random gets from one thread; counts mismatches. */
static void *reader(void *p)
{
    reader_arg *a = p;
    uint64_t x = a->seed;

    for (int i = 0; i < 1500; i++) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        const mkey *k = &model[x % nmodel];
        uint64_t max = k->v[(x >> 20) % k->nv].seq + ((x >> 40) % 3) - 1;
        a->bad += check_get(a->l, k, k->key, k->klen, max) != 0;
    }
    return NULL;
}

static int saved_stderr = -1;
static FILE *capture;

/* Start capturing stderr (the layer code logs defects there). */
static void quiet_begin(void)
{
    fflush(stderr);
    capture = tmpfile();
    saved_stderr = dup(2);
    dup2(fileno(capture), 2);
}

/* Stop capturing; returns what was written (malloc'd), echoing FAIL lines. */
static char *quiet_end(void)
{
    long n;
    char *s, *line;

    fflush(stderr);
    dup2(saved_stderr, 2);
    close(saved_stderr);
    n = ftell(capture);
    s = calloc(1, (size_t)n + 1);
    rewind(capture);
    if (fread(s, 1, (size_t)n, capture) != (size_t)n)
        s[0] = '\0';
    fclose(capture);
    for (line = strstr(s, "FAIL "); line; line = strstr(line + 1, "FAIL "))
        fprintf(stderr, "%.*s\n", (int)strcspn(line, "\n"), line);
    return s;
}

/* Recompute the index and footer checksums of the layer in BUF. */
static void fix_crcs(uint8_t *buf, size_t len, uint64_t ioff, uint64_t ilen)
{
    uint8_t *foot = buf + len - LAYER_FOOTER_SIZE;

    if (ioff <= len && ilen <= len - ioff)
        layer_put32(foot + 56, crc32c(0, buf + ioff, ilen));
    layer_put32(foot + 60, crc32c(0, foot, 60));
}

/* Open KEY (already stored) and exercise it; any outcome but a crash or an
 * unexpected code is fine.  Returns the number of bad return codes. */
static int poke(objstore *os, const char *key)
{
    layer *l = NULL;
    int rc = layer_open(os, key, &l), bad = 0;

    if (rc != -EIO && rc != 0)
        return 1;
    if (rc < 0)
        return l != NULL;
    for (size_t i = 0; i < nmodel; i++) {
        int tomb;
        void *val;
        size_t vlen;
        uint64_t seq;
        rc = layer_get(l, model[i].key, model[i].klen, UINT64_MAX, &tomb,
                       &val, &vlen, &seq);
        bad += rc != 0 && rc != 1 && rc != -EIO;
        free(val);
    }
    {
        scan_state s = { (const uint8_t *)"", 0, UINT64_MAX, 0, 0, 0, 0 };
        rc = layer_scan(l, s.prefix, 0, UINT64_MAX, scan_cb, &s);
        bad += rc != 0 && rc != -EIO;
    }
    layer_close(l);
    return bad;
}

/* ---- the key filter ---- */

#define FKEYS 5000

/* Key number N of the filter test ("f" and 8 digits): even N are in its layer. */
static size_t fkey(unsigned n, uint8_t *key)
{
    return (size_t)snprintf((char *)key, 16, "f%08u", n);
}

/* The filter test's layer, rewritten as version 1 (its filter section cut
 * from the index): into *OUT (malloc'd), *OUTLEN. */
static void unfilter(const uint8_t *buf, size_t len, uint8_t **out, size_t *outlen)
{
    const uint8_t *foot = buf + len - LAYER_FOOTER_SIZE;
    uint64_t ioff = layer_get64(foot + 16), ilen = layer_get64(foot + 24);
    uint64_t bits = (uint64_t)FKEYS * LAYER_FILTER_BITS_PER_KEY, flen = 1 + (bits + 7) / 8;
    for (uint64_t v = bits; v; v >>= 7) flen++;      /* the varint */
    *outlen = len - flen;
    *out = malloc(*outlen);
    memcpy(*out, buf, ioff + ilen - flen);
    uint8_t *f = *out + *outlen - LAYER_FOOTER_SIZE;
    memcpy(f, foot, LAYER_FOOTER_SIZE);
    layer_put32(f + 8, LAYER_VERSION_UNFILTERED);
    layer_put64(f + 24, ilen - flen);
    fix_crcs(*out, *outlen, ioff, ilen - flen);
}

/* Layers of FKEYS keys with a filter: every key they hold passes it and is
 * found, about 1% of the keys within their range that they lack pass; the
 * same layer without its filter (version 1) reads the same; a filter
 * lacking keys fails layer_verify; malformed filters fail the open. */
static void test_filter(objstore *os)
{
    layer_writer *w = layer_writer_new();
    uint8_t key[16];
    void *buf;
    size_t len, klen;
    layer *l;
    int bad = 0;

    for (unsigned n = 0; n < 2 * FKEYS; n += 2) {
        klen = fkey(n, key);
        bad += layer_writer_add(w, key, klen, 7, 0, key, klen) != 0;
    }
    CHECK(bad == 0);
    CHECK(layer_writer_finish(w, &buf, &len) == 0);
    layer_writer_free(w);
    CHECK(os_put_if_absent(os, "filter/v2", buf, len) == 0);
    uint8_t *v1;
    size_t v1len;
    unfilter(buf, len, &v1, &v1len);
    CHECK(os_put_if_absent(os, "filter/v1", v1, v1len) == 0);
    free(v1);
    for (int version = 2; version >= 1; version--) {
        uint64_t entries = 0;
        CHECK(layer_verify(os, version == 2 ? "filter/v2" : "filter/v1", &entries) == 0 && entries == FKEYS);
        CHECK(layer_open(os, version == 2 ? "filter/v2" : "filter/v1", &l) == 0);
        if (!l) continue;
        int missed = 0, passed = 0;
        for (unsigned n = 0; n < 2 * FKEYS - 1; n++) {
            int tomb;
            void *val;
            size_t vlen;
            uint64_t seq;
            klen = fkey(n, key);
            int may = layer_may_hold(l, key, klen);
            int found = layer_get(l, key, klen, UINT64_MAX, &tomb, &val, &vlen, &seq);
            if (n % 2 == 0)
                missed += !may || found != 1 || vlen != klen || memcmp(val, key, klen);
            else
                passed += may + (found != 0);
            free(val);
        }
        CHECK(missed == 0);
        if (version == 2)
            CHECK(passed < FKEYS * 3 / 100);      /* 1% expected */
        else
            CHECK(passed == FKEYS - 1);          /* no filter: every key in range may be there */
        printf("key filter, version %d: %d of %d absent keys in range pass\n", version, passed, FKEYS - 1);
        CHECK(!layer_may_hold(l, (const uint8_t *)"e", 1) && !layer_may_hold(l, (const uint8_t *)"g", 1));
        layer_close(l);
    }

    /* damage, checksums recomputed: a filter lacking keys opens (it is
     * well formed) but fails verification; malformed ones fail the open */
    const uint8_t *foot = (const uint8_t *)buf + len - LAYER_FOOTER_SIZE;
    uint64_t ioff = layer_get64(foot + 16), ilen = layer_get64(foot + 24);
    uint64_t fbytes = ((uint64_t)FKEYS * LAYER_FILTER_BITS_PER_KEY + 7) / 8;
    uint8_t *copy = malloc(len);
    uint8_t *hashes = copy + ioff + ilen - fbytes - 1;
    quiet_begin();
    for (int kind = 0; kind < 3; kind++) {
        char okey[32];
        uint64_t entries;
        memcpy(copy, buf, len);
        if (kind == 0) memset(hashes + 1, 0, fbytes);          /* lacks every key */
        else if (kind == 1) *hashes = 0;                       /* no bit positions */
        else *hashes = LAYER_FILTER_HASHES_MAX + 1;
        fix_crcs(copy, len, ioff, ilen);
        snprintf(okey, sizeof okey, "filter/bad%d", kind);
        CHECK(os_put_if_absent(os, okey, copy, len) == 0);
        CHECK(layer_verify(os, okey, &entries) == -EIO);
        int rc = layer_open(os, okey, &l);
        CHECK(kind == 0 ? rc == 0 : rc == -EIO && l == NULL);
        if (rc == 0) layer_close(l);
    }
    char *said = quiet_end();
    CHECK(strstr(said, "key filter lacks a key") != NULL);
    free(said);
    free(copy);
    free(buf);
}

int main(void)
{
    char dir[64], url[128], err[256], okey[64];
    objstore *os = NULL;
    layer *l = NULL;
    void *buf;
    size_t len;
    int seqn = 0;

    harness_tmpdir(dir);
    snprintf(url, sizeof(url), "file://%s", dir);
    CHECK(os_open(url, &os, err, sizeof(err)) == 0);
    if (!os)
        return harness_done();

    /* writer rejects unsorted input */
    {
        layer_writer *w = layer_writer_new();
        CHECK(layer_writer_add(w, (const uint8_t *)"b", 1, 10, 0, "x", 1) == 0);
        CHECK(layer_writer_add(w, (const uint8_t *)"a", 1, 10, 0, "x", 1) == -EINVAL);
        CHECK(layer_writer_add(w, (const uint8_t *)"b", 1, 10, 0, "x", 1) == -EINVAL);
        CHECK(layer_writer_add(w, (const uint8_t *)"b", 1, 11, 0, "x", 1) == -EINVAL);
        CHECK(layer_writer_add(w, (const uint8_t *)"b", 1, 9, 1, NULL, 0) == 0);
        CHECK(layer_writer_add(w, (const uint8_t *)"bb", 2, 99, 0, "", 0) == 0);
        CHECK(layer_writer_finish(w, &buf, &len) == 0);
        CHECK(os_put_if_absent(os, "small/1", buf, len) == 0);
        free(buf);
        /* the writer is reusable and an empty layer is valid */
        CHECK(layer_writer_finish(w, &buf, &len) == 0);
        CHECK(os_put_if_absent(os, "small/empty", buf, len) == 0);
        free(buf);
        layer_writer_free(w);
    }
    CHECK(layer_open(os, "small/1", &l) == 0);
    if (l) {
        int tomb;
        void *val;
        size_t vlen;
        uint64_t seq;
        CHECK(strcmp(layer_name(l), "small/1") == 0);
        CHECK(layer_min_seq(l) == 9 && layer_max_seq(l) == 99);
        CHECK(layer_get(l, (const uint8_t *)"b", 1, 100, &tomb, &val, &vlen,
                        &seq) == 1 && !tomb && seq == 10 && vlen == 1 &&
              memcmp(val, "x", 1) == 0);
        free(val);
        CHECK(layer_get(l, (const uint8_t *)"b", 1, 9, &tomb, &val, &vlen,
                        &seq) == 1 && tomb && seq == 9 && val == NULL);
        CHECK(layer_get(l, (const uint8_t *)"b", 1, 8, &tomb, &val, &vlen,
                        &seq) == 0);
        CHECK(layer_get(l, (const uint8_t *)"bb", 2, 99, &tomb, &val, &vlen,
                        &seq) == 1 && !tomb && vlen == 0 && val != NULL);
        free(val);
        CHECK(layer_get(l, (const uint8_t *)"a", 1, 99, &tomb, &val, &vlen,
                        &seq) == 0);
        CHECK(layer_get(l, (const uint8_t *)"ba", 2, 99, &tomb, &val, &vlen,
                        &seq) == 0);
        CHECK(layer_get(l, (const uint8_t *)"c", 1, 99, &tomb, &val, &vlen,
                        &seq) == 0);
        layer_close(l);
    }
    CHECK(layer_open(os, "small/empty", &l) == 0);
    if (l) {
        int tomb;
        void *val;
        size_t vlen;
        uint64_t seq;
        scan_state s = { (const uint8_t *)"", 0, UINT64_MAX, 0, 0, 0, 0 };
        CHECK(layer_get(l, (const uint8_t *)"b", 1, 100, &tomb, &val, &vlen,
                        &seq) == 0);
        CHECK(layer_scan(l, s.prefix, 0, UINT64_MAX, scan_cb, &s) == 0 &&
              s.calls == 0);
        layer_close(l);
    }
    CHECK(layer_open(os, "no/such/layer", &l) == -ENOENT && l == NULL);

    /* the big round trip */
    model_build(3000, 3000);
    model_write(&buf, &len);
    CHECK(os_put_if_absent(os, "big/1", buf, len) == 0);
    CHECK(layer_open(os, "big/1", &l) == 0);
    if (l) {
        uint64_t mn = UINT64_MAX, mx = 0;
        for (size_t i = 0; i < nmodel; i++)
            for (size_t j = 0; j < model[i].nv; j++) {
                if (model[i].v[j].seq < mn) mn = model[i].v[j].seq;
                if (model[i].v[j].seq > mx) mx = model[i].v[j].seq;
            }
        CHECK(layer_min_seq(l) == mn && layer_max_seq(l) == mx);
        CHECK(layer_size(l) == len);
        CHECK(check_all(l) == 0);
        CHECK(check_all(l) == 0);             /* now from the cache */
        layer_cache_set_limit(0);
        {                                     /* without a cache */
            int bad = 0;
            for (size_t i = 0; i < nmodel; i += 11)
                bad += check_get(l, &model[i], model[i].key, model[i].klen,
                                 model[i].v[model[i].nv - 1].seq) != 0;
            CHECK(bad == 0);
        }

        /* keys that are not there */
        {
            int bad = 0;
            for (int i = 0; i < 2000; i++) {
                uint8_t k[40];
                size_t kl = 1 + rnd() % 30;
                for (size_t j = 0; j < kl; j++)
                    k[j] = (uint8_t)rnd();
                if (i % 2)
                    k[0] = (uint8_t)('a' + rnd() % 4);
                if (model_find(k, kl) < 0)
                    bad += check_get(l, NULL, k, kl, UINT64_MAX) != 0;
            }
            bad += check_get(l, NULL, (const uint8_t *)"", 0, UINT64_MAX) != 0;
            bad += check_get(l, NULL, (const uint8_t *)"zzz", 3, UINT64_MAX) != 0;
            CHECK(bad == 0);
        }

        /* prefix scans */
        layer_cache_set_limit((size_t)256 << 20);
        {
            uint64_t mid = model[nmodel / 3].v[0].seq;
            uint64_t maxes[] = { UINT64_MAX, mid, 1000000, 0 };
            for (size_t m = 0; m < 4; m++) {
                CHECK(check_scan(l, (const uint8_t *)"", 0, maxes[m]) == 0);
                CHECK(check_scan(l, (const uint8_t *)"a", 1, maxes[m]) == 0);
                CHECK(check_scan(l, (const uint8_t *)"c", 1, maxes[m]) == 0);
                CHECK(check_scan(l, (const uint8_t *)"d", 1, maxes[m]) == 0);
                CHECK(check_scan(l, (const uint8_t *)"z", 1, maxes[m]) == 0);
                CHECK(check_scan(l, model[nmodel / 2].key, 2, maxes[m]) == 0);
                CHECK(check_scan(l, model[nmodel / 2].key,
                                 model[nmodel / 2].klen, maxes[m]) == 0);
                CHECK(check_scan(l, model[7].key, model[7].klen, maxes[m]) == 0);
            }
            /* callback's non-zero return stops the scan and is returned */
            scan_state s = { (const uint8_t *)"b", 1, UINT64_MAX, 0, 0, 0, 3 };
            CHECK(layer_scan(l, s.prefix, 1, UINT64_MAX, scan_cb, &s) == 42 &&
                  s.calls == 3 && s.bad == 0);
        }

        /* concurrent readers with a cache small enough to evict constantly */
        layer_cache_set_limit(1024 * 1024);
        {
            enum { NT = 8 };
            pthread_t th[NT];
            reader_arg ra[NT];
            int bad = 0;
            for (int i = 0; i < NT; i++) {
                ra[i] = (reader_arg){ l, 0x9E3779B97F4A7C15ull * (uint64_t)(i + 1), 0 };
                pthread_create(&th[i], NULL, reader, &ra[i]);
            }
            for (int i = 0; i < NT; i++) {
                pthread_join(th[i], NULL);
                bad += ra[i].bad;
            }
            CHECK(bad == 0);
        }
        layer_cache_set_limit((size_t)256 << 20);
        layer_close(l);
    }

    /* a flipped byte inside one block: -EIO there, correct data elsewhere */
    {
        blkinfo bi[4096];
        uint64_t ioff, ilen;
        size_t nb = parse_index(buf, len, bi, 4096, &ioff, &ilen);
        size_t victim = nb / 2;
        uint8_t *copy = malloc(len);
        char *log, want[128];

        CHECK(nb > 10 && nb < 4096);
        memcpy(copy, buf, len);
        copy[bi[victim].off + bi[victim].clen / 2] ^= 0x10;
        CHECK(os_put_if_absent(os, "corrupt/one", copy, len) == 0);
        CHECK(layer_open(os, "corrupt/one", &l) == 0);
        if (l) {
            int badeio = 0, badok = 0, neio = 0;
            quiet_begin();
            for (size_t i = 0; i < nmodel; i++) {
                const mkey *k = &model[i];
                int in = layer_keycmp(k->key, k->klen, bi[victim].first,
                                      bi[victim].firstlen) >= 0 &&
                         layer_keycmp(k->key, k->klen, bi[victim + 1].first,
                                      bi[victim + 1].firstlen) < 0;
                if (in) {
                    int tomb;
                    void *val;
                    size_t vlen;
                    uint64_t seq;
                    int rc = layer_get(l, k->key, k->klen, UINT64_MAX, &tomb,
                                       &val, &vlen, &seq);
                    badeio += rc != -EIO;
                    neio++;
                    free(val);
                } else {
                    badok += check_get(l, k, k->key, k->klen, UINT64_MAX) != 0;
                }
            }
            {
                scan_state s = { (const uint8_t *)"", 0, UINT64_MAX, 0, 0, 0, 0 };
                CHECK(layer_scan(l, s.prefix, 0, UINT64_MAX, scan_cb, &s) == -EIO);
                CHECK(s.bad == 0);    /* everything before the bad block right */
            }
            log = quiet_end();
            snprintf(want, sizeof(want),
                     "lakefs: layer corrupt/one block %zu: checksum mismatch\n",
                     victim);
            CHECK(neio > 0 && badeio == 0 && badok == 0);
            CHECK(strstr(log, want) != NULL);
            free(log);
            layer_close(l);
        }
        /* a flipped byte in the index or footer: the open fails */
        quiet_begin();
        for (uint64_t pos = ioff; pos < len; pos += 1 + (pos - ioff) % 7) {
            int rc;
            memcpy(copy, buf, len);
            copy[pos] ^= (uint8_t)(1u << (pos % 8));
            snprintf(okey, sizeof(okey), "corrupt/idx%d", seqn++);
            os_put_if_absent(os, okey, copy, len);
            rc = layer_open(os, okey, &l);
            CHECK(rc == -EIO && l == NULL);
            layer_close(l);
            os_delete(os, okey);
        }
        free(quiet_end());
        free(copy);
    }
    free(buf);
    model_free();

    /* a small layer, damaged at every byte and truncated at every length */
    value_max = 16;
    model_build(24, 12);
    model_write(&buf, &len);
    {
        uint8_t *copy = malloc(len);
        int bad = 0, badtrunc = 0, opened = 0;
        quiet_begin();
        for (size_t pos = 0; pos < len; pos++) {
            memcpy(copy, buf, len);
            copy[pos] ^= (uint8_t)(1u << (rnd() % 8));
            snprintf(okey, sizeof(okey), "flip/%zu", pos);
            os_put_if_absent(os, okey, copy, len);
            if (layer_open(os, okey, &l) == 0) {
                /* the damage is in the only block: no key may be read */
                opened++;
                for (size_t i = 0; i < nmodel; i++) {
                    int tomb;
                    void *val;
                    size_t vlen;
                    uint64_t seq;
                    bad += layer_get(l, model[i].key, model[i].klen, UINT64_MAX,
                                     &tomb, &val, &vlen, &seq) != -EIO;
                    free(val);
                }
                layer_close(l);
            }
            os_delete(os, okey);
        }
        for (size_t n = 0; n < len; n++) {
            snprintf(okey, sizeof(okey), "trunc/%zu", n);
            os_put_if_absent(os, okey, buf, n);
            badtrunc += layer_open(os, okey, &l) != -EIO || l != NULL;
            os_delete(os, okey);
        }
        free(quiet_end());
        CHECK(bad == 0);
        CHECK(opened > 0);
        CHECK(badtrunc == 0);

        /* random buffers, with and without a plausible footer */
        bad = 0;
        quiet_begin();
        for (int i = 0; i < 400; i++) {
            size_t n = rnd() % 3000;
            uint8_t *r = malloc(n ? n : 1);
            for (size_t j = 0; j < n; j++)
                r[j] = (uint8_t)rnd();
            if (i % 2 && n >= LAYER_FOOTER_SIZE) {
                uint8_t *f = r + n - LAYER_FOOTER_SIZE;
                memcpy(f, LAYER_MAGIC, 8);
                layer_put32(f + 8, LAYER_VERSION);
                layer_put32(f + 12, 0);
                if (i % 4 == 1)
                    layer_put32(f + 60, crc32c(0, f, 60));
            }
            snprintf(okey, sizeof(okey), "rand/%d", i);
            os_put_if_absent(os, okey, r, n);
            bad += layer_open(os, okey, &l) != -EIO || l != NULL;
            os_delete(os, okey);
            free(r);
        }
        free(quiet_end());
        CHECK(bad == 0);

        /* hostile layers: damage with every checksum recomputed, so only
         * the structural checks stand between the bytes and the reader */
        bad = 0;
        quiet_begin();
        for (int i = 0; i < 900; i++) {
            blkinfo bi[8];
            uint64_t ioff, ilen;
            memcpy(copy, buf, len);
            parse_index(copy, len, bi, 8, &ioff, &ilen);
            if (i % 3 == 0) {
                /* the block's compressed bytes; fix its crc in the index */
                for (int k = 0; k < 1 + i % 4; k++)
                    copy[bi[0].off + rnd() % bi[0].clen] ^= (uint8_t)(1 + rnd() % 255);
                layer_put32((uint8_t *)bi[0].crcp,
                            crc32c(0, copy + bi[0].off, bi[0].clen));
            } else if (i % 3 == 1) {
                for (int k = 0; k < 1 + i % 4; k++)
                    copy[ioff + rnd() % ilen] ^= (uint8_t)(1 + rnd() % 255);
            } else {
                /* footer fields: offsets, lengths, counts, seqs */
                copy[len - LAYER_FOOTER_SIZE + 16 + rnd() % 40] ^=
                    (uint8_t)(1 + rnd() % 255);
            }
            fix_crcs(copy, len, layer_get64(copy + len - LAYER_FOOTER_SIZE + 16),
                     layer_get64(copy + len - LAYER_FOOTER_SIZE + 24));
            snprintf(okey, sizeof(okey), "hostile/%d", i);
            os_put_if_absent(os, okey, copy, len);
            bad += poke(os, okey);
            os_delete(os, okey);
        }
        free(quiet_end());
        CHECK(bad == 0);
        free(copy);
    }
    /* the undamaged small layer still reads back exactly */
    CHECK(os_put_if_absent(os, "small/2", buf, len) == 0);
    CHECK(layer_open(os, "small/2", &l) == 0);
    if (l) {
        CHECK(check_all(l) == 0);
        CHECK(check_scan(l, (const uint8_t *)"", 0, UINT64_MAX) == 0);
        layer_close(l);
    }
    free(buf);
    model_free();
    test_filter(os);

    layer_cache_set_limit(0);
    os_close(os);
    harness_rmtree(dir);
    return harness_done();
}

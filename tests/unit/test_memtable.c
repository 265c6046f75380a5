/*
 * test_memtable.c -- the memtable skiplist against a plain reference model.
 *
 * The memtable is where every write lands first and where a flush reads the
 * full version history back from, so it must (1) return the right version
 * of a key at any seq, also between versions, (2) iterate keys in memcmp
 * order with a prefix sorting before its extensions (directory scans and
 * layer writing depend on it), from any start key, and stop when told, and
 * (3) account its size (the flush trigger) and seq range.  Keys are drawn
 * from a tiny alphabet so that shared prefixes and prefix-of relations are
 * frequent; the model keeps every version of every key in a plain array.
 */
#include "harness.h"
#include "memtable.h"

#include <stdint.h>

#define NKEYS 600
#define NOPS 20000
#define KLEN_MAX 12

typedef struct mver {
    uint64_t seq;
    int tomb;
    uint32_t vlen;
    uint64_t vseed;               /* value bytes are fill(vseed, vlen) */
} mver;

typedef struct mkey {
    uint8_t key[KLEN_MAX];
    size_t klen;
    int in_table;                 /* 1 once put at least once */
    mver *v;                      /* oldest first */
    size_t nv, cap;
} mkey;

static mkey keys[NKEYS];
static uint64_t rng = 0x2545f4914f6cdd1dull;

/* xorshift64: deterministic random numbers. */
static uint64_t rnd(void)
{
    rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
    return rng;
}

/* LEN bytes derived from SEED into BUF. */
static void fill(uint8_t *buf, size_t len, uint64_t seed)
{
    uint64_t x = seed | 1;
    for (size_t i = 0; i < len; i++) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        buf[i] = (uint8_t)(x >> 24);
    }
}

/* Reference order: memcmp, a prefix before its extensions. */
static int ref_cmp(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    for (size_t i = 0; i < alen && i < blen; i++)
        if (a[i] != b[i]) return a[i] < b[i] ? -1 : 1;
    return alen == blen ? 0 : alen < blen ? -1 : 1;
}

static int mkey_cmp(const void *a, const void *b)
{
    const mkey *x = a, *y = b;
    return ref_cmp(x->key, x->klen, y->key, y->klen);
}

/* Fill keys[] with NKEYS distinct keys over the alphabet {00, 01, 61, ff}. */
static void make_keys(void)
{
    static const uint8_t alpha[4] = { 0x00, 0x01, 0x61, 0xff };
    size_t n = 0;
    while (n < NKEYS) {
        mkey k = {0};
        k.klen = 1 + rnd() % KLEN_MAX;
        for (size_t i = 0; i < k.klen; i++) k.key[i] = alpha[rnd() % 4];
        int dup = 0;
        for (size_t i = 0; i < n && !dup; i++)
            dup = ref_cmp(keys[i].key, keys[i].klen, k.key, k.klen) == 0;
        if (!dup) keys[n++] = k;
    }
    qsort(keys, NKEYS, sizeof keys[0], mkey_cmp);   /* model index = key order */
}

/* Record a version in the model. */
static void model_add(mkey *k, mver v)
{
    if (k->nv == k->cap) {
        k->cap = k->cap ? 2 * k->cap : 4;
        k->v = realloc(k->v, k->cap * sizeof *k->v);
        if (!k->v) abort();
    }
    k->v[k->nv++] = v;
    k->in_table = 1;
}

/* The model's newest version of K with seq <= MAX, or NULL. */
static const mver *model_get(const mkey *k, uint64_t max)
{
    for (size_t i = k->nv; i-- > 0;)
        if (k->v[i].seq <= max) return &k->v[i];
    return NULL;
}

/* Does memtable version V match model version M (NULL: none)? */
static int version_matches(const mt_version *v, const mver *m)
{
    if (!v || !m) return !v && !m;
    if (v->seq != m->seq || v->tomb != m->tomb) return 0;
    if (m->tomb) return 1;
    if (v->vlen != m->vlen) return 0;
    uint8_t *want = malloc(m->vlen + 1);
    fill(want, m->vlen, m->vseed);
    int ok = memcmp(v->val, want, m->vlen) == 0;
    free(want);
    return ok;
}

/* A random value length: often 0 or a full page, else small. */
static uint32_t rand_vlen(void)
{
    switch (rnd() % 8) {
    case 0: return 0;
    case 1: return 8192;
    default: return (uint32_t)(rnd() % 300);
    }
}

static void test_empty(void)
{
    memtable *mt = mt_new();
    CHECK(mt != NULL);
    CHECK(mt_bytes(mt) == 0);
    CHECK(mt_min_seq(mt) == 0 && mt_max_seq(mt) == 0);
    CHECK(mt_get(mt, (const uint8_t *)"a", 1, UINT64_MAX) == NULL);
    mt_free(mt);
}

/* Random puts and tombstones with increasing seqs; returns the seq range. */
static void fill_table(memtable *mt, uint64_t *first, uint64_t *last)
{
    uint64_t seq = 10;
    size_t prev_bytes = mt_bytes(mt), bad_growth = 0, bad_range = 0, bad_put = 0;
    *first = seq;
    for (int i = 0; i < NOPS; i++) {
        /* a skewed pick so some keys get many versions, some stay absent */
        mkey *k = &keys[rnd() % 4 ? rnd() % (NKEYS / 8) * 7 % NKEYS : rnd() % NKEYS];
        if (k == &keys[NKEYS / 2]) continue;          /* one key never put */
        mver v = { seq, rnd() % 5 == 0, 0, rnd() };
        int new_key = !k->in_table;
        v.vlen = v.tomb ? 0 : rand_vlen();
        uint8_t *val = malloc(v.vlen + 1);
        fill(val, v.vlen, v.vseed);
        /* tombstones pass a bogus value that must be ignored */
        if (mt_put(mt, k->key, k->klen, seq, v.tomb, val, v.tomb ? 50 : v.vlen) != 0) bad_put++;
        free(val);
        model_add(k, v);
        if (mt_bytes(mt) <= prev_bytes ||
            mt_bytes(mt) - prev_bytes < v.vlen + (new_key ? k->klen : 0)) bad_growth++;
        prev_bytes = mt_bytes(mt);
        if (mt_min_seq(mt) != *first || mt_max_seq(mt) != seq) bad_range++;
        *last = seq;
        if (rnd() % 16)                              /* else the same seq again */
            seq += 1 + rnd() % 3;                    /* gaps: reads between versions */
    }
    CHECK(bad_put == 0);
    CHECK(bad_growth == 0);
    CHECK(bad_range == 0);
}

/* Newest version at UINT64_MAX and at random seqs, incl. between versions. */
static void check_gets(const memtable *mt, uint64_t first, uint64_t last)
{
    size_t bad = 0, checked_between = 0;
    for (size_t i = 0; i < NKEYS; i++) {
        mkey *k = &keys[i];
        if (!version_matches(mt_get(mt, k->key, k->klen, UINT64_MAX), model_get(k, UINT64_MAX))) bad++;
        for (int r = 0; r < 20; r++) {
            uint64_t s = first - 2 + rnd() % (last - first + 4);
            if (!version_matches(mt_get(mt, k->key, k->klen, s), model_get(k, s))) bad++;
        }
        /* exactly at each version's seq and one below it */
        for (size_t j = 0; j < k->nv; j++) {
            if (!version_matches(mt_get(mt, k->key, k->klen, k->v[j].seq), model_get(k, k->v[j].seq))) bad++;
            if (!version_matches(mt_get(mt, k->key, k->klen, k->v[j].seq - 1), model_get(k, k->v[j].seq - 1))) bad++;
            checked_between++;
        }
    }
    CHECK(bad == 0);
    CHECK(checked_between > 1000);
    CHECK(keys[NKEYS / 2].nv == 0);
    CHECK(mt_get(mt, keys[NKEYS / 2].key, keys[NKEYS / 2].klen, UINT64_MAX) == NULL);
}

/* Each version chain lists every model version, newest first. */
static void check_chains(const memtable *mt)
{
    size_t bad = 0;
    for (size_t i = 0; i < NKEYS; i++) {
        mkey *k = &keys[i];
        const mt_version *v = mt_get(mt, k->key, k->klen, UINT64_MAX);
        for (size_t j = k->nv; j-- > 0; v = v ? v->older : NULL)
            if (!version_matches(v, &k->v[j])) bad++;
        if (v) bad++;                                 /* longer than the model */
    }
    CHECK(bad == 0);
}

typedef struct visit {
    size_t next;                  /* model index expected next */
    size_t calls, stop_after;     /* stop_after 0: never stop */
    size_t bad;
} visit;

/* Index of the first model key present in the table at or after IDX. */
static size_t next_present(size_t idx)
{
    while (idx < NKEYS && !keys[idx].in_table) idx++;
    return idx;
}

static int visit_fn(void *arg, const uint8_t *key, size_t klen, const mt_version *newest)
{
    visit *vs = arg;
    vs->next = next_present(vs->next);
    if (vs->next >= NKEYS) { vs->bad++; return -1; }
    mkey *k = &keys[vs->next++];
    if (ref_cmp(key, klen, k->key, k->klen) != 0) vs->bad++;
    else if (!version_matches(newest, model_get(k, UINT64_MAX))) vs->bad++;
    vs->calls++;
    return vs->stop_after && vs->calls == vs->stop_after ? 77 : 0;
}

/* First model index whose key is >= FROM. */
static size_t lower_bound(const uint8_t *from, size_t flen)
{
    size_t i = 0;
    while (i < NKEYS && ref_cmp(keys[i].key, keys[i].klen, from, flen) < 0) i++;
    return i;
}

/* Full iteration, iteration from present and absent start keys, early stop. */
static void check_iterate(const memtable *mt)
{
    visit vs = {0};
    CHECK(mt_iterate(mt, NULL, 0, visit_fn, &vs) == 0);
    CHECK(vs.bad == 0);
    CHECK(next_present(vs.next) == NKEYS);            /* visited all of them */
    size_t present = 0;
    for (size_t i = 0; i < NKEYS; i++) present += keys[i].in_table;
    CHECK(vs.calls == present);

    size_t bad = 0;
    for (int r = 0; r < 200; r++) {
        uint8_t from[KLEN_MAX + 1];
        size_t flen;
        if (r % 2) {                                  /* an existing key */
            mkey *k = &keys[rnd() % NKEYS];
            memcpy(from, k->key, k->klen); flen = k->klen;
        } else {                                      /* anything, e.g. 0x61 0x80 */
            flen = 1 + rnd() % (KLEN_MAX + 1);
            for (size_t i = 0; i < flen; i++) from[i] = (uint8_t)rnd();
        }
        visit v2 = { .next = lower_bound(from, flen) };
        size_t want = 0;
        for (size_t i = v2.next; i < NKEYS; i++) want += keys[i].in_table;
        if (mt_iterate(mt, from, flen, visit_fn, &v2) != 0 || v2.bad || v2.calls != want) bad++;
    }
    CHECK(bad == 0);

    visit v3 = { .stop_after = 5 };
    CHECK(mt_iterate(mt, NULL, 0, visit_fn, &v3) == 77);
    CHECK(v3.calls == 5 && v3.bad == 0);
}

/* The same key put twice at the same seq: the later put is the newest. */
static void test_same_seq(void)
{
    memtable *mt = mt_new();
    CHECK(mt_put(mt, (const uint8_t *)"k", 1, 5, 0, "one", 3) == 0);
    CHECK(mt_put(mt, (const uint8_t *)"k", 1, 5, 0, "two", 3) == 0);
    const mt_version *v = mt_get(mt, (const uint8_t *)"k", 1, 5);
    CHECK(v && v->vlen == 3 && memcmp(v->val, "two", 3) == 0);
    CHECK(mt_get(mt, (const uint8_t *)"k", 1, 4) == NULL);
    CHECK(mt_min_seq(mt) == 5 && mt_max_seq(mt) == 5);
    mt_free(mt);
}

/* Seqs only rise per key: another key may bring a lower one. */
static void test_seq_range(void)
{
    memtable *mt = mt_new();
    CHECK(mt_put(mt, (const uint8_t *)"a", 1, 10, 0, "x", 1) == 0);
    CHECK(mt_put(mt, (const uint8_t *)"b", 1, 3, 1, NULL, 0) == 0);
    CHECK(mt_put(mt, (const uint8_t *)"c", 1, 7, 0, "", 0) == 0);
    CHECK(mt_min_seq(mt) == 3 && mt_max_seq(mt) == 10);
    const mt_version *v = mt_get(mt, (const uint8_t *)"b", 1, UINT64_MAX);
    CHECK(v && v->tomb && v->seq == 3);
    v = mt_get(mt, (const uint8_t *)"c", 1, 7);
    CHECK(v && !v->tomb && v->vlen == 0);
    mt_free(mt);
}

/* mt_keep_latest: a key written again keeps one version, its bytes
 * replace the old ones, a deletion stays a deletion */
static void test_keep_latest(void)
{
    memtable *mt = mt_new(), *full = mt_new();
    char val[1000];
    mt_keep_latest(mt);
    for (uint64_t seq = 1; seq <= 100; seq++) {
        memset(val, (int)seq, sizeof val);
        CHECK(mt_put(mt, (const uint8_t *)"k", 1, seq, 0, val, sizeof val) == 0);
        CHECK(mt_put(full, (const uint8_t *)"k", 1, seq, 0, val, sizeof val) == 0);
    }
    const mt_version *v = mt_get(mt, (const uint8_t *)"k", 1, UINT64_MAX);
    CHECK(v && v->seq == 100 && !v->older && v->val[0] == 100 && v->vlen == sizeof val);
    CHECK(mt_get(mt, (const uint8_t *)"k", 1, 99) == NULL);       /* the history is gone */
    CHECK(mt_get(full, (const uint8_t *)"k", 1, 99) != NULL);     /* (kept without the flag) */
    CHECK(mt_bytes(mt) < 2 * sizeof val && mt_bytes(full) > 100 * sizeof val);
    size_t one = mt_bytes(mt);
    CHECK(mt_put(mt, (const uint8_t *)"k", 1, 101, 1, NULL, 0) == 0);
    v = mt_get(mt, (const uint8_t *)"k", 1, UINT64_MAX);
    CHECK(v && v->tomb && !v->older && v->vlen == 0 && mt_bytes(mt) == one);   /* in place */
    /* a value past the old one's room takes new bytes; shorter ones fit again */
    char big[3000];
    memset(big, 7, sizeof big);
    CHECK(mt_put(mt, (const uint8_t *)"k", 1, 102, 0, big, sizeof big) == 0);
    CHECK(mt_bytes(mt) >= one + sizeof big);
    one = mt_bytes(mt);
    CHECK(mt_put(mt, (const uint8_t *)"k", 1, 103, 0, val, 10) == 0);
    v = mt_get(mt, (const uint8_t *)"k", 1, UINT64_MAX);
    CHECK(v && v->seq == 103 && !v->tomb && v->vlen == 10 && v->val[9] == 100 && mt_bytes(mt) == one);
    mt_free(mt);
    mt_free(full);
}

/* Values past a 2 MiB chunk, and chunks reused across memtables: every
 * value reads back after many tables were filled and freed. */
static void test_chunks(void)
{
    size_t huge = (size_t)5 << 20;
    uint8_t *val = malloc(huge);
    CHECK(val != NULL);
    for (size_t i = 0; i < huge; i++) val[i] = (uint8_t)(i * 7 + i / 4096);
    for (int round = 0; round < 6; round++) {
        memtable *mt = mt_new();
        mt_keep_latest(mt);
        char key[32];
        size_t bad = 0;
        /* ~12 MiB of pages, then one value bigger than a chunk between them */
        for (int i = 0; i < 1500; i++) {
            snprintf(key, sizeof key, "p%06d", i);
            CHECK(mt_put(mt, (const uint8_t *)key, strlen(key), (uint64_t)i + 1, 0, val + i, 8192) == 0);
            if (i == 700) CHECK(mt_put(mt, (const uint8_t *)"huge", 4, 5000, 0, val, huge) == 0);
        }
        CHECK(mt_bytes(mt) > huge + 1500 * 8192);
        for (int i = 0; i < 1500; i++) {
            snprintf(key, sizeof key, "p%06d", i);
            const mt_version *v = mt_get(mt, (const uint8_t *)key, strlen(key), UINT64_MAX);
            if (!v || v->vlen != 8192 || memcmp(v->val, val + i, 8192)) bad++;
        }
        const mt_version *v = mt_get(mt, (const uint8_t *)"huge", 4, UINT64_MAX);
        CHECK(v && v->vlen == huge && memcmp(v->val, val, huge) == 0);
        CHECK(bad == 0);
        mt_free(mt);
    }
    free(val);
}

int main(void)
{
    test_empty();
    test_keep_latest();
    test_chunks();
    test_seq_range();
    test_same_seq();
    make_keys();
    memtable *mt = mt_new();
    uint64_t first = 0, last = 0;
    fill_table(mt, &first, &last);
    check_gets(mt, first, last);
    check_chains(mt);
    check_iterate(mt);
    mt_free(mt);
    for (size_t i = 0; i < NKEYS; i++) free(keys[i].v);
    return harness_done();
}

/*
 * test_compact.c -- compaction: the policy (which runs merge, a parent's
 * layers never, and the bound on runs over thousands of random flushes),
 * compact_bound and compact_flush_fits on hand-built manifests, the
 * chunked merge against a model (newest version of every key, deletions
 * kept or dropped, pieces in ascending disjoint key ranges with tiny
 * chunks and pieces, cancellation), a store compacting while it is
 * written: every key right, before and after reopening, and its own runs
 * within the bound once store_compact returns; and a store with tiny
 * memtables read from another thread while written: no read consults more
 * layers than the bound of the layer set it reads.
 */
#include "harness.h"
#include "compact.h"
#include "layer.h"
#include "layer_format.h"
#include "store.h"
#include "harness_repo.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>

static uint64_t rng = 0x9E3779B97F4A7C15ull;

/* xorshift64. */
static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

#define MIB (1024ull * 1024)

/* ---- policy ---- */

/* A manifest of layers "OWNER/N" with sizes SIZES (bytes) and seq ranges
 * SEQ[i]..SEQ[i] (or the same range as the layer below where SAME[i]). */
static void mk(manifest *m, size_t n, const char *const *owner, const uint64_t *sizes, const int *same)
{
    char key[64];
    memset(m, 0, sizeof *m);
    uint64_t seq = 0;
    for (size_t i = 0; i < n; i++) {
        if (!same || !same[i]) seq += 10;
        snprintf(key, sizeof key, "branches/%s/layers/%zu", owner[i], i);
        CHECK(manifest_add_layer(m, key, seq - 9, seq, sizes[i]) == 0);
    }
}

/* 1 if compact_pick on M picks exactly FIRST, COUNT (COUNT 0: nothing). */
static int picks(const manifest *m, size_t first, size_t count)
{
    size_t f = 99, c = 0;
    int due = compact_pick(m, "branches/me/layers/", &f, &c);
    if (count == 0) return due == 0;
    return due == 1 && f == first && c == count;
}

static void test_pick(void)
{
    manifest m;
    const char *me[] = { "me", "me", "me", "me", "me" };
    const char *forked[] = { "parent", "me", "me", "me" };
    uint64_t s1[] = { 100 * MIB, 1 * MIB };
    mk(&m, 2, me, s1, NULL);
    CHECK(picks(&m, 0, 0));                  /* 100 MiB > half the floor of the newer one */
    manifest_free(&m);
    uint64_t s2[] = { 1 * MIB, 1 * MIB, 1 * MIB };
    mk(&m, 2, me, s2, NULL);
    CHECK(picks(&m, 0, 0));                  /* two under the floor: 1 > 1/2 */
    manifest_free(&m);
    mk(&m, 3, me, s2, NULL);
    CHECK(picks(&m, 0, 3));                  /* a third: 1 <= 2/2, all */
    manifest_free(&m);
    uint64_t s3[] = { 64 * MIB, 16 * MIB, 16 * MIB, 16 * MIB };
    mk(&m, 4, me, s3, NULL);
    CHECK(picks(&m, 1, 3));                  /* 16 <= 32/2, but 64 > 48/2: the base stays */
    manifest_free(&m);
    uint64_t s4[] = { 24 * MIB, 16 * MIB, 16 * MIB, 16 * MIB };
    mk(&m, 4, me, s4, NULL);
    CHECK(picks(&m, 0, 4));                  /* 24 <= 48/2: the base too */
    manifest_free(&m);
    uint64_t s5[] = { 25 * MIB, 16 * MIB, 16 * MIB, 16 * MIB };
    mk(&m, 4, me, s5, NULL);
    CHECK(picks(&m, 1, 3));                  /* 25 > 48/2 */
    manifest_free(&m);
    uint64_t s2f[] = { 1 * MIB, 1 * MIB, 1 * MIB, 1 * MIB };
    mk(&m, 4, forked, s2f, NULL);
    CHECK(picks(&m, 1, 3));                  /* never the parent's layer, due by weight as it is */
    manifest_free(&m);
    const char *one_own[] = { "parent", "parent", "me" };
    mk(&m, 3, one_own, s2, NULL);
    CHECK(picks(&m, 0, 0));                  /* a single own run: nothing */
    manifest_free(&m);
    /* pieces of one merge (same seq range) are one run of 40 MiB */
    uint64_t s6[] = { 20 * MIB, 20 * MIB, 30 * MIB };
    int same6[] = { 0, 1, 0 };
    mk(&m, 3, me, s6, same6);
    CHECK(picks(&m, 0, 0));                  /* 40 > 30/2 */
    manifest_free(&m);
    uint64_t s7[] = { 7 * MIB, 7 * MIB, 10 * MIB, 10 * MIB, 10 * MIB };
    int same7[] = { 0, 1, 0, 0, 0 };
    mk(&m, 5, me, s7, same7);
    CHECK(picks(&m, 0, 5));                  /* 14 <= 30/2: from the pieces on */
    manifest_free(&m);
    /* a run made of pieces is never split */
    uint64_t s8[] = { 200 * MIB, 10 * MIB, 10 * MIB, 30 * MIB, 30 * MIB };
    int same8[] = { 0, 0, 1, 0, 0 };
    mk(&m, 5, me, s8, same8);
    CHECK(picks(&m, 1, 4));
    manifest_free(&m);
    CHECK(picks(&(manifest){0}, 0, 0));
}

/* Random flushes with the policy applied after each: with nothing due, the
 * runs are within compact_bound less the lag at every step; prints the
 * write amplification. */
static void test_pick_bound(void)
{
    manifest m = {0};
    char key[64];
    uint64_t seq = 0, flushed = 0, merged = 0, worst = 0;
    int bad = 0;
    for (int step = 0; step < 3000; step++) {
        uint64_t size = 1 + rnd() % (rnd() % 4 ? 64 * MIB : 64 * 1024);  /* big and tiny flushes */
        seq++;
        snprintf(key, sizeof key, "branches/me/layers/f%d", step);
        CHECK(manifest_add_layer(&m, key, seq, seq, size) == 0);
        flushed += size;
        size_t first, count;
        while (compact_pick(&m, "branches/me/layers/", &first, &count)) {
            uint64_t sum = 0, lo = UINT64_MAX, hi = 0;
            for (size_t i = first; i < first + count; i++) {
                sum += m.layers[i].size;
                if (m.layers[i].min_seq < lo) lo = m.layers[i].min_seq;
                if (m.layers[i].max_seq > hi) hi = m.layers[i].max_seq;
            }
            merged += sum;
            /* rewrites shrink the result: 60-100% of the inputs, in pieces of 64 MiB */
            uint64_t out = sum * (60 + rnd() % 41) / 100, npieces = out / (64 * MIB) + 1;
            manifest next = {0};
            for (size_t i = 0; i < first; i++)
                CHECK(manifest_add_layer(&next, m.layers[i].key, m.layers[i].min_seq, m.layers[i].max_seq,
                                         m.layers[i].size) == 0);
            for (uint64_t p = 0; p < npieces; p++) {
                snprintf(key, sizeof key, "branches/me/layers/m%d-%" PRIu64, step, p);
                CHECK(manifest_add_layer(&next, key, lo, hi, out / npieces) == 0);
            }
            manifest_free(&m);
            m = next;
        }
        size_t runs = 0;
        for (size_t i = 0; i < m.nlayers; i++)
            if (i == 0 || m.layers[i].min_seq != m.layers[i - 1].min_seq) runs++;
        if (runs + COMPACT_LAG_RUNS > compact_bound(&m, "branches/me/layers/")) bad++;
        if (runs > worst) worst = runs;
    }
    CHECK(bad == 0);
    printf("3000 flushes, %.1f GiB: at most %" PRIu64 " runs, write amplification %.2f\n",
           (double)flushed / (1024.0 * MIB), worst, (double)(flushed + merged) / (double)flushed);
    manifest_free(&m);
}

/* compact_bound by hand: the parent's runs (the pieces of a merge count
 * once) + 1 + floor(log1.5(own bytes / floor + 2)) + the lag;
 * compact_flush_fits up to that; and runs that need the + 2 inside the log. */
static void test_bound(void)
{
    manifest m;
    const char *owners[] = { "parent", "parent", "parent", "me", "me", "me", "me", "me", "me", "me", "me",
                             "me", "me", "me", "me", "me", "me" };
    /* the parent: a run of two pieces and a flushed layer; own: 2.3, 1.1, then 0.1 MiB runs */
    uint64_t sizes[] = { 40 * MIB, 30 * MIB, 5 * MIB, 23 * MIB / 10, 11 * MIB / 10, MIB / 10, MIB / 10,
                         MIB / 10, MIB / 10, MIB / 10, MIB / 10, MIB / 10, MIB / 10, MIB / 10, MIB / 10,
                         MIB / 10, MIB / 10 };
    int same[17] = { 0, 1 };
    const char *me = "branches/me/layers/";
    mk(&m, 6, owners, sizes, same);
    /* 2 x 1.1 > the floor, 2 x 2.3 > 2.1: three own runs and nothing due, for
     * 3.5 MiB: 1 + floor(log1.5(3.5 + 2)) = 5 (1.5^4 = 5.06 < 5.5) */
    CHECK(picks(&m, 0, 0));
    CHECK(compact_bound(&m, me) == 2 + 5 + COMPACT_LAG_RUNS);
    CHECK(compact_flush_fits(&m, me));
    manifest_free(&m);
    /* 4 + LAG own runs (3.8-4.4 MiB, bound 5): one more still fits */
    _Static_assert(3 + 5 + COMPACT_LAG_RUNS <= 17, "the test tree has room for the lag");
    mk(&m, 3 + 4 + COMPACT_LAG_RUNS, owners, sizes, same);
    CHECK(compact_bound(&m, me) == 2 + 5 + COMPACT_LAG_RUNS);
    CHECK(compact_flush_fits(&m, me));
    manifest_free(&m);
    mk(&m, 3 + 5 + COMPACT_LAG_RUNS, owners, sizes, same);   /* 5 + LAG own runs: one more does not */
    CHECK(compact_bound(&m, me) == 2 + 5 + COMPACT_LAG_RUNS);
    CHECK(!compact_flush_fits(&m, me));
    manifest_free(&m);
    mk(&m, 3, owners, sizes, same);          /* a fork that wrote nothing: 1 + floor(log1.5(2)) = 2 */
    CHECK(compact_bound(&m, me) == 2 + 2 + COMPACT_LAG_RUNS);
    manifest_free(&m);
    /* runs of 0.1, 0.1 (two floors: 1 > 1/2), 1.01 (2.02 > 2) and 1.51 MiB
     * (3.02 > 3.01), newest first: four with nothing due for 2.72 MiB, where
     * 1 + floor(log1.5(2.72)) would allow 3 */
    const char *four[] = { "me", "me", "me", "me" };
    uint64_t tight[] = { 151 * MIB / 100, 101 * MIB / 100, MIB / 10, MIB / 10 };
    mk(&m, 4, four, tight, NULL);
    CHECK(picks(&m, 0, 0));
    CHECK(compact_bound(&m, me) == 4 + COMPACT_LAG_RUNS);
    manifest_free(&m);
    const char *own[] = { "me", "me" };
    uint64_t gib[] = { 1024 * MIB - 1, 1 };  /* 1 GiB: 1 + floor(log1.5(1026)) = 18 */
    mk(&m, 2, own, gib, NULL);
    CHECK(compact_bound(&m, me) == 18 + COMPACT_LAG_RUNS);
    manifest_free(&m);
}

/* ---- merge ---- */

#define NKEYS 2000

typedef struct mver {
    int present;                  /* some input has the key */
    int tomb;
    uint64_t seq;
    size_t vlen;
    uint8_t val[3000];
} mver;

static mver newest[NKEYS];        /* the model: the newest version of each key */

/* Key I: a kind byte, the index big-endian, and a tail making some long. */
static size_t key_of(size_t i, uint8_t *k)
{
    k[0] = 3;
    for (int b = 0; b < 8; b++) k[1 + b] = (uint8_t)(i >> (56 - 8 * b));
    size_t len = 9 + (i % 7 == 0 ? 100 : 0);
    memset(k + 9, 'x', len - 9);
    return len;
}

static objstore *mos;
static int uploads;

/* Upload callback: a numbered object. */
static int upload(void *arg, const void *buf, size_t len, uint64_t min_seq, uint64_t max_seq, char **key)
{
    (void)arg; (void)min_seq; (void)max_seq;
    char k[64];
    snprintf(k, sizeof k, "merge/%06d.layer", uploads++);
    int rc = os_put_if_absent(mos, k, buf, len);
    if (!rc && !(*key = strdup(k))) rc = -ENOMEM;
    return rc;
}

/* Build N input layers over the model's keys (fresh model). */
static void build_inputs(layer **in, size_t n)
{
    memset(newest, 0, sizeof newest);
    uint64_t seq = 0;
    for (size_t l = 0; l < n; l++) {
        layer_writer *w = layer_writer_new();
        uint8_t k[KEY_MAX], val[3000];
        size_t density = 1 + rnd() % 4;   /* some inputs sparse, some dense */
        for (size_t i = 0; i < NKEYS; i++) {
            if (rnd() % 4 >= density) continue;
            size_t kl = key_of(i, k), vl = rnd() % 3 ? rnd() % 3000 : 0;
            int tomb = rnd() % 6 == 0;
            for (size_t b = 0; b < vl; b++) val[b] = (uint8_t)rnd();
            seq++;
            CHECK(layer_writer_add(w, k, kl, seq, tomb, val, vl) == 0);
            newest[i] = (mver){ .present = 1, .tomb = tomb, .seq = seq, .vlen = tomb ? 0 : vl };
            if (!tomb) memcpy(newest[i].val, val, vl);
        }
        void *buf;
        size_t len;
        CHECK(layer_writer_finish(w, &buf, &len) == 0);
        layer_writer_free(w);
        char *key = NULL;
        CHECK(upload(NULL, buf, len, 0, 0, &key) == 0);
        CHECK(layer_open_uploaded(mos, key, buf, len, &in[l]) == 0);
        free(buf);
        free(key);
    }
}

typedef struct seen {
    size_t count, bad, order_bad;
    uint8_t last[KEY_MAX];
    size_t lastlen;
    int have_last;
    int drop;
} seen;

/* Check one merged version against the model. */
static int check_version(void *arg, const uint8_t *key, size_t klen, uint64_t seq, int tomb, const void *val,
                         size_t vlen)
{
    seen *s = arg;
    if (s->have_last && layer_keycmp(s->last, s->lastlen, key, klen) >= 0) s->order_bad++;
    memcpy(s->last, key, klen);
    s->lastlen = klen;
    s->have_last = 1;
    uint64_t i = 0;
    for (int b = 0; b < 8; b++) i = (i << 8) | key[1 + b];
    uint8_t k[KEY_MAX];
    if (i >= NKEYS || key_of(i, k) != klen || memcmp(k, key, klen)) { s->bad++; return 0; }
    const mver *m = &newest[i];
    if (!m->present || m->seq != seq || m->tomb != tomb || (tomb && s->drop) || m->vlen != vlen ||
        (vlen && memcmp(m->val, val, vlen)))
        s->bad++;
    s->count++;
    return 0;
}

/* compact_merge's GO for the cancellation case: counts its calls, and
 * answers stop at call GO_STOP_AT (0: never). */
static int go_calls, go_stop_at;
static int go_count(void *arg)
{
    (void)arg;
    return ++go_calls == go_stop_at;
}

/* Merge N random inputs with the given piece and chunk sizes and check
 * every key of the result. */
static void merge_case(size_t n, int drop, size_t piece, size_t chunk)
{
    layer *in[8];
    build_inputs(in, n);
    compact_piece *out = NULL;
    size_t nout = 0;
    CHECK(compact_merge(mos, in, n, drop, piece, chunk, upload, NULL, NULL, &out, &nout) == 0);
    seen s = { .drop = drop };
    uint64_t lo = UINT64_MAX, hi = 0;
    for (size_t i = 0; i < n; i++) {
        if (layer_min_seq(in[i]) < lo) lo = layer_min_seq(in[i]);
        if (layer_max_seq(in[i]) > hi) hi = layer_max_seq(in[i]);
    }
    int seqs_ok = 1;
    for (size_t p = 0; p < nout; p++) {
        CHECK(layer_scan(out[p].l, NULL, 0, UINT64_MAX, check_version, &s) == 0);
        if (layer_min_seq(out[p].l) < lo || layer_max_seq(out[p].l) > hi || out[p].size == 0) seqs_ok = 0;
        if (out[p].min_seq != lo || out[p].max_seq != hi) seqs_ok = 0;   /* one run: the merge's range */
    }
    size_t want = 0;
    for (size_t i = 0; i < NKEYS; i++) want += newest[i].present && !(drop && newest[i].tomb);
    CHECK(s.bad == 0 && s.order_bad == 0);
    CHECK(s.count == want);
    CHECK(seqs_ok);
    if (piece < 1024 * 1024) CHECK(nout > 3);            /* tiny pieces: many of them */
    else CHECK(nout == 1);
    printf("merge of %zu layers (piece %zu, chunk %zu, drop %d): %zu keys in %zu pieces\n", n, piece, chunk,
           drop, s.count, nout);
    compact_pieces_free(out, nout);
    for (size_t i = 0; i < n; i++) layer_close(in[i]);
}

static void test_merge(void)
{
    char root[64], repo[128], url[160], err[256];
    harness_repo_dirs(root, repo, url);
    CHECK(os_open(url, &mos, err, sizeof err) == 0);
    merge_case(2, 0, COMPACT_PIECE_BYTES, COMPACT_CHUNK_BYTES);
    merge_case(5, 1, COMPACT_PIECE_BYTES, COMPACT_CHUNK_BYTES);
    merge_case(5, 0, 64 * 1024, 16 * 1024);
    merge_case(8, 1, 100 * 1024, 3000);                   /* chunks smaller than one value */
    merge_case(1, 1, 64 * 1024, 1);

    /* GO is asked before every chunk; its first non-zero answer abandons the merge */
    layer *in[3];
    build_inputs(in, 3);
    compact_piece *out = NULL;
    size_t nout = 0;
    go_calls = 0;
    go_stop_at = 0;
    CHECK(compact_merge(mos, in, 3, 0, 4096, 4096, upload, NULL, go_count, &out, &nout) == 0);
    CHECK(go_calls > 3);          /* chunks of 4 KiB out of inputs much larger */
    compact_pieces_free(out, nout);
    out = NULL;
    int chunks = go_calls;
    go_calls = 0;
    go_stop_at = 1;
    CHECK(compact_merge(mos, in, 3, 0, 4096, 4096, upload, NULL, go_count, &out, &nout) == -ECANCELED);
    CHECK(out == NULL && go_calls == 1);
    go_calls = 0;
    go_stop_at = chunks;          /* the last chunk's ask: nothing merged is returned */
    CHECK(compact_merge(mos, in, 3, 0, 4096, 4096, upload, NULL, go_count, &out, &nout) == -ECANCELED);
    CHECK(out == NULL && go_calls == chunks);
    for (size_t i = 0; i < 3; i++) layer_close(in[i]);
    os_close(mos);
    harness_rmtree(root);
}

/* ---- a store compacting while it is written ---- */

#define SKEYS 400

static uint8_t sval[SKEYS][2048];
static size_t slen[SKEYS];
static int sdead[SKEYS];

/* Every key of ST equals the model. */
static int store_matches(store *st)
{
    uint8_t buf[4096];
    for (size_t i = 0; i < SKEYS; i++) {
        skey k;
        key_page(&k, 7, i);
        size_t vlen = 0;
        int rc = store_get(st, &k, buf, sizeof buf, &vlen);
        if (sdead[i] ? rc != -ENOENT : rc != 0 || vlen != slen[i] || memcmp(buf, sval[i], vlen)) {
            fprintf(stderr, "  key %zu: rc %d vlen %zu (want %s, %zu bytes)\n", i, rc, vlen,
                    sdead[i] ? "absent" : "present", slen[i]);
            return 0;
        }
    }
    return 1;
}

/* 1 if every layer of BRANCH's newest manifest in E records the seq range
 * its key names (SESSION-MINSEQ-MAXSEQ-RANDOM): the pieces of one merge
 * share the merge's range, so that compact_pick sees them as one run. */
static int manifest_ranges_named(env *e, const char *branch)
{
    manifest m;
    if (manifest_load_latest(e->os, branch, &m)) return 0;
    int ok = m.nlayers > 0;
    for (size_t i = 0; i < m.nlayers; i++) {
        const char *name = strrchr(m.layers[i].key, '/');
        unsigned long long session, lo, hi;
        if (!name || sscanf(name + 1, "%16llx-%16llx-%16llx-", &session, &lo, &hi) != 3 ||
            lo != m.layers[i].min_seq || hi != m.layers[i].max_seq) {
            fprintf(stderr, "  %s: manifest range %" PRIu64 "-%" PRIu64 "\n", m.layers[i].key, m.layers[i].min_seq,
                    m.layers[i].max_seq);
            ok = 0;
        }
    }
    manifest_free(&m);
    return ok;
}

static void test_store_compacts(void)
{
    env e;
    env_init(&e);
    store *st = env_open(&e, "main", 32 * 1024);
    for (size_t i = 0; i < SKEYS; i++) sdead[i] = 1;
    for (int b = 0; b < 4000; b++) {
        store_batch bt;
        store_batch_init(&bt);
        for (int op = 0; op < 3; op++) {
            size_t i = rnd() % SKEYS;
            skey k;
            key_page(&k, 7, i);
            if (rnd() % 5 == 0) {
                store_batch_del(&bt, &k);
                sdead[i] = 1;
            } else {
                slen[i] = 1 + rnd() % sizeof sval[i];
                for (size_t j = 0; j < slen[i]; j++) sval[i][j] = (uint8_t)rnd();
                store_batch_put(&bt, &k, sval[i], slen[i]);
                sdead[i] = 0;
            }
        }
        CHECK(store_commit(st, &bt) == 0);
        store_batch_free(&bt);
        if (b % 1000 == 999) CHECK(store_matches(st));   /* while the compactor runs */
    }
    CHECK(store_matches(st));
    CHECK(store_compact(st) >= 0);
    store_stats s;
    store_get_stats(st, &s);
    printf("store: %" PRIu64 " compactions, %" PRIu64 " layers at the end\n", s.compactions, s.layers);
    CHECK(s.compactions > 0);
    /* everything here is below the floor: one run, plus flushes the
     * compactor has not merged yet, is at most 2 once store_compact returns */
    CHECK(s.layers <= 2);
    CHECK(store_matches(st));
    CHECK(store_close(st) == 0);
    CHECK(manifest_ranges_named(&e, "main"));
    st = env_open(&e, "main", 32 * 1024);
    CHECK(store_matches(st));
    CHECK(store_close(st) == 0);
    env_free(&e);
}

/* ---- read amplification of a store under writes ---- */

#define PKEYS (1u << 24)          /* pages drawn from so many: hardly one is written twice */

typedef struct prober {
    store *st;
    int stop;                     /* set when the writes are done (atomic) */
    int errors;                   /* reads that failed */
} prober;

/* Read random keys of ST until told to stop (a generator of its own: rnd
 * belongs to the writer). */
static void *probe_reads(void *arg)
{
    prober *p = arg;
    uint64_t x = 0x2545F4914F6CDD1Dull;
    uint8_t buf[2048];
    while (!__atomic_load_n(&p->stop, __ATOMIC_RELAXED)) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        skey k;
        key_page(&k, 9, x % PKEYS);
        size_t vlen;
        int rc = store_get(p->st, &k, buf, sizeof buf, &vlen);
        if (rc && rc != -ENOENT) p->errors++;
    }
    return NULL;
}

/* BATCHES writes of random pages to ST while another thread reads random
 * pages: no write or read fails, and none of the reads consults more
 * layers than its layer set's bound (the data only grows, so the last
 * set's bound is the largest).  ST's stats at the end into *S. */
static void probe_under_writes(store *st, int batches, store_stats *s)
{
    prober p = { st, 0, 0 };
    pthread_t reader;
    CHECK(pthread_create(&reader, NULL, probe_reads, &p) == 0);
    uint8_t val[1500];
    int failed = 0;
    for (int b = 0; b < batches; b++) {
        store_batch bt;
        store_batch_init(&bt);
        skey k;
        key_page(&k, 9, rnd() % PKEYS);
        size_t len = 500 + rnd() % 1000;
        for (size_t j = 0; j < len; j++) val[j] = (uint8_t)rnd();
        store_batch_put(&bt, &k, val, len);
        if (store_commit(st, &bt)) failed++;
        store_batch_free(&bt);
    }
    __atomic_store_n(&p.stop, 1, __ATOMIC_RELAXED);
    pthread_join(reader, NULL);
    store_get_stats(st, s);
    printf("probes: %" PRIu64 " reads of the layers, %.2f layers each, at most %" PRIu64 " (bound now %" PRIu64
           "), %" PRIu64 " over their bound; %" PRIu64 " flushes, %" PRIu64 " merges, %" PRIu64 " of them waited\n",
           s->reads, s->reads ? (double)s->probes / (double)s->reads : 0.0, s->probes_max, s->bound, s->over_bound,
           s->flushes, s->compactions, s->merge_waits);
    CHECK(failed == 0);
    CHECK(p.errors == 0);
    CHECK(s->reads > 0);
    CHECK(s->over_bound == 0);
    CHECK(s->probes_max <= s->bound);
}

/* Writes of random pages beside reads of random pages (mostly absent
 * ones, which consult every layer whose key range covers them). */
static void test_store_probes(void)
{
    env e;
    env_init(&e);
    store *st = env_open(&e, "main", 16 * 1024);
    store_stats s;
    probe_under_writes(st, 4000, &s);
    CHECK(s.merge_waits == 0);
    CHECK(store_close(st) == 0);
    env_free(&e);
}

/* The same while a view's recovery is under way (store_yield_begin):
 * merges wait for it, but no write waits for ever (a flush held back for
 * a merge lets it go on) and no read passes its bound; once it is over,
 * no merge waits. */
static void test_store_yields(void)
{
    env e;
    env_init(&e);
    store *st = env_open(&e, "main", 16 * 1024);
    store_stats s;
    store_yield_begin();
    probe_under_writes(st, 4000, &s);
    CHECK(s.compactions > 0);
    CHECK(s.merge_waits > 0);
    store_yield_end();
    store_get_stats(st, &s);      /* every wait begun before the end is counted by now */
    uint64_t waits = s.merge_waits, merges = s.compactions;
    probe_under_writes(st, 2000, &s);
    CHECK(store_compact(st) >= 0);
    store_get_stats(st, &s);
    CHECK(s.compactions > merges);
    CHECK(s.merge_waits == waits);
    CHECK(store_close(st) == 0);
    env_free(&e);
}

int main(void)
{
    test_pick();
    test_pick_bound();
    test_bound();
    test_merge();
    test_store_compacts();
    test_store_probes();
    test_store_yields();
    return harness_done();
}

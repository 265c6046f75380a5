/*
 * store_model.h -- what test_store.c and test_store_recovery.c run one
 * branch's store against: the key space (inodes, directory entries, file
 * pages), the reference model (key -> latest value), batches that are a
 * pure function of (round, batch number), the checks of store_get for
 * every key and of store_scan for directory, file and inode prefixes
 * against the model, and a file:// repository holding branch "main".
 *
 * A header of static inline functions, as harness_repo.h is, rather than
 * a .c file: the checks count in harness.h's counters, which are each
 * program's own (static), and test_store_recovery.c's child processes
 * judge their checks by harness_failed.  Not to be included together with
 * harness_repo.h (both define env).
 */
#ifndef LAKEFS_STORE_MODEL_H
#define LAKEFS_STORE_MODEL_H

#include "harness.h"
#include "store.h"

#include <errno.h>
#include <stdint.h>

/* ---- key space: inodes, directory entries, file pages ---- */

#define NINO 300                  /* inode keys: ino 1 + 3 * i (i = 0: the root) */
#define NDIR 4                    /* directories: the inodes of ids 0..3 */
#define NNAME 150                 /* names per directory */
#define NFILE 12                  /* files: ino 5000 + f */
#define NPAGE 40                  /* pages per file */
#define NKEYS (NINO + NDIR * NNAME + NFILE * NPAGE)   /* what batches touch */
#define NSTABLE 64                /* pages of file 4000: written once, read concurrently */
#define NALL (NKEYS + NSTABLE)
#define VMAX 8192
#define MEMTABLE_LIMIT (64u << 10)
#define ROOT_VSEED 0x1234567ull
#define ROOT_VLEN 40

static inline uint64_t ino_of(size_t i) { return 1 + 3 * (uint64_t)i; }

/* Name N: "f<N>", a few padded to 255 bytes, so that "f1" < "f10" < "f100" < "f11". */
static inline size_t name_of(size_t n, char *buf)
{
    size_t len = (size_t)sprintf(buf, "f%zu", n);
    if (n % 37 == 5) {
        memset(buf + len, 'x', 255 - len);
        len = 255;
    }
    return len;
}

/* The key with id ID. */
static inline void key_of(size_t id, skey *k)
{
    if (id < NINO) {
        key_inode(k, ino_of(id));
    } else if (id < NINO + NDIR * NNAME) {
        size_t d = (id - NINO) / NNAME, n = (id - NINO) % NNAME;
        char name[256];
        size_t len = name_of(n, name);
        key_dirent(k, ino_of(d), name, len);
    } else if (id < NKEYS) {
        size_t f = (id - NINO - NDIR * NNAME) / NPAGE, p = (id - NINO - NDIR * NNAME) % NPAGE;
        key_page(k, 5000 + f, (uint64_t)p * p * 7);   /* crosses byte boundaries */
    } else {
        key_page(k, 4000, id - NKEYS);
    }
}

/* LEN bytes derived from SEED into BUF. */
static inline void fill(uint8_t *buf, size_t len, uint64_t seed)
{
    uint64_t x = seed * 0x9e3779b97f4a7c15ull + 0x632be59bd9b4e019ull;
    for (size_t i = 0; i < len; i++) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        buf[i] = (uint8_t)(x >> 29);
    }
}

/* splitmix64 step: the generator of batch contents. */
static inline uint64_t mix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* ---- the reference model ---- */

typedef struct mval {
    uint8_t live;
    uint32_t len;
    uint64_t vseed;
} mval;

typedef struct model {
    mval v[NALL];
    uint64_t max_ino;             /* highest inode key ever put */
} model;

static inline void model_init(model *m)
{
    memset(m, 0, sizeof *m);
    m->v[0] = (mval){ 1, ROOT_VLEN, ROOT_VSEED };
    m->max_ino = 1;
}

/* ---- batches: a pure function of (round, batch number) ---- */

typedef struct op {
    size_t id;
    int del;
    uint32_t len;
    uint64_t vseed;
} op;

#define OPS_MAX 8

/* A random value length for key ID. */
static inline uint32_t gen_len(size_t id, uint64_t *s)
{
    uint64_t r = mix(s);
    if (r % 10 == 0) return 0;
    if (id < NINO) return (uint32_t)(r >> 8) % 150;
    if (id < NINO + NDIR * NNAME) return r % 3 ? 8 : (uint32_t)(r >> 8) % 40;
    return r % 6 == 1 ? VMAX : (uint32_t)(r >> 8) % 2000;
}

/* The ops of batch B of round R (distinct keys) into OPS; returns their count. */
static inline int gen_batch(int r, uint64_t b, op *ops)
{
    uint64_t s = ((uint64_t)r << 40) ^ b;
    int n = 1 + (int)(mix(&s) % 6);
    for (int i = 0; i < n; i++) {
        size_t id;
        int dup;
        do {
            id = mix(&s) % NKEYS;
            dup = 0;
            for (int k = 0; k < i; k++) dup |= ops[k].id == id;
        } while (dup);
        ops[i].id = id;
        ops[i].del = mix(&s) % 4 == 0;
        ops[i].len = ops[i].del ? 0 : gen_len(id, &s);
        ops[i].vseed = mix(&s);
    }
    return n;
}

static inline void model_apply(model *m, const op *ops, int n)
{
    for (int i = 0; i < n; i++) {
        m->v[ops[i].id] = (mval){ !ops[i].del, ops[i].len, ops[i].vseed };
        if (!ops[i].del && ops[i].id < NINO && ino_of(ops[i].id) > m->max_ino)
            m->max_ino = ino_of(ops[i].id);
    }
}

/* Apply batches 1..UPTO of round R to the model. */
static inline void model_apply_round(model *m, int r, uint64_t upto)
{
    op ops[OPS_MAX];
    for (uint64_t b = 1; b <= upto; b++) {
        int n = gen_batch(r, b, ops);
        model_apply(m, ops, n);
    }
}

/* Commit batch B of round R to ST; the model follows if M is not NULL. */
static inline int commit_batch(store *st, model *m, int r, uint64_t b)
{
    static uint8_t val[VMAX];
    op ops[OPS_MAX];
    int n = gen_batch(r, b, ops);
    store_batch bt;
    store_batch_init(&bt);
    for (int i = 0; i < n; i++) {
        skey k;
        key_of(ops[i].id, &k);
        if (ops[i].del) {
            store_batch_del(&bt, &k);
        } else {
            fill(val, ops[i].len, ops[i].vseed);
            store_batch_put(&bt, &k, val, ops[i].len);
        }
    }
    int rc = store_commit(st, &bt);
    store_batch_free(&bt);
    if (rc == 0 && m) model_apply(m, ops, n);
    return rc;
}

/* ---- checking the store against the model ---- */

/* Does store_get of key ID agree with the model? */
static inline int get_matches(store *st, const model *m, size_t id)
{
    static _Thread_local uint8_t buf[VMAX + 64], want[VMAX];   /* reader threads too */
    skey k;
    size_t vlen = 99999;
    key_of(id, &k);
    int rc = store_get(st, &k, buf, sizeof buf, &vlen);
    const mval *v = &m->v[id];
    if (!v->live) return rc == -ENOENT;
    fill(want, v->len, v->vseed);
    return rc == 0 && vlen == v->len && memcmp(buf, want, v->len) == 0;
}

/* Number of keys whose store_get disagrees with the model (plus absent keys). */
static inline size_t check_gets(store *st, const model *m)
{
    size_t bad = 0;
    for (size_t id = 0; id < NALL; id++) bad += !get_matches(st, m, id);
    skey k;
    uint8_t buf[16];
    size_t vlen;
    key_dirent(&k, 999, "f1", 2);                     /* never written */
    bad += store_get(st, &k, buf, sizeof buf, &vlen) != -ENOENT;
    key_page(&k, 5000, 1);                            /* between written pages 0 and 7 */
    bad += store_get(st, &k, buf, sizeof buf, &vlen) != -ENOENT;
    return bad;
}

/* Reference key order: memcmp, a prefix before its extensions. */
static inline int ref_cmp(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    for (size_t i = 0; i < alen && i < blen; i++)
        if (a[i] != b[i]) return a[i] < b[i] ? -1 : 1;
    return alen == blen ? 0 : alen < blen ? -1 : 1;
}

static inline int id_cmp(const void *a, const void *b)
{
    skey x, y;
    key_of(*(const size_t *)a, &x);
    key_of(*(const size_t *)b, &y);
    return ref_cmp(x.b, x.len, y.b, y.len);
}

typedef struct scan_check {
    const model *m;
    size_t *want;                 /* ids of live keys with the prefix, in key order */
    size_t nwant, at, bad;
    size_t stop_after;            /* return 42 after this many calls (0: never) */
} scan_check;

static inline int scan_fn(void *arg, const uint8_t *key, size_t klen, const void *val, size_t vlen)
{
    static _Thread_local uint8_t want[VMAX];
    scan_check *c = arg;
    if (c->at >= c->nwant) { c->bad++; return -1; }
    size_t id = c->want[c->at++];
    skey k;
    key_of(id, &k);
    const mval *v = &c->m->v[id];
    fill(want, v->len, v->vseed);
    if (ref_cmp(key, klen, k.b, k.len) || vlen != v->len || (vlen && memcmp(val, want, vlen)))
        c->bad++;
    return c->stop_after && c->at == c->stop_after ? 42 : 0;
}

/* Scan PREFIX and compare with the model; returns the number of defects. */
static inline size_t check_scan(store *st, const model *m, const uint8_t *prefix, size_t plen,
                                size_t stop_after)
{
    scan_check c = { .m = m, .stop_after = stop_after };
    c.want = malloc(NALL * sizeof *c.want);
    for (size_t id = 0; id < NALL; id++) {
        skey k;
        key_of(id, &k);
        if (m->v[id].live && k.len >= plen && memcmp(k.b, prefix, plen) == 0)
            c.want[c.nwant++] = id;
    }
    qsort(c.want, c.nwant, sizeof *c.want, id_cmp);
    int rc = store_scan(st, prefix, plen, scan_fn, &c);
    size_t bad = c.bad;
    if (stop_after && stop_after <= c.nwant) bad += rc != 42 || c.at != stop_after;
    else bad += rc != 0 || c.at != c.nwant;
    free(c.want);
    return bad;
}

/* Scans of every directory, every file's pages, all inodes, everything. */
static inline size_t check_scans(store *st, const model *m)
{
    size_t bad = 0;
    skey k;
    for (size_t d = 0; d < NDIR; d++) {
        key_dirent(&k, ino_of(d), "", 0);
        bad += check_scan(st, m, k.b, k.len, 0);
    }
    for (size_t f = 0; f < NFILE; f++) {
        key_page(&k, 5000 + f, 0);
        bad += check_scan(st, m, k.b, 9, 0);
    }
    uint8_t kind = KEY_INODE;
    bad += check_scan(st, m, &kind, 1, 0);
    bad += check_scan(st, m, (const uint8_t *)"", 0, 0);
    key_dirent(&k, ino_of(1), "", 0);
    bad += check_scan(st, m, k.b, k.len, 3);          /* stopped by the callback */
    key_dirent(&k, ino_of(2), "f1", 2);               /* "f1", "f10".. "f19", "f100".. */
    bad += check_scan(st, m, k.b, k.len, 0);
    return bad;
}

/* Full comparison of ST with M; a label for the failure message. */
static inline void check_all(store *st, const model *m, const char *when)
{
    size_t g = check_gets(st, m), s = check_scans(st, m);
    if (g || s) fprintf(stderr, "  %s: %zu get and %zu scan mismatches\n", when, g, s);
    CHECK(g == 0);
    CHECK(s == 0);
}

/* ---- repository setup ---- */

typedef struct env {
    char root[64];
    char repo[128], state[128], url[160];
    objstore *os;
    int remote;                   /* open with durability=remote */
    int takeover;                 /* open with takeover */
    size_t child_limit;           /* memtable limit of crash_child (0: MEMTABLE_LIMIT) */
} env;

/* A fresh temp dir with a file:// repository holding branch "main". */
static inline void env_init(env *e)
{
    char err[256] = "";
    memset(e, 0, sizeof *e);
    harness_repo_dirs(e->root, e->repo, e->url);
    snprintf(e->state, sizeof e->state, "%s/state/main", e->root);
    int rc = os_open(e->url, &e->os, err, sizeof err);
    if (rc) { fprintf(stderr, "os_open %s: %s\n", e->url, err); exit(2); }
    CHECK(store_repo_check(e->os) == -ENOENT);
    CHECK(store_repo_create(e->os) == 0);
    CHECK(store_repo_create(e->os) == -EEXIST);
    CHECK(store_repo_check(e->os) == 0);
    skey k;
    uint8_t val[ROOT_VLEN];
    key_inode(&k, 1);
    fill(val, ROOT_VLEN, ROOT_VSEED);
    CHECK(store_branch_create(e->os, "main", &k, val, ROOT_VLEN) == 0);
    CHECK(store_branch_create(e->os, "main", &k, val, ROOT_VLEN) == -EEXIST);
}

static inline void env_free(env *e)
{
    os_close(e->os);
    harness_rmtree(e->root);
}

/* Open branch "main" of E (memtable limit LIMIT) or fail the test run. */
static inline store *open_store(env *e, size_t limit, int start)
{
    char err[512] = "";
    store_config cfg = { .os = e->os, .branch = "main", .state_dir = e->state, .memtable_limit = limit,
                         .durability_remote = e->remote, .takeover = e->takeover };
    store *st = NULL;
    int rc = store_open(&cfg, &st, err, sizeof err);
    if (rc) { fprintf(stderr, "store_open: %d %s\n", rc, err); exit(2); }
    if (start && store_start(st)) { fprintf(stderr, "store_start failed\n"); exit(2); }
    return st;
}

static inline store_stats stats_of(store *st)
{
    store_stats s;
    store_get_stats(st, &s);
    return s;
}

/* store_alloc_ino is above every inode key of M, and strictly rising. */
static inline void check_alloc_ino(store *st, const model *m)
{
    uint64_t a = store_alloc_ino(st), b = store_alloc_ino(st);
    CHECK(a > m->max_ino);
    CHECK(b > a);
}

#endif

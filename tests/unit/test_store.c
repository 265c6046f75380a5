/*
 * test_store.c -- one branch's store end to end on a file:// repository.
 *
 * The store glues journal, memtables, layers and manifests together; the
 * ways it can go wrong are in the glue: a version lost or resurrected when
 * a memtable is frozen, flushed or replayed, a scan merging sources in the
 * wrong order, a crash that loses an acknowledged batch, two daemons
 * writing one branch.  So every test runs against a reference model (key
 * -> latest value) and checks store_get for every key of the key space and
 * store_scan for directory, file and inode prefixes:
 *  - a random workload of thousands of batches (puts and deletes of inode,
 *    directory-entry and page keys, values of 0..8192 bytes) with a 64 KiB
 *    memtable so that many layers are flushed; checked during the run, and
 *    after close + reopen (all flushed: manifest generation > 1);
 *    meanwhile a reader thread gets and scans keys that never change, so
 *    that layer installation racing with readers shows up under ASan;
 *  - kill -9 of a writer process at several points (early, mid-run, right
 *    after a flush committed, while a frozen memtable is pending), some of
 *    them followed by a recovery that itself "crashes": every acknowledged
 *    batch survives, the state is exactly some prefix of the batches;
 *  - store_alloc_ino stays above every committed inode key, across reopen;
 *  - a second store_open on the same state directory fails with -EBUSY and
 *    "already mounted", in the same process and in another one;
 *  - the same key twice in one batch: the last op wins, also after a flush;
 *  - durability=remote: kill -9 of a writer that synced every batch, then
 *    recovery from a NEW state directory (a new machine) or from one whose
 *    journal files were lost: every synced batch is there;
 *  - takeover with durability=remote: the new writer sees exactly the old
 *    one's synced batches; the old one's next sync and commit fail, and
 *    its unsynced batch never appears, also after reopening;
 *  - a journal left in a state directory after another state directory
 *    wrote the branch is set aside, never replayed;
 *  - store_peek reads a key through any committed manifest: the value, an
 *    overwrite, a deletion, a key only an older layer holds; a missing
 *    layer is -EIO, never "no such key".
 * Batch contents are a pure function of (round, batch number), so a process
 * that only knows how many batches were applied can rebuild the model.
 */
#include "harness.h"
#include "manifest.h"
#include "store.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

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

static uint64_t ino_of(size_t i) { return 1 + 3 * (uint64_t)i; }

/* Name N: "f<N>", a few padded to 255 bytes, so that "f1" < "f10" < "f100" < "f11". */
static size_t name_of(size_t n, char *buf)
{
    size_t len = (size_t)sprintf(buf, "f%zu", n);
    if (n % 37 == 5) {
        memset(buf + len, 'x', 255 - len);
        len = 255;
    }
    return len;
}

/* The key with id ID. */
static void key_of(size_t id, skey *k)
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
static void fill(uint8_t *buf, size_t len, uint64_t seed)
{
    uint64_t x = seed * 0x9e3779b97f4a7c15ull + 0x632be59bd9b4e019ull;
    for (size_t i = 0; i < len; i++) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        buf[i] = (uint8_t)(x >> 29);
    }
}

/* splitmix64 step: the generator of batch contents. */
static uint64_t mix(uint64_t *s)
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

static void model_init(model *m)
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
static uint32_t gen_len(size_t id, uint64_t *s)
{
    uint64_t r = mix(s);
    if (r % 10 == 0) return 0;
    if (id < NINO) return (uint32_t)(r >> 8) % 150;
    if (id < NINO + NDIR * NNAME) return r % 3 ? 8 : (uint32_t)(r >> 8) % 40;
    return r % 6 == 1 ? VMAX : (uint32_t)(r >> 8) % 2000;
}

/* The ops of batch B of round R (distinct keys) into OPS; returns their count. */
static int gen_batch(int r, uint64_t b, op *ops)
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

static void model_apply(model *m, const op *ops, int n)
{
    for (int i = 0; i < n; i++) {
        m->v[ops[i].id] = (mval){ !ops[i].del, ops[i].len, ops[i].vseed };
        if (!ops[i].del && ops[i].id < NINO && ino_of(ops[i].id) > m->max_ino)
            m->max_ino = ino_of(ops[i].id);
    }
}

/* Apply batches 1..UPTO of round R to the model. */
static void model_apply_round(model *m, int r, uint64_t upto)
{
    op ops[OPS_MAX];
    for (uint64_t b = 1; b <= upto; b++) {
        int n = gen_batch(r, b, ops);
        model_apply(m, ops, n);
    }
}

/* Commit batch B of round R to ST; the model follows if M is not NULL. */
static int commit_batch(store *st, model *m, int r, uint64_t b)
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
static int get_matches(store *st, const model *m, size_t id)
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
static size_t check_gets(store *st, const model *m)
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
static int ref_cmp(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    for (size_t i = 0; i < alen && i < blen; i++)
        if (a[i] != b[i]) return a[i] < b[i] ? -1 : 1;
    return alen == blen ? 0 : alen < blen ? -1 : 1;
}

static int id_cmp(const void *a, const void *b)
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

static int scan_fn(void *arg, const uint8_t *key, size_t klen, const void *val, size_t vlen)
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
static size_t check_scan(store *st, const model *m, const uint8_t *prefix, size_t plen,
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
static size_t check_scans(store *st, const model *m)
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
static void check_all(store *st, const model *m, const char *when)
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
static void env_init(env *e)
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

static void env_free(env *e)
{
    os_close(e->os);
    harness_rmtree(e->root);
}

/* Open branch "main" of E (memtable limit LIMIT) or fail the test run. */
static store *open_store(env *e, size_t limit, int start)
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

static store_stats stats_of(store *st)
{
    store_stats s;
    store_get_stats(st, &s);
    return s;
}

/* store_alloc_ino is above every inode key of M, and strictly rising. */
static void check_alloc_ino(store *st, const model *m)
{
    uint64_t a = store_alloc_ino(st), b = store_alloc_ino(st);
    CHECK(a > m->max_ino);
    CHECK(b > a);
}

/* ---- the random workload ---- */

#define NBATCH 2000

/* Write the stable keys in one batch (model follows). */
static void write_stable(store *st, model *m)
{
    static uint8_t val[VMAX];
    store_batch b;
    store_batch_init(&b);
    for (size_t i = 0; i < NSTABLE; i++) {
        skey k;
        key_of(NKEYS + i, &k);
        m->v[NKEYS + i] = (mval){ 1, (uint32_t)(i * 128), 4000 + i };
        fill(val, i * 128, 4000 + i);
        store_batch_put(&b, &k, val, i * 128);
    }
    CHECK(store_commit(st, &b) == 0);
    store_batch_free(&b);
}

typedef struct reader {
    store *st;
    const model *m;               /* a copy; only its stable keys matter: they never change */
    int stop;                     /* set by the main thread (atomic) */
    size_t reads, bad;
} reader;

/* Reader thread: gets and scans of the stable keys while batches are
 * committed and layers installed, as FUSE readers do. */
static void *reader_main(void *arg)
{
    reader *r = arg;
    uint64_t s = 42;
    while (!__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE)) {
        if (r->reads % 64 == 63) {
            skey k;
            key_page(&k, 4000, 0);
            r->bad += check_scan(r->st, r->m, k.b, 9, 0);
        } else {
            r->bad += !get_matches(r->st, r->m, NKEYS + mix(&s) % NSTABLE);
        }
        r->reads++;
    }
    return NULL;
}

static void test_random_workload(void)
{
    env e;
    env_init(&e);
    static model m;
    model_init(&m);
    store *st = open_store(&e, MEMTABLE_LIMIT, 1);
    check_all(st, &m, "fresh branch");
    write_stable(st, &m);
    uint64_t base = stats_of(st).seq;
    CHECK(base >= 2);
    check_alloc_ino(st, &m);
    static model snap;                                /* the reader's own copy: no data race */
    snap = m;
    reader rd = { st, &snap, 0, 0, 0 };
    pthread_t th;
    CHECK(pthread_create(&th, NULL, reader_main, &rd) == 0);
    size_t bad_commit = 0, bad_seq = 0;
    for (uint64_t b = 1; b <= NBATCH; b++) {
        bad_commit += commit_batch(st, &m, 1, b) != 0;
        bad_seq += stats_of(st).seq != base + b;
        if (b == 1 || b == 400 || b == 1500) check_all(st, &m, "during the workload");
    }
    __atomic_store_n(&rd.stop, 1, __ATOMIC_RELEASE);
    pthread_join(th, NULL);
    CHECK(bad_commit == 0);
    CHECK(bad_seq == 0);
    CHECK(rd.reads > 100);
    CHECK(rd.bad == 0);
    CHECK(store_sync(st) == 0);
    check_all(st, &m, "after the workload");
    check_alloc_ino(st, &m);
    CHECK(store_close(st) == 0);

    st = open_store(&e, MEMTABLE_LIMIT, 1);
    store_stats s = stats_of(st);
    CHECK(s.seq == base + NBATCH);
    CHECK(s.layers >= 1);                             /* flushed, maybe compacted since */
    CHECK(s.manifest_gen > 1);
    CHECK(s.memtable_bytes == 0);                     /* close flushed everything */
    check_all(st, &m, "after reopen");
    check_alloc_ino(st, &m);
    for (uint64_t b = 1; b <= 100; b++) bad_commit += commit_batch(st, &m, 2, b) != 0;
    CHECK(bad_commit == 0);
    check_all(st, &m, "after more batches");
    CHECK(store_close(st) == 0);

    st = open_store(&e, 0, 0);                        /* default limit, no flusher */
    CHECK(stats_of(st).seq == base + NBATCH + 100);
    check_all(st, &m, "after the second reopen");
    CHECK(store_close(st) == 0);
    env_free(&e);
}

/* A value longer than the buffer: the full length is reported, the buffer
 * filled without overrun. */
static void test_get_truncated(void)
{
    env e;
    env_init(&e);
    store *st = open_store(&e, MEMTABLE_LIMIT, 0);
    static uint8_t val[VMAX], buf[128];
    fill(val, VMAX, 77);
    skey k;
    key_page(&k, 9, 3);
    store_batch b;
    store_batch_init(&b);
    store_batch_put(&b, &k, val, VMAX);
    CHECK(store_commit(st, &b) == 0);
    store_batch_free(&b);
    for (int pass = 0; pass < 2; pass++) {
        size_t vlen = 0;
        memset(buf, 0xee, sizeof buf);
        CHECK(store_get(st, &k, buf, 100, &vlen) == 0);
        CHECK(vlen == VMAX);
        CHECK(memcmp(buf, val, 100) == 0);
        CHECK(buf[100] == 0xee && buf[127] == 0xee);
        if (!pass) { CHECK(store_close(st) == 0); st = open_store(&e, MEMTABLE_LIMIT, 0); }
    }
    CHECK(store_close(st) == 0);
    env_free(&e);
}

/* ---- crashes: kill -9 of a writer process ---- */

#define CRASH_MAXB 1500

typedef struct ack {
    uint64_t batch;               /* 0: the child ran out of batches */
    uint64_t flushes;
    uint64_t memtable_bytes;
} ack;

/* Child: open, commit round R's batches, acknowledge each on WFD; never returns. */
static void crash_child(env *e, int r, int wfd)
{
    store *st = open_store(e, e->child_limit ? e->child_limit : MEMTABLE_LIMIT, 1);
    for (uint64_t b = 1; b <= CRASH_MAXB; b++) {
        if (commit_batch(st, NULL, r, b)) _exit(4);
        if (e->remote && store_sync(st)) _exit(6);
        store_stats s = stats_of(st);
        ack a = { b, s.flushes, s.memtable_bytes };
        if (write(wfd, &a, sizeof a) != sizeof a) _exit(5);
    }
    ack done = {0};
    if (write(wfd, &done, sizeof done) != sizeof done) _exit(5);
    for (;;) pause();
}

enum kill_at { AT_BATCH, AT_FLUSHED, AT_FROZEN };

/* Run round R in a child and kill -9 it when the condition is met;
 * returns the number of batches acknowledged before the kill. */
static uint64_t crash_round(env *e, int r, enum kill_at at, uint64_t n)
{
    int p[2];
    if (pipe(p)) abort();
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) { close(p[0]); crash_child(e, r, p[1]); }
    close(p[1]);
    uint64_t acked = 0, flushes0 = UINT64_MAX, met = 0;
    ack a;
    while (!met && read(p[0], &a, sizeof a) == sizeof a && a.batch) {
        acked = a.batch;
        if (flushes0 == UINT64_MAX) flushes0 = a.flushes;
        met = at == AT_BATCH ? acked >= n
            : at == AT_FLUSHED ? a.flushes >= flushes0 + n
            : a.memtable_bytes > MEMTABLE_LIMIT && acked >= n;
    }
    kill(pid, SIGKILL);
    int status;
    waitpid(pid, &status, 0);
    close(p[0]);
    CHECK(met);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    return acked;
}

/* Open after a crash: the state must be batches 1..S of round R for some
 * S >= ACKED; returns S.  Checks run in the calling process. */
static uint64_t recover_and_check(env *e, model *m, int r, uint64_t seq0, uint64_t acked,
                                  int clean_close)
{
    store *st = open_store(e, MEMTABLE_LIMIT, 1);
    uint64_t s = stats_of(st).seq - seq0;
    CHECK(s >= acked);
    CHECK(s <= CRASH_MAXB);
    model_apply_round(m, r, s);
    check_all(st, m, "after a crash");
    check_alloc_ino(st, m);
    if (clean_close) CHECK(store_close(st) == 0);
    return s;
}

/* Recover in a child that checks and then exits without closing (a crash
 * right after recovery); the parent learns S through a pipe. */
static uint64_t recover_and_crash(env *e, model *m, int r, uint64_t seq0, uint64_t acked)
{
    int p[2];
    if (pipe(p)) abort();
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        close(p[0]);
        harness_failed = 0;
        uint64_t s = recover_and_check(e, m, r, seq0, acked, 0);
        if (write(p[1], &s, sizeof s) != sizeof s) _exit(5);
        _exit(harness_failed ? 1 : 0);
    }
    close(p[1]);
    uint64_t s = 0;
    int got = read(p[0], &s, sizeof s) == sizeof s, status;
    close(p[0]);
    waitpid(pid, &status, 0);
    CHECK(got);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    model_apply_round(m, r, s);
    return s;
}

static void test_crashes(void)
{
    static const struct { enum kill_at at; uint64_t n; int crash_recovery; } rounds[] = {
        { AT_BATCH, 1, 0 },
        { AT_BATCH, 150, 1 },
        { AT_FLUSHED, 2, 0 },                         /* right after the 2nd flush */
        { AT_FROZEN, 20, 1 },                         /* a frozen memtable is pending */
        { AT_FLUSHED, 1, 1 },
        { AT_BATCH, 600, 0 },
    };
    env e;
    env_init(&e);
    static model m;
    model_init(&m);
    uint64_t seq0 = 1;                                /* the branch's first state */
    for (size_t i = 0; i < sizeof rounds / sizeof rounds[0]; i++) {
        int r = 10 + (int)i;
        uint64_t acked = crash_round(&e, r, rounds[i].at, rounds[i].n);
        uint64_t s = rounds[i].crash_recovery ? recover_and_crash(&e, &m, r, seq0, acked)
                                              : recover_and_check(&e, &m, r, seq0, acked, 1);
        seq0 += s;
    }
    store *st = open_store(&e, MEMTABLE_LIMIT, 1);
    CHECK(stats_of(st).seq == seq0);
    check_all(st, &m, "after all crashes");
    CHECK(stats_of(st).layers >= 1 && stats_of(st).manifest_gen > 1);
    CHECK(store_close(st) == 0);
    env_free(&e);
}

/* ---- single writer per state directory ---- */

/* Try to open E's branch; 0 if it failed with -EBUSY and "already mounted". */
static int open_is_refused(env *e)
{
    char err[512] = "";
    store_config cfg = { .os = e->os, .branch = "main", .state_dir = e->state, .memtable_limit = MEMTABLE_LIMIT };
    store *st = NULL;
    int rc = store_open(&cfg, &st, err, sizeof err);
    if (rc == 0) { store_close(st); return 1; }
    return !(rc == -EBUSY && strstr(err, "already mounted") && st == NULL) ? 2 : 0;
}

static void test_lock(void)
{
    env e;
    env_init(&e);
    store *st = open_store(&e, MEMTABLE_LIMIT, 1);
    static model m;
    model_init(&m);
    CHECK(commit_batch(st, &m, 30, 1) == 0);
    CHECK(open_is_refused(&e) == 0);                  /* same process, own open() */
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) _exit(open_is_refused(&e));         /* another process */
    int status;
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK(commit_batch(st, &m, 30, 2) == 0);          /* the refused opens left it alone */
    check_all(st, &m, "after refused opens");
    CHECK(store_close(st) == 0);
    st = open_store(&e, MEMTABLE_LIMIT, 0);           /* the lock went with the close */
    check_all(st, &m, "after reopen");
    CHECK(store_close(st) == 0);

    char err[512] = "";
    store_config cfg = { .os = e.os, .branch = "nosuchbranch", .state_dir = e.state };
    CHECK(store_open(&cfg, &st, err, sizeof err) == -ENOENT);
    CHECK(strstr(err, "does not exist") != NULL);
    env_free(&e);
}

/* ---- the same key twice in one batch ---- */

static void test_same_key_twice(void)
{
    env e;
    env_init(&e);
    store *st = open_store(&e, MEMTABLE_LIMIT, 0);
    skey k1, k2;
    key_inode(&k1, 40);
    key_dirent(&k2, 1, "pg_wal", 6);
    store_batch b;
    store_batch_init(&b);
    store_batch_put(&b, &k1, "first", 5);
    store_batch_put(&b, &k1, "second", 6);
    store_batch_put(&b, &k2, "x", 1);
    store_batch_del(&b, &k2);
    CHECK(store_commit(st, &b) == 0);
    store_batch_free(&b);
    for (int pass = 0; pass < 2; pass++) {
        char buf[16];
        size_t vlen = 0;
        CHECK(store_get(st, &k1, buf, sizeof buf, &vlen) == 0 && vlen == 6 && !memcmp(buf, "second", 6));
        CHECK(store_get(st, &k2, buf, sizeof buf, &vlen) == -ENOENT);
        int rc = store_close(st);
        CHECK(rc == 0);                               /* the flush must accept it */
        if (rc) {                                     /* the lease stays taken: stop here */
            fprintf(stderr, "  store_close after a batch with a key twice: %s\n", strerror(-rc));
            env_free(&e);
            return;
        }
        st = open_store(&e, MEMTABLE_LIMIT, 0);
        CHECK(stats_of(st).memtable_bytes == 0);      /* flushed, not left in the journal */
    }
    CHECK(store_close(st) == 0);
    env_free(&e);
}

/* One key rewritten 500 times between flushes (PostgreSQL's last WAL page,
 * an inode's attributes): the memtable and the layer hold it once, and
 * the newest value is what comes back after a reopen. */
static void test_rewrites_kept_once(void)
{
    env e;
    env_init(&e);
    store *st = open_store(&e, MEMTABLE_LIMIT, 0);
    skey k;
    key_page(&k, 50, 0);
    uint8_t val[4096];
    uint64_t x = 88172645463325252ull;
    for (int i = 0; i < 500; i++) {
        for (size_t j = 0; j < sizeof val; j++) { x ^= x << 13; x ^= x >> 7; x ^= x << 17; val[j] = (uint8_t)x; }
        store_batch b;
        store_batch_init(&b);
        store_batch_put(&b, &k, val, sizeof val);
        CHECK(store_commit(st, &b) == 0);
        store_batch_free(&b);
    }
    CHECK(stats_of(st).memtable_bytes < 2 * sizeof val);   /* 500 versions would be 2 MiB */
    CHECK(store_close(st) == 0);
    manifest m;
    CHECK(manifest_load_latest(e.os, "main", &m) == 0);
    uint64_t bytes = 0;
    for (size_t i = 0; i < m.nlayers; i++) bytes += m.layers[i].size;
    CHECK(bytes < 64 << 10);                                /* random bytes: no compression helps */
    manifest_free(&m);
    st = open_store(&e, MEMTABLE_LIMIT, 0);
    uint8_t got[4096];
    size_t vlen = 0;
    CHECK(store_get(st, &k, got, sizeof got, &vlen) == 0 && vlen == sizeof got && !memcmp(got, val, sizeof val));
    CHECK(store_close(st) == 0);
    env_free(&e);
}

typedef struct range_seen {
    uint64_t pages[64];
    size_t n;
} range_seen;

/* store_scan_range callback: note the page number of each key. */
static int range_note(void *arg, const uint8_t *key, size_t klen, const void *val, size_t vlen)
{
    (void)val; (void)vlen;
    range_seen *r = arg;
    if (klen == 17 && r->n < 64) r->pages[r->n++] = key_get64(key + 9);
    return 0;
}

/* store_scan_range: keys of three layers and the memtable, deletions and
 * overwrites among them, exactly [from, to) in order. */
static void test_scan_range(void)
{
    env e;
    env_init(&e);
    store *st = open_store(&e, MEMTABLE_LIMIT, 0);
    for (uint64_t round = 0; round < 4; round++) {   /* pages 0..19, each round's in its own layer */
        store_batch b;
        store_batch_init(&b);
        for (uint64_t pg = round; pg < 20; pg += 4) {
            skey k;
            key_page(&k, 60, pg);
            store_batch_put(&b, &k, "v", 1);
        }
        if (round == 3) {                           /* the last round: a deletion and an overwrite */
            skey k;
            key_page(&k, 60, 6);
            store_batch_del(&b, &k);
            key_page(&k, 60, 9);
            store_batch_put(&b, &k, "w", 1);
        }
        CHECK(store_commit(st, &b) == 0);
        store_batch_free(&b);
        uint64_t seq, gen;
        if (round < 3) CHECK(store_checkpoint(st, &seq, &gen) == 0);   /* round 3 stays in memory */
    }
    skey from, to;
    key_page(&from, 60, 5);
    key_page(&to, 60, 12);
    range_seen r = { .n = 0 };
    CHECK(store_scan_range(st, from.b, from.len, to.b, to.len, range_note, &r) == 0);
    const uint64_t want[] = { 5, 7, 8, 9, 10, 11 };   /* 6 deleted, 12 excluded */
    CHECK(r.n == sizeof want / sizeof want[0]);
    for (size_t i = 0; i < r.n && i < sizeof want / sizeof want[0]; i++) CHECK(r.pages[i] == want[i]);
    CHECK(store_close(st) == 0);
    env_free(&e);
}

/* ---- store_peek: one key through any committed manifest ---- */

/* Commit puts (VAL non-NULL) or deletes of K1..KN in one batch. */
static void commit_ops(store *st, int n, const skey *k, const char *const *val)
{
    store_batch b;
    store_batch_init(&b);
    for (int i = 0; i < n; i++) {
        if (val[i]) store_batch_put(&b, &k[i], val[i], strlen(val[i]));
        else store_batch_del(&b, &k[i]);
    }
    CHECK(store_commit(st, &b) == 0);
    store_batch_free(&b);
}

/* Peek K through M: its value must be WANT (NULL: -ENOENT). */
static int peek_is(env *e, const manifest *m, const skey *k, const char *want)
{
    char buf[16];
    size_t vlen = 0;
    int rc = store_peek(e->os, m, k, buf, sizeof buf, &vlen);
    if (!want) return rc == -ENOENT;
    return rc == 0 && vlen == strlen(want) && !memcmp(buf, want, vlen);
}

/* Three closes, three manifests: a value, an overwrite and a deletion in
 * the newest layer, a key only an older layer holds, a key never written;
 * a value longer than the buffer; a manifest naming a missing layer. */
static void test_peek(void)
{
    env e;
    env_init(&e);
    manifest m[3];
    skey k[4];
    key_meta(&k[0], "one");
    key_meta(&k[1], "two");
    key_inode(&k[2], 77);
    key_meta(&k[3], "never");
    const char *s0[] = { "a", "x" }, *s1[] = { "b", NULL }, *s2[] = { "c" };
    for (int g = 0; g < 3; g++) {
        store *st = open_store(&e, MEMTABLE_LIMIT, 0);
        if (g == 0) commit_ops(st, 2, k, s0);
        if (g == 1) commit_ops(st, 2, k, s1);
        if (g == 2) commit_ops(st, 1, &k[2], s2);
        CHECK(store_close(st) == 0);
        CHECK(manifest_load_latest(e.os, "main", &m[g]) == 0);
    }
    CHECK(peek_is(&e, &m[0], &k[0], "a") && peek_is(&e, &m[0], &k[1], "x") && peek_is(&e, &m[0], &k[2], NULL));
    CHECK(peek_is(&e, &m[1], &k[0], "b") && peek_is(&e, &m[1], &k[1], NULL));
    CHECK(peek_is(&e, &m[2], &k[0], "b") && peek_is(&e, &m[2], &k[1], NULL) && peek_is(&e, &m[2], &k[2], "c"));
    for (int g = 0; g < 3; g++) CHECK(peek_is(&e, &m[g], &k[3], NULL));
    skey root;
    uint8_t want[ROOT_VLEN], buf[ROOT_VLEN];
    size_t vlen = 0;
    key_inode(&root, 1);
    fill(want, ROOT_VLEN, ROOT_VSEED);
    memset(buf, 0xee, sizeof buf);
    CHECK(store_peek(e.os, &m[2], &root, buf, 10, &vlen) == 0 && vlen == ROOT_VLEN);
    CHECK(!memcmp(buf, want, 10) && buf[10] == 0xee);
    char path[300];
    snprintf(path, sizeof path, "%s/%s", e.repo, m[2].layers[m[2].nlayers - 1].key);
    CHECK(unlink(path) == 0);
    CHECK(store_peek(e.os, &m[2], &k[0], buf, sizeof buf, &vlen) == -EIO);
    CHECK(peek_is(&e, &m[1], &k[0], "b"));        /* older states do not need that layer */
    for (int g = 0; g < 3; g++) manifest_free(&m[g]);
    env_free(&e);
}

/* ---- durability=remote ---- */

/* Delete the journal files of state directory DIR (a lost local disk). */
static int remove_journal(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *de;
    if (!d) return 0;
    while ((de = readdir(d))) {
        char path[512];
        if (strncmp(de->d_name, "journal.", 8)) continue;
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        n += unlink(path) == 0;
    }
    closedir(d);
    return n;
}

static void test_remote_durability(void)
{
    enum { NEW_STATE, LOST_JOURNAL };
    static const struct { enum kill_at at; uint64_t n; int after; } rounds[] = {
        { AT_BATCH, 40, NEW_STATE },
        { AT_FLUSHED, 1, NEW_STATE },                 /* some batches in a layer, some only remote */
        { AT_BATCH, 60, LOST_JOURNAL },
        { AT_FLUSHED, 3, NEW_STATE },
    };
    env e;
    env_init(&e);
    e.remote = 1;
    static model m;
    model_init(&m);
    uint64_t seq0 = 1;
    for (size_t i = 0; i < sizeof rounds / sizeof rounds[0]; i++) {
        int r = 50 + (int)i;
        uint64_t acked = crash_round(&e, r, rounds[i].at, rounds[i].n);
        if (rounds[i].after == NEW_STATE)
            snprintf(e.state, sizeof e.state, "%s/state/machine%zu", e.root, i);
        else
            CHECK(remove_journal(e.state) > 0);
        seq0 += recover_and_check(&e, &m, r, seq0, acked, 1);
    }
    store *st = open_store(&e, MEMTABLE_LIMIT, 1);
    CHECK(stats_of(st).seq == seq0);
    check_all(st, &m, "after remote recoveries");
    CHECK(store_close(st) == 0);
    env_free(&e);
}

static void test_remote_takeover(void)
{
    env e;
    env_init(&e);
    e.remote = 1;
    static model m;
    model_init(&m);
    store *old = open_store(&e, MEMTABLE_LIMIT, 1);
    for (uint64_t b = 1; b <= 30; b++) {
        CHECK(commit_batch(old, &m, 60, b) == 0);
        if (b % 3 == 0) CHECK(store_sync(old) == 0);
    }
    CHECK(commit_batch(old, NULL, 60, 31) == 0);      /* committed, never synced */
    CHECK(store_sync(old) == 0);
    model_apply_round(&m, 60, 0);
    static model want;                                /* what the new writer must see */
    model_init(&want);
    model_apply_round(&want, 60, 31);
    CHECK(commit_batch(old, NULL, 61, 1) == 0);      /* committed after the last sync */

    char old_state[128];
    snprintf(old_state, sizeof old_state, "%s", e.state);
    snprintf(e.state, sizeof e.state, "%s/state/machine2", e.root);
    e.takeover = 1;                                   /* the old writer is alive: take it over */
    store *nw = open_store(&e, MEMTABLE_LIMIT, 1);
    check_all(nw, &want, "new writer after takeover");
    CHECK(store_sync(old) == -EIO);                   /* fenced by the chain */
    CHECK(commit_batch(old, NULL, 61, 2) == -EIO);
    for (uint64_t b = 1; b <= 5; b++) CHECK(commit_batch(nw, &want, 62, b) == 0);
    CHECK(store_sync(nw) == 0);
    CHECK(store_close(old) == -EIO);
    CHECK(store_close(nw) == 0);
    e.takeover = 0;
    nw = open_store(&e, MEMTABLE_LIMIT, 1);
    check_all(nw, &want, "after reopen");
    CHECK(store_close(nw) == 0);
    snprintf(e.state, sizeof e.state, "%s", old_state);   /* moved aside when fenced: a fresh dir */
    nw = open_store(&e, MEMTABLE_LIMIT, 1);
    check_all(nw, &want, "from the old writer's state directory");
    CHECK(store_close(nw) == 0);
    env_free(&e);
}

/* A journal written before another state directory wrote the branch. */
static void test_stale_journal(void)
{
    env e;
    env_init(&e);
    static model m;
    model_init(&m);
    e.child_limit = 64u << 20;                            /* nothing flushed: all in the journal */
    uint64_t acked = crash_round(&e, 70, AT_BATCH, 30);   /* leaves a journal in state A */
    char state_a[128];
    snprintf(state_a, sizeof state_a, "%s", e.state);
    snprintf(e.state, sizeof e.state, "%s/state/b", e.root);
    store *st = open_store(&e, MEMTABLE_LIMIT, 1);        /* local durability: only A's flushed batches */
    uint64_t flushed = stats_of(st).seq - 1;
    CHECK(flushed < acked);                               /* A's journal held more */
    model_apply_round(&m, 70, flushed);
    CHECK(commit_batch(st, &m, 71, 1) == 0);
    CHECK(store_close(st) == 0);
    snprintf(e.state, sizeof e.state, "%s", state_a);
    st = open_store(&e, MEMTABLE_LIMIT, 1);
    CHECK(acked >= 30);
    check_all(st, &m, "a stale journal is not replayed");
    CHECK(store_close(st) == 0);
    DIR *d = opendir(state_a);
    int found = 0;
    struct dirent *de;
    while (d && (de = readdir(d))) found |= !strncmp(de->d_name, "stale-", 6);
    if (d) closedir(d);
    CHECK(found);
    env_free(&e);
}

int main(void)
{
    test_get_truncated();
    test_random_workload();
    test_crashes();
    test_lock();
    test_same_key_twice();
    test_rewrites_kept_once();
    test_scan_range();
    test_peek();
    test_remote_durability();
    test_remote_takeover();
    test_stale_journal();
    return harness_done();
}

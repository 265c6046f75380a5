/*
 * test_store.c -- one branch's store end to end on a file:// repository.
 *
 * The store glues journal, memtables, layers and manifests together; the
 * ways it can go wrong are in the glue: a version lost or resurrected when
 * a memtable is frozen, flushed or replayed, a scan merging sources in the
 * wrong order, two daemons writing one branch.  So the workload runs
 * against a reference model (key -> latest value, store_model.h) and checks
 * store_get for every key of the key space and store_scan for directory,
 * file and inode prefixes:
 *  - a random workload of thousands of batches (puts and deletes of inode,
 *    directory-entry and page keys, values of 0..8192 bytes) with a 64 KiB
 *    memtable so that many layers are flushed; checked during the run, and
 *    after close + reopen (all flushed: manifest generation > 1);
 *    meanwhile a reader thread gets and scans keys that never change, so
 *    that layer installation racing with readers shows up under ASan;
 *  - store_alloc_ino stays above every committed inode key, across reopen;
 *  - a second store_open on the same state directory fails with -EBUSY and
 *    "already mounted", in the same process and in another one;
 *  - the same key twice in one batch: the last op wins, also after a flush;
 *  - a value longer than the buffer; one key rewritten 500 times is kept
 *    once; store_scan_range over three layers and the memtable;
 *  - store_peek reads a key through any committed manifest: the value, an
 *    overwrite, a deletion, a key only an older layer holds; a missing
 *    layer is -EIO, never "no such key".
 * Crashes (kill -9 of a writer) and what the next open recovers -- the
 * local journal, durability=remote, a takeover, a stale journal -- are
 * tested in test_store_recovery.c.
 */
#include "harness.h"
#include "manifest.h"
#include "store.h"
#include "store_model.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>

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

int main(void)
{
    test_get_truncated();
    test_random_workload();
    test_lock();
    test_same_key_twice();
    test_rewrites_kept_once();
    test_scan_range();
    test_peek();
    return harness_done();
}

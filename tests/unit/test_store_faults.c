/*
 * test_store_faults.c -- the store when its object store misbehaves.
 *
 * The repository is a file:// one behind a fault-injecting wrapper
 * (os_wrap), so each fault is exact and repeatable, which the end-to-end
 * test through a real S3 server and tests/e2e/faultproxy cannot promise:
 *  - a read whose block must come from the repository, and hangs there
 *    (a slow or unreachable server), does not stall commits: the store lock
 *    is not held across object-store I/O;
 *  - nor does an upload that hangs: commits that freeze memtables meanwhile
 *    (and wake the flusher) return at once;
 *  - an outage: commits and fsyncs go on (the local journal) until the
 *    memtables reach their bound, then commits wait (backpressure), without
 *    an error; once the repository is back everything is flushed, and all
 *    of it is there after reopening; the memtable that filled last is
 *    flushed too, though no commit follows to freeze it;
 *  - a manifest commit that lands but whose answer is lost: the flusher
 *    retries the same manifest and recognises its own commit, instead of
 *    taking it for another writer's and fencing itself.
 */
#include "harness.h"
#include "store.h"
#include "objstore_backend.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define LIMIT (16u << 10)         /* memtable limit: a freeze every two batches */
#define VLEN 8192                 /* one page per batch */
#define INO 7                     /* the file the batches write */
#define MAX_FROZEN 2              /* STORE_MAX_FROZEN in store_impl.h */

/* ---- the fault-injecting object store ---- */

typedef struct faulty {
    objstore *inner;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int down;                     /* every operation fails with -EIO, changing nothing */
    int lose;                     /* answers of this many manifest puts are lost: they land, -EIO */
    int hold_gets, hold_puts;     /* gets / puts wait until cleared */
    int gets_held, puts_held;     /* waiting now */
    int lost;                     /* answers lost so far */
} faulty;

/* -EIO if F is down, else 0. */
static int f_down(faulty *f)
{
    pthread_mutex_lock(&f->mu);
    int d = f->down;
    pthread_mutex_unlock(&f->mu);
    return d ? -EIO : 0;
}

/* Wait while *HOLD is set, counted in *HELD (f->mu held). */
static void f_hold(faulty *f, int *hold, int *held)
{
    (*held)++;
    pthread_cond_broadcast(&f->cv);
    while (*hold) pthread_cond_wait(&f->cv, &f->mu);
    (*held)--;
}

/* Put, waiting while puts are held, losing the answer of a manifest put
 * when asked to. */
static int f_put(void *state, const char *key, const void *buf, size_t len)
{
    faulty *f = state;
    pthread_mutex_lock(&f->mu);
    f_hold(f, &f->hold_puts, &f->puts_held);
    pthread_mutex_unlock(&f->mu);
    if (f_down(f)) return -EIO;
    int rc = os_put_if_absent(f->inner, key, buf, len);
    pthread_mutex_lock(&f->mu);
    if (rc == 0 && f->lose > 0 && strstr(key, "/manifest/")) {
        f->lose--;
        f->lost++;
        rc = -EIO;                /* it is there, but the writer cannot know */
    }
    pthread_mutex_unlock(&f->mu);
    return rc;
}

/* Get, waiting while gets are held. */
static int f_get(void *state, const char *key, uint64_t off, uint64_t len, void **buf, size_t *outlen)
{
    faulty *f = state;
    pthread_mutex_lock(&f->mu);
    f_hold(f, &f->hold_gets, &f->gets_held);
    pthread_mutex_unlock(&f->mu);
    if (f_down(f)) return -EIO;
    return os_get(f->inner, key, off, len, buf, outlen);
}

/* Head, list, delete: fail while down, else pass through. */
static int f_head(void *state, const char *key, uint64_t *size)
{
    faulty *f = state;
    return f_down(f) ? -EIO : os_head(f->inner, key, size);
}

static int f_list(void *state, const char *prefix, char ***keys, size_t *n)
{
    faulty *f = state;
    return f_down(f) ? -EIO : os_list(f->inner, prefix, keys, n);
}

static int f_del(void *state, const char *key)
{
    faulty *f = state;
    return f_down(f) ? -EIO : os_delete(f->inner, key);
}

/* The wrapper does not own its state: env_free frees it. */
static void f_close(void *state)
{
    (void)state;
}

static const os_backend faulty_backend = {
    .close = f_close, .put_if_absent = f_put, .get = f_get, .head = f_head,
    .list = f_list, .del = f_del,
};

/* Set one field of F under its lock and wake waiters. */
static void f_set(faulty *f, int *field, int v)
{
    pthread_mutex_lock(&f->mu);
    *field = v;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
}

/* ---- repository setup ---- */

typedef struct env {
    char root[64], repo[128], state[128], url[160];
    objstore *inner, *os;         /* the repository; the faulty view of it */
    faulty f;
} env;

/* A fresh file:// repository with branch "main", seen through a faulty view. */
static void env_init(env *e)
{
    char err[256] = "";
    memset(e, 0, sizeof *e);
    harness_repo_dirs(e->root, e->repo, e->url);
    snprintf(e->state, sizeof e->state, "%s/state/main", e->root);
    if (os_open(e->url, &e->inner, err, sizeof err)) { fprintf(stderr, "os_open %s: %s\n", e->url, err); exit(2); }
    pthread_mutex_init(&e->f.mu, NULL);
    pthread_cond_init(&e->f.cv, NULL);
    e->f.inner = e->inner;
    if (os_wrap(&faulty_backend, &e->f, e->url, &e->os)) { fprintf(stderr, "os_wrap failed\n"); exit(2); }
    CHECK(store_repo_create(e->os) == 0);
    skey k;
    uint8_t root[16] = {0};
    key_inode(&k, 1);
    CHECK(store_branch_create(e->os, "main", &k, root, sizeof root) == 0);
}

static void env_free(env *e)
{
    os_close(e->os);
    os_close(e->inner);
    pthread_mutex_destroy(&e->f.mu);
    pthread_cond_destroy(&e->f.cv);
    harness_rmtree(e->root);
}

/* Open branch "main" of E with its flusher running, or fail the run. */
static store *open_store(env *e)
{
    char err[512] = "";
    store_config cfg = { .os = e->os, .branch = "main", .state_dir = e->state, .memtable_limit = LIMIT,
                         .compaction_off = 1 };   /* generations counted here are flushes */
    store *st = NULL;
    if (store_open(&cfg, &st, err, sizeof err)) { fprintf(stderr, "store_open: %s\n", err); exit(2); }
    if (store_start(st)) { fprintf(stderr, "store_start failed\n"); exit(2); }
    return st;
}

static store_stats stats_of(store *st)
{
    store_stats s;
    store_get_stats(st, &s);
    return s;
}

/* The value of page I: VLEN bytes derived from I. */
static void page_val(uint64_t i, uint8_t *buf)
{
    uint64_t x = i * 0x9e3779b97f4a7c15ull + 0x632be59bd9b4e019ull;
    for (size_t j = 0; j < VLEN; j++) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        buf[j] = (uint8_t)x;
    }
}

/* Commit page I (one batch); the store's return code. */
static int put_page(store *st, uint64_t i)
{
    static _Thread_local uint8_t val[VLEN];
    store_batch b;
    skey k;
    store_batch_init(&b);
    key_page(&k, INO, i);
    page_val(i, val);
    store_batch_put(&b, &k, val, VLEN);
    int rc = store_commit(st, &b);
    store_batch_free(&b);
    return rc;
}

/* 1 if page I reads back with its value. */
static int page_ok(store *st, uint64_t i)
{
    static _Thread_local uint8_t got[VLEN + 16], want[VLEN];
    skey k;
    size_t len = 0;
    key_page(&k, INO, i);
    page_val(i, want);
    return store_get(st, &k, got, sizeof got, &len) == 0 && len == VLEN && !memcmp(got, want, VLEN);
}

/* Pages 0..N-1 all read back (after reopening E). */
static void check_pages_after_reopen(env *e, uint64_t n)
{
    store *st = open_store(e);
    uint64_t bad = 0;
    for (uint64_t i = 0; i < n; i++) bad += !page_ok(st, i);
    CHECK(bad == 0);
    CHECK(store_close(st) == 0);
}

/* Milliseconds since some fixed point. */
static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

/* Poll until the manifest generation of ST reaches GEN (60 s at most). */
static int wait_gen(store *st, uint64_t gen)
{
    for (int64_t end = now_ms() + 60000; now_ms() < end; sleep_ms(10))
        if (stats_of(st).manifest_gen >= gen) return 1;
    return 0;
}

/* ---- a read hanging in the repository does not stall commits ---- */

typedef struct job {
    store *st;
    uint64_t from, to;            /* pages to commit, or the page to read (from) */
    int rc;                       /* first failure */
    int done;                     /* pages committed / the read finished (atomic) */
} job;

static void *reader_main(void *arg)
{
    job *j = arg;
    j->rc = page_ok(j->st, j->from) ? 0 : -EIO;
    __atomic_store_n(&j->done, 1, __ATOMIC_SEQ_CST);
    return NULL;
}

static void *writer_main(void *arg)
{
    job *j = arg;
    for (uint64_t i = j->from; i < j->to; i++) {
        int rc = put_page(j->st, i);
        if (rc && !j->rc) j->rc = rc;
        __atomic_add_fetch(&j->done, 1, __ATOMIC_SEQ_CST);
    }
    return NULL;
}

/* Poll until *P reaches WANT or MS pass; 1 if it did. */
static int wait_count(int *p, int want, int ms)
{
    for (int64_t end = now_ms() + ms; now_ms() < end; sleep_ms(5))
        if (__atomic_load_n(p, __ATOMIC_SEQ_CST) >= want) return 1;
    return __atomic_load_n(p, __ATOMIC_SEQ_CST) >= want;
}

static void test_read_does_not_stall_commits(void)
{
    env e;
    env_init(&e);
    store *st = open_store(&e);
    uint64_t seq, gen;
    for (uint64_t i = 0; i < 8; i++) CHECK(put_page(st, i) == 0);
    CHECK(store_checkpoint(st, &seq, &gen) == 0);   /* all flushed: page 0 is in a layer */

    f_set(&e.f, &e.f.hold_gets, 1);           /* the repository stops answering reads */
    job r = { st, 0, 0, 0, 0 };
    pthread_t rt, wt;
    pthread_create(&rt, NULL, reader_main, &r);
    pthread_mutex_lock(&e.f.mu);
    while (!e.f.gets_held) pthread_cond_wait(&e.f.cv, &e.f.mu);
    pthread_mutex_unlock(&e.f.mu);

    job w = { st, 100, 103, 0, 0 };           /* commits while the read hangs */
    pthread_create(&wt, NULL, writer_main, &w);
    CHECK(wait_count(&w.done, 3, 10000));
    CHECK(store_sync(st) == 0);
    CHECK(!__atomic_load_n(&r.done, __ATOMIC_SEQ_CST));
    f_set(&e.f, &e.f.hold_gets, 0);
    pthread_join(rt, NULL);
    pthread_join(wt, NULL);
    CHECK(r.rc == 0);
    CHECK(w.rc == 0);
    CHECK(page_ok(st, 101));
    CHECK(store_close(st) == 0);
    env_free(&e);
}

/* ---- an upload hanging in the repository does not stall commits ---- */

static void test_upload_does_not_stall_commits(void)
{
    env e;
    env_init(&e);
    store *st = open_store(&e);
    uint64_t gen0 = stats_of(st).manifest_gen;
    f_set(&e.f, &e.f.hold_puts, 1);           /* uploads hang */
    job w = { st, 0, 2 * MAX_FROZEN, 0, 0 };  /* MAX_FROZEN freezes, each waking the flusher */
    pthread_t wt;
    pthread_create(&wt, NULL, writer_main, &w);
    CHECK(wait_count(&w.done, 2 * MAX_FROZEN, 10000));
    CHECK(store_sync(st) == 0);
    pthread_mutex_lock(&e.f.mu);
    CHECK(e.f.puts_held == 1);                /* the flusher, in its first upload */
    pthread_mutex_unlock(&e.f.mu);
    f_set(&e.f, &e.f.hold_puts, 0);
    pthread_join(wt, NULL);
    CHECK(w.rc == 0);
    CHECK(wait_gen(st, gen0 + MAX_FROZEN));
    CHECK(store_close(st) == 0);
    check_pages_after_reopen(&e, 2 * MAX_FROZEN);
    env_free(&e);
}

/* ---- an outage: commits go on, then wait; nothing is lost ---- */

static void test_outage_backpressure(void)
{
    env e;
    env_init(&e);
    store *st = open_store(&e);
    uint64_t gen0 = stats_of(st).manifest_gen;
    for (uint64_t i = 0; i < 4; i++) CHECK(put_page(st, i) == 0);
    CHECK(wait_gen(st, gen0 + 2));            /* both memtables flushed */

    f_set(&e.f, &e.f.down, 1);
    const int n = 100;            /* far more than the memtables may hold */
    job w = { st, 4, 4 + (uint64_t)n, 0, 0 };
    pthread_t wt;
    pthread_create(&wt, NULL, writer_main, &w);
    /* commits go on while the memtables have room, then stop: wait until
     * the count holds still for a while */
    int last = -1, same = 0;
    for (int64_t end = now_ms() + 30000; now_ms() < end && same < 50; sleep_ms(10)) {
        int d = __atomic_load_n(&w.done, __ATOMIC_SEQ_CST);
        same = d == last ? same + 1 : 0;
        last = d;
    }
    int held = __atomic_load_n(&w.done, __ATOMIC_SEQ_CST);
    store_stats s = stats_of(st);
    printf("outage: %d of %d commits done before the memtables were full (%llu bytes)\n", held, n,
           (unsigned long long)s.memtable_bytes);
    CHECK(held >= 2 * MAX_FROZEN);            /* commits went on without the repository */
    CHECK(held < n);                          /* ... and then waited */
    CHECK(w.rc == 0);                         /* ... without failing */
    CHECK(s.memtable_bytes <= (MAX_FROZEN + 1) * (LIMIT + 2 * VLEN));
    CHECK(s.manifest_gen == gen0 + 2);
    CHECK(store_sync(st) == 0);               /* fsync needs only the journal */
    CHECK(page_ok(st, 4 + (uint64_t)held - 1));   /* a read of a memtable */

    f_set(&e.f, &e.f.down, 0);                /* back: the flusher catches up */
    pthread_join(wt, NULL);
    CHECK(w.rc == 0);
    CHECK(w.done == n);
    CHECK(stats_of(st).manifest_gen > gen0 + 2);
    CHECK(store_close(st) == 0);
    check_pages_after_reopen(&e, 4 + (uint64_t)n);
    env_free(&e);
}

/* ---- the memtable that filled during an outage is flushed without another commit ---- */

static void test_outage_last_memtable(void)
{
    env e;
    env_init(&e);
    store *st = open_store(&e);
    uint64_t gen0 = stats_of(st).manifest_gen;
    f_set(&e.f, &e.f.down, 1);
    /* every memtable full: the last commit finds no room to freeze the
     * active one and makes later commits wait; none follows */
    const uint64_t n = 2 * (MAX_FROZEN + 1);
    for (uint64_t i = 0; i < n; i++) CHECK(put_page(st, i) == 0);
    f_set(&e.f, &e.f.down, 0);
    CHECK(wait_gen(st, gen0 + MAX_FROZEN + 1));   /* the active one too */
    CHECK(stats_of(st).memtable_bytes == 0);
    CHECK(store_close(st) == 0);
    check_pages_after_reopen(&e, n);
    env_free(&e);
}

/* ---- a lost answer to a manifest commit ---- */

static void test_lost_commit_answer(void)
{
    env e;
    env_init(&e);
    store *st = open_store(&e);
    uint64_t gen0 = stats_of(st).manifest_gen;
    f_set(&e.f, &e.f.lose, 1);
    for (uint64_t i = 0; i < 4; i++) CHECK(put_page(st, i) == 0);
    CHECK(wait_gen(st, gen0 + 1));            /* committed on the retry, as our own */
    CHECK(e.f.lost == 1);
    CHECK(put_page(st, 4) == 0);              /* not fenced */
    CHECK(store_sync(st) == 0);
    for (uint64_t i = 5; i < 8; i++) CHECK(put_page(st, i) == 0);
    CHECK(wait_gen(st, gen0 + 4));            /* and the next flushes follow */
    CHECK(store_close(st) == 0);
    check_pages_after_reopen(&e, 8);
    env_free(&e);
}

int main(void)
{
    test_read_does_not_stall_commits();
    test_upload_does_not_stall_commits();
    test_outage_backpressure();
    test_outage_last_memtable();
    test_lost_commit_answer();
    return harness_done();
}

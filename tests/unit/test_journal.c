/*
 * test_journal.c -- the local write-ahead journal.
 *
 * The journal is what makes an acknowledged write survive kill -9, so the
 * tests check exactly the promises the store relies on:
 *  - round trip: records of random sizes (incl. 0 and large) come back in
 *    order and byte-identical on every reopen, also across several files;
 *  - crash at every write: a prefix of EVERY length of a journal file (the
 *    state a torn append can leave) replays exactly the records complete
 *    within it, never a partial one, and is truncated to the last complete
 *    record; also when an older, complete file precedes it;
 *  - a damaged record that is not at the tail (an older file) is an error
 *    (-EIO), not silently skipped data; a replay callback error propagates;
 *  - journal_sync from many threads while others append (and rotate) all
 *    return 0, and nothing appended is lost or reordered;
 *  - rotate + drop delete old files and keep the current one;
 *  - files written in place: spares reused, their old contents never
 *    replayed, ids above every spare's.
 * Record layout (journal.h): 16-byte header + payload, so record boundaries
 * are computed here from the payload sizes.
 */
#include "harness.h"
#include "journal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#define HDR 16

static uint64_t rng = 0x9e3779b97f4a7c15ull;

/* xorshift64: deterministic random numbers. */
static uint64_t rnd(void)
{
    rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
    return rng;
}

/* LEN bytes derived from SEED into BUF. */
static void fill(uint8_t *buf, size_t len, uint64_t seed)
{
    uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;
    for (size_t i = 0; i < len; i++) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        buf[i] = (uint8_t)(x >> 32);
    }
}

/* ---- a list of payloads: what was appended, and what replay delivered ---- */

typedef struct rec {
    uint8_t *p;
    size_t len;
} rec;

typedef struct reclist {
    rec *r;
    size_t n, cap;
    int fail_at;                  /* replay callback: return -EPROTO at this index (0: never) */
} reclist;

static void reclist_add(reclist *l, const uint8_t *p, size_t len)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 16;
        l->r = realloc(l->r, l->cap * sizeof *l->r);
        if (!l->r) abort();
    }
    l->r[l->n].p = malloc(len + 1);
    if (!l->r[l->n].p) abort();
    memcpy(l->r[l->n].p, p, len);
    l->r[l->n++].len = len;
}

static void reclist_free(reclist *l)
{
    for (size_t i = 0; i < l->n; i++) free(l->r[i].p);
    free(l->r);
    memset(l, 0, sizeof *l);
}

/* Replay callback collecting payloads into a reclist. */
static int collect(void *arg, const uint8_t *payload, size_t len)
{
    reclist *l = arg;
    if (l->fail_at && l->n + 1 == (size_t)l->fail_at) return -EPROTO;
    reclist_add(l, payload, len);
    return 0;
}

/* Do the first N records of GOT equal those of WANT (and GOT has exactly N)? */
static int same_records(const reclist *got, const reclist *want, size_t n)
{
    if (got->n != n || want->n < n) return 0;
    for (size_t i = 0; i < n; i++)
        if (got->r[i].len != want->r[i].len || memcmp(got->r[i].p, want->r[i].p, want->r[i].len))
            return 0;
    return 1;
}

/* Append a record of LEN random bytes to J and to the model M. */
static int append_random(journal *j, reclist *m, size_t len)
{
    uint8_t *p = malloc(len + 1);
    fill(p, len, rnd());
    int rc = journal_append(j, p, len);
    if (rc == 0) reclist_add(m, p, len);
    free(p);
    return rc;
}

/* Open DIR, collecting the replay into a fresh GOT; returns journal_open's rc. */
static int open_collect(const char *dir, reclist *got, journal **j)
{
    reclist_free(got);
    *j = NULL;
    return journal_open(dir, collect, got, j);
}

/* ---- file helpers ---- */

static void jpath(const char *dir, uint64_t id, char *buf, size_t len)
{
    snprintf(buf, len, "%s/journal.%016" PRIx64, dir, id);
}

/* Ids of the journal.* files in DIR, ascending, into IDS (at most MAX). */
static size_t list_ids(const char *dir, uint64_t *ids, size_t max)
{
    DIR *d = opendir(dir);
    size_t n = 0;
    struct dirent *de;
    while (d && (de = readdir(d)))
        if (!strncmp(de->d_name, "journal.", 8) && n < max)
            ids[n++] = strtoull(de->d_name + 8, NULL, 16);
    if (d) closedir(d);
    for (size_t i = 1; i < n; i++)
        for (size_t k = i; k > 0 && ids[k - 1] > ids[k]; k--) {
            uint64_t t = ids[k]; ids[k] = ids[k - 1]; ids[k - 1] = t;
        }
    return n;
}

static long file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) < 0 ? -1 : (long)st.st_size;
}

/* Whole file into a malloc'd buffer; length in *LEN. */
static uint8_t *read_all(const char *path, size_t *len)
{
    long sz = file_size(path);
    int fd = open(path, O_RDONLY);
    if (sz < 0 || fd < 0) abort();
    uint8_t *buf = malloc((size_t)sz + 1);
    if (pread(fd, buf, (size_t)sz, 0) != sz) abort();
    close(fd);
    *len = (size_t)sz;
    return buf;
}

static void write_all(const char *path, const uint8_t *buf, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || write(fd, buf, len) != (ssize_t)len) abort();
    close(fd);
}

/* Send stderr (the journal's expected error logs) to /dev/null; returns
 * the saved descriptor for loud(). */
static int quiet(void)
{
    fflush(stderr);
    int saved = dup(2), fd = open("/dev/null", O_WRONLY);
    dup2(fd, 2);
    close(fd);
    return saved;
}

static void loud(int saved)
{
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
}

/* ---- tests ---- */

/* Records of random sizes survive close/reopen, in order, over several opens. */
static void test_roundtrip(void)
{
    char dir[64];
    harness_tmpdir(dir);
    reclist model = {0}, got = {0};
    journal *j;
    CHECK(open_collect(dir, &got, &j) == 0 && got.n == 0);
    int bad = 0;
    for (int i = 0; i < 300; i++) {
        size_t len = i == 7 ? 200000 : rnd() % 6 == 0 ? 0 : rnd() % 5000;
        bad += append_random(j, &model, len) != 0;
    }
    CHECK(bad == 0);
    journal_close(j);
    CHECK(open_collect(dir, &got, &j) == 0);
    CHECK(same_records(&got, &model, model.n));
    for (int i = 0; i < 50; i++) bad += append_random(j, &model, rnd() % 300);
    CHECK(bad == 0);
    CHECK(journal_sync(j) == 0);
    journal_close(j);
    CHECK(open_collect(dir, &got, &j) == 0);          /* now across two files */
    CHECK(same_records(&got, &model, model.n));
    journal_close(j);
    uint64_t ids[16];
    CHECK(list_ids(dir, ids, 16) == 3);               /* each open starts a file */
    reclist_free(&got);
    reclist_free(&model);
    harness_rmtree(dir);
}

/* Build journal file ID (its records carry the id's tag) with the payload
 * sizes SIZES; image in *IMG. */
static uint8_t *build_file(uint64_t id, const size_t *sizes, size_t n, reclist *model, size_t *imglen)
{
    char dir[64], path[128];
    harness_tmpdir(dir);
    reclist got = {0};
    journal *j;
    if (id > 1) {                 /* an empty file before it: the journal starts file ID */
        jpath(dir, id - 1, path, sizeof path);
        write_all(path, NULL, 0);
    }
    if (open_collect(dir, &got, &j)) abort();
    for (size_t i = 0; i < n; i++)
        if (append_random(j, model, sizes[i])) abort();
    journal_close(j);
    jpath(dir, id, path, sizeof path);
    uint8_t *img = read_all(path, imglen);
    reclist_free(&got);
    harness_rmtree(dir);
    return img;
}

/* Number of records of MODEL complete within L bytes, and their end offset. */
static size_t complete_within(const reclist *model, size_t l, size_t *end)
{
    size_t off = 0, k = 0;
    while (k < model->n && off + HDR + model->r[k].len <= l) off += HDR + model->r[k++].len;
    *end = off;
    return k;
}

/* For each prefix length in LENS of journal file IMG, replay gives exactly
 * the complete records and truncates to them; OLDER (if not NULL) is a
 * complete older file put in front. */
static void torn_tail_at(const size_t *lens, size_t nlens, const uint8_t *img,
                         const reclist *model, const uint8_t *older, size_t olen,
                         const reclist *omodel)
{
    size_t bad_replay = 0, bad_trunc = 0, bad_open = 0;
    for (size_t li = 0; li < nlens; li++) {
        size_t l = lens[li];
        char dir[64], path[128];
        harness_tmpdir(dir);
        uint64_t id = 1;
        if (older) {
            jpath(dir, id++, path, sizeof path);
            write_all(path, older, olen);
        }
        jpath(dir, id, path, sizeof path);
        write_all(path, img, l);
        reclist got = {0};
        journal *j;
        if (open_collect(dir, &got, &j) != 0) { bad_open++; harness_rmtree(dir); continue; }
        size_t end, k = complete_within(model, l, &end), base = omodel ? omodel->n : 0;
        int ok = got.n == base + k;
        for (size_t i = 0; ok && i < got.n; i++) {
            const rec *w = i < base ? &omodel->r[i] : &model->r[i - base];
            ok = got.r[i].len == w->len && !memcmp(got.r[i].p, w->p, w->len);
        }
        bad_replay += !ok;
        bad_trunc += file_size(path) != (long)end;
        journal_close(j);
        reclist_free(&got);
        harness_rmtree(dir);
    }
    CHECK(bad_open == 0);
    CHECK(bad_replay == 0);
    CHECK(bad_trunc == 0);
}

/* Every length 0..SIZE into LENS (SIZE + 1 entries). */
static size_t every_length(size_t size, size_t *lens)
{
    for (size_t l = 0; l <= size; l++) lens[l] = l;
    return size + 1;
}

/* Lengths around each record boundary of MODEL (-1, 0, +1, mid-header). */
static size_t boundary_lengths(const reclist *model, size_t size, size_t *lens)
{
    size_t n = 0, off = 0;
    for (size_t k = 0; k <= model->n; k++) {
        if (off > 0) lens[n++] = off - 1;
        lens[n++] = off;
        if (off < size) { lens[n++] = off + 1; lens[n++] = off + HDR / 2; }
        if (k < model->n) off += HDR + model->r[k].len;
    }
    return n;
}

static void test_torn_tail(void)
{
    static const size_t sizes[] = { 3, 0, 9, 1, 0, 14, 2 };
    static const size_t osizes[] = { 12, 0, 7 };
    reclist model = {0}, model2 = {0}, omodel = {0};
    size_t size, size2, olen, end, lens[512], n;
    uint8_t *img = build_file(1, sizes, sizeof sizes / sizeof sizes[0], &model, &size);
    uint8_t *img2 = build_file(2, sizes, sizeof sizes / sizeof sizes[0], &model2, &size2);
    uint8_t *older = build_file(1, osizes, sizeof osizes / sizeof osizes[0], &omodel, &olen);
    CHECK(size < sizeof lens / sizeof lens[0]);
    CHECK(complete_within(&model, size, &end) == model.n && end == size);   /* layout as documented */
    n = every_length(size, lens);
    torn_tail_at(lens, n, img, &model, NULL, 0, NULL);
    n = boundary_lengths(&model2, size2, lens);
    torn_tail_at(lens, n, img2, &model2, older, olen, &omodel);
    free(img); free(img2); free(older);
    reclist_free(&model); reclist_free(&model2); reclist_free(&omodel);
}

/* A flipped byte in the middle record of an older file: -EIO, at every
 * byte of the record (the header's tag too: it no longer names the file). */
static void test_damaged_older_file(void)
{
    static const size_t sizes[] = { 20, 30, 25 };
    reclist model = {0}, model2 = {0};
    size_t size, size2;
    uint8_t *img = build_file(1, sizes, 3, &model, &size);
    uint8_t *img2 = build_file(2, sizes, 2, &model2, &size2);
    size_t mid = HDR + sizes[0], bad = 0, ok_clean = 0;
    int saved = quiet();
    for (size_t pos = mid; pos < mid + HDR + sizes[1]; pos++) {
        for (int pass = 0; pass < 2; pass++) {
            char dir[64], path[128];
            harness_tmpdir(dir);
            uint8_t *copy = malloc(size);
            memcpy(copy, img, size);
            if (pass) copy[pos] ^= (uint8_t)(1u << (pos % 8));
            jpath(dir, 1, path, sizeof path);
            write_all(path, copy, size);
            jpath(dir, 2, path, sizeof path);
            write_all(path, img2, size2);
            reclist got = {0};
            journal *j = NULL;
            int rc = open_collect(dir, &got, &j);
            if (!pass) ok_clean += rc == 0 && got.n == 5;
            else bad += rc != -EIO;
            if (rc == 0) journal_close(j);
            reclist_free(&got);
            free(copy);
            harness_rmtree(dir);
        }
    }
    loud(saved);
    CHECK(ok_clean == HDR + sizes[1]);
    CHECK(bad == 0);
    free(img); free(img2);
    reclist_free(&model); reclist_free(&model2);
}

/* A replay callback's error stops the replay and is returned. */
static void test_callback_error(void)
{
    char dir[64];
    harness_tmpdir(dir);
    reclist model = {0}, got = {0};
    journal *j;
    CHECK(open_collect(dir, &got, &j) == 0);
    for (int i = 0; i < 5; i++) append_random(j, &model, 10);
    journal_close(j);
    reclist_free(&got);
    got.fail_at = 3;
    j = NULL;
    CHECK(journal_open(dir, collect, &got, &j) == -EPROTO);
    CHECK(j == NULL && got.n == 2);
    reclist_free(&got);
    CHECK(open_collect(dir, &got, &j) == 0);          /* nothing was truncated */
    CHECK(same_records(&got, &model, 5));
    journal_close(j);
    reclist_free(&got);
    reclist_free(&model);
    harness_rmtree(dir);
}

/* ---- concurrency: syncs racing appends and rotations ---- */

#define APPENDERS 3
#define SYNCERS 4
#define PER_THREAD 400

typedef struct shared {
    journal *j;
    pthread_mutex_t append_mu;    /* the store's write lock */
    int appenders_left;
    int sync_errors, append_errors, rotate_errors, syncs;
} shared;

typedef struct worker {
    shared *sh;
    int id;
} worker;

static void *appender(void *arg)
{
    worker *w = arg;
    for (uint32_t i = 0; i < PER_THREAD; i++) {
        uint32_t rec[2] = { (uint32_t)w->id, i };
        pthread_mutex_lock(&w->sh->append_mu);
        if (journal_append(w->sh->j, rec, sizeof rec)) w->sh->append_errors++;
        if (w->id == 0 && i % 97 == 50) {            /* the store rotates under its lock */
            uint64_t old;
            if (journal_rotate(w->sh->j, &old)) w->sh->rotate_errors++;
        }
        pthread_mutex_unlock(&w->sh->append_mu);
    }
    pthread_mutex_lock(&w->sh->append_mu);
    w->sh->appenders_left--;
    pthread_mutex_unlock(&w->sh->append_mu);
    return NULL;
}

static void *syncer(void *arg)
{
    worker *w = arg;
    for (;;) {
        pthread_mutex_lock(&w->sh->append_mu);
        int left = w->sh->appenders_left;
        pthread_mutex_unlock(&w->sh->append_mu);
        int rc = journal_sync(w->sh->j);
        pthread_mutex_lock(&w->sh->append_mu);
        w->sh->syncs++;
        if (rc) w->sh->sync_errors++;
        pthread_mutex_unlock(&w->sh->append_mu);
        if (!left) break;
    }
    return NULL;
}

/* Every appended record is in the replay once, each thread's in order. */
static int check_threads_replay(const reclist *got)
{
    uint32_t next[APPENDERS] = {0};
    for (size_t i = 0; i < got->n; i++) {
        uint32_t rec[2];
        if (got->r[i].len != sizeof rec) return 0;
        memcpy(rec, got->r[i].p, sizeof rec);
        if (rec[0] >= APPENDERS || rec[1] != next[rec[0]]) return 0;
        next[rec[0]]++;
    }
    for (int t = 0; t < APPENDERS; t++)
        if (next[t] != PER_THREAD) return 0;
    return 1;
}

static void test_concurrent_sync(void)
{
    char dir[64];
    harness_tmpdir(dir);
    reclist got = {0};
    shared sh = { .appenders_left = APPENDERS };
    pthread_mutex_init(&sh.append_mu, NULL);
    CHECK(open_collect(dir, &got, &sh.j) == 0);
    pthread_t th[APPENDERS + SYNCERS];
    worker w[APPENDERS + SYNCERS];
    for (int i = 0; i < APPENDERS + SYNCERS; i++) {
        w[i] = (worker){ &sh, i };
        pthread_create(&th[i], NULL, i < APPENDERS ? appender : syncer, &w[i]);
    }
    for (int i = 0; i < APPENDERS + SYNCERS; i++) pthread_join(th[i], NULL);
    CHECK(sh.append_errors == 0);
    CHECK(sh.rotate_errors == 0);
    CHECK(sh.sync_errors == 0);
    CHECK(sh.syncs >= SYNCERS);
    CHECK(journal_sync(sh.j) == 0);                   /* nothing pending: returns at once */
    journal_close(sh.j);
    CHECK(open_collect(dir, &got, &sh.j) == 0);
    CHECK(check_threads_replay(&got));
    journal_close(sh.j);
    pthread_mutex_destroy(&sh.append_mu);
    reclist_free(&got);
    harness_rmtree(dir);
}

/* Rotation ids, and drop removing old files but never the current one. */
static void test_rotate_drop(void)
{
    char dir[64], path[128];
    harness_tmpdir(dir);
    reclist model = {0}, got = {0};
    journal *j;
    uint64_t ids[16], old1 = 0, old2 = 0;
    CHECK(open_collect(dir, &got, &j) == 0);
    append_random(j, &model, 10);
    append_random(j, &model, 0);
    CHECK(journal_rotate(j, &old1) == 0);
    CHECK(old1 == 1);
    append_random(j, &model, 20);
    CHECK(journal_rotate(j, &old2) == 0);
    CHECK(old2 == 2);
    CHECK(list_ids(dir, ids, 16) == 3 && ids[0] == 1 && ids[1] == 2 && ids[2] == 3);
    jpath(dir, 1, path, sizeof path);
    CHECK(file_size(path) == 3 * HDR + 10);           /* rotation closed it: its records, the end record */
    CHECK(journal_drop(j, old1) == 0);
    CHECK(list_ids(dir, ids, 16) == 2 && ids[0] == 2 && ids[1] == 3);
    reclist tail = {0};
    append_random(j, &tail, 33);
    CHECK(journal_drop(j, UINT64_MAX) == 0);          /* the current file stays */
    CHECK(list_ids(dir, ids, 16) == 1 && ids[0] == 3);
    journal_close(j);
    CHECK(open_collect(dir, &got, &j) == 0);
    CHECK(same_records(&got, &tail, 1));              /* only what the current file held */
    CHECK(list_ids(dir, ids, 16) == 2 && ids[1] == 4);
    journal_close(j);
    reclist_free(&got); reclist_free(&model); reclist_free(&tail);
    harness_rmtree(dir);
}

/* Spares in DIR, and the largest id in their names into *MAXID. */
static size_t count_spares(const char *dir, uint64_t *maxid)
{
    DIR *d = opendir(dir);
    size_t n = 0;
    struct dirent *de;
    *maxid = 0;
    while (d && (de = readdir(d)))
        if (!strncmp(de->d_name, "journal-spare.", 14)) {
            uint64_t id = strtoull(de->d_name + 14, NULL, 16);
            if (id > *maxid) *maxid = id;
            n++;
        }
    if (d) closedir(d);
    return n;
}

/* Files written in place: dropped files become spares, later files reuse
 * them, and what an earlier use left in them is never replayed -- not
 * after the last record of the current file (no end record: a crash), not
 * after the end record of an older one; and with every journal file gone
 * (set aside), the next file's id is above every spare's. */
static void test_reuse(void)
{
    char dir[64], path[128];
    harness_tmpdir(dir);
    reclist old = {0}, now = {0}, got = {0};
    journal *j;
    uint64_t ids[64], upto, maxid;
    journal_file_bytes_set(4096);
    CHECK(open_collect(dir, &got, &j) == 0);
    for (int i = 0; i < 60; i++) append_random(j, &old, 200 + (size_t)(rnd() % 200));
    CHECK(list_ids(dir, ids, 64) >= 5);               /* switched at ~4 KiB */
    CHECK(journal_rotate(j, &upto) == 0);
    CHECK(journal_drop(j, upto) == 0);
    size_t spares = count_spares(dir, &maxid);
    CHECK(spares == 4);                               /* JOURNAL_SPARES; the rest deleted */
    CHECK(list_ids(dir, ids, 64) == 1);
    for (int i = 0; i < 60; i++) append_random(j, &now, 100 + (size_t)(rnd() % 100));
    CHECK(count_spares(dir, &maxid) < spares);        /* taken and written over */
    CHECK(journal_sync(j) == 0);
    journal_close(j);                                 /* no end record: as after a crash */
    CHECK(open_collect(dir, &got, &j) == 0);
    CHECK(same_records(&got, &now, now.n));           /* none of the earlier contents */
    journal_close(j);

    /* every journal file set aside: the spares' old tags stay below */
    size_t n = list_ids(dir, ids, 64);
    for (size_t i = 0; i < n; i++) {
        jpath(dir, ids[i], path, sizeof path);
        unlink(path);
    }
    count_spares(dir, &maxid);
    reclist fresh = {0};
    CHECK(open_collect(dir, &got, &j) == 0 && got.n == 0);
    CHECK(list_ids(dir, ids, 64) == 1 && ids[0] > maxid);
    for (int i = 0; i < 5; i++) append_random(j, &fresh, 150);
    journal_close(j);
    CHECK(open_collect(dir, &got, &j) == 0);
    CHECK(same_records(&got, &fresh, fresh.n));
    journal_close(j);
    journal_file_bytes_set(0);
    reclist_free(&old); reclist_free(&now); reclist_free(&fresh); reclist_free(&got);
    harness_rmtree(dir);
}

/* A missing directory is an error, not a crash. */
static void test_missing_dir(void)
{
    journal *j = NULL;
    reclist got = {0};
    CHECK(journal_open("/nonexistent/lakefs-journal-test", collect, &got, &j) == -ENOENT);
    CHECK(j == NULL);
}

int main(void)
{
    test_roundtrip();
    test_torn_tail();
    test_damaged_older_file();
    test_callback_error();
    test_concurrent_sync();
    test_rotate_drop();
    test_reuse();
    test_missing_dir();
    return harness_done();
}

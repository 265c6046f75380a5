/*
 * test_store_snapshot.c -- store_open_snapshot: one committed generation of
 * a branch as a throw-away overlay (time-travel views are built on it).
 *
 * What can go wrong: the snapshot shows a later state than the generation
 * asked for (the newest manifest, the journal of a mounted writer), or
 * its own commits are lost or leak into the branch; and above all the
 * snapshot writes to the repository -- a manifest generation (a fence
 * against the real writer), a lease, a layer flushed from a full memtable,
 * a remote journal -- which would corrupt or fence the branch it only
 * looks at.  Checked, on a file:// repository whose branch "main" has
 * generations with different contents:
 *  - a snapshot of an older generation reads that generation's state (the
 *    values, deleted keys absent, keys added later absent; scans too),
 *    stats name that generation; a snapshot of generation 1 holds only the
 *    root;
 *  - commits to it (puts, a delete, an overwrite, 70 MiB of pages: past
 *    the memtable limit) are visible to its own gets and scans;
 *    store_start and store_sync return 0, store_checkpoint -EROFS;
 *    store_close returns 0 and frees everything (ASan checks for leaks);
 *  - the repository directory (every path, type, size, inode, mtime and
 *    content) is identical before and after all of that, and no state
 *    directory appears;
 *  - a snapshot opened while the branch is mounted read-write: neither
 *    sees the other's writes, and the writer can still commit, checkpoint
 *    and close (it was not fenced);
 *  - a generation or branch that does not exist fails with a message
 *    naming it, and leaves *out alone;
 *  - store_spill (a view's overlay on disk): 4 MiB of pages, overwrites of
 *    the base's pages and a delete past a 256 KiB memtable limit hold at
 *    most 4 limits in memory, go to layers in the scratch directory (one
 *    file each), and read back exactly (gets and scans, base keys the
 *    overlay did not touch included); the repository is unchanged and the
 *    directory is gone after store_close; with limit 0 (the default, 64
 *    MiB) 1 MiB stays in memory; a second store_spill, one on a
 *    writable store and one into a directory that cannot be made fail with
 *    a message; os_scratch_remove removes a directory left behind.
 */
#include "harness.h"
#include "manifest.h"
#include "store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <sys/stat.h>
#include <unistd.h>
#include "harness_repo.h"


/* Open main read-write (harness_repo.h). */
static store *open_main(env *e) { return env_open(e, "main", 0); }

static store *snapshot(env *e, uint64_t gen)
{
    char err[512] = "";
    store *st = NULL;
    if (store_open_snapshot(e->os, "main", gen, &st, err, sizeof err)) {
        fprintf(stderr, "store_open_snapshot %" PRIu64 ": %s\n", gen, err);
        exit(2);
    }
    return st;
}

/* The key of test entry I: a directory entry of directory 7 (so they scan together). */
static void key_of(skey *k, int i)
{
    char name[16];
    snprintf(name, sizeof name, "k%02d", i);
    key_dirent(k, 7, name, strlen(name));
}

/* Commit puts of "VAL" to entries I (VAL NULL: delete). */
static void put(store *st, int i, const char *val)
{
    store_batch b;
    skey k;
    key_of(&k, i);
    store_batch_init(&b);
    if (val) store_batch_put(&b, &k, val, strlen(val));
    else store_batch_del(&b, &k);
    CHECK(store_commit(st, &b) == 0);
    store_batch_free(&b);
}

/* 1 if entry I reads as WANT (NULL: absent). */
static int reads(store *st, int i, const char *want)
{
    char buf[64];
    size_t vlen = 0;
    skey k;
    key_of(&k, i);
    int rc = store_get(st, &k, buf, sizeof buf, &vlen);
    if (!want) return rc == -ENOENT;
    return rc == 0 && vlen == strlen(want) && !memcmp(buf, want, vlen);
}

typedef struct scan_acc {
    char text[512];               /* "k01=v1 k02=v2 " */
} scan_acc;

static int scan_fn(void *arg, const uint8_t *key, size_t klen, const void *val, size_t vlen)
{
    scan_acc *a = arg;
    size_t n = strlen(a->text);
    snprintf(a->text + n, sizeof a->text - n, "%.*s=%.*s ", (int)(klen - 9), (const char *)key + 9, (int)vlen,
             (const char *)val);
    return 0;
}

/* 1 if the entries of directory 7 scan as WANT. */
static int scans(store *st, const char *want)
{
    scan_acc a = { "" };
    skey k;
    key_dirent(&k, 7, "", 0);
    int rc = store_scan(st, k.b, k.len, scan_fn, &a);
    if (rc || strcmp(a.text, want)) fprintf(stderr, "  scan: rc %d '%s', want '%s'\n", rc, a.text, want);
    return rc == 0 && !strcmp(a.text, want);
}

static uint64_t checkpoint(store *st)
{
    uint64_t seq = 0, gen = 0;
    CHECK(store_checkpoint(st, &seq, &gen) == 0);
    return gen;
}

/* ---- a picture of a directory tree ---- */

typedef struct picture {
    char *buf;
    size_t len, cap;
} picture;

static picture *cur_pic;
static size_t cur_skip;           /* length of the root's path */

static void pic_add(picture *p, const void *data, size_t len)
{
    if (p->len + len > p->cap) {
        size_t cap = (p->len + len) * 2 + 4096;
        char *nb = realloc(p->buf, cap);
        if (!nb) exit(2);
        p->buf = nb;
        p->cap = cap;
    }
    memcpy(p->buf + p->len, data, len);
    p->len += len;
}

/* One entry: "path type size ino mtime\n" then its content.  Pins (a
 * snapshot's only write, gone at close) and directory times are left out. */
static int pic_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)ftw;
    char line[4400];
    if (strstr(path + cur_skip, "/pins")) return 0;
    int dir = flag != FTW_F;
    int n = snprintf(line, sizeof line, "%s %d %o %lld %llu %lld.%09ld\n", path + cur_skip, flag,
                     (unsigned)sb->st_mode, dir ? 0 : (long long)sb->st_size, (unsigned long long)sb->st_ino,
                     dir ? 0 : (long long)sb->st_mtim.tv_sec, dir ? 0 : sb->st_mtim.tv_nsec);
    pic_add(cur_pic, line, (size_t)n);
    if (flag == FTW_F) {
        int fd = open(path, O_RDONLY);
        char buf[65536];
        ssize_t r;
        if (fd < 0) exit(2);
        while ((r = read(fd, buf, sizeof buf)) > 0) pic_add(cur_pic, buf, (size_t)r);
        close(fd);
    }
    return 0;
}

/* Everything under DIR into P (nftw visits in directory order: the same
 * for an unchanged tree). */
static void take_picture(const char *dir, picture *p)
{
    memset(p, 0, sizeof *p);
    cur_pic = p;
    cur_skip = strlen(dir);
    CHECK(nftw(dir, pic_entry, 16, FTW_PHYS) == 0);
}

static int same_picture(const picture *a, const picture *b)
{
    return a->len == b->len && !memcmp(a->buf, b->buf, a->len);
}

/* ---- tests ---- */

static void test_snapshot(void)
{
    env e;
    env_init(&e);
    store *st = open_main(&e);
    put(st, 1, "v1");
    put(st, 2, "v2");
    put(st, 3, "v3");
    uint64_t g1 = checkpoint(st);
    put(st, 1, "v1b");            /* an overwrite, a delete, an addition */
    put(st, 2, NULL);
    put(st, 4, "v4");
    uint64_t g2 = checkpoint(st);
    put(st, 3, "v3c");            /* in the journal and memtable only, until close */
    put(st, 5, "v5");
    CHECK(g2 > g1);
    CHECK(store_close(st) == 0);
    manifest m;
    CHECK(manifest_load_latest(e.os, "main", &m) == 0);
    uint64_t glast = m.gen;
    manifest_free(&m);
    CHECK(glast > g2);

    char state[256];
    snprintf(state, sizeof state, "%s/state", e.root);
    harness_rmtree(state);        /* so that any journal the snapshot made would show */
    picture before, after;
    take_picture(e.repo, &before);
    CHECK(before.len > 0);

    /* generation g1 */
    store *s1 = snapshot(&e, g1);
    store_stats ss;
    store_get_stats(s1, &ss);
    CHECK(ss.manifest_gen == g1);
    CHECK(store_start(s1) == 0);
    CHECK(reads(s1, 1, "v1") && reads(s1, 2, "v2") && reads(s1, 3, "v3"));
    CHECK(reads(s1, 4, NULL) && reads(s1, 5, NULL));
    CHECK(scans(s1, "k01=v1 k02=v2 k03=v3 "));
    /* g2 at the same time: independent */
    store *s2 = snapshot(&e, g2);
    CHECK(reads(s2, 1, "v1b") && reads(s2, 2, NULL) && reads(s2, 3, "v3") && reads(s2, 4, "v4"));
    CHECK(reads(s2, 5, NULL));
    CHECK(scans(s2, "k01=v1b k03=v3 k04=v4 "));
    /* the newest */
    store *s3 = snapshot(&e, glast);
    CHECK(scans(s3, "k01=v1b k03=v3c k04=v4 k05=v5 "));
    /* generation 1: the branch as created */
    store *s0 = snapshot(&e, 1);
    CHECK(scans(s0, ""));
    {
        skey k;
        char buf[8];
        size_t vlen = 0;
        key_inode(&k, 1);
        CHECK(store_get(s0, &k, buf, sizeof buf, &vlen) == 0 && vlen == 4 && !memcmp(buf, "root", 4));
    }

    /* commits to the snapshot: seen by its own reads, not by the others' */
    put(s1, 1, "s1");
    put(s1, 3, NULL);
    put(s1, 6, "s6");
    CHECK(reads(s1, 1, "s1") && reads(s1, 3, NULL) && reads(s1, 6, "s6") && reads(s1, 2, "v2"));
    CHECK(scans(s1, "k01=s1 k02=v2 k06=s6 "));
    CHECK(scans(s2, "k01=v1b k03=v3 k04=v4 "));
    CHECK(store_sync(s1) == 0);
    uint64_t seq = 0, gen = 0;
    CHECK(store_checkpoint(s1, &seq, &gen) == -EROFS);
    CHECK(reads(s1, 1, "s1"));    /* still there after the refused checkpoint */
    uint64_t ino = store_alloc_ino(s1);
    CHECK(ino > 1);
    /* more than the memtable holds (64 MiB): nothing is flushed anywhere */
    {
        static uint8_t page[8192];
        store_batch b;
        skey k;
        store_batch_init(&b);
        for (uint64_t pg = 0; pg < 70 * 128; pg++) {
            memcpy(page, &pg, 8);
            key_page(&k, 5000, pg);
            store_batch_put(&b, &k, page, sizeof page);
            if (pg % 64 == 63) CHECK(store_commit(s1, &b) == 0);
        }
        CHECK(store_commit(s1, &b) == 0);
        store_batch_free(&b);
        uint64_t probe[] = { 0, 1, 4242, 70 * 128 - 1 };
        for (size_t i = 0; i < sizeof probe / sizeof probe[0]; i++) {
            uint8_t buf[8192];
            size_t vlen = 0;
            uint64_t got = UINT64_MAX;
            key_page(&k, 5000, probe[i]);
            CHECK(store_get(s1, &k, buf, sizeof buf, &vlen) == 0 && vlen == 8192);
            memcpy(&got, buf, 8);
            CHECK(got == probe[i]);
        }
        key_page(&k, 5000, 0);
        CHECK(store_get(s2, &k, page, sizeof page, &(size_t){ 0 }) == -ENOENT);
        CHECK(store_sync(s1) == 0);
        CHECK(store_checkpoint(s1, &seq, &gen) == -EROFS);
    }
    CHECK(store_close(s1) == 0);
    CHECK(store_close(s2) == 0);
    CHECK(store_close(s3) == 0);
    CHECK(store_close(s0) == 0);

    /* the repository is exactly as it was; no state directory appeared */
    take_picture(e.repo, &after);
    CHECK(same_picture(&before, &after));
    struct stat sb;
    CHECK(stat(state, &sb) < 0 && errno == ENOENT);
    free(after.buf);
    /* ... and the branch reads as before: the snapshot's commits went nowhere */
    s1 = snapshot(&e, g1);
    CHECK(scans(s1, "k01=v1 k02=v2 k03=v3 "));
    CHECK(store_close(s1) == 0);
    take_picture(e.repo, &after);
    CHECK(same_picture(&before, &after));
    free(after.buf);

    /* generations and branches that do not exist */
    {
        char err[512] = "";
        store *none = (store *)&err;   /* a sentinel: must be left alone */
        int rc = store_open_snapshot(e.os, "main", glast + 1, &none, err, sizeof err);
        CHECK(rc == -ENOENT);
        CHECK(none == (store *)&err);
        char want[64];
        snprintf(want, sizeof want, "generation %" PRIu64, glast + 1);
        CHECK(strstr(err, want) != NULL && strstr(err, "main") != NULL);
        err[0] = 0;
        rc = store_open_snapshot(e.os, "main", 0, &none, err, sizeof err);
        CHECK(rc < 0 && err[0] != 0);
        err[0] = 0;
        rc = store_open_snapshot(e.os, "nosuch", 1, &none, err, sizeof err);
        CHECK(rc == -ENOENT && strstr(err, "nosuch") != NULL);
        CHECK(none == (store *)&err);
    }
    take_picture(e.repo, &after);
    CHECK(same_picture(&before, &after));
    free(after.buf);
    free(before.buf);
    env_free(&e);
}

/* A snapshot while the branch is mounted read-write. */
static void test_beside_writer(void)
{
    env e;
    env_init(&e);
    store *st = open_main(&e);
    put(st, 1, "v1");
    uint64_t g1 = checkpoint(st);
    put(st, 1, "w1");             /* the writer moves on: journal only */
    store *snap = snapshot(&e, g1);
    CHECK(reads(snap, 1, "v1"));
    put(snap, 2, "snap");
    CHECK(reads(st, 2, NULL));
    CHECK(reads(st, 1, "w1"));
    put(st, 3, "w3");
    uint64_t g2 = checkpoint(st);  /* the writer was not fenced by the snapshot */
    CHECK(g2 > g1);
    CHECK(reads(snap, 3, NULL) && reads(snap, 1, "v1") && reads(snap, 2, "snap"));
    CHECK(store_sync(st) == 0);
    CHECK(store_close(snap) == 0);
    put(st, 4, "w4");
    CHECK(store_close(st) == 0);
    st = open_main(&e);
    CHECK(scans(st, "k01=w1 k03=w3 k04=w4 "));
    CHECK(store_close(st) == 0);
    env_free(&e);
}

/* Page PG of inode INO as written by test_spill: its numbers and a tag. */
static void spill_page(uint8_t *page, uint64_t ino, uint64_t pg, char tag)
{
    memset(page, tag, 8192);
    memcpy(page, &ino, 8);
    memcpy(page + 8, &pg, 8);
}

/* 1 if page PG of INO reads as spill_page(INO, PG, TAG) in ST. */
static int page_reads(store *st, uint64_t ino, uint64_t pg, char tag)
{
    static uint8_t got[8192], want[8192];
    size_t vlen = 0;
    skey k;
    key_page(&k, ino, pg);
    spill_page(want, ino, pg, tag);
    return store_get(st, &k, got, sizeof got, &vlen) == 0 && vlen == 8192 && !memcmp(got, want, 8192);
}

/* Entries of directory DIR: how many. */
static size_t dir_entries(const char *dir)
{
    DIR *d = opendir(dir);
    size_t n = 0;
    struct dirent *de;
    if (!d) return 0;
    while ((de = readdir(d))) n += de->d_name[0] != '.';
    closedir(d);
    return n;
}

/* A view's overlay spilled to disk (store_spill). */
static void test_spill(void)
{
    enum { LIMIT = 256 << 10, BASE_PAGES = 100, NEW_PAGES = 512 };
    static uint8_t page[8192];
    env e;
    env_init(&e);
    store *st = open_main(&e);
    put(st, 1, "v1");
    put(st, 2, "v2");
    store_batch b;
    skey k;
    store_batch_init(&b);
    for (uint64_t pg = 0; pg < BASE_PAGES; pg++) {
        spill_page(page, 5000, pg, 'b');
        key_page(&k, 5000, pg);
        store_batch_put(&b, &k, page, sizeof page);
    }
    CHECK(store_commit(st, &b) == 0);
    uint64_t g = checkpoint(st);
    char err[512] = "", dir[256], bad[256];
    snprintf(dir, sizeof dir, "%s/overlay", e.root);
    CHECK(store_spill(st, dir, LIMIT, err, sizeof err) == -EINVAL && strstr(err, "snapshot"));
    CHECK(access(dir, F_OK) < 0);
    CHECK(store_close(st) == 0);
    picture before, after;
    take_picture(e.repo, &before);

    /* a directory that cannot be made */
    store *s = snapshot(&e, g);
    snprintf(bad, sizeof bad, "%s/missing/overlay", e.root);
    err[0] = 0;
    CHECK(store_spill(s, bad, LIMIT, err, sizeof err) == -ENOENT && strstr(err, bad));
    CHECK(store_close(s) == 0);

    /* limit 0: the default memtable size, as for a branch (64 MiB): 1 MiB stays in memory */
    s = snapshot(&e, g);
    store_stats ss;
    CHECK(store_spill(s, dir, 0, err, sizeof err) == 0);
    for (uint64_t pg = 0; pg < 128; pg++) {
        spill_page(page, 7000, pg, 'd');
        key_page(&k, 7000, pg);
        store_batch_put(&b, &k, page, sizeof page);
        CHECK(store_commit(s, &b) == 0);
    }
    store_get_stats(s, &ss);
    CHECK(ss.flushes == 0 && ss.memtable_bytes >= 128 * 8192 && dir_entries(dir) == 0);
    CHECK(page_reads(s, 7000, 127, 'd'));
    CHECK(store_close(s) == 0);

    s = snapshot(&e, g);
    store_get_stats(s, &ss);
    uint64_t base_layers = ss.layers;
    CHECK(store_spill(s, dir, LIMIT, err, sizeof err) == 0);
    CHECK(store_spill(s, dir, LIMIT, err, sizeof err) == -EINVAL);
    put(s, 2, NULL);              /* a delete of a base key, spilled with the first layer */
    put(s, 9, "s9");
    uint64_t most = 0;
    for (uint64_t pg = 0; pg < NEW_PAGES; pg++) {
        spill_page(page, 6000, pg, 'n');
        key_page(&k, 6000, pg);
        store_batch_put(&b, &k, page, sizeof page);
        if (pg < BASE_PAGES / 2) {    /* overwrite half of the base's pages */
            spill_page(page, 5000, pg, 'o');
            key_page(&k, 5000, pg);
            store_batch_put(&b, &k, page, sizeof page);
        }
        if (pg % 8 == 7) {
            CHECK(store_commit(s, &b) == 0);
            store_get_stats(s, &ss);
            if (ss.memtable_bytes > most) most = ss.memtable_bytes;
        }
    }
    CHECK(store_commit(s, &b) == 0);
    store_batch_free(&b);
    store_get_stats(s, &ss);
    /* 4.4 MiB written in batches of up to 128 KiB; a memtable is frozen
     * past the limit, so it holds up to LIMIT + a batch, and at most 3
     * are held (1 MiB and a bit; without spilling, 4.4 MiB) */
    fprintf(stderr, "test_spill: %" PRIu64 " layers spilled, at most %" PRIu64 " KiB in memtables\n", ss.flushes,
            most >> 10);
    CHECK(most <= 3 * (LIMIT + 16 * 8192 + 8192));
    CHECK(ss.flushes >= (NEW_PAGES + BASE_PAGES / 2) * 8192 / (LIMIT + 16 * 8192) - 3);
    CHECK(ss.layers >= base_layers + ss.flushes);
    CHECK(dir_entries(dir) >= ss.flushes);
    for (uint64_t pg = 0; pg < NEW_PAGES; pg++) CHECK(page_reads(s, 6000, pg, 'n'));
    for (uint64_t pg = 0; pg < BASE_PAGES; pg++) CHECK(page_reads(s, 5000, pg, pg < BASE_PAGES / 2 ? 'o' : 'b'));
    CHECK(reads(s, 1, "v1") && reads(s, 2, NULL) && reads(s, 9, "s9"));
    CHECK(scans(s, "k01=v1 k09=s9 "));
    CHECK(store_close(s) == 0);
    CHECK(access(dir, F_OK) < 0 && errno == ENOENT);
    take_picture(e.repo, &after);
    CHECK(same_picture(&before, &after));
    free(after.buf);
    free(before.buf);

    /* a scratch directory left behind (a daemon killed): removed whole */
    objstore *scratch = NULL;
    CHECK(os_open_scratch(dir, &scratch, err, sizeof err) == 0);
    CHECK(os_open_scratch(dir, &(objstore *){ NULL }, err, sizeof err) == -EEXIST);
    CHECK(os_put_if_absent(scratch, "a.layer", "x", 1) == 0);
    CHECK(os_put_if_absent(scratch, "sub/b.layer", "y", 1) == 0);
    CHECK(dir_entries(dir) == 2);
    CHECK(os_scratch_remove(dir) == 0);
    CHECK(access(dir, F_OK) < 0 && errno == ENOENT);
    CHECK(os_scratch_remove(dir) == 0);   /* nothing there: done */
    os_close(scratch);            /* its directory is gone already: says so, frees */
    env_free(&e);
}

int main(void)
{
    test_snapshot();
    test_beside_writer();
    test_spill();
    return harness_done();
}

/*
 * test_pg_archive.c -- the WAL archive read back as files
 * (fs/pg/pg_archive.c), written by the WAL observer (fs/pg/pg_wal.c).
 *
 * What can go wrong: a page read from the wrong segment, timeline or
 * offset (the archive is keyed by timeline and LSN, the files by name and
 * offset), a page never written reading as anything but zeros, a read past
 * a segment's end not cut short, a name the archive does not hold (or one
 * that is no WAL file name at all) reported as existing -- PostgreSQL
 * probes for files to find where the WAL ends, so a false "exists" sends
 * recovery astray -- a listing that misses, repeats or misorders files, a
 * history file not archived or altered, the cut letting a byte at or past
 * it through (or zeroing one before it), and a recycled segment file
 * overwriting the archived content of its old name.  Checked, with every
 * page's content unique (timeline, LSN page, version) and a model image of
 * every segment:
 *  - two segments of timeline 1, one of timeline 2 at the same position
 *    and one more of timeline 1, written as fs.c writes (whole pages,
 *    several pages in one write, a write inside a page): every segment
 *    read whole equals its image (zeros where never written), reads at
 *    unaligned offsets across page boundaries, reads past the end cut
 *    short, at or after the end 0;
 *  - pg_archive_lookup of each name (timeline, segment number, size,
 *    pg_archive_name back to the name), of segments not written, of
 *    another timeline's segment, and of garbage names: -ENOENT;
 *    pg_archive_stat likewise;
 *  - history files renamed into pg_wal/ (a small one and a 9000-byte one)
 *    read back byte for byte; one renamed into another directory is not
 *    archived;
 *  - pg_archive_list: exactly the history files, then the segments in
 *    timeline and position order, with their sizes; a callback's non-zero
 *    result stops it;
 *  - the cut in the middle of a page of segment 2, at a segment boundary,
 *    just after one, and at 0: bytes before it unchanged, at or after it
 *    zero (on both timelines), segments starting at or after it neither
 *    found nor listed;
 *  - a fork reads its parent's archive up to the branch point only;
 *  - recycling: segment 1's file renamed to segment 5 (pg_wal_forget) and
 *    overwritten; segment 1 still reads as before, segment 5 the new pages;
 *  - trimming below a redo point: the segments (both timelines) ending
 *    at or before it go with every page, the one holding it and later ones
 *    and the history files stay, the mark says where the archive begins
 *    and never moves back; after reopen the same; the fork keeps its copy;
 *  - a cluster with 1 MiB segments: names, sizes and offsets follow the
 *    recorded segment size.
 */
#include "harness.h"
#include "branch.h"
#include "store.h"
#include "../../fs/pg/pg_archive.h"
#include "../../fs/pg/pg_wal.h"

#include <errno.h>
#include <inttypes.h>
#include <sys/stat.h>
#include <unistd.h>
#include "harness_repo.h"

#define MiB (1ull << 20)
#define SEG16 (16 * MiB)
#define PAGE 8192
#define PG_WAL_DIR 2              /* inode of pg_wal/ in the test tree */

/* ---- a branch store with a pg_wal/ ---- */


/* Open BRANCH read-write (harness_repo.h). */
static store *open_branch(env *e, const char *branch) { return env_open(e, branch, 1 << 20); }

/* ---- segments and their expected images ---- */

typedef struct seg {
    const char *name;
    uint32_t tli;
    uint64_t segno;
    uint64_t ino;                 /* the file in pg_wal/ */
    uint64_t size;                /* segment size */
    uint8_t *img;                 /* what the archive must read back */
} seg;

/* Fill PAGE with content unique to (TLI, LSN page LPG, VERSION). */
static void fill_page(uint8_t *p, uint32_t tli, uint64_t lpg, unsigned version)
{
    uint64_t x = ((uint64_t)tli << 48) ^ (lpg << 8) ^ version ^ 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < PAGE; i += 8) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        memcpy(p + i, &x, 8);
    }
    memcpy(p, &tli, 4);           /* a recognisable header, never all zero */
    memcpy(p + 4, &lpg, 8);
    memcpy(p + 12, &version, 4);
}

/* Write pages FIRST..FIRST+N-1 of S's file with fresh content of VERSION,
 * as fs_write does: one batch with the file's pages and the observer's. */
static void write_pages(store *st, pg_wal *w, seg *s, uint64_t first, uint64_t n, unsigned version)
{
    uint8_t *pages = malloc(n * PAGE);
    store_batch b;
    skey k;
    if (!pages) exit(2);
    store_batch_init(&b);
    for (uint64_t i = 0; i < n; i++) {
        uint8_t *p = pages + i * PAGE;
        fill_page(p, s->tli, s->segno * (s->size / PAGE) + first + i, version);
        key_page(&k, s->ino, first + i);
        store_batch_put(&b, &k, p, PAGE);
        memcpy(s->img + (first + i) * PAGE, p, PAGE);
    }
    int wal = pg_wal_write(w, &b, s->ino, s->size, first * PAGE, n * PAGE, first, pages, NULL, &(uint32_t){0}, &(uint64_t){0});
    CHECK(wal >= 0);
    int rc = store_commit(st, &b);
    CHECK(rc == 0);
    if (wal > 0) pg_wal_written(w, rc);
    store_batch_free(&b);
    free(pages);
}

/* Write LEN bytes of 0xC5 at byte OFF of page PG of S's file (inside it). */
static void write_inside(store *st, pg_wal *w, seg *s, uint64_t pg, size_t off, size_t len)
{
    uint8_t page[PAGE];
    store_batch b;
    skey k;
    memset(s->img + pg * PAGE + off, 0xC5, len);
    memcpy(page, s->img + pg * PAGE, PAGE);   /* the page as the file holds it after the write */
    store_batch_init(&b);
    key_page(&k, s->ino, pg);
    store_batch_put(&b, &k, page, PAGE);
    int wal = pg_wal_write(w, &b, s->ino, s->size, pg * PAGE + off, len, pg, page, NULL, &(uint32_t){0}, &(uint64_t){0});
    CHECK(wal >= 0);
    int rc = store_commit(st, &b);
    CHECK(rc == 0);
    if (wal > 0) pg_wal_written(w, rc);
    store_batch_free(&b);
}

/* 1 if A's segment S reads back as its image, with everything at or past
 * CUT (an LSN) zero. */
static int reads_as(const pg_archive *a, const seg *s, uint64_t cut)
{
    pg_archive_file f;
    int rc = pg_archive_lookup(a, s->name, &f);
    if (rc) { fprintf(stderr, "  lookup %s: %d\n", s->name, rc); return 0; }
    uint8_t *buf = malloc(s->size), *want = malloc(s->size);
    if (!buf || !want) exit(2);
    memcpy(want, s->img, s->size);
    uint64_t start = s->segno * s->size;
    if (cut < start + s->size) memset(want + (cut - start), 0, s->size - (cut - start));
    memset(buf, 0xEE, s->size);
    long n = pg_archive_read(a, &f, 0, buf, s->size);
    int ok = n == (long)s->size && !memcmp(buf, want, s->size);
    if (!ok) {
        size_t i = 0;
        while (n == (long)s->size && i < s->size && buf[i] == want[i]) i++;
        fprintf(stderr, "  %s read %ld bytes, first difference at %zu\n", s->name, n, i);
    }
    free(buf);
    free(want);
    return ok;
}

/* 1 if reading LEN bytes at OFF of S gives WANT_N bytes equal to its image. */
static int range_reads(const pg_archive *a, const seg *s, uint64_t off, size_t len, long want_n)
{
    pg_archive_file f;
    if (pg_archive_lookup(a, s->name, &f)) return 0;
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf) exit(2);
    memset(buf, 0xEE, len);
    long n = pg_archive_read(a, &f, off, buf, len);
    int ok = n == want_n && (n <= 0 || !memcmp(buf, s->img + off, (size_t)n));
    if ((size_t)(n > 0 ? n : 0) < len && buf[n > 0 ? n : 0] != 0xEE) ok = 0;   /* nothing written past it */
    free(buf);
    return ok;
}

static int absent(const pg_archive *a, const char *name)
{
    pg_archive_file f;
    int rc = pg_archive_lookup(a, name, &f);
    if (rc != -ENOENT) fprintf(stderr, "  lookup '%s': %d, want -ENOENT\n", name, rc);
    return rc == -ENOENT;
}

/* ---- listings ---- */

#define LIST_MAX 32

typedef struct listing {
    int n;
    char name[LIST_MAX][32];
    pg_archive_file f[LIST_MAX];
    int stop_after;               /* return 42 after this many (0: never) */
} listing;

static int list_fn(void *arg, const char *name, const pg_archive_file *f)
{
    listing *l = arg;
    if (l->n < LIST_MAX) {
        snprintf(l->name[l->n], sizeof l->name[0], "%s", name);
        l->f[l->n] = *f;
    }
    l->n++;
    return l->stop_after && l->n >= l->stop_after ? 42 : 0;
}

/* 1 if A lists exactly the N names WANT (in that order; SEGMENTS_ONLY:
 * history files left out of the comparison) with the right sizes. */
static int lists(const pg_archive *a, const char *const *want, int n, int segments_only)
{
    listing l = { 0 };
    int rc = pg_archive_list(a, list_fn, &l);
    int ok = rc == 0, k = 0;
    for (int i = 0; i < l.n && i < LIST_MAX; i++) {
        if (segments_only && l.f[i].history) continue;
        if (k >= n || strcmp(l.name[i], want[k])) ok = 0;
        char back[32];              /* the name is the file's */
        pg_archive_name(&l.f[i], back, sizeof back);
        if (strcmp(back, l.name[i])) ok = 0;
        pg_archive_file f;          /* and looking it up finds the same file */
        if (pg_archive_lookup(a, l.name[i], &f) || f.tli != l.f[i].tli || f.history != l.f[i].history ||
            f.size != l.f[i].size || (!f.history && f.segno != l.f[i].segno))
            ok = 0;
        k++;
    }
    if (k != n) ok = 0;
    if (!ok) {
        fprintf(stderr, "  listing (rc %d):", rc);
        for (int i = 0; i < l.n && i < LIST_MAX; i++) fprintf(stderr, " %s", l.name[i]);
        fprintf(stderr, "\n");
    }
    return ok;
}

/* ---- history files ---- */

/* Create pg_wal-like file NAME in DIR (inode INO) with LEN bytes of DATA,
 * then rename it to TO as fs.c does (the observer sees the rename's batch). */
static int history_rename(store *st, pg_wal *w, uint64_t dir, const char *tmp, const char *to, uint64_t ino,
                          const uint8_t *data, size_t len)
{
    store_batch b;
    skey k;
    store_batch_init(&b);
    dirent_op(&b, dir, tmp, ino, S_IFREG);
    for (size_t off = 0; off < len; off += PAGE) {   /* pages as fs.c keeps them: zero-padded */
        uint8_t page[PAGE] = { 0 };
        memcpy(page, data + off, len - off < PAGE ? len - off : PAGE);
        key_page(&k, ino, off / PAGE);
        store_batch_put(&b, &k, page, PAGE);
    }
    CHECK(store_commit(st, &b) == 0);
    dirent_op(&b, dir, tmp, 0, 0);
    dirent_op(&b, dir, to, ino, S_IFREG);
    int rc = pg_wal_renamed(w, &b, dir, to, ino, len);
    CHECK(store_commit(st, &b) == 0);
    store_batch_free(&b);
    pg_wal_forget(w, ino);
    return rc;
}

/* 1 if A's history file NAME is exactly LEN bytes of DATA. */
static int history_is(const pg_archive *a, const char *name, const uint8_t *data, size_t len)
{
    pg_archive_file f;
    int rc = pg_archive_lookup(a, name, &f);
    if (rc || !f.history || f.size != len) {
        fprintf(stderr, "  %s: rc %d history %d size %" PRIu64 "\n", name, rc, rc ? -1 : f.history, rc ? 0 : f.size);
        return 0;
    }
    uint8_t buf[16384];
    memset(buf, 0xEE, sizeof buf);
    long n = pg_archive_read(a, &f, 0, buf, sizeof buf);
    int ok = n == (long)len && !memcmp(buf, data, len) && buf[len] == 0xEE;
    /* a read in the middle, and one across the end */
    memset(buf, 0xEE, sizeof buf);
    ok &= pg_archive_read(a, &f, 7, buf, 5) == 5 && !memcmp(buf, data + 7, 5) && buf[5] == 0xEE;
    ok &= pg_archive_read(a, &f, len - 3, buf, 100) == 3 && !memcmp(buf, data + len - 3, 3);
    ok &= pg_archive_read(a, &f, len, buf, 100) == 0;
    ok &= pg_archive_read(a, &f, len + 5000, buf, 100) == 0;
    char back[32];
    pg_archive_name(&f, back, sizeof back);
    ok &= !strcmp(back, name);
    pg_archive_file g = { .tli = f.tli, .history = 1 };
    ok &= pg_archive_stat(a, &g) == 0 && g.size == len;
    return ok;
}

/* store_scan callback: count the keys. */
static int count_key(void *arg, const uint8_t *key, size_t klen, const void *val, size_t vlen)
{
    (void)key; (void)klen; (void)val; (void)vlen;
    ++*(int *)arg;
    return 0;
}

/* ---- the test ---- */

enum { A, B, C, D, NSEG };

static void test_archive(void)
{
    env e;
    env_init(&e);
    store *st = open_branch(&e, "main");
    pg_wal *w = must_observe(st);
    seg segs[NSEG] = {
        [A] = { "000000010000000000000001", 1, 1, 10, SEG16, NULL },
        [B] = { "000000010000000000000002", 1, 2, 11, SEG16, NULL },
        [C] = { "000000020000000000000002", 2, 2, 12, SEG16, NULL },
        [D] = { "000000010000000000000003", 1, 3, 13, SEG16, NULL },
    };
    dirent(st, 1, "pg_wal", PG_WAL_DIR, S_IFDIR);
    for (int i = 0; i < NSEG; i++) {
        segs[i].img = calloc(1, segs[i].size);
        if (!segs[i].img) exit(2);
        dirent(st, PG_WAL_DIR, segs[i].name, segs[i].ino, S_IFREG);
    }
    pg_archive a = { st, UINT64_MAX };
    CHECK(absent(&a, segs[A].name));         /* nothing archived yet */

    write_pages(st, w, &segs[A], 0, 2, 1);
    write_pages(st, w, &segs[A], 5, 1, 1);
    write_pages(st, w, &segs[A], 2047, 1, 1); /* the segment's last page */
    write_inside(st, w, &segs[A], 5, 100, 50);
    write_pages(st, w, &segs[B], 0, 4, 1);    /* four pages in one write */
    write_inside(st, w, &segs[B], 4, 0, 300); /* a page begun */
    write_pages(st, w, &segs[C], 0, 4, 1);    /* timeline 2 at the same positions */
    write_pages(st, w, &segs[D], 0, 1, 1);
    write_pages(st, w, &segs[A], 1, 1, 2);    /* a page rewritten (not past the end: archived anyway) */

    /* lookups */
    for (int i = 0; i < NSEG; i++) {
        pg_archive_file f;
        memset(&f, 0x55, sizeof f);
        CHECK(pg_archive_lookup(&a, segs[i].name, &f) == 0);
        CHECK(f.tli == segs[i].tli && f.history == 0 && f.segno == segs[i].segno && f.size == SEG16);
        char back[32];
        pg_archive_name(&f, back, sizeof back);
        CHECK(!strcmp(back, segs[i].name));
        pg_archive_file g = { .tli = segs[i].tli, .segno = segs[i].segno };
        CHECK(pg_archive_stat(&a, &g) == 0 && g.size == SEG16);
    }
    const char *missing[] = {
        "000000010000000000000000", "000000010000000000000004", "000000020000000000000001",
        "000000020000000000000003", "000000030000000000000002", "000000010000000100000001",
        "00000001000000000000000F", "0000000100000000000000FF", "FFFFFFFFFFFFFFFFFFFFFFFF",
        "00000001000000000000010 ", "000000010000000000000100",   /* segment 256 of a 16 MiB log: none */
        "", "x", "00000001000000000000001", "0000000100000000000000010", "0000000100000000000000001",
        "000000010000000000000001.partial", "000000010000000000000001.00000028.backup",
        "0000000100000000000000a1", "00000001000000000000000a", "000000000000000000000001",
        "00000001.history", "00000002.history", "00000000.history", "0000000a.history", "0000000A.history.x",
        "xlogtemp.1", "archive_status", "RECOVERYXLOG", "../000000010000000000000001", "0x0000010000000000000001",
        ".", "..",
    };
    for (size_t i = 0; i < sizeof missing / sizeof missing[0]; i++) CHECK(absent(&a, missing[i]));
    pg_archive_file g = { .tli = 1, .segno = 4 };
    CHECK(pg_archive_stat(&a, &g) == -ENOENT);
    g = (pg_archive_file){ .tli = 2, .history = 1 };
    CHECK(pg_archive_stat(&a, &g) == -ENOENT);

    /* reads */
    for (int i = 0; i < NSEG; i++) CHECK(reads_as(&a, &segs[i], UINT64_MAX));
    CHECK(segs[A].img[2 * PAGE] == 0 && segs[A].img[5 * PAGE + 100] == 0xC5);   /* the images are what we think */
    CHECK(range_reads(&a, &segs[A], PAGE + 100, 10000, 10000));                 /* page 1 into the hole */
    CHECK(range_reads(&a, &segs[A], 5 * PAGE - 1, PAGE + 2, PAGE + 2));         /* around page 5 */
    CHECK(range_reads(&a, &segs[A], 5 * PAGE + 120, 60, 60));                   /* inside one page */
    CHECK(range_reads(&a, &segs[B], 3 * PAGE + 4000, 2 * PAGE, 2 * PAGE));
    CHECK(range_reads(&a, &segs[A], SEG16 - 100, PAGE, 100));                   /* cut short at the end */
    CHECK(range_reads(&a, &segs[A], SEG16 - PAGE, 3 * PAGE, PAGE));
    CHECK(range_reads(&a, &segs[A], SEG16, 10, 0));
    CHECK(range_reads(&a, &segs[A], SEG16 + 5 * PAGE, 10, 0));
    CHECK(range_reads(&a, &segs[A], 0, 0, 0));
    CHECK(range_reads(&a, &segs[C], 0, 1, 1));

    /* history files: renamed into pg_wal/ are archived, elsewhere not */
    const char *h2 = "1\t0/2004000\tno recovery target specified\n";
    uint8_t h3[9000];
    for (size_t i = 0; i < sizeof h3; i++) h3[i] = (uint8_t)("0123456789abcdef\t\n"[i % 18] + i / 1000);
    CHECK(history_rename(st, w, PG_WAL_DIR, "00000002.history.tmp", "00000002.history", 20,
                         (const uint8_t *)h2, strlen(h2)) == 0);
    CHECK(history_rename(st, w, PG_WAL_DIR, "xlogtemp.42", "00000003.history", 21, h3, sizeof h3) == 0);
    CHECK(history_rename(st, w, 1, "xlogtemp.43", "00000004.history", 22, h3, 100) == 0);
    CHECK(history_rename(st, w, PG_WAL_DIR, "xlogtemp.44", "0000000A.history", 23, h3 + 1, 77) == 0);
    CHECK(history_is(&a, "00000002.history", (const uint8_t *)h2, strlen(h2)));
    CHECK(history_is(&a, "00000003.history", h3, sizeof h3));
    CHECK(absent(&a, "00000004.history"));
    CHECK(history_is(&a, "0000000A.history", h3 + 1, 77));
    CHECK(absent(&a, "0000000a.history"));       /* names are exact: no alias */
    CHECK(absent(&a, "00000005.history"));
    CHECK(absent(&a, "00000003.History"));
    CHECK(absent(&a, "00000003.historyx"));

    /* the listing: history files, then segments by timeline and position */
    const char *all[] = { "00000002.history", "00000003.history", "0000000A.history", segs[A].name, segs[B].name,
                          segs[D].name, segs[C].name };
    CHECK(lists(&a, all, 7, 0));
    {
        listing l = { .stop_after = 4 };
        CHECK(pg_archive_list(&a, list_fn, &l) == 42 && l.n == 4);
        CHECK(l.f[0].history && l.f[0].tli == 2 && l.f[0].size == strlen(h2));
        CHECK(l.f[1].history && l.f[1].tli == 3 && l.f[1].size == sizeof h3);
        CHECK(l.f[2].history && l.f[2].tli == 10 && l.f[2].size == 77);
        CHECK(!l.f[3].history && l.f[3].tli == 1 && l.f[3].segno == 1 && l.f[3].size == SEG16);
    }

    /* the cut in the middle of page 2 of segment 2: both timelines */
    uint64_t cut = 2 * SEG16 + 2 * PAGE + 1000;
    pg_archive ac = { st, cut };
    CHECK(reads_as(&ac, &segs[A], cut));
    CHECK(reads_as(&ac, &segs[B], cut));
    CHECK(reads_as(&ac, &segs[C], cut));
    CHECK(absent(&ac, segs[D].name));
    g = (pg_archive_file){ .tli = 1, .segno = 3 };
    CHECK(pg_archive_stat(&ac, &g) == -ENOENT);
    {
        pg_archive_file f;          /* bytes just before it unchanged, from it on zero */
        uint8_t buf[16];
        CHECK(pg_archive_lookup(&ac, segs[B].name, &f) == 0);
        CHECK(pg_archive_read(&ac, &f, 2 * PAGE + 1000 - 8, buf, 16) == 16);
        CHECK(!memcmp(buf, segs[B].img + 2 * PAGE + 1000 - 8, 8));
        CHECK(!memcmp(buf + 8, "\0\0\0\0\0\0\0\0", 8));
        CHECK(memcmp(segs[B].img + 2 * PAGE + 1000, "\0\0\0\0\0\0\0\0", 8) != 0);   /* the cut did it */
        CHECK(pg_archive_read(&ac, &f, 3 * PAGE, buf, 16) == 16 && !memcmp(buf, "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 16));
    }
    const char *upto2[] = { segs[A].name, segs[B].name, segs[C].name };
    CHECK(lists(&ac, upto2, 3, 1));
    /* at a segment's start: that segment is gone, the one before whole */
    ac.end = 3 * SEG16;
    CHECK(reads_as(&ac, &segs[B], UINT64_MAX));
    CHECK(absent(&ac, segs[D].name));
    CHECK(lists(&ac, upto2, 3, 1));
    ac.end = 3 * SEG16 + 1;       /* one byte of it */
    CHECK(reads_as(&ac, &segs[D], 3 * SEG16 + 1));
    CHECK(segs[D].img[0] != 0);
    const char *upto3[] = { segs[A].name, segs[B].name, segs[D].name, segs[C].name };
    CHECK(lists(&ac, upto3, 4, 1));
    ac.end = 2 * SEG16;
    CHECK(reads_as(&ac, &segs[A], UINT64_MAX));
    CHECK(absent(&ac, segs[B].name) && absent(&ac, segs[C].name));
    CHECK(lists(&ac, upto2, 1, 1));
    ac.end = 0;
    CHECK(absent(&ac, segs[A].name));
    CHECK(lists(&ac, NULL, 0, 1));
    ac.end = SEG16 + 5 * PAGE + 120;  /* inside the bytes written inside page 5 of segment 1 */
    CHECK(reads_as(&ac, &segs[A], ac.end));

    /* a fork reads its parent's archive up to the branch point */
    uint64_t seq, gen;
    CHECK(store_checkpoint(st, &seq, &gen) == 0);
    branch_meta meta;
    char err[256];
    CHECK(branch_fork(e.os, "dev", "main", 0, &meta, err, sizeof err) == 0);
    uint8_t *a_before = malloc(SEG16);
    if (!a_before) exit(2);
    memcpy(a_before, segs[A].img, SEG16);

    /* recycling: segment 1's file becomes segment 5 and is overwritten */
    seg e5 = { "000000010000000000000005", 1, 5, segs[A].ino, SEG16, calloc(1, SEG16) };
    if (!e5.img) exit(2);
    {
        store_batch b;
        store_batch_init(&b);
        dirent_op(&b, PG_WAL_DIR, segs[A].name, 0, 0);
        dirent_op(&b, PG_WAL_DIR, e5.name, e5.ino, S_IFREG);
        CHECK(store_commit(st, &b) == 0);
        store_batch_free(&b);
        pg_wal_forget(w, e5.ino);
    }
    write_pages(st, w, &e5, 0, 2, 3);
    write_pages(st, w, &e5, 5, 1, 3);     /* a page segment 1 also had */
    write_pages(st, w, &e5, 2047, 1, 3);
    CHECK(reads_as(&a, &segs[A], UINT64_MAX));   /* segment 1 as it was */
    CHECK(!memcmp(segs[A].img, a_before, SEG16));
    CHECK(reads_as(&a, &e5, UINT64_MAX));
    CHECK(memcmp(e5.img, segs[A].img, PAGE) != 0);
    const char *with5[] = { "00000002.history", "00000003.history", "0000000A.history", segs[A].name, segs[B].name,
                            segs[D].name, e5.name, segs[C].name };
    CHECK(lists(&a, with5, 8, 0));

    store *dev = open_branch(&e, "dev");
    pg_archive ad = { dev, UINT64_MAX };
    for (int i = 0; i < NSEG; i++) CHECK(reads_as(&ad, &segs[i], UINT64_MAX));
    CHECK(absent(&ad, e5.name));
    CHECK(history_is(&ad, "00000003.history", h3, sizeof h3));
    CHECK(lists(&ad, all, 7, 0));
    CHECK(store_close(dev) == 0);

    /* and all of it again after close + reopen: read from layers */
    pg_wal_close(w);
    CHECK(store_close(st) == 0);
    st = open_branch(&e, "main");
    a.st = st;
    for (int i = 0; i < NSEG; i++) CHECK(reads_as(&a, &segs[i], UINT64_MAX));
    CHECK(reads_as(&a, &e5, UINT64_MAX));
    CHECK(history_is(&a, "00000002.history", (const uint8_t *)h2, strlen(h2)));
    CHECK(lists(&a, with5, 8, 0));

    /* trimmed below a redo point inside segment 3 while the files of
     * segment 2 of both timelines are still in pg_wal/: only segment 1
     * goes, as a segment file's pages are its archive pages */
    uint64_t trimmed, n;
    CHECK(pg_archive_trimmed(st, &trimmed) == 0 && trimmed == 0);
    CHECK(pg_archive_trim(st, 3 * SEG16 + 100, &n) == 0 && n == 1);
    CHECK(pg_archive_trimmed(st, &trimmed) == 0 && trimmed == 2 * SEG16);
    CHECK(absent(&a, segs[A].name));
    CHECK(reads_as(&a, &segs[B], UINT64_MAX) && reads_as(&a, &segs[C], UINT64_MAX));
    dirent(st, PG_WAL_DIR, segs[B].name, 0, 0);   /* PostgreSQL removes them */
    dirent(st, PG_WAL_DIR, segs[C].name, 0, 0);
    /* now segment 2 of both timelines goes with its pages; 3 and 5 and
     * the history files stay */
    CHECK(pg_archive_trim(st, 3 * SEG16 + 100, &n) == 0 && n == 2);
    CHECK(pg_archive_trimmed(st, &trimmed) == 0 && trimmed == 3 * SEG16);
    CHECK(absent(&a, segs[A].name) && absent(&a, segs[B].name) && absent(&a, segs[C].name));
    CHECK(reads_as(&a, &segs[D], UINT64_MAX) && reads_as(&a, &e5, UINT64_MAX));
    const char *kept[] = { "00000002.history", "00000003.history", "0000000A.history", segs[D].name, e5.name };
    CHECK(lists(&a, kept, 5, 0));
    {
        skey from, to;              /* not a page of them is left, on either timeline */
        int pages = 0;
        for (uint32_t tli = 1; tli <= 2; tli++) {
            key_walpage(&from, tli, 0);
            key_walpage(&to, tli, 3 * SEG16 / PAGE);
            CHECK(store_scan_range(st, from.b, from.len, to.b, to.len, count_key, &pages) == 0);
        }
        CHECK(pages == 0);
        key_walpage(&from, 1, 3 * SEG16 / PAGE);   /* segment 3's are */
        key_walpage(&to, 1, 4 * SEG16 / PAGE);
        CHECK(store_scan_range(st, from.b, from.len, to.b, to.len, count_key, &pages) == 0 && pages > 0);
    }
    CHECK(pg_archive_trim(st, 3 * SEG16 + 100, &n) == 0 && n == 0);   /* again: nothing left to do */
    CHECK(pg_archive_trim(st, SEG16, &n) == 0 && n == 0);             /* an older point: the mark stays */
    CHECK(pg_archive_trimmed(st, &trimmed) == 0 && trimmed == 3 * SEG16);
    CHECK(store_close(st) == 0);
    st = open_branch(&e, "main");   /* trimmed for good */
    a.st = st;
    CHECK(absent(&a, segs[A].name) && absent(&a, segs[C].name));
    CHECK(lists(&a, kept, 5, 0));
    CHECK(pg_archive_trimmed(st, &trimmed) == 0 && trimmed == 3 * SEG16);
    CHECK(store_close(st) == 0);
    dev = open_branch(&e, "dev");   /* a fork keeps what it took at its branch point */
    ad.st = dev;
    for (int i = 0; i < NSEG; i++) CHECK(reads_as(&ad, &segs[i], UINT64_MAX));
    CHECK(pg_archive_trimmed(dev, &trimmed) == 0 && trimmed == 0);
    CHECK(store_close(dev) == 0);

    free(a_before);
    free(e5.img);
    for (int i = 0; i < NSEG; i++) free(segs[i].img);
    env_free(&e);
}

/* A cluster with 1 MiB segments (initdb --wal-segsize=1). */
static void test_small_segments(void)
{
    env e;
    env_init(&e);
    store *st = open_branch(&e, "main");
    pg_wal *w = must_observe(st);
    seg s = { "000000010000000000000011", 1, 0x11, 10, MiB, calloc(1, MiB) };
    seg s2 = { "0000000100000001000000FF", 1, 0x1000 + 0xFF, 11, MiB, calloc(1, MiB) };
    if (!s.img || !s2.img) exit(2);
    dirent(st, 1, "pg_wal", PG_WAL_DIR, S_IFDIR);
    dirent(st, PG_WAL_DIR, s.name, s.ino, S_IFREG);
    dirent(st, PG_WAL_DIR, s2.name, s2.ino, S_IFREG);
    write_pages(st, w, &s, 0, 3, 1);
    write_pages(st, w, &s, MiB / PAGE - 1, 1, 1);
    write_pages(st, w, &s2, 1, 1, 1);
    pg_archive a = { st, UINT64_MAX };
    pg_archive_file f;
    CHECK(pg_archive_lookup(&a, s.name, &f) == 0 && f.size == MiB && f.segno == 0x11);
    CHECK(pg_archive_lookup(&a, s2.name, &f) == 0 && f.size == MiB && f.segno == 0x10FF);
    CHECK(reads_as(&a, &s, UINT64_MAX));
    CHECK(reads_as(&a, &s2, UINT64_MAX));
    CHECK(range_reads(&a, &s, MiB - 100, PAGE, 100));
    CHECK(absent(&a, "000000010000000000000012"));
    CHECK(absent(&a, "000000010000000000001000"));   /* 4096 segments of 1 MiB per log: no such name */
    CHECK(absent(&a, "0000000100000000000010FF"));   /* nor an alias of 0000000100000001000000FF */
    const char *names[] = { s.name, s2.name };
    CHECK(lists(&a, names, 2, 0));
    pg_archive ac = { st, 0x11 * MiB + PAGE + 1 };
    CHECK(reads_as(&ac, &s, ac.end));
    CHECK(absent(&ac, s2.name));
    pg_wal_close(w);
    CHECK(store_close(st) == 0);
    free(s.img);
    free(s2.img);
    env_free(&e);
}

/* A promotion in the middle of a segment, as PostgreSQL does it
 * (XLogInitNewTimeline -> XLogFileCopy): the old timeline's segment up to
 * the switch point is copied into pg_wal/xlogtemp.PID, which is renamed to
 * the new timeline's segment name; WAL of the new timeline follows. */
static void test_timeline_switch(void)
{
    env e;
    env_init(&e);
    store *st = open_branch(&e, "main");
    pg_wal *w = must_observe(st);
    seg old = { "000000010000000000000003", 1, 3, 10, SEG16, calloc(1, SEG16) };
    seg tmp = { "xlogtemp.4242", 2, 3, 11, SEG16, calloc(1, SEG16) };
    seg nw = { "000000020000000000000003", 2, 3, 11, SEG16, NULL };
    if (!old.img || !tmp.img) exit(2);
    dirent(st, 1, "pg_wal", PG_WAL_DIR, S_IFDIR);
    dirent(st, PG_WAL_DIR, old.name, old.ino, S_IFREG);
    write_pages(st, w, &old, 0, 3, 1);    /* timeline 1 up to the switch point in page 2 */
    dirent(st, PG_WAL_DIR, tmp.name, tmp.ino, S_IFREG);
    memcpy(tmp.img, old.img, 3 * PAGE);   /* the copy, written into the temporary file */
    {
        store_batch b;
        skey k;
        store_batch_init(&b);
        for (uint64_t pg = 0; pg < 3; pg++) {
            key_page(&k, tmp.ino, pg);
            store_batch_put(&b, &k, tmp.img + pg * PAGE, PAGE);
        }
        CHECK(pg_wal_write(w, &b, tmp.ino, SEG16, 0, 3 * PAGE, 0, tmp.img, NULL, &(uint32_t){0}, &(uint64_t){0}) == 0);   /* not a segment */
        CHECK(store_commit(st, &b) == 0);
        dirent_op(&b, PG_WAL_DIR, tmp.name, 0, 0);   /* installed under the new timeline's name, as fs.c renames */
        dirent_op(&b, PG_WAL_DIR, nw.name, tmp.ino, S_IFREG);
        CHECK(pg_wal_renamed(w, &b, PG_WAL_DIR, nw.name, tmp.ino, SEG16) == 0);
        CHECK(store_commit(st, &b) == 0);
        store_batch_free(&b);
        pg_wal_forget(w, tmp.ino);
    }
    nw.img = tmp.img;
    write_pages(st, w, &nw, 3, 2, 2);     /* timeline 2's own WAL */
    pg_archive a = { st, UINT64_MAX };
    CHECK(reads_as(&a, &old, UINT64_MAX));
    CHECK(range_reads(&a, &nw, 3 * PAGE, 2 * PAGE, 2 * PAGE));
    /* PostgreSQL restores the switch segment from the newest timeline whose
     * start it holds (XLogFileReadAnyTLI), so recovery through the switch
     * reads the copied prefix from 000000020000000000000003: the rename
     * archived it */
    CHECK(range_reads(&a, &nw, 0, 3 * PAGE, 3 * PAGE));
    pg_wal_close(w);
    CHECK(store_close(st) == 0);
    free(old.img);
    free(tmp.img);
    env_free(&e);
}

int main(void)
{
    test_archive();
    test_small_segments();
    test_timeline_switch();
    return harness_done();
}

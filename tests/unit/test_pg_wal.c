/*
 * test_pg_wal.c -- the WAL observer (fs/pg/pg_wal.c): segment names, sizes
 * and positions, and the "wal_pos" key it keeps in a real branch store.
 *
 * What can go wrong: a file that is not a WAL segment counted (xlogtemp.*,
 * *.partial, *.history, a segment name outside pg_wal/, a directory), a
 * segment's name remembered after PostgreSQL renamed it (recycling), the
 * recorded position going backwards (an old page rewritten, a reopen that
 * forgot it, two writers committing out of order), or it missing from a
 * fork, a reopen or a journal replay.  Checked:
 *  - pg_wal_parse_name on valid names and every kind of invalid one;
 *    pg_wal_segsize on powers of two in and out of 1 MiB..1 GiB and on other
 *    sizes; pg_wal_end_lsn against hand-computed positions and out-of-range
 *    segment numbers; pg_wal_lsn_format;
 *  - the observer on a file:// branch store, writes made as fs.c makes them
 *    (page puts plus pg_wal_write in one batch, then pg_wal_written): the
 *    key appears and grows, never shrinks, ignores every non-segment,
 *    follows the segment size of the file, notices segments created after
 *    its cache was filled, and re-resolves a renamed or unlinked inode after
 *    pg_wal_forget (without the forget, a recycled segment would not count);
 *    5000 other files written (the cache empties itself) change nothing;
 *  - close + reopen (the position is read back and an older write does not
 *    lower it), kill -9 after a synced write (journal replay), a fork (the
 *    child starts at the parent's position, each side moves alone, and
 *    pg_wal_pos_at reads the branch point through the parent's manifest);
 *  - 8 threads writing one segment's pages in turn, each through its own
 *    file (8 timelines: the same positions): after every commit the key is
 *    at least the writer's own position, and at the end it is the highest
 *    (this fails if batches carrying the key can commit out of order);
 *  - a pg_wal/ that becomes a symlink (initdb -X) is not followed;
 *  - pg_wal_checkpointed: a write of the root's global/pg_control naming a
 *    checkpoint record other than the last one is a completed checkpoint
 *    (1), the same one again, a write elsewhere in it, a short one, a page
 *    not shaped like ControlFileData, and the same bytes in any other file
 *    (a copy in the root, global/pg_control.bak, a dev branch's own) are
 *    not (0); after pg_control is renamed away and a new one renamed into
 *    place the new inode is recognised; and, with pg_control known,
 *    pg_wal_forget of a recycled segment still re-resolves the segment;
 *  - the mapping of a segment file onto its archive pages (test_mapping).
 */
#include "harness.h"
#include "branch.h"
#include "store.h"
#include "../../fs/pg/pg_wal.h"

#include <errno.h>
#include <pthread.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "harness_repo.h"

#define MiB (1ull << 20)
#define SEG16 (16 * MiB)
#define PG_WAL_DIR 2              /* inode of pg_wal/ in the test tree */

/* ---- names, sizes, positions ---- */

/* 1 if NAME parses as (TLI, LOG, SEG). */
static int parses(const char *name, uint32_t tli, uint32_t log, uint32_t seg)
{
    pg_wal_seg s;
    return pg_wal_parse_name(name, strlen(name), &s) == 0 && s.tli == tli && s.log == log && s.seg == seg;
}

static int rejected(const char *name, size_t len)
{
    pg_wal_seg s;
    return pg_wal_parse_name(name, len, &s) == -EINVAL;
}

/* The end LSN of a write to (LOG, SEG) up to END with SEGSIZE, or UINT64_MAX if refused. */
static uint64_t end_lsn(uint32_t log, uint32_t seg, uint64_t segsize, uint64_t end)
{
    pg_wal_seg s = { 1, log, seg };
    uint64_t lsn;
    return pg_wal_end_lsn(&s, segsize, end, &lsn) ? UINT64_MAX : lsn;
}

static int formats(uint64_t lsn, const char *want)
{
    char buf[PG_LSN_LEN];
    pg_wal_lsn_format(lsn, buf, sizeof buf);
    return !strcmp(buf, want);
}

static void test_names(void)
{
    CHECK(parses("000000010000000000000001", 1, 0, 1));
    CHECK(parses("00000002000000A3000000FF", 2, 0xA3, 0xFF));
    CHECK(parses("FFFFFFFFFFFFFFFFFFFFFFFF", 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF));
    CHECK(rejected("000000000000000000000000", 24));             /* timeline 0 does not exist */
    /* a name is LEN bytes: what follows does not matter */
    pg_wal_seg s;
    CHECK(pg_wal_parse_name("000000010000000000000007.partial", 24, &s) == 0 && s.seg == 7);

    CHECK(rejected("", 0));
    CHECK(rejected("00000001000000000000001", 23));
    CHECK(rejected("0000000100000000000000010", 25));
    CHECK(rejected("0000000100000000000000ab", 24));             /* lower case */
    CHECK(rejected("0000000100000000000000AG", 24));
    CHECK(rejected("00000001 000000000000001", 24));
    CHECK(rejected("+00000010000000000000001", 24));             /* no signs, no 0x */
    CHECK(rejected("0x0000010000000000000001", 24));
    CHECK(rejected("0000000100000\0000000001", 24));             /* a NUL inside */
    const char *others[] = {
        "xlogtemp.12345", "000000010000000000000002.partial", "00000002.history",
        "000000010000000000000002.00000028.backup", "archive_status", "RECOVERYXLOG",
        "RECOVERYHISTORY", "000000010000000000000001.done", "000000010000000000000001.ready",
    };
    for (size_t i = 0; i < sizeof others / sizeof others[0]; i++) CHECK(rejected(others[i], strlen(others[i])));

    CHECK(pg_wal_segsize(SEG16) == SEG16);
    CHECK(pg_wal_segsize(MiB) == MiB);
    CHECK(pg_wal_segsize(2 * MiB) == 2 * MiB);
    CHECK(pg_wal_segsize(64 * MiB) == 64 * MiB);
    CHECK(pg_wal_segsize(1024 * MiB) == 1024 * MiB);
    CHECK(pg_wal_segsize(2048 * MiB) == SEG16);                  /* above 1 GiB */
    CHECK(pg_wal_segsize(512 << 10) == SEG16);                   /* below 1 MiB */
    CHECK(pg_wal_segsize(8192) == SEG16);
    CHECK(pg_wal_segsize(0) == SEG16);
    CHECK(pg_wal_segsize(3 * MiB) == SEG16);
    CHECK(pg_wal_segsize(SEG16 + 1) == SEG16);
    CHECK(pg_wal_segsize(SEG16 - 8192) == SEG16);
    CHECK(pg_wal_segsize(UINT64_MAX) == SEG16);

    CHECK(end_lsn(0, 1, SEG16, 8192) == 0x1002000);
    CHECK(end_lsn(0, 0, SEG16, 0) == 0);
    CHECK(end_lsn(1, 0, SEG16, 0) == 0x100000000ull);
    CHECK(end_lsn(0xA3, 0xFF, SEG16, SEG16) == 0xA400000000ull);
    CHECK(end_lsn(0, 0x100, SEG16, 0) == UINT64_MAX);           /* 256 segments of 16 MiB per log */
    CHECK(end_lsn(0, 0x3F, 64 * MiB, 100) == 0xFC000000ull + 100);
    CHECK(end_lsn(0, 0x40, 64 * MiB, 0) == UINT64_MAX);
    CHECK(end_lsn(2, 3, 1024 * MiB, 1) == 0x2C0000001ull);
    CHECK(end_lsn(0, 4, 1024 * MiB, 0) == UINT64_MAX);
    CHECK(end_lsn(0, 0xFFF, MiB, MiB) == 0x100000000ull);
    CHECK(end_lsn(0, 0x1000, MiB, 0) == UINT64_MAX);
    CHECK(end_lsn(0, 1, SEG16, SEG16 + 1) == UINT64_MAX);       /* past the segment's end */

    CHECK(formats(0, "0/0"));
    CHECK(formats(0x16B3748, "0/16B3748"));
    CHECK(formats(0x100000000ull, "1/0"));
    CHECK(formats(0xA3000000FFull, "A3/FF"));
    CHECK(formats(UINT64_MAX, "FFFFFFFF/FFFFFFFF"));
}

/* ---- a branch store with a PGDATA-like tree ---- */


/* Open BRANCH read-write (harness_repo.h). */
static store *open_branch(env *e, const char *branch) { return env_open(e, branch, 64 << 10); }

/* A file SEGMENT named NAME in pg_wal/. */
static void segment(store *st, const char *name, uint64_t ino) { dirent(st, PG_WAL_DIR, name, ino, S_IFREG); }

/* Rename pg_wal/FROM (inode INO) to pg_wal/TO, telling the observer as fs.c does. */
static void rename_seg(store *st, pg_wal *w, const char *from, const char *to, uint64_t ino)
{
    dirent(st, PG_WAL_DIR, from, 0, 0);
    segment(st, to, ino);
    pg_wal_forget(w, ino);
}

/* Write LEN bytes at OFF into INO (SIZE bytes long after it) as fs_write
 * does: the pages and the observer in one batch, committed PAUSE_US after
 * the observer saw it.  pg_wal_write's result; the commit's in *RC.  (No
 * CHECK: threads call it.) */
static int wal_write_rc(store *st, pg_wal *w, uint64_t ino, uint64_t size, uint64_t off, size_t len, int *rc,
                        unsigned pause_us)
{
    store_batch b;
    skey k;
    uint64_t first = off / 8192, n = (off % 8192 + len + 8191) / 8192;
    uint8_t *pages = calloc(n ? n : 1, 8192);
    size_t *marks = calloc(n ? n : 1, sizeof *marks);
    if (!pages || !marks) { fprintf(stderr, "out of memory\n"); exit(2); }
    store_batch_init(&b);
    for (uint64_t pg = first; pg < first + n; pg++) {   /* each page says where it is */
        uint8_t *p = pages + (pg - first) * 8192;
        memcpy(p, &ino, 8);
        memcpy(p + 8, &pg, 8);
        key_page(&k, ino, pg);
        marks[pg - first] = store_batch_mark(&b);
        store_batch_put(&b, &k, p, 8192);
    }
    key_inode(&k, ino);                       /* fs.c's itxn_end adds the attributes */
    store_batch_put(&b, &k, "attr", 4);
    /* the archive refers to the page puts (every other write) or carries its own copy */
    int wal = pg_wal_write(w, &b, ino, size, off, len, first, pages, off / 8192 % 2 ? marks : NULL, &(uint32_t){0}, &(uint64_t){0});
    free(pages);
    free(marks);
    if (pause_us) usleep(pause_us);           /* fs.c has more to do here: let others run */
    *rc = store_commit(st, &b);
    if (wal > 0) pg_wal_written(w, *rc);
    store_batch_free(&b);
    return wal;
}

static int wal_write(store *st, pg_wal *w, uint64_t ino, uint64_t size, uint64_t off, size_t len)
{
    int rc;
    int wal = wal_write_rc(st, w, ino, size, off, len, &rc, 0);
    CHECK(rc == 0);
    return wal;
}

/* The recorded position of ST (0: none). */
static uint64_t lsn_of(store *st)
{
    pg_wal_pos p = { 0 };
    int rc = pg_wal_pos_get(st, &p);
    if (rc && rc != -ENOENT) fprintf(stderr, "pg_wal_pos_get: %d\n", rc);
    CHECK(rc == 0 || rc == -ENOENT);
    return rc ? 0 : p.lsn;
}

/* The recorded position in BRANCH's newest manifest (0: none). */
static uint64_t lsn_committed(env *e, const char *branch)
{
    manifest m;
    pg_wal_pos p = { 0 };
    CHECK(manifest_load_latest(e->os, branch, &m) == 0);
    int rc = pg_wal_pos_at(e->os, &m, &p);
    CHECK(rc == 0 || rc == -ENOENT);
    manifest_free(&m);
    return rc ? 0 : p.lsn;
}

/* Inodes of the tree (root 1, pg_wal/ PG_WAL_DIR). */
enum {
    I_VERSION = 3, I_SEG1 = 10, I_TEMP, I_PARTIAL, I_HISTORY, I_STATUS, I_SEGDIR, I_STATUS_SEG,
    I_SEG6, I_SEG5, I_NEW, I_TLI2, I_OUT, I_LOG1, I_OTHER = 1000,
};

static void test_observer(void)
{
    env e;
    env_init(&e);
    store *st = open_branch(&e, "main");
    pg_wal *w = must_observe(st);

    /* no pg_wal/ yet (before initdb) */
    dirent(st, 1, "PG_VERSION", I_VERSION, S_IFREG);
    CHECK(wal_write(st, w, I_VERSION, 3, 0, 3) == 0);
    CHECK(lsn_of(st) == 0);
    dirent(st, 1, "pg_wal", PG_WAL_DIR, S_IFDIR);
    segment(st, "000000010000000000000001", I_SEG1);
    segment(st, "xlogtemp.77", I_TEMP);
    segment(st, "000000010000000000000002.partial", I_PARTIAL);
    segment(st, "00000002.history", I_HISTORY);
    dirent(st, PG_WAL_DIR, "archive_status", I_STATUS, S_IFDIR);
    dirent(st, PG_WAL_DIR, "000000010000000000000003", I_SEGDIR, S_IFDIR);
    dirent(st, I_STATUS, "000000010000000000000004", I_STATUS_SEG, S_IFREG);
    CHECK(wal_write(st, w, I_VERSION, 3, 0, 3) == 0);           /* cached: not a segment */

    /* one segment: the position appears, grows, never shrinks */
    CHECK(wal_write(st, w, I_SEG1, SEG16, 0, 8192) == 1);
    CHECK(lsn_of(st) == SEG16 + 8192);
    CHECK(wal_write(st, w, I_SEG1, SEG16, 8192, 100) == 1);
    CHECK(lsn_of(st) == SEG16 + 8292);
    pg_wal_pos before, after;     /* an older page written again: the end stays, the time moves */
    CHECK(pg_wal_pos_get(st, &before) == 0);
    usleep(2000);
    CHECK(wal_write(st, w, I_SEG1, SEG16, 0, 8192) == 1);
    CHECK(wal_write(st, w, I_SEG1, SEG16, 8192, 100) == 1);
    CHECK(pg_wal_pos_get(st, &after) == 0);
    CHECK(after.lsn == before.lsn && after.time_us > before.time_us);
    CHECK(wal_write(st, w, I_SEG1, SEG16, 8192, 0) == 0);    /* nothing written */
    CHECK(lsn_of(st) == SEG16 + 8292);

    /* not segments: none of these moves it, however far they write */
    uint64_t not_wal[] = { I_TEMP, I_PARTIAL, I_HISTORY, I_SEGDIR, I_STATUS_SEG, I_VERSION, I_OTHER };
    for (size_t i = 0; i < sizeof not_wal / sizeof not_wal[0]; i++)
        CHECK(wal_write(st, w, not_wal[i], SEG16, SEG16 - 8192, 8192) == 0);
    CHECK(lsn_of(st) == SEG16 + 8292);

    /* the segment size comes from the file's size */
    segment(st, "000000010000000000000006", I_SEG6);
    segment(st, "000000010000000000000005", I_SEG5);
    CHECK(wal_write(st, w, I_SEG6, 20 * MiB + 3, 0, 8192) == 1);      /* not a power of two: 16 MiB */
    CHECK(lsn_of(st) == 6 * SEG16 + 8192);
    CHECK(wal_write(st, w, I_SEG5, 64 * MiB, 0, 8192) == 1);          /* 64 MiB segments */
    CHECK(lsn_of(st) == 5 * 64 * MiB + 8192);

    /* created after the cache was filled; another timeline; out of range */
    segment(st, "00000001000000000000001A", I_NEW);
    CHECK(wal_write(st, w, I_NEW, SEG16, 0, 8192) == 1);
    CHECK(lsn_of(st) == 0x1A * SEG16 + 8192);
    segment(st, "00000002000000000000001B", I_TLI2);
    CHECK(wal_write(st, w, I_TLI2, SEG16, 0, 8192) == 1);
    CHECK(lsn_of(st) == 0x1B * SEG16 + 8192);
    segment(st, "000000010000000000000100", I_OUT);
    CHECK(wal_write(st, w, I_OUT, SEG16, 0, 8192) == 0);

    /* recycling: an old segment renamed to a future name counts under it;
     * a temp file renamed into a segment name counts */
    rename_seg(st, w, "000000010000000000000001", "000000010000000000000030", I_SEG1);
    CHECK(wal_write(st, w, I_SEG1, SEG16, 0, 8192) == 1);
    CHECK(lsn_of(st) == 0x30 * SEG16 + 8192);
    rename_seg(st, w, "xlogtemp.77", "000000010000000000000031", I_TEMP);
    CHECK(wal_write(st, w, I_TEMP, SEG16, 0, 4096) == 1);
    CHECK(lsn_of(st) == 0x31 * SEG16 + 4096);
    /* unlinked (still open): no longer a segment */
    dirent(st, PG_WAL_DIR, "00000002000000000000001B", 0, 0);
    pg_wal_forget(w, I_TLI2);
    CHECK(wal_write(st, w, I_TLI2, SEG16, SEG16 - 8192, 8192) == 0);
    CHECK(lsn_of(st) == 0x31 * SEG16 + 4096);

    /* many other files: the cache empties itself and still answers right */
    for (uint64_t i = 0; i < 5000; i++) CHECK(wal_write(st, w, 100000 + i, 8192, 0, 8192) == 0);
    CHECK(wal_write(st, w, I_SEG1, SEG16, 8192, 8192) == 1);   /* seg 0x30, below 0x31 */
    CHECK(lsn_of(st) == 0x31 * SEG16 + 4096);
    CHECK(wal_write(st, w, I_TEMP, SEG16, 0, 8192) == 1);
    CHECK(lsn_of(st) == 0x31 * SEG16 + 8192);
    segment(st, "000000010000000100000000", I_LOG1);
    CHECK(wal_write(st, w, I_LOG1, SEG16, 0, 8192) == 1);
    uint64_t top = 0x100000000ull + 8192;
    CHECK(lsn_of(st) == top);

    /* close + reopen: read back; an older write does not lower it */
    pg_wal_close(w);
    CHECK(store_close(st) == 0);
    CHECK(lsn_committed(&e, "main") == top);
    st = open_branch(&e, "main");
    w = must_observe(st);
    CHECK(lsn_of(st) == top);
    CHECK(wal_write(st, w, I_TEMP, SEG16, 0, 16384) == 1);
    CHECK(lsn_of(st) == top);
    CHECK(wal_write(st, w, I_LOG1, SEG16, 8192, 8192) == 1);
    top += 8192;
    CHECK(lsn_of(st) == top);

    /* pg_wal/ becomes a symlink (initdb -X): not followed */
    dirent(st, 1, "pg_wal", 77, S_IFLNK);
    pg_wal_forget(w, PG_WAL_DIR);
    CHECK(wal_write(st, w, I_LOG1, SEG16, SEG16 - 8192, 8192) == 0);
    CHECK(lsn_of(st) == top);
    dirent(st, 1, "pg_wal", PG_WAL_DIR, S_IFDIR);
    pg_wal_forget(w, 77);
    CHECK(wal_write(st, w, I_LOG1, SEG16, SEG16 - 8192, 8192) == 1);
    CHECK(lsn_of(st) == 0x101000000ull);
    pg_wal_close(w);
    CHECK(store_close(st) == 0);
    env_free(&e);
}

/* kill -9 after a synced raising write: journal replay brings it back; a
 * fork starts at the parent's position and each side moves alone. */
static void test_replay_and_fork(void)
{
    env e;
    char err[512];
    branch_meta meta;
    env_init(&e);
    store *st = open_branch(&e, "main");
    pg_wal *w = must_observe(st);
    dirent(st, 1, "pg_wal", PG_WAL_DIR, S_IFDIR);
    segment(st, "000000010000000000000001", I_SEG1);
    segment(st, "000000010000000000000002", I_SEG6);
    CHECK(wal_write(st, w, I_SEG1, SEG16, 0, 8192) == 1);
    pg_wal_close(w);
    CHECK(store_close(st) == 0);

    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {               /* a daemon killed after an fsync */
        store *cst = open_branch(&e, "main");
        pg_wal *cw = must_observe(cst);
        int ok = wal_write(cst, cw, I_SEG1, SEG16, 8192, 8192) == 1 && store_sync(cst) == 0;
        _exit(ok ? 0 : 1);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    st = open_branch(&e, "main");
    CHECK(lsn_of(st) == SEG16 + 16384);
    w = must_observe(st);
    CHECK(wal_write(st, w, I_SEG1, SEG16, 8192, 8192) == 1);
    CHECK(lsn_of(st) == SEG16 + 16384);                        /* the observer read it back too */
    pg_wal_close(w);
    CHECK(store_close(st) == 0);

    CHECK(branch_fork(e.os, "dev", "main", 0, &meta, err, sizeof err) == 0);
    st = open_branch(&e, "main");
    w = must_observe(st);
    CHECK(wal_write(st, w, I_SEG6, SEG16, 0, 8192) == 1);
    pg_wal_close(w);
    CHECK(store_close(st) == 0);
    store *dev = open_branch(&e, "dev");
    CHECK(lsn_of(dev) == SEG16 + 16384);
    pg_wal *dw = must_observe(dev);
    CHECK(wal_write(dev, dw, I_SEG1, SEG16, 16384, 100) == 1);
    CHECK(lsn_of(dev) == SEG16 + 16484);
    pg_wal_close(dw);
    CHECK(store_close(dev) == 0);
    CHECK(lsn_committed(&e, "main") == 2 * SEG16 + 8192);
    CHECK(lsn_committed(&e, "dev") == SEG16 + 16484);
    manifest pm;                  /* the branch point, as `lakefs branch list` reads it */
    pg_wal_pos pos = { 0 };
    CHECK(manifest_load(e.os, "main", meta.parent_gen, &pm) == 0);
    CHECK(pg_wal_pos_at(e.os, &pm, &pos) == 0 && pos.lsn == SEG16 + 16384 && pos.tli == 1 && pos.segsize == SEG16);
    manifest_free(&pm);
    CHECK(manifest_load(e.os, "main", 1, &pm) == 0);          /* before any WAL */
    CHECK(pg_wal_pos_at(e.os, &pm, &pos) == -ENOENT);
    manifest_free(&pm);
    env_free(&e);
}

/* ---- concurrent writers ---- */

#define NTHREADS 8
#define NWRITES 120

typedef struct writer {
    store *st;
    pg_wal *w;
    int id;
    int bad;                      /* a commit failed, or the key was below our position */
} writer;

/* Thread: write pages ID, ID + NTHREADS, ... of segment 1 through its own
 * file (timeline ID + 1), so the positions of all threads interleave; after
 * each commit the recorded position must be at least this write's. */
static void *writer_main(void *arg)
{
    writer *t = arg;
    for (uint64_t i = 0; i < NWRITES && !t->bad; i++) {
        uint64_t off = (i * NTHREADS + (uint64_t)t->id) * 8192, lsn = 0;
        int rc;
        wal_write_rc(t->st, t->w, 20 + (uint64_t)t->id, SEG16, off, 8192, &rc, (unsigned)(i * 7 + (uint64_t)t->id * 13) % 20);
        pg_wal_pos p;
        if (rc || pg_wal_pos_get(t->st, &p) || (lsn = p.lsn) < SEG16 + off + 8192) t->bad = 1;
    }
    return NULL;
}

static void test_concurrent(void)
{
    env e;
    env_init(&e);
    store *st = open_branch(&e, "main");
    pg_wal *w = must_observe(st);
    dirent(st, 1, "pg_wal", PG_WAL_DIR, S_IFDIR);
    for (int i = 0; i < NTHREADS; i++) {
        char name[32];
        snprintf(name, sizeof name, "%08X0000000000000001", i + 1);
        segment(st, name, 20 + (uint64_t)i);
    }
    pthread_t th[NTHREADS];
    writer wr[NTHREADS];
    for (int i = 0; i < NTHREADS; i++) {
        wr[i] = (writer){ st, w, i, 0 };
        pthread_create(&th[i], NULL, writer_main, &wr[i]);
    }
    for (int i = 0; i < NTHREADS; i++) {
        pthread_join(th[i], NULL);
        CHECK(!wr[i].bad);
    }
    uint64_t top = SEG16 + NTHREADS * NWRITES * 8192;
    CHECK(lsn_of(st) == top);
    pg_wal_close(w);
    CHECK(store_close(st) == 0);
    CHECK(lsn_committed(&e, "main") == top);
    env_free(&e);
}

/* An 8 KiB pg_control page of PostgreSQL 15 whose last checkpoint
 * record is at CHECKPOINT (ControlFileData.checkPoint, 32 bytes in). */
static void control_page(uint8_t *p, uint64_t checkpoint)
{
    uint32_t version = 1300, catalog = 202209061;
    memset(p, 0, 8192);
    memcpy(p + 8, &version, 4);
    memcpy(p + 12, &catalog, 4);
    memcpy(p + 32, &checkpoint, 8);
}

enum { I_GLOBAL = 20, I_CONTROL, I_CONTROL_COPY, I_CONTROL_BAK, I_CONTROL_NEW, I_RECYCLED };

/* Commit PAGE as page 0 of file INO (what fs_write stores). */
static void wal_page_put(store *st, uint64_t ino, const uint8_t *page)
{
    store_batch b;
    skey k;
    store_batch_init(&b);
    key_page(&k, ino, 0);
    store_batch_put(&b, &k, page, 8192);
    CHECK(store_commit(st, &b) == 0);
    store_batch_free(&b);
}

static void test_checkpoints(void)
{
    env e;
    uint8_t page[8192];
    env_init(&e);
    store *st = open_branch(&e, "main");
    pg_wal *w = must_observe(st);
    dirent(st, 1, "global", I_GLOBAL, S_IFDIR);
    dirent(st, I_GLOBAL, "pg_control", I_CONTROL, S_IFREG);
    dirent(st, 1, "pg_control", I_CONTROL_COPY, S_IFREG);
    dirent(st, I_GLOBAL, "pg_control.bak", I_CONTROL_BAK, S_IFREG);

    control_page(page, 0x1000028);
    CHECK(pg_wal_checkpointed(NULL, I_CONTROL, 0, 8192, page) == 0);
    CHECK(pg_wal_checkpointed(w, I_CONTROL_COPY, 0, 8192, page) == 0);
    CHECK(pg_wal_checkpointed(w, I_CONTROL_BAK, 0, 8192, page) == 0);
    CHECK(pg_wal_checkpointed(w, I_CONTROL, 0, 8192, page) == 1);   /* the first one seen */
    CHECK(pg_wal_checkpointed(w, I_CONTROL, 0, 8192, page) == 0);   /* the same again: the server's start */
    CHECK(pg_wal_checkpointed(w, I_CONTROL, 0, 47, page) == 0);
    control_page(page, 0x2000060);
    CHECK(pg_wal_checkpointed(w, I_CONTROL, 8192, 8192, page) == 0);
    CHECK(pg_wal_checkpointed(w, I_CONTROL_COPY, 0, 8192, page) == 0);
    CHECK(pg_wal_checkpointed(w, I_CONTROL, 0, 8192, page) == 1);
    CHECK(pg_wal_checkpointed(w, I_CONTROL, 0, 8192, page) == 0);
    uint32_t bad = 7;             /* no PostgreSQL release has that catalog version */
    memcpy(page + 12, &bad, 4);
    memcpy(page + 32, &(uint64_t){ 0x3000000 }, 8);
    CHECK(pg_wal_checkpointed(w, I_CONTROL_COPY, 0, 8192, page) == 0);

    /* pg_control known: a recycled segment renamed and forgotten is looked up again */
    dirent(st, 1, "pg_wal", PG_WAL_DIR, S_IFDIR);
    segment(st, "000000010000000000000001", I_RECYCLED);
    CHECK(wal_write(st, w, I_RECYCLED, SEG16, 0, 100) == 1);
    CHECK(lsn_of(st) == 0x1000000 + 100);
    rename_seg(st, w, "000000010000000000000001", "000000010000000000000005", I_RECYCLED);
    CHECK(wal_write(st, w, I_RECYCLED, SEG16, 0, 200) == 1);
    CHECK(lsn_of(st) == 0x5000000 + 200);

    /* pg_control replaced by rename (pg_resetwal, pg_rewind): the new inode counts */
    dirent(st, I_GLOBAL, "pg_control", I_CONTROL_NEW, S_IFREG);
    pg_wal_forget(w, I_CONTROL);
    control_page(page, 0x6000028);
    CHECK(pg_wal_checkpointed(w, I_CONTROL, 0, 8192, page) == 0);
    CHECK(pg_wal_checkpointed(w, I_CONTROL_NEW, 0, 8192, page) == 1);

    /* a new observer (the next mount) starts from what pg_control names:
     * the server's start writes it again, naming the same checkpoint */
    wal_page_put(st, I_CONTROL_NEW, page);
    pg_wal_close(w);
    w = must_observe(st);
    CHECK(pg_wal_checkpointed(w, I_CONTROL_NEW, 0, 8192, page) == 0);
    control_page(page, 0x6800028);
    CHECK(pg_wal_checkpointed(w, I_CONTROL_NEW, 0, 8192, page) == 1);

    /* another branch's observer knows only its own tree */
    branch_meta meta;
    char err[512];
    pg_wal_close(w);
    CHECK(store_close(st) == 0);
    CHECK(branch_fork(e.os, "dev", "main", 0, &meta, err, sizeof err) == 0);
    store *dev = open_branch(&e, "dev");
    pg_wal *dw = must_observe(dev);
    control_page(page, 0x6000028);
    CHECK(pg_wal_checkpointed(dw, I_CONTROL_NEW, 0, 8192, page) == 0);  /* what the fork's pg_control names */
    control_page(page, 0x7000028);
    CHECK(pg_wal_checkpointed(dw, I_CONTROL, 0, 8192, page) == 0);   /* renamed away before the fork */
    CHECK(pg_wal_checkpointed(dw, I_CONTROL_NEW, 0, 8192, page) == 1);
    pg_wal_close(dw);
    CHECK(store_close(dev) == 0);
    env_free(&e);
}

/* A write of page PG of INO (SIZE bytes) as fs.c makes it for a file with
 * mapping *TLI, *FIRST, but with only what the observer adds in the batch
 * (so the archive pages after it are the observer's).  pg_wal_write's
 * result. */
static int observe(store *st, pg_wal *w, uint64_t ino, uint64_t size, uint64_t pg, uint32_t *tli, uint64_t *first)
{
    store_batch b;
    uint8_t page[8192];
    memset(page, 0x5a, sizeof page);
    store_batch_init(&b);
    skey k;
    key_inode(&k, ino);                       /* fs.c's itxn_end adds the attributes */
    store_batch_put(&b, &k, "attr", 4);
    int wal = pg_wal_write(w, &b, ino, size, pg * 8192, 8192, pg, page, NULL, tli, first);
    int rc = store_commit(st, &b);
    CHECK(rc == 0);
    if (wal > 0) pg_wal_written(w, rc);
    store_batch_free(&b);
    return wal;
}

/* 1 if the archive of ST holds page PAGE of timeline TLI. */
static int archived(store *st, uint32_t tli, uint64_t page)
{
    uint8_t v[8192];
    size_t vlen = 0;
    skey k;
    key_walpage(&k, tli, page);
    return store_get(st, &k, v, sizeof v, &vlen) == 0 && vlen == 8192;
}

/* The mapping of a segment file onto its archive pages (fs_attr.wal_tli):
 * a write into a full-sized segment maps it (from then on fs.c stores its
 * pages once, as archive pages), and the observer adds no page of a file
 * mapped so; a mapping that is not the segment's own is left alone and
 * the pages archived under the segment's name; a segment not full-sized
 * and a file that is no segment are never mapped.  And where a segment's
 * place is (pg_wal_segment_entry, pg_wal_dir, pg_wal_has_entry). */
static void test_mapping(void)
{
    env e;
    env_init(&e);
    store *st = open_branch(&e, "main");
    pg_wal *w = must_observe(st);
    dirent(st, 1, "pg_wal", PG_WAL_DIR, S_IFDIR);
    segment(st, "000000020000000000000003", I_SEG1);
    segment(st, "xlogtemp.77", I_TEMP);
    const uint64_t page0 = 3 * SEG16 / 8192;
    uint32_t tli = 0;
    uint64_t first = 0;
    CHECK(observe(st, w, I_SEG1, SEG16 - 8192, 0, &tli, &first) == 1 && tli == 0 && first == 0);   /* not full-sized */
    CHECK(archived(st, 2, page0));
    CHECK(observe(st, w, I_SEG1, SEG16, 1, &tli, &first) == 1 && tli == 2 && first == page0);
    CHECK(archived(st, 2, page0 + 1));        /* the write that maps it still archives its own pages */
    CHECK(observe(st, w, I_SEG1, SEG16, 2, &tli, &first) == 1 && tli == 2 && first == page0);
    CHECK(!archived(st, 2, page0 + 2));       /* mapped: the page is fs.c's to put */
    CHECK(lsn_of(st) == 3 * SEG16 + 3 * 8192);   /* the position moves all the same */
    uint32_t other = 5;
    uint64_t other_first = 7;
    CHECK(observe(st, w, I_SEG1, SEG16, 3, &other, &other_first) == 1 && other == 5 && other_first == 7);
    CHECK(archived(st, 2, page0 + 3));
    tli = 0;
    CHECK(observe(st, w, I_TEMP, SEG16, 0, &tli, &first) == 0 && tli == 0);

    CHECK(pg_wal_segment_entry(st, PG_WAL_DIR, "000000020000000000000004") == 1);
    CHECK(pg_wal_segment_entry(st, PG_WAL_DIR, "000000020000000000000004.partial") == 0);
    CHECK(pg_wal_segment_entry(st, 1, "000000020000000000000004") == 0);
    uint64_t waldir = 0;
    CHECK(pg_wal_dir(st, &waldir) == 0 && waldir == PG_WAL_DIR);
    CHECK(pg_wal_has_entry(st, waldir, "000000020000000000000003") == 1);
    CHECK(pg_wal_has_entry(st, waldir, "000000020000000000000004") == 0);
    pg_wal_close(w);
    CHECK(store_close(st) == 0);
    env_free(&e);
}

int main(void)
{
    if (getenv("ONLY_C")) { test_concurrent(); return harness_done(); }
    test_names();
    test_observer();
    test_replay_and_fork();
    test_concurrent();
    test_checkpoints();
    test_mapping();
    return harness_done();
}

/*
 * fs.c -- FUSE low-level operations on top of a branch store.
 *
 * Every mutation is one atomic store batch (for rename: both entries and
 * every inode whose link count changes), so each seq is a crash-consistent
 * state of the tree.  Files are 8 KiB pages keyed by (ino, page no); a page
 * that was never written, or lies past a truncation, is absent and reads as
 * zeros, and an all-zero page is stored as an empty value.  The invariant
 * that makes extension cheap: bytes past EOF inside the last page are zero
 * (writes never go past EOF without moving it, truncation zeroes the tail).
 *
 * Locking: attribute read-modify-writes of an inode happen under that
 * inode's stripe mutex; namespace operations also take one mutex over the
 * whole namespace (PostgreSQL's metadata traffic is light, its data traffic
 * is page writes, which take only the stripe lock).  Stripe locks are always
 * taken in ascending stripe order.
 *
 * The daemon is the only writer of its branch, so the kernel may cache
 * entries, attributes and pages for long: every change passes through it.
 *
 * Views: every branch the mount serves is a view with an id of its own,
 * and a FUSE inode number is the view id in the top 16 bits and the store
 * inode below, so two branches never show the same (device, inode) pair
 * (PostgreSQL keys its shared memory on the data directory's pair).  A
 * repository mount opens a branch when branches/NAME is first looked up
 * (fs_branch_ops.open: taking its lease), so branches created after the
 * mount appear; the listing of branches/ asks the repository each time.
 * Each request holds its view's lock for reading; releasing a branch
 * (lakefs branch delete --force) takes it for writing, flushes and closes
 * the store, and later requests on its inodes fail with ESTALE.  Ids are
 * never reused within a mount, so a cached inode never names another
 * branch.  View structures live until the mount ends.
 */
#include "fs.h"
#include "fs_count.h"
#include "fs_format.h"
#include "pg/pg_archive.h"
#include "pg/pg_target.h"
#include "pg/pg_view.h"
#include "pg/pg_wal.h"
#include "../store/branch.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/falloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#define PAGE ((unsigned)KEY_PAGE_BYTES)
#define NSTRIPES 256
#define TIMEOUT 86400.0           /* entry/attr cache time: we are the only writer */
#define BRANCH_TIMEOUT 1.0        /* entry time of branches/NAME: others create and delete them */
#define VIEW_SHIFT 48             /* FUSE ino = view id << 48 | store ino */
#define MAX_VIEWS 32768           /* view ids per mount; listings number unserved names above */
#define SYN_BRANCHES 2            /* FUSE ino of the synthetic branches/ directory */
#define ARCH_DIR_NAME ".lakefs-wal"  /* in every view's root: its WAL archive */
#define ARCH_BIT (1ull << 47)     /* store inodes never reach it: the archive's own */
#define ARCH_SEG (1ull << 46)     /* ... | tli << 31 | segno: a segment; ... | tli: a history file */
#define ATTR_VERSION 1
#define ATTR_FIXED 61             /* encoded size without a symlink target */

typedef struct fs_attr {
    uint32_t mode, uid, gid, nlink, rdev;
    uint64_t size;
    int64_t atime, mtime, ctime;  /* nanoseconds since the epoch */
    char target[PATH_MAX];        /* symlink target (size bytes) */
} fs_attr;

typedef struct fs_dirent {
    char *name;
    fuse_ino_t ino;
    uint32_t type;                /* S_IFMT bits */
} fs_dirent;

typedef struct fs_dir {           /* an open directory: a snapshot listing */
    fs_dirent *ents;
    size_t n, cap;
} fs_dir;

typedef struct fs_file {          /* an open file */
    int flags;                    /* open(2) flags, for O_SYNC/O_DSYNC */
} fs_file;

typedef struct fs_view {          /* one branch served by the mount */
    pthread_rwlock_t lock;        /* read: a request uses st; write: release */
    char name[BRANCH_NAME_MAX + PG_TARGET_TEXT + 2];  /* BRANCH or BRANCH@TARGET */
    uint32_t id;                  /* top 16 bits of its FUSE inode numbers */
    store *st;                    /* NULL once released */
    pg_archive arch;              /* what .lakefs-wal shows: st's archive, or a time-travel view's own */
    pg_wal *wal;                  /* its WAL observer (fs/pg/pg_wal.h); NULL for a time-travel view */
    int past;                     /* a time-travel view: closed when idle (fs_close_idle_views) */
    uint64_t handles;             /* files and directories open in it */
    int64_t used_ns;              /* when a request last used it (monotonic clock) */
} fs_view;

struct fs_mount {
    fs_config cfg;
    pthread_mutex_t mu;           /* opening and releasing views; views by name */
    fs_view *views[MAX_VIEWS];    /* by id, from 1; published once complete */
    uint32_t nviews;              /* highest id handed out */
    struct fuse_session *se;      /* for entry invalidations; NULL before and after serving */
    pthread_mutex_t se_mu;        /* se's changes wait for an invalidation in progress */
};

typedef struct fs_ref {           /* a request's hold on the view of one inode */
    fs_view *v;                   /* NULL for a synthetic inode */
    store *st;                    /* v's store */
    const pg_archive *arch;       /* v's WAL archive */
    uint64_t sino;                /* store inode; 0 for a synthetic one */
} fs_ref;

static pthread_mutex_t ns_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t stripes[NSTRIPES];
static pthread_once_t stripes_once = PTHREAD_ONCE_INIT;
static struct timespec mount_time;

/* ---- small helpers ---- */

static fs_mount *mount_of(fuse_req_t req) { return fuse_req_userdata(req); }

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* A cheap monotonic clock, for how long a view has been idle. */
static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void stripes_init(void)
{
    for (int i = 0; i < NSTRIPES; i++) pthread_mutex_init(&stripes[i], NULL);
    clock_gettime(CLOCK_REALTIME, &mount_time);
}

static unsigned stripe_of(uint64_t ino) { return (unsigned)((ino * 0x9e3779b97f4a7c15ull) >> 56); }

/* Lock the stripes of up to 4 inodes (0 = none), ascending, without repeats. */
static void lock_inos(uint64_t a, uint64_t b, uint64_t c, uint64_t d, unsigned *held, int *nheld)
{
    uint64_t inos[4] = { a, b, c, d };
    int n = 0;
    for (int i = 0; i < 4; i++) {
        if (!inos[i]) continue;
        unsigned s = stripe_of(inos[i]);
        int dup = 0;
        for (int k = 0; k < n; k++) dup |= held[k] == s;
        if (!dup) held[n++] = s;
    }
    for (int i = 1; i < n; i++)
        for (int k = i; k > 0 && held[k - 1] > held[k]; k--) { unsigned t = held[k]; held[k] = held[k - 1]; held[k - 1] = t; }
    for (int i = 0; i < n; i++) pthread_mutex_lock(&stripes[held[i]]);
    *nheld = n;
}

static void unlock_inos(const unsigned *held, int nheld)
{
    for (int i = nheld - 1; i >= 0; i--) pthread_mutex_unlock(&stripes[held[i]]);
}

/* ---- single-inode updates ---- */

typedef struct inode_txn {        /* a read-modify-write of one inode */
    uint64_t sino;                /* store inode */
    unsigned held[4];             /* its stripe lock */
    int nheld;
    fs_attr a;                    /* its attributes, loaded at begin */
    store_batch b;                /* the changes, committed with A at end */
} inode_txn;

/* ---- inode numbers: FUSE <-> store ---- */

/* View id (0: synthetic) and store inode of FUSE inode INO. */
static uint64_t ino_split(const fs_mount *m, fuse_ino_t ino, uint64_t *sino)
{
    if (ino == FUSE_ROOT_ID) {
        *sino = m->cfg.branch ? FS_ROOT_INO : 0;
        return m->cfg.branch ? 1 : 0;
    }
    *sino = ino & ((1ull << VIEW_SHIFT) - 1);
    return ino >> VIEW_SHIFT;
}


/* Resolve FUSE inode INO into R, holding its view for reading: 0, or
 * -ESTALE if its branch was released (nothing held then).  A synthetic
 * inode (repository root, branches/) gives R->v NULL and R->sino 0. */
static int ref_get(fs_mount *m, fuse_ino_t ino, fs_ref *r)
{
    uint64_t sino, id = ino_split(m, ino, &sino);
    memset(r, 0, sizeof *r);
    if (id == 0) return 0;
    fs_view *v = id < MAX_VIEWS ? __atomic_load_n(&m->views[id], __ATOMIC_ACQUIRE) : NULL;
    if (!v) return -ESTALE;
    pthread_rwlock_rdlock(&v->lock);
    if (!v->st) { pthread_rwlock_unlock(&v->lock); return -ESTALE; }
    r->v = v; r->st = v->st; r->arch = &v->arch; r->sino = sino;
    if (v->past)                  /* only time-travel views close when idle: branches skip the clock */
        __atomic_store_n(&v->used_ns, mono_ns(), __ATOMIC_RELAXED);
    return 0;
}

/* A file or directory of INO's view was opened (DELTA 1) or released
 * (-1): counted, so that a view nothing has open can be closed. */
static void handles_add(fs_mount *m, fuse_ino_t ino, int64_t delta)
{
    uint64_t sino, id = ino_split(m, ino, &sino);
    fs_view *v = id && id < MAX_VIEWS ? __atomic_load_n(&m->views[id], __ATOMIC_ACQUIRE) : NULL;
    if (v) __atomic_add_fetch(&v->handles, (uint64_t)delta, __ATOMIC_RELAXED);
}

static void ref_put(fs_ref *r)
{
    if (r->v) pthread_rwlock_unlock(&r->v->lock);
    r->v = NULL;
}

/* For a request naming two inodes: R holds INO's view (as ref_get) and
 * *OTHER_SINO gets OTHER's store inode, which must lie in the same view
 * (its lock is not taken twice).  0, or -errno with nothing held: -EPERM
 * for a synthetic INO, -EXDEV for OTHER in another view or synthetic. */
static int ref_get_pair(fs_mount *m, fuse_ino_t ino, fuse_ino_t other, fs_ref *r, uint64_t *other_sino)
{
    int rc = ref_get(m, ino, r);
    if (rc) return rc;
    uint64_t id = ino_split(m, other, other_sino);
    if (!r->v) rc = -EPERM;
    else if (id != r->v->id || !*other_sino) rc = -EXDEV;
    if (rc) ref_put(r);
    return rc;
}

/* FUSE inode of store inode SINO of view V. */
static fuse_ino_t to_fuse(const fs_mount *m, const fs_view *v, uint64_t sino)
{
    if (m->cfg.branch && sino == FS_ROOT_INO) return FUSE_ROOT_ID;
    return ((uint64_t)v->id << VIEW_SHIFT) | sino;
}

/* ---- attribute and dirent encoding (little-endian, fs_format.h) ---- */

/* Encode A into BUF (at least ATTR_FIXED + PATH_MAX bytes); returns length. */
static size_t attr_encode(const fs_attr *a, uint8_t *buf)
{
    buf[0] = ATTR_VERSION;
    fs_put_le(buf + 1, a->mode, 4); fs_put_le(buf + 5, a->uid, 4); fs_put_le(buf + 9, a->gid, 4);
    fs_put_le(buf + 13, a->nlink, 4); fs_put_le(buf + 17, a->rdev, 4); fs_put_le(buf + 21, a->size, 8);
    fs_put_le(buf + 29, (uint64_t)a->atime, 8); fs_put_le(buf + 37, (uint64_t)a->mtime, 8);
    fs_put_le(buf + 45, (uint64_t)a->ctime, 8); fs_put_le(buf + 53, 0, 8);
    size_t len = ATTR_FIXED;
    if (S_ISLNK(a->mode)) { memcpy(buf + len, a->target, a->size); len += a->size; }
    return len;
}

/* Decode LEN bytes into A; -EIO if malformed. */
static int attr_decode(const uint8_t *buf, size_t len, fs_attr *a)
{
    if (len < ATTR_FIXED || buf[0] != ATTR_VERSION) return -EIO;
    a->mode = (uint32_t)fs_get_le(buf + 1, 4); a->uid = (uint32_t)fs_get_le(buf + 5, 4);
    a->gid = (uint32_t)fs_get_le(buf + 9, 4); a->nlink = (uint32_t)fs_get_le(buf + 13, 4);
    a->rdev = (uint32_t)fs_get_le(buf + 17, 4); a->size = fs_get_le(buf + 21, 8);
    a->atime = (int64_t)fs_get_le(buf + 29, 8); a->mtime = (int64_t)fs_get_le(buf + 37, 8);
    a->ctime = (int64_t)fs_get_le(buf + 45, 8);
    if (S_ISLNK(a->mode)) {
        if (a->size >= PATH_MAX || len != ATTR_FIXED + a->size) return -EIO;
        memcpy(a->target, buf + ATTR_FIXED, a->size);
        a->target[a->size] = 0;
    }
    return 0;
}

size_t fs_root_attr(uint8_t *buf, size_t cap)
{
    fs_attr a = { .mode = S_IFDIR | 0755, .nlink = 2 };
    a.atime = a.mtime = a.ctime = now_ns();
    uint8_t tmp[ATTR_FIXED + PATH_MAX];
    size_t len = attr_encode(&a, tmp);
    if (len > cap) return 0;
    memcpy(buf, tmp, len);
    return len;
}

/* Load the attributes of store inode SINO. */
static int attr_load(store *st, uint64_t sino, fs_attr *a)
{
    if (sino & ARCH_BIT) return -EROFS;   /* the archive's files are read-only and have no attributes stored */
    uint8_t buf[ATTR_FIXED + PATH_MAX];
    size_t len;
    skey k;
    key_inode(&k, sino);
    int rc = store_get(st, &k, buf, sizeof buf, &len);
    if (rc) return rc;
    if (len > sizeof buf) return -EIO;
    return attr_decode(buf, len, a);
}

/* Add "store attributes of SINO = A" to batch B. */
static void attr_put(store_batch *b, uint64_t sino, const fs_attr *a)
{
    uint8_t buf[ATTR_FIXED + PATH_MAX];
    skey k;
    key_inode(&k, sino);
    store_batch_put(b, &k, buf, attr_encode(a, buf));
}

/* Child of entry NAME in directory DIR: -ENOENT if none. */
static int dirent_load(store *st, uint64_t dir, const char *name, uint64_t *child, uint32_t *type)
{
    uint8_t v[FS_DIRENT_LEN];
    size_t len;
    uint32_t t;
    skey k;
    key_dirent(&k, dir, name, strlen(name));
    int rc = store_get(st, &k, v, sizeof v, &len);
    if (!rc) rc = fs_dirent_decode(v, len, child, &t);
    if (!rc && type) *type = t;
    return rc;
}

static void dirent_put(store_batch *b, uint64_t dir, const char *name, uint64_t child, uint32_t mode)
{
    uint8_t v[FS_DIRENT_LEN];
    skey k;
    fs_dirent_encode(v, child, mode);
    key_dirent(&k, dir, name, strlen(name));
    store_batch_put(b, &k, v, sizeof v);
}

static void dirent_del(store_batch *b, uint64_t dir, const char *name)
{
    skey k;
    key_dirent(&k, dir, name, strlen(name));
    store_batch_del(b, &k);
}

static void ts_of(int64_t ns, struct timespec *ts) { ts->tv_sec = ns / 1000000000; ts->tv_nsec = ns % 1000000000; }

/* Fill ST from A for FUSE inode INO. */
static void attr_to_stat(const fs_attr *a, fuse_ino_t ino, struct stat *st)
{
    memset(st, 0, sizeof *st);
    st->st_ino = ino;
    st->st_mode = a->mode; st->st_nlink = a->nlink; st->st_uid = a->uid; st->st_gid = a->gid;
    st->st_rdev = a->rdev; st->st_size = (off_t)a->size; st->st_blksize = PAGE;
    st->st_blocks = (blkcnt_t)((a->size + 511) / 512);
    ts_of(a->atime, &st->st_atim); ts_of(a->mtime, &st->st_mtim); ts_of(a->ctime, &st->st_ctim);
}

/* Attributes of a synthetic directory (repository root, branches/). */
static void synthetic_stat(fuse_ino_t ino, struct stat *st)
{
    memset(st, 0, sizeof *st);
    st->st_ino = ino; st->st_mode = S_IFDIR | 0755; st->st_nlink = 2; st->st_blksize = PAGE;
    st->st_atim = st->st_mtim = st->st_ctim = mount_time;
}

static void reply_entry(fuse_req_t req, fuse_ino_t ino, const struct stat *st)
{
    struct fuse_entry_param e;
    memset(&e, 0, sizeof e);
    e.ino = ino; e.attr = *st; e.attr_timeout = TIMEOUT; e.entry_timeout = TIMEOUT;
    fuse_reply_entry(req, &e);
}

static void reply_attr_entry(fuse_req_t req, const fs_ref *r, uint64_t sino, const fs_attr *a)
{
    struct stat st;
    fuse_ino_t ino = to_fuse(mount_of(req), r->v, sino);
    attr_to_stat(a, ino, &st);
    reply_entry(req, ino, &st);
}

/* ---- the WAL archive: .lakefs-wal in every view's root ---- */

/* The store inode of archive file F, or 0 if its numbers do not fit one
 * (such a file cannot be served). */
static uint64_t arch_sino(const pg_archive_file *f)
{
    if (f->history) return f->tli < (1u << 31) ? ARCH_BIT | f->tli : 0;
    if (f->tli >= (1u << 15) || f->segno >= (1ull << 31)) return 0;
    return ARCH_BIT | ARCH_SEG | (uint64_t)f->tli << 31 | f->segno;
}

/* The archive file of store inode SINO (not the directory) into *F: 0,
 * -ENOENT if the archive does not hold it, or -errno. */
static int arch_file(const pg_archive *arch, uint64_t sino, pg_archive_file *f)
{
    memset(f, 0, sizeof *f);
    if (sino & ARCH_SEG) {
        f->tli = (uint32_t)((sino & ~(ARCH_BIT | ARCH_SEG)) >> 31);
        f->segno = sino & ((1ull << 31) - 1);
    } else {
        f->history = 1;
        f->tli = (uint32_t)(sino & ~ARCH_BIT);
    }
    return pg_archive_stat(arch, f);
}

/* Attributes of the archive directory (F NULL) or file F, FUSE inode INO:
 * readable by everyone (PostgreSQL's restore_command copies from it),
 * owned by root, writes refused whoever asks.  Files are 0644, not 0444:
 * cp gives its copy the source's mode, and PostgreSQL opens a restored
 * segment for writing. */
static void arch_stat(fuse_ino_t ino, const pg_archive_file *f, struct stat *st)
{
    memset(st, 0, sizeof *st);
    st->st_ino = ino; st->st_blksize = PAGE;
    st->st_mode = f ? S_IFREG | 0644 : S_IFDIR | 0555;
    st->st_nlink = f ? 1 : 2;
    st->st_size = f ? (off_t)f->size : 0;
    st->st_blocks = (blkcnt_t)((st->st_size + 511) / 512);
    st->st_atim = st->st_mtim = st->st_ctim = mount_time;
}

/* Reply to a lookup in a view with an archive entry (F NULL: the
 * directory), never cached: the archive grows as the branch writes WAL. */
static void arch_reply_entry(fuse_req_t req, fuse_ino_t ino, const pg_archive_file *f)
{
    struct fuse_entry_param e;
    memset(&e, 0, sizeof e);
    e.ino = ino;
    arch_stat(ino, f, &e.attr);
    fuse_reply_entry(req, &e);
}

/* Lookup of NAME in view directory R->sino if it is the archive's business:
 * 1 if replied to, 0 if not. */
static int arch_lookup(fuse_req_t req, const fs_ref *r, const char *name)
{
    fs_mount *m = mount_of(req);
    if (r->sino == FS_ROOT_INO && !strcmp(name, ARCH_DIR_NAME)) {
        arch_reply_entry(req, to_fuse(m, r->v, ARCH_BIT), NULL);
        return 1;
    }
    if (r->sino != ARCH_BIT) return 0;
    pg_archive_file f;
    int rc = pg_archive_lookup(r->arch, name, &f);
    uint64_t sino = rc ? 0 : arch_sino(&f);
    if (!rc && !sino) rc = -ENOENT;
    if (rc) fuse_reply_err(req, -rc);
    else arch_reply_entry(req, to_fuse(m, r->v, sino), &f);
    return 1;
}

/* Lock SINO and load its attributes into T; returns 0 or -errno (then
 * itxn_end must still be called). */
static int itxn_begin(store *st, uint64_t sino, inode_txn *t)
{
    t->sino = sino;
    lock_inos(sino, 0, 0, 0, t->held, &t->nheld);
    store_batch_init(&t->b);
    return attr_load(st, sino, &t->a);
}

/* If RC is 0, commit T's batch with its attributes; unlock; returns the result. */
static int itxn_end(store *st, inode_txn *t, int rc)
{
    if (!rc) {
        attr_put(&t->b, t->sino, &t->a);
        rc = store_commit(st, &t->b);
    }
    unlock_inos(t->held, t->nheld);
    store_batch_free(&t->b);
    return rc;
}

/* ---- pages ---- */

static int all_zero(const uint8_t *p, size_t n)
{
    return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0);
}

/* Read page PG of SINO into BUF (zeros if absent); -EIO on failure. */
static int page_load(store *st, uint64_t sino, uint64_t pg, uint8_t *buf)
{
    skey k;
    size_t len;
    key_page(&k, sino, pg);
    int rc = store_get(st, &k, buf, PAGE, &len);
    if (rc == -ENOENT || (!rc && len == 0)) { memset(buf, 0, PAGE); return 0; }
    if (!rc && len != PAGE) rc = -EIO;
    return rc;
}

static void page_put(store_batch *b, uint64_t sino, uint64_t pg, const uint8_t *data)
{
    skey k;
    key_page(&k, sino, pg);
    store_batch_put(b, &k, data, all_zero(data, PAGE) ? 0 : PAGE);
}

/* Zero bytes [from, to) of SINO (file size SIZE) in batch B: whole pages
 * become tombstones, partial ones are rewritten. */
static int zero_range(store *st, store_batch *b, uint64_t sino, uint64_t size, uint64_t from, uint64_t to)
{
    uint8_t page[PAGE];
    for (uint64_t pg = from / PAGE; pg * PAGE < to; pg++) {
        uint64_t ps = pg * PAGE, pe = ps + PAGE;
        if (from <= ps && to >= pe) {
            skey k;
            key_page(&k, sino, pg);
            store_batch_del(b, &k);
            continue;
        }
        if (ps >= size) continue;          /* past EOF: already zero */
        int rc = page_load(st, sino, pg, page);
        if (rc) return rc;
        uint64_t zs = from > ps ? from : ps, ze = to < pe ? to : pe;
        memset(page + (zs - ps), 0, ze - zs);
        page_put(b, sino, pg, page);
    }
    return 0;
}

/* Change the size of SINO from A->size to SIZE in batch B (stripe held). */
static int resize(store *st, store_batch *b, uint64_t sino, fs_attr *a, uint64_t size)
{
    if (size < a->size) {
        uint64_t end = (a->size + PAGE - 1) / PAGE * PAGE;
        int rc = zero_range(st, b, sino, a->size, size, end);
        if (rc) return rc;
    }
    a->size = size;
    return 0;
}

/* ---- views: the branches the mount serves ---- */

/* The view serving branch NAME, or NULL (m->mu held). */
static fs_view *view_find(fs_mount *m, const char *name)
{
    for (uint32_t id = 1; id <= m->nviews; id++)
        if (m->views[id]->st && !strcmp(m->views[id]->name, name)) return m->views[id];
    return NULL;
}

/* Unlink, in one batch, the entries of the branch root that PostgreSQL
 * left for a server that cannot be running on this view (pg_view.h). */
static int view_drop_stale(fs_view *v)
{
    store_batch b;
    store_batch_init(&b);
    int64_t now = now_ns();
    fs_attr root, a;
    int n = 0, rc = attr_load(v->st, FS_ROOT_INO, &root);
    for (const char *const *name = pg_view_stale_files(); !rc && *name; name++) {
        uint64_t child;
        int lrc = dirent_load(v->st, FS_ROOT_INO, *name, &child, NULL);
        if (lrc == -ENOENT) continue;
        if (!(rc = lrc) && !(rc = attr_load(v->st, child, &a)) && !S_ISDIR(a.mode)) {
            dirent_del(&b, FS_ROOT_INO, *name);
            a.nlink--;
            a.ctime = now;
            attr_put(&b, child, &a);
            n++;
        }
    }
    if (!rc && n) {
        root.mtime = root.ctime = now;
        attr_put(&b, FS_ROOT_INO, &root);
        if (!(rc = store_commit(v->st, &b)))
            fprintf(stderr, "lakefs: branch %s: removed %d PostgreSQL lock file%s (postmaster.pid) of a server "
                    "not running on this mount\n", v->name, n, n > 1 ? "s" : "");
    }
    store_batch_free(&b);
    return rc;
}

/* In batch B, append LEN bytes of DATA to file NAME in the root (ROOT its
 * attributes), creating it (mode 0600, owned as the root) if need be. */
static int root_file_append(store *st, store_batch *b, const fs_attr *root, const char *name,
                            const char *data, size_t len)
{
    uint64_t ino;
    fs_attr a;
    int rc = dirent_load(st, FS_ROOT_INO, name, &ino, NULL);
    if (rc == -ENOENT) {
        ino = store_alloc_ino(st);
        memset(&a, 0, sizeof a);
        a.mode = S_IFREG | 0600; a.uid = root->uid; a.gid = root->gid; a.nlink = 1;
        a.atime = now_ns();
        dirent_put(b, FS_ROOT_INO, name, ino, a.mode);
        rc = 0;
    } else if (!rc && !(rc = attr_load(st, ino, &a)) && !S_ISREG(a.mode)) {
        rc = -EEXIST;
    }
    uint8_t page[PAGE];
    for (size_t done = 0; !rc && done < len;) {
        uint64_t pos = a.size + done, pg = pos / PAGE, in = pos % PAGE;
        size_t take = PAGE - in < len - done ? PAGE - in : len - done;
        if (in) rc = page_load(st, ino, pg, page);
        else memset(page, 0, PAGE);   /* past EOF: zero */
        if (!rc) {
            memcpy(page + in, data + done, take);
            page_put(b, ino, pg, page);
        }
        done += take;
    }
    if (!rc) {
        a.size += len;
        a.mtime = a.ctime = now_ns();
        attr_put(b, ino, &a);
    }
    return rc;
}

int fs_add_recovery(store *st, int read_write)
{
    char conf[1024];
    const char *signal;
    pg_target_settings(read_write, conf, sizeof conf, &signal);
    fs_attr root;
    store_batch b;
    store_batch_init(&b);
    int rc = attr_load(st, FS_ROOT_INO, &root);
    if (!rc) rc = root_file_append(st, &b, &root, "postgresql.auto.conf", conf, strlen(conf));
    if (!rc) rc = root_file_append(st, &b, &root, signal, "", 0);
    if (!rc) {
        root.mtime = root.ctime = now_ns();
        attr_put(&b, FS_ROOT_INO, &root);
        rc = store_commit(st, &b);
    }
    store_batch_free(&b);
    return rc;
}

/* 1 if NAME can name a view: a branch name, optionally followed by
 * "@TARGET" (checked when the view is opened). */
static int view_name_valid(const char *name)
{
    const char *at = strchr(name, '@');
    char branch[BRANCH_NAME_MAX + 1];
    if (!at) return branch_name_valid(name);
    if ((size_t)(at - name) > BRANCH_NAME_MAX || !at[1] || strlen(name) >= sizeof ((fs_view *)0)->name) return 0;
    memcpy(branch, name, (size_t)(at - name));
    branch[at - name] = 0;
    return branch_name_valid(branch);
}

/* The view of branch NAME, opened through cfg.ops if no view serves it
 * yet (m->mu held): 0 or -errno (-ENOENT: no such branch). */
static int view_open(fs_mount *m, const char *name, fs_view **out, char *err, size_t errlen)
{
    if ((*out = view_find(m, name))) return 0;
    /* a time-travel view closed when idle comes back under its old id: the
     * kernel's stale inodes of it then name the same files of the same
     * point, and a view used now and then does not use up the ids */
    fs_view *v = NULL;
    for (uint32_t id = 1; id <= m->nviews && !v; id++)
        if (m->views[id]->past && !m->views[id]->st && !strcmp(m->views[id]->name, name)) v = m->views[id];
    int reuse = v != NULL;
    if (!reuse && m->nviews + 1 >= MAX_VIEWS) {
        snprintf(err, errlen, "this mount has opened %u branches, its limit; remount to serve more", m->nviews);
        return -EMFILE;
    }
    if (!reuse && !(v = calloc(1, sizeof *v))) return -ENOMEM;
    fs_branch fb = { 0 };
    int rc = m->cfg.ops.open(m->cfg.ops.arg, name, &fb, err, errlen);
    if (rc) { if (!reuse) free(v); return rc; }
    if (reuse) {
        pthread_rwlock_wrlock(&v->lock);   /* requests on its stale inodes wait for it whole */
    } else {
        snprintf(v->name, sizeof v->name, "%s", name);
        pthread_rwlockattr_t at;
        pthread_rwlockattr_init(&at);
        /* a release must not wait for a pause in a busy server's traffic */
        pthread_rwlockattr_setkind_np(&at, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
        pthread_rwlock_init(&v->lock, &at);
        pthread_rwlockattr_destroy(&at);
    }
    v->st = fb.st;
    v->arch = (pg_archive){ fb.archive, fb.archive_end };
    v->past = fb.past;
    v->used_ns = mono_ns();
    if ((rc = view_drop_stale(v)))
        snprintf(err, errlen, "branch %s: cannot remove a stale postmaster.pid: %s", name, strerror(-rc));
    else if (fb.past && (rc = fs_add_recovery(v->st, 0)))
        snprintf(err, errlen, "view %s: cannot write its recovery settings: %s", name, strerror(-rc));
    else if (!fb.past && (rc = pg_wal_open(v->st, &v->wal)))
        snprintf(err, errlen, "branch %s: cannot read its recorded WAL position: %s", name, strerror(-rc));
    if (rc) {
        m->cfg.ops.close(m->cfg.ops.arg, name, &fb);
        v->st = v->arch.st = NULL;
        if (reuse) {
            pthread_rwlock_unlock(&v->lock);
        } else {
            pthread_rwlock_destroy(&v->lock);
            free(v);
        }
        return rc;
    }
    store_hot_seal(v->st);        /* every open reads that much again */
    if (reuse) {
        pthread_rwlock_unlock(&v->lock);
    } else {
        v->id = m->nviews + 1;
        __atomic_store_n(&m->views[v->id], v, __ATOMIC_RELEASE);
        __atomic_store_n(&m->nviews, v->id, __ATOMIC_RELEASE);
    }
    *out = v;
    return 0;
}

int fs_new(const fs_config *cfg, fs_mount **out)
{
    fs_mount *m = calloc(1, sizeof *m);
    if (!m) return -ENOMEM;
    m->cfg = *cfg;
    pthread_mutex_init(&m->mu, NULL);
    pthread_mutex_init(&m->se_mu, NULL);
    pthread_once(&stripes_once, stripes_init);
    *out = m;
    return 0;
}

void fs_set_session(fs_mount *m, struct fuse_session *se)
{
    pthread_mutex_lock(&m->se_mu);
    m->se = se;
    pthread_mutex_unlock(&m->se_mu);
}

/* Make the kernel forget branches/NAME (a repository mount being served);
 * never called with m->mu held: the kernel may wait for a lookup in
 * branches/ that waits for m->mu. */
static void forget_branch_entry(fs_mount *m, const char *name)
{
    pthread_mutex_lock(&m->se_mu);
    if (m->se && !m->cfg.branch)
        fuse_lowlevel_notify_inval_entry(m->se, SYN_BRANCHES, name, strlen(name));
    pthread_mutex_unlock(&m->se_mu);
}

int fs_open_branch(fs_mount *m, const char *name, char *err, size_t errlen)
{
    fs_view *v;
    pthread_mutex_lock(&m->mu);
    int rc = view_open(m, name, &v, err, errlen);
    pthread_mutex_unlock(&m->mu);
    if (rc == -ENOENT && !*err) snprintf(err, errlen, "branch '%s' does not exist; see lakefs branch list", name);
    return rc;
}

/* R: a reference to the view serving NAME.  0, or -ENOENT if none. */
static int ref_named(fs_mount *m, const char *name, fs_ref *r)
{
    /* without m->mu: a lookup opening a time-travel view holds it while it
     * asks, through the control socket, for a checkpoint of the branch
     * looked up here.  Views are published complete and their names never
     * change. */
    fs_view *v = NULL;
    uint32_t n = __atomic_load_n(&m->nviews, __ATOMIC_ACQUIRE);
    for (uint32_t id = n; id >= 1 && !v; id--) {   /* newest first: a released view keeps its name */
        fs_view *c = __atomic_load_n(&m->views[id], __ATOMIC_ACQUIRE);
        if (c && !strcmp(c->name, name)) v = c;
    }
    if (!v) return -ENOENT;
    int rc = ref_get(m, (fuse_ino_t)v->id << VIEW_SHIFT | FS_ROOT_INO, r);
    return rc == -ESTALE ? -ENOENT : rc;
}

int fs_checkpoint(fs_mount *m, const char *name, uint64_t *seq, uint64_t *gen)
{
    fs_ref r;
    int rc = ref_named(m, name, &r);
    if (!rc) {
        rc = store_checkpoint(r.st, seq, gen);
        ref_put(&r);
    }
    return rc == -ESTALE ? -ENOENT : rc;
}

int fs_foreach_branch(fs_mount *m, fs_branch_fn fn, void *arg)
{
    int rc = 0;
    uint32_t n = __atomic_load_n(&m->nviews, __ATOMIC_ACQUIRE);
    for (uint32_t id = 1; id <= n && !rc; id++) {
        fs_view *v = __atomic_load_n(&m->views[id], __ATOMIC_ACQUIRE);
        if (!v) continue;
        pthread_rwlock_rdlock(&v->lock);
        if (v->st && v->wal) rc = fn(arg, v->name, v->st);   /* a branch, not a time-travel view */
        pthread_rwlock_unlock(&v->lock);
    }
    return rc;
}

int fs_stats(fs_mount *m, const char *name, store_stats *s)
{
    fs_ref r;
    int rc = ref_named(m, name, &r);
    if (!rc) {
        store_get_stats(r.st, s);
        ref_put(&r);
    }
    return rc;
}

/* Stop serving V (m->mu held): wait for its requests, close its store. */
/* Stop serving V, its lock held for writing (no request in flight). */
static int view_release_locked(fs_mount *m, fs_view *v)
{
    fs_branch fb = { v->st, v->arch.st, v->arch.end, v->past };
    v->st = v->arch.st = NULL;
    pg_wal_close(v->wal);
    v->wal = NULL;
    return fb.st ? m->cfg.ops.close(m->cfg.ops.arg, v->name, &fb) : 0;
}

static int view_release(fs_mount *m, fs_view *v)
{
    pthread_rwlock_wrlock(&v->lock);
    int rc = view_release_locked(m, v);
    pthread_rwlock_unlock(&v->lock);
    return rc;
}

/* 1 if a server may be running on view V: its root holds PostgreSQL's
 * lock file (pg_view.h).  V's lock is held. */
static int view_server_may_run(fs_view *v)
{
    uint64_t child;
    return dirent_load(v->st, FS_ROOT_INO, pg_view_lock_file(), &child, NULL) != -ENOENT;
}

int fs_close_idle_views(fs_mount *m, int64_t idle_ns)
{
    int closed = 0;
    int64_t now = mono_ns();
    if (m->cfg.branch) return 0;  /* a branch mount's view is its root: it stays */
    for (uint32_t id = 1; id <= __atomic_load_n(&m->nviews, __ATOMIC_ACQUIRE); id++) {
        pthread_mutex_lock(&m->mu);  /* no lookup of branches/NAME meanwhile (it holds V before letting go) */
        fs_view *v = m->views[id];
        int64_t used = 0;
        int rc = 1;
        /* a busy view (a request in flight) is left for the next call:
         * lookups in branches/ must not wait behind it for m->mu */
        if (v->past && v->st && !pthread_rwlock_trywrlock(&v->lock)) {
            /* no request in flight now, and none can open a file before the unlock */
            used = __atomic_load_n(&v->used_ns, __ATOMIC_RELAXED);
            if (now - used >= idle_ns && !__atomic_load_n(&v->handles, __ATOMIC_RELAXED) && !view_server_may_run(v))
                rc = view_release_locked(m, v);
            pthread_rwlock_unlock(&v->lock);
        }
        pthread_mutex_unlock(&m->mu);
        if (rc == 1) continue;
        forget_branch_entry(m, v->name);   /* the next use opens it afresh */
        fprintf(stderr, "lakefs: view %s: unused for %" PRId64 " s, closed (what was written on it is dropped; "
                "it opens again at the same point when used)%s%s\n", v->name, (now - used) / 1000000000,
                rc ? ": " : "", rc ? strerror(-rc) : "");
        closed++;
    }
    return closed;
}

int fs_release_branch(fs_mount *m, const char *name)
{
    pthread_mutex_lock(&m->mu);
    fs_view *v = view_find(m, name);
    int rc = v ? view_release(m, v) : -ENOENT;
    pthread_mutex_unlock(&m->mu);
    if (v) forget_branch_entry(m, name);
    return rc;
}

int fs_free(fs_mount *m)
{
    int rc = 0;
    if (!m) return 0;
    for (uint32_t id = 1; id <= m->nviews; id++) {
        int vrc = view_release(m, m->views[id]);
        if (vrc && !rc) rc = vrc;
        pthread_rwlock_destroy(&m->views[id]->lock);
        free(m->views[id]);
    }
    pthread_mutex_destroy(&m->mu);
    pthread_mutex_destroy(&m->se_mu);
    free(m);
    return rc;
}

/* Entry branches/NAME: its view's root, the view opened if need be. */
static void lookup_branch(fuse_req_t req, fs_mount *m, const char *name)
{
    char err[512] = "";
    fs_view *v;
    fs_ref r;
    fs_attr a;
    pthread_mutex_lock(&m->mu);
    int rc = view_name_valid(name) ? view_open(m, name, &v, err, sizeof err) : -ENOENT;
    /* held before m->mu is let go: an idle close cannot take it meanwhile */
    if (!rc) rc = ref_get(m, (fuse_ino_t)v->id << VIEW_SHIFT | FS_ROOT_INO, &r);
    pthread_mutex_unlock(&m->mu);
    if (rc && err[0]) fprintf(stderr, "lakefs: cannot serve %s: %s\n", name, err);
    if (rc) { fuse_reply_err(req, rc == -ESTALE ? ENOENT : -rc); return; }
    rc = attr_load(r.st, FS_ROOT_INO, &a);
    if (rc) {
        fuse_reply_err(req, -rc);
    } else {
        struct fuse_entry_param e;
        memset(&e, 0, sizeof e);
        e.ino = to_fuse(m, r.v, FS_ROOT_INO);
        attr_to_stat(&a, e.ino, &e.attr);
        e.attr_timeout = TIMEOUT;
        e.entry_timeout = BRANCH_TIMEOUT;
        fuse_reply_entry(req, &e);
    }
    ref_put(&r);
}

/* ---- lookups ---- */

static void fs_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    FS_COUNTED(FS_OP_LOOKUP);
    fs_mount *m = mount_of(req);
    fs_ref r;
    struct stat st;
    int rc = ref_get(m, parent, &r);
    if (rc) { fuse_reply_err(req, -rc); return; }
    if (!r.v) {
        if (parent == FUSE_ROOT_ID && !strcmp(name, "branches")) {
            synthetic_stat(SYN_BRANCHES, &st);
            reply_entry(req, SYN_BRANCHES, &st);
        } else if (parent == SYN_BRANCHES) {
            lookup_branch(req, m, name);
        } else {
            fuse_reply_err(req, ENOENT);
        }
        return;
    }
    if (arch_lookup(req, &r, name)) { ref_put(&r); return; }
    uint64_t child;
    fs_attr a;
    rc = strlen(name) > 255 ? -ENAMETOOLONG : dirent_load(r.st, r.sino, name, &child, NULL);
    if (rc == -ENOENT) {          /* negative entry, cached by the kernel */
        struct fuse_entry_param e;
        memset(&e, 0, sizeof e);
        e.entry_timeout = TIMEOUT;
        fuse_reply_entry(req, &e);
    } else {
        if (!rc) rc = attr_load(r.st, child, &a);
        if (rc) fuse_reply_err(req, -rc == ENOENT ? EIO : -rc);
        else reply_attr_entry(req, &r, child, &a);
    }
    ref_put(&r);
}

static void fs_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    FS_COUNTED(FS_OP_GETATTR);
    (void)fi;
    fs_ref r;
    struct stat st;
    fs_attr a;
    int rc = ref_get(mount_of(req), ino, &r);
    if (!rc && !r.v) {
        synthetic_stat(ino, &st);
        fuse_reply_attr(req, &st, TIMEOUT);
        return;
    }
    if (!rc && (r.sino & ARCH_BIT)) {
        pg_archive_file f;
        if (r.sino != ARCH_BIT) rc = arch_file(r.arch, r.sino, &f);
        if (!rc) arch_stat(ino, r.sino == ARCH_BIT ? NULL : &f, &st);
        ref_put(&r);
        if (rc) fuse_reply_err(req, -rc);
        else fuse_reply_attr(req, &st, 0);
        return;
    }
    if (!rc) rc = attr_load(r.st, r.sino, &a);
    ref_put(&r);
    if (rc) { fuse_reply_err(req, -rc); return; }
    attr_to_stat(&a, ino, &st);
    fuse_reply_attr(req, &st, TIMEOUT);
}

static void fs_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set, struct fuse_file_info *fi)
{
    FS_COUNTED(FS_OP_SETATTR);
    (void)fi;
    fs_ref r;
    int rc = ref_get(mount_of(req), ino, &r);
    if (!rc && !r.v) rc = -EPERM;
    if (rc) { fuse_reply_err(req, -rc); return; }
    store *st = r.st;
    uint64_t sino = r.sino;
    inode_txn t;
    fs_attr *a = &t.a;
    rc = itxn_begin(st, sino, &t);
    int64_t now = now_ns();
    if (!rc && (to_set & FUSE_SET_ATTR_SIZE)) {
        if (S_ISDIR(a->mode)) rc = -EISDIR;
        else if (!S_ISREG(a->mode)) rc = -EINVAL;
        else if ((rc = resize(st, &t.b, sino, a, (uint64_t)attr->st_size)) == 0) a->mtime = now;
    }
    if (!rc) {
        if (to_set & FUSE_SET_ATTR_MODE) a->mode = (a->mode & S_IFMT) | (attr->st_mode & 07777);
        if (to_set & FUSE_SET_ATTR_UID) a->uid = attr->st_uid;
        if (to_set & FUSE_SET_ATTR_GID) a->gid = attr->st_gid;
        if (to_set & FUSE_SET_ATTR_ATIME) a->atime = (int64_t)attr->st_atim.tv_sec * 1000000000 + attr->st_atim.tv_nsec;
        if (to_set & FUSE_SET_ATTR_MTIME) a->mtime = (int64_t)attr->st_mtim.tv_sec * 1000000000 + attr->st_mtim.tv_nsec;
        if (to_set & FUSE_SET_ATTR_ATIME_NOW) a->atime = now;
        if (to_set & FUSE_SET_ATTR_MTIME_NOW) a->mtime = now;
        a->ctime = (to_set & FUSE_SET_ATTR_CTIME) ? (int64_t)attr->st_ctim.tv_sec * 1000000000 + attr->st_ctim.tv_nsec : now;
    }
    rc = itxn_end(st, &t, rc);
    ref_put(&r);
    if (rc) { fuse_reply_err(req, -rc); return; }
    struct stat sb;
    attr_to_stat(a, ino, &sb);
    fuse_reply_attr(req, &sb, TIMEOUT);
}

static void fs_readlink(fuse_req_t req, fuse_ino_t ino)
{
    FS_COUNTED(FS_OP_READLINK);
    fs_ref r;
    fs_attr a;
    int rc = ref_get(mount_of(req), ino, &r);
    if (!rc) rc = r.v ? attr_load(r.st, r.sino, &a) : -EINVAL;
    ref_put(&r);
    if (!rc && !S_ISLNK(a.mode)) rc = -EINVAL;
    if (rc) fuse_reply_err(req, -rc);
    else fuse_reply_readlink(req, a.target);
}

/* ---- namespace changes ---- */

/* Check directory SDIR of ST has no entry NAME and NAME is a valid name. */
static int check_new_entry(store *st, uint64_t sdir, const char *name)
{
    if (strlen(name) > 255) return -ENAMETOOLONG;
    uint64_t child;
    int rc = dirent_load(st, sdir, name, &child, NULL);
    if (rc == 0) return -EEXIST;
    return rc == -ENOENT ? 0 : rc;
}

/* Create a new inode (file, dir, node, symlink) named NAME under PARENT;
 * on success R holds PARENT's view (ref_put it after replying). */
static int make_node(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
                     dev_t rdev, const char *target, fs_ref *r, uint64_t *sino_out, fs_attr *a)
{
    const struct fuse_ctx *ctx = fuse_req_ctx(req);
    int rc = ref_get(mount_of(req), parent, r);
    if (!rc && !r->v) rc = -EPERM;
    if (rc) return rc;
    store *st = r->st;
    uint64_t sdir = r->sino;
    pthread_mutex_lock(&ns_mu);
    rc = check_new_entry(st, sdir, name);
    if (!rc && target && strlen(target) >= PATH_MAX) rc = -ENAMETOOLONG;
    if (rc) { pthread_mutex_unlock(&ns_mu); ref_put(r); return rc; }
    uint64_t sino = store_alloc_ino(st);
    unsigned held[4]; int nheld;
    lock_inos(sdir, sino, 0, 0, held, &nheld);
    fs_attr pa;
    rc = attr_load(st, sdir, &pa);
    if (!rc && !S_ISDIR(pa.mode)) rc = -ENOTDIR;
    if (!rc) {
        memset(a, 0, sizeof *a);
        a->mode = mode; a->uid = ctx->uid; a->gid = ctx->gid; a->rdev = (uint32_t)rdev;
        a->nlink = S_ISDIR(mode) ? 2 : 1;
        if (pa.mode & S_ISGID) {
            a->gid = pa.gid;
            if (S_ISDIR(mode)) a->mode |= S_ISGID;
        }
        a->atime = a->mtime = a->ctime = now_ns();
        if (target) { a->size = strlen(target); memcpy(a->target, target, a->size + 1); }
        store_batch b;
        store_batch_init(&b);
        attr_put(&b, sino, a);
        dirent_put(&b, sdir, name, sino, mode);
        pa.mtime = pa.ctime = a->mtime;
        if (S_ISDIR(mode)) pa.nlink++;
        attr_put(&b, sdir, &pa);
        rc = store_commit(st, &b);
        store_batch_free(&b);
    }
    unlock_inos(held, nheld);
    pthread_mutex_unlock(&ns_mu);
    if (rc) ref_put(r);
    /* the server's lock file appears: it starts, and what it reads now is
     * what its next start on a fresh machine reads first */
    else if (sdir == FS_ROOT_INO && S_ISREG(mode) && pg_view_starts_server(name)) store_hot_restart(st);
    *sino_out = sino;
    return rc;
}

static void fs_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
    FS_COUNTED(FS_OP_MKNOD);
    uint64_t sino; fs_attr a; fs_ref r;
    int rc = make_node(req, parent, name, mode, rdev, NULL, &r, &sino, &a);
    if (rc) { fuse_reply_err(req, -rc); return; }
    reply_attr_entry(req, &r, sino, &a);
    ref_put(&r);
}

static void fs_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
    FS_COUNTED(FS_OP_MKDIR);
    uint64_t sino; fs_attr a; fs_ref r;
    int rc = make_node(req, parent, name, S_IFDIR | (mode & 07777), 0, NULL, &r, &sino, &a);
    if (rc) { fuse_reply_err(req, -rc); return; }
    reply_attr_entry(req, &r, sino, &a);
    ref_put(&r);
}

static void fs_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
    FS_COUNTED(FS_OP_SYMLINK);
    uint64_t sino; fs_attr a; fs_ref r;
    int rc = make_node(req, parent, name, S_IFLNK | 0777, 0, link, &r, &sino, &a);
    if (rc) { fuse_reply_err(req, -rc); return; }
    reply_attr_entry(req, &r, sino, &a);
    ref_put(&r);
}

static void fs_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, struct fuse_file_info *fi)
{
    FS_COUNTED(FS_OP_CREATE);
    uint64_t sino; fs_attr a; fs_ref r;
    int rc = make_node(req, parent, name, S_IFREG | (mode & 07777), 0, NULL, &r, &sino, &a);
    if (rc) { fuse_reply_err(req, -rc); return; }
    struct fuse_entry_param e;
    memset(&e, 0, sizeof e);
    fs_mount *m = mount_of(req);  /* REQ is gone once replied to */
    e.ino = to_fuse(m, r.v, sino);
    handles_add(m, e.ino, 1);     /* while the view is held: an idle close sees it */
    ref_put(&r);
    fs_file *f = malloc(sizeof *f);
    if (f) {
        f->flags = fi->flags;
        fi->fh = (uint64_t)(uintptr_t)f;
        fi->keep_cache = 1;
        attr_to_stat(&a, e.ino, &e.attr);
        e.attr_timeout = e.entry_timeout = TIMEOUT;
    }
    if (!f || fuse_reply_create(req, &e, fi)) {
        if (!f) fuse_reply_err(req, ENOMEM);
        free(f);
        handles_add(m, e.ino, -1);
    }
}

/* Is directory SDIR empty? 1 yes, 0 no, -errno. */
static int scan_stop(void *arg, const uint8_t *key, size_t klen, const void *val, size_t vlen)
{
    (void)arg; (void)key; (void)klen; (void)val; (void)vlen;
    return 1;
}

static int dir_is_empty(store *st, uint64_t sdir)
{
    skey k;
    key_dirent(&k, sdir, "", 0);
    int rc = store_scan(st, k.b, k.len, scan_stop, NULL);
    return rc < 0 ? rc : rc == 0;
}

/* Remove entry NAME of PARENT; DIR selects rmdir semantics. */
static int remove_entry(fuse_req_t req, fuse_ino_t parent, const char *name, int dir)
{
    fs_ref r;
    int rc = ref_get(mount_of(req), parent, &r);
    if (!rc && !r.v) rc = -EPERM;
    if (rc) return rc;
    store *st = r.st;
    uint64_t sdir = r.sino, child;
    pthread_mutex_lock(&ns_mu);
    rc = dirent_load(st, sdir, name, &child, NULL);
    unsigned held[4]; int nheld = 0;
    fs_attr a, pa;
    if (!rc) {
        lock_inos(sdir, child, 0, 0, held, &nheld);
        rc = attr_load(st, child, &a);
        if (!rc) rc = attr_load(st, sdir, &pa);
    }
    if (!rc) {
        if (dir && !S_ISDIR(a.mode)) rc = -ENOTDIR;
        else if (!dir && S_ISDIR(a.mode)) rc = -EISDIR;
        else if (dir && (rc = dir_is_empty(st, child)) >= 0) rc = rc ? 0 : -ENOTEMPTY;
    }
    if (!rc) {
        store_batch b;
        store_batch_init(&b);
        int64_t now = now_ns();
        dirent_del(&b, sdir, name);
        a.nlink = dir ? 0 : a.nlink - 1;
        a.ctime = now;
        attr_put(&b, child, &a);
        if (dir) pa.nlink--;
        pa.mtime = pa.ctime = now;
        attr_put(&b, sdir, &pa);
        rc = store_commit(st, &b);
        store_batch_free(&b);
        if (!rc) pg_wal_forget(r.v->wal, child);
    }
    if (nheld) unlock_inos(held, nheld);
    pthread_mutex_unlock(&ns_mu);
    ref_put(&r);
    return rc;
}

static void fs_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    FS_COUNTED(FS_OP_UNLINK);
    fuse_reply_err(req, -remove_entry(req, parent, name, 0));
}

static void fs_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    FS_COUNTED(FS_OP_RMDIR);
    fuse_reply_err(req, -remove_entry(req, parent, name, 1));
}

static void fs_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
    FS_COUNTED(FS_OP_LINK);
    fs_ref r;
    uint64_t sdir;
    int rc = ref_get_pair(mount_of(req), ino, newparent, &r, &sdir);
    if (rc) { fuse_reply_err(req, -rc); return; }
    store *st = r.st;
    uint64_t sino = r.sino;
    pthread_mutex_lock(&ns_mu);
    rc = check_new_entry(st, sdir, newname);
    unsigned held[4]; int nheld = 0;
    fs_attr a;
    if (!rc) {
        lock_inos(sino, sdir, 0, 0, held, &nheld);
        rc = attr_load(st, sino, &a);
        if (!rc && S_ISDIR(a.mode)) rc = -EPERM;
    }
    if (!rc) {
        store_batch b;
        store_batch_init(&b);
        a.nlink++;
        a.ctime = now_ns();
        attr_put(&b, sino, &a);
        dirent_put(&b, sdir, newname, sino, a.mode);
        rc = store_commit(st, &b);
        store_batch_free(&b);
    }
    if (nheld) unlock_inos(held, nheld);
    pthread_mutex_unlock(&ns_mu);
    if (rc) fuse_reply_err(req, -rc);
    else reply_attr_entry(req, &r, sino, &a);
    ref_put(&r);
}

static void fs_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
                      const char *newname, unsigned int flags)
{
    FS_COUNTED(FS_OP_RENAME);
    fs_ref r;
    uint64_t np;
    int rc = ref_get_pair(mount_of(req), parent, newparent, &r, &np);
    if (rc) { fuse_reply_err(req, -rc); return; }
    store *st = r.st;
    uint64_t sp = r.sino;
    if (flags & ~(unsigned)(RENAME_NOREPLACE | RENAME_EXCHANGE)) rc = -EINVAL;
    else if (strlen(newname) > 255) rc = -ENAMETOOLONG;
    if (rc) { ref_put(&r); fuse_reply_err(req, -rc); return; }
    pthread_mutex_lock(&ns_mu);
    uint64_t src, dst = 0;
    rc = dirent_load(st, sp, name, &src, NULL);
    if (!rc) {
        rc = dirent_load(st, np, newname, &dst, NULL);
        if (rc == -ENOENT) { dst = 0; rc = (flags & RENAME_EXCHANGE) ? -ENOENT : 0; }
        else if (!rc && (flags & RENAME_NOREPLACE)) rc = -EEXIST;
    }
    if (!rc && dst == src) {      /* two links to one inode: nothing to do */
        pthread_mutex_unlock(&ns_mu);
        ref_put(&r);
        fuse_reply_err(req, 0);
        return;
    }
    unsigned held[4]; int nheld = 0;
    fs_attr sa, da, spa, npa;
    if (!rc) {
        lock_inos(sp, np, src, dst, held, &nheld);
        rc = attr_load(st, src, &sa);
        if (!rc && dst) rc = attr_load(st, dst, &da);
        if (!rc) rc = attr_load(st, sp, &spa);
        if (!rc) rc = attr_load(st, np, &npa);
    }
    if (!rc && dst && !(flags & RENAME_EXCHANGE)) {
        if (S_ISDIR(sa.mode) && !S_ISDIR(da.mode)) rc = -ENOTDIR;
        else if (!S_ISDIR(sa.mode) && S_ISDIR(da.mode)) rc = -EISDIR;
        else if (S_ISDIR(da.mode) && (rc = dir_is_empty(st, dst)) >= 0) rc = rc ? 0 : -ENOTEMPTY;
    }
    if (!rc) {
        store_batch b;
        store_batch_init(&b);
        int64_t now = now_ns();
        int dsp = 0, dnp = 0;     /* link count changes of the two parents */
        if (flags & RENAME_EXCHANGE) {
            dirent_put(&b, sp, name, dst, da.mode);
            dirent_put(&b, np, newname, src, sa.mode);
            if (S_ISDIR(sa.mode) != S_ISDIR(da.mode)) {
                int d = S_ISDIR(sa.mode) ? 1 : -1;   /* a directory moves from sp to np */
                dsp -= d; dnp += d;
            }
            da.ctime = now;
            attr_put(&b, dst, &da);
        } else {
            dirent_del(&b, sp, name);
            dirent_put(&b, np, newname, src, sa.mode);
            if (dst) {
                da.nlink = S_ISDIR(da.mode) ? 0 : da.nlink - 1;
                da.ctime = now;
                attr_put(&b, dst, &da);
                if (S_ISDIR(da.mode)) dnp--;
            }
            if (S_ISDIR(sa.mode)) { dsp--; dnp++; }
        }
        sa.ctime = now;
        attr_put(&b, src, &sa);
        npa.mtime = npa.ctime = now;
        if (sp == np) {
            npa.nlink = (uint32_t)((int64_t)npa.nlink + dsp + dnp);
        } else {
            spa.nlink = (uint32_t)((int64_t)spa.nlink + dsp);
            npa.nlink = (uint32_t)((int64_t)npa.nlink + dnp);
            spa.mtime = spa.ctime = now;
            attr_put(&b, sp, &spa);
        }
        attr_put(&b, np, &npa);
        if (S_ISREG(sa.mode) && !(flags & RENAME_EXCHANGE)) rc = pg_wal_renamed(r.v->wal, &b, np, newname, src, sa.size);
        if (!rc) rc = store_commit(st, &b);
        store_batch_free(&b);
        if (!rc) { pg_wal_forget(r.v->wal, src); pg_wal_forget(r.v->wal, dst); }
    }
    if (nheld) unlock_inos(held, nheld);
    pthread_mutex_unlock(&ns_mu);
    ref_put(&r);
    fuse_reply_err(req, -rc);
}

/* ---- file data ---- */

/* O_TRUNC at open (the kernel hands it to us: atomic_o_trunc). */
static int truncate_to_zero(store *st, uint64_t sino)
{
    inode_txn t;
    int rc = itxn_begin(st, sino, &t);
    if (!rc) rc = resize(st, &t.b, sino, &t.a, 0);
    if (!rc) t.a.mtime = t.a.ctime = now_ns();
    return itxn_end(st, &t, rc);
}

static void fs_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    FS_COUNTED(FS_OP_OPEN);
    fs_ref r;
    fs_attr a;
    int rc = ref_get(mount_of(req), ino, &r);
    int arch = !rc && (r.sino & ARCH_BIT);
    if (arch) {                   /* read-only, and never cached: it grows */
        pg_archive_file af;
        rc = r.sino == ARCH_BIT ? -EISDIR : (fi->flags & O_ACCMODE) != O_RDONLY ? -EROFS : arch_file(r.arch, r.sino, &af);
    } else if (!rc) {
        rc = r.v ? attr_load(r.st, r.sino, &a) : -EISDIR;
        if (!rc && S_ISDIR(a.mode)) rc = -EISDIR;
        if (!rc && (fi->flags & O_TRUNC) && (fi->flags & O_ACCMODE) != O_RDONLY)
            rc = truncate_to_zero(r.st, r.sino);
        else if (!rc) store_hot_file(r.st, r.sino, a.size);
    }
    fs_mount *m = mount_of(req);  /* REQ is gone once replied to */
    if (!rc) handles_add(m, ino, 1);   /* while the view is held: an idle close sees it */
    ref_put(&r);
    if (rc) { fuse_reply_err(req, -rc); return; }
    fs_file *f = malloc(sizeof *f);
    if (f) {
        f->flags = fi->flags;
        fi->fh = (uint64_t)(uintptr_t)f;
        fi->keep_cache = !arch;
        fi->direct_io = arch;
    }
    if (!f || fuse_reply_open(req, fi)) {
        if (!f) fuse_reply_err(req, ENOMEM);
        free(f);
        handles_add(m, ino, -1);
    }
}

static void fs_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    FS_COUNTED(FS_OP_RELEASE);
    handles_add(mount_of(req), ino, -1);
    free((fs_file *)(uintptr_t)fi->fh);
    fuse_reply_err(req, 0);
}

static void fs_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    FS_COUNTED(FS_OP_FLUSH);
    (void)ino; (void)fi;
    fuse_reply_err(req, 0);
}

static void fs_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
    FS_COUNTED(FS_OP_READ);
    (void)fi;
    fs_ref r;
    fs_attr a;
    int rc = ref_get(mount_of(req), ino, &r);
    if (!rc && (r.sino & ARCH_BIT)) {
        pg_archive_file f;
        uint8_t *out = malloc(size ? size : 1);
        long n = !out ? -ENOMEM : r.sino == ARCH_BIT ? -EISDIR : arch_file(r.arch, r.sino, &f);
        if (!n) n = pg_archive_read(r.arch, &f, (uint64_t)off, out, size);
        ref_put(&r);
        if (n < 0) fuse_reply_err(req, (int)-n);
        else fuse_reply_buf(req, (const char *)out, (size_t)n);
        free(out);
        return;
    }
    if (!rc) rc = r.v ? attr_load(r.st, r.sino, &a) : -EISDIR;
    if (!rc && (uint64_t)off >= a.size) { ref_put(&r); fuse_reply_buf(req, NULL, 0); return; }
    size_t n = rc ? 0 : a.size - (uint64_t)off < size ? (size_t)(a.size - (uint64_t)off) : size;
    uint8_t *out = rc ? NULL : malloc(n), page[PAGE];
    if (!rc && !out) rc = -ENOMEM;
    if (rc) { ref_put(&r); fuse_reply_err(req, -rc); return; }
    store *st = r.st;
    uint64_t sino = r.sino;
    for (size_t done = 0; done < n && !rc;) {
        uint64_t pos = (uint64_t)off + done, pg = pos / PAGE, in = pos % PAGE;
        size_t take = PAGE - in < n - done ? PAGE - in : n - done;
        if (in == 0 && take == PAGE) rc = page_load(st, sino, pg, out + done);
        else if (!(rc = page_load(st, sino, pg, page))) memcpy(out + done, page + in, take);
        done += take;
    }
    ref_put(&r);
    if (rc) fuse_reply_err(req, -rc);
    else fuse_reply_buf(req, (const char *)out, n);
    free(out);
}

static void fs_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
                     struct fuse_file_info *fi)
{
    FS_COUNTED(FS_OP_WRITE);
    fs_ref r;
    int rc = ref_get(mount_of(req), ino, &r);
    if (!rc && !r.v) rc = -EISDIR;
    if (rc) { fuse_reply_err(req, -rc); return; }
    store *st = r.st;
    uint64_t sino = r.sino;
    inode_txn t;
    /* the pages as they will be, for the store and the WAL observer */
    uint64_t first = (uint64_t)off / PAGE, npages = ((uint64_t)off % PAGE + size + PAGE - 1) / PAGE;
    uint8_t *pages = malloc(npages ? npages * PAGE : 1);
    rc = pages ? itxn_begin(st, sino, &t) : -ENOMEM;
    for (size_t done = 0; done < size && !rc;) {
        uint64_t pos = (uint64_t)off + done, pg = pos / PAGE, in = pos % PAGE;
        size_t take = PAGE - in < size - done ? PAGE - in : size - done;
        uint8_t *page = pages + (pg - first) * PAGE;
        if (take < PAGE && pg * PAGE < t.a.size) rc = page_load(st, sino, pg, page);
        else if (take < PAGE) memset(page, 0, PAGE);
        if (!rc) {
            memcpy(page + in, buf + done, take);
            page_put(&t.b, sino, pg, page);
        }
        done += take;
    }
    if (!rc) {
        if ((uint64_t)off + size > t.a.size) t.a.size = (uint64_t)off + size;
        t.a.mtime = t.a.ctime = now_ns();
    }
    int wal = rc ? 0 : pg_wal_write(r.v->wal, &t.b, sino, t.a.size, (uint64_t)off, size, first, pages);
    if (pages) rc = itxn_end(st, &t, wal < 0 ? wal : rc);
    if (wal > 0) pg_wal_written(r.v->wal, rc);
    /* a checkpoint completed: that state is a base for time travel (pg_wal.h) */
    if (!rc && pg_wal_checkpointed(r.v->wal, sino, (uint64_t)off, size, pages) > 0) store_flush_soon(st);
    free(pages);
    fs_file *f = (fs_file *)(uintptr_t)fi->fh;
    if (!rc && f && (f->flags & (O_SYNC | O_DSYNC))) rc = store_sync(st);
    ref_put(&r);
    if (rc) fuse_reply_err(req, -rc == ENOENT ? EIO : -rc);
    else fuse_reply_write(req, size);
}

/* Make everything of INO's branch written so far durable, and reply. */
static void sync_reply(fuse_req_t req, fuse_ino_t ino)
{
    fs_ref r;
    int rc = ref_get(mount_of(req), ino, &r);
    if (!rc && r.v) {
        rc = store_sync(r.st) ? -EIO : 0;
        ref_put(&r);
    }
    fuse_reply_err(req, -rc);
}

static void fs_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
    FS_COUNTED(FS_OP_FSYNC);
    (void)datasync; (void)fi;
    sync_reply(req, ino);
}

static void fs_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off, off_t len,
                         struct fuse_file_info *fi)
{
    FS_COUNTED(FS_OP_FALLOCATE);
    (void)fi;
    if (mode & ~(FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE)) {
        fuse_reply_err(req, EOPNOTSUPP);
        return;
    }
    if ((mode & FALLOC_FL_PUNCH_HOLE) && !(mode & FALLOC_FL_KEEP_SIZE)) { fuse_reply_err(req, EOPNOTSUPP); return; }
    fs_ref r;
    int rc = ref_get(mount_of(req), ino, &r);
    if (!rc && !r.v) rc = -EISDIR;
    if (rc) { fuse_reply_err(req, -rc); return; }
    store *st = r.st;
    uint64_t sino = r.sino;
    inode_txn t;
    uint64_t end = (uint64_t)off + (uint64_t)len;
    rc = itxn_begin(st, sino, &t);
    if (!rc && !S_ISREG(t.a.mode)) rc = -ENODEV;
    if (!rc && (mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE)))
        rc = zero_range(st, &t.b, sino, t.a.size, (uint64_t)off, end);
    if (!rc) {
        if (!(mode & FALLOC_FL_KEEP_SIZE) && end > t.a.size) t.a.size = end;
        t.a.ctime = now_ns();
    }
    rc = itxn_end(st, &t, rc);
    ref_put(&r);
    fuse_reply_err(req, -rc);
}

/* ---- directories ---- */

/* Append an entry to an open directory listing. */
static int dir_add(fs_dir *d, const char *name, size_t nlen, fuse_ino_t ino, uint32_t type)
{
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 16;
        fs_dirent *ne = realloc(d->ents, cap * sizeof *ne);
        if (!ne) return -ENOMEM;
        d->ents = ne; d->cap = cap;
    }
    char *s = strndup(name, nlen);
    if (!s) return -ENOMEM;
    d->ents[d->n++] = (fs_dirent){ s, ino, type };
    return 0;
}

static void dir_free(fs_dir *d)
{
    for (size_t i = 0; i < d->n; i++) free(d->ents[i].name);
    free(d->ents);
    free(d);
}

typedef struct list_ctx {
    fs_dir *d;
    const fs_mount *m;
    const fs_view *v;
} list_ctx;

/* store_scan callback: one directory entry into the listing. */
static int list_entry(void *arg, const uint8_t *key, size_t klen, const void *val, size_t vlen)
{
    list_ctx *l = arg;
    uint64_t child;
    uint32_t type;
    if (klen <= 9 || fs_dirent_decode(val, vlen, &child, &type)) return -EIO;
    return dir_add(l->d, (const char *)key + 9, klen - 9, to_fuse(l->m, l->v, child), type);
}

/* pg_archive_list callback: one file of the WAL archive into the listing. */
static int arch_list_entry(void *arg, const char *name, const pg_archive_file *f)
{
    list_ctx *l = arg;
    uint64_t sino = arch_sino(f);
    return sino ? dir_add(l->d, name, strlen(name), to_fuse(l->m, l->v, sino), S_IFREG) : 0;
}

/* Inode number shown in a listing of branches/ for NAME: its view's root,
 * or (not served yet) a number from an id range views never use. */
static fuse_ino_t listed_branch_ino(fs_mount *m, const char *name)
{
    pthread_mutex_lock(&m->mu);
    fs_view *v = view_find(m, name);
    fuse_ino_t ino = v ? to_fuse(m, v, FS_ROOT_INO) : 0;
    pthread_mutex_unlock(&m->mu);
    if (ino) return ino;
    uint64_t h = 1469598103934665603ull;
    for (const char *p = name; *p; p++) h = (h ^ (uint8_t)*p) * 1099511628211ull;
    return (fuse_ino_t)(MAX_VIEWS + h % ((1u << 16) - MAX_VIEWS)) << VIEW_SHIFT | FS_ROOT_INO;
}

/* List the synthetic directory INO into D. */
static int list_synthetic(fs_mount *m, fuse_ino_t ino, fs_dir *d)
{
    if (ino == FUSE_ROOT_ID) return dir_add(d, "branches", 8, SYN_BRANCHES, S_IFDIR);
    char **names;
    size_t n;
    int rc = m->cfg.ops.list(m->cfg.ops.arg, &names, &n);
    if (rc) return rc;
    for (size_t i = 0; i < n; i++) {
        if (!rc) rc = dir_add(d, names[i], strlen(names[i]), listed_branch_ino(m, names[i]), S_IFDIR);
        free(names[i]);
    }
    free(names);
    return rc;
}

static void fs_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    FS_COUNTED(FS_OP_OPENDIR);
    fs_mount *m = mount_of(req);
    fs_ref r;
    int rc = ref_get(m, ino, &r);
    if (rc) { fuse_reply_err(req, -rc); return; }
    fs_dir *d = calloc(1, sizeof *d);
    if (!d) { ref_put(&r); fuse_reply_err(req, ENOMEM); return; }
    rc = dir_add(d, ".", 1, ino, S_IFDIR);
    if (!rc) rc = dir_add(d, "..", 2, ino == SYN_BRANCHES ? FUSE_ROOT_ID : ino, S_IFDIR);
    if (rc) {
    } else if (!r.v) {
        rc = list_synthetic(m, ino, d);
    } else if (r.sino == ARCH_BIT) {
        list_ctx l = { d, m, r.v };
        rc = pg_archive_list(r.arch, arch_list_entry, &l);
    } else {
        fs_attr a;
        rc = attr_load(r.st, r.sino, &a);
        if (!rc && !S_ISDIR(a.mode)) rc = -ENOTDIR;
        if (!rc) {
            skey k;
            key_dirent(&k, r.sino, "", 0);
            list_ctx l = { d, m, r.v };
            rc = store_scan(r.st, k.b, k.len, list_entry, &l);
        }
    }
    if (!rc) handles_add(m, ino, 1);   /* while the view is held: an idle close sees it */
    ref_put(&r);
    if (rc) { dir_free(d); fuse_reply_err(req, -rc); return; }
    fi->fh = (uint64_t)(uintptr_t)d;
    fi->cache_readdir = 0;
    if (fuse_reply_open(req, fi)) {
        dir_free(d);
        handles_add(m, ino, -1);
    }
}

static void fs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
    FS_COUNTED(FS_OP_READDIR);
    (void)ino;
    fs_dir *d = (fs_dir *)(uintptr_t)fi->fh;
    char *buf = malloc(size);
    if (!buf) { fuse_reply_err(req, ENOMEM); return; }
    size_t used = 0;
    for (size_t i = (size_t)off; i < d->n; i++) {
        struct stat st;
        memset(&st, 0, sizeof st);
        st.st_ino = d->ents[i].ino;
        st.st_mode = d->ents[i].type;
        size_t need = fuse_add_direntry(req, buf + used, size - used, d->ents[i].name, &st, (off_t)(i + 1));
        if (need > size - used) break;
        used += need;
    }
    fuse_reply_buf(req, buf, used);
    free(buf);
}

static void fs_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    FS_COUNTED(FS_OP_RELEASEDIR);
    handles_add(mount_of(req), ino, -1);
    dir_free((fs_dir *)(uintptr_t)fi->fh);
    fuse_reply_err(req, 0);
}

static void fs_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
    FS_COUNTED(FS_OP_FSYNCDIR);
    (void)datasync; (void)fi;
    sync_reply(req, ino);
}

static void fs_statfs(fuse_req_t req, fuse_ino_t ino)
{
    FS_COUNTED(FS_OP_STATFS);
    (void)ino;
    struct statvfs sv, out;
    if (statvfs(mount_of(req)->cfg.statfs_path, &sv) < 0) { fuse_reply_err(req, errno); return; }
    memset(&out, 0, sizeof out);
    out.f_bsize = out.f_frsize = 4096;
    double scale = (double)sv.f_frsize / 4096.0;
    out.f_blocks = (fsblkcnt_t)((double)sv.f_blocks * scale);
    out.f_bfree = (fsblkcnt_t)((double)sv.f_bfree * scale);
    out.f_bavail = (fsblkcnt_t)((double)sv.f_bavail * scale);
    out.f_files = sv.f_files; out.f_ffree = sv.f_ffree; out.f_favail = sv.f_favail;
    out.f_namemax = 255;
    fuse_reply_statfs(req, &out);
}

static void fs_init(void *userdata, struct fuse_conn_info *conn)
{
    (void)userdata;
    pthread_once(&stripes_once, stripes_init);
    conn->max_write = 1u << 20;
    conn->max_readahead = 1u << 20;
    conn->max_background = 64;
    conn->congestion_threshold = 48;
    if (conn->capable & FUSE_CAP_PARALLEL_DIROPS) conn->want |= FUSE_CAP_PARALLEL_DIROPS;
    conn->want &= ~(unsigned)FUSE_CAP_WRITEBACK_CACHE;
    /* Every change passes through the kernel, so its page cache is always
     * right: do not drop a file's cached pages whenever its mtime moves. */
    conn->want &= ~(unsigned)FUSE_CAP_AUTO_INVAL_DATA;
}

static const struct fuse_lowlevel_ops ops = {
    .init = fs_init,
    .lookup = fs_lookup,
    .getattr = fs_getattr,
    .setattr = fs_setattr,
    .readlink = fs_readlink,
    .mknod = fs_mknod,
    .mkdir = fs_mkdir,
    .unlink = fs_unlink,
    .rmdir = fs_rmdir,
    .symlink = fs_symlink,
    .rename = fs_rename,
    .link = fs_link,
    .open = fs_open,
    .read = fs_read,
    .write = fs_write,
    .flush = fs_flush,
    .release = fs_release,
    .fsync = fs_fsync,
    .opendir = fs_opendir,
    .readdir = fs_readdir,
    .releasedir = fs_releasedir,
    .fsyncdir = fs_fsyncdir,
    .statfs = fs_statfs,
    .create = fs_create,
    .fallocate = fs_fallocate,
};

const struct fuse_lowlevel_ops *fs_ops(void)
{
    pthread_once(&stripes_once, stripes_init);
    return &ops;
}

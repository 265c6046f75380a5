/*
 * fs_inode.c -- the FUSE front end's inodes (fs_impl.h): FUSE inode
 * numbers to (view, store inode) and back, the stripe locks of inode
 * read-modify-writes, the encoding of attributes and directory entries in
 * the store, pages, and the files of the WAL archive every view shows in
 * .lakefs-wal.  What fs.c's handlers and fs_view.c build on.
 *
 * A file's page is the key (inode, page number), but for a WAL segment
 * file mapped onto the archive (fs_attr.wal_tli, set by the WAL observer,
 * pg_wal.h): its pages are the archive's pages of its segment, so the WAL
 * is stored once.  Its attributes are then encoded as version 2, the
 * mapping (timeline, first archive page) after the fixed part.  A
 * time-travel view's copy of an archive segment (fs_attr.wal_copy,
 * fs_archcopy.c) is mapped the same way onto the view's archive, which
 * lives in another store: version 3.
 */
#include "fs_impl.h"

/* ---- small helpers ---- */

static pthread_mutex_t stripes[NSTRIPES];
static pthread_once_t stripes_once = PTHREAD_ONCE_INIT;
static struct timespec mount_time;

fs_mount *fs_mount_of(fuse_req_t req) { return fuse_req_userdata(req); }

int64_t fs_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* A cheap monotonic clock, for how long a view has been idle. */
int64_t fs_mono_ns(void)
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

void fs_inode_init(void)
{
    pthread_once(&stripes_once, stripes_init);
}

static unsigned stripe_of(uint64_t ino) { return (unsigned)((ino * 0x9e3779b97f4a7c15ull) >> 56); }

/* Lock the stripes of up to 4 inodes (0 = none), ascending, without repeats. */
void fs_lock_inos(uint64_t a, uint64_t b, uint64_t c, uint64_t d, unsigned *held, int *nheld)
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

void fs_unlock_inos(const unsigned *held, int nheld)
{
    for (int i = nheld - 1; i >= 0; i--) pthread_mutex_unlock(&stripes[held[i]]);
}


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
int fs_ref_get(fs_mount *m, fuse_ino_t ino, fs_ref *r)
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
        __atomic_store_n(&v->used_ns, fs_mono_ns(), __ATOMIC_RELAXED);
    return 0;
}

/* A file or directory of INO's view was opened (DELTA 1) or released
 * (-1): counted, so that a view nothing has open can be closed. */
void fs_handles_add(fs_mount *m, fuse_ino_t ino, int64_t delta)
{
    uint64_t sino, id = ino_split(m, ino, &sino);
    fs_view *v = id && id < MAX_VIEWS ? __atomic_load_n(&m->views[id], __ATOMIC_ACQUIRE) : NULL;
    if (v) __atomic_add_fetch(&v->handles, (uint64_t)delta, __ATOMIC_RELAXED);
}

void fs_ref_put(fs_ref *r)
{
    if (r->v) pthread_rwlock_unlock(&r->v->lock);
    r->v = NULL;
}

/* For a request naming two inodes: R holds INO's view (as fs_ref_get) and
 * *OTHER_SINO gets OTHER's store inode, which must lie in the same view
 * (its lock is not taken twice).  0, or -errno with nothing held: -EPERM
 * for a synthetic INO, -EXDEV for OTHER in another view or synthetic. */
int fs_ref_get_pair(fs_mount *m, fuse_ino_t ino, fuse_ino_t other, fs_ref *r, uint64_t *other_sino)
{
    int rc = fs_ref_get(m, ino, r);
    if (rc) return rc;
    uint64_t id = ino_split(m, other, other_sino);
    if (!r->v) rc = -EPERM;
    else if (id != r->v->id || !*other_sino) rc = -EXDEV;
    if (rc) fs_ref_put(r);
    return rc;
}

/* FUSE inode of store inode SINO of view V. */
fuse_ino_t fs_to_fuse(const fs_mount *m, const fs_view *v, uint64_t sino)
{
    if (m->cfg.branch && sino == FS_ROOT_INO) return FUSE_ROOT_ID;
    return ((uint64_t)v->id << VIEW_SHIFT) | sino;
}

/* ---- attribute and dirent encoding (little-endian, fs_format.h) ---- */

/* Encode A into BUF (at least ATTR_FIXED + PATH_MAX + ATTR_WAL_LEN bytes); returns length. */
static size_t attr_encode(const fs_attr *a, uint8_t *buf)
{
    buf[0] = !a->wal_tli ? ATTR_VERSION : a->wal_copy ? ATTR_VERSION_WAL_COPY : ATTR_VERSION_WAL;
    fs_put_le(buf + 1, a->mode, 4); fs_put_le(buf + 5, a->uid, 4); fs_put_le(buf + 9, a->gid, 4);
    fs_put_le(buf + 13, a->nlink, 4); fs_put_le(buf + 17, a->rdev, 4); fs_put_le(buf + 21, a->size, 8);
    fs_put_le(buf + 29, (uint64_t)a->atime, 8); fs_put_le(buf + 37, (uint64_t)a->mtime, 8);
    fs_put_le(buf + 45, (uint64_t)a->ctime, 8); fs_put_le(buf + 53, 0, 8);
    size_t len = ATTR_FIXED;
    if (S_ISLNK(a->mode)) { memcpy(buf + len, a->target, a->size); len += a->size; }
    if (a->wal_tli) {
        fs_put_le(buf + len, a->wal_tli, 4); fs_put_le(buf + len + 4, a->wal_first, 8);
        len += ATTR_WAL_LEN;
    }
    return len;
}

/* Decode LEN bytes into A; -EIO if malformed. */
static int attr_decode(const uint8_t *buf, size_t len, fs_attr *a)
{
    if (len < ATTR_FIXED || buf[0] < ATTR_VERSION || buf[0] > ATTR_VERSION_WAL_COPY) return -EIO;
    a->mode = (uint32_t)fs_get_le(buf + 1, 4); a->uid = (uint32_t)fs_get_le(buf + 5, 4);
    a->gid = (uint32_t)fs_get_le(buf + 9, 4); a->nlink = (uint32_t)fs_get_le(buf + 13, 4);
    a->rdev = (uint32_t)fs_get_le(buf + 17, 4); a->size = fs_get_le(buf + 21, 8);
    a->atime = (int64_t)fs_get_le(buf + 29, 8); a->mtime = (int64_t)fs_get_le(buf + 37, 8);
    a->ctime = (int64_t)fs_get_le(buf + 45, 8);
    a->wal_tli = 0;
    a->wal_first = 0;
    a->wal_copy = buf[0] == ATTR_VERSION_WAL_COPY;
    if (buf[0] != ATTR_VERSION) {       /* a regular file: the mapping is all that follows */
        if (!S_ISREG(a->mode) || len != ATTR_FIXED + ATTR_WAL_LEN) return -EIO;
        a->wal_tli = (uint32_t)fs_get_le(buf + ATTR_FIXED, 4);
        a->wal_first = fs_get_le(buf + ATTR_FIXED + 4, 8);
        return a->wal_tli ? 0 : -EIO;
    }
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
    a.atime = a.mtime = a.ctime = fs_now_ns();
    uint8_t tmp[ATTR_FIXED + PATH_MAX + ATTR_WAL_LEN];
    size_t len = attr_encode(&a, tmp);
    if (len > cap) return 0;
    memcpy(buf, tmp, len);
    return len;
}

/* Load the attributes of store inode SINO. */
int fs_attr_load(store *st, uint64_t sino, fs_attr *a)
{
    if (sino & ARCH_BIT) return -EROFS;   /* the archive's files are read-only and have no attributes stored */
    uint8_t buf[ATTR_FIXED + PATH_MAX + ATTR_WAL_LEN];
    size_t len;
    skey k;
    key_inode(&k, sino);
    int rc = store_get(st, &k, buf, sizeof buf, &len);
    if (rc) return rc;
    if (len > sizeof buf) return -EIO;
    return attr_decode(buf, len, a);
}

/* Add "store attributes of SINO = A" to batch B. */
void fs_attr_put(store_batch *b, uint64_t sino, const fs_attr *a)
{
    uint8_t buf[ATTR_FIXED + PATH_MAX + ATTR_WAL_LEN];
    skey k;
    key_inode(&k, sino);
    store_batch_put(b, &k, buf, attr_encode(a, buf));
}

/* Child of entry NAME in directory DIR: -ENOENT if none. */
int fs_dirent_load(store *st, uint64_t dir, const char *name, uint64_t *child, uint32_t *type)
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

void fs_dirent_put(store_batch *b, uint64_t dir, const char *name, uint64_t child, uint32_t mode)
{
    uint8_t v[FS_DIRENT_LEN];
    skey k;
    fs_dirent_encode(v, child, mode);
    key_dirent(&k, dir, name, strlen(name));
    store_batch_put(b, &k, v, sizeof v);
}

void fs_dirent_del(store_batch *b, uint64_t dir, const char *name)
{
    skey k;
    key_dirent(&k, dir, name, strlen(name));
    store_batch_del(b, &k);
}

static void ts_of(int64_t ns, struct timespec *ts) { ts->tv_sec = ns / 1000000000; ts->tv_nsec = ns % 1000000000; }

/* Fill ST from A for FUSE inode INO. */
void fs_attr_to_stat(const fs_attr *a, fuse_ino_t ino, struct stat *st)
{
    memset(st, 0, sizeof *st);
    st->st_ino = ino;
    st->st_mode = a->mode; st->st_nlink = a->nlink; st->st_uid = a->uid; st->st_gid = a->gid;
    st->st_rdev = a->rdev; st->st_size = (off_t)a->size; st->st_blksize = PAGE;
    st->st_blocks = (blkcnt_t)((a->size + 511) / 512);
    ts_of(a->atime, &st->st_atim); ts_of(a->mtime, &st->st_mtim); ts_of(a->ctime, &st->st_ctim);
}

/* Attributes of a synthetic directory (repository root, branches/). */
void fs_synthetic_stat(fuse_ino_t ino, struct stat *st)
{
    memset(st, 0, sizeof *st);
    st->st_ino = ino; st->st_mode = S_IFDIR | 0755; st->st_nlink = 2; st->st_blksize = PAGE;
    st->st_atim = st->st_mtim = st->st_ctim = mount_time;
}

void fs_reply_entry(fuse_req_t req, fuse_ino_t ino, const struct stat *st)
{
    struct fuse_entry_param e;
    memset(&e, 0, sizeof e);
    e.ino = ino; e.attr = *st; e.attr_timeout = TIMEOUT; e.entry_timeout = TIMEOUT;
    fuse_reply_entry(req, &e);
}

void fs_reply_attr_entry(fuse_req_t req, const fs_ref *r, uint64_t sino, const fs_attr *a)
{
    struct stat st;
    fuse_ino_t ino = fs_to_fuse(fs_mount_of(req), r->v, sino);
    fs_attr_to_stat(a, ino, &st);
    fs_reply_entry(req, ino, &st);
}

/* ---- the WAL archive: .lakefs-wal in every view's root ---- */

/* The store inode of archive file F, or 0 if its numbers do not fit one
 * (such a file cannot be served). */
uint64_t fs_arch_sino(const pg_archive_file *f)
{
    if (f->history) return f->tli < (1u << 31) ? ARCH_BIT | f->tli : 0;
    if (f->tli >= (1u << 15) || f->segno >= (1ull << 31)) return 0;
    return ARCH_BIT | ARCH_SEG | (uint64_t)f->tli << 31 | f->segno;
}

/* The archive file of store inode SINO (not the directory) into *F: 0,
 * -ENOENT if the archive does not hold it, or -errno. */
int fs_arch_file(const pg_archive *arch, uint64_t sino, pg_archive_file *f)
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
void fs_arch_stat(fuse_ino_t ino, const pg_archive_file *f, struct stat *st)
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
    fs_arch_stat(ino, f, &e.attr);
    fuse_reply_entry(req, &e);
}

/* Lookup of NAME in view directory R->sino if it is the archive's business:
 * 1 if replied to, 0 if not. */
int fs_arch_lookup(fuse_req_t req, const fs_ref *r, const char *name)
{
    fs_mount *m = fs_mount_of(req);
    if (r->sino == FS_ROOT_INO && !strcmp(name, ARCH_DIR_NAME)) {
        arch_reply_entry(req, fs_to_fuse(m, r->v, ARCH_BIT), NULL);
        return 1;
    }
    if (r->sino != ARCH_BIT) return 0;
    pg_archive_file f;
    int rc = pg_archive_lookup(r->arch, name, &f);
    uint64_t sino = rc ? 0 : fs_arch_sino(&f);
    if (!rc && !sino) rc = -ENOENT;
    if (rc) fuse_reply_err(req, -rc);
    else arch_reply_entry(req, fs_to_fuse(m, r->v, sino), &f);
    return 1;
}

/* Lock SINO and load its attributes into T; returns 0 or -errno (then
 * fs_itxn_end must still be called). */
int fs_itxn_begin(store *st, uint64_t sino, inode_txn *t)
{
    t->sino = sino;
    fs_lock_inos(sino, 0, 0, 0, t->held, &t->nheld);
    store_batch_init(&t->b);
    return fs_attr_load(st, sino, &t->a);
}

/* If RC is 0, commit T's batch with its attributes; unlock; returns the result. */
int fs_itxn_end(store *st, inode_txn *t, int rc)
{
    if (!rc) {
        fs_attr_put(&t->b, t->sino, &t->a);
        rc = store_commit(st, &t->b);
    }
    fs_unlock_inos(t->held, t->nheld);
    store_batch_free(&t->b);
    return rc;
}

/* ---- pages ---- */

static int all_zero(const uint8_t *p, size_t n)
{
    return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0);
}

/* Read page PG of SINO into BUF (zeros if absent); -EIO on failure.  A
 * file mapped onto the WAL archive reads its archive page, and the page
 * under its own key where the archive holds none (a page PostgreSQL has
 * not written since the file got its segment name: zeros, or a recycled
 * segment's old bytes). */
int fs_page_load(store *st, const fs_attr *a, uint64_t sino, uint64_t pg, uint8_t *buf)
{
    skey k;
    size_t len;
    int rc = -ENOENT;
    if (a->wal_copy) return -EIO;  /* its pages are another store's: unmapped before any write */
    if (a->wal_tli) {
        key_walpage(&k, a->wal_tli, a->wal_first + pg);
        rc = store_get(st, &k, buf, PAGE, &len);
    }
    if (rc == -ENOENT) {
        key_page(&k, sino, pg);
        rc = store_get(st, &k, buf, PAGE, &len);
    }
    if (rc == -ENOENT || (!rc && len == 0)) { memset(buf, 0, PAGE); return 0; }
    if (!rc && len != PAGE) rc = -EIO;
    return rc;
}

/* A mapped file's page is its archive page, stored whole: the archive is
 * what time travel replays, and PostgreSQL's WAL pages are never zeros. */
void fs_page_put(store_batch *b, const fs_attr *a, uint64_t sino, uint64_t pg, const uint8_t *data)
{
    skey k;
    if (a->wal_tli) {
        key_walpage(&k, a->wal_tli, a->wal_first + pg);
        store_batch_put(b, &k, data, PAGE);
        return;
    }
    key_page(&k, sino, pg);
    store_batch_put(b, &k, data, all_zero(data, PAGE) ? 0 : PAGE);
}

/* store_scan_range callback over a mapped file's archive pages: each one
 * goes to the batch under the file's own key. */
typedef struct unmap_ctx {
    store_batch *b;
    const fs_attr *plain;         /* the attributes, unmapped */
    uint64_t sino, first;         /* the file; its first archive page */
} unmap_ctx;

static int fs_unmap_page(void *arg, const uint8_t *key, size_t klen, const void *val, size_t vlen)
{
    unmap_ctx *c = arg;
    if (klen != 13 || vlen != PAGE) return -EIO;
    fs_page_put(c->b, c->plain, c->sino, key_get64(key + 5) - c->first, val);
    return c->b->err;
}

/* The archive pages below the size are copied under the file's own keys
 * (up to a segment, 16 MiB by default, in one batch), found in one range
 * scan; a page the archive lacks already reads as the file's own.  It
 * happens when a segment leaves pg_wal/ (PostgreSQL renames the last
 * segment of a timeline to *.partial) or something other than
 * PostgreSQL's WAL writer changes its size, not in PostgreSQL's own use. */
int fs_wal_unmap(store *st, const pg_archive *arch, uint64_t sino, fs_attr *a)
{
    if (!a->wal_tli) return 0;
    fs_attr plain = *a;
    plain.wal_tli = 0;
    plain.wal_first = 0;
    plain.wal_copy = 0;
    store_batch b;
    store_batch_init(&b);
    int rc;
    if (a->wal_copy) {
        rc = fs_archcopy_unmap(arch, a, &b, sino, &plain);
    } else {
        unmap_ctx c = { &b, &plain, sino, a->wal_first };
        skey from, to;
        key_walpage(&from, a->wal_tli, a->wal_first);
        key_walpage(&to, a->wal_tli, a->wal_first + (a->size + PAGE - 1) / PAGE);
        rc = store_scan_range(st, from.b, from.len, to.b, to.len, fs_unmap_page, &c);
    }
    if (!rc) {
        fs_attr_put(&b, sino, &plain);
        rc = store_commit(st, &b);
    }
    store_batch_free(&b);
    if (!rc) *a = plain;
    return rc;
}

/* Zero bytes [from, to) of SINO (attributes A) in batch B: whole pages
 * become tombstones, partial ones are rewritten. */
int fs_zero_range(store *st, store_batch *b, uint64_t sino, const fs_attr *a, uint64_t from, uint64_t to)
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
        if (ps >= a->size) continue;       /* past EOF: already zero */
        int rc = fs_page_load(st, a, sino, pg, page);
        if (rc) return rc;
        uint64_t zs = from > ps ? from : ps, ze = to < pe ? to : pe;
        memset(page + (zs - ps), 0, ze - zs);
        fs_page_put(b, a, sino, pg, page);
    }
    return 0;
}

/* Change the size of SINO from A->size to SIZE in batch B (stripe held). */
int fs_resize(store *st, const pg_archive *arch, store_batch *b, uint64_t sino, fs_attr *a, uint64_t size)
{
    if (size == a->size) return 0;
    if (a->wal_tli && size == 0) {     /* nothing to keep: the pages under its own keys go below */
        a->wal_tli = 0;
        a->wal_first = 0;
        a->wal_copy = 0;
    }
    int rc = fs_wal_unmap(st, arch, sino, a);
    if (rc) return rc;
    if (size < a->size) {
        uint64_t end = (a->size + PAGE - 1) / PAGE * PAGE;
        rc = fs_zero_range(st, b, sino, a, size, end);
        if (rc) return rc;
    }
    a->size = size;
    return 0;
}

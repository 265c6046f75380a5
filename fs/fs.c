/*
 * fs.c -- FUSE low-level operations on top of a branch store: the request
 * handlers.  What they build on is in fs_inode.c (inodes, locks,
 * attributes, entries, pages, the WAL archive's files) and fs_view.c (the
 * branches a mount serves), shared through fs_impl.h.
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
#include "fs_impl.h"
#include "../util/chunkpool.h"
#include "../util/failpoint.h"
#include "fs_count.h"

pthread_mutex_t fs_ns_mu = PTHREAD_MUTEX_INITIALIZER;

/* ---- lookups ---- */

static void fs_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    FS_COUNTED(FS_OP_LOOKUP);
    fs_mount *m = fs_mount_of(req);
    fs_ref r;
    struct stat st;
    int rc = fs_ref_get(m, parent, &r);
    if (rc) { fuse_reply_err(req, -rc); return; }
    if (!r.v) {
        if (parent == FUSE_ROOT_ID && !strcmp(name, "branches")) {
            fs_synthetic_stat(SYN_BRANCHES, &st);
            fs_reply_entry(req, SYN_BRANCHES, &st);
        } else if (parent == SYN_BRANCHES) {
            fs_lookup_branch(req, m, name);
        } else {
            fuse_reply_err(req, ENOENT);
        }
        return;
    }
    if (fs_arch_lookup(req, &r, name)) { fs_ref_put(&r); return; }
    uint64_t child;
    fs_attr a;
    rc = strlen(name) > 255 ? -ENAMETOOLONG : fs_dirent_load(r.st, r.sino, name, &child, NULL);
    if (rc == -ENOENT) {          /* negative entry, cached by the kernel */
        struct fuse_entry_param e;
        memset(&e, 0, sizeof e);
        e.entry_timeout = TIMEOUT;
        fuse_reply_entry(req, &e);
    } else {
        if (!rc) rc = fs_attr_load(r.st, child, &a);
        if (rc) fuse_reply_err(req, -rc == ENOENT ? EIO : -rc);
        else fs_reply_attr_entry(req, &r, child, &a);
    }
    fs_ref_put(&r);
}

static void fs_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    FS_COUNTED(FS_OP_GETATTR);
    (void)fi;
    fs_ref r;
    struct stat st;
    fs_attr a;
    int rc = fs_ref_get(fs_mount_of(req), ino, &r);
    if (!rc && !r.v) {
        fs_synthetic_stat(ino, &st);
        fuse_reply_attr(req, &st, TIMEOUT);
        return;
    }
    if (!rc && (r.sino & ARCH_BIT)) {
        pg_archive_file f;
        if (r.sino != ARCH_BIT) rc = fs_arch_file(r.arch, r.sino, &f);
        if (!rc) fs_arch_stat(ino, r.sino == ARCH_BIT ? NULL : &f, &st);
        fs_ref_put(&r);
        if (rc) fuse_reply_err(req, -rc);
        else fuse_reply_attr(req, &st, 0);
        return;
    }
    if (!rc) rc = fs_attr_load(r.st, r.sino, &a);
    fs_ref_put(&r);
    if (rc) { fuse_reply_err(req, -rc); return; }
    fs_attr_to_stat(&a, ino, &st);
    fuse_reply_attr(req, &st, TIMEOUT);
}

static void fs_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set, struct fuse_file_info *fi)
{
    FS_COUNTED(FS_OP_SETATTR);
    (void)fi;
    fs_ref r;
    int rc = fs_ref_get(fs_mount_of(req), ino, &r);
    if (!rc && !r.v) rc = -EPERM;
    if (rc) { fuse_reply_err(req, -rc); return; }
    store *st = r.st;
    uint64_t sino = r.sino;
    inode_txn t;
    fs_attr *a = &t.a;
    rc = fs_itxn_begin(st, sino, &t);
    int64_t now = fs_now_ns();
    if (!rc && (to_set & FUSE_SET_ATTR_SIZE)) {
        if (S_ISDIR(a->mode)) rc = -EISDIR;
        else if (!S_ISREG(a->mode)) rc = -EINVAL;
        else if ((rc = fs_resize(st, r.arch, &t.b, sino, a, (uint64_t)attr->st_size)) == 0) a->mtime = now;
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
    rc = fs_itxn_end(st, &t, rc);
    fs_ref_put(&r);
    if (rc) { fuse_reply_err(req, -rc); return; }
    struct stat sb;
    fs_attr_to_stat(a, ino, &sb);
    fuse_reply_attr(req, &sb, TIMEOUT);
}

static void fs_readlink(fuse_req_t req, fuse_ino_t ino)
{
    FS_COUNTED(FS_OP_READLINK);
    fs_ref r;
    fs_attr a;
    int rc = fs_ref_get(fs_mount_of(req), ino, &r);
    if (!rc) rc = r.v ? fs_attr_load(r.st, r.sino, &a) : -EINVAL;
    fs_ref_put(&r);
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
    int rc = fs_dirent_load(st, sdir, name, &child, NULL);
    if (rc == 0) return -EEXIST;
    return rc == -ENOENT ? 0 : rc;
}

/* Create a new inode (file, dir, node, symlink) named NAME under PARENT;
 * on success R holds PARENT's view (fs_ref_put it after replying). */
static int make_node(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
                     dev_t rdev, const char *target, fs_ref *r, uint64_t *sino_out, fs_attr *a)
{
    const struct fuse_ctx *ctx = fuse_req_ctx(req);
    int rc = fs_ref_get(fs_mount_of(req), parent, r);
    if (!rc && !r->v) rc = -EPERM;
    if (rc) return rc;
    store *st = r->st;
    uint64_t sdir = r->sino;
    pthread_mutex_lock(&fs_ns_mu);
    rc = check_new_entry(st, sdir, name);
    if (!rc && target && strlen(target) >= PATH_MAX) rc = -ENAMETOOLONG;
    if (rc) { pthread_mutex_unlock(&fs_ns_mu); fs_ref_put(r); return rc; }
    uint64_t sino = store_alloc_ino(st);
    unsigned held[4]; int nheld;
    fs_lock_inos(sdir, sino, 0, 0, held, &nheld);
    fs_attr pa;
    rc = fs_attr_load(st, sdir, &pa);
    if (!rc && !S_ISDIR(pa.mode)) rc = -ENOTDIR;
    if (!rc) {
        memset(a, 0, sizeof *a);
        a->mode = mode; a->uid = ctx->uid; a->gid = ctx->gid; a->rdev = (uint32_t)rdev;
        a->nlink = S_ISDIR(mode) ? 2 : 1;
        if (pa.mode & S_ISGID) {
            a->gid = pa.gid;
            if (S_ISDIR(mode)) a->mode |= S_ISGID;
        }
        a->atime = a->mtime = a->ctime = fs_now_ns();
        if (target) { a->size = strlen(target); memcpy(a->target, target, a->size + 1); }
        store_batch b;
        store_batch_init(&b);
        fs_attr_put(&b, sino, a);
        fs_dirent_put(&b, sdir, name, sino, mode);
        pa.mtime = pa.ctime = a->mtime;
        if (S_ISDIR(mode)) pa.nlink++;
        fs_attr_put(&b, sdir, &pa);
        rc = store_commit(st, &b);
        store_batch_free(&b);
    }
    fs_unlock_inos(held, nheld);
    pthread_mutex_unlock(&fs_ns_mu);
    if (rc) fs_ref_put(r);
    /* the server's lock file appears: it starts, and what it reads now is
     * what its next start on a fresh machine reads first */
    else if (sdir == FS_ROOT_INO && S_ISREG(mode) && pg_view_starts_server(name)) {
        store_hot_restart(st);
        fs_view_recovering(r->v, 1);   /* on a time-travel view it recovers first */
    }
    *sino_out = sino;
    return rc;
}

static void fs_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
    FS_COUNTED(FS_OP_MKNOD);
    uint64_t sino; fs_attr a; fs_ref r;
    int rc = make_node(req, parent, name, mode, rdev, NULL, &r, &sino, &a);
    if (rc) { fuse_reply_err(req, -rc); return; }
    fs_reply_attr_entry(req, &r, sino, &a);
    fs_ref_put(&r);
}

static void fs_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
    FS_COUNTED(FS_OP_MKDIR);
    uint64_t sino; fs_attr a; fs_ref r;
    int rc = make_node(req, parent, name, S_IFDIR | (mode & 07777), 0, NULL, &r, &sino, &a);
    if (rc) { fuse_reply_err(req, -rc); return; }
    fs_reply_attr_entry(req, &r, sino, &a);
    fs_ref_put(&r);
}

static void fs_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
    FS_COUNTED(FS_OP_SYMLINK);
    uint64_t sino; fs_attr a; fs_ref r;
    int rc = make_node(req, parent, name, S_IFLNK | 0777, 0, link, &r, &sino, &a);
    if (rc) { fuse_reply_err(req, -rc); return; }
    fs_reply_attr_entry(req, &r, sino, &a);
    fs_ref_put(&r);
}

static void fs_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, struct fuse_file_info *fi)
{
    FS_COUNTED(FS_OP_CREATE);
    uint64_t sino; fs_attr a; fs_ref r;
    int rc = make_node(req, parent, name, S_IFREG | (mode & 07777), 0, NULL, &r, &sino, &a);
    if (rc) { fuse_reply_err(req, -rc); return; }
    struct fuse_entry_param e;
    memset(&e, 0, sizeof e);
    fs_mount *m = fs_mount_of(req);  /* REQ is gone once replied to */
    e.ino = fs_to_fuse(m, r.v, sino);
    fs_handles_add(m, e.ino, 1);     /* while the view is held: an idle close sees it */
    fs_writeback_track(m, e.ino, fi->flags, 1);
    int direct = fs_writeback_bypass_create(m, &r);
    fs_ref_put(&r);
    fi->fh = (uint64_t)(unsigned)fi->flags;   /* a handle is its open flags: nothing to free */
    fi->keep_cache = !direct;
    fi->direct_io = direct;
    fs_attr_to_stat(&a, e.ino, &e.attr);
    e.attr_timeout = e.entry_timeout = TIMEOUT;
    if (fuse_reply_create(req, &e, fi)) {
        fs_writeback_track(m, e.ino, fi->flags, -1);
        fs_handles_add(m, e.ino, -1);
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
    int rc = fs_ref_get(fs_mount_of(req), parent, &r);
    if (!rc && !r.v) rc = -EPERM;
    if (rc) return rc;
    store *st = r.st;
    uint64_t sdir = r.sino, child;
    pthread_mutex_lock(&fs_ns_mu);
    rc = fs_dirent_load(st, sdir, name, &child, NULL);
    unsigned held[4]; int nheld = 0;
    fs_attr a, pa;
    if (!rc) {
        fs_lock_inos(sdir, child, 0, 0, held, &nheld);
        rc = fs_attr_load(st, child, &a);
        if (!rc) rc = fs_attr_load(st, sdir, &pa);
    }
    if (!rc) {
        if (dir && !S_ISDIR(a.mode)) rc = -ENOTDIR;
        else if (!dir && S_ISDIR(a.mode)) rc = -EISDIR;
        else if (dir && (rc = dir_is_empty(st, child)) >= 0) rc = rc ? 0 : -ENOTEMPTY;
    }
    if (!rc) {
        store_batch b;
        store_batch_init(&b);
        int64_t now = fs_now_ns();
        fs_dirent_del(&b, sdir, name);
        a.nlink = dir ? 0 : a.nlink - 1;
        a.ctime = now;
        fs_attr_put(&b, child, &a);
        if (dir) pa.nlink--;
        pa.mtime = pa.ctime = now;
        fs_attr_put(&b, sdir, &pa);
        rc = store_commit(st, &b);
        store_batch_free(&b);
        if (!rc) pg_wal_forget(r.v->wal, child);
    }
    if (nheld) fs_unlock_inos(held, nheld);
    pthread_mutex_unlock(&fs_ns_mu);
    if (!rc && sdir == FS_ROOT_INO && pg_view_recovery_ends(name)) fs_view_recovering(r.v, 0);
    fs_ref_put(&r);
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
    int rc = fs_ref_get_pair(fs_mount_of(req), ino, newparent, &r, &sdir);
    if (rc) { fuse_reply_err(req, -rc); return; }
    store *st = r.st;
    uint64_t sino = r.sino;
    pthread_mutex_lock(&fs_ns_mu);
    rc = check_new_entry(st, sdir, newname);
    unsigned held[4]; int nheld = 0;
    fs_attr a;
    if (!rc) {
        fs_lock_inos(sino, sdir, 0, 0, held, &nheld);
        rc = fs_attr_load(st, sino, &a);
        if (!rc && S_ISDIR(a.mode)) rc = -EPERM;
    }
    if (!rc) {
        store_batch b;
        store_batch_init(&b);
        a.nlink++;
        a.ctime = fs_now_ns();
        fs_attr_put(&b, sino, &a);
        fs_dirent_put(&b, sdir, newname, sino, a.mode);
        rc = store_commit(st, &b);
        store_batch_free(&b);
    }
    if (nheld) fs_unlock_inos(held, nheld);
    pthread_mutex_unlock(&fs_ns_mu);
    if (rc) fuse_reply_err(req, -rc);
    else fs_reply_attr_entry(req, &r, sino, &a);
    fs_ref_put(&r);
}

static void fs_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
                      const char *newname, unsigned int flags)
{
    FS_COUNTED(FS_OP_RENAME);
    fs_ref r;
    uint64_t np;
    int rc = fs_ref_get_pair(fs_mount_of(req), parent, newparent, &r, &np);
    if (rc) { fuse_reply_err(req, -rc); return; }
    store *st = r.st;
    uint64_t sp = r.sino;
    if (flags & ~(unsigned)(RENAME_NOREPLACE | RENAME_EXCHANGE)) rc = -EINVAL;
    else if (strlen(newname) > 255) rc = -ENAMETOOLONG;
    if (rc) { fs_ref_put(&r); fuse_reply_err(req, -rc); return; }
    pthread_mutex_lock(&fs_ns_mu);
    uint64_t src, dst = 0;
    rc = fs_dirent_load(st, sp, name, &src, NULL);
    if (!rc) {
        rc = fs_dirent_load(st, np, newname, &dst, NULL);
        if (rc == -ENOENT) { dst = 0; rc = (flags & RENAME_EXCHANGE) ? -ENOENT : 0; }
        else if (!rc && (flags & RENAME_NOREPLACE)) rc = -EEXIST;
    }
    if (!rc && dst == src) {      /* two links to one inode: nothing to do */
        pthread_mutex_unlock(&fs_ns_mu);
        fs_ref_put(&r);
        fuse_reply_err(req, 0);
        return;
    }
    unsigned held[4]; int nheld = 0;
    fs_attr sa, da, spa, npa;
    if (!rc) {
        fs_lock_inos(sp, np, src, dst, held, &nheld);
        rc = fs_attr_load(st, src, &sa);
        if (!rc && dst) rc = fs_attr_load(st, dst, &da);
        if (!rc) rc = fs_attr_load(st, sp, &spa);
        if (!rc) rc = fs_attr_load(st, np, &npa);
    }
    if (!rc && (flags & RENAME_EXCHANGE)) {
        rc = fs_wal_unmap(st, r.arch, src, &sa);
        if (!rc) rc = fs_wal_unmap(st, r.arch, dst, &da);
    } else if (!rc && sa.wal_tli && !(sa.wal_copy && fs_archcopy_keeps(&sa, newname))) {
        /* a segment mapped onto the WAL archive leaves its name: renamed to
         * another segment's name it is an old one recycled, whose bytes
         * PostgreSQL overwrites before it reads them (it reads the pages
         * under its own keys until then); anything else keeps its bytes.
         * A view's copy of an archive segment taking that segment's name
         * is a restored one kept (KeepFileRestoredFromArchive): mapped. */
        rc = sa.nlink == 1 ? pg_wal_segment_entry(st, np, newname) : 0;
        if (rc > 0) { sa.wal_tli = 0; sa.wal_first = 0; sa.wal_copy = 0; rc = 0; }
        else if (!rc) rc = fs_wal_unmap(st, r.arch, src, &sa);
    }
    if (!rc && dst && !(flags & RENAME_EXCHANGE)) {
        if (S_ISDIR(sa.mode) && !S_ISDIR(da.mode)) rc = -ENOTDIR;
        else if (!S_ISDIR(sa.mode) && S_ISDIR(da.mode)) rc = -EISDIR;
        else if (S_ISDIR(da.mode) && (rc = dir_is_empty(st, dst)) >= 0) rc = rc ? 0 : -ENOTEMPTY;
    }
    if (!rc) {
        store_batch b;
        store_batch_init(&b);
        int64_t now = fs_now_ns();
        int dsp = 0, dnp = 0;     /* link count changes of the two parents */
        if (flags & RENAME_EXCHANGE) {
            fs_dirent_put(&b, sp, name, dst, da.mode);
            fs_dirent_put(&b, np, newname, src, sa.mode);
            if (S_ISDIR(sa.mode) != S_ISDIR(da.mode)) {
                int d = S_ISDIR(sa.mode) ? 1 : -1;   /* a directory moves from sp to np */
                dsp -= d; dnp += d;
            }
            da.ctime = now;
            fs_attr_put(&b, dst, &da);
        } else {
            fs_dirent_del(&b, sp, name);
            fs_dirent_put(&b, np, newname, src, sa.mode);
            if (dst) {
                da.nlink = S_ISDIR(da.mode) ? 0 : da.nlink - 1;
                da.ctime = now;
                fs_attr_put(&b, dst, &da);
                if (S_ISDIR(da.mode)) dnp--;
            }
            if (S_ISDIR(sa.mode)) { dsp--; dnp++; }
        }
        sa.ctime = now;
        fs_attr_put(&b, src, &sa);
        npa.mtime = npa.ctime = now;
        if (sp == np) {
            npa.nlink = (uint32_t)((int64_t)npa.nlink + dsp + dnp);
        } else {
            spa.nlink = (uint32_t)((int64_t)spa.nlink + dsp);
            npa.nlink = (uint32_t)((int64_t)npa.nlink + dnp);
            spa.mtime = spa.ctime = now;
            fs_attr_put(&b, sp, &spa);
        }
        fs_attr_put(&b, np, &npa);
        if (S_ISREG(sa.mode) && !(flags & RENAME_EXCHANGE)) rc = pg_wal_renamed(r.v->wal, &b, np, newname, src, sa.size);
        if (!rc) rc = store_commit(st, &b);
        store_batch_free(&b);
        if (!rc) { pg_wal_forget(r.v->wal, src); pg_wal_forget(r.v->wal, dst); }
    }
    if (nheld) fs_unlock_inos(held, nheld);
    pthread_mutex_unlock(&fs_ns_mu);
    fs_ref_put(&r);
    fuse_reply_err(req, -rc);
}

/* ---- file data ---- */

/* O_TRUNC at open (the kernel hands it to us: atomic_o_trunc). */
static int truncate_to_zero(store *st, uint64_t sino)
{
    inode_txn t;
    int rc = fs_itxn_begin(st, sino, &t);
    if (!rc) rc = fs_resize(st, NULL, &t.b, sino, &t.a, 0);   /* to zero: nothing to unmap */
    if (!rc) t.a.mtime = t.a.ctime = fs_now_ns();
    return fs_itxn_end(st, &t, rc);
}

static void fs_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    FS_COUNTED(FS_OP_OPEN);
    fs_ref r;
    fs_attr a;
    int rc = fs_ref_get(fs_mount_of(req), ino, &r);
    int arch = !rc && (r.sino & ARCH_BIT);
    if (arch) {                   /* read-only, and never cached: it grows */
        pg_archive_file af;
        rc = r.sino == ARCH_BIT ? -EISDIR : (fi->flags & O_ACCMODE) != O_RDONLY ? -EROFS : fs_arch_file(r.arch, r.sino, &af);
    } else if (!rc) {
        rc = r.v ? fs_attr_load(r.st, r.sino, &a) : -EISDIR;
        if (!rc && S_ISDIR(a.mode)) rc = -EISDIR;
        if (!rc && (fi->flags & O_TRUNC) && (fi->flags & O_ACCMODE) != O_RDONLY)
            rc = truncate_to_zero(r.st, r.sino);
        else if (!rc) store_hot_file(r.st, r.sino, a.size);
    }
    fs_mount *m = fs_mount_of(req);  /* REQ is gone once replied to */
    int direct = arch;
    if (!rc) {
        fs_handles_add(m, ino, 1);   /* while the view is held: an idle close sees it */
        fs_writeback_track(m, ino, fi->flags, 1);
        direct = direct || fs_writeback_bypass_open(m, &r, fi->flags);
    }
    fs_ref_put(&r);
    if (rc) { fuse_reply_err(req, -rc); return; }
    fi->fh = (uint64_t)(unsigned)fi->flags;   /* a handle is its open flags: nothing to free */
    fi->keep_cache = !direct;
    fi->direct_io = direct;
    if (fuse_reply_open(req, fi)) {
        fs_writeback_track(m, ino, fi->flags, -1);
        fs_handles_add(m, ino, -1);
    }
}

static void fs_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    FS_COUNTED(FS_OP_RELEASE);
    fs_mount *m = fs_mount_of(req);
    fs_writeback_track(m, ino, (int)fi->fh, -1);   /* fh: the open flags */
    fs_handles_add(m, ino, -1);
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
    fs_count_bytes(FS_OP_READ, size);
    (void)fi;
    fs_ref r;
    fs_attr a;
    int rc = fs_ref_get(fs_mount_of(req), ino, &r);
    if (!rc && (r.sino & ARCH_BIT)) {
        pg_archive_file f;
        uint8_t *out = malloc(size ? size : 1);
        long n = !out ? -ENOMEM : r.sino == ARCH_BIT ? -EISDIR : fs_arch_file(r.arch, r.sino, &f);
        if (!n) n = pg_archive_read(r.arch, &f, (uint64_t)off, out, size);
        fs_ref_put(&r);
        if (n < 0) fuse_reply_err(req, (int)-n);
        else fuse_reply_buf(req, (const char *)out, (size_t)n);
        free(out);
        return;
    }
    if (!rc) rc = r.v ? fs_attr_load(r.st, r.sino, &a) : -EISDIR;
    if (!rc && (uint64_t)off >= a.size) { fs_ref_put(&r); fuse_reply_buf(req, NULL, 0); return; }
    size_t n = rc ? 0 : a.size - (uint64_t)off < size ? (size_t)(a.size - (uint64_t)off) : size;
    uint8_t *out = rc ? NULL : malloc(n), page[PAGE];
    if (!rc && !out) rc = -ENOMEM;
    if (rc) { fs_ref_put(&r); fuse_reply_err(req, -rc); return; }
    store *st = r.st;
    uint64_t sino = r.sino;
    if (a.wal_copy) {             /* a view's copy of an archive segment (fs_archcopy.c) */
        long got = fs_archcopy_read(r.arch, &a, (uint64_t)off, out, n);
        if (got < 0) rc = (int)got;
        else n = (size_t)got;
    } else {
        for (size_t done = 0; done < n && !rc;) {
            uint64_t pos = (uint64_t)off + done, pg = pos / PAGE, in = pos % PAGE;
            size_t take = PAGE - in < n - done ? PAGE - in : n - done;
            if (in == 0 && take == PAGE) rc = fs_page_load(st, &a, sino, pg, out + done);
            else if (!(rc = fs_page_load(st, &a, sino, pg, page))) memcpy(out + done, page + in, take);
            done += take;
        }
    }
    fs_ref_put(&r);
    if (rc) fuse_reply_err(req, -rc);
    else fuse_reply_buf(req, (const char *)out, n);
    free(out);
}

static void fs_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
                     struct fuse_file_info *fi)
{
    FS_COUNTED(FS_OP_WRITE);
    fs_count_bytes(FS_OP_WRITE, size);
    fs_ref r;
    int rc = failpoint("fs-write");
    if (!rc) rc = fs_ref_get(fs_mount_of(req), ino, &r);
    if (!rc && !r.v) rc = -EISDIR;
    if (rc) { fuse_reply_err(req, -rc); return; }
    store *st = r.st;
    uint64_t sino = r.sino;
    inode_txn t;
    /* the pages as they will be, for the store and the WAL observer */
    uint64_t first = (uint64_t)off / PAGE, npages = ((uint64_t)off % PAGE + size + PAGE - 1) / PAGE;
    /* one allocation: the pages, then where each page's put starts in the
     * batch; a pooled chunk when it is big (see util/chunkpool.h) */
    size_t pages_len = npages * (PAGE + sizeof(size_t));
    uint8_t *pages = chunk_buf_alloc(pages_len);
    size_t *marks = pages ? (size_t *)(void *)(pages + npages * PAGE) : NULL;
    rc = pages ? fs_itxn_begin(st, sino, &t) : -ENOMEM;
    /* a segment file mapped onto the WAL archive keeps its segment's size;
     * a view's copy of an archive segment is not written in place */
    if (!rc && t.a.wal_tli && (t.a.wal_copy || (uint64_t)off + size > t.a.size))
        rc = fs_wal_unmap(st, r.arch, sino, &t.a);
    for (size_t done = 0; done < size && !rc;) {
        uint64_t pos = (uint64_t)off + done, pg = pos / PAGE, in = pos % PAGE;
        size_t take = PAGE - in < size - done ? PAGE - in : size - done;
        uint8_t *page = pages + (pg - first) * PAGE;
        if (take < PAGE && pg * PAGE < t.a.size) rc = fs_page_load(st, &t.a, sino, pg, page);
        else if (take < PAGE) memset(page, 0, PAGE);
        if (!rc) {
            memcpy(page + in, buf + done, take);
            marks[pg - first] = store_batch_mark(&t.b);
            fs_page_put(&t.b, &t.a, sino, pg, page);
        }
        done += take;
    }
    if (!rc) {
        if ((uint64_t)off + size > t.a.size) t.a.size = (uint64_t)off + size;
        t.a.mtime = t.a.ctime = fs_now_ns();
    }
    int wal = rc ? 0 : pg_wal_write(r.v->wal, &t.b, sino, t.a.size, (uint64_t)off, size, first, pages, marks,
                                    &t.a.wal_tli, &t.a.wal_first);
    if (pages) rc = fs_itxn_end(st, &t, wal < 0 ? wal : rc);
    if (wal > 0) pg_wal_written(r.v->wal, rc);
    /* a checkpoint completed: that state is a base for time travel (pg_wal.h) */
    if (!rc && pg_wal_checkpointed(r.v->wal, sino, (uint64_t)off, size, pages) > 0) fs_base_soon(fs_mount_of(req), r.v);
    chunk_buf_free(pages, pages_len);
    if (!rc && fi && ((unsigned)fi->fh & (unsigned)(O_SYNC | O_DSYNC))) rc = store_sync(st);
    fs_ref_put(&r);
    if (rc) fuse_reply_err(req, -rc == ENOENT ? EIO : -rc);
    else fuse_reply_write(req, size);
}

/* Make everything of INO's branch written so far durable, and reply. */
static void sync_reply(fuse_req_t req, fuse_ino_t ino)
{
    fs_ref r;
    int rc = fs_ref_get(fs_mount_of(req), ino, &r);
    if (!rc && r.v) {
        rc = store_sync(r.st) ? -EIO : 0;
        fs_ref_put(&r);
    }
    fuse_reply_err(req, -rc);
}

static void fs_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
    FS_COUNTED(FS_OP_FSYNC);
    (void)datasync; (void)fi;
    /* a barrier's: the kernel wrote back before asking, and the cut that
     * follows stores it (fs_writeback.c) */
    if (fs_writeback_own(fs_mount_of(req), req)) { fuse_reply_err(req, 0); return; }
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
    int rc = fs_ref_get(fs_mount_of(req), ino, &r);
    if (!rc && !r.v) rc = -EISDIR;
    if (rc) { fuse_reply_err(req, -rc); return; }
    store *st = r.st;
    uint64_t sino = r.sino;
    inode_txn t;
    uint64_t end = (uint64_t)off + (uint64_t)len;
    rc = fs_itxn_begin(st, sino, &t);
    if (!rc && !S_ISREG(t.a.mode)) rc = -ENODEV;
    if (!rc && ((mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE)) || end > t.a.size))
        rc = fs_wal_unmap(st, r.arch, sino, &t.a);
    if (!rc && (mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE)))
        rc = fs_zero_range(st, &t.b, sino, &t.a, (uint64_t)off, end);
    if (!rc) {
        if (!(mode & FALLOC_FL_KEEP_SIZE) && end > t.a.size) t.a.size = end;
        t.a.ctime = fs_now_ns();
    }
    rc = fs_itxn_end(st, &t, rc);
    fs_ref_put(&r);
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

/* Put D on M's list of open directories. */
static void dir_link(fs_mount *m, fs_dir *d)
{
    pthread_mutex_lock(&m->dirs_mu);
    d->prev = NULL;
    d->next = m->dirs;
    if (m->dirs) m->dirs->prev = d;
    m->dirs = d;
    pthread_mutex_unlock(&m->dirs_mu);
}

/* Take D off M's list of open directories and free it. */
static void dir_close(fs_mount *m, fs_dir *d)
{
    pthread_mutex_lock(&m->dirs_mu);
    if (d->prev) d->prev->next = d->next;
    else m->dirs = d->next;
    if (d->next) d->next->prev = d->prev;
    pthread_mutex_unlock(&m->dirs_mu);
    dir_free(d);
}

void fs_dirs_free(fs_mount *m)
{
    while (m->dirs) dir_close(m, m->dirs);
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
    return dir_add(l->d, (const char *)key + 9, klen - 9, fs_to_fuse(l->m, l->v, child), type);
}

/* pg_archive_list callback: one file of the WAL archive into the listing. */
static int arch_list_entry(void *arg, const char *name, const pg_archive_file *f)
{
    list_ctx *l = arg;
    uint64_t sino = fs_arch_sino(f);
    return sino ? dir_add(l->d, name, strlen(name), fs_to_fuse(l->m, l->v, sino), S_IFREG) : 0;
}

/* Inode number shown in a listing of branches/ for NAME: its view's root,
 * or (not served yet) a number from an id range views never use. */
static fuse_ino_t listed_branch_ino(fs_mount *m, const char *name)
{
    pthread_mutex_lock(&m->mu);
    fs_view *v = fs_view_find(m, name);
    fuse_ino_t ino = v ? fs_to_fuse(m, v, FS_ROOT_INO) : 0;
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
    fs_mount *m = fs_mount_of(req);
    fs_ref r;
    int rc = fs_ref_get(m, ino, &r);
    if (rc) { fuse_reply_err(req, -rc); return; }
    fs_dir *d = calloc(1, sizeof *d);
    if (!d) { fs_ref_put(&r); fuse_reply_err(req, ENOMEM); return; }
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
        rc = fs_attr_load(r.st, r.sino, &a);
        if (!rc && !S_ISDIR(a.mode)) rc = -ENOTDIR;
        if (!rc) {
            skey k;
            key_dirent(&k, r.sino, "", 0);
            list_ctx l = { d, m, r.v };
            rc = store_scan(r.st, k.b, k.len, list_entry, &l);
        }
    }
    if (!rc) fs_handles_add(m, ino, 1);   /* while the view is held: an idle close sees it */
    fs_ref_put(&r);
    if (rc) { dir_free(d); fuse_reply_err(req, -rc); return; }
    fi->fh = (uint64_t)(uintptr_t)d;
    fi->cache_readdir = 0;
    dir_link(m, d);
    if (fuse_reply_open(req, fi)) {
        dir_close(m, d);
        fs_handles_add(m, ino, -1);
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
    fs_mount *m = fs_mount_of(req);
    fs_handles_add(m, ino, -1);
    dir_close(m, (fs_dir *)(uintptr_t)fi->fh);
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
    if (statvfs(fs_mount_of(req)->cfg.statfs_path, &sv) < 0) { fuse_reply_err(req, errno); return; }
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
    fs_mount *m = userdata;
    fs_inode_init();
    conn->max_write = 1u << 20;
    conn->max_readahead = 1u << 20;
    conn->max_background = 64;
    conn->congestion_threshold = 48;
    if (conn->capable & FUSE_CAP_PARALLEL_DIROPS) conn->want |= FUSE_CAP_PARALLEL_DIROPS;
    /* The kernel's writeback cache, unless the mount says
     * writeback_cache=off, when the daemon can put a barrier before its
     * cuts (fs_writeback.c): a write then costs no round trip.
     * The kernel owns the sizes and times of open files; we are their
     * only writer, so they agree. */
    if (m->writeback && (conn->capable & FUSE_CAP_WRITEBACK_CACHE)) conn->want |= FUSE_CAP_WRITEBACK_CACHE;
    else conn->want &= ~(unsigned)FUSE_CAP_WRITEBACK_CACHE;
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
    .copy_file_range = fs_copy_file_range,
};

const struct fuse_lowlevel_ops *fs_ops(void)
{
    fs_inode_init();
    return &ops;
}

/*
 * fs_archcopy.c -- a time-travel view's copies of its WAL archive's
 * segments, made without copying (fs_impl.h).
 *
 * A server recovering on a time-travel view restores every segment it
 * replays with restore_command, `cp .lakefs-wal/SEG pg_wal/RECOVERYXLOG`,
 * then renames the copy to the segment's name and deletes it after a
 * restartpoint.  Copied through FUSE, 1 GiB of WAL costs 1 GiB of reads
 * and 1 GiB of writes into the view's overlay, which spills most of it to
 * disk; measured (stop 33): 3.3 s for 62 segments against 0.58 s for a
 * native cp, and about half of the 20 layers the overlay spilled.  But cp
 * asks copy_file_range(2) first (coreutils 9.1: two calls per file, the
 * second finding the end), and the kernel hands that to the daemon: a
 * whole segment copied into an empty file becomes a mapping of the file
 * onto the archive segment (fs_attr.wal_copy), one attribute write.  The
 * file then reads as the segment, through the view's archive and its cut,
 * exactly what .lakefs-wal shows; it gets its bytes under its own keys
 * (fs_wal_unmap) before anything changes them.
 *
 * Only in a time-travel view: its archive is another store, read-only and
 * open as long as the view, and its overlay dies with it, so the mapping
 * cannot outlive what it names.  A branch's archive is trimmed as time
 * travel stops needing it (pg_archive_trim) and a copy elsewhere in it
 * would lose its bytes.  Every other copy is answered EOPNOTSUPP, on which
 * the kernel copies through reads and writes as it did before (ENOSYS
 * would turn copy_file_range off for the whole mount).
 */
#include "fs_impl.h"
#include "fs_count.h"

/* The archive segment that copy A (wal_copy set) maps, into *F. */
static void archcopy_file(const fs_attr *a, pg_archive_file *f)
{
    memset(f, 0, sizeof *f);
    f->tli = a->wal_tli;
    f->size = a->size;
    f->segno = a->wal_first / (a->size / PAGE);
}

long fs_archcopy_read(const pg_archive *arch, const fs_attr *a, uint64_t off, void *buf, size_t len)
{
    pg_archive_file f;
    archcopy_file(a, &f);
    return pg_archive_read(arch, &f, off, buf, len);
}

#define ARCHCOPY_CHUNK (256u * 1024)  /* archive bytes read per pass while unmapping */

int fs_archcopy_unmap(const pg_archive *arch, const fs_attr *a, store_batch *b, uint64_t sino, const fs_attr *plain)
{
    if (!arch) return -EIO;
    uint8_t *chunk = malloc(ARCHCOPY_CHUNK);
    if (!chunk) return -ENOMEM;
    int rc = 0;
    for (uint64_t off = 0; off < a->size && !rc; off += ARCHCOPY_CHUNK) {
        long n = fs_archcopy_read(arch, a, off, chunk, ARCHCOPY_CHUNK);
        if (n < 0) { rc = (int)n; break; }
        /* a segment's size and the chunk are whole pages, and so is N */
        for (long done = 0; done < n; done += PAGE)
            fs_page_put(b, plain, sino, (off + (uint64_t)done) / PAGE, chunk + done);
        rc = b->err;
    }
    free(chunk);
    return rc;
}

int fs_archcopy_keeps(const fs_attr *a, const char *name)
{
    pg_archive_file f;
    char own[32];
    archcopy_file(a, &f);
    pg_archive_name(&f, own, sizeof own);
    return !strcmp(own, name);
}

/* Map empty file OUT (attributes A) of view R onto archive segment F. */
static int archcopy_map(const fs_ref *r, uint64_t out, const pg_archive_file *f)
{
    inode_txn t;
    int rc = fs_itxn_begin(r->st, out, &t);
    if (!rc && (!S_ISREG(t.a.mode) || t.a.size != 0 || t.a.wal_tli)) rc = -EOPNOTSUPP;
    if (!rc) {
        t.a.size = f->size;
        t.a.wal_tli = f->tli;
        t.a.wal_first = f->segno * (f->size / PAGE);
        t.a.wal_copy = 1;
        t.a.mtime = t.a.ctime = fs_now_ns();
    }
    return fs_itxn_end(r->st, &t, rc);
}

void fs_copy_file_range(fuse_req_t req, fuse_ino_t ino_in, off_t off_in, struct fuse_file_info *fi_in,
                        fuse_ino_t ino_out, off_t off_out, struct fuse_file_info *fi_out, size_t len, int flags)
{
    FS_COUNTED(FS_OP_COPY_FILE_RANGE);
    (void)fi_in; (void)fi_out;
    fs_ref r;
    uint64_t out;
    pg_archive_file f;
    int rc = fs_ref_get_pair(fs_mount_of(req), ino_in, ino_out, &r, &out);
    if (rc) { fuse_reply_err(req, rc == -EPERM ? EOPNOTSUPP : -rc); return; }
    if (!r.v->past || (r.sino & (ARCH_BIT | ARCH_SEG)) != (ARCH_BIT | ARCH_SEG) || (out & ARCH_BIT) ||
        off_in != 0 || off_out != 0 || flags)
        rc = -EOPNOTSUPP;
    if (!rc) rc = fs_arch_file(r.arch, r.sino, &f);
    if (!rc && len < f.size) rc = -EOPNOTSUPP;
    if (!rc) rc = archcopy_map(&r, out, &f);
    fs_ref_put(&r);
    if (rc) fuse_reply_err(req, -rc);
    else fuse_reply_write(req, (size_t)f.size);
}

/*
 * fs_impl.h -- what the files of the FUSE front end share: fs.c (the
 * request handlers), fs_inode.c (inode numbers, locks, attributes,
 * directory entries, pages, the WAL archive's files), fs_archcopy.c (a
 * time-travel view's copies of archive segments, mapped instead of copied),
 * fs_writeback.c (the kernel's writeback cache: the files open for
 * writing, the barrier before a cut) and fs_view.c (the mount's views of
 * branches: opening, releasing, closing idle ones, the base thread).  Not
 * for use outside fs/.
 */
#ifndef LAKEFS_FS_IMPL_H
#define LAKEFS_FS_IMPL_H

#include "fs.h"
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
#define ATTR_VERSION_WAL 2        /* ... followed by the WAL archive mapping (fs_attr.wal_tli) */
#define ATTR_VERSION_WAL_COPY 3   /* ... followed by the mapping onto the view's archive (fs_attr.wal_copy) */
#define ATTR_FIXED 61             /* encoded size without a symlink target */
#define ATTR_WAL_LEN 12           /* the mapping: timeline (4), first archive page (8) */

typedef struct fs_attr {
    uint32_t mode, uid, gid, nlink, rdev;
    uint64_t size;
    int64_t atime, mtime, ctime;  /* nanoseconds since the epoch */
    uint32_t wal_tli;             /* a WAL segment file whose pages are archive pages of this timeline (0: not) */
    uint64_t wal_first;           /* ... from this archive page number on (its page 0's) */
    int wal_copy;                 /* 1: ... of the view's archive, read with its cut (fs_archcopy.c) */
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
    struct fs_dir *prev, *next;   /* the mount's open directories */
} fs_dir;

typedef struct fs_writer {       /* a file open for writing (fs_writeback.c) */
    fuse_ino_t ino;               /* its FUSE inode */
    int opens;                    /* how many times */
    struct fs_writer *next;       /* in its hash bucket */
} fs_writer;

#define FS_WRITER_BUCKETS 1024

typedef struct fs_view {          /* one branch served by the mount */
    pthread_rwlock_t lock;        /* read: a request uses st; write: release */
    char name[BRANCH_NAME_MAX + PG_TARGET_TEXT + 2];  /* BRANCH or BRANCH@TARGET */
    uint32_t id;                  /* top 16 bits of its FUSE inode numbers */
    store *st;                    /* NULL once released */
    pg_archive arch;              /* what .lakefs-wal shows: st's archive, or a time-travel view's own */
    pg_wal *wal;                  /* its WAL observer (fs/pg/pg_wal.h); NULL for a time-travel view */
    int past;                     /* a time-travel view: closed when idle (fs_close_idle_views) */
    int recovering;               /* past: a server recovers on it, merges yield (atomic; fs_view_recovering) */
    int64_t recovering_since;     /* when it began (monotonic clock; atomic) */
    uint64_t handles;             /* files and directories open in it */
    int64_t used_ns;              /* when a request last used it (monotonic clock) */
    int base_wanted;              /* a checkpoint was seen: flush once the kernel wrote back (atomic) */
} fs_view;

struct fs_mount {
    fs_config cfg;
    pthread_mutex_t mu;           /* opening and releasing views; views by name */
    fs_view *views[MAX_VIEWS];    /* by id, from 1; published once complete */
    uint32_t nviews;              /* highest id handed out */
    struct fuse_session *se;      /* for entry invalidations; NULL before and after serving */
    pthread_mutex_t se_mu;        /* se's changes wait for an invalidation in progress */
    pthread_mutex_t dirs_mu;      /* guards dirs */
    fs_dir *dirs;                 /* open directories: the kernel may unmount without releasing them */
    pthread_mutex_t base_mu;      /* guards the four below */
    pthread_cond_t base_cv;       /* base_pending or base_stop set */
    int base_pending, base_stop;  /* a view wants a base; the base thread is to end */
    int base_running;             /* base_thread was started */
    pthread_t base_thread;        /* writes back the kernel's dirty pages, then flushes (fs_base_soon) */
    int writeback;                /* the kernel's writeback cache is on (fs_writeback.c) */
    char *wb_mountpoint;          /* ... for the barrier: where the mount is */
    dev_t wb_dev;                 /* ... and its device */
    pthread_mutex_t barrier_mu;   /* one barrier at a time */
    pid_t barrier_pid;            /* its process, while it runs (atomic) */
    pthread_mutex_t writers_mu;   /* guards writers */
    fs_writer *writers[FS_WRITER_BUCKETS];  /* files open for writing, hashed by FUSE inode */
};

typedef struct fs_ref {           /* a request's hold on the view of one inode */
    fs_view *v;                   /* NULL for a synthetic inode */
    store *st;                    /* v's store */
    const pg_archive *arch;       /* v's WAL archive */
    uint64_t sino;                /* store inode; 0 for a synthetic one */
} fs_ref;

/* ---- single-inode updates ---- */

typedef struct inode_txn {        /* a read-modify-write of one inode */
    uint64_t sino;                /* store inode */
    unsigned held[4];             /* its stripe lock */
    int nheld;
    fs_attr a;                    /* its attributes, loaded at begin */
    store_batch b;                /* the changes, committed with A at end */
} inode_txn;

/* Namespace changes take it (fs.c), and so does a view's first open. */
extern pthread_mutex_t fs_ns_mu;

/* Free the directories still open when serving ended (fs.c). */
void fs_dirs_free(fs_mount *m);

/* ---- fs_inode.c ---- */

/* Once per process: the stripe locks and the mount time. */
void fs_inode_init(void);

/* The mount a request belongs to. */
fs_mount *fs_mount_of(fuse_req_t req);

/* Wall-clock nanoseconds, for file times. */
int64_t fs_now_ns(void);

/* A cheap monotonic clock, for how long a view has been idle. */
int64_t fs_mono_ns(void);

/* Lock the stripes of up to 4 inodes (0 = none), ascending, without repeats. */
void fs_lock_inos(uint64_t a, uint64_t b, uint64_t c, uint64_t d, unsigned *held, int *nheld);

/* Unlock what fs_lock_inos locked. */
void fs_unlock_inos(const unsigned *held, int nheld);

/* Resolve FUSE inode INO into R, holding its view for reading: 0, or
 * -ESTALE if its branch was released (nothing held then).  A synthetic
 * inode (repository root, branches/) gives R->v NULL and R->sino 0. */
int fs_ref_get(fs_mount *m, fuse_ino_t ino, fs_ref *r);

/* A file or directory of INO's view was opened (DELTA 1) or released
 * (-1): counted, so that a view nothing has open can be closed. */
void fs_handles_add(fs_mount *m, fuse_ino_t ino, int64_t delta);

/* Let go of what fs_ref_get holds. */
void fs_ref_put(fs_ref *r);

/* For a request naming two inodes: R holds INO's view (as fs_ref_get) and
 * *OTHER_SINO gets OTHER's store inode, which must lie in the same view
 * (its lock is not taken twice).  0, or -errno with nothing held: -EPERM
 * for a synthetic INO, -EXDEV for OTHER in another view or synthetic. */
int fs_ref_get_pair(fs_mount *m, fuse_ino_t ino, fuse_ino_t other, fs_ref *r, uint64_t *other_sino);

/* FUSE inode of store inode SINO of view V. */
fuse_ino_t fs_to_fuse(const fs_mount *m, const fs_view *v, uint64_t sino);

/* Load the attributes of store inode SINO. */
int fs_attr_load(store *st, uint64_t sino, fs_attr *a);

/* Add "store attributes of SINO = A" to batch B. */
void fs_attr_put(store_batch *b, uint64_t sino, const fs_attr *a);

/* Child of entry NAME in directory DIR: -ENOENT if none. */
int fs_dirent_load(store *st, uint64_t dir, const char *name, uint64_t *child, uint32_t *type);

/* Add "entry NAME of DIR = CHILD of type MODE" to batch B. */
void fs_dirent_put(store_batch *b, uint64_t dir, const char *name, uint64_t child, uint32_t mode);

/* Add "no entry NAME in DIR" to batch B. */
void fs_dirent_del(store_batch *b, uint64_t dir, const char *name);

/* Fill ST from A for FUSE inode INO. */
void fs_attr_to_stat(const fs_attr *a, fuse_ino_t ino, struct stat *st);

/* Attributes of a synthetic directory (repository root, branches/). */
void fs_synthetic_stat(fuse_ino_t ino, struct stat *st);

void fs_reply_entry(fuse_req_t req, fuse_ino_t ino, const struct stat *st);

void fs_reply_attr_entry(fuse_req_t req, const fs_ref *r, uint64_t sino, const fs_attr *a);

/* The store inode of archive file F, or 0 if its numbers do not fit one
 * (such a file cannot be served). */
uint64_t fs_arch_sino(const pg_archive_file *f);

/* The archive file of store inode SINO (not the directory) into *F: 0,
 * -ENOENT if the archive does not hold it, or -errno. */
int fs_arch_file(const pg_archive *arch, uint64_t sino, pg_archive_file *f);

/* Attributes of the archive directory (F NULL) or file F, FUSE inode INO:
 * readable by everyone (PostgreSQL's restore_command copies from it),
 * owned by root, writes refused whoever asks.  Files are 0644, not 0444:
 * cp gives its copy the source's mode, and PostgreSQL opens a restored
 * segment for writing. */
void fs_arch_stat(fuse_ino_t ino, const pg_archive_file *f, struct stat *st);

/* Lookup of NAME in view directory R->sino if it is the archive's business:
 * 1 if replied to, 0 if not. */
int fs_arch_lookup(fuse_req_t req, const fs_ref *r, const char *name);

/* Lock SINO and load its attributes into T; returns 0 or -errno (then
 * fs_itxn_end must still be called). */
int fs_itxn_begin(store *st, uint64_t sino, inode_txn *t);

/* If RC is 0, commit T's batch with its attributes; unlock; returns the result. */
int fs_itxn_end(store *st, inode_txn *t, int rc);

/* Read page PG of SINO (attributes A, not a copy of the view's archive:
 * fs_archcopy_read reads those) into BUF (zeros if absent); -EIO on failure. */
int fs_page_load(store *st, const fs_attr *a, uint64_t sino, uint64_t pg, uint8_t *buf);

/* Add "page PG of SINO (attributes A) = DATA" to batch B. */
void fs_page_put(store_batch *b, const fs_attr *a, uint64_t sino, uint64_t pg, const uint8_t *data);

/* Give SINO (stripe held, attributes *A) of a view with archive ARCH its
 * pages back under its own keys and end its mapping onto the WAL archive
 * (fs_attr.wal_tli), in a commit of its own; *A is updated.  Nothing to do
 * for a file not mapped.  0 or -errno. */
int fs_wal_unmap(store *st, const pg_archive *arch, uint64_t sino, fs_attr *a);

/* Zero bytes [from, to) of SINO (attributes A, not mapped onto the WAL
 * archive) in batch B: whole pages become tombstones, partial ones are
 * rewritten. */
int fs_zero_range(store *st, store_batch *b, uint64_t sino, const fs_attr *a, uint64_t from, uint64_t to);

/* Change the size of SINO from A->size to SIZE in batch B (stripe held);
 * a file mapped onto the WAL archive ARCH is unmapped first. */
int fs_resize(store *st, const pg_archive *arch, store_batch *b, uint64_t sino, fs_attr *a, uint64_t size);

/* ---- fs_archcopy.c ---- */

/* Read LEN bytes at OFF of a view's copy of an archive segment (attributes
 * A, wal_copy set) from the view's archive ARCH: the bytes read, or -errno. */
long fs_archcopy_read(const pg_archive *arch, const fs_attr *a, uint64_t off, void *buf, size_t len);

/* Put the pages of copy SINO (attributes A) under its own keys into batch
 * B, as a file with attributes PLAIN (A unmapped): 0 or -errno. */
int fs_archcopy_unmap(const pg_archive *arch, const fs_attr *a, store_batch *b, uint64_t sino, const fs_attr *plain);

/* 1 if NAME is the name of the archive segment copy A maps, 0 if not. */
int fs_archcopy_keeps(const fs_attr *a, const char *name);

/* The copy_file_range handler: a whole archive segment of a time-travel
 * view copied into an empty file of it maps the file onto the segment;
 * anything else is refused with EOPNOTSUPP (the kernel copies then). */
void fs_copy_file_range(fuse_req_t req, fuse_ino_t ino_in, off_t off_in, struct fuse_file_info *fi_in,
                        fuse_ino_t ino_out, off_t off_out, struct fuse_file_info *fi_out, size_t len, int flags);

/* ---- fs_writeback.c ---- */

/* FUSE inode INO was opened (DELTA 1) or released (-1) with open FLAGS:
 * counted if that was for writing and the writeback cache is on. */
void fs_writeback_track(fs_mount *m, fuse_ino_t ino, int flags, int delta);

/* Whether a file must bypass the writeback cache, its writes reaching the
 * WAL observer at once and in order (0 also without the cache): 1 for a
 * file R opened with FLAGS that is a WAL segment opened for writing, or
 * for any file created in directory DIR that is pg_wal/. */
int fs_writeback_bypass_open(fs_mount *m, const fs_ref *r, int flags);
int fs_writeback_bypass_create(fs_mount *m, const fs_ref *dir);

/* Have the kernel write back the dirty pages of view ID's files to the
 * daemon, and wait for them: 0 (also when none is open for writing, as
 * without the writeback cache, which counts none), or -errno.  Only from
 * a thread that serves no FUSE request and holds nothing one needs. */
int fs_writeback_barrier(fs_mount *m, uint32_t id);

/* 1 if REQ comes from the barrier's process (its fsyncs need no journal sync). */
int fs_writeback_own(fs_mount *m, fuse_req_t req);

/* Free what the table of files open for writing and the setup hold. */
void fs_writeback_free(fs_mount *m);

/* ---- fs_view.c ---- */

/* PostgreSQL completed a checkpoint on view V (the WAL observer saw it):
 * flush its store soon, as a base for time travel -- after the write-back
 * barrier, so that the base holds everything the server wrote before the
 * checkpoint, fsynced or not (fs_writeback.c).  Never waits. */
void fs_base_soon(fs_mount *m, fs_view *v);

/* The view serving branch NAME, or NULL (m->mu held). */
fs_view *fs_view_find(fs_mount *m, const char *name);

/* A server's recovery on time-travel view V begins (ON = 1: its lock file
 * appeared) or is over (0: its recovery.signal or lock file went, or the
 * view closes): while it runs, background merges yield (store_yield_begin).
 * Nothing for a branch's view. */
void fs_view_recovering(fs_view *v, int on);

/* Entry branches/NAME: its view's root, the view opened if need be. */
void fs_lookup_branch(fuse_req_t req, fs_mount *m, const char *name);

#endif

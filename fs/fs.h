/*
 * fs.h -- the FUSE front end: POSIX files and directories on branch stores.
 *
 * fs/ turns low-level FUSE requests into reads and atomic batches of the
 * versioned store (store/store.h).  It owns the encoding of inode
 * attributes and directory entries and the mount layout: a repository
 * mount shows branches/NAME/ for every branch of the repository, each
 * served on first use, and branches/NAME@TARGET for a read-only view of
 * its past; a branch mount shows one branch's PGDATA at its root.  Every
 * view's root also holds a hidden directory, .lakefs-wal, of its branch's
 * WAL archive (fs/pg/pg_archive.h), which recovery reads.  How a branch is opened and closed (state directory, lease, cache,
 * control socket) is the caller's: fs reaches it through fs_branch_ops.
 */
#ifndef LAKEFS_FS_H
#define LAKEFS_FS_H

#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>
#include <stddef.h>
#include <stdint.h>
#include "../store/store.h"
#include "fs_format.h"


typedef struct fs_branch {        /* what serves one view */
    store *st;                    /* its files */
    store *archive;               /* where its WAL archive is read (st itself for a branch) */
    uint64_t archive_end;         /* the archive's cut (pg_archive.h; UINT64_MAX: none) */
    int past;                     /* a time-travel view: recovers from st to archive_end, read-only */
} fs_branch;

typedef struct fs_branch_ops {
    void *arg;                    /* passed to each */
    /* Open NAME for serving -- a branch, or BRANCH@TARGET: a read-only
     * time-travel view (pg_target.h) whose st is a throw-away overlay --
     * into *B, flushers started: 0, -ENOENT if there is no such branch, or
     * -errno with a one-line reason in ERR. */
    int (*open)(void *arg, const char *name, fs_branch *b, char *err, size_t errlen);
    /* Flush and close what OPEN gave: 0 or -errno (reason logged). */
    int (*close)(void *arg, const char *name, fs_branch *b);
    /* The repository's branch names, sorted, as a malloc'd array of
     * malloc'd strings; -errno with nothing allocated. */
    int (*list)(void *arg, char ***names, size_t *n);
} fs_branch_ops;

typedef struct fs_config {
    const char *branch;           /* branch mount: the branch at the root; NULL: repository layout */
    const char *statfs_path;      /* local path whose filesystem statfs reports */
    fs_branch_ops ops;
} fs_config;

typedef struct fs_mount fs_mount; /* the state of one mount: its views */

/* New mount state for CFG (copied); pass it as userdata to fuse_session_new. */
int fs_new(const fs_config *cfg, fs_mount **out);
/* The session serving M, for invalidating kernel caches. */
void fs_set_session(fs_mount *m, struct fuse_session *se);
/* Serve branch NAME from now on (a branch mount: before serving). */
int fs_open_branch(fs_mount *m, const char *name, char *err, size_t errlen);
/* store_checkpoint of served branch NAME; -ENOENT if M does not serve it. */
int fs_checkpoint(fs_mount *m, const char *name, uint64_t *seq, uint64_t *gen);
/* Call FN with the name and store of each branch M serves (not the
 * time-travel views), held meanwhile: a release waits.  FN's first
 * non-zero return stops the walk and is returned. */
typedef int (*fs_branch_fn)(void *arg, const char *name, store *st);
int fs_foreach_branch(fs_mount *m, fs_branch_fn fn, void *arg);
/* store_get_stats of served branch NAME; -ENOENT if M does not serve it. */
int fs_stats(fs_mount *m, const char *name, store_stats *s);
/* Stop serving branch NAME: wait for its requests in flight, flush and close
 * it; later requests on its files fail with ESTALE.  -ENOENT if not served. */
int fs_release_branch(fs_mount *m, const char *name);
/* Close the time-travel views that no request has used for IDLE_NS, with
 * no file or directory open in them and no PostgreSQL server running on
 * them (pg_view.h): their overlays, which hold what servers on them wrote,
 * are freed, and the next lookup opens them afresh at the same point,
 * under the same inode numbers (a process whose working directory is in
 * one gets ESTALE there until then).  Returns
 * how many were closed (none on a branch mount: its view is its root). */
int fs_close_idle_views(fs_mount *m, int64_t idle_ns);
/* Close every branch and free M; the first close error, or 0. */
int fs_free(fs_mount *m);

/* Make PostgreSQL recover from the WAL archive to its end, then promote,
 * when it starts on the branch in store ST (a root holding a data
 * directory): the settings and signal file of fs/pg/pg_target.h, in one
 * commit.  READ_WRITE: a branch at a past point; else a read-only view. */
int fs_add_recovery(store *st, int read_write);

/* The FUSE operations; userdata is an fs_mount. */
const struct fuse_lowlevel_ops *fs_ops(void);
/* Encode the attributes of a new branch's empty root directory (mode 0755,
 * owned by root) into BUF; returns the length. */
size_t fs_root_attr(uint8_t *buf, size_t cap);

/* ---- fs_writeback.c: the kernel's writeback cache ---- */

/* Serve M, mounted at MOUNTPOINT (absolute, as mounted) and not serving
 * yet, with the kernel's writeback cache: 0, with a warning in WHY if the
 * kernel's dirty-page limit for FUSE could not be lifted, or -errno with
 * the reason in WHY (not root): M is then served without it. */
int fs_writeback_setup(fs_mount *m, const char *mountpoint, char *why, size_t whylen);

#endif

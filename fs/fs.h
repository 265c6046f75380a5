/*
 * fs.h -- the FUSE front end: POSIX files and directories on a branch store.
 *
 * fs/ turns low-level FUSE requests into reads and atomic batches of the
 * versioned store (store/store.h).  It owns the encoding of inode
 * attributes and directory entries and the mount layout: the repository
 * mount shows branches/NAME/, a branch mount shows one branch's PGDATA at
 * its root.
 */
#ifndef LAKEFS_FS_H
#define LAKEFS_FS_H

#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>
#include <stddef.h>
#include <stdint.h>
#include "../store/store.h"
#include "pg/pg_wal.h"

#define FS_ROOT_INO 1             /* store inode number of a branch's root directory */

typedef struct fs_config {
    store *st;                    /* the branch's store */
    const char *branch;           /* its name */
    int branch_root;              /* 1: mount point = branch root; 0: repository layout */
    const char *statfs_path;      /* local path whose filesystem statfs reports */
    pg_wal *wal;                  /* the branch's WAL observer (fs/pg/pg_wal.h), or NULL */
} fs_config;

/* The FUSE operations; pass a fs_config as userdata to fuse_session_new. */
const struct fuse_lowlevel_ops *fs_ops(void);
/* Encode the attributes of a new branch's empty root directory (mode 0755,
 * owned by root) into BUF; returns the length. */
size_t fs_root_attr(uint8_t *buf, size_t cap);

#endif

/*
 * branch.h -- the branches of a repository: metadata, fork, list, delete,
 * rename.
 *
 * A branch NAME is the objects under branches/NAME/: its manifests (the
 * commit points, manifest.h), its metadata object "branch", its lease while
 * a daemon mounts it read-write, and the layers and remote-journal segments
 * it wrote.  A forked branch starts as a copy of one manifest of its parent,
 * which names the parent's layers by their full keys: creating a branch
 * writes two small objects whatever the size of the data, and the branch's
 * own writes go to layers of its own (copy-on-write).  A layer's key names
 * the branch that wrote it, not the branches using it.
 *
 * The metadata object branches/NAME/branch is the first object of a new
 * branch, created with put-if-absent, so it decides between concurrent
 * creators of one name.  Text, verified like a manifest (the decoder takes
 * exactly this canonical form and nothing else):
 *
 *   lakefs-branch 1
 *   parent NAME                  ("-" for a root branch, such as main)
 *   point SEQ                    (the parent's seq the branch starts at; 0 for a root)
 *   parent_gen GEN               (the parent's manifest generation copied; 0 for a root)
 *   at_lsn LSN                   (only for a branch made at a point of the parent's
 *                                 past: that point, decimal; its state is recovered
 *                                 to there when PostgreSQL first starts on it)
 *   created YYYY-MM-DDTHH:MM:SSZ (UTC)
 *   crc XXXXXXXX                 (CRC-32C of every byte before this line)
 *
 * Delete and rename (which deletes the old name) first create the marker
 * branches/NAME/deleting, then look for a lease and for child branches; a
 * mount takes the lease, then looks for the marker; a fork writes the
 * child's metadata, then looks for the parent's marker.  So a delete never
 * goes ahead while a mount or a fork of the branch does.
 *
 * Errors: -errno, with a one-line reason naming the branch or key in ERR.
 */
#ifndef LAKEFS_BRANCH_H
#define LAKEFS_BRANCH_H

#include <stddef.h>
#include <stdint.h>
#include "manifest.h"
#include "../objstore/objstore.h"

#define BRANCH_NAME_MAX 63

typedef struct branch_meta {
    char parent[BRANCH_NAME_MAX + 1];  /* "" for a root branch */
    uint64_t point;               /* parent's seq at the branch point */
    uint64_t parent_gen;          /* parent's manifest generation copied */
    uint64_t at_lsn;              /* made at this LSN of the parent's past (0: at its state at POINT) */
    int64_t created;              /* creation time, seconds since the epoch */
} branch_meta;

/* 1 if NAME is 1-63 of [A-Za-z0-9._-], not starting with '.' or '-'. */
int branch_name_valid(const char *name);
/* The branch object KEY ("branches/NAME/REST") belongs to, into NAME; REST
 * is returned, or NULL if KEY is no (valid) branch's. */
const char *branch_key_split(const char *key, char name[BRANCH_NAME_MAX + 1]);

/* Serialize B into a malloc'd buffer. */
int branch_meta_encode(const branch_meta *b, char **buf, size_t *len);
/* Parse LEN bytes of BUF into B; -EINVAL on any defect. */
int branch_meta_decode(const char *buf, size_t len, branch_meta *b);
/* Create branches/NAME/branch holding B; -EEXIST if it exists. */
int branch_meta_put(objstore *os, const char *name, const branch_meta *b);
/* Load branches/NAME/branch; -ENOENT if there is none. */
int branch_meta_load(objstore *os, const char *name, branch_meta *b);
/* 1 if a delete or rename of NAME is under way (or was interrupted), 0 if
 * not, or -errno. */
int branch_deleting(objstore *os, const char *name);

/* Create branch NAME from generation PARENT_GEN of PARENT's manifests (0:
 * the newest): metadata only.  *OUT gets NAME's metadata. -EEXIST if NAME
 * exists (also when a concurrent creator won), -ENOENT if PARENT or that
 * generation does not exist; on failure nothing of NAME is left. */
int branch_fork(objstore *os, const char *name, const char *parent, uint64_t parent_gen,
                branch_meta *out, char *err, size_t errlen);
/* The same for a branch made at LSN AT_LSN of the parent's past (not 0),
 * generation PARENT_GEN being the state recovery to it starts from. */
int branch_fork_at(objstore *os, const char *name, const char *parent, uint64_t parent_gen, uint64_t at_lsn,
                   branch_meta *out, char *err, size_t errlen);

typedef struct branch_info {
    char name[BRANCH_NAME_MAX + 1];
    branch_meta meta;             /* parent "" for a root (or a branch without metadata) */
    int has_meta;                 /* branches/NAME/branch exists */
    int deleting;                 /* a delete or rename is under way or was interrupted */
    manifest man;                 /* its newest manifest */
    uint64_t bytes;               /* size of the layers that manifest names */
    uint64_t unique_bytes;        /* ... of those no other branch's newest manifest names */
} branch_info;

/* The names of the branches of the repository (with a manifest, not being
 * deleted), sorted, as a malloc'd array of malloc'd strings: one listing,
 * no object read. */
int branch_names(objstore *os, char ***names, size_t *n);
/* Every branch of the repository (names with a manifest), sorted by name. */
int branch_list(objstore *os, branch_info **out, size_t *n, char *err, size_t errlen);
void branch_list_free(branch_info *b, size_t n);

/* Makes the daemon mounting branch NAME let go of it: 0 or -errno with a
 * reason in ERR. */
typedef int (*branch_release_fn)(void *arg, const char *name, char *err, size_t errlen);
/* Delete branch NAME (also the leftovers of an interrupted create, delete
 * or rename): -EBUSY while a daemon holds its lease, -ENOTEMPTY while
 * another branch names it as parent, -ENOENT if there is nothing.  With
 * RELEASE (--force), it is called once the branch is marked, so that no
 * mount can open the branch again, to end the mount that serves it. */
int branch_delete(objstore *os, const char *name, branch_release_fn release, void *arg, char *err, size_t errlen);
/* Rename branch FROM (not mounted, without children) to TO: TO is created,
 * then FROM deleted, so a crash leaves FROM, TO, or both. */
int branch_rename(objstore *os, const char *from, const char *to, char *err, size_t errlen);

#endif

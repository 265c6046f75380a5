/*
 * manifest.h -- a branch's commit point.
 *
 * A manifest lists the layers that make up a branch up to seq SEQ, plus the
 * highest inode number in use.  Manifests are objects named
 * branches/NAME/manifest/GGGGGGGGGGGGGGGGGGGG (20-digit generation) and are
 * created with put-if-absent: uploading generation G+1 is the atomic commit,
 * and two writers can never both commit the same generation.
 *
 * The encoding is line-oriented text ending with a CRC-32C line, so it is
 * both inspectable and verified: "lakefs-manifest 1", "seq N", "max_ino N",
 * "writer N", "session N", "inherit N", "time N" (seconds since the epoch
 * when the committer made it), "closed 1" if it is the last commit of a
 * cleanly closed mount, one "layer KEY MINSEQ MAXSEQ SIZE" per layer
 * (newest last), "crc XXXXXXXX".
 *
 * writer, session and inherit say where the batches after SEQ are: in the
 * local journal of the state directory whose id is WRITER (0: none yet),
 * and in the remote journal chains (journal_remote.h) of sessions INHERIT
 * (0: none) and SESSION, the mount that committed this generation.  A
 * closed manifest says there are none: SESSION flushed everything into its
 * layers and ended, so the next mount has no chain to fold or fence.
 */
#ifndef LAKEFS_MANIFEST_H
#define LAKEFS_MANIFEST_H

#include <stddef.h>
#include <stdint.h>
#include "../objstore/objstore.h"

typedef struct manifest_layer {
    char *key;                    /* object key of the layer */
    uint64_t min_seq, max_seq;    /* seq range of its versions */
    uint64_t size;                /* object size in bytes */
} manifest_layer;

typedef struct manifest {
    uint64_t gen;                 /* generation (from the object name) */
    uint64_t seq;                 /* every version <= seq is in the layers */
    uint64_t max_ino;             /* highest inode number allocated */
    uint64_t writer;              /* id of the committing daemon's state directory */
    uint64_t session;             /* committing mount (the generation it opened with) */
    uint64_t inherit;             /* older session whose remote chain is still to fold in */
    uint64_t time;                /* when it was made, seconds since the epoch (gc's clock) */
    int closed;                   /* SESSION's last commit: it ended cleanly, nothing after SEQ */
    size_t nlayers;
    manifest_layer *layers;       /* oldest first */
} manifest;

/* Serialize M into a malloc'd buffer. */
int manifest_encode(const manifest *m, char **buf, size_t *len);
/* Parse LEN bytes of BUF into M (gen left 0); -EINVAL on any defect. */
int manifest_decode(const char *buf, size_t len, manifest *m);
void manifest_free(manifest *m);
/* Append a layer entry (KEY copied). */
int manifest_add_layer(manifest *m, const char *key, uint64_t min_seq,
                       uint64_t max_seq, uint64_t size);

/* Load the newest manifest of BRANCH; -ENOENT if the branch has none. */
int manifest_load_latest(objstore *os, const char *branch, manifest *m);
/* The generations of BRANCH that exist, ascending, in a malloc'd *GENS
 * (*N of them; garbage collection leaves gaps and removes the oldest). */
int manifest_gens(objstore *os, const char *branch, uint64_t **gens, size_t *n);
/* Load generation GEN of BRANCH; -ENOENT if there is no such generation. */
int manifest_load(objstore *os, const char *branch, uint64_t gen, manifest *m);
/* Generation named by manifest object KEY of BRANCH ("branches/BRANCH/
 * manifest/" + 20 digits) into *GEN; -EINVAL if KEY is not one. */
int manifest_key_gen(const char *branch, const char *key, uint64_t *gen);
/* Commit M as generation M->gen of BRANCH (put-if-absent); -EEXIST if that
 * generation exists already (another writer committed first). */
int manifest_commit(objstore *os, const char *branch, const manifest *m);

/* 1 if generation M->gen of BRANCH holds exactly M's encoding (a commit
 * whose answer was lost may have landed: only content naming a layer no
 * one else can know proves it is ours), 0 if it holds something else or
 * nothing, -errno if it cannot be read. */
int manifest_matches(objstore *os, const char *branch, const manifest *m);

/* 1 if generation GEN of BRANCH exists, 0 if not, or -errno. */
int manifest_exists(objstore *os, const char *branch, uint64_t gen);

#endif

/*
 * compact.h -- merging a branch's layers so that a read probes few of them.
 *
 * Every flush adds a layer on top of a branch's stack, and a read probes
 * the layers newest first until one has the key: without merging, the
 * layers probed grow with the data written.  Compaction merges the newest
 * runs of the stack into one run: the newest version of each key, in
 * key-disjoint pieces of about COMPACT_PIECE_BYTES each, so a key falls in
 * the key range of at most one piece of a run (the others are skipped by
 * an in-memory comparison).
 *
 * Policy (compact_pick): a run is a maximal group of adjacent layers with
 * the same seq range (the pieces of one merge; a flushed layer alone).
 * Only the branch's own runs on top of the stack merge: layers it shares
 * with its parent stay as they are, so a fork never copies its parent's
 * data.  Runs are kept at sizes that more than double from newest to
 * oldest: whenever a run is no larger than all newer runs together, it and
 * every newer run merge into one (sizes below COMPACT_FLOOR_BYTES count as
 * that floor).  Like a binary counter: a branch has at most
 * 1 + log2(its bytes / COMPACT_FLOOR_BYTES) runs of its own -- 11 for
 * 1 GiB, 21 for 1 TiB -- plus the runs of its parent at the fork point, and
 * each byte is rewritten about once per doubling of the data after it.
 *
 * Merging is chunked by key range: each input contributes a bounded number
 * of bytes per chunk, so memory stays near COMPACT_CHUNK_BYTES plus one
 * piece being built, whatever the size of the layers.
 */
#ifndef LAKEFS_COMPACT_H
#define LAKEFS_COMPACT_H

#include <stddef.h>
#include <stdint.h>
#include "layer.h"
#include "manifest.h"

#define COMPACT_PIECE_BYTES (64u << 20)    /* an output piece closes past this size */
#define COMPACT_CHUNK_BYTES (32u << 20)    /* raw bytes gathered per key-range chunk */
#define COMPACT_FLOOR_BYTES (1u << 20)     /* smaller runs count as this large */

/* Layers [*FIRST, *FIRST + *COUNT) of M (oldest first) are to be merged,
 * by the policy above, for the branch whose own layer keys start with
 * OWN_PREFIX: 1 then, 0 if nothing is due. */
int compact_pick(const manifest *m, const char *own_prefix, size_t *first, size_t *count);

/* An output piece of a merge: uploaded and open. */
typedef struct compact_piece {
    char *key;                    /* object key */
    uint64_t size;                /* object size */
    uint64_t min_seq, max_seq;    /* the merge's seq range: the run every piece belongs to */
    layer *l;                     /* opened layer */
} compact_piece;

/* Uploads BUF/LEN as a new layer object whose versions span seq MIN_SEQ to
 * MAX_SEQ; its key goes to *KEY (malloc'd). */
typedef int (*compact_upload_fn)(void *arg, const void *buf, size_t len, uint64_t min_seq,
                                 uint64_t max_seq, char **key);

/* Merge the N layers IN (oldest first): the newest version of each key,
 * deletions left out if DROP_TOMBS (nothing lies below IN[0]), written as
 * pieces of about PIECE_BYTES handed to UPLOAD and opened, gathering about
 * CHUNK_BYTES per chunk (COMPACT_PIECE_BYTES, COMPACT_CHUNK_BYTES but in
 * tests).  *OUT (malloc'd, *NOUT pieces, maybe
 * none) on success; on failure nothing is returned (pieces uploaded so far
 * are left to garbage collection).  STOP, if not NULL, is polled: a
 * non-zero value abandons the merge with -ECANCELED. */
int compact_merge(objstore *os, layer *const *in, size_t n, int drop_tombs, size_t piece_bytes, size_t chunk_bytes,
                  compact_upload_fn upload, void *arg, const int *stop, compact_piece **out, size_t *nout);

/* Close and free pieces. */
void compact_pieces_free(compact_piece *p, size_t n);

#endif

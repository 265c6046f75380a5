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
 * data.  Runs are kept at sizes that grow by more than half going down the
 * stack: whenever a run weighs at most half of all newer runs together, it
 * and every newer run merge into one (sizes below COMPACT_FLOOR_BYTES count
 * as that floor).  A merge rewrites its inputs, so the share sets the
 * trade between bytes rewritten and runs a read may meet; at "no more than
 * all newer runs" (a binary counter) a TPC-B run merged 293-306 MiB in 30
 * s, at half 189 MiB, for 1.5 instead of 2 as the base of the log below --
 * and a run a read need not consult costs it only a key filter test
 * (layer_format.h).
 *
 * The bound (compact_bound).  With no merge due, the own runs weigh, newest
 * first, w1 .. wr with each 2 wk > w1 + .. + w(k-1) (k >= 2): the sums
 * grow by more than half each, so w1 + .. + wr > 1.5^(r-1) * FLOOR; and
 * only w1 and w2 can be the floor rather than bytes (for k >= 3, wk > (w1 +
 * w2) / 2 >= FLOOR), so that sum is at most own bytes + 2 FLOOR.  Hence r
 * <= 1 + log1.5(own bytes / FLOOR + 2), rounded down: 18 runs for 1 GiB, 35
 * for 1 TiB.  A read consults at most one layer per run whose key filter
 * lets the key through, as the pieces of a run have disjoint key ranges: at
 * most the parent's runs at the fork point, those own runs, and
 * COMPACT_LAG_RUNS more.
 *
 * The lag, and why the bound holds at every moment.  Merges run beside the
 * flusher, so flushes land while runs below them are merged.  The store
 * holds a flush back before its commit (and so, through memtable
 * backpressure, the writes) while its run would take the own runs past
 * 1 + log1.5(own bytes / FLOOR + 2) + LAG, or while LAG flushes have landed
 * since the merge in flight picked its runs (compact_flush_fits and
 * store_flush.c); it waits for a merge to end, holding no lock a merge needs.
 * So every state a flush commits is within the bound.  A merge replaces
 * the runs from the oldest one that was due up to the newest: each run
 * below weighed more than half of all newer ones together (else it would
 * have been due) and still does, as the run the merge makes weighs no more than its
 * inputs (one version per key is kept); so the state it picked from,
 * merged, has nothing due, and at most LAG flushes have landed on top of
 * it.  A flush held back always goes on: by the first rule a merge is due
 * (and the flush wakes the compactor), by the second one is in flight.
 * Exceptions: with compaction off nothing is held back (nor bounded), and
 * store_close flushes what is left without waiting (its compactor has
 * stopped): if that leaves a state past the bound, the next mount's reads
 * may consult more layers until its first flush has it merged.
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
#define COMPACT_LAG_RUNS 4                 /* flushes landing while a merge is in flight */

/* Layers [*FIRST, *FIRST + *COUNT) of M (oldest first) are to be merged,
 * by the policy above, for the branch whose own layer keys start with
 * OWN_PREFIX: 1 then, 0 if nothing is due. */
int compact_pick(const manifest *m, const char *own_prefix, size_t *first, size_t *count);

/* The most layers a read of the state M commits may consult, for the
 * branch whose own layer keys start with OWN_PREFIX: the runs of the other
 * layers + 1 + floor(log1.5(own bytes / COMPACT_FLOOR_BYTES + 2)) +
 * COMPACT_LAG_RUNS (see above). */
size_t compact_bound(const manifest *m, const char *own_prefix);

/* 1 if a flushed run on top of M keeps the branch's own runs within
 * 1 + log1.5(own bytes / COMPACT_FLOOR_BYTES + 2) + COMPACT_LAG_RUNS (M's own
 * bytes: the new run's can only raise it), else 0. */
int compact_flush_fits(const manifest *m, const char *own_prefix);

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
 * are left to garbage collection).  GO, if not NULL, is called with ARG
 * before each chunk: it may wait (a merge yielding to foreground work),
 * and a non-zero answer abandons the merge with -ECANCELED. */
typedef int (*compact_go_fn)(void *arg);
int compact_merge(objstore *os, layer *const *in, size_t n, int drop_tombs, size_t piece_bytes, size_t chunk_bytes,
                  compact_upload_fn upload, void *arg, compact_go_fn go, compact_piece **out, size_t *nout);

/* Close and free pieces. */
void compact_pieces_free(compact_piece *p, size_t n);

#endif

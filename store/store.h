/*
 * store.h -- the versioned key-value store of one branch.
 *
 * Writes are atomic batches: each gets the next seq, is appended to the
 * local journal (surviving kill -9 at once, power loss after store_sync)
 * and applied to the memtable.  A full memtable is frozen, written as an
 * immutable delta layer to the object store, and committed by a new
 * manifest generation; then its journal files are dropped.  Reads take the
 * newest version of a key: memtable, frozen memtables, then layers newest
 * first.  The store knows nothing of FUSE or PostgreSQL: it stores the keys
 * of key.h with opaque values.
 */
#ifndef LAKEFS_STORE_H
#define LAKEFS_STORE_H

#include <stddef.h>
#include <stdint.h>
#include "key.h"
#include "manifest.h"
#include "../objstore/objstore.h"

typedef struct store store;

typedef struct store_config {
    objstore *os;                 /* the repository */
    const char *branch;           /* branch name */
    const char *state_dir;        /* local directory for journal and lock (created 0700) */
    size_t memtable_limit;        /* freeze the memtable past this many bytes (0: default) */
    int takeover;                 /* break a lease held by another live daemon or machine */
    int durability_remote;        /* store_sync returns once the batches are in the repository */
    const char *control_path;     /* the daemon's control socket, recorded in the lease (or NULL) */
    int compaction_off;           /* never merge layers (tests of the flush path alone) */
} store_config;

/* Mark OS as a new, empty lakefs repository; -EEXIST if it is one already. */
int store_repo_create(objstore *os);
/* 0 if OS holds a lakefs repository, -ENOENT if not. */
int store_repo_check(objstore *os);
/* Create root branch BRANCH (no parent) whose first state holds one
 * version: KEY = VAL. */
int store_branch_create(objstore *os, const char *branch, const skey *key,
                        const void *val, size_t vlen);

/* A layer's object key is branches/BRANCH/layers/SESSION-MINSEQ-MAXSEQ-
 * RANDOM.layer (hex): BRANCH wrote it, in the mount whose session (the
 * generation it opened with) is SESSION.  Parse KEY into BRANCH (BLEN
 * bytes) and *SESSION; -EINVAL if KEY is not such a key. */
int store_layer_key_parse(const char *key, char *branch, size_t blen, uint64_t *session);
/* A branch's start-up keys are stored as branches/BRANCH/hot/GEN (20
 * digits), GEN the closed generation they go with.  Parse KEY of BRANCH
 * into *GEN; -EINVAL if KEY is not such a key. */
int store_hot_key_gen(const char *branch, const char *key, uint64_t *gen);

/* Open BRANCH for writing: take the local lock, load the manifest, replay
 * the journal.  On failure writes a one-line reason to ERR. */
int store_open(const store_config *cfg, store **out, char *err, size_t errlen);
/* Open generation GEN of BRANCH's manifests as a throw-away overlay: no
 * lock, lease or journal; reads see that state, commits stay in memory
 * (never flushed, gone at store_close), syncs do nothing and
 * store_checkpoint fails with -EROFS.  The repository is written only to
 * pin GEN while the overlay is open (garbage collection keeps it). */
int store_open_snapshot(objstore *os, const char *branch, uint64_t gen, store **out, char *err, size_t errlen);
/* Let snapshot ST's overlay spill to disk: past MEMTABLE_LIMIT bytes in
 * memory (0: the default, as in store_config) its writes go to layers in
 * scratch directory DIR (created now, removed with everything in it at
 * store_close) and are read from there, written by a thread started now;
 * at most 3 memtables stay in memory.  On failure writes a one-line
 * reason to ERR. */
int store_spill(store *st, const char *dir, size_t memtable_limit, char *err, size_t errlen);
/* Foreground work that background merges yield to (a time-travel view's
 * recovery) begins / ends: while any is under way, merges of every store
 * in the process wait between their chunks, unless a flush waits for the
 * merge (the bound on layers per read) or it has waited 60 s. */
void store_yield_begin(void);
void store_yield_end(void);
/* Start the background flusher (call after any fork). */
int store_start(store *st);
/* The mount serving ST is gone and store_close follows: mark the state
 * directory's lock, so a mount of the branch starting meanwhile (umount
 * returns before the last flush) waits for the close instead of refusing. */
void store_unmounting(store *st);
/* Flush everything into layers, commit, drop the journal, free.  Returns
 * 0 or -errno (data not flushed stays in the journal for the next open). */
int store_close(store *st);

/* Newest value of K: copies up to CAP bytes to BUF and sets *VLEN to the
 * full length.  0, -ENOENT (absent or deleted) or -EIO.  A get that reaches
 * the layers counts the layers it consults in store_stats. */
int store_get(store *st, const skey *k, void *buf, size_t cap, size_t *vlen);

/* Value of K in the state manifest M commits (any branch's, any
 * generation; nothing is opened for writing), as store_get: 0, -ENOENT
 * (absent or deleted) or -errno (a layer M names cannot be read). */
int store_peek(objstore *os, const manifest *m, const skey *k, void *buf, size_t cap, size_t *vlen);

/* Call FN for each live key starting with PREFIX, in key order, with its
 * newest value; FN returning non-zero stops the scan and is returned. */
typedef int (*store_scan_fn)(void *arg, const uint8_t *key, size_t klen,
                             const void *val, size_t vlen);
int store_scan(store *st, const uint8_t *prefix, size_t plen,
               store_scan_fn fn, void *arg);
/* The same for the live keys from FROM (FLEN bytes) up to, not including,
 * TO (TLEN bytes): one pass over each source, instead of one lookup per key. */
int store_scan_range(store *st, const uint8_t *from, size_t flen, const uint8_t *to, size_t tlen,
                     store_scan_fn fn, void *arg);

/* An atomic group of puts and deletes, built then committed. */
typedef struct store_batch {
    uint8_t *buf;                 /* journal payload being built */
    size_t len, cap;
    uint32_t nops;
    int err;                      /* first allocation failure */
} store_batch;

void store_batch_init(store_batch *b);
void store_batch_put(store_batch *b, const skey *k, const void *val, size_t vlen);
void store_batch_del(store_batch *b, const skey *k);
/* Where in B the next put or delete starts (for store_batch_put_same). */
size_t store_batch_mark(const store_batch *b);
/* Put K = VAL (VLEN bytes) into B.  If the put at MARK holds the same
 * bytes, the journal record refers to them instead of repeating them (a
 * WAL page and its archive copy go to disk once); the result is the same. */
void store_batch_put_same(store_batch *b, const skey *k, size_t mark, const void *val, size_t vlen);
void store_batch_free(store_batch *b);
/* Apply B atomically (journal, then memtable); B is reset for reuse. */
int store_commit(store *st, store_batch *b);
/* Make every committed batch durable (group commit).  Once another writer
 * has taken the branch over (see store_open's fencing), commits and syncs
 * fail with -EIO: this daemon's writes can no longer become durable. */
int store_sync(store *st);
/* Flush every batch committed so far into layers and commit them: on
 * return manifest generation *GEN holds every batch <= *SEQ (the seq last
 * committed when it was called, or later).  Concurrent commits go on. */
int store_checkpoint(store *st, uint64_t *seq, uint64_t *gen);
/* Have the background flusher commit, soon, a manifest generation holding
 * every batch committed so far, without waiting for it (store_checkpoint
 * waits): a cheap base state for time travel (a small layer of what the
 * memtable holds).  -EROFS for a snapshot, else 0. */
int store_flush_soon(store *st);
/* What was read since the open is read by every open: keep it among the
 * start-up keys, which the next mount fetches first (hotset.h). */
void store_hot_seal(store *st);
/* The branch's server is starting: the keys it reads from now on are the
 * start-up keys (the sealed ones stay). */
void store_hot_restart(store *st);
/* File INO of SIZE bytes was opened: while the start-up keys are recorded,
 * its first pages count as read (the kernel's page cache may answer the
 * reads themselves, and a fresh machine's will not). */
void store_hot_file(store *st, uint64_t ino, uint64_t size);
/* Merge layers as compaction does (compact.h) until no merge is due; the
 * background compactor does the same after every flush.  Returns the
 * merges committed, or -errno. */
int store_compact(store *st);
/* A fresh inode number. */
uint64_t store_alloc_ino(store *st);

/* Counters for tests and benchmarks. */
typedef struct store_stats {
    uint64_t seq;                 /* last committed seq */
    uint64_t manifest_gen;        /* generation of the last committed manifest */
    uint64_t layers;              /* layers in the manifest (a view's: and its overlay's) */
    uint64_t flushes;             /* layers flushed by this mount (a view's: its overlay spilled) */
    uint64_t compactions;         /* merges committed by this mount */
    uint64_t merge_waits;         /* merges that waited for a view's recovery (store_yield_begin) */
    uint64_t memtable_bytes;      /* bytes in active + frozen memtables */
    uint64_t reads;               /* store_gets that reached the layers */
    uint64_t probes;              /* layers they consulted (that may hold the key), in all */
    uint64_t probes_max;          /* most layers one of them consulted */
    uint64_t over_bound;          /* reads that consulted more layers than their layer set's bound */
    uint64_t bound;               /* compact_bound of the current layer set (compact.h) */
} store_stats;
void store_get_stats(store *st, store_stats *s);

#endif

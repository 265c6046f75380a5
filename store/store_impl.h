/*
 * store_impl.h -- what the files of one branch's store share: the store's
 * state (struct store), its layer sets, and the functions one file offers
 * the others.  Private to store*.c; everyone else uses store.h.
 *
 *   store.c         layer sets, the repository marker, batches, commits,
 *                   the journal and the remote journal's queue, fsync
 *   store_read.c    gets, peeks through a manifest, scans
 *   store_flush.c   the flusher and the compactor, manifest commits,
 *                   checkpoints
 *   store_lease.c   the branch lease: one writer per branch
 *   store_hot.c     start-up keys: stored at close, warmed at open
 *   store_open.c    open (replay, fold, layers), snapshots, close, stats
 */
#ifndef LAKEFS_STORE_IMPL_H
#define LAKEFS_STORE_IMPL_H

#include "store.h"
#include "lease.h"
#include "compact.h"
#include "hotset.h"
#include "journal.h"
#include "layer.h"
#include "manifest.h"
#include "memtable.h"

#include <pthread.h>
#include <stdint.h>
#include <time.h>

#define STORE_MEMTABLE_DEFAULT (64u << 20)
#define STORE_MAX_FROZEN 2
#define STORE_FENCE_CHECK_SECONDS 5   /* how often an idle writer checks for a takeover */
#define STORE_RETRY_SECONDS 5         /* wait after a failed flush before the next attempt */
#define STORE_WARM_SLICE 512      /* start-up keys handed to layer_warm at once */
#define STORE_WARM_BYTES (32u << 20)  /* blocks of start-up keys fetched at most */
#define STORE_HOT_FILE_PAGES 16   /* pages of a file opened at start counted as start-up keys */
#define STORE_REPO_MARKER "lakefs.repo"
#define STORE_REPO_CONTENT "lakefs-repository 1\n"

/* A journal payload: seq u64, nops u32, then per op type u8, key length
 * u16, value length u32, key, value.  OP_PUT_SAME's value is the u32
 * offset in the payload of an earlier OP_PUT whose value it takes. */
enum { OP_PUT = 1, OP_DEL = 2, OP_PUT_SAME = 3 };

typedef struct frozen {
    memtable *mt;                 /* immutable from now on */
    uint64_t journal_upto;        /* journal files holding only its batches (and older) */
} frozen;

/* An open layer and the number of layer sets holding it: the last set
 * to let go (a compaction replaced it, readers finished) closes it. */
typedef struct slayer {
    layer *l;
    int sets;                     /* layer sets naming it (atomic) */
} slayer;

/* The layers of the branch, oldest first: replaced as a whole when a layer
 * is added or a compaction replaces some, so a reader holding a reference
 * can walk it without the lock. */
typedef struct layerset {
    int refs;                     /* the store's + readers' (atomic) */
    size_t bound;                 /* most layers a read may consult: compact_bound */
    size_t n;
    slayer *l[];
} layerset;

struct store {
    objstore *os;
    char *branch;
    char *state_dir;
    size_t memtable_limit;
    int lock_fd;                  /* flock'ed state_dir/lock */
    journal *jn;
    pthread_rwlock_t lock;        /* guards everything below */
    memtable *active;
    frozen frozen[STORE_MAX_FROZEN];  /* oldest first */
    int nfrozen;
    layerset *ls;                 /* as in the manifest */
    manifest man;                 /* last committed manifest */
    uint64_t seq;                 /* last committed seq */
    uint64_t next_ino;            /* next inode number to hand out (atomic) */
    pthread_mutex_t flush_mu;     /* serialises flushes (held across uploads) */
    pthread_mutex_t wake_mu;      /* with wake_cv: the flusher sleeps and is woken; */
    pthread_cond_t wake_cv;       /* never held across I/O, so commits never wait on it */
    int kicked;                   /* a memtable was frozen since the flusher looked (wake_mu) */
    uint64_t flush_wanted;        /* store_flush_soon: flush every batch up to this seq (lock) */
    pthread_t flusher;
    int flusher_running, stopping;    /* stopping: atomic, set under wake_mu */
    pthread_t compactor;
    int compactor_running;
    pthread_cond_t compact_cv;    /* with wake_mu: the compactor sleeps and is woken */
    int compact_kicked;           /* a layer was committed since the compactor looked (wake_mu) */
    uint64_t flushes;             /* layers flushed (lock) */
    uint64_t compactions;         /* merges committed (lock) */
    int merging;                  /* a merge has picked its runs and not ended (lock) */
    int merge_flushes;            /* flushes committed since the last merge picked (lock) */
    uint64_t merges_ended;        /* merges ended, committed or not (lock) */
    pthread_cond_t merged_cv;     /* with wake_mu: a flush held back waits for a merge to end */
    int flush_held;               /* a flush waits for a merge: it yields to nothing (atomic) */
    long merge_waited_ms;         /* the running merge's waits for foreground work (compactor only) */
    uint64_t merge_waits;         /* merges that waited for it (atomic) */
    uint64_t reads, probes, probes_max, over_bound;   /* store_stats (atomic) */
    char layer_prefix[128];       /* "branches/NAME/layers/": the branch's own layers */
    char *pin;                    /* snapshot: its pin object (store_pin) */
    pthread_mutex_t compact_mu;   /* one merge at a time (held across it) */
    int compaction_off;           /* store_config.compaction_off */
    int leased;                   /* we hold branches/NAME/lease */
    char *control_path;           /* the daemon's control socket, named in the lease (or NULL) */
    int takeover;                 /* break a live holder's lease at open */
    int fenced;                   /* another writer took over: refuse writes (atomic) */
    int remote;                   /* durability=remote: a sync uploads the batches */
    int snapshot;                 /* store_open_snapshot: writes never reach the repository */
    objstore *spill;              /* snapshot: scratch store its overlay spills layers to (store_spill) */
    uint64_t writer;              /* id of state_dir (its "writer" file) */
    uint64_t session;             /* this mount: the manifest generation it opened with */
    pthread_mutex_t rj_mu;        /* serialises uploads to the remote journal */
    uint64_t rj_synced;           /* every batch <= it is in the bucket (rj_mu) */
    uint8_t *rj_buf;              /* batches not yet uploaded, u32 length + payload each (lock) */
    size_t rj_len, rj_cap;
    uint64_t folded, folded_end;  /* session folded in at open, up to seq: its segments to delete */
    int full;                     /* memtables at their bound: commits wait (atomic) */
    pthread_mutex_t room_mu;      /* with room_cv: commits waiting for room */
    pthread_cond_t room_cv;
    struct timespec full_since;   /* when commits started to wait */
    /* flusher only (flush_mu): a commit of man.gen + 1 whose outcome is
     * unknown (its answer was lost), retried as it is */
    manifest uncertain;           /* gen 0: none */
    layer *uncertain_layer;       /* its new layer, uploaded and open */
    /* a merge to commit (flush_mu): it replaces layers FIRST..FIRST+COUNT-1
     * of the current manifest by PIECES; retried before every commit while
     * its outcome is unknown */
    struct {
        manifest next;            /* gen 0: none */
        size_t first, count;
        compact_piece *pieces;
        size_t npieces;
    } cpend;
    /* start-up keys (hotset.h) */
    hotset *hot;                  /* this mount's recorder (NULL: a snapshot) */
    skey *warm;                   /* the last mount's, fetched as this one starts */
    size_t nwarm;
    layerset *warm_ls;            /* the layers they are looked for in */
    pthread_t warmer;             /* queues their blocks for read-ahead */
    int warmer_running;
    uint64_t warm_gen;            /* generation whose hot object they came from (0: none) */
};


/* ---- store.c ---- */

/* A new layer set with room for N layers (n = 0, one reference). */
layerset *lset_new(size_t n);
/* Append open layer L (now owned by the sets) to S; 0 or -ENOMEM (L closed). */
int lset_add_new(layerset *s, layer *l);
/* Append a layer of another set to S. */
void lset_add(layerset *s, slayer *sl);
/* Take a reference to the current layer set (lock held, shared is enough). */
layerset *lset_hold(store *st);
/* Drop a reference; the last one frees the set, and closes the layers no
 * other set names. */
void lset_release(layerset *s);
/* Upload a finished layer of BRANCH written by mount SESSION; its object
 * key goes to *NAME (malloc'd). */
int store_upload_layer(objstore *os, const char *branch, uint64_t session, const void *buf, size_t len,
                       uint64_t min_seq, uint64_t max_seq, char **name);
/* Apply a journal payload to the active memtable (commit and replay). */
int store_apply(store *st, const uint8_t *p, size_t len);
/* Journal replay callback: apply records newer than the manifest. */
int store_replay(void *arg, const uint8_t *p, size_t len);
/* Freeze the active memtable (caller holds the write lock). */
int store_freeze(store *st);
/* 1 if the active memtable has passed its limit and is to be frozen
 * (caller holds the lock). */
int store_active_full(const store *st);
/* Forget the not yet uploaded batches with seq <= UPTO (lock held). */
void store_rj_drop(store *st, uint64_t upto);
/* Wake commits waiting for room (after a layer was installed, or fencing). */
void store_room_wake(store *st);
/* Seconds from A to B. */
double store_elapsed(const struct timespec *a, const struct timespec *b);

/* ---- store_flush.c ---- */

/* Another writer took the branch over (committed generation GEN, or fenced
 * our remote journal if GEN is 0): refuse every write from now on. */
void store_fence(store *st, uint64_t gen);
/* Forget the commit whose outcome was unknown (flush_mu held). */
void store_uncertain_clear(store *st);
/* Forget the pending merge (flush_mu held); its pieces stay for gc. */
void store_cpend_clear(store *st);
/* Commit the pending merge and install its pieces in place of the layers
 * it replaces (flush_mu held).  0 when done; on an unknown outcome it
 * stays pending for the next commit to retry; -EEXIST fences. */
int store_compact_install(store *st);
/* Background thread: after every committed layer, merge while a merge is
 * due; after a failure, wait for the next layer or STORE_RETRY_SECONDS. */
void *store_compactor(void *arg);
/* Wake merges waiting for foreground work to look again (a store closes,
 * is fenced, or a flush waits for its merge). */
void store_yield_wake(void);
/* Write the oldest frozen memtable as a layer and commit it (flush_mu
 * held); a snapshot's goes to its scratch store instead (store_spill). */
int store_flush_one(store *st);
/* Background thread: flush frozen memtables as they appear; after a failed
 * flush, retry in STORE_RETRY_SECONDS (at once when another memtable is
 * frozen).  Object-store I/O happens with wake_mu released, so a commit
 * that wakes the flusher never waits for an upload. */
void *store_flusher(void *arg);

/* ---- store_lease.c ---- */

/* Take branches/BRANCH/lease with put-if-absent.  A lease left by a dead
 * process of this same boot of this machine (kill -9, crash) is taken
 * over; any other holder is reported in ERR. */
int store_lease_take(store *st, char *err, size_t errlen);
/* Give the lease back (clean unmount). */
void store_lease_release(store *st);

/* ---- store_hot.c ---- */

/* Thread body: fetch and decode the start-up keys stored with generation
 * st->warm_gen (closed, so its close wrote them); none if anything fails. */
void *store_hot_fetch(void *arg);
/* Thread body: have the read-ahead threads bring in the blocks that may
 * hold the last mount's start-up keys, in every layer of the set as the
 * store started (slice by slice of keys in their order, each newest layer
 * first), until done or the store closes: a lookup would go through a
 * key's layers one after the other, a round trip each, where these fetch
 * all of them at once, runs of adjacent blocks in one get -- a few blocks
 * more, far fewer waits.  The blocks land in the block cache (and the disk
 * cache), where the server's reads find them or wait for the fetch already
 * running (layer_read.c). */
void *store_warmer(void *arg);
/* Store this mount's start-up keys beside generation GEN, about to be
 * committed closed, and remove the ones this mount started from.  A
 * failure costs only the next start's prefetch. */
void store_hot_save(store *st, uint64_t gen);

#endif

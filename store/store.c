/*
 * store.c -- one branch's versioned store: batches, journal, memtables,
 * layers and manifests put together.
 *
 * Concurrency: a writer-preferring rwlock guards the memtables, the layer
 * set and the manifest.  Commits take it exclusively for the journal
 * append and the memtable insert only; readers share it to look into the
 * memtables and to take a reference to the current layer set, and read
 * layer blocks after releasing it: a block may have to come from the
 * repository, which can take seconds (retries) when it is slow or down,
 * and a writer queued behind that reader would stall every commit.  Layers
 * are immutable and stay open until store_close; a layer set (the array of
 * them) is replaced, never changed, when the flusher installs a layer.
 * The journal append happens under the lock so that journal order is seq
 * order.
 *
 * Versions: every read wants the newest version of a key, and the states
 * one can go back to are manifest generations (a fork, a snapshot), never a
 * seq inside a layer.  So memtables keep one version per key (the newest:
 * mt_keep_latest) and layers hold one: a page PostgreSQL writes a thousand
 * times between flushes -- the WAL's last, partly filled page, an inode's
 * attributes, the recorded WAL position -- costs memory and layer bytes
 * once.  The journal still has every batch.
 *
 * Flushing: when the active memtable passes its limit the committing
 * thread freezes it (and rotates the journal) and wakes the flusher, which
 * writes the layer, uploads it with put-if-absent (priming the local disk
 * cache with it, so reading it back needs no download), commits manifest
 * generation G+1 (put-if-absent again: the commit point, and the fence
 * against a second writer), installs the layer and drops the journal files
 * the frozen memtable came from.  A crash anywhere in between leaves either
 * an orphan layer (harmless, collected later) or a journal replayed on the
 * next open, whose records at or below the manifest's seq are skipped.
 *
 * Who may replay what: every manifest names the state directory that
 * committed it (writer, a random id kept in STATE_DIR/writer) and the mount
 * (session = the generation that mount opened with).  Opening replays the
 * local journal only if this state directory is the branch's last writer;
 * otherwise its journal predates another writer's commits and is moved
 * aside unread.  The previous session's remote journal (durability=remote,
 * journal_remote.h) is then claimed -- which fences that session -- and
 * folded in as a layer before the first write is served, so a manifest
 * never needs more than one older session's chain (its "inherit").
 *
 * durability=remote: commits also queue their journal payload; store_sync
 * uploads the queue as one segment of this session's chain (after the
 * local fdatasync, so the local journal always holds at least as much).
 * Batches written into a committed layer leave the queue unuploaded.
 *
 * Object-store outages: commits and fsyncs need only the local journal, so
 * they go on while uploads fail; the flusher retries every few seconds.  A
 * commit of G+1 whose answer was lost may have landed: the flusher then
 * retries that very manifest, and a G+1 holding exactly it (it names a
 * layer only this daemon knows) is its own commit, not another writer's.
 * Memory is bounded: with STORE_MAX_FROZEN memtables waiting for upload
 * and the active one full, commits wait (backpressure) until a layer is
 * committed; they never fail for an unreachable repository.
 *
 * Read amplification: each layer set carries compact_bound of its manifest
 * (compact.h), and store_get counts the layers it consults against it.  A
 * flush that would take the branch past the bound is held back before
 * its commit (store_flush_hold): flush_mu is released while it waits, as
 * the compactor commits under it, and the merge ending wakes it.
 *
 * Branching from a mounted branch: store_checkpoint freezes and flushes
 * synchronously, so that a committed generation holds every batch up to
 * the current seq (the daemon's control socket asks for it, and the new
 * branch copies that generation).  The lease names the control socket; a
 * mount checks for a branch's deletion marker after taking the lease (the
 * other half of the protocol is in branch.c).
 */
#include "store.h"
#include "journal.h"
#include "journal_remote.h"
#include "layer.h"
#include "manifest.h"
#include "memtable.h"
#include "compact.h"
#include "failpoint.h"
#include "branch.h"
#include "dirlock.h"
#include "hotset.h"

#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define STORE_MEMTABLE_DEFAULT (64u << 20)
#define STORE_MAX_FROZEN 4
#define STORE_FENCE_CHECK_SECONDS 5   /* how often an idle writer checks for a takeover */
#define STORE_RETRY_SECONDS 5         /* wait after a failed flush before the next attempt */
#define STORE_WARM_SLICE 512      /* start-up keys handed to layer_warm at once */
#define STORE_HOT_FILE_PAGES 16   /* pages of a file opened at start counted as start-up keys */
#define STORE_REPO_MARKER "lakefs.repo"
#define STORE_REPO_CONTENT "lakefs-repository 1\n"

enum { OP_PUT = 1, OP_DEL = 2 };

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
    int snapshot;                 /* store_open_snapshot: writes stay in memory, never flushed */
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

/* ---- layer sets ---- */

/* A new layer set with room for N layers (n = 0, one reference). */
static layerset *lset_new(size_t n)
{
    layerset *s = calloc(1, sizeof *s + (n ? n : 1) * sizeof(slayer *));
    if (s) s->refs = 1;
    return s;
}

/* Append open layer L (now owned by the sets) to S; 0 or -ENOMEM (L closed). */
static int lset_add_new(layerset *s, layer *l)
{
    slayer *sl = malloc(sizeof *sl);
    if (!sl) { layer_close(l); return -ENOMEM; }
    *sl = (slayer){ l, 1 };
    s->l[s->n++] = sl;
    return 0;
}

/* Append a layer of another set to S. */
static void lset_add(layerset *s, slayer *sl)
{
    __atomic_add_fetch(&sl->sets, 1, __ATOMIC_RELAXED);
    s->l[s->n++] = sl;
}

/* Take a reference to the current layer set (lock held, shared is enough). */
static layerset *lset_hold(store *st)
{
    __atomic_add_fetch(&st->ls->refs, 1, __ATOMIC_RELAXED);
    return st->ls;
}

/* Drop a reference; the last one frees the set, and closes the layers no
 * other set names. */
static void lset_release(layerset *s)
{
    if (!s || __atomic_sub_fetch(&s->refs, 1, __ATOMIC_ACQ_REL) != 0) return;
    for (size_t i = 0; i < s->n; i++)
        if (__atomic_sub_fetch(&s->l[i]->sets, 1, __ATOMIC_ACQ_REL) == 0) {
            layer_close(s->l[i]->l);
            free(s->l[i]);
        }
    free(s);
}

/* ---- repository ---- */

int store_repo_create(objstore *os)
{
    return os_put_if_absent(os, STORE_REPO_MARKER, STORE_REPO_CONTENT, strlen(STORE_REPO_CONTENT));
}

int store_repo_check(objstore *os)
{
    void *buf; size_t len;
    int rc = os_get(os, STORE_REPO_MARKER, 0, UINT64_MAX, &buf, &len);
    if (rc) return rc;
    rc = (len == strlen(STORE_REPO_CONTENT) && !memcmp(buf, STORE_REPO_CONTENT, len)) ? 0 : -ENOENT;
    free(buf);
    return rc;
}

int store_layer_key_parse(const char *key, char *branch, size_t blen, uint64_t *session)
{
    const char *l = strstr(key, "/layers/");
    if (strncmp(key, "branches/", 9) || !l || (size_t)(l - key - 9) >= blen || l == key + 9) return -EINVAL;
    const char *p = l + 8;
    /* SESSION-MINSEQ-MAXSEQ-RANDOM.layer: 16, 16, 16 and 8 hex digits */
    static const size_t len[] = { 16, 16, 16, 8 };
    for (int f = 0; f < 4; f++) {
        for (size_t i = 0; i < len[f]; i++)
            if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f'))) return -EINVAL;
        if (p[len[f]] != (f < 3 ? '-' : '.')) return -EINVAL;
        p += len[f] + 1;
    }
    if (strcmp(p, "layer")) return -EINVAL;
    memcpy(branch, key + 9, (size_t)(l - key - 9));
    branch[l - key - 9] = 0;
    *session = strtoull(l + 8, NULL, 16);
    return 0;
}

/* Upload a finished layer of BRANCH written by mount SESSION; its object
 * key goes to *NAME (malloc'd). */
static int store_upload_layer(objstore *os, const char *branch, uint64_t session, const void *buf, size_t len,
                              uint64_t min_seq, uint64_t max_seq, char **name)
{
    for (int attempt = 0; attempt < 8; attempt++) {
        uint32_t rnd;
        if (getentropy(&rnd, sizeof rnd) < 0) return -errno;
        char key[512];
        snprintf(key, sizeof key, "branches/%s/layers/%016" PRIx64 "-%016" PRIx64 "-%016" PRIx64 "-%08x.layer",
                 branch, session, min_seq, max_seq, rnd);
        int rc = failpoint("layer-upload-before");
        if (!rc) rc = os_put_if_absent(os, key, buf, len);
        if (rc == -EEXIST) continue;
        if (!rc) rc = failpoint("layer-upload-after");
        if (rc) return rc;
        if (!(*name = strdup(key))) return -ENOMEM;
        return 0;
    }
    return -EEXIST;
}

int store_branch_create(objstore *os, const char *branch, const skey *key,
                        const void *val, size_t vlen)
{
    manifest m = {0};
    if (manifest_load_latest(os, branch, &m) == 0) { manifest_free(&m); return -EEXIST; }
    branch_meta meta = { .created = (int64_t)time(NULL) };   /* a root: no parent */
    int mrc = branch_meta_put(os, branch, &meta);
    if (mrc) return mrc;
    layer_writer *w = layer_writer_new();
    if (!w) return -ENOMEM;
    void *buf = NULL; size_t len = 0; char *name = NULL;
    int rc = layer_writer_add(w, key->b, key->len, 1, 0, val, vlen);
    if (!rc) rc = layer_writer_finish(w, &buf, &len);
    layer_writer_free(w);
    if (!rc) rc = store_upload_layer(os, branch, 0, buf, len, 1, 1, &name);
    free(buf);
    if (rc) return rc;
    m = (manifest){ .gen = 1, .seq = 1, .time = (uint64_t)time(NULL), .max_ino = key->b[0] == KEY_INODE ? key_get64(key->b + 1) : 0 };
    rc = manifest_add_layer(&m, name, 1, 1, len);
    if (!rc) rc = manifest_commit(os, branch, &m);
    free(name);
    manifest_free(&m);
    return rc;
}

/* ---- batches: the journal payload is built directly ---- */

void store_batch_init(store_batch *b)
{
    memset(b, 0, sizeof *b);
    b->len = 12;                  /* seq u64 + nops u32, filled at commit */
}

/* Make room for N more bytes in B. */
static int store_batch_reserve(store_batch *b, size_t n)
{
    if (b->err) return -1;
    if (b->len + n <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n) cap *= 2;
    uint8_t *nb = realloc(b->buf, cap);
    if (!nb) { b->err = -ENOMEM; return -1; }
    b->buf = nb; b->cap = cap;
    return 0;
}

/* Append one op to B. */
static void store_batch_op(store_batch *b, uint8_t type, const skey *k, const void *val, size_t vlen)
{
    if (store_batch_reserve(b, 7 + k->len + vlen)) return;
    uint8_t *p = b->buf + b->len;
    uint16_t kl = k->len; uint32_t vl = (uint32_t)vlen;
    p[0] = type; memcpy(p + 1, &kl, 2); memcpy(p + 3, &vl, 4);
    memcpy(p + 7, k->b, k->len);
    if (vlen) memcpy(p + 7 + k->len, val, vlen);
    b->len += 7 + k->len + vlen;
    b->nops++;
}

void store_batch_put(store_batch *b, const skey *k, const void *val, size_t vlen)
{
    store_batch_op(b, OP_PUT, k, val, vlen);
}

void store_batch_del(store_batch *b, const skey *k)
{
    store_batch_op(b, OP_DEL, k, NULL, 0);
}

void store_batch_free(store_batch *b)
{
    free(b->buf);
    memset(b, 0, sizeof *b);
}

/* Apply a journal payload to the active memtable (commit and replay). */
static int store_apply(store *st, const uint8_t *p, size_t len)
{
    if (len < 12) return -EIO;
    uint64_t seq; uint32_t nops;
    memcpy(&seq, p, 8); memcpy(&nops, p + 8, 4);
    size_t off = 12;
    for (uint32_t i = 0; i < nops; i++) {
        if (len - off < 7) return -EIO;
        uint16_t kl; uint32_t vl;
        memcpy(&kl, p + off + 1, 2); memcpy(&vl, p + off + 3, 4);
        uint8_t type = p[off];
        if (kl == 0 || kl > KEY_MAX || len - off - 7 < (size_t)kl + vl) return -EIO;
        const uint8_t *key = p + off + 7;
        int rc = mt_put(st->active, key, kl, seq, type == OP_DEL, key + kl, vl);
        if (rc) return rc;
        if (type == OP_PUT && key[0] == KEY_INODE && kl == 9) {
            uint64_t ino = key_get64(key + 1);
            if (ino >= st->next_ino) st->next_ino = ino + 1;
        }
        off += 7 + kl + vl;
    }
    if (seq > st->seq) st->seq = seq;
    return 0;
}

/* Journal replay callback: apply records newer than the manifest. */
static int store_replay(void *arg, const uint8_t *p, size_t len)
{
    store *st = arg;
    uint64_t seq;
    if (len < 12) return -EIO;
    memcpy(&seq, p, 8);
    if (seq <= st->man.seq) return 0;
    return store_apply(st, p, len);
}

/* Freeze the active memtable (caller holds the write lock). */
static int store_freeze(store *st)
{
    if (mt_bytes(st->active) == 0 || st->nfrozen == STORE_MAX_FROZEN) return 0;
    memtable *fresh = mt_new();
    if (!fresh) return -ENOMEM;
    mt_keep_latest(fresh);
    uint64_t upto;
    int rc = journal_rotate(st->jn, &upto);
    if (rc) { mt_free(fresh); return rc; }
    st->frozen[st->nfrozen++] = (frozen){ st->active, upto };
    st->active = fresh;
    return 0;
}

/* Make room for N more bytes of not yet uploaded batches (lock held). */
static int store_rj_reserve(store *st, size_t n)
{
    if (st->rj_len + n <= st->rj_cap) return 0;
    size_t cap = st->rj_cap ? st->rj_cap : 4096;
    while (cap < st->rj_len + n) cap *= 2;
    uint8_t *nb = realloc(st->rj_buf, cap);
    if (!nb) return -ENOMEM;
    st->rj_buf = nb;
    st->rj_cap = cap;
    return 0;
}

/* Forget the not yet uploaded batches with seq <= UPTO (lock held). */
static void store_rj_drop(store *st, uint64_t upto)
{
    size_t off = 0;
    if (!st->rj_len) return;
    while (off < st->rj_len) {
        uint32_t rl; uint64_t seq;
        memcpy(&rl, st->rj_buf + off, 4);
        memcpy(&seq, st->rj_buf + off + 4, 8);
        if (seq > upto) break;
        off += 4 + rl;
    }
    memmove(st->rj_buf, st->rj_buf + off, st->rj_len - off);
    st->rj_len -= off;
}

/* Wake commits waiting for room (after a layer was installed, or fencing). */
static void store_room_wake(store *st)
{
    pthread_mutex_lock(&st->room_mu);
    pthread_cond_broadcast(&st->room_cv);
    pthread_mutex_unlock(&st->room_mu);
}

/* Wait while the memtables are at their bound; -EIO if fenced meanwhile. */
static int store_wait_room(store *st)
{
    pthread_mutex_lock(&st->room_mu);
    while (__atomic_load_n(&st->full, __ATOMIC_ACQUIRE) && !__atomic_load_n(&st->fenced, __ATOMIC_SEQ_CST))
        pthread_cond_wait(&st->room_cv, &st->room_mu);
    pthread_mutex_unlock(&st->room_mu);
    return __atomic_load_n(&st->fenced, __ATOMIC_SEQ_CST) ? -EIO : 0;
}

/* Seconds from A to B. */
static double store_elapsed(const struct timespec *a, const struct timespec *b)
{
    return (double)(b->tv_sec - a->tv_sec) + (double)(b->tv_nsec - a->tv_nsec) / 1e9;
}

int store_commit(store *st, store_batch *b)
{
    if (b->err) return b->err;
    if (__atomic_load_n(&st->fenced, __ATOMIC_SEQ_CST)) return -EIO;
    if (b->len > UINT32_MAX) return -EFBIG;
    if (__atomic_load_n(&st->full, __ATOMIC_ACQUIRE) && store_wait_room(st)) return -EIO;
    pthread_rwlock_wrlock(&st->lock);
    uint64_t seq = st->seq + 1;
    memcpy(b->buf, &seq, 8);
    memcpy(b->buf + 8, &b->nops, 4);
    int rc = st->remote ? store_rj_reserve(st, 4 + b->len) : 0;
    if (!rc && !st->snapshot) rc = journal_append(st->jn, b->buf, b->len);
    if (!rc) rc = store_apply(st, b->buf, b->len);
    if (!rc && st->remote) {      /* queued for the next sync's upload */
        uint32_t rl = (uint32_t)b->len;
        memcpy(st->rj_buf + st->rj_len, &rl, 4);
        memcpy(st->rj_buf + st->rj_len + 4, b->buf, b->len);
        st->rj_len += 4 + b->len;
    }
    int wake = 0;
    if (!rc && !st->snapshot && mt_bytes(st->active) > st->memtable_limit) {
        if (st->nfrozen < STORE_MAX_FROZEN) {
            rc = store_freeze(st);
            wake = 1;
        } else if (!__atomic_load_n(&st->full, __ATOMIC_RELAXED)) {
            /* every memtable waits for the repository: later commits wait */
            __atomic_store_n(&st->full, 1, __ATOMIC_RELEASE);
            clock_gettime(CLOCK_MONOTONIC, &st->full_since);
            size_t bytes = mt_bytes(st->active);
            for (int i = 0; i < st->nfrozen; i++) bytes += mt_bytes(st->frozen[i].mt);
            fprintf(stderr, "lakefs: branch %s: %zu MiB in %d memtables wait for the object store; "
                    "writes wait until a layer is uploaded\n", st->branch, bytes >> 20, st->nfrozen + 1);
        }
    }
    pthread_rwlock_unlock(&st->lock);
    if (wake) {
        pthread_mutex_lock(&st->wake_mu);
        st->kicked = 1;
        pthread_cond_signal(&st->wake_cv);
        pthread_mutex_unlock(&st->wake_mu);
    }
    b->len = 12; b->nops = 0;
    return rc;
}

static void store_fence(store *st, uint64_t gen);

/* durability=remote: upload every batch committed so far as one segment
 * of this session's remote journal.  One upload at a time; the syncs that
 * queue behind it find their batches carried by the one before them, or
 * all share the next upload: group commit.  Cost model: an upload is a
 * round trip (a PUT, 10-50 ms to a real bucket), so n concurrent fsyncs
 * cost about two round trips, not n. */
static int store_sync_remote(store *st)
{
    pthread_rwlock_rdlock(&st->lock);
    uint64_t target = st->seq;    /* what this sync must see uploaded */
    pthread_rwlock_unlock(&st->lock);
    pthread_mutex_lock(&st->rj_mu);
    if (st->rj_synced >= target) {   /* the upload it waited behind carried it */
        pthread_mutex_unlock(&st->rj_mu);
        return 0;
    }
    pthread_rwlock_rdlock(&st->lock);
    size_t len = st->rj_len;
    uint8_t *recs = len ? malloc(len) : NULL;
    if (recs) memcpy(recs, st->rj_buf, len);
    uint64_t last = st->seq;
    pthread_rwlock_unlock(&st->lock);
    int rc = len && !recs ? -ENOMEM : 0;
    size_t off = 0;
    while (!rc && off < len) {
        uint64_t first, taken = 0;
        memcpy(&first, recs + off + 4, 8);
        rc = jremote_put(st->os, st->branch, st->session, first, last, recs + off, len - off, &taken);
        if (rc == -EEXIST) {      /* an attempt that failed did store batches FIRST..TAKEN */
            rc = 0;
            while (off < len) {
                uint32_t rl; uint64_t seq;
                memcpy(&rl, recs + off, 4);
                memcpy(&seq, recs + off + 4, 8);
                if (seq > taken) break;
                off += 4 + rl;
            }
            continue;
        }
        if (rc == -ESTALE) {
            store_fence(st, 0);
            rc = -EIO;
        } else if (rc) {
            fprintf(stderr, "lakefs: branch %s: uploading the journal (seq %" PRIu64 "-%" PRIu64 ") failed: %s; "
                    "fsync fails until the repository is reachable\n", st->branch, first, last, strerror(-rc));
            rc = -EIO;
        }
        break;
    }
    if (!rc && len) {
        pthread_rwlock_wrlock(&st->lock);
        store_rj_drop(st, last);
        pthread_rwlock_unlock(&st->lock);
    }
    if (!rc) st->rj_synced = last;
    free(recs);
    pthread_mutex_unlock(&st->rj_mu);
    return rc;
}

int store_sync(store *st)
{
    if (__atomic_load_n(&st->fenced, __ATOMIC_SEQ_CST)) return -EIO;
    if (st->snapshot) return 0;   /* nothing of an overlay outlives the mount */
    int rc = journal_sync(st->jn);
    if (!rc && st->remote) rc = store_sync_remote(st);
    return rc;
}

uint64_t store_alloc_ino(store *st)
{
    pthread_rwlock_wrlock(&st->lock);
    uint64_t ino = st->next_ino++;
    pthread_rwlock_unlock(&st->lock);
    return ino;
}

/* ---- reads ---- */

/* Count a read that consulted PROBES layers of set LS. */
static void store_count_read(store *st, const layerset *ls, uint64_t probes)
{
    __atomic_add_fetch(&st->reads, 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&st->probes, probes, __ATOMIC_RELAXED);
    uint64_t max = __atomic_load_n(&st->probes_max, __ATOMIC_RELAXED);
    while (probes > max &&
           !__atomic_compare_exchange_n(&st->probes_max, &max, probes, 1, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
        ;                         /* MAX reloaded: another read raised it */
    if (probes > ls->bound) __atomic_add_fetch(&st->over_bound, 1, __ATOMIC_RELAXED);
}

/* Copy a found value out to the caller. */
static void store_copy_out(const void *val, size_t vlen, void *buf, size_t cap, size_t *outlen)
{
    if (vlen) memcpy(buf, val, vlen < cap ? vlen : cap);
    *outlen = vlen;
}

/* Newest version of K in layer L, copied out as store_get does: 0, -ENOENT
 * (a deletion), 1 if L has no version of K, or -EIO. */
static int store_layer_get(layer *l, const skey *k, void *buf, size_t cap, size_t *vlen)
{
    int tomb; void *val = NULL; size_t len; uint64_t seq;
    int found = layer_get(l, k->b, k->len, UINT64_MAX, &tomb, &val, &len, &seq);
    if (found <= 0) return found < 0 ? found : 1;
    if (tomb) return -ENOENT;
    store_copy_out(val, len, buf, cap, vlen);
    free(val);
    return 0;
}

/* store_get without recording K as a start-up key. */
static int store_lookup(store *st, const skey *k, void *buf, size_t cap, size_t *vlen)
{
    int rc = -ENOENT;
    pthread_rwlock_rdlock(&st->lock);
    const mt_version *v = mt_get(st->active, k->b, k->len, UINT64_MAX);
    for (int i = st->nfrozen - 1; !v && i >= 0; i--)
        v = mt_get(st->frozen[i].mt, k->b, k->len, UINT64_MAX);
    if (v) {
        if (!v->tomb) { store_copy_out(v->val, v->vlen, buf, cap, vlen); rc = 0; }
        pthread_rwlock_unlock(&st->lock);
        return rc;
    }
    /* the layers as of this moment, read without the lock */
    layerset *ls = lset_hold(st);
    pthread_rwlock_unlock(&st->lock);
    rc = 1;
    size_t probes = 0;
    for (size_t i = ls->n; i-- > 0 && rc == 1;)
        if (layer_covers(ls->l[i]->l, k->b, k->len)) {
            probes++;
            rc = store_layer_get(ls->l[i]->l, k, buf, cap, vlen);
        }
    store_count_read(st, ls, probes);
    lset_release(ls);
    return rc == 1 ? -ENOENT : rc;
}

int store_get(store *st, const skey *k, void *buf, size_t cap, size_t *vlen)
{
    if (st->hot) hotset_note(st->hot, k->b, k->len);
    return store_lookup(st, k, buf, cap, vlen);
}

int store_peek(objstore *os, const manifest *m, const skey *k, void *buf, size_t cap, size_t *vlen)
{
    int rc = 1;
    for (size_t i = m->nlayers; i-- > 0 && rc == 1;) {   /* newest first: usually one layer opened */
        layer *l;
        if ((rc = layer_open_sized(os, m->layers[i].key, m->layers[i].size, &l))) {
            if (rc == -ENOENT) {  /* not "no such key": the state is incomplete */
                fprintf(stderr, "lakefs: layer %s named by manifest generation %" PRIu64 " is missing\n",
                        m->layers[i].key, m->gen);
                rc = -EIO;
            }
            break;
        }
        rc = store_layer_get(l, k, buf, cap, vlen);
        layer_close(l);
    }
    return rc == 1 ? -ENOENT : rc;
}

typedef struct scan_ctx {
    memtable *result;             /* newest version per key gathered so far */
    const uint8_t *prefix;        /* keys must start with it (plen 0: any) */
    size_t plen;
    const uint8_t *to;            /* ... and sort before it (NULL: no end) */
    size_t tlen;
} scan_ctx;

/* 1 if KEY lies past the scan's keys. */
static int store_scan_past(const scan_ctx *c, const uint8_t *key, size_t klen)
{
    if (klen < c->plen || (c->plen && memcmp(key, c->prefix, c->plen))) return 1;
    if (!c->to) return 0;
    int cmp = memcmp(key, c->to, klen < c->tlen ? klen : c->tlen);
    return cmp > 0 || (cmp == 0 && klen >= c->tlen);
}

/* Gather a memtable key into the scan result while it is the scan's
 * (sources come newest first: a key already gathered is kept). */
static int store_scan_mt(void *arg, const uint8_t *key, size_t klen, const mt_version *v)
{
    scan_ctx *c = arg;
    if (store_scan_past(c, key, klen)) return 1;
    if (mt_get(c->result, key, klen, UINT64_MAX)) return 0;
    return mt_put(c->result, key, klen, v->seq, v->tomb, v->val, v->vlen);
}

/* Gather a layer key into the scan result unless a newer source had it. */
static int store_scan_layer(void *arg, const uint8_t *key, size_t klen, uint64_t seq,
                            int tomb, const void *val, size_t vlen)
{
    scan_ctx *c = arg;
    if (c->to && store_scan_past(c, key, klen)) return 1;
    if (mt_get(c->result, key, klen, UINT64_MAX)) return 0;
    return mt_put(c->result, key, klen, seq, tomb, val, vlen);
}

typedef struct scan_out {
    store_scan_fn fn;
    void *arg;
} scan_out;

/* Hand live keys of the scan result to the caller. */
static int store_scan_emit(void *arg, const uint8_t *key, size_t klen, const mt_version *v)
{
    scan_out *o = arg;
    if (v->tomb) return 0;
    return o->fn(o->arg, key, klen, v->val, v->vlen);
}

/* The scan of C's keys from FROM (FLEN bytes) on. */
static int store_scan_run(store *st, scan_ctx *c, const uint8_t *from, size_t flen, store_scan_fn fn, void *arg)
{
    if (!c->result) return -ENOMEM;
    if (st->hot) hotset_note(st->hot, from, flen);   /* warming it fetches the scan's first block */
    /* newest first: the memtables under the lock, then the layers as of
     * that moment without it (their blocks may come from the repository) */
    pthread_rwlock_rdlock(&st->lock);
    int rc = mt_iterate(st->active, from, flen, store_scan_mt, c);
    for (int i = st->nfrozen - 1; i >= 0 && rc >= 0; i--)
        rc = mt_iterate(st->frozen[i].mt, from, flen, store_scan_mt, c);
    layerset *ls = lset_hold(st);
    pthread_rwlock_unlock(&st->lock);
    for (size_t i = ls->n; i-- > 0 && rc >= 0;)
        rc = c->to ? layer_scan_from(ls->l[i]->l, from, flen, UINT64_MAX, store_scan_layer, c)
                   : layer_scan(ls->l[i]->l, from, flen, UINT64_MAX, store_scan_layer, c);
    lset_release(ls);
    if (rc >= 0) {
        scan_out o = { fn, arg };
        rc = mt_iterate(c->result, NULL, 0, store_scan_emit, &o);
    }
    mt_free(c->result);
    return rc;
}

int store_scan(store *st, const uint8_t *prefix, size_t plen, store_scan_fn fn, void *arg)
{
    scan_ctx c = { mt_new(), prefix, plen, NULL, 0 };
    return store_scan_run(st, &c, prefix, plen, fn, arg);
}

int store_scan_range(store *st, const uint8_t *from, size_t flen, const uint8_t *to, size_t tlen,
                     store_scan_fn fn, void *arg)
{
    scan_ctx c = { mt_new(), NULL, 0, to, tlen };
    return store_scan_run(st, &c, from, flen, fn, arg);
}

/* ---- flushing ---- */

typedef struct build_ctx {
    layer_writer *w;
    int rc;
} build_ctx;

/* Write one memtable key, its newest version (the only one kept), into
 * the layer. */
static int store_build_key(void *arg, const uint8_t *key, size_t klen, const mt_version *v)
{
    build_ctx *c = arg;
    return layer_writer_add(c->w, key, klen, v->seq, v->tomb, v->val, v->vlen);
}

/* Another writer took the branch over (committed generation GEN, or fenced
 * our remote journal if GEN is 0): refuse every write from now on. */
static void store_fence(store *st, uint64_t gen)
{
    if (__atomic_exchange_n(&st->fenced, 1, __ATOMIC_SEQ_CST)) return;
    pthread_mutex_lock(&st->wake_mu);   /* a flush held back for a merge goes on, to fail */
    pthread_cond_broadcast(&st->merged_cv);
    pthread_mutex_unlock(&st->wake_mu);
    if (gen)
        fprintf(stderr, "lakefs: branch %s: manifest generation %" PRIu64 " was committed by another writer "
                "(a takeover); this daemon lost the branch and fails every write and fsync from now on\n", st->branch, gen);
    else
        fprintf(stderr, "lakefs: branch %s: another writer fenced this daemon's remote journal (a takeover); "
                "this daemon lost the branch and fails every write and fsync from now on\n", st->branch);
    store_room_wake(st);
}

/* Forget the commit whose outcome was unknown (flush_mu held). */
static void store_uncertain_clear(store *st)
{
    manifest_free(&st->uncertain);
    memset(&st->uncertain, 0, sizeof st->uncertain);
    if (st->uncertain_layer) layer_close(st->uncertain_layer);
    st->uncertain_layer = NULL;
}

/* Write frozen memtable FZ as a layer, upload it and open it; the manifest
 * committing it (generation man.gen + 1) goes to *NEXT, the layer to *L. */
static int store_build_layer(store *st, const frozen *fz, manifest *next, layer **l)
{
    build_ctx c = { layer_writer_new(), 0 };
    if (!c.w) return -ENOMEM;
    void *buf = NULL; size_t len = 0; char *name = NULL;
    int rc = mt_iterate(fz->mt, NULL, 0, store_build_key, &c);
    if (!rc) rc = layer_writer_finish(c.w, &buf, &len);
    layer_writer_free(c.w);
    uint64_t min_seq = mt_min_seq(fz->mt), max_seq = mt_max_seq(fz->mt);
    if (!rc) rc = store_upload_layer(st->os, st->branch, st->session, buf, len, min_seq, max_seq, &name);
    if (!rc) rc = layer_open_uploaded(st->os, name, buf, len, l);
    free(buf);
    if (!rc) {
        next->gen = st->man.gen + 1;
        next->seq = max_seq;
        next->writer = st->writer;
        next->session = st->session;
        next->time = (uint64_t)time(NULL);
        pthread_rwlock_rdlock(&st->lock);
        next->max_ino = st->next_ino - 1;
        pthread_rwlock_unlock(&st->lock);
        for (size_t i = 0; i < st->man.nlayers && !rc; i++) {
            manifest_layer *ml = &st->man.layers[i];
            rc = manifest_add_layer(next, ml->key, ml->min_seq, ml->max_seq, ml->size);
        }
        if (!rc) rc = manifest_add_layer(next, name, min_seq, max_seq, len);
        if (rc) { layer_close(*l); *l = NULL; manifest_free(next); }
    }
    if (rc)
        fprintf(stderr, "lakefs: branch %s: writing the layer of seq %" PRIu64 "-%" PRIu64 " failed: %s "
                "(data stays in the journal)\n", st->branch, min_seq, max_seq, strerror(-rc));
    free(name);
    return rc;
}

/* Commit NEXT; -EEXIST only when another writer holds its generation. */
static int store_commit_manifest(store *st, const manifest *next)
{
    int rc = manifest_commit(st->os, st->branch, next);
    if (rc == -EEXIST) {
        /* ours, from an attempt whose answer was lost? it names our new layer */
        int mine = manifest_matches(st->os, st->branch, next);
        rc = mine == 1 ? 0 : mine < 0 ? mine : -EEXIST;
        if (mine == 1)
            fprintf(stderr, "lakefs: branch %s: manifest generation %" PRIu64 " is our own commit, "
                    "whose answer was lost\n", st->branch, next->gen);
    }
    return rc;
}

/* ---- compaction (compact.h): merged runs committed as new generations ---- */

/* Forget the pending merge (flush_mu held); its pieces stay for gc. */
static void store_cpend_clear(store *st)
{
    manifest_free(&st->cpend.next);
    compact_pieces_free(st->cpend.pieces, st->cpend.npieces);
    memset(&st->cpend, 0, sizeof st->cpend);
}

/* Commit the pending merge and install its pieces in place of the layers
 * it replaces (flush_mu held).  0 when done; on an unknown outcome it
 * stays pending for the next commit to retry; -EEXIST fences. */
static int store_compact_install(store *st)
{
    int rc = store_commit_manifest(st, &st->cpend.next);
    if (rc == -EEXIST) {
        store_fence(st, st->cpend.next.gen);
        store_cpend_clear(st);
        return rc;
    }
    if (rc) {
        fprintf(stderr, "lakefs: branch %s: committing compacted generation %" PRIu64 " failed: %s (retried)\n",
                st->branch, st->cpend.next.gen, strerror(-rc));
        return rc;
    }
    size_t first = st->cpend.first, count = st->cpend.count, np = st->cpend.npieces;
    pthread_rwlock_rdlock(&st->lock);
    size_t n = st->ls->n;
    pthread_rwlock_unlock(&st->lock);
    layerset *ls = lset_new(n - count + np);
    slayer **sl = calloc(np ? np : 1, sizeof *sl);
    if (ls) ls->bound = compact_bound(&st->cpend.next, st->layer_prefix);
    for (size_t i = 0; sl && i < np; i++)
        if (!(sl[i] = malloc(sizeof **sl))) { while (i--) free(sl[i]); free(sl); sl = NULL; }
    if (!ls || !sl) {
        /* committed but not installed: this mount cannot go on consistently */
        free(ls);
        free(sl);
        store_fence(st, st->cpend.next.gen);
        store_cpend_clear(st);
        return -ENOMEM;
    }
    pthread_rwlock_wrlock(&st->lock);
    for (size_t i = 0; i < first; i++) lset_add(ls, st->ls->l[i]);
    for (size_t i = 0; i < np; i++) {
        *sl[i] = (slayer){ st->cpend.pieces[i].l, 1 };
        st->cpend.pieces[i].l = NULL;
        ls->l[ls->n++] = sl[i];
    }
    for (size_t i = first + count; i < n; i++) lset_add(ls, st->ls->l[i]);
    layerset *old = st->ls;
    st->ls = ls;
    manifest_free(&st->man);
    st->man = st->cpend.next;
    memset(&st->cpend.next, 0, sizeof st->cpend.next);
    st->compactions++;
    pthread_rwlock_unlock(&st->lock);
    lset_release(old);
    free(sl);
    store_cpend_clear(st);
    return 0;
}

/* The merge in flight ended, committed or not: wake the flushes held
 * back for it. */
static void store_merge_end(store *st)
{
    pthread_rwlock_wrlock(&st->lock);
    st->merging = 0;
    st->merges_ended++;
    pthread_rwlock_unlock(&st->lock);
    pthread_mutex_lock(&st->wake_mu);
    pthread_cond_broadcast(&st->merged_cv);
    pthread_mutex_unlock(&st->wake_mu);
}

/* 1 if a flush may commit now by compact.h's rules (flush_mu held): its run
 * keeps the own runs of the state it lands on within the bound, and fewer
 * than COMPACT_LAG_RUNS flushes landed since the merge in flight picked
 * its runs.  *ENDED: merges ended so far. */
static int store_flush_fits(store *st, uint64_t *ended)
{
    const manifest *base = st->cpend.next.gen ? &st->cpend.next : &st->man;   /* installed first */
    int fits = compact_flush_fits(base, st->layer_prefix);
    pthread_rwlock_rdlock(&st->lock);
    fits = fits && !(st->merging && st->merge_flushes >= COMPACT_LAG_RUNS);
    *ended = st->merges_ended;
    pthread_rwlock_unlock(&st->lock);
    return fits;
}

/* Hold the next flush back until it fits (flush_mu held; released while
 * waiting, as the compactor commits under it): it wakes the compactor, and
 * each merge that ends wakes it to look again.  Not without a compactor, once closing or fenced, nor
 * for a commit of unknown outcome (retried as it is; merges wait for it). */
static void store_flush_hold(store *st)
{
    struct timespec since, now;
    uint64_t ended;
    int held = 0;
    while (st->compactor_running && !st->uncertain.gen && !store_flush_fits(st, &ended)) {
        pthread_mutex_lock(&st->wake_mu);
        if (st->stopping || __atomic_load_n(&st->fenced, __ATOMIC_SEQ_CST)) {
            pthread_mutex_unlock(&st->wake_mu);
            break;
        }
        if (!held++) {
            clock_gettime(CLOCK_MONOTONIC, &since);
            fprintf(stderr, "lakefs: branch %s: a flush waits for a merge (the bound on layers per read)\n",
                    st->branch);
        }
        st->compact_kicked = 1;   /* a merge is due or running (compact.h): see to it */
        pthread_cond_signal(&st->compact_cv);
        pthread_mutex_unlock(&st->flush_mu);
        for (;;) {
            pthread_rwlock_rdlock(&st->lock);
            int same = st->merges_ended == ended;
            pthread_rwlock_unlock(&st->lock);
            if (!same || st->stopping || __atomic_load_n(&st->fenced, __ATOMIC_SEQ_CST)) break;
            pthread_cond_wait(&st->merged_cv, &st->wake_mu);
        }
        pthread_mutex_unlock(&st->wake_mu);
        pthread_mutex_lock(&st->flush_mu);
    }
    if (held) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        fprintf(stderr, "lakefs: branch %s: the flush goes on after %.3f s\n", st->branch, store_elapsed(&since, &now));
    }
}

/* compact_merge's upload: a layer of this branch written by this mount. */
static int store_compact_upload(void *arg, const void *buf, size_t len, uint64_t min_seq, uint64_t max_seq,
                                char **key)
{
    store *st = arg;
    return store_upload_layer(st->os, st->branch, st->session, buf, len, min_seq, max_seq, key);
}

/* Merge the runs compact_pick names, if any, and commit the result as the
 * next generation: 1 if a merge was committed, 0 if none was due, -errno.
 * The merge runs without locks; flushes go on meanwhile and only add
 * layers on top, so the merged layers keep their places. */
static int store_compact_once(store *st)
{
    size_t first = 0, count = 0;
    pthread_rwlock_wrlock(&st->lock);
    int due = compact_pick(&st->man, st->layer_prefix, &first, &count);
    if (due) {                    /* the flushes from now on land while it runs */
        st->merging = 1;
        st->merge_flushes = 0;
    }
    layerset *ls = lset_hold(st);
    pthread_rwlock_unlock(&st->lock);
    layer **in = due ? malloc(count * sizeof *in) : NULL;
    compact_piece *pieces = NULL;
    size_t np = 0;
    int rc = due && !in ? -ENOMEM : 0;
    if (due && in) {
        for (size_t i = 0; i < count; i++) in[i] = ls->l[first + i]->l;
        rc = compact_merge(st->os, in, count, first == 0, COMPACT_PIECE_BYTES, COMPACT_CHUNK_BYTES,
                           store_compact_upload, st, &st->stopping, &pieces, &np);
    }
    if (!due || rc) {
        if (rc && rc != -ECANCELED)
            fprintf(stderr, "lakefs: branch %s: compacting %zu layers failed: %s (retried later)\n",
                    st->branch, count, strerror(-rc));
        free(in);
        lset_release(ls);
        if (due) store_merge_end(st);
        return rc;
    }
    pthread_mutex_lock(&st->flush_mu);
    if (st->uncertain.gen) {          /* a flush's commit of unknown outcome holds the next generation */
        rc = -EAGAIN;
        compact_pieces_free(pieces, np);
    } else if (st->cpend.next.gen && (rc = store_compact_install(st))) {
        compact_pieces_free(pieces, np);
    } else {
        /* the next generation: the current one with the merged layers replaced */
        manifest *cur = &st->man, *next = &st->cpend.next;
        for (size_t i = 0; i < count && !rc; i++)
            if (first + i >= cur->nlayers || strcmp(cur->layers[first + i].key, layer_name(in[i]))) rc = -ESTALE;
        *next = (manifest){ .gen = cur->gen + 1, .seq = cur->seq, .max_ino = cur->max_ino, .writer = cur->writer,
                            .session = cur->session, .inherit = cur->inherit,
                            .time = (uint64_t)time(NULL) };
        for (size_t i = 0; i < cur->nlayers && !rc; i++) {
            manifest_layer *ml = &cur->layers[i];
            if (i == first)
                for (size_t j = 0; j < np && !rc; j++)
                    rc = manifest_add_layer(next, pieces[j].key, pieces[j].min_seq, pieces[j].max_seq,
                                            pieces[j].size);
            if (!rc && (i < first || i >= first + count))
                rc = manifest_add_layer(next, ml->key, ml->min_seq, ml->max_seq, ml->size);
        }
        st->cpend.first = first;
        st->cpend.count = count;
        st->cpend.pieces = pieces;
        st->cpend.npieces = np;
        if (!rc) rc = failpoint("compact-commit-before");
        if (rc) store_cpend_clear(st);
        else if (__atomic_load_n(&st->fenced, __ATOMIC_SEQ_CST)) { rc = -EIO; store_cpend_clear(st); }
        else rc = store_compact_install(st);
        if (!rc)
            fprintf(stderr, "lakefs: branch %s: compacted %zu layers into %zu (generation %" PRIu64 ")\n",
                    st->branch, count, np, st->man.gen);
    }
    pthread_mutex_unlock(&st->flush_mu);
    free(in);
    lset_release(ls);
    store_merge_end(st);
    return rc ? rc : 1;
}

int store_compact(store *st)
{
    int rc, merges = 0;
    if (st->snapshot) return -EROFS;
    pthread_mutex_lock(&st->compact_mu);
    while ((rc = store_compact_once(st)) == 1 && !__atomic_load_n(&st->stopping, __ATOMIC_RELAXED)) merges++;
    pthread_mutex_unlock(&st->compact_mu);
    return rc < 0 ? rc : merges + rc;
}

/* Background thread: after every committed layer, merge while a merge is
 * due; after a failure, wait for the next layer or STORE_RETRY_SECONDS. */
static void *store_compactor(void *arg)
{
    store *st = arg;
    pthread_mutex_lock(&st->wake_mu);
    while (!st->stopping) {
        if (!st->compact_kicked) {
            pthread_cond_wait(&st->compact_cv, &st->wake_mu);
            continue;
        }
        st->compact_kicked = 0;
        pthread_mutex_unlock(&st->wake_mu);
        int rc = store_compact(st);
        pthread_mutex_lock(&st->wake_mu);
        if (rc < 0 && rc != -ECANCELED && !st->stopping && !__atomic_load_n(&st->fenced, __ATOMIC_SEQ_CST)) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += STORE_RETRY_SECONDS;
            if (pthread_cond_timedwait(&st->compact_cv, &st->wake_mu, &ts) == ETIMEDOUT) st->compact_kicked = 1;
        }
    }
    pthread_mutex_unlock(&st->wake_mu);
    return NULL;
}

/* Write the oldest frozen memtable as a layer and commit it (flush_mu held). */
static int store_flush_one(store *st)
{
    int crc = st->cpend.next.gen ? store_compact_install(st) : 0;
    if (crc) return crc;
    pthread_rwlock_rdlock(&st->lock);
    if (st->nfrozen == 0) { pthread_rwlock_unlock(&st->lock); return 0; }
    frozen fz = st->frozen[0];
    size_t nl = st->ls->n;
    pthread_rwlock_unlock(&st->lock);

    layerset *ls = lset_new(nl + 1);
    slayer *sl = malloc(sizeof *sl);
    if (!ls || !sl) { free(ls); free(sl); return -ENOMEM; }
    manifest next = {0};
    layer *l = NULL;
    int rc = 0;
    if (st->uncertain.gen) {      /* the last commit's outcome is unknown: that one again */
        next = st->uncertain;
        l = st->uncertain_layer;
        memset(&st->uncertain, 0, sizeof st->uncertain);
        st->uncertain_layer = NULL;
    } else {
        rc = store_build_layer(st, &fz, &next, &l);
    }
    if (!rc) rc = store_commit_manifest(st, &next);
    if (rc) {
        if (rc == -EEXIST) {
            store_fence(st, next.gen);
        } else if (next.gen) {    /* it may have landed: retry exactly it */
            st->uncertain = next;
            st->uncertain_layer = l;
            next = (manifest){0};
            l = NULL;
        }
        if (next.gen || st->uncertain.gen)   /* else store_build_layer said why */
            fprintf(stderr, "lakefs: branch %s: committing manifest generation %" PRIu64 " (seq %" PRIu64 "-%" PRIu64 ") "
                    "failed: %s (data stays in the journal)\n", st->branch, st->man.gen + 1,
                    mt_min_seq(fz.mt), mt_max_seq(fz.mt), strerror(-rc));
        if (l) layer_close(l);
        manifest_free(&next);
        free(ls);
        free(sl);
        return rc;
    }
    ls->bound = compact_bound(&next, st->layer_prefix);
    pthread_rwlock_wrlock(&st->lock);
    for (size_t i = 0; i < nl; i++) lset_add(ls, st->ls->l[i]);
    *sl = (slayer){ l, 1 };
    ls->l[ls->n++] = sl;
    layerset *old = st->ls;
    st->ls = ls;
    memmove(&st->frozen[0], &st->frozen[1], (size_t)(st->nfrozen - 1) * sizeof(frozen));
    st->nfrozen--;
    manifest_free(&st->man);
    st->man = next;
    st->flushes++;
    st->merge_flushes++;
    store_rj_drop(st, st->man.seq);   /* in a layer now: no upload needed */
    int was_full = __atomic_exchange_n(&st->full, 0, __ATOMIC_ACQ_REL);
    pthread_rwlock_unlock(&st->lock);
    lset_release(old);
    if (was_full) {
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        fprintf(stderr, "lakefs: branch %s: writes resume after waiting %.1f s for the object store\n",
                st->branch, store_elapsed(&st->full_since, &now));
        store_room_wake(st);
    }
    uint64_t flushed = mt_max_seq(fz.mt);
    mt_free(fz.mt);
    pthread_mutex_lock(&st->wake_mu);
    st->compact_kicked = 1;
    pthread_cond_signal(&st->compact_cv);
    pthread_mutex_unlock(&st->wake_mu);
    if (st->remote && (rc = jremote_trim(st->os, st->branch, st->session, flushed)))
        fprintf(stderr, "lakefs: branch %s: removing remote journal segments up to seq %" PRIu64 " failed: %s (left for gc)\n",
                st->branch, flushed, strerror(-rc));
    return journal_drop(st->jn, fz.journal_upto);
}

/* Sleep on wake_cv (wake_mu held) for SECONDS, or until woken; 1 if the
 * time ran out. */
static int store_flusher_sleep(store *st, int seconds)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += seconds;
    return pthread_cond_timedwait(&st->wake_cv, &st->wake_mu, &ts) == ETIMEDOUT;
}

/* Background thread: flush frozen memtables as they appear; after a failed
 * flush, retry in STORE_RETRY_SECONDS (at once when another memtable is
 * frozen).  Object-store I/O happens with wake_mu released, so a commit
 * that wakes the flusher never waits for an upload. */
static void *store_flusher(void *arg)
{
    store *st = arg;
    int trc;
    if (st->folded && (trc = jremote_trim(st->os, st->branch, st->folded, st->folded_end)))
        fprintf(stderr, "lakefs: branch %s: removing the folded journal of session %" PRIu64 " failed: %s (left for gc)\n",
                st->branch, st->folded, strerror(-trc));
    pthread_mutex_lock(&st->wake_mu);
    while (!st->stopping) {
        pthread_rwlock_wrlock(&st->lock);
        /* store_flush_soon: freeze what it asked for once the frozen ones are done */
        if (!st->nfrozen && mt_bytes(st->active) && mt_min_seq(st->active) <= st->flush_wanted) store_freeze(st);
        int pending = st->nfrozen;
        pthread_rwlock_unlock(&st->lock);
        if (pending) {
            st->kicked = 0;
            pthread_mutex_unlock(&st->wake_mu);
            pthread_mutex_lock(&st->flush_mu);
            store_flush_hold(st);
            int rc = store_flush_one(st);
            pthread_mutex_unlock(&st->flush_mu);
            pthread_mutex_lock(&st->wake_mu);
            if (rc && !st->kicked && !st->stopping)   /* back off, then retry */
                store_flusher_sleep(st, STORE_RETRY_SECONDS);
            continue;
        }
        /* idle: look for a takeover now and then */
        if (store_flusher_sleep(st, STORE_FENCE_CHECK_SECONDS) && !st->kicked && !st->stopping &&
            !__atomic_load_n(&st->fenced, __ATOMIC_SEQ_CST)) {
            pthread_mutex_unlock(&st->wake_mu);
            pthread_mutex_lock(&st->flush_mu);    /* man changes only under it */
            if (st->cpend.next.gen) {
                store_compact_install(st);      /* a merge's commit of unknown outcome first */
            } else {
                uint64_t next = st->man.gen + 1;
                if (manifest_exists(st->os, st->branch, next) == 1) store_fence(st, next);
            }
            pthread_mutex_unlock(&st->flush_mu);
            pthread_mutex_lock(&st->wake_mu);
        }
    }
    pthread_mutex_unlock(&st->wake_mu);
    return NULL;
}

/* ---- checkpoints: a committed manifest generation holding a given seq ---- */

int store_checkpoint(store *st, uint64_t *seq, uint64_t *gen)
{
    int rc = 0;
    if (st->snapshot) return -EROFS;
    pthread_mutex_lock(&st->flush_mu);   /* the flusher waits; commits go on */
    pthread_rwlock_rdlock(&st->lock);
    uint64_t target = st->seq;
    pthread_rwlock_unlock(&st->lock);
    for (;;) {
        if (__atomic_load_n(&st->fenced, __ATOMIC_SEQ_CST)) { rc = -EIO; break; }
        pthread_rwlock_wrlock(&st->lock);
        /* batches <= TARGET still in the active memtable: freeze it (it may
         * hold later ones too; they simply go along into the layer) */
        if (mt_bytes(st->active) && mt_min_seq(st->active) <= target) rc = store_freeze(st);
        int pending = st->nfrozen > 0 && mt_min_seq(st->frozen[0].mt) <= target;
        pthread_rwlock_unlock(&st->lock);
        if (rc || !pending) break;
        store_flush_hold(st);
        if ((rc = store_flush_one(st))) break;
    }
    if (!rc) {
        pthread_rwlock_rdlock(&st->lock);
        *seq = st->man.seq > target ? st->man.seq : target;
        *gen = st->man.gen;
        pthread_rwlock_unlock(&st->lock);
    }
    pthread_mutex_unlock(&st->flush_mu);
    return rc;
}

int store_flush_soon(store *st)
{
    if (st->snapshot) return -EROFS;
    pthread_rwlock_wrlock(&st->lock);
    st->flush_wanted = st->seq;
    pthread_rwlock_unlock(&st->lock);
    pthread_mutex_lock(&st->wake_mu);
    st->kicked = 1;
    pthread_cond_signal(&st->wake_cv);
    pthread_mutex_unlock(&st->wake_mu);
    return 0;
}

/* ---- the branch lease: one writer per branch across daemons ---- */

void store_machine_id(char *buf, size_t len)
{
    char host[256] = "unknown", boot[64] = "unknown";
    gethostname(host, sizeof host - 1);
    FILE *f = fopen("/proc/sys/kernel/random/boot_id", "r");
    if (f) {
        if (!fgets(boot, sizeof boot, f)) snprintf(boot, sizeof boot, "unknown");
        fclose(f);
        boot[strcspn(boot, "\n")] = 0;
    }
    snprintf(buf, len, "%s %s", host, boot);
}

/* Copy the value of line "NAME VALUE" of TEXT into BUF (empty if none). */
static void store_lease_field(const char *text, const char *name, char *buf, size_t len)
{
    size_t nl = strlen(name);
    buf[0] = 0;
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        if (!strncmp(p, name, nl) && p[nl] == ' ') {
            size_t n = strcspn(p + nl + 1, "\n");
            snprintf(buf, len, "%.*s", (int)n, p + nl + 1);
            return;
        }
}

int store_lease_read(objstore *os, const char *branch, store_lease *l)
{
    char key[512];
    snprintf(key, sizeof key, "branches/%s/lease", branch);
    return store_holder_read(os, key, l);
}

int store_holder_read(objstore *os, const char *key, store_lease *l)
{
    char me[400], pid[32];
    void *cur; size_t clen;
    memset(l, 0, sizeof *l);
    int rc = os_get(os, key, 0, UINT64_MAX, &cur, &clen);
    if (rc) return rc;
    char *text = strndup(cur, clen);
    free(cur);
    if (!text) return -ENOMEM;
    store_lease_field(text, "holder", l->holder, sizeof l->holder);
    store_lease_field(text, "pid", pid, sizeof pid);
    store_lease_field(text, "control", l->control, sizeof l->control);
    free(text);
    l->pid = strtol(pid, NULL, 10);
    store_machine_id(me, sizeof me);
    l->local = !strcmp(l->holder, me);
    l->alive = !l->local || l->pid <= 0 || !(kill((pid_t)l->pid, 0) < 0 && errno == ESRCH);
    return 0;
}

/* Take branches/BRANCH/lease with put-if-absent.  A lease left by a dead
 * process of this same boot of this machine (kill -9, crash) is taken
 * over; any other holder is reported in ERR. */
static int store_lease_take(store *st, char *err, size_t errlen)
{
    char key[512], me[400], body[1024];
    snprintf(key, sizeof key, "branches/%s/lease", st->branch);
    store_machine_id(me, sizeof me);
    int blen = snprintf(body, sizeof body, "lakefs-lease 1\nholder %s\npid %ld\n", me, (long)getpid());
    if (st->control_path)
        blen += snprintf(body + blen, sizeof body - (size_t)blen, "control %s\n", st->control_path);
    for (int attempt = 0; attempt < 2; attempt++) {
        int rc = os_put_if_absent(st->os, key, body, (size_t)blen);
        if (rc != -EEXIST) {
            if (rc) snprintf(err, errlen, "cannot take the lease of branch '%s': %s", st->branch, strerror(-rc));
            return rc;
        }
        store_lease cur;
        rc = store_lease_read(st->os, st->branch, &cur);
        if (rc == -ENOENT) continue;
        if (rc) { snprintf(err, errlen, "cannot read the lease of branch '%s': %s", st->branch, strerror(-rc)); return rc; }
        int dead = cur.local && !cur.alive;
        if (!dead && !st->takeover) {
            snprintf(err, errlen, "branch '%s' is already mounted read-write by another lakefs daemon (%s, pid %ld); "
                     "unmount it first, or mount with -o takeover if that daemon's machine is gone",
                     st->branch, cur.holder[0] ? cur.holder : "unknown holder", cur.pid);
            return -EBUSY;
        }
        fprintf(stderr, "lakefs: branch %s: taking over the lease of %s process %ld (%s)\n", st->branch,
                dead ? "dead" : "live", cur.pid, cur.holder);
        if ((rc = os_delete(st->os, key))) {
            snprintf(err, errlen, "cannot remove the stale lease of branch '%s': %s", st->branch, strerror(-rc));
            return rc;
        }
    }
    snprintf(err, errlen, "cannot take the lease of branch '%s': it keeps changing hands", st->branch);
    return -EBUSY;
}

/* Give the lease back (clean unmount). */
static void store_lease_release(store *st)
{
    char key[512];
    snprintf(key, sizeof key, "branches/%s/lease", st->branch);
    int rc = os_delete(st->os, key);
    if (rc) fprintf(stderr, "lakefs: branch %s: cannot release the lease %s: %s\n", st->branch, key, strerror(-rc));
}

/* ---- open / close ---- */

/* Create DIR (mode 0700) and its parents. */
static int store_mkdirs(const char *dir)
{
    char path[4096];
    if (snprintf(path, sizeof path, "%s", dir) >= (int)sizeof path) return -ENAMETOOLONG;
    for (char *p = path + 1; ; p++) {
        if (*p == '/' || !*p) {
            char c = *p;
            *p = 0;
            if (mkdir(path, 0700) < 0 && errno != EEXIST) return -errno;
            *p = c;
            if (!c) break;
        }
    }
    return 0;
}

/* Read this state directory's writer id from DIR/writer, creating it
 * (random, durable) on first use. */
static int store_writer_id(store *st, char *err, size_t errlen)
{
    char path[4200], text[32] = "";
    snprintf(path, sizeof path, "%s/writer", st->state_dir);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t n = read(fd, text, sizeof text - 1);
        close(fd);
        char *end;
        text[n > 0 ? n : 0] = 0;
        st->writer = strtoull(text, &end, 16);
        if (n == 17 && *end == '\n' && st->writer) return 0;
        snprintf(err, errlen, "state directory %s: the writer id in %s is damaged; "
                 "move the state directory aside (its journal cannot be trusted)", st->state_dir, path);
        return -EIO;
    }
    if (errno != ENOENT) {
        int e = errno;
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(e));
        return -e;
    }
    do {
        if (getentropy(&st->writer, sizeof st->writer) < 0) {
            int e = errno;
            snprintf(err, errlen, "cannot make a writer id: %s", strerror(e));
            return -e;
        }
    } while (!st->writer);
    char tmp[4300];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int len = snprintf(text, sizeof text, "%016" PRIx64 "\n", st->writer);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    int rc = fd < 0 || write(fd, text, (size_t)len) != len || fsync(fd) < 0 ? -errno : 0;
    if (fd >= 0) close(fd);
    if (!rc && rename(tmp, path) < 0) rc = -errno;
    if (!rc) {
        int dfd = open(st->state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0 || fsync(dfd) < 0) rc = -errno;
        if (dfd >= 0) close(dfd);
    }
    if (rc) snprintf(err, errlen, "cannot write %s: %s", path, strerror(-rc));
    return rc;
}

/* The branch was last written from another state directory: any journal
 * here is older than the branch and must never be replayed; move its files
 * into DIR/stale-GEN-TIME for inspection. */
static int store_set_aside_journal(store *st, char *err, size_t errlen)
{
    DIR *d = opendir(st->state_dir);
    if (!d) {
        int e = errno;
        snprintf(err, errlen, "cannot read state directory %s: %s", st->state_dir, strerror(e));
        return -e;
    }
    char aside[4200] = "";
    int rc = 0;
    struct dirent *de;
    while (!rc && (de = readdir(d))) {
        if (strncmp(de->d_name, "journal.", 8)) continue;
        char from[4500], to[4500];
        if (!aside[0]) {
            snprintf(aside, sizeof aside, "%s/stale-%" PRIu64 "-%ld", st->state_dir, st->man.gen, (long)time(NULL));
            if (mkdir(aside, 0700) < 0 && errno != EEXIST) { rc = -errno; break; }
        }
        snprintf(from, sizeof from, "%s/%s", st->state_dir, de->d_name);
        snprintf(to, sizeof to, "%s/%s", aside, de->d_name);
        if (rename(from, to) < 0) rc = -errno;
    }
    closedir(d);
    if (rc)
        snprintf(err, errlen, "cannot move the stale journal of %s aside: %s", st->state_dir, strerror(-rc));
    else if (aside[0])
        fprintf(stderr, "lakefs: branch %s: the journal in %s is older than the branch (another daemon wrote it since); "
                "not replayed, kept in %s\n", st->branch, st->state_dir, aside);
    return rc;
}

/* Remote journal replay callback: apply batches not replayed yet. */
static int store_replay_remote(void *arg, const uint8_t *p, size_t len)
{
    store *st = arg;
    uint64_t seq;
    memcpy(&seq, p, 8);
    if (seq <= st->seq) return 0;
    if (seq != st->seq + 1) return -EIO;
    return store_apply(st, p, len);
}

/* Fold the remote journal of session SOURCE (the branch's previous mount)
 * into this mount: claim its chain after the manifest's seq (which fences
 * it), write everything replayed as a layer and commit a generation that
 * no longer needs SOURCE.  Done before the mount serves a single write. */
static int store_fold(store *st, uint64_t source, uint64_t from, char *err, size_t errlen)
{
    uint64_t end = 0;
    int rc = jremote_claim(st->os, st->branch, source, from, st->session, store_replay_remote, st, &end);
    if (rc) {
        snprintf(err, errlen, "cannot take over the remote journal of branch '%s' (session %" PRIu64 "): %s",
                 st->branch, source, strerror(-rc));
        return rc;
    }
    pthread_mutex_lock(&st->flush_mu);
    pthread_rwlock_wrlock(&st->lock);
    rc = store_freeze(st);
    int pending = st->nfrozen;
    pthread_rwlock_unlock(&st->lock);
    if (!rc && pending) rc = store_flush_one(st);
    else if (!rc) {               /* nothing to write: commit the same state without SOURCE */
        st->man.gen++;
        st->man.inherit = 0;
        st->man.time = (uint64_t)time(NULL);
        rc = manifest_commit(st->os, st->branch, &st->man);
    }
    pthread_mutex_unlock(&st->flush_mu);
    if (rc) {
        snprintf(err, errlen, "cannot commit branch '%s' after taking over its remote journal: %s",
                 st->branch, rc == -EEXIST ? "another daemon is writing it" : strerror(-rc));
        return rc;
    }
    if (end >= from) {            /* the flusher deletes its segments */
        st->folded = source;
        st->folded_end = end;
    }
    return 0;
}

/* ---- start-up keys (hotset.h) ---- */

/* Object key of BRANCH's start-up keys stored with generation GEN. */
static void store_hot_key(char *key, size_t len, const char *branch, uint64_t gen)
{
    snprintf(key, len, "branches/%s/hot/%020" PRIu64, branch, gen);
}

/* Thread body: fetch and decode the start-up keys stored with generation
 * st->warm_gen (closed, so its close wrote them); none if anything fails. */
static void *store_hot_fetch(void *arg)
{
    store *st = arg;
    char key[512];
    void *buf = NULL;
    size_t len;
    store_hot_key(key, sizeof key, st->branch, st->warm_gen);
    int rc = os_get(st->os, key, 0, UINT64_MAX, &buf, &len);
    if (!rc) rc = hotset_decode(buf, len, &st->warm, &st->nwarm);
    if (!rc) fprintf(stderr, "lakefs: branch %s: fetching the %zu start-up keys of the last mount\n", st->branch, st->nwarm);
    if (rc) st->warm_gen = 0;
    if (rc && rc != -ENOENT)
        fprintf(stderr, "lakefs: branch %s: start-up keys %s unusable (%s): this start fetches as it reads\n",
                st->branch, key, strerror(-rc));
    free(buf);
    return NULL;
}

/* Thread body: have the read-ahead threads bring in the blocks that may
 * hold the last mount's start-up keys, in every layer of the set as the
 * store started (slice by slice of keys in their order, each newest layer
 * first), until done or the store closes: a lookup would go through a
 * key's layers one after the other, a round trip each, where these fetch
 * all of them at once, runs of adjacent blocks in one get -- a few blocks
 * more, far fewer waits.  The blocks land in the block cache (and the disk
 * cache), where the server's reads find them or wait for the fetch already
 * running (layer_read.c). */
static void *store_warmer(void *arg)
{
    store *st = arg;
    layerset *ls = st->warm_ls;
    const uint8_t *keys[STORE_WARM_SLICE];
    size_t lens[STORE_WARM_SLICE];
    for (size_t from = 0; from < st->nwarm; from += STORE_WARM_SLICE) {
        size_t n = st->nwarm - from < STORE_WARM_SLICE ? st->nwarm - from : STORE_WARM_SLICE;
        for (size_t i = 0; i < n; i++) {
            keys[i] = st->warm[from + i].b;
            lens[i] = st->warm[from + i].len;
        }
        for (size_t j = ls->n; j-- > 0;) {
            if (__atomic_load_n(&st->stopping, __ATOMIC_RELAXED)) return NULL;
            layer_warm(ls->l[j]->l, keys, lens, n);
        }
    }
    return NULL;
}

void store_hot_seal(store *st)
{
    if (st->hot) hotset_seal(st->hot);
}

void store_hot_restart(store *st)
{
    if (st->hot) hotset_restart(st->hot);
}

void store_hot_file(store *st, uint64_t ino, uint64_t size)
{
    uint64_t pages = (size + KEY_PAGE_BYTES - 1) / KEY_PAGE_BYTES;
    skey k;
    if (!st->hot || !hotset_recording(st->hot)) return;
    for (uint64_t p = 0; p < pages && p < STORE_HOT_FILE_PAGES; p++) {
        key_page(&k, ino, p);
        hotset_note(st->hot, k.b, k.len);
    }
}

/* Store this mount's start-up keys beside generation GEN, about to be
 * committed closed, and remove the ones this mount started from.  A
 * failure costs only the next start's prefetch. */
static void store_hot_save(store *st, uint64_t gen)
{
    char key[512];
    void *buf;
    size_t len;
    if (!st->hot || !hotset_count(st->hot) || hotset_encode(st->hot, &buf, &len)) return;
    store_hot_key(key, sizeof key, st->branch, gen);
    int rc = os_put_if_absent(st->os, key, buf, len);
    free(buf);
    if (!rc) fprintf(stderr, "lakefs: branch %s: stored %zu start-up keys\n", st->branch, hotset_count(st->hot));
    if (rc && rc != -EEXIST)
        fprintf(stderr, "lakefs: branch %s: cannot store the start-up keys %s: %s\n", st->branch, key, strerror(-rc));
    if (st->warm_gen) {
        store_hot_key(key, sizeof key, st->branch, st->warm_gen);
        if ((rc = os_delete(st->os, key)))
            fprintf(stderr, "lakefs: branch %s: cannot remove the old start-up keys %s: %s\n", st->branch, key, strerror(-rc));
    }
}

/* A store of BRANCH on OS with its locks set up and nothing opened, or
 * NULL (out of memory). */
static store *store_alloc(objstore *os, const char *branch)
{
    store *st = calloc(1, sizeof *st);
    if (!st) return NULL;
    st->os = os;
    st->lock_fd = -1;
    st->memtable_limit = STORE_MEMTABLE_DEFAULT;
    pthread_rwlockattr_t ra;
    pthread_rwlockattr_init(&ra);
    pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&st->lock, &ra);
    pthread_rwlockattr_destroy(&ra);
    pthread_mutex_init(&st->flush_mu, NULL);
    pthread_mutex_init(&st->compact_mu, NULL);
    pthread_mutex_init(&st->rj_mu, NULL);
    pthread_mutex_init(&st->wake_mu, NULL);
    pthread_cond_init(&st->wake_cv, NULL);
    pthread_cond_init(&st->compact_cv, NULL);
    pthread_cond_init(&st->merged_cv, NULL);
    pthread_mutex_init(&st->room_mu, NULL);
    pthread_cond_init(&st->room_cv, NULL);
    st->branch = strdup(branch);
    snprintf(st->layer_prefix, sizeof st->layer_prefix, "branches/%s/layers/", branch);
    st->active = mt_new();
    if (!st->branch || !st->active) {
        store_close(st);
        return NULL;
    }
    mt_keep_latest(st->active);
    return st;
}

#define STORE_OPEN_THREADS 16     /* layers opened at once at mount */

/* Layers being opened in parallel: each worker takes the next index. */
typedef struct open_job {
    store *st;
    layer **out;                  /* one per manifest layer */
    int *rc;
    atomic_size_t next;
} open_job;

/* Thread body: open layers of the manifest until none is left. */
static void *store_open_worker(void *arg)
{
    open_job *j = arg;
    const manifest *m = &j->st->man;
    for (size_t i; (i = atomic_fetch_add(&j->next, 1)) < m->nlayers;)
        j->rc[i] = layer_open_sized(j->st->os, m->layers[i].key, m->layers[i].size, &j->out[i]);
    return NULL;
}

/* Open the layers of st->man into a fresh layer set.  Cost model: each
 * open is a round trip to the object store, and a branch has up to
 * compaction's bound of layers, so they are opened STORE_OPEN_THREADS at a
 * time: the mount waits about one round trip, not one per layer. */
static int store_open_layers(store *st, char *err, size_t errlen)
{
    size_t n = st->man.nlayers, nthreads = n < STORE_OPEN_THREADS ? n : STORE_OPEN_THREADS;
    st->ls = lset_new(n);
    if (!st->ls) { snprintf(err, errlen, "out of memory"); return -ENOMEM; }
    st->ls->bound = compact_bound(&st->man, st->layer_prefix);
    open_job j = { .st = st, .out = calloc(n + 1, sizeof(layer *)), .rc = calloc(n + 1, sizeof(int)) };
    pthread_t *tids = calloc(nthreads + 1, sizeof(pthread_t));
    size_t started = 0;
    int rc = 0;
    if (!j.out || !j.rc || !tids) rc = -ENOMEM;
    atomic_init(&j.next, 0);
    while (!rc && started + 1 < nthreads && pthread_create(&tids[started], NULL, store_open_worker, &j) == 0)
        started++;
    if (!rc) store_open_worker(&j);   /* this thread too (and alone if none started) */
    for (size_t t = 0; t < started; t++) pthread_join(tids[t], NULL);
    if (rc) snprintf(err, errlen, "out of memory");
    for (size_t i = 0; !rc && i < n; i++) {   /* manifest order: the first failure is reported */
        if (!(rc = j.rc[i])) {
            rc = lset_add_new(st->ls, j.out[i]);   /* owns the layer now, or closed it */
            j.out[i] = NULL;
        }
        if (rc)
            snprintf(err, errlen, "cannot open layer %s of branch '%s': %s",
                     st->man.layers[i].key, st->branch, strerror(-rc));
    }
    for (size_t i = 0; j.out && i < n; i++)
        if (j.out[i]) layer_close(j.out[i]);
    free(j.out);
    free(j.rc);
    free(tids);
    return rc;
}

/* Pin generation GEN of ST's branch for as long as ST is open: a pin
 * object branches/NAME/pins/GEN-RANDOM naming this process, which garbage
 * collection honours (store/gc.h). */
static int store_pin(store *st, uint64_t gen)
{
    char key[512], me[400], body[600];
    uint64_t rnd;
    if (getentropy(&rnd, sizeof rnd) < 0) return -errno;
    snprintf(key, sizeof key, "branches/%s/pins/%020" PRIu64 "-%016" PRIx64, st->branch, gen, rnd);
    store_machine_id(me, sizeof me);
    int blen = snprintf(body, sizeof body, "lakefs-pin 1\nholder %s\npid %ld\n", me, (long)getpid());
    int rc = os_put_if_absent(st->os, key, body, (size_t)blen);
    if (!rc && !(st->pin = strdup(key))) { os_delete(st->os, key); rc = -ENOMEM; }
    return rc;
}

int store_open_snapshot(objstore *os, const char *branch, uint64_t gen, store **out, char *err, size_t errlen)
{
    store *st = store_alloc(os, branch);
    if (!st) { snprintf(err, errlen, "out of memory"); return -ENOMEM; }
    st->snapshot = 1;
    /* pin first, then load: a collector that has not seen the pin has
     * already removed the manifest, or will see the pin (store/gc.c); no
     * pin for a generation that is not there at all */
    int rc = manifest_exists(os, branch, gen);
    if (rc == 0) rc = -ENOENT;
    if (rc == 1) rc = store_pin(st, gen);
    if (rc == -ENOENT) {
        snprintf(err, errlen, "cannot load generation %" PRIu64 " of branch '%s': %s", gen, branch, strerror(-rc));
        store_close(st);
        return rc;
    }
    if (rc) {
        snprintf(err, errlen, "cannot pin generation %" PRIu64 " of branch '%s': %s", gen, branch, strerror(-rc));
        store_close(st);
        return rc;
    }
    rc = manifest_load(os, branch, gen, &st->man);
    if (rc) {
        snprintf(err, errlen, "cannot load generation %" PRIu64 " of branch '%s': %s", gen, branch, strerror(-rc));
    } else if (!(rc = store_open_layers(st, err, errlen))) {
        st->seq = st->man.seq;
        st->next_ino = st->man.max_ino + 1;
        *out = st;
        return 0;
    }
    store_close(st);
    return rc;
}

void store_unmounting(store *st)
{
    if (st->lock_fd < 0) return;  /* a snapshot: no state directory */
    int rc = dirlock_unmounting(st->lock_fd);
    if (rc)
        fprintf(stderr, "lakefs: branch %s: cannot mark %s/lock as unmounting: %s (a mount started now fails "
                "until this daemon exits)\n", st->branch, st->state_dir, strerror(-rc));
}

/* store_open_layers run beside the rest of store_open. */
typedef struct layers_job {
    store *st;
    int rc;
    char err[512];
} layers_job;

static void *store_open_layers_thread(void *arg)
{
    layers_job *j = arg;
    j->rc = store_open_layers(j->st, j->err, sizeof j->err);
    return NULL;
}

/* Cost model of an open: each object-store request is a round trip (10-50
 * ms to a real bucket) and a fresh machine's mount waits for all of them,
 * so what only reads objects named by the manifest -- the layers' indexes,
 * the last mount's start-up keys -- goes out beside the lease, the
 * deletion check and the fence, which must follow one another. */
int store_open(const store_config *cfg, store **out, char *err, size_t errlen)
{
    pthread_t hot_fetch, layers_opener;
    int hot_fetching = 0, layers_opening = 0;
    layers_job lj = { 0 };
    store *st = store_alloc(cfg->os, cfg->branch);
    if (!st) { snprintf(err, errlen, "out of memory"); return -ENOMEM; }
    st->state_dir = strdup(cfg->state_dir);
    if (cfg->memtable_limit) st->memtable_limit = cfg->memtable_limit;
    st->takeover = cfg->takeover;
    st->remote = cfg->durability_remote;
    st->compaction_off = cfg->compaction_off;
    st->control_path = cfg->control_path ? strdup(cfg->control_path) : NULL;
    int rc = 0;
    if (!st->state_dir || (cfg->control_path && !st->control_path)) {
        snprintf(err, errlen, "out of memory");
        rc = -ENOMEM;
        goto fail;
    }
    if ((rc = store_mkdirs(st->state_dir))) {
        snprintf(err, errlen, "cannot create state directory %s: %s", st->state_dir, strerror(-rc));
        goto fail;
    }
    char path[4200], what[BRANCH_NAME_MAX + 16], holder[32];
    snprintf(path, sizeof path, "%s/lock", st->state_dir);
    snprintf(what, sizeof what, "branch %s", st->branch);
    if ((rc = dirlock_take(path, what, &st->lock_fd, holder, sizeof holder))) {
        if (rc == -EBUSY)
            snprintf(err, errlen, "branch '%s' is already mounted read-write by another lakefs daemon (pid %s); "
                     "unmount it first", st->branch, holder);
        else
            snprintf(err, errlen, "cannot lock %s: %s", path, strerror(-rc));
        goto fail;
    }
    if ((rc = store_writer_id(st, err, errlen))) goto fail;
    if (!(st->hot = hotset_new())) {
        snprintf(err, errlen, "out of memory");
        rc = -ENOMEM;
        goto fail;
    }
    if ((rc = manifest_load_latest(st->os, st->branch, &st->man))) {
        if (rc == -ENOENT) snprintf(err, errlen, "branch '%s' does not exist in %s", st->branch, os_url(st->os));
        else snprintf(err, errlen, "cannot load the manifest of branch '%s': %s", st->branch, strerror(-rc));
        goto fail;
    }
    st->warm_gen = st->man.closed ? st->man.gen : 0;
    hot_fetching = st->warm_gen && pthread_create(&hot_fetch, NULL, store_hot_fetch, st) == 0;
    if (!hot_fetching) st->warm_gen = 0;
    lj.st = st;
    if (!(layers_opening = pthread_create(&layers_opener, NULL, store_open_layers_thread, &lj) == 0))
        store_open_layers_thread(&lj);
    if ((rc = store_lease_take(st, err, errlen))) goto fail;
    st->leased = 1;
    /* after the lease, so that `lakefs branch delete` (marker, then lease
     * check) and this mount can never both go ahead */
    if ((rc = branch_deleting(st->os, st->branch)) != 0) {
        if (rc > 0) {
            snprintf(err, errlen, "branch '%s' is being deleted or renamed (an interrupted `lakefs branch delete` or "
                     "`rename` leaves that state); finish it with: lakefs branch delete %s", st->branch, st->branch);
            rc = -EBUSY;
        } else {
            snprintf(err, errlen, "cannot check the state of branch '%s': %s", st->branch, strerror(-rc));
        }
        store_lease_release(st);
        st->leased = 0;
        goto fail;
    }
    if (st->man.writer != st->writer && (rc = store_set_aside_journal(st, err, errlen))) goto fail;
    /* Fence: commit the next generation as this mount's session, so a writer
     * that lost the lease (and still holds the old generation) can never
     * commit again; it names the previous session, whose remote journal is
     * folded in below, until a later generation holds that. */
    uint64_t source = st->man.closed ? 0 : st->man.inherit ? st->man.inherit : st->man.session;
    uint64_t from = st->man.seq + 1;
    st->man.gen++;
    st->man.closed = 0;
    st->man.writer = st->writer;
    st->man.session = st->session = st->man.gen;
    st->man.inherit = source;
    st->man.time = (uint64_t)time(NULL);
    if ((rc = manifest_commit(st->os, st->branch, &st->man))) {
        if (rc == -EEXIST)
            snprintf(err, errlen, "branch '%s' changed while it was being opened: another daemon is writing it; unmount that one first", st->branch);
        else
            snprintf(err, errlen, "cannot commit the manifest of branch '%s': %s", st->branch, strerror(-rc));
        goto fail;
    }
    st->seq = st->man.seq;
    st->next_ino = st->man.max_ino + 1;
    if (layers_opening) pthread_join(layers_opener, NULL);
    layers_opening = 0;
    if ((rc = lj.rc)) {
        snprintf(err, errlen, "%s", lj.err);
        goto fail;
    }
    if ((rc = journal_open(st->state_dir, store_replay, st, &st->jn))) {
        snprintf(err, errlen, "cannot replay the journal in %s: %s", st->state_dir, strerror(-rc));
        goto fail;
    }
    if (source && (rc = store_fold(st, source, from, err, errlen))) goto fail;
    if (hot_fetching) pthread_join(hot_fetch, NULL);
    *out = st;
    return 0;
fail:
    if (layers_opening) pthread_join(layers_opener, NULL);
    if (hot_fetching) pthread_join(hot_fetch, NULL);
    __atomic_store_n(&st->stopping, 1, __ATOMIC_RELAXED);
    store_close(st);
    return rc;
}

int store_start(store *st)
{
    int rc;
    if (st->snapshot) return 0;
    if (!st->compaction_off) {    /* first: the flusher holds flushes back only with a compactor */
        if ((rc = pthread_create(&st->compactor, NULL, store_compactor, st))) return -rc;
        st->compactor_running = 1;
    }
    if ((rc = pthread_create(&st->flusher, NULL, store_flusher, st))) return -rc;
    st->flusher_running = 1;
    if (st->nwarm) {
        pthread_rwlock_rdlock(&st->lock);
        st->warm_ls = lset_hold(st);
        pthread_rwlock_unlock(&st->lock);
    }
    if (st->nwarm) st->warmer_running = pthread_create(&st->warmer, NULL, store_warmer, st) == 0;
    return 0;
}

/* Commit the state once more as closed (flush_mu held, everything
 * flushed): the next mount then knows this session left no remote journal
 * behind and skips folding and fencing it (four round trips at mount).  A
 * failure only costs the next mount that fold; -EIO if another writer has
 * committed since (its lease must not be released). */
static int store_commit_closed(store *st)
{
    store_hot_save(st, st->man.gen + 1);
    st->man.gen++;
    st->man.closed = 1;
    st->man.time = (uint64_t)time(NULL);
    int rc = manifest_commit(st->os, st->branch, &st->man);
    if (rc == -EEXIST) {
        fprintf(stderr, "lakefs: branch %s: generation %" PRIu64 " was committed by another daemon while this one "
                "closed; its lease is left alone\n", st->branch, st->man.gen);
        return -EIO;
    }
    if (rc)
        fprintf(stderr, "lakefs: branch %s: cannot mark generation %" PRIu64 " closed: %s (the next mount folds "
                "this session's journal instead)\n", st->branch, st->man.gen, strerror(-rc));
    return 0;
}

/* Move a fenced writer's journal aside, so that no later mount replays
 * writes made on top of a state another writer has since moved on from. */
static void store_quarantine_journal(store *st)
{
    char to[4200];
    snprintf(to, sizeof to, "%s.fenced-%ld", st->state_dir, (long)time(NULL));
    if (rename(st->state_dir, to) < 0)
        fprintf(stderr, "lakefs: branch %s: cannot move the journal %s aside: %s; do not mount with this state directory\n",
                st->branch, st->state_dir, strerror(errno));
    else
        fprintf(stderr, "lakefs: branch %s: journal of the lost writer kept in %s (not replayed by later mounts)\n",
                st->branch, to);
}

int store_close(store *st)
{
    int rc = 0;
    pthread_mutex_lock(&st->wake_mu);
    __atomic_store_n(&st->stopping, 1, __ATOMIC_RELAXED);
    pthread_cond_signal(&st->wake_cv);
    pthread_cond_signal(&st->compact_cv);
    pthread_cond_broadcast(&st->merged_cv);
    pthread_mutex_unlock(&st->wake_mu);
    if (st->flusher_running) pthread_join(st->flusher, NULL);
    if (st->compactor_running) pthread_join(st->compactor, NULL);
    if (st->warmer_running) pthread_join(st->warmer, NULL);
    if (st->warm_ls) lset_release(st->warm_ls);
    if (st->jn && !st->fenced) {  /* flush everything that is left */
        pthread_mutex_lock(&st->flush_mu);
        for (;;) {
            pthread_rwlock_wrlock(&st->lock);
            rc = store_freeze(st);
            int pending = st->nfrozen;
            pthread_rwlock_unlock(&st->lock);
            if (rc || !pending) break;
            if ((rc = store_flush_one(st))) break;
        }
        if (!rc && st->cpend.next.gen) store_compact_install(st);   /* one last try */
        if (!rc && !st->fenced) rc = store_commit_closed(st);
        pthread_mutex_unlock(&st->flush_mu);
    }
    store_cpend_clear(st);
    if (st->jn) journal_close(st->jn);
    if (st->fenced) {             /* the branch belongs to the new writer now */
        store_quarantine_journal(st);
        rc = -EIO;
    }
    if (st->leased && !rc) store_lease_release(st);
    if (st->pin) {
        int prc = os_delete(st->os, st->pin);
        if (prc) fprintf(stderr, "lakefs: cannot remove pin %s: %s (gc removes it once this process is gone)\n",
                         st->pin, strerror(-prc));
        free(st->pin);
    }
    store_uncertain_clear(st);
    hotset_free(st->hot);
    free(st->warm);
    lset_release(st->ls);
    for (int i = 0; i < st->nfrozen; i++) mt_free(st->frozen[i].mt);
    mt_free(st->active);
    manifest_free(&st->man);
    if (st->lock_fd >= 0) close(st->lock_fd);
    pthread_rwlock_destroy(&st->lock);
    pthread_mutex_destroy(&st->flush_mu);
    pthread_mutex_destroy(&st->compact_mu);
    pthread_mutex_destroy(&st->rj_mu);
    free(st->rj_buf);
    pthread_mutex_destroy(&st->wake_mu);
    pthread_cond_destroy(&st->wake_cv);
    pthread_cond_destroy(&st->compact_cv);
    pthread_cond_destroy(&st->merged_cv);
    pthread_mutex_destroy(&st->room_mu);
    pthread_cond_destroy(&st->room_cv);
    free(st->branch);
    free(st->state_dir);
    free(st->control_path);
    free(st);
    return rc;
}

void store_get_stats(store *st, store_stats *s)
{
    pthread_rwlock_rdlock(&st->lock);
    s->seq = st->seq;
    s->manifest_gen = st->man.gen;
    s->layers = st->ls->n;
    s->flushes = st->flushes;
    s->compactions = st->compactions;
    s->memtable_bytes = mt_bytes(st->active);
    for (int i = 0; i < st->nfrozen; i++) s->memtable_bytes += mt_bytes(st->frozen[i].mt);
    s->bound = st->ls->bound;
    pthread_rwlock_unlock(&st->lock);
    s->reads = __atomic_load_n(&st->reads, __ATOMIC_RELAXED);
    s->probes = __atomic_load_n(&st->probes, __ATOMIC_RELAXED);
    s->probes_max = __atomic_load_n(&st->probes_max, __ATOMIC_RELAXED);
    s->over_bound = __atomic_load_n(&st->over_bound, __ATOMIC_RELAXED);
}

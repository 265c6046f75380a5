/*
 * store.c -- one branch's versioned store: batches, journal, memtables,
 * layers and manifests put together.  This file holds the layer sets, the
 * repository marker, batches, commits and fsync; reads, flushing and
 * compaction, the lease, start-up keys and open/close have files of their
 * own (store_impl.h lists them).  The design of the whole is here.
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
#include "store_impl.h"
#include "branch.h"
#include "../util/chunkpool.h"
#include "../util/failpoint.h"
#include "journal_remote.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- layer sets ---- */

/* A new layer set with room for N layers (n = 0, one reference). */
layerset *lset_new(size_t n)
{
    layerset *s = calloc(1, sizeof *s + (n ? n : 1) * sizeof(slayer *));
    if (s) s->refs = 1;
    return s;
}

/* Append open layer L (now owned by the sets) to S; 0 or -ENOMEM (L closed). */
int lset_add_new(layerset *s, layer *l)
{
    slayer *sl = malloc(sizeof *sl);
    if (!sl) { layer_close(l); return -ENOMEM; }
    *sl = (slayer){ l, 1 };
    s->l[s->n++] = sl;
    return 0;
}

/* Append a layer of another set to S. */
void lset_add(layerset *s, slayer *sl)
{
    __atomic_add_fetch(&sl->sets, 1, __ATOMIC_RELAXED);
    s->l[s->n++] = sl;
}

/* Take a reference to the current layer set (lock held, shared is enough). */
layerset *lset_hold(store *st)
{
    __atomic_add_fetch(&st->ls->refs, 1, __ATOMIC_RELAXED);
    return st->ls;
}

/* Drop a reference; the last one frees the set, and closes the layers no
 * other set names. */
void lset_release(layerset *s)
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
int store_upload_layer(objstore *os, const char *branch, uint64_t session, const void *buf, size_t len,
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

/* Make room for N more bytes in B.  Its buffer is a chunk_buf_alloc of
 * its capacity: a batch past CHUNK_SMALL (a FUSE write of many pages: up
 * to 1 MiB and their keys) gets a whole pooled chunk, which the next such
 * batch reuses instead of faulting in again (util/chunkpool.h). */
static int store_batch_reserve(store_batch *b, size_t n)
{
    if (b->err) return -1;
    size_t need = b->len + n;
    if (need <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need) cap *= 2;
    if (cap > CHUNK_SMALL && cap < CHUNK_SIZE) cap = CHUNK_SIZE;
    uint8_t *nb = chunk_buf_alloc(cap);
    if (!nb) { b->err = -ENOMEM; return -1; }
    if (b->buf) memcpy(nb, b->buf, b->len);
    chunk_buf_free(b->buf, b->cap);
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

size_t store_batch_mark(const store_batch *b)
{
    return b->len;
}

void store_batch_put_same(store_batch *b, const skey *k, size_t mark, const void *val, size_t vlen)
{
    if (!b->err && vlen > 0 && mark >= 12 && mark <= UINT32_MAX && mark + 7 <= b->len && b->buf[mark] == OP_PUT) {
        const uint8_t *p = b->buf + mark;
        uint16_t kl; uint32_t vl;
        memcpy(&kl, p + 1, 2); memcpy(&vl, p + 3, 4);
        if (vl == vlen && mark + 7 + kl + vl <= b->len && !memcmp(p + 7 + kl, val, vlen)) {
            uint32_t ref = (uint32_t)mark;
            store_batch_op(b, OP_PUT_SAME, k, &ref, sizeof ref);
            return;
        }
    }
    store_batch_put(b, k, val, vlen);
}

void store_batch_free(store_batch *b)
{
    chunk_buf_free(b->buf, b->cap);
    memset(b, 0, sizeof *b);
}

/* Apply a journal payload to the active memtable (commit and replay). */
int store_apply(store *st, const uint8_t *p, size_t len)
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
        const uint8_t *key = p + off + 7, *val = key + kl;
        uint32_t vlen = vl;
        if (type == OP_PUT_SAME) {  /* the value of the earlier put at REF */
            uint32_t ref; uint16_t rkl;
            if (vl != 4) return -EIO;
            memcpy(&ref, val, 4);
            if (ref < 12 || (size_t)ref + 7 > off || p[ref] != OP_PUT) return -EIO;
            memcpy(&rkl, p + ref + 1, 2); memcpy(&vlen, p + ref + 3, 4);
            if ((size_t)ref + 7 + rkl + vlen > off) return -EIO;
            val = p + ref + 7 + rkl;
        } else if (type != OP_PUT && type != OP_DEL) {
            return -EIO;
        }
        int rc = mt_put(st->active, key, kl, seq, type == OP_DEL, val, vlen);
        if (rc) return rc;
        if (type != OP_DEL && key[0] == KEY_INODE && kl == 9) {
            uint64_t ino = key_get64(key + 1);
            if (ino >= st->next_ino) st->next_ino = ino + 1;
        }
        off += 7 + kl + vl;
    }
    if (seq > st->seq) st->seq = seq;
    return 0;
}

/* Journal replay callback: apply records newer than the manifest. */
int store_replay(void *arg, const uint8_t *p, size_t len)
{
    store *st = arg;
    uint64_t seq;
    if (len < 12) return -EIO;
    memcpy(&seq, p, 8);
    if (seq <= st->man.seq) return 0;
    return store_apply(st, p, len);
}

/* Freeze the active memtable (caller holds the write lock). */
int store_freeze(store *st)
{
    if (mt_bytes(st->active) == 0 || st->nfrozen == STORE_MAX_FROZEN) return 0;
    memtable *fresh = mt_new();
    if (!fresh) return -ENOMEM;
    mt_keep_latest(fresh);
    uint64_t upto = 0;
    int rc = st->jn ? journal_rotate(st->jn, &upto) : 0;   /* a snapshot has none */
    if (rc) { mt_free(fresh); return rc; }
    st->frozen[st->nfrozen++] = (frozen){ st->active, upto };
    st->active = fresh;
    return 0;
}

int store_active_full(const store *st)
{
    return (!st->snapshot || st->spill) && mt_bytes(st->active) > st->memtable_limit;
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
void store_rj_drop(store *st, uint64_t upto)
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
void store_room_wake(store *st)
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
double store_elapsed(const struct timespec *a, const struct timespec *b)
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
    if (!rc && store_active_full(st)) {
        if (st->nfrozen < STORE_MAX_FROZEN) {
            rc = store_freeze(st);
            wake = 1;
        } else if (!__atomic_load_n(&st->full, __ATOMIC_RELAXED)) {
            /* every memtable waits for the repository: later commits wait */
            __atomic_store_n(&st->full, 1, __ATOMIC_RELEASE);
            clock_gettime(CLOCK_MONOTONIC, &st->full_since);
            if (!st->snapshot) {  /* a view's overlay waits for the local disk: not worth a line */
                size_t bytes = mt_bytes(st->active);
                for (int i = 0; i < st->nfrozen; i++) bytes += mt_bytes(st->frozen[i].mt);
                fprintf(stderr, "lakefs: branch %s: %zu MiB in %d memtables wait for the object store; "
                        "writes wait until a layer is uploaded\n", st->branch, bytes >> 20, st->nfrozen + 1);
            }
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

/*
 * store_flush.c -- moving one branch's writes into the repository: the
 * flusher writes each frozen memtable as a layer, commits the next manifest
 * generation (put-if-absent: the commit point and the fence against a
 * second writer) and installs it; the compactor merges runs of layers to
 * keep reads within compact_bound; checkpoints flush synchronously for a
 * branch taken from a running mount.  The design is in store.c's comment.
 */
#include "store_impl.h"
#include "../util/failpoint.h"
#include "journal_remote.h"

#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Give the memory a flush or a merge freed back to the kernel.  Cost
 * model: a memtable is ~64 MiB of 8 KiB versions allocated by the FUSE
 * threads, spread over the malloc arenas they share (8 per core), and a
 * merge frees a 32 MiB chunk and a piece of 64 MiB or more; glibc returns
 * only the top of an arena, so without a trim the daemon keeps every
 * arena's peak (measured after pgbench -i -s 50 and a TPC-B run: 490 MiB
 * free inside the arenas, 854 MiB resident for 350 in use).  malloc_trim
 * walks the arenas' free chunks and releases their whole pages: 15 ms on
 * average per call there (80 ms at most), about once per memtable, by the
 * flusher and the compactor with none of the store's locks held. */
static void store_trim(void)
{
    malloc_trim(0);
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

/* Memtable MT as the bytes of a layer, in a new malloc'd *BUF of *LEN
 * (FAST: layer_writer_fast). */
static int store_layer_bytes(const memtable *mt, int fast, void **buf, size_t *len)
{
    build_ctx c = { layer_writer_new(), 0 };
    if (!c.w) return -ENOMEM;
    if (fast) layer_writer_fast(c.w);
    int rc = mt_iterate(mt, NULL, 0, store_build_key, &c);
    if (!rc) rc = layer_writer_finish(c.w, buf, len);
    layer_writer_free(c.w);
    return rc;
}

/* Another writer took the branch over (committed generation GEN, or fenced
 * our remote journal if GEN is 0): refuse every write from now on. */
void store_fence(store *st, uint64_t gen)
{
    if (__atomic_exchange_n(&st->fenced, 1, __ATOMIC_SEQ_CST)) return;
    pthread_mutex_lock(&st->wake_mu);   /* a flush held back for a merge goes on, to fail */
    pthread_cond_broadcast(&st->merged_cv);
    pthread_mutex_unlock(&st->wake_mu);
    store_yield_wake();           /* and so does a merge waiting for a view */
    if (gen)
        fprintf(stderr, "lakefs: branch %s: manifest generation %" PRIu64 " was committed by another writer "
                "(a takeover); this daemon lost the branch and fails every write and fsync from now on\n", st->branch, gen);
    else
        fprintf(stderr, "lakefs: branch %s: another writer fenced this daemon's remote journal (a takeover); "
                "this daemon lost the branch and fails every write and fsync from now on\n", st->branch);
    store_room_wake(st);
}

/* Forget the commit whose outcome was unknown (flush_mu held). */
void store_uncertain_clear(store *st)
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
    void *buf = NULL; size_t len = 0; char *name = NULL;
    int rc = store_layer_bytes(fz->mt, 0, &buf, &len);
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

/* Merges yield to foreground work (store_yield_begin): between its
 * chunks a merge of any store in the process waits while some is under
 * way.  Cost model: a merge reads, decompresses and recompresses 100-500
 * MiB (seconds of zstd on one of two cores) while a view's recovery reads
 * page after page through the daemon, itself CPU-bound (a profile of the
 * daemon during a 1 GiB replay: on a CPU 15 s of 16).  Waiting costs
 * reads at most the layers compact.h's bound allows: a flush that must
 * wait for this merge (flush_held) ends the wait, and so does
 * STORE_YIELD_MAX_S of waiting in one merge. */
#define STORE_YIELD_MAX_S 60
static pthread_mutex_t yield_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t yield_cv = PTHREAD_COND_INITIALIZER;
static int yielders;              /* store_yield_begin calls not yet ended (yield_mu) */

void store_yield_begin(void)
{
    pthread_mutex_lock(&yield_mu);
    yielders++;
    pthread_mutex_unlock(&yield_mu);
}

void store_yield_end(void)
{
    pthread_mutex_lock(&yield_mu);
    if (yielders > 0) yielders--;
    pthread_cond_broadcast(&yield_cv);
    pthread_mutex_unlock(&yield_mu);
}

void store_yield_wake(void)
{
    pthread_mutex_lock(&yield_mu);
    pthread_cond_broadcast(&yield_cv);
    pthread_mutex_unlock(&yield_mu);
}

/* compact_merge's GO: wait while foreground work is under way, unless a
 * flush waits for this merge, the store closes or is fenced, or the merge
 * has waited STORE_YIELD_MAX_S; then 1 (stop) if the store closes. */
static int store_merge_go(void *arg)
{
    store *st = arg;
    struct timespec since, deadline;
    int waited = 0;
    pthread_mutex_lock(&yield_mu);
    while (yielders > 0 && st->merge_waited_ms < STORE_YIELD_MAX_S * 1000 &&
           !__atomic_load_n(&st->stopping, __ATOMIC_RELAXED) && !__atomic_load_n(&st->flush_held, __ATOMIC_RELAXED) &&
           !__atomic_load_n(&st->fenced, __ATOMIC_SEQ_CST)) {
        if (!waited++) {
            /* counted under yield_mu: once store_yield_end returns, every wait begun is */
            if (!st->merge_waited_ms) __atomic_fetch_add(&st->merge_waits, 1, __ATOMIC_RELAXED);
            clock_gettime(CLOCK_MONOTONIC, &since);
            clock_gettime(CLOCK_REALTIME, &deadline);
            long left = STORE_YIELD_MAX_S * 1000 - st->merge_waited_ms;
            deadline.tv_sec += left / 1000;
            deadline.tv_nsec += (left % 1000) * 1000000;
            if (deadline.tv_nsec >= 1000000000) { deadline.tv_sec++; deadline.tv_nsec -= 1000000000; }
        }
        if (pthread_cond_timedwait(&yield_cv, &yield_mu, &deadline) == ETIMEDOUT) break;
    }
    pthread_mutex_unlock(&yield_mu);
    if (waited) {
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        double s = store_elapsed(&since, &now);
        st->merge_waited_ms += (long)(s * 1000) + 1;   /* never 0 once it waited */
        fprintf(stderr, "lakefs: branch %s: a merge waited %.1f s for a time-travel view's recovery\n", st->branch, s);
    }
    return __atomic_load_n(&st->stopping, __ATOMIC_RELAXED);
}

/* Forget the pending merge (flush_mu held); its pieces stay for gc. */
void store_cpend_clear(store *st)
{
    manifest_free(&st->cpend.next);
    compact_pieces_free(st->cpend.pieces, st->cpend.npieces);
    memset(&st->cpend, 0, sizeof st->cpend);
}

/* Commit the pending merge and install its pieces in place of the layers
 * it replaces (flush_mu held).  0 when done; on an unknown outcome it
 * stays pending for the next commit to retry; -EEXIST fences. */
int store_compact_install(store *st)
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
            __atomic_store_n(&st->flush_held, 1, __ATOMIC_RELAXED);
            store_yield_wake();   /* a merge yielding to a view goes on */
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
        __atomic_store_n(&st->flush_held, 0, __ATOMIC_RELAXED);
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
    uint64_t bytes_in = 0, bytes_out = 0;   /* what the merge cost, for its log line */
    struct timespec began = {0}, ended = {0};
    if (due && in) {
        clock_gettime(CLOCK_MONOTONIC, &began);
        for (size_t i = 0; i < count; i++) {
            in[i] = ls->l[first + i]->l;
            bytes_in += layer_size(in[i]);
        }
        st->merge_waited_ms = 0;
        rc = compact_merge(st->os, in, count, first == 0, COMPACT_PIECE_BYTES, COMPACT_CHUNK_BYTES,
                           store_compact_upload, st, store_merge_go, &pieces, &np);
        for (size_t j = 0; !rc && j < np; j++) bytes_out += pieces[j].size;
        clock_gettime(CLOCK_MONOTONIC, &ended);
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
            fprintf(stderr, "lakefs: branch %s: compacted %zu layers into %zu (generation %" PRIu64
                    "): %.1f MiB read, %.1f MiB written in %.3f s\n", st->branch, count, np, st->man.gen,
                    bytes_in / 1048576.0, bytes_out / 1048576.0, store_elapsed(&began, &ended));
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
void *store_compactor(void *arg)
{
    store *st = arg;
    pthread_setname_np(pthread_self(), "lakefs-compact");
    pthread_mutex_lock(&st->wake_mu);
    while (!st->stopping) {
        if (!st->compact_kicked) {
            pthread_cond_wait(&st->compact_cv, &st->wake_mu);
            continue;
        }
        st->compact_kicked = 0;
        pthread_mutex_unlock(&st->wake_mu);
        int rc = store_compact(st);
        if (rc > 0) store_trim();     /* only after merges: a flush kicks this with none due */
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

/* A snapshot's flush (store_spill): frozen memtable FZ as a layer of its
 * scratch store, opened from there into *L.  No manifest, no upload: the
 * overlay is gone at store_close. */
static int store_spill_layer(store *st, const frozen *fz, layer **l)
{
    void *buf = NULL;
    size_t len = 0;
    char name[64];
    snprintf(name, sizeof name, "overlay-%016" PRIx64 "-%016" PRIx64 ".layer", mt_min_seq(fz->mt), mt_max_seq(fz->mt));
    int rc = store_layer_bytes(fz->mt, 1, &buf, &len);   /* local and short-lived: CPU over bytes */
    if (!rc) rc = os_put_if_absent(st->spill, name, buf, len);
    if (!rc) rc = layer_open_uploaded(st->spill, name, buf, len, l);
    free(buf);
    if (rc)
        fprintf(stderr, "lakefs: view of branch %s: writing %zu MiB of its overlay to %s/%s failed: %s (kept in "
                "memory, tried again)\n", st->branch, mt_bytes(fz->mt) >> 20, os_url(st->spill), name, strerror(-rc));
    return rc;
}

/* What a flush of the oldest frozen memtable starts from: the memtable,
 * the current layer set's size and bound, and room for a set one layer
 * larger, allocated before anything is written or committed. */
typedef struct flush_job {
    frozen fz;
    size_t nl, bound;             /* the current set's layers and bound */
    layerset *ls;                 /* the next set, room for nl + 1 layers */
    slayer *sl;                   /* the new layer's place in it */
} flush_job;

/* 1 with J ready, 0 if no memtable is frozen, or -ENOMEM. */
static int flush_job_begin(store *st, flush_job *j)
{
    pthread_rwlock_rdlock(&st->lock);
    int any = st->nfrozen > 0;
    if (any) *j = (flush_job){ .fz = st->frozen[0], .nl = st->ls->n, .bound = st->ls->bound };
    pthread_rwlock_unlock(&st->lock);
    if (!any) return 0;
    j->ls = lset_new(j->nl + 1);
    j->sl = malloc(sizeof *j->sl);
    if (j->ls && j->sl) return 1;
    free(j->ls);
    free(j->sl);
    return -ENOMEM;
}

/* Layer L, written from J's memtable, goes on top of the layer set (the
 * new set's bound BOUND) and the memtable is freed; NEXT, if not NULL
 * (a snapshot commits none), becomes the committed manifest.  Commits
 * waiting for room go on; 1 if some waited. */
static int flush_job_install(store *st, flush_job *j, layer *l, size_t bound, manifest *next)
{
    pthread_rwlock_wrlock(&st->lock);
    j->ls->bound = bound;
    for (size_t i = 0; i < j->nl; i++) lset_add(j->ls, st->ls->l[i]);
    *j->sl = (slayer){ l, 1 };
    j->ls->l[j->ls->n++] = j->sl;
    layerset *old = st->ls;
    st->ls = j->ls;
    memmove(&st->frozen[0], &st->frozen[1], (size_t)(st->nfrozen - 1) * sizeof(frozen));
    st->nfrozen--;
    st->flushes++;
    if (next) {
        manifest_free(&st->man);
        st->man = *next;
        st->merge_flushes++;
        store_rj_drop(st, st->man.seq);   /* in a layer now: no upload needed */
    }
    int was_full = __atomic_exchange_n(&st->full, 0, __ATOMIC_ACQ_REL);
    pthread_rwlock_unlock(&st->lock);
    lset_release(old);
    mt_free(j->fz.mt);
    if (was_full) store_room_wake(st);
    return was_full;
}

/* A snapshot's store_flush_one: the oldest frozen memtable of its overlay
 * as a layer of its scratch store (store_spill), read from there. */
static int store_spill_one(store *st)
{
    flush_job j;
    layer *l = NULL;
    int rc = flush_job_begin(st, &j);
    if (rc <= 0) return rc;
    if ((rc = store_spill_layer(st, &j.fz, &l))) {
        free(j.ls);
        free(j.sl);
        return rc;
    }
    flush_job_install(st, &j, l, j.bound + 1, NULL);   /* a view's reads consult its overlay's layers too */
    return 0;
}

int store_flush_one(store *st)
{
    if (st->snapshot) return store_spill_one(st);
    int rc = st->cpend.next.gen ? store_compact_install(st) : 0;
    flush_job j;
    if (!rc) rc = flush_job_begin(st, &j);
    if (rc <= 0) return rc;
    manifest next = {0};
    layer *l = NULL;
    rc = 0;
    if (st->uncertain.gen) {      /* the last commit's outcome is unknown: that one again */
        next = st->uncertain;
        l = st->uncertain_layer;
        memset(&st->uncertain, 0, sizeof st->uncertain);
        st->uncertain_layer = NULL;
    } else {
        rc = store_build_layer(st, &j.fz, &next, &l);
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
                    mt_min_seq(j.fz.mt), mt_max_seq(j.fz.mt), strerror(-rc));
        if (l) layer_close(l);
        manifest_free(&next);
        free(j.ls);
        free(j.sl);
        return rc;
    }
    uint64_t flushed = mt_max_seq(j.fz.mt), journal_upto = j.fz.journal_upto;
    if (flush_job_install(st, &j, l, compact_bound(&next, st->layer_prefix), &next)) {
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        fprintf(stderr, "lakefs: branch %s: writes resume after waiting %.1f s for the object store\n",
                st->branch, store_elapsed(&st->full_since, &now));
    }
    pthread_mutex_lock(&st->wake_mu);
    st->compact_kicked = 1;
    pthread_cond_signal(&st->compact_cv);
    pthread_mutex_unlock(&st->wake_mu);
    if (st->remote && (rc = jremote_trim(st->os, st->branch, st->session, flushed)))
        fprintf(stderr, "lakefs: branch %s: removing remote journal segments up to seq %" PRIu64 " failed: %s (left for gc)\n",
                st->branch, flushed, strerror(-rc));
    return journal_drop(st->jn, journal_upto);
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
void *store_flusher(void *arg)
{
    store *st = arg;
    pthread_setname_np(pthread_self(), "lakefs-flush");
    int trc;
    if (st->folded && (trc = jremote_trim(st->os, st->branch, st->folded, st->folded_end)))
        fprintf(stderr, "lakefs: branch %s: removing the folded journal of session %" PRIu64 " failed: %s (left for gc)\n",
                st->branch, st->folded, strerror(-trc));
    pthread_mutex_lock(&st->wake_mu);
    while (!st->stopping) {
        pthread_rwlock_wrlock(&st->lock);
        /* store_flush_soon: freeze what it asked for once the frozen ones are done */
        if (!st->nfrozen && mt_bytes(st->active) && mt_min_seq(st->active) <= st->flush_wanted) store_freeze(st);
        /* a commit that filled the active memtable while every other one
         * waited for the repository could not freeze it (store_commit): the
         * flush that made room does, or it would wait for the next commit */
        if (store_active_full(st)) store_freeze(st);
        int pending = st->nfrozen;
        pthread_rwlock_unlock(&st->lock);
        if (pending) {
            st->kicked = 0;
            pthread_mutex_unlock(&st->wake_mu);
            pthread_mutex_lock(&st->flush_mu);
            store_flush_hold(st);
            int rc = store_flush_one(st);
            pthread_mutex_unlock(&st->flush_mu);
            if (!rc) store_trim();    /* a failed flush freed nothing */
            pthread_mutex_lock(&st->wake_mu);
            if (rc && !st->kicked && !st->stopping)   /* back off, then retry */
                store_flusher_sleep(st, STORE_RETRY_SECONDS);
            continue;
        }
        /* idle: look for a takeover now and then */
        if (store_flusher_sleep(st, STORE_FENCE_CHECK_SECONDS) && !st->kicked && !st->stopping && !st->snapshot &&
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

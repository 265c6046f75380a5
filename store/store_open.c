/*
 * store_open.c -- opening and closing one branch's store: the state
 * directory and its writer id, replaying the local journal or setting it
 * aside, folding the previous session's remote journal, opening the layers
 * in parallel, read-only snapshot stores, the flush at close with the
 * closed manifest, and the counters.  The design is in store.c's comment.
 */
#include "store_impl.h"
#include "branch.h"
#include "../util/dirlock.h"
#include "../util/failpoint.h"
#include "journal_remote.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

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
        if (strncmp(de->d_name, "journal.", 8) && strncmp(de->d_name, "journal-spare.", 14)) continue;
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
 * collection honours (repo/gc.h). */
static int store_pin(store *st, uint64_t gen)
{
    char key[512], me[400], body[600];
    uint64_t rnd;
    if (getentropy(&rnd, sizeof rnd) < 0) return -errno;
    snprintf(key, sizeof key, "branches/%s/pins/%020" PRIu64 "-%016" PRIx64, st->branch, gen, rnd);
    lease_machine_id(me, sizeof me);
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
     * already removed the manifest, or will see the pin (repo/gc.c); no
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

int store_spill(store *st, const char *dir, size_t memtable_limit, char *err, size_t errlen)
{
    if (!st->snapshot || st->spill) {
        snprintf(err, errlen, "branch %s: only a snapshot's overlay spills, once", st->branch);
        return -EINVAL;
    }
    int rc = os_open_scratch(dir, &st->spill, err, errlen);
    if (rc) return rc;
    if (memtable_limit) st->memtable_limit = memtable_limit;
    if ((rc = -pthread_create(&st->flusher, NULL, store_flusher, st))) {
        snprintf(err, errlen, "cannot start the overlay writer of a view of branch %s: %s", st->branch, strerror(-rc));
        return rc;                /* store_close removes DIR */
    }
    st->flusher_running = 1;
    return 0;
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
    store_yield_wake();           /* a merge waiting for a view's recovery stops */
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
    if (st->jn) {
        journal_stats js;
        journal_get_stats(st->jn, &js);
        if (js.syncs)
            fprintf(stderr, "lakefs: branch %s: journal: %" PRIu64 " fdatasyncs, %.1f KiB and %.0f us each on average, "
                    "the longest %.1f ms\n", st->branch, js.syncs, (double)js.bytes / 1024 / (double)js.syncs,
                    (double)js.ns / 1000 / (double)js.syncs, (double)js.max_ns / 1e6);
        journal_close(st->jn);
    }
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
    lset_release(st->ls);         /* closes the overlay's layers: then their directory goes */
    os_close(st->spill);
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
    s->merge_waits = __atomic_load_n(&st->merge_waits, __ATOMIC_RELAXED);
    s->memtable_bytes = mt_bytes(st->active);
    for (int i = 0; i < st->nfrozen; i++) s->memtable_bytes += mt_bytes(st->frozen[i].mt);
    s->bound = st->ls->bound;
    pthread_rwlock_unlock(&st->lock);
    s->reads = __atomic_load_n(&st->reads, __ATOMIC_RELAXED);
    s->probes = __atomic_load_n(&st->probes, __ATOMIC_RELAXED);
    s->probes_max = __atomic_load_n(&st->probes_max, __ATOMIC_RELAXED);
    s->over_bound = __atomic_load_n(&st->over_bound, __ATOMIC_RELAXED);
}

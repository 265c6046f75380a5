/*
 * fs_view.c -- the branches a mount serves (fs_impl.h): a view per branch
 * or time-travel point, opened when branches/NAME is first looked up,
 * released by lakefs branch delete, closed when a time-travel view has
 * been idle; the base thread, which flushes a branch once PostgreSQL
 * completed a checkpoint on it, after the write-back barrier
 * (fs_writeback.c); and the mount itself (fs_new, fs_free).  See fs.c's
 * head comment for the inode numbering and locking they follow.
 */
#include "fs_impl.h"

/* ---- views: the branches the mount serves ---- */

/* The view serving branch NAME, or NULL (m->mu held). */
fs_view *fs_view_find(fs_mount *m, const char *name)
{
    for (uint32_t id = 1; id <= m->nviews; id++)
        if (m->views[id]->st && !strcmp(m->views[id]->name, name)) return m->views[id];
    return NULL;
}

/* Unlink, in one batch, the entries of the branch root that PostgreSQL
 * left for a server that cannot be running on this view (pg_view.h). */
static int view_drop_stale(fs_view *v)
{
    store_batch b;
    store_batch_init(&b);
    int64_t now = fs_now_ns();
    fs_attr root, a;
    int n = 0, rc = fs_attr_load(v->st, FS_ROOT_INO, &root);
    for (const char *const *name = pg_view_stale_files(); !rc && *name; name++) {
        uint64_t child;
        int lrc = fs_dirent_load(v->st, FS_ROOT_INO, *name, &child, NULL);
        if (lrc == -ENOENT) continue;
        if (!(rc = lrc) && !(rc = fs_attr_load(v->st, child, &a)) && !S_ISDIR(a.mode)) {
            fs_dirent_del(&b, FS_ROOT_INO, *name);
            a.nlink--;
            a.ctime = now;
            fs_attr_put(&b, child, &a);
            n++;
        }
    }
    if (!rc && n) {
        root.mtime = root.ctime = now;
        fs_attr_put(&b, FS_ROOT_INO, &root);
        if (!(rc = store_commit(v->st, &b)))
            fprintf(stderr, "lakefs: branch %s: removed %d PostgreSQL lock file%s (postmaster.pid) of a server "
                    "not running on this mount\n", v->name, n, n > 1 ? "s" : "");
    }
    store_batch_free(&b);
    return rc;
}

/* In batch B, append LEN bytes of DATA to file NAME in the root (ROOT its
 * attributes), creating it (mode 0600, owned as the root) if need be. */
static int root_file_append(store *st, store_batch *b, const fs_attr *root, const char *name,
                            const char *data, size_t len)
{
    uint64_t ino;
    fs_attr a;
    int rc = fs_dirent_load(st, FS_ROOT_INO, name, &ino, NULL);
    if (rc == -ENOENT) {
        ino = store_alloc_ino(st);
        memset(&a, 0, sizeof a);
        a.mode = S_IFREG | 0600; a.uid = root->uid; a.gid = root->gid; a.nlink = 1;
        a.atime = fs_now_ns();
        fs_dirent_put(b, FS_ROOT_INO, name, ino, a.mode);
        rc = 0;
    } else if (!rc && !(rc = fs_attr_load(st, ino, &a)) && !S_ISREG(a.mode)) {
        rc = -EEXIST;
    }
    uint8_t page[PAGE];
    for (size_t done = 0; !rc && done < len;) {
        uint64_t pos = a.size + done, pg = pos / PAGE, in = pos % PAGE;
        size_t take = PAGE - in < len - done ? PAGE - in : len - done;
        if (in) rc = fs_page_load(st, &a, ino, pg, page);
        else memset(page, 0, PAGE);   /* past EOF: zero */
        if (!rc) {
            memcpy(page + in, data + done, take);
            fs_page_put(b, &a, ino, pg, page);
        }
        done += take;
    }
    if (!rc) {
        a.size += len;
        a.mtime = a.ctime = fs_now_ns();
        fs_attr_put(b, ino, &a);
    }
    return rc;
}

int fs_add_recovery(store *st, int read_write)
{
    char conf[1024];
    const char *signal;
    pg_target_settings(read_write, conf, sizeof conf, &signal);
    fs_attr root;
    store_batch b;
    store_batch_init(&b);
    int rc = fs_attr_load(st, FS_ROOT_INO, &root);
    if (!rc) rc = root_file_append(st, &b, &root, "postgresql.auto.conf", conf, strlen(conf));
    if (!rc) rc = root_file_append(st, &b, &root, signal, "", 0);
    if (!rc) {
        root.mtime = root.ctime = fs_now_ns();
        fs_attr_put(&b, FS_ROOT_INO, &root);
        rc = store_commit(st, &b);
    }
    store_batch_free(&b);
    return rc;
}

/* 1 if NAME can name a view: a branch name, optionally followed by
 * "@TARGET" (checked when the view is opened). */
static int view_name_valid(const char *name)
{
    const char *at = strchr(name, '@');
    char branch[BRANCH_NAME_MAX + 1];
    if (!at) return branch_name_valid(name);
    if ((size_t)(at - name) > BRANCH_NAME_MAX || !at[1] || strlen(name) >= sizeof ((fs_view *)0)->name) return 0;
    memcpy(branch, name, (size_t)(at - name));
    branch[at - name] = 0;
    return branch_name_valid(branch);
}

/* The view of branch NAME, opened through cfg.ops if no view serves it
 * yet (m->mu held): 0 or -errno (-ENOENT: no such branch). */
static int view_open(fs_mount *m, const char *name, fs_view **out, char *err, size_t errlen)
{
    if ((*out = fs_view_find(m, name))) return 0;
    /* a time-travel view closed when idle comes back under its old id: the
     * kernel's stale inodes of it then name the same files of the same
     * point, and a view used now and then does not use up the ids */
    fs_view *v = NULL;
    for (uint32_t id = 1; id <= m->nviews && !v; id++)
        if (m->views[id]->past && !m->views[id]->st && !strcmp(m->views[id]->name, name)) v = m->views[id];
    int reuse = v != NULL;
    if (!reuse && m->nviews + 1 >= MAX_VIEWS) {
        snprintf(err, errlen, "this mount has opened %u branches, its limit; remount to serve more", m->nviews);
        return -EMFILE;
    }
    if (!reuse && !(v = calloc(1, sizeof *v))) return -ENOMEM;
    fs_branch fb = { 0 };
    int rc = m->cfg.ops.open(m->cfg.ops.arg, name, &fb, err, errlen);
    if (rc) { if (!reuse) free(v); return rc; }
    if (reuse) {
        pthread_rwlock_wrlock(&v->lock);   /* requests on its stale inodes wait for it whole */
    } else {
        snprintf(v->name, sizeof v->name, "%s", name);
        pthread_rwlockattr_t at;
        pthread_rwlockattr_init(&at);
        /* a release must not wait for a pause in a busy server's traffic */
        pthread_rwlockattr_setkind_np(&at, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
        pthread_rwlock_init(&v->lock, &at);
        pthread_rwlockattr_destroy(&at);
    }
    v->st = fb.st;
    v->arch = (pg_archive){ fb.archive, fb.archive_end };
    v->past = fb.past;
    v->used_ns = fs_mono_ns();
    if ((rc = view_drop_stale(v)))
        snprintf(err, errlen, "branch %s: cannot remove a stale postmaster.pid: %s", name, strerror(-rc));
    else if (fb.past && (rc = fs_add_recovery(v->st, 0)))
        snprintf(err, errlen, "view %s: cannot write its recovery settings: %s", name, strerror(-rc));
    else if (!fb.past && (rc = pg_wal_open(v->st, &v->wal)))
        snprintf(err, errlen, "branch %s: cannot read its recorded WAL position: %s", name, strerror(-rc));
    if (rc) {
        m->cfg.ops.close(m->cfg.ops.arg, name, &fb);
        v->st = v->arch.st = NULL;
        if (reuse) {
            pthread_rwlock_unlock(&v->lock);
        } else {
            pthread_rwlock_destroy(&v->lock);
            free(v);
        }
        return rc;
    }
    store_hot_seal(v->st);        /* every open reads that much again */
    if (reuse) {
        pthread_rwlock_unlock(&v->lock);
    } else {
        v->id = m->nviews + 1;
        __atomic_store_n(&m->views[v->id], v, __ATOMIC_RELEASE);
        __atomic_store_n(&m->nviews, v->id, __ATOMIC_RELEASE);
    }
    *out = v;
    return 0;
}

int fs_new(const fs_config *cfg, fs_mount **out)
{
    fs_mount *m = calloc(1, sizeof *m);
    if (!m) return -ENOMEM;
    m->cfg = *cfg;
    pthread_mutex_init(&m->mu, NULL);
    pthread_mutex_init(&m->se_mu, NULL);
    pthread_mutex_init(&m->dirs_mu, NULL);
    pthread_mutex_init(&m->base_mu, NULL);
    pthread_cond_init(&m->base_cv, NULL);
    pthread_mutex_init(&m->writers_mu, NULL);
    pthread_mutex_init(&m->barrier_mu, NULL);
    fs_inode_init();
    *out = m;
    return 0;
}

/* The base thread: when views want a base, the write-back barrier, then
 * their stores flushed (fs_base_soon).  A barrier that fails is logged:
 * the base is then what a crash would leave, which PostgreSQL with fsync
 * on recovers from. */
static void *base_main(void *arg)
{
    fs_mount *m = arg;
    pthread_mutex_lock(&m->base_mu);
    for (;;) {
        while (!m->base_pending && !m->base_stop) pthread_cond_wait(&m->base_cv, &m->base_mu);
        if (m->base_stop) break;
        m->base_pending = 0;
        pthread_mutex_unlock(&m->base_mu);
        uint32_t n = __atomic_load_n(&m->nviews, __ATOMIC_ACQUIRE);
        for (uint32_t id = 1; id <= n; id++) {
            fs_view *v = __atomic_load_n(&m->views[id], __ATOMIC_ACQUIRE);
            if (!v || !__atomic_exchange_n(&v->base_wanted, 0, __ATOMIC_ACQ_REL)) continue;
            int rc = fs_writeback_barrier(m, id);
            if (rc)
                fprintf(stderr, "lakefs: branch %s: cannot have the kernel write back its dirty pages before a "
                        "checkpoint's flush: %s (the base is what a crash would leave)\n", v->name, strerror(-rc));
            pthread_rwlock_rdlock(&v->lock);
            if (v->st) store_flush_soon(v->st);
            pthread_rwlock_unlock(&v->lock);
        }
        pthread_mutex_lock(&m->base_mu);
    }
    pthread_mutex_unlock(&m->base_mu);
    return NULL;
}

void fs_base_soon(fs_mount *m, fs_view *v)
{
    pthread_mutex_lock(&m->base_mu);
    int queued = m->base_running && !m->base_stop;
    if (queued) {
        __atomic_store_n(&v->base_wanted, 1, __ATOMIC_RELEASE);
        m->base_pending = 1;
        pthread_cond_signal(&m->base_cv);
    }
    pthread_mutex_unlock(&m->base_mu);
    if (!queued) store_flush_soon(v->st);   /* no writeback cache: nothing held back */
}

void fs_set_session(fs_mount *m, struct fuse_session *se)
{
    pthread_mutex_lock(&m->se_mu);
    m->se = se;
    pthread_mutex_unlock(&m->se_mu);
    pthread_mutex_lock(&m->base_mu);
    int start = se && m->writeback && !m->base_running;
    int stop = !se && m->base_running;
    if (start) m->base_running = pthread_create(&m->base_thread, NULL, base_main, m) == 0;
    if (stop) {
        m->base_stop = 1;
        pthread_cond_signal(&m->base_cv);
    }
    pthread_mutex_unlock(&m->base_mu);
    if (stop) {
        pthread_join(m->base_thread, NULL);
        pthread_mutex_lock(&m->base_mu);
        m->base_running = m->base_stop = 0;
        pthread_mutex_unlock(&m->base_mu);
    }
}

/* Make the kernel forget branches/NAME (a repository mount being served);
 * never called with m->mu held: the kernel may wait for a lookup in
 * branches/ that waits for m->mu. */
static void forget_branch_entry(fs_mount *m, const char *name)
{
    pthread_mutex_lock(&m->se_mu);
    if (m->se && !m->cfg.branch)
        fuse_lowlevel_notify_inval_entry(m->se, SYN_BRANCHES, name, strlen(name));
    pthread_mutex_unlock(&m->se_mu);
}

int fs_open_branch(fs_mount *m, const char *name, char *err, size_t errlen)
{
    fs_view *v;
    pthread_mutex_lock(&m->mu);
    int rc = view_open(m, name, &v, err, errlen);
    pthread_mutex_unlock(&m->mu);
    if (rc == -ENOENT && !*err) snprintf(err, errlen, "branch '%s' does not exist; see lakefs branch list", name);
    return rc;
}

/* R: a reference to the view serving NAME.  0, or -ENOENT if none. */
static int ref_named(fs_mount *m, const char *name, fs_ref *r)
{
    /* without m->mu: a lookup opening a time-travel view holds it while it
     * asks, through the control socket, for a checkpoint of the branch
     * looked up here.  Views are published complete and their names never
     * change. */
    fs_view *v = NULL;
    uint32_t n = __atomic_load_n(&m->nviews, __ATOMIC_ACQUIRE);
    for (uint32_t id = n; id >= 1 && !v; id--) {   /* newest first: a released view keeps its name */
        fs_view *c = __atomic_load_n(&m->views[id], __ATOMIC_ACQUIRE);
        if (c && !strcmp(c->name, name)) v = c;
    }
    if (!v) return -ENOENT;
    int rc = fs_ref_get(m, (fuse_ino_t)v->id << VIEW_SHIFT | FS_ROOT_INO, r);
    return rc == -ESTALE ? -ENOENT : rc;
}

/* The write-back barrier (fs_writeback.c) on the view serving NAME, before
 * WHAT: 0 (also when NAME is not served or the cache is off), or -errno,
 * logged. */
static int writeback_named(fs_mount *m, const char *name, const char *what)
{
    fs_ref r;
    if (!m->writeback || ref_named(m, name, &r)) return 0;
    uint32_t id = r.v->id;
    fs_ref_put(&r);               /* the barrier waits for requests on the view: hold nothing */
    int rc = fs_writeback_barrier(m, id);
    if (rc)
        fprintf(stderr, "lakefs: branch %s: cannot have the kernel write back its dirty pages before %s: %s\n", name,
                what, strerror(-rc));
    return rc;
}

int fs_checkpoint(fs_mount *m, const char *name, uint64_t *seq, uint64_t *gen)
{
    fs_ref r;
    int rc = writeback_named(m, name, "a checkpoint");
    if (rc) return rc;
    rc = ref_named(m, name, &r);
    if (!rc) {
        rc = store_checkpoint(r.st, seq, gen);
        fs_ref_put(&r);
    }
    return rc == -ESTALE ? -ENOENT : rc;
}

int fs_foreach_branch(fs_mount *m, fs_branch_fn fn, void *arg)
{
    int rc = 0;
    uint32_t n = __atomic_load_n(&m->nviews, __ATOMIC_ACQUIRE);
    for (uint32_t id = 1; id <= n && !rc; id++) {
        fs_view *v = __atomic_load_n(&m->views[id], __ATOMIC_ACQUIRE);
        if (!v) continue;
        pthread_rwlock_rdlock(&v->lock);
        if (v->st && v->wal) rc = fn(arg, v->name, v->st);   /* a branch, not a time-travel view */
        pthread_rwlock_unlock(&v->lock);
    }
    return rc;
}

int fs_stats(fs_mount *m, const char *name, store_stats *s)
{
    fs_ref r;
    int rc = ref_named(m, name, &r);
    if (!rc) {
        store_get_stats(r.st, s);
        fs_ref_put(&r);
    }
    return rc;
}

void fs_view_recovering(fs_view *v, int on)
{
    if (!v->past || __atomic_exchange_n(&v->recovering, on, __ATOMIC_ACQ_REL) == on) return;
    int64_t now = fs_mono_ns();
    if (on) {
        __atomic_store_n(&v->recovering_since, now, __ATOMIC_RELAXED);
        store_yield_begin();
        fprintf(stderr, "lakefs: view %s: a server starts on it and recovers; merges wait until it is done\n", v->name);
    } else {
        store_yield_end();
        fprintf(stderr, "lakefs: view %s: its server's recovery is over after %.1f s; merges go on\n", v->name,
                (double)(now - __atomic_load_n(&v->recovering_since, __ATOMIC_RELAXED)) / 1e9);
    }
}

/* Stop serving V, its lock held for writing (no request in flight). */
static int view_release_locked(fs_mount *m, fs_view *v)
{
    fs_view_recovering(v, 0);
    fs_branch fb = { v->st, v->arch.st, v->arch.end, v->past };
    v->st = v->arch.st = NULL;
    pg_wal_close(v->wal);
    v->wal = NULL;
    return fb.st ? m->cfg.ops.close(m->cfg.ops.arg, v->name, &fb) : 0;
}

static int view_release(fs_mount *m, fs_view *v)
{
    pthread_rwlock_wrlock(&v->lock);
    int rc = view_release_locked(m, v);
    pthread_rwlock_unlock(&v->lock);
    return rc;
}

/* 1 if a server may be running on view V: its root holds PostgreSQL's
 * lock file (pg_view.h).  V's lock is held. */
static int view_server_may_run(fs_view *v)
{
    uint64_t child;
    return fs_dirent_load(v->st, FS_ROOT_INO, pg_view_lock_file(), &child, NULL) != -ENOENT;
}

int fs_close_idle_views(fs_mount *m, int64_t idle_ns)
{
    int closed = 0;
    int64_t now = fs_mono_ns();
    if (m->cfg.branch) return 0;  /* a branch mount's view is its root: it stays */
    for (uint32_t id = 1; id <= __atomic_load_n(&m->nviews, __ATOMIC_ACQUIRE); id++) {
        pthread_mutex_lock(&m->mu);  /* no lookup of branches/NAME meanwhile (it holds V before letting go) */
        fs_view *v = m->views[id];
        int64_t used = 0;
        int rc = 1;
        /* a busy view (a request in flight) is left for the next call:
         * lookups in branches/ must not wait behind it for m->mu */
        if (v->past && v->st && !pthread_rwlock_trywrlock(&v->lock)) {
            /* no request in flight now, and none can open a file before the unlock */
            used = __atomic_load_n(&v->used_ns, __ATOMIC_RELAXED);
            if (now - used >= idle_ns && !__atomic_load_n(&v->handles, __ATOMIC_RELAXED) && !view_server_may_run(v))
                rc = view_release_locked(m, v);
            pthread_rwlock_unlock(&v->lock);
        }
        pthread_mutex_unlock(&m->mu);
        if (rc == 1) continue;
        forget_branch_entry(m, v->name);   /* the next use opens it afresh */
        fprintf(stderr, "lakefs: view %s: unused for %" PRId64 " s, closed (what was written on it is dropped; "
                "it opens again at the same point when used)%s%s\n", v->name, (now - used) / 1000000000,
                rc ? ": " : "", rc ? strerror(-rc) : "");
        closed++;
    }
    return closed;
}

int fs_release_branch(fs_mount *m, const char *name)
{
    writeback_named(m, name, "its release");   /* what the kernel holds goes into the last flush; logged */
    pthread_mutex_lock(&m->mu);
    fs_view *v = fs_view_find(m, name);
    int rc = v ? view_release(m, v) : -ENOENT;
    pthread_mutex_unlock(&m->mu);
    if (v) forget_branch_entry(m, name);
    return rc;
}

int fs_free(fs_mount *m)
{
    int rc = 0;
    if (!m) return 0;
    for (uint32_t id = 1; id <= m->nviews; id++) {
        int vrc = view_release(m, m->views[id]);
        if (vrc && !rc) rc = vrc;
        pthread_rwlock_destroy(&m->views[id]->lock);
        free(m->views[id]);
    }
    fs_dirs_free(m);
    fs_writeback_free(m);
    pthread_mutex_destroy(&m->writers_mu);
    pthread_mutex_destroy(&m->barrier_mu);
    pthread_mutex_destroy(&m->base_mu);
    pthread_cond_destroy(&m->base_cv);
    pthread_mutex_destroy(&m->mu);
    pthread_mutex_destroy(&m->se_mu);
    pthread_mutex_destroy(&m->dirs_mu);
    free(m);
    return rc;
}

/* Entry branches/NAME: its view's root, the view opened if need be. */
void fs_lookup_branch(fuse_req_t req, fs_mount *m, const char *name)
{
    char err[512] = "";
    fs_view *v;
    fs_ref r;
    fs_attr a;
    pthread_mutex_lock(&m->mu);
    int rc = view_name_valid(name) ? view_open(m, name, &v, err, sizeof err) : -ENOENT;
    /* held before m->mu is let go: an idle close cannot take it meanwhile */
    if (!rc) rc = fs_ref_get(m, (fuse_ino_t)v->id << VIEW_SHIFT | FS_ROOT_INO, &r);
    pthread_mutex_unlock(&m->mu);
    if (rc && err[0]) fprintf(stderr, "lakefs: cannot serve %s: %s\n", name, err);
    if (rc) { fuse_reply_err(req, rc == -ESTALE ? ENOENT : -rc); return; }
    rc = fs_attr_load(r.st, FS_ROOT_INO, &a);
    if (rc) {
        fuse_reply_err(req, -rc);
    } else {
        struct fuse_entry_param e;
        memset(&e, 0, sizeof e);
        e.ino = fs_to_fuse(m, r.v, FS_ROOT_INO);
        fs_attr_to_stat(&a, e.ino, &e.attr);
        e.attr_timeout = TIMEOUT;
        e.entry_timeout = BRANCH_TIMEOUT;
        fuse_reply_entry(req, &e);
    }
    fs_ref_put(&r);
}

/*
 * harness_repo.h -- a scratch file:// repository holding a branch "main"
 * (root directory attributes only), for the unit tests that open branch
 * stores, and directory entries encoded as fs.c writes them.  Include
 * after harness.h and store.h.
 */
#ifndef LAKEFS_HARNESS_REPO_H
#define LAKEFS_HARNESS_REPO_H

typedef struct env {
    char root[64], repo[128], url[160];
    objstore *os;
} env;

/* A fresh repository in a scratch directory, with branch main. */
static inline void env_init(env *e)
{
    char err[256] = "";
    skey k;
    memset(e, 0, sizeof *e);
    harness_repo_dirs(e->root, e->repo, e->url);
    if (os_open(e->url, &e->os, err, sizeof err)) { fprintf(stderr, "os_open: %s\n", err); exit(2); }
    CHECK(store_repo_create(e->os) == 0);
    key_inode(&k, 1);
    CHECK(store_branch_create(e->os, "main", &k, "root", 4) == 0);
}

static inline void env_free(env *e)
{
    os_close(e->os);
    harness_rmtree(e->root);
}

/* Open BRANCH read-write, its state in ROOT/state/BRANCH, freezing the
 * memtable past LIMIT bytes (0: the default), its flusher started. */
static inline store *env_open(env *e, const char *branch, size_t limit)
{
    char err[512] = "", state[256];
    snprintf(state, sizeof state, "%s/state/%s", e->root, branch);
    store_config cfg = { .os = e->os, .branch = branch, .state_dir = state, .memtable_limit = limit };
    store *st = NULL;
    if (store_open(&cfg, &st, err, sizeof err)) { fprintf(stderr, "store_open %s: %s\n", branch, err); exit(2); }
    if (store_start(st)) { fprintf(stderr, "store_start %s failed\n", branch); exit(2); }
    return st;
}

/* Put (MODE != 0) or delete entry NAME of DIR -> CHILD into B, as fs.c
 * encodes it: the child, 8 bytes little-endian, then S_IFMT >> 12. */
static inline void dirent_op(store_batch *b, uint64_t dir, const char *name, uint64_t child, uint32_t mode)
{
    uint8_t v[9];
    skey k;
    for (int i = 0; i < 8; i++) v[i] = (uint8_t)(child >> (8 * i));
    v[8] = (uint8_t)((mode & S_IFMT) >> 12);
    key_dirent(&k, dir, name, strlen(name));
    if (mode) store_batch_put(b, &k, v, sizeof v);
    else store_batch_del(b, &k);
}

#ifdef LAKEFS_PG_WAL_H
/* A WAL observer of ST (fs/pg/pg_wal.h), or exit. */
static inline pg_wal *must_observe(store *st)
{
    pg_wal *w = NULL;
    if (pg_wal_open(st, &w)) { fprintf(stderr, "pg_wal_open failed\n"); exit(2); }
    return w;
}
#endif

/* Commit one dirent_op. */
static inline void dirent(store *st, uint64_t dir, const char *name, uint64_t child, uint32_t mode)
{
    store_batch b;
    store_batch_init(&b);
    dirent_op(&b, dir, name, child, mode);
    CHECK(store_commit(st, &b) == 0);
    store_batch_free(&b);
}

#endif

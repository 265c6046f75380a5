/*
 * pg_wal.c -- the WAL observer: the highest LSN written, as a versioned
 * meta key in the same batch as the write that reached it (see pg_wal.h).
 *
 * The cache inode -> segment is an open-addressing hash table of fixed
 * size (linear probing; a forgotten inode leaves a tombstone), emptied when
 * it is three quarters full: it is only a cache, and one scan of pg_wal/
 * refills every segment at once.  A scan reads the store without any inode
 * lock, so a rename or unlink may land while it runs; each forget counts,
 * and a scan that saw the count move keeps its answer for the one inode
 * whose write asked (its name cannot change meanwhile) and caches nothing.
 * Forgetting the inode the root's pg_wal entry names (the directory moved
 * or went, or a symlink there was replaced), or any inode while there is
 * no pg_wal/ (a directory may be renamed to it), empties the cache.
 *
 * Directory entries are decoded with fs/fs_format.h, as fs.c writes them.
 */
#include "pg_wal.h"
#include "../fs.h"
#include "../fs_format.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define PW_KEY "wal_lsn"          /* the meta key: the LSN, 8 bytes little-endian */
#define PW_SLOTS 4096             /* cache slots (a power of two) */
#define PW_GONE UINT64_MAX        /* a forgotten slot's inode (no inode has it) */
#define PW_NOT_SEG UINT64_MAX     /* a cached inode that is no segment */

typedef struct pw_slot {
    uint64_t ino;                 /* 0: empty */
    uint64_t logseg;              /* log << 32 | seg, or PW_NOT_SEG */
} pw_slot;

struct pg_wal {
    store *st;
    pthread_mutex_t mu;           /* held from a raising pg_wal_write to pg_wal_written */
    uint64_t max;                 /* highest LSN committed (mu) */
    uint64_t pending;             /* the LSN of the batch being committed (mu) */
    pthread_rwlock_t lock;        /* guards the cache below */
    uint64_t dir;                 /* inode the root's pg_wal entry named at the last scan (0: none) */
    uint64_t forgets;             /* renames and unlinks seen (atomic; written under lock) */
    size_t used;                  /* slots not empty (tombstones too) */
    pw_slot slots[PW_SLOTS];
};

/* ---- names and positions ---- */

/* The value of 8 upper-case hex digits at P into *V; -EINVAL if not. */
static int hex8(const char *p, uint32_t *v)
{
    *v = 0;
    for (int i = 0; i < 8; i++) {
        char c = p[i];
        if (c >= '0' && c <= '9') *v = *v << 4 | (uint32_t)(c - '0');
        else if (c >= 'A' && c <= 'F') *v = *v << 4 | (uint32_t)(c - 'A' + 10);
        else return -EINVAL;
    }
    return 0;
}

int pg_wal_parse_name(const char *name, size_t len, pg_wal_seg *s)
{
    if (len != 24 || hex8(name, &s->tli) || hex8(name + 8, &s->log) || hex8(name + 16, &s->seg)) return -EINVAL;
    return 0;
}

uint64_t pg_wal_segsize(uint64_t size)
{
    if (size >= (1u << 20) && size <= (1u << 30) && !(size & (size - 1))) return size;
    return PG_WAL_SEGSIZE_DEFAULT;
}

int pg_wal_end_lsn(const pg_wal_seg *s, uint64_t segsize, uint64_t end, uint64_t *lsn)
{
    uint64_t per_log = 0x100000000ull / segsize;
    if (s->seg >= per_log || end > segsize) return -EINVAL;
    *lsn = ((uint64_t)s->log * per_log + s->seg) * segsize + end;
    return 0;
}

void pg_wal_lsn_format(uint64_t lsn, char *buf, size_t len)
{
    snprintf(buf, len, "%" PRIX32 "/%" PRIX32, (uint32_t)(lsn >> 32), (uint32_t)lsn);
}

/* ---- the recorded LSN ---- */

/* Decode a "wal_lsn" value read with result RC (VLEN bytes of BUF). */
static int pw_decode(int rc, const uint8_t *buf, size_t vlen, uint64_t *lsn)
{
    if (rc) return rc;
    if (vlen != 8) return -EIO;
    *lsn = fs_get_le(buf, 8);
    return 0;
}

int pg_wal_lsn_get(store *st, uint64_t *lsn)
{
    uint8_t buf[8];
    size_t vlen = 0;
    skey k;
    key_meta(&k, PW_KEY);
    int rc = store_get(st, &k, buf, sizeof buf, &vlen);
    return pw_decode(rc, buf, vlen, lsn);
}

int pg_wal_lsn_at(objstore *os, const manifest *m, uint64_t *lsn)
{
    uint8_t buf[8];
    size_t vlen = 0;
    skey k;
    key_meta(&k, PW_KEY);
    int rc = store_peek(os, m, &k, buf, sizeof buf, &vlen);
    return pw_decode(rc, buf, vlen, lsn);
}

/* ---- the cache: inode -> segment ---- */

static size_t pw_hash(uint64_t ino) { return (size_t)((ino * 0x9e3779b97f4a7c15ull) >> 52) & (PW_SLOTS - 1); }

/* The slot of INO, or NULL (lock held). */
static pw_slot *pw_find(pg_wal *w, uint64_t ino)
{
    for (size_t i = pw_hash(ino);; i = (i + 1) & (PW_SLOTS - 1)) {
        if (w->slots[i].ino == ino) return &w->slots[i];
        if (!w->slots[i].ino) return NULL;   /* a quarter of the slots at least is empty */
    }
}

/* Empty the cache (write lock held). */
static void pw_clear(pg_wal *w)
{
    if (w->used) memset(w->slots, 0, sizeof w->slots);
    w->used = 0;
}

/* Cache INO -> LOGSEG (write lock held). */
static void pw_insert(pg_wal *w, uint64_t ino, uint64_t logseg)
{
    pw_slot *s = pw_find(w, ino);
    if (!s) {
        if (w->used >= PW_SLOTS / 4 * 3) pw_clear(w);
        size_t i = pw_hash(ino);
        while (w->slots[i].ino && w->slots[i].ino != PW_GONE) i = (i + 1) & (PW_SLOTS - 1);
        if (!w->slots[i].ino) w->used++;
        s = &w->slots[i];
        s->ino = ino;
    }
    s->logseg = logseg;
}

typedef struct pw_found {         /* the segments of one scan of pg_wal/ */
    pw_slot *e;
    size_t n, cap;
} pw_found;

/* store_scan callback: one entry of pg_wal/, kept if it names a segment. */
static int pw_scan_entry(void *arg, const uint8_t *key, size_t klen, const void *val, size_t vlen)
{
    pw_found *f = arg;
    pg_wal_seg s;
    uint64_t child;
    uint32_t type;
    if (klen <= 9 || fs_dirent_decode(val, vlen, &child, &type)) return -EIO;
    if (pg_wal_parse_name((const char *)key + 9, klen - 9, &s) || type != S_IFREG) return 0;
    if (f->n == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 64;
        pw_slot *ne = realloc(f->e, cap * sizeof *ne);
        if (!ne) return -ENOMEM;
        f->e = ne; f->cap = cap;
    }
    f->e[f->n++] = (pw_slot){ child, (uint64_t)s.log << 32 | s.seg };
    return 0;
}

/* Find INO in the entries of the root's pg_wal/ and cache every segment
 * there: 1 if INO is one (*LOGSEG set), 0 if not, or -errno. */
static int pw_scan(pg_wal *w, uint64_t ino, uint64_t *logseg)
{
    uint64_t forgets = __atomic_load_n(&w->forgets, __ATOMIC_ACQUIRE), dir = 0;
    pw_found f = { 0 };
    uint8_t v[FS_DIRENT_LEN];
    size_t vlen;
    uint32_t type;
    skey k;
    key_dirent(&k, FS_ROOT_INO, "pg_wal", 6);
    int rc = store_get(w->st, &k, v, sizeof v, &vlen);
    if (!rc) rc = fs_dirent_decode(v, vlen, &dir, &type);
    if (!rc && type == S_IFDIR) {   /* not a symlink (initdb -X) */
        key_dirent(&k, dir, "", 0);
        rc = store_scan(w->st, k.b, k.len, pw_scan_entry, &f);
    }
    if (rc && rc != -ENOENT) { free(f.e); return rc; }   /* -ENOENT: no pg_wal/ */
    *logseg = PW_NOT_SEG;
    for (size_t i = 0; i < f.n; i++)
        if (f.e[i].ino == ino) *logseg = f.e[i].logseg;
    pthread_rwlock_wrlock(&w->lock);
    if (__atomic_load_n(&w->forgets, __ATOMIC_ACQUIRE) == forgets) {   /* no name changed meanwhile */
        if (dir != w->dir) { pw_clear(w); w->dir = dir; }
        for (size_t i = 0; i < f.n; i++) pw_insert(w, f.e[i].ino, f.e[i].logseg);
        pw_insert(w, ino, *logseg);
    }
    pthread_rwlock_unlock(&w->lock);
    free(f.e);
    return *logseg != PW_NOT_SEG;
}

/* INO's segment into *LOGSEG: 1 if INO is a segment of pg_wal/, 0 if not,
 * or -errno. */
static int pw_resolve(pg_wal *w, uint64_t ino, uint64_t *logseg)
{
    pthread_rwlock_rdlock(&w->lock);
    const pw_slot *s = pw_find(w, ino);
    int known = s != NULL;
    if (known) *logseg = s->logseg;
    pthread_rwlock_unlock(&w->lock);
    if (known) return *logseg != PW_NOT_SEG;
    return pw_scan(w, ino, logseg);
}

/* ---- the observer ---- */

int pg_wal_open(store *st, pg_wal **out)
{
    pg_wal *w = calloc(1, sizeof *w);
    if (!w) return -ENOMEM;
    w->st = st;
    int rc = pg_wal_lsn_get(st, &w->max);
    if (rc && rc != -ENOENT) { free(w); return rc; }
    pthread_mutex_init(&w->mu, NULL);
    pthread_rwlock_init(&w->lock, NULL);
    *out = w;
    return 0;
}

void pg_wal_close(pg_wal *w)
{
    if (!w) return;
    pthread_mutex_destroy(&w->mu);
    pthread_rwlock_destroy(&w->lock);
    free(w);
}

int pg_wal_write(pg_wal *w, store_batch *b, uint64_t ino, uint64_t size, uint64_t off, size_t len)
{
    uint64_t logseg, lsn;
    if (!w || !len) return 0;
    int rc = pw_resolve(w, ino, &logseg);
    if (rc <= 0) return rc;
    pg_wal_seg s = { 0, (uint32_t)(logseg >> 32), (uint32_t)logseg };
    if (pg_wal_end_lsn(&s, pg_wal_segsize(size), off + len, &lsn)) return 0;
    pthread_mutex_lock(&w->mu);
    if (lsn <= w->max) { pthread_mutex_unlock(&w->mu); return 0; }
    uint8_t v[8];
    skey k;
    fs_put_le(v, lsn, 8);
    key_meta(&k, PW_KEY);
    store_batch_put(b, &k, v, sizeof v);
    w->pending = lsn;
    return 1;                     /* mu stays held until pg_wal_written */
}

void pg_wal_written(pg_wal *w, int rc)
{
    if (!rc) w->max = w->pending;
    pthread_mutex_unlock(&w->mu);
}

void pg_wal_forget(pg_wal *w, uint64_t ino)
{
    if (!w || !ino) return;
    pthread_rwlock_wrlock(&w->lock);
    if (ino == w->dir || !w->dir) {   /* pg_wal itself moved or went, or one may be moved in */
        pw_clear(w);
        w->dir = 0;
    } else {
        pw_slot *s = pw_find(w, ino);
        if (s) s->ino = PW_GONE;
    }
    __atomic_add_fetch(&w->forgets, 1, __ATOMIC_RELEASE);
    pthread_rwlock_unlock(&w->lock);
}

/*
 * pg_wal.c -- the WAL observer: the WAL pages archived and the highest LSN
 * written, in the same batch as the write (see pg_wal.h).
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
#include "../fs_format.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define PW_KEY "wal_pos"          /* the meta key: pg_wal_pos, 24 bytes little-endian */
#define PW_POS_LEN 24
#define PW_HISTORY_MAX (1u << 20) /* larger "history files" are not PostgreSQL's */
#define PW_SLOTS 4096             /* cache slots (a power of two) */
#define PW_GONE UINT64_MAX        /* a forgotten slot's inode (no inode has it) */

typedef struct pw_slot {
    uint64_t ino;                 /* 0: empty */
    pg_wal_seg seg;               /* its name; tli 0: not a segment */
} pw_slot;

struct pg_wal {
    store *st;
    pthread_mutex_t mu;           /* held from a raising pg_wal_write to pg_wal_written */
    uint64_t max;                 /* highest LSN committed (mu) */
    uint64_t pending;             /* the LSN of the batch being committed (mu) */
    pthread_rwlock_t lock;        /* guards the cache below */
    uint64_t dir;                 /* inode the root's pg_wal entry named at the last scan (0: none) */
    uint64_t forgets;             /* renames and unlinks seen (atomic; written under lock) */
    uint64_t control;             /* inode of global/pg_control once seen (atomic; 0: not known) */
    uint64_t checkpoint;          /* the checkpoint its last write named (atomic; 0: none seen) */
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
    if (len != 24 || hex8(name, &s->tli) || hex8(name + 8, &s->log) || hex8(name + 16, &s->seg) || !s->tli)
        return -EINVAL;
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

uint64_t pg_wal_segno(const pg_wal_seg *s, uint64_t segsize)
{
    return (uint64_t)s->log * (0x100000000ull / segsize) + s->seg;
}

void pg_wal_lsn_format(uint64_t lsn, char *buf, size_t len)
{
    snprintf(buf, len, "%" PRIX32 "/%" PRIX32, (uint32_t)(lsn >> 32), (uint32_t)lsn);
}

/* ---- the recorded position ---- */

/* Decode a "wal_pos" value read with result RC (VLEN bytes of BUF). */
static int pw_decode(int rc, const uint8_t *buf, size_t vlen, pg_wal_pos *p)
{
    if (rc) return rc;
    if (vlen != PW_POS_LEN) return -EIO;
    p->lsn = fs_get_le(buf, 8);
    p->time_us = (int64_t)fs_get_le(buf + 8, 8);
    p->tli = (uint32_t)fs_get_le(buf + 16, 4);
    p->segsize = (uint32_t)fs_get_le(buf + 20, 4);
    return 0;
}

int pg_wal_pos_get(store *st, pg_wal_pos *p)
{
    uint8_t buf[PW_POS_LEN];
    size_t vlen = 0;
    skey k;
    key_meta(&k, PW_KEY);
    int rc = store_get(st, &k, buf, sizeof buf, &vlen);
    return pw_decode(rc, buf, vlen, p);
}

int pg_wal_pos_at(objstore *os, const manifest *m, pg_wal_pos *p)
{
    uint8_t buf[PW_POS_LEN];
    size_t vlen = 0;
    skey k;
    key_meta(&k, PW_KEY);
    int rc = store_peek(os, m, &k, buf, sizeof buf, &vlen);
    return pw_decode(rc, buf, vlen, p);
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
static void pw_insert(pg_wal *w, uint64_t ino, const pg_wal_seg *seg)
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
    s->seg = *seg;
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
    f->e[f->n++] = (pw_slot){ child, s };
    return 0;
}

int pg_wal_dir(store *st, uint64_t *dir)
{
    uint8_t v[FS_DIRENT_LEN];
    size_t vlen;
    uint32_t type;
    skey k;
    key_dirent(&k, FS_ROOT_INO, "pg_wal", 6);
    int rc = store_get(st, &k, v, sizeof v, &vlen);
    if (!rc) rc = fs_dirent_decode(v, vlen, dir, &type);
    if (!rc && type != S_IFDIR) rc = -ENOENT;   /* a symlink (initdb -X) */
    return rc;
}

/* Find INO in the entries of the root's pg_wal/ and cache every segment
 * there: 1 if INO is one (*SEG set), 0 if not, or -errno. */
static int pw_scan(pg_wal *w, uint64_t ino, pg_wal_seg *seg)
{
    uint64_t forgets = __atomic_load_n(&w->forgets, __ATOMIC_ACQUIRE), dir = 0;
    pw_found f = { 0 };
    skey k;
    int rc = pg_wal_dir(w->st, &dir);
    if (!rc) {
        key_dirent(&k, dir, "", 0);
        rc = store_scan(w->st, k.b, k.len, pw_scan_entry, &f);
    }
    if (rc && rc != -ENOENT) { free(f.e); return rc; }   /* -ENOENT: no pg_wal/ */
    *seg = (pg_wal_seg){ 0 };
    for (size_t i = 0; i < f.n; i++)
        if (f.e[i].ino == ino) *seg = f.e[i].seg;
    pthread_rwlock_wrlock(&w->lock);
    if (__atomic_load_n(&w->forgets, __ATOMIC_ACQUIRE) == forgets) {   /* no name changed meanwhile */
        if (dir != w->dir) { pw_clear(w); w->dir = dir; }
        for (size_t i = 0; i < f.n; i++) pw_insert(w, f.e[i].ino, &f.e[i].seg);
        pw_insert(w, ino, seg);
    }
    pthread_rwlock_unlock(&w->lock);
    free(f.e);
    return seg->tli != 0;
}

/* INO's segment into *SEG: 1 if INO is a segment of pg_wal/, 0 if not,
 * or -errno. */
static int pw_resolve(pg_wal *w, uint64_t ino, pg_wal_seg *seg)
{
    pthread_rwlock_rdlock(&w->lock);
    const pw_slot *s = pw_find(w, ino);
    int known = s != NULL;
    if (known) *seg = s->seg;
    pthread_rwlock_unlock(&w->lock);
    if (known) return seg->tli != 0;
    return pw_scan(w, ino, seg);
}

int pg_wal_is_segment(pg_wal *w, uint64_t ino)
{
    pg_wal_seg s;
    return w ? pw_resolve(w, ino, &s) : 0;
}

/* ---- the observer ---- */

static void pw_load_checkpoint(pg_wal *w);

int pg_wal_open(store *st, pg_wal **out)
{
    pg_wal *w = calloc(1, sizeof *w);
    if (!w) return -ENOMEM;
    w->st = st;
    pg_wal_pos p;
    int rc = pg_wal_pos_get(st, &p);
    if (rc && rc != -ENOENT) { free(w); return rc; }
    w->max = rc ? 0 : p.lsn;
    pw_load_checkpoint(w);
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

int pg_wal_write(pg_wal *w, store_batch *b, uint64_t ino, uint64_t size, uint64_t off, size_t len,
                 uint64_t first_page, const uint8_t *pages, const size_t *marks, uint32_t *tli, uint64_t *first)
{
    pg_wal_seg s;
    uint64_t lsn;
    if (!w || !len) return 0;
    int rc = pw_resolve(w, ino, &s);
    if (rc <= 0) return rc;
    uint64_t segsize = pg_wal_segsize(size);
    if (pg_wal_end_lsn(&s, segsize, off + len, &lsn)) return 0;
    uint64_t segno = pg_wal_segno(&s, segsize), page0 = segno * (segsize / PG_WAL_PAGE);
    uint64_t last_page = (off + len - 1) / PG_WAL_PAGE;
    uint8_t v[PW_POS_LEN];
    skey k;
    if (*tli != s.tli || *first != page0) {
        for (uint64_t pg = first_page; pg <= last_page; pg++) {
            key_walpage(&k, s.tli, page0 + pg);
            const uint8_t *page = pages + (pg - first_page) * PG_WAL_PAGE;
            if (marks) store_batch_put_same(b, &k, marks[pg - first_page], page, PG_WAL_PAGE);
            else store_batch_put(b, &k, page, PG_WAL_PAGE);
        }
        if (!*tli && size == segsize) { *tli = s.tli; *first = page0; }
    }
    fs_put_le(v, segsize, 4);
    key_walseg(&k, s.tli, segno);
    store_batch_put(b, &k, v, 4);
    pthread_mutex_lock(&w->mu);
    if (lsn < w->max) lsn = w->max;   /* an older page written again: the end stays, the time moves */
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    fs_put_le(v, lsn, 8);
    fs_put_le(v + 8, (uint64_t)((int64_t)now.tv_sec * 1000000 + now.tv_nsec / 1000), 8);
    fs_put_le(v + 16, s.tli, 4);
    fs_put_le(v + 20, segsize, 4);
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
    uint64_t control = ino;       /* pg_control renamed or gone: look it up again */
    __atomic_compare_exchange_n(&w->control, &control, 0, 0, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED);
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

/* ---- checkpoints: writes of global/pg_control ---- */

/* 1 if the first bytes P of a file look like ControlFileData: a
 * pg_control_version (8 bytes in) and a catalog_version_no (12 bytes in,
 * YYYYMMDDN) that some PostgreSQL release has. */
static int pw_control_shaped(const uint8_t *p)
{
    uint64_t version = fs_get_le(p + 8, 4), catalog = fs_get_le(p + 12, 4);
    return version >= 900 && version < 10000 && catalog >= 200000000 && catalog < 300000000;
}

/* The inode of the root's global/pg_control into *INO: 0, -ENOENT if
 * there is none (or it is no regular file), or -errno. */
static int pw_control_ino(pg_wal *w, uint64_t *ino)
{
    static const char *const path[] = { "global", "pg_control" };
    uint8_t v[FS_DIRENT_LEN];
    uint64_t dir = FS_ROOT_INO;
    uint32_t type = 0;
    size_t vlen = 0;
    skey k;
    for (int i = 0; i < 2; i++) {
        key_dirent(&k, dir, path[i], strlen(path[i]));
        int rc = store_get(w->st, &k, v, sizeof v, &vlen);
        if (!rc) rc = fs_dirent_decode(v, vlen, &dir, &type);
        if (rc) return rc;
    }
    *ino = dir;
    return type == S_IFREG ? 0 : -ENOENT;
}

/* At open: the checkpoint the branch's pg_control names now, so that the
 * server's start (which writes pg_control again, naming it) is no new one.
 * Nothing known (no pg_control yet, an unreadable one): the first write
 * counts, which costs one flush. */
static void pw_load_checkpoint(pg_wal *w)
{
    uint8_t page[PG_WAL_PAGE];    /* a store page of the file: 8 KiB as well */
    uint64_t ino;
    size_t len = 0;
    skey k;
    if (pw_control_ino(w, &ino)) return;
    key_page(&k, ino, 0);
    if (store_get(w->st, &k, page, sizeof page, &len) || len < 48 || !pw_control_shaped(page)) return;
    w->control = ino;
    w->checkpoint = fs_get_le(page + 32, 8);
}

int pg_wal_checkpointed(pg_wal *w, uint64_t ino, uint64_t off, size_t len, const uint8_t *pages)
{
    if (!w || off != 0 || len < 48) return 0;
    if (ino != __atomic_load_n(&w->control, __ATOMIC_ACQUIRE)) {
        uint64_t control;
        if (!pw_control_shaped(pages)) return 0;
        int rc = pw_control_ino(w, &control);
        if (rc) return rc == -ENOENT ? 0 : rc;
        if (control != ino) return 0;
        __atomic_store_n(&w->control, ino, __ATOMIC_RELEASE);
    }
    uint64_t checkpoint = fs_get_le(pages + 32, 8);   /* ControlFileData.checkPoint */
    return checkpoint && __atomic_exchange_n(&w->checkpoint, checkpoint, __ATOMIC_ACQ_REL) != checkpoint;
}

/* 1 if NAME is a timeline history file's name: 8 upper-case hex digits,
 * not all zero, then ".history"; its timeline in *TLI. */
static int pw_history_name(const char *name, uint32_t *tli)
{
    return strlen(name) == 16 && !memcmp(name + 8, ".history", 8) && !hex8(name, tli) && *tli;
}

typedef struct pw_copy {          /* the pages of a file going into the archive */
    store_batch *b;
    uint32_t tli;
    uint64_t first;               /* archive page number of the file's page 0 */
    int bad;                      /* a page that is not 8 KiB */
} pw_copy;

/* store_scan_range callback: one page of the file into the batch as an
 * archive page (all-zero pages are stored empty and need no copy: the
 * archive reads missing pages as zeros). */
static int pw_copy_page(void *arg, const uint8_t *key, size_t klen, const void *val, size_t vlen)
{
    pw_copy *c = arg;
    skey k;
    if (klen != 17 || vlen == 0) return 0;
    if (vlen != PG_WAL_PAGE) { c->bad = 1; return 1; }
    key_walpage(&k, c->tli, c->first + key_get64(key + 9));
    store_batch_put(c->b, &k, val, vlen);
    return 0;
}

/* In batch B, archive the pages of file INO (SIZE bytes) as segment S of
 * a cluster with SEGSIZE-byte segments, in one pass over the store. */
static int pw_archive_file(pg_wal *w, store_batch *b, uint64_t ino, uint64_t size, const pg_wal_seg *s, uint64_t segsize)
{
    uint64_t segno = pg_wal_segno(s, segsize);
    pw_copy c = { b, s->tli, segno * (segsize / PG_WAL_PAGE), 0 };
    skey from, to;
    uint8_t v[4];
    key_page(&from, ino, 0);
    key_page(&to, ino, (size + PG_WAL_PAGE - 1) / PG_WAL_PAGE);
    int rc = store_scan_range(w->st, from.b, from.len, to.b, to.len, pw_copy_page, &c);
    if (rc < 0) return rc;
    if (c.bad) return -EIO;
    fs_put_le(v, segsize, 4);
    key_walseg(&from, s->tli, segno);
    store_batch_put(b, &from, v, 4);
    return 0;
}

int pg_wal_segment_entry(store *st, uint64_t dir, const char *name)
{
    pg_wal_seg s;
    uint64_t waldir;
    if (pg_wal_parse_name(name, strlen(name), &s)) return 0;
    int rc = pg_wal_dir(st, &waldir);
    if (rc) return rc == -ENOENT ? 0 : rc;
    return waldir == dir;
}

int pg_wal_has_entry(store *st, uint64_t waldir, const char *name)
{
    uint8_t v[FS_DIRENT_LEN];
    size_t vlen;
    skey k;
    key_dirent(&k, waldir, name, strlen(name));
    int rc = store_get(st, &k, v, sizeof v, &vlen);
    return rc == -ENOENT ? 0 : rc ? rc : 1;
}

int pg_wal_renamed(pg_wal *w, store_batch *b, uint64_t dir, const char *name, uint64_t ino, uint64_t size)
{
    uint32_t tli;
    uint64_t waldir, end;
    pg_wal_seg s, old;
    if (!w) return 0;
    int history = pw_history_name(name, &tli), segment = !pg_wal_parse_name(name, strlen(name), &s);
    if ((!history && !segment) || size > (segment ? (1u << 30) : PW_HISTORY_MAX)) return 0;
    int rc = pg_wal_dir(w->st, &waldir);
    if (rc) return rc == -ENOENT ? 0 : rc;
    if (waldir != dir) return 0;
    if (segment) {
        /* a file made under a temporary name becomes a segment: a new one
         * (zeros) or a copy (the start of a new timeline's first segment,
         * written before the rename, so never seen as WAL); a segment
         * renamed to a later name is an old one recycled: not WAL yet */
        uint64_t segsize = pg_wal_segsize(size);
        if ((rc = pw_resolve(w, ino, &old)) != 0) return rc < 0 ? rc : 0;
        if (pg_wal_end_lsn(&s, segsize, 0, &end)) return 0;
        return pw_archive_file(w, b, ino, size, &s, segsize);
    }
    uint8_t *content = malloc(size ? size : 1);
    if (!content) return -ENOMEM;
    for (uint64_t done = 0; done < size && !rc;) {
        uint8_t page[PG_WAL_PAGE];
        size_t vlen = 0, take = size - done < PG_WAL_PAGE ? (size_t)(size - done) : PG_WAL_PAGE;
        skey k;
        memset(page, 0, sizeof page);
        key_page(&k, ino, done / PG_WAL_PAGE);
        rc = store_get(w->st, &k, page, sizeof page, &vlen);
        if (rc == -ENOENT) rc = 0;   /* a hole */
        memcpy(content + done, page, take);
        done += take;
    }
    if (!rc) {
        char key[32];
        skey k;
        snprintf(key, sizeof key, "%s%.8s", PG_WAL_HISTORY_KEY, name);
        key_meta(&k, key);
        store_batch_put(b, &k, content, size);
    }
    free(content);
    return rc;
}

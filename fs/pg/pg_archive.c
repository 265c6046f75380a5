/*
 * pg_archive.c -- the WAL archive read back as files (see pg_archive.h).
 *
 * Keys (store/key.h): KEY_WALSEG (timeline, segment number) -> the segment
 * size, one per segment PostgreSQL wrote into; KEY_WALPAGE (timeline,
 * LSN / 8 KiB) -> the page; meta key "wal_history/NNNNNNNN" -> the history
 * file.  A segment is read page by page, each page one store read: a page
 * never written (PostgreSQL zero-fills segments before use) reads as zeros.
 */
#include "pg_archive.h"
#include "pg_wal.h"
#include "../fs_format.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PA_HISTORY_MAX (1u << 20) /* as the observer archives them */

/* 1 if NAME is "NNNNNNNN.history" (upper-case hex, timeline not 0): its
 * timeline in *TLI. */
static int pa_history_name(const char *name, uint32_t *tli)
{
    if (strlen(name) != 16 || strcmp(name + 8, ".history")) return 0;
    *tli = 0;
    for (int i = 0; i < 8; i++) {
        char c = name[i];
        if (c >= '0' && c <= '9') *tli = *tli << 4 | (uint32_t)(c - '0');
        else if (c >= 'A' && c <= 'F') *tli = *tli << 4 | (uint32_t)(c - 'A' + 10);
        else return 0;
    }
    return *tli != 0;
}

/* The meta key of timeline TLI's history file. */
static void pa_history_key(skey *k, uint32_t tli)
{
    char name[32];
    snprintf(name, sizeof name, "%s%08" PRIX32, PG_WAL_HISTORY_KEY, tli);
    key_meta(k, name);
}

/* 1 if a segment of SIZE bytes (checked) numbered SEGNO lies before A's cut:
 * 0 if not, -EIO for an impossible size. */
static int pa_before_cut(const pg_archive *a, uint64_t segno, uint64_t size)
{
    if (size < PG_WAL_PAGE || (size & (size - 1)) || segno > UINT64_MAX / size) return -EIO;
    return segno * size < a->end;
}

/* Segment SEGNO of timeline TLI into *F if the archive holds it. */
static int pa_segment(const pg_archive *a, uint32_t tli, uint64_t segno, pg_archive_file *f)
{
    uint8_t v[4];
    size_t vlen = 0;
    skey k;
    key_walseg(&k, tli, segno);
    int rc = store_get(a->st, &k, v, sizeof v, &vlen);
    if (rc) return rc;
    if (vlen != 4) return -EIO;
    *f = (pg_archive_file){ .tli = tli, .segno = segno, .size = fs_get_le(v, 4) };
    rc = pa_before_cut(a, segno, f->size);
    return rc < 0 ? rc : rc ? 0 : -ENOENT;
}

int pg_archive_stat(const pg_archive *a, pg_archive_file *f)
{
    if (!f->history) return pa_segment(a, f->tli, f->segno, f);
    size_t vlen = 0;
    uint8_t none;
    skey k;
    pa_history_key(&k, f->tli);
    int rc = store_get(a->st, &k, &none, 0, &vlen);
    if (!rc) f->size = vlen;
    return rc;
}

int pg_archive_lookup(const pg_archive *a, const char *name, pg_archive_file *f)
{
    uint32_t tli;
    if (pa_history_name(name, &tli)) {
        *f = (pg_archive_file){ .tli = tli, .history = 1 };
        return pg_archive_stat(a, f);
    }
    pg_wal_seg s;
    pg_wal_pos pos;
    if (pg_wal_parse_name(name, strlen(name), &s)) return -ENOENT;
    int rc = pg_wal_pos_get(a->st, &pos);
    if (rc) return rc;
    if (s.seg >= 0x100000000ull / pos.segsize) return -ENOENT;
    return pa_segment(a, s.tli, pg_wal_segno(&s, pos.segsize), f);
}

typedef struct pa_range {         /* a read of segment pages into a buffer */
    uint8_t *buf;                 /* the bytes [off, off + len) of the segment */
    uint64_t off;
    size_t len;
    uint64_t first;               /* page number (LSN / 8 KiB) of the page holding OFF */
    int bad;                      /* a page that is not 8 KiB */
} pa_range;

/* store_scan_range callback: one archived page into its place. */
static int pa_range_page(void *arg, const uint8_t *key, size_t klen, const void *val, size_t vlen)
{
    pa_range *r = arg;
    if (klen != 13) return 0;
    if (vlen == 0) return 0;                  /* all zero */
    if (vlen != PG_WAL_PAGE) { r->bad = 1; return 1; }
    uint64_t pg = key_get64(key + 5) - r->first;   /* relative to the page holding OFF */
    uint64_t start = (r->off / PG_WAL_PAGE + pg) * PG_WAL_PAGE;   /* segment offset of the page */
    uint64_t lo = start > r->off ? start : r->off, hi = start + PG_WAL_PAGE;
    if (hi > r->off + r->len) hi = r->off + r->len;
    if (lo < hi) memcpy(r->buf + (lo - r->off), (const uint8_t *)val + (lo - start), (size_t)(hi - lo));
    return 0;
}

long pg_archive_read(const pg_archive *a, const pg_archive_file *f, uint64_t off, void *buf, size_t len)
{
    if (off >= f->size || !len) return 0;
    if (len > f->size - off) len = (size_t)(f->size - off);
    skey k;
    if (f->history) {
        uint8_t *all = malloc(f->size ? f->size : 1);
        size_t vlen = 0;
        if (!all) return -ENOMEM;
        pa_history_key(&k, f->tli);
        int rc = store_get(a->st, &k, all, f->size, &vlen);
        if (!rc && vlen != f->size) rc = -EIO;   /* history files never change */
        if (!rc) memcpy(buf, all + off, len);
        free(all);
        return rc ? rc : (long)len;
    }
    /* the pages holding [OFF, OFF + LEN) in one pass over the store; pages
     * never written read as zeros, and so does everything past the cut */
    uint64_t base = f->segno * f->size, first = off / PG_WAL_PAGE, last = (off + len - 1) / PG_WAL_PAGE;
    uint64_t page0 = f->segno * (f->size / PG_WAL_PAGE);
    pa_range r = { buf, off, len, page0 + first, 0 };
    skey from, to;
    memset(buf, 0, len);
    key_walpage(&from, f->tli, page0 + first);
    key_walpage(&to, f->tli, page0 + last + 1);
    int rc = store_scan_range(a->st, from.b, from.len, to.b, to.len, pa_range_page, &r);
    if (rc < 0) return rc;
    if (r.bad) return -EIO;
    if (a->end < base + off + len)   /* the cut */
        memset((uint8_t *)buf + (a->end > base + off ? a->end - base - off : 0), 0,
               (size_t)(base + off + len - (a->end > base + off ? a->end : base + off)));
    return (long)len;
}

void pg_archive_name(const pg_archive_file *f, char *buf, size_t len)
{
    if (f->history) {
        snprintf(buf, len, "%08" PRIX32 ".history", f->tli);
        return;
    }
    uint64_t per_log = 0x100000000ull / f->size;
    snprintf(buf, len, "%08" PRIX32 "%08" PRIX32 "%08" PRIX32, f->tli, (uint32_t)(f->segno / per_log),
             (uint32_t)(f->segno % per_log));
}

typedef struct pa_list {
    const pg_archive *a;
    pg_archive_fn fn;
    void *arg;
} pa_list;

/* store_scan callback: one history file. */
static int pa_list_history(void *arg, const uint8_t *key, size_t klen, const void *val, size_t vlen)
{
    (void)val;
    pa_list *l = arg;
    char name[17];
    size_t plen = 1 + strlen(PG_WAL_HISTORY_KEY);
    uint32_t tli;
    if (klen != plen + 8) return 0;
    memcpy(name, key + plen, 8);
    memcpy(name + 8, ".history", 9);
    if (!pa_history_name(name, &tli)) return 0;
    pg_archive_file f = { .tli = tli, .history = 1, .size = vlen };
    return l->fn(l->arg, name, &f);
}

/* store_scan callback: one segment. */
static int pa_list_segment(void *arg, const uint8_t *key, size_t klen, const void *val, size_t vlen)
{
    pa_list *l = arg;
    char name[32];
    if (klen != 13 || vlen != 4) return -EIO;
    pg_archive_file f = { .tli = (uint32_t)(key_get64(key + 1) >> 32), .segno = key_get64(key + 5),
                          .size = fs_get_le(val, 4) };
    int rc = pa_before_cut(l->a, f.segno, f.size);
    if (rc <= 0) return rc;
    pg_archive_name(&f, name, sizeof name);
    return l->fn(l->arg, name, &f);
}

int pg_archive_list(const pg_archive *a, pg_archive_fn fn, void *arg)
{
    pa_list l = { a, fn, arg };
    skey k;
    key_meta(&k, PG_WAL_HISTORY_KEY);
    int rc = store_scan(a->st, k.b, k.len, pa_list_history, &l);
    if (!rc) {
        uint8_t prefix = KEY_WALSEG;
        rc = store_scan(a->st, &prefix, 1, pa_list_segment, &l);
    }
    return rc;
}

typedef struct pa_copy {
    const pg_archive *a;
    uint64_t from;
    store *to;
    store_batch b;
    size_t pages;                 /* in b */
} pa_copy;

#define PA_COPY_BATCH 128         /* pages per commit: 1 MiB */

/* Commit what C has gathered. */
static int pa_flush(pa_copy *c)
{
    int rc = c->pages || c->b.nops ? store_commit(c->to, &c->b) : 0;
    c->pages = 0;
    return rc;
}

/* pg_archive_list callback: copy the part of one file that C wants. */
static int pa_copy_file(void *arg, const char *name, const pg_archive_file *f)
{
    (void)name;
    pa_copy *c = arg;
    skey k;
    if (f->history) {
        uint8_t *buf = malloc(f->size ? f->size : 1);
        if (!buf) return -ENOMEM;
        long n = pg_archive_read(c->a, f, 0, buf, f->size);
        if (n >= 0) {
            pa_history_key(&k, f->tli);
            store_batch_put(&c->b, &k, buf, (size_t)n);
        }
        free(buf);
        return n < 0 ? (int)n : 0;
    }
    uint64_t start = f->segno * f->size, stop = start + f->size;
    if (stop <= c->from) return 0;
    uint8_t v[4];
    fs_put_le(v, f->size, 4);
    key_walseg(&k, f->tli, f->segno);
    store_batch_put(&c->b, &k, v, 4);
    uint8_t *chunk = malloc(PA_COPY_BATCH * PG_WAL_PAGE);   /* read a batch's worth at a time */
    if (!chunk) return -ENOMEM;
    int rc = 0;
    uint64_t first = (c->from > start ? c->from - start : 0) / PG_WAL_PAGE * PG_WAL_PAGE;
    for (uint64_t off = first; off < f->size && start + off < c->a->end && !rc; off += PA_COPY_BATCH * PG_WAL_PAGE) {
        long n = pg_archive_read(c->a, f, off, chunk, PA_COPY_BATCH * PG_WAL_PAGE);
        if (n < 0) { rc = (int)n; break; }
        for (long at = 0; at + PG_WAL_PAGE <= n && !rc; at += PG_WAL_PAGE) {
            const uint8_t *page = chunk + at;
            size_t z = 0;
            while (z < PG_WAL_PAGE && !page[z]) z++;
            if (z == PG_WAL_PAGE) continue;   /* never written (or past the cut): reads as zeros anyway */
            key_walpage(&k, f->tli, (start + off + (uint64_t)at) / PG_WAL_PAGE);
            store_batch_put(&c->b, &k, page, PG_WAL_PAGE);
            if (++c->pages == PA_COPY_BATCH) rc = pa_flush(c);
        }
    }
    free(chunk);
    return rc;
}

int pg_archive_copy(const pg_archive *a, uint64_t from, store *to)
{
    pa_copy c = { a, from, to, { 0 }, 0 };
    store_batch_init(&c.b);
    int rc = pg_archive_list(a, pa_copy_file, &c);
    if (!rc) rc = pa_flush(&c);
    store_batch_free(&c.b);
    return rc;
}

/* ---- trimming ---- */

#define PA_TRIMMED_KEY "wal_trimmed"   /* meta key: 8 bytes little-endian, where the archive begins */

/* Decode a "wal_trimmed" value read with RC into *LSN. */
static int pa_trimmed_value(int rc, const uint8_t *v, size_t vlen, uint64_t *lsn)
{
    *lsn = 0;
    if (rc == -ENOENT) return 0;
    if (rc) return rc;
    if (vlen != 8) return -EIO;
    *lsn = fs_get_le(v, 8);
    return 0;
}

int pg_archive_trimmed(store *st, uint64_t *lsn)
{
    uint8_t v[8];
    size_t vlen = 0;
    skey k;
    key_meta(&k, PA_TRIMMED_KEY);
    int rc = store_get(st, &k, v, sizeof v, &vlen);
    return pa_trimmed_value(rc, v, vlen, lsn);
}

int pg_archive_trimmed_at(objstore *os, const manifest *m, uint64_t *lsn)
{
    uint8_t v[8];
    size_t vlen = 0;
    skey k;
    key_meta(&k, PA_TRIMMED_KEY);
    int rc = store_peek(os, m, &k, v, sizeof v, &vlen);
    return pa_trimmed_value(rc, v, vlen, lsn);
}

typedef struct pa_trim {
    uint64_t redo;                /* segments ending at or before it go */
    pg_archive_file *segs;        /* ... gathered here */
    size_t n, cap;
    store_batch b;                /* the deletions of one segment */
} pa_trim;

/* store_scan callback over segment keys: gather those T deletes. */
static int pa_trim_segment(void *arg, const uint8_t *key, size_t klen, const void *val, size_t vlen)
{
    pa_trim *t = arg;
    if (klen != 13 || vlen != 4) return -EIO;
    pg_archive_file f = { .tli = (uint32_t)(key_get64(key + 1) >> 32), .segno = key_get64(key + 5),
                          .size = fs_get_le(val, 4) };
    if (f.size < PG_WAL_PAGE || (f.size & (f.size - 1)) || f.segno >= UINT64_MAX / f.size) return -EIO;
    if ((f.segno + 1) * f.size > t->redo) return 0;
    if (t->n == t->cap) {
        size_t cap = t->cap ? 2 * t->cap : 64;
        pg_archive_file *s = realloc(t->segs, cap * sizeof *s);
        if (!s) return -ENOMEM;
        t->segs = s;
        t->cap = cap;
    }
    t->segs[t->n++] = f;
    return 0;
}

/* store_scan callback over a segment's page keys: delete each. */
static int pa_trim_page(void *arg, const uint8_t *key, size_t klen, const void *val, size_t vlen)
{
    (void)val; (void)vlen;
    pa_trim *t = arg;
    skey k = { .len = (uint16_t)klen };
    memcpy(k.b, key, klen);
    store_batch_del(&t->b, &k);
    return t->b.err;
}

int pg_archive_trim(store *st, uint64_t redo, uint64_t *segments)
{
    pa_trim t = { .redo = redo };
    uint64_t was;
    *segments = 0;
    int rc = pg_archive_trimmed(st, &was);
    if (!rc) {
        uint8_t prefix = KEY_WALSEG;
        rc = store_scan(st, &prefix, 1, pa_trim_segment, &t);
    }
    /* a segment still in pg_wal/ keeps its pages: a file mapped onto the
     * archive reads them (fs_attr.wal_tli), and PostgreSQL may still
     * read it (a replication slot, wal_keep_size, a failing
     * archive_command); the archive begins at the first such one */
    uint64_t keep = UINT64_MAX, waldir = 0;
    int walrc = rc || !t.n ? -ENOENT : pg_wal_dir(st, &waldir);
    if (walrc != -ENOENT) rc = walrc;     /* -ENOENT: no pg_wal/, nothing there to keep */
    for (size_t i = 0; i < t.n && !rc && !walrc; i++) {
        char name[32];
        pg_archive_name(&t.segs[i], name, sizeof name);
        rc = pg_wal_has_entry(st, waldir, name);
        if (rc > 0 && t.segs[i].segno * t.segs[i].size < keep) keep = t.segs[i].segno * t.segs[i].size;
        rc = rc < 0 ? rc : 0;
    }
    size_t n = 0;
    for (size_t i = 0; i < t.n; i++)
        if ((t.segs[i].segno + 1) * t.segs[i].size <= keep) t.segs[n++] = t.segs[i];
    t.n = n;
    if (rc || t.n == 0) {
        free(t.segs);
        return rc;
    }
    store_batch_init(&t.b);
    uint64_t begins = 0;          /* where the archive begins: the end of the last segment deleted */
    for (size_t i = 0; i < t.n; i++) {
        uint64_t end = (t.segs[i].segno + 1) * t.segs[i].size;
        if (end > begins) begins = end;
    }
    if (begins > was) {           /* the mark first: no state lacks it and a segment */
        uint8_t v[8];
        skey k;
        fs_put_le(v, begins, 8);
        key_meta(&k, PA_TRIMMED_KEY);
        store_batch_put(&t.b, &k, v, sizeof v);
        rc = store_commit(st, &t.b);
    }
    for (size_t i = 0; i < t.n && !rc; i++) {
        const pg_archive_file *f = &t.segs[i];
        skey from, to;
        key_walpage(&from, f->tli, f->segno * f->size / PG_WAL_PAGE);
        key_walpage(&to, f->tli, (f->segno + 1) * f->size / PG_WAL_PAGE);
        rc = store_scan_range(st, from.b, from.len, to.b, to.len, pa_trim_page, &t);
        key_walseg(&from, f->tli, f->segno);
        store_batch_del(&t.b, &from);
        if (!rc) rc = t.b.err ? -ENOMEM : store_commit(st, &t.b);
        if (!rc) ++*segments;
    }
    store_batch_free(&t.b);
    free(t.segs);
    return rc;
}

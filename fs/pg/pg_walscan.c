/*
 * pg_walscan.c -- PostgreSQL 15 WAL records read from a branch's archive
 * (see pg_walscan.h).
 *
 * The reader keeps one page at a time.  Bytes of a record are gathered
 * across pages: at every page start the page header is checked (magic as
 * on the first page read, the page's own address, the continuation flag
 * and remaining length while a record goes on) and skipped.  Values are
 * little-endian as PostgreSQL writes them on x86-64 and arm64.
 */
#include "pg_walscan.h"
#include "pg_wal.h"
#include "../../util/crc32c.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WS_PAGE PG_WAL_PAGE
#define WS_SHORT_HDR 24           /* MAXALIGN(sizeof(XLogPageHeaderData)) */
#define WS_LONG_HDR 40            /* MAXALIGN(sizeof(XLogLongPageHeaderData)) */
#define WS_REC_HDR 24             /* sizeof(XLogRecord) */
#define WS_MAX_RECORD (1u << 30)  /* XLogRecordMaxSize */
#define WS_MAX_TLI 64             /* timelines followed in a history */
#define XLP_FIRST_IS_CONTRECORD 0x0001
#define XLP_LONG_HEADER 0x0002
#define RM_XLOG_ID 0
#define XLOG_CHECKPOINT_SHUTDOWN 0x00
#define XLOG_CHECKPOINT_ONLINE 0x10
#define XLOG_SWITCH 0x40
#define XLOG_RESTORE_POINT 0x70
#define RM_XACT_ID 1
#define XLOG_XACT_OPMASK 0x70
#define XLOG_XACT_COMMIT 0x00
#define XLOG_XACT_ABORT 0x20
#define XLOG_XACT_COMMIT_PREPARED 0x30
#define XLOG_XACT_ABORT_PREPARED 0x40
#define PG_EPOCH_UNIX 946684800ll /* 2000-01-01 in Unix seconds: TimestampTz's zero */

typedef struct ws_timeline {
    uint32_t tli;
    uint64_t end;                 /* first LSN no longer on it (UINT64_MAX: the newest) */
} ws_timeline;

typedef struct ws {
    const pg_archive *a;
    uint64_t segsize;
    ws_timeline tl[WS_MAX_TLI];   /* oldest first */
    int ntl;
    uint64_t page_lsn;            /* the page in PAGE (UINT64_MAX: none) */
    uint8_t page[WS_PAGE];
    uint16_t magic;               /* of the first page read (0: none yet) */
    uint8_t *rec;                 /* the record being read */
    size_t cap;
} ws;

static uint64_t le(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

/* The timelines of history file TLI (its lines: parent, switch point,
 * reason), then TLI itself. */
static int ws_timelines(ws *w, uint32_t tli)
{
    pg_archive_file f = { .tli = tli, .history = 1 };
    w->ntl = 0;
    int rc = pg_archive_stat(w->a, &f);
    if (!rc && f.size < (1u << 20)) {
        char *text = malloc(f.size + 1);
        if (!text) return -ENOMEM;
        long n = pg_archive_read(w->a, &f, 0, text, f.size);
        if (n < 0) { free(text); return (int)n; }
        text[n] = 0;
        for (char *line = text; *line && w->ntl < WS_MAX_TLI - 1;) {
            char *next = strchr(line, '\n');
            if (next) *next++ = 0;
            unsigned parent, hi, lo;
            if (line[0] != '#' && sscanf(line, "%u %X/%X", &parent, &hi, &lo) == 3)
                w->tl[w->ntl++] = (ws_timeline){ parent, (uint64_t)hi << 32 | lo };
            line = next ? next : line + strlen(line);
        }
        free(text);
    } else if (rc && rc != -ENOENT) {
        return rc;
    }
    w->tl[w->ntl++] = (ws_timeline){ tli, UINT64_MAX };
    return 0;
}

/* Load the page at LSN (page-aligned) and check its header: 0, 1 if it is
 * not a valid WAL page for that address (the end of the WAL), or -errno. */
static int ws_load(ws *w, uint64_t lsn)
{
    if (w->page_lsn == lsn) return 0;
    int i = 0;
    while (i < w->ntl - 1 && w->tl[i].end <= lsn) i++;
    pg_archive_file f = { .tli = w->tl[i].tli, .segno = lsn / w->segsize };
    int rc = pg_archive_stat(w->a, &f);
    if (rc == -ENOENT) return 1;
    if (rc) return rc;
    if (f.size != w->segsize) return 1;
    long n = pg_archive_read(w->a, &f, lsn % w->segsize, w->page, WS_PAGE);
    if (n < 0) return (int)n;
    if (n != WS_PAGE) return 1;
    uint16_t magic = (uint16_t)le(w->page, 2), info = (uint16_t)le(w->page + 2, 2);
    if (le(w->page + 8, 8) != lsn || (w->magic && magic != w->magic) || (magic & 0xFF00) != 0xD100) return 1;
    if ((lsn % w->segsize == 0) != !!(info & XLP_LONG_HEADER)) return 1;
    w->magic = magic;
    w->page_lsn = lsn;
    return 0;
}

static size_t ws_hdr(const ws *w) { return le(w->page + 2, 2) & XLP_LONG_HEADER ? WS_LONG_HDR : WS_SHORT_HDR; }

/* Copy N bytes of the record being read from *POS on into DST, skipping
 * page headers (each must say the record goes on with REMAIN bytes left
 * when the copy crosses into its page): 0, 1 (the WAL ends), or -errno. */
static int ws_copy(ws *w, uint64_t *pos, uint8_t *dst, size_t n, uint64_t remain)
{
    while (n) {
        uint64_t in = *pos % WS_PAGE;
        int rc = ws_load(w, *pos - in);
        if (rc) return rc;
        if (in == 0) {            /* a new page: the record continues after its header */
            uint16_t info = (uint16_t)le(w->page + 2, 2);
            if (!(info & XLP_FIRST_IS_CONTRECORD) || le(w->page + 16, 4) != remain) return 1;
            in = ws_hdr(w);
            *pos += in;
        }
        size_t take = WS_PAGE - in < n ? (size_t)(WS_PAGE - in) : n;
        memcpy(dst, w->page + in, take);
        dst += take; n -= take; *pos += take; remain -= take;
    }
    return 0;
}

/* Read the record at *START, which must point back to PREV (0: not
 * checked), into w->rec; a START at a page's beginning moves past the page
 * header to where the record really starts; *END gets the position after
 * it.  0, 1 if there is no whole, valid record there (the end of the WAL),
 * or -errno. */
static int ws_record(ws *w, uint64_t *start, uint64_t prev, uint64_t *end)
{
    uint64_t pos = *start;
    if (pos % WS_PAGE == 0) {     /* a record right at a page start: after the header */
        int rc = ws_load(w, pos);
        if (rc) return rc;
        if (le(w->page + 2, 2) & XLP_FIRST_IS_CONTRECORD) return 1;
        pos += ws_hdr(w);
        *start = pos;
    }
    uint8_t hdr[WS_REC_HDR];
    int rc = ws_copy(w, &pos, hdr, 4, 0);
    if (rc) return rc;
    uint64_t tot = le(hdr, 4);
    if (tot < WS_REC_HDR || tot > WS_MAX_RECORD) return 1;
    if (tot > w->cap) {
        uint8_t *n = realloc(w->rec, tot);
        if (!n) return -ENOMEM;
        w->rec = n; w->cap = tot;
    }
    memcpy(w->rec, hdr, 4);       /* (aligned to 8: the length never straddles pages) */
    if ((rc = ws_copy(w, &pos, w->rec + 4, tot - 4, tot - 4))) return rc;
    if (prev && le(w->rec + 8, 8) != prev) return 1;
    uint32_t crc = crc32c(0, w->rec + WS_REC_HDR, tot - WS_REC_HDR);
    crc = crc32c(crc, w->rec, 20);
    if (crc != (uint32_t)le(w->rec + 20, 4)) return 1;
    *end = pos;
    return 0;
}

/* The main data of the record in w->rec (TOT bytes) into *DATA, *LEN: 0,
 * or 1 if its block headers do not parse. */
static int ws_main_data(const ws *w, uint64_t tot, const uint8_t **data, uint64_t *len)
{
    const uint8_t *p = w->rec + WS_REC_HDR, *lim = w->rec + tot;
    uint64_t blocks = 0;
    *len = 0;
    while (p < lim) {
        uint8_t id = *p++;
        if (id == 255) {                          /* XLR_BLOCK_ID_DATA_SHORT */
            if (p + 1 > lim) return 1;
            *len = *p++;
            break;
        } else if (id == 254) {                   /* XLR_BLOCK_ID_DATA_LONG */
            if (p + 4 > lim) return 1;
            *len = le(p, 4);
            p += 4;
            break;
        } else if (id == 253) {                   /* XLR_BLOCK_ID_ORIGIN */
            p += 2;
        } else if (id == 252) {                   /* XLR_BLOCK_ID_TOPLEVEL_XID */
            p += 4;
        } else if (id <= 32) {                    /* a block reference */
            if (p + 3 > lim) return 1;
            uint8_t flags = p[0];
            blocks += le(p + 1, 2);
            p += 3;
            if (flags & 0x10) {                   /* BKPBLOCK_HAS_IMAGE */
                if (p + 5 > lim) return 1;
                blocks += le(p, 2);
                uint8_t info = p[4];
                p += 5;
                if ((info & 0x01) && (info & 0x1C)) p += 2;   /* a hole in a compressed image */
            }
            if (!(flags & 0x20)) p += 12;         /* !BKPBLOCK_SAME_REL: the relation */
            p += 4;                               /* block number */
        } else {
            return 1;
        }
    }
    if (p > lim || *len > (uint64_t)(lim - p) || blocks > (uint64_t)(lim - p) - *len) return 1;
    *data = lim - *len;
    return 0;
}

int pg_walscan(const pg_archive *a, uint32_t tli, uint64_t from, pg_walscan_fn fn, void *arg, uint64_t *end)
{
    ws w = { .a = a, .page_lsn = UINT64_MAX };
    pg_wal_pos pos;
    *end = from;
    int rc = pg_wal_pos_get(a->st, &pos);
    if (rc) return rc;
    w.segsize = pos.segsize;
    if ((rc = ws_timelines(&w, tli))) return rc;
    uint64_t at = from, prev = 0, next;
    while ((rc = ws_record(&w, &at, prev, &next)) == 0) {
        uint64_t tot = le(w.rec, 4);
        pg_walrec r = { .lsn = at, .end = next, .rmid = w.rec[17], .info = w.rec[16], .xid = (uint32_t)le(w.rec + 4, 4) };
        if (ws_main_data(&w, tot, &r.data, &r.len)) r.data = NULL, r.len = 0;
        *end = next;
        if ((rc = fn(arg, &r))) break;
        prev = at;
        if (r.rmid == RM_XLOG_ID && (r.info & 0xF0) == XLOG_SWITCH)   /* the rest of the segment is unused */
            at = (next + w.segsize - 1) / w.segsize * w.segsize;
        else
            at = (next + 7) & ~7ull;
    }
    free(w.rec);
    return rc == 1 && !*end ? 0 : rc < 0 || rc > 1 ? rc : rc == 1 ? 0 : rc;
}

int pg_walrec_xact_time(const pg_walrec *r, int64_t *us)
{
    uint8_t op = r->info & XLOG_XACT_OPMASK;
    if (r->rmid != RM_XACT_ID || !r->data || r->len < 8 ||
        (op != XLOG_XACT_COMMIT && op != XLOG_XACT_ABORT && op != XLOG_XACT_COMMIT_PREPARED && op != XLOG_XACT_ABORT_PREPARED))
        return 0;
    *us = (int64_t)le(r->data, 8) + PG_EPOCH_UNIX * 1000000;   /* TimestampTz counts from 2000-01-01 */
    return 1;
}

int pg_walrec_checkpoint(const pg_walrec *r, uint64_t *redo, int64_t *time_s, int *shutdown)
{
    uint8_t op = r->info & 0xF0;
    /* CheckPoint (catalog/pg_control.h): redo at 0, time at 64 */
    if (r->rmid != RM_XLOG_ID || (op != XLOG_CHECKPOINT_SHUTDOWN && op != XLOG_CHECKPOINT_ONLINE) || !r->data || r->len < 72)
        return 0;
    *redo = le(r->data, 8);
    *time_s = (int64_t)le(r->data + 64, 8);
    *shutdown = op == XLOG_CHECKPOINT_SHUTDOWN;
    return 1;
}

int pg_walrec_is_xact_end(const pg_walrec *r, uint32_t xid)
{
    uint8_t op = r->info & XLOG_XACT_OPMASK;
    return r->rmid == RM_XACT_ID && r->xid == xid && (op == XLOG_XACT_COMMIT || op == XLOG_XACT_ABORT);
}

int pg_walrec_is_restore_point(const pg_walrec *r, const char *name)
{
    /* xl_restore_point: TimestampTz rp_time, char rp_name[MAXFNAMELEN = 64] */
    size_t n = strlen(name);
    return r->rmid == RM_XLOG_ID && (r->info & 0xF0) == XLOG_RESTORE_POINT && r->data && r->len >= 8 + 64 && n < 64 &&
           !memcmp(r->data + 8, name, n + 1);
}

typedef struct ws_time {
    int64_t target;               /* microseconds since the Unix epoch */
    pg_walscan_result *r;
} ws_time;

/* pg_walscan callback: stop at the first commit or abort after the moment. */
static int ws_time_record(void *arg, const pg_walrec *rec)
{
    ws_time *t = arg;
    int64_t us;
    t->r->records++;
    if (pg_walrec_xact_time(rec, &us) && us > t->target) {
        t->r->cut = rec->lsn;
        return 1;
    }
    return 0;
}

int pg_walscan_time(const pg_archive *a, uint32_t tli, uint64_t from, int64_t time_us, pg_walscan_result *r)
{
    ws_time t = { time_us, r };
    *r = (pg_walscan_result){ .cut = UINT64_MAX, .end = from };
    int rc = pg_walscan(a, tli, from, ws_time_record, &t, &r->end);
    return rc < 0 ? rc : 0;
}

/*
 * pg_target.c -- targets in a branch's past: parsing, the base state of a
 * recovery to one, and the recovery settings (see pg_target.h).
 *
 * Finding the base: a branch's manifest generations are numbered from 1
 * (generation 1 of a fork copies its parent's generation at the branch
 * point); garbage collection removes the oldest ones and thins out the
 * older part of the window (repo/gc.h), so the generations that exist
 * are listed (one listing), and the recorded WAL position only grows with
 * the generation, so "the position is past the target" is false up to
 * some generation and true after it: a binary search over the list finds
 * the newest generation before the target in O(log n) manifest reads.  A
 * generation collected between the listing and its read makes the search
 * start over (a few times at most).  A branch's
 * past begins where the branch began: at its branch point (generation 1
 * copies the parent's state there) or, for a branch made at a point of its
 * parent's past, at that point (its metadata's at_lsn); a target before it
 * is refused, as one past the WAL's end is.  Generations written before any
 * WAL (the first moments of initdb) have no position and count as before
 * every target, so the newest generation before the target may be one
 * without WAL: then there is no base.
 */
#include "pg_target.h"
#include "pg_wal.h"
#include "pg_walscan.h"
#include "../fs_format.h"
#include "../../store/branch.h"
#include "../../store/manifest.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- parsing and formatting ---- */

/* Parse exactly N decimal digits at *P (advanced) into *V. */
static int digits(const char **p, int n, int *v)
{
    *v = 0;
    for (int i = 0; i < n; i++, (*p)++) {
        if (**p < '0' || **p > '9') return -EINVAL;
        *v = *v * 10 + (**p - '0');
    }
    return 0;
}

/* Parse an LSN "X/X" or "X-X" (1-8 hex digits each side). */
static int parse_lsn(const char *s, uint64_t *lsn)
{
    uint64_t half[2] = { 0, 0 };
    for (int h = 0; h < 2; h++) {
        int n = 0;
        for (; *s && *s != '/' && *s != '-'; s++, n++) {
            char c = *s;
            int d = c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10
                  : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
            if (d < 0 || n == 8) return -EINVAL;
            half[h] = half[h] << 4 | (uint64_t)d;
        }
        if (n == 0 || (h == 0 && !*s) || (h == 1 && *s)) return -EINVAL;
        if (h == 0) s++;
    }
    *lsn = half[0] << 32 | half[1];
    return 0;
}

/* Parse "YYYY-MM-DDTHH:MM:SS[.f{1,6}](Z|+HH:MM|-HH:MM|+HHMM|+HH)". */
static int parse_time(const char *s, int64_t *us)
{
    int y, mo, d, h, mi, sec, zh = 0, zm = 0;
    if (digits(&s, 4, &y) || *s++ != '-' || digits(&s, 2, &mo) || *s++ != '-' || digits(&s, 2, &d) ||
        (*s != 'T' && *s != 't') || (s++, digits(&s, 2, &h)) || *s++ != ':' || digits(&s, 2, &mi) ||
        *s++ != ':' || digits(&s, 2, &sec))
        return -EINVAL;
    int64_t frac = 0;
    if (*s == '.') {
        int n = 0;
        for (s++; *s >= '0' && *s <= '9'; s++, n++) {
            if (n == 6) return -EINVAL;
            frac = frac * 10 + (*s - '0');
        }
        if (n == 0) return -EINVAL;
        for (; n < 6; n++) frac *= 10;
    }
    int sign = 0;
    if (*s == 'Z' || *s == 'z') {
        s++;
    } else if (*s == '+' || *s == '-') {
        sign = *s++ == '-' ? -1 : 1;
        if (digits(&s, 2, &zh)) return -EINVAL;
        if (*s == ':') {          /* +HH:MM */
            s++;
            if (digits(&s, 2, &zm)) return -EINVAL;
        } else if (*s && digits(&s, 2, &zm)) {   /* +HHMM */
            return -EINVAL;
        }
    } else {
        return -EINVAL;           /* a moment without a zone means nothing exact */
    }
    if (*s || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 59 || zh > 23 || zm > 59)
        return -EINVAL;
    struct tm tm = { .tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h, .tm_min = mi, .tm_sec = sec };
    time_t t = timegm(&tm);
    if (tm.tm_mday != d) return -EINVAL;   /* timegm normalised a day that does not exist */
    t -= (time_t)sign * (zh * 3600 + zm * 60);
    *us = (int64_t)t * 1000000 + frac;
    return 0;
}

int pg_target_parse(const char *text, pg_target *t)
{
    memset(t, 0, sizeof *t);
    if (strchr(text, 'T') || strchr(text, 't')) {
        t->is_time = 1;
        return parse_time(text, &t->time_us);
    }
    return parse_lsn(text, &t->lsn);
}

/* Moment US as ISO 8601 UTC, fractions only when there are some. */
static void format_time(int64_t us, char *buf, size_t len)
{
    time_t s = (time_t)(us / 1000000);
    int64_t f = us % 1000000;
    if (f < 0) { f += 1000000; s--; }
    struct tm tm;
    gmtime_r(&s, &tm);
    char base[32];
    strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
    if (f) snprintf(buf, len, "%s.%06" PRId64 "Z", base, f);
    else snprintf(buf, len, "%sZ", base);
}

void pg_target_format(const pg_target *t, char *buf, size_t len)
{
    if (t->is_time) format_time(t->time_us, buf, len);
    else snprintf(buf, len, "%" PRIX32 "-%" PRIX32, (uint32_t)(t->lsn >> 32), (uint32_t)t->lsn);
}

/* ---- the base state ---- */

/* The position in generation GEN of BRANCH into *P: 0, -ENOENT (no WAL
 * recorded there), -EAGAIN (the generation was collected since it was
 * listed: look again), or -errno with ERR set. */
static int gen_pos(objstore *os, const char *branch, uint64_t gen, pg_wal_pos *p, char *err, size_t errlen)
{
    manifest m;
    int rc = manifest_load(os, branch, gen, &m);
    if (rc == -ENOENT) {
        snprintf(err, errlen, "branch '%s': generation %" PRIu64 " was collected while it was read", branch, gen);
        return -EAGAIN;
    }
    if (!rc) {
        rc = pg_wal_pos_at(os, &m, p);
        manifest_free(&m);
    }
    if (rc && rc != -ENOENT)
        snprintf(err, errlen, "branch '%s': cannot read generation %" PRIu64 " of its history: %s", branch, gen,
                 strerror(-rc));
    return rc;
}

/* The checkpoint record that global/pg_control names in state M of OS
 * into *LSN (ControlFileData.checkPoint, 32 bytes in), where its redo
 * begins into *REDO (checkPointCopy.redo, 40 bytes in) and its timeline
 * into *TLI (checkPointCopy.ThisTimeLineID, 48 bytes in: all the same in
 * every PostgreSQL release since 9.0).  0, -ENOENT (no pg_control), or
 * -errno. */
static int base_control(objstore *os, const manifest *m, uint64_t *lsn, uint64_t *redo, uint32_t *tli)
{
    uint8_t v[FS_DIRENT_LEN], page[8192];
    size_t vlen = 0;
    uint64_t dir = FS_ROOT_INO;
    uint32_t type;
    skey k;
    static const char *const path[] = { "global", "pg_control" };
    for (int i = 0; i < 2; i++) {
        key_dirent(&k, dir, path[i], strlen(path[i]));
        int rc = store_peek(os, m, &k, v, sizeof v, &vlen);
        if (!rc) rc = fs_dirent_decode(v, vlen, &dir, &type);
        if (rc) return rc;
    }
    key_page(&k, dir, 0);
    memset(page, 0, sizeof page);
    int rc = store_peek(os, m, &k, page, sizeof page, &vlen);
    if (rc) return rc;
    *lsn = fs_get_le(page + 32, 8);
    *redo = fs_get_le(page + 40, 8);
    *tli = (uint32_t)fs_get_le(page + 48, 4);
    return *lsn ? 0 : -ENOENT;
}

#define CHECKPOINT_RECORD_MAX 128 /* a checkpoint record's bytes (header and CheckPoint), with room */

/* 1 if state M of OS holds the WAL pages of the checkpoint record at LSN
 * on timeline TLI, 0 if not, or -errno.  A state cut while the kernel
 * still held that WAL (the writeback cache: fs/fs_writeback.c) when the
 * server wrote pg_control without an fsync before it (initdb) names a
 * checkpoint its own WAL lacks: recovery from it finds no checkpoint. */
static int holds_checkpoint(objstore *os, const manifest *m, uint32_t tli, uint64_t lsn)
{
    uint8_t page[PG_WAL_PAGE];
    for (uint64_t n = lsn / PG_WAL_PAGE; n <= (lsn + CHECKPOINT_RECORD_MAX - 1) / PG_WAL_PAGE; n++) {
        skey k;
        size_t vlen = 0;
        key_walpage(&k, tli, n);
        int rc = store_peek(os, m, &k, page, sizeof page, &vlen);
        if (rc == -ENOENT || (!rc && vlen == 0)) return 0;   /* all-zero pages are stored empty */
        if (rc) return rc;
    }
    return 1;
}

/* The checkpoint and redo pointer of generation GEN of BRANCH: 0,
 * -ENOENT (no pg_control there), -ESRCH (its WAL lacks the checkpoint
 * record, when asked to check: WHOLE), -EAGAIN (collected since listed),
 * or -errno. */
static int gen_control(objstore *os, const char *branch, uint64_t gen, int whole, uint64_t *lsn, uint64_t *redo)
{
    manifest m;
    uint32_t tli;
    int rc = manifest_load(os, branch, gen, &m);
    if (rc == -ENOENT) return -EAGAIN;
    if (!rc) {
        rc = base_control(os, &m, lsn, redo, &tli);
        if (!rc && whole) {
            rc = holds_checkpoint(os, &m, tli, *lsn);
            rc = rc < 0 ? rc : rc ? 0 : -ESRCH;
        }
        manifest_free(&m);
    }
    return rc;
}

typedef struct history {          /* the generations recovery can start from */
    uint64_t *gens;               /* existing ones, ascending: gc leaves gaps */
    size_t n;
} history;

/* The generations of BRANCH up to NEWEST (its newest state) into H, from
 * the oldest whose checkpoint's redo is not before where NEWEST's archive
 * begins (pg_archive_trim; redo pointers only grow with the generation:
 * binary search).  0 or -errno (-EAGAIN: look again). */
static int history_load(objstore *os, const char *branch, const manifest *newest, history *h)
{
    uint64_t trimmed;
    int rc = manifest_gens(os, branch, &h->gens, &h->n);
    if (rc) return rc;
    while (h->n && h->gens[h->n - 1] > newest->gen) h->n--;   /* committed since NEWEST was loaded */
    if (!h->n || h->gens[h->n - 1] != newest->gen) rc = -EAGAIN;
    if (!rc) rc = pg_archive_trimmed_at(os, newest, &trimmed);
    if (rc || !trimmed) return rc;
    size_t a = 0, b = h->n, first = h->n - 1;   /* the newest state's own checkpoint is always kept */
    while (a < b) {
        size_t mid = a + (b - a) / 2;
        uint64_t lsn, redo;
        rc = gen_control(os, branch, h->gens[mid], 0, &lsn, &redo);
        if (rc && rc != -ENOENT) return rc;
        if (!rc && redo >= trimmed) { first = mid; b = mid; }
        else a = mid + 1;
    }
    memmove(h->gens, h->gens + first, (h->n - first) * sizeof *h->gens);
    h->n -= first;
    return 0;
}

/* 1 if position P lies past target T. */
static int past(const pg_wal_pos *p, const pg_target *t)
{
    return t->is_time ? p->time_us >= t->time_us : p->lsn > t->lsn;
}

/* The index in H of BRANCH's newest generation not past T into *AT
 * (SIZE_MAX: even the oldest is), its position in *P (*HAS 0: it has
 * none).  Positions only grow with the generation: binary search. */
static int search(objstore *os, const char *branch, const history *h, const pg_target *t, size_t *at,
                  pg_wal_pos *p, int *has, char *err, size_t errlen)
{
    size_t lo = 0, hi = h->n;
    *at = SIZE_MAX;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        pg_wal_pos q;
        int rc = gen_pos(os, branch, h->gens[mid], &q, err, errlen);
        if (rc && rc != -ENOENT) return rc;
        if (!rc && past(&q, t)) {
            hi = mid;
        } else {
            *at = mid;
            *has = !rc;
            if (!rc) *p = q;
            lo = mid + 1;
        }
    }
    return 0;
}

/* The oldest point of BRANCH into *P, once (-EAGAIN: look again). */
static int oldest_once(objstore *os, const char *branch, pg_wal_pos *p)
{
    manifest m;
    history h = { 0 };
    char err[256];
    if (manifest_load_latest(os, branch, &m)) return -ENOENT;
    int rc = history_load(os, branch, &m, &h);
    manifest_free(&m);
    size_t lo = 0, hi = h.n, found = SIZE_MAX;
    while (!rc && lo < hi) {      /* positions, once there, stay: the first with one */
        size_t mid = lo + (hi - lo) / 2;
        pg_wal_pos q;
        rc = gen_pos(os, branch, h.gens[mid], &q, err, sizeof err);
        if (rc == -ENOENT) { rc = 0; lo = mid + 1; }
        else if (!rc) { found = mid; *p = q; hi = mid; }
    }
    free(h.gens);
    if (rc) return rc;
    if (found == SIZE_MAX) return -ENOENT;
    branch_meta meta;
    rc = branch_meta_load(os, branch, &meta);
    if (rc && rc != -ENOENT) return rc;
    if (!rc && meta.at_lsn > p->lsn) {   /* made at a point of its parent's past: that point */
        p->lsn = meta.at_lsn;
        p->time_us = meta.created * 1000000;
    }
    return 0;
}

#define TARGET_TRIES 3            /* looks at a history that gc changes meanwhile */

int pg_target_oldest(objstore *os, const char *branch, pg_wal_pos *p)
{
    int rc = -EAGAIN;
    for (int i = 0; i < TARGET_TRIES && rc == -EAGAIN; i++) rc = oldest_once(os, branch, p);
    return rc;
}

/* The error for a target before every reachable point. */
static int too_old(objstore *os, const char *branch, const char *what, int64_t floor_us, char *err, size_t errlen)
{
    pg_wal_pos o;
    char lsn[PG_LSN_LEN], when[40];
    if (pg_target_oldest(os, branch, &o)) {
        snprintf(err, errlen, "branch '%s' has no PostgreSQL WAL before %s: nothing to recover there", branch, what);
        return -ENOENT;
    }
    if (o.time_us < floor_us) {
        format_time(floor_us, when, sizeof when);
        snprintf(err, errlen, "%s of branch '%s' is older than the retention window; the oldest point reachable "
                 "is %s", what, branch, when);
        return -ENOENT;
    }
    pg_wal_lsn_format(o.lsn, lsn, sizeof lsn);
    format_time(o.time_us, when, sizeof when);
    snprintf(err, errlen, "%s is before the oldest point of branch '%s' that can be recovered (where it began, or "
             "its first WAL still kept); the oldest point reachable is LSN %s (%s)", what, branch, lsn, when);
    return -ENOENT;
}

/* pg_target_base, once (-EAGAIN: look again). */
static int base_once(objstore *os, const char *branch, const pg_target *t, int64_t retention_s,
                     pg_base *b, char *err, size_t errlen)
{
    char what[96], text[PG_TARGET_TEXT], lsn[PG_LSN_LEN], when[40];
    pg_target_format(t, text, sizeof text);
    snprintf(what, sizeof what, "%s %s", t->is_time ? "time" : "LSN", text);
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    int64_t now_us = (int64_t)now.tv_sec * 1000000 + now.tv_nsec / 1000;
    int64_t floor_us = retention_s > 0 && retention_s < now_us / 1000000 ? now_us - retention_s * 1000000 : INT64_MIN;
    manifest m;
    int rc = manifest_load_latest(os, branch, &m);
    if (rc) {
        snprintf(err, errlen, rc == -ENOENT ? "branch '%s' does not exist; see lakefs branch list"
                 : "branch '%s': cannot load its manifest", branch);
        return rc;
    }
    history h = { 0 };            /* the generations recovery can start from */
    rc = history_load(os, branch, &m, &h);
    pg_wal_pos newest;
    if (rc) {
        snprintf(err, errlen, "branch '%s': cannot list its generations: %s", branch, strerror(-rc));
    } else if ((rc = pg_wal_pos_at(os, &m, &newest))) {
        if (rc == -ENOENT) snprintf(err, errlen, "branch '%s' has no PostgreSQL WAL yet: there is no past to go to", branch);
        else snprintf(err, errlen, "branch '%s': cannot read its newest state: %s", branch, strerror(-rc));
    }
    manifest_free(&m);
    if (rc) {
        free(h.gens);
        return rc;
    }
    branch_meta meta;             /* a branch made at a point of its parent's past begins there */
    if ((rc = branch_meta_load(os, branch, &meta)) && rc != -ENOENT) {
        snprintf(err, errlen, "branch '%s': cannot load its metadata: %s", branch, strerror(-rc));
        free(h.gens);
        return rc;
    }
    b->floor_lsn = rc ? 0 : meta.at_lsn;
    if (newest.lsn < b->floor_lsn) newest.lsn = b->floor_lsn;   /* its WAL, copied in, reaches the point */
    if (t->is_time ? t->time_us > now_us : t->lsn > newest.lsn) {
        pg_wal_lsn_format(newest.lsn, lsn, sizeof lsn);
        format_time(newest.time_us, when, sizeof when);
        snprintf(err, errlen, "%s is in the future of branch '%s': its WAL ends at LSN %s (written %s)", what, branch,
                 lsn, when);
        free(h.gens);
        return -ERANGE;
    }
    size_t at = SIZE_MAX;
    uint64_t gen, redo;
    pg_wal_pos p = { 0 };
    int has = 0;
    if ((t->is_time && t->time_us < floor_us) || (!t->is_time && t->lsn < b->floor_lsn)) rc = 1;
    else if ((rc = search(os, branch, &h, t, &at, &p, &has, err, errlen))) {
        free(h.gens);
        return rc;
    }
    gen = at == SIZE_MAX ? 0 : h.gens[at];
    /* a state whose WAL lacks the checkpoint its pg_control names is no
     * base (holds_checkpoint): the one before it is */
    int cr = 0;
    while (!rc && gen && has && (cr = gen_control(os, branch, gen, 1, &b->checkpoint, &redo)) == -ESRCH) {
        gen = at ? h.gens[--at] : 0;
        int prc = gen ? gen_pos(os, branch, gen, &p, err, errlen) : 0;
        if (prc && prc != -ENOENT) {
            free(h.gens);
            return prc;
        }
        has = !prc;
    }
    if (!rc && gen && has && p.time_us < floor_us && at + 1 < h.n) {
        /* older than the window: only its base, the newest state before it, is kept (gc.h) */
        pg_wal_pos next;
        rc = gen_pos(os, branch, h.gens[at + 1], &next, err, errlen);
        if (rc < 0 && rc != -ENOENT) {
            free(h.gens);
            return rc;
        }
        rc = rc || next.time_us < floor_us;
    }
    free(h.gens);
    if (rc || !gen || !has) return too_old(os, branch, what, floor_us, err, errlen);
    snprintf(b->branch, sizeof b->branch, "%s", branch);
    b->gen = gen;
    b->lsn = p.lsn;
    b->time_us = p.time_us;
    rc = cr;
    if (rc == -EAGAIN)
        snprintf(err, errlen, "branch '%s': generation %" PRIu64 " was collected while it was read", branch, gen);
    else if (rc == -ENOENT)
        snprintf(err, errlen, "branch '%s': generation %" PRIu64 " (before %s) holds no PostgreSQL data directory with "
                 "a pg_control", branch, gen, what);
    else if (rc)
        snprintf(err, errlen, "branch '%s': cannot read pg_control in generation %" PRIu64 ": %s", branch, gen,
                 strerror(-rc));
    return rc;
}

int pg_target_base(objstore *os, const char *branch, const pg_target *t, int64_t retention_s,
                   pg_base *b, char *err, size_t errlen)
{
    int rc = -EAGAIN;
    for (int i = 0; i < TARGET_TRIES && rc == -EAGAIN; i++) rc = base_once(os, branch, t, retention_s, b, err, errlen);
    return rc;
}

/* pg_target_horizon, once (-EAGAIN: look again). */
static int horizon_once(objstore *os, const char *branch, int64_t retention_s, int64_t now_us, uint64_t *redo)
{
    manifest m;
    history h = { 0 };
    int rc = manifest_load_latest(os, branch, &m);
    if (rc) return rc;
    rc = history_load(os, branch, &m, &h);
    manifest_free(&m);
    /* the window's base, the newest generation before it: no base of a target is older */
    pg_target window = { .is_time = 1, .time_us = now_us - retention_s * 1000000 };
    pg_wal_pos p;
    int has = 0;
    size_t at = SIZE_MAX;
    char err[256];
    if (!rc) rc = search(os, branch, &h, &window, &at, &p, &has, err, sizeof err);
    if (!rc) {
        if (at == SIZE_MAX) at = 0;        /* even the oldest is within it */
        uint64_t lsn;
        rc = gen_control(os, branch, h.gens[at], 0, &lsn, redo);
    }
    free(h.gens);
    return rc;
}

int pg_target_horizon(objstore *os, const char *branch, int64_t retention_s, int64_t now_us, uint64_t *redo)
{
    int rc = -EAGAIN;
    for (int i = 0; i < TARGET_TRIES && rc == -EAGAIN; i++) rc = horizon_once(os, branch, retention_s, now_us, redo);
    return rc;
}

/* ---- the cut ---- */

int pg_target_cut(store *archive, const pg_target *t, const pg_base *b, uint64_t *cut, char *err, size_t errlen)
{
    if (!t->is_time) {
        *cut = t->lsn;
        return 0;
    }
    pg_wal_pos pos;
    pg_walscan_result r;
    pg_archive a = { archive, UINT64_MAX };
    int rc = pg_wal_pos_get(archive, &pos);
    /* from the base's checkpoint: every record up to the base's WAL end is older than the moment */
    if (!rc) rc = pg_walscan_time(&a, pos.tli, b->checkpoint, t->time_us, &r);
    if (rc) {
        snprintf(err, errlen, "cannot read the WAL archive of branch '%s': %s", b->branch, strerror(-rc));
        return rc;
    }
    if (r.cut < b->floor_lsn) {   /* the moment is before the branch began */
        char lsn[PG_LSN_LEN];
        pg_wal_lsn_format(b->floor_lsn, lsn, sizeof lsn);
        snprintf(err, errlen, "that moment is before branch '%s' began at LSN %s; the oldest point reachable is "
                 "LSN %s", b->branch, lsn, lsn);
        return -ENOENT;
    }
    *cut = r.cut;
    return 0;
}

/* ---- recovery settings ---- */

void pg_target_settings(int read_write, char *buf, size_t len, const char **signal)
{
    snprintf(buf, len,
             "\n# lakefs: recovery to a point in the branch's past (pg_target.h)\n"
             "restore_command = 'test -f .lakefs-wal/%%f && cp .lakefs-wal/%%f \"%%p\"'\n"
             "recovery_target_timeline = 'latest'\n"
             "hot_standby = off\n"
             "archive_mode = off\n"
             "%s",
             read_write ? "" : "default_transaction_read_only = on\n");
    *signal = PG_TARGET_SIGNAL;
}

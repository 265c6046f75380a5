/*
 * test_pg_target.c -- targets in a branch's past (fs/pg/pg_target.c):
 * parsing and formatting, the recovery settings, and the base state a
 * recovery to a target starts from.
 *
 * What can go wrong: an LSN or a moment read wrongly (a half shifted by the
 * wrong amount, a zone applied with the wrong sign, a fraction scaled
 * wrongly, a day that does not exist normalised by timegm into another
 * one) or junk accepted; a view name that is not canonical (two names for
 * one point); recovery settings that do not read the view's archive, let
 * connections in before the target or leave a read-only view writable; and
 * above all the wrong base state: one newer than the target (its pages
 * hold changes recovery cannot undo), an older one than needed, one from a
 * parent's history after the branch point, a target past the WAL or in the
 * future accepted, one before the first WAL or outside the retention
 * window accepted.  Checked:
 *  - pg_target_parse on LSNs ("X/X", "X-X", lower case, extremes, leading
 *    zeros) and on every kind of malformed one; on moments against
 *    hand-computed microseconds since the epoch (fractions, zones +HH:MM,
 *    -HHMM, +HH, lower-case t and z, a leap day, before 1970) and on
 *    malformed ones (no zone, 7 fraction digits, month 13, Feb 30, Apr 31,
 *    Feb 29 of a common year, hour 24, second 60, trailing junk, ...);
 *  - pg_target_format: the canonical forms, and format(parse(x)) for
 *    non-canonical inputs;
 *  - pg_target_settings for a read-only view and a read-write branch;
 *  - pg_target_base on a file:// repository whose branch "main" has
 *    generations at increasing WAL positions written through the observer
 *    (pg_wal.h) and committed by store_checkpoint: for every recorded
 *    position, LSN targets at, just after and just before it, time targets
 *    at and just after its time; past the WAL end and in the future
 *    (-ERANGE); before the first WAL (-ENOENT naming the oldest point); a
 *    branch without WAL and one that does not exist;
 *  - a fork "dev" and a fork "sub" of the fork: targets before a branch
 *    point resolve into the parent's (or grandparent's) generations up to
 *    the branch point, never into the parent's later ones;
 *  - retention: a time target older than now - retention, or an LSN
 *    before the window's base (the newest state before the window), is
 *    refused with -ENOENT mentioning the retention window; a recent
 *    target whose base is the window's base is not;
 *  - the WAL horizon of a window (pg_target_horizon): the redo point of
 *    the window's base (the newest generation made before it); after
 *    the archive is trimmed there (pg_archive_trim) and that committed,
 *    generations whose redo lies before where the archive begins are no
 *    base any more (refused naming the oldest point left) and
 *    pg_target_oldest moves up to the first one that is;
 *  - a state whose pg_control names a checkpoint record its own WAL lacks
 *    is no base: the state before it serves, until one holds the record.
 */
#include "harness.h"
#include "branch.h"
#include "manifest.h"
#include "store.h"
#include "../../fs/pg/pg_archive.h"
#include "../../fs/pg/pg_target.h"
#include "../../fs/pg/pg_wal.h"

#include <errno.h>
#include <inttypes.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "harness_repo.h"

#define MiB (1ull << 20)
#define SEG16 (16 * MiB)
#define PG_WAL_DIR 2              /* inode of pg_wal/ in the test tree */
#define I_SEG1 10                 /* pg_wal/000000010000000000000001 */
#define I_GLOBAL 20               /* global/ */
#define I_CONTROL 21              /* global/pg_control */
#define I_SEG2 11                 /* pg_wal/000000010000000000000002 */

/* ---- parsing and formatting ---- */

/* 1 if TEXT parses as LSN WANT. */
static int lsn_is(const char *text, uint64_t want)
{
    pg_target t;
    t.is_time = 7;
    return pg_target_parse(text, &t) == 0 && t.is_time == 0 && t.lsn == want;
}

/* 1 if TEXT parses as the moment WANT (microseconds since the epoch). */
static int time_is(const char *text, int64_t want)
{
    pg_target t;
    t.is_time = 7;
    int rc = pg_target_parse(text, &t);
    if (rc || t.is_time != 1 || t.time_us != want)
        fprintf(stderr, "  %s: rc %d is_time %d time_us %" PRId64 " (want %" PRId64 ")\n", text, rc, t.is_time,
                t.time_us, want);
    return rc == 0 && t.is_time == 1 && t.time_us == want;
}

static int refused(const char *text)
{
    pg_target t;
    return pg_target_parse(text, &t) == -EINVAL;
}

/* 1 if TEXT parses and formats as WANT. */
static int canonical(const char *text, const char *want)
{
    pg_target t;
    char buf[PG_TARGET_TEXT];
    if (pg_target_parse(text, &t)) return 0;
    memset(buf, 'x', sizeof buf);
    pg_target_format(&t, buf, sizeof buf);
    if (strcmp(buf, want)) fprintf(stderr, "  %s formats as %s, want %s\n", text, buf, want);
    return !strcmp(buf, want);
}

#define S 1000000ll               /* microseconds per second */
#define T_20261123 1795392000ll   /* 2026-11-23T00:00:00Z: 20780 days (56 years, 14 leap days, 326) */

static void test_parse(void)
{
    /* LSNs */
    CHECK(lsn_is("0/16B3748", 0x16B3748));
    CHECK(lsn_is("0-16B3748", 0x16B3748));
    CHECK(lsn_is("0/16b3748", 0x16B3748));
    CHECK(lsn_is("a3/ff", 0xA3000000FFull));
    CHECK(lsn_is("A3-fF", 0xA3000000FFull));
    CHECK(lsn_is("1/0", 0x100000000ull));
    CHECK(lsn_is("0/0", 0));
    CHECK(lsn_is("FFFFFFFF/FFFFFFFF", UINT64_MAX));
    CHECK(lsn_is("00000000/016B3748", 0x16B3748));             /* 8 digits, leading zeros */
    CHECK(lsn_is("12345678-9ABCDEF0", 0x123456789ABCDEF0ull));
    const char *bad_lsn[] = {
        "", "/", "-", "/1", "-1", "1/", "1-", "1-2-3", "1/2/3", "1/-2", "1//2",
        "100000000/0", "0/100000000", "000000000/1",               /* 9 hex digits */
        "0x1/2", "1/0x2", "+1/2", " 0/1", "0/1 ", "0 /1", "0/ 1", "G/1", "1/G", "0/16B3748\n", "16B3748",
        "0.1", "1:2",
    };
    for (size_t i = 0; i < sizeof bad_lsn / sizeof bad_lsn[0]; i++) {
        if (!refused(bad_lsn[i])) fprintf(stderr, "  accepted LSN '%s'\n", bad_lsn[i]);
        CHECK(refused(bad_lsn[i]));
    }

    /* moments */
    int64_t t0 = (T_20261123 + 10 * 3600 + 32 * 60 + 5) * S;     /* 2026-11-23T10:32:05Z = 1795429925 s */
    CHECK(t0 == 1795429925ll * S);
    CHECK(time_is("2026-11-23T10:32:05Z", t0));
    CHECK(time_is("2000-01-01T00:00:00Z", 946684800ll * S));
    CHECK(time_is("1970-01-01T00:00:00Z", 0));
    CHECK(time_is("1970-01-01T00:00:01Z", S));
    CHECK(time_is("1969-12-31T23:59:59Z", -S));
    CHECK(time_is("1969-12-31T23:59:59.5Z", -S / 2));
    CHECK(time_is("2024-02-29T00:00:00Z", 1709164800ll * S));   /* a leap day */
    CHECK(time_is("2000-02-29T12:00:00Z", (951782400ll + 12 * 3600) * S));   /* 2000 is a leap year */
    CHECK(time_is("2038-01-19T03:14:08Z", 2147483648ll * S));   /* past 32-bit time_t */
    CHECK(time_is("2026-11-23t10:32:05z", t0));
    CHECK(time_is("2026-11-23T10:32:05.5Z", t0 + 500000));
    CHECK(time_is("2026-11-23T10:32:05.123456Z", t0 + 123456));
    CHECK(time_is("2026-11-23T10:32:05.000001Z", t0 + 1));
    CHECK(time_is("2026-11-23T10:32:05.05Z", t0 + 50000));
    CHECK(time_is("2026-11-23T10:32:05.000000Z", t0));
    CHECK(time_is("2026-11-23T10:32:05+02:00", t0 - 2 * 3600 * S));
    CHECK(time_is("2026-11-23T10:32:05+0200", t0 - 2 * 3600 * S));
    CHECK(time_is("2026-11-23T10:32:05+02", t0 - 2 * 3600 * S));
    CHECK(time_is("2026-11-23T10:32:05-0530", t0 + (5 * 3600 + 30 * 60) * S));
    CHECK(time_is("2026-11-23T10:32:05-05:30", t0 + (5 * 3600 + 30 * 60) * S));
    CHECK(time_is("2026-11-23T10:32:05+00:00", t0));
    CHECK(time_is("2026-11-23T10:32:05-00", t0));
    CHECK(time_is("2026-11-23T10:32:05.25+02:00", t0 - 2 * 3600 * S + 250000));
    CHECK(time_is("2026-11-23T00:30:00+01:00", (T_20261123 - 3600 + 1800) * S));   /* the day before in UTC */
    CHECK(time_is("2026-12-31T23:59:59-01:00", (T_20261123 + 38 * 86400 + 86399 + 3600) * S));   /* the year after */
    const char *bad_time[] = {
        "2026-11-23T10:32:05",                 /* no zone: nothing exact */
        "2026-11-23T10:32:05.5",
        "2026-11-23T10:32:05.1234567Z",        /* 7 digits */
        "2026-11-23T10:32:05.Z",
        "2026-11-23T10:32:05,5Z",
        "2026-13-01T00:00:00Z", "2026-00-01T00:00:00Z",
        "2026-02-30T00:00:00Z", "2026-02-29T00:00:00Z", "2026-04-31T00:00:00Z", "2026-11-31T00:00:00Z",
        "2026-11-00T00:00:00Z", "2026-11-32T00:00:00Z",
        "2026-11-23T24:00:00Z", "2026-11-23T10:60:00Z", "2026-11-23T10:32:60Z",
        "2026-11-23T10:32:05Zjunk", "2026-11-23T10:32:05Z ", "2026-11-23T10:32:05+02:00x",
        "2026-11-23T10:32:05+02:00:00", "2026-11-23T10:32:05+2", "2026-11-23T10:32:05+02:0",
        "2026-11-23T10:32:05+24:00", "2026-11-23T10:32:05+02:60", "2026-11-23T10:32:05UTC",
        "2026-11-23 10:32:05Z", "2026-11-23T10:32Z", "2026-11-23T10:32:5Z", "26-11-23T10:32:05Z",
        "2026-1-23T10:32:05Z", "2026/11/23T10:32:05Z", "T", "2026-11-23T", " 2026-11-23T10:32:05Z",
        "2026-11-23T10:32:05.-5Z",
    };
    for (size_t i = 0; i < sizeof bad_time / sizeof bad_time[0]; i++) {
        if (!refused(bad_time[i])) fprintf(stderr, "  accepted moment '%s'\n", bad_time[i]);
        CHECK(refused(bad_time[i]));
    }
    /* The header allows the zones Z, +HH:MM, +HHMM and +HH (pg_target.c's
     * comment on parse_time); a colon with no minutes is none of them. */
    CHECK(refused("2026-11-23T10:32:05+02:"));

    /* formatting: canonical forms, and round trips from other forms */
    CHECK(canonical("0/16B3748", "0-16B3748"));
    CHECK(canonical("0-16b3748", "0-16B3748"));
    CHECK(canonical("00000000/016B3748", "0-16B3748"));
    CHECK(canonical("0/0", "0-0"));
    CHECK(canonical("a3/ff", "A3-FF"));
    CHECK(canonical("ffffffff/ffffffff", "FFFFFFFF-FFFFFFFF"));
    CHECK(canonical("2026-11-23T10:32:05Z", "2026-11-23T10:32:05Z"));
    CHECK(canonical("2026-11-23t10:32:05z", "2026-11-23T10:32:05Z"));
    CHECK(canonical("2026-11-23T10:32:05.000000Z", "2026-11-23T10:32:05Z"));
    CHECK(canonical("2026-11-23T10:32:05.5Z", "2026-11-23T10:32:05.500000Z"));
    CHECK(canonical("2026-11-23T10:32:05.123456+02:00", "2026-11-23T08:32:05.123456Z"));
    CHECK(canonical("2026-11-23T10:32:05-0530", "2026-11-23T16:02:05Z"));
    CHECK(canonical("2026-11-23T00:30:00+01", "2026-11-22T23:30:00Z"));
    CHECK(canonical("1969-12-31T23:59:59.5Z", "1969-12-31T23:59:59.500000Z"));
    CHECK(canonical("2024-02-29T23:59:59.999999Z", "2024-02-29T23:59:59.999999Z"));
    pg_target t = { .is_time = 0, .lsn = 0x1002000 };
    char buf[PG_TARGET_TEXT];
    pg_target_format(&t, buf, sizeof buf);
    CHECK(!strcmp(buf, "0-1002000"));
    t = (pg_target){ .is_time = 1, .time_us = 946684800ll * S + 1 };
    pg_target_format(&t, buf, sizeof buf);
    CHECK(!strcmp(buf, "2000-01-01T00:00:00.000001Z"));
    pg_target back;                 /* and the canonical form parses back to the same point */
    CHECK(pg_target_parse(buf, &back) == 0 && back.is_time == 1 && back.time_us == t.time_us);
    t = (pg_target){ .is_time = 0, .lsn = 0xA3000000FFull };
    pg_target_format(&t, buf, sizeof buf);
    CHECK(pg_target_parse(buf, &back) == 0 && back.is_time == 0 && back.lsn == t.lsn);
}

static void test_settings(void)
{
    char buf[1024];
    const char *signal = NULL;
    pg_target_settings(0, buf, sizeof buf, &signal);
    CHECK(signal && !strcmp(signal, "recovery.signal"));
    CHECK(strstr(buf, "restore_command") != NULL);
    const char *rc = strstr(buf, "restore_command");
    const char *eol = rc ? strchr(rc, '\n') : NULL;
    CHECK(rc && eol);
    if (rc && eol) {              /* the command reads the view's archive, by the name PostgreSQL asks for */
        char line[512];
        snprintf(line, sizeof line, "%.*s", (int)(eol - rc), rc);
        CHECK(strstr(line, ".lakefs-wal/%f") != NULL);
        CHECK(strstr(line, "%p") != NULL);
    }
    CHECK(strstr(buf, "\nhot_standby = off\n") != NULL);
    CHECK(strstr(buf, "\ndefault_transaction_read_only = on\n") != NULL);
    CHECK(buf[strlen(buf) - 1] == '\n');          /* appended lines end with one */

    signal = NULL;
    pg_target_settings(1, buf, sizeof buf, &signal);
    CHECK(signal && !strcmp(signal, "recovery.signal"));
    CHECK(strstr(buf, "restore_command") != NULL && strstr(buf, ".lakefs-wal/%f") != NULL);
    CHECK(strstr(buf, "\nhot_standby = off\n") != NULL);
    CHECK(strstr(buf, "default_transaction_read_only") == NULL);

    char small[16];               /* truncated, still a string */
    pg_target_settings(0, small, sizeof small, &signal);
    CHECK(strlen(small) == sizeof small - 1);
}

/* ---- a branch store with WAL ---- */


/* Open BRANCH read-write (harness_repo.h). */
static store *open_branch(env *e, const char *branch) { return env_open(e, branch, 0); }

/* Write page PG (whole) of 16 MiB segment file INO as fs_write does: the
 * page and the observer in one batch.  pg_wal_write's result. */
static int wal_page(store *st, pg_wal *w, uint64_t ino, uint64_t pg)
{
    uint8_t page[8192];
    store_batch b;
    skey k;
    memset(page, (int)(pg + ino), sizeof page);
    store_batch_init(&b);
    key_page(&k, ino, pg);
    store_batch_put(&b, &k, page, sizeof page);
    int wal = pg_wal_write(w, &b, ino, SEG16, pg * 8192, 8192, pg, page, NULL, &(uint32_t){0}, &(uint64_t){0});
    int rc = store_commit(st, &b);
    CHECK(rc == 0);
    if (wal > 0) pg_wal_written(w, rc);
    store_batch_free(&b);
    return wal;
}

/* Checkpoint ST: the generation now holding everything. */
static uint64_t checkpoint(store *st)
{
    uint64_t seq = 0, gen = 0;
    CHECK(store_checkpoint(st, &seq, &gen) == 0);
    return gen;
}

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * S + ts.tv_nsec / 1000;
}

static pg_target lsn_target(uint64_t lsn) { return (pg_target){ .is_time = 0, .lsn = lsn }; }
static pg_target time_target(int64_t us) { return (pg_target){ .is_time = 1, .time_us = us }; }

static char err[512];

/* pg_target_base of BRANCH at T (RETENTION_S) into *B: its result; ERR says why. */
static int base_of(env *e, const char *branch, pg_target t, int64_t retention_s, pg_base *b)
{
    err[0] = 0;
    memset(b, 0, sizeof *b);
    return pg_target_base(e->os, branch, &t, retention_s, b, err, sizeof err);
}

/* 1 if the base of BRANCH at T is generation GEN of FROM at (LSN, TIME), or
 * a later generation of the same state (a compaction commits the state it
 * merged again: LSN and TIME tell the state). */
static int base_is(env *e, const char *branch, pg_target t, int64_t retention_s, const char *from, uint64_t gen,
                   uint64_t lsn, int64_t time_us)
{
    pg_base b;
    int rc = base_of(e, branch, t, retention_s, &b);
    int ok = rc == 0 && !strcmp(b.branch, from) && b.gen >= gen && b.lsn == lsn && b.time_us == time_us &&
             b.checkpoint == SEG16 + 40;   /* what the tree's pg_control names */
    if (!ok) {
        char text[PG_TARGET_TEXT];
        pg_target_format(&t, text, sizeof text);
        fprintf(stderr, "  base of %s@%s: rc %d (%s) %s gen %" PRIu64 " lsn %" PRIX64 "; want %s gen %" PRIu64
                " lsn %" PRIX64 "\n", branch, text, rc, err, b.branch, b.gen, b.lsn, from, gen, lsn);
    }
    return ok;
}

/* 1 if the base of BRANCH at T is refused with RC and ERR contains WANT. */
static int base_refused(env *e, const char *branch, pg_target t, int64_t retention_s, int want_rc, const char *want)
{
    pg_base b;
    int rc = base_of(e, branch, t, retention_s, &b);
    int ok = rc == want_rc && strstr(err, want) != NULL && strstr(err, branch) != NULL;
    if (!ok) fprintf(stderr, "  refusal: rc %d (want %d), '%s' (want '%s')\n", rc, want_rc, err, want);
    return ok;
}

#define NGEN 6

static void test_base(void)
{
    env e;
    env_init(&e);
    store *st = open_branch(&e, "main");
    pg_wal *w = must_observe(st);

    /* initdb's first moments: files, no WAL yet */
    dirent(st, 1, "pg_wal", PG_WAL_DIR, S_IFDIR);
    dirent(st, PG_WAL_DIR, "000000010000000000000001", I_SEG1, S_IFREG);
    dirent(st, 1, "PG_VERSION", 3, S_IFREG);
    /* global/pg_control, naming a checkpoint record (ControlFileData.checkPoint, 32 bytes in) */
    dirent(st, 1, "global", I_GLOBAL, S_IFDIR);
    dirent(st, I_GLOBAL, "pg_control", I_CONTROL, S_IFREG);
    {
        uint8_t page[8192] = { 0 };
        uint64_t ckpt = SEG16 + 40;
        for (int i = 0; i < 8; i++) page[32 + i] = (uint8_t)(ckpt >> (8 * i));
        page[48] = 1;             /* checkPointCopy.ThisTimeLineID */
        store_batch b;
        skey k;
        store_batch_init(&b);
        key_page(&k, I_CONTROL, 0);
        store_batch_put(&b, &k, page, sizeof page);
        CHECK(store_commit(st, &b) == 0);
        store_batch_free(&b);
    }
    uint64_t g_nowal = checkpoint(st);
    CHECK(base_refused(&e, "main", lsn_target(SEG16), 0, -ENOENT, "no PostgreSQL WAL"));

    /* NGEN generations, each one page further, each at a later time */
    uint64_t g[NGEN + 1], lsn[NGEN + 1];
    int64_t t[NGEN + 1];
    for (int i = 0; i < NGEN; i++) {
        CHECK(wal_page(st, w, I_SEG1, (uint64_t)i) == 1);
        pg_wal_pos p;
        CHECK(pg_wal_pos_get(st, &p) == 0);
        lsn[i] = SEG16 + (uint64_t)(i + 1) * 8192;
        t[i] = p.time_us;
        CHECK(p.lsn == lsn[i]);
        g[i] = checkpoint(st);
        CHECK(g[i] > (i ? g[i - 1] : g_nowal));
        CHECK(i == 0 || t[i] > t[i - 1]);
        usleep(3000);
    }
    CHECK(t[NGEN - 1] < now_us());

    /* LSN targets: the newest generation whose position is at or before it */
    for (int i = 0; i < NGEN; i++) {
        CHECK(base_is(&e, "main", lsn_target(lsn[i]), 0, "main", g[i], lsn[i], t[i]));
        if (i) CHECK(base_is(&e, "main", lsn_target(lsn[i] - 1), 0, "main", g[i - 1], lsn[i - 1], t[i - 1]));
        if (i + 1 < NGEN) {
            CHECK(base_is(&e, "main", lsn_target(lsn[i] + 1), 0, "main", g[i], lsn[i], t[i]));
            CHECK(base_is(&e, "main", lsn_target(lsn[i] + 8191), 0, "main", g[i], lsn[i], t[i]));
        }
    }
    /* past the WAL end: "in the future", naming where the WAL ends (0/100C000) */
    CHECK(lsn[NGEN - 1] == 0x100C000);
    CHECK(base_refused(&e, "main", lsn_target(lsn[NGEN - 1] + 1), 0, -ERANGE, "0/100C000"));
    CHECK(base_refused(&e, "main", lsn_target(UINT64_MAX), 0, -ERANGE, "0/100C000"));
    /* before the first WAL: refused, naming the oldest point (0/1002000) */
    CHECK(base_refused(&e, "main", lsn_target(lsn[0] - 1), 0, -ENOENT, "0/1002000"));
    CHECK(base_refused(&e, "main", lsn_target(0), 0, -ENOENT, "0/1002000"));
    CHECK(base_refused(&e, "main", lsn_target(SEG16), 0, -ENOENT, "0/1002000"));

    /* time targets: the newest generation whose WAL was written before it */
    for (int i = 0; i < NGEN; i++) {
        CHECK(base_is(&e, "main", time_target(t[i] + 1), 0, "main", g[i], lsn[i], t[i]));
        if (i) CHECK(base_is(&e, "main", time_target(t[i]), 0, "main", g[i - 1], lsn[i - 1], t[i - 1]));
        if (i) CHECK(base_is(&e, "main", time_target(t[i] - 1), 0, "main", g[i - 1], lsn[i - 1], t[i - 1]));
    }
    CHECK(base_is(&e, "main", time_target(now_us() - 1000), 0, "main", g[NGEN - 1], lsn[NGEN - 1], t[NGEN - 1]));
    CHECK(base_refused(&e, "main", time_target(now_us() + 3600 * S), 0, -ERANGE, "future"));
    CHECK(base_refused(&e, "main", time_target(INT64_MAX), 0, -ERANGE, "future"));
    CHECK(base_refused(&e, "main", time_target(t[0]), 0, -ENOENT, "0/1002000"));
    CHECK(base_refused(&e, "main", time_target(946684800ll * S), 0, -ENOENT, "0/1002000"));
    CHECK(base_refused(&e, "main", time_target(INT64_MIN), 0, -ENOENT, "0/1002000"));
    /* the same through the parser, as a view's name gives it */
    {
        pg_target tt;
        char text[PG_TARGET_TEXT];
        CHECK(pg_target_parse("0/1006000", &tt) == 0);          /* lsn[2] */
        CHECK(base_is(&e, "main", tt, 0, "main", g[2], lsn[2], t[2]));
        pg_target_format(&(pg_target){ .is_time = 1, .time_us = t[3] + 1 }, text, sizeof text);
        CHECK(pg_target_parse(text, &tt) == 0);
        CHECK(base_is(&e, "main", tt, 0, "main", g[3], lsn[3], t[3]));
    }
    /* a recent target within a long retention window */
    CHECK(base_is(&e, "main", time_target(t[2] + 1), 3600, "main", g[2], lsn[2], t[2]));
    CHECK(base_is(&e, "main", lsn_target(lsn[1]), 3600, "main", g[1], lsn[1], t[1]));
    /* other branches */
    CHECK(base_refused(&e, "nosuch", lsn_target(lsn[0]), 0, -ENOENT, "does not exist"));
    {
        skey k;
        key_inode(&k, 1);
        CHECK(store_branch_create(e.os, "empty", &k, "root", 4) == 0);
        CHECK(base_refused(&e, "empty", lsn_target(lsn[0]), 0, -ENOENT, "no PostgreSQL WAL"));
    }

    /* a fork at g[3]: before its branch point it is main's past, after it its own */
    branch_meta meta;
    char ferr[256];
    CHECK(branch_fork(e.os, "dev", "main", g[3], &meta, ferr, sizeof ferr) == 0);
    store *dev = open_branch(&e, "dev");
    pg_wal *dw = must_observe(dev);
    dirent(dev, PG_WAL_DIR, "000000010000000000000002", I_SEG2, S_IFREG);
    CHECK(wal_page(dev, dw, I_SEG2, 0) == 1);
    pg_wal_pos dp;
    CHECK(pg_wal_pos_get(dev, &dp) == 0 && dp.lsn == 2 * SEG16 + 8192);
    uint64_t dg = checkpoint(dev);
    uint64_t dev_point = dg - 1;  /* the newest dev generation at the branch point: its open's */
    {
        manifest m;
        pg_wal_pos p;
        CHECK(manifest_load(e.os, "dev", dev_point, &m) == 0);
        CHECK(pg_wal_pos_at(e.os, &m, &p) == 0 && p.lsn == lsn[3]);
        manifest_free(&m);
    }
    CHECK(dp.time_us > t[NGEN - 1]);
    char dev_began[PG_LSN_LEN], sub_began[PG_LSN_LEN];
    pg_wal_lsn_format(lsn[3], dev_began, sizeof dev_began);
    pg_wal_lsn_format(dp.lsn, sub_began, sizeof sub_began);
    for (int i = 0; i < 3; i++) {  /* before the branch point: not dev's past; the error names where it began */
        CHECK(base_refused(&e, "dev", lsn_target(lsn[i]), 0, -ENOENT, dev_began));
        CHECK(base_refused(&e, "dev", lsn_target(lsn[i + 1] - 1), 0, -ENOENT, dev_began));
        CHECK(base_refused(&e, "dev", time_target(t[i] + 1), 0, -ENOENT, dev_began));
    }
    /* at and after it: dev's own, never main's later g[4], g[5] */
    CHECK(base_is(&e, "dev", lsn_target(lsn[3]), 0, "dev", dev_point, lsn[3], t[3]));
    CHECK(base_is(&e, "dev", lsn_target(lsn[4]), 0, "dev", dev_point, lsn[3], t[3]));
    CHECK(base_is(&e, "dev", lsn_target(lsn[5]), 0, "dev", dev_point, lsn[3], t[3]));
    CHECK(base_is(&e, "dev", time_target(t[3] + 1), 0, "dev", dev_point, lsn[3], t[3]));
    CHECK(base_is(&e, "dev", time_target(t[5] + 1), 0, "dev", dev_point, lsn[3], t[3]));
    CHECK(base_is(&e, "dev", time_target(dp.time_us), 0, "dev", dev_point, lsn[3], t[3]));
    CHECK(base_is(&e, "dev", lsn_target(dp.lsn), 0, "dev", dg, dp.lsn, dp.time_us));
    CHECK(base_is(&e, "dev", time_target(dp.time_us + 1), 0, "dev", dg, dp.lsn, dp.time_us));
    CHECK(base_refused(&e, "dev", lsn_target(dp.lsn + 1), 0, -ERANGE, "0/2002000"));
    CHECK(base_refused(&e, "dev", lsn_target(lsn[0] - 1), 0, -ENOENT, dev_began));
    CHECK(base_refused(&e, "dev", time_target(t[0]), 0, -ENOENT, dev_began));
    /* main does not see dev's WAL */
    CHECK(base_refused(&e, "main", lsn_target(dp.lsn), 0, -ERANGE, "0/100C000"));

    /* a fork of the fork: its past begins at its own branch point */
    CHECK(branch_fork(e.os, "sub", "dev", 0, &meta, ferr, sizeof ferr) == 0);
    CHECK(meta.parent_gen == dg);
    CHECK(base_refused(&e, "sub", lsn_target(lsn[1]), 0, -ENOENT, sub_began));
    CHECK(base_refused(&e, "sub", time_target(t[2] + 1), 0, -ENOENT, sub_began));
    CHECK(base_refused(&e, "sub", lsn_target(lsn[4]), 0, -ENOENT, sub_began));
    CHECK(base_is(&e, "sub", lsn_target(dp.lsn), 0, "sub", 1, dp.lsn, dp.time_us));
    CHECK(base_refused(&e, "sub", lsn_target(lsn[0] - 1), 0, -ENOENT, sub_began));
    /* a branch made at a point of its parent's past begins there, not at its base state */
    CHECK(branch_fork_at(e.os, "at", "main", g[2], lsn[3] - 100, &meta, ferr, sizeof ferr) == 0);
    char at_began[PG_LSN_LEN];
    pg_wal_lsn_format(lsn[3] - 100, at_began, sizeof at_began);
    CHECK(base_refused(&e, "at", lsn_target(lsn[2]), 0, -ENOENT, at_began));
    CHECK(base_is(&e, "at", lsn_target(lsn[3] - 100), 0, "at", 1, lsn[2], t[2]));

    /* a fork from before any WAL (initdb ran in the fork): its own first WAL is the oldest point */
    CHECK(branch_fork(e.os, "fresh", "main", g_nowal, &meta, ferr, sizeof ferr) == 0);
    {
        store *fr = open_branch(&e, "fresh");
        pg_wal *fw = must_observe(fr);
        CHECK(wal_page(fr, fw, I_SEG1, 0) == 1);           /* its checkpoint record's page */
        CHECK(wal_page(fr, fw, I_SEG1, 40) == 1);          /* WAL up to 0/1052000 */
        pg_wal_pos fp;
        CHECK(pg_wal_pos_get(fr, &fp) == 0 && fp.lsn == SEG16 + 41 * 8192);
        uint64_t fg = checkpoint(fr);
        CHECK(base_is(&e, "fresh", lsn_target(fp.lsn), 0, "fresh", fg, fp.lsn, fp.time_us));
        CHECK(base_refused(&e, "fresh", lsn_target(lsn[2]), 0, -ENOENT, "fresh"));   /* main's WAL is not its past */
        CHECK(base_refused(&e, "fresh", time_target(fp.time_us), 0, -ENOENT, "fresh"));
        CHECK(base_refused(&e, "fresh", lsn_target(lsn[2]), 0, -ENOENT, "0/1052000"));   /* its own first WAL */
        pg_wal_close(fw);
        CHECK(store_close(fr) == 0);
    }

    /* retention: wait until the history so far is over a second old */
    usleep(1300 * 1000);
    CHECK(wal_page(st, w, I_SEG1, NGEN) == 1);
    pg_wal_pos p;
    CHECK(pg_wal_pos_get(st, &p) == 0);
    lsn[NGEN] = p.lsn;
    t[NGEN] = p.time_us;
    g[NGEN] = checkpoint(st);
    CHECK(lsn[NGEN] == lsn[NGEN - 1] + 8192);
    CHECK(base_refused(&e, "main", time_target(t[2] + 1), 1, -ENOENT, "retention"));
    CHECK(base_refused(&e, "main", time_target(t[NGEN - 1] + 1), 1, -ENOENT, "retention"));
    CHECK(base_refused(&e, "main", lsn_target(lsn[NGEN - 2]), 1, -ENOENT, "retention"));
    CHECK(base_refused(&e, "main", lsn_target(lsn[0]), 1, -ENOENT, "retention"));
    /* the target is recent, its base the window's (the newest state before it, which gc keeps): fine */
    CHECK(base_is(&e, "main", time_target(t[NGEN]), 1, "main", g[NGEN - 1], lsn[NGEN - 1], t[NGEN - 1]));
    CHECK(base_is(&e, "main", lsn_target(lsn[NGEN - 1]), 1, "main", g[NGEN - 1], lsn[NGEN - 1], t[NGEN - 1]));
    CHECK(base_is(&e, "main", lsn_target(lsn[NGEN] - 1), 1, "main", g[NGEN - 1], lsn[NGEN - 1], t[NGEN - 1]));
    /* recent target and base: fine */
    CHECK(base_is(&e, "main", lsn_target(lsn[NGEN]), 1, "main", g[NGEN], lsn[NGEN], t[NGEN]));
    CHECK(base_is(&e, "main", time_target(t[NGEN] + 1), 1, "main", g[NGEN], lsn[NGEN], t[NGEN]));
    CHECK(base_is(&e, "main", time_target(t[2] + 1), 3600, "main", g[2], lsn[2], t[2]));
    CHECK(base_refused(&e, "sub", lsn_target(lsn[1]), 1, -ENOENT, "retention"));
    /* a window longer than the epoch is old (parse_duration in tools/lakefs.c
     * accepts up to INT64_MAX seconds, e.g. -o retention=200000000d): no limit */
    CHECK(base_is(&e, "main", time_target(t[2] + 1), INT64_MAX / 2, "main", g[2], lsn[2], t[2]));
    CHECK(base_is(&e, "main", time_target(t[2] + 1), 100ll * 365 * 86400, "main", g[2], lsn[2], t[2]));

    pg_wal_close(dw);
    CHECK(store_close(dev) == 0);
    pg_wal_close(w);
    CHECK(store_close(st) == 0);
    env_free(&e);
}

/* Write global/pg_control naming checkpoint CKPT whose redo begins at REDO,
 * and, if HELD, the WAL page of that checkpoint record (a base must hold
 * it). */
static void control(store *st, uint64_t ckpt, uint64_t redo, int held)
{
    uint8_t rec[8192];
    memset(rec, 0xC4, sizeof rec);
    uint8_t page[8192] = { 0 };
    for (int i = 0; i < 8; i++) {
        page[32 + i] = (uint8_t)(ckpt >> (8 * i));
        page[40 + i] = (uint8_t)(redo >> (8 * i));
    }
    page[48] = 1;                 /* checkPointCopy.ThisTimeLineID */
    store_batch b;
    skey k;
    store_batch_init(&b);
    key_page(&k, I_CONTROL, 0);
    store_batch_put(&b, &k, page, sizeof page);
    key_walpage(&k, 1, ckpt / 8192);
    if (held) store_batch_put(&b, &k, rec, sizeof rec);
    CHECK(store_commit(st, &b) == 0);
    store_batch_free(&b);
}

#define NHOR 5

/* pg_wal/ with segment 1's file, and global/pg_control (empty yet). */
static void skeleton(store *st)
{
    dirent(st, 1, "pg_wal", PG_WAL_DIR, S_IFDIR);
    dirent(st, PG_WAL_DIR, "000000010000000000000001", I_SEG1, S_IFREG);
    dirent(st, 1, "global", I_GLOBAL, S_IFDIR);
    dirent(st, I_GLOBAL, "pg_control", I_CONTROL, S_IFREG);
}

/* The WAL horizon of a window, and the archive trimmed to it: generations
 * whose checkpoint's redo lies in a trimmed segment are no base. */
static void test_horizon(void)
{
    env e;
    env_init(&e);
    store *st = open_branch(&e, "main");
    pg_wal *w = must_observe(st);
    skeleton(st);
    uint64_t redo_out;
    CHECK(pg_target_horizon(e.os, "main", 10, now_us(), &redo_out) == -ENOENT);   /* no pg_control yet */
    control(st, SEG16 + 40, SEG16 + 40, 1);
    checkpoint(st);
    /* generations 0-2 recover from redo points in segment 1, 3-4 in segment 2 */
    uint64_t g[NHOR], lsn[NHOR], redo[NHOR];
    int64_t t[NHOR];
    for (int i = 0; i < NHOR; i++) {
        redo[i] = (i < 3 ? SEG16 : 2 * SEG16) + (uint64_t)i * 8192 + 40;
        control(st, redo[i] + 100, redo[i], 1);
        CHECK(wal_page(st, w, I_SEG1, (uint64_t)i) == 1);
        pg_wal_pos p;
        CHECK(pg_wal_pos_get(st, &p) == 0);
        lsn[i] = p.lsn;
        t[i] = p.time_us;
        g[i] = checkpoint(st);
        usleep(3000);
    }
    /* a window beginning at generation K's time: its base is K - 1, whose redo it is */
    for (int k = 1; k < NHOR; k++) {
        CHECK(pg_target_horizon(e.os, "main", 10, t[k] + 10 * S, &redo_out) == 0 && redo_out == redo[k - 1]);
        CHECK(pg_target_horizon(e.os, "main", 10, t[k] + 1 + 10 * S, &redo_out) == 0 && redo_out == redo[k]);
    }
    /* older than every WAL: the state before it (pg_control, no WAL yet) */
    CHECK(pg_target_horizon(e.os, "main", 10, t[0] - 5 * S, &redo_out) == 0 && redo_out == SEG16 + 40);
    CHECK(pg_target_horizon(e.os, "main", 10, t[NHOR - 1] + 100 * S, &redo_out) == 0 &&
          redo_out == redo[NHOR - 1]);    /* nothing written within it: the newest */

    /* trimmed to generation 3's redo: segment 1 goes, 0-2 are no base any more */
    pg_wal_pos oldest;
    CHECK(pg_target_oldest(e.os, "main", &oldest) == 0 && oldest.lsn == lsn[0]);
    pg_base b;
    CHECK(base_of(&e, "main", lsn_target(lsn[1]), 0, &b) == 0 && b.gen >= g[1] && b.lsn == lsn[1]);
    uint64_t n;
    CHECK(pg_archive_trim(st, redo[3], &n) == 0 && n == 0);   /* segment 1's file is still there */
    dirent(st, PG_WAL_DIR, "000000010000000000000001", 0, 0);   /* PostgreSQL removes it */
    CHECK(pg_archive_trim(st, redo[3], &n) == 0 && n == 1);
    CHECK(base_of(&e, "main", lsn_target(lsn[1]), 0, &b) == 0 && b.lsn == lsn[1]);   /* not committed yet */
    checkpoint(st);
    char lsn3[PG_LSN_LEN];
    pg_wal_lsn_format(lsn[3], lsn3, sizeof lsn3);
    CHECK(base_refused(&e, "main", lsn_target(lsn[1]), 0, -ENOENT, lsn3));
    CHECK(base_refused(&e, "main", lsn_target(lsn[2] + 1), 0, -ENOENT, lsn3));
    CHECK(base_of(&e, "main", lsn_target(lsn[3]), 0, &b) == 0 && b.gen >= g[3] && b.lsn == lsn[3]);
    CHECK(base_of(&e, "main", time_target(t[4] + 1), 0, &b) == 0 && b.lsn == lsn[4]);
    CHECK(pg_target_oldest(e.os, "main", &oldest) == 0 && oldest.lsn == lsn[3]);

    pg_wal_close(w);
    CHECK(store_close(st) == 0);
    env_free(&e);
}

/* A state whose pg_control names a checkpoint record its own WAL lacks
 * (cut while the kernel still held that WAL: initdb writes without fsync,
 * through the writeback cache) is no base: the state before it is, until
 * a state holds the record. */
static void test_unheld_checkpoint(void)
{
    env e;
    env_init(&e);
    store *st = open_branch(&e, "main");
    pg_wal *w = must_observe(st);
    skeleton(st);
    CHECK(wal_page(st, w, I_SEG1, 0) == 1);
    control(st, SEG16 + 40, SEG16 + 40, 1);
    pg_wal_pos p1, p2, p3;
    CHECK(pg_wal_pos_get(st, &p1) == 0);
    checkpoint(st);
    uint64_t ckpt = SEG16 + 5 * 8192 + 40;    /* on page 5, not written yet */
    CHECK(wal_page(st, w, I_SEG1, 1) == 1);
    control(st, ckpt, ckpt, 0);
    CHECK(pg_wal_pos_get(st, &p2) == 0 && p2.lsn > p1.lsn);
    checkpoint(st);
    pg_base b;
    int rc = base_of(&e, "main", lsn_target(p2.lsn), 0, &b);
    CHECK(rc == 0 && b.lsn == p1.lsn && b.checkpoint == SEG16 + 40);
    if (rc || b.lsn != p1.lsn) fprintf(stderr, "  rc %d (%s), base lsn %" PRIX64 "\n", rc, err, b.lsn);
    CHECK(wal_page(st, w, I_SEG1, 5) == 1);  /* the record arrives */
    CHECK(pg_wal_pos_get(st, &p3) == 0);
    checkpoint(st);
    CHECK(base_of(&e, "main", lsn_target(p3.lsn), 0, &b) == 0 && b.lsn == p3.lsn && b.checkpoint == ckpt);
    CHECK(base_of(&e, "main", lsn_target(p2.lsn), 0, &b) == 0 && b.lsn == p1.lsn);   /* still not that state */
    pg_wal_close(w);
    CHECK(store_close(st) == 0);
    env_free(&e);
}

int main(void)
{
    test_parse();
    test_settings();
    test_base();
    test_horizon();
    test_unheld_checkpoint();
    return harness_done();
}

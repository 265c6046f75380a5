/*
 * cli.c -- what the lakefs subcommands share (cli.h): one-line errors,
 * finding and opening the repository a command names (--repo, then
 * $LAKEFS_REPO, then the lakefs mount holding the current directory, read
 * from /proc/self/mountinfo), the flags of the repository commands, and
 * resolving a point of a branch's past, which `mount` (time-travel views),
 * `branch create --at` and `lsn` all do the same way: from the newest
 * committed generation when it already holds every WAL byte the point
 * needs, else after asking a daemon serving the branch for a checkpoint,
 * so the past includes its newest writes.
 */
#include "../fs/pg/pg_target.h"
#include "../fs/pg/pg_wal.h"
#include "../fs/pg/pg_walscan.h"
#include "../store/branch.h"
#include "../repo/gc.h"
#include "../store/manifest.h"
#include "../objstore/objstore.h"
#include "../store/store.h"
#include "../util/mountinfo.h"
#include "cli.h"
#include "control.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Print "lakefs: MSG" on stderr and return STATUS. */
static int vfail(int status, const char *fmt, va_list ap)
{
    fputs("lakefs: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    return status;
}

/* Print "lakefs: MSG" and return exit status 1. */
int cli_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int status = vfail(1, fmt, ap);
    va_end(ap);
    return status;
}

/* Print "lakefs: MSG" for a usage error and return exit status 2. */
int cli_usage_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int status = vfail(2, fmt, ap);
    va_end(ap);
    return status;
}

/* Create DIR and its parents with MODE. */
int cli_mkdirs(const char *dir, mode_t mode)
{
    char path[4096];
    if (snprintf(path, sizeof path, "%s", dir) >= (int)sizeof path) return -ENAMETOOLONG;
    for (char *p = path + 1;; p++) {
        if (*p == '/' || !*p) {
            char ch = *p;
            *p = 0;
            if (mkdir(path, mode) < 0 && errno != EEXIST) return -errno;
            *p = ch;
            if (!ch) return 0;
        }
    }
}

/* Open URL as a repository that must exist; prints the error. */
int cli_open_repo(const char *url, objstore **os)
{
    return cli_open_repo_settings(url, os, NULL);
}

/* A repository's retention setting, read beside cli_open_repo_settings's check. */
typedef struct retention_read {
    objstore *os;
    int64_t seconds;
    int rc;
} retention_read;

static void *retention_reader(void *arg)
{
    retention_read *r = arg;
    r->rc = gc_retention_get(r->os, &r->seconds);
    return NULL;
}

/* cli_open_repo, and with RETENTION the repository's retention setting read
 * at the same time (one round trip to the object store, not two); prints
 * the error. */
int cli_open_repo_settings(const char *url, objstore **os, int64_t *retention)
{
    char err[512];
    int rc = os_open(url, os, err, sizeof err);
    if (rc) return cli_fail("%s", err);
    retention_read r = { .os = *os };
    pthread_t tid;
    int started = retention && pthread_create(&tid, NULL, retention_reader, &r) == 0;
    int bad = store_repo_check(*os);
    if (started) pthread_join(tid, NULL);
    else if (retention) retention_reader(&r);
    if (bad) {
        os_close(*os);
        return cli_fail("%s is not a lakefs repository (create one with: lakefs init %s)", url, url);
    }
    if (retention && r.rc) {
        os_close(*os);
        return cli_fail("cannot read the retention setting of %s: %s", url, strerror(-r.rc));
    }
    if (retention) *retention = r.seconds;
    return 0;
}

/* Parse a duration like 7d, 12h, 30min, 45s or 90 (seconds) into *OUT. */
int cli_parse_duration(const char *s, int64_t *out)
{
    static const struct { const char *unit; int64_t s; } units[] = {
        { "", 1 }, { "s", 1 }, { "min", 60 }, { "h", 3600 }, { "d", 86400 }, { "w", 604800 },
    };
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || v <= 0) return -1;
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (!strcmp(end, units[i].unit)) {
            if (v > INT64_MAX / units[i].s) return -1;
            *out = v * units[i].s;
            return 0;
        }
    return -1;
}

/* cli_parse_duration, also accepting "0". */
int cli_parse_duration_or_zero(const char *s, int64_t *out)
{
    if (!strcmp(s, "0")) { *out = 0; return 0; }
    return cli_parse_duration(s, out);
}

/* The lease of branch NAME into *L if a daemon on this machine holds it:
 * 0; -ENOENT if no one does; else -errno with the reason in ERR (-EBUSY:
 * a daemon on another machine). */
int cli_local_lease(objstore *os, const char *name, lease_info *l, char *err, size_t errlen)
{
    int rc = lease_read(os, name, l);
    if (rc == -ENOENT) return rc;
    if (rc) {
        snprintf(err, errlen, "cannot read the lease of branch '%s': %s", name, strerror(-rc));
        return rc;
    }
    if (!l->local) {
        snprintf(err, errlen, "branch '%s' is mounted read-write by a lakefs daemon on another machine (%s, pid %ld): "
                 "run this command there, or unmount the branch", name, l->holder, l->pid);
        return -EBUSY;
    }
    return 0;
}

/* A generation of branch NAME holding every write made so far into *GEN:
 * 0 (the newest) if no daemon mounts it, else the checkpoint its daemon
 * makes now (*SEQ: its seq), through its control socket.  0, or -errno
 * with a one-line reason in ERR. */
int cli_branch_checkpoint(objstore *os, const char *name, uint64_t *gen, uint64_t *seq, char *err, size_t errlen)
{
    char cerr[600];
    *gen = *seq = 0;
    for (int attempt = 0; attempt < 50; attempt++) {
        lease_info l;
        int rc = cli_local_lease(os, name, &l, err, errlen);
        if (rc) return rc == -ENOENT ? 0 : rc;
        if (!l.alive) {
            snprintf(err, errlen, "branch '%s' was mounted by a lakefs daemon that died (pid %ld); its newest writes are in "
                     "that daemon's journal: mount the branch again (which replays it), then retry", name, l.pid);
            return -EBUSY;
        }
        if (!l.control[0]) {
            snprintf(err, errlen, "the lakefs daemon mounting branch '%s' (pid %ld) has no control socket (an older "
                     "lakefs): unmount the branch or remount it with this version, then retry", name, l.pid);
            return -EBUSY;
        }
        rc = control_checkpoint(l.control, name, seq, gen, cerr, sizeof cerr);
        if (!rc) return 0;
        if (rc != -ENOENT && rc != -ECONNREFUSED) {
            snprintf(err, errlen, "branch '%s': %s", name, cerr);
            return rc;
        }
        usleep(100000);           /* the daemon is starting or stopping: look again */
    }
    snprintf(err, errlen, "branch '%s': the daemon named by its lease does not answer on its control socket; "
             "is it still starting? retry, or unmount the branch", name);
    return -ETIMEDOUT;
}

/* 1 if committed generation GEN of BRANCH (WAL end POS) holds every WAL
 * byte the point T needs, whatever the branch writes later: for an LSN,
 * every page before the one holding it was written whole (the last page
 * written, partly filled, may still grow); for a moment, its cut (the
 * first commit stamped after it) is a whole record in that WAL.  Opens
 * the archive and resolves as cli_past_resolve does; on 1 they are the
 * answer, else nothing is kept. */
static int past_in_generation(objstore *os, const char *branch, uint64_t gen, const pg_wal_pos *pos,
                              const pg_target *t, int64_t retention_s, pg_base *base, store **archive, uint64_t *cut)
{
    char err[700];
    if (t->is_time ? t->time_us >= pos->time_us : t->lsn / PG_WAL_PAGE + 1 >= pos->lsn / PG_WAL_PAGE) return 0;
    int held = !pg_target_base(os, branch, t, retention_s, base, err, sizeof err) &&
               !store_open_snapshot(os, branch, gen, archive, err, sizeof err) &&
               !pg_target_cut(*archive, t, base, cut, err, sizeof err) && *cut != UINT64_MAX;
    if (!held && *archive) {
        store_close(*archive);
        *archive = NULL;
    }
    return held;
}

/* The point TEXT of BRANCH's past (pg_target.h): parsed into *T, the base
 * state *BASE, a generation *GEN of the branch that holds the point opened
 * as the archive *ARCHIVE (to close), and where it is cut, *CUT.  The
 * newest committed generation serves if it already holds every WAL byte
 * the point needs (past_in_generation); else a daemon serving the branch
 * checkpoints first, so the point sees its newest writes -- a checkpoint
 * flushes, and a flush may have to wait for a merge (compact.h).  0, or
 * -errno with a one-line reason in ERR (-EINVAL: TEXT is no point;
 * -ERANGE: a point in the future). */
int cli_past_resolve(objstore *os, const char *branch, const char *text, int64_t retention_s, pg_target *t,
                        pg_base *base, uint64_t *gen, store **archive, uint64_t *cut, char *err, size_t errlen)
{
    uint64_t seq;
    *archive = NULL;
    if (pg_target_parse(text, t)) {
        snprintf(err, errlen, "'%s' is not a point in time: give an LSN (0/16B3748; 0-16B3748 in a view's name) or "
                 "a moment in ISO 8601 with a zone (2026-11-23T10:32:05Z)", text);
        return -EINVAL;
    }
    manifest m;
    pg_wal_pos pos;
    if (!manifest_load_latest(os, branch, &m)) {
        int held = !pg_wal_pos_at(os, &m, &pos) &&
                   past_in_generation(os, branch, m.gen, &pos, t, retention_s, base, archive, cut);
        *gen = m.gen;
        manifest_free(&m);
        if (held) return 0;
    }
    int rc = cli_branch_checkpoint(os, branch, gen, &seq, err, errlen);
    if (!rc && !*gen) {           /* not mounted: its newest generation holds everything */
        if (!(rc = manifest_load_latest(os, branch, &m))) *gen = m.gen;
        else snprintf(err, errlen, rc == -ENOENT ? "branch '%s' does not exist; see lakefs branch list"
                      : "branch '%s': cannot load its manifest", branch);
        manifest_free(&m);
    }
    if (!rc) rc = pg_target_base(os, branch, t, retention_s, base, err, errlen);
    if (!rc) rc = store_open_snapshot(os, branch, *gen, archive, err, errlen);
    if (!rc) rc = pg_target_cut(*archive, t, base, cut, err, errlen);
    if (rc && *archive) {
        store_close(*archive);
        *archive = NULL;
    }
    return rc;
}

/* ---- branch commands ---- */

#define NO_REPO_MSG "no repository: give --repo URL, set LAKEFS_REPO, or run inside a lakefs mount"

/* The repository URL of the lakefs mount holding the current directory
 * into URL; prints the error (NO_REPO_MSG when there is none). */
static int repo_from_mount(char *url, size_t len)
{
    char cwd[4096], line[8192], best_src[4096] = "", best_mp[4096] = "";
    size_t best = 0;
    int best_lakefs = 0;
    if (!getcwd(cwd, sizeof cwd)) return cli_fail(NO_REPO_MSG);
    FILE *f = fopen("/proc/self/mountinfo", "r");
    if (!f)
        return cli_fail("cannot read /proc/self/mountinfo to find the lakefs mount holding the current directory (%s): "
                    "give --repo URL or set LAKEFS_REPO", strerror(errno));
    while (fgets(line, sizeof line, f)) {
        /* ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTS */
        char *save, *fld[5] = { 0 }, *sep = strstr(line, " - ");
        if (!sep) continue;
        *sep = 0;
        char *tail = sep + 3, *fstype = strtok_r(tail, " \n", &save), *src = strtok_r(NULL, " \n", &save);
        char *p = strtok_r(line, " ", &save);
        for (int i = 0; i < 5 && p; i++, p = strtok_r(NULL, " ", &save)) fld[i] = p;
        if (!fld[4] || !fstype || !src) continue;
        mountinfo_unescape(fld[4]);
        size_t ml = strlen(fld[4]);
        int holds = !strcmp(fld[4], "/") || (!strncmp(cwd, fld[4], ml) && (cwd[ml] == '/' || !cwd[ml]));
        if (!holds || ml < best) continue;    /* equal length: a later mount covers an earlier one */
        best = ml;
        best_lakefs = !strcmp(fstype, "fuse.lakefs");
        mountinfo_unescape(src);
        snprintf(best_src, sizeof best_src, "%s", src);
        snprintf(best_mp, sizeof best_mp, "%s", fld[4]);
    }
    fclose(f);
    if (!best_lakefs) return cli_fail(NO_REPO_MSG);
    if (!strstr(best_src, "://"))
        return cli_fail("the lakefs mount at %s names no repository URL (mounted with -o fsname=%s): give --repo URL or set LAKEFS_REPO",
                    best_mp, best_src);
    snprintf(url, len, "%s", best_src);
    return 0;
}

/* Open the repository of A (see repo_from_mount); prints the error. */
int cli_args_repo(const cli_args *a, objstore **os)
{
    char url[4096];
    const char *env = getenv("LAKEFS_REPO");
    if (a->repo) snprintf(url, sizeof url, "%s", a->repo);
    else if (env && *env) snprintf(url, sizeof url, "%s", env);
    else if (repo_from_mount(url, sizeof url)) return 1;
    return cli_open_repo(url, os);
}

/* Check that NAME (the WHAT of the command) is a valid branch name. */
int cli_check_name(const char *what, const char *name)
{
    if (branch_name_valid(name)) return 0;
    return cli_fail("invalid %s name '%s': use 1-63 characters of A-Z a-z 0-9 . _ - not starting with . or - "
                "(no @, no /); nothing changed", what, name);
}

/* cli_past_resolve, printing the error. */
int cli_resolve_target(objstore *os, const char *branch, const char *text, pg_target *t, pg_base *base,
                          store **archive, uint64_t *cut)
{
    char err[700];
    uint64_t gen;
    int64_t retention;
    int rc = gc_retention_get(os, &retention);
    if (rc) return cli_fail("cannot read the retention setting of %s: %s", os_url(os), strerror(-rc));
    return cli_past_resolve(os, branch, text, retention, t, base, &gen, archive, cut, err, sizeof err)
           ? cli_fail("%s", err) : 0;
}

/* The LSN where the state at target T ends, cut CUT of the archive in
 * ARCHIVE with base B: the cut, or (no cut) the end of the WAL's last
 * record.  Prints the error. */
int cli_target_end(const char *branch, store *archive, const pg_target *t, const pg_base *b, uint64_t cut,
                      uint64_t *lsn)
{
    pg_wal_pos pos;
    pg_walscan_result r;
    pg_archive ar = { archive, UINT64_MAX };
    *lsn = cut;
    if (cut != UINT64_MAX) return 0;
    int rc = pg_wal_pos_get(archive, &pos);   /* no later commit: up to the WAL's last record */
    if (!rc) rc = pg_walscan_time(&ar, pos.tli, b->checkpoint, t->is_time ? t->time_us : INT64_MAX, &r);
    if (rc) return cli_fail("branch '%s': cannot read its WAL archive: %s", branch, strerror(-rc));
    *lsn = r.end;
    return 0;
}

/* Format T (seconds since the epoch) as UTC into BUF, "-" for none. */
void cli_fmt_utc(int64_t t, char *buf, size_t len)
{
    struct tm tm;
    time_t tt = (time_t)t;
    if (t <= 0 || !gmtime_r(&tt, &tm) || !strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm)) snprintf(buf, len, "-");
}

/* Parse the arguments of COMMAND (argv[0]): flags into A, the first
 * positional into *SUB (NULL: none), the rest into a->pos.  -1 to go on,
 * else the exit status (--help printed USAGE, or a usage error). */
int cli_parse_args(const char *command, int argc, char **argv, const char *usage, cli_args *a, const char **sub)
{
    static const char *flags[] = { "--repo", "--from", "--at", "--at-xid", "--at-restore-point", "--retention" };
    const char **vals[] = { &a->repo, &a->from, &a->at, &a->at_xid, &a->at_restore_point, &a->retention };
    *sub = NULL;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        int known = 0;
        if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) { fputs(usage, stdout); return 0; }
        if (!strcmp(arg, "--force")) { a->force = 1; continue; }
        if (!strcmp(arg, "--dry-run")) { a->dry_run = 1; continue; }
        if (!strcmp(arg, "--repair")) { a->repair = 1; continue; }
        for (int f = 0; f < 6 && !known; f++) {
            size_t fl = strlen(flags[f]);
            if (strncmp(arg, flags[f], fl) || (arg[fl] && arg[fl] != '=')) continue;
            known = 1;
            if (arg[fl] == '=') *vals[f] = arg + fl + 1;
            else if (i + 1 < argc) *vals[f] = argv[++i];
            else return cli_usage_fail("%s: %s needs a value (see lakefs %s --help)", command, flags[f], command);
            if (!**vals[f]) return cli_usage_fail("%s: %s needs a non-empty value", command, flags[f]);
        }
        if (known) continue;
        if (arg[0] == '-' && arg[1])
            return cli_usage_fail("%s: unknown flag '%s' (a branch name cannot start with '-'; see lakefs %s --help)",
                              command, arg, command);
        if (!*sub) *sub = arg;
        else if (a->npos < 3) a->pos[a->npos++] = arg;
        else return cli_usage_fail("%s %s: too many arguments (see lakefs %s --help)", command, *sub, command);
    }
    return -1;
}

/*
 * cmd_branch.c -- `lakefs branch create|list|show|delete|rename`.  Branch
 * creation writes metadata only (store/branch.h), so it takes constant time
 * whatever the size; when a daemon on this machine serves the parent, it is
 * asked for a checkpoint first so that the branch starts at the parent's
 * newest write.  --at LSN|TIME, --at-xid and --at-restore-point make the
 * branch at a point of the parent's past: the branch gets the base state
 * before the point and the WAL up to it, and PostgreSQL's first start on
 * it recovers to exactly that point.
 */
#include "../fs/fs.h"
#include "../fs/pg/pg_archive.h"
#include "../fs/pg/pg_target.h"
#include "../fs/pg/pg_wal.h"
#include "../fs/pg/pg_walscan.h"
#include "../store/branch.h"
#include "../store/manifest.h"
#include "../store/lease.h"
#include "../objstore/objstore.h"
#include "../store/store.h"
#include "cli.h"
#include "control.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *usage_branch =
    "usage: lakefs branch create NAME --from PARENT [--at LSN|TIME | --at-xid XID |\n"
    "                            --at-restore-point NAME] [--repo URL]\n"
    "       lakefs branch list [--repo URL]\n"
    "       lakefs branch show NAME [--repo URL]\n"
    "       lakefs branch delete NAME [--repo URL]\n"
    "       lakefs branch rename OLD NEW [--repo URL]\n"
    "\n"
    "create   make branch NAME from PARENT's current state, writing metadata only\n"
    "         (constant time).  If a daemon on this machine mounts PARENT read-write,\n"
    "         it is asked for a checkpoint through its control socket: the branch\n"
    "         starts at PARENT's current seq, a crash-consistent state.\n"
    "         --at LSN (0/16B3748) or TIME (ISO 8601 with a zone, 2026-11-23T10:32:05Z):\n"
    "         the branch starts at that point of PARENT's past, exact to the commit:\n"
    "         PostgreSQL's first start on it recovers from an earlier state through\n"
    "         the WAL archive to that point, then promotes (a new timeline).\n"
    "         --at-xid XID: just after transaction XID committed or aborted;\n"
    "         --at-restore-point NAME: just after pg_create_restore_point(NAME).\n"
    "list     name, parent, branch point (as a seq of the parent and as the\n"
    "         PostgreSQL WAL position, LSN, written on the parent by then; - for a\n"
    "         root or when no WAL was written), creation time (UTC) and bytes\n"
    "         unique to each branch (in layers no other branch's newest manifest\n"
    "         uses; what deleting it frees)\n"
    "show     one branch in detail (point_lsn: the branch point's LSN)\n"
    "delete   delete a branch and the layers only it uses; refused while it has\n"
    "         child branches or is mounted read-write\n"
    "rename   rename a branch that is not mounted and has no child branches\n"
    "\n"
    "Names: 1-63 characters of A-Z a-z 0-9 . _ -, not starting with . or -.\n"
    "The repository is --repo URL, else $LAKEFS_REPO, else the lakefs mount\n"
    "holding the current directory.\n";

/* Milliseconds on the monotonic clock. */
static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* The manifest generation of PARENT to fork from into *GEN: 0 (the newest)
 * if no daemon mounts it, else the checkpoint its daemon makes now.
 * Prints the error. */
static int parent_checkpoint(objstore *os, const char *parent, uint64_t *gen, uint64_t *seq)
{
    char err[700];
    return cli_branch_checkpoint(os, parent, gen, seq, err, sizeof err) ? cli_fail("%s", err) : 0;
}

/* The WAL position (LSN) at branch B's branch point into BUF (PG_LSN_LEN):
 * the "wal_pos" the WAL observer recorded, read through the parent's
 * manifest generation B was forked from; "-" for a root branch or when no
 * WAL was written by then.  Prints the error if it cannot be read. */
static int point_lsn(objstore *os, const branch_info *b, char *buf)
{
    manifest m;
    pg_wal_pos pos;
    snprintf(buf, PG_LSN_LEN, "-");
    if (!b->meta.parent[0]) return 0;
    if (b->meta.at_lsn) {         /* made at a point of the parent's past */
        pg_wal_lsn_format(b->meta.at_lsn, buf, PG_LSN_LEN);
        return 0;
    }
    int rc = manifest_load(os, b->meta.parent, b->meta.parent_gen, &m);
    if (rc)
        return cli_fail("branch '%s': cannot load generation %" PRIu64 " of its parent '%s' (its branch point): %s",
                    b->name, b->meta.parent_gen, b->meta.parent, strerror(-rc));
    rc = pg_wal_pos_at(os, &m, &pos);
    manifest_free(&m);
    if (rc == -ENOENT) return 0;
    if (rc)
        return cli_fail("branch '%s': cannot read the WAL position at its branch point (generation %" PRIu64 " of '%s'): %s",
                    b->name, b->meta.parent_gen, b->meta.parent, strerror(-rc));
    pg_wal_lsn_format(pos.lsn, buf, PG_LSN_LEN);
    return 0;
}

typedef struct record_target {
    const char *name;             /* restore point name, or NULL */
    uint32_t xid;                 /* else the transaction */
    uint64_t lsn;                 /* where recovery to it stops: after its record (0: not found) */
} record_target;

/* pg_walscan callback: the record that ends the transaction or names the
 * restore point. */
static int record_found(void *arg, const pg_walrec *r)
{
    record_target *t = arg;
    if (t->name ? !pg_walrec_is_restore_point(r, t->name) : !pg_walrec_is_xact_end(r, t->xid)) return 0;
    t->lsn = r->end;
    return 1;
}

/* The LSN just after the commit or abort of transaction XID_TEXT, or the
 * restore point NAME, in BRANCH's WAL within reach (up to its newest
 * write, a daemon serving it asked to checkpoint), as text into BUF
 * (PG_LSN_LEN): recovery_target_xid and recovery_target_name made an LSN.
 * Prints the error. */
static int record_lsn(objstore *os, const char *branch, const char *xid_text, const char *name, char *buf)
{
    record_target rt = { .name = name };
    if (xid_text) {
        char *end;
        errno = 0;
        unsigned long v = strtoul(xid_text, &end, 10);
        if (errno || end == xid_text || *end || v < 3 || v > UINT32_MAX)
            return cli_fail("--at-xid: '%s' is not a transaction id (a number from txid_current() or pg_current_xact_id(), "
                        "below 2^32)", xid_text);
        rt.xid = (uint32_t)v;
    } else if (strlen(name) >= 64) {
        return cli_fail("--at-restore-point: '%s' is longer than PostgreSQL's 63-byte restore point names", name);
    }
    /* the record may be in the newest WAL: a daemon serving the branch
     * checkpoints first, so that its newest generation holds every write */
    char err[700];
    uint64_t gen, seq;
    if (cli_branch_checkpoint(os, branch, &gen, &seq, err, sizeof err)) return cli_fail("%s", err);
    pg_wal_pos oldest;
    int rc = pg_target_oldest(os, branch, &oldest);
    if (rc) return cli_fail(rc == -ENOENT ? "branch '%s' has no PostgreSQL WAL (or does not exist; see lakefs branch list)"
                        : "branch '%s': cannot read its history: %s", branch, strerror(-rc));
    char text[PG_LSN_LEN];
    pg_target t;
    pg_base base;
    store *archive;
    uint64_t cut, end;
    pg_wal_lsn_format(oldest.lsn, text, sizeof text);
    if (cli_resolve_target(os, branch, text, &t, &base, &archive, &cut)) return 1;
    pg_wal_pos pos;
    pg_archive ar = { archive, UINT64_MAX };
    rc = pg_wal_pos_get(archive, &pos);   /* the whole WAL within reach, from its oldest checkpoint */
    if (!rc) rc = pg_walscan(&ar, pos.tli, base.checkpoint, record_found, &rt, &end);
    store_close(archive);
    if (rc < 0) return cli_fail("branch '%s': cannot read its WAL archive: %s", branch, strerror(-rc));
    if (!rt.lsn) {
        if (name) return cli_fail("branch '%s' has no restore point '%s' in its WAL within reach (from LSN %s on)", branch, name, text);
        return cli_fail("branch '%s' has no commit or abort of transaction %" PRIu32 " in its WAL within reach (from LSN %s on)",
                    branch, rt.xid, text);
    }
    pg_wal_lsn_format(rt.lsn, buf, PG_LSN_LEN);
    return 0;
}

/* The second half of `branch create NAME --at`: into the new branch NAME
 * (forked from the base), the WAL from its base on, cut at CUT, and the
 * recovery settings; one mount of it, from a scratch state directory. */
static int branch_fill_past(objstore *os, const char *name, store *archive, uint64_t from, uint64_t cut)
{
    char dir[] = "/tmp/lakefs-branch-XXXXXX", err[600];
    if (!mkdtemp(dir)) return cli_fail("cannot create a scratch state directory in /tmp: %s", strerror(errno));
    store_config sc = { .os = os, .branch = name, .state_dir = dir };
    store *st;
    int rc = store_open(&sc, &st, err, sizeof err);
    if (rc) {
        cli_fail("%s", err);
    } else {
        pg_archive a = { archive, cut };
        if ((rc = pg_archive_copy(&a, from, st)))
            cli_fail("branch '%s': cannot copy the WAL it recovers through: %s", name, strerror(-rc));
        else if ((rc = fs_add_recovery(st, 1)))
            cli_fail("branch '%s': cannot write its recovery settings: %s", name, strerror(-rc));
        int crc = store_close(st);
        if (crc && !rc) rc = cli_fail("branch '%s': cannot flush its first state: %s", name, strerror(-crc));
    }
    char cmd[64];                 /* the scratch journal (flushed or abandoned with the branch) */
    snprintf(cmd, sizeof cmd, "%s/lock", dir);
    unlink(cmd);
    DIR *d = opendir(dir);
    struct dirent *de;
    while (d && (de = readdir(d))) {
        char path[4400];
        if (de->d_name[0] == '.') continue;
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        unlink(path);
    }
    if (d) closedir(d);
    rmdir(dir);
    return rc;
}

/* `branch create NAME --from PARENT --at TARGET` (or --at-xid,
 * --at-restore-point): a branch whose first start recovers to TARGET
 * (pg_target.h) and promotes. */
static int branch_create_at(const cli_args *a, objstore *os)
{
    const char *name = a->pos[0], *at = a->at;
    char lsn_text[PG_LSN_LEN];
    if ((!!a->at + !!a->at_xid + !!a->at_restore_point) > 1)
        return cli_usage_fail("branch create: give one of --at, --at-xid and --at-restore-point");
    if (!at) {
        if (record_lsn(os, a->from, a->at_xid, a->at_restore_point, lsn_text)) return 1;
        at = lsn_text;
    }
    pg_target t;
    double t0 = now_ms();
    uint64_t cut;
    pg_base base;
    branch_meta meta;
    char err[700], text[PG_TARGET_TEXT];
    store *archive;
    uint64_t point;
    int rc = cli_resolve_target(os, a->from, at, &t, &base, &archive, &cut);
    if (!rc) rc = cli_target_end(a->from, archive, &t, &base, cut, &point);
    if (!rc && branch_fork_at(os, name, base.branch, base.gen, point, &meta, err, sizeof err)) rc = cli_fail("%s", err);
    if (!rc && (rc = branch_fill_past(os, name, archive, base.lsn ? base.lsn - 1 : 0, cut))) {
        if (branch_delete(os, name, NULL, NULL, err, sizeof err))
            fprintf(stderr, "lakefs: the half-made branch '%s' could not be deleted: %s; run: lakefs branch delete %s\n",
                    name, err, name);
    }
    if (archive) store_close(archive);
    if (rc) return rc;
    char lsn[32];
    pg_target_format(&t, text, sizeof text);
    if (cut == UINT64_MAX) snprintf(lsn, sizeof lsn, "the end of its WAL");
    else pg_wal_lsn_format(cut, lsn, sizeof lsn);
    printf("Created branch %s from %s at %s (WAL up to %s, recovered from generation %" PRIu64 " of %s) in %.1f ms; "
           "PostgreSQL recovers to that point and promotes when it first starts on it\n",
           name, a->from, text, lsn, base.gen, base.branch, now_ms() - t0);
    return 0;
}

static int branch_create(const cli_args *a)
{
    if (a->npos != 1) return cli_usage_fail("branch create: want one NAME (usage: lakefs branch create NAME --from PARENT)");
    if (!a->from) return cli_usage_fail("branch create: --from PARENT is missing (usage: lakefs branch create NAME --from PARENT)");
    const char *name = a->pos[0];
    if (cli_check_name("branch", name) || cli_check_name("parent branch", a->from)) return 1;
    objstore *os;
    if (cli_args_repo(a, &os)) return 1;
    if (a->at || a->at_xid || a->at_restore_point) {
        int rc = branch_create_at(a, os);
        os_close(os);
        return rc;
    }
    double t0 = now_ms();
    uint64_t gen, seq;
    branch_meta meta;
    char err[600];
    int rc = parent_checkpoint(os, a->from, &gen, &seq);
    if (!rc && branch_fork(os, name, a->from, gen, &meta, err, sizeof err)) rc = cli_fail("%s", err);
    double t1 = now_ms();
    branch_info made = { .meta = meta };
    char lsn[PG_LSN_LEN];
    snprintf(made.name, sizeof made.name, "%s", name);
    if (!rc && point_lsn(os, &made, lsn)) snprintf(lsn, sizeof lsn, "?");
    if (!rc)
        printf("Created branch %s from %s at seq %" PRIu64 ", LSN %s (manifest generation %" PRIu64 "%s) in %.1f ms\n",
               name, a->from, meta.point, lsn, meta.parent_gen, gen ? ", checkpoint of the running daemon" : "", t1 - t0);
    os_close(os);
    return rc;
}

static int branch_list_cmd(const cli_args *a)
{
    if (a->npos) return cli_usage_fail("branch list takes no arguments (usage: lakefs branch list [--repo URL])");
    objstore *os;
    if (cli_args_repo(a, &os)) return 1;
    branch_info *b;
    size_t n;
    char err[600];
    int rc = branch_list(os, &b, &n, err, sizeof err);
    if (rc) { os_close(os); return cli_fail("%s", err); }
    char (*lsn)[PG_LSN_LEN] = calloc(n ? n : 1, sizeof *lsn);
    if (!lsn) { branch_list_free(b, n); os_close(os); return cli_fail("out of memory"); }
    int w = 4, pw = 6, lw = 10;
    for (size_t i = 0; i < n; i++) {
        if (point_lsn(os, &b[i], lsn[i])) { rc = 1; snprintf(lsn[i], PG_LSN_LEN, "?"); }
        if ((int)strlen(b[i].name) > w) w = (int)strlen(b[i].name);
        if ((int)strlen(b[i].meta.parent) > pw) pw = (int)strlen(b[i].meta.parent);
        if ((int)strlen(lsn[i]) > lw) lw = (int)strlen(lsn[i]);
    }
    os_close(os);
    printf("%-*s  %-*s  %12s  %-*s  %-20s  %14s\n", w, "NAME", pw, "PARENT", "POINT", lw, "LSN", "CREATED", "UNIQUE_BYTES");
    for (size_t i = 0; i < n; i++) {
        char when[32], point[32];
        cli_fmt_utc(b[i].has_meta ? b[i].meta.created : 0, when, sizeof when);
        if (b[i].meta.parent[0]) snprintf(point, sizeof point, "%" PRIu64, b[i].meta.point);
        else snprintf(point, sizeof point, "-");
        printf("%-*s  %-*s  %12s  %-*s  %-20s  %14" PRIu64 "\n", w, b[i].name, pw,
               b[i].meta.parent[0] ? b[i].meta.parent : "-", point, lw, lsn[i], when, b[i].unique_bytes);
    }
    free(lsn);
    branch_list_free(b, n);
    return rc;
}

static int branch_show(const cli_args *a)
{
    if (a->npos != 1) return cli_usage_fail("branch show: want one NAME (usage: lakefs branch show NAME)");
    if (cli_check_name("branch", a->pos[0])) return 1;
    objstore *os;
    if (cli_args_repo(a, &os)) return 1;
    branch_info *b;
    size_t n;
    char err[600], when[32], children[1024] = "", lsn[PG_LSN_LEN];
    int rc = branch_list(os, &b, &n, err, sizeof err);
    if (rc) { os_close(os); return cli_fail("%s", err); }
    branch_info *me = NULL;
    for (size_t i = 0; i < n; i++) {
        if (!strcmp(b[i].name, a->pos[0])) me = &b[i];
        if (!strcmp(b[i].meta.parent, a->pos[0])) {
            size_t len = strlen(children);
            snprintf(children + len, sizeof children - len, "%s%s", len ? ", " : "", b[i].name);
        }
    }
    if (!me) {
        rc = cli_fail("no branch '%s' in %s (see lakefs branch list)", a->pos[0], os_url(os));
    } else {
        lease_info l;
        int lrc = lease_read(os, me->name, &l);
        rc = point_lsn(os, me, lsn);
        cli_fmt_utc(me->has_meta ? me->meta.created : 0, when, sizeof when);
        printf("name:          %s\n", me->name);
        if (me->meta.parent[0]) {
            printf("parent:        %s\n", me->meta.parent);
            printf("branch point:  seq %" PRIu64 " (manifest generation %" PRIu64 " of %s)\n", me->meta.point,
                   me->meta.parent_gen, me->meta.parent);
        } else {
            printf("parent:        - (a root branch)\n");
        }
        if (!me->meta.parent[0]) printf("point_lsn:     - (a root branch)\n");
        else if (rc) printf("point_lsn:     ? (unreadable)\n");
        else if (!strcmp(lsn, "-")) printf("point_lsn:     - (no WAL written before the branch point)\n");
        else if (me->meta.at_lsn) printf("point_lsn:     %s (a point in the parent's past: recovered to it from the branch point)\n", lsn);
        else printf("point_lsn:     %s (PostgreSQL WAL position at the branch point)\n", lsn);
        printf("created:       %s\n", when);
        printf("head:          seq %" PRIu64 ", manifest generation %" PRIu64 ", %zu layers\n", me->man.seq, me->man.gen,
               me->man.nlayers);
        printf("bytes:         %" PRIu64 " in its layers, %" PRIu64 " unique to it\n", me->bytes, me->unique_bytes);
        printf("children:      %s\n", children[0] ? children : "-");
        if (lrc == 0)
            printf("mounted:       read-write by %s pid %ld%s%s%s\n", l.holder, l.pid, l.local && !l.alive ? " (dead)" : "",
                   l.control[0] ? ", control socket " : "", l.control);
        else
            printf("mounted:       %s\n", lrc == -ENOENT ? "no" : strerror(-lrc));
        if (me->deleting)
            printf("state:         being deleted or renamed (interrupted?): finish with lakefs branch delete %s\n", me->name);
    }
    branch_list_free(b, n);
    os_close(os);
    return rc;
}

/* branch_release_fn of --force: have the daemon that mounts branch NAME
 * read-write on this machine flush it and let go; nothing to do if none
 * does (branch_delete then reports a dead daemon's lease). */
static int release_branch(void *arg, const char *name, char *err, size_t errlen)
{
    objstore *os = arg;
    char why[600];
    lease_info l;
    int rc = cli_local_lease(os, name, &l, err, errlen);
    if (rc) return rc == -ENOENT ? 0 : rc;
    if (!l.alive || !l.control[0]) return 0;
    if ((rc = control_release(l.control, name, why, sizeof why)) && rc != -ENOENT && rc != -ECONNREFUSED) {
        snprintf(err, errlen, "branch '%s': %s", name, why);
        return rc;
    }
    return 0;
}

static int branch_delete_cmd(const cli_args *a)
{
    if (a->npos != 1) return cli_usage_fail("branch delete: want one NAME (usage: lakefs branch delete NAME)");
    if (cli_check_name("branch", a->pos[0])) return 1;
    objstore *os;
    if (cli_args_repo(a, &os)) return 1;
    branch_info *b;
    size_t n;
    uint64_t freed = 0;
    char err[600];
    int rc = branch_list(os, &b, &n, err, sizeof err);
    if (!rc) {
        for (size_t i = 0; i < n; i++)
            if (!strcmp(b[i].name, a->pos[0])) freed = b[i].unique_bytes;
        branch_list_free(b, n);
        rc = branch_delete(os, a->pos[0], a->force ? release_branch : NULL, os, err, sizeof err);
    }
    os_close(os);
    if (rc) return cli_fail("%s", err);
    printf("Deleted branch %s (%" PRIu64 " bytes of layers only it used)\n", a->pos[0], freed);
    return 0;
}

static int branch_rename_cmd(const cli_args *a)
{
    if (a->npos != 2) return cli_usage_fail("branch rename: want OLD and NEW (usage: lakefs branch rename OLD NEW)");
    if (cli_check_name("branch", a->pos[0]) || cli_check_name("new branch", a->pos[1])) return 1;
    objstore *os;
    if (cli_args_repo(a, &os)) return 1;
    char err[600];
    int rc = branch_rename(os, a->pos[0], a->pos[1], err, sizeof err);
    os_close(os);
    if (rc) return cli_fail("%s", err);
    printf("Renamed branch %s to %s\n", a->pos[0], a->pos[1]);
    return 0;
}

int cmd_branch(int argc, char **argv)
{
    static const struct { const char *name; int (*fn)(const cli_args *); } subs[] = {
        { "create", branch_create }, { "list", branch_list_cmd }, { "show", branch_show },
        { "delete", branch_delete_cmd }, { "rename", branch_rename_cmd },
    };
    cli_args a = { 0 };
    const char *sub;
    int rc = cli_parse_args("branch", argc, argv, usage_branch, &a, &sub);
    if (rc >= 0) return rc;
    if (!sub) { fputs(usage_branch, stderr); return 2; }
    for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++)
        if (!strcmp(sub, subs[i].name)) return subs[i].fn(&a);
    return cli_usage_fail("branch: unknown subcommand '%s': use create, list, show, delete or rename", sub);
}

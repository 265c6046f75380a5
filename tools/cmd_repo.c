/*
 * cmd_repo.c -- the repository's maintenance: `lakefs gc` (delete what no
 * branch, window or view needs), `lakefs fsck` (verify everything, remove
 * orphans with --repair) and `lakefs config` (the retention setting).  The
 * work itself is in repo/gc.c and repo/fsck.c, shared with the daemon's
 * periodic gc; these are the flags and the report.
 */
#include "../repo/fsck.h"
#include "../repo/gc.h"
#include "../store/manifest.h"
#include "../objstore/objstore.h"
#include "cli.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static const char *usage_gc =
    "usage: lakefs gc [URL] [--dry-run] [--retention DURATION]\n"
    "\n"
    "Delete the manifests and layers of the repository that nothing needs:\n"
    "kept are every branch's newest state, every state made within the\n"
    "retention window and the newest one before it (so time travel reaches\n"
    "back that far), states pinned by mounted time-travel views, and every\n"
    "layer those name.  Layers a live mount may still be committing are kept.\n"
    "The window is the repository's setting (lakefs config set retention=...,\n"
    "default 7d) unless --retention overrides it for this run (0 keeps only\n"
    "the newest states).  --dry-run prints what would be kept and freed and\n"
    "deletes nothing.  URL defaults to --repo, LAKEFS_REPO, or the lakefs\n"
    "mount holding the current directory.  Mounted daemons also run it every\n"
    "hour (-o gc_interval).\n";

static const char *usage_fsck =
    "usage: lakefs fsck [URL] [--repair]\n"
    "\n"
    "Check the repository: read every manifest (checksum), every layer they\n"
    "name (present, of the named size, footer, index and every block's\n"
    "checksum) and every branch's parent; print one line per problem, then\n"
    "the layers nothing names (orphans: left by a crash between an upload and\n"
    "its commit, or by an interrupted gc).  Exits 1 if anything is damaged.\n"
    "--repair removes the orphans, and nothing else; it is refused while\n"
    "anything is damaged.  Safe while daemons run: layers a live mount may\n"
    "still commit are not orphans.\n";

static const char *usage_config =
    "usage: lakefs config set retention=DURATION [--repo URL]\n"
    "       lakefs config get [retention] [--repo URL]\n"
    "\n"
    "The repository's settings.  retention is how far back time travel reaches\n"
    "and what garbage collection keeps: a duration such as 7d, 12h, 5min, 90s,\n"
    "or 0 (only the newest states).  Mounts started afterwards use it as their\n"
    "default for -o retention.\n";

int cmd_gc(int argc, char **argv)
{
    cli_args a = { 0 };
    const char *url;
    int rc = cli_parse_args("gc", argc, argv, usage_gc, &a, &url);
    if (rc >= 0) return rc;
    if (a.npos || a.from || a.at || a.at_xid || a.at_restore_point || a.force || a.repair)
        return cli_usage_fail("gc: usage: lakefs gc [URL] [--dry-run] [--retention DURATION]");
    if (url && a.repo) return cli_usage_fail("gc: give the repository once (URL or --repo)");
    if (url) a.repo = url;
    gc_options o = { .dry_run = a.dry_run, .out = stdout };
    if (a.retention && cli_parse_duration_or_zero(a.retention, &o.retention_s))
        return cli_usage_fail("gc: bad retention '%s': use a duration like 7d, 12h or 5min, or 0", a.retention);
    objstore *os;
    if (cli_args_repo(&a, &os)) return 1;
    if (!a.retention && (rc = gc_retention_get(os, &o.retention_s))) {
        cli_fail("cannot read the retention setting of %s: %s", os_url(os), strerror(-rc));
        os_close(os);
        return 1;
    }
    gc_report r;
    char err[700];
    rc = gc_run(os, &o, &r, err, sizeof err);
    os_close(os);
    return rc ? cli_fail("gc: %s", err) : 0;
}

int cmd_fsck(int argc, char **argv)
{
    cli_args a = { 0 };
    const char *url;
    int rc = cli_parse_args("fsck", argc, argv, usage_fsck, &a, &url);
    if (rc >= 0) return rc;
    if (a.npos || a.from || a.at || a.at_xid || a.at_restore_point || a.force || a.dry_run || a.retention)
        return cli_usage_fail("fsck: usage: lakefs fsck [URL] [--repair]");
    if (url && a.repo) return cli_usage_fail("fsck: give the repository once (URL or --repo)");
    if (url) a.repo = url;
    objstore *os;
    if (cli_args_repo(&a, &os)) return 1;
    fsck_report r;
    char err[700];
    rc = fsck_run(os, a.repair, stdout, &r, err, sizeof err);
    os_close(os);
    if (rc) return cli_fail("fsck: %s", err);
    if (r.damaged) return cli_fail("fsck: %s is damaged: %" PRIu64 " problem%s (listed above)", a.repo ? a.repo : "the repository",
                               r.damaged, r.damaged == 1 ? "" : "s");
    return 0;
}

int cmd_config(int argc, char **argv)
{
    cli_args a = { 0 };
    const char *sub;
    int rc = cli_parse_args("config", argc, argv, usage_config, &a, &sub);
    if (rc >= 0) return rc;
    if (!sub || a.from || a.at || a.at_xid || a.at_restore_point || a.force || a.dry_run || a.retention || a.repair) {
        fputs(usage_config, stderr);
        return 2;
    }
    int set = !strcmp(sub, "set");
    if (!set && strcmp(sub, "get"))
        return cli_usage_fail("config: unknown subcommand '%s': use set or get", sub);
    if (set ? a.npos != 1 : a.npos > 1) { fputs(usage_config, stderr); return 2; }
    int64_t secs = 0;
    if (set) {
        if (strncmp(a.pos[0], "retention=", 10))
            return cli_usage_fail("config set: unknown setting '%s': the one setting is retention=DURATION", a.pos[0]);
        if (cli_parse_duration_or_zero(a.pos[0] + 10, &secs))
            return cli_usage_fail("config set: bad retention '%s': use a duration like 7d, 12h or 5min, or 0",
                              a.pos[0] + 10);
    } else if (a.npos && strcmp(a.pos[0], "retention")) {
        return cli_usage_fail("config get: unknown setting '%s': the one setting is retention", a.pos[0]);
    }
    objstore *os;
    if (cli_args_repo(&a, &os)) return 1;
    rc = set ? gc_retention_set(os, secs) : gc_retention_get(os, &secs);
    os_close(os);
    if (rc) return cli_fail("cannot %s the retention setting of the repository: %s", set ? "write" : "read", strerror(-rc));
    if (!set) printf("retention=%" PRId64 "s\n", secs);
    return 0;
}

/*
 * lakefs.c -- the `lakefs` command: one binary, git-style subcommands.
 *
 *   lakefs init URL                      create an empty repository with branch main
 *   lakefs mount URL[#BRANCH] DIR [-f] [-d] [-o OPTS]   run the FUSE daemon
 *   lakefs branch create|list|show|delete|rename ...     manage branches
 *   lakefs stats BRANCH                  a mounted branch's read counters
 *
 * `mount` is also what mount(8) runs for `-t fuse.lakefs` (through
 * contrib/mount.fuse.lakefs).  Without -f it forks before touching the
 * store, and the parent exits only when the child reports the mount ready
 * (status 0) or failed (its one-line error already printed), so a shell or
 * fstab sees the real outcome.  After that the daemon's stderr goes to a log
 * file in its state directory.  The daemon listens on a control socket
 * (control.h) through which `lakefs branch create` asks it for a
 * checkpoint of its branch, and `lakefs stats` for its counters.
 *
 * The branch commands find their repository from --repo URL, else
 * $LAKEFS_REPO, else the lakefs mount holding the current directory.
 */
#include "../fs/fs.h"
#include "../fs/pg/pg_archive.h"
#include "../fs/pg/pg_target.h"
#include "../fs/pg/pg_wal.h"
#include "../fs/pg/pg_walscan.h"
#include "../store/layer.h"
#include "../store/branch.h"
#include "../store/gc.h"
#include "../store/fnv.h"
#include "../store/fsck.h"
#include "../store/manifest.h"
#include "../store/objcache.h"
#include "../store/objstore.h"
#include "../store/store.h"
#include "control.h"
#include "export.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "0.1.0"
#endif

static const char *usage_main =
    "usage: lakefs [--version] [--help] COMMAND [ARGS]\n"
    "\n"
    "Serve PostgreSQL data directories from a versioned copy-on-write store.\n"
    "\n"
    "Commands:\n"
    "  init URL                         create an empty repository with a branch 'main'\n"
    "  mount URL[#BRANCH] DIR [-o OPTS] mount a repository (or one branch) at DIR\n"
    "  branch create NAME --from PARENT create a copy-on-write branch (instant, any size)\n"
    "  branch list|show|delete|rename   list, describe, delete, rename branches\n"
    "  lsn BRANCH --at TIME             the LSN where BRANCH's state at TIME ends\n"
    "  log BRANCH                       PostgreSQL checkpoints and branch points in BRANCH's history\n"
    "  gc [URL] [--dry-run]             delete what no branch, window or view needs any more\n"
    "  config set retention=DURATION    the repository's time-travel window (default 7d)\n"
    "  fsck [URL] [--repair]            verify every manifest and layer; --repair removes orphans\n"
    "  stats BRANCH                     a mounted branch's read counters: layers consulted per read\n"
    "  export BRANCH --at POINT --table S.T --to URL  tables at a point as Delta Lake tables\n"
    "\n"
    "URL is file:///absolute/path or s3://bucket/prefix.  'lakefs COMMAND --help'\n"
    "describes a command.\n";

static const char *usage_init =
    "usage: lakefs init URL\n"
    "\n"
    "Create an empty lakefs repository at URL (file:///absolute/path; the\n"
    "directory is created if missing and must otherwise be empty) with one\n"
    "branch, 'main', whose root directory is empty.\n";

static const char *usage_mount =
    "usage: lakefs mount URL[#BRANCH] DIR [-f] [-d] [-o OPT[,OPT...]]\n"
    "\n"
    "Mount the repository at URL on the empty directory DIR.  DIR shows\n"
    "branches/main/; with #BRANCH or -o branch=BRANCH, DIR is that branch's\n"
    "root (a PGDATA directory) instead.  Without -f the command returns once\n"
    "the mount is ready and the daemon runs in the background; unmount with\n"
    "'umount DIR' or 'fusermount3 -u DIR', which flushes everything.\n"
    "\n"
    "  -f                  stay in the foreground, log to stderr\n"
    "  -d                  also log every FUSE request (implies -f)\n"
    "  -o branch=NAME      mount only branch NAME at DIR\n"
    "  -o state_dir=DIR    local journal and lock directory (default\n"
    "                      /var/lib/lakefs/<hash of URL>, or ~/.local/state/lakefs/... as non-root)\n"
    "  -o log=FILE         daemon log (default STATE_DIR/lakefs.log)\n"
    "  -o memtable_size=N  bytes buffered in memory before a layer is written (default 64M)\n"
    "  -o cache_dir=DIR    local disk cache of layer blocks, kept across mounts (default\n"
    "                      STATE_DIR/cache; file:// repositories use no cache unless given)\n"
    "  -o cache_size=N     bound on the disk cache, e.g. 512M or 2G (default 1G)\n"
    "  -o readahead=N      blocks (~64 KiB each) prefetched ahead of a sequential\n"
    "                      reader (default 256, in gets of up to 16; 0: off)\n"
    "  -o allow_other      let other users (e.g. postgres) use the mount\n"
    "  -o default_permissions  let the kernel check permissions (use with allow_other)\n"
    "  -o ro               read-only mount\n"
    "  -o lsn=LSN          with #BRANCH: serve BRANCH as it was at LSN (0/16B3748), a\n"
    "                      read-only time-travel view: PostgreSQL started on DIR\n"
    "                      recovers to exactly that point; what it writes is dropped\n"
    "                      at unmount (implies ro, which is then not passed to the kernel)\n"
    "  -o time=TIME        the same at a moment (ISO 8601 with a zone, 2026-11-23T10:32:05Z)\n"
    "  -o retention=DURATION  how far back time-travel views may go (e.g. 7d, 12h, 30min;\n"
    "                      default: the repository's setting, see lakefs config)\n"
    "  -o gc_interval=DURATION  run garbage collection (lakefs gc) that often (default\n"
    "                      1h; 0: never)\n"
    "  -o view_idle=DURATION  close a time-travel view BRANCH@POINT nothing has used\n"
    "                      for that long (no file or directory open in it, no server\n"
    "                      running on it): what servers on it wrote is freed; it\n"
    "                      opens again at the same point when used (default 1min;\n"
    "                      0: never; at most 365d)\n"
    "  -o compaction=off   never merge layers (to measure what compaction costs; reads\n"
    "                      then probe every layer ever flushed)\n"
    "  -o durability=MODE  local (default): fsync returns once the data is in the local\n"
    "                      journal, uploaded later; remote: once it is in the repository,\n"
    "                      so a new machine finds every fsynced write\n"
    "  -o endpoint=URL     S3 endpoint (instead of AWS_ENDPOINT_URL), e.g. https://s3.example.com\n"
    "  -o region=NAME      S3 region (instead of AWS_REGION)\n"
    "  -o path_style       path-style S3 addressing (the only one lakefs uses; accepted)\n"
    "  -o unsafe_no_conditional_put  mount even if the S3 server ignores If-None-Match\n"
    "                      (then nothing stops two writers of a branch from clobbering it)\n"
    "  -o takeover         take the branch over from another daemon (one whose machine is\n"
    "                      gone); that daemon's later writes and fsyncs fail\n"
    "  -o fsname=NAME      name shown in /proc/mounts (default: URL)\n"
    "  kernel flags passed on: rw, dev, nodev, suid, nosuid, exec, noexec, atime, noatime\n"
    "  fstab options accepted and ignored: defaults, _netdev, auto, noauto, nofail,\n"
    "  user, nouser, users, x-*, comment=*\n";

static const char *usage_lsn =
    "usage: lakefs lsn BRANCH --at TIME [--repo URL]\n"
    "\n"
    "Print the LSN at which BRANCH's state at TIME (ISO 8601 with a zone,\n"
    "2026-11-23T10:32:05Z) ends: the start of the first commit or abort record\n"
    "stamped later, or the end of the WAL if there is none.  BRANCH@LSN and\n"
    "BRANCH@TIME show the same state.\n";

static const char *usage_log =
    "usage: lakefs log BRANCH [--repo URL]\n"
    "\n"
    "BRANCH's history within reach of time travel, oldest first: PostgreSQL's\n"
    "checkpoints (from the WAL archive) and branch points (where BRANCH was\n"
    "created from its parent, and where children were created from it), each\n"
    "with its time (UTC) and LSN.\n";

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

static const char *usage_stats =
    "usage: lakefs stats BRANCH [--repo URL]\n"
    "\n"
    "The counters of BRANCH, from the daemon on this machine that mounts it\n"
    "(found through the branch's lease), one per line:\n"
    "  reads        reads that reached the layers (not answered from memory)\n"
    "  probes       layers they consulted (those whose key range holds the key)\n"
    "  probes_max   most layers one read consulted\n"
    "  over_bound   reads that consulted more layers than the bound\n"
    "  bound        the bound now: the parent's runs + 1 + log2(own bytes / 1 MiB + 1)\n"
    "               + 2 (store/compact.h)\n"
    "  layers, flushes, compactions, seq, gen   layers in the manifest, layers\n"
    "               flushed and merges committed by this mount, last seq, generation\n";

static const char *usage_config =
    "usage: lakefs config set retention=DURATION [--repo URL]\n"
    "       lakefs config get [retention] [--repo URL]\n"
    "\n"
    "The repository's settings.  retention is how far back time travel reaches\n"
    "and what garbage collection keeps: a duration such as 7d, 12h, 5min, 90s,\n"
    "or 0 (only the newest states).  Mounts started afterwards use it as their\n"
    "default for -o retention.\n";

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

/* Print "lakefs: MSG" on stderr and return STATUS. */
static int vfail(int status, const char *fmt, va_list ap)
{
    fputs("lakefs: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    return status;
}

/* Print "lakefs: MSG" and return exit status 1. */
static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int status = vfail(1, fmt, ap);
    va_end(ap);
    return status;
}

/* Print "lakefs: MSG" for a usage error and return exit status 2. */
static int usage_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int status = vfail(2, fmt, ap);
    va_end(ap);
    return status;
}

/* Create DIR and its parents with MODE. */
static int mkdirs(const char *dir, mode_t mode)
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

static int open_repo_settings(const char *url, objstore **os, int64_t *retention);

/* Open URL as a repository that must exist; prints the error. */
static int open_repo(const char *url, objstore **os)
{
    return open_repo_settings(url, os, NULL);
}

/* A repository's retention setting, read beside open_repo_settings's check. */
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

/* open_repo, and with RETENTION the repository's retention setting read
 * at the same time (one round trip to the object store, not two); prints
 * the error. */
static int open_repo_settings(const char *url, objstore **os, int64_t *retention)
{
    char err[512];
    int rc = os_open(url, os, err, sizeof err);
    if (rc) return fail("%s", err);
    retention_read r = { .os = *os };
    pthread_t tid;
    int started = retention && pthread_create(&tid, NULL, retention_reader, &r) == 0;
    int bad = store_repo_check(*os);
    if (started) pthread_join(tid, NULL);
    else if (retention) retention_reader(&r);
    if (bad) {
        os_close(*os);
        return fail("%s is not a lakefs repository (create one with: lakefs init %s)", url, url);
    }
    if (retention && r.rc) {
        os_close(*os);
        return fail("cannot read the retention setting of %s: %s", url, strerror(-r.rc));
    }
    if (retention) *retention = r.seconds;
    return 0;
}

static int cmd_init(int argc, char **argv)
{
    if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) { fputs(usage_init, stdout); return 0; }
    if (argc != 2) { fputs(usage_init, stderr); return 2; }
    const char *url = argv[1];
    if (!strncmp(url, "file://", 7) && url[7] == '/') {
        int rc = mkdirs(url + 7, 0755);
        if (rc) return fail("cannot create repository directory %s: %s", url + 7, strerror(-rc));
    }
    char err[512];
    objstore *os;
    int rc = os_open(url, &os, err, sizeof err);
    if (rc) return fail("%s", err);
    if (store_repo_check(os) == 0) {
        os_close(os);
        return fail("%s is already a lakefs repository; nothing changed", url);
    }
    char **keys; size_t n;
    if ((rc = os_list(os, "", &keys, &n))) { os_close(os); return fail("cannot list %s: %s", url, strerror(-rc)); }
    os_list_free(keys, n);
    if (n) { os_close(os); return fail("%s is not empty and not a lakefs repository; use an empty location", url); }
    uint8_t attr[256];
    size_t alen = fs_root_attr(attr, sizeof attr);
    skey k;
    key_inode(&k, FS_ROOT_INO);
    rc = store_branch_create(os, "main", &k, attr, alen);
    if (!rc) rc = store_repo_create(os);
    os_close(os);
    if (rc) return fail("cannot create repository %s: %s", url, strerror(-rc));
    printf("Created lakefs repository %s with branch main\n", url);
    return 0;
}

typedef struct mount_opts {
    char *url;                    /* repository URL without #BRANCH */
    char *branch;                 /* branch to serve */
    int branch_root;              /* mount the branch itself at DIR */
    char *mountpoint;
    char *state_dir, *log;
    size_t memtable_size;
    char *cache_dir;              /* -o cache_dir, NULL: default */
    size_t cache_size;            /* -o cache_size, 0: default */
    long readahead;               /* -o readahead, -1: default */
    int foreground, debug;
    int takeover;                 /* break another daemon's lease on the branch */
    int durability_remote;        /* -o durability=remote */
    int compaction_off;           /* -o compaction=off */
    int64_t retention_s;          /* -o retention: time-travel window in seconds (-1: the repository's) */
    int64_t gc_interval_s;        /* -o gc_interval: seconds between collections (0: none) */
    int64_t view_idle_s;          /* -o view_idle: close time-travel views unused this long (0: never) */
    char *at;                     /* -o lsn= / time=: serve BRANCH@AT, a time-travel view */
    int ro;                       /* -o ro */
    char fuse_opts[1024];         /* options handed to libfuse */
} mount_opts;

/* Append OPT to the libfuse option string. */
static int add_fuse_opt(mount_opts *m, const char *opt)
{
    size_t len = strlen(m->fuse_opts);
    int n = snprintf(m->fuse_opts + len, sizeof m->fuse_opts - len, "%s%s", len ? "," : "", opt);
    return n < 0 || (size_t)n >= sizeof m->fuse_opts - len ? -1 : 0;
}

/* Parse a duration like 7d, 12h, 30min, 45s or 90 (seconds) into *OUT. */
static int parse_duration(const char *s, int64_t *out)
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

/* parse_duration, also accepting "0". */
static int parse_duration_or_zero(const char *s, int64_t *out)
{
    if (!strcmp(s, "0")) { *out = 0; return 0; }
    return parse_duration(s, out);
}

/* Parse a size like 64M. */
static int parse_size(const char *s, size_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s) return -1;
    switch (*end) {
    case 'k': case 'K': v <<= 10; end++; break;
    case 'm': case 'M': v <<= 20; end++; break;
    case 'g': case 'G': v <<= 30; end++; break;
    }
    if (*end || v == 0) return -1;
    *out = (size_t)v;
    return 0;
}

/* Parse one -o list into M; returns 0 or a usage status. */
static int parse_mount_opts(mount_opts *m, char *list)
{
    static const char *passed[] = { "allow_other", "default_permissions", "rw", "dev", "nodev",
                                     "suid", "nosuid", "exec", "noexec", "atime", "noatime", NULL };
    static const char *ignored[] = { "defaults", "_netdev", "auto", "noauto", "nofail", "user",
                                     "nouser", "users", NULL };
    char *save, *opt;
    for (opt = strtok_r(list, ",", &save); opt; opt = strtok_r(NULL, ",", &save)) {
        int known = 0;
        for (int i = 0; passed[i]; i++)
            if (!strcmp(opt, passed[i])) { known = 1; if (add_fuse_opt(m, opt)) return fail("mount options too long"); }
        for (int i = 0; ignored[i]; i++) known |= !strcmp(opt, ignored[i]);
        if (!strncmp(opt, "x-", 2) || !strncmp(opt, "comment=", 8)) known = 1;
        if (known) continue;
        if (!strcmp(opt, "takeover")) { m->takeover = 1; continue; }
        if (!strcmp(opt, "ro")) { m->ro = 1; continue; }   /* a time-travel view is read-only by itself */
        if (!strcmp(opt, "path_style")) continue;   /* lakefs always addresses S3 path-style */
        if (!strcmp(opt, "unsafe_no_conditional_put")) {
            if (setenv("LAKEFS_S3_UNSAFE_NO_CONDITIONAL_PUT", "1", 1)) return fail("out of memory");
            continue;
        }
        char *eq = strchr(opt, '=');
        if (!eq) return fail("unknown mount option '%s' (see lakefs mount --help)", opt);
        *eq = 0;
        const char *val = eq + 1;
        if (!strcmp(opt, "branch")) {
            free(m->branch); m->branch = strdup(val); m->branch_root = 1;
        } else if (!strcmp(opt, "state_dir")) {
            if (val[0] != '/') return fail("state_dir must be an absolute path, not '%s'", val);
            free(m->state_dir); m->state_dir = strdup(val);
        } else if (!strcmp(opt, "log")) {
            free(m->log); m->log = strdup(val);
        } else if (!strcmp(opt, "memtable_size")) {
            if (parse_size(val, &m->memtable_size)) return fail("bad memtable_size '%s': use a byte count like 64M", val);
        } else if (!strcmp(opt, "cache_dir")) {
            if (val[0] != '/') return fail("cache_dir must be an absolute path, not '%s'", val);
            free(m->cache_dir); m->cache_dir = strdup(val);
        } else if (!strcmp(opt, "cache_size")) {
            if (parse_size(val, &m->cache_size)) return fail("bad cache_size '%s': use a byte count like 1G", val);
        } else if (!strcmp(opt, "endpoint") || !strcmp(opt, "region")) {
            /* the S3 backend reads them like its AWS_* settings, ahead of those */
            if (!*val) return fail("empty %s: use -o %s=%s", opt, opt, !strcmp(opt, "endpoint") ? "https://HOST[:PORT]" : "NAME");
            if (setenv(!strcmp(opt, "endpoint") ? "LAKEFS_S3_ENDPOINT" : "LAKEFS_S3_REGION", val, 1))
                return fail("out of memory");
        } else if (!strcmp(opt, "lsn") || !strcmp(opt, "time")) {
            pg_target t;
            if (m->at) return fail("give one of -o lsn= and -o time=, once");
            if (pg_target_parse(val, &t) || t.is_time != !strcmp(opt, "time"))
                return fail(!strcmp(opt, "lsn") ? "bad lsn '%s': write an LSN like 0/16B3748"
                            : "bad time '%s': write a moment in ISO 8601 with a zone, like 2026-11-23T10:32:05Z", val);
            m->at = strdup(val);
        } else if (!strcmp(opt, "retention")) {
            if (parse_duration(val, &m->retention_s))
                return fail("bad retention '%s': use a duration like 7d, 12h or 30min", val);
        } else if (!strcmp(opt, "compaction")) {
            if (!strcmp(val, "off")) m->compaction_off = 1;
            else if (!strcmp(val, "on")) m->compaction_off = 0;
            else return fail("bad compaction '%s': use compaction=on or compaction=off", val);
        } else if (!strcmp(opt, "gc_interval")) {
            if (parse_duration_or_zero(val, &m->gc_interval_s))
                return fail("bad gc_interval '%s': use a duration like 1h or 30min, or 0 for never", val);
        } else if (!strcmp(opt, "view_idle")) {
            if (parse_duration_or_zero(val, &m->view_idle_s) || m->view_idle_s > 365 * 86400)
                return fail("bad view_idle '%s': use a duration like 1min or 30s (at most 365d), or 0 for never", val);
        } else if (!strcmp(opt, "durability")) {
            if (!strcmp(val, "remote")) m->durability_remote = 1;
            else if (!strcmp(val, "local")) m->durability_remote = 0;
            else return fail("bad durability '%s': use durability=local or durability=remote", val);
        } else if (!strcmp(opt, "readahead")) {
            char *end;
            errno = 0;
            m->readahead = strtol(val, &end, 10);
            if (errno || end == val || *end || m->readahead < 0 || m->readahead > 1024)
                return fail("bad readahead '%s': use a block count from 0 (off) to 1024", val);
        } else if (!strcmp(opt, "fsname")) {
            char o[600];
            snprintf(o, sizeof o, "fsname=%s", val);
            if (add_fuse_opt(m, o)) return fail("mount options too long");
        } else {
            return fail("unknown mount option '%s' (see lakefs mount --help)", opt);
        }
    }
    return 0;
}

/* Check DIR exists, is a directory and is empty. */
static int check_mountpoint(const char *dir)
{
    struct stat st;
    if (stat(dir, &st) < 0) return fail("mount point %s: %s; create an empty directory first", dir, strerror(errno));
    if (!S_ISDIR(st.st_mode)) return fail("mount point %s is not a directory", dir);
    DIR *d = opendir(dir);
    if (!d) return fail("mount point %s: %s", dir, strerror(errno));
    struct dirent *de;
    int entries = 0;
    while ((de = readdir(d)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) entries++;
    closedir(d);
    if (entries) return fail("mount point %s is not empty; use an empty directory", dir);
    return 0;
}

/* fs_foreach_branch callback: the mount is gone, the store's close follows. */
static int mark_unmounting(void *arg, const char *name, store *st)
{
    (void)arg; (void)name;
    store_unmounting(st);
    return 0;
}

/* Run the FUSE session of FS (its disk cache CACHE, or NULL) until
 * unmount; REPORT_FD (or -1) gets the startup status. */
static int serve(mount_opts *m, fs_mount *fs, objcache *cache, int report_fd)
{
    char fsname[600];
    snprintf(fsname, sizeof fsname, "fsname=%s", m->url);
    if (!strstr(m->fuse_opts, "fsname=")) add_fuse_opt(m, fsname);
    add_fuse_opt(m, "subtype=lakefs");
    char *argv[] = { "lakefs", "-o", m->fuse_opts, m->debug ? "-d" : NULL, NULL };
    struct fuse_args args = FUSE_ARGS_INIT(m->debug ? 4 : 3, argv);
    struct fuse_session *se = fuse_session_new(&args, fs_ops(), sizeof(struct fuse_lowlevel_ops), fs);
    if (!se) return fail("cannot start a FUSE session (options: %s)", m->fuse_opts);
    if (fuse_set_signal_handlers(se)) { fuse_session_destroy(se); return fail("cannot install signal handlers"); }
    if (fuse_session_mount(se, m->mountpoint)) {
        fuse_remove_signal_handlers(se);
        fuse_session_destroy(se);
        return fail("cannot mount at %s (is /dev/fuse available and fuse3 installed?)", m->mountpoint);
    }
    if (report_fd >= 0) {         /* detach: logs go to the log file */
        int nul = open("/dev/null", O_RDWR);
        int log = open(m->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        if (nul >= 0) { dup2(nul, 0); dup2(nul, 1); close(nul); }
        if (log >= 0) { dup2(log, 2); close(log); }
        if (chdir("/") < 0) { /* not fatal: only keeps a directory busy */ }
        char ok = 0;
        if (write(report_fd, &ok, 1) != 1) { /* the parent is gone; keep serving */ }
        close(report_fd);
    }
    fprintf(stderr, "lakefs: serving %s %s%s at %s (pid %ld)\n", m->url, m->branch_root ? "branch " : "",
            m->branch_root ? m->branch : "(branches/ on demand)", m->mountpoint, (long)getpid());
    fs_set_session(fs, se);
    struct fuse_loop_config *lc = fuse_loop_cfg_create();
    fuse_loop_cfg_set_max_threads(lc, 64);
    fuse_loop_cfg_set_clone_fd(lc, 1);
    int loop = fuse_session_loop_mt(se, lc), rc;
    fs_set_session(fs, NULL);
    /* the mount is gone, the last flush follows: a mount starting now waits for it (dirlock.h) */
    fs_foreach_branch(fs, mark_unmounting, NULL);
    if (cache && (rc = objcache_unmounting(cache)))
        fprintf(stderr, "lakefs: cannot mark the disk cache as unmounting: %s (a mount started now goes "
                "without a disk cache)\n", strerror(-rc));
    fuse_loop_cfg_destroy(lc);
    fuse_session_unmount(se);
    fuse_remove_signal_handlers(se);
    fuse_session_destroy(se);
    fuse_opt_free_args(&args);
    return loop ? 1 : 0;
}

/* Remove the control sockets STATE_DIR/control.PID of daemons that are
 * gone (several daemons may share a state directory, one socket each). */
static void control_sweep(const char *state_dir)
{
    DIR *dir = opendir(state_dir);
    struct dirent *de;
    if (!dir) return;
    while ((de = readdir(dir))) {
        char *end;
        if (strncmp(de->d_name, "control.", 8)) continue;
        long pid = strtol(de->d_name + 8, &end, 10);
        if (*end || pid <= 0 || kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue;
        char path[4400];
        snprintf(path, sizeof path, "%s/%s", state_dir, de->d_name);
        if (unlink(path) == 0) fprintf(stderr, "lakefs: removed %s, the control socket of a daemon that is gone\n", path);
    }
    closedir(dir);
}

/* The lease of branch NAME into *L if a daemon on this machine holds it:
 * 0; -ENOENT if no one does; else -errno with the reason in ERR (-EBUSY:
 * a daemon on another machine). */
static int local_lease(objstore *os, const char *name, store_lease *l, char *err, size_t errlen)
{
    int rc = store_lease_read(os, name, l);
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
static int branch_checkpoint(objstore *os, const char *name, uint64_t *gen, uint64_t *seq, char *err, size_t errlen)
{
    char cerr[600];
    *gen = *seq = 0;
    for (int attempt = 0; attempt < 50; attempt++) {
        store_lease l;
        int rc = local_lease(os, name, &l, err, errlen);
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

/* The point TEXT of BRANCH's past (pg_target.h): parsed into *T, the base
 * state *BASE, the branch's newest generation *GEN (a daemon serving the
 * branch checkpoints first) opened as the archive *ARCHIVE (to close), and
 * where it is cut, *CUT.  0, or -errno with a one-line reason in ERR
 * (-EINVAL: TEXT is no point; -ERANGE: a point in the future). */
static int past_resolve(objstore *os, const char *branch, const char *text, int64_t retention_s, pg_target *t,
                        pg_base *base, uint64_t *gen, store **archive, uint64_t *cut, char *err, size_t errlen)
{
    uint64_t seq;
    *archive = NULL;
    if (pg_target_parse(text, t)) {
        snprintf(err, errlen, "'%s' is not a point in time: give an LSN (0/16B3748; 0-16B3748 in a view's name) or "
                 "a moment in ISO 8601 with a zone (2026-11-23T10:32:05Z)", text);
        return -EINVAL;
    }
    int rc = branch_checkpoint(os, branch, gen, &seq, err, errlen);
    if (!rc && !*gen) {           /* not mounted: its newest generation holds everything */
        manifest m;
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

/* ---- the daemon's branches: how fs/ opens, closes and lists them ---- */

typedef struct daemon_ctx {
    const mount_opts *m;
    objstore *os;                 /* the repository, through the disk cache if any */
    objcache *cache;              /* NULL without one */
    char control_path[4300];      /* the daemon's control socket */
    fs_mount *fs;
} daemon_ctx;

/* Open time-travel view NAME = BRANCH@TARGET (pg_target.h): its files are
 * an overlay on the base state, its archive the branch's newest state. */
static int daemon_open_past(daemon_ctx *d, const char *name, fs_branch *b, char *err, size_t errlen)
{
    const char *at = strchr(name, '@');
    char branch[BRANCH_NAME_MAX + 1], text[PG_TARGET_TEXT];
    pg_target t;
    pg_base base;
    uint64_t gen;
    snprintf(branch, sizeof branch, "%.*s", (int)(at - name), name);
    int rc = past_resolve(d->os, branch, at + 1, d->m->retention_s, &t, &base, &gen, &b->archive, &b->archive_end,
                          err, errlen);
    if (rc) return rc == -ERANGE || rc == -EINVAL ? -ENOENT : rc;   /* no such view */
    if ((rc = store_open_snapshot(d->os, base.branch, base.gen, &b->st, err, errlen))) {
        store_close(b->archive);
        return rc;
    }
    b->past = 1;
    char lsn[PG_LSN_LEN], cut[PG_LSN_LEN];
    pg_target_format(&t, text, sizeof text);
    pg_wal_lsn_format(base.lsn, lsn, sizeof lsn);
    if (b->archive_end == UINT64_MAX) snprintf(cut, sizeof cut, "its end");
    else pg_wal_lsn_format(b->archive_end, cut, sizeof cut);
    fprintf(stderr, "lakefs: serving %s: branch %s at %s: recovery from generation %" PRIu64 " of %s (WAL to %s) "
            "replays the WAL archive of generation %" PRIu64 " up to %s\n", name, branch, text, base.gen, base.branch,
            lsn, gen, cut);
    return 0;
}

static int daemon_open(void *arg, const char *name, fs_branch *b, char *err, size_t errlen)
{
    daemon_ctx *d = arg;
    if (strchr(name, '@')) return daemon_open_past(d, name, b, err, errlen);
    store **st = &b->st;
    char dir[4200];
    struct stat sb;
    snprintf(dir, sizeof dir, "%s/%s", d->m->state_dir, name);
    int existed = stat(dir, &sb) == 0;
    store_config sc = { .os = d->os, .branch = name, .state_dir = dir, .memtable_limit = d->m->memtable_size,
                        .takeover = d->m->takeover && !strcmp(name, d->m->branch),
                        .durability_remote = d->m->durability_remote, .control_path = d->control_path,
                        .compaction_off = d->m->compaction_off };
    int rc = store_open(&sc, st, err, errlen);
    if (rc == -ENOENT && !existed) {  /* no such branch: leave no state behind */
        char lock[4300];
        snprintf(lock, sizeof lock, "%s/lock", dir);
        unlink(lock);
        rmdir(dir);
    }
    if (rc) return rc;
    if ((rc = store_start(*st))) {
        snprintf(err, errlen, "cannot start the flusher of branch %s: %s", name, strerror(-rc));
        store_close(*st);
        return rc;
    }
    b->archive = *st;
    b->archive_end = UINT64_MAX;
    fprintf(stderr, "lakefs: serving branch %s (state in %s)\n", name, dir);
    return 0;
}

static int daemon_close(void *arg, const char *name, fs_branch *b)
{
    daemon_ctx *d = arg;
    if (b->archive != b->st) {    /* a time-travel view: nothing to flush */
        store_close(b->archive);
        store_close(b->st);
        fprintf(stderr, "lakefs: %s closed, its changes dropped\n", name);
        return 0;
    }
    int rc = store_close(b->st);
    if (rc)
        fprintf(stderr, "lakefs: flushing branch %s failed: %s; the journal in %s/%s keeps the data\n",
                name, strerror(-rc), d->m->state_dir, name);
    else
        fprintf(stderr, "lakefs: branch %s flushed and closed\n", name);
    return rc;
}

static int daemon_list(void *arg, char ***names, size_t *n)
{
    daemon_ctx *d = arg;
    int rc = branch_names(d->os, names, n);
    if (rc) fprintf(stderr, "lakefs: cannot list the branches of %s: %s\n", d->m->url, strerror(-rc));
    return rc;
}

static int daemon_checkpoint(void *arg, const char *branch, uint64_t *seq, uint64_t *gen)
{
    return fs_checkpoint(((daemon_ctx *)arg)->fs, branch, seq, gen);
}

static int daemon_release(void *arg, const char *branch)
{
    return fs_release_branch(((daemon_ctx *)arg)->fs, branch);
}

static int daemon_stats(void *arg, const char *branch, store_stats *s)
{
    return fs_stats(((daemon_ctx *)arg)->fs, branch, s);
}

/* At unmount: upload, read-ahead and disk cache counters to the log (and
 * the cache's to STATE_DIR/stats). */
static void log_counters(const mount_opts *m, objstore *os, objcache *cache)
{
    int rc;
    os_counters oc;
    os_get_counters(os, &oc);
    fprintf(stderr, "lakefs: object store: %llu bytes uploaded in %llu objects\n",
            (unsigned long long)oc.put_bytes, (unsigned long long)oc.puts);
    layer_ra_counters ra;
    layer_readahead_stats(&ra);
    fprintf(stderr, "lakefs: read-ahead: %llu blocks prefetched, %llu of them read\n",
            (unsigned long long)ra.prefetched, (unsigned long long)ra.hits);
    /* --- disk cache: counters to the log and to STATE_DIR/stats --- */
    if (cache) {
        objcache_counters cs;
        objcache_stats(cache, &cs);
        fprintf(stderr, "lakefs: cache: %llu hits, %llu misses, %llu bytes downloaded\n",
                (unsigned long long)cs.hits, (unsigned long long)cs.misses, (unsigned long long)cs.downloaded);
        char stats[4300];
        snprintf(stats, sizeof stats, "%s/stats", m->state_dir);
        if ((rc = objcache_write_stats(cache, stats)))
            fprintf(stderr, "lakefs: cannot write %s: %s\n", stats, strerror(-rc));
    }
    /* --- end disk cache --- */
}

/* The daemon's periodic work, on a thread of its own: garbage collection
 * (lakefs gc with the repository's retention), each run first trimming the
 * WAL archives of the branches it serves to the same window; and closing
 * the time-travel views left unused (fs_close_idle_views), which frees
 * what the servers on them wrote. */
typedef struct gc_timer {
    objstore *os;
    fs_mount *fs;                 /* the branches served */
    int64_t retention_s;          /* the window of the run going on */
    int64_t interval_s;           /* between gc runs (0: none) */
    int64_t view_idle_s;          /* close views unused this long (0: never) */
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;            /* signalled to stop */
    int stop;
} gc_timer;

/* fs_foreach_branch callback: trim branch NAME's WAL archive (store ST)
 * to what time travel within the window of gc_timer ARG can need. */
static int gc_trim_wal(void *arg, const char *name, store *st)
{
    gc_timer *t = arg;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    uint64_t redo, segments;
    int rc = pg_target_horizon(t->os, name, t->retention_s, (int64_t)now.tv_sec * 1000000 + now.tv_nsec / 1000, &redo);
    if (rc == -ENOENT) return 0;  /* no PostgreSQL checkpoint in it yet */
    if (!rc) rc = pg_archive_trim(st, redo, &segments);
    char lsn[PG_LSN_LEN];
    pg_wal_lsn_format(redo, lsn, sizeof lsn);
    if (rc)
        fprintf(stderr, "lakefs: branch %s: cannot trim its WAL archive: %s (retried at the next gc)\n", name,
                strerror(-rc));
    else if (segments)
        fprintf(stderr, "lakefs: branch %s: WAL archive trimmed: %" PRIu64 " segments before the redo point %s "
                "of the retention window removed\n", name, segments, lsn);
    return 0;                     /* the other branches still get theirs */
}

static void *gc_timer_main(void *arg)
{
    gc_timer *t = arg;
    /* wake for the views often enough to close one within 1.5 x view_idle */
    int64_t tick = t->interval_s > 0 ? t->interval_s : INT32_MAX;
    if (t->view_idle_s > 0) {
        int64_t half = t->view_idle_s / 2 ? t->view_idle_s / 2 : 1;
        if (half < tick) tick = half;
        if (tick > 10) tick = 10;
    }
    struct timespec start;
    clock_gettime(CLOCK_REALTIME, &start);
    int64_t next_gc = start.tv_sec + t->interval_s;
    pthread_mutex_lock(&t->mu);
    while (!t->stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += tick;
        while (!t->stop && pthread_cond_timedwait(&t->cv, &t->mu, &ts) != ETIMEDOUT) {}
        if (t->stop) break;
        pthread_mutex_unlock(&t->mu);
        /* closed views free their overlays: hand that memory back to the
         * system (glibc keeps freed memory for reuse otherwise) */
        if (t->view_idle_s > 0 && fs_close_idle_views(t->fs, t->view_idle_s * 1000000000) > 0) malloc_trim(0);
        clock_gettime(CLOCK_REALTIME, &ts);
        if (t->interval_s <= 0 || ts.tv_sec < next_gc) {
            pthread_mutex_lock(&t->mu);
            continue;
        }
        next_gc = ts.tv_sec + t->interval_s;
        gc_options o = { .retention_s = GC_RETENTION_DEFAULT };
        gc_report r;
        char err[700];
        int rc = gc_retention_get(t->os, &o.retention_s);
        if (!rc) {
            t->retention_s = o.retention_s;
            fs_foreach_branch(t->fs, gc_trim_wal, t);
            rc = gc_run(t->os, &o, &r, err, sizeof err);
        }
        else snprintf(err, sizeof err, "cannot read the retention setting: %s", strerror(-rc));
        if (rc) fprintf(stderr, "lakefs: gc: %s (retried in %" PRId64 " s)\n", err, t->interval_s);
        else if (r.layers_freed || r.gens_freed)
            fprintf(stderr, "lakefs: gc: freed %" PRIu64 " layers (%" PRIu64 " bytes) and %" PRIu64 " manifests\n",
                    r.layers_freed, r.bytes_freed, r.gens_freed);
        pthread_mutex_lock(&t->mu);
    }
    pthread_mutex_unlock(&t->mu);
    return NULL;
}

/* Start T's thread unless it has nothing to do; 1 if started. */
static int gc_timer_start(gc_timer *t)
{
    if (t->interval_s <= 0 && t->view_idle_s <= 0) return 0;
    pthread_mutex_init(&t->mu, NULL);
    pthread_cond_init(&t->cv, NULL);
    if (pthread_create(&t->thread, NULL, gc_timer_main, t)) {
        fprintf(stderr, "lakefs: cannot start periodic gc; run lakefs gc yourself\n");
        pthread_mutex_destroy(&t->mu);
        pthread_cond_destroy(&t->cv);
        return 0;
    }
    return 1;
}

/* Stop T's thread (waits for a run in progress). */
static void gc_timer_stop(gc_timer *t)
{
    pthread_mutex_lock(&t->mu);
    t->stop = 1;
    pthread_cond_signal(&t->cv);
    pthread_mutex_unlock(&t->mu);
    pthread_join(t->thread, NULL);
    pthread_mutex_destroy(&t->mu);
    pthread_cond_destroy(&t->cv);
}

static int cmd_mount(int argc, char **argv)
{
    mount_opts m = { .readahead = -1, .retention_s = -1, .gc_interval_s = 3600, .view_idle_s = 60 };
    int rc = 0, status = 1;
    char *positional[2];
    int npos = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { fputs(usage_mount, stdout); status = 0; goto out; }
        else if (!strcmp(a, "-f")) m.foreground = 1;
        else if (!strcmp(a, "-d")) m.foreground = m.debug = 1;
        else if (!strcmp(a, "-o") || !strncmp(a, "-o", 2)) {
            char *list = a[2] ? strdup(a + 2) : (i + 1 < argc ? strdup(argv[++i]) : NULL);
            if (!list) { fputs(usage_mount, stderr); status = 2; goto out; }
            rc = parse_mount_opts(&m, list);
            free(list);
            if (rc) { status = rc; goto out; }
        } else if (a[0] == '-') {
            fail("unknown flag '%s' (see lakefs mount --help)", a);
            status = 2;
            goto out;
        } else if (npos < 2) {
            positional[npos++] = argv[i];
        } else {
            fputs(usage_mount, stderr);
            status = 2;
            goto out;
        }
    }
    if (npos != 2) { fputs(usage_mount, stderr); status = 2; goto out; }
    m.url = strdup(positional[0]);
    char *hash = strchr(m.url, '#');
    if (hash) {
        *hash = 0;
        free(m.branch);
        m.branch = strdup(hash + 1);
        m.branch_root = 1;
    }
    if (!m.branch) m.branch = strdup("main");
    if (!branch_name_valid(m.branch)) {
        fail("invalid branch name '%s': use 1-63 characters of A-Z a-z 0-9 . _ - not starting with . or -", m.branch);
        goto out;
    }
    if (m.at) {                   /* serve the view BRANCH@TARGET at DIR; the kernel mount stays writable */
        if (!m.branch_root) { fail("-o lsn= and -o time= show one branch's past: mount URL#BRANCH"); goto out; }
        pg_target t;
        char text[PG_TARGET_TEXT], view[BRANCH_NAME_MAX + PG_TARGET_TEXT + 2];
        pg_target_parse(m.at, &t);
        pg_target_format(&t, text, sizeof text);
        snprintf(view, sizeof view, "%s@%s", m.branch, text);
        free(m.branch);
        m.branch = strdup(view);
    } else if (m.ro && add_fuse_opt(&m, "ro")) {
        fail("mount options too long");
        goto out;
    }
    m.mountpoint = realpath(positional[1], NULL);
    if (!m.mountpoint) { fail("mount point %s: %s; create an empty directory first", positional[1], strerror(errno)); goto out; }
    if (check_mountpoint(m.mountpoint)) goto out;
    objstore *os;
    if (open_repo_settings(m.url, &os, m.retention_s < 0 ? &m.retention_s : NULL)) goto out;
    if (!m.state_dir) {
        char dir[4096];
        const char *home = getenv("HOME");
        if (geteuid() == 0 || !home) snprintf(dir, sizeof dir, "/var/lib/lakefs/%016" PRIx64, fnv1a(FNV1A_INIT, m.url, strlen(m.url)));
        else snprintf(dir, sizeof dir, "%s/.local/state/lakefs/%016" PRIx64, home, fnv1a(FNV1A_INIT, m.url, strlen(m.url)));
        m.state_dir = strdup(dir);
    }
    daemon_ctx d = { .m = &m };
    char err[512];
    /* the daemon's pid names its socket: check the longest one fits */
    snprintf(d.control_path, sizeof d.control_path, "%s/control.%d", m.state_dir, 4194304);
    if (control_path_ok(d.control_path, err, sizeof err)) { fail("%s", err); os_close(os); goto out; }
    if ((rc = mkdirs(m.state_dir, 0700))) {
        fail("cannot create state directory %s: %s", m.state_dir, strerror(-rc));
        os_close(os);
        goto out;
    }
    if (!m.log) {
        char path[4200];
        snprintf(path, sizeof path, "%s/lakefs.log", m.state_dir);
        m.log = strdup(path);
    }
    int report[2] = { -1, -1 };
    if (!m.foreground) {
        if (pipe(report) < 0) { fail("pipe: %s", strerror(errno)); os_close(os); goto out; }
        pid_t pid = fork();
        if (pid < 0) { fail("fork: %s", strerror(errno)); os_close(os); goto out; }
        if (pid > 0) {            /* parent: wait for the child's verdict */
            close(report[1]);
            char ok;
            ssize_t n = read(report[0], &ok, 1);
            close(report[0]);
            os_close(os);
            if (n == 1 && ok == 0) status = 0;
            goto out;
        }
        close(report[0]);
        setsid();
    }
    /* --- disk cache (store/objcache.c): for every non-file:// URL, and for
     * file:// when cache_dir is given; a default one that fails is skipped --- */
    objcache *cache = NULL;
    char cache_dir[4200];
    if (m.cache_dir) snprintf(cache_dir, sizeof cache_dir, "%s", m.cache_dir);
    else snprintf(cache_dir, sizeof cache_dir, "%s/cache", m.state_dir);
    if (m.cache_dir || strncmp(m.url, "file://", 7)) {
        mkdirs(cache_dir, 0700);  /* parents; objcache_open reports any failure */
        if (objcache_open(os, cache_dir, m.cache_size ? m.cache_size : (size_t)1 << 30, &cache, err, sizeof err)) {
            if (m.cache_dir) { fail("%s", err); os_close(os); goto out; }
            fprintf(stderr, "lakefs: %s; mounting without a disk cache\n", err);
        }
    }
    /* --- end disk cache --- */
    control_sweep(m.state_dir);
    snprintf(d.control_path, sizeof d.control_path, "%s/control.%ld", m.state_dir, (long)getpid());
    if (m.readahead >= 0) layer_readahead_set((size_t)m.readahead);
    d.os = cache ? objcache_store(cache) : os;
    d.cache = cache;
    fs_config fc = { .branch = m.branch_root ? m.branch : NULL, .statfs_path = m.state_dir,
                     .ops = { .arg = &d, .open = daemon_open, .close = daemon_close, .list = daemon_list } };
    control_ops cops = { .arg = &d, .checkpoint = daemon_checkpoint, .release = daemon_release, .stats = daemon_stats };
    control *ctl = NULL;
    int served = 0;
    /* the named branch (main for a repository mount) opens now, so that a
     * mount that cannot serve it fails at once */
    if (fs_new(&fc, &d.fs)) {
        fail("out of memory");
    } else if (fs_open_branch(d.fs, m.branch, err, sizeof err)) {
        fail("%s", err);
    } else if (control_start(d.control_path, &cops, &ctl, err, sizeof err)) {
        fail("%s", err);
    } else {
        gc_timer gt = { .os = d.os, .fs = d.fs, .interval_s = m.gc_interval_s, .view_idle_s = m.view_idle_s };
        int gc_started = gc_timer_start(&gt);
        status = serve(&m, d.fs, cache, report[1]);
        if (gc_started) gc_timer_stop(&gt);
        control_stop(ctl);
        served = 1;
    }
    if (fs_free(d.fs)) status = 1;
    else if (served && status == 0) fprintf(stderr, "lakefs: unmounted %s, everything flushed\n", m.mountpoint);
    if (served) log_counters(&m, d.os, cache);
    objcache_close(cache);
    os_close(os);
out:
    free(m.url); free(m.branch); free(m.at); free(m.mountpoint); free(m.state_dir); free(m.log); free(m.cache_dir);
    return status;
}

/* ---- branch commands ---- */

#define NO_REPO_MSG "no repository: give --repo URL, set LAKEFS_REPO, or run inside a lakefs mount"

/* Undo mountinfo's octal escapes (\040 for a space) of S in place. */
static void unescape_mountinfo(char *s)
{
    char *w = s;
    for (char *r = s; *r; r++, w++) {
        if (r[0] == '\\' && r[1] >= '0' && r[1] <= '3' && r[2] >= '0' && r[2] <= '7' && r[3] >= '0' && r[3] <= '7') {
            *w = (char)((r[1] - '0') * 64 + (r[2] - '0') * 8 + (r[3] - '0'));
            r += 3;
        } else {
            *w = *r;
        }
    }
    *w = 0;
}

/* The repository URL of the lakefs mount holding the current directory
 * into URL; prints the error (NO_REPO_MSG when there is none). */
static int repo_from_mount(char *url, size_t len)
{
    char cwd[4096], line[8192], best_src[4096] = "", best_mp[4096] = "";
    size_t best = 0;
    int best_lakefs = 0;
    if (!getcwd(cwd, sizeof cwd)) return fail(NO_REPO_MSG);
    FILE *f = fopen("/proc/self/mountinfo", "r");
    if (!f)
        return fail("cannot read /proc/self/mountinfo to find the lakefs mount holding the current directory (%s): "
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
        unescape_mountinfo(fld[4]);
        size_t ml = strlen(fld[4]);
        int holds = !strcmp(fld[4], "/") || (!strncmp(cwd, fld[4], ml) && (cwd[ml] == '/' || !cwd[ml]));
        if (!holds || ml < best) continue;    /* equal length: a later mount covers an earlier one */
        best = ml;
        best_lakefs = !strcmp(fstype, "fuse.lakefs");
        unescape_mountinfo(src);
        snprintf(best_src, sizeof best_src, "%s", src);
        snprintf(best_mp, sizeof best_mp, "%s", fld[4]);
    }
    fclose(f);
    if (!best_lakefs) return fail(NO_REPO_MSG);
    if (!strstr(best_src, "://"))
        return fail("the lakefs mount at %s names no repository URL (mounted with -o fsname=%s): give --repo URL or set LAKEFS_REPO",
                    best_mp, best_src);
    snprintf(url, len, "%s", best_src);
    return 0;
}

typedef struct branch_args {
    const char *repo, *from, *at;
    const char *at_xid, *at_restore_point;  /* branch create: points named by a record */
    const char *retention;        /* gc --retention */
    int force, dry_run, repair;
    const char *pos[3];           /* positionals after the subcommand */
    int npos;
} branch_args;

/* Open the repository of A (see repo_from_mount); prints the error. */
static int branch_open_repo(const branch_args *a, objstore **os)
{
    char url[4096];
    const char *env = getenv("LAKEFS_REPO");
    if (a->repo) snprintf(url, sizeof url, "%s", a->repo);
    else if (env && *env) snprintf(url, sizeof url, "%s", env);
    else if (repo_from_mount(url, sizeof url)) return 1;
    return open_repo(url, os);
}

/* Check that NAME (the WHAT of the command) is a valid branch name. */
static int check_name(const char *what, const char *name)
{
    if (branch_name_valid(name)) return 0;
    return fail("invalid %s name '%s': use 1-63 characters of A-Z a-z 0-9 . _ - not starting with . or - "
                "(no @, no /); nothing changed", what, name);
}

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
    return branch_checkpoint(os, parent, gen, seq, err, sizeof err) ? fail("%s", err) : 0;
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
        return fail("branch '%s': cannot load generation %" PRIu64 " of its parent '%s' (its branch point): %s",
                    b->name, b->meta.parent_gen, b->meta.parent, strerror(-rc));
    rc = pg_wal_pos_at(os, &m, &pos);
    manifest_free(&m);
    if (rc == -ENOENT) return 0;
    if (rc)
        return fail("branch '%s': cannot read the WAL position at its branch point (generation %" PRIu64 " of '%s'): %s",
                    b->name, b->meta.parent_gen, b->meta.parent, strerror(-rc));
    pg_wal_lsn_format(pos.lsn, buf, PG_LSN_LEN);
    return 0;
}

/* past_resolve, printing the error. */
static int resolve_target(objstore *os, const char *branch, const char *text, pg_target *t, pg_base *base,
                          store **archive, uint64_t *cut)
{
    char err[700];
    uint64_t gen;
    int64_t retention;
    int rc = gc_retention_get(os, &retention);
    if (rc) return fail("cannot read the retention setting of %s: %s", os_url(os), strerror(-rc));
    return past_resolve(os, branch, text, retention, t, base, &gen, archive, cut, err, sizeof err)
           ? fail("%s", err) : 0;
}

/* The LSN where the state at target T ends, cut CUT of the archive in
 * ARCHIVE with base B: the cut, or (no cut) the end of the WAL's last
 * record.  Prints the error. */
static int target_end(const char *branch, store *archive, const pg_target *t, const pg_base *b, uint64_t cut,
                      uint64_t *lsn)
{
    pg_wal_pos pos;
    pg_walscan_result r;
    pg_archive ar = { archive, UINT64_MAX };
    *lsn = cut;
    if (cut != UINT64_MAX) return 0;
    int rc = pg_wal_pos_get(archive, &pos);   /* no later commit: up to the WAL's last record */
    if (!rc) rc = pg_walscan_time(&ar, pos.tli, b->checkpoint, t->is_time ? t->time_us : INT64_MAX, &r);
    if (rc) return fail("branch '%s': cannot read its WAL archive: %s", branch, strerror(-rc));
    *lsn = r.end;
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
 * restore point NAME, in BRANCH's WAL within reach, as text into BUF
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
            return fail("--at-xid: '%s' is not a transaction id (a number from txid_current() or pg_current_xact_id(), "
                        "below 2^32)", xid_text);
        rt.xid = (uint32_t)v;
    } else if (strlen(name) >= 64) {
        return fail("--at-restore-point: '%s' is longer than PostgreSQL's 63-byte restore point names", name);
    }
    pg_wal_pos oldest;
    int rc = pg_target_oldest(os, branch, &oldest);
    if (rc) return fail(rc == -ENOENT ? "branch '%s' has no PostgreSQL WAL (or does not exist; see lakefs branch list)"
                        : "branch '%s': cannot read its history: %s", branch, strerror(-rc));
    char text[PG_LSN_LEN];
    pg_target t;
    pg_base base;
    store *archive;
    uint64_t cut, end;
    pg_wal_lsn_format(oldest.lsn, text, sizeof text);
    if (resolve_target(os, branch, text, &t, &base, &archive, &cut)) return 1;
    pg_wal_pos pos;
    pg_archive ar = { archive, UINT64_MAX };
    rc = pg_wal_pos_get(archive, &pos);   /* the whole WAL within reach, from its oldest checkpoint */
    if (!rc) rc = pg_walscan(&ar, pos.tli, base.checkpoint, record_found, &rt, &end);
    store_close(archive);
    if (rc < 0) return fail("branch '%s': cannot read its WAL archive: %s", branch, strerror(-rc));
    if (!rt.lsn) {
        if (name) return fail("branch '%s' has no restore point '%s' in its WAL within reach (from LSN %s on)", branch, name, text);
        return fail("branch '%s' has no commit or abort of transaction %" PRIu32 " in its WAL within reach (from LSN %s on)",
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
    if (!mkdtemp(dir)) return fail("cannot create a scratch state directory in /tmp: %s", strerror(errno));
    store_config sc = { .os = os, .branch = name, .state_dir = dir };
    store *st;
    int rc = store_open(&sc, &st, err, sizeof err);
    if (rc) {
        fail("%s", err);
    } else {
        pg_archive a = { archive, cut };
        if ((rc = pg_archive_copy(&a, from, st)))
            fail("branch '%s': cannot copy the WAL it recovers through: %s", name, strerror(-rc));
        else if ((rc = fs_add_recovery(st, 1)))
            fail("branch '%s': cannot write its recovery settings: %s", name, strerror(-rc));
        int crc = store_close(st);
        if (crc && !rc) rc = fail("branch '%s': cannot flush its first state: %s", name, strerror(-crc));
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
static int branch_create_at(const branch_args *a, objstore *os)
{
    const char *name = a->pos[0], *at = a->at;
    char lsn_text[PG_LSN_LEN];
    if ((!!a->at + !!a->at_xid + !!a->at_restore_point) > 1)
        return usage_fail("branch create: give one of --at, --at-xid and --at-restore-point");
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
    int rc = resolve_target(os, a->from, at, &t, &base, &archive, &cut);
    if (!rc) rc = target_end(a->from, archive, &t, &base, cut, &point);
    if (!rc && branch_fork_at(os, name, base.branch, base.gen, point, &meta, err, sizeof err)) rc = fail("%s", err);
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

static int branch_create(const branch_args *a)
{
    if (a->npos != 1) return usage_fail("branch create: want one NAME (usage: lakefs branch create NAME --from PARENT)");
    if (!a->from) return usage_fail("branch create: --from PARENT is missing (usage: lakefs branch create NAME --from PARENT)");
    const char *name = a->pos[0];
    if (check_name("branch", name) || check_name("parent branch", a->from)) return 1;
    objstore *os;
    if (branch_open_repo(a, &os)) return 1;
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
    if (!rc && branch_fork(os, name, a->from, gen, &meta, err, sizeof err)) rc = fail("%s", err);
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

/* Format T (seconds since the epoch) as UTC into BUF, "-" for none. */
static void fmt_utc(int64_t t, char *buf, size_t len)
{
    struct tm tm;
    time_t tt = (time_t)t;
    if (t <= 0 || !gmtime_r(&tt, &tm) || !strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm)) snprintf(buf, len, "-");
}

static int branch_list_cmd(const branch_args *a)
{
    if (a->npos) return usage_fail("branch list takes no arguments (usage: lakefs branch list [--repo URL])");
    objstore *os;
    if (branch_open_repo(a, &os)) return 1;
    branch_info *b;
    size_t n;
    char err[600];
    int rc = branch_list(os, &b, &n, err, sizeof err);
    if (rc) { os_close(os); return fail("%s", err); }
    char (*lsn)[PG_LSN_LEN] = calloc(n ? n : 1, sizeof *lsn);
    if (!lsn) { branch_list_free(b, n); os_close(os); return fail("out of memory"); }
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
        fmt_utc(b[i].has_meta ? b[i].meta.created : 0, when, sizeof when);
        if (b[i].meta.parent[0]) snprintf(point, sizeof point, "%" PRIu64, b[i].meta.point);
        else snprintf(point, sizeof point, "-");
        printf("%-*s  %-*s  %12s  %-*s  %-20s  %14" PRIu64 "\n", w, b[i].name, pw,
               b[i].meta.parent[0] ? b[i].meta.parent : "-", point, lw, lsn[i], when, b[i].unique_bytes);
    }
    free(lsn);
    branch_list_free(b, n);
    return rc;
}

static int branch_show(const branch_args *a)
{
    if (a->npos != 1) return usage_fail("branch show: want one NAME (usage: lakefs branch show NAME)");
    if (check_name("branch", a->pos[0])) return 1;
    objstore *os;
    if (branch_open_repo(a, &os)) return 1;
    branch_info *b;
    size_t n;
    char err[600], when[32], children[1024] = "", lsn[PG_LSN_LEN];
    int rc = branch_list(os, &b, &n, err, sizeof err);
    if (rc) { os_close(os); return fail("%s", err); }
    branch_info *me = NULL;
    for (size_t i = 0; i < n; i++) {
        if (!strcmp(b[i].name, a->pos[0])) me = &b[i];
        if (!strcmp(b[i].meta.parent, a->pos[0])) {
            size_t len = strlen(children);
            snprintf(children + len, sizeof children - len, "%s%s", len ? ", " : "", b[i].name);
        }
    }
    if (!me) {
        rc = fail("no branch '%s' in %s (see lakefs branch list)", a->pos[0], os_url(os));
    } else {
        store_lease l;
        int lrc = store_lease_read(os, me->name, &l);
        rc = point_lsn(os, me, lsn);
        fmt_utc(me->has_meta ? me->meta.created : 0, when, sizeof when);
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
    store_lease l;
    int rc = local_lease(os, name, &l, err, errlen);
    if (rc) return rc == -ENOENT ? 0 : rc;
    if (!l.alive || !l.control[0]) return 0;
    if ((rc = control_release(l.control, name, why, sizeof why)) && rc != -ENOENT && rc != -ECONNREFUSED) {
        snprintf(err, errlen, "branch '%s': %s", name, why);
        return rc;
    }
    return 0;
}

static int branch_delete_cmd(const branch_args *a)
{
    if (a->npos != 1) return usage_fail("branch delete: want one NAME (usage: lakefs branch delete NAME)");
    if (check_name("branch", a->pos[0])) return 1;
    objstore *os;
    if (branch_open_repo(a, &os)) return 1;
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
    if (rc) return fail("%s", err);
    printf("Deleted branch %s (%" PRIu64 " bytes of layers only it used)\n", a->pos[0], freed);
    return 0;
}

static int branch_rename_cmd(const branch_args *a)
{
    if (a->npos != 2) return usage_fail("branch rename: want OLD and NEW (usage: lakefs branch rename OLD NEW)");
    if (check_name("branch", a->pos[0]) || check_name("new branch", a->pos[1])) return 1;
    objstore *os;
    if (branch_open_repo(a, &os)) return 1;
    char err[600];
    int rc = branch_rename(os, a->pos[0], a->pos[1], err, sizeof err);
    os_close(os);
    if (rc) return fail("%s", err);
    printf("Renamed branch %s to %s\n", a->pos[0], a->pos[1]);
    return 0;
}

/* Parse the arguments of COMMAND (argv[0]): flags into A, the first
 * positional into *SUB (NULL: none), the rest into a->pos.  -1 to go on,
 * else the exit status (--help printed USAGE, or a usage error). */
static int parse_args(const char *command, int argc, char **argv, const char *usage, branch_args *a, const char **sub)
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
            else return usage_fail("%s: %s needs a value (see lakefs %s --help)", command, flags[f], command);
            if (!**vals[f]) return usage_fail("%s: %s needs a non-empty value", command, flags[f]);
        }
        if (known) continue;
        if (arg[0] == '-' && arg[1])
            return usage_fail("%s: unknown flag '%s' (a branch name cannot start with '-'; see lakefs %s --help)",
                              command, arg, command);
        if (!*sub) *sub = arg;
        else if (a->npos < 3) a->pos[a->npos++] = arg;
        else return usage_fail("%s %s: too many arguments (see lakefs %s --help)", command, *sub, command);
    }
    return -1;
}

static int cmd_branch(int argc, char **argv)
{
    static const struct { const char *name; int (*fn)(const branch_args *); } subs[] = {
        { "create", branch_create }, { "list", branch_list_cmd }, { "show", branch_show },
        { "delete", branch_delete_cmd }, { "rename", branch_rename_cmd },
    };
    branch_args a = { 0 };
    const char *sub;
    int rc = parse_args("branch", argc, argv, usage_branch, &a, &sub);
    if (rc >= 0) return rc;
    if (!sub) { fputs(usage_branch, stderr); return 2; }
    for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++)
        if (!strcmp(sub, subs[i].name)) return subs[i].fn(&a);
    return usage_fail("branch: unknown subcommand '%s': use create, list, show, delete or rename", sub);
}

static int cmd_lsn(int argc, char **argv)
{
    branch_args a = { 0 };
    const char *name;
    int rc = parse_args("lsn", argc, argv, usage_lsn, &a, &name);
    if (rc >= 0) return rc;
    if (!name || a.npos || a.from) return usage_fail("lsn: usage: lakefs lsn BRANCH --at TIME [--repo URL]");
    if (!a.at) return usage_fail("lsn: --at TIME is missing (usage: lakefs lsn BRANCH --at TIME [--repo URL])");
    if (check_name("branch", name)) return 1;
    objstore *os;
    if (branch_open_repo(&a, &os)) return 1;
    pg_target t;
    pg_base base;
    store *archive;
    uint64_t cut;
    rc = resolve_target(os, name, a.at, &t, &base, &archive, &cut);
    if (!rc) rc = target_end(name, archive, &t, &base, cut, &cut);
    if (archive) store_close(archive);
    os_close(os);
    if (rc) return rc;
    char lsn[PG_LSN_LEN];
    pg_wal_lsn_format(cut, lsn, sizeof lsn);
    printf("%s\n", lsn);
    return 0;
}

typedef struct log_event {
    uint64_t lsn;
    int64_t time_s;
    char what[160];
} log_event;

typedef struct log_ctx {
    log_event *e;
    size_t n, cap;
} log_ctx;

/* Add an event to L; -ENOMEM. */
static int log_add(log_ctx *l, uint64_t lsn, int64_t time_s, const char *what)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        log_event *ne = realloc(l->e, cap * sizeof *ne);
        if (!ne) return -ENOMEM;
        l->e = ne; l->cap = cap;
    }
    log_event *e = &l->e[l->n++];
    e->lsn = lsn; e->time_s = time_s;
    snprintf(e->what, sizeof e->what, "%s", what);
    return 0;
}

/* pg_walscan callback: checkpoints into the log. */
static int log_record(void *arg, const pg_walrec *r)
{
    uint64_t redo;
    int64_t when;
    int shutdown;
    if (!pg_walrec_checkpoint(r, &redo, &when, &shutdown)) return 0;
    char what[80], lsn[PG_LSN_LEN];
    pg_wal_lsn_format(redo, lsn, sizeof lsn);
    snprintf(what, sizeof what, "%scheckpoint (redo %s)", shutdown ? "shutdown " : "", lsn);
    return log_add(arg, r->lsn, when, what);
}

static int log_cmp(const void *a, const void *b)
{
    const log_event *x = a, *y = b;
    return x->lsn < y->lsn ? -1 : x->lsn > y->lsn;
}

static int cmd_log(int argc, char **argv)
{
    branch_args a = { 0 };
    const char *name;
    int rc = parse_args("log", argc, argv, usage_log, &a, &name);
    if (rc >= 0) return rc;
    if (!name || a.npos || a.from || a.at) return usage_fail("log: usage: lakefs log BRANCH [--repo URL]");
    if (check_name("branch", name)) return 1;
    objstore *os;
    if (branch_open_repo(&a, &os)) return 1;
    pg_wal_pos oldest;
    char text[PG_TARGET_TEXT];
    if ((rc = pg_target_oldest(os, name, &oldest))) {
        os_close(os);
        return fail(rc == -ENOENT ? "branch '%s' has no PostgreSQL WAL (or does not exist; see lakefs branch list)"
                    : "branch '%s': cannot read its history: %s", name, strerror(-rc));
    }
    snprintf(text, sizeof text, "%" PRIX32 "/%" PRIX32, (uint32_t)(oldest.lsn >> 32), (uint32_t)oldest.lsn);
    pg_target t;
    pg_base base;
    store *archive;
    uint64_t cut;
    log_ctx l = { 0 };
    rc = resolve_target(os, name, text, &t, &base, &archive, &cut);
    if (!rc) {                    /* PostgreSQL's checkpoints, from the oldest reachable one on */
        pg_wal_pos pos;
        uint64_t end;
        pg_archive ar = { archive, UINT64_MAX };
        int src = pg_wal_pos_get(archive, &pos);
        if (!src) src = pg_walscan(&ar, pos.tli, base.checkpoint, log_record, &l, &end);
        if (src) rc = fail("branch '%s': cannot read its WAL archive: %s", name, strerror(-src));
        store_close(archive);
    }
    branch_info *b = NULL;
    size_t n = 0;
    char err[600];
    if (!rc && branch_list(os, &b, &n, err, sizeof err)) rc = fail("%s", err);
    for (size_t i = 0; !rc && i < n; i++) {   /* branch points: of NAME itself, and of its children */
        int child = !strcmp(b[i].meta.parent, name);
        if (!child && strcmp(b[i].name, name)) continue;
        if (!b[i].meta.parent[0]) continue;
        manifest m;
        pg_wal_pos p = { .lsn = b[i].meta.at_lsn };
        if (!p.lsn) {
            if (manifest_load(os, b[i].meta.parent, b[i].meta.parent_gen, &m)) continue;
            int prc = pg_wal_pos_at(os, &m, &p);
            manifest_free(&m);
            if (prc) continue;
        }
        char what[160];
        if (child) snprintf(what, sizeof what, "branch %s created here", b[i].name);
        else snprintf(what, sizeof what, "created from %s", b[i].meta.parent);
        if (log_add(&l, p.lsn, b[i].meta.created, what)) rc = fail("out of memory");
    }
    branch_list_free(b, n);
    os_close(os);
    if (!rc) {
        qsort(l.e, l.n, sizeof *l.e, log_cmp);
        printf("%-20s  %-12s  %s\n", "TIME", "LSN", "EVENT");
        for (size_t i = 0; i < l.n; i++) {
            char when[32], lsn[PG_LSN_LEN];
            fmt_utc(l.e[i].time_s, when, sizeof when);
            pg_wal_lsn_format(l.e[i].lsn, lsn, sizeof lsn);
            printf("%-20s  %-12s  %s\n", when, lsn, l.e[i].what);
        }
    }
    free(l.e);
    return rc;
}

static int cmd_gc(int argc, char **argv)
{
    branch_args a = { 0 };
    const char *url;
    int rc = parse_args("gc", argc, argv, usage_gc, &a, &url);
    if (rc >= 0) return rc;
    if (a.npos || a.from || a.at || a.at_xid || a.at_restore_point || a.force || a.repair)
        return usage_fail("gc: usage: lakefs gc [URL] [--dry-run] [--retention DURATION]");
    if (url && a.repo) return usage_fail("gc: give the repository once (URL or --repo)");
    if (url) a.repo = url;
    gc_options o = { .dry_run = a.dry_run, .out = stdout };
    if (a.retention && parse_duration_or_zero(a.retention, &o.retention_s))
        return usage_fail("gc: bad retention '%s': use a duration like 7d, 12h or 5min, or 0", a.retention);
    objstore *os;
    if (branch_open_repo(&a, &os)) return 1;
    if (!a.retention && (rc = gc_retention_get(os, &o.retention_s))) {
        fail("cannot read the retention setting of %s: %s", os_url(os), strerror(-rc));
        os_close(os);
        return 1;
    }
    gc_report r;
    char err[700];
    rc = gc_run(os, &o, &r, err, sizeof err);
    os_close(os);
    return rc ? fail("gc: %s", err) : 0;
}

static int cmd_fsck(int argc, char **argv)
{
    branch_args a = { 0 };
    const char *url;
    int rc = parse_args("fsck", argc, argv, usage_fsck, &a, &url);
    if (rc >= 0) return rc;
    if (a.npos || a.from || a.at || a.at_xid || a.at_restore_point || a.force || a.dry_run || a.retention)
        return usage_fail("fsck: usage: lakefs fsck [URL] [--repair]");
    if (url && a.repo) return usage_fail("fsck: give the repository once (URL or --repo)");
    if (url) a.repo = url;
    objstore *os;
    if (branch_open_repo(&a, &os)) return 1;
    fsck_report r;
    char err[700];
    rc = fsck_run(os, a.repair, stdout, &r, err, sizeof err);
    os_close(os);
    if (rc) return fail("fsck: %s", err);
    if (r.damaged) return fail("fsck: %s is damaged: %" PRIu64 " problem%s (listed above)", a.repo ? a.repo : "the repository",
                               r.damaged, r.damaged == 1 ? "" : "s");
    return 0;
}

static int cmd_stats(int argc, char **argv)
{
    branch_args a = { 0 };
    const char *name;
    int rc = parse_args("stats", argc, argv, usage_stats, &a, &name);
    if (rc >= 0) return rc;
    if (!name || a.npos || a.from || a.at || a.at_xid || a.at_restore_point || a.force || a.dry_run || a.retention ||
        a.repair)
        return usage_fail("stats: usage: lakefs stats BRANCH [--repo URL]");
    if (check_name("branch", name)) return 1;
    objstore *os;
    if (branch_open_repo(&a, &os)) return 1;
    store_lease l;
    store_stats s;
    char err[700], cerr[600];
    rc = local_lease(os, name, &l, err, sizeof err);
    os_close(os);
    if (rc == -ENOENT || (!rc && !l.alive))
        return fail("branch '%s' is not mounted by a daemon on this machine; stats are kept by the daemon serving it",
                    name);
    if (rc) return fail("%s", err);
    if (!l.control[0])
        return fail("the lakefs daemon mounting branch '%s' (pid %ld) has no control socket (an older lakefs)", name,
                    l.pid);
    if (control_stats(l.control, name, &s, cerr, sizeof cerr)) return fail("branch '%s': %s", name, cerr);
    printf("reads %" PRIu64 "\nprobes %" PRIu64 "\nprobes_max %" PRIu64 "\nover_bound %" PRIu64 "\nbound %" PRIu64
           "\nlayers %" PRIu64 "\nflushes %" PRIu64 "\ncompactions %" PRIu64 "\nseq %" PRIu64 "\ngen %" PRIu64 "\n",
           s.reads, s.probes, s.probes_max, s.over_bound, s.bound, s.layers, s.flushes, s.compactions, s.seq,
           s.manifest_gen);
    return 0;
}

static int cmd_config(int argc, char **argv)
{
    branch_args a = { 0 };
    const char *sub;
    int rc = parse_args("config", argc, argv, usage_config, &a, &sub);
    if (rc >= 0) return rc;
    if (!sub || a.from || a.at || a.at_xid || a.at_restore_point || a.force || a.dry_run || a.retention || a.repair) {
        fputs(usage_config, stderr);
        return 2;
    }
    int set = !strcmp(sub, "set");
    if (!set && strcmp(sub, "get"))
        return usage_fail("config: unknown subcommand '%s': use set or get", sub);
    if (set ? a.npos != 1 : a.npos > 1) { fputs(usage_config, stderr); return 2; }
    int64_t secs = 0;
    if (set) {
        if (strncmp(a.pos[0], "retention=", 10))
            return usage_fail("config set: unknown setting '%s': the one setting is retention=DURATION", a.pos[0]);
        if (parse_duration_or_zero(a.pos[0] + 10, &secs))
            return usage_fail("config set: bad retention '%s': use a duration like 7d, 12h or 5min, or 0",
                              a.pos[0] + 10);
    } else if (a.npos && strcmp(a.pos[0], "retention")) {
        return usage_fail("config get: unknown setting '%s': the one setting is retention", a.pos[0]);
    }
    objstore *os;
    if (branch_open_repo(&a, &os)) return 1;
    rc = set ? gc_retention_set(os, secs) : gc_retention_get(os, &secs);
    os_close(os);
    if (rc) return fail("cannot %s the retention setting of the repository: %s", set ? "write" : "read", strerror(-rc));
    if (!set) printf("retention=%" PRId64 "s\n", secs);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) { fputs(usage_main, stderr); return 2; }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) { fputs(usage_main, stdout); return 0; }
    if (!strcmp(cmd, "--version")) { printf("lakefs %s\n", PACKAGE_VERSION); return 0; }
    if (!strcmp(cmd, "init")) return cmd_init(argc - 1, argv + 1);
    if (!strcmp(cmd, "mount")) return cmd_mount(argc - 1, argv + 1);
    if (!strcmp(cmd, "branch")) return cmd_branch(argc - 1, argv + 1);
    if (!strcmp(cmd, "lsn")) return cmd_lsn(argc - 1, argv + 1);
    if (!strcmp(cmd, "log")) return cmd_log(argc - 1, argv + 1);
    if (!strcmp(cmd, "gc")) return cmd_gc(argc - 1, argv + 1);
    if (!strcmp(cmd, "config")) return cmd_config(argc - 1, argv + 1);
    if (!strcmp(cmd, "fsck")) return cmd_fsck(argc - 1, argv + 1);
    if (!strcmp(cmd, "stats")) return cmd_stats(argc - 1, argv + 1);
    if (!strcmp(cmd, "export")) return export_main(argc - 1, argv + 1);
    /* mount(8) convention: lakefs SOURCE MOUNTPOINT [-o OPTS] */
    if (strstr(cmd, "://")) return cmd_mount(argc, argv);
    fail("unknown command '%s' (see lakefs --help)", cmd);
    return 2;
}

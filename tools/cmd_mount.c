/*
 * cmd_mount.c -- `lakefs mount`: the FUSE daemon.  Also what mount(8) runs
 * for `-t fuse.lakefs` (contrib/mount.fuse.lakefs).  Without -f it forks
 * before touching the store, and the parent exits only when the child
 * reports the mount ready (status 0) or failed (its one-line error already
 * printed), so a shell or fstab sees the real outcome; after that the
 * daemon's stderr goes to a log file in its state directory.  The daemon
 * opens branches as fs/ asks for them (daemon_open: a branch's store, or a
 * time-travel view BRANCH@POINT over its past), listens on a control socket
 * (control.h) for checkpoints and counters, and runs garbage collection and
 * the closing of idle views on a timer.
 */
#include "../fs/fs.h"
#include "../fs/fs_count.h"
#include "../fs/pg/pg_archive.h"
#include "../fs/pg/pg_target.h"
#include "../fs/pg/pg_wal.h"
#include "../store/branch.h"
#include "../util/fnv.h"
#include "../repo/gc.h"
#include "../store/layer.h"
#include "../objstore/objcache.h"
#include "../objstore/objstore.h"
#include "../store/store.h"
#include "cli.h"
#include "control.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* STATE_DIR/.overlay.PID.N: where a time-travel view's overlay spills
 * (store_spill); no branch's state directory begins with '.' */
#define OVERLAY_PREFIX ".overlay."

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
    "  -o block_cache=N    bound on the memory cache of decompressed layer blocks\n"
    "                      (default 256M)\n"
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
    "  -o writeback_cache=off  every write goes to the daemon before it returns (default\n"
    "                      on, root only: the kernel caches writes, and a barrier writes\n"
    "                      them back before every branch point and time-travel base;\n"
    "                      WAL always goes straight through)\n"
    "  -o takeover         take the branch over from another daemon (one whose machine is\n"
    "                      gone); that daemon's later writes and fsyncs fail\n"
    "  -o fsname=NAME      name shown in /proc/mounts (default: URL)\n"
    "  kernel flags passed on: rw, dev, nodev, suid, nosuid, exec, noexec, atime, noatime\n"
    "  fstab options accepted and ignored: defaults, _netdev, auto, noauto, nofail,\n"
    "  user, nouser, users, x-*, comment=*\n";

typedef struct mount_opts {
    char *url;                    /* repository URL without #BRANCH */
    char *branch;                 /* branch to serve */
    int branch_root;              /* mount the branch itself at DIR */
    char *mountpoint;
    char *state_dir, *log;
    size_t memtable_size;
    char *cache_dir;              /* -o cache_dir, NULL: default */
    size_t cache_size;            /* -o cache_size, 0: default */
    size_t block_cache;           /* -o block_cache, 0: default */
    long readahead;               /* -o readahead, -1: default */
    int foreground, debug;
    int takeover;                 /* break another daemon's lease on the branch */
    int writeback_cache;          /* -o writeback_cache=on|off (fs/fs_writeback.c) */
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

/* OPT's value VAL, one of the words FIRST and SECOND, into *IS_SECOND
 * (0 / 1); 0, or a usage status naming both. */
static int parse_either(const char *opt, const char *val, const char *first, const char *second, int *is_second)
{
    if (!strcmp(val, first)) *is_second = 0;
    else if (!strcmp(val, second)) *is_second = 1;
    else return cli_fail("bad %s '%s': use %s=%s or %s=%s", opt, val, opt, first, opt, second);
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
            if (!strcmp(opt, passed[i])) { known = 1; if (add_fuse_opt(m, opt)) return cli_fail("mount options too long"); }
        for (int i = 0; ignored[i]; i++) known |= !strcmp(opt, ignored[i]);
        if (!strncmp(opt, "x-", 2) || !strncmp(opt, "comment=", 8)) known = 1;
        if (known) continue;
        if (!strcmp(opt, "takeover")) { m->takeover = 1; continue; }
        if (!strcmp(opt, "ro")) { m->ro = 1; continue; }   /* a time-travel view is read-only by itself */
        if (!strcmp(opt, "path_style")) continue;   /* lakefs always addresses S3 path-style */
        if (!strcmp(opt, "unsafe_no_conditional_put")) {
            if (setenv("LAKEFS_S3_UNSAFE_NO_CONDITIONAL_PUT", "1", 1)) return cli_fail("out of memory");
            continue;
        }
        char *eq = strchr(opt, '=');
        if (!eq) return cli_fail("unknown mount option '%s' (see lakefs mount --help)", opt);
        *eq = 0;
        const char *val = eq + 1;
        if (!strcmp(opt, "branch")) {
            free(m->branch); m->branch = strdup(val); m->branch_root = 1;
        } else if (!strcmp(opt, "state_dir")) {
            if (val[0] != '/') return cli_fail("state_dir must be an absolute path, not '%s'", val);
            free(m->state_dir); m->state_dir = strdup(val);
        } else if (!strcmp(opt, "log")) {
            free(m->log); m->log = strdup(val);
        } else if (!strcmp(opt, "memtable_size")) {
            if (parse_size(val, &m->memtable_size)) return cli_fail("bad memtable_size '%s': use a byte count like 64M", val);
        } else if (!strcmp(opt, "cache_dir")) {
            if (val[0] != '/') return cli_fail("cache_dir must be an absolute path, not '%s'", val);
            free(m->cache_dir); m->cache_dir = strdup(val);
        } else if (!strcmp(opt, "cache_size")) {
            if (parse_size(val, &m->cache_size)) return cli_fail("bad cache_size '%s': use a byte count like 1G", val);
        } else if (!strcmp(opt, "block_cache")) {
            if (parse_size(val, &m->block_cache)) return cli_fail("bad block_cache '%s': use a byte count like 64M", val);
            if (m->block_cache < LAYER_BLOCK_CACHE_MIN)
                return cli_fail("block_cache %s is below 1M, less than a few blocks: give 1M or more", val);
        } else if (!strcmp(opt, "endpoint") || !strcmp(opt, "region")) {
            /* the S3 backend reads them like its AWS_* settings, ahead of those */
            if (!*val) return cli_fail("empty %s: use -o %s=%s", opt, opt, !strcmp(opt, "endpoint") ? "https://HOST[:PORT]" : "NAME");
            if (setenv(!strcmp(opt, "endpoint") ? "LAKEFS_S3_ENDPOINT" : "LAKEFS_S3_REGION", val, 1))
                return cli_fail("out of memory");
        } else if (!strcmp(opt, "lsn") || !strcmp(opt, "time")) {
            pg_target t;
            if (m->at) return cli_fail("give one of -o lsn= and -o time=, once");
            if (pg_target_parse(val, &t) || t.is_time != !strcmp(opt, "time"))
                return cli_fail(!strcmp(opt, "lsn") ? "bad lsn '%s': write an LSN like 0/16B3748"
                            : "bad time '%s': write a moment in ISO 8601 with a zone, like 2026-11-23T10:32:05Z", val);
            m->at = strdup(val);
        } else if (!strcmp(opt, "retention")) {
            if (cli_parse_duration(val, &m->retention_s))
                return cli_fail("bad retention '%s': use a duration like 7d, 12h or 30min", val);
        } else if (!strcmp(opt, "writeback_cache")) {
            int off, rc = parse_either(opt, val, "on", "off", &off);
            if (rc) return rc;
            m->writeback_cache = !off;
        } else if (!strcmp(opt, "compaction")) {
            int rc = parse_either(opt, val, "on", "off", &m->compaction_off);
            if (rc) return rc;
        } else if (!strcmp(opt, "gc_interval")) {
            if (cli_parse_duration_or_zero(val, &m->gc_interval_s))
                return cli_fail("bad gc_interval '%s': use a duration like 1h or 30min, or 0 for never", val);
        } else if (!strcmp(opt, "view_idle")) {
            if (cli_parse_duration_or_zero(val, &m->view_idle_s) || m->view_idle_s > 365 * 86400)
                return cli_fail("bad view_idle '%s': use a duration like 1min or 30s (at most 365d), or 0 for never", val);
        } else if (!strcmp(opt, "durability")) {
            int rc = parse_either(opt, val, "local", "remote", &m->durability_remote);
            if (rc) return rc;
        } else if (!strcmp(opt, "readahead")) {
            char *end;
            errno = 0;
            m->readahead = strtol(val, &end, 10);
            if (errno || end == val || *end || m->readahead < 0 || m->readahead > 1024)
                return cli_fail("bad readahead '%s': use a block count from 0 (off) to 1024", val);
        } else if (!strcmp(opt, "fsname")) {
            char o[600];
            snprintf(o, sizeof o, "fsname=%s", val);
            if (add_fuse_opt(m, o)) return cli_fail("mount options too long");
        } else {
            return cli_fail("unknown mount option '%s' (see lakefs mount --help)", opt);
        }
    }
    return 0;
}

/* Check DIR exists, is a directory and is empty. */
static int check_mountpoint(const char *dir)
{
    struct stat st;
    if (stat(dir, &st) < 0) return cli_fail("mount point %s: %s; create an empty directory first", dir, strerror(errno));
    if (!S_ISDIR(st.st_mode)) return cli_fail("mount point %s is not a directory", dir);
    DIR *d = opendir(dir);
    if (!d) return cli_fail("mount point %s: %s", dir, strerror(errno));
    struct dirent *de;
    int entries = 0;
    while ((de = readdir(d)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) entries++;
    closedir(d);
    if (entries) return cli_fail("mount point %s is not empty; use an empty directory", dir);
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
    if (!se) return cli_fail("cannot start a FUSE session (options: %s)", m->fuse_opts);
    if (fuse_set_signal_handlers(se)) { fuse_session_destroy(se); return cli_fail("cannot install signal handlers"); }
    if (fuse_session_mount(se, m->mountpoint)) {
        fuse_remove_signal_handlers(se);
        fuse_session_destroy(se);
        return cli_fail("cannot mount at %s (is /dev/fuse available and fuse3 installed?)", m->mountpoint);
    }
    char wb_why[300] = "";
    int wb_rc = m->writeback_cache ? fs_writeback_setup(fs, m->mountpoint, wb_why, sizeof wb_why) : 0;
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
    if (wb_why[0])
        fprintf(stderr, "lakefs: %s: %s%s\n", m->mountpoint, wb_rc ? "no writeback cache: " : "", wb_why);
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

/* Remove what daemons that are gone left in STATE_DIR (several daemons
 * may share it): their control sockets control.PID and the overlays of
 * their time-travel views, OVERLAY_PREFIX PID.N (a kill -9 skips
 * store_close, which removes them). */
static void state_sweep(const char *state_dir)
{
    DIR *dir = opendir(state_dir);
    struct dirent *de;
    if (!dir) return;
    while ((de = readdir(dir))) {
        char *end, path[4400];
        int overlay = !strncmp(de->d_name, OVERLAY_PREFIX, strlen(OVERLAY_PREFIX));
        if (!overlay && strncmp(de->d_name, "control.", 8)) continue;
        long pid = strtol(de->d_name + (overlay ? strlen(OVERLAY_PREFIX) : 8), &end, 10);
        if ((overlay ? *end != '.' : *end != 0) || pid <= 0 || kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue;
        snprintf(path, sizeof path, "%s/%s", state_dir, de->d_name);
        int rc = overlay ? os_scratch_remove(path) : unlink(path) < 0 ? -errno : 0;
        if (!rc) fprintf(stderr, "lakefs: removed %s, the %s of a daemon that is gone\n", path,
                         overlay ? "overlay of a time-travel view" : "control socket");
        else fprintf(stderr, "lakefs: cannot remove %s, left by a daemon that is gone: %s\n", path, strerror(-rc));
    }
    closedir(dir);
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
    int rc = cli_past_resolve(d->os, branch, at + 1, d->m->retention_s, &t, &base, &gen, &b->archive, &b->archive_end,
                          err, errlen);
    if (rc) return rc == -ERANGE || rc == -EINVAL ? -ENOENT : rc;   /* no such view */
    static atomic_uint overlays;  /* makes overlay directory names unique in the daemon */
    char spill[4300];
    snprintf(spill, sizeof spill, "%s/" OVERLAY_PREFIX "%ld.%u", d->m->state_dir, (long)getpid(),
             atomic_fetch_add(&overlays, 1));
    if ((rc = store_open_snapshot(d->os, base.branch, base.gen, &b->st, err, errlen)) ||
        (rc = store_spill(b->st, spill, d->m->memtable_size, err, errlen))) {
        if (b->st) store_close(b->st);
        b->st = NULL;
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
        store_stats s;
        store_get_stats(b->st, &s);
        store_close(b->archive);
        store_close(b->st);
        fprintf(stderr, "lakefs: %s closed, its changes (%.1f MiB in memory, %" PRIu64 " layers spilled to disk) "
                "dropped; %" PRIu64 " reads reached its %" PRIu64 " layers, consulting %.2f each (at most %" PRIu64
                ")\n", name, (double)s.memtable_bytes / 1048576.0, s.flushes, s.reads, s.layers,
                s.reads ? (double)s.probes / (double)s.reads : 0.0, s.probes_max);
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
    fs_count_log(stderr);
    layer_ra_counters ra;
    layer_readahead_stats(&ra);
    fprintf(stderr, "lakefs: read-ahead: %llu blocks prefetched, %llu of them read\n",
            (unsigned long long)ra.prefetched, (unsigned long long)ra.hits);
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == 0)
        fprintf(stderr, "lakefs: memory: peak resident %ld MiB\n", ru.ru_maxrss / 1024);
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

/*
 * The daemon's allocations are mostly large and short-lived: a layer
 * being built, a merge's pieces, read-ahead blocks (memtables and a
 * write's pages and batch use pooled chunks, util/chunkpool.h); glibc
 * gives big ones back to the kernel when they are freed (and
 * store_trim the rest after each flush, which keeps the resident memory
 * bounded), so the next ones are faulted in again page by page.  Cost
 * model: a first touch of anonymous memory costs 11.6 us per 4 KiB page on
 * this project's test machine (a PVM guest), 0.25 us per 4 KiB in
 * transparent huge pages; one run of bench.sh's fio took the daemon
 * 406,000 faults, 244,000 with huge pages, and read 30% and wrote 19% more
 * IOPS (medians of 3 alternating runs).  glibc's malloc advises huge pages
 * for its heaps and mappings (madvise: what the usual
 * transparent_hugepage=madvise honours) only when GLIBC_TUNABLES says so at
 * the start of the process, hence the exec.  A GLIBC_TUNABLES that names
 * glibc.malloc.hugetlb already (the user's choice, or this exec's) is left
 * as it is.  Measured again with memtables in chunks of their own (fio,
 * 2 runs each, hugetlb=0 against 1): the flusher's faults 85,000-100,000
 * against 12,500, the compactor's 100,000-139,000 against 56,000-69,000.
 */
void mount_exec_with_thp(char **argv)
{
    static const char tunable[] = "glibc.malloc.hugetlb=1";
    const char *cur = getenv("GLIBC_TUNABLES");
    if (cur && strstr(cur, "glibc.malloc.hugetlb=")) return;
    char *saved = cur ? strdup(cur) : NULL, *v = malloc((cur ? strlen(cur) + 1 : 0) + sizeof tunable);
    if (v && (!cur || saved)) {
        sprintf(v, "%s%s%s", cur ? cur : "", cur && *cur ? ":" : "", tunable);
        if (!setenv("GLIBC_TUNABLES", v, 1)) {
            /* by its path, so that the process keeps its name (the kernel
             * names it after the file executed: "exe" for /proc/self/exe) */
            char self[PATH_MAX];
            ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
            if (n > 0) self[n] = '\0';
            execv(n > 0 && access(self, X_OK) == 0 ? self : "/proc/self/exe", argv);
        }
        if (saved) setenv("GLIBC_TUNABLES", saved, 1);   /* the exec failed: run on as we are */
        else unsetenv("GLIBC_TUNABLES");
    }
    free(v);
    free(saved);
}

int cmd_mount(int argc, char **argv)
{
    mount_opts m = { .readahead = -1, .retention_s = -1, .gc_interval_s = 3600, .view_idle_s = 60, .writeback_cache = 1 };
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
            cli_fail("unknown flag '%s' (see lakefs mount --help)", a);
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
        cli_fail("invalid branch name '%s': use 1-63 characters of A-Z a-z 0-9 . _ - not starting with . or -", m.branch);
        goto out;
    }
    if (m.at) {                   /* serve the view BRANCH@TARGET at DIR; the kernel mount stays writable */
        if (!m.branch_root) { cli_fail("-o lsn= and -o time= show one branch's past: mount URL#BRANCH"); goto out; }
        pg_target t;
        char text[PG_TARGET_TEXT], view[BRANCH_NAME_MAX + PG_TARGET_TEXT + 2];
        pg_target_parse(m.at, &t);
        pg_target_format(&t, text, sizeof text);
        snprintf(view, sizeof view, "%s@%s", m.branch, text);
        free(m.branch);
        m.branch = strdup(view);
    } else if (m.ro && add_fuse_opt(&m, "ro")) {
        cli_fail("mount options too long");
        goto out;
    }
    m.mountpoint = realpath(positional[1], NULL);
    if (!m.mountpoint) { cli_fail("mount point %s: %s; create an empty directory first", positional[1], strerror(errno)); goto out; }
    if (check_mountpoint(m.mountpoint)) goto out;
    objstore *os;
    if (cli_open_repo_settings(m.url, &os, m.retention_s < 0 ? &m.retention_s : NULL)) goto out;
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
    if (control_path_ok(d.control_path, err, sizeof err)) { cli_fail("%s", err); os_close(os); goto out; }
    if ((rc = cli_mkdirs(m.state_dir, 0700))) {
        cli_fail("cannot create state directory %s: %s", m.state_dir, strerror(-rc));
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
        if (pipe(report) < 0) { cli_fail("pipe: %s", strerror(errno)); os_close(os); goto out; }
        pid_t pid = fork();
        if (pid < 0) { cli_fail("fork: %s", strerror(errno)); os_close(os); goto out; }
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
    /* --- disk cache (objstore/objcache.c): for every non-file:// URL, and for
     * file:// when cache_dir is given; a default one that fails is skipped --- */
    objcache *cache = NULL;
    char cache_dir[4200];
    if (m.cache_dir) snprintf(cache_dir, sizeof cache_dir, "%s", m.cache_dir);
    else snprintf(cache_dir, sizeof cache_dir, "%s/cache", m.state_dir);
    if (m.cache_dir || strncmp(m.url, "file://", 7)) {
        cli_mkdirs(cache_dir, 0700);  /* parents; objcache_open reports any failure */
        if (objcache_open(os, cache_dir, m.cache_size ? m.cache_size : (size_t)1 << 30, &cache, err, sizeof err)) {
            if (m.cache_dir) { cli_fail("%s", err); os_close(os); goto out; }
            fprintf(stderr, "lakefs: %s; mounting without a disk cache\n", err);
        }
    }
    /* --- end disk cache --- */
    state_sweep(m.state_dir);
    snprintf(d.control_path, sizeof d.control_path, "%s/control.%ld", m.state_dir, (long)getpid());
    if (m.readahead >= 0) layer_readahead_set((size_t)m.readahead);
    if (m.block_cache) layer_cache_set_limit(m.block_cache);
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
        cli_fail("out of memory");
    } else if (fs_open_branch(d.fs, m.branch, err, sizeof err)) {
        cli_fail("%s", err);
    } else if (control_start(d.control_path, &cops, &ctl, err, sizeof err)) {
        cli_fail("%s", err);
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

/*
 * export_view.c -- the server `lakefs export --at` reads: PostgreSQL
 * started on the read-only time-travel view of the point.
 *
 * Without --dsn, --at LSN|TIME names the point: a TIME is turned into its
 * LSN by `lakefs lsn` (this program), and PostgreSQL is started on the
 * read-only time-travel view branches/BRANCH@LSN of the repository's mount
 * (--repo URL, else the mount holding the current directory, else the only
 * one), as the view's owner, listening only on a socket in a private
 * directory with its own pg_hba.conf (trust, reachable by root and that
 * user only); export.c reads it as it reads a --dsn server and stops it
 * (fast shutdown).
 * The point recorded is the LSN asked for (the view's server writes an
 * end-of-recovery record past it, which the view drops at unmount) and the
 * timeline it lies on (the parent in the history file of the timeline the
 * view's server promoted itself to).
 */
#include "export_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <libpq-fe.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* "X/Y" or "X-Y" (hex) into *LSN; -1 if not an LSN. */
static int parse_lsn(const char *s, uint64_t *lsn)
{
    char *end;
    errno = 0;
    unsigned long hi = strtoul(s, &end, 16);
    if (errno || end == s || (*end != '/' && *end != '-') || hi > 0xffffffffUL) return -1;
    const char *lo_s = end + 1;
    unsigned long lo = strtoul(lo_s, &end, 16);
    if (errno || end == lo_s || *end || lo > 0xffffffffUL) return -1;
    *lsn = (uint64_t)hi << 32 | lo;
    return 0;
}

/* The mount point of the lakefs repository mount to use into MP: of URL
 * REPO if given, else the one holding the current directory, else the
 * only one; 1 on error (printed). */
static int find_mount(const char *repo, char *mp, size_t len)
{
    char cwd[4096] = "", line[8192], only[4096] = "";
    int count = 0, found = 0;
    size_t best = 0;
    if (!getcwd(cwd, sizeof cwd)) cwd[0] = 0;
    FILE *f = fopen("/proc/self/mountinfo", "r");
    if (!f) return export_fail(1, "cannot read /proc/self/mountinfo to find the lakefs mount: %s", strerror(errno));
    while (fgets(line, sizeof line, f)) {
        char *sep = strstr(line, " - "), *save, *fld[5] = {0};
        if (!sep) continue;
        *sep = 0;
        char *fstype = strtok_r(sep + 3, " \n", &save), *src = strtok_r(NULL, " \n", &save);
        char *p = strtok_r(line, " ", &save);
        for (int i = 0; i < 5 && p; i++, p = strtok_r(NULL, " ", &save)) fld[i] = p;
        if (!fld[4] || !fstype || !src || strcmp(fstype, "fuse.lakefs")) continue;
        char br[4200];
        struct stat st;
        snprintf(br, sizeof br, "%s/branches", fld[4]);   /* mount points with spaces (\040) are not handled */
        if (stat(br, &st) || !S_ISDIR(st.st_mode)) continue;   /* a one-branch mount has no views */
        if (repo) {
            if (strcmp(src, repo)) continue;
            snprintf(mp, len, "%s", fld[4]);
            found = 1;
            continue;
        }
        count++;
        snprintf(only, sizeof only, "%s", fld[4]);
        size_t ml = strlen(fld[4]);
        if (ml >= best && !strncmp(cwd, fld[4], ml) && (cwd[ml] == '/' || !cwd[ml])) {
            best = ml;
            snprintf(mp, len, "%s", fld[4]);
            found = 1;
        }
    }
    fclose(f);
    if (found) return 0;
    if (!repo && count == 1) { snprintf(mp, len, "%s", only); return 0; }
    if (repo) return export_fail(1, "%s is not mounted (as a repository): mount it (lakefs mount %s DIR) or give --dsn", repo, repo);
    return export_fail(1, count ? "several lakefs repositories are mounted: say which with --repo URL"
                          : "no lakefs repository is mounted: mount it (lakefs mount URL DIR) or give --dsn");
}

/* Read FD to its end; its first LEN - 1 bytes into OUT, NUL-terminated. */
static void read_all(int fd, char *out, size_t len)
{
    size_t n = 0;
    char buf[512];
    for (;;) {
        ssize_t r = read(fd, buf, sizeof buf);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        size_t take = (size_t)r < len - 1 - n ? (size_t)r : len - 1 - n;
        memcpy(out + n, buf, take);
        n += take;
    }
    out[n] = 0;
}

/* The LSN where BRANCH's state at POINT (an LSN or a TIME) ends, from
 * `lakefs lsn` (this program, which checks the point against the branch's
 * history and retention) on repository REPO, or (NULL) the one mounted at
 * MP, into OUT; 1 on error, its one-line reason in WHY. */
static int point_lsn(const char *branch, const char *point, const char *repo, const char *mp, char *out, size_t len,
                     char *why, size_t whylen)
{
    int fds[2], efds[2];
    snprintf(why, whylen, "lakefs lsn failed");
    if (pipe(fds)) return snprintf(why, whylen, "pipe: %s", strerror(errno)), 1;
    if (pipe(efds)) {
        snprintf(why, whylen, "pipe: %s", strerror(errno));
        close(fds[0]);
        close(fds[1]);
        return 1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(why, whylen, "fork: %s", strerror(errno));
        close(fds[0]); close(fds[1]); close(efds[0]); close(efds[1]);
        return 1;
    }
    if (pid == 0) {
        dup2(fds[1], 1);
        dup2(efds[1], 2);
        close(fds[0]); close(fds[1]); close(efds[0]); close(efds[1]);
        if (repo) execl("/proc/self/exe", "lakefs", "lsn", branch, "--at", point, "--repo", repo, (char *)NULL);
        else if (!chdir(mp)) {   /* lakefs lsn finds the repository of the mount holding the directory */
            unsetenv("LAKEFS_REPO");
            execl("/proc/self/exe", "lakefs", "lsn", branch, "--at", point, (char *)NULL);
        }
        _exit(127);
    }
    close(fds[1]);
    close(efds[1]);
    /* stderr first, to its end: stdout is one line, which its pipe holds */
    char msg[8192];
    read_all(efds[0], msg, sizeof msg);
    close(efds[0]);
    read_all(fds[0], out, len);
    close(fds[0]);
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
    char *nl = strchr(out, '\n');
    if (nl) *nl = 0;
    uint64_t lsn;
    if (WIFEXITED(st) && !WEXITSTATUS(st) && !parse_lsn(out, &lsn)) return 0;
    /* the reason is its last line (warnings may come before it) */
    size_t n = strlen(msg);
    while (n && msg[n - 1] == '\n') msg[--n] = 0;
    char *last = strrchr(msg, '\n');
    last = last ? last + 1 : msg;
    const char *m = !strncmp(last, "lakefs: ", 8) ? last + 8 : last;
    if (*m) snprintf(why, whylen, "%s", m);
    return 1;
}

/* The last line of FILE into OUT ("" if none). */
static void last_line(const char *file, char *out, size_t len)
{
    out[0] = 0;
    FILE *f = fopen(file, "r");
    if (!f) return;
    char line[1024];
    while (fgets(line, sizeof line, f)) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = 0;
        if (line[0]) snprintf(out, len, "%s", line);
    }
    fclose(f);
}

/* The point AT of BRANCH (v->lsn, v->lsn_text) and its read-only view in
 * the mounted repository (REPO, or see find_mount) into V->view.  1 on
 * error (printed). */
int export_view_resolve(const char *branch, const char *at, const char *repo, view_pg *v)
{
    char mp[4096];
    char *view = v->view;
    if (find_mount(repo, mp, sizeof mp)) return 1;
    char out[128], why[1024];
    if (point_lsn(branch, at, repo, mp, out, sizeof out, why, sizeof why))
        return export_fail(1, "--at %s: %s", at, why);
    if (parse_lsn(at, &v->lsn) && parse_lsn(out, &v->lsn))   /* an LSN stays as given; a TIME becomes its LSN */
        return export_fail(1, "--at %s: lakefs lsn answered '%s', not an LSN", at, out);
    snprintf(v->lsn_text, sizeof v->lsn_text, "%X/%X", (unsigned)(v->lsn >> 32), (unsigned)v->lsn);
    snprintf(v->view, sizeof v->view, "%s/branches/%s@%X-%X", mp, branch, (unsigned)(v->lsn >> 32), (unsigned)v->lsn);
    struct stat st;
    if (stat(view, &st) || !S_ISDIR(st.st_mode))
        return export_fail(1, "no time-travel view %s (%s): the point is outside %s's retention window or not yet "
                     "written; the daemon's log says why", view, strerror(errno), branch);
    char pgdata_ver[4500];
    snprintf(pgdata_ver, sizeof pgdata_ver, "%s/PG_VERSION", view);
    if (access(pgdata_ver, F_OK))
        return export_fail(1, "%s holds no PostgreSQL data directory (no PG_VERSION) at that point", view);
    return 0;
}

/* Start PostgreSQL on V's view (export_view_resolve), as the view's owner,
 * on a socket in a private directory with trust authentication there only;
 * wait until it takes connections to DBNAME.  1 on error (printed). */
int export_view_start(const char *dbname, view_pg *v)
{
    const char *view = v->view;
    struct stat st;
    if (stat(view, &st)) return export_fail(1, "%s: %s", view, strerror(errno));

    snprintf(v->sockdir, sizeof v->sockdir, "/tmp/lakefs-export-XXXXXX");
    if (!mkdtemp(v->sockdir)) return export_fail(1, "a socket directory in /tmp: %s", strerror(errno));
    char hba[128], logf[128];
    snprintf(hba, sizeof hba, "%s/pg_hba.conf", v->sockdir);
    snprintf(logf, sizeof logf, "%s/postgres.log", v->sockdir);
    FILE *f = fopen(hba, "w");
    if (!f || fputs("local all all trust\n", f) < 0 || fclose(f)) return export_fail(1, "writing %s", hba);
    int lfd = open(logf, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (lfd < 0) return export_fail(1, "%s: %s", logf, strerror(errno));
    if (geteuid() == 0 && (chown(v->sockdir, st.st_uid, st.st_gid) || chown(hba, st.st_uid, st.st_gid) ||
                           chown(logf, st.st_uid, st.st_gid))) {
        close(lfd);
        return export_fail(1, "chown %s: %s", v->sockdir, strerror(errno));
    }
    struct passwd *pw = getpwuid(st.st_uid);
    char user[256];
    snprintf(user, sizeof user, "%s", pw ? pw->pw_name : "postgres");
    const char *bindir = getenv("LAKEFS_PGBIN");
    char postgres[4200], hbaopt[160], sockopt[128];
    snprintf(postgres, sizeof postgres, "%s/postgres", bindir && *bindir ? bindir : "/usr/lib/postgresql/15/bin");
    snprintf(hbaopt, sizeof hbaopt, "hba_file=%s", hba);
    snprintf(sockopt, sizeof sockopt, "unix_socket_directories=%s", v->sockdir);
    pid_t pid = fork();
    if (pid < 0) { close(lfd); return export_fail(1, "fork: %s", strerror(errno)); }
    if (pid == 0) {
        dup2(lfd, 1);
        dup2(lfd, 2);
        int nul = open("/dev/null", O_RDONLY);
        if (nul >= 0) dup2(nul, 0);
        if (geteuid() == 0 && (setgroups(0, NULL) || setgid(st.st_gid) || setuid(st.st_uid))) _exit(126);
        execl(postgres, "postgres", "-D", view, "-p", "5432", "-c", sockopt, "-c", "listen_addresses=", "-c", hbaopt,
              "-c", "log_destination=stderr", "-c", "logging_collector=off", (char *)NULL);
        fprintf(stderr, "exec %s: %s\n", postgres, strerror(errno));
        _exit(127);
    }
    close(lfd);
    v->pid = pid;
    snprintf(v->dsn, sizeof v->dsn, "host=%s port=5432 user=%s dbname=%s", v->sockdir, user, dbname);
    double deadline = export_mono_s() + 600;
    for (;;) {
        if (PQping(v->dsn) == PQPING_OK) return 0;
        int wst;
        if (waitpid(pid, &wst, WNOHANG) == pid) {
            v->pid = 0;
            char last[1024];
            last_line(logf, last, sizeof last);
            return export_fail(1, "PostgreSQL on %s exited during startup: %s", view, last[0] ? last : "(no log)");
        }
        if (export_mono_s() > deadline) return export_fail(1, "PostgreSQL on %s did not accept connections within 600 s", view);
        usleep(100000);
    }
}

/* Stop V's server (fast shutdown) and remove its private directory. */
void export_view_stop(view_pg *v)
{
    if (v->pid > 0) {
        kill(v->pid, SIGINT);
        int st;
        waitpid(v->pid, &st, 0);
        v->pid = 0;
    }
    if (v->sockdir[0]) {
        char p[128];
        snprintf(p, sizeof p, "%s/pg_hba.conf", v->sockdir);
        unlink(p);
        snprintf(p, sizeof p, "%s/postgres.log", v->sockdir);
        unlink(p);
        rmdir(v->sockdir);   /* the socket and lock files go with the server */
    }
}

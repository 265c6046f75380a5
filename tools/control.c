/*
 * control.c -- the daemon's control socket, server and client (protocol in
 * control.h).
 *
 * Why a socket: a daemon holds the newest writes of its branch in memory
 * and in its local journal, where no other process can see them.  Branching
 * from a mounted branch must start from a state the repository holds, so
 * the command asks the daemon to write everything up to now into layers and
 * tell it which manifest generation holds it.  Likewise the counters of a
 * branch's store (how many layers its reads consulted) live in the daemon.
 *
 * One socket serves every branch the daemon mounts: the requests name the
 * branch, and the daemon's control_ops answer for it.  The server is one
 * thread polling the listening socket and a pipe that control_stop writes
 * to; each connection is read with a timeout, so a client that connects
 * and says nothing cannot hold the thread for long.
 */
#include "control.h"
#include "../store/branch.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define CONTROL_LINE_MAX 256            /* a request line's buffer: 255 bytes with the newline, a NUL */
#define CONTROL_REPLY_MAX 512           /* a reply line's */
#define CONTROL_REQUEST_TIMEOUT 5       /* seconds for a request line to arrive */
#define CONTROL_REPLY_TIMEOUT 600       /* seconds a client waits for a checkpoint */

struct control {
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    control_ops ops;
    int fd;                       /* listening socket */
    int stop[2];                  /* pipe: control_stop writes a byte */
    pthread_t thread;
};

int control_path_ok(const char *path, char *err, size_t errlen)
{
    size_t max = sizeof(((struct sockaddr_un *)0)->sun_path) - 1;
    if (strlen(path) <= max && !strchr(path, '\n')) return 0;
    snprintf(err, errlen, "control socket path %s is too long (%zu bytes, at most %zu) or holds a newline: "
             "use a shorter state_dir", path, strlen(path), max);
    return -ENAMETOOLONG;
}

/* Fill ADDR for PATH. */
static void control_addr(struct sockaddr_un *addr, const char *path)
{
    memset(addr, 0, sizeof *addr);
    addr->sun_family = AF_UNIX;
    snprintf(addr->sun_path, sizeof addr->sun_path, "%s", path);
}

/* The counters of a stats reply, in order, and where store_stats has them. */
static const struct { const char *name; size_t off; } control_stats_fields[] = {
    { "reads", offsetof(store_stats, reads) }, { "probes", offsetof(store_stats, probes) },
    { "probes_max", offsetof(store_stats, probes_max) }, { "over_bound", offsetof(store_stats, over_bound) },
    { "bound", offsetof(store_stats, bound) }, { "layers", offsetof(store_stats, layers) },
    { "flushes", offsetof(store_stats, flushes) }, { "compactions", offsetof(store_stats, compactions) },
    { "seq", offsetof(store_stats, seq) }, { "gen", offsetof(store_stats, manifest_gen) },
    { "memtable_bytes", offsetof(store_stats, memtable_bytes) }, { "merge_waits", offsetof(store_stats, merge_waits) },
};
#define CONTROL_NSTATS (sizeof control_stats_fields / sizeof control_stats_fields[0])

/* Counter I of the stats reply in S. */
static uint64_t *control_stat(store_stats *s, size_t i)
{
    return (uint64_t *)((char *)s + control_stats_fields[i].off);
}

/* Read one line of at most MAX - 1 bytes from FD into BUF (newline
 * removed); -EPROTO if it is longer or the peer closed early. */
static int control_read_line(int fd, char *buf, size_t max)
{
    size_t len = 0;
    for (;;) {
        ssize_t n = read(fd, buf + len, max - 1 - len);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return errno == EAGAIN ? -ETIMEDOUT : -errno;
        if (n == 0) return -EPROTO;
        len += (size_t)n;
        buf[len] = 0;
        char *nl = memchr(buf, '\n', len);
        if (nl) {
            if (nl != buf + len - 1) return -EPROTO;   /* one line per connection */
            *nl = 0;
            return 0;
        }
        if (len == max - 1) return -EPROTO;
    }
}

/* Send the whole string S on socket FD (no SIGPIPE if the peer left). */
static int control_write(int fd, const char *s)
{
    size_t len = strlen(s);
    while (len) {
        ssize_t n = send(fd, s, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return -errno;
        s += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Serve the one request of connection FD. */
static void control_serve(control *c, int fd)
{
    char line[CONTROL_LINE_MAX], reply[CONTROL_REPLY_MAX];
    struct timeval tv = { CONTROL_REQUEST_TIMEOUT, 0 };
    struct ucred cred;
    socklen_t clen = sizeof cred;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) < 0 || (cred.uid != 0 && cred.uid != geteuid())) {
        control_write(fd, "error permission denied: only the daemon's user and root may use its control socket\n");
        return;
    }
    int rc = control_read_line(fd, line, sizeof line);
    char *branch = rc ? NULL : strchr(line, ' ');
    if (branch) *branch++ = 0;
    if (rc) {
        snprintf(reply, sizeof reply, "error bad request: %s\n",
                 rc == -EPROTO ? "want one line of at most 255 bytes" : strerror(-rc));
    } else if (strcmp(line, "checkpoint") && strcmp(line, "release") && strcmp(line, "stats")) {
        snprintf(reply, sizeof reply, "error unknown request '%.64s': the requests are 'checkpoint BRANCH', "
                 "'release BRANCH' and 'stats BRANCH'\n", line);
    } else if (!branch || !branch_name_valid(branch)) {
        snprintf(reply, sizeof reply, "error %.10s wants a valid branch name\n", line);
    } else if (!strcmp(line, "stats")) {
        store_stats s;
        if (c->ops.stats(c->ops.arg, branch, &s)) {
            snprintf(reply, sizeof reply, "error this daemon does not serve branch %.63s\n", branch);
        } else {
            size_t len = (size_t)snprintf(reply, sizeof reply, "ok");
            for (size_t i = 0; i < CONTROL_NSTATS; i++)   /* fits: at most 10 names and 20 digits each */
                len += (size_t)snprintf(reply + len, sizeof reply - len, " %s=%" PRIu64, control_stats_fields[i].name,
                                        *control_stat(&s, i));
            snprintf(reply + len, sizeof reply - len, "\n");
        }
    } else {
        uint64_t seq = 0, gen = 0;
        struct timespec t0, t1;
        int ckpt = !strcmp(line, "checkpoint");
        clock_gettime(CLOCK_MONOTONIC, &t0);
        rc = ckpt ? c->ops.checkpoint(c->ops.arg, branch, &seq, &gen) : c->ops.release(c->ops.arg, branch);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
        if (rc == -ENOENT) {
            snprintf(reply, sizeof reply, "error this daemon does not serve branch %.63s\n", branch);
        } else if (rc) {
            snprintf(reply, sizeof reply, "error %.10s of branch %.63s failed: %s\n", line, branch,
                     rc == -EIO ? "the branch was taken over by another daemon, or flushing failed (see the daemon log)"
                                : strerror(-rc));
            fprintf(stderr, "lakefs: control: %s of branch %s failed: %s\n", line, branch, strerror(-rc));
        } else if (ckpt) {
            snprintf(reply, sizeof reply, "ok %" PRIu64 " %" PRIu64 "\n", seq, gen);
            fprintf(stderr, "lakefs: control: branch %s checkpoint at seq %" PRIu64 ", manifest generation %" PRIu64
                    " (%ld ms)\n", branch, seq, gen, ms);
        } else {
            snprintf(reply, sizeof reply, "ok\n");
            fprintf(stderr, "lakefs: control: branch %s released: flushed and closed (%ld ms); "
                    "its files on this mount are gone\n", branch, ms);
        }
    }
    control_write(fd, reply);
}

/* The server thread: accept connections until control_stop. */
static void *control_thread(void *arg)
{
    control *c = arg;
    struct pollfd p[2] = { { c->fd, POLLIN, 0 }, { c->stop[0], POLLIN, 0 } };
    for (;;) {
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR) continue;
            fprintf(stderr, "lakefs: control: poll: %s; control socket %s stops\n", strerror(errno), c->path);
            return NULL;
        }
        if (p[1].revents) return NULL;
        int fd = accept4(c->fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) continue;     /* the client gave up meanwhile */
        control_serve(c, fd);
        close(fd);
    }
}

int control_start(const char *path, const control_ops *ops, control **out, char *err, size_t errlen)
{
    struct sockaddr_un addr;
    int rc = control_path_ok(path, err, errlen);
    if (rc) return rc;
    control *c = calloc(1, sizeof *c);
    if (!c) { snprintf(err, errlen, "out of memory"); return -ENOMEM; }
    snprintf(c->path, sizeof c->path, "%s", path);
    c->ops = *ops;
    c->stop[0] = c->stop[1] = -1;
    c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0 || pipe2(c->stop, O_CLOEXEC) < 0) goto fail;
    control_addr(&addr, path);
    /* the caller holds the state directory's lock: a socket file here is
     * a dead daemon's */
    if (unlink(path) < 0 && errno != ENOENT) goto fail;
    /* owner-only from chmod on; the peer's uid is checked anyway */
    if (bind(c->fd, (struct sockaddr *)&addr, sizeof addr) < 0 || chmod(path, 0600) < 0 || listen(c->fd, 8) < 0)
        goto fail;
    if ((rc = pthread_create(&c->thread, NULL, control_thread, c))) { errno = rc; goto fail; }
    *out = c;
    return 0;
fail:
    rc = -errno;
    snprintf(err, errlen, "cannot create the control socket %s: %s", path, strerror(errno));
    if (c->fd >= 0) close(c->fd);
    if (c->stop[0] >= 0) { close(c->stop[0]); close(c->stop[1]); }
    free(c);
    return rc;
}

void control_stop(control *c)
{
    if (!c) return;
    char b = 0;
    if (write(c->stop[1], &b, 1) != 1)
        fprintf(stderr, "lakefs: control: cannot stop the server thread: %s\n", strerror(errno));
    else
        pthread_join(c->thread, NULL);
    if (unlink(c->path) < 0 && errno != ENOENT)
        fprintf(stderr, "lakefs: cannot remove the control socket %s: %s\n", c->path, strerror(errno));
    close(c->fd);
    close(c->stop[0]);
    close(c->stop[1]);
    free(c);
}

/* Parse a canonical decimal u64 at *P, advancing it; -1 if none. */
static int control_u64(const char **p, uint64_t *v)
{
    const char *s = *p;
    uint64_t r = 0;
    if (*s < '0' || *s > '9' || (*s == '0' && s[1] >= '0' && s[1] <= '9')) return -1;
    for (; *s >= '0' && *s <= '9'; s++) {
        unsigned d = (unsigned)(*s - '0');
        if (r > (UINT64_MAX - d) / 10) return -1;
        r = r * 10 + d;
    }
    *p = s;
    *v = r;
    return 0;
}

/* Send request line REQ to the daemon at PATH and read its reply line
 * into LINE; an "error" reply gives -EIO with the daemon's words in ERR. */
static int control_request(const char *path, const char *req, char line[CONTROL_REPLY_MAX], char *err, size_t errlen)
{
    struct sockaddr_un addr;
    int rc = control_path_ok(path, err, errlen);
    if (rc) return rc;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        rc = -errno;
        snprintf(err, errlen, "cannot create a socket: %s", strerror(errno));
        return rc;
    }
    struct timeval tv = { CONTROL_REPLY_TIMEOUT, 0 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    control_addr(&addr, path);
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
        rc = -errno;
        snprintf(err, errlen, "cannot reach the daemon's control socket %s: %s", path, strerror(errno));
    } else if ((rc = control_write(fd, req))) {
        snprintf(err, errlen, "cannot send a request to the daemon's control socket %s: %s", path, strerror(-rc));
    } else if ((rc = control_read_line(fd, line, CONTROL_REPLY_MAX))) {
        snprintf(err, errlen, "no answer from the daemon's control socket %s: %s", path,
                 rc == -EPROTO ? "connection closed or reply malformed" : strerror(-rc));
    } else if (!strncmp(line, "error ", 6)) {
        snprintf(err, errlen, "the daemon refused: %s", line + 6);
        rc = -EIO;
    }
    close(fd);
    return rc;
}

int control_checkpoint(const char *path, const char *branch, uint64_t *seq, uint64_t *gen, char *err, size_t errlen)
{
    char req[CONTROL_LINE_MAX], line[CONTROL_REPLY_MAX];
    snprintf(req, sizeof req, "checkpoint %s\n", branch);
    int rc = control_request(path, req, line, err, errlen);
    const char *p = line;
    if (!rc && (strncmp(p, "ok ", 3) || (p += 3, control_u64(&p, seq)) || *p++ != ' ' || control_u64(&p, gen) || *p)) {
        snprintf(err, errlen, "malformed reply from the daemon's control socket %s: '%.64s'", path, line);
        rc = -EPROTO;
    }
    return rc;
}

int control_release(const char *path, const char *branch, char *err, size_t errlen)
{
    char req[CONTROL_LINE_MAX], line[CONTROL_REPLY_MAX];
    snprintf(req, sizeof req, "release %s\n", branch);
    int rc = control_request(path, req, line, err, errlen);
    if (!rc && strcmp(line, "ok")) {
        snprintf(err, errlen, "malformed reply from the daemon's control socket %s: '%.64s'", path, line);
        rc = -EPROTO;
    }
    return rc;
}

int control_stats(const char *path, const char *branch, store_stats *s, char *err, size_t errlen)
{
    char req[CONTROL_LINE_MAX], line[CONTROL_REPLY_MAX];
    snprintf(req, sizeof req, "stats %s\n", branch);
    int rc = control_request(path, req, line, err, errlen);
    if (rc) return rc;
    memset(s, 0, sizeof *s);
    const char *p = line + 2;
    int bad = strncmp(line, "ok", 2) != 0;
    for (size_t i = 0; !bad && i < CONTROL_NSTATS; i++) {
        size_t nl = strlen(control_stats_fields[i].name);
        bad = *p++ != ' ' || strncmp(p, control_stats_fields[i].name, nl) || p[nl] != '=';
        if (!bad) {
            p += nl + 1;
            bad = control_u64(&p, control_stat(s, i));
        }
    }
    if (!bad && !*p) return 0;
    snprintf(err, errlen, "malformed reply from the daemon's control socket %s: '%.64s'", path, line);
    return -EPROTO;
}

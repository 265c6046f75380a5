/*
 * journal.c -- append-only local journal with group commit.
 *
 * Appends are plain write()s on an O_APPEND fd, done by the caller while it
 * holds the store's write lock, so record order equals seq order and an
 * acknowledged write is in the kernel's page cache before the FUSE reply:
 * kill -9 of the daemon cannot lose it.  Durability against power loss is
 * journal_sync: the first caller becomes the leader and runs fdatasync for
 * everyone who appended before it started; later callers wait for that or
 * the next round.  The sync position is a (file id, offset) pair so that a
 * rotation in between is handled: rotation fsyncs the old file itself.
 */
#include "journal.h"
#include "crc32c.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#define JOURNAL_MAGIC 0x4c4b4a31u          /* "LKJ1" */
#define JOURNAL_HDR 16

struct journal {
    char *dir;                    /* state directory holding the files */
    int fd;                       /* current file, O_APPEND */
    uint64_t id;                  /* id of the current file */
    uint64_t written;             /* bytes appended to the current file */
    pthread_mutex_t mu;           /* protects the sync state below */
    pthread_cond_t cv;            /* signalled when a sync round ends */
    int syncing;                  /* a leader is in fdatasync */
    uint64_t synced_id, synced;   /* durable up to this file id and offset */
    int sync_err;                 /* sticky error: once fsync failed, stay failed */
};

/* Path of journal file ID in DIR into BUF. */
static void journal_path(const char *dir, uint64_t id, char *buf, size_t len)
{
    snprintf(buf, len, "%s/journal.%016" PRIx64, dir, id);
}

/* Sorted ids of the journal files in DIR. */
static int journal_list(const char *dir, uint64_t **ids, size_t *n)
{
    DIR *d = opendir(dir);
    if (!d) {
        int e = errno;
        fprintf(stderr, "lakefs: open journal directory %s: %s\n", dir, strerror(e));
        return -e;
    }
    size_t cap = 8, cnt = 0;
    uint64_t *v = malloc(cap * sizeof *v);
    if (!v) { closedir(d); return -ENOMEM; }
    struct dirent *de;
    while ((de = readdir(d))) {
        char *end;
        if (strncmp(de->d_name, "journal.", 8) || strlen(de->d_name) != 24) continue;
        uint64_t id = strtoull(de->d_name + 8, &end, 16);
        if (*end) continue;
        if (cnt == cap) {
            uint64_t *nv = realloc(v, 2 * cap * sizeof *v);
            if (!nv) { free(v); closedir(d); return -ENOMEM; }
            v = nv; cap *= 2;
        }
        v[cnt++] = id;
    }
    closedir(d);
    for (size_t i = 1; i < cnt; i++)          /* insertion sort: few files */
        for (size_t k = i; k > 0 && v[k - 1] > v[k]; k--) {
            uint64_t t = v[k]; v[k] = v[k - 1]; v[k - 1] = t;
        }
    *ids = v; *n = cnt;
    return 0;
}

static uint32_t get32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }

/* Replay file PATH through FN; a damaged tail is truncated if LAST, else an error. */
static int journal_replay_file(const char *path, int last, journal_replay_fn fn, void *arg)
{
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        fprintf(stderr, "lakefs: open journal %s: %s\n", path, strerror(e));
        return -e;
    }
    struct stat st;
    if (fstat(fd, &st) < 0) { int e = errno; close(fd); return -e; }
    size_t size = (size_t)st.st_size, off = 0;
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf) { close(fd); return -ENOMEM; }
    ssize_t got = size ? pread(fd, buf, size, 0) : 0;
    if (got < 0 || (size_t)got != size) {
        int e = got < 0 ? errno : EIO;
        fprintf(stderr, "lakefs: read journal %s: %s\n", path, strerror(e));
        free(buf); close(fd); return -e;
    }
    int rc = 0;
    while (off + JOURNAL_HDR <= size) {
        uint32_t magic = get32(buf + off), len = get32(buf + off + 4), crc = get32(buf + off + 8);
        if (magic != JOURNAL_MAGIC || len > size - off - JOURNAL_HDR ||
            crc32c(0, buf + off + JOURNAL_HDR, len) != crc)
            break;
        rc = fn(arg, buf + off + JOURNAL_HDR, len);
        if (rc) break;
        off += JOURNAL_HDR + len;
    }
    if (!rc && off != size) {
        if (!last) {
            fprintf(stderr, "lakefs: journal %s: damaged record at offset %zu (not at the tail)\n", path, off);
            rc = -EIO;
        } else if (ftruncate(fd, (off_t)off) < 0 || fdatasync(fd) < 0) {
            rc = -errno;
            fprintf(stderr, "lakefs: truncate torn journal tail %s: %s\n", path, strerror(-rc));
        }
    }
    free(buf);
    close(fd);
    return rc;
}

/* Create journal file ID in J->dir and make it current. */
static int journal_start_file(journal *j, uint64_t id)
{
    char path[4096];
    journal_path(j->dir, id, path, sizeof path);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0) {
        int e = errno;
        fprintf(stderr, "lakefs: create journal %s: %s\n", path, strerror(e));
        return -e;
    }
    int dfd = open(j->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 || fsync(dfd) < 0) {
        int e = errno;
        fprintf(stderr, "lakefs: fsync journal directory %s: %s\n", j->dir, strerror(e));
        if (dfd >= 0) close(dfd);
        close(fd);
        return -e;
    }
    close(dfd);
    j->fd = fd; j->id = id; j->written = 0;
    return 0;
}

int journal_open(const char *dir, journal_replay_fn fn, void *arg, journal **out)
{
    uint64_t *ids; size_t n;
    int rc = journal_list(dir, &ids, &n);
    if (rc) return rc;
    char path[4096];
    for (size_t i = 0; i < n && !rc; i++) {
        journal_path(dir, ids[i], path, sizeof path);
        rc = journal_replay_file(path, i + 1 == n, fn, arg);
    }
    uint64_t next = n ? ids[n - 1] + 1 : 1;
    free(ids);
    if (rc) return rc;
    journal *j = calloc(1, sizeof *j);
    if (!j || !(j->dir = strdup(dir))) { free(j); return -ENOMEM; }
    pthread_mutex_init(&j->mu, NULL);
    pthread_cond_init(&j->cv, NULL);
    if ((rc = journal_start_file(j, next))) { journal_close(j); return rc; }
    j->synced_id = j->id;
    *out = j;
    return 0;
}

void journal_close(journal *j)
{
    if (!j) return;
    if (j->fd > 0) close(j->fd);
    pthread_mutex_destroy(&j->mu);
    pthread_cond_destroy(&j->cv);
    free(j->dir);
    free(j);
}

int journal_append(journal *j, const void *payload, size_t len)
{
    uint8_t hdr[JOURNAL_HDR];
    uint32_t v[4] = { JOURNAL_MAGIC, (uint32_t)len, crc32c(0, payload, len), 0 };
    memcpy(hdr, v, sizeof hdr);
    struct iovec iov[2] = { { hdr, sizeof hdr }, { (void *)payload, len } };
    size_t total = sizeof hdr + len, done = 0;
    while (done < total) {
        ssize_t w = writev(j->fd, iov, 2);
        if (w < 0) {
            if (errno == EINTR) continue;
            int e = errno;
            fprintf(stderr, "lakefs: append to journal %s/journal.%016" PRIx64 ": %s\n", j->dir, j->id, strerror(e));
            return -e;
        }
        done += (size_t)w;
        if (done < total) {          /* short write: finish the rest */
            size_t skip = (size_t)w;
            for (int i = 0; i < 2; i++) {
                size_t take = skip < iov[i].iov_len ? skip : iov[i].iov_len;
                iov[i].iov_base = (uint8_t *)iov[i].iov_base + take;
                iov[i].iov_len -= take;
                skip -= take;
            }
        }
    }
    __atomic_add_fetch(&j->written, total, __ATOMIC_RELEASE);
    return 0;
}

int journal_sync(journal *j)
{
    pthread_mutex_lock(&j->mu);
    uint64_t want_id = j->id, want = __atomic_load_n(&j->written, __ATOMIC_ACQUIRE);
    for (;;) {
        if (j->sync_err) break;
        if (j->synced_id > want_id || (j->synced_id == want_id && j->synced >= want)) break;
        if (!j->syncing) {
            j->syncing = 1;
            int fd = j->fd;
            uint64_t id = j->id, upto = __atomic_load_n(&j->written, __ATOMIC_ACQUIRE);
            pthread_mutex_unlock(&j->mu);
            int rc = fdatasync(fd) < 0 ? -errno : 0;
            pthread_mutex_lock(&j->mu);
            j->syncing = 0;
            if (rc) {
                fprintf(stderr, "lakefs: fdatasync journal %s/journal.%016" PRIx64 ": %s\n", j->dir, id, strerror(-rc));
                j->sync_err = rc;
            } else if (id > j->synced_id || (id == j->synced_id && upto > j->synced)) {
                j->synced_id = id; j->synced = upto;
            }
            pthread_cond_broadcast(&j->cv);
        } else {
            pthread_cond_wait(&j->cv, &j->mu);
        }
    }
    int rc = j->sync_err;
    pthread_mutex_unlock(&j->mu);
    return rc;
}

int journal_rotate(journal *j, uint64_t *old)
{
    pthread_mutex_lock(&j->mu);
    while (j->syncing) pthread_cond_wait(&j->cv, &j->mu);
    int rc = fdatasync(j->fd) < 0 ? -errno : 0;
    if (rc) {
        fprintf(stderr, "lakefs: fdatasync journal %s/journal.%016" PRIx64 ": %s\n", j->dir, j->id, strerror(-rc));
        j->sync_err = rc;
    } else {
        int oldfd = j->fd;
        uint64_t oldid = j->id;
        rc = journal_start_file(j, oldid + 1);
        if (!rc) {
            close(oldfd);
            *old = oldid;
            j->synced_id = j->id; j->synced = 0;
        }
    }
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
    return rc;
}

int journal_drop(journal *j, uint64_t upto)
{
    uint64_t *ids; size_t n;
    int rc = journal_list(j->dir, &ids, &n);
    if (rc) return rc;
    pthread_mutex_lock(&j->mu);
    uint64_t current = j->id;
    pthread_mutex_unlock(&j->mu);
    char path[4096];
    for (size_t i = 0; i < n; i++) {
        if (ids[i] > upto || ids[i] == current) continue;
        journal_path(j->dir, ids[i], path, sizeof path);
        if (unlink(path) < 0 && errno != ENOENT) {
            rc = -errno;
            fprintf(stderr, "lakefs: remove journal %s: %s\n", path, strerror(errno));
        }
    }
    free(ids);
    return rc;
}

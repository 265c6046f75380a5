/*
 * journal.c -- the local journal: group commit, and files written in place.
 *
 * Appends are plain pwrite()s, done by the caller while it holds the
 * store's write lock, so record order equals seq order and an acknowledged
 * write is in the kernel's page cache before the FUSE reply: kill -9 of
 * the daemon cannot lose it.  Durability against power loss is
 * journal_sync: the first caller becomes the leader and runs fdatasync for
 * everyone who appended before it started; later callers wait for that or
 * the next round.  The sync position is a (file id, offset) pair so that a
 * switch to the next file in between is handled: a switch fsyncs the old
 * file itself.
 *
 * Files are written in place, as PostgreSQL recycles its WAL segments.
 * Cost model (measured on this project's test machine, ext4): fdatasync
 * after appending 8 KiB to a file costs ~270 us, because the file's size
 * and new blocks are metadata to write as well; after overwriting 8 KiB of
 * blocks the file already has, ~100 us.  Every commit of PostgreSQL waits
 * for one: TPC-B ran at 0.64x native (fsync requests 293 us each), and at
 * 1.07x with the journal on tmpfs (30 us).  So a file is switched for the
 * next once it holds about JOURNAL_FILE_BYTES (64 MiB), and journal_drop
 * keeps up to JOURNAL_SPARES dropped files (as journal-spare.ID) that the
 * next files reuse, renamed, written from offset 0 over their old
 * contents.
 *
 * What keeps old contents from being replayed: each record header carries
 * the tag of its file's id (journal_tag), which replay requires, so it
 * stops at the first record of an earlier use of the file; and a file that
 * is switched or rotated away ends with an end record, so replay of an
 * older file knows where it ends without the old contents after it
 * looking like damage.  Headers with tag 0 are those of journals written
 * before files were reused (accepted in any file; such files are never
 * reused, only files this process started are).
 */
#include "journal.h"
#include "../util/crc32c.h"

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
#include <time.h>
#include <unistd.h>

#define JOURNAL_MAGIC 0x4c4b4a31u          /* "LKJ1": a record */
#define JOURNAL_END_MAGIC 0x4c4b4a45u      /* "LKJE": the file ends here */
#define JOURNAL_HDR 16
#define JOURNAL_FILE_BYTES (64u << 20)  /* a file is switched at about this size */
#define JOURNAL_SPARES 4                   /* dropped files kept for reuse */
#define JOURNAL_SPARE_PREFIX "journal-spare."

static size_t journal_file_bytes = JOURNAL_FILE_BYTES;

struct journal {
    char *dir;                    /* state directory holding the files */
    int fd;                       /* current file */
    uint64_t id;                  /* id of the current file */
    uint64_t written;             /* bytes appended to the current file */
    uint64_t cap;                 /* bytes the current file had when it was taken (a spare's) */
    uint64_t first_own;           /* id of the first file this process started */
    pthread_mutex_t mu;           /* protects the sync state below */
    pthread_cond_t cv;            /* signalled when a sync round ends */
    int syncing;                  /* a leader is in fdatasync */
    uint64_t synced_id, synced;   /* durable up to this file id and offset */
    int sync_err;                 /* sticky error: once fsync failed, stay failed */
    journal_stats stats;          /* journal_sync's fdatasyncs (under mu) */
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

/* The tag in the headers of journal file ID's records: never 0. */
static uint32_t journal_tag(uint64_t id)
{
    return 0x80000000u | (uint32_t)(id & 0x7fffffffu);
}

void journal_file_bytes_set(size_t bytes)
{
    journal_file_bytes = bytes ? bytes : JOURNAL_FILE_BYTES;
}

/* Replay file PATH (file ID) through FN: its records up to its end record,
 * or up to the first that is short, damaged or of an earlier use of the
 * file.  What follows the last record is truncated away if LAST (a torn
 * tail), else an error: an older file was fsynced whole, and ends with its
 * end record or at its size. */
static int journal_replay_file(const char *path, uint64_t id, int last, journal_replay_fn fn, void *arg)
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
    int rc = 0, ended = 0;
    uint32_t tag = journal_tag(id);
    while (off + JOURNAL_HDR <= size) {
        uint32_t magic = get32(buf + off), len = get32(buf + off + 4), crc = get32(buf + off + 8);
        uint32_t rtag = get32(buf + off + 12);
        if (magic == JOURNAL_END_MAGIC && rtag == tag) {
            ended = 1;
            break;
        }
        if (magic != JOURNAL_MAGIC || (rtag != tag && rtag != 0) || len > size - off - JOURNAL_HDR ||
            crc32c(0, buf + off + JOURNAL_HDR, len) != crc)
            break;
        rc = fn(arg, buf + off + JOURNAL_HDR, len);
        if (rc) break;
        off += JOURNAL_HDR + len;
    }
    if (!rc && !ended && off != size) {
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

/* Spare files in DIR; *MAXID gets the largest id in their names (the file
 * each last was, whose tag and older ones their contents hold), 0 if none,
 * and NAME (if not NULL) the name of one of them, "" if none. */
static size_t journal_spares(const char *dir, uint64_t *maxid, char *name, size_t namelen)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    size_t n = 0, plen = strlen(JOURNAL_SPARE_PREFIX);
    *maxid = 0;
    if (name) name[0] = 0;
    while (d && (de = readdir(d)))
        if (!strncmp(de->d_name, JOURNAL_SPARE_PREFIX, plen)) {
            uint64_t id = strtoull(de->d_name + plen, NULL, 16);
            if (id > *maxid) *maxid = id;
            if (name && !n) snprintf(name, namelen, "%s", de->d_name);
            n++;
        }
    if (d) closedir(d);
    return n;
}

/* Make journal file ID in J->dir current: a spare renamed if there is
 * one (written over from offset 0), else a new file. */
static int journal_start_file(journal *j, uint64_t id)
{
    char path[4096], spare[256], from[4400];
    journal_path(j->dir, id, path, sizeof path);
    uint64_t spare_max;
    journal_spares(j->dir, &spare_max, spare, sizeof spare);
    int fd = -1;
    if (spare[0]) {
        snprintf(from, sizeof from, "%s/%s", j->dir, spare);
        if (rename(from, path) == 0) fd = open(path, O_WRONLY | O_CLOEXEC);
        else fprintf(stderr, "lakefs: reuse journal file %s as %s: %s (creating a new one)\n", from, path,
                     strerror(errno));
    }
    if (fd < 0) fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
        int e = errno;
        fprintf(stderr, "lakefs: create journal %s: %s\n", path, strerror(e));
        if (fd >= 0) close(fd);
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
    j->fd = fd; j->id = id; j->written = 0; j->cap = (uint64_t)st.st_size;
    if (!j->first_own) j->first_own = id;
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
        rc = journal_replay_file(path, ids[i], i + 1 == n, fn, arg);
    }
    /* above every id a spare's old contents may carry, so that they never
     * pass for records of a file to come */
    uint64_t spare_max, next = n ? ids[n - 1] + 1 : 1;
    journal_spares(dir, &spare_max, NULL, 0);
    if (next <= spare_max) next = spare_max + 1;
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

/* Write the iovecs IOV (TOTAL bytes) at OFF of J's current file. */
static int journal_pwrite(journal *j, struct iovec *iov, int n, size_t total, uint64_t off)
{
    size_t done = 0;
    while (done < total) {
        ssize_t w = pwritev(j->fd, iov, n, (off_t)(off + done));
        if (w < 0) {
            if (errno == EINTR) continue;
            int e = errno;
            fprintf(stderr, "lakefs: write journal %s/journal.%016" PRIx64 ": %s\n", j->dir, j->id, strerror(e));
            return -e;
        }
        done += (size_t)w;
        size_t skip = (size_t)w;   /* a short write: go on with the rest */
        for (int i = 0; i < n; i++) {
            size_t take = skip < iov[i].iov_len ? skip : iov[i].iov_len;
            iov[i].iov_base = (uint8_t *)iov[i].iov_base + take;
            iov[i].iov_len -= take;
            skip -= take;
        }
    }
    return 0;
}

/* End the current file (its end record, fdatasync) and make file id + 1
 * current; *OLD gets the ended file's id.  Callers serialise it with
 * appends; it waits for a sync round in progress (mu held). */
static int journal_next_locked(journal *j, uint64_t *old)
{
    while (j->syncing) pthread_cond_wait(&j->cv, &j->mu);
    uint8_t end[JOURNAL_HDR];
    uint32_t v[4] = { JOURNAL_END_MAGIC, 0, 0, journal_tag(j->id) };
    memcpy(end, v, sizeof end);
    struct iovec iov = { end, sizeof end };
    int rc = j->sync_err ? j->sync_err : journal_pwrite(j, &iov, 1, sizeof end, j->written);
    if (!rc && fdatasync(j->fd) < 0) {
        rc = -errno;
        fprintf(stderr, "lakefs: fdatasync journal %s/journal.%016" PRIx64 ": %s\n", j->dir, j->id, strerror(-rc));
    }
    if (rc) {
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
    return rc;
}

int journal_append(journal *j, const void *payload, size_t len)
{
    uint8_t hdr[JOURNAL_HDR];
    uint32_t v[4] = { JOURNAL_MAGIC, (uint32_t)len, crc32c(0, payload, len), 0 };
    size_t total = sizeof hdr + len;
    uint64_t limit = j->cap > journal_file_bytes ? j->cap : journal_file_bytes, old;
    if (j->written > 0 && j->written + total + JOURNAL_HDR > limit) {   /* room for the end record */
        pthread_mutex_lock(&j->mu);
        int rc = journal_next_locked(j, &old);
        pthread_mutex_unlock(&j->mu);
        if (rc) return rc;
    }
    v[3] = journal_tag(j->id);
    memcpy(hdr, v, sizeof hdr);
    struct iovec iov[2] = { { hdr, sizeof hdr }, { (void *)payload, len } };
    int rc = journal_pwrite(j, iov, 2, total, j->written);
    if (rc) return rc;
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
            uint64_t bytes = id == j->synced_id && upto > j->synced ? upto - j->synced : upto;
            struct timespec t0, t1;
            pthread_mutex_unlock(&j->mu);
            clock_gettime(CLOCK_MONOTONIC, &t0);
            int rc = fdatasync(fd) < 0 ? -errno : 0;
            clock_gettime(CLOCK_MONOTONIC, &t1);
            pthread_mutex_lock(&j->mu);
            uint64_t ns = (uint64_t)((t1.tv_sec - t0.tv_sec) * 1000000000LL + (t1.tv_nsec - t0.tv_nsec));
            j->stats.syncs++;
            j->stats.bytes += bytes;
            j->stats.ns += ns;
            if (ns > j->stats.max_ns) j->stats.max_ns = ns;
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

void journal_get_stats(journal *j, journal_stats *out)
{
    pthread_mutex_lock(&j->mu);
    *out = j->stats;
    pthread_mutex_unlock(&j->mu);
}

int journal_rotate(journal *j, uint64_t *old)
{
    pthread_mutex_lock(&j->mu);
    int rc = journal_next_locked(j, old);
    pthread_mutex_unlock(&j->mu);
    return rc;
}

int journal_drop(journal *j, uint64_t upto)
{
    uint64_t *ids; size_t n;
    int rc = journal_list(j->dir, &ids, &n);
    if (rc) return rc;
    pthread_mutex_lock(&j->mu);
    uint64_t current = j->id, first_own = j->first_own;
    pthread_mutex_unlock(&j->mu);
    uint64_t spare_max;
    size_t spares = journal_spares(j->dir, &spare_max, NULL, 0);
    char path[4096], spare[4400];
    struct stat st;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] > upto || ids[i] == current) continue;
        journal_path(j->dir, ids[i], path, sizeof path);
        /* kept for reuse: a file of this process (no tag-0 records) that
         * is large enough to be worth it */
        if (spares < JOURNAL_SPARES && ids[i] >= first_own && stat(path, &st) == 0 &&
            (uint64_t)st.st_size >= journal_file_bytes / 2) {
            snprintf(spare, sizeof spare, "%s/" JOURNAL_SPARE_PREFIX "%016" PRIx64, j->dir, ids[i]);
            if (rename(path, spare) == 0) {
                spares++;
                continue;
            }
        }
        if (unlink(path) < 0 && errno != ENOENT) {
            rc = -errno;
            fprintf(stderr, "lakefs: remove journal %s: %s\n", path, strerror(errno));
        }
    }
    free(ids);
    return rc;
}

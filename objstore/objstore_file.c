/*
 * objstore_file.c -- the file:// backend: a repository is a local directory.
 *
 * Each object is a file whose path under the root is its key; the '/' in
 * keys become directories, created (mode 0700) on first use.  The backend
 * must give the same guarantees an object store does:
 *
 *  - put-if-absent is atomic and durable.  The data goes to a temporary
 *    file (".tmp.*", ignored by listing) in the target directory, is
 *    fsync'd, and is then link()ed to its final name: link fails with
 *    EEXIST instead of replacing, so an object is never overwritten and a
 *    reader never sees a partial one.  The directory is fsync'd afterwards
 *    so the new name survives a crash.
 *  - ranged reads use pread, so concurrent readers share nothing.
 *
 * os_open never creates the root: a typo in a URL must fail loudly rather
 * than start an empty repository somewhere unexpected.
 *
 * A scratch store (os_open_scratch) is the same backend on a directory it
 * creates for data that does not outlive the process (a time-travel view's
 * overlay): nothing is fsync'd, and closing it removes the directory.
 */
#include "objstore_backend.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

typedef struct osf {
    char *root;                   /* absolute root directory, no trailing '/' */
    int scratch;                  /* os_open_scratch: no fsync; close removes root */
} osf;

static atomic_uint osf_tmp_counter;  /* makes temp names unique per process */

/* Open the directory named by the file URL remainder REST ("/abs/path"). */
static int osf_open(const char *rest, void **state, char *err, size_t errlen)
{
    struct stat st;
    size_t n = strlen(rest);
    osf *f;

    if (n == 0 || rest[0] != '/') {
        snprintf(err, errlen, "malformed repository URL 'file://%s': expected "
                 "file:///absolute/path", rest);
        return -EINVAL;
    }
    while (n > 1 && rest[n - 1] == '/')
        n--;
    if (stat(rest, &st) < 0) {
        int e = errno;
        snprintf(err, errlen, "repository directory '%s': %s%s", rest,
                 strerror(e), e == ENOENT ? " (create it first)" : "");
        return -e;
    }
    if (!S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "repository path '%s' is not a directory", rest);
        return -ENOTDIR;
    }
    f = calloc(1, sizeof(*f));
    if (!f || !(f->root = strndup(rest, n))) {
        free(f);
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    *state = f;
    return 0;
}

/* Remove directory PATH and everything under it; 0 or -errno (what could
 * be removed is gone). */
static int osf_remove_tree(const char *path)
{
    DIR *d = opendir(path);
    struct dirent *de;
    int rc = 0;

    if (!d)
        return errno == ENOENT ? 0 : -errno;
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        char *sub = malloc(strlen(path) + strlen(de->d_name) + 2);
        if (!sub) {
            rc = -ENOMEM;
            break;
        }
        sprintf(sub, "%s/%s", path, de->d_name);
        int e = unlink(sub) < 0 ? (errno == EISDIR ? osf_remove_tree(sub) : -errno) : 0;
        if (e && !rc)
            rc = e;
        free(sub);
    }
    closedir(d);
    if (rmdir(path) < 0 && !rc)
        rc = -errno;
    return rc;
}

/* Free the backend state (a scratch store's directory goes with it). */
static void osf_close(void *state)
{
    osf *f = state;
    int rc = f->scratch ? osf_remove_tree(f->root) : 0;

    if (rc)
        fprintf(stderr, "lakefs: cannot remove scratch directory %s: %s\n", f->root, strerror(-rc));
    free(f->root);
    free(f);
}

int os_open_scratch(const char *dir, objstore **out, char *err, size_t errlen)
{
    osf *f = calloc(1, sizeof(*f));
    char url[4200];
    int rc;

    *out = NULL;
    if (!f || !(f->root = strdup(dir))) {
        free(f);
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    if (dir[0] != '/' || mkdir(dir, 0700) < 0) {
        rc = dir[0] != '/' ? -EINVAL : -errno;
        snprintf(err, errlen, "cannot create scratch directory %s: %s", dir, strerror(-rc));
        osf_close(f);
        return rc;
    }
    f->scratch = 1;
    snprintf(url, sizeof url, "file://%s", dir);
    if ((rc = os_wrap(&os_file_backend, f, url, out))) {
        snprintf(err, errlen, "out of memory");
        osf_close(f);
    }
    return rc;
}

int os_scratch_remove(const char *dir)
{
    return osf_remove_tree(dir);
}

/* Build root + "/" + KEY into a new malloc'd string, or NULL. */
static char *osf_path(const osf *f, const char *key)
{
    size_t rl = strlen(f->root), kl = strlen(key);
    char *p = malloc(rl + kl + 2);

    if (!p)
        return NULL;
    memcpy(p, f->root, rl);
    /* root "/" already ends in a separator */
    if (rl > 1 || f->root[0] != '/')
        p[rl++] = '/';
    memcpy(p + rl, key, kl + 1);
    return p;
}

/* fsync the directory DIR; 0 or -errno. */
static int osf_fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc = 0;

    if (fd < 0)
        return -errno;
    if (fsync(fd) < 0) {
        rc = -errno;
        fprintf(stderr, "lakefs: fsync %s: %s\n", dir, strerror(errno));
    }
    close(fd);
    return rc;
}

/* Create every missing directory between the root (ROOTLEN bytes of PATH)
 * and the file PATH, fsyncing the parent of each one created. */
static int osf_mkdirs(char *path, size_t rootlen, int durable)
{
    char *parent = path + rootlen;    /* the '/' ending the parent */
    int rc = 0;

    for (char *p = strchr(parent + 1, '/'); p && rc == 0;
         parent = p, p = strchr(p + 1, '/')) {
        *p = '\0';
        if (mkdir(path, 0700) == 0) {
            *parent = '\0';
            rc = durable ? osf_fsync_dir(parent == path ? "/" : path) : 0;
            *parent = '/';
        } else if (errno != EEXIST) {
            rc = -errno;
        }
        *p = '/';
    }
    return rc;
}

/* Write all LEN bytes of BUF to FD; 0 or -errno. */
static int osf_write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;

    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

/* Create KEY with BUF atomically and durably; -EEXIST if it exists. */
static int osf_put_if_absent(void *state, const char *key, const void *buf,
                             size_t len)
{
    osf *f = state;
    char *path = osf_path(f, key), *tmp = NULL, *slash;
    int fd = -1, rc;

    if (!path)
        return -ENOMEM;
    rc = osf_mkdirs(path, strcmp(f->root, "/") ? strlen(f->root) : 0, !f->scratch);
    if (rc < 0)
        goto out;
    slash = strrchr(path, '/');
    tmp = malloc(strlen(path) + 64);
    if (!tmp) {
        rc = -ENOMEM;
        goto out;
    }
    memcpy(tmp, path, (size_t)(slash - path) + 1);
    snprintf(tmp + (slash - path) + 1, 64, ".tmp.%ld.%u", (long)getpid(),
             atomic_fetch_add(&osf_tmp_counter, 1));
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        rc = -errno;
        goto out;
    }
    rc = osf_write_all(fd, buf, len);
    if (rc == 0 && !f->scratch && fsync(fd) < 0)
        rc = -errno;
    if (close(fd) < 0 && rc == 0)
        rc = -errno;
    fd = -1;
    if (rc == 0 && link(tmp, path) < 0)
        rc = -errno;
    unlink(tmp);
    if (rc == 0 && !f->scratch) {
        *slash = '\0';
        rc = osf_fsync_dir(slash == path ? "/" : path);
        *slash = '/';
    }
out:
    free(tmp);
    free(path);
    return rc;
}

/* Open object KEY for reading: its fd, and its size in *SIZE; -ENOENT if
 * there is none (no such file, or not a regular file), or -errno. */
static int osf_open_object(osf *f, const char *key, uint64_t *size)
{
    char *path = osf_path(f, key);
    struct stat st;
    int fd, rc;

    if (!path)
        return -ENOMEM;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    free(path);
    if (fd < 0)
        return errno == ENOTDIR ? -ENOENT : -errno;
    rc = fstat(fd, &st) < 0 ? -errno : S_ISREG(st.st_mode) ? 0 : -ENOENT;
    if (rc) {
        close(fd);
        return rc;
    }
    *size = (uint64_t)st.st_size;
    return fd;
}

/* Read LEN bytes at OFF of KEY (UINT64_MAX: to the end) into a new buffer. */
static int osf_get(void *state, const char *key, uint64_t off, uint64_t len,
                   void **buf, size_t *outlen)
{
    char *p = NULL;
    uint64_t size, n = 0;
    int rc = 0, fd = osf_open_object(state, key, &size);

    if (fd < 0)
        return fd;
    if (off < size)
        n = size - off < len ? size - off : len;
    if (n > SIZE_MAX - 1 || n > (uint64_t)SSIZE_MAX) {
        rc = -EFBIG;
        goto out;
    }
    p = malloc(n ? (size_t)n : 1);
    if (!p) {
        rc = -ENOMEM;
        goto out;
    }
    for (uint64_t done = 0; done < n;) {
        ssize_t r = pread(fd, p + done, (size_t)(n - done), (off_t)(off + done));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rc = -errno;
            goto out;
        }
        if (r == 0) {           /* file shrank: objects never do */
            rc = -EIO;
            goto out;
        }
        done += (uint64_t)r;
    }
    *buf = p;
    *outlen = (size_t)n;
    p = NULL;
out:
    free(p);
    close(fd);
    return rc;
}

/* N consecutive ranges of KEY from OFF into new buffers, all or none:
 * one preadv into the block buffers.  Cost model: the generic path
 * (objstore.c) reads the span into a buffer of its own and copies each
 * range out, an extra allocation and copy of up to a read-ahead job (16
 * blocks, ~1 MiB) per job. */
static int osf_get_ranges(void *state, const char *key, uint64_t off,
                          const uint32_t *lens, size_t n, void **bufs)
{
    struct iovec few[16], *iov = n <= 16 ? few : calloc(n, sizeof *iov);
    uint64_t size, span = 0;
    size_t i, at = 0;
    int rc = 0, fd = -1;

    for (i = 0; i < n; i++)
        bufs[i] = NULL;
    if (!iov)
        return -ENOMEM;
    if ((fd = osf_open_object(state, key, &size)) < 0) {
        rc = fd;
        goto out;
    }
    for (i = 0; i < n && !rc; i++) {
        if (!(bufs[i] = malloc(lens[i] ? lens[i] : 1)))
            rc = -ENOMEM;
        iov[i] = (struct iovec){ bufs[i], lens[i] };
        span += lens[i];
    }
    /* a short read (a signal, a huge span) resumes where it stopped */
    for (uint64_t done = 0; !rc && done < span;) {
        while (at < n && iov[at].iov_len == 0)
            at++;
        int cnt = n - at < IOV_MAX ? (int)(n - at) : IOV_MAX;
        ssize_t r = preadv(fd, iov + at, cnt, (off_t)(off + done));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {               /* 0: the object is shorter than asked */
            rc = r < 0 ? -errno : -EIO;
            break;
        }
        done += (uint64_t)r;
        for (size_t got = (size_t)r; got > 0; at++) {
            size_t take = got < iov[at].iov_len ? got : iov[at].iov_len;
            iov[at].iov_base = (char *)iov[at].iov_base + take;
            iov[at].iov_len -= take;
            got -= take;
            if (iov[at].iov_len)
                break;
        }
    }
out:
    if (fd >= 0)
        close(fd);
    if (iov != few)
        free(iov);
    if (rc)
        for (i = 0; i < n; i++) {
            free(bufs[i]);
            bufs[i] = NULL;
        }
    return rc;
}

/* Size of KEY; -ENOENT if none. */
static int osf_head(void *state, const char *key, uint64_t *size)
{
    osf *f = state;
    char *path = osf_path(f, key);
    struct stat st;
    int rc = 0;

    if (!path)
        return -ENOMEM;
    if (stat(path, &st) < 0)
        rc = errno == ENOTDIR ? -ENOENT : -errno;
    else if (!S_ISREG(st.st_mode))
        rc = -ENOENT;
    else
        *size = (uint64_t)st.st_size;
    free(path);
    return rc;
}

typedef struct osf_keys {
    const char *prefix;           /* keys must start with this */
    char **keys;                  /* collected keys */
    size_t n, cap;
} osf_keys;

/* Append a copy of KEY to L; 0 or -ENOMEM. */
static int osf_list_add(osf_keys *l, const char *key)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        char **k = realloc(l->keys, cap * sizeof(*k));
        if (!k)
            return -ENOMEM;
        l->keys = k;
        l->cap = cap;
    }
    if (!(l->keys[l->n] = strdup(key)))
        return -ENOMEM;
    l->n++;
    return 0;
}

/* Walk directory DIRPATH, whose files have keys starting with REL ("" or
 * ending in '/'), adding keys that match L's prefix. */
static int osf_walk(osf_keys *l, const char *dirpath, const char *rel)
{
    DIR *d = opendir(dirpath);
    struct dirent *de;
    size_t pl = strlen(l->prefix), rl = strlen(rel);
    int rc = 0;

    if (!d)
        return errno == ENOENT || errno == ENOTDIR ? 0 : -errno;
    while (rc == 0 && (errno = 0, de = readdir(d)) != NULL) {
        const char *name = de->d_name;
        size_t nl = strlen(name);
        char *key, *sub;
        int isdir;

        if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0 ||
            strncmp(name, ".tmp.", 5) == 0)
            continue;
        key = malloc(rl + nl + 2);
        sub = malloc(strlen(dirpath) + nl + 2);
        if (!key || !sub) {
            free(key);
            free(sub);
            rc = -ENOMEM;
            break;
        }
        memcpy(key, rel, rl);
        memcpy(key + rl, name, nl + 1);
        sprintf(sub, "%s/%s", dirpath, name);
        if (de->d_type == DT_DIR)
            isdir = 1;
        else if (de->d_type == DT_REG)
            isdir = 0;
        else {
            struct stat st;
            isdir = lstat(sub, &st) == 0 && S_ISDIR(st.st_mode);
        }
        if (isdir) {
            /* descend only where a matching key can live */
            size_t kl = rl + nl;
            key[kl] = '/';
            key[kl + 1] = '\0';
            if (strncmp(key, l->prefix, kl + 1 < pl ? kl + 1 : pl) == 0)
                rc = osf_walk(l, sub, key);
        } else if (strncmp(key, l->prefix, pl) == 0) {
            rc = osf_list_add(l, key);
        }
        free(key);
        free(sub);
    }
    if (rc == 0 && errno != 0)
        rc = -errno;
    closedir(d);
    return rc;
}

/* Unsorted keys starting with PREFIX. */
static int osf_list(void *state, const char *prefix, char ***keys, size_t *n)
{
    osf *f = state;
    osf_keys l = { .prefix = prefix };
    const char *slash = strrchr(prefix, '/');
    size_t dl = slash ? (size_t)(slash - prefix) + 1 : 0;
    char *rel = strndup(prefix, dl), *dir;
    int rc;

    if (!rel)
        return -ENOMEM;
    /* start at the deepest directory the prefix names in full */
    if (dl > 0) {
        rel[dl - 1] = '\0';
        dir = osf_path(f, rel);
        rel[dl - 1] = '/';
    } else {
        dir = strdup(f->root);
    }
    if (!dir) {
        free(rel);
        return -ENOMEM;
    }
    rc = osf_walk(&l, dir, rel);
    free(dir);
    free(rel);
    if (rc < 0) {
        for (size_t i = 0; i < l.n; i++)
            free(l.keys[i]);
        free(l.keys);
        return rc;
    }
    *keys = l.keys;
    *n = l.n;
    return 0;
}

/* Remove KEY; a missing key is success. */
static int osf_del(void *state, const char *key)
{
    osf *f = state;
    char *path = osf_path(f, key);
    int rc = 0;

    if (!path)
        return -ENOMEM;
    if (unlink(path) < 0 && errno != ENOENT && errno != ENOTDIR)
        rc = -errno;
    free(path);
    return rc;
}

/* Remove the N keys KEYS one by one; every key is tried, each failure is
 * logged with its key, and the first one is returned. */
static int osf_del_many(void *state, const char *const *keys, size_t n)
{
    osf *f = state;
    int rc = 0;

    for (size_t i = 0; i < n; i++) {
        int r = osf_del(state, keys[i]);
        if (r < 0) {
            fprintf(stderr, "lakefs: delete %s/%s: %s\n", f->root, keys[i],
                    strerror(-r));
            if (rc == 0)
                rc = r;
        }
    }
    return rc;
}

const os_backend os_file_backend = {
    .scheme = "file://",
    .open = osf_open,
    .close = osf_close,
    .put_if_absent = osf_put_if_absent,
    .get = osf_get,
    .get_ranges = osf_get_ranges,
    .head = osf_head,
    .list = osf_list,
    .del = osf_del,
    .del_many = osf_del_many,
};

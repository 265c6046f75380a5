/*
 * objstore.c -- repository URL dispatch and the checks every backend shares.
 *
 * The store talks to one interface (objstore.h); this file picks the backend
 * from the URL scheme and enforces the key rules once, for all backends:
 * keys are relative paths of [A-Za-z0-9._/-] without empty, "." or ".."
 * components.  Those rules keep a key from escaping a file:// root and keep
 * it a legal, unescaped S3 object name, so a repository can move between
 * backends unchanged.  Results of os_list are sorted here so every backend
 * returns the same order.
 */
#include "objstore.h"
#include "objstore_backend.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct objstore {
    char *url;                    /* URL as given to os_open */
    const os_backend *be;         /* backend chosen by scheme */
    void *state;                  /* backend's private state */
    uint64_t puts, put_bytes;     /* os_counters (atomic) */
};

static const os_backend *const os_backends[] = { &os_file_backend, &os_s3_backend };

/* 1 if C may appear in a key. */
static int os_key_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
           (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '/' ||
           c == '-';
}

/* 0 if S is a valid key (PREFIX: a valid key prefix, which may be empty
 * or end in '/' or a partial component), else -EINVAL. */
static int os_check_key(const char *s, int prefix)
{
    const char *comp = s;

    if (!s || (!prefix && !*s) || *s == '/')
        return -EINVAL;
    for (const char *p = s;; p++) {
        if (*p && !os_key_char(*p))
            return -EINVAL;
        if (*p == '/' || *p == '\0') {
            size_t clen = (size_t)(p - comp);
            int last = (*p == '\0');
            /* an unfinished last component of a prefix may be anything */
            if (!(prefix && last)) {
                if (clen == 0)
                    return -EINVAL;
                if ((clen == 1 && comp[0] == '.') ||
                    (clen == 2 && comp[0] == '.' && comp[1] == '.'))
                    return -EINVAL;
            }
            if (last)
                return 0;
            comp = p + 1;
        }
    }
}

/* Open the repository at URL; on failure write a one-line reason to err. */
int os_open(const char *url, objstore **out, char *err, size_t errlen)
{
    const os_backend *be = NULL;
    objstore *os;
    int rc;

    *out = NULL;
    for (size_t i = 0; i < sizeof(os_backends) / sizeof(os_backends[0]); i++) {
        size_t sl = strlen(os_backends[i]->scheme);
        if (strncmp(url, os_backends[i]->scheme, sl) == 0) {
            be = os_backends[i];
            break;
        }
    }
    if (!be) {
        snprintf(err, errlen, "unknown repository URL scheme in '%s': use "
                 "file:///path or s3://bucket/prefix", url);
        return -EINVAL;
    }
    os = calloc(1, sizeof(*os));
    if (!os || !(os->url = strdup(url))) {
        free(os);
        snprintf(err, errlen, "out of memory opening '%s'", url);
        return -ENOMEM;
    }
    os->be = be;
    rc = be->open(url + strlen(be->scheme), &os->state, err, errlen);
    if (rc < 0) {
        free(os->url);
        free(os);
        return rc;
    }
    *out = os;
    return 0;
}

int os_wrap(const os_backend *be, void *state, const char *url, objstore **out)
{
    objstore *os = calloc(1, sizeof(*os));

    *out = NULL;
    if (!os || !(os->url = strdup(url))) {
        free(os);
        return -ENOMEM;
    }
    os->be = be;
    os->state = state;
    *out = os;
    return 0;
}

/* Close and free. */
void os_close(objstore *os)
{
    if (!os)
        return;
    os->be->close(os->state);
    free(os->url);
    free(os);
}

/* The URL this store was opened with. */
const char *os_url(const objstore *os)
{
    return os->url;
}

/* Create KEY with LEN bytes of BUF, durably; -EEXIST if KEY already exists. */
int os_put_if_absent(objstore *os, const char *key, const void *buf, size_t len)
{
    if (os_check_key(key, 0) < 0)
        return -EINVAL;
    int rc = os->be->put_if_absent(os->state, key, buf, len);
    if (rc == 0) {
        __atomic_add_fetch(&os->puts, 1, __ATOMIC_RELAXED);
        __atomic_add_fetch(&os->put_bytes, (uint64_t)len, __ATOMIC_RELAXED);
    }
    return rc;
}

void os_get_counters(objstore *os, os_counters *c)
{
    c->puts = __atomic_load_n(&os->puts, __ATOMIC_RELAXED);
    c->put_bytes = __atomic_load_n(&os->put_bytes, __ATOMIC_RELAXED);
}

/* Read a range of KEY into a new malloc'd buffer; -ENOENT if none. */
int os_get(objstore *os, const char *key, uint64_t off, uint64_t len,
           void **buf, size_t *outlen)
{
    *buf = NULL;
    *outlen = 0;
    if (os_check_key(key, 0) < 0)
        return -EINVAL;
    return os->be->get(os->state, key, off, len, buf, outlen);
}

/* os_get_ranges through BE's get: one get of the span, copied out. */
static int os_get_span_split(const os_backend *be, void *state, const char *key,
                             uint64_t off, const uint32_t *lens, size_t n,
                             void **bufs)
{
    uint64_t span = 0, at = 0;
    size_t got, i;
    void *all;
    int rc;

    for (i = 0; i < n; i++)
        span += lens[i];
    if ((rc = be->get(state, key, off, span, &all, &got)) < 0)
        return rc;
    for (i = 0; i < n && got == span; i++) {
        if (!(bufs[i] = malloc(lens[i] ? lens[i] : 1)))
            break;
        memcpy(bufs[i], (uint8_t *)all + at, lens[i]);
        at += lens[i];
    }
    free(all);
    if (i == n)
        return 0;
    while (i > 0)
        free(bufs[--i]);
    return got == span ? -ENOMEM : -EIO;
}

/* Read N consecutive ranges of KEY from OFF into new buffers, all or none. */
int os_get_ranges(objstore *os, const char *key, uint64_t off,
                  const uint32_t *lens, size_t n, void **bufs)
{
    if (os_check_key(key, 0) < 0)
        return -EINVAL;
    if (n == 0)
        return 0;
    if (os->be->get_ranges)
        return os->be->get_ranges(os->state, key, off, lens, n, bufs);
    return os_get_span_split(os->be, os->state, key, off, lens, n, bufs);
}

/* Size of KEY in *SIZE; -ENOENT if none. */
int os_head(objstore *os, const char *key, uint64_t *size)
{
    if (os_check_key(key, 0) < 0)
        return -EINVAL;
    return os->be->head(os->state, key, size);
}

/* qsort comparator for an array of C strings. */
static int os_strcmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* All keys starting with PREFIX, sorted ascending. */
int os_list(objstore *os, const char *prefix, char ***keys, size_t *n)
{
    int rc;

    *keys = NULL;
    *n = 0;
    if (os_check_key(prefix, 1) < 0)
        return -EINVAL;
    rc = os->be->list(os->state, prefix, keys, n);
    if (rc < 0)
        return rc;
    if (*n > 1)
        qsort(*keys, *n, sizeof(**keys), os_strcmp);
    return 0;
}

/* Free a list returned by os_list. */
void os_list_free(char **keys, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(keys[i]);
    free(keys);
}

/* Remove KEY; removing a missing key succeeds. */
int os_delete(objstore *os, const char *key)
{
    if (os_check_key(key, 0) < 0)
        return -EINVAL;
    return os->be->del(os->state, key);
}

/* Remove the N keys KEYS; missing keys succeed, invalid ones remove none. */
int os_delete_many(objstore *os, const char *const *keys, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (os_check_key(keys[i], 0) < 0)
            return -EINVAL;
    return n ? os->be->del_many(os->state, keys, n) : 0;
}

/* Hand the answers to N consecutive ranged gets of KEY to a caching backend. */
void os_prime(objstore *os, const char *key, uint64_t off,
              const uint32_t *lens, size_t n, const void *data)
{
    if (os->be->prime && n && os_check_key(key, 0) == 0)
        os->be->prime(os->state, key, off, lens, n, data);
}

/* Hand the size of KEY to a caching backend. */
void os_prime_size(objstore *os, const char *key, uint64_t size)
{
    if (os->be->prime_size && os_check_key(key, 0) == 0)
        os->be->prime_size(os->state, key, size);
}

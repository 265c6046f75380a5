/*
 * objstore_backend.h -- private interface between objstore.c (URL dispatch,
 * key validation) and one storage backend (objstore_file.c today, S3 next).
 *
 * objstore.c has already validated every key and prefix before a backend
 * sees it, so backends only map keys to their own namespace.
 */
#ifndef LAKEFS_OBJSTORE_BACKEND_H
#define LAKEFS_OBJSTORE_BACKEND_H

#include <stddef.h>
#include <stdint.h>
#include "objstore.h"

typedef struct os_backend {
    const char *scheme;           /* URL prefix handled, e.g. "file://" */
    /* Open the location REST (URL minus scheme) into *STATE. */
    int (*open)(const char *rest, void **state, char *err, size_t errlen);
    void (*close)(void *state);
    int (*put_if_absent)(void *state, const char *key, const void *buf, size_t len);
    int (*get)(void *state, const char *key, uint64_t off, uint64_t len,
               void **buf, size_t *outlen);
    /* Optional (NULL: one get of the span, split): os_get_ranges. */
    int (*get_ranges)(void *state, const char *key, uint64_t off,
                      const uint32_t *lens, size_t n, void **bufs);
    int (*head)(void *state, const char *key, uint64_t *size);
    /* Unsorted keys starting with PREFIX; objstore.c sorts them. */
    int (*list)(void *state, const char *prefix, char ***keys, size_t *n);
    int (*del)(void *state, const char *key);
    /* Remove N >= 1 keys, as few requests as the backend allows. */
    int (*del_many)(void *state, const char *const *keys, size_t n);
    /* Optional (NULL: ignored): remember answers for an object just
     * written, as os_prime and os_prime_size describe. */
    void (*prime)(void *state, const char *key, uint64_t off,
                  const uint32_t *lens, size_t n, const void *data);
    void (*prime_size)(void *state, const char *key, uint64_t size);
} os_backend;

extern const os_backend os_file_backend;
extern const os_backend os_s3_backend;

/* Make *OUT a store named URL whose calls go to BE with STATE: a wrapper
 * around another store (the disk cache), never chosen by URL scheme. */
int os_wrap(const os_backend *be, void *state, const char *url, objstore **out);

#endif

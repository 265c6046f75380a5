/*
 * objstore.h -- the object-store interface the store reaches repositories by.
 *
 * A repository is a flat namespace of immutable objects under one URL
 * (file:///path today, s3://bucket/prefix next).  The store needs exactly
 * four operations, chosen so every backend can implement them atomically:
 * put-if-absent (the only way an object comes to exist, so nothing is ever
 * overwritten), ranged get, list by prefix, and delete.  Deleting many keys
 * at once is offered too, because an object store removes up to a thousand
 * keys in one request where deleting them one by one costs a round trip
 * each (garbage collection is to remove layers by the thousand).
 *
 * Keys are relative paths made of [A-Za-z0-9._/-]; '/' separates levels.
 * All functions return 0 on success or a negative errno.
 */
#ifndef LAKEFS_OBJSTORE_H
#define LAKEFS_OBJSTORE_H

#include <stddef.h>
#include <stdint.h>

typedef struct objstore objstore;

/* Open the repository at URL; on failure write a one-line reason to err. */
int os_open(const char *url, objstore **out, char *err, size_t errlen);
/* Close and free. */
void os_close(objstore *os);
/* The URL this store was opened with. */
const char *os_url(const objstore *os);
/* A store for objects that do not outlive the process, in directory DIR
 * (absolute), created now (mode 0700; -EEXIST if it exists): file://
 * without fsync; os_close removes DIR with everything in it. */
int os_open_scratch(const char *dir, objstore **out, char *err, size_t errlen);
/* Remove scratch directory DIR left by a process that is gone. */
int os_scratch_remove(const char *dir);

/* Create KEY with LEN bytes of BUF, durably; -EEXIST if KEY already exists. */
int os_put_if_absent(objstore *os, const char *key, const void *buf, size_t len);
/* Read LEN bytes at OFF of KEY (LEN == UINT64_MAX: to the end) into a new
 * malloc'd *BUF of *OUTLEN bytes (short at end of object); -ENOENT if none. */
int os_get(objstore *os, const char *key, uint64_t off, uint64_t len,
           void **buf, size_t *outlen);
/* Read N consecutive ranges of KEY, the first at OFF, of LENS[i] bytes each,
 * into new malloc'd BUFS[i]: all of them (-EIO if the object ends inside
 * one) or none.  One ranged get of their span where the store must fetch;
 * a caching store keeps each range as os_get(KEY, off_i, LENS[i]) would. */
int os_get_ranges(objstore *os, const char *key, uint64_t off,
                  const uint32_t *lens, size_t n, void **bufs);
/* Size of KEY in *SIZE; -ENOENT if none. */
int os_head(objstore *os, const char *key, uint64_t *size);
/* All keys starting with PREFIX, sorted ascending, in a malloc'd array of
 * malloc'd strings; free with os_list_free. */
int os_list(objstore *os, const char *prefix, char ***keys, size_t *n);
void os_list_free(char **keys, size_t n);
/* Remove KEY; removing a missing key succeeds. */
int os_delete(objstore *os, const char *key);
/* Remove the N keys KEYS; missing keys succeed.  -EINVAL, with nothing
 * removed, if any key is invalid; after another error some may be gone. */
int os_delete_many(objstore *os, const char *const *keys, size_t n);

/* What this handle has written (for benchmarks: write amplification). */
typedef struct os_counters {
    uint64_t puts;                /* objects created */
    uint64_t put_bytes;           /* ... and their bytes */
} os_counters;
void os_get_counters(objstore *os, os_counters *c);

/* Tell a caching store (objcache.h) that, for N consecutive ranges from
 * OFF, os_get(KEY, off_i, LENS[i]) returns the LENS[i] bytes at their place
 * in DATA (the ranges' bytes back to back): for an object this process has
 * just written, so that reading it back needs no round trip to the
 * repository (nor a reachable one).  Best effort; stores without a cache
 * ignore it. */
void os_prime(objstore *os, const char *key, uint64_t off,
              const uint32_t *lens, size_t n, const void *data);
/* Likewise: os_head(KEY) returns SIZE. */
void os_prime_size(objstore *os, const char *key, uint64_t size);

#endif

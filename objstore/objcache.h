/*
 * objcache.h -- a bounded local disk cache in front of an object store.
 *
 * objcache_open wraps a repository (objstore) and returns a second objstore
 * handle, objcache_store(), that behaves exactly like the first: the store
 * uses it unchanged.  Gets and heads of layer objects (keys containing
 * "/layers/", immutable once written) are answered from files in a local
 * directory when possible and remembered there otherwise; the layers this
 * daemon uploads are remembered at once (os_prime, from layer_open_uploaded),
 * so reading back what it wrote needs neither a download nor a reachable
 * repository.  Everything else (manifests, leases, puts, lists) goes
 * straight to the repository.  Entries
 * are checksummed, the directory is bounded (LRU eviction), owner-only, and
 * reused by the next daemon that opens it.  See objcache.c for the layout.
 */
#ifndef LAKEFS_OBJCACHE_H
#define LAKEFS_OBJCACHE_H

#include <stddef.h>
#include <stdint.h>
#include "objstore.h"

typedef struct objcache objcache;

typedef struct objcache_counters {
    uint64_t hits;                /* layer gets/heads answered from disk */
    uint64_t misses;              /* layer gets/heads sent to the repository */
    uint64_t downloaded;          /* bytes of all gets served by the repository */
    uint64_t discarded;           /* files dropped as corrupt or unreadable */
    uint64_t evicted;             /* files deleted to stay under the bound */
    uint64_t entries;             /* files cached now (one per get filling it) */
    uint64_t bytes;               /* disk they use now (4 KiB per started block) */
} objcache_counters;

/* Open (creating it 0700 if missing) the cache directory DIR, bounded to
 * LIMIT bytes, in front of INNER, which must outlive the cache.  Entries
 * already in DIR are kept (least recently used dropped beyond LIMIT).
 * -EBUSY if another process has DIR open (one finishing its unmount is
 * waited for: dirlock.h).  On failure a one-line reason goes to ERR. */
int objcache_open(objstore *inner, const char *dir, uint64_t limit,
                  objcache **out, char *err, size_t errlen);
/* The caching view of the repository; valid until objcache_close. */
objstore *objcache_store(objcache *c);
/* A snapshot of the counters. */
void objcache_stats(objcache *c, objcache_counters *out);
/* Write the counters as "name value" lines to PATH (atomically replaced). */
int objcache_write_stats(objcache *c, const char *path);
/* The mount using C is gone and objcache_close follows: let a daemon
 * opening DIR meanwhile wait for the close (dirlock_unmounting). */
int objcache_unmounting(objcache *c);
/* Close the view and free the cache; files stay for the next open. */
void objcache_close(objcache *c);

#endif

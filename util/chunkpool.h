/*
 * chunkpool.h -- 2 MiB chunks of memory kept for reuse.
 *
 * The daemon's big buffers come and go with every request and flush: a
 * write's pages and batch, a memtable's versions.  From malloc each came
 * back faulted in page by page (glibc and the flush's malloc_trim give
 * freed pages to the kernel), which costs 2 to 11.6 us per 4 KiB page on
 * the virtual machines this runs on.  A chunk is mapped on its own,
 * aligned to 2 MiB and advised as a transparent huge page (one fault
 * when new), and a freed chunk goes to a process-wide pool of up to
 * CHUNK_POOL_MAX that the next chunk_get takes first.  A chunk is mapped
 * only when the pool is empty, so the pool holds only memory that was in
 * use before (up to 32 MiB of it while idle).  Under AddressSanitizer a
 * chunk in the pool is poisoned.
 */
#ifndef LAKEFS_CHUNKPOOL_H
#define LAKEFS_CHUNKPOOL_H

#include <stddef.h>

/* Mark N bytes at P unusable / usable again for AddressSanitizer (no-ops
 * without it): a chunk's user poisons what it has not handed out. */
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define CHUNK_POISON(p, n) ASAN_POISON_MEMORY_REGION(p, n)
#define CHUNK_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#else
#define CHUNK_POISON(p, n) ((void)(p), (void)(n))
#define CHUNK_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#define CHUNK_SIZE ((size_t)2 << 20)    /* one huge page */
#define CHUNK_POOL_MAX 16               /* chunks kept: 32 MiB */
#define CHUNK_SMALL ((size_t)64 << 10)  /* a buffer up to this comes from malloc */

/* A chunk of CHUNK_SIZE bytes (contents undefined), or NULL. */
void *chunk_get(void);
/* Give chunk C back: to the pool while it has room, else to the kernel. */
void chunk_put(void *c);
/* A buffer of N bytes: a chunk when N is past CHUNK_SMALL and fits one
 * (a write's pages, its batch), else from malloc; NULL when out of memory. */
void *chunk_buf_alloc(size_t n);
/* Free P, from chunk_buf_alloc(N) with the same N (NULL: nothing). */
void chunk_buf_free(void *p, size_t n);
/* SIZE bytes (a multiple of the page size) mapped on their own, not
 * pooled, or NULL: for what does not fit in a chunk. */
void *chunk_map_big(size_t size);
/* Unmap what chunk_map_big gave. */
void chunk_unmap_big(void *p, size_t size);

#endif

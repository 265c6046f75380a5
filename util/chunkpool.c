/*
 * chunkpool.c -- the pool of 2 MiB chunks (see chunkpool.h).
 *
 * The pool is a stack under one mutex: a get or put is a few
 * instructions, taken once per memtable chunk (2 MiB of versions) or per
 * FUSE write of more than 64 KiB, so the lock is never contended for
 * long.  A chunk is aligned by mapping twice its size and unmapping the
 * ends: the kernel backs a 2 MiB-aligned range with a huge page only.
 * AddressSanitizer keeps the poison of an unmapped range for whatever is
 * mapped there next, so a chunk is unpoisoned before it is unmapped.
 */
#include "chunkpool.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>

typedef struct free_chunk {
    struct free_chunk *next;      /* the pool's next chunk */
} free_chunk;

static pthread_mutex_t pool_mu = PTHREAD_MUTEX_INITIALIZER;
static free_chunk *pool;          /* free chunks, the last freed first */
static int pool_n;

/* Map a new chunk, aligned to its size and advised as a huge page. */
static void *chunk_map(void)
{
    uint8_t *p = mmap(NULL, 2 * CHUNK_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return NULL;
    size_t head = (CHUNK_SIZE - (uintptr_t)p % CHUNK_SIZE) % CHUNK_SIZE;
    if (head) munmap(p, head);
    munmap(p + head + CHUNK_SIZE, CHUNK_SIZE - head);
    p += head;
    (void)madvise(p, CHUNK_SIZE, MADV_HUGEPAGE);   /* advice: the kernel may say no */
    return p;
}

void *chunk_get(void)
{
    pthread_mutex_lock(&pool_mu);
    free_chunk *c = pool;
    if (c) {
        CHUNK_UNPOISON(c, sizeof *c);
        pool = c->next;
        pool_n--;
    }
    pthread_mutex_unlock(&pool_mu);
    if (!c) return chunk_map();
    CHUNK_UNPOISON(c, CHUNK_SIZE);
    return c;
}

void chunk_put(void *p)
{
    if (!p) return;
    free_chunk *c = p;
    pthread_mutex_lock(&pool_mu);
    int kept = pool_n < CHUNK_POOL_MAX;
    if (kept) {
        c->next = pool;
        pool = c;
        pool_n++;
        CHUNK_POISON(c, CHUNK_SIZE);   /* the link too: read only under pool_mu, unpoisoned first */
    }
    pthread_mutex_unlock(&pool_mu);
    if (!kept) {
        CHUNK_UNPOISON(p, CHUNK_SIZE);   /* else the range stays poisoned for its next mapping */
        munmap(p, CHUNK_SIZE);
    }
}

/* Whether a buffer of N bytes is a chunk. */
static int chunk_buf_pooled(size_t n)
{
    return n > CHUNK_SMALL && n <= CHUNK_SIZE;
}

void *chunk_buf_alloc(size_t n)
{
    return chunk_buf_pooled(n) ? chunk_get() : malloc(n ? n : 1);
}

void chunk_buf_free(void *p, size_t n)
{
    if (chunk_buf_pooled(n)) chunk_put(p);
    else free(p);
}

void *chunk_map_big(size_t size)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

void chunk_unmap_big(void *p, size_t size)
{
    if (!p) return;
    CHUNK_UNPOISON(p, size);
    munmap(p, size);
}

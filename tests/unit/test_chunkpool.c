/*
 * test_chunkpool.c -- the pool of 2 MiB chunks (util/chunkpool.h).
 *
 * Chunks are aligned and distinct while held; a freed chunk comes back
 * from the pool; past CHUNK_POOL_MAX freed chunks are unmapped, and a
 * chunk mapped where one was (its user having poisoned part of it, as the
 * memtable does) is wholly usable: under AddressSanitizer every byte of
 * every chunk handed out is written, so stale poison would abort.
 */
#include "harness.h"
#include "chunkpool.h"

#include <stdint.h>

#define HELD (CHUNK_POOL_MAX + 8)

int main(void)
{
    uint8_t *c[HELD];
    size_t misaligned = 0, overlaps = 0;
    for (int round = 0; round < 4; round++) {
        for (int i = 0; i < HELD; i++) {
            c[i] = chunk_get();
            CHECK(c[i] != NULL);
            if (!c[i]) return harness_done();
            if ((uintptr_t)c[i] % CHUNK_SIZE) misaligned++;
            memset(c[i], round + 1, CHUNK_SIZE);          /* every byte usable */
            for (int j = 0; j < i; j++)
                if (c[j] == c[i]) overlaps++;
        }
        /* the users poison what they have not handed out (memtable.c) */
        for (int i = 0; i < HELD; i++) CHUNK_POISON(c[i] + 4096 * (i + 1), CHUNK_SIZE - 4096 * (i + 1));
        for (int i = 0; i < HELD; i++) chunk_put(c[i]);
    }
    CHECK(misaligned == 0);
    CHECK(overlaps == 0);
    /* the last chunk freed is the first one taken again */
    uint8_t *a = chunk_get();
    CHECK(a == c[CHUNK_POOL_MAX - 1]);
    chunk_put(a);
    /* a mapping of its own, past a chunk */
    size_t big = CHUNK_SIZE + 3 * 4096;
    uint8_t *b = chunk_map_big(big);
    CHECK(b != NULL);
    if (b) {
        memset(b, 7, big);
        CHUNK_POISON(b + 4096, big - 4096);
        chunk_unmap_big(b, big);
    }
    b = chunk_map_big(big);                               /* likely where it was */
    if (b) {
        memset(b, 8, big);
        chunk_unmap_big(b, big);
    }
    return harness_done();
}

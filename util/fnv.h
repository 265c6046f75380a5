/*
 * fnv.h -- 64-bit FNV-1a, the project's one non-cryptographic hash: the
 * in-memory hash tables (block cache, disk cache index, start-up keys) and
 * the default state directory's name.  Fast and stable across versions
 * (state directory names depend on it); not for values an attacker picks
 * to collide.
 */
#ifndef LAKEFS_FNV_H
#define LAKEFS_FNV_H

#include <stddef.h>
#include <stdint.h>

#define FNV1A_INIT 0xcbf29ce484222325ull  /* the hash of no bytes */

/* H extended by the N bytes at P. */
static inline uint64_t fnv1a(uint64_t h, const void *p, size_t n)
{
    const uint8_t *b = p;

    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

#endif

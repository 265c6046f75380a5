/*
 * crc32c.c -- CRC-32C (Castagnoli polynomial, reflected 0x82F63B78).
 *
 * Every journal record, layer block, layer index and manifest carries a
 * CRC-32C, and a cold read checks one per 64 KiB block it fetches: in a
 * profile of a cold sequential read the checksum took a tenth of the
 * daemon's CPU.  x86-64 CPUs since 2008 compute CRC-32C in hardware
 * (SSE4.2's crc32 instruction: 8 bytes per instruction, a few times the
 * speed of the best table method), so crc32c() uses it when the CPU has it
 * and the portable slicing-by-8 method otherwise: eight 256-entry tables
 * let the inner loop consume eight bytes per step with table lookups only.
 * The choice and the tables are made once, thread-safely, with
 * pthread_once.
 */
#include "crc32c.h"

#include <pthread.h>
#include <string.h>

#define CRC32C_POLY 0x82F63B78u

static uint32_t crc_table[8][256];          /* slicing-by-8 lookup tables */
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;
static uint32_t (*crc_impl)(uint32_t, const uint8_t *, size_t);   /* on ~crc */

/* The portable method on the inverted CRC. */
static uint32_t crc_tables(uint32_t crc, const uint8_t *p, size_t len)
{
    while (len >= 8) {
        uint32_t lo = crc ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 |
                             (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24);
        crc = crc_table[7][lo & 0xff] ^ crc_table[6][(lo >> 8) & 0xff] ^
              crc_table[5][(lo >> 16) & 0xff] ^ crc_table[4][lo >> 24] ^
              crc_table[3][p[4]] ^ crc_table[2][p[5]] ^
              crc_table[1][p[6]] ^ crc_table[0][p[7]];
        p += 8;
        len -= 8;
    }
    while (len--)
        crc = (crc >> 8) ^ crc_table[0][(crc ^ *p++) & 0xff];
    return crc;
}

#if defined(__x86_64__) && defined(__GNUC__)
/* SSE4.2's crc32 instruction on the inverted CRC. */
__attribute__((target("sse4.2")))
static uint32_t crc_sse42(uint32_t crc, const uint8_t *p, size_t len)
{
    uint64_t c = crc;
    for (; len >= 8; p += 8, len -= 8) {
        uint64_t v;
        memcpy(&v, p, 8);         /* any alignment */
        c = __builtin_ia32_crc32di(c, v);
    }
    for (; len; p++, len--)
        c = __builtin_ia32_crc32qi((uint32_t)c, *p);
    return (uint32_t)c;
}
#endif

/* Fill crc_table and choose the method; run exactly once. */
static void crc32c_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? (c >> 1) ^ CRC32C_POLY : c >> 1;
        crc_table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = crc_table[0][i];
        for (int t = 1; t < 8; t++) {
            c = (c >> 8) ^ crc_table[0][c & 0xff];
            crc_table[t][i] = c;
        }
    }
    crc_impl = crc_tables;
#if defined(__x86_64__) && defined(__GNUC__)
    if (__builtin_cpu_supports("sse4.2"))
        crc_impl = crc_sse42;
#endif
}

uint32_t crc32c(uint32_t crc, const void *buf, size_t len)
{
    pthread_once(&crc_once, crc32c_init);
    return ~crc_impl(~crc, buf, len);
}

uint32_t crc32c_portable(uint32_t crc, const void *buf, size_t len)
{
    pthread_once(&crc_once, crc32c_init);
    return ~crc_tables(~crc, buf, len);
}

/*
 * crc32c.c -- software CRC-32C (Castagnoli polynomial, reflected 0x82F63B78).
 *
 * Every journal record, layer block, layer index and manifest carries a
 * CRC-32C.  This is the portable slicing-by-8 algorithm: eight 256-entry
 * tables let the inner loop consume eight bytes per step with table lookups
 * only, which is several times faster than the byte-at-a-time loop and needs
 * no CPU-specific instructions.  The tables are built once, thread-safely,
 * with pthread_once.
 */
#include "crc32c.h"

#include <pthread.h>

#define CRC32C_POLY 0x82F63B78u

static uint32_t crc_table[8][256];          /* slicing-by-8 lookup tables */
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

/* Fill crc_table; run exactly once. */
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
}

/* Extend CRC (start with 0) over LEN bytes of BUF. */
uint32_t crc32c(uint32_t crc, const void *buf, size_t len)
{
    const uint8_t *p = buf;

    pthread_once(&crc_once, crc32c_init);
    crc = ~crc;
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
    return ~crc;
}

/*
 * test_crc32c.c -- CRC-32C against published vectors and a bitwise
 * reference, including incremental use and every alignment; the method
 * crc32c() uses on this CPU (hardware where it can) and the portable one
 * both.
 */
#include "harness.h"
#include "crc32c.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The textbook one-bit-at-a-time CRC-32C. */
static uint32_t ref_crc(uint32_t crc, const uint8_t *p, size_t n)
{
    crc = ~crc;
    while (n--) {
        crc ^= *p++;
        for (int k = 0; k < 8; k++)
            crc = (crc & 1) ? (crc >> 1) ^ 0x82F63B78u : crc >> 1;
    }
    return ~crc;
}

int main(void)
{
    uint8_t buf[4096 + 16];

    CHECK(crc32c(0, "123456789", 9) == 0xE3069283u);
    CHECK(crc32c(0, "", 0) == 0);
    /* RFC 3720 (iSCSI) B.4 vectors */
    memset(buf, 0, 32);
    CHECK(crc32c(0, buf, 32) == 0x8A9136AAu);
    memset(buf, 0xff, 32);
    CHECK(crc32c(0, buf, 32) == 0x62A8AB43u);
    for (int i = 0; i < 32; i++)
        buf[i] = (uint8_t)i;
    CHECK(crc32c(0, buf, 32) == 0x46DD794Eu);
    for (int i = 0; i < 32; i++)
        buf[i] = (uint8_t)(31 - i);
    CHECK(crc32c(0, buf, 32) == 0x113FDB5Cu);

    srand(12345);
    for (size_t i = 0; i < sizeof(buf); i++)
        buf[i] = (uint8_t)rand();
    /* every length 0..300 at every alignment 0..7, both methods */
    for (size_t off = 0; off < 8; off++)
        for (size_t n = 0; n <= 300; n++) {
            CHECK(crc32c(0, buf + off, n) == ref_crc(0, buf + off, n));
            CHECK(crc32c_portable(0, buf + off, n) == ref_crc(0, buf + off, n));
        }
    CHECK(crc32c_portable(0, "123456789", 9) == 0xE3069283u);
    /* a layer block's size, continued from a seed */
    CHECK(crc32c(0x12345678u, buf, 4096) == crc32c_portable(0x12345678u, buf, 4096));
    CHECK(crc32c(0x12345678u, buf, 4096) == ref_crc(0x12345678u, buf, 4096));
    /* incremental == one shot, at random split points */
    for (int t = 0; t < 200; t++) {
        size_t n = (size_t)rand() % 4096, cut = n ? (size_t)rand() % n : 0;
        uint32_t whole = crc32c(0, buf, n);
        CHECK(crc32c(crc32c(0, buf, cut), buf + cut, n - cut) == whole);
        CHECK(whole == ref_crc(0, buf, n));
    }
    /* a single flipped bit always changes the crc */
    {
        uint32_t c = crc32c(0, buf, 1000);
        for (int bit = 0; bit < 8000; bit += 37) {
            buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
            CHECK(crc32c(0, buf, 1000) != c);
            buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        }
    }
    return harness_done();
}

/*
 * crc32c.h -- CRC-32C (Castagnoli), the checksum on every journal record,
 * layer block, layer index and manifest.
 */
#ifndef LAKEFS_CRC32C_H
#define LAKEFS_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Extend CRC (start with 0) over LEN bytes of BUF (in hardware where the
 * CPU can). */
uint32_t crc32c(uint32_t crc, const void *buf, size_t len);
/* The same with the portable table method always (tests compare them). */
uint32_t crc32c_portable(uint32_t crc, const void *buf, size_t len);

#endif

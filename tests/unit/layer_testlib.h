/*
 * layer_testlib.h -- what test_layer.c and test_layer_fetch.c share: the
 * tests' own reading of a layer's index (the layout is in
 * store/layer_format.h), giving each block's offset, compressed length,
 * first key and where its checksum sits.
 *
 * Read apart from the reader under test, so that the tests can damage one
 * block of a layer (test_layer.c) or name the blocks a read-ahead or a
 * warm-up must fetch (test_layer_fetch.c).
 */
#ifndef LAKEFS_LAYER_TESTLIB_H
#define LAKEFS_LAYER_TESTLIB_H

#include <stddef.h>
#include <stdint.h>

typedef struct blkinfo {
    uint64_t off;
    uint32_t clen;
    const uint8_t *first;
    size_t firstlen;
    const uint8_t *crcp;          /* where the block's crc sits in the index */
} blkinfo;

/* Parse the index of the layer in BUF[0..LEN) into BI (at most MAX blocks)
 * and its offset and length into *IOFF and *ILEN; returns nblocks. */
size_t parse_index(uint8_t *buf, size_t len, blkinfo *bi, size_t max,
                   uint64_t *ioff, uint64_t *ilen);

#endif

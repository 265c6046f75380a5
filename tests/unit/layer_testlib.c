/*
 * layer_testlib.c -- the tests' own reading of a layer's index, for
 * test_layer.c and test_layer_fetch.c (see layer_testlib.h).
 */
#include "layer_testlib.h"
#include "layer_format.h"

/* Parse the index of the layer in BUF for the test; returns nblocks. */
size_t parse_index(uint8_t *buf, size_t len, blkinfo *bi, size_t max,
                   uint64_t *ioff, uint64_t *ilen)
{
    const uint8_t *foot = buf + len - LAYER_FOOTER_SIZE, *p, *end;
    uint64_t nb = 0, kl = 0;

    *ioff = layer_get64(foot + 16);
    *ilen = layer_get64(foot + 24);
    p = buf + *ioff;
    end = p + *ilen;
    layer_get_varint(&p, end, &nb);
    for (size_t i = 0; i < nb && i < max; i++) {
        layer_get_varint(&p, end, &kl);
        bi[i].first = p;
        bi[i].firstlen = (size_t)kl;
        p += kl;
        bi[i].off = layer_get64(p);
        bi[i].clen = layer_get32(p + 8);
        bi[i].crcp = p + 16;
        p += 20;
    }
    return (size_t)nb;
}

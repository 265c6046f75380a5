/*
 * test_journal_remote.c -- segments and chains of the remote journal.
 *
 * The remote journal is what a new machine replays and what fences a
 * writer that lost its branch, so the tests check both halves: the decoder
 * accepts exactly what the encoder wrote (every truncation and every byte
 * flip is -EIO), and the chain rules on a file:// repository: a claim
 * hands over exactly the batches after FROM in order, fences the chain's
 * end so the old session's next upload fails with -ESTALE, an earlier
 * partial upload is reported with its last seq, a second claim sees the
 * same chain, and trimming removes data segments but never a fence.
 */
#include "harness.h"
#include "journal_remote.h"

#include <errno.h>
#include <stdint.h>
#include <sys/stat.h>

/* Records of batches FIRST..LAST (each: u32 length, seq, 4 bytes of tag). */
static size_t make_recs(uint8_t *buf, uint64_t first, uint64_t last, uint32_t tag)
{
    size_t off = 0;
    for (uint64_t s = first; s <= last; s++) {
        uint32_t rl = 12;
        memcpy(buf + off, &rl, 4);
        memcpy(buf + off + 4, &s, 8);
        memcpy(buf + off + 12, &tag, 4);
        off += 16;
    }
    return off;
}

typedef struct seen {
    uint64_t seqs[64];
    uint32_t tags[64];
    int n;
} seen;

/* Apply callback: remember each batch's seq and tag. */
static int collect(void *arg, const uint8_t *b, size_t len)
{
    seen *s = arg;
    if (len != 12 || s->n == 64) return -EIO;
    memcpy(&s->seqs[s->n], b, 8);
    memcpy(&s->tags[s->n], b + 8, 4);
    s->n++;
    return 0;
}

static void test_codec(void)
{
    uint8_t recs[256];
    size_t rlen = make_recs(recs, 7, 9, 0xabcd);
    void *obj;
    size_t olen, got;
    const uint8_t *r;
    int fence;
    uint64_t f, l;
    CHECK(jremote_encode(0, 3, 7, 9, 0, recs, rlen, &obj, &olen) == 0);
    CHECK(jremote_decode(obj, olen, &fence, &f, &l, &r, &got) == 0);
    CHECK(!fence && f == 7 && l == 9 && got == rlen && !memcmp(r, recs, rlen));
    int bad = 0;
    for (size_t n = 0; n < olen; n++)
        bad += jremote_decode(obj, n, &fence, &f, &l, &r, &got) != -EIO;
    uint8_t *copy = malloc(olen);
    for (size_t pos = 0; pos < olen; pos++)
        for (int bit = 0; bit < 8; bit++) {
            memcpy(copy, obj, olen);
            copy[pos] ^= (uint8_t)(1u << bit);
            bad += jremote_decode(copy, olen, &fence, &f, &l, &r, &got) != -EIO;
        }
    CHECK(bad == 0);
    free(copy);
    free(obj);
    /* a well-formed object whose records are not exactly FIRST..LAST */
    CHECK(jremote_encode(0, 3, 7, 10, 0, recs, rlen, &obj, &olen) == 0);
    CHECK(jremote_decode(obj, olen, &fence, &f, &l, &r, &got) == -EIO);
    free(obj);
    CHECK(jremote_encode(0, 3, 8, 10, 0, recs, rlen, &obj, &olen) == 0);
    CHECK(jremote_decode(obj, olen, &fence, &f, &l, &r, &got) == -EIO);
    free(obj);
    CHECK(jremote_encode(1, 3, 12, 12, 5, NULL, 0, &obj, &olen) == 0);
    CHECK(jremote_decode(obj, olen, &fence, &f, &l, &r, &got) == 0 && fence && f == 12);
    free(obj);
}

/* Number of objects under PREFIX. */
static size_t count(objstore *os, const char *prefix)
{
    char **keys;
    size_t n = 0;
    if (os_list(os, prefix, &keys, &n)) return SIZE_MAX;
    os_list_free(keys, n);
    return n;
}

static void test_chain(void)
{
    char root[64], url[128], err[256];
    harness_tmpdir(root);
    snprintf(url, sizeof url, "file://%s", root);
    objstore *os;
    if (os_open(url, &os, err, sizeof err)) { fprintf(stderr, "%s\n", err); exit(2); }
    const char *pfx = "branches/b/journal/00000000000000000004/";
    uint8_t recs[1024];
    uint64_t taken = 0, end = 0;
    size_t n;

    n = make_recs(recs, 5, 7, 1);                     /* session 4 writes 5-7, 8-9 */
    CHECK(jremote_put(os, "b", 4, 5, 7, recs, n, &taken) == 0);
    n = make_recs(recs, 8, 9, 1);
    CHECK(jremote_put(os, "b", 4, 8, 9, recs, n, &taken) == 0);
    n = make_recs(recs, 8, 11, 2);                    /* a retry of 8.. that had landed */
    CHECK(jremote_put(os, "b", 4, 8, 11, recs, n, &taken) == -EEXIST && taken == 9);

    seen s = {0};                                     /* session 6 claims from 6 */
    CHECK(jremote_claim(os, "b", 4, 6, 6, collect, &s, &end) == 0);
    CHECK(end == 9 && s.n == 4);
    for (int i = 0; i < s.n && i < 4; i++) CHECK(s.seqs[i] == 6 + (uint64_t)i && s.tags[i] == 1);
    n = make_recs(recs, 10, 10, 3);                   /* the old session is fenced */
    CHECK(jremote_put(os, "b", 4, 10, 10, recs, n, &taken) == -ESTALE);
    seen s2 = {0};                                    /* a second claim sees the same chain */
    CHECK(jremote_claim(os, "b", 4, 6, 7, collect, &s2, &end) == 0);
    CHECK(end == 9 && s2.n == 4 && s2.seqs[0] == 6 && s2.seqs[3] == 9);
    CHECK(count(os, pfx) == 3);
    CHECK(jremote_trim(os, "b", 4, 8) == 0);          /* 5-7 goes, 8-9 stays */
    CHECK(count(os, pfx) == 2);
    CHECK(jremote_trim(os, "b", 4, 9) == 0);          /* 8-9 goes, the fence stays */
    CHECK(count(os, pfx) == 1);
    seen s3 = {0};
    CHECK(jremote_claim(os, "b", 4, 10, 8, collect, &s3, &end) == 0 && s3.n == 0 && end == 9);

    seen s4 = {0};                                    /* an empty chain is fenced at FROM */
    CHECK(jremote_claim(os, "b", 9, 100, 10, collect, &s4, &end) == 0 && s4.n == 0 && end == 99);
    n = make_recs(recs, 100, 100, 1);
    CHECK(jremote_put(os, "b", 9, 100, 100, recs, n, &taken) == -ESTALE);
    n = make_recs(recs, 40, 41, 1);                   /* a segment below FROM is not replayed */
    CHECK(jremote_put(os, "b", 11, 40, 41, recs, n, &taken) == 0);
    seen s5 = {0};
    CHECK(jremote_claim(os, "b", 11, 50, 12, collect, &s5, &end) == 0 && s5.n == 0 && end == 49);
    os_close(os);
    harness_rmtree(root);
}

int main(void)
{
    test_codec();
    test_chain();
    return harness_done();
}

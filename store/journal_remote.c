/*
 * journal_remote.c -- segments of the remote journal (see journal_remote.h).
 *
 * Why a chain of put-if-absent objects and not a lease heartbeat: the
 * object store is the only thing two machines share, and put-if-absent is
 * its only atomic operation.  A fenced session learns that it lost the
 * branch from the very request that would have made its sync durable, so
 * no clock, timeout or extra round trip stands between a takeover and the
 * old writer's next acknowledged fsync.
 *
 * Everything read back is verified (CRC over header and payload, every
 * record length bounded, seqs exactly FIRST..LAST in order) before a batch
 * is handed on, so a damaged or foreign object is -EIO, never replayed.
 */
#include "journal_remote.h"
#include "../util/crc32c.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JR_MAGIC "LKJSEG01"
#define JR_HDR 64
#define JR_DIGITS 20
#define JR_FETCHERS 8             /* parallel GETs when a chain is claimed */

enum { JR_DATA = 1, JR_FENCE = 2 };

/* Little-endian helpers for the header. */
static void put32(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static void put64(uint8_t *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static uint32_t get32(const uint8_t *p) { uint32_t v = 0; for (int i = 3; i >= 0; i--) v = v << 8 | p[i]; return v; }
static uint64_t get64(const uint8_t *p) { uint64_t v = 0; for (int i = 7; i >= 0; i--) v = v << 8 | p[i]; return v; }

/* The key prefix of SESSION's chain ("branches/B/journal/SESSION/") into BUF. */
static void jr_prefix(char *buf, size_t len, const char *branch, uint64_t session)
{
    snprintf(buf, len, "branches/%s/journal/%0*" PRIu64 "/", branch, JR_DIGITS, session);
}

/* The key of SESSION's segment starting at FIRST into BUF. */
static void jr_key(char *buf, size_t len, const char *branch, uint64_t session, uint64_t first)
{
    jr_prefix(buf, len, branch, session);
    size_t n = strlen(buf);
    snprintf(buf + n, len - n, "%0*" PRIu64, JR_DIGITS, first);
}

int jremote_encode(int fence, uint64_t session, uint64_t first, uint64_t last,
                   uint64_t fencer, const void *recs, size_t len, void **out, size_t *outlen)
{
    uint8_t *b = malloc(JR_HDR + len);
    if (!b) return -ENOMEM;
    memset(b, 0, JR_HDR);
    memcpy(b, JR_MAGIC, 8);
    put32(b + 8, fence ? JR_FENCE : JR_DATA);
    put64(b + 16, first);
    put64(b + 24, last);
    put64(b + 32, session);
    put64(b + 40, fencer);
    put64(b + 48, len);
    if (len) memcpy(b + JR_HDR, recs, len);
    uint32_t crc = crc32c(0, b, 56);
    put32(b + 56, crc32c(crc, b + JR_HDR, len));
    *out = b;
    *outlen = JR_HDR + len;
    return 0;
}

int jremote_decode(const void *buf, size_t len, int *fence, uint64_t *first, uint64_t *last,
                   const uint8_t **recs, size_t *reclen)
{
    const uint8_t *b = buf;
    if (len < JR_HDR || memcmp(b, JR_MAGIC, 8)) return -EIO;
    uint32_t kind = get32(b + 8);
    uint64_t f = get64(b + 16), l = get64(b + 24), plen = get64(b + 48);
    if ((kind != JR_DATA && kind != JR_FENCE) || get32(b + 12) || get32(b + 60) || plen != len - JR_HDR)
        return -EIO;
    if (crc32c(crc32c(0, b, 56), b + JR_HDR, (size_t)plen) != get32(b + 56)) return -EIO;
    const uint8_t *p = b + JR_HDR, *end = p + plen;
    if (kind == JR_FENCE) {
        if (plen) return -EIO;
    } else {                      /* records must be exactly seqs f..l */
        if (f == 0 || f > l) return -EIO;
        uint64_t want = f;
        while (p < end) {
            if (end - p < 4) return -EIO;
            uint32_t rl = get32(p);
            if (rl < 12 || rl > (size_t)(end - p) - 4) return -EIO;
            uint64_t seq;
            memcpy(&seq, p + 4, 8);
            if (seq != want || want > l) return -EIO;
            want++;
            p += 4 + rl;
        }
        if (want != l + 1) return -EIO;
    }
    *fence = kind == JR_FENCE;
    *first = f;
    *last = l;
    *recs = b + JR_HDR;
    *reclen = (size_t)plen;
    return 0;
}

/* Segments listed at the start of a claim, fetched in parallel. */
typedef struct jr_fetch {
    objstore *os;
    char **keys;                  /* keys to fetch, ascending FIRST */
    uint64_t *firsts;             /* their FIRSTs */
    void **bufs;                  /* fetched objects (NULL: not fetched or failed) */
    size_t *lens;
    size_t n;
    size_t next;                  /* next index to fetch (atomic) */
} jr_fetch;

/* Fetcher thread: GET keys until none is left (a failure just leaves a
 * hole, read again in order by the claim). */
static void *jr_fetcher(void *arg)
{
    jr_fetch *f = arg;
    for (;;) {
        size_t i = __atomic_fetch_add(&f->next, 1, __ATOMIC_RELAXED);
        if (i >= f->n) return NULL;
        if (os_get(f->os, f->keys[i], 0, UINT64_MAX, &f->bufs[i], &f->lens[i]))
            f->bufs[i] = NULL;
    }
}

/* Fetch every key of F with a few threads at once. */
static void jr_fetch_all(jr_fetch *f)
{
    pthread_t th[JR_FETCHERS];
    int started = 0;
    for (; started < JR_FETCHERS && (size_t)started < f->n; started++)
        if (pthread_create(&th[started], NULL, jr_fetcher, f)) break;
    if (!started) jr_fetcher(f);
    for (int i = 0; i < started; i++) pthread_join(th[i], NULL);
}

/* Fetch and check the segment at KEY into *BUF (caller frees), taking it
 * from PRE (prefetched, may be NULL) when it is there. */
static int jr_read_pre(objstore *os, jr_fetch *pre, uint64_t first_wanted, const char *key, void **buf,
                       int *fence, uint64_t *first, uint64_t *last, const uint8_t **recs, size_t *reclen)
{
    size_t len = 0;
    int rc = -ENOENT;
    *buf = NULL;
    size_t lo = 0, hi = pre ? pre->n : 0;     /* FIRSTs ascend: binary search */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (pre->firsts[mid] < first_wanted) lo = mid + 1; else hi = mid;
    }
    if (pre && lo < pre->n && pre->firsts[lo] == first_wanted && pre->bufs[lo]) {
        *buf = pre->bufs[lo];
        len = pre->lens[lo];
        pre->bufs[lo] = NULL;
        rc = 0;
    }
    if (!*buf) rc = os_get(os, key, 0, UINT64_MAX, buf, &len);
    if (rc) return rc;
    if ((rc = jremote_decode(*buf, len, fence, first, last, recs, reclen))) {
        fprintf(stderr, "lakefs: remote journal segment %s: corrupt\n", key);
        free(*buf);
        *buf = NULL;
    }
    return rc;
}

/* jr_read_pre without prefetched segments. */
static int jr_read(objstore *os, const char *key, void **buf, int *fence, uint64_t *first,
                   uint64_t *last, const uint8_t **recs, size_t *reclen)
{
    return jr_read_pre(os, NULL, 0, key, buf, fence, first, last, recs, reclen);
}

int jremote_put(objstore *os, const char *branch, uint64_t session, uint64_t first,
                uint64_t last, const void *recs, size_t len, uint64_t *taken_last)
{
    char key[512];
    void *obj, *cur = NULL;
    size_t olen, rlen;
    const uint8_t *r;
    int fence;
    uint64_t f, l;

    jr_key(key, sizeof key, branch, session, first);
    int rc = jremote_encode(0, session, first, last, 0, recs, len, &obj, &olen);
    if (rc) return rc;
    rc = os_put_if_absent(os, key, obj, olen);
    free(obj);
    if (rc != -EEXIST) return rc;
    if ((rc = jr_read(os, key, &cur, &fence, &f, &l, &r, &rlen))) return rc;
    free(cur);
    if (fence) return -ESTALE;
    *taken_last = l;
    return -EEXIST;
}

/* Parse the FIRST of a chain key after its PLEN-byte prefix; -1 if foreign. */
static int jr_first_of(const char *key, size_t plen, uint64_t *first)
{
    const char *s = key + plen;
    uint64_t v = 0;
    if (strlen(s) != JR_DIGITS) return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || v > (UINT64_MAX - 9) / 10) return -1;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    *first = v;
    return 0;
}

/* Hand the batches of RECS with seq >= FROM to FN. */
static int jr_apply(const uint8_t *recs, size_t len, uint64_t from, jremote_apply_fn fn, void *arg)
{
    for (size_t off = 0; off < len;) {
        uint32_t rl = get32(recs + off);
        uint64_t seq;
        memcpy(&seq, recs + off + 4, 8);
        if (seq >= from) {
            int rc = fn(arg, recs + off + 4, rl);
            if (rc) return rc;
        }
        off += 4 + rl;
    }
    return 0;
}

int jremote_claim(objstore *os, const char *branch, uint64_t session, uint64_t from,
                  uint64_t fencer, jremote_apply_fn fn, void *arg, uint64_t *end)
{
    char prefix[512], key[512];
    char **keys = NULL;
    size_t n = 0;
    uint64_t next = from, start = 0;
    int have_start = 0;

    jr_prefix(prefix, sizeof prefix, branch, session);
    size_t plen = strlen(prefix);
    int rc = os_list(os, prefix, &keys, &n);
    if (rc) return rc;
    for (size_t i = 0; i < n; i++) {          /* the segment that may hold FROM */
        uint64_t f;
        if (jr_first_of(keys[i], plen, &f) == 0 && f <= from && (!have_start || f > start)) {
            start = f;
            have_start = 1;
        }
    }
    /* A chain is one object per sync: fetch the listed part in parallel. */
    jr_fetch pre = { .os = os, .keys = calloc(n ? n : 1, sizeof(char *)),
                     .firsts = calloc(n ? n : 1, sizeof(uint64_t)), .bufs = calloc(n ? n : 1, sizeof(void *)),
                     .lens = calloc(n ? n : 1, sizeof(size_t)) };
    if (pre.keys && pre.firsts && pre.bufs && pre.lens) {
        for (size_t i = 0; i < n; i++) {
            uint64_t f;
            if (jr_first_of(keys[i], plen, &f) == 0 && f >= (have_start ? start : from)) {
                pre.keys[pre.n] = keys[i];
                pre.firsts[pre.n++] = f;
            }
        }
        jr_fetch_all(&pre);
    } else {
        pre.n = 0;
    }
    /* Walk the chain: the segment at START (if it reaches FROM), then the
     * one at exactly NEXT each time, until a name is free: fence it. */
    uint64_t at = have_start ? start : from;
    for (;;) {
        void *buf = NULL, *obj = NULL;
        const uint8_t *recs;
        size_t rlen, olen;
        int fence;
        uint64_t f, l;
        jr_key(key, sizeof key, branch, session, at);
        rc = jr_read_pre(os, &pre, at, key, &buf, &fence, &f, &l, &recs, &rlen);
        if (rc == -ENOENT) {
            if (at != next) { at = next; continue; }  /* START did not exist after all */
            if ((rc = jremote_encode(1, session, next, next, fencer, NULL, 0, &obj, &olen))) break;
            rc = os_put_if_absent(os, key, obj, olen);
            free(obj);
            if (rc == -EEXIST) continue;      /* the old session was faster: read it */
            break;
        }
        if (rc) break;
        if (fence || f != at) { free(buf); rc = fence ? 0 : -EIO; break; }
        if (l >= next) {
            rc = jr_apply(recs, rlen, next, fn, arg);
            next = l + 1;
        }
        free(buf);
        if (rc) break;
        at = next;
    }
    for (size_t i = 0; i < pre.n; i++) free(pre.bufs[i]);
    free(pre.keys);
    free(pre.firsts);
    free(pre.bufs);
    free(pre.lens);
    os_list_free(keys, n);
    if (rc) return rc;
    *end = next - 1;
    return 0;
}

int jremote_trim(objstore *os, const char *branch, uint64_t session, uint64_t upto)
{
    char prefix[512];
    char **keys = NULL;
    size_t n = 0, ndel = 0;
    int rc = 0;

    jr_prefix(prefix, sizeof prefix, branch, session);
    size_t plen = strlen(prefix);
    if ((rc = os_list(os, prefix, &keys, &n))) return rc;
    const char **del = calloc(n ? n : 1, sizeof *del);
    if (!del) { os_list_free(keys, n); return -ENOMEM; }
    /* Sorted by FIRST: a segment is all <= UPTO when the next one starts
     * at or below UPTO+1; the last one is read to know. */
    for (size_t i = 0; i < n && !rc; i++) {
        uint64_t f, nf;
        if (jr_first_of(keys[i], plen, &f) || f > upto) continue;
        if (i + 1 < n && jr_first_of(keys[i + 1], plen, &nf) == 0) {
            if (nf <= upto + 1) del[ndel++] = keys[i];
            continue;
        }
        void *buf = NULL;
        const uint8_t *recs;
        size_t rlen;
        int fence;
        uint64_t sf, sl;
        rc = jr_read(os, keys[i], &buf, &fence, &sf, &sl, &recs, &rlen);
        free(buf);
        if (rc == -ENOENT) { rc = 0; continue; }
        if (!rc && !fence && sl <= upto) del[ndel++] = keys[i];
    }
    if (!rc && ndel) rc = os_delete_many(os, del, ndel);
    free(del);
    os_list_free(keys, n);
    return rc;
}

/*
 * manifest.c -- encoding, decoding and committing branch manifests.
 *
 * A manifest is small text (see manifest.h) so an operator can read it with
 * cat, but it is the commit point of a branch, so it is verified as strictly
 * as binary data: the last line is a CRC-32C over every byte before it, and
 * the decoder accepts exactly the canonical encoding (fixed line order,
 * decimal numbers without signs or leading zeros, keys limited to the
 * object-key alphabet) and nothing else.  Any input -- truncated, bit-flipped
 * or hostile -- decodes to the original manifest or to -EINVAL.
 *
 * Committing is a put-if-absent of the next generation's object, so the
 * object store arbitrates between writers; loading lists the branch's
 * manifest directory and reads the highest generation.
 */
#include "manifest.h"
#include "../util/crc32c.h"
#include "../util/failpoint.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MANIFEST_HEADER "lakefs-manifest 1\n"
#define MANIFEST_GEN_DIGITS 20

/* 1 if C may appear in an object key. */
static int manifest_key_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
           (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '/' ||
           c == '-';
}

/* 1 if KEY is non-empty and made only of object-key characters. */
static int manifest_key_ok(const char *key)
{
    if (!key || !*key)
        return 0;
    for (; *key; key++)
        if (!manifest_key_char(*key))
            return 0;
    return 1;
}

typedef struct mbuf {
    char *p;                      /* text */
    size_t len, cap;              /* used, allocated */
} mbuf;

/* Append printf-formatted text to B; 0 or -ENOMEM. */
static int mbuf_printf(mbuf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int mbuf_printf(mbuf *b, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        int n;

        va_start(ap, fmt);
        n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0)
            return -EINVAL;
        if ((size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return 0;
        }
        size_t cap = (b->cap + (size_t)n + 1) * 2;
        char *p = realloc(b->p, cap);
        if (!p)
            return -ENOMEM;
        b->p = p;
        b->cap = cap;
    }
}

/* Serialize M into a malloc'd buffer. */
int manifest_encode(const manifest *m, char **buf, size_t *len)
{
    mbuf b = { 0 };
    int rc;

    *buf = NULL;
    *len = 0;
    b.p = malloc(256);
    if (!b.p)
        return -ENOMEM;
    b.cap = 256;
    b.p[0] = '\0';
    rc = mbuf_printf(&b, MANIFEST_HEADER "seq %" PRIu64 "\nmax_ino %" PRIu64 "\nwriter %" PRIu64
                     "\nsession %" PRIu64 "\ninherit %" PRIu64 "\ntime %" PRIu64 "\n",
                     m->seq, m->max_ino, m->writer, m->session, m->inherit, m->time);
    if (rc == 0 && m->closed)
        rc = mbuf_printf(&b, "closed 1\n");
    for (size_t i = 0; rc == 0 && i < m->nlayers; i++) {
        const manifest_layer *ml = &m->layers[i];
        if (!manifest_key_ok(ml->key) || ml->min_seq > ml->max_seq) {
            rc = -EINVAL;
            break;
        }
        rc = mbuf_printf(&b, "layer %s %" PRIu64 " %" PRIu64 " %" PRIu64 "\n",
                         ml->key, ml->min_seq, ml->max_seq, ml->size);
    }
    if (rc == 0)
        rc = mbuf_printf(&b, "crc %08x\n", crc32c(0, b.p, b.len));
    if (rc < 0) {
        free(b.p);
        return rc;
    }
    *buf = b.p;
    *len = b.len;
    return 0;
}

/* Consume the literal LIT at *P (before END); -1 if absent. */
static int expect(const char **p, const char *end, const char *lit)
{
    size_t n = strlen(lit);

    if ((size_t)(end - *p) < n || memcmp(*p, lit, n) != 0)
        return -1;
    *p += n;
    return 0;
}

/* Parse a canonical decimal u64 at *P (before END); -1 if none. */
static int parse_u64(const char **p, const char *end, uint64_t *v)
{
    const char *s = *p;
    uint64_t r = 0;

    if (s >= end || *s < '0' || *s > '9' || (*s == '0' && s + 1 < end &&
                                             s[1] >= '0' && s[1] <= '9'))
        return -1;
    for (; s < end && *s >= '0' && *s <= '9'; s++) {
        unsigned d = (unsigned)(*s - '0');
        if (r > (UINT64_MAX - d) / 10)
            return -1;
        r = r * 10 + d;
    }
    *p = s;
    *v = r;
    return 0;
}

/* Parse "NAME N\n" at *P into *V. */
static int parse_field(const char **p, const char *end, const char *name,
                       uint64_t *v)
{
    if (expect(p, end, name) < 0 || parse_u64(p, end, v) < 0 ||
        expect(p, end, "\n") < 0)
        return -1;
    return 0;
}

/* Parse one "layer KEY MIN MAX SIZE\n" line at *P into M. */
static int parse_layer(const char **p, const char *end, manifest *m)
{
    const char *k = *p, *kend;
    uint64_t mn, mx, sz;
    char *key;
    int rc;

    while (*p < end && manifest_key_char(**p))
        (*p)++;
    kend = *p;
    if (kend == k || expect(p, end, " ") < 0 || parse_u64(p, end, &mn) < 0 ||
        expect(p, end, " ") < 0 || parse_u64(p, end, &mx) < 0 ||
        expect(p, end, " ") < 0 || parse_u64(p, end, &sz) < 0 ||
        expect(p, end, "\n") < 0 || mn > mx)
        return -EINVAL;
    key = strndup(k, (size_t)(kend - k));
    if (!key)
        return -ENOMEM;
    rc = manifest_add_layer(m, key, mn, mx, sz);
    free(key);
    return rc;
}

/* Parse LEN bytes of BUF into M (gen left 0); -EINVAL on any defect. */
int manifest_decode(const char *buf, size_t len, manifest *m)
{
    const char *p = buf, *end = buf + len, *crcline;
    uint32_t want = 0;
    int rc = -EINVAL;

    memset(m, 0, sizeof(*m));
    if (expect(&p, end, MANIFEST_HEADER) < 0 ||
        parse_field(&p, end, "seq ", &m->seq) < 0 ||
        parse_field(&p, end, "max_ino ", &m->max_ino) < 0 ||
        parse_field(&p, end, "writer ", &m->writer) < 0 ||
        parse_field(&p, end, "session ", &m->session) < 0 ||
        parse_field(&p, end, "inherit ", &m->inherit) < 0 ||
        parse_field(&p, end, "time ", &m->time) < 0)
        goto fail;
    if (expect(&p, end, "closed 1\n") == 0)
        m->closed = 1;
    while (expect(&p, end, "layer ") == 0)
        if ((rc = parse_layer(&p, end, m)) < 0)
            goto fail;
    rc = -EINVAL;
    crcline = p;
    if (expect(&p, end, "crc ") < 0 || end - p != 9 || p[8] != '\n')
        goto fail;
    for (int i = 0; i < 8; i++) {
        char c = p[i];
        unsigned d;
        if (c >= '0' && c <= '9')
            d = (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            d = (unsigned)(c - 'a' + 10);
        else
            goto fail;
        want = want << 4 | d;
    }
    if (crc32c(0, buf, (size_t)(crcline - buf)) != want)
        goto fail;
    return 0;
fail:
    manifest_free(m);
    return rc;
}

/* Free M's layer list and zero it. */
void manifest_free(manifest *m)
{
    for (size_t i = 0; i < m->nlayers; i++)
        free(m->layers[i].key);
    free(m->layers);
    memset(m, 0, sizeof(*m));
}

/* Append a layer entry (KEY copied). */
int manifest_add_layer(manifest *m, const char *key, uint64_t min_seq,
                       uint64_t max_seq, uint64_t size)
{
    manifest_layer *nl;
    char *k;

    if (!manifest_key_ok(key) || min_seq > max_seq)
        return -EINVAL;
    nl = realloc(m->layers, (m->nlayers + 1) * sizeof(*nl));
    if (!nl)
        return -ENOMEM;
    m->layers = nl;
    if (!(k = strdup(key)))
        return -ENOMEM;
    nl[m->nlayers].key = k;
    nl[m->nlayers].min_seq = min_seq;
    nl[m->nlayers].max_seq = max_seq;
    nl[m->nlayers].size = size;
    m->nlayers++;
    return 0;
}

/* Build "branches/BRANCH/manifest/" (+ GEN if WITHGEN) in a new string. */
static char *manifest_key(const char *branch, int withgen, uint64_t gen)
{
    size_t n = strlen(branch) + 64;
    char *k = malloc(n);

    if (!k)
        return NULL;
    if (withgen)
        snprintf(k, n, "branches/%s/manifest/%0*" PRIu64, branch,
                 MANIFEST_GEN_DIGITS, gen);
    else
        snprintf(k, n, "branches/%s/manifest/", branch);
    return k;
}

/* Generation named by the last component of KEY (after PLEN prefix bytes);
 * -1 if it is not exactly 20 digits. */
static int manifest_gen_of(const char *key, size_t plen, uint64_t *gen)
{
    const char *s = key + plen;
    uint64_t g = 0;

    if (strlen(s) != MANIFEST_GEN_DIGITS)
        return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || g > (UINT64_MAX - (uint64_t)(*s - '0')) / 10)
            return -1;
        g = g * 10 + (uint64_t)(*s - '0');
    }
    *gen = g;
    return 0;
}

/* Load the newest manifest of BRANCH; -ENOENT if the branch has none. */
int manifest_load_latest(objstore *os, const char *branch, manifest *m)
{
    char *prefix = manifest_key(branch, 0, 0), **keys = NULL;
    size_t n = 0, plen, len = 0;
    const char *best = NULL;
    uint64_t bestgen = 0, g;
    void *buf = NULL;
    int rc;

    memset(m, 0, sizeof(*m));
    if (!prefix)
        return -ENOMEM;
    plen = strlen(prefix);
    if ((rc = os_list(os, prefix, &keys, &n)) < 0)
        goto out;
    for (size_t i = 0; i < n; i++)
        if (manifest_gen_of(keys[i], plen, &g) == 0 && (!best || g > bestgen)) {
            best = keys[i];
            bestgen = g;
        }
    if (!best) {
        rc = -ENOENT;
        goto out;
    }
    if ((rc = os_get(os, best, 0, UINT64_MAX, &buf, &len)) < 0)
        goto out;
    if ((rc = manifest_decode(buf, len, m)) < 0) {
        fprintf(stderr, "lakefs: manifest %s: corrupt\n", best);
        rc = -EIO;
        goto out;
    }
    m->gen = bestgen;
out:
    free(buf);
    os_list_free(keys, n);
    free(prefix);
    return rc;
}

/* Ascending order of generations. */
static int gen_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

int manifest_gens(objstore *os, const char *branch, uint64_t **gens, size_t *n)
{
    char *prefix = manifest_key(branch, 0, 0), **keys = NULL;
    size_t nkeys = 0;
    int rc;

    *gens = NULL;
    *n = 0;
    if (!prefix)
        return -ENOMEM;
    if ((rc = os_list(os, prefix, &keys, &nkeys)) == 0) {
        *gens = malloc((nkeys ? nkeys : 1) * sizeof **gens);
        if (!*gens)
            rc = -ENOMEM;
        for (size_t i = 0; *gens && i < nkeys; i++)
            if (manifest_gen_of(keys[i], strlen(prefix), &(*gens)[*n]) == 0)
                (*n)++;
        if (*gens)
            qsort(*gens, *n, sizeof **gens, gen_cmp);
        os_list_free(keys, nkeys);
    }
    free(prefix);
    return rc;
}

/* Load generation GEN of BRANCH; -ENOENT if there is no such generation. */
int manifest_load(objstore *os, const char *branch, uint64_t gen, manifest *m)
{
    char *key = manifest_key(branch, 1, gen);
    void *buf = NULL;
    size_t len = 0;
    int rc;

    memset(m, 0, sizeof(*m));
    if (!key)
        return -ENOMEM;
    if ((rc = os_get(os, key, 0, UINT64_MAX, &buf, &len)) == 0 &&
        (rc = manifest_decode(buf, len, m)) < 0) {
        fprintf(stderr, "lakefs: manifest %s: corrupt\n", key);
        rc = -EIO;
    }
    if (rc == 0)
        m->gen = gen;
    free(buf);
    free(key);
    return rc;
}

/* Generation named by manifest object KEY of BRANCH; -EINVAL if none. */
int manifest_key_gen(const char *branch, const char *key, uint64_t *gen)
{
    char *prefix = manifest_key(branch, 0, 0);
    int rc = -EINVAL;

    if (!prefix)
        return -ENOMEM;
    if (strncmp(key, prefix, strlen(prefix)) == 0 &&
        manifest_gen_of(key, strlen(prefix), gen) == 0)
        rc = 0;
    free(prefix);
    return rc;
}

/* Commit M as generation M->gen of BRANCH; -EEXIST if it exists already. */
int manifest_commit(objstore *os, const char *branch, const manifest *m)
{
    char *key = manifest_key(branch, 1, m->gen), *buf = NULL;
    size_t len = 0;
    int rc;

    if (!key)
        return -ENOMEM;
    if ((rc = manifest_encode(m, &buf, &len)) == 0 && (rc = failpoint("manifest-commit-before")) == 0 &&
        (rc = os_put_if_absent(os, key, buf, len)) == 0)
        rc = failpoint("manifest-commit-after");
    free(buf);
    free(key);
    return rc;
}

/* 1 if generation M->gen of BRANCH holds exactly M's encoding, 0 if it
 * holds something else or nothing, -errno if it cannot be read. */
int manifest_matches(objstore *os, const char *branch, const manifest *m)
{
    char *key = manifest_key(branch, 1, m->gen), *want = NULL;
    void *have = NULL;
    size_t wlen = 0, hlen = 0;
    int rc;

    if (!key)
        return -ENOMEM;
    if ((rc = manifest_encode(m, &want, &wlen)) == 0 &&
        (rc = os_get(os, key, 0, UINT64_MAX, &have, &hlen)) == 0)
        rc = hlen == wlen && memcmp(have, want, wlen) == 0;
    else if (rc == -ENOENT)
        rc = 0;
    free(have);
    free(want);
    free(key);
    return rc;
}

int manifest_exists(objstore *os, const char *branch, uint64_t gen)
{
    char *key = manifest_key(branch, 1, gen);
    uint64_t size;
    if (!key)
        return -ENOMEM;
    int rc = os_head(os, key, &size);
    free(key);
    if (rc == -ENOENT)
        return 0;
    return rc ? rc : 1;
}

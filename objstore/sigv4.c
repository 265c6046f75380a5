/*
 * sigv4.c -- AWS Signature Version 4 signing in request headers.
 *
 * Follows the published algorithm step by step (canonical request, string
 * to sign, derived key, signature) and keeps every intermediate string, so
 * the unit test can compare each against the AWS test suite byte for byte
 * and a signature mismatch against a server can be diagnosed.
 *
 * The two path rules differ between S3 and every other service, so both
 * are parameters: generic services normalise the path (drop "." / ".." and
 * empty segments) and URI-encode the already-encoded path a second time;
 * S3 signs the path exactly as sent.  Query parameters are decoded and
 * re-encoded, so any valid wire spelling canonicalises the same way.
 * Header values are trimmed and every whitespace run (including folded
 * continuation lines) becomes one space; repeated names join with ','.
 *
 * Key material is derived on the stack and wiped with OPENSSL_cleanse.
 */
#include "sigv4.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Growable string; OOM is sticky and reported by sigv4_buf_take. */
typedef struct sigv4_buf {
    char *p;
    size_t len, cap;
    int oom;
} sigv4_buf;

/* Append N bytes of S to B. */
static void sigv4_buf_putn(sigv4_buf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        char *p;

        while (cap < b->len + n + 1)
            cap *= 2;
        p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

/* Append the C string S to B. */
static void sigv4_buf_puts(sigv4_buf *b, const char *s)
{
    sigv4_buf_putn(b, s, strlen(s));
}

/* Append the character C to B. */
static void sigv4_buf_putc(sigv4_buf *b, char c)
{
    sigv4_buf_putn(b, &c, 1);
}

/* The finished string (never NULL unless OOM); B is reset either way. */
static char *sigv4_buf_take(sigv4_buf *b)
{
    char *p = b->oom ? NULL : b->p;

    if (b->oom)
        free(b->p);
    else if (!p)
        p = calloc(1, 1);
    memset(b, 0, sizeof(*b));
    return p;
}

/* 1 if C is an RFC 3986 unreserved character. */
static int sigv4_unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
           (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
           c == '~';
}

/* Append N bytes of S URI-encoded to B ('/' kept when KEEP_SLASH). */
static void sigv4_encode_to(sigv4_buf *b, const char *s, size_t n, int keep_slash)
{
    static const char hex[] = "0123456789ABCDEF";

    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (sigv4_unreserved(c) || (keep_slash && c == '/')) {
            sigv4_buf_putc(b, (char)c);
        } else {
            char e[3] = { '%', hex[c >> 4], hex[c & 15] };
            sigv4_buf_putn(b, e, 3);
        }
    }
}

/* S URI-encoded the AWS way in a new malloc'd string; NULL on OOM. */
char *sigv4_uri_encode(const char *s, int keep_slash)
{
    sigv4_buf b = { 0 };

    sigv4_encode_to(&b, s, strlen(s), keep_slash);
    return sigv4_buf_take(&b);
}

/* Value of hex digit C, or -1. */
static int sigv4_hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Append N bytes of S percent-decoded, then re-encoded, to B. */
static void sigv4_reencode_to(sigv4_buf *b, const char *s, size_t n)
{
    sigv4_buf raw = { 0 };
    char *r;

    for (size_t i = 0; i < n; i++) {
        int hi, lo;
        if (s[i] == '%' && i + 2 < n &&
            (hi = sigv4_hexval(s[i + 1])) >= 0 &&
            (lo = sigv4_hexval(s[i + 2])) >= 0) {
            sigv4_buf_putc(&raw, (char)(hi * 16 + lo));
            i += 2;
        } else {
            sigv4_buf_putc(&raw, s[i]);
        }
    }
    if (raw.oom) {
        b->oom = 1;
        free(raw.p);
        return;
    }
    sigv4_encode_to(b, raw.p ? raw.p : "", raw.len, 0);
    r = sigv4_buf_take(&raw);
    free(r);
}

/* Append the canonical URI of PATH to B under PAR's path rules. */
static void sigv4_canon_path(sigv4_buf *b, const char *path,
                             const sigv4_params *par)
{
    sigv4_buf norm = { 0 };
    const char *p = *path ? path : "/";
    char *n;

    if (par->normalize_path) {
        /* "/a/./b//../c/" -> "/a/c/": segments pushed and popped in place */
        const char *seg = p;
        int dir = 1;              /* the last segment names a directory */
        while (*seg) {
            const char *end;
            size_t sl;
            while (*seg == '/')
                seg++;
            end = seg;
            while (*end && *end != '/')
                end++;
            sl = (size_t)(end - seg);
            dir = sl == 0 || (sl == 1 && seg[0] == '.') ||
                  (sl == 2 && seg[0] == '.' && seg[1] == '.');
            if (sl == 2 && seg[0] == '.' && seg[1] == '.') {
                while (norm.len > 0 && norm.p[norm.len - 1] != '/')
                    norm.len--;
                if (norm.len > 0)
                    norm.len--;
            } else if (sl > 0 && !(sl == 1 && seg[0] == '.')) {
                sigv4_buf_putc(&norm, '/');
                sigv4_buf_putn(&norm, seg, sl);
            }
            seg = end;
        }
        /* a path ending in "/", "/." or "/.." names a directory */
        if (norm.len > 0 && dir && !norm.oom)
            sigv4_buf_putc(&norm, '/');
        if (norm.len == 0 && !norm.oom)
            sigv4_buf_putc(&norm, '/');
        if (norm.p)
            norm.p[norm.len] = '\0';
        n = sigv4_buf_take(&norm);
        if (!n) {
            b->oom = 1;
            return;
        }
        p = n;
    } else {
        n = NULL;
    }
    if (par->encode_path)
        sigv4_encode_to(b, p, strlen(p), 1);
    else
        sigv4_buf_puts(b, p);
    free(n);
}

/* One canonical query parameter (both halves encoded). */
typedef struct sigv4_param {
    char *name, *value;
} sigv4_param;

/* qsort order of parameters: by encoded name, then encoded value. */
static int sigv4_param_cmp(const void *a, const void *b)
{
    const sigv4_param *x = a, *y = b;
    int c = strcmp(x->name, y->name);

    return c ? c : strcmp(x->value, y->value);
}

/* Append the canonical form of the wire query Q (may be NULL) to B. */
static void sigv4_canon_query(sigv4_buf *b, const char *q)
{
    sigv4_param *ps = NULL;
    size_t n = 0, cap = 0;

    for (const char *s = q; s && *s;) {
        const char *amp = strchr(s, '&'), *eq;
        size_t len = amp ? (size_t)(amp - s) : strlen(s);
        sigv4_buf nb = { 0 }, vb = { 0 };

        eq = memchr(s, '=', len);
        if (len > 0) {
            size_t nl = eq ? (size_t)(eq - s) : len;
            if (n == cap) {
                sigv4_param *np = realloc(ps, (cap ? cap * 2 : 8) * sizeof(*ps));
                if (!np) {
                    b->oom = 1;
                    break;
                }
                ps = np;
                cap = cap ? cap * 2 : 8;
            }
            sigv4_reencode_to(&nb, s, nl);
            if (eq)
                sigv4_reencode_to(&vb, eq + 1, len - nl - 1);
            ps[n].name = sigv4_buf_take(&nb);
            ps[n].value = sigv4_buf_take(&vb);
            n++;
            if (!ps[n - 1].name || !ps[n - 1].value) {
                b->oom = 1;
                break;
            }
        }
        s += len + (amp ? 1 : 0);
    }
    if (!b->oom && n > 1)
        qsort(ps, n, sizeof(*ps), sigv4_param_cmp);
    for (size_t i = 0; i < n; i++) {
        if (!b->oom) {
            if (i)
                sigv4_buf_putc(b, '&');
            sigv4_buf_puts(b, ps[i].name);
            sigv4_buf_putc(b, '=');
            sigv4_buf_puts(b, ps[i].value);
        }
        free(ps[i].name);
        free(ps[i].value);
    }
    free(ps);
}

/* One header prepared for sorting. */
typedef struct sigv4_hdr {
    char *name;                   /* lowercase */
    char *value;                  /* trimmed, whitespace runs collapsed */
    size_t order;                 /* input position: keeps duplicates in order */
} sigv4_hdr;

/* qsort order of headers: by lowercase name, then input position. */
static int sigv4_hdr_cmp(const void *a, const void *b)
{
    const sigv4_hdr *x = a, *y = b;
    int c = strcmp(x->name, y->name);

    if (c)
        return c;
    return x->order < y->order ? -1 : x->order > y->order;
}

/* 1 if C is linear whitespace (continuation lines included). */
static int sigv4_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Fill H from NAME and VALUE; 0 or -ENOMEM. */
static int sigv4_hdr_make(sigv4_hdr *h, const char *name, const char *value,
                          size_t order)
{
    sigv4_buf nb = { 0 }, vb = { 0 };
    const char *v = value;

    while (sigv4_space(*name))
        name++;
    for (const char *p = name; *p && !sigv4_space(*p); p++)
        sigv4_buf_putc(&nb, (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p));
    while (sigv4_space(*v))
        v++;
    while (*v) {
        if (sigv4_space(*v)) {
            while (sigv4_space(*v))
                v++;
            if (*v)
                sigv4_buf_putc(&vb, ' ');
        } else {
            sigv4_buf_putc(&vb, *v++);
        }
    }
    h->name = sigv4_buf_take(&nb);
    h->value = sigv4_buf_take(&vb);
    h->order = order;
    return h->name && h->value ? 0 : -ENOMEM;
}

/* Hex encoding of N bytes of D into OUT (2N+1 bytes). */
static void sigv4_hex(const unsigned char *d, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";

    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[d[i] >> 4];
        out[2 * i + 1] = hex[d[i] & 15];
    }
    out[2 * n] = '\0';
}

/* Hex SHA-256 of LEN bytes at DATA into OUT. */
void sigv4_sha256_hex(const void *data, size_t len, char out[65])
{
    unsigned char md[32];
    unsigned int mdlen = 0;

    EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL);
    sigv4_hex(md, 32, out);
}

/* HMAC-SHA256 of MSG under KEY (KLEN bytes) into OUT (32 bytes). */
static void sigv4_hmac(const void *key, size_t klen, const char *msg,
                       unsigned char out[32])
{
    unsigned int olen = 32;

    HMAC(EVP_sha256(), key, (int)klen, (const unsigned char *)msg,
         strlen(msg), out, &olen);
}

/* Add the line "NAME: VALUE" to RES's headers to send. */
static void sigv4_add(sigv4_result *res, sigv4_buf *tmp, const char *name,
                      const char *value)
{
    sigv4_buf_puts(tmp, name);
    sigv4_buf_puts(tmp, ": ");
    sigv4_buf_puts(tmp, value);
    res->add[res->nadd++] = sigv4_buf_take(tmp);
}

/* Sign REQ; fills RES (free with sigv4_result_free); 0, -EINVAL or -ENOMEM. */
int sigv4_sign(const sigv4_request *req, const sigv4_creds *creds,
               const sigv4_params *par, sigv4_result *res)
{
    char amzdate[17], date[9], crhash[65];
    unsigned char k[32], k2[32];
    const char *xn[3], *xv[3];    /* headers the signer adds */
    size_t nh = 0, nx = 0, slen = 0;
    sigv4_hdr *hs = NULL;
    sigv4_buf b = { 0 }, sh = { 0 };
    char *scope = NULL, *secret = NULL;
    struct tm tm;
    int rc = -ENOMEM;

    memset(res, 0, sizeof(*res));
    if (!req->method || !req->path || !req->payload_hash || !creds->access_key ||
        !creds->secret_key || !par->region || !par->service ||
        !gmtime_r(&par->when, &tm))
        return -EINVAL;
    strftime(amzdate, sizeof(amzdate), "%Y%m%dT%H%M%SZ", &tm);
    memcpy(date, amzdate, 8);
    date[8] = '\0';

    /* headers: the caller's plus x-amz-date, content hash and token */
    hs = calloc(req->nheaders + 3, sizeof(*hs));
    if (!hs)
        goto out;
    xn[nx] = "x-amz-date";
    xv[nx++] = amzdate;
    if (par->content_sha256) {
        xn[nx] = "x-amz-content-sha256";
        xv[nx++] = req->payload_hash;
    }
    if (creds->session_token) {
        xn[nx] = "x-amz-security-token";
        xv[nx++] = creds->session_token;
    }
    for (size_t i = 0; i < req->nheaders + nx; i++) {
        int mine = i >= req->nheaders;
        if (sigv4_hdr_make(&hs[nh++],
                           mine ? xn[i - req->nheaders] : req->headers[i].name,
                           mine ? xv[i - req->nheaders] : req->headers[i].value,
                           i) < 0)
            goto out;
    }
    qsort(hs, nh, sizeof(*hs), sigv4_hdr_cmp);

    /* canonical request */
    sigv4_buf_puts(&b, req->method);
    sigv4_buf_putc(&b, '\n');
    sigv4_canon_path(&b, req->path, par);
    sigv4_buf_putc(&b, '\n');
    sigv4_canon_query(&b, req->query);
    sigv4_buf_putc(&b, '\n');
    for (size_t i = 0; i < nh; i++) {
        if (i > 0 && strcmp(hs[i].name, hs[i - 1].name) == 0) {
            sigv4_buf_putc(&b, ',');
        } else {
            if (i > 0) {
                sigv4_buf_putc(&b, '\n');
                sigv4_buf_putc(&sh, ';');
            }
            sigv4_buf_puts(&b, hs[i].name);
            sigv4_buf_putc(&b, ':');
            sigv4_buf_puts(&sh, hs[i].name);
        }
        sigv4_buf_puts(&b, hs[i].value);
    }
    sigv4_buf_puts(&b, "\n\n");
    sigv4_buf_puts(&b, sh.p ? sh.p : "");
    sigv4_buf_putc(&b, '\n');
    sigv4_buf_puts(&b, req->payload_hash);
    if (!(res->canonical_request = sigv4_buf_take(&b)))
        goto out;

    /* string to sign */
    sigv4_buf_puts(&b, date);
    sigv4_buf_putc(&b, '/');
    sigv4_buf_puts(&b, par->region);
    sigv4_buf_putc(&b, '/');
    sigv4_buf_puts(&b, par->service);
    sigv4_buf_puts(&b, "/aws4_request");
    if (!(scope = sigv4_buf_take(&b)))
        goto out;
    sigv4_sha256_hex(res->canonical_request, strlen(res->canonical_request), crhash);
    sigv4_buf_puts(&b, "AWS4-HMAC-SHA256\n");
    sigv4_buf_puts(&b, amzdate);
    sigv4_buf_putc(&b, '\n');
    sigv4_buf_puts(&b, scope);
    sigv4_buf_putc(&b, '\n');
    sigv4_buf_puts(&b, crhash);
    if (!(res->string_to_sign = sigv4_buf_take(&b)))
        goto out;

    /* signing key: HMAC chain from "AWS4" + secret over date/region/service */
    slen = strlen(creds->secret_key) + 4;
    if (!(secret = malloc(slen + 1)))
        goto out;
    memcpy(secret, "AWS4", 4);
    memcpy(secret + 4, creds->secret_key, slen - 4 + 1);
    sigv4_hmac(secret, slen, date, k);
    sigv4_hmac(k, 32, par->region, k2);
    sigv4_hmac(k2, 32, par->service, k);
    sigv4_hmac(k, 32, "aws4_request", k2);
    sigv4_hmac(k2, 32, res->string_to_sign, k);
    sigv4_hex(k, 32, res->signature);

    /* Authorization and the headers to send */
    sigv4_buf_puts(&b, "AWS4-HMAC-SHA256 Credential=");
    sigv4_buf_puts(&b, creds->access_key);
    sigv4_buf_putc(&b, '/');
    sigv4_buf_puts(&b, scope);
    sigv4_buf_puts(&b, ", SignedHeaders=");
    sigv4_buf_puts(&b, sh.p ? sh.p : "");
    sigv4_buf_puts(&b, ", Signature=");
    sigv4_buf_puts(&b, res->signature);
    if (!(res->authorization = sigv4_buf_take(&b)))
        goto out;
    sigv4_add(res, &b, "X-Amz-Date", amzdate);
    if (par->content_sha256)
        sigv4_add(res, &b, "x-amz-content-sha256", req->payload_hash);
    if (creds->session_token)
        sigv4_add(res, &b, "X-Amz-Security-Token", creds->session_token);
    sigv4_add(res, &b, "Authorization", res->authorization);
    rc = 0;
    for (size_t i = 0; i < res->nadd; i++)
        if (!res->add[i])
            rc = -ENOMEM;
out:
    OPENSSL_cleanse(k, sizeof(k));
    OPENSSL_cleanse(k2, sizeof(k2));
    if (secret) {
        OPENSSL_cleanse(secret, slen);
        free(secret);
    }
    for (size_t i = 0; i < nh; i++) {
        free(hs[i].name);
        free(hs[i].value);
    }
    free(hs);
    free(scope);
    free(sigv4_buf_take(&b));
    free(sigv4_buf_take(&sh));
    if (rc < 0)
        sigv4_result_free(res);
    return rc;
}

/* Free what sigv4_sign stored in RES and wipe it. */
void sigv4_result_free(sigv4_result *res)
{
    free(res->canonical_request);
    free(res->string_to_sign);
    free(res->authorization);
    for (size_t i = 0; i < res->nadd; i++) {
        if (res->add[i]) {
            OPENSSL_cleanse(res->add[i], strlen(res->add[i]));
            free(res->add[i]);
        }
    }
    memset(res, 0, sizeof(*res));
}

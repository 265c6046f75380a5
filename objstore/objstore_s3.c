/*
 * objstore_s3.c -- the s3:// backend's operations: a repository is a
 * bucket and prefix in any S3-compatible object store.
 *
 * s3://bucket/prefix maps key K to the object "prefix/K", addressed
 * path-style (https://endpoint/bucket/prefix/K) so that any S3 server works,
 * not only ones with wildcard DNS.  Requests go through libcurl and are
 * signed with AWS Signature Version 4 (sigv4.c), body hash included.
 *
 * The guarantees of objstore.h map onto S3 as follows:
 *  - put-if-absent is a PUT with "If-None-Match: *" (412 or 409 means the
 *    key exists).  os_open checks that the server honours it, by writing a
 *    probe object twice, because a server that ignores the header would
 *    silently overwrite objects.  A retried PUT that meets 412 may have
 *    written the object itself on an attempt whose answer was lost: then
 *    the object's ETag (MD5 of a single-part upload) is compared with ours;
 *    if that HEAD gets no answer either, the outcome is unknown: -EIO,
 *    never -EEXIST (which would tell the caller someone else wrote it).
 *  - ranged get, head, list (ListObjectsV2 with continuation tokens) and
 *    delete (a missing key is success) are plain requests.  Deleting many
 *    keys is one multi-object delete (POST ?delete, quiet) per 1000 keys,
 *    with the Content-MD5 S3 demands; a key the server reports as an <Error>
 *    other than NoSuchKey fails the call, which stops at the first batch
 *    that fails.
 *
 * Sending requests (signing, retries) is objstore_s3_request.c's, large
 * layers' multipart uploads objstore_s3_multipart.c's, configuration and
 * the checks at open objstore_s3_open.c's (objstore_s3.h lists them).
 */
#include "objstore_s3.h"
#include "sigv4.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <openssl/evp.h>

/* 1 if the object holding BUF/LEN has ETag ETAG (single-part: hex MD5). */
static int s3_etag_matches(const char *etag, const void *buf, size_t len)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    char hex[2 * EVP_MAX_MD_SIZE + 1];

    if (!EVP_Digest(buf, len, md, &mdlen, EVP_md5(), NULL))
        return 0;
    for (unsigned int i = 0; i < mdlen; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    return strcasecmp(hex, etag) == 0;
}

/* Full object name of KEY (prefix + key), malloc'd; NULL on OOM. */
char *s3_object(const s3 *s, const char *key)
{
    char *o;

    return asprintf(&o, "%s%s", s->prefix, key) < 0 ? NULL : o;
}

/* PUT OBJECT unless it exists; 0, -EEXIST, or an error (R: the answer). */
int s3_put_object(s3 *s, const char *object, const void *buf, size_t len,
                  int attempts, int quiet, s3_resp *r)
{
    s3_req req = { .method = "PUT", .object = object, .if_none_match = 1,
                   .body = buf, .blen = len, .attempts = attempts,
                   .quiet = quiet };
    int rc = s3_call(s, &req, r);

    if (rc < 0)
        return rc;
    if (r->status == 200 || r->status == 201)
        return 0;
    if (r->status == 412 || r->status == 409) {
        /* a retry may have met the object an earlier attempt wrote */
        if (r->tries > 1) {
            s3_req hq = { .method = "HEAD", .object = object,
                          .attempts = attempts, .quiet = quiet };
            s3_resp hr;
            int hrc = s3_call(s, &hq, &hr), known = hrc == 0 &&
                      (hr.status == 200 || hr.status == 404);
            int match = known && hr.status == 200 &&
                        s3_etag_matches(hr.etag, buf, len);
            s3_resp_clear(&hr);
            if (match)
                return 0;
            if (!known)         /* ours or not: unknown, not "exists" */
                return hrc == -ENOMEM ? -ENOMEM : -EIO;
        }
        return -EEXIST;
    }
    return quiet ? -EIO : s3_unexpected(s, &req, r);
}


/* HEAD OBJECT; 0 with the answer in R (200, 404), or an error (logged). */
int s3_head_object(s3 *s, const char *object, s3_resp *r)
{
    s3_req req = { .method = "HEAD", .object = object, .attempts = s->attempts };
    int rc = s3_call(s, &req, r);

    if (rc == 0 && r->status != 200 && r->status != 404)
        rc = s3_unexpected(s, &req, r);
    return rc;
}


/* Create KEY with LEN bytes of BUF; -EEXIST if it exists.  Large layers go
 * multipart, everything else is one conditional PUT. */
int s3_put_if_absent(void *state, const char *key, const void *buf,
                     size_t len)
{
    s3 *s = state;
    s3_resp r;
    int rc = s3_probe_verdict(s);
    if (rc)
        return rc;
    char *o = s3_object(s, key);
    if (!o)
        return -ENOMEM;
    if (len > s->mp_threshold && strstr(key, "/layers/")) {
        rc = s3_put_multipart(s, o, buf, len);
    } else {
        rc = s3_put_object(s, o, buf, len, s->attempts, 0, &r);
        s3_resp_clear(&r);
    }
    free(o);
    return rc;
}

/* Size of KEY in *SIZE; -ENOENT if none. */
static int s3_head(void *state, const char *key, uint64_t *size)
{
    s3 *s = state;
    char *o = s3_object(s, key);
    s3_resp r;
    int rc;

    if (!o)
        return -ENOMEM;
    if ((rc = s3_head_object(s, o, &r)) == 0) {
        if (r.status == 200)
            *size = r.clen;
        else
            rc = -ENOENT;
    }
    s3_resp_clear(&r);
    free(o);
    return rc;
}

/* Read LEN bytes at OFF of KEY (UINT64_MAX: to the end) into a new buffer. */
static int s3_get(void *state, const char *key, uint64_t off, uint64_t len,
                  void **buf, size_t *outlen)
{
    s3 *s = state;
    char range[64], *o;
    s3_req req = { .method = "GET", .range = range, .attempts = s->attempts };
    s3_resp r;
    int rc;

    if (len == 0) {             /* no byte range can say "none": check only */
        uint64_t size;
        if ((rc = s3_head(state, key, &size)) < 0)
            return rc;
        if (!(*buf = malloc(1)))
            return -ENOMEM;
        *outlen = 0;
        return 0;
    }
    if (len >= UINT64_MAX - off)
        snprintf(range, sizeof(range), "bytes=%llu-", (unsigned long long)off);
    else
        snprintf(range, sizeof(range), "bytes=%llu-%llu", (unsigned long long)off,
                 (unsigned long long)(off + len - 1));
    if (!(o = s3_object(s, key)))
        return -ENOMEM;
    req.object = o;
    rc = s3_call(s, &req, &r);
    if (rc == 0) {
        if (r.status == 200 || r.status == 206) {
            size_t skip = 0;
            /* a server ignoring Range sends the whole object: cut it */
            if (r.status == 200)
                skip = off < r.len ? (size_t)off : r.len;
            if (skip)
                memmove(r.data, r.data + skip, r.len - skip);
            r.len -= skip;
            if (r.len > len)
                r.len = (size_t)len;
            if (!r.data && !(r.data = malloc(1))) {
                rc = -ENOMEM;
            } else {
                *buf = r.data;
                *outlen = r.len;
                r.data = NULL;
            }
        } else if (r.status == 416) {       /* OFF at or past the end */
            if (!(*buf = malloc(1)))
                rc = -ENOMEM;
            *outlen = 0;
        } else if (r.status == 404) {
            rc = -ENOENT;
        } else {
            rc = s3_unexpected(s, &req, &r);
        }
    }
    s3_resp_clear(&r);
    free(o);
    return rc;
}

/* Growable key list. */
typedef struct s3_keys {
    char **k;
    size_t n, cap;
} s3_keys;

/* Add the keys of one ListObjectsV2 page XML (names relative to the
 * repository prefix) to L; 0 or -ENOMEM. */
static int s3_list_page(const s3 *s, const char *xml, s3_keys *l)
{
    size_t pl = strlen(s->prefix);
    const char *p = xml;

    while ((p = strstr(p, "<Key>"))) {
        const char *e;
        char *name;
        p += 5;
        if (!(e = strstr(p, "</Key>")))
            break;
        if (!(name = malloc((size_t)(e - p) + 1)))   /* unescaping shrinks */
            return -ENOMEM;
        s3_xml_unescape(p, (size_t)(e - p), name, (size_t)(e - p) + 1);
        p = e + 6;
        if (strncmp(name, s->prefix, pl) != 0 || !name[pl] ||
            strncmp(name + pl, S3_PROBE_KEY, strlen(S3_PROBE_KEY)) == 0) {
            free(name);
            continue;
        }
        memmove(name, name + pl, strlen(name + pl) + 1);
        if (l->n == l->cap) {
            size_t cap = l->cap ? l->cap * 2 : 256;
            char **k = realloc(l->k, cap * sizeof(*k));
            if (!k) {
                free(name);
                return -ENOMEM;
            }
            l->k = k;
            l->cap = cap;
        }
        l->k[l->n++] = name;
    }
    return 0;
}

/* Unsorted keys starting with PREFIX (ListObjectsV2, all pages). */
static int s3_list(void *state, const char *prefix, char ***keys, size_t *n)
{
    s3 *s = state;
    s3_keys l = { 0 };
    char *full = s3_object(s, prefix), *pfx = NULL, *tok = NULL, *q = NULL;
    char next[4096];
    s3_req req = { .method = "GET", .attempts = s->attempts };
    s3_resp r = { 0 };
    int rc = -ENOMEM;

    if (!full || !(pfx = sigv4_uri_encode(full, 0)))
        goto out;
    for (;;) {
        char trunc[8];
        free(q);
        if (asprintf(&q, "%s%s%slist-type=2&prefix=%s",
                     tok ? "continuation-token=" : "", tok ? tok : "",
                     tok ? "&" : "", pfx) < 0) {
            q = NULL;
            rc = -ENOMEM;
            goto out;
        }
        req.query = q;
        s3_resp_clear(&r);
        if ((rc = s3_call(s, &req, &r)) < 0)
            goto out;
        if (r.status != 200) {
            rc = s3_unexpected(s, &req, &r);
            goto out;
        }
        if ((rc = s3_list_page(s, r.data ? r.data : "", &l)) < 0)
            goto out;
        s3_xml_tag(r.data, "IsTruncated", trunc, sizeof(trunc));
        s3_xml_tag(r.data, "NextContinuationToken", next, sizeof(next));
        if (strcmp(trunc, "true") != 0)
            break;
        if (!next[0]) {
            fprintf(stderr, "lakefs: s3: list %s/%s: truncated page without "
                    "NextContinuationToken\n", s->bucket, full);
            rc = -EIO;
            goto out;
        }
        free(tok);
        if (!(tok = sigv4_uri_encode(next, 0))) {
            rc = -ENOMEM;
            goto out;
        }
    }
    *keys = l.k;
    *n = l.n;
    l.k = NULL;
    l.n = 0;
    rc = 0;
out:
    for (size_t i = 0; i < l.n; i++)
        free(l.k[i]);
    free(l.k);
    s3_resp_clear(&r);
    free(full);
    free(pfx);
    free(tok);
    free(q);
    return rc;
}

/* Remove KEY; a missing key is success. */
int s3_del(void *state, const char *key)
{
    s3 *s = state;
    char *o = s3_object(s, key);
    s3_req req = { .method = "DELETE", .object = o, .attempts = s->attempts };
    s3_resp r;
    int rc;

    if (!o)
        return -ENOMEM;
    rc = s3_call(s, &req, &r);
    if (rc == 0 && r.status != 204 && r.status != 200 && r.status != 404)
        rc = s3_unexpected(s, &req, &r);
    s3_resp_clear(&r);
    free(o);
    return rc;
}

/* Remove the N <= S3_DELETE_BATCH keys KEYS with one multi-object delete;
 * 0, or -EIO (-EACCES) after logging the first key the server kept. */
static int s3_del_batch(s3 *s, const char *const *keys, size_t n)
{
    size_t cap = 64, pl = strlen(s->prefix), nerr = 0;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    char md5[4 * EVP_MAX_MD_SIZE / 3 + 4], first[1100] = "", code1[64] = "";
    char *body, *p;
    s3_req req = { .method = "POST", .query = "delete", .content_md5 = md5,
                   .result = "<DeleteResult", .attempts = s->attempts };
    s3_resp r;
    int rc;

    for (size_t i = 0; i < n; i++)
        cap += 32 + pl + strlen(keys[i]);
    if (!(body = malloc(cap)))
        return -ENOMEM;
    /* keys and prefix hold only [A-Za-z0-9._/-]: nothing to escape */
    p = body + sprintf(body, "<Delete><Quiet>true</Quiet>");
    for (size_t i = 0; i < n; i++)
        p += sprintf(p, "<Object><Key>%s%s</Key></Object>", s->prefix, keys[i]);
    p += sprintf(p, "</Delete>");
    if (!EVP_Digest(body, (size_t)(p - body), md, &mdlen, EVP_md5(), NULL)) {
        free(body);
        return -ENOMEM;
    }
    EVP_EncodeBlock((unsigned char *)md5, md, (int)mdlen);
    req.body = body;
    req.blen = (size_t)(p - body);
    rc = s3_call(s, &req, &r);
    if (rc == 0 && r.status != 200)
        rc = s3_unexpected(s, &req, &r);
    else if (rc == 0 && !(r.data && strstr(r.data, req.result)))
        rc = s3_bad_answer(s, &req, "DeleteResult");
    /* quiet: only keys that were not deleted are listed, as <Error> */
    for (const char *e = rc == 0 ? r.data : NULL; e && (e = strstr(e, "<Error>"));) {
        const char *end = strstr(e, "</Error>");
        char key[1100], code[64], *one;
        if (!end || !(one = strndup(e, (size_t)(end - e)))) {
            rc = end ? -ENOMEM : s3_bad_answer(s, &req, "</Error>");
            break;
        }
        e = end;
        s3_xml_tag(one, "Key", key, sizeof(key));
        s3_xml_tag(one, "Code", code, sizeof(code));
        free(one);
        if (strcmp(code, "NoSuchKey") != 0 && nerr++ == 0) {
            snprintf(first, sizeof(first), "%s", key);
            snprintf(code1, sizeof(code1), "%s", code);
        }
    }
    if (rc == 0 && nerr) {
        fprintf(stderr, "lakefs: s3: delete %s/%s: %s (%zu of %zu keys of the "
                "request not deleted)\n", s->bucket, first,
                code1[0] ? code1 : "no error code", nerr, n);
        rc = strcmp(code1, "AccessDenied") == 0 ? -EACCES : -EIO;
    }
    s3_resp_clear(&r);
    free(body);
    return rc;
}

/* Remove the N keys KEYS, S3_DELETE_BATCH per request, in order; stops at
 * the first batch that fails. */
static int s3_del_many(void *state, const char *const *keys, size_t n)
{
    int rc = 0;

    for (size_t i = 0; i < n && rc == 0; i += S3_DELETE_BATCH)
        rc = s3_del_batch(state, keys + i,
                          n - i < S3_DELETE_BATCH ? n - i : S3_DELETE_BATCH);
    return rc;
}

const os_backend os_s3_backend = {
    .scheme = "s3://",
    .open = s3_open,
    .close = s3_close,
    .put_if_absent = s3_put_if_absent,
    .get = s3_get,
    .head = s3_head,
    .list = s3_list,
    .del = s3_del,
    .del_many = s3_del_many,
};

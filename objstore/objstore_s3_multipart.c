/*
 * objstore_s3_multipart.c -- large layers of the s3:// backend as
 * multipart uploads.
 *
 * Large objects go up as multipart uploads (parts of 8 MiB, four at a time,
 * each signed with its own SHA-256), which a single PUT of one buffer cannot
 * match for speed, and which retries a part instead of the whole object.
 * But put-if-absent must stay put-if-absent, and not every server honours
 * "If-None-Match: *" on CompleteMultipartUpload: AWS does, Ceph RGW ignores
 * it and overwrites.  So multipart is used only for objects larger than the
 * threshold (16 MiB, or LAKEFS_S3_MULTIPART_THRESHOLD bytes) whose key contains
 * "/layers/": layer keys are unique by construction (a random part, and the
 * store picks another name on -EEXIST), so no two writers ever complete the
 * same key.  Even so, the key is checked with a HEAD just before completing
 * (present: -EEXIST) and the header is still sent, which makes the check
 * atomic where the server supports it.  Commit objects (manifests, the
 * lease) are small and always a single PUT, where the condition is atomic
 * everywhere.  A retried Complete that finds its upload gone accepts an
 * object whose ETag is the multipart ETag of our parts; the ETag in the
 * Complete answer itself is not used (RGW sends it empty).  Every path that
 * does not complete the upload aborts it, and when the request starting it
 * had to be retried (an upload may have been started by an attempt whose
 * answer was lost), every unfinished upload of that key is aborted too, so
 * nothing is left behind.  Only a crash in the middle leaves an upload: a
 * bucket lifecycle rule (AbortIncompleteMultipartUpload) removes those.
 */
#include "objstore_s3.h"
#include "sigv4.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <openssl/evp.h>
#include <stdatomic.h>

/* One multipart upload under way. */
typedef struct s3_mpu {
    s3 *s;
    const char *object;           /* full object name */
    char *qid;                    /* "uploadId=..." as sent; NULL until started */
    const unsigned char *buf;     /* the object's bytes */
    size_t len, psize;            /* its length; bytes per part (last: fewer) */
    int nparts;
    char (*etags)[80];            /* ETag of each part, as the server gave it */
    atomic_int next;              /* index of the next part to send */
    atomic_int rc;                /* first error of any part; 0 if none */
} s3_mpu;

/* Thread body: upload parts of M until all are taken or one has failed. */
static void *s3_mp_worker(void *arg)
{
    s3_mpu *m = arg;
    int i;

    while (atomic_load(&m->rc) == 0 &&
           (i = atomic_fetch_add(&m->next, 1)) < m->nparts) {
        size_t off = (size_t)i * m->psize;
        s3_req req = { .method = "PUT", .object = m->object,
                       .body = m->buf + off, .attempts = m->s->attempts,
                       .blen = m->len - off < m->psize ? m->len - off : m->psize };
        s3_resp r;
        char *q;
        int rc, none = 0;

        if (asprintf(&q, "partNumber=%d&%s", i + 1, m->qid) < 0) {
            rc = -ENOMEM;
        } else {
            req.query = q;
            rc = s3_call(m->s, &req, &r);
            if (rc == 0 && r.status != 200)
                rc = s3_unexpected(m->s, &req, &r);
            else if (rc == 0 && !r.etag[0])
                rc = s3_bad_answer(m->s, &req, "ETag");
            if (rc == 0)
                memcpy(m->etags[i], r.etag, sizeof(r.etag));
            s3_resp_clear(&r);
            free(q);
        }
        if (rc < 0)
            atomic_compare_exchange_strong(&m->rc, &none, rc);
    }
    return NULL;
}

/* Value of hex digit C, or -1. */
static int s3_hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 :
           c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* 1 if ETAG is the ETag S3 gives the object made of M's parts: the hex MD5
 * of the parts' binary MD5s, "-" and the number of parts. */
static int s3_mp_etag_matches(const s3_mpu *m, const char *etag)
{
    unsigned char *bin = malloc((size_t)m->nparts * 16), md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    char want[2 * EVP_MAX_MD_SIZE + 16];
    int ok = bin != NULL;

    for (int i = 0; ok && i < m->nparts; i++) {
        const char *e = m->etags[i];
        ok = strlen(e) == 32;
        for (int j = 0; ok && j < 16; j++) {
            int hi = s3_hexval(e[2 * j]), lo = s3_hexval(e[2 * j + 1]);
            ok = hi >= 0 && lo >= 0;
            bin[i * 16 + j] = (unsigned char)(hi << 4 | lo);
        }
    }
    ok = ok && EVP_Digest(bin, (size_t)m->nparts * 16, md, &mdlen, EVP_md5(), NULL);
    free(bin);
    if (!ok)
        return 0;
    for (unsigned int i = 0; i < mdlen; i++)
        snprintf(want + 2 * i, 3, "%02x", md[i]);
    snprintf(want + 2 * mdlen, sizeof(want) - 2 * mdlen, "-%d", m->nparts);
    return strcasecmp(want, etag) == 0;
}

/* Start the multipart upload M; sets M->qid.  *RETRIED: the request went
 * out more than once, so the server may hold an upload we never heard of. */
static int s3_mp_start(s3_mpu *m, int *retried)
{
    s3_req req = { .method = "POST", .object = m->object, .query = "uploads",
                   .result = "<InitiateMultipartUploadResult",
                   .attempts = m->s->attempts };
    s3_resp r;
    char id[1024], *enc;
    int rc = s3_call(m->s, &req, &r);

    *retried = r.tries > 1;
    if (rc == 0 && r.status != 200)
        rc = s3_unexpected(m->s, &req, &r);
    if (rc == 0) {
        s3_xml_tag(r.data, "UploadId", id, sizeof(id));
        if (!id[0]) {
            rc = s3_bad_answer(m->s, &req, "UploadId");
        } else if (!(enc = sigv4_uri_encode(id, 0))) {
            rc = -ENOMEM;
        } else {
            if (asprintf(&m->qid, "uploadId=%s", enc) < 0) {
                m->qid = NULL;
                rc = -ENOMEM;
            }
            free(enc);
        }
    }
    s3_resp_clear(&r);
    return rc;
}

/* Abort the upload QID ("uploadId=...") of OBJECT; logs when it cannot. */
static void s3_mp_abort(s3 *s, const char *object, const char *qid)
{
    s3_req req = { .method = "DELETE", .object = object, .query = qid,
                   .attempts = s->attempts };
    s3_resp r;
    int rc = s3_call(s, &req, &r);

    if (rc == 0 && r.status != 204 && r.status != 200 && r.status != 404)
        rc = s3_unexpected(s, &req, &r);
    if (rc < 0)
        fprintf(stderr, "lakefs: s3: multipart upload %s of %s/%s left behind: "
                "abort failed: %s (a bucket lifecycle rule with "
                "AbortIncompleteMultipartUpload removes it)\n", qid + 9,
                s->bucket, object, strerror(-rc));
    s3_resp_clear(&r);
}

/* Abort every unfinished multipart upload of OBJECT: its key is unique, so
 * all of them are this writer's (one listing page: 1000 uploads). */
static void s3_mp_abort_all(s3 *s, const char *object)
{
    char *pfx = sigv4_uri_encode(object, 0), *q = NULL;
    s3_req req = { .method = "GET", .result = "<ListMultipartUploadsResult",
                   .attempts = s->attempts };
    s3_resp r = { 0 };

    if (!pfx || asprintf(&q, "prefix=%s&uploads", pfx) < 0) {
        q = NULL;
        goto out;
    }
    req.query = q;
    if (s3_call(s, &req, &r) < 0)
        goto out;
    if (r.status != 200) {
        s3_unexpected(s, &req, &r);
        goto out;
    }
    for (const char *p = r.data ? r.data : ""; (p = strstr(p, "<Upload>"));) {
        const char *e = strstr(p, "</Upload>");
        char key[1100], id[1024], *one, *enc, *qid;
        if (!e || !(one = strndup(p, (size_t)(e - p))))
            break;
        p = e;
        s3_xml_tag(one, "Key", key, sizeof(key));
        s3_xml_tag(one, "UploadId", id, sizeof(id));
        free(one);
        if (strcmp(key, object) != 0 || !id[0] || !(enc = sigv4_uri_encode(id, 0)))
            continue;
        if (asprintf(&qid, "uploadId=%s", enc) >= 0) {
            s3_mp_abort(s, object, qid);
            free(qid);
        }
        free(enc);
    }
out:
    s3_resp_clear(&r);
    free(pfx);
    free(q);
}

/* Complete M unless its object exists: 0, -EEXIST, or an error. */
static int s3_mp_complete(s3_mpu *m)
{
    s3 *s = m->s;
    s3_req req = { .method = "POST", .object = m->object, .query = m->qid,
                   .result = "<CompleteMultipartUploadResult",
                   .if_none_match = 1, .attempts = s->attempts };
    size_t cap = 64 + (size_t)m->nparts * (80 + sizeof(m->etags[0]));
    char *body, *p, code[64];
    s3_resp r;
    int rc;

    /* the server may ignore If-None-Match on Complete: look first */
    if ((rc = s3_head_object(s, m->object, &r)) == 0 && r.status == 200)
        rc = -EEXIST;
    s3_resp_clear(&r);
    if (rc < 0)
        return rc;
    if (!(body = malloc(cap)))
        return -ENOMEM;
    p = body + sprintf(body, "<CompleteMultipartUpload>");
    for (int i = 0; i < m->nparts; i++)
        p += sprintf(p, "<Part><PartNumber>%d</PartNumber><ETag>\"%s\"</ETag>"
                     "</Part>", i + 1, m->etags[i]);
    p += sprintf(p, "</CompleteMultipartUpload>");
    req.body = body;
    req.blen = (size_t)(p - body);
    if ((rc = s3_call(s, &req, &r)) == 0) {
        s3_xml_tag(r.data, "Code", code, sizeof(code));
        if (r.status == 200 && r.data && strstr(r.data, req.result)) {
            rc = 0;
        } else if (r.tries > 1 && (r.status == 412 || r.status == 409 ||
                                   (r.status == 404 && !strcmp(code, "NoSuchUpload")))) {
            /* an earlier attempt may have completed it, its answer lost */
            s3_resp hr;
            int ours = s3_head_object(s, m->object, &hr) == 0 &&
                       hr.status == 200 && s3_mp_etag_matches(m, hr.etag);
            s3_resp_clear(&hr);
            rc = ours ? 0 : r.status == 404 ? s3_unexpected(s, &req, &r) : -EEXIST;
        } else if (r.status == 412 || r.status == 409) {
            rc = -EEXIST;
        } else if (r.status == 200) {
            rc = s3_bad_answer(s, &req, "CompleteMultipartUploadResult");
        } else {
            rc = s3_unexpected(s, &req, &r);
        }
    }
    s3_resp_clear(&r);
    free(body);
    return rc;
}

/* Create OBJECT with LEN bytes of BUF by a multipart upload unless it
 * exists (see the file comment); 0, -EEXIST or an error.  Whatever the
 * outcome, no upload of OBJECT is left unfinished. */
int s3_put_multipart(s3 *s, const char *object, const void *buf,
                     size_t len)
{
    s3_mpu m = { .s = s, .object = object, .buf = buf, .len = len,
                 .psize = S3_PART_SIZE };
    pthread_t th[S3_PART_THREADS - 1];
    int nth = 0, retried = 0, rc;

    while ((len + m.psize - 1) / m.psize > S3_MAX_PARTS)
        m.psize *= 2;
    m.nparts = (int)((len + m.psize - 1) / m.psize);
    atomic_init(&m.next, 0);
    atomic_init(&m.rc, 0);
    if (!(m.etags = calloc((size_t)m.nparts, sizeof(*m.etags))))
        return -ENOMEM;
    if ((rc = s3_mp_start(&m, &retried)) < 0)
        goto out;
    /* this thread sends parts too; fewer helpers if threads run out */
    while (nth < S3_PART_THREADS - 1 && nth + 1 < m.nparts &&
           pthread_create(&th[nth], NULL, s3_mp_worker, &m) == 0)
        nth++;
    s3_mp_worker(&m);
    while (nth > 0)
        pthread_join(th[--nth], NULL);
    if ((rc = atomic_load(&m.rc)) == 0)
        rc = s3_mp_complete(&m);
    if (rc < 0)
        s3_mp_abort(s, object, m.qid);
out:
    if (retried)
        s3_mp_abort_all(s, object);
    free(m.qid);
    free(m.etags);
    return rc;
}

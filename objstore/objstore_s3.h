/*
 * objstore_s3.h -- what the files of the s3:// backend share: its state,
 * one request and its answer, and the functions one file offers the
 * others.  Private to objstore_s3*.c; the store sees only os_s3_backend
 * (objstore_backend.h).
 *
 *   objstore_s3.c           the operations (put-if-absent, get, head, list,
 *                           delete) and the backend table
 *   objstore_s3_request.c   sending a signed request: curl handles, retries
 *                           with backoff, errors, XML answers
 *   objstore_s3_multipart.c large layers as multipart uploads
 *   objstore_s3_open.c      configuration, credentials, the checks at open
 *                           (the conditional-PUT probe) and close
 */
#ifndef LAKEFS_OBJSTORE_S3_H
#define LAKEFS_OBJSTORE_S3_H

#include "objstore_backend.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#define S3_PROBE_KEY ".lakefs-conditional-put-probe" /* hidden from os_list */
#define S3_OPEN_ATTEMPTS 3        /* retry budget of the checks in os_open */
#define S3_EMPTY_SHA256 \
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define S3_RETRY_AFTER_MAX 20     /* seconds: longest Retry-After obeyed */
#define S3_MP_THRESHOLD (16u << 20) /* default: larger layers go multipart */
#define S3_PART_SIZE (8u << 20)   /* multipart part size (S3 minimum: 5 MiB) */
#define S3_MAX_PARTS 10000        /* S3's limit; larger objects get larger parts */
#define S3_PART_THREADS 4         /* parts uploaded at once */
#define S3_DELETE_BATCH 1000      /* keys per multi-object delete (S3's limit) */

typedef struct s3 {
    char *endpoint;               /* "https://host[:port]", no trailing '/' */
    const char *endpoint_from;    /* where it was configured (for messages) */
    char *host;                   /* Host header: the endpoint's authority */
    char *bucket;
    char *prefix;                 /* "" or "some/prefix/" */
    char *region;
    char *access_key, *secret_key, *token;
    char *ca_bundle;              /* AWS_CA_BUNDLE, or NULL */
    int attempts;                 /* retry budget of one operation */
    uint64_t mp_threshold;        /* larger layer objects go multipart */
    pthread_mutex_t lock;         /* protects the handle pool */
    CURL **idle;                  /* pool of handles not in use */
    size_t nidle, capidle;
    /* the conditional-PUT probe (s3_check), under s3_probe_mu */
    char probe_key[64], *probe;   /* the probe's key, and its object name */
    int prober_joinable;          /* that thread is to be joined at close */
    pthread_t prober;
    struct s3 *probe_next;        /* s3_probe_list */
    int probe_done, probe_rc, probe_told;
    char probe_err[512];          /* what a failed probe says */
} s3;

/* One request to send. */
typedef struct s3_req {
    const char *method;           /* GET, PUT, POST, HEAD, DELETE */
    const char *object;           /* full object name, or NULL: the bucket */
    const char *query;            /* canonical wire query, or NULL */
    const char *range;            /* Range header value, or NULL */
    const char *content_md5;      /* Content-MD5 header value, or NULL */
    const char *result;           /* "<Root" a 200 answer must hold, else it
                                   * is an error sent with 200: retried */
    int if_none_match;            /* send "If-None-Match: *" */
    const void *body;
    size_t blen;
    int attempts;                 /* retry budget */
    int quiet;                    /* do not log when the budget is spent */
} s3_req;

/* What came back (or why nothing did). */
typedef struct s3_resp {
    long status;                  /* HTTP status; 0 if none */
    CURLcode cerr;                /* curl error of the last attempt */
    char cmsg[CURL_ERROR_SIZE];   /* its details */
    char *data;                   /* body */
    size_t len, cap;
    uint64_t clen;                /* Content-Length (HEAD) */
    char etag[80];                /* ETag, unquoted */
    int retry_after;              /* Retry-After in seconds; 0 if none */
    int tries;                    /* attempts made */
} s3_resp;

/* ---- objstore_s3_request.c ---- */

/* Free the response body and reset R for another attempt. */
void s3_resp_clear(s3_resp *r);
/* Send REQ with retries; 0 with R holding the final answer, -EIO when the
 * budget is spent (logged unless quiet), -ENOMEM. */
int s3_call(s3 *s, const s3_req *req, s3_resp *r);
/* Log the unexpected answer R to REQ in one line; returns -EIO (-EACCES
 * for 403). */
int s3_unexpected(s3 *s, const s3_req *req, const s3_resp *r);
/* Log that the answer to REQ lacks WHAT; returns -EIO. */
int s3_bad_answer(s3 *s, const s3_req *req, const char *what);
/* 1 if HTTP status ST asks for a retry (server error or throttling). */
int s3_retry_status(long st);
/* Contents of the first <TAG> element of XML in OUT (unescaped); "" if none. */
void s3_xml_tag(const char *xml, const char *tag, char *out, size_t outlen);
/* XML-unescape LEN bytes of S into OUT (N bytes, NUL-terminated). */
void s3_xml_unescape(const char *s, size_t len, char *out, size_t n);

/* ---- objstore_s3.c ---- */

/* Full object name of KEY (prefix + key), malloc'd; NULL on OOM. */
char *s3_object(const s3 *s, const char *key);
/* PUT OBJECT unless it exists; 0, -EEXIST, or an error (R: the answer). */
int s3_put_object(s3 *s, const char *object, const void *buf, size_t len,
                  int attempts, int quiet, s3_resp *r);
/* HEAD OBJECT; 0 with the answer in R (200, 404), or an error (logged). */
int s3_head_object(s3 *s, const char *object, s3_resp *r);
/* Create KEY with LEN bytes of BUF; -EEXIST if it exists. */
int s3_put_if_absent(void *state, const char *key, const void *buf, size_t len);
/* Remove KEY; a missing key is success. */
int s3_del(void *state, const char *key);

/* ---- objstore_s3_multipart.c ---- */

/* Create OBJECT with LEN bytes of BUF by a multipart upload unless it
 * exists; 0, -EEXIST or an error.  Whatever the outcome, no upload of
 * OBJECT is left unfinished. */
int s3_put_multipart(s3 *s, const char *object, const void *buf, size_t len);

/* ---- objstore_s3_open.c ---- */

/* Open s3://REST ("bucket[/prefix]"): configure, then check the bucket. */
int s3_open(const char *rest, void **state, char *err, size_t errlen);
/* Free the backend state and everything it owns. */
void s3_close(void *state);
/* Wait for the conditional-PUT verdict: 0, or its error (reported once). */
int s3_probe_verdict(s3 *s);

#endif

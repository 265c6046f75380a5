/*
 * objstore_s3.c -- the s3:// backend: a repository is a bucket and prefix in
 * any S3-compatible object store.
 *
 * s3://bucket/prefix maps key K to the object "prefix/K", addressed
 * path-style (https://endpoint/bucket/prefix/K) so that any S3 server works,
 * not only ones with wildcard DNS.  Requests go through libcurl and are
 * signed with AWS Signature Version 4 (sigv4.c), body hash included.
 *
 * Configuration is read the way the AWS tools read it, so an existing setup
 * works unchanged: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY /
 * AWS_SESSION_TOKEN, else the AWS_PROFILE (default "default") section of
 * ~/.aws/credentials or ~/.aws/config; AWS_REGION / AWS_DEFAULT_REGION or
 * the profile's region; AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL or the
 * profile's endpoint_url, else https://s3.REGION.amazonaws.com.  TLS is
 * verified (AWS_CA_BUNDLE names extra CAs); plain http:// is refused unless
 * the host is loopback or LAKEFS_S3_ALLOW_HTTP=1.  Secrets are never
 * printed: errors name where a key came from, never the key, and they are
 * wiped from memory at close.
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
 *
 * The backend is called from many threads: finished CURL handles go back to
 * a mutex-protected pool, so connections (and TLS sessions) are reused.
 * Transient failures (connection errors, 5xx, 429/503 throttling, and an
 * error sent in a 200 answer, which S3 does for Complete) are retried with
 * exponential backoff and jitter up to LAKEFS_S3_RETRIES attempts (default
 * 10, about 15 s); a 429 or 503 with a Retry-After of N seconds waits N
 * seconds instead (at most 20), still counting as one attempt of the budget.
 * After the budget the operation returns -EIO and logs one line naming
 * method, object and the last status or error.
 * The checks at open give up on an endpoint that does not answer after 3
 * attempts, but a server that answers with throttling or 5xx gets the
 * full budget, and is reported as overloaded, not as misconfigured.
 */
#include "objstore_backend.h"
#include "sigv4.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <strings.h>
#include <time.h>

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

/* Upload cursor for the read callback. */
typedef struct s3_upload {
    const char *p;
    size_t len, pos;
} s3_upload;

static pthread_once_t s3_once = PTHREAD_ONCE_INIT;
static CURLcode s3_global_rc;

/* The probe threads of every open store, which run behind os_open: a
 * fork() waits until none runs and joins them (the child would have none
 * of them, and would wait for their verdict for ever), so their verdicts
 * are in when the child starts; otherwise a store's close joins its own. */
static pthread_mutex_t s3_probe_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t s3_probe_cv = PTHREAD_COND_INITIALIZER;  /* a verdict, or a prober ended */
static int s3_probers;            /* probe threads running */
static struct s3 *s3_probe_list;  /* stores whose prober is still to be joined */

/* Before fork: every probe thread ended and joined, so that the child
 * inherits none, not even one still on its way out (a sanitizer in the
 * child would count its thread-local memory as leaked). */
static void s3_fork_prepare(void)
{
    pthread_mutex_lock(&s3_probe_mu);
    while (s3_probers)
        pthread_cond_wait(&s3_probe_cv, &s3_probe_mu);
    for (struct s3 *s = s3_probe_list; s; s = s->probe_next) {
        pthread_join(s->prober, NULL);   /* past its last unlock: no wait for the mutex */
        s->prober_joinable = 0;
    }
    s3_probe_list = NULL;
}

static void s3_fork_after(void)
{
    pthread_mutex_unlock(&s3_probe_mu);
}

/* curl_global_init, once per process. */
static void s3_global_init(void)
{
    s3_global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
    pthread_atfork(s3_fork_prepare, s3_fork_after, s3_fork_after);
}

/* Free the response body and reset R for another attempt. */
static void s3_resp_clear(s3_resp *r)
{
    int tries = r->tries;

    free(r->data);
    memset(r, 0, sizeof(*r));
    r->tries = tries;
}

/* ---------------------------------------------------------------- curl glue */

/* curl write callback: append to the response body. */
static size_t s3_write_cb(char *ptr, size_t size, size_t nmemb, void *ud)
{
    s3_resp *r = ud;
    size_t n = size * nmemb;

    if (r->len + n + 1 > r->cap) {
        size_t cap = r->cap ? r->cap : 4096;
        char *p;
        while (cap < r->len + n + 1)
            cap *= 2;
        if (!(p = realloc(r->data, cap)))
            return 0;           /* curl reports CURLE_WRITE_ERROR */
        r->data = p;
        r->cap = cap;
    }
    memcpy(r->data + r->len, ptr, n);
    r->len += n;
    r->data[r->len] = '\0';
    return n;
}

/* curl header callback: keep the ETag, unquoted, and a Retry-After given in
 * seconds (the HTTP-date form is ignored: backoff applies then). */
static size_t s3_header_cb(char *ptr, size_t size, size_t nmemb, void *ud)
{
    s3_resp *r = ud;
    size_t n = size * nmemb, i = 5, j;

    if (n > 5 && strncasecmp(ptr, "etag:", 5) == 0) {
        while (i < n && (ptr[i] == ' ' || ptr[i] == '"'))
            i++;
        for (j = 0; i < n && ptr[i] != '"' && ptr[i] != '\r' && ptr[i] != '\n' &&
                    j + 1 < sizeof(r->etag); i++)
            r->etag[j++] = ptr[i];
        r->etag[j] = '\0';
    } else if (n > 12 && strncasecmp(ptr, "retry-after:", 12) == 0) {
        long v = 0;
        size_t k;
        for (i = 12; i < n && ptr[i] == ' '; i++)
            ;
        for (j = i; j < n && ptr[j] >= '0' && ptr[j] <= '9' && v < 1000000; j++)
            v = v * 10 + (ptr[j] - '0');
        for (k = j; k < n && (ptr[k] == ' ' || ptr[k] == '\r' || ptr[k] == '\n'); k++)
            ;
        if (j > i && k == n)
            r->retry_after = (int)v;
    }
    return n;
}

/* curl read callback: the next piece of the upload. */
static size_t s3_read_cb(char *buf, size_t size, size_t nmemb, void *ud)
{
    s3_upload *u = ud;
    size_t n = size * nmemb;

    if (n > u->len - u->pos)
        n = u->len - u->pos;
    memcpy(buf, u->p + u->pos, n);
    u->pos += n;
    return n;
}

/* curl seek callback: rewind the upload when curl resends it. */
static int s3_seek_cb(void *ud, curl_off_t off, int origin)
{
    s3_upload *u = ud;

    if (origin != SEEK_SET || off < 0 || (uint64_t)off > u->len)
        return CURL_SEEKFUNC_CANTSEEK;
    u->pos = (size_t)off;
    return CURL_SEEKFUNC_OK;
}

/* A handle from the pool or a new one; NULL on OOM. */
static CURL *s3_handle_get(s3 *s)
{
    CURL *h = NULL;

    pthread_mutex_lock(&s->lock);
    if (s->nidle > 0)
        h = s->idle[--s->nidle];
    pthread_mutex_unlock(&s->lock);
    return h ? h : curl_easy_init();
}

/* Return H to the pool (its connection stays open for the next request). */
static void s3_handle_put(s3 *s, CURL *h)
{
    pthread_mutex_lock(&s->lock);
    if (s->nidle == s->capidle) {
        size_t cap = s->capidle ? s->capidle * 2 : 8;
        CURL **p = realloc(s->idle, cap * sizeof(*p));
        if (p) {
            s->idle = p;
            s->capidle = cap;
        }
    }
    if (s->nidle < s->capidle) {
        s->idle[s->nidle++] = h;
        h = NULL;
    }
    pthread_mutex_unlock(&s->lock);
    if (h)
        curl_easy_cleanup(h);
}

/* Append LINE to the header list *L; -ENOMEM on failure. */
static int s3_hdr(struct curl_slist **l, const char *line)
{
    struct curl_slist *n = curl_slist_append(*l, line);

    if (!n)
        return -ENOMEM;
    *l = n;
    return 0;
}

/* Send REQ once with body hash HASH; 0 with R filled, or -ENOMEM/-EINVAL. */
static int s3_perform(s3 *s, const s3_req *req, const char *hash, s3_resp *r)
{
    char *enc = NULL, *url = NULL, *hostline = NULL, *rangeline = NULL;
    char *md5line = NULL;
    sigv4_header h[4];
    size_t nh = 0;
    sigv4_result sig;
    struct curl_slist *hl = NULL;
    s3_upload up = { req->body, req->blen, 0 };
    CURL *c;
    int rc = -ENOMEM;

    memset(&sig, 0, sizeof(sig));
    if (!(c = s3_handle_get(s)))
        return -ENOMEM;
    if (req->object) {
        if (!(enc = sigv4_uri_encode(req->object, 1)))
            goto out;
    }
    if (asprintf(&url, "%s/%s%s%s%s%s", s->endpoint, s->bucket,
                 enc ? "/" : "", enc ? enc : "", req->query ? "?" : "",
                 req->query ? req->query : "") < 0) {
        url = NULL;
        goto out;
    }
    if (asprintf(&hostline, "Host: %s", s->host) < 0) {
        hostline = NULL;
        goto out;
    }
    h[nh++] = (sigv4_header){ "Host", s->host };
    if (req->range) {
        if (asprintf(&rangeline, "Range: %s", req->range) < 0) {
            rangeline = NULL;
            goto out;
        }
        h[nh++] = (sigv4_header){ "Range", req->range };
    }
    if (req->content_md5) {
        if (asprintf(&md5line, "Content-MD5: %s", req->content_md5) < 0) {
            md5line = NULL;
            goto out;
        }
        h[nh++] = (sigv4_header){ "Content-MD5", req->content_md5 };
    }
    if (req->if_none_match)
        h[nh++] = (sigv4_header){ "If-None-Match", "*" };
    {
        const char *path = url + strlen(s->endpoint);
        char *q = strchr(path, '?');
        char *p = strndup(path, q ? (size_t)(q - path) : strlen(path));
        sigv4_request sr = { req->method, p, req->query, h, nh, hash };
        sigv4_creds cr = { s->access_key, s->secret_key, s->token };
        sigv4_params par = { s->region, "s3", time(NULL), 0, 0, 1 };
        if (!p)
            goto out;
        rc = sigv4_sign(&sr, &cr, &par, &sig);
        free(p);
        if (rc < 0)
            goto out;
        rc = -ENOMEM;
    }
    if (s3_hdr(&hl, hostline) < 0 || (rangeline && s3_hdr(&hl, rangeline) < 0) ||
        (md5line && s3_hdr(&hl, md5line) < 0) ||
        (req->if_none_match && s3_hdr(&hl, "If-None-Match: *") < 0) ||
        s3_hdr(&hl, "Expect:") < 0 || s3_hdr(&hl, "Accept:") < 0 ||
        s3_hdr(&hl, "Content-Type:") < 0)
        goto out;
    for (size_t i = 0; i < sig.nadd; i++)
        if (s3_hdr(&hl, sig.add[i]) < 0)
            goto out;

    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);   /* stalled 30 s: fail */
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 30L);
    curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, r->cmsg);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, s3_write_cb);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, s3_header_cb);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    if (s->ca_bundle)
        curl_easy_setopt(c, CURLOPT_CAINFO, s->ca_bundle);
    if (strcmp(req->method, "PUT") == 0 || strcmp(req->method, "POST") == 0) {
        if (req->method[1] == 'U') {
            curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
            curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)req->blen);
        } else {
            curl_easy_setopt(c, CURLOPT_POST, 1L);
            curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->blen);
        }
        curl_easy_setopt(c, CURLOPT_READFUNCTION, s3_read_cb);
        curl_easy_setopt(c, CURLOPT_READDATA, &up);
        curl_easy_setopt(c, CURLOPT_SEEKFUNCTION, s3_seek_cb);
        curl_easy_setopt(c, CURLOPT_SEEKDATA, &up);
    } else if (strcmp(req->method, "HEAD") == 0) {
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    } else if (strcmp(req->method, "GET") != 0) {
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, req->method);
    }
    r->cerr = curl_easy_perform(c);
    if (r->cerr == CURLE_OK) {
        curl_off_t cl = -1;
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
        curl_easy_getinfo(c, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
        r->clen = cl > 0 ? (uint64_t)cl : 0;
    } else if (!r->cmsg[0]) {
        snprintf(r->cmsg, sizeof(r->cmsg), "%s", curl_easy_strerror(r->cerr));
    }
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, NULL);
    rc = 0;
out:
    sigv4_result_free(&sig);
    curl_slist_free_all(hl);
    free(enc);
    free(url);
    free(hostline);
    free(rangeline);
    free(md5line);
    s3_handle_put(s, c);
    return rc;
}

/* 1 if curl error E may go away by itself (network, timeouts, resets). */
static int s3_transient(CURLcode e)
{
    switch (e) {
    case CURLE_COULDNT_RESOLVE_HOST: case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT: case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR: case CURLE_GOT_NOTHING: case CURLE_PARTIAL_FILE:
    case CURLE_SSL_CONNECT_ERROR: case CURLE_HTTP2: case CURLE_HTTP2_STREAM:
    case CURLE_SEND_FAIL_REWIND:
        return 1;
    default:
        return 0;
    }
}

/* 1 if HTTP status ST asks for a retry (server error or throttling). */
static int s3_retry_status(long st)
{
    return st == 429 || st == 408 || (st >= 500 && st != 501);
}

/* Random number for jitter (thread-local xorshift, seeded from the clock). */
static uint64_t s3_rand(void)
{
    static _Thread_local uint64_t x;

    if (!x) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        x = ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)ts.tv_sec ^
            (uint64_t)(uintptr_t)&ts;
        x |= 1;
    }
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return x;
}

/* Sleep MS milliseconds. */
static void s3_sleep_ms(uint64_t ms)
{
    struct timespec ts;

    ts.tv_sec = (time_t)(ms / 1000);
    ts.tv_nsec = (long)(ms % 1000) * 1000000L;
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* Sleep before attempt TRY+1 after answer R: the server's Retry-After on
 * 429/503 (at most S3_RETRY_AFTER_MAX s), else 50 ms doubling to 5 s, half
 * of it jitter. */
static void s3_backoff(int try, const s3_resp *r)
{
    uint64_t ms = 50ULL << (try < 8 ? try - 1 : 7);

    if ((r->status == 429 || r->status == 503) && r->retry_after > 0) {
        s3_sleep_ms(1000ULL * (uint64_t)(r->retry_after < S3_RETRY_AFTER_MAX ?
                                         r->retry_after : S3_RETRY_AFTER_MAX));
        return;
    }
    if (ms > 5000)
        ms = 5000;
    s3_sleep_ms(ms / 2 + s3_rand() % (ms / 2 + 1));
}

/* 1 if R is a 200 answer to REQ that carries an error instead of the
 * expected result (S3 may fail a Complete after sending 200). */
static int s3_error_in_200(const s3_req *req, const s3_resp *r)
{
    return req->result && r->status == 200 && r->data &&
           strstr(r->data, "<Error>") && !strstr(r->data, req->result);
}

/* Contents of the first <TAG> element of XML in OUT (unescaped); "" if none. */
static void s3_xml_tag(const char *xml, const char *tag, char *out, size_t outlen);

/* Send REQ with retries; 0 with R holding the final answer, -EIO when the
 * budget is spent (logged unless quiet), -ENOMEM. */
static int s3_call(s3 *s, const s3_req *req, s3_resp *r)
{
    char hash[65];
    int rc;

    memset(r, 0, sizeof(*r));
    if (req->blen)
        sigv4_sha256_hex(req->body, req->blen, hash);
    else
        memcpy(hash, S3_EMPTY_SHA256, 65);
    for (;;) {
        s3_resp_clear(r);
        r->tries++;
        if ((rc = s3_perform(s, req, hash, r)) < 0)
            return rc;
        if (r->cerr == CURLE_OK && !s3_retry_status(r->status) &&
            !s3_error_in_200(req, r))
            return 0;
        if (r->cerr != CURLE_OK && !s3_transient(r->cerr))
            break;
        /* a short budget (the checks at open) is for failing fast when
         * nothing answers; a server that answers 503 SlowDown, 429 or 5xx
         * is there, and gets the full budget */
        if (r->tries >= req->attempts &&
            (r->cerr != CURLE_OK || r->tries >= s->attempts))
            break;
        s3_backoff(r->tries, r);
    }
    if (!req->quiet) {
        char code[64];
        if (r->cerr != CURLE_OK) {
            fprintf(stderr, "lakefs: s3: %s %s/%s: %s (after %d attempt%s)\n",
                    req->method, s->bucket, req->object ? req->object : "",
                    r->cmsg, r->tries, r->tries == 1 ? "" : "s");
        } else {
            s3_xml_tag(r->data, "Code", code, sizeof(code));
            fprintf(stderr, "lakefs: s3: %s %s/%s: HTTP %ld%s%s (after %d attempt%s)\n",
                    req->method, s->bucket, req->object ? req->object : "",
                    r->status, code[0] ? " " : "", code, r->tries,
                    r->tries == 1 ? "" : "s");
        }
    }
    return -EIO;
}

/* Log the unexpected answer R to REQ in one line; returns -EIO (-EACCES
 * for 403). */
static int s3_unexpected(s3 *s, const s3_req *req, const s3_resp *r)
{
    char code[64];

    s3_xml_tag(r->data, "Code", code, sizeof(code));
    fprintf(stderr, "lakefs: s3: %s %s/%s: unexpected HTTP %ld%s%s\n",
            req->method, s->bucket, req->object ? req->object : "", r->status,
            code[0] ? " " : "", code);
    return r->status == 403 ? -EACCES : -EIO;
}

/* Log that the answer to REQ lacks WHAT; returns -EIO. */
static int s3_bad_answer(s3 *s, const s3_req *req, const char *what)
{
    fprintf(stderr, "lakefs: s3: %s %s/%s: answer without %s\n", req->method,
            s->bucket, req->object ? req->object : "", what);
    return -EIO;
}

/* ---------------------------------------------------------------- XML */

/* Append the UTF-8 encoding of code point CP to OUT at *J (bounded by N). */
static void s3_utf8(unsigned long cp, char *out, size_t *j, size_t n)
{
    char t[4];
    size_t k = 0;

    if (cp < 0x80) {
        t[k++] = (char)cp;
    } else if (cp < 0x800) {
        t[k++] = (char)(0xC0 | (cp >> 6));
        t[k++] = (char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        t[k++] = (char)(0xE0 | (cp >> 12));
        t[k++] = (char)(0x80 | ((cp >> 6) & 0x3F));
        t[k++] = (char)(0x80 | (cp & 0x3F));
    } else {
        t[k++] = (char)(0xF0 | ((cp >> 18) & 0x07));
        t[k++] = (char)(0x80 | ((cp >> 12) & 0x3F));
        t[k++] = (char)(0x80 | ((cp >> 6) & 0x3F));
        t[k++] = (char)(0x80 | (cp & 0x3F));
    }
    for (size_t i = 0; i < k && *j + 1 < n; i++)
        out[(*j)++] = t[i];
}

/* XML-unescape LEN bytes of S into OUT (N bytes, NUL-terminated). */
static void s3_xml_unescape(const char *s, size_t len, char *out, size_t n)
{
    static const struct { const char *ent; char c; } ents[] = {
        { "&amp;", '&' }, { "&lt;", '<' }, { "&gt;", '>' },
        { "&quot;", '"' }, { "&apos;", '\'' },
    };
    size_t j = 0;

    for (size_t i = 0; i < len && j + 1 < n;) {
        size_t k;
        if (s[i] != '&') {
            out[j++] = s[i++];
            continue;
        }
        for (k = 0; k < sizeof(ents) / sizeof(ents[0]); k++) {
            size_t el = strlen(ents[k].ent);
            if (len - i >= el && memcmp(s + i, ents[k].ent, el) == 0) {
                out[j++] = ents[k].c;
                i += el;
                break;
            }
        }
        if (k < sizeof(ents) / sizeof(ents[0]))
            continue;
        if (len - i > 2 && s[i + 1] == '#') {
            int hex = s[i + 2] == 'x' || s[i + 2] == 'X';
            const char *semi = memchr(s + i, ';', len - i);
            char *end;
            unsigned long cp = strtoul(s + i + 2 + hex, &end, hex ? 16 : 10);
            if (semi && end == semi && cp > 0 && cp <= 0x10FFFF) {
                s3_utf8(cp, out, &j, n);
                i = (size_t)(semi - s) + 1;
                continue;
            }
        }
        out[j++] = s[i++];
    }
    out[j] = '\0';
}

/* Contents of the first <TAG> element of XML in OUT (unescaped); "" if none. */
static void s3_xml_tag(const char *xml, const char *tag, char *out, size_t outlen)
{
    char open[64], close[64];
    const char *a, *b;

    out[0] = '\0';
    if (!xml)
        return;
    snprintf(open, sizeof(open), "<%s>", tag);
    snprintf(close, sizeof(close), "</%s>", tag);
    if ((a = strstr(xml, open)) && (b = strstr(a, close))) {
        a += strlen(open);
        s3_xml_unescape(a, (size_t)(b - a), out, outlen);
    }
}

/* ---------------------------------------------------------------- operations */

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
static char *s3_object(const s3 *s, const char *key)
{
    char *o;

    return asprintf(&o, "%s%s", s->prefix, key) < 0 ? NULL : o;
}

/* PUT OBJECT unless it exists; 0, -EEXIST, or an error (R: the answer). */
static int s3_put_object(s3 *s, const char *object, const void *buf, size_t len,
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

/* ---------------------------------------------------------------- multipart */

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

/* HEAD OBJECT; 0 with the answer in R (200, 404), or an error (logged). */
static int s3_head_object(s3 *s, const char *object, s3_resp *r)
{
    s3_req req = { .method = "HEAD", .object = object, .attempts = s->attempts };
    int rc = s3_call(s, &req, r);

    if (rc == 0 && r->status != 200 && r->status != 404)
        rc = s3_unexpected(s, &req, r);
    return rc;
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
static int s3_put_multipart(s3 *s, const char *object, const void *buf,
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

static int s3_probe_verdict(s3 *s);

/* Create KEY with LEN bytes of BUF; -EEXIST if it exists.  Large layers go
 * multipart, everything else is one conditional PUT. */
static int s3_put_if_absent(void *state, const char *key, const void *buf,
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
static int s3_del(void *state, const char *key)
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

/* ---------------------------------------------------------------- open */

/* Free a string that may hold a secret, wiping it first. */
static void s3_free_secret(char *p)
{
    if (p) {
        OPENSSL_cleanse(p, strlen(p));
        free(p);
    }
}

/* Free the backend state and everything it owns. */
static void s3_close(void *state)
{
    s3 *s = state;

    if (!s)
        return;
    pthread_mutex_lock(&s3_probe_mu);
    int join = s->prober_joinable;
    for (struct s3 **p = &s3_probe_list; *p; p = &(*p)->probe_next)
        if (*p == s) {
            *p = s->probe_next;
            break;
        }
    pthread_mutex_unlock(&s3_probe_mu);
    if (join)
        pthread_join(s->prober, NULL);
    free(s->probe);
    for (size_t i = 0; i < s->nidle; i++)
        curl_easy_cleanup(s->idle[i]);
    free(s->idle);
    pthread_mutex_destroy(&s->lock);
    free(s->endpoint);
    free(s->host);
    free(s->bucket);
    free(s->prefix);
    free(s->region);
    s3_free_secret(s->access_key);
    s3_free_secret(s->secret_key);
    s3_free_secret(s->token);
    free(s->ca_bundle);
    free(s);
}

/* Non-empty environment variable NAME, or NULL. */
static const char *s3_env(const char *name)
{
    const char *v = getenv(name);

    return v && *v ? v : NULL;
}

/* Value of KEY in section SECTION of the INI file PATH (malloc'd), or NULL;
 * *FOUND is set to 1 when the section exists. */
static char *s3_ini_get(const char *path, const char *section, const char *key,
                        int *found)
{
    FILE *f = fopen(path, "r");
    char *line = NULL, *val = NULL;
    size_t cap = 0;
    int in = 0;

    if (!f)
        return NULL;
    while (!val && getline(&line, &cap, f) >= 0) {
        char *p = line, *e, *eq;
        if (*p == ' ' || *p == '\t')
            continue;           /* nested settings ("s3 =" blocks) */
        e = p + strlen(p);
        while (e > p && (e[-1] == '\n' || e[-1] == '\r' || e[-1] == ' ' ||
                         e[-1] == '\t'))
            *--e = '\0';
        if (*p == '#' || *p == ';' || !*p)
            continue;
        if (*p == '[') {
            char *q = strchr(p, ']');
            if (q)
                *q = '\0';
            p++;
            while (*p == ' ')
                p++;
            for (q = p + strlen(p); q > p && q[-1] == ' ';)
                *--q = '\0';
            in = strcmp(p, section) == 0;
            if (in)
                *found = 1;
            continue;
        }
        if (!in || !(eq = strchr(p, '=')))
            continue;
        for (e = eq; e > p && (e[-1] == ' ' || e[-1] == '\t');)
            e--;
        if ((size_t)(e - p) == strlen(key) && strncmp(p, key, (size_t)(e - p)) == 0) {
            for (eq++; *eq == ' ' || *eq == '\t';)
                eq++;
            val = strdup(eq);
        }
    }
    if (line) {
        OPENSSL_cleanse(line, cap);
        free(line);
    }
    fclose(f);
    return val;
}

/* Where the AWS files are and which profile to use. */
typedef struct s3_conf {
    const char *profile;
    char credfile[4096], conffile[4096];
    char section[300];            /* the profile's section in the config file */
    int found;                    /* the profile has a section somewhere */
} s3_conf;

/* KEY of the profile: from the credentials file, else the config file. */
static char *s3_conf_get(s3_conf *c, const char *key, int credentials)
{
    char *v = credentials ? s3_ini_get(c->credfile, c->profile, key, &c->found)
                          : NULL;

    return v ? v : s3_ini_get(c->conffile, c->section, key, &c->found);
}

/* Fill C from AWS_PROFILE, AWS_SHARED_CREDENTIALS_FILE, AWS_CONFIG_FILE, HOME. */
static void s3_conf_init(s3_conf *c)
{
    const char *home = s3_env("HOME"), *v;

    memset(c, 0, sizeof(*c));
    c->profile = s3_env("AWS_PROFILE") ? s3_env("AWS_PROFILE") : "default";
    if ((v = s3_env("AWS_SHARED_CREDENTIALS_FILE")))
        snprintf(c->credfile, sizeof(c->credfile), "%s", v);
    else
        snprintf(c->credfile, sizeof(c->credfile), "%s/.aws/credentials",
                 home ? home : "");
    if ((v = s3_env("AWS_CONFIG_FILE")))
        snprintf(c->conffile, sizeof(c->conffile), "%s", v);
    else
        snprintf(c->conffile, sizeof(c->conffile), "%s/.aws/config",
                 home ? home : "");
    if (strcmp(c->profile, "default") == 0)
        snprintf(c->section, sizeof(c->section), "default");
    else
        snprintf(c->section, sizeof(c->section), "profile %s", c->profile);
}

/* 1 if NAME is a valid S3 bucket name (3-63 of [a-z0-9.-], alnum at ends). */
static int s3_bucket_ok(const char *b, size_t n)
{
    if (n < 3 || n > 63)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = b[i];
        int alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (!alnum && ((c != '.' && c != '-') || i == 0 || i == n - 1))
            return 0;
    }
    return 1;
}

/* 1 if P is a valid repository prefix: key characters, no empty, "." or
 * ".." components (leading and trailing '/' already stripped). */
static int s3_prefix_ok(const char *p)
{
    const char *comp = p;

    for (const char *c = p;; c++) {
        if (*c == '/' || !*c) {
            size_t l = (size_t)(c - comp);
            if (l == 0 || (l == 1 && comp[0] == '.') ||
                (l == 2 && comp[0] == '.' && comp[1] == '.'))
                return 0;
            if (!*c)
                return 1;
            comp = c + 1;
        } else if (!((*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') ||
                     (*c >= '0' && *c <= '9') || *c == '.' || *c == '_' ||
                     *c == '-')) {
            return 0;
        }
    }
}

/* 1 if the host of AUTHORITY ("host[:port]", "[v6]:port") is loopback. */
static int s3_loopback(const char *auth)
{
    char host[256];
    const char *end;
    struct in_addr a4;
    struct in6_addr a6;
    size_t n;

    if (auth[0] == '[') {
        end = strchr(auth, ']');
        if (!end || (size_t)(end - auth - 1) >= sizeof(host))
            return 0;
        n = (size_t)(end - auth - 1);
        memcpy(host, auth + 1, n);
        host[n] = '\0';
        return inet_pton(AF_INET6, host, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
    }
    end = strchr(auth, ':');
    n = end ? (size_t)(end - auth) : strlen(auth);
    if (n >= sizeof(host))
        return 0;
    memcpy(host, auth, n);
    host[n] = '\0';
    if (strcasecmp(host, "localhost") == 0)
        return 1;
    return inet_pton(AF_INET, host, &a4) == 1 && (ntohl(a4.s_addr) >> 24) == 127;
}

/* Set S's endpoint and host from URL; 0 or -EINVAL with ERR written. */
static int s3_set_endpoint(s3 *s, const char *url, const char *from, char *err,
                           size_t errlen)
{
    int https = strncmp(url, "https://", 8) == 0;
    const char *auth = url + (https ? 8 : 7), *slash;
    size_t n;

    if (!https && strncmp(url, "http://", 7) != 0) {
        snprintf(err, errlen, "S3 endpoint '%s' (from %s) must start with "
                 "https:// or http://", url, from);
        return -EINVAL;
    }
    slash = strchr(auth, '/');
    n = slash ? (size_t)(slash - auth) : strlen(auth);
    if (n == 0 || (slash && strcmp(slash, "/") != 0) || memchr(auth, '@', n) ||
        memchr(auth, '?', n)) {
        snprintf(err, errlen, "S3 endpoint '%s' (from %s) must be "
                 "scheme://host[:port] without a path", url, from);
        return -EINVAL;
    }
    if (!(s->host = strndup(auth, n)) ||
        !(s->endpoint = strndup(url, (size_t)(auth - url) + n))) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    for (char *p = s->host; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p + 32);
    if (!https && !s3_loopback(s->host) && !s3_env("LAKEFS_S3_ALLOW_HTTP")) {
        snprintf(err, errlen, "refusing plain-http S3 endpoint '%s' (from %s): "
                 "use https://, or set LAKEFS_S3_ALLOW_HTTP=1 to send requests "
                 "unencrypted", s->endpoint, from);
        return -EINVAL;
    }
    return 0;
}

/* Fill S's credentials, region and endpoint from the environment and the
 * AWS files; 0 or a negative errno with ERR written. */
static int s3_configure(s3 *s, char *err, size_t errlen)
{
    const char *ak = s3_env("AWS_ACCESS_KEY_ID"), *sk = s3_env("AWS_SECRET_ACCESS_KEY");
    const char *v, *from;
    char *ep = NULL, *url = NULL;
    s3_conf c;
    int rc;

    s3_conf_init(&c);
    if (ak || sk) {
        if (!ak || !sk) {
            snprintf(err, errlen, "%s is set but %s is not: set both, or neither "
                     "to use a profile", ak ? "AWS_ACCESS_KEY_ID" : "AWS_SECRET_ACCESS_KEY",
                     ak ? "AWS_SECRET_ACCESS_KEY" : "AWS_ACCESS_KEY_ID");
            return -EINVAL;
        }
        s->access_key = strdup(ak);
        s->secret_key = strdup(sk);
        if ((v = s3_env("AWS_SESSION_TOKEN")) && !(s->token = strdup(v)))
            goto oom;
        if (!s->access_key || !s->secret_key)
            goto oom;
    } else {
        s->access_key = s3_conf_get(&c, "aws_access_key_id", 1);
        s->secret_key = s3_conf_get(&c, "aws_secret_access_key", 1);
        s->token = s3_conf_get(&c, "aws_session_token", 1);
        if (!s->access_key || !s->secret_key) {
            if (s3_env("AWS_PROFILE") && !c.found)
                snprintf(err, errlen, "AWS profile '%s' not found in %s or %s",
                         c.profile, c.credfile, c.conffile);
            else
                snprintf(err, errlen, "no S3 credentials: set AWS_ACCESS_KEY_ID "
                         "and AWS_SECRET_ACCESS_KEY, or aws_access_key_id and "
                         "aws_secret_access_key in profile '%s' of %s",
                         c.profile, c.credfile);
            return -EACCES;
        }
    }
    if ((v = s3_env("LAKEFS_S3_REGION")) || (v = s3_env("AWS_REGION")) ||
        (v = s3_env("AWS_DEFAULT_REGION")))
        s->region = strdup(v);
    else if (!(s->region = s3_conf_get(&c, "region", 0)))
        s->region = strdup("us-east-1");
    if (!s->region)
        goto oom;
    if ((v = s3_env("LAKEFS_S3_ENDPOINT"))) {
        from = "-o endpoint";
    } else if ((v = s3_env("AWS_ENDPOINT_URL_S3"))) {
        from = "AWS_ENDPOINT_URL_S3";
    } else if ((v = s3_env("AWS_ENDPOINT_URL"))) {
        from = "AWS_ENDPOINT_URL";
    } else if ((ep = s3_conf_get(&c, "endpoint_url", 0))) {
        v = ep;
        from = c.conffile;
    } else {
        if (asprintf(&url, "https://s3.%s.amazonaws.com", s->region) < 0)
            goto oom;
        v = url;
        from = "AWS_REGION";
    }
    s->endpoint_from = from == c.conffile ? "endpoint_url in the AWS config" : from;
    rc = s3_set_endpoint(s, v, from, err, errlen);
    free(ep);
    free(url);
    if (rc < 0)
        return rc;
    if ((v = s3_env("AWS_CA_BUNDLE")) && !(s->ca_bundle = strdup(v)))
        goto oom;
    s->attempts = 10;
    if ((v = s3_env("LAKEFS_S3_RETRIES")) && atoi(v) > 0)
        s->attempts = atoi(v);
    s->mp_threshold = S3_MP_THRESHOLD;
    if ((v = s3_env("LAKEFS_S3_MULTIPART_THRESHOLD"))) {
        char *end;
        errno = 0;
        s->mp_threshold = strtoull(v, &end, 10);
        if (*end || errno || s->mp_threshold == 0 || v[0] < '0' || v[0] > '9') {
            snprintf(err, errlen, "LAKEFS_S3_MULTIPART_THRESHOLD='%s' is not a "
                     "positive number of bytes", v);
            return -EINVAL;
        }
    }
    return 0;
oom:
    snprintf(err, errlen, "out of memory");
    return -ENOMEM;
}

/* Explain why the check request to S's bucket failed, in ERR; returns the
 * errno to give up with. */
static int s3_explain(s3 *s, const s3_resp *r, char *err, size_t errlen)
{
    char code[64], msg[256];
    const char *hint = "";

    if (r->cerr != CURLE_OK) {
        if (r->cerr == CURLE_PEER_FAILED_VERIFICATION || r->cerr == CURLE_SSL_CACERT_BADFILE)
            snprintf(err, errlen, "TLS check of S3 endpoint %s failed: %s "
                     "(fix the server certificate or set AWS_CA_BUNDLE)",
                     s->endpoint, r->cmsg);
        else
            snprintf(err, errlen, "cannot reach S3 endpoint %s: %s (check "
                     "%s and that the server is up)",
                     s->endpoint, r->cmsg, s->endpoint_from);
        return -EHOSTUNREACH;
    }
    s3_xml_tag(r->data, "Code", code, sizeof(code));
    s3_xml_tag(r->data, "Message", msg, sizeof(msg));
    if (s3_retry_status(r->status)) {
        snprintf(err, errlen, "S3 endpoint %s is overloaded or failing: HTTP %ld%s%s "
                 "after %d attempts; try again later", s->endpoint, r->status,
                 code[0] ? " " : "", code, r->tries);
        return -EAGAIN;
    }
    if (r->status == 404 && (strcmp(code, "NoSuchBucket") == 0 || !code[0])) {
        snprintf(err, errlen, "bucket '%s' does not exist at %s (create it first, "
                 "or fix the URL)", s->bucket, s->endpoint);
        return -ENOENT;
    }
    if (strcmp(code, "InvalidAccessKeyId") == 0)
        hint = ": the access key id is unknown; check AWS_ACCESS_KEY_ID or the "
               "profile's aws_access_key_id";
    else if (strcmp(code, "SignatureDoesNotMatch") == 0)
        hint = ": the secret key is wrong; check AWS_SECRET_ACCESS_KEY or the "
               "profile's aws_secret_access_key";
    else if (strcmp(code, "RequestTimeTooSkewed") == 0)
        hint = ": this machine's clock is off; fix the time";
    else if (strcmp(code, "ExpiredToken") == 0 || strcmp(code, "InvalidToken") == 0)
        hint = ": the session token is expired or invalid; refresh AWS_SESSION_TOKEN";
    else if (strcmp(code, "AccessDenied") == 0)
        hint = ": these credentials may not use this bucket; check its policy";
    else if (r->status == 301 || strcmp(code, "AuthorizationHeaderMalformed") == 0)
        hint = ": the bucket is in another region; set AWS_REGION";
    snprintf(err, errlen, "S3 endpoint %s refused bucket '%s' (HTTP %ld%s%s)%s",
             s->endpoint, s->bucket, r->status, code[0] ? " " : "", code,
             hint[0] ? hint : (msg[0] ? ": see the server's message" : ""));
    return r->status == 403 ? -EACCES : -EIO;
}

/* The probe's PUT number I (0: creates it, 1: must be refused) into R;
 * 0, or a negative errno with ERR written.  The bytes differ: a retried PUT
 * that meets 412 takes an object with its own bytes for its own earlier
 * attempt, so after a 503 the same bytes would pass for "written" and the
 * check would fail a good server. */
static int s3_probe_put(s3 *s, int i, s3_resp *r, char *err, size_t errlen)
{
    int rc = s3_put_object(s, s->probe, i ? "lakefs-again" : "lakefs", i ? 12 : 6, S3_OPEN_ATTEMPTS, 1, r);
    char code[64];

    if (rc == -ENOMEM) {
        snprintf(err, errlen, "out of memory");
    } else if (rc == -EIO) {
        s3_xml_tag(r->data, "Code", code, sizeof(code));
        if (r->cerr != CURLE_OK)
            snprintf(err, errlen, "cannot write to bucket '%s' at %s: %s", s->bucket, s->endpoint, r->cmsg);
        else if (s3_retry_status(r->status) || r->status == 412)
            snprintf(err, errlen, "cannot write to bucket '%s': S3 endpoint %s is overloaded or failing: "
                     "HTTP %ld %s after %d attempts; try again later", s->bucket, s->endpoint,
                     r->status, code, r->tries);
        else
            snprintf(err, errlen, "cannot write to bucket '%s' at %s: HTTP %ld %s (lakefs needs write access)",
                     s->bucket, s->endpoint, r->status, code);
        rc = r->status == 403 ? -EACCES : -EIO;
    } else if (i == 1 && rc == 0) {
        if (s3_env("LAKEFS_S3_UNSAFE_NO_CONDITIONAL_PUT")) {
            fprintf(stderr, "lakefs: WARNING: S3 endpoint %s ignores conditional PUT "
                    "(If-None-Match: *); going on because of -o unsafe_no_conditional_put: "
                    "two writers of one branch would now overwrite each other's commits\n", s->endpoint);
        } else {
            snprintf(err, errlen, "S3 endpoint %s ignores conditional PUT (If-None-Match: *): lakefs needs it "
                     "so objects are never overwritten; use a server that supports it (or, at your own "
                     "risk, -o unsafe_no_conditional_put)", s->endpoint);
            rc = -EOPNOTSUPP;
        }
    } else if (rc == -EEXIST) {   /* 0: a nonce taken; 1: refused, as it must be */
        rc = 0;
    }
    return rc;
}

/* Thread body: the probe's first PUT, beside os_open's listing. */
static void *s3_probe_first(void *arg)
{
    s3 *s = arg;
    s3_resp r = { 0 };
    s->probe_rc = s3_probe_put(s, 0, &r, s->probe_err, sizeof s->probe_err);
    s3_resp_clear(&r);
    return NULL;
}

/* The probe's second PUT, which must be refused, then the probe's
 * removal; publishes the verdict that conditional writes wait for. */
static void s3_probe_second(s3 *s)
{
    s3_resp r = { 0 };
    char err[sizeof s->probe_err];
    int rc = s3_probe_put(s, 1, &r, err, sizeof err);
    s3_resp_clear(&r);
    pthread_mutex_lock(&s3_probe_mu);
    if (rc) snprintf(s->probe_err, sizeof s->probe_err, "%s", err);
    s->probe_rc = rc;
    s->probe_done = 1;
    pthread_cond_broadcast(&s3_probe_cv);
    pthread_mutex_unlock(&s3_probe_mu);
    s3_del(s, s->probe_key);
}

/* Thread body: s3_probe_second behind os_open. */
static void *s3_prober(void *arg)
{
    s3 *s = arg;
    s3_probe_second(s);
    pthread_mutex_lock(&s3_probe_mu);
    s3_probers--;
    pthread_cond_broadcast(&s3_probe_cv);
    pthread_mutex_unlock(&s3_probe_mu);
    return NULL;
}

/* Start S's prober thread; 0, or nonzero if it could not start (then
 * nothing runs). */
static int s3_prober_start(s3 *s)
{
    pthread_mutex_lock(&s3_probe_mu);
    s3_probers++;
    int rc = pthread_create(&s->prober, NULL, s3_prober, s);
    if (rc) {
        s3_probers--;
    } else {
        s->prober_joinable = 1;
        s->probe_next = s3_probe_list;
        s3_probe_list = s;
    }
    pthread_mutex_unlock(&s3_probe_mu);
    return rc;
}

/* Wait for the conditional-PUT verdict: 0, or its error (reported once). */
static int s3_probe_verdict(s3 *s)
{
    pthread_mutex_lock(&s3_probe_mu);
    while (!s->probe_done)
        pthread_cond_wait(&s3_probe_cv, &s3_probe_mu);
    int rc = s->probe_rc;
    if (rc && !s->probe_told) {
        s->probe_told = 1;
        fprintf(stderr, "lakefs: %s\n", s->probe_err);
    }
    pthread_mutex_unlock(&s3_probe_mu);
    return rc;
}

/* Check the bucket answers a signed list and honours If-None-Match; 0 or
 * a negative errno with ERR written.  Cost model: a real bucket is 10-50 ms
 * away and a mount's requests before it serves are mostly serial, so the
 * check takes one round trip of the caller's time: the listing (whose
 * answer tells a misconfiguration clearly) and the probe's first PUT go
 * out together; the second PUT, which must be refused, and the probe's
 * removal run behind, and only conditional writes (s3_put_if_absent) wait
 * for that verdict -- by then, in a mount, it is long in. */
static int s3_check(s3 *s, char *err, size_t errlen)
{
    char *pfx = sigv4_uri_encode(s->prefix, 0), *q = NULL;
    uint32_t nonce = 0;
    if (getentropy(&nonce, sizeof nonce) < 0) nonce = (uint32_t)getpid();
    /* a fresh name per open, removed afterwards: a failed mount leaves nothing */
    snprintf(s->probe_key, sizeof s->probe_key, "%s-%08x", S3_PROBE_KEY, nonce);
    s3_req req = { .method = "GET", .attempts = S3_OPEN_ATTEMPTS, .quiet = 1 };
    s3_resp r = { 0 };
    pthread_t first;
    int rc = -ENOMEM, started = 0;

    if (!pfx || asprintf(&q, "list-type=2&max-keys=1&prefix=%s", pfx) < 0 ||
        !(s->probe = s3_object(s, s->probe_key))) {
        q = NULL;
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    started = pthread_create(&first, NULL, s3_probe_first, s) == 0;
    if (!started) s3_probe_first(s);
    req.query = q;
    if ((rc = s3_call(s, &req, &r)) == -ENOMEM) {
        snprintf(err, errlen, "out of memory");
    } else if (rc < 0 || r.status != 200) {
        rc = s3_explain(s, &r, err, errlen);
    } else if (!r.data || !strstr(r.data, "<ListBucketResult")) {
        snprintf(err, errlen, "%s answered a bucket listing with something "
                 "else: is it an S3 endpoint? (check %s)",
                 s->endpoint, s->endpoint_from);
        rc = -EPROTO;
    }
    if (started) pthread_join(first, NULL);
    int first_put = s->probe_rc;
    if (rc == 0 && s->probe_rc < 0) {
        rc = s->probe_rc;
        snprintf(err, errlen, "%s", s->probe_err);
    }
    if (rc == 0 && s3_prober_start(s) != 0) {
        s3_probe_second(s);
        if ((rc = s->probe_rc)) snprintf(err, errlen, "%s", s->probe_err);
    } else if (rc != 0 && first_put == 0) {
        s3_del(s, s->probe_key);  /* the probe exists: a failed open leaves nothing */
    }
out:
    s3_resp_clear(&r);
    free(pfx);
    free(q);
    return rc;
}

/* Open s3://REST ("bucket[/prefix]"): configure, then check the bucket. */
static int s3_open(const char *rest, void **state, char *err, size_t errlen)
{
    const char *slash = strchr(rest, '/'), *p;
    size_t bl = slash ? (size_t)(slash - rest) : strlen(rest), pl;
    s3 *s;
    int rc;

    p = slash ? slash : rest + bl;
    while (*p == '/')
        p++;
    pl = strlen(p);
    while (pl > 0 && p[pl - 1] == '/')
        pl--;
    if (!s3_bucket_ok(rest, bl)) {
        snprintf(err, errlen, "malformed repository URL 's3://%s': expected "
                 "s3://bucket[/prefix] with a bucket name of 3-63 characters "
                 "[a-z0-9.-]", rest);
        return -EINVAL;
    }
    if (!(s = calloc(1, sizeof(*s)))) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    pthread_mutex_init(&s->lock, NULL);
    s->bucket = strndup(rest, bl);
    s->prefix = malloc(pl + 2);
    if (!s->bucket || !s->prefix) {
        snprintf(err, errlen, "out of memory");
        rc = -ENOMEM;
        goto fail;
    }
    memcpy(s->prefix, p, pl);
    s->prefix[pl] = '\0';
    if (pl && !s3_prefix_ok(s->prefix)) {
        snprintf(err, errlen, "malformed repository URL 's3://%s': the prefix "
                 "may hold only [A-Za-z0-9._-] and '/' between non-empty parts "
                 "other than '.' and '..'", rest);
        rc = -EINVAL;
        goto fail;
    }
    if (pl)
        strcpy(s->prefix + pl, "/");
    if ((rc = s3_configure(s, err, errlen)) < 0)
        goto fail;
    pthread_once(&s3_once, s3_global_init);
    if (s3_global_rc != CURLE_OK) {
        snprintf(err, errlen, "libcurl initialisation failed: %s",
                 curl_easy_strerror(s3_global_rc));
        rc = -EIO;
        goto fail;
    }
    if ((rc = s3_check(s, err, errlen)) < 0)
        goto fail;
    *state = s;
    return 0;
fail:
    s3_close(s);
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

/*
 * objstore_s3_request.c -- sending one request of the s3:// backend: a
 * signed HTTP request through libcurl (sigv4.c signs it, body hash
 * included), its answer, and the retries around it.
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
 */
#include "objstore_s3.h"
#include "sigv4.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

/* Upload cursor for the read callback. */
typedef struct s3_upload {
    const char *p;
    size_t len, pos;
} s3_upload;

/* Free the response body and reset R for another attempt. */
void s3_resp_clear(s3_resp *r)
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
int s3_retry_status(long st)
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
void s3_xml_tag(const char *xml, const char *tag, char *out, size_t outlen);

/* Send REQ with retries; 0 with R holding the final answer, -EIO when the
 * budget is spent (logged unless quiet), -ENOMEM. */
int s3_call(s3 *s, const s3_req *req, s3_resp *r)
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
int s3_unexpected(s3 *s, const s3_req *req, const s3_resp *r)
{
    char code[64];

    s3_xml_tag(r->data, "Code", code, sizeof(code));
    fprintf(stderr, "lakefs: s3: %s %s/%s: unexpected HTTP %ld%s%s\n",
            req->method, s->bucket, req->object ? req->object : "", r->status,
            code[0] ? " " : "", code);
    return r->status == 403 ? -EACCES : -EIO;
}

/* Log that the answer to REQ lacks WHAT; returns -EIO. */
int s3_bad_answer(s3 *s, const s3_req *req, const char *what)
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
void s3_xml_unescape(const char *s, size_t len, char *out, size_t n)
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
void s3_xml_tag(const char *xml, const char *tag, char *out, size_t outlen)
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

/*
 * test_objstore_s3.c -- the s3:// backend against a real S3 server.
 *
 * Run by test_objstore_s3.sh, which starts Ceph RGW and creates the bucket;
 * this program reads S3_TEST_ENDPOINT, S3_TEST_BUCKET, S3_TEST_ACCESS_KEY,
 * S3_TEST_SECRET_KEY and optionally S3_TEST_STOP / S3_TEST_START (shell
 * commands stopping and starting the server, for the outage checks).  It
 * sets the AWS_* variables itself, and HOME to a scratch directory, so the
 * developer's own ~/.aws never leaks in.  It covers the os_* contract
 * (put-if-absent races, ranged gets, list with continuation), multipart
 * uploads of layers (byte-exact, put-if-absent kept, no upload left over),
 * batched deletes across the 1000-key limit, the os_open error messages,
 * profiles from ~/.aws, and retries across a restart.  Throttling with
 * Retry-After, which a real server does not do on demand, is checked
 * against a scripted server on loopback.  What the backend must not be
 * trusted to report about itself (leftover uploads, which objects went
 * multipart) is asked of the server with libcurl's own SigV4 signer.
 */
#include "objstore.h"
#include "harness.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define NMANY 1100                /* > 1000: ListObjectsV2 needs two pages */
#define NDEL 2500                 /* > 2 * 1000: three multi-object deletes */
#define NTHREADS 8
#define MIB (1024 * 1024)

static char url[512];             /* s3://bucket/prefix of this run */
static const char *endpoint, *bucket, *akey, *skey;

/* Required environment variable NAME; without it the test is skipped. */
static const char *need(const char *name)
{
    const char *v = getenv(name);

    if (!v || !*v) {
        printf("skip: %s not set (test_objstore_s3.sh starts a server and "
               "sets it)\n", name);
        exit(77);               /* automake: skipped */
    }
    return v;
}

/* Set the AWS_* variables to the test server's (SECRET as the secret). */
static void env_default(const char *secret)
{
    setenv("AWS_ENDPOINT_URL", endpoint, 1);
    setenv("AWS_ACCESS_KEY_ID", akey, 1);
    setenv("AWS_SECRET_ACCESS_KEY", secret, 1);
    setenv("AWS_REGION", "us-east-1", 1);
    unsetenv("AWS_PROFILE");
    unsetenv("AWS_SESSION_TOKEN");
}

/* os_open(U) must fail with an error containing WANT and not the secret. */
static void open_fails(const char *u, const char *want)
{
    char err[512] = "";
    objstore *os = NULL;
    int rc = os_open(u, &os, err, sizeof(err));

    printf("  os_open %s -> %d: %s\n", u, rc, err);
    CHECK(rc < 0 && os == NULL);
    CHECK(strstr(err, want) != NULL);
    CHECK(strstr(err, skey) == NULL && strstr(err, "wrong-secret") == NULL);
    CHECK(strchr(err, '\n') == NULL);
}

/* Arguments of one put worker. */
typedef struct job {
    objstore *os;
    int first, step;              /* keys first, first+step, ... < count */
    const char *key;              /* race mode: everyone puts this key */
    const char *fmt;              /* else: key I is printf(fmt, I) ... */
    int count;                    /* ... for I < count, except ... */
    int gap;                      /* ... I % gap == gap - 1 (0: none) */
    int rc;
} job;

/* Thread body: put many keys, or race on one. */
static void *put_worker(void *arg)
{
    job *j = arg;
    char key[64], val[64];

    if (j->key) {
        snprintf(val, sizeof(val), "writer %d", j->first);
        j->rc = os_put_if_absent(j->os, j->key, val, strlen(val));
        return NULL;
    }
    for (int i = j->first; i < j->count; i += j->step) {
        if (j->gap && i % j->gap == j->gap - 1)
            continue;
        snprintf(key, sizeof(key), j->fmt, i);
        int rc = os_put_if_absent(j->os, key, key, strlen(key));
        if (rc < 0)
            j->rc = rc;
    }
    return NULL;
}

/* Run NTHREADS workers over OS: race on KEY if not NULL, else put the
 * keys FMT % I for I < COUNT but every GAP-th (0: all); their jobs in J. */
static void run_workers(objstore *os, const char *key, const char *fmt,
                        int count, int gap, job *j)
{
    pthread_t t[NTHREADS];

    for (int i = 0; i < NTHREADS; i++) {
        j[i] = (job){ os, i, NTHREADS, key, fmt, count, gap, 0 };
        pthread_create(&t[i], NULL, put_worker, &j[i]);
    }
    for (int i = 0; i < NTHREADS; i++)
        pthread_join(t[i], NULL);
}

/* The os_* contract on an open store. */
static void contract(objstore *os)
{
    size_t big = 300000, n = 0, outlen = 0;
    unsigned char *data = malloc(big);
    void *buf = NULL;
    uint64_t size = 0;
    char **keys = NULL;
    job j[NTHREADS];
    int wins = 0, exists = 0;

    for (size_t i = 0; i < big; i++)
        data[i] = (unsigned char)(i * 7 + i / 251);
    CHECK(os_put_if_absent(os, "a/obj1", data, big) == 0);
    CHECK(os_put_if_absent(os, "a/obj1", "other", 5) == -EEXIST);
    CHECK(os_put_if_absent(os, "a/empty", "", 0) == 0);

    CHECK(os_get(os, "a/obj1", 0, UINT64_MAX, &buf, &outlen) == 0);
    CHECK(outlen == big && memcmp(buf, data, big) == 0);
    free(buf);
    CHECK(os_get(os, "a/obj1", 12345, 1000, &buf, &outlen) == 0);
    CHECK(outlen == 1000 && memcmp(buf, data + 12345, 1000) == 0);
    free(buf);
    CHECK(os_get(os, "a/obj1", big - 10, 100, &buf, &outlen) == 0);
    CHECK(outlen == 10 && memcmp(buf, data + big - 10, 10) == 0);
    free(buf);
    CHECK(os_get(os, "a/obj1", big + 5, 100, &buf, &outlen) == 0);
    CHECK(outlen == 0);
    free(buf);
    CHECK(os_get(os, "a/obj1", 5, 0, &buf, &outlen) == 0);
    CHECK(outlen == 0);
    free(buf);
    CHECK(os_get(os, "a/empty", 0, UINT64_MAX, &buf, &outlen) == 0);
    CHECK(outlen == 0);
    free(buf);
    buf = (void *)1;
    CHECK(os_get(os, "a/missing", 0, 10, &buf, &outlen) == -ENOENT);
    CHECK(buf == NULL);

    CHECK(os_head(os, "a/obj1", &size) == 0 && size == big);
    CHECK(os_head(os, "a/empty", &size) == 0 && size == 0);
    CHECK(os_head(os, "a/missing", &size) == -ENOENT);

    /* 8 writers race for one key: exactly one wins */
    run_workers(os, "race/key", NULL, 0, 0, j);
    for (int i = 0; i < NTHREADS; i++) {
        wins += j[i].rc == 0;
        exists += j[i].rc == -EEXIST;
    }
    CHECK(wins == 1 && exists == NTHREADS - 1);

    /* many keys in parallel, listed across pages */
    run_workers(os, NULL, "many/k%05d", NMANY, 0, j);
    for (int i = 0; i < NTHREADS; i++)
        CHECK(j[i].rc == 0);
    CHECK(os_list(os, "many/", &keys, &n) == 0);
    CHECK(n == NMANY);
    if (n == NMANY) {
        int ok = 1;
        for (size_t i = 0; i < n; i++) {
            char want[64];
            snprintf(want, sizeof(want), "many/k%05zu", i);
            ok &= strcmp(keys[i], want) == 0;
        }
        CHECK(ok);
    }
    os_list_free(keys, n);
    CHECK(os_list(os, "a/", &keys, &n) == 0);
    CHECK(n == 2 && strcmp(keys[0], "a/empty") == 0 && strcmp(keys[1], "a/obj1") == 0);
    os_list_free(keys, n);
    CHECK(os_list(os, "", &keys, &n) == 0);
    CHECK(n == NMANY + 3);      /* a/empty, a/obj1, race/key; no probe object */
    os_list_free(keys, n);
    CHECK(os_list(os, "nothing/", &keys, &n) == 0 && n == 0);
    os_list_free(keys, n);

    CHECK(os_delete(os, "a/obj1") == 0);
    CHECK(os_head(os, "a/obj1", &size) == -ENOENT);
    CHECK(os_delete(os, "a/obj1") == 0);
    CHECK(os_get(os, "a/obj1", 0, 10, &buf, &outlen) == -ENOENT);
    free(data);
}

/* ---- asking the server directly ---- */

/* A response collected by raw(). */
typedef struct raw_resp {
    long status;
    char *body;                   /* NUL-terminated, malloc'd */
    size_t len;
    char etag[80];                /* unquoted */
} raw_resp;

/* curl write callback: append to the body. */
static size_t raw_body(char *p, size_t size, size_t n, void *ud)
{
    raw_resp *r = ud;
    char *b = realloc(r->body, r->len + size * n + 1);

    if (!b)
        return 0;
    memcpy(b + r->len, p, size * n);
    r->len += size * n;
    b[r->len] = '\0';
    r->body = b;
    return size * n;
}

/* curl header callback: keep the ETag. */
static size_t raw_header(char *p, size_t size, size_t n, void *ud)
{
    raw_resp *r = ud;

    if (size * n > 5 && strncasecmp(p, "etag:", 5) == 0)
        sscanf(p + 5, " \"%79[^\"]", r->etag);
    return size * n;
}

/* Send an empty-bodied METHOD to ENDPOINT/bucket/PATH_QUERY, signed by
 * libcurl's own SigV4 signer (not the code under test); the answer in R. */
static void raw(const char *method, const char *path_query, raw_resp *r)
{
    CURL *c = curl_easy_init();
    struct curl_slist *h = curl_slist_append(NULL, "x-amz-content-sha256: "
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    char u[1024];

    memset(r, 0, sizeof(*r));
    snprintf(u, sizeof(u), "%s/%s/%s", endpoint, bucket, path_query);
    curl_easy_setopt(c, CURLOPT_URL, u);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_AWS_SIGV4, "aws:amz:us-east-1:s3");
    curl_easy_setopt(c, CURLOPT_USERNAME, akey);
    curl_easy_setopt(c, CURLOPT_PASSWORD, skey);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, raw_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, raw_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    if (strcmp(method, "HEAD") == 0)
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
}

/* ETag of repository key KEY as the server reports it, in OUT (80). */
static void raw_etag(const char *key, char *out)
{
    char pq[512];
    raw_resp r;

    snprintf(pq, sizeof(pq), "%s/%s", url + 5 + strlen(bucket) + 1, key);
    raw("HEAD", pq, &r);
    snprintf(out, 80, "%s", r.status == 200 ? r.etag : "");
    free(r.body);
}

/* Number of unfinished multipart uploads under this run's prefix; -1 if
 * the listing fails. */
static int uploads_left(void)
{
    char pq[512];
    raw_resp r;
    int n = 0;

    snprintf(pq, sizeof(pq), "?prefix=run%ld%%2F&uploads=", (long)getpid());
    raw("GET", pq, &r);
    if (r.status != 200 || !r.body || !strstr(r.body, "<ListMultipartUploadsResult"))
        n = -1;
    for (const char *p = r.body; n >= 0 && p && (p = strstr(p, "<Upload>")); p++)
        n++;
    free(r.body);
    return n;
}

/* Hex MD5 of LEN bytes at P into OUT (33). */
static void md5_hex(const void *p, size_t len, char *out)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;

    EVP_Digest(p, len, md, &n, EVP_md5(), NULL);
    for (unsigned int i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", md[i]);
}

/* The ETag S3 gives an object of LEN bytes at P uploaded in parts of PART
 * bytes: MD5 of the parts' binary MD5s, "-", the part count; into OUT (80). */
static void multipart_etag(const unsigned char *p, size_t len, size_t part,
                           char *out)
{
    size_t np = (len + part - 1) / part;
    unsigned char *all = malloc(np * 16);
    unsigned int n = 0;

    for (size_t i = 0; i < np; i++)
        EVP_Digest(p + i * part, len - i * part < part ? len - i * part : part,
                   all + 16 * i, &n, EVP_md5(), NULL);
    md5_hex(all, np * 16, out);
    snprintf(out + 32, 48, "-%zu", np);
    free(all);
}

/* ---- multipart uploads ---- */

/* 1 if the LEN bytes at OFF of KEY equal DATA + OFF (short at the end). */
static int range_ok(objstore *os, const char *key, const unsigned char *data,
                    size_t size, size_t off, size_t len)
{
    size_t want = off >= size ? 0 : size - off < len ? size - off : len, got = 0;
    void *buf = NULL;
    int ok = os_get(os, key, off, len, &buf, &got) == 0 && got == want &&
             memcmp(buf, data + off, want) == 0;

    free(buf);
    return ok;
}

/* One concurrent multipart upload. */
typedef struct mp_job {
    objstore *os;
    char key[64];
    const unsigned char *data;
    size_t len;
    int rc;
} mp_job;

/* Thread body: one multipart put. */
static void *mp_worker(void *arg)
{
    mp_job *m = arg;

    m->rc = os_put_if_absent(m->os, m->key, m->data, m->len);
    return NULL;
}

/* Layers over a lowered threshold go multipart, byte-exact; put-if-absent
 * holds; nothing is left unfinished; commit objects stay single PUTs. */
static void multipart(void)
{
    size_t big = 2 * 8 * MIB + 12345, one = 7 * MIB;   /* 3 parts; 1 part */
    unsigned char *data = malloc(big);
    objstore *os = NULL;
    char err[512] = "", etag[80], want[80];
    uint64_t size = 0;
    void *buf = NULL;
    size_t got = 0;
    int left;

    for (size_t i = 0; i < big; i++)
        data[i] = (unsigned char)(i * 131 + (i >> 13) + (i >> 20));
    setenv("LAKEFS_S3_MULTIPART_THRESHOLD", "nonsense", 1);
    open_fails(url, "LAKEFS_S3_MULTIPART_THRESHOLD");
    setenv("LAKEFS_S3_MULTIPART_THRESHOLD", "6000000", 1);
    CHECK(os_open(url, &os, err, sizeof(err)) == 0);
    unsetenv("LAKEFS_S3_MULTIPART_THRESHOLD");
    if (!os) {
        printf("  os_open: %s\n", err);
        free(data);
        return;
    }

    /* three parts, read back whole and across the part boundaries */
    CHECK(os_put_if_absent(os, "mp/layers/big", data, big) == 0);
    CHECK(os_head(os, "mp/layers/big", &size) == 0 && size == big);
    CHECK(os_get(os, "mp/layers/big", 0, UINT64_MAX, &buf, &got) == 0);
    CHECK(got == big && buf && memcmp(buf, data, big) == 0);
    free(buf);
    CHECK(range_ok(os, "mp/layers/big", data, big, 8 * MIB - 100, 200));
    CHECK(range_ok(os, "mp/layers/big", data, big, 16 * MIB - 1, 2));
    CHECK(range_ok(os, "mp/layers/big", data, big, 8 * MIB, 8 * MIB));
    CHECK(range_ok(os, "mp/layers/big", data, big, 8 * MIB - 1, 8 * MIB + 2));
    CHECK(range_ok(os, "mp/layers/big", data, big, big - 5000, 100000));
    CHECK(range_ok(os, "mp/layers/big", data, big, 0, 8 * MIB + 1));
    /* it went multipart, and its ETag is what a retried Complete expects */
    raw_etag("mp/layers/big", etag);
    multipart_etag(data, big, 8 * MIB, want);
    printf("  multipart ETag %s (expected %s)\n", etag, want);
    CHECK(strcmp(etag, want) == 0);

    /* one part: still multipart, above the threshold */
    CHECK(os_put_if_absent(os, "mp/layers/one", data, one) == 0);
    CHECK(range_ok(os, "mp/layers/one", data, one, 0, UINT64_MAX));
    raw_etag("mp/layers/one", etag);
    CHECK(strlen(etag) > 2 && strcmp(etag + strlen(etag) - 2, "-1") == 0);

    /* onto an existing key: -EEXIST, the old object untouched */
    CHECK(os_put_if_absent(os, "mp/layers/taken", "old object", 10) == 0);
    CHECK(os_put_if_absent(os, "mp/layers/taken", data, big) == -EEXIST);
    CHECK(os_head(os, "mp/layers/taken", &size) == 0 && size == 10);
    CHECK(os_get(os, "mp/layers/taken", 0, UINT64_MAX, &buf, &got) == 0 &&
          got == 10 && memcmp(buf, "old object", 10) == 0);
    free(buf);
    CHECK(os_put_if_absent(os, "mp/layers/big", data + 1, big - 1) == -EEXIST);
    CHECK(range_ok(os, "mp/layers/big", data, big, 0, UINT64_MAX));

    /* not a layer: one conditional PUT however large */
    CHECK(os_put_if_absent(os, "mp/manifest-big", data, big) == 0);
    raw_etag("mp/manifest-big", etag);
    md5_hex(data, big, want);
    CHECK(strcmp(etag, want) == 0);
    CHECK(os_put_if_absent(os, "mp/manifest-big", data, 1) == -EEXIST);

    /* four at once (each with parallel parts) */
    {
        mp_job m[4];
        pthread_t t[4];
        for (int i = 0; i < 4; i++) {
            m[i] = (mp_job){ .os = os, .data = data + i, .len = 9 * MIB + i };
            snprintf(m[i].key, sizeof(m[i].key), "mp/layers/par%d", i);
            pthread_create(&t[i], NULL, mp_worker, &m[i]);
        }
        for (int i = 0; i < 4; i++) {
            pthread_join(t[i], NULL);
            CHECK(m[i].rc == 0);
            CHECK(range_ok(os, m[i].key, data + i, m[i].len, 8 * MIB - 3, 6));
        }
    }

    left = uploads_left();
    printf("  unfinished multipart uploads: %d\n", left);
    CHECK(left == 0);
    os_close(os);
    free(data);
}

/* ---- batched delete ---- */

/* Delete NDEL keys, every seventh of them missing, in one call. */
static void delete_many(objstore *os)
{
    const char **keys = malloc(NDEL * sizeof(*keys));
    char (*names)[32] = malloc(NDEL * sizeof(*names));
    const char *bad[] = { "del/k00000", "del/../x" };
    char **left = NULL;
    size_t n = 0;
    uint64_t size;
    job j[NTHREADS];

    run_workers(os, NULL, "del/k%05d", NDEL, 7, j);
    for (int i = 0; i < NTHREADS; i++)
        CHECK(j[i].rc == 0);
    CHECK(os_list(os, "del/", &left, &n) == 0 && n == NDEL - NDEL / 7);
    os_list_free(left, n);
    for (int i = 0; i < NDEL; i++) {
        snprintf(names[i], sizeof(names[i]), "del/k%05d", i);
        keys[i] = names[i];
    }
    /* an invalid key: nothing is deleted */
    CHECK(os_delete_many(os, bad, 2) == -EINVAL);
    CHECK(os_head(os, "del/k00000", &size) == 0);
    CHECK(os_delete_many(os, keys, 0) == 0);

    CHECK(os_delete_many(os, keys, NDEL) == 0);
    CHECK(os_list(os, "del/", &left, &n) == 0 && n == 0);
    os_list_free(left, n);
    CHECK(os_delete_many(os, keys, NDEL) == 0);    /* all missing now */
    CHECK(os_head(os, "a/empty", &size) == 0);     /* others untouched */
    free(keys);
    free(names);
}

/* ---- throttling, against a scripted server ---- */

/* The scripted server: answers os_open's checks, then HEADs from a script. */
static struct fake {
    int fd;                       /* listening socket */
    int puts;                     /* PUTs seen: the probe is new, then taken */
    const char *script[4];        /* status lines (+ headers) for HEADs */
    int next;                     /* next script entry */
    pthread_mutex_t mu;
} fake = { .fd = -1, .mu = PTHREAD_MUTEX_INITIALIZER };

/* Answer one request on connection C; 0, or -1 when the peer is gone. */
static int fake_one(int c)
{
    char req[8192] = "", resp[512];
    const char *st = "500 Unscripted", *body = "";
    size_t got = 0;
    char *end = NULL, *cl;
    long blen = 0;

    while (!(end = strstr(req, "\r\n\r\n"))) {
        ssize_t r = got + 1 < sizeof(req) ? read(c, req + got, sizeof(req) - 1 - got) : -1;
        if (r <= 0)
            return -1;
        got += (size_t)r;
        req[got] = '\0';
    }
    if ((cl = strcasestr(req, "\r\ncontent-length:")))
        blen = strtol(cl + 17, NULL, 10);
    for (long left = blen - (long)(got - (size_t)(end + 4 - req)); left > 0;) {
        ssize_t r = read(c, resp, sizeof(resp));
        if (r <= 0)
            return -1;
        left -= r;
    }
    pthread_mutex_lock(&fake.mu);
    if (!strncmp(req, "GET ", 4)) {
        st = "200 OK";
        body = "<ListBucketResult></ListBucketResult>";
    } else if (!strncmp(req, "PUT ", 4)) {
        st = fake.puts++ % 2 ? "412 Precondition Failed" : "200 OK";
    } else if (!strncmp(req, "DELETE ", 7)) {
        st = "204 No Content";
    } else if (!strncmp(req, "HEAD ", 5) && fake.next < 4 && fake.script[fake.next]) {
        st = fake.script[fake.next++];
    }
    pthread_mutex_unlock(&fake.mu);
    snprintf(resp, sizeof(resp), "HTTP/1.1 %s\r\nContent-Length: %zu\r\n"
             "Connection: close\r\n\r\n%s", st, strlen(body),
             strncmp(req, "HEAD ", 5) ? body : "");
    return write(c, resp, strlen(resp)) < 0 ? -1 : 0;
}

/* Thread body: serve one connection at a time until the socket closes. */
static void *fake_serve(void *arg)
{
    int c;

    (void)arg;
    while ((c = accept(fake.fd, NULL, NULL)) >= 0) {
        fake_one(c);
        close(c);
    }
    return NULL;
}

/* Seconds a head of "x" takes when the server answers S1, then S2; its
 * result in *RC. */
static double timed_head(objstore *os, const char *s1, const char *s2, int *rc)
{
    struct timespec a, b;
    uint64_t size;

    pthread_mutex_lock(&fake.mu);
    fake.script[0] = s1;
    fake.script[1] = s2;
    fake.script[2] = NULL;
    fake.next = 0;
    pthread_mutex_unlock(&fake.mu);
    clock_gettime(CLOCK_MONOTONIC, &a);
    *rc = os_head(os, "x", &size);
    clock_gettime(CLOCK_MONOTONIC, &b);
    return (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
}

/* 429/503 with Retry-After wait that long, within the retry budget. */
static void retry_after(void)
{
    struct sockaddr_in sa = { .sin_family = AF_INET };
    socklen_t sl = sizeof(sa);
    char ep[64], u[600], err[512] = "";
    objstore *os = NULL;
    pthread_t t;
    double secs;
    int rc;

    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    fake.fd = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(bind(fake.fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
          listen(fake.fd, 16) == 0 &&
          getsockname(fake.fd, (struct sockaddr *)&sa, &sl) == 0);
    pthread_create(&t, NULL, fake_serve, NULL);
    snprintf(ep, sizeof(ep), "http://127.0.0.1:%d", ntohs(sa.sin_port));
    setenv("AWS_ENDPOINT_URL", ep, 1);
    snprintf(u, sizeof(u), "s3://%s/throttled", bucket);
    CHECK(os_open(u, &os, err, sizeof(err)) == 0);
    if (!os)
        printf("  os_open %s at %s: %s\n", u, ep, err);
    if (os) {
        secs = timed_head(os, "503 Slow Down\r\nRetry-After: 2", "200 OK", &rc);
        printf("  503 with Retry-After: 2 -> %d after %.2fs\n", rc, secs);
        CHECK(rc == 0 && secs >= 2.0 && secs < 3.5);
        secs = timed_head(os, "429 Too Many Requests\r\nRetry-After: 1", "200 OK", &rc);
        printf("  429 with Retry-After: 1 -> %d after %.2fs\n", rc, secs);
        CHECK(rc == 0 && secs >= 1.0 && secs < 2.5);
        secs = timed_head(os, "503 Slow Down", "200 OK", &rc);
        printf("  503 without Retry-After -> %d after %.2fs\n", rc, secs);
        CHECK(rc == 0 && secs < 0.5);
        secs = timed_head(os, "503 Slow Down\r\nRetry-After: Fri, 31 Dec 1999 "
                          "23:59:59 GMT", "200 OK", &rc);
        printf("  503 with a date Retry-After -> %d after %.2fs\n", rc, secs);
        CHECK(rc == 0 && secs < 0.5);
        os_close(os);
    }
    /* no attempt left: no waiting either */
    setenv("LAKEFS_S3_RETRIES", "1", 1);
    os = NULL;
    CHECK(os_open(u, &os, err, sizeof(err)) == 0);
    unsetenv("LAKEFS_S3_RETRIES");
    if (os) {
        secs = timed_head(os, "503 Slow Down\r\nRetry-After: 30", "200 OK", &rc);
        printf("  503 with Retry-After: 30, budget spent -> %d after %.2fs\n",
               rc, secs);
        CHECK(rc == -EIO && secs < 1.0);
        os_close(os);
    }
    shutdown(fake.fd, SHUT_RDWR);
    close(fake.fd);
    pthread_join(t, NULL);
    setenv("AWS_ENDPOINT_URL", endpoint, 1);
}

/* A head request run in a thread. */
typedef struct head_job {
    objstore *os;
    int rc;
} head_job;

/* Thread body: head of "a/empty" while the server restarts. */
static void *head_worker(void *arg)
{
    head_job *h = arg;
    uint64_t size;

    h->rc = os_head(h->os, "a/empty", &size);
    return NULL;
}

/* Server down: -EIO after the budget; down then up: the retry succeeds. */
static void outage(objstore *os, const char *stop, const char *start)
{
    head_job h = { os, -1 };
    uint64_t size;
    pthread_t t;
    time_t t0;

    CHECK(system(stop) == 0);
    setenv("LAKEFS_S3_RETRIES", "3", 1);
    {
        objstore *short_os = NULL;
        char err[512] = "";
        CHECK(os_open(url, &short_os, err, sizeof(err)) < 0);
        printf("  os_open with the server down: %s\n", err);
        CHECK(strstr(err, "cannot reach") != NULL);
    }
    unsetenv("LAKEFS_S3_RETRIES");
    t0 = time(NULL);
    pthread_create(&t, NULL, head_worker, &h);
    sleep(1);
    CHECK(system(start) == 0);
    pthread_join(t, NULL);
    printf("  head across a restart: %d after %lds\n", h.rc, (long)(time(NULL) - t0));
    CHECK(h.rc == 0);
    CHECK(os_head(os, "a/empty", &size) == 0 && size == 0);
}

/* The budget spent on a dead server: -EIO and one log line. */
static void dead_server(const char *stop, const char *start)
{
    objstore *os = NULL;
    char err[512] = "";
    uint64_t size;

    CHECK(os_open(url, &os, err, sizeof(err)) == 0);
    if (!os)
        return;
    CHECK(system(stop) == 0);
    CHECK(os_head(os, "a/empty", &size) == -EIO);
    CHECK(system(start) == 0);
    os_close(os);
}

/* Open with credentials from a profile in a scratch HOME. */
static void profiles(const char *home)
{
    char path[512], err[512] = "";
    objstore *os = NULL;
    FILE *f;

    snprintf(path, sizeof(path), "%s/.aws", home);
    mkdir(path, 0700);
    snprintf(path, sizeof(path), "%s/.aws/credentials", home);
    f = fopen(path, "w");
    fprintf(f, "[default]\naws_access_key_id = nobody\naws_secret_access_key = x\n\n"
               "[lakefs]\naws_access_key_id = %s\naws_secret_access_key = %s\n",
            akey, skey);
    fclose(f);
    snprintf(path, sizeof(path), "%s/.aws/config", home);
    f = fopen(path, "w");
    fprintf(f, "[profile lakefs]\nregion = us-east-1\nendpoint_url = %s\n"
               "s3 =\n  addressing_style = path\n", endpoint);
    fclose(f);
    unsetenv("AWS_ACCESS_KEY_ID");
    unsetenv("AWS_SECRET_ACCESS_KEY");
    unsetenv("AWS_ENDPOINT_URL");
    unsetenv("AWS_REGION");
    setenv("AWS_PROFILE", "lakefs", 1);
    CHECK(os_open(url, &os, err, sizeof(err)) == 0);
    if (!os)
        printf("  profile open failed: %s\n", err);
    os_close(os);
    setenv("AWS_PROFILE", "nosuch", 1);
    open_fails(url, "profile 'nosuch' not found");
    unsetenv("AWS_PROFILE");
    setenv("AWS_ENDPOINT_URL", endpoint, 1);
    open_fails(url, "access key id is unknown");  /* [default]'s key */
}

/* A daemon forks right after os_open (lakefs mount without -f), while the
 * conditional-PUT probe still runs behind it: the child, which has none of
 * the parent's threads, must know the verdict (its first write would
 * otherwise wait for ever) and close without joining a thread it does not
 * have; the parent closes as usual. */
static void fork_after_open(void)
{
    char err[512] = "";
    objstore *os = NULL;
    CHECK(os_open(url, &os, err, sizeof(err)) == 0);
    if (!os)
        return;
    pid_t pid = fork();
    if (pid == 0) {
        alarm(30);                /* a hang is a failure, not a stuck test */
        int rc = os_put_if_absent(os, "fork/child", "x", 1);
        os_close(os);
        _exit(rc == 0 ? 0 : 1);
    }
    int st = -1;
    CHECK(pid > 0 && waitpid(pid, &st, 0) == pid);
    printf("  child after fork: %s\n", WIFEXITED(st) ? (WEXITSTATUS(st) ? "write failed" : "wrote and closed")
                                                       : "killed (hung?)");
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    CHECK(os_put_if_absent(os, "fork/child", "y", 1) == -EEXIST);
    CHECK(os_delete(os, "fork/child") == 0);
    os_close(os);
}

int main(void)
{
    char home[64], u[600], err[512] = "";
    const char *stop = getenv("S3_TEST_STOP"), *start = getenv("S3_TEST_START");
    objstore *os = NULL;

    endpoint = need("S3_TEST_ENDPOINT");
    bucket = need("S3_TEST_BUCKET");
    akey = need("S3_TEST_ACCESS_KEY");
    skey = need("S3_TEST_SECRET_KEY");
    harness_tmpdir(home);
    setenv("HOME", home, 1);
    unsetenv("AWS_CONFIG_FILE");
    unsetenv("AWS_SHARED_CREDENTIALS_FILE");
    unsetenv("AWS_ENDPOINT_URL_S3");
    snprintf(url, sizeof(url), "s3://%s/run%ld/repo", bucket, (long)getpid());

    env_default(skey);
    CHECK(os_open(url, &os, err, sizeof(err)) == 0);
    if (!os) {
        printf("os_open %s: %s\n", url, err);
        harness_rmtree(home);
        return harness_done();
    }
    CHECK(strcmp(os_url(os), url) == 0);
    contract(os);
    printf("multipart:\n");
    multipart();
    printf("delete many:\n");
    delete_many(os);
    printf("throttling:\n");
    retry_after();
    printf("fork right after open:\n");
    fork_after_open();

    printf("os_open errors:\n");
    open_fails("s3://", "malformed");
    open_fails("s3://Bad_Bucket/x", "malformed");
    snprintf(u, sizeof(u), "s3://%s/a//b", bucket);
    open_fails(u, "malformed");
    snprintf(u, sizeof(u), "s3://no-such-bucket-%ld/x", (long)getpid());
    open_fails(u, "does not exist");
    env_default("wrong-secret");
    open_fails(url, "secret key is wrong");
    env_default(skey);
    setenv("AWS_ACCESS_KEY_ID", "NOSUCHKEY", 1);
    open_fails(url, "access key id is unknown");
    env_default(skey);
    setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1", 1);
    open_fails(url, "cannot reach");
    setenv("AWS_ENDPOINT_URL", "http://192.0.2.1:80", 1);
    open_fails(url, "refusing plain-http");
    setenv("AWS_ENDPOINT_URL", "ftp://127.0.0.1", 1);
    open_fails(url, "must start with");
    unsetenv("AWS_ACCESS_KEY_ID");
    unsetenv("AWS_SECRET_ACCESS_KEY");
    open_fails(url, "no S3 credentials");
    env_default(skey);
    unsetenv("AWS_SECRET_ACCESS_KEY");
    open_fails(url, "AWS_SECRET_ACCESS_KEY is not");

    printf("profiles:\n");
    profiles(home);
    env_default(skey);

    if (stop && start) {
        printf("outage:\n");
        outage(os, stop, start);
        setenv("LAKEFS_S3_RETRIES", "2", 1);
        dead_server(stop, start);
        unsetenv("LAKEFS_S3_RETRIES");
    }
    os_close(os);
    harness_rmtree(home);
    return harness_done();
}

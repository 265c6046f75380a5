/*
 * test_objstore_s3.c -- the s3:// backend against a real S3 server.
 *
 * Run by test_objstore_s3.sh, which starts Ceph RGW and creates the bucket;
 * this program reads S3_TEST_ENDPOINT, S3_TEST_BUCKET, S3_TEST_ACCESS_KEY,
 * S3_TEST_SECRET_KEY and optionally S3_TEST_STOP / S3_TEST_START (shell
 * commands stopping and starting the server, for the outage checks).  It
 * sets the AWS_* variables itself, and HOME to a scratch directory, so the
 * developer's own ~/.aws never leaks in.  It covers the os_* contract
 * (put-if-absent races, ranged gets, list with continuation), the os_open
 * error messages, profiles from ~/.aws, and retries across a restart.
 */
#include "objstore.h"
#include "harness.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define NMANY 1100                /* > 1000: ListObjectsV2 needs two pages */
#define NTHREADS 8

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
    int first, step;              /* keys first, first+step, ... < NMANY */
    const char *key;              /* race mode: everyone puts this key */
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
    for (int i = j->first; i < NMANY; i += j->step) {
        snprintf(key, sizeof(key), "many/k%05d", i);
        int rc = os_put_if_absent(j->os, key, key, strlen(key));
        if (rc < 0)
            j->rc = rc;
    }
    return NULL;
}

/* Run NTHREADS workers over OS (race on KEY if not NULL); their jobs in J. */
static void run_workers(objstore *os, const char *key, job *j)
{
    pthread_t t[NTHREADS];

    for (int i = 0; i < NTHREADS; i++) {
        j[i] = (job){ os, i, NTHREADS, key, 0 };
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
    run_workers(os, "race/key", j);
    for (int i = 0; i < NTHREADS; i++) {
        wins += j[i].rc == 0;
        exists += j[i].rc == -EEXIST;
    }
    CHECK(wins == 1 && exists == NTHREADS - 1);

    /* many keys in parallel, listed across pages */
    run_workers(os, NULL, j);
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

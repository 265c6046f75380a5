/*
 * objstore_s3_open.c -- opening and closing an s3:// repository:
 * configuration, credentials, and the checks that the bucket answers and
 * honours conditional PUT.
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
 * The checks at open give up on an endpoint that does not answer after 3
 * attempts, but a server that answers with throttling or 5xx gets the
 * full budget, and is reported as overloaded, not as misconfigured.
 */
#include "objstore_s3.h"
#include "sigv4.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>
#include <openssl/crypto.h>
#include <unistd.h>

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


/* Free a string that may hold a secret, wiping it first. */
static void s3_free_secret(char *p)
{
    if (p) {
        OPENSSL_cleanse(p, strlen(p));
        free(p);
    }
}

/* Free the backend state and everything it owns. */
void s3_close(void *state)
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
int s3_probe_verdict(s3 *s)
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
int s3_open(const char *rest, void **state, char *err, size_t errlen)
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

/*
 * sigv4.h -- AWS Signature Version 4 request signing (header form).
 *
 * The signer is pure computation: it takes a request as it will go on the
 * wire, credentials, region, service and a time, and returns the canonical
 * request, the string to sign, the signature and the headers to add.  It
 * performs no I/O, so it is tested byte for byte against the published
 * test suite and used unchanged by the S3 backend.
 */
#ifndef LAKEFS_SIGV4_H
#define LAKEFS_SIGV4_H

#include <stddef.h>
#include <time.h>

/* One request header; VALUE may span lines (continuations are folded). */
typedef struct sigv4_header {
    const char *name;
    const char *value;
} sigv4_header;

typedef struct sigv4_request {
    const char *method;           /* "GET", "PUT", ... */
    const char *path;             /* path as sent, e.g. "/bucket/a%20b" */
    const char *query;            /* query as sent without '?', or NULL */
    const sigv4_header *headers;  /* headers to sign; must include Host and
                                   * none of the ones the signer adds */
    size_t nheaders;
    const char *payload_hash;     /* lowercase hex SHA-256 of the body */
} sigv4_request;

typedef struct sigv4_creds {
    const char *access_key;
    const char *secret_key;
    const char *session_token;    /* NULL when not temporary credentials */
} sigv4_creds;

typedef struct sigv4_params {
    const char *region;           /* "us-east-1" */
    const char *service;          /* "s3" */
    time_t when;                  /* signing time (UTC seconds) */
    int normalize_path;           /* drop "." / ".." / empty segments (not S3) */
    int encode_path;              /* URI-encode the path once more (not S3) */
    int content_sha256;           /* add and sign x-amz-content-sha256 (S3) */
} sigv4_params;

#define SIGV4_MAX_ADD 4           /* headers the signer may add */

typedef struct sigv4_result {
    char *canonical_request;
    char *string_to_sign;
    char signature[65];           /* lowercase hex */
    char *authorization;          /* value of the Authorization header */
    char *add[SIGV4_MAX_ADD];     /* "Name: value" lines to send, Authorization last */
    size_t nadd;
} sigv4_result;

/* Sign REQ; fills RES (free with sigv4_result_free); 0, -EINVAL or -ENOMEM. */
int sigv4_sign(const sigv4_request *req, const sigv4_creds *creds,
               const sigv4_params *par, sigv4_result *res);
/* Free what sigv4_sign stored in RES and wipe it. */
void sigv4_result_free(sigv4_result *res);
/* Hex SHA-256 of LEN bytes at DATA into OUT. */
void sigv4_sha256_hex(const void *data, size_t len, char out[65]);
/* S URI-encoded the AWS way (unreserved kept, '/' kept when KEEP_SLASH) in
 * a new malloc'd string; NULL on allocation failure. */
char *sigv4_uri_encode(const char *s, int keep_slash);

#endif

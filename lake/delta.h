/*
 * delta.h -- the Delta Lake transaction log of one exported table
 * (PROTOCOL.md, reader version 1 / writer version 2), for issue 7.
 *
 * A Delta table is a directory (here a key prefix in an object store,
 * objstore.h) of Parquet files plus _delta_log/NNNNNNNNNNNNNNNNNNNN.json,
 * one file per version, each a line of JSON per action.  This module reads
 * the log back (delta_load: the newest version, the data files it holds,
 * the schema, the txn versions per appId) by replaying every commit from
 * 0, and writes the next version (delta_commit) with put-if-absent, so two
 * writers racing for the same version cannot both win: the loser gets
 * -EEXIST and a message saying someone else committed.
 *
 * A commit written here holds commitInfo, then protocol and metaData on
 * version 0 (and metaData again when the schema changes), a txn action
 * {appId, version} that makes re-running an export of the same point a
 * no-op (the caller compares delta_txn_version first), a remove action for
 * every file of the previous version and an add action for every new file
 * (path, size, partitionValues {}, modificationTime, dataChange, stats).
 * Until that commit exists, readers see the previous version: data files
 * written before it are invisible (nothing half-written is visible).
 *
 * The reader parses any JSON (a small recursive-descent parser, bounded
 * depth) but takes only add/remove paths, txn appId/version and metaData
 * id/schemaString.  A prefix that holds objects but no readable log, a
 * log with gaps, checkpoints (which this does not read) or a reader
 * version above 1 is refused with a one-line error.
 */
#ifndef LAKEFS_DELTA_H
#define LAKEFS_DELTA_H

#include "../objstore/objstore.h"

#include <stddef.h>
#include <stdint.h>

/* A growable string; errors stick (len stays, oom set). */
typedef struct delta_buf {
    char *p;
    size_t len, cap;
    int oom;
} delta_buf;

/* Append N bytes of S / a formatted string / S as a JSON string literal
 * (quotes, escapes for '"', '\\' and control characters; UTF-8 kept). */
void delta_buf_put(delta_buf *b, const char *s, size_t n);
void delta_buf_printf(delta_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void delta_buf_json(delta_buf *b, const char *s, size_t n);
void delta_buf_free(delta_buf *b);

/* A random (version 4) UUID, 36 characters and a NUL, in OUT. */
void delta_uuid(char out[37]);

typedef struct delta_txn {
    char *app_id;
    int64_t version;
} delta_txn;

/* What lakefs's exporter recorded of its point in a commit's
 * commitInfo.lakefs (tools/export.c); a member it lacks is NULL / -1. */
typedef struct delta_origin {
    char *branch;
    char *lsn_text;               /* lsn: "0/16B3748" */
    int64_t lsn;                  /* lsnNumber */
    int64_t timeline;
    char *snapshot;               /* txid_current_snapshot() of the export */
    char *server_started;         /* serverStarted: pg_postmaster_start_time() */
} delta_origin;

/* The table as its newest version leaves it. */
typedef struct delta_log {
    int64_t version;              /* newest version; -1: no table yet */
    char **files;                 /* paths of the data files it holds */
    size_t nfiles;
    char *table_id;               /* metaData.id (NULL before version 0) */
    char *schema;                 /* metaData.schemaString */
    delta_txn *txns;
    size_t ntxns;
    delta_origin origin;          /* the newest commit's */
} delta_log;

/* Replay the log of the table at PREFIX ("" or "dir/sub", no trailing '/')
 * in OS into *OUT.  0 (version -1 if the prefix holds nothing), or -errno
 * with a one-line reason in ERR: -ENOTDIR if PREFIX holds objects but no
 * Delta log, -EINVAL for a log this cannot read. */
int delta_load(objstore *os, const char *prefix, delta_log *out, char *err, size_t errlen);
void delta_log_free(delta_log *l);

/* The txn version recorded for APP_ID, or -1. */
int64_t delta_txn_version(const delta_log *l, const char *app_id);

/* A column of the table: NAME (UTF-8) of Spark type TYPE ("long",
 * "decimal(10,2)"), nullable. */
typedef struct delta_field {
    const char *name;
    const char *type;
} delta_field;

/* A data file the new version adds: PATH relative to the table, SIZE
 * bytes, STATS a JSON object text (numRecords, minValues, ...) or NULL. */
typedef struct delta_add {
    const char *path;
    uint64_t size;
    const char *stats;
} delta_add;

typedef struct delta_commit_args {
    const delta_field *fields;
    size_t nfields;
    const delta_add *adds;
    size_t nadds;
    const char *app_id;           /* txn appId */
    int64_t txn_version;          /* txn version (the exported LSN) */
    const char *info;             /* extra commitInfo members ("\"a\":1,\"b\":\"x\""), or NULL */
    int64_t now_ms;               /* timestamps (ms since the Unix epoch) */
} delta_commit_args;

/* Write version CUR->version + 1 of the table at PREFIX: replaces every
 * file of CUR with A->adds.  0, or -errno with ERR: -EEXIST if that version
 * appeared meanwhile (another writer committed; nothing was written). */
int delta_commit(objstore *os, const char *prefix, const delta_log *cur, const delta_commit_args *a,
                 char *err, size_t errlen);

#endif

/*
 * export.c -- `lakefs export BRANCH --table SCHEMA.TABLE ... --to URL
 * --dsn CONNINFO`: a consistent snapshot of tables as Delta Lake tables
 * (issue 7).
 *
 * One REPEATABLE READ READ ONLY transaction on the server gives every table
 * the same snapshot; its point is pg_current_wal_insert_lsn() read by the
 * transaction's first statement (the snapshot is taken by that statement;
 * a transaction committing at that very moment may have its commit record
 * below the LSN yet be outside the snapshot, so on a live primary the LSN
 * is the point to within the commits in flight then; on a time-travel view,
 * which stands still, it is exact).  Each table is read with COPY (SELECT
 * ...) TO STDOUT (FORMAT binary), decoded by pgcopy.h into the Parquet
 * writer (parquet.h), which begins another data file once a row group
 * ends past --file-size.  Each file is spooled to an unlinked temporary
 * file and, once finished, stored (mapped from the spool) at
 * URL/SCHEMA.TABLE/part-UUID.zstd.parquet, so memory stays bounded by the
 * row group and the file size, not by the table.  Last, the Delta commit
 * (delta.h) that replaces the table's previous files with them is created
 * with put-if-absent: until then readers see the previous version, and
 * files stored for a commit that never comes are deleted.  The commit's
 * txn action {appId "lakefs:BRANCH:SCHEMA.TABLE", version LSN} makes
 * exporting the same point again a no-op; so does the snapshot recorded in
 * commitInfo.lakefs on a live server whose LSN moved on while no
 * transaction ended (unchanged_since).
 *
 * Columns whose values Parquet cannot hold in the mapped type (numeric
 * NaN, date/timestamp +/-infinity) are found first (one aggregate over the
 * table in the same snapshot) and exported as text, with a warning.
 *
 * Without --dsn, --at LSN|TIME names the point and export_view.c starts
 * PostgreSQL on the repository's read-only time-travel view of it.
 */
#include "export.h"
#include "export_impl.h"
#include "../lake/delta.h"
#include "../lake/parquet.h"
#include "../lake/pgcopy.h"
#include "../objstore/objstore.h"

#include <errno.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char *usage_export =
    "usage: lakefs export BRANCH --table SCHEMA.TABLE [--table ...] --to URL\n"
    "                     (--at LSN|TIME [--repo URL] [--dbname DB] | --dsn CONNINFO)\n"
    "                     [--row-group-size N] [--file-size N]\n"
    "\n"
    "Publish the tables, as one consistent snapshot, as Delta Lake tables at\n"
    "URL/SCHEMA.TABLE (URL file:///dir or s3://bucket/prefix): Parquet files\n"
    "plus a _delta_log commit per export.  --at starts PostgreSQL on the\n"
    "read-only time-travel view BRANCH@POINT of the mounted repository and\n"
    "reads it; --dsn reads from a running server on BRANCH instead, inside one\n"
    "REPEATABLE READ snapshot whose LSN is the point.\n"
    "Exporting the same point again changes nothing, nor does a later point of\n"
    "the same server at which no transaction has ended since; a later point is\n"
    "a new version replacing the table's files (older versions stay readable).\n"
    "\n"
    "  --table SCHEMA.TABLE  a table to export (repeat for more)\n"
    "  --to URL              where the Delta tables go\n"
    "  --at LSN|TIME         the point: 0/16B3748 or 2026-11-23T10:32:05Z\n"
    "  --repo URL            the mounted repository (default: the mount holding\n"
    "                        the current directory, else the only one)\n"
    "  --dbname DB           the database of the tables with --at (postgres)\n"
    "  --dsn CONNINFO        libpq connection string of a server on BRANCH\n"
    "  --row-group-size N    bytes buffered per Parquet row group (default 64M)\n"
    "  --file-size N         begin another data file after a row group ends past\n"
    "                        this (default 128M)\n"
    "Memory: about 3 x the row group + the file size + 4 x the largest value +\n"
    "a few MiB, whatever the table's size (the peak is printed at the end).\n"
    "\n"
    "Types: smallint short, integer integer, bigint long, real float, double\n"
    "double, boolean boolean, text/varchar/char string, bytea binary,\n"
    "numeric(p,s) p<=38 decimal(p,s), date date, timestamp[tz] timestamp\n"
    "(UTC microseconds); anything else string (its text form).\n";

/* Print "lakefs: export: MSG"; returns STATUS. */
#define DEFAULT_FILE_BYTES ((size_t)128 << 20)   /* --file-size */

int export_fail(int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("lakefs: export: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return status;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

double export_mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* One line of libpq's message (its trailing newline cut). */
static const char *pqmsg(PGconn *c)
{
    static char buf[512];
    snprintf(buf, sizeof buf, "%s", PQerrorMessage(c));
    char *nl = strchr(buf, '\n');
    if (nl) *nl = 0;
    return buf;
}

/* Run SQL expecting tuples or a command; the result, or NULL with the
 * error printed (naming WHAT). */
static PGresult *run(PGconn *c, const char *what, const char *sql, int nparams, const char *const *params)
{
    PGresult *r = PQexecParams(c, sql, nparams, NULL, params, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) return r;
    export_fail(1, "%s: %s", what, pqmsg(c));
    PQclear(r);
    return NULL;
}

/* ------------------------------------------------------------ spool file */

typedef struct spool {
    int fd;
    uint64_t size;
} spool;

/* Parquet sink: append to the spool file. */
static int spool_write(void *arg, const void *buf, size_t len)
{
    spool *s = arg;
    const char *p = buf;
    while (len) {
        ssize_t n = write(s->fd, p, len);
        if (n < 0) {
            if (errno == EINTR) continue;
            return -errno;
        }
        p += n;
        len -= (size_t)n;
        s->size += (uint64_t)n;
    }
    return 0;
}

/* An unlinked temporary file in $TMPDIR (or /var/tmp); fd or -errno. */
static int spool_open(void)
{
    const char *dir = getenv("TMPDIR");
    char path[4096];
    snprintf(path, sizeof path, "%s/lakefs-export-XXXXXX", dir && *dir ? dir : "/var/tmp");
    int fd = mkstemp(path);
    if (fd < 0) return -errno;
    unlink(path);
    return fd;
}

/* ------------------------------------------------------------ stats */

/* Days since 1970-01-01 as YYYY-MM-DD into OUT (civil from days). */
static void fmt_date(int64_t z, char *out, size_t len)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t y = yoe + era * 400, doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153, d = doy - (153 * mp + 2) / 5 + 1, m = mp < 10 ? mp + 3 : mp - 9;
    snprintf(out, len, "%04" PRId64 "-%02" PRId64 "-%02" PRId64, y + (m <= 2), m, d);
}

/* A 128-bit integer scaled by 10^SCALE as a JSON number into B. */
static void put_decimal(delta_buf *b, __int128 v, int scale)
{
    char d[64];
    int n = 0, neg = v < 0;
    unsigned __int128 u = neg ? -(unsigned __int128)v : (unsigned __int128)v;
    do { d[n++] = (char)('0' + (int)(u % 10)); u /= 10; } while (u);
    while (n <= scale) d[n++] = '0';
    char out[80];
    int k = 0;
    if (neg) out[k++] = '-';
    for (int i = n - 1; i >= 0; i--) {
        out[k++] = d[i];
        if (i == scale && scale > 0) out[k++] = '.';
    }
    delta_buf_put(b, out, (size_t)k);
}

/* Column stat value V (min if IS_MIN) of C/PC as JSON into B; 0 if it was
 * written, -1 if this column has no Delta min/max. */
static int put_stat(delta_buf *b, const pgcopy_col *c, const pq_column *pc, const pq_value *v, int is_min)
{
    char tmp[64];
    switch (c->kind) {
    case PGCOPY_INT16: case PGCOPY_INT32: delta_buf_printf(b, "%" PRId32, v->i32); return 0;
    case PGCOPY_INT64: delta_buf_printf(b, "%" PRId64, v->i64); return 0;
    case PGCOPY_FLOAT4:
        if (v->f32 != v->f32 || v->f32 - v->f32 != 0) return -1;
        delta_buf_printf(b, "%.17g", (double)v->f32);   /* the float exactly: a bound as a double too */
        return 0;
    case PGCOPY_FLOAT8:
        if (v->f64 != v->f64 || v->f64 - v->f64 != 0) return -1;
        delta_buf_printf(b, "%.17g", v->f64);
        return 0;
    case PGCOPY_TEXT:
        if (v->len > 256) return -1;
        delta_buf_json(b, (const char *)v->bytes, v->len);
        return 0;
    case PGCOPY_DATE:
        if (v->i32 > 2932896 || v->i32 < -719162) return -1;   /* years 0001..9999 only */
        fmt_date(v->i32, tmp, sizeof tmp);
        delta_buf_printf(b, "\"%s\"", tmp);
        return 0;
    case PGCOPY_TIMESTAMP: {
        /* milliseconds: the min rounded down, the max up, so the range holds */
        int64_t us = v->i64, ms = us / 1000 - (us % 1000 < 0);
        if (!is_min && us % 1000 != 0) ms++;
        int64_t days = ms / 86400000 - (ms % 86400000 < 0), rem = ms - days * 86400000;
        if (days > 2932896 || days < -719162) return -1;   /* years 0001..9999 only */
        fmt_date(days, tmp, sizeof tmp);
        delta_buf_printf(b, "\"%sT%02d:%02d:%02d.%03dZ\"", tmp, (int)(rem / 3600000), (int)(rem / 60000 % 60),
                         (int)(rem / 1000 % 60), (int)(rem % 1000));
        return 0;
    }
    case PGCOPY_NUMERIC: {
        __int128 x;
        if (pc->type == PQ_INT32) x = v->i32;
        else if (pc->type == PQ_INT64) x = v->i64;
        else {
            if (!v->bytes || !v->len) return -1;
            x = (int8_t)v->bytes[0];
            for (size_t i = 1; i < v->len; i++) x = x * 256 + v->bytes[i];
        }
        put_decimal(b, x, c->scale);
        return 0;
    }
    default: return -1;          /* boolean, binary: Delta keeps no min/max */
    }
}

/* The add action's stats JSON for writer W into B. */
static void build_stats(delta_buf *b, pq_writer *w, const pgcopy_col *cols, const pq_column *pcs, size_t n)
{
    delta_buf_printf(b, "{\"numRecords\":%" PRIu64, pq_num_rows(w));
    for (int pass = 0; pass < 3; pass++) {
        delta_buf_printf(b, ",\"%s\":{", pass == 0 ? "minValues" : pass == 1 ? "maxValues" : "nullCount");
        int first = 1;
        for (size_t i = 0; i < n; i++) {
            pq_stats st;
            if (pq_stats_get(w, i, &st)) continue;
            if (pass < 2 && !st.has_min_max) continue;
            size_t mark = b->len;
            if (!first) delta_buf_put(b, ",", 1);
            delta_buf_json(b, pcs[i].name, strlen(pcs[i].name));
            delta_buf_put(b, ":", 1);
            if (pass == 2) delta_buf_printf(b, "%" PRIu64, st.null_count);
            else if (put_stat(b, &cols[i], &pcs[i], pass == 0 ? &st.min : &st.max, pass == 0)) {
                b->len = mark;    /* no min/max for this column */
                if (b->p) b->p[b->len] = 0;
                continue;
            }
            first = 0;
        }
        delta_buf_put(b, "}", 1);
    }
    delta_buf_put(b, "}", 1);
}

/* ------------------------------------------------------------ one table */

typedef struct export_ctx {
    PGconn *pg;
    objstore *os;
    const char *branch;
    const char *lsn_text;         /* "0/16B3748" */
    uint64_t lsn;
    int timeline;
    const char *snapshot;         /* txid_current_snapshot() */
    const char *server_started;   /* pg_postmaster_start_time() */
    size_t row_group_bytes;
    uint64_t file_bytes;          /* begin another data file past this */
} export_ctx;

typedef struct table_cols {
    size_t n;
    char **names;
    pgcopy_col *cols;
    pq_column *pcs;
} table_cols;

static void cols_free(table_cols *t)
{
    for (size_t i = 0; i < t->n; i++) free(t->names[i]);
    free(t->names);
    free(t->cols);
    free(t->pcs);
    memset(t, 0, sizeof *t);
}

/* Key characters of the object store (objstore.h). */
static int key_name_ok(const char *s)
{
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '.' ||
              *s == '_' || *s == '-'))
            return 0;
    return 1;
}

/* The columns of SCHEMA.TABLE (quoted identifier QNAME) in *T; 1 on error
 * (printed). */
static int table_columns(export_ctx *x, const char *schema, const char *table, const char *qname, table_cols *t)
{
    const char *params[2] = {schema, table};
    PGresult *r = run(x->pg, qname,
        "SELECT a.attname, CASE WHEN ty.typtype = 'd' THEN ty.typbasetype ELSE a.atttypid END,"
        "       CASE WHEN ty.typtype = 'd' THEN ty.typtypmod ELSE a.atttypmod END,"
        "       bt.typcategory = 'A', bt.typtype = 'e', format_type(a.atttypid, a.atttypmod)"
        "  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        "  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped"
        "  JOIN pg_type ty ON ty.oid = a.atttypid"
        "  JOIN pg_type bt ON bt.oid = CASE WHEN ty.typtype = 'd' THEN ty.typbasetype ELSE a.atttypid END"
        " WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p', 'm', 'v', 'f')"
        " ORDER BY a.attnum", 2, params);
    if (!r) return 1;
    int n = PQntuples(r);
    if (n == 0) {
        PQclear(r);
        params[0] = schema;
        r = run(x->pg, qname, "SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p', 'm', 'v', 'f')", 2, params);
        int exists = r && PQntuples(r) > 0;
        PQclear(r);
        if (exists) return export_fail(1, "table %s has no columns: nothing to export", qname);
        return export_fail(1, "no table %s in database %s (give SCHEMA.TABLE as \\dt shows it)", qname, PQdb(x->pg));
    }
    t->n = (size_t)n;
    t->names = calloc((size_t)n, sizeof *t->names);
    t->cols = calloc((size_t)n, sizeof *t->cols);
    t->pcs = calloc((size_t)n, sizeof *t->pcs);
    if (!t->names || !t->cols || !t->pcs) { PQclear(r); return export_fail(1, "out of memory"); }
    for (int i = 0; i < n; i++) {
        t->names[i] = strdup(PQgetvalue(r, i, 0));
        if (!t->names[i]) { PQclear(r); return export_fail(1, "out of memory"); }
        const char *note;
        pgcopy_map(t->names[i], (uint32_t)strtoul(PQgetvalue(r, i, 1), NULL, 10), (int32_t)atoi(PQgetvalue(r, i, 2)),
                   PQgetvalue(r, i, 3)[0] == 't', PQgetvalue(r, i, 4)[0] == 't', &t->cols[i], &t->pcs[i], &note);
        if (note)
            fprintf(stderr, "lakefs: export: warning: %s column \"%s\" (%s): %s\n", qname, t->names[i],
                    PQgetvalue(r, i, 5), note);
    }
    PQclear(r);
    return 0;
}

/* Columns whose values do not fit their Parquet type (numeric NaN,
 * infinite dates and timestamps) become text, with a warning; 1 on error. */
static int check_unrepresentable(export_ctx *x, const char *qname, table_cols *t)
{
    delta_buf q = {0};
    int any = 0;
    for (size_t i = 0; i < t->n; i++) {
        pgcopy_kind k = t->cols[i].kind;
        if (k != PGCOPY_NUMERIC && k != PGCOPY_DATE && k != PGCOPY_TIMESTAMP) continue;
        char *id = PQescapeIdentifier(x->pg, t->names[i], strlen(t->names[i]));
        if (!id) { delta_buf_free(&q); return export_fail(1, "%s", pqmsg(x->pg)); }
        /* true for a value the Parquet type cannot hold */
        const char *expr = k == PGCOPY_NUMERIC ? "%s = 'NaN'"
                         : k == PGCOPY_DATE ? "NOT (%s > '-infinity' AND %s < 'infinity')"
                         : "NOT (%s > '-infinity' AND %s < '294247-01-01 00:00:00+00')";
        delta_buf_printf(&q, "%scoalesce(bool_or(", any ? ", " : "SELECT ");
        delta_buf_printf(&q, expr, id, id);
        delta_buf_printf(&q, "), false)");
        PQfreemem(id);
        any = 1;
    }
    if (!any) return 0;
    delta_buf_printf(&q, " FROM %s", qname);
    PGresult *r = q.oom ? NULL : run(x->pg, qname, q.p, 0, NULL);
    delta_buf_free(&q);
    if (!r) return 1;
    int col = 0;
    for (size_t i = 0; i < t->n; i++) {
        pgcopy_kind k = t->cols[i].kind;
        if (k != PGCOPY_NUMERIC && k != PGCOPY_DATE && k != PGCOPY_TIMESTAMP) continue;
        if (PQgetvalue(r, 0, col++)[0] != 't') continue;
        fprintf(stderr, "lakefs: export: warning: %s column \"%s\" holds %s, which its Parquet type cannot: "
                "exported as string\n", qname, t->names[i], k == PGCOPY_NUMERIC ? "NaN" : k == PGCOPY_DATE ? "infinity" : "infinity or a time after the year 294246");
        const char *note;
        pgcopy_map(t->names[i], PGCOPY_OID_TEXT, -1, 0, 0, &t->cols[i], &t->pcs[i], &note);
        t->cols[i].cast_text = 1;
    }
    PQclear(r);
    return 0;
}

/* The data files of one table's export: each is spooled, then stored
 * under a new name as soon as the writer finishes it; the commit adds
 * them all.  Files stored but not committed are deleted on failure. */
typedef struct table_out {
    export_ctx *x;
    const char *spec;             /* "schema.table" */
    table_cols *t;
    spool sp;
    delta_add *adds;              /* stored files: path (owned), size, stats (owned) */
    size_t nadds;
    uint64_t rows;                /* rows in the stored files */
    char err[1024];               /* why storing a file failed ("" if it did not) */
} table_out;

static void table_out_free(table_out *o, int committed)
{
    for (size_t i = 0; i < o->nadds; i++) {
        if (!committed) {
            char key[700];
            snprintf(key, sizeof key, "%s/%s", o->spec, o->adds[i].path);
            os_delete(o->x->os, key);   /* stored but not committed: invisible, removed */
        }
        free((char *)o->adds[i].path);
        free((char *)o->adds[i].stats);
    }
    free(o->adds);
    if (o->sp.fd >= 0) close(o->sp.fd);
}

/* Store the finished file in the spool as SPEC/part-UUID.zstd.parquet,
 * remember its add action (W's rows and statistics), empty the spool.
 * 0, or -errno with O->err set. */
static int store_file(table_out *o, pq_writer *w)
{
    char uuid[37], file[128], key[700];
    delta_uuid(uuid);
    snprintf(file, sizeof file, "part-%s.zstd.parquet", uuid);
    snprintf(key, sizeof key, "%s/%s", o->spec, file);
    delta_add *na = realloc(o->adds, (o->nadds + 1) * sizeof *na);
    if (!na) goto oom;
    o->adds = na;
    void *map = mmap(NULL, o->sp.size, PROT_READ, MAP_SHARED, o->sp.fd, 0);
    if (map == MAP_FAILED) {
        snprintf(o->err, sizeof o->err, "mapping the spooled Parquet file: %s", strerror(errno));
        return -errno;
    }
    int rc = os_put_if_absent(o->x->os, key, map, o->sp.size);
    munmap(map, o->sp.size);
    if (rc) {
        snprintf(o->err, sizeof o->err, "writing %s/%s: %s", os_url(o->x->os), key, strerror(-rc));
        return rc;
    }
    delta_buf stats = {0};
    build_stats(&stats, w, o->t->cols, o->t->pcs, o->t->n);
    char *path = strdup(file);
    if (stats.oom || !path) {
        free(path);
        delta_buf_free(&stats);
        os_delete(o->x->os, key);
        goto oom;
    }
    o->adds[o->nadds++] = (delta_add){path, o->sp.size, stats.p};
    o->rows += pq_num_rows(w);
    if (ftruncate(o->sp.fd, 0) || lseek(o->sp.fd, 0, SEEK_SET) < 0) {
        snprintf(o->err, sizeof o->err, "emptying the spool file: %s", strerror(errno));
        return -errno;
    }
    o->sp.size = 0;
    return 0;
oom:
    snprintf(o->err, sizeof o->err, "out of memory");
    return -ENOMEM;
}

/* pq_options.file_done: store the file that filled up; say so (a large
 * table's progress). */
static int file_full(void *arg, pq_writer *w)
{
    table_out *o = arg;
    uint64_t rows = pq_num_rows(w), size = o->sp.size;
    int rc = store_file(o, w);
    if (rc == 0) {
        printf("%s: data file %zu stored, %" PRIu64 " rows, %" PRIu64 " bytes\n", o->spec, o->nadds, rows, size);
        fflush(stdout);
    }
    return rc;
}

/* COPY the table's rows through pgcopy into W; 1 on error (printed: the
 * failure to store a data file, O->err, else the decoder's). */
static int copy_rows(export_ctx *x, const char *qname, table_cols *t, pq_writer *w, const table_out *o)
{
    delta_buf q = {0};
    delta_buf_printf(&q, "COPY (SELECT ");
    for (size_t i = 0; i < t->n; i++) {
        char *id = PQescapeIdentifier(x->pg, t->names[i], strlen(t->names[i]));
        if (!id) { delta_buf_free(&q); return export_fail(1, "%s", pqmsg(x->pg)); }
        delta_buf_printf(&q, "%s%s%s", i ? ", " : "", id, t->cols[i].cast_text ? "::text" : "");
        PQfreemem(id);
    }
    delta_buf_printf(&q, " FROM %s) TO STDOUT (FORMAT binary)", qname);
    if (q.oom) { delta_buf_free(&q); return export_fail(1, "out of memory"); }
    PGresult *r = PQexec(x->pg, q.p);
    delta_buf_free(&q);
    if (PQresultStatus(r) != PGRES_COPY_OUT) {
        export_fail(1, "%s: COPY: %s", qname, pqmsg(x->pg));
        PQclear(r);
        return 1;
    }
    PQclear(r);
    pgcopy *p;
    if (pgcopy_new(t->cols, (const char *const *)t->names, t->n, w, &p)) return export_fail(1, "out of memory");
    int rc = 0, n;
    char *buf;
    while ((n = PQgetCopyData(x->pg, &buf, 0)) > 0) {
        if (!rc && pgcopy_feed(p, buf, (size_t)n))
            rc = o->err[0] ? export_fail(1, "%s: %s", qname, o->err) : export_fail(1, "%s: %s", qname, pgcopy_error(p));
        PQfreemem(buf);
    }
    if (n == -2 && !rc) rc = export_fail(1, "%s: COPY: %s", qname, pqmsg(x->pg));
    while ((r = PQgetResult(x->pg))) {
        if (PQresultStatus(r) != PGRES_COMMAND_OK && !rc) rc = export_fail(1, "%s: COPY: %s", qname, pqmsg(x->pg));
        PQclear(r);
    }
    if (!rc && pgcopy_finish(p))
        rc = o->err[0] ? export_fail(1, "%s: %s", qname, o->err) : export_fail(1, "%s: %s", qname, pgcopy_error(p));
    pgcopy_free(p);
    return rc;
}

/* 1 if LOG's newest version is X's branch exported by the same run of the
 * same server at the same snapshot as X's, only at an earlier LSN: no
 * transaction has ended since (any commit or abort changes the snapshot's
 * xmax or in-progress list), so it holds exactly the rows X would read --
 * the LSN of a live server moves on without a transaction (checkpoints,
 * the standby snapshots that bgwriter logs, hint bits).  The same server
 * run rules out a restart (unlogged tables emptied) and another server
 * whose transaction ids happen to coincide. */
static int unchanged_since(const delta_log *log, const export_ctx *x, int64_t txn_version)
{
    const delta_origin *o = &log->origin;
    return log->version >= 0 && o->branch && o->snapshot && o->server_started && o->lsn_text &&
           o->lsn == txn_version && o->lsn <= (int64_t)x->lsn && o->timeline == x->timeline &&
           !strcmp(o->branch, x->branch) && !strcmp(o->snapshot, x->snapshot) &&
           !strcmp(o->server_started, x->server_started);
}

/* Export SPEC ("schema.table"); 1 on error (printed). */
static int export_table(export_ctx *x, const char *spec)
{
    const char *dot = strchr(spec, '.');
    char schema[256], table[256];
    snprintf(schema, sizeof schema, "%.*s", (int)(dot - spec), spec);
    snprintf(table, sizeof table, "%s", dot + 1);
    char *qs = PQescapeIdentifier(x->pg, schema, strlen(schema)), *qt = PQescapeIdentifier(x->pg, table, strlen(table));
    char qname[600];
    snprintf(qname, sizeof qname, "%s.%s", qs ? qs : "?", qt ? qt : "?");
    PQfreemem(qs);
    PQfreemem(qt);

    char err[1024], app_id[600];
    snprintf(app_id, sizeof app_id, "lakefs:%s:%s", x->branch, spec);
    delta_log log;
    int rc = delta_load(x->os, spec, &log, err, sizeof err);
    if (rc) return export_fail(1, "%s", err);
    int64_t done = delta_txn_version(&log, app_id);
    if (log.version >= 0 && done == (int64_t)x->lsn) {
        printf("%s: version %" PRId64 " already holds %s at %s: nothing to do\n", spec, log.version, x->branch,
               x->lsn_text);
        delta_log_free(&log);
        return 0;
    }
    if (unchanged_since(&log, x, done)) {
        printf("%s: version %" PRId64 " already holds %s at %s, and no transaction has ended since (now %s): "
               "nothing to do\n", spec, log.version, x->branch, log.origin.lsn_text, x->lsn_text);
        delta_log_free(&log);
        return 0;
    }

    table_cols t = {0};
    pq_writer *w = NULL;
    table_out o = {.x = x, .spec = spec, .t = &t, .sp = {.fd = -1}};
    int committed = 0;
    double t0 = export_mono_s();
    if ((rc = table_columns(x, schema, table, qname, &t)) || (rc = check_unrepresentable(x, qname, &t))) goto out;
    if ((o.sp.fd = spool_open()) < 0) {
        rc = export_fail(1, "a temporary file in %s: %s (set TMPDIR)", getenv("TMPDIR") ? getenv("TMPDIR") : "/var/tmp",
                   strerror(-o.sp.fd));
        goto out;
    }
    pq_options opt = {.row_group_bytes = x->row_group_bytes, .file_bytes = x->file_bytes,
                      .file_done = file_full, .file_arg = &o};
    if (pq_open(t.pcs, t.n, &opt, spool_write, &o.sp, &w)) {
        rc = export_fail(1, "%s: %s", qname, w ? pq_error(w) : "out of memory");
        goto out;
    }
    if ((rc = copy_rows(x, qname, &t, w, &o))) goto out;
    if (pq_finish(w)) { rc = export_fail(1, "%s: %s", qname, pq_error(w)); goto out; }
    /* the last file (or the only one), then the commit that makes them visible */
    if (store_file(&o, w)) { rc = export_fail(1, "%s: %s", qname, o.err); goto out; }

    delta_buf info = {0};
    delta_field *fields = calloc(t.n, sizeof *fields);
    for (size_t i = 0; fields && i < t.n; i++) fields[i] = (delta_field){t.names[i], t.cols[i].spark};
    delta_buf_printf(&info, "\"lakefs\":{\"branch\":");
    delta_buf_json(&info, x->branch, strlen(x->branch));
    delta_buf_printf(&info, ",\"timeline\":%d,\"lsn\":\"%s\",\"lsnNumber\":%" PRIu64 ",\"snapshot\":\"%s\",\"serverStarted\":",
                     x->timeline, x->lsn_text, x->lsn, x->snapshot);
    delta_buf_json(&info, x->server_started, strlen(x->server_started));
    delta_buf_printf(&info, ",\"rows\":%" PRIu64 "}", o.rows);
    delta_commit_args a = {.fields = fields, .nfields = t.n, .adds = o.adds, .nadds = o.nadds, .app_id = app_id,
                           .txn_version = (int64_t)x->lsn, .info = info.p, .now_ms = now_ms()};
    if (!fields || info.oom) rc = export_fail(1, "out of memory");
    else if (delta_commit(x->os, spec, &log, &a, err, sizeof err)) rc = export_fail(1, "%s", err);
    else {
        double dt = export_mono_s() - t0;
        uint64_t bytes = 0;
        for (size_t i = 0; i < o.nadds; i++) bytes += o.adds[i].size;
        printf("%s: version %" PRId64 ", %" PRIu64 " rows, %zu file%s, %" PRIu64 " bytes, %.2f s (%.0f rows/s), "
               "%s at %s\n", spec, log.version + 1, o.rows, o.nadds, o.nadds == 1 ? "" : "s", bytes, dt,
               dt > 0 ? (double)o.rows / dt : 0.0, x->branch, x->lsn_text);
        committed = 1;            /* the files stay */
    }
    free(fields);
    delta_buf_free(&info);
out:
    table_out_free(&o, committed);
    pq_free(w);
    cols_free(&t);
    delta_log_free(&log);
    return rc;
}


/* ------------------------------------------------------------ the point */

/* 1 if every table's Delta log already holds V's point for BRANCH (each
 * told so on stdout); 0 otherwise, or on any error (export_table reports). */
static int all_done(objstore *os, const char *branch, const char *const *tables, size_t n, const view_pg *v)
{
    for (size_t i = 0; i < n; i++) {
        char err[1024], app_id[600];
        delta_log log;
        snprintf(app_id, sizeof app_id, "lakefs:%s:%s", branch, tables[i]);
        if (delta_load(os, tables[i], &log, err, sizeof err)) return 0;
        int done = log.version >= 0 && delta_txn_version(&log, app_id) == (int64_t)v->lsn;
        delta_log_free(&log);
        if (!done) return 0;
    }
    for (size_t i = 0; i < n; i++)
        printf("%s: already holds %s at %s: nothing to do\n", tables[i], branch, v->lsn_text);
    return 1;
}

/* ------------------------------------------------------------ command */

/* SIZE like 64M, 512K, 1G into *OUT; -1 if malformed. */
static int parse_bytes(const char *s, size_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s) return -1;
    if (*end == 'K' || *end == 'k') { v <<= 10; end++; }
    else if (*end == 'M' || *end == 'm') { v <<= 20; end++; }
    else if (*end == 'G' || *end == 'g') { v <<= 30; end++; }
    if (*end || v == 0) return -1;
    *out = (size_t)v;
    return 0;
}

/* The target's object store; file:// directories are created. */
static int open_target(const char *url, objstore **os)
{
    char err[512];
    if (!strncmp(url, "file://", 7)) {
        char path[4096];
        snprintf(path, sizeof path, "%s", url + 7);
        for (char *p = path + 1; *p; p++) {
            if (*p != '/') continue;
            *p = 0;
            mkdir(path, 0755);
            *p = '/';
        }
        mkdir(path, 0755);
    }
    if (os_open(url, os, err, sizeof err)) return export_fail(1, "--to %s: %s", url, err);
    return 0;
}

/* With --dsn: refuse a server whose data directory is another branch's
 * (MOUNT/branches/NAME[@POINT]); warn when it cannot be told.  1 on
 * refusal (printed). */
static int dsn_branch_check(PGconn *pg, const char *branch)
{
    PGresult *r = PQexec(pg, "SELECT current_setting('data_directory')");
    char dir[4096] = "";
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
        snprintf(dir, sizeof dir, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    if (!dir[0]) {
        fprintf(stderr, "lakefs: export: warning: cannot read the --dsn server's data_directory (%s): recording the "
                "export as branch %s's without checking\n", pqmsg(pg), branch);
        return 0;
    }
    char real[PATH_MAX];
    const char *d = dir;
    for (int pass = 0; pass < 2; pass++) {
        size_t len = strlen(d);
        while (len > 1 && d[len - 1] == '/') len--;
        const char *name = d + len;
        while (name > d && name[-1] != '/') name--;
        static const char marker[] = "/branches/";
        size_t ml = sizeof marker - 1;
        if ((size_t)(name - d) >= ml && !strncmp(name - ml, marker, ml)) {
            size_t nl = strcspn(name, "@/");
            if (name[nl] == '@')  /* its insert LSN is past the point, on its own timeline */
                return export_fail(1, "--dsn: that server runs on the time-travel view %.*s (data directory %s): export "
                             "that point with --at instead", (int)strcspn(name, "/"), name, dir);
            if (nl > len - (size_t)(name - d)) nl = len - (size_t)(name - d);
            if (strlen(branch) == nl && !strncmp(name, branch, nl)) return 0;
            return export_fail(1, "--dsn: that server runs on branch %.*s (data directory %s), not %s: export %.*s, or "
                         "connect to %s's server", (int)nl, name, dir, branch, (int)nl, name, branch);
        }
        if (pass || !realpath(dir, real)) break;   /* a symbolic link to the branch, on this machine */
        d = real;
    }
    fprintf(stderr, "lakefs: export: warning: the --dsn server's data directory %s is not a lakefs branch "
            "(MOUNT/branches/NAME): recording the export as branch %s's without checking\n", dir, branch);
    return 0;
}

int export_main(int argc, char **argv)
{
    const char *branch = NULL, *to = NULL, *dsn = NULL, *at = NULL, *repo = NULL, *rgs = NULL, *dbname = NULL,
               *fss = NULL;
    view_pg v = {0};
    const char **tables = calloc((size_t)argc, sizeof *tables);
    size_t ntables = 0;
    if (!tables) return export_fail(1, "out of memory");
    int status = 2;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) { fputs(usage_export, stdout); status = 0; goto done; }
        static const char *flags[] = {"--table", "--to", "--dsn", "--at", "--repo", "--row-group-size", "--dbname",
                                      "--file-size"};
        const char **vals[] = {NULL, &to, &dsn, &at, &repo, &rgs, &dbname, &fss};
        int known = 0;
        for (int f = 0; f < 8 && !known; f++) {
            size_t fl = strlen(flags[f]);
            if (strncmp(arg, flags[f], fl) || (arg[fl] && arg[fl] != '=')) continue;
            known = 1;
            const char *v;
            if (arg[fl] == '=') v = arg + fl + 1;
            else if (i + 1 < argc) v = argv[++i];
            else { export_fail(2, "%s needs a value (see lakefs export --help)", flags[f]); goto done; }
            if (!*v) { export_fail(2, "%s needs a non-empty value", flags[f]); goto done; }
            if (f == 0) tables[ntables++] = v;
            else *vals[f] = v;
        }
        if (known) continue;
        if (arg[0] == '-' && arg[1]) { export_fail(2, "unknown flag '%s' (see lakefs export --help)", arg); goto done; }
        if (branch) { export_fail(2, "one BRANCH only ('%s' and '%s'; see lakefs export --help)", branch, arg); goto done; }
        branch = arg;
    }
    if (!branch) { export_fail(2, "name the BRANCH to export (see lakefs export --help)"); goto done; }
    if (!ntables) { export_fail(2, "name at least one --table SCHEMA.TABLE"); goto done; }
    for (size_t i = 0; i < ntables; i++) {
        const char *dot = strchr(tables[i], '.');
        if (!dot || dot == tables[i] || !dot[1] || strlen(tables[i]) > 200) {
            export_fail(2, "--table %s: give SCHEMA.TABLE, e.g. public.accounts", tables[i]);
            goto done;
        }
        if (!key_name_ok(tables[i])) {
            export_fail(2, "--table %s: only names of A-Z a-z 0-9 _ - can be exported for now (they name the "
                  "Delta table's directory)", tables[i]);
            goto done;
        }
    }
    if (!to) { export_fail(2, "say where the Delta tables go: --to file:///dir or s3://bucket/prefix"); goto done; }
    size_t row_group = 0;
    if (rgs && parse_bytes(rgs, &row_group)) { export_fail(2, "--row-group-size %s: give bytes, e.g. 64M", rgs); goto done; }
    size_t file_size = DEFAULT_FILE_BYTES;
    if (fss && parse_bytes(fss, &file_size)) { export_fail(2, "--file-size %s: give bytes, e.g. 128M", fss); goto done; }
    if (!dsn && !at) {
        export_fail(2, "say which point of %s to export: --at LSN|TIME (a time-travel view), or --dsn CONNINFO of a "
                 "server on it", branch);
        goto done;
    }
    if (dsn && at) { export_fail(2, "--at and --dsn exclude each other: with --dsn the point is the server's present"); goto done; }
    if (dsn && dbname) { export_fail(2, "--dbname goes with --at; with --dsn say dbname=... in CONNINFO"); goto done; }

    status = 1;
    objstore *os = NULL;
    if (open_target(to, &os)) goto done;
    if (!dsn) {
        if (export_view_resolve(branch, at, repo, &v)) { os_close(os); goto done; }
        if (all_done(os, branch, tables, ntables, &v)) {   /* the same point again: no server needed */
            os_close(os);
            status = 0;
            goto done;
        }
        if (export_view_start(dbname ? dbname : "postgres", &v)) {
            export_view_stop(&v);
            os_close(os);
            goto done;
        }
        dsn = v.dsn;
    }
    PGconn *pg = PQconnectdb(dsn);
    if (PQstatus(pg) != CONNECTION_OK) {
        export_fail(1, "--dsn: cannot connect: %s", pqmsg(pg));
        PQfinish(pg);
        os_close(os);
        goto done;
    }
    PGresult *r = NULL;
    export_ctx x = {.pg = pg, .os = os, .branch = branch, .row_group_bytes = row_group, .file_bytes = file_size};
    if (!v.pid && dsn_branch_check(pg, branch)) goto close;
    if (PQsetClientEncoding(pg, "UTF8")) { export_fail(1, "client encoding UTF8: %s", pqmsg(pg)); goto close; }
    static const char *settings[] = {"SET DateStyle = ISO", "SET IntervalStyle = postgres", "SET TimeZone = 'UTC'",
                                     "SET extra_float_digits = 3", "SET statement_timeout = 0"};
    for (size_t i = 0; i < sizeof settings / sizeof settings[0]; i++) {
        if (!(r = run(pg, settings[i], settings[i], 0, NULL))) goto close;
        PQclear(r);
    }
    int view_tli = 0;
    if (v.pid) {
        /* the view's server promoted itself onto a new timeline at the point; the
         * timeline the point lies on is the parent named by the last line of its
         * history file (asked before the snapshot: an error here must not abort it) */
        r = PQexec(pg, "SELECT (regexp_match(pg_read_file('pg_wal/' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)"
                       " || '.history'), '(\\d+)\\t[0-9A-F]+/[0-9A-F]+\\t[^\\n]*\\n?$'))[1]");
        if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 && !PQgetisnull(r, 0, 0))
            view_tli = atoi(PQgetvalue(r, 0, 0));
        else
            fprintf(stderr, "lakefs: export: warning: the timeline of %s at %s is unknown (recorded as 0): %s\n",
                    branch, v.lsn_text, PQresultStatus(r) == PGRES_TUPLES_OK ? "no history file" : pqmsg(pg));
        PQclear(r);
    }
    if (!(r = run(pg, "BEGIN", "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", 0, NULL))) goto close;
    PQclear(r);
    if (!(r = run(pg, "the snapshot's point",
                  "SELECT CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_insert_lsn() END,"
                  " (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_insert_lsn() END"
                  "  - '0/0')::numeric::text, txid_current_snapshot()::text,"
                  " (SELECT timeline_id FROM pg_control_checkpoint()), pg_postmaster_start_time()::text", 0, NULL)))
        goto close;
    x.lsn_text = PQgetvalue(r, 0, 0);
    x.lsn = strtoull(PQgetvalue(r, 0, 1), NULL, 10);
    x.snapshot = PQgetvalue(r, 0, 2);
    x.timeline = atoi(PQgetvalue(r, 0, 3));
    x.server_started = PQgetvalue(r, 0, 4);
    if (v.pid) {                  /* a view stands at its point, whatever it has written since */
        x.lsn_text = v.lsn_text;
        x.lsn = v.lsn;
        x.timeline = view_tli;
    }
    status = 0;
    for (size_t i = 0; i < ntables; i++)
        if (export_table(&x, tables[i])) status = 1;
    struct rusage ru;
    if (!getrusage(RUSAGE_SELF, &ru))
        printf("peak memory: %ld MiB resident\n", (ru.ru_maxrss + 1023) / 1024);
    PQclear(r);
    r = PQexec(pg, "COMMIT");
    PQclear(r);
close:
    PQfinish(pg);
    export_view_stop(&v);
    os_close(os);
done:
    free(tables);
    return status;
}

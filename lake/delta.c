/*
 * delta.c -- read and write the Delta Lake log of one table (see delta.h).
 *
 * Reading replays _delta_log/00..0.json to the newest version through a
 * small JSON parser: recursive descent over one line, depth-bounded,
 * every read bounds-checked, strings decoded (\u escapes and surrogate
 * pairs to UTF-8).  Writing builds the commit in memory and stores it with
 * os_put_if_absent, the one atomic step that makes a version exist.
 */
#include "delta.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------ buffer */

#define PUTS(b, lit) delta_buf_put((b), (lit), sizeof(lit) - 1)

/* Room for N more bytes (and a NUL); 0 or -1 (oom set). */
static int buf_room(delta_buf *b, size_t n)
{
    if (b->oom) return -1;
    if (b->len + n + 1 <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n + 1) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) { b->oom = 1; return -1; }
    b->p = p;
    b->cap = cap;
    return 0;
}

void delta_buf_put(delta_buf *b, const char *s, size_t n)
{
    if (buf_room(b, n)) return;
    if (n) memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

void delta_buf_printf(delta_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || buf_room(b, (size_t)n)) { b->oom = 1; return; }
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void delta_buf_json(delta_buf *b, const char *s, size_t n)
{
    PUTS(b, "\"");
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') continue;
        delta_buf_put(b, s + run, i - run);
        run = i + 1;
        if (c == '"') PUTS(b, "\\\"");
        else if (c == '\\') PUTS(b, "\\\\");
        else if (c == '\n') PUTS(b, "\\n");
        else if (c == '\t') PUTS(b, "\\t");
        else delta_buf_printf(b, "\\u%04x", c);
    }
    delta_buf_put(b, s + run, n - run);
    PUTS(b, "\"");
}

void delta_buf_free(delta_buf *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}

void delta_uuid(char out[37])
{
    uint8_t r[16];
    size_t got = 0;
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        while (got < sizeof r) {
            ssize_t n = read(fd, r + got, sizeof r - got);
            if (n <= 0) break;
            got += (size_t)n;
        }
        close(fd);
    }
    if (got < sizeof r) {          /* no /dev/urandom: time and pid, still unique enough per process */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t x = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^ ((uint64_t)getpid() << 40);
        for (size_t i = 0; i < sizeof r; i++) { x ^= x << 13; x ^= x >> 7; x ^= x << 17; r[i] = (uint8_t)x; }
    }
    r[6] = (uint8_t)((r[6] & 0x0f) | 0x40);
    r[8] = (uint8_t)((r[8] & 0x3f) | 0x80);
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
             r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11], r[12], r[13], r[14], r[15]);
}

/* ------------------------------------------------------------ JSON */

typedef struct jp {
    const char *s, *end;
    int depth;
} jp;

#define JP_MAX_DEPTH 64

static void jws(jp *j)
{
    while (j->s < j->end && (*j->s == ' ' || *j->s == '\t' || *j->s == '\n' || *j->s == '\r')) j->s++;
}

static int jeat(jp *j, char c)
{
    jws(j);
    if (j->s < j->end && *j->s == c) { j->s++; return 1; }
    return 0;
}

static int hex4(const char *s, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = s[i];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
        else return -1;
    }
    *out = v;
    return 0;
}

/* A string into OUT (NULL: skip).  0 or -1. */
static int jstring(jp *j, delta_buf *out)
{
    if (!jeat(j, '"')) return -1;
    while (j->s < j->end) {
        char c = *j->s++;
        if (c == '"') return out && out->oom ? -1 : 0;
        if ((unsigned char)c < 0x20) return -1;
        if (c != '\\') { if (out) delta_buf_put(out, &c, 1); continue; }
        if (j->s >= j->end) return -1;
        char e = *j->s++;
        const char *map = strchr("\"\\/bfnrt", e);
        if (map && e) {
            static const char to[] = "\"\\/\b\f\n\r\t";
            if (out) delta_buf_put(out, &to[map - "\"\\/bfnrt"], 1);
            continue;
        }
        if (e != 'u' || j->end - j->s < 4) return -1;
        unsigned cp;
        if (hex4(j->s, &cp)) return -1;
        j->s += 4;
        if (cp >= 0xd800 && cp < 0xdc00) {
            unsigned lo;
            if (j->end - j->s < 6 || j->s[0] != '\\' || j->s[1] != 'u' || hex4(j->s + 2, &lo) ||
                lo < 0xdc00 || lo > 0xdfff)
                return -1;
            j->s += 6;
            cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
        } else if (cp >= 0xdc00 && cp < 0xe000) {
            return -1;
        }
        char u[4];
        size_t n;
        if (cp < 0x80) { u[0] = (char)cp; n = 1; }
        else if (cp < 0x800) { u[0] = (char)(0xc0 | cp >> 6); u[1] = (char)(0x80 | (cp & 0x3f)); n = 2; }
        else if (cp < 0x10000) { u[0] = (char)(0xe0 | cp >> 12); u[1] = (char)(0x80 | (cp >> 6 & 0x3f)); u[2] = (char)(0x80 | (cp & 0x3f)); n = 3; }
        else { u[0] = (char)(0xf0 | cp >> 18); u[1] = (char)(0x80 | (cp >> 12 & 0x3f)); u[2] = (char)(0x80 | (cp >> 6 & 0x3f)); u[3] = (char)(0x80 | (cp & 0x3f)); n = 4; }
        if (out) delta_buf_put(out, u, n);
    }
    return -1;
}

/* A number; *OUT its value when it is an integer that fits (else *ISINT 0). */
static int jnumber(jp *j, int64_t *out, int *isint)
{
    jws(j);
    const char *st = j->s;
    if (j->s < j->end && *j->s == '-') j->s++;
    const char *digits = j->s;
    while (j->s < j->end && *j->s >= '0' && *j->s <= '9') j->s++;
    if (j->s == digits) return -1;
    int integral = 1;
    if (j->s < j->end && *j->s == '.') {
        integral = 0;
        j->s++;
        const char *f = j->s;
        while (j->s < j->end && *j->s >= '0' && *j->s <= '9') j->s++;
        if (j->s == f) return -1;
    }
    if (j->s < j->end && (*j->s == 'e' || *j->s == 'E')) {
        integral = 0;
        j->s++;
        if (j->s < j->end && (*j->s == '+' || *j->s == '-')) j->s++;
        const char *f = j->s;
        while (j->s < j->end && *j->s >= '0' && *j->s <= '9') j->s++;
        if (j->s == f) return -1;
    }
    *isint = 0;
    if (integral && j->s - st < 20) {
        char tmp[24];
        memcpy(tmp, st, (size_t)(j->s - st));
        tmp[j->s - st] = 0;
        *out = strtoll(tmp, NULL, 10);
        *isint = 1;
    }
    return 0;
}

static int jskip(jp *j);

/* An object, calling MEMBER(arg, key, j) for each member (which must
 * consume the value); 0 or -1. */
static int jobject(jp *j, int (*member)(void *, const char *, jp *), void *arg)
{
    if (!jeat(j, '{')) return -1;
    if (++j->depth > JP_MAX_DEPTH) return -1;
    if (jeat(j, '}')) { j->depth--; return 0; }
    delta_buf key = {0};
    int rc = -1;
    for (;;) {
        key.len = 0;
        if (key.p) key.p[0] = 0;
        if (jstring(j, &key) || !jeat(j, ':')) break;
        if (member ? member(arg, key.p ? key.p : "", j) : jskip(j)) break;
        if (jeat(j, ',')) continue;
        if (jeat(j, '}')) rc = 0;
        break;
    }
    delta_buf_free(&key);
    j->depth--;
    return rc;
}

static int jskip(jp *j)
{
    jws(j);
    if (j->s >= j->end) return -1;
    char c = *j->s;
    if (c == '{') return jobject(j, NULL, NULL);
    if (c == '"') return jstring(j, NULL);
    if (c == '[') {
        j->s++;
        if (++j->depth > JP_MAX_DEPTH) return -1;
        int rc = 0;
        if (!jeat(j, ']')) {
            do {
                if (jskip(j)) return -1;
            } while (jeat(j, ','));
            rc = jeat(j, ']') ? 0 : -1;
        }
        j->depth--;
        return rc;
    }
    static const char *const words[] = {"true", "false", "null"};
    for (int i = 0; i < 3; i++) {
        size_t n = strlen(words[i]);
        if ((size_t)(j->end - j->s) >= n && !memcmp(j->s, words[i], n)) { j->s += n; return 0; }
    }
    int64_t v;
    int isint;
    return jnumber(j, &v, &isint);
}

/* ------------------------------------------------------------ replay */

typedef struct action {
    delta_buf path, app_id, id, schema;
    int64_t version, min_reader;
    int has_version;
} action;

/* Members of an action object. */
static int action_member(void *arg, const char *key, jp *j)
{
    action *a = arg;
    jws(j);
    if (!strcmp(key, "path")) return jstring(j, &a->path);
    if (!strcmp(key, "appId")) return jstring(j, &a->app_id);
    if (!strcmp(key, "id")) return jstring(j, &a->id);
    if (!strcmp(key, "schemaString")) return jstring(j, &a->schema);
    if (!strcmp(key, "version") || !strcmp(key, "minReaderVersion")) {
        int64_t v;
        int isint;
        if (jnumber(j, &v, &isint) || !isint) return -1;
        if (key[0] == 'v') { a->version = v; a->has_version = 1; }
        else a->min_reader = v;
        return 0;
    }
    return jskip(j);
}

static char *bufdup(const delta_buf *b) { return strdup(b->p ? b->p : ""); }

/* Free O's members; all unknown again. */
static void origin_free(delta_origin *o)
{
    free(o->branch);
    free(o->lsn_text);
    free(o->snapshot);
    free(o->server_started);
    *o = (delta_origin){.lsn = -1, .timeline = -1};
}

/* String member value into *DST (replacing an earlier one; a value of
 * another type is skipped); 0 or -1. */
static int origin_string(jp *j, char **dst)
{
    if (j->s >= j->end || *j->s != '"') return jskip(j);
    delta_buf b = {0};
    int rc = jstring(j, &b);
    if (!rc && !b.oom) {
        free(*dst);
        *dst = bufdup(&b);
        rc = *dst ? 0 : -1;
    } else {
        rc = -1;
    }
    delta_buf_free(&b);
    return rc;
}

/* Members of commitInfo.lakefs; others skipped. */
static int origin_member(void *arg, const char *key, jp *j)
{
    delta_origin *o = arg;
    jws(j);
    if (!strcmp(key, "branch")) return origin_string(j, &o->branch);
    if (!strcmp(key, "lsn")) return origin_string(j, &o->lsn_text);
    if (!strcmp(key, "snapshot")) return origin_string(j, &o->snapshot);
    if (!strcmp(key, "serverStarted")) return origin_string(j, &o->server_started);
    if (!strcmp(key, "lsnNumber") || !strcmp(key, "timeline")) {
        int64_t v;
        int isint;
        if (j->s >= j->end || (*j->s != '-' && (*j->s < '0' || *j->s > '9'))) return jskip(j);   /* not ours */
        if (jnumber(j, &v, &isint)) return -1;
        if (isint) *(key[0] == 'l' ? &o->lsn : &o->timeline) = v;
        return 0;
    }
    return jskip(j);
}

/* Members of commitInfo: its lakefs object, if any (else skipped). */
static int commit_info_member(void *arg, const char *key, jp *j)
{
    jws(j);
    if (strcmp(key, "lakefs") || j->s >= j->end || *j->s != '{') return jskip(j);
    return jobject(j, origin_member, arg);
}

typedef struct line_ctx {
    delta_log *log;
    char *err;
    size_t errlen;
    const char *what;             /* the commit's key, for messages */
    int bad;                      /* 1: a semantic error already in ERR */
} line_ctx;

/* Drop PATH from the file set (if there). */
static void files_remove(delta_log *l, const char *path)
{
    for (size_t i = 0; i < l->nfiles; i++)
        if (!strcmp(l->files[i], path)) {
            free(l->files[i]);
            l->files[i] = l->files[--l->nfiles];
            return;
        }
}

/* One top-level member of a log line: the action KEY. */
static int line_member(void *arg, const char *key, jp *j)
{
    line_ctx *c = arg;
    delta_log *l = c->log;
    int kind = !strcmp(key, "add") ? 1 : !strcmp(key, "remove") ? 2 : !strcmp(key, "txn") ? 3 :
               !strcmp(key, "metaData") ? 4 : !strcmp(key, "protocol") ? 5 : 0;
    if (!strcmp(key, "commitInfo")) {
        jws(j);
        return j->s < j->end && *j->s == '{' ? jobject(j, commit_info_member, &l->origin) : jskip(j);
    }
    if (!kind) return jskip(j);
    action a = {0};
    int rc = jobject(j, action_member, &a);
    if (!rc && (a.path.oom || a.app_id.oom || a.id.oom || a.schema.oom)) rc = -1;
    if (!rc) {
        if ((kind == 1 || kind == 2) && !a.path.p) {
            snprintf(c->err, c->errlen, "%s: an %s action without a path", c->what, key);
            c->bad = 1;
            rc = -1;
        } else if (kind == 1 || kind == 2) {
            files_remove(l, a.path.p);
            if (kind == 1) {
                char **f = realloc(l->files, (l->nfiles + 1) * sizeof *f);
                if (!f || !(f[l->nfiles] = bufdup(&a.path))) { if (f) l->files = f; rc = -1; }
                else { l->files = f; l->nfiles++; }
            }
        } else if (kind == 3) {
            if (!a.app_id.p || !a.has_version) {
                snprintf(c->err, c->errlen, "%s: a txn action without appId or version", c->what);
                c->bad = 1;
                rc = -1;
            } else {
                size_t i;
                for (i = 0; i < l->ntxns && strcmp(l->txns[i].app_id, a.app_id.p); i++) {}
                if (i == l->ntxns) {
                    delta_txn *t = realloc(l->txns, (l->ntxns + 1) * sizeof *t);
                    if (!t || !(t[i].app_id = bufdup(&a.app_id))) { if (t) l->txns = t; rc = -1; }
                    else { l->txns = t; l->ntxns++; }
                }
                if (!rc) l->txns[i].version = a.version;
            }
        } else if (kind == 4) {
            free(l->table_id);
            free(l->schema);
            l->table_id = bufdup(&a.id);
            l->schema = bufdup(&a.schema);
            if (!l->table_id || !l->schema) rc = -1;
        } else if (a.min_reader > 1) {
            snprintf(c->err, c->errlen, "%s: the table needs Delta reader version %" PRId64
                     " (this exporter reads and writes version 1); export to another URL", c->what, a.min_reader);
            c->bad = 1;
            rc = -1;
        }
    }
    delta_buf_free(&a.path);
    delta_buf_free(&a.app_id);
    delta_buf_free(&a.id);
    delta_buf_free(&a.schema);
    return rc;
}

void delta_log_free(delta_log *l)
{
    if (!l) return;
    for (size_t i = 0; i < l->nfiles; i++) free(l->files[i]);
    free(l->files);
    for (size_t i = 0; i < l->ntxns; i++) free(l->txns[i].app_id);
    free(l->txns);
    free(l->table_id);
    free(l->schema);
    origin_free(&l->origin);
    *l = (delta_log){.version = -1, .origin = l->origin};   /* empty: origin_free left it unknown */
}

int64_t delta_txn_version(const delta_log *l, const char *app_id)
{
    for (size_t i = 0; i < l->ntxns; i++)
        if (!strcmp(l->txns[i].app_id, app_id)) return l->txns[i].version;
    return -1;
}

/* KEY = PREFIX/_delta_log/ + 20 digits + ".json": its version, else -1. */
static int64_t commit_version(const char *key, size_t dirlen)
{
    const char *s = key + dirlen;
    if (strlen(s) != 25 || strcmp(s + 20, ".json")) return -1;
    int64_t v = 0;
    for (int i = 0; i < 20; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        if (v > (INT64_MAX - 9) / 10) return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

int delta_load(objstore *os, const char *prefix, delta_log *out, char *err, size_t errlen)
{
    *out = (delta_log){.version = -1, .origin = {.lsn = -1, .timeline = -1}};
    char dir[1100], tdir[1024];
    if (strlen(prefix) > 1000) {
        snprintf(err, errlen, "table path '%.40s...' is too long", prefix);
        return -ENAMETOOLONG;
    }
    snprintf(tdir, sizeof tdir, "%s%s", prefix, *prefix ? "/" : "");
    snprintf(dir, sizeof dir, "%s_delta_log/", tdir);
    char **keys = NULL;
    size_t n = 0;
    int rc = os_list(os, tdir, &keys, &n);
    if (rc) {
        snprintf(err, errlen, "listing %s/%s: %s", os_url(os), tdir, strerror(-rc));
        return rc;
    }
    size_t dirlen = strlen(dir);
    int64_t newest = -1, count = 0;
    int checkpoint = 0;
    for (size_t i = 0; i < n; i++) {
        if (strncmp(keys[i], dir, dirlen)) continue;
        int64_t v = commit_version(keys[i], dirlen);
        if (v >= 0) { count++; if (v > newest) newest = v; }
        else if (strstr(keys[i] + dirlen, "checkpoint")) checkpoint = 1;
    }
    if (newest < 0 && n > 0) {
        snprintf(err, errlen, "%s/%s holds %zu object(s) but no Delta log (%s*.json): not a Delta table; "
                 "export to an empty location", os_url(os), prefix, n, dir);
        rc = -ENOTDIR;
    } else if (newest >= 0 && checkpoint) {
        snprintf(err, errlen, "%s/%s: the Delta log has checkpoints, which this exporter does not read; "
                 "export to another location", os_url(os), prefix);
        rc = -EINVAL;
    } else if (newest >= 0 && count != newest + 1) {
        snprintf(err, errlen, "%s/%s: the Delta log has %" PRId64 " commits up to version %" PRId64
                 " (some are missing); export to another location", os_url(os), prefix, count, newest);
        rc = -EINVAL;
    }
    os_list_free(keys, n);
    if (rc) return rc;

    for (int64_t v = 0; v <= newest && !rc; v++) {
        char key[1200];
        snprintf(key, sizeof key, "%s%020" PRId64 ".json", dir, v);
        void *data = NULL;
        size_t len = 0;
        if ((rc = os_get(os, key, 0, UINT64_MAX, &data, &len))) {
            snprintf(err, errlen, "reading %s/%s: %s", os_url(os), key, strerror(-rc));
            break;
        }
        origin_free(&out->origin);   /* the newest commit's only */
        line_ctx c = {.log = out, .err = err, .errlen = errlen, .what = key};
        const char *p = data, *end = p + len;
        size_t lineno = 0;
        while (p < end && !rc) {
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            const char *le = nl ? nl : end;
            lineno++;
            jp j = {.s = p, .end = le};
            jws(&j);
            if (j.s < le) {
                if (jobject(&j, line_member, &c) || (jws(&j), j.s != le)) {
                    if (!c.bad)
                        snprintf(err, errlen, "%s/%s line %zu: not a Delta action (malformed JSON); "
                                 "export to another location", os_url(os), key, lineno);
                    rc = -EINVAL;
                }
            }
            p = nl ? nl + 1 : end;
        }
        free(data);
        out->version = v;
    }
    if (!rc && newest >= 0 && !out->schema) {
        snprintf(err, errlen, "%s/%s: the Delta log has no metaData action", os_url(os), prefix);
        rc = -EINVAL;
    }
    if (rc) delta_log_free(out);
    return rc;
}

/* ------------------------------------------------------------ commit */

/* The schemaString for FIELDS into B (not yet escaped). */
static void schema_json(delta_buf *b, const delta_field *f, size_t n)
{
    PUTS(b, "{\"type\":\"struct\",\"fields\":[");
    for (size_t i = 0; i < n; i++) {
        delta_buf_printf(b, "%s{\"name\":", i ? "," : "");
        delta_buf_json(b, f[i].name, strlen(f[i].name));
        delta_buf_printf(b, ",\"type\":\"%s\",\"nullable\":true,\"metadata\":{}}", f[i].type);
    }
    PUTS(b, "]}");
}

int delta_commit(objstore *os, const char *prefix, const delta_log *cur, const delta_commit_args *a,
                 char *err, size_t errlen)
{
    int64_t v = cur->version + 1;
    if (strlen(prefix) > 1000) {
        snprintf(err, errlen, "table path '%.40s...' is too long", prefix);
        return -ENAMETOOLONG;
    }
    delta_buf schema = {0}, b = {0};
    schema_json(&schema, a->fields, a->nfields);
    delta_buf_printf(&b, "{\"commitInfo\":{\"timestamp\":%" PRId64 ",\"operation\":\"WRITE\","
                     "\"operationParameters\":{\"mode\":\"%s\",\"partitionBy\":\"[]\"},"
                     "\"isBlindAppend\":%s,\"engineInfo\":\"lakefs\"%s%s}}\n",
                     a->now_ms, v ? "Overwrite" : "ErrorIfExists", cur->nfiles ? "false" : "true",
                     a->info ? "," : "", a->info ? a->info : "");
    int new_schema = !cur->schema || !schema.p || strcmp(cur->schema, schema.p);
    if (v == 0) PUTS(&b, "{\"protocol\":{\"minReaderVersion\":1,\"minWriterVersion\":2}}\n");
    if (v == 0 || new_schema) {
        char id[37];
        if (cur->table_id) snprintf(id, sizeof id, "%s", cur->table_id);
        else delta_uuid(id);
        PUTS(&b, "{\"metaData\":{\"id\":");
        delta_buf_json(&b, id, strlen(id));
        PUTS(&b, ",\"format\":{\"provider\":\"parquet\",\"options\":{}},\"schemaString\":");
        delta_buf_json(&b, schema.p ? schema.p : "", schema.len);
        delta_buf_printf(&b, ",\"partitionColumns\":[],\"configuration\":{},\"createdTime\":%" PRId64 "}}\n",
                         a->now_ms);
    }
    PUTS(&b, "{\"txn\":{\"appId\":");
    delta_buf_json(&b, a->app_id, strlen(a->app_id));
    delta_buf_printf(&b, ",\"version\":%" PRId64 ",\"lastUpdated\":%" PRId64 "}}\n", a->txn_version, a->now_ms);
    for (size_t i = 0; i < cur->nfiles; i++) {
        PUTS(&b, "{\"remove\":{\"path\":");
        delta_buf_json(&b, cur->files[i], strlen(cur->files[i]));
        delta_buf_printf(&b, ",\"deletionTimestamp\":%" PRId64 ",\"dataChange\":true,"
                         "\"extendedFileMetadata\":false}}\n", a->now_ms);
    }
    for (size_t i = 0; i < a->nadds; i++) {
        PUTS(&b, "{\"add\":{\"path\":");
        delta_buf_json(&b, a->adds[i].path, strlen(a->adds[i].path));
        delta_buf_printf(&b, ",\"partitionValues\":{},\"size\":%" PRIu64 ",\"modificationTime\":%" PRId64
                         ",\"dataChange\":true", a->adds[i].size, a->now_ms);
        if (a->adds[i].stats) {
            PUTS(&b, ",\"stats\":");
            delta_buf_json(&b, a->adds[i].stats, strlen(a->adds[i].stats));
        }
        PUTS(&b, "}}\n");
    }
    int rc = 0;
    char key[1100];
    snprintf(key, sizeof key, "%s%s_delta_log/%020" PRId64 ".json", prefix, *prefix ? "/" : "", v);
    if (schema.oom || b.oom) {
        snprintf(err, errlen, "out of memory building Delta commit %s", key);
        rc = -ENOMEM;
    } else if ((rc = os_put_if_absent(os, key, b.p, b.len)) == -EEXIST) {
        snprintf(err, errlen, "%s/%s exists: another writer committed version %" PRId64
                 " of this table meanwhile; run the export again", os_url(os), key, v);
    } else if (rc) {
        snprintf(err, errlen, "writing %s/%s: %s", os_url(os), key, strerror(-rc));
    }
    delta_buf_free(&schema);
    delta_buf_free(&b);
    return rc;
}

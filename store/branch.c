/*
 * branch.c -- branch metadata objects and the repository-level branch
 * operations: fork, list, delete, rename (formats and protocol: branch.h).
 *
 * Everything here works on the object store alone, never on a running
 * daemon: a branch mounted read-write is only seen through its lease.  The
 * caller (tools/lakefs.c) asks the daemon of a mounted parent for a
 * checkpoint first and forks from the manifest generation it names.
 *
 * The repository is read with one listing of branches/ (a "view"): per name
 * its newest manifest generation, metadata, deletion marker, and keys.  The
 * bytes unique to a branch are the sizes of the layers its newest manifest
 * names and no other branch's newest manifest does; until compaction and GC
 * exist every manifest names every older layer of its branch, so that is
 * exactly what deleting the branch frees.
 *
 * Deleting removes the branch's manifests first (the older ones, then the
 * newest, so that a crash never leaves the branch at an older state), then
 * its other objects, then the layers that no remaining branch uses, and the
 * marker last; running the delete again finishes an interrupted one.
 */
#include "branch.h"
#include "../util/crc32c.h"
#include "lease.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BRANCH_HEADER "lakefs-branch 1\n"
#define BRANCH_MARKER_BODY "lakefs-deleting 1\n"
#define BRANCH_TIME_MAX 253402300799LL   /* 9999-12-31T23:59:59Z */

int branch_name_valid(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > BRANCH_NAME_MAX || name[0] == '.' || name[0] == '-') return 0;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

/* ---- the metadata object ---- */

/* Format T (seconds since the epoch) as YYYY-MM-DDTHH:MM:SSZ into BUF (21+). */
static int branch_fmt_time(int64_t t, char *buf, size_t len)
{
    struct tm tm;
    time_t tt = (time_t)t;
    if (t < 0 || t > BRANCH_TIME_MAX || !gmtime_r(&tt, &tm)) return -EINVAL;
    return strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 20 ? 0 : -EINVAL;
}

int branch_meta_encode(const branch_meta *b, char **buf, size_t *len)
{
    char when[32], text[512];
    *buf = NULL;
    *len = 0;
    if ((b->parent[0] && !branch_name_valid(b->parent)) ||
        (!b->parent[0] && (b->point || b->parent_gen || b->at_lsn)) || (b->parent[0] && !b->parent_gen) ||
        branch_fmt_time(b->created, when, sizeof when))
        return -EINVAL;
    int n = snprintf(text, sizeof text, BRANCH_HEADER "parent %s\npoint %" PRIu64 "\nparent_gen %" PRIu64 "\n",
                     b->parent[0] ? b->parent : "-", b->point, b->parent_gen);
    if (b->at_lsn) n += snprintf(text + n, sizeof text - (size_t)n, "at_lsn %" PRIu64 "\n", b->at_lsn);
    n += snprintf(text + n, sizeof text - (size_t)n, "created %s\n", when);
    n += snprintf(text + n, sizeof text - (size_t)n, "crc %08x\n", crc32c(0, text, (size_t)n));
    if (!(*buf = strdup(text))) return -ENOMEM;
    *len = (size_t)n;
    return 0;
}

/* Consume the literal LIT at *P (before END); -1 if absent. */
static int branch_expect(const char **p, const char *end, const char *lit)
{
    size_t n = strlen(lit);
    if ((size_t)(end - *p) < n || memcmp(*p, lit, n)) return -1;
    *p += n;
    return 0;
}

/* Parse "NAME N\n" at *P, N a canonical decimal u64 (no sign, no leading zero). */
static int branch_field(const char **p, const char *end, const char *name, uint64_t *v)
{
    const char *s;
    uint64_t r = 0;
    if (branch_expect(p, end, name)) return -1;
    s = *p;
    if (s >= end || *s < '0' || *s > '9' || (*s == '0' && s + 1 < end && s[1] >= '0' && s[1] <= '9'))
        return -1;
    for (; s < end && *s >= '0' && *s <= '9'; s++) {
        unsigned d = (unsigned)(*s - '0');
        if (r > (UINT64_MAX - d) / 10) return -1;
        r = r * 10 + d;
    }
    *p = s;
    *v = r;
    return branch_expect(p, end, "\n");
}

int branch_meta_decode(const char *buf, size_t len, branch_meta *b)
{
    const char *p = buf, *end = buf + len, *line;
    char when[21], again[32];
    memset(b, 0, sizeof *b);
    if (branch_expect(&p, end, BRANCH_HEADER "parent ")) goto bad;
    line = p;
    while (p < end && *p != '\n') p++;
    if (p == end || p - line > BRANCH_NAME_MAX) goto bad;
    if (!(p - line == 1 && *line == '-')) {
        memcpy(b->parent, line, (size_t)(p - line));
        if (!branch_name_valid(b->parent)) goto bad;
    }
    p++;
    if (branch_field(&p, end, "point ", &b->point) || branch_field(&p, end, "parent_gen ", &b->parent_gen))
        goto bad;
    if (end - p >= 7 && !memcmp(p, "at_lsn ", 7) && (branch_field(&p, end, "at_lsn ", &b->at_lsn) || !b->at_lsn))
        goto bad;                 /* present only when not 0 */
    if (branch_expect(&p, end, "created ") || end - p < 21 || p[20] != '\n') goto bad;
    memcpy(when, p, 20);
    when[20] = 0;
    p += 21;
    /* canonical time: digits and separators in place, and formatting the
     * fields back gives the same text (so no month 13, no February 30) */
    static const char shape[] = "dddd-dd-ddTdd:dd:ddZ";
    struct tm tm = { 0 };
    for (int i = 0; i < 20; i++)
        if (shape[i] == 'd' ? (when[i] < '0' || when[i] > '9') : when[i] != shape[i]) goto bad;
    tm.tm_year = atoi(when) - 1900;
    tm.tm_mon = atoi(when + 5) - 1;
    tm.tm_mday = atoi(when + 8);
    tm.tm_hour = atoi(when + 11);
    tm.tm_min = atoi(when + 14);
    tm.tm_sec = atoi(when + 17);
    b->created = (int64_t)timegm(&tm);
    if (branch_fmt_time(b->created, again, sizeof again) || strcmp(again, when)) goto bad;
    if ((!b->parent[0] && (b->point || b->parent_gen || b->at_lsn)) || (b->parent[0] && !b->parent_gen)) goto bad;
    /* the crc line: exactly "crc " + 8 lowercase hex digits + "\n", the end */
    line = p;
    if (branch_expect(&p, end, "crc ") || end - p != 9 || p[8] != '\n') goto bad;
    uint32_t want = 0;
    for (int i = 0; i < 8; i++) {
        char c = p[i];
        if (c >= '0' && c <= '9') want = want << 4 | (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f') want = want << 4 | (uint32_t)(c - 'a' + 10);
        else goto bad;
    }
    if (crc32c(0, buf, (size_t)(line - buf)) != want) goto bad;
    return 0;
bad:
    memset(b, 0, sizeof *b);
    return -EINVAL;
}

int branch_meta_put(objstore *os, const char *name, const branch_meta *b)
{
    char key[128], *buf;
    size_t len;
    snprintf(key, sizeof key, "branches/%s/branch", name);
    int rc = branch_meta_encode(b, &buf, &len);
    if (rc) return rc;
    rc = os_put_if_absent(os, key, buf, len);
    free(buf);
    return rc;
}

int branch_meta_load(objstore *os, const char *name, branch_meta *b)
{
    char key[128];
    void *buf;
    size_t len;
    snprintf(key, sizeof key, "branches/%s/branch", name);
    int rc = os_get(os, key, 0, UINT64_MAX, &buf, &len);
    if (rc) return rc;
    rc = branch_meta_decode(buf, len, b) ? -EIO : 0;
    free(buf);
    return rc;
}

int branch_deleting(objstore *os, const char *name)
{
    char key[128];
    uint64_t size;
    snprintf(key, sizeof key, "branches/%s/deleting", name);
    int rc = os_head(os, key, &size);
    return rc == -ENOENT ? 0 : rc ? rc : 1;
}

/* ---- a view of the repository: one listing of branches/ ---- */

typedef struct name_ent {
    char name[BRANCH_NAME_MAX + 1];
    uint64_t gen;                 /* newest manifest generation, 0: none */
    int has_meta, deleting;
    branch_meta meta;
    manifest man;                 /* generation GEN, if any */
    uint64_t unique_bytes;
} name_ent;

typedef struct repo_view {
    char **keys;                  /* every key under branches/, sorted */
    size_t nkeys;
    name_ent *e;                  /* every name with an object, in key order */
    size_t n;
} repo_view;

static void view_free(repo_view *v)
{
    for (size_t i = 0; i < v->n; i++) manifest_free(&v->e[i].man);
    free(v->e);
    os_list_free(v->keys, v->nkeys);
    memset(v, 0, sizeof *v);
}

const char *branch_key_split(const char *key, char name[BRANCH_NAME_MAX + 1])
{
    if (strncmp(key, "branches/", 9)) return NULL;
    const char *s = key + 9, *slash = strchr(s, '/');
    if (!slash || slash - s > BRANCH_NAME_MAX) return NULL;
    memcpy(name, s, (size_t)(slash - s));
    name[slash - s] = 0;
    return branch_name_valid(name) ? slash + 1 : NULL;
}

/* The entry of NAME in V, or NULL. */
static name_ent *view_find(repo_view *v, const char *name)
{
    for (size_t i = v->n; i-- > 0;)
        if (!strcmp(v->e[i].name, name)) return &v->e[i];
    return NULL;
}

/* List the repository's branches/ into V: names, markers, newest
 * generations (no object is read). */
static int view_scan(objstore *os, repo_view *v, char *err, size_t errlen)
{
    memset(v, 0, sizeof *v);
    int rc = os_list(os, "branches/", &v->keys, &v->nkeys);
    if (rc) {
        snprintf(err, errlen, "cannot list branches/ in %s: %s", os_url(os), strerror(-rc));
        return rc;
    }
    for (size_t i = 0; i < v->nkeys; i++) {
        char name[BRANCH_NAME_MAX + 1];
        if (!branch_key_split(v->keys[i], name)) continue;
        name_ent *e = view_find(v, name);
        if (!e) {
            name_ent *ne = realloc(v->e, (v->n + 1) * sizeof *ne);
            if (!ne) { snprintf(err, errlen, "out of memory"); view_free(v); return -ENOMEM; }
            v->e = ne;
            e = &v->e[v->n++];
            memset(e, 0, sizeof *e);
            snprintf(e->name, sizeof e->name, "%s", name);
        }
        const char *rest = v->keys[i] + 9 + strlen(name) + 1;
        uint64_t g;
        if (!strcmp(rest, "branch")) e->has_meta = 1;
        else if (!strcmp(rest, "deleting")) e->deleting = 1;
        else if (manifest_key_gen(name, v->keys[i], &g) == 0 && g > e->gen) e->gen = g;
    }
    return 0;
}

/* view_scan, then load every newest manifest and metadata object. */
static int view_load(objstore *os, repo_view *v, char *err, size_t errlen)
{
    int rc = view_scan(os, v, err, errlen);
    if (rc) return rc;
    for (size_t i = 0; i < v->n; i++) {
        name_ent *e = &v->e[i];
        if (e->gen && (rc = manifest_load(os, e->name, e->gen, &e->man))) {
            snprintf(err, errlen, "cannot load manifest generation %" PRIu64 " of branch '%s': %s",
                     e->gen, e->name, strerror(-rc));
            view_free(v);
            return rc;
        }
        if (e->has_meta && (rc = branch_meta_load(os, e->name, &e->meta))) {
            snprintf(err, errlen, "cannot read branches/%s/branch: %s", e->name,
                     rc == -EIO ? "damaged (checksum or format)" : strerror(-rc));
            view_free(v);
            return rc;
        }
    }
    return 0;
}

typedef struct layer_ref {
    const char *key;
    uint64_t size;
    size_t owner;                 /* index of the name whose manifest names it */
} layer_ref;

static int ref_cmp(const void *a, const void *b)
{
    const layer_ref *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    return c ? c : (x->owner > y->owner) - (x->owner < y->owner);
}

/* Every (layer, branch) pair of V's newest manifests, sorted by key. */
static int view_refs(const repo_view *v, layer_ref **out, size_t *n)
{
    size_t total = 0, k = 0;
    for (size_t i = 0; i < v->n; i++) total += v->e[i].man.nlayers;
    layer_ref *r = malloc((total ? total : 1) * sizeof *r);
    if (!r) return -ENOMEM;
    for (size_t i = 0; i < v->n; i++)
        for (size_t j = 0; j < v->e[i].man.nlayers; j++)
            r[k++] = (layer_ref){ v->e[i].man.layers[j].key, v->e[i].man.layers[j].size, i };
    qsort(r, total, sizeof *r, ref_cmp);
    *out = r;
    *n = total;
    return 0;
}

/* 1 if KEY is named by the newest manifest of a branch other than SKIP. */
static int view_used_elsewhere(const layer_ref *r, size_t n, const char *key, size_t skip)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {             /* first ref with key >= KEY */
        size_t mid = (lo + hi) / 2;
        if (strcmp(r[mid].key, key) < 0) lo = mid + 1; else hi = mid;
    }
    for (; lo < n && !strcmp(r[lo].key, key); lo++)
        if (r[lo].owner != skip) return 1;
    return 0;
}

/* ---- list ---- */

/* qsort comparator of C strings. */
static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int branch_names(objstore *os, char ***names, size_t *n)
{
    repo_view v;
    char err[16];
    int rc = view_scan(os, &v, err, sizeof err);
    if (rc) return rc;
    *n = 0;
    *names = calloc(v.n + 1, sizeof **names);
    for (size_t i = 0; *names && i < v.n && !rc; i++) {
        if (!v.e[i].gen || v.e[i].deleting) continue;
        if (!((*names)[*n] = strdup(v.e[i].name))) rc = -ENOMEM;
        else ++*n;
    }
    view_free(&v);
    if (!*names || rc) {
        for (size_t i = 0; *names && i < *n; i++) free((*names)[i]);
        free(*names);
        return -ENOMEM;
    }
    qsort(*names, *n, sizeof **names, name_cmp);
    return 0;
}

int branch_list(objstore *os, branch_info **out, size_t *n, char *err, size_t errlen)
{
    repo_view v;
    layer_ref *r;
    size_t nr, cnt = 0;
    *out = NULL;
    *n = 0;
    int rc = view_load(os, &v, err, errlen);
    if (rc) return rc;
    if ((rc = view_refs(&v, &r, &nr))) { view_free(&v); snprintf(err, errlen, "out of memory"); return rc; }
    for (size_t i = 0; i < nr;) {  /* a run of one key: unique if one branch names it */
        size_t j = i + 1;
        int shared = 0;
        for (; j < nr && !strcmp(r[j].key, r[i].key); j++) shared |= r[j].owner != r[i].owner;
        if (!shared) v.e[r[i].owner].unique_bytes += r[i].size;
        i = j;
    }
    free(r);
    branch_info *b = calloc(v.n ? v.n : 1, sizeof *b);
    if (!b) { view_free(&v); snprintf(err, errlen, "out of memory"); return -ENOMEM; }
    for (size_t i = 0; i < v.n; i++) {
        name_ent *e = &v.e[i];
        if (!e->gen) continue;
        branch_info *bi = &b[cnt++];
        snprintf(bi->name, sizeof bi->name, "%s", e->name);
        bi->meta = e->meta;
        bi->has_meta = e->has_meta;
        bi->deleting = e->deleting;
        bi->man = e->man;         /* moved */
        memset(&e->man, 0, sizeof e->man);
        for (size_t j = 0; j < bi->man.nlayers; j++) bi->bytes += bi->man.layers[j].size;
        bi->unique_bytes = e->unique_bytes;
    }
    view_free(&v);
    for (size_t i = 1; i < cnt; i++)   /* by name (key order puts "a-b" before "a") */
        for (size_t k = i; k > 0 && strcmp(b[k - 1].name, b[k].name) > 0; k--) {
            branch_info t = b[k]; b[k] = b[k - 1]; b[k - 1] = t;
        }
    *out = b;
    *n = cnt;
    return 0;
}

void branch_list_free(branch_info *b, size_t n)
{
    for (size_t i = 0; i < n; i++) manifest_free(&b[i].man);
    free(b);
}

/* ---- delete ---- */

/* 0 if NAME is not mounted read-write (a lease left by a dead daemon of
 * this machine counts as not mounted if ALLOW_DEAD); else -EBUSY or
 * -errno, with the reason in ERR. */
static int branch_check_lease(objstore *os, const char *name, int allow_dead, char *err, size_t errlen)
{
    lease_info l;
    int rc = lease_read(os, name, &l);
    if (rc == -ENOENT || (!rc && allow_dead && l.local && !l.alive)) return 0;
    if (rc) {
        snprintf(err, errlen, "cannot read the lease of branch '%s': %s", name, strerror(-rc));
        return rc;
    }
    snprintf(err, errlen, "branch '%s' is mounted read-write by a lakefs daemon (%s, pid %ld); unmount it first%s",
             name, l.holder[0] ? l.holder : "unknown holder", l.pid,
             l.local && !l.alive ? " (that daemon died: mount the branch again, which replays its journal, and unmount)" : "");
    return -EBUSY;
}

/* 0 if no name in V (a branch, or one being created) has NAME as its
 * parent; else -ENOTEMPTY with the children in ERR. */
static int view_check_children(const repo_view *v, const char *name, const char *what, char *err, size_t errlen)
{
    char list[200] = "";
    size_t n = 0, len;
    for (size_t i = 0; i < v->n; i++)
        if (v->e[i].has_meta && !strcmp(v->e[i].meta.parent, name)) {
            len = strlen(list);
            if (len + strlen(v->e[i].name) + 2 < sizeof list - 8)
                snprintf(list + len, sizeof list - len, "%s%s", len ? ", " : "", v->e[i].name);
            else if (!strstr(list, "..."))
                snprintf(list + len, sizeof list - len, ", ...");
            n++;
        }
    if (!n) return 0;
    snprintf(err, errlen, "branch '%s' has %zu child branch%s (%s); %s refused: delete %s first", name, n,
             n == 1 ? "" : "es", list, what, n == 1 ? list : "those");
    return -ENOTEMPTY;
}

/* Delete the N keys KEYS (the backend batches them). */
static int branch_del_keys(objstore *os, char **keys, size_t n)
{
    return n ? os_delete_many(os, (const char *const *)keys, n) : 0;
}

/* Remove every object of NAME once its marker is in place, and the layers
 * it alone used.  Refused (and the marker removed again if OURS) while
 * NAME is leased (see branch_check_lease) or has children. */
static int branch_remove(objstore *os, const char *name, int ours, int allow_dead, char *err, size_t errlen)
{
    char marker[128], prefix[128];
    repo_view v;
    snprintf(marker, sizeof marker, "branches/%s/deleting", name);
    size_t plen = (size_t)snprintf(prefix, sizeof prefix, "branches/%s/", name);
    int rc = view_load(os, &v, err, errlen);
    if (!rc && (rc = branch_check_lease(os, name, allow_dead, err, errlen))) view_free(&v);
    if (!rc && (rc = view_check_children(&v, name, "deleting it is", err, errlen))) view_free(&v);
    if (rc) {
        int drc = ours ? os_delete(os, marker) : 0;
        if (drc) {
            size_t len = strlen(err);
            snprintf(err + len, errlen - len, " (and removing the marker %s failed: %s)", marker, strerror(-drc));
        }
        return rc;
    }
    layer_ref *r;
    size_t nr;
    name_ent *me = view_find(&v, name);
    size_t self = me ? (size_t)(me - v.e) : (size_t)-1, nlayers = me ? me->man.nlayers : 0;
    char **del = calloc(v.nkeys + nlayers + 1, sizeof *del), *newest = NULL;
    if (!del || (rc = view_refs(&v, &r, &nr))) {
        free(del);
        view_free(&v);
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    /* the order of deletion: older manifests, the newest, then the rest */
    size_t ndel = 0, nold;
    for (size_t i = 0; i < v.nkeys; i++) {
        uint64_t g;
        if (strncmp(v.keys[i], prefix, plen) || manifest_key_gen(name, v.keys[i], &g)) continue;
        if (me && g == me->gen) newest = v.keys[i];
        else del[ndel++] = v.keys[i];
    }
    nold = ndel;
    for (size_t i = 0; i < v.nkeys; i++) {
        uint64_t g;
        const char *k = v.keys[i];
        if (strncmp(k, prefix, plen) || !strcmp(k, marker) || manifest_key_gen(name, k, &g) == 0) continue;
        if (!strncmp(k + plen, "layers/", 7) && view_used_elsewhere(r, nr, k, self)) continue;
        del[ndel++] = v.keys[i];
    }
    /* layers it names that it wrote under a former name (rename keeps layer
     * keys), unless that name is a branch again or another branch uses them */
    for (size_t j = 0; j < nlayers; j++) {
        char *k = me->man.layers[j].key, owner[BRANCH_NAME_MAX + 1];
        name_ent *oe;
        if (!strncmp(k, prefix, plen) || !branch_key_split(k, owner) || ((oe = view_find(&v, owner)) && oe->gen) ||
            view_used_elsewhere(r, nr, k, self))
            continue;
        del[ndel++] = k;
    }
    rc = branch_del_keys(os, del, nold);
    if (!rc && newest) rc = os_delete(os, newest);
    if (!rc) rc = branch_del_keys(os, del + nold, ndel - nold);
    if (!rc) rc = os_delete(os, marker);
    if (rc)
        snprintf(err, errlen, "deleting branch '%s' failed half-way: %s; run `lakefs branch delete %s` again to finish",
                 name, strerror(-rc), name);
    free(del);
    free(r);
    view_free(&v);
    return rc;
}

/* Put NAME's deletion marker: 0 if put now, 1 if it was there already. */
static int branch_mark(objstore *os, const char *name)
{
    char marker[128];
    snprintf(marker, sizeof marker, "branches/%s/deleting", name);
    int rc = os_put_if_absent(os, marker, BRANCH_MARKER_BODY, strlen(BRANCH_MARKER_BODY));
    return rc == -EEXIST ? 1 : rc;
}

/* Number of objects under branches/NAME/ in *N. */
static int branch_count_objects(objstore *os, const char *name, size_t *n)
{
    char prefix[128], **keys;
    snprintf(prefix, sizeof prefix, "branches/%s/", name);
    int rc = os_list(os, prefix, &keys, n);
    if (!rc) os_list_free(keys, *n);
    return rc;
}

int branch_delete(objstore *os, const char *name, branch_release_fn release, void *arg, char *err, size_t errlen)
{
    size_t n;
    if (!branch_name_valid(name)) {
        snprintf(err, errlen, "invalid branch name '%s'", name);
        return -EINVAL;
    }
    int rc = branch_count_objects(os, name, &n);
    if (rc) { snprintf(err, errlen, "cannot list branches/%s/ in %s: %s", name, os_url(os), strerror(-rc)); return rc; }
    if (!n) { snprintf(err, errlen, "no branch '%s' in %s (see lakefs branch list)", name, os_url(os)); return -ENOENT; }
    int had = branch_mark(os, name);
    if (had < 0) { snprintf(err, errlen, "cannot mark branch '%s' for deletion: %s", name, strerror(-had)); return had; }
    if (release && (rc = release(arg, name, err, errlen))) {
        char marker[128];
        snprintf(marker, sizeof marker, "branches/%s/deleting", name);
        if (!had) os_delete(os, marker);   /* the branch stays as it was */
        return rc;
    }
    return branch_remove(os, name, !had, 1, err, errlen);
}

/* ---- fork ---- */

/* Copy manifest M as generation 1 of a new branch NAME (no writer, session
 * or remote journal: the source is not mounted, or this is a fork). */
static int branch_first_manifest(objstore *os, const char *name, const manifest *m)
{
    manifest nm = { .gen = 1, .seq = m->seq, .max_ino = m->max_ino, .time = (uint64_t)time(NULL) };
    int rc = 0;
    for (size_t i = 0; i < m->nlayers && !rc; i++)
        rc = manifest_add_layer(&nm, m->layers[i].key, m->layers[i].min_seq, m->layers[i].max_seq, m->layers[i].size);
    if (!rc) rc = manifest_commit(os, name, &nm);
    manifest_free(&nm);
    return rc;
}

int branch_fork(objstore *os, const char *name, const char *parent, uint64_t parent_gen,
                branch_meta *out, char *err, size_t errlen)
{
    return branch_fork_at(os, name, parent, parent_gen, 0, out, err, errlen);
}

int branch_fork_at(objstore *os, const char *name, const char *parent, uint64_t parent_gen, uint64_t at_lsn,
                   branch_meta *out, char *err, size_t errlen)
{
    manifest pm;
    size_t n;
    if (!branch_name_valid(name) || !branch_name_valid(parent)) {
        snprintf(err, errlen, "invalid branch name '%s'", branch_name_valid(name) ? parent : name);
        return -EINVAL;
    }
    int rc = branch_count_objects(os, name, &n);
    if (rc) { snprintf(err, errlen, "cannot list branches/%s/ in %s: %s", name, os_url(os), strerror(-rc)); return rc; }
    if (n) {
        snprintf(err, errlen, "branch '%s' already exists in %s", name, os_url(os));
        return -EEXIST;
    }
    rc = parent_gen ? manifest_load(os, parent, parent_gen, &pm) : manifest_load_latest(os, parent, &pm);
    if (rc) {
        if (rc == -ENOENT && parent_gen)
            snprintf(err, errlen, "branch '%s' has no manifest generation %" PRIu64, parent, parent_gen);
        else if (rc == -ENOENT)
            snprintf(err, errlen, "no branch '%s' in %s to branch from (see lakefs branch list)", parent, os_url(os));
        else
            snprintf(err, errlen, "cannot load the manifest of branch '%s': %s", parent, strerror(-rc));
        return rc;
    }
    memset(out, 0, sizeof *out);
    snprintf(out->parent, sizeof out->parent, "%s", parent);
    out->point = pm.seq;
    out->parent_gen = pm.gen;
    out->at_lsn = at_lsn;
    out->created = (int64_t)time(NULL);
    if ((rc = branch_meta_put(os, name, out))) {  /* the decision between creators */
        if (rc == -EEXIST) snprintf(err, errlen, "branch '%s' already exists in %s (another `lakefs branch create` made it)",
                                    name, os_url(os));
        else snprintf(err, errlen, "cannot create branches/%s/branch: %s", name, strerror(-rc));
        manifest_free(&pm);
        return rc;
    }
    rc = branch_first_manifest(os, name, &pm);
    manifest_free(&pm);
    if (rc) snprintf(err, errlen, "cannot write the first manifest of branch '%s': %s", name, strerror(-rc));
    else if ((rc = branch_deleting(os, parent)) != 0) {   /* after our metadata: see branch.h */
        if (rc > 0) snprintf(err, errlen, "branch '%s' is being deleted or renamed; branch '%s' not created", parent, name);
        else snprintf(err, errlen, "cannot check the state of branch '%s': %s", parent, strerror(-rc));
        rc = rc > 0 ? -ENOENT : rc;
    }
    if (rc) {                     /* leave nothing of NAME behind */
        char why[512];
        int mrc = branch_mark(os, name);
        if (mrc >= 0) mrc = branch_remove(os, name, 1, 0, why, sizeof why);
        if (mrc) {
            size_t len = strlen(err);
            snprintf(err + len, errlen - len, "; removing what was written failed too: run `lakefs branch delete %s`", name);
        }
    }
    return rc;
}

/* ---- rename ---- */

int branch_rename(objstore *os, const char *from, const char *to, char *err, size_t errlen)
{
    size_t n;
    manifest m;
    repo_view v;
    char marker[128];
    if (!branch_name_valid(from) || !branch_name_valid(to)) {
        snprintf(err, errlen, "invalid branch name '%s'", branch_name_valid(from) ? to : from);
        return -EINVAL;
    }
    if (!strcmp(from, to)) { snprintf(err, errlen, "branch '%s' already has that name", from); return -EINVAL; }
    int rc = branch_count_objects(os, to, &n);
    if (rc) { snprintf(err, errlen, "cannot list branches/%s/ in %s: %s", to, os_url(os), strerror(-rc)); return rc; }
    if (n) { snprintf(err, errlen, "branch '%s' already exists in %s", to, os_url(os)); return -EEXIST; }
    if ((rc = manifest_load_latest(os, from, &m))) {
        if (rc == -ENOENT) snprintf(err, errlen, "no branch '%s' in %s (see lakefs branch list)", from, os_url(os));
        else snprintf(err, errlen, "cannot load the manifest of branch '%s': %s", from, strerror(-rc));
        return rc;
    }
    manifest_free(&m);
    if ((rc = branch_mark(os, from)) != 0) {
        if (rc > 0) snprintf(err, errlen, "branch '%s' is being deleted or renamed; finish that with: lakefs branch delete %s",
                             from, from);
        else snprintf(err, errlen, "cannot mark branch '%s' for renaming: %s", from, strerror(-rc));
        return rc > 0 ? -EBUSY : rc;
    }
    /* marked: no mount or fork of FROM starts now; look for earlier ones */
    snprintf(marker, sizeof marker, "branches/%s/deleting", from);
    name_ent *me = NULL;
    if (!(rc = view_load(os, &v, err, errlen))) {
        me = view_find(&v, from);
        if (!me || !me->gen) {
            snprintf(err, errlen, "branch '%s' was deleted meanwhile", from);
            rc = -ENOENT;
        }
        if (!rc) rc = branch_check_lease(os, from, 0, err, errlen);
        if (!rc) rc = view_check_children(&v, from, "renaming it is", err, errlen);
        branch_meta meta = { .created = (int64_t)time(NULL) };  /* for a root made before metadata existed */
        if (!rc && me->has_meta) meta = me->meta;
        if (!rc && (rc = branch_meta_put(os, to, &meta)))
            snprintf(err, errlen, rc == -EEXIST ? "branch '%s' already exists in %s" : "cannot create branch '%s' in %s",
                     to, os_url(os));
        else if (!rc && (rc = branch_first_manifest(os, to, &me->man))) {
            char why[512];
            int drc = branch_mark(os, to);
            if (drc >= 0) drc = branch_remove(os, to, 1, 0, why, sizeof why);
            snprintf(err, errlen, "cannot write the first manifest of branch '%s': %s; branch '%s' unchanged%s",
                     to, strerror(-rc), from, drc ? " (run `lakefs branch delete` on the new name to clean up)" : "");
        }
        view_free(&v);
    }
    if (rc) {
        os_delete(os, marker);
        return rc;
    }
    /* TO is complete: from here on a crash leaves both branches */
    if ((rc = branch_remove(os, from, 1, 0, err, errlen))) {
        size_t len = strlen(err);
        snprintf(err + len, errlen - len, " (branch '%s' was created as a copy; '%s' stays)", to, from);
    }
    return rc;
}

/*
 * test_branch.c -- branches of a file:// repository: the metadata object,
 * fork, list, delete, rename, and the control socket's checkpoint that a
 * fork from a running daemon starts from.
 *
 * A branch is a copy of one parent manifest, so what can go wrong is
 * sharing too much or too little: a write leaking across the fork in either
 * direction, a fork from a running store missing the batches before the
 * checkpoint or seeing later ones, a delete removing a layer another branch
 * still reads, two creators of one name both believing they won, or a
 * refused operation leaving something behind.  Checked:
 *  - the metadata object: exact text, round trip, every truncation and
 *    every byte flip rejected, non-canonical fields rejected;
 *  - fork of a closed parent: the child reads the parent's data; writes on
 *    either side are invisible on the other, also after close + reopen;
 *  - fork from a checkpoint of an open parent (store_checkpoint and the
 *    control socket): every batch before it is in the child, none after;
 *    bad requests on the socket get an error line and change nothing;
 *  - 8 threads creating one name at once, 20 rounds: exactly one wins, the
 *    others get -EEXIST, and only the winner's two objects exist;
 *  - delete: refused with children (-ENOTEMPTY) and while mounted (-EBUSY),
 *    nothing changed then; deleting a leaf removes exactly its unique
 *    layers (branch_list's unique bytes) and leaves the others readable;
 *  - rename: data follows the name; refused with children, onto an
 *    existing name and while mounted; a delete marker blocks store_open and
 *    a fork from the marked branch, leaving nothing of the child.
 */
#include "harness.h"
#include "branch.h"
#include "crc32c.h"
#include "lease.h"
#include "store.h"
#include "../../tools/control.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

typedef struct env {
    char root[64];
    char repo[128], url[160];
    objstore *os;
} env;

/* A fresh file:// repository with a root branch "main" holding inode 1. */
static void env_init(env *e)
{
    char err[256] = "";
    uint8_t root[16] = "root";
    skey k;
    memset(e, 0, sizeof *e);
    harness_repo_dirs(e->root, e->repo, e->url);
    if (os_open(e->url, &e->os, err, sizeof err)) { fprintf(stderr, "os_open: %s\n", err); exit(2); }
    key_inode(&k, 1);
    CHECK(store_branch_create(e->os, "main", &k, root, sizeof root) == 0);
    CHECK(store_repo_create(e->os) == 0);
}

static void env_free(env *e)
{
    os_close(e->os);
    harness_rmtree(e->root);
}

/* Open BRANCH with its own state directory (or NULL and the error in ERR). */
static store *open_branch(env *e, const char *branch, char *err, size_t errlen)
{
    char state[256];
    snprintf(state, sizeof state, "%s/state/%s", e->root, branch);
    store_config cfg = { .os = e->os, .branch = branch, .state_dir = state, .memtable_limit = 4096 };
    store *st = NULL;
    return store_open(&cfg, &st, err, errlen) ? NULL : st;
}

/* Open BRANCH and start its flusher; exits on failure. */
static store *must_open(env *e, const char *branch)
{
    char err[512] = "";
    store *st = open_branch(e, branch, err, sizeof err);
    if (!st) { fprintf(stderr, "store_open %s: %s\n", branch, err); exit(2); }
    if (store_start(st)) { fprintf(stderr, "store_start %s failed\n", branch); exit(2); }
    return st;
}

/* Put page PG of file 100 = "TAG" (padded to 3000 bytes) as one batch. */
static int put(store *st, uint64_t pg, const char *tag)
{
    char val[3000] = { 0 };
    skey k;
    store_batch b;
    snprintf(val, sizeof val, "%s", tag);
    key_page(&k, 100, pg);
    store_batch_init(&b);
    store_batch_put(&b, &k, val, sizeof val);
    int rc = store_commit(st, &b);
    store_batch_free(&b);
    return rc;
}

/* 1 if page PG of file 100 reads "TAG" (TAG NULL: if it is absent). */
static int has(store *st, uint64_t pg, const char *tag)
{
    char val[3000];
    size_t vlen;
    skey k;
    key_page(&k, 100, pg);
    int rc = store_get(st, &k, val, sizeof val, &vlen);
    if (!tag) return rc == -ENOENT;
    return rc == 0 && vlen == sizeof val && !strcmp(val, tag);
}

/* Number of objects under PREFIX. */
static size_t count_keys(env *e, const char *prefix)
{
    char **keys;
    size_t n = 0;
    if (os_list(e->os, prefix, &keys, &n)) return (size_t)-1;
    os_list_free(keys, n);
    return n;
}

/* The whole repository listing as one string (to compare states). */
static char *listing(env *e)
{
    char **keys, *out;
    size_t n = 0, len = 1;
    if (os_list(e->os, "", &keys, &n)) return NULL;
    for (size_t i = 0; i < n; i++) len += strlen(keys[i]) + 1;
    out = calloc(1, len);
    for (size_t i = 0; out && i < n; i++) { strcat(out, keys[i]); strcat(out, "\n"); }
    os_list_free(keys, n);
    return out;
}

/* The list entry of NAME (copied into *OUT); 0 if there is none. */
static int info_of(env *e, const char *name, branch_info *out)
{
    branch_info *b;
    size_t n;
    char err[512];
    int found = 0;
    if (branch_list(e->os, &b, &n, err, sizeof err)) return 0;
    for (size_t i = 0; i < n; i++)
        if (!strcmp(b[i].name, name)) {
            *out = b[i];
            memset(&out->man, 0, sizeof out->man);
            found = 1;
        }
    branch_list_free(b, n);
    return found;
}

/* ---- the metadata object ---- */

/* Decode BODY with a correct crc line appended; returns decode's result. */
static int decode_body(const char *body)
{
    char text[512];
    branch_meta b;
    snprintf(text, sizeof text, "%scrc %08x\n", body, crc32c(0, body, strlen(body)));
    return branch_meta_decode(text, strlen(text), &b);
}

static void test_meta(void)
{
    branch_meta b = { .parent = "main", .point = 1234, .parent_gen = 17, .created = 1767225600 }, d;
    char *buf;
    size_t len;
    const char *body = "lakefs-branch 1\nparent main\npoint 1234\nparent_gen 17\ncreated 2026-01-01T00:00:00Z\n";
    char want[256];
    snprintf(want, sizeof want, "%scrc %08x\n", body, crc32c(0, body, strlen(body)));
    CHECK(branch_meta_encode(&b, &buf, &len) == 0);
    CHECK(len == strlen(want) && !memcmp(buf, want, len));
    CHECK(branch_meta_decode(buf, len, &d) == 0);
    CHECK(!strcmp(d.parent, "main") && d.point == 1234 && d.parent_gen == 17 && d.created == 1767225600);
    /* every truncation and every single-bit flip */
    int bad = 0;
    for (size_t cut = 0; cut < len; cut++) bad += branch_meta_decode(buf, cut, &d) == -EINVAL;
    CHECK(bad == (int)len);
    bad = 0;
    for (size_t pos = 0; pos < len; pos++)
        for (int bit = 0; bit < 8; bit++) {
            buf[pos] ^= (char)(1 << bit);
            bad += branch_meta_decode(buf, len, &d) == -EINVAL;
            buf[pos] ^= (char)(1 << bit);
        }
    CHECK(bad == (int)len * 8);
    char *longer = malloc(len + 1);
    memcpy(longer, buf, len);
    longer[len] = '\n';
    CHECK(branch_meta_decode(longer, len + 1, &d) == -EINVAL);
    free(longer);
    free(buf);
    /* a root */
    branch_meta r = { .created = 0 };
    CHECK(branch_meta_encode(&r, &buf, &len) == 0);
    CHECK(branch_meta_decode(buf, len, &d) == 0 && d.parent[0] == 0 && d.point == 0);
    free(buf);
    /* non-canonical or inconsistent, each with a correct crc */
    CHECK(decode_body(body) == 0);
    CHECK(decode_body("lakefs-branch 1\nparent main\npoint 01234\nparent_gen 17\ncreated 2026-01-01T00:00:00Z\n") == -EINVAL);
    CHECK(decode_body("lakefs-branch 1\nparent main\npoint 1234\nparent_gen 17\ncreated 2026-02-30T00:00:00Z\n") == -EINVAL);
    CHECK(decode_body("lakefs-branch 1\nparent main\npoint 1234\nparent_gen 17\ncreated 2026-01-01 00:00:00Z\n") == -EINVAL);
    CHECK(decode_body("lakefs-branch 1\nparent -\npoint 5\nparent_gen 0\ncreated 2026-01-01T00:00:00Z\n") == -EINVAL);
    CHECK(decode_body("lakefs-branch 1\nparent main\npoint 5\nparent_gen 0\ncreated 2026-01-01T00:00:00Z\n") == -EINVAL);
    CHECK(decode_body("lakefs-branch 1\nparent .x\npoint 5\nparent_gen 1\ncreated 2026-01-01T00:00:00Z\n") == -EINVAL);
    CHECK(decode_body("lakefs-branch 1\nparent a@b\npoint 5\nparent_gen 1\ncreated 2026-01-01T00:00:00Z\n") == -EINVAL);
    CHECK(decode_body("lakefs-branch 2\nparent main\npoint 5\nparent_gen 1\ncreated 2026-01-01T00:00:00Z\n") == -EINVAL);
    CHECK(decode_body("lakefs-branch 1\nparent main\npoint 18446744073709551616\nparent_gen 1\n"
                      "created 2026-01-01T00:00:00Z\n") == -EINVAL);
    branch_meta badname = { .parent = "-x", .parent_gen = 1 };
    CHECK(branch_meta_encode(&badname, &buf, &len) == -EINVAL);
    /* a branch made at a point of its parent's past: the at_lsn line, only then */
    branch_meta at = b;
    at.at_lsn = 0x16B3748;
    const char *atbody = "lakefs-branch 1\nparent main\npoint 1234\nparent_gen 17\nat_lsn 23803720\n"
                         "created 2026-01-01T00:00:00Z\n";
    snprintf(want, sizeof want, "%scrc %08x\n", atbody, crc32c(0, atbody, strlen(atbody)));
    CHECK(branch_meta_encode(&at, &buf, &len) == 0);
    CHECK(len == strlen(want) && !memcmp(buf, want, len));
    CHECK(branch_meta_decode(buf, len, &d) == 0 && d.at_lsn == 0x16B3748 && d.point == 1234);
    bad = 0;
    for (size_t cut = 0; cut < len; cut++) bad += branch_meta_decode(buf, cut, &d) == -EINVAL;
    CHECK(bad == (int)len);
    free(buf);
    CHECK(branch_meta_decode(want, strlen(want), &d) == 0 && d.at_lsn == 0x16B3748);
    CHECK(decode_body("lakefs-branch 1\nparent main\npoint 5\nparent_gen 1\nat_lsn 0\ncreated 2026-01-01T00:00:00Z\n") == -EINVAL);
    CHECK(decode_body("lakefs-branch 1\nparent -\npoint 0\nparent_gen 0\nat_lsn 9\ncreated 2026-01-01T00:00:00Z\n") == -EINVAL);
    CHECK(decode_body("lakefs-branch 1\nparent main\npoint 5\nparent_gen 1\ncreated 2026-01-01T00:00:00Z\nat_lsn 9\n") == -EINVAL);
    CHECK(decode_body("lakefs-branch 1\nparent main\npoint 5\nparent_gen 1\nat_lsn 09\ncreated 2026-01-01T00:00:00Z\n") == -EINVAL);
    branch_meta rootat = { .at_lsn = 5 };
    CHECK(branch_meta_encode(&rootat, &buf, &len) == -EINVAL);
}

static void test_names(void)
{
    char n63[64], n64[65];
    memset(n63, 'a', 63); n63[63] = 0;
    memset(n64, 'a', 64); n64[64] = 0;
    CHECK(branch_name_valid("main") && branch_name_valid("a.b_c-1") && branch_name_valid("X") && branch_name_valid(n63));
    CHECK(!branch_name_valid("") && !branch_name_valid(".x") && !branch_name_valid("-x") && !branch_name_valid("a@b"));
    CHECK(!branch_name_valid("a/b") && !branch_name_valid("a b") && !branch_name_valid(n64) && !branch_name_valid("é"));
}

/* ---- fork ---- */

static void test_fork_isolation(void)
{
    env e;
    char err[512];
    branch_meta m;
    env_init(&e);
    store *st = must_open(&e, "main");
    for (int i = 0; i < 10; i++) CHECK(put(st, (uint64_t)i, "main-1") == 0);
    CHECK(store_close(st) == 0);

    CHECK(branch_fork(e.os, "dev", "main", 0, &m, err, sizeof err) == 0);
    CHECK(!strcmp(m.parent, "main") && m.point >= 10 && m.parent_gen >= 1);
    CHECK(count_keys(&e, "branches/dev/") == 2);
    st = must_open(&e, "dev");
    CHECK(has(st, 3, "main-1") && has(st, 9, "main-1"));
    CHECK(put(st, 3, "dev-2") == 0 && put(st, 20, "dev-only") == 0);
    CHECK(store_close(st) == 0);
    st = must_open(&e, "main");
    CHECK(has(st, 3, "main-1") && has(st, 20, NULL));
    CHECK(put(st, 4, "main-3") == 0 && put(st, 21, "main-only") == 0);
    CHECK(store_close(st) == 0);
    st = must_open(&e, "dev");
    CHECK(has(st, 3, "dev-2") && has(st, 20, "dev-only") && has(st, 4, "main-1") && has(st, 21, NULL));
    CHECK(store_close(st) == 0);
    st = must_open(&e, "main");
    CHECK(has(st, 3, "main-1") && has(st, 4, "main-3") && has(st, 20, NULL) && has(st, 21, "main-only"));
    CHECK(store_close(st) == 0);

    /* errors: the name exists, unknown parent, bad names; nothing changes */
    char *before = listing(&e);
    CHECK(branch_fork(e.os, "dev", "main", 0, &m, err, sizeof err) == -EEXIST && strstr(err, "already exists"));
    CHECK(branch_fork(e.os, "main", "dev", 0, &m, err, sizeof err) == -EEXIST);
    CHECK(branch_fork(e.os, "x", "nosuch", 0, &m, err, sizeof err) == -ENOENT && strstr(err, "nosuch"));
    CHECK(branch_fork(e.os, "x", "main", 999, &m, err, sizeof err) == -ENOENT && strstr(err, "generation 999"));
    CHECK(branch_fork(e.os, "a@b", "main", 0, &m, err, sizeof err) == -EINVAL);
    CHECK(branch_fork(e.os, "x", ".main", 0, &m, err, sizeof err) == -EINVAL);
    char *after = listing(&e);
    CHECK(before && after && !strcmp(before, after));
    free(before);
    free(after);
    env_free(&e);
}

/* Connect to the control socket PATH, send REQ (LEN bytes), read the reply. */
static void raw_request(const char *path, const char *req, size_t len, char *reply, size_t cap)
{
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path);
    reply[0] = 0;
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) == 0) {
        if (len && write(fd, req, len) != (ssize_t)len) { close(fd); return; }
        shutdown(fd, SHUT_WR);
        ssize_t n, got = 0;
        while ((n = read(fd, reply + got, cap - 1 - (size_t)got)) > 0) got += n;
        reply[got] = 0;
    }
    close(fd);
}

/* control_ops over one store serving branch "main"; release closes it. */
typedef struct ctl_target {
    store *st;
    int released;
} ctl_target;

static int target_checkpoint(void *arg, const char *branch, uint64_t *seq, uint64_t *gen)
{
    ctl_target *t = arg;
    if (strcmp(branch, "main") || !t->st) return -ENOENT;
    return store_checkpoint(t->st, seq, gen);
}

static int target_release(void *arg, const char *branch)
{
    ctl_target *t = arg;
    if (strcmp(branch, "main") || !t->st) return -ENOENT;
    int rc = store_close(t->st);
    t->st = NULL;
    t->released++;
    return rc;
}

static int target_stats(void *arg, const char *branch, store_stats *s)
{
    ctl_target *t = arg;
    if (strcmp(branch, "main") || !t->st) return -ENOENT;
    store_get_stats(t->st, s);
    return 0;
}

static void test_fork_checkpoint(void)
{
    env e;
    char err[512], path[256], reply[512];
    branch_meta m;
    uint64_t seq, gen;
    control *ctl;
    env_init(&e);
    store *st = must_open(&e, "main");
    for (int i = 0; i < 5; i++) CHECK(put(st, (uint64_t)i, "before-a") == 0);
    /* a store checkpoint: everything so far committed in generation GEN */
    CHECK(store_checkpoint(st, &seq, &gen) == 0);
    store_stats s;
    store_get_stats(st, &s);
    CHECK(seq == s.seq && gen == s.manifest_gen);
    manifest man;
    CHECK(manifest_load(e.os, "main", gen, &man) == 0 && man.seq >= seq);
    manifest_free(&man);
    CHECK(branch_fork(e.os, "a", "main", gen, &m, err, sizeof err) == 0 && m.parent_gen == gen && m.point >= seq);
    CHECK(put(st, 50, "after-a") == 0);

    /* through the control socket, as `lakefs branch create` does */
    snprintf(path, sizeof path, "%s/control", e.root);
    ctl_target target = { st, 0 };
    control_ops ops = { &target, target_checkpoint, target_release, target_stats };
    CHECK(control_start(path, &ops, &ctl, err, sizeof err) == 0);
    struct stat sb;
    CHECK(stat(path, &sb) == 0 && S_ISSOCK(sb.st_mode) && (sb.st_mode & 0777) == 0600);
    for (int i = 5; i < 40; i++) CHECK(put(st, (uint64_t)i, "before-b") == 0);
    CHECK(control_checkpoint(path, "main", &seq, &gen, err, sizeof err) == 0);
    CHECK(branch_fork(e.os, "b", "main", gen, &m, err, sizeof err) == 0);
    CHECK(control_checkpoint(path, "nosuch", &seq, &gen, err, sizeof err) == -EIO && strstr(err, "does not serve"));
    CHECK(put(st, 60, "after-b") == 0);
    /* stats: the store's counters, every field through the reply line */
    store_stats cs;
    CHECK(control_stats(path, "main", &cs, err, sizeof err) == 0);
    store_get_stats(st, &s);
    CHECK(cs.seq == s.seq && cs.manifest_gen == s.manifest_gen && cs.layers == s.layers && cs.flushes == s.flushes &&
          cs.compactions == s.compactions && cs.reads == s.reads && cs.probes == s.probes &&
          cs.probes_max == s.probes_max && cs.over_bound == s.over_bound && cs.bound == s.bound && cs.bound > 0);
    CHECK(control_stats(path, "nosuch", &cs, err, sizeof err) == -EIO && strstr(err, "does not serve"));
    raw_request(path, "stats\n", 6, reply, sizeof reply);
    CHECK(!strncmp(reply, "error stats wants a valid branch name", 37));
    /* malformed requests: an error line each, the store unharmed */
    raw_request(path, "frobnicate\n", 11, reply, sizeof reply);
    CHECK(!strncmp(reply, "error unknown request", 21));
    raw_request(path, "checkpoint main", 15, reply, sizeof reply);   /* no newline, then EOF */
    CHECK(!strncmp(reply, "error bad request", 17));
    raw_request(path, "checkpoint\n", 11, reply, sizeof reply);     /* no branch */
    CHECK(!strncmp(reply, "error checkpoint wants a valid branch name", 42));
    raw_request(path, "release ../x\n", 13, reply, sizeof reply);
    CHECK(!strncmp(reply, "error release wants a valid branch name", 39));
    raw_request(path, "checkpoint main\ncheckpoint main\n", 32, reply, sizeof reply);
    CHECK(!strncmp(reply, "error bad request", 17));
    char big[600];
    memset(big, 'c', sizeof big);
    raw_request(path, big, sizeof big, reply, sizeof reply);
    CHECK(!strncmp(reply, "error bad request", 17));
    raw_request(path, "checkpoint main\n", 16, reply, sizeof reply);
    CHECK(!strncmp(reply, "ok ", 3) && strchr(reply, '\n') == reply + strlen(reply) - 1);
    /* release: the daemon closes the branch (and its lease) and says ok once */
    CHECK(control_release(path, "main", err, sizeof err) == 0 && target.released == 1);
    lease_info l;
    CHECK(lease_read(e.os, "main", &l) == -ENOENT);
    CHECK(control_release(path, "main", err, sizeof err) == -EIO && strstr(err, "does not serve branch main"));
    CHECK(target.released == 1);
    control_stop(ctl);
    CHECK(stat(path, &sb) < 0 && errno == ENOENT);
    CHECK(control_checkpoint(path, "main", &seq, &gen, err, sizeof err) == -ENOENT && strstr(err, path));

    st = must_open(&e, "a");
    CHECK(has(st, 4, "before-a") && has(st, 50, NULL) && has(st, 5, NULL));
    CHECK(store_close(st) == 0);
    st = must_open(&e, "b");
    CHECK(has(st, 4, "before-a") && has(st, 50, "after-a") && has(st, 39, "before-b") && has(st, 60, NULL));
    CHECK(store_close(st) == 0);
    st = must_open(&e, "main");
    CHECK(has(st, 60, "after-b") && has(st, 39, "before-b"));
    CHECK(store_close(st) == 0);
    env_free(&e);
}

/* ---- concurrent creators ---- */

typedef struct racer {
    env *e;
    const char *name;
    pthread_barrier_t *go;
    int rc;
} racer;

static void *race_main(void *arg)
{
    racer *r = arg;
    objstore *os;
    char err[512];
    branch_meta m;
    if (os_open(r->e->url, &os, err, sizeof err)) { r->rc = -999; return NULL; }
    pthread_barrier_wait(r->go);
    r->rc = branch_fork(os, r->name, "main", 0, &m, err, sizeof err);
    os_close(os);
    return NULL;
}

static void test_concurrent_create(void)
{
    enum { THREADS = 8, ROUNDS = 20 };
    env e;
    env_init(&e);
    int exactly_one = 0, others_eexist = 0, clean = 0;
    for (int round = 0; round < ROUNDS; round++) {
        char name[32], prefix[64];
        pthread_t t[THREADS];
        racer r[THREADS];
        pthread_barrier_t go;
        snprintf(name, sizeof name, "race%d", round);
        pthread_barrier_init(&go, NULL, THREADS);
        for (int i = 0; i < THREADS; i++) {
            r[i] = (racer){ &e, name, &go, 0 };
            pthread_create(&t[i], NULL, race_main, &r[i]);
        }
        int won = 0, lost = 0;
        for (int i = 0; i < THREADS; i++) {
            pthread_join(t[i], NULL);
            won += r[i].rc == 0;
            lost += r[i].rc == -EEXIST;
        }
        pthread_barrier_destroy(&go);
        exactly_one += won == 1;
        others_eexist += lost == THREADS - 1;
        snprintf(prefix, sizeof prefix, "branches/%s/", name);
        clean += count_keys(&e, prefix) == 2;   /* "branch" and manifest 1, nothing else */
    }
    CHECK(exactly_one == ROUNDS);
    CHECK(others_eexist == ROUNDS);
    CHECK(clean == ROUNDS);
    store *st = must_open(&e, "race7");
    CHECK(store_close(st) == 0);
    env_free(&e);
}

/* ---- delete, unique bytes ---- */

static void test_delete(void)
{
    env e;
    char err[512];
    branch_meta m;
    branch_info a, b, c;
    env_init(&e);
    store *st = must_open(&e, "main");
    for (int i = 0; i < 8; i++) CHECK(put(st, (uint64_t)i, "main") == 0);
    CHECK(store_close(st) == 0);
    CHECK(branch_fork(e.os, "a", "main", 0, &m, err, sizeof err) == 0);
    CHECK(branch_fork(e.os, "b", "a", 0, &m, err, sizeof err) == 0);
    CHECK(branch_fork(e.os, "c", "b", 0, &m, err, sizeof err) == 0);
    st = must_open(&e, "c");
    CHECK(has(st, 7, "main"));
    for (int i = 0; i < 30; i++) CHECK(put(st, 100 + (uint64_t)i, "leaf data") == 0);
    CHECK(store_close(st) == 0);
    st = must_open(&e, "b");
    CHECK(put(st, 1, "b's own") == 0);
    CHECK(store_close(st) == 0);

    CHECK(info_of(&e, "c", &c) && info_of(&e, "b", &b) && info_of(&e, "a", &a));
    CHECK(!strcmp(c.meta.parent, "b") && !strcmp(b.meta.parent, "a") && !strcmp(a.meta.parent, "main"));
    CHECK(c.unique_bytes > 0 && b.unique_bytes > 0 && a.unique_bytes == 0);
    /* c's own layers in its state are exactly its unique bytes (layers a
     * compaction replaced stay in the repository until gc) */
    uint64_t own = 0, size;
    size_t nown = 0;
    manifest cm;
    CHECK(manifest_load_latest(e.os, "c", &cm) == 0);
    for (size_t i = 0; i < cm.nlayers; i++)
        if (!strncmp(cm.layers[i].key, "branches/c/layers/", 18) && os_head(e.os, cm.layers[i].key, &size) == 0) {
            own += size;
            nown++;
        }
    manifest_free(&cm);
    CHECK(nown > 0 && own == c.unique_bytes);

    /* refused: the middle one has a child; a mounted one */
    char *before = listing(&e);
    CHECK(branch_delete(e.os, "b", NULL, NULL, err, sizeof err) == -ENOTEMPTY && strstr(err, "(c)"));
    CHECK(branch_delete(e.os, "a", NULL, NULL, err, sizeof err) == -ENOTEMPTY);
    st = must_open(&e, "c");
    char *mounted = listing(&e);
    CHECK(branch_delete(e.os, "c", NULL, NULL, err, sizeof err) == -EBUSY && strstr(err, "mounted read-write"));
    char *still = listing(&e);
    CHECK(mounted && still && !strcmp(mounted, still));
    CHECK(store_close(st) == 0);
    CHECK(branch_delete(e.os, "nosuch", NULL, NULL, err, sizeof err) == -ENOENT);
    free(before);
    free(mounted);
    free(still);

    /* the leaf goes, with its layers; the others read as before */
    CHECK(branch_delete(e.os, "c", NULL, NULL, err, sizeof err) == 0);
    CHECK(count_keys(&e, "branches/c/") == 0);
    CHECK(!info_of(&e, "c", &c));
    CHECK(branch_delete(e.os, "c", NULL, NULL, err, sizeof err) == -ENOENT);
    st = must_open(&e, "b");
    CHECK(has(st, 1, "b's own") && has(st, 7, "main") && has(st, 100, NULL));
    CHECK(store_close(st) == 0);
    /* now the middle one may go; its parent's layers stay */
    CHECK(branch_delete(e.os, "b", NULL, NULL, err, sizeof err) == 0);
    CHECK(branch_delete(e.os, "a", NULL, NULL, err, sizeof err) == 0);
    st = must_open(&e, "main");
    CHECK(has(st, 7, "main") && has(st, 1, "main"));
    CHECK(store_close(st) == 0);
    CHECK(info_of(&e, "main", &a) && a.unique_bytes == a.bytes);
    env_free(&e);
}

/* ---- rename, markers ---- */

static void test_rename_and_markers(void)
{
    env e;
    char err[512];
    branch_meta m;
    branch_info info;
    env_init(&e);
    CHECK(branch_fork(e.os, "old", "main", 0, &m, err, sizeof err) == 0);
    store *st = must_open(&e, "old");
    CHECK(put(st, 1, "written as old") == 0);
    CHECK(store_close(st) == 0);
    CHECK(branch_fork(e.os, "kid", "old", 0, &m, err, sizeof err) == 0);

    char *before = listing(&e);
    CHECK(branch_rename(e.os, "old", "new", err, sizeof err) == -ENOTEMPTY && strstr(err, "kid"));
    CHECK(branch_rename(e.os, "kid", "main", err, sizeof err) == -EEXIST);
    CHECK(branch_rename(e.os, "nosuch", "x", err, sizeof err) == -ENOENT);
    CHECK(branch_rename(e.os, "kid", "b@d", err, sizeof err) == -EINVAL);
    char *after = listing(&e);
    CHECK(before && after && !strcmp(before, after));
    free(before);
    free(after);
    st = must_open(&e, "kid");
    before = listing(&e);
    CHECK(branch_rename(e.os, "kid", "x", err, sizeof err) == -EBUSY && strstr(err, "mounted read-write"));
    after = listing(&e);
    CHECK(before && after && !strcmp(before, after));
    free(before);
    free(after);
    CHECK(store_close(st) == 0);

    CHECK(branch_rename(e.os, "kid", "kid2", err, sizeof err) == 0);
    CHECK(count_keys(&e, "branches/kid/") == 0);
    CHECK(info_of(&e, "kid2", &info) && !strcmp(info.meta.parent, "old"));
    st = must_open(&e, "kid2");
    CHECK(has(st, 1, "written as old"));
    CHECK(put(st, 2, "written as kid2") == 0);
    CHECK(store_close(st) == 0);
    CHECK(branch_delete(e.os, "kid2", NULL, NULL, err, sizeof err) == 0);
    CHECK(branch_rename(e.os, "old", "new", err, sizeof err) == 0);
    st = must_open(&e, "new");
    CHECK(has(st, 1, "written as old"));
    CHECK(store_close(st) == 0);

    /* a delete marker (an interrupted delete) blocks mounts and forks */
    CHECK(os_put_if_absent(e.os, "branches/new/deleting", "x", 1) == 0);
    CHECK(open_branch(&e, "new", err, sizeof err) == NULL && strstr(err, "being deleted"));
    CHECK(count_keys(&e, "branches/new/lease") == 0);
    CHECK(branch_fork(e.os, "child", "new", 0, &m, err, sizeof err) == -ENOENT && strstr(err, "being deleted"));
    CHECK(count_keys(&e, "branches/child/") == 0);
    CHECK(branch_fork(e.os, "new", "main", 0, &m, err, sizeof err) == -EEXIST);
    /* running the delete finishes it; the layers "new" wrote go too */
    CHECK(branch_delete(e.os, "new", NULL, NULL, err, sizeof err) == 0);
    CHECK(count_keys(&e, "branches/new/") == 0 && count_keys(&e, "branches/old/") == 0);
    CHECK(count_keys(&e, "branches/") == 3);   /* main: branch, layer, manifest */
    env_free(&e);
}

int main(void)
{
    test_meta();
    test_names();
    test_fork_isolation();
    test_fork_checkpoint();
    test_concurrent_create();
    test_delete();
    test_rename_and_markers();
    return harness_done();
}

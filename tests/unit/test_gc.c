/*
 * test_gc.c -- garbage collection, fsck and layer verification on a
 * synthetic repository whose manifests carry chosen times: the window keeps
 * what it must (newest, within, the base before it) and frees the rest,
 * layers another branch names stay, pins of live holders keep their
 * generation and dead ones are removed, uploads a live mount may still
 * commit stay while those of an ended or superseded session go, start-up
 * keys of generations older than the newest go, a damaged
 * manifest stops the run before any deletion, --dry-run deletes nothing;
 * layer keys parse strictly; fsck finds missing and damaged layers and
 * orphans, and --repair removes exactly the orphans; layer_verify accepts a
 * sound layer and rejects every single-byte flip of one.
 */
#include "harness.h"
#include "branch.h"
#include "fsck.h"
#include "gc.h"
#include "layer.h"
#include "manifest.h"
#include "lease.h"
#include "store.h"

#include <errno.h>
#include <inttypes.h>
#include <sys/wait.h>
#include <unistd.h>

static objstore *os;
static char root[64], repo[128], url[160];

/* Upload a one-key layer of BRANCH written by SESSION; its key into KEY. */
static uint64_t put_layer(const char *branch, uint64_t session, uint64_t seq, char *key, size_t klen)
{
    layer_writer *w = layer_writer_new();
    uint8_t k[9] = { 3 };
    k[8] = (uint8_t)seq;
    CHECK(layer_writer_add(w, k, sizeof k, seq, 0, "value", 5) == 0);
    void *buf;
    size_t len;
    CHECK(layer_writer_finish(w, &buf, &len) == 0);
    layer_writer_free(w);
    snprintf(key, klen, "branches/%s/layers/%016" PRIx64 "-%016" PRIx64 "-%016" PRIx64 "-%08x.layer", branch,
             session, seq, seq, (unsigned)(seq * 7919));
    CHECK(os_put_if_absent(os, key, buf, len) == 0);
    free(buf);
    return len;
}

/* Commit generation GEN of BRANCH made at TIME, by SESSION, naming the N
 * layers KEYS (sizes SIZES). */
static void put_gen(const char *branch, uint64_t gen, uint64_t time, uint64_t session, char keys[][160],
                    const uint64_t *sizes, size_t n)
{
    manifest m = { .gen = gen, .seq = gen * 10, .time = time, .session = session };
    for (size_t i = 0; i < n; i++) CHECK(manifest_add_layer(&m, keys[i], 1, 1, sizes[i]) == 0);
    CHECK(manifest_commit(os, branch, &m) == 0);
    manifest_free(&m);
}

static int exists(const char *key)
{
    uint64_t size;
    return os_head(os, key, &size) == 0;
}

static int gen_exists(const char *branch, uint64_t gen)
{
    return manifest_exists(os, branch, gen) == 1;
}

/* Run gc at NOW with RETENTION; 0 or -errno. */
static int gc_at(int64_t now, int64_t retention, int dry, gc_report *r)
{
    char err[512];
    gc_options o = { .retention_s = retention, .dry_run = dry, .now = now };
    int rc = gc_run(os, &o, r, err, sizeof err);
    if (rc) fprintf(stderr, "  gc: %s\n", err);
    return rc;
}

/* A pid that is certainly not running: a reaped child's. */
static long dead_pid(void)
{
    pid_t p = fork();
    if (p == 0) _exit(0);
    waitpid(p, NULL, 0);
    return (long)p;
}

static void put_pin(const char *branch, uint64_t gen, long pid, char *key, size_t klen)
{
    char me[400], body[600];
    lease_machine_id(me, sizeof me);
    int n = snprintf(body, sizeof body, "lakefs-pin 1\nholder %s\npid %ld\n", me, pid);
    snprintf(key, klen, "branches/%s/pins/%020" PRIu64 "-%016lx", branch, gen, (unsigned long)pid);
    CHECK(os_put_if_absent(os, key, body, (size_t)n) == 0);
}

static void test_window(void)
{
    char k[8][160];
    uint64_t s[8];
    /* main: generations at t=100, 200, 300, 400, each naming its own layer and the first */
    s[0] = put_layer("main", 1, 1, k[0], sizeof k[0]);
    for (int g = 1; g <= 4; g++) {
        s[g] = put_layer("main", (uint64_t)g, (uint64_t)g + 1, k[g], sizeof k[g]);
        char two[2][160];
        uint64_t sz[2] = { s[0], s[g] };
        snprintf(two[0], 160, "%s", k[0]);
        snprintf(two[1], 160, "%s", k[g]);
        put_gen("main", (uint64_t)g, (uint64_t)g * 100, (uint64_t)g, two, sz, 2);
    }
    /* a fork made from generation 1: names main's layer of generation 1 */
    branch_meta bm = { .created = 100 };
    snprintf(bm.parent, sizeof bm.parent, "main");
    bm.parent_gen = 1;
    CHECK(branch_meta_put(os, "dev", &bm) == 0);
    {
        char one[2][160];
        uint64_t sz[2] = { s[0], s[1] };
        snprintf(one[0], 160, "%s", k[0]);
        snprintf(one[1], 160, "%s", k[1]);
        put_gen("dev", 1, 100, 0, one, sz, 2);
    }
    gc_report r;
    /* a window reaching back past everything: nothing to free */
    CHECK(gc_at(450, 1000, 0, &r) == 0);
    CHECK(r.gens_freed == 0 && r.layers_freed == 0 && r.layers_kept == 5);
    /* dry run of a window of 200 s at 450 (from 250): generation 1 would go */
    CHECK(gc_at(450, 200, 1, &r) == 0);
    CHECK(r.gens_freed == 1 && gen_exists("main", 1));
    /* for real: 3 and 4 are within, 2 is the base; 1 goes; its layer stays (dev names it) */
    CHECK(gc_at(450, 200, 0, &r) == 0);
    CHECK(!gen_exists("main", 1) && gen_exists("main", 2) && gen_exists("main", 3) && gen_exists("main", 4));
    CHECK(exists(k[1]) && r.layers_freed == 0);
    /* retention 0 at 1000: only the newest (4) and the base before now (4 itself): 2 and 3 go, and
     * layer 2 and 3 with them; layer 1 stays for dev */
    CHECK(gc_at(1000, 0, 0, &r) == 0);
    CHECK(!gen_exists("main", 2) && !gen_exists("main", 3) && gen_exists("main", 4));
    CHECK(!exists(k[2]) && !exists(k[3]) && exists(k[1]) && exists(k[4]) && exists(k[0]));
    CHECK(r.layers_freed == 2);
    CHECK(!gen_exists("main", 1));
    /* dev deleted: its generation goes with it, and then main's layer 1 is garbage */
    char err[512];
    CHECK(branch_delete(os, "dev", NULL, NULL, err, sizeof err) == 0);
    CHECK(gc_at(1000, 0, 0, &r) == 0);
    CHECK(!exists(k[1]) && exists(k[0]) && exists(k[4]));
}

/* Thinning: past the grace period, one generation per slot of the window
 * stays (gc.h).  Window 800 s at 2000 (from 1200), grace 60 s (from
 * 1940), slots of 100 s. */
static void test_thinning(void)
{
    static const int64_t when[] = { 1000, 1100, 1210, 1250, 1290, 1310, 1399, 1450, 1460, 1945, 1950, 1990 };
    /* 1000 older than the base; 1100 the window's base; 1210, 1250 superseded within slot 12, whose
     * newest is 1290; 1310 within slot 13 (1399 kept); 1450 within slot 14 (1460 kept); 1945 and 1950
     * superseded within the grace period; 1990 the newest */
    static const int kept[] = { 0, 1, 0, 0, 1, 0, 1, 0, 1, 1, 1, 1 };
    enum { N = sizeof when / sizeof when[0] };
    char k[N][160];
    uint64_t sz[N];
    for (int g = 0; g < N; g++) {
        sz[g] = put_layer("thin", 1, (uint64_t)g + 1, k[g], sizeof k[g]);
        put_gen("thin", (uint64_t)g + 1, (uint64_t)when[g], 1, &k[g], &sz[g], 1);
    }
    gc_report r;
    CHECK(gc_at(2000, 800, 0, &r) == 0);
    for (int g = 0; g < N; g++) {
        int ok = gen_exists("thin", (uint64_t)g + 1) == kept[g] && exists(k[g]) == kept[g];
        if (!ok) fprintf(stderr, "  generation made at %" PRId64 ": kept %d, want %d\n", when[g],
                         gen_exists("thin", (uint64_t)g + 1), kept[g]);
        CHECK(ok);
    }
    CHECK(gc_at(2000, 800, 0, &r) == 0 && r.gens_freed == 0);   /* slots are fixed: the next run agrees */
    char err[512];
    CHECK(branch_delete(os, "thin", NULL, NULL, err, sizeof err) == 0);
}

static void test_in_flight_and_pins(void)
{
    char k[8][160], pin[2][200];
    uint64_t s[8];
    s[0] = put_layer("b", 3, 1, k[0], sizeof k[0]);
    put_gen("b", 1, 100, 3, k, s, 1);
    s[1] = put_layer("b", 2, 2, k[1], sizeof k[1]);   /* an older session's upload: never committed */
    s[2] = put_layer("b", 3, 3, k[2], sizeof k[2]);   /* this session's */
    s[3] = put_layer("b", 9, 4, k[3], sizeof k[3]);   /* a session starting now */
    /* leased: the session 3 mount is live */
    CHECK(os_put_if_absent(os, "branches/b/lease", "lakefs-lease 1\nholder x y\npid 1\n", 33) == 0);
    gc_report r;
    CHECK(gc_at(200, 0, 0, &r) == 0);
    CHECK(exists(k[0]) && !exists(k[1]) && exists(k[2]) && exists(k[3]));
    CHECK(r.layers_in_flight == 2);
    /* the mount ended (no lease): its unnamed upload is garbage; a later session's stays */
    CHECK(os_delete(os, "branches/b/lease") == 0);
    CHECK(gc_at(200, 0, 0, &r) == 0);
    CHECK(exists(k[0]) && !exists(k[2]) && exists(k[3]));
    /* pins: generation 1 superseded by 2; a live pin keeps 1, a dead one does not */
    s[4] = put_layer("b", 9, 5, k[4], sizeof k[4]);
    {
        char one[1][160];
        snprintf(one[0], 160, "%s", k[4]);
        put_gen("b", 2, 150, 9, one, &s[4], 1);
    }
    put_pin("b", 1, (long)getpid(), pin[0], sizeof pin[0]);
    CHECK(gc_at(1000, 0, 0, &r) == 0);
    CHECK(gen_exists("b", 1) && exists(k[0]) && exists(pin[0]));
    CHECK(os_delete(os, pin[0]) == 0);
    put_pin("b", 1, dead_pid(), pin[1], sizeof pin[1]);
    CHECK(gc_at(1000, 0, 0, &r) == 0);
    CHECK(!gen_exists("b", 1) && !exists(k[0]) && !exists(pin[1]) && r.pins_dead == 1);
    CHECK(exists(k[4]));
    /* start-up keys: generation 1's (a crashed mount's leftover) go; the
     * newest generation's and a closing mount's (newer) stay; a dry run
     * deletes nothing */
    const char *hot[3] = { "branches/b/hot/00000000000000000001", "branches/b/hot/00000000000000000002",
                           "branches/b/hot/00000000000000000003" };
    for (int i = 0; i < 3; i++) CHECK(os_put_if_absent(os, hot[i], "LKHOTST1", 8) == 0);
    CHECK(gc_at(1000, 0, 1, &r) == 0);
    CHECK(r.hot_freed == 1 && exists(hot[0]));
    CHECK(gc_at(1000, 0, 0, &r) == 0);
    CHECK(r.hot_freed == 1 && !exists(hot[0]) && exists(hot[1]) && exists(hot[2]));
}

static void test_damaged_manifest(void)
{
    char k[2][160];
    uint64_t s[2];
    s[0] = put_layer("c", 1, 1, k[0], sizeof k[0]);
    put_gen("c", 1, 100, 1, k, s, 1);
    s[1] = put_layer("c", 1, 2, k[1], sizeof k[1]);   /* would be garbage */
    CHECK(os_put_if_absent(os, "branches/c/manifest/00000000000000000002", "lakefs-manifest 1\ngarbage\n", 26) == 0);
    gc_report r;
    char err[512];
    gc_options o = { .retention_s = 0, .now = 1000 };
    CHECK(gc_run(os, &o, &r, err, sizeof err) == -EIO && strstr(err, "branch 'c'") && strstr(err, "fsck"));
    CHECK(exists(k[1]) && gen_exists("c", 1));
    /* fsck names it, and refuses to repair around it */
    FILE *out = tmpfile();
    fsck_report fr;
    CHECK(fsck_run(os, 1, out, &fr, err, sizeof err) == 0);
    CHECK(fr.damaged == 1 && exists(k[1]));
    rewind(out);
    char line[512];
    int named = 0;
    while (fgets(line, sizeof line, out)) named |= strstr(line, "DAMAGED branches/c/manifest/00000000000000000002") != NULL;
    CHECK(named);
    fclose(out);
    CHECK(os_delete(os, "branches/c/manifest/00000000000000000002") == 0);
}

static void test_fsck(void)
{
    char err[512], line[512];
    fsck_report r;
    FILE *out = tmpfile();
    /* the repository as the tests above left it: sound; c's unnamed layer is an orphan */
    CHECK(fsck_run(os, 0, out, &r, err, sizeof err) == 0);
    CHECK(r.damaged == 0 && r.orphans >= 1 && r.layers > 0);
    fclose(out);
    out = tmpfile();
    CHECK(fsck_run(os, 1, out, &r, err, sizeof err) == 0 && r.damaged == 0);
    fclose(out);
    out = tmpfile();
    CHECK(fsck_run(os, 0, out, &r, err, sizeof err) == 0 && r.orphans == 0 && r.damaged == 0);
    fclose(out);
    /* a missing layer and a flipped byte are damage */
    char k[2][160];
    uint64_t s[2];
    s[0] = put_layer("d", 1, 1, k[0], sizeof k[0]);
    s[1] = put_layer("d", 1, 2, k[1], sizeof k[1]);
    put_gen("d", 1, 100, 1, k, s, 2);
    put_gen("d", 2, 100, 1, k, s, 2);
    put_gen("d", 3, 100, 1, k, s, 2);
    put_gen("d", 5, 100, 1, k, s, 2);
    put_gen("e", 1, 100, 1, k, s, 1);
    CHECK(os_delete(os, k[0]) == 0);
    char path[512];
    snprintf(path, sizeof path, "%s/%s", repo, k[1]);
    FILE *f = fopen(path, "r+b");
    CHECK(f && fseek(f, 3, SEEK_SET) == 0);
    int c = fgetc(f);
    CHECK(fseek(f, 3, SEEK_SET) == 0 && fputc(c ^ 0x20, f) != EOF);
    fclose(f);
    out = tmpfile();
    CHECK(fsck_run(os, 0, out, &r, err, sizeof err) == 0 && r.damaged == 2);
    rewind(out);
    int missing = 0, bad = 0;
    while (fgets(line, sizeof line, out)) {
        missing |= strstr(line, k[0]) && strstr(line, "missing") &&   /* every state that needs it */
                   strstr(line, "generations 1-3, 5 of d; generations 1 of e\n");
        bad |= strstr(line, k[1]) && strstr(line, "checksum");
    }
    CHECK(missing && bad);
    fclose(out);
}

/* layer_verify: a sound layer's entries; every flipped byte of a small one is -EIO. */
static void test_layer_verify(void)
{
    layer_writer *w = layer_writer_new();
    uint8_t k[12] = { 3 };
    for (int i = 0; i < 300; i++) {
        k[10] = (uint8_t)(i >> 8);
        k[11] = (uint8_t)i;
        char v[100];
        memset(v, 'a' + i % 26, sizeof v);
        CHECK(layer_writer_add(w, k, sizeof k, (uint64_t)i + 1, i % 10 == 0, v, sizeof v) == 0);
    }
    void *buf;
    size_t len;
    CHECK(layer_writer_finish(w, &buf, &len) == 0);
    layer_writer_free(w);
    CHECK(os_put_if_absent(os, "verify/good.layer", buf, len) == 0);
    uint64_t entries = 0;
    CHECK(layer_verify(os, "verify/good.layer", &entries) == 0 && entries == 300);
    int caught = 0, tried = 0;
    for (size_t off = 0; off < len; off += 1 + len / 97) {
        uint8_t *copy = malloc(len);
        memcpy(copy, buf, len);
        copy[off] ^= 0x01;
        char key[64];
        snprintf(key, sizeof key, "verify/flip-%zu.layer", off);
        CHECK(os_put_if_absent(os, key, copy, len) == 0);
        tried++;
        caught += layer_verify(os, key, &entries) == -EIO;
        free(copy);
    }
    CHECK(caught == tried);
    CHECK(os_put_if_absent(os, "verify/short.layer", buf, 10) == 0);
    CHECK(layer_verify(os, "verify/short.layer", &entries) == -EIO);
    CHECK(layer_verify(os, "verify/none.layer", &entries) == -ENOENT);
    free(buf);
}

static void test_names_and_settings(void)
{
    char b[BRANCH_NAME_MAX + 1];
    uint64_t s;
    CHECK(store_layer_key_parse("branches/main/layers/00000000000000ff-0000000000000001-0000000000000002-0badf00d.layer",
                                b, sizeof b, &s) == 0 && !strcmp(b, "main") && s == 255);
    CHECK(store_layer_key_parse("branches/main/layers/0000000000000001-0000000000000002-0badf00d.layer", b, sizeof b,
                                &s) == -EINVAL);   /* the older form, without a session */
    CHECK(store_layer_key_parse("branches/main/layers/00000000000000fF-0000000000000001-0000000000000002-0badf00d.layer",
                                b, sizeof b, &s) == -EINVAL);
    CHECK(store_layer_key_parse("branches/main/layers/00000000000000ff-0000000000000001-0000000000000002-0badf00d.layerx",
                                b, sizeof b, &s) == -EINVAL);
    CHECK(store_layer_key_parse("branches//layers/00000000000000ff-0000000000000001-0000000000000002-0badf00d.layer",
                                b, sizeof b, &s) == -EINVAL);
    CHECK(store_layer_key_parse("other/main/layers/00000000000000ff-0000000000000001-0000000000000002-0badf00d.layer",
                                b, sizeof b, &s) == -EINVAL);
    int64_t r;
    CHECK(gc_retention_get(os, &r) == 0 && r == GC_RETENTION_DEFAULT);
    CHECK(gc_retention_set(os, 300) == 0 && gc_retention_get(os, &r) == 0 && r == 300);
    CHECK(gc_retention_set(os, 0) == 0 && gc_retention_get(os, &r) == 0 && r == 0);
    CHECK(gc_retention_set(os, -1) == -EINVAL && gc_retention_get(os, &r) == 0 && r == 0);
}

int main(void)
{
    char err[256];
    harness_repo_dirs(root, repo, url);
    if (os_open(url, &os, err, sizeof err)) { fprintf(stderr, "os_open: %s\n", err); return 2; }
    test_window();
    test_thinning();
    test_in_flight_and_pins();
    test_damaged_manifest();
    test_fsck();
    test_layer_verify();
    test_names_and_settings();
    os_close(os);
    harness_rmtree(root);
    return harness_done();
}

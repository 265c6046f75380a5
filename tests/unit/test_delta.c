/*
 * test_delta.c -- the Delta Lake log (lake/delta.c) on a file:// object
 * store in a temp dir: version 0 of a new table (protocol, metaData with
 * the schema, txn, adds with stats), replay of what was written, version 1
 * replacing the files (removes + adds), the txn version per appId, a racing
 * writer (-EEXIST), JSON escaping of any UTF-8 name and control
 * characters read back exactly, what lakefs recorded of its point
 * (commitInfo.lakefs) in the newest commit, and refusals: a prefix with
 * objects but no log, a gap in the log, malformed JSON, checkpoints, a
 * reader version 3.
 */
#include "harness.h"
#include "delta.h"

#include <errno.h>
#include <stdint.h>

static objstore *os;

/* Put TEXT at KEY. */
static void put(const char *key, const char *text)
{
    CHECK(os_put_if_absent(os, key, text, strlen(text)) == 0);
}

/* The text of KEY (malloc'd, NUL-terminated). */
static char *get(const char *key)
{
    void *p = NULL;
    size_t n = 0;
    if (os_get(os, key, 0, UINT64_MAX, &p, &n)) return NULL;
    char *s = malloc(n + 1);
    memcpy(s, p, n);
    s[n] = 0;
    free(p);
    return s;
}

static void test_commits(void)
{
    char err[512];
    delta_log l;
    CHECK(delta_load(os, "public.t", &l, err, sizeof err) == 0 && l.version == -1 && l.nfiles == 0);
    delta_field f[3] = {{"id", "long"}, {"n\xc3\xa4me \"q\"\\", "string"}, {"d", "decimal(10,2)"}};
    delta_add adds[2] = {{"part-a.zstd.parquet", 100, "{\"numRecords\":2,\"minValues\":{\"id\":1},\"maxValues\":{\"id\":2},\"nullCount\":{\"id\":0}}"},
                         {"part-b.zstd.parquet", 200, NULL}};
    delta_commit_args a = {.fields = f, .nfields = 3, .adds = adds, .nadds = 2, .app_id = "lakefs:main:public.t",
                           .txn_version = 1000, .info = "\"lakefsLsn\":\"0/3E8\"", .now_ms = 1700000000000};
    CHECK(delta_commit(os, "public.t", &l, &a, err, sizeof err) == 0);
    char *c0 = get("public.t/_delta_log/00000000000000000000.json");
    CHECK(c0 && strstr(c0, "{\"protocol\":{\"minReaderVersion\":1,\"minWriterVersion\":2}}\n"));
    CHECK(c0 && strstr(c0, "\"schemaString\":\"{\\\"type\\\":\\\"struct\\\",\\\"fields\\\":[{\\\"name\\\":\\\"id\\\",\\\"type\\\":\\\"long\\\",\\\"nullable\\\":true,\\\"metadata\\\":{}}"));
    CHECK(c0 && strstr(c0, "{\"txn\":{\"appId\":\"lakefs:main:public.t\",\"version\":1000,"));
    CHECK(c0 && strstr(c0, "\"stats\":\"{\\\"numRecords\\\":2,"));
    CHECK(c0 && strstr(c0, "\"lakefsLsn\":\"0/3E8\"") && !strstr(c0, "remove"));
    free(c0);
    delta_log_free(&l);

    CHECK(delta_load(os, "public.t", &l, err, sizeof err) == 0);
    CHECK(l.version == 0 && l.nfiles == 2 && delta_txn_version(&l, "lakefs:main:public.t") == 1000);
    CHECK(delta_txn_version(&l, "other") == -1);
    CHECK(l.schema && strstr(l.schema, "\"name\":\"n\xc3\xa4me \\\"q\\\"\\\\\""));
    char id0[64];
    snprintf(id0, sizeof id0, "%s", l.table_id ? l.table_id : "");
    CHECK(strlen(id0) == 36 && id0[14] == '4');

    /* version 1: same schema (no metaData), removes both, adds one */
    delta_add adds1[1] = {{"part-c.zstd.parquet", 300, "{\"numRecords\":0}"}};
    a.adds = adds1;
    a.nadds = 1;
    a.txn_version = 2000;
    CHECK(delta_commit(os, "public.t", &l, &a, err, sizeof err) == 0);
    /* racing: committing on the same old state again is refused */
    CHECK(delta_commit(os, "public.t", &l, &a, err, sizeof err) == -EEXIST && strstr(err, "another writer"));
    delta_log_free(&l);
    char *c1 = get("public.t/_delta_log/00000000000000000001.json");
    CHECK(c1 && !strstr(c1, "metaData") && strstr(c1, "{\"remove\":{\"path\":\"part-a.zstd.parquet\""));
    free(c1);
    CHECK(delta_load(os, "public.t", &l, err, sizeof err) == 0);
    CHECK(l.version == 1 && l.nfiles == 1 && !strcmp(l.files[0], "part-c.zstd.parquet") &&
          delta_txn_version(&l, "lakefs:main:public.t") == 2000 && !strcmp(l.table_id, id0));

    /* version 2: a new schema writes metaData again, same table id */
    delta_field f2[1] = {{"\x01\ttab\xf0\x9f\x98\x80", "integer"}};
    a.fields = f2;
    a.nfields = 1;
    a.nadds = 0;
    CHECK(delta_commit(os, "public.t", &l, &a, err, sizeof err) == 0);
    delta_log_free(&l);
    CHECK(delta_load(os, "public.t", &l, err, sizeof err) == 0 && l.version == 2 && l.nfiles == 0);
    CHECK(l.schema && strstr(l.schema, "\"name\":\"\\u0001\\ttab\xf0\x9f\x98\x80\"") && !strcmp(l.table_id, id0));
    delta_log_free(&l);
}

/* commitInfo.lakefs of the newest commit only; members of other types ignored */
static void test_origin(void)
{
    char err[512];
    delta_log l;
    CHECK(delta_load(os, "public.o", &l, err, sizeof err) == 0 && l.origin.branch == NULL && l.origin.lsn == -1);
    delta_field f[1] = {{"id", "long"}};
    delta_commit_args a = {.fields = f, .nfields = 1, .app_id = "lakefs:main:public.o", .txn_version = 1000,
                           .info = "\"lakefs\":{\"branch\":\"main\",\"timeline\":1,\"lsn\":\"0/3E8\",\"lsnNumber\":1000,"
                                   "\"snapshot\":\"5:7:5\",\"serverStarted\":\"2026-12-07 10:00:00+00\",\"rows\":3}",
                           .now_ms = 1700000000000};
    CHECK(delta_commit(os, "public.o", &l, &a, err, sizeof err) == 0);
    delta_log_free(&l);
    CHECK(delta_load(os, "public.o", &l, err, sizeof err) == 0);
    CHECK(l.origin.branch && !strcmp(l.origin.branch, "main") && l.origin.timeline == 1 && l.origin.lsn == 1000);
    CHECK(l.origin.lsn_text && !strcmp(l.origin.lsn_text, "0/3E8"));
    CHECK(l.origin.snapshot && !strcmp(l.origin.snapshot, "5:7:5"));
    CHECK(l.origin.server_started && !strcmp(l.origin.server_started, "2026-12-07 10:00:00+00"));
    a.info = "\"lakefs\":{\"branch\":\"dev\",\"timeline\":null,\"lsnNumber\":\"x\",\"snapshot\":[1,{}]}";   /* another writer's */
    a.txn_version = 2000;
    CHECK(delta_commit(os, "public.o", &l, &a, err, sizeof err) == 0);
    delta_log_free(&l);
    CHECK(delta_load(os, "public.o", &l, err, sizeof err) == 0 && l.version == 1);
    CHECK(l.origin.branch && !strcmp(l.origin.branch, "dev") && l.origin.timeline == -1 && l.origin.lsn == -1);
    CHECK(!l.origin.snapshot && !l.origin.server_started && !l.origin.lsn_text);   /* not version 0's */
    a.info = NULL;
    CHECK(delta_commit(os, "public.o", &l, &a, err, sizeof err) == 0);
    delta_log_free(&l);
    CHECK(delta_load(os, "public.o", &l, err, sizeof err) == 0 && l.version == 2 && !l.origin.branch);
    delta_log_free(&l);
}

static void test_refusals(void)
{
    char err[512];
    delta_log l;
    put("junk/data.csv", "a,b\n");
    CHECK(delta_load(os, "junk", &l, err, sizeof err) == -ENOTDIR && strstr(err, "not a Delta table"));
    put("gap/_delta_log/00000000000000000000.json", "{\"metaData\":{\"id\":\"x\",\"schemaString\":\"{}\"}}\n");
    put("gap/_delta_log/00000000000000000002.json", "{\"add\":{\"path\":\"p\"}}\n");
    CHECK(delta_load(os, "gap", &l, err, sizeof err) == -EINVAL && strstr(err, "missing"));
    put("bad/_delta_log/00000000000000000000.json", "{\"metaData\":{\"id\":\"x\",\"schemaString\":\"{}\"}}\n{\"add\":{\"path\":\"p\"\n");
    CHECK(delta_load(os, "bad", &l, err, sizeof err) == -EINVAL && strstr(err, "line 2") && strstr(err, "malformed"));
    put("cp/_delta_log/00000000000000000000.json", "{\"metaData\":{\"id\":\"x\",\"schemaString\":\"{}\"}}\n");
    put("cp/_delta_log/00000000000000000000.checkpoint.parquet", "PAR1");
    CHECK(delta_load(os, "cp", &l, err, sizeof err) == -EINVAL && strstr(err, "checkpoints"));
    put("rv/_delta_log/00000000000000000000.json",
        "{\"protocol\":{\"minReaderVersion\":3,\"minWriterVersion\":7,\"readerFeatures\":[\"deletionVectors\"]}}\n"
        "{\"metaData\":{\"id\":\"x\",\"schemaString\":\"{}\"}}\n");
    CHECK(delta_load(os, "rv", &l, err, sizeof err) == -EINVAL && strstr(err, "reader version 3"));
    /* another writer's log with fields this does not need, escapes, nesting */
    put("other/_delta_log/00000000000000000000.json",
        "{\"commitInfo\":{\"a\":[1,2.5e3,-0.1,{\"b\":[[],{}]}],\"t\":true,\"n\":null}}\n"
        "\n"
        "{\"metaData\":{\"id\":\"x\",\"format\":{\"provider\":\"parquet\"},\"schemaString\":\"{\\\"k\\\":\\\"\\u00e4\\ud83d\\ude00\\\"}\"}}\n"
        "{\"add\":{\"path\":\"a%20b.parquet\",\"partitionValues\":{},\"size\":5,\"tags\":{\"x\":\"y\"}}}\n"
        "{\"add\":{\"path\":\"c.parquet\"}}\n"
        "{\"remove\":{\"path\":\"c.parquet\"}}\n");
    CHECK(delta_load(os, "other", &l, err, sizeof err) == 0 && l.nfiles == 1 && !strcmp(l.files[0], "a%20b.parquet") &&
          !strcmp(l.schema, "{\"k\":\"\xc3\xa4\xf0\x9f\x98\x80\"}"));
    delta_log_free(&l);
    /* garbage lines must be refused, never crash */
    static const char *bad[] = {"{", "{\"add\":", "{\"add\":{\"path\":1}}", "{\"txn\":{\"appId\":\"a\"}}",
                                "{\"x\":\"\\ud800\"}", "{\"x\":\"\\u12\"}", "[", "{\"a\":01x}", "{\"a\":\"\x01\"}",
                                "{\"add\":{\"path\":\"p\"}} x", "{\"a\":[1,]}", "{\"a\":-}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char key[128];
        snprintf(key, sizeof key, "g%zu/_delta_log/00000000000000000000.json", i);
        put(key, bad[i]);
        snprintf(key, sizeof key, "g%zu", i);
        int rc = delta_load(os, key, &l, err, sizeof err);
        CHECK(rc == -EINVAL && err[0]);
        if (rc != -EINVAL) fprintf(stderr, "  accepted: %s\n", bad[i]);
    }
    /* deep nesting is bounded */
    char deep[400];
    size_t n = 0;
    deep[n++] = '{'; memcpy(deep + n, "\"a\":", 4); n += 4;
    for (int i = 0; i < 150; i++) deep[n++] = '[';
    deep[n] = 0;
    put("deep/_delta_log/00000000000000000000.json", deep);
    CHECK(delta_load(os, "deep", &l, err, sizeof err) == -EINVAL);
}

static void test_json_escape(void)
{
    delta_buf b = {0};
    delta_buf_json(&b, "a\"b\\c\n\x1f\xc3\xa4", 9);
    CHECK(b.p && !strcmp(b.p, "\"a\\\"b\\\\c\\n\\u001f\xc3\xa4\""));
    delta_buf_free(&b);
    char u1[37], u2[37];
    delta_uuid(u1);
    delta_uuid(u2);
    CHECK(strlen(u1) == 36 && strcmp(u1, u2) && u1[8] == '-' && u1[14] == '4');
}

int main(void)
{
    char dir[64], url[128], err[256];
    harness_tmpdir(dir);
    snprintf(url, sizeof url, "file://%s", dir);
    if (os_open(url, &os, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        return 2;
    }
    test_json_escape();
    test_commits();
    test_origin();
    test_refusals();
    os_close(os);
    harness_rmtree(dir);
    return harness_done();
}

/*
 * test_store_recovery.c -- one branch's store after a crash: kill -9 of a
 * writer process, and what the next open recovers from the local journal,
 * the remote journal (durability=remote) and the repository.
 *
 * What can go wrong: an acknowledged (or synced) batch lost, a batch that
 * was never acknowledged half applied, a recovery that itself crashes and
 * loses what the first one found, two writers' batches mixed.  So every
 * recovery is checked against the reference model of store_model.h
 * (store_get of every key, store_scan of directory, file and inode
 * prefixes, store_alloc_ino above every inode key):
 *  - kill -9 of a writer process at several points (early, mid-run, right
 *    after a flush committed, while a frozen memtable is pending), some of
 *    them followed by a recovery that itself "crashes": every acknowledged
 *    batch survives, the state is exactly some prefix of the batches;
 *  - durability=remote: kill -9 of a writer that synced every batch, then
 *    recovery from a NEW state directory (a new machine) or from one whose
 *    journal files were lost: every synced batch is there;
 *  - takeover with durability=remote: the new writer sees exactly the old
 *    one's synced batches; the old one's next sync and commit fail, and
 *    its unsynced batch never appears, also after reopening;
 *  - a journal left in a state directory after another state directory
 *    wrote the branch is set aside, never replayed;
 *  - a put that refers to an earlier put's bytes (store_batch_put_same: a
 *    WAL page and its archive copy) carries them once in the journal and
 *    reads back the same from the memtable, from the journal replayed
 *    after a kill and from the layer; one whose bytes differ, or that
 *    names a delete or an empty value, is stored whole; a journal record
 *    whose reference points anywhere but an earlier put fails the open.
 * Batch contents are a pure function of (round, batch number), so a process
 * that only knows how many batches were applied can rebuild the model.
 * Kept apart from test_store.c, whose stores are closed, not killed.
 */
#include "harness.h"
#include "journal.h"
#include "store.h"
#include "store_model.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- crashes: kill -9 of a writer process ---- */

#define CRASH_MAXB 1500

typedef struct ack {
    uint64_t batch;               /* 0: the child ran out of batches */
    uint64_t flushes;
    uint64_t memtable_bytes;
} ack;

/* Child: open, commit round R's batches, acknowledge each on WFD; never returns. */
static void crash_child(env *e, int r, int wfd)
{
    store *st = open_store(e, e->child_limit ? e->child_limit : MEMTABLE_LIMIT, 1);
    for (uint64_t b = 1; b <= CRASH_MAXB; b++) {
        if (commit_batch(st, NULL, r, b)) _exit(4);
        if (e->remote && store_sync(st)) _exit(6);
        store_stats s = stats_of(st);
        ack a = { b, s.flushes, s.memtable_bytes };
        if (write(wfd, &a, sizeof a) != sizeof a) _exit(5);
    }
    ack done = {0};
    if (write(wfd, &done, sizeof done) != sizeof done) _exit(5);
    for (;;) pause();
}

enum kill_at { AT_BATCH, AT_FLUSHED, AT_FROZEN };

/* Run round R in a child and kill -9 it when the condition is met;
 * returns the number of batches acknowledged before the kill. */
static uint64_t crash_round(env *e, int r, enum kill_at at, uint64_t n)
{
    int p[2];
    if (pipe(p)) abort();
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) { close(p[0]); crash_child(e, r, p[1]); }
    close(p[1]);
    uint64_t acked = 0, flushes0 = UINT64_MAX, met = 0;
    ack a;
    while (!met && read(p[0], &a, sizeof a) == sizeof a && a.batch) {
        acked = a.batch;
        if (flushes0 == UINT64_MAX) flushes0 = a.flushes;
        met = at == AT_BATCH ? acked >= n
            : at == AT_FLUSHED ? a.flushes >= flushes0 + n
            : a.memtable_bytes > MEMTABLE_LIMIT && acked >= n;
    }
    kill(pid, SIGKILL);
    int status;
    waitpid(pid, &status, 0);
    close(p[0]);
    CHECK(met);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    return acked;
}

/* Open after a crash: the state must be batches 1..S of round R for some
 * S >= ACKED; returns S.  Checks run in the calling process. */
static uint64_t recover_and_check(env *e, model *m, int r, uint64_t seq0, uint64_t acked,
                                  int clean_close)
{
    store *st = open_store(e, MEMTABLE_LIMIT, 1);
    uint64_t s = stats_of(st).seq - seq0;
    CHECK(s >= acked);
    CHECK(s <= CRASH_MAXB);
    model_apply_round(m, r, s);
    check_all(st, m, "after a crash");
    check_alloc_ino(st, m);
    if (clean_close) CHECK(store_close(st) == 0);
    return s;
}

/* Recover in a child that checks and then exits without closing (a crash
 * right after recovery); the parent learns S through a pipe. */
static uint64_t recover_and_crash(env *e, model *m, int r, uint64_t seq0, uint64_t acked)
{
    int p[2];
    if (pipe(p)) abort();
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        close(p[0]);
        harness_failed = 0;
        uint64_t s = recover_and_check(e, m, r, seq0, acked, 0);
        if (write(p[1], &s, sizeof s) != sizeof s) _exit(5);
        _exit(harness_failed ? 1 : 0);
    }
    close(p[1]);
    uint64_t s = 0;
    int got = read(p[0], &s, sizeof s) == sizeof s, status;
    close(p[0]);
    waitpid(pid, &status, 0);
    CHECK(got);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    model_apply_round(m, r, s);
    return s;
}

static void test_crashes(void)
{
    static const struct { enum kill_at at; uint64_t n; int crash_recovery; } rounds[] = {
        { AT_BATCH, 1, 0 },
        { AT_BATCH, 150, 1 },
        { AT_FLUSHED, 2, 0 },                         /* right after the 2nd flush */
        { AT_FROZEN, 20, 1 },                         /* a frozen memtable is pending */
        { AT_FLUSHED, 1, 1 },
        { AT_BATCH, 600, 0 },
    };
    env e;
    env_init(&e);
    static model m;
    model_init(&m);
    uint64_t seq0 = 1;                                /* the branch's first state */
    for (size_t i = 0; i < sizeof rounds / sizeof rounds[0]; i++) {
        int r = 10 + (int)i;
        uint64_t acked = crash_round(&e, r, rounds[i].at, rounds[i].n);
        uint64_t s = rounds[i].crash_recovery ? recover_and_crash(&e, &m, r, seq0, acked)
                                              : recover_and_check(&e, &m, r, seq0, acked, 1);
        seq0 += s;
    }
    store *st = open_store(&e, MEMTABLE_LIMIT, 1);
    CHECK(stats_of(st).seq == seq0);
    check_all(st, &m, "after all crashes");
    CHECK(stats_of(st).layers >= 1 && stats_of(st).manifest_gen > 1);
    CHECK(store_close(st) == 0);
    env_free(&e);
}

/* ---- durability=remote ---- */

/* Delete the journal files of state directory DIR (a lost local disk). */
static int remove_journal(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *de;
    if (!d) return 0;
    while ((de = readdir(d))) {
        char path[512];
        if (strncmp(de->d_name, "journal.", 8)) continue;
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        n += unlink(path) == 0;
    }
    closedir(d);
    return n;
}

static void test_remote_durability(void)
{
    enum { NEW_STATE, LOST_JOURNAL };
    static const struct { enum kill_at at; uint64_t n; int after; } rounds[] = {
        { AT_BATCH, 40, NEW_STATE },
        { AT_FLUSHED, 1, NEW_STATE },                 /* some batches in a layer, some only remote */
        { AT_BATCH, 60, LOST_JOURNAL },
        { AT_FLUSHED, 3, NEW_STATE },
    };
    env e;
    env_init(&e);
    e.remote = 1;
    static model m;
    model_init(&m);
    uint64_t seq0 = 1;
    for (size_t i = 0; i < sizeof rounds / sizeof rounds[0]; i++) {
        int r = 50 + (int)i;
        uint64_t acked = crash_round(&e, r, rounds[i].at, rounds[i].n);
        if (rounds[i].after == NEW_STATE)
            snprintf(e.state, sizeof e.state, "%s/state/machine%zu", e.root, i);
        else
            CHECK(remove_journal(e.state) > 0);
        seq0 += recover_and_check(&e, &m, r, seq0, acked, 1);
    }
    store *st = open_store(&e, MEMTABLE_LIMIT, 1);
    CHECK(stats_of(st).seq == seq0);
    check_all(st, &m, "after remote recoveries");
    CHECK(store_close(st) == 0);
    env_free(&e);
}

static void test_remote_takeover(void)
{
    env e;
    env_init(&e);
    e.remote = 1;
    static model m;
    model_init(&m);
    store *old = open_store(&e, MEMTABLE_LIMIT, 1);
    for (uint64_t b = 1; b <= 30; b++) {
        CHECK(commit_batch(old, &m, 60, b) == 0);
        if (b % 3 == 0) CHECK(store_sync(old) == 0);
    }
    CHECK(commit_batch(old, NULL, 60, 31) == 0);      /* committed, never synced */
    CHECK(store_sync(old) == 0);
    model_apply_round(&m, 60, 0);
    static model want;                                /* what the new writer must see */
    model_init(&want);
    model_apply_round(&want, 60, 31);
    CHECK(commit_batch(old, NULL, 61, 1) == 0);      /* committed after the last sync */

    char old_state[128];
    snprintf(old_state, sizeof old_state, "%s", e.state);
    snprintf(e.state, sizeof e.state, "%s/state/machine2", e.root);
    e.takeover = 1;                                   /* the old writer is alive: take it over */
    store *nw = open_store(&e, MEMTABLE_LIMIT, 1);
    check_all(nw, &want, "new writer after takeover");
    CHECK(store_sync(old) == -EIO);                   /* fenced by the chain */
    CHECK(commit_batch(old, NULL, 61, 2) == -EIO);
    for (uint64_t b = 1; b <= 5; b++) CHECK(commit_batch(nw, &want, 62, b) == 0);
    CHECK(store_sync(nw) == 0);
    CHECK(store_close(old) == -EIO);
    CHECK(store_close(nw) == 0);
    e.takeover = 0;
    nw = open_store(&e, MEMTABLE_LIMIT, 1);
    check_all(nw, &want, "after reopen");
    CHECK(store_close(nw) == 0);
    snprintf(e.state, sizeof e.state, "%s", old_state);   /* moved aside when fenced: a fresh dir */
    nw = open_store(&e, MEMTABLE_LIMIT, 1);
    check_all(nw, &want, "from the old writer's state directory");
    CHECK(store_close(nw) == 0);
    env_free(&e);
}

/* A journal written before another state directory wrote the branch. */
static void test_stale_journal(void)
{
    env e;
    env_init(&e);
    static model m;
    model_init(&m);
    e.child_limit = 64u << 20;                            /* nothing flushed: all in the journal */
    uint64_t acked = crash_round(&e, 70, AT_BATCH, 30);   /* leaves a journal in state A */
    char state_a[128];
    snprintf(state_a, sizeof state_a, "%s", e.state);
    snprintf(e.state, sizeof e.state, "%s/state/b", e.root);
    store *st = open_store(&e, MEMTABLE_LIMIT, 1);        /* local durability: only A's flushed batches */
    uint64_t flushed = stats_of(st).seq - 1;
    CHECK(flushed < acked);                               /* A's journal held more */
    model_apply_round(&m, 70, flushed);
    CHECK(commit_batch(st, &m, 71, 1) == 0);
    CHECK(store_close(st) == 0);
    snprintf(e.state, sizeof e.state, "%s", state_a);
    st = open_store(&e, MEMTABLE_LIMIT, 1);
    CHECK(acked >= 30);
    check_all(st, &m, "a stale journal is not replayed");
    CHECK(store_close(st) == 0);
    DIR *d = opendir(state_a);
    int found = 0;
    struct dirent *de;
    while (d && (de = readdir(d))) found |= !strncmp(de->d_name, "stale-", 6);
    if (d) closedir(d);
    CHECK(found);
    env_free(&e);
}

/* ---- puts that refer to an earlier put's bytes ---- */

/* Page I's 8 KiB of test data into P. */
static void same_page(uint8_t *p, int i)
{
    for (size_t j = 0; j < KEY_PAGE_BYTES; j++) p[j] = (uint8_t)(j * 7 + (size_t)i * 31 + 1);
}

/* Check every key test_put_same's batch wrote, as WHAT. */
static void same_check(store *st, const char *what)
{
    static uint8_t want[KEY_PAGE_BYTES], got[KEY_PAGE_BYTES];
    skey k;
    size_t vlen = 0;
    for (int i = 0; i < 3; i++) {             /* pages 0..2 and their archive copies */
        same_page(want, i);
        key_page(&k, 50, (uint64_t)i);
        CHECK(store_get(st, &k, got, sizeof got, &vlen) == 0 && vlen == sizeof got && !memcmp(got, want, vlen));
        key_walpage(&k, 1, (uint64_t)i);
        int ok = store_get(st, &k, got, sizeof got, &vlen) == 0 && vlen == sizeof got && !memcmp(got, want, vlen);
        CHECK(ok);
        if (!ok) fprintf(stderr, "  %s: archive copy of page %d wrong\n", what, i);
    }
    key_walpage(&k, 1, 10);                   /* referred to a delete: stored whole */
    same_page(want, 10);
    CHECK(store_get(st, &k, got, sizeof got, &vlen) == 0 && vlen == sizeof got && !memcmp(got, want, vlen));
    key_walpage(&k, 1, 11);                   /* referred to an empty value: stored whole (empty) */
    CHECK(store_get(st, &k, got, sizeof got, &vlen) == 0 && vlen == 0);
    key_page(&k, 50, 10);
    CHECK(store_get(st, &k, got, sizeof got, &vlen) == -ENOENT);
}

/* Child: commit the batch, sync it, and die without closing (kill -9's
 * effect: the lock goes with the process, the journal stays). */
static void same_child(env *e)
{
    static uint8_t page[KEY_PAGE_BYTES];
    store *st = open_store(e, MEMTABLE_LIMIT, 0);
    store_batch b;
    store_batch_init(&b);
    skey k;
    size_t marks[3];
    for (int i = 0; i < 3; i++) {
        same_page(page, i);
        key_page(&k, 50, (uint64_t)i);
        marks[i] = store_batch_mark(&b);
        store_batch_put(&b, &k, page, sizeof page);
    }
    for (int i = 0; i < 3; i++) {
        same_page(page, i);
        key_walpage(&k, 1, (uint64_t)i);
        size_t before = store_batch_mark(&b);
        /* page 2's copy names page 1's put: its bytes differ, so it goes whole */
        store_batch_put_same(&b, &k, marks[i == 2 ? 1 : i], page, sizeof page);
        size_t grew = store_batch_mark(&b) - before;
        if (grew != (i == 2 ? 7 + k.len + sizeof page : 7 + k.len + 4u)) _exit(3);
    }
    key_page(&k, 50, 10);
    size_t del = store_batch_mark(&b);
    store_batch_del(&b, &k);
    same_page(page, 10);
    key_walpage(&k, 1, 10);
    store_batch_put_same(&b, &k, del, page, sizeof page);
    key_page(&k, 50, 11);
    size_t empty = store_batch_mark(&b);
    store_batch_put(&b, &k, "", 0);
    key_walpage(&k, 1, 11);
    store_batch_put_same(&b, &k, empty, "", 0);
    if (store_commit(st, &b) || store_sync(st)) _exit(4);
    store_batch_free(&b);
    same_check(st, "in the memtable");
    _exit(harness_done() ? 5 : 0);
}

/* journal_open's replay callback for a journal only appended to. */
static int same_skip(void *arg, const uint8_t *p, size_t len)
{
    (void)arg; (void)p; (void)len;
    return 0;
}

/* Append to the journal in E's state directory a batch of seq SEQ: one
 * put, then an OP_PUT_SAME (type 3) whose reference is REF. */
static void same_bad_record(env *e, uint64_t seq, uint32_t ref)
{
    journal *j = NULL;
    CHECK(journal_open(e->state, same_skip, NULL, &j) == 0);
    if (!j) return;
    uint8_t rec[64];
    uint32_t nops = 2, vl = 2;
    uint16_t kl = 2;
    size_t n = 0;
    memcpy(rec, &seq, 8); memcpy(rec + 8, &nops, 4); n = 12;
    rec[n] = 1; memcpy(rec + n + 1, &kl, 2); memcpy(rec + n + 3, &vl, 4); memcpy(rec + n + 7, "kkvv", 4); n += 11;
    vl = 4;
    rec[n] = 3; memcpy(rec + n + 1, &kl, 2); memcpy(rec + n + 3, &vl, 4); memcpy(rec + n + 7, "k2", 2);
    memcpy(rec + n + 9, &ref, 4); n += 13;
    CHECK(journal_append(j, rec, n) == 0);
    CHECK(journal_sync(j) == 0);
    journal_close(j);
}

static void test_put_same(void)
{
    env e;
    env_init(&e);
    pid_t pid = fork();
    if (pid == 0) same_child(&e);
    int status = 0;
    CHECK(pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0);
    /* the child flushed nothing (no flusher started): all of it comes from replaying its journal */
    store *st = open_store(&e, MEMTABLE_LIMIT, 1);
    same_check(st, "replayed from the journal");
    uint64_t seq = stats_of(st).seq;
    CHECK(store_close(st) == 0);
    st = open_store(&e, MEMTABLE_LIMIT, 1);
    CHECK(stats_of(st).memtable_bytes == 0);          /* read from the layer */
    same_check(st, "from the layer");
    CHECK(store_close(st) == 0);
    /* references that do not name an earlier put: the open fails, nothing is applied */
    const uint32_t bad[] = { 12 + 11 + 1, 12 + 11, 12 + 11 + 13, 4, 0xffffffffu };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        same_bad_record(&e, seq + 1, bad[i]);
        char err[512] = "";
        store_config cfg = { .os = e.os, .branch = "main", .state_dir = e.state, .memtable_limit = MEMTABLE_LIMIT };
        store *bst = NULL;
        int rc = store_open(&cfg, &bst, err, sizeof err);
        CHECK(rc == -EIO && strstr(err, "cannot replay the journal"));
        if (!rc) { store_close(bst); break; }
        CHECK(remove_journal(e.state) > 0);
    }
    same_bad_record(&e, seq + 1, 12);                 /* the same record, pointing at its put: applies */
    st = open_store(&e, MEMTABLE_LIMIT, 1);
    skey k = { .len = 2 };
    memcpy(k.b, "k2", 2);
    char v[8];
    size_t vlen = 0;
    CHECK(store_get(st, &k, v, sizeof v, &vlen) == 0 && vlen == 2 && !memcmp(v, "vv", 2));
    CHECK(store_close(st) == 0);
    env_free(&e);
}

int main(void)
{
    test_crashes();
    test_remote_durability();
    test_remote_takeover();
    test_stale_journal();
    test_put_same();
    return harness_done();
}

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
 *    wrote the branch is set aside, never replayed.
 * Batch contents are a pure function of (round, batch number), so a process
 * that only knows how many batches were applied can rebuild the model.
 * Kept apart from test_store.c, whose stores are closed, not killed.
 */
#include "harness.h"
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

int main(void)
{
    test_crashes();
    test_remote_durability();
    test_remote_takeover();
    test_stale_journal();
    return harness_done();
}

/*
 * cmd_history.c -- `lakefs lsn BRANCH --at TIME` and `lakefs log BRANCH`:
 * a branch's past as PostgreSQL knows it, read from its WAL archive
 * (fs/pg/): the LSN where the state at a moment ends, and the checkpoints
 * and branch points within reach of time travel.  Both read the repository
 * only; a daemon serving the branch checkpoints first so the newest WAL is
 * included.
 */
#include "../fs/pg/pg_target.h"
#include "../fs/pg/pg_wal.h"
#include "../fs/pg/pg_walscan.h"
#include "../store/branch.h"
#include "../store/manifest.h"
#include "../objstore/objstore.h"
#include "../store/store.h"
#include "cli.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *usage_lsn =
    "usage: lakefs lsn BRANCH --at TIME [--repo URL]\n"
    "\n"
    "Print the LSN at which BRANCH's state at TIME (ISO 8601 with a zone,\n"
    "2026-11-23T10:32:05Z) ends: the start of the first commit or abort record\n"
    "stamped later, or the end of the WAL if there is none.  BRANCH@LSN and\n"
    "BRANCH@TIME show the same state.\n";

static const char *usage_log =
    "usage: lakefs log BRANCH [--repo URL]\n"
    "\n"
    "BRANCH's history within reach of time travel, oldest first: PostgreSQL's\n"
    "checkpoints (from the WAL archive) and branch points (where BRANCH was\n"
    "created from its parent, and where children were created from it), each\n"
    "with its time (UTC) and LSN.\n";

int cmd_lsn(int argc, char **argv)
{
    cli_args a = { 0 };
    const char *name;
    int rc = cli_parse_args("lsn", argc, argv, usage_lsn, &a, &name);
    if (rc >= 0) return rc;
    if (!name || a.npos || a.from) return cli_usage_fail("lsn: usage: lakefs lsn BRANCH --at TIME [--repo URL]");
    if (!a.at) return cli_usage_fail("lsn: --at TIME is missing (usage: lakefs lsn BRANCH --at TIME [--repo URL])");
    if (cli_check_name("branch", name)) return 1;
    objstore *os;
    if (cli_args_repo(&a, &os)) return 1;
    pg_target t;
    pg_base base;
    store *archive;
    uint64_t cut;
    rc = cli_resolve_target(os, name, a.at, &t, &base, &archive, &cut);
    if (!rc) rc = cli_target_end(name, archive, &t, &base, cut, &cut);
    if (archive) store_close(archive);
    os_close(os);
    if (rc) return rc;
    char lsn[PG_LSN_LEN];
    pg_wal_lsn_format(cut, lsn, sizeof lsn);
    printf("%s\n", lsn);
    return 0;
}

typedef struct log_event {
    uint64_t lsn;
    int64_t time_s;
    char what[160];
} log_event;

typedef struct log_ctx {
    log_event *e;
    size_t n, cap;
} log_ctx;

/* Add an event to L; -ENOMEM. */
static int log_add(log_ctx *l, uint64_t lsn, int64_t time_s, const char *what)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        log_event *ne = realloc(l->e, cap * sizeof *ne);
        if (!ne) return -ENOMEM;
        l->e = ne; l->cap = cap;
    }
    log_event *e = &l->e[l->n++];
    e->lsn = lsn; e->time_s = time_s;
    snprintf(e->what, sizeof e->what, "%s", what);
    return 0;
}

/* pg_walscan callback: checkpoints into the log. */
static int log_record(void *arg, const pg_walrec *r)
{
    uint64_t redo;
    int64_t when;
    int shutdown;
    if (!pg_walrec_checkpoint(r, &redo, &when, &shutdown)) return 0;
    char what[80], lsn[PG_LSN_LEN];
    pg_wal_lsn_format(redo, lsn, sizeof lsn);
    snprintf(what, sizeof what, "%scheckpoint (redo %s)", shutdown ? "shutdown " : "", lsn);
    return log_add(arg, r->lsn, when, what);
}

static int log_cmp(const void *a, const void *b)
{
    const log_event *x = a, *y = b;
    return x->lsn < y->lsn ? -1 : x->lsn > y->lsn;
}

int cmd_log(int argc, char **argv)
{
    cli_args a = { 0 };
    const char *name;
    int rc = cli_parse_args("log", argc, argv, usage_log, &a, &name);
    if (rc >= 0) return rc;
    if (!name || a.npos || a.from || a.at) return cli_usage_fail("log: usage: lakefs log BRANCH [--repo URL]");
    if (cli_check_name("branch", name)) return 1;
    objstore *os;
    if (cli_args_repo(&a, &os)) return 1;
    pg_wal_pos oldest;
    char text[PG_TARGET_TEXT];
    if ((rc = pg_target_oldest(os, name, &oldest))) {
        os_close(os);
        return cli_fail(rc == -ENOENT ? "branch '%s' has no PostgreSQL WAL (or does not exist; see lakefs branch list)"
                    : "branch '%s': cannot read its history: %s", name, strerror(-rc));
    }
    snprintf(text, sizeof text, "%" PRIX32 "/%" PRIX32, (uint32_t)(oldest.lsn >> 32), (uint32_t)oldest.lsn);
    pg_target t;
    pg_base base;
    store *archive;
    uint64_t cut;
    log_ctx l = { 0 };
    rc = cli_resolve_target(os, name, text, &t, &base, &archive, &cut);
    if (!rc) {                    /* PostgreSQL's checkpoints, from the oldest reachable one on */
        pg_wal_pos pos;
        uint64_t end;
        pg_archive ar = { archive, UINT64_MAX };
        int src = pg_wal_pos_get(archive, &pos);
        if (!src) src = pg_walscan(&ar, pos.tli, base.checkpoint, log_record, &l, &end);
        if (src) rc = cli_fail("branch '%s': cannot read its WAL archive: %s", name, strerror(-src));
        store_close(archive);
    }
    branch_info *b = NULL;
    size_t n = 0;
    char err[600];
    if (!rc && branch_list(os, &b, &n, err, sizeof err)) rc = cli_fail("%s", err);
    for (size_t i = 0; !rc && i < n; i++) {   /* branch points: of NAME itself, and of its children */
        int child = !strcmp(b[i].meta.parent, name);
        if (!child && strcmp(b[i].name, name)) continue;
        if (!b[i].meta.parent[0]) continue;
        manifest m;
        pg_wal_pos p = { .lsn = b[i].meta.at_lsn };
        if (!p.lsn) {
            if (manifest_load(os, b[i].meta.parent, b[i].meta.parent_gen, &m)) continue;
            int prc = pg_wal_pos_at(os, &m, &p);
            manifest_free(&m);
            if (prc) continue;
        }
        char what[160];
        if (child) snprintf(what, sizeof what, "branch %s created here", b[i].name);
        else snprintf(what, sizeof what, "created from %s", b[i].meta.parent);
        if (log_add(&l, p.lsn, b[i].meta.created, what)) rc = cli_fail("out of memory");
    }
    branch_list_free(b, n);
    os_close(os);
    if (!rc) {
        qsort(l.e, l.n, sizeof *l.e, log_cmp);
        printf("%-20s  %-12s  %s\n", "TIME", "LSN", "EVENT");
        for (size_t i = 0; i < l.n; i++) {
            char when[32], lsn[PG_LSN_LEN];
            cli_fmt_utc(l.e[i].time_s, when, sizeof when);
            pg_wal_lsn_format(l.e[i].lsn, lsn, sizeof lsn);
            printf("%-20s  %-12s  %s\n", when, lsn, l.e[i].what);
        }
    }
    free(l.e);
    return rc;
}

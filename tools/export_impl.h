/*
 * export_impl.h -- what export.c (the command and the tables' export) and
 * export_view.c (PostgreSQL started on a time-travel view) share.
 */
#ifndef LAKEFS_EXPORT_IMPL_H
#define LAKEFS_EXPORT_IMPL_H

#include <stdint.h>
#include <sys/types.h>

typedef struct view_pg {
    pid_t pid;                    /* the postmaster, 0 if none */
    char sockdir[64];             /* private socket directory (hba file, log) */
    char lsn_text[32];            /* the point "X/Y" */
    uint64_t lsn;
    char dsn[512];
    char view[4400];              /* MOUNT/branches/BRANCH@X-Y */
} view_pg;

/* Print "lakefs: export: MSG" on stderr; returns STATUS. */
int export_fail(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Seconds on the monotonic clock. */
double export_mono_s(void);

/* The point AT (LSN or TIME) of BRANCH and its read-only view in the
 * mounted repository REPO (or the one found) into V; 1 on error (printed). */
int export_view_resolve(const char *branch, const char *at, const char *repo, view_pg *v);

/* Start PostgreSQL on V's view as the view's owner, reachable only through
 * a private socket directory, and wait until it takes connections to
 * DBNAME; 1 on error (printed; export_view_stop cleans up). */
int export_view_start(const char *dbname, view_pg *v);

/* Stop V's server (fast shutdown) and remove its private directory. */
void export_view_stop(view_pg *v);

#endif

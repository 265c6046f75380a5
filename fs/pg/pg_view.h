/*
 * pg_view.h -- what a view of a branch changes for PostgreSQL.
 *
 * A branch is taken from a running server, or a daemon dies under one, so
 * a branch's root can hold a postmaster.pid naming a server that cannot be
 * running on this view: only a server started through this mount could
 * be, and the mount has just opened the branch.  PostgreSQL refuses to
 * start while postmaster.pid names a live process (the parent's server
 * usually is alive, on the same machine), so the view drops these files
 * when it opens the branch.
 */
#ifndef LAKEFS_PG_VIEW_H
#define LAKEFS_PG_VIEW_H

/* NULL-terminated names of the files in a data directory's root that
 * belong to a running server only. */
const char *const *pg_view_stale_files(void);

/* The one of those a server keeps while it runs (postmaster.pid): absent,
 * no server is running on the directory. */
const char *pg_view_lock_file(void);

/* 1 if creating a file NAME in a data directory's root means a server is
 * starting on it (it is the lock file), else 0. */
int pg_view_starts_server(const char *name);

/* 1 if removing NAME from a data directory's root means the server's
 * recovery is over: recovery.signal or standby.signal (removed when
 * archive recovery ends) or the lock file (the server stopped); else 0. */
int pg_view_recovery_ends(const char *name);

#endif

/*
 * pg_view.c -- the files of a data directory that only a running server's
 * life justifies (see pg_view.h).
 *
 * postmaster.pid is PostgreSQL's lock file: PID, data directory, start
 * time, port, socket directory, shared memory key; postmaster.opts records
 * the server's command line.  Both are written at start and removed at a
 * clean shutdown (src/backend/utils/init/miscinit.c, postmaster.c).
 */
#include "pg_view.h"
#include "pg_target.h"

#include <stddef.h>
#include <string.h>

const char *const *pg_view_stale_files(void)
{
    static const char *const names[] = { "postmaster.pid", "postmaster.opts", NULL };
    return names;
}

const char *pg_view_lock_file(void)
{
    return pg_view_stale_files()[0];
}

int pg_view_starts_server(const char *name)
{
    return strcmp(name, pg_view_lock_file()) == 0;
}

int pg_view_recovery_ends(const char *name)
{
    return !strcmp(name, PG_TARGET_SIGNAL) || !strcmp(name, "standby.signal") || !strcmp(name, pg_view_lock_file());
}

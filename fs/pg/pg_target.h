/*
 * pg_target.h -- points in a branch's past, and how PostgreSQL gets there.
 *
 * A target is an LSN ("0/16B3748", or "0-16B3748" where a file name cannot
 * hold a slash) or a moment (ISO 8601 with a zone: "2026-11-23T10:32:05Z",
 * "...05.25+02:00").
 *
 * A view of a branch at a target is PostgreSQL's own archive recovery
 * (DESIGN.md section 5), made exact by cutting the WAL:
 *
 *  1. a base state: the newest committed state of the branch whose
 *     recorded WAL position
 *     (pg_wal.h) is at or before the target: no data page in it is newer
 *     than the target (PostgreSQL writes WAL before the pages it covers),
 *     so recovery from its checkpoint can stop exactly there.  For a moment,
 *     "before" is by the wall-clock time of the last WAL write, which is at
 *     or after the time of every commit in that WAL;
 *  2. the branch's WAL archive (pg_archive.h) cut at the target's LSN: for
 *     an LSN, itself (the WAL before it is kept whole: every record that
 *     ends by then, as pg_current_wal_insert_lsn() promised); for a moment,
 *     the start of the first commit or abort record stamped later (found by
 *     pg_walscan.h; none: the whole WAL).  Recovery replays to the cut,
 *     finds nothing more, and promotes.  Nothing is left to a recovery
 *     target that PostgreSQL might not reach (it refuses to start then);
 *  3. recovery settings appended to postgresql.auto.conf (read last, so
 *     they win): restore_command reads the view's hidden .lakefs-wal
 *     directory (PostgreSQL runs it in the data directory, so the relative
 *     path works wherever the repository is mounted, and listings of the
 *     data directory never show it); hot_standby off, so the server takes
 *     no connection before it stands exactly at the target; and
 *     recovery.signal.  A read-only view also gets
 *     default_transaction_read_only: what the server writes there goes to
 *     the view's throw-away overlay anyway.
 *
 * Errors: -errno with a one-line reason naming the branch and the target.
 */
#ifndef LAKEFS_PG_TARGET_H
#define LAKEFS_PG_TARGET_H

#include <stddef.h>
#include <stdint.h>
#include "../../objstore/objstore.h"
#include "../../store/store.h"
#include "pg_wal.h"

#define PG_TARGET_TEXT 48         /* a target's text form, with its NUL */

typedef struct pg_target {      /* a point in a branch's past */
    int is_time;                  /* 0: lsn; 1: time_us */
    uint64_t lsn;
    int64_t time_us;              /* microseconds since the epoch, UTC */
} pg_target;

/* Parse TEXT as an LSN ("X/X" or "X-X") or an ISO 8601 moment with a zone
 * into T: 0, or -EINVAL. */
int pg_target_parse(const char *text, pg_target *t);
/* T as it is written in a view's name ("0-16B3748", "2026-11-23T10:32:05Z"
 * with ".ffffff" only when there are fractions) into BUF. */
void pg_target_format(const pg_target *t, char *buf, size_t len);

typedef struct pg_base {          /* where recovery to a target starts */
    char branch[64];              /* the branch whose state it is (BRANCH or an ancestor) */
    uint64_t gen;                 /* that branch's manifest generation */
    uint64_t lsn;                 /* its recorded WAL position */
    int64_t time_us;              /* ... and when that WAL was last written */
    uint64_t checkpoint;          /* the LSN of the checkpoint record its pg_control names */
    uint64_t floor_lsn;           /* where the branch began, if at a point of its parent's past (else 0) */
} pg_base;

/* The base state for target T of BRANCH, whose newest manifest holds every
 * WAL byte written so far (checkpoint a mounted branch first), into *B.
 * Refuses a target past the branch's WAL or in the future (-ERANGE) and
 * one older than the window of RETENTION_S seconds (0: no limit) -- a
 * moment before its start, an LSN before the window's base, the newest
 * state made before it -- before the branch began, before its first WAL
 * or before the WAL kept (-ENOENT); the
 * reason in ERR names the oldest and newest points that can be reached. */
int pg_target_base(objstore *os, const char *branch, const pg_target *t, int64_t retention_s,
                   pg_base *b, char *err, size_t errlen);

/* The oldest point of BRANCH's past into *P: its first generation's WAL
 * position, or where it began if that is later (a branch made at a point
 * of its parent's past; the time is then its creation time).  0, -ENOENT
 * (no WAL), or -errno. */
int pg_target_oldest(objstore *os, const char *branch, pg_wal_pos *p);

/* Where the WAL that time travel in BRANCH within RETENTION_S seconds
 * before NOW_US can need begins, into *REDO: the redo pointer of the
 * oldest generation a target in the window can have as its base (the
 * window's base, the newest one made before it, which gc keeps; the
 * oldest if none is that old); the archive may be trimmed below it
 * (pg_archive_trim).  0, -ENOENT (that generation holds no pg_control
 * yet), or -errno. */
int pg_target_horizon(objstore *os, const char *branch, int64_t retention_s, int64_t now_us, uint64_t *redo);

/* Where the archive in store ARCHIVE (the branch's state that holds every
 * WAL byte up to now) is cut for target T with base B, into *CUT
 * (UINT64_MAX: nowhere, the whole WAL).  0, or -errno with ERR set. */
int pg_target_cut(store *archive, const pg_target *t, const pg_base *b, uint64_t *cut, char *err, size_t errlen);

/* The signal file a view's recovery starts from; PostgreSQL removes it
 * when archive recovery ends. */
#define PG_TARGET_SIGNAL "recovery.signal"

/* The settings that make PostgreSQL recover from the archive to its cut
 * and promote: lines for postgresql.auto.conf into BUF (truncated to LEN)
 * and the signal file to create into *SIGNAL.  READ_WRITE: a branch that
 * starts at the target; else a read-only view. */
void pg_target_settings(int read_write, char *buf, size_t len, const char **signal);

#endif

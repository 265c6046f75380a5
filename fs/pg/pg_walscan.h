/*
 * pg_walscan.h -- reading PostgreSQL's WAL records from a branch's archive,
 * to turn a moment into the exact LSN where recovery must stop.
 *
 * PostgreSQL's own recovery_target_time stops before the first commit or
 * abort record stamped later than the target, and refuses to start at all
 * when the WAL ends before such a record.  lakefs finds that record itself,
 * so that a time-travel view is an archive cut at an LSN (pg_target.h):
 * exact, and always reachable.  The same scan answers `lakefs lsn --at`.
 *
 * The reader knows PostgreSQL 15's WAL format (access/xlog_internal.h,
 * access/xlogrecord.h): 8 KiB pages with a short or long header; records
 * aligned to 8 bytes, a 24-byte header (total length, xid, previous
 * record, info, resource manager, CRC-32C), possibly spanning pages as
 * continuation data; block references, then the main data, last; after
 * a WAL switch record the next record starts the next segment.  A
 * record is taken only if it is whole, its CRC matches and it points back
 * to the record before it; the first one that is not ends the WAL, as for
 * PostgreSQL.  Which timeline holds an LSN comes from the newest history
 * file in the archive.
 *
 * Errors: -errno (reading the store); damage in the WAL is its end, not
 * an error.
 */
#ifndef LAKEFS_PG_WALSCAN_H
#define LAKEFS_PG_WALSCAN_H

#include <stdint.h>
#include "pg_archive.h"

typedef struct pg_walrec {        /* one whole, valid WAL record */
    uint64_t lsn;                 /* where it starts */
    uint64_t end;                 /* the position after it */
    uint8_t rmid;                 /* resource manager */
    uint8_t info;                 /* xl_info */
    uint32_t xid;
    const uint8_t *data;          /* its main data (NULL if the block headers do not parse) */
    uint64_t len;
} pg_walrec;

/* Called for each record in order; non-zero stops the scan and is returned. */
typedef int (*pg_walscan_fn)(void *arg, const pg_walrec *r);

/* Read the WAL in archive A, timeline TLI being the newest, record by
 * record from the one that starts at FROM (a checkpoint record, say) until
 * it ends or FN stops; *END gets the end of the last record read.  FN's
 * result, 0, or -errno. */
int pg_walscan(const pg_archive *a, uint32_t tli, uint64_t from, pg_walscan_fn fn, void *arg, uint64_t *end);

/* If R is a commit or abort (the records recovery_target_time looks at),
 * its time in microseconds since the Unix epoch into *US: 1, else 0. */
int pg_walrec_xact_time(const pg_walrec *r, int64_t *us);
/* If R is a checkpoint record, its redo LSN and time (seconds since the
 * Unix epoch) and whether it is a shutdown checkpoint: 1, else 0. */
int pg_walrec_checkpoint(const pg_walrec *r, uint64_t *redo, int64_t *time_s, int *shutdown);

/* 1 if R is the commit or abort record of top-level transaction XID (what
 * recovery_target_xid stops after), else 0. */
int pg_walrec_is_xact_end(const pg_walrec *r, uint32_t xid);
/* 1 if R is a restore point named NAME (pg_create_restore_point; what
 * recovery_target_name stops after), else 0. */
int pg_walrec_is_restore_point(const pg_walrec *r, const char *name);

typedef struct pg_walscan_result {
    uint64_t cut;                 /* start of the first commit/abort stamped after the moment; UINT64_MAX: none */
    uint64_t end;                 /* end of the last whole record read */
    uint64_t records;             /* records read */
} pg_walscan_result;

/* Scan the WAL in archive A, timeline TLI being the newest, from the
 * record that starts at FROM (a checkpoint record, say) for the first
 * commit or abort record stamped later than TIME_US (microseconds since
 * the Unix epoch), into *R. */
int pg_walscan_time(const pg_archive *a, uint32_t tli, uint64_t from, int64_t time_us, pg_walscan_result *r);

#endif

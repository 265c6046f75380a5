/*
 * pg_archive.h -- the WAL archive of a branch, read back as PostgreSQL's
 * restore_command wants it.
 *
 * The WAL observer (pg_wal.h) stores every WAL page PostgreSQL writes by
 * timeline and LSN, and every timeline history file, in the branch's own
 * store: a fork inherits its parent's archive up to the branch point, like
 * any other key.  Here the archive is read back as files: segments named
 * as in pg_wal/ (always the full segment size, zeros where nothing was
 * written, so a segment still being written reads as PostgreSQL expects a
 * restored one to) and NNNNNNNN.history files.  A name the archive does
 * not hold does not exist: PostgreSQL probes for history files and for the
 * segment after the last one to find where the WAL ends.
 *
 * The segment size is the one recorded with the branch's WAL position.
 *
 * An archive can be cut at an LSN: bytes at or past it read as zeros and
 * segments that start there or later do not exist, so recovery from it
 * ends exactly there, as if the WAL had never gone further (a time-travel
 * view's archive, pg_target.h).
 *
 * An archive is trimmed from below as time travel stops needing it
 * (pg_archive_trim): whole segments before an LSN go, and the meta key
 * "wal_trimmed" records where the archive now begins, so that nothing
 * tries to recover from a checkpoint whose WAL is gone (pg_target.h).
 *
 * Errors: -errno (-ENOENT: no such file in the archive).
 */
#ifndef LAKEFS_PG_ARCHIVE_H
#define LAKEFS_PG_ARCHIVE_H

#include <stddef.h>
#include <stdint.h>
#include "../../store/store.h"

typedef struct pg_archive {       /* an archive to read */
    store *st;                    /* the store holding it */
    uint64_t end;                 /* the cut: nothing at or past this LSN (UINT64_MAX: none) */
} pg_archive;

typedef struct pg_archive_file {  /* a file of the archive, by name */
    uint32_t tli;                 /* its timeline */
    int history;                  /* 1: the timeline's history file; 0: a segment */
    uint64_t segno;               /* segment number (segments only) */
    uint64_t size;                /* bytes (for a segment: the segment size) */
} pg_archive_file;

/* Look NAME up in archive A into *F: 0, -ENOENT, or -errno. */
int pg_archive_lookup(const pg_archive *a, const char *name, pg_archive_file *f);
/* The size of file F of archive A, named by its tli and history or segno,
 * into F->size: 0, -ENOENT, or -errno. */
int pg_archive_stat(const pg_archive *a, pg_archive_file *f);
/* Read LEN bytes at OFF of file F (from pg_archive_lookup or _list) into
 * BUF; reads past the end are cut short: the bytes read, or -errno. */
long pg_archive_read(const pg_archive *a, const pg_archive_file *f, uint64_t off, void *buf, size_t len);
/* The name of F (at most 24 characters) into BUF (at least 25 bytes). */
void pg_archive_name(const pg_archive_file *f, char *buf, size_t len);

/* Call FN for each file of archive A: history files, then segments in
 * timeline and position order; FN returning non-zero stops the listing
 * and is returned. */
typedef int (*pg_archive_fn)(void *arg, const char *name, const pg_archive_file *f);
int pg_archive_list(const pg_archive *a, pg_archive_fn fn, void *arg);

/* Copy the archive pages of A holding LSNs FROM..A's cut (which must be
 * set), their segments' keys and every history file, into store TO, in
 * batches: a branch that starts at a past point takes the WAL it recovers
 * through.  The bytes past the cut are copied as zeros.  0 or -errno. */
int pg_archive_copy(const pg_archive *a, uint64_t from, store *to);

/* Where the archive in ST begins after trimming into *LSN (0: never
 * trimmed): 0 or -errno. */
int pg_archive_trimmed(store *st, uint64_t *lsn);
/* Same, for the state manifest M of OS commits. */
int pg_archive_trimmed_at(objstore *os, const manifest *m, uint64_t *lsn);

/* Delete from the archive in ST every segment, of any timeline, that ends
 * at or before LSN REDO (recovery starts there; the segment holding it
 * stays whole, as PostgreSQL reads a segment's first page when it opens
 * it), with its pages; first record where the archive now begins.  A
 * segment whose file is still in ST's pg_wal/ stays, and so does every
 * one after it (a segment file's pages are its archive pages, fs_attr).
 * The count of segments deleted into *SEGMENTS.  0 or -errno. */
int pg_archive_trim(store *st, uint64_t redo, uint64_t *segments);

#endif

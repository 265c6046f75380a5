/*
 * journal.h -- the local write-ahead journal of a branch's memtable.
 *
 * Every committed batch is appended to the current journal file with one
 * write() before the call returns, so a batch survives kill -9 of the
 * daemon as soon as it is acknowledged; journal_sync makes it survive power
 * loss too, grouping concurrent callers behind one fdatasync.  Files are
 * named journal.NNNNNNNNNNNNNNNN in a state directory; rotation starts a new
 * file when the memtable is frozen, and files are dropped once the layers
 * holding their batches are committed in a manifest.
 *
 * Files are switched for the next at about 64 MiB, and dropped files are
 * kept (journal-spare.ID, a few) to be written over by the next ones: an
 * fdatasync after overwriting costs well under half of one after
 * appending (journal.c).
 *
 * Record: magic u32, payload length u32, crc32c(payload) u32, tag u32 (of
 * the file's id; 0 in journals of earlier versions), payload.  A file
 * switched away ends with an end record.  Replay stops at the first short
 * or damaged record of the last file, or one of an earlier use of the
 * file (a torn tail) and truncates it away.
 */
#ifndef LAKEFS_JOURNAL_H
#define LAKEFS_JOURNAL_H

#include <stddef.h>
#include <stdint.h>

typedef struct journal journal;

/* Called by journal_open for each record payload, oldest first. */
typedef int (*journal_replay_fn)(void *arg, const uint8_t *payload, size_t len);

/* Open the journal in DIR (which must exist): replay every record through
 * FN, then start a fresh file for appends.  Errors are logged with the path. */
int journal_open(const char *dir, journal_replay_fn fn, void *arg, journal **out);
/* Close without syncing (the caller syncs first if it must). */
void journal_close(journal *j);

/* Append one record; returns 0 or -errno.  Callers serialise appends. */
int journal_append(journal *j, const void *payload, size_t len);
/* Make everything appended so far durable (group commit across threads). */
int journal_sync(journal *j);

/* What journal_sync's fdatasyncs cost: how a commit's fsync is spent. */
typedef struct journal_stats {
    uint64_t syncs;               /* fdatasyncs run */
    uint64_t bytes;               /* bytes appended since the sync before, summed */
    uint64_t ns, max_ns;          /* time in them, in all and the longest */
} journal_stats;
void journal_get_stats(journal *j, journal_stats *out);
/* Sync and close the current file, start the next; *OLD gets the id of the
 * newest file that is now closed (everything up to it may be dropped once
 * its contents are committed elsewhere). */
int journal_rotate(journal *j, uint64_t *old);
/* Delete every journal file with id <= UPTO but the current one, keeping
 * a few as spares to reuse. */
int journal_drop(journal *j, uint64_t upto);
/* Switch files at BYTES instead of 64 MiB (0: the default), for tests. */
void journal_file_bytes_set(size_t bytes);

#endif

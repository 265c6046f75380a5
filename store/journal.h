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
 * Record: magic u32, payload length u32, crc32c(payload) u32, zero u32,
 * payload.  Replay stops at the first short or damaged record of the last
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
/* Sync and close the current file, start the next; *OLD gets the id of the
 * newest file that is now closed (everything up to it may be dropped once
 * its contents are committed elsewhere). */
int journal_rotate(journal *j, uint64_t *old);
/* Delete every journal file with id <= UPTO. */
int journal_drop(journal *j, uint64_t upto);

#endif

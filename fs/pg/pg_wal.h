/*
 * pg_wal.h -- the WAL observer: PostgreSQL's WAL position (LSN) at every
 * seq, and the WAL archive.
 *
 * PostgreSQL writes its WAL into segment files of the data directory's
 * pg_wal/, named by 24 hex digits: timeline, log and segment number (8
 * each).  A write into segment SEGNO of a cluster with segments of SEGSIZE
 * bytes, ending at byte END of the file, has written the WAL up to LSN
 * SEGNO * SEGSIZE + END.  The observer sees every write of the daemon's
 * branch (fs.c calls it inside the write's inode transaction) and adds to
 * the write's own store batch:
 *
 *  - the written pages as WAL archive keys by timeline and LSN (key.h;
 *    read back through pg_archive.h), so the archive holds every WAL byte
 *    however PostgreSQL recycles its segment files, and commits
 *    atomically with the write (a crash loses neither or both).  Once a
 *    full-sized segment is written, its file is mapped onto these pages
 *    (fs_attr.wal_tli in fs/fs_impl.h): fs.c then stores the file's pages
 *    as the archive pages themselves, and the observer adds none, so the
 *    WAL is stored once;
 *  - the position (pg_wal_pos: the highest LSN written so far, the
 *    wall-clock time of this write, the timeline, the segment size) as
 *    the meta key "wal_pos" (key.h).
 *
 * So the position at any seq is the WAL end at that seq: a fork inherits it
 * at its branch point, journal replay restores it, and the position of any
 * committed state is one key read through its manifest (pg_wal_pos_at).
 * WAL goes to the files in whole 8 KiB pages, so the LSN seen is the end of
 * the last page written, at or past what pg_current_wal_lsn() said then:
 * no WAL in that state lies beyond it.  PostgreSQL writes its last,
 * partly filled page again and again as records are added, so the time
 * moves with every WAL write, not only with the LSN: every commit record in
 * the state's WAL carries a time at or before the recorded one (PostgreSQL
 * stamps a commit before writing it).
 *
 * Timeline history files (NNNNNNNN.history) are written under a temporary
 * name and renamed into place; the rename's batch archives the content as
 * the meta key "wal_history/NNNNNNNN" (pg_wal_renamed).  So are segments
 * made under a temporary name: at a timeline switch PostgreSQL copies the
 * WAL before the switch point into the new timeline's first segment that
 * way (a new segment is all zeros: nothing to archive).
 *
 * PostgreSQL ends every checkpoint by writing global/pg_control, naming
 * the checkpoint record recovery starts from (ControlFileData.checkPoint,
 * 32 bytes in).  The observer tells fs.c when a write of the branch root's
 * pg_control names a new one (pg_wal_checkpointed), and fs.c has the
 * store commit a manifest generation of that state soon
 * (store_flush_soon): a base state for time travel to any later point, so
 * a quiet branch whose memtable never fills still has one per checkpoint
 * (initdb's included).  The observer starts from the checkpoint the
 * branch's pg_control names when it opens, so a server's start, which
 * writes pg_control naming the same one, is no new one.  Recovery to a
 * target then replays at most the WAL from the redo point of the
 * checkpoint before the base to the target: PostgreSQL checkpoints every
 * checkpoint_timeout (5 min) or max_wal_size of WAL while anything is
 * written, so that is about two checkpoint intervals of WAL at most (gc's
 * thinning, gc.h, keeps fewer bases in the older part of the window).
 *
 * The segment size is the file's size when that is a power of two between
 * 1 MiB and 1 GiB (initdb --wal-segsize; PostgreSQL fills a segment to its
 * full size before it gets its name), else 16 MiB.  Only the branch root's
 * pg_wal/ directory counts (a pg_wal symlink, initdb -X, is not followed),
 * and in it only segment names: not xlogtemp.*, *.partial, *.history,
 * *.backup or archive_status/.
 *
 * The observer finds a written inode's name in a small cache, inode ->
 * segment, filled by one scan of pg_wal/'s entries when an inode it does
 * not know is written (negative answers are cached too).  Names change by
 * rename and unlink only (PostgreSQL recycles an old segment by renaming it
 * to a future name), and fs.c tells the observer of both (pg_wal_forget).
 *
 * Thread safety: every function may be called from any FUSE thread.  The
 * recorded position only grows: from the moment a WAL write takes its
 * position until its batch is committed (pg_wal_written), other WAL writes
 * wait (PostgreSQL writes its WAL one writer at a time anyway), so batches
 * carrying "wal_pos" commit in the order of their values.
 *
 * Errors: -errno; the store's own read errors are logged by the store.
 */
#ifndef LAKEFS_PG_WAL_H
#define LAKEFS_PG_WAL_H

#include <stddef.h>
#include <stdint.h>
#include "../../store/manifest.h"
#include "../../objstore/objstore.h"
#include "../../store/store.h"

#define PG_WAL_SEGSIZE_DEFAULT (16u << 20)
#define PG_LSN_LEN 18             /* "%X/%X" of a 64-bit LSN, with its NUL */

typedef struct pg_wal pg_wal;

#define PG_WAL_PAGE 8192          /* XLOG_BLCKSZ: PostgreSQL writes WAL in these */
#define PG_WAL_HISTORY_KEY "wal_history/"  /* + 8 hex digits: meta key of a history file */

typedef struct pg_wal_seg {       /* the parts of a WAL segment file name */
    uint32_t tli, log, seg;
} pg_wal_seg;

typedef struct pg_wal_pos {       /* the WAL end of a committed state */
    uint64_t lsn;                 /* highest LSN written */
    int64_t time_us;              /* when (microseconds since the epoch, wall clock) */
    uint32_t tli;                 /* the timeline of the segment written */
    uint32_t segsize;             /* the cluster's segment size */
} pg_wal_pos;

/* Parse segment file name NAME (LEN bytes, no NUL needed): exactly 24
 * upper-case hex digits, timeline not 0.  0, or -EINVAL for any other name. */
int pg_wal_parse_name(const char *name, size_t len, pg_wal_seg *s);
/* The segment size of a cluster whose segment file is SIZE bytes long. */
uint64_t pg_wal_segsize(uint64_t size);
/* The LSN reached by writing up to byte END of segment S with SEGSIZE-byte
 * segments into *LSN; -EINVAL if S's segment number is out of range for
 * that size (not a segment of such a cluster). */
int pg_wal_end_lsn(const pg_wal_seg *s, uint64_t segsize, uint64_t end, uint64_t *lsn);
/* The number of segment S (log * segments per log + seg) with SEGSIZE-byte
 * segments. */
uint64_t pg_wal_segno(const pg_wal_seg *s, uint64_t segsize);
/* Format LSN as PostgreSQL does ("0/16B3748") into BUF (PG_LSN_LEN bytes). */
void pg_wal_lsn_format(uint64_t lsn, char *buf, size_t len);

/* An observer of the writes to branch store ST, starting from the LSN
 * recorded in it. */
int pg_wal_open(store *st, pg_wal **out);
/* Free W (NULL: nothing). */
void pg_wal_close(pg_wal *w);

/* A write of LEN bytes at OFF into store inode INO, whose size is SIZE
 * after it, goes into batch B, which puts the file's pages FIRST_PAGE on
 * as PAGES (LEN + OFF % PG_WAL_PAGE rounded up to whole pages), the put of
 * page i at MARKS[i] of B (store_batch_mark; MARKS NULL: not known); INO's
 * name must not change meanwhile (fs.c holds its inode lock).  *TLI and
 * *FIRST are INO's mapping onto the archive (fs_attr.wal_tli: its pages
 * are archive pages of timeline *TLI from *FIRST on; *TLI 0: none).  If
 * INO is a WAL segment, adds the new "wal_pos" to B, and the pages to the
 * archive unless B put them there already (the mapping is the segment's;
 * otherwise each refers to the file's page in the journal, not a second
 * copy), maps a full-sized unmapped segment onto its archive pages (sets
 * *TLI and *FIRST: from then on its pages are stored once), and returns 1:
 * then call pg_wal_written with the commit's result.  0 if not (also when
 * W is NULL), or -errno (pg_wal/ could not be read). */
int pg_wal_write(pg_wal *w, store_batch *b, uint64_t ino, uint64_t size, uint64_t off, size_t len,
                 uint64_t first_page, const uint8_t *pages, const size_t *marks, uint32_t *tli, uint64_t *first);
/* The batch that pg_wal_write returned 1 for was committed with result RC. */
void pg_wal_written(pg_wal *w, int rc);
/* 1 if store inode INO is a WAL segment of pg_wal/, 0 if not (also
 * when W is NULL), or -errno. */
int pg_wal_is_segment(pg_wal *w, uint64_t ino);
/* INO was renamed or unlinked (call before its inode lock is released, so
 * no write sees the old name after the change): look its name up again.
 * W NULL or INO 0: nothing. */
void pg_wal_forget(pg_wal *w, uint64_t ino);

/* A write of LEN bytes at OFF into store inode INO, whose pages from the
 * first are PAGES (as for pg_wal_write), was committed: 1 if INO is the
 * branch root's global/pg_control and the write names a checkpoint record
 * (ControlFileData.checkPoint) other than the one pg_control named before
 * (when the observer opened, or at its last write) -- PostgreSQL completed
 * a checkpoint, so the state now is a base for time travel to any later
 * point (pg_target.h) -- else 0 (also when W is NULL), or -errno. */
int pg_wal_checkpointed(pg_wal *w, uint64_t ino, uint64_t off, size_t len, const uint8_t *pages);

/* 1 if NAME in directory DIR of ST is a WAL segment's place: a segment
 * name in the branch root's pg_wal/; 0 if not, or -errno. */
int pg_wal_segment_entry(store *st, uint64_t dir, const char *name);

/* The inode of the branch root's pg_wal/ directory in ST into *DIR: 0,
 * -ENOENT if there is none (or it is a symlink: initdb -X), or -errno. */
int pg_wal_dir(store *st, uint64_t *dir);

/* 1 if directory WALDIR of ST (pg_wal_dir) has an entry NAME, 0 if not,
 * or -errno. */
int pg_wal_has_entry(store *st, uint64_t waldir, const char *name);

/* Batch B renames file INO (SIZE bytes) to NAME in directory DIR: if that
 * is a timeline history file in pg_wal/, or a segment there made under a
 * temporary name (not a recycled segment), archive its content in B.  0
 * (also when W is NULL or it is neither) or -errno. */
int pg_wal_renamed(pg_wal *w, store_batch *b, uint64_t dir, const char *name, uint64_t ino, uint64_t size);

/* The WAL end recorded in store ST now, into *P; -ENOENT if no WAL was
 * seen on the branch (or its ancestors before the branch point). */
int pg_wal_pos_get(store *st, pg_wal_pos *p);
/* The same in the state manifest M of OS commits, read without opening its
 * branch (e.g. a parent's manifest at a branch point). */
int pg_wal_pos_at(objstore *os, const manifest *m, pg_wal_pos *p);

#endif

/*
 * dirlock.h -- one lakefs daemon per local directory (a branch's state
 * directory, a disk cache): an exclusive flock on DIR/lock, whose content
 * names the holder, "PID\n", or "PID unmounting\n" once the holder's mount
 * is gone and only its last flush runs.
 *
 * umount(8) and fusermount3 -u return as soon as the kernel lets go of a
 * mount, before the daemon has flushed and released its directories, so
 * `umount DIR && lakefs mount URL DIR` would find them taken.  A daemon
 * whose mount is gone marks its locks (dirlock_unmounting); dirlock_take
 * waits for a marked holder, which lets go by itself, and refuses any
 * other.  Since a daemon notices the end of its mount a moment after
 * umount returns, an unmarked holder is looked at again for
 * DIRLOCK_NOTICE_MS before the refusal.
 */
#ifndef LAKEFS_DIRLOCK_H
#define LAKEFS_DIRLOCK_H

#include <stddef.h>

#define DIRLOCK_NOTICE_MS 2000    /* how long a daemon just unmounted may take to mark its locks */
#define DIRLOCK_WAIT_S 600        /* how long to wait for a marked holder's last flush */

/* Take the lock file PATH (created 0600) for this process, waiting for a
 * holder that is finishing its unmount (a log line names WHAT, e.g.
 * "branch main", and the holder): its fd into *FD (closing it releases
 * the lock), 0.  -EBUSY if another daemon holds it (its pid, or "unknown",
 * into HOLDER of LEN bytes), or -errno if PATH cannot be opened, locked or
 * written. */
int dirlock_take(const char *path, const char *what, int *fd, char *holder, size_t len);

/* The mount of the daemon holding lock FD is gone: mark the lock, so that
 * a daemon taking it meanwhile waits instead of refusing.  -errno (the
 * mark is a courtesy: the caller only reports it) or 0. */
int dirlock_unmounting(int fd);

#endif

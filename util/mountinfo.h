/*
 * mountinfo.h -- the device of a mount, from a mountinfo file
 * (/proc/self/mountinfo, proc(5)).
 *
 * The daemon needs its own mount's device before its request loop runs (a
 * stat(2) of the mount point would wait for that loop): to lift the
 * kernel's dirty-page limit of the mount and to recognise the mount again
 * later (fs/fs_writeback.c).  The CLI reads mount points from it too
 * (tools/cli.c: the lakefs mount holding the current directory).
 */
#ifndef LAKEFS_MOUNTINFO_H
#define LAKEFS_MOUNTINFO_H

#include <stddef.h>

/* The device ("MAJOR:MINOR") of the top mount at MOUNTPOINT (absolute, as
 * mounted) per mountinfo file MOUNTINFO into DEV: 0, -ENOENT if nothing is
 * mounted there, -ENAMETOOLONG if DEVLEN is too short, or -errno. */
int mountinfo_device(const char *mountinfo, const char *mountpoint, char *dev, size_t devlen);

/* Undo mountinfo's octal escapes (\040 for a space, ...) in S, in place. */
void mountinfo_unescape(char *s);

#endif

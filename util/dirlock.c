/*
 * dirlock.c -- the lock of a daemon's local directory (dirlock.h): flock
 * with a non-blocking retry loop, so that the wait is bounded and a holder
 * that will not let go (a serving daemon) is refused rather than waited
 * for; the holder's pid and state are read from the file each time.
 */
#include "dirlock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#define DIRLOCK_MARK " unmounting"
#define DIRLOCK_POLL_NS (20 * 1000 * 1000)

/* Milliseconds since START (monotonic). */
static long dirlock_ms_since(const struct timespec *start)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    long long ns = (long long)(now.tv_sec - start->tv_sec) * 1000000000 + (now.tv_nsec - start->tv_nsec);
    return (long)(ns / 1000000);  /* whole milliseconds passed, never rounded up */
}

/* The holder of lock FD as it wrote itself there: its pid into PID (LEN
 * bytes, "unknown" if unreadable); 1 if it marked itself unmounting. */
static int dirlock_holder(int fd, char *pid, size_t len)
{
    char text[64] = "";
    ssize_t n = pread(fd, text, sizeof text - 1, 0);
    text[n > 0 ? n : 0] = 0;
    text[strcspn(text, "\n")] = 0;
    int unmounting = strstr(text, DIRLOCK_MARK) != NULL;
    text[strcspn(text, " ")] = 0;
    snprintf(pid, len, "%s", text[0] ? text : "unknown");
    return unmounting;
}

int dirlock_take(const char *path, const char *what, int *fd, char *holder, size_t len)
{
    struct timespec start;
    int waiting = 0, rc = 0;
    *fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (*fd < 0) return -errno;
    clock_gettime(CLOCK_MONOTONIC, &start);
    while (flock(*fd, LOCK_EX | LOCK_NB) < 0) {
        if (errno != EWOULDBLOCK) { rc = -errno; goto fail; }
        int unmounting = dirlock_holder(*fd, holder, len);
        long waited = dirlock_ms_since(&start);
        if (!unmounting && !waiting && waited >= DIRLOCK_NOTICE_MS) { rc = -EBUSY; goto fail; }
        if (unmounting && !waiting++)
            fprintf(stderr, "lakefs: %s: waiting for lakefs daemon pid %s to finish its unmount "
                    "(its last flush to the repository)\n", what, holder);
        if (waiting && waited >= (long)DIRLOCK_WAIT_S * 1000) {
            fprintf(stderr, "lakefs: %s: lakefs daemon pid %s is still finishing its unmount after %d s\n", what,
                    holder, DIRLOCK_WAIT_S);
            rc = -EBUSY;
            goto fail;
        }
        struct timespec nap = { 0, DIRLOCK_POLL_NS };
        nanosleep(&nap, NULL);
    }
    if (waiting)
        fprintf(stderr, "lakefs: %s: lakefs daemon pid %s finished its unmount after %.1f s\n", what, holder,
                dirlock_ms_since(&start) / 1000.0);
    char text[32];
    int n = snprintf(text, sizeof text, "%ld\n", (long)getpid());
    if (ftruncate(*fd, 0) < 0) { rc = -errno; goto fail; }
    ssize_t w = pwrite(*fd, text, (size_t)n, 0);
    if (w != n) { rc = w < 0 ? -errno : -EIO; goto fail; }
    return 0;
fail:
    close(*fd);
    *fd = -1;
    return rc;
}

int dirlock_unmounting(int fd)
{
    char text[64];
    int n = snprintf(text, sizeof text, "%ld%s\n", (long)getpid(), DIRLOCK_MARK);
    if (fd < 0) return -EBADF;
    ssize_t w = pwrite(fd, text, (size_t)n, 0);
    return w == n ? 0 : w < 0 ? -errno : -EIO;
}

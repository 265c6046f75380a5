/*
 * test_dirlock.c -- the lock of a daemon's directory (util/dirlock.c).
 *
 * What can go wrong: two daemons in one directory; a mount right after an
 * unmount refused because the old daemon still flushes; or the opposite, a
 * mount waiting for a daemon that serves and never lets go.  Checked, with
 * a forked child as the other daemon (flock locks belong to the open file,
 * so a second process is needed):
 *  - a holder that does not mark itself: refused with -EBUSY and its pid
 *    after DIRLOCK_NOTICE_MS, not before; the file still names the holder;
 *  - a holder that marks itself unmounting and lets go later: waited for,
 *    then taken; the file names the new holder;
 *  - a holder that is killed: taken at once (the kernel drops its flock);
 *  - a lock file that cannot be opened (its directory is missing): -ENOENT;
 *  - dirlock_unmounting on a closed descriptor: -EBADF.
 */
#include "harness.h"
#include "dirlock.h"

#include <errno.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long ms_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Fork a holder of PATH: it takes the lock, writes a byte to READY, then
 * (MARK) marks itself unmounting and lets go after HOLD_MS, or (!MARK)
 * sleeps until killed.  Its pid. */
static pid_t holder(const char *path, int mark, long hold_ms, int ready)
{
    pid_t pid = fork();
    if (pid) return pid;
    int fd;
    char who[32];
    if (dirlock_take(path, "test", &fd, who, sizeof who)) _exit(3);
    if (mark && dirlock_unmounting(fd)) _exit(4);
    if (write(ready, "x", 1) != 1) _exit(5);
    if (!mark) for (;;) pause();
    struct timespec nap = { hold_ms / 1000, (hold_ms % 1000) * 1000000 };
    nanosleep(&nap, NULL);
    _exit(0);
}

/* The content of PATH, one line, into BUF. */
static void content(const char *path, char *buf, size_t len)
{
    FILE *f = fopen(path, "r");
    buf[0] = 0;
    if (f) {
        if (!fgets(buf, (int)len, f)) buf[0] = 0;
        fclose(f);
    }
    buf[strcspn(buf, "\n")] = 0;
}

int main(void)
{
    char dir[64], path[300], who[32], text[64], want[64];
    int fd, ready[2];
    harness_tmpdir(dir);
    snprintf(path, sizeof path, "%s/lock", dir);
    CHECK(pipe(ready) == 0);

    /* a serving holder: refused after the notice period, naming it */
    pid_t h = holder(path, 0, 0, ready[1]);
    CHECK(read(ready[0], text, 1) == 1);
    long t0 = ms_now();
    CHECK(dirlock_take(path, "test", &fd, who, sizeof who) == -EBUSY);
    long waited = ms_now() - t0;
    /* the upper bound tells a refusal from waiting as for an unmount (DIRLOCK_WAIT_S),
     * with room for a loaded machine */
    CHECK(waited >= DIRLOCK_NOTICE_MS && waited < DIRLOCK_NOTICE_MS + 20000);
    CHECK(fd == -1);
    snprintf(want, sizeof want, "%ld", (long)h);
    CHECK(!strcmp(who, want));
    content(path, text, sizeof text);
    CHECK(!strcmp(text, want));
    /* killed: the kernel drops its lock, taken at once */
    kill(h, SIGKILL);
    CHECK(waitpid(h, NULL, 0) == h);
    t0 = ms_now();
    CHECK(dirlock_take(path, "test", &fd, who, sizeof who) == 0);
    CHECK(ms_now() - t0 < DIRLOCK_NOTICE_MS);
    snprintf(want, sizeof want, "%ld", (long)getpid());
    content(path, text, sizeof text);
    CHECK(!strcmp(text, want));
    CHECK(dirlock_unmounting(fd) == 0);
    snprintf(want, sizeof want, "%ld unmounting", (long)getpid());
    content(path, text, sizeof text);
    CHECK(!strcmp(text, want));
    close(fd);

    /* a holder finishing its unmount: waited for (longer than the notice period), then taken */
    int status;
    h = holder(path, 1, DIRLOCK_NOTICE_MS + 1000, ready[1]);
    CHECK(read(ready[0], text, 1) == 1);
    t0 = ms_now();
    CHECK(dirlock_take(path, "test", &fd, who, sizeof who) == 0);
    waited = ms_now() - t0;
    CHECK(waited >= DIRLOCK_NOTICE_MS && waited < DIRLOCK_NOTICE_MS + 10000);
    CHECK(waitpid(h, &status, 0) == h && WIFEXITED(status) && WEXITSTATUS(status) == 0);
    snprintf(want, sizeof want, "%ld", (long)getpid());
    content(path, text, sizeof text);
    CHECK(!strcmp(text, want));
    close(fd);
    CHECK(dirlock_unmounting(fd) == -EBADF);

    /* no such directory */
    snprintf(path, sizeof path, "%s/missing/lock", dir);
    CHECK(dirlock_take(path, "test", &fd, who, sizeof who) == -ENOENT);
    close(ready[0]);
    close(ready[1]);
    harness_rmtree(dir);
    return harness_done();
}

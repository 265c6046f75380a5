/*
 * posix_check -- the POSIX semantics PostgreSQL relies on, checked on a
 * directory of a lakefs mount (or any filesystem, for comparison).
 *
 *   posix_check create DIR   run every check in DIR (must be empty) and leave
 *                            a known final state behind
 *   posix_check verify DIR   check that the final state left by "create" is
 *                            there (after unmount + mount, or a crash)
 *
 * Prints one line per failed check and a summary; exits 1 if anything failed.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

static const char *dir;
static int nchecks, nfailed;
static int verbose;

#define GIB (1024LL * 1024 * 1024)
#define BIG_OFF1 (1 * GIB + 12345)
#define BIG_OFF2 (2 * GIB + 777)
#define BIG_LEN 8192
#define RW_SIZE (100000 + 12345)
#define ROOT_UID 4321
#define ROOT_GID 4322
#define MTIME_SEC 1500000000
#define MTIME_NSEC 123456789

static void check(int ok, const char *name, const char *fmt, ...)
{
    nchecks++;
    if (ok) {
        if (verbose)
            printf("ok   %s\n", name);
        return;
    }
    nfailed++;
    printf("FAIL %s: ", name);
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
}

/* check that a call returned >= 0; report errno otherwise */
#define CHECK_SYS(expr, name)                                                  \
    ({                                                                         \
        long _r = (long)(expr);                                                \
        check(_r >= 0, name, "%s = %ld: %s", #expr, _r, strerror(errno));      \
        _r;                                                                    \
    })

/* check that a call failed with the given errno */
#define CHECK_ERR(expr, err, name)                                             \
    do {                                                                       \
        errno = 0;                                                             \
        long _r = (long)(expr);                                                \
        int _e = errno;                                                        \
        check(_r == -1 && _e == (err), name, "%s = %ld, errno %s, want %s",    \
              #expr, _r, strerror(_e), strerror(err));                         \
    } while (0)

static char *P(const char *name)
{
    static char bufs[8][4096];
    static int i;
    char *b = bufs[i++ % 8];
    snprintf(b, sizeof bufs[0], "%s/%s", dir, name);
    return b;
}

/* deterministic content: byte at offset off of stream seed */
static unsigned char pat(unsigned seed, uint64_t off)
{
    uint64_t x = (off + 1) * 0x9E3779B97F4A7C15ULL ^ ((uint64_t)seed << 32);
    x ^= x >> 29;
    x *= 0xBF58476D1CE4E5B9ULL;
    x ^= x >> 32;
    return (unsigned char)x;
}

static void fill(unsigned char *b, size_t n, unsigned seed, uint64_t off)
{
    for (size_t i = 0; i < n; i++)
        b[i] = pat(seed, off + i);
}

static int full_pwrite(int fd, const void *b, size_t n, off_t off)
{
    const char *p = b;
    while (n > 0) {
        ssize_t r = pwrite(fd, p, n, off);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += r;
        n -= (size_t)r;
        off += r;
    }
    return 0;
}

/* read up to n bytes; returns bytes read (short only at EOF) or -1 */
static ssize_t full_pread(int fd, void *b, size_t n, off_t off)
{
    char *p = b;
    size_t got = 0;
    while (got < n) {
        ssize_t r = pread(fd, p + got, n - got, off + (off_t)got);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (r == 0)
            break;
        got += (size_t)r;
    }
    return (ssize_t)got;
}

/* compare a file's whole content with buf[0..n) */
static void check_content(const char *name, const unsigned char *want, size_t n)
{
    char label[256];
    snprintf(label, sizeof label, "content of %s", name);
    int fd = open(P(name), O_RDONLY);
    if (fd < 0) {
        check(0, label, "open: %s", strerror(errno));
        return;
    }
    unsigned char *got = malloc(n + 16);
    ssize_t r = full_pread(fd, got, n + 16, 0);
    if (r != (ssize_t)n) {
        check(0, label, "read %zd bytes, want %zu (%s)", r, n,
              r < 0 ? strerror(errno) : "size");
    } else {
        size_t i = 0;
        while (i < n && got[i] == want[i])
            i++;
        check(i == n, label, "first difference at byte %zu", i);
    }
    free(got);
    close(fd);
}

static void check_str(const char *name, const char *want)
{
    check_content(name, (const unsigned char *)want, strlen(want));
}

static void write_str(const char *name, const char *s, int flags, mode_t mode)
{
    char label[256];
    snprintf(label, sizeof label, "write %s", name);
    int fd = open(P(name), O_WRONLY | O_CREAT | flags, mode);
    if (CHECK_SYS(fd, label) < 0)
        return;
    check(write(fd, s, strlen(s)) == (ssize_t)strlen(s), label, "short write");
    close(fd);
}

static int is_zero(const unsigned char *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (b[i])
            return 0;
    return 1;
}

/* ------------------------------------------------------------------ model */

/* the writes done to "rw": (offset, length); later ones overwrite */
static const struct { off_t off; size_t len; } rw_writes[] = {
    {0, 1}, {4095, 2}, {8191, 3}, {3 * 8192 - 100, 8192 + 200},
    {100000, 12345}, {8190, 5}, {50000, 1}, {16383, 8194},
};
#define NRW (sizeof rw_writes / sizeof rw_writes[0])

static unsigned char *rw_model(void)
{
    unsigned char *m = calloc(1, RW_SIZE);
    for (size_t i = 0; i < NRW; i++)
        fill(m + rw_writes[i].off, rw_writes[i].len, (unsigned)i + 1,
             (uint64_t)rw_writes[i].off);
    return m;
}

/* "trunc": 20000 pattern bytes, cut to 5000, extended to 30000, cut to 8193 */
static unsigned char *trunc_model(size_t *n)
{
    *n = 8193;
    unsigned char *m = calloc(1, 30000);
    fill(m, 5000, 77, 0);
    return m;
}

/* "falloc": 200000 bytes of zeros but "hello" at 1000 and a page at 70000 */
static unsigned char *falloc_model(size_t *n)
{
    *n = 200000;
    unsigned char *m = calloc(1, *n);
    memcpy(m + 1000, "hello", 5);
    fill(m + 70000, 8192, 55, 0);
    return m;
}

static const char *expected_names[] = {
    "app", "big", "d3", "excl", "falloc", "hl1", "hl2", "lnk_b", "modes",
    "ren_a", "rw", "sym", "symf", "times", "trunc", "trunc2", NULL,
};

/* ------------------------------------------------------------- create mode */

static void t_excl(void)
{
    int fd = open(P("excl"), O_CREAT | O_EXCL | O_RDWR, 0600);
    CHECK_SYS(fd, "O_EXCL create");
    CHECK_ERR(open(P("excl"), O_CREAT | O_EXCL | O_RDWR, 0600), EEXIST,
              "second O_EXCL -> EEXIST");
    struct stat st;
    if (fd >= 0 && CHECK_SYS(fstat(fd, &st), "fstat excl") == 0) {
        check(st.st_uid == geteuid() && st.st_gid == getegid(),
              "owner is the caller", "uid %u gid %u, want %u %u",
              st.st_uid, st.st_gid, geteuid(), getegid());
        check((st.st_mode & 07777) == (0600 & ~0u), "create mode",
              "mode %o", st.st_mode & 07777);
        check(S_ISREG(st.st_mode) && st.st_size == 0, "new file empty",
              "size %lld", (long long)st.st_size);
    }
    if (fd >= 0)
        close(fd);
    CHECK_ERR(open(P("no/such/file"), O_RDONLY), ENOENT, "open missing -> ENOENT");
    CHECK_ERR(open(P("nosuch"), O_RDONLY), ENOENT, "open missing -> ENOENT");
}

static void t_rw(void)
{
    int fd = open(P("rw"), O_CREAT | O_RDWR, 0600);
    if (CHECK_SYS(fd, "create rw") < 0)
        return;
    unsigned char *buf = malloc(RW_SIZE);
    for (size_t i = 0; i < NRW; i++) {
        fill(buf, rw_writes[i].len, (unsigned)i + 1, (uint64_t)rw_writes[i].off);
        CHECK_SYS(full_pwrite(fd, buf, rw_writes[i].len, rw_writes[i].off), "pwrite");
        /* read the same range back at once */
        unsigned char *rb = malloc(rw_writes[i].len);
        ssize_t r = full_pread(fd, rb, rw_writes[i].len, rw_writes[i].off);
        check(r == (ssize_t)rw_writes[i].len &&
                  memcmp(rb, buf, rw_writes[i].len) == 0,
              "pread after pwrite", "write %zu at %lld: read %zd", i,
              (long long)rw_writes[i].off, r);
        free(rb);
    }
    unsigned char *m = rw_model();
    off_t end = lseek(fd, 0, SEEK_END);
    check(end == RW_SIZE, "lseek SEEK_END", "got %lld want %d", (long long)end, RW_SIZE);
    /* odd-sized, unaligned reads against the model */
    static const struct { off_t off; size_t len; } rd[] = {
        {0, 1}, {1, 8191}, {4000, 9000}, {8191, 2}, {24000, 30000},
        {RW_SIZE - 5, 5}, {99999, 20000},
    };
    for (size_t i = 0; i < sizeof rd / sizeof rd[0]; i++) {
        ssize_t r = full_pread(fd, buf, rd[i].len, rd[i].off);
        size_t want = rd[i].off + (off_t)rd[i].len > RW_SIZE
                          ? (size_t)(RW_SIZE - rd[i].off) : rd[i].len;
        check(r == (ssize_t)want && memcmp(buf, m + rd[i].off, want) == 0,
              "unaligned pread", "read %zu at %lld: got %zd want %zu or data differs",
              rd[i].len, (long long)rd[i].off, r, want);
    }
    ssize_t r = pread(fd, buf, 100, RW_SIZE + 10);
    check(r == 0, "pread past EOF returns 0", "got %zd", r);
    free(m);
    free(buf);

    /* one 1 MiB write in a separate file, read back */
    size_t big = 1 << 20;
    unsigned char *w = malloc(big), *rb = malloc(big);
    fill(w, big, 9, 0);
    int fd2 = open(P("mib"), O_CREAT | O_RDWR | O_TRUNC, 0600);
    if (CHECK_SYS(fd2, "create mib") >= 0) {
        check(pwrite(fd2, w, big, 4096) == (ssize_t)big, "1 MiB pwrite", "short");
        check(full_pread(fd2, rb, big, 4096) == (ssize_t)big && memcmp(w, rb, big) == 0,
              "1 MiB pread", "data differs");
        check(full_pread(fd2, rb, 4096, 0) == 4096 && is_zero(rb, 4096),
              "hole before data reads zeros", "non-zero");
        close(fd2);
        CHECK_SYS(unlink(P("mib")), "unlink mib");
    }
    free(w);
    free(rb);

    CHECK_SYS(fsync(fd), "fsync file");
    CHECK_SYS(fdatasync(fd), "fdatasync file");
    CHECK_SYS(sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE), "sync_file_range");
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
    CHECK_SYS(fcntl(fd, F_SETLK, &fl), "fcntl F_SETLK");
    fl.l_type = F_UNLCK;
    CHECK_SYS(fcntl(fd, F_SETLK, &fl), "fcntl unlock");
    close(fd);

    int dfd = open(dir, O_RDONLY | O_DIRECTORY);
    if (CHECK_SYS(dfd, "open dir") >= 0) {
        CHECK_SYS(fsync(dfd), "fsync directory");
        CHECK_SYS(fdatasync(dfd), "fdatasync directory");
        close(dfd);
    }
}

static void t_trunc(void)
{
    unsigned char b[30000];
    fill(b, 20000, 77, 0);
    int fd = open(P("trunc"), O_CREAT | O_RDWR, 0600);
    if (CHECK_SYS(fd, "create trunc") < 0)
        return;
    CHECK_SYS(full_pwrite(fd, b, 20000, 0), "write trunc");
    CHECK_SYS(ftruncate(fd, 5000), "ftruncate shrink");
    struct stat st;
    fstat(fd, &st);
    check(st.st_size == 5000, "size after shrink", "%lld", (long long)st.st_size);
    CHECK_SYS(ftruncate(fd, 30000), "ftruncate extend");
    fstat(fd, &st);
    check(st.st_size == 30000, "size after extend", "%lld", (long long)st.st_size);
    unsigned char r[30000];
    ssize_t n = full_pread(fd, r, sizeof r, 0);
    check(n == 30000 && memcmp(r, b, 5000) == 0, "kept part after truncate", "n=%zd", n);
    check(n == 30000 && is_zero(r + 5000, 25000), "shrink+extend reads zeros",
          "old data came back");
    close(fd);
    CHECK_SYS(truncate(P("trunc"), 8193), "truncate by path");
    CHECK_SYS(stat(P("trunc"), &st), "stat trunc");
    check(st.st_size == 8193, "size after truncate(path)", "%lld", (long long)st.st_size);

    write_str("trunc2", "0123456789abcdefghij", 0, 0644);
    fd = open(P("trunc2"), O_WRONLY | O_TRUNC);
    CHECK_SYS(fd, "open O_TRUNC");
    fstat(fd, &st);
    check(st.st_size == 0, "O_TRUNC empties", "size %lld", (long long)st.st_size);
    check(write(fd, "xyz", 3) == 3, "write after O_TRUNC", "short");
    close(fd);
    check_str("trunc2", "xyz");

    write_str("app", "abc", 0, 0644);
    fd = open(P("app"), O_WRONLY | O_APPEND);
    CHECK_SYS(fd, "open O_APPEND");
    check(write(fd, "def", 3) == 3, "append write", "short");
    lseek(fd, 0, SEEK_SET);
    check(write(fd, "g", 1) == 1, "append after lseek 0", "short");
    close(fd);
    check_str("app", "abcdefg");
}

static void t_fallocate(void)
{
    int fd = open(P("falloc"), O_CREAT | O_RDWR, 0600);
    if (CHECK_SYS(fd, "create falloc") < 0)
        return;
    struct stat st;
    CHECK_SYS(fallocate(fd, 0, 0, 65536), "fallocate mode 0");
    fstat(fd, &st);
    check(st.st_size == 65536, "fallocate extends size", "%lld", (long long)st.st_size);
    CHECK_SYS(fallocate(fd, FALLOC_FL_KEEP_SIZE, 65536, 65536), "fallocate KEEP_SIZE");
    fstat(fd, &st);
    check(st.st_size == 65536, "KEEP_SIZE keeps size", "%lld", (long long)st.st_size);
    int e = posix_fallocate(fd, 0, 200000);
    check(e == 0, "posix_fallocate", "%s", strerror(e));
    fstat(fd, &st);
    check(st.st_size == 200000, "posix_fallocate extends size", "%lld", (long long)st.st_size);
    unsigned char b[8192];
    check(full_pread(fd, b, sizeof b, 100000) == 8192 && is_zero(b, sizeof b),
          "fallocated range reads zeros", "non-zero");
    CHECK_SYS(pwrite(fd, "hello", 5, 1000), "write into fallocated range");
    fill(b, 8192, 55, 0);
    CHECK_SYS(full_pwrite(fd, b, 8192, 70000), "write page into fallocated range");
    fstat(fd, &st);
    check(st.st_size == 200000, "writes inside keep size", "%lld", (long long)st.st_size);
    CHECK_SYS(fdatasync(fd), "fdatasync falloc");
    close(fd);
    size_t n;
    unsigned char *m = falloc_model(&n);
    check_content("falloc", m, n);
    free(m);
}

static void t_rename(void)
{
    write_str("ren_a", "old contents of a", 0, 0600);
    write_str("ren_b", "new contents from b", 0, 0600);
    int keep = open(P("ren_a"), O_RDONLY);
    CHECK_SYS(rename(P("ren_b"), P("ren_a")), "rename over existing file");
    check_str("ren_a", "new contents from b");
    CHECK_ERR(access(P("ren_b"), F_OK), ENOENT, "rename source gone");
    if (keep >= 0) {
        char b[64] = {0};
        ssize_t r = pread(keep, b, sizeof b - 1, 0);
        check(r == 17 && strcmp(b, "old contents of a") == 0,
              "replaced file still readable via open fd", "got %zd '%s'", r, b);
        close(keep);
    }

    CHECK_SYS(mkdir(P("d1"), 0755), "mkdir d1");
    write_str("d1/f", "in a directory", 0, 0644);
    CHECK_SYS(rename(P("d1"), P("d2")), "rename directory");
    CHECK_ERR(access(P("d1"), F_OK), ENOENT, "old directory name gone");
    check_str("d2/f", "in a directory");
    CHECK_SYS(mkdir(P("d3"), 0755), "mkdir d3");
    CHECK_SYS(rename(P("d2"), P("d3")), "rename directory over empty directory");
    check_str("d3/f", "in a directory");
    CHECK_SYS(mkdir(P("d4"), 0755), "mkdir d4");
    errno = 0;
    int r = rename(P("d4"), P("d3"));
    check(r == -1 && (errno == ENOTEMPTY || errno == EEXIST),
          "rename over non-empty directory fails", "r=%d %s", r, strerror(errno));
    CHECK_ERR(rename(P("d4"), P("ren_a")), ENOTDIR, "rename dir over file -> ENOTDIR");
    CHECK_ERR(rename(P("ren_a"), P("d4")), EISDIR, "rename file over dir -> EISDIR");
    CHECK_SYS(rmdir(P("d4")), "rmdir d4");
}

static void t_links(void)
{
    struct stat a, b;
    write_str("lnk_a", "shared content", 0, 0644);
    CHECK_SYS(link(P("lnk_a"), P("lnk_b")), "link");
    CHECK_SYS(stat(P("lnk_a"), &a), "stat lnk_a");
    CHECK_SYS(stat(P("lnk_b"), &b), "stat lnk_b");
    check(a.st_ino == b.st_ino, "hard link same inode", "%lu vs %lu",
          (unsigned long)a.st_ino, (unsigned long)b.st_ino);
    check(a.st_nlink == 2 && b.st_nlink == 2, "st_nlink 2", "%lu %lu",
          (unsigned long)a.st_nlink, (unsigned long)b.st_nlink);
    int fd = open(P("lnk_b"), O_WRONLY);
    if (CHECK_SYS(fd, "open lnk_b") >= 0) {
        check(pwrite(fd, "SHARED", 6, 0) == 6, "write via link", "short");
        close(fd);
    }
    check_str("lnk_a", "SHARED content");
    CHECK_SYS(unlink(P("lnk_a")), "unlink one link");
    CHECK_SYS(stat(P("lnk_b"), &b), "stat other link");
    check(b.st_nlink == 1, "nlink 1 after unlink", "%lu", (unsigned long)b.st_nlink);
    check_str("lnk_b", "SHARED content");
    CHECK_ERR(link(P("lnk_b"), P("excl")), EEXIST, "link over existing -> EEXIST");

    /* a pair that stays for verify */
    write_str("hl1", "hard linked pair", 0, 0644);
    CHECK_SYS(link(P("hl1"), P("hl2")), "link hl2");

    CHECK_SYS(symlink("some/relative/target", P("sym")), "symlink");
    char t[256];
    ssize_t n = readlink(P("sym"), t, sizeof t - 1);
    check(n == 20 && memcmp(t, "some/relative/target", 20) == 0,
          "readlink", "got %zd", n);
    CHECK_SYS(lstat(P("sym"), &a), "lstat symlink");
    check(S_ISLNK(a.st_mode) && a.st_size == 20, "lstat says symlink", "mode %o size %lld",
          a.st_mode, (long long)a.st_size);
    CHECK_SYS(symlink("rw", P("symf")), "symlink to file");
    CHECK_SYS(stat(P("symf"), &a), "stat through symlink");
    CHECK_SYS(stat(P("rw"), &b), "stat rw");
    check(a.st_ino == b.st_ino, "symlink resolves", "ino differs");
    CHECK_ERR(symlink("x", P("sym")), EEXIST, "symlink over existing -> EEXIST");
}

static void t_dirs(void)
{
    CHECK_SYS(mkdir(P("dir"), 0700), "mkdir");
    CHECK_ERR(mkdir(P("dir"), 0700), EEXIST, "mkdir existing -> EEXIST");
    struct stat st;
    CHECK_SYS(stat(P("dir"), &st), "stat dir");
    check(S_ISDIR(st.st_mode) && (st.st_mode & 0777) == 0700, "dir mode",
          "%o", st.st_mode);
    write_str("dir/x", "x", 0, 0600);
    CHECK_ERR(rmdir(P("dir")), ENOTEMPTY, "rmdir non-empty -> ENOTEMPTY");
    CHECK_ERR(unlink(P("dir")), EISDIR, "unlink directory -> EISDIR");
    CHECK_ERR(rmdir(P("dir/x")), ENOTDIR, "rmdir file -> ENOTDIR");
    CHECK_SYS(unlink(P("dir/x")), "unlink dir/x");
    CHECK_SYS(rmdir(P("dir")), "rmdir empty");
    CHECK_ERR(stat(P("dir"), &st), ENOENT, "removed dir gone");

    write_str("openunl", "still here after unlink", 0, 0600);
    int fd = open(P("openunl"), O_RDWR);
    if (CHECK_SYS(fd, "open openunl") >= 0) {
        CHECK_SYS(unlink(P("openunl")), "unlink open file");
        CHECK_ERR(access(P("openunl"), F_OK), ENOENT, "unlinked name gone");
        char b[64] = {0};
        ssize_t r = pread(fd, b, sizeof b - 1, 0);
        check(r == 23 && strcmp(b, "still here after unlink") == 0,
              "unlinked open file readable", "got %zd", r);
        check(pwrite(fd, "STILL", 5, 0) == 5, "unlinked open file writable", "short");
        r = pread(fd, b, 5, 0);
        check(r == 5 && memcmp(b, "STILL", 5) == 0, "write to unlinked file reads back",
              "got %zd", r);
        fstat(fd, &st);
        check(st.st_nlink == 0, "unlinked open file nlink 0", "%lu",
              (unsigned long)st.st_nlink);
        close(fd);
    }
}

static void t_statfs(void)
{
    struct statfs sf;
    if (CHECK_SYS(statfs(dir, &sf), "statfs") == 0) {
        check(sf.f_bsize == 4096 || sf.f_bsize == 8192, "statfs f_bsize",
              "%ld", (long)sf.f_bsize);
        check(sf.f_blocks > 0, "statfs f_blocks", "0");
        check(sf.f_bfree <= sf.f_blocks && sf.f_bavail <= sf.f_blocks,
              "statfs free <= total", "free %llu total %llu",
              (unsigned long long)sf.f_bfree, (unsigned long long)sf.f_blocks);
        check(sf.f_namelen >= 255, "statfs namelen", "%ld", (long)sf.f_namelen);
    }
    struct statvfs sv;
    CHECK_SYS(statvfs(dir, &sv), "statvfs");
}

static void t_big(void)
{
    int fd = open(P("big"), O_CREAT | O_RDWR, 0600);
    if (CHECK_SYS(fd, "create big") < 0)
        return;
    unsigned char b[BIG_LEN];
    fill(b, BIG_LEN, 101, 0);
    CHECK_SYS(full_pwrite(fd, b, BIG_LEN, BIG_OFF1), "pwrite at 1 GiB");
    fill(b, BIG_LEN, 102, 0);
    CHECK_SYS(full_pwrite(fd, b, BIG_LEN, BIG_OFF2), "pwrite at 2 GiB");
    struct stat st;
    fstat(fd, &st);
    check(st.st_size == BIG_OFF2 + BIG_LEN, "sparse size", "%lld", (long long)st.st_size);
    check(lseek(fd, 0, SEEK_END) == BIG_OFF2 + BIG_LEN, "SEEK_END past 2 GiB", "wrong");
    CHECK_SYS(fsync(fd), "fsync big");
    close(fd);
}

static void check_big(void)
{
    int fd = open(P("big"), O_RDONLY);
    if (CHECK_SYS(fd, "open big") < 0)
        return;
    unsigned char b[BIG_LEN], r[BIG_LEN];
    struct stat st;
    fstat(fd, &st);
    check(st.st_size == BIG_OFF2 + BIG_LEN, "big size", "%lld", (long long)st.st_size);
    fill(b, BIG_LEN, 101, 0);
    check(full_pread(fd, r, BIG_LEN, BIG_OFF1) == BIG_LEN && !memcmp(b, r, BIG_LEN),
          "data at 1 GiB", "differs");
    fill(b, BIG_LEN, 102, 0);
    check(full_pread(fd, r, BIG_LEN, BIG_OFF2) == BIG_LEN && !memcmp(b, r, BIG_LEN),
          "data at 2 GiB", "differs");
    check(full_pread(fd, r, BIG_LEN, GIB + GIB / 2) == BIG_LEN && is_zero(r, BIG_LEN),
          "hole at 1.5 GiB reads zeros", "non-zero");
    check(full_pread(fd, r, BIG_LEN, 0) == BIG_LEN && is_zero(r, BIG_LEN),
          "hole at 0 reads zeros", "non-zero");
    check(full_pread(fd, r, BIG_LEN, BIG_OFF1 - 100) == BIG_LEN && is_zero(r, 100),
          "zeros just before data", "non-zero");
    check(pread(fd, r, 10, BIG_OFF2 + BIG_LEN) == 0, "EOF after 2 GiB data", "not EOF");
    close(fd);
}

static void t_attrs(void)
{
    write_str("modes", "mode bits", 0, 0600);
    CHECK_SYS(chmod(P("modes"), 0640), "chmod");
    if (geteuid() == 0)
        CHECK_SYS(chown(P("modes"), ROOT_UID, ROOT_GID), "chown");
    else
        CHECK_SYS(chown(P("modes"), (uid_t)-1, getegid()), "chown (own group)");
    struct stat st;
    CHECK_SYS(stat(P("modes"), &st), "stat modes");
    check((st.st_mode & 07777) == 0640, "chmod visible", "%o", st.st_mode & 07777);
    uid_t wu = geteuid() == 0 ? ROOT_UID : geteuid();
    gid_t wg = geteuid() == 0 ? ROOT_GID : getegid();
    check(st.st_uid == wu && st.st_gid == wg, "chown visible", "%u:%u", st.st_uid, st.st_gid);
    int fd = open(P("modes"), O_RDONLY);
    if (fd >= 0) {
        CHECK_SYS(fchmod(fd, 0644), "fchmod");
        fstat(fd, &st);
        check((st.st_mode & 07777) == 0644, "fchmod visible", "%o", st.st_mode & 07777);
        CHECK_SYS(fchmod(fd, 0640), "fchmod back");
        close(fd);
    }

    write_str("times", "t", 0, 0644);
    struct timespec ts[2] = {{1400000000, 0}, {MTIME_SEC, MTIME_NSEC}};
    CHECK_SYS(utimensat(AT_FDCWD, P("times"), ts, 0), "utimensat");
    CHECK_SYS(stat(P("times"), &st), "stat times");
    check(st.st_mtim.tv_sec == MTIME_SEC && st.st_mtim.tv_nsec == MTIME_NSEC,
          "utimensat mtime", "%lld.%09ld", (long long)st.st_mtim.tv_sec,
          st.st_mtim.tv_nsec);
    check(st.st_atim.tv_sec == 1400000000, "utimensat atime", "%lld",
          (long long)st.st_atim.tv_sec);
    /* a write moves mtime forward (to about now) */
    write_str("times2", "x", 0, 0644);
    struct timespec old[2] = {{1000000000, 0}, {1000000000, 0}};
    utimensat(AT_FDCWD, P("times2"), old, 0);
    fd = open(P("times2"), O_WRONLY);
    if (fd >= 0) {
        check(write(fd, "y", 1) == 1, "write times2", "short");
        close(fd);
    }
    CHECK_SYS(stat(P("times2"), &st), "stat times2");
    check(st.st_mtime > 1600000000, "write updates mtime", "%lld", (long long)st.st_mtime);
    CHECK_SYS(unlink(P("times2")), "unlink times2");
}

/* readdir lists exactly the expected names (plus . and ..) */
static void check_readdir(void)
{
    DIR *d = opendir(dir);
    if (!d) {
        check(0, "opendir", "%s", strerror(errno));
        return;
    }
    int seen[64] = {0}, dots = 0, extra = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) {
            dots++;
            continue;
        }
        int found = 0;
        for (int i = 0; expected_names[i]; i++)
            if (!strcmp(expected_names[i], e->d_name)) {
                seen[i]++;
                found = 1;
            }
        if (!found) {
            extra++;
            printf("     unexpected entry: %s\n", e->d_name);
        }
    }
    closedir(d);
    int missing = 0;
    for (int i = 0; expected_names[i]; i++)
        if (seen[i] != 1) {
            missing++;
            printf("     entry %s seen %d times\n", expected_names[i], seen[i]);
        }
    check(dots == 2, "readdir . and ..", "%d", dots);
    check(!extra && !missing, "readdir lists exactly the expected names",
          "%d unexpected, %d missing or repeated", extra, missing);
}

/* -------------------------------------------------------------- final state */

static void verify_state(void)
{
    struct stat st, st2;
    CHECK_SYS(stat(P("excl"), &st), "stat excl");
    check(st.st_size == 0 && (st.st_mode & 07777) == 0600, "excl state",
          "size %lld mode %o", (long long)st.st_size, st.st_mode & 07777);
    check(st.st_uid == geteuid() && st.st_gid == getegid(), "excl owner",
          "%u:%u", st.st_uid, st.st_gid);

    unsigned char *m = rw_model();
    check_content("rw", m, RW_SIZE);
    free(m);
    size_t n;
    m = trunc_model(&n);
    check_content("trunc", m, n);
    free(m);
    m = falloc_model(&n);
    check_content("falloc", m, n);
    free(m);
    check_str("trunc2", "xyz");
    check_str("app", "abcdefg");
    check_str("ren_a", "new contents from b");
    check_str("d3/f", "in a directory");
    check_str("lnk_b", "SHARED content");
    CHECK_SYS(stat(P("lnk_b"), &st), "stat lnk_b");
    check(st.st_nlink == 1, "lnk_b nlink", "%lu", (unsigned long)st.st_nlink);
    check_str("hl1", "hard linked pair");
    check_str("hl2", "hard linked pair");
    CHECK_SYS(stat(P("hl1"), &st), "stat hl1");
    CHECK_SYS(stat(P("hl2"), &st2), "stat hl2");
    check(st.st_ino == st2.st_ino && st.st_nlink == 2 && st2.st_nlink == 2,
          "hard links persisted", "ino %lu/%lu nlink %lu/%lu",
          (unsigned long)st.st_ino, (unsigned long)st2.st_ino,
          (unsigned long)st.st_nlink, (unsigned long)st2.st_nlink);

    char t[256];
    ssize_t r = readlink(P("sym"), t, sizeof t);
    check(r == 20 && !memcmp(t, "some/relative/target", 20), "symlink persisted",
          "readlink %zd", r);
    r = readlink(P("symf"), t, sizeof t);
    check(r == 2 && !memcmp(t, "rw", 2), "symlink to file persisted", "readlink %zd", r);

    CHECK_SYS(stat(P("modes"), &st), "stat modes");
    uid_t wu = geteuid() == 0 ? ROOT_UID : geteuid();
    gid_t wg = geteuid() == 0 ? ROOT_GID : getegid();
    check((st.st_mode & 07777) == 0640 && st.st_uid == wu && st.st_gid == wg,
          "mode and owner persisted", "%o %u:%u", st.st_mode & 07777, st.st_uid, st.st_gid);
    CHECK_SYS(stat(P("times"), &st), "stat times");
    check(st.st_mtim.tv_sec == MTIME_SEC && st.st_mtim.tv_nsec == MTIME_NSEC,
          "mtime persisted", "%lld.%09ld", (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
    CHECK_SYS(stat(P("d3"), &st), "stat d3");
    check(S_ISDIR(st.st_mode) && (st.st_mode & 0777) == 0755, "directory persisted",
          "mode %o", st.st_mode);
    check_big();
    check_readdir();
}

int main(int argc, char **argv)
{
    if (argc != 3 || (strcmp(argv[1], "create") && strcmp(argv[1], "verify"))) {
        fprintf(stderr, "usage: posix_check create|verify DIR\n");
        return 2;
    }
    dir = argv[2];
    verbose = getenv("POSIX_CHECK_VERBOSE") != NULL;
    umask(022);
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (!strcmp(argv[1], "create")) {
        t_excl();
        t_rw();
        t_trunc();
        t_fallocate();
        t_rename();
        t_links();
        t_dirs();
        t_statfs();
        t_big();
        check_big();
        t_attrs();
        /* everything durable before we return */
        int dfd = open(dir, O_RDONLY | O_DIRECTORY);
        if (dfd >= 0) {
            CHECK_SYS(fsync(dfd), "final fsync directory");
            close(dfd);
        }
    }
    verify_state();
    printf("posix_check %s %s: %d checks, %d failed\n", argv[1], dir, nchecks, nfailed);
    return nfailed ? 1 : 0;
}

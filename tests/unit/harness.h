/*
 * harness.h -- the smallest possible unit-test harness.
 *
 * CHECK(cond) counts a check and, when COND is false, prints the failing
 * expression with file:line.  harness_done() prints "N passed, N failed"
 * and yields the exit status (1 if anything failed).  harness_tmpdir()
 * and harness_rmtree() give a test a scratch directory under /tmp, and
 * harness_repo_dirs() one with an empty repository directory in it.
 */
#ifndef LAKEFS_HARNESS_H
#define LAKEFS_HARNESS_H

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int harness_passed, harness_failed;

#define CHECK(cond) do { \
        if (cond) { \
            harness_passed++; \
        } else { \
            harness_failed++; \
            fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond); \
        } \
    } while (0)

/* Print the summary line; returns the process exit status. */
static inline int harness_done(void)
{
    printf("%d passed, %d failed\n", harness_passed, harness_failed);
    return harness_failed ? 1 : 0;
}

/* nftw callback removing one entry. */
static inline int harness_rm1(const char *path, const struct stat *st,
                              int flag, struct FTW *ftw)
{
    (void)st; (void)flag; (void)ftw;
    return remove(path);
}

/* Remove the tree at PATH. */
static inline void harness_rmtree(const char *path)
{
    nftw(path, harness_rm1, 16, FTW_DEPTH | FTW_PHYS);
}

/* Create a fresh directory /tmp/lakefs-test-XXXXXX; its path in BUF (64). */
static inline char *harness_tmpdir(char *buf)
{
    strcpy(buf, "/tmp/lakefs-test-XXXXXX");
    if (!mkdtemp(buf)) {
        perror("mkdtemp");
        exit(2);
    }
    return buf;
}

/* A fresh scratch directory ROOT holding an empty directory REPO for a
 * repository, whose file:// URL goes to URL. */
static inline void harness_repo_dirs(char root[64], char repo[128], char url[160])
{
    harness_tmpdir(root);
    snprintf(repo, 128, "%s/repo", root);
    snprintf(url, 160, "file://%s", repo);
    if (mkdir(repo, 0700) < 0) {
        perror(repo);
        exit(2);
    }
}

#endif

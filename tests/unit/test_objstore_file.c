/*
 * test_objstore_file.c -- the file:// object store: URL handling,
 * put-if-absent, ranged gets, listing, deletion (one key and many) and key
 * validation.
 */
#include "harness.h"
#include "objstore.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

static objstore *race_os;         /* shared by race_thread */

/* Try to create the same key as every other thread; 1 if this one won. */
static void *race_thread(void *arg)
{
    int rc = os_put_if_absent(race_os, "race/key", arg, strlen(arg));
    return (void *)(intptr_t)(rc == 0 ? 1 : rc == -EEXIST ? 0 : 100);
}

/* Number of entries in DIR whose names start with ".tmp.", recursively. */
static int count_tmp(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    int n = 0;

    if (!d)
        return 0;
    while ((de = readdir(d))) {
        char sub[4096];
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        if (!strncmp(de->d_name, ".tmp.", 5))
            n++;
        snprintf(sub, sizeof(sub), "%s/%s", dir, de->d_name);
        if (de->d_type == DT_DIR)
            n += count_tmp(sub);
    }
    closedir(d);
    return n;
}

/* qsort comparator for C strings. */
static int cmpstr(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(void)
{
    char dir[64], url[512], err[512], path[256];
    objstore *os = NULL;
    void *buf;
    size_t len;
    uint64_t size;
    struct stat st;
    char **keys, **keys_out;
    size_t n;

    harness_tmpdir(dir);

    /* URL handling */
    err[0] = '\0';
    CHECK(os_open("gs://bucket/x", &os, err, sizeof(err)) == -EINVAL && !os);
    CHECK(strstr(err, "unknown repository URL scheme in 'gs://bucket/x'") != NULL);
    CHECK(strstr(err, "file:///path") != NULL);
    err[0] = '\0';
    CHECK(os_open("/no/scheme", &os, err, sizeof(err)) == -EINVAL && !os);
    CHECK(err[0] != '\0');
    err[0] = '\0';
    CHECK(os_open("file://relative/dir", &os, err, sizeof(err)) == -EINVAL);
    CHECK(err[0] != '\0');
    err[0] = '\0';
    CHECK(os_open("file://", &os, err, sizeof(err)) == -EINVAL);
    CHECK(err[0] != '\0');
    snprintf(url, sizeof(url), "file://%s/missing", dir);
    err[0] = '\0';
    CHECK(os_open(url, &os, err, sizeof(err)) == -ENOENT && !os);
    CHECK(strstr(err, "missing") != NULL);
    snprintf(path, sizeof(path), "%s/missing", dir);
    CHECK(stat(path, &st) < 0 && errno == ENOENT);   /* not created */
    snprintf(path, sizeof(path), "%s/plainfile", dir);
    fclose(fopen(path, "w"));
    snprintf(url, sizeof(url), "file://%s", path);
    CHECK(os_open(url, &os, err, sizeof(err)) == -ENOTDIR);
    unlink(path);

    snprintf(url, sizeof(url), "file://%s/", dir);
    CHECK(os_open(url, &os, err, sizeof(err)) == 0 && os);
    if (!os)
        return harness_done();
    CHECK(strcmp(os_url(os), url) == 0);

    /* put, get, head */
    CHECK(os_put_if_absent(os, "a/b/c", "hello world", 11) == 0);
    CHECK(os_put_if_absent(os, "a/b/c", "other", 5) == -EEXIST);
    CHECK(os_get(os, "a/b/c", 0, UINT64_MAX, &buf, &len) == 0);
    CHECK(len == 11 && memcmp(buf, "hello world", 11) == 0);
    free(buf);
    CHECK(os_get(os, "a/b/c", 6, 3, &buf, &len) == 0);
    CHECK(len == 3 && memcmp(buf, "wor", 3) == 0);
    free(buf);
    CHECK(os_get(os, "a/b/c", 6, 100, &buf, &len) == 0);
    CHECK(len == 5 && memcmp(buf, "world", 5) == 0);
    free(buf);
    CHECK(os_get(os, "a/b/c", 11, 10, &buf, &len) == 0 && len == 0);
    free(buf);
    CHECK(os_get(os, "a/b/c", 1000, UINT64_MAX, &buf, &len) == 0 && len == 0);
    free(buf);
    CHECK(os_head(os, "a/b/c", &size) == 0 && size == 11);
    CHECK(os_head(os, "a/b/x", &size) == -ENOENT);
    CHECK(os_head(os, "a/b", &size) == -ENOENT);       /* a directory */
    CHECK(os_head(os, "a/b/c/d", &size) == -ENOENT);   /* under a file */
    buf = (void *)1;
    CHECK(os_get(os, "nope", 0, UINT64_MAX, &buf, &len) == -ENOENT && !buf);
    CHECK(os_put_if_absent(os, "empty", "", 0) == 0);
    CHECK(os_get(os, "empty", 0, UINT64_MAX, &buf, &len) == 0 && len == 0);
    free(buf);
    snprintf(path, sizeof(path), "%s/a/b", dir);
    CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0700);
    CHECK(count_tmp(dir) == 0);

    /* a large object round-trips exactly */
    {
        size_t big = 3 * 1024 * 1024 + 17;
        unsigned char *p = malloc(big);
        for (size_t i = 0; i < big; i++)
            p[i] = (unsigned char)(i * 7 + (i >> 11));
        CHECK(os_put_if_absent(os, "big", p, big) == 0);
        CHECK(os_get(os, "big", 0, UINT64_MAX, &buf, &len) == 0);
        CHECK(len == big && memcmp(buf, p, big) == 0);
        free(buf);
        CHECK(os_get(os, "big", big - 100, 1000, &buf, &len) == 0);
        CHECK(len == 100 && memcmp(buf, p + big - 100, 100) == 0);
        free(buf);

        /* consecutive ranges (one preadv): each exact, empty ones too, more
         * than the 16 on the stack, all or none */
        uint32_t lens[40];
        void *bufs[40];
        uint64_t from = 12345, at = from;
        for (size_t i = 0; i < 40; i++)
            lens[i] = i % 7 == 3 ? 0 : (uint32_t)(1000 + i * 37 * 1024 % 70000);
        CHECK(os_get_ranges(os, "big", from, lens, 40, bufs) == 0);
        size_t bad = 0;
        for (size_t i = 0; i < 40; i++) {
            if (!bufs[i] || memcmp(bufs[i], p + at, lens[i])) bad++;
            at += lens[i];
            free(bufs[i]);
        }
        CHECK(bad == 0);
        lens[0] = 1000; lens[1] = 2000;
        bufs[0] = bufs[1] = (void *)1;
        CHECK(os_get_ranges(os, "big", big - 2500, lens, 2, bufs) == -EIO && !bufs[0] && !bufs[1]);
        CHECK(os_get_ranges(os, "nope", 0, lens, 2, bufs) == -ENOENT && !bufs[0] && !bufs[1]);
        free(p);
    }

    /* bad keys */
    {
        static const char *bad[] = { "", "/abs", "a/../b", "..", ".", "a/.",
                                     "a//b", "a/", "a b", "a\nb", "./x",
                                     "x/..", "k*", "\xc3\xa9", "a\\b" };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
            CHECK(os_put_if_absent(os, bad[i], "x", 1) == -EINVAL);
            CHECK(os_get(os, bad[i], 0, 1, &buf, &len) == -EINVAL);
            CHECK(os_head(os, bad[i], &size) == -EINVAL);
            CHECK(os_delete(os, bad[i]) == -EINVAL);
        }
        {
            const char *some[] = { "ok.A-z_9/..x", "a//b" };
            CHECK(os_delete_many(os, some, 2) == -EINVAL);
        }
        CHECK(os_list(os, "/a", &keys, &n) == -EINVAL);
        CHECK(os_list(os, "../", &keys, &n) == -EINVAL);
        CHECK(os_list(os, "a//", &keys, &n) == -EINVAL);
        CHECK(os_put_if_absent(os, "ok.A-z_9/..x", "x", 1) == 0);
    }

    /* listing: sorted, by prefix, skipping temp files */
    {
        enum { NK = 300 };
        char *want[NK];
        size_t nw = 0, nx = 0;
        srand(7);
        for (int i = 0; i < NK; i++) {
            char k[64];
            snprintf(k, sizeof(k), "l/%c%c/%d-%x", 'a' + rand() % 3,
                     'a' + rand() % 3, i, (unsigned)rand());
            want[i] = strdup(k);
            CHECK(os_put_if_absent(os, k, k, strlen(k)) == 0);
        }
        qsort(want, NK, sizeof(*want), cmpstr);
        snprintf(path, sizeof(path), "%s/l/aa/.tmp.leftover", dir);
        fclose(fopen(path, "w"));
        CHECK(os_list(os, "l/", &keys, &n) == 0 && n == NK);
        for (size_t i = 0; i < n && i < NK; i++)
            CHECK(strcmp(keys[i], want[i]) == 0);
        os_list_free(keys, n);
        /* partial last component */
        CHECK(os_list(os, "l/b", &keys, &n) == 0);
        for (int i = 0; i < NK; i++)
            if (!strncmp(want[i], "l/b", 3))
                CHECK(nw < n && strcmp(keys[nw++], want[i]) == 0);
        CHECK(nw == n && n > 0);
        os_list_free(keys, n);
        CHECK(os_list(os, "l/ab/", &keys, &n) == 0);
        for (int i = 0; i < NK; i++)
            if (!strncmp(want[i], "l/ab/", 5))
                CHECK(nx < n && strcmp(keys[nx++], want[i]) == 0);
        CHECK(nx == n && n > 0);
        for (size_t i = 1; i < n; i++)
            CHECK(strcmp(keys[i - 1], keys[i]) < 0);
        os_list_free(keys, n);
        CHECK(os_list(os, "nothing/here/", &keys, &n) == 0 && n == 0);
        os_list_free(keys, n);
        CHECK(os_list(os, "a/b/c/", &keys, &n) == 0 && n == 0); /* a file */
        os_list_free(keys, n);
        /* whole repository: every key, sorted */
        CHECK(os_list(os, "", &keys, &n) == 0 && n == NK + 4);  /* a/b/c, empty, big, ok... */
        for (size_t i = 1; i < n; i++)
            CHECK(strcmp(keys[i - 1], keys[i]) < 0);
        for (size_t i = 0; i < n; i++)
            CHECK(strstr(keys[i], ".tmp.") == NULL);
        os_list_free(keys, n);
        for (int i = 0; i < NK; i++)
            free(want[i]);
        unlink(path);
    }

    /* delete */
    CHECK(os_delete(os, "a/b/c") == 0);
    CHECK(os_head(os, "a/b/c", &size) == -ENOENT);
    CHECK(os_delete(os, "a/b/c") == 0);
    CHECK(os_delete(os, "never/was") == 0);
    CHECK(os_put_if_absent(os, "a/b/c", "again", 5) == 0);

    /* delete many: missing keys succeed, an invalid key removes nothing */
    {
        const char *keys[] = { "d/1", "d/x/2", "d/never", "d/3", "d/3/under" };
        const char *bad[] = { "d/1", "d/../a/b/c" };
        for (int i = 0; i < 4; i++)
            if (i != 2)
                CHECK(os_put_if_absent(os, keys[i], "x", 1) == 0);
        CHECK(os_delete_many(os, bad, 2) == -EINVAL);
        CHECK(os_head(os, "d/1", &size) == 0 && os_head(os, "a/b/c", &size) == 0);
        CHECK(os_delete_many(os, keys, 0) == 0);
        CHECK(os_delete_many(os, keys, 5) == 0);
        CHECK(os_list(os, "d/", &keys_out, &n) == 0 && n == 0);
        os_list_free(keys_out, n);
        CHECK(os_delete_many(os, keys, 5) == 0);
        CHECK(os_head(os, "a/b/c", &size) == 0);
    }

    /* concurrent put_if_absent: exactly one winner */
    {
        enum { NT = 16 };
        pthread_t th[NT];
        char vals[NT][16];
        int wins = 0, bad = 0;
        race_os = os;
        for (int i = 0; i < NT; i++) {
            snprintf(vals[i], sizeof(vals[i]), "writer-%d", i);
            pthread_create(&th[i], NULL, race_thread, vals[i]);
        }
        for (int i = 0; i < NT; i++) {
            void *r;
            pthread_join(th[i], &r);
            wins += (intptr_t)r == 1;
            bad += (intptr_t)r == 100;
        }
        CHECK(wins == 1 && bad == 0);
        CHECK(os_get(os, "race/key", 0, UINT64_MAX, &buf, &len) == 0);
        CHECK(len >= 8 && memcmp(buf, "writer-", 7) == 0);
        free(buf);
        CHECK(count_tmp(dir) == 0);
    }

    os_close(os);
    harness_rmtree(dir);
    return harness_done();
}

/*
 * test_objcache.c -- the local disk cache in front of a file:// repository:
 * same bytes as the repository, hits without repository reads, the bound
 * and LRU order, corrupt entries discarded and re-fetched, reuse after a
 * restart (with the LRU order from mtimes), owner-only permissions, one
 * daemon per directory, deletes, concurrent gets, a cold layer read that
 * downloads only footer, index and the one block it needs, and a layer
 * this process uploads (layer_open_uploaded, which primes the cache) read
 * back entirely without the repository; consecutive ranges fetched as
 * one get and cached one by one.
 */
#include "harness.h"
#include "objcache.h"
#include "layer.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define OBJ_SIZE (256 * 1024)     /* size of each test layer object */
#define RANGE 3900                /* range length: with the header, one 4 KiB file per entry */
#define KEY_A "branches/main/layers/a.layer"
#define KEY_B "branches/main/layers/b.layer"
#define KEY_MAN "branches/main/manifest/0001"

static char cachedir[600];        /* the cache directory under test */

/* Byte I of test object K. */
static uint8_t pattern(int k, size_t i)
{
    return (uint8_t)(i * 131 + (i >> 9) * 7 + (size_t)k * 29);
}

/* A new buffer holding test object K. */
static uint8_t *make_obj(int k)
{
    uint8_t *b = malloc(OBJ_SIZE);
    for (size_t i = 0; i < OBJ_SIZE; i++)
        b[i] = pattern(k, i);
    return b;
}

/* 1 if BUF/LEN is bytes [OFF, OFF+LEN) of object K. */
static int same_bytes(int k, uint64_t off, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    for (size_t i = 0; i < len; i++)
        if (p[i] != pattern(k, off + i))
            return 0;
    return 1;
}

/* Get [OFF, OFF+LEN) of KEY (object K) through OS; 1 if the bytes are right. */
static int get_ok(objstore *os, const char *key, int k, uint64_t off, uint64_t len)
{
    void *buf;
    size_t got;
    int ok = os_get(os, key, off, len, &buf, &got) == 0 && got == len &&
             same_bytes(k, off, buf, got);
    free(buf);
    return ok;
}

/* Counters of C. */
static objcache_counters stats(objcache *c)
{
    objcache_counters s;
    objcache_stats(c, &s);
    return s;
}

/* Callback type for each_entry: PATH of a cache entry file and its stat. */
typedef void (*entry_fn)(const char *path, const struct stat *st, void *arg);

/* Call FN for every entry file in the cache directory; returns their count. */
static int each_entry(entry_fn fn, void *arg)
{
    DIR *d = opendir(cachedir);
    struct dirent *de;
    int n = 0;

    while (d && (de = readdir(d))) {
        char path[1200];
        struct stat st;
        if (de->d_name[0] == '.' || !strcmp(de->d_name, "lock"))
            continue;
        snprintf(path, sizeof(path), "%s/%s", cachedir, de->d_name);
        if (stat(path, &st) == 0 && fn)
            fn(path, &st, arg);
        n++;
    }
    if (d)
        closedir(d);
    return n;
}

/* each_entry callback: add the file size to *(uint64_t *)ARG. */
static void sum_size(const char *path, const struct stat *st, void *arg)
{
    (void)path;
    *(uint64_t *)arg += (uint64_t)st->st_size;
}

/* each_entry callback: count files whose mode is not 0600 in *(int *)ARG. */
static void bad_mode(const char *path, const struct stat *st, void *arg)
{
    (void)path;
    *(int *)arg += (st->st_mode & 07777) != 0600;
}

/* each_entry callback: flip one data byte (past header and key). */
static void flip_byte(const char *path, const struct stat *st, void *arg)
{
    int fd = open(path, O_RDWR);
    uint8_t b;
    (void)arg;
    if (pread(fd, &b, 1, st->st_size - 10) == 1) {
        b ^= 0x40;
        if (pwrite(fd, &b, 1, st->st_size - 10) != 1)
            perror("pwrite");
    }
    close(fd);
}

/* each_entry callback: keep in ARG (a char[1200]) the path of the newest
 * entry file, the one with the highest name (names count up). */
static void newest(const char *path, const struct stat *st, void *arg)
{
    (void)st;
    if (strcmp(path, (char *)arg) > 0)
        snprintf((char *)arg, 1200, "%s", path);
}

/* each_entry callback: age an entry file whose range offset (header bytes
 * 16..23, little-endian) is not *(uint64_t *)ARG by an hour. */
static void age_others(const char *path, const struct stat *st, void *arg)
{
    int fd = open(path, O_RDONLY);
    uint8_t h[8];
    uint64_t off = 0;
    (void)st;
    if (pread(fd, h, 8, 16) == 8)
        for (int i = 7; i >= 0; i--)
            off = (off << 8) | h[i];
    close(fd);
    if (off != *(uint64_t *)arg) {
        struct timespec t[2] = { { time(NULL) - 3600, 0 }, { time(NULL) - 3600, 0 } };
        utimensat(AT_FDCWD, path, t, 0);
    }
}

/* Open the cache on cachedir in front of INNER with LIMIT; NULL on failure. */
static objcache *open_cache(objstore *inner, uint64_t limit)
{
    char err[512];
    objcache *c;
    if (objcache_open(inner, cachedir, limit, &c, err, sizeof(err)) < 0) {
        fprintf(stderr, "objcache_open: %s\n", err);
        return NULL;
    }
    return c;
}

typedef struct worker {
    objstore *os;                 /* the caching view */
    unsigned seed;                /* rand_r state */
    int bad;                      /* wrong or failed gets */
} worker;

/* Many gets of random ranges of both objects, each checked. */
static void *worker_run(void *arg)
{
    worker *w = arg;
    for (int i = 0; i < 300; i++) {
        int k = rand_r(&w->seed) % 2;
        uint64_t off = (uint64_t)(rand_r(&w->seed) % 48) * RANGE;
        if (!get_ok(w->os, k ? KEY_B : KEY_A, k, off, RANGE))
            w->bad++;
    }
    return NULL;
}

int main(void)
{
    char dir[64], url[512], err[512];
    objstore *inner, *os;
    objcache *c, *c2;
    objcache_counters s;
    uint8_t *a = make_obj(0), *b = make_obj(1);
    struct stat st;
    void *buf;
    size_t got;
    uint64_t size, total;
    const uint64_t limit = 16 * 4096;

    harness_tmpdir(dir);
    snprintf(url, sizeof(url), "file://%s/repo", dir);
    snprintf(cachedir, sizeof(cachedir), "%s/cache", dir);
    CHECK(mkdir(url + 7, 0755) == 0);
    CHECK(os_open(url, &inner, err, sizeof(err)) == 0);
    CHECK(os_put_if_absent(inner, KEY_A, a, OBJ_SIZE) == 0);
    CHECK(os_put_if_absent(inner, KEY_B, b, OBJ_SIZE) == 0);
    CHECK(os_put_if_absent(inner, KEY_MAN, "manifest", 8) == 0);

    /* --- same bytes; the second get is a hit with no repository read --- */
    CHECK((c = open_cache(inner, limit)) != NULL);
    os = objcache_store(c);
    CHECK(strcmp(os_url(os), url) == 0);
    CHECK(get_ok(os, KEY_A, 0, 5000, 3000));
    s = stats(c);
    CHECK(s.hits == 0 && s.misses == 1 && s.downloaded == 3000 && s.entries == 1);
    CHECK(get_ok(os, KEY_A, 0, 5000, 3000));
    s = stats(c);
    CHECK(s.hits == 1 && s.misses == 1 && s.downloaded == 3000);
    /* a different range of the same object is a different entry */
    CHECK(get_ok(os, KEY_A, 0, 5000, 2999));
    CHECK(stats(c).misses == 2);
    /* reading to the end (UINT64_MAX) and a short read at the end */
    CHECK(os_get(os, KEY_A, OBJ_SIZE - 100, UINT64_MAX, &buf, &got) == 0 && got == 100 &&
          same_bytes(0, OBJ_SIZE - 100, buf, got));
    free(buf);
    CHECK(os_get(os, KEY_A, OBJ_SIZE - 100, UINT64_MAX, &buf, &got) == 0 && got == 100 &&
          same_bytes(0, OBJ_SIZE - 100, buf, got));
    free(buf);
    CHECK(stats(c).hits == 2);
    /* heads of layers are cached too */
    CHECK(os_head(os, KEY_A, &size) == 0 && size == OBJ_SIZE);
    CHECK(os_head(os, KEY_A, &size) == 0 && size == OBJ_SIZE);
    s = stats(c);
    CHECK(s.hits == 3 && s.misses == 4);
    /* missing objects are not cached */
    CHECK(os_get(os, "branches/main/layers/none", 0, 10, &buf, &got) == -ENOENT);
    CHECK(os_head(os, "branches/main/layers/none", &size) == -ENOENT);
    CHECK(os_get(os, "branches/main/layers/none", 0, 10, &buf, &got) == -ENOENT);
    /* manifests (not layers) always go to the repository */
    total = stats(c).downloaded;
    CHECK(os_get(os, KEY_MAN, 0, UINT64_MAX, &buf, &got) == 0 && got == 8);
    free(buf);
    CHECK(os_get(os, KEY_MAN, 0, UINT64_MAX, &buf, &got) == 0 && got == 8);
    free(buf);
    s = stats(c);
    CHECK(s.hits == 3 && s.downloaded == total + 16);
    /* list and put pass through */
    {
        char **keys;
        size_t n;
        CHECK(os_list(os, "branches/main/", &keys, &n) == 0 && n == 3);
        os_list_free(keys, n);
        CHECK(os_put_if_absent(os, KEY_A, "x", 1) == -EEXIST);
    }
    /* a hit needs no repository at all */
    CHECK(os_put_if_absent(inner, "branches/main/layers/c.layer", "cached", 6) == 0);
    CHECK(os_get(os, "branches/main/layers/c.layer", 0, 6, &buf, &got) == 0);
    free(buf);
    CHECK(os_delete(inner, "branches/main/layers/c.layer") == 0);
    CHECK(os_get(os, "branches/main/layers/c.layer", 0, 6, &buf, &got) == 0 &&
          got == 6 && memcmp(buf, "cached", 6) == 0);
    free(buf);

    /* --- permissions and one daemon per directory --- */
    CHECK(stat(cachedir, &st) == 0 && (st.st_mode & 07777) == 0700);
    {
        int bad = 0;
        CHECK(each_entry(bad_mode, &bad) > 0 && bad == 0);
    }
    CHECK(objcache_open(inner, cachedir, limit, &c2, err, sizeof(err)) == -EBUSY);
    CHECK(c2 == NULL && strstr(err, "in use") != NULL);

    /* --- restart: entries are reused --- */
    s = stats(c);
    objcache_close(c);
    CHECK(chmod(cachedir, 0755) == 0);   /* reopened private again */
    CHECK((c = open_cache(inner, limit)) != NULL);
    os = objcache_store(c);
    CHECK(stat(cachedir, &st) == 0 && (st.st_mode & 07777) == 0700);
    CHECK(stats(c).entries == s.entries && stats(c).bytes == s.bytes);
    CHECK(get_ok(os, KEY_A, 0, 5000, 3000));
    CHECK(os_head(os, KEY_A, &size) == 0 && size == OBJ_SIZE);
    s = stats(c);
    CHECK(s.hits == 2 && s.misses == 0 && s.downloaded == 0);
    objcache_close(c);
    harness_rmtree(cachedir);

    /* --- the bound and LRU order --- */
    CHECK((c = open_cache(inner, limit)) != NULL);
    os = objcache_store(c);
    int recent_ok = 1;
    for (int i = 0; i < 60; i++) {
        recent_ok &= get_ok(os, KEY_A, 0, (uint64_t)i * RANGE, RANGE);
        recent_ok &= get_ok(os, KEY_A, 0, 0, RANGE);   /* keep range 0 recent */
    }
    CHECK(recent_ok);
    s = stats(c);
    CHECK(s.misses == 60 && s.hits == 60);  /* range 0 never left the cache */
    CHECK(s.bytes <= limit && s.entries == 16 && s.evicted == 60 - 16);
    total = 0;
    CHECK(each_entry(sum_size, &total) == 16);
    CHECK(total <= limit);
    CHECK(get_ok(os, KEY_A, 0, 59 * RANGE, RANGE));    /* recent: hit */
    CHECK(stats(c).hits == 61);
    CHECK(get_ok(os, KEY_A, 0, 1 * RANGE, RANGE));     /* old: evicted */
    CHECK(stats(c).misses == 61);
    /* an entry larger than the bound is served but not kept */
    CHECK(get_ok(os, KEY_B, 1, 0, limit));
    CHECK(get_ok(os, KEY_B, 1, 0, limit));
    CHECK(stats(c).misses == 63 && stats(c).entries == 16);

    /* --- restart with a smaller bound keeps the most recently used (mtime) --- */
    objcache_close(c);
    {
        uint64_t keep = 59 * RANGE;
        each_entry(age_others, &keep);
    }
    CHECK((c = open_cache(inner, 4096)) != NULL);
    os = objcache_store(c);
    s = stats(c);
    CHECK(s.entries == 1 && s.bytes == 4096 && s.evicted == 15);
    CHECK(each_entry(NULL, NULL) == 1);
    CHECK(get_ok(os, KEY_A, 0, 59 * RANGE, RANGE));
    CHECK(stats(c).hits == 1 && stats(c).downloaded == 0);
    objcache_close(c);
    harness_rmtree(cachedir);

    /* --- corruption: discarded, re-fetched, never returned --- */
    CHECK((c = open_cache(inner, limit)) != NULL);
    os = objcache_store(c);
    CHECK(get_ok(os, KEY_B, 1, 8000, RANGE));
    CHECK(each_entry(flip_byte, NULL) == 1);
    CHECK(get_ok(os, KEY_B, 1, 8000, RANGE));
    s = stats(c);
    CHECK(s.discarded == 1 && s.hits == 0 && s.misses == 2 && s.downloaded == 2 * RANGE);
    CHECK(get_ok(os, KEY_B, 1, 8000, RANGE));         /* the new copy is good */
    CHECK(stats(c).hits == 1);
    /* a truncated file and a foreign file with an entry-like name */
    objcache_close(c);
    {
        char path[1200];
        int fd;
        snprintf(path, sizeof(path), "%s/0123456789abcdef", cachedir);
        fd = open(path, O_WRONLY | O_CREAT, 0600);
        CHECK(fd >= 0 && write(fd, "junk", 4) == 4);
        close(fd);
        snprintf(path, sizeof(path), "%s/tmp.7", cachedir);   /* crash leftover */
        fd = open(path, O_WRONLY | O_CREAT, 0600);
        close(fd);
    }
    CHECK((c = open_cache(inner, limit)) != NULL);
    os = objcache_store(c);
    s = stats(c);
    CHECK(s.entries == 1 && s.discarded == 1);
    CHECK(each_entry(NULL, NULL) == 1);
    CHECK(get_ok(os, KEY_B, 1, 8000, RANGE) && stats(c).hits == 1);
    /* a file cut short after the open is caught when read */
    {
        char path[1200];
        DIR *d = opendir(cachedir);
        struct dirent *de;
        while ((de = readdir(d)))
            if (strlen(de->d_name) == 16)
                snprintf(path, sizeof(path), "%s/%s", cachedir, de->d_name);
        closedir(d);
        CHECK(truncate(path, 100) == 0);
    }
    CHECK(get_ok(os, KEY_B, 1, 8000, RANGE));
    s = stats(c);
    CHECK(s.discarded == 2 && s.misses == 1 && s.entries == 1);

    /* --- deleting an object drops its entries --- */
    CHECK(os_put_if_absent(inner, "branches/main/layers/gone", "abcdef", 6) == 0);
    CHECK(os_get(os, "branches/main/layers/gone", 1, 3, &buf, &got) == 0 && got == 3);
    free(buf);
    CHECK(stats(c).entries == 2);
    CHECK(os_delete(os, "branches/main/layers/gone") == 0);
    CHECK(stats(c).entries == 1 && each_entry(NULL, NULL) == 1);
    CHECK(os_get(os, "branches/main/layers/gone", 1, 3, &buf, &got) == -ENOENT);
    /* deleting many: through to the repository, their entries dropped */
    {
        const char *keys[] = { "branches/main/layers/g2", "branches/main/layers/none",
                               "branches/main/layers/g1" };
        CHECK(os_put_if_absent(inner, keys[0], "abcdef", 6) == 0);
        CHECK(os_put_if_absent(inner, keys[2], "abcdef", 6) == 0);
        CHECK(os_get(os, keys[0], 0, 2, &buf, &got) == 0);
        free(buf);
        CHECK(os_head(os, keys[2], &size) == 0 && size == 6);
        CHECK(stats(c).entries == 3);
        CHECK(os_delete_many(os, keys, 3) == 0);
        CHECK(stats(c).entries == 1 && each_entry(NULL, NULL) == 1);
        CHECK(os_head(inner, keys[0], &size) == -ENOENT &&
              os_head(inner, keys[2], &size) == -ENOENT);
        CHECK(os_head(os, keys[2], &size) == -ENOENT);
    }

    /* --- consecutive ranges: one download of the missing span, each range
     *     cached on its own and read back by a plain get --- */
    {
        const uint32_t lens[4] = { 1000, 3000, 2000, 1500 };
        void *bufs[4];
        uint64_t at, before;
        int ok = 1;

        CHECK(get_ok(os, KEY_B, 1, 100000, 1000));     /* the first one cached */
        int files = each_entry(NULL, NULL);
        s = stats(c);
        CHECK(os_get_ranges(os, KEY_B, 100000, lens, 4, bufs) == 0);
        CHECK(each_entry(NULL, NULL) == files + 1);    /* one file for the get */
        at = 100000;
        for (int i = 0; i < 4; at += lens[i++]) {
            ok &= same_bytes(1, at, bufs[i], lens[i]);
            free(bufs[i]);
        }
        CHECK(ok);
        CHECK(stats(c).downloaded == s.downloaded + 6500 && stats(c).hits == s.hits + 1);
        before = stats(c).downloaded;
        at = 100000;
        for (int i = 0; i < 4; at += lens[i++])
            ok &= get_ok(os, KEY_B, 1, at, lens[i]);
        CHECK(ok && stats(c).downloaded == before && stats(c).hits == s.hits + 5);
        /* after a restart too */
        objcache_close(c);
        CHECK((c = open_cache(inner, limit)) != NULL);
        os = objcache_store(c);
        at = 100000;
        for (int i = 0; i < 4; at += lens[i++])
            ok &= get_ok(os, KEY_B, 1, at, lens[i]);
        CHECK(ok && stats(c).downloaded == 0 && stats(c).hits == 4);
        /* a flipped byte in the last part: its file is dropped whole, and
         * the parts it held are fetched again (the first one is still in
         * the file of its own) */
        {
            char path[1200] = "";
            each_entry(newest, path);
            CHECK(stat(path, &st) == 0);
            flip_byte(path, &st, NULL);
        }
        s = stats(c);
        ok &= get_ok(os, KEY_B, 1, 100000 + 6000, 1500);  /* the bad part first */
        at = 100000;
        for (int i = 0; i < 3; at += lens[i++])
            ok &= get_ok(os, KEY_B, 1, at, lens[i]);
        CHECK(ok && stats(c).discarded == s.discarded + 1 &&
              stats(c).downloaded == 3000 + 2000 + 1500 && stats(c).hits == s.hits + 1);
        /* the repository alone (no cache) splits one get the same way */
        CHECK(os_get_ranges(inner, KEY_B, 100000, lens, 4, bufs) == 0);
        at = 100000;
        for (int i = 0; i < 4; at += lens[i++]) {
            ok &= same_bytes(1, at, bufs[i], lens[i]);
            free(bufs[i]);
        }
        CHECK(ok);
        /* ranges past the end of the object: -EIO, nothing returned or kept */
        s = stats(c);
        bufs[0] = bufs[1] = NULL;
        CHECK(os_get_ranges(os, KEY_B, OBJ_SIZE - 3000, lens, 2, bufs) == -EIO);
        CHECK(bufs[0] == NULL && bufs[1] == NULL && stats(c).entries == s.entries);
        CHECK(os_get_ranges(os, "branches/main/layers/none", 0, lens, 2, bufs) == -ENOENT);
    }

    /* --- concurrent gets under eviction --- */
    {
        pthread_t th[8];
        worker w[8];
        int bad = 0;
        for (int i = 0; i < 8; i++) {
            w[i] = (worker){ .os = os, .seed = (unsigned)i * 7919 + 1 };
            pthread_create(&th[i], NULL, worker_run, &w[i]);
        }
        for (int i = 0; i < 8; i++) {
            pthread_join(th[i], NULL);
            bad += w[i].bad;
        }
        CHECK(bad == 0);
        s = stats(c);
        CHECK(s.hits > 0 && s.evicted > 0 && s.bytes <= limit);
        total = 0;
        each_entry(sum_size, &total);
        CHECK(total <= limit && each_entry(NULL, NULL) == (int)s.entries);
    }
    {
        char path[1200];
        FILE *f;
        unsigned long long hits = 0;
        snprintf(path, sizeof(path), "%s/stats", dir);
        CHECK(objcache_write_stats(c, path) == 0);
        f = fopen(path, "r");
        CHECK(f && fscanf(f, "hits %llu", &hits) == 1 && hits == stats(c).hits);
        if (f)
            fclose(f);
    }
    objcache_close(c);
    harness_rmtree(cachedir);

    /* --- a cold layer read downloads footer, index and one block --- */
    {
        layer_writer *w = layer_writer_new();
        layer *l;
        void *lbuf, *val;
        size_t llen, vlen;
        uint8_t key[8], v[512];
        int tomb;
        uint64_t seq;
        int rc = 0;

        for (uint32_t i = 0; i < 16000; i++) {   /* ~1 MB: a tail and a block are a small part */
            key[4] = (uint8_t)(i >> 24); key[5] = (uint8_t)(i >> 16);
            key[6] = (uint8_t)(i >> 8); key[7] = (uint8_t)i;
            key[0] = key[1] = key[2] = key[3] = 'k';
            for (size_t j = 0; j < sizeof(v); j++)
                v[j] = (uint8_t)(i * 31 + j * 17 + (j >> 3));
            rc |= layer_writer_add(w, key, 8, 5, 0, v, sizeof(v));
        }
        CHECK(rc == 0);
        CHECK(layer_writer_finish(w, &lbuf, &llen) == 0);
        layer_writer_free(w);
        CHECK(os_put_if_absent(inner, "branches/main/layers/big.layer", lbuf, llen) == 0);
        free(lbuf);

        CHECK((c = open_cache(inner, (uint64_t)64 << 20)) != NULL);
        os = objcache_store(c);
        CHECK(layer_open(os, "branches/main/layers/big.layer", &l) == 0);
        key[4] = 0; key[5] = 0; key[6] = 0x07; key[7] = 0xd0;   /* 2000 */
        CHECK(layer_get(l, key, 8, UINT64_MAX, &tomb, &val, &vlen, &seq) == 1 &&
              vlen == sizeof(v));
        free(val);
        layer_close(l);
        s = stats(c);
        CHECK(s.misses == 3);               /* head, tail (footer and index), one block */
        CHECK(s.downloaded > 0 && s.downloaded < llen / 4);
        if (s.misses != 3 || s.downloaded >= llen / 4)
            printf("  cold open and one read: %" PRIu64 " misses, %" PRIu64 " of %zu bytes\n",
                   s.misses, s.downloaded, llen);
        objcache_close(c);

        /* warm restart: the layer opens without touching the repository */
        CHECK((c = open_cache(inner, (uint64_t)64 << 20)) != NULL);
        os = objcache_store(c);
        CHECK(layer_open(os, "branches/main/layers/big.layer", &l) == 0);
        layer_close(l);
        s = stats(c);
        CHECK(s.hits == 2 && s.misses == 0 && s.downloaded == 0);

        /* a layer uploaded by this process: readable with the object gone */
        w = layer_writer_new();
        for (uint32_t i = 0; i < 4000; i++) {
            key[4] = (uint8_t)(i >> 24); key[5] = (uint8_t)(i >> 16);
            key[6] = (uint8_t)(i >> 8); key[7] = (uint8_t)i;
            for (size_t j = 0; j < sizeof(v); j++)
                v[j] = (uint8_t)(i * 7 + j * 13);
            rc |= layer_writer_add(w, key, 8, 9, 0, v, sizeof(v));
        }
        CHECK(rc == 0);
        CHECK(layer_writer_finish(w, &lbuf, &llen) == 0);
        layer_writer_free(w);
        CHECK(os_put_if_absent(os, "branches/main/layers/fresh.layer", lbuf, llen) == 0);
        CHECK(layer_open_uploaded(os, "branches/main/layers/fresh.layer", lbuf, llen, &l) == 0);
        free(lbuf);
        CHECK(os_delete(inner, "branches/main/layers/fresh.layer") == 0);  /* unreachable */
        int all = 1;
        for (uint32_t i = 0; i < 4000; i += 37) {
            key[4] = (uint8_t)(i >> 24); key[5] = (uint8_t)(i >> 16);
            key[6] = (uint8_t)(i >> 8); key[7] = (uint8_t)i;
            all &= layer_get(l, key, 8, UINT64_MAX, &tomb, &val, &vlen, &seq) == 1 &&
                   vlen == sizeof(v) && ((uint8_t *)val)[1] == (uint8_t)(i * 7 + 13);
            free(val);
        }
        CHECK(all);
        layer_close(l);
        s = stats(c);
        CHECK(s.misses == 0 && s.downloaded == 0 && s.hits > 3);
        objcache_close(c);
    }

    /* --- open errors --- */
    CHECK(objcache_open(inner, "/nonexistent/dir/cache", limit, &c2, err, sizeof(err)) < 0 &&
          c2 == NULL && strstr(err, "/nonexistent/dir/cache") != NULL);

    os_close(inner);
    free(a);
    free(b);
    harness_rmtree(dir);
    return harness_done();
}

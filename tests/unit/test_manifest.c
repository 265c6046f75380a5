/*
 * test_manifest.c -- manifest encoding (exact text), strict decoding of
 * damaged and non-canonical input, and commit/load through a file:// repo.
 */
#include "harness.h"
#include "manifest.h"
#include "crc32c.h"

#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <unistd.h>

static uint64_t rng = 0x2545F4914F6CDD1Dull;

/* xorshift64 random numbers. */
static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* 1 if A and B hold the same fields and layers. */
static int same(const manifest *a, const manifest *b)
{
    if (a->seq != b->seq || a->max_ino != b->max_ino || a->nlayers != b->nlayers ||
        a->writer != b->writer || a->session != b->session || a->inherit != b->inherit ||
        a->time != b->time)
        return 0;
    for (size_t i = 0; i < a->nlayers; i++)
        if (strcmp(a->layers[i].key, b->layers[i].key) ||
            a->layers[i].min_seq != b->layers[i].min_seq ||
            a->layers[i].max_seq != b->layers[i].max_seq ||
            a->layers[i].size != b->layers[i].size)
            return 0;
    return 1;
}

/* Decode BODY with a correct crc line appended; returns decode's result. */
static int decode_body(const char *body)
{
    char text[1024];
    manifest m;
    int rc;

    snprintf(text, sizeof(text), "%scrc %08x\n", body,
             crc32c(0, body, strlen(body)));
    rc = manifest_decode(text, strlen(text), &m);
    manifest_free(&m);
    return rc;
}

/* A random manifest with N layers. */
static void random_manifest(manifest *m, size_t n)
{
    static const char chars[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._/-";
    memset(m, 0, sizeof(*m));
    m->seq = rnd();
    m->max_ino = rnd() % 1000000;
    m->writer = rnd();
    m->session = rnd() % 1000;
    m->inherit = rnd() % 2 ? 0 : rnd() % 1000;
    for (size_t i = 0; i < n; i++) {
        char key[80];
        size_t kl = 1 + rnd() % 70;
        uint64_t a = rnd() >> (rnd() % 64), b = rnd() >> (rnd() % 64);
        for (size_t j = 0; j < kl; j++)
            key[j] = chars[rnd() % (sizeof(chars) - 1)];
        key[kl] = '\0';
        CHECK(manifest_add_layer(m, key, a < b ? a : b, a < b ? b : a,
                                 rnd() % 100000000) == 0);
    }
}

int main(void)
{
    manifest m, d;
    char *buf;
    size_t len;

    /* exact encoding */
    memset(&m, 0, sizeof(m));
    m.seq = 42;
    m.max_ino = 7;
    m.writer = 9;
    m.session = 12;
    m.inherit = 11;
    m.time = 1764513000;
    CHECK(manifest_add_layer(&m, "layers/0001", 1, 20, 4096) == 0);
    CHECK(manifest_add_layer(&m, "layers/0002", 21, 42, 0) == 0);
    CHECK(manifest_add_layer(&m, "bad key", 1, 2, 3) == -EINVAL);
    CHECK(manifest_add_layer(&m, "", 1, 2, 3) == -EINVAL);
    CHECK(manifest_add_layer(&m, "k", 3, 2, 3) == -EINVAL);
    CHECK(m.nlayers == 2);
    CHECK(manifest_encode(&m, &buf, &len) == 0);
    {
        const char *body = "lakefs-manifest 1\nseq 42\nmax_ino 7\nwriter 9\nsession 12\ninherit 11\ntime 1764513000\n"
                           "layer layers/0001 1 20 4096\n"
                           "layer layers/0002 21 42 0\n";
        char want[512];
        snprintf(want, sizeof(want), "%scrc %08x\n", body,
                 crc32c(0, body, strlen(body)));
        CHECK(len == strlen(want) && memcmp(buf, want, len) == 0);
    }
    CHECK(manifest_decode(buf, len, &d) == 0 && same(&m, &d) && d.gen == 0);
    manifest_free(&d);

    /* every truncation, every byte flip, trailing garbage */
    {
        int bad = 0;
        char *copy = malloc(len + 1);
        for (size_t n = 0; n < len; n++)
            bad += manifest_decode(buf, n, &d) != -EINVAL || d.nlayers != 0;
        CHECK(bad == 0);
        bad = 0;
        for (size_t pos = 0; pos < len; pos++) {
            static const uint8_t flips[] = { 0x01, 0x02, 0x04, 0x08, 0x10,
                                             0x20, 0x40, 0x80, 0xff };
            for (size_t f = 0; f < sizeof(flips); f++) {
                memcpy(copy, buf, len);
                copy[pos] ^= (char)flips[f];
                bad += manifest_decode(copy, len, &d) != -EINVAL;
                manifest_free(&d);
            }
        }
        CHECK(bad == 0);
        memcpy(copy, buf, len);
        copy[len] = '\n';
        CHECK(manifest_decode(copy, len + 1, &d) == -EINVAL);
        free(copy);
    }
    free(buf);
    manifest_free(&m);
    CHECK(m.nlayers == 0 && m.layers == NULL);

    /* the grammar is strict even when the crc is right */
    CHECK(decode_body("lakefs-manifest 1\nseq 1\nmax_ino 2\nwriter 0\nsession 0\ninherit 0\ntime 1\n") == 0);
    CHECK(decode_body("lakefs-manifest 1\nseq 0\nmax_ino 0\nwriter 0\nsession 0\ninherit 0\ntime 1\n"
                      "layer a 0 0 0\n") == 0);
    CHECK(decode_body("lakefs-manifest 1\nseq 18446744073709551615\nmax_ino 2\nwriter 0\nsession 0\ninherit 0\ntime 1\n") == 0);
    CHECK(decode_body("lakefs-manifest 1\nseq 18446744073709551616\nmax_ino 2\nwriter 0\nsession 0\ninherit 0\ntime 1\n") == -EINVAL);
    CHECK(decode_body("lakefs-manifest 1\nseq 1\nmax_ino 2\nsession 0\ninherit 0\ntime 1\n") == -EINVAL);
    CHECK(decode_body("lakefs-manifest 1\nseq 1\nmax_ino 2\nwriter 0\ninherit 0\nsession 0\n") == -EINVAL);
    CHECK(decode_body("lakefs-manifest 2\nseq 1\nmax_ino 2\nwriter 0\nsession 0\ninherit 0\ntime 1\n") == -EINVAL);
    CHECK(decode_body("lakefs-manifest 1\nseq 01\nmax_ino 2\nwriter 0\nsession 0\ninherit 0\ntime 1\n") == -EINVAL);
    CHECK(decode_body("lakefs-manifest 1\nseq -1\nmax_ino 2\nwriter 0\nsession 0\ninherit 0\ntime 1\n") == -EINVAL);
    CHECK(decode_body("lakefs-manifest 1\nseq +1\nmax_ino 2\nwriter 0\nsession 0\ninherit 0\ntime 1\n") == -EINVAL);
    CHECK(decode_body("lakefs-manifest 1\nseq  1\nmax_ino 2\nwriter 0\nsession 0\ninherit 0\ntime 1\n") == -EINVAL);
    CHECK(decode_body("lakefs-manifest 1\nseq 1 \nmax_ino 2\nwriter 0\nsession 0\ninherit 0\ntime 1\n") == -EINVAL);
    CHECK(decode_body("lakefs-manifest 1\nseq\nmax_ino 2\nwriter 0\nsession 0\ninherit 0\ntime 1\n") == -EINVAL);
    CHECK(decode_body("lakefs-manifest 1\nmax_ino 2\nseq 1\n") == -EINVAL);
    CHECK(decode_body("lakefs-manifest 1\nseq 1\nmax_ino 2\nwriter 0\nsession 0\ninherit 0\n") == -EINVAL);
    CHECK(decode_body("lakefs-manifest 1\nseq 1\nmax_ino 2\nwriter 0\nsession 0\ntime 1\ninherit 0\n") == -EINVAL);
    CHECK(decode_body("lakefs-manifest 1\nseq 1\nmax_ino 2\nwriter 0\nsession 0\ninherit 0\ntime 1764513000\n") == 0);
    CHECK(decode_body("lakefs-manifest 1\nseq 1\nmax_ino 2\nwriter 0\nsession 0\ninherit 0\ntime 1\n\n") == -EINVAL);
    CHECK(decode_body("lakefs-manifest 1\r\nseq 1\nmax_ino 2\nwriter 0\nsession 0\ninherit 0\ntime 1\n") == -EINVAL);
    CHECK(decode_body("lakefs-manifest 1\nseq 1\nmax_ino 2\nwriter 0\nsession 0\ninherit 0\ntime 1\nlayer a 5 4 1\n") == -EINVAL);
    CHECK(decode_body("lakefs-manifest 1\nseq 1\nmax_ino 2\nwriter 0\nsession 0\ninherit 0\ntime 1\nlayer a b 1 2 3\n") == -EINVAL);
    CHECK(decode_body("lakefs-manifest 1\nseq 1\nmax_ino 2\nwriter 0\nsession 0\ninherit 0\ntime 1\nlayer  1 2 3\n") == -EINVAL);
    CHECK(decode_body("lakefs-manifest 1\nseq 1\nmax_ino 2\nwriter 0\nsession 0\ninherit 0\ntime 1\nlayer a 1 2\n") == -EINVAL);
    CHECK(decode_body("lakefs-manifest 1\nseq 1\nmax_ino 2\nwriter 0\nsession 0\ninherit 0\ntime 1\nlayer a 1 2 3 4\n") == -EINVAL);
    CHECK(decode_body("lakefs-manifest 1\nseq 1\nmax_ino 2\nwriter 0\nsession 0\ninherit 0\ntime 1\nlayer a* 1 2 3\n") == -EINVAL);
    CHECK(decode_body("lakefs-manifest 1\nseq 1\nmax_ino 2\nwriter 0\nsession 0\ninherit 0\ntime 1\nlayer a 1 2 3\nseq 1\n") == -EINVAL);
    {
        const char *body = "lakefs-manifest 1\nseq 1\nmax_ino 2\nwriter 0\nsession 0\ninherit 0\ntime 1\n";
        char text[256];
        snprintf(text, sizeof(text), "%scrc %08X\n", body,
                 crc32c(0, body, strlen(body)) | 0xa0000000u);
        CHECK(manifest_decode(text, strlen(text), &d) == -EINVAL);
        snprintf(text, sizeof(text), "%scrc %08x", body,
                 crc32c(0, body, strlen(body)));
        CHECK(manifest_decode(text, strlen(text), &d) == -EINVAL);
        snprintf(text, sizeof(text), "%scrc %09x\n", body,
                 crc32c(0, body, strlen(body)));
        CHECK(manifest_decode(text, strlen(text), &d) == -EINVAL);
        /* an embedded NUL */
        snprintf(text, sizeof(text), "%scrc %08x\n", body,
                 crc32c(0, body, strlen(body)));
        len = strlen(text);
        text[5] = '\0';
        CHECK(manifest_decode(text, len, &d) == -EINVAL);
    }

    /* random garbage, and random round trips */
    {
        int bad = 0;
        char junk[600];
        for (int i = 0; i < 3000; i++) {
            size_t n = rnd() % sizeof(junk);
            for (size_t j = 0; j < n; j++)
                junk[j] = i % 2 ? (char)rnd()
                                : "lakefs-manifest 1\nseq 0123456789 layer crc abcdef"[rnd() % 50];
            bad += manifest_decode(junk, n, &d) != -EINVAL;
            manifest_free(&d);
        }
        CHECK(bad == 0);
        bad = 0;
        for (int i = 0; i < 200; i++) {
            random_manifest(&m, rnd() % 60);
            if (manifest_encode(&m, &buf, &len) != 0) {
                bad++;
                manifest_free(&m);
                continue;
            }
            bad += manifest_decode(buf, len, &d) != 0 || !same(&m, &d);
            /* a random flip anywhere is always caught */
            buf[rnd() % len] ^= (char)(1 + rnd() % 255);
            manifest_free(&d);
            bad += manifest_decode(buf, len, &d) != -EINVAL;
            manifest_free(&d);
            free(buf);
            manifest_free(&m);
        }
        CHECK(bad == 0);
    }
    /* the encoder refuses what the decoder would refuse */
    {
        manifest_layer ml = { "has space", 1, 2, 3 };
        manifest bad = { .gen = 0, .seq = 1, .max_ino = 1, .nlayers = 1, .layers = &ml };
        CHECK(manifest_encode(&bad, &buf, &len) == -EINVAL && buf == NULL);
        ml.key = "ok";
        ml.min_seq = 5;
        CHECK(manifest_encode(&bad, &buf, &len) == -EINVAL && buf == NULL);
    }

    /* commit and load through a repository */
    {
        char dir[64], url[128], err[256], path[256];
        objstore *os = NULL;
        snprintf(url, sizeof(url), "file://%s", harness_tmpdir(dir));
        CHECK(os_open(url, &os, err, sizeof(err)) == 0);
        if (!os)
            return harness_done();
        CHECK(manifest_load_latest(os, "main", &d) == -ENOENT);
        random_manifest(&m, 5);
        for (uint64_t g = 1; g <= 12; g++) {
            m.gen = g;
            m.seq = g * 100;
            CHECK(manifest_commit(os, "main", &m) == 0);
        }
        m.gen = 3;
        CHECK(manifest_commit(os, "main", &m) == -EEXIST);
        /* junk in the manifest directory is not a generation */
        CHECK(os_put_if_absent(os, "branches/main/manifest/99999", "x", 1) == 0);
        CHECK(os_put_if_absent(os, "branches/main/manifest/0000000000000000009x",
                               "x", 1) == 0);
        CHECK(os_put_if_absent(os, "branches/main/manifest/x/00000000000000000099",
                               "x", 1) == 0);
        CHECK(manifest_load_latest(os, "main", &d) == 0);
        CHECK(d.gen == 12 && d.seq == 1200 && d.nlayers == 5);
        m.seq = 1200;
        CHECK(same(&m, &d));
        manifest_free(&d);
        CHECK(manifest_load_latest(os, "other", &d) == -ENOENT);
        CHECK(manifest_load_latest(os, "mai", &d) == -ENOENT);
        /* generation ordering is numeric over the full 64 bits */
        m.gen = UINT64_MAX;
        m.seq = 5;
        CHECK(manifest_commit(os, "wide", &m) == 0);
        m.gen = 9;
        CHECK(manifest_commit(os, "wide", &m) == 0);
        CHECK(manifest_load_latest(os, "wide", &d) == 0 && d.gen == UINT64_MAX);
        manifest_free(&d);
        /* a corrupt newest manifest is an error, not silently skipped */
        CHECK(os_put_if_absent(os, "branches/main/manifest/00000000000000000013",
                               "lakefs-manifest 1\nseq 1\n", 24) == 0);
        {
            int saved = dup(2), rc;
            FILE *null = fopen("/dev/null", "w");
            fflush(stderr);
            dup2(fileno(null), 2);
            rc = manifest_load_latest(os, "main", &d);
            fflush(stderr);
            dup2(saved, 2);
            close(saved);
            fclose(null);
            CHECK(rc == -EIO && d.nlayers == 0);
        }
        snprintf(path, sizeof(path), "%s/branches/main/manifest/00000000000000000012", dir);
        CHECK(access(path, F_OK) == 0);
        manifest_free(&m);
        os_close(os);
        harness_rmtree(dir);
    }
    return harness_done();
}

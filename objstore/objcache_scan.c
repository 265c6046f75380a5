/*
 * objcache_scan.c -- opening the disk cache: adopting the files a previous
 * daemon left in its directory.
 *
 * Nothing found there is trusted: a file is indexed only if its name is a
 * sequence number, its header, part table and key pass their CRC-32C and
 * its size agrees with the header (a crash during its write leaves it
 * short); anything else is deleted, as are temporary files of older
 * versions.  Files are indexed least recently touched first, so that the
 * LRU order is their mtimes' and the bound then evicts the oldest; a file
 * whose ranges are all held by others is not kept.  A part's data is
 * checked later, on each read of it (objcache.c).
 */
#include "objcache_impl.h"
#include "../util/crc32c.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* 1 if S is a 16-digit lowercase hex file name (its value in *SEQ). */
static int oc_parse_fname(const char *s, uint64_t *seq)
{
    uint64_t v = 0;
    size_t i;

    for (i = 0; s[i]; i++) {
        int d = s[i] >= '0' && s[i] <= '9' ? s[i] - '0' :
                s[i] >= 'a' && s[i] <= 'f' ? s[i] - 'a' + 10 : -1;
        if (d < 0 || i == 16)
            return 0;
        v = (v << 4) | (uint64_t)d;
    }
    *seq = v;
    return i == 16;
}

/* A record of file FNAME (sequence number SEQ) if its header, part table
 * and size are sound, else NULL.  Parts are checked when they are read. */
static oc_file *oc_load(objcache *c, const char *fname, uint64_t seq)
{
    uint8_t hdr[OC_HDR + OC_PARTS_MAX * OC_PART + OC_KEY_MAX];
    oc_file *f = NULL;
    struct stat st;
    uint32_t kind, klen, n;
    uint64_t off, total, sum = 0;
    size_t tlen;
    ssize_t got;
    int fd, ok = 1;

    fd = openat(c->dfd, fname, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return NULL;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
        (got = pread(fd, hdr, sizeof(hdr), 0)) < OC_HDR)
        goto out;
    kind = oc_get32(hdr + 8);
    klen = oc_get32(hdr + 12);
    off = oc_get64(hdr + 16);
    n = oc_get32(hdr + 24);
    total = oc_get64(hdr + 32);
    tlen = OC_HDR + (size_t)n * OC_PART + klen;
    if (memcmp(hdr, OC_MAGIC, 8) != 0 || klen == 0 || klen > OC_KEY_MAX ||
        n == 0 || n > OC_PARTS_MAX || (size_t)got < tlen ||
        total > (uint64_t)st.st_size || (uint64_t)st.st_size != tlen + total ||
        !(kind == OC_RANGE || (kind == OC_SIZE && n == 1 && off == 0)) ||
        oc_get32(hdr + 40) != crc32c(crc32c(0, hdr, 40), hdr + OC_HDR, tlen - OC_HDR) ||
        memchr(hdr + tlen - klen, 0, klen) != NULL)
        goto out;
    if (!(f = oc_file_new((const char *)hdr + tlen - klen, klen, kind, n)))
        goto out;
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *t = hdr + OC_HDR + (size_t)i * OC_PART;
        uint64_t len = oc_get64(t), dlen = oc_get64(t + 8);
        /* only the last range may be short (the end of the object) */
        ok &= kind == OC_SIZE ? len == 0 && dlen == 8 :
              dlen == len || (i == n - 1 && dlen < len);
        ok &= dlen <= total - sum;
        if (!ok)
            break;
        oc_part_set(f, i, off, len, dlen, tlen + sum);
        f->parts[i].crc = oc_get32(t + 16);
        off += len;
        sum += dlen;
    }
    if (!ok || sum != total || !oc_cacheable(f->key)) {
        free(f);
        f = NULL;
        goto out;
    }
    f->seq = seq;
    f->charge = oc_charge((uint64_t)st.st_size);
    f->touched = st.st_mtim.tv_sec;
out:
    close(fd);
    return f;
}

/* qsort order: least recently touched first. */
static int oc_cmp_touched(const void *a, const void *b)
{
    const oc_file *x = *(oc_file *const *)a, *y = *(oc_file *const *)b;
    return (x->touched > y->touched) - (x->touched < y->touched);
}

/* Index the files in the directory (most recently touched first), delete
 * unsound ones, temporary files of older versions and files whose ranges
 * all are in others, and trim to the bound. */
int oc_scan(objcache *c)
{
    oc_file **found = NULL, *f;
    size_t n = 0, cap = 0;
    struct dirent *de;
    uint64_t seq;
    int fd, rc = 0;
    DIR *d;

    if ((fd = dup(c->dfd)) < 0)
        return -errno;
    if (!(d = fdopendir(fd))) {
        rc = -errno;
        close(fd);
        return rc;
    }
    while ((de = readdir(d))) {
        if (strncmp(de->d_name, "tmp.", 4) == 0) {
            unlinkat(c->dfd, de->d_name, 0);
            continue;
        }
        if (!oc_parse_fname(de->d_name, &seq))
            continue;             /* ".", "..", "lock" */
        if (seq >= c->next_seq)
            c->next_seq = seq + 1;
        if (!(f = oc_load(c, de->d_name, seq))) {
            unlinkat(c->dfd, de->d_name, 0);
            c->n.discarded++;
            continue;
        }
        if (n == cap) {
            oc_file **nf = realloc(found, (cap ? cap * 2 : 256) * sizeof(*nf));
            if (!nf) {
                free(f);
                rc = -ENOMEM;
                break;
            }
            found = nf;
            cap = cap ? cap * 2 : 256;
        }
        found[n++] = f;
    }
    closedir(d);
    if (n)
        qsort(found, n, sizeof(*found), oc_cmp_touched);
    for (size_t i = 0; i < n; i++)  /* each becomes the most recent */
        if (!oc_insert(c, found[i])) {
            char fname[17];
            oc_fname(fname, found[i]->seq);
            unlinkat(c->dfd, fname, 0);
            free(found[i]);
        }
    free(found);
    oc_evict(c);
    return rc;
}

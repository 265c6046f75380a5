/*
 * key.h -- how filesystem objects are named in the versioned store.
 *
 * A key is a short byte string compared with memcmp: a kind byte, the inode
 * number big-endian, then a suffix (the page number big-endian for a page,
 * the entry name for a directory entry).  Big-endian makes byte order equal
 * numeric order, so all pages of a file, and all entries of a directory,
 * are neighbours in every sorted structure and a directory listing is a
 * prefix scan.
 *
 * A meta key is the kind byte and a name: a value about the branch as a
 * whole rather than a filesystem object (fs/pg keeps PostgreSQL's WAL
 * position in one).  It is versioned like every key, so its value is known
 * at every seq, a fork inherits it and journal replay restores it.
 *
 * The WAL archive (fs/pg/pg_archive.h) keeps every WAL page PostgreSQL
 * wrote by timeline and position, not by file, so recycling a segment file
 * loses nothing: a segment key per (timeline, segment number) says which
 * segments exist, a page key per (timeline, LSN / 8 KiB) holds the bytes.
 * A segment file that PostgreSQL writes keeps its pages in these keys
 * rather than in page keys of its own (fs/fs_impl.h: fs_attr.wal_tli).
 */
#ifndef LAKEFS_KEY_H
#define LAKEFS_KEY_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define KEY_MAX 272               /* kind + ino + 255-byte name + slack */
#define KEY_PAGE_BYTES 8192       /* a file page: the value of a KEY_PAGE key */

enum key_kind {
    KEY_INODE = 1,                /* inode attributes */
    KEY_DIRENT = 2,               /* directory entry -> child inode */
    KEY_PAGE = 3,                 /* 8 KiB file page */
    KEY_META = 4,                 /* named value of the branch as a whole */
    KEY_WALSEG = 5,               /* archived WAL segment: its segment size */
    KEY_WALPAGE = 6,              /* archived 8 KiB page of WAL */
};

typedef struct skey {
    uint16_t len;
    uint8_t b[KEY_MAX];
} skey;

static inline void key_put64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) { p[i] = (uint8_t)v; v >>= 8; }
}

static inline uint64_t key_get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v = (v << 8) | p[i];
    return v;
}

/* Key of inode INO's attributes. */
static inline void key_inode(skey *k, uint64_t ino)
{
    k->b[0] = KEY_INODE; key_put64(k->b + 1, ino); k->len = 9;
}

/* Key of page PGNO of file INO. */
static inline void key_page(skey *k, uint64_t ino, uint64_t pgno)
{
    k->b[0] = KEY_PAGE; key_put64(k->b + 1, ino); key_put64(k->b + 9, pgno);
    k->len = 17;
}

/* Key of entry NAME (NLEN <= 255 bytes) in directory DIR; with NLEN 0 the
 * prefix shared by all entries of DIR. */
static inline void key_dirent(skey *k, uint64_t dir, const char *name, size_t nlen)
{
    k->b[0] = KEY_DIRENT; key_put64(k->b + 1, dir);
    memcpy(k->b + 9, name, nlen); k->len = (uint16_t)(9 + nlen);
}

/* Key of the branch's meta value NAME (at most 255 bytes). */
static inline void key_meta(skey *k, const char *name)
{
    size_t nlen = strlen(name);
    k->b[0] = KEY_META; memcpy(k->b + 1, name, nlen); k->len = (uint16_t)(1 + nlen);
}

/* Key of archived WAL segment SEGNO of timeline TLI. */
static inline void key_walseg(skey *k, uint32_t tli, uint64_t segno)
{
    k->b[0] = KEY_WALSEG; key_put64(k->b + 1, (uint64_t)tli << 32); key_put64(k->b + 5, segno);
    k->len = 13;
}

/* Key of the archived WAL page of timeline TLI starting at LSN PAGE * 8 KiB. */
static inline void key_walpage(skey *k, uint32_t tli, uint64_t page)
{
    k->b[0] = KEY_WALPAGE; key_put64(k->b + 1, (uint64_t)tli << 32); key_put64(k->b + 5, page);
    k->len = 13;
}

#endif

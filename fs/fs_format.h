/*
 * fs_format.h -- how fs/ stores a directory entry, and which inode is a
 * branch's root, for the parts of fs/ that read entries without going
 * through fs.c (fs/pg/), so that they need not import fs.h.
 *
 * The value of a directory entry key (key_dirent in store/key.h) is 9
 * bytes: the child's store inode number, 8 bytes little-endian, then its
 * file type (the S_IFMT bits >> 12).  The type is kept in the entry so a
 * directory listing needs no inode read per entry.
 */
#ifndef LAKEFS_FS_FORMAT_H
#define LAKEFS_FS_FORMAT_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#define FS_DIRENT_LEN 9
#define FS_ROOT_INO 1             /* store inode number of a branch's root directory */

/* Little-endian N-byte integer at P. */
static inline uint64_t fs_get_le(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

/* Write V as an N-byte little-endian integer at P. */
static inline void fs_put_le(uint8_t *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++) { p[i] = (uint8_t)v; v >>= 8; }
}

/* Encode the entry value for CHILD of file type MODE & S_IFMT into V. */
static inline void fs_dirent_encode(uint8_t v[FS_DIRENT_LEN], uint64_t child, uint32_t mode)
{
    fs_put_le(v, child, 8);
    v[8] = (uint8_t)((mode & S_IFMT) >> 12);
}

/* Decode entry value V of LEN bytes: 0, or -EIO if malformed. */
static inline int fs_dirent_decode(const uint8_t *v, size_t len, uint64_t *child, uint32_t *type)
{
    if (len != FS_DIRENT_LEN) return -EIO;
    *child = fs_get_le(v, 8);
    *type = (uint32_t)v[8] << 12;
    return 0;
}

#endif

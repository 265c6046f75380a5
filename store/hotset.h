/*
 * hotset.h -- the keys a branch's server reads as it starts, remembered
 * from one mount to the next, so that a fresh machine fetches them all at
 * once instead of one round trip at a time as PostgreSQL asks.
 *
 * A mount records the distinct keys read, first read first, while a
 * window is open: HOTSET_WINDOW_S seconds (HOTSET_MAX keys) from the
 * branch's open, and again from each start of its server (the fs reports
 * it: fs/pg knows what a start looks like), which forgets what the
 * previous window recorded except the reads of the open itself (the fs
 * seals those: pg_control and the WAL position, read on every open).
 * Its clean close stores the list as branches/NAME/hot/GEN beside the
 * closed manifest GEN, and the next mount fetches the blocks holding those
 * keys in parallel while it already serves (store_hot.c).  Encoding: magic
 * "LKHOTST1", u32 count, per key u16 length + bytes, u32 CRC-32C of all
 * that; all little-endian.
 */
#ifndef LAKEFS_HOTSET_H
#define LAKEFS_HOTSET_H

#include <stddef.h>
#include <stdint.h>
#include "key.h"

#define HOTSET_MAX 4096           /* keys recorded in one window */
#define HOTSET_WINDOW_S 30        /* seconds a window stays open */

typedef struct hotset hotset;

/* An empty recorder with its window open (NULL: out of memory). */
hotset *hotset_new(void);
void hotset_free(hotset *h);
/* Keep the keys recorded so far across restarts. */
void hotset_seal(hotset *h);
/* Forget the keys recorded since the seal and open a new window. */
void hotset_restart(hotset *h);
/* Record key K if the window is open and K is new; cheap once closed. */
void hotset_note(hotset *h, const uint8_t *k, size_t len);
/* 1 while the window is open (a hint: it may close any moment). */
int hotset_recording(hotset *h);
/* Keys recorded. */
size_t hotset_count(hotset *h);
/* The recorded keys as an object's bytes (malloc'd *BUF). */
int hotset_encode(hotset *h, void **buf, size_t *len);
/* Parse LEN bytes of BUF into a malloc'd array *KEYS of *N keys; -EINVAL
 * on any defect, -ENOMEM. */
int hotset_decode(const void *buf, size_t len, skey **keys, size_t *n);

#endif

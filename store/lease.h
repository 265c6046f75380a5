/*
 * lease.h -- who holds a branch: the lease object branches/NAME/lease (and
 * any object naming a holder the same way, such as a view's pin) as text
 * lines "holder HOST BOOT_ID", "pid N", "control PATH".  Reading one is
 * what the store (taking its branch, store_lease.c), branch deletion and
 * renaming (branch.c), gc (pins) and the commands asking a daemon for a
 * checkpoint all need, so it lives here, below all of them: none of them
 * has to import another for it.
 */
#ifndef LAKEFS_LEASE_H
#define LAKEFS_LEASE_H

#include "../objstore/objstore.h"

#include <stddef.h>

typedef struct lease_info {
    char holder[400];             /* "HOST BOOT_ID" of the daemon's machine */
    long pid;                     /* the daemon's process id there */
    char control[256];            /* its control socket ("" if none named) */
    int local;                    /* held on this machine, this boot */
    int alive;                    /* not known dead (only a local pid can be checked) */
} lease_info;

/* Read BRANCH's lease into L; -ENOENT if the branch is not leased. */
int lease_read(objstore *os, const char *branch, lease_info *l);
/* The same for any object KEY naming a holder that way (a lease, a pin). */
int lease_holder_read(objstore *os, const char *key, lease_info *l);
/* "HOST BOOT_ID" of this machine, as a lease names it, into BUF. */
void lease_machine_id(char *buf, size_t len);

#endif

/*
 * store_lease.c -- one writer per branch across daemons: the lease object
 * branches/NAME/lease names the daemon (machine, boot, pid, control
 * socket) that holds the branch; a mount takes it with put-if-absent, takes
 * over one left by a dead process of this boot of this machine, and gives
 * it back at a clean close.  Reading a lease is lease.c's.
 */
#include "lease.h"
#include "store_impl.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Take branches/BRANCH/lease with put-if-absent.  A lease left by a dead
 * process of this same boot of this machine (kill -9, crash) is taken
 * over; any other holder is reported in ERR. */
int store_lease_take(store *st, char *err, size_t errlen)
{
    char key[512], me[400], body[1024];
    snprintf(key, sizeof key, "branches/%s/lease", st->branch);
    lease_machine_id(me, sizeof me);
    int blen = snprintf(body, sizeof body, "lakefs-lease 1\nholder %s\npid %ld\n", me, (long)getpid());
    if (st->control_path)
        blen += snprintf(body + blen, sizeof body - (size_t)blen, "control %s\n", st->control_path);
    for (int attempt = 0; attempt < 2; attempt++) {
        int rc = os_put_if_absent(st->os, key, body, (size_t)blen);
        if (rc != -EEXIST) {
            if (rc) snprintf(err, errlen, "cannot take the lease of branch '%s': %s", st->branch, strerror(-rc));
            return rc;
        }
        lease_info cur;
        rc = lease_read(st->os, st->branch, &cur);
        if (rc == -ENOENT) continue;
        if (rc) { snprintf(err, errlen, "cannot read the lease of branch '%s': %s", st->branch, strerror(-rc)); return rc; }
        int dead = cur.local && !cur.alive;
        if (!dead && !st->takeover) {
            snprintf(err, errlen, "branch '%s' is already mounted read-write by another lakefs daemon (%s, pid %ld); "
                     "unmount it first, or mount with -o takeover if that daemon's machine is gone",
                     st->branch, cur.holder[0] ? cur.holder : "unknown holder", cur.pid);
            return -EBUSY;
        }
        fprintf(stderr, "lakefs: branch %s: taking over the lease of %s process %ld (%s)\n", st->branch,
                dead ? "dead" : "live", cur.pid, cur.holder);
        if ((rc = os_delete(st->os, key))) {
            snprintf(err, errlen, "cannot remove the stale lease of branch '%s': %s", st->branch, strerror(-rc));
            return rc;
        }
    }
    snprintf(err, errlen, "cannot take the lease of branch '%s': it keeps changing hands", st->branch);
    return -EBUSY;
}

/* Give the lease back (clean unmount). */
void store_lease_release(store *st)
{
    char key[512];
    snprintf(key, sizeof key, "branches/%s/lease", st->branch);
    int rc = os_delete(st->os, key);
    if (rc) fprintf(stderr, "lakefs: branch %s: cannot release the lease %s: %s\n", st->branch, key, strerror(-rc));
}

/*
 * store_lease.c -- one writer per branch across daemons: the lease object
 * branches/NAME/lease names the daemon (machine, boot, pid, control
 * socket) that holds the branch; a mount takes it with put-if-absent, takes
 * over one left by a dead process of this boot of this machine, and gives
 * it back at a clean close.
 */
#include "store_impl.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- the branch lease: one writer per branch across daemons ---- */

void store_machine_id(char *buf, size_t len)
{
    char host[256] = "unknown", boot[64] = "unknown";
    gethostname(host, sizeof host - 1);
    FILE *f = fopen("/proc/sys/kernel/random/boot_id", "r");
    if (f) {
        if (!fgets(boot, sizeof boot, f)) snprintf(boot, sizeof boot, "unknown");
        fclose(f);
        boot[strcspn(boot, "\n")] = 0;
    }
    snprintf(buf, len, "%s %s", host, boot);
}

/* Copy the value of line "NAME VALUE" of TEXT into BUF (empty if none). */
static void store_lease_field(const char *text, const char *name, char *buf, size_t len)
{
    size_t nl = strlen(name);
    buf[0] = 0;
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        if (!strncmp(p, name, nl) && p[nl] == ' ') {
            size_t n = strcspn(p + nl + 1, "\n");
            snprintf(buf, len, "%.*s", (int)n, p + nl + 1);
            return;
        }
}

int store_lease_read(objstore *os, const char *branch, store_lease *l)
{
    char key[512];
    snprintf(key, sizeof key, "branches/%s/lease", branch);
    return store_holder_read(os, key, l);
}

int store_holder_read(objstore *os, const char *key, store_lease *l)
{
    char me[400], pid[32];
    void *cur; size_t clen;
    memset(l, 0, sizeof *l);
    int rc = os_get(os, key, 0, UINT64_MAX, &cur, &clen);
    if (rc) return rc;
    char *text = strndup(cur, clen);
    free(cur);
    if (!text) return -ENOMEM;
    store_lease_field(text, "holder", l->holder, sizeof l->holder);
    store_lease_field(text, "pid", pid, sizeof pid);
    store_lease_field(text, "control", l->control, sizeof l->control);
    free(text);
    l->pid = strtol(pid, NULL, 10);
    store_machine_id(me, sizeof me);
    l->local = !strcmp(l->holder, me);
    l->alive = !l->local || l->pid <= 0 || !(kill((pid_t)l->pid, 0) < 0 && errno == ESRCH);
    return 0;
}

/* Take branches/BRANCH/lease with put-if-absent.  A lease left by a dead
 * process of this same boot of this machine (kill -9, crash) is taken
 * over; any other holder is reported in ERR. */
int store_lease_take(store *st, char *err, size_t errlen)
{
    char key[512], me[400], body[1024];
    snprintf(key, sizeof key, "branches/%s/lease", st->branch);
    store_machine_id(me, sizeof me);
    int blen = snprintf(body, sizeof body, "lakefs-lease 1\nholder %s\npid %ld\n", me, (long)getpid());
    if (st->control_path)
        blen += snprintf(body + blen, sizeof body - (size_t)blen, "control %s\n", st->control_path);
    for (int attempt = 0; attempt < 2; attempt++) {
        int rc = os_put_if_absent(st->os, key, body, (size_t)blen);
        if (rc != -EEXIST) {
            if (rc) snprintf(err, errlen, "cannot take the lease of branch '%s': %s", st->branch, strerror(-rc));
            return rc;
        }
        store_lease cur;
        rc = store_lease_read(st->os, st->branch, &cur);
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

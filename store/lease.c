/*
 * lease.c -- reading who holds a branch (see lease.h).  A holder is local
 * when its machine id (host name and boot id) is this machine's, and then
 * known dead when its pid is gone; a remote holder is taken as alive.
 */
#include "lease.h"

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void lease_machine_id(char *buf, size_t len)
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
static void lease_field(const char *text, const char *name, char *buf, size_t len)
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

int lease_read(objstore *os, const char *branch, lease_info *l)
{
    char key[512];
    snprintf(key, sizeof key, "branches/%s/lease", branch);
    return lease_holder_read(os, key, l);
}

int lease_holder_read(objstore *os, const char *key, lease_info *l)
{
    char me[400], pid[32];
    void *cur; size_t clen;
    memset(l, 0, sizeof *l);
    int rc = os_get(os, key, 0, UINT64_MAX, &cur, &clen);
    if (rc) return rc;
    char *text = strndup(cur, clen);
    free(cur);
    if (!text) return -ENOMEM;
    lease_field(text, "holder", l->holder, sizeof l->holder);
    lease_field(text, "pid", pid, sizeof pid);
    lease_field(text, "control", l->control, sizeof l->control);
    free(text);
    l->pid = strtol(pid, NULL, 10);
    lease_machine_id(me, sizeof me);
    l->local = !strcmp(l->holder, me);
    l->alive = !l->local || l->pid <= 0 || !(kill((pid_t)l->pid, 0) < 0 && errno == ESRCH);
    return 0;
}

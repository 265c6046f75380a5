/*
 * failpoint.c -- the failpoints of failpoint.h: the environment is parsed
 * once, into a small table; each hit of an armed point is counted
 * atomically so that "@N" picks exactly one hit across threads.
 */
#include "failpoint.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FAILPOINT_MAX 16

typedef struct fpoint {
    char name[48];
    enum { FP_ERROR, FP_CRASH, FP_STALL } action;
    unsigned long nth;            /* act on this hit only (0: every hit) */
    unsigned long hits;           /* atomic */
} fpoint;

static fpoint points[FAILPOINT_MAX];
static int npoints;
static pthread_once_t parsed = PTHREAD_ONCE_INIT;

/* Parse LAKEFS_FAILPOINTS; a malformed entry is reported and ignored. */
static void failpoint_parse(void)
{
    const char *env = getenv("LAKEFS_FAILPOINTS");
    if (!env || !*env) return;
    char *copy = strdup(env), *save = NULL;
    for (char *tok = copy ? strtok_r(copy, ",", &save) : NULL; tok && npoints < FAILPOINT_MAX;
         tok = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(tok, '='), *at;
        fpoint *p = &points[npoints];
        if (!eq || (size_t)(eq - tok) >= sizeof p->name) goto bad;
        memcpy(p->name, tok, (size_t)(eq - tok));
        p->name[eq - tok] = 0;
        if ((at = strchr(eq + 1, '@'))) {
            char *end;
            p->nth = strtoul(at + 1, &end, 10);
            if (*end || p->nth == 0) goto bad;
            *at = 0;
        }
        if (!strcmp(eq + 1, "crash")) p->action = FP_CRASH;
        else if (!strcmp(eq + 1, "stall")) p->action = FP_STALL;
        else if (strcmp(eq + 1, "error")) goto bad;
        npoints++;
        continue;
bad:
        fprintf(stderr, "lakefs: LAKEFS_FAILPOINTS: ignoring '%s' (use NAME=crash, NAME=error or NAME=stall, optionally @N)\n", tok);
        memset(p, 0, sizeof *p);
    }
    free(copy);
}

int failpoint(const char *name)
{
    pthread_once(&parsed, failpoint_parse);
    for (int i = 0; i < npoints; i++) {
        fpoint *p = &points[i];
        if (strcmp(p->name, name)) continue;
        unsigned long hit = __atomic_add_fetch(&p->hits, 1, __ATOMIC_SEQ_CST);
        if (p->nth && hit != p->nth) return 0;
        if (p->action == FP_STALL) {
            fprintf(stderr, "lakefs: failpoint %s: stalling for %d ms\n", name, FAILPOINT_STALL_MS);
            usleep(FAILPOINT_STALL_MS * 1000);
            return 0;
        }
        if (p->action == FP_CRASH) {
            static const char msg[] = "lakefs: failpoint reached: crashing\n";
            if (write(2, msg, sizeof msg - 1) < 0) { /* exiting anyway */ }
            _exit(FAILPOINT_EXIT_CODE);
        }
        fprintf(stderr, "lakefs: failpoint %s: failing with EIO\n", name);
        return -EIO;
    }
    return 0;
}

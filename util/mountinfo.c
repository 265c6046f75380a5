/*
 * mountinfo.c -- the device of a mount, from a mountinfo file (see
 * mountinfo.h).  A line reads "ID PARENT MAJOR:MINOR ROOT MOUNTPOINT ...",
 * the mount point with octal escapes (\040 for a space); mounts stacked on
 * one point are listed bottom first, so the last match is the top one.
 */
#include "mountinfo.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void mountinfo_unescape(char *s)
{
    char *out = s;
    for (char *p = s; *p; p++) {
        if (p[0] == '\\' && p[1] >= '0' && p[1] <= '3' && p[2] >= '0' && p[2] <= '7' && p[3] >= '0' && p[3] <= '7') {
            *out++ = (char)((p[1] - '0') << 6 | (p[2] - '0') << 3 | (p[3] - '0'));
            p += 3;
        } else {
            *out++ = *p;
        }
    }
    *out = 0;
}

int mountinfo_device(const char *mountinfo, const char *mountpoint, char *dev, size_t devlen)
{
    FILE *f = fopen(mountinfo, "re");
    if (!f) return -errno;
    char *line = NULL;
    size_t cap = 0;
    int rc = -ENOENT;
    while (getline(&line, &cap, f) > 0) {
        /* ID PARENT MAJOR:MINOR ROOT MOUNTPOINT ...; the last match is the top mount */
        char *save = NULL, *fields[5];
        int n = 0;
        for (char *t = strtok_r(line, " ", &save); t && n < 5; t = strtok_r(NULL, " ", &save)) fields[n++] = t;
        if (n < 5) continue;
        mountinfo_unescape(fields[4]);
        if (strcmp(fields[4], mountpoint)) continue;
        if (strlen(fields[2]) >= devlen) { rc = -ENAMETOOLONG; continue; }
        strcpy(dev, fields[2]);
        rc = 0;
    }
    free(line);
    fclose(f);
    return rc;
}

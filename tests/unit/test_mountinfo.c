/*
 * test_mountinfo.c -- mountinfo_device (util/mountinfo.c): the device of a
 * mount read from a mountinfo file, the one the daemon lifts FUSE's strict
 * dirty-page limit of.  Stacked mounts (the last one wins), octal escapes
 * in mount points, prefixes of another mount point, short and malformed
 * lines, a missing file, a device name too long for the buffer.
 */
#include "harness.h"
#include "util/mountinfo.h"

#include <errno.h>
#include <unistd.h>

static const char *mountinfo =
    "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
    "\n"
    "short line\n"
    "35 22 0:40 / /mnt/lake rw,nosuid,nodev,relatime shared:20 - fuse.lakefs file:///r rw,user_id=0\n"
    "36 22 0:41 / /mnt/lake2 rw - fuse.lakefs file:///r rw\n"
    "37 22 0:42 / /mnt/my\\040lake rw - fuse.lakefs file:///r rw\n"
    "38 22 0:43 / /mnt/back\\134slash rw - fuse.lakefs file:///r rw\n"
    "39 35 0:44 / /mnt/lake rw - fuse.lakefs file:///s rw\n"
    "40 22 123456789012345:678901234567890 / /mnt/long rw - fuse.lakefs file:///r rw\n";

int main(void)
{
    char dir[64], path[128], dev[32];
    harness_tmpdir(dir);
    snprintf(path, sizeof path, "%s/mountinfo", dir);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (!f) return harness_done();
    fputs(mountinfo, f);
    fclose(f);

    CHECK(mountinfo_device(path, "/", dev, sizeof dev) == 0 && !strcmp(dev, "8:1"));
    /* mounted twice at /mnt/lake: the top one */
    CHECK(mountinfo_device(path, "/mnt/lake", dev, sizeof dev) == 0 && !strcmp(dev, "0:44"));
    CHECK(mountinfo_device(path, "/mnt/lake2", dev, sizeof dev) == 0 && !strcmp(dev, "0:41"));
    CHECK(mountinfo_device(path, "/mnt/my lake", dev, sizeof dev) == 0 && !strcmp(dev, "0:42"));
    CHECK(mountinfo_device(path, "/mnt/back\\slash", dev, sizeof dev) == 0 && !strcmp(dev, "0:43"));
    CHECK(mountinfo_device(path, "/mnt/my\\040lake", dev, sizeof dev) == -ENOENT);
    CHECK(mountinfo_device(path, "/mnt", dev, sizeof dev) == -ENOENT);
    CHECK(mountinfo_device(path, "/mnt/lak", dev, sizeof dev) == -ENOENT);
    CHECK(mountinfo_device(path, "line", dev, sizeof dev) == -ENOENT);
    CHECK(mountinfo_device(path, "/mnt/long", dev, 16) == -ENAMETOOLONG);
    CHECK(mountinfo_device(path, "/mnt/long", dev, sizeof dev) == 0 &&
          !strcmp(dev, "123456789012345:678901234567890"));
    snprintf(path, sizeof path, "%s/none", dir);
    CHECK(mountinfo_device(path, "/", dev, sizeof dev) == -ENOENT);
    /* this process's own: / is mounted */
    CHECK(mountinfo_device("/proc/self/mountinfo", "/", dev, sizeof dev) == 0 && strchr(dev, ':') != NULL);

    harness_rmtree(dir);
    return harness_done();
}

/*
 * cmd_init.c -- `lakefs init URL`: an empty repository with branch main.
 * Refuses a location that holds anything else, so that init can never
 * overwrite data; the repository marker is written last, so a repository
 * that init left half-made is never taken for one.
 */
#include "../fs/fs.h"
#include "../store/branch.h"
#include "../objstore/objstore.h"
#include "../store/store.h"
#include "cli.h"

#include <stdio.h>
#include <string.h>

static const char *usage_init =
    "usage: lakefs init URL\n"
    "\n"
    "Create an empty lakefs repository at URL (file:///absolute/path; the\n"
    "directory is created if missing and must otherwise be empty) with one\n"
    "branch, 'main', whose root directory is empty.\n";

int cmd_init(int argc, char **argv)
{
    if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) { fputs(usage_init, stdout); return 0; }
    if (argc != 2) { fputs(usage_init, stderr); return 2; }
    const char *url = argv[1];
    if (!strncmp(url, "file://", 7) && url[7] == '/') {
        int rc = cli_mkdirs(url + 7, 0755);
        if (rc) return cli_fail("cannot create repository directory %s: %s", url + 7, strerror(-rc));
    }
    char err[512];
    objstore *os;
    int rc = os_open(url, &os, err, sizeof err);
    if (rc) return cli_fail("%s", err);
    if (store_repo_check(os) == 0) {
        os_close(os);
        return cli_fail("%s is already a lakefs repository; nothing changed", url);
    }
    char **keys; size_t n;
    if ((rc = os_list(os, "", &keys, &n))) { os_close(os); return cli_fail("cannot list %s: %s", url, strerror(-rc)); }
    os_list_free(keys, n);
    if (n) { os_close(os); return cli_fail("%s is not empty and not a lakefs repository; use an empty location", url); }
    uint8_t attr[256];
    size_t alen = fs_root_attr(attr, sizeof attr);
    skey k;
    key_inode(&k, FS_ROOT_INO);
    rc = store_branch_create(os, "main", &k, attr, alen);
    if (!rc) rc = store_repo_create(os);
    os_close(os);
    if (rc) return cli_fail("cannot create repository %s: %s", url, strerror(-rc));
    printf("Created lakefs repository %s with branch main\n", url);
    return 0;
}

/*
 * lakefs.c -- the `lakefs` command: one binary, git-style subcommands,
 * each in a file of its own (cmd_*.c, export.c) behind the table below.
 *
 *   lakefs init URL                      create an empty repository with branch main
 *   lakefs mount URL[#BRANCH] DIR [-f] [-d] [-o OPTS]   run the FUSE daemon
 *   lakefs branch create|list|show|delete|rename ...     manage branches
 *   lakefs stats BRANCH                  a mounted branch's read counters
 *
 * `mount` is also what mount(8) runs for `-t fuse.lakefs`, as
 * `lakefs SOURCE MOUNTPOINT -o OPTS` (contrib/mount.fuse.lakefs).  The
 * repository commands find their repository from --repo URL, else
 * $LAKEFS_REPO, else the lakefs mount holding the current directory (cli.c).
 */
#include "cli.h"
#include "export.h"

#include <stdio.h>
#include <string.h>

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "0.1.0"
#endif

static const char *usage_main =
    "usage: lakefs [--version] [--help] COMMAND [ARGS]\n"
    "\n"
    "Serve PostgreSQL data directories from a versioned copy-on-write store.\n"
    "\n"
    "Commands:\n"
    "  init URL                         create an empty repository with a branch 'main'\n"
    "  mount URL[#BRANCH] DIR [-o OPTS] mount a repository (or one branch) at DIR\n"
    "  branch create NAME --from PARENT create a copy-on-write branch (instant, any size)\n"
    "  branch list|show|delete|rename   list, describe, delete, rename branches\n"
    "  lsn BRANCH --at TIME             the LSN where BRANCH's state at TIME ends\n"
    "  log BRANCH                       PostgreSQL checkpoints and branch points in BRANCH's history\n"
    "  gc [URL] [--dry-run]             delete what no branch, window or view needs any more\n"
    "  config set retention=DURATION    the repository's time-travel window (default 7d)\n"
    "  fsck [URL] [--repair]            verify every manifest and layer; --repair removes orphans\n"
    "  stats BRANCH                     a mounted branch's read counters: layers consulted per read\n"
    "  export BRANCH --at POINT --table S.T --to URL  tables at a point as Delta Lake tables\n"
    "\n"
    "URL is file:///absolute/path or s3://bucket/prefix.  'lakefs COMMAND --help'\n"
    "describes a command.\n";

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);   /* ARGV[0] is the command's name */
} commands[] = {
    { "init", cmd_init },     { "mount", cmd_mount }, { "branch", cmd_branch }, { "lsn", cmd_lsn },
    { "log", cmd_log },       { "gc", cmd_gc },       { "config", cmd_config }, { "fsck", cmd_fsck },
    { "stats", cmd_stats },   { "export", export_main },
};

int main(int argc, char **argv)
{
    if (argc < 2) { fputs(usage_main, stderr); return 2; }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) { fputs(usage_main, stdout); return 0; }
    if (!strcmp(cmd, "--version")) { printf("lakefs %s\n", PACKAGE_VERSION); return 0; }
    /* mount(8) convention: lakefs SOURCE MOUNTPOINT [-o OPTS] */
    int mount_url = strstr(cmd, "://") != NULL;
    if (mount_url || !strcmp(cmd, "mount")) mount_exec_with_thp(argv);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(cmd, commands[i].name)) return commands[i].run(argc - 1, argv + 1);
    if (mount_url) return cmd_mount(argc, argv);
    cli_fail("unknown command '%s' (see lakefs --help)", cmd);
    return 2;
}

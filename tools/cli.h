/*
 * cli.h -- what the `lakefs` subcommands (tools/cmd_*.c) share: one-line
 * errors with the exit status, opening the repository a command names,
 * the flags of the repository commands, and resolving a point of a
 * branch's past.  Each command is one function, int cmd_NAME(argc, argv)
 * with argv[0] the command's name, returning the process's exit status;
 * tools/lakefs.c dispatches to them.
 */
#ifndef LAKEFS_CLI_H
#define LAKEFS_CLI_H

#include "../fs/pg/pg_target.h"
#include "../store/lease.h"
#include "../objstore/objstore.h"
#include "../store/store.h"

#include <stdint.h>
#include <sys/types.h>

/* ---- the commands ---- */
int cmd_init(int argc, char **argv);     /* cmd_init.c */
int cmd_mount(int argc, char **argv);    /* cmd_mount.c */
/* Before anything else of a mount: run the process ARGV again with glibc's
 * malloc advising transparent huge pages (cmd_mount.c); returns only if it
 * need not, or cannot. */
void mount_exec_with_thp(char **argv);
int cmd_branch(int argc, char **argv);   /* cmd_branch.c */
int cmd_lsn(int argc, char **argv);      /* cmd_history.c */
int cmd_log(int argc, char **argv);      /* cmd_history.c */
int cmd_gc(int argc, char **argv);       /* cmd_repo.c */
int cmd_fsck(int argc, char **argv);     /* cmd_repo.c */
int cmd_config(int argc, char **argv);   /* cmd_repo.c */
int cmd_stats(int argc, char **argv);    /* cmd_stats.c */

/* ---- errors ---- */
/* Print "lakefs: MSG" and return exit status 1. */
int cli_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Print "lakefs: MSG" for a usage error and return exit status 2. */
int cli_usage_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- arguments ---- */
typedef struct cli_args {         /* the flags of the repository commands */
    const char *repo, *from, *at;
    const char *at_xid, *at_restore_point;  /* branch create: points named by a record */
    const char *retention;        /* gc --retention */
    int force, dry_run, repair;
    const char *pos[3];           /* positionals after the subcommand */
    int npos;
} cli_args;

/* Parse the arguments of COMMAND (argv[0]): flags into A, the first
 * positional into *SUB (NULL: none), the rest into a->pos.  -1 to go on,
 * else the exit status (--help printed USAGE, or a usage error). */
int cli_parse_args(const char *command, int argc, char **argv, const char *usage, cli_args *a, const char **sub);
/* Check that NAME (the WHAT of the command) is a valid branch name; prints the error. */
int cli_check_name(const char *what, const char *name);
/* Parse a duration like 7d, 12h, 30min, 45s or 90 (seconds) into *OUT; -1 if bad. */
int cli_parse_duration(const char *s, int64_t *out);
/* cli_parse_duration, also accepting "0". */
int cli_parse_duration_or_zero(const char *s, int64_t *out);
/* Format T (seconds since the epoch) as UTC into BUF, "-" for none. */
void cli_fmt_utc(int64_t t, char *buf, size_t len);
/* Create DIR and its parents with MODE; 0 or -errno. */
int cli_mkdirs(const char *dir, mode_t mode);

/* ---- the repository ---- */
/* Open URL as a repository that must exist; prints the error. */
int cli_open_repo(const char *url, objstore **os);
/* cli_open_repo, and with RETENTION the repository's retention setting
 * read at the same time; prints the error. */
int cli_open_repo_settings(const char *url, objstore **os, int64_t *retention);
/* Open the repository of A: --repo URL, else $LAKEFS_REPO, else the lakefs
 * mount holding the current directory; prints the error. */
int cli_args_repo(const cli_args *a, objstore **os);

/* ---- branches of running daemons, points of the past ---- */
/* The lease of branch NAME into *L if a daemon on this machine holds it:
 * 0; -ENOENT if no one does; else -errno with the reason in ERR. */
int cli_local_lease(objstore *os, const char *name, lease_info *l, char *err, size_t errlen);
/* A generation of branch NAME holding every write made so far into *GEN
 * (0: the newest; else its daemon's checkpoint, *SEQ its seq); 0 or -errno
 * with a one-line reason in ERR. */
int cli_branch_checkpoint(objstore *os, const char *name, uint64_t *gen, uint64_t *seq, char *err, size_t errlen);
/* The point TEXT of BRANCH's past (pg_target.h): parsed into *T, the base
 * state *BASE, a generation *GEN of the branch holding the point (the
 * newest committed one if it holds every WAL byte the point needs, else
 * its daemon checkpoints first) opened as the archive *ARCHIVE (to close),
 * and where it is cut, *CUT.  0, or -errno with a one-line reason in ERR
 * (-EINVAL: TEXT is no point; -ERANGE: a point in the future). */
int cli_past_resolve(objstore *os, const char *branch, const char *text, int64_t retention_s, pg_target *t,
                     pg_base *base, uint64_t *gen, store **archive, uint64_t *cut, char *err, size_t errlen);
/* cli_past_resolve with the repository's retention, printing the error. */
int cli_resolve_target(objstore *os, const char *branch, const char *text, pg_target *t, pg_base *base,
                       store **archive, uint64_t *cut);
/* The LSN where the state at target T ends into *LSN; prints the error. */
int cli_target_end(const char *branch, store *archive, const pg_target *t, const pg_base *b, uint64_t cut,
                   uint64_t *lsn);

#endif

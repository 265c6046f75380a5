/*
 * control.h -- a daemon's control socket: how `lakefs` commands on the same
 * machine ask the daemon that mounts a branch for what only it can do.
 *
 * A unix stream socket STATE_DIR/control, mode 0600, one per daemon for
 * every branch it serves, and the daemon serves only peers of its own uid
 * or root.  A branch's lease names it in a line "control PATH", so a
 * command finds it from the repository.  Protocol: one request line, one
 * reply line, then the daemon closes.
 *
 *   -> checkpoint BRANCH\n
 *   <- ok SEQ GEN\n        manifest generation GEN holds every write up to seq SEQ
 *   -> release BRANCH\n
 *   <- ok\n               the daemon flushed and closed BRANCH and gave up its lease
 *   -> stats BRANCH\n
 *   <- ok reads=N probes=N probes_max=N over_bound=N bound=N layers=N flushes=N
 *      compactions=N seq=N gen=N\n     BRANCH's store_stats (store.h), one line
 *   <- error MESSAGE\n
 *
 * A request is at most 255 bytes and must arrive within 5 seconds; anything
 * else gets an "error" line.  A reply is at most 511 bytes.  One thread
 * serves the requests, one at a time.
 */
#ifndef LAKEFS_CONTROL_H
#define LAKEFS_CONTROL_H

#include <stddef.h>
#include <stdint.h>
#include "../store/store.h"

typedef struct control control;

typedef struct control_ops {      /* what the daemon does for a request */
    void *arg;
    /* store_checkpoint of served BRANCH; -ENOENT if not served */
    int (*checkpoint)(void *arg, const char *branch, uint64_t *seq, uint64_t *gen);
    /* stop serving BRANCH (flush, close, lease given up); -ENOENT if not served */
    int (*release)(void *arg, const char *branch);
    /* store_get_stats of served BRANCH; -ENOENT if not served */
    int (*stats)(void *arg, const char *branch, store_stats *s);
} control_ops;

/* 0 if PATH fits a unix socket address, else -ENAMETOOLONG with ERR set. */
int control_path_ok(const char *path, char *err, size_t errlen);
/* Listen on PATH (replacing a socket left there by a dead daemon) and
 * serve requests with OPS from a new thread. */
int control_start(const char *path, const control_ops *ops, control **out, char *err, size_t errlen);
/* Stop serving and remove the socket. */
void control_stop(control *c);
/* Ask the daemon listening on PATH for a checkpoint of BRANCH. */
int control_checkpoint(const char *path, const char *branch, uint64_t *seq, uint64_t *gen, char *err, size_t errlen);
/* Ask the daemon listening on PATH to stop serving BRANCH. */
int control_release(const char *path, const char *branch, char *err, size_t errlen);
/* Ask the daemon listening on PATH for the counters of BRANCH (the fields
 * of the reply; memtable_bytes is left 0). */
int control_stats(const char *path, const char *branch, store_stats *s, char *err, size_t errlen);

#endif

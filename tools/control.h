/*
 * control.h -- a daemon's control socket: how `lakefs` commands on the same
 * machine ask the daemon that mounts a branch for what only it can do.
 *
 * A unix stream socket STATE_DIR/BRANCH/control, mode 0600, and the daemon
 * serves only peers of its own uid or root.  The branch's lease names it in
 * a line "control PATH", so a command finds it from the repository.
 * Protocol: one request line, one reply line, then the daemon closes.
 *
 *   -> checkpoint\n
 *   <- ok SEQ GEN\n        manifest generation GEN holds every write up to seq SEQ
 *   <- error MESSAGE\n
 *
 * A request is at most 255 bytes and must arrive within 5 seconds; anything
 * else gets an "error" line.  One thread serves the requests, one at a time.
 */
#ifndef LAKEFS_CONTROL_H
#define LAKEFS_CONTROL_H

#include <stddef.h>
#include <stdint.h>
#include "../store/store.h"

typedef struct control control;

/* 0 if PATH fits a unix socket address, else -ENAMETOOLONG with ERR set. */
int control_path_ok(const char *path, char *err, size_t errlen);
/* Listen on PATH (replacing a socket left there by a dead daemon) and
 * serve requests on ST from a new thread. */
int control_start(const char *path, store *st, control **out, char *err, size_t errlen);
/* Stop serving and remove the socket. */
void control_stop(control *c);
/* Ask the daemon listening on PATH for a checkpoint (store_checkpoint). */
int control_checkpoint(const char *path, uint64_t *seq, uint64_t *gen, char *err, size_t errlen);

#endif

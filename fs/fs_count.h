/*
 * fs_count.h -- FUSE requests counted per opcode: how many the daemon
 * served and how long their handlers took, from the request's arrival in
 * the handler to its return (the reply included; for fsync, the journal's
 * fdatasync).  What a workload costs through FUSE is then read off the
 * daemon's log at unmount instead of guessed (issue 17: measure before
 * optimising).  A handler opens with FS_COUNTED(op); the time is taken at
 * every return by the cleanup attribute, two clock reads and two atomic
 * adds per request.
 */
#ifndef LAKEFS_FS_COUNT_H
#define LAKEFS_FS_COUNT_H

#include <stdint.h>
#include <stdio.h>

typedef enum fs_op {
    FS_OP_LOOKUP, FS_OP_GETATTR, FS_OP_SETATTR, FS_OP_READLINK, FS_OP_MKNOD, FS_OP_MKDIR,
    FS_OP_UNLINK, FS_OP_RMDIR, FS_OP_SYMLINK, FS_OP_RENAME, FS_OP_LINK, FS_OP_OPEN,
    FS_OP_READ, FS_OP_WRITE, FS_OP_FLUSH, FS_OP_RELEASE, FS_OP_FSYNC, FS_OP_OPENDIR,
    FS_OP_READDIR, FS_OP_RELEASEDIR, FS_OP_FSYNCDIR, FS_OP_STATFS, FS_OP_CREATE,
    FS_OP_FALLOCATE, FS_OP_COPY_FILE_RANGE,
    FS_OP_N
} fs_op;

typedef struct fs_count_timer {   /* one request being timed */
    fs_op op;
    uint64_t start_ns;            /* CLOCK_MONOTONIC at the handler's start */
} fs_count_timer;

/* Monotonic nanoseconds. */
uint64_t fs_count_now(void);
/* Count the request T and the time since it started (a cleanup handler). */
void fs_count_end(fs_count_timer *t);
/* Count N bytes carried by a request of OP (read and write: what the
 * kernel asked for, so readahead shows up as bytes per request). */
void fs_count_bytes(fs_op op, uint64_t n);
/* Print one line per opcode that served requests: count, total and mean
 * handler time, bytes if counted, to OUT, each prefixed "lakefs: fuse: ". */
void fs_count_log(FILE *out);

/* Time the enclosing handler as a request of OP. */
#define FS_COUNTED(op) \
    fs_count_timer fs_count_timer_ __attribute__((cleanup(fs_count_end))) = { (op), fs_count_now() }

#endif

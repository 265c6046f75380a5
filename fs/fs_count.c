/*
 * fs_count.c -- per-opcode request counters of the FUSE front end (see
 * fs_count.h).  Process-wide: a daemon serves one mount.  Relaxed atomics:
 * the counters are read once, at unmount, after the session has ended.
 */
#include "fs_count.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <time.h>

static const char *const op_names[FS_OP_N] = {
    "lookup", "getattr", "setattr", "readlink", "mknod", "mkdir", "unlink", "rmdir",
    "symlink", "rename", "link", "open", "read", "write", "flush", "release", "fsync",
    "opendir", "readdir", "releasedir", "fsyncdir", "statfs", "create", "fallocate",
    "copy_file_range",
};

static atomic_uint_fast64_t op_count[FS_OP_N], op_ns[FS_OP_N], op_bytes[FS_OP_N];

uint64_t fs_count_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void fs_count_end(fs_count_timer *t)
{
    atomic_fetch_add_explicit(&op_count[t->op], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&op_ns[t->op], fs_count_now() - t->start_ns, memory_order_relaxed);
}

void fs_count_bytes(fs_op op, uint64_t n)
{
    atomic_fetch_add_explicit(&op_bytes[op], n, memory_order_relaxed);
}

void fs_count_log(FILE *out)
{
    for (int i = 0; i < FS_OP_N; i++) {
        uint64_t n = atomic_load_explicit(&op_count[i], memory_order_relaxed);
        uint64_t ns = atomic_load_explicit(&op_ns[i], memory_order_relaxed);
        uint64_t bytes = atomic_load_explicit(&op_bytes[i], memory_order_relaxed);
        if (!n) continue;
        fprintf(out, "lakefs: fuse: %s %" PRIu64 " requests, %.3f s in handlers, %.1f us each", op_names[i], n,
                ns / 1e9, ns / 1e3 / (double)n);
        if (bytes) fprintf(out, ", %.1f MiB, %.1f KiB each", bytes / 1048576.0, bytes / 1024.0 / (double)n);
        fputc('\n', out);
    }
}

/*
 * failpoint.h -- named points where tests make lakefs crash or fail.
 *
 * The environment variable LAKEFS_FAILPOINTS lists points to arm:
 * "NAME=crash" ends the process at once with exit status
 * FAILPOINT_EXIT_CODE (as kill -9 would: nothing flushed, no cleanup);
 * "NAME=error" makes the operation there fail with -EIO; "NAME=stall"
 * holds it for FAILPOINT_STALL_MS, then lets it go on (a slow daemon,
 * for what must wait for it); "@N" after
 * either acts on the Nth time the point is reached only (counting from
 * 1), e.g. LAKEFS_FAILPOINTS=layer-upload-after=crash@3,gc-manifests-deleted=crash.
 * Unset (production), a point costs one load and a branch.
 *
 * The points: layer-upload-before, layer-upload-after (store.c: every
 * layer object a flush or a merge writes), manifest-commit-before,
 * manifest-commit-after (manifest.c: every generation committed),
 * compact-commit-before (store_flush.c: a merge uploaded, not committed),
 * gc-manifests-deleted (gc.c: old manifests gone, layers not yet),
 * fs-write (fs.c: every FUSE write, before it is applied).
 */
#ifndef LAKEFS_FAILPOINT_H
#define LAKEFS_FAILPOINT_H

#define FAILPOINT_EXIT_CODE 86
#define FAILPOINT_STALL_MS 2000

/* Reach point NAME: 0 to go on (after a stall if so armed), -EIO if
 * armed to fail (never returns if armed to crash). */
int failpoint(const char *name);

#endif

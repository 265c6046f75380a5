/*
 * fsck.h -- checking a repository: every manifest and every layer it names
 * is read and verified (manifest CRC, layer footer, index and every block's
 * CRC-32C, sizes), every reference resolved (layers, parent branches), and
 * what nothing names reported as orphans (gc.h decides what an orphan is:
 * a layer no generation names that no live mount may be committing).
 */
#ifndef LAKEFS_FSCK_H
#define LAKEFS_FSCK_H

#include <stdint.h>
#include <stdio.h>
#include "../objstore/objstore.h"

typedef struct fsck_report {
    uint64_t manifests;           /* manifests read */
    uint64_t layers;              /* distinct layers verified */
    uint64_t bytes;               /* of those */
    uint64_t damaged;             /* problems: unreadable manifests, missing or corrupt layers, lost parents */
    uint64_t orphans;             /* layers nothing names (removed with REPAIR) */
    uint64_t orphan_bytes;
} fsck_report;

/* Check OS, printing one line per problem and a summary to OUT; with
 * REPAIR remove the orphans (only them, and only if nothing is damaged).
 * 0 when the check ran (see R->damaged), -errno with ERR if it could not. */
int fsck_run(objstore *os, int repair, FILE *out, fsck_report *r, char *err, size_t errlen);

#endif

/*
 * cmd_stats.c -- `lakefs stats BRANCH`: the read counters of the daemon on
 * this machine that serves BRANCH, asked through the control socket its
 * lease names (the counters live in that daemon, not in the repository).
 */
#include "../store/manifest.h"
#include "../store/lease.h"
#include "../objstore/objstore.h"
#include "../store/store.h"
#include "cli.h"
#include "control.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>

static const char *usage_stats =
    "usage: lakefs stats BRANCH [--repo URL]\n"
    "\n"
    "The counters of BRANCH, from the daemon on this machine that mounts it\n"
    "(found through the branch's lease), one per line:\n"
    "  reads        reads that reached the layers (not answered from memory)\n"
    "  probes       layers they consulted (those whose key range and filter may hold the key)\n"
    "  probes_max   most layers one read consulted\n"
    "  over_bound   reads that consulted more layers than the bound\n"
    "  bound        the bound now: the parent's runs + 1 + log1.5(own bytes / 1 MiB + 2)\n"
    "               + 2 (store/compact.h)\n"
    "  layers, flushes, compactions, seq, gen   layers in the manifest, layers\n"
    "               flushed and merges committed by this mount, last seq, generation\n"
    "  memtable_bytes  bytes of writes held in memory, not yet in a layer\n"
    "  merge_waits  merges that waited for a time-travel view's recovery\n";

int cmd_stats(int argc, char **argv)
{
    cli_args a = { 0 };
    const char *name;
    int rc = cli_parse_args("stats", argc, argv, usage_stats, &a, &name);
    if (rc >= 0) return rc;
    if (!name || a.npos || a.from || a.at || a.at_xid || a.at_restore_point || a.force || a.dry_run || a.retention ||
        a.repair)
        return cli_usage_fail("stats: usage: lakefs stats BRANCH [--repo URL]");
    if (cli_check_name("branch", name)) return 1;
    objstore *os;
    if (cli_args_repo(&a, &os)) return 1;
    lease_info l;
    store_stats s;
    char err[700], cerr[600];
    rc = cli_local_lease(os, name, &l, err, sizeof err);
    os_close(os);
    if (rc == -ENOENT || (!rc && !l.alive))
        return cli_fail("branch '%s' is not mounted by a daemon on this machine; stats are kept by the daemon serving it",
                    name);
    if (rc) return cli_fail("%s", err);
    if (!l.control[0])
        return cli_fail("the lakefs daemon mounting branch '%s' (pid %ld) has no control socket (an older lakefs)", name,
                    l.pid);
    if (control_stats(l.control, name, &s, cerr, sizeof cerr)) return cli_fail("branch '%s': %s", name, cerr);
    printf("reads %" PRIu64 "\nprobes %" PRIu64 "\nprobes_max %" PRIu64 "\nover_bound %" PRIu64 "\nbound %" PRIu64
           "\nlayers %" PRIu64 "\nflushes %" PRIu64 "\ncompactions %" PRIu64 "\nseq %" PRIu64 "\ngen %" PRIu64
           "\nmemtable_bytes %" PRIu64 "\nmerge_waits %" PRIu64 "\n",
           s.reads, s.probes, s.probes_max, s.over_bound, s.bound, s.layers, s.flushes, s.compactions, s.seq,
           s.manifest_gen, s.memtable_bytes, s.merge_waits);
    return 0;
}

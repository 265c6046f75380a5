#!/usr/bin/env bash
# Acceptance 1: PostgreSQL 15 with checksums on branches/main: pgbench load,
# clean stop, unmount, mount again: pg_amcheck --heapallindexed clean, the
# pgbench invariant holds, pg_checksums --check clean.
# backends: file s3
set -euo pipefail
. "$(dirname "$0")/lib.sh"
e2e_setup pgbench

if [ "${LAKEFS_TEST_LONG:-0}" = 1 ]; then
    scale=${PGBENCH_SCALE:-50} duration=${PGBENCH_TIME:-300}
elif [ "$LAKEFS_TEST_BACKEND" = s3 ]; then
    # after the remount every page comes cold from the S3 server (slower
    # than a local repository): a smaller database keeps the suite short
    scale=${PGBENCH_SCALE:-5} duration=${PGBENCH_TIME:-30}
else
    scale=${PGBENCH_SCALE:-10} duration=${PGBENCH_TIME:-30}
fi

url=$(repo_url repo)
mp=$T/mnt
mkdir -p "$mp"
opts=allow_other,default_permissions,state_dir=$T/state
lakefs_init "$url"
lakefs_mount "$url" "$mp" -o "$opts"
data=$mp/branches/main

pg_initdb "$data"
pg_start "$data"

pgbench_load "$data" "$scale" "$duration"

hist_before=$(psql_at "$data" -c "SELECT count(*) FROM pgbench_history")
pgbench_invariant "$data"
pg_stop "$data"
lakefs_umount "$mp"

lakefs_mount "$url" "$mp" -o "$opts"
pg_checksums_clean "$data"
pg_start "$data"
hist_after=$(psql_at "$data" -c "SELECT count(*) FROM pgbench_history")
[ "$hist_after" = "$hist_before" ] || die "pgbench_history has $hist_after rows after remount, $hist_before before"
naccounts=$(psql_at "$data" -c "SELECT count(*) FROM pgbench_accounts")
[ "$naccounts" = $((scale * 100000)) ] || die "pgbench_accounts has $naccounts rows, want $((scale * 100000))"
pgbench_invariant "$data"
pg_amcheck_clean "$data"
pg_stop "$data"
pg_checksums_clean "$data"
lakefs_umount "$mp"

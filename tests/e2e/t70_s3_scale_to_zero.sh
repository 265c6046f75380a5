#!/usr/bin/env bash
# Scale to zero: PostgreSQL on an s3:// repository (a real S3 server: Ceph
# RGW on 127.0.0.1) with a local block cache (-o cache_dir): pgbench -i and
# pgbench writes, clean stop, unmount. Then, as a fresh machine would: a NEW
# state dir and a NEW empty cache dir, mount, start PostgreSQL, one query.
# What was downloaded until that query answered (the size of the new cache
# dir) must be a small fraction (< 50%) of the database (pg_database_size)
# and of the repository's bytes in the bucket; then pg_amcheck
# --heapallindexed is clean, the pgbench invariant holds, no row is lost and
# pg_checksums is clean.
# backends: s3
set -euo pipefail
. "$(dirname "$0")/lib.sh"
LAKEFS_TEST_BACKEND=s3
e2e_setup s3_scale_to_zero

if [ "${LAKEFS_TEST_LONG:-0}" = 1 ]; then
    scale=${PGBENCH_SCALE:-50} duration=${PGBENCH_TIME:-60}
else
    scale=${PGBENCH_SCALE:-10} duration=${PGBENCH_TIME:-10}
fi
max_pct=${SCALE_TO_ZERO_MAX_PCT:-50}

url=$(repo_url repo)
prefix=${url#s3://"$S3_BUCKET"/}
mp=$T/mnt
mkdir -p "$mp"
common=allow_other,default_permissions
lakefs_init "$url"

# --- machine 1: load and write
lakefs_mount "$url" "$mp" -o "$common,state_dir=$T/state1,cache_dir=$T/cache1"
data=$mp/branches/main
pg_initdb "$data"
pg_start "$data"
pgbench_load "$data" "$scale" "$duration"
hist_before=$(psql_at "$data" -c "SELECT count(*) FROM pgbench_history")
pgbench_invariant "$data"
pg_stop "$data"
lakefs_umount "$mp"

# --- the machine is gone: nothing local is left
rm -rf "$T/state1" "$T/cache1"
repo_bytes=$(s3_bytes "$S3_BUCKET" "$prefix/")
ok "repository in the bucket: $repo_bytes bytes in $(s3_list "$S3_BUCKET" "$prefix/" | grep -c '') objects"

# --- machine 2: new state dir, new empty cache dir
cache=$T/cache2
mkdir -m 0700 "$cache"
lakefs_mount "$url" "$mp" -o "$common,state_dir=$T/state2,cache_dir=$cache"
pg_start "$data"
aid=$((scale * 100000 / 2 + 17))
bal=$(psql_at "$data" -c "SELECT abalance FROM pgbench_accounts WHERE aid = $aid") ||
    die "first query failed"
[ -n "$bal" ] || die "first query: no row for aid $aid"
fetched=$(du -sb "$cache" | cut -f1)
dbsize=$(psql_at "$data" -c "SELECT pg_database_size('postgres')")
pct_db=$(awk -v a="$fetched" -v b="$dbsize" 'BEGIN { printf "%.1f", 100 * a / b }')
pct_repo=$(awk -v a="$fetched" -v b="$repo_bytes" 'BEGIN { printf "%.1f", 100 * a / b }')
log "downloaded before the first answer: $fetched bytes (cache dir); database: $dbsize bytes ($pct_db%); repository: $repo_bytes bytes ($pct_repo%)"
[ "$fetched" -gt 0 ] || die "the cache dir is empty after PostgreSQL started: is -o cache_dir used?"
[ $((fetched * 100)) -lt $((dbsize * max_pct)) ] ||
    die "a fresh mount downloaded $fetched bytes before the first query answered: $pct_db% of the database ($dbsize bytes), want < $max_pct%"
[ $((fetched * 100)) -lt $((repo_bytes * max_pct)) ] ||
    die "a fresh mount downloaded $fetched bytes before the first query answered: $pct_repo% of the repository ($repo_bytes bytes), want < $max_pct%"
ok "first query answered after downloading $pct_db% of the database, $pct_repo% of the repository"

# --- and everything is there
hist_after=$(psql_at "$data" -c "SELECT count(*) FROM pgbench_history")
[ "$hist_after" = "$hist_before" ] || die "pgbench_history has $hist_after rows on the new machine, $hist_before before"
naccounts=$(psql_at "$data" -c "SELECT count(*) FROM pgbench_accounts")
[ "$naccounts" = $((scale * 100000)) ] || die "pgbench_accounts has $naccounts rows, want $((scale * 100000))"
pgbench_invariant "$data"
pg_amcheck_clean "$data"
pg_stop "$data"
pg_checksums_clean "$data"
log "cache dir after reading everything: $(du -sb "$cache" | cut -f1) bytes"
lakefs_umount "$mp"

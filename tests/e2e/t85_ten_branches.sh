#!/usr/bin/env bash
# Ten branches, each with its own PostgreSQL server, all served by one
# daemon at once (issue 4, acceptance 3). main runs PostgreSQL with a
# pgbench database; ten branches are created from it while it runs; a
# server starts on each (its own port; the branch views have their own
# inode numbers, so PostgreSQL's shared-memory keys never collide, and
# main's postmaster.pid is not in them); each runs its own pgbench load and
# writes a table of its own. Afterwards every server is consistent (pgbench
# invariant, pg_amcheck --heapallindexed), each branch sees exactly its own
# table and history, and main sees none of theirs; again after unmount +
# mount.
# backends: file s3
set -euo pipefail
. "$(dirname "$0")/lib.sh"
e2e_setup ten-branches

branches=10
if [ "${LAKEFS_TEST_LONG:-0}" = 1 ]; then
    scale=${PGBENCH_SCALE:-10} duration=${PGBENCH_TIME:-120}
else
    scale=${PGBENCH_SCALE:-1} duration=${PGBENCH_TIME:-10}
fi
url=$(repo_url repo)
mp=$T/mnt
mkdir -p "$mp"
opts=allow_other,default_permissions,state_dir=$T/state
lakefs_init "$url"
lakefs_mount "$url" "$mp" -o "$opts"
main=$mp/branches/main
pg_initdb "$main"
# ten more servers on one machine: modest shared memory each
echo "shared_buffers = 16MB" >>"$main/postgresql.conf"
echo "max_connections = 20" >>"$main/postgresql.conf"
pg_start "$main"
pgbench -i -s "$scale" -q -h "$PGSOCK" -p "${PG_PORT[$main]}" -U postgres postgres \
    >"$(newlog pgbench-init)" 2>&1 || die "pgbench -i failed"
hist_main=$(psql_at "$main" -c "SELECT count(*) FROM pgbench_history")

for i in $(seq 1 $branches); do
    "$LAKEFS" branch --repo "$url" create "b$i" --from main >>"$(newlog branch-create)" ||
        die "branch create b$i failed"
done
inodes=$(for i in $(seq 1 $branches); do stat -c %i "$mp/branches/b$i"; done; stat -c %i "$main")
[ "$(sort -u <<<"$inodes" | wc -l)" = $((branches + 1)) ] || die "branch roots share inode numbers: $inodes"

for i in $(seq 1 $branches); do pg_start "$mp/branches/b$i"; done
ok "$((branches + 1)) PostgreSQL servers running on one lakefs mount"

# every branch: its own pgbench run and its own table, all at once
pids=()
for i in $(seq 1 $branches); do
    d=$mp/branches/b$i
    psql_at "$d" -c "CREATE TABLE own_b$i AS SELECT g FROM generate_series(1, $((i * 100))) g" >/dev/null ||
        die "CREATE TABLE on b$i failed"
    pgbench -T "$duration" -c 2 -j 1 -h "$PGSOCK" -p "${PG_PORT[$d]}" -U postgres postgres \
        >"$(newlog "pgbench-b$i")" 2>&1 &
    pids+=($!)
done
for i in $(seq 1 $branches); do
    wait "${pids[$((i - 1))]}" || die "pgbench on b$i failed"
done
ok "pgbench ran on $branches branches at once"

check_all() {
    local i d h
    for i in $(seq 1 $branches); do
        d=$mp/branches/b$i
        pgbench_invariant "$d"
        [ "$(psql_at "$d" -c "SELECT count(*) FROM own_b$i")" = $((i * 100)) ] || die "$1: b$i lost its table"
        local other=$((i % branches + 1))
        [ -z "$(psql_at "$d" -c "SELECT to_regclass('own_b$other')")" ] || die "$1: b$i sees b$other's table"
        h=$(psql_at "$d" -c "SELECT count(*) FROM pgbench_history")
        [ "$h" -gt "$hist_main" ] || die "$1: b$i's pgbench history did not grow ($h)"
    done
    [ "$(psql_at "$main" -c "SELECT count(*) FROM pgbench_history")" = "$hist_main" ] ||
        die "$1: main's history changed (branches' writes leaked into main)"
    [ -z "$(psql_at "$main" -c "SELECT to_regclass('own_b1')")" ] || die "$1: main sees b1's table"
    ok "$1: every branch consistent and isolated"
}
check_all "all running"
for i in 1 $branches; do pg_amcheck_clean "$mp/branches/b$i"; done
for i in $(seq 1 $branches); do pg_stop "$mp/branches/b$i"; done
pg_stop "$main"
lakefs_umount "$mp"

lakefs_mount "$url" "$mp" -o "$opts"
pg_start "$main"
for i in $(seq 1 $branches); do pg_start "$mp/branches/b$i"; done
check_all "after unmount + mount"
for i in $(seq 2 $((branches - 1))); do pg_amcheck_clean "$mp/branches/b$i"; done
for i in $(seq 1 $branches); do pg_stop "$mp/branches/b$i"; done
pg_stop "$main"
lakefs_umount "$mp"

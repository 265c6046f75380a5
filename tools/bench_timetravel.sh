#!/usr/bin/env bash
# tools/bench_timetravel.sh -- how long a time-travel view takes to answer
# (issue 5's benchmark), against native point-in-time recovery of the same
# point on the same disk.
#
# A file:// repository gets a pgbench database of SCALE (default 70: about
# 1 GiB) on main, PostgreSQL's default checkpoint settings, a CHECKPOINT,
# then TPC-B (-c 4) until PostgreSQL's next checkpoint of its own (time or
# WAL volume, whichever comes first). Two targets are recorded while it
# runs: "after" a few seconds past the CHECKPOINT, and "before" the last
# second before the next checkpoint (the most WAL to replay). For each, RUNS
# times (default 3, median), from the start of the postmaster to the first
# answer to a query:
#   lakefs   PostgreSQL on branches/main@LSN of the running mount (each run
#            another spelling of the LSN, so another, fresh view)
#   native   PostgreSQL on a local copy of a base backup taken at the
#            CHECKPOINT, restoring the same WAL from a local directory, with
#            recovery_target_lsn, recovery_target_inclusive = off and
#            promote: what recovery to that point costs without lakefs
# Both recover from the same checkpoint through the same WAL. Prints a
# markdown table.
#
# usage: tools/bench_timetravel.sh [--lakefs BIN] [--dir DIR] [--runs N]
#                                  [--scale S] [--no-writeback-cache] [--out FILE]
# --no-writeback-cache mounts with -o writeback_cache=off.
# Run as root, with a lakefs built without sanitizers. DIR (default
# /var/tmp/lakefs-bench-timetravel) holds the repository, the base backup
# and the WAL copy.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
LAKEFS_TOP=$top
. "$top/tests/e2e/lib.sh"

bin='' dir=/var/tmp/lakefs-bench-timetravel runs=3 scale=70 outfile= wb=
while [ $# -gt 0 ]; do
    case $1 in
    --lakefs) bin=$2; shift ;;
    --dir) dir=$2; shift ;;
    --runs) runs=$2; shift ;;
    --scale) scale=$2; shift ;;
    --no-writeback-cache) wb=,writeback_cache=off ;;
    --out) outfile=$2; shift ;;
    -h|--help) sed -n '2,28p' "$0"; exit 0 ;;
    *) echo "bench_timetravel.sh: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done
need_root
bench_lakefs "$bin"

bench_dir bench-timetravel "$dir"
on_exit "rm -rf '$T'"

lsn_num() { echo $(((16#${1%/*} << 32) + 16#${1#*/})); }

# answer_ms DATA KEY: start PostgreSQL on DATA, append the milliseconds
# until a query is answered to R[KEY] (not in a subshell: pg_start records
# the server for pg_stop)
answer_ms() {
    local t0
    t0=$(ms_now)
    pg_start "$1"
    psql_at "$1" -c "SELECT count(*) FROM pgbench_branches" >/dev/null || die "no answer on $1"
    R[$2]+=" $(ms_since "$t0")"
}

# spell LSN N: the Nth spelling of LSN in a view name, N leading zeros
# (another name, so another, fresh view each time)
spell() { printf '%0*d%s-%s\n' "$2" 0 "${1%/*}" "${1#*/}"; }

declare -A R=()
url=file://$T/repo mp=$T/mnt
mkdir -p "$mp" "$T/wal"
lakefs_init "$url"
lakefs_mount "$url" "$mp" -o "allow_other,default_permissions$wb,state_dir=$T/state"
main=$mp/branches/main
pg_initdb "$main"
pg_start "$main"
log "loading pgbench scale $scale"
pgbench -i -s "$scale" -q -h "$PGSOCK" -p "${PG_PORT[$main]}" -U postgres postgres \
    >"$(newlog pgbench-init)" 2>&1 || die "pgbench -i -s $scale failed"
size=$(psql_at "$main" -c "SELECT pg_size_pretty(pg_database_size('postgres'))")
psql_at "$main" -c "CHECKPOINT" >/dev/null
log "database $size; base backup for the native runs"
mkdir -p "$T/base" && chown postgres:postgres "$T/base" && chmod 0700 "$T/base"
as_pg pg_basebackup -h "$PGSOCK" -p "${PG_PORT[$main]}" -U postgres -D "$T/base" -X none -c fast \
    >"$(newlog basebackup)" 2>&1 || die "pg_basebackup failed"
ckpt=$(psql_at "$main" -c "SELECT checkpoint_lsn FROM pg_control_checkpoint()")

lg=$(newlog pgbench-run)
pgbench -T 1800 -c 4 -j 2 -h "$PGSOCK" -p "${PG_PORT[$main]}" -U postgres postgres >"$lg" 2>&1 &
bench=$!
on_exit "kill_job $bench"
sleep 5
after=$(psql_at "$main" -c "SELECT pg_current_wal_insert_lsn()")
log "target 'after the checkpoint': $after"
before=$after
while :; do               # until PostgreSQL checkpoints by itself
    sleep 1
    now=$(psql_at "$main" -c "SELECT pg_current_wal_insert_lsn(), checkpoint_lsn FROM pg_control_checkpoint()")
    [ "${now#*|}" = "$ckpt" ] || break
    before=${now%|*}
done
kill_job "$bench"
wal_mb=$(psql_at "$main" -c "SELECT round(('$before'::pg_lsn - '$ckpt'::pg_lsn) / 1048576.0)")
log "target 'before the next checkpoint': $before ($wal_mb MiB of WAL after the checkpoint)"
psql_at "$main" -c "CHECKPOINT" >/dev/null
cp "$main"/.lakefs-wal/0* "$T/wal/"
chown -R postgres:postgres "$T/wal"

for which in after before; do
    target=${!which}
    for r in $(seq 1 "$runs"); do
        v=$mp/branches/main@$(spell "$target" "$r")
        answer_ms "$v" "$which,lakefs"
        pg_stop "$v"
        n=$T/native-$which-$r
        cp -a "$T/base" "$n"
        printf "restore_command = 'cp %s/%%f \"%%p\"'\nrecovery_target_lsn = '%s'\nrecovery_target_inclusive = off\nrecovery_target_action = 'promote'\nhot_standby = off\n" \
            "$T/wal" "$target" >>"$n/postgresql.auto.conf"
        touch "$n/recovery.signal"
        chown -R postgres:postgres "$n"
        answer_ms "$n" "$which,native"
        pg_stop "$n"
        rm -rf "$n"
    done
done
pg_stop "$main"
lakefs_umount "$mp"

{
    echo "| target ($size, scale $scale) | WAL replayed | lakefs view (ms) | native PITR (ms) | lakefs / native |"
    echo "|---|---|---|---|---|"
    for which in after before; do
        target=${!which}
        l=$(median <<<"${R[$which,lakefs]}") n=$(median <<<"${R[$which,native]}")
        mb=$(awk -v a="$(lsn_num "$target")" -v c="$(lsn_num "$ckpt")" 'BEGIN { printf "%.0f MiB", (a - c) / 1048576 }')
        echo "| $which the checkpoint ($target) | $mb | $l | $n | $(awk -v l="$l" -v n="$n" 'BEGIN { printf "%.2fx", l / n }') |"
    done
    echo
    echo "Medians of $runs runs: postmaster start to the first query answered. Raw (ms):"
    for which in after before; do
        echo "$which: lakefs${R[$which,lakefs]}; native${R[$which,native]}"
    done
} | tee ${outfile:+"$outfile"}

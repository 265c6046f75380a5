#!/usr/bin/env bash
# tools/bench_branch.sh -- how long `lakefs branch create` takes, against
# the size of the database (issue 4's benchmark), on a file:// repository.
#
# For each pgbench scale in SCALES (default "7 135": about 100 MB and 2 GB)
# a repository gets a fresh database on main, then, each RUNS times, median:
#   create (running)   `lakefs branch create` from main while PostgreSQL
#                      runs on it, idle after a CHECKPOINT (the daemon is
#                      asked for a checkpoint through its control socket)
#   create (unmounted) the same with main not mounted: metadata only
#   first answer       from `lakefs branch create` (main running) to the
#                      first query answered by a server started on the new
#                      branch, served by the same daemon (crash recovery
#                      included)
# Wall-clock times of the whole command (process start, repository open,
# fork), in milliseconds. Prints a markdown table.
#
# usage: tools/bench_branch.sh [--lakefs BIN] [--dir DIR] [--runs N]
#                              [--scales "S1 S2"] [--out FILE]
# Run as root, with a lakefs built without sanitizers. DIR (default
# /var/tmp/lakefs-bench-branch) holds the repository and state.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
LAKEFS_TOP=$top
. "$top/tests/e2e/lib.sh"

bin='' dir=/var/tmp/lakefs-bench-branch runs=5 scales="7 135" outfile=
while [ $# -gt 0 ]; do
    case $1 in
    --lakefs) bin=$2; shift ;;
    --dir) dir=$2; shift ;;
    --runs) runs=$2; shift ;;
    --scales) scales=$2; shift ;;
    --out) outfile=$2; shift ;;
    -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
    *) echo "bench_branch.sh: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done
need_root
bench_lakefs "$bin"

bench_dir bench-branch "$dir"
on_exit "rm -rf '$T'"


declare -A R=() SIZE=()
# time_creates KEY PREFIX: RUNS times `branch create PREFIXn --from main`
# on $url, the times appended to R[KEY]
time_creates() {
    local r t0
    for r in $(seq 1 "$runs"); do
        n=$((n + 1))
        t0=$(ms_now)
        "$LAKEFS" branch --repo "$url" create "$2$n" --from main >>"$(newlog create)" || die "branch create failed"
        R[$1]+=" $(ms_since "$t0")"
    done
}
common=allow_other,default_permissions
n=0
for scale in $scales; do
    repo=$T/repo-$scale mp=$T/mnt-$scale
    url=file://$repo
    mkdir -p "$mp"
    lakefs_init "$url"
    lakefs_mount "$url" "$mp" -o "$common,state_dir=$T/state-$scale"
    main=$mp/branches/main
    pg_initdb "$main"
    pg_start "$main"
    log "loading pgbench scale $scale"
    pgbench -i -s "$scale" -q -h "$PGSOCK" -p "${PG_PORT[$main]}" -U postgres postgres \
        >"$(newlog pgbench-init)" 2>&1 || die "pgbench -i -s $scale failed"
    psql_at "$main" -c "CHECKPOINT" >/dev/null
    SIZE[$scale]=$(psql_at "$main" -c "SELECT pg_size_pretty(pg_database_size('postgres'))")
    log "scale $scale: database ${SIZE[$scale]}"
    time_creates "$scale,running" run
    for r in $(seq 1 "$runs"); do
        n=$((n + 1))
        t0=$(ms_now)
        "$LAKEFS" branch --repo "$url" create "first$n" --from main >>"$(newlog create)" || die "branch create failed"
        d=$mp/branches/first$n
        pg_start "$d"
        psql_at "$d" -c "SELECT count(*) FROM pgbench_branches" >/dev/null || die "no answer on first$n"
        R[$scale,first]+=" $(ms_since "$t0")"
        pg_stop "$d"
    done
    pg_stop "$main"
    lakefs_umount "$mp"
    time_creates "$scale,unmounted" cold
    rm -rf "$repo" "$T/state-$scale"
done

{
    echo "| database (pgbench scale) | create, main running (ms) | create, main unmounted (ms) | create to first answer on the branch (ms) |"
    echo "|---|---|---|---|"
    for scale in $scales; do
        echo "| ${SIZE[$scale]} (scale $scale) | $(median 1 <<<"${R[$scale,running]}") | $(median 1 <<<"${R[$scale,unmounted]}") | $(median 1 <<<"${R[$scale,first]}") |"
    done
    echo
    echo "Medians of $runs runs; wall time of the whole command. Raw (ms):"
    for scale in $scales; do
        echo "scale $scale: running${R[$scale,running]}; unmounted${R[$scale,unmounted]}; first answer${R[$scale,first]}"
    done
} | tee ${outfile:+"$outfile"}

#!/usr/bin/env bash
# tools/bench_compaction.sh -- what compaction costs the writer and gains
# the reader (issue 6's benchmark): the same workload with compaction on
# (the default) and off (-o compaction=off), side by side.
#
# Each run: a fresh file:// repository mounted with MEMTABLE (default 4M)
# memtables so that layers pile up quickly, pgbench -i -s SCALE (default
# 10), then TPC-B for SECONDS (default 30, -c 4 -j 2, per-transaction
# latencies logged), then select-only for SECONDS after a restart of
# PostgreSQL (its cache emptied; the daemon's layer cache is warm alike in
# both). Reported per setting, median of RUNS (default 3) runs: TPC-B tps,
# its latency median, 99th percentile and maximum (what PostgreSQL sees
# while merges run), select-only tps, and the layers main's newest manifest
# names at the end (what a read may probe). Prints a markdown table.
#
# usage: tools/bench_compaction.sh [--lakefs BIN] [--dir DIR] [--runs N]
#                                  [--scale S] [--seconds T] [--memtable SIZE] [--out FILE]
# Run as root, with a lakefs built without sanitizers.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
LAKEFS_TOP=$top
. "$top/tests/e2e/lib.sh"

bin='' dir=/var/tmp/lakefs-bench-compaction runs=3 scale=10 seconds=30 memtable=4M outfile=
while [ $# -gt 0 ]; do
    case $1 in
    --lakefs) bin=$2; shift ;;
    --dir) dir=$2; shift ;;
    --runs) runs=$2; shift ;;
    --scale) scale=$2; shift ;;
    --seconds) seconds=$2; shift ;;
    --memtable) memtable=$2; shift ;;
    --out) outfile=$2; shift ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    *) echo "bench_compaction.sh: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done
need_root
bench_lakefs "$bin"
bench_dir bench-compaction "$dir"
on_exit "rm -rf '$T'"

declare -A R
# one_run SETTING N: a fresh repository, the workload, the figures into R[SETTING.*]
one_run() {
    local setting=$1 n=$2 url mp main lg lat
    url=file://$T/$setting-$n/repo mp=$T/$setting-$n/mnt main=$mp/branches/main
    mkdir -p "$mp"
    lakefs_init "$url"
    lakefs_mount "$url" "$mp" -o "allow_other,default_permissions,memtable_size=$memtable,gc_interval=0,compaction=$setting,state_dir=$T/$setting-$n/state"
    pg_initdb "$main"
    pg_start "$main"
    pgbench -i -s "$scale" -q -h "$PGSOCK" -p "${PG_PORT[$main]}" -U postgres postgres >/dev/null 2>&1 ||
        die "pgbench -i failed"
    lg=$T/$setting-$n/tpcb
    mkdir -p "$lg"
    chmod 0777 "$lg"
    (cd "$lg" && pgbench -n -T "$seconds" -c 4 -j 2 -l -h "$PGSOCK" -p "${PG_PORT[$main]}" -U postgres postgres \
        >"$lg/out" 2>&1) || die "pgbench TPC-B failed"
    R[$setting.tps]+=" $(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$lg/out")"
    # per-transaction latencies (microseconds, 3rd field) of every client
    lat=$(cat "$lg"/pgbench_log.* | awk '{ print $3 }' | sort -n |
        awk '{ a[NR] = $1 } END { printf "%.2f %.2f %.2f", a[int(NR * 0.5)] / 1000, a[int(NR * 0.99)] / 1000, a[NR] / 1000 }')
    read -r p50 p99 pmax <<<"$lat"
    R[$setting.p50]+=" $p50" R[$setting.p99]+=" $p99" R[$setting.max]+=" $pmax"
    pg_stop "$main"
    pg_start "$main"
    pgbench -n -S -T "$seconds" -c 4 -j 2 -h "$PGSOCK" -p "${PG_PORT[$main]}" -U postgres postgres \
        >"$lg/select" 2>&1 || die "pgbench select-only failed"
    R[$setting.sel]+=" $(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$lg/select")"
    local m
    m=$(ls "$T/$setting-$n/repo/branches/main/manifest" | tail -n 1)
    R[$setting.layers]+=" $(grep -c '^layer ' "$T/$setting-$n/repo/branches/main/manifest/$m")"
    pg_stop "$main"
    lakefs_umount "$mp"
    rm -rf "$T/$setting-$n"
    log "run $n, compaction $setting: tps ${R[$setting.tps]##* }, latency p50/p99/max $p50/$p99/$pmax ms, select ${R[$setting.sel]##* }, layers ${R[$setting.layers]##* }"
}

for n in $(seq 1 "$runs"); do
    one_run on "$n"
    one_run off "$n"
done

table() {
    echo "| compaction | TPC-B tps | latency p50 (ms) | p99 (ms) | max (ms) | select-only tps | layers at the end |"
    echo "|---|---|---|---|---|---|---|"
    local s
    for s in on off; do
        echo "| $s | $(echo "${R[$s.tps]}" | median) | $(echo "${R[$s.p50]}" | median 2) | $(echo "${R[$s.p99]}" | median 2) |" \
             "$(echo "${R[$s.max]}" | median 2) | $(echo "${R[$s.sel]}" | median) | $(echo "${R[$s.layers]}" | median) |"
    done
    echo
    echo "pgbench -s $scale, $seconds s each, memtable_size=$memtable, median of $runs runs, $(date -u +%Y-%m-%d)."
}
table | tee ${outfile:+"$outfile"}

#!/usr/bin/env bash
# tools/bench_memory.sh -- the daemon's resident memory under load, against
# the bound README.md states (Memory): peak RSS (VmHWM, reset between
# phases through /proc/PID/clear_refs) during `pgbench -i -s SCALE` and
# during a TPC-B run (-c 4 -j 2) of DURATION seconds, and the RSS left at
# the end of each, on a file:// repository. Run it on a release build
# (sanitizers multiply memory). Prints a markdown table; exits 1 if a peak
# passes the bound.
#
# usage: tools/bench_memory.sh [--lakefs BIN] [--dir DIR] [--scale N]
#                              [--time S] [--memtable SIZE_MIB]
#                              [--block-cache SIZE_MIB] [--out FILE]
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/tests/e2e/lib.sh"

bin='' dir=/var/tmp/lakefs-bench-memory scale=50 duration=600 outfile=
memtable=64 block_cache=256
while [ $# -gt 0 ]; do
    case $1 in
    --lakefs) bin=$2; shift ;;
    --dir) dir=$2; shift ;;
    --scale) scale=$2; shift ;;
    --time) duration=$2; shift ;;
    --memtable) memtable=$2; shift ;;
    --block-cache) block_cache=$2; shift ;;
    --out) outfile=$2; shift ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "bench_memory.sh: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done
need_root
bench_lakefs "$bin"
bench_dir bench-memory "$dir"

# README.md, Memory: the block cache; for the branch written to, 3
# memtables (the active one, up to 2 frozen waiting for upload), the layer
# built from one (a memtable at most), a merge's chunk and piece (32 MiB
# and 64 MiB and a block); read-ahead gets in flight (32 MiB); 128 MiB for
# the rest (code, thread stacks, libraries, the allocator's slack)
bound=$((block_cache + 4 * memtable + 32 + 65 + 32 + 128))

mp=$T/mnt
mkdir -p "$mp"
lakefs_init "file://$T/repo"
lakefs_mount "file://$T/repo" "$mp" -o \
    "allow_other,default_permissions,state_dir=$T/state,memtable_size=${memtable}M,block_cache=${block_cache}M"
pid=${DAEMON_PID[$mp]}
data=$mp/branches/main

kib() { awk '/^'"$1"':/ { print $2 }' "/proc/$pid/status"; }
declare -A PEAK=() END=() TPS=()
phase_begin() { echo 5 >"/proc/$pid/clear_refs"; }
phase_end() {
    PEAK[$1]=$(($(kib VmHWM) / 1024)) END[$1]=$(($(kib VmRSS) / 1024))
    log "$1: peak RSS ${PEAK[$1]} MiB, ${END[$1]} MiB at the end (bound $bound MiB)"
}
pgb() { pgbench -h "$PGSOCK" -p "${PG_PORT[$data]}" -U postgres "$@" postgres; }

pg_initdb "$data"
pg_start "$data"
phase_begin
pgb -i -s "$scale" -q >>"$T/logs/pgbench-init.log" 2>&1 || die "pgbench -i failed"
phase_end init
phase_begin
out=$(pgb -c 4 -j 2 -T "$duration" 2>>"$T/logs/pgbench.err") || die "pgbench failed"
phase_end tpcb
tps=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' <<<"$out" | head -n 1 | awk '{ printf "%.0f", $1 }')
pg_stop "$data"
lakefs_umount "$mp"

{
    echo "| phase | daemon peak RSS, MiB | at its end, MiB | bound, MiB |"
    echo "|---|---:|---:|---:|"
    echo "| pgbench -i -s $scale | ${PEAK[init]} | ${END[init]} | $bound |"
    echo "| TPC-B -c 4 -j 2, scale $scale, $duration s ($tps tps) | ${PEAK[tpcb]} | ${END[tpcb]} | $bound |"
    echo
    echo "memtable_size=${memtable}M, block_cache=${block_cache}M, file:// repository;" \
        "$(nproc) CPUs, $(date -u +%Y-%m-%d)."
} | tee ${outfile:+"$outfile"}
[ "${PEAK[init]}" -le "$bound" ] && [ "${PEAK[tpcb]}" -le "$bound" ] ||
    die "the daemon's peak RSS passed the bound of $bound MiB"

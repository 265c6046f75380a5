#!/usr/bin/env bash
# tools/bench.sh -- lakefs against the same disk used directly (and against
# libfuse's passthrough_ll example, built from the examples Debian ships in
# /usr/share/doc/libfuse3-dev/examples, when present). Also: make bench.
#
# Workloads (each config, RUNS runs, median):
#   pgbench TPC-B      -c 4 -j 2, scale 20, 30 s
#   pgbench select-only (-S), same
#   fio 8 KiB random read/write (randrw 50/50, psync) with --verify=crc32c
# Prints a markdown table with the lakefs/native ratio, and the lakefs
# daemon's peak resident memory over the whole run.
#
# usage: tools/bench.sh [--lakefs BIN] [--dir DIR] [--runs N] [--time S]
#                       [--scale N] [--fio-size SIZE] [--no-passthrough]
#                       [--only native,lakefs,passthrough] [--no-writeback-cache]
#                       [--out FILE]
# --no-writeback-cache mounts lakefs with -o writeback_cache=off.
# Run as root. DIR (default /var/tmp/lakefs-bench) holds every config, so all
# of them use the same disk; it is removed at the end.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/tests/e2e/lib.sh"

bin='' dir=/var/tmp/lakefs-bench runs=3 duration=30 scale=20 fio_size=256M
configs="native lakefs passthrough" outfile= wb=
while [ $# -gt 0 ]; do
    case $1 in
    --lakefs) bin=$2; shift ;;
    --dir) dir=$2; shift ;;
    --runs) runs=$2; shift ;;
    --time) duration=$2; shift ;;
    --scale) scale=$2; shift ;;
    --fio-size) fio_size=$2; shift ;;
    --no-passthrough) configs=${configs/ passthrough/} ;;
    --only) configs=${2//,/ }; shift ;;
    --no-writeback-cache) wb=,writeback_cache=off ;;
    --out) outfile=$2; shift ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    *) echo "bench.sh: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done
need_root
bench_lakefs "$bin"
command -v fio >/dev/null || die "fio not installed: apt-get install fio"
command -v pgbench >/dev/null || die "pgbench not found (PATH has $PGBIN?)"

bench_dir bench "$dir"

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "n/a" || b == "n/a" || b == 0) print "n/a"; else printf "%.2f\n", a / b }'; }

# ------------------------------------------------------------ filesystems
# setup_CONFIG sets TESTDIR, the directory to test in (empty, owned by root).
passthrough_bin= lakefs_rss=
build_passthrough() {
    local ex=/usr/share/doc/libfuse3-dev/examples
    [ -f "$ex/passthrough_ll.c" ] || { log "no $ex/passthrough_ll.c: skipping passthrough"; return 1; }
    gcc -O2 -Wall -I"$ex" "$ex/passthrough_ll.c" $(pkg-config --cflags --libs fuse3) \
        -o "$T/passthrough_ll" >>"$T/logs/passthrough-build.log" 2>&1 ||
        { log "passthrough_ll does not build: skipping"; return 1; }
    passthrough_bin=$T/passthrough_ll
}

setup_native() { mkdir -p "$T/native/data"; TESTDIR=$T/native/data; }
teardown_native() { rm -rf "$T/native"; }

setup_lakefs() {
    mkdir -p "$T/lakefs/mnt"
    lakefs_init "file://$T/lakefs/repo"
    lakefs_mount "file://$T/lakefs/repo" "$T/lakefs/mnt" \
        -o "allow_other,default_permissions$wb,state_dir=$T/lakefs/state"
    TESTDIR=$T/lakefs/mnt/branches/main
}
teardown_lakefs() {
    local pid=${DAEMON_PID[$T/lakefs/mnt]}
    lakefs_rss=$(awk '/^VmHWM:/ { print int($2 / 1024) }' "/proc/$pid/status" || true)
    lakefs_umount "$T/lakefs/mnt"
    rm -rf "$T/lakefs"
}

# passthrough_ll runs as root and does every operation as root: no
# default_permissions (postgres could not open the files root created for it).
setup_passthrough() {
    mkdir -p "$T/pt/src" "$T/pt/mnt"
    local mp=$T/pt/mnt lg=$T/logs/passthrough.log
    "$passthrough_bin" -f -o "source=$T/pt/src,allow_other" "$mp" >>"$lg" 2>&1 &
    DAEMON_PID[$mp]=$!
    on_exit "cleanup_mount '$mp'"
    wait_for 30 "passthrough mount" is_mounted "$mp" || die "passthrough_ll did not mount"
    TESTDIR=$mp
}
teardown_passthrough() { lakefs_umount "$T/pt/mnt"; rm -rf "$T/pt"; }

# ------------------------------------------------------------ workloads
declare -A R=()   # R[config,metric] = "v1 v2 ..."

run_fio() { # run_fio CONFIG DIR
    local cfg=$1 d=$2/fio r line
    mkdir -p "$d"
    for r in $(seq 1 "$runs"); do
        line=$(fio --name=randrw --directory="$d" --rw=randrw --rwmixread=50 --bs=8k \
            --size="$fio_size" --ioengine=psync --verify=crc32c --verify_fatal=1 \
            --end_fsync=1 --randrepeat=0 --verify_state_save=0 --output-format=terse --terse-version=3 \
            2>>"$T/logs/fio-$cfg.err") || die "fio failed on $cfg (verify error?)"
        R[$cfg,fio_r]+=" $(cut -d';' -f8 <<<"$line")"
        R[$cfg,fio_w]+=" $(cut -d';' -f49 <<<"$line")"
        rm -f "$d"/*
        log "$cfg fio run $r: read iops $(cut -d';' -f8 <<<"$line"), write iops $(cut -d';' -f49 <<<"$line")"
    done
    rm -rf "$d"
}

pgb() { pgbench -h "$PGSOCK" -p "${PG_PORT[$data]}" -U postgres "$@" postgres; }

run_pgbench() { # run_pgbench CONFIG PGDATA
    local cfg=$1 data=$2 r out tps
    pg_initdb "$data"
    pg_start "$data"
    pgb -i -s "$scale" -q >>"$T/logs/pgbench-init-$cfg.log" 2>&1 || die "pgbench -i failed on $cfg"
    for r in $(seq 1 "$runs"); do
        out=$(pgb -c 4 -j 2 -T "$duration" 2>>"$T/logs/pgbench-$cfg.err") || die "pgbench failed on $cfg"
        tps=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' <<<"$out" | head -n 1)
        R[$cfg,tpcb]+=" $tps"
        log "$cfg TPC-B run $r: $tps tps"
        out=$(pgb -S -c 4 -j 2 -T "$duration" 2>>"$T/logs/pgbench-$cfg.err") || die "pgbench -S failed on $cfg"
        tps=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' <<<"$out" | head -n 1)
        R[$cfg,ro]+=" $tps"
        log "$cfg select-only run $r: $tps tps"
    done
    pg_stop "$data"
}

ran=()
for cfg in $configs; do
    if [ "$cfg" = passthrough ] && [ -z "$passthrough_bin" ]; then
        build_passthrough || continue
    fi
    log "=== $cfg"
    setup_$cfg
    run_fio "$cfg" "$TESTDIR"
    run_pgbench "$cfg" "$TESTDIR"
    teardown_$cfg
    ran+=("$cfg")
done

# ------------------------------------------------------------ report
table() {
    local has_pt=0 c
    for c in "${ran[@]}"; do [ "$c" = passthrough ] && has_pt=1; done
    echo "| workload | native | lakefs | lakefs/native |$([ $has_pt = 1 ] && echo ' passthrough_ll | passthrough/native |')"
    echo "|---|---:|---:|---:|$([ $has_pt = 1 ] && echo '---:|---:|')"
    local m label n l p
    for m in tpcb ro fio_r fio_w; do
        case $m in
        tpcb) label="pgbench TPC-B, tps (-c 4 -j 2, scale $scale, ${duration} s)" ;;
        ro) label="pgbench select-only, tps (-S -c 4 -j 2, scale $scale, ${duration} s)" ;;
        fio_r) label="fio 8 KiB randrw + verify, read IOPS ($fio_size)" ;;
        fio_w) label="fio 8 KiB randrw + verify, write IOPS ($fio_size)" ;;
        esac
        n=$(median <<<"${R[native,$m]:-}")
        l=$(median <<<"${R[lakefs,$m]:-}")
        printf '| %s | %s | %s | %s |' "$label" "$n" "$l" "$(ratio "$l" "$n")"
        if [ $has_pt = 1 ]; then
            p=$(median <<<"${R[passthrough,$m]:-}")
            printf ' %s | %s |' "$p" "$(ratio "$p" "$n")"
        fi
        echo
    done
    echo
    [ -z "$lakefs_rss" ] || echo "The lakefs daemon's peak resident memory over all its runs: $lakefs_rss MiB."
    echo "Medians of $runs runs; $(nproc) CPUs, kernel $(uname -r), $(df -PT "$dir" | awk 'NR==2 {print $2}') under $dir, $(date -u +%Y-%m-%d)."
}

echo
table | tee ${outfile:+"$outfile"}

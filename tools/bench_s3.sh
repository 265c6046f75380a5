#!/usr/bin/env bash
# tools/bench_s3.sh -- lakefs on an s3:// repository against a file:// one
# on the same disk (issue 3's benchmark). The S3 server is a throw-away
# one-node Ceph RADOS Gateway on 127.0.0.1 (memstore: objects in RAM), so
# the figures measure lakefs's request pattern, not a WAN.
#
# Workloads (each RUNS times, median):
#   cold start  a database of pgbench scale COLD_SCALE (68: about 1 GiB) is
#               loaded, PostgreSQL stopped cleanly, unmounted; then, as a
#               new machine would: new state dir, new empty cache dir, the
#               kernel's page cache dropped; time from "lakefs mount" to the
#               mount being ready, to "pg_ctl start" returning, and to the
#               first query answered; bytes downloaded (the cache dir).
#   pgbench     TPC-B -c 4 -j 2, scale SCALE, TIME s: file://, s3:// and
#               s3:// with -o durability=remote.
# Prints a markdown table.
#
# usage: tools/bench_s3.sh [--lakefs BIN] [--dir DIR] [--runs N] [--time S]
#                          [--scale N] [--cold-scale N] [--out FILE]
# Run as root, with a lakefs built without sanitizers. DIR (default
# /var/tmp/lakefs-bench-s3) holds the file:// repository, state and caches.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
LAKEFS_TOP=$top
. "$top/tests/e2e/lib.sh"

bin='' dir=/var/tmp/lakefs-bench-s3 runs=3 duration=30 scale=20 cold_scale=68 outfile=
while [ $# -gt 0 ]; do
    case $1 in
    --lakefs) bin=$2; shift ;;
    --dir) dir=$2; shift ;;
    --runs) runs=$2; shift ;;
    --time) duration=$2; shift ;;
    --scale) scale=$2; shift ;;
    --cold-scale) cold_scale=$2; shift ;;
    --out) outfile=$2; shift ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    *) echo "bench_s3.sh: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done
need_root
bench_lakefs "$bin"

bench_dir bench-s3 "$dir"
on_exit "rm -rf '$T'"

on_exit rgw_stop
rgw_start || die "cannot start Ceph RGW"
s3_use_env "$RGW_DIR/s3.env"
S3_BUCKET=lakefs-bench
s3_create_bucket "$S3_BUCKET"

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "n/a" || b == "n/a" || b == 0) print "n/a"; else printf "%.2f\n", a / b }'; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f\n", b - a }'; }

declare -A R=()   # R[config,metric] = "v1 v2 ..."
common=allow_other,default_permissions
mp=$T/mnt
mkdir -p "$mp"
data=$mp/branches/main
pgb() { pgbench -h "$PGSOCK" -p "${PG_PORT[$data]}" -U postgres "$@" postgres; }

# url_of CONFIG: the repository of a config.
url_of() { case $1 in file) echo "file://$T/repo-$2" ;; *) echo "s3://$S3_BUCKET/repo-$2" ;; esac; }

# ------------------------------------------------------------ cold start
cold_start() { # cold_start CONFIG(file|s3)
    local cfg=$1 url t0 r cache
    url=$(url_of "$cfg" cold)
    lakefs_init "$url"
    lakefs_mount "$url" "$mp" -o "$common,state_dir=$T/state-$cfg-load"
    pg_initdb "$data"
    pg_start "$data"
    pgb -i -s "$cold_scale" -q >>"$T/logs/cold-init-$cfg.log" 2>&1 || die "pgbench -i failed on $cfg"
    R[$cfg,dbsize]=$(psql_at "$data" -c "SELECT pg_database_size('postgres')")
    pg_stop "$data"
    lakefs_umount "$mp"
    for r in $(seq 1 "$runs"); do
        cache=$T/cache-$cfg-$r
        mkdir -m 0700 "$cache"
        sync
        echo 3 >/proc/sys/vm/drop_caches
        t0=$(now)
        lakefs_mount "$url" "$mp" -o "$common,state_dir=$T/state-$cfg-$r,cache_dir=$cache"
        R[$cfg,mount]+=" $(since "$t0")"
        pg_start "$data"
        R[$cfg,start]+=" $(since "$t0")"
        psql_at "$data" -c "SELECT abalance FROM pgbench_accounts WHERE aid = $((cold_scale * 50000 + 17))" >/dev/null ||
            die "first query failed on $cfg"
        R[$cfg,first]+=" $(since "$t0")"
        R[$cfg,fetched]+=" $(du -sb "$cache" | cut -f1)"
        log "$cfg cold start $r: mounted ${R[$cfg,mount]##* } s, started ${R[$cfg,start]##* } s, first answer ${R[$cfg,first]##* } s"
        pg_stop "$data"
        lakefs_umount "$mp"
        rm -rf "$cache" "$T/state-$cfg-$r"
    done
}

# ------------------------------------------------------------ pgbench
tpcb() { # tpcb CONFIG URLKIND DURABILITY
    local cfg=$1 url r out tps
    url=$(url_of "$2" "tps-$cfg")
    lakefs_init "$url"
    lakefs_mount "$url" "$mp" -o "$common,state_dir=$T/state-tps-$cfg,durability=$3"
    pg_initdb "$data"
    pg_start "$data"
    pgb -i -s "$scale" -q >>"$T/logs/tps-init-$cfg.log" 2>&1 || die "pgbench -i failed on $cfg"
    for r in $(seq 1 "$runs"); do
        out=$(pgb -c 4 -j 2 -T "$duration" 2>>"$T/logs/tps-$cfg.err") || die "pgbench failed on $cfg"
        tps=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' <<<"$out" | head -n 1)
        R[$cfg,tps]+=" $tps"
        log "$cfg TPC-B run $r: $tps tps"
    done
    pg_stop "$data"
    lakefs_umount "$mp"
}

log "=== cold start, scale $cold_scale"
cold_start file
cold_start s3
log "=== pgbench TPC-B, scale $scale"
tpcb file file local
tpcb s3 s3 local
tpcb s3remote s3 remote

# ------------------------------------------------------------ report
table() {
    local f s
    echo "| cold start, pgbench scale $cold_scale ($(awk -v b="${R[s3,dbsize]}" 'BEGIN { printf "%.2f GiB", b / 2^30 }')) | file:// | s3:// | s3/file |"
    echo "|---|---:|---:|---:|"
    for m in mount start first; do
        f=$(median 2 <<<"${R[file,$m]}") s=$(median 2 <<<"${R[s3,$m]}")
        case $m in
        mount) label="mount ready, s" ;;
        start) label="pg_ctl start returned, s" ;;
        first) label="first query answered, s" ;;
        esac
        echo "| $label | $f | $s | $(ratio "$s" "$f") |"
    done
    s=$(median 2 <<<"${R[s3,fetched]}")
    echo "| downloaded before the first answer (cache dir) | - | $(awk -v b="$s" 'BEGIN { printf "%.1f MiB", b / 2^20 }') ($(awk -v a="$s" -v b="${R[s3,dbsize]}" 'BEGIN { printf "%.1f%%", 100 * a / b }') of the database) | |"
    echo
    f=$(median 2 <<<"${R[file,tps]}")
    echo "| pgbench TPC-B, tps (-c 4 -j 2, scale $scale, ${duration} s) | tps | vs file:// |"
    echo "|---|---:|---:|"
    echo "| file:// | $f | 1.00 |"
    s=$(median 2 <<<"${R[s3,tps]}")
    echo "| s3:// (durability=local) | $s | $(ratio "$s" "$f") |"
    s=$(median 2 <<<"${R[s3remote,tps]}")
    echo "| s3:// durability=remote | $s | $(ratio "$s" "$f") |"
    echo
    echo "Medians of $runs runs; Ceph RGW $(radosgw --version 2>/dev/null | awk '{print $3}') (memstore) on 127.0.0.1; $(nproc) CPUs, $(df -PT "$dir" | awk 'NR==2 {print $2}') under $dir, $(date -u +%Y-%m-%d)."
}

echo
table | tee ${outfile:+"$outfile"}

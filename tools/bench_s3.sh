#!/usr/bin/env bash
# tools/bench_s3.sh -- lakefs on an s3:// repository against a file:// one
# on the same disk (issues 3 and 16). The S3 server is a throw-away one-node
# Ceph RADOS Gateway on 127.0.0.1 (memstore: objects in RAM); lakefs reaches
# it through tests/e2e/faultproxy, which adds a fixed delay to every request
# (--latencies, default "0 20" ms: a real bucket answers in 10-50 ms) and
# counts what lakefs asks for.
#
# Workloads (each RUNS times, median):
#   cold start  a database of pgbench scale COLD_SCALE (68: about 1 GiB) is
#               loaded, PostgreSQL stopped cleanly, unmounted; then, as a
#               new machine would: new state dir, new empty cache dir, the
#               kernel's page cache dropped; time from "lakefs mount" to the
#               mount being ready, to "pg_ctl start" returning, and to the
#               first query answered; for the s3 runs, per phase, the
#               requests by kind (GET, LIST, PUT, HEAD, other), the bytes
#               downloaded, the time with a request in flight ("busy") and
#               the mean number in flight while busy (1.0: one after the
#               other, each a full round trip), and the longest chain of
#               requests each sent after the previous one answered, from
#               the mount to the phase's end (lib.sh serial_chain).
#   pgbench     TPC-B -c 4 -j 2, scale SCALE, TIME s: file://, and s3://
#               with durability=local and remote at every latency.
# Prints markdown tables.
#
# usage: tools/bench_s3.sh [--lakefs BIN] [--dir DIR] [--runs N] [--time S]
#                          [--scale N] [--cold-scale N] [--latencies "MS ..."]
#                          [--no-tpcb] [--out FILE]
# Run as root, with a lakefs built without sanitizers. DIR (default
# /var/tmp/lakefs-bench-s3) holds the file:// repository, state and caches.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
LAKEFS_TOP=$top
. "$top/tests/e2e/lib.sh"

bin='' dir=/var/tmp/lakefs-bench-s3 runs=3 duration=30 scale=20 cold_scale=68 outfile= latencies="0 20" tpcb=1
while [ $# -gt 0 ]; do
    case $1 in
    --lakefs) bin=$2; shift ;;
    --dir) dir=$2; shift ;;
    --runs) runs=$2; shift ;;
    --time) duration=$2; shift ;;
    --scale) scale=$2; shift ;;
    --cold-scale) cold_scale=$2; shift ;;
    --latencies) latencies=$2; shift ;;
    --no-tpcb) tpcb=0 ;;
    --out) outfile=$2; shift ;;
    -h|--help) sed -n '2,29p' "$0"; exit 0 ;;
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

# ------------------------------------------------------------ the proxy
reqlog=$T/requests.log
: >"$reqlog"
proxy_start "$reqlog"
# fresh_gateway: a new, empty gateway behind a new proxy.  The gateway
# keeps objects in a 4 GiB memstore and frees deleted ones only at its
# garbage collection, hours later: the cold-start repository and four
# TPC-B repositories (compaction replacing layers as pgbench writes) fill
# it, and a full gateway leaves PUTs unanswered.  So each TPC-B
# configuration on s3 gets a gateway of its own.
fresh_gateway() {
    proxy_stop
    rgw_stop
    rgw_start || die "cannot start Ceph RGW"
    s3_use_env "$RGW_DIR/s3.env"
    s3_create_bucket "$S3_BUCKET"
    proxy_start "$reqlog"
}
# latency MS: the proxy delays every request by MS from now on
latency() { proxy_set "delay_ms $1"; }
# snap NAME: the proxy's counters now, and how far its request log is, kept as NAME
snap() { cp "$PROXY_STATS" "$T/snap.$1"; echo "lines $(grep -c '' "$reqlog")" >>"$T/snap.$1"; }
# mount_via CONFIG URL OPTIONS: lakefs_mount URL; an s3 config through the proxy
mount_via() {
    if [ "$1" = file ]; then lakefs_mount "$2" "$mp" -o "$3"
    else AWS_ENDPOINT_URL=$PROXY_URL lakefs_mount "$2" "$mp" -o "$3"; fi
}
# delta A B FIELD: counter FIELD of snapshot B minus A
delta() { awk -v f="$3" '$1 == f { v[FILENAME] = $2 } END { print v[ARGV[2]] - v[ARGV[1]] }' "$T/snap.$1" "$T/snap.$2"; }

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
# cold_load KIND(file|s3): the database the cold starts read (s3: loaded
# straight from the gateway, not through the proxy).
cold_load() {
    local kind=$1 url
    url=$(url_of "$kind" cold)
    lakefs_init "$url"
    lakefs_mount "$url" "$mp" -o "$common,state_dir=$T/state-$kind-load"
    pg_initdb "$data"
    pg_start "$data"
    pgb -i -s "$cold_scale" -q >>"$T/logs/cold-init-$kind.log" 2>&1 || die "pgbench -i failed on $kind"
    R[$kind,dbsize]=$(psql_at "$data" -c "SELECT pg_database_size('postgres')")
    pg_stop "$data"
    lakefs_umount "$mp"
}

# cold_run CONFIG(file|s3-MS) RUN: one cold start, as a new machine.
cold_run() {
    local cfg=$1 r=$2 url t0 cache p f prev
    url=$(url_of "${cfg%%-*}" cold)
    [ "$cfg" = file ] || latency "${cfg#s3-}"
    cache=$T/cache-$cfg-$r
    mkdir -m 0700 "$cache"
    sync
    echo 3 >/proc/sys/vm/drop_caches
    snap "$cfg.$r.0"
    t0=$(now)
    mount_via "$cfg" "$url" "$common,state_dir=$T/state-$cfg-$r,cache_dir=$cache"
    R[$cfg,mount]+=" $(since "$t0")"; snap "$cfg.$r.mount"
    pg_start "$data"
    R[$cfg,start]+=" $(since "$t0")"; snap "$cfg.$r.start"
    psql_at "$data" -c "SELECT abalance FROM pgbench_accounts WHERE aid = $((cold_scale * 50000 + 17))" >/dev/null ||
        die "first query failed on $cfg"
    R[$cfg,first]+=" $(since "$t0")"; snap "$cfg.$r.first"
    R[$cfg,fetched]+=" $(du -sb "$cache" | cut -f1)"
    if [ "$cfg" != file ]; then
        prev=0
        for p in mount start first; do
            for f in get list put head delete post bytes_down busy_ms request_ms requests; do
                R[$cfg,$p,$f]+=" $(delta "$cfg.$r.$prev" "$cfg.$r.$p" "$f")"
            done
            # requests one after the other from the mount to the end of this phase
            R[$cfg,$p,chain]+=" $(serial_chain "$reqlog" $(($(awk '$1 == "lines" { print $2 }' "$T/snap.$cfg.$r.0") + 1)) \
                "$(awk '$1 == "lines" { print $2 }' "$T/snap.$cfg.$r.$p")")"
            prev=$p
        done
    fi
    log "$cfg cold start $r: mounted ${R[$cfg,mount]##* } s, started ${R[$cfg,start]##* } s, first answer ${R[$cfg,first]##* } s"
    pg_stop "$data"
    lakefs_umount "$mp"
    rm -rf "$cache" "$T/state-$cfg-$r"
}

# ------------------------------------------------------------ pgbench
tpcb() { # tpcb CONFIG URLKIND DURABILITY LATENCY
    local cfg=$1 url r out tps
    url=$(url_of "$2" "tps-$cfg")
    lakefs_init "$url"
    [ "$2" = file ] || latency "$4"
    mount_via "$cfg" "$url" "$common,state_dir=$T/state-tps-$cfg,durability=$3"
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
cold_load file
cold_load s3
cold_cfgs=(file)
for l in $latencies; do cold_cfgs+=("s3-$l"); done
for r in $(seq 1 "$runs"); do
    for c in "${cold_cfgs[@]}"; do cold_run "$c" "$r"; done
done
tpcb_cfgs=()
if [ "$tpcb" = 1 ]; then
    log "=== pgbench TPC-B, scale $scale"
    tpcb file file local 0
    tpcb_cfgs=(file)
    for l in $latencies; do
        fresh_gateway
        tpcb "s3-$l" s3 local "$l"
        fresh_gateway
        tpcb "s3remote-$l" s3 remote "$l"
        tpcb_cfgs+=("s3-$l" "s3remote-$l")
    done
fi

# ------------------------------------------------------------ report
label() {
    case $1 in
    mount) echo "mount ready" ;;
    start) echo "pg_ctl start returned" ;;
    first) echo "first query answered" ;;
    file) echo "file://" ;;
    s3-*) echo "s3:// +${1#s3-} ms" ;;
    s3remote-*) echo "s3:// durability=remote +${1#s3remote-} ms" ;;
    esac
}
med() { median "${2:-2}" <<<"${R[$1]}"; }

table() {
    local c m p f line
    line="| cold start, pgbench scale $cold_scale ($(awk -v b="${R[s3,dbsize]}" 'BEGIN { printf "%.2f GiB", b / 2^30 }')), s"
    for c in "${cold_cfgs[@]}"; do line+=" | $(label "$c")"; done
    echo "$line |"
    echo "|---$(printf '|---:%.0s' "${cold_cfgs[@]}")|"
    for m in mount start first; do
        line="| $(label "$m")"
        for c in "${cold_cfgs[@]}"; do line+=" | $(med "$c,$m")"; done
        echo "$line |"
    done
    line="| downloaded by the first answer (cache dir), MiB"
    for c in "${cold_cfgs[@]}"; do
        [ "$c" = file ] && { line+=" | -"; continue; }
        line+=" | $(awk -v b="$(med "$c,fetched" 0)" 'BEGIN { printf "%.1f", b / 2^20 }')"
    done
    echo "$line |"
    echo
    echo "| phase (requests from the phase's start) | added latency | wall, s | GET | LIST | PUT | HEAD | other | MiB down | busy, s | mean in flight | serial chain since mount |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    for c in "${cold_cfgs[@]}"; do
        [ "$c" = file ] && continue
        local prev_wall=0
        for p in mount start first; do
            local wall busy req
            wall=$(med "$c,$p")
            busy=$(med "$c,$p,busy_ms" 0) req=$(med "$c,$p,request_ms" 0)
            echo "| $(label "$p") | ${c#s3-} ms | $(awk -v a="$wall" -v b="$prev_wall" 'BEGIN { printf "%.2f", a - b }') |" \
                "$(med "$c,$p,get" 0) | $(med "$c,$p,list" 0) | $(med "$c,$p,put" 0) | $(med "$c,$p,head" 0) |" \
                "$(($(med "$c,$p,delete" 0) + $(med "$c,$p,post" 0))) |" \
                "$(awk -v b="$(med "$c,$p,bytes_down" 0)" 'BEGIN { printf "%.1f", b / 2^20 }') |" \
                "$(awk -v b="$busy" 'BEGIN { printf "%.2f", b / 1000 }') |" \
                "$(awk -v a="$req" -v b="$busy" 'BEGIN { if (b > 0) printf "%.1f", a / b; else print "-" }') |" \
                "$(med "$c,$p,chain" 0) |"
            prev_wall=$wall
        done
    done
    if [ "${#tpcb_cfgs[@]}" -gt 0 ]; then
        echo
        f=$(med file,tps)
        echo "| pgbench TPC-B, tps (-c 4 -j 2, scale $scale, ${duration} s) | tps | vs file:// |"
        echo "|---|---:|---:|"
        for c in "${tpcb_cfgs[@]}"; do
            echo "| $(label "$c") | $(med "$c,tps") | $(ratio "$(med "$c,tps")" "$f") |"
        done
    fi
    echo
    echo "Medians of $runs runs; Ceph RGW $(radosgw --version 2>/dev/null | awk '{print $3}') (memstore) on 127.0.0.1 behind tests/e2e/faultproxy; $(nproc) CPUs, $(df -PT "$dir" | awk 'NR==2 {print $2}') under $dir, $(date -u +%Y-%m-%d)."
}

echo
table | tee ${outfile:+"$outfile"}

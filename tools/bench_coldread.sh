#!/usr/bin/env bash
# tools/bench_coldread.sh -- what a fresh machine pays to read data of an
# s3:// repository the first time: every run mounts with a NEW state dir and
# a NEW empty cache dir (as tests/e2e/t70_s3_scale_to_zero.sh does).
#
#   sequential  dd bs=1M of a SIZE MiB file of pseudo-random bytes: MB/s;
#               beside it, as a baseline, dd of SIZE MiB of zeros into a new
#               file on the file system of the cache dir, just before: a
#               cold read writes every byte it fetches into the disk cache,
#               and on a VM whose freed memory goes back to the host (free
#               page reporting) each page the page cache takes costs a host
#               fault, which bounds such writes at a few hundred MB/s
#   random      fio, 8 jobs each reading N/8 pages of 8 KiB at random
#               offsets of the same file (fixed seed: every run reads the
#               same pages): IOPS, the bytes downloaded (the daemon's
#               counter in STATE/stats) and the size of the new cache dir
# The daemon reaches the gateway through tests/e2e/faultproxy, which adds
# each of --latencies (default "0 20" ms) to every request: a real bucket
# answers in 10-50 ms, and 8 random readers can at best do 8 / latency.
# Several configurations (--lakefs BIN[:MOUNT_OPTS], repeatable, e.g. an old
# and a new build, or BIN:readahead=0) read the same repository, written
# once by the first; runs alternate between them. Prints each run and the
# median of RUNS runs per configuration. The bucket lives on a private
# throw-away Ceph RGW (memstore) on 127.0.0.1 (tests/e2e/lib.sh: rgw_start).
#
# usage: tools/bench_coldread.sh [--lakefs BIN[:OPTS]]... [--size MIB]
#            [--runs N] [--random-reads N] [--latencies "MS ..."] [--dir DIR]
# Run as root. Default: the lakefs of this build tree.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/tests/e2e/lib.sh"

configs=() dir=/var/tmp/lakefs-coldread size=512 runs=3 nrand=2000 latencies="0 20"
while [ $# -gt 0 ]; do
    case $1 in
    --lakefs) configs+=("$2"); shift ;;
    --size) size=$2; shift ;;
    --runs) runs=$2; shift ;;
    --random-reads) nrand=$2; shift ;;
    --latencies) latencies=$2; shift ;;
    --dir) dir=$2; shift ;;
    -h|--help) sed -n '2,28p' "$0"; exit 0 ;;
    *) echo "bench_coldread.sh: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done
need_root
[ ${#configs[@]} -gt 0 ] || configs=("$top/lakefs")
for c in "${configs[@]}"; do
    bin=${c%%:*}
    [ -x "$bin" ] || die "no lakefs binary $bin (build it, or --lakefs PATH)"
    ! ldd "$bin" 2>/dev/null | grep -q libasan || log "WARNING: $bin is built with sanitizers; numbers will be low"
done
command -v fio >/dev/null || die "fio not installed: apt-get install fio"

bench_dir coldread "$dir"
on_exit rgw_stop
rgw_start || die "cannot start Ceph RGW"
s3_use_env "$RGW_DIR/s3.env"
S3_BUCKET=coldread
s3_create_bucket "$S3_BUCKET"

proxy_start
stat_of() { awk -v k="$2" '$1 == k { print $2 }' "$1/stats"; }

# fresh_mount CONFIG: mount with a new state dir and a new empty cache dir.
# ra_line: the daemon's read-ahead counters at the unmount since then.
ncaches=0
mkdir -p "$T/old-caches"
on_exit "rm -rf '$T/old-caches'"
fresh_mount() {
    local o=
    [[ $1 != *:* ]] || o=,${1#*:}
    LAKEFS=${1%%:*}
    # moved aside, deleted at the end: thousands of files deleted just
    # before a run make each file the next daemon creates scan them on a
    # journal-less ext4 (recently_deleted()), which a fresh machine's
    # empty cache does not pay
    rm -rf "$T/state"
    [ ! -d "$T/cache" ] || mv "$T/cache" "$T/old-caches/$((++ncaches))"
    logpos=$( (cat "$T"/logs/*daemon* 2>/dev/null || true) | wc -l)
    AWS_ENDPOINT_URL=$PROXY_URL lakefs_mount "$url" "$mp" -o "state_dir=$T/state,cache_dir=$T/cache$o"
}

ra_line() { cat "$T"/logs/*daemon* | tail -n +"$((logpos + 1))" | sed -n 's/^lakefs: \(read-ahead: .*\)/; \1/p'; }

url=s3://$S3_BUCKET/repo
mp=$T/mnt
mkdir -p "$mp"
LAKEFS=${configs[0]%%:*}
lakefs_init "$url"
fresh_mount "${configs[0]}"
(openssl enc -aes-128-ctr -nosalt -K 000102030405060708090a0b0c0d0e0f -iv 0 -in /dev/zero 2>/dev/null || true) |
    head -c "$((size << 20))" >"$mp/branches/main/big"
lakefs_umount "$mp"
log "wrote a $size MiB file of pseudo-random bytes; the bucket holds $(s3_bytes "$S3_BUCKET" repo/) bytes"

declare -A seq_mbs=() rand_dl=() rand_du=() rand_iops=() base_mbs=()
nbase=0
for r in $(seq 1 "$runs"); do
  for ms in $latencies; do
    proxy_set "delay_ms $ms"
    for c0 in "${configs[@]}"; do
        c="$c0 +${ms}ms"
        # the baseline; kept (in old-caches) like the caches, so that its
        # pages stay taken as theirs do
        t0=$(date +%s.%N)
        dd if=/dev/zero of="$T/old-caches/baseline.$((++nbase))" bs=1M count="$size" status=none
        t1=$(date +%s.%N)
        base=$(awk -v s="$size" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", s * 1048576 / (b - a) / 1e6 }')
        base_mbs[$c]+=" $base"
        fresh_mount "$c0"
        t0=$(date +%s.%N)
        dd if="$mp/branches/main/big" of=/dev/null bs=1M status=none
        t1=$(date +%s.%N)
        lakefs_umount "$mp"
        mbs=$(awk -v s="$size" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", s * 1048576 / (b - a) / 1e6 }')
        seq_mbs[$c]+=" $mbs"
        log "$c run $r: sequential $mbs MB/s (baseline: writing $size MiB on the cache's file system $base MB/s), downloaded $(stat_of "$T/state" downloaded) bytes$(ra_line)"

        fresh_mount "$c0"
        # terse v3: field 8 is the read IOPS of the group
        iops=$(fio --name=rand --filename="$mp/branches/main/big" --readonly --rw=randread --bs=8k \
            --ioengine=psync --numjobs=8 --group_reporting --number_ios="$((nrand / 8))" --randseed=42 \
            --randrepeat=1 --output-format=terse 2>>"$T/logs/fio.err" | awk -F';' '{ print $8 }') || die "fio failed"
        lakefs_umount "$mp"
        dl=$(stat_of "$T/state" downloaded) du=$(du -sb "$T/cache" | cut -f1)
        rand_dl[$c]+=" $dl"
        rand_du[$c]+=" $du"
        rand_iops[$c]+=" $iops"
        log "$c run $r: $nrand random 8 KiB reads (8 jobs): $iops IOPS, downloaded $dl bytes, cache dir $du bytes$(ra_line)"
    done
  done
done
for ms in $latencies; do
    for c0 in "${configs[@]}"; do
        c="$c0 +${ms}ms"
        echo "$c"
        echo "  sequential MB/s:${seq_mbs[$c]}; median $(median 1 <<<"${seq_mbs[$c]}")"
        echo "  baseline, writing $size MiB on the cache's file system, MB/s:${base_mbs[$c]}; median $(median 1 <<<"${base_mbs[$c]}")"
        echo "  random IOPS (8 jobs):${rand_iops[$c]}; median $(median 0 <<<"${rand_iops[$c]}")$([ "$ms" = 0 ] || echo "; 8 jobs / latency = $((8000 / ms))")"
        echo "  random, bytes downloaded:${rand_dl[$c]}; median $(median <<<"${rand_dl[$c]}")"
        echo "  random, cache dir bytes:${rand_du[$c]}; median $(median <<<"${rand_du[$c]}")"
    done
done

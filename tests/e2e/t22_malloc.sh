#!/usr/bin/env bash
# The daemon runs with glibc's malloc advising transparent huge pages
# (tools/cmd_mount.c: mount_exec_with_thp): a page fault costs ~11.6 us
# per 4 KiB on this project's test machine, and the daemon's buffers come
# and go with every flush.
# 1. Mounted with no GLIBC_TUNABLES, the daemon runs with
#    GLIBC_TUNABLES=glibc.malloc.hugetlb=1 (its environment as the kernel
#    shows it, /proc/PID/environ: the exec happened) and serves files.
# 2. A GLIBC_TUNABLES naming glibc.malloc.hugetlb already is the user's
#    choice: kept as given (hugetlb=0).
#    The exec keeps the daemon's name (/proc/PID/comm is the binary's,
#    so ps, top and pgrep find it; not "exe").
# 3. Without sanitizers (their allocator is not glibc's) and with
#    transparent huge pages not "never": after 256 MiB written through the
#    mount, the daemon holds anonymous huge pages (AnonHugePages in
#    /proc/PID/smaps_rollup), and with hugetlb=0 too: the memtables'
#    chunks are advised as huge pages by lakefs itself (store/memtable.c).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
e2e_setup malloc
unset LAKEFS_REPO GLIBC_TUNABLES

url=$(repo_url repo)
mp=$T/mnt
mkdir -p "$mp"
lakefs_init "$url"

# tunables_of PID: the daemon's GLIBC_TUNABLES as it started
tunables_of() { tr '\0' '\n' <"/proc/$1/environ" | sed -n 's/^GLIBC_TUNABLES=//p'; }
# huge_kib PID: the daemon's anonymous memory in transparent huge pages
huge_kib() { awk '/^AnonHugePages:/ { print $2 }' "/proc/$1/smaps_rollup"; }
thp_checkable=1
if ldd "$LAKEFS" | grep -q libasan; then
    thp_checkable=0
    log "a sanitizer build: its allocator is not glibc's, section 3 skipped"
elif grep -q '\[never\]' /sys/kernel/mm/transparent_hugepage/enabled; then
    thp_checkable=0
    log "transparent huge pages are off on this machine, section 3 skipped"
fi

# mount_write TUNABLES: mount with GLIBC_TUNABLES=TUNABLES (unset if
# empty), write 256 MiB and fsync; the daemon's pid in $pid
mount_write() {
    if [ -n "$1" ]; then GLIBC_TUNABLES=$1 lakefs_mount "$url" "$mp" -o "allow_other,state_dir=$T/state"
    else lakefs_mount "$url" "$mp" -o "allow_other,state_dir=$T/state"; fi
    pid=${DAEMON_PID[$mp]}
    dd if=/dev/urandom of="$mp/branches/main/data" bs=1M count=256 conv=fsync status=none ||
        die "writing 256 MiB through the mount failed"
}

# ---------------------------------------------------------------- 1
mount_write ""
[ "$(tunables_of "$pid")" = glibc.malloc.hugetlb=1 ] ||
    die "the daemon runs with GLIBC_TUNABLES '$(tunables_of "$pid")', not glibc.malloc.hugetlb=1"
ok "the daemon runs with glibc.malloc.hugetlb=1"
name=$(basename "$LAKEFS"); name=${name:0:15}
[ "$(cat "/proc/$pid/comm")" = "$name" ] ||
    die "the daemon's process is named '$(cat "/proc/$pid/comm")' after its exec, not $name"
ok "the daemon keeps its name ($name) through the exec"
if [ "$thp_checkable" = 1 ]; then
    on=$(huge_kib "$pid")
    [ "$on" -gt 0 ] || die "the daemon holds no transparent huge pages after 256 MiB written"
fi
lakefs_umount "$mp"

# ---------------------------------------------------------------- 2
mount_write glibc.malloc.hugetlb=0
[ "$(tunables_of "$pid")" = glibc.malloc.hugetlb=0 ] ||
    die "the user's GLIBC_TUNABLES=glibc.malloc.hugetlb=0 became '$(tunables_of "$pid")'"
ok "a GLIBC_TUNABLES that names glibc.malloc.hugetlb is kept"
if [ "$thp_checkable" = 1 ]; then
    off=$(huge_kib "$pid")
    [ "$off" -gt 0 ] || die "with glibc.malloc.hugetlb=0 the daemon holds no huge pages: the memtables' chunks are not advised"
    ok "after 256 MiB written the daemon holds $on KiB in transparent huge pages ($off KiB with hugetlb=0: the memtables')"
fi
lakefs_umount "$mp"
ok "transparent huge pages for the daemon's malloc"

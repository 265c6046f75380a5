#!/usr/bin/env bash
# The kernel's writeback cache (fs/fs_writeback.c): writes land in the page
# cache and reach the daemon in the background, so before the daemon cuts
# a state it has the kernel write back what it holds (the barrier).
# 1. The mount's strict dirty-page limit for FUSE is lifted
#    (/sys/class/bdi/DEV/strict_limit 0), or the daemon says it could not.
# 2. With the daemon's first FUSE write stalled for 2 s (failpoint
#    fs-write=stall@1), a file written on main and kept open, without
#    fsync (its write returns from the page cache; a close would wait),
#    is in a branch created from main at once: the checkpoint behind
#    `branch create` fsyncs every file open for writing on main through a
#    detached clone of the mount, which waits for the stalled write.  The
#    daemon logs that it stalled, so the write was still in flight when
#    the branch was asked for.
# 3. A file written just before the unmount is there after a new mount.
# backends: file s3
set -euo pipefail
. "$(dirname "$0")/lib.sh"
e2e_setup writeback
unset LAKEFS_REPO

url=$(repo_url repo)
mp=$T/mnt main=$T/mnt/branches/main
mkdir -p "$mp"
lakefs_init "$url"
LAKEFS_FAILPOINTS=fs-write=stall@1 lakefs_mount "$url" "$mp" -o "allow_other,default_permissions,state_dir=$T/state"

# ---------------------------------------------------------------- 1
dev=$(mountpoint -d "$mp")
if [ -e "/sys/class/bdi/$dev/strict_limit" ]; then
    [ "$(cat "/sys/class/bdi/$dev/strict_limit")" = 0 ] ||
        die "the mount ($dev) keeps the kernel's strict dirty-page limit for FUSE"
    ok "the mount's strict dirty-page limit is lifted (/sys/class/bdi/$dev/strict_limit 0)"
else
    cat "$T"/logs/*daemon-mnt*.log | grep -q "$mp: the kernel's strict dirty-page limit for FUSE stays on" ||
        die "no /sys/class/bdi/$dev/strict_limit and the daemon did not say so"
    ok "this kernel has no strict_limit knob; the daemon said so"
fi

# ---------------------------------------------------------------- 2
head -c 9000 /dev/urandom | base64 -w 0 >"$T/data"
data=$(cat "$T/data")
# the writer: the file is its standard output for good, it writes with a
# builtin, signals with a builtin and stays (exec sleep): any close of a
# descriptor of the file, a redirection's undoing included, would wait for
# the write-back, and so would exiting
ready=0
trap 'ready=1' USR1
(exec >"$main/written"; printf '%s' "$data"; kill -USR1 $$; exec sleep 120) &
holder=$!
on_exit "kill_job $holder"
writer_done() { [ "$ready" = 1 ]; }
wait_for 30 "the writer to write" writer_done || die "the writer did not write"
"$LAKEFS" branch create snap --from main --repo "$url" >>"$(newlog branch)" 2>&1 || die "branch create snap failed"
kill "$holder"
wait "$holder" 2>/dev/null || true
cat "$T"/logs/*daemon-mnt*.log | grep -q "failpoint fs-write: stalling" ||
    die "the daemon's first write did not stall: the test proves nothing"
cmp "$T/data" "$mp/branches/snap/written" ||
    die "branch snap, created from main after a write whose daemon side was still stalled, lacks it"
ok "a write still stalled in the daemon is in a branch created at once (the kernel wrote back first)"

# ---------------------------------------------------------------- 3
head -c 54321 /dev/urandom >"$T/late"
cp "$T/late" "$main/late"
lakefs_umount "$mp"
lakefs_mount "$url" "$mp" -o "allow_other,default_permissions,state_dir=$T/state"
cmp "$T/late" "$main/late" || die "a file written just before the unmount differs after a new mount"
cmp "$T/data" "$mp/branches/snap/written" || die "branch snap lost its file across the remount"
lakefs_umount "$mp"
ok "a file written just before the unmount is there after a new mount"

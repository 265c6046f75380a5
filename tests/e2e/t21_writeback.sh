#!/usr/bin/env bash
# The kernel's writeback cache (on by default, fs/fs_writeback.c):
# writes land in the page cache and reach the daemon in the background, so
# before the daemon cuts a state it has the kernel write back what it
# holds (the barrier).
# 1. The mount's strict dirty-page limit for FUSE is lifted
#    (/sys/class/bdi/DEV/strict_limit 0), or the daemon says it could not;
#    a mount with -o writeback_cache=off keeps it (nothing lifted, no cache).
# 2. With the daemon's first FUSE write stalled for 2 s (failpoint
#    fs-write=stall@1), a file written on main and kept open, without
#    fsync (its write returns from the page cache; a close would wait),
#    is in a branch created from main at once: the checkpoint behind
#    `branch create` fsyncs every file open for writing on main through a
#    detached clone of the mount, which waits for the stalled write.  The
#    daemon logs that it stalled, so the write was still in flight when
#    the branch was asked for.
# 3. A file written just before the unmount is there after a new mount.
# 4. The WAL bypasses the cache: a write into a WAL segment of pg_wal/,
#    its writer keeping the file open without fsync, is at once in the
#    branch's WAL archive (.lakefs-wal, read from the daemon), so the WAL
#    observer sees WAL in PostgreSQL's order; and a reader that cached the
#    segment's page before the write reads the new bytes on its next open.
# 5. kill -9 of the daemon while a barrier waits for a write stalled in it
#    (a second `branch create`): every thread of the daemon ends, so the
#    kernel ends its connection (a thread of the daemon waiting on its own
#    mount would keep it forever: the barrier runs in a child process).
# backends: file s3
set -euo pipefail
. "$(dirname "$0")/lib.sh"
e2e_setup writeback
unset LAKEFS_REPO

url=$(repo_url repo)
mp=$T/mnt main=$T/mnt/branches/main
mkdir -p "$mp"
lakefs_init "$url"

# ---------------------------------------------------------------- 1
# strict_limit MOUNTPOINT: its kernel's strict dirty-page limit for FUSE
# (0 or 1), or nothing on a kernel without the knob
strict_limit() { local f; f="/sys/class/bdi/$(mountpoint -d "$1")/strict_limit"; [ ! -e "$f" ] || cat "$f"; }
lakefs_mount "$url" "$mp" -o "allow_other,default_permissions,writeback_cache=off,state_dir=$T/state"
limit=$(strict_limit "$mp")
[ "${limit:-1}" = 1 ] || die "a mount with -o writeback_cache=off lifted the strict dirty-page limit"
[ -z "$limit" ] || ok "a mount with -o writeback_cache=off keeps the strict limit"
lakefs_umount "$mp"
LAKEFS_FAILPOINTS=fs-write=stall@1 lakefs_mount "$url" "$mp" -o "allow_other,default_permissions,state_dir=$T/state"
case $(strict_limit "$mp") in
0) ok "the mount's strict dirty-page limit is lifted (strict_limit 0)" ;;
"") cat "$T"/logs/*daemon-mnt*.log | grep -q "$mp: the kernel's strict dirty-page limit for FUSE stays on" ||
        die "this kernel has no strict_limit knob and the daemon did not say so"
    ok "this kernel has no strict_limit knob; the daemon said so" ;;
*) die "the mount keeps the kernel's strict dirty-page limit for FUSE" ;;
esac

# ---------------------------------------------------------------- 2
head -c 9000 /dev/urandom | base64 -w 0 >"$T/data"
data=$(cat "$T/data")
# hold_written FILE: a writer writes $data into FILE and keeps it open
# (pid in $holder). The file is its standard output for good, it writes
# with a builtin, signals with a builtin and stays (exec sleep): any close
# of a descriptor of the file, a redirection's undoing included, would wait
# for the write-back, and so would exiting.
ready=0
trap 'ready=1' USR1
writer_done() { [ "$ready" = 1 ]; }
hold_written() {
    ready=0
    (exec >"$1"; printf '%s' "$data"; kill -USR1 $$; exec sleep 120) &
    holder=$!
    on_exit "kill_job $holder"
    wait_for 30 "the writer to write" writer_done || die "the writer did not write"
}
stalls() { cat "$T"/logs/*daemon-mnt*.log | grep -c "failpoint fs-write: stalling" || true; }
hold_written "$main/written"
"$LAKEFS" branch create snap --from main --repo "$url" >>"$(newlog branch)" 2>&1 || die "branch create snap failed"
kill "$holder"
wait "$holder" 2>/dev/null || true
[ "$(stalls)" = 1 ] || die "the daemon's first write did not stall: the test proves nothing"
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
ok "a file written just before the unmount is there after a new mount"

# ---------------------------------------------------------------- 4
seg=000000010000000000000001
mkdir "$main/pg_wal"
dd if=/dev/zero of="$main/pg_wal/xlogtemp.1" bs=1M count=16 status=none
mv "$main/pg_wal/xlogtemp.1" "$main/pg_wal/$seg"
[ "$(head -c 64 "$main/pg_wal/$seg" | tr -d '\0' | wc -c)" = 0 ] || die "the new segment does not read as zeros"
ready=0
(exec 1<>"$main/pg_wal/$seg"; printf '%s' "$data"; kill -USR1 $$; exec sleep 120) &
holder=$!
on_exit "kill_job $holder"
wait_for 30 "the WAL writer to write" writer_done || die "the WAL writer did not write"
[ "$(head -c ${#data} "$main/.lakefs-wal/$seg")" = "$data" ] ||
    die "a write into pg_wal/$seg, not fsynced, is not in the WAL archive: the kernel cached it"
[ "$(head -c ${#data} "$main/pg_wal/$seg")" = "$data" ] ||
    die "pg_wal/$seg, read again, shows the bytes cached before the write"
kill "$holder"
wait "$holder" 2>/dev/null || true
lakefs_umount "$mp"
ok "a write into a WAL segment reaches the daemon at once; cached readers see it"

# ---------------------------------------------------------------- 5
# threads_gone PID: no thread of PID left (a zombie leader whose other
# threads still run counts as alive)
threads_gone() {
    local t n=0
    for t in /proc/"$1"/task/*; do [ -e "$t" ] && n=$((n + 1)); done
    [ "$n" -le 1 ] && pid_dead "$1"
}
LAKEFS_FAILPOINTS=fs-write=stall@1 lakefs_mount "$url" "$mp" -o "allow_other,default_permissions,state_dir=$T/state"
pid=${DAEMON_PID[$mp]}
hold_written "$main/written2"
"$LAKEFS" branch create snap2 --from main --repo "$url" >>"$(newlog branch2)" 2>&1 &
creator=$!
on_exit "kill_job $creator"
stalled() { [ "$(stalls)" = 2 ]; }
wait_for 30 "the barrier's write to stall in the daemon" stalled || die "the barrier's write did not stall"
kill -9 "$pid"
wait_for 30 "every thread of the killed daemon $pid to end" threads_gone "$pid" ||
    die "the daemon killed during a barrier did not end: $(cat /proc/"$pid"/task/*/stack 2>/dev/null | head -20)"
wait "$pid" 2>/dev/null || true
unset "DAEMON_PID[$mp]"
fusermount3 -u -z "$mp" 2>/dev/null || umount -l "$mp" 2>/dev/null || true
wait_for 30 "the dead mount to detach" not_mounted "$mp" || die "cannot detach $mp"
kill_job "$holder"
wait_for 30 "branch create snap2 to give up" pid_dead "$creator" || die "branch create still waits for a killed daemon"
wait "$creator" 2>/dev/null || true
ok "kill -9 during a barrier: the daemon ended"

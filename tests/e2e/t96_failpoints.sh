#!/usr/bin/env bash
# Crashes and failures at every named failpoint (util/failpoint.h), with
# acknowledged writes checked after each.
# For each of layer-upload-before, layer-upload-after,
# manifest-commit-before, manifest-commit-after and compact-commit-before:
# the daemon (1 MiB memtables, so that layers and merges come quickly) is
# armed to crash there on the Nth hit; a writer stores 1 MiB files one by
# one, each made durable with fsync, and notes each file whose fsync
# returned; the daemon must die at the point (exit status 86). After a
# remount every noted file is there with its content (sha256), fsck finds
# nothing damaged, and gc then removes whatever the crash left.
# Then failures instead of crashes: the first manifest commit fails with
# EIO after it landed (a lost answer) and an upload fails outright: the
# daemon goes on, recognises its own commit, retries the upload, and every
# file is there after a clean unmount.
# backends: file s3
set -euo pipefail
. "$(dirname "$0")/lib.sh"
e2e_setup failpoints
unset LAKEFS_REPO

url=$(repo_url repo)
common=memtable_size=1M,gc_interval=0
mp=$T/mnt
mkdir -p "$mp" "$T/data"
lakefs_init "$url"
n=0

# write_files COUNT: files of 1 MiB, each fsync'ed, until one fails; the
# acknowledged ones are listed in $T/acked ("NAME SHA256")
write_files() {
    local i f
    for i in $(seq 1 "$1"); do
        n=$((n + 1))
        f=f$n
        head -c 1048576 /dev/urandom >"$T/data/$f"
        dd if="$T/data/$f" of="$mp/branches/main/$f" bs=1M conv=fsync status=none 2>/dev/null || return 0
        echo "$f $(sha256sum <"$T/data/$f" | cut -c1-64)" >>"$T/acked"
    done
}

# check_acked: every acknowledged file reads back with its content
check_acked() {
    local f sum count=0
    while read -r f sum; do
        [ "$(sha256sum <"$mp/branches/main/$f" | cut -c1-64)" = "$sum" ] || die "$f lost or changed after $1"
        count=$((count + 1))
    done <"$T/acked"
    ok "all $count acknowledged files intact after $1"
}

for point in layer-upload-before layer-upload-after manifest-commit-before manifest-commit-after compact-commit-before; do
    LAKEFS_FAILPOINTS="$point=crash@3" lakefs_mount "$url" "$mp" -o "$common"
    pid=${DAEMON_PID[$mp]}
    write_files 40
    wait_for 60 "the daemon to crash at $point" pid_dead "$pid" || die "no crash at $point after 40 MiB"
    rc=0
    wait "$pid" || rc=$?
    [ "$rc" = 86 ] || die "daemon exited $rc, not at failpoint $point (86)"
    unset "DAEMON_PID[$mp]"
    fusermount3 -u -z "$mp" 2>/dev/null || umount -l "$mp" 2>/dev/null || true
    wait_for 30 "the dead mount to detach" not_mounted "$mp" || die "cannot detach $mp"
    lakefs_mount "$url" "$mp" -o "$common"
    check_acked "a crash at $point"
    lakefs_umount "$mp"
    "$LAKEFS" fsck --repo "$url" >"$T/fsck.out" 2>&1 || { cat "$T/fsck.out" >&2; die "fsck: damage after $point"; }
    "$LAKEFS" gc --repo "$url" >/dev/null 2>&1 || die "gc after $point failed"
    out=$("$LAKEFS" fsck --repo "$url") || die "fsck after gc failed"
    echo "$out" | grep -q ' 0 orphaned layers' || die "orphans left after $point and gc: $out"
done

# failures the daemon rides out: a lost commit answer, a failed upload
LAKEFS_FAILPOINTS="manifest-commit-after=error@3,layer-upload-before=error@4" lakefs_mount "$url" "$mp" -o "$common"
write_files 12
grep -q 'is our own commit, whose answer was lost' "$T"/logs/*daemon-mnt*.log ||
    die "the daemon did not recognise its own commit after a lost answer"
lakefs_umount "$mp"
lakefs_mount "$url" "$mp" -o "$common"
check_acked "a lost commit answer and a failed upload"
[ "$(wc -l <"$T/acked")" -ge 12 ] || die "writes failed while the daemon rode out the failures"
lakefs_umount "$mp"
"$LAKEFS" fsck --repo "$url" >/dev/null || die "fsck found damage after the failures"
ok "failpoints: every crash and failure left every acknowledged write"

#!/usr/bin/env bash
# `umount DIR && lakefs mount URL DIR` works every time (issue 15): umount
# returns while the daemon is still flushing what the branch holds in its
# memtable and journal; a mount of the same repository started at that
# moment waits for that daemon to finish (a log line says so) instead of
# refusing the branch as "already mounted".
# 20 rounds (5 on s3; 40 with --long; REMOUNT_ROUNDS=N): PostgreSQL on
# branches/main inserts a few MiB and stops (its shutdown checkpoint has
# them flushed), 24 MiB of random bytes are written into remount.dat beside
# them (left unflushed: the default 64M memtable), then plain umount(8) and
# at once lakefs mount of the same repository; the new mount must come up,
# its PostgreSQL must start and hold every row committed before,
# remount.dat must read back the same, and the old daemon must exit 0
# ("everything flushed"); the new daemon must have its disk cache (s3),
# which the old one held too. At least one round must have found the old
# daemon still flushing (else the test proves nothing; logged with the wait).
# A mount while a daemon really serves the branch is still refused, with
# the one-line message naming its pid.
# backends: file s3
set -euo pipefail
. "$(dirname "$0")/lib.sh"
e2e_setup remount
unset LAKEFS_REPO

if [ "${LAKEFS_TEST_LONG:-0}" = 1 ]; then rounds=40
elif [ "$LAKEFS_TEST_BACKEND" = s3 ]; then rounds=5
else rounds=20; fi
rounds=${REMOUNT_ROUNDS:-$rounds}
url=$(repo_url repo)
mp=$T/mnt main=$T/mnt/branches/main
opts=allow_other,default_permissions
mkdir -p "$mp"
lakefs_init "$url"
lakefs_mount "$url" "$mp" -o "$opts"
pg_initdb "$main"
pg_start "$main"
psql_at "$main" -c "CREATE TABLE t (round int, k int, pad text)" || die "create table failed"

waited=0
for r in $(seq 1 "$rounds"); do
    psql_at "$main" -c "INSERT INTO t SELECT $r, k, repeat(md5(k::text), 8) FROM generate_series(1, 10000) k" ||
        die "round $r: insert failed"
    pg_stop "$main"
    # the shutdown checkpoint had the daemon flush the rows (issue 15's base
    # states): 24 MiB more for the unmount to flush, written beside them
    dd if=/dev/urandom of="$main/remount.dat" bs=1M count=24 conv=fsync status=none || die "round $r: dd failed"
    sum=$(sha256sum <"$main/remount.dat")
    old=${DAEMON_PID[$mp]}
    umount "$mp" || die "round $r: umount $mp failed"
    unset "DAEMON_PID[$mp]"
    lakefs_mount "$url" "$mp" -o "$opts"
    pg_start "$main"
    got=$(psql_at "$main" -c "SELECT count(*) || '/' || count(DISTINCT round) FROM t") || die "round $r: count failed"
    [ "$got" = "$((r * 10000))/$r" ] || die "round $r: t has rows/rounds $got, want $((r * 10000))/$r"
    [ "$(sha256sum <"$main/remount.dat")" = "$sum" ] || die "round $r: remount.dat differs after the remount"
    wait_for 120 "the old daemon $old to exit" pid_dead "$old" || die "round $r: the old daemon did not exit"
    rc=0; wait "$old" || rc=$?
    [ "$rc" = 0 ] || die "round $r: the old daemon exited $rc"
    if grep -q "waiting for lakefs daemon pid $old to finish its unmount" "$T"/logs/*-daemon-mnt.log; then
        waited=$((waited + 1))
        log "round $r: $(grep -h "lakefs daemon pid $old finished its unmount" "$T"/logs/*-daemon-mnt.log ||
            die "round $r: waited for daemon $old, but no end of the wait logged")"
    fi
done
[ "$waited" -gt 0 ] || die "no round found the old daemon still flushing: nothing was tested"
! grep -h "without a disk cache" "$T"/logs/*-daemon-mnt.log || die "a new mount went without the disk cache the old daemon held"
ok "$rounds rounds of umount + immediate mount: all rows there, old daemons exited 0; $waited waited for the old daemon"

# a daemon that really serves the branch: a second mount of it is refused
mkdir -p "$T/mnt2"
expect_fail "mount while served" "$LAKEFS" mount "$url#main" "$T/mnt2" -f -o "$opts,cache_dir=$T/cache2"
msg_says "mount while served" "already mounted read-write" "pid ${DAEMON_PID[$mp]}" "unmount it first"
pg_stop "$main"
lakefs_umount "$mp"

#!/usr/bin/env bash
# Idle time-travel views are closed (fs_close_idle_views, -o view_idle):
# what a server on a view writes is held by the daemon (in memory, past
# memtable_size in layers in a scratch directory, store_spill), so a view
# nothing uses any more is closed and reopens, at the same point, when used.
# With view_idle=2s and memtable_size=1M on a repository mount:
# 0. the mount removes the overlay directory a daemon that is gone left
#    behind (STATE/.overlay.PID.N, a kill -9), and says so;
# 1. a server starting on main@POINT recovers with merges waiting for it
#    (the daemon logs when that begins and ends); left without queries for three idle
#    periods, keeps its view: nothing is closed and it still answers; a
#    table of 8 MiB it writes there (a read-write transaction) spills to layers in its overlay
#    directory, and reads back exactly;
# 2. once it is stopped, the daemon closes the view (its log says so, with
#    the layers spilled) and the overlay directory is gone;
# 3. PostgreSQL started on the view again recovers to the same point: the
#    rows of POINT, not main's later ones;
# 4. a file held open in the view keeps it for as long as it is open;
# 5. main, a branch, is never closed: its server answered throughout;
# 6. restore_command's copies (cp .lakefs-wal/SEG pg_wal/RECOVERYXLOG,
#    copy_file_range) are mapped onto the view's archive, not copied: every
#    archive segment cp'd into the view reads back exactly and nothing
#    spills (64 pages would per segment with memtable_size=1M); a copy
#    renamed to its segment's name still reads as it; a copy written to,
#    or cut short, takes its bytes first (the rest unchanged, the archive
#    untouched); a cp in a branch (copied by the kernel) is exact too; the
#    daemon counted the copy_file_range requests, the recovery's included.
# backends: file
set -euo pipefail
. "$(dirname "$0")/lib.sh"
e2e_setup view_idle
unset LAKEFS_REPO

url=$(repo_url repo)
mp=$T/mnt main=$T/mnt/branches/main
mkdir -p "$mp"
lakefs_init "$url"
# ---------------------------------------------------------------- 0
bash -c 'exit 0' & dead=$!
wait "$dead"
left=$T/state/.overlay.$dead.0
mkdir -p "$left/sub"
echo x >"$left/overlay-1-2.layer"
echo y >"$left/sub/z"
lakefs_mount "$url" "$mp" -o "allow_other,default_permissions,state_dir=$T/state,view_idle=2s,memtable_size=1M"
[ ! -e "$left" ] || die "the mount left $left, the overlay of a daemon that is gone"
cat "$T"/logs/*daemon-mnt*.log | grep -q "removed $left, the overlay of a time-travel view" ||
    die "the daemon did not say it removed $left"
ok "the mount removed $left, left by a daemon that is gone"
pg_initdb "$main"
pg_start "$main"
psql_at "$main" -c "CREATE TABLE t (k int)" -c CHECKPOINT >/dev/null
# a state of main for the view to start from (branch create flushes one),
# then the rows of the point in WAL after it
"$LAKEFS" branch create scratch --from main --repo "$url" >>"$(newlog branch)" 2>&1 || die "branch create scratch failed"
psql_at "$main" -c "SELECT pg_switch_wal()" -c "INSERT INTO t SELECT generate_series(1, 100)" >/dev/null
point=$(psql_at "$main" -c "SELECT pg_current_wal_insert_lsn()")
psql_at "$main" -c "INSERT INTO t SELECT generate_series(101, 200)" >/dev/null
name=main@${point/\//-}
v=$mp/branches/$name
closed() { cat "$T"/logs/*daemon-mnt*.log | grep -c "lakefs: view $name: unused for .* closed" || true; }
closed_at_least() { [ "$(closed)" -ge "$1" ]; }
rows() { psql_at "$1" -c "SELECT count(*) || '/' || max(k) FROM t"; }

# ---------------------------------------------------------------- 1
pg_start "$v"
[ "$(rows "$v")" = 100/100 ] || die "view $name: $(rows "$v"), want 100/100"
# the server's recovery made merges wait (store_yield_begin) from its start
# to the removal of recovery.signal, before it answered
for what in "a server starts on it and recovers" "its server's recovery is over after"; do
    cat "$T"/logs/*daemon-mnt*.log | grep -q "lakefs: view $name: $what" ||
        die "the daemon did not log '$what' for $name"
done
ok "merges yielded to the recovery on $name: $(cat "$T"/logs/*daemon-mnt*.log | grep -m1 "recovery is over")"
sleep 6                           # three idle periods with no query: the server's open files hold the view
[ "$(closed)" = 0 ] || die "the daemon closed $name under a running server"
[ "$(rows "$v")" = 100/100 ] || die "view $name after an idle spell: $(rows "$v")"
ok "a server idle on $name for three idle periods keeps its view"
# views default to read-only transactions; a server may still write (and recovery does)
psql_at "$v" -c "BEGIN READ WRITE; CREATE TABLE big AS SELECT g, repeat('x', 200) AS pad
                 FROM generate_series(1, 30000) g; COMMIT" -c CHECKPOINT >/dev/null
overlay=$(ls -d "$T"/state/.overlay.* 2>/dev/null)
[ "$(echo "$overlay" | wc -w)" = 1 ] || die "want one overlay directory in $T/state, found: ${overlay:-none}"
spilled=$(ls "$overlay" | grep -c '^overlay-.*\.layer$' || true)
[ "$spilled" -ge 2 ] || die "$overlay holds $spilled layers after 8 MiB written with memtable_size=1M"
[ "$(stat -c %a "$overlay")" = 700 ] || die "$overlay is mode $(stat -c %a "$overlay"), want 700"
got=$(psql_at "$v" -c "SELECT count(*) || '/' || sum(g) || '/' || sum(length(pad)) FROM big")
[ "$got" = "30000/450015000/6000000" ] || die "view $name: big holds $got, want 30000/450015000/6000000"
ok "8 MiB written on $name spilled to $spilled layers in $overlay, read back exactly"

# ---------------------------------------------------------------- 2
pg_stop "$v"
wait_for 30 "the daemon to close the unused view $name" closed_at_least 1 || die "$name was not closed once unused"
ok "the stopped view was closed: $(cat "$T"/logs/*daemon-mnt*.log | grep -m1 "lakefs: view $name: unused")"
line=$(cat "$T"/logs/*daemon-mnt*.log | grep -m1 "lakefs: $name closed, its changes")
n=$(echo "$line" | sed -n 's/.* \([0-9][0-9]*\) layers spilled to disk.*/\1/p')
[ -n "$n" ] && [ "$n" -ge "$spilled" ] || die "the view's close line does not count $spilled layers spilled: $line"
[ ! -e "$overlay" ] || die "$overlay is still there after the view closed"
ok "its overlay directory went with it: $line"

# ---------------------------------------------------------------- 3
pg_start "$v"
[ "$(rows "$v")" = 100/100 ] || die "view $name reopened: $(rows "$v"), want 100/100"
pg_stop "$v"
ok "PostgreSQL on $name again: the rows of $point"

# ---------------------------------------------------------------- 4
wait_for 30 "the daemon to close $name again" closed_at_least 2 || die "$name was not closed after its second use"
exec 7<"$v/PG_VERSION"
sleep 6                           # three idle periods with the file open
[ "$(closed)" = 2 ] || { exec 7<&-; die "the daemon closed $name while a file in it was open"; }
exec 7<&-
wait_for 30 "the daemon to close $name once the file is closed" closed_at_least 3 ||
    die "$name was not closed after its last file was"
ok "an open file kept $name; closed once the file was"

# ---------------------------------------------------------------- 5
[ "$(rows "$main")" = 200/200 ] || die "main: $(rows "$main"), want 200/200"
! cat "$T"/logs/*daemon-mnt*.log | grep -q "lakefs: view main: unused" || die "the daemon closed the branch main"
ok "main kept serving"

# ---------------------------------------------------------------- 6
segs=$(ls "$v/.lakefs-wal" | grep -v history)
[ -n "$segs" ] || die "$name's .lakefs-wal lists no segment"
n=0
for seg in $segs; do
    cp "$v/.lakefs-wal/$seg" "$v/copy.$seg" || die "cp of $seg in $name failed"
    cmp "$v/.lakefs-wal/$seg" "$v/copy.$seg" || die "the copy of $seg in $name differs from the archive's"
    n=$((n + 1))
done
overlay=$(ls -d "$T"/state/.overlay.* 2>/dev/null)
[ "$(echo "$overlay" | wc -w)" = 1 ] || die "want one overlay directory in $T/state, found: ${overlay:-none}"
spilled=$(ls "$overlay" | grep -c '^overlay-.*\.layer$' || true)
[ "$spilled" = 0 ] || die "$n segments cp'd into $name spilled $spilled layers: copied, not mapped"
seg=$(echo "$segs" | tail -1)
cp "$v/.lakefs-wal/$seg" "$T/archived"
mv "$v/copy.$seg" "$v/pg_wal/$seg"
cmp "$T/archived" "$v/pg_wal/$seg" || die "a copy of $seg renamed to its name reads differently"
printf lakefs | dd of="$v/pg_wal/$seg" bs=1 seek=100 conv=notrunc status=none
[ "$(cmp -l "$T/archived" "$v/pg_wal/$seg" | awk '$1 < 101 || $1 > 106' | wc -l)" = 0 ] ||
    die "a copy of $seg written at byte 100 differs elsewhere"
[ "$(dd if="$v/pg_wal/$seg" bs=1 skip=100 count=6 status=none)" = lakefs ] || die "a copy of $seg lost a write"
cmp "$T/archived" "$v/.lakefs-wal/$seg" || die "a write into a copy changed the archive's $seg"
seg1=$(echo "$segs" | head -1)
truncate -s 12345 "$v/copy.$seg1"
[ "$(stat -c %s "$v/copy.$seg1")" = 12345 ] || die "a copy of $seg1 cut to 12345 bytes has $(stat -c %s "$v/copy.$seg1")"
cmp -n 12345 "$v/.lakefs-wal/$seg1" "$v/copy.$seg1" || die "a copy of $seg1 cut short lost its first bytes"
cp "$main/.lakefs-wal/$seg1" "$main/copy.$seg1"
cmp "$main/.lakefs-wal/$seg1" "$main/copy.$seg1" || die "a cp of $seg1 in main differs from the archive's"
rm "$main/copy.$seg1"
ok "$n archive segments cp'd into $name mapped (no layer spilled), exact through a rename, a write and a cut; a cp in main exact"

pg_stop "$main"
lakefs_umount "$mp"
copies=$(cat "$T"/logs/*daemon-mnt*.log | sed -n 's/.*lakefs: fuse: copy_file_range \([0-9]*\) requests.*/\1/p')
# section 6's n and main's one, and at least one restore in each of the two recoveries
[ -n "$copies" ] && [ "$copies" -ge $((n + 3)) ] ||
    die "the daemon counted ${copies:-no} copy_file_range requests, want at least $((n + 3))"
ok "the daemon served $copies copy_file_range requests"

#!/usr/bin/env bash
# A crash at each store failpoint under PostgreSQL, then a remount: no
# acknowledged commit lost, fsck clean, time travel still exact (issue 6).
# PostgreSQL runs on branches/main, mounted with 1 MiB memtables (a layer
# every ~1500 commits, merges and manifest generations as often). For each
# of layer-upload-before, layer-upload-after, manifest-commit-before,
# manifest-commit-after and compact-commit-before in turn, the daemon is
# armed to crash at its Nth hit there (util/failpoint.h: the 3rd upload,
# the 6th manifest commit, the 2nd merge commit: a few thousand commits into
# the load), and tests/e2e/ackclient inserts rows one autocommit INSERT at
# a time, noting each id PostgreSQL acknowledged. Meanwhile, every 1200
# acknowledged inserts, the test records a point: a marker row K is
# committed, then one transaction takes a SHARE lock on ack (every insert
# into it in flight has committed, none can start) and reads, in one
# snapshot, count(*) and max(id) of ack, the list of markers and
# pg_current_wal_insert_lsn() L, then commits a write (so WAL up to L is
# flushed, made durable by the daemon); a point counts only if all that
# was acknowledged. A view at L must show exactly that state: every commit
# record before L and none after it.
# The daemon must die at the failpoint (exit status 86) with points
# recorded; the cluster's processes are killed, the dead mount detached.
# After a remount without failpoints PostgreSQL recovers: every
# acknowledged id is there with its payload md5(id), ids have no gaps,
# every recorded marker is there; for each point of the round PostgreSQL
# on the view branches/main@L shows exactly the recorded count, max and
# markers, all payloads right, standing at the point (not in recovery).
# Clean stop and unmount, then `lakefs fsck` finds nothing damaged. At the
# end, after all five crashes, the views of the first point of every round
# are exact still (inside the retention window).
# backends: file s3
set -euo pipefail
. "$(dirname "$0")/lib.sh"
e2e_setup pg_failpoints
unset LAKEFS_REPO

[ -x "$T/bin/ackclient" ] || die "tests/e2e/ackclient not built (make e2e)"
url=$(repo_url repo)
common=allow_other,default_permissions,memtable_size=1M,gc_interval=0,state_dir=$T/state
mp=$T/mnt main=$T/mnt/branches/main
mkdir -p "$mp"
acked=$T/acked points=$T/points
: >"$acked"
: >"$points"
SPACING=1200       # acknowledged inserts between two points
lakefs_init "$url"

lakefs_mount "$url" "$mp" -o "$common"
pg_initdb "$main"
pg_start "$main"
psql_at "$main" -c "CREATE TABLE ack (id bigint PRIMARY KEY, payload text NOT NULL) WITH (autovacuum_enabled = off)" \
    -c "CREATE TABLE m (k int PRIMARY KEY)" -c "CREATE TABLE fl (k int)" || die "creating the tables failed"
pg_stop "$main"
lakefs_umount "$mp"

acked_count() { grep -c '' "$acked" || true; }
# go_on TARGET DAEMON ACKCLIENT: TARGET acknowledged ids, or one of them died
go_on() { [ "$(acked_count)" -ge "$1" ] || pid_dead "$2" || pid_dead "$3"; }

# record_point K: commit marker K, then the state at an LSN (see above):
# prints "COUNT|MAX|MARKERS|LSN"; fails unless all of it was acknowledged
record_point() {
    psql_at "$main" <<EOF
INSERT INTO m VALUES ($1);
BEGIN;
LOCK TABLE ack IN SHARE MODE;
SELECT (SELECT count(*) FROM ack), (SELECT coalesce(max(id), 0) FROM ack),
       (SELECT count(*) || '/' || max(k) || '/' || md5(string_agg(k::text, ',' ORDER BY k)) FROM m),
       pg_current_wal_insert_lsn();
INSERT INTO fl VALUES ($1);
COMMIT;
EOF
}

# state DATA: "COUNT|MAX|MARKERS|BAD PAYLOADS|IN RECOVERY" on the server on DATA
state() {
    psql_at "$1" -c "SELECT (SELECT count(*) FROM ack), (SELECT coalesce(max(id), 0) FROM ack),
        (SELECT count(*) || '/' || max(k) || '/' || md5(string_agg(k::text, ',' ORDER BY k)) FROM m),
        (SELECT count(*) FROM ack WHERE payload <> md5(id::text)), pg_is_in_recovery()"
}

# check_view K: PostgreSQL on branches/main@LSN_K shows exactly point K
check_view() {
    local c mx mk lsn got v
    IFS='|' read -r _ c mx mk lsn < <(awk -F'|' -v k="$1" '$1 == k' "$points")
    [ -n "$lsn" ] || die "no point $1"
    v=$mp/branches/main@${lsn/\//-}
    pg_start "$v"
    got=$(state "$v") || die "view at $lsn: query failed"
    [ "$got" = "$c|$mx|$mk|0|f" ] ||
        die "view at $lsn (point $1): count|max|markers|bad|recovery $got, want $c|$mx|$mk|0|f"
    pg_stop "$v"
    ok "view main@$lsn: $c acked rows (max $mx), markers ${mk%/*} (count/max): exactly point $1"
}

# check_acked: every acknowledged id with its payload, no gaps, every recorded marker
check_acked() {
    local n missing got
    n=$(acked_count)
    missing=$(psql_at "$main" <<EOF
CREATE TEMP TABLE acked (id bigint);
\copy acked FROM '$acked'
SELECT count(*) FROM acked a
 WHERE NOT EXISTS (SELECT 1 FROM ack t WHERE t.id = a.id AND t.payload = md5(a.id::text));
EOF
) || die "query for acknowledged commits failed"
    [ "$missing" = 0 ] || die "$missing of $n acknowledged commits are missing after a crash at $1"
    got=$(psql_at "$main" -c "SELECT count(*) = max(id) FROM ack")
    [ "$got" = t ] || die "ack has gaps after a crash at $1"
    missing=$(awk -F'|' '{ print $1 }' "$points" | while read -r k; do
        [ "$(psql_at "$main" -c "SELECT count(*) FROM m WHERE k = $k")" = 1 ] || echo "$k"
    done)
    [ -z "$missing" ] || die "recorded markers missing after a crash at $1: $missing"
    ok "all $n acknowledged commits and $(grep -c '' "$points") recorded markers present after a crash at $1"
}

k=0
firsts=()
for spec in layer-upload-before=crash@3 layer-upload-after=crash@3 manifest-commit-before=crash@6 \
    manifest-commit-after=crash@6 compact-commit-before=crash@2; do
    fp=${spec%%=*}
    start=$SECONDS
    LAKEFS_FAILPOINTS=$spec lakefs_mount "$url" "$mp" -o "$common"
    dpid=${DAEMON_PID[$mp]}
    pg_start "$main"
    alog=$(newlog "ackclient-$fp")
    "$T/bin/ackclient" "$(pg_conninfo "$main")" "$acked" >"$alog" 2>&1 &
    apid=$!
    on_exit "kill_job $apid"
    mine=()
    while pid_alive "$dpid"; do
        wait_for 120 "$SPACING more acknowledged inserts" go_on $(($(acked_count) + SPACING)) "$dpid" "$apid" ||
            die "ackclient too slow"
        pid_alive "$dpid" || break
        pid_alive "$apid" || { cat "$alog" >&2; die "ackclient stopped while the daemon runs"; }
        k=$((k + 1))
        out=$(record_point "$k" 2>"$T/record.err") || break
        echo "$k|$out" >>"$points"
        mine+=("$k")
    done
    wait_for 120 "the daemon to crash at $fp" pid_dead "$dpid" ||
        die "no crash at $fp; the last point: $(tail -n 3 "$T/record.err" 2>/dev/null)"
    rc=0
    wait "$dpid" || rc=$?
    [ "$rc" = 86 ] || die "daemon exited $rc, not at failpoint $fp (86)"
    unset "DAEMON_PID[$mp]"
    pg_kill9 "$main"
    wait_for 60 "ackclient to exit" pid_dead "$apid" || die "ackclient still runs after the crash"
    wait "$apid" 2>/dev/null || true
    fusermount3 -u -z "$mp" 2>/dev/null || umount -l "$mp" 2>/dev/null || true
    wait_for 30 "the dead mount to detach" not_mounted "$mp" || die "cannot detach $mp"
    [ "${#mine[@]}" -ge 2 ] || die "the daemon crashed at $fp after ${#mine[@]} points, want 2 or more"
    log "crash at $fp (exit 86) after $(acked_count) acknowledged inserts, points ${mine[*]}"
    firsts+=("${mine[0]}")

    lakefs_mount "$url" "$mp" -o "$common"
    pg_start "$main"
    check_acked "$fp"
    for p in "${mine[@]}"; do check_view "$p"; done
    pg_stop "$main"
    lakefs_umount "$mp"
    "$LAKEFS" fsck --repo "$url" >"$T/fsck.out" 2>&1 || { cat "$T/fsck.out" >&2; die "fsck: damage after a crash at $fp"; }
    grep -q '; 0 damaged;' "$T/fsck.out" || { cat "$T/fsck.out" >&2; die "fsck output after $fp says damage"; }
    ok "$fp: crash, recovery, ${#mine[@]} exact views, fsck clean ($((SECONDS - start)) s)"
done

# the window: after all the crashes, the first point of each round is exact still
lakefs_mount "$url" "$mp" -o "$common"
for p in "${firsts[@]}"; do check_view "$p"; done
lakefs_umount "$mp"
ok "failpoints under PostgreSQL: every acknowledged commit kept, fsck clean, time travel exact"

#!/usr/bin/env bash
# Time travel (issue 5): every LSN and moment of a branch is a PGDATA.
# 1. A client commits 200 single-row transactions on main, recording after
#    each pg_current_wal_insert_lsn() and clock_timestamp(), with CHECKPOINTs
#    and pg_switch_wal() in between (the WAL archive must survive segment
#    recycling). For N random k (N=4, --long 20): PostgreSQL on the view
#    branches/main@LSN_k and on branches/main@TIME_k shows exactly k rows
#    (count and max), is not in recovery (it stands at the point), refuses
#    writes (default_transaction_read_only), and a branch created
#    `--at LSN_k` (and one `--at TIME_k`) shows k rows and then takes
#    writes. Done while main's server runs, and again after it stopped and
#    the repository was unmounted and mounted again. Views of points the
#    committed state already holds open without a checkpoint of main (the
#    daemon log counts them); a view at main's newest WAL asks for one.
# 2. The incident drill: a table loaded, the time noted, DROP TABLE, more
#    writes; `branch create --at` that time brings the table back with
#    every row, pg_amcheck --heapallindexed clean, the later table absent.
#    Branches --at-xid (a transaction's end) and --at-restore-point
#    (pg_create_restore_point) hold exactly what was committed by then.
# 3. Views never change the branch: the listing (names, sizes, content
#    hashes on file://) of branches/main/ is the same before and after
#    servers ran, and wrote, on dedicated mounts of main at an LSN and at a
#    time (`lakefs mount URL#main -o ro,lsn=|time=`).
# 4. The archive: .lakefs-wal is hidden from listings of the data
#    directory, read-only, and its copy of a segment finished by
#    pg_switch_wal() equals pg_wal's file up to the switch. A branch made
#    --at a point (timeline 2) has views of its own after its promotion and
#    a write; a point before it began is refused, naming where it began.
#    `lakefs lsn main --at TIME_k` lies between LSN_k and LSN_k+1; `lakefs
#    log main` shows PostgreSQL's latest checkpoint (pg_control_checkpoint())
#    and the branch point of a child.
# 5. Bad input: a view name that is no point, an LSN or time in the future,
#    a time before the first WAL, or (-o retention=1s) older than the
#    retention window: the view does not exist and the daemon log says why;
#    `branch create --at` with such targets fails with a one-line error and
#    creates nothing.
# backends: file s3
set -euo pipefail
. "$(dirname "$0")/lib.sh"
e2e_setup timetravel
unset LAKEFS_REPO

if [ "${LAKEFS_TEST_LONG:-0}" = 1 ]; then picks=20; else picks=4; fi
[ "$LAKEFS_TEST_BACKEND" = s3 ] && [ "${LAKEFS_TEST_LONG:-0}" != 1 ] && picks=3
url=$(repo_url repo)
common=allow_other,default_permissions,memtable_size=4M
mp=$T/mnt main=$T/mnt/branches/main
mkdir -p "$mp"
lakefs_init "$url"
lk=("$LAKEFS" branch --repo "$url")
before_wal=$(date -u +%Y-%m-%dT%H:%M:%S.%6NZ)

# main_listing: the objects of branch main (names, sizes; hashes on file://)
main_listing() {
    if [ "$LAKEFS_TEST_BACKEND" = s3 ]; then
        s3_listing "$S3_BUCKET" "${url#s3://"$S3_BUCKET"/}/branches/main/"
    else
        repo_listing "${url#file://}/branches/main"
    fi
}

# rows DATA: "count/max/in_recovery" of table t on the server on DATA
rows() { psql_at "$1" -c "SELECT count(*) || '/' || coalesce(max(k), 0) || '/' || pg_is_in_recovery() FROM t"; }

# point K FIELD: the LSN (2) or time (3) recorded after commit K
point() { awk -F'|' -v k="$1" -v f="$2" '$1 == k { print $f }' "$T/points"; }

# view_shows NAME K: PostgreSQL on branches/NAME shows exactly K rows, stands
# at the point (not in recovery), and refuses writes
view_shows() {
    local v=$mp/branches/$1 got
    pg_start "$v"
    got=$(rows "$v")
    [ "$got" = "$2/$2/false" ] || die "view $1: count/max/in_recovery $got, want $2/$2/false"
    ! psql_at "$v" -c "INSERT INTO t VALUES (-1)" 2>"$T/ro.err" || die "view $1 accepted a write"
    grep -q "read-only transaction" "$T/ro.err" || die "view $1: write refused for another reason: $(cat "$T/ro.err")"
    pg_stop "$v"
    ok "view $1: $2 rows"
}

# branch_at NAME K FIELD: branch NAME --at point K, shows K rows, takes a write
branch_at() {
    local target b=$mp/branches/$1 got
    target=$(point "$2" "$3")
    "${lk[@]}" create "$1" --from main --at "$target" >"$T/create.out" 2>&1 ||
        { cat "$T/create.out" >&2; die "branch create $1 --at $target failed"; }
    log "$(cat "$T/create.out")"
    if [ "$3" = 2 ]; then       # branch list shows the point, not the base state's LSN
        [ "$("${lk[@]}" list | awk -v b="$1" '$1 == b { print $4 }')" = "$target" ] ||
            die "branch list shows $1 at $("${lk[@]}" list | awk -v b="$1" '$1 == b { print $4 }'), not at $target"
    fi
    pg_start "$b"
    got=$(rows "$b")
    [ "$got" = "$2/$2/false" ] || die "branch $1 (--at $target): count/max/in_recovery $got, want $2/$2/false"
    psql_at "$b" -c "INSERT INTO t VALUES (100000 + $2)" || die "branch $1 does not take writes"
    [ "$(psql_at "$b" -c "SELECT count(*) FROM t")" = $(($2 + 1)) ] || die "branch $1 lost its write"
    pg_stop "$b"
    ok "branch $1 --at $target: $2 rows, then writable"
}

# check_points TAG LABEL: views at N random LSN_k and TIME_k, branches
# (named TAG...) at two of them
check_points() {
    local tag=$1 k ks
    ks=$(shuf -i 1-200 -n "$picks" | tr '\n' ' ')
    log "$2: checking k = $ks"
    for k in $ks; do
        view_shows "main@$(point "$k" 2 | tr / -)" "$k"
        view_shows "main@$(point "$k" 3)" "$k"
    done
    set -- $ks
    branch_at "${tag}lsn$1" "$1" 2
    branch_at "${tag}time$2" "$2" 3
}

# ------------------------------------------------------------------ 1
lakefs_mount "$url" "$mp" -o "$common,state_dir=$T/state"
pg_initdb "$main"
pg_start "$main"
psql_at "$main" -c "CREATE TABLE t (k int PRIMARY KEY)"
: >"$T/points"
points_load "$main" 200 25 40 "$T/points"

# the archive: hidden, read-only, and equal to pg_wal's copy of a switched segment
ls -a "$main" | grep -qx .lakefs-wal && die "the listing of main shows .lakefs-wal"
[ -d "$main/.lakefs-wal" ] || die "main has no .lakefs-wal directory"
psql_at "$main" -c "CREATE TABLE filler AS SELECT generate_series(1, 1000) AS x"   # WAL in the new segment
read -r seg off < <(psql_at "$main" -c "SELECT file_name, file_offset FROM pg_walfile_name_offset(pg_current_wal_insert_lsn())" | tr '|' ' ')
psql_at "$main" -c "SELECT pg_switch_wal()" >/dev/null
[ "$off" -gt 0 ] || die "the WAL insert position is at the start of $seg"
[ -f "$main/.lakefs-wal/$seg" ] || die ".lakefs-wal has no $seg"
[ "$(stat -c %s "$main/.lakefs-wal/$seg")" = $((16 << 20)) ] || die "archived $seg is not 16 MiB"
cmp -n "$off" "$main/.lakefs-wal/$seg" "$main/pg_wal/$seg" || die "archived $seg differs from pg_wal/$seg in its first $off bytes"
ok "archived $seg equals pg_wal's up to the switch ($off bytes)"
! as_pg touch "$main/.lakefs-wal/x" 2>/dev/null || die "postgres could create a file in .lakefs-wal"
! cp /etc/hostname "$main/.lakefs-wal/x" 2>/dev/null || die "root could create a file in .lakefs-wal"
! as_pg sh -c "echo x >>'$main/.lakefs-wal/$seg'" 2>/dev/null || die "an archived segment was writable"

# 2: the incident drill
psql_at "$main" -c "CREATE TABLE drill AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 20000) g" \
    -c "CREATE INDEX ON drill (v)" || die "loading drill failed"
drill_time=$(psql_at "$main" -c "SELECT $POINT_STAMP")
psql_at "$main" -c "DROP TABLE drill" -c "CREATE TABLE after_drop AS SELECT generate_series(1, 1000) AS x" \
    -c "CHECKPOINT" || die "DROP TABLE drill failed"
"${lk[@]}" create restored --from main --at "$drill_time" >"$T/create.out" 2>&1 ||
    { cat "$T/create.out" >&2; die "branch create restored --at $drill_time failed"; }
pg_start "$mp/branches/restored"
[ "$(psql_at "$mp/branches/restored" -c "SELECT count(*) FROM drill")" = 20000 ] || die "restored: drill is not back whole"
[ "$(psql_at "$mp/branches/restored" -c "SELECT to_regclass('after_drop') IS NULL")" = t ] || die "restored shows a later table"
pg_amcheck_clean "$mp/branches/restored"
pg_stop "$mp/branches/restored"
ok "incident drill: the dropped table is back with its 20000 rows at $drill_time"

# points named by a record: a transaction (--at-xid), a restore point
psql_at "$main" -c "CREATE TABLE xt AS SELECT 1 AS v" || die "CREATE TABLE xt failed"
xid=$(psql_at "$main" -c "SELECT xmin FROM xt")
psql_at "$main" -c "INSERT INTO xt VALUES (2)" -c "SELECT pg_create_restore_point('before_cleanup')" \
    -c "DELETE FROM xt" >/dev/null || die "writes after xt failed"
# no CHECKPOINT: the records are in WAL no flush has stored yet, which the
# lookup must reach (it has the daemon checkpoint the branch first)
"${lk[@]}" create atxid --from main --at-xid "$xid" >/dev/null || die "branch create --at-xid $xid failed"
"${lk[@]}" create atrp --from main --at-restore-point before_cleanup >/dev/null ||
    die "branch create --at-restore-point before_cleanup failed"
for b in atxid:1 atrp:2; do
    pg_start "$mp/branches/${b%:*}"
    [ "$(psql_at "$mp/branches/${b%:*}" -c "SELECT count(*) FROM xt")" = "${b#*:}" ] ||
        die "branch ${b%:*}: xt has $(psql_at "$mp/branches/${b%:*}" -c "SELECT count(*) FROM xt") rows, want ${b#*:}"
    pg_stop "$mp/branches/${b%:*}"
done
expect_fail "--at-restore-point unknown" "${lk[@]}" create nope --from main --at-restore-point no_such_point
expect_fail "--at-xid unknown" "${lk[@]}" create nope --from main --at-xid 4000000000
expect_fail "--at and --at-xid" "${lk[@]}" create nope --from main --at 0/1 --at-xid "$xid"
ok "branches at a transaction's end (--at-xid $xid) and at a restore point hold what was committed by then"

# a point the committed state already holds (`branch create --at` above made
# main's daemon checkpoint past it) opens without another checkpoint of
# main; a point at main's newest WAL still asks for one and sees its writes
daemon_log=$(ls "$T"/logs/*-daemon-mnt.log | head -n 1)
checkpoints() { grep -c "control: branch main checkpoint" "$daemon_log" || true; }
n0=$(checkpoints)
view_shows "main@$(point 1 2 | tr / -)" 1
view_shows "main@$(point 2 3)" 2
[ "$(checkpoints)" = "$n0" ] || die "views of points the committed state holds made main's daemon checkpoint"
psql_at "$main" -c "INSERT INTO t VALUES (201)" || die "INSERT INTO t failed"
now=$(psql_at "$main" -c "SELECT pg_current_wal_insert_lsn()")
view_shows "main@$(tr / - <<<"$now")" 201
[ "$(checkpoints)" -gt "$n0" ] || die "a view at main's newest WAL did not make main's daemon checkpoint"
psql_at "$main" -c "DELETE FROM t WHERE k = 201" || die "DELETE FROM t failed"
ok "views of old points open from the committed state; a view of the newest WAL checkpoints main first"

# lakefs lsn: a moment's LSN lies between the positions around its commits;
# lakefs log: PostgreSQL's latest checkpoint and the branch point of restored
for k in 10 120 199; do
    l=$("$LAKEFS" lsn main --at "$(point "$k" 3)" --repo "$url") || die "lakefs lsn main --at $(point "$k" 3) failed"
    [ "$(psql_at "$main" -c "SELECT '$(point "$k" 2)'::pg_lsn <= '$l' AND '$l'::pg_lsn < '$(point $((k + 1)) 2)'")" = t ] ||
        die "lakefs lsn at TIME_$k says $l, not between LSN_$k $(point "$k" 2) and LSN_$((k + 1)) $(point $((k + 1)) 2)"
done
ckpt=$(psql_at "$main" -c "SELECT checkpoint_lsn FROM pg_control_checkpoint()")
"$LAKEFS" log main --repo "$url" >"$T/log.out" || die "lakefs log main failed"
grep -Eq "^[0-9TZ:-]+ +$ckpt +(shutdown )?checkpoint \(redo " "$T/log.out" || { cat "$T/log.out" >&2; die "lakefs log does not show the checkpoint at $ckpt"; }
grep -q " branch restored created here" "$T/log.out" || { cat "$T/log.out" >&2; die "lakefs log does not show restored's branch point"; }
[ "$(grep -c checkpoint "$T/log.out")" -ge 8 ] || { cat "$T/log.out" >&2; die "lakefs log shows fewer than the 8 CHECKPOINTs run"; }
ok "lakefs lsn resolves moments between the right commits; lakefs log shows checkpoints and branch points"

check_points a "running main"

# a branch at a point has a timeline of its own, and views of it
at=$mp/branches/tl2
"${lk[@]}" create tl2 --from main --at "$(point 150 2)" >/dev/null || die "branch create tl2 failed"
pg_start "$at"
psql_at "$at" -c "INSERT INTO t VALUES (150001)" -c "CHECKPOINT" || die "write on tl2 failed"
[ "$(psql_at "$at" -c "SELECT substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)")" != 00000001 ] ||
    die "tl2 did not move to a new timeline"
tl2_lsn=$(psql_at "$at" -c "SELECT pg_current_wal_insert_lsn()")
psql_at "$at" -c "INSERT INTO t VALUES (150002)" -c "SELECT pg_switch_wal()" >/dev/null
pg_stop "$at"
pg_start "$mp/branches/tl2@${tl2_lsn/\//-}"
[ "$(rows "$mp/branches/tl2@${tl2_lsn/\//-}")" = "151/150001/false" ] || die "view of tl2 after its write: $(rows "$mp/branches/tl2@${tl2_lsn/\//-}")"
pg_stop "$mp/branches/tl2@${tl2_lsn/\//-}"
! stat "$mp/branches/tl2@$(point 60 2 | tr / -)" >/dev/null 2>&1 || die "tl2 shows a point before it began"
grep -q "cannot serve tl2@$(point 60 2 | tr / -): .*before the oldest point of branch 'tl2'.* LSN $(point 150 2)" "$T"/logs/*daemon-mnt*.log ||
    die "the daemon did not say that tl2 began at LSN $(point 150 2)"
ok "views of tl2 (timeline 2): after its own write; points before it began are refused, naming where it began"

# 5: bad input
bad_view() { # NAME WORDS: the view does not exist, the log says WORDS
    ! stat "$mp/branches/$1" >/dev/null 2>&1 || die "view $1 exists"
    grep -q "cannot serve $1: .*$2" "$T"/logs/*daemon-mnt*.log || die "the daemon did not log why $1 cannot be served ($2)"
}
bad_view main@yesterday "is not a point in time"
bad_view main@FFFFFFFF-0 "in the future"
bad_view main@2099-01-01T00:00:00Z "in the future"
bad_view main@2001-01-01T00:00:00Z "oldest point reachable"
bad_view "main@$before_wal" "oldest point reachable"
"${lk[@]}" list | awk '{ print $1 }' >"$T/list.before"
for target in yesterday FFFFFFFF/0 2099-01-01T00:00:00Z 2001-01-01T00:00:00Z "$before_wal"; do
    expect_fail "branch create --at $target" "${lk[@]}" create nope --from main --at "$target"
done
"${lk[@]}" list | awk '{ print $1 }' | diff - "$T/list.before" >/dev/null || die "a failed branch create --at changed the branch list"
ok "bad targets: refused with a reason, nothing created"

# ------------------------------------------------------------------ 1 again, 3
pg_stop "$main"
lakefs_umount "$mp"
lakefs_mount "$url" "$mp" -o "$common,state_dir=$T/state"
check_points b "main stopped and remounted"
lakefs_umount "$mp"

# dedicated mounts of one point (-o lsn=, -o time=) never write the branch
main_listing >"$T/main.before"
tt=$T/tt
mkdir -p "$tt"
for spec in "lsn=$(point 77 2)" "time=$(point 123 3)"; do
    want=77
    [[ $spec == time=* ]] && want=123
    lakefs_mount "$url#main" "$tt" -o "$common,state_dir=$T/state-tt,ro,$spec"
    [ -z "$(ls "$tt/.lakefs-wal" | head -1)" ] && die "the dedicated mount's .lakefs-wal is empty"
    pg_start "$tt"
    [ "$(rows "$tt")" = "$want/$want/false" ] || die "mount -o $spec: $(rows "$tt"), want $want rows"
    psql_at "$tt" -c "SET default_transaction_read_only = off" -c "INSERT INTO t VALUES (-7)" -c "CHECKPOINT" ||
        die "the server on the dedicated mount could not write into its overlay"
    pg_stop "$tt"
    lakefs_umount "$tt"
    ok "mount $url#main -o $spec: $want rows; a write into the view stayed there"
done
main_listing >"$T/main.after"
diff "$T/main.before" "$T/main.after" >&2 || die "branch main changed while servers ran on views of it"
ok "branch main is byte-identical after servers ran (and wrote) on its views"
expect_fail "mount -o lsn= without a branch" "$LAKEFS" mount "$url" "$tt" -o "$common,lsn=0/1"
expect_fail "mount -o lsn=junk" "$LAKEFS" mount "$url#main" "$tt" -o "$common,lsn=junk"
expect_fail "mount -o lsn= and time=" "$LAKEFS" mount "$url#main" "$tt" -o "$common,lsn=0/1,time=$(point 1 3)"

# the retention window (-o retention): older points are refused
lakefs_mount "$url" "$mp" -o "$common,state_dir=$T/state,retention=1s"
t0=$(point 1 3)
bad_view "main@$t0" "older than the retention window"
lakefs_umount "$mp"
ok "a point older than the retention window is refused"

#!/usr/bin/env bash
# Branches (issue 4): `lakefs branch create|list|show|delete|rename`.
# 1. On main, mounted and running PostgreSQL in the middle of a pgbench run,
#    `lakefs branch create dev --from main` (run inside the mount: the
#    repository comes from /proc/self/mountinfo; the running daemon makes a
#    checkpoint through its control socket). dev appears under the same
#    mount's branches/ (created after the mount), with inode numbers of its
#    own and without main's postmaster.pid, and PostgreSQL starts on it as
#    is, on another port, while main's server runs from the same daemon: it
#    recovers, pg_amcheck --heapallindexed is clean, the pgbench invariant
#    holds. Writes on dev are invisible on main and the other way round (row
#    counts both ways), also after unmount + mount.  The branch point's
#    LSN that `branch list` and `branch show` print for dev lies between
#    pg_current_wal_lsn() on main just before and just after the create
#    (rounded up to the 8 KiB WAL page: WAL reaches the files in pages).
# 2. A branch of a branch of a branch: deleting the middle one is refused;
#    deleting the leaf frees exactly the unique bytes `branch list` showed.
#    b1, made from main after PostgreSQL stopped there (and main was
#    unmounted and mounted again), is at the end of the WAL page holding
#    main's shutdown checkpoint (pg_controldata), past dev's LSN; b2 and b3
#    show b1's LSN.
# 3. Bad names, a duplicate, an unknown parent, no repository, --at junk, delete
#    of a mounted branch or one with children, rename onto an existing name:
#    one-line error, non-zero exit, repository listing unchanged.
# 4. delete --force of a branch a repository mount serves: the daemon
#    flushes and lets go of it, the branch leaves branches/, its open
#    directory fails with ESTALE, main goes on being served.
# The time `branch create` takes is logged (not asserted).
# backends: file s3
set -euo pipefail
. "$(dirname "$0")/lib.sh"
e2e_setup branch
unset LAKEFS_REPO

if [ "$LAKEFS_TEST_BACKEND" = s3 ]; then
    scale=${PGBENCH_SCALE:-3} duration=${PGBENCH_TIME:-25}
else
    scale=${PGBENCH_SCALE:-5} duration=${PGBENCH_TIME:-30}
fi
url=$(repo_url repo)
common=allow_other,default_permissions
mkdir -p "$T/mnt" "$T/dev" "$T/leaf"
lakefs_init "$url"

lk=("$LAKEFS" branch --repo "$url")

# listing: every object of the repository with its size (and, on file://,
# its content hash), to compare states
listing() {
    if [ "$LAKEFS_TEST_BACKEND" = s3 ]; then
        s3_listing "$S3_BUCKET" "${url#s3://"$S3_BUCKET"/}/"
    else
        repo_listing "${url#file://}"
    fi
}

# layer_bytes: total size of the layer objects in the repository
layer_bytes() {
    if [ "$LAKEFS_TEST_BACKEND" = s3 ]; then
        s3_list "$S3_BUCKET" "${url#s3://"$S3_BUCKET"/}/branches/" | awk '$1 ~ /\/layers\// { n += $2 } END { print n + 0 }'
    else
        find "${url#file://}/branches" -path '*/layers/*' -type f -printf '%s\n' | awk '{ n += $1 } END { print n + 0 }'
    fi
}

# unique_of NAME: the UNIQUE_BYTES column of NAME in `branch list`
unique_of() { "${lk[@]}" list | awk -v b="$1" 'NR > 1 && $1 == b { print $NF }'; }

# lsn_of NAME: the LSN column of NAME in `branch list` (a valid LSN, or die)
lsn_of() {
    local l
    "${lk[@]}" list | awk 'NR == 1 && $4 != "LSN" { exit 1 }' || die "branch list: the 4th column is not LSN"
    l=$("${lk[@]}" list | awk -v b="$1" 'NR > 1 && $1 == b { print $4 }')
    [[ $l =~ ^[0-9A-F]{1,8}/[0-9A-F]{1,8}$ ]] || die "branch list shows no LSN for $1: '$l'"
    echo "$l"
}

# lsn_true DATA EXPR: PostgreSQL on DATA says the pg_lsn expression EXPR holds
lsn_true() { [ "$(psql_at "$1" -c "SELECT $2")" = t ]; }

# lsn_num LSN: X/Y as a number (for when no PostgreSQL runs)
lsn_num() { echo $(((16#${1%/*} << 32) + 16#${1#*/})); }

# count DATA SQL: one number from PostgreSQL on DATA
count() { psql_at "$1" -c "$2"; }

# ------------------------------------------------------------------ 1
mp=$T/mnt main=$T/mnt/branches/main dev=$T/mnt/branches/dev
lakefs_mount "$url" "$mp" -o "$common,state_dir=$T/state-main"
pg_initdb "$main"
pg_start "$main"
pgbench -i -s "$scale" -q -h "$PGSOCK" -p "${PG_PORT[$main]}" -U postgres postgres \
    >"$(newlog pgbench-init)" 2>&1 || die "pgbench -i -s $scale failed"
runlog=$(newlog pgbench-main)
pgbench -T "$duration" -c 4 -j 2 -h "$PGSOCK" -p "${PG_PORT[$main]}" -U postgres postgres >"$runlog" 2>&1 &
bench=$!
on_exit "kill_job $bench"
sleep $((duration / 3))
pid_alive "$bench" || die "pgbench on main ended before the branch was made"
lsn_before=$(psql_at "$main" -c "SELECT pg_current_wal_lsn()")
t0=$(date +%s%N)
out=$(cd "$main" && "$LAKEFS" branch create dev --from main) || die "branch create dev --from main failed"
t1=$(date +%s%N)
lsn_after=$(psql_at "$main" -c "SELECT pg_current_wal_lsn()")
pid_alive "$bench" || die "pgbench on main ended before the branch was made"
log "branch create dev --from main (during pgbench, via the control socket): $(((t1 - t0) / 1000000)) ms wall: $out"
[[ $out == *"checkpoint of the running daemon"* ]] || die "branch create did not use the daemon's checkpoint: $out"
grep -q "checkpoint at seq" "$T"/logs/*daemon-mnt*.log || die "the daemon logged no checkpoint"
wait "$bench" || { tail -n 20 "$runlog" >&2; die "pgbench on main failed"; }
grep -q '^number of failed transactions: 0 ' "$runlog" || { cat "$runlog" >&2; die "pgbench on main had failed transactions"; }
ok "pgbench on main: $(grep -m1 '^number of transactions actually processed' "$runlog")"
dev_lsn=$(lsn_of dev)
[[ $out == *", LSN $dev_lsn "* ]] || die "branch create did not print dev's LSN $dev_lsn: $out"
lsn_true "$main" "'$lsn_before'::pg_lsn <= '$dev_lsn'::pg_lsn AND '$dev_lsn'::pg_lsn <=
    '$lsn_after'::pg_lsn + (8192 - ('$lsn_after'::pg_lsn - '0/0'::pg_lsn) % 8192) % 8192" ||
    die "dev's branch point LSN $dev_lsn is not between main's WAL positions $lsn_before (before) and $lsn_after (after branch create)"
"${lk[@]}" show dev >"$T/logs/show-dev.txt" || die "branch show dev failed"
grep -q "^point_lsn: *$dev_lsn " "$T/logs/show-dev.txt" || { cat "$T/logs/show-dev.txt" >&2; die "branch show dev does not print point_lsn $dev_lsn"; }
[ "$("${lk[@]}" list | awk '$1 == "main" { print $4 }')" = - ] || die "branch list shows an LSN for the root branch main"
ok "dev's branch point LSN $dev_lsn lies between main's $lsn_before and $lsn_after (pg_current_wal_lsn around branch create)"

# dev, created after the mount, shows up in it
ls "$mp/branches" | grep -qx dev || die "branches/ of the running mount does not list dev"
[ -d "$dev/base" ] || die "branches/dev does not show main's PGDATA"
# main's server ran at the branch point; its lock file is main's only
[ -e "$main/postmaster.pid" ] || die "main's postmaster.pid is gone"
[ ! -e "$dev/postmaster.pid" ] || die "dev shows main's stale postmaster.pid"
grep -q "branch dev: removed 2 PostgreSQL lock files" "$T"/logs/*daemon-mnt*.log ||
    die "the daemon did not log dropping dev's postmaster.pid and postmaster.opts"
[ "$(stat -c %i "$dev")" != "$(stat -c %i "$main")" ] || die "dev and main share the root's inode number"
[ "$(stat -c %i "$dev/base")" != "$(stat -c %i "$main/base")" ] || die "dev and main share inode numbers"
[ "$(stat -c %d "$dev")" = "$(stat -c %d "$main")" ] || die "dev and main are on different devices"
pg_start "$dev"
grep -hq "database system was interrupted\|redo starts at\|database system was not properly shut down" "$T"/logs/*postgres-"${PG_PORT[$dev]}"*.log ||
    log "note: no crash-recovery message in dev's server log"
pgbench_invariant "$dev"
pg_amcheck_clean "$dev"
pgbench_invariant "$main"

# writes on each side, invisible on the other
hist_main=$(count "$main" "SELECT count(*) FROM pgbench_history")
hist_dev=$(count "$dev" "SELECT count(*) FROM pgbench_history")
count "$main" "CREATE TABLE side AS SELECT g FROM generate_series(1, 100) g" >/dev/null
count "$dev" "CREATE TABLE side AS SELECT g FROM generate_series(1, 7) g" >/dev/null
count "$dev" "CREATE TABLE dev_only AS SELECT g FROM generate_series(1, 5000) g" >/dev/null
count "$main" "INSERT INTO pgbench_history SELECT 1, 1, 1, 0, now() FROM generate_series(1, 11)" >/dev/null
count "$dev" "INSERT INTO pgbench_history SELECT 1, 1, 1, 0, now() FROM generate_series(1, 23)" >/dev/null
check_isolation() {
    [ "$(count "$main" "SELECT count(*) FROM side")" = 100 ] || die "$1: main's table side is not main's"
    [ "$(count "$dev" "SELECT count(*) FROM side")" = 7 ] || die "$1: dev's table side is not dev's"
    [ "$(count "$dev" "SELECT count(*) FROM dev_only")" = 5000 ] || die "$1: dev lost dev_only"
    [ -z "$(count "$main" "SELECT to_regclass('dev_only')")" ] || die "$1: dev's table dev_only is visible on main"
    [ "$(count "$main" "SELECT count(*) FROM pgbench_history")" = $((hist_main + 11)) ] || die "$1: main's history count is off"
    [ "$(count "$dev" "SELECT count(*) FROM pgbench_history")" = $((hist_dev + 23)) ] || die "$1: dev's history count is off"
    ok "$1: writes on dev invisible on main and the other way round (side: 100 vs 7 rows, history +11 vs +23)"
}
check_isolation "both running"
pg_stop "$dev"
pg_stop "$main"
lakefs_umount "$mp"
! ls "$T/state-main"/control.* >/dev/null 2>&1 || die "the control socket was not removed at unmount"
lakefs_mount "$url" "$mp" -o "$common,state_dir=$T/state-main"
[ "$(ls "$mp/branches" | tr '\n' ' ')" = "dev main " ] || die "branches/ after remount: $(ls "$mp/branches")"
pg_start "$main"
pg_start "$dev"
check_isolation "after unmount + mount"
pgbench_invariant "$main"
pgbench_invariant "$dev"
pg_amcheck_clean "$dev"
pg_stop "$dev"
pg_stop "$main"

# ------------------------------------------------------------------ 2
# (main stays mounted, PostgreSQL stopped: branching goes through its daemon)
for pair in b1:main b2:b1 b3:b2; do
    t0=$(date +%s%N)
    out=$("${lk[@]}" create "${pair%%:*}" --from "${pair#*:}") || die "branch create $pair failed"
    t1=$(date +%s%N)
    log "branch create ${pair%%:*} --from ${pair#*:}: $(((t1 - t0) / 1000000)) ms wall: $out"
done
ckpt=$(pg_controldata "$main" | sed -n 's/^Latest checkpoint location: *//p')
[[ $ckpt == */* ]] || die "pg_controldata shows no checkpoint location for main"
lakefs_umount "$mp"
"${lk[@]}" list >"$T/logs/list-1.txt"
for b in b1 b2 b3; do grep -q "^$b " "$T/logs/list-1.txt" || die "branch list does not show $b"; done
awk '$1 == "b3" && $2 == "b2"' "$T/logs/list-1.txt" | grep -q . || die "branch list: b3's parent is not b2"
# b1 is main after its clean shutdown: the WAL ends with the shutdown
# checkpoint record, in the last page written
b1_lsn=$(lsn_of b1)
(($(lsn_num "$ckpt") < $(lsn_num "$b1_lsn") && $(lsn_num "$b1_lsn") <= $(lsn_num "$ckpt") + 16384 &&
  $(lsn_num "$dev_lsn") < $(lsn_num "$b1_lsn"))) ||
    die "b1's LSN $b1_lsn is not just past main's shutdown checkpoint at $ckpt (and past dev's $dev_lsn)"
[ "$(lsn_of b2)" = "$b1_lsn" ] && [ "$(lsn_of b3)" = "$b1_lsn" ] || die "b2 and b3 do not show b1's LSN $b1_lsn"
ok "b1's LSN $b1_lsn is at main's shutdown checkpoint ($ckpt); b2 and b3 inherit it"
before=$(listing)
expect_fail "delete the middle branch" "${lk[@]}" delete b2
msg_says "delete the middle branch" "b2" "child" "b3"
[ "$(listing)" = "$before" ] || die "a refused delete changed the repository"
lakefs_mount "$url#b3" "$T/leaf" -o "$common,state_dir=$T/state-leaf"
[ -d "$T/leaf/base" ] || die "b3 does not show main's PGDATA"
head -c $((8 << 20)) /dev/urandom >"$T/leaf/leaf-data"
sync "$T/leaf/leaf-data"
lakefs_umount "$T/leaf"
"${lk[@]}" list >"$T/logs/list-2.txt"
unique=$(unique_of b3)
[ "${unique:-0}" -ge $((8 << 20)) ] || { cat "$T/logs/list-2.txt" >&2; die "b3's unique bytes $unique < 8 MiB written on it"; }
[ "$(unique_of b2)" = 0 ] || die "b2 has unique bytes although nothing was written on it"
"${lk[@]}" show b3 >"$T/logs/show-b3.txt" || die "branch show b3 failed"
grep -q "^parent: *b2" "$T/logs/show-b3.txt" || die "branch show b3 does not name its parent"
bytes0=$(layer_bytes)
"${lk[@]}" delete b3 >>"$(newlog branch-delete)" || die "branch delete b3 failed"
bytes1=$(layer_bytes)
[ $((bytes0 - bytes1)) = "$unique" ] ||
    die "deleting b3 freed $((bytes0 - bytes1)) bytes of layers, branch list said $unique were unique to it"
! "${lk[@]}" list | grep -q '^b3 ' || die "branch list still shows b3"
ok "deleting the leaf b3 freed its $unique unique bytes of layers"
"${lk[@]}" delete b2 >/dev/null || die "deleting b2 (no children left) failed"
"${lk[@]}" rename b1 b1-renamed >/dev/null || die "branch rename b1 b1-renamed failed"
"${lk[@]}" list | grep -q '^b1-renamed ' && ! "${lk[@]}" list | grep -q '^b1 ' || die "branch list after rename is wrong"
lakefs_mount "$url#b1-renamed" "$T/leaf" -o "$common,state_dir=$T/state-leaf"
[ -d "$T/leaf/base" ] || die "the renamed branch lost its data"
lakefs_umount "$T/leaf"
"${lk[@]}" delete b1-renamed >/dev/null || die "deleting b1-renamed failed"
ok "branch of a branch of a branch; middle delete refused; rename"

# ------------------------------------------------------------------ 3
before=$(listing)
same_repo() {
    local now
    now=$(listing)
    [ "$now" = "$before" ] || { diff <(echo "$before") <(echo "$now") >&2; die "$1: repository changed"; }
}
for bad in "" ".hidden" "-x" "a@b" "a/b" "a b" "$(printf 'x%.0s' {1..64})" "é"; do
    expect_fail "bad name '$bad'" "${lk[@]}" create "$bad" --from main
    if [ "$bad" = -x ]; then msg_says "bad name '$bad'" "'-x'" "cannot start with '-'"
    else msg_says "bad name '$bad'" "invalid branch name"; fi
done
expect_fail "bad parent name" "${lk[@]}" create ok --from "a@b"
expect_fail "duplicate" "${lk[@]}" create dev --from main
msg_says "duplicate" "dev" "already exists"
expect_fail "unknown parent" "${lk[@]}" create x --from nosuch
msg_says "unknown parent" "nosuch"
expect_fail "no --from" "${lk[@]}" create x
msg_says "no --from" "--from"
expect_fail "--at junk" "${lk[@]}" create x --from main --at junk
msg_says "--at junk" "not a point in time"
expect_fail "no repository" env -u LAKEFS_REPO bash -c "cd / && exec '$LAKEFS' branch list"
msg_says "no repository" "no repository: give --repo URL, set LAKEFS_REPO, or run inside a lakefs mount"
LAKEFS_REPO=$url "$LAKEFS" branch list | grep -q '^dev ' || die "LAKEFS_REPO is not used"
expect_fail "delete unknown" "${lk[@]}" delete nosuch
msg_says "delete unknown" "nosuch"
expect_fail "delete with children" "${lk[@]}" delete main
msg_says "delete with children" "child" "dev"
expect_fail "rename onto an existing branch" "${lk[@]}" rename dev main
msg_says "rename onto an existing branch" "already exists"
expect_fail "rename unknown" "${lk[@]}" rename nosuch other
expect_fail "unknown subcommand" "${lk[@]}" frobnicate
same_repo "bad input"
dev=$T/dev
lakefs_mount "$url#dev" "$dev" -o "$common,state_dir=$T/state-dev"
before=$(listing)
expect_fail "delete a mounted branch" "${lk[@]}" delete dev
msg_says "delete a mounted branch" "mounted read-write" "unmount"
expect_fail "rename a mounted branch" "${lk[@]}" rename dev dev2
same_repo "mounted branch"
lakefs_umount "$dev"
ok "bad input: clear one-line errors, repository unchanged"

# ------------------------------------------------------------------ 4
lakefs_mount "$url" "$mp" -o "$common,state_dir=$T/state-main"
"${lk[@]}" create scratch --from main >/dev/null || die "branch create scratch failed"
echo "scratch data" >"$mp/branches/scratch/note" || die "cannot write on branch scratch through the repository mount"
exec {held}<"$mp/branches/scratch"     # an open directory on the branch
expect_fail "delete a served branch" "${lk[@]}" delete scratch
msg_says "delete a served branch" "mounted read-write" "unmount"
out=$("${lk[@]}" delete scratch --force) || die "branch delete scratch --force failed"
log "$out"
grep -q "control: branch scratch released" "$T"/logs/*daemon-mnt*.log || die "the daemon did not log the release"
! "${lk[@]}" list | grep -q '^scratch ' || die "branch list still shows scratch"
! ls "$mp/branches" | grep -qx scratch || die "branches/ still lists scratch"
[ ! -e "$mp/branches/scratch" ] || die "branches/scratch still resolves"
err=$(ls /proc/self/fd/$held/ 2>&1) && die "the released branch's open directory still lists: $err"
[[ $err == *"Stale file handle"* ]] || die "the released branch's open directory: '$err', want ESTALE"
exec {held}<&-
[ -d "$main/base" ] && [ "$(cat "$mp/branches/dev/side-note" 2>/dev/null || echo none)" = none ] ||
    die "main or dev not served after the release"
lakefs_umount "$mp"
# two daemons sharing one state directory (as the default one is shared by
# every mount of a repository on a machine): one control socket each
lakefs_mount "$url" "$mp" -o "$common,state_dir=$T/state-main"
lakefs_mount "$url#dev" "$dev" -o "$common,state_dir=$T/state-main"
[ "$(ls "$T/state-main"/control.* | wc -l)" = 2 ] || die "two daemons, not two control sockets: $(ls "$T/state-main")"
"${lk[@]}" create from-main --from main | grep -q "checkpoint of the running daemon" || die "branch create --from main (served) failed"
"${lk[@]}" create from-dev --from dev | grep -q "checkpoint of the running daemon" || die "branch create --from dev (served by the second daemon) failed"
lakefs_umount "$dev"
lakefs_umount "$mp"
"${lk[@]}" delete from-main >/dev/null && "${lk[@]}" delete from-dev >/dev/null || die "deleting from-main, from-dev failed"
ok "delete --force of a served branch: released by the daemon, gone from branches/, ESTALE on its files; two daemons on one state dir"

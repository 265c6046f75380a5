#!/usr/bin/env bash
# Trimming the WAL archive to the retention window (fs/pg/pg_archive.h,
# pg_target_horizon): the daemon serving a branch deletes, at each gc run,
# the archived WAL segments that end before the redo point of the oldest
# state a view within the window can start from.
# 1. Retention 40 s (lakefs config set), a mount running gc every second,
#    PostgreSQL with 1 MiB WAL segments (initdb --wal-segsize=1): rows
#    committed one by one with CHECKPOINTs and pg_switch_wal() in between,
#    LSN recorded after each, while the daemon trims: its log says so and
#    the first segments are gone from .lakefs-wal, while the segment holding
#    the redo point of PostgreSQL's latest checkpoint is there.
# 2. Time travel within the window stays exact: views at the newest
#    points show exactly the rows committed by then.
# 3. A point whose WAL was trimmed is refused even with a longer window
#    (retention set to 1 h afterwards): `branch create --at` fails with one
#    line naming the oldest point reachable, and creates nothing; so does
#    `lakefs export --at` it, which commits nothing; a point after it works.
# 4. fsck is clean, and after a remount PostgreSQL recovers and has every
#    row (amcheck, checksums).
# The mounts keep 1 MiB of decompressed blocks in memory (block_cache=1M,
# 16 blocks): every read past them evicts, and all of the above holds.
# backends: file
set -euo pipefail
. "$(dirname "$0")/lib.sh"
e2e_setup wal_trim
unset LAKEFS_REPO

url=$(repo_url repo)
mp=$T/mnt main=$T/mnt/branches/main
common=allow_other,default_permissions,memtable_size=1M,block_cache=1M,state_dir=$T/state
mkdir -p "$mp"
lakefs_init "$url"
"$LAKEFS" config set retention=40s --repo "$url" >>"$(newlog config)" 2>&1 || die "config set retention=40s failed"
lk=("$LAKEFS" branch --repo "$url")

# rows DATA: "count/max" of table t on the server on DATA
rows() { psql_at "$1" -c "SELECT count(*) || '/' || coalesce(max(k), 0) FROM t"; }
# commit FROM TO: rows FROM..TO one by one, "K|LSN" after each into $T/points
commit() {
    local k
    for k in $(seq "$1" "$2"); do
        echo "INSERT INTO t VALUES ($k);"
        echo "SELECT $k, pg_current_wal_insert_lsn();"
        [ $((k % 10)) = 0 ] && echo "CHECKPOINT;"
        [ $((k % 5)) = 0 ] && echo "SELECT 'switch', pg_switch_wal();"
    done >"$T/load.sql"
    psql_at "$main" -f "$T/load.sql" | grep -E '^[0-9]+\|' >>"$T/points" || die "committing rows $1..$2 failed"
}
point() { awk -F'|' -v k="$1" '$1 == k { print $2 }' "$T/points"; }
trimmed() { daemon_log | grep -q "branch main: WAL archive trimmed"; }
daemon_log() { cat "$T"/logs/*daemon-mnt*.log; }
first_segment() { ls "$main/.lakefs-wal" | grep -v history | LC_ALL=C sort | sed -n 1p; }   # sed reads it all: no SIGPIPE under pipefail

# ---------------------------------------------------------------- 1
lakefs_mount "$url" "$mp" -o "$common,gc_interval=1s"
pg_prepare_dir "$main"
as_pg initdb --data-checksums --auth=trust -U postgres -E UTF8 --locale=C --wal-segsize=1 -D "$main" \
    >>"$(newlog initdb)" 2>&1 || die "initdb --wal-segsize=1 failed"
pg_start "$main"
psql_at "$main" -c "CREATE TABLE t (k int PRIMARY KEY)"
commit 1 20
first=$(first_segment)
[ -n "$first" ] || die ".lakefs-wal holds no segment"
k=20
# go on committing until the daemon has trimmed (40 s of window, then a gc
# run) past the segment of row 3, which part 3 asks for: the first trim's
# window may begin just before it, rows 1..20 being committed within a second
old_seg=$(psql_at "$main" -c "SELECT pg_walfile_name('$(point 3)')")
deadline=$((SECONDS + 180))
while ! trimmed || [[ ! "$(first_segment)" > "$old_seg" ]]; do
    commit $((k + 1)) $((k + 10))
    k=$((k + 10))
    [ "$SECONDS" -lt "$deadline" ] || die "WAL not trimmed past $old_seg (row 3) after $k commits in 180 s"
done
ok "the daemon trimmed main's WAL archive: $(daemon_log | grep -m1 'WAL archive trimmed' | sed 's/.*trimmed: //')"
now_first=$(first_segment)
[[ "$now_first" > "$first" ]] || die ".lakefs-wal still begins with $now_first (was $first)"
[ ! -e "$main/.lakefs-wal/$first" ] || die "$first is still in .lakefs-wal"
redo_seg=$(psql_at "$main" -c "SELECT pg_walfile_name(redo_lsn) FROM pg_control_checkpoint()")
[ -f "$main/.lakefs-wal/$redo_seg" ] || die "the segment of the latest checkpoint's redo point, $redo_seg, is gone"
ok ".lakefs-wal begins at $now_first (was $first); $redo_seg (latest redo point) is there"

# ---------------------------------------------------------------- 2
commit $((k + 1)) $((k + 10))
k=$((k + 10))
for j in $((k - 7)) $k; do
    v=$mp/branches/main@$(point "$j" | tr / -)
    pg_start "$v"
    got=$(rows "$v")
    [ "$got" = "$j/$j" ] || die "view at LSN $(point "$j"): count/max $got, want $j/$j"
    pg_stop "$v"
    ok "view main@$(point "$j"): exactly $j rows"
done

# ---------------------------------------------------------------- 3
"$LAKEFS" config set retention=1h --repo "$url" >>"$(newlog config)" 2>&1 || die "config set retention=1h failed"
old=$(point 3)
expect_fail "branch create --at a trimmed point" "${lk[@]}" create old --from main --at "$old"
msg_says "branch create --at a trimmed point" "oldest point reachable"
! "${lk[@]}" list | awk '{ print $1 }' | grep -qx old || die "branch old was created"
expect_fail "export --at a trimmed point" "$LAKEFS" export main --at "$old" --repo "$url" --table public.t \
    --to "file://$T/lake"
msg_says "export --at a trimmed point" "export: --at $old" "oldest point reachable"
[ ! -e "$T/lake/public.t/_delta_log" ] || die "an export of a trimmed point committed"
"${lk[@]}" create recent --from main --at "$(point $((k - 3)))" >>"$(newlog create)" 2>&1 ||
    die "branch create --at a recent point failed"
pg_start "$mp/branches/recent"
[ "$(rows "$mp/branches/recent")" = "$((k - 3))/$((k - 3))" ] || die "branch recent: $(rows "$mp/branches/recent")"
pg_stop "$mp/branches/recent"
ok "branch recent --at a point within the window: exactly $((k - 3)) rows"

# ---------------------------------------------------------------- 4
pg_stop "$main"
lakefs_umount "$mp"
"$LAKEFS" fsck "$url" >"$T/fsck.out" 2>&1 || { cat "$T/fsck.out" >&2; die "fsck found damage"; }
ok "fsck: $(tail -n 1 "$T/fsck.out")"
lakefs_mount "$url" "$mp" -o "$common,gc_interval=0"
pg_start "$main"
[ "$(rows "$main")" = "$k/$k" ] || die "main after remount: $(rows "$main"), want $k/$k"
pg_amcheck_clean "$main"
pg_stop "$main"
pg_checksums_clean "$main"
lakefs_umount "$mp"
ok "main after remount: $k rows, amcheck and checksums clean"

#!/usr/bin/env bash
# PostgreSQL's WAL stored once (issue 17): a segment file of pg_wal/ that
# PostgreSQL writes is mapped onto the WAL archive (fs/fs_impl.h,
# fs_attr.wal_tli): its pages are the archive's pages, not a second copy.
# 1. With memtable_size=512M (nothing flushed meanwhile), 40 MiB of WAL
#    that changes no relation (pg_logical_emit_message) grows the branch's
#    memtables (`lakefs stats main`: memtable_bytes) by less than 1.3x the
#    WAL written (stored twice, as before, it is 2x) and by at least 0.9x
#    (the measure sees the WAL at all).
# 2. Every segment file in pg_wal/ reads the same bytes as its copy in
#    .lakefs-wal up to the WAL insert position, and so after a remount
#    (read from layers) and after crash recovery: PostgreSQL stopped with
#    -m immediate recovers through the segment files (including ones its
#    checkpoints recycled) and every committed row is there (amcheck).
# 3. A mapped segment file keeps its bytes when something other than
#    PostgreSQL's WAL writer changes it (the server stopped): the newest
#    truncated to 100000 bytes (the prefix stays), the one before renamed
#    to NAME.partial (as PostgreSQL does at a promotion: the whole file
#    stays); a remount reads both as before.
# backends: file
set -euo pipefail
. "$(dirname "$0")/lib.sh"
e2e_setup wal_once
unset LAKEFS_REPO

url=$(repo_url repo)
mp=$T/mnt main=$T/mnt/branches/main
opts=allow_other,default_permissions,memtable_size=512M,state_dir=$T/state
mkdir -p "$mp"
lakefs_init "$url"
lakefs_mount "$url" "$mp" -o "$opts"
pg_initdb "$main"
pg_start "$main"
psql_at "$main" -c "CREATE TABLE t (k int PRIMARY KEY, v text)" || die "create table failed"
psql_at "$main" -c "INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 1000) g" || die "insert failed"

stat_of() { "$LAKEFS" stats main --repo "$url" | awk -v k="$1" '$1 == k { print $2 }'; }

# ---------------------------------------------------------------- 1
flushes_before=$(stat_of flushes)
psql_at "$main" -c "CHECKPOINT" || die "checkpoint failed"
# the checkpoint's base state is committed by a flush (after the write-back
# barrier): wait for it, then measure from a memtable that only the load
# below fills
flushed() { [ "$(stat_of flushes)" -gt "$flushes_before" ] && [ "$(stat_of memtable_bytes)" -lt $((4 << 20)) ]; }
wait_for 60 "the checkpoint's flush" flushed ||
    die "no flush after the checkpoint, or memtables still hold $(stat_of memtable_bytes) bytes"
flushes0=$(stat_of flushes) mem0=$(stat_of memtable_bytes)
lsn0=$(psql_at "$main" -c "SELECT pg_current_wal_insert_lsn()")
for i in $(seq 1 40); do echo "SELECT pg_logical_emit_message(true, 'lakefs', repeat('x', 1048576));"; done |
    psql_at "$main" >/dev/null || die "emitting WAL failed"
wal=$(psql_at "$main" -c "SELECT pg_current_wal_insert_lsn() - '$lsn0'::pg_lsn")
wal=${wal%.*}
mem1=$(stat_of memtable_bytes) flushes1=$(stat_of flushes)
[ "$flushes1" = "$flushes0" ] || die "a flush ran during the measure ($flushes0 -> $flushes1 flushes): memtable growth not comparable"
grown=$((mem1 - mem0))
log "WAL written: $wal bytes; memtables grew by $grown bytes ($mem0 -> $mem1)"
[ "$grown" -lt $((wal * 13 / 10)) ] ||
    die "memtables grew by $grown bytes for $wal bytes of WAL: the WAL is stored more than once"
[ "$grown" -ge $((wal * 9 / 10)) ] || die "memtables grew by $grown bytes for $wal bytes of WAL: the measure missed the WAL"
ok "WAL stored once: memtables grew by $grown bytes for $wal bytes of WAL"

# ---------------------------------------------------------------- 2
# segments_match WHEN: each segment file in pg_wal/ up to the position
# PostgreSQL has written and flushed equals its archive copy (the ones
# after it: recycled, or not written yet)
segments_match() {
    local at seg_now upto n=0 f name
    at=$(psql_at "$main" -c "SELECT file_name || ' ' || file_offset FROM pg_walfile_name_offset(pg_current_wal_flush_lsn())")
    seg_now=${at% *} upto=${at#* }
    for f in "$main"/pg_wal/*; do
        name=$(basename "$f")
        [[ "$name" =~ ^[0-9A-F]{24}$ ]] || continue
        [[ "$name" > "$seg_now" ]] && continue
        if [ "$name" = "$seg_now" ]; then
            cmp -n "$upto" "$f" "$main/.lakefs-wal/$name" || die "pg_wal/$name differs from its archive copy before $upto"
        else
            cmp "$f" "$main/.lakefs-wal/$name" || die "pg_wal/$name differs from its archive copy"
        fi
        n=$((n + 1))
    done
    [ "$n" -ge 1 ] || die "no segment compared"
    ok "$1: $n segment files of pg_wal/ read as their archive copies (up to $seg_now + $upto)"
}
segments_match "after the load"
rows() { psql_at "$main" -c "SELECT count(*) || '/' || sum(k) FROM t"; }
want=$(rows)
pg_stop "$main"
lakefs_umount "$mp"
lakefs_mount "$url" "$mp" -o "$opts"
pg_start "$main"
segments_match "after a remount"
psql_at "$main" -c "INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1001, 2000) g" || die "insert failed"
psql_at "$main" -c "CHECKPOINT" || die "checkpoint failed"   # recycles segments before its redo
for i in $(seq 1 24); do echo "SELECT pg_logical_emit_message(true, 'lakefs', repeat('x', 1048576));"; done |
    psql_at "$main" >/dev/null || die "emitting WAL failed"
psql_at "$main" -c "INSERT INTO t SELECT g, md5(g::text) FROM generate_series(2001, 3000) g" || die "insert failed"
want=$(rows)
kill -QUIT "${PG_POSTMASTER[$main]}"   # immediate shutdown: no checkpoint, recovery at the next start
wait_for 60 "PostgreSQL to quit" pid_dead "${PG_POSTMASTER[$main]}" || die "PostgreSQL did not quit"
unset "PG_POSTMASTER[$main]"
pg_start "$main"
grep -q "redo done" "$T"/logs/*postgres-*.log || die "PostgreSQL did not recover after the immediate shutdown"
got=$(rows)
[ "$got" = "$want" ] || die "after crash recovery t has $got rows/sum, committed $want"
pg_amcheck_clean "$main"
segments_match "after crash recovery"

# ---------------------------------------------------------------- 3
for i in $(seq 1 20); do echo "SELECT pg_logical_emit_message(true, 'lakefs', repeat('x', 1048576));"; done |
    psql_at "$main" >/dev/null || die "emitting WAL failed"
name=$(psql_at "$main" -c "SELECT pg_walfile_name(pg_current_wal_flush_lsn())")
prev=$(psql_at "$main" -c "SELECT pg_walfile_name(pg_current_wal_flush_lsn() - 16 * 1024 * 1024)")
kill -QUIT "${PG_POSTMASTER[$main]}"   # no shutdown checkpoint: both segments stay
wait_for 60 "PostgreSQL to quit" pid_dead "${PG_POSTMASTER[$main]}" || die "PostgreSQL did not quit"
unset "PG_POSTMASTER[$main]"
[ -f "$main/pg_wal/$prev" ] || die "segment $prev is not in pg_wal/"
cp "$main/pg_wal/$name" "$T/seg.before"
truncate -s 100000 "$main/pg_wal/$name" || die "truncate of pg_wal/$name failed"
[ "$(stat -c %s "$main/pg_wal/$name")" = 100000 ] || die "pg_wal/$name is not 100000 bytes after truncate"
cmp -n 100000 "$main/pg_wal/$name" "$T/seg.before" || die "pg_wal/$name lost its bytes when truncated"
cp "$main/pg_wal/$prev" "$T/prev.before"
mv "$main/pg_wal/$prev" "$main/pg_wal/$prev.partial" || die "rename of pg_wal/$prev failed"
cmp "$main/pg_wal/$prev.partial" "$T/prev.before" || die "pg_wal/$prev lost its bytes when renamed to $prev.partial"
lakefs_umount "$mp"
lakefs_mount "$url" "$mp" -o "$opts"
cmp -n 100000 "$main/pg_wal/$name" "$T/seg.before" || die "pg_wal/$name lost its bytes after a remount"
cmp "$main/pg_wal/$prev.partial" "$T/prev.before" || die "pg_wal/$prev.partial lost its bytes after a remount"
ok "a truncated and a renamed segment file keep their bytes, also after a remount"
lakefs_umount "$mp"

#!/usr/bin/env bash
# Time travel on a quiet database (issue 15): every point since initdb is a
# PGDATA, without any unmount, flush or restart in between.
# With the default memtable (64M, never filled here), main gets initdb, a
# server, a table and 60 single-row commits (a CHECKPOINT after every 15th,
# pg_switch_wal() after every 20th), pg_current_wal_insert_lsn() and
# clock_timestamp() recorded after each, and right after the server
# started (point 0, before the table exists). While main's server keeps
# running, PostgreSQL on branches/main@LSN_k and branches/main@TIME_k shows
# exactly k rows and stands at the point, for k = 0 (no table yet), the
# first commits and points on both sides of the checkpoints and switches
# (every k with --long). Without base states made at PostgreSQL's
# checkpoints, none of these views exists: the branch's only committed
# states are the empty root and the one the view's request makes.
# backends: file s3
set -euo pipefail
. "$(dirname "$0")/lib.sh"
e2e_setup quiet_points
unset LAKEFS_REPO

url=$(repo_url repo)
mp=$T/mnt main=$T/mnt/branches/main
mkdir -p "$mp"
lakefs_init "$url"
lakefs_mount "$url" "$mp" -o "allow_other,default_permissions,state_dir=$T/state"
pg_initdb "$main"
pg_start "$main"

psql_at "$main" -c "SELECT 0, pg_current_wal_insert_lsn(), $POINT_STAMP" >"$T/points" || die "recording point 0 failed"
psql_at "$main" -c "CREATE TABLE t (k int PRIMARY KEY)" || die "create table failed"
points_load "$main" 60 15 20 "$T/points"

point() { awk -F'|' -v k="$1" -v f="$2" '$1 == k { print $f }' "$T/points"; }

# view_shows NAME K: the server on branches/NAME shows exactly K rows (no
# table t at all for 0) and stands at the point, not in recovery
view_shows() {
    local v=$mp/branches/$1 got want
    [ -d "$v" ] || die "view $1 does not exist: $(grep -F "${1#main@}" "$T"/logs/*daemon-mnt*.log | tail -n 1)"
    pg_start "$v"
    if [ "$2" = 0 ]; then
        got=$(psql_at "$v" -c "SELECT to_regclass('t') IS NULL, pg_is_in_recovery()")
        want="t|f"
    else
        got=$(psql_at "$v" -c "SELECT count(*) || '/' || max(k), pg_is_in_recovery() FROM t")
        want="$2/$2|f"
    fi
    pg_stop "$v"
    [ "$got" = "$want" ] || die "view $1: got $got, want $want"
    ok "view $1: $2 rows"
}

if [ "${LAKEFS_TEST_LONG:-0}" = 1 ]; then
    ks=$(seq 0 60)
elif [ "$LAKEFS_TEST_BACKEND" = s3 ]; then
    ks="0 1 16 41 60"
else
    ks="0 1 2 15 16 21 45 60"
fi
for k in $ks; do
    view_shows "main@$(point "$k" 2 | tr / -)" "$k"
    view_shows "main@$(point "$k" 3)" "$k"
done

psql_at "$main" -c "SELECT count(*) FROM t" | grep -qx 60 || die "main lost rows"
pg_stop "$main"
lakefs_umount "$mp"

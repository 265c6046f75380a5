#!/usr/bin/env bash
# lakefs export (issue 7) through --dsn: pgbench tables and a table with
# every mapped type (tests/lake/alltypes.sql: NULLs, empty strings, extremes,
# non-ASCII text and names, long values) on a server running on a lakefs
# mount, exported as Delta Lake tables at a point; DuckDB (@duckdb/node-api,
# extension auto-install off) reads them through tests/lake/check_delta.mjs,
# which replays _delta_log itself, and must return exactly the rows
# PostgreSQL returned at that point (captured on the quiet server just
# before and after the export, which must agree; the commit's txn version
# lies between the LSNs read then).  Then the same points through
# time-travel views: `lakefs export --at LSN` and `--at TIME` start
# PostgreSQL on branches/main@POINT themselves (while main's server keeps
# writing) and DuckDB returns exactly the rows of those points.
# Re-exporting the same point is a no-op, and so is re-exporting after a
# CHECKPOINT, which moves the LSN on without a transaction; after more
# writes (pgbench, updates, deletes) a re-export is version 1,
# equal to the new rows, while version 0 still reads as before.  The
# exports cut pgbench_accounts into several data files (--file-size 256K),
# each with its own stats; a column of a type without a mapping (point) is
# exported as text with a warning.  Bad input: an unknown table, a target
# that holds objects but no Delta log, a missing --dsn, a point in the
# future, a --dsn server of another branch or of a view, a table whose rows fail half
# way (after some of its files were stored: they are deleted): one-line
# errors, nothing committed.
# On the s3 backend the repository and the Delta tables are in the bucket
# (put-if-absent is S3's conditional PUT); the tables are mirrored locally
# for DuckDB.
# backends: file s3
set -euo pipefail
. "$(dirname "$0")/lib.sh"
e2e_setup export

duckdb_node

url=$(repo_url repo)
mp=$T/mnt main=$T/mnt/branches/main lake=$T/lake
mkdir -p "$mp"
lakefs_init "$url"
lakefs_mount "$url" "$mp" -o "allow_other,default_permissions,memtable_size=4M,state_dir=$T/state"
pg_initdb "$main"
pg_start "$main"
psql_at "$main" -f "$LAKEFS_TOP/tests/lake/alltypes.sql" >/dev/null || die "alltypes.sql failed"
pgbench -q -i -s 2 -h "$PGSOCK" -p "${PG_PORT[$main]}" -U postgres postgres >"$(newlog pgbench-init)" 2>&1 ||
    die "pgbench -i failed"
dsn=$(pg_conninfo "$main")
tables=(public.alltypes public.unrepresentable public.empty public.pgbench_accounts public.pgbench_branches
        public.pgbench_tellers public.pgbench_history)
targs=()
for t in "${tables[@]}"; do targs+=(--table "$t"); done

# expect_rows TABLE OUT: the column names, then per row COL::text and an
# alternative form per column (float bits, bytea hex, days and microseconds
# since 1970; char(n) keeps its padding, as PostgreSQL returns it), with the
# settings the export uses for text
expect_rows() {
    local table=$1 out=$2 cols
    cols=$(psql_at "$main" -c "SELECT string_agg(format('%s, %s',
              CASE WHEN atttypid = 'bpchar'::regtype THEN format('CASE WHEN %1\$I IS NOT NULL THEN concat(%1\$I) END', attname)
                   ELSE format('%I::text', attname) END,
              CASE format_type(atttypid, NULL)
                WHEN 'real' THEN format('encode(float4send(%I), ''hex'')', attname)
                WHEN 'double precision' THEN format('encode(float8send(%I), ''hex'')', attname)
                WHEN 'bytea' THEN format('encode(%I, ''hex'')', attname)
                WHEN 'date' THEN format('CASE WHEN isfinite(%1\$I) THEN (%1\$I - date ''1970-01-01'')::text END', attname)
                WHEN 'timestamp without time zone' THEN
                    format('CASE WHEN isfinite(%1\$I) THEN (extract(epoch from %1\$I) * 1000000)::numeric(40,0)::text END', attname)
                WHEN 'timestamp with time zone' THEN
                    format('CASE WHEN isfinite(%1\$I) THEN (extract(epoch from %1\$I) * 1000000)::numeric(40,0)::text END', attname)
                ELSE 'NULL' END), ', ' ORDER BY attnum), json_agg(attname ORDER BY attnum)
            FROM pg_attribute WHERE attrelid = '$table'::regclass AND attnum > 0 AND NOT attisdropped")
    { echo "${cols##*|}"
      psql_at "$main" -c "SET DateStyle = ISO" -c "SET IntervalStyle = postgres" -c "SET TimeZone = 'UTC'" \
          -c "SET extra_float_digits = 3" -c "SELECT json_build_array(${cols%|*}) FROM $table"; } >"$out"
}
lsn_now() { psql_at "$main" -c "SELECT (pg_current_wal_insert_lsn() - '0/0')::numeric"; }
# capture TAG: expected rows of every table in $T/TAG.TABLE
capture() { local t; for t in "${tables[@]}"; do expect_rows "$t" "$T/$1.$t"; done; }
# check TAG [VERSION]: DuckDB reads every table (at VERSION) as captured in TAG
check() {
    local t lg
    for t in "${tables[@]}"; do
        lg=$(newlog "check-$1-$t")
        node "$LAKEFS_TOP/tests/lake/check_delta.mjs" "$DUCKDB_NODE_DIR" "$lake/$t" "$T/$1.$t" ${2:+"$2"} >"$lg" 2>&1 ||
            { cat "$lg" >&2; die "$t${2:+ version $2}: DuckDB does not read what PostgreSQL returned ($1)"; }
        log "  $t: $(tail -n 1 "$lg")"
    done
}
# lake_url: where $lake's exports go: the directory, or on the s3 backend a
# prefix in the bucket that sync_lake mirrors into the directory
lake_url() {
    case $LAKEFS_TEST_BACKEND in
    s3) echo "s3://$S3_BUCKET/$E2E_NAME-$$-$(basename "$lake")" ;;
    *) echo "file://$lake" ;;
    esac
}
sync_lake() {
    [ "$LAKEFS_TEST_BACKEND" = s3 ] || return 0
    local prefix key size f
    prefix="$E2E_NAME-$$-$(basename "$lake")/"
    mkdir -p "$lake"
    s3_list "$S3_BUCKET" "$prefix" >"$T/s3keys"
    while read -r key size; do
        f=$lake/${key#"$prefix"}
        [ -e "$f" ] && continue   # objects are immutable
        mkdir -p "$(dirname "$f")"
        s3_curl GET "$S3_BUCKET/$key" -o "$f" || die "cannot fetch s3://$S3_BUCKET/$key"
    done <"$T/s3keys"
}
# txn_version TABLE N: the txn version in commit N of TABLE
txn_version() { txn_version_of "$lake/$1" "$2"; }
txn_version_of() {
    sed -n 's/.*{"txn":{"appId":"[^"]*","version":\([0-9]*\),.*/\1/p' "$1/_delta_log/$(printf '%020d' "$2").json"
}
# export_all LOG: lakefs export of every table to $lake
export_all() {
    "$LAKEFS" export main "${targs[@]}" --to "$(lake_url)" --dsn "$dsn" --row-group-size 64K --file-size 256K \
        >"$1" 2>"$1.err" ||
        { cat "$1" "$1.err" >&2; die "lakefs export failed"; }
    sync_lake
    sed 's/^/    /' "$1" "$1.err" >&2
}

# ------------------------------------------------------------------ version 0
capture a
lsn0=$(lsn_now)
point_a=$(psql_at "$main" -c "SELECT pg_current_wal_insert_lsn()")
export_all "$T/export0"
lsn1=$(lsn_now)
capture a2
for t in "${tables[@]}"; do
    cmp -s "$T/a.$t" "$T/a2.$t" || die "$t changed during the export on a quiet server"
    v=$(txn_version "$t" 0)
    [ -n "$v" ] && [ "$v" -ge "$lsn0" ] && [ "$v" -le "$lsn1" ] ||
        die "$t: txn version '$v' is not the point of the export (LSN $lsn0..$lsn1)"
done
grep -q 'warning: "public"."unrepresentable" column "d" holds infinity' "$T/export0.err" ||
    die "no warning for the infinite date"
grep -q 'column "nfree" (numeric): numeric without a precision' "$T/export0.err" ||
    die "no warning for the unconstrained numeric"
grep -q 'column "pt" (point): type without a Parquet mapping is exported as string' "$T/export0.err" ||
    die "no warning for the point column (a type without a mapping)"
check a
accounts_files=$(sed -n 's/.* \([0-9]*\) files, \([0-9]*\) row groups, 200000 rows.*/\1 \2/p' \
    "$(ls "$T"/logs/*check-a-public.pgbench_accounts.log | tail -n 1)")
[ "${accounts_files% *}" -ge 2 ] && [ "${accounts_files#* }" -gt "${accounts_files% *}" ] ||
    die "pgbench_accounts (200000 rows, --row-group-size 64K, --file-size 256K) was not written as several files of several row groups ($accounts_files)"
grep -q "^public.pgbench_accounts: version 0, 200000 rows, ${accounts_files% *} files" "$T/export0" ||
    die "the export's summary does not name the files DuckDB read"
grep -q '^peak memory: [0-9]* MiB resident$' "$T/export0" || die "the export did not print its peak memory"
ok "version 0 of ${#tables[@]} tables: DuckDB returns exactly PostgreSQL's rows"
[ "$(grep -c . "$lake/public.pgbench_accounts/_delta_log/00000000000000000000.json")" -ge 5 ] ||
    die "commit 0 of pgbench_accounts lacks actions"

# ------------------------------------------------------------------ no transaction since: nothing to do
# The LSN of a live server moves on without transactions (bgwriter's
# standby snapshots, hint bits); a CHECKPOINT makes sure it does here.
psql_at "$main" -c "CHECKPOINT" >/dev/null || die "CHECKPOINT failed"
lsn2=$(lsn_now)
[ "$lsn2" -gt "$lsn1" ] || die "the LSN did not move on at a CHECKPOINT ($lsn1 -> $lsn2)"
"$LAKEFS" export main "${targs[@]}" --to "$(lake_url)" --dsn "$dsn" >"$T/again" 2>&1 || die "re-export failed"
sync_lake
[ "$(grep -c 'no transaction has ended since .*: nothing to do' "$T/again")" = "${#tables[@]}" ] ||
    { cat "$T/again" >&2; die "re-exporting with no transaction since version 0 was not a no-op"; }
for t in "${tables[@]}"; do
    [ ! -e "$lake/$t/_delta_log/00000000000000000001.json" ] || die "$t: re-export with no transaction since wrote version 1"
done
ok "re-exporting after a CHECKPOINT (the LSN moved, no transaction ended) changes nothing"

# ------------------------------------------------------------------ more writes, version 1
pgbench -n -t 300 -c 2 -h "$PGSOCK" -p "${PG_PORT[$main]}" -U postgres postgres >"$(newlog pgbench)" 2>&1 ||
    die "pgbench failed"
psql_at "$main" -c "DELETE FROM alltypes WHERE id = 4" -c "UPDATE alltypes SET t = 'changed ✓' WHERE id = 2" \
    -c "INSERT INTO alltypes (id, t) VALUES (6, 'new')" -c "INSERT INTO empty VALUES (1, 'no longer')" ||
    die "writes failed"
capture b
time_b=$(date -u +%Y-%m-%dT%H:%M:%S.%6NZ)
sleep 0.2
export_all "$T/export1"
for t in "${tables[@]}"; do
    v0=$(txn_version "$t" 0) v1=$(txn_version "$t" 1)
    [ -n "$v1" ] && [ "$v1" -gt "$v0" ] || die "$t: version 1's point $v1 is not after version 0's $v0"
    grep -q '"remove"' "$lake/$t/_delta_log/00000000000000000001.json" || die "$t: version 1 removes nothing"
done
check b
check a 0
ok "after writes: version 1 equals the new rows, version 0 still reads as the first point"

# ------------------------------------------------------------------ through views
# PostgreSQL started by lakefs export on branches/main@POINT: --at the LSN of
# point a, then --at the time of point b, into a lake of their own; main's
# server keeps running (and writing) meanwhile
pgbench -n -T 30 -c 1 -h "$PGSOCK" -p "${PG_PORT[$main]}" -U postgres postgres >"$(newlog pgbench-bg)" 2>&1 &
bg=$!
on_exit "kill $bg 2>/dev/null; wait $bg 2>/dev/null"
lake_main=$lake lake=$T/lake_view
(cd "$mp" && "$LAKEFS" export main "${targs[@]}" --to "$(lake_url)" --at "$point_a") >"$T/view0" 2>"$T/view0.err" ||
    { cat "$T/view0" "$T/view0.err" >&2; die "export --at $point_a (a view) failed"; }
sync_lake
sed 's/^/    /' "$T/view0" >&2
check a 0
for t in "${tables[@]}"; do
    [ "$(txn_version "$t" 0)" = "$(txn_version_of "$lake_main/$t" 0)" ] ||
        die "$t: the view's point $(txn_version "$t" 0) is not --at $point_a"
done
grep -q '"lakefs":{"branch":"main","timeline":1,"lsn":"'"$point_a"'"' "$lake/public.alltypes/_delta_log/00000000000000000000.json" ||
    die "the view export's commitInfo does not record main, timeline 1, $point_a"
ok "export --at $point_a through a time-travel view: DuckDB returns point a's rows"
"$LAKEFS" export main "${targs[@]}" --to "$(lake_url)" --at "$point_a" --repo "$url" >"$T/view0again" 2>&1 ||
    { cat "$T/view0again" >&2; die "export --at $point_a again failed"; }
[ "$(grep -c 'nothing to do' "$T/view0again")" = "${#tables[@]}" ] && ! grep -q 'version 1' "$T/view0again" ||
    { cat "$T/view0again" >&2; die "exporting --at $point_a again was not a no-op"; }
ok "export --at $point_a again: nothing to do (no server started)"
"$LAKEFS" export main "${targs[@]}" --to "$(lake_url)" --at "$time_b" --repo "$url" >"$T/view1" 2>"$T/view1.err" ||
    { cat "$T/view1" "$T/view1.err" >&2; die "export --at $time_b (a view) failed"; }
sync_lake
sed 's/^/    /' "$T/view1" >&2
check b 1
ok "export --at $time_b through a time-travel view: DuckDB returns point b's rows"
kill "$bg" 2>/dev/null || true
wait "$bg" 2>/dev/null || true
lake=$lake_main

# ------------------------------------------------------------------ bad input
expect_export_fail() {
    local want=$1 status=$2
    shift 2
    local rc=0
    "$LAKEFS" export "$@" >"$T/bad.out" 2>"$T/bad.err" || rc=$?
    [ "$rc" = "$status" ] || { cat "$T/bad.err" >&2; die "export $*: exit $rc, want $status"; }
    [ "$(wc -l <"$T/bad.err")" = 1 ] && grep -q "$want" "$T/bad.err" ||
        { cat "$T/bad.err" >&2; die "export $*: error does not say '$want'"; }
    log "  refused: $(cat "$T/bad.err")"
}
expect_export_fail "no table \"public\".\"nope\"" 1 main --table public.nope --to "$(lake_url)" --dsn "$dsn"
sync_lake
[ ! -e "$lake/public.nope" ] || die "an unknown table left $lake/public.nope"
mkdir -p "$T/notdelta/public.alltypes"
echo "a,b" >"$T/notdelta/public.alltypes/data.csv"
expect_export_fail "not a Delta table" 1 main --table public.alltypes --to "file://$T/notdelta" --dsn "$dsn"
[ "$(ls "$T/notdelta/public.alltypes")" = data.csv ] || die "a refused target was written to"
expect_export_fail "say which point" 2 main --table public.alltypes --to "$(lake_url)"
expect_export_fail "exclude each other" 2 main --table public.alltypes --to "$(lake_url)" --dsn "$dsn" --at 0/1
expect_export_fail "in the future of branch 'main'" 1 main --table public.alltypes --to "file://$T/future" --at FFFF/0 --repo "$url"
[ ! -e "$T/future/public.alltypes/_delta_log" ] || die "a refused view export committed"
expect_export_fail "SCHEMA.TABLE" 2 main --table alltypes --to "$(lake_url)" --dsn "$dsn"
expect_export_fail "that server runs on branch main" 1 dev --table public.alltypes --to "file://$T/other" --dsn "$dsn"
[ ! -e "$T/other/public.alltypes/_delta_log" ] || die "an export of another branch's server committed"
pv=$mp/branches/main@${point_a/\//-}
pg_start "$pv"
expect_export_fail "runs on the time-travel view main@" 1 main --table public.alltypes --to "file://$T/other" \
    --dsn "$(pg_conninfo "$pv")"
pg_stop "$pv"
# rows that fail at aid 190000 of 200000, after several 256K files were stored
psql_at "$main" -c "CREATE VIEW boom AS SELECT aid, md5(aid::text) AS h, 1 / (aid - 190000) AS x
                      FROM (SELECT aid FROM pgbench_accounts ORDER BY aid OFFSET 0) sorted" ||
    die "CREATE VIEW boom failed"
expect_export_fail "division by zero" 1 main --table public.boom --to "file://$T/boom" --dsn "$dsn" \
    --row-group-size 64K --file-size 256K
grep -q '^public.boom: data file 2 stored' "$T/bad.out" || die "the failing export did not store files before failing"
[ -z "$(find "$T/boom" -type f)" ] || { find "$T/boom" -type f >&2; die "a failed export left files behind"; }
expect_export_fail "cannot connect" 1 main --table public.alltypes --to "$(lake_url)" --dsn "host=$PGSOCK port=1 user=postgres"
ok "bad input refused with one-line errors"
pg_stop "$main"

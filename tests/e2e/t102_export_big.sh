#!/usr/bin/env bash
# lakefs export of a large table through a time-travel view, with bounded
# memory (issue 7, acceptance 3).  A table of poorly compressible rows
# (bigint, 32 random-looking bytes, 32 hex characters, double, timestamptz)
# is loaded on main and checkpointed; its aggregates are read at a recorded
# LSN, then main keeps changing it (deletes, updates, inserts).
# `lakefs export main --at LSN` starts PostgreSQL on the view main@LSN,
# streams the table through COPY BINARY into Parquet files of at most
# --file-size, each stored as soon as it is finished, and commits them.
# - DuckDB (delta_sql.mjs, replaying _delta_log) finds the rows of the
#   point: count, sum(id), min/max of the text and the timestamp, total
#   bytes of the bytea, and the adds' numRecords sum to the rows;
# - the export wrote several data files, and its peak resident memory
#   (getrusage, printed by the export) is within the stated bound:
#   3 x row group + file size + 40 MiB (the program, its libraries, 4 x the
#   largest value, page and zstd buffers), while the Parquet data is larger
#   than that bound (so a writer holding the table would fail).
# Standard run: 1,200,000 rows (~150 MB heap), --row-group-size 1M,
# --file-size 4M.  Long run (LAKEFS_TEST_LONG=1, tests/run.sh --long): at
# least 1 GiB of heap (9,000,000 rows), the default row group (64M) and file
# size (128M); the rows/s and peak memory go into README.md.
# backends: file
set -euo pipefail
. "$(dirname "$0")/lib.sh"
e2e_setup export_big
unset LAKEFS_REPO

if [ "${LAKEFS_TEST_LONG:-0}" = 1 ]; then
    rows=9000000 min_heap=$((1 << 30)) sizes=()
    rg=$((64 << 20)) fs=$((128 << 20))
else
    rows=1200000 min_heap=$((120 << 20)) sizes=(--row-group-size 1M --file-size 4M)
    rg=$((1 << 20)) fs=$((4 << 20))
fi
slack=$((40 << 20))
bound=$((3 * rg + fs + slack))

duckdb_node
url=$(repo_url repo)
mp=$T/mnt main=$T/mnt/branches/main lake=$T/lake
mkdir -p "$mp"
lakefs_init "$url"
lakefs_mount "$url" "$mp" -o "allow_other,default_permissions,state_dir=$T/state"
pg_initdb "$main"
pg_start "$main"

# ------------------------------------------------------------------ load
t0=$(ms_now)
psql_at "$main" -c "CREATE TABLE big (id bigint, b bytea, t text, r double precision, ts timestamptz)" \
    -c "INSERT INTO big SELECT g, decode(md5(g::text) || md5((-g)::text), 'hex'), md5('t' || g),
               g / 7.0, timestamptz '2020-01-01 00:00:00+00' + g * interval '1 second'
          FROM generate_series(1, $rows) g" -c "CHECKPOINT" >/dev/null || die "loading $rows rows failed"
heap=$(psql_at "$main" -c "SELECT pg_relation_size('big')")
[ "$heap" -ge "$min_heap" ] || die "table big holds $heap bytes of heap, want at least $min_heap"
ok "table big: $rows rows, $heap bytes of heap, loaded on main in $(ms_since "$t0") ms"
aggregates="count(*), sum(id), min(t), max(t), min(ts), max(ts), sum(octet_length(b))"
want=$(psql_at "$main" -c "SET TimeZone = 'UTC'" -c "SELECT $aggregates FROM big" | tail -n 1)
point=$(psql_at "$main" -c "SELECT pg_current_wal_insert_lsn()")
psql_at "$main" -c "DELETE FROM big WHERE id % 10 = 0" -c "UPDATE big SET t = 'changed' WHERE id % 10 = 1" \
    -c "INSERT INTO big VALUES (0, '\\x00', '', 0, now())" >/dev/null || die "changing big after the point failed"
now=$(psql_at "$main" -c "SET TimeZone = 'UTC'" -c "SELECT $aggregates FROM big" | tail -n 1)
[ "$now" != "$want" ] || die "main did not change after the point"

# ------------------------------------------------------------------ export through the view
# (under AddressSanitizer freed memory is held in a quarantine of 256 MiB
# by default; a small one keeps the measure about the export's own memory)
t0=$(ms_now)
ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=4 \
"$LAKEFS" export main --at "$point" --repo "$url" --table public.big --to "file://$lake" "${sizes[@]}" \
    >"$T/export" 2>"$T/export.err" || { cat "$T/export" "$T/export.err" >&2; die "export --at $point failed"; }
took=$(ms_since "$t0")
sed 's/^/    /' "$T/export" "$T/export.err" >&2
summary=$(grep '^public.big: version 0, ' "$T/export") || die "no summary line for public.big"
files=$(echo "$summary" | sed -n 's/.* rows, \([0-9]*\) files\?, .*/\1/p')
bytes=$(echo "$summary" | sed -n 's/.* files\?, \([0-9]*\) bytes, .*/\1/p')
rate=$(echo "$summary" | sed -n 's/.* s (\([0-9]*\) rows\/s).*/\1/p')
peak=$(sed -n 's/^peak memory: \([0-9]*\) MiB resident$/\1/p' "$T/export")
[ -n "$files" ] && [ -n "$bytes" ] && [ -n "$rate" ] && [ -n "$peak" ] || die "cannot read the export's summary"
[ "$files" -ge 2 ] || die "$bytes bytes of Parquet in $files file(s): want several (file size $fs)"
peak_b=$((peak << 20))
[ "$peak_b" -le "$bound" ] ||
    die "export peak memory $peak MiB is above the bound $((bound >> 20)) MiB (3 x $((rg >> 20)) MiB row group + $((fs >> 20)) MiB file + $((slack >> 20)) MiB)"
[ "$bytes" -gt "$bound" ] || die "the Parquet data ($bytes bytes) is not larger than the memory bound; the check proves nothing"
ok "export --at $point: $rows rows in $files files, $bytes bytes, $rate rows/s, peak memory $peak MiB (bound $((bound >> 20)) MiB), $took ms with the view's start"

# ------------------------------------------------------------------ DuckDB reads the point
lg=$(newlog duckdb)
node "$LAKEFS_TOP/tests/lake/delta_sql.mjs" "$DUCKDB_NODE_DIR" "$lake/public.big" \
    "SELECT count(*), sum(id), min(t), max(t), strftime(min(ts), '%Y-%m-%d %H:%M:%S+00'),
            strftime(max(ts), '%Y-%m-%d %H:%M:%S+00'), sum(octet_length(b)) FROM t" >"$lg" 2>&1 ||
    { cat "$lg" >&2; die "DuckDB cannot read the export"; }
[ "$(head -n 1 "$lg")" = "files $files" ] || { cat "$lg" >&2; die "DuckDB's replay of the log finds other files than the export wrote"; }
got=$(tail -n 1 "$lg")
[ "$got" = "$want" ] || die "DuckDB reads $got, PostgreSQL had $want at $point"
ok "DuckDB reads the rows of $point: $got"
pg_stop "$main"
lakefs_umount "$mp"
echo "export_big rows=$rows heap=$heap files=$files bytes=$bytes rows_per_s=$rate peak_mib=$peak bound_mib=$((bound >> 20))" \
    >"$T/result"
log "result: $(cat "$T/result")"

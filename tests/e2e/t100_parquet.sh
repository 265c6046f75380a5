#!/usr/bin/env bash
# The Parquet writer (lake/parquet.c) against a reader nobody here wrote:
# tests/lake/pq_sample writes Parquet files of every type the writer has
# (NULLs, empty strings, extremes, non-ASCII text and column names, a
# 250 KB string, thousands of rows in several row groups, an all-NULL and
# an empty file) with a JSON file of every value; DuckDB, through the npm
# package @duckdb/node-api with extension auto-install and auto-load off,
# reads them back (tests/lake/check_parquet.mjs): types, every value, and
# parquet_metadata()'s per-chunk null_count and min/max against the ones
# computed from the rows.
# The package is installed into tests/lake/node when it is not there (npm,
# the registry's ordinary client; nodejs and npm come from install_packages).
# backends: file
set -euo pipefail
. "$(dirname "$0")/lib.sh"
e2e_setup parquet

sample=$LAKEFS_TOP/tests/lake/pq_sample
[ -x "$sample" ] || die "$sample not built (run: make e2e)"
duckdb_node

# --- write the samples, then read them with DuckDB
mkdir -p "$T/samples"
"$sample" "$T/samples" 2>"$(newlog pq_sample)" || die "pq_sample failed"
ok "samples written: $(cd "$T/samples" && ls -- *.parquet | tr '\n' ' ')"
lg=$(newlog check)
if ! node "$LAKEFS_TOP/tests/lake/check_parquet.mjs" "$DUCKDB_NODE_DIR" "$T/samples" >"$lg" 2>&1; then
    cat "$lg" >&2
    die "DuckDB does not read back what was written"
fi
sed 's/^/    /' "$lg" >&2
ok "DuckDB reads every sample back exactly"

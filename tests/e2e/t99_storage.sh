#!/usr/bin/env bash
# Storage stays close to the size of the data (issue 6, acceptance 1 and 5):
# pgbench -i, then TPC-B while a client marks points in time (a row of
# table marks per point, its LSN noted after the commit), with the
# daemon compacting, trimming the WAL archive and collecting garbage as
# it does in production (gc every few seconds, the repository's retention
# window); then a last `lakefs gc`.
#   standard: -s 2, 60 s of TPC-B, a 30 s window;
#   --long:   -s 20, 10 minutes of TPC-B, a 5-minute window (the issue's run).
# Checked: no failed transaction; no read consulted more layers than the
# stated bound (compact.h) during the run (lakefs stats: over_bound 0);
# the repository holds at most 1.5 times
# the size of the PGDATA directory (both printed, with the write
# amplification: bytes uploaded / bytes PostgreSQL wrote, by PostgreSQL's
# own counters: pg_stat_wal's WAL bytes + pages written by checkpoints,
# the background writer and backends); every marked point inside the
# window is still reachable by time travel and exact: a view at its LSN
# holds exactly the marks made by then and pgbench's balances agree there.
# backends: file
set -euo pipefail
. "$(dirname "$0")/lib.sh"
e2e_setup storage
unset LAKEFS_REPO

if [ "${LAKEFS_TEST_LONG:-0}" = 1 ]; then
    scale=20 duration=600 window=300 gc_every=30s checkpoint=5min
else
    scale=2 duration=60 window=30 gc_every=5s checkpoint=30s
fi
url=$(repo_url repo)
repo=${url#file://}
mp=$T/mnt main=$T/mnt/branches/main
common=allow_other,default_permissions,state_dir=$T/state
mkdir -p "$mp"
lakefs_init "$url"
"$LAKEFS" config set "retention=${window}s" --repo "$url" >>"$(newlog config)" 2>&1 || die "config set failed"
daemon_log() { cat "$T"/logs/*daemon-mnt*.log; }

lakefs_mount "$url" "$mp" -o "$common,gc_interval=$gc_every"
pg_initdb "$main"
echo "checkpoint_timeout = $checkpoint" >>"$main/postgresql.conf"
lakefs_umount "$mp"
# the run measured: a mount of its own, so that its upload counter is the run's
lakefs_mount "$url" "$mp" -o "$common,gc_interval=$gc_every"
pg_start "$main"
psql_at "$main" -c "CREATE TABLE marks (k int PRIMARY KEY)"

# PostgreSQL's own count of what it wrote: WAL bytes, and data pages
written() {
    psql_at "$main" -c "SELECT (SELECT wal_bytes FROM pg_stat_wal) +
        8192 * (SELECT buffers_checkpoint + buffers_clean + buffers_backend FROM pg_stat_bgwriter)"
}
uploaded() { daemon_log | sed -n 's/^lakefs: object store: \([0-9]*\) bytes uploaded.*/\1/p' | tail -n 1; }
wrote0=$(written)

pgbench -i -s "$scale" -q -h "$PGSOCK" -p "${PG_PORT[$main]}" -U postgres postgres \
    >"$(newlog pgbench-init)" 2>&1 || die "pgbench -i -s $scale failed"
ok "pgbench -i -s $scale"
lg=$(newlog pgbench-run)
pgbench -n -T "$duration" -c 4 -j 2 -h "$PGSOCK" -p "${PG_PORT[$main]}" -U postgres postgres >"$lg" 2>&1 &
bench=$!
# a mark every 1/30 of the run (pacing the marks, not waiting for anything)
k=0
while pid_alive "$bench"; do
    k=$((k + 1))
    psql_at "$main" -c "INSERT INTO marks VALUES ($k)" \
        -c "SELECT $k, pg_current_wal_insert_lsn(), extract(epoch FROM clock_timestamp())::bigint" \
        >>"$T/points" || die "mark $k failed"
    sleep "$(awk -v d="$duration" 'BEGIN { printf "%.2f", d / 30 }')"
done
wait "$bench" || { tail -n 20 "$lg" >&2; die "pgbench -T $duration failed"; }
grep -q '^number of failed transactions: 0 ' "$lg" || { cat "$lg" >&2; die "pgbench had failed transactions"; }
ok "TPC-B -T $duration -c 4: $(grep -m1 '^tps' "$lg"); $k marks"
psql_at "$main" -c "CHECKPOINT"
wrote=$(($(written) - wrote0))

# the last gc, once the compactor has caught up
"$LAKEFS" gc "$url" >"$T/gc.out" 2>&1 || { cat "$T/gc.out" >&2; die "lakefs gc failed"; }
ok "$(tail -n 1 "$T/gc.out")"
stats=$("$LAKEFS" stats main --repo "$url") || die "lakefs stats main failed"
stat_of() { echo "$stats" | awk -v k="$1" '$1 == k { print $2 }'; }
[ "$(stat_of reads)" -gt 0 ] || die "no read reached the layers: $(echo $stats)"
[ "$(stat_of over_bound)" -eq 0 ] || die "reads consulted more layers than the bound: $(echo $stats)"
ok "read amplification: $(stat_of reads) reads of the layers, at most $(stat_of probes_max) layers consulted" \
    "(bound now $(stat_of bound)), $(stat_of over_bound) over the bound; $(stat_of flushes) flushes," \
    "$(stat_of compactions) merges"
ok "WAL archive trimmed $(daemon_log | grep -c 'WAL archive trimmed' || true) times during the run"
data=$(du -s --apparent-size -B1 "$main" | cut -f1)
wal=$(du -s --apparent-size -B1 "$main/pg_wal" | cut -f1)
store=$(du -s --apparent-size -B1 "$repo" | cut -f1)
ratio=$(awk -v s="$store" -v d="$data" 'BEGIN { printf "%.2f", s / d }')
log "PGDATA $data bytes ($wal of them in pg_wal), repository $store bytes: ${ratio}x"
# where the repository's bytes are: the newest state, and what the window keeps besides
newest=$(ls "$repo/branches/main/manifest" | tail -n 1)
named=$(awk '$1 == "layer" { n += $5 } END { print n + 0 }' "$repo/branches/main/manifest/$newest")
log "the newest state names $named bytes of layers; $(ls "$repo/branches/main/manifest" | wc -l) generations" \
    "and $(ls "$repo/branches/main/layers" | wc -l) layers are kept for the window"
awk -v s="$store" -v d="$data" 'BEGIN { exit !(s <= 1.5 * d) }' ||
    die "the repository holds $store bytes, over 1.5 x PGDATA ($data bytes): ${ratio}x"
ok "storage: repository $store bytes = ${ratio}x PGDATA ($data bytes)"

# every mark inside the window (with a margin for the time the checks take)
now=$(date +%s)
awk -F'|' -v from=$((now - window * 2 / 3)) '$3 >= from { print $1 "|" $2 }' "$T/points" >"$T/inside"
n=$(wc -l <"$T/inside")
[ "$n" -ge 2 ] || die "only $n marks inside the window"
sed -n '1p;$p' "$T/inside" | while IFS='|' read -r j lsn; do
    v=$mp/branches/main@$(echo "$lsn" | tr / -)
    pg_start "$v"
    got=$(psql_at "$v" -c "SELECT count(*) || '/' || max(k) FROM marks")
    [ "$got" = "$j/$j" ] || die "view at LSN $lsn: marks count/max $got, want $j/$j"
    pgbench_invariant "$v"
    pg_stop "$v"
    ok "view main@$lsn: exactly $j marks, balances agree"
done
pg_stop "$main"
lakefs_umount "$mp"
up=$(uploaded)
[ -n "$up" ] || die "the daemon did not report its uploads"
log "write amplification: $up bytes uploaded / $wrote bytes PostgreSQL wrote = $(awk -v u="$up" -v w="$wrote" 'BEGIN { printf "%.2f", u / w }')x"
ok "storage ${ratio}x of PGDATA; write amplification $(awk -v u="$up" -v w="$wrote" 'BEGIN { printf "%.2f", u / w }')x"

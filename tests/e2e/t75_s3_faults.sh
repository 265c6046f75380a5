#!/usr/bin/env bash
# Object-store faults under load (issue 3, acceptance 3). PostgreSQL runs on
# an s3:// repository that the daemon reaches through tests/e2e/faultproxy,
# with small memtables so that a layer goes to the bucket every few seconds,
# while tests/e2e/ackclient (every acknowledged commit recorded) and pgbench
# commit all the time:
#  1. the proxy answers ~30% of requests with "503 SlowDown" and delays the
#     others by a few hundred ms, until several layers were committed;
#  2. the S3 server itself (this test's private Ceph RGW) is stopped:
#     PostgreSQL keeps acknowledging commits (local durability: they are in
#     the daemon's journal, which grows) until the memtables waiting for
#     upload reach their bound; then writes wait (backpressure, no error).
#     The server stays down for longer than one request's retry budget and
#     a few seconds into the backpressure, then is started again;
#  3. the daemon catches up on its own: new manifest generations appear,
#     its journal shrinks back to the active file, writes resume; every
#     acknowledged commit is there, pg_amcheck --heapallindexed is clean;
#     clean unmount, still through 503s.
# Then, as a fresh machine would (new state dir, new empty cache dir), mounted
# through 30% 503s, every page read from the bucket through 20% 503s: every
# acknowledged commit
# is there, pg_amcheck is clean and the pgbench invariant holds. The proxy's
# counters must show that 503s, delays and unreachable-server errors really
# happened, PostgreSQL's log must hold no I/O error, and the clients must
# never have seen an error.
# backends: s3
set -euo pipefail
. "$(dirname "$0")/lib.sh"
LAKEFS_TEST_BACKEND=s3
# a private gateway, never the suite's shared one: this test stops it
unset LAKEFS_TEST_S3_ENV LAKEFS_TEST_S3_BUCKET
e2e_setup s3_faults

if [ "${LAKEFS_TEST_LONG:-0}" = 1 ]; then
    outage=${FAULTS_OUTAGE_SECONDS:-60} slow_layers=${FAULTS_SLOW_LAYERS:-20}
else
    outage=${FAULTS_OUTAGE_SECONDS:-20} slow_layers=${FAULTS_SLOW_LAYERS:-5}
fi
# small memtables: a layer every second or two under this load, and the
# bound on what waits for upload (3 memtables) is reached during the outage
memtable=${FAULTS_MEMTABLE:-4M}

[ -x "$T/bin/ackclient" ] || die "tests/e2e/ackclient not built (make e2e)"
[ -x "$E2E_DIR/faultproxy" ] || die "tests/e2e/faultproxy not built (make e2e)"
[ -n "$RGW_DIR" ] || die "no private S3 server (RGW_DIR unset)"

url=$(repo_url repo)
prefix=${url#s3://"$S3_BUCKET"/}
journal_dir=$T/state1/main
mp=$T/mnt
mkdir -p "$mp"
common=allow_other,default_permissions
lakefs_init "$url"

# ------------------------------------------------------------ the proxy
proxy_start
proxy_port=${PROXY_URL##*:} rgw_port=${S3_ENDPOINT##*:}

# latest_gen: the newest manifest generation of branch main in the bucket
# (read from the S3 server directly, not through the proxy).
latest_gen() {
    s3_list "$S3_BUCKET" "$prefix/branches/main/manifest/" |
        sed -n 's#.*/manifest/0*\([0-9][0-9]*\) .*#\1#p' | sort -n | tail -n 1
}
gen_reached() { [ "$(latest_gen)" -ge "$1" ]; }
# journal_files: files in the daemon's journal (the active one, plus one
# per memtable waiting for its layer to reach the bucket).
journal_files() { find "$journal_dir" -maxdepth 1 -name 'journal.*' | grep -c '' || true; }
journal_caught_up() { [ "$(journal_files)" = 1 ]; }

acked=$T/acked
: >"$acked"
acked_count() { grep -c '' "$acked" || true; }
acked_reached() { [ "$(acked_count)" -ge "$1" ]; }

# check_acked DATA: every acknowledged id is in table ack with its payload.
check_acked() {
    local data=$1 n missing dup
    n=$(acked_count)
    dup=$(sort "$acked" | uniq -d | head -n 3)
    [ -z "$dup" ] || die "ackclient acknowledged ids twice: $dup"
    missing=$(psql_at "$data" <<EOF
CREATE TEMP TABLE acked (id bigint);
\copy acked FROM '$acked'
SELECT count(*) FROM acked a
 WHERE NOT EXISTS (SELECT 1 FROM ack t WHERE t.id = a.id AND t.payload = md5(a.id::text));
EOF
) || die "query for acknowledged commits failed"
    [ "$missing" = 0 ] || die "$missing of $n acknowledged commits are missing"
    ok "all $n acknowledged commits present"
}

# clients_alive: ackclient and pgbench still running (they exit on the
# first error PostgreSQL reports to them).
clients_alive() {
    pid_alive "$ack_pid" || { cat "$ack_log" >&2; die "ackclient stopped: PostgreSQL reported an error"; }
    pid_alive "$bench_pid" || { tail -n 20 "$bench_log" >&2; die "pgbench stopped: PostgreSQL reported an error"; }
    ! grep -q 'aborted' "$bench_log" || { cat "$bench_log" >&2; die "a pgbench client aborted"; }
}

# ------------------------------------------------------------ machine 1, through the proxy
AWS_ENDPOINT_URL=http://127.0.0.1:$proxy_port lakefs_mount "$url" "$mp" \
    -o "$common,state_dir=$T/state1,cache_dir=$T/cache1,memtable_size=$memtable"
data=$mp/branches/main
daemon_log=$(ls "$T"/logs/*-daemon-mnt.log)
# daemon_says MSG: the daemon logged MSG after line $said_from of its log
# (phase 1 may already have had writes wait: only what follows counts)
said_from=0
daemon_says() { tail -n +$((said_from + 1)) "$daemon_log" | grep -qF "$1"; }
pg_initdb "$data"
pg_start "$data"
pgbench -i -s 2 -q -h "$PGSOCK" -p "${PG_PORT[$data]}" -U postgres postgres \
    >"$(newlog pgbench-init)" 2>&1 || die "pgbench -i failed"
ok "pgbench -i -s 2"

ack_log=$(newlog ackclient)
"$T/bin/ackclient" "$(pg_conninfo "$data")" "$acked" >"$ack_log" 2>&1 &
ack_pid=$!
bench_log=$(newlog pgbench)
pgbench -n -T 3600 -c 2 -h "$PGSOCK" -p "${PG_PORT[$data]}" -U postgres postgres >"$bench_log" 2>&1 &
bench_pid=$!
on_exit "kill_job $ack_pid; kill_job $bench_pid"
wait_for 60 "the first acknowledged commits" acked_reached 100 || die "ackclient makes no progress"
clients_alive

# --- 1: 503s and delays
gen=$(latest_gen)
req0=$(proxy_counter requests) f0=$(proxy_counter fail503) d0=$(proxy_counter delayed)
proxy_set "fail503 0.3" "delay_ms 300"
log "phase 1: 30% of requests get 503 SlowDown, the others wait 300 ms (manifest generation $gen)"
# until enough layers went through enough faults (not a fixed time: the
# load, and so the number of requests, depends on the machine)
faulted() {
    clients_alive
    gen_reached $((gen + slow_layers)) && [ $(($(proxy_counter fail503) - f0)) -ge 3 ] &&
        [ $(($(proxy_counter delayed) - d0)) -ge 3 ]
}
wait_for 300 "$slow_layers layers committed through 3 503s and 3 delays" faulted ||
    die "the daemon committed no $slow_layers layers through 3 503s and 3 delays in 300 s: generation $(latest_gen), $(($(proxy_counter fail503) - f0)) 503s, $(($(proxy_counter delayed) - d0)) delays"
clients_alive
nreq=$(($(proxy_counter requests) - req0)) nfail=$(($(proxy_counter fail503) - f0)) ndelay=$(($(proxy_counter delayed) - d0))
[ "$nfail" -gt 0 ] || die "the proxy injected no 503 in phase 1"
[ "$ndelay" -gt 0 ] || die "the proxy delayed no request in phase 1"
ok "phase 1: manifest generation $gen -> $(latest_gen) through $nfail 503s and $ndelay delays in $nreq requests; $(acked_count) acknowledged commits"

# --- 2: the S3 server is down
proxy_set
# start from no backlog: phase 1's slow uploads may have left the memtables
# at their bound, and the outage must show commits going on at first
wait_for 120 "the phase 1 backlog to reach the bucket" journal_caught_up ||
    die "the journal still has $(journal_files) files 120 s after the faults stopped"
gen=$(latest_gen)
errors0=$(proxy_counter upstream_errors)
said_from=$(wc -l <"$daemon_log")
"$RGW_TOOLS/stop" "$RGW_DIR" >>"$(newlog rgw-stop)" 2>&1 || die "cannot stop the S3 server"
# if the test dies during the outage: the server back first, so that the
# daemon answers again and PostgreSQL can be stopped (runs before pg_cleanup)
rgw_down=1
on_exit '[ "$rgw_down" = 0 ] || "$RGW_TOOLS/start" "$RGW_DIR" "$rgw_port" memstore >/dev/null 2>&1'

down_at=$SECONDS
acked0=$(acked_count)
log "phase 2: S3 server stopped (manifest generation $gen, $acked0 acknowledged commits)"
# commits go on (the journal) until the memtables waiting for upload are
# at their bound; then writes wait
full() { clients_alive; daemon_says 'writes wait until a layer is uploaded'; }
wait_for 300 "the memtables to reach their bound without the S3 server" full ||
    die "writes never waited for the S3 server in 300 s of outage (is memtable_size small?)"
acked1=$(acked_count)
[ "$acked1" -gt "$acked0" ] || die "no commit was acknowledged while the S3 server was down"
ok "phase 2: $((acked1 - acked0)) commits acknowledged without the S3 server in $((SECONDS - down_at))s, then writes wait: $(grep -F 'writes wait' "$daemon_log" | tail -n 1)"
hold=$((outage - (SECONDS - down_at)))
((hold >= 5)) || hold=5
log "phase 2: keeping the S3 server down for ${hold}s more"
hold_until=$((SECONDS + hold))
while ((SECONDS < hold_until)); do   # keep the server down, watch the clients
    clients_alive
    sleep 1
done
backlog=$(journal_files)
[ "$backlog" -gt 1 ] || die "no memtable was waiting for the S3 server at the end of the outage"
[ "$(proxy_counter upstream_errors)" -gt "$errors0" ] || die "the daemon sent nothing to the stopped S3 server"
ok "phase 2: outage of $((SECONDS - down_at))s: journal $backlog files, $(($(proxy_counter upstream_errors) - errors0)) requests found no server, $(acked_count) acknowledged commits"
# (its stdout names the keys: not into a log)
"$RGW_TOOLS/start" "$RGW_DIR" "$rgw_port" memstore >/dev/null 2>>"$(newlog rgw-start)" ||
    die "cannot start the S3 server again"
rgw_down=0
log "S3 server started again after $((SECONDS - down_at))s"

# --- 3: the daemon catches up by itself
acked2=$(acked_count)
wait_for 300 "a layer committed after the outage" gen_reached $((gen + 1)) ||
    die "no manifest generation was committed within 300 s after the S3 server came back"
wait_for 300 "the journal backlog to reach the bucket" journal_caught_up ||
    die "the journal still has $(journal_files) files 300 s after the S3 server came back"
wait_for 60 "writes to resume" daemon_says 'writes resume' || die "the daemon never said that writes resume"
wait_for 120 "commits after the outage" acked_reached $((acked2 + 100)) ||
    die "no 100 commits acknowledged within 120 s after the S3 server came back"
clients_alive
ok "phase 3: caught up: manifest generation $(latest_gen), journal back to 1 file, $(grep -F 'writes resume' "$daemon_log" | tail -n 1), $(acked_count) acknowledged commits"

kill -TERM "$ack_pid" "$bench_pid"
wait "$ack_pid" 2>/dev/null || true
wait "$bench_pid" 2>/dev/null || true
check_acked "$data"
pgbench_invariant "$data"
pg_amcheck_clean "$data"
pg_stop "$data"
# no_io_errors: PostgreSQL's logs hold no I/O error (nor a PANIC).
no_io_errors() {
    ! grep -E 'PANIC|could not (read|write|fsync|open|extend)|I/O error' "$T"/logs/*-postgres-*.log >&2 ||
        die "PostgreSQL reported I/O errors"
}
no_io_errors
f0=$(proxy_counter fail503)
proxy_set "fail503 0.3"
lakefs_umount "$mp"     # the last layer goes up through 503s too
ok "machine 1 unmounted, everything flushed, through $(($(proxy_counter fail503) - f0)) more 503s"

# ------------------------------------------------------------ machine 2: only the bucket
rm -rf "$T/state1" "$T/cache1"
f0=$(proxy_counter fail503)
proxy_set "fail503 0.3"    # the checks at mount (conditional-PUT probe, lease) through 503s too
AWS_ENDPOINT_URL=http://127.0.0.1:$proxy_port lakefs_mount "$url" "$mp" \
    -o "$common,state_dir=$T/state2,cache_dir=$T/cache2"
proxy_set "fail503 0.2"
pg_start "$data"
check_acked "$data"
pgbench_invariant "$data"
pg_amcheck_clean "$data"
pg_stop "$data"
no_io_errors
lakefs_umount "$mp"
[ $(($(proxy_counter fail503) - f0)) -gt 0 ] || die "the proxy injected no 503 while machine 2 read the bucket"
ok "machine 2 read everything from the bucket through $(($(proxy_counter fail503) - f0)) 503s"
proxy_stop
log "$(tail -n 1 "$(ls "$T"/logs/*-faultproxy.log)")"

#!/usr/bin/env bash
# Acceptance 2: kill -9 the daemon under load, at several moments (after N
# acknowledged commits of tests/e2e/ackclient, synchronised on its progress
# file). Clean up (fusermount3 -u -z, kill -9 the cluster's processes),
# remount (journal replay), start PostgreSQL: every acknowledged commit is
# there, pg_amcheck is clean, the pgbench invariant holds.
# With CRASH_DURABILITY=remote (t52_crash_remote.sh) the daemon runs with
# -o durability=remote and every remount uses a NEW state directory, as a
# new machine would: the acknowledged commits must come from the repository.
# backends: file s3
set -euo pipefail
. "$(dirname "$0")/lib.sh"
durability=${CRASH_DURABILITY:-local}
if [ "$durability" = remote ]; then e2e_setup crash_remote; else e2e_setup crash; fi

if [ "${LAKEFS_TEST_LONG:-0}" = 1 ]; then
    rounds=${CRASH_ROUNDS:-"200 2000 5000 50 1000 3000 500 8000 100 10000"}
elif [ "$durability" = remote ]; then
    rounds=${CRASH_ROUNDS:-"200 1500"}
else
    rounds=${CRASH_ROUNDS:-"200 2000 5000"}
fi

[ -x "$T/bin/ackclient" ] || die "tests/e2e/ackclient not built (make e2e)"
url=$(repo_url repo)
mp=$T/mnt
mkdir -p "$mp"
opts=allow_other,default_permissions,durability=$durability,state_dir=$T/state
acked=$T/acked
: >"$acked"
lakefs_init "$url"
lakefs_mount "$url" "$mp" -o "$opts"
data=$mp/branches/main
pg_initdb "$data"
pg_start "$data"
pgbench -i -s 2 -q -h "$PGSOCK" -p "${PG_PORT[$data]}" -U postgres postgres \
    >"$(newlog pgbench-init)" 2>&1 || die "pgbench -i failed"

acked_count() { grep -c '' "$acked" || true; }   # complete lines only matter
acked_reached() { [ "$(acked_count)" -ge "$1" ]; }
ack_reached_or_dead() { acked_reached "$1" || pid_dead "$2"; }

# check_acked: every acknowledged id is in table ack with its payload.
check_acked() {
    local n missing dup
    n=$(acked_count)
    dup=$(sort "$acked" | uniq -d | head -n 3)
    [ -z "$dup" ] || die "ackclient acknowledged ids twice: $dup"
    missing=$(psql_at "$data" <<EOF2
CREATE TEMP TABLE acked (id bigint);
\copy acked FROM '$acked'
SELECT count(*) FROM acked a
 WHERE NOT EXISTS (SELECT 1 FROM ack t WHERE t.id = a.id AND t.payload = md5(a.id::text));
EOF2
) || die "query for acknowledged commits failed"
    [ "$missing" = 0 ] || die "$missing of $n acknowledged commits are missing after the crash"
    ok "all $n acknowledged commits present"
}

round=0
for target in $rounds; do
    round=$((round + 1))
    base=$(acked_count)
    want=$((base + target))
    log "round $round: kill -9 the daemon after $target more acknowledged commits (at $want)"

    ackclient_log=$(newlog "ackclient-$round")
    "$T/bin/ackclient" "$(pg_conninfo "$data")" "$acked" >"$ackclient_log" 2>&1 &
    ack_pid=$!
    pgbench -n -T 3600 -c 2 -h "$PGSOCK" -p "${PG_PORT[$data]}" -U postgres postgres \
        >"$(newlog "pgbench-$round")" 2>&1 &
    bench_pid=$!
    on_exit "kill_job $ack_pid; kill_job $bench_pid"

    wait_for 1800 "$want acknowledged commits" ack_reached_or_dead "$want" "$ack_pid" ||
        die "ackclient too slow: $(acked_count) of $want"
    pid_alive "$ack_pid" || { cat "$ackclient_log" >&2; die "ackclient stopped early"; }
    pid_alive "$bench_pid" || die "pgbench stopped before the crash"

    lakefs_crash "$mp"
    pg_kill9 "$data"
    # the clients see the server go away and exit with an error
    wait_for 120 "ackclient to exit" pid_dead "$ack_pid" || kill -9 "$ack_pid"
    wait_for 120 "pgbench to exit" pid_dead "$bench_pid" || kill -9 "$bench_pid"
    rc=0; wait "$ack_pid" || rc=$?
    [ "$rc" != 0 ] || die "ackclient exited 0 although its server was killed"
    wait "$bench_pid" 2>/dev/null || true
    log "round $round: $(acked_count) acknowledged commits before the crash"

    if [ "$durability" = remote ]; then      # the machine is gone: a new state dir
        rm -rf "$T/state"
        log "round $round: state directory removed; remounting from the repository alone"
    fi
    lakefs_mount "$url" "$mp" -o "$opts"
    pg_start "$data"
    check_acked
    pgbench_invariant "$data"
    pg_amcheck_clean "$data"
done

pg_stop "$data"
pg_checksums_clean "$data"
lakefs_umount "$mp"

#!/usr/bin/env bash
# kill -9 of the daemon under load (issues 2 and 21): everything PostgreSQL
# acknowledged is there afterwards, checked with oracles nobody here wrote.
#
# One repository mount (memtable_size=2M: layers flushed and merged all
# through the load) serves three read-write servers at once: main, dev (a
# branch of main made while main ran) and past (a branch of main at an
# earlier LSN: PostgreSQL's point-in-time recovery, then a new timeline).
# Each round runs on every server tests/e2e/ackclient (one autocommit
# INSERT at a time, each acknowledged id written down) and pgbench -n -c 2
# (TPC-B; the count of transactions it reports as processed is a client-side
# ledger of pgbench_history rows); main checkpoints every 30 s or 32 MB of
# WAL (checkpoint_timeout, max_wal_size: spread checkpoints, one after the
# other under load), dev and past get a CHECKPOINT statement every second.
# Then the daemon dies at a moment of the round's kind:
#   acks:N      kill -9 after N more acknowledged commits on main
#   checkpoint  kill -9 while main's checkpointer is in the middle of a
#               checkpoint (held there by SIGSTOP: its server log ends with
#               "checkpoint starting", no "checkpoint complete")
#   flush:N     the daemon crashes (failpoint, util/failpoint.h) after the
#               Nth layer object it uploads: a flush or a merge half done
#   merge:N     the daemon crashes with its Nth merge uploaded, not committed
#   random      kill -9 after a random 0-4 s of load
# Every server's processes are killed -9, the dead mount detached, the
# repository mounted again (journal replay; with durability=remote from a
# NEW state directory, as on a new machine), and on every server, after
# PostgreSQL's crash recovery:
#   - every acknowledged id is in ack with its payload md5(id);
#   - pgbench's invariant, row by row: each account's, teller's and
#     branch's balance is the sum of its pgbench_history deltas (and the
#     four totals agree);
#   - row counts: accounts, tellers and branches as pgbench -i made them;
#     pgbench_history has at least its count before the round plus the
#     transactions pgbench reported processed; ack at least the ids acked;
#   - pg_amcheck --heapallindexed of every database is clean;
#   - stopped: pg_checksums --check is clean (initdb --data-checksums).
# pgbench always runs with -n: without it pgbench TRUNCATEs pgbench_history
# before its run while the balances stay, and the invariant no longer holds
# even on a native disk that never crashed (issue 21's reproduction did that).
# With CRASH_DURABILITY=remote (t52_crash_remote.sh) the daemon runs with
# -o durability=remote. --long: 50 rounds of random kinds and moments (20
# with durability=remote), CRASH_ROUNDS_LONG=N for another number;
# CRASH_ROUNDS="acks:500 flush:2 ..." chooses the rounds of a standard run.
# backends: file s3
set -euo pipefail
. "$(dirname "$0")/lib.sh"
durability=${CRASH_DURABILITY:-local}
if [ "$durability" = remote ]; then e2e_setup crash_remote; else e2e_setup crash; fi

if [ "${LAKEFS_TEST_LONG:-0}" = 1 ]; then
    rounds=()
    n=50
    [ "$durability" = local ] || n=20   # each remount reads everything back from the repository
    for _ in $(seq 1 "${CRASH_ROUNDS_LONG:-$n}"); do
        case $((RANDOM % 5)) in
        0) rounds+=("acks:$((200 + RANDOM % 4000))") ;;
        1) rounds+=(checkpoint) ;;
        2) rounds+=("flush:$((1 + RANDOM % 20))") ;;
        3) rounds+=("merge:$((1 + RANDOM % 3))") ;;
        4) rounds+=(random) ;;
        esac
    done
elif [ "$durability" = remote ]; then
    read -r -a rounds <<<"${CRASH_ROUNDS:-acks:1000 checkpoint flush:3}"
else
    read -r -a rounds <<<"${CRASH_ROUNDS:-acks:2000 checkpoint flush:4 merge:1 random}"
fi
log "rounds: ${rounds[*]}"

[ -x "$T/bin/ackclient" ] || die "tests/e2e/ackclient not built (make e2e)"
url=$(repo_url repo)
mp=$T/mnt
mkdir -p "$mp"
opts=allow_other,default_permissions,durability=$durability,state_dir=$T/state,memtable_size=2M
scale=2
servers=(main dev past)
declare -A hist_before=() processed=()
lakefs_init "$url"
if [ "${LAKEFS_TEST_LONG:-0}" = 1 ]; then
    # 50 rounds write more than the test S3 server holds (a 4 GiB memstore):
    # a short window and gc every 30 s keep the repository bounded
    "$LAKEFS" config set retention=2min --repo "$url" >>"$(newlog config)" 2>&1 || die "config set retention failed"
    opts+=,gc_interval=30s
fi
lakefs_mount "$url" "$mp" -o "$opts"
data() { echo "$mp/branches/$1"; }

# ---- the three servers
main=$(data main)
pg_initdb "$main"
pg_start "$main"
pgbench -i -s "$scale" -q -h "$PGSOCK" -p "${PG_PORT[$main]}" -U postgres postgres \
    >"$(newlog pgbench-init)" 2>&1 || die "pgbench -i failed"
psql_at "$main" -c "ALTER SYSTEM SET checkpoint_timeout = '30s'" -c "ALTER SYSTEM SET max_wal_size = '32MB'" \
    -c "SELECT pg_reload_conf()" >/dev/null || die "setting checkpoint_timeout and max_wal_size failed"
pgbench -n -T 2 -c 2 -h "$PGSOCK" -p "${PG_PORT[$main]}" -U postgres postgres \
    >"$(newlog pgbench-main-0)" 2>&1 || die "pgbench on main failed"
past_lsn=$(psql_at "$main" -c "SELECT pg_current_wal_insert_lsn()")
psql_at "$main" -c "SELECT pg_switch_wal()" >/dev/null   # past's WAL complete in the archive
pgbench -n -T 2 -c 2 -h "$PGSOCK" -p "${PG_PORT[$main]}" -U postgres postgres \
    >"$(newlog pgbench-main-1)" 2>&1 || die "pgbench on main failed"
"$LAKEFS" branch --repo "$url" create dev --from main >"$(newlog branch-dev)" 2>&1 || die "branch create dev failed"
"$LAKEFS" branch --repo "$url" create past --from main --at "$past_lsn" >"$(newlog branch-past)" 2>&1 ||
    die "branch create past --at $past_lsn failed"
for s in dev past; do pg_start "$(data "$s")"; done
ok "servers on main, dev (from main) and past (main at $past_lsn)"

# ---- the checks of one server after a crash
acked_file() { echo "$T/acked.$1"; }
acked_count() { grep -c '' "$1" || true; }   # complete lines only matter

# check_server NAME: every oracle of the header on the running server NAME.
check_server() {
    local s=$1 d
    d=$(data "$s")
    local acked n dup missing
    acked=$(acked_file "$s")
    n=$(acked_count "$acked")
    dup=$(sort "$acked" | uniq -d | head -n 3)
    [ -z "$dup" ] || die "$s: ackclient acknowledged ids twice: $dup"
    missing=$(psql_at "$d" <<EOF
CREATE TEMP TABLE acked (id bigint);
\copy acked FROM '$acked'
SELECT count(*) FROM acked a
 WHERE NOT EXISTS (SELECT 1 FROM ack t WHERE t.id = a.id AND t.payload = md5(a.id::text));
EOF
) || die "$s: query for acknowledged commits failed"
    [ "$missing" = 0 ] || die "$s: $missing of $n acknowledged commits are missing after the crash"
    pgbench_invariant "$d"
    local counts want
    counts=$(psql_at "$d" -c "SELECT (SELECT count(*) FROM pgbench_accounts) || '/' ||
        (SELECT count(*) FROM pgbench_tellers) || '/' || (SELECT count(*) FROM pgbench_branches),
        (SELECT count(*) FROM pgbench_history), (SELECT count(*) FROM ack)") || die "$s: row counts failed"
    local fixed hist acks
    IFS='|' read -r fixed hist acks <<<"$counts"
    want="$((scale * 100000))/$((scale * 10))/$scale"
    [ "$fixed" = "$want" ] || die "$s: accounts/tellers/branches have $fixed rows, want $want"
    [ "$hist" -ge $((hist_before[$s] + processed[$s])) ] ||
        die "$s: pgbench_history has $hist rows, but had ${hist_before[$s]} and pgbench reported ${processed[$s]} more processed"
    [ "$acks" -ge "$n" ] || die "$s: ack has $acks rows, $n acknowledged"
    ok "$s: $n acknowledged ids, invariant row by row, $hist history rows (>= ${hist_before[$s]} + ${processed[$s]} processed)"
    pg_amcheck_clean "$d"
}

# in_checkpoint: main's checkpointer is not idle (waiting for its next
# checkpoint is wait event CheckpointerMain)
in_checkpoint() {
    [ "$(psql_at "$main" -c "SELECT coalesce(wait_event, 'running') FROM pg_stat_activity
        WHERE backend_type = 'checkpointer'" 2>/dev/null)" != CheckpointerMain ]
}
# main_log: the log of main's server that ran last
main_log() { ls -t "$T"/logs/*-postgres-"${PG_PORT[$main]}".log | sed -n 1p; }

round=0
for kind in "${rounds[@]}"; do
    round=$((round + 1))
    arm=
    case $kind in
    flush:*) arm=layer-upload-after=crash@${kind#flush:} ;;
    merge:*) arm=compact-commit-before=crash@${kind#merge:} ;;
    esac
    for s in "${servers[@]}"; do
        hist_before[$s]=$(psql_at "$(data "$s")" -c "SELECT count(*) FROM pgbench_history")
    done
    up=1
    if [ -n "$arm" ]; then     # the daemon of this round crashes by itself, maybe at once (a merge due)
        for s in "${servers[@]}"; do pg_stop "$(data "$s")"; done
        lakefs_umount "$mp"
        LAKEFS_FAILPOINTS=$arm lakefs_mount "$url" "$mp" -o "$opts"
        for s in "${servers[@]}"; do pg_start "$(data "$s")" "" may_fail || { up=0; break; }; done
    fi
    dpid=${DAEMON_PID[$mp]}
    log "round $round ($kind)"
    jobs_=()
    for s in "${servers[@]}"; do
        [ "$up" = 1 ] || break     # the daemon crashed while the servers started
        d=$(data "$s")
        "$T/bin/ackclient" "$(pg_conninfo "$d")" "$(acked_file "$s")" >"$(newlog "ackclient-$s-$round")" 2>&1 &
        jobs_+=($!)
        pgbench -n -T 3600 -c 2 -h "$PGSOCK" -p "${PG_PORT[$d]}" -U postgres postgres \
            >"$T/logs/pgbench-$s-$round.log" 2>&1 &
        jobs_+=($!)
        [ "$s" = main ] && continue    # main: checkpoint_timeout
        # a CHECKPOINT every second (a bounded number), all through the round
        (for _ in $(seq 1 600); do psql_at "$d" -c CHECKPOINT >/dev/null 2>&1 || exit 0; sleep 1; done) &
        jobs_+=($!)
    done
    for j in "${jobs_[@]}"; do on_exit "kill_job $j"; done
    base=$(acked_count "$(acked_file main)")
    case $kind in
    acks:*)
        ack_reached_or_dead() { [ "$(acked_count "$(acked_file main)")" -ge "$1" ] || pid_dead "$2"; }
        wait_for 600 "${kind#acks:} more acknowledged commits on main" ack_reached_or_dead \
            $((base + ${kind#acks:})) "${jobs_[0]}" || die "ackclient too slow"
        pid_alive "${jobs_[0]}" || die "ackclient on main stopped before the crash"
        lakefs_crash "$mp" ;;
    checkpoint)
        # the checkpointer is stopped (SIGSTOP) in the middle of a checkpoint,
        # so the kill cannot come a moment too late; tried again if it was
        # stopped just after one completed
        ckpt=$(psql_at "$main" -c "SELECT pid FROM pg_stat_activity WHERE backend_type = 'checkpointer'")
        for try in $(seq 1 50); do
            wait_for 300 "main's checkpointer in a checkpoint" in_checkpoint || die "main never checkpointed"
            kill -STOP "$ckpt"
            last=$(grep -E 'LOG: +checkpoint (starting|complete)' "$(main_log)" | tail -n 1)
            [[ $last == *"checkpoint starting"* ]] && break
            kill -CONT "$ckpt"
        done
        [[ $last == *"checkpoint starting"* ]] || die "could not stop main's checkpointer in a checkpoint"
        lakefs_crash "$mp"
        log "killed during a checkpoint of main (try $try): ${last#*LOG:  }" ;;
    flush:* | merge:*)
        wait_for 600 "the daemon to crash at $arm" pid_dead "$dpid" || die "no crash at $arm"
        rc=0; wait "$dpid" || rc=$?
        [ "$rc" = 86 ] || die "daemon exited $rc, not at failpoint $arm (86, util/failpoint.h)"
        unset "DAEMON_PID[$mp]"
        fusermount3 -u -z "$mp" 2>/dev/null || umount -l "$mp" 2>/dev/null || true
        wait_for 30 "the dead mount to detach" not_mounted "$mp" || die "cannot detach $mp"
        log "the daemon crashed at $arm" ;;
    random)
        sleep "$((RANDOM % 4)).$((RANDOM % 10))"
        lakefs_crash "$mp" ;;
    *) die "unknown round kind '$kind'" ;;
    esac
    for s in "${servers[@]}"; do pg_kill9 "$(data "$s")"; done
    for j in "${jobs_[@]}"; do
        wait_for 120 "client $j to exit" pid_dead "$j" || kill -9 "$j"
        wait "$j" 2>/dev/null || true
    done
    for s in "${servers[@]}"; do
        processed[$s]=0
        lg=$T/logs/pgbench-$s-$round.log
        [ -f "$lg" ] || continue   # never started: the daemon crashed first
        processed[$s]=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$lg")
        if [ -z "${processed[$s]}" ]; then   # it could not start: the daemon was gone by then
            # (no connection, or its first query, before any transaction, failed)
            grep -q "connection to server .* failed\|could not count number of branches" "$lg" ||
                { cat "$lg" >&2; die "$s: no pgbench report"; }
            processed[$s]=0
        fi
    done
    log "round $round ($kind): $(($(acked_count "$(acked_file main)") - base)) commits acknowledged on main, pgbench processed ${processed[main]}/${processed[dev]}/${processed[past]} (main/dev/past)$([ "$up" = 1 ] || echo "; the daemon crashed while the servers started")"

    if [ "$durability" = remote ]; then      # the machine is gone: a new state dir
        rm -rf "$T/state"
        log "round $round: state directory removed; remounting from the repository alone"
    fi
    lakefs_mount "$url" "$mp" -o "$opts"
    for s in "${servers[@]}"; do pg_start "$(data "$s")"; check_server "$s"; done
    for s in "${servers[@]}"; do pg_stop "$(data "$s")"; pg_checksums_clean "$(data "$s")"; pg_start "$(data "$s")"; done
done

for s in "${servers[@]}"; do pg_stop "$(data "$s")"; done
lakefs_umount "$mp"
ok "${#rounds[@]} crash rounds on main, dev and past: every acknowledged commit, invariant, row counts, amcheck, checksums"

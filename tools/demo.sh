#!/usr/bin/env bash
# tools/demo.sh -- the quick start: install packages, build, make install,
# create a fresh repository file:///var/tmp/lakefs-demo/repo, mount it at
# /mnt/lake, run PostgreSQL 15 on branches/main with pgbench, stop, unmount,
# mount again and show that the data survived; branch dev from the running
# main, run a second server on it and show that the two diverge; time
# travel: after a mistake on main, a server on the read-only view
# main@LSN and a branch made --at the moment before it show the rows as
# they were; the same point published as Delta Lake tables (lakefs export).
# Run as root on Debian 12.
#
# environment: DEMO_DIR (default /var/tmp/lakefs-demo), DEMO_MNT (default
# /mnt/lake), DEMO_NO_BUILD=1 to use the lakefs already on PATH.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
. tests/e2e/lib.sh

demo=${DEMO_DIR:-/var/tmp/lakefs-demo}
mnt=${DEMO_MNT:-/mnt/lake}
url=file://$demo/repo
need_root

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '$ %s\n' "$*"; "$@"; }

# ---------------------------------------------------------------- build
if [ "${DEMO_NO_BUILD:-0}" != 1 ]; then
    step "packages"
    install_packages
    step "build and install (./configure && make && make install)"
    { autoreconf -fi && ./configure && make -j"$(nproc)" && make install; } >/tmp/lakefs-demo-build.log 2>&1 ||
        { tail -n 40 /tmp/lakefs-demo-build.log; die "build failed (log: /tmp/lakefs-demo-build.log)"; }
fi
LAKEFS=$(command -v lakefs) || die "lakefs is not on PATH after make install"
echo "using $LAKEFS ($("$LAKEFS" --version))"

# ---------------------------------------------------------------- fresh start
step "fresh repository $url"
if mountpoint -q "$mnt"; then
    umount "$mnt" || fusermount3 -u -z "$mnt"
fi
mkdir -p "$mnt"
[ -z "$(ls -A "$mnt")" ] || die "$mnt is not empty"

# lib.sh bookkeeping (logs, cleanup on error) in the demo directory
rm -rf "$demo"
bench_dir demo "$demo"
KEEP_TMP=1

show lakefs init "$url"
opts="allow_other,default_permissions,state_dir=$demo/state"
step "mount (lakefs mount $url $mnt -o $opts)"
lakefs_mount "$url" "$mnt" -o "$opts"
show ls -la "$mnt" "$mnt/branches"
data=$mnt/branches/main

# ---------------------------------------------------------------- PostgreSQL
step "initdb on $data, start PostgreSQL"
pg_initdb "$data"
pg_start "$data"
port=${PG_PORT[$data]}
echo "PostgreSQL 15 on port $port, socket directory $PGSOCK"

step "pgbench -i -s 5, then pgbench -T 20 -c 4"
pgbench -i -s 5 -q -h "$PGSOCK" -p "$port" -U postgres postgres 2>&1 | grep -v NOTICE
pgbench -T 20 -c 4 -j 2 -h "$PGSOCK" -p "$port" -U postgres postgres 2>&1 |
    grep -E '^(number of transactions|number of failed|latency average|tps)'
psql_at "$data" -c "CREATE TABLE demo (id int PRIMARY KEY, note text);
                    INSERT INTO demo VALUES (1, 'written before unmount at ' || now())"
before=$(psql_at "$data" -c "SELECT count(*), sum(abalance) FROM pgbench_accounts")
hist=$(psql_at "$data" -c "SELECT count(*) FROM pgbench_history")
echo "pgbench_accounts: count|sum(abalance) = $before, pgbench_history rows: $hist"

step "stop PostgreSQL, unmount"
pg_stop "$data"
lakefs_umount "$mnt" umount

step "mount again, start PostgreSQL, the data is there"
lakefs_mount "$url" "$mnt" -o "$opts"
pg_start "$data" "$port"
after=$(psql_at "$data" -c "SELECT count(*), sum(abalance) FROM pgbench_accounts")
echo "pgbench_accounts: count|sum(abalance) = $after"
psql_at "$data" -c "SELECT * FROM demo"
[ "$after" = "$before" ] || die "data differs after remount: $before vs $after"
[ "$(psql_at "$data" -c "SELECT count(*) FROM pgbench_history")" = "$hist" ] ||
    die "pgbench_history differs after remount"
pgbench_invariant "$data"
echo "the data survived unmount + mount"

# ---------------------------------------------------------------- branch
dev=$mnt/branches/dev
step "branch dev from the running main (instant, any size), PostgreSQL on it"
(cd "$data" && show lakefs branch create dev --from main)
show ls "$mnt/branches"
pg_start "$dev"
echo "PostgreSQL 15 on dev: port ${PG_PORT[$dev]} (crash recovery from main's state at the branch point)"
psql_at "$dev" -c "INSERT INTO demo VALUES (2, 'written on dev only')"
psql_at "$data" -c "INSERT INTO demo VALUES (3, 'written on main only')"
echo "main:"; psql_at "$data" -c "SELECT id, note FROM demo ORDER BY id"
echo "dev:";  psql_at "$dev" -c "SELECT id, note FROM demo ORDER BY id"
[ "$(psql_at "$dev" -c "SELECT string_agg(id::text, ',' ORDER BY id) FROM demo")" = "1,2" ] ||
    die "dev does not hold exactly its own rows"
[ "$(psql_at "$data" -c "SELECT string_agg(id::text, ',' ORDER BY id) FROM demo")" = "1,3" ] ||
    die "main does not hold exactly its own rows"
pgbench_invariant "$dev"
show lakefs branch --repo "$url" list

# ---------------------------------------------------------------- time travel
step "time travel: main as it was before a mistake"
lsn=$(psql_at "$data" -c "SELECT pg_current_wal_insert_lsn()")
when=$(psql_at "$data" -c "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')")
echo "main is at LSN $lsn, $when; now the mistake:"
psql_at "$data" -c "DELETE FROM demo" -c "INSERT INTO demo VALUES (4, 'after the mistake')"
echo "main:"; psql_at "$data" -c "SELECT id, note FROM demo ORDER BY id"
view=$mnt/branches/main@${lsn/\//-}
echo "PostgreSQL on the read-only view $view (recovers to exactly that LSN):"
pg_start "$view"
psql_at "$view" -c "SELECT id, note FROM demo ORDER BY id"
[ "$(psql_at "$view" -c "SELECT string_agg(id::text, ',' ORDER BY id) FROM demo")" = "1,3" ] ||
    die "the view at $lsn does not show main's rows of that moment"
pg_stop "$view"
(cd "$data" && show lakefs branch create restored --from main --at "$when")
pg_start "$mnt/branches/restored"
echo "restored (read-write, from $when on):"
psql_at "$mnt/branches/restored" -c "SELECT id, note FROM demo ORDER BY id"
[ "$(psql_at "$mnt/branches/restored" -c "SELECT string_agg(id::text, ',' ORDER BY id) FROM demo")" = "1,3" ] ||
    die "the branch at $when does not show main's rows of that moment"
pg_stop "$mnt/branches/restored"
show lakefs log main --repo "$url"

# ---------------------------------------------------------------- lakehouse
step "lakehouse: main at $lsn published as Delta Lake tables"
(cd "$data" && show lakefs export main --at "$lsn" --table public.demo --table public.pgbench_accounts \
    --to "file://$demo/lake")
(cd "$demo/lake" && find . -type f | LC_ALL=C sort | sed 's|^\./|  |')
grep -qF '\"numRecords\":2,' "$demo/lake/public.demo/_delta_log/00000000000000000000.json" ||   # the add's stats (a JSON string)
    die "the Delta table public.demo does not hold the 2 rows of $lsn"

step "stop both servers, unmount"
pg_stop "$dev"
pg_stop "$data"
lakefs_umount "$mnt" umount
echo
echo "Done. Repository: $url; mount it again with:"
echo "  lakefs mount $url $mnt -o $opts"

#!/usr/bin/env bash
# tools/demo.sh -- the quick start: install packages, build, make install,
# create a fresh repository file:///var/tmp/lakefs-demo/repo, mount it at
# /mnt/lake, run PostgreSQL 15 on branches/main with pgbench, stop, unmount,
# mount again and show that the data survived. Run as root on Debian 12.
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
rm -rf "$demo"
mkdir -p "$demo" "$mnt"
[ -z "$(ls -A "$mnt")" ] || die "$mnt is not empty"
show lakefs init "$url"

# lib.sh bookkeeping (logs, cleanup on error) in the demo directory
T=$demo
E2E_NAME=demo
KEEP_TMP=1
mkdir -p "$T/logs" "$T/asan"
chmod 0755 "$T"
chmod 1777 "$T/logs" "$T/asan"
sanitizer_env "$T/asan"
trap _run_cleanups EXIT
trap 'exit 130' INT TERM HUP

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

# ---------------------------------------------------------------- later
# DEMO-BRANCH: (issue to come) lakefs branch create dev --from main, start a
# second PostgreSQL on $mnt/branches/dev, show both branches diverge.
# DEMO-TIME-TRAVEL: (issue to come) lakefs log main; mount main@LSN read-only
# and query the state as of that LSN.

step "stop PostgreSQL, unmount"
pg_stop "$data"
lakefs_umount "$mnt" umount
echo
echo "Done. Repository: $url; mount it again with:"
echo "  lakefs mount $url $mnt -o $opts"

#!/usr/bin/env bash
# Compaction, retention, garbage collection, fsck and failpoints (issue 6).
# 1. Settings: `lakefs config get` shows the default window (7d); `config
#    set retention=` changes it; a bad duration or an unknown setting is
#    refused with one line and a non-zero exit, changing nothing.
# 2. Compaction under load: main mounted with 1 MiB memtables takes
#    pgbench -i -s 5 (about a hundred flushes): the daemon merges layers
#    meanwhile, and once the writes stop its newest manifest comes within
#    compact.h's bound, 1 + log1.5(bytes / 1 MiB + 2) runs of main's own, where
#    without compaction there would be one per flush.  `lakefs stats main`
#    (the daemon's counters): reads reached the layers, and none consulted
#    more layers than the bound of the layer set it read; once unmounted,
#    `lakefs stats main` says so in one line, exit 1.
# 3. GC against a live writer: `lakefs gc --retention 0` runs again and
#    again while pgbench writes to main and a branch made mid-run is
#    written too; no transaction fails, and after unmount and remount (no
#    cache left) pg_amcheck --heapallindexed is clean, pgbench's balances
#    agree and pg_checksums --check passes on both branches.  The layers
#    take fewer bytes than before, and fsck finds nothing damaged.
# 4. `gc --dry-run` reports manifests to free and deletes nothing (the
#    repository listing is unchanged).
# 5. A mounted time-travel view pins its generation: gc --retention 0 keeps
#    it (fsck: every layer it names is there) and the view's files read
#    back the same; the pin is gone at unmount.
# 6. Deleting a branch frees its data: after `branch delete` and gc,
#    nothing of it is left in the repository.
# 7. fsck (file://): a flipped byte in a layer is reported, naming the
#    layer, with exit 1; a copy of a layer under an unused name is reported
#    as an orphan (exit 0) and `fsck --repair` removes exactly it.
# 8. Failpoints: the daemon crashing right after its fourth layer upload
#    under pgbench, and gc crashing between deleting manifests and layers,
#    leave a repository that fsck finds undamaged; after a remount,
#    PostgreSQL recovers with amcheck, the balances and checksums clean,
#    and gc then runs to the end.
# backends: file s3
set -euo pipefail
. "$(dirname "$0")/lib.sh"
e2e_setup gc
unset LAKEFS_REPO

url=$(repo_url repo)
common=allow_other,default_permissions,memtable_size=1M,gc_interval=0
mp=$T/mnt main=$T/mnt/branches/main dev=$T/mnt/branches/dev
mkdir -p "$mp"
lakefs_init "$url"
lk() { "$LAKEFS" "$@"; }

# objects PREFIX: "KEY SIZE" lines of the objects under PREFIX (of the repository)
objects() {
    if [ "$LAKEFS_TEST_BACKEND" = s3 ]; then
        s3_listing "$S3_BUCKET" "${url#s3://"$S3_BUCKET"/}/$1"
    else
        local d=${url#file://}
        (cd "$d" && find "$1" -type f -printf '%p %s\n' 2>/dev/null | LC_ALL=C sort) || true
    fi
}
layer_bytes() { objects branches/ | awk '$1 ~ /\/layers\// { n += $2 } END { print n + 0 }'; }
daemon_log() { cat "$T"/logs/*daemon-mnt*.log; }

# ---- 1. settings
[ "$(lk config get --repo "$url")" = "retention=604800s" ] || die "default retention is not 7d"
expect_fail "config set retention=abc" "$LAKEFS" config set retention=abc --repo "$url"
msg_says "config set retention=abc" "bad retention"
expect_fail "config set color=blue" "$LAKEFS" config set color=blue --repo "$url"
msg_says "config set color=blue" "unknown setting"
expect_fail "gc --retention xyz" "$LAKEFS" gc --retention xyz --repo "$url"
msg_says "gc --retention xyz" "bad retention"
lk config set retention=5min --repo "$url" >/dev/null || die "config set retention=5min failed"
[ "$(lk config get retention --repo "$url")" = "retention=300s" ] || die "retention=5min not stored"
lk config set retention=7d --repo "$url" >/dev/null || die "config set retention=7d failed"
ok "config get/set retention, bad input refused"

# ---- 2. compaction under load
lakefs_mount "$url" "$mp" -o "$common"
pg_initdb "$main"
pg_start "$main"
pgbench -i -s 5 -q -h "$PGSOCK" -p "${PG_PORT[$main]}" -U postgres postgres >"$(newlog pgbench-init)" 2>&1 ||
    die "pgbench -i -s 5 failed"
merges=$(daemon_log | grep -c 'compacted' || true)
[ "$merges" -gt 0 ] || die "no compaction during pgbench -i"
ok "the daemon compacted $merges times during pgbench -i -s 5"
pg_stop "$main"
# main_runs: "RUNS BYTES BOUND" of main's own layers in its newest manifest
main_runs() {
    local m
    m=$(objects branches/main/manifest/ | tail -n 1 | awk '{ print $1 }')
    if [ "$LAKEFS_TEST_BACKEND" = s3 ]; then
        s3_curl GET "$S3_BUCKET/$m" 2>/dev/null
    else
        cat "${url#file://}/$m"
    fi | awk '$1 == "layer" && $2 ~ /^branches\/main\/layers\// { r[$3 " " $4] = 1; b += $5 }
        END { f = 1048576; s = f; n = 1; while (s + int(s / 2) < b + 2 * f) { s += int(s / 2); n++ }
              print length(r), b + 0, n }'
}
within_bound() { local r b n; read -r r b n < <(main_runs); [ "$r" -le "$n" ]; }
# the compactor goes on after the last flush: wait for it to meet the bound
wait_for 120 "main's runs to come within the bound" within_bound ||
    die "main's newest manifest: $(main_runs | awk '{ print $1 " runs for " $2 " bytes, over the bound " $3 }')"
read -r runs bytes bound < <(main_runs)
ok "main: $runs runs of its own for $bytes bytes (bound $bound)"
stats=$(lk stats main --repo "$url") || die "lakefs stats main failed"
stat_of() { echo "$stats" | awk -v k="$1" '$1 == k { print $2 }'; }
[ "$(stat_of reads)" -gt 0 ] || die "no read reached the layers: $(echo $stats)"
[ "$(stat_of over_bound)" -eq 0 ] || die "reads consulted more layers than the bound: $(echo $stats)"
[ "$(stat_of probes_max)" -le "$(stat_of bound)" ] || die "probes_max over the bound: $(echo $stats)"
holds=$(daemon_log | grep -c 'a flush waits for a merge' || true)
ok "lakefs stats main: $(stat_of reads) reads of the layers consulted $(stat_of probes) layers," \
    "at most $(stat_of probes_max) (bound $(stat_of bound)), $(stat_of over_bound) over the bound;" \
    "$holds flushes held back for a merge"
lakefs_umount "$mp"
expect_fail "stats of an unmounted branch" "$LAKEFS" stats main --repo "$url"
msg_says "stats of an unmounted branch" "is not mounted by a daemon on this machine"

# ---- 3. gc against a live writer (main and a branch made mid-run)
lakefs_mount "$url" "$mp" -o "$common"
pg_start "$main"
lg=$(newlog pgbench-run)
pgbench -T 20 -c 4 -j 2 -h "$PGSOCK" -p "${PG_PORT[$main]}" -U postgres postgres >"$lg" 2>&1 &
bench=$!
on_exit "kill $bench 2>/dev/null || true"
lk branch create dev --from main --repo "$url" >/dev/null || die "branch create dev during pgbench failed"
pg_start "$dev"
psql_at "$dev" -c "CREATE TABLE dev_only AS SELECT g FROM generate_series(1, 50000) g" || die "write to dev failed"
gcs=0
while pid_alive "$bench"; do
    lk gc --retention 0 --repo "$url" >>"$(newlog gc-live)" 2>&1 || die "gc during pgbench failed"
    gcs=$((gcs + 1))
done
wait "$bench" || { tail -n 20 "$lg" >&2; die "pgbench failed while gc ran"; }
grep -q '^number of failed transactions: 0 ' "$lg" || die "pgbench had failed transactions while gc ran"
[ "$gcs" -ge 1 ] || die "gc did not run during pgbench"   # the first run can take most of the 20 s on s3
ok "$gcs gc runs (retention 0) during pgbench -T 20: $(grep -m1 '^tps' "$lg")"
dbsize=$(psql_at "$main" -c "SELECT sum(pg_database_size(oid)) FROM pg_database") || die "size query failed"
pg_stop "$dev"
pg_stop "$main"
lakefs_umount "$mp"
before=$(layer_bytes)
lk gc --retention 0 --repo "$url" >>"$(newlog gc-live)" 2>&1 || die "gc after pgbench failed"
after=$(layer_bytes)
[ "$after" -lt "$before" ] || die "gc freed nothing: layers $before -> $after bytes"
ok "gc --retention 0: layers $before -> $after bytes (main's databases: $dbsize bytes)"
lakefs_mount "$url" "$mp" -o "$common"
pg_checksums_clean "$main"
pg_checksums_clean "$dev"
pg_start "$main"
pg_start "$dev"
pg_amcheck_clean "$main"
pgbench_invariant "$main"
pg_amcheck_clean "$dev"
[ "$(psql_at "$dev" -c 'SELECT count(*) FROM dev_only')" = 50000 ] || die "dev lost rows after gc"
lk fsck --repo "$url" >"$T/fsck.out" 2>&1 || { cat "$T/fsck.out" >&2; die "fsck found damage after gc"; }
ok "after gc and a remount: both branches clean, fsck clean"

# ---- 4. (new generations for section 6's dry run)
psql_at "$main" -c "CREATE TABLE churn AS SELECT g, md5(g::text) FROM generate_series(1, 100000) g; CHECKPOINT" ||
    die "write failed"

# ---- 5. a mounted view pins its generation
lsn=$(psql_at "$main" -c "SELECT pg_current_wal_lsn()")
psql_at "$main" -c "CREATE TABLE later AS SELECT g FROM generate_series(1, 10000) g; CHECKPOINT" || die "write failed"
view="$mp/branches/main@${lsn/\//-}"
sum_before=$(cd "$view" && find . -type f ! -name '*.pid' -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum)
[ -n "$(objects branches/main/pins/)" ] || die "the view left no pin"
lk gc --retention 0 --repo "$url" >>"$(newlog gc-view)" 2>&1 || die "gc with a view failed"
pinned=$(objects branches/main/pins/ | head -n 1 | awk '{ print $1 }')
gen=${pinned##*/}
gen=${gen%%-*}
[ -n "$(objects "branches/main/manifest/$gen")" ] || die "gc removed the pinned generation $gen"
lk fsck --repo "$url" >"$T/fsck.out" 2>&1 || { cat "$T/fsck.out" >&2; die "fsck found damage with a pinned view"; }
sum_after=$(cd "$view" && find . -type f ! -name '*.pid' -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum)
[ "$sum_before" = "$sum_after" ] || die "the view's files changed after gc"
ok "a view pins generation $gen: kept by gc, its files unchanged"

# ---- 6. deleting a branch frees its data
pg_stop "$dev"
pg_stop "$main"
lakefs_umount "$mp"
[ -z "$(objects branches/main/pins/)" ] || die "the view's pin outlived the mount"
# --dry-run deletes nothing (nothing runs now)
listing=$(objects branches/)
out=$(lk gc --dry-run --retention 0 --repo "$url") || die "gc --dry-run failed"
tofree=$(echo "$out" | sed -n 's/.* \([0-9]*\) manifests to free$/\1/p')
[ "${tofree:-0}" -gt 0 ] || die "gc --dry-run reports no manifests to free: $out"
[ "$(objects branches/)" = "$listing" ] || die "gc --dry-run changed the repository"
ok "gc --dry-run: $(echo "$out" | tail -n 1); nothing changed"
[ -n "$(objects branches/dev/layers/)" ] || die "dev wrote no layers of its own"
lk branch delete dev --repo "$url" >/dev/null || die "branch delete dev failed"
lk gc --repo "$url" >>"$(newlog gc)" 2>&1 || die "gc after delete failed"
[ -z "$(objects branches/dev/)" ] || die "objects of the deleted branch dev remain: $(objects branches/dev/ | head -n 3)"
ok "pin gone at unmount; deleted branch dev left nothing behind"

# ---- 7. fsck finds damage and orphans (file://: objects edited in place)
if [ "$LAKEFS_TEST_BACKEND" = file ]; then
    repo=${url#file://}
    layer=$(ls -S "$repo"/branches/main/layers/*.layer | sed -n 1p)
    cp "$layer" "$T/pristine"
    size=$(stat -c %s "$layer")
    byte=$(od -An -tu1 -j $((size / 3)) -N1 "$layer" | tr -d ' ')
    printf "$(printf '\\%03o' $(((byte + 1) % 256)))" | dd of="$layer" bs=1 seek=$((size / 3)) conv=notrunc status=none
    rc=0
    lk fsck "$url" >"$T/fsck.out" 2>&1 || rc=$?
    [ "$rc" = 1 ] || die "fsck of a flipped byte exited $rc"
    grep -q "DAMAGED branches/main/layers/$(basename "$layer")" "$T/fsck.out" || die "fsck did not name the layer"
    cp "$T/pristine" "$layer"
    orphan="$repo/branches/main/layers/0000000000000001-0000000000000001-0000000000000001-0badf00d.layer"
    cp "$layer" "$orphan"
    lk fsck "$url" >"$T/fsck.out" 2>&1 || die "fsck with an orphan failed"
    grep -q "^orphan branches/main/layers/$(basename "$orphan")" "$T/fsck.out" || die "fsck did not report the orphan"
    listing=$(objects branches/)
    lk fsck "$url" --repair >/dev/null 2>&1 || die "fsck --repair failed"
    [ ! -e "$orphan" ] || die "fsck --repair left the orphan"
    [ "$(objects branches/)" = "$(echo "$listing" | grep -v 0badf00d)" ] || die "fsck --repair removed more than the orphan"
    ok "fsck: a flipped byte reported (exit 1), an orphan reported and removed by --repair, nothing else"
fi

# ---- 8. failpoints: a daemon crash after an upload, a gc crash half-way
LAKEFS_FAILPOINTS=layer-upload-after=crash@4 lakefs_mount "$url" "$mp" -o "$common"
pg_start "$main"
pgbench_invariant "$main"
pgbench -n -T 60 -c 4 -j 2 -h "$PGSOCK" -p "${PG_PORT[$main]}" -U postgres postgres >"$(newlog pgbench-crash)" 2>&1 || true
pid=${DAEMON_PID[$mp]}
wait_for 60 "the daemon to crash at its failpoint" pid_dead "$pid" || die "the failpoint did not end the daemon"
rc=0
wait "$pid" || rc=$?
[ "$rc" = 86 ] || die "daemon exited $rc, not at the failpoint (86)"
pg_kill9 "$main"
unset "DAEMON_PID[$mp]"
fusermount3 -u -z "$mp" 2>/dev/null || umount -l "$mp" 2>/dev/null || true
wait_for 30 "the dead mount to detach" not_mounted "$mp" || die "cannot detach the dead mount $mp"
lk fsck --repo "$url" >"$T/fsck.out" 2>&1 || { cat "$T/fsck.out" >&2; die "fsck found damage after the daemon crashed"; }
lakefs_mount "$url" "$mp" -o "$common"
pg_start "$main"
pg_amcheck_clean "$main"
pgbench_invariant "$main"
pg_stop "$main"
pg_checksums_clean "$main"
rc=0
LAKEFS_FAILPOINTS=gc-manifests-deleted=crash lk gc --retention 0 --repo "$url" >/dev/null 2>&1 || rc=$?
[ "$rc" = 86 ] || die "gc exited $rc, not at its failpoint (86)"
lk fsck --repo "$url" >"$T/fsck.out" 2>&1 || { cat "$T/fsck.out" >&2; die "fsck found damage after gc crashed"; }
lk gc --retention 0 --repo "$url" >>"$(newlog gc)" 2>&1 || die "gc after its crash failed"
out=$(lk fsck --repo "$url") || die "fsck after gc failed"
echo "$out" | grep -q ' 0 orphaned layers' || die "orphans left after gc: $out"
pg_start "$main"
pg_amcheck_clean "$main"
pgbench_invariant "$main"
pg_stop "$main"
lakefs_umount "$mp"
ok "failpoints: crashes after an upload and inside gc leave a sound repository"
ok "t95 done"

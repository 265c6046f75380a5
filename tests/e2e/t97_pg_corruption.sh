#!/usr/bin/env bash
# Corruption under PostgreSQL (issue 6): one flipped byte in one layer is
# named by fsck, costs PostgreSQL the affected relation only, and once the
# object is deleted fsck reports exactly that loss.
# 1. PostgreSQL on branches/main gets a small table `keep` (5000 rows, a
#    primary key; a digest of its rows noted), then stops; the clean
#    unmount flushes everything into layers. In a second session (1 GiB
#    memtable: everything it writes lands in one run, every version of a
#    page in one block) a table `hurt` of 26 MB of random md5 text
#    (autovacuum off, so nothing but this test reads it) is created and the
#    repository unmounted again.
# 2. The layer to damage is one this second session added to the newest
#    manifest; its index (store/layer_format.h) gives each block's first
#    key, so a block whose first key and the next block's first key are
#    both pages of hurt's relation file (its store inode: the file's inode
#    number less the view bits) holds hurt's pages and nothing else. One
#    byte in the middle of such a block is flipped.
# 3. `lakefs fsck URL` exits 1, with exactly one DAMAGED line, naming that
#    object (and the block's checksum mismatch).
# 4. Remounted: PostgreSQL starts; a full scan of hurt fails with "could
#    not read block N in file <hurt's file>: Input/output error", N one of
#    the damaged block's pages, and pg_amcheck of hurt fails too; keep reads
#    back whole (the same digest), pg_amcheck --heapallindexed of keep and
#    the system catalogs is clean, writes still work; the daemon log names
#    the object, the block and the checksum mismatch; clean stop, unmount.
# 5. The damaged object deleted: fsck exits 1 with exactly one DAMAGED
#    line, saying that the layer is missing, its size, and every
#    generation that needs it, as ranges per branch (which ones do is worked
#    out from the manifests themselves); every other layer still verifies.
# (file:// only: the test edits and deletes an object in place.)
set -euo pipefail
. "$(dirname "$0")/lib.sh"
e2e_setup pg_corruption
unset LAKEFS_REPO

url=$(repo_url repo)
repo=${url#file://}
mp=$T/mnt main=$T/mnt/branches/main
mkdir -p "$mp"
common=allow_other,default_permissions,state_dir=$T/state,gc_interval=0
lakefs_init "$url"

keep_digest() { psql_at "$main" -c "SELECT count(*) || ' ' || md5(string_agg(id || ':' || v, ',' ORDER BY id)) FROM keep"; }
layers_now() { (cd "$repo" && ls branches/main/layers/ | LC_ALL=C sort); }
newest_manifest() { ls "$repo"/branches/main/manifest/ | LC_ALL=C sort | tail -n 1; }

# ---------------------------------------------------------------- 1. keep, then hurt
lakefs_mount "$url" "$mp" -o "$common"
pg_initdb "$main"
pg_start "$main"
psql_at "$main" -c "CREATE TABLE keep (id int PRIMARY KEY, v text NOT NULL)" \
    -c "INSERT INTO keep SELECT g, md5(g::text) FROM generate_series(1, 5000) g" || die "creating keep failed"
keep_want=$(keep_digest)
[ "${keep_want%% *}" = 5000 ] || die "keep has ${keep_want%% *} rows, want 5000"
pg_stop "$main"
lakefs_umount "$mp"
layers_now >"$T/layers.1"
ok "session 1: keep ($keep_want) in $(grep -c '' "$T/layers.1") layers"

lakefs_mount "$url" "$mp" -o "$common,memtable_size=1G"
pg_start "$main"
psql_at "$main" -c "CREATE TABLE hurt (id int, v text) WITH (autovacuum_enabled = off)" \
    -c "INSERT INTO hurt SELECT g, md5(random()::text) || md5(random()::text) || md5(random()::text) ||
        md5(random()::text) FROM generate_series(1, 160000) g" || die "creating hurt failed"
hurt_file=$(psql_at "$main" -c "SELECT pg_relation_filepath('hurt')")
hurt_pages=$(psql_at "$main" -c "SELECT pg_relation_size('hurt') / 8192")
[ "$hurt_pages" -gt 2500 ] || die "hurt has only $hurt_pages pages"
pg_stop "$main"
# the store inode of hurt's file: the inode number without the view's bits (fs.c: VIEW_SHIFT)
hurt_ino=$(( $(stat -c %i "$main/$hurt_file") & ((1 << 48) - 1) ))
lakefs_umount "$mp"
ok "session 2: hurt, $hurt_pages pages in $hurt_file (store inode $hurt_ino)"

# ---------------------------------------------------------------- 2. one byte of one block of hurt's
# layer_blocks FILE: "BLOCK OFFSET CLEN KIND INO PAGE" for each block of a
# layer, from its index (KIND 3 is a page key: INO and PAGE, else -1 -1)
layer_blocks() {
    perl -e '
        open(my $f, "<:raw", $ARGV[0]) or die "$ARGV[0]: $!\n";
        local $/; my $d = <$f>; my $n = length $d;
        my $ft = substr($d, $n - 64, 64);
        substr($ft, 0, 8) eq "LKFSLYR1" or die "$ARGV[0]: no layer footer\n";
        my ($ioff, $ilen) = unpack("Q<Q<", substr($ft, 16, 16));
        my $ix = substr($d, $ioff, $ilen); my $p = 0;
        my $varint = sub { my ($v, $s) = (0, 0);
            while (1) { my $b = ord(substr($ix, $p++, 1)); $v |= ($b & 0x7f) << $s; last unless $b & 0x80; $s += 7 }
            return $v };
        my $nb = $varint->();
        for my $i (0 .. $nb - 1) {
            my $kl = $varint->(); my $k = substr($ix, $p, $kl); $p += $kl;
            my ($off, $cl) = unpack("Q<L<", substr($ix, $p, 12)); $p += 20;
            my ($kind, $ino, $pg) = (ord(substr($k, 0, 1)), -1, -1);
            ($ino, $pg) = unpack("Q>Q>", substr($k, 1, 16)) if $kind == 3 && $kl == 17;
            print "$i $off $cl $kind $ino $pg\n";
        }' "$1"
}

gen=$(newest_manifest)
awk '$1 == "layer" { print $2 }' "$repo/branches/main/manifest/$gen" | LC_ALL=C sort >"$T/named"
[ -s "$T/named" ] || die "manifest $gen names no layer"
best='' best_n=0
for key in $(comm -23 "$T/named" <(sed 's#^#branches/main/layers/#' "$T/layers.1")); do
    # blocks holding hurt's pages only: the block and the next one begin with one of them
    layer_blocks "$repo/$key" | awk -v ino="$hurt_ino" '
        hurt && $4 == 3 && $5 == ino { print blk, $6 }
        { hurt = ($4 == 3 && $5 == ino); blk = $1 " " $2 " " $3 " " $6 }' >"$T/cand"
    n=$(grep -c '' "$T/cand" || true)
    log "session 2 layer $key: $n blocks of hurt's pages alone"
    if [ "$n" -gt "$best_n" ]; then best=$key best_n=$n; cp "$T/cand" "$T/cand.best"; fi
done
[ "$best_n" -ge 100 ] || die "no layer of session 2 holds 100 blocks of hurt's pages alone (best: $best_n)"
key=$best layer=$repo/$best
# the middle one of them: block BLK at OFF (CLEN bytes), hurt's pages LO..HI-1
read -r blk off clen lo hi < <(sed -n "$(((best_n + 1) / 2))p" "$T/cand.best")
[ "$lo" -lt "$hi" ] && [ "$hi" -le "$hurt_pages" ] || die "block $blk: pages $lo..$hi out of order or past hurt's end"
cp -p "$layer" "$T/pristine"
byte_at=$((off + clen / 2))
b=$(od -An -tu1 -j "$byte_at" -N 1 "$layer" | tr -d ' ')
# shellcheck disable=SC2059
printf "\\$(printf '%03o' $((b ^ 0xff)))" | dd of="$layer" bs=1 seek="$byte_at" count=1 conv=notrunc status=none ||
    die "cannot write byte $byte_at of $key"
[ "$(cmp -l "$T/pristine" "$layer" | wc -l)" = 1 ] || die "flipping byte $byte_at did not change exactly one byte"
ok "flipped byte $byte_at of $key: block $blk (bytes $off+$clen), hurt's pages $lo..$((hi - 1)) only"

# ---------------------------------------------------------------- 3. fsck names it
rc=0
"$LAKEFS" fsck "$url" >"$T/fsck.out" 2>&1 || rc=$?
[ "$rc" = 1 ] || { cat "$T/fsck.out" >&2; die "fsck of a flipped byte exited $rc, want 1"; }
[ "$(grep -c '^DAMAGED ' "$T/fsck.out")" = 1 ] || { cat "$T/fsck.out" >&2; die "fsck does not report exactly one damaged object"; }
grep -q "^DAMAGED $key: " "$T/fsck.out" || { cat "$T/fsck.out" >&2; die "fsck does not name $key"; }
grep -qF "lakefs: layer $key block $blk: checksum mismatch" "$T/fsck.out" ||
    { cat "$T/fsck.out" >&2; die "fsck does not name block $blk's checksum mismatch"; }
ok "fsck exit 1: $(grep '^DAMAGED ' "$T/fsck.out")"

# ---------------------------------------------------------------- 4. PostgreSQL: hurt only
dlog=$(ls "$T"/logs/*-daemon-"$(basename "$mp")".log)
seen=$(wc -l <"$dlog")
lakefs_mount "$url" "$mp" -o "$common"
pg_start "$main"
if psql_at "$main" -c "SELECT count(*), sum(length(v)) FROM hurt" >"$T/hurt.out" 2>"$T/hurt.err"; then
    die "a full scan of hurt succeeded over a damaged block: $(cat "$T/hurt.out")"
fi
grep -q "could not read block [0-9]* in file \"$hurt_file\": Input/output error" "$T/hurt.err" ||
    die "the scan of hurt failed otherwise: $(cat "$T/hurt.err")"
nbad=$(sed -n 's/.*could not read block \([0-9]*\) in file.*/\1/p' "$T/hurt.err" | head -n 1)
[ "$nbad" -ge "$lo" ] && [ "$nbad" -lt "$hi" ] || die "PostgreSQL could not read block $nbad of hurt, not one of the damaged $lo..$((hi - 1))"
ok "hurt: $(head -n 1 "$T/hurt.err")"
rc=0
pg_amcheck --install-missing -h "$PGSOCK" -p "${PG_PORT[$main]}" -U postgres -d postgres -t public.hurt \
    >"$T/amcheck-hurt.out" 2>&1 || rc=$?
[ "$rc" != 0 ] || die "pg_amcheck of hurt found nothing wrong"
grep -q 'Input/output error' "$T/amcheck-hurt.out" || { cat "$T/amcheck-hurt.out" >&2; die "pg_amcheck of hurt failed, but not with an I/O error"; }
ok "pg_amcheck of hurt: exit $rc, $(grep -m 1 'Input/output error' "$T/amcheck-hurt.out")"

[ "$(keep_digest)" = "$keep_want" ] || die "keep reads back as $(keep_digest), want $keep_want"
lg=$(newlog amcheck-keep)
pg_amcheck --install-missing --heapallindexed -h "$PGSOCK" -p "${PG_PORT[$main]}" -U postgres -d postgres \
    -t public.keep -s pg_catalog -v >"$lg" 2>&1 || { cat "$lg" >&2; die "pg_amcheck of keep and the catalogs is not clean"; }
grep -q 'keep' "$lg" && grep -q 'pg_class' "$lg" || { cat "$lg" >&2; die "pg_amcheck did not check keep and pg_class"; }
psql_at "$main" -c "INSERT INTO keep VALUES (5001, 'after')" -c "CHECKPOINT" || die "a write after the read errors failed"
[ "$(psql_at "$main" -c "SELECT v FROM keep WHERE id = 5001")" = after ] || die "the write after the read errors is not there"
ok "keep: all 5000 rows as written, pg_amcheck --heapallindexed of keep and the catalogs clean, writes work"

tail -n +"$((seen + 1))" "$dlog" >"$T/session.log"
grep -qF "lakefs: layer $key block $blk: checksum mismatch" "$T/session.log" ||
    { tail -n 30 "$T/session.log" >&2; die "the daemon log does not name $key block $blk and the checksum mismatch"; }
! grep 'checksum mismatch' "$T/session.log" | grep -vqF "lakefs: layer $key block $blk:" ||
    die "the daemon log names other damage: $(grep 'checksum mismatch' "$T/session.log" | grep -vF "$key block $blk:" | head -n 1)"
ok "daemon log: $(grep -m 1 -F "$key block $blk" "$T/session.log")"
pg_stop "$main"
lakefs_umount "$mp"

# ---------------------------------------------------------------- 5. the object deleted
rm "$layer"
# the manifests naming it, from the manifests themselves
(cd "$repo" && grep -l "^layer $key " branches/*/manifest/* | LC_ALL=C sort) >"$T/naming" || true
[ -s "$T/naming" ] || die "no manifest names $key"
rc=0
"$LAKEFS" fsck "$url" >"$T/fsck2.out" 2>&1 || rc=$?
[ "$rc" = 1 ] || { cat "$T/fsck2.out" >&2; die "fsck with a missing layer exited $rc, want 1"; }
[ "$(grep -c '^DAMAGED ' "$T/fsck2.out")" = 1 ] || { cat "$T/fsck2.out" >&2; die "fsck does not report exactly one damaged object"; }
line=$(grep '^DAMAGED ' "$T/fsck2.out")
# what fsck must say: every generation naming it, as ranges per branch ("generations 6-9, 12 of main")
want=$(awk -F/ '{ b = $2; g = $4 + 0
        if (b == pb && g == last + 1) { last = g; next }
        if (pb != "") out = out (first == last ? first : first "-" last) (b == pb ? ", " : " of " pb "; ")
        if (b != pb) out = out "generations "
        pb = b; first = last = g }
    END { print out (first == last ? first : first "-" last) " of " pb }' "$T/naming")
[ "$line" = "DAMAGED $key: layer is missing ($(stat -c %s "$T/pristine") bytes); the states that need it are lost: $want" ] ||
    die "fsck does not report $key as missing, naming $want: $line"
nlayers=$(sort -u <(cd "$repo" && cat branches/*/manifest/* | awk '$1 == "layer" { print $2 }') | grep -c '')
grep -q " $((nlayers - 1)) layers (.*) verified; 1 damaged;" "$T/fsck2.out" ||
    { cat "$T/fsck2.out" >&2; die "fsck did not verify the other $((nlayers - 1)) layers"; }
ok "fsck exit 1: $line ($(grep -c '' "$T/naming") manifests name it: $(head -n 1 "$T/naming") .. $(tail -n 1 "$T/naming"))"

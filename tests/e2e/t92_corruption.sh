#!/usr/bin/env bash
# Corruption: a flipped byte in a layer object makes the reads that need it
# fail with EIO and a daemon log line naming the object; it never yields
# wrong data, and everything else keeps working. (store/layer.h: every
# zstd block carries a CRC-32C in the index; the index and the footer
# carry their own.)
# 1. A 6 MiB file of random bytes (a copy kept aside, the sha256 of each
#    8 KiB page noted) is written to branches/main/ and the repository
#    unmounted: the clean unmount flushes it into a layer.
# 2. One byte well inside the block area of the largest layer (a third of
#    the way in: all file data) is flipped; after a remount every page is
#    read alone with O_DIRECT, twice: some page reads fail, all with
#    "Input/output error", the same pages both times, one run no longer than
#    a layer block or two (the damage stays local); every other page reads
#    back with exactly its original sha256. A buffered sequential read
#    (cat: kernel and daemon read-ahead) fails too, after a prefix of the
#    original only. The daemon log names the object and the checksum
#    mismatch; the daemon survives; writing a new file still works and the
#    unmount is clean.
# 3. A byte flipped in the footer (the last 64 bytes), then one in the
#    index (located from the footer): the layer cannot be opened, so the
#    mount (repository mount, then -o branch=main) is refused, non-zero
#    exit, nothing mounted, its error naming the object and the defect.
# 4. The pristine object put back, a remount reads the whole file exactly
#    and the file written in 2: the damage went into nothing else.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
e2e_setup corruption

url=$(repo_url repo)
repo=${url#file://}
mp=$T/mnt
mkdir -p "$mp" "$T/pages"
opts=state_dir=$T/state
main=$mp/branches/main
PAGE=8192
npages=768                                  # 6 MiB

# ---------------------------------------------------------------- 1. write
lakefs_init "$url"
lakefs_mount "$url" "$mp" -o "$opts"
head -c $((npages * PAGE)) /dev/urandom >"$T/orig"
head -c $((64 * 1024)) /dev/urandom >"$T/extra"
cp "$T/orig" "$main/data"
sync "$main/data"
lakefs_umount "$mp"

split -b "$PAGE" -d -a 4 "$T/orig" "$T/pages/p"
mapfile -t want < <(cd "$T/pages" && sha256sum p* | cut -d' ' -f1)
[ "${#want[@]}" = "$npages" ] || die "split made ${#want[@]} pages, want $npages"
rm -rf "$T/pages"

layer=$(ls -S "$repo"/branches/main/layers/*.layer | head -n 1)
key=branches/main/layers/$(basename "$layer")
size=$(stat -c %s "$layer")
[ "$size" -gt $((npages * PAGE)) ] || die "largest layer $key has $size bytes, less than the file"
cp -p "$layer" "$T/pristine"
log "the file's data is in $key ($size bytes)"

# flip_byte OFFSET: invert the byte at OFFSET of the layer (from the pristine
# copy); exactly one byte must differ afterwards.
flip_byte() {
    local off=$1 b
    cp -p "$T/pristine" "$layer"
    b=$(od -An -tu1 -j "$off" -N 1 "$layer" | tr -d ' ')
    [ -n "$b" ] || die "cannot read byte $off of $layer"
    # shellcheck disable=SC2059
    printf "\\$(printf '%03o' $((b ^ 0xff)))" |
        dd of="$layer" bs=1 seek="$off" count=1 conv=notrunc status=none || die "cannot write byte $off"
    [ "$(cmp -l "$T/pristine" "$layer" | wc -l)" = 1 ] || die "flipping byte $off did not change exactly one byte"
    log "flipped byte $off of $key ($b -> $((b ^ 0xff)))"
}

# ---------------------------------------------------------------- 2. a block
flip_byte $((size / 3))
dlog=$(ls "$T"/logs/*-daemon-"$(basename "$mp")".log)
seen=$(wc -l <"$dlog")
lakefs_mount "$url" "$mp" -o "$opts"
dpid=${DAEMON_PID[$mp]}

# read_pages PASS: each page alone (O_DIRECT: no page cache, one read each);
# leaves the failed page numbers in BAD.
read_pages() {
    local pass=$1 i got good=0
    BAD=()
    for ((i = 0; i < npages; i++)); do
        if got=$(dd if="$main/data" bs="$PAGE" skip="$i" count=1 iflag=direct status=none 2>"$T/dd.err" |
            sha256sum | cut -d' ' -f1); then
            [ "$got" = "${want[i]}" ] || die "pass $pass: page $i read back WRONG DATA (sha256 $got, want ${want[i]})"
            good=$((good + 1))
        else
            grep -q 'Input/output error' "$T/dd.err" || die "pass $pass: page $i: not EIO: $(cat "$T/dd.err")"
            BAD+=("$i")
        fi
    done
    [ "${#BAD[@]}" -gt 0 ] || die "pass $pass: every page read back although a block of its layer is damaged"
    [ "$good" -gt 0 ] || die "pass $pass: no page could be read; the damage is one block"
    ok "pass $pass: ${#BAD[@]} pages EIO (${BAD[0]}..${BAD[-1]}), $good pages exactly as written"
}

read_pages 1
bad1="${BAD[*]}"
read_pages 2
[ "${BAD[*]}" = "$bad1" ] || die "the failing pages changed between passes: '$bad1', then '${BAD[*]}'"
# one contiguous run, at most two blocks (~64 KiB raw, 8 pages of 8 KiB each)
[ $((BAD[-1] - BAD[0] + 1)) = "${#BAD[@]}" ] || die "the failing pages are not one run: $bad1"
[ "${#BAD[@]}" -le 16 ] || die "${#BAD[@]} pages fail for one flipped byte: the damage spread"
ok "failing pages are one run of ${#BAD[@]} (bytes $((BAD[0] * PAGE))-$(((BAD[-1] + 1) * PAGE - 1)))"

# buffered, sequential: kernel read-ahead and the daemon's prefetching
if cat "$main/data" >"$T/seq" 2>"$T/cat.err"; then
    die "cat of the whole file succeeded although pages ${BAD[0]}..${BAD[-1]} are damaged"
fi
grep -q 'Input/output error' "$T/cat.err" || die "cat failed, but not with EIO: $(cat "$T/cat.err")"
seqlen=$(stat -c %s "$T/seq")
[ "$seqlen" -le $((BAD[0] * PAGE)) ] || die "cat returned $seqlen bytes, past the first damaged page ${BAD[0]}"
cmp -s -n "$seqlen" "$T/seq" "$T/orig" || die "cat returned WRONG DATA in its first $seqlen bytes"
ok "cat fails with EIO after $seqlen correct bytes"

tail -n +"$((seen + 1))" "$dlog" >"$T/session.log"
grep -F "lakefs: layer $key block " "$T/session.log" | grep -q 'checksum mismatch' ||
    { cat "$T/session.log" >&2; die "the daemon log has no line naming $key and the checksum mismatch"; }
ok "daemon log: $(grep -F -m 1 "$key" "$T/session.log")"
pid_alive "$dpid" || die "the daemon died after the read errors"

cp "$T/extra" "$main/extra"
cmp -s "$T/extra" "$main/extra" || die "a file written beside the damage reads back wrong"
lakefs_umount "$mp"
ok "writes still work, clean unmount"

# ---------------------------------------------------------------- 3. footer, index
# mount_refused WHAT DEFECT [-o OPTIONS]: lakefs mount fails, mounts
# nothing, leaves no daemon, and says which object is damaged and how.
mount_refused() {
    local what=$1 defect=$2 rc=0
    shift 2
    timeout 120 "$LAKEFS" mount "$url" "$mp" "$@" >"$T/mount.out" 2>"$T/mount.err" </dev/null || rc=$?
    [ "$rc" != 0 ] || die "$what: mount succeeded over a damaged layer"
    [ "$rc" != 124 ] || die "$what: mount did not return within 120 s"
    not_mounted "$mp" || die "$what: $mp is mounted"
    no_daemon_for "$mp" || die "$what: a daemon is left running"
    ! grep -qv '^lakefs: ' "$T/mount.err" || { cat "$T/mount.err" >&2; die "$what: stderr lines not starting 'lakefs: '"; }
    grep -F "$key" "$T/mount.err" | grep -qF "$defect" ||
        { cat "$T/mount.err" >&2; die "$what: no error naming $key and '$defect'"; }
    ok "$what: mount refused (exit $rc): $(grep -F -m 1 "$defect" "$T/mount.err")"
}

flip_byte $((size - 30))
mount_refused "footer byte" "bad footer" -o "$opts"
mount_refused "footer byte, branch=main" "bad footer" -o "$opts,branch=main"

foot=$((size - 64))
ioff=$(od -An -tu8 -j $((foot + 16)) -N 8 "$T/pristine" | tr -d ' ')
[ -n "$ioff" ] && [ "$ioff" -gt 0 ] && [ "$ioff" -lt "$foot" ] || die "index offset '$ioff' out of range (footer at $foot)"
flip_byte $(((ioff + foot) / 2))
mount_refused "index byte" "index checksum mismatch" -o "$opts"
mount_refused "index byte, branch=main" "index checksum mismatch" -o "$opts,branch=main"

# ---------------------------------------------------------------- 4. restored
cp -p "$T/pristine" "$layer"
cmp -s "$T/pristine" "$layer" || die "cannot restore $layer"
lakefs_mount "$url" "$mp" -o "$opts"
cmp "$T/orig" "$main/data" || die "after restoring the layer, the file differs from what was written"
cmp "$T/extra" "$main/extra" || die "the file written during the damaged session differs"
ok "restored layer: all $npages pages and the later file read back exactly"
lakefs_umount "$mp"

#!/usr/bin/env bash
# Bad input: each case gives a one-line "lakefs: ..." error on stderr, a
# non-zero exit status, mounts nothing and changes nothing in the repository.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
e2e_setup badinput

repo=$T/repo
url=file://$repo
mp=$T/mnt
mkdir -p "$mp" "$T/state"
lakefs_init "$url"
[ -d "$repo" ] || die "lakefs init did not create $repo"
before=$(repo_listing "$repo")

# expect_fail (lib.sh): non-zero exit, one line on stderr starting
# "lakefs: ", returns within 2 minutes.

same_repo() {
    local now
    now=$(repo_listing "$repo")
    [ "$now" = "$before" ] || { diff <(echo "$before") <(echo "$now") >&2; die "$1: repository changed"; }
}

nothing_mounted() {
    local d
    for d in "$@"; do
        not_mounted "$d" || die "$d is mounted"
    done
}

opts=allow_other,default_permissions,state_dir=$T/state

# --- usage
rc=0; "$LAKEFS" >/dev/null 2>&1 || rc=$?
[ "$rc" = 2 ] || die "lakefs without arguments: exit $rc, want 2"
rc=0; "$LAKEFS" frobnicate >/dev/null 2>"$T/logs/usage.err" || rc=$?
[ "$rc" = 2 ] || die "unknown subcommand: exit $rc, want 2"
"$LAKEFS" --version | grep -q '[0-9]' || die "lakefs --version prints no version"
"$LAKEFS" --help >/dev/null || die "lakefs --help failed"
"$LAKEFS" mount --help >/dev/null || die "lakefs mount --help failed"
"$LAKEFS" init --help >/dev/null || die "lakefs init --help failed"
ok "usage, --help, --version"

# --- unknown URL scheme
expect_fail "init foo://" "$LAKEFS" init foo://x
expect_fail "mount foo://" "$LAKEFS" mount foo://x "$mp" -o "$opts"
nothing_mounted "$mp"
[ -z "$(ls -A "$mp")" ] || die "unknown scheme wrote into the mount point"

# --- repository missing
missing=/nonexistent-lakefs-$$/repo
expect_fail "mount missing repository" "$LAKEFS" mount "file://$missing" "$mp" -o "$opts"
nothing_mounted "$mp"
[ ! -e "/nonexistent-lakefs-$$" ] || die "mount of a missing repository created it"

# --- a directory that is not a repository
notrepo=$T/notrepo
mkdir -p "$notrepo/sub"
echo "not a lakefs repository" >"$notrepo/README"
nr_before=$(repo_listing "$notrepo")
expect_fail "mount non-repository" "$LAKEFS" mount "file://$notrepo" "$mp" -o "$opts"
nothing_mounted "$mp"
[ "$(repo_listing "$notrepo")" = "$nr_before" ] || die "mount changed a non-repository directory"
emptydir=$T/emptydir
mkdir "$emptydir"
expect_fail "mount empty directory" "$LAKEFS" mount "file://$emptydir" "$mp" -o "$opts"
[ -z "$(ls -A "$emptydir")" ] || die "mount wrote into an empty non-repository directory"

# --- init over an existing repository
expect_fail "init over existing repository" "$LAKEFS" init "$url"
same_repo "init over existing repository"

# --- mount point missing
expect_fail "mount point missing" "$LAKEFS" mount "$url" "$T/no-such-dir" -o "$opts"
[ ! -e "$T/no-such-dir" ] || die "mount created the missing mount point"
same_repo "mount point missing"

# --- mount point not empty
full=$T/full
mkdir "$full"
echo data >"$full/file"
expect_fail "mount point not empty" "$LAKEFS" mount "$url" "$full" -o "$opts"
nothing_mounted "$full"
[ "$(cat "$full/file")" = data ] || die "non-empty mount point was changed"
same_repo "mount point not empty"

# --- unknown -o option
expect_fail "unknown -o option" "$LAKEFS" mount "$url" "$mp" -o "allow_other,frobnicate=1"
expect_fail "unknown -o option (alone)" "$LAKEFS" mount "$url" "$mp" -o "nosuchoption"
expect_fail "bad readahead" "$LAKEFS" mount "$url" "$mp" -o "$opts,readahead=lots"
msg_says "bad readahead" "readahead" "lots"
expect_fail "readahead too large" "$LAKEFS" mount "$url" "$mp" -o "$opts,readahead=1025"
expect_fail "bad writeback_cache" "$LAKEFS" mount "$url" "$mp" -o "$opts,writeback_cache=maybe"
msg_says "bad writeback_cache" "writeback_cache" "maybe"
expect_fail "bad block_cache" "$LAKEFS" mount "$url" "$mp" -o "$opts,block_cache=big"
msg_says "bad block_cache" "block_cache" "big"
expect_fail "block_cache of 0" "$LAKEFS" mount "$url" "$mp" -o "$opts,block_cache=0"
expect_fail "block_cache below 1M" "$LAKEFS" mount "$url" "$mp" -o "$opts,block_cache=16K"
msg_says "block_cache below 1M" "block_cache" "16K" "1M"
nothing_mounted "$mp"
same_repo "unknown -o option"

# --- unknown branch
expect_fail "unknown branch" "$LAKEFS" mount "$url#nosuchbranch" "$mp" -o "$opts"
expect_fail "unknown branch option" "$LAKEFS" mount "$url" "$mp" -o "$opts,branch=nosuchbranch"
nothing_mounted "$mp"
same_repo "unknown branch"

# --- the same branch mounted read-write by another daemon
lakefs_mount "$url" "$mp" -o "$opts"
echo "first daemon" >"$mp/branches/main/owner"
mp2=$T/mnt2
mkdir "$mp2"
expect_fail "second daemon, same state dir" "$LAKEFS" mount "$url" "$mp2" -o "$opts"
nothing_mounted "$mp2"
expect_fail "second daemon, branch mount" "$LAKEFS" mount "$url#main" "$mp2" -o "$opts"
nothing_mounted "$mp2"
expect_fail "second daemon, other state dir" \
    "$LAKEFS" mount "$url" "$mp2" -o "allow_other,default_permissions,state_dir=$T/state2"
nothing_mounted "$mp2"
[ -z "$(ls -A "$mp2")" ] || die "failed mount left files in $mp2"
# the first daemon is unharmed
[ "$(cat "$mp/branches/main/owner")" = "first daemon" ] || die "first mount lost data"
echo more >>"$mp/branches/main/owner"
sync "$mp/branches/main/owner"
lakefs_umount "$mp"
lakefs_mount "$url" "$mp" -o "$opts"
[ "$(cat "$mp/branches/main/owner")" = "first daemon
more" ] || die "data written by the first daemon did not survive remount"
lakefs_umount "$mp"
ok "second read-write daemon refused, first one unharmed"

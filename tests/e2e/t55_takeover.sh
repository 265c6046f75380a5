#!/usr/bin/env bash
# One writer per branch: a second daemon on the same branch (its own state
# directory, as another machine would have) is refused while the first one
# lives; it takes over automatically once the first was killed on this
# machine, and with -o takeover from a live (here: frozen) daemon, seeing
# what the old one had committed to the repository (in the default local
# durability mode, what is only in the old machine's journal stays there).  The
# daemon that lost the branch is fenced: its writes and fsyncs fail, and
# nothing it writes afterwards reaches the branch.
# backends: file s3
set -euo pipefail
. "$(dirname "$0")/lib.sh"
e2e_setup takeover

url=$(repo_url repo)
mkdir -p "$T/a" "$T/b" "$T/c"
lakefs_init "$url"
common=allow_other,default_permissions
lakefs_mount "$url#main" "$T/a" -o "$common,state_dir=$T/state-a"
echo one >"$T/a/one"
lakefs_umount "$T/a"           # flushed to the repository: what another machine sees
lakefs_mount "$url#main" "$T/a" -o "$common,state_dir=$T/state-a"

# --- a second writer is refused while the first lives
err=$T/logs/second.err
rc=0
"$LAKEFS" mount "$url#main" "$T/b" -o "$common,state_dir=$T/state-b" 2>"$err" || rc=$?
[ "$rc" != 0 ] || die "a second read-write mount of main was accepted"
[ "$(grep -c '' "$err")" = 1 ] && grep -q "already mounted read-write" "$err" ||
    { cat "$err" >&2; die "second mount: want one line saying the branch is already mounted"; }
not_mounted "$T/b" || die "$T/b mounted although refused"
ok "second writer refused: $(cat "$err")"

# --- takeover from a live but frozen daemon; the old one is fenced
pid_a=${DAEMON_PID[$T/a]}
kill -STOP "$pid_a"
on_exit "kill -CONT $pid_a 2>/dev/null"
lakefs_mount "$url#main" "$T/b" -o "$common,state_dir=$T/state-b,takeover"
[ "$(cat "$T/b/one")" = one ] || die "the new writer does not see the committed file"
echo two >"$T/b/two"
sync "$T/b/two"
kill -CONT "$pid_a"
# the old daemon notices the takeover (it checks every few seconds, or at
# its next layer commit); until then its writes still land in its journal only
fenced() { ! { echo late >"$T/a/late.$RANDOM" && sync "$T/a"; } 2>/dev/null; }
wait_for 60 "the old writer to be fenced" fenced || die "the old writer still accepts fsync after a takeover"
grep -q "lost the branch" "$T/logs/"*daemon-a*.log || die "the fenced daemon did not log why it fails writes"
ok "old writer fenced: writes/fsync fail"
fusermount3 -u "$T/a"
wait_for 60 "old daemon to exit" pid_dead "$pid_a" || die "fenced daemon did not exit after unmount"
unset "DAEMON_PID[$T/a]"
ls -d "$T/state-a/main.fenced-"* >/dev/null 2>&1 && [ ! -e "$T/state-a/main" ] ||
    die "the fenced daemon's journal was not moved aside"
lakefs_umount "$T/b"

# --- the branch holds exactly what the current writer wrote
lakefs_mount "$url#main" "$T/c" -o "$common,state_dir=$T/state-c"
[ "$(cat "$T/c/one")" = one ] && [ "$(cat "$T/c/two")" = two ] || die "data of the writers lost"
if ls "$T/c" | grep -q '^late'; then die "a write of the fenced daemon reached the branch"; fi
ok "branch has one, two and nothing from the fenced daemon"

# --- kill -9 on this machine: the next daemon takes over without -o takeover
lakefs_crash "$T/c"
lakefs_mount "$url#main" "$T/b" -o "$common,state_dir=$T/state-b"
[ "$(cat "$T/b/two")" = two ] || die "data lost after takeover from a killed daemon"
grep -q "taking over the lease of dead process" "$T/logs/"*daemon-b*.log || die "no takeover logged"
lakefs_umount "$T/b"
ok "takeover after kill -9"

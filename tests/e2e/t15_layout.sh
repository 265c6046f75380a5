#!/usr/bin/env bash
# Mount layout and mount modes: the repository mount shows branches/main/;
# "lakefs mount" without -f returns once the mount is usable; umount ends
# the daemon; -o branch=main and URL#main mount the branch at the mount
# point; -o ro refuses writes.
# backends: file s3
set -euo pipefail
. "$(dirname "$0")/lib.sh"
e2e_setup layout

url=$(repo_url repo)
mp=$T/mnt
mkdir -p "$mp"
opts=allow_other,default_permissions,state_dir=$T/state
lakefs_init "$url"

# --- detached mount: usable as soon as "lakefs mount" returns
on_exit "cleanup_mount '$mp'"
"$LAKEFS" mount "$url" "$mp" -o "$opts" 2>>"$(newlog detached)" ||
    die "lakefs mount (detached) failed"
is_mounted "$mp" || die "lakefs mount returned before the mount was there"
[ "$(ls -A "$mp")" = branches ] || die "mount root lists '$(ls -A "$mp" | tr '\n' ' ')', want 'branches'"
[ "$(ls -A "$mp/branches")" = main ] || die "branches/ lists '$(ls -A "$mp/branches" | tr '\n' ' ')', want 'main'"
read -r mode owner < <(stat -c '%a %U' "$mp/branches/main")
[ "$mode" = 755 ] && [ "$owner" = root ] || die "branches/main is $mode $owner, want 755 root"
[ -z "$(ls -A "$mp/branches/main")" ] || die "a fresh branch is not empty"
[ -n "$(pids_with_arg "$mp")" ] || die "no daemon process found for $mp"
ok "layout: / = branches, branches = main, main empty, root 0755"

mkdir "$mp/branches/main/dir"
echo hello >"$mp/branches/main/dir/hello"
echo top >"$mp/branches/main/top"
umount "$mp" || die "umount failed"
not_mounted "$mp" || die "still mounted after umount"
wait_for "$MOUNT_TIMEOUT" "detached daemon to exit" no_daemon_for "$mp" ||
    die "detached daemon did not exit after umount"
ok "detached mount, umount ends the daemon"

# --- one branch at the mount point: -o branch=main
lakefs_mount "$url" "$mp" -o "$opts,branch=main"
[ "$(ls -A "$mp" | tr '\n' ' ')" = "dir top " ] || die "branch mount lists '$(ls -A "$mp" | tr '\n' ' ')'"
[ "$(cat "$mp/dir/hello")" = hello ] || die "branch mount: dir/hello wrong"
echo via-branch >"$mp/second"
lakefs_umount "$mp"
ok "-o branch=main mounts the branch"

# --- URL#main, and the file written through the branch mount is there
lakefs_mount "$url#main" "$mp" -o "$opts"
[ "$(cat "$mp/second")" = via-branch ] || die "URL#main: second wrong"
[ "$(cat "$mp/top")" = top ] || die "URL#main: top wrong"
lakefs_umount "$mp" umount
ok "URL#main mounts the branch"

# --- the repository mount sees it all
lakefs_mount "$url" "$mp" -o "$opts"
[ "$(cat "$mp/branches/main/second")" = via-branch ] || die "repository mount: second wrong"
lakefs_umount "$mp"

# --- read-only
lakefs_mount "$url" "$mp" -o "$opts,ro"
[ "$(cat "$mp/branches/main/top")" = top ] || die "ro mount: top wrong"
if echo x 2>/dev/null >"$mp/branches/main/new"; then die "ro mount accepted a create"; fi
if echo x 2>/dev/null >>"$mp/branches/main/top"; then die "ro mount accepted a write"; fi
err=$(touch "$mp/branches/main/new2" 2>&1 || true)
case $err in *"Read-only file system"*) ;; *) die "ro mount: touch said '$err', want EROFS" ;; esac
lakefs_umount "$mp"
ok "-o ro refuses writes with EROFS"

# --- fstab-only options are accepted
lakefs_mount "$url" "$mp" -o "defaults,_netdev,noauto,nofail,rw,nodev,nosuid,x-systemd.automount,$opts"
[ "$(cat "$mp/branches/main/top")" = top ] || die "mount with fstab options: top wrong"
lakefs_umount "$mp"
ok "fstab-only options ignored"

#!/usr/bin/env bash
# make install; then "mount -t fuse.lakefs" and an fstab line (mount -T) work
# through /sbin/mount.fuse.lakefs, and umount ends the daemon.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
e2e_setup install

[ -f "$LAKEFS_TOP/Makefile" ] || die "build tree not configured"
prefix=$T/prefix
helper=/sbin/mount.fuse.lakefs

# keep whatever helper is installed on this machine
if [ -e "$helper" ]; then
    cp -a "$helper" "$T/helper.saved"
    on_exit "cp -a '$T/helper.saved' '$helper'"
else
    on_exit "rm -f '$helper'"
fi

make -C "$LAKEFS_TOP" install prefix="$prefix" >"$(newlog make-install)" 2>&1 ||
    die "make install failed"
[ -x "$prefix/bin/lakefs" ] || die "make install did not install bin/lakefs"
[ -x "$helper" ] || die "make install did not install $helper"
grep -qF "$prefix/bin/lakefs" "$helper" || die "$helper does not run $prefix/bin/lakefs"
[ -f "$prefix/share/doc/lakefs/fstab.example" ] || die "fstab.example not installed"
ok "make install: $prefix/bin/lakefs, $helper, fstab.example"

LAKEFS=$prefix/bin/lakefs
repo=$T/repo
url=file://$repo
mp=$T/mnt
mkdir -p "$mp"
lakefs_init "$url"
on_exit "cleanup_mount '$mp'"

daemon_is_installed_binary() {
    local p exe
    p=$(pids_with_arg "$mp" | head -n 1)
    [ -n "$p" ] || die "no daemon process for $mp"
    exe=$(readlink "/proc/$p/exe")
    [ "$exe" = "$prefix/bin/lakefs" ] || die "daemon runs $exe, want $prefix/bin/lakefs"
}

# --- mount -t fuse.lakefs
mount -t fuse.lakefs "$url" "$mp" -o "allow_other,default_permissions,state_dir=$T/state" \
    2>>"$(newlog mount-t)" || die "mount -t fuse.lakefs failed"
is_mounted "$mp" || die "mount -t fuse.lakefs returned but nothing is mounted"
daemon_is_installed_binary
grep -F " $mp " /proc/self/mountinfo | grep -q 'fuse.lakefs' ||
    die "mount type is not fuse.lakefs: $(grep -F " $mp " /proc/self/mountinfo)"
echo "via mount -t" >"$mp/branches/main/file"
umount "$mp" || die "umount failed"
wait_for "$MOUNT_TIMEOUT" "daemon to exit after umount" no_daemon_for "$mp" ||
    die "daemon did not exit after umount"
ok "mount -t fuse.lakefs, umount"

# --- fake mount (-f) mounts nothing
mount -f -t fuse.lakefs "$url" "$mp" -o "allow_other,state_dir=$T/state" 2>/dev/null || true
not_mounted "$mp" || die "mount -f mounted something"

# --- an /etc/fstab line (a private fstab file, mount -T)
cat >"$T/fstab" <<EOF2
# test fstab
$url $mp fuse.lakefs defaults,_netdev,allow_other,default_permissions,state_dir=$T/state 0 0
EOF2
mount -T "$T/fstab" "$mp" 2>>"$(newlog mount-fstab)" || die "mount via fstab line failed"
is_mounted "$mp" || die "fstab mount returned but nothing is mounted"
[ "$(cat "$mp/branches/main/file")" = "via mount -t" ] || die "data written before umount is gone"
echo "via fstab" >>"$mp/branches/main/file"
umount "$mp" || die "umount failed"
wait_for "$MOUNT_TIMEOUT" "daemon to exit after umount" no_daemon_for "$mp" ||
    die "daemon did not exit after umount"
ok "fstab line, umount"

# --- and the data is there for a plain lakefs mount
lakefs_mount "$url" "$mp" -o "allow_other,default_permissions,state_dir=$T/state"
[ "$(cat "$mp/branches/main/file")" = "via mount -t
via fstab" ] || die "data written through the helper mounts is wrong"
lakefs_umount "$mp"

make -C "$LAKEFS_TOP" uninstall prefix="$prefix" >>"$(newlog make-uninstall)" 2>&1 ||
    die "make uninstall failed"
[ ! -e "$prefix/bin/lakefs" ] && [ ! -e "$helper" ] || die "make uninstall left files"
ok "make uninstall"

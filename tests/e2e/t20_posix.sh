#!/usr/bin/env bash
# POSIX semantics PostgreSQL needs (tests/e2e/posix_check.c), as root and as
# user postgres, then again after unmount + mount ("verify" mode), through
# the kernel's writeback cache (t21).
# backends: file s3
set -euo pipefail
. "$(dirname "$0")/lib.sh"
e2e_setup posix

url=$(repo_url repo)
mp=$T/mnt
mkdir -p "$mp"
opts=allow_other,default_permissions,state_dir=$T/state
lakefs_init "$url"
lakefs_mount "$url" "$mp" -o "$opts"

main=$mp/branches/main
chown postgres:postgres "$main"
chmod 0755 "$main"
mkdir "$main/root"
as_pg mkdir "$main/pg"
[ "$(stat -c %U:%G "$main/pg")" = postgres:postgres ] ||
    die "directory made by postgres is owned by $(stat -c %U:%G "$main/pg")"
[ "$(stat -c %U:%G "$main/root")" = root:root ] ||
    die "directory made by root is owned by $(stat -c %U:%G "$main/root")"

posix() { # posix USER MODE DIR
    local user=$1 mode=$2 dir=$3 lg
    lg=$(newlog "posix-$user-$mode")
    if [ "$user" = root ]; then
        "$T/bin/posix_check" "$mode" "$dir" >"$lg" 2>&1 || { cat "$lg" >&2; die "posix_check $mode as $user failed"; }
    else
        as_pg "$T/bin/posix_check" "$mode" "$dir" >"$lg" 2>&1 || { cat "$lg" >&2; die "posix_check $mode as $user failed"; }
    fi
    ok "$(tail -n 1 "$lg") (as $user)"
}

posix root create "$main/root"
posix postgres create "$main/pg"

# default_permissions: the kernel enforces modes for other users
if as_pg cat "$main/root/rw" >/dev/null 2>&1; then
    die "postgres could read root's 0600 file"
fi
if as_pg touch "$main/root/new" 2>/dev/null; then
    die "postgres could create a file in root's 0755 directory"
fi
ok "permissions enforced (default_permissions)"

lakefs_umount "$mp"
lakefs_mount "$url" "$mp" -o "$opts"
posix root verify "$main/root"
posix postgres verify "$main/pg"
lakefs_umount "$mp" umount

# and once more, through a single-branch mount
lakefs_mount "$url" "$mp" -o "$opts,branch=main"
posix root verify "$mp/root"
lakefs_umount "$mp"

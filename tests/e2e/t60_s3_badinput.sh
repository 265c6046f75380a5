#!/usr/bin/env bash
# Bad input on s3:// repositories (a real S3 server: Ceph RGW on 127.0.0.1):
# a malformed URL, a missing bucket, wrong or missing credentials, an
# unreachable endpoint, a prefix that is not a repository, init over a
# repository. Each "lakefs init" / "lakefs mount" exits non-zero with exactly
# one line on stderr, starting "lakefs: " and naming what to fix; nothing is
# mounted, no daemon is left, nothing is written to the bucket. A second
# daemon on the same branch (another state dir, as another machine would
# have) is refused with one line while the first lives, and the first is
# unharmed. The secret key never appears in any output, log, process command
# line or object of the repository.
# backends: s3
set -euo pipefail
. "$(dirname "$0")/lib.sh"
LAKEFS_TEST_BACKEND=s3
e2e_setup s3_badinput

url=$(repo_url repo)
prefix=${url#s3://"$S3_BUCKET"/}
mp=$T/mnt
mkdir -p "$mp"
opts=allow_other,default_permissions,state_dir=$T/state
lakefs_init "$url"
before=$(s3_listing "$S3_BUCKET" "$prefix/")
[ -n "$before" ] || die "lakefs init wrote nothing under s3://$S3_BUCKET/$prefix/"
ok "lakefs init $url: $(grep -c '' <<<"$before") objects"

same_repo() {
    local now
    now=$(s3_listing "$S3_BUCKET" "$prefix/")
    [ "$now" = "$before" ] || { diff <(echo "$before") <(echo "$now") >&2; die "$1: repository changed"; }
}

# nothing_left NAME: nothing mounted at $mp, no daemon for it, $mp empty
nothing_left() {
    not_mounted "$mp" || die "$1: $mp is mounted"
    no_daemon_for "$mp" || die "$1: a daemon for $mp is running: $(pids_with_arg "$mp")"
    [ -z "$(ls -A "$mp")" ] || die "$1: files left in $mp"
}

# both NAME URL: "lakefs init URL" and "lakefs mount URL" fail (in the
# environment of the caller); FAIL_MSG is the mount's message
both() {
    local name=$1 u=$2 m
    expect_fail "init: $name" "$LAKEFS" init "$u"
    m=$FAIL_MSG
    expect_fail "mount: $name" "$LAKEFS" mount "$u" "$mp" -o "$opts"
    nothing_left "mount: $name"
    INIT_MSG=$m
}
# says NAME WORDS...: both messages name WORDS
says() {
    local name=$1
    shift
    msg_says "mount: $name" "$@"
    FAIL_MSG=$INIT_MSG msg_says "init: $name" "$@"
}

# --- malformed URLs
for bad in "s3://" "s3:///repo" "s3://x/repo" "s3://Bad_Bucket/repo" "s3:repo"; do
    both "malformed URL '$bad'" "$bad"
    says "malformed URL '$bad'" "s3://bucket"
done
same_repo "malformed URLs"

# --- missing bucket: named in the message, and not created
nob=lakefs-e2e-nobucket-$$
both "missing bucket" "s3://$nob/repo"
says "missing bucket" "$nob" "does not exist"
s3_bucket_exists "$nob" && die "a command on a missing bucket created it"
ok "missing bucket not created"

# --- wrong secret: HTTP 403, the message names the variable to fix
wrong_secret=wrong-secret-$(_rand_hex 8)
AWS_SECRET_ACCESS_KEY=$wrong_secret both "wrong secret" "$url"
says "wrong secret" "403" "AWS_SECRET_ACCESS_KEY"
[[ $FAIL_MSG$INIT_MSG != *"$wrong_secret"* ]] || die "the wrong secret is in the message"
same_repo "wrong secret"

# --- unknown access key id
AWS_ACCESS_KEY_ID=LKNOSUCHKEY$$ both "unknown access key" "$url"
says "unknown access key" "403" "AWS_ACCESS_KEY_ID"

# --- no credentials at all (no variables, no profile files)
(
    unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY
    both "no credentials" "$url"
    says "no credentials" "AWS_ACCESS_KEY_ID" "AWS_SECRET_ACCESS_KEY"
) || exit 1

# --- unreachable endpoint: a closed port on 127.0.0.1
closed=$(free_port)
AWS_ENDPOINT_URL=http://127.0.0.1:$closed both "unreachable endpoint" "$url"
says "unreachable endpoint" "127.0.0.1:$closed" "AWS_ENDPOINT_URL"

# --- -o endpoint= names the server instead of AWS_ENDPOINT_URL: a closed
# port is reported as coming from the option (the right one mounts, with
# region= and path_style: below, once the repository may change)
expect_fail "mount -o endpoint=closed port" "$LAKEFS" mount "$url" "$mp" -o "$opts,endpoint=http://127.0.0.1:$closed"
msg_says "mount -o endpoint=closed port" "127.0.0.1:$closed" "-o endpoint"
nothing_left "mount -o endpoint=closed port"
expect_fail "mount -o endpoint=ftp" "$LAKEFS" mount "$url" "$mp" -o "$opts,endpoint=ftp://127.0.0.1:$closed"
msg_says "mount -o endpoint=ftp" "https://" "-o endpoint"

# --- init over an existing repository
expect_fail "init over existing repository" "$LAKEFS" init "$url"
msg_says "init over existing repository" "$url" "already"
same_repo "init over existing repository"

# --- unknown branch
expect_fail "mount unknown branch" "$LAKEFS" mount "$url#nosuchbranch" "$mp" -o "$opts"
msg_says "mount unknown branch" "nosuchbranch"
nothing_left "mount unknown branch"
same_repo "unknown branch"

# --- -o endpoint= with the right server, without AWS_ENDPOINT_URL
(
    unset AWS_ENDPOINT_URL
    lakefs_mount "$url" "$mp" -o "$opts,endpoint=$S3_ENDPOINT,region=$S3_REGION,path_style"
    [ -d "$mp/branches/main" ] || die "mount with -o endpoint= shows no branches/main"
    lakefs_umount "$mp"
) || exit 1
ok "-o endpoint=, region=, path_style"

# --- the same branch mounted read-write by a second daemon (its own state
# dir and mount point, as another machine would have)
lakefs_mount "$url" "$mp" -o "$opts"
echo "first daemon" >"$mp/branches/main/owner"
sync "$mp/branches/main/owner"
mp2=$T/mnt2
mkdir "$mp2"
opts2=allow_other,default_permissions,state_dir=$T/state2
for u in "$url" "$url#main"; do
    expect_fail "second daemon on $u" "$LAKEFS" mount "$u" "$mp2" -o "$opts2"
    msg_says "second daemon on $u" "already mounted read-write"
    not_mounted "$mp2" || die "$mp2 mounted although refused"
    no_daemon_for "$mp2" || die "a daemon for $mp2 is running although refused"
    [ -z "$(ls -A "$mp2")" ] || die "refused mount left files in $mp2"
done
# the first daemon is unharmed
[ "$(cat "$mp/branches/main/owner")" = "first daemon" ] || die "first mount lost data"
echo more >>"$mp/branches/main/owner"
sync "$mp/branches/main/owner"
lakefs_umount "$mp"
# detached this time: its log goes to STATE_DIR/lakefs.log (checked below)
on_exit "cleanup_mount '$mp2'"
"$LAKEFS" mount "$url" "$mp2" -o "$opts2" 2>>"$(newlog detached)" || die "mount after the first daemon left failed"
[ "$(cat "$mp2/branches/main/owner")" = "first daemon
more" ] || die "data written by the first daemon is not there for the next one"
for p in $(pids_with_arg "$mp2"); do
    if tr '\0' '\n' <"/proc/$p/cmdline" | grep -qF -e "$S3_SECRET_KEY"; then
        die "the secret key is on the daemon's command line"
    fi
done
umount "$mp2" || die "umount $mp2 failed"
wait_for "$MOUNT_TIMEOUT" "detached daemon to exit" no_daemon_for "$mp2" || die "daemon of $mp2 did not exit"
ok "second read-write daemon refused, first one unharmed"

# --- a prefix that is not a repository: refused, and nothing written there
notrepo=$E2E_NAME-$$-notrepo
expect_fail "mount non-repository prefix" "$LAKEFS" mount "s3://$S3_BUCKET/$notrepo" "$mp" -o "$opts"
msg_says "mount non-repository prefix" "not a lakefs repository" "lakefs init"
nothing_left "mount non-repository prefix"
left=$(s3_listing "$S3_BUCKET" "$notrepo/")
[ -z "$left" ] || die "mount of a prefix that is no repository wrote objects there: $(tr '\n' ' ' <<<"$left")"
ok "non-repository prefix untouched"

# --- the secret key: in no output, log, state file, or repository object
hits=$(grep -rlF -e "$S3_SECRET_KEY" -e "$wrong_secret" "$T" 2>/dev/null || true)
[ -z "$hits" ] || die "a secret key appears in: $hits"
while read -r key _; do
    [ -n "$key" ] || continue
    if s3_curl GET "$S3_BUCKET/$key" | grep -qF -e "$S3_SECRET_KEY"; then
        die "the secret key is stored in s3://$S3_BUCKET/$key"
    fi
done < <(s3_list "$S3_BUCKET" "$prefix/")
ok "no secret key in any output, log, state file or repository object"

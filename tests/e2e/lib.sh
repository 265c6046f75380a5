# shellcheck shell=bash
# tests/e2e/lib.sh -- helpers shared by the end-to-end tests, tools/demo.sh
# and tools/bench.sh. Source it after "set -euo pipefail".
#
# A test calls e2e_setup NAME first: it makes a private temp dir $T (logs in
# $T/logs, sanitizer reports in $T/asan), and installs an EXIT trap that runs
# the registered cleanups (stop PostgreSQL, unmount, kill our daemons) in
# reverse order, then fails the test if any log holds a sanitizer report.
#
# Environment: LAKEFS (binary, default ./lakefs of the build tree),
# PGBIN (default /usr/lib/postgresql/15/bin), LAKEFS_TEST_LONG=1 for long runs,
# KEEP_TMP=1 to keep $T, LAKEFS_TEST_OUT (copy logs there on failure).

LAKEFS_TOP=${LAKEFS_TOP:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
case ":$PATH:" in *":$PGBIN:"*) ;; *) PATH="$PGBIN:$PATH" ;; esac
export PATH
LAKEFS=${LAKEFS:-$LAKEFS_TOP/lakefs}
E2E_DIR=${E2E_DIR:-$LAKEFS_TOP/tests/e2e}
MOUNT_TIMEOUT=${MOUNT_TIMEOUT:-120}
PG_TIMEOUT=${PG_TIMEOUT:-600}
SANITIZER_PATTERN='ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:'

declare -gA DAEMON_PID=()   # mount point -> pid of its foreground daemon
declare -gA PG_PORT=()      # PGDATA -> port
declare -gA PG_POSTMASTER=()  # PGDATA -> postmaster pid
_cleanups=()
_nlog=0

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "FAIL: $*"; exit 1; }
ok() { log "ok: $*"; }

need_root() {
    [ "$(id -u)" = 0 ] || die "run as root (mounts with allow_other, runs PostgreSQL as postgres)"
}

# bench_lakefs BIN: for tools/bench*.sh: LAKEFS=BIN, else the built one,
# else the installed one; warns about a sanitizer build.
bench_lakefs() {
    local bin=$1
    if [ -z "$bin" ]; then
        if [ -x "$LAKEFS_TOP/lakefs" ]; then bin=$LAKEFS_TOP/lakefs; else bin=$(command -v lakefs || true); fi
    fi
    [ -x "$bin" ] || die "no lakefs binary $bin (build it, or --lakefs PATH)"
    LAKEFS=$bin
    ! ldd "$bin" 2>/dev/null | grep -q libasan ||
        log "WARNING: $bin is built with sanitizers; numbers will be low (configure without --enable-sanitizers)"
}

# median [DECIMALS]: the median of the numbers on stdin (blank-separated),
# with DECIMALS digits (default 0); "n/a" for none. For tools/bench*.sh.
median() {
    tr ' ' '\n' | awk 'NF' | sort -g | awk -v d="${1:-0}" '{a[NR]=$1} END {if (NR == 0) print "n/a";
        else printf "%.*f\n", d, NR % 2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'
}
ms_now() { date +%s%N; }
ms_since() { echo $((($(date +%s%N) - $1) / 1000000)); }   # milliseconds since ms_now's T0

# bench_dir NAME DIR: for tools/bench*.sh: DIR (which must not exist) as $T,
# with the tests' log directories and cleanup machinery.
bench_dir() {
    [ ! -e "$2" ] || die "$2 exists; remove it or use --dir"
    E2E_NAME=$1 T=$2
    mkdir -p "$T/logs" "$T/asan"
    chmod 0755 "$T"
    chmod 1777 "$T/logs" "$T/asan"
    sanitizer_env "$T/asan"
    trap _run_cleanups EXIT
    trap 'exit 130' INT TERM HUP
}

# Register a cleanup command (a string, eval'ed at exit in reverse order).
on_exit() { _cleanups+=("$*"); }

_run_cleanups() {
    local rc=$? i
    set +e
    trap - EXIT
    for ((i = ${#_cleanups[@]} - 1; i >= 0; i--)); do
        eval "${_cleanups[i]}"
    done
    if [ -n "${T:-}" ] && [ -d "$T" ]; then
        if ! check_sanitizer_logs; then
            rc=1
        fi
        if [ "$rc" != 0 ]; then
            show_logs
            if [ -n "${LAKEFS_TEST_OUT:-}" ]; then
                mkdir -p "$LAKEFS_TEST_OUT/$E2E_NAME"
                cp -a "$T/logs" "$T/asan" "$LAKEFS_TEST_OUT/$E2E_NAME/" 2>/dev/null
                log "logs kept in $LAKEFS_TEST_OUT/$E2E_NAME"
            fi
        fi
        if [ "${KEEP_TMP:-0}" = 1 ]; then
            log "temp dir kept: $T"
        else
            rm -rf "$T"
        fi
    fi
    if [ "$rc" = 0 ]; then log "PASS ${E2E_NAME:-}"; else log "FAIL ${E2E_NAME:-} (exit $rc)"; fi
    exit "$rc"
}

# e2e_setup NAME: temp dir, sanitizer settings, traps.
e2e_setup() {
    E2E_NAME=$1
    # the s3 run of a test that runs on both backends: its own name for logs
    [ "${LAKEFS_TEST_BACKEND:-file}" != s3 ] || [[ $E2E_NAME == *s3* ]] || E2E_NAME=$E2E_NAME-s3
    need_root
    [ -x "$LAKEFS" ] || die "$LAKEFS not built (run: make)"
    T=$(mktemp -d "${TMPDIR_E2E:-/var/tmp}/lakefs-$E2E_NAME.XXXXXX")
    chmod 0755 "$T"   # postgres must reach mount points inside
    mkdir -p "$T/logs" "$T/asan" "$T/bin"
    chmod 1777 "$T/logs" "$T/asan"   # pg_ctl writes its log as postgres
    # test clients copied where user postgres can run them
    local c
    for c in posix_check ackclient; do
        [ -x "$E2E_DIR/$c" ] && install -m 0755 "$E2E_DIR/$c" "$T/bin/$c"
    done
    sanitizer_env "$T/asan"
    trap _run_cleanups EXIT
    trap 'exit 130' INT TERM HUP
    log "test $E2E_NAME in $T (backend $LAKEFS_TEST_BACKEND)"
    e2e_backend_setup
    on_exit s3_repos_cleanup
}

# sanitizer_env DIR: reports of every instrumented process go to DIR/*.
sanitizer_env() {
    export ASAN_OPTIONS="abort_on_error=1:detect_leaks=${LAKEFS_DETECT_LEAKS:-1}:log_path=$1/asan:print_summary=1${ASAN_EXTRA_OPTIONS:+:$ASAN_EXTRA_OPTIONS}"
    export UBSAN_OPTIONS="print_stacktrace=1:log_path=$1/ubsan"
    export LSAN_OPTIONS="${LSAN_OPTIONS:-}"
}

check_sanitizer_logs() {
    local hits
    hits=$(grep -lE "$SANITIZER_PATTERN" "$T"/logs/* "$T"/asan/* 2>/dev/null || true)
    if [ -n "$hits" ]; then
        log "sanitizer reports in: $hits"
        local f
        for f in $hits; do
            echo "----- $f" >&2
            head -n 60 "$f" >&2
        done
        return 1
    fi
    return 0
}

show_logs() {
    local f
    for f in "$T"/logs/*; do
        [ -s "$f" ] || continue
        echo "----- last lines of $f" >&2
        tail -n 25 "$f" >&2
    done
}

# wait_for SECONDS DESCRIPTION COMMAND...: poll COMMAND until it succeeds.
wait_for() {
    local secs=$1 what=$2
    shift 2
    local deadline=$((SECONDS + secs))
    until "$@"; do
        if ((SECONDS >= deadline)); then
            log "timed out after ${secs}s waiting for $what"
            return 1
        fi
        sleep 0.1
    done
}

# pid_alive PID: running and not a zombie. (bash builtins only: these run
# in polling loops)
pid_alive() {
    local st
    read -r st 2>/dev/null <"/proc/$1/stat" || return 1
    st=${st##*) }
    [ "${st%% *}" != Z ]
}
pid_dead() { ! pid_alive "$1"; }

# child_pids PID: direct children of PID.
child_pids() {
    local f st ppid
    for f in /proc/[0-9]*/stat; do
        read -r st 2>/dev/null <"$f" || continue
        st=${st##*) }
        read -r _ ppid _ <<<"$st"
        if [ "$ppid" = "$1" ]; then f=${f#/proc/}; echo "${f%/stat}"; fi
    done
    return 0
}

# pids_with_arg ARG: processes one of whose argv words is exactly ARG
# (used to find a detached daemon by its unique mount point).
pids_with_arg() {
    local d a
    local -a args
    for d in /proc/[0-9]*; do
        [ "${d#/proc/}" = "$$" ] && continue
        [ "${d#/proc/}" = "${BASHPID:-}" ] && continue
        mapfile -d '' -t args 2>/dev/null <"$d/cmdline" || continue
        for a in "${args[@]}"; do
            if [ "$a" = "$1" ]; then echo "${d#/proc/}"; break; fi
        done
    done
    return 0
}

# kill_job PID: kill -9 PID only if it is still a running job of this shell.
kill_job() {
    local p
    for p in $(jobs -p); do
        [ "$p" = "$1" ] && kill -9 "$1" 2>/dev/null
    done
    return 0
}

no_daemon_for() { [ -z "$(pids_with_arg "$1")" ]; }

# expect_fail NAME CMD...: CMD exits non-zero within 2 minutes with exactly
# one line on stderr, starting "lakefs: "; that line is left in FAIL_MSG.
FAIL_MSG=
expect_fail() {
    local name=$1
    shift
    local err=$T/logs/err.$RANDOM out=$T/logs/out.$RANDOM rc=0
    timeout 120 "$@" >"$out" 2>"$err" </dev/null || rc=$?
    [ "$rc" != 0 ] || die "$name: exit status 0 (command: $*)"
    [ "$rc" != 124 ] || die "$name: did not return within 120 s"
    local lines
    lines=$(grep -c '' "$err" || true)
    [ "$lines" = 1 ] || { cat "$err" >&2; die "$name: $lines lines on stderr, want 1"; }
    grep -q '^lakefs: ' "$err" || { cat "$err" >&2; die "$name: stderr does not start with 'lakefs: '"; }
    FAIL_MSG=$(cat "$err")
    ok "$name: exit $rc: $FAIL_MSG"
}

# msg_says NAME WORDS...: FAIL_MSG contains each of WORDS (fixed strings).
msg_says() {
    local name=$1 w
    shift
    for w in "$@"; do
        [[ $FAIL_MSG == *"$w"* ]] || die "$name: message does not say '$w': $FAIL_MSG"
    done
}

newlog() { _nlog=$((_nlog + 1)); echo "$T/logs/$(printf '%02d' $_nlog)-$1.log"; }

# ------------------------------------------------------------------ lakefs

# repo_listing DIR: names, types, sizes, modes and content hashes of a tree.
repo_listing() {
    (cd "$1" && find . -printf '%y %p %s %m\n' | LC_ALL=C sort &&
        find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum)
}

lakefs_init() {
    "$LAKEFS" init "$1" >>"$(newlog init)" 2>&1 || die "lakefs init $1 failed"
}

is_mounted() { mountpoint -q "$1"; }
not_mounted() { ! mountpoint -q "$1"; }

_mounted_or_dead() { is_mounted "$1" || pid_dead "$2"; }

# lakefs_mount URL MOUNTPOINT [ARGS...]: runs the daemon in the foreground
# (-f) in the background, stderr to a log, returns once the mount is usable.
lakefs_mount() {
    local url=$1 mp=$2
    shift 2
    local lg
    lg=$(newlog "daemon-$(basename "$mp")")
    echo "+ lakefs mount $url $mp -f $*" >>"$lg"
    "$LAKEFS" mount "$url" "$mp" -f "$@" >>"$lg" 2>&1 &
    local pid=$!
    DAEMON_PID[$mp]=$pid
    on_exit "cleanup_mount '$mp'"
    wait_for "$MOUNT_TIMEOUT" "mount at $mp" _mounted_or_dead "$mp" "$pid" ||
        die "mount at $mp did not come up"
    pid_alive "$pid" || { tail -n 20 "$lg" >&2; die "daemon for $mp exited during mount"; }
    # the mount is usable: the root answers
    stat "$mp/." >/dev/null || die "mount at $mp does not answer"
    log "mounted $url at $mp (daemon pid $pid)"
}

# lakefs_umount MOUNTPOINT [umount command]: clean unmount; the daemon must
# flush and exit 0 on its own.
lakefs_umount() {
    local mp=$1 cmd=${2:-fusermount3 -u}
    local pid=${DAEMON_PID[$mp]:-}
    $cmd "$mp" || die "$cmd $mp failed"
    not_mounted "$mp" || die "$mp still mounted after $cmd"
    if [ -n "$pid" ]; then
        wait_for "$MOUNT_TIMEOUT" "daemon $pid to exit" pid_dead "$pid" ||
            die "daemon for $mp did not exit after unmount"
        local rc=0
        wait "$pid" || rc=$?
        unset "DAEMON_PID[$mp]"
        [ "$rc" = 0 ] || die "daemon for $mp exited with status $rc after unmount"
    else
        wait_for "$MOUNT_TIMEOUT" "daemon of $mp to exit" no_daemon_for "$mp" ||
            die "daemon for $mp did not exit after unmount"
    fi
    log "unmounted $mp"
}

# lakefs_crash MOUNTPOINT: kill -9 the daemon, lazily detach the dead mount.
lakefs_crash() {
    local mp=$1 pid=${DAEMON_PID[$1]:-}
    [ -n "$pid" ] || die "no daemon pid for $mp"
    kill -9 "$pid"
    wait "$pid" 2>/dev/null || true
    unset "DAEMON_PID[$mp]"
    fusermount3 -u -z "$mp" 2>/dev/null || umount -l "$mp" 2>/dev/null || true
    wait_for 30 "dead mount $mp detached" not_mounted "$mp" || die "cannot detach $mp"
    log "killed daemon $pid of $mp"
}

# registered by lakefs_mount: never leave a mount or a daemon behind.
cleanup_mount() {
    local mp=$1 pid=${DAEMON_PID[$1]:-}
    if is_mounted "$mp"; then
        fusermount3 -u "$mp" 2>/dev/null || umount "$mp" 2>/dev/null ||
            fusermount3 -u -z "$mp" 2>/dev/null || umount -l "$mp" 2>/dev/null
    fi
    if [ -n "$pid" ]; then
        wait_for 60 "daemon $pid to exit" pid_dead "$pid" || kill -9 "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    fi
    local p
    for p in $(pids_with_arg "$mp"); do
        wait_for 30 "daemon $p to exit" pid_dead "$p" || kill -9 "$p" 2>/dev/null
    done
    return 0
}

# ------------------------------------------------------------------ backends
#
# A test names its repository with "url=$(repo_url NAME)": file://$T/NAME, or,
# when LAKEFS_TEST_BACKEND=s3, s3://BUCKET/<test>-<pid>-<n>-NAME on a Ceph
# RADOS Gateway on 127.0.0.1. tests/run.sh starts one gateway for the whole
# run (rgw_start) and passes it on in LAKEFS_TEST_S3_ENV (its s3.env) and
# LAKEFS_TEST_S3_BUCKET; a test run alone starts a private one (e2e_setup ->
# e2e_backend_setup) and stops it at exit. The daemon gets the endpoint and
# keys from the AWS_* environment it inherits from "lakefs mount".
# A test declares the backends it supports in a header line "# backends: file
# s3" (tests/run.sh runs it once per backend); without one: file only.

LAKEFS_TEST_BACKEND=${LAKEFS_TEST_BACKEND:-file}
RGW_TOOLS=${RGW_TOOLS:-$(cd "$LAKEFS_TOP/.." && pwd)/shared/tools/ceph-rgw}
RGW_DIR=        # a gateway this shell started (stopped by rgw_stop)
S3_BUCKET=

# rgw_start: start a throw-away one-node Ceph RGW (memstore) in a new short
# directory under /tmp (its admin sockets live there) on a free port, with
# random keys; sets RGW_DIR, returns non-zero on failure. The caller stops it with rgw_stop. The keys go
# to RGW_DIR/s3.env only (mode 0600), never on a command line or into a log.
rgw_start() {
    [ -x "$RGW_TOOLS/start" ] && command -v radosgw >/dev/null || {
        log "no Ceph RGW: need $RGW_TOOLS/start and radosgw (apt-get install radosgw ceph-mon ceph-osd)"
        return 1
    }
    local try port dir
    for try in 1 2 3 4 5; do
        dir=$(mktemp -d /tmp/lkrgw.XXXXXX)
        port=$((20000 + RANDOM % 30000))
        # start refuses a busy port or mon port (PORT+1); retry elsewhere then
        if RGW_ACCESS_KEY="LKE2E$(_rand_hex 8 | tr a-f A-F)" RGW_SECRET_KEY="lakefs-e2e-$(_rand_hex 16)" \
            "$RGW_TOOLS/start" "$dir" "$port" memstore >"$dir.log" 2>&1; then
            rm -f "$dir.log"
            chmod 0600 "$dir/s3.env"
            RGW_DIR=$dir
            log "Ceph RGW (memstore) at http://127.0.0.1:$port, in $dir"
            return 0
        fi
        log "rgw start on port $port failed (try $try): $(grep -v '^S3_' "$dir.log" | tail -n 3 | tr '\n' ' ')"
        "$RGW_TOOLS/stop" "$dir" >/dev/null 2>&1
        rm -rf "$dir" "$dir.log"
    done
    log "could not start Ceph RGW"
    return 1
}

_rand_hex() { od -An -N"$1" -tx1 /dev/urandom | tr -d ' \n'; }

# rgw_stop: stop the gateway rgw_start started, remove its directory.
rgw_stop() {
    [ -n "$RGW_DIR" ] || return 0
    "$RGW_TOOLS/stop" "$RGW_DIR" >/dev/null 2>&1 || log "rgw stop: some daemon needed SIGKILL"
    rm -rf "$RGW_DIR"
    RGW_DIR=
}

# s3_use_env S3ENV: the endpoint and keys of S3ENV (an s3.env written by
# ceph-rgw/start) for this shell and what it starts: S3_* and AWS_* exported,
# other AWS settings that could override them removed.
s3_use_env() {
    [ -r "$1" ] || die "S3 settings $1 missing"
    # shellcheck disable=SC1090
    . "$1"
    export S3_ENDPOINT S3_ACCESS_KEY S3_SECRET_KEY S3_REGION
    unset AWS_ENDPOINT_URL_S3 AWS_PROFILE AWS_SESSION_TOKEN AWS_DEFAULT_REGION AWS_CA_BUNDLE
    export AWS_SHARED_CREDENTIALS_FILE=/nonexistent/lakefs-e2e/credentials
    export AWS_CONFIG_FILE=/nonexistent/lakefs-e2e/config
    export AWS_ENDPOINT_URL=$S3_ENDPOINT AWS_REGION=$S3_REGION
    export AWS_ACCESS_KEY_ID=$S3_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$S3_SECRET_KEY
}

# s3_curl METHOD PATH [CURL ARGS...]: a SigV4-signed request to the endpoint
# in S3_*; prints the body, returns non-zero unless the status is 2xx. The
# keys reach curl on stdin (a config file), never on its command line.
s3_curl() {
    local method=$1 path=$2
    shift 2
    printf 'user = "%s:%s"\n' "$S3_ACCESS_KEY" "$S3_SECRET_KEY" |
        curl -sS -f -K - -X "$method" --aws-sigv4 "aws:amz:$S3_REGION:s3" \
            -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" "$@" "$S3_ENDPOINT/$path"
}

# s3_create_bucket NAME
s3_create_bucket() {
    s3_curl PUT "$1" -o /dev/null || die "cannot create bucket $1 at $S3_ENDPOINT"
}

# s3_bucket_exists NAME
s3_bucket_exists() { s3_curl GET "$1?list-type=2&max-keys=1" -o /dev/null 2>/dev/null; }

# s3_listing BUCKET PREFIX: sorted "KEY SIZE" lines (to compare states).
s3_listing() { s3_list "$1" "$2" | LC_ALL=C sort; }

# s3_bytes BUCKET PREFIX: total size of the objects under PREFIX.
s3_bytes() { s3_list "$1" "$2" | awk '{ n += $2 } END { print n + 0 }'; }

# s3_list BUCKET PREFIX: the keys under PREFIX with their sizes ("KEY SIZE"
# lines), every page of ListObjectsV2.
s3_list() {
    local bucket=$1 prefix=$2 token='' body q
    while :; do
        # parameters in SigV4's canonical (sorted) order: Debian 12's curl
        # signs the query as given, so a token appended last got 403
        q="list-type=2&max-keys=1000&prefix=$(_urlencode "$prefix")"
        [ -z "$token" ] || q="continuation-token=$(_urlencode "$token")&$q"
        body=$(s3_curl GET "$bucket?$q") || die "cannot list s3://$bucket/$prefix"
        tr -d '\n' <<<"$body" | { grep -o '<Contents>.*</Contents>' || true; } | sed 's#</Contents>#&\n#g' |
            sed -n 's#.*<Key>\(.*\)</Key>.*<Size>\([0-9]*\)</Size>.*#\1 \2#p'
        grep -q '<IsTruncated>true</IsTruncated>' <<<"$body" || break
        token=$(sed -n 's#.*<NextContinuationToken>\(.*\)</NextContinuationToken>.*#\1#p' <<<"$body")
        [ -n "$token" ] || die "truncated listing without a continuation token"
    done
}

_urlencode() {
    local s=$1 i c out=
    for ((i = 0; i < ${#s}; i++)); do
        c=${s:i:1}
        case $c in [a-zA-Z0-9._~-]) out+=$c ;; *) out+=$(printf '%%%02X' "'$c") ;; esac
    done
    printf '%s' "$out"
}

# s3_delete_prefix BUCKET PREFIX: delete every object under PREFIX (keeps
# the shared gateway's memory bounded over a run).
s3_delete_prefix() {
    local key size
    s3_list "$1" "$2" | while read -r key _; do
        s3_curl DELETE "$1/$(_urlencode "$key" | sed 's#%2F#/#g')" -o /dev/null ||
            log "cannot delete s3://$1/$key"
    done
}

# proxy_start [REQUEST_LOG]: tests/e2e/faultproxy in front of the S3
# server of S3_ENDPOINT (logs to a newlog; one line per request to
# REQUEST_LOG if given); sets PROXY_URL (for AWS_ENDPOINT_URL), PROXY_PID,
# PROXY_CTL and PROXY_STATS; stopped at exit (or by proxy_stop).
proxy_start() {
    [ -x "$E2E_DIR/faultproxy" ] || die "tests/e2e/faultproxy not built (make e2e)"
    PROXY_CTL=$T/proxy.ctl PROXY_STATS=$T/proxy.stats
    : >"$PROXY_CTL"
    rm -f "$T/proxy.port"         # a second proxy must not read the first one's port
    "$E2E_DIR/faultproxy" -c "$PROXY_CTL" -s "$PROXY_STATS" ${1:+-l "$1"} "127.0.0.1:${S3_ENDPOINT##*:}" \
        >"$T/proxy.port" 2>"$(newlog faultproxy)" &
    PROXY_PID=$!
    on_exit proxy_stop
    wait_for 30 "faultproxy to listen" _proxy_up || die "faultproxy did not start"
    pid_alive "$PROXY_PID" || die "faultproxy exited at start"
    PROXY_URL=http://127.0.0.1:$(head -n 1 "$T/proxy.port")
    log "faultproxy at $PROXY_URL -> S3 server $S3_ENDPOINT"
}
_proxy_up() { [ -s "$T/proxy.port" ] || pid_dead "$PROXY_PID"; }

# proxy_stop: SIGTERM; the proxy prints its counters to its log and exits.
proxy_stop() {
    [ -n "${PROXY_PID:-}" ] && pid_alive "$PROXY_PID" || return 0
    kill -TERM "$PROXY_PID"
    wait_for 30 "faultproxy to exit" pid_dead "$PROXY_PID" || kill -9 "$PROXY_PID"
    wait "$PROXY_PID" 2>/dev/null || true
}

# proxy_set SETTING...: the proxy's settings from now on ("delay_ms 20",
# "fail503 0.3", ...; the control file replaced whole).
proxy_set() {
    printf '%s\n' "$@" >"$PROXY_CTL.tmp"
    mv -f "$PROXY_CTL.tmp" "$PROXY_CTL"
}

# proxy_counter NAME: a counter of the proxy now.
proxy_counter() { sed -n "s/^$1 //p" "$PROXY_STATS"; }

# serial_rounds REQUEST_LOG FIRST LAST: how many round trips one after the
# other lines FIRST..LAST of a faultproxy request log took: requests
# sorted by start, a new round begins with a request that starts after
# every earlier one ended (requests that overlap share a round).
serial_rounds() {
    sed -n "$2,$3p" "$1" | sort -n -k1,1 |
        awk 'NR == 1 || $1 >= end { n++ } { if (NR == 1 || $1 + $2 > end) end = $1 + $2 } END { print n + 0 }'
}

# serial_chain REQUEST_LOG FIRST LAST: the longest chain of requests among
# lines FIRST..LAST each of which started after the one before it ended:
# no request can have waited for more round trips than that (an upper
# bound on the critical path, which serial_rounds undercounts while
# requests in parallel keep the line busy).
serial_chain() {
    sed -n "$2,$3p" "$1" | sort -n -k1,1 |
        awk '{ d = 1; for (i = 1; i <= n; i++) if (E[i] <= $1 && D[i] >= d) d = D[i] + 1
               n++; E[n] = $1 + $2; D[n] = d; if (d > max) max = d } END { print max + 0 }'
}

# e2e_backend_setup (called by e2e_setup): for the s3 backend, the shared
# gateway of tests/run.sh, or a private one for this test, and a bucket.
e2e_backend_setup() {
    case $LAKEFS_TEST_BACKEND in
    file) return 0 ;;
    s3) ;;
    *) die "LAKEFS_TEST_BACKEND=$LAKEFS_TEST_BACKEND: want file or s3" ;;
    esac
    if [ -n "${LAKEFS_TEST_S3_ENV:-}" ]; then
        s3_use_env "$LAKEFS_TEST_S3_ENV"
        S3_BUCKET=${LAKEFS_TEST_S3_BUCKET:?LAKEFS_TEST_S3_BUCKET not set}
    else
        on_exit rgw_stop
        rgw_start || die "cannot start an S3 server for the s3 backend"
        s3_use_env "$RGW_DIR/s3.env"
        S3_BUCKET=lakefs-e2e
        s3_create_bucket "$S3_BUCKET"
    fi
    log "backend s3: bucket $S3_BUCKET at $S3_ENDPOINT"
}

# repo_url NAME: the URL of this test's repository NAME (nothing created):
# file://$T/NAME, or s3://BUCKET/<test>-<pid of the test>-NAME.
repo_url() {
    case $LAKEFS_TEST_BACKEND in
    s3) echo "s3://$S3_BUCKET/$E2E_NAME-$$-$1" ;;
    *) echo "file://$T/$1" ;;
    esac
}

# s3_repos_cleanup: registered by e2e_setup for s3 tests; deletes the
# repositories this test made (not with KEEP_TMP=1).
s3_repos_cleanup() {
    [ "$LAKEFS_TEST_BACKEND" = s3 ] && [ -n "$S3_BUCKET" ] && [ -n "${LAKEFS_TEST_S3_ENV:-}" ] || return 0
    [ "${KEEP_TMP:-0}" != 1 ] || return 0
    s3_delete_prefix "$S3_BUCKET" "$E2E_NAME-$$-"
}

# ------------------------------------------------------------------ postgres

as_pg() { runuser -u postgres -- "$@"; }

# free_port: a TCP port nobody listens on and no socket file uses.
free_port() {
    local p i
    for i in $(seq 1 200); do
        p=$((20000 + RANDOM % 40000))
        (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && continue
        [ -e "/tmp/.s.PGSQL.$p" ] || [ -e "/var/run/postgresql/.s.PGSQL.$p" ] && continue
        echo "$p"
        return 0
    done
    die "no free port found"
}

# pg_prepare_dir DIR: PGDATA on the mount, owned by postgres, mode 0700.
pg_prepare_dir() {
    chown postgres:postgres "$1" || die "chown postgres $1"
    chmod 0700 "$1" || die "chmod 0700 $1"
}

pg_initdb() {
    local data=$1
    pg_prepare_dir "$data"
    as_pg initdb --data-checksums --auth=trust -U postgres -E UTF8 --locale=C -D "$data" \
        >>"$(newlog initdb)" 2>&1 || die "initdb on $data failed"
    ok "initdb --data-checksums on $data"
}

PGSOCK=
_pg_sockdir() {
    if [ -z "$PGSOCK" ]; then
        PGSOCK=$T/sock
        mkdir -p "$PGSOCK"
        chown postgres:postgres "$PGSOCK"
    fi
}

# pg_start PGDATA [PORT] [may_fail]: start the postmaster as a child of this
# shell (so it is reaped here, whatever init does), wait until it accepts
# connections. With may_fail, a postmaster that exits first (its mount went
# away) returns 1 instead of failing the test.
pg_start() {
    local data=$1 port=${2:-${PG_PORT[$1]:-}} may_fail=${3:-}
    [ -n "$port" ] || port=$(free_port)
    _pg_sockdir
    PG_PORT[$data]=$port
    local lg
    lg=$(newlog "postgres-$port")
    setpriv --reuid=postgres --regid=postgres --init-groups \
        postgres -D "$data" -p "$port" -k "$PGSOCK" -c listen_addresses= \
        >>"$lg" 2>&1 </dev/null &
    local pid=$!
    PG_POSTMASTER[$data]=$pid
    on_exit "pg_cleanup '$data'"
    wait_for "$PG_TIMEOUT" "PostgreSQL on $data to accept connections" _pg_ready_or_dead "$port" "$pid" ||
        { tail -n 30 "$lg" >&2; die "PostgreSQL on $data did not become ready"; }
    if pid_dead "$pid" && [ "$may_fail" = may_fail ]; then
        wait "$pid" 2>/dev/null
        unset "PG_POSTMASTER[$data]"
        log "PostgreSQL on $data exited while starting"
        return 1
    fi
    pid_alive "$pid" || { tail -n 30 "$lg" >&2; die "PostgreSQL on $data did not start"; }
    ok "PostgreSQL started on $data, port $port, pid $pid"
}

_pg_ready_or_dead() {
    pg_isready -q -h "$PGSOCK" -p "$1" -U postgres -d postgres -t 5 || pid_dead "$2"
}

# pg_stop PGDATA: fast shutdown, postmaster exits 0.
pg_stop() {
    local data=$1 pid=${PG_POSTMASTER[$1]:-}
    [ -n "$pid" ] || die "PostgreSQL on $data is not running"
    kill -INT "$pid"
    wait_for "$PG_TIMEOUT" "PostgreSQL on $data to stop" pid_dead "$pid" ||
        die "PostgreSQL on $data did not stop"
    local rc=0
    wait "$pid" || rc=$?
    unset "PG_POSTMASTER[$data]"
    [ "$rc" = 0 ] || die "PostgreSQL on $data exited with status $rc"
    [ ! -e "$data/postmaster.pid" ] || die "postmaster.pid left behind on $data"
    ok "PostgreSQL stopped on $data"
}

# pg_kill9 PGDATA: kill -9 the postmaster and its children (the cluster's
# processes only), wait until they are gone.
pg_kill9() {
    local data=$1 pm=${PG_POSTMASTER[$1]:-}
    [ -n "$pm" ] || return 0
    local pids
    pids="$pm $(child_pids "$pm")"
    kill -9 $pids 2>/dev/null || true
    local p
    for p in $pids; do
        wait_for 60 "postgres process $p to die" pid_dead "$p" || die "postgres $p survived kill -9"
    done
    wait "$pm" 2>/dev/null || true
    unset "PG_POSTMASTER[$data]"
    log "killed PostgreSQL processes of $data: $pids"
}

# registered by pg_start: immediate shutdown, kill -9 if that hangs.
pg_cleanup() {
    local data=$1 pm=${PG_POSTMASTER[$1]:-}
    [ -n "$pm" ] || return 0
    if pid_alive "$pm"; then
        kill -QUIT "$pm" 2>/dev/null
        wait_for 60 "PostgreSQL to quit" pid_dead "$pm" || pg_kill9 "$data"
    fi
    wait "$pm" 2>/dev/null
    unset "PG_POSTMASTER[$data]"
    return 0
}

# psql_at PGDATA SQL: run SQL (as superuser postgres), print unaligned tuples.
psql_at() {
    local data=$1
    shift
    psql -X -q -At -v ON_ERROR_STOP=1 -h "$PGSOCK" -p "${PG_PORT[$data]}" -U postgres \
        -d "${PGDATABASE_E2E:-postgres}" "$@"
}

pg_conninfo() {
    echo "host=$PGSOCK port=${PG_PORT[$1]} user=postgres dbname=postgres"
}

# pg_amcheck_clean PGDATA: every database, heap + all indexes.
pg_amcheck_clean() {
    local data=$1 lg
    lg=$(newlog amcheck)
    local rc=0
    pg_amcheck --install-missing --heapallindexed --all -h "$PGSOCK" -p "${PG_PORT[$data]}" \
        -U postgres >"$lg" 2>&1 || rc=$?
    [ "$rc" = 0 ] || { cat "$lg" >&2; die "pg_amcheck exit status $rc"; }
    ok "pg_amcheck --heapallindexed --all clean"
}

# pgbench_load PGDATA SCALE SECONDS: pgbench -i, then TPC-B -c 4 -j 2 for
# SECONDS; fails on any failed transaction or none processed.
pgbench_load() {
    local data=$1 scale=$2 duration=$3 port=${PG_PORT[$1]} lg ntx
    pgbench -i -s "$scale" -q -h "$PGSOCK" -p "$port" -U postgres postgres \
        >"$(newlog pgbench-init)" 2>&1 || die "pgbench -i -s $scale failed"
    ok "pgbench -i -s $scale"
    lg=$(newlog pgbench-run)
    pgbench -T "$duration" -c 4 -j 2 -h "$PGSOCK" -p "$port" -U postgres postgres >"$lg" 2>&1 ||
        { tail -n 20 "$lg" >&2; die "pgbench -T $duration -c 4 failed"; }
    grep -q '^number of failed transactions: 0 ' "$lg" || { cat "$lg" >&2; die "pgbench had failed transactions"; }
    ntx=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$lg")
    [ "${ntx:-0}" -gt 0 ] || die "pgbench processed no transactions"
    ok "pgbench -T $duration -c 4: $ntx transactions, $(grep -m1 '^tps' "$lg")"
}

# pgbench_invariant PGDATA: the four balances agree, and every account's,
# teller's and branch's balance is the sum of its history deltas. Holds only
# while pgbench_history keeps every delta: pgbench without -n truncates it
# before its run (the balances stay), so every run but the first after
# pgbench -i needs -n.
pgbench_invariant() {
    local data=$1 out
    out=$(psql_at "$data" -c "SELECT (SELECT sum(abalance) FROM pgbench_accounts),
        (SELECT sum(bbalance) FROM pgbench_branches),
        (SELECT sum(tbalance) FROM pgbench_tellers),
        (SELECT coalesce(sum(delta), 0) FROM pgbench_history),
        (SELECT count(*) FROM pgbench_history),
        (SELECT count(*) FROM pgbench_accounts a
           LEFT JOIN (SELECT aid, sum(delta) AS s FROM pgbench_history GROUP BY aid) h USING (aid)
          WHERE a.abalance <> coalesce(h.s, 0))
      + (SELECT count(*) FROM pgbench_tellers t
           LEFT JOIN (SELECT tid, sum(delta) AS s FROM pgbench_history GROUP BY tid) h USING (tid)
          WHERE t.tbalance <> coalesce(h.s, 0))
      + (SELECT count(*) FROM pgbench_branches b
           LEFT JOIN (SELECT bid, sum(delta) AS s FROM pgbench_history GROUP BY bid) h USING (bid)
          WHERE b.bbalance <> coalesce(h.s, 0))") || die "invariant query failed"
    local a b t h n rows
    IFS='|' read -r a b t h n rows <<<"$out"
    [ "$a" = "$b" ] && [ "$b" = "$t" ] && [ "$t" = "$h" ] ||
        die "pgbench invariant broken: accounts=$a branches=$b tellers=$t history=$h"
    [ "$rows" = 0 ] || die "pgbench invariant broken: $rows accounts, tellers or branches whose balance is not the sum of their history deltas"
    ok "pgbench invariant holds, row by row (sum=$a over $n history rows)"
}

# points_load PGDATA N CKPT SWITCH POINTS: N single-row commits into table
# t (k int primary key, created before), a CHECKPOINT after every CKPT-th
# and pg_switch_wal() after every SWITCH-th; after each commit K the line
# "K|pg_current_wal_insert_lsn()|clock_timestamp() in UTC" is appended to
# POINTS (a point every later view at that LSN or time must show K rows).
POINT_STAMP="to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
points_load() {
    local data=$1 n=$2 ckpt=$3 switch=$4 points=$5 k sql out
    sql=$T/points-load.sql out=$T/points-load.out
    for k in $(seq 1 "$n"); do
        echo "INSERT INTO t VALUES ($k);"
        echo "SELECT $k, pg_current_wal_insert_lsn(), $POINT_STAMP;"
        [ $((k % ckpt)) = 0 ] && echo "CHECKPOINT;"
        [ $((k % switch)) = 0 ] && echo "SELECT 'switch', pg_switch_wal();"
    done >"$sql"
    psql_at "$data" -f "$sql" >"$out" || die "the $n transactions failed"
    grep -E '^[0-9]+\|' "$out" >>"$points"
    [ "$(grep -cE '^[1-9][0-9]*\|' "$points")" = "$n" ] || die "recorded $(grep -c '' "$points") points, want $n"
    ok "$n single-row commits on $data, LSN and time recorded after each"
}

pg_checksums_clean() {
    as_pg pg_checksums --check -D "$1" >>"$(newlog checksums)" 2>&1 ||
        die "pg_checksums --check failed on $1"
    ok "pg_checksums --check clean"
}

# ------------------------------------------------------------------ DuckDB

# duckdb_node: DuckDB for node (@duckdb/node-api, pinned), the independent
# reader of the Parquet and Delta tests, installed into a directory of the
# tests' own if it is not there yet; sets DUCKDB_NODE_DIR.
DUCKDB_NODE_API_VERSION=1.5.6-r.1
duckdb_node() {
    DUCKDB_NODE_DIR=$LAKEFS_TOP/tests/lake/node
    command -v node >/dev/null && command -v npm >/dev/null ||
        die "node and npm are needed: apt-get install nodejs npm"
    local installed
    installed=$(sed -n 's/^ *"version": *"\(.*\)".*/\1/p' \
        "$DUCKDB_NODE_DIR/node_modules/@duckdb/node-api/package.json" 2>/dev/null || true)
    if [ "$installed" != "$DUCKDB_NODE_API_VERSION" ]; then
        log "installing @duckdb/node-api@$DUCKDB_NODE_API_VERSION into $DUCKDB_NODE_DIR (node $(node --version), npm $(npm --version))"
        npm install --prefix "$DUCKDB_NODE_DIR" --no-audit --no-fund --no-save \
            "@duckdb/node-api@$DUCKDB_NODE_API_VERSION" >"$(newlog npm)" 2>&1 ||
            die "npm install @duckdb/node-api@$DUCKDB_NODE_API_VERSION failed"
    fi
    ok "@duckdb/node-api $DUCKDB_NODE_API_VERSION on node $(node --version)"
}

# ------------------------------------------------------------------ packages

LAKEFS_PACKAGES="autoconf automake pkg-config gcc make libc6-dev libfuse3-dev fuse3
    libzstd-dev libcurl4-openssl-dev libssl-dev libpq-dev postgresql-15 postgresql-contrib
    fio util-linux procps coreutils findutils curl radosgw ceph-mon ceph-osd"
# node and npm (DuckDB's reader in t100) only when missing: a node from
# elsewhere (NodeSource's nodejs, which carries npm) stays as it is
command -v node >/dev/null 2>&1 || LAKEFS_PACKAGES="$LAKEFS_PACKAGES nodejs"
command -v npm >/dev/null 2>&1 || LAKEFS_PACKAGES="$LAKEFS_PACKAGES npm"

# install_packages [EXTRA...]: apt-get only if something is missing.
install_packages() {
    local missing=() p
    for p in $LAKEFS_PACKAGES "$@"; do
        dpkg-query -W -f='${db:Status-Status}\n' "$p" 2>/dev/null | grep -qx installed ||
            missing+=("$p")
    done
    if [ ${#missing[@]} = 0 ]; then
        log "packages already installed"
        return 0
    fi
    log "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends $LAKEFS_PACKAGES "$@"
}

#!/usr/bin/env bash
# tests/run.sh -- THE test command (as root, on Debian 12):
#   installs the packages, builds with AddressSanitizer + UBSan, runs the unit
#   tests (make check) and the end-to-end tests in tests/e2e/t*.sh against
#   real PostgreSQL 15, prints PASS/FAIL per test and "N passed, N failed".
#
# usage: tests/run.sh [--long] [--no-apt] [--no-build] [PATTERN...]
#   (unit tests: every tests/unit/test_*.c program, as "make check" runs them)
#   --long       longer acceptance runs (pgbench -T 300 scale 50, 50 crash rounds, 20 with durability=remote)
#   --no-apt     do not install packages
#   --no-build   use the current build tree as it is (make check-e2e / check-long)
#   PATTERN      run only e2e tests whose name contains PATTERN (unit tests still run),
#                e.g. "[s3]" for the s3 runs, "pgbench" for both runs of t40_pgbench
# A test with a header line "# backends: file s3" runs twice: on a file://
# repository (e2e/NAME) and on an s3:// one (e2e/NAME[s3]); "# backends: s3"
# runs only on s3; no such line: file only. The s3 runs share one throw-away
# Ceph RADOS Gateway on 127.0.0.1 (memstore, random keys), started before the
# first of them and stopped at exit (tests/e2e/lib.sh: rgw_start).
# environment: LAKEFS_SANITIZERS=0 builds without sanitizers; KEEP_TMP=1 keeps
#   the tests' temp dirs; logs of failed tests go to tests/out/.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
. tests/e2e/lib.sh

long=0 apt=1 build=1
patterns=()
while [ $# -gt 0 ]; do
    case $1 in
    --long) long=1 ;;
    --no-apt) apt=0 ;;
    --no-build) build=0 apt=0 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | grep '^#'; exit 0 ;;
    -*) echo "tests/run.sh: unknown option $1" >&2; exit 2 ;;
    *) patterns+=("$1") ;;
    esac
    shift
done
need_root

out=$top/tests/out
rm -rf "$out"
mkdir -p "$out"
export LAKEFS_TEST_OUT=$out LAKEFS_TOP=$top LAKEFS_TEST_LONG=$long
passed=0 failed=0
failures=()

result() { # result NAME STATUS SECONDS
    if [ "$2" = 0 ]; then
        passed=$((passed + 1))
        printf 'PASS %-40s %4ss\n' "$1" "$3"
    else
        failed=$((failed + 1))
        failures+=("$1")
        printf 'FAIL %-40s %4ss\n' "$1" "$3"
    fi
}

summary() {
    echo
    [ ${#failures[@]} = 0 ] || echo "failed: ${failures[*]} (logs in $out)"
    echo "$passed passed, $failed failed"
    [ "$failed" = 0 ]
}

# ------------------------------------------------------------- packages
if [ "$apt" = 1 ]; then
    install_packages >"$out/apt.log" 2>&1 || { tail -n 30 "$out/apt.log"; result packages 1 0; summary; exit 1; }
fi

# ------------------------------------------------------------- build
if [ "$build" = 1 ]; then
    start=$SECONDS
    cfg=()
    [ "${LAKEFS_SANITIZERS:-1}" = 0 ] || cfg+=(--enable-sanitizers)
    echo "building (configure ${cfg[*]:-})"
    if ! { autoreconf -fi && ./configure "${cfg[@]}" && make -j"$(nproc)" && make -j"$(nproc)" e2e; } \
        >"$out/build.log" 2>&1; then
        tail -n 40 "$out/build.log"
        result build 1 $((SECONDS - start))
        summary
        exit 1
    fi
    echo "built in $((SECONDS - start))s"
fi

# ------------------------------------------------------------- layering
# The source folders import only downward (tests/layering.sh).
start=$SECONDS st=0
bash tests/layering.sh >"$out/layering.log" 2>&1 || st=1
result "layering" "$st" $((SECONDS - start))
if [ "$st" = 0 ]; then rm -f "$out/layering.log"; else sed 's/^/    /' "$out/layering.log"; fi

# ------------------------------------------------------------- unit tests
# The programs "make check" runs, one by one (a program that does not build
# fails alone), with leak detection on and the first sanitizer report fatal.
unit_env=(ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:halt_on_error=1"
          UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1")
for src in tests/unit/test_*.c; do
    prog=${src%.c}
    name=unit/$(basename "$prog")
    start=$SECONDS
    ulog=$out/$(basename "$prog").log
    if ! make "$prog" >"$ulog" 2>&1; then
        tail -n 20 "$ulog" | sed 's/^/    /'
        result "$name (build)" 1 $((SECONDS - start))
        continue
    fi
    st=0
    # a program that needs a server has a script beside it that starts one
    if [ -f "$prog.sh" ]; then
        (env "${unit_env[@]}" timeout 600 bash "$prog.sh" "$top/$prog") >>"$ulog" 2>&1 </dev/null || st=$?
    else
        (env "${unit_env[@]}" timeout 600 "./$prog") >>"$ulog" 2>&1 </dev/null || st=$?
    fi
    if grep -qE "$SANITIZER_PATTERN" "$ulog"; then st=1; fi
    result "$name" "$st" $((SECONDS - start))
    if [ "$st" = 0 ]; then rm -f "$ulog"; else tail -n 20 "$ulog" | sed 's/^/    /'; fi
done

# ------------------------------------------------------------- e2e tests
# The S3 server of the s3 runs: started once, when the first one is due.
s3_state=none s3_bucket=lakefs-e2e
trap 'rgw_stop' EXIT
trap 'exit 130' INT TERM HUP
s3_server() {
    case $s3_state in up) return 0 ;; failed) return 1 ;; esac
    local start=$SECONDS
    s3_state=failed
    if rgw_start >"$out/rgw.log" 2>&1 &&
        (s3_use_env "$RGW_DIR/s3.env" && s3_create_bucket "$s3_bucket") >>"$out/rgw.log" 2>&1; then
        s3_state=up
        echo "S3 server (Ceph RGW, memstore) up in $((SECONDS - start))s"
        return 0
    fi
    sed 's/^/    /' "$out/rgw.log"
    result "e2e/s3-server (ceph rgw start)" 1 $((SECONDS - start))
    return 1
}

for t in tests/e2e/t[0-9]*.sh; do
    base=$(basename "$t" .sh)
    backends=$(sed -n '1,/^set -euo/s/^# backends: *//p' "$t")
    for backend in ${backends:-file}; do
        name=e2e/$base lg=$out/$base.log
        # an s3 run of a test that also runs on file:// is NAME[s3]
        if [ "$backend" != file ] && [[ " $backends " == *" file "* ]]; then
            name="e2e/$base[$backend]" lg=$out/$base.$backend.log
        fi
        if [ ${#patterns[@]} -gt 0 ]; then
            match=0
            for p in "${patterns[@]}"; do [[ $name == *"$p"* ]] && match=1; done
            [ "$match" = 1 ] || continue
        fi
        tenv=(LAKEFS_TEST_BACKEND="$backend")
        case $backend in
        file) ;;
        s3)
            if ! s3_server; then
                result "$name" 1 0
                continue
            fi
            tenv+=(LAKEFS_TEST_S3_ENV="$RGW_DIR/s3.env" LAKEFS_TEST_S3_BUCKET="$s3_bucket")
            ;;
        *) echo "$t: unknown backend '$backend'" >&2; result "$name" 1 0; continue ;;
        esac
        start=$SECONDS
        st=0
        env "${tenv[@]}" bash "$t" >"$lg" 2>&1 </dev/null || st=$?
        result "$name" "$st" $((SECONDS - start))
        [ "$st" = 0 ] || tail -n 30 "$lg" | sed 's/^/    /'
    done
done

summary

#!/bin/bash
# test_objstore_s3.sh -- run test_objstore_s3 against a throw-away Ceph RGW.
#
# Starts RGW (../shared/tools/ceph-rgw, see its README) in a scratch
# directory, creates a bucket with a SigV4-signed PUT (curl --aws-sigv4; the
# keys go to curl on stdin, never on a command line), runs the C test with
# the endpoint and keys in its environment, and stops RGW whatever happens.
# Usage: test_objstore_s3.sh [TEST_BINARY [PORT]]
#   TEST_BINARY  default: tests/unit/test_objstore_s3 next to this script's
#                build directory ($PWD)
#   RGW_TOOLS    default: $srcdir/../shared/tools/ceph-rgw
# Exits 77 (automake's "skipped") when radosgw is not installed.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
SRCROOT=$(cd "$HERE/../.." && pwd)
BIN=${1:-$PWD/tests/unit/test_objstore_s3}
PORT=${2:-$((17000 + RANDOM % 2000))}
TOOLS=${RGW_TOOLS:-$SRCROOT/../shared/tools/ceph-rgw}

if ! command -v radosgw >/dev/null || [ ! -x "$TOOLS/start" ]; then
    echo "skip: radosgw or $TOOLS/start missing (apt-get install -y --no-install-recommends radosgw ceph-mon ceph-osd)"
    exit 77
fi
[ -x "$BIN" ] || { echo "test binary $BIN missing" >&2; exit 2; }

DIR=$(mktemp -d /tmp/rgw.XXXXXX)      # short: admin sockets live here
cleanup() { "$TOOLS/stop" "$DIR" >/dev/null 2>&1 || true; rm -rf "$DIR"; }
trap cleanup EXIT

"$TOOLS/start" "$DIR" "$PORT" >"$DIR.start.log" 2>&1 ||
    { cat "$DIR.start.log" >&2; rm -f "$DIR.start.log"; exit 1; }
rm -f "$DIR.start.log"
# shellcheck disable=SC1091
. "$DIR/s3.env"
BUCKET=lakefs-test

status=$(printf 'user = "%s:%s"\n' "$S3_ACCESS_KEY" "$S3_SECRET_KEY" |
    curl -sS -K - -o /dev/null -w "%{http_code}" -X PUT \
         -H "x-amz-content-sha256: $(sha256sum </dev/null | cut -d" " -f1)" \
         --aws-sigv4 "aws:amz:$S3_REGION:s3" "$S3_ENDPOINT/$BUCKET")
[ "$status" = 200 ] || { echo "create bucket: HTTP $status" >&2; exit 1; }

S3_TEST_ENDPOINT=$S3_ENDPOINT S3_TEST_BUCKET=$BUCKET \
S3_TEST_ACCESS_KEY=$S3_ACCESS_KEY S3_TEST_SECRET_KEY=$S3_SECRET_KEY \
S3_TEST_STOP="'$TOOLS/stop' '$DIR' >/dev/null 2>&1" \
S3_TEST_START="'$TOOLS/start' '$DIR' >/dev/null 2>&1" \
    "$BIN"

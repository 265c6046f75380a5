#!/usr/bin/env bash
# durability=remote: t50_crash with -o durability=remote, and after each
# kill -9 the daemon's state directory (local journal included) is deleted
# before the remount, as on a new machine: every commit PostgreSQL
# acknowledged must be found in the repository alone.
# backends: file s3
CRASH_DURABILITY=remote exec "$(dirname "$0")/t50_crash.sh"

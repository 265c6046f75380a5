#!/usr/bin/env bash
# tests/layering.sh -- the source folders import only downward, in the
# order README's layout gives: tools, then fs and lake, repo, store,
# objstore, util; and a module's internal header NAME_impl.h is included
# only by its own source files, NAME*.c in its folder.  Prints every #include that
# breaks either rule and exits 1 if there is one (tests/run.sh runs it
# first).
set -euo pipefail
cd "$(dirname "$0")/.."
rank() {
    case $1 in
    util) echo 0 ;; objstore) echo 1 ;; store) echo 2 ;; repo) echo 3 ;;
    fs | lake) echo 4 ;; tools) echo 5 ;; *) echo 9 ;;
    esac
}
bad=0 n=0
for f in util/*.[ch] objstore/*.[ch] store/*.[ch] repo/*.[ch] fs/*.[ch] fs/pg/*.[ch] lake/*.[ch] tools/*.[ch]; do
    from=${f%%/*}
    while read -r inc; do
        n=$((n + 1))
        target=$(realpath -m --relative-to=. "$(dirname "$f")/$inc")
        to=${target%%/*}
        if [ "$(rank "$to")" -gt "$(rank "$from")" ]; then
            echo "layering: $f includes $target: $to is above $from"
            bad=1
        fi
        case $target in
        *_impl.h)
            owner=${target%_impl.h}
            case $f in
            "$owner"*.c) ;;
            *)
                echo "layering: $f includes $target, internal to ${owner}*.c"
                bad=1
                ;;
            esac
            ;;
        esac
    done < <(sed -n 's/^#include "\(.*\)"$/\1/p' "$f")
done
echo "layering: $n includes checked"
exit $bad

#!/usr/bin/env bash
# Run every test binary and script of the named parts; print each one's output and a total.
# usage: tests/run-all.sh BUILD_DIR PART...
# A part is a folder tests/PART: its C cases are in BUILD/tests/test-PART, and each
# tests/PART/*.sh is a script case (exit 0 = pass; a script may print its own
# "N passed, N failed" line, which is then counted instead).
set -u
build=$1
shift
total_pass=0
total_fail=0
export PETREL_BUILD="$build"
PETREL_BIN="$(cd "$build" && pwd)/petrel"
export PETREL_BIN

count() { # $1 = output file, $2 = exit code, $3 = label
    local line p f
    line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$1" | tail -n 1)
    if [ -n "$line" ]; then
        p=${line%% passed*}
        f=${line#*passed, }
        f=${f%% failed*}
        if [ "$2" != 0 ] && [ "$f" = 0 ]; then f=1; echo "FAIL $3: exited $2"; fi
    elif [ "$2" = 0 ]; then
        p=1 f=0
    else
        p=0 f=1
        echo "FAIL $3: exited $2"
    fi
    total_pass=$((total_pass + p))
    total_fail=$((total_fail + f))
}

out=$(mktemp)
# Key files that `petrel cluster start` writes for its clients (docs/CLI.md, "Secrets") go to
# a scratch config directory, not the user's ~/.config.
XDG_CONFIG_HOME=$(mktemp -d)
export XDG_CONFIG_HOME
# Changes of cluster files stage their bytes under the user's cache dir: a scratch one here.
XDG_CACHE_HOME=$(mktemp -d)
export XDG_CACHE_HOME
trap 'rm -rf "$out" "$XDG_CONFIG_HOME" "$XDG_CACHE_HOME"' EXIT
start=$(date +%s)
for part in "$@"; do
    if [ -x "$build/tests/test-$part" ]; then
        echo "== test-$part"
        "$build/tests/test-$part" 2>&1 | tee "$out"
        count "$out" "${PIPESTATUS[0]}" "test-$part"
    fi
    for script in tests/"$part"/*.sh; do
        [ -f "$script" ] || continue
        echo "== $script"
        bash "$script" 2>&1 | tee "$out"
        count "$out" "${PIPESTATUS[0]}" "$script"
    done
done
echo "== all parts in $(( $(date +%s) - start )) s"
echo "$total_pass passed, $total_fail failed"
[ "$total_fail" = 0 ]

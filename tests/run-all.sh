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
# The flash-engine and simulator binaries are CPU-bound, single-threaded and deterministic (no
# servers, no timeouts that load could trip): when both are asked for, they run side by side
# on two cores, each into its own file, and are printed and counted in order afterwards. Every
# other part runs alone, since its process tests wait on real timeouts.
parallel=" fs sim "
declare -A early
n_parallel=0
for part in "$@"; do
    case "$parallel" in *" $part "*) [ -x "$build/tests/test-$part" ] && n_parallel=$((n_parallel + 1)) ;; esac
done
if [ "$n_parallel" -ge 2 ] && [ "${PETREL_TEST_SERIAL:-0}" != 1 ]; then
    pids=()
    for part in "$@"; do
        case "$parallel" in *" $part "*) ;; *) continue ;; esac
        [ -x "$build/tests/test-$part" ] || continue
        early[$part]=$(mktemp)
        ( "$build/tests/test-$part" > "${early[$part]}" 2>&1; echo $? > "${early[$part]}.rc" ) &
        pids+=($!)
    done
    wait "${pids[@]}"
fi
for part in "$@"; do
    if [ -n "${early[$part]:-}" ]; then
        echo "== test-$part (run beside the other CPU-bound parts)"
        cat "${early[$part]}"
        count "${early[$part]}" "$(cat "${early[$part]}.rc")" "test-$part"
        rm -f "${early[$part]}" "${early[$part]}.rc"
    elif [ -x "$build/tests/test-$part" ]; then
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

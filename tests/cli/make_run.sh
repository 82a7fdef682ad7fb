#!/usr/bin/env bash
# make run (mk/run.sh) in a scratch directory: it starts Petrel under ./var, mounts it at
# ./mnt and prints what to try; a file written through ./mnt is readable with the CLI; on
# SIGTERM (what Ctrl-C does to the script, which traps both) it unmounts and stops everything.
set -u
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/mount-lib.bash"
repo=$(pwd)
build=$(cd "$PETREL_BUILD" && pwd)
t=$(mktemp -d)
rpid=
cleanup() {
    [ -n "$rpid" ] && kill -TERM "$rpid" 2>/dev/null && wait "$rpid" 2>/dev/null
    mount_stop "$t/mnt"
    # Whatever a failed stop path left behind (servers run with paths under $t).
    pkill -TERM -f "$t/var" 2>/dev/null
    rm -rf "$t"
}
trap cleanup EXIT
require_fuse
cd "$t" || exit 1
sh "$repo/mk/run.sh" "$build" > run.out 2>&1 &
rpid=$!
deadline=$((SECONDS + 120))
while [ $SECONDS -lt $deadline ]; do
    grep -q '^Petrel:' run.out && break
    kill -0 "$rpid" 2>/dev/null || break
    sleep 0.1
done
if grep -q '^Petrel:' run.out && mountpoint -q mnt; then
    pass "make run mounts ./mnt"
    printf 'written through make run\n' > mnt/hello
    # The file is linked when its writer's handle is released (after close returns): wait
    # for it to be readable rather than for a fixed time.
    got=; deadline=$((SECONDS + 60))
    while [ $SECONDS -lt $deadline ]; do got=$(cat mnt/hello 2>/dev/null) && [ -n "$got" ] && break; sleep 0.05; done
    expect_eq "file through ./mnt" "written through make run" "$got"
    grep -q '^Try:' run.out && pass "prints what to try" || fail "prints what to try" "$(cat run.out)"
    # The status page it prints answers (the registry's HTTP view, docs/OPERATIONS.md).
    page=$(grep -o 'status: *http://[0-9.]*:[0-9]*/' run.out | head -n 1 | sed 's/^status: *//')
    if [ -n "$page" ]; then
        pass "prints the status page"
        hp=${page#http://}; hp=${hp%/}
        body=$(timeout 10 bash -c 'exec 3<>"/dev/tcp/${1%:*}/${1##*:}" &&
            printf "GET / HTTP/1.0\r\nHost: %s\r\n\r\n" "$1" >&3 && cat <&3' _ "$hp" 2>/dev/null || true)
        case "$body" in
        *"<html"*) pass "the status page answers" ;;
        *) fail "the status page answers" "$page: $(printf '%s' "$body" | head -c 200)" ;;
        esac
    else
        fail "prints the status page" "$(cat run.out)"
    fi
else
    fail "make run mounts ./mnt" "$(tail -n 20 run.out)"
fi
kill -TERM "$rpid"
wait "$rpid"; code=$?
rpid=
expect_eq "stops with status 0" 0 "$code"
mountpoint -q mnt && fail "unmounted on stop" "still mounted" || pass "unmounted on stop"
left=$(pgrep -f "$t/var" | wc -l)
expect_eq "nothing left running" 0 "$left"
grep -q "stopped; data stays" run.out && pass "says it stopped" || fail "says it stopped" "$(tail -n 3 run.out)"

# `make run | tee log`, then Ctrl-C: the reader of the script's output is gone before the
# script's stop path prints. A hang-up stands in for Ctrl-C here (a background job ignores
# SIGINT); the stop path must unmount and stop everything all the same.
mkfifo out.pipe
cat out.pipe > run2.out &
catpid=$!
sh "$repo/mk/run.sh" "$build" > out.pipe 2>&1 &
rpid=$!
deadline=$((SECONDS + 120))
while [ $SECONDS -lt $deadline ]; do
    grep -q '^Ctrl-C' run2.out && break
    kill -0 "$rpid" 2>/dev/null || break
    sleep 0.1
done
mountpoint -q mnt && pass "make run through a pipe mounts ./mnt" || fail "make run through a pipe mounts ./mnt" "$(tail -n 20 run2.out)"
kill "$catpid"; wait "$catpid" 2>/dev/null
kill -HUP "$rpid"
wait "$rpid"
rpid=
mountpoint -q mnt && fail "unmounted after the pipe closed" "still mounted" || pass "unmounted after the pipe closed"
left=$(pgrep -f "$t/var" | wc -l)
expect_eq "nothing left running after the pipe closed" 0 "$left"
finish

#!/usr/bin/env bash
# petrel cluster start --registries 3: a replicated registry group of three processes on fixed
# ports; the location names them all; cluster status shows each member; the registry leader
# killed, clients keep writing and reading (the supervisor starts it again); a resume on the
# same --dir keeps the group's ports and the data; refusals of a bad group size, a changed
# layout and a malformed group location.
set -u
. "$(dirname "$0")/../lib.sh"
t=$(mktemp -d)
P=$PETREL_BIN
cpid=
cleanup() {
    if [ -n "$cpid" ]; then kill -TERM "$cpid" 2>/dev/null; wait "$cpid" 2>/dev/null; fi
    rm -rf "$t"
}
trap cleanup EXIT

start_cluster() {
    local deadline=$((SECONDS + 120))
    : > "$t/cluster.out"
    "$P" cluster start --dir "$t/var" --shards 1 --replicas 3 --block-services 2 "$@" >"$t/cluster.out" 2>"$t/cluster.err" &
    cpid=$!
    A=
    while [ $SECONDS -lt $deadline ]; do
        A=$(head -n 1 "$t/cluster.out")
        [ -n "$A" ] && return 0
        kill -0 "$cpid" 2>/dev/null || break
        sleep 0.05
    done
    return 1
}

stop_cluster() {
    kill -TERM "$cpid" 2>/dev/null
    wait "$cpid"; local code=$?
    cpid=
    return $code
}

expect_fail "registries must be 1, 3 or 5" "bad --registries 2" "$P" cluster start --dir "$t/bad" --registries 2
expect_fail "malformed group location" "bad location" "$P" ls "petrel://127.0.0.1:1,,127.0.0.1:2/"

if ! start_cluster --registries 3; then
    fail "cluster start --registries 3" "no address: $(cat "$t/cluster.err")"
    finish; exit 1
fi
case "$A" in petrel://127.0.0.1:[0-9]*,127.0.0.1:[0-9]*,127.0.0.1:[0-9]*) pass "the location lists three members" ;; *) fail "group address" "$A" ;; esac
out=$("$P" cluster status "$A")
case "$out" in *"registry 0 "*"registry 1 "*"registry 2 "*) pass "cluster status lists the members" ;; *) fail "cluster status members" "$out" ;; esac
leaders=$(printf '%s\n' "$out" | grep -c '^  registry [0-2] .* leader ')
expect_eq "one registry leader" 1 "$leaders"
printf 'before\n' > "$t/a"
expect_ok "cp through the group" "$P" cp "$t/a" "$A/a"

# Kill the registry leader: clients keep working through the other members.
n=$(printf '%s\n' "$out" | sed -n 's/^  registry \([0-2]\) .* leader .*/\1/p')
pid=$(ps -o pid=,args= --ppid "$cpid" | awk -v r="--replica $n " '$3 == "registry" && index($0, r) {print $1}')
if [ -n "$pid" ]; then
    kill -KILL "$pid"
    pass "registry leader killed"
else
    fail "registry leader pid" "none for member $n"
fi
printf 'after\n' > "$t/b"
expect_ok "cp with the registry leader dead" "$P" cp "$t/b" "$A/b"
expect_out "cat written before" "before" "$P" cat "$A/a"
expect_out "cat written after" "after" "$P" cat "$A/b"
deadline=$((SECONDS + 30))
while :; do
    out=$("$P" cluster status "$A")
    leaders=$(printf '%s\n' "$out" | grep -c '^  registry [0-2] .* leader ')
    [ "$leaders" = 1 ] || [ $SECONDS -ge $deadline ] && break
    sleep 0.1
done
expect_eq "a new registry leader" 1 "$leaders"

stop_cluster && pass "stop" || fail "stop" "the supervisor exited $?"
if ! start_cluster; then
    fail "resume" "no address: $(cat "$t/cluster.err")"
    finish; exit 1
fi
first=$A
expect_eq "resume keeps the group's ports" "$first" "$A"
expect_out "data after resume" "after" "$P" cat "$A/b"
stop_cluster && pass "stop again" || fail "stop again" "the supervisor exited $?"
expect_fail "a changed layout is refused" "registries" "$P" cluster start --dir "$t/var" --registries 5
finish

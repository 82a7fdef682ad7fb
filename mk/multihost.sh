#!/usr/bin/env bash
# make test-multihost: a five-host deployment on one machine, each host a network namespace
# (ip netns) on one bridge (veth pairs), every frame authenticated:
#   registry group   h1 h2 h3          (10.77.0.1-3:7400)
#   shard 0          h1 h2 h3          shard 1   h3 h4 h5
#   CDC              h2 h4 h5          block services: one per host, failure domain host-N
# Phases: (1) one host (h5) cut off: the majority keeps serving (writes, mkdir, reads), the cut
# host refuses writes; healed, it converges. (2) the registry leader's host cut off: a new
# registry leader, the majority keeps serving, the cut host refuses writes; healed, it
# converges. (3) latency and loss on every link with tc netem; on a kernel without sch_netem,
# loss alone with nftables (numgen random drop), latency said and skipped. At the end every acknowledged file is read back byte for byte from
# every host. The servers are started and stopped by `petrel cluster up|down` from a deployment
# file, "ssh" being a shell in the host's namespace. Needs root and iproute2; prints "N passed,
# N failed". Long: not in `make test`.
# usage: mk/multihost.sh BUILD_DIR
set -u
build=${1:-build}
P="$(cd "$build" && pwd)/petrel"
if [ "$(id -u)" != 0 ] || ! command -v ip >/dev/null 2>&1; then
    echo "multihost: skipped (needs root and iproute2: ip netns, veth)"
    exit 0
fi
tag="pm$$"
t=$(mktemp -d "${TMPDIR:-/tmp}/petrel-multihost.XXXXXX")
passed=0
failed=0
pass() { echo "ok   $1"; passed=$((passed + 1)); }
fail() { echo "FAIL $1: $2"; failed=$((failed + 1)); }

cleanup() {
    local f
    [ -f "$t/deploy" ] && down
    for f in "$t"/h*/*/petrel.pid; do [ -f "$f" ] && kill -KILL "$(cat "$f")" 2>/dev/null; done
    for n in sw h1 h2 h3 h4 h5; do ip netns del "$tag$n" 2>/dev/null; done
    rm -rf "$t"
}
trap cleanup EXIT

# --- the network ---------------------------------------------------------------------------
ip netns add "${tag}sw" || { echo "multihost: cannot create namespaces"; exit 1; }
ip -n "${tag}sw" link add br0 type bridge
ip -n "${tag}sw" link set br0 up
for k in 1 2 3 4 5; do
    ip netns add "${tag}h$k"
    ip -n "${tag}h$k" link add eth0 type veth peer name "p$k" netns "${tag}sw"
    ip -n "${tag}sw" link set "p$k" master br0 up
    ip -n "${tag}h$k" addr add "10.77.0.$k/24" dev eth0
    ip -n "${tag}h$k" link set eth0 up
    ip -n "${tag}h$k" link set lo up
done
cut() { ip -n "${tag}sw" link set "p$1" down; }
heal() { ip -n "${tag}sw" link set "p$1" up; }

# --- the servers: a deployment file, started with `petrel cluster up` -----------------------
"$P" cluster init --secret "$t/secret" >/dev/null || { echo "multihost: no secret"; exit 1; }
REG=10.77.0.1:7400,10.77.0.2:7400,10.77.0.3:7400
A="petrel://$REG"
# "ssh" into a host = a shell in its namespace (cluster up/down call it as SSH TARGET COMMAND).
printf '#!/bin/sh\nexec ip netns exec "%s$1" sh -c "$2"\n' "$tag" >"$t/netns-ssh"
chmod +x "$t/netns-ssh"
{
    echo "# five hosts, each a network namespace"
    echo "petrel $P"
    echo "secret $t/secret"
    for k in 1 2 3 4 5; do echo "host h$k 10.77.0.$k h$k"; done
    for k in 1 2 3; do echo "registry h$k 7400 $t/h$k/registry"; done
    for k in 1 2 3 4 5; do echo "blocks h$k $t/h$k/blocks host-$k"; done
    for h in 1 2 3; do echo "shard 0 h$h $t/h$h/shard-0"; done
    for h in 3 4 5; do echo "shard 1 h$h $t/h$h/shard-1"; done
    for h in 2 4 5; do echo "cdc h$h $t/h$h/cdc"; done
} >"$t/deploy"
down() { "$P" cluster down "$t/deploy" --ssh "$t/netns-ssh" >/dev/null 2>&1; }
loc=$("$P" cluster up "$t/deploy" --ssh "$t/netns-ssh" 2>"$t/up.err")
[ "$loc" = "$A" ] && pass "cluster up starts the deployment file's servers" ||
    fail "cluster up" "printed '$loc': $(cat "$t/up.err")"
# cl HOST ARGS...: a client command from host HOST.
cl() {
    local h=$1
    shift
    ip netns exec "${tag}h$h" env PETREL_SECRET="$t/secret" "$P" "$@"
}

# wait_for NAME SECONDS CMD...: CMD succeeds within SECONDS (polled), else a failure.
wait_for() {
    local name=$1 secs=$2 deadline
    shift 2
    deadline=$((SECONDS + secs))
    while ! "$@" >/dev/null 2>&1; do
        if [ $SECONDS -ge $deadline ]; then
            fail "$name" "not within $secs s"
            return 1
        fi
        sleep 0.2
    done
    pass "$name"
}

# healthy HOST: from HOST, every registry member answers with one leader, 6 shard replicas and
# 2 shard leaders, 3 CDC replicas, 5 block services, none stale.
healthy() {
    local out
    out=$(cl "$1" cluster status "$A" 2>&1) || return 1
    [ "$(printf '%s\n' "$out" | grep -c '^  registry [0-2] .* leader ')" = 1 ] || return 1
    printf '%s\n' "$out" | grep -q 'unreachable' && return 1
    printf '%s\n' "$out" | grep -q '^shards: 6 replicas, 2 leaders, 0 stale' || return 1
    printf '%s\n' "$out" | grep -q '^cdc: 3 replicas' || return 1
    printf '%s\n' "$out" | grep -q '^block services: 5' || return 1
    printf '%s\n' "$out" | grep -E '^  (blocks|cdc|shard) ' | grep -qw 'stale' && return 1
    cl "$1" ls "$A/" >/dev/null 2>&1
}

# Acknowledged writes: each file written successfully is remembered with its bytes.
acked=()
# put HOST NAME: write a fresh file NAME from HOST; remembered when acknowledged.
put() {
    head -c $((1000 + RANDOM)) /dev/urandom >"$t/src-$2"
    if cl "$1" cp "$t/src-$2" "$A/$2" 2>"$t/err"; then
        acked+=("$2")
        return 0
    fi
    return 1
}
# check_all HOST: every acknowledged file reads back byte for byte from HOST.
check_all() {
    local f bad=0
    for f in "${acked[@]}"; do
        cl "$1" cat "$A/$f" 2>/dev/null | cmp -s - "$t/src-$f" || { bad=1; echo "  $f differs from h$1"; }
    done
    return $bad
}

wait_for "cluster serves from every host" 120 healthy 1 || { echo "$passed passed, $failed failed"; exit 1; }
out=$(cl 1 cluster status "$t/deploy" 2>&1)
case "$out" in *"registry 10.77.0.1:7400,10.77.0.2:7400,10.77.0.3:7400"*) pass "cluster status FILE" ;; *) fail "cluster status FILE" "$out" ;; esac
for i in 0 1 2; do put 1 "start-$i" || fail "write start-$i" "$(cat "$t/err")"; done
pass "writes before any fault"

# --- phase 1: one host cut off ---------------------------------------------------------------
cut 5
ok=1
for i in 0 1 2 3; do put 1 "cut5-$i" || { ok=0; fail "write with h5 cut off" "$(cat "$t/err")"; break; }; done
[ $ok = 1 ] && pass "the majority writes with h5 cut off"
cl 1 mkdir "$A/dir-cut5" 2>"$t/err" && pass "mkdir (CDC) with h5 cut off" || fail "mkdir with h5 cut off" "$(cat "$t/err")"
check_all 2 && pass "reads with h5 cut off" || fail "reads with h5 cut off" "acknowledged data unreadable"
head -c 100 /dev/urandom >"$t/minority"
if timeout 60 ip netns exec "${tag}h5" env PETREL_SECRET="$t/secret" "$P" cp "$t/minority" "$A/minority-5" >/dev/null 2>&1; then
    fail "the cut host refuses writes" "a write from h5 succeeded"
else
    pass "the cut host refuses writes"
fi
heal 5
wait_for "h5 converges after healing" 120 healthy 5

# --- phase 2: the registry leader's host cut off --------------------------------------------------
leader=$(cl 1 cluster status "$A" | sed -n 's/^  registry \([0-2]\) .* leader .*/\1/p')
lh=$((leader + 1))
other=4
echo "     registry leader is member $leader (h$lh)"
cut "$lh"
newleader() {
    local n
    n=$(cl "$other" cluster status "$A" 2>/dev/null | sed -n 's/^  registry \([0-2]\) .* leader .*/\1/p')
    [ -n "$n" ] && [ "$n" != "$leader" ]
}
wait_for "a new registry leader on the majority side" 60 newleader
ok=1
for i in 0 1 2 3; do put "$other" "cutleader-$i" || { ok=0; fail "write with the registry leader's host cut off" "$(cat "$t/err")"; break; }; done
[ $ok = 1 ] && pass "the majority writes with the registry leader's host cut off"
cl "$other" mkdir "$A/dir-cutleader" 2>"$t/err" && pass "mkdir with the leader's host cut off" || fail "mkdir with the leader's host cut off" "$(cat "$t/err")"
check_all "$other" && pass "reads with the leader's host cut off" || fail "reads with the leader's host cut off" "acknowledged data unreadable"
if timeout 60 ip netns exec "${tag}h$lh" env PETREL_SECRET="$t/secret" "$P" cp "$t/minority" "$A/minority-$lh" >/dev/null 2>&1; then
    fail "the old leader's host refuses writes" "a write from h$lh succeeded"
else
    pass "the old leader's host refuses writes"
fi
heal "$lh"
wait_for "h$lh converges after healing" 120 healthy "$lh"

# --- phase 3: latency and loss ----------------------------------------------------------------
if ip netns exec "${tag}h1" tc qdisc add dev eth0 root netem delay 20ms 5ms loss 2% 2>/dev/null; then
    for k in 2 3 4 5; do ip netns exec "${tag}h$k" tc qdisc add dev eth0 root netem delay 20ms 5ms loss 2%; done
    ok=1
    for i in 0 1 2; do put 3 "netem-$i" || { ok=0; fail "write under latency and loss" "$(cat "$t/err")"; break; }; done
    [ $ok = 1 ] && pass "writes under 20 ms latency and 2% loss"
    check_all 4 && pass "reads under latency and loss" || fail "reads under latency and loss" "acknowledged data unreadable"
    for k in 1 2 3 4 5; do ip netns exec "${tag}h$k" tc qdisc del dev eth0 root; done
    wait_for "converges after latency and loss" 120 healthy 1
else
    echo "skip latency: this kernel has no netem qdisc (sch_netem), the only qdisc that delays"
    # Loss without netem: nftables drops 3% of every host's outgoing packets at random
    # (numgen). The nft tool is installed here when missing (Debian nftables).
    if ! command -v nft >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q nftables >/dev/null 2>&1
    fi
    lossy=1
    for k in 1 2 3 4 5; do
        ip netns exec "${tag}h$k" nft add table inet petrel_loss 2>/dev/null &&
            ip netns exec "${tag}h$k" nft add chain inet petrel_loss out \
                '{ type filter hook output priority 0; }' 2>/dev/null &&
            ip netns exec "${tag}h$k" nft add rule inet petrel_loss out \
                numgen random mod 100 '<' 3 drop 2>/dev/null || { lossy=0; break; }
    done
    if [ $lossy = 1 ]; then
        ok=1
        for i in 0 1 2; do put 3 "loss-$i" || { ok=0; fail "write under 3% loss" "$(cat "$t/err")"; break; }; done
        [ $ok = 1 ] && pass "writes under 3% packet loss on every host"
        check_all 4 && pass "reads under 3% loss" || fail "reads under 3% loss" "acknowledged data unreadable"
        for k in 1 2 3 4 5; do ip netns exec "${tag}h$k" nft delete table inet petrel_loss 2>/dev/null; done
        wait_for "converges after loss" 120 healthy 1
    else
        for k in 1 2 3 4 5; do ip netns exec "${tag}h$k" nft delete table inet petrel_loss 2>/dev/null; done
        echo "skip loss: neither netem nor nftables (nft) can drop packets here"
    fi
fi

# --- nothing acknowledged lost ----------------------------------------------------------------
for k in 1 2 3 4 5; do
    check_all "$k" && pass "every acknowledged file (${#acked[@]}) reads back from h$k" ||
        fail "acknowledged files from h$k" "some differ or are missing"
done
for f in minority-5 "minority-$lh"; do
    if cl 1 stat "$A/$f" >/dev/null 2>&1; then fail "refused write $f absent" "it exists"; else pass "refused write $f absent"; fi
done
down && pass "cluster down stops every server" || fail "cluster down" "exited non-zero"
left=0
for f in "$t"/h*/*/petrel.pid; do [ -f "$f" ] && left=$((left + 1)); done
[ $left = 0 ] && pass "no server left running" || fail "no server left running" "$left pid files remain"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]

#!/usr/bin/env bash
# petrel cluster up|down|status FILE on this machine: a deployment file (a registry group of
# three on fixed loopback ports, a shard of three replicas, two block services), "ssh" being a
# local shell. Up prints the location and the cluster serves; a second up starts nothing twice;
# status FILE reports the group; down stops everything. Malformed files are refused with the
# line at fault.
set -u
. "$(dirname "$0")/../lib.sh"
t=$(mktemp -d)
P=$PETREL_BIN
cleanup() {
    local f
    [ -f "$t/deploy" ] && "$P" cluster down "$t/deploy" --ssh "$t/local-ssh" >/dev/null 2>&1
    for f in "$t"/*/petrel.pid; do [ -f "$f" ] && kill -KILL "$(cat "$f")" 2>/dev/null; done
    rm -rf "$t"
}
trap cleanup EXIT
printf '#!/bin/sh\nexec sh -c "$2"\n' >"$t/local-ssh"
chmod +x "$t/local-ssh"

bad() { # bad NAME PATTERN FILE-TEXT
    printf '%s\n' "$3" >"$t/bad"
    expect_fail "$1" "$2" "$P" cluster up "$t/bad" --ssh "$t/local-ssh"
}
# (directories under $t: a parser that wrongly accepted one of these starts nothing elsewhere)
bad "unknown host" "bad:2: unknown host" "$(printf 'host a 127.0.0.1\nregistry b 7400 %s/x' "$t")"
bad "two registries" "2 registry lines" "$(printf 'host a 127.0.0.1\nregistry a 7400 %s/x\nregistry a 7401 %s/y\nshard 0 a %s/s' "$t" "$t" "$t")"
bad "a shard of two" "shard 0 has 2 replicas" "$(printf 'host a 127.0.0.1\nregistry a 7400 %s/x\nshard 0 a %s/s\nshard 0 a %s/t' "$t" "$t" "$t")"
bad "a shell character" "bad:2: a field holds" "$(printf 'host a 127.0.0.1\nregistry a 7400 %s/x;rm' "$t")"
bad "an unknown line" "bad:2: want one of" "$(printf 'host a 127.0.0.1\nfrob a')"
expect_fail "a missing file" "cannot open" "$P" cluster up "$t/nope"

ports=$(python3 -c 'import socket
ss=[socket.socket() for _ in range(3)]
[s.bind(("127.0.0.1",0)) for s in ss]
print(" ".join(str(s.getsockname()[1]) for s in ss))')
set -- $ports
{
    echo "petrel $P"
    echo "host local 127.0.0.1 localhost"
    echo "registry local $1 $t/registry-0"
    echo "registry local $2 $t/registry-1"
    echo "registry local $3 $t/registry-2"
    for r in 0 1 2; do echo "shard 0 local $t/shard-0-$r"; done
    echo "blocks local $t/blocks-0 d0"
    echo "blocks local $t/blocks-1 d1"
} >"$t/deploy"
A=$("$P" cluster up "$t/deploy" --ssh "$t/local-ssh" 2>"$t/up.err")
expect_eq "up prints the group's location" "petrel://127.0.0.1:$1,127.0.0.1:$2,127.0.0.1:$3" "$A"
n=0; for f in "$t"/*/petrel.pid; do [ -f "$f" ] && n=$((n + 1)); done
expect_eq "every server started" 8 "$n"
before=$(cat "$t"/*/petrel.pid)
expect_ok "a second up" "$P" cluster up "$t/deploy" --ssh "$t/local-ssh"
expect_eq "a second up starts nothing twice" "$before" "$(cat "$t"/*/petrel.pid)"
printf 'deployed\n' >"$t/f"
deadline=$((SECONDS + 60))
until "$P" cp "$t/f" "$A/f" 2>/dev/null || [ $SECONDS -ge $deadline ]; do sleep 0.2; done
expect_out "the deployment serves" "deployed" "$P" cat "$A/f"
out=$("$P" cluster status "$t/deploy" 2>&1)
case "$out" in *"registry 0 "*"registry 1 "*"registry 2 "*"shards: 3 replicas"*) pass "status FILE" ;; *) fail "status FILE" "$out" ;; esac
pids=$(cat "$t"/*/petrel.pid)
expect_ok "down" "$P" cluster down "$t/deploy" --ssh "$t/local-ssh"
alive=0; for p in $pids; do kill -0 "$p" 2>/dev/null && ! grep -q ') Z ' "/proc/$p/stat" 2>/dev/null && alive=$((alive + 1)); done
expect_eq "down stops every server" 0 "$alive"
n=0; for f in "$t"/*/petrel.pid; do [ -f "$f" ] && n=$((n + 1)); done
expect_eq "down removes the pid files" 0 "$n"
expect_ok "down again is harmless" "$P" cluster down "$t/deploy" --ssh "$t/local-ssh"
finish

#!/usr/bin/env bash
# A cluster address that leads nowhere is one clear error within seconds, naming the address
# and the reason: nothing listening (refused), a listener that never answers (no answer within
# 3 s, not the 10 s retry budget), something that is not a registry, an unknown host name, a
# location without a port or host. For ls, cp, mount and cluster status alike.
set -u
. "$(dirname "$0")/../lib.sh"
t=$(mktemp -d)
lpid=
cleanup() {
    [ -n "$lpid" ] && kill "$lpid" 2>/dev/null && wait "$lpid" 2>/dev/null
    rm -rf "$t"
}
trap cleanup EXIT

# A port nothing listens on: bound and released by the OS.
free_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
# A listener that completes connections (backlog) but never reads nor answers, and one that
# answers every connection with bytes that are not a Petrel frame.
python3 - "$t" <<'PY' &
import socket, sys, threading, os
d = sys.argv[1]
silent = socket.socket(); silent.bind(("127.0.0.1", 0)); silent.listen(64)
junk = socket.socket(); junk.bind(("127.0.0.1", 0)); junk.listen(64)
def serve_junk():
    while True:
        c, _ = junk.accept()
        try:
            c.sendall(b"HTTP/1.0 400 Bad Request\r\n\r\n" * 4)
        finally:
            c.close()
threading.Thread(target=serve_junk, daemon=True).start()
with open(os.path.join(d, "ports.tmp"), "w") as f:
    f.write("%d %d\n" % (silent.getsockname()[1], junk.getsockname()[1]))
os.rename(os.path.join(d, "ports.tmp"), os.path.join(d, "ports"))
threading.Event().wait()
PY
lpid=$!
for _ in $(seq 100); do [ -s "$t/ports" ] && break; sleep 0.05; done
read -r silent_port junk_port < "$t/ports"

# timed NAME MAX_SECONDS PATTERN CMD...: fails with PATTERN, within MAX_SECONDS.
timed() {
    local name=$1 max=$2 pattern=$3 start end; shift 3
    start=$(date +%s%N)
    expect_fail "$name" "$pattern" "$@"
    end=$(date +%s%N)
    if [ $(((end - start) / 1000000)) -le $((max * 1000)) ]; then pass "$name: within ${max} s"
    else fail "$name: within ${max} s" "took $(((end - start) / 1000000)) ms"; fi
}

timed "ls, nothing listening" 2 "cannot reach cluster petrel://127.0.0.1:$free_port: connection refused" \
    "$PETREL_BIN" ls "petrel://127.0.0.1:$free_port/"
timed "cp, nothing listening" 2 "connection refused" \
    "$PETREL_BIN" cp /etc/hostname "petrel://127.0.0.1:$free_port/x"
timed "ls, a listener that never answers" 6 "petrel://127.0.0.1:$silent_port: no answer within 3 s" \
    "$PETREL_BIN" ls "petrel://127.0.0.1:$silent_port/"
timed "cluster status, a listener that never answers" 6 "no answer within 3 s" \
    "$PETREL_BIN" cluster status "petrel://127.0.0.1:$silent_port"
timed "ls, not a registry" 6 "petrel://127.0.0.1:$junk_port: what answers there is not a Petrel registry" \
    "$PETREL_BIN" ls "petrel://127.0.0.1:$junk_port/"
timed "ls, unknown host" 6 "unknown host 'no-such-host.invalid'" \
    "$PETREL_BIN" ls "petrel://no-such-host.invalid:7400/"
timed "cluster status, unknown host" 6 "unknown host 'no-such-host.invalid'" \
    "$PETREL_BIN" cluster status "petrel://no-such-host.invalid:7400"
expect_fail "ls, no port" "bad location 'petrel://127.0.0.1/': no port (write petrel://HOST:PORT/PATH)" \
    "$PETREL_BIN" ls "petrel://127.0.0.1/"
expect_fail "ls, empty port" "no port" "$PETREL_BIN" ls "petrel://127.0.0.1:/x"
expect_fail "ls, no host" "bad location 'petrel://:7400/': no host" "$PETREL_BIN" ls "petrel://:7400/"
expect_fail "ls, port out of range" "bad port '70000' (a number, 1-65535)" \
    "$PETREL_BIN" ls "petrel://127.0.0.1:70000/"
expect_fail "cluster status, no port" "no port" "$PETREL_BIN" cluster status "petrel://127.0.0.1"
if [ -c /dev/fuse ] && command -v fusermount3 >/dev/null; then
    mkdir "$t/mnt"
    timed "mount, nothing listening" 2 "connection refused" \
        "$PETREL_BIN" mount "petrel://127.0.0.1:$free_port" "$t/mnt" -f
    expect_fail "mount, no port" "no port" "$PETREL_BIN" mount "petrel://127.0.0.1" "$t/mnt"
fi
finish

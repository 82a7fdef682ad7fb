#!/usr/bin/env bash
# Cluster secrets through the CLI (docs/CLI.md, "Secrets"): cluster init (mode 0600, never
# overwrites), secret files others may read are refused by servers and clients, cluster start
# makes and uses DIR/secret and writes the per-user key file that plain `petrel ls` finds;
# --secret, PETREL_SECRET; no key and a wrong key are one clear error; the read-only key
# reads and lists but cannot write, remove or rename; nothing changed by the refusals.
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
# Key files of this test stay in its directory.
export XDG_CONFIG_HOME="$t/config"
unset PETREL_SECRET

# cluster init
expect_ok "cluster init" "$P" cluster init --secret "$t/s1"
mode=$(stat -c %a "$t/s1")
expect_eq "secret mode 600" "600" "$mode"
len=$(tr -d '\n' < "$t/s1" | wc -c)
expect_eq "secret is 64 hex digits" "64" "$len"
expect_fail "init never overwrites" "File exists" "$P" cluster init --secret "$t/s1"
expect_fail "init needs --secret" "--secret FILE is required" "$P" cluster init
cp "$t/s1" "$t/loose"; chmod 640 "$t/loose"
expect_fail "server refuses a group-readable secret" "group or others may access it" \
    timeout 20 "$P" registry --dir "$t/reg" --listen 127.0.0.1:0 --secret "$t/loose"
printf 'short\n' > "$t/short"; chmod 600 "$t/short"
expect_fail "server refuses a short secret" "shorter than 32 bytes" \
    timeout 20 "$P" registry --dir "$t/reg" --listen 127.0.0.1:0 --secret "$t/short"
expect_fail "read-only secret needs --secret" "--read-only-secret needs --secret" \
    timeout 20 "$P" registry --dir "$t/reg" --listen 127.0.0.1:0 --read-only-secret "$t/s1"
expect_fail "read-only secret is not the secret" "is the cluster secret itself" \
    timeout 20 "$P" registry --dir "$t/reg" --listen 127.0.0.1:0 --secret "$t/s1" --read-only-secret "$t/s1"

# cluster start: secrets made, every server gets them, the key file is written
"$P" cluster start --dir "$t/var" --shards 1 --block-services 2 >"$t/out" 2>"$t/err" &
cpid=$!
A=; deadline=$((SECONDS + 120))
while [ $SECONDS -lt $deadline ]; do
    A=$(head -n 1 "$t/out"); [ -n "$A" ] && break
    kill -0 "$cpid" 2>/dev/null || break
    sleep 0.05
done
if [ -z "$A" ]; then fail "cluster start" "$(cat "$t/err")"; finish; exit 1; fi
addr=${A#petrel://}
expect_eq "DIR/secret mode 600" "600" "$(stat -c %a "$t/var/secret")"
expect_eq "DIR/read-only-secret mode 600" "600" "$(stat -c %a "$t/var/read-only-secret")"
expect_eq "key file holds the secret" "$(cat "$t/var/secret")" "$(cat "$t/config/petrel/keys/$addr" 2>&1)"
expect_eq "key file mode 600" "600" "$(stat -c %a "$t/config/petrel/keys/$addr")"

printf 'hello\n' > "$t/f"
expect_ok "cp with the key file found by address" "$P" cp "$t/f" "$A/f"
expect_out "ls with no flag" "f" "$P" ls "$A/"
# no key at all: one clear error, nothing written
expect_fail "no key: one clear error" "authentication refused" \
    env XDG_CONFIG_HOME="$t/none" "$P" ls "$A/"
expect_fail "no key: cp refused" "authentication refused" \
    env XDG_CONFIG_HOME="$t/none" "$P" cp "$t/f" "$A/g"
# a wrong key, by flag and by environment
expect_fail "wrong key (--secret)" "authentication refused" \
    env XDG_CONFIG_HOME="$t/none" "$P" ls --secret "$t/s1" "$A/"
expect_fail "wrong key (PETREL_SECRET)" "authentication refused" \
    env XDG_CONFIG_HOME="$t/none" PETREL_SECRET="$t/s1" "$P" ls "$A/"
expect_fail "client refuses a group-readable secret" "group or others may access it" \
    "$P" ls --secret "$t/loose" "$A/"
expect_out "PETREL_SECRET" "f" env XDG_CONFIG_HOME="$t/none" PETREL_SECRET="$t/var/secret" "$P" ls "$A/"
# the read-only key: reads, lists; no write, remove, rename, mkdir
ro="--secret=$t/var/read-only-secret"
expect_out "read-only ls" "f" "$P" ls "$ro" "$A/"
expect_out "read-only cat" "hello" "$P" cat "$ro" "$A/f"
expect_fail "read-only cp refused" "ermission denied" "$P" cp "$ro" "$t/f" "$A/g"
expect_fail "read-only rm refused" "ermission denied" "$P" rm "$ro" "$A/f"
expect_fail "read-only mv refused" "ermission denied" "$P" mv "$ro" "$A/f" "$A/h"
expect_fail "read-only mkdir refused" "ermission denied" "$P" mkdir "$ro" "$A/d"
expect_out "nothing changed" "f" "$P" ls "$A/"
expect_out "content intact" "hello" "$P" cat "$A/f"
grep -q "refused a connection from 127.0.0.1" "$t/var/logs/registry.log" &&
    pass "the registry logged the refusals" || fail "registry log" "$(tail -3 "$t/var/logs/registry.log")"
n=$(grep -c "refused a connection from 127.0.0.1" "$t/var/logs/registry.log")
[ "$n" -lt 4 ] && pass "refusals logged once per interval ($n lines)" || fail "refusal lines" "$n"

kill -TERM "$cpid"; wait "$cpid"; code=$?; cpid=
expect_eq "cluster stops" "0" "$code"
finish

#!/usr/bin/env bash
# petrel registry / petrel blocks as commands: argument errors give one clear line and a
# non-zero exit; both print "listening on" once serving and exit 0 on SIGTERM; the registry
# refuses a corrupt state file instead of forgetting services. Every server started here is
# killed by PID at exit, even on failure.
. "$(dirname "$0")/../lib.sh"
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done; rm -rf "$tmp"; }
trap cleanup EXIT

expect_fail registry_needs_dir "--dir is required" "$PETREL_BIN" registry --listen 127.0.0.1:0
expect_fail registry_bad_option "unknown option" "$PETREL_BIN" registry --dir "$tmp/r" --bogus
expect_fail registry_bad_stale "bad --stale-after" "$PETREL_BIN" registry --dir "$tmp/r" --stale-after -3
expect_fail registry_bad_listen "cannot start" "$PETREL_BIN" registry --dir "$tmp/r" --listen nowhere
expect_fail blocks_needs_registry "--registry is required" "$PETREL_BIN" blocks --dir "$tmp/b" --failure-domain a
expect_fail blocks_needs_domain "--failure-domain is required" "$PETREL_BIN" blocks --registry 127.0.0.1:1 --dir "$tmp/b"
expect_fail blocks_needs_dir "--dir is required" "$PETREL_BIN" blocks --registry 127.0.0.1:1 --failure-domain a
expect_fail blocks_unknown_option "unknown option '--frob'" "$PETREL_BIN" blocks --frob
many_dirs=(); for i in $(seq 65); do many_dirs+=(--dir "$tmp/d$i"); done
expect_fail blocks_too_many_dirs "too many --dir (at most 64)" "$PETREL_BIN" blocks --registry 127.0.0.1:1 --failure-domain a "${many_dirs[@]}"
expect_ok blocks_help "$PETREL_BIN" blocks --help
expect_fail blocks_bad_scrub_rate "--scrub-rate 200000 is above 100000 MB/s" "$PETREL_BIN" blocks --registry 127.0.0.1:1 --dir "$tmp/b" --failure-domain a --scrub-rate 200000
expect_fail blocks_drain_needs_registry "--registry is required" "$PETREL_BIN" blocks drain 1f
expect_fail blocks_drain_bad_id "bad block service id 'xyz'" "$PETREL_BIN" blocks drain xyz --registry 127.0.0.1:1
expect_fail blocks_drain_unreachable "cannot reach the registry at 127.0.0.1:1" "$PETREL_BIN" blocks drain 1f --registry 127.0.0.1:1
expect_ok blocks_drain_help "$PETREL_BIN" blocks drain --help
expect_fail blocks_fail_needs_registry "--registry is required" "$PETREL_BIN" blocks fail 1f
expect_fail blocks_fail_bad_id "bad block service id 'xyz'" "$PETREL_BIN" blocks fail xyz --registry 127.0.0.1:1
expect_fail blocks_fail_bad_registry "bad registry address '127.0.0.1'" "$PETREL_BIN" blocks fail 1f --registry 127.0.0.1
expect_fail blocks_fail_unreachable "cannot reach the registry at 127.0.0.1:1" "$PETREL_BIN" blocks fail 1f --registry 127.0.0.1:1
expect_ok blocks_fail_help "$PETREL_BIN" blocks fail --help
expect_fail blocks_bad_registry "cannot start" "$PETREL_BIN" blocks --registry bad --dir "$tmp/b" --failure-domain a

# wait_line FILE: wait for a "listening on" line (60 s at most: busy CI machines); prints
# the address.
wait_line() {
    local deadline=$((SECONDS + 60))
    while [ $SECONDS -lt $deadline ]; do
        if grep -q '^listening on ' "$1" 2>/dev/null; then
            sed -n 's/^listening on \([^ ]*\).*/\1/p' "$1" | head -n 1
            return 0
        fi
        sleep 0.1
    done
    return 1
}

"$PETREL_BIN" registry --dir "$tmp/r" --listen 127.0.0.1:0 >"$tmp/reg.out" 2>"$tmp/reg.err" &
reg_pid=$!
pids+=("$reg_pid")
if addr=$(wait_line "$tmp/reg.out"); then pass registry_prints_address; else fail registry_prints_address "$(cat "$tmp/reg.err")"; fi
# A block service with a registry that is down still starts (reads work; writes wait for a secret).
"$PETREL_BIN" blocks --registry 127.0.0.1:1 --dir "$tmp/b" --failure-domain a >"$tmp/bl.out" 2>"$tmp/bl.err" &
bl_pid=$!
pids+=("$bl_pid")
if wait_line "$tmp/bl.out" >/dev/null; then pass blocks_starts_without_registry; else fail blocks_starts_without_registry "$(cat "$tmp/bl.err")"; fi
kill -TERM "$bl_pid"; wait "$bl_pid"; expect_eq blocks_sigterm_exit_0 0 $?
kill -TERM "$reg_pid"; wait "$reg_pid"; expect_eq registry_sigterm_exit_0 0 $?
[ -d "$tmp/r" ] && pass registry_created_dir || fail registry_created_dir "no $tmp/r"

printf 'PTRS garbage' >"$tmp/r/registry.state"
expect_fail registry_refuses_corrupt_state "corrupt" "$PETREL_BIN" registry --dir "$tmp/r" --listen 127.0.0.1:0
finish

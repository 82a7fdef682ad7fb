#!/usr/bin/env bash
# petrel shard / petrel cdc argument checking: bad or missing options give one error line and
# a non-zero exit, never a crash or a running server.
. tests/lib.sh
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
expect_fail shard_needs_options "are required" "$PETREL_BIN" shard --dir "$d/s"
expect_fail shard_bad_shard "bad --shard" "$PETREL_BIN" shard --registry 127.0.0.1:1 --shard 300 --replica 0 --dir "$d/s"
expect_fail shard_bad_replica "bad --replica" "$PETREL_BIN" shard --registry 127.0.0.1:1 --shard 0 --replica x --dir "$d/s"
expect_fail shard_bad_repair_rate "bad --repair-rate 'fast'" "$PETREL_BIN" shard --registry 127.0.0.1:1 --shard 0 --replica 0 --dir "$d/s" --repair-rate fast
expect_fail shard_bad_repair_stale "bad --repair-stale '-1'" "$PETREL_BIN" shard --registry 127.0.0.1:1 --shard 0 --replica 0 --dir "$d/s" --repair-stale -1
expect_fail shard_bad_group_size "--replicas must be 1, 3 or 5" "$PETREL_BIN" shard --registry 127.0.0.1:1 --shard 0 --replica 0 --replicas 2 --dir "$d/s"
expect_fail shard_replica_outside_group "--replica must be below --replicas" "$PETREL_BIN" shard --registry 127.0.0.1:1 --shard 0 --replica 3 --replicas 3 --dir "$d/s"
expect_fail shard_extra_argument "unexpected argument" "$PETREL_BIN" shard --registry 127.0.0.1:1 --shard 0 --replica 0 --dir "$d/s" extra
expect_fail shard_unwritable_dir "cannot" "$PETREL_BIN" shard --registry 127.0.0.1:1 --shard 0 --replica 0 --dir /proc/petrel-no
expect_fail cdc_needs_options "are required" "$PETREL_BIN" cdc --registry 127.0.0.1:1
expect_fail cdc_bad_shards "bad --shards" "$PETREL_BIN" cdc --registry 127.0.0.1:1 --replica 0 --shards 0 --dir "$d/c"
expect_fail cdc_bad_option "unknown option" "$PETREL_BIN" cdc --nope
expect_ok shard_help "$PETREL_BIN" shard --help
expect_ok cdc_help "$PETREL_BIN" cdc --help

# A one-replica shard and CDC start against a registry and stop cleanly on SIGTERM (exit 0;
# under ASan also without leaks).
"$PETREL_BIN" registry --dir "$d/reg" --listen 127.0.0.1:0 > "$d/reg.out" 2>&1 &
rp=$!
reg=""
deadline=$((SECONDS + 60))
while [ $SECONDS -lt $deadline ]; do
    reg=$(grep -o '127.0.0.1:[0-9]*' "$d/reg.out" 2>/dev/null | head -1)
    [ -n "$reg" ] && break
    sleep 0.1
done
"$PETREL_BIN" shard --registry "$reg" --shard 0 --replica 0 --replicas 1 --dir "$d/s0" > "$d/s.out" 2>&1 &
sp=$!
"$PETREL_BIN" cdc --registry "$reg" --replica 0 --replicas 1 --dir "$d/c0" > "$d/c.out" 2>&1 &
cp=$!
# Stop them once both run their loop: registered with the registry (their heartbeat), not
# after a fixed delay that a busy machine may need more than.
deadline=$((SECONDS + 60))
while [ $SECONDS -lt $deadline ]; do
    st=$("$PETREL_BIN" cluster status "petrel://$reg" 2>/dev/null)
    case "$st" in *"shards: 1 replica"*"cdc: 1 replica"*) break ;; esac
    sleep 0.1
done
case "$st" in *"shards: 1 replica"*"cdc: 1 replica"*) pass shard_and_cdc_register ;;
    *) fail shard_and_cdc_register "$st" ;; esac
kill -TERM $sp $cp
wait $sp; shard_rc=$?
wait $cp; cdc_rc=$?
kill -TERM $rp; wait $rp
expect_eq shard_sigterm_exit_0 0 "$shard_rc"
expect_eq cdc_sigterm_exit_0 0 "$cdc_rc"
[ -d "$d/s0/raft" ] && pass shard_created_raft_dir || fail shard_created_raft_dir "no $d/s0/raft"
finish

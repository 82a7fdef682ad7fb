#!/usr/bin/env bash
# petrel policy: set, show (with where it comes from), clear on a running shard; bad input gets
# one error line and a non-zero exit.
. tests/lib.sh
d=$(mktemp -d)
trap 'kill $sp $rp 2>/dev/null; wait 2>/dev/null; rm -rf "$d"' EXIT
expect_fail policy_needs_location "missing argument" "$PETREL_BIN" policy show
expect_fail policy_unknown_action "unknown action" "$PETREL_BIN" policy frob petrel://127.0.0.1:1/
expect_fail policy_not_cluster "not a cluster location" "$PETREL_BIN" policy show "$d"
expect_fail policy_bad_rs "takes D,P" "$PETREL_BIN" policy set petrel://127.0.0.1:1/ --rs 4-2
expect_ok policy_help "$PETREL_BIN" policy --help

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
# Wait until the shard answers (the default policy shows).
deadline=$((SECONDS + 60))
out=""
while [ $SECONDS -lt $deadline ]; do
    out=$("$PETREL_BIN" policy show "petrel://$reg/" 2>&1) && break
    sleep 0.2
done
case "$out" in *"cluster default"*) pass policy_show_default ;; *) fail policy_show_default "$out" ;; esac
expect_ok policy_set_rs "$PETREL_BIN" policy set "petrel://$reg/" --rs 10,4 --threshold 8M --block-size 2M --copies 3
out=$("$PETREL_BIN" policy show "petrel://$reg/" 2>&1)
case "$out" in *"RS(10,4) in 2.0M blocks"*"3 copies"*"set on /"*) pass policy_show_set ;;
    *) fail policy_show_set "$out" ;; esac
expect_fail policy_set_invalid "invalid policy" "$PETREL_BIN" policy set "petrel://$reg/" --rs 4,7
expect_fail policy_set_bad_block "invalid policy" "$PETREL_BIN" policy set "petrel://$reg/" --rs 4,2 --block-size 100K
expect_fail policy_missing_dir "No such file" "$PETREL_BIN" policy show "petrel://$reg/nope"
expect_ok policy_clear "$PETREL_BIN" policy clear "petrel://$reg/"
out=$("$PETREL_BIN" policy show "petrel://$reg/" 2>&1)
case "$out" in *"cluster default"*) pass policy_cleared ;; *) fail policy_cleared "$out" ;; esac
finish

#!/usr/bin/env bash
# --http on the command line: a bad or taken address is one clear error line and a non-zero
# exit for every server; `petrel cluster start --http` serves the status page, which links the
# /metrics of every child, and stops cleanly on SIGTERM. Everything started here is killed by
# PID at exit, even on failure.
. "$(dirname "$0")/../lib.sh"
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done; rm -rf "$tmp"; }
trap cleanup EXIT
P=$PETREL_BIN

expect_fail registry_bad_http "(HTTP on nowhere)" "$P" registry --dir "$tmp/r" --listen 127.0.0.1:0 --http nowhere
expect_fail registry_bad_http_port "(HTTP on 127.0.0.1:70000)" "$P" registry --dir "$tmp/r" --listen 127.0.0.1:0 --http 127.0.0.1:70000
expect_fail blocks_bad_http "HTTP on 1.2.3:4" "$P" blocks --registry 127.0.0.1:1 --dir "$tmp/b" --failure-domain a --http 1.2.3:4
expect_fail shard_bad_http "cannot serve HTTP on x:1: invalid argument" "$P" shard --registry 127.0.0.1:1 --shard 0 --replica 0 --replicas 1 --dir "$tmp/s" --http x:1
expect_fail cdc_bad_http "cannot serve HTTP on :80: invalid argument" "$P" cdc --registry 127.0.0.1:1 --replica 0 --replicas 1 --dir "$tmp/c" --http :80

# A taken port: bind one with a registry, then ask for it again.
"$P" registry --dir "$tmp/r1" --listen 127.0.0.1:0 --http 127.0.0.1:0 >"$tmp/r1.out" 2>&1 &
pids+=($!)
deadline=$((SECONDS + 60))
until grep -q '^http on ' "$tmp/r1.out" 2>/dev/null || [ $SECONDS -ge $deadline ]; do sleep 0.1; done
taken=$(sed -n 's/^http on //p' "$tmp/r1.out")
if [ -n "$taken" ]; then
    pass registry_prints_http_line
    expect_fail registry_http_port_taken "address in use" "$P" registry --dir "$tmp/r2" --listen 127.0.0.1:0 --http "$taken"
    expect_fail shard_http_port_taken "cannot serve HTTP on $taken: address in use" "$P" shard --registry 127.0.0.1:1 --shard 0 --replica 0 --replicas 1 --dir "$tmp/s2" --http "$taken"
else
    fail registry_prints_http_line "no 'http on' line: $(cat "$tmp/r1.out")"
fi
kill -TERM "${pids[0]}" && wait "${pids[0]}"
expect_eq registry_http_stops 0 $?

# cluster start --http
"$P" cluster start --dir "$tmp/var" --shards 2 --block-services 2 --http 127.0.0.1:0 \
    >"$tmp/cluster.out" 2>"$tmp/cluster.err" &
cpid=$!
pids+=($cpid)
deadline=$((SECONDS + 120))
until grep -q 'status page http://' "$tmp/cluster.err" 2>/dev/null || [ $SECONDS -ge $deadline ]; do
    sleep 0.2
done
page=$(sed -n 's|.*status page http://\([0-9.:]*\)/.*|\1|p' "$tmp/cluster.err")
if [ -z "$page" ]; then
    fail cluster_start_http "no status page line: $(cat "$tmp/cluster.err")"
else
    html=$(python3 - "$page" <<'PY'
import sys, urllib.request
print(urllib.request.urlopen("http://%s/" % sys.argv[1], timeout=10).read().decode())
PY
)
    links=$(printf '%s' "$html" | grep -o 'href="http://[0-9.:]*/metrics"' | sort -u | wc -l)
    # 2 shards, 1 CDC replica, 2 block services
    expect_eq cluster_start_http_links 5 "$links"
    ok=1
    for u in $(printf '%s' "$html" | grep -o 'http://[0-9.:]*/metrics' | sort -u); do
        python3 -c "import sys,urllib.request; t=urllib.request.urlopen(sys.argv[1],timeout=10).read().decode(); sys.exit(0 if '# TYPE petrel_connections gauge' in t else 1)" "$u" || ok=0
    done
    [ $ok = 1 ] && pass cluster_start_http_metrics || fail cluster_start_http_metrics "a /metrics did not answer"
fi
kill -TERM $cpid
wait $cpid
expect_eq cluster_start_http_stops 0 $?

# cluster start --registries 3 --http: member 0's status page lists the group
"$P" cluster start --dir "$tmp/var3" --shards 1 --block-services 1 --registries 3 \
    --http 127.0.0.1:0 >"$tmp/cluster3.out" 2>"$tmp/cluster3.err" &
cpid=$!
pids+=($cpid)
deadline=$((SECONDS + 120))
until grep -q 'status page http://' "$tmp/cluster3.err" 2>/dev/null || [ $SECONDS -ge $deadline ]; do
    sleep 0.2
done
page=$(sed -n 's|.*status page http://\([0-9.:]*\)/.*|\1|p' "$tmp/cluster3.err")
if [ -z "$page" ]; then
    fail cluster_group_http "no status page line: $(cat "$tmp/cluster3.err")"
else
    html=$(python3 - "$page" <<'PY'
import sys, urllib.request
print(urllib.request.urlopen("http://%s/" % sys.argv[1], timeout=10).read().decode())
PY
)
    rows=$(printf '%s' "$html" | grep -c '<tr data-member="[0-2]" data-role="\(leader\|follower\|down\)"')
    expect_eq cluster_group_http_members 3 "$rows"
    printf '%s' "$html" | grep -q '<p id="member" data-member="0"' &&
        pass cluster_group_http_self || fail cluster_group_http_self "the page does not say it is member 0"
fi
kill -TERM $cpid
wait $cpid
expect_eq cluster_group_http_stops 0 $?
finish

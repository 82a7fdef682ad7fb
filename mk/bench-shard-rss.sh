#!/usr/bin/env bash
# make bench-shard-rss: a shard replica's resident memory as its store grows (issue 14).
#
# Starts `petrel cluster start` on loopback (1 shard x 3 replicas, 3 block services) with its
# data under BENCH_DIR (default build/bench-shard-rss) and runs `petrel-bench shard_rss`
# against it: BENCH_FILES empty files (default 100000; BENCH_FILES=1000000 for the issue's
# figure) created through the client library from BENCH_THREADS clients (default 8), printing
# per 100,000 files the time taken and every replica's VmRSS. Not part of `make test`.
set -u
build=${1:-build}
P=$build/petrel
B=${BENCH_BIN:-$build/bench/petrel-bench}
dir=${BENCH_DIR:-$build/bench-shard-rss}
cpid=

say() { printf '%s\n' "$*"; }
stop() {
    if [ -n "$cpid" ]; then
        kill -TERM "$cpid" 2>/dev/null
        wait "$cpid" 2>/dev/null
        cpid=
    fi
}
die() { say "bench-shard-rss: $*" >&2; stop; exit 1; }
trap 'stop; rm -rf "$dir"' EXIT
trap 'exit 1' INT TERM

[ -x "$P" ] && [ -x "$B" ] || die "no $P or $B: run make first"
rm -rf "$dir"
mkdir -p "$dir" || die "cannot create $dir"
dir=$(cd "$dir" && pwd)
"$P" cluster start --dir "$dir/var" --shards 1 --replicas 3 --block-services 3 >"$dir/cluster.out" \
    2>"$dir/cluster.err" &
cpid=$!
A=
for _ in $(seq 1 2400); do
    A=$(head -n 1 "$dir/cluster.out")
    [ -n "$A" ] && break
    kill -0 "$cpid" 2>/dev/null || break
    sleep 0.05
done
[ -n "$A" ] || die "the cluster did not start: $(tail -n 5 "$dir/cluster.err")"
PETREL_SECRET=$dir/var/secret PETREL_BENCH_REGISTRY=${A#petrel://} PETREL_BENCH_CLUSTER_DIR=$dir/var \
    "$B" shard_rss ||
    die "petrel-bench shard_rss failed"
say "raft directories:"
du -sh "$dir"/var/shard-0/replica-*/raft 2>/dev/null

#!/usr/bin/env bash
# make bench-cluster: streaming throughput of a local cluster against the raw disk, in one run.
#
# Starts `petrel cluster start` on loopback (1 shard, 3 block services: mirrored spans with the
# default 2 copies) with its data under BENCH_DIR, and measures on the same disk:
#   raw disk  - dd of the source file with fsync (write), then a cold read (page cache dropped
#               when root, else O_DIRECT);
#   write-1g  - petrel cp of the file into the cluster (every block durable before cp returns);
#   read-1g   - petrel cat of it to /dev/null with the page cache dropped (cold);
#   writers-4 - 4 petrel cp of SIZE/4 each at once (aggregate MiB/s);
#   cpu-per-gib - CPU seconds (user + system) of every cluster process and the client per GiB
#               written, over the write-1g run.
# Prints `cluster-bench NAME VALUE UNIT ratio-to-raw R` lines and a summary. BENCH_SIZE_MB sets
# the file size (default 1024; the names keep "1g"). Not part of `make test`: the figures
# depend on the disk and the load of the machine; nothing here asserts a speed.
set -u
build=${1:-build}
P=$build/petrel
size_mb=${BENCH_SIZE_MB:-1024}
dir=${BENCH_DIR:-$build/bench-cluster}
cpid=

say() { printf '%s\n' "$*"; }
die() { say "bench-cluster: $*" >&2; stop; exit 1; }

stop() {
    if [ -n "$cpid" ]; then
        kill -TERM "$cpid" 2>/dev/null
        wait "$cpid" 2>/dev/null
        cpid=
    fi
}
trap 'stop; rm -rf "$dir"' EXIT
trap 'exit 1' INT TERM

now() { date +%s.%N; }
# MiB/s of $1 MiB in the seconds between $2 and $3
rate() { awk -v m="$1" -v a="$2" -v b="$3" 'BEGIN { printf "%.1f", m / (b - a) }'; }
ratio() { awk -v x="$1" -v y="$2" 'BEGIN { printf "%.2f", (y > 0 ? x / y : 0) }'; }

drop_cache() {
    sync
    if [ "$(id -u)" = 0 ] && [ -w /proc/sys/vm/drop_caches ]; then
        echo 3 > /proc/sys/vm/drop_caches
    fi
}

# CPU ticks (user + system) of a process and all its descendants, children that ended included
# (cutime/cstime) -- the block services, shards, registry and CDC are children of cluster start.
tree_ticks() {
    local pid=$1 total=0 kid t
    t=$(awk '{ print $14 + $15 + $16 + $17 }' "/proc/$pid/stat" 2>/dev/null || echo 0)
    total=$t
    for kid in $(cat /proc/"$pid"/task/*/children 2>/dev/null); do
        total=$((total + $(tree_ticks "$kid")))
    done
    echo "$total"
}

[ -x "$P" ] || die "no $P: run make first"
rm -rf "$dir"
mkdir -p "$dir" || die "cannot create $dir"
src=$dir/src.bin
say "bench-cluster: $size_mb MiB file, data under $dir"
head -c $((size_mb * 1024 * 1024)) /dev/urandom > "$src" || die "cannot write $src"

# --- the raw disk, same run ---------------------------------------------------------------------
t0=$(now)
dd if="$src" of="$dir/raw.bin" bs=4M conv=fsync status=none || die "dd write failed"
t1=$(now)
raw_write=$(rate "$size_mb" "$t0" "$t1")
drop_cache
t0=$(now)
if [ "$(id -u)" = 0 ]; then
    dd if="$dir/raw.bin" of=/dev/null bs=4M status=none || die "dd read failed"
else
    dd if="$dir/raw.bin" of=/dev/null bs=4M iflag=direct status=none || die "dd read failed"
fi
t1=$(now)
raw_read=$(rate "$size_mb" "$t0" "$t1")
rm -f "$dir/raw.bin"
say "cluster-bench raw-write $raw_write MiB/s ratio-to-raw 1.00"
say "cluster-bench raw-read $raw_read MiB/s ratio-to-raw 1.00"

# --- the cluster ---------------------------------------------------------------------------------
"$P" cluster start --dir "$dir/var" --shards 1 --block-services 3 >"$dir/cluster.out" \
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

clk=$(getconf CLK_TCK)
sync
c0=$(tree_ticks "$cpid")
t0=$(now)
# the client's CPU: this shell's children that ended (the subshell and its petrel cp)
cl0=$(awk '{ print $16 + $17 }' /proc/$$/stat)
( "$P" cp "$src" "$A/one" ) || die "petrel cp into the cluster failed"
t1=$(now)
c1=$(tree_ticks "$cpid")
cl1=$(awk '{ print $16 + $17 }' /proc/$$/stat)
write=$(rate "$size_mb" "$t0" "$t1")
cpu=$(awk -v s=$((c1 - c0)) -v c=$((cl1 - cl0)) -v k="$clk" -v m="$size_mb" \
    'BEGIN { printf "%.2f", (s + c) / k / (m / 1024) }')
say "cluster-bench write-1g $write MiB/s ratio-to-raw $(ratio "$write" "$raw_write")"

drop_cache
t0=$(now)
"$P" cat "$A/one" > /dev/null || die "petrel cat failed"
t1=$(now)
read=$(rate "$size_mb" "$t0" "$t1")
say "cluster-bench read-1g $read MiB/s ratio-to-raw $(ratio "$read" "$raw_read")"
"$P" cat "$A/one" | cmp -s - "$src" || die "the file read back differs from what was written"

part_mb=$((size_mb / 4))
for i in 0 1 2 3; do
    dd if="$src" of="$dir/part$i" bs=1M skip=$((i * part_mb)) count=$part_mb status=none
done
sync
t0=$(now)
pids=
for i in 0 1 2 3; do
    "$P" cp "$dir/part$i" "$A/part$i" & pids="$pids $!"
done
fail=0
for p in $pids; do wait "$p" || fail=1; done
t1=$(now)
[ $fail = 0 ] || die "a parallel writer failed"
writers=$(rate $((part_mb * 4)) "$t0" "$t1")
say "cluster-bench writers-4 $writers MiB/s ratio-to-raw $(ratio "$writers" "$raw_write")"
say "cluster-bench cpu-per-gib $cpu s ratio-to-raw 0"

say ""
say "  workload      MiB/s    raw     ratio"
say "  write-1g   $(printf '%8s %8s %6s' "$write" "$raw_write" "$(ratio "$write" "$raw_write")")"
say "  read-1g    $(printf '%8s %8s %6s' "$read" "$raw_read" "$(ratio "$read" "$raw_read")")"
say "  writers-4  $(printf '%8s %8s %6s' "$writers" "$raw_write" "$(ratio "$writers" "$raw_write")")"
say "  cpu-per-gib $cpu s (servers + client, write-1g)"

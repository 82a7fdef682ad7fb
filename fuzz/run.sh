#!/usr/bin/env bash
# Run libFuzzer targets one after another (the machine is shared: never in parallel).
# usage: fuzz/run.sh BUILD_DIR SECONDS TARGET...
# Each target starts from its seed corpus fuzz/corpus/TARGET (read only) and keeps what it
# finds in BUILD_DIR/corpus/TARGET; crash, leak and timeout inputs go to BUILD_DIR/crashes/.
# FUZZ_ARGS adds libFuzzer options (e.g. "-fork=1 -ignore_crashes=1" to go on past a known
# crash). Prints each run's last status line; exits non-zero if any target found a crash.
set -u
build=$1
secs=$2
shift 2
status=0
mkdir -p "$build/crashes"
for t in "$@"; do
    mkdir -p "$build/corpus/$t" "fuzz/corpus/$t"
    echo "== fuzz-$t for ${secs}s"
    log="$build/fuzz-$t.log"
    "$build/fuzz-$t" -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 -max_len=16384 \
        -artifact_prefix="$build/crashes/$t-" -print_final_stats=1 ${FUZZ_ARGS:-} \
        "$build/corpus/$t" "fuzz/corpus/$t" >"$log" 2>&1
    rc=$?
    grep -E '^#[0-9]+[[:space:]]+(DONE|pulse|NEW|REDUCE|INITED)' "$log" | tail -n 1
    grep -E '^stat::number_of_executed_units|^stat::peak_rss_mb' "$log"
    if [ $rc != 0 ]; then
        echo "FAIL fuzz-$t: exit $rc, see $log"
        grep -E 'ERROR|invariant|Test unit written' "$log" | head -5
        status=1
    fi
done
exit $status

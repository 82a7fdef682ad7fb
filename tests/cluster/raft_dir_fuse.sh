#!/usr/bin/env bash
# A shard replica refuses a data directory on FUSE (which may acknowledge fsync without making
# data durable: issue 10) with one clear line, and starts there with --unsafe-no-fsync-check.
# The FUSE filesystem is Petrel's own mount of a local directory.
set -u
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../cli/mount-lib.bash"
t=$(mktemp -d)
cleanup() { mount_stop "$t/mnt"; rm -rf "$t"; }
trap cleanup EXIT
require_fuse

mkdir -p "$t/store"
if mount_start "$t/store" "$t/mnt"; then
    out=$(PETREL_QUIET=1 timeout 20 "$PETREL_BIN" shard --registry 127.0.0.1:1 --shard 0 \
        --replica 0 --replicas 1 --dir "$t/mnt/replica" 2>&1)
    rc=$?
    if [ "$rc" = 1 ] && [ "$(printf '%s\n' "$out" | wc -l)" = 1 ] &&
        printf '%s' "$out" | grep -q "is on a FUSE filesystem.*--unsafe-no-fsync-check"; then
        pass "FUSE data directory refused with one line"
    else
        fail "FUSE data directory refused with one line" "exit $rc: $out"
    fi
    # With the flag it passes the checks and runs (until the bound below stops it): its log
    # files exist on the mount.
    PETREL_QUIET=1 timeout 3 "$PETREL_BIN" shard --registry 127.0.0.1:1 --shard 0 --replica 0 \
        --replicas 1 --dir "$t/mnt/replica" --unsafe-no-fsync-check > "$t/out" 2>&1
    rc=$?
    if [ "$rc" = 124 ] && ls "$t/mnt/replica/raft" | grep -q '^seg-'; then
        pass "--unsafe-no-fsync-check runs on FUSE"
    else
        fail "--unsafe-no-fsync-check runs on FUSE" "exit $rc: $(cat "$t/out")"
    fi
    mount_stop "$t/mnt" || fail "unmount" "still mounted"
else
    fail "mount a directory" "not mounted"
fi
finish

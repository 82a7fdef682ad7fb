#!/usr/bin/env bash
# The FUSE driver over the local backend: shell tools through a real mount of a directory,
# compared byte for byte with the same steps on a plain directory. This tests the driver
# itself; image and cluster mounts have their own cases.
set -u
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/mount-lib.bash"
t=$(mktemp -d)
cleanup() { mount_stop "$t/mnt"; rm -rf "$t"; }
trap cleanup EXIT
require_fuse

mkdir -p "$t/store"
if mount_start "$t/store" "$t/mnt"; then
    pass "mount a directory"
    exercise_mount local "$t/mnt" "$t/work"
    mount_stop "$t/mnt" && pass "unmount" || fail "unmount" "still mounted"
else
    fail "mount a directory" "not mounted"
fi

# Read-only mounts refuse changes.
: > "$t/store/kept"
if mount_start "$t/store" "$t/mnt" -o ro; then
    touch "$t/mnt/new" 2>/dev/null && fail "ro: create" "succeeded" || pass "ro: create refused"
    rm "$t/mnt/kept" 2>/dev/null && fail "ro: unlink" "succeeded" || pass "ro: unlink refused"
    mount_stop "$t/mnt"
else
    fail "mount -o ro" "not mounted"
fi
expect_fail "mount on missing mount point" "cannot mount at" "$PETREL_BIN" mount "$t/store" "$t/no/such/dir"
finish

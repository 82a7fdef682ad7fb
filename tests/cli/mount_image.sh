#!/usr/bin/env bash
# FUSE mounts of flash images: shell tools (cp, mv, rm -r, ls, cat, tar c/x, dd, truncate,
# xattrs) through a real mount compared byte for byte with a local directory; data written
# through the mount read back with the CLI; the image locked while mounted; -o ro; and a
# kill -9 of the mount process (a power cut) in the middle of writes, followed by fsck and
# a check that every file closed before the kill is intact.
set -u
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/mount-lib.bash"
t=$(mktemp -d)
cleanup() {
    mount_stop "$t/mnt"
    [ -n "${writer:-}" ] && kill "$writer" 2>/dev/null
    rm -rf "$t"
}
trap cleanup EXIT
require_fuse
P=$PETREL_BIN

"$P" mkfs "$t/disk.img" --size 32M >/dev/null || { fail "mkfs" "failed"; finish; exit 1; }
if mount_start "$t/disk.img" "$t/mnt"; then
    pass "mount image"
    exercise_mount image "$t/mnt" "$t/work"
    printf 'through the mount\n' > "$t/mnt/note"
    expect_fail "image locked while mounted" "in use" "$P" ls "$t/disk.img:/"
    out=$(df "$t/mnt" | tail -n 1); case "$out" in petrel-image*) pass "df on mount" ;; *) fail "df on mount" "$out" ;; esac
    mount_stop "$t/mnt" && pass "unmount image" || fail "unmount image" "still mounted"
    expect_out "CLI reads what the mount wrote" "through the mount" "$P" cat "$t/disk.img:/note"
    expect_out "clean after mount" "$t/disk.img: clean" "$P" fsck "$t/disk.img"
else
    fail "mount image" "not mounted"
fi

if mount_start "$t/disk.img" "$t/mnt" -o ro; then
    [ "$(cat "$t/mnt/note")" = "through the mount" ] && pass "ro: read" || fail "ro: read" "wrong"
    ( echo x > "$t/mnt/new" ) 2>/dev/null && fail "ro: write" "succeeded" || pass "ro: write refused"
    mount_stop "$t/mnt"
else
    fail "mount -o ro" "not mounted"
fi
expect_fail "mount a garbage image" "cannot open" "$P" mount /etc/hostname "$t/mnt"

# Power cut: files closed before the kill must be intact; the image must pass fsck.
if mount_start "$t/disk.img" "$t/mnt"; then
    pid=$(mount_server_pid "$t/mnt")
    mkdir "$t/mnt/kept" "$t/ref"
    for i in 1 2 3 4 5; do
        head -c $((i * 70000)) /dev/urandom > "$t/ref/f$i"
        cp "$t/ref/f$i" "$t/mnt/kept/f$i"
    done
    ( i=0; while :; do head -c 300000 /dev/urandom > "$t/mnt/churn$((i % 3))" 2>/dev/null; \
        mv "$t/mnt/churn$((i % 3))" "$t/mnt/churned$((i % 2))" 2>/dev/null; i=$((i + 1)); done ) 2>/dev/null &
    writer=$!
    # Kill the mount while the churn is under way: once it has renamed a file or two.
    deadline=$((SECONDS + 60))
    while [ $SECONDS -lt $deadline ] && [ ! -e "$t/mnt/churned1" ]; do sleep 0.05; done
    if [ -n "$pid" ]; then kill -9 "$pid"; pass "kill -9 the mount process"; else fail "find mount process" "no pid"; fi
    kill "$writer" 2>/dev/null; wait "$writer" 2>/dev/null; writer=
    mount_stop "$t/mnt"
    out=$("$P" fsck "$t/disk.img" 2>&1) && pass "fsck after kill -9" || fail "fsck after kill -9" "$out"
    "$P" cp -r "$t/disk.img:/kept" "$t/back" && diff -r "$t/ref" "$t/back" >/dev/null &&
        pass "closed files intact after kill -9" || fail "closed files after kill -9" "differ"
    mount_start "$t/disk.img" "$t/mnt" && pass "mounts again after kill -9" || fail "remount" "failed"
    mount_stop "$t/mnt"
else
    fail "mount for kill test" "not mounted"
fi
finish

# Shared by the mount tests (sourced, not a test case itself: run-all.sh runs *.sh only).
# mount_start STORE MNT [petrel mount options]: mount in the background, wait until served.
# mount_stop MNT: unmount (lazily if busy) and wait for the server to go.
# exercise_mount NAME MNT WORK: shell tools on a mounted store, compared byte for byte with
# the same steps on a local directory (WORK is a scratch dir outside the mount).

fuse_available() {
    [ -c /dev/fuse ] && command -v fusermount3 >/dev/null 2>&1
}

# A FUSE case that cannot run is a failure with the reason, never a silent pass.
require_fuse() {
    if ! fuse_available; then
        fail "FUSE available" "no /dev/fuse or fusermount3: mount tests cannot run (skipped = failed)"
        finish
        exit 1
    fi
}

mount_start() {
    local store=$1 mnt=$2 i; shift 2
    mkdir -p "$mnt"
    "$PETREL_BIN" mount "$store" "$mnt" "$@" || return 1
    for i in $(seq 1 100); do
        mountpoint -q "$mnt" && return 0
        sleep 0.05
    done
    return 1
}

mount_server_pid() { # the petrel process serving MNT
    pgrep -f -x "$PETREL_BIN mount .* $1( .*)?" | head -n 1
}

# The server holds its store (an image's lock) until it exits, which can be a while after
# the mount point goes (slower under sanitizers): wait for the process too.
mount_stop() {
    local mnt=$1 i pid
    mountpoint -q "$mnt" 2>/dev/null || { fusermount3 -u "$mnt" 2>/dev/null; return 0; }
    pid=$(mount_server_pid "$mnt")
    fusermount3 -u "$mnt" 2>/dev/null || fusermount3 -u -z "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null
    for i in $(seq 1 100); do
        mountpoint -q "$mnt" || break
        sleep 0.05
    done
    mountpoint -q "$mnt" && return 1
    for i in $(seq 1 200); do
        [ -z "$pid" ] && return 0
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.05
    done
    return 1
}

# Compare two trees: same names, types and bytes.
same_tree() {
    diff -r "$1" "$2" >/dev/null 2>&1
}

exercise_mount() {
    local name=$1 m=$2 w=$3
    rm -rf "$w"; mkdir -p "$w/ref" "$w/src/sub/deep"
    head -c 1048577 /dev/urandom > "$w/src/one-mib-plus"
    head -c 200000 /dev/urandom > "$w/src/sub/medium"
    printf 'small\n' > "$w/src/sub/deep/small"
    : > "$w/src/sub/empty"

    cp -r "$w/src" "$m/tree" && cp -r "$w/src" "$w/ref/tree"
    same_tree "$w/ref/tree" "$m/tree" && pass "$name: cp -r in" || fail "$name: cp -r in" "trees differ"
    cp -r "$m/tree" "$w/back" && same_tree "$w/src" "$w/back" && pass "$name: cp -r out" ||
        fail "$name: cp -r out" "trees differ"
    [ "$(cat "$m/tree/sub/deep/small")" = small ] && pass "$name: cat" || fail "$name: cat" "wrong bytes"
    [ "$(ls "$m/tree" | tr '\n' ' ')" = "one-mib-plus sub " ] && pass "$name: ls" ||
        fail "$name: ls" "$(ls "$m/tree" | tr '\n' ' ')"
    [ "$(stat -c %s "$m/tree/one-mib-plus")" = 1048577 ] && pass "$name: stat size" ||
        fail "$name: stat size" "$(stat -c %s "$m/tree/one-mib-plus")"

    mv "$m/tree/sub/medium" "$m/tree/moved" && mv "$w/ref/tree/sub/medium" "$w/ref/tree/moved"
    mv "$m/tree/sub/deep" "$m/tree/deep2" && mv "$w/ref/tree/sub/deep" "$w/ref/tree/deep2"
    same_tree "$w/ref/tree" "$m/tree" && pass "$name: mv file and dir" || fail "$name: mv" "trees differ"

    # Random writes in place, then truncate down and up.
    for f in "$m/tree/one-mib-plus" "$w/ref/tree/one-mib-plus"; do
        printf 'PATCH' | dd of="$f" bs=1 seek=4093 conv=notrunc 2>/dev/null
        head -c 10000 /dev/zero | tr '\0' 'z' | dd of="$f" bs=1000 seek=300 conv=notrunc 2>/dev/null
    done
    cmp -s "$m/tree/one-mib-plus" "$w/ref/tree/one-mib-plus" && pass "$name: dd random write" ||
        fail "$name: dd random write" "bytes differ"
    dd if=/dev/urandom of="$w/blob" bs=64k count=20 2>/dev/null
    dd if="$w/blob" of="$m/tree/dd-out" bs=64k 2>/dev/null
    cp "$w/blob" "$w/ref/tree/dd-out"
    cmp -s "$w/blob" "$m/tree/dd-out" && pass "$name: dd sequential" || fail "$name: dd sequential" "bytes differ"
    truncate -s 5000 "$m/tree/one-mib-plus" && truncate -s 5000 "$w/ref/tree/one-mib-plus"
    truncate -s 70000 "$m/tree/one-mib-plus" && truncate -s 70000 "$w/ref/tree/one-mib-plus"
    cmp -s "$m/tree/one-mib-plus" "$w/ref/tree/one-mib-plus" && pass "$name: truncate down and up" ||
        fail "$name: truncate" "bytes differ"
    printf 'appended' >> "$m/tree/one-mib-plus" && printf 'appended' >> "$w/ref/tree/one-mib-plus"
    cmp -s "$m/tree/one-mib-plus" "$w/ref/tree/one-mib-plus" && pass "$name: append" ||
        fail "$name: append" "bytes differ"

    # tar out of the mount and back into it.
    cp "$w/blob" "$m/tree/blob"; cp "$w/blob" "$w/ref/tree/blob"
    if tar cf "$w/t.tar" -C "$m" tree 2>"$w/tar.err"; then
        mkdir "$w/untar" && tar xf "$w/t.tar" -C "$w/untar" && same_tree "$w/ref/tree" "$w/untar/tree" &&
            pass "$name: tar c" || fail "$name: tar c" "archive differs"
    else
        fail "$name: tar c" "$(head -c 300 "$w/tar.err")"
    fi
    mkdir "$m/untar"
    if tar xf "$w/t.tar" -C "$m/untar" 2>"$w/tar.err"; then
        same_tree "$w/ref/tree" "$m/untar/tree" && pass "$name: tar x" || fail "$name: tar x" "trees differ"
    else
        fail "$name: tar x" "$(head -c 300 "$w/tar.err")"
    fi

    if command -v python3 >/dev/null 2>&1; then
        if python3 - "$m/tree/blob" <<'PY' 2>"$w/xattr.err"; then
import os, sys
p = sys.argv[1]
os.setxattr(p, "user.colour", b"blue")
os.setxattr(p, "user.size", b"x" * 100)
assert os.getxattr(p, "user.colour") == b"blue"
assert sorted(os.listxattr(p)) == ["user.colour", "user.size"], os.listxattr(p)
os.removexattr(p, "user.colour")
assert os.listxattr(p) == ["user.size"]
try:
    os.getxattr(p, "user.colour"); raise SystemExit("removed attribute still readable")
except OSError as e:
    assert e.errno == 61, e
PY
            pass "$name: xattrs"
        else
            fail "$name: xattrs" "$(tail -n 2 "$w/xattr.err")"
        fi
    else
        fail "$name: xattrs" "python3 is not installed: the xattr case cannot run"
    fi

    rm -r "$m/tree" "$m/untar"
    [ -z "$(ls -A "$m")" ] && pass "$name: rm -r" || fail "$name: rm -r" "left $(ls -A "$m")"
    # Errors come back as errno.
    mkdir "$m/d" && : > "$m/d/f"
    rmdir "$m/d" 2>/dev/null && fail "$name: rmdir non-empty" "succeeded" || pass "$name: rmdir non-empty fails"
    cat "$m/nope" 2>/dev/null && fail "$name: missing file" "cat succeeded" || pass "$name: missing file fails"
    rm -r "$m/d"
}

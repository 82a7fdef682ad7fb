#!/usr/bin/env bash
# The staging cache of a cluster mount (issue 12): `-o cache=DIR,cache_size=N` puts the
# cache files of changed files in DIR and spills them to new spans past N bytes (the
# server's open cache file never grows past N plus one write); without the option they go
# under $XDG_CACHE_HOME/petrel. A sparse file: truncate to 1 PiB, read zeros at its end,
# write into its middle, and what the mount serves after a remount. Bad options: one error
# line, non-zero exit. Needs root and FUSE.
set -u
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/mount-lib.bash"
t=$(mktemp -d)
P=$PETREL_BIN
cpid=
cleanup() {
    cd / || true
    mount_stop "$t/mnt"
    mount_stop "$t/mnt2"
    if [ -n "$cpid" ]; then kill -TERM "$cpid" 2>/dev/null; wait "$cpid" 2>/dev/null; fi
    rm -rf "$t"
}
trap cleanup EXIT
if [ "$(id -u)" != 0 ] || ! fuse_available || ! command -v python3 >/dev/null; then
    pass "skipped: needs root, FUSE and python3"
    finish
    exit 0
fi

"$P" cluster start --dir "$t/var" --shards 1 --block-services 2 >"$t/cluster.out" 2>"$t/cluster.err" &
cpid=$!
A=
deadline=$((SECONDS + 120))
while [ $SECONDS -lt $deadline ] && [ -z "$A" ] && kill -0 "$cpid" 2>/dev/null; do
    A=$(head -n 1 "$t/cluster.out" 2>/dev/null)
    [ -n "$A" ] || sleep 0.05
done
# the cache directory does not exist yet: the mount makes it
if [ -z "$A" ] || ! mount_start "$A" "$t/mnt" -o "cache=$t/cache,cache_size=1M"; then
    fail "cluster and mount with cache options" "$(cat "$t/cluster.err" 2>/dev/null)"
    finish
    exit 1
fi
mkdir -p "$t/xdg"
if ! XDG_CACHE_HOME=$t/xdg mount_start "$A" "$t/mnt2"; then
    fail "second mount" "not mounted"
    finish
    exit 1
fi
m=$t/mnt
pid=$(mount_server_pid "$t/mnt")
pid2=$(mount_server_pid "$t/mnt2")
[ -d "$t/cache" ] && pass "the mount made its cache directory" || fail "cache dir" "missing"

# Rewrite 3 MiB of a file through one open descriptor, then look at the server's open cache
# files (unlinked at once, so only /proc shows them) before closing.
head -c 4000000 /dev/urandom > "$t/orig"
cp "$t/orig" "$m/f"
cat > "$t/change.py" <<'EOF'
import os, sys
path, pid, cache, limit = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
data = os.urandom(3 << 20)
fd = os.open(path, os.O_RDWR)
for off in range(0, len(data), 65536):
    os.pwrite(fd, data[off:off + 65536], 100000 + off)
files = []
for e in os.listdir("/proc/%s/fd" % pid):
    try:
        target = os.readlink("/proc/%s/fd/%s" % (pid, e))
    except OSError:
        continue
    if target.startswith(cache + "/change."):
        files.append(os.stat("/proc/%s/fd/%s" % (pid, e)).st_size)
back = os.pread(fd, len(data), 100000)
os.close(fd)
with open(sys.argv[5], "r+b") as ref:
    ref.seek(100000)
    ref.write(data)
if not files:
    print("no cache file of the mount under " + cache)
elif max(files) > limit + 65536:
    print("a cache file of %d bytes (limit %d)" % (max(files), limit))
elif back != data:
    print("the open file did not read its own writes")
else:
    print("ok")
EOF
expect_out "a change stages in cache=DIR within cache_size" ok \
    python3 "$t/change.py" "$m/f" "$pid" "$t/cache" $((1 << 20)) "$t/orig"
cmp -s "$t/orig" "$m/f" && pass "the rewritten file reads back" || fail "rewritten file" "differs"
expect_out "without cache=, under \$XDG_CACHE_HOME/petrel" ok \
    python3 "$t/change.py" "$t/mnt2/f" "$pid2" "$t/xdg/petrel" $((64 << 20)) "$t/orig"
cmp -s "$t/orig" "$t/mnt2/f" && pass "the second rewrite reads back" || fail "second rewrite" "differs"

# A sparse file: a petabyte costs one hole record.
printf 'head' > "$m/sparse"
expect_ok "truncate to 1 PiB" truncate -s 1P "$m/sparse"
expect_out "its size" 1125899906842624 stat -c %s "$m/sparse"
expect_out "zeros at its end" "0000000 0000 0000 0000 0000" \
    sh -c "tail -c 8 '$m/sparse' | od -x | head -n 1"
printf 'middle' | dd of="$m/sparse" bs=1 seek=$((1 << 49)) conv=notrunc status=none
expect_out "a write into the middle" "middle" \
    sh -c "dd if='$m/sparse' bs=1 skip=$((1 << 49)) count=6 status=none"
# A new file opened write-only and written out of order (pjdfstest open/25: a write at 2 GiB)
# or truncated: what it streamed so far is linked, and it goes on as a change with a hole.
expect_out "a new write-only file written at 2 GiB" "2147483650 a" python3 -c '
import os, sys
fd = os.open(sys.argv[1], os.O_CREAT | os.O_WRONLY, 0o644)
os.write(fd, b"start")
os.pwrite(fd, b"a", 2 * 1024 * 1024 * 1024 + 1)
os.close(fd)
with open(sys.argv[1], "rb") as f:
    f.seek(2 * 1024 * 1024 * 1024 + 1)
    print(os.stat(sys.argv[1]).st_size, f.read(1).decode())
' "$m/big"
expect_out "its head kept, zeros after" "start 0000" sh -c "echo \$(head -c 5 '$m/big') \$(head -c 9 '$m/big' | tail -c 4 | od -An -tx1 | tr -d ' \n' | cut -c1-4)"
expect_out "a new write-only file truncated up" "3000000" python3 -c '
import os, sys
fd = os.open(sys.argv[1], os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644)
os.write(fd, b"x" * 1000)
os.ftruncate(fd, 3000000)
os.close(fd)
print(os.stat(sys.argv[1]).st_size)
' "$m/grown"
# Inode numbers are the cluster's inode ids: the same after a rename and a remount.
ino=$(stat -c %i "$m/grown")
mv "$m/grown" "$m/renamed"
expect_out "the inode number survives a rename" "$ino" stat -c %i "$m/renamed"
expect_out "ls -i and find list it" "$ino renamed $ino" \
    sh -c "echo \$(ls -i '$m' | grep renamed) \$(find '$m' -name renamed -printf '%i')"
mount_stop "$m"
if mount_start "$A" "$m"; then
    expect_out "the inode number survives a remount" "$ino" stat -c %i "$m/renamed"
    expect_out "after a remount: head, middle, size" "head middle 1125899906842624" \
        sh -c "echo \$(head -c 4 '$m/sparse') \$(dd if='$m/sparse' bs=1 skip=$((1 << 49)) count=6 status=none) \$(stat -c %s '$m/sparse')"
else
    fail "remount" "not mounted"
fi

# Bad options.
expect_fail "cache_size not a size" "bad cache_size 'lots'" "$P" mount "$A" "$t/mnt3" -o cache_size=lots
expect_fail "a cache directory that cannot be made" "cache directory '$t/no/such/dir'" \
    "$P" mount "$A" "$t/mnt3" -o "cache=$t/no/such/dir"
expect_fail "cache= on a local directory" "options of a cluster mount" "$P" mount "$t/xdg" "$t/mnt3" -o cache=/tmp
finish

#!/usr/bin/env bash
# POSIX on the cluster mount (issue 11): owners, modes, times with nanoseconds, symbolic
# links and special files stored in the shards (kept across a remount and a restart of the
# whole cluster, which rebuilds every store from the Raft log), the setgid directory, chown
# rules, a file still being written that is fstat'ed, fchmod'ed, futimens'ed and renamed
# before its close (rsync's dance), an open file whose name is removed, name and path limits,
# the mount root's times and df counting one disk shared by every block service once.
# Needs root (owners other than the caller, pjdfstest-style user switches) and FUSE.
set -u
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/mount-lib.bash"
t=$(mktemp -d)
chmod 755 "$t" # other users walk into the mount
P=$PETREL_BIN
cpid=
cleanup() {
    cd / || true
    mount_stop "$t/mnt"
    mount_stop "$t/nodp"
    if [ -n "$cpid" ]; then kill -TERM "$cpid" 2>/dev/null; wait "$cpid" 2>/dev/null; fi
    rm -rf "$t"
}
trap cleanup EXIT
if [ "$(id -u)" != 0 ] || ! fuse_available || ! command -v python3 >/dev/null; then
    pass "skipped: needs root, FUSE and python3"
    finish
    exit 0
fi

start_cluster() {
    local deadline=$((SECONDS + 120))
    "$P" cluster start --dir "$t/var" --shards 2 --block-services 3 >"$t/cluster.out" 2>"$t/cluster.err" &
    cpid=$!
    A=
    while [ $SECONDS -lt $deadline ]; do
        A=$(head -n 1 "$t/cluster.out")
        [ -n "$A" ] && return 0
        kill -0 "$cpid" 2>/dev/null || break
        sleep 0.05
    done
    return 1
}
stop_cluster() {
    kill -TERM "$cpid" 2>/dev/null
    wait "$cpid"
    cpid=
}

started=$(date +%s)
if ! start_cluster || ! mount_start "$A" "$t/mnt" -o allow_other; then
    fail "cluster and mount" "$(cat "$t/cluster.err" 2>/dev/null)"
    finish
    exit 1
fi
m=$t/mnt
root_mtime=$(stat -c %Y "$m")
[ "$root_mtime" -ge $((started - 5)) ] && pass "the mount root has real times" ||
    fail "root times" "mtime $root_mtime, started $started"

# --- modes, owners, times --------------------------------------------------------------------
mkdir -m 0151 "$m/d151" && expect_out "mkdir keeps its mode" "151" stat -c %a "$m/d151"
mkdir -m 2775 "$m/sg" && chown 0:123 "$m/sg"
mkdir "$m/sg/sub" && touch "$m/sg/f"
expect_out "setgid directory: group inherited" "123 123" sh -c "stat -c %g $m/sg/sub $m/sg/f | paste -sd' '"
expect_out "setgid directory: subdirectory setgid" "2755" stat -c %a "$m/sg/sub"
touch "$m/f" && chown 1234:5678 "$m/f" && chmod 4755 "$m/f"
expect_out "chown and chmod kept" "1234 5678 4755" stat -c '%u %g %a' "$m/f"
touch -a -d '2001-02-03 04:05:06.123456789' "$m/f"
touch -m -d '2011-12-13 14:15:16.5' "$m/f"
expect_out "atime apart from mtime, nanoseconds" \
    "2001-02-03 04:05:06.123456789 2011-12-13 14:15:16.500000000" \
    sh -c "TZ=UTC stat -c '%x %y' $m/f | sed 's/ +0000//g'"
expect_fail "chmod of a missing file" "No such file" chmod 600 "$m/missing"
# only root gives a file away: the owner itself may not (EPERM), nor change another's mode
touch "$m/mine" && chown 65534:65534 "$m/mine"
expect_fail "chown by a non-root owner" "Operation not permitted" \
    python3 -c 'import os,sys; os.setgid(65534); os.setuid(65534); os.chown(sys.argv[1], 0, -1)' "$m/mine"
expect_fail "chmod by another user" "Operation not permitted" \
    python3 -c 'import os,sys; os.setgid(1); os.setuid(1); os.chmod(sys.argv[1], 0o777)' "$m/mine"
expect_out "refused changes changed nothing" "65534 65534 644" stat -c '%u %g %a' "$m/mine"
echo data > "$m/w" && chmod 6755 "$m/w" && chown 7:7 "$m/w"
expect_out "chown clears setuid and setgid" "755" stat -c %a "$m/w"

# --- links and special files ----------------------------------------------------------------
ln -s ../some/where "$m/link" && mkfifo -m 0600 "$m/fifo" && mknod "$m/chr" c 4 5 && mknod "$m/blk" b 7 8
python3 -c 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1])' "$m/sock"
expect_out "symlink reads back" "../some/where" readlink "$m/link"
expect_out "node types" "symbolic link,fifo,character special file,block special file,socket" \
    sh -c "stat -c %F $m/link $m/fifo $m/chr $m/blk $m/sock | paste -sd,"
expect_out "device numbers" "4,5 7,8" sh -c "stat -c %t,%T $m/chr $m/blk | paste -sd' '"
expect_fail "symlink on a taken name" "File exists" ln -s elsewhere "$m/fifo"
expect_fail "mknod on a taken name" "File exists" mknod "$m/link" p
expect_out "the taken names kept theirs" "fifo ../some/where" sh -c "(stat -c %F $m/fifo; readlink $m/link) | paste -sd' '"
expect_fail "hard links refused" "Operation not permitted" ln "$m/f" "$m/hard"
long=$(printf 'n%.0s' $(seq 1 255))
expect_ok "255-byte name" touch "$m/$long"
expect_fail "256-byte name" "File name too long" touch "$m/${long}x"
target=$(printf 't%.0s' $(seq 1 4095))
expect_ok "a 4095-byte symlink target" ln -s "$target" "$m/longlink"
expect_out "the long target reads back" 4095 sh -c "readlink $m/longlink | tr -d '\n' | wc -c"
# a path of PATH_MAX - 1 bytes below a directory of the mount: longer than PATH_MAX inside
expect_out "a path at PATH_MAX depth" ok python3 - "$m" <<'EOF'
import os, sys
os.chdir(sys.argv[1])
name = "d" * 200
os.mkdir("deep")
os.chdir("deep")
path = "/".join([name] * 20) + "/" + "f" * 75     # 4095 bytes
d = ""
for part in path.split("/")[:-1]:
    d = d + part + "/"
    os.mkdir(d)
assert len(path) == 4095
os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
os.chmod(path, 0o640)
print("ok" if oct(os.stat(path).st_mode & 0o777) == "0o640" else "bad mode")
EOF

# --- a file being written, and an open file removed -------------------------------------------
expect_out "mkstemp + write + fchmod + futimens + fstat + rename before close" "ok" python3 - "$m" <<'EOF'
import os, sys
d = sys.argv[1]
fd = os.open(d + "/.tmp.XXXX", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
os.write(fd, b"x" * 10000)
os.fchmod(fd, 0o640)
st = os.fstat(fd)
assert st.st_size == 10000 and st.st_mode & 0o7777 == 0o640, st
os.rename(d + "/.tmp.XXXX", d + "/final")
os.write(fd, b"y")
os.utime(fd, ns=(1000000000123, 2000000000456))   # after the last write: kept at the link
os.close(fd)
st = os.stat(d + "/final")
assert st.st_size == 10001, st
assert st.st_mode & 0o7777 == 0o640, oct(st.st_mode)
assert st.st_mtime_ns == 2000000000456, st.st_mtime_ns
assert not os.path.exists(d + "/.tmp.XXXX")
assert open(d + "/final", "rb").read() == b"x" * 10000 + b"y"
print("ok")
EOF
expect_out "RENAME_NOREPLACE of a file being written" "EEXIST ok abc" python3 - "$m" <<'EOF'
import ctypes, errno, os, sys
os.chdir(sys.argv[1])
libc = ctypes.CDLL(None, use_errno=True)
def noreplace(a, b):
    return 0 if libc.renameat2(-100, a.encode(), -100, b.encode(), 1) == 0 else ctypes.get_errno()
fd = os.open("nr1", os.O_CREAT | os.O_WRONLY, 0o644)
os.write(fd, b"abc")
e1 = noreplace("nr1", "f")
e2 = noreplace("nr1", "nr2")
os.close(fd)
print(errno.errorcode.get(e1, e1), "ok" if e2 == 0 else errno.errorcode.get(e2, e2), open("nr2").read())
EOF
# the same through the client library, past the kernel's attribute cache
out=$("$P" stat "$A/final" 2>&1)
case "$out" in *"Mode: 0640"*"Modified: 1970-01-01 00:33:20"*) pass "times set before close kept at the link" ;;
*) fail "times set before close" "$out" ;; esac
expect_out "editor save: temp, fsync, close, rename over the old file" "new" python3 - "$m" <<'EOF'
import os, sys
d = sys.argv[1]
open(d + "/doc", "w").write("old")
fd = os.open(d + "/doc.swp", os.O_CREAT | os.O_WRONLY, 0o644)
os.write(fd, b"new"); os.fsync(fd); os.close(fd)
os.rename(d + "/doc.swp", d + "/doc")
print(open(d + "/doc").read())
EOF
# (fstat itself reaches the mount without its handle, by a path libfuse no longer has: ESTALE)
expect_out "read of an open file whose name was removed" "hello" python3 - "$m" <<'EOF'
import os, sys
p = sys.argv[1] + "/gone"
open(p, "w").write("hello")
fd = os.open(p, os.O_RDONLY)
os.unlink(p)
print(os.read(fd, 100).decode())
EOF
expect_out "a file removed while being written is never linked" "absent" python3 - "$m" <<'EOF'
import os, sys
p = sys.argv[1] + "/never"
fd = os.open(p, os.O_CREAT | os.O_WRONLY, 0o644)
os.write(fd, b"abc")
os.unlink(p)
os.close(fd)
print("present" if os.path.exists(p) else "absent")
EOF

# --- df: one disk under three block services, counted once, two copies -------------------------
read -r host_size host_avail < <(df -B1 --output=size,avail "$t/var" | tail -n 1)
read -r mnt_size mnt_avail < <(df -B1 --output=size,avail "$m" | tail -n 1)
expected=$((host_size / 2))
if [ "$mnt_size" -ge $((expected - expected / 100)) ] && [ "$mnt_size" -le $((expected + expected / 100)) ]; then
    pass "df: the shared disk counted once, halved for two copies"
else
    fail "df size" "mount $mnt_size, disk $host_size (expected about $expected)"
fi
[ "$mnt_avail" -le $((host_avail / 2 + host_avail / 50)) ] && [ "$mnt_avail" -gt 0 ] &&
    pass "df: available = free space / copies" || fail "df avail" "mount $mnt_avail, disk $host_avail"

# --- a mount without default_permissions (as a user's own): the driver's chown/chmod rules ----
as_nobody() { python3 -c 'import os,sys; os.setgroups([]); os.setgid(65534); os.setuid(65534); os.execvp(sys.argv[1], sys.argv[1:])' "$@"; }
if mount_start "$A" "$t/nodp" -o allow_other,nodefault_permissions; then
    n=$t/nodp
    expect_fail "no kernel checks: chown to root by a user refused" "Operation not permitted" \
        as_nobody chown 0 "$n/mine"
    expect_fail "no kernel checks: chgrp to a group not the user's refused" "Operation not permitted" \
        as_nobody chgrp 0 "$n/mine"
    expect_fail "no kernel checks: chmod of another's file refused" "Operation not permitted" \
        as_nobody chmod 777 "$n/d151"
    expect_ok "no kernel checks: the owner changes its own mode and keeps its owner" \
        as_nobody sh -c "chown 65534:65534 $n/mine && chmod 0600 $n/mine"
    expect_ok "no kernel checks: the owner's setgid on a group it is not in is dropped" \
        sh -c "chgrp 5 $n/mine && python3 -c 'import os,sys; os.setgroups([]); os.setgid(65534); os.setuid(65534); os.chmod(sys.argv[1], 0o2755)' $n/mine"
    expect_out "no kernel checks: what was refused changed nothing" "65534 5 755 151" \
        sh -c "stat -c '%u %g %a' $n/mine | tr '\n' ' '; stat -c %a $n/d151"
    mount_stop "$n"
else
    fail "mount without default_permissions" "not mounted"
fi

# --- directory link counts: 2 + subdirectories, through mkdir, rmdir and renames --------------
mkdir -p "$m/nl/a/x" "$m/nl/b" && touch "$m/nl/file"
expect_out "nlink after mkdir" "4,3,2" sh -c "stat -c %h $m/nl $m/nl/a $m/nl/b | paste -sd,"
expect_out "a file's nlink" "1" stat -c %h "$m/nl/file"
mv "$m/nl/a/x" "$m/nl/b/x"
expect_out "nlink after a rename across directories" "4,2,3" sh -c "stat -c %h $m/nl $m/nl/a $m/nl/b | paste -sd,"
mv "$m/nl/a" "$m/nl/a2"
expect_out "nlink after a rename in one directory" "4,2" sh -c "stat -c %h $m/nl $m/nl/a2 | paste -sd,"
mkdir "$m/nl/c" && mv -T "$m/nl/a2" "$m/nl/c"
expect_out "nlink after a rename over an empty directory" "4" stat -c %h "$m/nl"
rmdir "$m/nl/b/x"
expect_out "nlink after rmdir" "4,2" sh -c "stat -c %h $m/nl $m/nl/b | paste -sd,"

# --- kept across a remount and a restart of the cluster (stores rebuilt from the log) ----------
check_kept() {
    expect_out "$1: directory link counts" "4,2,2" sh -c "stat -c %h $m/nl $m/nl/b $m/nl/c | paste -sd,"
    expect_out "$1: owner, mode, times" "1234 5678 4755 2011-12-13 14:15:16.500000000" \
        sh -c "TZ=UTC stat -c '%u %g %a %y' $m/f | sed 's/ +0000//'"
    expect_out "$1: link and device" "../some/where 4,5" sh -c "(readlink $m/link; stat -c %t,%T $m/chr) | paste -sd' '"
    expect_out "$1: directory mode" "151" stat -c %a "$m/d151"
    expect_out "$1: root times" "$root_mtime_now" stat -c %Y "$m"
}
root_mtime_now=$(stat -c %Y "$m")
mount_stop "$m"
if mount_start "$A" "$m" -o allow_other; then check_kept "remount"; else fail "remount" "not mounted"; fi
mount_stop "$m"
stop_cluster
if ! start_cluster; then
    fail "cluster restart" "$(tail -n 5 "$t/cluster.err")"
elif ! mount_start "$A" "$m" -o allow_other; then
    fail "mount after the restart" "$A"
else
    check_kept "cluster restart"
fi
finish

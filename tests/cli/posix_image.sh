#!/usr/bin/env bash
# POSIX on images: owners, modes, times, symbolic links and special files through a FUSE
# mount (kept across unmount and mount), and the CLI around them: ls -l, cp -r/-L/-a with
# links, loops and dangling links, rm -f/-R, mkfs --force, df -h, and the checksum error
# text. The mount part needs root (owners other than the caller) and FUSE.
set -u
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/mount-lib.bash"
t=$(mktemp -d)
cleanup() {
    mount_stop "$t/mnt"
    rm -rf "$t"
}
trap cleanup EXIT
P=$PETREL_BIN
cd "$t" || exit 1

# --- through the mount ---------------------------------------------------------------------
"$P" mkfs disk.img --size 16M >/dev/null || { fail "mkfs" "failed"; finish; exit 1; }
if [ "$(id -u)" != 0 ] || ! fuse_available; then
    pass "mount part skipped: needs root and FUSE"
elif mount_start disk.img mnt -o allow_other; then
    m=mnt
    mkdir -m 0151 $m/d151 && expect_out "mkdir keeps its mode" "151" stat -c %a $m/d151
    mkdir -m 2775 $m/sg && chown 0:123 $m/sg
    mkdir $m/sg/sub && touch $m/sg/f
    expect_out "setgid directory: group inherited" "123 123" sh -c "stat -c %g $m/sg/sub $m/sg/f | paste -sd' '"
    expect_out "setgid directory: subdirectory setgid" "2755" stat -c %a $m/sg/sub
    touch $m/f && chown 1234:5678 $m/f && chmod 4755 $m/f
    expect_out "chown and chmod kept" "1234 5678 4755" stat -c '%u %g %a' $m/f
    touch -a -d '2001-02-03 04:05:06.123456789' $m/f
    touch -m -d '2011-12-13 14:15:16.5' $m/f
    expect_out "atime apart from mtime, nanoseconds" \
        "2001-02-03 04:05:06.123456789 2011-12-13 14:15:16.500000000" \
        sh -c "TZ=UTC stat -c '%x %y' $m/f | sed 's/ +0000//g'"
    c1=$(stat -c %Z $m/f)
    ln -s ../some/where $m/link && mkfifo -m 0600 $m/fifo && mknod $m/chr c 4 5 && mknod $m/blk b 7 8
    python3 -c 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1])' $m/sock 2>/dev/null
    expect_out "symlink reads back" "../some/where" readlink $m/link
    expect_out "node types" "symbolic link,fifo,character special file,block special file,socket" \
        sh -c "stat -c %F $m/link $m/fifo $m/chr $m/blk $m/sock | paste -sd,"
    expect_out "device numbers" "4,5 7,8" sh -c "stat -c %t,%T $m/chr $m/blk | paste -sd' '"
    expect_fail "hard links refused" "Operation not permitted" ln $m/f $m/hard
    # an entry at name_max and a path longer than PATH_MAX
    long=$(printf 'n%.0s' $(seq 1 255))
    expect_ok "255-byte name" touch "$m/$long"
    expect_fail "256-byte name" "File name too long" touch "$m/${long}x"
    mount_stop mnt
    if mount_start disk.img mnt -o allow_other; then
        expect_out "owner, mode, times kept across mounts" \
            "1234 5678 4755 2011-12-13 14:15:16.500000000" \
            sh -c "TZ=UTC stat -c '%u %g %a %y' $m/f | sed 's/ +0000//'"
        expect_out "ctime kept" "$c1" stat -c %Z $m/f
        expect_out "link kept" "../some/where" readlink $m/link
        mount_stop mnt
    else
        fail "mount again" "not mounted"
    fi
    out=$("$P" ls -l disk.img:/ 2>&1)
    case "$out" in *"l0777"*"link -> ../some/where"*) pass "ls -l shows the link" ;; *) fail "ls -l link" "$out" ;; esac
    case "$out" in *"c0644"*"4, 5"*"chr"*) pass "ls -l shows the device" ;; *) fail "ls -l device" "$out" ;; esac
    case "$out" in *"p0600"*"fifo"*) pass "ls -l shows the fifo" ;; *) fail "ls -l fifo" "$out" ;; esac
    expect_out "fsck clean with every entry type" "disk.img: clean" "$P" fsck disk.img
else
    fail "mount image" "not mounted"
fi

# --- cp with links and special files --------------------------------------------------------
mkdir -p src/d
echo hello > src/f
chmod 0640 src/f
touch -d '2020-01-02 03:04:05' src/f
ln -s f src/lf
ln -s ../../src src/d/up
ln -s nothere src/dang
mkfifo src/fifo
"$P" mkfs cp.img --size 8M >/dev/null
expect_ok "cp -a with links" "$P" cp -a src cp.img:/s
out=$("$P" ls -l cp.img:/s)
case "$out" in *"lf -> f"*) pass "cp -a: link copied as a link" ;; *) fail "cp -a link" "$out" ;; esac
case "$out" in *"dang -> nothere"*) pass "cp -a: dangling link copied as it is" ;; *) fail "cp -a dangling" "$out" ;; esac
case "$out" in *"p0644"*"fifo"*) pass "cp -a: fifo copied as a fifo" ;; *) fail "cp -a fifo" "$out" ;; esac
case "$out" in *"-0640            6 2020-01-02 03:04 f"*) pass "cp -a: mode and time kept" ;; *) fail "cp -a mode/time" "$out" ;; esac
expect_ok "cp -a back" "$P" cp -a cp.img:/s back
expect_out "round trip: link" "f" readlink back/lf
expect_out "round trip: mode and time" "640 2020-01-02 03:04:05" \
    sh -c "stat -c '%a %y' back/f | cut -c1-23"
expect_out "round trip: fifo" "fifo" stat -c %F back/fifo
expect_ok "cp -R = -r" "$P" cp -R src/d cp.img:/R
expect_out "cp -R copied the tree" "up" "$P" ls cp.img:/R
expect_fail "cp -rL: loop" "symbolic link loop" "$P" cp -rL "$t/src" cp.img:/L
expect_fail "cp -L: dangling link" "dangling symbolic link" "$P" cp -L src/dang cp.img:/x
expect_out "cp follows a link without -r" "hello" sh -c "'$P' cp src/lf cp.img:/viaLink && '$P' cat cp.img:/viaLink"
ln -s a src/loop_b && ln -s loop_b src/a
expect_fail "cp: link cycle" "too many levels of symbolic links" "$P" cp src/a cp.img:/y
expect_fail "cp: fifo without -r" "not a regular file" "$P" cp src/fifo cp.img:/z
expect_fail "cp: link over an existing link" "it exists" "$P" cp -r src/lf cp.img:/s/lf
expect_fail "cp: file over a link" "not a regular file" "$P" cp src/f cp.img:/s/lf

# --- rm -f, rm -R --------------------------------------------------------------------------
expect_ok "rm -f of a missing file" "$P" rm -f cp.img:/nothing
expect_fail "rm of a missing file" "No such file" "$P" rm cp.img:/nothing
expect_ok "rm -R" "$P" rm -R cp.img:/s
expect_fail "rm -R removed the tree" "No such file" "$P" ls cp.img:/s
expect_ok "rm -rf of a missing tree" "$P" rm -rf cp.img:/s

# --- mkfs --force, df -h -------------------------------------------------------------------
expect_fail "mkfs over an image" "is a Petrel image (format 4.1); use --force" "$P" mkfs cp.img --size 8M
expect_ok "mkfs over an image kept it" "$P" cat cp.img:/viaLink
printf 'precious' > data.bin
expect_fail "mkfs over data" "holding data (not a Petrel image); use --force" "$P" mkfs data.bin --size 1M
expect_out "mkfs over data kept it" "precious" cat data.bin
expect_ok "mkfs --force" "$P" mkfs cp.img --size 8M --force
expect_fail "mkfs --force emptied it" "No such file" "$P" cat cp.img:/viaLink
: > empty.bin
expect_ok "mkfs over an empty file" "$P" mkfs empty.bin --size 1M
out=$("$P" df -h cp.img)
case "$out" in *"8.0M"*) pass "df -h" ;; *) fail "df -h" "$out" ;; esac
expect_fail "df -h keeps --help" "usage: petrel df" sh -c "'$P' df --help; exit 1"

# --- a page whose CRC does not match -------------------------------------------------------
"$P" mkfs crc.img --size 1M >/dev/null
{ head -c 20000 /dev/zero | tr '\0' 'a'; printf 'MARKER-PAGE'; head -c 20000 /dev/zero | tr '\0' 'b'; } > pages.bin
"$P" cp pages.bin crc.img:/p
at=$(grep -obUa 'MARKER-PAGE' crc.img | head -n 1 | cut -d: -f1)
if [ -n "$at" ]; then
    printf 'X' | dd of=crc.img bs=1 seek="$at" conv=notrunc status=none
    out=$("$P" cat crc.img:/p 2>&1 >/dev/null)
    n=$(printf '%s' "$out" | sed -n 's/.*data corrupted (checksum mismatch) at offset \([0-9]*\)$/\1/p')
    if [ -n "$n" ] && [ "$n" -le 20000 ] && [ "$n" -gt $((20000 - 4096)) ]; then
        pass "checksum error names the offset"
    else
        fail "checksum error text" "$out"
    fi
    expect_fail "cp names the offset too" "data corrupted (checksum mismatch) at offset" "$P" cp crc.img:/p out.bin
    expect_ok "cp left no partial file" test ! -e out.bin
else
    fail "find the data page" "marker not in the image"
fi
finish

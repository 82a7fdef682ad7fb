#!/usr/bin/env bash
# The CLI on flash images: mkfs, cp both ways (files and trees), ls, stat, cat, mkdir, rm, mv,
# df, info, fsck; and the error paths: full image, corrupt image, image in use, missing files,
# bad arguments — one error line, non-zero exit, nothing written that should not be.
set -u
. "$(dirname "$0")/../lib.sh"
t=$(mktemp -d); trap 'rm -rf "$t"' EXIT
P=$PETREL_BIN
cd "$t" || exit 1

mkdir -p src/sub/deep
head -c 1500000 /dev/urandom > src/big
printf 'hello\n' > src/a.txt
: > src/sub/empty
head -c 4097 /dev/urandom > src/sub/deep/page-plus-one

expect_ok "mkfs 8M" "$P" mkfs disk.img --size 8M
expect_eq "image size" 8388608 "$(stat -c %s disk.img)"
expect_out "fsck fresh image" "disk.img: clean" "$P" fsck disk.img
expect_out "ls empty root" "" "$P" ls disk.img:/
expect_ok "cp -r local -> image" "$P" cp -r src disk.img:/src
expect_out "ls image" "$(printf 'a.txt\nbig\nsub/')" "$P" ls disk.img:/src
expect_out "cat from image" "hello" "$P" cat disk.img:/src/a.txt
expect_ok "cp -r image -> local" "$P" cp -r disk.img:/src back
expect_ok "round trip identical" diff -r src back
out=$("$P" stat disk.img:/src/big); case "$out" in *"Size: 1500000"*) pass "stat in image" ;; *) fail "stat in image" "$out" ;; esac
out=$("$P" ls -l disk.img:/src/sub/deep); case "$out" in *4097*page-plus-one*) pass "ls -l in image" ;; *) fail "ls -l in image" "$out" ;; esac
expect_ok "mkdir -p in image" "$P" mkdir -p disk.img:/x/y/z
expect_ok "cp image -> image" "$P" cp disk.img:/src/big disk.img:/x/y/z/big2
expect_ok "image -> image bytes" sh -c "'$P' cat disk.img:/x/y/z/big2 | cmp - src/big"
expect_ok "mv across directories" "$P" mv disk.img:/x/y/z/big2 disk.img:/moved
expect_out "mv result" "$(printf 'moved\nsrc/\nx/')" "$P" ls disk.img:/
expect_ok "rm file" "$P" rm disk.img:/moved
expect_ok "rm -r tree" "$P" rm -r disk.img:/x
expect_out "after rm" "src/" "$P" ls disk.img:/
out=$("$P" df disk.img | tail -n 1); case "$out" in *disk.img*8388608*%) pass "df image" ;; *) fail "df image" "$out" ;; esac
out=$("$P" info disk.img); case "$out" in *"blocks:       2048 of 4096 bytes"*) pass "info geometry" ;; *) fail "info geometry" "$out" ;; esac
expect_out "fsck after work" "disk.img: clean" "$P" fsck disk.img

expect_ok "mkfs --size=VALUE form" "$P" mkfs eq.img --size=1M --block-size=512
expect_eq "--size=1M made 1 MiB" 1048576 "$(stat -c %s eq.img)"

# Another geometry is found again at open.
expect_ok "mkfs other geometry" "$P" mkfs small.img --size 256K --block-size 512 --prog-size 64 --read-size 8
expect_ok "cp into other geometry" "$P" cp src/a.txt small.img:/a
expect_out "read other geometry" "hello" "$P" cat small.img:/a
out=$("$P" info small.img); case "$out" in *"of 512 bytes"*) pass "info other geometry" ;; *) fail "info other geometry" "$out" ;; esac
expect_out "fsck other geometry" "small.img: clean" "$P" fsck small.img

# The progress line: on a terminal (script(1) gives cp one), never into a pipe or a file.
head -c 3000000 /dev/urandom > prog
"$P" mkfs p.img --size 16M >/dev/null
if command -v script >/dev/null 2>&1; then
    out=$(script -qec "'$P' cp prog p.img:/prog" /dev/null 2>&1)
    case "$out" in *"prog  "*"/s"*) pass "progress line on a terminal" ;; *) fail "progress on a terminal" "'$out'" ;; esac
else
    fail "progress on a terminal" "script(1) is not installed: cannot give cp a terminal"
fi
out=$("$P" cp prog p.img:/prog2 2>&1)
expect_eq "no progress when not a terminal" "" "$out"
expect_ok "progress copy intact" sh -c "'$P' cat p.img:/prog | cmp - prog"

# Full image: cp fails with one line, leaves no partial file, and the image stays clean.
expect_ok "mkfs tiny" "$P" mkfs tiny.img --size 64K --block-size 4096
head -c 400000 /dev/urandom > huge
expect_fail "cp into full image" "No space left" "$P" cp huge tiny.img:/huge
expect_out "no partial file" "" "$P" ls tiny.img:/
expect_out "full image still clean" "tiny.img: clean" "$P" fsck tiny.img

# Images of formats 1.0 and 2.0: a fresh image whose superblock version is set to 0x00010000 or
# 0x00020000 and its first commit's CRC recomputed (commit 1 is computed the same way in every
# format since 1.0: CRC-32C of its bytes through its fcrc field; a fresh 3.0 image's first
# commit holds the superblock and the mount-state record: bytes 0..67, CRC stored at 68).
# ls, fsck and mount give one line naming both versions.
put_le32() { # FILE OFFSET HEX8
    local h=$3
    printf "\\x${h:6:2}\\x${h:4:2}\\x${h:2:2}\\x${h:0:2}" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}
for ver in 1 2; do
    expect_ok "mkfs for a $ver.0 image" "$P" mkfs old.img --size 256K --force
    put_le32 old.img 16 000${ver}0000
    head -c 68 old.img > old.head
    crc=$("$P" crc32c old.head | cut -d' ' -f1)
    put_le32 old.img 68 "$crc"
    for cmd in ls fsck; do
        arg=old.img; [ $cmd = ls ] && arg=old.img:/
        out=$("$P" $cmd $arg 2>&1); code=$?
        expect_eq "$cmd of a $ver.0 image: one line" "petrel $cmd: cannot open image 'old.img': image format $ver.0, this engine reads 3.x and 4.x" "$out"
        [ $code != 0 ] && pass "$cmd of a $ver.0 image fails" || fail "$cmd of a $ver.0 image fails" "exit 0"
    done
    mkdir -p old.mnt
    out=$("$P" mount old.img old.mnt 2>&1); code=$?
    expect_eq "mount of a $ver.0 image: one line" "petrel mount: cannot open image 'old.img': image format $ver.0, this engine reads 3.x and 4.x" "$out"
    [ $code != 0 ] && pass "mount of a $ver.0 image fails" || { fail "mount of a $ver.0 image fails" "exit 0"; fusermount3 -u old.mnt 2>/dev/null; }
done

# Corrupt image: ls and fsck fail cleanly, and nothing is written to it.
head -c 1048576 /dev/urandom > junk.img
sum=$(cksum < junk.img)
expect_fail "ls on garbage" "cannot open image 'junk.img'" "$P" ls junk.img:/
expect_fail "fsck on garbage" "petrel fsck: cannot open" "$P" fsck junk.img
expect_fail "cp into garbage" "cannot open image" "$P" cp src/a.txt junk.img:/a
expect_eq "garbage unchanged" "$sum" "$(cksum < junk.img)"
# Damage inside a valid image: a flipped byte in a file's data must make fsck fail and the
# read an error (never wrong bytes). The file is all 'Z' so its data blocks are easy to find.
"$P" mkfs dmg.img --size 1M >/dev/null
head -c 300000 /dev/zero | tr '\0' Z > zeds
"$P" cp zeds dmg.img:/zeds >/dev/null
# Flip one bit at offset 2000 of every block that is mostly 'Z' (the file's data blocks).
blocks=$(( $(stat -c %s dmg.img) / 4096 ))
for ((blk = 2; blk < blocks; blk++)); do
    z=$(dd if=dmg.img bs=4096 skip=$blk count=1 2>/dev/null | tr -cd Z | wc -c)
    if [ "$z" -gt 3000 ]; then
        off=$((blk * 4096 + 2000))
        byte=$(dd if=dmg.img bs=1 skip=$off count=1 2>/dev/null | od -An -tu1 | tr -d ' ')
        printf "\\$(printf %03o $((byte ^ 1)))" | dd of=dmg.img bs=1 seek=$off conv=notrunc 2>/dev/null
    fi
done
out=$("$P" fsck dmg.img 2>&1); code=$?
[ $code != 0 ] && pass "fsck finds damaged data" || fail "fsck finds damaged data" "exit 0: $out"
out=$("$P" cat dmg.img:/zeds 2>&1 >/dev/null); code=$?
[ $code != 0 ] && pass "damaged data reads as an error, not wrong bytes" || fail "damaged read" "exit 0"
case "$out" in "petrel cat: cannot read 'dmg.img:/zeds':"*) pass "damaged read: one error line" ;; *) fail "damaged read message" "$out" ;; esac

# Missing things and bad arguments.
expect_fail "cat missing in image" "cannot open 'disk.img:/nope'" "$P" cat disk.img:/nope
expect_fail "cp missing from image" "cannot access 'disk.img:/nope'" "$P" cp disk.img:/nope x
expect_ok "nothing copied" test ! -e x
expect_fail "mkdir missing parent" "No such file" "$P" mkdir disk.img:/a/b
expect_fail "rm dir without -r" "is a directory" "$P" rm disk.img:/src
expect_fail "rm root" "refusing to remove the root" "$P" rm -r disk.img:/
expect_fail "mv across stores" "another store" "$P" mv disk.img:/src/a.txt small.img:/b
expect_fail "missing image" "cannot open image 'none.img'" "$P" ls none.img:/
expect_fail "fsck missing" "cannot open 'none.img'" "$P" fsck none.img
expect_fail "info on a directory" "not an image" "$P" info src
expect_fail "mkfs on a directory" "is a directory" "$P" mkfs src --size 1M
expect_fail "mkfs without size" "no size given" "$P" mkfs new.img
expect_ok "mkfs wrote nothing" test ! -e new.img
expect_fail "mkfs bad size" "bad size" "$P" mkfs new.img --size 8Q
expect_fail "mkfs bad block size" "bad block size" "$P" mkfs new.img --size 8M --block-size 1000
expect_fail "mkfs size not multiple" "not a multiple" "$P" mkfs new.img --size 10000
expect_fail "mkfs option needs value" "needs a value" "$P" mkfs new.img --size
expect_ok "mkfs wrote nothing after errors" test ! -e new.img
expect_fail "mkfs too small" "too small" "$P" mkfs s.img --size 8K
expect_ok "too small wrote nothing" test ! -e s.img
finish

#!/usr/bin/env bash
# The porting example and the installed engine library:
#  - examples/spi_nor built with the firmware switches (no malloc, no log, no assert, no fsck,
#    64-byte CRC table) runs on the host: format, write, power cut, mount, read back; and the
#    binary imports no allocator (malloc, calloc, realloc, free);
#  - `make install PREFIX=...` installs libpetrel-fs.a, the engine's headers and petrel-fs.pc;
#    the example builds against that copy through pkg-config alone and runs; the library needs
#    nothing of the cluster's dependencies (libuv, raft, lmdb, fuse, isa-l, xxhash);
#  - a relative PREFIX is refused with one clear error.
set -u
build=${PETREL_BUILD:-build}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0 fail=0
check() { # description, command...
    local what=$1
    shift
    if "$@"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $what"; fi
}

make --no-print-directory -s BUILD="$build" example > "$tmp/example.out" 2>&1
check "the example runs with the firmware switches" test $? = 0
check "the example read back what it wrote" grep -q 'read back 50 bytes: ok' "$tmp/example.out"
nm -u "$build/examples/spi_nor" > "$tmp/undef" 2>&1
check "the example imports no allocator" sh -c "! grep -Eq ' (malloc|calloc|realloc|free)(@|$)' '$tmp/undef'"

make --no-print-directory -s BUILD="$build" install PREFIX="$tmp/prefix" > "$tmp/install.out" 2>&1
check "make install succeeds" test $? = 0
for f in lib/libpetrel-fs.a lib/pkgconfig/petrel-fs.pc include/petrel/fs.h include/petrel/bd.h \
    include/petrel/common.h include/petrel/crc32c.h; do
    check "installed $f" test -f "$tmp/prefix/$f"
done
check "no cluster header installed" test ! -e "$tmp/prefix/include/petrel/client.h"
export PKG_CONFIG_PATH=$tmp/prefix/lib/pkgconfig
cflags=$(pkg-config --cflags petrel-fs)
libs=$(pkg-config --libs petrel-fs)
check "pkg-config knows petrel-fs" test -n "$libs"
check "petrel-fs.pc names no cluster library" \
    sh -c "! echo '$libs' | grep -Eq 'uv|raft|lmdb|fuse|isal|xxhash'"
# Under `make check` the installed library is the sanitized build: link its runtime too.
san=""
[ "${PETREL_SANITIZED:-0}" = 1 ] && san="-fsanitize=address,undefined"
# shellcheck disable=SC2086
${CC:-cc} -std=c99 -Wall -Wextra -Werror -DEXAMPLE_REPORT $cflags examples/spi_nor/spi_nor.c \
    $libs $san -o "$tmp/spi_nor" > "$tmp/cc.out" 2>&1
check "the example builds against the installed library through pkg-config" test $? = 0
# The example cuts the power by forgetting a mounted filesystem; with the installed (malloc)
# library that leaves the mount's tables allocated, which is the power cut, not a leak.
ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 "$tmp/spi_nor" > "$tmp/run.out" 2>&1
check "the example built from the installed library runs" test $? = 0
nm -u "$tmp/prefix/lib/libpetrel-fs.a" 2> /dev/null | awk '{ print $2 }' | sort -u > "$tmp/lib-undef"
check "the library refers to no cluster dependency" \
    sh -c "! grep -Eq '^(uv_|raft_|mdb_|fuse_|ec_|XXH)' '$tmp/lib-undef'"

make --no-print-directory -s BUILD="$build" install PREFIX=relative/dir > "$tmp/bad.out" 2>&1
check "a relative PREFIX is refused" test $? != 0
check "a relative PREFIX says why" grep -q 'PREFIX must be an absolute path' "$tmp/bad.out"
check "a relative PREFIX writes nothing" test ! -e relative/dir

[ $fail = 0 ] || cat "$tmp"/*.out
echo "$pass passed, $fail failed"
[ $fail = 0 ]

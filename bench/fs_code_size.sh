#!/bin/sh
# Code size of the flash engine built with -Os: src/fs/*.c, the RAM device, crc32c and the
# name hash, each compiled alone; prints "fs-code host-Os text=BYTES data=BYTES bss=BYTES"
# and, when gcc-arm-none-eabi is installed, the same for Cortex-M0 (-mcpu=cortex-m0 -mthumb).
# Run from the repository root (make bench does).
set -u
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
srcs="$(ls src/fs/*.c 2>/dev/null) src/bd/bd_ram.c src/common/crc32c.c src/common/hash.c"
measure() { # $1 label, $2 compiler, $3.. flags
    label=$1 compiler=$2
    shift 2
    for f in $srcs; do
        "$compiler" -std=c99 -Os -Iinclude -Isrc -DPETREL_FS_NO_MALLOC "$@" -c "$f" \
            -o "$tmp/$(basename "$f" .c).o" || return 1
    done
    size_tool=size
    case $compiler in arm-none-eabi-*) size_tool=arm-none-eabi-size ;; esac
    "$size_tool" "$tmp"/*.o | awk -v l="$label" 'NR > 1 { t += $1; d += $2; b += $3 }
        END { printf "fs-code %s text=%d data=%d bss=%d\n", l, t, d, b }'
    rm -f "$tmp"/*.o
}
measure host-Os "${CC:-cc}" || exit 1
if command -v arm-none-eabi-gcc > /dev/null 2>&1; then
    measure cortex-m0-Os arm-none-eabi-gcc -mcpu=cortex-m0 -mthumb -ffunction-sections
fi
exit 0

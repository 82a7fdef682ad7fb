#!/usr/bin/env bash
# `make size`: the flash engine measured as firmware (docs/FIRMWARE.md). For Cortex-M0 and
# Cortex-M4, builds the engine (src/fs, the src/common pieces it needs) and the porting example
# (examples/spi_nor: a SPI-NOR device from four callbacks, static buffers) with arm-none-eabi-gcc,
# -Os -mthumb -ffunction-sections -fdata-sections, logs, asserts, fsck and malloc switched off,
# the 64-byte CRC-32C table, links them against newlib-nano/nosys with --gc-sections, and prints
# one line per figure, "size NAME VALUE<=LIMIT ok|over":
#   text-full      engine bytes (.text, .rodata, .data) kept in the image; limit 18,800 B
#                  (1.2 x littlefs v2.11's 15,638 B for the same app)
#   text-readonly  engine bytes kept in a reader-only app (the example built with
#                  EXAMPLE_READ_ONLY: mount, list, open for reading, read, unmount) with the
#                  engine compiled with PETREL_FS_READONLY as well; limit 6,900 B (1.2 x
#                  littlefs's LFS_READONLY build, 5,716 B)
#   stack-worst    deepest stack from main over the call graph (-fstack-usage and
#                  -fcallgraph-info, mk/firmware_size.py); limit 2,048 B
#   frame-max      largest frame of an engine function; limit 512 B
#   fs-struct      sizeof(struct petrel_fs); limit 512 B
#   file-struct    sizeof(struct petrel_fs_file); limit 256 B
# with detail lines under each. Exits 1 when a figure is over (or a check fails: a printf-family
# function linked, malloc referenced, recursion), 0 when all are within their limits, and 0 with
# "size: skipped" when arm-none-eabi-gcc is not installed (`make deps` installs it as root).
# usage: mk/size.sh BUILD [CPU...]
set -u
build=$1
shift
cpus=("$@")
[ ${#cpus[@]} = 0 ] && cpus=(cortex-m0 cortex-m4)
if ! command -v arm-none-eabi-gcc > /dev/null 2>&1; then
    echo "size: skipped: arm-none-eabi-gcc is not installed (make deps installs gcc-arm-none-eabi)"
    exit 0
fi
here=$(cd "$(dirname "$0")/.." && pwd)
switches="-DPETREL_FS_NO_MALLOC -DPETREL_NO_LOG -DPETREL_NO_ASSERT -DPETREL_FS_NO_CHECK"
switches+=" -DPETREL_CRC32C_NO_HW -DPETREL_CRC32C_TABLE_BYTES=64"
engine_srcs=$(ls "$here"/src/fs/*.c)
engine_srcs+=" $here/src/common/crc32c.c $here/src/common/crc32c_hw.c"
engine_srcs+=" $here/src/common/crc32c_arm.c $here/src/common/crc32c_x86.c"
engine_srcs+=" $here/src/common/hash.c $here/src/common/log.c $here/src/common/assert.c"
engine_srcs+=" $here/src/common/error.c"
status=0

figure() { # name value limit
    if [ "$2" -le "$3" ]; then
        echo "size $1 $2<=$3 ok"
    else
        echo "size $1 $2<=$3 over"
        status=1
    fi
}

measure() { # cpu
    local cpu=$1 dir=$build/size/$1 f objs="" engine="" flags
    rm -rf "$dir"
    mkdir -p "$dir"
    flags="-std=c99 -Os -mthumb -mcpu=$cpu -ffunction-sections -fdata-sections -fstack-usage"
    flags+=" -fcallgraph-info=su -Wall -Wextra -Werror -I$here/include -I$here/src $switches"
    for f in $engine_srcs "$here/examples/spi_nor/spi_nor.c"; do
        # shellcheck disable=SC2086
        (cd "$dir" && arm-none-eabi-gcc $flags -c "$f" -o "$(basename "$f" .c).o") || return 2
        objs+=" $dir/$(basename "$f" .c).o"
        case $f in */spi_nor.c) ;; *) engine+="${engine:+,}$(basename "$f" .c).o" ;; esac
    done
    # shellcheck disable=SC2086
    arm-none-eabi-gcc -mthumb -mcpu="$cpu" --specs=nano.specs --specs=nosys.specs \
        -Wl,--gc-sections -Wl,-Map="$dir/example.map" -o "$dir/example.elf" $objs || return 2
    echo "size target $cpu: arm-none-eabi-gcc $(arm-none-eabi-gcc -dumpversion), -Os," \
        "examples/spi_nor linked with newlib-nano/nosys"
    python3 "$here/mk/firmware_size.py" --dir "$dir" --map "$dir/example.map" --root main \
        --readelf arm-none-eabi-readelf --engine "$engine" --guarded pt_fs_repair,pt_index_change \
        --text-limit 18800 --stack-limit 2048 --frame-limit 512 > "$dir/figures.txt"
    case $? in 0) ;; 1) status=1 ;; *) cat "$dir/figures.txt"; return 2 ;; esac
    sed -n '/^size text-full/,/^size stack-worst/p' "$dir/figures.txt" | sed '$d'
    # A reader-only app (mount, list, open for reading, read, unmount: the example built with
    # EXAMPLE_READ_ONLY) over the engine built with PETREL_FS_READONLY.
    local reader robjs="" rflags="$flags -DPETREL_FS_READONLY"
    mkdir -p "$dir/reader"
    for f in $engine_srcs "$here/examples/spi_nor/spi_nor.c"; do
        # shellcheck disable=SC2086
        (cd "$dir/reader" && arm-none-eabi-gcc $rflags -DEXAMPLE_READ_ONLY -c "$f" \
            -o "$(basename "$f" .c).o") || return 2
        robjs+=" $dir/reader/$(basename "$f" .c).o"
    done
    # shellcheck disable=SC2086
    arm-none-eabi-gcc -mthumb -mcpu="$cpu" --specs=nano.specs --specs=nosys.specs \
        -Wl,--gc-sections -Wl,-Map="$dir/reader/reader.map" -o "$dir/reader/reader.elf" \
        $robjs || return 2
    python3 "$here/mk/firmware_size.py" --dir "$dir/reader" --map "$dir/reader/reader.map" \
        --root main --readelf arm-none-eabi-readelf --engine "$engine" \
        --text-limit 6900 --stack-limit 2048 --frame-limit 512 > "$dir/reader/figures.txt"
    case $? in 0 | 1) ;; *) cat "$dir/reader/figures.txt"; return 2 ;; esac
    reader=$(awk '/^size text-full/ { split($3, a, "<="); print a[1] }' "$dir/reader/figures.txt")
    figure text-readonly "$reader" 6900
    sed -n '/^size text-full/,/^size stack-worst/p' "$dir/reader/figures.txt" | sed '1d;$d'
    echo "  (PETREL_FS_READONLY and the switches above; the reader's own worst stack:" \
        "$(awk '/^size stack-worst/ { split($3, a, "<="); print a[1] }' "$dir/reader/figures.txt") B)"
    sed -n '/^size stack-worst/,$p' "$dir/figures.txt"
    # No malloc and no printf family in the image.
    if arm-none-eabi-nm "$dir/example.elf" | grep -Eq ' T (malloc|_malloc_r|free)$'; then
        echo "  problem: malloc is linked although PETREL_FS_NO_MALLOC is set"
        status=1
    fi
    if grep -Eq 'printf family linked: [^n]' "$dir/figures.txt"; then status=1; fi
    # Struct sizes on this target, and the members that make them.
    cat > "$dir/structs.c" << 'EOF'
#include "petrel/fs.h"
#define M(s, m) sizeof(((struct s *)0)->m)
char size_fs[sizeof(struct petrel_fs)], size_file[sizeof(struct petrel_fs_file)];
char size_dir[sizeof(struct petrel_fs_dir)], size_link[sizeof(struct petrel_fs_link)];
char fs_tables[PETREL_FS_LINK_CACHE * sizeof(struct petrel_fs_link) +
               PETREL_FS_FINGERS * sizeof(struct petrel_fs_finger)];
char fs_gstate_x2[2 * M(petrel_fs, gstate)], fs_caches[2 * M(petrel_fs, rcache)];
char file_pend[M(petrel_fs_file, pend_inline)], file_map_block[M(petrel_fs_file, map_block)];
char file_pend_alloc[PETREL_FS_PENDING * sizeof(struct petrel_fs_pend)];
char file_direct[M(petrel_fs_file, direct)], dir_batch[M(petrel_fs_dir, batch)];
EOF
    arm-none-eabi-gcc -std=c99 -mthumb -mcpu="$cpu" -I"$here/include" -fno-common \
        -c "$dir/structs.c" -o "$dir/structs.o" || return 2
    local size name
    declare -A sz
    while read -r _ size _ name; do sz[$name]=$((16#$size)); done \
        < <(arm-none-eabi-nm -S "$dir/structs.o")
    figure fs-struct "${sz[size_fs]}" 512
    echo "  of which: gstate x2 ${sz[fs_gstate_x2]}, cache heads x2 ${sz[fs_caches]}; the rest" \
        "$((sz[size_fs] - sz[fs_gstate_x2] - sz[fs_caches])); outside it: the built-in links" \
        "and fingers ${sz[fs_tables]} B, allocated at mount (none without malloc unless" \
        "link_buffer is configured)"
    figure file-struct "${sz[size_file]}" 256
    echo "  of which: pend_inline[] ${sz[file_pend]}, map_block[] ${sz[file_map_block]}," \
        "direct[] ${sz[file_direct]}; the rest" \
        "$((sz[size_file] - sz[file_pend] - sz[file_map_block] - sz[file_direct])); outside" \
        "it: pend[] ${sz[file_pend_alloc]} B allocated at open (or pend_buffer); an open" \
        "directory is ${sz[size_dir]} (batch[] ${sz[dir_batch]})"
    # The CRC-32C table choice, for the record.
    for t in 1024 8192; do
        arm-none-eabi-gcc -std=c99 -Os -mthumb -mcpu="$cpu" -I"$here/include" -I"$here/src" \
            -DPETREL_CRC32C_NO_HW -DPETREL_CRC32C_TABLE_BYTES=$t -c "$here/src/common/crc32c.c" \
            -o "$dir/crc32c-$t.o" || return 2
    done
    echo "  crc32c text with the 1 KiB table $(arm-none-eabi-size "$dir/crc32c-1024.o" |
        awk 'NR == 2 { print $1 + $2 }'), 8 KiB $(arm-none-eabi-size "$dir/crc32c-8192.o" |
        awk 'NR == 2 { print $1 + $2 }') (64 B table above)"
    return 0
}

for cpu in "${cpus[@]}"; do
    measure "$cpu"
    rc=$?
    if [ $rc != 0 ]; then
        echo "size: the $cpu build failed"
        exit 2
    fi
done
if [ $status = 0 ]; then echo "size: every figure within its limit"; else echo "size: over a limit"; fi
exit $status

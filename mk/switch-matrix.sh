#!/usr/bin/env bash
# The flash engine's build switches (include/petrel/fs.h), each combination that makes sense
# built and tested: the engine (src/fs, src/bd and the src/common pieces it uses) compiled with
# the switches, linked with the already-built fs test objects, and the engine's quick cases run
# (the ones crc-variants runs: everything but the long power-loss sweeps and randomized models;
# one sweep stays). Each variant also checks what its switch promises from the objects' symbols:
#   no-log     no engine object but check.c (whose problem lines are its output, not a log)
#              refers to petrel_log or a printf-family function; log.c formats nothing;
#   no-assert  no object refers to petrel_assert_fail (PT_ASSERT checks nothing; the engine
#              has no PT_ASSERT today, so this guards the ones to come);
#   no-check   check.c defines no petrel_fs_check; the tests, which use fsck as their oracle,
#              link the checker from the default build with its copies of the walk made local,
#              so the walk the engine itself uses (pt_traverse) is the variant's;
#   firmware   all of the above with the 64-byte CRC-32C table and no hardware CRC: what
#              `make size` measures (minus PETREL_FS_NO_MALLOC, which the tests cannot take:
#              they open files without buffers; examples/spi_nor runs with it).
#   no-wear    PETREL_FS_NO_WEAR: no object defines a function of static wear leveling (wear.c
#              is empty); the cases that need it (test_wear_static.c) are left out;
#   readonly   firmware plus PETREL_FS_READONLY (what `make size` measures as text-readonly):
#              the fs tests write, so instead tests/firmware/readonly/readonly_images.c, built with
#              the default engine, writes images (clean, cut session, renames cut at every
#              program) and, built with this variant, reads them back byte for byte, checks
#              the refusals and that nothing is programmed or erased; no object defines a
#              write function, and the reader linked with --gc-sections keeps no commit,
#              allocator, repair or mount-state marking function.
# usage: mk/switch-matrix.sh BUILD CC "CFLAGS" "LDFLAGS" "LIBS"   (make switch-matrix passes them)
# Prints "switch-variant NAME ok|FAILED" per variant and "N passed, N failed" at the end.
set -u
build=$1 cc=$2 cflags=$3 ldflags=$4 libs=$5
variants=(
    "no-log:-DPETREL_NO_LOG"
    "no-assert:-DPETREL_NO_ASSERT"
    "no-check:-DPETREL_FS_NO_CHECK"
    "no-wear:-DPETREL_FS_NO_WEAR"
    "firmware:-DPETREL_NO_LOG -DPETREL_NO_ASSERT -DPETREL_FS_NO_CHECK -DPETREL_CRC32C_NO_HW -DPETREL_CRC32C_TABLE_BYTES=64"
    "readonly:-DPETREL_FS_READONLY -DPETREL_NO_LOG -DPETREL_NO_ASSERT -DPETREL_FS_NO_CHECK -DPETREL_CRC32C_NO_HW -DPETREL_CRC32C_TABLE_BYTES=64"
)
# Functions of the write path: not defined (public ones) or not reachable (the rest) in the
# read-only variant.
ro_public='petrel_fs_(format|mkdir|remove|rename|mknod|file_write|file_truncate|file_sync|setattr|removeattr)'
ro_internal='pt_(fs_commit|mdir_commit|commit_raw|alloc|alloc_init|fs_repair|mstate_mark_dirty|mstate_mark_clean|tree_apply|index_change|page_prog|sync)'

slow='^(powerloss_|wear_out_|model_matrix|model_random_ops_cuts_flips_(emmc|nand|nor1)|'
slow+='model_random_ops_cuts_flips$|fs_random_overwrites|corrupt_damaged)'
# Cases that need static wear leveling (the no-wear variant leaves them out).
needs_wear='^(wear_static_|wear_counts_|wear_record_|wear_move_)'
# Cases that read the engine's log messages: they cannot pass without a log (no-log variants).
reads_log='^(chain_version_1_0_image_refused|fs_index_drops_and_moves_keep_invariant)$'
engine_srcs="$(ls src/fs/*.c src/bd/*.c src/common/crc32c*.c) src/common/hash.c"
engine_srcs+=" src/common/log.c src/common/assert.c src/common/error.c src/common/prng.c"
runner_objs=$(ls "$build"/obj/tests/runner/*.o)
fs_test_objs=$(ls "$build"/obj/tests/fs/*.o)

symbols_check() { # $1 dir, $2 flags: what the switches promise, from the objects' symbols
    local dir=$1 flags=$2 o bad=0
    case $flags in *PETREL_NO_LOG*)
        for o in "$dir"/*.o; do
            case $o in */check.o|*/bd_*.o|*/error.o) continue ;; esac
            if nm -u "$o" | grep -Eq ' (petrel_log|v?s?n?printf|v?fprintf)$'; then
                echo "$(basename "$o") still refers to logging or printf:"
                nm -u "$o" | grep -E ' (petrel_log|v?s?n?printf|v?fprintf)$'
                bad=1
            fi
        done ;;
    esac
    case $flags in *PETREL_NO_ASSERT*)
        for o in "$dir"/*.o; do
            if nm -u "$o" | grep -q ' petrel_assert_fail$'; then
                echo "$(basename "$o") still checks PT_ASSERT with PETREL_NO_ASSERT"
                bad=1
            fi
        done ;;
    esac
    case $flags in *PETREL_FS_READONLY*)
        if nm "$dir"/*.o | grep -Eq " T $ro_public\$"; then
            echo "a write function is built with PETREL_FS_READONLY:"
            nm "$dir"/*.o | grep -E " T $ro_public\$"
            bad=1
        fi ;;
    esac
    case $flags in *PETREL_FS_NO_WEAR*)
        if nm "$dir"/*.o | grep -Eq ' T pt_(wear|alloc_worn)'; then
            echo "static wear leveling is built with PETREL_FS_NO_WEAR:"
            nm "$dir"/*.o | grep -E ' T pt_(wear|alloc_worn)'
            bad=1
        fi ;;
    esac
    case $flags in *PETREL_FS_NO_CHECK*)
        if nm "$dir/check.o" | grep -q ' T petrel_fs_check'; then
            echo "check.o defines petrel_fs_check with PETREL_FS_NO_CHECK"
            bad=1
        fi
        if ! nm "$dir/check.o" | grep -q ' T pt_traverse$'; then
            echo "check.o lost pt_traverse (the allocator needs it) with PETREL_FS_NO_CHECK"
            bad=1
        fi ;;
    esac
    return $bad
}

run_variant() { # $1 name, $2 flags; prints one line, returns 0 when everything passed
    local name=$1 flags=$2 dir=$build/switch-matrix/$1 ok=1 objs="" src obj cases oracle=""
    rm -rf "$dir"
    mkdir -p "$dir"
    for src in $engine_srcs; do
        obj=$dir/$(basename "$src" .c).o
        # shellcheck disable=SC2086
        $cc $cflags $flags -ffunction-sections -c "$src" -o "$obj" || ok=0
        objs="$objs $obj"
    done
    if [ $ok = 1 ]; then
        symbols_check "$dir" "$flags" > "$dir/symbols.log" 2>&1 || { ok=0; cat "$dir/symbols.log"; }
    fi
    case $flags in *PETREL_FS_NO_CHECK*)
        oracle=$dir/check-oracle.o
        objcopy --localize-symbol=pt_traverse --localize-symbol=petrel_fs_traverse \
            --localize-symbol=petrel_fs_usage "$build/obj/src/fs/check.o" "$oracle" || ok=0 ;;
    esac
    case $flags in *PETREL_FS_READONLY*)
        run_readonly "$name" "$dir" "$flags" "$objs" $ok
        return ;;
    esac
    if [ $ok = 1 ]; then
        # The variant's objects come first, so no archive member of the default build is used
        # for them (libpetrel_common.a only supplies what the engine does not: codec, siphash).
        # shellcheck disable=SC2086
        $cc $ldflags -o "$dir/test-fs" $fs_test_objs $oracle $objs $runner_objs \
            "$build/libpetrel_common.a" $libs || ok=0
    fi
    if [ $ok = 1 ]; then
        cases="$("$dir/test-fs" --list | grep -Ev "$slow") powerloss_write_sync_nand"
        case $flags in *PETREL_NO_LOG*) cases=$(echo "$cases" | grep -Ev "$reads_log") ;; esac
        case $flags in *PETREL_FS_NO_WEAR*) cases=$(echo "$cases" | grep -Ev "$needs_wear") ;; esac
        # shellcheck disable=SC2086
        "$dir/test-fs" $cases > "$dir/fs.log" 2>&1 || { ok=0; grep -v '^ok' "$dir/fs.log" | tail -n 20; }
    fi
    if [ $ok = 1 ]; then
        echo "switch-variant $name ok: fs $(tail -n 1 "$dir/fs.log")"
        return 0
    fi
    echo "switch-variant $name FAILED (logs in $dir)"
    return 1
}

run_readonly() { # $1 name, $2 dir, $3 flags, $4 objects, $5 ok so far
    local name=$1 dir=$2 flags=$3 objs=$4 ok=$5 src=tests/firmware/readonly/readonly_images.c bad
    if [ "$ok" = 1 ]; then
        mkdir -p "$dir/images"
        # shellcheck disable=SC2086
        { $cc $cflags -c "$src" -o "$dir/writer.o" &&
            $cc $ldflags -o "$dir/writer" "$dir/writer.o" "$build/libpetrel_fs.a" \
                "$build/libpetrel_common.a" $libs &&
            $cc $cflags $flags -c "$src" -o "$dir/reader.o" &&
            $cc $ldflags -Wl,--gc-sections -o "$dir/reader" "$dir/reader.o" $objs \
                "$build/libpetrel_common.a" $libs; } || ok=0
    fi
    if [ "$ok" = 1 ]; then
        bad=$(nm "$dir/reader" | grep -E " [Tt] $ro_internal(\.[a-z0-9.]+)?\$")
        if [ -n "$bad" ]; then
            echo "the read-only reader keeps write-path functions:"
            echo "$bad"
            ok=0
        fi
    fi
    if [ "$ok" = 1 ]; then
        # the writer cuts the power by forgetting a mounted fs: its buffers leak (ASan builds)
        { ASAN_OPTIONS=detect_leaks=0 "$dir/writer" write "$dir/images" &&
            "$dir/reader" read "$dir/images"; } \
            > "$dir/readonly.log" 2>&1 || { ok=0; tail -n 5 "$dir/readonly.log"; }
    fi
    if [ "$ok" = 1 ]; then
        echo "switch-variant $name ok: $(tail -n 1 "$dir/readonly.log")"
        return 0
    fi
    echo "switch-variant $name FAILED (logs in $dir)"
    return 1
}

pass=0 fail=0 i=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for v in "${variants[@]}"; do
    (run_variant "${v%%:*}" "${v#*:}" > "$tmp/$i" 2>&1; echo $? > "$tmp/$i.rc") &
    i=$((i + 1))
    if [ $((i % 2)) = 0 ]; then wait; fi
done
wait
for ((j = 0; j < i; j++)); do
    cat "$tmp/$j"
    if [ "$(cat "$tmp/$j.rc")" = 0 ]; then pass=$((pass + 1)); else fail=$((fail + 1)); fi
done
echo "$pass passed, $fail failed"
[ $fail = 0 ]

#!/usr/bin/env bash
# The CRC-32C build switches (include/petrel/crc32c.h), each combination that makes sense built
# and tested: the CRC files and the CRC test compiled with the switches, linked with the rest of
# the already-built tree, then the CRC test and the flash engine's quick cases (the ones that
# write, read back and check CRCs without the long power-loss sweeps) run against them.
# usage: mk/crc-variants.sh BUILD CC "CFLAGS" "LDFLAGS" "LIBS"   (make crc-variants passes them)
# Prints "crc-variant NAME ok|FAILED" per variant and "N passed, N failed" at the end.
set -u
build=$1 cc=$2 cflags=$3 ldflags=$4 libs=$5
variants=(
    "nohw-8192:-DPETREL_CRC32C_NO_HW"
    "nohw-1024:-DPETREL_CRC32C_NO_HW -DPETREL_CRC32C_TABLE_BYTES=1024"
    "nohw-64:-DPETREL_CRC32C_NO_HW -DPETREL_CRC32C_TABLE_BYTES=64"
    "hw-1024:-DPETREL_CRC32C_TABLE_BYTES=1024"
    "hw-64:-DPETREL_CRC32C_TABLE_BYTES=64"
)
# Flash-engine cases left out here (they run in the default build): the long sweeps and the
# longest randomized models; one power-loss sweep and one model run stay.
slow='^(powerloss_|wear_out_|model_matrix|model_random_ops_cuts_flips_(emmc|nand|nor1)|'
slow+='model_random_ops_cuts_flips$|fs_random_overwrites|corrupt_damaged)'
runner_objs=$(ls "$build"/obj/tests/runner/*.o)
fs_test_objs=$(ls "$build"/obj/tests/fs/*.o)
run_variant() { # $1 name, $2 flags; prints one line, returns 0 when everything passed
    local name=$1 flags=$2 dir=$build/crc-variants/$1 ok=1 objs="" src obj cases
    mkdir -p "$dir"
    for src in src/common/crc32c*.c tests/common/test_crc32c.c; do
        obj=$dir/$(basename "$src" .c).o
        # shellcheck disable=SC2086
        $cc $cflags $flags -c "$src" -o "$obj" || ok=0
        case $src in src/*) objs="$objs $obj" ;; esac
    done
    if [ $ok = 1 ]; then
        # The variant's CRC objects come first, so the archives' own crc32c members stay out.
        # shellcheck disable=SC2086
        $cc $ldflags -o "$dir/test-crc" "$dir/test_crc32c.o" $objs $runner_objs \
            "$build/libpetrel_common.a" $libs || ok=0
        # shellcheck disable=SC2086
        $cc $ldflags -o "$dir/test-fs" $fs_test_objs $objs $runner_objs "$build/libpetrel_fs.a" \
            "$build/libpetrel_common.a" $libs || ok=0
    fi
    if [ $ok = 1 ]; then
        "$dir/test-crc" > "$dir/crc.log" 2>&1 || { ok=0; grep -v '^ok' "$dir/crc.log" | tail -n 20; }
        cases="$("$dir/test-fs" --list | grep -Ev "$slow") powerloss_write_sync_nand"
        # shellcheck disable=SC2086
        "$dir/test-fs" $cases > "$dir/fs.log" 2>&1 || { ok=0; grep -v '^ok' "$dir/fs.log" | tail -n 20; }
    fi
    if [ $ok = 1 ]; then
        echo "crc-variant $name ok: crc $(tail -n 1 "$dir/crc.log"); fs $(tail -n 1 "$dir/fs.log")"
        return 0
    fi
    echo "crc-variant $name FAILED (logs in $dir)"
    return 1
}

# Two variants at a time (the machines this runs on have two cores or more); each writes its
# report to a file, printed in order once all are done.
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

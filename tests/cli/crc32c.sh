#!/usr/bin/env bash
# petrel crc32c: known values, several files, stdin, and the error paths.
set -u
. "$(dirname "$0")/../lib.sh"
t=$(mktemp -d); trap 'rm -rf "$t"' EXIT

printf 123456789 > "$t/nine"
: > "$t/empty"
expect_out "crc32c of 123456789" "e3069283  $t/nine" "$PETREL_BIN" crc32c "$t/nine"
expect_out "crc32c of nothing" "00000000  $t/empty" "$PETREL_BIN" crc32c "$t/empty"
expect_out "crc32c of stdin" "e3069283  -" sh -c "printf 123456789 | '$PETREL_BIN' crc32c -"
head -c 3000000 /dev/zero > "$t/zeros"
n=$("$PETREL_BIN" crc32c "$t/nine" "$t/zeros" | wc -l)
expect_eq "two files give two lines" 2 "$n"
expect_fail "missing file" "cannot open" "$PETREL_BIN" crc32c "$t/nope"
expect_fail "no argument" "no file given" "$PETREL_BIN" crc32c
expect_fail "unknown command" "unknown command" "$PETREL_BIN" frobnicate
finish

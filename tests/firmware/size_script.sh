#!/usr/bin/env bash
# The measuring script of `make size` (mk/firmware_size.py) checked on programs whose answer is
# known, built with the host compiler (GCC's -fstack-usage, -fcallgraph-info and a linker map
# work there as for Cortex-M), then `make size` itself when arm-none-eabi-gcc is installed:
#  - a frame of 1,500 bytes reached through an indirect call is on the worst path, named;
#  - a function the linker dropped (--gc-sections) counts neither for the path nor the frames;
#  - a figure over its limit prints "over" and exits 1, within it "ok" and exits 0;
#  - recursion is reported and fails; a guarded re-entry counts its own frame once;
#  - text counts the kept sections of the named objects only, and a linked printf is named;
#  - bad input (a missing directory, a file that is not a map) is one clear error, exit 2.
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
cc=${CC:-cc}
if ! $cc -fcallgraph-info=su -x c -c /dev/null -o "$tmp/probe.o" 2> /dev/null; then
    echo "size_script: skipped: $cc has no -fcallgraph-info (GCC 10 or later)"
    echo "0 passed, 0 failed"
    exit 0
fi

build_fixture() { # name, C source on stdin
    mkdir -p "$tmp/$1"
    cat > "$tmp/$1/fixture.c"
    (cd "$tmp/$1" && $cc -O1 -fno-inline -ffunction-sections -fdata-sections -fstack-usage \
        -fcallgraph-info=su -c fixture.c -o fixture.o &&
        $cc -static -Wl,--gc-sections -Wl,-Map=fixture.map -o fixture fixture.o)
}
measure() { # name, extra args...; output in $tmp/NAME/out, exit code in $tmp/NAME/rc
    local name=$1
    shift
    python3 mk/firmware_size.py --dir "$tmp/$name" --map "$tmp/$name/fixture.map" --root main \
        --engine fixture.o "$@" > "$tmp/$name/out" 2>&1
    echo $? > "$tmp/$name/rc"
}

build_fixture indirect << 'EOF2'
#include <stdio.h>
#include <string.h>
typedef int (*visit_fn)(const char *s);
static int leaf(const char *s)
{
    volatile char buf[300];
    memcpy((char *)buf, s, 4);
    return buf[1];
}
static int big(visit_fn fn, const char *s)
{
    volatile char buf[1500];
    memcpy((char *)buf, s, 8);
    return fn((const char *)buf) + buf[2];
}
int unused_huge(const char *s);
int unused_huge(const char *s)
{
    volatile char buf[4000];
    memcpy((char *)buf, s, 8);
    return buf[3];
}
static int small(int x) { return x * 3; }
visit_fn table[1] = {leaf};
int main(int argc, char **argv)
{
    (void)argv;
    printf("%d\n", small(argc));
    return big(table[argc - 1], "abcdefgh");
}
EOF2
measure indirect --stack-limit 1000 --frame-limit 100000 --text-limit 100000 --entry-prefix ""
out=$tmp/indirect/out
check "over a limit exits 1" test "$(cat "$tmp/indirect/rc")" = 1
check "stack over its limit says over" grep -Eq '^size stack-worst [0-9]+<=1000 over$' "$out"
check "worst path main > big > leaf, through the indirect call" \
    grep -Eq '^  worst path: main [0-9]+ > big [0-9]+ > leaf [0-9]+' "$out"
check "stack counts the 1,500 and 300 byte frames (less the x86-64 red zone)" \
    awk '/^size stack-worst/ { split($3, v, "<="); exit !(v[1] >= 1700) }' "$out"
check "the dropped function is not among the frames" sh -c "! grep -q unused_huge '$out'"
check "the largest frame is big's" grep -Eq '^  largest frames: big [0-9]{4}' "$out"
check "frame within its limit says ok" grep -Eq '^size frame-max [0-9]+<=100000 ok$' "$out"
check "a linked printf is named" grep -Eq '^  printf family linked: .*printf' "$out"
check "the worst stack from each entry point is listed" \
    grep -Eq '^  by entry point: main [0-9]+, big [0-9]+, leaf [0-9]+' "$out"
measure indirect --stack-limit 100000 --frame-limit 100000 --text-limit 100000
check "within every limit exits 0" test "$(cat "$tmp/indirect/rc")" = 0
check "text is counted from the kept sections" \
    awk '/^size text-full/ { split($3, v, "<="); exit !(v[1] > 0 && v[1] < 4000) }' "$out"

build_fixture recursion << 'EOF2'
static int down(int n)
{
    volatile char buf[64];
    buf[0] = (char)n;
    return n > 0 ? down(n - 1) + buf[0] : 0;
}
int main(int argc, char **argv)
{
    (void)argv;
    return down(argc);
}
EOF2
measure recursion
check "recursion fails" test "$(cat "$tmp/recursion/rc")" = 1
check "recursion is named" grep -q 'problem: recursion: down calls down' "$tmp/recursion/out"
measure recursion --guarded down
check "a guarded re-entry passes" test "$(cat "$tmp/recursion/rc")" = 0
check "a guarded re-entry is said" grep -q 'down re-entered from down returns at once' \
    "$tmp/recursion/out"

# The engine's shape: a commit runs the repair (guarded by a flag), which commits again; the
# nested commit's call to the repair returns at once. The nested commit counts in full.
build_fixture guarded << 'EOF2'
static int repairing;
static int repair(int n);
static int commit(int n)
{
    volatile char buf[256];
    buf[0] = (char)n;
    return repair(n) + buf[0];
}
static int repair(int n)
{
    volatile char buf[512];
    int r;
    if (repairing) return 0;
    repairing = 1;
    buf[0] = (char)n;
    r = commit(n - 1) + buf[0];
    repairing = 0;
    return r;
}
int main(int argc, char **argv)
{
    (void)argv;
    return commit(argc);
}
EOF2
measure guarded --guarded repair
check "a cycle through a guarded function passes" test "$(cat "$tmp/guarded/rc")" = 0
check "the nested commit counts in full, its repair call once more" \
    grep -Eq '^  worst path: main [0-9]+ > commit [0-9]+ > repair [0-9]+ > commit [0-9]+ > repair [0-9]+$' \
    "$tmp/guarded/out"
measure guarded
check "the same cycle unguarded is recursion" grep -q 'problem: recursion: repair calls commit' \
    "$tmp/guarded/out"

python3 mk/firmware_size.py --dir "$tmp/nowhere" --map x --engine a.o > "$tmp/bad1" 2>&1
check "a missing directory exits 2" test $? = 2
check "a missing directory says so" grep -q 'no such directory' "$tmp/bad1"
python3 mk/firmware_size.py --dir "$tmp/recursion" --map "$tmp/recursion/fixture.c" \
    --engine a.o > "$tmp/bad2" 2>&1
check "a file that is not a map exits 2" test $? = 2
check "a file that is not a map says so" grep -q 'not a GNU ld map file' "$tmp/bad2"

if command -v arm-none-eabi-gcc > /dev/null 2>&1; then
    bash mk/size.sh "$build" cortex-m0 > "$tmp/size.out" 2>&1
    rc=$?
    check "make size measures (exit 0 or 1, not 2)" test $rc -le 1
    if grep -Eq '^size [a-z-]+ [0-9]+<=[0-9]+ over$' "$tmp/size.out"; then want=1; else want=0; fi
    check "make size exits 1 exactly when a figure is over" test $rc = $want
    check "make size: every over/ok verdict agrees with its numbers" awk '
        /^size [a-z-]+ [0-9]+<=[0-9]+ (ok|over)$/ {
            split($3, v, "<="); if ((v[1] + 0 <= v[2] + 0) != ($4 == "ok")) bad = 1 }
        END { exit bad }' "$tmp/size.out"
    for name in text-full text-readonly stack-worst frame-max fs-struct file-struct; do
        check "make size prints $name" grep -Eq "^size $name " "$tmp/size.out"
    done
    check "make size: no printf family in the firmware" \
        grep -q '^  printf family linked: none$' "$tmp/size.out"
    check "make size: the worst path starts at main" grep -q '^  worst path: main ' "$tmp/size.out"
    check "make size: the read-only build is measured" \
        grep -Eq '^size text-readonly [1-9][0-9]*<=6900 (ok|over)$' "$tmp/size.out"
    [ $fail = 0 ] || cat "$tmp/size.out"
else
    echo "size_script: make size part skipped: arm-none-eabi-gcc is not installed"
fi
echo "$pass passed, $fail failed"
[ $fail = 0 ]

# Helpers for script cases (tests/PART/*.sh): each check prints "ok NAME" or "FAIL NAME: why";
# `finish` prints "N passed, N failed" and sets the exit code.
: "${PETREL_BIN:?PETREL_BIN is set by tests/run-all.sh}"
t_pass=0
t_fail=0
pass() { echo "ok   $1"; t_pass=$((t_pass + 1)); }
fail() { echo "FAIL $1: $2"; t_fail=$((t_fail + 1)); }
# expect_out NAME EXPECTED CMD...: CMD succeeds and prints exactly EXPECTED.
expect_out() {
    local name=$1 want=$2 got; shift 2
    if got=$("$@" 2>&1); then
        [ "$got" = "$want" ] && pass "$name" || fail "$name" "printed '$got', wanted '$want'"
    else
        fail "$name" "exited $?: $got"
    fi
}
# expect_ok NAME CMD...: CMD exits 0.
expect_ok() {
    local name=$1 got; shift
    if got=$("$@" 2>&1); then pass "$name"; else fail "$name" "exited $?: $got"; fi
}
# expect_fail NAME PATTERN CMD...: CMD exits non-zero with one error line matching PATTERN.
expect_fail() {
    local name=$1 pattern=$2 got code; shift 2
    got=$("$@" 2>&1); code=$?
    if [ $code = 0 ]; then fail "$name" "succeeded, wanted an error"; return; fi
    if [ $code -ge 128 ]; then fail "$name" "died with signal $((code - 128))"; return; fi
    case "$got" in *"$pattern"*) pass "$name" ;; *) fail "$name" "error was '$got', wanted '$pattern'" ;; esac
}
expect_eq() { [ "$2" = "$3" ] && pass "$1" || fail "$1" "'$3' != '$2'"; }
finish() { echo "$t_pass passed, $t_fail failed"; [ "$t_fail" = 0 ]; }

#!/usr/bin/env bash
# The quick subset of `make conformance`: on the image tier 20 pjdfstest files (none that
# needs hard links) and chmod/12 (setuid cleared by another user's write), fsx 2 variants x 2,000 ops, fsstress 2,000 ops compared with tmpfs; on
# the cluster tier 20 pjdfstest files and fsx 2 variants x 2,000 ops. All must pass. Skipped, with the reason, where the suites cannot be built or run (no root, no
# FUSE, no build tools).
set -u
. "$(dirname "$0")/../lib.sh"
out=$(bash "$(dirname "$0")/../../mk/conformance.sh" "$PETREL_BUILD" quick 2>&1)
code=$?
printf '%s\n' "$out"
if [ $code = 77 ]; then
    pass "conformance quick: $(printf '%s\n' "$out" | grep 'skipped' | head -n 1)"
    finish
    exit 0
fi
check() { # SUITE TIER: the line "SUITE TIER: P/T" with P = T
    local line p t
    line=$(printf '%s\n' "$out" | grep "^$1 $2: " | head -n 1)
    p=$(printf '%s' "$line" | sed -n 's/^[a-z]* [a-z]*: \([0-9]*\)\/\([0-9]*\).*/\1/p')
    t=$(printf '%s' "$line" | sed -n 's/^[a-z]* [a-z]*: \([0-9]*\)\/\([0-9]*\).*/\2/p')
    if [ -n "$p" ] && [ "$p" = "$t" ] && [ "$t" -gt 0 ]; then pass "$1 $2: $p/$t"; else fail "$1 $2" "${line:-no result}"; fi
}
check pjdfstest image
check fsx image
check fsstress image
check pjdfstest cluster
check fsx cluster
finish

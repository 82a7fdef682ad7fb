#!/usr/bin/env bash
# make conformance: public POSIX suites against Petrel's FUSE mounts.
#
# Builds pjdfstest and xfstests' fsx/fsstress out of tree under build/suites/ from the pinned
# snapshots in ../shared/suites (relative to the project root; their README lists the build
# steps and apt packages), mounts a fresh flash image (and, when this build has it, a local
# cluster) with `-o allow_other,default_permissions`, runs the suites inside a directory of
# the mount and prints `SUITE TIER: passed/total` per suite and tier.
#
#   mk/conformance.sh BUILD [full|quick] [TIERS]
#
# full : every pjdfstest file (8,798 subtests), fsx 8 variants x 20,000 ops, fsstress
#        20,000 ops compared with tmpfs for the same seed; image and cluster tiers.
# quick: 20 pjdfstest files, fsx 2 variants x 2,000 ops, fsstress 2,000 ops on the image
#        tier; on the cluster tier 20 pjdfstest files and fsx 2 variants x 2,000 ops (files
#        change through versions since issue 12; no fsstress there yet). Used by `make test`
#        (tests/cli/conformance_quick.sh).
# TIERS: "image", "cluster" or "image,cluster" (the default).
# PJDFSTEST=REGEX in the environment: only the pjdfstest files whose path (./rename/24.t)
# matches the extended regex, and no fsx/fsstress: `PJDFSTEST='rename/24|mkdir/|rmdir/'
# mk/conformance.sh build full cluster` reruns a few files.
# Needs root (pjdfstest switches users; FUSE allow_other) and the suites' build tools; when
# they are missing it says what is missing and exits 77 (skip).
# Nothing of the suites is copied into the project; they build, and their logs go, under
# build/suites/ (logs: SUITE-TIER-MODE.log).
set -u
build=${1:?usage: mk/conformance.sh BUILD [full|quick]}
mode=${2:-full}
tiers=${3:-image,cluster}
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "$build" && pwd)
P=$build/petrel
# The pinned snapshots: $PETREL_SUITES, else ../shared/suites beside the project, else the
# workplace's shared folder (a clean clone elsewhere, e.g. in CI, finds them there).
suites_src=${PETREL_SUITES:-$root/../shared/suites}
[ -d "$suites_src" ] || [ ! -d /work/shared/suites ] || suites_src=/work/shared/suites
out=$root/build/suites # shared by every build tree (build/san too): the suites build once
PJD_TAR=pjdfstest-85a8aea.tar.gz
XFS_TAR=xfstests-63a2972.tar.gz
SEED=${CONFORMANCE_SEED:-1234}

say() { printf '%s\n' "$*"; }
skip() {
    say "conformance: skipped: $*"
    exit 77
}

[ "$(id -u)" = 0 ] || skip "needs root (pjdfstest switches users, FUSE needs allow_other)"
[ -e /dev/fuse ] || skip "no /dev/fuse"
command -v fusermount3 >/dev/null || skip "no fusermount3 (apt-get install fuse3)"
[ -x "$P" ] || skip "no $P (run make first)"
[ -f "$suites_src/$PJD_TAR" ] || skip "no $suites_src/$PJD_TAR"
mkdir -p "$out"

# --- building the suites (once; a stamp file records success) ---------------------------------
build_pjdfstest() {
    local d=$out/pjdfstest
    [ -f "$d/.built" ] && return 0
    for t in autoreconf make cc; do
        command -v $t >/dev/null || { say "conformance: pjdfstest needs $t (apt-get install autoconf automake libtool)"; return 1; }
    done
    rm -rf "$d" && tar xzf "$suites_src/$PJD_TAR" -C "$out" || return 1
    (cd "$d" && autoreconf -ifs && ./configure && make pjdfstest) > "$out/pjdfstest-build.log" 2>&1 ||
        { say "conformance: pjdfstest build failed (see $out/pjdfstest-build.log)"; return 1; }
    touch "$d/.built"
}

build_xfstests() {
    local d=$out/xfstests
    [ -f "$d/.built" ] && return 0
    [ -f "$suites_src/$XFS_TAR" ] || return 1
    rm -rf "$d" && tar xzf "$suites_src/$XFS_TAR" -C "$out" || return 1
    (cd "$d" && make include/builddefs && make include lib && make ltp) > "$out/xfstests-build.log" 2>&1 ||
        { say "conformance: fsx/fsstress build failed (apt packages in $suites_src/README.md; see $out/xfstests-build.log)"; return 1; }
    [ -x "$d/ltp/fsx" ] && [ -x "$d/ltp/fsstress" ] || return 1
    touch "$d/.built"
}

# The suites' build tools (their README's list), installed when missing, as root with apt-get,
# best effort: a failed install only means the suite is skipped with its reason.
SUITE_PKGS="autoconf automake libtool xfslibs-dev uuid-dev libattr1-dev libacl1-dev libaio-dev
liburing-dev libcap-dev libgdbm-dev libgdbm-compat-dev attr acl bc gawk xfsprogs"
if { [ ! -f "$out/pjdfstest/.built" ] || [ ! -f "$out/xfstests/.built" ]; } &&
    ! command -v autoreconf >/dev/null && command -v apt-get >/dev/null; then
    say "conformance: installing the suites' build tools (apt-get, log in $out/apt.log)"
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $SUITE_PKGS \
        > "$out/apt.log" 2>&1 ||
        { apt-get update -qq > /dev/null 2>&1 &&
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
                $SUITE_PKGS >> "$out/apt.log" 2>&1; } ||
        say "conformance: could not install the suites' build tools (see $out/apt.log)"
fi

have_pjd=0 have_xfs=0
build_pjdfstest && have_pjd=1
build_xfstests && have_xfs=1
[ $have_pjd = 1 ] || [ $have_xfs = 1 ] || skip "neither suite could be built"

# --- mounts ---------------------------------------------------------------------------------
work=$(mktemp -d "${TMPDIR:-/tmp}/petrel-conf.XXXXXX")
chmod 755 "$work"
mnt=$work/mnt
mount_pid=
cluster_pid=
cleanup() {
    cd / || true
    if mountpoint -q "$mnt" 2>/dev/null; then
        fusermount3 -u "$mnt" 2>/dev/null || fusermount3 -u -z "$mnt" 2>/dev/null
    fi
    [ -n "$mount_pid" ] && wait "$mount_pid" 2>/dev/null
    if [ -n "$cluster_pid" ]; then
        kill -TERM "$cluster_pid" 2>/dev/null
        wait "$cluster_pid" 2>/dev/null
    fi
    rm -rf "$work"
}
trap cleanup EXIT

# Mount STORE at $mnt in the foreground of a background job; wait (bounded) for the mount.
mount_store() {
    mkdir -p "$mnt"
    "$P" mount "$1" "$mnt" -f -o allow_other,default_permissions 2> "$work/mount.err" &
    mount_pid=$!
    local i
    for i in $(seq 1 200); do
        mountpoint -q "$mnt" && return 0
        kill -0 "$mount_pid" 2>/dev/null || break
        read -r -t 0.05 < /dev/zero 2>/dev/null || true
    done
    say "conformance: mount of $1 failed: $(cat "$work/mount.err")"
    return 1
}

unmount_store() {
    cd / || true
    fusermount3 -u "$mnt" 2>/dev/null || fusermount3 -u -z "$mnt"
    wait "$mount_pid" 2>/dev/null
    mount_pid=
}

# --- pjdfstest: each file run alone; passed = "ok" lines, total = the plans -----------------
run_pjdfstest() { # tier dir
    local tier=$1 dir=$2 pjd=$out/pjdfstest files f plan ok total=0 passed=0
    local log=$out/pjdfstest-$tier-$mode.log
    : > "$log"
    files=$(cd "$pjd/tests" && find . -name '*.t' | sort)
    [ -n "${PJDFSTEST:-}" ] && files=$(printf '%s\n' "$files" | grep -E -- "$PJDFSTEST")
    if [ "$mode" = quick ]; then
        # every 10th file but those that need hard links (EPERM here, docs/CLI.md)
        local skip='^\./link/|^\./rename/(00|23|24)\.t|^\./unlink/(00|14)\.t'
        # open/25 (a write at 2 GiB into a new write-only file) passes on the cluster since
        # issue 12's holes; kept out of the quick selection so that it stays the same files
        [ "$tier" = cluster ] && skip="$skip"'|^\./open/25\.t'
        files=$(printf '%s\n' "$files" | grep -v -E "$skip" | awk 'NR % 10 == 1' | head -n 20)
        # and on the image, the setuid/setgid bits a write by another user clears
        [ "$tier" = image ] && files=$(printf '%s\n./chmod/12.t\n' "$files" | sort -u)
    fi
    for f in $files; do
        local res
        res=$(cd "$dir" && timeout 300 sh "$pjd/tests/$f" 2>&1)
        plan=$(printf '%s\n' "$res" | sed -n 's/^1\.\.\([0-9][0-9]*\).*/\1/p' | head -n 1)
        # TAP: "not ok ... # TODO" is an expected failure and counts as passed, as prove does
        ok=$(printf '%s\n' "$res" | grep -c -E '^ok |^not ok .*# TODO')
        [ -n "$plan" ] || plan=$ok
        total=$((total + plan))
        passed=$((passed + ok))
        if [ "$ok" != "$plan" ]; then
            printf '== %s: %s/%s\n' "$f" "$ok" "$plan" >> "$log"
            printf '%s\n' "$res" | grep -v -E '^ok |^not ok .*# TODO' >> "$log"
        fi
    done
    say "pjdfstest $tier: $passed/$total"
}

# --- fsx: 8 variants (full) or 2 (quick) ------------------------------------------------------
run_fsx() { # tier dir
    local tier=$1 dir=$2 fsx=$out/xfstests/ltp/fsx n=20000 passed=0 total=0 v i=0
    local log=$out/fsx-$tier-$mode.log
    [ "$mode" = quick ] && n=2000
    : > "$log"
    local variants=("" "-R -W" "-A" "-U" "-f" "-e 1" "-r 4096 -w 4096 -t 4096" "-l 8388608 -o 1048576")
    [ "$mode" = quick ] && variants=("" "-R -W")
    for v in "${variants[@]}"; do
        i=$((i + 1))
        total=$((total + 1))
        # shellcheck disable=SC2086 # the variant is a list of options
        if (cd "$dir" && timeout 900 "$fsx" -q -S "$SEED" -N "$n" $v "fsx.$i") >> "$log" 2>&1; then
            passed=$((passed + 1))
        else
            printf '== variant %d (%s) failed\n' "$i" "$v" >> "$log"
        fi
    done
    say "fsx $tier: $passed/$total"
}

# --- fsstress: the same seed on tmpfs and on the mount must give the same tree --------------
tree_of() { # dir: one line per entry: path, type, size, mode, link target, content hash
    (cd "$1" && find . -mindepth 1 -printf '%P %y %s %m %l\n' | sort) |
        while read -r p y s m l; do
            if [ "$y" = f ]; then
                printf '%s %s %s %s %s\n' "$p" "$y" "$s" "$m" "$(md5sum < "$1/$p" | cut -c1-32)"
            elif [ "$y" = d ]; then
                printf '%s %s %s %s\n' "$p" "$y" - "$m"
            else
                printf '%s %s %s %s %s\n' "$p" "$y" - "$m" "$l"
            fi
        done
}

run_fsstress() { # tier dir
    local tier=$1 dir=$2 fss=$out/xfstests/ltp/fsstress n=20000 ref=$work/tmpfs
    local log=$out/fsstress-$tier-$mode.log
    [ "$mode" = quick ] && n=2000
    mkdir -p "$ref"
    if ! mountpoint -q "$ref"; then mount -t tmpfs -o size=2g tmpfs "$ref" || return 1; fi
    rm -rf "${ref:?}"/*
    # off: hard links (EPERM on Petrel), rename with RENAME_EXCHANGE or RENAME_WHITEOUT
    # (EINVAL on Petrel): each would make the trees differ by design
    local ops=(-f link=0 -f rexchange=0 -f rwhiteout=0)
    (cd "$ref" && "$fss" -d "$ref/t" -n "$n" -p 1 -s "$SEED" "${ops[@]}" -v) > "$work/fss-ref.log" 2>&1
    (cd "$dir" && "$fss" -d "$dir/t" -n "$n" -p 1 -s "$SEED" "${ops[@]}" -v) > "$work/fss-mnt.log" 2>&1
    tree_of "$ref/t" > "$work/tree-ref"
    tree_of "$dir/t" > "$work/tree-mnt"
    umount "$ref" 2>/dev/null
    if cmp -s "$work/tree-ref" "$work/tree-mnt"; then
        say "fsstress $tier: 1/1 (tree identical to tmpfs, $(wc -l < "$work/tree-ref") entries, seed $SEED)"
    else
        diff "$work/tree-ref" "$work/tree-mnt" > "$log"
        diff "$work/fss-ref.log" "$work/fss-mnt.log" >> "$log"
        say "fsstress $tier: 0/1 (trees differ, seed $SEED: $log)"
    fi
}

run_tier() { # tier store
    local tier=$1 store=$2
    mount_store "$store" || return 1
    mkdir -p "$mnt/conf" && { chmod 0777 "$mnt/conf" 2>/dev/null || true; } # pjdfstest switches users
    if [ $have_pjd = 1 ]; then
        mkdir "$mnt/conf/pjd" && run_pjdfstest "$tier" "$mnt/conf/pjd"
    fi
    if [ $have_xfs = 1 ] && [ -z "${PJDFSTEST:-}" ]; then
        mkdir "$mnt/conf/fsx" && run_fsx "$tier" "$mnt/conf/fsx"
    fi
    if [ $have_xfs = 1 ] && [ -z "${PJDFSTEST:-}" ] && { [ "$tier" = image ] || [ "$mode" = full ]; }; then
        mkdir "$mnt/conf/fss" && run_fsstress "$tier" "$mnt/conf/fss"
    fi
    unmount_store
}

size=1G
[ "$mode" = quick ] && size=256M
case ",$tiers," in *,image,*)
    "$P" mkfs "$work/image.img" --size $size > /dev/null || { say "conformance: mkfs failed"; exit 1; }
    run_tier image "$work/image.img" ;;
esac

if case ",$tiers," in *,cluster,*) true ;; *) false ;; esac && "$P" cluster --help > /dev/null 2>&1; then
    "$P" cluster start --dir "$work/cluster" > "$work/cluster.out" 2>&1 &
    cluster_pid=$!
    addr=
    for i in $(seq 1 600); do
        addr=$(grep -o 'petrel://[^ ]*' "$work/cluster.out" | head -n 1)
        [ -n "$addr" ] && break
        kill -0 "$cluster_pid" 2>/dev/null || break
        read -r -t 0.1 < /dev/zero 2>/dev/null || true
    done
    if [ -n "$addr" ]; then
        run_tier cluster "$addr"
    else
        say "conformance: cluster tier skipped: the local cluster did not start ($work/cluster.out)"
    fi
fi
say "conformance: logs in $out"

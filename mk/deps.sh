#!/bin/sh
# Install what the build needs and is missing. Checks each pkg-config module (and the tools the
# tests use); when something is absent and we are root, installs the Debian packages with
# apt-get; otherwise says what to install and fails. Installs nothing that is already there.
set -u
need_pkgs=""
add() { case " $need_pkgs " in *" $1 "*) ;; *) need_pkgs="$need_pkgs $1" ;; esac; }

command -v pkg-config >/dev/null 2>&1 || add pkg-config
for mod in "$@"; do
    if command -v pkg-config >/dev/null 2>&1 && pkg-config --exists "$mod" 2>/dev/null; then
        continue
    fi
    case "$mod" in
        libuv) add libuv1-dev ;;
        raft) add libraft-dev ;;
        lmdb) add liblmdb-dev ;;
        fuse3) add libfuse3-dev ;;
        libisal) add libisal-dev ;;
        libxxhash) add libxxhash-dev ;;
        libsodium) add libsodium-dev ;;
        libmicrohttpd) add libmicrohttpd-dev ;;
        *) echo "deps: no Debian package known for pkg-config module '$mod'" >&2; exit 1 ;;
    esac
done
# Tools the tests drive: fusermount3 (FUSE mounts), python3 (xattr checks), script (terminal
# progress checks), tar (archives through mounts).
command -v fusermount3 >/dev/null 2>&1 || add fuse3
command -v python3 >/dev/null 2>&1 || add python3
command -v script >/dev/null 2>&1 || add bsdutils
command -v tar >/dev/null 2>&1 || add tar
# promtool (Debian prometheus, ~13 s to install): the cluster tests check every /metrics with it.
command -v promtool >/dev/null 2>&1 || add prometheus

# Optional: the Cortex-M cross compiler for `make size` (and the Cortex-M0 build of examples/).
# Best effort: installed when we are root and apt-get can; otherwise every target that needs it
# says it is skipped. Tried once per machine (a marker under /var/tmp), so a failing install
# does not slow down every make.
optional_arm() {
    command -v arm-none-eabi-gcc >/dev/null 2>&1 && return 0
    marker=/var/tmp/petrel-deps-arm-tried
    [ -e "$marker" ] && return 0
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "deps: installing gcc-arm-none-eabi libnewlib-arm-none-eabi (optional: make size)"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >/dev/null 2>&1 || true
        if ! apt-get install -y -qq --no-install-recommends gcc-arm-none-eabi \
                libnewlib-arm-none-eabi >/tmp/petrel-deps-arm.log 2>&1; then
            echo "deps: gcc-arm-none-eabi not installed (see /tmp/petrel-deps-arm.log):" \
                "make size will be skipped"
        fi
        : > "$marker" 2>/dev/null || true
    fi
    return 0
}
optional_arm

# Optional: headless Chromium for the status-page test (tests/cluster/test_web_proc.c), which
# checks the raw HTML alone without it. Large (~80 MB download, ~290 MB installed, ~30 s here),
# so best effort and tried once per machine, like the cross compiler.
optional_chromium() {
    command -v chromium >/dev/null 2>&1 && return 0
    marker=/var/tmp/petrel-deps-chromium-tried
    [ -e "$marker" ] && return 0
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "deps: installing chromium (optional: the status page test in a real browser)"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >/dev/null 2>&1 || true
        if ! apt-get install -y -qq --no-install-recommends chromium \
                >/tmp/petrel-deps-chromium.log 2>&1; then
            echo "deps: chromium not installed (see /tmp/petrel-deps-chromium.log): the status" \
                "page is checked in its HTML only"
        fi
        : > "$marker" 2>/dev/null || true
    fi
    return 0
}
optional_chromium

[ -z "$need_pkgs" ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "deps: installing$need_pkgs"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null 2>&1 || true
    # shellcheck disable=SC2086
    if ! apt-get install -y -qq --no-install-recommends $need_pkgs >/tmp/petrel-deps.log 2>&1; then
        echo "deps: apt-get install failed; see /tmp/petrel-deps.log" >&2
        tail -5 /tmp/petrel-deps.log >&2
        exit 1
    fi
    exit 0
fi
echo "deps: missing packages:$need_pkgs — install them (as root: apt-get install$need_pkgs)" >&2
exit 1

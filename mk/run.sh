#!/bin/sh
# make run: what a new user sees first. Starts Petrel from ./var and mounts it at ./mnt:
#  - a local cluster (petrel cluster start --dir ./var/cluster) mounted with FUSE, when this
#    build has the cluster;
#  - otherwise a demo flash image (./var/demo.img, created once) mounted with FUSE, when this
#    build has the flash engine;
#  - otherwise says plainly that neither tier is in this build.
# Ctrl-C, SIGTERM, a hang-up or a closed output pipe (`make run | tee log`, then Ctrl-C kills
# tee too) unmounts and stops everything this script started (by process id), then exits: the
# stop path ignores SIGPIPE and unmounts before it prints anything.
set -u
build=$1
P="$build/petrel"
var=./var
mnt=./mnt
cluster_pid=
mount_pid=

say() { printf '%s\n' "$*"; }

stop() {
    trap '' INT TERM HUP PIPE
    if [ -n "$mount_pid" ] || mountpoint -q "$mnt" 2>/dev/null; then
        fusermount3 -u "$mnt" 2>/dev/null || fusermount3 -u -z "$mnt" 2>/dev/null
    fi
    [ -n "$mount_pid" ] && wait "$mount_pid" 2>/dev/null
    if [ -n "$cluster_pid" ]; then
        kill -TERM "$cluster_pid" 2>/dev/null
        wait "$cluster_pid" 2>/dev/null
    fi
    say ""
    say "run: unmounted $mnt and stopped; data stays in $var"
    exit 0
}

# Until the mount serves (or its process ended: its own error is on the terminal already).
wait_mounted() {
    i=0
    while [ $i -lt 300 ] && ! mountpoint -q "$mnt" 2>/dev/null; do
        kill -0 "$mount_pid" 2>/dev/null || { say "run: the mount did not start"; stop; }
        sleep 0.1
        i=$((i + 1))
    done
}

if ! [ -c /dev/fuse ] || ! command -v fusermount3 >/dev/null 2>&1; then
    say "run: FUSE is not available here (no /dev/fuse or fusermount3); cannot mount."
    say "run: the CLI works without it: $P --help"
    exit 1
fi
mkdir -p "$var" "$mnt"
if mountpoint -q "$mnt"; then
    say "run: $mnt is already mounted; unmount it first (fusermount3 -u $mnt)"
    exit 1
fi
trap stop INT TERM HUP PIPE

if "$P" cluster --help >/dev/null 2>&1 && "$P" registry --help >/dev/null 2>&1; then
    log="$var/cluster.log"
    : > "$log"
    "$P" cluster start --dir "$var/cluster" --http 127.0.0.1:0 >"$log" 2>&1 &
    cluster_pid=$!
    addr=
    i=0
    while [ $i -lt 300 ]; do
        addr=$(grep -o 'petrel://[0-9.]*:[0-9]*' "$log" | head -n 1)
        [ -n "$addr" ] && break
        kill -0 "$cluster_pid" 2>/dev/null || break
        sleep 0.1
        i=$((i + 1))
    done
    if [ -z "$addr" ]; then
        say "run: the cluster did not start; its log ($log):"
        tail -n 20 "$log"
        stop
    fi
    "$P" mount "$addr" "$mnt" -f &
    mount_pid=$!
    wait_mounted
    say ""
    say "Petrel: a local cluster is running (data in $var/cluster), mounted at $mnt"
    say "  registry:   $addr"
    page=$(grep -o 'status page http://[0-9.]*:[0-9]*/' "$log" | head -n 1 | sed 's/^status page //')
    [ -n "$page" ] && say "  status:     $page  (metrics at /metrics of each server)"
    say "Try:"
    if "$P" cdc --help >/dev/null 2>&1; then
        say "  cp -r ./docs $mnt/; echo note >> $mnt/docs/CLI.md   # a change becomes a new version"
        say "  ls -l $mnt/docs; cat $mnt/docs/CLI.md"
        say "  $P cp -r ./src $addr/src"
    else
        say "  (this build has no CDC yet, so directories cannot be made: files go in the root)"
        say "  cp ./README.md $mnt/                  # written once, linked on close"
        say "  ls -l $mnt; cat $mnt/README.md"
        say "  $P cp ./Makefile $addr/Makefile"
    fi
    say "  $P ls -l $addr/"
    say "  $P cluster status $addr"
    say "Ctrl-C unmounts and stops the cluster; the data stays in $var/cluster."
elif "$P" mkfs --help >/dev/null 2>&1; then
    img="$var/demo.img"
    if [ ! -f "$img" ]; then
        "$P" mkfs "$img" --size 32M || exit 1
    fi
    "$P" mount "$img" "$mnt" -f &
    mount_pid=$!
    wait_mounted
    say ""
    say "Petrel: this build has no cluster yet, so 'make run' mounts a demo flash image instead."
    say "  image:   $img (32 MiB), mounted read-write at $mnt"
    say "Try:"
    say "  cp -r ./docs $mnt/; ls -l $mnt/docs"
    say "  $P ls -l $img:/docs"
    say "  $P cp ./README.md $img:/readme.md && $P cat $img:/readme.md   (after Ctrl-C: one user at a time)"
    say "  $P info $img; $P fsck $img"
    say "Ctrl-C unmounts; the image keeps its contents for the next 'make run'."
else
    say "run: this build has neither the flash engine nor the cluster yet; nothing to mount."
    say "run: the CLI works on local paths: $P --help"
    exit 1
fi
wait "$mount_pid"
say "run: the mount ended"
mount_pid=
stop

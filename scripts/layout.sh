#!/bin/sh
# The cluster's layout rule (docs/DESIGN.md, "Cluster layout"): each package of src/cluster
# may include only the packages below it, so dependencies point one way:
#
#   proto, env, storage, ec  <-  net  <-  client  <-  replica  <-  registry, blocks, shard, cdc
#
# (the client depends on proto and net alone; servers never include each other). The front
# end (src/vfs, src/fuse) reaches the cluster only through the public headers
# (include/petrel/*.h), and the flash engine (src/common, src/fs, src/bd) includes nothing of
# the cluster. Reads every #include "..." line; prints each include that points the wrong way
# and exits 1 if there is one. usage: scripts/layout.sh [ROOT]
set -u
root=${1:-.}
cd "$root" || exit 2

# package -> the cluster packages it may include (itself always)
allowed() {
    case $1 in
    proto | storage | ec | metrics) echo "" ;;
    env) echo "metrics" ;;
    net) echo "proto metrics" ;;
    client) echo "proto net ec" ;;
    replica) echo "proto env storage net client ec metrics" ;;
    registry) echo "proto env storage net client replica metrics" ;; # a registry group is a replica
    blocks) echo "proto env storage net client ec metrics" ;;
    shard | cdc) echo "proto env storage net client replica ec metrics" ;;
    *) echo "?" ;;
    esac
}

# Transitional exceptions, each with its reason (file, included header):
#  - storage/durable.h is reached through net/durable.h by blocks_store.c until the branch
#    that rewrites that file over the env merges; no other file may use the forwarder.
exception() {
    case "$1 $2" in
    "src/cluster/net/durable.h cluster/storage/durable.h") return 0 ;;
    "src/cluster/blocks/blocks_store.c cluster/net/durable.h") return 0 ;;
    esac
    return 1
}

bad=0
report() {
    echo "layout: $1 includes \"$2\": $3"
    bad=1
}

files=$(find src -name '*.[ch]' | sort)
for f in $files; do
    part=${f#src/}
    top=${part%%/*}
    incs=$(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$f")
    for inc in $incs; do
        case $top in
        common | fs | bd)
            case $inc in
            cluster/* | petrel/client.h | petrel/vfs.h)
                report "$f" "$inc" "the flash engine depends on nothing above it" ;;
            esac
            ;;
        vfs | fuse)
            case $inc in
            cluster/*) report "$f" "$inc" "the front end uses the cluster through include/petrel only" ;;
            esac
            ;;
        cluster)
            pkg=${part#cluster/}
            pkg=${pkg%%/*}
            case $inc in
            cluster/*) ;;
            *) continue ;;
            esac
            dep=${inc#cluster/}
            dep=${dep%%/*}
            [ "$dep" = "$pkg" ] && continue
            exception "$f" "$inc" && continue
            ok=$(allowed "$pkg")
            if [ "$ok" = "?" ]; then
                report "$f" "$inc" "package $pkg has no place in the layout (add it to scripts/layout.sh and DESIGN.md)"
                continue
            fi
            case " $ok " in
            *" $dep "*) ;;
            *) report "$f" "$inc" "$pkg may include only: ${ok:-nothing of the cluster}" ;;
            esac
            ;;
        esac
    done
done
# The forwarder has exactly one user.
users=$(grep -rl '"cluster/net/durable.h"' src tests bench fuzz 2>/dev/null | grep -v '^src/cluster/blocks/blocks_store.c$')
for u in $users; do report "$u" "cluster/net/durable.h" "use cluster/storage/durable.h"; done
if [ $bad = 0 ]; then echo "layout: ok ($(echo "$files" | wc -l) files)"; fi
exit $bad

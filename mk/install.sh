#!/bin/sh
# `make install`: the flash engine library alone, for firmware and host projects that link it
# without the cluster's dependencies: PREFIX/lib/libpetrel-fs.a, PREFIX/include/petrel/*.h (the
# engine's headers only) and PREFIX/lib/pkgconfig/petrel-fs.pc. DESTDIR, when set, is prepended
# to every path written (staged installs); the .pc file names PREFIX.
# usage: mk/install.sh DESTDIR PREFIX LIBRARY HEADER...
set -eu
destdir=$1 prefix=$2 lib=$3
shift 3
case $prefix in
    /*) ;;
    *) echo "install: PREFIX must be an absolute path (got '$prefix')" >&2; exit 1 ;;
esac
version=$(sed -n 's/^#define PETREL_VERSION "\(.*\)"$/\1/p' src/cli/main.c)
[ -n "$version" ] || { echo "install: no PETREL_VERSION in src/cli/main.c" >&2; exit 1; }
root=$destdir$prefix
mkdir -p "$root/lib/pkgconfig" "$root/include/petrel"
cp "$lib" "$root/lib/libpetrel-fs.a"
for h in "$@"; do cp "$h" "$root/include/petrel/"; done
cat > "$root/lib/pkgconfig/petrel-fs.pc" << PC
prefix=$prefix
libdir=\${prefix}/lib
includedir=\${prefix}/include

Name: petrel-fs
Description: Petrel flash engine: a power-loss-safe filesystem for flash and block devices
Version: $version
Libs: -L\${libdir} -lpetrel-fs
Cflags: -I\${includedir}
PC
echo "install: $root/lib/libpetrel-fs.a, $root/include/petrel/ ($# headers)," \
    "$root/lib/pkgconfig/petrel-fs.pc"

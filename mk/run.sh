#!/bin/sh
# make run: what a new user sees first.
build=$1
echo "Petrel is built: $build/petrel"
"$build/petrel" --help

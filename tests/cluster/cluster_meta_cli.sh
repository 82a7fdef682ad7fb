#!/usr/bin/env bash
# petrel shard / petrel cdc argument checking: bad or missing options give one error line and
# a non-zero exit, never a crash or a running server.
. tests/lib.sh
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
expect_fail shard_needs_options "are required" "$PETREL_BIN" shard --dir "$d/s"
expect_fail shard_bad_shard "bad --shard" "$PETREL_BIN" shard --registry 127.0.0.1:1 --shard 300 --replica 0 --dir "$d/s"
expect_fail shard_bad_replica "bad --replica" "$PETREL_BIN" shard --registry 127.0.0.1:1 --shard 0 --replica x --dir "$d/s"
expect_fail shard_bad_group_size "--replicas must be 1, 3 or 5" "$PETREL_BIN" shard --registry 127.0.0.1:1 --shard 0 --replica 0 --replicas 2 --dir "$d/s"
expect_fail shard_replica_outside_group "--replica must be below --replicas" "$PETREL_BIN" shard --registry 127.0.0.1:1 --shard 0 --replica 3 --replicas 3 --dir "$d/s"
expect_fail shard_extra_argument "unexpected argument" "$PETREL_BIN" shard --registry 127.0.0.1:1 --shard 0 --replica 0 --dir "$d/s" extra
expect_fail shard_unwritable_dir "cannot" "$PETREL_BIN" shard --registry 127.0.0.1:1 --shard 0 --replica 0 --dir /proc/petrel-no
expect_fail cdc_needs_options "are required" "$PETREL_BIN" cdc --registry 127.0.0.1:1
expect_fail cdc_bad_shards "bad --shards" "$PETREL_BIN" cdc --registry 127.0.0.1:1 --replica 0 --shards 0 --dir "$d/c"
expect_fail cdc_bad_option "bad option" "$PETREL_BIN" cdc --nope
expect_ok shard_help "$PETREL_BIN" shard --help
expect_ok cdc_help "$PETREL_BIN" cdc --help
finish

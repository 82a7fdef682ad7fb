#!/usr/bin/env bash
# Mutation check: apply deliberate bugs one at a time to a copy of the committed tree, build,
# run the simulation (or, for parts not yet in the simulator, the tests that cover them), and
# print a table: mutant -> caught by ... / MISSED.
#
# usage: scripts/mutants.sh [SEEDS]     (make mutants [MUTANT_SEEDS=N])
# MUTANT_ONLY=substring runs only the mutants whose name contains it.
# A mutant that no longer applies (the code moved) is reported as NOT APPLIED, never as caught.
set -u
seeds=${1:-200}
root=$(git rev-parse --show-toplevel)
work=$(mktemp -d /tmp/petrel-mutants.XXXXXX)
trap 'rm -rf "$work"' EXIT
git -C "$root" archive HEAD | tar -x -C "$work"
cd "$work" || exit 1
jobs=2
log=$work/mutant.log

# name | file | perl substitution (applied with -0pi) | test command | what it breaks
mutants=(
"fsync-skipped-before-append-cb|src/cluster/replica/raft_store.c|s/(s->stats.append_writes\+\+;\n\s*)pt_env_fsync\(s->env, s->open_fd, queue_synced, s\);/\$1pt_env_timer(s->env, 0, sync_skipped, s);/; s/(static void snapshot_synced\(void \*ctx, int status\);)/static void sync_skipped(void *ctx) { queue_synced(ctx, 0); }\n\$1/|sim|raft_io runs append callbacks without fsync'ing the log"
"entry-applied-twice|src/cluster/shard/shard_fsm.c|s/(rc = pt_shard_sm_apply\(f->sm, buf->base, buf->len, &f->out\);)/\$1 if (rc == 0) \$1/|sim|the FSM applies every committed entry twice"
"follower-answers-reads|src/cluster/replica/replica.c|s/(int pt_replica_read\(.*?\n\{\n    struct read_wait \*w;\n)/\$1    done(ctx, 0);\n    return 0;\n/s|sim|any replica answers reads from its own store"
"deposed-leader-answers-reads|src/cluster/replica/replica.c|s/    if \(!pt_replica_can_serve\(r\)\) return -PT_ENOTLEADER;\n    w = calloc/    if (pt_replica_is_leader(r)) { done(ctx, 0); return 0; }\n    w = calloc/|sim|a leader answers reads without a read barrier (stale after it is deposed)"
"unlink-inode-ignores-expect|src/cluster/shard/shard_sm.c|s/    if \(checked && e.id != q->expect\) return -PT_ESTALE;\n    if \(e.type == PT_TYPE_DIR\)/    if (e.type == PT_TYPE_DIR)/|sim|UNLINK_INODE removes whatever the name holds now"
"link-replace-ignores-expect|src/cluster/shard/shard_sm.c|s/        if \(e.id != q->expect\) return -PT_ESTALE;\n        if \(\(rc = replace_target/        if ((rc = replace_target/|sim|LINK_REPLACE replaces a file the client never saw"
"rename-inode-ignores-source|src/cluster/shard/shard_sm.c|s/    if \(checked && e.id != q->target\) return -PT_ESTALE;\n//|sim|RENAME_INODE moves whatever the name holds now"
"snapshot-load-reads-before-log|src/cluster/replica/raft_store.c|s/\(s->start_index <= si && s->loaded\[si - s->start_index\].term != s->loaded_snap->term\)/s->loaded[si - s->start_index].term != s->loaded_snap->term/|sim-unit|load compares the snapshot's term one slot before the log (drops the log after an install)"
"append-failure-acknowledged|src/cluster/replica/raft_store.c|s/(pt_raft_store_fail\(s, .fsync of the log., status\);\n)\s*queue_park_inflight\(s\);\n/\$1/|sim-unit|a failed fsync completes the appends as durable"
"follower-commits-unproved-tail|src/cluster/replica/raft_io.c|s/        if \(m.append_entries.leader_commit > verified\) m.append_entries.leader_commit = verified;\n//|sim-unit|a follower commits entries beyond what the AppendEntries proved (libraft 0.15)"
"follower-answers-unproved-tail|src/cluster/replica/raft_io.c|s/    if \(s->reply_cap && r->last_log_index > s->reply_cap\) r->last_log_index = s->reply_cap;\n//|sim-unit|a follower answers success with a stale tail the leader never had (libraft 0.15)"
"follower-answer-below-snapshot|src/cluster/replica/raft_io.c|s/    if \(r->last_log_index < s->snap_index\) r->last_log_index = s->snap_index;\n//|sim-unit|a follower with a newer snapshot than the leader's stays stuck behind it"
"segment-header-unsynced|src/cluster/replica/raft_store.c|s/    if \(s->open_unsynced\) return header_sync_start\(s\);/    if (0 && s->open_unsynced) return header_sync_start(s);/; s/        if \(s->open_unsynced && s->open_fd >= 0 &&/        if (0 && s->open_unsynced && s->open_fd >= 0 &&/|sim-unit|records go behind a new segment header that is not durable yet"
"load-refuses-unsynced-middle-seg|src/cluster/replica/raft_store.c|s/if \(rc == -PT_ECORRUPT && len <= PT_RAFT_SEG_HEADER\)/if (rc == -PT_ECORRUPT \&\& last \&\& len <= PT_RAFT_SEG_HEADER)/|sim-unit|load refuses an empty never-synced segment that is not the last"
"follower-rejects-inside-snapshot|src/cluster/replica/raft_io.c|s/        if \(r->rejected > s->snap_index\) return;/        return;/|sim-unit|a follower rejects probes inside its snapshot one index at a time (stuck behind)"
"wrong-page-crc-accepted|src/cluster/blocks/blocks_store.c|s/(pt_get_le32\(crcs \+ \(size_t\)4 \* i\)\)\n\s*)err = -PT_ECORRUPT;/\$1err = 0;/|simblocks|a block read returns a page whose CRC does not match"
"no-post-write-verify|src/cluster/blocks/blocks_store.c|s/if \(!err\) err = verify_written\(op->env, op->fd, op->header, op->crcs, op->pages, op->size\);/(void)verify_written;/|simblocks|the block store skips reading back what it wrote"
"retried-write-skips-dir-sync|src/cluster/blocks/blocks_store.c|s/write_complete\(op, pt_env_fsync_dir\(s->env, sub\)\);/(void)sub; write_complete(op, 0);/; s/if \(err\) pt_env_unlink\(op->env, op->final\);//|simblocks|a retried block write is acknowledged while its name may not be durable"
"block-fsync-skipped|src/cluster/blocks/blocks_store.c|s/pt_env_fsync\(s->env, op->fd, write_synced, op\);/write_synced(op, 0);/|simblocks|a block write is acknowledged without fsync'ing its file"
"block-dir-fsync-skipped|src/cluster/blocks/blocks_store.c|s/err = pt_env_fsync_dir\(op->env, sub\);\n/err = 0; (void)sub;\n/|simblocks|a block write is acknowledged before its name is durable"
"retried-erase-skips-dir-sync|src/cluster/blocks/blocks_store.c|s/if \(err == -PT_ENOENT\) return pt_env_fsync_dir\(s->env, sub\);/if (err == -PT_ENOENT) return 0;/|simblocks|an erase of an absent block is proven while an earlier unlink may not be durable"
"erase-dir-fsync-skipped|src/cluster/blocks/blocks_store.c|s/    return pt_env_fsync_dir\(s->env, sub\);\n\}/    return 0;\n}/|simblocks|a block erase is proven before the unlink is durable"
"no-rename-loop-check|src/cluster/cdc/cdc_steps.c|s/if \(rc == 1\) rc = -PT_ELOOP;/if (rc == 1) rc = 0;/|cdc|the CDC lets a directory move under itself"
"ec-decode-row-off-by-one|src/cluster/ec/ec.c|s/ec->matrix \+ \(size_t\)want\[i\] \* d;/ec->matrix + (size_t)(want[i] + 1) * d;/|rs|RS decoding uses the code row after the wanted block's"
"rs-rebuilt-cell-unchecked|src/cluster/client/client.c|s/if \(petrel_crc32c\(0, cellp, r->cell\) != pt_span_cell_crc/if (0 \&\& petrel_crc32c(0, cellp, r->cell) != pt_span_cell_crc/|rs|a rebuilt cell is delivered without checking its cell CRC"
"rs-rebuild-without-parity|src/cluster/client/client.c|s/for \(b = 0; b < r->n \&\& n_have \+ m < r->d; b\+\+\) \{/for (b = 0; b < r->d \&\& n_have + m < r->d; b++) {/|rs|degraded reads never use parity blocks"
"rs-deliver-wrong-column|src/cluster/client/client.c|s/memcpy\(r->out \+ o, r->blk \+ k \* r->stride/memcpy(r->out + o, r->blk + ((k + 1) % r->d) * r->stride/|rs|RS reads take a cell from the neighbouring data block"
"repair-swap-before-certify|src/cluster/shard/shard_repair.c|s/            if \(g->t\[i\].written \x7c\x7c g->t\[i\].forget\) \{/            if (1) {/|simrepair|the shard leader swaps in a copy whose rebuild failed"
"repair-home-in-used-domain|src/cluster/shard/shard_repair.c|s/if \(o && strcmp\(o->domain, c->domain\) == 0\) clash = 1;/if (0 \&\& o \&\& strcmp(o->domain, c->domain) == 0) clash = 1;/|simrepair|repair picks a new home in a failure domain the span already uses"
"repair-no-domain-queue|src/cluster/shard/shard_repair.c|s/    take_domains\(r, g\);\n/    (void)take_domains;\n/|simrepair|spans with two blocks in one failure domain are never moved"
"repair-swap-keeps-old-index|src/cluster/shard/shard_sm.c|s/(replace_block_holders\(a, q, old_svc, new_svc\)\) != 0\) return rc;\n)    rc = mdb_del\(a->t, a->sm->blockidx, &key, NULL\);/\$1    rc = 0;/|simrepair|REPLACE_BLOCK leaves the old copy in the block index (referenced twice)"
"repair-stale-first-only|src/cluster/shard/shard_repair.c|s/        if \(n > 0\) break;\n/        break;\n/|simrepair|repair looks only at the first stale service, even one that holds nothing"
"repair-swap-drops-nothing|src/cluster/shard/shard_sm.c|s/    if \(\(rc = map_mdb\(mdb_put\(a->t, a->sm->dropped, &dkey, &dval, 0\)\)\) != 0\) return rc;\n    pt_enc_u8\(&a->out, 1\);/    (void)dkey;\n    (void)dval;\n    pt_enc_u8(\&a->out, 1);/|simrepair|REPLACE_BLOCK forgets the old copy (never erased by GC)"
"repair-unpaced|src/cluster/shard/repair_rebuild.c|s/    if \(!p->rate\) \{\n        p->bytes \+= len;/    if (1) {\n        p->bytes += len;/|simrepair|repair ignores --repair-rate"
"rs-bad-block-not-reported|src/cluster/client/client.c|s/(static void report_bad_block\(.*?\n\{\n)/\$1    if (file) return;\n/s|rs|degraded reads never queue the bad block for repair"
"rs-report-any-block|src/cluster/shard/shard_sm.c|s/    if \(i == n\) return -PT_ENOENT;\n    return repairq_record\(a, s.blocks\[i\].service/    return repairq_record(a, s.blocks[i].service/|rs|REPORT_BAD_BLOCK queues a block its span does not list"
"scrub-skips-last-page|src/cluster/blocks/blocks_scrub.c|s/(    count = PT_MIN\(SCRUB_CHUNK, st.size - sc->offset\);\n)/\$1    if (sc->offset + count >= st.size \&\& count > PT_BLOCK_PAGE_SIZE) count = (count - 1) \/ PT_BLOCK_PAGE_SIZE * PT_BLOCK_PAGE_SIZE;\n/; s/(    sc->offset \+= count;\n)/\$1    if (sc->offset + PT_BLOCK_PAGE_SIZE >= st.size) { sc->offset = st.size; sc->whole = st.crc; }\n/|scrub|the scrubber never reads the last page of a block"
"scrub-no-block-crc|src/cluster/blocks/blocks_scrub.c|s/        if \(sc->whole != st.crc\)/        if (0 \&\& sc->whole != st.crc)/|scrub|the scrubber trusts page CRCs without checking they combine to the block CRC"
"scrub-report-not-sent|src/cluster/blocks/blocks_server.c|s/(static void report_rotten\(struct pt_blocks_server \*b\)\n\{\n)/\$1    if (b) return;\n/|scrub|rotten blocks found by the scrubber never reach their shard"
"scrub-repair-swap-no-compare|src/cluster/shard/shard_sm.c|s/if \(s.blocks\[i\].block == q->target \&\& s.blocks\[i\].service == old_svc\) break;/if (s.blocks[i].block == q->target) break;/|scrub|REPLACE_BLOCK swaps without checking the span still lists the old copy"
"scrub-repair-rs-wrong-block|src/cluster/shard/repair_rebuild.c|s/unsigned want = b->lost;/unsigned want = (b->lost + 1) % pt_span_block_count(\&b->span);/|scrub|repair decodes the RS block next to the lost one"
"rebuild-budget-skipped|src/cluster/shard/repair_rebuild.c|s/    if \(!p->rate\) \{/    if (1) {/|simblocks|repair moves blocks without pacing them to --repair-rate"
"rebuild-swap-before-written|src/cluster/shard/repair_rebuild.c|s/        b->io->write\(b->io->ctx, b->new_addr, l->block, l->crc, b->out, bs, cert, write_done, b\);/        (void)cert; (void)write_done; finish(b, 0);/|simblocks|repair reports a block rebuilt (ready to swap) before its write is proven"
"rebuild-write-failure-ignored|src/cluster/shard/repair_rebuild.c|s/    finish\(b, status\);\n\}\n\n\/\* Survivors/    finish(b, 0);\n}\n\n\/* Survivors/|simblocks|repair takes a failed or unproven write of the rebuilt block for success"
"rebuild-rs-decodes-wrong-block|src/cluster/shard/repair_rebuild.c|s/unsigned want = b->lost;/unsigned want = (b->lost + 1) % pt_span_block_count(\&b->span);/|simblocks|the rebuild machine decodes the RS block next to the lost one"
"fail-placement-blind|src/cluster/shard/shard_server.c|s/pt_shard_repair_avoids\(&s->repair, c->id\)\) continue;/0) continue;/|scrub|new spans go to a service declared failed"
"fail-not-repaired|src/cluster/shard/shard_repair.c|s/^    take_failed\(r, g\);\n/    (void)take_failed;\n/m|scrub|repair never rebuilds the blocks of a service declared failed"
"status-ignores-stale|src/cluster/shard/shard_repair.c|s/if \(!s \S\S s->stale \S\S declared_failed\(x->r, s->id\)\)/if (!s ? 1 : declared_failed(x->r, s->id))/|scrub|REPAIR_STATUS counts spans on a stale service as at policy"
"orphan-sweep-ignores-spans|src/cluster/shard/shard_sm.c|s/return rc \? map_mdb\(rc\) : 1;/return rc ? map_mdb(rc) : 0;/|scrub|the orphan sweep erases blocks that spans list"
"orphan-sweep-no-retention|src/cluster/shard/shard_repair.c|s/now - o->seen_ms < r->sm->retention_ms/now - o->seen_ms < 1/|scrub|the orphan sweep erases an unlisted block at first sight"
"orphan-sweep-any-shard|src/cluster/shard/shard_repair.c|s/if \(PT_INODE_SHARD\(b->block_id\) != r->sm->shard\) continue;/(void)0;/|scrub|the orphan sweep erases blocks of another shard's id range"
"rs-block-crc-not-from-cells|src/cluster/shard/shard_sm.c|s/        s.blocks\[i\].crc = crc;/        s.blocks[i].crc = crc ^ 1;/|rs|the shard records an RS block CRC other than its cells' combination"
)

run_tests() { # $1 = suite; prints what caught it, returns 0 if caught
    case $1 in
    sim)
        PETREL_SIM_SEEDS=$seeds timeout 900 build/tests/test-sim sim_cluster_seeds >"$log" 2>&1 ||
            { echo "test-sim: $(grep -m1 -o 'test_sim_cluster.c:[0-9]*: seed .*' "$log" | cut -d' ' -f2- | head -c 110)"; return 0; }
        ;;
    simblocks)
        PETREL_SIM_BLOCKS_SEEDS=$seeds timeout 900 build/tests/test-sim sim_blocks_seeds >"$log" 2>&1 ||
            { echo "test-sim: $(grep -m1 -o 'test_sim_blocks.c:[0-9]*: seed .*' "$log" | cut -d' ' -f2- | head -c 110)"; return 0; }
        ;;
    simrepair)
        PETREL_SIM_BLOCKS_SEEDS=$seeds timeout 900 build/tests/test-sim sim_blocks_shard_repair_seeds >"$log" 2>&1 ||
            { echo "test-sim: $(grep -m1 -o 'test_sim_blocks.c:[0-9]*: seed .*' "$log" | cut -d' ' -f2- | head -c 110)"; return 0; }
        ;;
    sim-unit)
        timeout 300 build/tests/test-sim 'raftstore_*' 'replica_*' sim_cluster_regression_seeds >"$log" 2>&1 ||
            { echo "test-sim $(grep -m1 '^FAIL' "$log" | awk '{print $2}')"; return 0; }
        ;;
    blocks)
        timeout 600 build/tests/test-cluster 'blocks_*' >"$log" 2>&1 ||
            { echo "test-cluster $(grep -m1 '^FAIL' "$log" | awk '{print $2}')"; return 0; }
        ;;
    rs)
        timeout 900 build/tests/test-cluster 'ec_*' 'rs_*' >"$log" 2>&1 ||
            { echo "test-cluster $(grep -m1 '^FAIL' "$log" | awk '{print $2}')"; return 0; }
        ;;
    scrub)
        timeout 900 build/tests/test-cluster 'blocks_scrub_*' 'rs_scrub_*' 'rs_replace_*' 'rs_drain_*' \
            'scrub_*' 'repair_*' 'drain_*' 'blocks_fail_*' 'orphan_*' >"$log" 2>&1 ||
            { echo "test-cluster $(grep -m1 '^FAIL' "$log" | awk '{print $2}')"; return 0; }
        ;;
    cdc)
        timeout 900 build/tests/test-cluster 'cdc_*' cluster_directories_across_shards_and_cdc_renames \
            >"$log" 2>&1 ||
            { echo "test-cluster $(grep -m1 '^FAIL' "$log" | awk '{print $2}')"; return 0; }
        ;;
    esac
    return 1
}

suite_bin() { case $1 in sim | simblocks | simrepair | sim-unit) echo build/tests/test-sim ;; *) echo build/tests/test-cluster ;; esac; }

echo "building the unmutated tree..."
make -j$jobs build/tests/test-sim build/tests/test-cluster build/petrel >/dev/null 2>&1 ||
    { echo "the unmutated tree does not build"; exit 1; }
printf '%-32s | %-60s | %s\n' "mutant" "caught by" "bug"
printf '%-32s-+-%-60s-+-%s\n' "--------------------------------" \
    "------------------------------------------------------------" "---"
missed=0
for m in "${mutants[@]}"; do
    IFS='|' read -r name file subst suite what <<<"$m"
    [[ -n "${MUTANT_ONLY:-}" && "$name" != *"$MUTANT_ONLY"* ]] && continue
    cp "$file" "$file.orig"
    perl -0pi -e "$subst" "$file"
    if cmp -s "$file" "$file.orig"; then
        result="NOT APPLIED (pattern not found)"
        missed=$((missed + 1))
    elif ! make -j$jobs "$(suite_bin "$suite")" build/petrel >"$log" 2>&1; then
        result="build failed (mutant invalid)"
        missed=$((missed + 1))
    elif caught=$(run_tests "$suite"); then
        result=$caught
    else
        result="MISSED"
        missed=$((missed + 1))
    fi
    mv "$file.orig" "$file"
    touch "$file"
    printf '%-32s | %-60s | %s\n' "$name" "$result" "$what"
done
make -j$jobs "$(suite_bin sim)" >/dev/null 2>&1
echo "$missed mutant(s) not caught"

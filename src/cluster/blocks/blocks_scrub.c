/*
 * The scrubber of one block service (see blocks.h, pt_blocks_scrub_start): walks the block
 * index in id order and reads every block back through the store's verified read, one chunk
 * per env timer, so that rot is found before a reader (or the block's last good copy) meets it.
 * A block is whole when every page matches its stored page CRC *and* the page CRCs combine to
 * the block CRC in its header (the CRC the shard certified): a page CRC table rewritten
 * together with its page cannot pass. A rotten block is handed to the transport
 * (on_rotten), which tells the owning shard; the scrubber never changes or erases a block.
 *
 * Pacing: every chunk read adds its bytes to a debt that the next timer's delay pays off at
 * `rate` bytes per second, so the long-run read rate stays at `rate` whatever the block sizes.
 * Runs on the service's env thread only, like the request handlers, so the index cannot change
 * during a step; between steps it may, which is why the position is a block id, not an index.
 */
#include <inttypes.h>
#include <stdlib.h>

#include "cluster/blocks/blocks.h"
#include "cluster/env/env.h"
#include "petrel/codec.h"
#include "petrel/common.h"
#include "petrel/crc32c.h"

#define LOG_MODULE "scrub"
#define SCRUB_CHUNK (256u << 10) /* a multiple of the page size */
#define SCRUB_PASS_MIN_MS 1000   /* an empty or tiny index is not re-read in a busy loop */
#define SCRUB_READ_COST 4096     /* bytes a read costs beyond its data (header, CRC table) */

static void scrub_step(void *ctx);

static void scrub_schedule(struct pt_blocks_service *s, uint64_t min_delay_ms)
{
    struct pt_blocks_scrub *sc = &s->scrub;
    uint64_t delay = sc->debt * 1000 / sc->rate;
    sc->debt -= delay * sc->rate / 1000;
    if (delay < min_delay_ms) delay = min_delay_ms;
    sc->timer = pt_env_timer(s->store.env, delay, scrub_step, s);
}

static void scrub_rotten(struct pt_blocks_service *s, uint64_t block_id, int err)
{
    s->scrub.stats.rotten++;
    petrel_log(PT_LOG_WARN, LOG_MODULE, "%016" PRIx64 ": block %016" PRIx64 " is rotten (%s)",
               s->store.service_id, block_id, petrel_strerror(err));
    if (s->on_rotten) s->on_rotten(s->hook_ctx, block_id);
}

/* Done with the current block (whole or not): go on with the next id. */
static void scrub_next_block(struct pt_blocks_service *s, uint64_t block_id)
{
    struct pt_blocks_scrub *sc = &s->scrub;
    if (s->on_change) s->on_change(s->hook_ctx); /* progress to publish */
    sc->block = block_id + 1;
    sc->offset = 0;
    sc->whole = 0;
}

/*
 * Verify the next chunk of the block at or after sc->block. Returns the bytes read (for the
 * pacing), or 0 at the end of a pass.
 */
static uint64_t scrub_chunk(struct pt_blocks_service *s)
{
    struct pt_blocks_scrub *sc = &s->scrub;
    struct pt_block_stat st;
    struct pt_block_read_resp r;
    struct pt_cursor c;
    uint8_t *body;
    size_t len, i = pt_blocks_index_find(s, sc->block);
    uint32_t count, p;
    int err;
    if (i >= s->count) return 0;
    st = s->index[i];
    if (st.block_id != sc->block) {
        sc->offset = 0; /* the block we were in went away: start the next one whole */
        sc->whole = 0;
    }
    sc->block = st.block_id;
    if (sc->offset > st.size) sc->offset = sc->whole = 0;
    if (pt_blocks_busy(s, st.block_id)) {
        /* a write replaces it or an erase removes it: it is checked there, or gone */
        scrub_next_block(s, st.block_id);
        return SCRUB_READ_COST;
    }
    count = PT_MIN(SCRUB_CHUNK, st.size - sc->offset);
    err = pt_blocks_store_read(&s->store, st.block_id, sc->offset, count, &body, &len);
    if (err == -PT_ENOMEM) return SCRUB_READ_COST; /* try the same chunk again later */
    if (err) {
        /* A page or the header failed its CRC, the file is gone or unreadable: the block the
           index lists cannot be served. */
        scrub_rotten(s, st.block_id, err);
        scrub_next_block(s, st.block_id);
        return SCRUB_READ_COST;
    }
    pt_cursor_init(&c, body, len);
    pt_block_dec_read_resp(&c, &r);
    for (p = 0; pt_cursor_ok(&c) && p < r.pages; p++)
        sc->whole = petrel_crc32c_append(
            sc->whole, pt_dec_u32(&c),
            PT_MIN(PT_BLOCK_PAGE_SIZE, st.size - (sc->offset + p * PT_BLOCK_PAGE_SIZE)));
    free(body);
    if (!pt_cursor_ok(&c) || r.block_size != st.size || r.data_offset != sc->offset) {
        scrub_rotten(s, st.block_id, -PT_ECORRUPT); /* its header changed under the index */
        scrub_next_block(s, st.block_id);
        return SCRUB_READ_COST;
    }
    sc->offset += count;
    sc->stats.bytes_checked += count;
    if (sc->offset >= st.size) {
        if (sc->whole != st.crc)
            scrub_rotten(s, st.block_id, -PT_ECORRUPT);
        else
            sc->stats.blocks_checked++;
        scrub_next_block(s, st.block_id);
    }
    return (uint64_t)count + SCRUB_READ_COST;
}

static void scrub_step(void *ctx)
{
    struct pt_blocks_service *s = ctx;
    struct pt_blocks_scrub *sc = &s->scrub;
    uint64_t cost;
    sc->timer = 0;
    if (s->closing || !sc->rate) return;
    cost = scrub_chunk(s);
    if (cost) {
        sc->debt += cost;
        scrub_schedule(s, 0);
        return;
    }
    /* End of a pass: record it and start over from the lowest id. */
    sc->stats.passes++;
    sc->stats.last_pass_ms = pt_env_wall_ms(s->store.env);
    scrub_next_block(s, (uint64_t)-1); /* wraps to block 0 */
    scrub_schedule(s, SCRUB_PASS_MIN_MS);
}

void pt_blocks_scrub_start(struct pt_blocks_service *s, uint64_t rate)
{
    struct pt_blocks_scrub *sc = &s->scrub;
    if (sc->timer) {
        pt_env_cancel(s->store.env, sc->timer);
        sc->timer = 0;
    }
    sc->rate = rate;
    if (rate && !s->closing) sc->timer = pt_env_timer(s->store.env, 0, scrub_step, s);
}

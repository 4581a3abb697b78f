/* test_buf.c: the buffer pool lends, reuses and bounds its buffers. */
#include "buf.h"
#include "unit.h"

TEST(test_buf_get_is_empty_with_capacity)
{
    struct buf_pool p;
    buf_pool_init(&p, 1000, 4);
    struct buf *b = buf_get(&p);
    CHECK(b != NULL);
    CHECK_INT(b->cap, 1000);
    CHECK_INT(buf_len(b), 0);
    CHECK_INT(buf_room(b), 1000);
    CHECK_INT(p.in_use, 1);
    buf_put(&p, b);
    CHECK_INT(p.in_use, 0);
    buf_pool_destroy(&p);
}

TEST(test_buf_put_then_get_reuses_and_resets)
{
    struct buf_pool p;
    buf_pool_init(&p, 64, 4);
    struct buf *b = buf_get(&p);
    b->start = 3;
    b->end = 10;
    buf_put(&p, b);
    CHECK_INT(p.nfree, 1);
    struct buf *c = buf_get(&p);
    CHECK(c == b);
    CHECK_INT(c->start, 0);
    CHECK_INT(c->end, 0);
    CHECK_INT(p.nfree, 0);
    buf_put(&p, c);
    buf_pool_destroy(&p);
}

TEST(test_buf_pool_keeps_at_most_max_free)
{
    struct buf_pool p;
    buf_pool_init(&p, 64, 2);
    struct buf *b[5];
    for (int i = 0; i < 5; i++)
        b[i] = buf_get(&p);
    CHECK_INT(p.in_use, 5);
    for (int i = 0; i < 5; i++)
        buf_put(&p, b[i]);
    CHECK_INT(p.nfree, 2);
    CHECK_INT(p.in_use, 0);
    buf_pool_destroy(&p);
    CHECK_INT(p.nfree, 0);
}

TEST(test_buf_compact_moves_held_bytes_to_front)
{
    struct buf_pool p;
    buf_pool_init(&p, 16, 1);
    struct buf *b = buf_get(&p);
    memcpy(b->data, "xxxxhello", 9);
    b->start = 4;
    b->end = 9;
    buf_compact(b);
    CHECK_INT(b->start, 0);
    CHECK_INT(b->end, 5);
    CHECK_MEM(b->data, "hello", 5);
    CHECK_INT(buf_room(b), 11);
    buf_put(&p, b);
    buf_pool_destroy(&p);
}

TEST(test_buf_pool_trim_frees_what_stayed_idle_since_the_last_trim)
{
    struct buf_pool p;
    struct buf *b[4];
    buf_pool_init(&p, 100, 8);
    for (int i = 0; i < 4; i++)
        b[i] = buf_get(&p);
    for (int i = 0; i < 4; i++)
        buf_put(&p, b[i]);
    CHECK_INT(p.nfree, 4);
    CHECK_INT(buf_pool_trim(&p), 0); /* just returned: not idle for a whole interval yet */
    CHECK_INT(p.nfree, 4);
    buf_put(&p, buf_get(&p)); /* one in use during this interval */
    CHECK_INT(buf_pool_trim(&p), 3 * (sizeof(struct buf) + 100));
    CHECK_INT(p.nfree, 1);
    CHECK_INT(buf_pool_take_released(&p), 3 * (sizeof(struct buf) + 100));
    CHECK_INT(buf_pool_take_released(&p), 0);
    CHECK_INT(buf_pool_trim(&p), sizeof(struct buf) + 100); /* idle for a whole interval */
    CHECK_INT(p.nfree, 0);
    buf_pool_destroy(&p);
}

TEST(test_buf_put_beyond_max_free_counts_as_released)
{
    struct buf_pool p;
    buf_pool_init(&p, 100, 1);
    struct buf *a = buf_get(&p), *b = buf_get(&p);
    buf_put(&p, a);
    buf_put(&p, b);
    CHECK_INT(p.nfree, 1);
    CHECK_INT(buf_pool_take_released(&p), sizeof(struct buf) + 100);
    buf_pool_destroy(&p);
}

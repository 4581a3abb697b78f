/* buf.h: the one buffer type (capacity, start, end) and a per-worker pool of them. A connection
 * takes a buffer for a direction only while bytes are in flight and gives it back when that
 * direction drains, so an idle connection holds no buffer at all and the hot path never calls
 * malloc. */
#ifndef RP_BUF_H
#define RP_BUF_H

#include <stddef.h>
#include <stdint.h>

struct buf {
    size_t cap;
    size_t start;     /* first byte not yet consumed */
    size_t end;       /* one past the last byte held */
    struct buf *next; /* free-list link while pooled */
    uint8_t data[];
};

struct buf_pool {
    size_t buf_cap;   /* data bytes of every buffer */
    struct buf *free;
    size_t nfree;
    size_t max_free;  /* buffers kept for reuse; more are returned to malloc */
    size_t in_use;
    size_t min_free;  /* the fewest free buffers since the last buf_pool_trim */
    size_t released;  /* bytes returned to malloc since buf_pool_take_released */
};

void buf_pool_init(struct buf_pool *p, size_t buf_cap, size_t max_free);
void buf_pool_destroy(struct buf_pool *p);
/* Frees the buffers that stayed unused since the last call (the pool's low-water mark), so a
 * burst's buffers go back to malloc a tick after it ends while a steady load keeps its own.
 * Call it from a periodic timer. Returns the bytes freed. */
size_t buf_pool_trim(struct buf_pool *p);
/* Bytes the pool gave back to malloc (beyond max_free, or by buf_pool_trim) since the last
 * call; resets the count. */
size_t buf_pool_take_released(struct buf_pool *p);
/* An empty buffer (start = end = 0), or NULL when memory is exhausted. */
struct buf *buf_get(struct buf_pool *p);
void buf_put(struct buf_pool *p, struct buf *b);

static inline size_t buf_len(const struct buf *b)
{
    return b->end - b->start;
}
static inline size_t buf_room(const struct buf *b)
{
    return b->cap - b->end;
}
/* Moves the held bytes to the front so the room after them is as large as it can be. */
void buf_compact(struct buf *b);

#endif

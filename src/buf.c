/* buf.c: the buffer pool. See buf.h for why buffers are lent per direction, not per connection. */
#include "buf.h"

#include <stdlib.h>
#include <string.h>

void buf_pool_init(struct buf_pool *p, size_t buf_cap, size_t max_free)
{
    memset(p, 0, sizeof *p);
    p->buf_cap = buf_cap;
    p->max_free = max_free;
}

size_t buf_pool_trim(struct buf_pool *p)
{
    size_t n = p->min_free < p->nfree ? p->min_free : p->nfree, freed = 0;
    for (size_t i = 0; i < n && p->free; i++) {
        struct buf *b = p->free;
        p->free = b->next;
        p->nfree--;
        freed += sizeof *b + p->buf_cap;
        free(b);
    }
    p->released += freed;
    p->min_free = p->nfree;
    return freed;
}

size_t buf_pool_take_released(struct buf_pool *p)
{
    size_t n = p->released;
    p->released = 0;
    return n;
}

void buf_pool_destroy(struct buf_pool *p)
{
    while (p->free) {
        struct buf *b = p->free;
        p->free = b->next;
        free(b);
    }
    p->nfree = 0;
}

struct buf *buf_get(struct buf_pool *p)
{
    struct buf *b = p->free;
    if (b) {
        p->free = b->next;
        p->nfree--;
        if (p->nfree < p->min_free)
            p->min_free = p->nfree;
    } else {
        b = malloc(sizeof *b + p->buf_cap);
        if (!b)
            return NULL;
        b->cap = p->buf_cap;
    }
    b->start = b->end = 0;
    b->next = NULL;
    p->in_use++;
    return b;
}

void buf_put(struct buf_pool *p, struct buf *b)
{
    if (!b)
        return;
    p->in_use--;
    if (p->nfree >= p->max_free) {
        p->released += sizeof *b + p->buf_cap;
        free(b);
        return;
    }
    b->next = p->free;
    p->free = b;
    p->nfree++;
}

void buf_compact(struct buf *b)
{
    if (b->start == 0)
        return;
    size_t n = b->end - b->start;
    if (n)
        memmove(b->data, b->data + b->start, n);
    b->start = 0;
    b->end = n;
}

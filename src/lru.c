/* lru.c: the hash table in order of use (see lru.h): chained buckets for finding, a
 * <sys/queue.h> tail queue for the order, oldest at the head. */
#include "lru.h"

#include <stdlib.h>
#include <string.h>

#include "rp_assert.h"

int lru_init(struct lru *t, size_t initial, size_t max)
{
    RP_ASSERT(initial > 0 && (initial & (initial - 1)) == 0 && initial <= max);
    memset(t, 0, sizeof *t);
    TAILQ_INIT(&t->order);
    t->buckets = calloc(initial, sizeof *t->buckets);
    if (!t->buckets)
        return -1;
    t->nbuckets = initial;
    t->max_buckets = max;
    return 0;
}

void lru_destroy(struct lru *t)
{
    free(t->buckets);
    memset(t, 0, sizeof *t);
    TAILQ_INIT(&t->order);
}

static size_t lru_bucket(const struct lru *t, uint64_t hash)
{
    return (size_t)(hash & (t->nbuckets - 1));
}

struct lru_node *lru_find(const struct lru *t, uint64_t hash,
                          bool (*same)(const struct lru_node *n, const void *key), const void *key)
{
    for (struct lru_node *n = t->buckets[lru_bucket(t, hash)]; n; n = n->hnext)
        if (n->hash == hash && same(n, key))
            return n;
    return NULL;
}

/* Doubles the bucket array and rehashes; on allocation failure keeps the old one. */
static void lru_grow(struct lru *t)
{
    size_t n = t->nbuckets * 2;
    if (n > t->max_buckets)
        return;
    struct lru_node **b = calloc(n, sizeof *b);
    if (!b)
        return;
    for (size_t i = 0; i < t->nbuckets; i++) {
        struct lru_node *e = t->buckets[i];
        while (e) {
            struct lru_node *next = e->hnext;
            size_t j = (size_t)(e->hash & (n - 1));
            e->hnext = b[j];
            b[j] = e;
            e = next;
        }
    }
    free(t->buckets);
    t->buckets = b;
    t->nbuckets = n;
}

void lru_insert(struct lru *t, struct lru_node *n, uint64_t hash)
{
    if (t->count >= t->nbuckets)
        lru_grow(t);
    n->hash = hash;
    size_t i = lru_bucket(t, hash);
    n->hnext = t->buckets[i];
    t->buckets[i] = n;
    TAILQ_INSERT_TAIL(&t->order, n, order);
    t->count++;
}

void lru_remove(struct lru *t, struct lru_node *n)
{
    struct lru_node **p = &t->buckets[lru_bucket(t, n->hash)];
    while (*p && *p != n)
        p = &(*p)->hnext;
    RP_ASSERT(*p == n && t->count > 0); /* n is in this table */
    *p = n->hnext;
    n->hnext = NULL;
    TAILQ_REMOVE(&t->order, n, order);
    t->count--;
}

void lru_touch(struct lru *t, struct lru_node *n)
{
    if (TAILQ_NEXT(n, order) == NULL)
        return; /* already the newest */
    TAILQ_REMOVE(&t->order, n, order);
    TAILQ_INSERT_TAIL(&t->order, n, order);
}

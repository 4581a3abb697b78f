/* lru.h: an intrusive hash table whose entries are also kept in order of last use, for tables
 * that must find an entry by key in O(1) and give up the least recently used one when full or
 * stale: the resolver's cache (keyed by name) and the UDP association table (keyed by client
 * address). The caller embeds a struct lru_node in its entry, owns the entry's memory, computes
 * the hash and says what "the same key" means; the table never allocates per entry. The bucket
 * array doubles while the table holds as many entries as buckets, up to a maximum. */
#ifndef RP_LRU_H
#define RP_LRU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

struct lru_node {
    uint64_t hash;
    struct lru_node *hnext;      /* bucket chain */
    TAILQ_ENTRY(lru_node) order; /* least recently used first */
};

TAILQ_HEAD(lru_order, lru_node);

struct lru {
    struct lru_node **buckets;
    size_t nbuckets; /* a power of two */
    size_t max_buckets;
    size_t count;
    struct lru_order order;
};

/* The entry of type holding node n as member (container_of). */
#define LRU_ENTRY(n, type, member) ((type *)(void *)((char *)(n)-offsetof(type, member)))

/* initial and max: powers of two, initial <= max. Returns 0, or -1 when the bucket array cannot
 * be allocated. */
int lru_init(struct lru *t, size_t initial, size_t max);
/* Frees the buckets; the entries belong to the caller (remove them first). */
void lru_destroy(struct lru *t);

/* The entry with this hash for which same(node, key) holds, or NULL. Does not count as a use. */
struct lru_node *lru_find(const struct lru *t, uint64_t hash,
                          bool (*same)(const struct lru_node *n, const void *key), const void *key);
/* Adds n (not in the table) as the most recently used. Never fails: when the bucket array
 * cannot grow, chains just get longer. */
void lru_insert(struct lru *t, struct lru_node *n, uint64_t hash);
/* Takes n (which must be in the table) out. */
void lru_remove(struct lru *t, struct lru_node *n);
/* n becomes the most recently used. */
void lru_touch(struct lru *t, struct lru_node *n);

static inline struct lru_node *lru_oldest(const struct lru *t)
{
    return TAILQ_FIRST(&t->order);
}
static inline struct lru_node *lru_newest(const struct lru *t)
{
    return TAILQ_LAST(&t->order, lru_order);
}
/* Towards the most recently used, or NULL at the newest. */
static inline struct lru_node *lru_newer(const struct lru_node *n)
{
    return TAILQ_NEXT(n, order);
}
/* Towards the least recently used, or NULL at the oldest. */
static inline struct lru_node *lru_older(const struct lru_node *n)
{
    return TAILQ_PREV(n, lru_order, order);
}

#endif

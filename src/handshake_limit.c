/* handshake_limit.c: the per-source count of sessions in the handshake (see handshake_limit.h):
 * an LRU table (lru.h) keyed by the source host (netaddr_host_key), an entry per source with
 * at least one session counted, freed when its count returns to zero, so the table holds only
 * the sources that are in the handshake now. */
#include "autoconfig.h"

#include "handshake_limit.h"

#include <stdlib.h>
#include <string.h>

#include "blake3.h"
#include "crypto.h"
#include "netaddr.h"
#include "rp_assert.h"

#define HANDSHAKE_LIMIT_INITIAL_BUCKETS 64
#define HANDSHAKE_LIMIT_MAX_BUCKETS ((size_t)1 << 20)

struct handshake_limit_entry {
    struct lru_node node;
    uint8_t source[16];
    unsigned count;
};

int handshake_limit_init(struct handshake_limit *h, unsigned max)
{
    memset(h, 0, sizeof *h);
    h->max = max;
    if (max < 1 || crypto_random(h->seed, sizeof h->seed) < 0)
        return -1;
    return lru_init(&h->table, HANDSHAKE_LIMIT_INITIAL_BUCKETS, HANDSHAKE_LIMIT_MAX_BUCKETS);
}

void handshake_limit_destroy(struct handshake_limit *h)
{
    struct lru_node *n;
    while ((n = lru_oldest(&h->table))) {
        lru_remove(&h->table, n);
        free(LRU_ENTRY(n, struct handshake_limit_entry, node));
    }
    lru_destroy(&h->table);
}

/* The key of source (an unknown family: all zeros) and its seeded hash. BLAKE3 over seed and
 * key: addresses are chosen by clients, so the hash must not let them pick a chain. */
static uint64_t handshake_limit_key(const struct handshake_limit *h, const struct sockaddr *source,
                                    uint8_t key[16])
{
    uint8_t in[32], out[8];
    uint64_t hash;
    memset(key, 0, 16);
    netaddr_host_key(source, key);
    memcpy(in, h->seed, 16);
    memcpy(in + 16, key, 16);
    blake3_hash(in, sizeof in, out, sizeof out);
    memcpy(&hash, out, sizeof hash);
    return hash;
}

static bool handshake_limit_same(const struct lru_node *n, const void *key)
{
    return memcmp(LRU_ENTRY(n, struct handshake_limit_entry, node)->source, key, 16) == 0;
}

static struct handshake_limit_entry *handshake_limit_find(const struct handshake_limit *h,
                                                          const struct sockaddr *source,
                                                          uint8_t key[16], uint64_t *hash)
{
    *hash = handshake_limit_key(h, source, key);
    struct lru_node *n = lru_find(&h->table, *hash, handshake_limit_same, key);
    return n ? LRU_ENTRY(n, struct handshake_limit_entry, node) : NULL;
}

bool handshake_limit_enter(struct handshake_limit *h, const struct sockaddr *source)
{
    uint8_t key[16];
    uint64_t hash;
    struct handshake_limit_entry *e = handshake_limit_find(h, source, key, &hash);
    if (e) {
        if (e->count >= h->max)
            return false;
        e->count++;
        return true;
    }
    if (!(e = calloc(1, sizeof *e)))
        return false;
    memcpy(e->source, key, sizeof e->source);
    e->count = 1;
    lru_insert(&h->table, &e->node, hash);
    return true;
}

void handshake_limit_leave(struct handshake_limit *h, const struct sockaddr *source)
{
    uint8_t key[16];
    uint64_t hash;
    struct handshake_limit_entry *e = handshake_limit_find(h, source, key, &hash);
    RP_ASSERT(e && e->count > 0); /* only sessions that entered leave */
    if (!e)
        return;
    if (--e->count == 0) {
        lru_remove(&h->table, &e->node);
        free(e);
    }
}

unsigned handshake_limit_count(const struct handshake_limit *h, const struct sockaddr *source)
{
    uint8_t key[16];
    uint64_t hash;
    const struct handshake_limit_entry *e = handshake_limit_find(h, source, key, &hash);
    return e ? e->count : 0;
}

size_t handshake_limit_sources(const struct handshake_limit *h)
{
    return h->table.count;
}

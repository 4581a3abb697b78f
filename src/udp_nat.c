/* udp_nat.c: the UDP association table: an LRU hash table (lru.h) keyed by client socket
 * address or by session. See udp_nat.h. The table grows by doubling when it holds as many entries
 * as buckets, so lookups stay O(1) from a handful of clients up to the configured maximum without
 * reserving memory for the maximum up front. */
#include "udp_nat.h"

#include <netinet/in.h>
#include <string.h>

#include "netaddr.h"
#include "rp_assert.h"

#define UDP_NAT_INITIAL_BUCKETS 64
/* 4M buckets (32 MiB of pointers) is far beyond any sensible udp_max_associations. */
#define UDP_NAT_MAX_BUCKETS ((size_t)1 << 22)

int udp_nat_init(struct udp_nat *t, uint64_t seed)
{
    t->seed = seed;
    return lru_init(&t->lru, UDP_NAT_INITIAL_BUCKETS, UDP_NAT_MAX_BUCKETS);
}

void udp_nat_destroy(struct udp_nat *t)
{
    lru_destroy(&t->lru);
}

/* MurmurHash3's 64-bit finalizer: every input bit affects every output bit. */
static uint64_t udp_nat_mix(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

/* Folds the address words into the seeded state one at a time. The seed is random per table,
 * so a client choosing source ports cannot aim for one chain without knowing it. */
static uint64_t udp_nat_hash(uint64_t seed, const struct sockaddr *sa, uint32_t scope)
{
    uint64_t h = udp_nat_mix(
        seed ^ ((uint64_t)scope << 32 | (uint64_t)sa->sa_family << 16 | netaddr_port(sa)));

    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
        return udp_nat_mix(h ^ sin->sin_addr.s_addr);
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
        uint64_t words[2];
        memcpy(words, &sin6->sin6_addr, sizeof words);
        h = udp_nat_mix(h ^ words[0]);
        h = udp_nat_mix(h ^ words[1]);
        return udp_nat_mix(h ^ sin6->sin6_scope_id);
    }
    return h;
}

/* A session's hash: its own domain (the top bit set in the first word), so a session and an
 * address never share a chain by construction more than by chance. */
static uint64_t udp_nat_hash_session(uint64_t seed, uint64_t session, uint32_t scope)
{
    return udp_nat_mix(udp_nat_mix(seed ^ ((uint64_t)1 << 63 | scope)) ^ session);
}

struct udp_nat_key {
    const struct sockaddr *client; /* NULL: by session */
    uint64_t session;
    uint32_t scope;
};

static bool udp_nat_same(const struct lru_node *n, const void *key)
{
    const struct udp_nat_entry *e = LRU_ENTRY(n, struct udp_nat_entry, node);
    const struct udp_nat_key *k = key;
    if (e->scope != k->scope || e->by_session != !k->client)
        return false;
    return k->client ? netaddr_equal((const struct sockaddr *)&e->client, k->client)
                     : e->session == k->session;
}

struct udp_nat_entry *udp_nat_find(const struct udp_nat *t, const struct sockaddr *client,
                                   uint32_t scope)
{
    struct udp_nat_key k = {client, 0, scope};
    return udp_nat_entry_of(
        lru_find(&t->lru, udp_nat_hash(t->seed, client, scope), udp_nat_same, &k));
}

void udp_nat_insert(struct udp_nat *t, struct udp_nat_entry *e, const struct sockaddr *client,
                    uint32_t scope, double now)
{
    memset(&e->client, 0, sizeof e->client);
    memcpy(&e->client, client, netaddr_len(client));
    e->by_session = false;
    e->session = 0;
    e->scope = scope;
    e->last_active = now;
    lru_insert(&t->lru, &e->node, udp_nat_hash(t->seed, client, scope));
}

struct udp_nat_entry *udp_nat_find_session(const struct udp_nat *t, uint64_t session,
                                           uint32_t scope)
{
    struct udp_nat_key k = {NULL, session, scope};
    return udp_nat_entry_of(
        lru_find(&t->lru, udp_nat_hash_session(t->seed, session, scope), udp_nat_same, &k));
}

void udp_nat_insert_session(struct udp_nat *t, struct udp_nat_entry *e, uint64_t session,
                            const struct sockaddr *client, uint32_t scope, double now)
{
    e->by_session = true;
    udp_nat_move(e, client);
    e->session = session;
    e->scope = scope;
    e->last_active = now;
    lru_insert(&t->lru, &e->node, udp_nat_hash_session(t->seed, session, scope));
}

void udp_nat_move(struct udp_nat_entry *e, const struct sockaddr *client)
{
    /* an address key cannot change in place: its hash names the bucket */
    RP_ASSERT(e->by_session);
    memset(&e->client, 0, sizeof e->client);
    memcpy(&e->client, client, netaddr_len(client));
}

void udp_nat_remove(struct udp_nat *t, struct udp_nat_entry *e)
{
    lru_remove(&t->lru, &e->node);
}

void udp_nat_touch(struct udp_nat *t, struct udp_nat_entry *e, double now)
{
    e->last_active = now;
    lru_touch(&t->lru, &e->node);
}

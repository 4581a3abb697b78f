/* udp_nat.h: the UDP association table (the relay's NAT). Entries are keyed by the client's
 * socket address and a scope (the relay socket the client sends to: a SOCKS5 association's own
 * socket, or the shared one), or by a session the protocol names (a SIP022 server's client
 * session id, which outlives the client's address: SIP022 section 3.2) and the scope, in a
 * hash table (O(1) lookup) and kept in order of last activity (O(1)
 * refresh; both from lru.h), so expiry and eviction always find the least recently used entry
 * first. No I/O and no allocation per entry: the relay embeds a struct udp_nat_entry in each
 * association and owns its memory. */
#ifndef RP_UDP_NAT_H
#define RP_UDP_NAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "lru.h"

struct udp_nat_entry {
    struct sockaddr_storage client; /* address and port (IPv4 or IPv6): the key unless
                                     * by_session, else where the session was last seen */
    uint64_t session;               /* by_session: the key */
    bool by_session;
    uint32_t scope;                 /* and the socket it arrived on: 0 shared, else a SOCKS5
                                     * control connection's own (its handle + 1) */
    double last_active;             /* monotonic time of the last datagram either way */
    struct lru_node node;
};

struct udp_nat {
    struct lru lru;
    uint64_t seed; /* random per table: chains cannot be predicted */
};

/* Returns 0, or -1 when the bucket array cannot be allocated. */
int udp_nat_init(struct udp_nat *t, uint64_t seed);
/* Frees the buckets; the entries belong to the caller (remove them first). */
void udp_nat_destroy(struct udp_nat *t);

/* The entry for client (IPv4 or IPv6 socket address) in scope, or NULL. */
struct udp_nat_entry *udp_nat_find(const struct udp_nat *t, const struct sockaddr *client,
                                   uint32_t scope);
/* Adds e (not in the table) for client in scope as the most recently used, active at now.
 * Never fails: when the bucket array cannot grow, chains just get longer. */
void udp_nat_insert(struct udp_nat *t, struct udp_nat_entry *e, const struct sockaddr *client,
                    uint32_t scope, double now);
/* The entry of session in scope, or NULL. */
struct udp_nat_entry *udp_nat_find_session(const struct udp_nat *t, uint64_t session,
                                           uint32_t scope);
/* Adds e (not in the table) keyed by session in scope, its client at client, as the most
 * recently used, active at now. Never fails, as udp_nat_insert. */
void udp_nat_insert_session(struct udp_nat *t, struct udp_nat_entry *e, uint64_t session,
                            const struct sockaddr *client, uint32_t scope, double now);
/* e (keyed by session) now has its client at client: the key is unchanged. */
void udp_nat_move(struct udp_nat_entry *e, const struct sockaddr *client);
/* Takes e (which must be in the table) out. */
void udp_nat_remove(struct udp_nat *t, struct udp_nat_entry *e);
/* Marks e active at now: it becomes the most recently used. */
void udp_nat_touch(struct udp_nat *t, struct udp_nat_entry *e, double now);

static inline size_t udp_nat_count(const struct udp_nat *t)
{
    return t->lru.count;
}
/* The entry holding node n, or NULL for no node. */
static inline struct udp_nat_entry *udp_nat_entry_of(struct lru_node *n)
{
    return n ? LRU_ENTRY(n, struct udp_nat_entry, node) : NULL;
}
/* The least recently used entry (the next to expire or be evicted), or NULL when empty. */
static inline struct udp_nat_entry *udp_nat_oldest(const struct udp_nat *t)
{
    return udp_nat_entry_of(lru_oldest(&t->lru));
}
static inline struct udp_nat_entry *udp_nat_newest(const struct udp_nat *t)
{
    return udp_nat_entry_of(lru_newest(&t->lru));
}
/* The next entry towards the most recently used, or NULL. */
static inline struct udp_nat_entry *udp_nat_newer(const struct udp_nat_entry *e)
{
    return udp_nat_entry_of(lru_newer(&e->node));
}
/* The next entry towards the least recently used, or NULL. */
static inline struct udp_nat_entry *udp_nat_older(const struct udp_nat_entry *e)
{
    return udp_nat_entry_of(lru_older(&e->node));
}

#endif

/* udp_nat.c: the UDP association table: a chained hash table keyed by client socket address plus
 * a least-recently-used list. See udp_nat.h. The table grows by doubling when it holds as many
 * entries as buckets, so lookups stay O(1) from a handful of clients up to the configured maximum
 * without reserving memory for the maximum up front. */
#include "udp_nat.h"

#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "netaddr.h"

#define UDP_NAT_INITIAL_BUCKETS 64
/* 4M buckets (32 MiB of pointers) is far beyond any sensible udp_max_associations. */
#define UDP_NAT_MAX_BUCKETS ((size_t)1 << 22)

int udp_nat_init(struct udp_nat *t, uint64_t seed)
{
    memset(t, 0, sizeof *t);
    t->buckets = calloc(UDP_NAT_INITIAL_BUCKETS, sizeof *t->buckets);
    if (!t->buckets)
        return -1;
    t->nbuckets = UDP_NAT_INITIAL_BUCKETS;
    t->seed = seed;
    return 0;
}

void udp_nat_destroy(struct udp_nat *t)
{
    free(t->buckets);
    memset(t, 0, sizeof *t);
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
static uint64_t udp_nat_hash(uint64_t seed, const struct sockaddr *sa)
{
    uint64_t h = udp_nat_mix(seed ^ ((uint64_t)sa->sa_family << 16 | netaddr_port(sa)));

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

struct udp_nat_entry *udp_nat_find(const struct udp_nat *t, const struct sockaddr *client)
{
    uint64_t h = udp_nat_hash(t->seed, client);

    for (struct udp_nat_entry *e = t->buckets[h & (t->nbuckets - 1)]; e; e = e->hnext)
        if (e->hash == h && netaddr_equal((const struct sockaddr *)&e->client, client))
            return e;
    return NULL;
}

/* Doubles the bucket array and rehashes; on allocation failure keeps the old one. */
static void udp_nat_grow(struct udp_nat *t)
{
    size_t n = t->nbuckets * 2;
    if (n > UDP_NAT_MAX_BUCKETS)
        return;
    struct udp_nat_entry **b = calloc(n, sizeof *b);
    if (!b)
        return;
    for (size_t i = 0; i < t->nbuckets; i++) {
        struct udp_nat_entry *e = t->buckets[i];
        while (e) {
            struct udp_nat_entry *next = e->hnext;
            size_t j = e->hash & (n - 1);
            e->hnext = b[j];
            b[j] = e;
            e = next;
        }
    }
    free(t->buckets);
    t->buckets = b;
    t->nbuckets = n;
}

static void udp_nat_link_newest(struct udp_nat *t, struct udp_nat_entry *e)
{
    e->newer = NULL;
    e->older = t->newest;
    if (t->newest)
        t->newest->newer = e;
    t->newest = e;
    if (!t->oldest)
        t->oldest = e;
}

static void udp_nat_unlink(struct udp_nat *t, struct udp_nat_entry *e)
{
    if (e->newer)
        e->newer->older = e->older;
    else
        t->newest = e->older;
    if (e->older)
        e->older->newer = e->newer;
    else
        t->oldest = e->newer;
    e->newer = e->older = NULL;
}

void udp_nat_insert(struct udp_nat *t, struct udp_nat_entry *e, const struct sockaddr *client,
                    double now)
{
    if (t->count >= t->nbuckets)
        udp_nat_grow(t);
    memset(&e->client, 0, sizeof e->client);
    memcpy(&e->client, client, netaddr_len(client));
    e->hash = udp_nat_hash(t->seed, client);
    e->last_active = now;
    size_t i = e->hash & (t->nbuckets - 1);
    e->hnext = t->buckets[i];
    t->buckets[i] = e;
    udp_nat_link_newest(t, e);
    t->count++;
}

void udp_nat_remove(struct udp_nat *t, struct udp_nat_entry *e)
{
    struct udp_nat_entry **p = &t->buckets[e->hash & (t->nbuckets - 1)];
    while (*p && *p != e)
        p = &(*p)->hnext;
    if (!*p)
        return; /* not in this table */
    *p = e->hnext;
    e->hnext = NULL;
    udp_nat_unlink(t, e);
    t->count--;
}

void udp_nat_touch(struct udp_nat *t, struct udp_nat_entry *e, double now)
{
    e->last_active = now;
    if (t->newest == e)
        return;
    udp_nat_unlink(t, e);
    udp_nat_link_newest(t, e);
}

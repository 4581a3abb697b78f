/* udp_redir.c: the redir role's UDP (udp_private.h), TPROXY's side of ss-redir. A datagram the
 * firewall sent us transparently carries where it was going (IP_ORIGDSTADDR, redir.h); that
 * destination becomes its address header and it goes to the server sealed, as the tunnel
 * role's do, on the client's association. The server's association is a full cone, so its
 * replies name the remote that answered; each reply goes back to the client from that very
 * address, through a transparent socket bound to it, so the application sees its answer come
 * from whom it asked (a resolver that checks the source, as most do, would drop it otherwise).
 *
 * The reply sockets are cached per address in an LRU table (lru.h) of at most
 * UDP_REDIR_SOCKETS per relay: a client resolving through a few servers reuses a few, and a
 * scan of many addresses recycles the least recently used instead of running out of
 * descriptors. They count against the relay's socket budget like the associations' own. */
#include "autoconfig.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "lru.h"
#include "redir.h"
#include "udp_private.h"
#include "worker.h"

/* Remote addresses answered from at once, per relay (one per worker and listen address). */
#define UDP_REDIR_SOCKETS 256

struct udp_redir_sock {
    struct lru_node node;
    struct sockaddr_storage addr; /* the remote's address and port: our reply's source */
    int fd;
};

struct udp_redir {
    struct lru table;
    uint64_t seed;
};

static uint64_t udp_redir_hash(uint64_t seed, const struct sockaddr *sa)
{
    /* FNV-1a over the address bytes, seeded: the table is small and bounded, and a client
     * picking destinations to collide only lengthens chains of at most UDP_REDIR_SOCKETS. */
    const uint8_t *p = (const uint8_t *)sa;
    uint64_t h = 1469598103934665603ULL ^ seed;
    for (socklen_t i = 0; i < netaddr_len(sa); i++)
        h = (h ^ p[i]) * 1099511628211ULL;
    return h;
}

static bool udp_redir_same(const struct lru_node *n, const void *key)
{
    const struct udp_redir_sock *s = LRU_ENTRY(n, struct udp_redir_sock, node);
    return netaddr_equal((const struct sockaddr *)&s->addr, key);
}

static void udp_redir_close(struct udp_relay *u, struct udp_redir_sock *s)
{
    lru_remove(&u->redir->table, &s->node);
    udp_tx_forget(u, s->fd); /* a queued reply must not leave by the next socket of that fd */
    close(s->fd);
    u->nsockets--;
    free(s);
}

static struct udp_redir *udp_redir_get(struct udp_relay *u)
{
    if (u->redir)
        return u->redir;
    struct udp_redir *r = calloc(1, sizeof *r);
    if (!r || lru_init(&r->table, 16, 512) < 0) {
        free(r);
        return NULL;
    }
    (void)crypto_random(&r->seed, sizeof r->seed);
    u->redir = r;
    return r;
}

/* The socket replies from `from` leave by: cached, or bound now. -1 when none can be had. */
static int udp_redir_socket(struct udp_relay *u, struct udp_assoc *a, const struct sockaddr *from)
{
    struct udp_redir *r = udp_redir_get(u);
    if (!r)
        return -1;
    uint64_t h = udp_redir_hash(r->seed, from);
    struct lru_node *n = lru_find(&r->table, h, udp_redir_same, from);
    if (n) {
        lru_touch(&r->table, n);
        return LRU_ENTRY(n, struct udp_redir_sock, node)->fd;
    }
    if (r->table.count >= UDP_REDIR_SOCKETS)
        udp_redir_close(u, LRU_ENTRY(lru_oldest(&r->table), struct udp_redir_sock, node));
    if (udp_socket_room(u, a) < 0)
        return -1;
    struct udp_redir_sock *s = calloc(1, sizeof *s);
    if (!s)
        return -1;
    s->fd = redir_udp_reply_socket(from, u->w->cfg->outgoing.fwmark);
    if (s->fd < 0) {
        free(s);
        return -1;
    }
    memcpy(&s->addr, from, netaddr_len(from));
    lru_insert(&r->table, &s->node, h);
    u->nsockets++;
    return s->fd;
}

void udp_redir_in(struct udp_relay *u, const struct sockaddr *client, uint8_t *data, size_t len)
{
    const struct sockaddr *dst = (const struct sockaddr *)&u->rx.origdst[u->rx_current];
    uint8_t header[NETADDR_HEADER_MAX];

    if (!udp_family_ok(dst)) {
        udp_drop(u, client, "datagram without its original destination (not sent by TPROXY)");
        return;
    }
    int hl = netaddr_header_from_sockaddr(dst, header, sizeof header);
    struct udp_assoc *a = udp_assoc_find(u, client, UDP_SCOPE_SHARED);
    if (hl < 0 || hl > UDP_HEADROOM) {
        udp_drop(u, client, "original destination of an unknown family");
        return;
    }
    if (!a && !(a = udp_assoc_new(u, client, -1, UDP_SCOPE_SHARED))) {
        udp_drop(u, client, "out of memory");
        return;
    }
    udp_assoc_touch(a);
    memcpy(data - hl, header, (size_t)hl); /* inside the headroom */
    udp_seal_to_server(a, data - hl, (size_t)hl + len, client);
}

void udp_redir_out(struct udp_assoc *a, const struct netaddr_target *from, const uint8_t *data,
                   size_t len)
{
    struct udp_relay *u = a->relay;
    const struct sockaddr *src = (const struct sockaddr *)&from->addr;
    static const struct udp_local unset; /* family 0: the socket's bound address */

    if (!from->addrlen) { /* a server names its remotes by IP (SIP004: the sender's address) */
        udp_drop(u, NULL, "reply from a remote named by a domain name");
        return;
    }
    int fd = udp_redir_socket(u, a, src);
    if (fd < 0) {
        udp_drop(u, src, "cannot bind a transparent socket to answer from");
        return;
    }
    udp_tx_add(u, fd, (const struct sockaddr *)&a->nat.client, data, len, &unset);
}

void udp_redir_free(struct udp_relay *u)
{
    struct lru_node *n;

    if (!u->redir)
        return;
    while ((n = lru_oldest(&u->redir->table)))
        udp_redir_close(u, LRU_ENTRY(n, struct udp_redir_sock, node));
    lru_destroy(&u->redir->table);
    free(u->redir);
    u->redir = NULL;
}

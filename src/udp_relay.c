/* udp_relay.c: the UDP relay for every role (udp_relay.h). One relay serves one bound UDP socket
 * of a worker: it reads datagrams in recvmmsg batches, maps each client address to an
 * association (the NAT table of udp_nat.c) that owns one outbound socket per address family,
 * and writes in sendmmsg batches.
 *
 *   server  in:  shadowsocks datagrams, opened by the protocol (proto.h; SIP004 is [salt]
 *                [AEAD(header + data)][tag] under a per-packet subkey) -> the data to the
 *                target the header names.
 *           out: a datagram from any remote on the association's socket -> sealed behind that
 *                remote's address header, to the client. The outbound sockets are unconnected:
 *                a full-cone NAT (RFC 4787 endpoint-independent mapping and filtering), which is
 *                what games, voice and STUN-style hole punching need.
 *   tunnel  in:  plain datagrams -> behind the header of tunnel_address, sealed, to the server.
 *           out: the server's packets opened, header stripped, the data to the app.
 *   redir   in:  TPROXY'd datagrams -> behind the header of their original destination, sealed,
 *                to the server. out: from a transparent socket bound to the remote that
 *                answered, to the app (udp_redir.c).
 *   local   in:  SOCKS5 UDP requests (RFC 1928 section 7) from an IP that holds an ASSOCIATE
 *                control connection -> the request's header and data sealed, to the server.
 *           out: opened, behind RSV FRAG=0, to the client: the header names the remote.
 *
 * Nothing is ever sent towards the sender of a datagram that failed authentication or parsing:
 * it is dropped, counted (udp_dropped) and summarized by w->rl_udp, so the port looks closed to
 * a prober. Receive buffers keep headroom in front of the data, so an address header is
 * prepended in place; opening is in place too, and the hot path copies nothing but the seal.
 * Associations live in udp_assoc.c, the batch vectors in udp_batch.c; "the server" of the
 * client roles is the association's, when there are several (udp_upstream.c). */
#include "autoconfig.h"

#include "udp_relay.h"

#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "log.h"
#include "rp_assert.h"
#include "socks5.h"
#include "udp_private.h"
#include "worker.h"

#define UDP_DEFAULT_TIMEOUT 300
#define UDP_DEFAULT_MAX_ASSOCIATIONS 65536
#define UDP_SOCKS5_PREFIX 3            /* RSV(2) FRAG(1) before the address (RFC 1928 section 7) */
/* UDP takes at most half the descriptors (the RLIMIT_NOFILE soft limit) less this, so that
 * associations can never starve TCP accepts, whose sessions hold two descriptors each. */
#define UDP_FD_RESERVE 16

void udp_drop(struct udp_relay *u, const struct sockaddr *from, const char *why)
{
    char addr[INET6_ADDRSTRLEN + 16];

    metrics_add(&u->stats->udp_dropped, 1);
    log_event(&u->w->rl_udp, "%s (%s)", why,
              from ? netaddr_format(from, addr, sizeof addr) : "no address");
}

/* ---- Towards the shadowsocks server (tunnel, local) --------------------------------------- */

void udp_seal_to_server(struct udp_assoc *a, const uint8_t *plain, size_t len,
                               const struct sockaddr *from)
{
    struct udp_relay *u = a->relay;
    uint8_t *out = udp_tx_buf(u);
    const struct netaddr_target *server = udp_upstream_target(a); /* may move a first */
    struct proto_udp *p = udp_assoc_proto(a);
    long n = p->ctx->ops->seal_datagram(p, a->proto_state, plain, len, out);

    if (n < 0) {
        udp_drop(u, from, "could not seal");
        return;
    }
    struct metrics_upstream *us = udp_upstream_stats(a);
    if (us)
        metrics_add(&us->udp_sent, 1);
    udp_assoc_send(a, server, out, (size_t)n, from);
}

/* Opens a shadowsocks packet in place (a: the sender's association, NULL if it has none yet).
 * Returns the plaintext length, PROTO_BAD, or PROTO_REPLAYED: a packet captured and sent again
 * must not make us send on its behalf, nor answer and so tell a prober what we are. */
static long udp_open(struct udp_relay *u, struct udp_assoc *a, uint8_t *pkt, size_t len,
                     uint8_t **plain)
{
    struct proto_udp *p = a ? udp_assoc_proto(a) : &u->proto;
    return p->ctx->ops->open_datagram(p, a ? a->proto_state : NULL, pkt, len, plain);
}

/* A client's datagram arrived for a: the association is the most recently used, and its
 * replies leave from the address the datagram was sent to. */
static void udp_client_seen(struct udp_relay *u, struct udp_assoc *a)
{
    udp_assoc_touch(a);
    a->local = u->rx.local[u->rx_current];
}

/* ---- Datagrams on the relay's socket ------------------------------------------------------ */

/* Server, protocols with sessions: the association of the packet just opened (none yet when
 * its session is new), which the packet joins. Only a packet that passed the AEAD and then
 * the session's window moves the association to its source address (SIP022 section 3.2: a
 * session outlives its client's address), so a forged or replayed packet cannot redirect
 * the replies. Returns plen, or PROTO_BAD / PROTO_REPLAYED. */
static long udp_server_session(struct udp_relay *u, const struct sockaddr *client, long plen,
                               struct udp_assoc **a, uint64_t *session)
{
    const struct proto_ops *ops = u->proto.ctx->ops;

    if (!ops->session_key(&u->proto, session))
        return PROTO_BAD;
    if (!(*a = udp_assoc_find_session(u, *session)))
        return plen;
    int rc = ops->udp_state_join(&u->proto, (*a)->proto_state);
    if (rc != PROTO_DONE)
        return rc;
    if (!netaddr_equal(client, (struct sockaddr *)&(*a)->nat.client)) {
        char was[INET6_ADDRSTRLEN + 16], now[INET6_ADDRSTRLEN + 16];
        log_debug("udp: session %016llx moved from %s to %s", (unsigned long long)*session,
                  netaddr_format((struct sockaddr *)&(*a)->nat.client, was, sizeof was),
                  netaddr_format(client, now, sizeof now));
        udp_nat_move(&(*a)->nat, client);
    }
    return plen;
}

static void udp_server_in(struct udp_relay *u, const struct sockaddr *client, uint8_t *data,
                          size_t len)
{
    uint8_t *plain;
    struct netaddr_target t;
    uint64_t session = 0;
    bool by_session = u->proto.ctx->ops->session_key != NULL;
    struct udp_assoc *a = by_session ? NULL : udp_assoc_find(u, client, UDP_SCOPE_SHARED);
    long plen = udp_open(u, a, data, len, &plain);

    if (plen >= 0 && by_session)
        plen = udp_server_session(u, client, plen, &a, &session);
    if (plen < 0) {
        udp_drop(u, client,
                 plen == PROTO_REPLAYED ? "replayed packet" : "packet failed authentication");
        return;
    }
    int hl = netaddr_parse_header(plain, (size_t)plen, &t);
    if (hl <= 0) {
        udp_drop(u, client, "malformed address header");
        return;
    }
    /* a new association adopts what this packet told the protocol (udp_assoc_new) */
    if (!a && !(a = by_session ? udp_assoc_new_session(u, client, session)
                               : udp_assoc_new(u, client, -1, UDP_SCOPE_SHARED))) {
        udp_drop(u, client, "out of memory");
        return;
    }
    udp_client_seen(u, a);
    udp_assoc_send(a, &t, plain + hl, (size_t)plen - (size_t)hl, client);
}

static void udp_tunnel_in(struct udp_relay *u, const struct sockaddr *client, uint8_t *data,
                          size_t len)
{
    struct udp_assoc *a = udp_assoc_find(u, client, UDP_SCOPE_SHARED);

    if (!a && !(a = udp_assoc_new(u, client, -1, UDP_SCOPE_SHARED))) {
        udp_drop(u, client, "out of memory");
        return;
    }
    udp_client_seen(u, a);
    uint8_t *plain = data - u->tunnel_header_len; /* inside the headroom */
    memcpy(plain, u->tunnel_header, u->tunnel_header_len);
    udp_seal_to_server(a, plain, u->tunnel_header_len + len, client);
}

/* The IP of a socket address alone (port zero), IPv4-mapped IPv6 as IPv4, so a TCP peer and a
 * UDP source compare equal whichever socket family saw them. */
static void udp_ip_only(const struct sockaddr *sa, struct sockaddr_storage *out)
{
    memset(out, 0, sizeof *out);
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
        if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
            struct sockaddr_in *o4 = (struct sockaddr_in *)out;
            o4->sin_family = AF_INET;
            memcpy(&o4->sin_addr, s6->sin6_addr.s6_addr + 12, 4);
            return;
        }
        struct sockaddr_in6 *o6 = (struct sockaddr_in6 *)out;
        o6->sin6_family = AF_INET6;
        o6->sin6_addr = s6->sin6_addr;
        o6->sin6_scope_id = s6->sin6_scope_id;
    } else if (sa->sa_family == AF_INET) {
        struct sockaddr_in *o4 = (struct sockaddr_in *)out;
        o4->sin_family = AF_INET;
        o4->sin_addr = ((const struct sockaddr_in *)sa)->sin_addr;
    }
}

/* Whether client's IP is the one that opened control connection c. */
static bool udp_ctl_ip_is(const struct udp_ctl *c, const struct sockaddr *client)
{
    struct sockaddr_storage ip;

    udp_ip_only(client, &ip);
    return netaddr_equal((const struct sockaddr *)&c->ip, (struct sockaddr *)&ip);
}

/* For a client that sends to the shared socket rather than to the address the reply named (it
 * works when the kernel hashes its datagrams to this worker): the control connection a new
 * association from client belongs to: one from the same IP, preferring the newest that has no
 * association yet (an application opens its control connection, then sends), else the newest.
 * -1 when the IP holds none. */
static int udp_ctl_pick(const struct udp_relay *u, const struct sockaddr *client)
{
    int best = -1;

    for (int i = 0; i < u->nctls; i++) {
        const struct udp_ctl *c = u->ctls[i];
        if (!c || !udp_ctl_ip_is(c, client))
            continue;
        if (best < 0) {
            best = i;
            continue;
        }
        const struct udp_ctl *b = u->ctls[best];
        bool c_idle = c->nassocs == 0, b_idle = b->nassocs == 0;
        if ((c_idle && !b_idle) || (c_idle == b_idle && c->serial > b->serial))
            best = i;
    }
    return best;
}

/* A SOCKS5 request sent to the socket of scope: a control connection's own socket, which only
 * the IP that opened it may use (RFC 1928 section 6), or the shared one. */
static void udp_socks5_in(struct udp_relay *u, const struct sockaddr *client, uint8_t *data,
                          size_t len, uint32_t scope)
{
    struct netaddr_target t;
    struct udp_assoc *a = udp_assoc_find(u, client, scope);
    int ctl = a ? a->ctl : scope == UDP_SCOPE_SHARED ? udp_ctl_pick(u, client) : (int)scope - 1;

    if (ctl < 0) {
        udp_drop(u, client, "SOCKS5 datagram without a UDP ASSOCIATE");
        return;
    }
    if (scope != UDP_SCOPE_SHARED && !a && !udp_ctl_ip_is(u->ctls[ctl], client)) {
        udp_drop(u, client, "SOCKS5 datagram from another IP than its UDP ASSOCIATE's");
        return;
    }
    /* Fragments (FRAG != 0) are dropped: RFC 1928 section 7 makes reassembly optional. */
    if (socks5_parse_udp_header(data, len, &t) <= 0) {
        udp_drop(u, client, "malformed or fragmented SOCKS5 UDP request");
        return;
    }
    if (!a && !(a = udp_assoc_new(u, client, ctl, scope))) {
        udp_drop(u, client, "out of memory");
        return;
    }
    udp_client_seen(u, a);
    /* The shadowsocks header is the SOCKS5 one without RSV FRAG: sealed as it came. */
    udp_seal_to_server(a, data + UDP_SOCKS5_PREFIX, len - UDP_SOCKS5_PREFIX, client);
}

/* Datagram i of the batch just read, from a client: on the port's socket (scope
 * UDP_SCOPE_SHARED), or on the own socket of a SOCKS5 control connection (UDP_SCOPE_OF_CTL:
 * the local role's UDP ASSOCIATE). */
static void udp_inbound_one(struct udp_relay *u, unsigned i, uint32_t scope)
{
    struct mmsghdr *m = &u->rx.msg[i];
    const struct sockaddr *client = (const struct sockaddr *)&u->rx.addr[i];
    uint8_t *data = u->rx.buf[i] + UDP_HEADROOM;

    u->rx_current = i;
    if ((m->msg_hdr.msg_flags & MSG_TRUNC) || !udp_family_ok(client)) {
        udp_drop(u, client, "oversized datagram");
        return;
    }
    switch (u->role) {
    case ROLE_SERVER:
        udp_server_in(u, client, data, m->msg_len);
        break;
    case ROLE_TUNNEL:
        udp_tunnel_in(u, client, data, m->msg_len);
        break;
    case ROLE_LOCAL:
        udp_socks5_in(u, client, data, m->msg_len, scope);
        break;
    case ROLE_REDIR:
        udp_redir_in(u, client, data, m->msg_len);
        break;
    }
}

/* What each readable socket does with a batch of n datagrams (u->rx); arg is its owner. */
typedef void udp_batch_fn(struct udp_relay *u, int n, void *arg);

/* Reads the socket *fd a batch at a time, each batch handled and then sent on in one flush,
 * until the socket has no more or after UDP_BATCHES_PER_WAKEUP batches, so that the loop's
 * other watchers get their turn. *fd is looked at again each round, as the copies of this loop
 * did (their watcher's or owner's field, which a batch's handling might change). */
static void udp_read_batches(struct udp_relay *u, const int *fd, udp_batch_fn *handle, void *arg)
{
    u->now = udp_clock();
    for (int round = 0; round < UDP_BATCHES_PER_WAKEUP; round++) {
        int n = udp_rx_batch(u, *fd);
        if (n <= 0)
            break;
        handle(u, n, arg);
        udp_tx_flush(u);
        if (n < UDP_BATCH)
            break;
    }
}

static void udp_inbound_batch(struct udp_relay *u, int n, void *arg)
{
    (void)arg;
    metrics_add(&u->stats->udp_packets_in, (uint64_t)n);
    if (u->port->stats)
        metrics_add(&u->port->stats->udp_datagrams, (uint64_t)n);
    for (int i = 0; i < n; i++)
        udp_inbound_one(u, (unsigned)i, UDP_SCOPE_SHARED);
}

static void udp_inbound_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    struct udp_relay *u = io->data;

    (void)loop;
    (void)revents;
    udp_read_batches(u, &u->fd, udp_inbound_batch, NULL);
}

/* ---- Datagrams on an association's outbound socket ---------------------------------------- */

/* Server: a remote answered (any remote: full cone). The client learns who from the header. */
static void udp_server_out(struct udp_assoc *a, const struct sockaddr *from, uint8_t *data,
                           size_t len)
{
    struct udp_relay *u = a->relay;
    uint8_t header[1 + 16 + 2];
    int hl = netaddr_header_from_sockaddr(from, header, sizeof header);

    if (hl < 0) {
        udp_drop(u, from, "reply from an unknown address family");
        return;
    }
    memcpy(data - hl, header, (size_t)hl); /* inside the headroom */
    uint8_t *out = udp_tx_buf(u);
    long n = u->proto.ctx->ops->seal_datagram(&u->proto, a->proto_state, data - hl,
                                              len + (size_t)hl, out);
    if (n < 0) {
        udp_drop(u, from, "could not seal");
        return;
    }
    udp_tx_add(u, udp_assoc_in_fd(a), (struct sockaddr *)&a->nat.client, out, (size_t)n, &a->local);
}

/* Tunnel and local: the server's packet. The tunnel hands the app the data alone; SOCKS5 puts
 * RSV FRAG before the header, which names the remote that answered. */
static void udp_client_out(struct udp_assoc *a, int family, const struct sockaddr *from,
                           uint8_t *data, size_t len)
{
    struct udp_relay *u = a->relay;
    struct netaddr_target t;
    uint8_t *plain;

    /* Only the server's address may answer: anyone can send a reply captured on the way back
     * again, from elsewhere, and it would open (RFC 4787's address-and-port-dependent
     * filtering, which a client towards one server can afford). */
    if (!netaddr_equal(from, (struct sockaddr *)&a->server[family == AF_INET6])) {
        udp_drop(u, from, "reply from another address than the server's");
        return;
    }
    long plen = udp_open(u, a, data, len, &plain);

    if (plen < 0) {
        udp_drop(u, from,
                 plen == PROTO_REPLAYED ? "replayed reply" : "reply failed authentication");
        return;
    }
    struct metrics_upstream *us = udp_upstream_stats(a);
    if (us)
        metrics_add(&us->udp_received, 1);
    int hl = netaddr_parse_header(plain, (size_t)plen, &t);
    if (hl <= 0) {
        udp_drop(u, from, "malformed address header in a reply");
        return;
    }
    if (u->role == ROLE_REDIR) {
        udp_redir_out(a, &t, plain + hl, (size_t)plen - (size_t)hl);
        return;
    }
    const struct sockaddr *client = (const struct sockaddr *)&a->nat.client;
    int out_fd = udp_assoc_in_fd(a);
    if (u->role == ROLE_TUNNEL) {
        udp_tx_add(u, out_fd, client, plain + hl, (size_t)plen - (size_t)hl, &a->local);
        return;
    }
    if (plain - data < UDP_SOCKS5_PREFIX) { /* the protocol's head precedes plain */
        udp_drop(u, from, "no room for the SOCKS5 header");
        return;
    }
    plain -= UDP_SOCKS5_PREFIX;
    memset(plain, 0, UDP_SOCKS5_PREFIX);
    udp_tx_add(u, out_fd, client, plain, (size_t)plen + UDP_SOCKS5_PREFIX, &a->local);
}

/* arg: the association's watcher of the socket read, of one family. */
static void udp_outbound_batch(struct udp_relay *u, int n, void *arg)
{
    ev_io *io = arg;
    struct udp_assoc *a = io->data;
    int family = io == &a->io[1] ? AF_INET6 : AF_INET;

    for (int i = 0; i < n; i++) {
        struct mmsghdr *m = &u->rx.msg[i];
        const struct sockaddr *from = (const struct sockaddr *)&u->rx.addr[i];
        uint8_t *data = u->rx.buf[i] + UDP_HEADROOM;
        if ((m->msg_hdr.msg_flags & MSG_TRUNC) || !udp_family_ok(from))
            udp_drop(u, from, "oversized reply");
        else if (u->role == ROLE_SERVER)
            udp_server_out(a, from, data, m->msg_len);
        else
            udp_client_out(a, family, from, data, m->msg_len);
    }
    udp_assoc_touch(a);
}

void udp_outbound_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    struct udp_assoc *a = io->data;

    (void)loop;
    (void)revents;
    udp_read_batches(a->relay, &io->fd, udp_outbound_batch, io);
}

/* ---- SOCKS5 control connections ------------------------------------------------------------ */

/* The own socket of a control connection is readable: its client's requests. */
static void udp_ctl_batch(struct udp_relay *u, int n, void *arg)
{
    const struct udp_ctl *c = arg;

    metrics_add(&u->stats->udp_packets_in, (uint64_t)n);
    for (int i = 0; i < n; i++)
        udp_inbound_one(u, (unsigned)i, UDP_SCOPE_OF_CTL(c->handle));
}

static void udp_ctl_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    struct udp_ctl *c = io->data;

    (void)loop;
    (void)revents;
    udp_read_batches(c->relay, &c->fd, udp_ctl_batch, c);
}

/* The control connection's own socket, bound to the address its TCP connection arrived on
 * (port 0: the kernel picks one), IPv4-mapped as IPv4. Returns the fd or -1. */
static int udp_ctl_socket(struct udp_relay *u, const struct sockaddr *local,
                          struct sockaddr_storage *bound)
{
    struct sockaddr_storage addr;
    socklen_t len = sizeof *bound;

    udp_ip_only(local, &addr);
    if (!udp_family_ok((struct sockaddr *)&addr) || udp_socket_room(u, NULL) < 0)
        return -1;
    int fd = socket(addr.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (bind(fd, (struct sockaddr *)&addr, netaddr_len((struct sockaddr *)&addr)) < 0 ||
        getsockname(fd, (struct sockaddr *)bound, &len) < 0) {
        close(fd);
        return -1;
    }
    u->nsockets++;
    return fd;
}

/* A free handle, growing the array when all are taken; -1 when out of memory. */
static int udp_ctl_handle(struct udp_relay *u)
{
    int h;

    for (h = 0; h < u->nctls && u->ctls[h]; h++)
        ;
    if (h == u->nctls) {
        int n = u->nctls ? u->nctls * 2 : 8;
        struct udp_ctl **c = realloc(u->ctls, (size_t)n * sizeof *c);
        if (!c)
            return -1;
        memset(c + u->nctls, 0, (size_t)(n - u->nctls) * sizeof *c);
        u->ctls = c;
        u->nctls = n;
    }
    return h;
}

int udp_relay_socks5_open(struct udp_relay *u, const struct sockaddr *client,
                          const struct sockaddr *local, struct sockaddr_storage *bound)
{
    if (!u || !client || !local || !udp_family_ok(client))
        return -1;
    RP_ASSERT(u->role == ROLE_LOCAL); /* its datagrams take udp_inbound_one's SOCKS5 path */
    u->now = udp_clock();
    int h = udp_ctl_handle(u);
    struct udp_ctl *c = h >= 0 ? calloc(1, sizeof *c) : NULL;
    if (!c)
        return -1;
    c->fd = udp_ctl_socket(u, local, bound);
    if (c->fd < 0) {
        free(c);
        return -1;
    }
    c->relay = u;
    c->handle = h;
    LIST_INIT(&c->assocs);
    c->serial = ++u->ctl_serial;
    c->last_active = u->now;
    udp_ip_only(client, &c->ip);
    ev_io_init(&c->io, udp_ctl_cb, c->fd, EV_READ);
    c->io.data = c;
    ev_io_start(u->w->loop, &c->io);
    u->ctls[h] = c;
    return h;
}

void udp_relay_socks5_close(struct udp_relay *u, int handle)
{
    if (!u || handle < 0 || handle >= u->nctls || !u->ctls[handle])
        return;
    struct udp_ctl *c = u->ctls[handle];
    /* RFC 1928 section 6: the association ends with the TCP connection it arrived on. */
    while (!LIST_EMPTY(&c->assocs))
        udp_assoc_free(LIST_FIRST(&c->assocs));
    RP_ASSERT(c->nassocs == 0);
    ev_io_stop(u->w->loop, &c->io);
    udp_tx_forget(u, c->fd);
    close(c->fd);
    u->nsockets--;
    u->ctls[handle] = NULL;
    free(c);
}

double udp_relay_socks5_idle_left(struct udp_relay *u, int handle)
{
    if (!u || handle < 0 || handle >= u->nctls || !u->ctls[handle])
        return 0;
    return u->ctls[handle]->last_active + u->timeout - udp_clock();
}

/* ---- Life cycle --------------------------------------------------------------------------- */

/* The sockets (associations' and control connections') one of a worker's nrelays relays may
 * hold: its share of half the descriptor limit, less UDP_FD_RESERVE. */
static size_t udp_socket_budget(int nrelays, unsigned long long *nofile)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY)
        return SIZE_MAX;
    *nofile = (unsigned long long)rl.rlim_cur;
    size_t half = (size_t)(rl.rlim_cur / 2);
    size_t budget = (half > UDP_FD_RESERVE ? half - UDP_FD_RESERVE : 1) / (size_t)nrelays;
    return budget > 0 ? budget : 1;
}

/* udp_max_associations, lowered to what the descriptor limit allows (said once per worker). */
static void udp_relay_limits(struct udp_relay *u, struct worker *w, int nrelays)
{
    const struct config *cfg = w->cfg;
    unsigned long long nofile = 0;

    u->max_assocs = cfg->udp_max_associations > 0 ? (size_t)cfg->udp_max_associations
                                                  : UDP_DEFAULT_MAX_ASSOCIATIONS;
    u->max_sockets = udp_socket_budget(nrelays > 0 ? nrelays : 1, &nofile);
    if (u->max_sockets >= u->max_assocs)
        return;
    if (w->slot == 0 && w->nudp == 0)
        log_info("udp: at most %zu associations per UDP address (udp_max_associations %zu): "
                 "UDP may take half of nofile %llu less %d descriptors; raise nofile for more",
                 u->max_sockets, u->max_assocs, nofile, UDP_FD_RESERVE);
    u->max_assocs = u->max_sockets;
}

static int udp_relay_setup(struct udp_relay *u, struct worker *w, int nrelays)
{
    const struct config *cfg = w->cfg;

    u->timeout = cfg->udp_timeout > 0 ? cfg->udp_timeout : UDP_DEFAULT_TIMEOUT;
    udp_relay_limits(u, w, nrelays);
    if (u->role != ROLE_SERVER && w->udp_server.atyp != NETADDR_ATYP_IPV4 &&
        w->udp_server.atyp != NETADDR_ATYP_IPV6 && w->udp_server.atyp != NETADDR_ATYP_DOMAIN)
        return -1;
    if (u->role == ROLE_TUNNEL) {
        int n = netaddr_write_header(&w->tunnel, u->tunnel_header, sizeof u->tunnel_header);
        if (n < 0)
            return -1;
        u->tunnel_header_len = (size_t)n;
    }
    uint64_t seed;
    if (crypto_random(&seed, sizeof seed) < 0 || udp_nat_init(&u->nat, seed) < 0)
        return -1;
    const struct proto_ctx *ctx = &u->port->proto;
    if (proto_udp_init(&u->proto, ctx) < 0)
        return -1;
    RP_ASSERT(ctx->ops->datagram_overhead(ctx) <= PROTO_DATAGRAM_OVERHEAD_MAX);
    RP_ASSERT(ctx->ops->udp_state_size <= sizeof(struct proto_udp_state));
    if (udp_upstream_init(u) < 0)
        return -1;
    if (udp_batch_init(&u->rx, UDP_HEADROOM + UDP_DATAGRAM_MAX) < 0 ||
        udp_batch_init(&u->tx, UDP_SEALED_MAX) < 0)
        return -1;
    return 0;
}

struct udp_relay *udp_relay_new(struct worker *w, int fd, int nrelays, int port)
{
    struct udp_relay *u = calloc(1, sizeof *u);

    if (!u)
        return NULL;
    RP_ASSERT(port >= 0 && port < w->nports);
    u->w = w;
    u->port = &w->ports[port];
    u->port->refs++; /* the entry stays while the relay does (worker_ports.c) */
    u->fd = fd;
    u->role = w->cfg->role;
    u->stats = w->stats ? w->stats : &u->own_stats;
    u->now = udp_clock();
    ev_init(&u->expiry, udp_assoc_expiry_cb);
    u->expiry.data = u;
    if (udp_relay_setup(u, w, nrelays) < 0) {
        udp_relay_free(u);
        return NULL;
    }
    /* redir: replies leave by sockets bound to their remote's address, not by fd */
    u->pktinfo = u->role != ROLE_REDIR && udp_local_enable(fd);
    ev_io_init(&u->io, udp_inbound_cb, fd, EV_READ);
    u->io.data = u;
    ev_io_start(w->loop, &u->io);
    return u;
}

void udp_relay_stop_reading(struct udp_relay *u)
{
    ev_io_stop(u->w->loop, &u->io);
}

size_t udp_relay_associations(const struct udp_relay *u)
{
    return udp_nat_count(&u->nat);
}

int udp_relay_fd(const struct udp_relay *u)
{
    return u->fd;
}

const struct worker_port *udp_relay_port(const struct udp_relay *u)
{
    return u->port;
}

void udp_relay_free(struct udp_relay *u)
{
    if (!u)
        return;
    if (u->w->loop) {
        ev_io_stop(u->w->loop, &u->io);
        ev_timer_stop(u->w->loop, &u->expiry);
    }
    for (int h = 0; h < u->nctls; h++)
        udp_relay_socks5_close(u, h);
    udp_assoc_free_all(u);
    udp_redir_free(u);
    free(u->ctls);
    free(u->spare);
    udp_batch_free(&u->rx);
    udp_batch_free(&u->tx);
    udp_upstream_free(u);
    proto_udp_free(&u->proto);
    udp_nat_destroy(&u->nat);
    RP_ASSERT(u->port->refs > 0);
    u->port->refs--;
    free(u);
}

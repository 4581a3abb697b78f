/* udp_private.h: the UDP relay's internals, shared by its three files and nothing else:
 * udp_relay.c (the roles, the socket callbacks, SOCKS5 control connections, life cycle),
 * udp_assoc.c (associations, their outbound sockets, expiry, waiting for DNS) and udp_batch.c
 * (the recvmmsg / sendmmsg vectors), udp_redir.c (the redir role) and udp_upstream.c (several
 * servers). The public interface is udp_relay.h. */
#ifndef RP_UDP_PRIVATE_H
#define RP_UDP_PRIVATE_H

#include <ev.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <time.h>

#include "config.h"
#include "crypto.h"
#include "metrics.h"
#include "netaddr.h"
#include "resolve.h"
#include "proto.h"
#include "udp_nat.h"

struct worker;

#define UDP_BATCH 32                   /* datagrams per recvmmsg / sendmmsg call */
#define UDP_GSO_SEGMENTS 64            /* datagrams per GSO send: the kernel's UDP_MAX_SEGMENTS */
#define UDP_GSO_BYTES 65000            /* payload bytes per GSO send: below the IP maximum */
#define UDP_BATCHES_PER_WAKEUP 8       /* then let the loop's other watchers run */
#define UDP_DATAGRAM_MAX 65536         /* above any UDP payload but IPv6 jumbograms */
#define UDP_HEADROOM 264               /* >= NETADDR_HEADER_MAX: a header fits before the data */
#define UDP_SEALED_MAX (UDP_HEADROOM + UDP_DATAGRAM_MAX + PROTO_DATAGRAM_OVERHEAD_MAX)
#define UDP_LOOKUPS_MAX 8              /* names one association may be resolving at once */
#define UDP_QUEUE_MAX 32               /* datagrams one association may hold waiting for DNS */
#define UDP_QUEUE_BYTES_MAX (4u << 20) /* and every association of the relay together */

/* A datagram waiting for its target's name to resolve. */
struct udp_queued {
    STAILQ_ENTRY(udp_queued) link; /* in its lookup's queue, in arrival order */
    uint16_t port;
    size_t len;
    uint8_t data[];
};

/* One name being resolved for one association, with the datagrams that wait for it. */
struct udp_lookup {
    LIST_ENTRY(udp_lookup) link;       /* in its association's lookups */
    struct udp_assoc *assoc;
    struct resolve_query *query;
    STAILQ_HEAD(udp_queue, udp_queued) queue;
    bool starting;                     /* inside resolve_lookup(): see udp_resolve_start */
    bool done;                         /* answered while starting */
    int status;
    struct resolve_result result;
    char host[256];
};

/* The local address a client's datagram was sent to (from IP_PKTINFO / IPV6_PKTINFO), which
 * its replies leave from: on a wildcard bind the kernel would otherwise pick the routed source
 * address, and a client that sent to another of the host's addresses would drop the reply.
 * family 0: none known (a bind to one address needs none). */
struct udp_local {
    sa_family_t family;
    unsigned ifindex;                  /* IPv6: the interface, for link-local addresses */
    union {
        struct in_addr v4;
        struct in6_addr v6;
    } addr;
};

/* One client's association: its outbound sockets ([0] IPv4, [1] IPv6; -1 until needed). */
struct udp_assoc {
    struct udp_nat_entry nat;
    struct udp_relay *relay;
    int fd[2];
    ev_io io[2];
    /* tunnel, local: where fd[i] last sent (the server): the only source its replies may come
     * from, so a reply captured and sent again by anyone else is not taken */
    struct sockaddr_storage server[2];
    LIST_HEAD(udp_lookups, udp_lookup) lookups;
    unsigned nlookups;
    unsigned nqueued;
    int ctl;                           /* local role: the SOCKS5 control connection, else -1 */
    int upstream;                      /* client roles, several servers: the one it uses */
    LIST_ENTRY(udp_assoc) ctl_link;    /* in its control connection's assocs */
    struct udp_local local;            /* where the client's latest datagram was sent to */
    /* the protocol's state of this association (udp_state_size bytes, after the struct) */
    struct proto_udp_state *proto_state;
};

/* Local role: one live UDP ASSOCIATE control connection, and the UDP socket of its own that
 * the reply named (RFC 1928 section 6: BND.ADDR/BND.PORT), which this worker alone reads: the
 * kernel's SO_REUSEPORT hashing of the shared socket could hand the client's datagrams to a
 * worker that does not hold the control connection. */
struct udp_ctl {
    struct udp_relay *relay;
    int handle;                        /* its index in relay->ctls */
    uint64_t serial;                   /* order of opening */
    struct sockaddr_storage ip;        /* the client's IP, port zero, IPv4-mapped as IPv4 */
    int fd;                            /* its own socket */
    ev_io io;
    double last_active;                /* monotonic: opened, or a datagram of it moved */
    LIST_HEAD(udp_ctl_assocs, udp_assoc) assocs; /* associations that end with it */
    unsigned nassocs;
};

/* One sendmmsg entry of a flush: `count` datagrams from msg[first] on, which when more than one
 * go out as a single UDP GSO send (UDP_SEGMENT, segment size in ctl). */
union udp_ctl_buf {
    char buf[CMSG_SPACE(sizeof(struct in6_pktinfo)) + CMSG_SPACE(sizeof(struct in_pktinfo)) +
             CMSG_SPACE(sizeof(uint16_t))];
    struct cmsghdr align;
};

struct udp_gso_unit {
    unsigned first, count;
    union udp_ctl_buf ctl;
};

/* recvmmsg / sendmmsg vectors. tx entries carry the socket they leave by (-1: forgotten because
 * the association owning that socket was freed before the flush). */
struct udp_batch {
    unsigned n;
    struct mmsghdr msg[UDP_BATCH];
    struct iovec iov[UDP_BATCH];
    struct sockaddr_storage addr[UDP_BATCH];
    int fd[UDP_BATCH];
    bool to_client[UDP_BATCH];         /* tx: leaves by a socket clients send to (counted) */
    uint8_t *buf[UDP_BATCH];
    uint8_t *mem;
    /* rx: where each datagram was sent to (u->fd with pktinfo on); tx: where it leaves from */
    struct udp_local local[UDP_BATCH];
    /* rx, redir role: where each datagram was going (IP_ORIGDSTADDR); family 0: not said */
    struct sockaddr_storage origdst[UDP_BATCH];
    union udp_ctl_buf ctl[UDP_BATCH];
    /* tx: the flush's sendmmsg entries; gso_off once the kernel refused UDP_SEGMENT outright */
    struct mmsghdr unit_msg[UDP_BATCH];
    struct udp_gso_unit unit[UDP_BATCH];
    bool gso_off;
};

struct udp_relay {
    struct worker *w;
    struct worker_port *port;          /* the port fd serves: its protocol context, counters */
    enum config_role role;
    int fd;                            /* the bound socket we serve; the caller's */
    bool pktinfo;                      /* fd is a wildcard bind: datagrams carry their local
                                        * address and replies leave from it */
    unsigned rx_current;               /* the rx entry being handled */
    ev_io io;
    ev_timer expiry;
    double now;                        /* monotonic seconds, refreshed per wakeup */
    double timeout;
    size_t max_assocs;
    size_t max_sockets;                /* of associations and control connections together */
    size_t nsockets;
    struct udp_nat nat;
    struct proto_udp proto;            /* the protocol's datagram scratch */
    /* client roles with several servers (upstream.h): one scratch per server, each with its
     * method and key, and the largest association state among them; else NULL and proto */
    struct proto_udp *upstream_proto;
    size_t state_size;
    struct metrics_worker *stats;
    struct metrics_worker own_stats;   /* used when the worker has no shared counters */
    uint8_t tunnel_header[NETADDR_HEADER_MAX];
    size_t tunnel_header_len;
    size_t queued_bytes;
    struct udp_lookup *spare;          /* reused by lookups answered at once: no malloc */
    struct udp_ctl **ctls;             /* by handle; NULL: free */
    int nctls;
    uint64_t ctl_serial;
    struct udp_redir *redir;           /* redir role: the reply sockets (udp_redir.c), or NULL */
    struct udp_batch rx, tx;
};

/* Expiry runs on the monotonic clock so a wall-clock step neither keeps nor kills flows. */
static inline double udp_clock(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static inline bool udp_family_ok(const struct sockaddr *sa)
{
    return sa->sa_family == AF_INET || sa->sa_family == AF_INET6;
}

/* The NAT scope of a socket the clients send to: 0 for the relay's shared one, handle + 1 for
 * the own socket of the SOCKS5 control connection handle. */
#define UDP_SCOPE_SHARED 0u
#define UDP_SCOPE_OF_CTL(handle) ((uint32_t)(handle) + 1u)

/* udp_relay.c */
/* Counts a dropped datagram and adds it to the rate-limited log summary. */
void udp_drop(struct udp_relay *u, const struct sockaddr *from, const char *why);
/* Readable outbound socket of an association: the roles' "out" direction. */
void udp_outbound_cb(struct ev_loop *loop, ev_io *io, int revents);
/* Seals plain[0..len) into the next tx buffer and sends it to the shadowsocks server from a's
 * socket (client roles): a's server, or with several the best live one when a's is down
 * (udp_upstream.c). from names the sender in drop messages. */
void udp_seal_to_server(struct udp_assoc *a, const uint8_t *plain, size_t len,
                        const struct sockaddr *from);

/* udp_redir.c */
/* A TPROXY'd datagram from client (its original destination in u->rx.origdst[rx_current]),
 * data inside an rx buffer with UDP_HEADROOM in front. */
void udp_redir_in(struct udp_relay *u, const struct sockaddr *client, uint8_t *data, size_t len);
/* The server's reply for a's client, from the remote `from`: sent from that address. */
void udp_redir_out(struct udp_assoc *a, const struct netaddr_target *from, const uint8_t *data,
                   size_t len);
/* Closes the relay's reply sockets (at exit). */
void udp_redir_free(struct udp_relay *u);

/* udp_upstream.c: client roles with several servers */
/* The datagram scratch of a's protocol: its server's, or the relay's only one. */
struct proto_udp *udp_assoc_proto(struct udp_assoc *a);
/* Sets up u->upstream_proto when the worker has several servers; 0, or -1 (out of memory). */
int udp_upstream_init(struct udp_relay *u);
void udp_upstream_free(struct udp_relay *u);
/* A new association's server and fresh protocol state (the relay's only server when one). */
void udp_upstream_assign(struct udp_assoc *a);
/* Before a's next datagram: a keeps its server while that one is alive (the shared probe
 * results, and this worker's own connect failures), else moves to the best live one with a
 * fresh session. Returns where to send. */
const struct netaddr_target *udp_upstream_target(struct udp_assoc *a);
/* The counters of a's server (struct metrics_upstream: datagrams each way, associations,
 * failovers), or NULL when the relay has one server, whose series do not exist. */
struct metrics_upstream *udp_upstream_stats(const struct udp_assoc *a);

/* udp_assoc.c */
struct udp_assoc *udp_assoc_find(struct udp_relay *u, const struct sockaddr *client,
                                 uint32_t scope);
/* A new association for client sending to the socket of scope (local role: ending with
 * control connection ctl, else -1). When the table is full the least recently used one makes
 * room. NULL when out of memory. */
struct udp_assoc *udp_assoc_new(struct udp_relay *u, const struct sockaddr *client, int ctl,
                                uint32_t scope);
/* Server, when the protocol names sessions (proto_ops.session_key): the association of a
 * client session on the shared socket, whatever address the client sends from; a new one has
 * its client at client until an authenticated packet of it comes from elsewhere. */
struct udp_assoc *udp_assoc_find_session(struct udp_relay *u, uint64_t session);
struct udp_assoc *udp_assoc_new_session(struct udp_relay *u, const struct sockaddr *client,
                                        uint64_t session);
/* The socket a's client sends to, which its replies leave by. */
int udp_assoc_in_fd(const struct udp_assoc *a);
void udp_assoc_free(struct udp_assoc *a);
/* Traffic either way: a is the most recently used, and its control connection is not idle. */
void udp_assoc_touch(struct udp_assoc *a);
/* Makes room for one more socket under u->max_sockets by evicting the least recently used
 * association other than keep. Returns 0 when there is room. */
int udp_socket_room(struct udp_relay *u, const struct udp_assoc *keep);
/* Frees every association of the relay (at exit). */
void udp_assoc_free_all(struct udp_relay *u);
/* Sends data from a's outbound socket to dest: an IP address at once, a name once resolved
 * (meanwhile the datagram waits in a bounded queue). from names the sender in drop messages. */
void udp_assoc_send(struct udp_assoc *a, const struct netaddr_target *dest, const uint8_t *data,
                    size_t len, const struct sockaddr *from);
/* The expiry timer's callback (u->expiry): frees associations idle for udp_timeout. */
void udp_assoc_expiry_cb(struct ev_loop *loop, ev_timer *t, int revents);

/* udp_batch.c */
int udp_batch_init(struct udp_batch *b, size_t bufsize);
void udp_batch_free(struct udp_batch *b);
/* Reads up to UDP_BATCH datagrams from fd into u->rx, each at UDP_HEADROOM in its buffer.
 * Returns how many; 0 when none waits or the socket reported an error. */
int udp_rx_batch(struct udp_relay *u, int fd);
/* The buffer the next tx entry may seal into (UDP_SEALED_MAX bytes). */
uint8_t *udp_tx_buf(struct udp_relay *u);
/* Queues one datagram for sending by fd to `to`; data must stay valid until the flush. from:
 * towards a client, the local address it sent to (family 0 when none is known); NULL towards a
 * target or the server. */
void udp_tx_add(struct udp_relay *u, int fd, const struct sockaddr *to, const void *data,
                size_t len, const struct udp_local *from);
/* Turns IP_PKTINFO / IPV6_RECVPKTINFO on when fd is bound to a wildcard address. */
bool udp_local_enable(int fd);
/* Entries of a socket about to be closed are dropped at the flush. */
void udp_tx_forget(struct udp_relay *u, int fd);
void udp_tx_flush(struct udp_relay *u);

#endif

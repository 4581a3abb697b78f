/* udp_relay.h: the UDP relay for every role, one per bound UDP socket of a worker: associations
 * (a NAT table keyed by client address, full-cone), recvmmsg/sendmmsg batches, expiry. */
#ifndef RP_UDP_RELAY_H
#define RP_UDP_RELAY_H

#include <sys/socket.h>

struct worker;
struct worker_port;
struct udp_relay;

/* fd: a bound, non-blocking UDP socket that this relay reads (the role comes from w->cfg:
 * server: shadowsocks packets in; tunnel: plain datagrams in, sent to cfg tunnel_address through
 * the server; local: SOCKS5 UDP requests in). NULL on failure. The fd stays the caller's (the
 * master holds it across worker restarts): udp_relay_free() does not close it.
 * udp_timeout and udp_max_associations apply to each relay's own table. nrelays: how many
 * relays the worker runs; they share half its descriptor limit (RLIMIT_NOFILE) less a reserve,
 * which may lower udp_max_associations (logged once per worker). */
/* port: the index in w->ports of the port fd serves (its protocol context). */
struct udp_relay *udp_relay_new(struct worker *w, int fd, int nrelays, int port);
/* Stops reading and frees every association and its sockets. */
void udp_relay_free(struct udp_relay *u);
/* Its socket (not owned) and the port it serves. */
int udp_relay_fd(const struct udp_relay *u);
const struct worker_port *udp_relay_port(const struct udp_relay *u);
/* Drain: stops reading the bound socket (the worker replacing this one reads it now) while the
 * associations stay, so replies to datagrams already relayed still reach their clients. */
void udp_relay_stop_reading(struct udp_relay *u);
/* Live user changes (worker_users.c): frees the associations whose user key the worker retired
 * (its port's key_retired) at or before close_before. */
void udp_relay_close_retired(struct udp_relay *u, double close_before);
/* Associations open now. */
size_t udp_relay_associations(const struct udp_relay *u);
/* SOCKS5 role: a UDP ASSOCIATE control connection from client (its TCP peer address) arrived
 * on local (the TCP socket's own address). It gets a UDP socket of its own, bound to local's
 * IP on a port the kernel picks, read by this worker alone: *bound, for the reply's BND.ADDR
 * and BND.PORT (RFC 1928 section 6). Datagrams to it are served from client's IP only, while
 * the connection lives. Returns a handle >= 0, or -1 (out of memory or descriptors). */
int udp_relay_socks5_open(struct udp_relay *u, const struct sockaddr *client,
                          const struct sockaddr *local, struct sockaddr_storage *bound);
/* The control connection closed: its socket and associations go with it. (A client that sends
 * to the shared UDP socket instead works when the kernel hashes it to this worker: a new
 * association there belongs to the newest control connection from its IP that has none yet,
 * else to the newest: applications open their control connection, then send.) */
void udp_relay_socks5_close(struct udp_relay *u, int handle);
/* Seconds before the control connection has moved no datagram either way for udp_timeout
 * (<= 0: it has: close it). */
double udp_relay_socks5_idle_left(struct udp_relay *u, int handle);

#endif

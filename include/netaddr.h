/* netaddr.h: addresses and sockets in one place. The SOCKS5/shadowsocks address header
 * (ATYP | address | port, RFC 1928 section 5) as a pure parser and writer; "host:port" strings;
 * sockaddr formatting; and every socket option reuseproxy sets. */
#ifndef RP_NETADDR_H
#define RP_NETADDR_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define NETADDR_ATYP_IPV4 1
#define NETADDR_ATYP_DOMAIN 3
#define NETADDR_ATYP_IPV6 4
/* Longest header: ATYP + length + 255-byte name + port. */
#define NETADDR_HEADER_MAX (1 + 1 + 255 + 2)

/* A target as the protocol names it: an IP address, or a domain name still to be resolved. */
struct netaddr_target {
    int atyp;                        /* NETADDR_ATYP_* */
    char host[256];                  /* domain name (NUL-terminated), or the IP as text */
    uint16_t port;                   /* host order */
    struct sockaddr_storage addr;    /* set for IPv4/IPv6 targets (port included) */
    socklen_t addrlen;               /* 0 for a domain name */
};

/* Parses an address header at buf[0..len). Returns the bytes it used (> 0), 0 if the header is
 * incomplete, -1 if it is malformed (unknown ATYP, zero-length name, or a name byte that is not
 * printable ASCII: NUL, control, space, DEL and >= 0x80 are refused, as soon as they arrive).
 * t is written only when the result is > 0. */
int netaddr_parse_header(const uint8_t *buf, size_t len, struct netaddr_target *t);
/* Writes t's header to out (cap bytes). Returns its length or -1. */
int netaddr_write_header(const struct netaddr_target *t, uint8_t *out, size_t cap);
/* Writes the header for an IP socket address. An IPv4-mapped IPv6 address (::ffff:a.b.c.d, as
 * a dual-stack socket reports IPv4 peers) is written as ATYP 1. Returns its length or -1. */
int netaddr_header_from_sockaddr(const struct sockaddr *sa, uint8_t *out, size_t cap);

/* ---- "host:port" text: the one parser of the tree ----
 * Every address a person writes (the server list, tunnel_address, metrics_address, nameservers,
 * local_address, -s/-L/-d/-b/--metrics) goes through netaddr_parse_hostport(), once, when the
 * configuration is loaded; the rest of the program receives the typed result. */

/* Which family to try first when the host is a name still to be resolved. */
enum netaddr_prefer { NETADDR_PREFER_ANY = 0, NETADDR_PREFER_IPV4, NETADDR_PREFER_IPV6 };

/* A parsed address: either an IP literal (target.addr/addrlen set, port included) or a host
 * name and port (target.addrlen 0, atyp NETADDR_ATYP_DOMAIN), and the family preference for
 * resolving the name. target.port 0 means "no port given" (only with NETADDR_PORT_OPTIONAL or
 * NETADDR_PORT_ZERO): the caller's default applies. */
struct netaddr_endpoint {
    struct netaddr_target target;
    enum netaddr_prefer prefer;
};

#define NETADDR_PORT_OPTIONAL 0x1 /* "host", "[v6]" and a bare IPv6 literal stand alone */
#define NETADDR_NUMERIC 0x2       /* the host must be an IP literal: nothing to resolve */
#define NETADDR_PORT_ZERO 0x4     /* ":0" is accepted (the kernel picks the port) */

/* A decimal port 0..65535 in s[0..len): digits only (no sign, no spaces, no "0x"). Returns 0
 * or -1. */
int netaddr_port_value(const char *s, size_t len, uint16_t *port);
/* A decimal port 1..65535 in s[0..len): digits only (no sign, no spaces, no "0x"). Returns 0
 * or -1. */
int netaddr_parse_port(const char *s, size_t len, uint16_t *port);
/* Parses s[0..len) as "host:port" or "[ipv6]:port" (and, with NETADDR_PORT_OPTIONAL, "host",
 * "[ipv6]" or a bare IPv6 literal). A host is an IPv4 literal, an IPv6 literal (in brackets
 * when a port follows, RFC 3986 section 3.2.2) or a name of 1..255 letters, digits, '.', '-'
 * and '_' (RFC 1123 section 2.1, plus the underscore seen in the wild). Returns 0, or -1 for a
 * missing or out-of-range port, an empty or malformed host, bad brackets, or a name where
 * NETADDR_NUMERIC asks for a literal. e is written only on success. */
int netaddr_parse_hostport(const char *s, size_t len, unsigned flags, struct netaddr_endpoint *e);
/* A comma-separated list of the above (spaces around items allowed), at most max items.
 * Returns how many, or -1 if an item is malformed, empty, or one too many. */
int netaddr_parse_list(const char *s, unsigned flags, struct netaddr_endpoint *out, int max);
/* Sets a target's port, in its sockaddr too when it holds an IP literal. */
void netaddr_set_target_port(struct netaddr_target *t, uint16_t port);
/* netaddr_parse_hostport(s, strlen(s), 0, ...) into a bare target; NULL is refused. */
int netaddr_target_from_string(const char *s, struct netaddr_target *t);
/* family's address in network order (AF_INET: 4 bytes, AF_INET6: 16) and a port into *ss, the
 * rest zeroed. Returns its length. */
socklen_t netaddr_from_ip_bytes(int family, const void *ip, uint16_t port,
                                struct sockaddr_storage *ss);
/* An IP literal and a port into a sockaddr. Returns 0, or -1 if ip is not a literal. */
int netaddr_from_ip(const char *ip, uint16_t port, struct sockaddr_storage *ss, socklen_t *len);
/* "1.2.3.4:80" or "[::1]:80". Returns buf. */
const char *netaddr_format(const struct sockaddr *sa, char *buf, size_t len);
uint16_t netaddr_port(const struct sockaddr *sa);
void netaddr_set_port(struct sockaddr *sa, uint16_t port);
socklen_t netaddr_len(const struct sockaddr *sa);
bool netaddr_equal(const struct sockaddr *a, const struct sockaddr *b); /* address and port */
/* The host part of sa, port left out, as 16 bytes: IPv6 as it is, IPv4 as ::ffff:a.b.c.d, so
 * a client is the same source whichever family its socket showed. 0, or -1 for other families.
 * For per-source limits (metrics_http.c, handshake_limit.c). */
int netaddr_host_key(const struct sockaddr *sa, uint8_t key[16]);

/* A network in the netaddr_host_key() form: IPv4 as ::ffff:a.b.c.d/(96 + prefix), so one
 * match serves both families and an IPv4 client on a dual-stack socket. */
struct netaddr_cidr {
    uint8_t addr[16]; /* host bits cleared */
    uint8_t prefix;   /* 0..128, over the 16 bytes */
};
/* "a.b.c.d/n" (n 0..32), "ipv6/n" (n 0..128), or an address alone (one host). Bits set past
 * the prefix are cleared (10.1.2.3/8 is 10.0.0.0/8). Returns 0, or -1 for anything else. */
int netaddr_parse_cidr(const char *s, struct netaddr_cidr *out);
/* True when sa (AF_INET or AF_INET6) is inside one of the n networks. */
bool netaddr_cidr_match(const struct netaddr_cidr *list, int n, const struct sockaddr *sa);

/* Socket options and helpers. Each returns 0 (or an fd) on success, -1 with errno set. */
#define NETADDR_REUSEPORT 0x1   /* SO_REUSEPORT: one socket per worker slot, kernel balances */
#define NETADDR_FASTOPEN 0x2    /* TCP_FASTOPEN on a listener */
#define NETADDR_V6ONLY 0x4      /* IPV6_V6ONLY on an IPv6 socket */
#define NETADDR_NODELAY 0x8     /* TCP_NODELAY */
#define NETADDR_TRANSPARENT 0x10 /* IP(V6)_TRANSPARENT: TPROXY'd traffic (the redir role) */
#define NETADDR_ORIGDST 0x20     /* UDP: IP(V6)_RECVORIGDSTADDR, each datagram's destination */
int netaddr_set_nonblock(int fd);
int netaddr_set_cloexec(int fd, bool on);
/* Sends data[0..len) over the Unix socket sock, with the descriptor fd (SCM_RIGHTS, unix(7))
 * when fd >= 0; never blocks nor raises SIGPIPE. 0 once all len bytes went, else -1. */
int netaddr_send_fd(int sock, const void *data, size_t len, int fd);
/* Receives one message of at most len bytes from sock without blocking, and the descriptor it
 * carries into *fd (close-on-exec; -1: none). Returns recvmsg's count: 0 at the peer's end, -1
 * with errno. truncated (may be NULL): set when the message was longer than len. */
ssize_t netaddr_recv_fd(int sock, void *data, size_t len, int *fd, bool *truncated);
/* A non-blocking listening TCP socket bound to sa. */
int netaddr_listen_tcp(const struct sockaddr *sa, socklen_t len, int backlog, unsigned flags);
/* A non-blocking UDP socket bound to sa. */
int netaddr_bind_udp(const struct sockaddr *sa, socklen_t len, unsigned flags);
/* Starts a non-blocking TCP connect; NETADDR_NODELAY sets TCP_NODELAY. With NETADDR_FASTOPEN
 * the socket gets TCP_FASTOPEN_CONNECT (Linux 4.11+): when the kernel holds a TFO cookie for the
 * peer, connect() succeeds at once without sending anything and the first write() sends the SYN
 * carrying that data; without a cookie (or if the kernel refuses the option) it is a plain
 * handshake. Either way the caller does the same: wait for writability, read SO_ERROR, write
 * (the deferred socket is writable at once). Returns the fd or -1 with errno set. */
int netaddr_connect_tcp(const struct sockaddr *sa, socklen_t len, unsigned flags);

/* ---- Outgoing sockets: towards a target or the server, in every role ---- */
struct netaddr_outgoing {
    struct sockaddr_storage bind4, bind6; /* source address per family (port 0); family 0: any */
    char interface[16];                   /* SO_BINDTODEVICE (IFNAMSIZ); "" = none */
    uint32_t fwmark;                      /* SO_MARK, 0 = none */
    int keepalive;                        /* TCP keepalive idle seconds, 0 = off */
    bool mptcp;                           /* TCP as IPPROTO_MPTCP where the kernel has it */
};
/* The one place every outgoing socket is made: a non-blocking, close-on-exec socket of family
 * and type (SOCK_STREAM or SOCK_DGRAM) with o's options (o NULL: none). A kernel without MPTCP
 * (or with net.mptcp.enabled=0) gives a plain TCP socket and sets *mptcp_refused, for the
 * caller to say so once. Returns the fd, or -1 with errno set (an option the kernel refused,
 * such as SO_MARK without CAP_NET_ADMIN). */
int netaddr_socket_out(const struct netaddr_outgoing *o, int family, int type, bool *mptcp_refused);
/* o's options (but MPTCP, chosen at socket()) on fd, a socket of family and type that someone
 * else made (c-ares' DNS sockets). 0, or -1 with errno set; fd stays open either way. */
int netaddr_set_outgoing(int fd, const struct netaddr_outgoing *o, int family, int type);
/* netaddr_connect_tcp on a socket from netaddr_socket_out. */
int netaddr_connect_out(const struct netaddr_outgoing *o, const struct sockaddr *sa, socklen_t len,
                        unsigned flags, bool *mptcp_refused);
/* SO_KEEPALIVE with the first probe after idle seconds (and probes idle seconds apart); 0
 * leaves the socket alone. */
int netaddr_set_keepalive(int fd, int idle);

#endif

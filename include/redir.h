/* redir.h: the redir role's kernel side (ss-redir's job): where a connection or a datagram that
 * the firewall sent to us transparently was really going, and the sockets that answer in the
 * name of that destination. Used by relay.c (TCP) and udp_redir.c (UDP); the sockets
 * themselves are made transparent by sockets.c (NETADDR_TRANSPARENT, NETADDR_ORIGDST). */
#ifndef RP_REDIR_H
#define RP_REDIR_H

#include <stdint.h>
#include <sys/socket.h>

#include "config.h"
#include "netaddr.h"

/* The original destination of an accepted connection fd, as a target: mode
 * TCP_REDIR_REDIRECT asks conntrack (SO_ORIGINAL_DST / IP6T_SO_ORIGINAL_DST: the address before
 * nftables' REDIRECT rewrote it), TCP_REDIR_TPROXY reads the socket's own local address (TPROXY
 * leaves the destination as it was). Returns 0, or -1 with *why saying what failed: no such
 * conntrack entry, or a connection made to the redir port directly (not redirected: relaying it
 * would only reach ourselves again). */
int redir_tcp_target(int fd, enum config_tcp_redir mode, struct netaddr_target *t,
                     const char **why);
/* The IP_ORIGDSTADDR / IPV6_ORIGDSTADDR of a datagram read with NETADDR_ORIGDST into dst.
 * Returns 0, or -1 when the datagram carries none. */
int redir_udp_destination(const struct msghdr *h, struct sockaddr_storage *dst);
/* A UDP socket bound to from, an address of another host (IP_TRANSPARENT), to send replies
 * from: the client then sees its answer come from the address it asked. SO_REUSEADDR, since
 * every worker (and the client's next flow) may need the same one. fwmark as the outgoing
 * sockets' (0: none). Returns the fd (non-blocking, close-on-exec) or -1 with errno set. */
int redir_udp_reply_socket(const struct sockaddr *from, uint32_t fwmark);

#endif

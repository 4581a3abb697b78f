/* relay_addrs.h: the server's own listening endpoints, so that a request whose target is the
 * server itself is refused (issue 20 item 3). A key holder could otherwise nest first flights
 * that each target the server again: one 11 KB write made 200 nested sessions. A listener bound
 * to a specific address is that address and port; one bound to a wildcard is every local
 * address of its family on that port (the interfaces' addresses from getifaddrs(), all of
 * loopback, and the unspecified address, which connect() takes as this host). */
#ifndef RP_RELAY_ADDRS_H
#define RP_RELAY_ADDRS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

struct relay_addrs;

struct relay_addrs *relay_addrs_new(void);
void relay_addrs_free(struct relay_addrs *a);

/* Adds a listening endpoint (IPv4 or IPv6 with its port; an IPv4-mapped IPv6 address counts
 * as IPv4; a wildcard stands for every local address of its family). Returns 0, or -1 for
 * another family or when memory is exhausted. */
int relay_addrs_add_listener(struct relay_addrs *a, const struct sockaddr *sa);
/* The same for a listening socket, from getsockname(). */
int relay_addrs_add_socket(struct relay_addrs *a, int fd);
/* Adds one local interface address (its port is ignored). */
int relay_addrs_add_local(struct relay_addrs *a, const struct sockaddr *sa);
/* Forgets the local interface addresses (the listeners stay). */
void relay_addrs_clear_local(struct relay_addrs *a);
/* True when a wildcard listener makes the local addresses matter (worth refreshing). */
bool relay_addrs_needs_local(const struct relay_addrs *a);

/* Reads the interface addresses again with getifaddrs() (a netlink dump: cheap, but not for
 * every connection), if the last read is older than max_age seconds at now (any clock, the
 * same every call). Returns 0, or -1 when getifaddrs() failed (the old list stays). */
int relay_addrs_refresh(struct relay_addrs *a, double now, double max_age);

/* True when connecting to sa (address and port) would reach one of the listeners. */
bool relay_addrs_contains(const struct relay_addrs *a, const struct sockaddr *sa);

#endif

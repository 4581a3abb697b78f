/* acl.h: where the server may connect. block_private refuses loopback, RFC 1918 / ULA,
 * link-local, CGNAT, multicast, unspecified and reserved ranges (IPv4, IPv6, IPv4-mapped); an
 * optional shadowsocks-libev ACL file adds its [outbound_block_list]. Checked on the resolved
 * address actually connected to. */
#ifndef RP_ACL_H
#define RP_ACL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

struct acl;

struct acl *acl_new(bool block_private);
/* Loads a libev ACL file; only [outbound_block_list] matters to a server (IP, CIDR and
 * hostname-regex lines). Other sections are accepted and ignored. Returns 0, or -1 with
 * "FILE:LINE: what" in err. */
int acl_load_file(struct acl *a, const char *path, char *err, size_t errlen);
void acl_free(struct acl *a);

/* True when the server may connect to this resolved address. */
bool acl_address_allowed(const struct acl *a, const struct sockaddr *sa);
/* True when a domain name target is blocked by a hostname rule (before resolving). */
bool acl_host_blocked(const struct acl *a, const char *host);
/* The block_private predicate alone. */
bool acl_is_private(const struct sockaddr *sa);

#endif

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
 * hostname-regex lines: POSIX extended, case-insensitive). Other known sections, and lines before
 * any section, are accepted and ignored; '#' starts a comment line. Returns 0, or -1 with
 * "FILE:LINE: what" in err (invalid address or CIDR, invalid regex, unknown section); after an
 * error a keeps the rules of the lines before it, so callers free it. */
int acl_load_file(struct acl *a, const char *path, char *err, size_t errlen);
void acl_free(struct acl *a);

/* True when the server may connect to this resolved address: an IP (v4, v6, v4-mapped) that is
 * neither private (with block_private) nor in a CIDR rule. a == NULL means no policy. */
bool acl_address_allowed(const struct acl *a, const struct sockaddr *sa);
/* True when a domain name target is blocked by a hostname rule (before resolving): it equals a
 * listed name or matches a regex, ignoring case and one trailing dot. An IP literal is judged by
 * the CIDR rules instead. a == NULL blocks nothing. */
bool acl_host_blocked(const struct acl *a, const char *host);
/* The block_private predicate alone (true for any non-IP address family). */
bool acl_is_private(const struct sockaddr *sa);

#endif

/* acl.h: access control. block_private refuses loopback, RFC 1918 / ULA, link-local, CGNAT,
 * multicast, unspecified and reserved ranges (IPv4, IPv6, IPv4-mapped) as server targets; an
 * optional shadowsocks-libev ACL file adds, with libev's meaning:
 *   [outbound_block_list]        targets refused (by the server; by a client role before it
 *                                routes them, as shadowsocks-rust's local does);
 *   [black_list] = [bypass_list] clients a server refuses / targets a client connects to directly;
 *   [white_list] = [proxy_list]  clients a server accepts / targets a client sends to the server;
 *   [accept_all] = [proxy_all]   mode (the default): only the black list is refused / bypassed;
 *   [reject_all] = [bypass_all]  mode: all but the white list is refused / bypassed.
 * Lines before any header belong to the black list; the last mode header wins; an address or
 * name in both lists counts as black. */
#ifndef RP_ACL_H
#define RP_ACL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

struct acl;

enum acl_mode {
    ACL_ACCEPT_ALL, /* [accept_all] / [proxy_all], libev's default */
    ACL_REJECT_ALL, /* [reject_all] / [bypass_all] */
};

enum acl_route {
    ACL_PROXY,  /* through the server */
    ACL_BYPASS, /* connect to the target directly */
};

/* Which sections a loaded file had (acl_sections): a caller can tell a server that bypass or
 * proxy lists mean nothing to it only as client filters, or report the mode. */
#define ACL_SECTION_OUTBOUND_BLOCK 0x1u
#define ACL_SECTION_BLACK 0x2u         /* [black_list]/[bypass_list], or rules before any header */
#define ACL_SECTION_WHITE 0x4u         /* [white_list]/[proxy_list] */
#define ACL_SECTION_MODE 0x8u          /* any of the four mode headers */
#define ACL_SECTION_CLIENT_NAMES 0x10u /* spelled [bypass_list] [proxy_list] [*_all] of a client   \
                                        */
#define ACL_SECTION_SERVER_NAMES 0x20u /* spelled [black_list] [white_list] [accept/reject_all] */

struct acl *acl_new(bool block_private);
/* Loads a libev ACL file: each line (white space around it ignored, '#' to the end of a line a
 * comment) is a section header, an IPv4 or IPv6 address, a CIDR, or a host-name regex (POSIX
 * extended, case-insensitive; a host also matches a rule whose text equals it). Returns 0, or
 * -1 with "FILE:LINE: what" in err (invalid address or CIDR, invalid regex, unknown section);
 * after an error a keeps the rules of the lines before it, so callers free it. */
int acl_load_file(struct acl *a, const char *path, char *err, size_t errlen);
void acl_free(struct acl *a);

/* True when the server may connect to this resolved address: an IP (v4, v6, v4-mapped) that is
 * neither private (with block_private) nor in [outbound_block_list]. a == NULL means no policy. */
bool acl_address_allowed(const struct acl *a, const struct sockaddr *sa);
/* True when a domain name target is blocked by an [outbound_block_list] name rule (before
 * resolving), ignoring case and one trailing dot. An IP literal is judged by that list's
 * networks instead. a == NULL blocks nothing. */
bool acl_host_blocked(const struct acl *a, const char *host);
/* The block_private predicate alone (true for any non-IP address family). */
bool acl_is_private(const struct sockaddr *sa);

/* Server role: true when a client from this address may be served. accept_all: all but the
 * black list; reject_all: only the white list (and not the black). A v4-mapped address counts
 * as its IPv4 address. a == NULL, or a non-IP peer, is allowed. */
bool acl_client_allowed(const struct acl *a, const struct sockaddr *client);
/* Local and tunnel roles: the route to a target given as a name or an IP literal. A name is
 * matched against the host rules (bypass list first), an IP literal against the networks;
 * a name no rule matches takes the mode's route (proxy_all: proxy; bypass_all: bypass) without
 * being resolved (libev resolves it and routes by the address). a == NULL: proxy. */
enum acl_route acl_route_host(const struct acl *a, const char *host);
/* The same for a target given as an address. */
enum acl_route acl_route_address(const struct acl *a, const struct sockaddr *sa);
/* The mode the file set (ACL_ACCEPT_ALL without one, or for a == NULL). */
enum acl_mode acl_get_mode(const struct acl *a);
/* The ACL_SECTION_* bits of the loaded files (0 for a == NULL). */
unsigned acl_sections(const struct acl *a);
/* A note for a file whose sections read differently in this role (client spellings in a
 * server), or NULL. Static text. */
const char *acl_role_note(const struct acl *a, bool server);
/* One line saying what the file does in this role, e.g. "mode accept_all: serves all clients
 * but black-listed ones". Returns snprintf's length. */
size_t acl_describe(const struct acl *a, bool server, char *buf, size_t len);

#endif

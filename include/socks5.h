/* socks5.h: the SOCKS5 handshake (RFC 1928) as a parser over bytes: no I/O inside.
 * Only the no-authentication method (0x00), CONNECT and UDP ASSOCIATE are served. */
#ifndef RP_SOCKS5_H
#define RP_SOCKS5_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "netaddr.h"

#define SOCKS5_VERSION 5
#define SOCKS5_METHOD_NOAUTH 0x00
#define SOCKS5_METHOD_NONE 0xFF
#define SOCKS5_CMD_CONNECT 1
#define SOCKS5_CMD_BIND 2
#define SOCKS5_CMD_UDP_ASSOCIATE 3
#define SOCKS5_REP_SUCCEEDED 0
#define SOCKS5_REP_GENERAL_FAILURE 1
#define SOCKS5_REP_NOT_ALLOWED 2
#define SOCKS5_REP_NETWORK_UNREACHABLE 3
#define SOCKS5_REP_HOST_UNREACHABLE 4
#define SOCKS5_REP_CONNECTION_REFUSED 5
#define SOCKS5_REP_COMMAND_NOT_SUPPORTED 7
#define SOCKS5_REP_ATYP_NOT_SUPPORTED 8

enum socks5_result { SOCKS5_NEED_MORE = 0, SOCKS5_DONE = 1, SOCKS5_BAD = -1 };

/* Method selection (section 3). On SOCKS5_DONE, *consumed is set and *method is the method to
 * answer with: SOCKS5_METHOD_NOAUTH if offered, else SOCKS5_METHOD_NONE. */
int socks5_parse_greeting(const uint8_t *buf, size_t len, size_t *consumed, uint8_t *method);

struct socks5_request {
    uint8_t cmd;
    struct netaddr_target target;
    size_t header_offset;  /* where the ATYP..PORT bytes start in buf (to forward them as is) */
    size_t header_len;
};
/* Request (section 4). SOCKS5_BAD for a wrong version or malformed address; an unknown command
 * parses (the caller answers COMMAND_NOT_SUPPORTED). */
int socks5_parse_request(const uint8_t *buf, size_t len, size_t *consumed,
                         struct socks5_request *r);
/* Writes a reply (section 6) with the bound address (NULL: 0.0.0.0:0; an IPv4-mapped address is
 * written as IPv4). Returns its length (10 or 22), or -1 if cap is too small or bound is not an
 * IP address. */
int socks5_write_reply(uint8_t *out, size_t cap, uint8_t rep, const struct sockaddr *bound);

/* UDP request header (section 7): RSV(2) FRAG(1) ATYP DST.ADDR DST.PORT. Returns the header
 * length (> 0) or -1 if malformed or FRAG != 0 (fragments are dropped). */
int socks5_parse_udp_header(const uint8_t *buf, size_t len, struct netaddr_target *t);
/* Writes RSV FRAG=0 and the address header of sa. Returns its length or -1. */
int socks5_write_udp_header(uint8_t *out, size_t cap, const struct sockaddr *sa);

#endif

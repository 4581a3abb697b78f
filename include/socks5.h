/* socks5.h: the SOCKS5 handshake (RFC 1928) as a parser over bytes: no I/O inside.
 * The no-authentication (0x00) and username/password (0x02, RFC 1929) methods, CONNECT and UDP
 * ASSOCIATE are served; so is SOCKS4/4a CONNECT, which some tools still send. */
#ifndef RP_SOCKS5_H
#define RP_SOCKS5_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "netaddr.h"

#define SOCKS5_VERSION 5
#define SOCKS5_METHOD_NOAUTH 0x00
#define SOCKS5_METHOD_USERPASS 0x02
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
/* The same when the server wants the method `wanted`: *method is wanted if offered, else
 * SOCKS5_METHOD_NONE. */
int socks5_parse_greeting_for(const uint8_t *buf, size_t len, uint8_t wanted, size_t *consumed,
                              uint8_t *method);

/* RFC 1929 section 2: VER(1) ULEN UNAME PLEN PASSWD. The spans point into buf. */
#define SOCKS5_USERPASS_VERSION 1
struct socks5_userpass {
    const uint8_t *user, *pass;
    size_t user_len, pass_len;
};
int socks5_parse_userpass(const uint8_t *buf, size_t len, size_t *consumed,
                          struct socks5_userpass *up);
/* The subnegotiation's reply: VER 1, STATUS 0 (success) or 1 (failure). Returns 2 or -1. */
int socks5_write_userpass_reply(uint8_t *out, size_t cap, bool ok);

/* SOCKS4 (and 4a's host name) CONNECT: VN=4 CD DSTPORT DSTIP USERID NUL [HOST NUL]. A user id
 * or a 4a host of more than 255 bytes is refused (SOCKS5_BAD) without waiting for its end. */
#define SOCKS4_VERSION 4
#define SOCKS4_USERID_MAX 255
#define SOCKS4_REP_GRANTED 0x5A
#define SOCKS4_REP_REJECTED 0x5B
struct socks4_request {
    uint8_t cmd;
    struct netaddr_target target;
    uint8_t header[NETADDR_HEADER_MAX]; /* the target as a SOCKS5 address header */
    size_t header_len;
};
int socks4_parse_request(const uint8_t *buf, size_t len, size_t *consumed,
                         struct socks4_request *r);
/* VN 0, CD granted or rejected, DSTPORT and DSTIP zero. Returns 8 or -1. */
int socks4_write_reply(uint8_t *out, size_t cap, bool granted);

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

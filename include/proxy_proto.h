/* proxy_proto.h: the PROXY protocol header (HAProxy's proxy-protocol.txt, versions 1 and 2) an
 * L4 balancer puts in front of a connection to say whose it really is. A pure parser over
 * bytes: no I/O, no state between calls; the caller keeps the bytes and calls again with more.
 *
 * Version 1 is one text line, "PROXY TCP4|TCP6|UNKNOWN ...\r\n", at most 107 bytes (section
 * 2.1). Version 2 is a 16-byte binary head (12-byte signature, version/command, family,
 * length) and `length` bytes of addresses and TLVs (section 2.2); the TLVs are checked to be
 * well framed and skipped. */
#ifndef RP_PROXY_PROTO_H
#define RP_PROXY_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Section 2.1: "a receiver may reject an incomplete line which does not contain the CRLF
 * sequence in the first 107 characters". */
#define PROXY_PROTO_V1_MAX 107
/* Section 2.2: the fixed part of a version 2 header. */
#define PROXY_PROTO_V2_HEAD 16

struct proxy_proto_header {
    int version; /* 1 or 2 */
    /* True when the header carries a client address (v1 TCP4/TCP6, v2 PROXY over TCP/IPv4 or
     * TCP/IPv6). False for v1 UNKNOWN, v2 LOCAL (the balancer's own health check) and a v2
     * PROXY of the unspecified or the unix family: the connection's own address stands. */
    bool has_address;
    struct sockaddr_storage src; /* the client, port included (has_address only) */
    struct sockaddr_storage dst; /* where the client connected to the balancer */
};

/* Parses a header at buf[0..len). Returns the bytes it takes (> 0) and fills h; 0 when buf is
 * a correct but incomplete start of a header (more bytes needed); -1 when the bytes cannot
 * start or be a header (wrong signature, version, command, family, address, port, length,
 * TLV framing, a v1 line over 107 bytes). A wrong first byte is refused at once. h is written
 * only when the result is > 0. The v2 length is at most 16 + 65535 bytes: a caller whose
 * buffer is smaller refuses a header that keeps asking for more once its buffer is full. */
long proxy_proto_parse(const uint8_t *buf, size_t len, struct proxy_proto_header *h);

#endif

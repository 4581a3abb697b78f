/* proxy_proto.c: the PROXY protocol header parser (proxy_proto.h), versions 1 and 2, after
 * HAProxy's proxy-protocol.txt. Pure: bytes in, a verdict and the addresses out. */
#include "autoconfig.h"

#include "proxy_proto.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "netaddr.h"

/* Section 2.2: the v2 signature, chosen so that no v1 line nor any common protocol starts so. */
static const uint8_t proxy_proto_sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                            0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
static const char proxy_proto_v1_prefix[] = "PROXY ";

/* Section 2.2, the 14th byte: address family (high nibble) and transport (low nibble). Only
 * stream transports: the header is in front of a TCP connection. */
#define PP2_FAM_UNSPEC 0x00
#define PP2_FAM_TCP4 0x11
#define PP2_FAM_TCP6 0x21
#define PP2_FAM_UNIX_STREAM 0x31
#define PP2_CMD_LOCAL 0x0
#define PP2_CMD_PROXY 0x1

/* 0 when the len bytes of buf agree with the first len bytes of want (len <= wantlen). */
static int proxy_proto_prefix(const uint8_t *buf, size_t len, const void *want, size_t wantlen)
{
    return memcmp(buf, want, len < wantlen ? len : wantlen);
}

/* ---- version 1: one text line ---- */

/* A port in decimal, 0..65535, without a sign or a leading zero (section 2.1). */
static int proxy_proto_v1_port(const char *s, uint16_t *port)
{
    size_t n = strlen(s);

    if (n > 1 && s[0] == '0')
        return -1;
    return netaddr_port_value(s, n, port);
}

/* The fields after "PROXY " of a complete line (NUL-terminated, CRLF removed), separated by
 * exactly one space each: "TCP4 src dst sport dport", "TCP6 ..." or "UNKNOWN[ anything]". */
static int proxy_proto_v1_fields(char *line, struct proxy_proto_header *h)
{
    char *f[5];
    int n = 0;

    if (strcmp(line, "UNKNOWN") == 0 || strncmp(line, "UNKNOWN ", 8) == 0) {
        h->has_address = false; /* "the receiver must ignore anything presented before the CRLF" */
        return 0;
    }
    for (char *p = line; n < 5; n++) {
        f[n] = p;
        p = strchr(p, ' ');
        if (!p)
            break;
        *p++ = '\0';
        if (n == 4)
            return -1; /* a sixth field */
    }
    if (n != 4)
        return -1;
    int af = strcmp(f[0], "TCP4") == 0 ? AF_INET : strcmp(f[0], "TCP6") == 0 ? AF_INET6 : -1;
    uint8_t src[16], dst[16];
    uint16_t sport, dport;
    if (af < 0 || inet_pton(af, f[1], src) != 1 || inet_pton(af, f[2], dst) != 1 ||
        proxy_proto_v1_port(f[3], &sport) != 0 || proxy_proto_v1_port(f[4], &dport) != 0)
        return -1;
    netaddr_from_ip_bytes(af, src, sport, &h->src);
    netaddr_from_ip_bytes(af, dst, dport, &h->dst);
    h->has_address = true;
    return 0;
}

static long proxy_proto_v1(const uint8_t *buf, size_t len, struct proxy_proto_header *h)
{
    size_t plen = sizeof proxy_proto_v1_prefix - 1;
    char line[PROXY_PROTO_V1_MAX + 1];

    if (proxy_proto_prefix(buf, len, proxy_proto_v1_prefix, plen) != 0)
        return -1;
    for (size_t i = plen; i < len && i < PROXY_PROTO_V1_MAX; i++) {
        if (buf[i] == '\r') {
            if (i + 2 > PROXY_PROTO_V1_MAX) /* no room left for the LF */
                return -1;
            if (i + 1 == len)
                return 0;
            if (buf[i + 1] != '\n')
                return -1;
            memcpy(line, buf + plen, i - plen);
            line[i - plen] = '\0';
            if (proxy_proto_v1_fields(line, h) != 0)
                return -1;
            h->version = 1;
            return (long)(i + 2);
        }
        if (buf[i] < 0x20 || buf[i] > 0x7e) /* text only: a NUL or LF here is not v1 */
            return -1;
    }
    return len >= PROXY_PROTO_V1_MAX ? -1 : 0;
}

/* ---- version 2: binary ---- */

/* Bytes of the address block of each family (section 2.2): two addresses and two ports. */
static long proxy_proto_v2_addr_len(uint8_t fam)
{
    switch (fam) {
    case PP2_FAM_UNSPEC:
        return 0;
    case PP2_FAM_TCP4:
        return 4 + 4 + 2 + 2;
    case PP2_FAM_TCP6:
        return 16 + 16 + 2 + 2;
    case PP2_FAM_UNIX_STREAM:
        return 108 + 108;
    default:
        return -1; /* UDP over a stream, or an unknown family */
    }
}

/* The TLVs after the addresses (section 2.2.x): type (1 byte), length (2, network order),
 * value. Skipped, but each must fit exactly within the header. */
static int proxy_proto_v2_tlvs(const uint8_t *p, size_t n)
{
    while (n > 0) {
        if (n < 3)
            return -1;
        size_t vlen = (size_t)p[1] << 8 | p[2];
        if (vlen > n - 3)
            return -1;
        p += 3 + vlen;
        n -= 3 + vlen;
    }
    return 0;
}

static long proxy_proto_v2(const uint8_t *buf, size_t len, struct proxy_proto_header *h)
{
    if (proxy_proto_prefix(buf, len, proxy_proto_sig, sizeof proxy_proto_sig) != 0)
        return -1;
    /* the 13th byte: version 2 in the high nibble, LOCAL or PROXY in the low one */
    if (len > 12 && ((buf[12] >> 4) != 2 || (buf[12] & 0xf) > PP2_CMD_PROXY))
        return -1;
    bool proxy = len > 12 && (buf[12] & 0xf) == PP2_CMD_PROXY;
    long alen = len > 13 ? proxy_proto_v2_addr_len(buf[13]) : 0;
    /* LOCAL: "the receiver must ... discard the protocol block including the family" */
    if (proxy && alen < 0)
        return -1;
    if (len < PROXY_PROTO_V2_HEAD)
        return 0;
    size_t total = PROXY_PROTO_V2_HEAD + ((size_t)buf[14] << 8 | buf[15]);
    if (proxy && (size_t)alen > total - PROXY_PROTO_V2_HEAD)
        return -1;
    if (len < total)
        return 0;
    const uint8_t *a = buf + PROXY_PROTO_V2_HEAD;
    if (proxy && proxy_proto_v2_tlvs(a + alen, total - PROXY_PROTO_V2_HEAD - (size_t)alen) != 0)
        return -1;
    h->version = 2;
    h->has_address = proxy && (buf[13] == PP2_FAM_TCP4 || buf[13] == PP2_FAM_TCP6);
    if (proxy && buf[13] == PP2_FAM_TCP4) {
        netaddr_from_ip_bytes(AF_INET, a, (uint16_t)(a[8] << 8 | a[9]), &h->src);
        netaddr_from_ip_bytes(AF_INET, a + 4, (uint16_t)(a[10] << 8 | a[11]), &h->dst);
    } else if (proxy && buf[13] == PP2_FAM_TCP6) {
        netaddr_from_ip_bytes(AF_INET6, a, (uint16_t)(a[32] << 8 | a[33]), &h->src);
        netaddr_from_ip_bytes(AF_INET6, a + 16, (uint16_t)(a[34] << 8 | a[35]), &h->dst);
    }
    return (long)total;
}

long proxy_proto_parse(const uint8_t *buf, size_t len, struct proxy_proto_header *h)
{
    if (len == 0)
        return 0;
    /* The first byte tells the version apart: 'P' (v1) or CR (v2's signature). */
    if (buf[0] == 'P')
        return proxy_proto_v1(buf, len, h);
    if (buf[0] == proxy_proto_sig[0])
        return proxy_proto_v2(buf, len, h);
    return -1;
}

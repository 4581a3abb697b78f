/* test_proxy_proto.c: the PROXY protocol header parser (HAProxy's proxy-protocol.txt, versions
 * 1 and 2): each well-formed kind, byte-by-byte arrival, and every malformed case refused. */
#include "autoconfig.h"

#include "proxy_proto.h"
#include "unit.h"

#include <arpa/inet.h>
#include <netinet/in.h>

/* The v2 signature followed by version/command, family and a length (section 2.2). */
#define SIG 0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A

static long parse_text(const char *s, struct proxy_proto_header *h)
{
    return proxy_proto_parse((const uint8_t *)s, strlen(s), h);
}

static uint16_t port_of(const struct sockaddr_storage *ss)
{
    return ntohs(ss->ss_family == AF_INET ? ((const struct sockaddr_in *)ss)->sin_port
                                          : ((const struct sockaddr_in6 *)ss)->sin6_port);
}

static const char *text_of(const struct sockaddr_storage *ss, char *buf, size_t len)
{
    const void *a = ss->ss_family == AF_INET
                        ? (const void *)&((const struct sockaddr_in *)ss)->sin_addr
                        : (const void *)&((const struct sockaddr_in6 *)ss)->sin6_addr;
    return inet_ntop(ss->ss_family, a, buf, (socklen_t)len);
}

/* Every proper prefix of a good header is "need more", and the whole is taken. */
static int arrives_in_pieces(const uint8_t *b, size_t n)
{
    struct proxy_proto_header h;
    for (size_t k = 0; k < n; k++)
        if (proxy_proto_parse(b, k, &h) != 0)
            return -1;
    return proxy_proto_parse(b, n, &h) == (long)n ? 0 : -1;
}

TEST(test_proxy_proto_v1_tcp4)
{
    const char *s = "PROXY TCP4 192.0.2.7 198.51.100.1 56324 8388\r\nDATA";
    struct proxy_proto_header h;
    char a[64];
    CHECK_INT(parse_text(s, &h), (long)strlen(s) - 4);
    CHECK_INT(h.version, 1);
    CHECK(h.has_address);
    CHECK_INT(h.src.ss_family, AF_INET);
    CHECK_STR(text_of(&h.src, a, sizeof a), "192.0.2.7");
    CHECK_INT(port_of(&h.src), 56324);
    CHECK_STR(text_of(&h.dst, a, sizeof a), "198.51.100.1");
    CHECK_INT(port_of(&h.dst), 8388);
    CHECK_INT(arrives_in_pieces((const uint8_t *)s, strlen(s) - 4), 0);
}

TEST(test_proxy_proto_v1_tcp6)
{
    const char *s = "PROXY TCP6 2001:db8::7 2001:db8::1 65535 0\r\n";
    struct proxy_proto_header h;
    char a[64];
    CHECK_INT(parse_text(s, &h), (long)strlen(s));
    CHECK_INT(h.src.ss_family, AF_INET6);
    CHECK_STR(text_of(&h.src, a, sizeof a), "2001:db8::7");
    CHECK_INT(port_of(&h.src), 65535);
    CHECK_INT(port_of(&h.dst), 0);
}

TEST(test_proxy_proto_v1_unknown)
{
    struct proxy_proto_header h;
    CHECK_INT(parse_text("PROXY UNKNOWN\r\n", &h), 15);
    CHECK(!h.has_address);
    /* section 2.1: anything after UNKNOWN up to the CRLF is ignored */
    CHECK_INT(parse_text("PROXY UNKNOWN ffff::1 whatever\r\n", &h), 32);
    CHECK(!h.has_address);
}

TEST(test_proxy_proto_v1_longest_line)
{
    /* the worst case of section 2.1 is 107 bytes, CRLF included */
    char line[200], body[120];
    struct proxy_proto_header h;
    memset(body, 'x', sizeof body);
    snprintf(line, sizeof line, "PROXY UNKNOWN %.*s\r\n", 107 - 16, body);
    CHECK_INT(strlen(line), 107);
    CHECK_INT(parse_text(line, &h), 107);
    snprintf(line, sizeof line, "PROXY UNKNOWN %.*s\r\n", 107 - 15, body);
    CHECK_INT(parse_text(line, &h), -1); /* 108 bytes */
    line[107] = '\0';                    /* 107 bytes, still no CRLF */
    CHECK_INT(parse_text(line, &h), -1);
    line[106] = '\0'; /* 106 bytes without CRLF: it may still come */
    CHECK_INT(parse_text(line, &h), 0);
}

TEST(test_proxy_proto_v1_malformed)
{
    static const char *const bad[] = {
        "GET / HTTP/1.1\r\n",
        "PROXY  TCP4 192.0.2.7 198.51.100.1 1 2\r\n",    /* two spaces */
        "PROXY TCP4 192.0.2.7 198.51.100.1 1\r\n",       /* a port missing */
        "PROXY TCP4 192.0.2.7 198.51.100.1 1 2 3\r\n",   /* a field too many */
        "PROXY TCP4 192.0.2.7 198.51.100.1 1 2 \r\n",    /* trailing space */
        "PROXY TCP4 2001:db8::7 198.51.100.1 1 2\r\n",   /* v6 address in TCP4 */
        "PROXY TCP6 192.0.2.7 2001:db8::1 1 2\r\n",      /* v4 address in TCP6 */
        "PROXY TCP4 192.0.2.256 198.51.100.1 1 2\r\n",   /* not an address */
        "PROXY TCP4 192.0.2.7 198.51.100.1 65536 2\r\n", /* port out of range */
        "PROXY TCP4 192.0.2.7 198.51.100.1 0080 2\r\n",  /* leading zero */
        "PROXY TCP4 192.0.2.7 198.51.100.1 -1 2\r\n",    /* sign */
        "PROXY TCP4 192.0.2.7 198.51.100.1 1 2\n",       /* LF without CR */
        "PROXY TCP4 192.0.2.7 198.51.100.1 1 2\rX",      /* CR without LF */
        "PROXY UDP4 192.0.2.7 198.51.100.1 1 2\r\n",     /* not a stream */
        "PROXY \r\n",                                    /* nothing */
        "proxy TCP4 192.0.2.7 198.51.100.1 1 2\r\n",     /* case */
        "PROXY TCP4 192.0.2.7\t198.51.100.1 1 2\r\n",    /* a tab */
    };
    struct proxy_proto_header h;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (parse_text(bad[i], &h) != -1)
            unit_fail(__FILE__, __LINE__, "accepted bad[%zu] \"%s\"", i, bad[i]);
    }
    /* a NUL inside the line */
    const uint8_t nul[] = {'P', 'R', 'O', 'X', 'Y', ' ', 'T', 0, '\r', '\n'};
    CHECK_INT(proxy_proto_parse(nul, sizeof nul, &h), -1);
    /* refused at the first byte that cannot belong to a header */
    CHECK_INT(parse_text("X", &h), -1);
    CHECK_INT(parse_text("PRX", &h), -1);
    CHECK_INT(parse_text("", &h), 0);
    CHECK_INT(parse_text("PROX", &h), 0);
}

TEST(test_proxy_proto_v2_proxy_ipv4)
{
    const uint8_t b[] = {SIG, 0x21, 0x11, 0, 12,   192,  0,    2,    7,
                         198, 51,   100,  1, 0xdc, 0x04, 0x20, 0xc4, 'x'};
    struct proxy_proto_header h;
    char a[64];
    CHECK_INT(proxy_proto_parse(b, sizeof b, &h), 28);
    CHECK_INT(h.version, 2);
    CHECK(h.has_address);
    CHECK_STR(text_of(&h.src, a, sizeof a), "192.0.2.7");
    CHECK_INT(port_of(&h.src), 56324);
    CHECK_STR(text_of(&h.dst, a, sizeof a), "198.51.100.1");
    CHECK_INT(port_of(&h.dst), 8388);
    CHECK_INT(arrives_in_pieces(b, 28), 0);
}

TEST(test_proxy_proto_v2_proxy_ipv6)
{
    uint8_t b[16 + 36] = {SIG, 0x21, 0x21, 0, 36};
    struct proxy_proto_header h;
    char a[64];
    inet_pton(AF_INET6, "2001:db8::7", b + 16);
    inet_pton(AF_INET6, "2001:db8::1", b + 32);
    b[48] = 0x01, b[49] = 0xbb, b[50] = 0x20, b[51] = 0xc4;
    CHECK_INT(proxy_proto_parse(b, sizeof b, &h), 52);
    CHECK_INT(h.src.ss_family, AF_INET6);
    CHECK_STR(text_of(&h.src, a, sizeof a), "2001:db8::7");
    CHECK_INT(port_of(&h.src), 443);
    CHECK_STR(text_of(&h.dst, a, sizeof a), "2001:db8::1");
    CHECK_INT(arrives_in_pieces(b, sizeof b), 0);
}

TEST(test_proxy_proto_v2_local)
{
    /* LOCAL (HAProxy's health checks): no address, whatever family and length */
    const uint8_t b[] = {SIG, 0x20, 0x00, 0, 0};
    const uint8_t odd[] = {SIG, 0x20, 0x12, 0, 2, 0xaa, 0xbb};
    struct proxy_proto_header h;
    CHECK_INT(proxy_proto_parse(b, sizeof b, &h), 16);
    CHECK_INT(h.version, 2);
    CHECK(!h.has_address);
    CHECK_INT(proxy_proto_parse(odd, sizeof odd, &h), 18);
    CHECK(!h.has_address);
}

TEST(test_proxy_proto_v2_unspec_and_unix)
{
    uint8_t un[16 + 216] = {SIG, 0x21, 0x31, 0, 216};
    const uint8_t unspec[] = {SIG, 0x21, 0x00, 0, 0};
    struct proxy_proto_header h;
    CHECK_INT(proxy_proto_parse(unspec, sizeof unspec, &h), 16);
    CHECK(!h.has_address);
    CHECK_INT(proxy_proto_parse(un, sizeof un, &h), 232);
    CHECK(!h.has_address);
}

TEST(test_proxy_proto_v2_tlvs_skipped)
{
    /* ALPN "h2" (0x01) and a NOOP (0x04) of 3 bytes after the IPv4 addresses */
    const uint8_t b[] = {SIG, 0x21, 0x11, 0, 12 + 5 + 6, 10,  0,   0,    1, 10, 0, 0, 2, 0,  1,
                         0,   2,    0x01, 0, 2,          'h', '2', 0x04, 0, 3,  0, 0, 0, 'z'};
    struct proxy_proto_header h;
    char a[64];
    CHECK_INT(proxy_proto_parse(b, sizeof b, &h), 16 + 23);
    CHECK_STR(text_of(&h.src, a, sizeof a), "10.0.0.1");
    CHECK_INT(port_of(&h.src), 1);
}

TEST(test_proxy_proto_v2_malformed)
{
    struct proxy_proto_header h;
    const uint8_t badsig[] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51,
                              0x55, 0x49, 0x54, 0x0B, 0x21, 0x11, 0,    12};
    const uint8_t version1[] = {SIG, 0x11, 0x11, 0, 12};
    const uint8_t version3[] = {SIG, 0x31, 0x11, 0, 12};
    const uint8_t command2[] = {SIG, 0x22, 0x11, 0, 12};
    const uint8_t udp4[] = {SIG, 0x21, 0x12, 0, 12};
    const uint8_t family4[] = {SIG, 0x21, 0x41, 0, 12};
    const uint8_t short4[] = {SIG, 0x21, 0x11, 0, 11, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
    const uint8_t short6[] = {SIG, 0x21, 0x21, 0, 12};
    /* a TLV whose length runs past the header, and two bytes that cannot be a TLV */
    const uint8_t tlv_long[] = {SIG, 0x21, 0x11, 0,  12 + 4, 1,  2,    3, 4, 5,  6,
                                7,   8,    9,    10, 11,     12, 0x01, 0, 2, 'h'};
    const uint8_t tlv_cut[] = {SIG, 0x21, 0x11, 0, 14, 1,  2,  3,    4, 5,
                               6,   7,    8,    9, 10, 11, 12, 0x04, 0};
    CHECK_INT(proxy_proto_parse(badsig, sizeof badsig, &h), -1);
    CHECK_INT(proxy_proto_parse(badsig, 12, &h), -1); /* refused at the signature */
    CHECK_INT(proxy_proto_parse(version1, 13, &h), -1);
    CHECK_INT(proxy_proto_parse(version3, sizeof version3, &h), -1);
    CHECK_INT(proxy_proto_parse(command2, 13, &h), -1);
    CHECK_INT(proxy_proto_parse(udp4, 14, &h), -1);
    CHECK_INT(proxy_proto_parse(family4, sizeof family4, &h), -1);
    CHECK_INT(proxy_proto_parse(short4, sizeof short4, &h), -1);
    CHECK_INT(proxy_proto_parse(short6, sizeof short6, &h), -1);
    CHECK_INT(proxy_proto_parse(tlv_long, sizeof tlv_long, &h), -1);
    CHECK_INT(proxy_proto_parse(tlv_cut, sizeof tlv_cut, &h), -1);
    /* a good head whose body has not all come is "need more", not refused */
    CHECK_INT(proxy_proto_parse(tlv_long, 20, &h), 0);
}

TEST(test_proxy_proto_v2_longest)
{
    /* the length field's maximum: 65535 bytes of TLVs after the head (LOCAL skips them) */
    static uint8_t b[16 + 65535] = {SIG, 0x20, 0x00, 0xff, 0xff};
    struct proxy_proto_header h;
    CHECK_INT(proxy_proto_parse(b, sizeof b - 1, &h), 0);
    CHECK_INT(proxy_proto_parse(b, sizeof b, &h), (long)sizeof b);
}

/* test_netaddr.c: the address header (RFC 1928 section 5), host:port strings, sockaddr helpers
 * and the socket helpers on real loopback sockets. */
#include "autoconfig.h"

#include "netaddr.h"
#include "unit.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/un.h>
#include <unistd.h>

static const uint8_t hdr_v4[] = {1, 192, 0, 2, 1, 0x1f, 0x90};
static const uint8_t hdr_v6[] = {4, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0,    0,   0,
                                 0, 0,    0,    0,    0,    0, 1, 0x01, 0xbb};
static const uint8_t hdr_name[] = {3,   11,  'e', 'x', 'a', 'm',  'p', 'l',
                                   'e', '.', 'c', 'o', 'm', 0x01, 0xbb};

TEST(test_netaddr_parses_ipv4)
{
    struct netaddr_target t;
    CHECK_INT(netaddr_parse_header(hdr_v4, sizeof hdr_v4, &t), 7);
    CHECK_INT(t.atyp, NETADDR_ATYP_IPV4);
    CHECK_STR(t.host, "192.0.2.1");
    CHECK_INT(t.port, 8080);
    CHECK_INT(t.addrlen, sizeof(struct sockaddr_in));
    const struct sockaddr_in *sin = (const struct sockaddr_in *)&t.addr;
    CHECK_INT(sin->sin_family, AF_INET);
    CHECK_INT(sin->sin_port, htons(8080));
    CHECK_INT(sin->sin_addr.s_addr, htonl(0xc0000201));
}

TEST(test_netaddr_parses_ipv6)
{
    struct netaddr_target t;
    CHECK_INT(netaddr_parse_header(hdr_v6, sizeof hdr_v6, &t), 19);
    CHECK_INT(t.atyp, NETADDR_ATYP_IPV6);
    CHECK_STR(t.host, "2001:db8::1");
    CHECK_INT(t.port, 443);
    CHECK_INT(t.addrlen, sizeof(struct sockaddr_in6));
    const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&t.addr;
    CHECK_INT(sin6->sin6_family, AF_INET6);
    CHECK_INT(sin6->sin6_port, htons(443));
    CHECK_MEM(sin6->sin6_addr.s6_addr, hdr_v6 + 1, 16);
}

TEST(test_netaddr_parses_domain)
{
    struct netaddr_target t;
    CHECK_INT(netaddr_parse_header(hdr_name, sizeof hdr_name, &t), 15);
    CHECK_INT(t.atyp, NETADDR_ATYP_DOMAIN);
    CHECK_STR(t.host, "example.com");
    CHECK_INT(t.port, 443);
    CHECK_INT(t.addrlen, 0);
}

TEST(test_netaddr_parses_255_byte_domain)
{
    uint8_t buf[260];
    struct netaddr_target t;
    buf[0] = 3;
    buf[1] = 255;
    memset(buf + 2, 'a', 255);
    buf[257] = 0;
    buf[258] = 80;
    buf[259] = 0xAA; /* payload after the header is not consumed */
    CHECK_INT(netaddr_parse_header(buf, sizeof buf, &t), 259);
    CHECK_INT(strlen(t.host), 255);
    CHECK_INT(t.host[254], 'a');
    CHECK_INT(t.port, 80);
}

TEST(test_netaddr_incomplete_at_every_length)
{
    const uint8_t *hdrs[] = {hdr_v4, hdr_v6, hdr_name};
    size_t lens[] = {sizeof hdr_v4, sizeof hdr_v6, sizeof hdr_name};
    struct netaddr_target t;
    for (int h = 0; h < 3; h++) {
        for (size_t len = 0; len < lens[h]; len++)
            CHECK_INT(netaddr_parse_header(hdrs[h], len, &t), 0);
        CHECK_INT(netaddr_parse_header(hdrs[h], lens[h], &t), (int)lens[h]);
    }
}

TEST(test_netaddr_rejects_unknown_atyp)
{
    struct netaddr_target t;
    static const uint8_t atyps[] = {0, 2, 5, 0x7f, 0xff};
    for (size_t i = 0; i < sizeof atyps; i++) {
        uint8_t buf[20] = {atyps[i]};
        CHECK_INT(netaddr_parse_header(buf, 1, &t), -1);
        CHECK_INT(netaddr_parse_header(buf, sizeof buf, &t), -1);
    }
}

TEST(test_netaddr_rejects_empty_domain)
{
    static const uint8_t buf[] = {3, 0, 0, 80};
    struct netaddr_target t;
    CHECK_INT(netaddr_parse_header(buf, 2, &t), -1);
    CHECK_INT(netaddr_parse_header(buf, sizeof buf, &t), -1);
}

TEST(test_netaddr_rejects_bad_name_bytes)
{
    static const uint8_t bad[] = {0x00, 0x01, 0x0a, 0x1f, ' ', 0x7f, 0x80, 0xff};
    struct netaddr_target t;
    for (size_t i = 0; i < sizeof bad; i++) {
        uint8_t buf[] = {3, 3, 'a', 'b', 'c', 0, 80};
        buf[3] = bad[i];
        CHECK_INT(netaddr_parse_header(buf, sizeof buf, &t), -1);
        /* Refused as soon as the byte is there, before the rest arrives. */
        CHECK_INT(netaddr_parse_header(buf, 4, &t), -1);
        CHECK_INT(netaddr_parse_header(buf, 3, &t), 0);
    }
}

TEST(test_netaddr_leaves_target_alone_unless_complete)
{
    struct netaddr_target t;
    memset(&t, 0x5a, sizeof t);
    CHECK_INT(netaddr_parse_header(hdr_v4, 6, &t), 0);
    CHECK_INT((uint8_t)t.host[0], 0x5a);
    CHECK_INT(netaddr_parse_header((const uint8_t *)"\x09", 1, &t), -1);
    CHECK_INT((uint8_t)t.host[0], 0x5a);
}

TEST(test_netaddr_write_round_trips)
{
    const uint8_t *hdrs[] = {hdr_v4, hdr_v6, hdr_name};
    size_t lens[] = {sizeof hdr_v4, sizeof hdr_v6, sizeof hdr_name};
    for (int h = 0; h < 3; h++) {
        struct netaddr_target t;
        uint8_t out[NETADDR_HEADER_MAX];
        CHECK_INT(netaddr_parse_header(hdrs[h], lens[h], &t), (int)lens[h]);
        CHECK_INT(netaddr_write_header(&t, out, sizeof out), (int)lens[h]);
        CHECK_MEM(out, hdrs[h], lens[h]);
        CHECK_INT(netaddr_write_header(&t, out, lens[h] - 1), -1);
    }
}

TEST(test_netaddr_write_uses_host_text_without_addr)
{
    struct netaddr_target t;
    uint8_t out[32];
    memset(&t, 0, sizeof t);
    t.atyp = NETADDR_ATYP_IPV4;
    strcpy(t.host, "192.0.2.1");
    t.port = 8080;
    CHECK_INT(netaddr_write_header(&t, out, sizeof out), 7);
    CHECK_MEM(out, hdr_v4, 7);
    strcpy(t.host, "not-an-ip");
    CHECK_INT(netaddr_write_header(&t, out, sizeof out), -1);
    t.atyp = 2;
    CHECK_INT(netaddr_write_header(&t, out, sizeof out), -1);
    t.atyp = NETADDR_ATYP_DOMAIN;
    t.host[0] = '\0';
    CHECK_INT(netaddr_write_header(&t, out, sizeof out), -1);
    strcpy(t.host, "bad name");
    CHECK_INT(netaddr_write_header(&t, out, sizeof out), -1);
}

TEST(test_netaddr_header_from_sockaddr)
{
    struct sockaddr_storage ss;
    socklen_t len;
    uint8_t out[32];
    CHECK_INT(netaddr_from_ip("192.0.2.1", 8080, &ss, &len), 0);
    CHECK_INT(netaddr_header_from_sockaddr((struct sockaddr *)&ss, out, sizeof out), 7);
    CHECK_MEM(out, hdr_v4, 7);
    CHECK_INT(netaddr_header_from_sockaddr((struct sockaddr *)&ss, out, 6), -1);
    CHECK_INT(netaddr_from_ip("2001:db8::1", 443, &ss, &len), 0);
    CHECK_INT(netaddr_header_from_sockaddr((struct sockaddr *)&ss, out, sizeof out), 19);
    CHECK_MEM(out, hdr_v6, 19);
    CHECK_INT(netaddr_header_from_sockaddr((struct sockaddr *)&ss, out, 18), -1);
    /* A dual-stack socket's view of an IPv4 peer goes back as ATYP 1. */
    CHECK_INT(netaddr_from_ip("::ffff:192.0.2.1", 8080, &ss, &len), 0);
    CHECK_INT(netaddr_header_from_sockaddr((struct sockaddr *)&ss, out, sizeof out), 7);
    CHECK_MEM(out, hdr_v4, 7);
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    CHECK_INT(netaddr_header_from_sockaddr((struct sockaddr *)&un, out, sizeof out), -1);
}

TEST(test_netaddr_hostport_ipv4)
{
    struct netaddr_target t;
    CHECK_INT(netaddr_target_from_string("1.2.3.4:80", &t), 0);
    CHECK_INT(t.atyp, NETADDR_ATYP_IPV4);
    CHECK_STR(t.host, "1.2.3.4");
    CHECK_INT(t.port, 80);
    CHECK_INT(t.addrlen, sizeof(struct sockaddr_in));
    CHECK_INT(netaddr_port((struct sockaddr *)&t.addr), 80);
}

TEST(test_netaddr_hostport_ipv6)
{
    struct netaddr_target t;
    CHECK_INT(netaddr_target_from_string("[::1]:80", &t), 0);
    CHECK_INT(t.atyp, NETADDR_ATYP_IPV6);
    CHECK_STR(t.host, "::1");
    CHECK_INT(t.port, 80);
    CHECK_INT(t.addrlen, sizeof(struct sockaddr_in6));
    CHECK_INT(netaddr_target_from_string("[2001:DB8:0::7]:65535", &t), 0);
    CHECK_STR(t.host, "2001:db8::7");
    CHECK_INT(t.port, 65535);
}

TEST(test_netaddr_hostport_domain)
{
    struct netaddr_target t;
    CHECK_INT(netaddr_target_from_string("example.com:443", &t), 0);
    CHECK_INT(t.atyp, NETADDR_ATYP_DOMAIN);
    CHECK_STR(t.host, "example.com");
    CHECK_INT(t.port, 443);
    CHECK_INT(t.addrlen, 0);
    CHECK_INT(netaddr_target_from_string("1.2.3:1", &t), 0); /* not a literal: a name */
    CHECK_INT(t.atyp, NETADDR_ATYP_DOMAIN);
    char s[300];
    memset(s, 'a', 255);
    strcpy(s + 255, ":1");
    CHECK_INT(netaddr_target_from_string(s, &t), 0);
    CHECK_INT(strlen(t.host), 255);
    memset(s, 'a', 256);
    strcpy(s + 256, ":1");
    CHECK_INT(netaddr_target_from_string(s, &t), -1);
}

TEST(test_netaddr_hostport_rejects)
{
    static const char *const bad[] = {
        "1.2.3.4",  "1.2.3.4:",     "1.2.3.4:0",        "1.2.3.4:65536", "1.2.3.4:99999999999",
        ":80",      "[]:80",        "[::1]80",          "[::1",          "[::1]",
        "::1:80",   "[1.2.3.4]:80", "[example.com]:80", "a b:80",        "host:+80",
        "host:8 0", "host:0x50",    "ex]ample:80",      "[[::1]]:80",    "host:-1",
        "",         "[::1]:80x",    "a\tb:1",
    };
    struct netaddr_target t;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (netaddr_target_from_string(bad[i], &t) != -1) {
            unit_fail(__FILE__, __LINE__, "accepted \"%s\"", bad[i]);
            return;
        }
    }
}

/* ---- netaddr_parse_hostport: the one host:port parser ---- */

static int parse(const char *s, unsigned flags, struct netaddr_endpoint *e)
{
    return netaddr_parse_hostport(s, strlen(s), flags, e);
}

/* s parses (flags 0) to an IP literal: its ATYP, text, port, and a sockaddr with that port. */
static void check_literal(const char *s, int atyp, const char *host, int port, size_t addrlen)
{
    struct netaddr_endpoint e;
    CHECK_INT(parse(s, 0, &e), 0);
    CHECK_INT(e.target.atyp, atyp);
    CHECK_STR(e.target.host, host);
    CHECK_INT(e.target.port, port);
    CHECK_INT(e.target.addrlen, addrlen);
    CHECK_INT(netaddr_port((struct sockaddr *)&e.target.addr), port);
    CHECK_INT(e.prefer, NETADDR_PREFER_ANY);
}

TEST(test_netaddr_parse_hostport_ipv4)
{
    check_literal("192.0.2.7:8388", NETADDR_ATYP_IPV4, "192.0.2.7", 8388,
                  sizeof(struct sockaddr_in));
}

TEST(test_netaddr_parse_hostport_bracketed_ipv6)
{
    struct netaddr_endpoint e;
    check_literal("[2001:db8::1]:443", NETADDR_ATYP_IPV6, "2001:db8::1", 443,
                  sizeof(struct sockaddr_in6));
    CHECK_INT(parse("2001:db8::1:443", 0, &e), -1); /* unbracketed: ambiguous */
}

TEST(test_netaddr_parse_hostport_name)
{
    struct netaddr_endpoint e;
    CHECK_INT(parse("dns.example_1-a:853", 0, &e), 0);
    CHECK_INT(e.target.atyp, NETADDR_ATYP_DOMAIN);
    CHECK_STR(e.target.host, "dns.example_1-a");
    CHECK_INT(e.target.port, 853);
    CHECK_INT(e.target.addrlen, 0);
    CHECK_INT(parse("localhost:19100", NETADDR_NUMERIC, &e), -1); /* a name, not a literal */
    CHECK_INT(parse("127.0.0.1:19100", NETADDR_NUMERIC, &e), 0);
}

TEST(test_netaddr_parse_hostport_bad_ports)
{
    struct netaddr_endpoint e;
    static const char *const bad[] = {
        "h:0",  "h:65536", "h:x",    "h:",       "h:-1",    "h:+1",
        "h: 1", "h:1 ",    "h:0x10", "h:123456", "[::1]:0", "1.2.3.4:65536"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (parse(bad[i], NETADDR_PORT_OPTIONAL, &e) != -1) {
            unit_fail(__FILE__, __LINE__, "accepted \"%s\"", bad[i]);
            return;
        }
    }
    CHECK_INT(parse("h:65535", 0, &e), 0);
    CHECK_INT(e.target.port, 65535);
    CHECK_INT(parse("h:1", 0, &e), 0);
    CHECK_INT(e.target.port, 1);
    /* only where the kernel may pick the port */
    CHECK_INT(parse("127.0.0.1:0", NETADDR_NUMERIC | NETADDR_PORT_ZERO, &e), 0);
    CHECK_INT(e.target.port, 0);
}

TEST(test_netaddr_parse_hostport_missing_port)
{
    struct netaddr_endpoint e;
    CHECK_INT(parse("example.com", 0, &e), -1);
    CHECK_INT(parse("192.0.2.1", 0, &e), -1);
    CHECK_INT(parse("[::1]", 0, &e), -1);
    CHECK_INT(parse("::1", 0, &e), -1);
    /* where a default port applies (server entries, nameservers): port 0 */
    CHECK_INT(parse("example.com", NETADDR_PORT_OPTIONAL, &e), 0);
    CHECK_INT(e.target.port, 0);
    CHECK_INT(parse("[::1]", NETADDR_PORT_OPTIONAL, &e), 0);
    CHECK_STR(e.target.host, "::1");
    CHECK_INT(parse("fe80::1", NETADDR_PORT_OPTIONAL, &e), 0);
    CHECK_INT(e.target.atyp, NETADDR_ATYP_IPV6);
    CHECK_INT(parse("a:b:c", NETADDR_PORT_OPTIONAL, &e), -1);
}

TEST(test_netaddr_parse_hostport_empty_host)
{
    struct netaddr_endpoint e;
    CHECK_INT(parse(":80", 0, &e), -1);
    CHECK_INT(parse("[]:80", 0, &e), -1);
    CHECK_INT(parse("", NETADDR_PORT_OPTIONAL, &e), -1);
    CHECK_INT(parse("[]", NETADDR_PORT_OPTIONAL, &e), -1);
    CHECK_INT(netaddr_parse_hostport(NULL, 0, 0, &e), -1);
    /* len bounds the text: "1.2.3.4:80" cut before its port */
    CHECK_INT(netaddr_parse_hostport("1.2.3.4:80", 7, NETADDR_PORT_OPTIONAL, &e), 0);
    CHECK_INT(e.target.port, 0);
}

TEST(test_netaddr_parse_list)
{
    struct netaddr_endpoint e[3];
    unsigned f = NETADDR_PORT_OPTIONAL | NETADDR_NUMERIC;
    CHECK_INT(netaddr_parse_list("1.1.1.1, [::1]:5353 ,::2", f, e, 3), 3);
    CHECK_STR(e[0].target.host, "1.1.1.1");
    CHECK_INT(e[0].target.port, 0);
    CHECK_STR(e[1].target.host, "::1");
    CHECK_INT(e[1].target.port, 5353);
    CHECK_STR(e[2].target.host, "::2");
    CHECK_INT(netaddr_parse_list("1.1.1.1,2.2.2.2,3.3.3.3,4.4.4.4", f, e, 3), -1);
    CHECK_INT(netaddr_parse_list("1.1.1.1,", f, e, 3), -1);
    CHECK_INT(netaddr_parse_list("dns.google", f, e, 3), -1);
    CHECK_INT(netaddr_parse_list(NULL, f, e, 3), -1);
}

TEST(test_netaddr_set_target_port)
{
    struct netaddr_endpoint e;
    CHECK_INT(parse("[::1]", NETADDR_PORT_OPTIONAL, &e), 0);
    netaddr_set_target_port(&e.target, 8388);
    CHECK_INT(e.target.port, 8388);
    CHECK_INT(netaddr_port((struct sockaddr *)&e.target.addr), 8388);
}

TEST(test_netaddr_from_ip)
{
    struct sockaddr_storage ss;
    socklen_t len;
    CHECK_INT(netaddr_from_ip("10.0.0.1", 53, &ss, &len), 0);
    CHECK_INT(ss.ss_family, AF_INET);
    CHECK_INT(len, sizeof(struct sockaddr_in));
    CHECK_INT(netaddr_port((struct sockaddr *)&ss), 53);
    CHECK_INT(netaddr_from_ip("fe80::1", 5353, &ss, &len), 0);
    CHECK_INT(ss.ss_family, AF_INET6);
    CHECK_INT(len, sizeof(struct sockaddr_in6));
    CHECK_INT(netaddr_from_ip("example.com", 1, &ss, &len), -1);
    CHECK_INT(netaddr_from_ip("[::1]", 1, &ss, &len), -1);
    CHECK_INT(netaddr_from_ip("", 1, &ss, &len), -1);
}

TEST(test_netaddr_format)
{
    struct sockaddr_storage ss;
    socklen_t len;
    char buf[64];
    netaddr_from_ip("1.2.3.4", 80, &ss, &len);
    CHECK_STR(netaddr_format((struct sockaddr *)&ss, buf, sizeof buf), "1.2.3.4:80");
    CHECK_STR(netaddr_format((struct sockaddr *)&ss, buf, 6), "1.2.3");
    netaddr_from_ip("2001:db8::1", 443, &ss, &len);
    CHECK_STR(netaddr_format((struct sockaddr *)&ss, buf, sizeof buf), "[2001:db8::1]:443");
    netaddr_from_ip("::ffff:1.2.3.4", 65535, &ss, &len);
    CHECK_STR(netaddr_format((struct sockaddr *)&ss, buf, sizeof buf), "[::ffff:1.2.3.4]:65535");
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    CHECK_STR(netaddr_format((struct sockaddr *)&un, buf, sizeof buf), "(family 1)");
}

TEST(test_netaddr_port_len_equal)
{
    struct sockaddr_storage a, b;
    socklen_t len;
    netaddr_from_ip("192.0.2.7", 1, &a, &len);
    netaddr_from_ip("192.0.2.7", 2, &b, &len);
    CHECK_INT(netaddr_len((struct sockaddr *)&a), sizeof(struct sockaddr_in));
    CHECK(!netaddr_equal((struct sockaddr *)&a, (struct sockaddr *)&b));
    netaddr_set_port((struct sockaddr *)&b, 1);
    CHECK_INT(netaddr_port((struct sockaddr *)&b), 1);
    CHECK(netaddr_equal((struct sockaddr *)&a, (struct sockaddr *)&b));
    netaddr_from_ip("192.0.2.8", 1, &b, &len);
    CHECK(!netaddr_equal((struct sockaddr *)&a, (struct sockaddr *)&b));
    netaddr_from_ip("::ffff:192.0.2.7", 1, &b, &len);
    CHECK(!netaddr_equal((struct sockaddr *)&a, (struct sockaddr *)&b)); /* other family */
    netaddr_from_ip("2001:db8::2", 9, &a, &len);
    netaddr_from_ip("2001:db8::2", 9, &b, &len);
    CHECK_INT(netaddr_len((struct sockaddr *)&a), sizeof(struct sockaddr_in6));
    CHECK(netaddr_equal((struct sockaddr *)&a, (struct sockaddr *)&b));
    netaddr_set_port((struct sockaddr *)&b, 10);
    CHECK(!netaddr_equal((struct sockaddr *)&a, (struct sockaddr *)&b));
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    CHECK_INT(netaddr_len((struct sockaddr *)&un), 0);
    CHECK_INT(netaddr_port((struct sockaddr *)&un), 0);
}

TEST(test_netaddr_cloexec_and_nonblock)
{
    int fds[2];
    CHECK_INT(pipe(fds), 0);
    CHECK_INT(fcntl(fds[0], F_GETFL) & O_NONBLOCK, 0);
    CHECK_INT(netaddr_set_nonblock(fds[0]), 0);
    CHECK_INT(fcntl(fds[0], F_GETFL) & O_NONBLOCK, O_NONBLOCK);
    CHECK_INT(netaddr_set_cloexec(fds[0], true), 0);
    CHECK_INT(fcntl(fds[0], F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
    CHECK_INT(netaddr_set_cloexec(fds[0], false), 0);
    CHECK_INT(fcntl(fds[0], F_GETFD) & FD_CLOEXEC, 0);
    close(fds[0]);
    CHECK_INT(netaddr_set_nonblock(fds[0]), -1);
    CHECK_INT(errno, EBADF);
}

static int sockopt(int fd, int level, int name)
{
    int v = -1;
    socklen_t l = sizeof v;
    return getsockopt(fd, level, name, &v, &l) < 0 ? -1 : v;
}

/* Listens on ip port 0, connects, and passes bytes both ways. */
static void check_listen_connect(const char *ip, unsigned connect_flags)
{
    struct sockaddr_storage ss;
    socklen_t len;
    char buf[8];
    CHECK_INT(netaddr_from_ip(ip, 0, &ss, &len), 0);
    int l = netaddr_listen_tcp((struct sockaddr *)&ss, len, 16, NETADDR_FASTOPEN);
    CHECK(l >= 0);
    CHECK_INT(fcntl(l, F_GETFL) & O_NONBLOCK, O_NONBLOCK);
    CHECK_INT(fcntl(l, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
    CHECK_INT(sockopt(l, SOL_SOCKET, SO_REUSEADDR), 1);
    CHECK_INT(sockopt(l, SOL_SOCKET, SO_ACCEPTCONN), 1);
    CHECK_INT(getsockname(l, (struct sockaddr *)&ss, &len), 0);
    CHECK(netaddr_port((struct sockaddr *)&ss) != 0);

    int c = netaddr_connect_tcp((struct sockaddr *)&ss, len, connect_flags);
    CHECK(c >= 0);
    CHECK_INT(fcntl(c, F_GETFL) & O_NONBLOCK, O_NONBLOCK);
    CHECK_INT(fcntl(c, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
    CHECK_INT(sockopt(c, IPPROTO_TCP, TCP_NODELAY), (connect_flags & NETADDR_NODELAY) ? 1 : 0);
    CHECK_INT(sockopt(c, IPPROTO_TCP, TCP_FASTOPEN_CONNECT),
              (connect_flags & NETADDR_FASTOPEN) ? 1 : 0);
    struct pollfd p = {c, POLLOUT, 0};
    CHECK_INT(poll(&p, 1, 5000), 1);
    CHECK_INT(sockopt(c, SOL_SOCKET, SO_ERROR), 0);
    CHECK_INT(write(c, "ping", 4), 4);

    p = (struct pollfd){l, POLLIN, 0};
    CHECK_INT(poll(&p, 1, 5000), 1);
    int a = accept(l, NULL, NULL);
    CHECK(a >= 0);
    p = (struct pollfd){a, POLLIN, 0};
    CHECK_INT(poll(&p, 1, 5000), 1);
    CHECK_INT(read(a, buf, sizeof buf), 4);
    CHECK_MEM(buf, "ping", 4);
    CHECK_INT(write(a, "pong", 4), 4);
    p = (struct pollfd){c, POLLIN, 0};
    CHECK_INT(poll(&p, 1, 5000), 1);
    CHECK_INT(read(c, buf, sizeof buf), 4);
    CHECK_MEM(buf, "pong", 4);
    close(a);
    close(c);
    close(l);
}

TEST(test_netaddr_listen_connect_ipv4)
{
    check_listen_connect("127.0.0.1", NETADDR_NODELAY);
}

TEST(test_netaddr_listen_connect_ipv6)
{
    check_listen_connect("::1", 0);
}

TEST(test_netaddr_connect_fastopen)
{
    check_listen_connect("127.0.0.1", NETADDR_FASTOPEN | NETADDR_NODELAY);
}

TEST(test_netaddr_connect_refused)
{
    struct sockaddr_storage ss;
    socklen_t len;
    netaddr_from_ip("127.0.0.1", 0, &ss, &len);
    /* A port nobody listens on: bind one, note it, close it. */
    int l = netaddr_listen_tcp((struct sockaddr *)&ss, len, 1, 0);
    CHECK(l >= 0);
    CHECK_INT(getsockname(l, (struct sockaddr *)&ss, &len), 0);
    close(l);
    int c = netaddr_connect_tcp((struct sockaddr *)&ss, len, 0);
    if (c < 0) {
        CHECK_INT(errno, ECONNREFUSED);
        return;
    }
    struct pollfd p = {c, POLLOUT, 0};
    CHECK_INT(poll(&p, 1, 5000), 1);
    CHECK_INT(sockopt(c, SOL_SOCKET, SO_ERROR), ECONNREFUSED);
    close(c);
}

TEST(test_netaddr_listen_fails_on_foreign_address)
{
    struct sockaddr_storage ss;
    socklen_t len;
    netaddr_from_ip("192.0.2.1", 0, &ss, &len);
    CHECK_INT(netaddr_listen_tcp((struct sockaddr *)&ss, len, 1, 0), -1);
    CHECK_INT(errno, EADDRNOTAVAIL);
    CHECK_INT(netaddr_bind_udp((struct sockaddr *)&ss, len, 0), -1);
    CHECK_INT(errno, EADDRNOTAVAIL);
}

/* Binds twice to the same port with the given flags; returns the second result's errno or 0. */
static int second_bind_errno(int type, unsigned flags)
{
    struct sockaddr_storage ss;
    socklen_t len;
    netaddr_from_ip("127.0.0.1", 0, &ss, &len);
    int a = type == SOCK_STREAM ? netaddr_listen_tcp((struct sockaddr *)&ss, len, 4, flags)
                                : netaddr_bind_udp((struct sockaddr *)&ss, len, flags);
    if (a < 0 || getsockname(a, (struct sockaddr *)&ss, &len) < 0)
        return -1;
    int b = type == SOCK_STREAM ? netaddr_listen_tcp((struct sockaddr *)&ss, len, 4, flags)
                                : netaddr_bind_udp((struct sockaddr *)&ss, len, flags);
    int err = b < 0 ? errno : 0;
    if (b >= 0)
        close(b);
    close(a);
    return err;
}

TEST(test_netaddr_reuseport_tcp)
{
    CHECK_INT(second_bind_errno(SOCK_STREAM, NETADDR_REUSEPORT), 0);
    CHECK_INT(second_bind_errno(SOCK_STREAM, 0), EADDRINUSE);
}

TEST(test_netaddr_reuseport_udp)
{
    CHECK_INT(second_bind_errno(SOCK_DGRAM, NETADDR_REUSEPORT), 0);
    CHECK_INT(second_bind_errno(SOCK_DGRAM, 0), EADDRINUSE);
}

TEST(test_netaddr_v6only_follows_flag)
{
    struct sockaddr_storage ss;
    socklen_t len;
    netaddr_from_ip("::", 0, &ss, &len);
    int a = netaddr_listen_tcp((struct sockaddr *)&ss, len, 1, NETADDR_V6ONLY);
    int b = netaddr_listen_tcp((struct sockaddr *)&ss, len, 1, 0);
    int c = netaddr_bind_udp((struct sockaddr *)&ss, len, NETADDR_V6ONLY);
    int d = netaddr_bind_udp((struct sockaddr *)&ss, len, 0);
    CHECK(a >= 0 && b >= 0 && c >= 0 && d >= 0);
    CHECK_INT(sockopt(a, IPPROTO_IPV6, IPV6_V6ONLY), 1);
    CHECK_INT(sockopt(b, IPPROTO_IPV6, IPV6_V6ONLY), 0);
    CHECK_INT(sockopt(c, IPPROTO_IPV6, IPV6_V6ONLY), 1);
    CHECK_INT(sockopt(d, IPPROTO_IPV6, IPV6_V6ONLY), 0);
}

TEST(test_netaddr_udp_roundtrip)
{
    struct sockaddr_storage ss;
    socklen_t len;
    char buf[8];
    netaddr_from_ip("127.0.0.1", 0, &ss, &len);
    int u = netaddr_bind_udp((struct sockaddr *)&ss, len, 0);
    CHECK(u >= 0);
    CHECK_INT(fcntl(u, F_GETFL) & O_NONBLOCK, O_NONBLOCK);
    CHECK_INT(fcntl(u, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
    CHECK_INT(getsockname(u, (struct sockaddr *)&ss, &len), 0);
    CHECK_INT(sendto(u, "dgram", 5, 0, (struct sockaddr *)&ss, len), 5);
    struct pollfd p = {u, POLLIN, 0};
    CHECK_INT(poll(&p, 1, 5000), 1);
    CHECK_INT(recv(u, buf, sizeof buf, 0), 5);
    CHECK_MEM(buf, "dgram", 5);
    CHECK_INT(recv(u, buf, sizeof buf, 0), -1);
    CHECK_INT(errno, EAGAIN);
}

/* The per-source key: the host only, the same for an IPv4 client whichever family it came by. */
TEST(test_netaddr_host_key_ignores_port_and_maps_ipv4)
{
    struct sockaddr_storage a, b;
    socklen_t len;
    uint8_t ka[16], kb[16];
    CHECK_INT(netaddr_from_ip("192.0.2.1", 1000, &a, &len), 0);
    CHECK_INT(netaddr_from_ip("::ffff:192.0.2.1", 2000, &b, &len), 0);
    CHECK_INT(netaddr_host_key((struct sockaddr *)&a, ka), 0);
    CHECK_INT(netaddr_host_key((struct sockaddr *)&b, kb), 0);
    CHECK(memcmp(ka, kb, 16) == 0);
    CHECK_INT(netaddr_from_ip("192.0.2.2", 1000, &b, &len), 0);
    CHECK_INT(netaddr_host_key((struct sockaddr *)&b, kb), 0);
    CHECK(memcmp(ka, kb, 16) != 0);
    CHECK_INT(netaddr_from_ip("2001:db8::1", 1, &b, &len), 0);
    CHECK_INT(netaddr_host_key((struct sockaddr *)&b, kb), 0);
    CHECK(kb[0] == 0x20 && kb[1] == 0x01 && kb[2] == 0x0d && kb[15] == 1);
    struct sockaddr unix_sa = {.sa_family = AF_UNIX};
    CHECK_INT(netaddr_host_key(&unix_sa, kb), -1);
}

TEST(test_netaddr_cidr_match)
{
    struct netaddr_cidr list[3];
    struct sockaddr_storage ss;
    socklen_t len;
    CHECK_INT(netaddr_parse_cidr("10.0.0.0/8", &list[0]), 0);
    CHECK_INT(netaddr_parse_cidr("2001:db8::/32", &list[1]), 0);
    CHECK_INT(netaddr_parse_cidr("192.0.2.7", &list[2]), 0);
    static const struct {
        const char *ip;
        bool in;
    } cases[] = {{"10.255.0.1", true},   {"11.0.0.1", false},       {"2001:db8:1::1", true},
                 {"2001:db9::1", false}, {"::ffff:10.1.1.1", true}, {"192.0.2.7", true},
                 {"192.0.2.8", false}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        CHECK_INT(netaddr_from_ip(cases[i].ip, 1, &ss, &len), 0);
        if (netaddr_cidr_match(list, 3, (struct sockaddr *)&ss) != cases[i].in)
            unit_fail(__FILE__, __LINE__, "%s", cases[i].ip);
    }
    /* /0 takes every address of its family */
    CHECK_INT(netaddr_parse_cidr("0.0.0.0/0", &list[0]), 0);
    CHECK_INT(netaddr_from_ip("203.0.113.9", 1, &ss, &len), 0);
    CHECK(netaddr_cidr_match(list, 1, (struct sockaddr *)&ss));
    CHECK_INT(netaddr_from_ip("2001:db8::1", 1, &ss, &len), 0);
    CHECK(!netaddr_cidr_match(list, 1, (struct sockaddr *)&ss));
    static const char *const bad[] = {"",
                                      "/8",
                                      "10.0.0.0/",
                                      "10.0.0.0/33",
                                      "::/129",
                                      "10.0.0.0/-1",
                                      "10.0.0.0/8x",
                                      "host/8",
                                      "10.0.0.0/0008",
                                      "10.0.0.0 /8"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (netaddr_parse_cidr(bad[i], &list[0]) != -1)
            unit_fail(__FILE__, __LINE__, "accepted \"%s\"", bad[i]);
}

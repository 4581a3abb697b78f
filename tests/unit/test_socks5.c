/* test_socks5.c: the SOCKS5 parsers and writers against the bytes of RFC 1928. */
#include "autoconfig.h"

#include "socks5.h"
#include "unit.h"

#include <arpa/inet.h>
#include <sys/un.h>

/* ---- Method selection (section 3) ---- */

TEST(test_socks5_greeting_noauth)
{
    static const uint8_t g[] = {5, 2, 0x02, 0x00};
    size_t used = 0;
    uint8_t method = 0x77;
    CHECK_INT(socks5_parse_greeting(g, sizeof g, &used, &method), SOCKS5_DONE);
    CHECK_INT(used, 4);
    CHECK_INT(method, SOCKS5_METHOD_NOAUTH);
}

TEST(test_socks5_greeting_consumes_only_itself)
{
    static const uint8_t g[] = {5, 1, 0x00, 5, 1, 0, 1}; /* a pipelined request follows */
    size_t used = 0;
    uint8_t method = 0x77;
    CHECK_INT(socks5_parse_greeting(g, sizeof g, &used, &method), SOCKS5_DONE);
    CHECK_INT(used, 3);
    CHECK_INT(method, SOCKS5_METHOD_NOAUTH);
}

TEST(test_socks5_greeting_without_noauth)
{
    static const uint8_t g[] = {5, 2, 0x01, 0x02};
    size_t used = 0;
    uint8_t method = 0;
    CHECK_INT(socks5_parse_greeting(g, sizeof g, &used, &method), SOCKS5_DONE);
    CHECK_INT(used, 4);
    CHECK_INT(method, SOCKS5_METHOD_NONE);
}

TEST(test_socks5_greeting_zero_methods)
{
    static const uint8_t g[] = {5, 0};
    size_t used = 0;
    uint8_t method = 0;
    CHECK_INT(socks5_parse_greeting(g, sizeof g, &used, &method), SOCKS5_DONE);
    CHECK_INT(used, 2);
    CHECK_INT(method, SOCKS5_METHOD_NONE);
}

TEST(test_socks5_greeting_255_methods)
{
    uint8_t g[2 + 255];
    size_t used = 0;
    uint8_t method = 0x77;
    g[0] = 5;
    g[1] = 255;
    for (int i = 0; i < 255; i++)
        g[2 + i] = (uint8_t)(255 - i); /* 0xff .. 0x01: no-auth is absent */
    CHECK_INT(socks5_parse_greeting(g, sizeof g, &used, &method), SOCKS5_DONE);
    CHECK_INT(used, 257);
    CHECK_INT(method, SOCKS5_METHOD_NONE);
    g[2 + 254] = 0; /* last one offered */
    CHECK_INT(socks5_parse_greeting(g, sizeof g, &used, &method), SOCKS5_DONE);
    CHECK_INT(method, SOCKS5_METHOD_NOAUTH);
}

TEST(test_socks5_greeting_need_more_at_every_prefix)
{
    static const uint8_t g[] = {5, 3, 0x01, 0x02, 0x00};
    size_t used = 99;
    uint8_t method = 0x77;
    for (size_t len = 0; len < sizeof g; len++)
        CHECK_INT(socks5_parse_greeting(g, len, &used, &method), SOCKS5_NEED_MORE);
    CHECK_INT(used, 99);
    CHECK_INT(method, 0x77);
    CHECK_INT(socks5_parse_greeting(g, sizeof g, &used, &method), SOCKS5_DONE);
    CHECK_INT(used, 5);
    CHECK_INT(method, SOCKS5_METHOD_NOAUTH);
}

TEST(test_socks5_greeting_bad_version)
{
    static const uint8_t v4[] = {4, 1, 0};
    static const uint8_t http[] = {'G', 'E', 'T', ' '};
    size_t used;
    uint8_t method;
    CHECK_INT(socks5_parse_greeting(v4, 1, &used, &method), SOCKS5_BAD);
    CHECK_INT(socks5_parse_greeting(v4, sizeof v4, &used, &method), SOCKS5_BAD);
    CHECK_INT(socks5_parse_greeting(http, sizeof http, &used, &method), SOCKS5_BAD);
}

/* ---- Requests (section 4) ---- */

static const uint8_t req_v4[] = {5, 1, 0, 1, 93, 184, 216, 34, 0x00, 0x50};
static const uint8_t req_v6[] = {5, 1, 0, 4, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0,
                                 0, 0, 0, 0, 0,    0,    0,    2,    0x01, 0xbb};
static const uint8_t req_name[] = {5, 1, 0, 3, 7, 'a', '.', 'b', '.', 'c', 'o', 'm', 0x1f, 0x90};

TEST(test_socks5_request_ipv4)
{
    struct socks5_request r;
    size_t used = 0;
    CHECK_INT(socks5_parse_request(req_v4, sizeof req_v4, &used, &r), SOCKS5_DONE);
    CHECK_INT(used, 10);
    CHECK_INT(r.cmd, SOCKS5_CMD_CONNECT);
    CHECK_INT(r.target.atyp, NETADDR_ATYP_IPV4);
    CHECK_STR(r.target.host, "93.184.216.34");
    CHECK_INT(r.target.port, 80);
    CHECK_INT(r.header_offset, 3);
    CHECK_INT(r.header_len, 7);
    CHECK_MEM(req_v4 + r.header_offset, "\x01\x5d\xb8\xd8\x22\x00\x50", r.header_len);
}

TEST(test_socks5_request_ipv6)
{
    struct socks5_request r;
    size_t used = 0;
    CHECK_INT(socks5_parse_request(req_v6, sizeof req_v6, &used, &r), SOCKS5_DONE);
    CHECK_INT(used, 22);
    CHECK_INT(r.target.atyp, NETADDR_ATYP_IPV6);
    CHECK_STR(r.target.host, "2001:db8::2");
    CHECK_INT(r.target.port, 443);
    CHECK_INT(r.header_offset, 3);
    CHECK_INT(r.header_len, 19);
    CHECK_INT(req_v6[r.header_offset], 4);
}

TEST(test_socks5_request_domain)
{
    struct socks5_request r;
    size_t used = 0;
    uint8_t buf[sizeof req_name + 3];
    memcpy(buf, req_name, sizeof req_name);
    memcpy(buf + sizeof req_name, "GET", 3); /* early data after the request stays unconsumed */
    CHECK_INT(socks5_parse_request(buf, sizeof buf, &used, &r), SOCKS5_DONE);
    CHECK_INT(used, 14);
    CHECK_INT(r.target.atyp, NETADDR_ATYP_DOMAIN);
    CHECK_STR(r.target.host, "a.b.com");
    CHECK_INT(r.target.port, 8080);
    CHECK_INT(r.target.addrlen, 0);
    CHECK_INT(r.header_offset, 3);
    CHECK_INT(r.header_len, 11);
    CHECK_MEM(buf + r.header_offset, "\x03\x07" "a.b.com\x1f\x90", 11);
}

TEST(test_socks5_request_need_more_at_every_prefix)
{
    const uint8_t *reqs[] = {req_v4, req_v6, req_name};
    size_t lens[] = {sizeof req_v4, sizeof req_v6, sizeof req_name};
    struct socks5_request r;
    for (int i = 0; i < 3; i++) {
        size_t used = 99;
        for (size_t len = 0; len < lens[i]; len++)
            CHECK_INT(socks5_parse_request(reqs[i], len, &used, &r), SOCKS5_NEED_MORE);
        CHECK_INT(used, 99);
        CHECK_INT(socks5_parse_request(reqs[i], lens[i], &used, &r), SOCKS5_DONE);
        CHECK_INT(used, lens[i]);
    }
}

TEST(test_socks5_request_unknown_command_parses)
{
    static const uint8_t req[] = {5, 9, 0, 1, 10, 0, 0, 1, 0, 53};
    struct socks5_request r;
    size_t used = 0;
    CHECK_INT(socks5_parse_request(req, sizeof req, &used, &r), SOCKS5_DONE);
    CHECK_INT(used, 10);
    CHECK_INT(r.cmd, 9);
    CHECK_STR(r.target.host, "10.0.0.1");
}

TEST(test_socks5_request_udp_associate_and_bind)
{
    uint8_t req[sizeof req_v4];
    struct socks5_request r;
    size_t used;
    memcpy(req, req_v4, sizeof req);
    req[1] = SOCKS5_CMD_UDP_ASSOCIATE;
    CHECK_INT(socks5_parse_request(req, sizeof req, &used, &r), SOCKS5_DONE);
    CHECK_INT(r.cmd, 3);
    req[1] = SOCKS5_CMD_BIND;
    CHECK_INT(socks5_parse_request(req, sizeof req, &used, &r), SOCKS5_DONE);
    CHECK_INT(r.cmd, 2);
}

TEST(test_socks5_request_bad_version)
{
    uint8_t req[sizeof req_v4];
    struct socks5_request r;
    size_t used;
    memcpy(req, req_v4, sizeof req);
    req[0] = 4;
    CHECK_INT(socks5_parse_request(req, 1, &used, &r), SOCKS5_BAD);
    CHECK_INT(socks5_parse_request(req, sizeof req, &used, &r), SOCKS5_BAD);
}

TEST(test_socks5_request_bad_address)
{
    static const uint8_t atyp2[] = {5, 1, 0, 2, 1, 2, 3, 4, 0, 80};
    static const uint8_t empty[] = {5, 1, 0, 3, 0, 0, 80};
    static const uint8_t ctrl[] = {5, 1, 0, 3, 3, 'a', '\n', 'b', 0, 80};
    struct socks5_request r;
    size_t used;
    CHECK_INT(socks5_parse_request(atyp2, 4, &used, &r), SOCKS5_BAD);
    CHECK_INT(socks5_parse_request(atyp2, sizeof atyp2, &used, &r), SOCKS5_BAD);
    CHECK_INT(socks5_parse_request(empty, sizeof empty, &used, &r), SOCKS5_BAD);
    CHECK_INT(socks5_parse_request(ctrl, sizeof ctrl, &used, &r), SOCKS5_BAD);
}

/* ---- Replies (section 6) ---- */

TEST(test_socks5_reply_null_bound)
{
    uint8_t out[32];
    static const uint8_t want[] = {5, SOCKS5_REP_COMMAND_NOT_SUPPORTED, 0, 1, 0, 0, 0, 0, 0, 0};
    CHECK_INT(socks5_write_reply(out, sizeof out, SOCKS5_REP_COMMAND_NOT_SUPPORTED, NULL), 10);
    CHECK_MEM(out, want, sizeof want);
    CHECK_INT(socks5_write_reply(out, 9, SOCKS5_REP_SUCCEEDED, NULL), -1);
    CHECK_INT(socks5_write_reply(out, 10, SOCKS5_REP_SUCCEEDED, NULL), 10);
}

TEST(test_socks5_reply_ipv4_bound)
{
    struct sockaddr_storage ss;
    socklen_t len;
    uint8_t out[32];
    static const uint8_t want[] = {5, 0, 0, 1, 127, 0, 0, 1, 0x04, 0x38};
    netaddr_from_ip("127.0.0.1", 1080, &ss, &len);
    CHECK_INT(socks5_write_reply(out, sizeof out, SOCKS5_REP_SUCCEEDED, (struct sockaddr *)&ss),
              10);
    CHECK_MEM(out, want, sizeof want);
    CHECK_INT(socks5_write_reply(out, 9, SOCKS5_REP_SUCCEEDED, (struct sockaddr *)&ss), -1);
}

TEST(test_socks5_reply_ipv6_bound)
{
    struct sockaddr_storage ss;
    socklen_t len;
    uint8_t out[32];
    static const uint8_t want[] = {5, 4, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0,
                                   0, 0, 0, 0, 0, 0, 0, 1, 0x04, 0x38};
    netaddr_from_ip("::1", 1080, &ss, &len);
    CHECK_INT(socks5_write_reply(out, sizeof out, SOCKS5_REP_HOST_UNREACHABLE,
                                 (struct sockaddr *)&ss),
              22);
    CHECK_MEM(out, want, sizeof want);
    CHECK_INT(socks5_write_reply(out, 21, 0, (struct sockaddr *)&ss), -1);
    CHECK_INT(socks5_write_reply(out, 2, 0, NULL), -1);
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    CHECK_INT(socks5_write_reply(out, sizeof out, 0, (struct sockaddr *)&un), -1);
}

/* ---- UDP (section 7) ---- */

TEST(test_socks5_udp_header_parses)
{
    static const uint8_t d[] = {0, 0, 0, 1, 8, 8, 8, 8, 0, 53, 'q', 'u', 'e', 'r', 'y'};
    struct netaddr_target t;
    CHECK_INT(socks5_parse_udp_header(d, sizeof d, &t), 10);
    CHECK_INT(t.atyp, NETADDR_ATYP_IPV4);
    CHECK_STR(t.host, "8.8.8.8");
    CHECK_INT(t.port, 53);
    static const uint8_t n[] = {0, 0, 0, 3, 1, 'x', 0, 7};
    CHECK_INT(socks5_parse_udp_header(n, sizeof n, &t), 8);
    CHECK_STR(t.host, "x");
    CHECK_INT(t.port, 7);
}

TEST(test_socks5_udp_header_rejects_frag)
{
    uint8_t d[] = {0, 0, 1, 1, 8, 8, 8, 8, 0, 53, 'x'};
    struct netaddr_target t;
    CHECK_INT(socks5_parse_udp_header(d, sizeof d, &t), -1);
    d[2] = 0x81; /* the end-of-sequence bit set too */
    CHECK_INT(socks5_parse_udp_header(d, sizeof d, &t), -1);
    d[2] = 0;
    CHECK_INT(socks5_parse_udp_header(d, sizeof d, &t), 10);
}

TEST(test_socks5_udp_header_rejects_short_and_malformed)
{
    static const uint8_t d[] = {0, 0, 0, 1, 8, 8, 8, 8, 0, 53};
    static const uint8_t atyp9[] = {0, 0, 0, 9, 8, 8, 8, 8, 0, 53};
    struct netaddr_target t;
    for (size_t len = 0; len < sizeof d; len++)
        CHECK_INT(socks5_parse_udp_header(d, len, &t), -1);
    CHECK_INT(socks5_parse_udp_header(d, sizeof d, &t), 10); /* empty payload is allowed */
    CHECK_INT(socks5_parse_udp_header(atyp9, sizeof atyp9, &t), -1);
}

TEST(test_socks5_udp_header_writes)
{
    struct sockaddr_storage ss;
    socklen_t len;
    uint8_t out[32];
    static const uint8_t want4[] = {0, 0, 0, 1, 1, 1, 1, 1, 0, 53};
    static const uint8_t want6[] = {0, 0, 0, 4, 0x26, 0x06, 0x47, 0, 0, 0, 0, 0, 0,
                                    0, 0, 0,    0,    0,    0x11, 0x11, 0, 53};
    netaddr_from_ip("1.1.1.1", 53, &ss, &len);
    CHECK_INT(socks5_write_udp_header(out, sizeof out, (struct sockaddr *)&ss), 10);
    CHECK_MEM(out, want4, sizeof want4);
    CHECK_INT(socks5_write_udp_header(out, 9, (struct sockaddr *)&ss), -1);
    CHECK_INT(socks5_write_udp_header(out, 2, (struct sockaddr *)&ss), -1);
    netaddr_from_ip("2606:4700::1111", 53, &ss, &len);
    CHECK_INT(socks5_write_udp_header(out, sizeof out, (struct sockaddr *)&ss), 22);
    CHECK_MEM(out, want6, sizeof want6);
    /* What we write, we parse. */
    struct netaddr_target t;
    CHECK_INT(socks5_parse_udp_header(out, 22, &t), 22);
    CHECK_STR(t.host, "2606:4700::1111");
}

/* ---- Username/password (RFC 1929) ---- */

TEST(test_socks5_greeting_for_userpass)
{
    static const uint8_t g[] = {5, 2, 0x00, 0x02};
    size_t used = 0;
    uint8_t method = 0x77;
    CHECK_INT(socks5_parse_greeting_for(g, sizeof g, SOCKS5_METHOD_USERPASS, &used, &method),
              SOCKS5_DONE);
    CHECK_INT(method, SOCKS5_METHOD_USERPASS);
    static const uint8_t noauth[] = {5, 1, 0x00};
    CHECK_INT(socks5_parse_greeting_for(noauth, sizeof noauth, SOCKS5_METHOD_USERPASS, &used,
                                        &method),
              SOCKS5_DONE);
    CHECK_INT(method, SOCKS5_METHOD_NONE); /* only "no authentication" offered */
}

TEST(test_socks5_userpass_parse)
{
    static const uint8_t m[] = {1, 5, 'a', 'l', 'i', 'c', 'e', 2, 'p', 'w', 0xEE};
    struct socks5_userpass up;
    size_t used = 0;
    for (size_t k = 0; k < 10; k++)
        CHECK_INT(socks5_parse_userpass(m, k, &used, &up), SOCKS5_NEED_MORE);
    CHECK_INT(socks5_parse_userpass(m, sizeof m, &used, &up), SOCKS5_DONE);
    CHECK_INT(used, 10);
    CHECK_INT(up.user_len, 5);
    CHECK_MEM(up.user, "alice", 5);
    CHECK_INT(up.pass_len, 2);
    CHECK_MEM(up.pass, "pw", 2);
    static const uint8_t v5[] = {5, 1, 'a', 1, 'b'};
    CHECK_INT(socks5_parse_userpass(v5, sizeof v5, &used, &up), SOCKS5_BAD);
    uint8_t out[2];
    CHECK_INT(socks5_write_userpass_reply(out, 2, false), 2);
    CHECK_INT(out[0], 1);
    CHECK_INT(out[1], 1);
}

/* ---- SOCKS4 and 4a ---- */

TEST(test_socks4_connect_ipv4)
{
    static const uint8_t m[] = {4, 1, 0, 80, 192, 0, 2, 1, 'b', 'o', 'b', 0, 0xEE};
    struct socks4_request r;
    size_t used = 0;
    for (size_t k = 0; k < 12; k++)
        CHECK_INT(socks4_parse_request(m, k, &used, &r), SOCKS5_NEED_MORE);
    CHECK_INT(socks4_parse_request(m, sizeof m, &used, &r), SOCKS5_DONE);
    CHECK_INT(used, 12);
    CHECK_INT(r.cmd, 1);
    CHECK_STR(r.target.host, "192.0.2.1");
    CHECK_INT(r.target.port, 80);
    static const uint8_t header[] = {NETADDR_ATYP_IPV4, 192, 0, 2, 1, 0, 80};
    CHECK_INT(r.header_len, sizeof header);
    CHECK_MEM(r.header, header, sizeof header);
}

TEST(test_socks4a_connect_host_name)
{
    static const uint8_t m[] = {4, 1, 1, 187, 0, 0, 0, 9, 0, 'a', '.', 't', 'e', 's', 't', 0};
    struct socks4_request r;
    size_t used = 0;
    CHECK_INT(socks4_parse_request(m, sizeof m - 1, &used, &r), SOCKS5_NEED_MORE);
    CHECK_INT(socks4_parse_request(m, sizeof m, &used, &r), SOCKS5_DONE);
    CHECK_INT(used, sizeof m);
    CHECK_STR(r.target.host, "a.test");
    CHECK_INT(r.target.port, 443);
    CHECK_INT(r.header[0], NETADDR_ATYP_DOMAIN);
}

/* Issue 16, bad input: a 1 KiB user id is refused once 256 bytes came without its end. */
TEST(test_socks4_user_id_over_255_bytes)
{
    uint8_t m[8 + 1024 + 1] = {4, 1, 0, 80, 127, 0, 0, 1};
    struct socks4_request r;
    size_t used = 0;
    memset(m + 8, 'u', 1024);
    CHECK_INT(socks4_parse_request(m, 8 + 255, &used, &r), SOCKS5_NEED_MORE);
    CHECK_INT(socks4_parse_request(m, 8 + 256, &used, &r), SOCKS5_BAD);
    CHECK_INT(socks4_parse_request(m, sizeof m, &used, &r), SOCKS5_BAD);
    uint8_t out[8];
    CHECK_INT(socks4_write_reply(out, sizeof out, false), 8);
    CHECK_INT(out[1], SOCKS4_REP_REJECTED);
}

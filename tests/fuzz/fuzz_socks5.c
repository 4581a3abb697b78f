/* fuzz_socks5.c: the SOCKS5 parsers (RFC 1928): method selection (section 3), the request
 * (section 4) and the UDP request header (section 7). The local role runs the first two on
 * whatever a local client sends, the UDP relay the third on every datagram.
 *
 * Each input is tried three ways: as a whole session (greeting, then a request in the bytes
 * that follow, as handshake.c does), as a request alone, and as a UDP datagram. Promises:
 *  - consumed counts and header offsets stay inside the input;
 *  - a stream parser gives the same answer however the bytes were split: every shorter prefix
 *    of an accepted message is "need more", and a refused prefix stays refused;
 *  - the address inside a request is the address header parser's answer for those bytes;
 *  - a reply written for a parsed IP target has the documented length;
 *  - RFC 1929 credentials and SOCKS4/4a requests stay inside the input, a SOCKS4 user id or 4a
 *    host is at most 255 bytes, and its address header parses to the same target. */
#include "autoconfig.h"

#include <string.h>

#include "fuzz.h"
#include "socks5.h"

/* Longest request: VER CMD RSV + the longest address header. */
#define REQUEST_MAX (3 + NETADDR_HEADER_MAX)

static int check_greeting(const uint8_t *buf, size_t len, size_t *used)
{
    uint8_t method = 0x42;
    size_t consumed = 0;
    int r = socks5_parse_greeting(buf, len, &consumed, &method);

    FUZZ_CHECK(r == SOCKS5_NEED_MORE || r == SOCKS5_DONE || r == SOCKS5_BAD);
    if (r == SOCKS5_DONE) {
        FUZZ_CHECK(consumed >= 2 && consumed <= len && consumed == 2 + (size_t)buf[1]);
        FUZZ_CHECK(method == SOCKS5_METHOD_NOAUTH || method == SOCKS5_METHOD_NONE);
        FUZZ_CHECK((method == SOCKS5_METHOD_NOAUTH) ==
                   (memchr(buf + 2, SOCKS5_METHOD_NOAUTH, buf[1]) != NULL));
    }
    /* prefixes */
    size_t limit = r == SOCKS5_DONE ? consumed : (len < 258 ? len : 258);
    for (size_t k = 0; k < limit; k++) {
        size_t c2;
        uint8_t m2;
        int q = socks5_parse_greeting(buf, k, &c2, &m2);
        if (r == SOCKS5_DONE)
            FUZZ_CHECK(q == SOCKS5_NEED_MORE);
        if (q == SOCKS5_BAD)
            FUZZ_CHECK(r == SOCKS5_BAD);
    }
    *used = consumed;
    return r;
}

static void check_request(const uint8_t *buf, size_t len)
{
    struct socks5_request req;
    size_t consumed = 0;
    int r = socks5_parse_request(buf, len, &consumed, &req);

    FUZZ_CHECK(r == SOCKS5_NEED_MORE || r == SOCKS5_DONE || r == SOCKS5_BAD);
    if (r == SOCKS5_DONE) {
        /* the shortest request: VER CMD RSV, then ATYP 3, LEN 1, a 1-byte name, the port */
        FUZZ_CHECK(consumed >= 3 + 5 && consumed <= len && consumed <= REQUEST_MAX);
        FUZZ_CHECK(req.header_offset == 3);
        FUZZ_CHECK(req.header_offset + req.header_len == consumed);
        FUZZ_CHECK(req.cmd == buf[1]);
        struct netaddr_target t;
        FUZZ_CHECK(netaddr_parse_header(buf + 3, len - 3, &t) == (int)req.header_len);
        FUZZ_CHECK(t.atyp == req.target.atyp && t.port == req.target.port);
        FUZZ_CHECK(strcmp(t.host, req.target.host) == 0);
        if (req.target.addrlen) {
            uint8_t out[64];
            int n = socks5_write_reply(out, sizeof out, SOCKS5_REP_SUCCEEDED,
                                       (const struct sockaddr *)&req.target.addr);
            FUZZ_CHECK(n == 10 || n == 22);
            FUZZ_CHECK(out[0] == SOCKS5_VERSION && out[1] == SOCKS5_REP_SUCCEEDED);
            FUZZ_CHECK(socks5_write_reply(out, (size_t)n - 1, SOCKS5_REP_SUCCEEDED,
                                          (const struct sockaddr *)&req.target.addr) == -1);
            n = socks5_write_udp_header(out, sizeof out, (const struct sockaddr *)&req.target.addr);
            struct netaddr_target back;
            FUZZ_CHECK(n > 3 && socks5_parse_udp_header(out, (size_t)n, &back) == n);
            FUZZ_CHECK(back.port == req.target.port);
        }
    }
    size_t limit = r == SOCKS5_DONE ? consumed : (len < REQUEST_MAX + 1 ? len : REQUEST_MAX + 1);
    for (size_t k = 0; k < limit; k++) {
        struct socks5_request r2;
        size_t c2;
        int q = socks5_parse_request(buf, k, &c2, &r2);
        if (r == SOCKS5_DONE)
            FUZZ_CHECK(q == SOCKS5_NEED_MORE);
        if (q == SOCKS5_BAD)
            FUZZ_CHECK(r == SOCKS5_BAD);
    }
}

static void check_udp(const uint8_t *buf, size_t len)
{
    struct netaddr_target t;
    int n = socks5_parse_udp_header(buf, len, &t);

    FUZZ_CHECK(n == -1 || (n > 3 && (size_t)n <= len));
    if (n > 0) {
        FUZZ_CHECK(buf[2] == 0); /* fragments are never accepted */
        struct netaddr_target again;
        FUZZ_CHECK(netaddr_parse_header(buf + 3, len - 3, &again) == n - 3);
    }
}

/* RFC 1929 credentials and SOCKS4/4a requests: inside the input, and split-independent. */
static void check_userpass_and_socks4(const uint8_t *buf, size_t len)
{
    struct socks5_userpass up;
    size_t used = 0;
    int r = socks5_parse_userpass(buf, len, &used, &up);
    if (r == SOCKS5_DONE) {
        FUZZ_CHECK(used == 3 + up.user_len + up.pass_len && used <= len);
        FUZZ_CHECK(up.user == buf + 2 && up.pass == buf + 3 + up.user_len);
    }
    struct socks4_request q;
    size_t used4 = 0;
    int r4 = socks4_parse_request(buf, len, &used4, &q);
    if (r4 == SOCKS5_DONE) {
        FUZZ_CHECK(used4 >= 9 && used4 <= len && used4 <= 8 + 2 * (SOCKS4_USERID_MAX + 1));
        FUZZ_CHECK(buf[used4 - 1] == 0);
        struct netaddr_target t;
        FUZZ_CHECK(netaddr_parse_header(q.header, q.header_len, &t) == (int)q.header_len);
        FUZZ_CHECK(t.port == q.target.port && strcmp(t.host, q.target.host) == 0);
    }
    size_t limit = r4 == SOCKS5_DONE ? used4 : (len < 600 ? len : 600);
    for (size_t k = 0; k < limit; k++) {
        size_t c2;
        int q2 = socks4_parse_request(buf, k, &c2, &q);
        if (r4 == SOCKS5_DONE)
            FUZZ_CHECK(q2 == SOCKS5_NEED_MORE);
        if (q2 == SOCKS5_BAD)
            FUZZ_CHECK(r4 == SOCKS5_BAD);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *buf = fuzz_dup(data, size);
    size_t used = 0;

    if (check_greeting(buf, size, &used) == SOCKS5_DONE)
        check_request(buf + used, size - used);
    check_request(buf, size);
    check_udp(buf, size);
    check_userpass_and_socks4(buf, size);
    free(buf);
    return 0;
}

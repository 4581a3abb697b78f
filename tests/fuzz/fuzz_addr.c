/* fuzz_addr.c: the address header parser (netaddr_parse_header, RFC 1928 section 5: ATYP,
 * address, port), which every server reads from the first chunk of a stream and from every
 * datagram before anything is authenticated beyond the tag.
 *
 * Promises checked:
 *  - the result is -1, 0 (incomplete) or the header length, which fits in the input and in
 *    NETADDR_HEADER_MAX;
 *  - arrival order does not matter: every shorter prefix of a good header is "incomplete", and a
 *    prefix that is already refused stays refused once the rest arrives;
 *  - a parsed header written back with netaddr_write_header() is the very same bytes, and an IP
 *    target's text form names the same address;
 *  - the input read as text by netaddr_target_from_string() ("host:port") gives a target whose
 *    header parses back to the same host and port. */
#include "autoconfig.h"

#include <string.h>

#include "fuzz.h"
#include "netaddr.h"

static void check_header(const uint8_t *buf, size_t len)
{
    struct netaddr_target t, again;
    int n = netaddr_parse_header(buf, len, &t);

    FUZZ_CHECK(n >= -1);
    FUZZ_CHECK(n <= (int)len && n <= NETADDR_HEADER_MAX);
    /* Every prefix: incomplete while the full parse succeeds; never "good" when shorter. */
    size_t limit = len > NETADDR_HEADER_MAX ? (size_t)NETADDR_HEADER_MAX + 1 : len;
    for (size_t k = 0; k < limit; k++) {
        int m = netaddr_parse_header(buf, k, &again);
        if (n > 0 && k < (size_t)n)
            FUZZ_CHECK(m == 0);
        if (m < 0)
            FUZZ_CHECK(n < 0); /* refused early means refused */
        if (m > 0)
            FUZZ_CHECK(m == n);
    }
    if (n <= 0)
        return;

    FUZZ_CHECK(t.atyp == NETADDR_ATYP_IPV4 || t.atyp == NETADDR_ATYP_IPV6 ||
               t.atyp == NETADDR_ATYP_DOMAIN);
    FUZZ_CHECK(memchr(t.host, '\0', sizeof t.host) != NULL);
    FUZZ_CHECK(t.host[0] != '\0');
    if (t.atyp == NETADDR_ATYP_DOMAIN) {
        FUZZ_CHECK(t.addrlen == 0);
        FUZZ_CHECK(strlen(t.host) == buf[1]);
        for (const char *c = t.host; *c; c++)
            FUZZ_CHECK(*c > 0x20 && *c < 0x7f);
    } else {
        FUZZ_CHECK(t.addrlen > 0 && t.addrlen <= sizeof t.addr);
        FUZZ_CHECK(netaddr_port((const struct sockaddr *)&t.addr) == t.port);
        char text[80];
        FUZZ_CHECK(netaddr_format((const struct sockaddr *)&t.addr, text, sizeof text) != NULL);
        /* the text form names the same address */
        struct sockaddr_storage ss;
        socklen_t sslen;
        FUZZ_CHECK(netaddr_from_ip(t.host, t.port, &ss, &sslen) == 0 && sslen == t.addrlen);
        FUZZ_CHECK(netaddr_equal((const struct sockaddr *)&ss, (const struct sockaddr *)&t.addr));
    }

    /* Round trip through the writer, with a buffer of exactly the right size and one too
     * small. */
    uint8_t out[NETADDR_HEADER_MAX];
    FUZZ_CHECK(netaddr_write_header(&t, out, sizeof out) == n);
    FUZZ_CHECK(memcmp(out, buf, (size_t)n) == 0);
    FUZZ_CHECK(netaddr_write_header(&t, out, (size_t)n - 1) == -1);
    if (t.addrlen) {
        uint8_t from_sa[NETADDR_HEADER_MAX];
        int k =
            netaddr_header_from_sockaddr((const struct sockaddr *)&t.addr, from_sa, sizeof from_sa);
        FUZZ_CHECK(k > 0);
        /* the same bytes, except that an IPv4-mapped IPv6 address is written as IPv4 */
        if (k == n)
            FUZZ_CHECK(memcmp(from_sa, buf, (size_t)n) == 0);
        else
            FUZZ_CHECK(t.atyp == NETADDR_ATYP_IPV6 && k == 1 + 4 + 2);
    }
}

static void check_string(const uint8_t *buf, size_t len)
{
    char text[300];
    size_t n = len < sizeof text - 1 ? len : sizeof text - 1;
    struct netaddr_target t, back;

    memcpy(text, buf, n);
    text[n] = '\0';
    if (netaddr_target_from_string(text, &t) != 0)
        return;
    FUZZ_CHECK(t.port != 0);
    uint8_t out[NETADDR_HEADER_MAX];
    int k = netaddr_write_header(&t, out, sizeof out);
    FUZZ_CHECK(k > 0);
    FUZZ_CHECK(netaddr_parse_header(out, (size_t)k, &back) == k);
    FUZZ_CHECK(back.atyp == t.atyp && back.port == t.port);
    if (t.atyp == NETADDR_ATYP_DOMAIN)
        FUZZ_CHECK(strcmp(back.host, t.host) == 0);
    else
        FUZZ_CHECK(
            netaddr_equal((const struct sockaddr *)&back.addr, (const struct sockaddr *)&t.addr));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *buf = fuzz_dup(data, size);
    check_header(buf, size);
    check_string(buf, size);
    free(buf);
    return 0;
}

/* socks5.c: the SOCKS5 handshake (RFC 1928) as pure parsers and writers over bytes. The caller
 * owns the socket and the buffer; each parser says NEED_MORE, DONE (with what it consumed) or
 * BAD, so the same code serves a stream that arrives one byte at a time and a fuzz target. */
#include "autoconfig.h"

#include "socks5.h"

#include <string.h>

/* Section 3: VER NMETHODS METHODS[NMETHODS]. */
int socks5_parse_greeting(const uint8_t *buf, size_t len, size_t *consumed, uint8_t *method)
{
    if (len < 1)
        return SOCKS5_NEED_MORE;
    if (buf[0] != SOCKS5_VERSION)
        return SOCKS5_BAD;
    if (len < 2)
        return SOCKS5_NEED_MORE;
    size_t n = buf[1];
    if (len < 2 + n)
        return SOCKS5_NEED_MORE;
    /* NMETHODS = 0 offers nothing we can accept: answer X'FF' (no acceptable methods) rather
     * than drop the connection, so the client learns why. */
    *method = SOCKS5_METHOD_NONE;
    if (memchr(buf + 2, SOCKS5_METHOD_NOAUTH, n))
        *method = SOCKS5_METHOD_NOAUTH;
    *consumed = 2 + n;
    return SOCKS5_DONE;
}

/* Section 4: VER CMD RSV ATYP DST.ADDR DST.PORT. RSV is not checked: the RFC gives it no
 * meaning, and refusing a client over it gains nothing. */
int socks5_parse_request(const uint8_t *buf, size_t len, size_t *consumed,
                         struct socks5_request *r)
{
    if (len < 1)
        return SOCKS5_NEED_MORE;
    if (buf[0] != SOCKS5_VERSION)
        return SOCKS5_BAD;
    if (len < 3)
        return SOCKS5_NEED_MORE;
    int n = netaddr_parse_header(buf + 3, len - 3, &r->target);
    if (n < 0)
        return SOCKS5_BAD;
    if (n == 0)
        return SOCKS5_NEED_MORE;
    r->cmd = buf[1];
    r->header_offset = 3;
    r->header_len = (size_t)n;
    *consumed = 3 + (size_t)n;
    return SOCKS5_DONE;
}

/* Section 6: VER REP RSV ATYP BND.ADDR BND.PORT. */
int socks5_write_reply(uint8_t *out, size_t cap, uint8_t rep, const struct sockaddr *bound)
{
    if (cap < 3)
        return -1;
    out[0] = SOCKS5_VERSION;
    out[1] = rep;
    out[2] = 0;
    int n;
    if (bound) {
        n = netaddr_header_from_sockaddr(bound, out + 3, cap - 3);
    } else {
        /* No bound address to report (a failure reply, or none known): ATYP 1, 0.0.0.0:0. */
        static const uint8_t zero[] = {NETADDR_ATYP_IPV4, 0, 0, 0, 0, 0, 0};
        n = cap - 3 < sizeof zero ? -1 : (int)sizeof zero;
        if (n > 0)
            memcpy(out + 3, zero, sizeof zero);
    }
    return n < 0 ? -1 : 3 + n;
}

/* Section 7: RSV(2) FRAG ATYP DST.ADDR DST.PORT DATA. A datagram is complete or nothing, so an
 * incomplete header is as malformed as a bad one. Fragmentation is optional in the RFC and no
 * client in practice uses it; a fragment (FRAG != 0) is dropped. */
int socks5_parse_udp_header(const uint8_t *buf, size_t len, struct netaddr_target *t)
{
    if (len < 3 || buf[2] != 0)
        return -1;
    int n = netaddr_parse_header(buf + 3, len - 3, t);
    if (n <= 0)
        return -1;
    return 3 + n;
}

int socks5_write_udp_header(uint8_t *out, size_t cap, const struct sockaddr *sa)
{
    if (cap < 3)
        return -1;
    out[0] = 0;
    out[1] = 0;
    out[2] = 0;
    int n = netaddr_header_from_sockaddr(sa, out + 3, cap - 3);
    return n < 0 ? -1 : 3 + n;
}

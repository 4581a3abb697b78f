/* socks5.c: the SOCKS5 handshake (RFC 1928, RFC 1929) and SOCKS4/4a CONNECT as pure parsers and
 * writers over bytes. The caller owns the socket and the buffer; each parser says NEED_MORE, DONE
 * (with what it consumed) or BAD, so the same code serves a stream that arrives one byte at a time
 * and a fuzz target. */
#include "autoconfig.h"

#include "socks5.h"

#include <string.h>

/* The opening every message parsed here shares: a version byte, then a fixed part of `fixed`
 * bytes in all. NEED_MORE until the first byte is there, BAD at once when it is not version
 * (before the rest arrives), NEED_MORE until the fixed part is complete, else DONE. */
static int socks5_head(const uint8_t *buf, size_t len, uint8_t version, size_t fixed)
{
    if (len < 1)
        return SOCKS5_NEED_MORE;
    if (buf[0] != version)
        return SOCKS5_BAD;
    return len < fixed ? SOCKS5_NEED_MORE : SOCKS5_DONE;
}

/* Section 3: VER NMETHODS METHODS[NMETHODS]. */
int socks5_parse_greeting(const uint8_t *buf, size_t len, size_t *consumed, uint8_t *method)
{
    return socks5_parse_greeting_for(buf, len, SOCKS5_METHOD_NOAUTH, consumed, method);
}

int socks5_parse_greeting_for(const uint8_t *buf, size_t len, uint8_t wanted, size_t *consumed,
                              uint8_t *method)
{
    int head = socks5_head(buf, len, SOCKS5_VERSION, 2);
    if (head != SOCKS5_DONE)
        return head;
    size_t n = buf[1];
    if (len < 2 + n)
        return SOCKS5_NEED_MORE;
    /* NMETHODS = 0 offers nothing we can accept: answer X'FF' (no acceptable methods) rather
     * than drop the connection, so the client learns why. */
    *method = SOCKS5_METHOD_NONE;
    if (memchr(buf + 2, wanted, n))
        *method = wanted;
    *consumed = 2 + n;
    return SOCKS5_DONE;
}

/* Section 4: VER CMD RSV ATYP DST.ADDR DST.PORT. RSV is not checked: the RFC gives it no
 * meaning, and refusing a client over it gains nothing. */
int socks5_parse_request(const uint8_t *buf, size_t len, size_t *consumed,
                         struct socks5_request *r)
{
    int head = socks5_head(buf, len, SOCKS5_VERSION, 3);
    if (head != SOCKS5_DONE)
        return head;
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

/* RFC 1929 section 2. */
int socks5_parse_userpass(const uint8_t *buf, size_t len, size_t *consumed,
                          struct socks5_userpass *up)
{
    int head = socks5_head(buf, len, SOCKS5_USERPASS_VERSION, 2);
    if (head != SOCKS5_DONE)
        return head;
    size_t ulen = buf[1];
    if (len < 2 + ulen + 1)
        return SOCKS5_NEED_MORE;
    size_t plen = buf[2 + ulen];
    if (len < 3 + ulen + plen)
        return SOCKS5_NEED_MORE;
    up->user = buf + 2;
    up->user_len = ulen;
    up->pass = buf + 3 + ulen;
    up->pass_len = plen;
    *consumed = 3 + ulen + plen;
    return SOCKS5_DONE;
}

int socks5_write_userpass_reply(uint8_t *out, size_t cap, bool ok)
{
    if (cap < 2)
        return -1;
    out[0] = SOCKS5_USERPASS_VERSION;
    out[1] = ok ? 0 : 1; /* any non-zero STATUS is a failure, and the server closes */
    return 2;
}

/* A NUL-terminated field of at most max bytes at buf[off..len): its length, -1 while its NUL
 * has not arrived (and fewer than max+1 bytes have), -2 when it is longer than max. */
static long socks4_field(const uint8_t *buf, size_t len, size_t off, size_t max)
{
    size_t have = len - off < max + 1 ? len - off : max + 1;
    const uint8_t *nul = memchr(buf + off, 0, have);
    if (nul)
        return nul - (buf + off);
    return have == max + 1 ? -2 : -1;
}

/* SOCKS4 (Ying-Da Lee, "SOCKS 4A: A Simple Extension to SOCKS 4 Protocol"): a DSTIP of
 * 0.0.0.x with x != 0 says a host name follows the user id. */
int socks4_parse_request(const uint8_t *buf, size_t len, size_t *consumed, struct socks4_request *r)
{
    int head = socks5_head(buf, len, SOCKS4_VERSION, 8);
    if (head != SOCKS5_DONE)
        return head;
    long user = socks4_field(buf, len, 8, SOCKS4_USERID_MAX);
    if (user < 0)
        return user == -2 ? SOCKS5_BAD : SOCKS5_NEED_MORE;
    size_t end = 8 + (size_t)user + 1;
    uint8_t *h = r->header;
    bool socks4a = buf[4] == 0 && buf[5] == 0 && buf[6] == 0 && buf[7] != 0;
    if (socks4a) {
        long host = socks4_field(buf, len, end, 255);
        if (host < 0)
            return host == -2 ? SOCKS5_BAD : SOCKS5_NEED_MORE;
        if (host == 0)
            return SOCKS5_BAD;
        h[0] = NETADDR_ATYP_DOMAIN;
        h[1] = (uint8_t)host;
        memcpy(h + 2, buf + end, (size_t)host);
        memcpy(h + 2 + host, buf + 2, 2);
        r->header_len = 2 + (size_t)host + 2;
        end += (size_t)host + 1;
    } else {
        h[0] = NETADDR_ATYP_IPV4;
        memcpy(h + 1, buf + 4, 4);
        memcpy(h + 5, buf + 2, 2);
        r->header_len = 7;
    }
    if (netaddr_parse_header(h, r->header_len, &r->target) != (int)r->header_len)
        return SOCKS5_BAD;
    r->cmd = buf[1];
    *consumed = end;
    return SOCKS5_DONE;
}

int socks4_write_reply(uint8_t *out, size_t cap, bool granted)
{
    if (cap < 8)
        return -1;
    memset(out, 0, 8);
    out[1] = granted ? SOCKS4_REP_GRANTED : SOCKS4_REP_REJECTED;
    return 8;
}

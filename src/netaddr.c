/* netaddr.c: addresses and sockets in one place. The address header that SOCKS5 (RFC 1928
 * section 5) and shadowsocks (SIP002 / the AEAD spec's "target address") share, parsed and
 * written without I/O; "host:port" strings; sockaddr helpers; and every socket option the proxy
 * sets, each with the reason it is set. */
#include "autoconfig.h"

#include "netaddr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef TCP_FASTOPEN_CONNECT
#define TCP_FASTOPEN_CONNECT 30 /* Linux 4.11 uapi value, for older libc headers */
#endif

/* Listener TFO queue: how many SYN-with-data connections may wait for accept() before the kernel
 * falls back to a plain three-way handshake (RFC 7413 section 5.1 asks for such a bound). */
#define NETADDR_FASTOPEN_QUEUE 256

/* ---- The address header ----------------------------------------------------------------- */

/* A name byte is accepted only as printable ASCII without space: names go to the resolver and
 * into logs, and internationalized names travel as A-labels (RFC 5891), so NUL, control
 * characters, space, DEL and bytes >= 0x80 can only be an attack or a broken client. */
static bool netaddr_name_byte_ok(uint8_t c)
{
    return c > 0x20 && c < 0x7f;
}

static uint16_t netaddr_read_port(const uint8_t *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}

static void netaddr_write_port(uint8_t *p, uint16_t port)
{
    p[0] = (uint8_t)(port >> 8);
    p[1] = (uint8_t)(port & 0xff);
}

socklen_t netaddr_from_ip_bytes(int family, const void *ip, uint16_t port,
                                struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof *ss);
    if (family == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)ss;
        sin->sin_family = AF_INET;
        sin->sin_port = htons(port);
        memcpy(&sin->sin_addr, ip, 4);
        return sizeof *sin;
    }
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(port);
    memcpy(&sin6->sin6_addr, ip, 16);
    return sizeof *sin6;
}

static void netaddr_fill_ip(struct netaddr_target *t, int atyp, const uint8_t *ip, uint16_t port)
{
    int family = atyp == NETADDR_ATYP_IPV4 ? AF_INET : AF_INET6;

    memset(t, 0, sizeof *t);
    t->atyp = atyp;
    t->port = port;
    t->addrlen = netaddr_from_ip_bytes(family, ip, port, &t->addr);
    inet_ntop(family, ip, t->host, sizeof t->host);
}

static int netaddr_parse_domain(const uint8_t *buf, size_t len, struct netaddr_target *t)
{
    if (len < 2)
        return 0;
    size_t n = buf[1];
    if (n == 0)
        return -1;
    /* Reject a bad byte as soon as it arrives instead of waiting for the rest of the name. */
    size_t have = len - 2 < n ? len - 2 : n;
    for (size_t i = 0; i < have; i++)
        if (!netaddr_name_byte_ok(buf[2 + i]))
            return -1;
    if (len < 2 + n + 2)
        return 0;
    memset(t, 0, sizeof *t);
    t->atyp = NETADDR_ATYP_DOMAIN;
    memcpy(t->host, buf + 2, n);
    t->host[n] = '\0';
    t->port = netaddr_read_port(buf + 2 + n);
    return (int)(2 + n + 2);
}

int netaddr_parse_header(const uint8_t *buf, size_t len, struct netaddr_target *t)
{
    if (len < 1)
        return 0;
    switch (buf[0]) {
    case NETADDR_ATYP_IPV4:
        if (len < 1 + 4 + 2)
            return 0;
        netaddr_fill_ip(t, NETADDR_ATYP_IPV4, buf + 1, netaddr_read_port(buf + 5));
        return 1 + 4 + 2;
    case NETADDR_ATYP_IPV6:
        if (len < 1 + 16 + 2)
            return 0;
        netaddr_fill_ip(t, NETADDR_ATYP_IPV6, buf + 1, netaddr_read_port(buf + 17));
        return 1 + 16 + 2;
    case NETADDR_ATYP_DOMAIN:
        return netaddr_parse_domain(buf, len, t);
    default:
        return -1;
    }
}

/* The raw address bytes of an IP target: from addr when it is set, else from the host text. */
static int netaddr_target_ip(const struct netaddr_target *t, int family, uint8_t *ip)
{
    if (t->addrlen > 0 && t->addr.ss_family == family) {
        if (family == AF_INET)
            memcpy(ip, &((const struct sockaddr_in *)&t->addr)->sin_addr, 4);
        else
            memcpy(ip, &((const struct sockaddr_in6 *)&t->addr)->sin6_addr, 16);
        return 0;
    }
    return inet_pton(family, t->host, ip) == 1 ? 0 : -1;
}

int netaddr_write_header(const struct netaddr_target *t, uint8_t *out, size_t cap)
{
    uint8_t ip[16];
    size_t n;

    switch (t->atyp) {
    case NETADDR_ATYP_IPV4:
    case NETADDR_ATYP_IPV6:
        n = t->atyp == NETADDR_ATYP_IPV4 ? 4 : 16;
        if (cap < 1 + n + 2 ||
            netaddr_target_ip(t, n == 4 ? AF_INET : AF_INET6, ip) < 0)
            return -1;
        out[0] = (uint8_t)t->atyp;
        memcpy(out + 1, ip, n);
        netaddr_write_port(out + 1 + n, t->port);
        return (int)(1 + n + 2);
    case NETADDR_ATYP_DOMAIN:
        n = strnlen(t->host, sizeof t->host);
        if (n == 0 || n > 255 || cap < 2 + n + 2)
            return -1;
        for (size_t i = 0; i < n; i++)
            if (!netaddr_name_byte_ok((uint8_t)t->host[i]))
                return -1;
        out[0] = NETADDR_ATYP_DOMAIN;
        out[1] = (uint8_t)n;
        memcpy(out + 2, t->host, n);
        netaddr_write_port(out + 2 + n, t->port);
        return (int)(2 + n + 2);
    default:
        return -1;
    }
}

int netaddr_header_from_sockaddr(const struct sockaddr *sa, uint8_t *out, size_t cap)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
        if (cap < 7)
            return -1;
        out[0] = NETADDR_ATYP_IPV4;
        memcpy(out + 1, &sin->sin_addr, 4);
        memcpy(out + 5, &sin->sin_port, 2); /* both in network order */
        return 7;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
        /* A dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d (RFC 4291 section 2.5.5.2);
         * the client asked for an IPv4 address and expects one back. */
        if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
            if (cap < 7)
                return -1;
            out[0] = NETADDR_ATYP_IPV4;
            memcpy(out + 1, sin6->sin6_addr.s6_addr + 12, 4);
            memcpy(out + 5, &sin6->sin6_port, 2);
            return 7;
        }
        if (cap < 19)
            return -1;
        out[0] = NETADDR_ATYP_IPV6;
        memcpy(out + 1, &sin6->sin6_addr, 16);
        memcpy(out + 17, &sin6->sin6_port, 2);
        return 19;
    }
    return -1;
}

/* ---- Strings and sockaddrs ----------------------------------------------------------------- */

int netaddr_port_value(const char *s, size_t len, uint16_t *port)
{
    unsigned long v = 0;

    if (len == 0 || len > 5)
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (unsigned long)(s[i] - '0');
    }
    if (v > 65535)
        return -1;
    *port = (uint16_t)v;
    return 0;
}

int netaddr_parse_port(const char *s, size_t len, uint16_t *port)
{
    uint16_t v;
    if (!s || netaddr_port_value(s, len, &v) < 0 || v == 0)
        return -1;
    *port = v;
    return 0;
}

int netaddr_from_ip(const char *ip, uint16_t port, struct sockaddr_storage *ss, socklen_t *len)
{
    uint8_t raw[16];
    int family = inet_pton(AF_INET, ip, raw) == 1    ? AF_INET
                 : inet_pton(AF_INET6, ip, raw) == 1 ? AF_INET6
                                                     : AF_UNSPEC;

    memset(ss, 0, sizeof *ss);
    if (family == AF_UNSPEC)
        return -1;
    *len = netaddr_from_ip_bytes(family, raw, port, ss);
    return 0;
}

/* Where host and port text stand in s[0..len). port is NULL when none is given, which only
 * NETADDR_PORT_OPTIONAL allows. Several colons without brackets can only be a bare IPv6
 * literal, because "::1:80" cannot be told apart from an address (RFC 3986 section 3.2.2). */
struct netaddr_split {
    const char *host, *port;
    size_t hostlen, portlen;
    bool bracketed, colons;
};

static int netaddr_split_hostport(const char *s, size_t len, unsigned flags,
                                  struct netaddr_split *sp)
{
    bool optional = flags & NETADDR_PORT_OPTIONAL;
    const char *end = s + len, *colon;

    memset(sp, 0, sizeof *sp);
    sp->bracketed = len > 0 && s[0] == '[';
    if (sp->bracketed) {
        const char *close = memchr(s, ']', len);
        if (!close)
            return -1;
        sp->host = s + 1;
        sp->hostlen = (size_t)(close - sp->host);
        if (close + 1 == end)
            return optional ? 0 : -1;
        if (close[1] != ':')
            return -1;
        sp->port = close + 2;
        sp->portlen = (size_t)(end - sp->port);
        return 0;
    }
    sp->host = s;
    sp->hostlen = len;
    colon = memchr(s, ':', len);
    if (!colon)
        return optional ? 0 : -1;
    if (memchr(colon + 1, ':', (size_t)(end - colon - 1))) {
        sp->colons = true;
        return optional ? 0 : -1;
    }
    sp->hostlen = (size_t)(colon - s);
    sp->port = colon + 1;
    sp->portlen = (size_t)(end - sp->port);
    return 0;
}

/* A host name as it may stand in a configuration: see netaddr_parse_hostport(). */
static bool netaddr_is_hostname(const char *s, size_t len)
{
    if (len == 0 || len > 255)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        bool alnum = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
        if (!alnum && c != '.' && c != '-' && c != '_')
            return false;
    }
    return true;
}

static int netaddr_fill_host(struct netaddr_target *t, const struct netaddr_split *sp,
                             unsigned flags, uint16_t port)
{
    char host[sizeof t->host];
    uint8_t ip[16];

    if (sp->hostlen == 0 || sp->hostlen >= sizeof host)
        return -1;
    memcpy(host, sp->host, sp->hostlen);
    host[sp->hostlen] = '\0';
    if (inet_pton(AF_INET6, host, ip) == 1) {
        netaddr_fill_ip(t, NETADDR_ATYP_IPV6, ip, port);
        return 0;
    }
    if (sp->bracketed || sp->colons)
        return -1; /* brackets hold IPv6 literals only */
    if (inet_pton(AF_INET, host, ip) == 1) {
        netaddr_fill_ip(t, NETADDR_ATYP_IPV4, ip, port);
        return 0;
    }
    if ((flags & NETADDR_NUMERIC) || !netaddr_is_hostname(host, sp->hostlen))
        return -1;
    memset(t, 0, sizeof *t);
    t->atyp = NETADDR_ATYP_DOMAIN;
    memcpy(t->host, host, sp->hostlen + 1);
    t->port = port;
    return 0;
}

int netaddr_parse_hostport(const char *s, size_t len, unsigned flags, struct netaddr_endpoint *e)
{
    struct netaddr_split sp;
    struct netaddr_target t;
    uint16_t port = 0;

    if (!s || netaddr_split_hostport(s, len, flags, &sp) < 0)
        return -1;
    if (sp.port && (netaddr_port_value(sp.port, sp.portlen, &port) < 0 ||
                    (port == 0 && !(flags & NETADDR_PORT_ZERO))))
        return -1;
    if (netaddr_fill_host(&t, &sp, flags, port) < 0)
        return -1;
    memset(e, 0, sizeof *e);
    e->target = t;
    e->prefer = NETADDR_PREFER_ANY;
    return 0;
}

int netaddr_parse_list(const char *s, unsigned flags, struct netaddr_endpoint *out, int max)
{
    int n = 0;

    if (!s)
        return -1;
    for (const char *p = s;;) {
        const char *end = strchr(p, ',');
        if (!end)
            end = p + strlen(p);
        while (p < end && *p == ' ')
            p++;
        const char *e = end;
        while (e > p && e[-1] == ' ')
            e--;
        if (n >= max || netaddr_parse_hostport(p, (size_t)(e - p), flags, &out[n]) < 0)
            return -1;
        n++;
        if (!*end)
            return n;
        p = end + 1;
    }
}

void netaddr_set_target_port(struct netaddr_target *t, uint16_t port)
{
    t->port = port;
    if (t->addrlen > 0)
        netaddr_set_port((struct sockaddr *)&t->addr, port);
}

int netaddr_target_from_string(const char *s, struct netaddr_target *t)
{
    struct netaddr_endpoint e;
    if (!s || netaddr_parse_hostport(s, strlen(s), 0, &e) < 0)
        return -1;
    *t = e.target;
    return 0;
}

const char *netaddr_format(const struct sockaddr *sa, char *buf, size_t len)
{
    char ip[INET6_ADDRSTRLEN];

    if (len == 0)
        return buf;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof ip);
        snprintf(buf, len, "%s:%u", ip, (unsigned)ntohs(sin->sin_port));
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &sin6->sin6_addr, ip, sizeof ip);
        snprintf(buf, len, "[%s]:%u", ip, (unsigned)ntohs(sin6->sin6_port));
    } else {
        snprintf(buf, len, "(family %d)", (int)sa->sa_family);
    }
    return buf;
}

uint16_t netaddr_port(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)sa)->sin_port);
    if (sa->sa_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
    return 0;
}

void netaddr_set_port(struct sockaddr *sa, uint16_t port)
{
    if (sa->sa_family == AF_INET)
        ((struct sockaddr_in *)sa)->sin_port = htons(port);
    else if (sa->sa_family == AF_INET6)
        ((struct sockaddr_in6 *)sa)->sin6_port = htons(port);
}

socklen_t netaddr_len(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET)
        return sizeof(struct sockaddr_in);
    if (sa->sa_family == AF_INET6)
        return sizeof(struct sockaddr_in6);
    return 0;
}

bool netaddr_equal(const struct sockaddr *a, const struct sockaddr *b)
{
    if (a->sa_family != b->sa_family)
        return false;
    if (a->sa_family == AF_INET) {
        const struct sockaddr_in *x = (const struct sockaddr_in *)a;
        const struct sockaddr_in *y = (const struct sockaddr_in *)b;
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    if (a->sa_family == AF_INET6) {
        const struct sockaddr_in6 *x = (const struct sockaddr_in6 *)a;
        const struct sockaddr_in6 *y = (const struct sockaddr_in6 *)b;
        return x->sin6_port == y->sin6_port && x->sin6_scope_id == y->sin6_scope_id &&
               memcmp(&x->sin6_addr, &y->sin6_addr, 16) == 0;
    }
    return false;
}

int netaddr_host_key(const struct sockaddr *sa, uint8_t key[16])
{
    if (sa->sa_family == AF_INET6) {
        memcpy(key, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
        return 0;
    }
    if (sa->sa_family != AF_INET)
        return -1;
    static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    memcpy(key, v4mapped, sizeof v4mapped);
    memcpy(key + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
    return 0;
}

static void netaddr_cidr_mask(struct netaddr_cidr *c)
{
    for (int i = 0; i < 16; i++) {
        int keep = c->prefix - i * 8;
        c->addr[i] &= keep >= 8 ? 0xff : keep <= 0 ? 0 : (uint8_t)(0xff << (8 - keep));
    }
}

int netaddr_parse_cidr(const char *s, struct netaddr_cidr *out)
{
    char host[INET6_ADDRSTRLEN];
    const char *slash = strchr(s, '/');
    size_t hlen = slash ? (size_t)(slash - s) : strlen(s);
    struct sockaddr_storage ss;
    socklen_t sslen;
    int bits;

    if (hlen == 0 || hlen >= sizeof host)
        return -1;
    memcpy(host, s, hlen);
    host[hlen] = '\0';
    if (netaddr_from_ip(host, 0, &ss, &sslen) != 0 ||
        netaddr_host_key((struct sockaddr *)&ss, out->addr) != 0)
        return -1;
    bool v4 = ss.ss_family == AF_INET;
    int max = v4 ? 32 : 128;
    bits = max;
    /* the prefix: digits only, as the ACL files' CIDRs */
    if (slash && (slash[1] == '\0' || strspn(slash + 1, "0123456789") != strlen(slash + 1) ||
                  strlen(slash + 1) > 3 || (bits = atoi(slash + 1)) > max))
        return -1;
    out->prefix = (uint8_t)(v4 ? 96 + bits : bits);
    netaddr_cidr_mask(out);
    return 0;
}

bool netaddr_cidr_match(const struct netaddr_cidr *list, int n, const struct sockaddr *sa)
{
    uint8_t key[16];

    if (netaddr_host_key(sa, key) != 0)
        return false;
    for (int i = 0; i < n; i++) {
        struct netaddr_cidr m = {.prefix = list[i].prefix};
        memcpy(m.addr, key, sizeof key);
        netaddr_cidr_mask(&m);
        if (memcmp(m.addr, list[i].addr, sizeof key) == 0)
            return true;
    }
    return false;
}

/* ---- Sockets ------------------------------------------------------------------------------ */

int netaddr_set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return -1;
    return 0;
}

int netaddr_set_cloexec(int fd, bool on)
{
    int fl = fcntl(fd, F_GETFD);
    if (fl < 0)
        return -1;
    fl = on ? fl | FD_CLOEXEC : fl & ~FD_CLOEXEC;
    return fcntl(fd, F_SETFD, fl) < 0 ? -1 : 0;
}

/* Room for the one descriptor a message carries (cmsg(3)). */
union netaddr_fd_control {
    struct cmsghdr h;
    char space[CMSG_SPACE(sizeof(int))];
};

int netaddr_send_fd(int sock, const void *data, size_t len, int fd)
{
    struct iovec iov = {(void *)data, len};
    union netaddr_fd_control ctl;
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};

    memset(&ctl, 0, sizeof ctl);
    if (fd >= 0) {
        m.msg_control = &ctl;
        m.msg_controllen = sizeof ctl;
        struct cmsghdr *c = CMSG_FIRSTHDR(&m);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &fd, sizeof fd);
    }
    return sendmsg(sock, &m, MSG_DONTWAIT | MSG_NOSIGNAL) == (ssize_t)len ? 0 : -1;
}

ssize_t netaddr_recv_fd(int sock, void *data, size_t len, int *fd, bool *truncated)
{
    struct iovec iov = {data, len};
    union netaddr_fd_control ctl;
    struct msghdr m = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = &ctl, .msg_controllen = sizeof ctl};

    *fd = -1;
    if (truncated)
        *truncated = false;
    /* MSG_CMSG_CLOEXEC: the descriptor is close-on-exec from its first moment here, so no
     * plugin or binary upgrade exec'd meanwhile inherits it */
    ssize_t n = recvmsg(sock, &m, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
    if (n <= 0)
        return n;
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    if (c && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
        memcpy(fd, CMSG_DATA(c), sizeof *fd);
    if (truncated)
        *truncated = (m.msg_flags & MSG_TRUNC) != 0;
    return n;
}

static int netaddr_setopt(int fd, int level, int name, int value)
{
    return setsockopt(fd, level, name, &value, sizeof value);
}

/* Closes fd keeping the errno of the failure that made us give up on it. */
static int netaddr_fail(int fd)
{
    int saved = errno;
    close(fd);
    errno = saved;
    return -1;
}

/* Options every bound socket shares. SO_REUSEPORT lets each worker slot own its own socket on
 * the same port and the kernel spread connections over them (Linux 3.9+). IPV6_V6ONLY is set
 * to the flag's value either way, so the result does not depend on net.ipv6.bindv6only. */
static int netaddr_bind_options(int fd, const struct sockaddr *sa, unsigned flags)
{
    if ((flags & NETADDR_REUSEPORT) && netaddr_setopt(fd, SOL_SOCKET, SO_REUSEPORT, 1) < 0)
        return -1;
    if (sa->sa_family == AF_INET6 &&
        netaddr_setopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, (flags & NETADDR_V6ONLY) ? 1 : 0) < 0)
        return -1;
    bool v6 = sa->sa_family == AF_INET6;
    /* TPROXY (the redir role) hands this socket traffic addressed to other hosts; the kernel
     * delivers it only to a socket that asked for it (needs CAP_NET_ADMIN). */
    if ((flags & NETADDR_TRANSPARENT) &&
        netaddr_setopt(fd, v6 ? IPPROTO_IPV6 : IPPROTO_IP, v6 ? IPV6_TRANSPARENT : IP_TRANSPARENT,
                       1) < 0)
        return -1;
    /* Each TPROXY'd datagram then carries the address it was sent to, in a cmsg. */
    if ((flags & NETADDR_ORIGDST) &&
        netaddr_setopt(fd, v6 ? IPPROTO_IPV6 : IPPROTO_IP,
                       v6 ? IPV6_RECVORIGDSTADDR : IP_RECVORIGDSTADDR, 1) < 0)
        return -1;
    return 0;
}

int netaddr_listen_tcp(const struct sockaddr *sa, socklen_t len, int backlog, unsigned flags)
{
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    /* SO_REUSEADDR: a restarted server can bind while old connections sit in TIME_WAIT. */
    if (netaddr_setopt(fd, SOL_SOCKET, SO_REUSEADDR, 1) < 0 ||
        netaddr_bind_options(fd, sa, flags) < 0 || bind(fd, sa, len) < 0)
        return netaddr_fail(fd);
    /* TCP Fast Open (RFC 7413) saves a round trip for returning clients. A kernel with it
     * disabled (net.ipv4.tcp_fastopen) or too old refuses the option; the listener still works,
     * so that is not an error. */
    if (flags & NETADDR_FASTOPEN)
        (void)netaddr_setopt(fd, IPPROTO_TCP, TCP_FASTOPEN, NETADDR_FASTOPEN_QUEUE);
    if (listen(fd, backlog) < 0)
        return netaddr_fail(fd);
    return fd;
}

int netaddr_bind_udp(const struct sockaddr *sa, socklen_t len, unsigned flags)
{
    int fd = socket(sa->sa_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (netaddr_bind_options(fd, sa, flags) < 0 || bind(fd, sa, len) < 0)
        return netaddr_fail(fd);
    return fd;
}

/* Starts the connect of fd (netaddr_connect_tcp). */
static int netaddr_connect_fd(int fd, const struct sockaddr *sa, socklen_t len, unsigned flags)
{
    /* The relay writes whole AEAD chunks; Nagle would only hold back the last partial one. */
    if ((flags & NETADDR_NODELAY) && netaddr_setopt(fd, IPPROTO_TCP, TCP_NODELAY, 1) < 0)
        return netaddr_fail(fd);
    /* TCP_FASTOPEN_CONNECT defers the SYN to the first write(), which then carries the data
     * (RFC 7413). Refusal (old kernel, client TFO disabled) leaves an ordinary connect. */
    if (flags & NETADDR_FASTOPEN)
        (void)netaddr_setopt(fd, IPPROTO_TCP, TCP_FASTOPEN_CONNECT, 1);
    if (connect(fd, sa, len) < 0 && errno != EINPROGRESS)
        return netaddr_fail(fd);
    return fd;
}

int netaddr_connect_tcp(const struct sockaddr *sa, socklen_t len, unsigned flags)
{
    return netaddr_connect_out(NULL, sa, len, flags, NULL);
}

int netaddr_connect_out(const struct netaddr_outgoing *o, const struct sockaddr *sa, socklen_t len,
                        unsigned flags, bool *mptcp_refused)
{
    int fd = netaddr_socket_out(o, sa->sa_family, SOCK_STREAM, mptcp_refused);
    return fd < 0 ? -1 : netaddr_connect_fd(fd, sa, len, flags);
}

int netaddr_set_keepalive(int fd, int idle)
{
    if (idle <= 0)
        return 0;
    /* Without keepalive a peer that vanished (a NAT that forgot the flow, a client whose
     * network went away) holds the connection until the idle timeout; with it the kernel
     * notices after idle + 9 probes. TCP_KEEPIDLE/KEEPINTVL take 1..32767 (tcp(7)). */
    if (netaddr_setopt(fd, SOL_SOCKET, SO_KEEPALIVE, 1) < 0 ||
        netaddr_setopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, idle) < 0 ||
        netaddr_setopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, idle) < 0)
        return -1;
    return 0;
}

/* IPPROTO_MPTCP (Linux 5.6+, RFC 8684) when asked for; a kernel without it (EPROTONOSUPPORT,
 * EINVAL with net.mptcp.enabled=0, ENOPROTOOPT) gives plain TCP, which MPTCP falls back to on
 * the wire anyway. */
static int netaddr_socket_proto(const struct netaddr_outgoing *o, int family, int type,
                                bool *mptcp_refused)
{
#ifndef IPPROTO_MPTCP
#define IPPROTO_MPTCP 262
#endif
    int fl = type | SOCK_NONBLOCK | SOCK_CLOEXEC;
    if (o && o->mptcp && type == SOCK_STREAM) {
        int fd = socket(family, fl, IPPROTO_MPTCP);
        if (fd >= 0 || (errno != EPROTONOSUPPORT && errno != EINVAL && errno != ENOPROTOOPT))
            return fd;
        if (mptcp_refused)
            *mptcp_refused = true;
    }
    return socket(family, fl, 0);
}

/* The source address of family's sockets; NULL when none is set. */
static const struct sockaddr *netaddr_out_source(const struct netaddr_outgoing *o, int family)
{
    const struct sockaddr_storage *ss = family == AF_INET6 ? &o->bind6 : &o->bind4;
    return ss->ss_family == family ? (const struct sockaddr *)ss : NULL;
}

int netaddr_set_outgoing(int fd, const struct netaddr_outgoing *o, int family, int type)
{
    if (!o)
        return 0;
    /* SO_MARK lets the firewall tell our own traffic from what it redirects to us (a redir
     * role on a router would otherwise catch its own connections to the server). */
    if (o->fwmark && netaddr_setopt(fd, SOL_SOCKET, SO_MARK, (int)o->fwmark) < 0)
        return -1;
    if (o->interface[0] && setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, o->interface,
                                      (socklen_t)strlen(o->interface)) < 0)
        return -1;
    const struct sockaddr *src = netaddr_out_source(o, family);
    if (src) {
        /* Port 0 with IP_BIND_ADDRESS_NO_PORT: the port is chosen at connect() for the whole
         * 4-tuple, so a fixed source address does not cap connections at the ephemeral range. */
        if (type == SOCK_STREAM)
            (void)netaddr_setopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1);
        if (bind(fd, src, netaddr_len(src)) < 0)
            return -1;
    }
    if (type == SOCK_STREAM && netaddr_set_keepalive(fd, o->keepalive) < 0)
        return -1;
    return 0;
}

int netaddr_socket_out(const struct netaddr_outgoing *o, int family, int type, bool *mptcp_refused)
{
    int fd = netaddr_socket_proto(o, family, type, mptcp_refused);
    if (fd >= 0 && netaddr_set_outgoing(fd, o, family, type) < 0)
        return netaddr_fail(fd);
    return fd;
}

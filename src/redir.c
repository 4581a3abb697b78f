/* redir.c: the redir role's original destinations and reply sockets (redir.h). Linux only: the
 * options come from netfilter (REDIRECT's conntrack lookup) and the TPROXY target
 * (Documentation/networking/tproxy.rst). */
#include "autoconfig.h"

#include "redir.h"

#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <unistd.h>

/* linux/netfilter_ipv4.h and linux/netfilter_ipv6/ip6_tables.h: both 80, at SOL_IP and
 * SOL_IPV6. Spelled out here because those headers clash with glibc's netinet/in.h. */
#define REDIR_SO_ORIGINAL_DST 80
#define REDIR_IP6T_SO_ORIGINAL_DST 80

/* sa as a target, through its address header (IPv4-mapped IPv6 becomes IPv4). */
static int redir_target_from(const struct sockaddr *sa, struct netaddr_target *t)
{
    uint8_t header[NETADDR_HEADER_MAX];
    int n = netaddr_header_from_sockaddr(sa, header, sizeof header);
    return n > 0 && netaddr_parse_header(header, (size_t)n, t) == n ? 0 : -1;
}

int redir_tcp_target(int fd, enum config_tcp_redir mode, struct netaddr_target *t, const char **why)
{
    struct sockaddr_storage local = {0}, dst = {0};
    socklen_t llen = sizeof local, dlen = sizeof dst;

    *why = "cannot read the socket's address";
    if (getsockname(fd, (struct sockaddr *)&local, &llen) < 0)
        return -1;
    if (mode == TCP_REDIR_TPROXY) {
        dst = local;
    } else {
        bool v6 = local.ss_family == AF_INET6;
        *why = "no original destination (SO_ORIGINAL_DST): not sent here by an nftables "
               "redirect rule";
        if (getsockopt(fd, v6 ? IPPROTO_IPV6 : IPPROTO_IP,
                       v6 ? REDIR_IP6T_SO_ORIGINAL_DST : REDIR_SO_ORIGINAL_DST, &dst, &dlen) < 0)
            return -1;
        /* Without a redirect, conntrack's original destination is the redir port itself. */
        *why = "a connection to the redir port itself, not a redirected one";
        if (netaddr_equal((struct sockaddr *)&dst, (struct sockaddr *)&local))
            return -1;
    }
    *why = "the original destination is not an IP address";
    return redir_target_from((struct sockaddr *)&dst, t);
}

int redir_udp_destination(const struct msghdr *h, struct sockaddr_storage *dst)
{
    for (struct cmsghdr *c = CMSG_FIRSTHDR(h); c; c = CMSG_NXTHDR((struct msghdr *)h, c)) {
        size_t n = c->cmsg_len - CMSG_LEN(0);
        if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_ORIGDSTADDR &&
            n >= sizeof(struct sockaddr_in)) {
            memset(dst, 0, sizeof *dst);
            memcpy(dst, CMSG_DATA(c), sizeof(struct sockaddr_in));
            return 0;
        }
        if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_ORIGDSTADDR &&
            n >= sizeof(struct sockaddr_in6)) {
            memset(dst, 0, sizeof *dst);
            memcpy(dst, CMSG_DATA(c), sizeof(struct sockaddr_in6));
            return 0;
        }
    }
    return -1;
}

int redir_udp_reply_socket(const struct sockaddr *from, uint32_t fwmark)
{
    int fd = socket(from->sa_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1, saved;
    bool v6 = from->sa_family == AF_INET6;

    if (fd < 0)
        return -1;
    /* IP_TRANSPARENT before bind: binding an address that is not ours is what it allows. */
    if (setsockopt(fd, v6 ? IPPROTO_IPV6 : IPPROTO_IP, v6 ? IPV6_TRANSPARENT : IP_TRANSPARENT, &one,
                   sizeof one) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        (v6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) < 0) ||
        (fwmark && setsockopt(fd, SOL_SOCKET, SO_MARK, &fwmark, sizeof fwmark) < 0) ||
        bind(fd, from, netaddr_len(from)) < 0)
        goto fail;
    return fd;
fail:
    saved = errno;
    close(fd);
    errno = saved;
    return -1;
}

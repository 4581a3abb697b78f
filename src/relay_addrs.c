/* relay_addrs.c: the set of the server's own listening endpoints (relay_addrs.h). Small arrays
 * searched linearly: a server listens on a handful of endpoints and a host has tens of
 * addresses, and the check runs once per connect. */
#include "autoconfig.h"

#include "relay_addrs.h"

#include <ifaddrs.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* An IPv4 or IPv6 address as 16 bytes; IPv4 as its IPv4-mapped form, so one comparison serves
 * both and a v4-mapped target is the IPv4 address it names. */
struct ip16 {
    uint8_t b[16];
};

struct listener_ep {
    struct ip16 ip;
    uint16_t port; /* host order */
    bool v4;
    bool wildcard;
};

struct relay_addrs {
    struct listener_ep *ep;
    size_t nep, cap_ep;
    struct ip16 *local;
    size_t nlocal, cap_local;
    double refreshed_at;
    bool refreshed;
};

static const uint8_t v4_mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

/* The address of sa as 16 bytes and its port. Returns 0, or -1 for another family. */
static int ip16_from(const struct sockaddr *sa, struct ip16 *ip, uint16_t *port)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
        memcpy(ip->b, v4_mapped_prefix, 12);
        memcpy(ip->b + 12, &s4->sin_addr, 4);
        *port = ntohs(s4->sin_port);
        return 0;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
        memcpy(ip->b, &s6->sin6_addr, 16);
        *port = ntohs(s6->sin6_port);
        return 0;
    }
    return -1;
}

static bool ip16_is_v4(const struct ip16 *ip)
{
    return memcmp(ip->b, v4_mapped_prefix, 12) == 0;
}

static bool ip16_is_unspecified(const struct ip16 *ip)
{
    static const uint8_t zero[16];
    return memcmp(ip->b, zero, 16) == 0 || (ip16_is_v4(ip) && memcmp(ip->b + 12, zero, 4) == 0);
}

/* 127.0.0.0/8 (the whole block is this host's, RFC 1122 section 3.2.1.3) or ::1. */
static bool ip16_is_loopback(const struct ip16 *ip)
{
    static const uint8_t one[16] = {[15] = 1};
    return (ip16_is_v4(ip) && ip->b[12] == 127) || memcmp(ip->b, one, 16) == 0;
}

static bool grow(void **arr, size_t *cap, size_t n, size_t size)
{
    if (n < *cap)
        return true;
    size_t ncap = *cap ? *cap * 2 : 8;
    void *p = realloc(*arr, ncap * size);
    if (!p)
        return false;
    *arr = p;
    *cap = ncap;
    return true;
}

struct relay_addrs *relay_addrs_new(void)
{
    return calloc(1, sizeof(struct relay_addrs));
}

void relay_addrs_free(struct relay_addrs *a)
{
    if (!a)
        return;
    free(a->ep);
    free(a->local);
    free(a);
}

int relay_addrs_add_listener(struct relay_addrs *a, const struct sockaddr *sa)
{
    struct listener_ep e = {0};

    if (ip16_from(sa, &e.ip, &e.port) < 0 ||
        !grow((void **)&a->ep, &a->cap_ep, a->nep, sizeof *a->ep))
        return -1;
    e.v4 = ip16_is_v4(&e.ip);
    e.wildcard = ip16_is_unspecified(&e.ip);
    a->ep[a->nep++] = e;
    return 0;
}

int relay_addrs_add_socket(struct relay_addrs *a, int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;

    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
        return -1;
    return relay_addrs_add_listener(a, (struct sockaddr *)&ss);
}

int relay_addrs_add_local(struct relay_addrs *a, const struct sockaddr *sa)
{
    struct ip16 ip;
    uint16_t port;

    if (ip16_from(sa, &ip, &port) < 0 ||
        !grow((void **)&a->local, &a->cap_local, a->nlocal, sizeof *a->local))
        return -1;
    a->local[a->nlocal++] = ip;
    return 0;
}

void relay_addrs_clear_local(struct relay_addrs *a)
{
    a->nlocal = 0;
}

bool relay_addrs_needs_local(const struct relay_addrs *a)
{
    for (size_t i = 0; i < a->nep; i++)
        if (a->ep[i].wildcard)
            return true;
    return false;
}

int relay_addrs_refresh(struct relay_addrs *a, double now, double max_age)
{
    struct ifaddrs *list;

    if (!relay_addrs_needs_local(a) || (a->refreshed && now - a->refreshed_at < max_age))
        return 0;
    a->refreshed = true; /* even on failure: retried after max_age, not on every connect */
    a->refreshed_at = now;
    if (getifaddrs(&list) < 0)
        return -1;
    relay_addrs_clear_local(a);
    for (struct ifaddrs *i = list; i; i = i->ifa_next)
        if (i->ifa_addr)
            relay_addrs_add_local(a, i->ifa_addr); /* other families are skipped */
    freeifaddrs(list);
    return 0;
}

static bool is_local(const struct relay_addrs *a, const struct ip16 *ip)
{
    if (ip16_is_loopback(ip) || ip16_is_unspecified(ip))
        return true;
    for (size_t i = 0; i < a->nlocal; i++)
        if (memcmp(a->local[i].b, ip->b, 16) == 0)
            return true;
    return false;
}

bool relay_addrs_contains(const struct relay_addrs *a, const struct sockaddr *sa)
{
    struct ip16 ip;
    uint16_t port;

    if (!a || ip16_from(sa, &ip, &port) < 0)
        return false;
    bool v4 = ip16_is_v4(&ip);
    for (size_t i = 0; i < a->nep; i++) {
        const struct listener_ep *e = &a->ep[i];
        if (e->port != port || e->v4 != v4)
            continue;
        /* a wildcard listener (IPV6_V6ONLY is always set: sockets.c) takes any local address
         * of its family */
        if (e->wildcard ? is_local(a, &ip) : memcmp(e->ip.b, ip.b, 16) == 0)
            return true;
        /* connect() to the unspecified address reaches the loopback address (Linux routes it
         * to this host), so a listener on loopback is reached that way too */
        if (ip16_is_unspecified(&ip) && ip16_is_loopback(&e->ip))
            return true;
    }
    return false;
}

/* resolve.h: asynchronous DNS through c-ares inside the libev loop (the loop never blocks on
 * DNS), with a small cache that honours the answers' TTLs. */
#ifndef RP_RESOLVE_H
#define RP_RESOLVE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

struct ev_loop;
struct resolver;
struct resolve_query;

#define RESOLVE_MAX_ADDRS 8

/* Addresses in preference order (IPv4 first unless ipv6_first), ports zero. */
struct resolve_result {
    int count;
    struct sockaddr_storage addr[RESOLVE_MAX_ADDRS];
    socklen_t len[RESOLVE_MAX_ADDRS];
};

/* status 0: result holds at least one address; -1: the name did not resolve. */
typedef void (*resolve_cb)(void *arg, int status, const struct resolve_result *result);

/* nameservers: NULL (system resolv.conf) or "ip[:port][,ip[:port]...]". */
struct resolver *resolver_new(struct ev_loop *loop, const char *nameservers, bool ipv6_first,
                              char *err, size_t errlen);
void resolver_free(struct resolver *r);

/* Looks host up. Returns 1 when answered at once (IP literal or cache hit: *out filled, cb never
 * called), 0 when a query is pending (*q set; cb runs later from the loop unless cancelled),
 * -1 on failure to start. */
int resolve_lookup(struct resolver *r, const char *host, struct resolve_result *out,
                   resolve_cb cb, void *arg, struct resolve_query **q);
/* The callback of a cancelled query is never called. */
void resolve_cancel(struct resolve_query *q);

#endif

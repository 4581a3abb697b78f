/* resolve.h: asynchronous DNS through c-ares inside the libev loop (the loop never blocks on
 * DNS), with a small cache that honours the answers' TTLs. */
#ifndef RP_RESOLVE_H
#define RP_RESOLVE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "netaddr.h"

struct ev_loop;
struct resolver;
struct resolve_query;

#define RESOLVE_MAX_ADDRS 8
/* Names kept in the cache; the least recently used one goes when it is full. */
#define RESOLVE_CACHE_MAX 1024

/* Addresses in preference order (IPv4 first unless ipv6_first), ports zero. */
struct resolve_result {
    int count;
    struct sockaddr_storage addr[RESOLVE_MAX_ADDRS];
    socklen_t len[RESOLVE_MAX_ADDRS];
};

/* status 0: result holds at least one address; -1: the name did not resolve (result->count is
 * then 0). The query handle is invalid once its callback has run. */
typedef void (*resolve_cb)(void *arg, int status, const struct resolve_result *result);

/* nameservers: NULL (system resolv.conf) or "ip[:port][,ip[:port]...]", IPv6 as "[addr]:port"
 * (or a bare "addr" without port), at most 8 servers, read by netaddr_parse_list(). */
struct resolver *resolver_new(struct ev_loop *loop, const char *nameservers, bool ipv6_first,
                              char *err, size_t errlen);
/* The same from servers already parsed (the configuration's "nameserver"): n IP literals, port
 * 0 meaning 53; n 0 means the system's resolv.conf. */
struct resolver *resolver_new_servers(struct ev_loop *loop, const struct netaddr_endpoint *ns,
                                      int n, bool ipv6_first, char *err, size_t errlen);
/* The outgoing-socket options (netaddr.h) for the DNS sockets made from now on; o must outlive
 * the resolver (the configuration's). */
void resolver_set_outgoing(struct resolver *r, const struct netaddr_outgoing *o);
/* Cancels every pending query (their callbacks are never called, their handles become invalid)
 * and frees everything. From inside a resolve callback it takes effect when that returns. */
void resolver_free(struct resolver *r);
/* Per-try timeout and tries per server (defaults 2000 ms, 2; c-ares doubles the timeout on each
 * new round over the servers). Returns -1 while queries are pending or on bad values. */
int resolver_set_timeout(struct resolver *r, int timeout_ms, int tries);

/* Looks host up. Returns 1 when answered at once (IP literal, cache hit or /etc/hosts entry:
 * *out filled, cb never called), 0 when a query is pending (*q set; cb runs later from the loop
 * unless cancelled), -1 on failure to start, an invalid name, or a name that recently did not
 * exist (negative cache, 5 s). */
int resolve_lookup(struct resolver *r, const char *host, struct resolve_result *out,
                   resolve_cb cb, void *arg, struct resolve_query **q);
/* The callback of a cancelled query is never called. */
void resolve_cancel(struct resolve_query *q);

#endif

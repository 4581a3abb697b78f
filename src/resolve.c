/* resolve.c: asynchronous DNS for a worker. c-ares speaks the protocol; this file plugs its
 * sockets and retransmit timer into the worker's libev loop (one ev_io per c-ares socket, told
 * by the sock-state callback, and one ev_timer that follows ares_timeout()), lets callers asking
 * for the same name share one query, and keeps a small LRU cache that honours the answers' TTLs.
 *
 * Ownership: a resolve_query is one caller waiting; a resolve_lookup is one ares_getaddrinfo()
 * in flight, owned by c-ares until its callback runs (c-ares calls back even on ares_destroy(),
 * with ARES_EDESTRUCTION), so cancelling a caller never frees memory c-ares still points at. */
#include "autoconfig.h"

#include "resolve.h"

#include <ares.h>
#include <arpa/inet.h>
#include <ev.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include "lru.h"
#include "rp_assert.h"

/* A dead server must fail a lookup in bounded time. c-ares waits timeout_ms for the first round
 * over the servers and doubles it for each later round: one server, 2 tries -> at most 6 s. */
#define RESOLVE_TIMEOUT_MS 2000
#define RESOLVE_TRIES 2
#define RESOLVE_SERVERS_MAX 8
/* TTL clamps: 0 would defeat the cache, a huge TTL would pin a stale address. */
#define RESOLVE_TTL_MIN 1.0
#define RESOLVE_TTL_MAX 3600.0
/* /etc/hosts entries carry no TTL. */
#define RESOLVE_TTL_HOSTS 60.0
/* NXDOMAIN/NODATA are cached briefly so a client cannot make us query a bad name in a loop;
 * timeouts and server failures are not cached (the server may be back a moment later). */
#define RESOLVE_TTL_NEGATIVE 5.0
/* RFC 1035 section 2.3.4: 255 octets on the wire, 253 characters as text; labels of 63. */
#define RESOLVE_NAME_MAX 253
#define RESOLVE_LABEL_MAX 63
#define CACHE_BUCKETS_INITIAL 64
#define CACHE_BUCKETS 2048 /* power of two, twice RESOLVE_CACHE_MAX: the most it grows to */
#define PENDING_BUCKETS 256

struct resolve_lookup;

struct resolve_query {
    struct resolve_lookup *lookup;   /* NULL while the callback runs */
    TAILQ_ENTRY(resolve_query) link; /* on lookup->waiters while lookup is set */
    resolve_cb cb;
    void *arg;
};

struct resolve_lookup {
    struct resolver *r;
    struct resolve_lookup *hnext;
    TAILQ_HEAD(, resolve_query) waiters; /* answered in the order they asked */
    bool starting; /* inside ares_getaddrinfo(): an answer now came from /etc/hosts */
    bool done;
    int status;
    struct resolve_result result;
    char name[RESOLVE_NAME_MAX + 1];
};

struct cache_entry {
    struct lru_node node;
    ev_tstamp expires;
    int status; /* 0, or -1 for a cached NXDOMAIN/NODATA */
    int count;
    unsigned char family[RESOLVE_MAX_ADDRS]; /* 4 or 6: the addresses stay compact here */
    unsigned char bytes[RESOLVE_MAX_ADDRS][16];
    char name[RESOLVE_NAME_MAX + 1];
};

struct resolve_io {
    ev_io w; /* first: the callback gets &w */
    struct resolver *r;
    struct resolve_io *next;
};

struct resolver {
    struct ev_loop *loop;
    ares_channel channel;
    bool ipv6_first;
    bool destroying;     /* inside ares_destroy(): lookups come back, nobody is told */
    bool free_requested; /* resolver_free() called from a callback: done on the way out */
    int depth;           /* nesting of c-ares calls that may run callbacks */
    int timeout_ms, tries;
    const struct netaddr_outgoing *outgoing; /* options of the DNS sockets, or NULL */
    int nservers;                            /* 0: resolv.conf */
    struct ares_addr_port_node servers[RESOLVE_SERVERS_MAX];
    ev_timer timer;
    struct resolve_io *ios;
    struct resolve_lookup *pending[PENDING_BUCKETS];
    int npending;
    struct lru cache; /* of struct cache_entry, by name */
};

static void set_err(char *err, size_t errlen, const char *msg, const char *detail)
{
    if (err && errlen)
        snprintf(err, errlen, "%s%s", msg, detail ? detail : "");
}

/* ---- Names and addresses. */

static uint32_t name_hash(const char *s)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

/* Lowercases host into name and checks it is a plausible DNS name: letters, digits, '-', '_'
 * and dots, no empty label, labels of at most 63, at most 253 characters once one trailing dot
 * (the root) is dropped. Returns 0 or -1. */
static int resolve_normalize(const char *host, char *name)
{
    size_t len = strnlen(host, RESOLVE_NAME_MAX + 2);
    if (len > 0 && host[len - 1] == '.')
        len--;
    if (len == 0 || len > RESOLVE_NAME_MAX)
        return -1;
    size_t label = 0;
    for (size_t i = 0; i < len; i++) {
        char c = host[i];
        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        if (c == '.') {
            if (label == 0)
                return -1;
            label = 0;
        } else if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_') {
            if (++label > RESOLVE_LABEL_MAX)
                return -1;
        } else {
            return -1;
        }
        name[i] = c;
    }
    name[len] = '\0';
    return 0;
}

/* Appends one address (4 or 16 bytes) unless it is already there or the result is full. */
static void result_add(struct resolve_result *res, int family, const void *bytes)
{
    size_t n = family == AF_INET ? 4 : 16;
    for (int i = 0; i < res->count; i++) {
        const struct sockaddr_storage *ss = &res->addr[i];
        if (ss->ss_family != family)
            continue;
        const void *have = family == AF_INET
                               ? (const void *)&((const struct sockaddr_in *)ss)->sin_addr
                               : (const void *)&((const struct sockaddr_in6 *)ss)->sin6_addr;
        if (memcmp(have, bytes, n) == 0)
            return;
    }
    if (res->count >= RESOLVE_MAX_ADDRS)
        return;
    res->len[res->count] = netaddr_from_ip_bytes(family, bytes, 0, &res->addr[res->count]);
    res->count++;
}

/* IP literals never reach c-ares. Returns 1 when host is one. */
static int resolve_literal(const char *host, struct resolve_result *out)
{
    unsigned char bytes[16];
    if (inet_pton(AF_INET, host, bytes) == 1)
        result_add(out, AF_INET, bytes);
    else if (inet_pton(AF_INET6, host, bytes) == 1)
        result_add(out, AF_INET6, bytes);
    return out->count > 0;
}

/* Fills out from an answer, preferred family first, and returns the smallest TTL seen on any
 * address or CNAME record (INT_MAX when none carried one). */
static int collect_answer(const struct ares_addrinfo *ai, bool ipv6_first,
                          struct resolve_result *out)
{
    int ttl = INT_MAX;
    out->count = 0;
    for (int pass = 0; pass < 2; pass++) {
        int family = (pass == 0) == ipv6_first ? AF_INET6 : AF_INET;
        for (const struct ares_addrinfo_node *n = ai->nodes; n; n = n->ai_next) {
            if (n->ai_family != family || !n->ai_addr)
                continue;
            if (family == AF_INET && n->ai_addrlen >= sizeof(struct sockaddr_in))
                result_add(out, AF_INET, &((const struct sockaddr_in *)n->ai_addr)->sin_addr);
            else if (family == AF_INET6 && n->ai_addrlen >= sizeof(struct sockaddr_in6))
                result_add(out, AF_INET6,
                           &((const struct sockaddr_in6 *)n->ai_addr)->sin6_addr);
            else
                continue;
            if (n->ai_ttl < ttl)
                ttl = n->ai_ttl;
        }
    }
    for (const struct ares_addrinfo_cname *c = ai->cnames; c; c = c->next)
        if (c->ttl < ttl)
            ttl = c->ttl;
    return ttl;
}

/* ---- The cache: names in an LRU hash table (lru.h). */

static void cache_unlink(struct resolver *r, struct cache_entry *e)
{
    lru_remove(&r->cache, &e->node);
    free(e);
}

static struct cache_entry *cache_oldest(struct resolver *r)
{
    struct lru_node *n = lru_oldest(&r->cache);
    return n ? LRU_ENTRY(n, struct cache_entry, node) : NULL;
}

static bool cache_same(const struct lru_node *n, const void *name)
{
    return strcmp(LRU_ENTRY(n, struct cache_entry, node)->name, name) == 0;
}

/* The live entry for name, made the most recently used; expired entries are dropped here. */
static struct cache_entry *cache_find(struct resolver *r, const char *name)
{
    struct lru_node *n = lru_find(&r->cache, name_hash(name), cache_same, name);
    if (!n)
        return NULL;
    struct cache_entry *e = LRU_ENTRY(n, struct cache_entry, node);
    if (e->expires <= ev_now(r->loop)) {
        cache_unlink(r, e);
        return NULL;
    }
    lru_touch(&r->cache, n);
    return e;
}

static void cache_put(struct resolver *r, const char *name, int status,
                      const struct resolve_result *res, double ttl)
{
    struct cache_entry *old = cache_find(r, name);
    if (old)
        cache_unlink(r, old);
    if (r->cache.count >= RESOLVE_CACHE_MAX)
        cache_unlink(r, cache_oldest(r));
    struct cache_entry *e = calloc(1, sizeof *e);
    if (!e)
        return; /* the cache is an optimisation: without memory, simply do not remember */
    snprintf(e->name, sizeof e->name, "%s", name);
    e->status = status;
    e->expires = ev_now(r->loop) + ttl;
    for (int i = 0; res && i < res->count; i++) {
        const struct sockaddr_storage *ss = &res->addr[i];
        if (ss->ss_family == AF_INET) {
            e->family[i] = 4;
            memcpy(e->bytes[i], &((const struct sockaddr_in *)ss)->sin_addr, 4);
        } else {
            e->family[i] = 6;
            memcpy(e->bytes[i], &((const struct sockaddr_in6 *)ss)->sin6_addr, 16);
        }
        e->count++;
    }
    lru_insert(&r->cache, &e->node, name_hash(name));
}

static void cache_result(const struct cache_entry *e, struct resolve_result *out)
{
    out->count = 0;
    for (int i = 0; i < e->count; i++)
        result_add(out, e->family[i] == 4 ? AF_INET : AF_INET6, e->bytes[i]);
}

/* ---- Lookups in flight, by name, so concurrent callers share one query. */

static struct resolve_lookup **pending_slot(struct resolver *r, const char *name)
{
    return &r->pending[name_hash(name) & (PENDING_BUCKETS - 1)];
}

static struct resolve_lookup *pending_find(struct resolver *r, const char *name)
{
    /* A lookup still inside ares_getaddrinfo() may yet finish synchronously and be freed by
     * its starter, so nobody joins it (c-ares can run other callbacks from inside that call). */
    for (struct resolve_lookup *lk = *pending_slot(r, name); lk; lk = lk->hnext)
        if (!lk->starting && strcmp(lk->name, name) == 0)
            return lk;
    return NULL;
}

static void pending_remove(struct resolver *r, struct resolve_lookup *lk)
{
    for (struct resolve_lookup **pp = pending_slot(r, lk->name); *pp; pp = &(*pp)->hnext) {
        if (*pp == lk) {
            *pp = lk->hnext;
            r->npending--;
            return;
        }
    }
}

static void waiter_unlink(struct resolve_query *q)
{
    RP_ASSERT(q->lookup != NULL); /* on its lookup's list */
    TAILQ_REMOVE(&q->lookup->waiters, q, link);
}

static void waiter_append(struct resolve_lookup *lk, struct resolve_query *q)
{
    q->lookup = lk;
    TAILQ_INSERT_TAIL(&lk->waiters, q, link);
}

static void lookup_free(struct resolve_lookup *lk)
{
    struct resolve_query *q;
    while ((q = TAILQ_FIRST(&lk->waiters))) {
        TAILQ_REMOVE(&lk->waiters, q, link);
        free(q);
    }
    free(lk);
}

/* Calls every waiter once. A callback may cancel other waiters (they leave the list), start
 * new lookups (the cache already holds this answer) or free the resolver (the rest are then
 * dropped untold, and the resolver goes once c-ares has returned). */
static void lookup_deliver(struct resolve_lookup *lk)
{
    while (!TAILQ_EMPTY(&lk->waiters) && !lk->r->free_requested) {
        struct resolve_query *q = TAILQ_FIRST(&lk->waiters);
        waiter_unlink(q);
        q->lookup = NULL; /* resolve_cancel(q) from its own callback is then a no-op */
        q->cb(q->arg, lk->status, &lk->result);
        free(q);
    }
    lookup_free(lk);
}

/* ---- libev <-> c-ares. */

static void resolve_arm_timer(struct resolver *r)
{
    struct timeval tv;
    ev_timer_stop(r->loop, &r->timer);
    if (!ares_timeout(r->channel, NULL, &tv))
        return; /* nothing pending */
    ev_timer_set(&r->timer, (double)tv.tv_sec + (double)tv.tv_usec / 1e6, 0.);
    ev_timer_start(r->loop, &r->timer);
}

static void resolver_release(struct resolver *r);

/* Runs c-ares on a ready socket (or just its timeouts), then re-arms the timer; a resolver_free()
 * asked for by a callback meanwhile happens here, outside c-ares. */
static void resolve_process(struct resolver *r, ares_socket_t rfd, ares_socket_t wfd)
{
    r->depth++;
    ares_process_fd(r->channel, rfd, wfd);
    r->depth--;
    if (r->free_requested && r->depth == 0)
        resolver_release(r);
    else
        resolve_arm_timer(r);
}

static void resolve_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    resolve_process(w->data, ARES_SOCKET_BAD, ARES_SOCKET_BAD); /* retransmits, timeouts */
}

static void resolve_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    /* c-ares may close the socket and free w through resolve_sock_state(): w is read first. */
    resolve_process(((struct resolve_io *)w)->r, (revents & EV_READ) ? w->fd : ARES_SOCKET_BAD,
                    (revents & EV_WRITE) ? w->fd : ARES_SOCKET_BAD);
}

/* c-ares tells us each time it opens, closes or changes interest in a socket. */
static void resolve_sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
    struct resolver *r = data;
    struct resolve_io **pp = &r->ios;
    while (*pp && (*pp)->w.fd != fd)
        pp = &(*pp)->next;
    struct resolve_io *io = *pp;
    int events = (readable ? EV_READ : 0) | (writable ? EV_WRITE : 0);

    if (!events) {
        if (io) {
            ev_io_stop(r->loop, &io->w);
            *pp = io->next;
            free(io);
        }
        return;
    }
    if (!io) {
        /* Without memory the socket goes unwatched; the timer still lets c-ares time the query
         * out, so the caller hears a failure rather than nothing. */
        io = calloc(1, sizeof *io);
        if (!io)
            return;
        io->r = r;
        ev_io_init(&io->w, resolve_io_cb, fd, events);
        io->next = r->ios;
        r->ios = io;
    } else {
        ev_io_stop(r->loop, &io->w);
        ev_io_set(&io->w, fd, events);
    }
    ev_io_start(r->loop, &io->w);
}

static void resolve_gai_cb(void *arg, int status, int timeouts, struct ares_addrinfo *ai)
{
    struct resolve_lookup *lk = arg;
    struct resolver *r = lk->r;

    pending_remove(r, lk);
    if (r->destroying) { /* ARES_EDESTRUCTION from resolver_free(): nobody is told */
        if (ai)
            ares_freeaddrinfo(ai);
        lookup_free(lk);
        return;
    }
    lk->status = -1;
    lk->result.count = 0;
    if (status == ARES_SUCCESS && ai) {
        int ttl = collect_answer(ai, r->ipv6_first, &lk->result);
        if (lk->result.count > 0) {
            double keep = ttl < RESOLVE_TTL_MIN ? RESOLVE_TTL_MIN : (double)ttl;
            if (keep > RESOLVE_TTL_MAX)
                keep = RESOLVE_TTL_MAX;
            if (lk->starting) /* answered without the network: /etc/hosts */
                keep = RESOLVE_TTL_HOSTS;
            lk->status = 0;
            cache_put(r, lk->name, 0, &lk->result, keep);
        }
    } else if (!lk->starting && (status == ARES_ENOTFOUND || status == ARES_ENODATA)) {
        cache_put(r, lk->name, -1, NULL, RESOLVE_TTL_NEGATIVE);
    }
    if (ai)
        ares_freeaddrinfo(ai);
    if (lk->starting) {
        lk->done = true; /* resolve_lookup() reports it and frees lk */
        return;
    }
    lookup_deliver(lk);
}

/* ---- Nameserver list: parsed here because ares_set_servers_ports_csv() accepts "" and wraps
 * out-of-range ports silently. */

/* One parsed nameserver (an IP literal; port 0 means c-ares's default, 53). */
static void resolve_server_node(const struct netaddr_endpoint *e, struct ares_addr_port_node *node)
{
    const struct netaddr_target *t = &e->target;

    memset(node, 0, sizeof *node);
    if (t->addr.ss_family == AF_INET) {
        node->family = AF_INET;
        memcpy(&node->addr.addr4, &((const struct sockaddr_in *)&t->addr)->sin_addr, 4);
    } else {
        node->family = AF_INET6;
        memcpy(&node->addr.addr6, &((const struct sockaddr_in6 *)&t->addr)->sin6_addr, 16);
    }
    node->udp_port = node->tcp_port = t->port;
}

/* c-ares made a socket: the outgoing options (fwmark above all: a router's rules must let
 * its own DNS queries pass) as on every other outgoing socket. Non-zero makes c-ares drop it. */
static int resolve_socket_cb(ares_socket_t fd, int type, void *arg)
{
    struct resolver *r = arg;
    int family;
    socklen_t len = sizeof family;

    if (!r->outgoing)
        return 0;
    if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &family, &len) < 0)
        return -1;
    return netaddr_set_outgoing(fd, r->outgoing, family, type) < 0 ? -1 : 0;
}

void resolver_set_outgoing(struct resolver *r, const struct netaddr_outgoing *o)
{
    r->outgoing = o;
}

static int resolve_open_channel(struct resolver *r, char *err, size_t errlen)
{
    struct ares_options o;
    char lookups[] = "fb";
    memset(&o, 0, sizeof o);
    o.sock_state_cb = resolve_sock_state;
    o.sock_state_cb_data = r;
    o.timeout = r->timeout_ms;
    o.tries = r->tries;
    /* No search domains: clients name the hosts they want, and a proxy must not complete them
     * with the server's local domains. */
    o.domains = NULL;
    o.ndomains = 0;
    /* /etc/hosts, then DNS, whatever nsswitch.conf says ("localhost" must always work). */
    o.lookups = lookups;
    int mask = ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_DOMAINS |
               ARES_OPT_LOOKUPS;
    ares_channel ch;
    int rc = ares_init_options(&ch, &o, mask);
    if (rc != ARES_SUCCESS) {
        set_err(err, errlen, "c-ares: ", ares_strerror(rc));
        return -1;
    }
    if (r->nservers > 0) {
        for (int i = 0; i < r->nservers; i++)
            r->servers[i].next = i + 1 < r->nservers ? &r->servers[i + 1] : NULL;
        rc = ares_set_servers_ports(ch, r->servers);
        if (rc != ARES_SUCCESS) {
            ares_destroy(ch);
            set_err(err, errlen, "c-ares: setting nameservers: ", ares_strerror(rc));
            return -1;
        }
    }
    ares_set_socket_callback(ch, resolve_socket_cb, r);
    r->channel = ch;
    return 0;
}

/* ---- Public interface. */

struct resolver *resolver_new(struct ev_loop *loop, const char *nameservers, bool ipv6_first,
                              char *err, size_t errlen)
{
    struct netaddr_endpoint parsed[RESOLVE_SERVERS_MAX];
    int n = 0;

    /* ares_set_servers_ports_csv() would accept "" and wrap out-of-range ports silently: the
     * list goes through netaddr's parser, as the configuration's "nameserver" does. */
    if (nameservers) {
        n = netaddr_parse_list(nameservers, NETADDR_PORT_OPTIONAL | NETADDR_NUMERIC, parsed,
                               RESOLVE_SERVERS_MAX);
        if (n < 0) {
            set_err(err, errlen,
                    "invalid nameservers (expected ip[:port][,ip[:port]...], at most 8): ",
                    nameservers);
            return NULL;
        }
    }
    return resolver_new_servers(loop, parsed, n, ipv6_first, err, errlen);
}

struct resolver *resolver_new_servers(struct ev_loop *loop, const struct netaddr_endpoint *ns,
                                      int nservers, bool ipv6_first, char *err, size_t errlen)
{
    struct ares_addr_port_node servers[RESOLVE_SERVERS_MAX];

    if (!loop) {
        set_err(err, errlen, "resolver: no event loop", NULL);
        return NULL;
    }
    if (nservers < 0 || nservers > RESOLVE_SERVERS_MAX) {
        set_err(err, errlen, "resolver: too many nameservers", NULL);
        return NULL;
    }
    for (int i = 0; i < nservers; i++)
        resolve_server_node(&ns[i], &servers[i]);
    int rc = ares_library_init(ARES_LIB_INIT_ALL);
    if (rc != ARES_SUCCESS) {
        set_err(err, errlen, "c-ares: ", ares_strerror(rc));
        return NULL;
    }
    struct resolver *r = calloc(1, sizeof *r);
    if (!r || lru_init(&r->cache, CACHE_BUCKETS_INITIAL, CACHE_BUCKETS) < 0) {
        free(r);
        ares_library_cleanup();
        set_err(err, errlen, "resolver: out of memory", NULL);
        return NULL;
    }
    r->loop = loop;
    r->ipv6_first = ipv6_first;
    r->timeout_ms = RESOLVE_TIMEOUT_MS;
    r->tries = RESOLVE_TRIES;
    r->nservers = nservers;
    memcpy(r->servers, servers, sizeof servers[0] * (size_t)nservers);
    ev_timer_init(&r->timer, resolve_timer_cb, 0., 0.);
    r->timer.data = r;
    if (resolve_open_channel(r, err, errlen) < 0) {
        lru_destroy(&r->cache);
        free(r);
        ares_library_cleanup();
        return NULL;
    }
    return r;
}

int resolver_set_timeout(struct resolver *r, int timeout_ms, int tries)
{
    if (!r || timeout_ms < 1 || timeout_ms > 60000 || tries < 1 || tries > 10 || r->npending ||
        r->depth || r->free_requested)
        return -1;
    ares_channel old = r->channel;
    int old_ms = r->timeout_ms, old_tries = r->tries;
    r->timeout_ms = timeout_ms;
    r->tries = tries;
    if (resolve_open_channel(r, NULL, 0) < 0) {
        r->timeout_ms = old_ms;
        r->tries = old_tries;
        return -1;
    }
    /* No query is pending, so the old channel calls nobody back; closing its idle sockets
     * goes through resolve_sock_state(), which drops their watchers. */
    ares_destroy(old);
    return 0;
}

static void resolver_release(struct resolver *r)
{
    r->destroying = true;
    ares_destroy(r->channel); /* every pending lookup comes back with ARES_EDESTRUCTION */
    for (int i = 0; i < PENDING_BUCKETS; i++) {
        while (r->pending[i]) { /* defensive: c-ares should have returned them all */
            struct resolve_lookup *lk = r->pending[i];
            r->pending[i] = lk->hnext;
            lookup_free(lk);
        }
    }
    while (r->ios) {
        struct resolve_io *io = r->ios;
        r->ios = io->next;
        ev_io_stop(r->loop, &io->w);
        free(io);
    }
    ev_timer_stop(r->loop, &r->timer);
    struct cache_entry *e;
    while ((e = cache_oldest(r)))
        cache_unlink(r, e);
    lru_destroy(&r->cache);
    free(r);
    ares_library_cleanup();
}

void resolver_free(struct resolver *r)
{
    if (!r)
        return;
    if (r->depth > 0) { /* called from a resolve callback, i.e. from inside c-ares */
        r->free_requested = true;
        return;
    }
    resolver_release(r);
}

/* Starts a c-ares lookup for name. Returns 1 (answered at once, *out filled), 0 (lk pending,
 * *lkp set) or -1. */
static int resolve_start(struct resolver *r, const char *name, struct resolve_result *out,
                         struct resolve_lookup **lkp)
{
    struct ares_addrinfo_hints hints;
    struct resolve_lookup *lk = calloc(1, sizeof *lk);
    if (!lk)
        return -1;
    lk->r = r;
    TAILQ_INIT(&lk->waiters);
    snprintf(lk->name, sizeof lk->name, "%s", name);
    lk->starting = true;
    struct resolve_lookup **slot = pending_slot(r, name);
    lk->hnext = *slot;
    *slot = lk;
    r->npending++;

    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_flags = ARES_AI_NOSORT; /* we order by family ourselves; skip RFC 6724 probing */
    r->depth++;
    ares_getaddrinfo(r->channel, lk->name, NULL, &hints, resolve_gai_cb, lk);
    r->depth--;
    lk->starting = false;
    int rc = 0;
    if (lk->done) { /* answered from /etc/hosts, or failed without sending anything */
        rc = lk->status == 0 ? 1 : -1;
        if (rc == 1)
            *out = lk->result;
        free(lk);
    }
    if (r->free_requested && r->depth == 0) { /* a callback run meanwhile freed the resolver; */
        resolver_release(r);                  /* a pending lk returns with ARES_EDESTRUCTION */
        return -1;
    }
    resolve_arm_timer(r);
    if (rc == 0)
        *lkp = lk;
    return rc;
}

int resolve_lookup(struct resolver *r, const char *host, struct resolve_result *out, resolve_cb cb,
                   void *arg, struct resolve_query **q)
{
    char name[RESOLVE_NAME_MAX + 1];

    if (!r || !host || !out || !cb || !q || r->destroying || r->free_requested)
        return -1;
    *q = NULL;
    out->count = 0;
    if (resolve_literal(host, out))
        return 1;
    if (resolve_normalize(host, name) < 0)
        return -1;
    struct cache_entry *e = cache_find(r, name);
    if (e) {
        cache_result(e, out);
        return e->status == 0 ? 1 : -1;
    }

    struct resolve_query *w = calloc(1, sizeof *w);
    if (!w)
        return -1;
    struct resolve_lookup *lk = pending_find(r, name);
    if (!lk) {
        int rc = resolve_start(r, name, out, &lk);
        if (rc != 0) {
            free(w);
            return rc;
        }
    }
    w->cb = cb;
    w->arg = arg;
    waiter_append(lk, w);
    *q = w;
    return 0;
}

void resolve_cancel(struct resolve_query *q)
{
    if (!q || !q->lookup)
        return;
    /* The lookup stays with c-ares; its answer still fills the cache when it comes. */
    waiter_unlink(q);
    free(q);
}

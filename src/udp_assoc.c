/* udp_assoc.c: the UDP relay's associations (udp_private.h). An association is one client's
 * NAT mapping: it owns an outbound socket per address family, made on first use, unconnected so
 * that any remote may answer (full cone: RFC 4787 endpoint-independent mapping and filtering).
 * Its port is the flow's public identity and stays the same for the association's life, which
 * traffic either way extends by udp_timeout. The table is bounded by udp_max_associations: when
 * full, the least recently used association is evicted (counted), never the new one refused.
 * Datagrams for a domain name wait, in a bounded queue, for c-ares; the loop never blocks. */
#include "autoconfig.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "acl.h"
#include "log.h"
#include "rp_assert.h"
#include "udp_private.h"
#include "udp_relay.h"
#include "worker.h"

static struct udp_assoc *udp_assoc_of(struct udp_nat_entry *e)
{
    return (struct udp_assoc *)((char *)e - offsetof(struct udp_assoc, nat));
}

/* The server may only send where the ACL allows: block_private is checked on the address
 * actually sent to, after resolution, so a name cannot smuggle a private target in. */
static bool udp_target_allowed(const struct udp_relay *u, const struct sockaddr *sa)
{
    if (u->role != ROLE_SERVER)
        return true;
    if (u->w->acl)
        return acl_address_allowed(u->w->acl, sa);
    return !(u->w->cfg->block_private && acl_is_private(sa));
}

/* ---- Life and expiry ---------------------------------------------------------------------- */

static void udp_expiry_arm(struct udp_relay *u)
{
    struct ev_loop *loop = u->w->loop;

    if (!udp_nat_oldest(&u->nat)) {
        ev_timer_stop(loop, &u->expiry);
        return;
    }
    /* Armed for an older deadline already: it fires early at worst, then re-arms. */
    if (ev_is_active(&u->expiry))
        return;
    double delay = udp_nat_oldest(&u->nat)->last_active + u->timeout - u->now;
    ev_timer_set(&u->expiry, delay > 0.01 ? delay : 0.01, 0.);
    ev_timer_start(loop, &u->expiry);
}

void udp_assoc_expiry_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct udp_relay *u = t->data;
    struct udp_nat_entry *e;

    (void)loop;
    (void)revents;
    u->now = udp_clock();
    while ((e = udp_nat_oldest(&u->nat)) && e->last_active + u->timeout <= u->now)
        udp_assoc_free(udp_assoc_of(e));
    udp_expiry_arm(u);
}

static void udp_queue_free(struct udp_relay *u, struct udp_assoc *a, struct udp_lookup *l)
{
    struct udp_queued *q;

    while ((q = STAILQ_FIRST(&l->queue))) {
        STAILQ_REMOVE_HEAD(&l->queue, link);
        u->queued_bytes -= q->len;
        a->nqueued--;
        free(q);
    }
}

static void udp_ctl_unlink(struct udp_relay *u, struct udp_assoc *a)
{
    RP_ASSERT(a->ctl >= 0 && a->ctl < u->nctls && u->ctls[a->ctl]);
    struct udp_ctl *c = u->ctls[a->ctl];

    /* in its control connection's list, and the count agrees */
    RP_ASSERT(c->nassocs > 0 && *a->ctl_link.le_prev == a);
    LIST_REMOVE(a, ctl_link);
    c->nassocs--;
}

void udp_assoc_free(struct udp_assoc *a)
{
    struct udp_relay *u = a->relay;
    struct udp_lookup *l;

    while ((l = LIST_FIRST(&a->lookups))) {
        LIST_REMOVE(l, link);
        if (l->query)
            resolve_cancel(l->query);
        udp_queue_free(u, a, l);
        free(l);
    }
    for (int i = 0; i < 2; i++) {
        if (a->fd[i] < 0)
            continue;
        ev_io_stop(u->w->loop, &a->io[i]);
        udp_tx_forget(u, a->fd[i]);
        close(a->fd[i]);
        u->nsockets--;
    }
    if (a->ctl >= 0)
        udp_ctl_unlink(u, a);
    udp_nat_remove(&u->nat, &a->nat);
    metrics_sub(&u->stats->udp_associations, 1);
    free(a);
    if (udp_nat_count(&u->nat) == 0)
        ev_timer_stop(u->w->loop, &u->expiry);
}

void udp_assoc_free_all(struct udp_relay *u)
{
    while (udp_nat_oldest(&u->nat))
        udp_assoc_free(udp_assoc_of(udp_nat_oldest(&u->nat)));
}

void udp_relay_close_retired(struct udp_relay *u, double close_before)
{
    const struct worker_port *p = u->port;
    bool (*key_of)(const struct proto_udp_state *, size_t *) = u->proto.ctx->ops->udp_state_key;
    struct udp_nat_entry *e = udp_nat_oldest(&u->nat), *next;
    size_t k;

    for (; key_of && p->key_retired && e; e = next) {
        next = udp_nat_newer(e);
        struct udp_assoc *a = udp_assoc_of(e);
        if (key_of(a->proto_state, &k) && k < p->proto.nkeys && p->key_retired[k] &&
            p->key_retired_at[k] <= close_before)
            udp_assoc_free(a);
    }
}

/* Frees the least recently used association unless it is keep. Returns 0 if one went. */
static int udp_evict_oldest(struct udp_relay *u, const struct udp_assoc *keep)
{
    struct udp_nat_entry *e = udp_nat_oldest(&u->nat);

    if (!e || udp_assoc_of(e) == keep)
        return -1;
    if (log_get_level() >= LOG_LEVEL_DEBUG) {
        char addr[INET6_ADDRSTRLEN + 16];
        log_debug("udp: evicting the association of %s",
                  netaddr_format((struct sockaddr *)&e->client, addr, sizeof addr));
    }
    udp_assoc_free(udp_assoc_of(e));
    metrics_add(&u->stats->udp_evicted, 1);
    return 0;
}

int udp_socket_room(struct udp_relay *u, const struct udp_assoc *keep)
{
    while (u->nsockets >= u->max_sockets)
        if (udp_evict_oldest(u, keep) < 0)
            return -1;
    return 0;
}

void udp_assoc_touch(struct udp_assoc *a)
{
    struct udp_relay *u = a->relay;

    udp_nat_touch(&u->nat, &a->nat, u->now);
    if (a->ctl >= 0)
        u->ctls[a->ctl]->last_active = u->now;
}

int udp_assoc_in_fd(const struct udp_assoc *a)
{
    const struct udp_relay *u = a->relay;
    uint32_t scope = a->nat.scope;

    return scope == UDP_SCOPE_SHARED ? u->fd : u->ctls[scope - 1]->fd;
}

/* udp_assoc_new and udp_assoc_new_session: session NULL keys the entry by client. */
static struct udp_assoc *udp_assoc_make(struct udp_relay *u, const struct sockaddr *client,
                                        const uint64_t *session, int ctl, uint32_t scope)
{
    if (udp_nat_count(&u->nat) >= u->max_assocs)
        udp_evict_oldest(u, NULL);
    struct udp_assoc *a = calloc(1, sizeof *a + u->state_size);
    if (!a)
        return NULL;
    a->relay = u;
    a->fd[0] = a->fd[1] = -1;
    LIST_INIT(&a->lookups);
    a->ctl = ctl;
    a->proto_state = (struct proto_udp_state *)(a + 1);
    /* A server makes an association only for a packet that opened: the protocol's state
     * starts from what that packet said. Clients start a fresh session, on their server. */
    udp_upstream_assign(a);
    if (ctl >= 0) {
        RP_ASSERT(ctl < u->nctls && u->ctls[ctl]);
        struct udp_ctl *c = u->ctls[ctl];
        LIST_INSERT_HEAD(&c->assocs, a, ctl_link);
        c->nassocs++;
    }
    RP_ASSERT(scope == UDP_SCOPE_SHARED || scope == UDP_SCOPE_OF_CTL(ctl));
    if (session)
        udp_nat_insert_session(&u->nat, &a->nat, *session, client, scope, u->now);
    else
        udp_nat_insert(&u->nat, &a->nat, client, scope, u->now);
    metrics_add(&u->stats->udp_associations, 1);
    udp_expiry_arm(u);
    return a;
}

struct udp_assoc *udp_assoc_new(struct udp_relay *u, const struct sockaddr *client, int ctl,
                                uint32_t scope)
{
    return udp_assoc_make(u, client, NULL, ctl, scope);
}

struct udp_assoc *udp_assoc_new_session(struct udp_relay *u, const struct sockaddr *client,
                                        uint64_t session)
{
    return udp_assoc_make(u, client, &session, -1, UDP_SCOPE_SHARED);
}

struct udp_assoc *udp_assoc_find(struct udp_relay *u, const struct sockaddr *client, uint32_t scope)
{
    struct udp_nat_entry *e = udp_nat_find(&u->nat, client, scope);
    return e ? udp_assoc_of(e) : NULL;
}

struct udp_assoc *udp_assoc_find_session(struct udp_relay *u, uint64_t session)
{
    struct udp_nat_entry *e = udp_nat_find_session(&u->nat, session, UDP_SCOPE_SHARED);
    return e ? udp_assoc_of(e) : NULL;
}

/* The association's outbound socket for a family, made on first use: non-blocking, close on
 * exec, unconnected, and bound by the kernel to an ephemeral port on the first send. */
static int udp_assoc_socket(struct udp_assoc *a, int family)
{
    struct udp_relay *u = a->relay;
    int i = family == AF_INET6;

    if (a->fd[i] >= 0)
        return a->fd[i];
    /* At the share of descriptors UDP may take (udp_relay.c), or out of descriptors: the least
     * recently used flow gives its sockets up to a live one. */
    if (udp_socket_room(u, a) < 0)
        return -1;
    /* the outgoing options (source address, interface, fwmark) as TCP's (netaddr.h) */
    const struct netaddr_outgoing *out = &u->w->cfg->outgoing;
    int fd = netaddr_socket_out(out, family, SOCK_DGRAM, NULL);
    if (fd < 0 && (errno == EMFILE || errno == ENFILE) && udp_evict_oldest(u, a) == 0)
        fd = netaddr_socket_out(out, family, SOCK_DGRAM, NULL);
    if (fd < 0)
        return -1;
    u->nsockets++;
    ev_io_init(&a->io[i], udp_outbound_cb, fd, EV_READ);
    a->io[i].data = a;
    ev_io_start(u->w->loop, &a->io[i]);
    a->fd[i] = fd;
    return fd;
}

/* ---- Sending, after DNS if need be -------------------------------------------------------- */

/* Queues data for sending from a's socket of to's family. */
static void udp_emit(struct udp_assoc *a, const struct sockaddr *to, const uint8_t *data,
                     size_t len, const struct sockaddr *from)
{
    struct udp_relay *u = a->relay;

    if (!udp_target_allowed(u, to)) {
        udp_drop(u, from, "target refused by the ACL");
        return;
    }
    int fd = udp_assoc_socket(a, to->sa_family);
    if (fd < 0) {
        udp_drop(u, from, "no outbound socket");
        return;
    }
    if (u->role != ROLE_SERVER) /* a client's sockets send to the server alone */
        memcpy(&a->server[to->sa_family == AF_INET6], to, netaddr_len(to));
    udp_tx_add(u, fd, to, data, len, NULL);
}

/* Sends to the first resolved address the ACL allows (the resolver orders them). */
static void udp_emit_resolved(struct udp_assoc *a, const struct resolve_result *r, uint16_t port,
                              const uint8_t *data, size_t len, const struct sockaddr *from)
{
    for (int i = 0; i < r->count && i < RESOLVE_MAX_ADDRS; i++) {
        struct sockaddr_storage to = r->addr[i];
        if (!udp_family_ok((struct sockaddr *)&to))
            continue;
        netaddr_set_port((struct sockaddr *)&to, port);
        if (udp_target_allowed(a->relay, (struct sockaddr *)&to)) {
            udp_emit(a, (struct sockaddr *)&to, data, len, from);
            return;
        }
    }
    udp_drop(a->relay, from, "no allowed address for the target");
}

static int udp_enqueue(struct udp_assoc *a, struct udp_lookup *l, uint16_t port,
                       const uint8_t *data, size_t len)
{
    struct udp_relay *u = a->relay;

    if (a->nqueued >= UDP_QUEUE_MAX || u->queued_bytes + len > UDP_QUEUE_BYTES_MAX)
        return -1;
    struct udp_queued *q = malloc(sizeof *q + len);
    if (!q)
        return -1;
    q->port = port;
    q->len = len;
    memcpy(q->data, data, len);
    STAILQ_INSERT_TAIL(&l->queue, q, link);
    a->nqueued++;
    u->queued_bytes += len;
    return 0;
}

/* The resolver's answer for a pending lookup: the queued datagrams leave, in order. */
static void udp_lookup_cb(void *arg, int status, const struct resolve_result *result)
{
    struct udp_lookup *l = arg;

    l->query = NULL;
    if (l->starting) {
        /* Answered from inside resolve_lookup(): udp_resolve_start takes it from here. */
        l->done = true;
        l->status = status;
        if (status == 0 && result && result != &l->result)
            l->result = *result;
        return;
    }
    struct udp_assoc *a = l->assoc;
    struct udp_relay *u = a->relay;
    u->now = udp_clock();
    LIST_REMOVE(l, link);
    a->nlookups--;
    for (struct udp_queued *q = STAILQ_FIRST(&l->queue); q; q = STAILQ_NEXT(q, link)) {
        if (status == 0 && result)
            udp_emit_resolved(a, result, q->port, q->data, q->len, NULL);
        else
            udp_drop(u, NULL, "target name did not resolve");
    }
    udp_tx_flush(u); /* before the queue that the entries point into is freed */
    udp_queue_free(u, a, l);
    free(l);
}

/* Starts resolving dest->host for a datagram. A cached name answers at once and the datagram
 * leaves without a copy; otherwise it waits in the new lookup's queue. */
static void udp_resolve_start(struct udp_assoc *a, const struct netaddr_target *dest,
                              const uint8_t *data, size_t len, const struct sockaddr *from)
{
    struct udp_relay *u = a->relay;

    if (!u->w->resolver || a->nlookups >= UDP_LOOKUPS_MAX) {
        udp_drop(u, from, "too many names being resolved");
        return;
    }
    if (!u->spare && !(u->spare = calloc(1, sizeof *u->spare))) {
        udp_drop(u, from, "out of memory");
        return;
    }
    struct udp_lookup *l = u->spare;
    l->starting = true;
    l->done = false;
    l->query = NULL;
    int rc = resolve_lookup(u->w->resolver, dest->host, &l->result, udp_lookup_cb, l, &l->query);
    l->starting = false;
    if (rc == 1 || (rc == 0 && l->done && l->status == 0)) {
        l->query = NULL;
        udp_emit_resolved(a, &l->result, dest->port, data, len, from);
        return;
    }
    if (rc < 0 || l->done) {
        l->query = NULL;
        udp_drop(u, from, "target name did not resolve");
        return;
    }
    u->spare = NULL; /* pending: the spare becomes this association's lookup */
    l->assoc = a;
    STAILQ_INIT(&l->queue);
    memcpy(l->host, dest->host, sizeof l->host);
    l->host[sizeof l->host - 1] = '\0';
    LIST_INSERT_HEAD(&a->lookups, l, link);
    a->nlookups++;
    if (udp_enqueue(a, l, dest->port, data, len) < 0)
        udp_drop(u, from, "DNS wait queue full");
}

void udp_assoc_send(struct udp_assoc *a, const struct netaddr_target *dest, const uint8_t *data,
                    size_t len, const struct sockaddr *from)
{
    struct udp_relay *u = a->relay;

    if (dest->atyp != NETADDR_ATYP_DOMAIN) {
        udp_emit(a, (const struct sockaddr *)&dest->addr, data, len, from);
        return;
    }
    if (u->role == ROLE_SERVER && u->w->acl && acl_host_blocked(u->w->acl, dest->host)) {
        udp_drop(u, from, "target name refused by the ACL");
        return;
    }
    /* A datagram for a name already being resolved queues behind it: order is kept. */
    for (struct udp_lookup *l = LIST_FIRST(&a->lookups); l; l = LIST_NEXT(l, link))
        if (strcmp(l->host, dest->host) == 0) {
            if (udp_enqueue(a, l, dest->port, data, len) < 0)
                udp_drop(u, from, "DNS wait queue full");
            return;
        }
    udp_resolve_start(a, dest, data, len, from);
}

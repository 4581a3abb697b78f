/* udp_upstream.c: the client roles' UDP over several servers (udp_private.h, upstream.h). A
 * datagram goes to the best live server as a TCP connection does, by upstream_pick over the
 * master's probe results in shared memory; but an association is a flow, not a connection: it
 * keeps the server it started on while that one is alive, so the remote sees one source and a
 * SIP022 session keeps its packet ids, and moves only once the server is probed dead (or
 * failed a connect in this worker). UDP itself cannot tell: a lost reply looks like a slow
 * one. The move starts a fresh protocol session on the new server (SIP022 section 3.2: a
 * session belongs to one key), and replies from the old server are dropped from then on, as
 * from any address but the association's server. */
#include "autoconfig.h"

#include <stdlib.h>

#include "log.h"
#include "rp_assert.h"
#include "udp_private.h"
#include "upstream.h"
#include "worker.h"

int udp_upstream_init(struct udp_relay *u)
{
    const struct worker *w = u->w;

    u->state_size = u->proto.ctx->ops->udp_state_size;
    if (u->role == ROLE_SERVER || w->nupstream < 2)
        return 0;
    u->upstream_proto = calloc((size_t)w->nupstream, sizeof *u->upstream_proto);
    if (!u->upstream_proto)
        return -1;
    for (int i = 0; i < w->nupstream; i++) {
        const struct proto_ctx *pc = &w->upstream_proto[i];
        if (proto_udp_init(&u->upstream_proto[i], pc) < 0)
            return -1;
        RP_ASSERT(pc->ops->datagram_overhead(pc) <= PROTO_DATAGRAM_OVERHEAD_MAX);
        RP_ASSERT(pc->ops->udp_state_size <= sizeof(struct proto_udp_state));
        if (pc->ops->udp_state_size > u->state_size)
            u->state_size = pc->ops->udp_state_size;
    }
    return 0;
}

void udp_upstream_free(struct udp_relay *u)
{
    if (!u->upstream_proto)
        return;
    for (int i = 0; i < u->w->nupstream; i++)
        proto_udp_free(&u->upstream_proto[i]);
    free(u->upstream_proto);
    u->upstream_proto = NULL;
}

struct proto_udp *udp_assoc_proto(struct udp_assoc *a)
{
    struct udp_relay *u = a->relay;
    return u->upstream_proto ? &u->upstream_proto[a->upstream] : &u->proto;
}

static int udp_upstream_pick(struct udp_relay *u)
{
    struct worker *w = u->w;
    int i = upstream_pick(w->upstream_stats, w->nupstream, w->cfg->balance_servers, &w->upstream_rr,
                          0, w->upstream_down);
    return i >= 0 ? i : 0;
}

struct metrics_upstream *udp_upstream_stats(const struct udp_assoc *a)
{
    const struct udp_relay *u = a->relay;
    return u->upstream_proto ? &u->w->upstream_stats[a->upstream] : NULL;
}

/* a on server i, a new session of that server's protocol. */
static void udp_upstream_use(struct udp_assoc *a, int i)
{
    a->upstream = i;
    metrics_add(&a->relay->w->upstream_stats[i].udp_associations, 1);
    struct proto_udp *p = udp_assoc_proto(a);
    p->ctx->ops->udp_state_init(p, a->proto_state, false);
}

void udp_upstream_assign(struct udp_assoc *a)
{
    struct udp_relay *u = a->relay;

    if (!u->upstream_proto) {
        a->upstream = 0;
        u->proto.ctx->ops->udp_state_init(&u->proto, a->proto_state, u->role == ROLE_SERVER);
        return;
    }
    udp_upstream_use(a, udp_upstream_pick(u));
}

const struct netaddr_target *udp_upstream_target(struct udp_assoc *a)
{
    struct udp_relay *u = a->relay;
    struct worker *w = u->w;

    if (!u->upstream_proto)
        return &w->udp_server;
    int i = a->upstream;
    if (!upstream_alive(&w->upstream_stats[i], w->upstream_down[i])) {
        int next = udp_upstream_pick(u);
        if (next != i) {
            char from[300], to[300];
            log_debug("udp: server %s is down; an association moves to %s",
                      upstream_name(&w->cfg->upstreams[i], from, sizeof from),
                      upstream_name(&w->cfg->upstreams[next], to, sizeof to));
            metrics_add(&w->upstream_stats[i].udp_failovers, 1);
            udp_upstream_use(a, next);
        }
    }
    return &w->upstream_target[a->upstream];
}

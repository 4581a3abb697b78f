/* relay_proxy.c: who may begin a handshake (the ACL's client lists, max_handshakes_per_source),
 * and a session's PROXY protocol header ("proxy_protocol"), read by this file and only the
 * header: the bytes waiting are looked at with MSG_PEEK, parsed (proxy_proto.c), and exactly
 * those the header takes are read, so what the client sent after it waits in the socket for the
 * handshake as on a direct connection. The bytes of a header still incomplete are all header;
 * they are kept in up.buf until the rest comes. relay.c acts on the verdict. */
#include "autoconfig.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "acl.h"
#include "handshake_limit.h"
#include "metrics.h"
#include "proxy_proto.h"
#include "session.h"
#include "worker.h"

/* What reading the PROXY protocol header came to. */
enum relay_proxy {
    RELAY_PROXY_WAIT,   /* incomplete: its bytes so far are kept in up.buf */
    RELAY_PROXY_DONE,   /* *h is the header; nothing after it was read */
    RELAY_PROXY_BAD,    /* malformed, or longer than a buffer */
    RELAY_PROXY_CLOSED, /* the client left or failed, or no buffer: close */
};

/* Reads what the client sent of its header (proxy_proto.h), and not a byte more. */
static enum relay_proxy relay_proxy_read(struct session *s, struct proxy_proto_header *h)
{
    struct buf *b = pipe_buf(s, &s->up);

    if (!b)
        return RELAY_PROXY_CLOSED;
    if (buf_room(b) == 0) /* longer than a buffer (v2 allows 64 KiB): no balancer sends that */
        return RELAY_PROXY_BAD;
    ssize_t n = recv(s->client.fd, b->data + b->end, buf_room(b), MSG_PEEK);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return RELAY_PROXY_WAIT;
    if (n <= 0)
        return RELAY_PROXY_CLOSED;
    long r = proxy_proto_parse(b->data + b->start, buf_len(b) + (size_t)n, h);
    if (r < 0)
        return RELAY_PROXY_BAD;
    size_t take = r > 0 ? (size_t)r - buf_len(b) : (size_t)n;
    if (read(s->client.fd, b->data + b->end, take) != (ssize_t)take)
        return RELAY_PROXY_CLOSED;
    b->end += take;
    metrics_add(&s->w->stats->bytes_in, take);
    if (s->pstats)
        metrics_add(&s->pstats->bytes_in, take);
    return r > 0 ? RELAY_PROXY_DONE : RELAY_PROXY_WAIT;
}

/* Whether a client may begin its handshake: the ACL's client lists (libev's black/white list)
 * and max_handshakes_per_source (one source cannot hold every slot with connections that never
 * finish their handshake, handshake_limit.h). A refusal is counted; the caller closes at once.
 * *counted: the client now holds a place in w->hs_limit. */
bool relay_client_admitted(struct worker *w, const struct sockaddr *peer, bool *counted)
{
    *counted = false;
    if (w->cfg->role == ROLE_SERVER && !acl_client_allowed(w->acl, peer)) {
        char name[64];
        log_debug("client %s refused by the acl", netaddr_format(peer, name, sizeof name));
        metrics_add(&w->stats->failed_handshakes, 1);
        return false;
    }
    if (w->hs_limit && !handshake_limit_enter(w->hs_limit, peer)) {
        metrics_add(&w->stats->handshake_limited, 1);
        return false;
    }
    *counted = w->hs_limit != NULL;
    return true;
}

/* ---- the session's side ---- */

void session_proxy_begin(struct session *s)
{
    struct worker *w = s->w;

    /* Only a balancer may say who the client is: a header from anyone else would let any
     * client choose the address that the ACL and the logs see. Such a connection is refused
     * as a failed handshake is, with silence (relay.c's probe stage). */
    if (!netaddr_cidr_match(w->cfg->proxy_protocol_from, w->cfg->n_proxy_protocol_from,
                            (struct sockaddr *)&s->peer)) {
        metrics_add(&w->stats->proxy_refused, 1);
        session_probe(s, "connection from outside proxy_protocol_from");
        return;
    }
    session_set_stage(s, STAGE_PROXY);
    session_io_set(s, &s->client.rio, true);
}

/* The header parsed: its client address (when it carries one: not for HAProxy's LOCAL health
 * checks or UNKNOWN) stands for the connection's from now on, in the ACL, the per-source limit,
 * the logs. Then the handshake, as after accept on a direct connection. */
static void session_proxy_done(struct session *s, const struct proxy_proto_header *h)
{
    bool counted;

    pipe_buf_put(s, &s->up);
    if (h->has_address)
        memcpy(&s->peer, &h->src, sizeof s->peer);
    if (!relay_client_admitted(s->w, (struct sockaddr *)&s->peer, &counted)) {
        session_close(s);
        return;
    }
    s->hs_counted = counted;
    session_handshake_begin(s);
}

void session_proxy_read(struct session *s)
{
    struct proxy_proto_header h;

    switch (relay_proxy_read(s, &h)) {
    case RELAY_PROXY_WAIT:
        break;
    case RELAY_PROXY_DONE:
        session_proxy_done(s, &h);
        break;
    case RELAY_PROXY_BAD:
        metrics_add(&s->w->stats->proxy_refused, 1);
        session_probe(s, "malformed PROXY protocol header");
        break;
    case RELAY_PROXY_CLOSED:
        session_close(s);
        break;
    }
}

/* relay_handshake.c: how a session learns its target: reading the client's first bytes into
 * handshake.c, acting on its verdict (connect the request's target or a server, hold a SOCKS5
 * UDP association, treat a failure as a probe), and the local port's reply once the connect
 * has succeeded or failed. relay.c moves the stages; this file only asks it to. */
#include "autoconfig.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "acl.h"
#include "redir.h"
#include "rp_assert.h"
#include "session.h"
#include "udp_relay.h"
#include "upstream.h"
#include "worker.h"

/* Reads from the client into up.buf (taking a buffer if needed), at most max bytes.
 * Returns bytes read, 0 at EOF, -1 on EAGAIN, -2 on error. */
static ssize_t session_read_client(struct session *s, size_t max)
{
    struct pipe *p = &s->up;
    if (!pipe_buf(s, p))
        return -2;
    size_t room = buf_room(p->buf);
    if (room > max)
        room = max;
    if (room == 0)
        return -2;
    ssize_t n = read(s->client.fd, p->buf->data + p->buf->end, room);
    if (n > 0) {
        p->drained = (size_t)n < room;
        p->buf->end += n;
        metrics_add(&s->w->stats->bytes_in, n);
        if (s->pstats)
            metrics_add(&s->pstats->bytes_in, (uint64_t)n);
        return n;
    }
    if (n == 0)
        return 0;
    return (errno == EAGAIN || errno == EINTR) ? -1 : -2;
}

static int write_all_small(int fd, const uint8_t *b, size_t n)
{
    /* Replies are a few bytes on a fresh socket: a short write means the client is broken. */
    return write(fd, b, n) == (ssize_t)n ? 0 : -1;
}

/* Local role: answers the SOCKS5, SOCKS4 or HTTP CONNECT once the connection is up (err 0) or
 * has failed (RFC 1928 section 6). Returns 0, or -1 when the client cannot take the reply. */
int session_socks_reply(struct session *s, int err)
{
    uint8_t out[256]; /* the longest: HTTP's 403 with its body */

    if (!s->socks_reply_pending)
        return 0;
    s->socks_reply_pending = false;
    int n = handshake_connect_reply(&s->hs, err, out, sizeof out);
    if (n == 0) /* a forwarded HTTP request: the origin's response answers */
        return 0;
    return n < 0 ? -1 : write_all_small(s->client.fd, out, (size_t)n);
}

/* ---- the handshake's verdicts ---- */

/* Local roles: connect to the server, the address header waiting for the first flight. */
static void session_connect_server(struct session *s, const struct handshake_out *out)
{
    struct worker *w = s->w;

    memcpy(s->header, out->header, out->header_len);
    s->header_len = out->header_len;
    struct netaddr_target t;
    if (w->acl && netaddr_parse_header(out->header, out->header_len, &t) > 0) {
        /* [outbound_block_list] (as shadowsocks-rust's local reads it): refused here, before
         * any server is asked, whichever route the target would take. */
        if (acl_host_blocked(w->acl, t.host)) {
            s->target = t;
            session_refuse(s, REFUSE_ACL);
            return;
        }
        /* The ACL's bypass list (libev's local/tunnel semantics): such a target is connected
         * to directly, as the server role does, and spoken to in plaintext. */
        if ((t.addrlen ? acl_route_address(w->acl, (struct sockaddr *)&t.addr)
                       : acl_route_host(w->acl, t.host)) == ACL_BYPASS) {
            s->direct = true;
            s->target = t;
        }
    }
    /* Otherwise one of the servers (upstream.h): the best alive, or the next in turn. */
    if (!s->direct)
        session_use_upstream(s, w->nupstream < 2
                                    ? 0
                                    : upstream_pick(w->upstream_stats, w->nupstream,
                                                    w->cfg->balance_servers, &w->upstream_rr, 0,
                                                    w->upstream_down));
    /* until connected, the client is not read: its bytes wait in the kernel */
    session_io_set(s, &s->client.rio, false);
    session_connect_target(s);
}

/* Server: connect to the request's target; its initial data waits in up.buf. */
static void session_connect_request(struct session *s, const struct handshake_out *out)
{
    struct pipe *p = &s->up;

    s->target = out->target;
    s->ustats = session_user_stats(s);
    if (s->ustats) {
        metrics_add(&s->ustats->connections, 1);
        /* the first flight, read before the user was known */
        if (s->up.buf)
            metrics_add(&s->ustats->bytes_in, s->up.buf->end);
    }
    if (s->conn.user) { /* which user asked (SIP023 header or SIP004 key), by its configured name */
        char addr[64];
        log_debug("user \"%s\" from %s: request for %s port %u", s->conn.user,
                  netaddr_format((struct sockaddr *)&s->peer, addr, sizeof addr), s->target.host,
                  (unsigned)s->target.port);
    }
    p->iov_n = p->iov_i = 0;
    if (out->early_len) {
        p->iov[0].iov_base = (void *)out->early;
        p->iov[0].iov_len = out->early_len;
        p->iov_n = 1;
    }
    session_io_set(s, &s->client.rio, false);
    if (s->w->shared && s->conn.req_salt_len > 0)
        session_claim_salt(s);
    else
        session_connect_target(s);
}

/* SOCKS5 UDP ASSOCIATE: the client sends its datagrams to a UDP socket of this worker's own,
 * on the address this connection arrived at (udp_relay.h). */
static void session_udp_associate(struct session *s)
{
    struct worker *w = s->w;
    struct sockaddr_storage local, bound;
    socklen_t len = sizeof local;
    uint8_t out[32];

    if (w->nudp > 0 && getsockname(s->client.fd, (struct sockaddr *)&local, &len) == 0)
        s->udp_handle = udp_relay_socks5_open(w->udp[0], (struct sockaddr *)&s->peer,
                                              (struct sockaddr *)&local, &bound);
    int n = handshake_udp_reply(w->nudp > 0, s->udp_handle >= 0 ? (struct sockaddr *)&bound : NULL,
                                out, sizeof out);
    if (s->udp_handle < 0) { /* answered, then closed */
        if (n > 0)
            write_all_small(s->client.fd, out, n);
        session_close(s);
        return;
    }
    if (n < 0 || write_all_small(s->client.fd, out, n) < 0) {
        session_close(s);
        return;
    }
    /* RFC 1928 section 7: the association lives as long as this TCP connection. */
    session_set_stage(s, STAGE_UDP_HOLD);
}

static void session_on_verdict(struct session *s, const struct handshake_out *out)
{
    if (out->reply_len && write_all_small(s->client.fd, out->reply, out->reply_len) < 0) {
        session_close(s);
        return;
    }
    switch (out->verdict) {
    case HANDSHAKE_NEED_MORE:
        break;
    case HANDSHAKE_TARGET:
        if (s->w->cfg->role == ROLE_SERVER) {
            session_connect_request(s, out);
        } else {
            s->socks_reply_pending = s->w->cfg->role == ROLE_LOCAL;
            session_connect_server(s, out);
        }
        break;
    case HANDSHAKE_UDP_ASSOCIATE:
        session_udp_associate(s);
        break;
    case HANDSHAKE_FAIL:
        /* the local port's refusals (bad SOCKS or HTTP requests, wrong credentials) were
         * answered above; closed at once, counted apart from the server's failed handshakes */
        if (s->w->cfg->role == ROLE_LOCAL)
            metrics_add(&s->w->stats->local_refused, 1);
        if (out->replayed)
            metrics_add(&s->w->stats->replays, 1);
        if (session_user_stats(s)) /* the user's key opened it: malformed or replayed */
            metrics_add(&session_user_stats(s)->failed_handshakes, 1);
        if (out->silent)
            session_probe(s, out->reason);
        else
            session_close(s);
        break;
    }
}

void session_handshake_begin(struct session *s)
{
    struct handshake_out out;
    struct netaddr_target redir;
    const struct netaddr_target *fixed = &s->w->tunnel;
    const char *why;

    /* the redir role's target is where the client was going (redir.h) */
    if (s->w->cfg->role == ROLE_REDIR) {
        int r = redir_tcp_target(s->client.fd, s->w->cfg->tcp_redir, &redir, &why);
        /* TPROXY cannot tell a connection made to the port itself from a diverted one: its
         * destination would be this listener, reached again through the server, again... */
        if (r == 0 && session_own_endpoint(s, (struct sockaddr *)&redir.addr)) {
            metrics_add(&s->w->stats->loops_refused, 1);
            why = "the destination is this redir's own listening address (a proxy loop)";
            r = -1;
        }
        if (r < 0) {
            metrics_add(&s->w->stats->failed_handshakes, 1);
            log_event(&s->w->rl_handshake, "redir: %s", why);
            session_close(s);
            return;
        }
        fixed = &redir;
    }
    if (handshake_begin(&s->hs, fixed, &out) == HANDSHAKE_NEED_MORE) {
        session_set_stage(s, STAGE_HANDSHAKE);
        session_io_set(s, &s->client.rio, true);
        return;
    }
    session_on_verdict(s, &out);
}

void session_handshake_read(struct session *s)
{
    struct handshake_out out;
    ssize_t n = session_read_client(s, handshake_read_max(&s->hs));

    if (n == -1)
        return;
    if (n <= 0) { /* the client left (or broke) before finishing: close, as for any probe */
        session_close(s);
        return;
    }
    struct buf *b = s->up.buf;
    /* the server's first flight is opened from the client's first byte every time: nothing is
     * consumed before it is complete */
    handshake_feed(&s->hs, b->data + b->start, buf_len(b), b->cap - b->start, buf_room(b) == 0,
                   &out);
    /* an HTTP request rewritten in place may have changed its length */
    RP_ASSERT(out.input_len <= b->cap - b->start && out.consumed <= out.input_len);
    b->end = b->start + out.input_len;
    b->start += out.consumed;
    session_on_verdict(s, &out);
}

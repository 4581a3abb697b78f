/* relay.c: the one TCP session every role runs: its lifetime and timers, connecting to the
 * target, and the two pipes that move bytes between client and remote (relay_pipe.c runs
 * them; this file acts on what they report).
 *
 * A pipe either seals (plaintext in, shadowsocks chunks out) or opens (chunks in, plaintext
 * out), through the protocol's ops (proto.h): this file never knows which protocol runs. It
 * only reads when everything it read before has been written: a destination that cannot take
 * more stops its source from being read, so memory per connection is bounded by one buffer per
 * direction whatever the speeds. Buffers come from the worker's pool while bytes are
 * in flight and go back when a direction drains, so an idle connection holds none.
 *
 * Sealing in place: readv() scatters plaintext straight into the payload slots of up to four
 * chunks laid out back to back in the buffer, each with room for its sealed length in front
 * and its tag behind; sealing then fills those gaps and the whole output is one contiguous
 * write. Opening in place: chunks are decrypted where they lie and their payloads are written
 * with one writev(). */
#include "autoconfig.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "acl.h"
#include "handshake_limit.h"
#include "redir.h"
#include "relay.h"
#include "relay_addrs.h"
#include "rp_assert.h"
#include "session.h"
#include "udp_relay.h"
#include "upstream.h"
#include "worker.h"

/* Seconds a worker trusts its list of local addresses (for wildcard listeners) before it reads
 * them again: an address added to an interface is refused as a target within this time. */
#define OWN_ADDRS_MAX_AGE 10.0

static void client_read_cb(struct ev_loop *loop, ev_io *io, int revents);
static void down_ready_cb(struct ev_loop *loop, ev_io *io, int revents);
static void remote_write_cb(struct ev_loop *loop, ev_io *io, int revents);
static void timer_cb(struct ev_loop *loop, ev_timer *t, int revents);
static void session_start_relay(struct session *s);
static void session_connect_failed(struct session *s, int err, const char *reason);
static void session_connect_begin(struct session *s);
static bool session_failover(struct session *s, int err, const char *reason);

/* ---- watchers ---- */

static void side_init(struct session *s, struct side *side, int fd, bool client)
{
    side->fd = fd;
    ev_io_init(&side->rio, client ? client_read_cb : down_ready_cb, fd, EV_READ);
    ev_io_init(&side->wio, client ? down_ready_cb : remote_write_cb, fd, EV_WRITE);
    side->rio.data = side->wio.data = s;
}

static void side_close(struct session *s, struct side *side)
{
    session_io_set(s, &side->rio, false);
    session_io_set(s, &side->wio, false);
    if (side->fd >= 0)
        close(side->fd);
    side->fd = -1;
}

/* ---- session lifetime ---- */

int relay_accept(struct worker *w, int port, int fd, const struct sockaddr *peer,
                 socklen_t peerlen)
{
    /* Behind a balancer (proxy_protocol) the peer is the balancer: the client's own address,
     * which the ACL and the per-source limit are about, comes with the header
     * (session_proxy_done). Without it the checks run here, before anything is read. */
    bool proxied = w->cfg->proxy_protocol && w->cfg->role == ROLE_SERVER;
    bool counted = false;
    if (!peer || peerlen > sizeof(struct sockaddr_storage))
        peer = NULL;
    if (!proxied && peer && !relay_client_admitted(w, peer, &counted)) {
        metrics_add(&w->stats->accepted, 1);
        close(fd);
        return 0;
    }
    struct session *s = calloc(1, sizeof *s);
    if (!s) {
        if (counted)
            handshake_limit_leave(w->hs_limit, peer);
        close(fd);
        return -1;
    }
    s->hs_counted = counted;
    s->w = w;
    s->stage = STAGE_NEW;
    s->udp_handle = -1;
    proto_dir_init(&s->up.pd);
    proto_dir_init(&s->down.pd);
    RP_ASSERT(port >= 0 && port < w->nports);
    s->port = &w->ports[port];
    s->port->refs++; /* the entry stays while the session does (worker_ports.c) */
    s->pstats = s->port->stats;
    s->conn.ctx = &s->port->proto;
    if (s->pstats)
        metrics_add(&s->pstats->connections, 1);
    handshake_init(&s->hs, w->cfg->role, &s->conn, &s->up.pd);
    handshake_set_local(&s->hs, w->cfg->protocol, w->cfg->local_users, w->cfg->n_local_users);
    if (peer && peerlen <= sizeof s->peer) {
        memcpy(&s->peer, peer, peerlen);
        s->conn.peer = (const struct sockaddr *)&s->peer;
    }
    side_init(s, &s->client, fd, true);
    side_init(s, &s->remote, -1, false);
    ev_init(&s->timer, timer_cb);
    s->timer.data = s;
    s->accepted_at = s->last_activity = ev_now(w->loop);

    LIST_INSERT_HEAD(&w->sessions, s, link);
    w->nsessions++;
    metrics_add(&w->stats->accepted, 1);
    metrics_add(&w->stats->active, 1);

    if (w->cfg->no_delay) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    (void)netaddr_set_keepalive(fd, w->cfg->keep_alive); /* best effort, as TCP_NODELAY */
    if (proxied)
        session_proxy_begin(s);
    else
        session_handshake_begin(s);
    return 0;
}

/* close() on a socket with unread bytes sends a reset instead of a FIN. A client whose session
 * ends before everything it sent was read (the server could not be reached, a drain ended it)
 * gets a clean close: what is waiting is read and dropped first, within a bound. */
static void side_discard_unread(int fd)
{
    uint8_t sink[4096];
    for (int i = 0; i < 16; i++)
        if (read(fd, sink, sizeof sink) <= 0)
            return;
}

/* The stages of a session that has not (or not successfully) finished its handshake: those
 * max_handshakes_per_source counts. A failed handshake is held until its deadline (PROBE), so
 * it still holds its source's share. */
static bool stage_in_handshake(enum session_stage stage)
{
    return stage == STAGE_NEW || stage == STAGE_PROXY || stage == STAGE_HANDSHAKE ||
           stage == STAGE_SHARED || stage == STAGE_PROBE;
}

static void session_uncount(struct session *s)
{
    if (s->hs_counted) {
        handshake_limit_leave(s->w->hs_limit, (struct sockaddr *)&s->peer);
        s->hs_counted = false;
    }
}

void session_close(struct session *s)
{
    struct worker *w = s->w;

    session_uncount(s);

    if (s->client.fd >= 0 && !s->up.eof && !s->aborted)
        side_discard_unread(s->client.fd);

    if (s->query)
        resolve_cancel(s->query);
    if (s->claim)
        shared_store_abandon(s->claim);
    free(s->addrs);
    if (s->udp_handle >= 0 && w->nudp > 0)
        udp_relay_socks5_close(w->udp[0], s->udp_handle);
    ev_timer_stop(w->loop, &s->timer);
    side_close(s, &s->client);
    side_close(s, &s->remote);
    pipe_release(s, &s->up);
    pipe_release(s, &s->down);

    /* in the list, and the list's count agrees */
    RP_ASSERT(w->nsessions > 0 && *s->link.le_prev == s);
    LIST_REMOVE(s, link);
    w->nsessions--;
    RP_ASSERT(s->port->refs > 0);
    s->port->refs--;
    metrics_sub(&w->stats->active, 1);
    free(s);
    if (w->draining && w->nsessions == 0 && w->on_sessions_done)
        w->on_sessions_done(w->on_sessions_done_ctx);
}

/* A relay that ends in an error (a side reset us, a write failed, a chunk failed to open, the
 * encrypted stream ended inside a chunk) must not look like a complete transfer to the other
 * side: a FIN would tell it "that was everything", and a truncated upload would pass for whole
 * (issue 20 item 6). SO_LINGER with a zero timeout makes close() send a RST instead (socket(7)),
 * on both sides: the one that failed is gone anyway. A clean EOF still ends with a FIN
 * (pipe_pump's half-close). */
static void session_abort(struct session *s, const char *why)
{
    static const struct linger reset = {.l_onoff = 1, .l_linger = 0};

    log_debug("relay aborted: %s", why);
    if (s->client.fd >= 0)
        setsockopt(s->client.fd, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
    if (s->remote.fd >= 0)
        setsockopt(s->remote.fd, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
    s->aborted = true;
    session_close(s);
}

void relay_close_all(struct worker *w)
{
    while (!LIST_EMPTY(&w->sessions))
        session_close(LIST_FIRST(&w->sessions));
    RP_ASSERT(w->nsessions == 0);
}

void relay_close_probes(struct worker *w)
{
    struct session *s = LIST_FIRST(&w->sessions), *next;
    for (; s; s = next) {
        next = LIST_NEXT(s, link);
        if (s->stage == STAGE_PROBE)
            session_close(s);
    }
}

void relay_port_removed(struct worker *w, const struct worker_port *p)
{
    struct session *s;
    LIST_FOREACH(s, &w->sessions, link)
        if (s->port == p)
            s->pstats = NULL; /* its slot is freed: another port may get it */
}

void relay_users_retired(struct worker *w, double close_before)
{
    struct session *s = LIST_FIRST(&w->sessions), *next;
    for (; s; s = next) {
        next = LIST_NEXT(s, link);
        const struct worker_port *p = s->port;
        size_t k = s->conn.key;
        if (p && p->removed) { /* a port removed live (worker_ports.c) */
            if (p->removed_at <= close_before)
                session_close(s);
            continue;
        }
        if (!p || s->conn.ctx != &p->proto || !s->conn.user || !p->key_retired ||
            k >= p->proto.nkeys || !p->key_retired[k])
            continue;
        s->ustats = NULL;
        if (p->key_retired_at[k] <= close_before)
            session_close(s);
    }
}

/* The deadline of each stage. Handshake and probe deadlines count from accept and are never
 * pushed back by the client's bytes: every failed handshake, whatever was sent, ends the same
 * way at the same time (issue 3: probes must not tell the cases apart). */
static void timer_arm(struct session *s)
{
    const struct config *c = s->w->cfg;
    ev_tstamp now = ev_now(s->w->loop), at;

    switch (s->stage) {
    case STAGE_PROXY:
    case STAGE_HANDSHAKE:
    case STAGE_PROBE:
        at = s->accepted_at + c->timeout;
        break;
    case STAGE_SHARED: /* a handshake never waits longer for Redis */
        at = now + c->shared.timeout_ms / 1000.0;
        break;
    case STAGE_RESOLVE:
    case STAGE_CONNECT:
        at = now + c->connect_timeout;
        break;
    case STAGE_RELAY:
        at = s->last_activity + c->timeout;
        break;
    case STAGE_UDP_HOLD: /* idle once its datagrams have stopped for udp_timeout */
        at = now + udp_relay_socks5_idle_left(s->w->udp[0], s->udp_handle);
        break;
    default:
        ev_timer_stop(s->w->loop, &s->timer);
        return;
    }
    ev_timer_stop(s->w->loop, &s->timer);
    ev_timer_set(&s->timer, at > now ? at - now : 0.001, 0.);
    ev_timer_start(s->w->loop, &s->timer);
}

static void timer_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct session *s = t->data;
    (void)revents;
    /* Idle time is tracked lazily: reads only stamp last_activity; the timer, when it fires
     * early, just re-arms for the rest (libev's recommended way for busy connections). */
    if ((s->stage == STAGE_RELAY && ev_now(loop) - s->last_activity < s->w->cfg->timeout) ||
        (s->stage == STAGE_UDP_HOLD &&
         udp_relay_socks5_idle_left(s->w->udp[0], s->udp_handle) > 0)) {
        timer_arm(s);
        return;
    }
    if (s->stage == STAGE_CONNECT) {
        /* try the next address, if any */
        s->connect_err = ETIMEDOUT;
        side_close(s, &s->remote);
        session_connect_target(s);
        return;
    }
    if (s->stage == STAGE_SHARED) {
        shared_store_abandon(s->claim);
        s->claim = NULL;
        session_salt_judged(s, SHARED_STORE_FAILED, "no answer within shared_store_timeout_ms");
    } else if (s->stage == STAGE_RESOLVE)
        session_connect_failed(s, ETIMEDOUT, "the resolver did not answer in time");
    else
        session_close(s);
}

/* The moves a session may make: from[row] to[bit]. Anything else is a bug in this file. */
#define TO(stage) (1u << (stage))
static const unsigned stage_moves[STAGE_COUNT] = {
    /* the tunnel role knows its target at once */
    [STAGE_NEW] = TO(STAGE_HANDSHAKE) | TO(STAGE_RESOLVE) | TO(STAGE_CONNECT) | TO(STAGE_PROXY) |
                  TO(STAGE_PROBE),
    /* the header read: the handshake; refused (a stranger, malformed): a probe */
    [STAGE_PROXY] = TO(STAGE_HANDSHAKE) | TO(STAGE_PROBE),
    [STAGE_HANDSHAKE] = TO(STAGE_SHARED) | TO(STAGE_RESOLVE) | TO(STAGE_CONNECT) |
                        TO(STAGE_PROBE) | TO(STAGE_UDP_HOLD),
    /* Redis's verdict: a new salt goes on; a replay is a probe */
    [STAGE_SHARED] = TO(STAGE_RESOLVE) | TO(STAGE_CONNECT) | TO(STAGE_PROBE),
    /* a refused or unreachable target closes at once: no probe after the handshake */
    [STAGE_RESOLVE] = TO(STAGE_CONNECT) | TO(STAGE_RESOLVE), /* failover: the next server's name */
    /* CONNECT to CONNECT: the next address */
    [STAGE_CONNECT] = TO(STAGE_CONNECT) | TO(STAGE_RELAY) | TO(STAGE_RESOLVE),
};
#undef TO

/* The one place a session's stage changes; its deadline follows. */
void session_set_stage(struct session *s, enum session_stage stage)
{
    RP_ASSERT((unsigned)s->stage < STAGE_COUNT && (unsigned)stage < STAGE_COUNT);
    RP_ASSERT(stage_moves[s->stage] & (1u << stage));
    s->stage = stage;
    if (!stage_in_handshake(stage))
        session_uncount(s);
    timer_arm(s);
}

/* The counters of the user whose key opened the request, or NULL (no users, not yet known, or
 * a user without a slot). */
static struct metrics_user *session_user_stats(const struct session *s)
{
    const struct worker *w = s->w;

    const struct worker_port *p = s->port;

    if (!w->user_stats || !p->key_slots || !s->conn.user || s->conn.key >= p->proto.nkeys)
        return NULL;
    int slot = p->key_slots[s->conn.key];
    return slot >= 0 ? &w->user_stats[slot] : NULL;
}

/* A failed handshake (bad tag, replay, malformed header): send nothing,
 * keep reading and discarding, close when the client closes or the handshake deadline passes.
 * Counted and summarized, never logged one line per probe. */
void session_probe(struct session *s, const char *why)
{
    char addr[64];
    struct worker *w = s->w;

    metrics_add(&w->stats->failed_handshakes, 1);
    if (s->pstats)
        metrics_add(&s->pstats->failed_handshakes, 1);
    log_event(&w->rl_handshake, "%s from %s", why,
              netaddr_format((struct sockaddr *)&s->peer, addr, sizeof addr));
    if (s->query) {
        resolve_cancel(s->query);
        s->query = NULL;
    }
    side_close(s, &s->remote);
    pipe_release(s, &s->up);
    pipe_release(s, &s->down);
    session_set_stage(s, STAGE_PROBE);
    session_io_set(s, &s->client.wio, false);
    session_io_set(s, &s->client.rio, true);
}

static void probe_on_read(struct session *s)
{
    uint8_t sink[4096];
    for (int i = 0; i < PIPE_ROUNDS; i++) {
        ssize_t n = read(s->client.fd, sink, sizeof sink);
        if (n > 0)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        session_close(s);
        return;
    }
}

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

/* ---- connecting ---- */

static int write_all_small(int fd, const uint8_t *b, size_t n)
{
    /* Replies are a few bytes on a fresh socket: a short write means the client is broken. */
    return write(fd, b, n) == (ssize_t)n ? 0 : -1;
}

/* Local role: answers the SOCKS5, SOCKS4 or HTTP CONNECT once the connection is up (err 0) or
 * has failed (RFC 1928 section 6). Returns 0, or -1 when the client cannot take the reply. */
static int session_socks_reply(struct session *s, int err)
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

/* "host:port" of the target for a log line, an IPv6 literal in brackets. */
static const char *target_text(const struct netaddr_target *t, char *buf, size_t len)
{
    snprintf(buf, len, strchr(t->host, ':') ? "[%s]:%u" : "%s:%u", t->host, (unsigned)t->port);
    return buf;
}

/* Why the server's policy refuses a target (issue 13 item 10: say which key, and how to change
 * it). */
enum refusal {
    REFUSE_NONE,
    REFUSE_PRIVATE, /* block_private */
    REFUSE_ACL,     /* the ACL file's [outbound_block_list] */
    REFUSE_LOOP,    /* the server's own listening address and port, whatever the policy */
};

/* Whether sa is one of this process's own listening endpoints (relay_addrs.h). */
static bool own_endpoint(struct session *s, const struct sockaddr *sa)
{
    if (!s->w->own_addrs)
        return false;
    relay_addrs_refresh(s->w->own_addrs, ev_now(s->w->loop), OWN_ADDRS_MAX_AGE);
    return relay_addrs_contains(s->w->own_addrs, sa);
}

static enum refusal address_refusal(struct session *s, const struct sockaddr *sa)
{
    const struct config *c = s->w->cfg;

    if (c->role != ROLE_SERVER) /* a bypassed name's addresses: [outbound_block_list] */
        return s->direct && s->w->acl && !acl_address_allowed(s->w->acl, sa) ? REFUSE_ACL
                                                                             : REFUSE_NONE;
    if (own_endpoint(s, sa))
        return REFUSE_LOOP;
    if (!s->w->acl || acl_address_allowed(s->w->acl, sa))
        return REFUSE_NONE;
    return c->block_private && acl_is_private(sa) ? REFUSE_PRIVATE : REFUSE_ACL;
}

/* An authenticated request for a target the policy refuses. The client holds the key, so
 * nothing here is a probe's business: it is told at once (closed, not left to the timeout),
 * and the log names the key that refused. Counted with the failed handshakes; at the local
 * port, answered (SOCKS5 2, SOCKS4 0x5B, HTTP 403) and counted with its other refusals. */
static void session_refuse(struct session *s, enum refusal why)
{
    struct worker *w = s->w;
    char t[300];

    metrics_add(
        w->cfg->role == ROLE_LOCAL ? &w->stats->local_refused : &w->stats->failed_handshakes, 1);
    if (session_user_stats(s))
        metrics_add(&session_user_stats(s)->failed_handshakes, 1);
    if (s->pstats)
        metrics_add(&s->pstats->failed_handshakes, 1);
    session_socks_reply(s, EACCES);
    target_text(&s->target, t, sizeof t);
    if (why == REFUSE_LOOP) {
        metrics_add(&w->stats->loops_refused, 1);
        log_event(&w->rl_refused,
                  "%s is this server's own listening address (a proxy loop), refused whatever "
                  "the policy says",
                  t);
    } else if (why == REFUSE_PRIVATE) {
        log_event(&w->rl_refused,
                  "%s is a private address, refused by block_private (set \"block_private\": "
                  "false to allow private targets)",
                  t);
    } else {
        log_event(&w->rl_refused,
                  "%s refused by the [outbound_block_list] of the acl file %s (remove its rule "
                  "to allow it)",
                  t, w->cfg->acl ? w->cfg->acl : "");
    }
    session_close(s);
}

/* The target (server role, or a bypassed target) or the server (local roles) could not be
 * reached: logged (rate-limited) with the reason, the SOCKS5 client told by the reply code, and
 * the client's connection closed at once. reason: a text instead of strerror(err), or NULL. */
static void session_connect_failed(struct session *s, int err, const char *reason)
{
    bool to_server = s->w->cfg->role != ROLE_SERVER && !s->direct;
    char t[300];

    if (to_server && session_failover(s, err, reason))
        return;
    log_event(&s->w->rl_connect, "%s %s: %s", to_server ? "server" : "target",
              target_text(&s->target, t, sizeof t), reason ? reason : strerror(err));
    session_socks_reply(s, err);
    session_close(s);
}

/* Local roles: the server for this session (upstream.h) becomes its target and protocol. */
static void session_use_upstream(struct session *s, int i)
{
    struct worker *w = s->w;

    s->upstream = i;
    s->upstreams_tried |= 1u << i;
    s->target = w->upstream_target[i];
    s->conn.ctx = &w->upstream_proto[i];
    s->addr_next = 0;
    s->connect_err = 0;
    metrics_add(&w->upstream_stats[i].connections, 1);
}

/* A server could not be reached: this worker skips it until its next probe result, and the
 * session tries the next server before the client hears of it. false: none is left. */
static bool session_failover(struct session *s, int err, const char *reason)
{
    struct worker *w = s->w;
    struct metrics_upstream *u = &w->upstream_stats[s->upstream];
    char t[300];

    if (w->nupstream < 2)
        return false;
    w->upstream_down[s->upstream] = metrics_read(&u->checks) + 1;
    metrics_add(&u->connect_failures, 1);
    int next = upstream_pick(w->upstream_stats, w->nupstream, w->cfg->balance_servers,
                             &w->upstream_rr, s->upstreams_tried, w->upstream_down);
    if (next < 0)
        return false;
    log_event(&w->rl_connect, "server %s: %s; trying the next server",
              target_text(&s->target, t, sizeof t), reason ? reason : strerror(err));
    if (s->query) { /* the resolver's deadline passed: its late answer is not wanted */
        resolve_cancel(s->query);
        s->query = NULL;
    }
    side_close(s, &s->remote);
    session_use_upstream(s, next);
    session_connect_begin(s);
    return true;
}

/* Tries the next resolved address; closes the session when none is left. */
static void connect_next(struct session *s)
{
    struct worker *w = s->w;
    unsigned flags = (w->cfg->no_delay ? NETADDR_NODELAY : 0) |
                     (w->cfg->fast_open ? NETADDR_FASTOPEN : 0);
    enum refusal refused = REFUSE_NONE;

    int count = s->addrs ? s->addrs->count : 1;
    while (s->addr_next < count) {
        /* an IP target is its own single address; a name has the resolver's list */
        struct sockaddr *sa = s->addrs ? (struct sockaddr *)&s->addrs->addr[s->addr_next]
                                       : (struct sockaddr *)&s->target.addr;
        socklen_t len = s->addrs ? s->addrs->len[s->addr_next] : s->target.addrlen;
        s->addr_next++;
        netaddr_set_port(sa, s->target.port);
        enum refusal r = address_refusal(s, sa);
        if (r != REFUSE_NONE) {
            refused = r;
            continue;
        }
        bool mptcp_refused = false;
        int fd = netaddr_connect_out(&w->cfg->outgoing, sa, len, flags, &mptcp_refused);
        if (mptcp_refused && !w->mptcp_warned) {
            w->mptcp_warned = true;
            log_warn("mptcp: this kernel has no Multipath TCP (or net.mptcp.enabled is 0); "
                     "connecting with plain TCP");
        }
        if (fd < 0) {
            s->connect_err = errno;
            continue;
        }
        side_init(s, &s->remote, fd, false);
        session_set_stage(s, STAGE_CONNECT);
        /* A peer that answers inside connect() (any on this host) has completed the handshake
         * by the time connect() returns EINPROGRESS. A second connect() tells at once
         * (EISCONN), and the relay starts in this same callback: no wait for writability, no
         * SO_ERROR, and the client's read watcher, stopped and started again before libev
         * next looks, costs no epoll_ctl. EALREADY: still connecting, wait as usual. */
        if (connect(fd, sa, len) == 0 || errno == EISCONN) {
            session_start_relay(s);
            return;
        }
        if (errno != EALREADY && errno != EINPROGRESS && errno != EINTR) {
            s->connect_err = errno;
            side_close(s, &s->remote); /* refused at once: the next address, if any */
            continue;
        }
        session_io_set(s, &s->remote.wio, true);
        return;
    }
    if (refused != REFUSE_NONE && s->connect_err == 0)
        session_refuse(s, refused);
    else
        session_connect_failed(s, s->connect_err ? s->connect_err : EHOSTUNREACH, NULL);
}

static void resolved_cb(void *arg, int status, const struct resolve_result *result)
{
    struct session *s = arg;
    s->query = NULL;
    if (status != 0) {
        session_connect_failed(s, ENOENT, "the name did not resolve");
        return;
    }
    *s->addrs = *result;
    s->addr_next = 0;
    connect_next(s);
}

/* Resolves s->target if needed and connects to it. */
void session_connect_target(struct session *s)
{
    if (s->stage == STAGE_CONNECT) { /* a retry after a failed or timed-out connect */
        connect_next(s);
        return;
    }
    session_connect_begin(s);
}

/* The first connect to s->target (or to the next server's): its name resolved first. */
static void session_connect_begin(struct session *s)
{
    if (s->target.addrlen) {
        s->addr_next = 0;
        connect_next(s);
        return;
    }
    if (s->w->cfg->role == ROLE_SERVER && acl_host_blocked(s->w->acl, s->target.host)) {
        session_refuse(s, REFUSE_ACL);
        return;
    }
    if (!s->addrs && !(s->addrs = malloc(sizeof *s->addrs))) {
        session_close(s);
        return;
    }
    session_set_stage(s, STAGE_RESOLVE);
    int r = resolve_lookup(s->w->resolver, s->target.host, s->addrs, resolved_cb, s, &s->query);
    if (r == 1) {
        s->addr_next = 0;
        connect_next(s);
    } else if (r < 0) {
        session_connect_failed(s, ENOENT, "the name did not resolve");
    }
}

static void connect_done(struct session *s)
{
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(s->remote.fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    if (err == EINPROGRESS || err == EALREADY)
        return;
    session_io_set(s, &s->remote.wio, false);
    if (err) {
        s->connect_err = err;
        side_close(s, &s->remote);
        connect_next(s);
        return;
    }
    session_start_relay(s);
}

/* Runs one pipe and acts on what it says. Returns -1 when the session was closed. */
static int pump(struct session *s, struct pipe *p, struct side *src, struct side *dst)
{
    const char *why = NULL;

    switch (relay_pipe_pump(s, p, src, dst, &why)) {
    case RELAY_PUMP_WAIT:
        return 0;
    case RELAY_PUMP_DONE:
        session_close(s);
        return -1;
    case RELAY_PUMP_ABORT:
        session_abort(s, why);
        return -1;
    }
    return 0;
}

static int pump_up(struct session *s)
{
    return pump(s, &s->up, &s->client, &s->remote);
}

static int pump_down(struct session *s)
{
    return pump(s, &s->down, &s->remote, &s->client);
}

/* The local roles' first flight: the target's address header followed by whatever the client
 * already sent (SOCKS5 data sent before our reply, in up.buf). */
static int prime_first_flight(struct session *s)
{
    struct pipe *p = &s->up;
    size_t early = p->buf ? buf_len(p->buf) : 0;
    struct buf *b = pipe_buf(s, p);

    if (!b)
        return -1;
    long n = s->conn.ctx->ops->seal_request(&s->conn, &p->pd, s->header, s->header_len,
                                            b->data + b->start, early, b->data, b->cap);
    if (n < 0)
        return -1;
    b->start = 0;
    b->end = (size_t)n;
    return 0;
}

static void session_start_relay(struct session *s)
{
    bool server = s->w->cfg->role == ROLE_SERVER;
    struct pipe *sealing = server ? &s->down : &s->up;

    /* A bypassed target is spoken to as the client speaks: no sealing either way. Any early
     * data the SOCKS5 client sent waits in up.buf and goes first. */
    s->up.plain = s->down.plain = s->direct;
    sealing->seal = !s->direct;
    if (!s->direct && (s->conn.ctx->ops->seal_begin(&s->conn, &sealing->pd) < 0 ||
                       (!server && prime_first_flight(s) < 0))) {
        session_close(s);
        return;
    }
    if (session_socks_reply(s, 0) < 0) {
        session_close(s);
        return;
    }
    free(s->addrs); /* connected: the other addresses are not needed any more */
    s->addrs = NULL;
    s->last_activity = ev_now(s->w->loop);
    session_set_stage(s, STAGE_RELAY);
    if (pump_up(s) < 0)
        return;
    pump_down(s);
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
        if (r == 0 && own_endpoint(s, (struct sockaddr *)&redir.addr)) {
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

static void session_handshake_read(struct session *s)
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

/* ---- event callbacks ---- */

static void client_read_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    struct session *s = io->data;
    (void)loop, (void)revents;
    switch (s->stage) {
    case STAGE_PROXY:
        session_proxy_read(s);
        break;
    case STAGE_HANDSHAKE:
        session_handshake_read(s);
        break;
    case STAGE_PROBE:
    case STAGE_UDP_HOLD:
        probe_on_read(s);
        break;
    case STAGE_RELAY:
        pump_up(s);
        break;
    default:
        session_io_set(s, io, false);
    }
}

/* The remote readable or the client writable: both move the remote->client pipe. */
static void down_ready_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    struct session *s = io->data;
    (void)loop, (void)revents;
    if (s->stage == STAGE_RELAY)
        pump_down(s);
    else
        session_io_set(s, io, false);
}

static void remote_write_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    struct session *s = io->data;
    (void)loop, (void)revents;
    if (s->stage == STAGE_CONNECT)
        connect_done(s);
    else if (s->stage == STAGE_RELAY)
        pump_up(s);
    else
        session_io_set(s, io, false);
}

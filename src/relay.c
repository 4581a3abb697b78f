/* relay.c: the one TCP session every role runs: its lifetime, stages and timers, and the two
 * pipes that move bytes between client and remote (relay_pipe.c runs them; this file acts on
 * what they report). How a session learns its target is relay_handshake.c; connecting to it,
 * relay_connect.c.
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
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "handshake_limit.h"
#include "relay.h"
#include "rp_assert.h"
#include "session.h"
#include "udp_relay.h"
#include "worker.h"

static void client_read_cb(struct ev_loop *loop, ev_io *io, int revents);
static void down_ready_cb(struct ev_loop *loop, ev_io *io, int revents);
static void remote_write_cb(struct ev_loop *loop, ev_io *io, int revents);
static void timer_cb(struct ev_loop *loop, ev_timer *t, int revents);

/* ---- watchers ---- */

void side_init(struct session *s, struct side *side, int fd, bool client)
{
    side->fd = fd;
    ev_io_init(&side->rio, client ? client_read_cb : down_ready_cb, fd, EV_READ);
    ev_io_init(&side->wio, client ? down_ready_cb : remote_write_cb, fd, EV_WRITE);
    side->rio.data = side->wio.data = s;
}

void side_close(struct session *s, struct side *side)
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
struct metrics_user *session_user_stats(const struct session *s)
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

void session_start_relay(struct session *s)
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
        session_connect_done(s);
    else if (s->stage == STAGE_RELAY)
        pump_up(s);
    else
        session_io_set(s, io, false);
}

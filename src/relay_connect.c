/* relay_connect.c: where a session connects and what happens when it cannot: the policy on the
 * target's addresses (block_private, the ACL, the server's own listening endpoints), resolving
 * a name, trying each address in turn, and for the local roles the servers' failover
 * (upstream.h). The one connected calls relay.c's session_start_relay(); the one refused or
 * unreachable is logged (rate-limited) with the reason and closed. */
#include "autoconfig.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "acl.h"
#include "relay_addrs.h"
#include "session.h"
#include "upstream.h"
#include "worker.h"

/* Seconds a worker trusts its list of local addresses (for wildcard listeners) before it reads
 * them again: an address added to an interface is refused as a target within this time. */
#define OWN_ADDRS_MAX_AGE 10.0

static void session_connect_begin(struct session *s);
static bool session_failover(struct session *s, int err, const char *reason);

/* "host:port" of the target for a log line, an IPv6 literal in brackets. */
static const char *target_text(const struct netaddr_target *t, char *buf, size_t len)
{
    snprintf(buf, len, strchr(t->host, ':') ? "[%s]:%u" : "%s:%u", t->host, (unsigned)t->port);
    return buf;
}

/* Whether sa is one of this process's own listening endpoints (relay_addrs.h). */
bool session_own_endpoint(struct session *s, const struct sockaddr *sa)
{
    if (!s->w->own_addrs)
        return false;
    relay_addrs_refresh(s->w->own_addrs, ev_now(s->w->loop), OWN_ADDRS_MAX_AGE);
    return relay_addrs_contains(s->w->own_addrs, sa);
}

static enum session_refusal address_refusal(struct session *s, const struct sockaddr *sa)
{
    const struct config *c = s->w->cfg;

    if (c->role != ROLE_SERVER) /* a bypassed name's addresses: [outbound_block_list] */
        return s->direct && s->w->acl && !acl_address_allowed(s->w->acl, sa) ? REFUSE_ACL
                                                                             : REFUSE_NONE;
    if (session_own_endpoint(s, sa))
        return REFUSE_LOOP;
    if (!s->w->acl || acl_address_allowed(s->w->acl, sa))
        return REFUSE_NONE;
    return c->block_private && acl_is_private(sa) ? REFUSE_PRIVATE : REFUSE_ACL;
}

/* An authenticated request for a target the policy refuses. The client holds the key, so
 * nothing here is a probe's business: it is told at once (closed, not left to the timeout),
 * and the log names the key that refused. Counted with the failed handshakes; at the local
 * port, answered (SOCKS5 2, SOCKS4 0x5B, HTTP 403) and counted with its other refusals. */
void session_refuse(struct session *s, enum session_refusal why)
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
void session_connect_failed(struct session *s, int err, const char *reason)
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
void session_use_upstream(struct session *s, int i)
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
    enum session_refusal refused = REFUSE_NONE;

    int count = s->addrs ? s->addrs->count : 1;
    while (s->addr_next < count) {
        /* an IP target is its own single address; a name has the resolver's list */
        struct sockaddr *sa = s->addrs ? (struct sockaddr *)&s->addrs->addr[s->addr_next]
                                       : (struct sockaddr *)&s->target.addr;
        socklen_t len = s->addrs ? s->addrs->len[s->addr_next] : s->target.addrlen;
        s->addr_next++;
        netaddr_set_port(sa, s->target.port);
        enum session_refusal r = address_refusal(s, sa);
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

void session_connect_done(struct session *s)
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

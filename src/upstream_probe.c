/* upstream_probe.c: the prober of the local roles' servers (upstream.h). Every
 * server_check_interval seconds each server gets one probe: a non-blocking TCP connect, timed
 * from connect() to its completion (shadowsocks-rust's ping balancer times a whole request
 * through the server to a web site; on a host that may not reach the internet, and to stay
 * harmless, the connect is what is timed here), then a first flight in the server's own method
 * and key, so the server sees a well-formed request, not a port scan. The results go into the
 * shared metrics block, where the workers read them.
 *
 * A probe leaves as the connections it stands for do: with the outgoing options (fwmark,
 * outbound_bind_interface, the source addresses; netaddr.h). On a router whose rules send all
 * unmarked TCP to the redir role, an unmarked probe would be caught by the redir itself and
 * answer for a server that is gone; bound elsewhere, it would test another path. */
#include "autoconfig.h"

#include <errno.h>
#include <stddef.h>
#include <ev.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "netaddr.h"
#include "proto.h"
#include "resolve.h"
#include "upstream.h"

struct probe {
    struct upstream_prober *p;
    int index;
    int fd; /* -1: no probe in flight */
    ev_io io;
    ev_timer deadline;
    ev_tstamp started;
    struct resolve_query *query;
    struct resolve_result addrs;
};

struct upstream_prober {
    struct ev_loop *loop;
    struct metrics_shared *m;
    /* copies of what the probes need, so a reload may free the configuration they came from */
    struct config_upstream ups[CONFIG_MAX_SERVERS];
    struct netaddr_outgoing out; /* the probes' and their DNS sockets' options */
    int n;
    double interval, timeout;
    struct resolver *resolver; /* for servers given by name; NULL when every one is an IP */
    ev_timer tick;
    struct probe probe[CONFIG_MAX_SERVERS];
};

static void probe_stop(struct probe *pr)
{
    struct ev_loop *loop = pr->p->loop;

    if (pr->query)
        resolve_cancel(pr->query);
    pr->query = NULL;
    ev_io_stop(loop, &pr->io);
    ev_timer_stop(loop, &pr->deadline);
    if (pr->fd >= 0)
        close(pr->fd);
    pr->fd = -1;
}

/* The connect's round trip: the kernel's own measure of the handshake (TCP_INFO's tcpi_rtt,
 * from the SYN to its SYN-ACK) when it has one, since the time until this loop noticed the
 * connect also counts whatever else the loop was doing (a master forking workers); else that
 * time. */
static uint64_t probe_latency_us(const struct probe *pr)
{
    struct tcp_info ti;
    socklen_t len = sizeof ti;

    if (pr->fd >= 0 && getsockopt(pr->fd, IPPROTO_TCP, TCP_INFO, &ti, &len) == 0 &&
        len >= offsetof(struct tcp_info, tcpi_rtt) + sizeof ti.tcpi_rtt && ti.tcpi_rtt > 0)
        return ti.tcpi_rtt;
    return (uint64_t)((ev_time() - pr->started) * 1e6) + 1;
}

/* One probe's answer into the shared block; a change of state is logged once. */
static void probe_result(struct probe *pr, bool ok, const char *why)
{
    struct metrics_upstream *u = &pr->p->m->upstream[pr->index];
    uint64_t was_up = metrics_read(&u->up), checks = metrics_read(&u->checks);
    char name[300];

    upstream_name(&pr->p->ups[pr->index], name, sizeof name);
    if (ok) {
        uint64_t lat = probe_latency_us(pr), old = u->latency_us;
        /* a moving average over about the last four probes: one slow answer is not a trend */
        __atomic_store_n(&u->latency_us, old ? (3 * old + lat) / 4 : lat, __ATOMIC_RELAXED);
        if (!was_up && checks > 0)
            log_info("server %s answers again (%.1f ms): in use", name, (double)lat / 1000);
    } else if (was_up || checks == 0) {
        log_warn("server %s does not answer its probe (%s): skipped until it does", name, why);
    }
    __atomic_store_n(&u->up, ok ? 1 : 0, __ATOMIC_RELAXED);
    __atomic_store_n(&u->checks, checks + 1, __ATOMIC_RELEASE);
    probe_stop(pr);
}

/* A request for 0.0.0.0 port 0 in the server's method: refused by a server's policy, or a
 * connect that fails at once, so nothing goes anywhere. */
static void probe_first_flight(struct probe *pr)
{
    static const uint8_t header[] = {NETADDR_ATYP_IPV4, 0, 0, 0, 0, 0, 0};
    const struct config_upstream *up = &pr->p->ups[pr->index];
    struct proto_ctx ctx = {.ops = proto_for_method(up->method), .keys = &up->key, .nkeys = 1};
    struct proto_conn conn = {.ctx = &ctx};
    struct proto_dir d;

    proto_dir_init(&d);
    if (ctx.ops && ctx.ops->seal_begin(&conn, &d) == 0) {
        uint8_t out[2048]; /* SIP022 pads a request without data up to 900 bytes */
        long n = ctx.ops->seal_request(&conn, &d, header, sizeof header, NULL, 0, out, sizeof out);
        if (n > 0 && write(pr->fd, out, (size_t)n) < 0)
            log_debug("probe: write: %s", strerror(errno));
    }
    proto_dir_free(&d);
}

static void probe_io_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    struct probe *pr = io->data;
    int err = 0;
    socklen_t len = sizeof err;

    (void)loop, (void)revents;
    if (getsockopt(pr->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    if (err == EINPROGRESS || err == EALREADY)
        return;
    if (err) {
        probe_result(pr, false, strerror(err));
        return;
    }
    probe_first_flight(pr);
    probe_result(pr, true, NULL);
}

static void probe_deadline_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop, (void)revents;
    probe_result(t->data, false, "no answer in time");
}

static void probe_connect(struct probe *pr, struct sockaddr *sa, socklen_t len)
{
    struct upstream_prober *p = pr->p;

    netaddr_set_port(sa, p->ups[pr->index].addr.target.port);
    pr->fd = netaddr_connect_out(&p->out, sa, len, 0, NULL);
    if (pr->fd < 0) {
        probe_result(pr, false, strerror(errno));
        return;
    }
    if (connect(pr->fd, sa, len) == 0 || errno == EISCONN) {
        probe_first_flight(pr);
        probe_result(pr, true, NULL);
        return;
    }
    if (errno != EINPROGRESS && errno != EALREADY && errno != EINTR) {
        probe_result(pr, false, strerror(errno));
        return;
    }
    ev_io_set(&pr->io, pr->fd, EV_WRITE);
    ev_io_start(p->loop, &pr->io);
}

static void probe_resolved_cb(void *arg, int status, const struct resolve_result *result)
{
    struct probe *pr = arg;

    pr->query = NULL;
    if (status != 0 || result->count < 1) {
        probe_result(pr, false, "the name did not resolve");
        return;
    }
    pr->addrs = *result;
    probe_connect(pr, (struct sockaddr *)&pr->addrs.addr[0], pr->addrs.len[0]);
}

static void probe_start(struct probe *pr)
{
    struct upstream_prober *p = pr->p;
    struct netaddr_target *t = &p->ups[pr->index].addr.target;

    pr->started = ev_time();
    ev_timer_set(&pr->deadline, p->timeout, 0.);
    ev_timer_start(p->loop, &pr->deadline);
    if (t->addrlen) {
        struct sockaddr_storage ss = t->addr;
        probe_connect(pr, (struct sockaddr *)&ss, t->addrlen);
        return;
    }
    int r = p->resolver ? resolve_lookup(p->resolver, t->host, &pr->addrs, probe_resolved_cb, pr,
                                         &pr->query)
                        : -1;
    if (r == 1)
        probe_connect(pr, (struct sockaddr *)&pr->addrs.addr[0], pr->addrs.len[0]);
    else if (r < 0)
        probe_result(pr, false, "the name did not resolve");
}

static void prober_tick_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct upstream_prober *p = t->data;

    (void)loop, (void)revents;
    for (int i = 0; i < p->n; i++)
        if (p->probe[i].fd < 0 && !p->probe[i].query)
            probe_start(&p->probe[i]);
}

/* Takes cfg's servers: the copies, the series' names (reset when the list changed), the
 * resolver for names, and a first round at once. */
static void prober_configure(struct upstream_prober *p, const struct config *cfg)
{
    const char *names[CONFIG_MAX_SERVERS];
    char buf[CONFIG_MAX_SERVERS][300];
    bool same = cfg->n_upstream == p->n, names_needed = false;

    for (int i = 0; i < p->n; i++)
        probe_stop(&p->probe[i]);
    for (int i = 0; i < cfg->n_upstream; i++) {
        names[i] = upstream_name(&cfg->upstreams[i], buf[i], sizeof buf[i]);
        same = same && strcmp(names[i], p->m->upstream[i].name) == 0;
        names_needed = names_needed || !cfg->upstreams[i].addr.target.addrlen;
    }
    /* several servers only: with one there is nothing to choose */
    p->n = cfg->n_upstream > 1 ? cfg->n_upstream : 0;
    memcpy(p->ups, cfg->upstreams, sizeof p->ups);
    p->out = cfg->outgoing;
    p->out.mptcp = false; /* a probe times a handshake; MPTCP's fallback would only add noise */
    p->interval = cfg->server_check_interval;
    p->timeout = cfg->connect_timeout < p->interval ? cfg->connect_timeout : p->interval;
    if (!same)
        metrics_set_upstreams(p->m, names, p->n);
    if (names_needed && !p->resolver) {
        char err[256];
        p->resolver = resolver_new_servers(p->loop, cfg->nameservers, cfg->n_nameserver,
                                           cfg->ipv6_first, err, sizeof err);
        if (!p->resolver)
            log_warn("server probes: resolver: %s; servers given by name count as down", err);
        else
            resolver_set_outgoing(p->resolver, &p->out);
    }
    ev_timer_stop(p->loop, &p->tick);
    if (p->n > 0) {
        ev_timer_set(&p->tick, 0., p->interval);
        ev_timer_start(p->loop, &p->tick);
    }
}

struct upstream_prober *upstream_prober_new(struct ev_loop *loop, const struct config *cfg,
                                            struct metrics_shared *m)
{
    struct upstream_prober *p = calloc(1, sizeof *p);

    if (!p) {
        log_error("server probes: out of memory");
        return NULL;
    }
    p->loop = loop;
    p->m = m;
    ev_timer_init(&p->tick, prober_tick_cb, 0., 0.);
    p->tick.data = p;
    for (int i = 0; i < CONFIG_MAX_SERVERS; i++) {
        struct probe *pr = &p->probe[i];
        pr->p = p;
        pr->index = i;
        pr->fd = -1;
        ev_io_init(&pr->io, probe_io_cb, -1, EV_WRITE);
        pr->io.data = pr;
        ev_timer_init(&pr->deadline, probe_deadline_cb, 0., 0.);
        pr->deadline.data = pr;
    }
    prober_configure(p, cfg);
    return p;
}

void upstream_prober_reconfigure(struct upstream_prober *p, const struct config *cfg)
{
    if (p)
        prober_configure(p, cfg);
}

void upstream_prober_free(struct upstream_prober *p)
{
    if (!p)
        return;
    for (int i = 0; i < p->n; i++)
        probe_stop(&p->probe[i]);
    ev_timer_stop(p->loop, &p->tick);
    if (p->resolver)
        resolver_free(p->resolver);
    crypto_wipe(p->ups, sizeof p->ups);
    free(p);
}

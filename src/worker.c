/* worker.c: one worker process. Builds its context from what the master handed it (sockets,
 * shared replay store and counters, config), runs its own libev loop until told to stop, then
 * drains: no new connections, open ones finish within drain_timeout. */
#include "autoconfig.h"

#include <errno.h>
#include <stddef.h>
#include <ev.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "acl.h"
#include "handshake_limit.h"
#include "listener.h"
#include "relay.h"
#include "relay_addrs.h"
#include "replay.h"
#include "resolve.h"
#include "rp_assert.h"
#include "shared_store.h"
#include "sockets.h"
#include "steer.h"
#include "udp_relay.h"
#include "upstream.h"
#include "worker.h"

/* Seconds a draining worker keeps its UDP associations for replies still on their way. */
#define UDP_DRAIN_LINGER 2.0

/* Per-process state the libev callbacks reach through their watcher's data pointer. */
struct worker_proc {
    struct worker w;
    ev_signal sigterm, sigint;
    ev_signal sighup, sigusr2; /* without a master only: logged as ignored */
    bool has_master;
    ev_timer drain_timer;
    ev_timer tick;           /* once a second: pending rate-limited summaries, drain check */
    ev_timer heartbeat;      /* stall_timeout_ms: the master's sign of life (steer.h) */
    ev_tstamp drain_started;
    /* The listening descriptors this worker was handed (TCP sockets, dispatch socket): closed
     * when it drains (worker_close_listening). */
    int listen_fds[WORKER_MAX_LISTEN + 1];
    int nlisten_fds;
};

/* The worker_proc holding w (container_of): worker_run allocates every worker inside one. */
static struct worker_proc *worker_proc_of(struct worker *w)
{
    return (struct worker_proc *)((char *)w - offsetof(struct worker_proc, w));
}

/* The typed values config_validate() derived: the master key, and for the local roles the
 * server and the tunnel's target. Nothing is parsed here. */
static void worker_targets(struct worker *w, const struct config *c)
{
    w->key = c->ports[0].key;
    if (c->role == ROLE_SERVER)
        return;
    /* One server: UDP speaks to it with its key (w->proto). Several: TCP chooses per
     * connection, UDP per association (udp_upstream.c), among upstream_target[] */
    w->key = c->upstreams[0].key;
    w->nupstream = c->plugin.plugin ? 1 : c->n_upstream;
    for (int i = 0; i < w->nupstream; i++) {
        w->upstream_target[i] =
            c->plugin.plugin ? c->plugin.local.target : c->upstreams[i].addr.target;
    }
    /* With a SIP003 plugin, TCP goes to the plugin's loopback port (plugin.h); UDP too only
     * when the plugin carries it ("plugin_mode": "tcp_and_udp"), else straight to the server
     * as libev does. */
    w->server = c->plugin.plugin ? c->plugin.local.target : c->upstream.target;
    w->udp_server = c->plugin.plugin && c->plugin.plugin_mode == CONFIG_PLUGIN_TCP_AND_UDP
                        ? c->plugin.local.target
                        : c->upstream.target;
    if (c->role == ROLE_TUNNEL)
        w->tunnel = c->tunnel.target;
}

/* Every port's protocol context, and its counters in this worker. */
static int worker_keys(struct worker *w, const struct worker_env *env)
{
    const struct config *c = env->cfg;

    /* room for the ports added live, so that no session's or relay's port ever moves */
    w->ports_cap = worker_ports_table_size(c);
    if (!(w->ports = calloc((size_t)w->ports_cap, sizeof *w->ports)))
        return -1;
    w->nports = c->n_port;
    w->port_stats = env->port_stats;
    for (int i = 0; i < c->n_port; i++) {
        int slot = c->ports[i].metrics_slot;
        w->ports[i].stats = env->port_stats && slot >= 0 ? &env->port_stats[slot] : NULL;
        if (worker_port_keys_init(w, &w->ports[i], &c->ports[i]) != 0)
            return -1;
    }
    return 0;
}

int worker_user_capacity(const struct config *c)
{
    /* Every user a server may have (CONFIG_MAX_USERS), however many reloads or Redis add: a
     * slot is 68 bytes, and 40 per worker, reserved for all but touched only as slots are
     * given out (metrics_users_sync), so the cost is address space, not memory: measured in
     * docs/CONFIG.md ("users"). A server without users at start has the room too: a reload
     * may give a port users (it replaces the workers, not the master's shared memory). */
    return c->role == ROLE_SERVER ? CONFIG_MAX_USERS : 0;
}

int worker_port_capacity(const struct config *c)
{
    /* Every port a server can have: ports added by reloads or the manager API, however many,
     * are counted. The cost is 40 bytes per slot and worker (and 4 per slot), reserved and
     * touched only as slots are used: 84 KiB of address space with 2 workers. */
    return c->role == ROLE_SERVER ? CONFIG_MAX_PORTS : 0;
}

void worker_user_slots(struct config *c, struct metrics_shared *m)
{
    int n = 0;
    for (int i = 0; i < c->n_port; i++)
        n += c->ports[i].n_users;
    const char **names = calloc((size_t)n + 1, sizeof *names);
    unsigned *ports = calloc((size_t)n + 1, sizeof *ports);
    int *slots = calloc((size_t)n + 1, sizeof *slots);
    uint16_t *numbers = calloc((size_t)c->n_port + 1, sizeof *numbers);
    int *port_slots = calloc((size_t)c->n_port + 1, sizeof *port_slots);

    if (m)
        m->port = c->server_port;
    if (names && ports && slots && numbers && port_slots && m) {
        int k = 0;
        for (int i = 0; i < c->n_port; i++)
            for (int u = 0; u < c->ports[i].n_users; u++, k++) {
                names[k] = c->ports[i].users[u].name;
                ports[k] = c->ports[i].port;
            }
        metrics_users_sync(m, names, ports, n, slots);
        k = 0;
        for (int i = 0; i < c->n_port; i++)
            for (int u = 0; u < c->ports[i].n_users; u++)
                c->ports[i].users[u].metrics_slot = slots[k++];
        for (int i = 0; c->role == ROLE_SERVER && i < c->n_port; i++)
            numbers[i] = c->ports[i].port;
        metrics_ports_sync(m, numbers, c->role == ROLE_SERVER ? c->n_port : 0, port_slots);
        for (int i = 0; i < c->n_port; i++)
            c->ports[i].metrics_slot = c->role == ROLE_SERVER ? port_slots[i] : -1;
    }
    free(names);
    free(ports);
    free(slots);
    free(numbers);
    free(port_slots);
}

void worker_env_sockets(struct worker_env *env, const struct socket_set *s, int slot,
                        enum config_balance balance)
{
    env->ntcp = env->nudp = 0;
    for (int a = 0; a < s->naddrs && a < WORKER_MAX_LISTEN; a++) {
        int tcp = balance == BALANCE_REUSEPORT ? s->tcp[slot][a]
                  : balance == BALANCE_SHARED  ? s->shared[a]
                                               : 0; /* dispatch: the master accepts */
        if (tcp > 0) {
            env->tcp_port[env->ntcp] = s->port[a];
            env->tcp[env->ntcp++] = tcp;
        }
        if (s->udp[slot][a] > 0) {
            env->udp_port[env->nudp] = s->port[a];
            env->udp[env->nudp++] = s->udp[slot][a];
        }
    }
    env->shared_accept = balance == BALANCE_SHARED;
}

/* Local roles: a protocol context per server (failover, upstream.h), each with its method and
 * key. The first server's is the file's, so it takes worker_keys()' set, identity keys
 * (SIP023 "iPSK:uPSK") included; the others have their one key. */
static int worker_upstream_protos(struct worker *w, const struct config *c)
{
    for (int i = 0; i < w->nupstream; i++) {
        const struct config_upstream *u = &c->upstreams[i];
        bool first = i == 0 && u->method == c->ports[0].method;
        struct proto_ctx *pc = &w->upstream_proto[i];
        *pc = (struct proto_ctx){.ops = proto_for_method(u->method),
                                 .keys = first ? w->ports[0].keys : &u->key,
                                 .nkeys = first ? w->ports[0].proto.nkeys : 1,
                                 .client = true,
                                 .replay = w->replay};
        if (!pc->ops || proto_ctx_init(pc) != 0) {
            pc->ops = NULL;
            log_error("server %d: no protocol for %s, or its keys cannot be set up", i + 1,
                      crypto_method_info(u->method)->name);
            return -1;
        }
    }
    return 0;
}

/* The resolver: the configured nameservers, or the system's resolv.conf. */
static struct resolver *worker_open_resolver(struct ev_loop *loop, const struct config *c,
                                             char *err, size_t errlen)
{
    struct resolver *r =
        resolver_new_servers(loop, c->nameservers, c->n_nameserver, c->ipv6_first, err, errlen);
    if (r)
        resolver_set_outgoing(r, &c->outgoing); /* fwmark and the rest on DNS sockets too */
    return r;
}

/* The address policy: a server's limits (block_private) and, in any role, the acl file's rules
 * (a client's routes: bypass or proxy). *out stays NULL when the role needs none. */
static int worker_open_acl(const struct config *c, struct acl **out, char *err, size_t errlen)
{
    *out = NULL;
    if (c->role != ROLE_SERVER && !c->acl)
        return 0;
    struct acl *a = acl_new(c->role == ROLE_SERVER && c->block_private);
    if (!a) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (c->acl && acl_load_file(a, c->acl, err, errlen) < 0) {
        acl_free(a);
        return -1;
    }
    *out = a;
    return 0;
}

int worker_preflight(const struct config *c, char *err, size_t errlen)
{
    char why[512];
    struct acl *a;

    for (int i = 0; i < c->n_port; i++) /* each port has its own method */
        if (!proto_for_method(c->ports[i].method)) {
            snprintf(err, errlen, "no protocol for %s (port %u)",
                     crypto_method_info(c->ports[i].method)->name, c->ports[i].port);
            return -1;
        }
    for (int i = 0; i < c->n_upstream; i++) /* each server has its own method */
        if (!proto_for_method(c->upstreams[i].method)) {
            snprintf(err, errlen, "no protocol for %s (server %d)",
                     crypto_method_info(c->upstreams[i].method)->name, i + 1);
            return -1;
        }
    if (worker_open_acl(c, &a, why, sizeof why) < 0) {
        snprintf(err, errlen, "acl: %s", why);
        return -1;
    }
    acl_free(a);
    struct ev_loop *loop = ev_loop_new(EVFLAG_NOENV);
    struct resolver *r = loop ? worker_open_resolver(loop, c, why, sizeof why) : NULL;
    if (!r)
        snprintf(err, errlen, "resolver: %s", loop ? why : "cannot create an event loop");
    else
        resolver_free(r);
    if (loop)
        ev_loop_destroy(loop);
    return r ? 0 : -1;
}

/* The server's (or the redir role's) own listening endpoints, which relay.c refuses as targets
 * (a proxy loop): from the sockets this worker accepts on, or (dispatch: it has none) the
 * configured addresses. */
static int worker_own_addrs(struct worker *w, const struct worker_env *env)
{
    const struct config *c = env->cfg;

    if (!(w->own_addrs = relay_addrs_new()))
        return -1;
    for (int i = 0; i < env->ntcp; i++)
        relay_addrs_add_socket(w->own_addrs, env->tcp[i]);
    for (int i = 0; env->ntcp == 0 && i < c->n_listen; i++)
        if (c->listen[i].target.addrlen)
            relay_addrs_add_listener(w->own_addrs, (struct sockaddr *)&c->listen[i].target.addr);
    relay_addrs_refresh(w->own_addrs, ev_now(w->loop), 0);
    return 0;
}

static int worker_init(struct worker *w, const struct worker_env *env)
{
    const struct config *c = env->cfg;
    char err[256];

    w->cfg = c;
    w->slot = env->slot;
    w->replay = env->replay;
    replay_prefault(w->replay); /* no page fault per salt while the store warms up */
    w->stats = env->stats;
    w->user_stats = env->user_stats;
    w->rl_handshake = (struct log_ratelimit)LOG_RATELIMIT_INIT("failed handshakes",
                                                               LOG_LEVEL_WARN, 10.0);
    w->rl_accept = (struct log_ratelimit)LOG_RATELIMIT_INIT("accept errors", LOG_LEVEL_WARN, 10.0);
    w->rl_udp = (struct log_ratelimit)LOG_RATELIMIT_INIT("dropped datagrams", LOG_LEVEL_INFO, 10.0);
    w->rl_connect = (struct log_ratelimit)LOG_RATELIMIT_INIT("outbound connect failed",
                                                             LOG_LEVEL_WARN, 10.0);
    w->rl_refused = (struct log_ratelimit)LOG_RATELIMIT_INIT("target refused", LOG_LEVEL_WARN,
                                                             10.0);
    w->rl_shared = (struct log_ratelimit)LOG_RATELIMIT_INIT("shared_store", LOG_LEVEL_WARN, 10.0);
    buf_pool_init(&w->pool, RELAY_BUF_CAP, 64);
    buf_pool_init(&w->bulk_pool, RELAY_BULK_CAP, 4);
    buf_pool_init(&w->stall_pool, RELAY_STALL_CAP, 64);
    RP_ASSERT(c->n_port >= 1 && (c->role == ROLE_SERVER || c->upstream.target.port != 0));
    RP_ASSERT(c->role == ROLE_SERVER || c->n_port == 1);
    RP_ASSERT(c->role == ROLE_SERVER || c->n_upstream >= 1);
    worker_targets(w, c);
    /* the shared probe results, whoever probes (the master, or this process: workers 0) */
    w->upstream_stats = env->shared && env->shared->nupstreams == w->nupstream
                            ? env->shared->upstream
                            : w->upstream_local;
    if (env->run_prober && env->shared && c->role != ROLE_SERVER && w->nupstream > 1) {
        if (!(w->prober = upstream_prober_new(w->loop, c, env->shared)))
            return -1;
        w->upstream_stats = env->shared->upstream;
    }
    if (worker_keys(w, env) != 0 || worker_upstream_protos(w, c) != 0)
        return -1;
    w->resolver = worker_open_resolver(w->loop, c, err, sizeof err);
    if (!w->resolver) {
        log_error("resolver: %s", err);
        return -1;
    }
    if (worker_open_acl(c, &w->acl, err, sizeof err) < 0) {
        log_error("acl: %s", err);
        return -1;
    }
    if (c->max_handshakes_per_source > 0) {
        w->hs_limit = malloc(sizeof *w->hs_limit);
        if (!w->hs_limit ||
            handshake_limit_init(w->hs_limit, (unsigned)c->max_handshakes_per_source) < 0) {
            free(w->hs_limit);
            w->hs_limit = NULL;
            log_error("max_handshakes_per_source: out of memory or randomness");
            return -1;
        }
    }
    /* the users' totals: pushed by the master, or with workers: 0 by this process */
    if (c->role == ROLE_SERVER && c->shared.url &&
        !(w->shared = shared_store_new(w->loop, &c->shared, w->stats, c->ports[0].port,
                                       env->parent_fd < 0 ? env->shared : NULL)))
        return -1;
    if ((c->role == ROLE_SERVER || c->role == ROLE_REDIR) && worker_own_addrs(w, env) < 0) {
        log_error("out of memory");
        return -1;
    }
    enum listener_kind kind = env->shared_accept ? LISTENER_SHARED : LISTENER_REUSEPORT;
    w->shared_accept = env->shared_accept;
    for (int i = 0; i < env->ntcp && w->nlisteners < WORKER_MAX_LISTEN; i++)
        if ((w->listeners[w->nlisteners] = listener_new(w, env->tcp[i], kind, env->tcp_port[i])))
            w->nlisteners++;
    /* dispatch: each connection's port is found from its local address (listener.c) */
    if (env->dispatch_fd >= 0 && w->nlisteners < WORKER_MAX_LISTEN)
        if ((w->listeners[w->nlisteners] =
                 listener_new(w, env->dispatch_fd, LISTENER_DISPATCH, -1)))
            w->nlisteners++;
    for (int i = 0; i < env->nudp && w->nudp < WORKER_MAX_LISTEN; i++)
        if ((w->udp[w->nudp] = udp_relay_new(w, env->udp[i], env->nudp, env->udp_port[i])))
            w->nudp++;
    if (w->nlisteners == 0 && w->nudp == 0) {
        log_error("worker %d has nothing to serve", env->slot);
        return -1;
    }
    return 0;
}

static void worker_cleanup(struct worker *w)
{
    relay_close_all(w);
    shared_store_free(w->shared); /* after the sessions: none waits for a claim */
    for (int i = 0; i < w->nudp; i++)
        udp_relay_free(w->udp[i]);
    for (int i = 0; i < w->nlisteners; i++)
        listener_free(w->listeners[i]);
    upstream_prober_free(w->prober);
    if (w->resolver)
        resolver_free(w->resolver);
    if (w->acl)
        acl_free(w->acl);
    if (w->hs_limit) { /* after relay_close_all(): every session has left it */
        RP_ASSERT(handshake_limit_sources(w->hs_limit) == 0);
        handshake_limit_destroy(w->hs_limit);
        free(w->hs_limit);
    }
    relay_addrs_free(w->own_addrs);
    buf_pool_destroy(&w->pool);
    buf_pool_destroy(&w->bulk_pool);
    buf_pool_destroy(&w->stall_pool);
    for (int i = 0; i < w->nupstream; i++)
        proto_ctx_free(&w->upstream_proto[i]);
    worker_live_free(w);
    worker_ports_free(w);
    worker_keys_free(w);
}

/* A draining worker is done when its TCP sessions are, and its UDP associations have expired
 * or had UDP_DRAIN_LINGER seconds (at most drain_timeout) to pass on late replies. */
static bool worker_drained(struct worker_proc *wp)
{
    struct worker *w = &wp->w;
    size_t assocs = 0;
    for (int i = 0; i < w->nudp; i++)
        assocs += udp_relay_associations(w->udp[i]);
    double linger = w->cfg->drain_timeout < UDP_DRAIN_LINGER ? w->cfg->drain_timeout
                                                             : UDP_DRAIN_LINGER;
    return w->nsessions == 0 &&
           (assocs == 0 || ev_now(w->loop) - wp->drain_started >= linger);
}

static void drain_timer_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct worker *w = t->data;
    (void)revents;
    if (w->nsessions)
        log_info("drain timeout: closing %u connections", w->nsessions);
    ev_break(loop, EVBREAK_ALL);
}

/* A draining worker gives its listening descriptors up. While the master lives it holds every
 * listening socket too, so this changes nothing for the SO_REUSEPORT group. When the master is
 * dead (killed; the workers are orphans draining on PR_SET_PDEATHSIG), these are the last
 * descriptors of the sockets: closing them takes them out of the group, and new connections
 * are refused at once instead of being queued to a worker that no longer accepts and left to
 * hang until its drain ends (issue 13 item 16). */
static void worker_close_listening(struct worker_proc *wp)
{
    for (int i = 0; i < wp->nlisten_fds; i++)
        close(wp->listen_fds[i]);
    wp->nlisten_fds = 0;
}

int worker_serve_fd(struct worker *w, int fd, int port, bool udp)
{
    struct worker_proc *wp = worker_proc_of(w);
    enum listener_kind kind = w->shared_accept ? LISTENER_SHARED : LISTENER_REUSEPORT;

    if (udp && w->nudp < WORKER_MAX_LISTEN && (w->udp[w->nudp] = udp_relay_new(w, fd, w->nudp + 1, port))) {
        w->nudp++;
        return 0;
    }
    if (!udp && w->nlisteners < WORKER_MAX_LISTEN && wp->nlisten_fds < WORKER_MAX_LISTEN &&
        (w->listeners[w->nlisteners] = listener_new(w, fd, kind, port))) {
        w->nlisteners++;
        wp->listen_fds[wp->nlisten_fds++] = fd;
        if (w->own_addrs)
            relay_addrs_add_socket(w->own_addrs, fd);
        return 0;
    }
    close(fd);
    return -1;
}

void worker_unserve_port(struct worker *w, int port)
{
    struct worker_proc *wp = worker_proc_of(w);

    for (int i = 0; i < w->nlisteners;) {
        int fd = listener_fd(w->listeners[i]);
        if (listener_port(w->listeners[i]) != port) {
            i++;
            continue;
        }
        listener_free(w->listeners[i]);
        w->listeners[i] = w->listeners[--w->nlisteners];
        for (int k = 0; k < wp->nlisten_fds; k++)
            if (wp->listen_fds[k] == fd) {
                close(fd);
                wp->listen_fds[k] = wp->listen_fds[--wp->nlisten_fds];
                break;
            }
    }
    for (int i = 0; i < w->nudp;) {
        if (udp_relay_port(w->udp[i]) != &w->ports[port]) {
            i++;
            continue;
        }
        int fd = udp_relay_fd(w->udp[i]);
        udp_relay_free(w->udp[i]);
        close(fd);
        w->udp[i] = w->udp[--w->nudp];
    }
}

void worker_drain(struct worker *w)
{
    struct worker_proc *wp = worker_proc_of(w);
    if (!w->draining) {
        w->draining = true;
        for (int i = 0; i < w->nlisteners; i++)
            listener_stop(w->listeners[i]);
        worker_close_listening(wp);
        /* UDP: the next worker on this slot reads the socket from now on; associations stay a
         * little (worker_drained) so replies already on their way still reach their clients. */
        for (int i = 0; i < w->nudp; i++)
            udp_relay_stop_reading(w->udp[i]);
        wp->drain_started = ev_now(w->loop);
        /* failed handshakes would only hold the drain up */
        relay_close_probes(w);
        ev_timer_init(&wp->drain_timer, drain_timer_cb, w->cfg->drain_timeout, 0.);
        wp->drain_timer.data = w;
        ev_timer_start(w->loop, &wp->drain_timer);
    }
    if (worker_drained(wp))
        ev_break(w->loop, EVBREAK_ALL);
}

static void tick_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct worker *w = t->data;
    (void)loop, (void)revents;
    log_event_poll(&w->rl_handshake);
    log_event_poll(&w->rl_accept);
    log_event_poll(&w->rl_udp);
    log_event_poll(&w->rl_connect);
    log_event_poll(&w->rl_refused);
    relay_release_idle(w);
    worker_live_tick(w);
    if (w->draining && worker_drained(worker_proc_of(w)))
        ev_break(loop, EVBREAK_ALL);
}

/* The master takes a slot whose heartbeat is older than stall_timeout_ms out of the kernel's
 * choice (steer.h). A draining worker no longer serves its slot: the next one stamps. */
static void heartbeat_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct worker *w = t->data;
    (void)loop, (void)revents;
    if (!w->draining)
        steer_heartbeat(w->stats);
}

/* relay.c's hook: the last session of a draining worker closed. */
static void sessions_done(void *ctx)
{
    worker_drain(ctx);
}

static void signal_cb(struct ev_loop *loop, ev_signal *sig, int revents)
{
    struct worker *w = sig->data;
    struct worker_proc *wp = worker_proc_of(w);
    (void)loop, (void)revents;
    /* a master logs its own stop; a single process (workers: 0) says it here */
    if (!wp->has_master && !w->draining)
        log_info("signal %d: stopping; connections in progress may finish within %d s",
                 sig->signum, w->cfg->drain_timeout);
    worker_drain(w);
}

/* workers: 0: no master to reload or upgrade. Say so rather than ignore the signal silently. */
static void ignored_signal_cb(struct ev_loop *loop, ev_signal *sig, int revents)
{
    (void)loop, (void)revents;
    log_warn("%s ignored: with workers: 0 there is no master to %s; restart the process instead",
             sig->signum == SIGHUP ? "SIGHUP" : "SIGUSR2",
             sig->signum == SIGHUP ? "reload the configuration" : "run a binary upgrade");
}

/* "user": as nginx's workers do, a worker started as root gives root up once its sockets, ACL
 * and resolver files are open. The master stays root, to start replacements on the same
 * sockets and to reload. A change of credentials clears the parent-death signal, so it is set
 * again. Started as anyone else, the process runs as that user (main() said so once). */
int worker_drop_privileges(const char *user, bool has_parent)
{
    uid_t uid;
    gid_t gid;

    if (!user || geteuid() != 0)
        return 0;
    if (config_user_ids(user, &uid, &gid) != 0) {
        log_error("user %s: no such user", user);
        return -1;
    }
    if (uid == 0)
        return 0;
    if (setgroups(1, &gid) < 0 || setgid(gid) < 0 || setuid(uid) < 0) {
        log_error("cannot switch to user %s: %s", user, strerror(errno));
        return -1;
    }
    if (has_parent)
        prctl(PR_SET_PDEATHSIG, SIGTERM);
    return 0;
}

/* Test hook, for tests/integration/test_master_failure.py only: when $REUSEPROXY_TEST_WORKER_HOOK
 * names a file that exists, a starting worker reads it: "fail" exits with status 1 before it is
 * ready, "hang" waits 60 s before it goes on. A test creates the file before a SIGHUP to make
 * only that reload's workers fail. Without the variable (any real use) it does nothing. */
static int worker_test_hook(void)
{
    const char *path = getenv("REUSEPROXY_TEST_WORKER_HOOK");
    char what[8] = "";
    FILE *f = path ? fopen(path, "r") : NULL;

    if (!f)
        return 0;
    if (!fgets(what, sizeof what, f))
        what[0] = '\0';
    fclose(f);
    if (strncmp(what, "fail", 4) == 0) {
        log_error("test hook %s: failing", path);
        return -1;
    }
    if (strncmp(what, "hang", 4) == 0) {
        log_warn("test hook %s: hanging for 60 s", path); /* the test waits for this line */
        sleep(60);
    }
    return 0;
}

int worker_run(const struct worker_env *env)
{
    if (worker_test_hook() < 0)
        return 1;

    struct worker_proc *wp = calloc(1, sizeof *wp);
    struct worker *w = &wp->w;
    int status = 1;

    if (!wp)
        return 1;
    /* The worker exits when its master dies; the master then is gone and cannot drain us. */
    if (env->parent_fd >= 0)
        prctl(PR_SET_PDEATHSIG, SIGTERM);
    LIST_INIT(&w->sessions);
    w->on_sessions_done = sessions_done;
    w->on_sessions_done_ctx = w;
    w->loop = ev_loop_new(EVBACKEND_EPOLL | EVFLAG_NOENV);
    if (!w->loop) {
        free(wp);
        return 1;
    }
    ev_signal_init(&wp->sigterm, signal_cb, SIGTERM);
    ev_signal_init(&wp->sigint, signal_cb, SIGINT);
    wp->sigterm.data = wp->sigint.data = w;
    ev_signal_start(w->loop, &wp->sigterm);
    ev_signal_start(w->loop, &wp->sigint);
    wp->has_master = env->parent_fd >= 0;
    if (!wp->has_master) {
        ev_signal_init(&wp->sighup, ignored_signal_cb, SIGHUP);
        ev_signal_init(&wp->sigusr2, ignored_signal_cb, SIGUSR2);
        ev_signal_start(w->loop, &wp->sighup);
        ev_signal_start(w->loop, &wp->sigusr2);
        /* single.c blocked them until their watchers run; one already pending arrives now */
        sigset_t held;
        sigemptyset(&held);
        sigaddset(&held, SIGHUP);
        sigaddset(&held, SIGUSR2);
        sigprocmask(SIG_UNBLOCK, &held, NULL);
    }

    ev_timer_init(&wp->tick, tick_cb, 1.0, 1.0);
    wp->tick.data = w;
    ev_timer_start(w->loop, &wp->tick);
    ev_unref(w->loop); /* the tick alone does not keep the loop running */
    if (wp->has_master && env->cfg->stall_timeout_ms > 0) {
        double iv = steer_heartbeat_interval(env->cfg->stall_timeout_ms);
        steer_heartbeat(env->stats);
        ev_timer_init(&wp->heartbeat, heartbeat_cb, iv, iv);
        wp->heartbeat.data = w;
        ev_timer_start(w->loop, &wp->heartbeat);
        ev_unref(w->loop);
    }

    for (int i = 0; i < env->ntcp && wp->nlisten_fds < WORKER_MAX_LISTEN; i++)
        wp->listen_fds[wp->nlisten_fds++] = env->tcp[i];
    if (env->dispatch_fd >= 0)
        wp->listen_fds[wp->nlisten_fds++] = env->dispatch_fd;
    int control_fd = env->control_fd;
    if (worker_init(w, env) == 0 && worker_live_start(w, control_fd) == 0 &&
        worker_drop_privileges(env->cfg->user, env->parent_fd >= 0) == 0) {
        if (env->ready_fd >= 0) {
            char one = 'R';
            if (write(env->ready_fd, &one, 1) != 1)
                log_warn("cannot tell the master this worker is ready");
            close(env->ready_fd);
        }
        log_debug("worker %d accepting", env->slot);
        /* The master died before PR_SET_PDEATHSIG was (re)armed: an orphan from the start. */
        if (env->master_pid > 0 && getppid() != env->master_pid)
            worker_drain(w);
        ev_run(w->loop, 0);
        status = 0;
    }
    log_event_flush(&w->rl_handshake);
    log_event_flush(&w->rl_accept);
    log_event_flush(&w->rl_udp);
    log_event_flush(&w->rl_connect);
    log_event_flush(&w->rl_refused);
    log_event_flush(&w->rl_shared);
    worker_cleanup(w);
    worker_close_listening(wp); /* if it never drained */
    ev_loop_destroy(w->loop);
    free(wp);
    return status;
}

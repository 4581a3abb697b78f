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
#include "listener.h"
#include "relay.h"
#include "resolve.h"
#include "rp_assert.h"
#include "udp_relay.h"
#include "worker.h"

/* Seconds a draining worker keeps its UDP associations for replies still on their way. */
#define UDP_DRAIN_LINGER 2.0

/* Per-process state the libev callbacks reach through their watcher's data pointer. */
struct worker_proc {
    struct worker w;
    ev_signal sigterm, sigint;
    ev_timer drain_timer;
    ev_timer tick;           /* once a second: pending rate-limited summaries, drain check */
    ev_tstamp drain_started;
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
    w->server = c->upstream.target;
    if (c->role == ROLE_TUNNEL)
        w->tunnel = c->tunnel.target;
}

/* The protocol's key set from ports[0] (see struct proto_ctx): a server's PSK then its users'
 * keys, or a client's identity keys then its key. */
static int worker_keys(struct worker *w, const struct config *c)
{
    const struct config_port *p = &c->ports[0];
    bool client = c->role != ROLE_SERVER;
    size_t n = 1 + (size_t)(client ? p->n_identity_keys : p->n_users);

    w->keys = calloc(n, sizeof *w->keys);
    w->key_names = calloc(n, sizeof *w->key_names);
    if (!w->keys || !w->key_names)
        return -1;
    if (client) {
        for (int i = 0; i < p->n_identity_keys; i++)
            w->keys[i] = p->identity_keys[i];
        w->keys[n - 1] = p->key;
    } else {
        w->keys[0] = p->key;
        for (int i = 0; i < p->n_users; i++) {
            w->keys[1 + i] = p->users[i].key;
            w->key_names[1 + i] = p->users[i].name;
        }
    }
    w->proto = (struct proto_ctx){.ops = proto_for_method(p->method),
                                  .keys = w->keys,
                                  .nkeys = n,
                                  .names = w->key_names,
                                  .client = client,
                                  .replay = w->replay};
    if (!w->proto.ops) {
        log_error("no protocol for %s", crypto_method_info(p->method)->name);
        return -1;
    }
    if (proto_ctx_init(&w->proto) != 0) {
        log_error("%s: cannot set up the keys", crypto_method_info(p->method)->name);
        return -1;
    }
    return 0;
}

static void worker_keys_free(struct worker *w)
{
    proto_ctx_free(&w->proto);
    if (w->keys)
        crypto_wipe(w->keys, w->proto.nkeys * sizeof *w->keys);
    free(w->keys);
    free(w->key_names);
    w->keys = NULL;
    w->key_names = NULL;
}

static int worker_init(struct worker *w, const struct worker_env *env)
{
    const struct config *c = env->cfg;
    char err[256];

    w->cfg = c;
    w->slot = env->slot;
    w->replay = env->replay;
    w->stats = env->stats;
    w->rl_handshake = (struct log_ratelimit)LOG_RATELIMIT_INIT("failed handshakes",
                                                               LOG_LEVEL_WARN, 10.0);
    w->rl_accept = (struct log_ratelimit)LOG_RATELIMIT_INIT("accept errors", LOG_LEVEL_WARN, 10.0);
    w->rl_udp = (struct log_ratelimit)LOG_RATELIMIT_INIT("dropped datagrams", LOG_LEVEL_INFO, 10.0);
    buf_pool_init(&w->pool, RELAY_BUF_CAP, 64);
    buf_pool_init(&w->bulk_pool, RELAY_BULK_CAP, 4);
    RP_ASSERT(c->n_port == 1 && (c->role == ROLE_SERVER || c->upstream.target.port != 0));
    worker_targets(w, c);
    if (worker_keys(w, c) != 0)
        return -1;
    w->resolver = resolver_new_servers(w->loop, c->nameservers, c->n_nameserver, c->ipv6_first, err,
                                       sizeof err);
    if (!w->resolver) {
        log_error("resolver: %s", err);
        return -1;
    }
    if (c->role == ROLE_SERVER || c->acl) { /* a client's ACL routes: bypass or proxy */
        w->acl = acl_new(c->role == ROLE_SERVER && c->block_private);
        if (!w->acl || (c->acl && acl_load_file(w->acl, c->acl, err, sizeof err) < 0)) {
            log_error("acl: %s", w->acl ? err : "out of memory");
            return -1;
        }
    }
    enum listener_kind kind = env->shared_accept ? LISTENER_SHARED : LISTENER_REUSEPORT;
    for (int i = 0; i < env->ntcp && w->nlisteners < WORKER_MAX_LISTEN; i++)
        if ((w->listeners[w->nlisteners] = listener_new(w, env->tcp[i], kind)))
            w->nlisteners++;
    if (env->dispatch_fd >= 0 && w->nlisteners < WORKER_MAX_LISTEN)
        if ((w->listeners[w->nlisteners] = listener_new(w, env->dispatch_fd, LISTENER_DISPATCH)))
            w->nlisteners++;
    for (int i = 0; i < env->nudp && w->nudp < WORKER_MAX_LISTEN; i++)
        if ((w->udp[w->nudp] = udp_relay_new(w, env->udp[i])))
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
    for (int i = 0; i < w->nudp; i++)
        udp_relay_free(w->udp[i]);
    for (int i = 0; i < w->nlisteners; i++)
        listener_free(w->listeners[i]);
    if (w->resolver)
        resolver_free(w->resolver);
    if (w->acl)
        acl_free(w->acl);
    buf_pool_destroy(&w->pool);
    buf_pool_destroy(&w->bulk_pool);
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

void worker_drain(struct worker *w)
{
    struct worker_proc *wp = worker_proc_of(w);
    if (!w->draining) {
        w->draining = true;
        for (int i = 0; i < w->nlisteners; i++)
            listener_stop(w->listeners[i]);
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
    if (w->draining && worker_drained(worker_proc_of(w)))
        ev_break(loop, EVBREAK_ALL);
}

/* relay.c's hook: the last session of a draining worker closed. */
static void sessions_done(void *ctx)
{
    worker_drain(ctx);
}

static void signal_cb(struct ev_loop *loop, ev_signal *sig, int revents)
{
    struct worker *w = sig->data;
    (void)loop, (void)revents;
    worker_drain(w);
}

/* "user": as nginx's workers do, a worker started as root gives root up once its sockets, ACL
 * and resolver files are open. The master stays root, to start replacements on the same
 * sockets and to reload. A change of credentials clears the parent-death signal, so it is set
 * again. Started as anyone else, the process runs as that user (main() said so once). */
static int worker_drop_privileges(const struct config *c, bool has_parent)
{
    uid_t uid;
    gid_t gid;

    if (!c->user || geteuid() != 0)
        return 0;
    if (config_user_ids(c->user, &uid, &gid) != 0) {
        log_error("user %s: no such user", c->user);
        return -1;
    }
    if (uid == 0)
        return 0;
    if (setgroups(1, &gid) < 0 || setgid(gid) < 0 || setuid(uid) < 0) {
        log_error("cannot switch to user %s: %s", c->user, strerror(errno));
        return -1;
    }
    if (has_parent)
        prctl(PR_SET_PDEATHSIG, SIGTERM);
    return 0;
}

int worker_run(const struct worker_env *env)
{
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

    ev_timer_init(&wp->tick, tick_cb, 1.0, 1.0);
    wp->tick.data = w;
    ev_timer_start(w->loop, &wp->tick);
    ev_unref(w->loop); /* the tick alone does not keep the loop running */

    if (worker_init(w, env) == 0 && worker_drop_privileges(env->cfg, env->parent_fd >= 0) == 0) {
        if (env->ready_fd >= 0) {
            char one = 'R';
            if (write(env->ready_fd, &one, 1) != 1)
                log_warn("cannot tell the master this worker is ready");
            close(env->ready_fd);
        }
        log_debug("worker %d accepting", env->slot);
        ev_run(w->loop, 0);
        status = 0;
    }
    log_event_flush(&w->rl_handshake);
    log_event_flush(&w->rl_accept);
    log_event_flush(&w->rl_udp);
    worker_cleanup(w);
    ev_loop_destroy(w->loop);
    free(wp);
    return status;
}

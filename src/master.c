/* master.c: the process model (see master.h).
 *
 * Why the master keeps every socket: the listening sockets of the SO_REUSEPORT group live in
 * the master, and each worker only borrows its slot's. When a worker dies, its socket stays in
 * the group with its accept queue intact, so connections the kernel already hashed to that slot
 * wait for the replacement instead of being reset, and UDP flows keep hashing to the same slot.
 * (Once its heartbeat is older than stall_timeout_ms, steer.c sends the slot's new connections
 * and datagrams to the others until a worker runs in it again; see steer.h.)
 * A reload starts the new worker on the same socket before the old one stops accepting, and a
 * binary upgrade hands the very same descriptors to the new master: nothing is ever re-bound,
 * so nothing is ever refused.
 *
 * This file sets the master up and answers its signals: reload requests (checked here, applied
 * by supervise.c, which owns the workers), stop, binary upgrade (upgrade.c).
 *
 * Signals reach the loop through a self-pipe; the flags below are the only globals. */
#include "autoconfig.h"

#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <syslog.h>
#include <unistd.h>

#include "listener.h"
#include "log.h"
#include "manager.h"
#include "master.h"
#include "master_private.h"
#include "metrics.h"
#include "metrics_http.h"
#include "netaddr.h"
#include "plugin.h"
#include "upstream.h"
#include "replay.h"
#include "rp_assert.h"
#include "sdnotify.h"
#include "shared_store.h"
#include "sockets.h"
#include "steer.h"
#include "upgrade.h"
#include "worker.h"

static volatile sig_atomic_t sig_hup, sig_term, sig_usr2, sig_chld;
static int sig_pipe[2] = {-1, -1};

/* ---- signals ---- */

static void on_signal(int sig)
{
    int saved = errno;
    if (sig == SIGHUP)
        sig_hup = 1;
    else if (sig == SIGUSR2)
        sig_usr2 = 1;
    else if (sig == SIGCHLD)
        sig_chld = 1;
    else
        sig_term = 1;
    if (sig_pipe[1] >= 0 && write(sig_pipe[1], "", 1) < 0) {
        /* the pipe is full: the loop will see the flags anyway */
    }
    errno = saved;
}

static int signals_install(void)
{
    struct sigaction sa = {.sa_handler = on_signal, .sa_flags = SA_RESTART};
    sigemptyset(&sa.sa_mask);
    if (pipe2(sig_pipe, O_CLOEXEC | O_NONBLOCK) < 0)
        return -1;
    int sigs[] = {SIGHUP, SIGTERM, SIGINT, SIGUSR2, SIGCHLD};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        if (sigaction(sigs[i], &sa, NULL) < 0)
            return -1;
    return 0;
}

/* In a new child, forked with every signal blocked: default dispositions first, then nothing
 * blocked, and no inherited self-pipe. */
void master_signals_reset_in_child(void)
{
    struct sigaction sa = {.sa_handler = SIG_DFL};
    sigemptyset(&sa.sa_mask);
    int sigs[] = {SIGHUP, SIGTERM, SIGINT, SIGUSR2, SIGCHLD};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        sigaction(sigs[i], &sa, NULL);
    /* A worker ignores SIGHUP and SIGUSR2: they are for the master only. */
    signal(SIGHUP, SIG_IGN);
    signal(SIGUSR2, SIG_IGN);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    close(sig_pipe[0]);
    close(sig_pipe[1]);
    sig_pipe[0] = sig_pipe[1] = -1;
}

/* ---- dispatch mode: the master accepts and hands out ---- */

static void dispatch_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    struct master *m = io->data;
    (void)loop, (void)revents;
    for (int k = 0; k < 64; k++) {
        int fd = accept4(io->fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) { /* out of descriptors: pause as the workers do, or this loop spins */
            listener_backoff_on_error(&m->accept_backoff[io - m->accept_io], errno);
            return;
        }
        /* round robin over the slots, a stalled one skipped (steer.h) unless all are */
        bool sent = false;
        for (int tries = 0; tries < 2 * m->nslots && !sent; tries++) {
            int i = m->next_slot;
            m->next_slot = (m->next_slot + 1) % m->nslots;
            if (tries < m->nslots && steer_stalled(m->steer, i))
                continue;
            int dfd = supervise_dispatch_fd(m, i);
            sent = dfd >= 0 && listener_send_fd(dfd, fd) == 0;
        }
        if (!sent)
            log_warn("dispatch: no worker could take a connection");
        close(fd);
    }
}

/* ---- reload, stop, upgrade ---- */

/* The key whose change a reload cannot apply (the sockets and the slots are set up once, by
 * the master), or NULL when there is none. */
static const char *listen_setting_changed(const struct config *a, const struct config *b)
{
    const char *la = a->local_address ? a->local_address : "";
    const char *lb = b->local_address ? b->local_address : "";

    if (a->role != b->role)
        return "role";
    /* a "servers" list's addresses are its ports': the listen entries, compared below */
    bool servers = a->n_servers_entries > 0 && b->n_servers_entries > 0;
    if (!servers && a->n_server != b->n_server)
        return "server";
    for (int i = 0; !servers && i < a->n_server; i++)
        if (strcmp(a->server[i].target.host, b->server[i].target.host) != 0 ||
            a->server[i].target.port != b->server[i].target.port)
            return "server";
    if (a->server_port != b->server_port)
        return "server_port";
    if (a->local_port != b->local_port)
        return "local_port";
    if (strcmp(la, lb) != 0)
        return "local_address";
    if (a->mode != b->mode)
        return "mode";
    /* each (port, address) has its sockets, opened once (port_password, servers) */
    if (a->n_listen != b->n_listen || a->n_port != b->n_port)
        return "the ports";
    for (int i = 0; i < a->n_listen; i++)
        if (strcmp(a->listen[i].target.host, b->listen[i].target.host) != 0 ||
            a->listen[i].target.port != b->listen[i].target.port ||
            a->listen_port[i] != b->listen_port[i] ||
            a->ports[a->listen_port[i]].mode != b->ports[b->listen_port[i]].mode)
            return "the ports";
    if (a->tcp_redir != b->tcp_redir) /* TPROXY needs transparent listeners (sockets.c) */
        return "tcp_redir";
    if (a->workers != b->workers)
        return "workers";
    return a->balance != b->balance ? "balance" : NULL;
}

/* The users' totals go to Redis from here (shared_store.h): one process per host pushes them
 * once, summed over the worker slots, which outlive their workers. Made again when a reload
 * moves "shared_store". */
int master_users_store(struct master *m)
{
    const struct config *c = m->cfg;
    bool want = c->role == ROLE_SERVER && c->shared.url && m->metrics && m->metrics->nusers > 0;

    if (want && m->users_store && shared_store_same_place(m->users_store, &c->shared))
        return 0;
    shared_store_free(m->users_store);
    m->users_store = NULL;
    if (want && !(m->users_store =
                      shared_store_new(m->loop, &c->shared, NULL, c->ports[0].port, m->metrics)))
        return -1;
    return 0;
}

/* Refuses a reload: the running configuration stays, and systemd hears why. */
static void reload_refused(const char *why)
{
    log_error("reload refused, still running the previous configuration: %s", why);
    sdnotify_send("READY=1\nSTATUS=reload refused, still running the previous configuration: %s",
                  why);
}

/* The configuration to run now: the file (read again) and the command line, the ss-manager API's
 * ports (ports, or NULL for none), validated and preflighted with the checks of --check, which
 * are every check a worker's start runs. NULL with the reason in err. */
struct config *master_load_config(const struct master *m, const struct manager_ports *ports,
                                  char *err, size_t errlen)
{
    struct config *nc = calloc(1, sizeof *nc);

    if (!nc) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    config_defaults(nc);
    if ((m->cfg->path && config_load(nc, m->cfg->path, err, errlen) < 0) ||
        cli_apply(m->cli, nc, err, errlen) < 0 || config_load_shared_users(nc, err, errlen) < 0 ||
        (ports && config_add_manager_ports(nc, ports, err, errlen) < 0) ||
        config_validate(nc, err, errlen) < 0 || worker_preflight(nc, err, errlen) < 0) {
        config_free(nc);
        free(nc);
        return NULL;
    }
    return nc;
}

/* A reload that changes the ports: the master's set becomes the new configuration's, with the
 * same descriptors for the entries it keeps (sockets_reopen); the old set stays beside it until
 * the reload ends (master_sockets_settle). The dispatch mode's accept watchers are set up once:
 * there the ports change with a restart. */
static int master_reopen_sockets(struct master *m, const struct config *nc, char *err,
                                 size_t errlen)
{
    struct socket_set *old;

    if (m->balance == BALANCE_DISPATCH) {
        snprintf(err, errlen,
                 "the ports changed; with balance \"dispatch\" they only change with a restart "
                 "or a binary upgrade (SIGUSR2)");
        return -1;
    }
    if (!(old = malloc(sizeof *old))) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    memcpy(old, &m->socks, sizeof *old);
    if (sockets_reopen(&m->socks, old, nc, m->balance, err, errlen) < 0) {
        memcpy(&m->socks, old, sizeof *old);
        free(old);
        return -1;
    }
    m->prev_socks = old;
    return 0;
}

void master_sockets_settle(struct master *m, bool switched)
{
    if (!m->prev_socks)
        return;
    if (switched) { /* the removed entries close: their old workers stop accepting as they drain */
        sockets_close_unshared(m->prev_socks, &m->socks);
    } else {
        sockets_close_unshared(&m->socks, m->prev_socks);
        memcpy(&m->socks, m->prev_socks, sizeof m->socks);
    }
    free(m->prev_socks);
    m->prev_socks = NULL;
}

/* Switches to nc (owned from here on), which master_load_config() made, through
 * master_apply_config(), unless it changes what a reload cannot. Returns 0, or -1 with the reason in err (nc freed, the running configuration
 * stays). */
int master_apply(struct master *m, struct config *nc, char *err, size_t errlen)
{
    const char *changed = listen_setting_changed(m->cfg, nc);
    bool ports = changed && strcmp(changed, "the ports") == 0;

    if (changed && !ports)
        snprintf(err, errlen,
                 "\"%s\" changed; listen addresses, role, mode, workers and balance only "
                 "change with a restart or a binary upgrade (SIGUSR2)",
                 changed);
    if ((changed && !ports) || (ports && master_reopen_sockets(m, nc, err, errlen) < 0) ||
        plugin_reload(m->plugin, nc, err, errlen) < 0) {
        master_sockets_settle(m, false);
        config_free(nc);
        free(nc);
        return -1;
    }
    /* live, or by replacing the workers (config_live.c says which); ports added or removed go
     * live with the sockets master_reopen_sockets opened */
    master_apply_config(m, nc);
    master_manager_reconfigured(m);
    return 0;
}

/* SIGHUP: the file again, with the API's ports, through master_apply(). A SIGHUP during a
 * reload is queued: one more reload follows when this one ends, however many came. */
void master_reload(struct master *m)
{
    char err[512];
    struct config *nc;

    if (m->stopping)
        return;
    if (m->reloading || m->live) {
        if (!m->reload_pending)
            log_info("reload requested during a reload: it follows when this one ends");
        m->reload_pending = true;
        return;
    }
    sdnotify_send("RELOADING=1\nMONOTONIC_USEC=%llu", sdnotify_monotonic_usec());
    log_info("reloading %s", m->cfg->path ? m->cfg->path : "(command line)");
    nc = master_load_config(m, master_manager_ports(m), err, sizeof err);
    if (!nc || master_apply(m, nc, err, sizeof err) < 0)
        reload_refused(err);
}

void master_check_done(struct master *m)
{
    if (!m->stopping || supervise_any_child(m))
        return;
    /* The plugin carried the workers' connections until now; the master leaves after it. */
    plugin_stop(m->plugin);
    if (!plugin_running(m->plugin))
        ev_break(m->loop, EVBREAK_ALL);
}

static void stop_timer_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct master *m = t->data;
    (void)loop, (void)revents;
    log_warn("workers still running after the drain timeout: killing them");
    supervise_signal_all(m, SIGKILL, true);
}

void master_stop(struct master *m, const char *why, bool handover)
{
    if (m->stopping)
        return;
    log_info("%s: stopping; connections in progress may finish within %d s", why,
             m->cfg->drain_timeout);
    /* After a handover the service goes on in the new master: telling systemd STOPPING=1
     * now would make it stop the whole service, new master included. */
    if (!handover)
        sdnotify_send("STOPPING=1");
    m->stopping = true;
    steer_stop(m->steer);
    master_live_stop(m);
    for (int a = 0; a < WORKER_MAX_LISTEN; a++)
        listener_backoff_stop(&m->accept_backoff[a]);
    supervise_signal_all(m, SIGTERM, true);
    if (handover) /* the new master's plugin needs the public port now */
        plugin_stop(m->plugin);
    /* The workers end their own drain at drain_timeout; one second more for a worker that
     * cannot (stopped, or stuck before it was ready), so the master is gone within
     * drain_timeout + 2 s whatever happens. */
    ev_timer_init(&m->stop_timer, stop_timer_cb, m->cfg->drain_timeout + 1.0, 0.);
    m->stop_timer.data = m;
    ev_timer_start(m->loop, &m->stop_timer);
    master_check_done(m);
}

/* The plugin died too often in a row: as when a worker does, the master stops. */
static void master_plugin_gave_up(void *arg)
{
    struct master *m = arg;
    m->exit_status = 1;
    master_stop(m, "the plugin keeps dying", false);
}

/* The new master is ready: this one leaves. */
static void master_upgraded(void *arg)
{
    master_stop(arg, "binary upgrade", true);
}

static void sig_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    struct master *m = io->data;
    char drain[64];
    (void)loop, (void)revents;
    while (read(sig_pipe[0], drain, sizeof drain) > 0)
        ;
    /* SIGTERM first: a Ctrl-C reaches the whole process group, and the workers' exits that
     * follow are then part of the stop, not deaths to warn about and replace. */
    if (sig_term) {
        sig_term = 0;
        master_stop(m, "signal", false);
    }
    if (sig_chld) {
        sig_chld = 0;
        supervise_reap(m);
    }
    if (sig_hup) {
        sig_hup = 0;
        master_reload(m);
    }
    if (sig_usr2) {
        sig_usr2 = 0;
        upgrade_start(&m->upgrade, m->loop, &m->socks, m->replay ? replay_fd(m->replay) : -1,
                      m->stopping, master_signals_reset_in_child);
    }
}

/* ---- start-up ---- */

/* The replay store: after a binary upgrade the previous master's (replay.h), so a handshake
 * recorded before the upgrade is still refused after it; else, or if it does not fit this
 * configuration, a new one. NULL with replay protection off. */
static struct replay_store *master_replay_store(const struct config *c, int fd)
{
    char err[256];
    struct replay_store *r = NULL;
    if (fd >= 0 && c->replay_protection) {
        r = replay_attach(fd, (size_t)c->replay_capacity, err, sizeof err);
        if (!r)
            log_warn("binary upgrade: %s; starting with an empty replay store", err);
    }
    if (fd >= 0 && !r)
        close(fd);
    return r || !c->replay_protection ? r : replay_new_shared((size_t)c->replay_capacity);
}

static int master_setup(struct master *m, char *err, size_t errlen)
{
    const struct config *c = m->cfg;

    m->nslots = c->workers;
    m->balance = c->balance;
#if !defined(__linux__) && !defined(SO_REUSEPORT_LB)
    if (m->balance == BALANCE_REUSEPORT) {
        /* macOS and older BSDs give every connection to one socket of a SO_REUSEPORT group */
        log_warn("this kernel does not balance SO_REUSEPORT groups: using balance \"shared\"");
        m->balance = BALANCE_SHARED;
    }
#endif
    if (plugin_prepare(m->cfg, err, errlen) < 0 ||
        sockets_open(&m->socks, c, m->nslots, m->balance, err, errlen) < 0 ||
        master_manager_start(m, err, errlen) < 0)
        return -1;
    m->plugin = plugin_new(m->loop, c, master_plugin_gave_up, m);
    m->metrics = metrics_new_shared(m->nslots, worker_user_capacity(c), worker_port_capacity(c));
    m->replay = master_replay_store(c, m->upgrade.inherited_replay_fd);
    m->slots = calloc(m->nslots, sizeof *m->slots);
    /* before the first fork: the workers find the servers' series already named */
    if (m->metrics && c->role != ROLE_SERVER && !c->plugin.plugin && c->n_upstream > 1 &&
        !(m->prober = upstream_prober_new(m->loop, c, m->metrics))) {
        snprintf(err, errlen, "cannot allocate the server probes");
        return -1;
    }
    if (!m->metrics || (c->replay_protection && !m->replay) || !m->slots || !m->plugin) {
        snprintf(err, errlen, "cannot allocate the shared state");
        return -1;
    }
    worker_user_slots(m->cfg, m->metrics);
    if (master_users_store(m) < 0) {
        snprintf(err, errlen, "cannot set up the shared store");
        return -1;
    }
    master_live_note_acl(m);
    m->rl_accept = (struct log_ratelimit)LOG_RATELIMIT_INIT("accept errors", LOG_LEVEL_WARN, 10.0);
    for (int a = 0; a < WORKER_MAX_LISTEN; a++)
        listener_backoff_init(&m->accept_backoff[a], m->loop, &m->accept_io[a],
                              LISTENER_ACCEPT_PAUSE, &m->rl_accept);
    m->steer = steer_new(m->loop, &m->socks, m->metrics);
    if (!m->steer) {
        snprintf(err, errlen, "cannot allocate the stall watch");
        return -1;
    }
    steer_configure(m->steer, c);
    supervise_init(m);
    if (m->balance == BALANCE_DISPATCH)
        for (int a = 0; a < m->socks.naddrs; a++) {
            if (m->socks.shared[a] <= 0) /* a UDP-only port */
                continue;
            ev_io_init(&m->accept_io[a], dispatch_cb, m->socks.shared[a], EV_READ);
            m->accept_io[a].data = m;
            ev_io_start(m->loop, &m->accept_io[a]);
        }
    if (m->socks.metrics > 0) {
        /* the socket stays in the set (for binary upgrades); the server serves a duplicate */
        int fd = fcntl(m->socks.metrics, F_DUPFD_CLOEXEC, 3);
        m->metrics_server = fd < 0 ? NULL : metrics_server_adopt(m->loop, fd, m->metrics);
        if (!m->metrics_server) {
            snprintf(err, errlen, "metrics: %s", strerror(errno));
            return -1;
        }
    }
    return 0;
}

static void master_free(struct master *m)
{
    master_manager_free(m);
    master_sockets_settle(m, true); /* stopped during a reload that changed the ports */
    if (m->metrics_server)
        metrics_server_stop(m->metrics_server);
    sockets_close(&m->socks);
    plugin_free(m->plugin);
    upstream_prober_free(m->prober);
    shared_store_free(m->users_store);
    steer_free(m->steer);
    supervise_free(m);
    if (m->replay)
        replay_free(m->replay);
    if (m->metrics)
        metrics_free_shared(m->metrics);
    if (m->loop)
        ev_loop_destroy(m->loop);
    config_free(m->cfg);
    free(m->cfg);
    if (m->prev_cfg) {
        config_free(m->prev_cfg);
        free(m->prev_cfg);
    }
    free(m->slots);
    free(m);
}

int master_run(struct config *cfg, const struct cli_options *cli, char **argv)
{
    struct master *m = calloc(1, sizeof *m);
    char err[512];
    int status = 1;

    if (!m)
        return 1;
    m->cfg = cfg;
    m->cli = cli;
    upgrade_init(&m->upgrade, argv, master_upgraded, m);
    log_set_tag("master");
    m->loop = ev_loop_new(EVBACKEND_EPOLL | EVFLAG_NOENV);
    if (!m->loop || signals_install() < 0) {
        log_error("cannot set up the event loop or signals");
        master_free(m);
        return 1;
    }
    if (master_manager_load(m, err, sizeof err) < 0 || master_setup(m, err, sizeof err) < 0) {
        log_error("%s", err);
        master_free(m);
        return 1;
    }
    ev_io_init(&m->sig_io, sig_cb, sig_pipe[0], EV_READ);
    m->sig_io.data = m;
    ev_io_start(m->loop, &m->sig_io);
    supervise_start(m);
    plugin_start(m->plugin);
    ev_run(m->loop, 0);

    status = m->exit_status;
    log_info("stopped");
    master_free(m);
    return status;
}

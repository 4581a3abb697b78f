/* master.c: the process model (see master.h).
 *
 * Why the master keeps every socket: the listening sockets of the SO_REUSEPORT group live in
 * the master, and each worker only borrows its slot's. When a worker dies, its socket stays in
 * the group with its accept queue intact, so connections the kernel already hashed to that slot
 * wait for the replacement instead of being reset, and UDP flows keep hashing to the same slot.
 * A reload starts the new worker on the same socket before the old one stops accepting, and a
 * binary upgrade hands the very same descriptors to the new master: nothing is ever re-bound,
 * so nothing is ever refused.
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
#include "master.h"
#include "metrics.h"
#include "metrics_http.h"
#include "netaddr.h"
#include "plugin.h"
#include "replay.h"
#include "rp_assert.h"
#include "sdnotify.h"
#include "sockets.h"
#include "upgrade.h"
#include "worker.h"

/* A worker that dies within this many seconds of starting counts towards a crash loop. */
#define CRASH_WINDOW 2.0
/* Consecutive quick deaths of one slot after which the master gives up. */
#define CRASH_LIMIT 6
/* Old workers still draining, at most. */
#define MAX_DRAINING 512

static volatile sig_atomic_t sig_hup, sig_term, sig_usr2, sig_chld;
static int sig_pipe[2] = {-1, -1};

struct slot {
    pid_t pid;            /* current worker, 0 while none runs */
    pid_t replaces;       /* reload: the old worker to stop once pid is ready */
    bool ready;
    int ready_fd;         /* read end of the worker's ready pipe */
    ev_io ready_io;
    int dispatch_fd;      /* dispatch mode: the master's end of the worker's socketpair */
    ev_timer restart;
    ev_tstamp started;
    int quick_deaths;
    struct master *m;
};

struct master {
    struct ev_loop *loop;
    struct config *cfg;
    const struct cli_options *cli;
    struct socket_set socks;
    struct slot *slots;
    int nslots;
    enum config_balance balance;
    ev_io accept_io[WORKER_MAX_LISTEN]; /* dispatch mode */
    struct listener_backoff accept_backoff[WORKER_MAX_LISTEN]; /* pauses accept_io on EMFILE */
    struct log_ratelimit rl_accept;
    int next_slot;
    struct replay_store *replay;
    struct metrics_shared *metrics;
    struct metrics_server *metrics_server;
    pid_t draining[MAX_DRAINING];
    int ndraining;
    ev_io sig_io;
    ev_timer stop_timer;
    bool stopping, reloading, announced;
    int exit_status;
    struct upgrade upgrade; /* SIGUSR2, and the hand-over when this master is the new one */
    struct plugin *plugin;  /* the SIP003 plugin's supervisor (does nothing without one) */
};

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

/* In a new child: default dispositions, nothing blocked, no inherited self-pipe. */
static void signals_reset_in_child(void)
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

/* ---- workers ---- */

static void spawn_worker(struct master *m, int i);
static void master_check_done(struct master *m);

static void add_draining(struct master *m, pid_t pid)
{
    if (pid > 0 && m->ndraining < MAX_DRAINING)
        m->draining[m->ndraining++] = pid;
}

static bool remove_draining(struct master *m, pid_t pid)
{
    for (int i = 0; i < m->ndraining; i++)
        if (m->draining[i] == pid) {
            m->draining[i] = m->draining[--m->ndraining];
            return true;
        }
    return false;
}

static void announce_if_ready(struct master *m)
{
    for (int i = 0; i < m->nslots; i++)
        if (!m->slots[i].ready)
            return;
    upgrade_handover_ready(&m->upgrade);
    if (!m->announced || m->reloading) {
        sdnotify_send("READY=1\nSTATUS=%d workers accepting", m->nslots);
        if (m->reloading)
            log_info("reload complete");
        else
            log_info("%d workers accepting (balance %s)", m->nslots,
                     config_balance_name(m->balance));
        m->announced = true;
        m->reloading = false;
    }
}

static void ready_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    struct slot *sl = io->data;
    char c;
    (void)revents;
    ssize_t n = read(sl->ready_fd, &c, 1);
    if (n < 0 && errno == EAGAIN)
        return;
    ev_io_stop(loop, io);
    close(sl->ready_fd);
    sl->ready_fd = -1;
    if (n != 1)
        return; /* died before it was ready: SIGCHLD handles it */
    sl->ready = true;
    if (sl->replaces > 0) { /* reload: the new worker accepts, the old one may drain now */
        kill(sl->replaces, SIGTERM);
        add_draining(sl->m, sl->replaces);
        sl->replaces = 0;
    }
    announce_if_ready(sl->m);
}

/* Closes every descriptor of the master that a worker must not hold: everything but
 * stdin/out/err and the keep[] list. */
static void close_all_but(int *keep, int nkeep)
{
    /* sort keep[] so the gaps between kept descriptors can each go in one close_range() */
    for (int i = 1; i < nkeep; i++)
        for (int j = i; j > 0 && keep[j - 1] > keep[j]; j--) {
            int t = keep[j];
            keep[j] = keep[j - 1];
            keep[j - 1] = t;
        }
    unsigned lo = 3;
    for (int k = 0; k < nkeep; k++) {
        if (keep[k] < (int)lo)
            continue;
        if ((unsigned)keep[k] > lo)
            close_range(lo, keep[k] - 1, 0);
        lo = keep[k] + 1;
    }
    close_range(lo, ~0U, 0);
}

static void worker_child(struct master *m, int i, int ready_w, int dispatch_w)
{
    struct worker_env env = {.cfg = m->cfg, .slot = i, .dispatch_fd = dispatch_w,
                             .replay = m->replay, .stats = &m->metrics->worker[i],
                             .ready_fd = ready_w, .parent_fd = 0};
    int *keep, nkeep = 0;
    char tag[32];

    signals_reset_in_child();
    /* env's arrays hold one socket per listen address */
    RP_ASSERT(m->socks.ntcp <= WORKER_MAX_LISTEN && m->socks.nshared <= WORKER_MAX_LISTEN &&
              m->socks.nudp <= WORKER_MAX_LISTEN);
    if (m->balance == BALANCE_REUSEPORT) {
        for (int a = 0; a < m->socks.ntcp; a++)
            env.tcp[env.ntcp++] = m->socks.tcp[i][a];
    } else if (m->balance == BALANCE_SHARED) {
        for (int a = 0; a < m->socks.nshared; a++)
            env.tcp[env.ntcp++] = m->socks.shared[a];
        env.shared_accept = true;
    }
    for (int a = 0; a < m->socks.nudp; a++)
        env.udp[env.nudp++] = m->socks.udp[i][a];
    /* this slot's sockets, the ready pipe and the dispatch socket */
    keep = malloc((size_t)(env.ntcp + env.nudp + 2) * sizeof *keep);
    if (!keep)
        _exit(1);
    for (int k = 0; k < env.ntcp; k++)
        keep[nkeep++] = env.tcp[k];
    for (int k = 0; k < env.nudp; k++)
        keep[nkeep++] = env.udp[k];
    keep[nkeep++] = ready_w;
    keep[nkeep++] = dispatch_w;
    closelog(); /* its socket is among what close_all_but closes; syslog() reopens it */
    close_all_but(keep, nkeep);
    free(keep);
    snprintf(tag, sizeof tag, "worker %d", i);
    log_set_tag(tag);
    _exit(worker_run(&env));
}

static void spawn_worker(struct master *m, int i)
{
    RP_ASSERT(i >= 0 && i < m->nslots);
    struct slot *sl = &m->slots[i];
    int rp[2], dp[2] = {-1, -1};

    if (pipe2(rp, O_CLOEXEC) < 0) {
        log_error("worker %d: pipe: %s", i, strerror(errno));
        return;
    }
    if (m->balance == BALANCE_DISPATCH &&
        socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, dp) < 0) {
        log_error("worker %d: socketpair: %s", i, strerror(errno));
        close(rp[0]);
        close(rp[1]);
        return;
    }
    pid_t pid = fork();
    if (pid < 0) {
        log_error("worker %d: fork: %s", i, strerror(errno));
        close(rp[0]);
        close(rp[1]);
        if (dp[0] >= 0) {
            close(dp[0]);
            close(dp[1]);
        }
        return;
    }
    if (pid == 0)
        worker_child(m, i, rp[1], dp[1]);
    close(rp[1]);
    if (dp[1] >= 0)
        close(dp[1]);
    if (sl->dispatch_fd >= 0)
        close(sl->dispatch_fd);
    sl->dispatch_fd = dp[0];
    if (dp[0] >= 0)
        netaddr_set_nonblock(dp[0]);
    if (sl->ready_fd >= 0) {
        ev_io_stop(m->loop, &sl->ready_io);
        close(sl->ready_fd);
    }
    sl->pid = pid;
    sl->ready = false;
    sl->ready_fd = rp[0];
    sl->started = ev_now(m->loop);
    ev_io_init(&sl->ready_io, ready_cb, rp[0], EV_READ);
    sl->ready_io.data = sl;
    ev_io_start(m->loop, &sl->ready_io);
    metrics_add(&m->metrics->worker[i].restarts, sl->m->announced ? 1 : 0);
    __atomic_store_n(&m->metrics->worker[i].pid, (uint64_t)pid, __ATOMIC_RELAXED);
}

static void restart_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct slot *sl = t->data;
    (void)loop, (void)revents;
    if (!sl->m->stopping && sl->pid == 0)
        spawn_worker(sl->m, (int)(sl - sl->m->slots));
}

static void worker_died(struct master *m, int i, int status)
{
    RP_ASSERT(i >= 0 && i < m->nslots);
    struct slot *sl = &m->slots[i];
    ev_tstamp lived = ev_now(m->loop) - sl->started;

    sl->pid = 0;
    sl->ready = false;
    /* the counters of a dead worker's connections are gone with it */
    __atomic_store_n(&m->metrics->worker[i].active, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&m->metrics->worker[i].udp_associations, 0, __ATOMIC_RELAXED);
    if (m->stopping)
        return;
    if (WIFSIGNALED(status))
        log_warn("worker %d killed by signal %d", i, WTERMSIG(status));
    else
        log_warn("worker %d exited with status %d", i, WEXITSTATUS(status));
    sl->quick_deaths = lived < CRASH_WINDOW ? sl->quick_deaths + 1 : 0;
    if (sl->quick_deaths >= CRASH_LIMIT) {
        log_error("worker %d died %d times in a row within %.0f s of starting: giving up", i,
                  sl->quick_deaths, CRASH_WINDOW);
        m->exit_status = 1;
        m->stopping = true;
        for (int k = 0; k < m->nslots; k++)
            if (m->slots[k].pid > 0)
                kill(m->slots[k].pid, SIGTERM);
        master_check_done(m);
        return;
    }
    /* First replacement at once; a worker that keeps dying waits longer each time. */
    double delay = sl->quick_deaths == 0 ? 0.0 : 0.1 * (1 << (sl->quick_deaths - 1));
    ev_timer_stop(m->loop, &sl->restart);
    ev_timer_set(&sl->restart, delay, 0.);
    ev_timer_start(m->loop, &sl->restart);
}

static void reap_children(struct master *m)
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        if (upgrade_reaped(&m->upgrade, pid))
            continue;
        if (remove_draining(m, pid) || plugin_reaped(m->plugin, pid, status))
            continue;
        for (int i = 0; i < m->nslots; i++) {
            if (m->slots[i].replaces == pid)
                m->slots[i].replaces = 0;
            if (m->slots[i].pid == pid)
                worker_died(m, i, status);
        }
    }
    master_check_done(m);
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
        bool sent = false;
        for (int tries = 0; tries < m->nslots && !sent; tries++) {
            struct slot *sl = &m->slots[m->next_slot];
            m->next_slot = (m->next_slot + 1) % m->nslots;
            sent = sl->pid > 0 && sl->dispatch_fd >= 0 && listener_send_fd(sl->dispatch_fd, fd) == 0;
        }
        if (!sent)
            log_warn("dispatch: no worker could take a connection");
        close(fd);
    }
}

/* ---- reload, stop, upgrade ---- */

static bool listen_settings_equal(const struct config *a, const struct config *b)
{
    if (a->role != b->role || a->n_server != b->n_server || a->server_port != b->server_port ||
        a->local_port != b->local_port || a->mode != b->mode || a->workers != b->workers ||
        a->balance != b->balance)
        return false;
    for (int i = 0; i < a->n_server; i++)
        if (strcmp(a->server[i].target.host, b->server[i].target.host) != 0 ||
            a->server[i].target.port != b->server[i].target.port)
            return false;
    const char *la = a->local_address ? a->local_address : "", *lb = b->local_address ? b->local_address : "";
    return strcmp(la, lb) == 0;
}

static void master_reload(struct master *m)
{
    char err[512];
    struct config *nc = calloc(1, sizeof *nc);

    sdnotify_send("RELOADING=1\nMONOTONIC_USEC=%llu", sdnotify_monotonic_usec());
    log_info("reloading %s", m->cfg->path ? m->cfg->path : "(command line)");
    if (nc)
        config_defaults(nc);
    if (!nc || (m->cfg->path && config_load(nc, m->cfg->path, err, sizeof err) < 0) ||
        cli_apply(m->cli, nc, err, sizeof err) < 0 || config_validate(nc, err, sizeof err) < 0) {
        log_error("reload refused, still running the previous configuration: %s",
                  nc ? err : "out of memory");
        goto keep;
    }
    if (!listen_settings_equal(m->cfg, nc)) {
        log_error("reload refused: listen addresses, ports, mode, workers and balance only "
                  "change with a restart or a binary upgrade (SIGUSR2)");
        goto keep;
    }
    if (plugin_reload(m->plugin, nc, err, sizeof err) < 0) {
        log_error("reload refused: %s", err);
        goto keep;
    }
    config_free(m->cfg);
    free(m->cfg);
    m->cfg = nc;
    log_set_level(LOG_LEVEL_INFO + (nc->verbose > 1 ? 1 : nc->verbose));
    m->reloading = true;
    for (int i = 0; i < m->nslots; i++) {
        struct slot *sl = &m->slots[i];
        if (sl->replaces > 0) { /* a reload during a reload: the older one goes now */
            kill(sl->replaces, SIGTERM);
            add_draining(m, sl->replaces);
        }
        sl->replaces = sl->pid;
        sl->pid = 0;
        spawn_worker(m, i);
    }
    return;
keep:
    if (nc) {
        config_free(nc);
        free(nc);
    }
    sdnotify_send("READY=1");
}

static void master_check_done(struct master *m)
{
    if (!m->stopping)
        return;
    for (int i = 0; i < m->nslots; i++)
        if (m->slots[i].pid > 0 || m->slots[i].replaces > 0)
            return;
    if (m->ndraining > 0)
        return;
    /* The plugin carried the workers' connections until now; the master leaves after it. */
    plugin_stop(m->plugin);
    if (!plugin_running(m->plugin))
        ev_break(m->loop, EVBREAK_ALL);
}

static void stop_timer_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct master *m = t->data;
    (void)revents;
    log_warn("workers still running after the drain timeout: killing them");
    for (int i = 0; i < m->nslots; i++)
        if (m->slots[i].pid > 0)
            kill(m->slots[i].pid, SIGKILL);
    for (int i = 0; i < m->ndraining; i++)
        kill(m->draining[i], SIGKILL);
    (void)loop;
}

static void master_stop(struct master *m, const char *why, bool handover)
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
    for (int a = 0; a < WORKER_MAX_LISTEN; a++)
        listener_backoff_stop(&m->accept_backoff[a]);
    for (int i = 0; i < m->nslots; i++) {
        ev_timer_stop(m->loop, &m->slots[i].restart);
        if (m->slots[i].pid > 0)
            kill(m->slots[i].pid, SIGTERM);
        if (m->slots[i].replaces > 0)
            kill(m->slots[i].replaces, SIGTERM);
    }
    for (int i = 0; i < m->ndraining; i++)
        kill(m->draining[i], SIGTERM);
    if (handover) /* the new master's plugin needs the public port now */
        plugin_stop(m->plugin);
    ev_timer_init(&m->stop_timer, stop_timer_cb, m->cfg->drain_timeout + 2.0, 0.);
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
    if (sig_chld) {
        sig_chld = 0;
        reap_children(m);
    }
    if (sig_term) {
        sig_term = 0;
        master_stop(m, "signal", false);
    }
    if (sig_hup) {
        sig_hup = 0;
        if (!m->stopping)
            master_reload(m);
    }
    if (sig_usr2) {
        sig_usr2 = 0;
        upgrade_start(&m->upgrade, m->loop, &m->socks, m->replay ? replay_fd(m->replay) : -1,
                      m->stopping, signals_reset_in_child);
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
        sockets_open(&m->socks, c, m->nslots, m->balance, err, errlen) < 0)
        return -1;
    m->plugin = plugin_new(m->loop, c, master_plugin_gave_up, m);
    m->metrics = metrics_new_shared(m->nslots);
    m->replay = master_replay_store(c, m->upgrade.inherited_replay_fd);
    m->slots = calloc(m->nslots, sizeof *m->slots);
    if (!m->metrics || (c->replay_protection && !m->replay) || !m->slots || !m->plugin) {
        snprintf(err, errlen, "cannot allocate the shared state");
        return -1;
    }
    m->rl_accept = (struct log_ratelimit)LOG_RATELIMIT_INIT("accept errors", LOG_LEVEL_WARN, 10.0);
    for (int a = 0; a < WORKER_MAX_LISTEN; a++)
        listener_backoff_init(&m->accept_backoff[a], m->loop, &m->accept_io[a],
                              LISTENER_ACCEPT_PAUSE, &m->rl_accept);
    for (int i = 0; i < m->nslots; i++) {
        m->slots[i] = (struct slot){.ready_fd = -1, .dispatch_fd = -1, .m = m};
        ev_init(&m->slots[i].restart, restart_cb);
        m->slots[i].restart.data = &m->slots[i];
    }
    if (m->balance == BALANCE_DISPATCH)
        for (int a = 0; a < m->socks.nshared; a++) {
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
    if (m->metrics_server)
        metrics_server_stop(m->metrics_server);
    sockets_close(&m->socks);
    plugin_free(m->plugin);
    for (int i = 0; m->slots && i < m->nslots; i++) {
        if (m->slots[i].dispatch_fd >= 0)
            close(m->slots[i].dispatch_fd);
        if (m->slots[i].ready_fd >= 0)
            close(m->slots[i].ready_fd);
    }
    if (m->replay)
        replay_free(m->replay);
    if (m->metrics)
        metrics_free_shared(m->metrics);
    if (m->loop)
        ev_loop_destroy(m->loop);
    config_free(m->cfg);
    free(m->cfg);
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
    if (master_setup(m, err, sizeof err) < 0) {
        log_error("%s", err);
        master_free(m);
        return 1;
    }
    ev_io_init(&m->sig_io, sig_cb, sig_pipe[0], EV_READ);
    m->sig_io.data = m;
    ev_io_start(m->loop, &m->sig_io);
    for (int i = 0; i < m->nslots; i++)
        spawn_worker(m, i);
    plugin_start(m->plugin);
    ev_run(m->loop, 0);

    status = m->exit_status;
    log_info("stopped");
    master_free(m);
    return status;
}

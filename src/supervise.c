/* supervise.c: the master's workers (issues 13 and 20). Forks one per slot with every signal
 * blocked across fork(), so that a signal meant for the master never runs the master's handler
 * in a child that has not reset it yet (such a child would swallow a SIGTERM and live on with an
 * old configuration, out of the master's books). Every child is tracked from fork until it is
 * reaped; one that does not report ready within READY_TIMEOUT is killed. A dead worker is
 * replaced at once, then with a backoff while it keeps failing; a failed fork is retried the
 * same way; the master gives up only when no worker can run at all.
 *
 * A reload is one transaction: every slot starts its new worker beside the old one, and the old
 * ones are told to drain only once all new ones are ready. If a new worker dies or times out,
 * the new ones go and the previous configuration stays: whatever fails, what worked keeps
 * serving. Reloads never overlap; master.c queues the SIGHUPs that come meanwhile. */
#include "autoconfig.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <syslog.h>
#include <unistd.h>

#include "crypto.h"
#include "log.h"
#include "master_private.h"
#include "netaddr.h"
#include "plugin.h"
#include "upstream.h"
#include "rp_assert.h"
#include "sdnotify.h"

/* Seconds a new worker has to report ready: it only opens its resolver and ACL, builds its
 * listeners and drops privileges, which takes milliseconds; the margin is for a loaded host. */
#define READY_TIMEOUT 10.0
/* A worker that dies within this many seconds of starting counts as a failed start. */
#define CRASH_WINDOW 2.0
/* Failed starts in a row, in every slot at once with none serving, after which the master gives
 * up: about 3 s of backoff (0.1 + 0.2 + ... + 1.6 s) in which nothing could run. */
#define CRASH_LIMIT 6
/* The delay before a failing slot's next start: doubles from BACKOFF_FIRST up to BACKOFF_MAX. */
#define BACKOFF_FIRST 0.1
#define BACKOFF_MAX 5.0

static void slot_schedule_start(struct master *m, struct master_slot *sl);

/* ---- children ---- */

static void child_forget(struct master *m, struct master_child *c)
{
    ev_io_stop(m->loop, &c->ready_io);
    ev_timer_stop(m->loop, &c->ready_timer);
    if (c->ready_fd >= 0)
        close(c->ready_fd);
    if (c->dispatch_fd >= 0)
        close(c->dispatch_fd);
    ev_io_stop(m->loop, &c->control_io);
    if (c->control_fd >= 0) /* a retired worker reads EOF: it gets no more configurations */
        close(c->control_fd);
    c->ready_fd = c->dispatch_fd = c->control_fd = -1;
    c->pid = 0;
    c->ready = false;
}

static void add_draining(struct master *m, pid_t pid)
{
    if (m->ndraining < MASTER_MAX_DRAINING)
        m->draining[m->ndraining++] = pid;
    else /* never let a worker run that the master does not track */
        kill(pid, SIGKILL);
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

/* Sends sig to a living child and moves it to the draining list, where it is reaped. */
static void child_retire(struct master *m, struct master_child *c, int sig)
{
    if (c->pid > 0) {
        kill(c->pid, sig);
        add_draining(m, c->pid);
    }
    child_forget(m, c);
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

static void worker_child(struct master *m, int i, const int fds[3], pid_t master)
{
    int ready_w = fds[0], dispatch_w = fds[1], control_w = fds[2];
    struct worker_env env = {.cfg = m->cfg,
                             .slot = i,
                             .dispatch_fd = dispatch_w,
                             .control_fd = control_w,
                             .replay = m->replay,
                             .stats = &m->metrics->worker[i],
                             .shared = m->metrics,
                             .user_stats = metrics_user_counters(m->metrics, i),
                             .port_stats = metrics_port_counters(m->metrics, i),
                             .ready_fd = ready_w,
                             .parent_fd = 0,
                             .master_pid = master};
    int *keep, nkeep = 0;
    char tag[32];

    master_signals_reset_in_child(); /* the handlers first, then the mask opens */
    /* cpu_affinity: this slot's CPU, the one the steering program sends its connections from */
    if (m->cfg->cpu_affinity && steer_pin(i) < 0)
        log_warn("worker %d: cannot pin to CPU %d: %s", i, steer_cpu_of_slot(i), strerror(errno));
    worker_env_sockets(&env, &m->socks, i, m->balance);
    /* this slot's sockets, the ready pipe and the dispatch socket */
    keep = malloc((size_t)(env.ntcp + env.nudp + 3) * sizeof *keep);
    if (!keep)
        _exit(1);
    for (int k = 0; k < env.ntcp; k++)
        keep[nkeep++] = env.tcp[k];
    for (int k = 0; k < env.nudp; k++)
        keep[nkeep++] = env.udp[k];
    keep[nkeep++] = ready_w;
    keep[nkeep++] = dispatch_w;
    keep[nkeep++] = control_w;
    closelog(); /* its socket is among what close_all_but closes; syslog() reopens it */
    close_all_but(keep, nkeep);
    free(keep);
    snprintf(tag, sizeof tag, "worker %d", i);
    log_set_tag(tag);
    _exit(worker_run(&env));
}

static void ready_cb(struct ev_loop *loop, ev_io *io, int revents);
static void ready_timeout_cb(struct ev_loop *loop, ev_timer *t, int revents);

static void close_pairs(int (*p)[2], int n, int end)
{
    for (int i = 0; i < n; i++)
        for (int e = 0; e < 2; e++)
            if ((end < 0 || e == end) && p[i][e] >= 0) {
                close(p[i][e]);
                p[i][e] = -1;
            }
}

/* The ready pipe, the dispatch socket (dispatch mode) and the control channel of a new child.
 * 0, or -1 with errno and nothing open. */
static int child_channels(const struct master *m, int (*p)[2])
{
    int saved;
    if (pipe2(p[0], O_CLOEXEC) == 0 &&
        (m->balance != BALANCE_DISPATCH ||
         socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, p[1]) == 0) &&
        socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, p[2]) == 0)
        return 0;
    saved = errno;
    close_pairs(p, 3, -1);
    errno = saved;
    return -1;
}

/* Forks slot sl's worker into c. Returns 0, or -1 with errno set and nothing left open. */
static int child_spawn(struct master *m, struct master_slot *sl, struct master_child *c)
{
    int p[3][2] = {{-1, -1}, {-1, -1}, {-1, -1}}, saved;
    sigset_t all, old;
    pid_t self = getpid();

    if (child_channels(m, p) < 0)
        return -1;
    /* Blocked until the child has reset its handlers (worker_child): see the top of the file. */
    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, &old);
    pid_t pid = fork();
    if (pid == 0)
        worker_child(m, sl->index, (int[3]){p[0][1], p[1][1], p[2][1]}, self);
    saved = errno;
    sigprocmask(SIG_SETMASK, &old, NULL);
    close_pairs(p, 3, 1);
    if (pid < 0) {
        close_pairs(p, 3, 0);
        errno = saved;
        return -1;
    }
    c->pid = pid;
    c->ready = false;
    c->ready_fd = p[0][0];
    c->dispatch_fd = p[1][0];
    if (p[1][0] >= 0)
        netaddr_set_nonblock(p[1][0]);
    c->control_fd = p[2][0];
    netaddr_set_nonblock(c->control_fd);
    c->generation = m->generation; /* forked with m->cfg */
    ev_io_init(&c->control_io, master_live_read_cb, c->control_fd, EV_READ);
    c->control_io.data = c;
    ev_io_start(m->loop, &c->control_io);
    c->started = ev_time();
    ev_io_init(&c->ready_io, ready_cb, c->ready_fd, EV_READ);
    c->ready_io.data = c;
    ev_io_start(m->loop, &c->ready_io);
    ev_timer_init(&c->ready_timer, ready_timeout_cb, READY_TIMEOUT, 0.);
    c->ready_timer.data = c;
    ev_timer_start(m->loop, &c->ready_timer);
    return 0;
}

static struct master_child *child_by_pid(struct master *m, pid_t pid)
{
    for (int i = 0; i < m->nslots; i++)
        for (int k = 0; k < 2; k++)
            if (m->slots[i].child[k].pid == pid)
                return &m->slots[i].child[k];
    return NULL;
}

static bool child_is_serving(const struct master_child *c)
{
    return c == &c->sl->child[c->sl->cur];
}

/* ---- readiness ---- */

static void announce_if_ready(struct master *m)
{
    const struct config *c = m->cfg;
    const struct netaddr_target *t = &c->listen[0].target;
    bool v6 = t->atyp == NETADDR_ATYP_IPV6;

    for (int i = 0; i < m->nslots; i++)
        if (!m->slots[i].child[m->slots[i].cur].ready)
            return;
    upgrade_handover_ready(&m->upgrade);
    if (m->announced)
        return;
    m->announced = true;
    sdnotify_send("READY=1\nSTATUS=%d worker%s accepting", m->nslots, m->nslots == 1 ? "" : "s");
    log_info("%s on %s%s%s:%u%s, %s: %d worker%s accepting (balance %s)", config_role_name(c->role),
             v6 ? "[" : "", t->host, v6 ? "]" : "", t->port, c->n_listen > 1 ? " and more" : "",
             crypto_method_info(c->method)->name, m->nslots, m->nslots == 1 ? "" : "s",
             config_balance_name(m->balance));
}

/* Every slot's new worker is ready: the old ones drain, the new configuration is the one. */
static void reload_commit_if_ready(struct master *m)
{
    for (int i = 0; i < m->nslots; i++)
        if (!m->slots[i].child[!m->slots[i].cur].ready)
            return;
    for (int i = 0; i < m->nslots; i++) {
        struct master_slot *sl = &m->slots[i];
        child_retire(m, &sl->child[sl->cur], SIGTERM);
        ev_timer_stop(m->loop, &sl->restart);
        sl->cur = !sl->cur;
        sl->failures = 0;
        __atomic_store_n(&m->metrics->worker[i].pid, (uint64_t)sl->child[sl->cur].pid,
                         __ATOMIC_RELAXED);
        metrics_add(&m->metrics->worker[i].reloads, 1);
    }
    config_free(m->prev_cfg);
    free(m->prev_cfg);
    m->prev_cfg = NULL;
    master_sockets_settle(m, true);
    m->reloading = false;
    log_info("reload complete");
    sdnotify_send("READY=1\nSTATUS=%d worker%s accepting (reloaded)", m->nslots,
                  m->nslots == 1 ? "" : "s");
    upgrade_handover_ready(&m->upgrade);
    if (m->reload_pending) {
        m->reload_pending = false;
        master_reload(m);
    }
}

/* A new worker failed: the reload's workers go, the previous configuration stays. */
static void reload_rollback(struct master *m, const char *why)
{
    for (int i = 0; i < m->nslots; i++) {
        struct master_slot *sl = &m->slots[i];
        struct master_child *nc = &sl->child[!sl->cur];
        /* a ready one may hold connections already: it drains; the others are of no use */
        child_retire(m, nc, nc->ready ? SIGTERM : SIGKILL);
        if (sl->child[sl->cur].pid == 0)
            slot_schedule_start(m, sl);
    }
    config_free(m->cfg);
    free(m->cfg);
    m->cfg = m->prev_cfg;
    m->prev_cfg = NULL;
    master_sockets_settle(m, false);
    upstream_prober_reconfigure(m->prober, m->cfg);
    steer_configure(m->steer, m->cfg);
    worker_user_slots(m->cfg, m->metrics); /* the old users' series come back */
    m->reloading = false;
    log_set_level(LOG_LEVEL_INFO + (m->cfg->verbose > 1 ? 1 : m->cfg->verbose));
    log_error("reload failed, still running the previous configuration: %s", why);
    sdnotify_send("READY=1\nSTATUS=reload failed, still running the previous configuration: %s",
                  why);
    if (m->reload_pending) {
        m->reload_pending = false;
        master_reload(m);
    }
}

static void ready_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    struct master_child *c = io->data;
    char byte;
    (void)revents;
    ssize_t n = read(c->ready_fd, &byte, 1);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    ev_io_stop(loop, io);
    close(c->ready_fd);
    c->ready_fd = -1;
    if (n != 1)
        return; /* it died before it was ready: its SIGCHLD says how */
    ev_timer_stop(loop, &c->ready_timer);
    c->ready = true;
    if (child_is_serving(c))
        announce_if_ready(c->sl->m);
    else
        reload_commit_if_ready(c->sl->m);
}

static void ready_timeout_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct master_child *c = t->data;
    struct master *m = c->sl->m;
    (void)loop, (void)revents;
    snprintf(m->last_failure, sizeof m->last_failure,
             "worker %d did not report ready within %.0f s", c->sl->index, READY_TIMEOUT);
    log_error("%s: killing it", m->last_failure);
    kill(c->pid, SIGKILL); /* still in the books: supervise_reap() acts when it is gone */
}

/* ---- starts, deaths, backoff ---- */

/* No slot serves and every slot has failed CRASH_LIMIT times in a row: nothing can run, and a
 * supervisor (systemd) should hear it from the exit status. */
static bool give_up_if_hopeless(struct master *m)
{
    for (int i = 0; i < m->nslots; i++) {
        const struct master_slot *sl = &m->slots[i];
        if (sl->child[sl->cur].ready || sl->failures < CRASH_LIMIT)
            return false;
    }
    log_error("no worker can run (%d failed starts in a row in every slot), giving up: %s",
              CRASH_LIMIT, m->last_failure);
    sdnotify_send("STATUS=no worker can run: %s", m->last_failure);
    m->exit_status = 1;
    master_stop(m, "no worker can run", false);
    return true;
}

static void slot_start(struct master *m, struct master_slot *sl)
{
    struct master_child *c = &sl->child[sl->cur];
    if (m->stopping || m->reloading || c->pid > 0)
        return; /* a reload's new worker takes the slot over; a roll-back calls again */
    if (child_spawn(m, sl, c) < 0) {
        snprintf(m->last_failure, sizeof m->last_failure, "worker %d: fork: %s", sl->index,
                 strerror(errno));
        log_error("%s; retrying", m->last_failure);
        metrics_add(&m->metrics->worker[sl->index].fork_failures, 1);
        sl->failures++;
        slot_schedule_start(m, sl);
        return;
    }
    metrics_add(&m->metrics->worker[sl->index].restarts, m->announced ? 1 : 0);
    __atomic_store_n(&m->metrics->worker[sl->index].pid, (uint64_t)c->pid, __ATOMIC_RELAXED);
}

static void restart_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct master_slot *sl = t->data;
    (void)loop, (void)revents;
    slot_start(sl->m, sl);
}

/* The first replacement at once; a slot that keeps failing waits longer each time. */
static void slot_schedule_start(struct master *m, struct master_slot *sl)
{
    if (m->stopping || give_up_if_hopeless(m))
        return;
    double delay = 0.0;
    for (int k = 0; k < sl->failures && delay < BACKOFF_MAX; k++)
        delay = delay == 0.0 ? BACKOFF_FIRST : delay * 2;
    ev_timer_stop(m->loop, &sl->restart);
    ev_timer_set(&sl->restart, delay < BACKOFF_MAX ? delay : BACKOFF_MAX, 0.);
    ev_timer_start(m->loop, &sl->restart);
}

static void child_died(struct master *m, struct master_child *c, int status)
{
    struct master_slot *sl = c->sl;
    bool serving = child_is_serving(c), was_ready = c->ready;
    double lived = ev_time() - c->started;
    char how[200];

    if (WIFSIGNALED(status))
        snprintf(how, sizeof how, "worker %d was killed by signal %d%s", sl->index,
                 WTERMSIG(status), was_ready ? "" : " before it was ready");
    else
        snprintf(how, sizeof how, "worker %d exited with status %d%s", sl->index,
                 WEXITSTATUS(status), was_ready ? "" : " before it was ready");
    child_forget(m, c); /* reaped: nothing may signal this pid again */
    if (serving) {
        /* the counters of a dead worker's connections are gone with it */
        __atomic_store_n(&m->metrics->worker[sl->index].active, 0, __ATOMIC_RELAXED);
        __atomic_store_n(&m->metrics->worker[sl->index].udp_associations, 0, __ATOMIC_RELAXED);
    }
    if (m->stopping)
        return;
    if (!serving) {
        reload_rollback(m, how);
        return;
    }
    log_warn("%s", how);
    if (!was_ready || lived < CRASH_WINDOW) {
        sl->failures++;
        snprintf(m->last_failure, sizeof m->last_failure, "%s", how);
    } else {
        sl->failures = 0;
    }
    if (!m->reloading)
        slot_schedule_start(m, sl);
}

/* ---- the interface for master.c ---- */

void supervise_init(struct master *m)
{
    for (int i = 0; i < m->nslots; i++) {
        struct master_slot *sl = &m->slots[i];
        *sl = (struct master_slot){.index = i, .m = m};
        for (int k = 0; k < 2; k++)
            sl->child[k] = (struct master_child){
                .ready_fd = -1, .dispatch_fd = -1, .control_fd = -1, .sl = sl};
        ev_init(&sl->restart, restart_cb);
        sl->restart.data = sl;
    }
}

void supervise_start(struct master *m)
{
    for (int i = 0; i < m->nslots; i++)
        slot_start(m, &m->slots[i]);
}

void supervise_reload(struct master *m)
{
    RP_ASSERT(m->prev_cfg && !m->reloading);
    m->reloading = true;
    for (int i = 0; i < m->nslots; i++) {
        struct master_slot *sl = &m->slots[i];
        if (child_spawn(m, sl, &sl->child[!sl->cur]) < 0) {
            char why[160];
            snprintf(why, sizeof why, "worker %d: fork: %s", i, strerror(errno));
            metrics_add(&m->metrics->worker[i].fork_failures, 1);
            reload_rollback(m, why);
            return;
        }
    }
}

void supervise_reap(struct master *m)
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        if (upgrade_reaped(&m->upgrade, pid) || remove_draining(m, pid) ||
            plugin_reaped(m->plugin, pid, status))
            continue;
        struct master_child *c = child_by_pid(m, pid);
        if (c)
            child_died(m, c, status);
    }
    master_live_check(m); /* a worker that died no longer has to answer */
    master_check_done(m);
}

void supervise_signal_all(struct master *m, int sig, bool stop_timers)
{
    for (int i = 0; i < m->nslots; i++) {
        struct master_slot *sl = &m->slots[i];
        if (stop_timers)
            ev_timer_stop(m->loop, &sl->restart);
        for (int k = 0; k < 2; k++) {
            if (stop_timers)
                ev_timer_stop(m->loop, &sl->child[k].ready_timer);
            if (sl->child[k].pid > 0)
                kill(sl->child[k].pid, sig);
        }
    }
    for (int i = 0; i < m->ndraining; i++)
        kill(m->draining[i], sig);
}

bool supervise_any_child(const struct master *m)
{
    for (int i = 0; i < m->nslots; i++)
        if (m->slots[i].child[0].pid > 0 || m->slots[i].child[1].pid > 0)
            return true;
    return m->ndraining > 0;
}

int supervise_dispatch_fd(const struct master *m, int i)
{
    const struct master_child *c = &m->slots[i].child[m->slots[i].cur];
    return c->pid > 0 ? c->dispatch_fd : -1;
}

void supervise_free(struct master *m)
{
    for (int i = 0; m->slots && i < m->nslots; i++)
        for (int k = 0; k < 2; k++) {
            struct master_child *c = &m->slots[i].child[k];
            if (c->ready_fd >= 0)
                close(c->ready_fd);
            if (c->dispatch_fd >= 0)
                close(c->dispatch_fd);
            if (c->control_fd >= 0)
                close(c->control_fd);
        }
}

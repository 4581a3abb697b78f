/* master_live.c: a new configuration becomes the running one (issue 15).
 *
 * master_apply_config() is the one entry point, for SIGHUP's reload (master.c) and the manager
 * API alike. When config_live_blocker() says the change is one running workers can take (the
 * users of a server's ports, ports added or removed), the master sends each worker the
 * sockets of the added ports and then the new ports and users over its control channel
 * (control.h) and waits for every answer: the workers keep their sockets and every
 * session of a user that did not change, with no drain and no reconnect. Anything else, and a
 * live apply that a worker refuses or does not answer within LIVE_TIMEOUT, goes through
 * supervise_reload(): new workers beside the old, which drain, as every reload did before.
 *
 * The configuration generation counts configurations: a worker forked after the switch runs
 * the new one from the start (a replacement after a crash, say), so only the workers that were
 * running when it came must answer. */
#include "autoconfig.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "control.h"
#include "log.h"
#include "master_private.h"
#include "sdnotify.h"
#include "steer.h"
#include "upstream.h"

/* Seconds the workers have to apply a configuration live: it takes them milliseconds (one key
 * derivation per new user); the margin is for a loaded host. */
#define LIVE_TIMEOUT 10.0

/* Why a reload that config_live_blocker() allows replaces the workers all the same. */
static const char live_acl_file[] = "the \"acl\" file";

static void live_timeout_cb(struct ev_loop *loop, ev_timer *t, int revents);

/* Sends child c of slot i the sockets of the ports m->cfg adds: the entries of m->socks that
 * the set before this reload (m->prev_socks) does not hold. 0, or -1 with errno. */
static int live_send_ports(struct master *m, const struct master_child *c, int i)
{
    const struct socket_set *s = &m->socks;
    struct control_msg msg = {
        .magic = CONTROL_MAGIC, .type = CONTROL_PORT_FD, .generation = m->generation};

    for (int a = 0; m->prev_socks && a < s->naddrs; a++) {
        int fds[2] = {m->balance == BALANCE_REUSEPORT ? s->tcp[i][a] : s->shared[a],
                      s->udp[i][a]};
        msg.port = m->cfg->ports[s->port[a]].port;
        for (int k = 0; k < 2; k++) {
            if (fds[k] <= 0 || sockets_contains(m->prev_socks, fds[k]))
                continue;
            msg.udp = (uint16_t)k;
            if (control_send(c->control_fd, &msg, fds[k]) < 0)
                return -1;
        }
    }
    return 0;
}

/* Sends the users of m->cfg (and the sockets of the ports it adds) to every worker there is.
 * 0, or -1 (nothing is waited for then). */
static int live_send(struct master *m)
{
    struct control_msg msg = {
        .magic = CONTROL_MAGIC, .type = CONTROL_USERS, .generation = m->generation};
    int fd = control_users_memfd(m->cfg), sent = 0;

    if (fd < 0) {
        log_warn("cannot pass the users to the workers: %s", strerror(errno));
        return -1;
    }
    for (int i = 0; i < m->nslots; i++) {
        struct master_child *c = &m->slots[i].child[m->slots[i].cur];
        if (c->pid <= 0 || c->control_fd < 0)
            continue; /* a replacement is forked with m->cfg */
        if (live_send_ports(m, c, i) < 0 || control_send(c->control_fd, &msg, fd) < 0) {
            log_warn("worker %d: cannot send it the users: %s", i, strerror(errno));
            close(fd);
            return -1;
        }
        sent++;
    }
    close(fd);
    m->live = true;
    ev_timer_init(&m->live_timer, live_timeout_cb, LIVE_TIMEOUT, 0.);
    m->live_timer.data = m;
    ev_timer_start(m->loop, &m->live_timer);
    log_debug("users sent to %d workers (generation %llu)", sent,
              (unsigned long long)m->generation);
    return 0;
}

void master_live_stop(struct master *m)
{
    ev_timer_stop(m->loop, &m->live_timer);
    m->live = false;
}

/* The live apply failed somewhere: every worker is replaced with m->cfg instead, as reloads
 * always did (supervise.c rolls back to prev_cfg if that fails too). */
static void live_fail(struct master *m, const char *why)
{
    master_live_stop(m);
    log_warn("reload could not be applied live (%s): replacing the workers", why);
    supervise_reload(m);
}

static void live_timeout_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop, (void)revents;
    live_fail(t->data, "a worker did not answer in time");
}

void master_live_check(struct master *m)
{
    int n = 0;

    if (!m->live || m->stopping)
        return;
    for (int i = 0; i < m->nslots; i++) {
        const struct master_child *c = &m->slots[i].child[m->slots[i].cur];
        if (c->pid > 0 && c->generation != m->generation)
            return;
        n += c->pid > 0;
    }
    master_live_stop(m);
    /* every worker closed its sockets of the removed ports: the master's go too, and the
     * kernel refuses their new connections from now on */
    master_sockets_settle(m, true);
    for (int i = 0; i < m->nslots; i++)
        metrics_add(&m->metrics->worker[i].reloads, 1);
    config_free(m->prev_cfg);
    free(m->prev_cfg);
    m->prev_cfg = NULL;
    log_info("reload applied live to %d worker%s", n, n == 1 ? "" : "s");
    sdnotify_send("READY=1\nSTATUS=%d worker%s accepting (reloaded live)", m->nslots,
                  m->nslots == 1 ? "" : "s");
    if (m->reload_pending) {
        m->reload_pending = false;
        master_reload(m);
    }
}

void master_live_read_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    struct master_child *c = io->data;
    struct master *m = c->sl->m;
    struct control_msg msg;
    int fd;
    (void)revents;

    for (int k = 0; k < 8; k++) {
        int r = control_recv(c->control_fd, &msg, &fd);
        if (fd >= 0)
            close(fd); /* workers pass no descriptors up */
        if (r <= 0) {
            if (r == 0) /* it is exiting: its SIGCHLD follows */
                ev_io_stop(loop, io);
            return;
        }
        if (msg.type != CONTROL_ACK || msg.generation != m->generation || !m->live)
            continue; /* an answer to a configuration that is no longer the one */
        if (msg.status != 0) {
            char why[256];
            snprintf(why, sizeof why, "worker %d: %s", c->sl->index, msg.why);
            live_fail(m, why);
            return;
        }
        c->generation = msg.generation;
        master_live_check(m);
        if (!m->live)
            return;
    }
}

void master_live_note_acl(struct master *m)
{
    if (!m->cfg->acl || stat(m->cfg->acl, &m->acl_seen) < 0)
        memset(&m->acl_seen, 0, sizeof m->acl_seen);
}

/* The ACL file changed since the workers read it (another file, or the same one written). */
static bool acl_file_changed(const struct master *m, const struct config *nc)
{
    struct stat st;
    const struct stat *a = &m->acl_seen;
    if (!nc->acl || stat(nc->acl, &st) < 0)
        return nc->acl != NULL;
    return st.st_dev != a->st_dev || st.st_ino != a->st_ino || st.st_size != a->st_size ||
           st.st_mtim.tv_sec != a->st_mtim.tv_sec || st.st_mtim.tv_nsec != a->st_mtim.tv_nsec;
}

void master_apply_config(struct master *m, struct config *nc)
{
    const char *why = config_live_blocker(m->cfg, nc);

    if (!why && acl_file_changed(m, nc))
        why = live_acl_file;

    m->prev_cfg = m->cfg;
    m->cfg = nc;
    m->generation++;
    upstream_prober_reconfigure(m->prober, m->cfg);
    worker_user_slots(nc, m->metrics); /* kept users keep their counters */
    steer_configure(m->steer, nc);
    if (master_users_store(m) < 0)
        log_warn("shared_store: users' totals not pushed (out of memory)");
    log_set_level(LOG_LEVEL_INFO + (nc->verbose > 1 ? 1 : nc->verbose));
    if (!why && live_send(m) == 0)
        return;
    master_live_note_acl(m); /* the new workers read it now */
    if (why && strcmp(why, "nothing") == 0)
        log_info("reload: nothing changed; replacing the workers (they re-read the ACL file "
                 "and resolv.conf)");
    else if (why == live_acl_file) /* the file, not a key */
        log_info("reload: %s changed; replacing the workers", why);
    else if (why)
        log_info("reload: \"%s\" changed; replacing the workers", why);
    supervise_reload(m);
}

/* worker_ports.c: a worker's ports added and removed live (issue 15).
 *
 * The master opens an added port's slot sockets (sockets_reopen) and sends this worker its
 * slot's, one CONTROL_PORT_FD record each, before the user list of that configuration
 * (control.h); they wait here until the list comes. The list then names every port with its
 * settings: a port the worker lacks is added (its key set built as at start, its listeners and
 * UDP relays on the sockets that came for it), a port it has that the list lacks is removed:
 * its listeners and UDP sockets close at once (the master closes its own copies once every
 * worker answered, so the kernel refuses new connections), its open TCP sessions close
 * drain_timeout later (relay_users_retired) and its counters are no longer written (the master
 * frees their slot).
 *
 * w->ports never moves: sessions and UDP relays point into it. A removed port keeps its entry
 * while anything does: the entry's refs counts them (relay_accept/session_close, udp_relay_new/
 * udp_relay_free; a UDP relay's associations and their lookups go with it). Its UDP relays go
 * at once (worker_unserve_port), its sessions within drain_timeout; once refs is zero the
 * entry is made vacant (worker_ports_reclaim: its key set freed) and the next added port
 * takes it, so a panel that adds and removes ports for months keeps the table as large as the
 * ports it has at once (plus those draining), never growing past ports_cap. */
#include "autoconfig.h"

#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "control.h"
#include "relay.h"
#include "worker.h"

/* Sockets of ports about to be added, at most (every listen entry of a reload's new ports). */
#define NEW_FDS_MAX (2 * WORKER_MAX_LISTEN)

struct worker_new_fds {
    int n;
    int fd[NEW_FDS_MAX];
    uint16_t port[NEW_FDS_MAX];
    bool udp[NEW_FDS_MAX];
};

int worker_ports_keep_fd(struct worker *w, uint16_t port, bool udp, int fd)
{
    struct worker_new_fds *n = w->new_fds;

    if (!n && !(n = w->new_fds = calloc(1, sizeof *n))) {
        close(fd);
        return -1;
    }
    if (n->n == NEW_FDS_MAX) {
        close(fd);
        return -1;
    }
    n->fd[n->n] = fd;
    n->port[n->n] = port;
    n->udp[n->n++] = udp;
    return 0;
}

bool worker_ports_has_fd(const struct worker *w, uint16_t port)
{
    for (int i = 0; w->new_fds && i < w->new_fds->n; i++)
        if (w->new_fds->port[i] == port)
            return true;
    return false;
}

void worker_ports_free(struct worker *w)
{
    for (int i = 0; w->new_fds && i < w->new_fds->n; i++)
        close(w->new_fds->fd[i]);
    free(w->new_fds);
    w->new_fds = NULL;
}

int worker_ports_table_size(const struct config *c)
{
    /* Test hook, for tests/integration/test_manager.py only (see docs/RELIABILITY.md, "Test
     * hooks"): $REUSEPROXY_TEST_MAX_PORTS lowers the table of a server's worker, so that a
     * test of many add/remove cycles reaches its limit in seconds. Never below c's ports. */
    const char *env = getenv("REUSEPROXY_TEST_MAX_PORTS");
    long cap = c->role == ROLE_SERVER ? CONFIG_MAX_PORTS : c->n_port;

    if (env && c->role == ROLE_SERVER) {
        char *end;
        long v = strtol(env, &end, 10);
        if (end != env && *end == '\0' && v > 0 && v < cap)
            cap = v;
    }
    return (int)(cap < c->n_port ? c->n_port : cap);
}

void worker_ports_reclaim(struct worker *w)
{
    for (int i = 0; i < w->nports; i++) {
        struct worker_port *wp = &w->ports[i];
        if (!wp->removed || wp->vacant || wp->refs > 0)
            continue;
        worker_port_keys_free(wp);
        wp->removed = wp->vacant = true;
        log_debug("port entry %d vacant", i);
    }
}

/* An entry for a port to add: a vacant one, or a new one at the end. -1: the table is full. */
static int worker_port_entry(struct worker *w)
{
    worker_ports_reclaim(w);
    for (int i = 0; i < w->nports; i++)
        if (w->ports[i].vacant)
            return i;
    return w->nports < w->ports_cap ? w->nports : -1;
}

int worker_ports_room(const struct worker *w)
{
    int n = w->ports_cap - w->nports;
    for (int i = 0; i < w->nports; i++)
        n += w->ports[i].removed && w->ports[i].refs == 0;
    return n;
}

/* Entries in use: ports served, and removed ones still draining. */
static int worker_ports_in_use(const struct worker *w)
{
    int n = 0;
    for (int i = 0; i < w->nports; i++)
        n += !w->ports[i].vacant;
    return n;
}

/* The index of w's serving port number port, or -1. */
static int worker_port_find(const struct worker *w, uint16_t port)
{
    for (int i = 0; i < w->nports; i++)
        if (!w->ports[i].removed && w->ports[i].cfg->port == port)
            return i;
    return -1;
}

/* up's settings as a port of this worker's own (its users' names copied). NULL: no memory. */
static struct config_port *worker_port_settings(const struct worker *w,
                                                const struct control_port *up)
{
    struct config_port *p = calloc(1, sizeof *p);
    struct config_user *users = calloc((size_t)up->n_users + 1, sizeof *users);
    bool ok = p && users;

    for (int u = 0; ok && u < up->n_users; u++) {
        users[u].key = up->users[u].key;
        users[u].metrics_slot = up->users[u].metrics_slot;
        ok = (users[u].name = strndup(up->users[u].name, up->users[u].name_len)) != NULL;
    }
    if (!ok) {
        for (int u = 0; users && u < up->n_users; u++)
            free(users[u].name);
        free(users);
        free(p);
        return NULL;
    }
    p->port = up->port;
    p->method = up->key.method;
    p->mode = up->mode;
    p->key = up->key;
    p->has_key = up->has_key;
    p->users = users;
    p->n_users = up->n_users;
    p->metrics_slot = w->port_stats ? up->metrics_slot : -1;
    return p;
}

/* After the key set copied them: the users' names go (n_users stays, for the next check). */
static void worker_port_settings_done(struct config_port *p)
{
    for (int u = 0; u < p->n_users; u++)
        free(p->users[u].name);
    crypto_wipe(p->users, (size_t)p->n_users * sizeof *p->users);
    free(p->users);
    p->users = NULL;
}

/* Adds port up with the sockets that came for it. 0, or -1 with why. */
static int worker_port_add(struct worker *w, const struct control_port *up, char *why,
                           size_t cap)
{
    struct config_port *p;
    int idx = worker_port_entry(w), served = 0;

    if (idx < 0 || !(p = worker_port_settings(w, up))) {
        snprintf(why, cap, "port %u: no room to add it", up->port);
        return -1;
    }
    struct worker_port *wp = &w->ports[idx];
    memset(wp, 0, sizeof *wp);
    wp->own_cfg = p;
    wp->stats = p->metrics_slot >= 0 ? &w->port_stats[p->metrics_slot] : NULL;
    int rc = worker_port_keys_init(w, wp, p);
    worker_port_settings_done(p);
    if (idx == w->nports)
        w->nports++; /* even a failed one: worker_keys_free frees what it holds */
    if (rc != 0) {
        wp->removed = true; /* vacant at the next reclaim: nothing points into it */
        snprintf(why, cap, "port %u: cannot set up its keys", up->port);
        return -1;
    }
    struct worker_new_fds *n = w->new_fds;
    for (int i = 0; n && i < n->n;) {
        if (n->port[i] != up->port) {
            i++;
            continue;
        }
        served += worker_serve_fd(w, n->fd[i], idx, n->udp[i]) == 0;
        n->n--;
        n->fd[i] = n->fd[n->n], n->port[i] = n->port[n->n], n->udp[i] = n->udp[n->n];
    }
    /* the table's size is what tests/integration/test_manager.py reads to see it bounded */
    log_info("port %u added live (%d socket%s; port entry %d, %d of %d in use)", up->port, served,
             served == 1 ? "" : "s", idx, worker_ports_in_use(w), w->ports_cap);
    return 0;
}

static const struct control_port *listed(const struct control_users *u, uint16_t port)
{
    for (int i = 0; i < u->n_port; i++)
        if (u->ports[i].port == port)
            return &u->ports[i];
    return NULL;
}

static void worker_port_remove(struct worker *w, int idx)
{
    struct worker_port *wp = &w->ports[idx];

    worker_unserve_port(w, idx);
    wp->removed = true;
    wp->removed_at = ev_now(w->loop);
    wp->stats = NULL; /* the master frees the slot: another port may get it */
    relay_port_removed(w, wp);
    log_info("port %u removed live: its connections close in %d s", wp->cfg->port,
             w->cfg->drain_timeout);
}

int worker_ports_apply(struct worker *w, const struct control_users *u, char *why, size_t cap)
{
    int n = w->nports, removed = 0;

    for (int i = 0; i < n; i++)
        if (!w->ports[i].removed && !listed(u, w->ports[i].cfg->port)) {
            worker_port_remove(w, i);
            removed++;
        }
    for (int i = 0; i < u->n_port; i++)
        if (worker_port_find(w, u->ports[i].port) < 0 &&
            worker_port_add(w, &u->ports[i], why, cap) < 0)
            return -1;
    worker_ports_free(w); /* sockets of a port this list does not add: none in practice */
    return removed;
}

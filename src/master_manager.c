/* master_manager.c: the ss-manager API's side of the master (manager.h). The endpoint lives in
 * the master's loop, like the metrics server: the master owns the sockets and the workers, so it
 * alone can open a port. A change from the API becomes a new configuration, the file's (read
 * again, as on SIGHUP) plus the API's ports, applied through the path a SIGHUP takes
 * (master_load_config, master_apply); a SIGHUP in turn keeps the API's ports. manager_state
 * brings them back at the next start, before the master opens its sockets. */
#include "autoconfig.h"

#include <stdio.h>
#include <stdlib.h>

#include "log.h"
#include "manager.h"
#include "master_private.h"
#include "metrics.h"

/* The "apply" hook: the configuration "file + next" checked now; applied now, or, during a
 * reload, by the reload that follows it (which reads the list this change is about to become). */
static int master_manager_apply(void *arg, const struct manager_ports *next, char *why,
                                size_t whylen)
{
    struct master *m = arg;
    struct config *nc;

    if (m->stopping) {
        snprintf(why, whylen, "the server is stopping");
        return -1;
    }
    if (!(nc = master_load_config(m, next, why, whylen)))
        return -1;
    if (m->reloading || m->live) {
        config_free(nc);
        free(nc);
        m->reload_pending = true;
        return 0;
    }
    log_info("manager: applying the configuration with the API's ports (%d now)", next->n);
    return master_apply(m, nc, why, whylen);
}

/* The "stat" hook: each served port's bytes, both directions, over every worker (the per-port
 * series of the shared metrics memory, which live as long as the port). */
static int master_manager_stat(void *arg, uint16_t *ports, uint64_t *bytes, int cap)
{
    struct master *m = arg;
    int n = 0;

    for (int p = 0; p < m->cfg->n_port && n < cap; p++, n++) {
        int slot = m->cfg->ports[p].metrics_slot;
        ports[n] = m->cfg->ports[p].port;
        bytes[n] = 0;
        for (int w = 0; slot >= 0 && w < m->metrics->nworkers; w++) {
            const struct metrics_port *c = &metrics_port_counters(m->metrics, w)[slot];
            bytes[n] += metrics_read(&c->bytes_in) + metrics_read(&c->bytes_out);
        }
    }
    return n;
}

int master_manager_load(struct master *m, char *err, size_t errlen)
{
    struct config *nc;
    char why[512];

    if (!m->cfg->has_manager || !m->cfg->manager_state)
        return 0;
    if (!(m->manager_initial = calloc(1, sizeof *m->manager_initial)) ||
        manager_state_load(m->cfg->manager_state, m->manager_initial, err, errlen) != 0)
        return -1;
    if (m->manager_initial->n == 0)
        return 0;
    if (!(nc = master_load_config(m, m->manager_initial, why, sizeof why))) {
        snprintf(err, errlen, "manager_state %s: its ports do not fit the configuration: %s",
                 m->cfg->manager_state, why);
        return -1;
    }
    config_free(m->cfg);
    free(m->cfg);
    m->cfg = nc;
    log_info("manager: %d ports from %s", m->manager_initial->n, nc->manager_state);
    return 0;
}

int master_manager_start(struct master *m, char *err, size_t errlen)
{
    static const struct manager_ports none;
    const struct manager_hooks hooks = {master_manager_apply, master_manager_stat, m};

    if (!m->cfg->has_manager)
        return 0;
    m->manager = manager_server_new(
        m->loop, m->cfg, m->manager_initial ? m->manager_initial : &none, &hooks, err, errlen);
    return m->manager ? 0 : -1;
}

const struct manager_ports *master_manager_ports(const struct master *m)
{
    return m->manager ? manager_server_ports(m->manager) : NULL;
}

void master_manager_reconfigured(struct master *m)
{
    if (m->manager)
        manager_server_set_method(m->manager, m->cfg->method);
}

void master_manager_free(struct master *m)
{
    manager_server_free(m->manager);
    m->manager = NULL;
    if (m->manager_initial) {
        manager_ports_free(m->manager_initial);
        free(m->manager_initial);
        m->manager_initial = NULL;
    }
}

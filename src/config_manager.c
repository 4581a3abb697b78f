/* config_manager.c: the ss-manager API's keys checked and typed by config_validate():
 * "manager_address" (a unix socket path, or "host:port" with an IP literal: the master binds it
 * before any lookup), "manager_allow_remote" and "manager_state". The API adds ports that anyone
 * who reaches it can use and can read every port's password ("list"), so an address other hosts
 * can reach is refused unless the file says so. */

#include "autoconfig.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_private.h"
#include "manager.h"

/* The message at key k's position (or without one when the key did not come from the file). */
static int config_manager_fail(struct config *c, int k, char *err, size_t errlen, const char *what)
{
    struct config_ctx x = {c, c->path ? c->path : "command line", err, errlen};
    return config_fail(&x, c->path && c->pos[k].line ? &c->pos[k] : NULL, "%s", what);
}

int config_check_manager(struct config *c, char *err, size_t errlen)
{
    const char *a = c->manager_address;
    char q[96], msg[512];

    c->has_manager = a != NULL;
    if (!a) {
        if (c->manager_state)
            return config_manager_fail(c, CONFIG_KEY_MANAGER_STATE, err, errlen,
                                       "\"manager_state\" keeps the ports of the ss-manager API: "
                                       "it needs \"manager_address\"");
        return 0;
    }
    if (c->role != ROLE_SERVER)
        return config_manager_fail(c, CONFIG_KEY_MANAGER_ADDRESS, err, errlen,
                                   "\"manager_address\": only a server has an ss-manager API");
    if (c->workers == 0) /* single.c has no master to own the API and open ports */
        return config_manager_fail(c, CONFIG_KEY_MANAGER_ADDRESS, err, errlen,
                                   "\"manager_address\": the API runs in the master: it needs "
                                   "\"workers\" of 1 or more, not 0");
    /* a path: libev's manager tells them apart the same way (a '/' is never in host:port) */
    if (strchr(a, '/')) {
        c->manager_is_unix = true;
        if (strlen(a) >= sizeof c->manager_path) {
            snprintf(msg, sizeof msg,
                     "\"manager_address\": the socket path %s is longer than %zu bytes",
                     config_quote(a, q, sizeof q), sizeof c->manager_path - 1);
            return config_manager_fail(c, CONFIG_KEY_MANAGER_ADDRESS, err, errlen, msg);
        }
        strcpy(c->manager_path, a);
        return 0;
    }
    c->manager_is_unix = false;
    if (netaddr_parse_hostport(a, strlen(a), NETADDR_NUMERIC, &c->manager) != 0) {
        snprintf(msg, sizeof msg,
                 "\"manager_address\": expected a unix socket path (\"/run/reuseproxy/manager."
                 "sock\") or an IP address and a port (\"127.0.0.1:6001\"), got %s",
                 config_quote(a, q, sizeof q));
        return config_manager_fail(c, CONFIG_KEY_MANAGER_ADDRESS, err, errlen, msg);
    }
    if (!c->manager_allow_remote && !config_is_loopback(c->manager.target.host)) {
        snprintf(msg, sizeof msg,
                 "\"manager_address\": %s is not a loopback address, and whoever reaches the API "
                 "can add ports and read every password; use a unix socket path, 127.0.0.1 or "
                 "::1, or set \"manager_allow_remote\": true",
                 config_quote(a, q, sizeof q));
        return config_manager_fail(c, CONFIG_KEY_MANAGER_ADDRESS, err, errlen, msg);
    }
    return 0;
}

/* One more (zeroed) entry at the end of c->port_sources, or NULL when out of memory. */
static struct config_port_source *config_manager_source(struct config *c)
{
    struct config_port_source *v =
        realloc(c->port_sources, ((size_t)c->n_port_sources + 1) * sizeof *v);
    if (!v)
        return NULL;
    c->port_sources = v;
    memset(&v[c->n_port_sources], 0, sizeof *v);
    return &v[c->n_port_sources++];
}

/* A file with one port ("server_port", its "password" or "users") gets the API's ports beside
 * it: that port becomes the first source, as if the file had listed it in "port_password", so
 * that config_derive_ports() treats every port alike. */
static int config_manager_file_port(struct config *c, char *err, size_t errlen)
{
    struct config_port_source *s;

    if (c->key && c->n_users > 0) {
        snprintf(err, errlen,
                 "the file's port has \"key\" and \"users\": give it a "
                 "\"password\" (its identity PSK) to add ports through the API");
        return -1;
    }
    if (!(s = config_manager_source(c)) ||
        (c->n_users > 0 && c->password && !(s->password = strdup(c->password)))) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    netaddr_set_target_port(&s->addr.target, (uint16_t)c->server_port);
    s->users = c->users; /* moved: the source owns them now */
    s->n_users = c->n_users;
    c->users = NULL;
    c->n_users = 0;
    c->file_port_source = true;
    return 0;
}

int config_add_manager_ports(struct config *c, const struct manager_ports *p, char *err,
                             size_t errlen)
{
    bool from_servers = c->n_servers_entries > 0;

    if (p->n == 0)
        return 0;
    if (c->role != ROLE_SERVER) {
        snprintf(err, errlen, "only a server serves the ports of the ss-manager API");
        return -1;
    }
    if (c->n_port_sources + p->n + 1 > CONFIG_MAX_PORTS) {
        snprintf(err, errlen, "at most %d ports", CONFIG_MAX_PORTS);
        return -1;
    }
    if (c->n_port_sources == 0 && c->server_port && config_manager_file_port(c, err, errlen) != 0)
        return -1;
    for (int i = 0; i < p->n; i++) {
        const struct manager_port *e = &p->v[i];
        struct config_port_source *s = config_manager_source(c);
        if (!s || !(s->password = strdup(e->password))) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        /* "servers": on the first entry's address; else on every "server" address */
        if (from_servers)
            s->addr = c->port_sources[0].addr;
        netaddr_set_target_port(&s->addr.target, e->port);
        s->method_set = true;
        s->method = e->method;
        c->n_manager_ports++;
    }
    return 0;
}

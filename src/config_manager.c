/* config_manager.c: the ss-manager API's keys checked and typed by config_validate():
 * "manager_address" (a unix socket path, or "host:port" with an IP literal: the master binds it
 * before any lookup), "manager_allow_remote" and "manager_state". The API adds ports that anyone
 * who reaches it can use and can read every port's password ("list"), so an address other hosts
 * can reach is refused unless the file says so. */

#include "autoconfig.h"

#include <stdio.h>
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

int config_add_manager_ports(struct config *c, const struct manager_ports *p, char *err,
                             size_t errlen)
{
    if (p->n == 0)
        return 0;
    snprintf(err, errlen, "this build serves one port per configuration");
    return -1;
}

/* config_servers.c: the "servers" key, shadowsocks-rust's list of servers for the local and
 * tunnel roles, each with its own address, port, method and password:
 *   "servers": [{"server": "a.example", "server_port": 8388, "method": "aes-256-gcm",
 *                "password": "..."}, ...]
 * Read into the same server[] list as "server" (so -s and the checks treat both alike), with
 * each entry's method and password beside it; config_validate() derives the keys. Part of the
 * configuration module (config_private.h). */
#include "autoconfig.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "config_private.h"
#include "log.h"

static const char *config_json_kind(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
    case JSON_REAL:
        return "a number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    default:
        return "null";
    }
}

void config_servers_free(struct config *c)
{
    for (int i = 0; i < CONFIG_MAX_SERVERS; i++) {
        c->server_password[i] = NULL; /* c->port_sources[i]'s */
        c->server_method_set[i] = false;
    }
    c->n_servers_entries = 0;
}

void config_servers_clear(struct config *c)
{
    if (c->n_servers_entries > 0)
        config_port_sources_free(c);
    config_servers_free(c);
}

/* One entry: "server" (required, may carry its own port), "server_port" (required unless it
 * does), "method", "password", "users" and "mode" (optional: the file's). "remarks"
 * (shadowsocks-rust's label) is read past. */
static int config_servers_entry(struct config_ctx *x, const struct config_pos *pos, size_t i,
                                const json_t *e, struct config_port_source *src)
{
    const json_t *host = json_object_get(e, "server"), *port = json_object_get(e, "server_port");
    const json_t *method = json_object_get(e, "method"), *pw = json_object_get(e, "password");
    const json_t *users = json_object_get(e, "users"), *mode = json_object_get(e, "mode");
    static const char *const members[] = {"server", "server_port", "method", "password",
                                          "users", "mode", "remarks", NULL};
    const char *k;
    json_t *member;
    char q[96];

    json_object_foreach((json_t *)e, k, member) {
        int m = 0;
        while (members[m] && strcmp(members[m], k) != 0)
            m++;
        if (!members[m])
            return config_fail(x, pos,
                               "\"servers\"[%zu]: unknown member %s; a server has \"server\", "
                               "\"server_port\", \"method\" and \"password\" (a server role's "
                               "entry may have \"users\" and \"mode\")",
                               i, config_quote(k, q, sizeof q));
    }
    struct netaddr_endpoint *ep = &src->addr;
    if (!json_is_string(host) ||
        netaddr_parse_hostport(json_string_value(host), strlen(json_string_value(host)),
                               CONFIG_SERVER_FLAGS, ep) != 0)
        return config_fail(x, pos,
                           "\"servers\"[%zu]: \"server\": expected an address or host name "
                           "(\"host\", \"host:port\", \"[ipv6]:port\")",
                           i);
    json_int_t p = json_is_integer(port) ? json_integer_value(port) : 0;
    if ((port && !json_is_null(port) && (p < 1 || p > 65535)) || (!port && !ep->target.port))
        return config_fail(x, pos, "\"servers\"[%zu]: \"server_port\": expected a port from 1 to "
                                   "65535", i);
    if (p)
        netaddr_set_target_port(&ep->target, (uint16_t)p);
    if (method && !json_is_null(method)) {
        int m = json_is_string(method) ? crypto_method_lookup(json_string_value(method)) : -1;
        if (m < 0)
            return config_fail(x, pos, "\"servers\"[%zu]: \"method\": expected one of %s", i,
                               crypto_method_names());
        src->method = (enum crypto_method)m;
        src->method_set = true;
    }
    if (mode && !json_is_null(mode)) {
        enum config_mode md;
        if (!json_is_string(mode) || config_mode_from_name(json_string_value(mode), &md) != 0)
            return config_fail(x, pos, "\"servers\"[%zu]: \"mode\": expected \"tcp_only\", "
                                       "\"tcp_and_udp\" or \"udp_only\"", i);
        src->mode = md;
        src->mode_set = true;
    }
    if (pw && !json_is_null(pw)) {
        if (!json_is_string(pw) || !json_string_value(pw)[0])
            return config_fail(x, pos, "\"servers\"[%zu]: \"password\": expected a non-empty "
                                       "string, got %s", i, config_json_kind(pw));
        if (!(src->password = strdup(json_string_value(pw))))
            return config_fail(x, pos, "out of memory");
    }
    if (users && !json_is_null(users)) {
        char name[40];
        snprintf(name, sizeof name, "servers\"[%zu].\"users", i);
        return config_parse_users(x, pos, name, users, false, &src->users, &src->n_users);
    }
    return 0;
}

int config_set_servers(struct config_ctx *x, const struct config_pos *pos, const struct json_t *v)
{
    struct config *c = x->c;
    size_t n = json_is_array(v) ? json_array_size(v) : 0;

    if (c->n_servers_entries > 0)
        config_port_sources_free(c);
    config_servers_free(c);
    if (json_is_null(v))
        return 0;
    if (c->pos[CONFIG_KEY_SERVER].line > 0)
        return config_fail(x, pos, "\"servers\": given with \"server\" (line %d); keep one list",
                           c->pos[CONFIG_KEY_SERVER].line);
    if (c->n_port_sources > 0)
        return config_fail(x, pos, "\"servers\": given with \"port_password\" (line %d); keep "
                                   "one list of ports",
                           c->pos[CONFIG_KEY_PORT_PASSWORD].line);
    /* the local roles take at most CONFIG_MAX_SERVERS (config_derive_upstreams says so) */
    if (n == 0 || n > CONFIG_MAX_PORTS)
        return config_fail(x, pos,
                           "\"servers\": expected an array of 1 to %d objects {\"server\", "
                           "\"server_port\", \"method\", \"password\"}, got %s",
                           CONFIG_MAX_PORTS, json_is_array(v) ? "another size" : config_json_kind(v));
    if (!(c->port_sources = calloc(n, sizeof *c->port_sources)))
        return config_fail(x, pos, "out of memory");
    memset(c->server, 0, sizeof c->server);
    c->n_server = 0;
    for (size_t i = 0; i < n; i++) {
        const json_t *e = json_array_get(v, i);
        struct config_port_source *src = &c->port_sources[i];
        c->n_port_sources = (int)i + 1;
        if (!json_is_object(e))
            return config_fail(x, pos, "\"servers\"[%zu]: expected an object, got %s", i,
                               config_json_kind(e));
        if (config_servers_entry(x, pos, i, e, src) != 0)
            return -1;
        if (i >= CONFIG_MAX_SERVERS)
            continue;
        c->server[i] = src->addr;
        c->server_method[i] = src->method;
        c->server_method_set[i] = src->method_set;
        c->server_password[i] = src->password;
        c->n_server = (int)i + 1;
    }
    c->n_servers_entries = (int)n;
    c->pos[CONFIG_KEY_SERVER] = *pos;
    return 0;
}

/* True when every server carries what the file would otherwise give: its own port (from
 * "servers" or "host:port"), and, for own_password, its own password. */
bool config_servers_complete(const struct config *c, bool own_password)
{
    if (c->n_server == 0)
        return false;
    for (int i = 0; i < c->n_server; i++)
        if (!c->server[i].target.port || (own_password && !c->server_password[i]))
            return false;
    return true;
}

/* One server's master key: the file's when it shares the file's method and password, else
 * derived from its own (a SIP022 password is the base64 PSK itself). */
static int config_upstream_key(struct config_ctx *x, const struct config_pos *pos, int i)
{
    struct config *c = x->c;
    struct config_upstream *u = &c->upstreams[i];
    const char *pw = c->server_password[i] ? c->server_password[i] : c->password;
    const struct crypto_method_info *mi = crypto_method_info(u->method);

    if (!c->server_password[i] && u->method == c->method && (c->password || c->key)) {
        u->key = c->ports[0].key;
        return 0;
    }
    if (!pw)
        return config_fail(x, pos, "\"servers\"[%d]: no password: give it one, or set the file's "
                                   "\"password\"", i);
    int rc = mi->proto == CRYPTO_PROTO_SIP022 ? crypto_key_from_base64(&u->key, u->method, pw)
                                              : crypto_key_from_password(&u->key, u->method, pw);
    if (rc != 0)
        return config_fail(x, pos, "\"servers\"[%d]: the password is not a key for %s%s", i,
                           mi->name,
                           mi->proto == CRYPTO_PROTO_SIP022 ? " (base64 of the method's key "
                                                              "length: reuseproxy --genkey)"
                                                            : "");
    return 0;
}

int config_derive_upstreams(struct config *c, char *err, size_t errlen)
{
    struct config_ctx x = {c, c->path ? c->path : "command line", err, errlen};
    const struct config_pos *pos = c->path ? &c->pos[CONFIG_KEY_SERVER] : NULL;
    enum netaddr_prefer prefer = c->ipv6_first ? NETADDR_PREFER_IPV6 : NETADDR_PREFER_ANY;

    c->n_upstream = 0;
    if (c->role == ROLE_SERVER) /* its "servers" are its ports (config_ports.c) */
        return 0;
    if (c->n_servers_entries > CONFIG_MAX_SERVERS)
        return config_fail(&x, pos, "\"servers\": the %s role takes at most %d servers, but %d "
                                    "are listed", config_role_name(c->role), CONFIG_MAX_SERVERS,
                           c->n_servers_entries);
    for (int i = 0; i < c->n_servers_entries; i++)
        if (c->port_sources[i].n_users > 0 || c->port_sources[i].mode_set)
            return config_fail(&x, pos, "\"servers\"[%d]: \"users\" and \"mode\" belong to a "
                                        "server role's ports; the %s role has none", i,
                               config_role_name(c->role));
    /* The plugin links its loopback port to one server (SIP003's SS_REMOTE_HOST). */
    if (c->plugin.plugin && c->n_server > 1)
        return config_fail(&x, pos,
                           "with \"plugin\", the %s role connects to one server (the plugin's "
                           "SS_REMOTE_HOST), but %d are listed",
                           config_role_name(c->role), c->n_server);
    for (int i = 0; i < c->n_server; i++) {
        struct config_upstream *u = &c->upstreams[i];
        u->addr = c->server[i];
        if (!u->addr.target.port)
            netaddr_set_target_port(&u->addr.target, (uint16_t)c->server_port);
        u->addr.prefer = prefer;
        u->method = c->server_method_set[i] ? c->server_method[i] : c->method;
        if (config_upstream_key(&x, pos, i) != 0)
            return -1;
    }
    c->n_upstream = c->n_server;
    /* every server has its own password and the file none: the first server's method and
     * key stand for the file's (ports[0], which the UDP relay and the checks read) */
    if (!c->password && !c->key) {
        c->method = c->upstreams[0].method;
        c->ports[0].method = c->method;
        c->ports[0].key = c->upstreams[0].key;
        c->ports[0].has_key = true;
    }
    return 0;
}

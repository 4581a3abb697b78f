/* config_keys.c: the table of the file's top-level keys (each one's kind of value, field and
 * range) and one setter per kind of value: a key's JSON value -> its typed field of struct
 * config, with libev's leniency for libev's keys (config.c's header says which) and a
 * message at the key's line and column for a value of the wrong kind. Also the names of the
 * choices (role, balance, mode, ...) and the integers the command line shares. config.c finds
 * each key here; nothing here reads the file. */

#include "autoconfig.h" /* _GNU_SOURCE first: strndup, explicit_bzero */

#include "config.h"

#include <jansson.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config_private.h"

/* Seconds are multiplied by 1000 for libev timers in milliseconds; keep that inside an int. */
#define CONFIG_MAX_SECONDS 2147483

#define FIELD(f) offsetof(struct config, f)
const struct config_key_spec config_keys[CONFIG_KEY_COUNT] = {
    [CONFIG_KEY_SERVER] = {"server", VALUE_SERVER, 0, 0, 0},
    [CONFIG_KEY_SERVER_PORT] = {"server_port", VALUE_LIBEV_INT, FIELD(server_port), 1, 65535},
    [CONFIG_KEY_PASSWORD] = {"password", VALUE_TEXT, FIELD(password), 0, 0},
    [CONFIG_KEY_KEY] = {"key", VALUE_TEXT, FIELD(key), 0, 0},
    [CONFIG_KEY_METHOD] = {"method", VALUE_METHOD, FIELD(method), 0, 0},
    [CONFIG_KEY_TIMEOUT] = {"timeout", VALUE_LIBEV_INT, FIELD(timeout), 1, CONFIG_MAX_SECONDS},
    [CONFIG_KEY_MODE] = {"mode", VALUE_MODE, 0, 0, 0},
    [CONFIG_KEY_FAST_OPEN] = {"fast_open", VALUE_BOOL, FIELD(fast_open), 0, 0},
    [CONFIG_KEY_REUSE_PORT] = {"reuse_port", VALUE_BOOL, FIELD(reuse_port), 0, 0},
    [CONFIG_KEY_NO_DELAY] = {"no_delay", VALUE_BOOL, FIELD(no_delay), 0, 0},
    [CONFIG_KEY_IPV6_FIRST] = {"ipv6_first", VALUE_BOOL, FIELD(ipv6_first), 0, 0},
    [CONFIG_KEY_NAMESERVER] = {"nameserver", VALUE_TEXT, FIELD(nameserver), 0, 0},
    [CONFIG_KEY_LOCAL_ADDRESS] = {"local_address", VALUE_TEXT, FIELD(local_address), 0, 0},
    [CONFIG_KEY_LOCAL_PORT] = {"local_port", VALUE_LIBEV_INT, FIELD(local_port), 1, 65535},
    [CONFIG_KEY_TUNNEL_ADDRESS] = {"tunnel_address", VALUE_TEXT, FIELD(tunnel_address), 0, 0},
    [CONFIG_KEY_USER] = {"user", VALUE_TEXT, FIELD(user), 0, 0},
    [CONFIG_KEY_NOFILE] = {"nofile", VALUE_INT, FIELD(nofile), 0, 2147483647},
    [CONFIG_KEY_ACL] = {"acl", VALUE_TEXT, FIELD(acl), 0, 0},
    [CONFIG_KEY_USE_SYSLOG] = {"use_syslog", VALUE_BOOL, FIELD(use_syslog), 0, 0},
    [CONFIG_KEY_ROLE] = {"role", VALUE_ROLE, 0, 0, 0},
    [CONFIG_KEY_WORKERS] = {"workers", VALUE_INT, FIELD(workers), 0, CONFIG_MAX_WORKERS},
    [CONFIG_KEY_BALANCE] = {"balance", VALUE_BALANCE, 0, 0, 0},
    [CONFIG_KEY_BLOCK_PRIVATE] = {"block_private", VALUE_BOOL, FIELD(block_private), 0, 0},
    [CONFIG_KEY_UDP_TIMEOUT] = {"udp_timeout", VALUE_INT, FIELD(udp_timeout), 1,
                                CONFIG_MAX_SECONDS},
    [CONFIG_KEY_UDP_MAX_ASSOCIATIONS] = {"udp_max_associations", VALUE_INT,
                                         FIELD(udp_max_associations), 1, 16777216},
    [CONFIG_KEY_METRICS_ADDRESS] = {"metrics_address", VALUE_STRING, FIELD(metrics_address), 0, 0},
    [CONFIG_KEY_DRAIN_TIMEOUT] = {"drain_timeout", VALUE_INT, FIELD(drain_timeout), 0,
                                  CONFIG_MAX_SECONDS},
    [CONFIG_KEY_CONNECT_TIMEOUT] = {"connect_timeout", VALUE_INT, FIELD(connect_timeout), 1,
                                    CONFIG_MAX_SECONDS},
    [CONFIG_KEY_REPLAY_PROTECTION] = {"replay_protection", VALUE_BOOL, FIELD(replay_protection), 0,
                                      0},
    [CONFIG_KEY_REPLAY_CAPACITY] = {"replay_capacity", VALUE_INT, FIELD(replay_capacity), 1,
                                    16777216},
    [CONFIG_KEY_VERBOSE] = {"verbose", VALUE_INT, FIELD(verbose), 0, 2},
    [CONFIG_KEY_USERS] = {"users", VALUE_USERS, 0, 0, 0},
    [CONFIG_KEY_MAX_HANDSHAKES_PER_SOURCE] = {"max_handshakes_per_source", VALUE_INT,
                                              FIELD(max_handshakes_per_source), 0, 1048576},
    [CONFIG_KEY_PLUGIN] = {"plugin", VALUE_TEXT, FIELD(plugin.plugin), 0, 0},
    [CONFIG_KEY_PLUGIN_OPTS] = {"plugin_opts", VALUE_TEXT, FIELD(plugin.plugin_opts), 0, 0},
    [CONFIG_KEY_PLUGIN_ARGS] = {"plugin_args", VALUE_ARGS, 0, 0, 0},
    [CONFIG_KEY_PLUGIN_MODE] = {"plugin_mode", VALUE_PLUGIN_MODE, 0, 0, 0},
    [CONFIG_KEY_PROTOCOL] = {"protocol", VALUE_PROTOCOL, 0, 0, 0},
    [CONFIG_KEY_LOCAL_USERS] = {"local_users", VALUE_USERS, 0, 0, 0},
    [CONFIG_KEY_SERVER_URL] = {"server_url", VALUE_STRING, FIELD(server_url), 0, 0},
    [CONFIG_KEY_SERVERS] = {"servers", VALUE_SERVERS, 0, 0, 0},
    [CONFIG_KEY_SERVER_CHECK_INTERVAL] = {"server_check_interval", VALUE_INT,
                                          FIELD(server_check_interval), 1, 86400},
    [CONFIG_KEY_BALANCE_SERVERS] = {"balance_servers", VALUE_BALANCE_SERVERS, 0, 0, 0},
    [CONFIG_KEY_TCP_REDIR] = {"tcp_redir", VALUE_TCP_REDIR, 0, 0, 0},
    [CONFIG_KEY_LOCAL_IPV4_ADDRESS] = {"local_ipv4_address", VALUE_TEXT, FIELD(local_ipv4_address),
                                       0, 0},
    [CONFIG_KEY_LOCAL_IPV6_ADDRESS] = {"local_ipv6_address", VALUE_TEXT, FIELD(local_ipv6_address),
                                       0, 0},
    [CONFIG_KEY_OUTBOUND_BIND_INTERFACE] = {"outbound_bind_interface", VALUE_STRING,
                                            FIELD(outbound_bind_interface), 0, 0},
    /* TCP_KEEPIDLE's range (tcp(7)) */
    [CONFIG_KEY_KEEP_ALIVE] = {"keep_alive", VALUE_INT, FIELD(keep_alive), 0, 32767},
    [CONFIG_KEY_MPTCP] = {"mptcp", VALUE_BOOL, FIELD(mptcp), 0, 0},
    [CONFIG_KEY_FWMARK] = {"fwmark", VALUE_INT, FIELD(fwmark), 0, 2147483647},
    [CONFIG_KEY_TCP_TPROXY] = {"tcp_tproxy", VALUE_BOOL, FIELD(tcp_tproxy), 0, 0},
    [CONFIG_KEY_PROXY_PROTOCOL] = {"proxy_protocol", VALUE_BOOL, FIELD(proxy_protocol), 0, 0},
    [CONFIG_KEY_PROXY_PROTOCOL_FROM] = {"proxy_protocol_from", VALUE_CIDRS, 0, 0, 0},
    [CONFIG_KEY_SHARED_STORE] = {"shared_store", VALUE_STRING, FIELD(shared.url), 0, 0},
    [CONFIG_KEY_SHARED_STORE_FAILURE] = {"shared_store_failure", VALUE_STRING,
                                         FIELD(shared.failure_text), 0, 0},
    [CONFIG_KEY_SHARED_STORE_TIMEOUT_MS] = {"shared_store_timeout_ms", VALUE_INT,
                                            FIELD(shared.timeout_ms), 1, 60000},
    [CONFIG_KEY_SHARED_STORE_USERS] = {"shared_store_users", VALUE_STRING, FIELD(shared.users_key),
                                       0, 0},
    [CONFIG_KEY_STALL_TIMEOUT_MS] = {"stall_timeout_ms", VALUE_INT, FIELD(stall_timeout_ms), 0,
                                     600000},
    [CONFIG_KEY_CPU_AFFINITY] = {"cpu_affinity", VALUE_BOOL, FIELD(cpu_affinity), 0, 0},
    [CONFIG_KEY_MANAGER_ADDRESS] = {"manager_address", VALUE_TEXT, FIELD(manager_address), 0, 0},
    [CONFIG_KEY_MANAGER_ALLOW_REMOTE] = {"manager_allow_remote", VALUE_BOOL,
                                         FIELD(manager_allow_remote), 0, 0},
    [CONFIG_KEY_MANAGER_STATE] = {"manager_state", VALUE_STRING, FIELD(manager_state), 0, 0},
    [CONFIG_KEY_PORT_PASSWORD] = {"port_password", VALUE_PORT_PASSWORD, 0, 0, 0},
};

/* libev 3.3.5's stream ciphers, named in the refusal so the reason is clear. */
/* clang-format off */
static const char *const config_stream_methods[] = {
    "rc4-md5", "aes-128-ctr", "aes-192-ctr", "aes-256-ctr", "aes-128-cfb", "aes-192-cfb",
    "aes-256-cfb", "camellia-128-cfb", "camellia-192-cfb", "camellia-256-cfb", "bf-cfb",
    "chacha20-ietf", "salsa20", "chacha20", "table", "rc4", NULL};
/* clang-format on */

static const char *const config_role_names[] = {"server", "local", "tunnel", "redir", NULL};
static const char *const config_tcp_redir_names[] = {"redirect", "tproxy", NULL};
static const char *const config_balance_names[] = {"reuseport", "shared", "dispatch", NULL};
static const char *const config_mode_names[] = {"tcp_only", "tcp_and_udp", "udp_only", NULL};
static const char *const config_plugin_mode_names[] = {"tcp_only", "tcp_and_udp", NULL};
static const char *const config_protocol_names[] = {"mixed", "socks", "http", NULL};

/* ---- Names of the choices, shared with the command line ---- */

int config_name_index(const char *const *names, const char *name)
{
    for (int i = 0; name && names[i]; i++)
        if (strcmp(names[i], name) == 0)
            return i;
    return -1;
}

const char *config_role_name(enum config_role r)
{
    return (unsigned)r < 4 ? config_role_names[r] : "?";
}

const char *config_balance_name(enum config_balance b)
{
    return (unsigned)b < 3 ? config_balance_names[b] : "?";
}

const char *config_mode_name(enum config_mode m)
{
    return (unsigned)m < 3 ? config_mode_names[m] : "?";
}

const char *config_plugin_mode_name(enum config_plugin_mode m)
{
    return (unsigned)m < 2 ? config_plugin_mode_names[m] : "?";
}

const char *config_protocol_name(enum config_protocol p)
{
    return (unsigned)p < 3 ? config_protocol_names[p] : "?";
}

int config_role_from_name(const char *name, enum config_role *out)
{
    int i = config_name_index(config_role_names, name);
    if (i < 0)
        return -1;
    *out = (enum config_role)i;
    return 0;
}

int config_balance_from_name(const char *name, enum config_balance *out)
{
    int i = config_name_index(config_balance_names, name);
    if (i < 0)
        return -1;
    *out = (enum config_balance)i;
    return 0;
}

int config_mode_from_name(const char *name, enum config_mode *out)
{
    int i = config_name_index(config_mode_names, name);
    if (i < 0)
        return -1;
    *out = (enum config_mode)i;
    return 0;
}

/* ---- Integers, shared with the command line ---- */

int config_parse_int(const char *s, int min, int max, int *out)
{
    long long v = 0;
    if (!s || !*s)
        return -1;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9' || p - s >= 10)
            return -1;
        v = v * 10 + (*p - '0');
    }
    if (v < min || v > max)
        return -1;
    *out = (int)v;
    return 0;
}

void config_plugin_args_free(struct config_plugin *p)
{
    for (int i = 0; i < p->n_plugin_args; i++)
        free(p->plugin_args[i]);
    p->n_plugin_args = 0;
}

static int config_expected(struct config_ctx *x, const struct config_key_token *t,
                           const char *expected, const json_t *v)
{
    char desc[80];
    return config_fail(x, &t->pos, "\"%s\": expected %s, got %s", t->name, expected,
                       config_describe(v, desc, sizeof desc));
}

/* ---- One setter per kind of value ---- */

static int config_set_text(struct config_ctx *x, const struct config_key_token *t,
                           const struct config_key_spec *k, const json_t *v)
{
    char num[32];
    const char *s;
    char **field = (char **)(void *)((char *)x->c + k->offset);

    if (json_is_null(v) && k->type == VALUE_TEXT)
        return 0; /* libev: to_string(null) is NULL, the key stays unset */
    if (json_is_string(v)) {
        s = json_string_value(v);
    } else if (json_is_integer(v) && k->type == VALUE_TEXT) {
        snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        s = num;
    } else {
        return config_expected(x, t, "a string", v);
    }
    /* An empty password is kept so that validation can call it what it is. */
    if (!*s && k != &config_keys[CONFIG_KEY_PASSWORD])
        return config_expected(x, t, "a non-empty string", v);
    char *copy = strdup(s);
    if (!copy)
        return config_out_of_memory(x);
    free(*field);
    *field = copy;
    return 0;
}

static int config_set_int(struct config_ctx *x, const struct config_key_token *t,
                          const struct config_key_spec *k, const json_t *v)
{
    char expected[64];
    int value;

    snprintf(expected, sizeof expected, "an integer from %d to %d", k->min, k->max);
    if (json_is_integer(v)) {
        json_int_t n = json_integer_value(v);
        if (n < k->min || n > k->max)
            return config_expected(x, t, expected, v);
        value = (int)n;
    } else if (k->type == VALUE_LIBEV_INT && json_is_null(v)) {
        return 0;
    } else if (k->type == VALUE_LIBEV_INT && json_is_string(v)) {
        /* libev reads these with to_string() and atoi(), so "8388" works there. */
        if (config_parse_int(json_string_value(v), k->min, k->max, &value) != 0)
            return config_expected(x, t, expected, v);
    } else {
        return config_expected(x, t, expected, v);
    }
    *(int *)(void *)((char *)x->c + k->offset) = value;
    return 0;
}

static int config_set_bool(struct config_ctx *x, const struct config_key_token *t,
                           const struct config_key_spec *k, const json_t *v)
{
    if (!json_is_boolean(v))
        return config_expected(x, t, "true or false", v);
    *(bool *)(void *)((char *)x->c + k->offset) = json_is_true(v);
    return 0;
}

static int config_set_server_list(struct config_ctx *x, const struct config_key_token *t,
                                  const json_t **items, size_t n)
{
    struct netaddr_endpoint parsed[CONFIG_MAX_SERVERS] = {0};
    char desc[80];

    for (size_t i = 0; i < n; i++) {
        const char *s = json_string_value(items[i]);
        if (netaddr_parse_hostport(s, strlen(s), CONFIG_SERVER_FLAGS, &parsed[i]) != 0)
            return config_fail(x, &t->pos,
                               "\"server\": expected an address, \"host:port\" or "
                               "\"[ipv6]:port\", got %s",
                               config_describe(items[i], desc, sizeof desc));
    }
    memset(x->c->server, 0, sizeof x->c->server);
    memcpy(x->c->server, parsed, n * sizeof parsed[0]);
    x->c->n_server = (int)n;
    return 0;
}

static int config_set_server(struct config_ctx *x, const struct config_key_token *t,
                             const json_t *v)
{
    const char *expected = "a string or a non-empty array of strings";
    const json_t *items[CONFIG_MAX_SERVERS];
    size_t n = 0;
    char desc[80];

    if (json_is_null(v))
        return 0; /* libev skips a server that is neither a string nor an array */
    if (x->c->n_servers_entries > 0)
        return config_fail(x, &t->pos, "\"server\": given with \"servers\"; keep one list");
    if (json_is_string(v)) {
        items[n++] = v;
    } else if (json_is_array(v) && json_array_size(v) > 0) {
        if (json_array_size(v) > CONFIG_MAX_SERVERS)
            return config_fail(x, &t->pos, "\"server\": expected at most %d addresses, got %zu",
                               CONFIG_MAX_SERVERS, json_array_size(v));
        for (; n < json_array_size(v); n++) {
            items[n] = json_array_get(v, n);
            if (!json_is_string(items[n]))
                return config_fail(x, &t->pos, "\"server\": expected a string at index %zu, got %s",
                                   n, config_describe(items[n], desc, sizeof desc));
        }
    } else {
        return config_expected(x, t, expected, v);
    }
    return config_set_server_list(x, t, items, n);
}

static bool config_is_stream_method(const char *method)
{
    for (int i = 0; config_stream_methods[i]; i++)
        if (strcasecmp(config_stream_methods[i], method) == 0)
            return true;
    return false;
}

static int config_set_method(struct config_ctx *x, const struct config_key_token *t,
                             const json_t *v)
{
    const char *s;
    int m;

    if (json_is_null(v))
        return 0;
    if (!json_is_string(v))
        return config_expected(x, t, "a method name such as \"chacha20-ietf-poly1305\"", v);
    s = json_string_value(v);
    m = crypto_method_lookup(s);
    if (m < 0) {
        char desc[80];
        return config_fail(x, &t->pos, "\"method\": %s is not supported; reuseproxy supports %s%s",
                           config_quote(s, desc, sizeof desc), crypto_method_names(),
                           config_is_stream_method(s)
                               ? " (stream ciphers are insecure and were replaced by the AEAD "
                                 "methods of SIP004)"
                               : "");
    }
    x->c->method = (enum crypto_method)m;
    return 0;
}

/* "plugin_args": shadowsocks-rust's extra arguments of the plugin, as an array of strings (a
 * single string is one argument, never split: no shell reads it). */
static int config_set_plugin_args(struct config_ctx *x, const struct config_key_token *t,
                                  const json_t *v)
{
    struct config_plugin *p = &x->c->plugin;
    size_t n = json_is_array(v) ? json_array_size(v) : 1;
    char desc[80];

    config_plugin_args_free(p);
    if (json_is_null(v))
        return 0;
    if (!json_is_string(v) && (!json_is_array(v) || n > CONFIG_MAX_PLUGIN_ARGS))
        return config_fail(x, &t->pos,
                           "\"plugin_args\": expected an array of at most %d strings, got %s",
                           CONFIG_MAX_PLUGIN_ARGS, config_describe(v, desc, sizeof desc));
    for (size_t i = 0; i < n; i++) {
        const json_t *a = json_is_array(v) ? json_array_get(v, i) : v;
        if (!json_is_string(a))
            return config_fail(x, &t->pos,
                               "\"plugin_args\": expected a string at index %zu, got %s", i,
                               config_describe(a, desc, sizeof desc));
        p->plugin_args[i] = strdup(json_string_value(a));
        if (!p->plugin_args[i])
            return config_out_of_memory(x);
        p->n_plugin_args = (int)i + 1;
    }
    return 0;
}

/* "proxy_protocol_from": the balancers' networks, each "a.b.c.d/n", "ipv6/n" or one address. */
static int config_set_cidrs(struct config_ctx *x, const struct config_key_token *t, const json_t *v)
{
    size_t n = json_is_array(v) ? json_array_size(v) : 1;
    struct config *c = x->c;
    char desc[80];

    c->n_proxy_protocol_from = 0;
    if (json_is_null(v))
        return 0;
    if (!json_is_string(v) && (!json_is_array(v) || n == 0 || n > CONFIG_MAX_PROXY_FROM))
        return config_fail(x, &t->pos,
                           "\"%s\": expected an array of 1 to %d networks (\"10.0.0.0/8\", "
                           "\"2001:db8::/32\", an address), got %s",
                           t->name, CONFIG_MAX_PROXY_FROM, config_describe(v, desc, sizeof desc));
    for (size_t i = 0; i < n; i++) {
        const json_t *a = json_is_array(v) ? json_array_get(v, i) : v;
        if (!json_is_string(a) ||
            netaddr_parse_cidr(json_string_value(a), &c->proxy_protocol_from[i]) != 0)
            return config_fail(x, &t->pos,
                               "\"%s\": expected a network such as \"10.0.0.0/8\" or an "
                               "address at index %zu, got %s",
                               t->name, i, config_describe(a, desc, sizeof desc));
        c->n_proxy_protocol_from = (int)i + 1;
    }
    return 0;
}

static int config_set_plugin_mode(struct config_ctx *x, const struct config_key_token *t,
                                  const json_t *v)
{
    int i =
        json_is_string(v) ? config_name_index(config_plugin_mode_names, json_string_value(v)) : -1;
    if (json_is_null(v)) {
        x->c->plugin.plugin_mode = CONFIG_PLUGIN_TCP_ONLY;
        return 0;
    }
    if (i < 0)
        return config_expected(x, t, "\"tcp_only\" or \"tcp_and_udp\"", v);
    x->c->plugin.plugin_mode = (enum config_plugin_mode)i;
    return 0;
}

static int config_set_choice(struct config_ctx *x, const struct config_key_token *t,
                             const struct config_key_spec *k, const json_t *v)
{
    static const char *const balance_servers_names[] = {"latency", "round-robin", NULL};
    const char *const *names = k->type == VALUE_MODE              ? config_mode_names
                               : k->type == VALUE_ROLE            ? config_role_names
                               : k->type == VALUE_PROTOCOL        ? config_protocol_names
                               : k->type == VALUE_BALANCE_SERVERS ? balance_servers_names
                               : k->type == VALUE_TCP_REDIR       ? config_tcp_redir_names
                                                                  : config_balance_names;
    int i;

    if (k->type == VALUE_MODE && json_is_null(v)) {
        x->c->mode = MODE_TCP_ONLY; /* libev: a null mode is tcp_only */
        return 0;
    }
    i = json_is_string(v) ? config_name_index(names, json_string_value(v)) : -1;
    if (i < 0) {
        char expected[96] = "one of ";
        if (!names[2]) /* two: "a" or "b" */
            snprintf(expected, sizeof expected, "\"%s\" or \"%s\"", names[0], names[1]);
        else
            for (int n = 0; names[n]; n++)
                snprintf(expected + strlen(expected), sizeof expected - strlen(expected),
                         "%s\"%s\"", n ? ", " : "", names[n]);
        return config_expected(x, t, expected, v);
    }
    if (k->type == VALUE_MODE)
        x->c->mode = (enum config_mode)i;
    else if (k->type == VALUE_ROLE)
        x->c->role = (enum config_role)i;
    else if (k->type == VALUE_PROTOCOL)
        x->c->protocol = (enum config_protocol)i;
    else if (k->type == VALUE_BALANCE_SERVERS)
        x->c->balance_servers = (enum config_balance_servers)i;
    else if (k->type == VALUE_TCP_REDIR)
        x->c->tcp_redir = (enum config_tcp_redir)i;
    else
        x->c->balance = (enum config_balance)i;
    return 0;
}

int config_set_value(struct config_ctx *x, const struct config_key_token *t,
                     const struct config_key_spec *k, const json_t *v)
{
    switch (k->type) {
    case VALUE_TEXT:
    case VALUE_STRING:
        return config_set_text(x, t, k, v);
    case VALUE_LIBEV_INT:
    case VALUE_INT:
        return config_set_int(x, t, k, v);
    case VALUE_BOOL:
        return config_set_bool(x, t, k, v);
    case VALUE_SERVER:
        return config_set_server(x, t, v);
    case VALUE_METHOD:
        return config_set_method(x, t, v);
    case VALUE_USERS:
        return k == &config_keys[CONFIG_KEY_LOCAL_USERS]
                   ? config_parse_users(x, &t->pos, k->name, v, true, &x->c->local_users,
                                        &x->c->n_local_users)
                   : config_parse_users(x, &t->pos, k->name, v, false, &x->c->users,
                                        &x->c->n_users);
    case VALUE_ARGS:
        return config_set_plugin_args(x, t, v);
    case VALUE_PLUGIN_MODE:
        return config_set_plugin_mode(x, t, v);
    case VALUE_SERVERS:
        return config_set_servers(x, &t->pos, v);
    case VALUE_PORT_PASSWORD:
        return config_set_port_password(x, &t->pos, v);
    case VALUE_CIDRS:
        return config_set_cidrs(x, t, v);
    default:
        return config_set_choice(x, t, k, v);
    }
}

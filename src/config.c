/* config.c: the JSON configuration file -> one struct config: the table of keys, one setter
 * per kind of value, the messages (every one with file:line:column), defaults and freeing.
 *
 * The file format is shadowsocks-libev 3.3.5's (src/jconf.c read_jconf): every libev key keeps
 * its meaning and its leniency (libev reads most values through to_string(), so "server_port":
 * "8388" and "password": 1234 are accepted, and null leaves a key unset). reuseproxy's own keys
 * (role, workers, balance, ...) are strict. libev keys that reuseproxy does not implement are
 * warned about and ignored; any other key is an error that suggests the nearest known one.
 *
 * jansson parses and validates the JSON; config_scan.c then finds the line and column of every
 * top-level key, so each message points at the key it is about (messages: config_msg.c). The
 * checks across keys and the typed values derived after the command line is merged are in
 * config_check.c, which this file does not call (nor it this one). Nothing here does I/O
 * except reading the file and log_warn() for ignored keys. */

#include "autoconfig.h" /* _GNU_SOURCE first: strndup, explicit_bzero */

#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "config_private.h"
#include "log.h"

/* libev refuses files of 256 KiB and more (MAX_CONF_SIZE); a little more room costs nothing. */
#define CONFIG_FILE_MAX (1024 * 1024)
/* Seconds are multiplied by 1000 for libev timers in milliseconds; keep that inside an int. */
#define CONFIG_MAX_SECONDS 2147483

enum config_value_type {
    VALUE_TEXT,      /* libev's to_string(): a string, or an integer as its digits; null = unset */
    VALUE_STRING,    /* reuseproxy's: a string only */
    VALUE_LIBEV_INT, /* an integer, or a string of digits (libev: to_string + atoi); null = unset */
    VALUE_INT,       /* an integer only */
    VALUE_BOOL,      /* true or false only (libev's check_json_value_type) */
    VALUE_SERVER,    /* a string or an array of strings */
    VALUE_METHOD,
    VALUE_USERS, /* an array of {"name": string, "password": string} */
    VALUE_ARGS,  /* a string (one argument) or an array of strings */
    VALUE_PLUGIN_MODE,
    VALUE_CIDRS, /* an array of CIDR strings (or one string) */
    VALUE_MODE,
    VALUE_ROLE,
    VALUE_BALANCE,
    VALUE_PROTOCOL,
    VALUE_SERVERS,        /* an array of {"server", "server_port", "method", "password"} */
    VALUE_BALANCE_SERVERS, /* "latency" or "round-robin" */
    VALUE_TCP_REDIR,
    VALUE_PORT_PASSWORD /* {"port": "password", ...} */
};

struct config_key_spec {
    const char *name;
    enum config_value_type type;
    size_t offset; /* of the field in struct config */
    int min, max;  /* for integers */
};

#define FIELD(f) offsetof(struct config, f)
static const struct config_key_spec config_keys[CONFIG_KEY_COUNT] = {
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

/* Keys of shadowsocks-libev (3.3.5 and its master branch) that reuseproxy reads past with a
 * warning; "remote_dns" comes from shadowsocks-android's configs, which share the file. */
/* clang-format off */
static const char *const config_ignored_keys[] = {
    "mtu", "dscp", "workdir",
    "tcp_incoming_sndbuf", "tcp_incoming_rcvbuf", "tcp_outgoing_sndbuf", "tcp_outgoing_rcvbuf",
    "remote_dns", NULL};
/* clang-format on */

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

static int config_name_index(const char *const *names, const char *name)
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

/* ---- Defaults and freeing ---- */

int config_default_workers(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1)
        return 1;
    return n > CONFIG_MAX_WORKERS ? CONFIG_MAX_WORKERS : (int)n;
}

void config_defaults(struct config *c)
{
    memset(c, 0, sizeof *c);
    c->method = CRYPTO_CHACHA20_POLY1305; /* libev 3.3.5's default method */
    c->timeout = 60;
    c->mode = MODE_TCP_ONLY;
    /* local_address stays NULL until given, so that the server role can tell it was set (and
     * warn that it ignores it); the local roles then listen on libev's default, 127.0.0.1. */
    c->role = ROLE_SERVER;
    c->workers = config_default_workers();
    c->balance = BALANCE_REUSEPORT;
    c->block_private = true;
    c->udp_timeout = 300;
    c->udp_max_associations = 65536;
    c->drain_timeout = 30;
    c->stall_timeout_ms = 500;
    c->connect_timeout = 10;
    c->server_check_interval = 10;
    c->replay_protection = true;
    c->replay_capacity = 1048576;
    c->shared.timeout_ms = 50;
}

static void config_plugin_args_free(struct config_plugin *p)
{
    for (int i = 0; i < p->n_plugin_args; i++)
        free(p->plugin_args[i]);
    p->n_plugin_args = 0;
}

void config_free(struct config *c)
{
    free(c->path);
    free(c->password);
    free(c->key);
    free(c->nameserver);
    free(c->local_address);
    free(c->tunnel_address);
    free(c->user);
    free(c->acl);
    free(c->metrics_address);
    free(c->local_ipv4_address);
    free(c->local_ipv6_address);
    free(c->outbound_bind_interface);
    free(c->shared.url);
    free(c->shared.failure_text);
    free(c->shared.users_key);
    free(c->manager_address);
    free(c->manager_state);
    free(c->plugin.plugin);
    free(c->plugin.plugin_opts);
    free(c->server_url);
    config_servers_free(c);
    config_port_sources_free(c);
    config_plugin_args_free(&c->plugin);
    config_users_free(c->users, c->n_users);
    config_users_free(c->local_users, c->n_local_users);
    config_ports_free(c);
    memset(c, 0, sizeof *c);
}

/* ---- Messages ---- */

static int config_expected(struct config_ctx *x, const struct config_key_token *t,
                           const char *expected, const json_t *v)
{
    char desc[80];
    return config_fail(x, &t->pos, "\"%s\": expected %s, got %s", t->name, expected,
                       config_describe(v, desc, sizeof desc));
}

static int config_out_of_memory(struct config_ctx *x)
{
    return config_fail(x, NULL, "out of memory");
}

/* Optimal string alignment distance (Levenshtein plus adjacent transpositions, so "mehtod" is
 * one edit from "method"), ignoring case. Both strings are shorter than CONFIG_KEY_NAME_MAX. */
static int config_edit_distance(const char *a_in, const char *b_in)
{
    int d[CONFIG_KEY_NAME_MAX + 1][CONFIG_KEY_NAME_MAX + 1];
    char a[CONFIG_KEY_NAME_MAX] = {0}, b[CONFIG_KEY_NAME_MAX] = {0};
    int la = 0, lb = 0;

    for (; la < CONFIG_KEY_NAME_MAX - 1 && a_in[la]; la++)
        a[la] = (char)tolower((unsigned char)a_in[la]);
    for (; lb < CONFIG_KEY_NAME_MAX - 1 && b_in[lb]; lb++)
        b[lb] = (char)tolower((unsigned char)b_in[lb]);
    for (int i = 0; i <= la; i++)
        d[i][0] = i;
    for (int j = 0; j <= lb; j++)
        d[0][j] = j;
    for (int i = 1; i <= la; i++) {
        for (int j = 1; j <= lb; j++) {
            int cost = a[i - 1] != b[j - 1];
            int best = d[i - 1][j - 1] + cost;
            if (d[i - 1][j] + 1 < best)
                best = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < best)
                best = d[i][j - 1] + 1;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                d[i - 2][j - 2] + 1 < best)
                best = d[i - 2][j - 2] + 1;
            d[i][j] = best;
        }
    }
    return d[la][lb];
}

/* The known key nearest to name, if it is near enough to be a plausible slip of the finger. */
static const char *config_nearest_key(const char *name)
{
    size_t len = strlen(name);
    int limit = len <= 3 ? 1 : len <= 8 ? 2 : 3, best_d = limit + 1;
    const char *best = NULL;

    for (int i = 0; i < CONFIG_KEY_COUNT; i++) {
        int dist = config_edit_distance(name, config_keys[i].name);
        if (dist < best_d) {
            best_d = dist;
            best = config_keys[i].name;
        }
    }
    for (int i = 0; config_ignored_keys[i]; i++) {
        int dist = config_edit_distance(name, config_ignored_keys[i]);
        if (dist < best_d) {
            best_d = dist;
            best = config_ignored_keys[i];
        }
    }
    return best;
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

static int config_set_value(struct config_ctx *x, const struct config_key_token *t,
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

/* ---- Loading ---- */

static int config_apply_key(struct config_ctx *x, const struct config_key_token *t,
                            const json_t *root)
{
    char q[96];
    const char *near;

    for (int i = 0; !t->too_long && i < CONFIG_KEY_COUNT; i++) {
        if (strcmp(config_keys[i].name, t->name) != 0)
            continue;
        const json_t *v = json_object_get(root, t->name);
        if (!v)
            return config_fail(x, &t->pos, "\"%s\": value not found", t->name);
        x->c->pos[i] = t->pos;
        return config_set_value(x, t, &config_keys[i], v);
    }
    if (!t->too_long && config_name_index(config_ignored_keys, t->name) >= 0) {
        log_warn("%s:%d:%d: \"%s\" is a shadowsocks-libev key that reuseproxy does not "
                 "implement; ignored",
                 x->name, t->pos.line, t->pos.column, t->name);
        return 0;
    }
    if (!t->too_long && strcmp(t->name, "auth") == 0)
        return config_fail(x, &t->pos,
                           "\"auth\": one-time auth was removed in "
                           "shadowsocks-libev 3.0, which refuses this key too; remove it");
    config_quote(t->name, q, sizeof q);
    near = t->too_long ? NULL : config_nearest_key(t->name);
    if (near)
        return config_fail(x, &t->pos, "unknown key %s; did you mean \"%s\"?", q, near);
    return config_fail(x, &t->pos, "unknown key %s", q);
}

/* jansson stops at the first duplicate key anywhere. When it is a top-level one, the scanner
 * finds both places, so the message can point at the repeat and name the first. */
static int config_duplicate_error(struct config_ctx *x, const char *text, size_t len,
                                  const json_error_t *e)
{
    struct config_key_token *tok;
    size_t upto = e->position > 0 && (size_t)e->position < len ? (size_t)e->position : len;
    int n = config_scan_keys(text, upto, &tok);
    struct config_pos jpos = {e->line, e->column};
    char q[96];

    for (int i = 0; i < n - 1; i++) {
        if (strcmp(tok[i].name, tok[n - 1].name) == 0) {
            struct config_pos first = tok[i].pos, again = tok[n - 1].pos;
            config_quote(tok[i].name, q, sizeof q);
            free(tok);
            return config_fail(x, &again, "duplicate key %s (first given at line %d, column %d)", q,
                               first.line, first.column);
        }
    }
    free(tok);
    return config_fail(x, &jpos, "invalid JSON: %s", e->text);
}

static int config_json_error(struct config_ctx *x, const char *text, size_t len,
                             const json_error_t *e)
{
    struct config_pos pos = {e->line, e->column};
    if (json_error_code(e) == json_error_duplicate_key)
        return config_duplicate_error(x, text, len, e);
    /* Columns are 1-based: jansson's 0 means it had just read a newline, as at the end of a
     * truncated file; point at the last character it read before it instead. */
    if (pos.column < 1)
        pos = config_scan_last_token(text, e->position > 0 && (size_t)e->position < len
                                               ? (size_t)e->position
                                               : len);
    return config_fail(x, &pos, "invalid JSON: %s", e->text);
}

static int config_apply_object(struct config_ctx *x, const char *text, size_t len,
                               const json_t *root)
{
    struct config_key_token *tok;
    int n = config_scan_keys(text, len, &tok), rc = 0;

    if (n < 0)
        rc = config_out_of_memory(x);
    else if ((size_t)n != json_object_size(root)) /* the scanner and jansson must agree */
        rc = config_fail(x, NULL, "internal error: found %d keys where jansson read %zu", n,
                         json_object_size(root));
    for (int i = 0; rc == 0 && i < n; i++)
        rc = config_apply_key(x, &tok[i], root);
    free(tok);
    return rc;
}

/* "server_url": the URI stands for the keys it fills, so giving one of them too is a
 * contradiction, named at the key; once applied, messages about those keys point at the URI. */
static int config_apply_url(struct config_ctx *x)
{
    static const enum config_key filled[] = {
        CONFIG_KEY_SERVER, CONFIG_KEY_SERVER_PORT, CONFIG_KEY_PASSWORD,   CONFIG_KEY_KEY,
        CONFIG_KEY_METHOD, CONFIG_KEY_PLUGIN,      CONFIG_KEY_PLUGIN_OPTS};
    struct config *c = x->c;
    struct config_pos at = c->pos[CONFIG_KEY_SERVER_URL];
    char why[400];

    for (size_t i = 0; i < sizeof filled / sizeof filled[0]; i++)
        if (c->pos[filled[i]].line > 0)
            return config_fail(x, &c->pos[filled[i]],
                               "\"%s\": given with \"server_url\" (line %d), whose URI sets "
                               "it too; keep one of them",
                               config_keys[filled[i]].name, at.line);
    if (config_apply_server_url(c, c->server_url, why, sizeof why) != 0)
        return config_fail(x, &at, "\"server_url\": %s", why);
    for (size_t i = 0; i < sizeof filled / sizeof filled[0]; i++)
        c->pos[filled[i]] = at;
    return 0;
}

static int config_load_text(struct config *c, const char *text, size_t len, const char *name,
                            char *err, size_t errlen)
{
    struct config_ctx x = {c, name ? name : "(config)", err, errlen};
    struct config_pos start;
    json_error_t e;
    json_t *root;
    int rc;

    char *path = strdup(x.name);
    if (!path)
        return config_out_of_memory(&x);
    free(c->path);
    c->path = path;
    /* A UTF-8 byte order mark, as some editors write, is no part of the JSON (RFC 8259 8.1). */
    if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0) {
        text += 3;
        len -= 3;
    }
    if (config_scan_leading_space(text, len, &start) == len)
        return config_fail(&x, NULL, "the file is empty; expected a JSON object of settings");
    root = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &e);
    if (!root)
        return config_json_error(&x, text, len, &e);
    if (json_is_object(root)) {
        rc = config_apply_object(&x, text, len, root);
        if (rc == 0 && c->server_url && c->pos[CONFIG_KEY_SERVER_URL].line > 0)
            rc = config_apply_url(&x);
    } else {
        char desc[80];
        rc = config_fail(&x, &start, "expected a JSON object ({...}) at the top level, got %s",
                         config_describe(root, desc, sizeof desc));
    }
    json_decref(root);
    return rc;
}

int config_load_string(struct config *c, const char *json, const char *name, char *err,
                       size_t errlen)
{
    return config_load_text(c, json ? json : "", json ? strlen(json) : 0, name, err, errlen);
}

int config_load(struct config *c, const char *path, char *err, size_t errlen)
{
    struct config_ctx x = {c, path, err, errlen};
    FILE *f = fopen(path, "rb");
    char *buf;
    size_t n;
    int rc;

    if (!f)
        return config_fail(&x, NULL, "cannot open: %s", strerror(errno));
    buf = malloc(CONFIG_FILE_MAX + 1);
    if (!buf) {
        fclose(f);
        return config_out_of_memory(&x);
    }
    n = fread(buf, 1, CONFIG_FILE_MAX + 1, f);
    if (ferror(f))
        rc = config_fail(&x, NULL, "cannot read: %s", strerror(errno));
    else if (n > CONFIG_FILE_MAX)
        rc = config_fail(&x, NULL, "larger than %d bytes; is it really a configuration file?",
                         CONFIG_FILE_MAX);
    else
        rc = config_load_text(c, buf, n, path, err, errlen);
    fclose(f);
    free(buf);
    return rc;
}

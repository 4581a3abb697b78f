/* fuzz_config.c: the configuration loader (config_load_string: JSON through jansson, then every
 * key's checks and the positions reported in errors), and the small string parsers behind it
 * (netaddr's one host:port parser with each address key's flags, integers, the base64 "key").
 *
 * A configuration comes from the operator, not from the network, but a loader that crashes on a
 * typo, or reports an error without its position, fails the operator at the worst moment.
 * Promises: an error message is NUL-terminated, within the buffer, and starts with the name the
 * text was loaded under; a loaded configuration passes or fails config_validate() without
 * crashing and holds only values in the documented ranges, and once validated its typed values
 * (listen list, key, addresses) are complete; loading a second text over the
 * first (as the command line and reloads do) frees what it replaces. */
#include "autoconfig.h"

#include <string.h>

#include "config.h"
#include "crypto.h"
#include "fuzz.h"
#include "log.h"

#define NAME "fuzz.json"

static void check_error(const char *err, size_t cap)
{
    FUZZ_CHECK(memchr(err, '\0', cap) != NULL);
    FUZZ_CHECK(strncmp(err, NAME ":", strlen(NAME ":")) == 0);
}

static void check_loaded(const struct config *c)
{
    FUZZ_CHECK(c->n_server >= 0 && c->n_server <= CONFIG_MAX_SERVERS);
    for (int i = 0; i < c->n_server; i++) {
        const struct netaddr_target *t = &c->server[i].target;
        FUZZ_CHECK(t->host[0] != '\0' && memchr(t->host, '\0', sizeof t->host) != NULL);
        FUZZ_CHECK((t->addrlen > 0) == (t->atyp != NETADDR_ATYP_DOMAIN));
    }
    FUZZ_CHECK(c->server_port >= 0 && c->server_port <= 65535);
    FUZZ_CHECK(c->local_port >= 0 && c->local_port <= 65535);
    FUZZ_CHECK(crypto_method_info(c->method) != NULL);
    FUZZ_CHECK(c->timeout >= 1);
    FUZZ_CHECK(c->workers >= 0 && c->workers <= CONFIG_MAX_WORKERS);
    FUZZ_CHECK(c->verbose >= 0 && c->verbose <= 2);
    FUZZ_CHECK(c->plugin.n_plugin_args >= 0 && c->plugin.n_plugin_args <= CONFIG_MAX_PLUGIN_ARGS);
    for (int i = 0; i < c->plugin.n_plugin_args; i++)
        FUZZ_CHECK(c->plugin.plugin_args[i] != NULL);
    FUZZ_CHECK(c->plugin.plugin_mode == CONFIG_PLUGIN_TCP_ONLY ||
               c->plugin.plugin_mode == CONFIG_PLUGIN_TCP_AND_UDP);
    FUZZ_CHECK(!c->plugin.plugin || c->plugin.plugin[0] != '\0');
    for (int k = 0; k < CONFIG_KEY_COUNT; k++)
        FUZZ_CHECK(c->pos[k].line >= 0 && c->pos[k].column >= 0);
}

/* What config_validate() promises once it accepts: the typed values the program reads. */
static void check_validated(const struct config *c)
{
    const struct crypto_method_info *info = crypto_method_info(c->method);
    /* a key of the port's own, unless a SIP004 server has only its users' keys */
    bool users_only = c->ports[0].n_users > 0 && !c->password && !c->key;
    FUZZ_CHECK(c->n_port == 1 && (users_only || c->ports[0].key.len == info->key_len));
    for (int i = 0; i < c->ports[0].n_users; i++)
        FUZZ_CHECK(c->ports[0].users[i].key.len == info->key_len && c->ports[0].users[i].name);
    FUZZ_CHECK(c->n_listen >= 1 && c->n_listen <= CONFIG_MAX_LISTEN);
    for (int i = 0; i < c->n_listen; i++)
        FUZZ_CHECK(c->listen[i].target.port != 0);
    FUZZ_CHECK(!c->has_metrics || c->metrics.target.addrlen > 0);
    FUZZ_CHECK(c->role == ROLE_SERVER || c->upstream.target.port != 0);
    /* the local roles' servers, each with its port and a key of its method's length */
    FUZZ_CHECK(c->role == ROLE_SERVER ? c->n_upstream == 0 : c->n_upstream == c->n_server);
    for (int i = 0; i < c->n_upstream; i++)
        FUZZ_CHECK(c->upstreams[i].addr.target.port != 0 &&
                   c->upstreams[i].key.len == crypto_method_info(c->upstreams[i].method)->key_len);
    FUZZ_CHECK(c->role != ROLE_TUNNEL || c->tunnel.target.port != 0);
    FUZZ_CHECK(c->n_nameserver >= 0 && c->n_nameserver <= CONFIG_MAX_NAMESERVERS);
    for (int i = 0; i < c->n_nameserver; i++)
        FUZZ_CHECK(c->nameservers[i].target.addrlen > 0);
    /* a plugin the master can run: found, with a master, facing one address */
    FUZZ_CHECK(!c->plugin.plugin || (c->workers >= 1 && (c->role != ROLE_SERVER ||
                                                        c->n_listen == 1)));
}

static void check_helpers(const char *text)
{
    /* the configuration's address keys, each with its flags */
    static const unsigned flags[] = {CONFIG_SERVER_FLAGS, CONFIG_TUNNEL_FLAGS, CONFIG_METRICS_FLAGS,
                                     CONFIG_NAMESERVER_FLAGS};
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++) {
        struct netaddr_endpoint e;
        if (netaddr_parse_hostport(text, strlen(text), flags[i], &e) != 0)
            continue;
        FUZZ_CHECK(e.target.port != 0 || (flags[i] & NETADDR_PORT_OPTIONAL));
        FUZZ_CHECK(e.target.addrlen > 0 || !(flags[i] & NETADDR_NUMERIC));
        FUZZ_CHECK(memchr(e.target.host, '\0', sizeof e.target.host) != NULL);
    }
    struct crypto_key k;
    if (crypto_key_from_base64(&k, CRYPTO_AES_256_GCM, text) == 0)
        FUZZ_CHECK(k.len == 32);
    int v;
    if (config_parse_int(text, 0, 65535, &v) == 0)
        FUZZ_CHECK(v >= 0 && v <= 65535);
    (void)config_is_loopback(text);
    (void)config_is_placeholder_password(text);
    (void)crypto_method_lookup(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool quiet;
    if (!quiet) {
        /* warnings about libev-only keys would flood the fuzzer's output */
        log_set_level(LOG_LEVEL_ERROR);
        quiet = true;
    }
    if (size > 64 * 1024)
        return 0;
    char *text = malloc(size + 1);
    FUZZ_CHECK(text != NULL);
    memcpy(text, data, size);
    text[size] = '\0';
    char err[512];
    struct config c;

    memset(err, 0x5a, sizeof err);
    config_defaults(&c);
    if (config_load_string(&c, text, NAME, err, sizeof err) == 0) {
        check_loaded(&c);
        memset(err, 0x5a, sizeof err);
        if (config_validate(&c, err, sizeof err) != 0)
            FUZZ_CHECK(memchr(err, '\0', sizeof err) != NULL && err[0] != '\0');
        else
            check_validated(&c);
        /* the same text once more over what it set: every string it replaces is freed */
        memset(err, 0x5a, sizeof err);
        if (config_load_string(&c, text, NAME, err, sizeof err) == 0)
            check_loaded(&c);
        else
            check_error(err, sizeof err);
    } else {
        check_error(err, sizeof err);
    }
    config_free(&c);
    check_helpers(text);
    free(text);
    return 0;
}

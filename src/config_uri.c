/* config_uri.c: SIP002 URIs (ss_uri.h) in the configuration: "server_url", --server-url and
 * -s ss://... fill the server, its port, method and password (and the plugin) from one URI;
 * --print-uri writes the URI of a server's configuration for its clients to import. Part of
 * the configuration module (config_private.h); shared by config.c and cli.c so that the file
 * and the command line read a URI the same way. */
#include "autoconfig.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "ss_uri.h"

/* strdup into *field, replacing what it held; an empty value clears it. */
static int config_uri_set(char **field, const char *value)
{
    char *copy = value[0] ? strdup(value) : NULL;

    if (value[0] && !copy)
        return -1;
    free(*field);
    *field = copy;
    return 0;
}

int config_apply_server_url(struct config *c, const char *uri, char *err, size_t errlen)
{
    struct ss_uri u;
    struct netaddr_endpoint e;
    char why[200];

    if (ss_uri_parse(uri, &u, why, sizeof why) != 0) {
        snprintf(err, errlen, "not a SIP002 URI (ss://userinfo@host:port/?plugin=...#tag): %s",
                 why);
        return -1;
    }
    int m = crypto_method_lookup(u.method);
    if (m < 0) {
        snprintf(err, errlen, "the URI's method \"%.63s\" is not one of %s", u.method,
                 crypto_method_names());
        return -1;
    }
    if (netaddr_parse_hostport(u.host, strlen(u.host), CONFIG_SERVER_FLAGS, &e) != 0) {
        snprintf(err, errlen, "the URI's host \"%.200s\" is not a host name or IP address", u.host);
        return -1;
    }
    netaddr_set_target_port(&e.target, u.port);
    if (config_uri_set(&c->password, u.password) != 0 || config_uri_set(&c->key, "") != 0 ||
        config_uri_set(&c->plugin.plugin, u.plugin) != 0 ||
        config_uri_set(&c->plugin.plugin_opts, u.plugin_opts) != 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    memset(c->server, 0, sizeof c->server);
    c->server[0] = e;
    c->n_server = 1;
    c->server_port = u.port;
    c->method = (enum crypto_method)m;
    memset(&u, 0, sizeof u); /* the password */
    return 0;
}

/* A server's plugin as its client runs it: simple-obfs names the two ends differently, and
 * v2ray-plugin's "server" option marks the server end only. */
static void config_uri_client_plugin(const struct config *c, struct ss_uri *u)
{
    const char *p = c->plugin.plugin, *base = strrchr(p, '/');

    base = base ? base + 1 : p;
    snprintf(u->plugin, sizeof u->plugin, "%s",
             strcmp(base, "obfs-server") == 0 ? "obfs-local" : base);
    const char *opts = c->plugin.plugin_opts ? c->plugin.plugin_opts : "";
    size_t n = 0;
    while (*opts) {
        size_t len = strcspn(opts, ";");
        if (!(len == 6 && memcmp(opts, "server", 6) == 0) && n + len + 2 < sizeof u->plugin_opts) {
            if (n)
                u->plugin_opts[n++] = ';';
            memcpy(u->plugin_opts + n, opts, len);
            n += len;
            u->plugin_opts[n] = '\0';
        }
        opts += len + (opts[len] == ';');
    }
}

int config_server_url(const struct config *c, char *out, size_t cap, char *err, size_t errlen)
{
    struct ss_uri u = {0};
    const struct netaddr_target *t = &c->server[0].target;
    const struct crypto_method_info *mi = crypto_method_info(c->method);

    if (c->n_server < 1 || !c->password) {
        snprintf(err, errlen,
                 "--print-uri needs \"server\", \"server_port\" and \"password\" "
                 "(a URI carries the password, not a \"key\")");
        return -1;
    }
    if (strcmp(t->host, "0.0.0.0") == 0 || strcmp(t->host, "::") == 0 ||
        strcmp(t->host, "::0") == 0) {
        snprintf(err, errlen,
                 "--print-uri: \"server\" %s is a wildcard address, which a client "
                 "cannot reach; give the public address with -s HOST",
                 t->host);
        return -1;
    }
    snprintf(u.method, sizeof u.method, "%s", mi->name);
    snprintf(u.password, sizeof u.password, "%s", c->password);
    snprintf(u.host, sizeof u.host, "%s", t->host);
    u.port = t->port ? t->port : (uint16_t)c->server_port;
    if (c->plugin.plugin)
        config_uri_client_plugin(c, &u);
    /* SIP002: base64url user info for the AEAD methods, percent-encoding for SIP022's */
    int n = ss_uri_format(&u, mi->proto == CRYPTO_PROTO_SIP022, out, cap);
    memset(&u, 0, sizeof u);
    if (n < 0)
        snprintf(err, errlen, "--print-uri: the URI is longer than %zu bytes", cap - 1);
    return n < 0 ? -1 : 0;
}

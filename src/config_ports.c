/* config_ports.c: a server's ports, each with its own method, key, users and mode, and where
 * each listens. A configuration names them in one of three ways (include/config.h):
 *   the file's own port:  "server_port", "method", "password"/"key", "users", "mode"
 *   libev's port_password: {"8381": "pw1", "8382": "pw2"}: the file's method and mode for all
 *   the server role's "servers": one port per entry (config_servers.c reads them)
 * config_load() keeps what was written (c->port_sources, c->users); config_validate() derives
 * c->ports (the keys of each: SIP004 from the password, SIP022 PSKs, the users' keys) and the
 * listen list, (port, address) pairs. Part of the configuration module (config_private.h). */
#include "autoconfig.h" /* _GNU_SOURCE first: explicit_bzero */

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_private.h"
#include "log.h"

/* ---- Users ---- */

void config_users_free(struct config_user *u, int n)
{
    for (int i = 0; u && i < n; i++) {
        free(u[i].name);
        if (u[i].password)
            explicit_bzero(u[i].password, strlen(u[i].password));
        free(u[i].password);
    }
    if (u)
        crypto_wipe(u, (size_t)n * sizeof *u);
    free(u);
}

/* One member of a user: a non-empty string, copied. */
static int config_user_text(struct config_ctx *x, const struct config_pos *pos, const char *name,
                            size_t i, const json_t *user, const char *member, char **out)
{
    const json_t *v = json_object_get(user, member);
    char desc[80];

    if (!json_is_string(v) || !*json_string_value(v))
        return config_fail(x, pos, "\"%s\"[%zu]: expected \"%s\" as a non-empty string, got %s",
                           name, i, member, v ? config_describe(v, desc, sizeof desc) : "nothing");
    *out = strdup(json_string_value(v));
    return *out ? 0 : config_fail(x, NULL, "out of memory");
}

/* "users": [{"name": "alice", "password": "..."}, ...] (or "key": base64): a server port's
 * users, told apart by trial decryption (SIP004) or by SIP023 identity headers (SIP022);
 * "local_users", of the same shape without "key": the local port's SOCKS5 and HTTP proxy users.
 * Only the shape is checked here; config_validate() derives the keys once the method is known,
 * and checks that names and keys are unique. */
int config_parse_users(struct config_ctx *x, const struct config_pos *pos, const char *name,
                       const json_t *v, bool local, struct config_user **users, int *n_users)
{
    size_t n = json_is_array(v) ? json_array_size(v) : 0;
    char desc[80];

    config_users_free(*users, *n_users);
    *users = NULL;
    *n_users = 0;
    if (json_is_null(v))
        return 0;
    if (!json_is_array(v) || n == 0 || n > CONFIG_MAX_USERS)
        return config_fail(x, pos,
                           "\"%s\": expected an array of 1 to %d objects {\"name\": ..., "
                           "\"password\": ...}, got %s",
                           name, CONFIG_MAX_USERS, config_describe(v, desc, sizeof desc));
    if (!(*users = calloc(n, sizeof **users)))
        return config_fail(x, NULL, "out of memory");
    for (size_t i = 0; i < n; i++) {
        const json_t *u = json_array_get(v, i);
        const char *k;
        json_t *member;
        if (!json_is_object(u))
            return config_fail(x, pos, "\"%s\"[%zu]: expected an object, got %s", name, i,
                               config_describe(u, desc, sizeof desc));
        json_object_foreach((json_t *)u, k, member) {
            if (strcmp(k, "name") != 0 && strcmp(k, "password") != 0 &&
                (local || strcmp(k, "key") != 0))
                return config_fail(x, pos,
                                   "\"%s\"[%zu]: unknown member %s; a user has \"name\" and "
                                   "\"password\"%s",
                                   name, i, config_quote(k, desc, sizeof desc),
                                   local ? "" : " (or \"key\")");
        }
        /* "key": the key in base64, as the file's own "key" (for SIP022 the password is one) */
        bool is_key = !local && json_object_get(u, "key") != NULL;
        if (is_key && json_object_get(u, "password"))
            return config_fail(x, pos, "\"%s\"[%zu]: expected \"password\" or \"key\", not both",
                               name, i);
        *n_users = (int)i + 1;
        (*users)[i].is_key = is_key;
        (*users)[i].metrics_slot = -1;
        if (config_user_text(x, pos, name, i, u, "name", &(*users)[i].name) != 0 ||
            config_user_text(x, pos, name, i, u, is_key ? "key" : "password",
                             &(*users)[i].password) != 0)
            return -1;
    }
    return 0;
}

/* ---- "port_password" ---- */

void config_port_sources_free(struct config *c)
{
    for (int i = 0; i < c->n_port_sources; i++) {
        struct config_port_source *s = &c->port_sources[i];
        if (s->password)
            explicit_bzero(s->password, strlen(s->password));
        free(s->password);
        config_users_free(s->users, s->n_users);
    }
    free(c->port_sources);
    c->port_sources = NULL;
    c->n_port_sources = 0;
}

/* libev's port_password (jconf.c): an object whose member names are ports and whose values
 * are passwords, strings only (libev's to_string() would take a number too, which only hides a
 * mistake here). A port given twice ("8381" and "08381") is an error. */
int config_set_port_password(struct config_ctx *x, const struct config_pos *pos, const json_t *v)
{
    struct config *c = x->c;
    size_t n = json_is_object(v) ? json_object_size(v) : 0, i = 0;
    const char *k;
    json_t *pw;
    char q[96], desc[80];

    if (c->n_servers_entries == 0)
        config_port_sources_free(c);
    if (json_is_null(v))
        return 0;
    if (c->n_servers_entries > 0)
        return config_fail(x, pos, "\"port_password\": given with \"servers\"; keep one list of "
                                   "ports");
    if (n == 0 || n > CONFIG_MAX_PORTS)
        return config_fail(x, pos,
                           "\"port_password\": expected an object of 1 to %d members "
                           "{\"8381\": \"password\", ...}, got %s",
                           CONFIG_MAX_PORTS, config_describe(v, desc, sizeof desc));
    if (!(c->port_sources = calloc(n, sizeof *c->port_sources)))
        return config_fail(x, NULL, "out of memory");
    json_object_foreach((json_t *)v, k, pw) {
        struct config_port_source *s = &c->port_sources[i];
        uint16_t port;
        if (netaddr_parse_port(k, strlen(k), &port) != 0)
            return config_fail(x, pos, "\"port_password\": member %s: expected a port from 1 to "
                                       "65535",
                               config_quote(k, q, sizeof q));
        for (size_t j = 0; j < i; j++)
            if (c->port_sources[j].addr.target.port == port)
                return config_fail(x, pos, "\"port_password\": port %u is listed twice", port);
        if (!json_is_string(pw) || !json_string_value(pw)[0])
            return config_fail(x, pos,
                               "\"port_password\": port %s: expected a password (a non-empty "
                               "string), got %s",
                               k, config_describe(pw, desc, sizeof desc));
        c->n_port_sources = (int)++i;
        s->addr.target.port = port;
        if (!(s->password = strdup(json_string_value(pw))))
            return config_fail(x, NULL, "out of memory");
    }
    return 0;
}

/* ---- Each port's keys ---- */

/* What one port's keys come from, and how messages name it. */
struct port_text {
    const char *text; /* the password, or with is_key the base64 key; NULL: none */
    bool is_key;      /* the file's "key" */
    int k_text;       /* the config_key whose position messages about it give */
    int k_users;      /* the same for its users, and for its mode */
    int k_mode;
    const char *label; /* "": the file's port (messages name the keys); else its prefix */
};

/* One SIP022 PSK (SIP022 section 2.1: the base64 of exactly the method's key length) from
 * text[0..len) of key k, for messages called what. */
static int config_psk(const struct config *c, enum crypto_method m, int k, const char *what,
                      const char *text, size_t len, struct crypto_key *out, char *err,
                      size_t errlen)
{
    const struct crypto_method_info *info = crypto_method_info(m);
    char b64[128];
    uint8_t raw[96];
    size_t got = 0;
    int rc = -1;

    if (len < sizeof b64) {
        memcpy(b64, text, len);
        b64[len] = '\0';
        rc = crypto_base64_decode(b64, raw, sizeof raw, &got);
        if (rc == 0 && got == info->key_len)
            rc = crypto_key_from_base64(out, m, b64);
        else if (rc == 0)
            rc = 1;
        explicit_bzero(b64, sizeof b64);
    }
    explicit_bzero(raw, sizeof raw);
    if (rc == 0)
        return 0;
    if (rc == 1)
        return config_invalid(c, k, err, errlen,
                              "%s: decodes to %zu bytes, but %s needs a key of %zu bytes "
                              "(reuseproxy --genkey %s makes one)",
                              what, got, info->name, info->key_len, info->name);
    return config_invalid(c, k, err, errlen,
                          "%s: expected the base64 of a %zu-byte key for %s "
                          "(reuseproxy --genkey %s makes one)",
                          what, info->key_len, info->name, info->name);
}

/* How messages name the port's password: the key for the file's port, else the label. */
static const char *config_text_name(const struct port_text *t, char *buf, size_t cap)
{
    if (t->label[0])
        snprintf(buf, cap, "%s", t->label);
    else
        snprintf(buf, cap, "%s", t->is_key ? "\"key\"" : "\"password\"");
    return buf;
}

/* A SIP022 port's keys. The password (or "key") is the base64 PSK; a client with identity
 * headers (SIP023) gives "iPSK:uPSK" (more identity PSKs may precede, as shadowsocks-rust and
 * sing-box take them), a server names its users in "users", each with its uPSK. */
static int config_port_psks(const struct config *c, struct config_port *p,
                            const struct port_text *t, char *err, size_t errlen)
{
    const struct crypto_method_info *info = crypto_method_info(p->method);
    const char *text = t->text ? t->text : "";
    bool eih_method = info->aead != CRYPTO_CHACHA20_POLY1305; /* SIP023: AES methods only */
    char what[96];
    int n = 0;

    config_text_name(t, what, sizeof what);
    for (const char *part = text;; n++) {
        const char *colon = strchr(part, ':');
        size_t len = colon ? (size_t)(colon - part) : strlen(part);
        if (colon && (c->role == ROLE_SERVER || !eih_method))
            return config_invalid(c, t->k_text, err, errlen,
                                  "%s: \"iPSK:uPSK\" is for clients of %s servers with identity "
                                  "headers; %s",
                                  what, "2022-blake3-aes-*",
                                  c->role == ROLE_SERVER ? "a server takes one PSK and names its "
                                                           "users in \"users\""
                                                         : "this method has none");
        if (colon && n >= CONFIG_MAX_IDENTITY_KEYS)
            return config_invalid(c, t->k_text, err, errlen, "%s: at most %d identity keys", what,
                                  CONFIG_MAX_IDENTITY_KEYS);
        struct crypto_key *out = colon ? &p->identity_keys[n] : &p->key;
        if (config_psk(c, p->method, t->k_text, what, part, len, out, err, errlen) != 0)
            return -1;
        if (!colon)
            break;
        p->n_identity_keys = n + 1;
        part = colon + 1;
    }
    p->has_key = true;
    return 0;
}

/* One user's key: SIP004 derives it from the password as libev does (EVP_BytesToKey), a "key"
 * and every SIP022 uPSK are the base64 of the key. */
static int config_user_key(const struct config *c, struct config_port *p,
                           const struct port_text *t, int i, char *err, size_t errlen)
{
    struct config_user *u = &p->users[i];
    bool sip022 = crypto_method_info(p->method)->proto == CRYPTO_PROTO_SIP022;
    char what[128];

    snprintf(what, sizeof what, "%s\"users\"[%d].%s", t->label, i, u->is_key ? "key" : "password");
    if (sip022 || u->is_key)
        return config_psk(c, p->method, t->k_users, what, u->password, strlen(u->password),
                          &u->key, err, errlen);
    if (crypto_key_from_password(&u->key, p->method, u->password) != 0)
        return config_invalid(c, t->k_users, err, errlen, "%s: cannot derive a key", what);
    return 0;
}

/* A server port's users: their keys, unique names and keys. SIP004 finds a user by trial
 * decryption (proto_sip004.c), SIP022 by the SIP023 identity header (AES methods only). */
static int config_port_users(const struct config *c, struct config_port *p,
                             const struct port_text *t, char *err, size_t errlen)
{
    const struct crypto_method_info *info = crypto_method_info(p->method);
    char q[96];

    if (p->n_users == 0)
        return 0;
    if (c->role != ROLE_SERVER ||
        (info->proto == CRYPTO_PROTO_SIP022 && info->aead == CRYPTO_CHACHA20_POLY1305))
        return config_invalid(c, t->k_users, err, errlen,
                              "%s\"users\": only a server has users, with an AEAD method "
                              "(aes-*-gcm, chacha20-ietf-poly1305) or 2022-blake3-aes-128-gcm or "
                              "2022-blake3-aes-256-gcm (SIP023 identity headers)",
                              t->label);
    /* A SIP004 datagram carries no hint of its user: each would cost a full open per key. */
    if (info->proto == CRYPTO_PROTO_SIP004 && p->mode != MODE_TCP_ONLY)
        return config_invalid(c, t->k_mode, err, errlen,
                              "%s\"mode\": a port with \"users\" and %s serves TCP only "
                              "(\"tcp_only\"); UDP per user needs a 2022-blake3-aes-* method",
                              t->label, info->name);
    for (int i = 0; i < p->n_users; i++) {
        struct config_user *u = &p->users[i];
        if (config_user_key(c, p, t, i, err, errlen) != 0)
            return -1;
        /* Quadratic, but once per load; the worker's lookup is a hash. */
        for (int j = 0; j < i; j++) {
            if (strcmp(p->users[j].name, u->name) == 0)
                return config_invalid(c, t->k_users, err, errlen,
                                      "%s\"users\"[%d]: the name %s is also users[%d]'s", t->label,
                                      i, config_quote(u->name, q, sizeof q), j);
            if (memcmp(p->users[j].key.bytes, u->key.bytes, u->key.len) == 0)
                return config_invalid(c, t->k_users, err, errlen,
                                      "%s\"users\"[%d]: the same password as users[%d]; each user "
                                      "needs a key of their own",
                                      t->label, i, j);
        }
    }
    return 0;
}

/* A port's master key and its users' keys. libev lets "key" win over "password" when both are
 * set (crypto_init); so does reuseproxy. */
static int config_port_keys(const struct config *c, struct config_port *p,
                            const struct port_text *t, char *err, size_t errlen)
{
    const struct crypto_method_info *info = crypto_method_info(p->method);
    unsigned char raw[64];
    size_t got = 0;
    int rc;

    if (info->proto == CRYPTO_PROTO_SIP022)
        return config_port_psks(c, p, t, err, errlen) != 0 ? -1
                                                            : config_port_users(c, p, t, err, errlen);
    if (config_port_users(c, p, t, err, errlen) != 0)
        return -1;
    if (p->n_users > 0 && !t->text)
        return 0; /* SIP004 with users only: no key of the port's own */
    p->has_key = true;
    if (!t->is_key)
        return crypto_key_from_password(&p->key, p->method, t->text ? t->text : "") == 0
                   ? 0
                   : config_invalid(c, t->k_text, err, errlen, "%s: cannot derive a key for %s",
                                    config_text_name(t, (char[96]){0}, 96), info->name);
    rc = crypto_base64_decode(t->text, raw, sizeof raw, &got);
    explicit_bzero(raw, sizeof raw);
    if (rc != 0)
        return config_invalid(c, t->k_text, err, errlen,
                              "\"key\": expected base64 (standard or URL-safe) of %zu bytes",
                              info->key_len);
    if (got != info->key_len)
        return config_invalid(c, t->k_text, err, errlen,
                              "\"key\": decodes to %zu bytes, but %s needs a key of %zu bytes", got,
                              info->name, info->key_len);
    if (crypto_key_from_base64(&p->key, p->method, t->text) != 0)
        return config_invalid(c, t->k_text, err, errlen, "\"key\": cannot be decoded");
    return 0;
}

/* ---- The ports and their listen entries ---- */

void config_ports_free(struct config *c)
{
    if (c->ports)
        crypto_wipe(c->ports, (size_t)c->n_port * sizeof *c->ports); /* the derived keys */
    free(c->ports);
    free(c->listen);
    free(c->listen_port);
    c->ports = NULL;
    c->listen = NULL;
    c->listen_port = NULL;
    c->n_port = c->n_listen = 0;
}

int config_port_index(const struct config *c, uint16_t port)
{
    for (int i = 0; i < c->n_port; i++)
        if (c->ports[i].port == port)
            return i;
    return -1;
}

static int config_ports_alloc(struct config *c, int nports, int nlisten)
{
    config_ports_free(c);
    c->ports = calloc((size_t)nports, sizeof *c->ports);
    c->listen = calloc((size_t)nlisten, sizeof *c->listen);
    c->listen_port = calloc((size_t)nlisten, sizeof *c->listen_port);
    if (!c->ports || !c->listen || !c->listen_port) {
        config_ports_free(c);
        return -1;
    }
    c->n_port = nports;
    for (int i = 0; i < nports; i++)
        c->ports[i].metrics_slot = -1;
    return 0;
}

/* The file's one port: where "server" (each with its own port or server_port) or, in the local
 * roles, local_address:local_port listens; and the local roles' server. */
static int config_file_port(struct config *c, char *err, size_t errlen)
{
    enum netaddr_prefer prefer = c->ipv6_first ? NETADDR_PREFER_IPV6 : NETADDR_PREFER_ANY;
    bool server = c->role == ROLE_SERVER;
    uint16_t port = (uint16_t)(server ? c->server_port : c->local_port);
    struct port_text t = {c->key ? c->key : c->password, c->key != NULL,
                          c->key ? CONFIG_KEY_KEY : CONFIG_KEY_PASSWORD, CONFIG_KEY_USERS,
                          CONFIG_KEY_MODE, ""};

    if (config_ports_alloc(c, 1, server ? c->n_server : 1) != 0)
        return config_invalid(c, -1, err, errlen, "out of memory");
    if (server) {
        for (int i = 0; i < c->n_server; i++)
            c->listen[i] = c->server[i];
        c->n_listen = c->n_server;
    } else {
        if (c->local_address)
            c->listen[0] = c->local_listen;
        else /* libev's default */
            netaddr_parse_hostport("127.0.0.1", 9, CONFIG_LOCAL_ADDRESS_FLAGS, &c->listen[0]);
        c->n_listen = 1;
        c->upstream = c->server[0];
        if (!c->upstream.target.port)
            netaddr_set_target_port(&c->upstream.target, (uint16_t)c->server_port);
        c->upstream.prefer = prefer;
        c->tunnel.prefer = prefer;
    }
    for (int i = 0; i < c->n_listen; i++) {
        if (!c->listen[i].target.port)
            netaddr_set_target_port(&c->listen[i].target, port);
        c->listen[i].prefer = prefer;
    }
    struct config_port *p = &c->ports[0];
    p->port = port;
    p->method = c->method;
    p->mode = c->mode;
    p->users = c->users;
    p->n_users = c->n_users;
    if (!c->password && !c->key && c->n_users == 0)
        return 0; /* the local roles' servers have their own (config_derive_upstreams) */
    return config_port_keys(c, p, &t, err, errlen);
}

/* "port_password" or the server role's "servers": one port per source. */
static int config_source_port(struct config *c, int i, bool from_servers, char *err,
                              size_t errlen)
{
    struct config_port_source *s = &c->port_sources[i];
    struct config_port *p = &c->ports[i];
    int k = from_servers ? CONFIG_KEY_SERVERS : CONFIG_KEY_PORT_PASSWORD;
    char label[48];
    struct port_text t = {s->password, false, k, k, k, label};

    if (from_servers)
        snprintf(label, sizeof label, "\"servers\"[%d]: ", i);
    else
        snprintf(label, sizeof label, "\"port_password\" \"%u\": ", s->addr.target.port);
    if (!s->password && s->n_users == 0) { /* the file's; an entry with users has its own */
        t.text = c->key ? c->key : c->password;
        t.is_key = c->key != NULL;
    }
    p->port = s->addr.target.port;
    p->method = s->method_set ? s->method : c->method;
    p->mode = s->mode_set ? s->mode : c->mode;
    p->users = s->users;
    p->n_users = s->n_users;
    for (int j = 0; j < i; j++)
        if (c->ports[j].port == p->port)
            return config_invalid(c, k, err, errlen, "%sport %u is also servers[%d]'s", label,
                                  p->port, j);
    if (!t.text && p->n_users == 0)
        return config_invalid(c, k, err, errlen, "%sno password: give it one, or set the file's "
                                                 "\"password\"",
                              label);
    if (s->password && crypto_method_info(p->method)->proto == CRYPTO_PROTO_SIP004 &&
        config_is_placeholder_password(s->password))
        for (int a = 0; a < c->n_listen; a++)
            if (c->listen_port[a] == i && !config_is_loopback(c->listen[a].target.host))
                return config_invalid(c, k, err, errlen,
                                      "%sthe password is a placeholder, and reuseproxy would "
                                      "listen on %s, which is not a loopback address",
                                      label, c->listen[a].target.host);
    return config_port_keys(c, p, &t, err, errlen);
}

/* Every source's listen entries: a "servers" entry its own address; a port_password port
 * each "server" address (which then must not carry a port). */
static int config_source_listen(struct config *c, bool from_servers, char *err, size_t errlen)
{
    enum netaddr_prefer prefer = c->ipv6_first ? NETADDR_PREFER_IPV6 : NETADDR_PREFER_ANY;
    int naddr = from_servers ? 1 : c->n_server;
    long nlisten = (long)c->n_port_sources * naddr;

    for (int a = 0; !from_servers && a < c->n_server; a++)
        if (c->server[a].target.port)
            return config_invalid(c, CONFIG_KEY_SERVER, err, errlen,
                                  "\"server\": with \"port_password\", give addresses without a "
                                  "port (each port listens on every address)");
    if (nlisten > CONFIG_MAX_LISTEN)
        return config_invalid(c, from_servers ? CONFIG_KEY_SERVERS : CONFIG_KEY_PORT_PASSWORD,
                              err, errlen,
                              "%d ports on %d addresses make %ld listen addresses; at most %d",
                              c->n_port_sources, naddr, nlisten, CONFIG_MAX_LISTEN);
    if (config_ports_alloc(c, c->n_port_sources, (int)nlisten) != 0)
        return config_invalid(c, -1, err, errlen, "out of memory");
    for (int i = 0; i < c->n_port_sources; i++)
        for (int a = 0; a < naddr; a++) {
            struct netaddr_endpoint *e = &c->listen[c->n_listen];
            *e = from_servers ? c->port_sources[i].addr : c->server[a];
            netaddr_set_target_port(&e->target, c->port_sources[i].addr.target.port);
            e->prefer = prefer;
            c->listen_port[c->n_listen++] = i;
        }
    return 0;
}

int config_derive_ports(struct config *c, char *err, size_t errlen)
{
    bool from_servers = c->n_servers_entries > 0;

    if (c->role != ROLE_SERVER && c->n_port_sources > 0 && !from_servers)
        return config_invalid(c, CONFIG_KEY_PORT_PASSWORD, err, errlen,
                              "\"port_password\": only a server has several ports; the %s role "
                              "listens on local_port",
                              config_role_name(c->role));
    if (c->role != ROLE_SERVER || c->n_port_sources == 0)
        return config_file_port(c, err, errlen);
    if (c->n_users > 0)
        return config_invalid(c, CONFIG_KEY_USERS, err, errlen,
                              "\"users\": with several ports, give each port its users in its "
                              "\"servers\" entry");
    if (c->file_port_source) /* server_port is a port like the API's, not one ignored */
        ;
    else if (!from_servers && c->server_port && c->pos[CONFIG_KEY_SERVER_PORT].line > 0)
        log_warn("%s:%d:%d: \"server_port\" is ignored: \"port_password\" lists the ports (as in "
                 "shadowsocks-libev)",
                 c->path ? c->path : "command line", c->pos[CONFIG_KEY_SERVER_PORT].line,
                 c->pos[CONFIG_KEY_SERVER_PORT].column);
    else if (!from_servers && c->server_port)
        log_warn("-p is ignored: \"port_password\" lists the ports (as in shadowsocks-libev)");
    if (config_source_listen(c, from_servers, err, errlen) != 0)
        return -1;
    for (int i = 0; i < c->n_port; i++)
        if (config_source_port(c, i, from_servers, err, errlen) != 0)
            return -1;
    return 0;
}

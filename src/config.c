/* config.c: the JSON configuration file -> one struct config: reading and parsing the file,
 * each top-level key looked up in the table and set (config_keys.c: the table and one setter per
 * kind of value) or refused with the nearest known key, the messages (every one with
 * file:line:column), defaults and freeing.
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
#include <unistd.h>

#include "config_private.h"
#include "log.h"

/* libev refuses files of 256 KiB and more (MAX_CONF_SIZE); a little more room costs nothing. */
#define CONFIG_FILE_MAX (1024 * 1024)

/* Keys of shadowsocks-libev (3.3.5 and its master branch) that reuseproxy reads past with a
 * warning; "remote_dns" comes from shadowsocks-android's configs, which share the file. */
/* clang-format off */
static const char *const config_ignored_keys[] = {
    "mtu", "dscp", "workdir",
    "tcp_incoming_sndbuf", "tcp_incoming_rcvbuf", "tcp_outgoing_sndbuf", "tcp_outgoing_rcvbuf",
    "remote_dns", NULL};
/* clang-format on */

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

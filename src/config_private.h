/* config_private.h: what the parts of the configuration module share, and nothing outside
 * src/config*.c includes. The dependencies go one way:
 *   config_scan.c   where each top-level key stands (no dependency)
 *   config_msg.c    messages with FILE:LINE:COLUMN (no dependency)
 *   config.c        JSON -> struct config (uses scan, msg and keys)
 *   config_keys.c   the table of keys, one typed setter per kind of value (uses msg)
 *   config_check.c  config_validate(): checks across keys, typed values (uses msg)
 *   config_servers.c "servers" (uses msg)
 *   config_ports.c  users, "port_password", and each port's keys and listen entries (uses msg)
 * config.c and config_check.c never call each other. The interface for the rest of
 * reuseproxy is include/config.h. */
#ifndef RP_CONFIG_PRIVATE_H
#define RP_CONFIG_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

/* Room for a key name and its NUL; longer names are cut short and flagged too_long. */
#define CONFIG_KEY_NAME_MAX 64

/* ---- config_scan.c: the scanner over text jansson has already accepted ---- */

/* One top-level key, where it stands in the file. */
struct config_key_token {
    char name[CONFIG_KEY_NAME_MAX]; /* decoded, cut short if too_long */
    bool too_long;
    struct config_pos pos;
};

/* The top-level keys of a JSON object, in file order. Returns how many, or -1 (out of memory);
 * *tokens is malloc'ed (free it even when 0 are found). Safe on any text, but exact only on
 * valid JSON: the caller lets jansson check the text first. */
int config_scan_keys(const char *text, size_t len, struct config_key_token **tokens);

/* How many bytes of JSON whitespace open text; *pos gets the line and column of the first byte
 * after them. A result of len means the text holds nothing but whitespace. */
size_t config_scan_leading_space(const char *text, size_t len, struct config_pos *pos);

/* The line and column of the last character of text that is not JSON whitespace (1:1 if there
 * is none). jansson reports an error after a final newline (a truncated file) at column 0 of
 * the line after it; messages point here instead, where the text stops. */
struct config_pos config_scan_last_token(const char *text, size_t len);

/* ---- config_msg.c: messages ---- */

/* Where a message goes and which file it names. */
struct config_ctx {
    struct config *c;
    const char *name; /* the file, as messages call it */
    char *err;
    size_t errlen;
};

/* "NAME:LINE:COLUMN: message" (or "NAME: message" without a position) into x->err; returns -1. */
int config_fail(struct config_ctx *x, const struct config_pos *pos, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

struct json_t;
/* The same for key k of c ("PATH:LINE:COLUMN: " where k was read from the file, "PATH: "
 * otherwise; without a file "command line: "); k -1: no position. Returns -1. */
int config_invalid(const struct config *c, int k, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* A JSON value as a message shows it: a string quoted, a number as written, else its kind. */
const char *config_describe(const struct json_t *v, char *buf, size_t cap);

/* s quoted for a message into buf (cap bytes): '"' and '\' escaped, control characters as
 * \u00XX, cut short with "..." so a hostile file cannot flood the terminal. Returns buf. */
const char *config_quote(const char *s, char *buf, size_t cap);
/* "NAME: out of memory" into x->err; returns -1. */
int config_out_of_memory(struct config_ctx *x);

/* ---- config_keys.c: the table of keys and their typed setters ---- */

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

/* Every top-level key, indexed by enum config_key. */
extern const struct config_key_spec config_keys[CONFIG_KEY_COUNT];
/* The index of name in the NULL-terminated names, or -1. */
int config_name_index(const char *const *names, const char *name);
/* Forgets p's "plugin_args" (freed). */
void config_plugin_args_free(struct config_plugin *p);
/* Key t's value v set into x->c as spec k says, libev's leniency for libev's keys. Returns 0, or
 * -1 via config_fail() at the key. */
int config_set_value(struct config_ctx *x, const struct config_key_token *t,
                     const struct config_key_spec *k, const struct json_t *v);

/* ---- config_servers.c: the "servers" key ---- */

/* "servers": [{"server", "server_port", "method", "password" or "users", "mode"}, ...] into
 * c->port_sources[] and, for the first CONFIG_MAX_SERVERS, c->server[] with each entry's method
 * and password beside it. Returns 0, or -1 via config_fail() at pos. */
int config_set_servers(struct config_ctx *x, const struct config_pos *pos, const struct json_t *v);
/* Forgets the entries (c->port_sources, freed by config_port_sources_free). */
void config_servers_free(struct config *c);
/* True when every server has its own port and, with own_password, its own password: the
 * file's "server_port" (and "password") may then be missing. */
bool config_servers_complete(const struct config *c, bool own_password);
/* The local roles' typed server list, c->upstreams[] (each server's address with its port, its
 * method and master key), after ports[0]'s key is derived. Returns 0, or -1 with the reason. */
int config_derive_upstreams(struct config *c, char *err, size_t errlen);

/* config_check.c, for config_shared_users.c */
/* Types "shared_store" (and checks its companions) into c->shared. Returns 0 or -1. */
int config_check_shared(struct config *c, char *err, size_t errlen);
/* ---- config_manager.c: the ss-manager API's keys ---- */

/* "manager_address", "manager_allow_remote", "manager_state" checked and typed into
 * c->has_manager, manager_is_unix, manager_path, manager. Returns 0, or -1 with the message. */
int config_check_manager(struct config *c, char *err, size_t errlen);

/* ---- config_ports.c: users, "port_password", the ports ---- */

/* An array of users ({"name", "password"} or, unless local, {"name", "key"}) at pos, named
 * name in messages, into *users and *n (freed first). Only the shape is checked here; the keys
 * are derived by config_validate() once the method is known. Returns 0, or -1. */
int config_parse_users(struct config_ctx *x, const struct config_pos *pos, const char *name,
                       const struct json_t *v, bool local, struct config_user **users, int *n);
void config_users_free(struct config_user *u, int n);
/* libev's "port_password": {"8381": "pw1", ...} into c->port_sources[]. Returns 0, or -1. */
int config_set_port_password(struct config_ctx *x, const struct config_pos *pos,
                             const struct json_t *v);
/* Frees c->port_sources (their passwords and users). */
void config_port_sources_free(struct config *c);
/* Frees c->ports, c->listen and c->listen_port (the derived keys wiped). */
void config_ports_free(struct config *c);
/* The ports (c->ports: each one's method, mode and keys) and where they listen (c->listen),
 * from the file's port, "port_password" or the server role's "servers". Run by
 * config_validate() after the addresses are parsed. Returns 0, or -1 with the reason. */
int config_derive_ports(struct config *c, char *err, size_t errlen);

#endif

/* manager.h: the ss-manager API. shadowsocks-libev's ss-manager (doc/ss-manager.asciidoc,
 * "PROTOCOL") drives a server over datagrams, one command per datagram, "command[: JSON]":
 *   add: {"server_port": 8001, "password": "...", "method": "..."}   -> "ok" or "err"
 *   remove: {"server_port": 8001}                                     -> "ok" or "err"
 *   ping                                                              -> stat: {"8001": 11370}
 *   list (shadowsocks-rust's ssmanager)     -> [{"server_port": 8001, "password": ..., ...}]
 * and sends "stat: {...}" on its own to the panel every few seconds. Panels written for either
 * (shadowsocks-manager, ssmgr, ...) talk to reuseproxy unchanged.
 *
 * This header has two parts: the pure codec (manager.c: parse a datagram, write the replies, read
 * and write the list of ports the API added, which the state file holds too) and the master's
 * endpoint (manager_server.c: the socket in the master's loop, the periodic stat, the state file
 * written atomically). The master turns the API's ports into configurations (master.c). */
#ifndef RP_MANAGER_H
#define RP_MANAGER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "crypto.h"

struct config;

/* A password longer than this is refused ("err"): SIP022 keys are 44 characters of base64. */
#define MANAGER_PASSWORD_MAX 256
/* A command datagram longer than this is refused unread (recv truncates it). */
#define MANAGER_DATAGRAM_MAX 4096
/* libev's ss-server reports its traffic to ss-manager every 10 s (UPDATE_INTERVAL in
 * src/server.c); the panel hears it at that rhythm from reuseproxy too. */
#define MANAGER_STAT_INTERVAL 10.0

enum manager_verb { MANAGER_ADD = 0, MANAGER_REMOVE, MANAGER_PING, MANAGER_LIST };

/* One port the API added: what "add" said, with the method resolved (the file's when "add" named
 * none), so that the list, the state file and a later reload all agree. */
struct manager_port {
    uint16_t port;
    enum crypto_method method;
    bool has_method; /* "add" named it (else the caller fills in the file's) */
    char password[MANAGER_PASSWORD_MAX];
};

struct manager_cmd {
    enum manager_verb verb;
    struct manager_port port; /* add: every field; remove: port only */
};

/* The ports the API added, in the order they came. */
struct manager_ports {
    struct manager_port *v;
    int n, cap;
};

/* ---- manager.c: the pure codec (no I/O, no state) ---- */

/* Parses one datagram of len bytes (not NUL-terminated; a trailing newline is allowed, as
 * shadowsocks-rust's clients send one). Returns 0 with the command in *out, or -1 with the reason
 * in why: not a command, bad JSON, a port outside 1..65535, an unknown method, a password too
 * long, an unknown key. The port's password and key are not derived here. */
int manager_parse(const char *buf, size_t len, struct manager_cmd *out, char *why, size_t whylen);

/* The list as a JSON array, [{"server_port": N, "password": "...", "method": "..."}, ...] (a
 * SIP022 method's password is its base64 PSK), the "list" reply and the state file's text. NULL
 * when out of memory; free() it. */
char *manager_ports_to_json(const struct manager_ports *p);
/* Reads such an array (the state file) into *out, which it empties first. Returns 0, or -1 with
 * the reason in why (an entry is checked as "add" checks it; a port twice is refused). */
int manager_ports_from_json(const char *text, size_t len, struct manager_ports *out, char *why,
                            size_t whylen);
/* "stat: {"8001": 11370, ...}": ports[i] with bytes[i], in that order. Returns the length written
 * (NUL-terminated), or -1 when it does not fit cap. */
int manager_format_stat(const uint16_t *ports, const uint64_t *bytes, int n, char *out, size_t cap);

/* The port's entry, or NULL. */
struct manager_port *manager_ports_find(const struct manager_ports *p, uint16_t port);
/* Appends a copy of e. Returns 0, or -1 (out of memory, or the port is already there). */
int manager_ports_add(struct manager_ports *p, const struct manager_port *e);
/* Removes the port's entry. Returns 0, or -1 when there is none. */
int manager_ports_remove(struct manager_ports *p, uint16_t port);
/* *dst becomes a copy of src (dst emptied first). Returns 0 or -1 (out of memory). */
int manager_ports_copy(struct manager_ports *dst, const struct manager_ports *src);
/* Frees the entries (their passwords wiped); *p is empty and usable again. */
void manager_ports_free(struct manager_ports *p);

/* ---- manager_state.c: the state file ---- */

/* Reads "manager_state" into *out (emptied first); a missing file is an empty list. Returns 0,
 * or -1 with the reason (naming the file) in err. */
int manager_state_load(const char *path, struct manager_ports *out, char *err, size_t errlen);
/* Replaces the file with p atomically (temporary file, fsync, rename, directory fsync), mode
 * 0600. Returns 0, or -1 with the reason in err (the old file is then intact). */
int manager_state_save(const char *path, const struct manager_ports *p, char *err, size_t errlen);

/* ---- manager_server.c: the endpoint in the master's loop ---- */

struct ev_loop;
struct manager_server;

/* What the endpoint asks of the master. */
struct manager_hooks {
    /* Applies the configuration "the file's + next" (the API's ports after a change). Returns 0,
     * or -1 with the reason in why and nothing changed. */
    int (*apply)(void *arg, const struct manager_ports *next, char *why, size_t whylen);
    /* Fills ports[] and bytes[] (both directions so far) of up to cap served ports; returns
     * how many. */
    int (*stat)(void *arg, uint16_t *ports, uint64_t *bytes, int cap);
    void *arg;
};

/* Opens c's manager_address (c->has_manager) in loop, with the API's ports so far (initial:
 * from manager_state, already applied). NULL with the reason in err. */
struct manager_server *manager_server_new(struct ev_loop *loop, const struct config *c,
                                          const struct manager_ports *initial,
                                          const struct manager_hooks *hooks, char *err,
                                          size_t errlen);
/* The API's ports as applied now. */
const struct manager_ports *manager_server_ports(const struct manager_server *s);
/* The method of an "add" that names none (the file's, after a reload). */
void manager_server_set_method(struct manager_server *s, enum crypto_method m);
/* Closes the socket and removes the socket file it made (when it is still the same file). */
void manager_server_free(struct manager_server *s);

#endif

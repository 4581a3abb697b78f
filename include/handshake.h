/* handshake.h: how each role learns its target, as a parser over the client's first bytes.
 * No I/O and no session state inside: handshake_feed says what it found (a verdict) and what to
 * answer; relay.c alone acts on it (connects, holds a UDP association, probes or closes).
 *   server: the request's first flight, opened by the protocol (proto.h);
 *   local:  told apart by the first byte (as shadowsocks-rust's local does): 0x05 SOCKS5
 *           (RFC 1928: method selection, RFC 1929 username/password when local_users are
 *           set, then CONNECT or UDP ASSOCIATE), 0x04 SOCKS4/4a CONNECT, a letter an HTTP
 *           proxy request (http_proxy.h: CONNECT, or one absolute-form request);
 *   tunnel: nothing to read: the target is the configured tunnel_address;
 *   redir:  nothing to read: the target is where the connection was going (redir.h). */
#ifndef RP_HANDSHAKE_H
#define RP_HANDSHAKE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "config.h"
#include "netaddr.h"
#include "proto.h"

enum handshake_verdict {
    HANDSHAKE_NEED_MORE = 0, /* keep reading */
    HANDSHAKE_TARGET,        /* the target is known: connect */
    HANDSHAKE_UDP_ASSOCIATE, /* SOCKS5 UDP ASSOCIATE: answer with handshake_udp_reply, hold */
    HANDSHAKE_FAIL,          /* send reply (if any), then probe (silent) or close */
};

/* Where a SOCKS5 client is in RFC 1928: section 3 first, RFC 1929 when a method needs it,
 * then section 4. */
enum handshake_socks {
    HANDSHAKE_SOCKS_GREETING = 0,
    HANDSHAKE_SOCKS_AUTH,
    HANDSHAKE_SOCKS_REQUEST,
    HANDSHAKE_SOCKS_DONE,
};

/* What the local role's client speaks, known from its first byte. */
enum handshake_local {
    HANDSHAKE_LOCAL_UNKNOWN = 0,
    HANDSHAKE_LOCAL_SOCKS5,
    HANDSHAKE_LOCAL_SOCKS4,
    HANDSHAKE_LOCAL_HTTP,         /* an HTTP request whose head is not complete yet */
    HANDSHAKE_LOCAL_HTTP_CONNECT, /* an HTTP CONNECT: 200 once connected */
    HANDSHAKE_LOCAL_HTTP_FORWARD, /* an absolute-form request: the origin's response answers */
};

struct handshake {
    enum config_role role;
    enum handshake_socks socks;
    enum handshake_local local;
    enum config_protocol protocol;   /* local: what the port accepts */
    const struct config_user *users; /* local: local_users, NULL: no authentication */
    int n_users;
    struct proto_conn *conn; /* server: the connection's protocol state */
    struct proto_dir *dir;   /* server: the client -> server direction */
};

struct handshake_out {
    enum handshake_verdict verdict;
    size_t consumed;    /* bytes the caller drops from the front of its input (any verdict) */
    size_t input_len;   /* the input's length after the call: len, unless rewritten in place */
    uint8_t reply[192]; /* bytes to write to the client before acting on the verdict */
    size_t reply_len;
    /* HANDSHAKE_FAIL */
    const char *reason;
    bool silent;   /* a failed server handshake: the probe treatment, never an answer */
    bool replayed; /* the reason is a replay (counted apart) */
    /* HANDSHAKE_TARGET */
    struct netaddr_target target;       /* server: the request's target */
    uint8_t header[NETADDR_HEADER_MAX]; /* local roles: the address header to send on */
    size_t header_len;
    const uint8_t *early; /* server: initial data, inside the input */
    size_t early_len;
};

void handshake_init(struct handshake *h, enum config_role role, struct proto_conn *conn,
                    struct proto_dir *dir);
/* The local role's settings: what the port accepts and who may use it (users NULL: anyone). */
void handshake_set_local(struct handshake *h, enum config_protocol protocol,
                         const struct config_user *users, int n_users);
/* Whether name[0..name_len) and pass[0..pass_len) are one of users[0..n_users) (local_users:
 * RFC 1929 username/password, HTTP Basic). In constant time: every user's name and password
 * are compared in full, whatever matches, so a refusal's delay leaks neither which names exist
 * nor where a password differs; the time depends only on n_users. */
bool handshake_local_user_ok(const struct config_user *users, int n_users, const uint8_t *name,
                             size_t name_len, const uint8_t *pass, size_t pass_len);
/* Before reading: the tunnel and redir roles know their target at once (HANDSHAKE_TARGET,
 * header of fixed: the tunnel_address, or the connection's original destination); the others
 * need bytes (HANDSHAKE_NEED_MORE). HANDSHAKE_FAIL if fixed cannot be written as an address
 * header. */
enum handshake_verdict handshake_begin(struct handshake *h, const struct netaddr_target *fixed,
                                       struct handshake_out *out);
/* Bytes worth reading in one go for this role. */
size_t handshake_read_max(const struct handshake *h);
/* buf[0..len): what the client sent so far that was not consumed; buf has room for cap bytes
 * (cap >= len): an HTTP request is rewritten in place (it may grow by
 * HTTP_PROXY_REWRITE_EXTRA), and stays in buf, consumed 0, to go first to the server; full: no
 * room is left to read more. The server's input must start where the client's first byte is,
 * on every call. */
enum handshake_verdict handshake_feed(struct handshake *h, uint8_t *buf, size_t len, size_t cap,
                                      bool full, struct handshake_out *out);
/* The answer to a CONNECT, sent once the relay's connection is up (err 0: succeeded) or has
 * failed: err is the errno of the failure, EACCES for a target the ACL refuses. SOCKS5 (RFC
 * 1928 section 6): EACCES -> 2 connection not allowed by ruleset, ECONNREFUSED -> 5 connection
 * refused, ENETUNREACH -> 3, EHOSTUNREACH, ETIMEDOUT or ENOENT (a name that did not resolve) ->
 * 4 host unreachable, anything else 1 general failure; BND is 0.0.0.0:0. SOCKS4: 0x5A or 0x5B.
 * HTTP: 200 for a CONNECT, nothing for a forwarded request (the origin answers), 403 with a
 * short body for EACCES, 504 for a timeout and 502 for any other failure. Returns its length
 * (0: nothing to send) or -1. */
int handshake_connect_reply(const struct handshake *h, int err, uint8_t *out, size_t cap);
/* The answer to a UDP ASSOCIATE: succeeded with the address the client sends datagrams to, or
 * (bound NULL) command not supported when UDP is not enabled, general failure when it is.
 * Returns its length or -1. */
int handshake_udp_reply(bool enabled, const struct sockaddr *bound, uint8_t *out, size_t cap);

#endif

/* handshake.h: how each role learns its target, as a parser over the client's first bytes.
 * No I/O and no session state inside: handshake_feed says what it found (a verdict) and what to
 * answer; relay.c alone acts on it (connects, holds a UDP association, probes or closes).
 *   server: the request's first flight, opened by the protocol (proto.h);
 *   local:  SOCKS5 (RFC 1928): method selection, then CONNECT or UDP ASSOCIATE;
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

/* Where a SOCKS5 client is in RFC 1928: section 3 first, then section 4. */
enum handshake_socks {
    HANDSHAKE_SOCKS_GREETING = 0,
    HANDSHAKE_SOCKS_REQUEST,
    HANDSHAKE_SOCKS_DONE,
};

struct handshake {
    enum config_role role;
    enum handshake_socks socks;
    struct proto_conn *conn; /* server: the connection's protocol state */
    struct proto_dir *dir;   /* server: the client -> server direction */
};

struct handshake_out {
    enum handshake_verdict verdict;
    size_t consumed;   /* bytes the caller drops from the front of its input (any verdict) */
    uint8_t reply[32]; /* bytes to write to the client before acting on the verdict */
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
/* Before reading: the tunnel and redir roles know their target at once (HANDSHAKE_TARGET,
 * header of fixed: the tunnel_address, or the connection's original destination); the others
 * need bytes (HANDSHAKE_NEED_MORE). HANDSHAKE_FAIL if fixed cannot be written as an address
 * header. */
enum handshake_verdict handshake_begin(struct handshake *h, const struct netaddr_target *fixed,
                                       struct handshake_out *out);
/* Bytes worth reading in one go for this role. */
size_t handshake_read_max(const struct handshake *h);
/* buf[0..len): what the client sent so far that was not consumed; full: no room is left to read
 * more. The server's input must start where the client's first byte is, on every call. */
enum handshake_verdict handshake_feed(struct handshake *h, uint8_t *buf, size_t len, bool full,
                                      struct handshake_out *out);
/* The answer to a CONNECT (RFC 1928 section 6), sent once the relay's connection is up (err 0:
 * succeeded) or has failed: err is the errno of the failure, ECONNREFUSED -> 5 connection
 * refused, ENETUNREACH -> 3, EHOSTUNREACH, ETIMEDOUT or ENOENT (a name that did not resolve)
 * -> 4 host unreachable, anything else 1 general failure. BND is 0.0.0.0:0. Returns its length
 * or -1. */
int handshake_connect_reply(int err, uint8_t *out, size_t cap);
/* The answer to a UDP ASSOCIATE: succeeded with the address the client sends datagrams to, or
 * (bound NULL) command not supported when UDP is not enabled, general failure when it is.
 * Returns its length or -1. */
int handshake_udp_reply(bool enabled, const struct sockaddr *bound, uint8_t *out, size_t cap);

#endif

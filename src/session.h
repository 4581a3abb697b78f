/* session.h: the TCP session shared by relay.c (pipes, connect, lifetime) and handshake.c (how
 * each role learns its target). Private to those two files. */
#ifndef RP_SESSION_H
#define RP_SESSION_H

#include <ev.h>
#include <stdbool.h>
#include <sys/uio.h>

#include "buf.h"
#include "netaddr.h"
#include "resolve.h"
#include "ss_stream.h"

/* Stages of a session; relay.c's session_set_stage() is the one place that moves between them.
 * Each says what it waits for. */
enum session_stage {
    STAGE_HANDSHAKE, /* client bytes: the salt and first chunk (server), or SOCKS5 (local) */
    STAGE_RESOLVE,   /* the resolver's answer for the host to connect to */
    STAGE_CONNECT,   /* the non-blocking connect to complete */
    STAGE_RELAY,     /* bytes either way, until both directions have ended */
    STAGE_PROBE,     /* failed handshake: read and discard until the client leaves or times out */
    STAGE_UDP_HOLD,  /* SOCKS5 UDP ASSOCIATE control connection: wait for it to close */
};

struct side {
    int fd;
    ev_io rio;
    ev_io wio;
};

#define PIPE_IOV 16

/* One direction. A sealing pipe reads plaintext and writes chunks; an opening pipe reads chunks
 * and writes plaintext. Its buffer is borrowed from the worker's pool only while bytes are in
 * flight. */
struct pipe {
    struct buf *buf;
    struct ss_stream ss;
    bool seal;          /* true: plaintext in, chunks out */
    bool keyed;         /* ss is initialized (salt sent or received) */
    bool salt_pending;  /* seal: salt[] goes out in front of the first chunk */
    bool eof;           /* the source has ended */
    bool shut;          /* the end was passed on (shutdown(SHUT_WR) of the destination) */
    bool bulk;          /* a read filled the buffer: take RELAY_BULK_CAP buffers from now on */
    bool plain;         /* neither seals nor opens: bytes pass as they are (a bypassed target) */
    uint8_t salt[CRYPTO_MAX_SALT];
    /* open: plaintext payloads inside buf waiting to be written */
    struct iovec iov[PIPE_IOV];
    int iov_n, iov_i;
};

struct session {
    struct worker *w;
    struct session *prev, *next;
    enum session_stage stage;
    int socks_state;                /* local role: 0 greeting, 1 request */
    bool direct;                    /* local roles: the ACL bypasses the server for this target */
    struct side client, remote;
    struct pipe up;                 /* client -> remote */
    struct pipe down;               /* remote -> client */
    ev_timer timer;                 /* handshake, connect, idle or drain deadline */
    ev_tstamp accepted_at;
    ev_tstamp last_activity;
    struct resolve_query *query;
    struct resolve_result *addrs;   /* a name's addresses, only while connecting to a name */
    int addr_next;                  /* next address to try */
    struct netaddr_target target;   /* where the remote side connects */
    /* local roles: the address header sent in the first chunk, with any early data that is
     * waiting in up.buf */
    uint8_t header[NETADDR_HEADER_MAX];
    size_t header_len;
    int udp_handle;                 /* SOCKS5 UDP ASSOCIATE handle, or -1 */
    struct sockaddr_storage peer;
};

/* relay.c, for handshake.c */
void session_set_stage(struct session *s, enum session_stage stage);
void session_close(struct session *s);
/* The handshake failed: from now on the session is silent (see relay.c). */
void session_probe(struct session *s, const char *why);
/* Resolves s->target if needed and connects to it. */
void session_connect_target(struct session *s);
/* Reads from the client into up.buf (taking a buffer if needed), at most max bytes.
 * Returns bytes read, 0 at EOF, -1 on EAGAIN, -2 on error. */
ssize_t session_read_client(struct session *s, size_t max);

/* handshake.c, for relay.c */
void handshake_start(struct session *s);
void handshake_on_read(struct session *s);

#endif

/* session.h: the TCP session of relay.c, which alone creates, moves and closes it, and the
 * interface of its parts: its pipes (relay_pipe.c), which move its bytes and report what
 * happened, its handshake (relay_handshake.c) and its connect (relay_connect.c). Private to
 * src/relay*.c. */
#ifndef RP_SESSION_H
#define RP_SESSION_H

#include <ev.h>
#include <stdbool.h>
#include <sys/queue.h>
#include <sys/uio.h>

#include "buf.h"
#include "handshake.h"
#include "netaddr.h"
#include "proto.h"
#include "resolve.h"
#include "shared_store.h"

/* Stages of a session; relay.c's session_set_stage() is the one place that moves between them.
 * Each says what it waits for. */
enum session_stage {
    STAGE_NEW,       /* accepted; nothing asked of the client yet */
    STAGE_PROXY,     /* "proxy_protocol": the balancer's PROXY protocol header (proxy_proto.h) */
    STAGE_HANDSHAKE, /* client bytes: the request's first flight (server), or SOCKS5 (local) */
    STAGE_SHARED,    /* "shared_store": Redis's verdict on the request's salt (another host's?) */
    STAGE_RESOLVE,   /* the resolver's answer for the host to connect to */
    STAGE_CONNECT,   /* the non-blocking connect to complete */
    STAGE_RELAY,     /* bytes either way, until both directions have ended */
    STAGE_PROBE,     /* failed handshake: read and discard until the client leaves or times out */
    STAGE_UDP_HOLD,  /* SOCKS5 UDP ASSOCIATE control connection: wait for it to close */
    STAGE_COUNT
};

struct side {
    int fd;
    ev_io rio;
    ev_io wio;
};

#define PIPE_IOV 16
/* Reads per pipe (or probe) per event before yielding to other connections (fairness). */
#define PIPE_ROUNDS 4

/* One direction. A sealing pipe reads plaintext and writes chunks; an opening pipe reads chunks
 * and writes plaintext. Its buffer is borrowed from the worker's pool only while bytes are in
 * flight. */
struct pipe {
    struct buf *buf;
    /* the protocol's state of this direction (salt, subkey, nonce) */
    struct proto_dir pd;
    bool seal;          /* true: plaintext in, chunks out */
    bool eof;           /* the source has ended */
    bool shut;          /* the end was passed on (shutdown(SHUT_WR) of the destination) */
    bool bulk;          /* a read filled the buffer: take RELAY_BULK_CAP buffers from now on */
    bool stalled;       /* the destination stopped taking bytes: reads are cut to its room */
    bool plain;         /* neither seals nor opens: bytes pass as they are (a bypassed target) */
    bool drained;       /* the handshake's last read took all there was: wait before the next */
    /* open: plaintext payloads inside buf waiting to be written */
    struct iovec iov[PIPE_IOV];
    int iov_n, iov_i;
};

struct session {
    struct worker *w;
    LIST_ENTRY(session) link;       /* in w->sessions */
    enum session_stage stage;
    struct handshake hs;            /* how the target is learnt */
    struct proto_conn conn;         /* what the two directions' protocol state share */
    struct metrics_user *ustats;    /* the request's user's counters, once known, or NULL */
    struct worker_port *port;       /* the port it came in on: its protocol context */
    struct metrics_port *pstats;    /* that port's counters, or NULL */
    bool direct;                    /* local roles: the ACL bypasses the server for this target */
    struct side client, remote;
    struct pipe up;                 /* client -> remote */
    struct pipe down;               /* remote -> client */
    ev_timer timer;                 /* handshake, connect, idle or drain deadline */
    ev_tstamp accepted_at;
    ev_tstamp last_activity;
    struct resolve_query *query;
    struct shared_store_claim *claim; /* STAGE_SHARED: the salt's claim under way */
    struct resolve_result *addrs;   /* a name's addresses, only while connecting to a name */
    int addr_next;                  /* next address to try */
    struct netaddr_target target;   /* where the remote side connects */
    /* local roles: the address header sent in the first chunk, with any early data that is
     * waiting in up.buf */
    uint8_t header[NETADDR_HEADER_MAX];
    size_t header_len;
    int udp_handle;                 /* SOCKS5 UDP ASSOCIATE handle, or -1 */
    bool aborted;                   /* closing with a reset on both sides (session_abort) */
    bool socks_reply_pending;       /* local role: the CONNECT is answered once connected */
    int connect_err;                /* errno of the last failed connect, for the log and reply */
    int upstream;                   /* local roles: the index of the server connected to */
    uint32_t upstreams_tried;       /* the servers this session has tried (a bit each) */
    bool hs_counted;                /* counted in w->hs_limit (a handshake stage) */
    struct sockaddr_storage peer;
};

/* ---- relay_pipe.c ---- */

/* Starts or stops a watcher of the session (a side without a descriptor stays stopped). */
void session_io_set(struct session *s, ev_io *io, bool on);

/* What a pump of one pipe came to. */
enum relay_pump {
    RELAY_PUMP_WAIT,  /* waiting for the source or the destination (watchers set) */
    RELAY_PUMP_DONE,  /* both directions have ended: close the session */
    RELAY_PUMP_ABORT, /* a reset, a failed write, a chunk that failed to open: abort (RST) */
};

/* Moves bytes from src to dst until src would block, dst would block, or the round limit;
 * passes a clean end on (half-close). *why: the reason of RELAY_PUMP_ABORT. */
enum relay_pump relay_pipe_pump(struct session *s, struct pipe *p, struct side *src,
                                struct side *dst, const char **why);
/* The pipe's buffer to read into, of the size its mode wants (taken from the pool), or NULL. */
struct buf *pipe_buf(struct session *s, struct pipe *p);
/* Gives the pipe's buffer back to its pool. */
void pipe_buf_put(struct session *s, struct pipe *p);
/* The pipe's buffer and protocol state, released. */
void pipe_release(struct session *s, struct pipe *p);

/* ---- relay.c, for the other relay*.c files: the session's moves ---- */

/* A side's watchers on fd (-1: none yet); client: the client's side, else the remote's. */
void side_init(struct session *s, struct side *side, int fd, bool client);
/* A side's watchers stopped and its descriptor closed. */
void side_close(struct session *s, struct side *side);
void session_close(struct session *s);
/* The one place a session's stage changes; its deadline follows. */
void session_set_stage(struct session *s, enum session_stage stage);
/* A failed handshake: silence, read and discard until the client leaves or the deadline. */
void session_probe(struct session *s, const char *why);
/* Connected: keys the sealing direction, answers the local port's client, starts both pipes. */
void session_start_relay(struct session *s);
/* The counters of the user whose key opened the request, or NULL. */
struct metrics_user *session_user_stats(const struct session *s);

/* ---- relay_connect.c ---- */

/* Why the server's policy refuses a target (issue 13 item 10: say which key, and how to change
 * it). */
enum session_refusal {
    REFUSE_NONE,
    REFUSE_PRIVATE, /* block_private */
    REFUSE_ACL,     /* the ACL file's [outbound_block_list] */
    REFUSE_LOOP,    /* the server's own listening address and port, whatever the policy */
};

/* Resolves the session's target if needed and connects to it. */
void session_connect_target(struct session *s);
/* STAGE_CONNECT: the remote is writable; the connect's outcome. */
void session_connect_done(struct session *s);
/* The target or the server could not be reached (logged, the client answered, closed, or the
 * next server tried); reason: a text instead of strerror(err), or NULL. */
void session_connect_failed(struct session *s, int err, const char *reason);
/* An authenticated request for a target the policy refuses: answered, logged, closed. */
void session_refuse(struct session *s, enum session_refusal why);
/* Local roles: server i (upstream.h) becomes the session's target and protocol. */
void session_use_upstream(struct session *s, int i);
/* Whether sa is one of this process's own listening endpoints (relay_addrs.h). */
bool session_own_endpoint(struct session *s, const struct sockaddr *sa);

/* ---- relay_handshake.c ---- */

/* The session accepted (or its PROXY header read): its handshake begins. */
void session_handshake_begin(struct session *s);
/* STAGE_HANDSHAKE: the client is readable. */
void session_handshake_read(struct session *s);
/* Local role: the SOCKS5, SOCKS4 or HTTP CONNECT answered once connected (err 0) or failed.
 * Returns 0, or -1 when the client cannot take the reply. */
int session_socks_reply(struct session *s, int err);

/* ---- relay_shared.c ---- */

/* Claims the request's salt in the shared store (STAGE_SHARED until the verdict). */
void session_claim_salt(struct session *s);
/* Acts on the shared store's verdict; why: the failure's reason, for the log. */
void session_salt_judged(struct session *s, enum shared_store_verdict v, const char *why);

/* ---- relay_proxy.c ---- */

struct worker;
/* Whether a client may begin its handshake (see relay_proxy.c); *counted: it holds a place in
 * w->hs_limit. */
bool relay_client_admitted(struct worker *w, const struct sockaddr *peer, bool *counted);
/* proxy_protocol: a new session from proxy_protocol_from waits for its header; from anyone
 * else it is a probe. */
void session_proxy_begin(struct session *s);
/* STAGE_PROXY: the client is readable. */
void session_proxy_read(struct session *s);

#endif

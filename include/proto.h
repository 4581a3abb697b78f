/* proto.h: the seam between a session and the wire protocol. relay.c, handshake.c and the
 * udp_* files reach the protocol only through struct proto_ops, chosen once from the method
 * (proto_for_method); they never see salts, subkeys, header layouts or replay rules. SIP004
 * (proto_sip004.c, over the codecs of ss_stream.c and ss_packet.c) is the first implementation.
 *
 * The shape is made for SIP022 too: the request's first flight is opened as a whole (a fixed
 * header telling how much more to wait for fits behind PROTO_NEED_MORE), the response's first
 * flight sees the request through struct proto_conn (SIP022 echoes the request salt), the opener
 * of a request sees a key set (per-user keys), and a datagram op gets an opaque per-association
 * state (SIP022 session ids, packet counters, its replay window).
 *
 * Hot paths: one indirect call per batch of chunks (proto_seal_slots, proto_open_stream) or per
 * datagram; nothing is allocated per chunk or datagram. */
#ifndef RP_PROTO_H
#define RP_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "crypto.h"
#include "netaddr.h"
#include "ss_stream.h"

struct replay_store;

/* The stream's chunk layout, the same in SIP004 and SIP022 (a sealed length chunk, then the
 * sealed payload): a sealing pipe reads plaintext straight into slots of PROTO_SLOT bytes laid
 * back to back, each payload PROTO_SLOT_PAYLOAD bytes at PROTO_SLOT_HEAD inside its slot (see
 * seal_slots); an opening pipe keeps room for PROTO_CHUNK_WIRE_MAX bytes, the largest chunk. */
#define PROTO_SLOT SS_SEAL_SLOT
#define PROTO_SLOT_HEAD SS_CHUNK_HEAD
#define PROTO_SLOT_PAYLOAD SS_SEAL_CHUNK
#define PROTO_CHUNK_WIRE_MAX SS_CHUNK_WIRE_MAX

/* What a protocol serves with, shared by every connection of a worker. */
struct proto_ctx {
    const struct proto_ops *ops;
    /* The key set. SIP004: one master key. SIP022 server: keys[0] is the PSK (the identity
     * PSK when there are users) and keys[1..nkeys) the users' PSKs, named by names[1..];
     * SIP022 client: its password's keys in order, identity PSKs first, the user PSK last. */
    const struct crypto_key *keys;
    size_t nkeys;
    const char *const *names; /* names[k]: the user of keys[k], or NULL; names may be NULL */
    /* retired[k]: keys[k] only serves the connections that opened under it before a reload
     * removed or re-keyed its user (worker_users.c); it is never tried for a new request or
     * datagram. NULL: none is. */
    const bool *retired;
    bool client;              /* the local roles: we send requests */
    struct replay_store *replay; /* NULL: replay protection off */
    void *priv;                  /* the protocol's own per-worker state (ops->ctx_init) */
};

/* One direction of one TCP connection. Zero it before first use; proto_dir_free at the end. */
struct proto_dir {
    struct ss_stream ss;
    bool keyed;        /* the stream is keyed (our salt made, or the peer's salt read) */
    bool head_pending; /* seal: the first flight's head (salt, ...) still goes out first */
    uint8_t salt[CRYPTO_MAX_SALT];
};

/* What the two directions of one connection know of each other. */
struct proto_conn {
    const struct proto_ctx *ctx;
    size_t key;                        /* index in ctx->keys of the key the request used */
    const char *user;                  /* ctx->names[key] once the request is open, or NULL */
    /* server: the client's address, or NULL. SIP004 with several keys tries the key this
     * address used last first (a per-worker table of recent clients). */
    const struct sockaddr *peer;
    const char *reason;                /* why open_stream failed, when it did */
    uint8_t req_salt[CRYPTO_MAX_SALT]; /* the request's salt (a SIP022 response echoes it) */
    size_t req_salt_len;
};

enum proto_result {
    PROTO_NEED_MORE = 0, /* not complete yet: call again with the same start and more bytes */
    PROTO_DONE = 1,
    PROTO_BAD = -1,      /* authentication or framing failed; reason says which */
    PROTO_REPLAYED = -2, /* authenticated, but seen before */
};

/* A request's first flight, opened (server side). Pointers point into the caller's buffer. */
struct proto_request {
    struct netaddr_target target;
    const uint8_t *payload; /* initial data after the address (and any padding) */
    size_t payload_len;
    size_t consumed;    /* wire bytes the first flight took, from the buffer's start */
    const char *reason; /* PROTO_BAD / PROTO_REPLAYED: why, for the probe summary */
};

/* The most any protocol adds to a datagram, padding aside: SIP004 48 (salt + tag); SIP022 51
 * with AES (header, tag, type, timestamp, session id, padding length), 75 with XChaCha (its
 * 24-byte nonce, both packet and session ids inside). */
#define PROTO_DATAGRAM_OVERHEAD_MAX 128

/* Opaque per-association UDP state of the largest protocol; proto_ops.udp_state_size says
 * how much of it one protocol uses (SIP004: none). */
struct proto_udp_state {
    /* SIP022: session ids, packet counter, user, and the packet-id window of 4032 packets
     * (SIP022 section 3.2.4 asks for at least 2048); a client also keeps the window of the
     * server's previous session */
    _Alignas(8) uint8_t bytes[1216];
};

/* A worker's datagram scratch: one AEAD context re-keyed per packet or session. */
struct proto_udp {
    const struct proto_ctx *ctx;
    struct crypto_aead *aead;
    void *priv; /* the protocol's own scratch (ops->udp_init), or NULL */
    /* what the last open with no association state learned, for udp_state_init to adopt */
    struct proto_udp_state learned;
};

struct proto_ops {
    const char *name;

    /* A worker's per-process state from ctx's keys (NULL: none); returns 0 or -1. */
    int (*ctx_init)(struct proto_ctx *ctx);
    void (*ctx_free)(struct proto_ctx *ctx);

    /* ---- TCP, sealing ---- */
    /* Keys a sealing direction (a fresh salt; our salt goes into the replay store so a recorded
     * reply cannot come back as a request). Returns 0 or -1. */
    int (*seal_begin)(struct proto_conn *c, struct proto_dir *d);
    /* Room the next proto_seal_slots call needs in front of its first slot: the first flight's
     * head while it is pending, else 0. */
    size_t (*seal_head_len)(const struct proto_conn *c, const struct proto_dir *d);
    /* Client: the request's first flight (head, address header, early data) into out[0..cap).
     * Returns its length or -1. */
    long (*seal_request)(struct proto_conn *c, struct proto_dir *d, const uint8_t *addr,
                         size_t addr_len, const uint8_t *early, size_t early_len, uint8_t *out,
                         size_t cap);
    /* Seals len plaintext bytes read into slots (ss_stream_seal_slots' layout) starting at
     * buf + seal_head_len(), writing the pending head in front. Sets *start to where the wire
     * bytes begin in buf and returns where they end, or -1. */
    long (*seal_slots)(struct proto_conn *c, struct proto_dir *d, uint8_t *buf, size_t len,
                       size_t *start);

    /* ---- TCP, opening ---- */
    /* Server: opens the request's first flight at buf[0..len), trying each key of the set.
     * Authenticated salts only go to the replay store, so junk cannot fill it. */
    int (*open_request)(struct proto_conn *c, struct proto_dir *d, uint8_t *buf, size_t len,
                        struct proto_request *out);
    /* Opens what buf[0..len) holds of the stream (the response's head first, on the client)
     * into at most max payloads in iov; *consumed: wire bytes done. Returns payloads or -1. */
    int (*open_stream)(struct proto_conn *c, struct proto_dir *d, uint8_t *buf, size_t len,
                       size_t *consumed, struct iovec *iov, int max);

    /* ---- UDP ---- */
    /* A datagram scratch's own state beyond its aead (NULL: none); returns 0 or -1. */
    int (*udp_init)(struct proto_udp *p);
    void (*udp_free)(struct proto_udp *p);
    size_t udp_state_size;
    /* Bytes a datagram adds to its plaintext, at most. */
    size_t (*datagram_overhead)(const struct proto_ctx *ctx);
    /* A new association's state; adopt: take what the last open with no state learned. */
    void (*udp_state_init)(struct proto_udp *p, struct proto_udp_state *st, bool adopt);
    /* Seals in[0..len) (address header + data) into out. Returns the length or -1. */
    long (*seal_datagram)(struct proto_udp *p, struct proto_udp_state *st, const uint8_t *in,
                          size_t len, uint8_t *out);
    /* Opens pkt in place: *plain points into pkt. Returns the plaintext length, PROTO_BAD or
     * PROTO_REPLAYED. st is NULL when the sender has no association yet. */
    long (*open_datagram)(struct proto_udp *p, struct proto_udp_state *st, uint8_t *pkt, size_t len,
                          uint8_t **plain);
    /* Server, optional: associations are found by the client's session rather than its address
     * (NULL: by address, as SIP004). After open_datagram with st NULL succeeded, sets *key to
     * the session the packet belongs to; the relay then finds its association by key. A
     * session outlives the client's address (SIP022 section 3.2). Returns false if none. */
    bool (*session_key)(const struct proto_udp *p, uint64_t *key);
    /* Server, with session_key: the packet opened last with st NULL joins st, the state of
     * its session's association: PROTO_DONE, PROTO_BAD (not this association's user) or
     * PROTO_REPLAYED (refused by the session's window). Only after PROTO_DONE may the
     * association follow the packet's source address. */
    int (*udp_state_join)(struct proto_udp *p, struct proto_udp_state *st);
    /* Server, optional: the index in ctx->keys of the user key st's association runs on, so a
     * user retired by a live reload loses theirs too (worker_users.c). False when st has none
     * (NULL op: associations belong to no key, as SIP004's). */
    bool (*udp_state_key)(const struct proto_udp_state *st, size_t *key);
};

/* SIP004 (proto_sip004.c): the "AEAD ciphers" of shadowsocks.org. */
extern const struct proto_ops proto_sip004;
/* SIP022 (proto_sip022.c): Shadowsocks 2022, with SIP023 identity headers. */
extern const struct proto_ops proto_sip022;

/* The protocol of a method (its crypto_method_info's proto). */
const struct proto_ops *proto_for_method(enum crypto_method m);
/* Runs ctx->ops->ctx_init when the protocol has one. Returns 0 or -1. */
int proto_ctx_init(struct proto_ctx *ctx);
void proto_ctx_free(struct proto_ctx *ctx);

/* Opens the complete chunks of a keyed stream at buf[at..len) into iov[n..max) (the chunk loop
 * every protocol's open_stream shares). *consumed: where the opened chunks end. Returns the
 * payloads in iov in all, or -1. */
int proto_open_chunks(struct ss_stream *s, uint8_t *buf, size_t len, size_t at, size_t *consumed,
                      struct iovec *iov, int n, int max);

/* A direction before first use. */
void proto_dir_init(struct proto_dir *d);
/* Frees a direction's stream; it is as proto_dir_init left it and may be used again. */
void proto_dir_free(struct proto_dir *d);

int proto_udp_init(struct proto_udp *p, const struct proto_ctx *ctx);
void proto_udp_free(struct proto_udp *p);

#endif

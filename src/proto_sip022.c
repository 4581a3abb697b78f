/* proto_sip022.c: Shadowsocks 2022 (SIP022, with SIP023 identity headers) behind struct
 * proto_ops, over the pure codec of ss2022.c.
 *
 *   TCP request:  salt | identity header (EIH) | sealed fixed header {type 0, timestamp,
 *                 length} | sealed variable header {address, padding, initial payload} | chunks
 *   TCP response: salt | sealed fixed header {type 1, timestamp, request salt, first length} |
 *                 sealed first payload | chunks
 *   Chunks are SIP004's (ss_stream.c) under a BLAKE3 subkey, with lengths up to 0xFFFF.
 *
 * Replay (section 3.1.3): a request more than 30 s off is refused by the codec; a salt that
 * authenticated goes to the shared replay store (TCP region), so a first flight replayed within
 * the window, to this worker or another, is refused. Our own salts go there too.
 *
 * A failed handshake (bad tag, timestamp out of window, length out of bounds, unknown user,
 * replayed salt) is treated as SIP004's: the session reads and discards in silence until the
 * client leaves or the deadline passes (relay.c's probe stage). SIP022 asks nothing else, and
 * an immediate close or reset would tell a prober where the header ends.
 *
 * Users (SIP023, AES methods): the identity header names the user by the first 16 bytes of
 * BLAKE3(uPSK); a hash table over those, built once per worker, finds the user in O(1). */
#include "autoconfig.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "proto.h"
#include "replay.h"
#include "ss2022.h"

/* SIP022 section 3.1.3: "padding length ... MUST be a random number between 1 and 900 ...
 * if the initial payload is shorter than 900 bytes" is what sing-box and shadowsocks-rust do;
 * the spec asks for padding when there is no payload and recommends it when it is short. */
#define SIP022_PAD_BELOW SS2022_MAX_PADDING

/* A worker's keys as the codec takes them, and the users' table. */
struct sip022_ctx {
    struct ss2022_psk *psks; /* one per ctx->keys */
    size_t npsks;
    /* open addressing over the users' identity hashes: slot -> key index + 1, 0 empty */
    uint32_t *slots;
    size_t mask;
    uint8_t (*hashes)[CRYPTO_BLOCK_LEN]; /* hashes[k]: BLAKE3(psks[k])[0..16) */
};

static struct sip022_ctx *sip022_priv(const struct proto_ctx *ctx)
{
    return ctx->priv;
}

/* The identity hash is a BLAKE3 output: its first bytes are already uniform. */
static size_t sip022_slot_of(const uint8_t hash[CRYPTO_BLOCK_LEN], size_t mask)
{
    uint64_t h;
    memcpy(&h, hash, sizeof h);
    return (size_t)h & mask;
}

static int sip022_users_index(struct sip022_ctx *x, const bool *retired)
{
    size_t cap = 4;
    while (cap < 2 * x->npsks)
        cap *= 2;
    x->slots = calloc(cap, sizeof *x->slots);
    x->hashes = calloc(x->npsks, sizeof *x->hashes);
    if (!x->slots || !x->hashes)
        return -1;
    x->mask = cap - 1;
    for (size_t k = 1; k < x->npsks; k++) {
        ss2022_psk_hash(&x->psks[k], x->hashes[k]);
        if (retired && retired[k]) /* serves its open connections, found by no new one */
            continue;
        size_t i = sip022_slot_of(x->hashes[k], x->mask);
        while (x->slots[i])
            i = (i + 1) & x->mask;
        x->slots[i] = (uint32_t)k + 1;
    }
    return 0;
}

static void sip022_ctx_free(struct proto_ctx *ctx)
{
    struct sip022_ctx *x = sip022_priv(ctx);
    if (!x)
        return;
    if (x->psks)
        crypto_wipe(x->psks, x->npsks * sizeof *x->psks);
    free(x->psks);
    free(x->slots);
    free(x->hashes);
    free(x);
    ctx->priv = NULL;
}

static int sip022_ctx_init(struct proto_ctx *ctx)
{
    struct sip022_ctx *x = calloc(1, sizeof *x);

    ctx->priv = x;
    if (!x || ctx->nkeys == 0)
        goto fail;
    x->npsks = ctx->nkeys;
    x->psks = calloc(x->npsks, sizeof *x->psks);
    if (!x->psks)
        goto fail;
    for (size_t k = 0; k < x->npsks; k++)
        if (ss2022_psk_from_key(&x->psks[k], &ctx->keys[k]) != 0)
            goto fail;
    if (!ctx->client && x->npsks > 1 && sip022_users_index(x, ctx->retired) != 0)
        goto fail;
    return 0;
fail:
    sip022_ctx_free(ctx);
    return -1;
}

/* ss2022_server_keys.find_user: the user whose PSK hashes to hash, or NULL. */
static const struct ss2022_psk *sip022_find_user(void *arg, const uint8_t hash[CRYPTO_BLOCK_LEN],
                                                 void **user)
{
    const struct sip022_ctx *x = arg;
    for (size_t i = sip022_slot_of(hash, x->mask); x->slots[i]; i = (i + 1) & x->mask) {
        size_t k = x->slots[i] - 1;
        if (memcmp(x->hashes[k], hash, CRYPTO_BLOCK_LEN) == 0) {
            *user = (void *)&x->psks[k];
            return &x->psks[k];
        }
    }
    return NULL;
}

/* The key a connection's streams run on: a client's user PSK (the last of its chain), a
 * server's PSK or the request's user's. */
static const struct ss2022_psk *sip022_session_key(const struct proto_conn *c)
{
    const struct sip022_ctx *x = sip022_priv(c->ctx);
    return c->ctx->client ? &x->psks[x->npsks - 1] : &x->psks[c->key];
}

static uint64_t sip022_now(void)
{
    return (uint64_t)time(NULL);
}

/* ---- TCP, sealing ---- */

static int sip022_seal_begin(struct proto_conn *c, struct proto_dir *d)
{
    size_t salt_len = sip022_session_key(c)->len;

    if (crypto_random(d->salt, salt_len) < 0)
        return -1;
    /* a fresh random salt is new; remembered so a recorded flight of ours cannot come back */
    if (c->ctx->replay)
        (void)replay_check_and_add(c->ctx->replay, REPLAY_TCP, d->salt, salt_len);
    d->head_pending = true;
    return 0;
}

/* The response's head replaces the first slot's sealed length: salt and the sealed fixed
 * header, less the PROTO_SLOT_HEAD bytes the slot already has. A client's head goes out with
 * seal_request. */
static size_t sip022_seal_head_len(const struct proto_conn *c, const struct proto_dir *d)
{
    if (!d->head_pending || c->ctx->client)
        return 0;
    return SS2022_RESPONSE_HEAD(sip022_session_key(c)->len) - PROTO_SLOT_HEAD;
}

static size_t sip022_padding(size_t payload_len)
{
    uint16_t r = 0;
    if (payload_len >= SIP022_PAD_BELOW)
        return 0;
    if (crypto_random(&r, sizeof r) < 0)
        r = 0;
    return 1 + r % SS2022_MAX_PADDING;
}

static long sip022_seal_request(struct proto_conn *c, struct proto_dir *d, const uint8_t *addr,
                                size_t addr_len, const uint8_t *early, size_t early_len,
                                uint8_t *out, size_t cap)
{
    const struct sip022_ctx *x = sip022_priv(c->ctx);
    uint8_t payload[SS_CHUNK_MAX];
    struct netaddr_target target;

    if (early_len > sizeof payload || netaddr_parse_header(addr, addr_len, &target) <= 0)
        return -1;
    /* early may lie in out: copied before anything is written there */
    if (early_len)
        memcpy(payload, early, early_len);
    struct ss2022_request_spec spec = {
        .keys = x->psks,
        .nkeys = x->npsks,
        .salt = d->salt,
        .timestamp = sip022_now(),
        .target = &target,
        .padding_len = sip022_padding(early_len),
        .payload = payload,
        .payload_len = early_len,
    };
    long n = ss2022_request_build(&d->ss, &spec, out, cap);
    crypto_wipe(payload, early_len);
    if (n < 0)
        return -1;
    memcpy(c->req_salt, d->salt, x->psks[0].len);
    c->req_salt_len = x->psks[0].len;
    d->keyed = true;
    d->head_pending = false;
    return n;
}

static long sip022_seal_slots(struct proto_conn *c, struct proto_dir *d, uint8_t *buf, size_t len,
                              size_t *start)
{
    size_t head = sip022_seal_head_len(c, d);
    long wire = 0;

    *start = 0;
    if ((!d->keyed && head == 0) || len == 0)
        return -1; /* a client seals nothing before its request; nothing is never sealed */
    if (head) {
        /* The first slot's payload goes in the response's first chunk, whose length the
         * fixed header carries (SIP022 section 3.1.3); the other slots follow as chunks. */
        const struct ss2022_psk *key = sip022_session_key(c);
        size_t first = len < PROTO_SLOT_PAYLOAD ? len : PROTO_SLOT_PAYLOAD;
        size_t at = head + PROTO_SLOT_HEAD;
        if (ss2022_response_head(&d->ss, key, d->salt, c->req_salt, sip022_now(), first, buf) < 0 ||
            ss2022_stream_seal_payload(&d->ss, buf + at, first) != 0)
            return -1;
        d->keyed = true;
        d->head_pending = false;
        wire = (long)(at + first + CRYPTO_TAG_LEN);
        buf += head + PROTO_SLOT;
        len -= first;
    }
    if (len == 0)
        return wire;
    long rest = ss_stream_seal_slots(&d->ss, buf, len);
    return rest < 0 ? -1 : wire + rest;
}

/* ---- TCP, opening ---- */

static int sip022_open_request(struct proto_conn *c, struct proto_dir *d, uint8_t *buf, size_t len,
                               struct proto_request *out)
{
    struct sip022_ctx *x = sip022_priv(c->ctx);
    struct ss2022_server_keys keys = {&x->psks[0], x->npsks > 1 ? sip022_find_user : NULL, x};
    struct ss2022_request r;
    size_t used = 0;

    int rc = ss2022_request_parse(&d->ss, &keys, buf, len, sip022_now(), &r, &used);
    if (rc == SS2022_NEED_MORE)
        return PROTO_NEED_MORE;
    if (rc != SS2022_DONE) {
        out->reason = ss2022_error_name(r.error);
        return PROTO_BAD;
    }
    /* Only a salt that authenticated is remembered: random junk cannot fill the store. */
    if (c->ctx->replay &&
        replay_check_and_add(c->ctx->replay, REPLAY_TCP, r.salt, r.salt_len) != 0) {
        out->reason = "replayed salt";
        return PROTO_REPLAYED;
    }
    c->key = (size_t)(r.key - x->psks);
    c->user = c->ctx->names ? c->ctx->names[c->key] : NULL;
    memcpy(c->req_salt, r.salt, r.salt_len);
    c->req_salt_len = r.salt_len;
    d->keyed = true;
    out->reason = NULL;
    out->target = r.target;
    out->payload = r.payload;
    out->payload_len = r.payload_len;
    out->consumed = used;
    return PROTO_DONE;
}

/* A client's down direction starts with the response head (checked: type, timestamp, the
 * echoed request salt); a server's up direction was keyed by open_request. */
static int sip022_open_stream(struct proto_conn *c, struct proto_dir *d, uint8_t *buf, size_t len,
                              size_t *consumed, struct iovec *iov, int max)
{
    size_t at = 0;
    int n = 0;

    *consumed = 0;
    if (!d->keyed) {
        struct ss2022_response r;
        int rc = ss2022_response_parse(&d->ss, sip022_session_key(c), c->req_salt, buf, len,
                                       sip022_now(), &r, &at);
        if (rc == SS2022_NEED_MORE)
            return 0;
        if (rc != SS2022_DONE || max < 1) {
            c->reason = ss2022_error_name(r.error);
            return -1;
        }
        d->keyed = true;
        iov[0].iov_base = (void *)r.payload;
        iov[0].iov_len = r.payload_len;
        n = 1;
    }
    return proto_open_chunks(&d->ss, buf, len, at, consumed, iov, n, max);
}

/* ---- UDP (sections 3.2 and 4.1) ----
 *
 * An association (udp_assoc.c: one per client address) carries one session each way: our
 * session id and packet counter, the peer's session id and a sliding window over its packet
 * ids. A server's association is made for a packet that opened, and adopts that packet's
 * session (udp_state_init with adopt); a packet of another session on an existing association
 * is dropped. A server also records every packet's (session id, packet id) in the replay
 * store's UDP region, so a packet replayed from another source address, which would meet a new
 * association and a fresh window, is refused too. The session subkey is derived per packet
 * (BLAKE3 over 24 or 40 bytes) unless the scratch is keyed for that session already. */

struct sip022_udp_state {
    uint64_t session_id; /* ours */
    uint64_t packet_id;  /* the next one we send */
    uint64_t peer_session_id;
    bool peer_known;
    uint32_t key; /* server: the client's key (index in ctx->keys) */
    struct ss2022_window window;
    /* client: the server's previous session and its window, so a packet of it replayed after
     * the server moved to a new session is still refused (see sip022_client_accept) */
    bool prev_known;
    uint64_t prev_session_id;
    uint64_t prev_seen; /* when a packet of it last came, or it became the previous one */
    struct ss2022_window prev_window;
};

/* A client takes a third server session only when the previous one has been quiet this long:
 * twice the timestamp window, so no packet of a session older than the previous one can still
 * pass the timestamp check (as sing-shadowsocks' client does). */
#define SIP022_SESSION_QUIET (2 * SS2022_TIMESTAMP_WINDOW)

_Static_assert(sizeof(struct sip022_udp_state) <= sizeof(struct proto_udp_state),
               "proto_udp_state too small for SIP022");

/* One datagram scratch: the AES block of the key last used, XChaCha under the PSK, and which
 * session the aead is keyed for. */
struct sip022_udp {
    struct crypto_block *block;
    size_t block_key; /* index of the key block is keyed with */
    struct crypto_xchacha *xchacha;
    bool aead_keyed;
    size_t aead_key;
    uint64_t aead_session;
    uint64_t learned_packet; /* server: the packet id of the last open with no state */
};

static bool sip022_is_chacha(const struct proto_ctx *ctx)
{
    return sip022_priv(ctx)->psks[0].method == SS2022_CHACHA20_POLY1305;
}

static int sip022_udp_init(struct proto_udp *p)
{
    const struct sip022_ctx *x = sip022_priv(p->ctx);
    struct sip022_udp *q = calloc(1, sizeof *q);

    p->priv = q;
    if (!q)
        return -1;
    if (sip022_is_chacha(p->ctx))
        q->xchacha = crypto_xchacha_new(x->psks[0].bytes);
    else
        q->block = crypto_block_new(x->psks[0].bytes, x->psks[0].len);
    return q->xchacha || q->block ? 0 : -1;
}

static void sip022_udp_free(struct proto_udp *p)
{
    struct sip022_udp *q = p->priv;
    if (!q)
        return;
    crypto_block_free(q->block);
    crypto_xchacha_free(q->xchacha);
    free(q);
    p->priv = NULL;
}

/* Keys the AES block with key k (the separate header's key). */
static int sip022_udp_block(struct proto_udp *p, size_t k)
{
    struct sip022_udp *q = p->priv;
    const struct ss2022_psk *psk = &sip022_priv(p->ctx)->psks[k];
    if (q->block_key == k)
        return 0;
    if (crypto_block_rekey(q->block, psk->bytes, psk->len) != 0)
        return -1;
    q->block_key = k;
    return 0;
}

/* Keys the aead with the session subkey of (key k, session id): section 3.2.1. */
static int sip022_udp_aead(struct proto_udp *p, size_t k, uint64_t session)
{
    struct sip022_udp *q = p->priv;
    uint8_t id[8], subkey[SS2022_MAX_KEY];
    if (q->aead_keyed && q->aead_key == k && q->aead_session == session)
        return 0;
    uint64_t v = session;
    for (int i = 7; i >= 0; i--, v >>= 8)
        id[i] = (uint8_t)v; /* the session id as it travels: big-endian */
    const struct ss2022_psk *psk = &sip022_priv(p->ctx)->psks[k];
    ss2022_session_subkey(psk, id, sizeof id, subkey);
    int rc = crypto_aead_rekey(p->aead, subkey);
    crypto_wipe(subkey, sizeof subkey);
    q->aead_keyed = rc == 0;
    q->aead_key = k;
    q->aead_session = session;
    return rc;
}

static struct ss2022_udp_keys sip022_udp_keys(const struct proto_udp *p)
{
    const struct sip022_udp *q = p->priv;
    return (struct ss2022_udp_keys){sip022_priv(p->ctx)->psks[0].method, q->block, p->aead,
                                    q->xchacha};
}

/* AES separate header + identity header + tag + type, timestamp, padding length, and the
 * server's client session id; chacha: its 24-byte nonce instead of the separate header. */
static size_t sip022_datagram_overhead(const struct proto_ctx *ctx)
{
    size_t body = 1 + 8 + 8 + 2 + CRYPTO_TAG_LEN;
    if (sip022_is_chacha(ctx))
        return SS2022_UDP_NONCE + 16 + body;
    return SS2022_UDP_SEPARATE + CRYPTO_BLOCK_LEN + body;
}

static void sip022_udp_state_init(struct proto_udp *p, struct proto_udp_state *st, bool adopt)
{
    struct sip022_udp_state *s = (struct sip022_udp_state *)st;
    const struct sip022_udp_state *l = (const struct sip022_udp_state *)&p->learned;
    const struct sip022_udp *q = p->priv;

    memset(s, 0, sizeof *s);
    if (adopt) { /* the client's session, its user, and the packet that made it */
        s->peer_session_id = l->peer_session_id;
        s->peer_known = l->peer_known;
        s->key = l->key;
        ss2022_window_accept(&s->window, q->learned_packet);
    }
    /* a new session of ours: a random id, packets counted from 0 (section 3.2.1) */
    if (crypto_random(&s->session_id, sizeof s->session_id) < 0)
        s->session_id = (uint64_t)time(NULL);
    s->packet_id = 0;
}

/* DNS gets padding (section 3.2.3 suggests it for port 53, as sing-box and shadowsocks-rust
 * do): 1..(900 - payload) bytes when the payload is shorter than 900. */
static size_t sip022_udp_padding(const struct netaddr_target *t, size_t payload_len)
{
    uint16_t r = 0;
    if (t->port != 53 || payload_len >= SS2022_MAX_PADDING)
        return 0;
    if (crypto_random(&r, sizeof r) < 0)
        r = 0;
    return 1 + r % (SS2022_MAX_PADDING - payload_len);
}

static long sip022_seal_datagram(struct proto_udp *p, struct proto_udp_state *st, const uint8_t *in,
                                 size_t len, uint8_t *out)
{
    struct sip022_udp_state *s = (struct sip022_udp_state *)st;
    const struct sip022_ctx *x = sip022_priv(p->ctx);
    bool client = p->ctx->client;
    struct ss2022_udp_packet pkt = {.session_id = s->session_id,
                                    .packet_id = s->packet_id,
                                    .type = client ? SS2022_TYPE_CLIENT : SS2022_TYPE_SERVER,
                                    .timestamp = sip022_now(),
                                    .client_session_id = s->peer_session_id};
    uint8_t nonce[SS2022_UDP_NONCE], hash[CRYPTO_BLOCK_LEN];
    const uint8_t *identity = NULL;
    /* client: the first key heads the packet, the last keys the body; server: the user's */
    size_t head_key = client ? 0 : s->key, body_key = client ? x->npsks - 1 : s->key;

    int hl = netaddr_parse_header(in, len, &pkt.target);
    /* SIP023 UDP carries one identity header: a chain of several identity keys is TCP only */
    if (hl <= 0 || (client && x->npsks > 2))
        return -1;
    pkt.payload = in + hl;
    pkt.payload_len = len - (size_t)hl;
    pkt.padding_len = sip022_udp_padding(&pkt.target, pkt.payload_len);
    if (sip022_is_chacha(p->ctx)) {
        if (crypto_random(nonce, sizeof nonce) < 0)
            return -1;
    } else {
        if (client && x->npsks > 1) { /* SIP023: one identity header, for the user's key */
            ss2022_psk_hash(&x->psks[body_key], hash);
            identity = hash;
        }
        if (sip022_udp_block(p, head_key) != 0 || sip022_udp_aead(p, body_key, s->session_id) != 0)
            return -1;
    }
    struct ss2022_udp_keys keys = sip022_udp_keys(p);
    long n = ss2022_udp_seal(&keys, &pkt, identity, nonce, out,
                             len + sip022_datagram_overhead(p->ctx) + SS2022_MAX_PADDING);
    if (n >= 0)
        s->packet_id++;
    return n;
}

/* Opens what the peer sent: the separate header first (AES: the session says which subkey;
 * an EIH server also learns the user from the identity header), then the body. *key: the key
 * the body opened under. Returns the ss2022 result. */
static int sip022_udp_unseal(struct proto_udp *p, uint8_t *pkt, size_t len,
                             struct ss2022_udp_packet *out, size_t *key)
{
    const struct sip022_ctx *x = sip022_priv(p->ctx);
    bool client = p->ctx->client, users = !client && x->npsks > 1;
    uint64_t session, packet;

    /* a client opens with its user key (the last); a server heads with its (identity) PSK */
    *key = client ? x->npsks - 1 : 0;
    if (!sip022_is_chacha(p->ctx)) {
        struct ss2022_udp_keys head = sip022_udp_keys(p);
        uint8_t hash[CRYPTO_BLOCK_LEN] = {0};
        void *user;
        if (sip022_udp_block(p, *key) != 0 ||
            ss2022_udp_peek(&head, pkt, len, &session, &packet, users ? hash : NULL) != 0)
            return SS2022_BAD;
        if (users) {
            const struct ss2022_psk *k = sip022_find_user((void *)x, hash, &user);
            if (!k) {
                out->error = SS2022_ERR_USER;
                return SS2022_BAD;
            }
            *key = (size_t)(k - x->psks);
        }
        if (sip022_udp_aead(p, *key, session) != 0)
            return SS2022_BAD;
    }
    struct ss2022_udp_keys keys = sip022_udp_keys(p);
    return ss2022_udp_open(&keys, pkt, len, users ? 1 : 0,
                           client ? SS2022_TYPE_SERVER : SS2022_TYPE_CLIENT, sip022_now(), out);
}

/* The opened packet as udp_relay.c takes it: the address header, then the data. */
static long sip022_plain(const struct ss2022_udp_packet *pkt, uint8_t **plain)
{
    uint8_t hdr[NETADDR_HEADER_MAX];
    int hl = netaddr_write_header(&pkt->target, hdr, sizeof hdr);
    if (hl <= 0)
        return PROTO_BAD;
    *plain = (uint8_t *)pkt->payload - hl;
    return (long)((size_t)hl + pkt->payload_len);
}

/* Server: a packet's ids, offered to the replay store: a packet seen on any association, by
 * any worker, is refused. */
static bool sip022_udp_replayed(const struct proto_ctx *ctx, const struct ss2022_udp_packet *pkt)
{
    uint8_t ids[16];
    if (!ctx->replay || ctx->client)
        return false;
    memcpy(ids, &pkt->session_id, 8);
    memcpy(ids + 8, &pkt->packet_id, 8);
    return replay_check_and_add(ctx->replay, REPLAY_UDP, ids, sizeof ids) != 0;
}

/* Client: a server packet answering our session, checked against the window of its server
 * session. The current and the previous server sessions keep their windows; a third session
 * replaces the older of them only once that one has been quiet for SIP022_SESSION_QUIET, so a
 * packet of an older session, replayed within its timestamp's 30 s, is refused rather than
 * taken for a new session with an empty window. Returns PROTO_DONE, PROTO_BAD or
 * PROTO_REPLAYED. */
static int sip022_client_accept(struct sip022_udp_state *s, const struct ss2022_udp_packet *in,
                                uint64_t now)
{
    if (in->client_session_id != s->session_id)
        return PROTO_BAD; /* an answer to another session */
    if (s->peer_known && in->session_id == s->peer_session_id)
        return ss2022_window_accept(&s->window, in->packet_id) ? PROTO_DONE : PROTO_REPLAYED;
    if (s->prev_known && in->session_id == s->prev_session_id) {
        if (!ss2022_window_accept(&s->prev_window, in->packet_id))
            return PROTO_REPLAYED;
        s->prev_seen = now;
        return PROTO_DONE;
    }
    if (s->peer_known) { /* the server's session changed (it restarted, or expired ours) */
        if (s->prev_known && now - s->prev_seen < SIP022_SESSION_QUIET)
            return PROTO_REPLAYED; /* authentic, but possibly an older session's */
        s->prev_session_id = s->peer_session_id;
        s->prev_window = s->window;
        s->prev_known = true;
        s->prev_seen = now;
    }
    memset(&s->window, 0, sizeof s->window);
    s->peer_session_id = in->session_id;
    s->peer_known = true;
    ss2022_window_accept(&s->window, in->packet_id);
    return PROTO_DONE;
}

/* Server: the packet's session, user and id, for session_key and udp_state_join (and for
 * udp_state_init to adopt when the session is new). */
static void sip022_udp_learn(struct proto_udp *p, const struct ss2022_udp_packet *in, size_t key)
{
    struct sip022_udp_state *l = (struct sip022_udp_state *)&p->learned;
    struct sip022_udp *q = p->priv;

    l->peer_session_id = in->session_id;
    l->peer_known = true;
    l->key = (uint32_t)key;
    q->learned_packet = in->packet_id;
}

static int sip022_udp_state_join(struct proto_udp *p, struct proto_udp_state *st)
{
    struct sip022_udp_state *s = (struct sip022_udp_state *)st;
    const struct sip022_udp_state *l = (const struct sip022_udp_state *)&p->learned;
    const struct sip022_udp *q = p->priv;

    if (!l->peer_known || l->peer_session_id != s->peer_session_id || l->key != s->key)
        return PROTO_BAD; /* a foreign session, or another user's */
    return ss2022_window_accept(&s->window, q->learned_packet) ? PROTO_DONE : PROTO_REPLAYED;
}

static bool sip022_udp_session_key(const struct proto_udp *p, uint64_t *key)
{
    const struct sip022_udp_state *l = (const struct sip022_udp_state *)&p->learned;

    if (p->ctx->client || !l->peer_known)
        return false;
    *key = l->peer_session_id;
    return true;
}

static bool sip022_udp_state_key(const struct proto_udp_state *st, size_t *key)
{
    const struct sip022_udp_state *s = (const struct sip022_udp_state *)st;

    *key = s->key;
    return s->peer_known;
}

/* A server opens every packet with no state first (the replay store across workers), learns
 * its session, and with st joins it (the session's window); a client checks its windows. */
static long sip022_open_datagram(struct proto_udp *p, struct proto_udp_state *st, uint8_t *pkt,
                                 size_t len, uint8_t **plain)
{
    struct sip022_udp_state *s = (struct sip022_udp_state *)st;
    struct ss2022_udp_packet in;
    size_t key;
    int rc;

    memset(&in, 0, sizeof in);
    /* until this packet opens, it names no session */
    ((struct sip022_udp_state *)&p->learned)->peer_known = false;
    if (sip022_udp_unseal(p, pkt, len, &in, &key) != SS2022_DONE)
        return PROTO_BAD;
    if (p->ctx->client) {
        rc = s ? sip022_client_accept(s, &in, sip022_now()) : PROTO_BAD;
    } else {
        if (sip022_udp_replayed(p->ctx, &in))
            return PROTO_REPLAYED;
        sip022_udp_learn(p, &in, key);
        rc = s ? sip022_udp_state_join(p, st) : PROTO_DONE;
    }
    return rc == PROTO_DONE ? sip022_plain(&in, plain) : rc;
}

const struct proto_ops proto_sip022 = {
    .name = "sip022",
    .ctx_init = sip022_ctx_init,
    .ctx_free = sip022_ctx_free,
    .seal_begin = sip022_seal_begin,
    .seal_head_len = sip022_seal_head_len,
    .seal_request = sip022_seal_request,
    .seal_slots = sip022_seal_slots,
    .open_request = sip022_open_request,
    .open_stream = sip022_open_stream,
    .udp_init = sip022_udp_init,
    .udp_free = sip022_udp_free,
    .udp_state_size = sizeof(struct sip022_udp_state),
    .datagram_overhead = sip022_datagram_overhead,
    .udp_state_init = sip022_udp_state_init,
    .seal_datagram = sip022_seal_datagram,
    .open_datagram = sip022_open_datagram,
    .session_key = sip022_udp_session_key,
    .udp_state_join = sip022_udp_state_join,
    .udp_state_key = sip022_udp_state_key,
};

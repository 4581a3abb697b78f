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

static int sip022_users_index(struct sip022_ctx *x)
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
    if (!ctx->client && x->npsks > 1 && sip022_users_index(x) != 0)
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
    if (!d->keyed && head == 0)
        return -1; /* a client seals nothing before its request */
    if (head) {
        /* The first slot's payload goes in the response's first chunk, whose length the
         * fixed header carries (SIP022 section 3.1.3); the other slots follow as chunks. */
        const struct ss2022_psk *key = sip022_session_key(c);
        size_t first = len < PROTO_SLOT_PAYLOAD ? len : PROTO_SLOT_PAYLOAD;
        size_t at = head + PROTO_SLOT_HEAD;
        if (len == 0 ||
            ss2022_response_head(&d->ss, key, d->salt, c->req_salt, sip022_now(), first, buf) < 0 ||
            ss2022_stream_seal_payload(&d->ss, buf + at, first) != 0)
            return -1;
        d->keyed = true;
        d->head_pending = false;
        wire = (long)(at + first + CRYPTO_TAG_LEN);
        if (len == first)
            return wire;
        buf += head + PROTO_SLOT;
        len -= first;
    }
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

/* ---- UDP: not yet; every datagram is refused ---- */

static size_t sip022_datagram_overhead(const struct proto_ctx *ctx)
{
    (void)ctx;
    return PROTO_DATAGRAM_OVERHEAD_MAX;
}

static void sip022_udp_state_init(struct proto_udp *p, struct proto_udp_state *st, bool adopt)
{
    (void)p, (void)adopt;
    memset(st, 0, sizeof *st);
}

static long sip022_seal_datagram(struct proto_udp *p, struct proto_udp_state *st, const uint8_t *in,
                                 size_t len, uint8_t *out)
{
    (void)p, (void)st, (void)in, (void)len, (void)out;
    return -1;
}

static long sip022_open_datagram(struct proto_udp *p, struct proto_udp_state *st, uint8_t *pkt,
                                 size_t len, uint8_t **plain)
{
    (void)p, (void)st, (void)pkt, (void)len, (void)plain;
    return PROTO_BAD;
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
    .udp_state_size = 0,
    .datagram_overhead = sip022_datagram_overhead,
    .udp_state_init = sip022_udp_state_init,
    .seal_datagram = sip022_seal_datagram,
    .open_datagram = sip022_open_datagram,
};

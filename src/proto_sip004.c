/* proto_sip004.c: SIP004, the shadowsocks AEAD protocol, behind struct proto_ops.
 *
 *   TCP: each direction is [salt][chunks] (ss_stream.c), subkey HKDF-SHA1(key, salt,
 *        "ss-subkey"); the request's first chunk starts with the address header. The response
 *        does not depend on the request: it is simply the server's salt and chunks.
 *   UDP: [salt][AEAD(address header + data)][tag] with a per-packet subkey (ss_packet.c); no
 *        per-association state.
 *   Replay: salts that authenticated are remembered, and so are our own.
 *
 * Several keys (users) are told apart the way shadowsocks servers do it for SIP004: the one
 * under which the first chunk's sealed length opens is the request's (outline-ss-server does
 * the same). One try is a subkey (HKDF-SHA1) and one AEAD open of the 2-byte length and its
 * 16-byte tag, never of the whole first flight; a wrong key fails on that tag with odds of
 * 2^-128. The key a client address used last is tried first (a small per-worker table of
 * recent clients), so a returning client costs one try; a new one costs at most one per key. */
#include "autoconfig.h"

#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"
#include "replay.h"
#include "ss_packet.h"

static const struct crypto_key *sip004_key(const struct proto_conn *c)
{
    return &c->ctx->keys[c->key];
}

static size_t sip004_salt_len(const struct crypto_key *k)
{
    return crypto_method_info(k->method)->salt_len;
}

/* 1 when the salt was seen before (or the store failed: refuse), else 0 and it is remembered. */
static int sip004_replayed(const struct proto_ctx *ctx, enum replay_kind kind, const uint8_t *salt,
                           size_t len)
{
    return ctx->replay && replay_check_and_add(ctx->replay, kind, salt, len) != 0;
}

static int sip004_seal_begin(struct proto_conn *c, struct proto_dir *d)
{
    const struct crypto_key *k = sip004_key(c);
    size_t salt_len = sip004_salt_len(k);

    if (crypto_random(d->salt, salt_len) < 0 || ss_stream_init(&d->ss, k, d->salt) < 0)
        return -1;
    /* the answer does not matter: a fresh random salt is new */
    (void)sip004_replayed(c->ctx, REPLAY_TCP, d->salt, salt_len);
    d->keyed = true;
    d->head_pending = true;
    return 0;
}

static size_t sip004_seal_head_len(const struct proto_conn *c, const struct proto_dir *d)
{
    return d->head_pending ? sip004_salt_len(sip004_key(c)) : 0;
}

/* The address header and early data go out as one chunk behind the salt. */
static long sip004_seal_request(struct proto_conn *c, struct proto_dir *d, const uint8_t *addr,
                                size_t addr_len, const uint8_t *early, size_t early_len,
                                uint8_t *out, size_t cap)
{
    uint8_t plain[NETADDR_HEADER_MAX + SS_CHUNK_MAX];
    size_t head = sip004_seal_head_len(c, d);

    if (addr_len > NETADDR_HEADER_MAX || early_len > sizeof plain - addr_len)
        return -1;
    /* early may lie in out: copied before anything is written there */
    memcpy(plain, addr, addr_len);
    if (early_len)
        memcpy(plain + addr_len, early, early_len);
    if (head + ss_stream_sealed_size(addr_len + early_len) > cap)
        return -1;
    memcpy(out, d->salt, head);
    long n = ss_stream_seal(&d->ss, plain, addr_len + early_len, out + head);
    crypto_wipe(plain, addr_len + early_len);
    if (n < 0)
        return -1;
    d->head_pending = false;
    return (long)head + n;
}

static long sip004_seal_slots(struct proto_conn *c, struct proto_dir *d, uint8_t *buf, size_t len,
                              size_t *start)
{
    size_t head = sip004_seal_head_len(c, d);

    memcpy(buf, d->salt, head);
    long wire = ss_stream_seal_slots(&d->ss, buf + head, len);
    if (wire < 0)
        return -1;
    d->head_pending = false;
    *start = 0;
    return (long)head + wire;
}

/* ---- Recent clients: address -> the key it used last ----
 * Direct-mapped (a newer client takes the slot of an older one with the same hash): bounded
 * memory, O(1), and a miss only costs the order of tries, never a refusal. The hash is seeded
 * per worker so no one can aim addresses at one slot. */
#define SIP004_RECENT 4096 /* slots; 20 bytes each */

struct sip004_recent {
    uint8_t addr[16]; /* IPv4 as ::ffff:a.b.c.d */
    uint32_t key1;    /* the key index + 1; 0: empty */
};

struct sip004_users {
    uint64_t seed;
    struct sip004_recent slot[SIP004_RECENT];
};

static int sip004_ctx_init(struct proto_ctx *ctx)
{
    struct sip004_users *u;

    ctx->priv = NULL;
    if (ctx->client || ctx->nkeys < 2)
        return 0;
    u = calloc(1, sizeof *u);
    if (!u || crypto_random(&u->seed, sizeof u->seed) != 0) {
        free(u);
        return -1;
    }
    ctx->priv = u;
    return 0;
}

static void sip004_ctx_free(struct proto_ctx *ctx)
{
    free(ctx->priv);
    ctx->priv = NULL;
}

/* The client's IP address as 16 bytes. Returns 0, or -1 when there is none. */
static int sip004_peer_bytes(const struct sockaddr *sa, uint8_t out[16])
{
    if (sa && sa->sa_family == AF_INET6) {
        memcpy(out, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, 16);
        return 0;
    }
    if (sa && sa->sa_family == AF_INET) {
        static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        memcpy(out, mapped, 12);
        memcpy(out + 12, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
        return 0;
    }
    return -1;
}

static struct sip004_recent *sip004_recent_slot(struct sip004_users *u, const uint8_t addr[16])
{
    uint64_t a, b;

    memcpy(&a, addr, 8);
    memcpy(&b, addr + 8, 8);
    /* a multiply-xorshift mix (splitmix64's finaliser) of both halves and the seed */
    uint64_t h = (a ^ u->seed) * 0x9E3779B97F4A7C15ull;
    h = (h ^ b ^ (h >> 31)) * 0xBF58476D1CE4E5B9ull;
    h ^= h >> 29;
    return &u->slot[h % SIP004_RECENT];
}

/* One try: keys d with key k and opens the first chunk's length (and the chunk, when all of it
 * is there). Returns the ss_stream_open_chunk result. */
static int sip004_try_key(struct proto_conn *c, struct proto_dir *d, size_t k, uint8_t *buf,
                          size_t len, size_t *used, uint8_t **payload, size_t *plen)
{
    const struct crypto_key *key = &c->ctx->keys[k];
    size_t salt_len = sip004_salt_len(key);

    if (ss_stream_init(&d->ss, key, buf) < 0)
        return SS_OPEN_ERROR;
    int r = ss_stream_open_chunk(&d->ss, buf + salt_len, len - salt_len, used, payload, plen);
    if (r != SS_OPEN_ERROR) {
        c->key = k;
        c->user = c->ctx->names ? c->ctx->names[k] : NULL;
        d->keyed = true;
    }
    return r;
}

/* Keys d with the key of the set under which the first chunk's length opens: the one this
 * client address used last first, then the others in order (at most one try per key). Returns
 * the ss_stream_open_chunk result of that key, SS_OPEN_ERROR when none fits. */
static int sip004_find_key(struct proto_conn *c, struct proto_dir *d, uint8_t *buf, size_t len,
                           size_t *used, uint8_t **payload, size_t *plen)
{
    const struct proto_ctx *ctx = c->ctx;
    struct sip004_users *u = ctx->priv;
    struct sip004_recent *slot = NULL;
    uint8_t addr[16];
    size_t first = SIZE_MAX;

    /* every key of a port has the port's method, so one salt length */
    if (len < sip004_salt_len(&ctx->keys[0]) + SS_CHUNK_HEAD)
        return SS_OPEN_NEED_MORE;
    if (u && sip004_peer_bytes(c->peer, addr) == 0) {
        slot = sip004_recent_slot(u, addr);
        if (slot->key1 && slot->key1 <= ctx->nkeys && memcmp(slot->addr, addr, 16) == 0 &&
            !(ctx->retired && ctx->retired[slot->key1 - 1]))
            first = slot->key1 - 1;
    }
    int r = SS_OPEN_ERROR;
    if (first != SIZE_MAX)
        r = sip004_try_key(c, d, first, buf, len, used, payload, plen);
    for (size_t k = 0; r == SS_OPEN_ERROR && k < ctx->nkeys; k++)
        if (k != first && !(ctx->retired && ctx->retired[k]))
            r = sip004_try_key(c, d, k, buf, len, used, payload, plen);
    if (r != SS_OPEN_ERROR && slot) {
        memcpy(slot->addr, addr, 16);
        slot->key1 = (uint32_t)c->key + 1;
    }
    return r;
}

static int sip004_open_request(struct proto_conn *c, struct proto_dir *d, uint8_t *buf, size_t len,
                               struct proto_request *out)
{
    size_t used, plen;
    uint8_t *payload;
    int r;

    if (!d->keyed) {
        r = sip004_find_key(c, d, buf, len, &used, &payload, &plen);
    } else {
        size_t salt_len = sip004_salt_len(sip004_key(c));
        r = ss_stream_open_chunk(&d->ss, buf + salt_len, len - salt_len, &used, &payload, &plen);
    }
    if (r == SS_OPEN_NEED_MORE)
        return PROTO_NEED_MORE;
    /* What a failed tag on the first chunk most likely means, for the operator reading the log:
     * a client with another password or method, or someone probing the port. */
    out->reason = "bad tag (wrong password or method, or a probe)";
    if (r == SS_OPEN_ERROR)
        return PROTO_BAD;
    size_t salt_len = sip004_salt_len(sip004_key(c));
    int hlen = netaddr_parse_header(payload, plen, &out->target);
    out->reason = "malformed address header";
    if (hlen <= 0)
        return PROTO_BAD;
    /* Only a salt that authenticated is remembered: random junk cannot fill the store. */
    out->reason = "replayed salt";
    if (sip004_replayed(c->ctx, REPLAY_TCP, buf, salt_len))
        return PROTO_REPLAYED;
    out->reason = NULL;
    memcpy(c->req_salt, buf, salt_len);
    c->req_salt_len = salt_len;
    out->payload = payload + hlen;
    out->payload_len = plen - (size_t)hlen;
    out->consumed = salt_len + used;
    return PROTO_DONE;
}

static int sip004_open_stream(struct proto_conn *c, struct proto_dir *d, uint8_t *buf, size_t len,
                              size_t *consumed, struct iovec *iov, int max)
{
    size_t at = 0;
    int n = 0;

    *consumed = 0;
    if (!d->keyed) {
        size_t salt_len = sip004_salt_len(sip004_key(c));
        if (len < salt_len)
            return 0;
        if (ss_stream_init(&d->ss, sip004_key(c), buf) < 0)
            return -1;
        d->keyed = true;
        at = salt_len;
    }
    return proto_open_chunks(&d->ss, buf, len, at, consumed, iov, n, max);
}

static size_t sip004_datagram_overhead(const struct proto_ctx *ctx)
{
    return ss_packet_overhead(&ctx->keys[0]);
}

static void sip004_udp_state_init(struct proto_udp *p, struct proto_udp_state *st, bool adopt)
{
    /* every SIP004 packet stands alone: an association keeps nothing */
    (void)p, (void)st, (void)adopt;
}

static long sip004_seal_datagram(struct proto_udp *p, struct proto_udp_state *st, const uint8_t *in,
                                 size_t len, uint8_t *out)
{
    struct ss_packet_ctx pc = {&p->ctx->keys[0], p->aead};

    (void)st;
    long n = ss_packet_seal(&pc, in, len, out);
    /* Our own salt is remembered as TCP's are (seal_begin): a reply of ours, captured and sent
     * back to us, would open under the same key and be taken for a request, relayed, and
     * answered to whoever sent it. The answer does not matter: a fresh random salt is new. */
    if (n > 0)
        (void)sip004_replayed(p->ctx, REPLAY_UDP, out, sip004_salt_len(pc.key));
    return n;
}

/* A packet captured and sent again, from anywhere, must not make us send on its behalf, nor
 * answer and so tell a prober what we are: its salt is refused the second time. */
static long sip004_open_datagram(struct proto_udp *p, struct proto_udp_state *st, uint8_t *pkt,
                                 size_t len, uint8_t **plain)
{
    struct ss_packet_ctx pc = {&p->ctx->keys[0], p->aead};

    (void)st;
    long n = ss_packet_open(&pc, pkt, len, plain);
    if (n < 0)
        return PROTO_BAD;
    /* the salt in front of the plaintext is left as it came */
    if (sip004_replayed(p->ctx, REPLAY_UDP, pkt, sip004_salt_len(pc.key)))
        return PROTO_REPLAYED;
    return n;
}

const struct proto_ops proto_sip004 = {
    .name = "sip004",
    .ctx_init = sip004_ctx_init,
    .ctx_free = sip004_ctx_free,
    .seal_begin = sip004_seal_begin,
    .seal_head_len = sip004_seal_head_len,
    .seal_request = sip004_seal_request,
    .seal_slots = sip004_seal_slots,
    .open_request = sip004_open_request,
    .open_stream = sip004_open_stream,
    .udp_state_size = 0,
    .datagram_overhead = sip004_datagram_overhead,
    .udp_state_init = sip004_udp_state_init,
    .seal_datagram = sip004_seal_datagram,
    .open_datagram = sip004_open_datagram,
};

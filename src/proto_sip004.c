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
 * under which the first chunk's sealed length opens is the request's. */
#include "autoconfig.h"

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

/* Keys d with the first key of the set under which the first chunk's length opens. Returns
 * the ss_stream_open_chunk result of that key, SS_OPEN_ERROR when none fits. */
static int sip004_find_key(struct proto_conn *c, struct proto_dir *d, uint8_t *buf, size_t len,
                           size_t *used, uint8_t **payload, size_t *plen)
{
    const struct proto_ctx *ctx = c->ctx;

    for (size_t k = 0; k < ctx->nkeys; k++) {
        size_t salt_len = sip004_salt_len(&ctx->keys[k]);
        if (len < salt_len + SS_CHUNK_HEAD)
            return SS_OPEN_NEED_MORE;
        if (ss_stream_init(&d->ss, &ctx->keys[k], buf) < 0)
            return SS_OPEN_ERROR;
        int r = ss_stream_open_chunk(&d->ss, buf + salt_len, len - salt_len, used, payload, plen);
        if (r != SS_OPEN_ERROR) {
            c->key = k;
            d->keyed = true;
            return r;
        }
    }
    return SS_OPEN_ERROR;
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

/* ss2022_udp.c: the Shadowsocks 2022 codec, UDP (SIP022 sections 3.2 and 4.1, SIP023 for the
 * identity header) and the packet-id sliding window (3.2.4, after RFC 6479). Pure functions;
 * packets are sealed into and opened in caller-owned buffers.
 *
 * AES methods: AES(PSK, session id || packet id) | [identity header] | AEAD(session subkey,
 * nonce = separate header[4..16], body). Chacha: nonce(24) | XChaCha20-Poly1305(PSK, nonce,
 * session id || packet id || body). The body: type, timestamp, [client session id,
 * server-to-client only], padding length, padding, address, payload. */
#include "ss2022.h"

#include <string.h>

#include "rp_assert.h"
#include "rp_bytes.h"

/* type + timestamp + padding length; a server's body adds the client session id. */
#define UDP_BODY_FIXED (1 + 8 + 2)
#define UDP_IDS 16

static bool udp_is_chacha(const struct ss2022_udp_keys *keys)
{
    return keys->method == SS2022_CHACHA20_POLY1305;
}

/* Writes the body (after the ids) at out. Returns its length, or -1 if it does not fit. */
static long udp_write_body(const struct ss2022_udp_packet *p, uint8_t *out, size_t cap)
{
    uint8_t addr[NETADDR_HEADER_MAX];
    int addr_len = netaddr_write_header(&p->target, addr, sizeof addr);
    size_t fixed = UDP_BODY_FIXED + (p->type == SS2022_TYPE_SERVER ? 8 : 0);

    if (addr_len <= 0 || p->padding_len > SS2022_MAX_PADDING)
        return -1;
    size_t total = fixed + p->padding_len + (size_t)addr_len + p->payload_len;
    if (total > cap)
        return -1;
    uint8_t *q = out;
    *q++ = (uint8_t)p->type;
    rp_put_be64(q, p->timestamp);
    q += 8;
    if (p->type == SS2022_TYPE_SERVER) {
        rp_put_be64(q, p->client_session_id);
        q += 8;
    }
    *q++ = (uint8_t)(p->padding_len >> 8);
    *q++ = (uint8_t)p->padding_len;
    memset(q, 0, p->padding_len);
    q += p->padding_len;
    memcpy(q, addr, (size_t)addr_len);
    q += addr_len;
    if (p->payload_len)
        memmove(q, p->payload, p->payload_len);
    return (long)total;
}

static long udp_seal_chacha(const struct ss2022_udp_keys *keys, const struct ss2022_udp_packet *p,
                            const uint8_t *nonce, uint8_t *out, size_t cap)
{
    if (!nonce || cap < SS2022_UDP_NONCE + UDP_IDS + CRYPTO_TAG_LEN)
        return -1;
    uint8_t *body = out + SS2022_UDP_NONCE;
    long len = udp_write_body(p, body + UDP_IDS, cap - SS2022_UDP_NONCE - UDP_IDS - CRYPTO_TAG_LEN);
    if (len < 0)
        return -1;
    memcpy(out, nonce, SS2022_UDP_NONCE);
    rp_put_be64(body, p->session_id);
    rp_put_be64(body + 8, p->packet_id);
    size_t n = UDP_IDS + (size_t)len;
    if (crypto_xchacha_seal(keys->xchacha, nonce, NULL, 0, body, n, body, body + n) != 0)
        return -1;
    return (long)(SS2022_UDP_NONCE + n + CRYPTO_TAG_LEN);
}

long ss2022_udp_seal(const struct ss2022_udp_keys *keys, const struct ss2022_udp_packet *p,
                     const uint8_t identity[CRYPTO_BLOCK_LEN],
                     const uint8_t nonce[SS2022_UDP_NONCE], uint8_t *out, size_t cap)
{
    if (udp_is_chacha(keys))
        return identity ? -1 : udp_seal_chacha(keys, p, nonce, out, cap);
    size_t head = SS2022_UDP_SEPARATE + (identity ? CRYPTO_BLOCK_LEN : 0);
    if (cap < head + CRYPTO_TAG_LEN)
        return -1;
    /* p->payload must not overlap out: the body is written around it. */
    long len = udp_write_body(p, out + head, cap - head - CRYPTO_TAG_LEN);
    if (len < 0)
        return -1;
    uint8_t sep[SS2022_UDP_SEPARATE];
    rp_put_be64(sep, p->session_id);
    rp_put_be64(sep + 8, p->packet_id);
    uint8_t *body = out + head;
    if (crypto_aead_seal(keys->aead, sep + 4, body, (size_t)len, body, body + len) != 0)
        return -1;
    if (identity) {
        /* SIP023: the hash XOR the separate header, so it differs in every packet. */
        uint8_t id[CRYPTO_BLOCK_LEN];
        for (int i = 0; i < CRYPTO_BLOCK_LEN; i++)
            id[i] = identity[i] ^ sep[i];
        if (crypto_block_encrypt(keys->block, id, out + SS2022_UDP_SEPARATE) != 0)
            return -1;
    }
    if (crypto_block_encrypt(keys->block, sep, out) != 0)
        return -1;
    return (long)(head + (size_t)len + CRYPTO_TAG_LEN);
}

int ss2022_udp_peek(const struct ss2022_udp_keys *keys, const uint8_t *pkt, size_t len,
                    uint64_t *session_id, uint64_t *packet_id, uint8_t identity[CRYPTO_BLOCK_LEN])
{
    uint8_t sep[SS2022_UDP_SEPARATE];
    size_t need = SS2022_UDP_SEPARATE + (identity ? CRYPTO_BLOCK_LEN : 0) + CRYPTO_TAG_LEN;

    if (udp_is_chacha(keys) || len < need)
        return -1;
    if (crypto_block_decrypt(keys->block, pkt, sep) != 0)
        return -1;
    *session_id = rp_get_be64(sep);
    *packet_id = rp_get_be64(sep + 8);
    if (identity) {
        if (crypto_block_decrypt(keys->block, pkt + SS2022_UDP_SEPARATE, identity) != 0)
            return -1;
        for (int i = 0; i < CRYPTO_BLOCK_LEN; i++)
            identity[i] ^= sep[i];
    }
    return 0;
}

static int udp_bad(struct ss2022_udp_packet *p, enum ss2022_error e)
{
    p->error = e;
    return SS2022_BAD;
}

/* Parses an opened body (section 3.2.3). */
static int udp_parse_body(const uint8_t *b, size_t len, int want_type, uint64_t now,
                          struct ss2022_udp_packet *p)
{
    size_t fixed = UDP_BODY_FIXED + (want_type == SS2022_TYPE_SERVER ? 8 : 0);
    if (len < fixed)
        return udp_bad(p, SS2022_ERR_LENGTH);
    p->type = b[0];
    if (p->type != want_type)
        return udp_bad(p, SS2022_ERR_TYPE);
    p->timestamp = rp_get_be64(b + 1);
    if (!ss2022_timestamp_ok(p->timestamp, now))
        return udp_bad(p, SS2022_ERR_TIMESTAMP);
    size_t at = 9;
    if (want_type == SS2022_TYPE_SERVER) {
        p->client_session_id = rp_get_be64(b + at);
        at += 8;
    }
    p->padding_len = (size_t)b[at] << 8 | b[at + 1];
    at += 2;
    if (p->padding_len > SS2022_MAX_PADDING)
        return udp_bad(p, SS2022_ERR_PADDING);
    if (p->padding_len > len - at)
        return udp_bad(p, SS2022_ERR_LENGTH);
    at += p->padding_len;
    int addr_len = netaddr_parse_header(b + at, len - at, &p->target);
    if (addr_len <= 0)
        return udp_bad(p, SS2022_ERR_ADDRESS);
    at += (size_t)addr_len;
    p->payload = b + at;
    p->payload_len = len - at;
    return SS2022_DONE;
}

static int udp_open_chacha(const struct ss2022_udp_keys *keys, uint8_t *pkt, size_t len,
                           int want_type, uint64_t now, struct ss2022_udp_packet *p)
{
    if (len < SS2022_UDP_NONCE + UDP_IDS + CRYPTO_TAG_LEN)
        return udp_bad(p, SS2022_ERR_LENGTH);
    uint8_t *body = pkt + SS2022_UDP_NONCE;
    size_t n = len - SS2022_UDP_NONCE - CRYPTO_TAG_LEN;
    if (crypto_xchacha_open(keys->xchacha, pkt, NULL, 0, body, n, body, body + n) != 0)
        return udp_bad(p, SS2022_ERR_AUTH);
    p->session_id = rp_get_be64(body);
    p->packet_id = rp_get_be64(body + 8);
    return udp_parse_body(body + UDP_IDS, n - UDP_IDS, want_type, now, p);
}

int ss2022_udp_open(const struct ss2022_udp_keys *keys, uint8_t *pkt, size_t len, size_t identities,
                    int want_type, uint64_t now, struct ss2022_udp_packet *p)
{
    memset(p, 0, sizeof *p);
    if (udp_is_chacha(keys))
        return identities ? udp_bad(p, SS2022_ERR_INTERNAL)
                          : udp_open_chacha(keys, pkt, len, want_type, now, p);
    size_t head = SS2022_UDP_SEPARATE + identities * CRYPTO_BLOCK_LEN;
    uint8_t sep[SS2022_UDP_SEPARATE];
    if (len < head + CRYPTO_TAG_LEN)
        return udp_bad(p, SS2022_ERR_LENGTH);
    if (crypto_block_decrypt(keys->block, pkt, sep) != 0)
        return udp_bad(p, SS2022_ERR_INTERNAL);
    p->session_id = rp_get_be64(sep);
    p->packet_id = rp_get_be64(sep + 8);
    uint8_t *body = pkt + head;
    size_t n = len - head - CRYPTO_TAG_LEN;
    if (crypto_aead_open(keys->aead, sep + 4, body, n, body, body + n) != 0)
        return udp_bad(p, SS2022_ERR_AUTH);
    return udp_parse_body(body, n, want_type, now, p);
}

#define WINDOW_RING_BITS (SS2022_WINDOW_WORDS * 64)

bool ss2022_window_check(const struct ss2022_window *w, uint64_t id)
{
    if (!w->started || id > w->top)
        return true;
    if (w->top - id >= SS2022_WINDOW_SIZE)
        return false; /* behind the window: it may or may not have been seen */
    uint64_t bit = id % WINDOW_RING_BITS;
    return !((w->bits[bit / 64] >> (bit % 64)) & 1);
}

bool ss2022_window_accept(struct ss2022_window *w, uint64_t id)
{
    if (!ss2022_window_check(w, id))
        return false;
    if (!w->started) {
        memset(w->bits, 0, sizeof w->bits);
        w->top = id;
        w->started = true;
    } else if (id > w->top) {
        /* Clear the words the window slides over (at most the whole ring). */
        uint64_t from = w->top / 64, to = id / 64;
        uint64_t steps = to - from < SS2022_WINDOW_WORDS ? to - from : SS2022_WINDOW_WORDS;
        for (uint64_t i = 1; i <= steps; i++)
            w->bits[(from + i) % SS2022_WINDOW_WORDS] = 0;
        w->top = id;
    }
    uint64_t bit = id % WINDOW_RING_BITS;
    RP_ASSERT(bit / 64 < SS2022_WINDOW_WORDS);
    w->bits[bit / 64] |= (uint64_t)1 << (bit % 64);
    return true;
}

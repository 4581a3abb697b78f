/* ss_stream.c: shadowsocks AEAD stream framing (SIP004, the "AEAD ciphers" spec on
 * shadowsocks.org). A stream is the sender's salt, then chunks
 *
 *     [sealed 2-byte big-endian payload length][tag][sealed payload][tag]
 *
 * under the subkey HKDF-SHA1(master key, salt, "ss-subkey"). Each of the two seals of a chunk
 * takes the next value of a 12-byte little-endian nonce counter that starts at zero.
 *
 * Everything works in place on caller-owned buffers; no allocation after ss_stream_init().
 *
 * Zero-length chunks: shadowsocks-libev never sends one (aead_encrypt() returns early on empty
 * input) and rejects one as a crypto error (aead_chunk_decrypt(): "if (mlen == 0)"). We do the
 * same both ways, so a zero length is a protocol error here too and looks the same to a prober.
 * The reserved upper two bits of the length: the spec says they must be zero; libev masks them
 * off, we reject them (libev itself never sets them). */
#include <limits.h>
#include <string.h>

#include "ss_stream.h"

int ss_stream_init(struct ss_stream *s, const struct crypto_key *key, const uint8_t *salt)
{
    uint8_t subkey[CRYPTO_MAX_KEY];
    int ret = -1;

    if (crypto_subkey(key, salt, subkey) != 0)
        goto out;
    if (s->aead && crypto_aead_method(s->aead) != key->method) {
        crypto_aead_free(s->aead);
        s->aead = NULL;
    }
    if (s->aead) {
        if (crypto_aead_rekey(s->aead, subkey) != 0)
            goto out;
    } else {
        s->aead = crypto_aead_new(key->method, subkey);
        if (!s->aead)
            goto out;
    }
    memset(s->nonce, 0, sizeof s->nonce);
    s->pending_len = SS_PENDING_NONE;
    s->chunk_max = SS_CHUNK_MAX;
    ret = 0;
out:
    crypto_wipe(subkey, sizeof subkey);
    if (ret != 0)
        s->pending_len = SS_STREAM_DEAD;
    return ret;
}

void ss_stream_free(struct ss_stream *s)
{
    crypto_aead_free(s->aead);
    memset(s, 0, sizeof *s);
}

/* One AEAD seal with the current nonce, then the counter moves on (SIP004: after each
 * encrypt/decrypt operation). */
static int ss_stream_seal_part(struct ss_stream *s, uint8_t *data, size_t len)
{
    if (crypto_aead_seal(s->aead, s->nonce, data, len, data, data + len) != 0)
        return -1;
    crypto_nonce_increment(s->nonce);
    return 0;
}

int ss_stream_seal_chunk(struct ss_stream *s, uint8_t *chunk, size_t payload_len)
{
    if (!s->aead || s->pending_len == SS_STREAM_DEAD || payload_len == 0 ||
        payload_len > SS_CHUNK_MAX)
        return -1;
    chunk[0] = (uint8_t)(payload_len >> 8);
    chunk[1] = (uint8_t)payload_len;
    if (ss_stream_seal_part(s, chunk, SS_LEN_FIELD) != 0 ||
        ss_stream_seal_part(s, chunk + SS_CHUNK_HEAD, payload_len) != 0) {
        /* The peer's nonce can no longer match ours: nothing more may be sent. */
        s->pending_len = SS_STREAM_DEAD;
        return -1;
    }
    return (int)(payload_len + SS_CHUNK_OVERHEAD);
}

size_t ss_stream_sealed_size(size_t len)
{
    size_t chunks = len / SS_CHUNK_MAX + (len % SS_CHUNK_MAX != 0);

    if (chunks > (SIZE_MAX - len) / SS_CHUNK_OVERHEAD)
        return SIZE_MAX;
    return len + chunks * SS_CHUNK_OVERHEAD;
}

long ss_stream_seal(struct ss_stream *s, const uint8_t *in, size_t len, uint8_t *out)
{
    size_t total = ss_stream_sealed_size(len);
    size_t done = 0;
    uint8_t *p = out;

    if (total > (size_t)LONG_MAX)
        return -1;
    while (done < len) {
        size_t n = len - done < SS_CHUNK_MAX ? len - done : SS_CHUNK_MAX;
        memcpy(p + SS_CHUNK_HEAD, in + done, n);
        int wire = ss_stream_seal_chunk(s, p, n);
        if (wire < 0)
            return -1;
        p += wire;
        done += n;
    }
    return (long)total;
}

long ss_stream_seal_slots(struct ss_stream *s, uint8_t *buf, size_t len)
{
    size_t at = 0;

    while (len) {
        size_t k = len < SS_SEAL_CHUNK ? len : SS_SEAL_CHUNK;
        if (ss_stream_seal_chunk(s, buf + at, k) < 0)
            return -1;
        at += k + SS_CHUNK_OVERHEAD;
        len -= k;
    }
    return (long)at;
}

/* Opens the sealed length at the front of a chunk into s->pending_len. The plaintext goes to a
 * local array, so buf is left as it was. */
static int ss_stream_open_length(struct ss_stream *s, const uint8_t *buf)
{
    uint8_t plain[SS_LEN_FIELD];

    if (crypto_aead_open(s->aead, s->nonce, buf, SS_LEN_FIELD, plain, buf + SS_LEN_FIELD) != 0)
        return -1;
    crypto_nonce_increment(s->nonce);
    unsigned len = (unsigned)plain[0] << 8 | plain[1];
    /* SIP004: the length is capped at 0x3FFF, its two upper bits are reserved and must be
     * zero (SIP022 lifts the cap to 0xFFFF: chunk_max). Zero: see the top of this file. */
    unsigned max = s->chunk_max ? s->chunk_max : SS_CHUNK_MAX;
    if (len == 0 || len > max)
        return -1;
    s->pending_len = (int)len;
    return 0;
}

int ss_stream_open_chunk(struct ss_stream *s, uint8_t *buf, size_t len, size_t *consumed,
                         uint8_t **payload, size_t *payload_len)
{
    if (!s->aead || s->pending_len == SS_STREAM_DEAD)
        return SS_OPEN_ERROR;
    if (s->pending_len == SS_PENDING_NONE) {
        if (len < SS_CHUNK_HEAD)
            return SS_OPEN_NEED_MORE;
        /* Decrypted once, remembered: a chunk that arrives in pieces must not be opened
         * again with a nonce that has already moved on. */
        if (ss_stream_open_length(s, buf) != 0)
            goto dead;
    }
    size_t plain_len = (size_t)s->pending_len;
    if (len < SS_CHUNK_OVERHEAD + plain_len)
        return SS_OPEN_NEED_MORE;
    uint8_t *data = buf + SS_CHUNK_HEAD;
    if (crypto_aead_open(s->aead, s->nonce, data, plain_len, data, data + plain_len) != 0)
        goto dead;
    crypto_nonce_increment(s->nonce);
    s->pending_len = SS_PENDING_NONE;
    *consumed = SS_CHUNK_OVERHEAD + plain_len;
    *payload = data;
    *payload_len = plain_len;
    return SS_OPEN_CHUNK;
dead:
    s->pending_len = SS_STREAM_DEAD;
    return SS_OPEN_ERROR;
}

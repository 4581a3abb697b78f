/* ss_packet.c: shadowsocks AEAD datagrams (SIP004 UDP): [salt][sealed payload][tag]. Every
 * packet carries a fresh random salt; its subkey is HKDF-SHA1(master key, salt, "ss-subkey")
 * and its nonce is all zero, so packets open independently of each other. One AEAD context per
 * worker is re-keyed for every packet instead of being allocated. */
#include <limits.h>
#include <string.h>

#include "ss_packet.h"

/* The context is allocated once with a throwaway all-zero key: every seal and open re-keys it
 * with the packet's subkey first, so the master key never sits in a second place. */
int ss_packet_ctx_init(struct ss_packet_ctx *p, const struct crypto_key *key)
{
    static const uint8_t placeholder[CRYPTO_MAX_KEY];

    p->key = key;
    p->aead = crypto_aead_new(key->method, placeholder);
    return p->aead ? 0 : -1;
}

void ss_packet_ctx_free(struct ss_packet_ctx *p)
{
    crypto_aead_free(p->aead);
    p->aead = NULL;
    p->key = NULL;
}

size_t ss_packet_overhead(const struct crypto_key *key)
{
    const struct crypto_method_info *info = crypto_method_info(key->method);

    return info ? info->salt_len + CRYPTO_TAG_LEN : 0;
}

/* Keys p->aead with the subkey of this salt. */
static int ss_packet_rekey(struct ss_packet_ctx *p, const uint8_t *salt)
{
    uint8_t subkey[CRYPTO_MAX_KEY];
    int ret = -1;

    if (crypto_subkey(p->key, salt, subkey) == 0 && crypto_aead_rekey(p->aead, subkey) == 0)
        ret = 0;
    crypto_wipe(subkey, sizeof subkey);
    return ret;
}

/* An empty payload carries no address header: shadowsocks-libev refuses to open one
 * (aead_decrypt_all: "ciphertext->len <= salt_len + tag_len" is an error), so we neither send
 * nor accept one. */
long ss_packet_seal(struct ss_packet_ctx *p, const uint8_t *in, size_t len, uint8_t *out)
{
    static const uint8_t zero_nonce[CRYPTO_NONCE_LEN];
    size_t overhead = ss_packet_overhead(p->key);

    if (!p->aead || overhead == 0 || len == 0 || len > (size_t)LONG_MAX - overhead)
        return -1;
    size_t salt_len = overhead - CRYPTO_TAG_LEN;
    if (crypto_random(out, salt_len) != 0 || ss_packet_rekey(p, out) != 0)
        return -1;
    uint8_t *data = out + salt_len;
    if (crypto_aead_seal(p->aead, zero_nonce, in, len, data, data + len) != 0)
        return -1;
    return (long)(len + overhead);
}

long ss_packet_open(struct ss_packet_ctx *p, uint8_t *pkt, size_t len, uint8_t **plain)
{
    static const uint8_t zero_nonce[CRYPTO_NONCE_LEN];
    size_t overhead = ss_packet_overhead(p->key);

    if (!p->aead || overhead == 0 || len <= overhead || len - overhead > (size_t)LONG_MAX)
        return -1;
    size_t salt_len = overhead - CRYPTO_TAG_LEN;
    size_t data_len = len - overhead;
    uint8_t *data = pkt + salt_len;
    if (ss_packet_rekey(p, pkt) != 0 ||
        crypto_aead_open(p->aead, zero_nonce, data, data_len, data, data + data_len) != 0)
        return -1;
    *plain = data;
    return (long)data_len;
}

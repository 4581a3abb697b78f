/* crypto_sip022.c: the primitives Shadowsocks 2022 adds to the crypto interface. AES-ECB on
 * single blocks (the UDP separate header and the identity headers), forwarded to the backend
 * configure chose, like the AEAD calls of crypto.c; and XChaCha20-Poly1305 (the UDP packets of
 * 2022-blake3-chacha20-poly1305), built here from HChaCha20 and the backend's
 * ChaCha20-Poly1305, because mbedTLS 2.28 has no XChaCha20 and OpenSSL's EVP none either. */
#ifdef HAVE_CONFIG_H
#include "autoconfig.h"
#endif

#include <stdlib.h>
#include <string.h>

#include "crypto.h"
#include "crypto_backend.h"
#include "rp_bytes.h"

/* struct crypto_block is the selected backend's block context under the public name. */
#ifdef RP_CRYPTO_OPENSSL
#define sip022_block crypto_openssl_block
#define sip022_block_new crypto_openssl_block_new
#define sip022_block_rekey crypto_openssl_block_rekey
#define sip022_block_free crypto_openssl_block_free
#define sip022_block_crypt crypto_openssl_block_crypt
#define sip022_aead crypto_openssl_aead
#define sip022_aead_new crypto_openssl_aead_new
#define sip022_aead_rekey crypto_openssl_aead_rekey
#define sip022_aead_free crypto_openssl_aead_free
#define sip022_aead_seal crypto_openssl_aead_seal
#define sip022_aead_open crypto_openssl_aead_open
#else
#define sip022_block crypto_mbedtls_block
#define sip022_block_new crypto_mbedtls_block_new
#define sip022_block_rekey crypto_mbedtls_block_rekey
#define sip022_block_free crypto_mbedtls_block_free
#define sip022_block_crypt crypto_mbedtls_block_crypt
#define sip022_aead crypto_mbedtls_aead
#define sip022_aead_new crypto_mbedtls_aead_new
#define sip022_aead_rekey crypto_mbedtls_aead_rekey
#define sip022_aead_free crypto_mbedtls_aead_free
#define sip022_aead_seal crypto_mbedtls_aead_seal
#define sip022_aead_open crypto_mbedtls_aead_open
#endif

struct crypto_block *crypto_block_new(const uint8_t *key, size_t key_len)
{
    if (!key)
        return NULL;
    return (struct crypto_block *)sip022_block_new(key, key_len);
}

int crypto_block_rekey(struct crypto_block *b, const uint8_t *key, size_t key_len)
{
    return sip022_block_rekey((struct sip022_block *)b, key, key_len);
}

void crypto_block_free(struct crypto_block *b)
{
    sip022_block_free((struct sip022_block *)b);
}

int crypto_block_encrypt(struct crypto_block *b, const uint8_t in[CRYPTO_BLOCK_LEN],
                         uint8_t out[CRYPTO_BLOCK_LEN])
{
    return sip022_block_crypt((struct sip022_block *)b, 1, in, out);
}

int crypto_block_decrypt(struct crypto_block *b, const uint8_t in[CRYPTO_BLOCK_LEN],
                         uint8_t out[CRYPTO_BLOCK_LEN])
{
    return sip022_block_crypt((struct sip022_block *)b, 0, in, out);
}

static uint32_t chacha_rotl(uint32_t x, int n)
{
    return (x << n) | (x >> (32 - n));
}

/* The ChaCha quarter round (RFC 8439 section 2.1). */
static void chacha_quarter(uint32_t *s, int a, int b, int c, int d)
{
    s[a] += s[b];
    s[d] = chacha_rotl(s[d] ^ s[a], 16);
    s[c] += s[d];
    s[b] = chacha_rotl(s[b] ^ s[c], 12);
    s[a] += s[b];
    s[d] = chacha_rotl(s[d] ^ s[a], 8);
    s[c] += s[d];
    s[b] = chacha_rotl(s[b] ^ s[c], 7);
}

/* HChaCha20: the ChaCha20 state with the 16 input bytes where the block counter and nonce
 * go, 20 rounds, and no final addition; the subkey is rows 0 and 3, little-endian. */
void crypto_hchacha20(const uint8_t key[CRYPTO_XCHACHA_KEY_LEN], const uint8_t in[16],
                      uint8_t out[32])
{
    /* "expand 32-byte k" */
    uint32_t s[16] = {0x61707865, 0x3320646e, 0x79622d32, 0x6b206574};

    for (int i = 0; i < 8; i++)
        s[4 + i] = rp_get_le32(key + 4 * i);
    for (int i = 0; i < 4; i++)
        s[12 + i] = rp_get_le32(in + 4 * i);
    for (int r = 0; r < 10; r++) {
        chacha_quarter(s, 0, 4, 8, 12);
        chacha_quarter(s, 1, 5, 9, 13);
        chacha_quarter(s, 2, 6, 10, 14);
        chacha_quarter(s, 3, 7, 11, 15);
        chacha_quarter(s, 0, 5, 10, 15);
        chacha_quarter(s, 1, 6, 11, 12);
        chacha_quarter(s, 2, 7, 8, 13);
        chacha_quarter(s, 3, 4, 9, 14);
    }
    for (int i = 0; i < 8; i++)
        rp_put_le32(out + 4 * i, s[i < 4 ? i : i + 8]);
    crypto_wipe(s, sizeof s);
}

struct crypto_xchacha {
    uint8_t key[CRYPTO_XCHACHA_KEY_LEN];
    struct sip022_aead *aead; /* ChaCha20-Poly1305, re-keyed with every message's subkey */
};

struct crypto_xchacha *crypto_xchacha_new(const uint8_t key[CRYPTO_XCHACHA_KEY_LEN])
{
    struct crypto_xchacha *x = calloc(1, sizeof *x);
    if (!x || !key) {
        free(x);
        return NULL;
    }
    memcpy(x->key, key, sizeof x->key);
    /* Keyed with the PSK only to exist; every message sets its own subkey. */
    x->aead = sip022_aead_new(CRYPTO_CHACHA20_POLY1305, key);
    if (!x->aead) {
        crypto_xchacha_free(x);
        return NULL;
    }
    return x;
}

void crypto_xchacha_free(struct crypto_xchacha *x)
{
    if (!x)
        return;
    sip022_aead_free(x->aead);
    crypto_wipe(x->key, sizeof x->key);
    free(x);
}

/* Keys the inner AEAD for one message and writes its 12-byte ChaCha20 nonce. */
static int xchacha_prepare(struct crypto_xchacha *x, const uint8_t *nonce,
                           uint8_t inner[CRYPTO_NONCE_LEN])
{
    uint8_t subkey[32];
    crypto_hchacha20(x->key, nonce, subkey);
    int ret = sip022_aead_rekey(x->aead, subkey);
    crypto_wipe(subkey, sizeof subkey);
    memset(inner, 0, 4);
    memcpy(inner + 4, nonce + 16, 8);
    return ret;
}

int crypto_xchacha_seal(struct crypto_xchacha *x, const uint8_t nonce[CRYPTO_XCHACHA_NONCE_LEN],
                        const uint8_t *aad, size_t aad_len, const uint8_t *in, size_t len,
                        uint8_t *out, uint8_t *tag)
{
    uint8_t inner[CRYPTO_NONCE_LEN];
    if (xchacha_prepare(x, nonce, inner) != 0)
        return -1;
    return sip022_aead_seal(x->aead, inner, aad, aad_len, in, len, out, tag);
}

int crypto_xchacha_open(struct crypto_xchacha *x, const uint8_t nonce[CRYPTO_XCHACHA_NONCE_LEN],
                        const uint8_t *aad, size_t aad_len, const uint8_t *in, size_t len,
                        uint8_t *out, const uint8_t *tag)
{
    uint8_t inner[CRYPTO_NONCE_LEN];
    if (xchacha_prepare(x, nonce, inner) == 0 &&
        sip022_aead_open(x->aead, inner, aad, aad_len, in, len, out, tag) == 0)
        return 0;
    if (len > 0)
        memset(out, 0, len);
    return -1;
}

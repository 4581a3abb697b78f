/* crypto_mbedtls.c: the mbedTLS AEAD backend (mbedtls_gcm for the three AES-GCM methods,
 * mbedtls_chachapoly for chacha20-ietf-poly1305), and the mbedTLS version string. Always built:
 * it is the bulk AEAD when configure did not select libcrypto, and the unit tests cross-check it
 * against the OpenSSL backend when both are present. The calls used here have the same
 * signatures in mbedTLS 2.28 and 3.x. */
#include <stdlib.h>
#include <string.h>

#include <mbedtls/aes.h>
#include <mbedtls/chachapoly.h>
#include <mbedtls/gcm.h>
#include <mbedtls/version.h>

#include "crypto_backend.h"

/* Each method allocates only the context it needs: a GCM context is 424 bytes (plus the AES
 * context mbedTLS allocates behind it), a ChaCha20-Poly1305 one 240 (mbedTLS 2.28, x86-64). */
struct crypto_mbedtls_aead {
    enum crypto_method method;
};

struct mbedtls_gcm_aead {
    struct crypto_mbedtls_aead base; /* first, so the two pointers convert */
    mbedtls_gcm_context gcm;
};

struct mbedtls_chachapoly_aead {
    struct crypto_mbedtls_aead base;
    mbedtls_chachapoly_context chachapoly;
};

static int mbedtls_is_gcm(enum crypto_method m)
{
    return m == CRYPTO_AES_128_GCM || m == CRYPTO_AES_192_GCM || m == CRYPTO_AES_256_GCM;
}

static mbedtls_gcm_context *mbedtls_gcm_of(struct crypto_mbedtls_aead *a)
{
    return &((struct mbedtls_gcm_aead *)a)->gcm;
}

static mbedtls_chachapoly_context *mbedtls_chachapoly_of(struct crypto_mbedtls_aead *a)
{
    return &((struct mbedtls_chachapoly_aead *)a)->chachapoly;
}

struct crypto_mbedtls_aead *crypto_mbedtls_aead_new(enum crypto_method m, const uint8_t *key)
{
    struct crypto_mbedtls_aead *a;

    if (mbedtls_is_gcm(m)) {
        struct mbedtls_gcm_aead *g = calloc(1, sizeof *g);
        if (!g)
            return NULL;
        mbedtls_gcm_init(&g->gcm);
        a = &g->base;
    } else if (m == CRYPTO_CHACHA20_POLY1305) {
        struct mbedtls_chachapoly_aead *c = calloc(1, sizeof *c);
        if (!c)
            return NULL;
        mbedtls_chachapoly_init(&c->chachapoly);
        a = &c->base;
    } else {
        return NULL;
    }
    a->method = m;
    if (crypto_mbedtls_aead_rekey(a, key) != 0) {
        crypto_mbedtls_aead_free(a);
        return NULL;
    }
    return a;
}

/* mbedtls_gcm_setkey() frees and re-allocates the AES context behind the GCM context (2.28 and
 * 3.x alike); no mbedTLS call re-keys GCM in place. ChaCha20-Poly1305 re-keys without any. */
int crypto_mbedtls_aead_rekey(struct crypto_mbedtls_aead *a, const uint8_t *key)
{
    if (mbedtls_is_gcm(a->method)) {
        unsigned bits = (unsigned)crypto_method_info(a->method)->key_len * 8;
        return mbedtls_gcm_setkey(mbedtls_gcm_of(a), MBEDTLS_CIPHER_ID_AES, key, bits) ? -1 : 0;
    }
    return mbedtls_chachapoly_setkey(mbedtls_chachapoly_of(a), key) ? -1 : 0;
}

void crypto_mbedtls_aead_free(struct crypto_mbedtls_aead *a)
{
    if (!a)
        return;
    /* Both *_free() functions wipe the key schedule. */
    if (mbedtls_is_gcm(a->method))
        mbedtls_gcm_free(mbedtls_gcm_of(a));
    else
        mbedtls_chachapoly_free(mbedtls_chachapoly_of(a));
    free(a);
}

enum crypto_method crypto_mbedtls_aead_method(const struct crypto_mbedtls_aead *a)
{
    return a->method;
}

int crypto_mbedtls_aead_seal(struct crypto_mbedtls_aead *a, const uint8_t *nonce,
                             const uint8_t *aad, size_t aad_len, const uint8_t *in, size_t len,
                             uint8_t *out, uint8_t *tag)
{
    int ret;

    /* Both functions accept out == in: they XOR the keystream block by block. */
    if (mbedtls_is_gcm(a->method))
        ret =
            mbedtls_gcm_crypt_and_tag(mbedtls_gcm_of(a), MBEDTLS_GCM_ENCRYPT, len, nonce,
                                      CRYPTO_NONCE_LEN, aad, aad_len, in, out, CRYPTO_TAG_LEN, tag);
    else
        ret = mbedtls_chachapoly_encrypt_and_tag(mbedtls_chachapoly_of(a), len, nonce, aad, aad_len,
                                                 in, out, tag);
    return ret ? -1 : 0;
}

int crypto_mbedtls_aead_open(struct crypto_mbedtls_aead *a, const uint8_t *nonce,
                             const uint8_t *aad, size_t aad_len, const uint8_t *in, size_t len,
                             uint8_t *out, const uint8_t *tag)
{
    int ret;

    if (mbedtls_is_gcm(a->method))
        ret = mbedtls_gcm_auth_decrypt(mbedtls_gcm_of(a), len, nonce, CRYPTO_NONCE_LEN, aad,
                                       aad_len, tag, CRYPTO_TAG_LEN, in, out);
    else
        ret = mbedtls_chachapoly_auth_decrypt(mbedtls_chachapoly_of(a), len, nonce, aad, aad_len,
                                              tag, in, out);
    return ret ? -1 : 0;
}

/* AES-ECB single blocks (SIP022). mbedTLS keeps separate encryption and decryption key
 * schedules, so a context holds one of each; mbedtls_aes_setkey_*() re-key in place. */
struct crypto_mbedtls_block {
    mbedtls_aes_context enc, dec;
};

struct crypto_mbedtls_block *crypto_mbedtls_block_new(const uint8_t *key, size_t key_len)
{
    struct crypto_mbedtls_block *b = calloc(1, sizeof *b);
    if (!b)
        return NULL;
    mbedtls_aes_init(&b->enc);
    mbedtls_aes_init(&b->dec);
    if (crypto_mbedtls_block_rekey(b, key, key_len) != 0) {
        crypto_mbedtls_block_free(b);
        return NULL;
    }
    return b;
}

int crypto_mbedtls_block_rekey(struct crypto_mbedtls_block *b, const uint8_t *key, size_t key_len)
{
    if (key_len != 16 && key_len != 32)
        return -1;
    unsigned bits = (unsigned)key_len * 8;
    if (mbedtls_aes_setkey_enc(&b->enc, key, bits) != 0 ||
        mbedtls_aes_setkey_dec(&b->dec, key, bits) != 0)
        return -1;
    return 0;
}

void crypto_mbedtls_block_free(struct crypto_mbedtls_block *b)
{
    if (!b)
        return;
    mbedtls_aes_free(&b->enc); /* wipes the key schedule */
    mbedtls_aes_free(&b->dec);
    free(b);
}

int crypto_mbedtls_block_crypt(struct crypto_mbedtls_block *b, int encrypt, const uint8_t *in,
                               uint8_t *out)
{
    int ret = encrypt ? mbedtls_aes_crypt_ecb(&b->enc, MBEDTLS_AES_ENCRYPT, in, out)
                      : mbedtls_aes_crypt_ecb(&b->dec, MBEDTLS_AES_DECRYPT, in, out);
    return ret ? -1 : 0;
}

/* The version of the library linked at run time when mbedTLS can tell (MBEDTLS_VERSION_C),
 * else the one the headers describe. */
const char *crypto_mbedtls_version(void)
{
#if defined(MBEDTLS_VERSION_C)
    /* mbedtls_version_get_string() asks for at least 9 bytes; 16 hold any "x.y.z". The
     * buffer is rewritten with the same text on every call. */
    static char version[16];
    mbedtls_version_get_string(version);
    return version;
#else
    return MBEDTLS_VERSION_STRING;
#endif
}

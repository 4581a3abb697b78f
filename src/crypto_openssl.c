/* crypto_openssl.c: the OpenSSL libcrypto AEAD backend (EVP AES-GCM and ChaCha20-Poly1305).
 * Built when configure finds libcrypto (RP_CRYPTO_OPENSSL); crypto.c then routes the bulk AEAD
 * here, because libcrypto's AES-NI/AVX code is an order of magnitude faster than mbedTLS 2.28.
 *
 * One EVP_CIPHER_CTX per context, keyed once with EVP_CipherInit_ex(); every seal or open only
 * sets the IV (EVP_CipherInit_ex with NULL cipher and key keeps both), so a chunk costs no
 * allocation and no key schedule. Works with OpenSSL 1.1.1 and 3.x. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "crypto_backend.h"

struct crypto_openssl_aead {
    EVP_CIPHER_CTX *ctx;
    enum crypto_method method;
};

#if OPENSSL_VERSION_NUMBER >= 0x30000000L
/* OpenSSL 3 resolves a legacy EVP_CIPHER such as EVP_aes_128_gcm() through its provider on
 * every EVP_CipherInit_ex() that names it (an "implicit fetch": property parsing, locking, a
 * hash lookup), which costs more than keying the cipher itself. Each cipher is fetched once per
 * process and kept: the handles are immutable, so this cache is the one piece of static state
 * in the crypto module, and it is safe across fork(). */
static EVP_CIPHER *openssl_fetched[CRYPTO_METHOD_COUNT];

static const EVP_CIPHER *openssl_cipher(enum crypto_method m)
{
    static const char *const names[CRYPTO_METHOD_COUNT] = {
        [CRYPTO_AES_128_GCM] = "AES-128-GCM",
        [CRYPTO_AES_192_GCM] = "AES-192-GCM",
        [CRYPTO_AES_256_GCM] = "AES-256-GCM",
        [CRYPTO_CHACHA20_POLY1305] = "ChaCha20-Poly1305",
    };
    if ((unsigned)m >= CRYPTO_METHOD_COUNT)
        return NULL;
    if (!openssl_fetched[m])
        openssl_fetched[m] = EVP_CIPHER_fetch(NULL, names[m], NULL);
    return openssl_fetched[m];
}
#else
static const EVP_CIPHER *openssl_cipher(enum crypto_method m)
{
    switch (m) {
    case CRYPTO_AES_128_GCM:
        return EVP_aes_128_gcm();
    case CRYPTO_AES_192_GCM:
        return EVP_aes_192_gcm();
    case CRYPTO_AES_256_GCM:
        return EVP_aes_256_gcm();
    case CRYPTO_CHACHA20_POLY1305:
        return EVP_chacha20_poly1305();
    default:
        return NULL;
    }
}
#endif

struct crypto_openssl_aead *crypto_openssl_aead_new(enum crypto_method m, const uint8_t *key)
{
    const EVP_CIPHER *cipher = openssl_cipher(m);
    if (!cipher)
        return NULL;
    struct crypto_openssl_aead *a = calloc(1, sizeof *a);
    if (!a)
        return NULL;
    a->method = m;
    a->ctx = EVP_CIPHER_CTX_new();
    /* Both ciphers default to the 12-byte IV SIP004 uses (NIST SP 800-38D 8.2.1, RFC 8439 2.8),
     * so no EVP_CTRL_AEAD_SET_IVLEN. */
    if (!a->ctx || EVP_CipherInit_ex(a->ctx, cipher, NULL, key, NULL, 1) != 1) {
        crypto_openssl_aead_free(a);
        return NULL;
    }
    return a;
}

int crypto_openssl_aead_rekey(struct crypto_openssl_aead *a, const uint8_t *key)
{
    /* enc = -1 keeps the direction; the cipher's state is re-keyed where it lives. */
    return EVP_CipherInit_ex(a->ctx, NULL, NULL, key, NULL, -1) == 1 ? 0 : -1;
}

void crypto_openssl_aead_free(struct crypto_openssl_aead *a)
{
    if (!a)
        return;
    EVP_CIPHER_CTX_free(a->ctx); /* cleanses the key schedule */
    free(a);
}

enum crypto_method crypto_openssl_aead_method(const struct crypto_openssl_aead *a)
{
    return a->method;
}

/* Starts one AEAD operation: the new IV, the direction, then the associated data if any. */
static int openssl_begin(struct crypto_openssl_aead *a, const uint8_t *nonce, int enc,
                         const uint8_t *aad, size_t aad_len)
{
    int outl;

    if (EVP_CipherInit_ex(a->ctx, NULL, NULL, NULL, nonce, enc) != 1)
        return -1;
    if (aad_len == 0)
        return 0;
    if (aad_len > INT_MAX || EVP_CipherUpdate(a->ctx, NULL, &outl, aad, (int)aad_len) != 1)
        return -1;
    return 0;
}

/* Runs the cipher over in[0..len) into out; out == in is supported by both EVP ciphers. */
static int openssl_update(struct crypto_openssl_aead *a, const uint8_t *in, size_t len,
                          uint8_t *out)
{
    int outl = 0;

    if (len == 0)
        return 0;
    if (len > INT_MAX || EVP_CipherUpdate(a->ctx, out, &outl, in, (int)len) != 1)
        return -1;
    /* Stream modes: everything comes out at once; EVP_CipherFinal_ex() adds nothing. */
    return (size_t)outl == len ? 0 : -1;
}

int crypto_openssl_aead_seal(struct crypto_openssl_aead *a, const uint8_t *nonce,
                             const uint8_t *aad, size_t aad_len, const uint8_t *in, size_t len,
                             uint8_t *out, uint8_t *tag)
{
    uint8_t rest[EVP_MAX_BLOCK_LENGTH];
    int outl;

    if (openssl_begin(a, nonce, 1, aad, aad_len) != 0 || openssl_update(a, in, len, out) != 0)
        return -1;
    if (EVP_CipherFinal_ex(a->ctx, rest, &outl) != 1 || outl != 0)
        return -1;
    return EVP_CIPHER_CTX_ctrl(a->ctx, EVP_CTRL_AEAD_GET_TAG, CRYPTO_TAG_LEN, tag) == 1 ? 0 : -1;
}

int crypto_openssl_aead_open(struct crypto_openssl_aead *a, const uint8_t *nonce,
                             const uint8_t *aad, size_t aad_len, const uint8_t *in, size_t len,
                             uint8_t *out, const uint8_t *tag)
{
    /* EVP_CTRL_AEAD_SET_TAG takes a non-const pointer; it only copies from it. */
    uint8_t expected[CRYPTO_TAG_LEN];
    uint8_t rest[EVP_MAX_BLOCK_LENGTH];
    int outl;

    memcpy(expected, tag, sizeof expected);
    if (openssl_begin(a, nonce, 0, aad, aad_len) != 0 || openssl_update(a, in, len, out) != 0)
        return -1;
    if (EVP_CIPHER_CTX_ctrl(a->ctx, EVP_CTRL_AEAD_SET_TAG, CRYPTO_TAG_LEN, expected) != 1)
        return -1;
    /* The tag is compared here, in constant time. */
    return EVP_CipherFinal_ex(a->ctx, rest, &outl) == 1 && outl == 0 ? 0 : -1;
}

/* AES-ECB single blocks (SIP022): one EVP context per direction, padding off, keyed once;
 * re-keying with the same key length keeps the cipher and only runs the key schedule. */
struct crypto_openssl_block {
    EVP_CIPHER_CTX *enc, *dec;
    size_t key_len;
};

#if OPENSSL_VERSION_NUMBER >= 0x30000000L
/* Fetched once per process, like openssl_fetched[] above. */
static EVP_CIPHER *openssl_ecb_fetched[2];

static const EVP_CIPHER *openssl_ecb(size_t key_len)
{
    int i = key_len == 32;
    if (!openssl_ecb_fetched[i])
        openssl_ecb_fetched[i] = EVP_CIPHER_fetch(NULL, i ? "AES-256-ECB" : "AES-128-ECB", NULL);
    return openssl_ecb_fetched[i];
}
#else
static const EVP_CIPHER *openssl_ecb(size_t key_len)
{
    return key_len == 32 ? EVP_aes_256_ecb() : EVP_aes_128_ecb();
}
#endif

static int openssl_block_key(EVP_CIPHER_CTX *ctx, const EVP_CIPHER *cipher, const uint8_t *key,
                             int enc)
{
    if (EVP_CipherInit_ex(ctx, cipher, NULL, key, NULL, enc) != 1)
        return -1;
    /* Single blocks: no PKCS#7 padding block after each one. */
    return EVP_CIPHER_CTX_set_padding(ctx, 0) == 1 ? 0 : -1;
}

struct crypto_openssl_block *crypto_openssl_block_new(const uint8_t *key, size_t key_len)
{
    struct crypto_openssl_block *b = calloc(1, sizeof *b);
    if (!b)
        return NULL;
    b->enc = EVP_CIPHER_CTX_new();
    b->dec = EVP_CIPHER_CTX_new();
    if (!b->enc || !b->dec || crypto_openssl_block_rekey(b, key, key_len) != 0) {
        crypto_openssl_block_free(b);
        return NULL;
    }
    return b;
}

int crypto_openssl_block_rekey(struct crypto_openssl_block *b, const uint8_t *key, size_t key_len)
{
    if (key_len != 16 && key_len != 32)
        return -1;
    /* A new key length needs the other cipher; the same one is only re-keyed. */
    const EVP_CIPHER *cipher = key_len == b->key_len ? NULL : openssl_ecb(key_len);
    if (key_len != b->key_len && !cipher)
        return -1;
    if (openssl_block_key(b->enc, cipher, key, 1) != 0 ||
        openssl_block_key(b->dec, cipher, key, 0) != 0) {
        b->key_len = 0; /* the next re-key sets the cipher again */
        return -1;
    }
    b->key_len = key_len;
    return 0;
}

void crypto_openssl_block_free(struct crypto_openssl_block *b)
{
    if (!b)
        return;
    EVP_CIPHER_CTX_free(b->enc); /* cleanses the key schedules */
    EVP_CIPHER_CTX_free(b->dec);
    free(b);
}

int crypto_openssl_block_crypt(struct crypto_openssl_block *b, int encrypt, const uint8_t *in,
                               uint8_t *out)
{
    int outl = 0;
    EVP_CIPHER_CTX *ctx = encrypt ? b->enc : b->dec;

    /* ECB keeps no state between blocks: every call is one complete block in, one out. */
    if (EVP_CipherUpdate(ctx, out, &outl, in, CRYPTO_BLOCK_LEN) != 1)
        return -1;
    return outl == CRYPTO_BLOCK_LEN ? 0 : -1;
}

const char *crypto_openssl_version(void)
{
    return OpenSSL_version(OPENSSL_VERSION);
}

/* crypto_backend.h: the private interface between crypto.c and the two bulk AEAD backends.
 * crypto_mbedtls.c is always built; crypto_openssl.c is built when configure found libcrypto
 * (RP_CRYPTO_OPENSSL), and then crypto.c routes the AEAD through it. Each backend has its own
 * context type; crypto.c hands the selected one out as the opaque struct crypto_aead.
 *
 * The backends accept associated data although shadowsocks never uses any (SIP004 seals with
 * an empty AD): that lets the unit tests run the published vectors (RFC 8439 section 2.8.2, the
 * McGrew-Viega GCM test cases) through both backends, which is what anchors them. */
#ifndef RP_CRYPTO_BACKEND_H
#define RP_CRYPTO_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "crypto.h"

/* mbedTLS: mbedtls_gcm for AES-GCM, mbedtls_chachapoly for ChaCha20-Poly1305. */
struct crypto_mbedtls_aead;
struct crypto_mbedtls_aead *crypto_mbedtls_aead_new(enum crypto_method m, const uint8_t *key);
int crypto_mbedtls_aead_rekey(struct crypto_mbedtls_aead *a, const uint8_t *key);
void crypto_mbedtls_aead_free(struct crypto_mbedtls_aead *a);
enum crypto_method crypto_mbedtls_aead_method(const struct crypto_mbedtls_aead *a);
int crypto_mbedtls_aead_seal(struct crypto_mbedtls_aead *a, const uint8_t *nonce,
                             const uint8_t *aad, size_t aad_len, const uint8_t *in, size_t len,
                             uint8_t *out, uint8_t *tag);
int crypto_mbedtls_aead_open(struct crypto_mbedtls_aead *a, const uint8_t *nonce,
                             const uint8_t *aad, size_t aad_len, const uint8_t *in, size_t len,
                             uint8_t *out, const uint8_t *tag);

/* OpenSSL libcrypto: one EVP_CIPHER_CTX per context, keyed once; each call only sets the IV. */
struct crypto_openssl_aead;
struct crypto_openssl_aead *crypto_openssl_aead_new(enum crypto_method m, const uint8_t *key);
int crypto_openssl_aead_rekey(struct crypto_openssl_aead *a, const uint8_t *key);
void crypto_openssl_aead_free(struct crypto_openssl_aead *a);
enum crypto_method crypto_openssl_aead_method(const struct crypto_openssl_aead *a);
int crypto_openssl_aead_seal(struct crypto_openssl_aead *a, const uint8_t *nonce,
                             const uint8_t *aad, size_t aad_len, const uint8_t *in, size_t len,
                             uint8_t *out, uint8_t *tag);
int crypto_openssl_aead_open(struct crypto_openssl_aead *a, const uint8_t *nonce,
                             const uint8_t *aad, size_t aad_len, const uint8_t *in, size_t len,
                             uint8_t *out, const uint8_t *tag);
/* crypto_subkey() on the SHA-1 of libcrypto (libcrypto true: only in the openssl build, else
 * -1) or of mbedTLS, so the unit tests can cross-check the two. crypto_subkey() uses libcrypto's
 * when that backend is built. */
int crypto_subkey_with(const struct crypto_key *k, const uint8_t *salt, uint8_t *out,
                       bool libcrypto);

/* OpenSSL_version(OPENSSL_VERSION) of the library at run time. */
const char *crypto_openssl_version(void);

/* AES-ECB single-block contexts behind struct crypto_block (SIP022), one per backend so the
 * unit tests can cross-check them. key_len is 16 or 32; encrypt 1 or 0 (decrypt). */
struct crypto_mbedtls_block;
struct crypto_mbedtls_block *crypto_mbedtls_block_new(const uint8_t *key, size_t key_len);
int crypto_mbedtls_block_rekey(struct crypto_mbedtls_block *b, const uint8_t *key, size_t key_len);
void crypto_mbedtls_block_free(struct crypto_mbedtls_block *b);
int crypto_mbedtls_block_crypt(struct crypto_mbedtls_block *b, int encrypt, const uint8_t *in,
                               uint8_t *out);

struct crypto_openssl_block;
struct crypto_openssl_block *crypto_openssl_block_new(const uint8_t *key, size_t key_len);
int crypto_openssl_block_rekey(struct crypto_openssl_block *b, const uint8_t *key, size_t key_len);
void crypto_openssl_block_free(struct crypto_openssl_block *b);
int crypto_openssl_block_crypt(struct crypto_openssl_block *b, int encrypt, const uint8_t *in,
                               uint8_t *out);

#endif

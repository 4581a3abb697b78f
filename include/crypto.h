/* crypto.h: the narrow crypto interface. AEAD seal/open with a 12-byte nonce and a 16-byte tag
 * (bulk path: OpenSSL libcrypto or mbedTLS, chosen at configure time), and key derivation
 * (always mbedTLS): the shadowsocks master key from a password (EVP_BytesToKey with MD5) or from
 * base64, and HKDF-SHA1 per-session subkeys. */
#ifndef RP_CRYPTO_H
#define RP_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

enum crypto_method {
    CRYPTO_AES_128_GCM = 0,
    CRYPTO_AES_192_GCM,
    CRYPTO_AES_256_GCM,
    CRYPTO_CHACHA20_POLY1305,
    /* Shadowsocks 2022 (SIP022): the PSK is the key; the TCP chunks and the AES methods' UDP
     * bodies run on the AEAD named by their info's aead. */
    CRYPTO_2022_AES_128_GCM,
    CRYPTO_2022_AES_256_GCM,
    CRYPTO_2022_CHACHA20_POLY1305,
    CRYPTO_METHOD_COUNT,
    /* The SIP004 methods are the first ones: 0 .. CRYPTO_SIP004_COUNT - 1. */
    CRYPTO_SIP004_COUNT = CRYPTO_2022_AES_128_GCM
};

#define CRYPTO_MAX_KEY 32
#define CRYPTO_MAX_SALT 32
#define CRYPTO_NONCE_LEN 12
#define CRYPTO_TAG_LEN 16

/* The wire protocol a method runs: the rest of the program selects it from the method.
 * SIP004 (shadowsocks AEAD) for the four classic methods; SIP022 (Shadowsocks 2022) for the
 * "2022-blake3-*" methods. */
enum crypto_proto { CRYPTO_PROTO_SIP004 = 0, CRYPTO_PROTO_SIP022 };

/* The one method table of reuseproxy (crypto.c): the configuration's list of valid names, key
 * lengths and protocols all come from it. */
struct crypto_method_info {
    const char *name;         /* "aes-128-gcm", ... "2022-blake3-chacha20-poly1305" */
    size_t key_len;           /* 16, 24, 32, 32; SIP022: the PSK's length, 16, 32, 32 */
    size_t salt_len;          /* equal to key_len for every method */
    enum crypto_proto proto;  /* which protocol runs it */
    enum crypto_method aead;  /* the AEAD cipher of its chunks: itself for SIP004 */
};

/* Returns the method for its exact (canonical) name, or -1. */
int crypto_method_by_name(const char *name);
/* Returns the method for a name written in any case ("AES-256-GCM"), as configurations and
 * the command line may spell it, or -1. */
int crypto_method_lookup(const char *name);
/* "aes-128-gcm, aes-192-gcm, aes-256-gcm, chacha20-ietf-poly1305": every name, for messages. */
const char *crypto_method_names(void);
const struct crypto_method_info *crypto_method_info(enum crypto_method m);
/* "openssl" or "mbedtls": the backend the bulk AEAD runs on. */
const char *crypto_backend_name(void);
/* Version string of the library behind the bulk AEAD and of mbedTLS. */
const char *crypto_backend_version(void);
const char *crypto_mbedtls_version(void);

/* The master key of a method. */
struct crypto_key {
    enum crypto_method method;
    size_t len;
    uint8_t bytes[CRYPTO_MAX_KEY];
};

/* EVP_BytesToKey(MD5, no salt, 1 round) over the password, as every shadowsocks does. -1 for a
 * SIP022 method, whose password is the base64 PSK itself (crypto_key_from_base64). */
int crypto_key_from_password(struct crypto_key *k, enum crypto_method m, const char *password);
/* Standard or URL-safe base64 (padding optional); -1 when it does not decode to key_len bytes. */
int crypto_key_from_base64(struct crypto_key *k, enum crypto_method m, const char *b64);
/* Decodes RFC 4648 base64 in the standard (section 4) or URL-safe (section 5) alphabet, padding
 * optional but right when present; no whitespace. Returns 0 with the length in *outlen, or -1 if
 * in is NULL, empty or not base64, or does not fit in cap bytes (out may then be partly
 * written). */
int crypto_base64_decode(const char *in, uint8_t *out, size_t cap, size_t *outlen);
/* A key's base64: decodes in into out only when it is exactly len bytes (len <=
 * CRYPTO_MAX_KEY). Returns 0, or -1 with out untouched; no copy of the key is left behind. */
int crypto_base64_decode_exact(const char *in, uint8_t *out, size_t len);

/* HKDF-SHA1(ikm = master key, salt, info = "ss-subkey") -> out[key_len]. */
int crypto_subkey(const struct crypto_key *k, const uint8_t *salt, uint8_t *out);

/* Cryptographically random bytes (getrandom). Returns 0 or -1. */
int crypto_random(void *buf, size_t len);

/* One keyed AEAD context. A connection holds one per direction. */
struct crypto_aead;
/* A SIP022 method gets the context of its info's aead. */
struct crypto_aead *crypto_aead_new(enum crypto_method m, const uint8_t *key);
/* Re-keys an existing context (no allocation). */
int crypto_aead_rekey(struct crypto_aead *a, const uint8_t *key);
void crypto_aead_free(struct crypto_aead *a);
/* The AEAD method a context runs (crypto_method_info(m)->aead of the one it was created for;
 * re-keying keeps it). */
enum crypto_method crypto_aead_method(const struct crypto_aead *a);
/* out may equal in (in place). Writes len bytes to out and CRYPTO_TAG_LEN bytes to tag.
 * Returns 0, or -1 on an internal error. */
int crypto_aead_seal(struct crypto_aead *a, const uint8_t nonce[CRYPTO_NONCE_LEN],
                     const uint8_t *in, size_t len, uint8_t *out, uint8_t *tag);
/* Returns 0 when the tag verifies (out holds the plaintext), -1 otherwise (then out[0..len) is
 * zeroed, so unauthenticated plaintext never reaches the caller). */
int crypto_aead_open(struct crypto_aead *a, const uint8_t nonce[CRYPTO_NONCE_LEN],
                     const uint8_t *in, size_t len, uint8_t *out, const uint8_t *tag);

/* Little-endian increment of a nonce, as SIP004 specifies. */
void crypto_nonce_increment(uint8_t nonce[CRYPTO_NONCE_LEN]);

/* Zeroes key material in a way the compiler cannot drop (mbedtls_platform_zeroize). */
void crypto_wipe(void *buf, size_t len);

/* ---- Shadowsocks 2022 (SIP022) primitives: src/crypto_sip022.c and the backends. ---- */

#define CRYPTO_BLOCK_LEN 16
#define CRYPTO_XCHACHA_KEY_LEN 32
#define CRYPTO_XCHACHA_NONCE_LEN 24

/* AES on single 16-byte blocks (ECB, no padding), keyed with 16 or 32 bytes: SIP022 encrypts
 * the UDP separate header so, and SIP023 its identity headers. One context holds both key
 * schedules; re-keying allocates nothing on mbedTLS and keeps the contexts on OpenSSL. */
struct crypto_block;
struct crypto_block *crypto_block_new(const uint8_t *key, size_t key_len);
/* Returns 0, or -1 for a key length other than 16 or 32. */
int crypto_block_rekey(struct crypto_block *b, const uint8_t *key, size_t key_len);
void crypto_block_free(struct crypto_block *b);
/* out may equal in. Return 0, or -1 on an internal error. */
int crypto_block_encrypt(struct crypto_block *b, const uint8_t in[CRYPTO_BLOCK_LEN],
                         uint8_t out[CRYPTO_BLOCK_LEN]);
int crypto_block_decrypt(struct crypto_block *b, const uint8_t in[CRYPTO_BLOCK_LEN],
                         uint8_t out[CRYPTO_BLOCK_LEN]);

/* HChaCha20 (draft-irtf-cfrg-xchacha-03 section 2.2): a 32-byte subkey from a key and the
 * first 16 bytes of an XChaCha20 nonce. */
void crypto_hchacha20(const uint8_t key[CRYPTO_XCHACHA_KEY_LEN], const uint8_t in[16],
                      uint8_t out[32]);

/* XChaCha20-Poly1305 (draft-irtf-cfrg-xchacha-03 section 2.3: ChaCha20-Poly1305 under
 * HChaCha20(key, nonce[0..16]) with the nonce 0^4 || nonce[16..24]), as SIP022 seals the UDP
 * packets of 2022-blake3-chacha20-poly1305 with the PSK. The context keeps the key and one
 * ChaCha20-Poly1305 context that every message re-keys (no allocation per message). */
struct crypto_xchacha;
struct crypto_xchacha *crypto_xchacha_new(const uint8_t key[CRYPTO_XCHACHA_KEY_LEN]);
void crypto_xchacha_free(struct crypto_xchacha *x);
/* out may equal in; aad may be NULL when aad_len is 0. Returns 0, or -1. */
int crypto_xchacha_seal(struct crypto_xchacha *x, const uint8_t nonce[CRYPTO_XCHACHA_NONCE_LEN],
                        const uint8_t *aad, size_t aad_len, const uint8_t *in, size_t len,
                        uint8_t *out, uint8_t *tag);
/* Returns 0 when the tag verifies, -1 otherwise (out[0..len) is then zeroed). */
int crypto_xchacha_open(struct crypto_xchacha *x, const uint8_t nonce[CRYPTO_XCHACHA_NONCE_LEN],
                        const uint8_t *aad, size_t aad_len, const uint8_t *in, size_t len,
                        uint8_t *out, const uint8_t *tag);

#endif

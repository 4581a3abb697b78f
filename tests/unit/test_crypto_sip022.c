/* test_crypto_sip022.c: the primitives SIP022 adds to the crypto module. AES single blocks
 * against FIPS-197 appendix C (both key sizes, both directions) through the backend in use and,
 * when libcrypto is built in, through both backends, which must also agree on random blocks;
 * HChaCha20 and AEAD_XChaCha20_Poly1305 against draft-irtf-cfrg-xchacha-03 (section 2.2.1 and
 * appendix A.3.1); tampering and re-keying. */
#ifdef HAVE_CONFIG_H
#include "autoconfig.h"
#endif

#include <stdint.h>

#include "../../src/crypto_backend.h"
#include "crypto.h"
#include "unit.h"

/* FIPS-197 appendix C.1 and C.3: plaintext 00112233...ff under key 000102...0f / ...1f. */
static const char fips_plain[] = "00112233445566778899aabbccddeeff";
static const struct {
    size_t key_len;
    const char *cipher;
} fips_vectors[] = {
    {16, "69c4e0d86a7b0430d8cdb78070b4c55a"},
    {32, "8ea2b7ca516745bfeafc49904b496089"},
};

/* The backends' block contexts behind one shape, so every test runs on each. */
struct block_ops {
    const char *name;
    void *(*make)(const uint8_t *key, size_t key_len);
    int (*rekey)(void *b, const uint8_t *key, size_t key_len);
    int (*crypt)(void *b, int encrypt, const uint8_t *in, uint8_t *out);
    void (*destroy)(void *b);
};

static void *mbedtls_make(const uint8_t *key, size_t key_len)
{
    return crypto_mbedtls_block_new(key, key_len);
}
static int mbedtls_rekey(void *b, const uint8_t *key, size_t key_len)
{
    return crypto_mbedtls_block_rekey(b, key, key_len);
}
static int mbedtls_crypt(void *b, int encrypt, const uint8_t *in, uint8_t *out)
{
    return crypto_mbedtls_block_crypt(b, encrypt, in, out);
}
static void mbedtls_destroy(void *b)
{
    crypto_mbedtls_block_free(b);
}

#ifdef RP_CRYPTO_OPENSSL
static void *openssl_make(const uint8_t *key, size_t key_len)
{
    return crypto_openssl_block_new(key, key_len);
}
static int openssl_rekey(void *b, const uint8_t *key, size_t key_len)
{
    return crypto_openssl_block_rekey(b, key, key_len);
}
static int openssl_crypt(void *b, int encrypt, const uint8_t *in, uint8_t *out)
{
    return crypto_openssl_block_crypt(b, encrypt, in, out);
}
static void openssl_destroy(void *b)
{
    crypto_openssl_block_free(b);
}
#endif

static const struct block_ops block_backends[] = {
    {"mbedtls", mbedtls_make, mbedtls_rekey, mbedtls_crypt, mbedtls_destroy},
#ifdef RP_CRYPTO_OPENSSL
    {"openssl", openssl_make, openssl_rekey, openssl_crypt, openssl_destroy},
#endif
};
#define BLOCK_BACKENDS (sizeof block_backends / sizeof block_backends[0])

static void counting_key(uint8_t *key, size_t len)
{
    for (size_t i = 0; i < len; i++)
        key[i] = (uint8_t)i;
}

TEST(test_crypto_block_fips197_vectors_every_backend)
{
    uint8_t key[32], plain[16], want[16], out[16];
    counting_key(key, sizeof key);
    unit_hex(fips_plain, plain, sizeof plain);
    for (size_t b = 0; b < BLOCK_BACKENDS; b++) {
        for (size_t v = 0; v < 2; v++) {
            unit_hex(fips_vectors[v].cipher, want, sizeof want);
            void *ctx = block_backends[b].make(key, fips_vectors[v].key_len);
            CHECK(ctx != NULL);
            CHECK_INT(block_backends[b].crypt(ctx, 1, plain, out), 0);
            CHECK_MEM(out, want, 16);
            CHECK_INT(block_backends[b].crypt(ctx, 0, out, out), 0); /* in place */
            CHECK_MEM(out, plain, 16);
            block_backends[b].destroy(ctx);
        }
    }
}

/* Re-keying to the other size and back keeps a context correct (the SIP023 identity key
 * changes per connection); a length other than 16 or 32 is refused. */
TEST(test_crypto_block_rekey_switches_sizes_every_backend)
{
    uint8_t key[32], plain[16], want[16], out[16];
    counting_key(key, sizeof key);
    unit_hex(fips_plain, plain, sizeof plain);
    for (size_t b = 0; b < BLOCK_BACKENDS; b++) {
        void *ctx = block_backends[b].make(key, 32);
        CHECK(ctx != NULL);
        for (int round = 0; round < 4; round++) {
            size_t v = (size_t)(round % 2 == 0);
            CHECK_INT(block_backends[b].rekey(ctx, key, fips_vectors[v].key_len), 0);
            unit_hex(fips_vectors[v].cipher, want, sizeof want);
            CHECK_INT(block_backends[b].crypt(ctx, 1, plain, out), 0);
            CHECK_MEM(out, want, 16);
            CHECK_INT(block_backends[b].crypt(ctx, 0, want, out), 0);
            CHECK_MEM(out, plain, 16);
        }
        CHECK_INT(block_backends[b].rekey(ctx, key, 24), -1);
        block_backends[b].destroy(ctx);
        CHECK(block_backends[b].make(key, 24) == NULL);
    }
}

TEST(test_crypto_block_backends_agree_on_random_blocks)
{
    for (int round = 0; round < 64; round++) {
        uint8_t key[32], in[16], first[16], out[16], back[16];
        size_t key_len = round % 2 ? 32 : 16;
        CHECK_INT(crypto_random(key, sizeof key), 0);
        CHECK_INT(crypto_random(in, sizeof in), 0);
        struct crypto_block *pub = crypto_block_new(key, key_len);
        CHECK(pub != NULL);
        CHECK_INT(crypto_block_encrypt(pub, in, first), 0);
        CHECK(memcmp(first, in, 16) != 0);
        CHECK_INT(crypto_block_decrypt(pub, first, back), 0);
        CHECK_MEM(back, in, 16);
        crypto_block_free(pub);
        for (size_t b = 0; b < BLOCK_BACKENDS; b++) {
            void *ctx = block_backends[b].make(key, key_len);
            CHECK(ctx != NULL);
            CHECK_INT(block_backends[b].crypt(ctx, 1, in, out), 0);
            CHECK_MEM(out, first, 16);
            block_backends[b].destroy(ctx);
        }
    }
}

TEST(test_crypto_hchacha20_draft_vector)
{
    uint8_t key[32], in[16], want[32], out[32];
    counting_key(key, sizeof key);
    unit_hex("000000090000004a0000000031415927", in, sizeof in);
    unit_hex("82413b4227b27bfed30e42508a877d73a0f9e4d58a74a853c12ec41326d3ecdc", want, sizeof want);
    crypto_hchacha20(key, in, out);
    CHECK_MEM(out, want, 32);
}

/* draft-irtf-cfrg-xchacha-03 appendix A.3.1. */
static const char xc_key[] = "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f";
static const char xc_nonce[] = "404142434445464748494a4b4c4d4e4f5051525354555657";
static const char xc_aad[] = "50515253c0c1c2c3c4c5c6c7";
static const char xc_plain[] = "Ladies and Gentlemen of the class of '99: If I could offer you "
                               "only one tip for the future, sunscreen would be it.";
static const char xc_sealed[] = "bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb"
                                "731c7f1b0b4aa6440bf3a82f4eda7e39ae64c6708c54c216cb96b72e1213b452"
                                "2f8c9ba40db5d945b11b69b982c1bb9e3f3fac2bc369488f76b2383565d3fff9"
                                "21f9664c97637da9768812f615c68b13b52e";
static const char xc_tag[] = "c0875924c1c7987947deafd8780acf49";

TEST(test_crypto_xchacha20_poly1305_draft_vector)
{
    uint8_t key[32], nonce[24], aad[12], want[114], want_tag[16], buf[114], tag[16];
    size_t len = sizeof xc_plain - 1;

    CHECK_INT(len, 114);
    unit_hex(xc_key, key, sizeof key);
    unit_hex(xc_nonce, nonce, sizeof nonce);
    unit_hex(xc_aad, aad, sizeof aad);
    CHECK_INT(unit_hex(xc_sealed, want, sizeof want), 114);
    unit_hex(xc_tag, want_tag, sizeof want_tag);
    struct crypto_xchacha *x = crypto_xchacha_new(key);
    CHECK(x != NULL);
    memcpy(buf, xc_plain, len);
    CHECK_INT(crypto_xchacha_seal(x, nonce, aad, sizeof aad, buf, len, buf, tag), 0);
    CHECK_MEM(buf, want, len);
    CHECK_MEM(tag, want_tag, 16);
    CHECK_INT(crypto_xchacha_open(x, nonce, aad, sizeof aad, buf, len, buf, tag), 0);
    CHECK_MEM(buf, xc_plain, len);
    crypto_xchacha_free(x);
}

/* Any changed bit of the nonce (either part: the HChaCha20 input or the inner nonce), the AAD,
 * the ciphertext or the tag fails, and leaves no plaintext behind. */
TEST(test_crypto_xchacha20_poly1305_refuses_tampering)
{
    uint8_t key[32], nonce[24], aad[12], sealed[114], tag[16], out[114];
    unit_hex(xc_key, key, sizeof key);
    unit_hex(xc_nonce, nonce, sizeof nonce);
    unit_hex(xc_aad, aad, sizeof aad);
    unit_hex(xc_sealed, sealed, sizeof sealed);
    unit_hex(xc_tag, tag, sizeof tag);
    struct crypto_xchacha *x = crypto_xchacha_new(key);
    CHECK(x != NULL);
    uint8_t *fields[] = {nonce, nonce + 20, aad, sealed + 50, tag};
    for (size_t f = 0; f < sizeof fields / sizeof fields[0]; f++) {
        fields[f][0] ^= 0x80;
        memset(out, 0xAA, sizeof out);
        CHECK_INT(crypto_xchacha_open(x, nonce, aad, sizeof aad, sealed, sizeof sealed, out, tag),
                  -1);
        for (size_t i = 0; i < sizeof out; i++)
            CHECK_INT(out[i], 0);
        fields[f][0] ^= 0x80;
    }
    CHECK_INT(crypto_xchacha_open(x, nonce, aad, sizeof aad, sealed, sizeof sealed, out, tag), 0);
    CHECK_MEM(out, xc_plain, sizeof out);
    crypto_xchacha_free(x);
}

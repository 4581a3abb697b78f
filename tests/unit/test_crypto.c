/* test_crypto.c: the crypto module. Known answers for every method (master key, HKDF subkey,
 * AEAD seal), published AEAD vectors (McGrew-Viega GCM test cases, RFC 8439 section 2.8.2) run
 * through the backend in use and, when libcrypto is built in, through both backends; nonce
 * counter, base64 keys, random bytes. The expected values were computed outside this code:
 * master keys with `openssl enc -md md5 -P` and python3 hashlib, subkeys with a python3 hmac
 * HKDF checked against RFC 5869 A.4, AEAD outputs with python3-cryptography. */
#ifdef HAVE_CONFIG_H
#include "autoconfig.h"
#endif

#include <stdint.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../src/crypto_backend.h"
#include "crypto.h"
#include "unit.h"

/* Per method: EVP_BytesToKey(MD5, "foobar"); HKDF-SHA1 subkey for salt 00 01 02 ...; the seal
 * of "shadowsocks AEAD known answer" under that subkey with nonce 1 (little-endian); the tag of
 * an empty plaintext with nonce 0. */
struct method_vector {
    enum crypto_method method;
    const char *master, *subkey, *sealed, *tag, *empty_tag;
};

static const char kat_plain[] = "shadowsocks AEAD known answer";

static const struct method_vector vectors[] = {
    {CRYPTO_AES_128_GCM, "3858f62230ac3c915f300c664312c63f", "e59e945699e8699144c332b9e641ef65",
     "4c6cccbe23c04af6406f48119b21b105dd2343edecec332a8ab8fc6ec6",
     "2d9261fc8c5de4db50af5455aa200293", "e2d2701af9eeb74a74509956f687172a"},
    {CRYPTO_AES_192_GCM, "3858f62230ac3c915f300c664312c63f568378529614d22d",
     "cc04b0143f86170a0e356c4ca773d9e272d6329009fb4afd",
     "f33dad45821a51a7c7c9069c2b758f6802291ff2e7e954970c068841d2",
     "e0e9a2a320c8fda497016903e63d93ed", "75f2d20170e75e90e17665fbb4c24935"},
    {CRYPTO_AES_256_GCM, "3858f62230ac3c915f300c664312c63f568378529614d22ddb49237d2f60bfdf",
     "c4f0e9818348b2f30188d82b37a4cddc9f5ea531070ec67225160209faff573c",
     "547b11ac4237da1157a7929774dc380b685a79fa16ac355931f5027c8e",
     "c27cb248e71bfe9ae4a0008425c06707", "1f3a89da2476f7d703d5b440f05004c1"},
    {CRYPTO_CHACHA20_POLY1305, "3858f62230ac3c915f300c664312c63f568378529614d22ddb49237d2f60bfdf",
     "c4f0e9818348b2f30188d82b37a4cddc9f5ea531070ec67225160209faff573c",
     "dcead0381f8e9cfc2badb5ad4fe573e5402aa7e892ce6002ce5b62805f",
     "d9c6a5d06646d467713bdf20d7d1b0ff", "97c63e8ef9371457fe2ce6bd3bad7b05"},
};
#define VECTOR_COUNT (sizeof vectors / sizeof vectors[0])

TEST(test_crypto_method_names)
{
    CHECK_INT(crypto_method_by_name("aes-128-gcm"), CRYPTO_AES_128_GCM);
    CHECK_INT(crypto_method_by_name("aes-192-gcm"), CRYPTO_AES_192_GCM);
    CHECK_INT(crypto_method_by_name("aes-256-gcm"), CRYPTO_AES_256_GCM);
    CHECK_INT(crypto_method_by_name("chacha20-ietf-poly1305"), CRYPTO_CHACHA20_POLY1305);
    CHECK_INT(crypto_method_by_name("AES-128-GCM"), -1);
    CHECK_INT(crypto_method_by_name("chacha20-poly1305"), -1);
    CHECK_INT(crypto_method_by_name("aes-256-cfb"), -1);
    CHECK_INT(crypto_method_by_name(""), -1);
    CHECK_INT(crypto_method_by_name(NULL), -1);
}

TEST(test_crypto_method_info_sizes)
{
    static const size_t key_len[CRYPTO_METHOD_COUNT] = {16, 24, 32, 32, 16, 32, 32};
    for (int m = 0; m < CRYPTO_METHOD_COUNT; m++) {
        const struct crypto_method_info *info = crypto_method_info((enum crypto_method)m);
        CHECK(info != NULL);
        CHECK_INT(info->key_len, key_len[m]);
        CHECK_INT(info->salt_len, key_len[m]);
        CHECK_INT(crypto_method_by_name(info->name), m);
    }
    CHECK_STR(crypto_method_info(CRYPTO_CHACHA20_POLY1305)->name, "chacha20-ietf-poly1305");
    CHECK(crypto_method_info(CRYPTO_METHOD_COUNT) == NULL);
    CHECK(crypto_method_info((enum crypto_method)(-1)) == NULL);
}

TEST(test_crypto_backend_names)
{
#ifdef RP_CRYPTO_OPENSSL
    CHECK_STR(crypto_backend_name(), "openssl");
    CHECK_CONTAINS(crypto_backend_version(), "OpenSSL");
#else
    CHECK_STR(crypto_backend_name(), "mbedtls");
    CHECK_STR(crypto_backend_version(), crypto_mbedtls_version());
#endif
    const char *v = crypto_mbedtls_version();
    CHECK(v != NULL);
    CHECK(v[0] >= '2' && v[0] <= '9');
    CHECK(v[1] == '.');
}

TEST(test_crypto_key_from_password_foobar)
{
    for (size_t i = 0; i < VECTOR_COUNT; i++) {
        struct crypto_key k;
        uint8_t want[CRYPTO_MAX_KEY];
        long n = unit_hex(vectors[i].master, want, sizeof want);
        memset(&k, 0xAA, sizeof k);
        CHECK_INT(crypto_key_from_password(&k, vectors[i].method, "foobar"), 0);
        CHECK_INT(k.method, vectors[i].method);
        CHECK_INT(k.len, n);
        CHECK_MEM(k.bytes, want, (size_t)n);
    }
}

TEST(test_crypto_key_from_password_other_passwords)
{
    struct crypto_key k;
    uint8_t want[CRYPTO_MAX_KEY];

    /* Empty: D1 = MD5("") = d41d8cd9..., D2 = MD5(D1). */
    unit_hex("d41d8cd98f00b204e9800998ecf8427e59adb24ef3cdbe0297f05b395827453f", want, 32);
    CHECK_INT(crypto_key_from_password(&k, CRYPTO_AES_256_GCM, ""), 0);
    CHECK_MEM(k.bytes, want, 32);
    /* Longer than one MD5 block, and UTF-8 bytes taken as they are. */
    unit_hex("30eb7cf13c43f8e924a1c5022365bea222b5dcace3758f6e8b4b837c0e240fc2", want, 32);
    CHECK_INT(crypto_key_from_password(&k, CRYPTO_CHACHA20_POLY1305,
                                       "a much longer password than one md5 block"),
              0);
    CHECK_MEM(k.bytes, want, 32);
    unit_hex("12841e4ba5e37d2fbfc78458c6714ade", want, 16);
    CHECK_INT(crypto_key_from_password(&k, CRYPTO_AES_128_GCM, "p\xc3\xa4ssw\xc3\xb6rd"), 0);
    CHECK_MEM(k.bytes, want, 16);
}

TEST(test_crypto_key_from_password_rejects_bad_arguments)
{
    struct crypto_key k;
    CHECK_INT(crypto_key_from_password(&k, CRYPTO_AES_128_GCM, NULL), -1);
    CHECK_INT(crypto_key_from_password(&k, CRYPTO_METHOD_COUNT, "foobar"), -1);
    CHECK_INT(crypto_key_from_password(&k, (enum crypto_method)(-1), "foobar"), -1);
}

TEST(test_crypto_key_from_base64_standard_and_url_safe)
{
    static const char *const accepted[] = {
        "+/+/+/+/+/+/+/+/+/+//g==", /* standard, padded */
        "+/+/+/+/+/+/+/+/+/+//g",   /* standard, unpadded */
        "-_-_-_-_-_-_-_-_-_-__g==", /* URL-safe (what ss-server prints), padded */
        "-_-_-_-_-_-_-_-_-_-__g",   /* URL-safe, unpadded */
    };
    uint8_t want[16];
    unit_hex("fbffbffbffbffbffbffbffbffbffbffe", want, sizeof want);
    for (size_t i = 0; i < sizeof accepted / sizeof accepted[0]; i++) {
        struct crypto_key k;
        memset(&k, 0, sizeof k);
        CHECK_INT(crypto_key_from_base64(&k, CRYPTO_AES_128_GCM, accepted[i]), 0);
        CHECK_INT(k.method, CRYPTO_AES_128_GCM);
        CHECK_INT(k.len, 16);
        CHECK_MEM(k.bytes, want, 16);
    }
}

TEST(test_crypto_key_from_base64_every_length)
{
    struct crypto_key k;
    uint8_t want[32];

    unit_hex("e0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7", want, 24);
    CHECK_INT(crypto_key_from_base64(&k, CRYPTO_AES_192_GCM, "4OHi4+Tl5ufo6err7O3u7/Dx8vP09fb3"),
              0);
    CHECK_INT(k.len, 24);
    CHECK_MEM(k.bytes, want, 24);
    unit_hex("fbeffffbeffffbeffffbeffffbeffffbeffffbeffffbeffffbeffffbefff3eff", want, 32);
    CHECK_INT(crypto_key_from_base64(&k, CRYPTO_AES_256_GCM,
                                     "++//++//++//++//++//++//++//++//++//++//Pv8="),
              0);
    CHECK_MEM(k.bytes, want, 32);
    memset(&k, 0, sizeof k);
    CHECK_INT(crypto_key_from_base64(&k, CRYPTO_CHACHA20_POLY1305,
                                     "--__--__--__--__--__--__--__--__--__--__Pv8"),
              0);
    CHECK_INT(k.method, CRYPTO_CHACHA20_POLY1305);
    CHECK_MEM(k.bytes, want, 32);
}

TEST(test_crypto_key_from_base64_rejects)
{
    static const char *const rejected[] = {
        "",
        "+/+/+/+/+/+/+/+/+/+//g=",    /* padding of the wrong length */
        "+/+/+/+/+/+/+/+/+/+//g===",  /* too much padding */
        "+/+/+/+/+/+/+/+/+/+/",       /* 15 bytes */
        "+/+/+/+/+/+/+/+/+/+//g+/",   /* 18 bytes */
        "+/+/+/+/+/+/+/+/+/+//",      /* 4n+1 characters: not base64 */
        "+/+/+/+/+/+/ +/+/+/+//g==",  /* whitespace */
        "+/+/+/+/+/+/+/+/+/+//g==\n", /* trailing newline */
        "+/+/+/+/+/+/+/=/+/+//g==",   /* '=' inside */
        "+/+/+/+/+/+/+/+/+/+//g*=",   /* not in either alphabet */
        "+/+/+/+/+/+/+/+/+/+//g==+/+/+/+/+/+/+/+/+/+//g==+/+/+/+/+/+/+/+/+/+//g==", /* long */
    };
    for (size_t i = 0; i < sizeof rejected / sizeof rejected[0]; i++) {
        struct crypto_key k;
        if (crypto_key_from_base64(&k, CRYPTO_AES_128_GCM, rejected[i]) != -1)
            unit_fail(__FILE__, __LINE__, "accepted \"%s\"", rejected[i]);
    }
    struct crypto_key k;
    /* Right text, wrong method: 16 bytes are not a 32-byte key. */
    CHECK_INT(crypto_key_from_base64(&k, CRYPTO_AES_256_GCM, "+/+/+/+/+/+/+/+/+/+//g=="), -1);
    CHECK_INT(crypto_key_from_base64(&k, CRYPTO_AES_128_GCM, NULL), -1);
    CHECK_INT(crypto_key_from_base64(&k, CRYPTO_METHOD_COUNT, "+/+/+/+/+/+/+/+/+/+//g=="), -1);
}

/* What crypto_base64_decode() wrote (its length), or -1 where it refused. */
static long base64_length(const char *in, uint8_t *out, size_t cap)
{
    size_t n = 0;
    return crypto_base64_decode(in, out, cap, &n) == 0 ? (long)n : -1;
}

TEST(test_crypto_base64_decode)
{
    uint8_t out[64];
    CHECK_INT(base64_length("aGVsbG8=", out, sizeof out), 5);
    CHECK_MEM(out, "hello", 5);
    CHECK_INT(base64_length("aGVsbG8", out, sizeof out), 5);
    CHECK_INT(base64_length("-_-_", out, sizeof out), 3);
    CHECK_MEM(out, "\xfb\xff\xbf", 3);
    CHECK_INT(base64_length("+/+/", out, sizeof out), 3);
    CHECK_MEM(out, "\xfb\xff\xbf", 3);
    CHECK_INT(base64_length("aGVsbG8==", out, sizeof out), -1);
    CHECK_INT(base64_length("aGVsb", out, sizeof out), -1);
    CHECK_INT(base64_length("aGV sbG8=", out, sizeof out), -1);
    CHECK_INT(base64_length("", out, sizeof out), -1);
    CHECK_INT(base64_length("aGVsbG8=", out, 4), -1);
}

TEST(test_crypto_subkey_vectors)
{
    for (size_t i = 0; i < VECTOR_COUNT; i++) {
        struct crypto_key k;
        uint8_t salt[CRYPTO_MAX_SALT], want[CRYPTO_MAX_KEY], got[CRYPTO_MAX_KEY];
        for (size_t j = 0; j < sizeof salt; j++)
            salt[j] = (uint8_t)j;
        long n = unit_hex(vectors[i].subkey, want, sizeof want);
        CHECK_INT(crypto_key_from_password(&k, vectors[i].method, "foobar"), 0);
        memset(got, 0, sizeof got);
        CHECK_INT(crypto_subkey(&k, salt, got), 0);
        CHECK_MEM(got, want, (size_t)n);
        /* Exactly key_len bytes written. */
        for (size_t j = (size_t)n; j < sizeof got; j++)
            CHECK_INT(got[j], 0);
    }
}

/* The openssl build derives subkeys on libcrypto's SHA-1, the mbedtls build on mbedTLS's: both
 * give the SIP004 vectors' subkeys, and the same subkey for any salt (a walk of salts, each the
 * previous subkey). */
TEST(test_crypto_subkey_backends_agree)
{
    for (size_t i = 0; i < VECTOR_COUNT; i++) {
        struct crypto_key k;
        uint8_t salt[CRYPTO_MAX_SALT], want[CRYPTO_MAX_KEY], a[CRYPTO_MAX_KEY], b[CRYPTO_MAX_KEY];
        for (size_t j = 0; j < sizeof salt; j++)
            salt[j] = (uint8_t)j;
        long n = unit_hex(vectors[i].subkey, want, sizeof want);
        CHECK_INT(crypto_key_from_password(&k, vectors[i].method, "foobar"), 0);
        CHECK_INT(crypto_subkey_with(&k, salt, a, false), 0);
        CHECK_MEM(a, want, (size_t)n);
#ifdef RP_CRYPTO_OPENSSL
        CHECK_INT(crypto_subkey_with(&k, salt, b, true), 0);
        CHECK_MEM(b, want, (size_t)n);
        for (int round = 0; round < 64; round++) {
            memcpy(salt, a, (size_t)n);
            CHECK_INT(crypto_subkey_with(&k, salt, a, false), 0);
            CHECK_INT(crypto_subkey_with(&k, salt, b, true), 0);
            CHECK_MEM(a, b, (size_t)n);
        }
#else
        CHECK_INT(crypto_subkey_with(&k, salt, b, true), -1); /* no libcrypto in this build */
#endif
    }
}

TEST(test_crypto_subkey_depends_on_salt)
{
    struct crypto_key k;
    uint8_t salt[16] = {0}, a[16], b[16];
    CHECK_INT(crypto_key_from_password(&k, CRYPTO_AES_128_GCM, "foobar"), 0);
    CHECK_INT(crypto_subkey(&k, salt, a), 0);
    salt[15] ^= 1;
    CHECK_INT(crypto_subkey(&k, salt, b), 0);
    CHECK(memcmp(a, b, sizeof a) != 0);
    k.len = 15; /* inconsistent key: refused */
    CHECK_INT(crypto_subkey(&k, salt, b), -1);
}

/* The known-answer seal of every method through the public interface, in place and not. */
TEST(test_crypto_aead_seal_vectors)
{
    for (size_t i = 0; i < VECTOR_COUNT; i++) {
        uint8_t key[CRYPTO_MAX_KEY], want[64], want_tag[16], nonce[12] = {1};
        uint8_t buf[64], out[64], tag[16];
        size_t len = sizeof kat_plain - 1;
        unit_hex(vectors[i].subkey, key, sizeof key);
        CHECK_INT(unit_hex(vectors[i].sealed, want, sizeof want), len);
        unit_hex(vectors[i].tag, want_tag, sizeof want_tag);

        struct crypto_aead *a = crypto_aead_new(vectors[i].method, key);
        CHECK(a != NULL);
        CHECK_INT(crypto_aead_method(a), vectors[i].method);
        CHECK_INT(crypto_aead_seal(a, nonce, (const uint8_t *)kat_plain, len, out, tag), 0);
        CHECK_MEM(out, want, len);
        CHECK_MEM(tag, want_tag, 16);
        memcpy(buf, kat_plain, len);
        memset(tag, 0, sizeof tag);
        CHECK_INT(crypto_aead_seal(a, nonce, buf, len, buf, tag), 0);
        CHECK_MEM(buf, want, len);
        CHECK_MEM(tag, want_tag, 16);
        CHECK_INT(crypto_aead_open(a, nonce, buf, len, buf, tag), 0);
        CHECK_MEM(buf, kat_plain, len);
        crypto_aead_free(a);
    }
}

TEST(test_crypto_aead_empty_plaintext_vectors)
{
    for (size_t i = 0; i < VECTOR_COUNT; i++) {
        uint8_t key[CRYPTO_MAX_KEY], want_tag[16], tag[16], nonce[12] = {0}, byte = 0x55;
        unit_hex(vectors[i].subkey, key, sizeof key);
        unit_hex(vectors[i].empty_tag, want_tag, sizeof want_tag);
        struct crypto_aead *a = crypto_aead_new(vectors[i].method, key);
        CHECK(a != NULL);
        CHECK_INT(crypto_aead_seal(a, nonce, &byte, 0, &byte, tag), 0);
        CHECK_MEM(tag, want_tag, 16);
        CHECK_INT(byte, 0x55);
        CHECK_INT(crypto_aead_open(a, nonce, &byte, 0, &byte, tag), 0);
        tag[0] ^= 0x80;
        CHECK_INT(crypto_aead_open(a, nonce, &byte, 0, &byte, tag), -1);
        crypto_aead_free(a);
    }
}

/* Any flipped bit of ciphertext or tag fails, and the output is wiped. */
TEST(test_crypto_aead_open_rejects_every_bit_flip)
{
    uint8_t key[32], nonce[12] = {1}, sealed[29], tag[16], out[29];
    size_t len = sizeof kat_plain - 1;
    for (size_t i = 0; i < VECTOR_COUNT; i++) {
        unit_hex(vectors[i].subkey, key, sizeof key);
        unit_hex(vectors[i].sealed, sealed, sizeof sealed);
        unit_hex(vectors[i].tag, tag, sizeof tag);
        struct crypto_aead *a = crypto_aead_new(vectors[i].method, key);
        CHECK(a != NULL);
        for (size_t bit = 0; bit < (len + 16) * 8; bit++) {
            uint8_t *p = bit / 8 < len ? &sealed[bit / 8] : &tag[bit / 8 - len];
            *p ^= (uint8_t)(1u << (bit % 8));
            memset(out, 0xEE, sizeof out);
            CHECK_INT(crypto_aead_open(a, nonce, sealed, len, out, tag), -1);
            for (size_t j = 0; j < len; j++)
                CHECK_INT(out[j], 0);
            *p ^= (uint8_t)(1u << (bit % 8));
        }
        nonce[0] = 2; /* wrong nonce */
        CHECK_INT(crypto_aead_open(a, nonce, sealed, len, out, tag), -1);
        nonce[0] = 1;
        CHECK_INT(crypto_aead_open(a, nonce, sealed, len, out, tag), 0);
        CHECK_MEM(out, kat_plain, len);
        crypto_aead_free(a);
    }
}

TEST(test_crypto_aead_rekey_matches_fresh_context)
{
    uint8_t k1[32], k2[32], nonce[12] = {1}, out[29], tag[16], want[29];
    size_t len = sizeof kat_plain - 1;
    memset(k1, 0x11, sizeof k1);
    for (size_t i = 0; i < VECTOR_COUNT; i++) {
        unit_hex(vectors[i].subkey, k2, sizeof k2);
        unit_hex(vectors[i].sealed, want, sizeof want);
        struct crypto_aead *a = crypto_aead_new(vectors[i].method, k1);
        CHECK(a != NULL);
        CHECK_INT(crypto_aead_seal(a, nonce, (const uint8_t *)kat_plain, len, out, tag), 0);
        CHECK(memcmp(out, want, len) != 0);
        CHECK_INT(crypto_aead_rekey(a, k2), 0);
        CHECK_INT(crypto_aead_method(a), vectors[i].method);
        CHECK_INT(crypto_aead_seal(a, nonce, (const uint8_t *)kat_plain, len, out, tag), 0);
        CHECK_MEM(out, want, len);
        crypto_aead_free(a);
    }
}

TEST(test_crypto_aead_new_rejects_bad_method)
{
    uint8_t key[32] = {0};
    CHECK(crypto_aead_new(CRYPTO_METHOD_COUNT, key) == NULL);
    CHECK(crypto_aead_new((enum crypto_method)(-1), key) == NULL);
    CHECK(crypto_aead_new(CRYPTO_AES_128_GCM, NULL) == NULL);
    crypto_aead_free(NULL);
}

/* McGrew-Viega, "The Galois/Counter Mode of Operation", appendix B: test cases 1-3 have no
 * associated data, so they run through the public interface. */
TEST(test_crypto_gcm_spec_cases_1_to_3)
{
    uint8_t key[16] = {0}, iv[12] = {0}, zero[16] = {0}, out[64], tag[16], want[64];
    struct crypto_aead *a = crypto_aead_new(CRYPTO_AES_128_GCM, key);
    CHECK(a != NULL);
    CHECK_INT(crypto_aead_seal(a, iv, zero, 0, out, tag), 0);
    unit_hex("58e2fccefa7e3061367f1d57a4e7455a", want, 16);
    CHECK_MEM(tag, want, 16);
    CHECK_INT(crypto_aead_seal(a, iv, zero, 16, out, tag), 0);
    unit_hex("0388dace60b6a392f328c2b971b2fe78", want, 16);
    CHECK_MEM(out, want, 16);
    unit_hex("ab6e47d42cec13bdf53a67b21257bddf", want, 16);
    CHECK_MEM(tag, want, 16);

    uint8_t plain[64];
    unit_hex("feffe9928665731c6d6a8f9467308308", key, 16);
    unit_hex("cafebabefacedbaddecaf888", iv, 12);
    unit_hex("d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
             "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255",
             plain, 64);
    CHECK_INT(crypto_aead_rekey(a, key), 0);
    CHECK_INT(crypto_aead_seal(a, iv, plain, 64, out, tag), 0);
    unit_hex("42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e"
             "21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091473f5985",
             want, 64);
    CHECK_MEM(out, want, 64);
    unit_hex("4d5c2af327cd64a62cf35abd2ba6fab4", want, 16);
    CHECK_MEM(tag, want, 16);
    crypto_aead_free(a);
}

/* The published vectors that carry associated data, run through one backend. */
struct backend_ops {
    void *(*make)(enum crypto_method m, const uint8_t *key);
    void (*destroy)(void *a);
    int (*seal)(void *a, const uint8_t *nonce, const uint8_t *aad, size_t aad_len,
                const uint8_t *in, size_t len, uint8_t *out, uint8_t *tag);
    int (*open)(void *a, const uint8_t *nonce, const uint8_t *aad, size_t aad_len,
                const uint8_t *in, size_t len, uint8_t *out, const uint8_t *tag);
};

static void *mbed_make(enum crypto_method m, const uint8_t *key)
{
    return crypto_mbedtls_aead_new(m, key);
}
static void mbed_destroy(void *a)
{
    crypto_mbedtls_aead_free(a);
}
static int mbed_seal(void *a, const uint8_t *nonce, const uint8_t *aad, size_t aad_len,
                     const uint8_t *in, size_t len, uint8_t *out, uint8_t *tag)
{
    return crypto_mbedtls_aead_seal(a, nonce, aad, aad_len, in, len, out, tag);
}
static int mbed_open(void *a, const uint8_t *nonce, const uint8_t *aad, size_t aad_len,
                     const uint8_t *in, size_t len, uint8_t *out, const uint8_t *tag)
{
    return crypto_mbedtls_aead_open(a, nonce, aad, aad_len, in, len, out, tag);
}

#ifdef RP_CRYPTO_OPENSSL
static void *ossl_make(enum crypto_method m, const uint8_t *key)
{
    return crypto_openssl_aead_new(m, key);
}
static void ossl_destroy(void *a)
{
    crypto_openssl_aead_free(a);
}
static int ossl_seal(void *a, const uint8_t *nonce, const uint8_t *aad, size_t aad_len,
                     const uint8_t *in, size_t len, uint8_t *out, uint8_t *tag)
{
    return crypto_openssl_aead_seal(a, nonce, aad, aad_len, in, len, out, tag);
}
static int ossl_open(void *a, const uint8_t *nonce, const uint8_t *aad, size_t aad_len,
                     const uint8_t *in, size_t len, uint8_t *out, const uint8_t *tag)
{
    return crypto_openssl_aead_open(a, nonce, aad, aad_len, in, len, out, tag);
}
#endif

static const struct backend_ops backends[] = {
    {mbed_make, mbed_destroy, mbed_seal, mbed_open},
#ifdef RP_CRYPTO_OPENSSL
    {ossl_make, ossl_destroy, ossl_seal, ossl_open},
#endif
};
#define BACKEND_COUNT (sizeof backends / sizeof backends[0])

struct aad_vector {
    enum crypto_method method;
    const char *key, *nonce, *aad, *plain, *sealed, *tag;
};

static const char gcm_plain[] = "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
                                "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39";

static const struct aad_vector aad_vectors[] = {
    /* McGrew-Viega test case 4 (AES-128), 10 (AES-192), 16 (AES-256). */
    {CRYPTO_AES_128_GCM, "feffe9928665731c6d6a8f9467308308", "cafebabefacedbaddecaf888",
     "feedfacedeadbeeffeedfacedeadbeefabaddad2", gcm_plain,
     "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e"
     "21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091",
     "5bc94fbc3221a5db94fae95ae7121a47"},
    {CRYPTO_AES_192_GCM, "feffe9928665731c6d6a8f9467308308feffe9928665731c",
     "cafebabefacedbaddecaf888", "feedfacedeadbeeffeedfacedeadbeefabaddad2", gcm_plain,
     "3980ca0b3c00e841eb06fac4872a2757859e1ceaa6efd984628593b40ca1e19c"
     "7d773d00c144c525ac619d18c84a3f4718e2448b2fe324d9ccda2710",
     "2519498e80f1478f37ba55bd6d27618c"},
    {CRYPTO_AES_256_GCM, "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
     "cafebabefacedbaddecaf888", "feedfacedeadbeeffeedfacedeadbeefabaddad2", gcm_plain,
     "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
     "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662",
     "76fc6ece0f4e1768cddf8853bb2d551b"},
    /* RFC 8439 section 2.8.2: "Ladies and Gentlemen of the class of '99: ..." */
    {CRYPTO_CHACHA20_POLY1305, "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f",
     "070000004041424344454647", "50515253c0c1c2c3c4c5c6c7",
     "4c616469657320616e642047656e746c656d656e206f662074686520636c6173"
     "73206f66202739393a204966204920636f756c64206f6666657220796f75206f"
     "6e6c79206f6e652074697020666f7220746865206675747572652c2073756e73"
     "637265656e20776f756c642062652069742e",
     "d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d6"
     "3dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b36"
     "92ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc"
     "3ff4def08e4b7a9de576d26586cec64b6116",
     "1ae10b594f09e26a7e902ecbd0600691"},
};

static void run_aad_vector(const struct backend_ops *b, const struct aad_vector *v)
{
    uint8_t key[32], nonce[12], aad[32], plain[128], want[128], want_tag[16], buf[128], tag[16];
    unit_hex(v->key, key, sizeof key);
    unit_hex(v->nonce, nonce, sizeof nonce);
    long aad_len = unit_hex(v->aad, aad, sizeof aad);
    long len = unit_hex(v->plain, plain, sizeof plain);
    CHECK_INT(unit_hex(v->sealed, want, sizeof want), len);
    unit_hex(v->tag, want_tag, sizeof want_tag);

    void *a = b->make(v->method, key);
    CHECK(a != NULL);
    memcpy(buf, plain, (size_t)len);
    CHECK_INT(b->seal(a, nonce, aad, (size_t)aad_len, buf, (size_t)len, buf, tag), 0);
    CHECK_MEM(buf, want, (size_t)len);
    CHECK_MEM(tag, want_tag, 16);
    CHECK_INT(b->open(a, nonce, aad, (size_t)aad_len, buf, (size_t)len, buf, tag), 0);
    CHECK_MEM(buf, plain, (size_t)len);
    /* The associated data is authenticated: a changed byte fails. */
    aad[0] ^= 1;
    CHECK_INT(b->open(a, nonce, aad, (size_t)aad_len, want, (size_t)len, buf, tag), -1);
    b->destroy(a);
}

TEST(test_crypto_backends_pass_published_aead_vectors)
{
    for (size_t b = 0; b < BACKEND_COUNT; b++)
        for (size_t i = 0; i < sizeof aad_vectors / sizeof aad_vectors[0]; i++)
            run_aad_vector(&backends[b], &aad_vectors[i]);
}

TEST(test_crypto_backends_pass_method_vectors)
{
    for (size_t b = 0; b < BACKEND_COUNT; b++) {
        for (size_t i = 0; i < VECTOR_COUNT; i++) {
            uint8_t key[32], want[29], want_tag[16], out[29], tag[16], nonce[12] = {1};
            unit_hex(vectors[i].subkey, key, sizeof key);
            unit_hex(vectors[i].sealed, want, sizeof want);
            unit_hex(vectors[i].tag, want_tag, sizeof want_tag);
            void *a = backends[b].make(vectors[i].method, key);
            CHECK(a != NULL);
            CHECK_INT(backends[b].seal(a, nonce, NULL, 0, (const uint8_t *)kat_plain, 29, out, tag),
                      0);
            CHECK_MEM(out, want, 29);
            CHECK_MEM(tag, want_tag, 16);
            backends[b].destroy(a);
        }
    }
}

/* Random keys, nonces and lengths: every backend seals to the same bytes as the first one and
 * opens what the first one sealed. Only meaningful with libcrypto built in; with mbedTLS alone
 * it still checks seal/open round trips of odd lengths. */
TEST(test_crypto_backends_agree_on_random_input)
{
    static uint8_t plain[70000], sealed[70000], other[70000], back[70000];
    for (int round = 0; round < 40; round++) {
        uint8_t key[32], nonce[12], tag[16], other_tag[16], len_bytes[4];
        enum crypto_method m = (enum crypto_method)(round % CRYPTO_SIP004_COUNT);
        CHECK_INT(crypto_random(key, sizeof key), 0);
        CHECK_INT(crypto_random(nonce, sizeof nonce), 0);
        CHECK_INT(crypto_random(len_bytes, sizeof len_bytes), 0);
        size_t len = (size_t)round;
        if (round >= 8)
            len = (size_t)(len_bytes[0] | len_bytes[1] << 8) + len_bytes[2];
        CHECK_INT(crypto_random(plain, len), 0);

        void *first = backends[0].make(m, key);
        CHECK(first != NULL);
        CHECK_INT(backends[0].seal(first, nonce, NULL, 0, plain, len, sealed, tag), 0);
        for (size_t b = 0; b < BACKEND_COUNT; b++) {
            void *a = backends[b].make(m, key);
            CHECK(a != NULL);
            CHECK_INT(backends[b].seal(a, nonce, NULL, 0, plain, len, other, other_tag), 0);
            CHECK_MEM(other, sealed, len);
            CHECK_MEM(other_tag, tag, 16);
            CHECK_INT(backends[b].open(a, nonce, NULL, 0, sealed, len, back, tag), 0);
            CHECK_MEM(back, plain, len);
            backends[b].destroy(a);
        }
        backends[0].destroy(first);
    }
}

TEST(test_crypto_nonce_increment_little_endian)
{
    uint8_t n[12] = {0};
    crypto_nonce_increment(n);
    CHECK_MEM(n, "\x01\0\0\0\0\0\0\0\0\0\0\0", 12);
    memcpy(n, "\xff\0\0\0\0\0\0\0\0\0\0\0", 12);
    crypto_nonce_increment(n);
    CHECK_MEM(n, "\0\x01\0\0\0\0\0\0\0\0\0\0", 12);
    memcpy(n, "\xff\xff\xff\x7f\0\0\0\0\0\0\0\x09", 12);
    crypto_nonce_increment(n);
    CHECK_MEM(n, "\0\0\0\x80\0\0\0\0\0\0\0\x09", 12);
    memset(n, 0xff, sizeof n);
    crypto_nonce_increment(n);
    CHECK_MEM(n, "\0\0\0\0\0\0\0\0\0\0\0\0", 12);
    for (int i = 0; i < 300; i++)
        crypto_nonce_increment(n);
    CHECK_MEM(n, "\x2c\x01\0\0\0\0\0\0\0\0\0\0", 12);
}

TEST(test_crypto_random_fills)
{
    static uint8_t big[1 << 20];
    uint8_t a[32] = {0}, b[32] = {0};
    CHECK_INT(crypto_random(a, sizeof a), 0);
    CHECK_INT(crypto_random(b, sizeof b), 0);
    CHECK(memcmp(a, b, sizeof a) != 0);
    CHECK_INT(crypto_random(a, 0), 0);
    /* Longer than one getrandom() call may return: every 4 KiB block gets random bytes. */
    CHECK_INT(crypto_random(big, sizeof big), 0);
    for (size_t off = 0; off < sizeof big; off += 4096) {
        static const uint8_t zero[64];
        CHECK(memcmp(big + off + 4096 - 64, zero, 64) != 0);
    }
}

TEST(test_crypto_wipe_zeroes)
{
    uint8_t buf[40];
    memset(buf, 0xAB, sizeof buf);
    crypto_wipe(buf + 4, 32);
    CHECK_INT(buf[3], 0xAB);
    for (int i = 4; i < 36; i++)
        CHECK_INT(buf[i], 0);
    CHECK_INT(buf[36], 0xAB);
}

/* The salt pool must never hand a forked child the bytes its parent hands out next: two
 * workers would then pick the same salts (and nonces). */
TEST(test_crypto_random_pool_differs_across_fork)
{
    uint8_t mine[32], theirs[32];
    int fds[2];

    CHECK_INT(crypto_random(mine, sizeof mine), 0); /* fills the pool */
    CHECK_INT(pipe(fds), 0);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        if (crypto_random(theirs, sizeof theirs) != 0 ||
            write(fds[1], theirs, sizeof theirs) != (ssize_t)sizeof theirs)
            _exit(1);
        _exit(0);
    }
    CHECK_INT(crypto_random(mine, sizeof mine), 0);
    CHECK_INT(read(fds[0], theirs, sizeof theirs), sizeof theirs);
    int status;
    CHECK_INT(waitpid(pid, &status, 0), pid);
    CHECK(memcmp(mine, theirs, sizeof mine) != 0);
}

TEST(test_crypto_random_pool_never_repeats_bytes)
{
    static uint8_t seen[64][32];
    for (int i = 0; i < 64; i++) { /* 2 KiB: half a pool, then a refill in the middle */
        CHECK_INT(crypto_random(seen[i], 32), 0);
        for (int j = 0; j < i; j++)
            CHECK(memcmp(seen[i], seen[j], 32) != 0);
    }
    uint8_t big[5000]; /* larger requests go straight to getrandom */
    CHECK_INT(crypto_random(big, sizeof big), 0);
}

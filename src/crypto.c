/* crypto.c: the crypto interface reuseproxy uses. The SIP004 method table; the master key from
 * a password (EVP_BytesToKey with MD5) or from base64; the HKDF-SHA1 session subkey; random
 * bytes; the nonce counter; and the AEAD calls, forwarded to the bulk backend configure chose
 * (crypto_openssl.c when RP_CRYPTO_OPENSSL, else crypto_mbedtls.c). Key derivation runs on
 * mbedTLS, except the per-session HKDF-SHA1, which runs on libcrypto's SHA-1 when that backend
 * is built (it uses the CPU's SHA extensions; mbedTLS 2.28's SHA-1 is portable C). */
#ifdef HAVE_CONFIG_H
#include "autoconfig.h"
#endif

#ifdef RP_CRYPTO_OPENSSL
/* SHA1_Init/Update/Final, which OpenSSL 3 deprecates in favour of EVP: an EVP digest context
 * is allocated and dispatched through a provider, which costs more than the ten compressions
 * of a subkey; the low-level calls run the same code (and a state is copied to clone it). */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/sha.h>
#endif

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include <mbedtls/sha1.h>
#include <mbedtls/version.h>
#include <mbedtls/md.h>
#include <mbedtls/platform_util.h>

#include "crypto.h"
#include "crypto_backend.h"

/* struct crypto_aead is the selected backend's context under the public opaque name; it is
 * never dereferenced here, only converted back. */
#ifdef RP_CRYPTO_OPENSSL
#define CRYPTO_BACKEND "openssl"
#define backend_aead crypto_openssl_aead
#define backend_new crypto_openssl_aead_new
#define backend_rekey crypto_openssl_aead_rekey
#define backend_free crypto_openssl_aead_free
#define backend_method crypto_openssl_aead_method
#define backend_seal crypto_openssl_aead_seal
#define backend_open crypto_openssl_aead_open
#define backend_version crypto_openssl_version
#else
#define CRYPTO_BACKEND "mbedtls"
#define backend_aead crypto_mbedtls_aead
#define backend_new crypto_mbedtls_aead_new
#define backend_rekey crypto_mbedtls_aead_rekey
#define backend_free crypto_mbedtls_aead_free
#define backend_method crypto_mbedtls_aead_method
#define backend_seal crypto_mbedtls_aead_seal
#define backend_open crypto_mbedtls_aead_open
#define backend_version crypto_mbedtls_version
#endif

/* SIP004 "AEAD ciphers": the four methods every implementation shares; then the three of
 * Shadowsocks 2022 (SIP022 section 2.1: the PSK, salt and session subkey are as long as the
 * AEAD's key). The salt is as long as the key for each of them. */
static const struct crypto_method_info crypto_methods[CRYPTO_METHOD_COUNT] = {
    [CRYPTO_AES_128_GCM] = {"aes-128-gcm", 16, 16, CRYPTO_PROTO_SIP004, CRYPTO_AES_128_GCM},
    [CRYPTO_AES_192_GCM] = {"aes-192-gcm", 24, 24, CRYPTO_PROTO_SIP004, CRYPTO_AES_192_GCM},
    [CRYPTO_AES_256_GCM] = {"aes-256-gcm", 32, 32, CRYPTO_PROTO_SIP004, CRYPTO_AES_256_GCM},
    [CRYPTO_CHACHA20_POLY1305] = {"chacha20-ietf-poly1305", 32, 32, CRYPTO_PROTO_SIP004,
                                  CRYPTO_CHACHA20_POLY1305},
    [CRYPTO_2022_AES_128_GCM] = {"2022-blake3-aes-128-gcm", 16, 16, CRYPTO_PROTO_SIP022,
                                 CRYPTO_AES_128_GCM},
    [CRYPTO_2022_AES_256_GCM] = {"2022-blake3-aes-256-gcm", 32, 32, CRYPTO_PROTO_SIP022,
                                 CRYPTO_AES_256_GCM},
    [CRYPTO_2022_CHACHA20_POLY1305] = {"2022-blake3-chacha20-poly1305", 32, 32,
                                       CRYPTO_PROTO_SIP022, CRYPTO_CHACHA20_POLY1305},
};

/* Room for every name of the table joined by ", ". */
#define CRYPTO_METHOD_NAMES_MAX 256

/* HKDF info string of SIP004; its terminating NUL is not part of it. */
static const char crypto_subkey_info[] = "ss-subkey";

static int crypto_method_find(const char *name, int (*compare)(const char *, const char *))
{
    if (!name)
        return -1;
    for (int m = 0; m < CRYPTO_METHOD_COUNT; m++)
        if (compare(name, crypto_methods[m].name) == 0)
            return m;
    return -1;
}

int crypto_method_by_name(const char *name)
{
    return crypto_method_find(name, strcmp);
}

int crypto_method_lookup(const char *name)
{
    return crypto_method_find(name, strcasecmp);
}

/* Built from the table on first use, so a method added there is named in every message. */
static char crypto_names[CRYPTO_METHOD_NAMES_MAX];
static pthread_once_t crypto_names_once = PTHREAD_ONCE_INIT;

static void crypto_names_build(void)
{
    size_t n = 0;
    for (int m = 0; m < CRYPTO_METHOD_COUNT && n < sizeof crypto_names; m++) {
        int w = snprintf(crypto_names + n, sizeof crypto_names - n, "%s%s", m ? ", " : "",
                         crypto_methods[m].name);
        if (w < 0)
            break;
        n += (size_t)w;
    }
}

const char *crypto_method_names(void)
{
    pthread_once(&crypto_names_once, crypto_names_build);
    return crypto_names;
}

const struct crypto_method_info *crypto_method_info(enum crypto_method m)
{
    if ((unsigned)m >= CRYPTO_METHOD_COUNT)
        return NULL;
    return &crypto_methods[m];
}

const char *crypto_backend_name(void)
{
    return CRYPTO_BACKEND;
}

const char *crypto_backend_version(void)
{
    return backend_version();
}

/* OpenSSL's EVP_BytesToKey(md5, no salt, count 1), which shadowsocks uses for the master key:
 * D1 = MD5(password), Di = MD5(Di-1 || password), key = D1 || D2 || ... truncated. */
static int crypto_bytes_to_key(const char *password, uint8_t *key, size_t key_len)
{
    const mbedtls_md_info_t *md5 = mbedtls_md_info_from_type(MBEDTLS_MD_MD5);
    size_t pass_len = strlen(password);
    uint8_t digest[16];
    mbedtls_md_context_t md;
    int ret = -1;

    if (!md5)
        return -1;
    mbedtls_md_init(&md);
    if (mbedtls_md_setup(&md, md5, 0) != 0)
        goto out;
    for (size_t have = 0; have < key_len;) {
        if (mbedtls_md_starts(&md) != 0 ||
            (have > 0 && mbedtls_md_update(&md, digest, sizeof digest) != 0) ||
            mbedtls_md_update(&md, (const unsigned char *)password, pass_len) != 0 ||
            mbedtls_md_finish(&md, digest) != 0)
            goto out;
        size_t n = key_len - have < sizeof digest ? key_len - have : sizeof digest;
        memcpy(key + have, digest, n);
        have += n;
    }
    ret = 0;
out:
    mbedtls_md_free(&md);
    mbedtls_platform_zeroize(digest, sizeof digest);
    return ret;
}

int crypto_key_from_password(struct crypto_key *k, enum crypto_method m, const char *password)
{
    const struct crypto_method_info *info = crypto_method_info(m);

    if (!info || !password || info->proto != CRYPTO_PROTO_SIP004)
        return -1;
    k->method = m;
    k->len = info->key_len;
    if (crypto_bytes_to_key(password, k->bytes, k->len) != 0) {
        crypto_wipe(k->bytes, sizeof k->bytes);
        return -1;
    }
    return 0;
}

/* One character of RFC 4648 base64 in either alphabet: the standard one (section 4) or the
 * URL-safe one (section 5), in which shadowsocks-libev prints keys. -1 for anything else. */
static int crypto_base64_value(char ch)
{
    if (ch >= 'A' && ch <= 'Z')
        return ch - 'A';
    if (ch >= 'a' && ch <= 'z')
        return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9')
        return ch - '0' + 52;
    if (ch == '+' || ch == '-')
        return 62;
    if (ch == '/' || ch == '_')
        return 63;
    return -1;
}

int crypto_base64_decode(const char *in, uint8_t *out, size_t cap, size_t *outlen)
{
    size_t len = in ? strlen(in) : 0, n = 0, pad = 0;
    unsigned acc = 0;
    int bits = 0;

    while (len > 0 && in[len - 1] == '=' && pad < 2) {
        len--;
        pad++;
    }
    /* With padding the whole must be quads; without it, a lone trailing character is junk. */
    if (len == 0 || (pad && (len + pad) % 4 != 0) || len % 4 == 1)
        return -1;
    for (size_t i = 0; i < len; i++) {
        int v = crypto_base64_value(in[i]); /* no whitespace, no '=' inside */
        if (v < 0)
            return -1;
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (n >= cap)
                return -1;
            out[n++] = (uint8_t)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    *outlen = n;
    return 0;
}

int crypto_base64_decode_exact(const char *in, uint8_t *out, size_t len)
{
    uint8_t raw[CRYPTO_MAX_KEY + 3]; /* room to see a key that is too long */
    size_t raw_len = 0;
    int ret = -1;

    if (len <= CRYPTO_MAX_KEY && crypto_base64_decode(in, raw, sizeof raw, &raw_len) == 0 &&
        raw_len == len) {
        memcpy(out, raw, len);
        ret = 0;
    }
    crypto_wipe(raw, sizeof raw);
    return ret;
}

int crypto_key_from_base64(struct crypto_key *k, enum crypto_method m, const char *b64)
{
    const struct crypto_method_info *info = crypto_method_info(m);

    if (!info || crypto_base64_decode_exact(b64, k->bytes, info->key_len) != 0)
        return -1;
    k->method = m;
    k->len = info->key_len;
    return 0;
}

/* mbedTLS 3 dropped the _ret suffixes of the SHA-1 calls. */
#if MBEDTLS_VERSION_NUMBER >= 0x03000000
#define crypto_mbedtls_sha1_starts mbedtls_sha1_starts
#define crypto_mbedtls_sha1_update mbedtls_sha1_update
#define crypto_mbedtls_sha1_finish mbedtls_sha1_finish
#else
#define crypto_mbedtls_sha1_starts mbedtls_sha1_starts_ret
#define crypto_mbedtls_sha1_update mbedtls_sha1_update_ret
#define crypto_mbedtls_sha1_finish mbedtls_sha1_finish_ret
#endif

/* One SHA-1 state of either library. Both are plain structs without pointers (mbedTLS's clone
 * is a copy), so assigning a state clones it. */
struct crypto_sha1 {
    bool libcrypto;
    union {
        mbedtls_sha1_context mbedtls;
#ifdef RP_CRYPTO_OPENSSL
        SHA_CTX openssl;
#endif
    } u;
};

static void crypto_sha1_starts(struct crypto_sha1 *s, bool libcrypto)
{
    s->libcrypto = libcrypto;
#ifdef RP_CRYPTO_OPENSSL
    if (libcrypto) {
        SHA1_Init(&s->u.openssl);
        return;
    }
#endif
    mbedtls_sha1_init(&s->u.mbedtls);
    crypto_mbedtls_sha1_starts(&s->u.mbedtls);
}

static void crypto_sha1_update(struct crypto_sha1 *s, const uint8_t *p, size_t len)
{
#ifdef RP_CRYPTO_OPENSSL
    if (s->libcrypto) {
        SHA1_Update(&s->u.openssl, p, len);
        return;
    }
#endif
    crypto_mbedtls_sha1_update(&s->u.mbedtls, p, len);
}

static void crypto_sha1_finish(struct crypto_sha1 *s, uint8_t out[20])
{
#ifdef RP_CRYPTO_OPENSSL
    if (s->libcrypto) {
        SHA1_Final(out, &s->u.openssl);
        return;
    }
#endif
    crypto_mbedtls_sha1_finish(&s->u.mbedtls, out);
}

/* HMAC-SHA1 (RFC 2104) with its key absorbed: the inner and outer hashes after their ipad and
 * opad blocks. A subkey is derived for every connection and every datagram, so HKDF is built
 * from these rather than mbedtls_hkdf(), which allocates and re-absorbs the key for each of its
 * three HMACs: this way the derivation takes ten SHA-1 compressions and no allocation. */
struct crypto_hmac_sha1 {
    struct crypto_sha1 inner, outer;
};

static void crypto_hmac_sha1_key(struct crypto_hmac_sha1 *h, const uint8_t *key, size_t len,
                                 bool libcrypto)
{
    uint8_t pad[64]; /* keys here are at most 32 bytes: never longer than the block */
    memset(pad, 0x36, sizeof pad);
    for (size_t i = 0; i < len; i++)
        pad[i] ^= key[i];
    crypto_sha1_starts(&h->inner, libcrypto);
    crypto_sha1_update(&h->inner, pad, sizeof pad);
    for (size_t i = 0; i < sizeof pad; i++)
        pad[i] ^= 0x36 ^ 0x5c;
    crypto_sha1_starts(&h->outer, libcrypto);
    crypto_sha1_update(&h->outer, pad, sizeof pad);
    mbedtls_platform_zeroize(pad, sizeof pad);
}

/* out = HMAC(key, a || b || c), where c is one byte when have_c. */
static void crypto_hmac_sha1(const struct crypto_hmac_sha1 *h, const uint8_t *a, size_t alen,
                             const uint8_t *b, size_t blen, int c, uint8_t out[20])
{
    struct crypto_sha1 ctx = h->inner;
    uint8_t byte = (uint8_t)c;
    crypto_sha1_update(&ctx, a, alen);
    crypto_sha1_update(&ctx, b, blen);
    if (c >= 0)
        crypto_sha1_update(&ctx, &byte, 1);
    crypto_sha1_finish(&ctx, out);
    ctx = h->outer;
    crypto_sha1_update(&ctx, out, 20);
    crypto_sha1_finish(&ctx, out);
    mbedtls_platform_zeroize(&ctx, sizeof ctx);
}

static void crypto_hmac_sha1_free(struct crypto_hmac_sha1 *h)
{
    mbedtls_platform_zeroize(h, sizeof *h);
}

int crypto_subkey(const struct crypto_key *k, const uint8_t *salt, uint8_t *out)
{
#ifdef RP_CRYPTO_OPENSSL
    return crypto_subkey_with(k, salt, out, true);
#else
    return crypto_subkey_with(k, salt, out, false);
#endif
}

/* SIP004: subkey = HKDF-SHA1(key = master key, salt, info = "ss-subkey"), as long as the key
 * (RFC 5869 section 2: extract, then expand in 20-byte blocks T(i) = HMAC(PRK, T(i-1) | info |
 * i)). */
int crypto_subkey_with(const struct crypto_key *k, const uint8_t *salt, uint8_t *out,
                       bool libcrypto)
{
    const struct crypto_method_info *info = crypto_method_info(k->method);
    const uint8_t *label = (const uint8_t *)crypto_subkey_info;
    const size_t label_len = sizeof crypto_subkey_info - 1;
    struct crypto_hmac_sha1 h;
    uint8_t prk[20], t[20];

    if (!info || k->len != info->key_len || info->salt_len > 64)
        return -1;
#ifndef RP_CRYPTO_OPENSSL
    if (libcrypto)
        return -1;
#endif
    crypto_hmac_sha1_key(&h, salt, info->salt_len, libcrypto);
    crypto_hmac_sha1(&h, k->bytes, k->len, NULL, 0, -1, prk);
    crypto_hmac_sha1_free(&h);
    crypto_hmac_sha1_key(&h, prk, sizeof prk, libcrypto);
    size_t done = 0;
    for (int i = 1; done < info->key_len; i++) {
        if (i == 1)
            crypto_hmac_sha1(&h, label, label_len, NULL, 0, i, t);
        else
            crypto_hmac_sha1(&h, t, sizeof t, label, label_len, i, t);
        size_t n = info->key_len - done < sizeof t ? info->key_len - done : sizeof t;
        memcpy(out + done, t, n);
        done += n;
    }
    crypto_hmac_sha1_free(&h);
    mbedtls_platform_zeroize(prk, sizeof prk);
    mbedtls_platform_zeroize(t, sizeof t);
    return 0;
}

static int crypto_getrandom(uint8_t *p, size_t len)
{
    /* getrandom(2) with no flags blocks only until the pool is first seeded; requests up to
     * 256 bytes are never cut short, longer ones may be, and signals may interrupt. */
    while (len > 0) {
        ssize_t n = getrandom(p, len, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Salts are drawn for every connection and every UDP reply. They come from a small pool filled
 * by getrandom(2) 4 KiB at a time, one system call per 128 salts instead of one each. Bytes
 * leave the pool once and are wiped as they go. A forked child must never hand out its parent's
 * bytes (two workers would pick the same salts): a pthread_atfork() handler empties the pool in
 * every child. This pool and the cipher cache of crypto_openssl.c are the crypto module's only
 * static state. */
static struct {
    uint8_t bytes[4096];
    size_t left;          /* unused bytes, at the end of bytes[] */
    pthread_once_t once;
} crypto_pool = {.once = PTHREAD_ONCE_INIT};

static void crypto_pool_forget(void)
{
    mbedtls_platform_zeroize(crypto_pool.bytes, sizeof crypto_pool.bytes);
    crypto_pool.left = 0;
}

static void crypto_pool_register(void)
{
    pthread_atfork(NULL, NULL, crypto_pool_forget);
}

int crypto_random(void *buf, size_t len)
{
    pthread_once(&crypto_pool.once, crypto_pool_register);
    if (len > sizeof crypto_pool.bytes / 8)
        return crypto_getrandom(buf, len);
    if (crypto_pool.left < len) {
        if (crypto_getrandom(crypto_pool.bytes, sizeof crypto_pool.bytes) < 0)
            return -1;
        crypto_pool.left = sizeof crypto_pool.bytes;
    }
    uint8_t *from = crypto_pool.bytes + sizeof crypto_pool.bytes - crypto_pool.left;
    memcpy(buf, from, len);
    mbedtls_platform_zeroize(from, len);
    crypto_pool.left -= len;
    return 0;
}

struct crypto_aead *crypto_aead_new(enum crypto_method m, const uint8_t *key)
{
    const struct crypto_method_info *info = crypto_method_info(m);
    if (!info || !key)
        return NULL;
    return (struct crypto_aead *)backend_new(info->aead, key);
}

int crypto_aead_rekey(struct crypto_aead *a, const uint8_t *key)
{
    return backend_rekey((struct backend_aead *)a, key);
}

void crypto_aead_free(struct crypto_aead *a)
{
    backend_free((struct backend_aead *)a);
}

enum crypto_method crypto_aead_method(const struct crypto_aead *a)
{
    return backend_method((const struct backend_aead *)a);
}

int crypto_aead_seal(struct crypto_aead *a, const uint8_t nonce[CRYPTO_NONCE_LEN],
                     const uint8_t *in, size_t len, uint8_t *out, uint8_t *tag)
{
    /* SIP004 seals without associated data. */
    return backend_seal((struct backend_aead *)a, nonce, NULL, 0, in, len, out, tag);
}

int crypto_aead_open(struct crypto_aead *a, const uint8_t nonce[CRYPTO_NONCE_LEN],
                     const uint8_t *in, size_t len, uint8_t *out, const uint8_t *tag)
{
    if (backend_open((struct backend_aead *)a, nonce, NULL, 0, in, len, out, tag) == 0)
        return 0;
    if (len > 0)
        memset(out, 0, len);
    return -1;
}

/* SIP004: "the nonce is incremented by one as if it were an unsigned little-endian integer",
 * wrapping at 2^96 (a stream never gets near: 2^95 chunks). */
void crypto_nonce_increment(uint8_t nonce[CRYPTO_NONCE_LEN])
{
    for (size_t i = 0; i < CRYPTO_NONCE_LEN; i++)
        if (++nonce[i] != 0)
            break;
}

void crypto_wipe(void *buf, size_t len)
{
    mbedtls_platform_zeroize(buf, len);
}

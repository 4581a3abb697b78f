/* ss2022.c: the Shadowsocks 2022 codec, keys and TCP (SIP022 sections 2 and 3.1, SIP023 for the
 * identity headers). Pure functions over caller-owned bytes; the clock is an argument. The
 * TCP request is salt | identity headers | sealed fixed header | sealed variable header, the
 * response salt | sealed fixed header | sealed first payload; both run on struct ss_stream
 * (AEAD + little-endian nonce counter), which SIP022 inherits from SIP004 with a BLAKE3
 * subkey. */
#include "ss2022.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "blake3.h"
#include "rp_assert.h"
#include "rp_bytes.h"

static const struct ss2022_method_info ss2022_methods[SS2022_METHOD_COUNT] = {
    [SS2022_AES_128_GCM] = {"2022-blake3-aes-128-gcm", 16, CRYPTO_AES_128_GCM, true},
    [SS2022_AES_256_GCM] = {"2022-blake3-aes-256-gcm", 32, CRYPTO_AES_256_GCM, true},
    /* SIP023 defines identity headers for AES block ciphers only. */
    [SS2022_CHACHA20_POLY1305] = {"2022-blake3-chacha20-poly1305", 32, CRYPTO_CHACHA20_POLY1305,
                                  false},
};

static const char ss2022_session_context[] = "shadowsocks 2022 session subkey";
static const char ss2022_identity_context[] = "shadowsocks 2022 identity subkey";

int ss2022_method_of(enum crypto_method m)
{
    const struct crypto_method_info *info = crypto_method_info(m);
    return info && info->proto == CRYPTO_PROTO_SIP022 ? ss2022_method_by_name(info->name) : -1;
}

int ss2022_psk_from_key(struct ss2022_psk *psk, const struct crypto_key *key)
{
    int m = ss2022_method_of(key->method);
    if (m < 0 || key->len != ss2022_methods[m].key_len)
        return -1;
    psk->method = (enum ss2022_method)m;
    psk->len = key->len;
    memcpy(psk->bytes, key->bytes, key->len);
    return 0;
}

int ss2022_method_by_name(const char *name)
{
    if (!name)
        return -1;
    for (int m = 0; m < SS2022_METHOD_COUNT; m++)
        if (strcasecmp(name, ss2022_methods[m].name) == 0)
            return m;
    return -1;
}

const struct ss2022_method_info *ss2022_method_info(enum ss2022_method m)
{
    if ((unsigned)m >= SS2022_METHOD_COUNT)
        return NULL;
    return &ss2022_methods[m];
}

const char *ss2022_error_name(enum ss2022_error e)
{
    static const char *const names[] = {
        [SS2022_OK] = "ok",
        [SS2022_ERR_AUTH] = "authentication failed",
        [SS2022_ERR_TYPE] = "wrong header type",
        [SS2022_ERR_TIMESTAMP] = "timestamp out of window",
        [SS2022_ERR_LENGTH] = "length out of bounds",
        [SS2022_ERR_ADDRESS] = "bad address",
        [SS2022_ERR_PADDING] = "bad padding",
        [SS2022_ERR_SALT] = "request salt mismatch",
        [SS2022_ERR_USER] = "unknown user",
        [SS2022_ERR_SESSION] = "foreign session",
        [SS2022_ERR_INTERNAL] = "internal error",
    };
    if ((unsigned)e >= sizeof names / sizeof names[0])
        return "unknown";
    return names[e];
}

int ss2022_psk_from_base64(struct ss2022_psk *k, enum ss2022_method m, const char *b64)
{
    const struct ss2022_method_info *info = ss2022_method_info(m);

    if (!info || crypto_base64_decode_exact(b64, k->bytes, info->key_len) != 0)
        return -1;
    k->method = m;
    k->len = info->key_len;
    return 0;
}

void ss2022_base64_encode(const uint8_t *in, size_t len, char *out)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < len)
            v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < len)
            v |= in[i + 2];
        *out++ = alphabet[v >> 18];
        *out++ = alphabet[(v >> 12) & 63];
        *out++ = i + 1 < len ? alphabet[(v >> 6) & 63] : '=';
        *out++ = i + 2 < len ? alphabet[v & 63] : '=';
    }
    *out = '\0';
}

int ss2022_genkey(const char *method, char out_b64[SS2022_KEY_B64_MAX])
{
    int m = ss2022_method_by_name(method);
    uint8_t key[SS2022_MAX_KEY];

    if (m < 0)
        return -1;
    size_t len = ss2022_methods[m].key_len;
    if (crypto_random(key, len) != 0)
        return -1;
    ss2022_base64_encode(key, len, out_b64);
    crypto_wipe(key, sizeof key);
    return 0;
}

void ss2022_session_subkey(const struct ss2022_psk *key, const uint8_t *salt, size_t salt_len,
                           uint8_t *out)
{
    uint8_t material[2 * SS2022_MAX_KEY];
    RP_ASSERT(salt_len <= SS2022_MAX_KEY && key->len <= SS2022_MAX_KEY);
    memcpy(material, key->bytes, key->len);
    memcpy(material + key->len, salt, salt_len);
    blake3_derive_key(ss2022_session_context, material, key->len + salt_len, out, key->len);
    crypto_wipe(material, sizeof material);
}

void ss2022_psk_hash(const struct ss2022_psk *psk, uint8_t out[CRYPTO_BLOCK_LEN])
{
    blake3_hash(psk->bytes, psk->len, out, CRYPTO_BLOCK_LEN);
}

bool ss2022_timestamp_ok(uint64_t timestamp, uint64_t now)
{
    uint64_t diff = timestamp > now ? timestamp - now : now - timestamp;
    return diff <= SS2022_TIMESTAMP_WINDOW;
}

int ss2022_stream_init(struct ss_stream *s, const struct ss2022_psk *key, const uint8_t *salt)
{
    const struct ss2022_method_info *info = ss2022_method_info(key->method);
    uint8_t subkey[SS2022_MAX_KEY];
    int ret;

    if (!info || key->len != info->key_len)
        return -1;
    ss2022_session_subkey(key, salt, key->len, subkey);
    if (s->aead && crypto_aead_method(s->aead) != info->aead) {
        crypto_aead_free(s->aead);
        s->aead = NULL;
    }
    if (s->aead) {
        ret = crypto_aead_rekey(s->aead, subkey);
    } else {
        s->aead = crypto_aead_new(info->aead, subkey);
        ret = s->aead ? 0 : -1;
    }
    crypto_wipe(subkey, sizeof subkey);
    memset(s->nonce, 0, sizeof s->nonce);
    s->pending_len = SS_PENDING_NONE;
    s->chunk_max = SS2022_CHUNK_MAX;
    return ret;
}

/* Seals one chunk (len bytes at p, in place; the tag follows) with the stream's next nonce. */
static int stream_seal(struct ss_stream *s, uint8_t *p, size_t len)
{
    int ret = crypto_aead_seal(s->aead, s->nonce, p, len, p, p + len);
    crypto_nonce_increment(s->nonce);
    return ret;
}

/* Opens the chunk at in (len bytes and its tag) into out with the stream's next nonce. */
static int stream_open(struct ss_stream *s, const uint8_t *in, size_t len, uint8_t *out)
{
    int ret = crypto_aead_open(s->aead, s->nonce, in, len, out, in + len);
    crypto_nonce_increment(s->nonce);
    return ret;
}

/* SIP023 TCP: the identity header of layer i is AES(identity_subkey_i, hash(key_i+1)[0..16]),
 * identity_subkey_i = BLAKE3 derive_key("shadowsocks 2022 identity subkey", key_i || salt).
 * For a server, enc = 0 turns one identity header back into the next layer's PSK hash. */
static int identity_crypt(const struct ss2022_psk *key, const uint8_t *salt, const uint8_t *in,
                          uint8_t *out, int enc)
{
    uint8_t material[2 * SS2022_MAX_KEY], subkey[SS2022_MAX_KEY];
    memcpy(material, key->bytes, key->len);
    memcpy(material + key->len, salt, key->len);
    blake3_derive_key(ss2022_identity_context, material, 2 * key->len, subkey, key->len);
    struct crypto_block *b = crypto_block_new(subkey, key->len);
    int ret = -1;
    if (b)
        ret = enc ? crypto_block_encrypt(b, in, out) : crypto_block_decrypt(b, in, out);
    crypto_block_free(b);
    crypto_wipe(material, sizeof material);
    crypto_wipe(subkey, sizeof subkey);
    return ret;
}

/* Checks a request spec against the bounds of section 3.1.3 and SIP023. Returns the variable
 * header's length, or -1. */
static long request_spec_check(const struct ss2022_request_spec *spec, uint8_t *addr, int *addr_len)
{
    if (!spec->keys || spec->nkeys == 0 || !spec->salt || !spec->target)
        return -1;
    const struct ss2022_method_info *info = ss2022_method_info(spec->keys[0].method);
    if (!info || (spec->nkeys > 1 && !info->eih))
        return -1;
    for (size_t i = 0; i < spec->nkeys; i++)
        if (spec->keys[i].method != spec->keys[0].method || spec->keys[i].len != info->key_len)
            return -1;
    if (spec->padding_len > SS2022_MAX_PADDING ||
        (spec->padding_len == 0 && spec->payload_len == 0))
        return -1;
    *addr_len = netaddr_write_header(spec->target, addr, NETADDR_HEADER_MAX);
    if (*addr_len <= 0)
        return -1;
    size_t varlen = (size_t)*addr_len + 2 + spec->padding_len + spec->payload_len;
    return varlen > 0xFFFF ? -1 : (long)varlen;
}

long ss2022_request_build(struct ss_stream *s, const struct ss2022_request_spec *spec, uint8_t *out,
                          size_t cap)
{
    uint8_t addr[NETADDR_HEADER_MAX], hash[CRYPTO_BLOCK_LEN];
    int addr_len;
    long varlen = request_spec_check(spec, addr, &addr_len);
    if (varlen < 0)
        return -1;
    size_t key_len = spec->keys[0].len, ids = spec->nkeys - 1;
    size_t total = SS2022_REQUEST_SIZE(key_len, ids, (size_t)varlen);
    if (total > cap)
        return -1;

    uint8_t *p = out;
    memcpy(p, spec->salt, key_len);
    p += key_len;
    for (size_t i = 0; i < ids; i++, p += CRYPTO_BLOCK_LEN) {
        ss2022_psk_hash(&spec->keys[i + 1], hash);
        if (identity_crypt(&spec->keys[i], spec->salt, hash, p, 1) != 0)
            return -1;
    }
    if (ss2022_stream_init(s, &spec->keys[ids], spec->salt) != 0)
        return -1;
    p[0] = SS2022_TYPE_CLIENT;
    rp_put_be64(p + 1, spec->timestamp);
    rp_put_be16(p + 9, (uint16_t)varlen);
    if (stream_seal(s, p, SS2022_REQUEST_FIXED) != 0)
        return -1;
    p += SS2022_REQUEST_FIXED + CRYPTO_TAG_LEN;

    uint8_t *var = p;
    memcpy(p, addr, (size_t)addr_len);
    p += addr_len;
    rp_put_be16(p, (uint16_t)spec->padding_len);
    p += 2;
    memset(p, 0, spec->padding_len); /* the content of padding is not specified; it is sealed */
    p += spec->padding_len;
    if (spec->payload_len)
        memcpy(p, spec->payload, spec->payload_len);
    if (stream_seal(s, var, (size_t)varlen) != 0)
        return -1;
    RP_ASSERT((size_t)(var + varlen + CRYPTO_TAG_LEN - out) == total);
    return (long)total;
}

/* The variable header (section 3.1.3): address, padding length, padding, initial payload. */
static int request_parse_variable(const uint8_t *var, size_t varlen, struct ss2022_request *r)
{
    int addr_len = netaddr_parse_header(var, varlen, &r->target);
    if (addr_len <= 0) {
        r->error = SS2022_ERR_ADDRESS;
        return SS2022_BAD;
    }
    size_t at = (size_t)addr_len;
    if (varlen - at < 2) {
        r->error = SS2022_ERR_LENGTH;
        return SS2022_BAD;
    }
    r->padding_len = rp_get_be16(var + at);
    at += 2;
    if (r->padding_len > SS2022_MAX_PADDING || r->padding_len > varlen - at) {
        r->error = r->padding_len > SS2022_MAX_PADDING ? SS2022_ERR_PADDING : SS2022_ERR_LENGTH;
        return SS2022_BAD;
    }
    at += r->padding_len;
    r->payload = var + at;
    r->payload_len = varlen - at;
    /* "Servers MUST reject the request if the variable-length header chunk does not contain
     * payload and the padding length is 0." */
    if (r->padding_len == 0 && r->payload_len == 0) {
        r->error = SS2022_ERR_PADDING;
        return SS2022_BAD;
    }
    return SS2022_DONE;
}

static int request_bad(struct ss2022_request *r, enum ss2022_error e)
{
    r->error = e;
    return SS2022_BAD;
}

/* Finds the key the request stream runs on: the PSK, or the user an identity header names. */
static int request_key(const struct ss2022_server_keys *keys, const uint8_t *buf,
                       struct ss2022_request *r)
{
    uint8_t hash[CRYPTO_BLOCK_LEN];
    r->key = keys->psk;
    r->user = NULL;
    if (!keys->find_user)
        return SS2022_DONE;
    if (identity_crypt(keys->psk, buf, buf + keys->psk->len, hash, 0) != 0)
        return request_bad(r, SS2022_ERR_INTERNAL);
    r->key = keys->find_user(keys->ctx, hash, &r->user);
    if (!r->key || r->key->method != keys->psk->method || r->key->len != keys->psk->len)
        return request_bad(r, SS2022_ERR_USER);
    return SS2022_DONE;
}

int ss2022_request_parse(struct ss_stream *s, const struct ss2022_server_keys *keys, uint8_t *buf,
                         size_t len, uint64_t now, struct ss2022_request *r, size_t *consumed)
{
    uint8_t fixed[SS2022_REQUEST_FIXED];
    size_t key_len = keys->psk->len;
    size_t head = key_len + (keys->find_user ? CRYPTO_BLOCK_LEN : 0);

    memset(r, 0, sizeof *r);
    if (len < head + SS2022_REQUEST_FIXED + CRYPTO_TAG_LEN)
        return SS2022_NEED_MORE;
    if (request_key(keys, buf, r) != SS2022_DONE)
        return SS2022_BAD;
    if (ss2022_stream_init(s, r->key, buf) != 0)
        return request_bad(r, SS2022_ERR_INTERNAL);
    if (stream_open(s, buf + head, SS2022_REQUEST_FIXED, fixed) != 0)
        return request_bad(r, SS2022_ERR_AUTH);
    if (fixed[0] != SS2022_TYPE_CLIENT)
        return request_bad(r, SS2022_ERR_TYPE);
    r->timestamp = rp_get_be64(fixed + 1);
    if (!ss2022_timestamp_ok(r->timestamp, now))
        return request_bad(r, SS2022_ERR_TIMESTAMP);
    size_t varlen = rp_get_be16(fixed + 9);
    if (varlen == 0)
        return request_bad(r, SS2022_ERR_LENGTH);
    size_t total = head + SS2022_REQUEST_FIXED + CRYPTO_TAG_LEN + varlen + CRYPTO_TAG_LEN;
    if (len < total)
        return SS2022_NEED_MORE;
    uint8_t *var = buf + head + SS2022_REQUEST_FIXED + CRYPTO_TAG_LEN;
    if (stream_open(s, var, varlen, var) != 0)
        return request_bad(r, SS2022_ERR_AUTH);
    if (request_parse_variable(var, varlen, r) != SS2022_DONE)
        return SS2022_BAD;
    memcpy(r->salt, buf, key_len);
    r->salt_len = key_len;
    *consumed = total;
    return SS2022_DONE;
}

long ss2022_response_head(struct ss_stream *s, const struct ss2022_psk *key, const uint8_t *salt,
                          const uint8_t *request_salt, uint64_t timestamp, size_t payload_len,
                          uint8_t *out)
{
    size_t key_len = key->len, fixed_len = 1 + 8 + key_len + 2;

    if (payload_len == 0 || payload_len > SS2022_CHUNK_MAX)
        return -1;
    if (ss2022_stream_init(s, key, salt) != 0)
        return -1;
    memcpy(out, salt, key_len);
    uint8_t *p = out + key_len;
    p[0] = SS2022_TYPE_SERVER;
    rp_put_be64(p + 1, timestamp);
    memcpy(p + 9, request_salt, key_len);
    rp_put_be16(p + 9 + key_len, (uint16_t)payload_len);
    if (stream_seal(s, p, fixed_len) != 0)
        return -1;
    return (long)SS2022_RESPONSE_HEAD(key_len);
}

int ss2022_stream_seal_payload(struct ss_stream *s, uint8_t *payload, size_t len)
{
    return stream_seal(s, payload, len);
}

long ss2022_response_build(struct ss_stream *s, const struct ss2022_psk *key, const uint8_t *salt,
                           const uint8_t *request_salt, uint64_t timestamp, const uint8_t *payload,
                           size_t payload_len, uint8_t *out, size_t cap)
{
    size_t head = SS2022_RESPONSE_HEAD(key->len);
    size_t total = head + payload_len + CRYPTO_TAG_LEN;

    if (total > cap)
        return -1;
    if (ss2022_response_head(s, key, salt, request_salt, timestamp, payload_len, out) < 0)
        return -1;
    memcpy(out + head, payload, payload_len);
    if (stream_seal(s, out + head, payload_len) != 0)
        return -1;
    return (long)total;
}

static int response_bad(struct ss2022_response *r, enum ss2022_error e)
{
    r->error = e;
    return SS2022_BAD;
}

int ss2022_response_parse(struct ss_stream *s, const struct ss2022_psk *key,
                          const uint8_t *request_salt, uint8_t *buf, size_t len, uint64_t now,
                          struct ss2022_response *r, size_t *consumed)
{
    uint8_t fixed[1 + 8 + SS2022_MAX_KEY + 2];
    size_t key_len = key->len, fixed_len = 1 + 8 + key_len + 2;
    size_t head = key_len + fixed_len + CRYPTO_TAG_LEN;

    memset(r, 0, sizeof *r);
    if (len < head)
        return SS2022_NEED_MORE;
    if (ss2022_stream_init(s, key, buf) != 0)
        return response_bad(r, SS2022_ERR_INTERNAL);
    if (stream_open(s, buf + key_len, fixed_len, fixed) != 0)
        return response_bad(r, SS2022_ERR_AUTH);
    if (fixed[0] != SS2022_TYPE_SERVER)
        return response_bad(r, SS2022_ERR_TYPE);
    r->timestamp = rp_get_be64(fixed + 1);
    if (!ss2022_timestamp_ok(r->timestamp, now))
        return response_bad(r, SS2022_ERR_TIMESTAMP);
    /* Section 3.1.3: "The client MUST check this field ... against the request salt." */
    if (memcmp(fixed + 9, request_salt, key_len) != 0)
        return response_bad(r, SS2022_ERR_SALT);
    size_t plen = rp_get_be16(fixed + 9 + key_len);
    if (plen == 0)
        return response_bad(r, SS2022_ERR_LENGTH);
    if (len < head + plen + CRYPTO_TAG_LEN)
        return SS2022_NEED_MORE;
    if (stream_open(s, buf + head, plen, buf + head) != 0)
        return response_bad(r, SS2022_ERR_AUTH);
    r->payload = buf + head;
    r->payload_len = plen;
    *consumed = head + plen + CRYPTO_TAG_LEN;
    return SS2022_DONE;
}

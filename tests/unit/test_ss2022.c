/* test_ss2022.c: the SIP022 codec, keys and TCP. Method names and PSK lengths, key generation,
 * the session subkey against an independent BLAKE3 (b3sum, recorded), request and response
 * round trips for every method and with an identity header, a request split at every byte,
 * every bound of section 3.1.3, a timestamp 31 s off, a wrong echoed salt, an unknown user. */
#include <stdint.h>
#include <stdlib.h>

#include "ss2022.h"
#include "unit.h"

#define NOW 1700000000ull
#define SUBKEY_32 "374fca03e4dae7f998fd7e59c1edfcc8e3197f4db1c19ca1671be3b66a92ddda"
#define SUBKEY_16 "bc32fb8d5205f7b84f9691dfb9f04ff3"

static struct ss2022_psk test_key(enum ss2022_method m, uint8_t seed)
{
    struct ss2022_psk k = {.method = m, .len = ss2022_method_info(m)->key_len};
    for (size_t i = 0; i < k.len; i++)
        k.bytes[i] = (uint8_t)(seed + i);
    return k;
}

TEST(test_ss2022_method_names_case_insensitive)
{
    CHECK_INT(ss2022_method_by_name("2022-blake3-aes-128-gcm"), SS2022_AES_128_GCM);
    CHECK_INT(ss2022_method_by_name("2022-BLAKE3-AES-256-GCM"), SS2022_AES_256_GCM);
    CHECK_INT(ss2022_method_by_name("2022-blake3-chacha20-poly1305"), SS2022_CHACHA20_POLY1305);
    CHECK_INT(ss2022_method_by_name("aes-128-gcm"), -1);
    CHECK_INT(ss2022_method_by_name(NULL), -1);
    CHECK_INT(ss2022_method_info(SS2022_AES_128_GCM)->key_len, 16);
    CHECK_INT(ss2022_method_info(SS2022_CHACHA20_POLY1305)->key_len, 32);
    CHECK(!ss2022_method_info(SS2022_CHACHA20_POLY1305)->eih);
    CHECK(ss2022_method_info(SS2022_METHOD_COUNT) == NULL);
}

TEST(test_ss2022_psk_base64_exact_length)
{
    struct ss2022_psk k;
    /* 16 bytes 00..0f */
    CHECK_INT(ss2022_psk_from_base64(&k, SS2022_AES_128_GCM, "AAECAwQFBgcICQoLDA0ODw=="), 0);
    CHECK_INT(k.len, 16);
    CHECK_INT(k.bytes[15], 15);
    CHECK_INT(ss2022_psk_from_base64(&k, SS2022_AES_256_GCM, "AAECAwQFBgcICQoLDA0ODw=="), -1);
    /* 17 bytes, 15 bytes, not base64 */
    CHECK_INT(ss2022_psk_from_base64(&k, SS2022_AES_128_GCM, "AAECAwQFBgcICQoLDA0ODxA="), -1);
    CHECK_INT(ss2022_psk_from_base64(&k, SS2022_AES_128_GCM, "AAECAwQFBgcICQoLDA0O"), -1);
    CHECK_INT(ss2022_psk_from_base64(&k, SS2022_AES_128_GCM, "AAECAwQFBgcICQoLDA0OD!=="), -1);
    /* 33 bytes for a 32-byte method */
    CHECK_INT(ss2022_psk_from_base64(&k, SS2022_AES_256_GCM,
                                     "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8g"),
              -1);
}

TEST(test_ss2022_genkey_prints_a_key_of_the_method)
{
    char a[SS2022_KEY_B64_MAX], b[SS2022_KEY_B64_MAX];
    struct ss2022_psk k;
    for (int m = 0; m < SS2022_METHOD_COUNT; m++) {
        const struct ss2022_method_info *info = ss2022_method_info((enum ss2022_method)m);
        CHECK_INT(ss2022_genkey(info->name, a), 0);
        CHECK_INT(strlen(a), info->key_len == 16 ? 24 : 44);
        CHECK_INT(ss2022_psk_from_base64(&k, (enum ss2022_method)m, a), 0);
        CHECK_INT(ss2022_genkey(info->name, b), 0);
        CHECK(strcmp(a, b) != 0);
    }
    CHECK_INT(ss2022_genkey("aes-256-gcm", a), -1);
}

/* Recorded with `printf KEY||SALT | b3sum --derive-key "shadowsocks 2022 session subkey"`
 * (key 00..1f, salt 20..3f; and the 16-byte halves). */
TEST(test_ss2022_session_subkey_matches_b3sum)
{
    struct ss2022_psk k32 = test_key(SS2022_AES_256_GCM, 0), k16 = test_key(SS2022_AES_128_GCM, 0);
    uint8_t salt[32], out[32], want[32];
    for (int i = 0; i < 32; i++)
        salt[i] = (uint8_t)(0x20 + i);
    ss2022_session_subkey(&k32, salt, 32, out);
    unit_hex(SUBKEY_32, want, 32);
    CHECK_MEM(out, want, 32);
    uint8_t salt16[16];
    for (int i = 0; i < 16; i++)
        salt16[i] = (uint8_t)(0x10 + i);
    ss2022_session_subkey(&k16, salt16, 16, out);
    unit_hex(SUBKEY_16, want, 16);
    CHECK_MEM(out, want, 16);
}

TEST(test_ss2022_timestamp_window_is_30_seconds)
{
    CHECK(ss2022_timestamp_ok(NOW, NOW));
    CHECK(ss2022_timestamp_ok(NOW - 30, NOW));
    CHECK(ss2022_timestamp_ok(NOW + 30, NOW));
    CHECK(!ss2022_timestamp_ok(NOW - 31, NOW));
    CHECK(!ss2022_timestamp_ok(NOW + 31, NOW));
    CHECK(!ss2022_timestamp_ok(0, NOW));
}

/* A request as a client builds it, with its keys. */
struct built {
    uint8_t wire[2048];
    long len;
    struct ss2022_psk keys[2];
    uint8_t salt[32];
};

static void build_request(struct built *b, enum ss2022_method m, size_t nkeys, uint64_t ts,
                          size_t padding, const char *payload)
{
    struct netaddr_target t;
    struct ss_stream s = {0};
    b->keys[0] = test_key(m, 1);
    b->keys[1] = test_key(m, 101);
    for (size_t i = 0; i < sizeof b->salt; i++)
        b->salt[i] = (uint8_t)(0xA0 + i);
    netaddr_target_from_string("example.com:443", &t);
    struct ss2022_request_spec spec = {b->keys,
                                       nkeys,
                                       b->salt,
                                       ts,
                                       &t,
                                       padding,
                                       (const uint8_t *)payload,
                                       payload ? strlen(payload) : 0};
    b->len = ss2022_request_build(&s, &spec, b->wire, sizeof b->wire);
    ss_stream_free(&s);
}

static const struct ss2022_psk *find_user_101(void *ctx, const uint8_t hash[16], void **user)
{
    const struct ss2022_psk *k = ctx;
    uint8_t want[16];
    ss2022_psk_hash(k, want);
    if (memcmp(want, hash, 16) != 0)
        return NULL;
    *user = (void *)"alice";
    return k;
}

static int parse_request(struct built *b, size_t nkeys, size_t len, struct ss2022_request *r,
                         size_t *consumed)
{
    struct ss_stream s = {0};
    struct ss2022_server_keys keys = {&b->keys[0], NULL, NULL};
    if (nkeys == 2) {
        keys.find_user = find_user_101;
        keys.ctx = &b->keys[1];
    }
    int ret = ss2022_request_parse(&s, &keys, b->wire, len, NOW, r, consumed);
    ss_stream_free(&s);
    return ret;
}

TEST(test_ss2022_request_round_trip_every_method_and_identity)
{
    for (int m = 0; m < SS2022_METHOD_COUNT; m++) {
        for (size_t nkeys = 1; nkeys <= 2; nkeys++) {
            struct built b;
            struct ss2022_request r;
            size_t consumed = 0;
            build_request(&b, (enum ss2022_method)m, nkeys, NOW - 5, 7, "hello");
            if (nkeys == 2 && m == SS2022_CHACHA20_POLY1305) {
                CHECK_INT(b.len, -1); /* SIP023 is for AES methods */
                continue;
            }
            size_t key_len = b.keys[0].len;
            CHECK_INT(b.len, SS2022_REQUEST_SIZE(key_len, nkeys - 1, 15 + 2 + 7 + 5));
            CHECK_MEM(b.wire, b.salt, key_len);
            CHECK_INT(parse_request(&b, nkeys, (size_t)b.len, &r, &consumed), SS2022_DONE);
            CHECK_INT(consumed, b.len);
            CHECK_STR(r.target.host, "example.com");
            CHECK_INT(r.target.port, 443);
            CHECK_INT(r.timestamp, NOW - 5);
            CHECK_INT(r.padding_len, 7);
            CHECK_INT(r.payload_len, 5);
            CHECK_MEM(r.payload, "hello", 5);
            CHECK_MEM(r.salt, b.salt, key_len);
            CHECK(r.key == &b.keys[nkeys - 1]);
            if (nkeys == 2)
                CHECK_STR((const char *)r.user, "alice");
        }
    }
}

/* Every prefix of a request is NEED_MORE and leaves the bytes alone; the whole is DONE. */
TEST(test_ss2022_request_split_at_every_byte)
{
    for (size_t nkeys = 1; nkeys <= 2; nkeys++) {
        struct built b;
        uint8_t copy[2048];
        struct ss2022_request r;
        size_t consumed;
        build_request(&b, SS2022_AES_256_GCM, nkeys, NOW, 0, "payload bytes");
        CHECK(b.len > 0);
        memcpy(copy, b.wire, (size_t)b.len);
        for (size_t cut = 0; cut < (size_t)b.len; cut++) {
            if (parse_request(&b, nkeys, cut, &r, &consumed) != SS2022_NEED_MORE)
                unit_fail(__FILE__, __LINE__, "prefix of %zu bytes not NEED_MORE", cut);
            CHECK_MEM(b.wire, copy, (size_t)b.len);
        }
        CHECK_INT(parse_request(&b, nkeys, (size_t)b.len, &r, &consumed), SS2022_DONE);
        CHECK_INT(r.payload_len, 13);
    }
}

TEST(test_ss2022_request_refuses_timestamp_31_seconds_off)
{
    struct built b;
    struct ss2022_request r;
    size_t consumed;
    build_request(&b, SS2022_AES_128_GCM, 1, NOW - 31, 1, "x");
    CHECK_INT(parse_request(&b, 1, (size_t)b.len, &r, &consumed), SS2022_BAD);
    CHECK_INT(r.error, SS2022_ERR_TIMESTAMP);
    build_request(&b, SS2022_AES_128_GCM, 1, NOW + 31, 1, "x");
    CHECK_INT(parse_request(&b, 1, (size_t)b.len, &r, &consumed), SS2022_BAD);
    CHECK_INT(r.error, SS2022_ERR_TIMESTAMP);
    build_request(&b, SS2022_AES_128_GCM, 1, NOW + 30, 1, "x");
    CHECK_INT(parse_request(&b, 1, (size_t)b.len, &r, &consumed), SS2022_DONE);
}

TEST(test_ss2022_request_build_enforces_bounds)
{
    struct built b;
    build_request(&b, SS2022_AES_128_GCM, 1, NOW, 900, "x");
    CHECK(b.len > 0);
    build_request(&b, SS2022_AES_128_GCM, 1, NOW, 901, "x");
    CHECK_INT(b.len, -1);
    build_request(&b, SS2022_AES_128_GCM, 1, NOW, 0, NULL); /* neither padding nor payload */
    CHECK_INT(b.len, -1);
    build_request(&b, SS2022_AES_128_GCM, 1, NOW, 1, NULL); /* padding alone is enough */
    CHECK(b.len > 0);
}

/* Seals a hand-made variable header behind a valid fixed header, to reach the server checks a
 * correct client never trips. */
static long forge_request(struct built *b, const uint8_t *var, size_t varlen, int type)
{
    struct ss_stream s = {0};
    b->keys[0] = test_key(SS2022_AES_128_GCM, 1);
    memset(b->salt, 0x55, sizeof b->salt);
    memcpy(b->wire, b->salt, 16);
    if (ss2022_stream_init(&s, &b->keys[0], b->salt) != 0)
        return -1;
    uint8_t *p = b->wire + 16, nonce[CRYPTO_NONCE_LEN] = {0};
    uint64_t ts = NOW;
    p[0] = (uint8_t)type;
    for (int i = 0; i < 8; i++)
        p[1 + i] = (uint8_t)(ts >> (56 - 8 * i));
    p[9] = (uint8_t)(varlen >> 8);
    p[10] = (uint8_t)varlen;
    crypto_aead_seal(s.aead, nonce, p, 11, p, p + 11);
    crypto_nonce_increment(nonce);
    p += 27;
    memcpy(p, var, varlen);
    crypto_aead_seal(s.aead, nonce, p, varlen, p, p + varlen);
    ss_stream_free(&s);
    return (long)(16 + 27 + varlen + 16);
}

TEST(test_ss2022_request_parse_refuses_every_bound)
{
    /* ATYP 1 127.0.0.1:80 */
    static const uint8_t addr[] = {1, 127, 0, 0, 1, 0, 80};
    struct {
        uint8_t var[1000];
        size_t len;
        int type;
        enum ss2022_error want;
    } cases[] = {
        {{1, 127, 0, 0, 1, 0, 80, 0, 0}, 9, 0, SS2022_ERR_PADDING},    /* no padding, no data */
        {{1, 127, 0, 0, 1, 0, 80, 0}, 8, 0, SS2022_ERR_LENGTH},        /* padding length cut */
        {{1, 127, 0, 0, 1, 0, 80, 0, 5, 0}, 10, 0, SS2022_ERR_LENGTH}, /* padding past end */
        {{1, 127, 0, 0}, 4, 0, SS2022_ERR_ADDRESS},                    /* address cut */
        {{9, 1, 2, 3}, 4, 0, SS2022_ERR_ADDRESS},                      /* unknown ATYP */
        {{1, 127, 0, 0, 1, 0, 80, 0, 1, 0}, 10, 1, SS2022_ERR_TYPE},   /* server type */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct built b;
        struct ss2022_request r;
        size_t consumed;
        long len = forge_request(&b, cases[i].var, cases[i].len, cases[i].type);
        CHECK(len > 0);
        CHECK_INT(parse_request(&b, 1, (size_t)len, &r, &consumed), SS2022_BAD);
        CHECK_INT(r.error, cases[i].want);
    }
    /* 901 bytes of padding */
    struct built b;
    struct ss2022_request r;
    size_t consumed;
    uint8_t var[7 + 2 + 901] = {0};
    memcpy(var, addr, 7);
    var[7] = 901 >> 8;
    var[8] = 901 & 0xFF;
    long len = forge_request(&b, var, sizeof var, 0);
    CHECK_INT(parse_request(&b, 1, (size_t)len, &r, &consumed), SS2022_BAD);
    CHECK_INT(r.error, SS2022_ERR_PADDING);
    var[7] = 900 >> 8;
    var[8] = 900 & 0xFF;
    len = forge_request(&b, var, sizeof var - 1, 0);
    CHECK_INT(parse_request(&b, 1, (size_t)len, &r, &consumed), SS2022_DONE);
    /* A zero length field: the variable header must hold at least the address. */
    len = forge_request(&b, var, 0, 0);
    CHECK_INT(parse_request(&b, 1, (size_t)len, &r, &consumed), SS2022_BAD);
    CHECK_INT(r.error, SS2022_ERR_LENGTH);
}

TEST(test_ss2022_request_wrong_key_or_unknown_user)
{
    struct built b;
    struct ss2022_request r;
    size_t consumed;
    build_request(&b, SS2022_AES_256_GCM, 2, NOW, 3, "x");
    b.keys[1].bytes[0] ^= 1; /* the server knows another user */
    CHECK_INT(parse_request(&b, 2, (size_t)b.len, &r, &consumed), SS2022_BAD);
    CHECK_INT(r.error, SS2022_ERR_USER);
    build_request(&b, SS2022_AES_256_GCM, 1, NOW, 3, "x");
    b.keys[0].bytes[3] ^= 1;
    CHECK_INT(parse_request(&b, 1, (size_t)b.len, &r, &consumed), SS2022_BAD);
    CHECK_INT(r.error, SS2022_ERR_AUTH);
}

static long make_response(uint8_t *out, size_t cap, const struct ss2022_psk *k,
                          const uint8_t *req_salt, uint64_t ts, const char *payload)
{
    struct ss_stream s = {0};
    uint8_t salt[32];
    memset(salt, 0x77, sizeof salt);
    long n = ss2022_response_build(&s, k, salt, req_salt, ts, (const uint8_t *)payload,
                                   strlen(payload), out, cap);
    ss_stream_free(&s);
    return n;
}

TEST(test_ss2022_response_round_trip_split_and_checks)
{
    for (int m = 0; m < SS2022_METHOD_COUNT; m++) {
        struct ss2022_psk k = test_key((enum ss2022_method)m, 9);
        uint8_t req_salt[32], wire[512], copy[512];
        struct ss2022_response r;
        struct ss_stream s = {0};
        size_t consumed;
        memset(req_salt, 0x42, sizeof req_salt);
        long n = make_response(wire, sizeof wire, &k, req_salt, NOW, "answer");
        CHECK_INT(n, k.len + 1 + 8 + k.len + 2 + 16 + 6 + 16);
        memcpy(copy, wire, (size_t)n);
        for (size_t cut = 0; cut < (size_t)n; cut++) {
            CHECK_INT(ss2022_response_parse(&s, &k, req_salt, wire, cut, NOW, &r, &consumed),
                      SS2022_NEED_MORE);
            CHECK_MEM(wire, copy, (size_t)n);
        }
        CHECK_INT(ss2022_response_parse(&s, &k, req_salt, wire, (size_t)n, NOW, &r, &consumed),
                  SS2022_DONE);
        CHECK_INT(consumed, n);
        CHECK_INT(r.payload_len, 6);
        CHECK_MEM(r.payload, "answer", 6);
        /* The echoed salt must equal the request salt, to the last byte. */
        req_salt[k.len - 1] ^= 1;
        memcpy(wire, copy, (size_t)n);
        CHECK_INT(ss2022_response_parse(&s, &k, req_salt, wire, (size_t)n, NOW, &r, &consumed),
                  SS2022_BAD);
        CHECK_INT(r.error, SS2022_ERR_SALT);
        req_salt[k.len - 1] ^= 1;
        n = make_response(wire, sizeof wire, &k, req_salt, NOW - 31, "answer");
        CHECK_INT(ss2022_response_parse(&s, &k, req_salt, wire, (size_t)n, NOW, &r, &consumed),
                  SS2022_BAD);
        CHECK_INT(r.error, SS2022_ERR_TIMESTAMP);
        ss_stream_free(&s);
    }
}

TEST(test_ss2022_response_build_bounds)
{
    struct ss2022_psk k = test_key(SS2022_AES_128_GCM, 9);
    struct ss_stream s = {0};
    static uint8_t payload[0x10000], out[0x10000 + 200];
    uint8_t req_salt[16] = {0}, salt[16] = {0};
    CHECK_INT(ss2022_response_build(&s, &k, salt, req_salt, NOW, payload, 0, out, sizeof out), -1);
    CHECK(ss2022_response_build(&s, &k, salt, req_salt, NOW, payload, 0xFFFF, out, sizeof out) > 0);
    CHECK_INT(ss2022_response_build(&s, &k, salt, req_salt, NOW, payload, 0x10000, out, sizeof out),
              -1);
    ss_stream_free(&s);
}

/* test_ss_packet.c: SIP004 datagrams. Packets captured from the real ss-local (SOCKS5 UDP
 * ASSOCIATE through shadowsocks-libev 3.3.5) open to exactly the address header + data sent;
 * our packets open with nothing but the primitives (subkey of their salt, zero nonce); round
 * trips; truncated, tampered and wrong-key packets are refused. */
#include <stdint.h>
#include <stdlib.h>

#include "crypto.h"
#include "ss_packet.h"
#include "unit.h"

/* ss-local -u -s 127.0.0.1 -p P -l L -k PASSWORD -m METHOD; a SOCKS5 UDP datagram to addr with
 * the data below; what reached the python3 socket standing in for the server. */
struct capture {
    enum crypto_method method;
    const char *password;
    const char *plain; /* address header + data, as ss-local sealed it */
    const char *data;
    const char *packet;
};

static const struct capture captures[] = {
    {CRYPTO_AES_128_GCM, "test-password-128", "01c00002010050", "udp datagram 128",
     "26d7fa6998bcd07cb340dcd3504cf9fb9ac1f4afc36858482aa0f3f4c1ab92daa10ce6ee8b940d9e16f23843"
     "0bef95967f1625eef28418"},
    {CRYPTO_AES_192_GCM, "test-password-192", "0420010db80000000000000000000000011f90",
     "udp datagram 192",
     "ef9d8fdee03a0a9e4485b131ce71f904404fd55db0b6c2c5a534296ff371d50ddf2d5c12afae5f2e15cc01fd"
     "fccf1bf03636b3dfc13acbf3050235719cb02d0d642c4876f70155d2f6612d"},
    {CRYPTO_AES_256_GCM, "test-password-256", "030b6578616d706c652e636f6d01bb", "udp datagram 256",
     "ade2268293dad1024efea8fc9b97792c791081c98cac0115c4df8150dff233702b1cc82011700c04442984e1"
     "0055b513c1ce5649f42ef1f85151900ef427f1333877fdbaa70403429c91aeabf0b0ba"},
    {CRYPTO_CHACHA20_POLY1305, "test-password-chacha", "030f7777772e6578616d706c652e6f72670016",
     "udp datagram chacha",
     "9ee2252b2e1b1f62c833d1fa7596894159255ca4208ec609931dae61d974f96ee1f8d8312e78d374680ce0f0"
     "b9fc4a63f846923b859a7f24467dbcdeac524a312ca8f1159cf23477b955c6014ca4997e8ba67944851e"},
};
#define CAPTURE_COUNT (sizeof captures / sizeof captures[0])

static void check_capture(const struct capture *c)
{
    struct crypto_key key;
    struct ss_packet_ctx ctx;
    uint8_t pkt[256], want[128], *plain = NULL;
    long pkt_len = unit_hex(c->packet, pkt, sizeof pkt);
    long addr_len = unit_hex(c->plain, want, sizeof want);
    size_t data_len = strlen(c->data);

    memcpy(want + addr_len, c->data, data_len);
    CHECK_INT(crypto_key_from_password(&key, c->method, c->password), 0);
    CHECK_INT(ss_packet_ctx_init(&ctx, &key), 0);
    CHECK_INT(pkt_len, (size_t)addr_len + data_len + ss_packet_overhead(&key));
    CHECK_INT(ss_packet_open(&ctx, pkt, (size_t)pkt_len, &plain), (size_t)addr_len + data_len);
    CHECK(plain == pkt + crypto_method_info(c->method)->salt_len);
    CHECK_MEM(plain, want, (size_t)addr_len + data_len);
    ss_packet_ctx_free(&ctx);
}

TEST(test_ss_packet_opens_ss_local_aes_128_gcm)
{
    check_capture(&captures[0]);
}

TEST(test_ss_packet_opens_ss_local_aes_192_gcm)
{
    check_capture(&captures[1]);
}

TEST(test_ss_packet_opens_ss_local_aes_256_gcm)
{
    check_capture(&captures[2]);
}

TEST(test_ss_packet_opens_ss_local_chacha20_ietf_poly1305)
{
    check_capture(&captures[3]);
}

/* One context serves packets of different salts in any order: it is re-keyed per packet. */
TEST(test_ss_packet_context_rekeys_per_packet)
{
    struct crypto_key key;
    struct ss_packet_ctx ctx;
    uint8_t orig[256], a[256], b[256], *plain;
    long a_len = unit_hex(captures[3].packet, orig, sizeof orig);
    CHECK_INT(crypto_key_from_password(&key, CRYPTO_CHACHA20_POLY1305, captures[3].password), 0);
    CHECK_INT(ss_packet_ctx_init(&ctx, &key), 0);
    for (int i = 0; i < 3; i++) {
        uint8_t msg[40];
        memcpy(msg, "\x01\x7f\0\0\x01\0\x35", 7);
        memset(msg + 7, 'a' + i, sizeof msg - 7);
        long n = ss_packet_seal(&ctx, msg, sizeof msg, b);
        CHECK_INT(n, sizeof msg + 48);
        memcpy(a, orig, (size_t)a_len); /* open works in place: a fresh copy each time */
        CHECK_INT(ss_packet_open(&ctx, a, (size_t)a_len, &plain), 38);
        CHECK_MEM(plain + 19, "udp datagram chacha", 19);
        CHECK_INT(ss_packet_open(&ctx, b, (size_t)n, &plain), sizeof msg);
        CHECK_MEM(plain, msg, sizeof msg);
    }
    ss_packet_ctx_free(&ctx);
    CHECK(ctx.aead == NULL);
}

TEST(test_ss_packet_overhead)
{
    static const size_t want[CRYPTO_SIP004_COUNT] = {32, 40, 48, 48};
    for (int m = 0; m < CRYPTO_SIP004_COUNT; m++) {
        struct crypto_key key;
        CHECK_INT(crypto_key_from_password(&key, (enum crypto_method)m, "x"), 0);
        CHECK_INT(ss_packet_overhead(&key), want[m]);
    }
}

/* Our packet is [salt][AEAD(subkey(salt), nonce 0, payload)][tag]: checked with the crypto
 * primitives alone, then through ss_packet_open. */
TEST(test_ss_packet_seal_layout)
{
    for (int m = 0; m < CRYPTO_SIP004_COUNT; m++) {
        struct crypto_key key;
        struct ss_packet_ctx ctx;
        static const uint8_t msg[] = "\x03\x0bexample.com\x00\x35query";
        uint8_t pkt[128], copy[128], subkey[32], nonce[12] = {0}, plain[64];
        size_t len = sizeof msg - 1, salt_len = crypto_method_info((enum crypto_method)m)->salt_len;
        CHECK_INT(crypto_key_from_password(&key, (enum crypto_method)m, "layout"), 0);
        CHECK_INT(ss_packet_ctx_init(&ctx, &key), 0);
        long n = ss_packet_seal(&ctx, msg, len, pkt);
        CHECK_INT(n, len + salt_len + 16);
        CHECK_INT(crypto_subkey(&key, pkt, subkey), 0);
        struct crypto_aead *a = crypto_aead_new((enum crypto_method)m, subkey);
        CHECK(a != NULL);
        CHECK_INT(crypto_aead_open(a, nonce, pkt + salt_len, len, plain, pkt + salt_len + len), 0);
        CHECK_MEM(plain, msg, len);
        crypto_aead_free(a);
        memcpy(copy, pkt, (size_t)n);
        uint8_t *opened;
        CHECK_INT(ss_packet_open(&ctx, copy, (size_t)n, &opened), len);
        CHECK_MEM(opened, msg, len);
        /* A second seal of the same payload draws a new salt, so nothing repeats. */
        CHECK_INT(ss_packet_seal(&ctx, msg, len, copy), n);
        CHECK(memcmp(copy, pkt, salt_len) != 0);
        CHECK(memcmp(copy + salt_len, pkt + salt_len, len) != 0);
        ss_packet_ctx_free(&ctx);
    }
}

TEST(test_ss_packet_round_trips_sizes)
{
    static uint8_t in[65507], pkt[65507 + 48], *plain;
    static const size_t sizes[] = {1, 2, 16, 17, 1200, 1500, 0x3FFF, 0x4000, 65507 - 48};
    for (int m = 0; m < CRYPTO_SIP004_COUNT; m++) {
        struct crypto_key key;
        struct ss_packet_ctx ctx;
        CHECK_INT(crypto_key_from_password(&key, (enum crypto_method)m, "sizes"), 0);
        CHECK_INT(ss_packet_ctx_init(&ctx, &key), 0);
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            size_t len = sizes[i];
            CHECK_INT(crypto_random(in, len), 0);
            long n = ss_packet_seal(&ctx, in, len, pkt);
            CHECK_INT(n, len + ss_packet_overhead(&key));
            CHECK_INT(ss_packet_open(&ctx, pkt, (size_t)n, &plain), len);
            CHECK_MEM(plain, in, len);
        }
        ss_packet_ctx_free(&ctx);
    }
}

/* Everything from 0 to salt + tag bytes is refused: too short for a tag, or (exactly salt +
 * tag) an empty payload, which shadowsocks-libev refuses too. Sealing nothing is refused. */
TEST(test_ss_packet_rejects_truncated)
{
    for (int m = 0; m < CRYPTO_SIP004_COUNT; m++) {
        struct crypto_key key;
        struct ss_packet_ctx ctx;
        uint8_t pkt[128], *plain = NULL;
        CHECK_INT(crypto_key_from_password(&key, (enum crypto_method)m, "short"), 0);
        CHECK_INT(ss_packet_ctx_init(&ctx, &key), 0);
        CHECK_INT(ss_packet_seal(&ctx, pkt, 0, pkt + 64), -1);
        long n = ss_packet_seal(&ctx, (const uint8_t *)"\x01\x7f\0\0\x01\0\x35x", 8, pkt);
        CHECK_INT(n, 8 + ss_packet_overhead(&key));
        for (size_t len = 0; len <= ss_packet_overhead(&key); len++) {
            uint8_t copy[128];
            memcpy(copy, pkt, sizeof copy);
            CHECK_INT(ss_packet_open(&ctx, copy, len, &plain), -1);
        }
        /* Every cut of the real packet fails too, not only the short ones. */
        for (size_t len = ss_packet_overhead(&key) + 1; len < (size_t)n; len++) {
            uint8_t copy[128];
            memcpy(copy, pkt, sizeof copy);
            CHECK_INT(ss_packet_open(&ctx, copy, len, &plain), -1);
        }
        CHECK(plain == NULL);
        CHECK_INT(ss_packet_open(&ctx, pkt, (size_t)n, &plain), 8);
        /* A well-formed packet with an empty payload: [salt][tag of nothing]. */
        uint8_t subkey[CRYPTO_MAX_KEY], zero_nonce[CRYPTO_NONCE_LEN] = {0};
        size_t salt_len = ss_packet_overhead(&key) - CRYPTO_TAG_LEN;
        CHECK_INT(crypto_subkey(&key, pkt, subkey), 0);
        struct crypto_aead *a = crypto_aead_new((enum crypto_method)m, subkey);
        CHECK(a != NULL);
        CHECK_INT(crypto_aead_seal(a, zero_nonce, pkt, 0, pkt + salt_len, pkt + salt_len), 0);
        CHECK_INT(crypto_aead_open(a, zero_nonce, pkt, 0, pkt + salt_len, pkt + salt_len), 0);
        crypto_aead_free(a);
        CHECK_INT(ss_packet_open(&ctx, pkt, salt_len + CRYPTO_TAG_LEN, &plain), -1);
        ss_packet_ctx_free(&ctx);
    }
}

TEST(test_ss_packet_rejects_wrong_key)
{
    for (size_t i = 0; i < CAPTURE_COUNT; i++) {
        struct crypto_key key;
        struct ss_packet_ctx ctx;
        uint8_t pkt[256], *plain;
        long n = unit_hex(captures[i].packet, pkt, sizeof pkt);
        CHECK_INT(crypto_key_from_password(&key, captures[i].method, "not the password"), 0);
        CHECK_INT(ss_packet_ctx_init(&ctx, &key), 0);
        CHECK_INT(ss_packet_open(&ctx, pkt, (size_t)n, &plain), -1);
        ss_packet_ctx_free(&ctx);
    }
}

/* Any single flipped bit, in the salt (another subkey), the payload or the tag, is refused. */
TEST(test_ss_packet_rejects_every_bit_flip)
{
    for (int m = 0; m < CRYPTO_SIP004_COUNT; m++) {
        struct crypto_key key;
        struct ss_packet_ctx ctx;
        uint8_t good[64], bad[64], *plain;
        CHECK_INT(crypto_key_from_password(&key, (enum crypto_method)m, "flip"), 0);
        CHECK_INT(ss_packet_ctx_init(&ctx, &key), 0);
        long n = ss_packet_seal(&ctx, (const uint8_t *)"\x01\x0a\0\0\x01\0\x35", 7, good);
        CHECK_INT(n, 7 + ss_packet_overhead(&key));
        for (size_t bit = 0; bit < (size_t)n * 8; bit++) {
            memcpy(bad, good, (size_t)n);
            bad[bit / 8] ^= (uint8_t)(1u << (bit % 8));
            if (ss_packet_open(&ctx, bad, (size_t)n, &plain) != -1)
                unit_fail(__FILE__, __LINE__, "method %d bit %zu flipped: accepted", m, bit);
        }
        CHECK_INT(ss_packet_open(&ctx, good, (size_t)n, &plain), 7);
        ss_packet_ctx_free(&ctx);
    }
}

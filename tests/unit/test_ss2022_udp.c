/* test_ss2022_udp.c: the SIP022 codec, UDP and the sliding window. Client and server packets
 * of every method round-trip; an EIH client's identity header is recovered by the server's
 * peek; tampering, a timestamp 31 s off, the wrong direction, and bounds are refused; the
 * window accepts each id once, out of order within the window, and refuses ids behind it. */
#include <stdint.h>
#include <stdlib.h>

#include "ss2022.h"
#include "unit.h"

#define NOW 1700000000ull

struct udp_side {
    struct ss2022_psk psk;
    struct ss2022_udp_keys keys;
};

static int udp_side_init(struct udp_side *u, enum ss2022_method m, uint8_t seed, uint64_t session)
{
    const struct ss2022_method_info *info = ss2022_method_info(m);
    uint8_t subkey[32];
    memset(u, 0, sizeof *u);
    u->psk.method = m;
    u->psk.len = info->key_len;
    for (size_t i = 0; i < u->psk.len; i++)
        u->psk.bytes[i] = (uint8_t)(seed * 7 + i);
    u->keys.method = m;
    if (m == SS2022_CHACHA20_POLY1305) {
        u->keys.xchacha = crypto_xchacha_new(u->psk.bytes);
        return u->keys.xchacha ? 0 : -1;
    }
    uint8_t sid[8];
    for (int i = 0; i < 8; i++)
        sid[i] = (uint8_t)(session >> (56 - 8 * i));
    ss2022_session_subkey(&u->psk, sid, 8, subkey);
    u->keys.block = crypto_block_new(u->psk.bytes, u->psk.len);
    u->keys.aead = crypto_aead_new(info->aead, subkey);
    return u->keys.block && u->keys.aead ? 0 : -1;
}

static void udp_side_free(struct udp_side *u)
{
    crypto_block_free(u->keys.block);
    crypto_aead_free(u->keys.aead);
    crypto_xchacha_free(u->keys.xchacha);
}

static struct ss2022_udp_packet packet(int type, uint64_t ts, size_t padding, const char *payload)
{
    struct ss2022_udp_packet p = {.session_id = 0x0102030405060708ull,
                                  .packet_id = 42,
                                  .type = type,
                                  .timestamp = ts,
                                  .client_session_id = 0x1111222233334444ull,
                                  .padding_len = padding,
                                  .payload = (const uint8_t *)payload,
                                  .payload_len = strlen(payload)};
    netaddr_target_from_string("127.0.0.1:53", &p.target);
    return p;
}

static const uint8_t nonce24[24] = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12,
                                    13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24};

TEST(test_ss2022_udp_round_trip_both_directions_every_method)
{
    for (int m = 0; m < SS2022_METHOD_COUNT; m++) {
        for (int type = 0; type <= 1; type++) {
            struct udp_side u;
            uint8_t wire[1500];
            struct ss2022_udp_packet got;
            CHECK_INT(udp_side_init(&u, (enum ss2022_method)m, 3, 0x0102030405060708ull), 0);
            struct ss2022_udp_packet p = packet(type, NOW, 12, "dns query");
            long n = ss2022_udp_seal(&u.keys, &p, NULL, nonce24, wire, sizeof wire);
            size_t body = 1 + 8 + (type ? 8 : 0) + 2 + 12 + 7 + 9;
            CHECK_INT(n, (m == SS2022_CHACHA20_POLY1305 ? 24 + 16 : 16) + body + 16);
            CHECK_INT(ss2022_udp_open(&u.keys, wire, (size_t)n, 0, type, NOW, &got), SS2022_DONE);
            CHECK_INT(got.session_id, p.session_id);
            CHECK_INT(got.packet_id, 42);
            CHECK_INT(got.timestamp, NOW);
            CHECK_INT(got.padding_len, 12);
            if (type == SS2022_TYPE_SERVER)
                CHECK_INT(got.client_session_id, p.client_session_id);
            CHECK_STR(got.target.host, "127.0.0.1");
            CHECK_INT(got.target.port, 53);
            CHECK_INT(got.payload_len, 9);
            CHECK_MEM(got.payload, "dns query", 9);
            udp_side_free(&u);
        }
    }
}

TEST(test_ss2022_udp_refuses_tampering_time_direction_and_bounds)
{
    for (int m = 0; m < SS2022_METHOD_COUNT; m++) {
        struct udp_side u;
        uint8_t wire[1500], copy[1500];
        struct ss2022_udp_packet got;
        CHECK_INT(udp_side_init(&u, (enum ss2022_method)m, 5, 0x0102030405060708ull), 0);
        struct ss2022_udp_packet p = packet(0, NOW, 0, "x");
        long n = ss2022_udp_seal(&u.keys, &p, NULL, nonce24, wire, sizeof wire);
        CHECK(n > 0);
        memcpy(copy, wire, (size_t)n);
        for (long at = 0; at < n; at += 5) {
            memcpy(wire, copy, (size_t)n);
            wire[at] ^= 0x10;
            CHECK_INT(ss2022_udp_open(&u.keys, wire, (size_t)n, 0, 0, NOW, &got), SS2022_BAD);
        }
        memcpy(wire, copy, (size_t)n);
        CHECK_INT(ss2022_udp_open(&u.keys, wire, (size_t)n, 0, 1, NOW, &got), SS2022_BAD);
        CHECK_INT(got.error, SS2022_ERR_TYPE);
        memcpy(wire, copy, (size_t)n);
        CHECK_INT(ss2022_udp_open(&u.keys, wire, (size_t)n, 0, 0, NOW + 31, &got), SS2022_BAD);
        CHECK_INT(got.error, SS2022_ERR_TIMESTAMP);
        CHECK_INT(ss2022_udp_open(&u.keys, copy, 20, 0, 0, NOW, &got), SS2022_BAD);
        CHECK_INT(got.error, SS2022_ERR_LENGTH);
        p.padding_len = 901;
        CHECK_INT(ss2022_udp_seal(&u.keys, &p, NULL, nonce24, wire, sizeof wire), -1);
        p.padding_len = 0;
        CHECK_INT(ss2022_udp_seal(&u.keys, &p, NULL, nonce24, wire, 40), -1);
        udp_side_free(&u);
    }
}

TEST(test_ss2022_udp_identity_header_names_the_user)
{
    struct udp_side ipsk, user;
    uint8_t wire[1500], hash[16], got_hash[16];
    uint64_t sid, pid;
    struct ss2022_udp_packet got;
    CHECK_INT(udp_side_init(&ipsk, SS2022_AES_256_GCM, 1, 0x0102030405060708ull), 0);
    CHECK_INT(udp_side_init(&user, SS2022_AES_256_GCM, 2, 0x0102030405060708ull), 0);
    /* The client: separate and identity header under the iPSK, body under the user's key. */
    struct ss2022_udp_keys client = {SS2022_AES_256_GCM, ipsk.keys.block, user.keys.aead, NULL};
    ss2022_psk_hash(&user.psk, hash);
    struct ss2022_udp_packet p = packet(0, NOW, 0, "hi");
    long n = ss2022_udp_seal(&client, &p, hash, NULL, wire, sizeof wire);
    CHECK_INT(n, 16 + 16 + 1 + 8 + 2 + 7 + 2 + 16);
    CHECK_INT(ss2022_udp_peek(&ipsk.keys, wire, (size_t)n, &sid, &pid, got_hash), 0);
    CHECK_INT(sid, p.session_id);
    CHECK_INT(pid, 42);
    CHECK_MEM(got_hash, hash, 16);
    CHECK_INT(ss2022_udp_open(&client, wire, (size_t)n, 1, 0, NOW, &got), SS2022_DONE);
    CHECK_MEM(got.payload, "hi", 2);
    /* Two packets of one session carry different identity headers (XOR with the ids). */
    uint8_t wire2[1500];
    p.packet_id = 43;
    CHECK(ss2022_udp_seal(&client, &p, hash, NULL, wire2, sizeof wire2) == n);
    CHECK(memcmp(wire + 16, wire2 + 16, 16) != 0);
    udp_side_free(&ipsk);
    udp_side_free(&user);
}

TEST(test_ss2022_window_accepts_once_and_in_window)
{
    static struct ss2022_window w;
    memset(&w, 0, sizeof w);
    CHECK(ss2022_window_accept(&w, 0));
    CHECK(!ss2022_window_accept(&w, 0));
    CHECK(ss2022_window_accept(&w, 5));
    CHECK(ss2022_window_accept(&w, 3)); /* late, inside the window */
    CHECK(!ss2022_window_accept(&w, 3));
    CHECK(!ss2022_window_check(&w, 5));
    CHECK(ss2022_window_check(&w, 4));
    CHECK(SS2022_WINDOW_SIZE >= 2048);
}

TEST(test_ss2022_window_edges)
{
    static struct ss2022_window w;
    memset(&w, 0, sizeof w);
    uint64_t top = 100000;
    CHECK(ss2022_window_accept(&w, top));
    /* The oldest id still inside, and the first one behind. */
    CHECK(ss2022_window_check(&w, top - (SS2022_WINDOW_SIZE - 1)));
    CHECK(!ss2022_window_check(&w, top - SS2022_WINDOW_SIZE));
    CHECK(ss2022_window_accept(&w, top - (SS2022_WINDOW_SIZE - 1)));
    CHECK(!ss2022_window_accept(&w, top - (SS2022_WINDOW_SIZE - 1)));
    /* Every id of the window once, in reverse order: all accepted, then none again. */
    for (uint64_t id = top - 1; id > top - (SS2022_WINDOW_SIZE - 1); id--)
        CHECK(ss2022_window_accept(&w, id));
    for (uint64_t id = top - (SS2022_WINDOW_SIZE - 1); id <= top; id++)
        CHECK(!ss2022_window_check(&w, id));
    /* A jump of exactly the ring clears it: every id inside the new window is new, although
     * the old bits lay in the same ring slots. */
    uint64_t top2 = top + SS2022_WINDOW_WORDS * 64;
    CHECK(ss2022_window_accept(&w, top2));
    for (uint64_t id = top2 - (SS2022_WINDOW_SIZE - 1); id < top2; id++)
        CHECK(ss2022_window_check(&w, id));
    /* A huge jump, then the old ids are all behind. */
    CHECK(ss2022_window_accept(&w, UINT64_MAX - 1));
    CHECK(!ss2022_window_check(&w, top));
    CHECK(ss2022_window_accept(&w, UINT64_MAX));
    CHECK(!ss2022_window_accept(&w, UINT64_MAX));
    CHECK(!ss2022_window_accept(&w, UINT64_MAX - 1));
}

/* Sliding by one word at a time across the ring boundary keeps every recent bit. */
TEST(test_ss2022_window_slides_across_the_ring)
{
    static struct ss2022_window w;
    memset(&w, 0, sizeof w);
    for (uint64_t id = 0; id < 3 * SS2022_WINDOW_WORDS * 64; id += 2)
        CHECK(ss2022_window_accept(&w, id));
    uint64_t top = 3 * SS2022_WINDOW_WORDS * 64 - 2;
    for (uint64_t back = 0; back < SS2022_WINDOW_SIZE; back++) {
        uint64_t id = top - back;
        CHECK(ss2022_window_check(&w, id) == (id % 2 == 1));
    }
}

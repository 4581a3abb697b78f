/* test_ss_stream.c: SIP004 stream framing. Streams captured from the real ss-local
 * (shadowsocks-libev 3.3.5) open to exactly what was sent through it; our seal of a fixed salt
 * matches an independent python3 implementation byte for byte; chunk boundaries, chunks that
 * arrive in pieces, tampering, out-of-range lengths, random round trips. */
#include <stdint.h>
#include <stdlib.h>

#include "crypto.h"
#include "ss_stream.h"
#include "unit.h"

/* What ss-local sent to its server after a SOCKS5 CONNECT to `addr` (the shadowsocks address
 * header, which ss-local sends as a chunk of its own) and the writes that followed, each of
 * which became one chunk. Captured with `ss-local -s 127.0.0.1 -p P -l L -k PASSWORD -m METHOD`
 * and a python3 listener standing in for the server. */
struct capture {
    enum crypto_method method;
    const char *password;
    const char *addr;
    const char *writes[3];
    const char *wire;
};

/* clang-format off */
static const struct capture captures[] = {
    {CRYPTO_AES_128_GCM, "test-password-128", "01c00002010050", /* 192.0.2.1:80 */
     {"GET / HTTP/1.0\r\n\r\n"},
     "42766ec01bff134b6ba3c03d13a8c8c6343c5c0bfe1105bfbc0dce355084ade9cb8c4dcb468ff7ff1facba73"
     "d9cada2438c71b7d0be8b252a241b044f770b678adb7fa6dd298881d48b9ed419af26060bcec566508a3d0b2"
     "438e303d5fc57a5b3ffe256b9dd83dca797b33570c"},
    {CRYPTO_AES_192_GCM, "test-password-192", "0420010db80000000000000000000000011f90",
     /* [2001:db8::1]:8080 */
     {"first write", "second write"},
     "e19778a2f7caaa001ddddb9e6362c177dd3487b3ecc2d92ced541f864826851c6857b4aee0dc4986176d97e0"
     "832d9d78ed4bee061fba885f0605f6df396859419e9968496592ba53f867073391bba7e3e940a468455d874f"
     "d4550b73cc8dc0b80f8f451e47e27dfd74916cd76d7fa84215d1740dfc23be04f4bfd3475a4be42dc05b5a99"
     "1de8c8692b68edf516a3d156db67780bf346704c50adfd90797ca300ceda9c6354a8e3f3"},
    {CRYPTO_AES_256_GCM, "test-password-256",
     "030b6578616d706c652e636f6d01bb", /* example.com:443 */
     {"hello over aes-256-gcm"},
     "648fc85c1f566ffcb80039037088f9db6eed60b54b1352069d08d24b772f73c53fe49068c0d654ba2fef6673"
     "022d94e8e54845b0503718039a1c5612898194a3aba8c04e3b9901574452efc9d0efbb4731e801dd8a4a99f4"
     "fe44d04456b1b45db700f2c5466e59ac4959c2f143e2da422bef94d0a5cfc5201373e115c78d4ca4cdc7c004"
     "5510c9209b"},
    {CRYPTO_CHACHA20_POLY1305, "test-password-chacha",
     "030f7777772e6578616d706c652e6f72670016", /* www.example.org:22 */
     {"SSH-2.0-probe\r\n"},
     "8425f75a1b3f3542db980f101a0b2b8d96d021f2ecf4719854b07601195eee4b101ca92ced41abe2b39bb95c"
     "b9f9b377996a29f12c99bea8cc38406c685b72c4dd4cd9267bf12d2e6fe3601cf4cc6b252f1740fb3cc22bf4"
     "19f6fe51e525140572a4a72ba59bf64f0796a34e363d95805bb2d095650fe55ae5b733fc6239b6ef8d7c71aa"
     "84c2"},
};
/* clang-format on */
#define CAPTURE_COUNT (sizeof captures / sizeof captures[0])

static size_t salt_len_of(enum crypto_method m)
{
    return crypto_method_info(m)->salt_len;
}

/* Opens one captured stream chunk by chunk, checking each against what went in. */
static void check_capture(const struct capture *c)
{
    struct crypto_key key;
    struct ss_stream s = {0};
    uint8_t wire[512], addr[64];
    long wire_len = unit_hex(c->wire, wire, sizeof wire);
    long addr_len = unit_hex(c->addr, addr, sizeof addr);
    size_t salt_len = salt_len_of(c->method), off = salt_len, consumed, plain_len;
    uint8_t *plain;

    CHECK(wire_len > 0 && addr_len > 0);
    CHECK_INT(crypto_key_from_password(&key, c->method, c->password), 0);
    CHECK_INT(ss_stream_init(&s, &key, wire), 0);
    CHECK_INT(
        ss_stream_open_chunk(&s, wire + off, (size_t)wire_len - off, &consumed, &plain, &plain_len),
        SS_OPEN_CHUNK);
    CHECK_INT(plain_len, addr_len);
    CHECK_MEM(plain, addr, (size_t)addr_len);
    off += consumed;
    for (int i = 0; i < 3 && c->writes[i]; i++) {
        CHECK_INT(ss_stream_open_chunk(&s, wire + off, (size_t)wire_len - off, &consumed, &plain,
                                       &plain_len),
                  SS_OPEN_CHUNK);
        CHECK_INT(consumed, strlen(c->writes[i]) + SS_CHUNK_OVERHEAD);
        CHECK_INT(plain_len, strlen(c->writes[i]));
        CHECK_MEM(plain, c->writes[i], plain_len);
        off += consumed;
    }
    CHECK_INT(off, wire_len);
    CHECK_INT(ss_stream_open_chunk(&s, wire + off, 0, &consumed, &plain, &plain_len),
              SS_OPEN_NEED_MORE);
    ss_stream_free(&s);
}

TEST(test_ss_stream_opens_ss_local_aes_128_gcm)
{
    check_capture(&captures[0]);
}

TEST(test_ss_stream_opens_ss_local_aes_192_gcm)
{
    check_capture(&captures[1]);
}

TEST(test_ss_stream_opens_ss_local_aes_256_gcm)
{
    check_capture(&captures[2]);
}

TEST(test_ss_stream_opens_ss_local_chacha20_ietf_poly1305)
{
    check_capture(&captures[3]);
}

TEST(test_ss_stream_rejects_capture_with_wrong_password)
{
    for (size_t i = 0; i < CAPTURE_COUNT; i++) {
        struct crypto_key key;
        struct ss_stream s = {0};
        uint8_t wire[512], *plain;
        size_t consumed, plain_len, salt_len = salt_len_of(captures[i].method);
        long wire_len = unit_hex(captures[i].wire, wire, sizeof wire);
        CHECK_INT(crypto_key_from_password(&key, captures[i].method, "wrong password"), 0);
        CHECK_INT(ss_stream_init(&s, &key, wire), 0);
        CHECK_INT(ss_stream_open_chunk(&s, wire + salt_len, (size_t)wire_len - salt_len, &consumed,
                                       &plain, &plain_len),
                  SS_OPEN_ERROR);
        ss_stream_free(&s);
    }
}

/* Password "foobar", salt 80 81 82 ...; ss_stream_seal of the address header 127.0.0.1:8080,
 * then of "ping": the chunks as an independent python3 SIP004 implementation sealed them. */
static const char *const seal_vectors[CRYPTO_SIP004_COUNT] = {
    "7bbaf600c1bbcf2ffcd047feb5017f4ab6231d1dfcba7a5f7b5bd906385c36758c1192f15bf9650f2ee0bd3e"
    "73559d0a6c693269a6964fd037ee2963235539990ed1663a208ba036fbff074d00578a",
    "47cffb5e41d04d2b03ca5258e924146f27ccdc152e1d0ab3e6902b74ba6c2b2c45f48009d74daf352639af48"
    "4ff9019704af812bb4518ccf7b06570f0387e7eb0996dd42609574d01363ae89497ad8",
    "ca5d9a075f645ccdecae6e2cb746eb018352e45ba334982ac75ca36a7739bb46c635ca59f55e28395dff02d9"
    "fd9197189c5fad40596265b8b5b2bfde87f371181666d89ac48e2aebf64623b65a8f05",
    "0874dea02e33d3caf0a9f176bbc567307ee3045d6c4f236b52630f4fc453fa512e40dcb217575189f3d38280"
    "a7763df67447990d8a8f1b21c291ab2715c92b6b01b2f5c17a42e2c9f91081d893ff12",
};

TEST(test_ss_stream_seal_matches_reference)
{
    static const uint8_t addr[] = {0x01, 0x7f, 0x00, 0x00, 0x01, 0x1f, 0x90};
    for (int m = 0; m < CRYPTO_SIP004_COUNT; m++) {
        struct crypto_key key;
        struct ss_stream s = {0};
        uint8_t salt[CRYPTO_MAX_SALT], want[128], out[128];
        for (size_t i = 0; i < sizeof salt; i++)
            salt[i] = (uint8_t)(0x80 + i);
        long want_len = unit_hex(seal_vectors[m], want, sizeof want);
        CHECK_INT(crypto_key_from_password(&key, (enum crypto_method)m, "foobar"), 0);
        CHECK_INT(ss_stream_init(&s, &key, salt), 0);
        CHECK_INT(ss_stream_seal(&s, addr, sizeof addr, out), sizeof addr + SS_CHUNK_OVERHEAD);
        CHECK_INT(ss_stream_seal(&s, (const uint8_t *)"ping", 4, out + sizeof addr + 34), 38);
        CHECK_INT(want_len, sizeof addr + 4 + 2 * SS_CHUNK_OVERHEAD);
        CHECK_MEM(out, want, (size_t)want_len);
        /* The nonce counter: two seals per chunk, two chunks. */
        CHECK_INT(s.nonce[0], 4);
        ss_stream_free(&s);
    }
}

/* A sealer and an opener on the same key and salt, for the tests below. */
struct pair {
    struct crypto_key key;
    struct ss_stream tx, rx;
};

static int pair_init(struct pair *p, enum crypto_method m)
{
    uint8_t salt[CRYPTO_MAX_SALT];
    memset(p, 0, sizeof *p);
    if (crypto_key_from_password(&p->key, m, "chunk tests") != 0 ||
        crypto_random(salt, sizeof salt) != 0)
        return -1;
    if (ss_stream_init(&p->tx, &p->key, salt) != 0 || ss_stream_init(&p->rx, &p->key, salt) != 0)
        return -1;
    return 0;
}

static void pair_free(struct pair *p)
{
    ss_stream_free(&p->tx);
    ss_stream_free(&p->rx);
}

TEST(test_ss_stream_sealed_size)
{
    CHECK_INT(ss_stream_sealed_size(0), 0);
    CHECK_INT(ss_stream_sealed_size(1), 1 + 34);
    CHECK_INT(ss_stream_sealed_size(0x3FFF), 0x3FFF + 34);
    CHECK_INT(ss_stream_sealed_size(0x4000), 0x4000 + 68);
    CHECK_INT(ss_stream_sealed_size(3 * 0x3FFF), 3 * 0x3FFF + 3 * 34);
    CHECK(ss_stream_sealed_size(SIZE_MAX) == SIZE_MAX);
    CHECK(ss_stream_sealed_size(SIZE_MAX - 100) == SIZE_MAX);
}

TEST(test_ss_stream_one_byte_payload)
{
    for (int m = 0; m < CRYPTO_SIP004_COUNT; m++) {
        struct pair p;
        uint8_t chunk[64], *plain;
        size_t consumed, plain_len;
        CHECK_INT(pair_init(&p, (enum crypto_method)m), 0);
        chunk[SS_CHUNK_HEAD] = 'x';
        CHECK_INT(ss_stream_seal_chunk(&p.tx, chunk, 1), 35);
        CHECK_INT(ss_stream_open_chunk(&p.rx, chunk, 35, &consumed, &plain, &plain_len),
                  SS_OPEN_CHUNK);
        CHECK_INT(consumed, 35);
        CHECK_INT(plain_len, 1);
        CHECK(plain == chunk + SS_CHUNK_HEAD); /* opened in place */
        CHECK_INT(plain[0], 'x');
        CHECK_INT(p.rx.pending_len, SS_PENDING_NONE);
        pair_free(&p);
    }
}

TEST(test_ss_stream_largest_chunk)
{
    static uint8_t chunk[SS_CHUNK_WIRE_MAX], want[SS_CHUNK_MAX];
    struct pair p;
    uint8_t *plain;
    size_t consumed, plain_len;
    CHECK_INT(pair_init(&p, CRYPTO_AES_256_GCM), 0);
    CHECK_INT(crypto_random(want, sizeof want), 0);
    memcpy(chunk + SS_CHUNK_HEAD, want, SS_CHUNK_MAX);
    CHECK_INT(ss_stream_seal_chunk(&p.tx, chunk, SS_CHUNK_MAX), SS_CHUNK_WIRE_MAX);
    CHECK_INT(ss_stream_open_chunk(&p.rx, chunk, sizeof chunk, &consumed, &plain, &plain_len),
              SS_OPEN_CHUNK);
    CHECK_INT(consumed, SS_CHUNK_WIRE_MAX);
    CHECK_INT(plain_len, SS_CHUNK_MAX);
    CHECK_MEM(plain, want, SS_CHUNK_MAX);
    pair_free(&p);
}

TEST(test_ss_stream_seal_chunk_rejects_bad_lengths)
{
    static uint8_t chunk[SS_CHUNK_WIRE_MAX + 1];
    struct pair p;
    CHECK_INT(pair_init(&p, CRYPTO_AES_128_GCM), 0);
    CHECK_INT(ss_stream_seal_chunk(&p.tx, chunk, 0), -1);
    CHECK_INT(ss_stream_seal_chunk(&p.tx, chunk, SS_CHUNK_MAX + 1), -1);
    /* Refusals do not consume nonces. */
    CHECK_MEM(p.tx.nonce, "\0\0\0\0\0\0\0\0\0\0\0\0", 12);
    struct ss_stream unkeyed = {0};
    CHECK_INT(ss_stream_seal_chunk(&unkeyed, chunk, 1), -1);
    pair_free(&p);
}

TEST(test_ss_stream_0x4000_bytes_make_two_chunks)
{
    static uint8_t in[0x4000], wire[0x4000 + 68];
    struct pair p;
    uint8_t *plain;
    size_t consumed, plain_len;
    CHECK_INT(pair_init(&p, CRYPTO_CHACHA20_POLY1305), 0);
    CHECK_INT(crypto_random(in, sizeof in), 0);
    CHECK_INT(ss_stream_seal(&p.tx, in, sizeof in, wire), sizeof wire);
    CHECK_INT(ss_stream_open_chunk(&p.rx, wire, sizeof wire, &consumed, &plain, &plain_len),
              SS_OPEN_CHUNK);
    CHECK_INT(consumed, SS_CHUNK_WIRE_MAX);
    CHECK_INT(plain_len, 0x3FFF);
    CHECK_MEM(plain, in, 0x3FFF);
    CHECK_INT(ss_stream_open_chunk(&p.rx, wire + consumed, sizeof wire - consumed, &consumed,
                                   &plain, &plain_len),
              SS_OPEN_CHUNK);
    CHECK_INT(consumed, 1 + 34);
    CHECK_INT(plain_len, 1);
    CHECK_INT(plain[0], in[0x3FFF]);
    pair_free(&p);
}

/* Plaintext read into slots as the relay reads it (one readv over the slots' payloads) is sealed
 * in place into back-to-back chunks of SS_SEAL_CHUNK bytes, the last one shorter, which open to
 * the same bytes; a 128-byte multiple keeps ChaCha20-Poly1305 on its fast path. */
TEST(test_ss_stream_seal_slots_in_place)
{
    enum { SLOTS = 3, TAIL = 5 };
    static uint8_t buf[SLOTS * SS_SEAL_SLOT], want[(SLOTS - 1) * SS_SEAL_CHUNK + TAIL];
    CHECK_INT(SS_SEAL_CHUNK % 128, 0);
    CHECK(SS_SEAL_CHUNK <= SS_CHUNK_MAX);
    for (int m = 0; m < CRYPTO_SIP004_COUNT; m++) {
        struct pair p;
        CHECK_INT(pair_init(&p, (enum crypto_method)m), 0);
        CHECK_INT(crypto_random(want, sizeof want), 0);
        for (size_t i = 0, done = 0; done < sizeof want; i++) {
            size_t k = sizeof want - done < SS_SEAL_CHUNK ? sizeof want - done : SS_SEAL_CHUNK;
            memcpy(buf + i * SS_SEAL_SLOT + SS_CHUNK_HEAD, want + done, k);
            done += k;
        }
        long wire = ss_stream_seal_slots(&p.tx, buf, sizeof want);
        CHECK_INT(wire, sizeof want + SLOTS * SS_CHUNK_OVERHEAD);
        size_t at = 0, got = 0;
        for (int i = 0; i < SLOTS; i++) {
            uint8_t *plain;
            size_t consumed, plain_len;
            CHECK_INT(ss_stream_open_chunk(&p.rx, buf + at, (size_t)wire - at, &consumed,
                                           &plain, &plain_len),
                      SS_OPEN_CHUNK);
            CHECK_INT(plain_len, i < SLOTS - 1 ? SS_SEAL_CHUNK : TAIL);
            CHECK_MEM(plain, want + got, plain_len);
            at += consumed;
            got += plain_len;
        }
        CHECK_INT(at, wire);
        CHECK_INT(ss_stream_seal_slots(&p.tx, buf, 0), 0);
        pair_free(&p);
    }
}

TEST(test_ss_stream_seal_of_nothing_writes_nothing)
{
    struct pair p;
    uint8_t out[1] = {0x77};
    CHECK_INT(pair_init(&p, CRYPTO_AES_128_GCM), 0);
    CHECK_INT(ss_stream_seal(&p.tx, (const uint8_t *)"", 0, out), 0);
    CHECK_INT(out[0], 0x77);
    CHECK_MEM(p.tx.nonce, "\0\0\0\0\0\0\0\0\0\0\0\0", 12);
    pair_free(&p);
}

/* A chunk fed one byte at a time: NEED_MORE until the last byte; the length is decrypted once,
 * as soon as its 18 bytes are there, and kept in pending_len (the nonce moves once). */
TEST(test_ss_stream_chunk_arriving_byte_by_byte)
{
    for (int m = 0; m < CRYPTO_SIP004_COUNT; m++) {
        struct pair p;
        uint8_t chunk[100 + SS_CHUNK_OVERHEAD], want[100], *plain;
        size_t consumed = 0, plain_len = 0;
        CHECK_INT(pair_init(&p, (enum crypto_method)m), 0);
        CHECK_INT(crypto_random(want, sizeof want), 0);
        memcpy(chunk + SS_CHUNK_HEAD, want, sizeof want);
        CHECK_INT(ss_stream_seal_chunk(&p.tx, chunk, sizeof want), sizeof chunk);
        for (size_t have = 0; have < sizeof chunk; have++) {
            CHECK_INT(ss_stream_open_chunk(&p.rx, chunk, have, &consumed, &plain, &plain_len),
                      SS_OPEN_NEED_MORE);
            if (have < SS_CHUNK_HEAD) {
                CHECK_INT(p.rx.pending_len, SS_PENDING_NONE);
                CHECK_INT(p.rx.nonce[0], 0);
            } else {
                CHECK_INT(p.rx.pending_len, 100);
                CHECK_INT(p.rx.nonce[0], 1);
            }
        }
        CHECK_INT(ss_stream_open_chunk(&p.rx, chunk, sizeof chunk, &consumed, &plain, &plain_len),
                  SS_OPEN_CHUNK);
        CHECK_INT(consumed, sizeof chunk);
        CHECK_INT(plain_len, 100);
        CHECK_MEM(plain, want, 100);
        CHECK_INT(p.rx.pending_len, SS_PENDING_NONE);
        CHECK_INT(p.rx.nonce[0], 2);
        pair_free(&p);
    }
}

/* Flipping any single bit of a chunk (sealed length, its tag, payload, payload tag) is an
 * error, and the stream stays dead even for the untouched chunk afterwards. */
TEST(test_ss_stream_rejects_every_bit_flip)
{
    struct crypto_key key;
    uint8_t salt[16] = {7}, good[5 + SS_CHUNK_OVERHEAD], bad[sizeof good], *plain;
    size_t consumed, plain_len;
    struct ss_stream tx = {0};
    CHECK_INT(crypto_key_from_password(&key, CRYPTO_AES_128_GCM, "flip"), 0);
    CHECK_INT(ss_stream_init(&tx, &key, salt), 0);
    memcpy(good + SS_CHUNK_HEAD, "hello", 5);
    CHECK_INT(ss_stream_seal_chunk(&tx, good, 5), sizeof good);
    for (size_t bit = 0; bit < sizeof good * 8; bit++) {
        struct ss_stream rx = {0};
        memcpy(bad, good, sizeof good);
        bad[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        CHECK_INT(ss_stream_init(&rx, &key, salt), 0);
        int r = ss_stream_open_chunk(&rx, bad, sizeof bad, &consumed, &plain, &plain_len);
        if (r != SS_OPEN_ERROR)
            unit_fail(__FILE__, __LINE__, "bit %zu flipped: result %d", bit, r);
        CHECK_INT(rx.pending_len, SS_STREAM_DEAD);
        CHECK_INT(ss_stream_open_chunk(&rx, good, sizeof good, &consumed, &plain, &plain_len),
                  SS_OPEN_ERROR);
        ss_stream_free(&rx);
    }
    ss_stream_free(&tx);
}

/* Builds by hand a chunk whose length field says `field`, followed by a correctly sealed
 * payload of (field & 0x3FFF) bytes: what shadowsocks-libev, which masks the reserved bits off,
 * would accept. Returns the wire length. */
static size_t forge_chunk(struct crypto_aead *a, unsigned field, uint8_t *wire)
{
    uint8_t n0[12] = {0}, n1[12] = {1};
    size_t payload = field & SS_CHUNK_MAX;
    wire[0] = (uint8_t)(field >> 8);
    wire[1] = (uint8_t)field;
    memset(wire + SS_CHUNK_HEAD, 'p', payload);
    if (crypto_aead_seal(a, n0, wire, 2, wire, wire + 2) != 0 ||
        crypto_aead_seal(a, n1, wire + SS_CHUNK_HEAD, payload, wire + SS_CHUNK_HEAD,
                         wire + SS_CHUNK_HEAD + payload) != 0)
        return 0;
    return payload + SS_CHUNK_OVERHEAD;
}

/* A length of zero, or with the reserved upper bits set, is an error even when the rest of the
 * chunk authenticates; the same construction with a length in range opens. */
TEST(test_ss_stream_rejects_out_of_range_lengths)
{
    static const unsigned lengths[] = {0x0000, 0x4000, 0x4001, 0x8005, 0xC000, 0xFFFF};
    static uint8_t wire[SS_CHUNK_WIRE_MAX];
    struct crypto_key key;
    uint8_t salt[32] = {1}, subkey[32], *plain;
    size_t consumed, plain_len;
    CHECK_INT(crypto_key_from_password(&key, CRYPTO_AES_256_GCM, "range"), 0);
    CHECK_INT(crypto_subkey(&key, salt, subkey), 0);
    struct crypto_aead *a = crypto_aead_new(CRYPTO_AES_256_GCM, subkey);
    CHECK(a != NULL);
    for (size_t i = 0; i < sizeof lengths / sizeof lengths[0]; i++) {
        struct ss_stream rx = {0};
        size_t wire_len = forge_chunk(a, lengths[i], wire);
        CHECK(wire_len > 0);
        CHECK_INT(ss_stream_init(&rx, &key, salt), 0);
        int r = ss_stream_open_chunk(&rx, wire, wire_len, &consumed, &plain, &plain_len);
        if (r != SS_OPEN_ERROR)
            unit_fail(__FILE__, __LINE__, "length field 0x%04x: result %d", lengths[i], r);
        CHECK_INT(rx.pending_len, SS_STREAM_DEAD);
        ss_stream_free(&rx);
    }
    static const unsigned good[] = {1, 3, 0x3FFF};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        struct ss_stream rx = {0};
        size_t wire_len = forge_chunk(a, good[i], wire);
        CHECK_INT(ss_stream_init(&rx, &key, salt), 0);
        CHECK_INT(ss_stream_open_chunk(&rx, wire, wire_len, &consumed, &plain, &plain_len),
                  SS_OPEN_CHUNK);
        CHECK_INT(plain_len, good[i]);
        CHECK_INT(plain[plain_len - 1], 'p');
        ss_stream_free(&rx);
    }
    crypto_aead_free(a);
}

TEST(test_ss_stream_rejects_reordered_chunks)
{
    struct pair p;
    uint8_t a[1 + SS_CHUNK_OVERHEAD], b[1 + SS_CHUNK_OVERHEAD], *plain;
    size_t consumed, plain_len;
    CHECK_INT(pair_init(&p, CRYPTO_AES_192_GCM), 0);
    a[SS_CHUNK_HEAD] = 'a';
    b[SS_CHUNK_HEAD] = 'b';
    CHECK_INT(ss_stream_seal_chunk(&p.tx, a, 1), sizeof a);
    CHECK_INT(ss_stream_seal_chunk(&p.tx, b, 1), sizeof b);
    CHECK_INT(ss_stream_open_chunk(&p.rx, b, sizeof b, &consumed, &plain, &plain_len),
              SS_OPEN_ERROR);
    pair_free(&p);
}

TEST(test_ss_stream_unkeyed_stream_is_an_error)
{
    struct ss_stream s = {0};
    uint8_t buf[64] = {0}, *plain;
    size_t consumed, plain_len;
    CHECK_INT(ss_stream_open_chunk(&s, buf, sizeof buf, &consumed, &plain, &plain_len),
              SS_OPEN_ERROR);
    ss_stream_free(&s); /* freeing a zeroed stream is fine */
    CHECK(s.aead == NULL);
}

/* ss_stream_init again on a live stream: new subkey, nonce and pending state reset, the AEAD
 * context kept (same method) or replaced (other method). */
TEST(test_ss_stream_reinit_resets)
{
    struct crypto_key k128, k256;
    uint8_t salt[32] = {3}, chunk[1 + SS_CHUNK_OVERHEAD], *plain;
    size_t consumed, plain_len;
    struct ss_stream tx = {0}, rx = {0};
    CHECK_INT(crypto_key_from_password(&k128, CRYPTO_AES_128_GCM, "re"), 0);
    CHECK_INT(crypto_key_from_password(&k256, CRYPTO_CHACHA20_POLY1305, "re"), 0);
    CHECK_INT(ss_stream_init(&rx, &k128, salt), 0);
    rx.pending_len = SS_STREAM_DEAD;
    rx.nonce[0] = 9;
    CHECK_INT(ss_stream_init(&rx, &k256, salt), 0);
    CHECK_INT(rx.pending_len, SS_PENDING_NONE);
    CHECK_INT(rx.nonce[0], 0);
    CHECK_INT(crypto_aead_method(rx.aead), CRYPTO_CHACHA20_POLY1305);
    CHECK_INT(ss_stream_init(&tx, &k256, salt), 0);
    chunk[SS_CHUNK_HEAD] = 'z';
    CHECK_INT(ss_stream_seal_chunk(&tx, chunk, 1), sizeof chunk);
    CHECK_INT(ss_stream_open_chunk(&rx, chunk, sizeof chunk, &consumed, &plain, &plain_len),
              SS_OPEN_CHUNK);
    CHECK_INT(plain[0], 'z');
    ss_stream_free(&tx);
    ss_stream_free(&rx);
    CHECK(rx.aead == NULL);
}

/* Random data of many sizes: sealed in one go, delivered in random pieces, opened chunk by
 * chunk from a receive buffer that is compacted as a relay would, reassembled exactly. */
static void round_trip(enum crypto_method m, size_t len)
{
    static uint8_t in[100000], wire[110000], rbuf[2 * SS_CHUNK_WIRE_MAX], out[100000];
    struct pair p;
    size_t fed = 0, have = 0, got = 0;
    CHECK_INT(pair_init(&p, m), 0);
    CHECK_INT(crypto_random(in, len), 0);
    long wire_len = ss_stream_seal(&p.tx, in, len, wire);
    CHECK_INT(wire_len, ss_stream_sealed_size(len));
    while (fed < (size_t)wire_len) {
        uint8_t r[2];
        CHECK_INT(crypto_random(r, sizeof r), 0);
        size_t piece = 1 + (((size_t)r[0] << 8 | r[1]) % 9000);
        if (piece > (size_t)wire_len - fed)
            piece = (size_t)wire_len - fed;
        if (piece > sizeof rbuf - have)
            piece = sizeof rbuf - have;
        memcpy(rbuf + have, wire + fed, piece);
        fed += piece;
        have += piece;
        for (;;) {
            uint8_t *plain;
            size_t consumed, plain_len;
            int res = ss_stream_open_chunk(&p.rx, rbuf, have, &consumed, &plain, &plain_len);
            CHECK(res != SS_OPEN_ERROR);
            if (res == SS_OPEN_NEED_MORE)
                break;
            CHECK(got + plain_len <= len);
            memcpy(out + got, plain, plain_len);
            got += plain_len;
            memmove(rbuf, rbuf + consumed, have - consumed);
            have -= consumed;
        }
    }
    CHECK_INT(have, 0);
    CHECK_INT(got, len);
    CHECK_MEM(out, in, len);
    pair_free(&p);
}

TEST(test_ss_stream_round_trips_many_sizes)
{
    static const size_t sizes[] = {0,      1,      2,      15,         16,     17,
                                   100,    1000,   0x3FFE, 0x3FFF,     0x4000, 0x4001,
                                   0x7FFE, 0x7FFF, 0x8000, 3 * 0x3FFF, 65535,  100000};
    for (int m = 0; m < CRYPTO_SIP004_COUNT; m++)
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
            round_trip((enum crypto_method)m, sizes[i]);
    for (int i = 0; i < 20; i++) {
        uint8_t r[3];
        CHECK_INT(crypto_random(r, sizeof r), 0);
        round_trip((enum crypto_method)(r[2] % CRYPTO_SIP004_COUNT),
                   ((size_t)r[0] << 8 | r[1]) + r[2]);
    }
}

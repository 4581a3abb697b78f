/* test_proto_sip004.c: SIP004 behind struct proto_ops (src/proto_sip004.c) with several keys
 * (users), both ends in one process: the request names the user whose key opens its first
 * chunk's length, an unknown key is refused like a probe, and the key a client address used
 * last is tried first (the per-worker table of recent clients). The wire format itself is
 * checked in test_ss_stream.c and, with libev's ss-server and ss-tunnel, in tests/integration. */
#include "autoconfig.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "proto.h"
#include "unit.h"

#define M CRYPTO_AES_128_GCM
#define NUSERS 3

static struct crypto_key key_of(uint8_t seed)
{
    struct crypto_key k = {.method = M, .len = 16};
    for (int i = 0; i < 16; i++)
        k.bytes[i] = (uint8_t)(seed * 31 + i);
    return k;
}

/* A server of three users, alice, bob and carol, with keys of seeds 1, 2 and 3. The key array
 * is the test's: a test may change a key after the table of recent clients has learned it. */
struct server {
    struct crypto_key keys[NUSERS];
    const char *names[NUSERS];
    struct proto_ctx ctx;
};

static void server_init(struct server *s)
{
    static const char *const names[NUSERS] = {"alice", "bob", "carol"};
    for (int i = 0; i < NUSERS; i++) {
        s->keys[i] = key_of((uint8_t)(i + 1));
        s->names[i] = names[i];
    }
    s->ctx = (struct proto_ctx){
        .ops = &proto_sip004, .keys = s->keys, .nkeys = NUSERS, .names = s->names};
    CHECK_INT(proto_ctx_init(&s->ctx), 0);
    CHECK(s->ctx.priv != NULL);
}

static const uint8_t target_header[] = {1, 127, 0, 0, 1, 0, 80};

/* A client's first flight under the key of seed, carrying "hello", into wire. */
static long client_request(uint8_t seed, uint8_t *wire, size_t cap)
{
    struct crypto_key key = key_of(seed);
    struct proto_ctx ctx = {.ops = &proto_sip004, .keys = &key, .nkeys = 1, .client = true};
    struct proto_conn conn = {.ctx = &ctx};
    struct proto_dir d;

    proto_dir_init(&d);
    long n = -1;
    if (proto_sip004.seal_begin(&conn, &d) == 0)
        n = proto_sip004.seal_request(&conn, &d, target_header, sizeof target_header,
                                      (const uint8_t *)"hello", 5, wire, cap);
    proto_dir_free(&d);
    return n;
}

static struct sockaddr_in addr_of(const char *ip)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(40000)};
    inet_pton(AF_INET, ip, &a.sin_addr);
    return a;
}

/* Opens a request of the key of seed from ip at server s; returns the open's result (or -100
 * and below when the test itself went wrong) and the key index and user the server found. */
static int server_open(struct server *s, uint8_t seed, const char *ip, size_t *key,
                       const char **user)
{
    struct sockaddr_in peer = addr_of(ip);
    struct proto_conn conn = {.ctx = &s->ctx, .peer = (const struct sockaddr *)&peer};
    struct proto_dir d;
    struct proto_request req;
    uint8_t wire[256];

    long n = client_request(seed, wire, sizeof wire);
    if (n <= 0)
        return -100;
    proto_dir_init(&d);
    /* a first flight cut short of the length's tag is incomplete, never refused */
    int r = proto_sip004.open_request(&conn, &d, wire, 16 + 17, &req);
    if (r == PROTO_NEED_MORE)
        r = proto_sip004.open_request(&conn, &d, wire, (size_t)n, &req);
    else
        r = -101;
    /* the request itself, as sealed */
    if (r == PROTO_DONE && (req.consumed != (size_t)n || req.target.port != 80 ||
                            req.payload_len != 5 || memcmp(req.payload, "hello", 5) != 0))
        r = -102;
    proto_dir_free(&d);
    *key = conn.key;
    *user = conn.user;
    return r;
}

TEST(test_proto_sip004_request_names_the_user_of_its_key)
{
    struct server s;
    size_t key;
    const char *user;

    server_init(&s);
    for (uint8_t seed = 1; seed <= NUSERS; seed++) {
        CHECK_INT(server_open(&s, seed, "192.0.2.1", &key, &user), PROTO_DONE);
        CHECK_INT(key, seed - 1);
        CHECK_STR(user, s.names[seed - 1]);
    }
    proto_ctx_free(&s.ctx);
}

TEST(test_proto_sip004_unknown_key_is_refused)
{
    struct server s;
    size_t key;
    const char *user;

    server_init(&s);
    CHECK_INT(server_open(&s, 9, "192.0.2.1", &key, &user), PROTO_BAD);
    CHECK(user == NULL);
    /* and a known client address does not change that */
    CHECK_INT(server_open(&s, 2, "192.0.2.1", &key, &user), PROTO_DONE);
    CHECK_INT(server_open(&s, 9, "192.0.2.1", &key, &user), PROTO_BAD);
    proto_ctx_free(&s.ctx);
}

/* carol (the last key) connects from 192.0.2.7; then alice's key is made the same as carol's,
 * so that the order of tries shows: the address that used carol's key last gets carol (tried
 * first), another address gets alice (first in the list). */
TEST(test_proto_sip004_tries_the_key_an_address_used_last_first)
{
    struct server s;
    size_t key;
    const char *user;

    server_init(&s);
    CHECK_INT(server_open(&s, 3, "192.0.2.7", &key, &user), PROTO_DONE);
    CHECK_STR(user, "carol");
    s.keys[0] = s.keys[2];
    CHECK_INT(server_open(&s, 3, "192.0.2.7", &key, &user), PROTO_DONE);
    CHECK_STR(user, "carol");
    CHECK_INT(server_open(&s, 3, "192.0.2.8", &key, &user), PROTO_DONE);
    CHECK_STR(user, "alice");
    /* 192.0.2.8 used alice's slot last: it is now tried first there */
    CHECK_INT(server_open(&s, 3, "192.0.2.8", &key, &user), PROTO_DONE);
    CHECK_STR(user, "alice");
    proto_ctx_free(&s.ctx);
}

/* A client without an address (or one the table lost) still finds its key, in list order. */
TEST(test_proto_sip004_no_address_tries_in_order)
{
    struct server s;
    struct proto_conn conn = {0};
    struct proto_dir d;
    struct proto_request req;
    uint8_t wire[256];

    server_init(&s);
    conn.ctx = &s.ctx;
    long n = client_request(2, wire, sizeof wire);
    proto_dir_init(&d);
    CHECK_INT(proto_sip004.open_request(&conn, &d, wire, (size_t)n, &req), PROTO_DONE);
    CHECK_STR(conn.user, "bob");
    proto_dir_free(&d);
    proto_ctx_free(&s.ctx);
}

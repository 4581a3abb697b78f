/* test_udp_nat.c: the UDP association table finds entries by client address (IPv4 and IPv6,
 * port included) or by session (a SIP022 server's, whose client address may move), keeps them in
 * least-recently-used order, and stays correct as it grows. */
#include "udp_nat.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>

#include "netaddr.h"
#include "unit.h"

static struct sockaddr_storage sockaddr_of(const char *ip, uint16_t port)
{
    struct sockaddr_storage ss;
    socklen_t len;
    netaddr_from_ip(ip, port, &ss, &len);
    return ss;
}

#define SA(x) ((struct sockaddr *)&(x))

TEST(test_udp_nat_finds_by_address_and_port)
{
    struct udp_nat t;
    struct udp_nat_entry a, b;
    struct sockaddr_storage ca = sockaddr_of("10.0.0.1", 1000), cb = sockaddr_of("10.0.0.1", 1001);
    struct sockaddr_storage other = sockaddr_of("10.0.0.2", 1000);

    CHECK_INT(udp_nat_init(&t, 42), 0);
    udp_nat_insert(&t, &a, SA(ca), 0, 1.0);
    udp_nat_insert(&t, &b, SA(cb), 0, 2.0);
    CHECK_INT(udp_nat_count(&t), 2);
    CHECK(udp_nat_find(&t, SA(ca), 0) == &a);
    CHECK(udp_nat_find(&t, SA(cb), 0) == &b);
    CHECK(udp_nat_find(&t, SA(other), 0) == NULL);
    udp_nat_remove(&t, &a);
    CHECK(udp_nat_find(&t, SA(ca), 0) == NULL);
    CHECK(udp_nat_find(&t, SA(cb), 0) == &b);
    CHECK_INT(udp_nat_count(&t), 1);
    udp_nat_remove(&t, &b);
    CHECK_INT(udp_nat_count(&t), 0);
    CHECK(udp_nat_newest(&t) == NULL && udp_nat_oldest(&t) == NULL);
    udp_nat_destroy(&t);
}

TEST(test_udp_nat_finds_a_session_wherever_its_client_moves)
{
    struct udp_nat t;
    struct udp_nat_entry s1, s2, byaddr;
    struct sockaddr_storage c1 = sockaddr_of("10.0.0.1", 1000), c2 = sockaddr_of("10.0.0.1", 2000);

    CHECK_INT(udp_nat_init(&t, 42), 0);
    udp_nat_insert_session(&t, &s1, 0x1122334455667788ULL, SA(c1), 0, 1.0);
    udp_nat_insert_session(&t, &s2, 0x99, SA(c1), 0, 1.0); /* two sessions of one address */
    CHECK(udp_nat_find_session(&t, 0x1122334455667788ULL, 0) == &s1);
    CHECK(udp_nat_find_session(&t, 0x99, 0) == &s2);
    CHECK(udp_nat_find_session(&t, 0x99, 1) == NULL);
    CHECK(udp_nat_find_session(&t, 0x98, 0) == NULL);
    /* a session is not found by its address, nor an address entry by a session */
    CHECK(udp_nat_find(&t, SA(c1), 0) == NULL);
    udp_nat_insert(&t, &byaddr, SA(c2), 0, 2.0);
    CHECK(udp_nat_find(&t, SA(c2), 0) == &byaddr);
    /* the client moves: the same entry, now at the new address */
    udp_nat_move(&s1, SA(c2));
    CHECK(udp_nat_find_session(&t, 0x1122334455667788ULL, 0) == &s1);
    CHECK(netaddr_equal(SA(s1.client), SA(c2)));
    CHECK(udp_nat_find(&t, SA(c2), 0) == &byaddr);
    CHECK_INT(udp_nat_count(&t), 3);
    udp_nat_remove(&t, &s1);
    udp_nat_remove(&t, &s2);
    udp_nat_remove(&t, &byaddr);
    CHECK_INT(udp_nat_count(&t), 0);
    udp_nat_destroy(&t);
}

TEST(test_udp_nat_tells_ipv6_from_ipv4_mapped_and_scope)
{
    struct udp_nat t;
    struct udp_nat_entry a, b, c;
    struct sockaddr_storage x = sockaddr_of("2001:db8::1", 53), mapped = sockaddr_of("::ffff:10.0.0.1", 53);
    struct sockaddr_storage plain = sockaddr_of("10.0.0.1", 53), scoped = sockaddr_of("fe80::1", 53);
    struct sockaddr_storage scoped2 = scoped;
    ((struct sockaddr_in6 *)&scoped)->sin6_scope_id = 1;
    ((struct sockaddr_in6 *)&scoped2)->sin6_scope_id = 2;

    CHECK_INT(udp_nat_init(&t, 7), 0);
    udp_nat_insert(&t, &a, SA(x), 0, 0);
    udp_nat_insert(&t, &b, SA(mapped), 0, 0);
    udp_nat_insert(&t, &c, SA(scoped), 0, 0);
    CHECK(udp_nat_find(&t, SA(x), 0) == &a);
    CHECK(udp_nat_find(&t, SA(mapped), 0) == &b);
    CHECK(udp_nat_find(&t, SA(plain), 0) == NULL);
    CHECK(udp_nat_find(&t, SA(scoped), 0) == &c);
    CHECK(udp_nat_find(&t, SA(scoped2), 0) == NULL);
    udp_nat_destroy(&t);
}

/* The same client address sending to two SOCKS5 relay sockets is two associations. */
TEST(test_udp_nat_tells_scopes_apart)
{
    struct udp_nat t;
    struct udp_nat_entry a, b;
    struct sockaddr_storage c = sockaddr_of("10.0.0.1", 1000);

    CHECK_INT(udp_nat_init(&t, 3), 0);
    udp_nat_insert(&t, &a, SA(c), 0, 0);
    udp_nat_insert(&t, &b, SA(c), 7, 0);
    CHECK(udp_nat_find(&t, SA(c), 0) == &a);
    CHECK(udp_nat_find(&t, SA(c), 7) == &b);
    CHECK(udp_nat_find(&t, SA(c), 8) == NULL);
    udp_nat_remove(&t, &a);
    CHECK(udp_nat_find(&t, SA(c), 0) == NULL);
    CHECK(udp_nat_find(&t, SA(c), 7) == &b);
    udp_nat_destroy(&t);
}

TEST(test_udp_nat_touch_moves_to_newest)
{
    struct udp_nat t;
    struct udp_nat_entry e[3];
    struct sockaddr_storage c[3];

    CHECK_INT(udp_nat_init(&t, 1), 0);
    for (int i = 0; i < 3; i++) {
        c[i] = sockaddr_of("192.0.2.1", (uint16_t)(100 + i));
        udp_nat_insert(&t, &e[i], SA(c[i]), 0, (double)i);
    }
    CHECK(udp_nat_oldest(&t) == &e[0]);
    CHECK(udp_nat_newest(&t) == &e[2]);
    udp_nat_touch(&t, &e[0], 10.0);
    CHECK(udp_nat_newest(&t) == &e[0]);
    CHECK(udp_nat_oldest(&t) == &e[1]);
    CHECK(e[0].last_active == 10.0);
    CHECK(udp_nat_older(&e[0]) == &e[2] && udp_nat_newer(&e[2]) == &e[0]);
    udp_nat_touch(&t, &e[0], 11.0); /* already the newest */
    CHECK(udp_nat_newest(&t) == &e[0]);
    udp_nat_remove(&t, &e[1]);
    CHECK(udp_nat_oldest(&t) == &e[2]);
    CHECK(udp_nat_older(&e[2]) == NULL);
    udp_nat_destroy(&t);
}

TEST(test_udp_nat_grows_and_keeps_every_entry)
{
    enum { N = 5000 };
    struct udp_nat t;
    struct udp_nat_entry *e = calloc(N, sizeof *e);
    CHECK(e != NULL);
    CHECK_INT(udp_nat_init(&t, 99), 0);
    for (int i = 0; i < N; i++) {
        struct sockaddr_storage c = sockaddr_of(i % 2 ? "198.51.100.7" : "2001:db8::7", (uint16_t)(i + 1));
        udp_nat_insert(&t, &e[i], SA(c), 0, (double)i);
    }
    CHECK_INT(udp_nat_count(&t), N);
    CHECK(t.lru.nbuckets >= N);
    for (int i = 0; i < N; i++) {
        struct sockaddr_storage c = sockaddr_of(i % 2 ? "198.51.100.7" : "2001:db8::7", (uint16_t)(i + 1));
        CHECK(udp_nat_find(&t, SA(c), 0) == &e[i]);
    }
    /* Oldest first, as expiry walks it. */
    int seen = 0;
    for (struct udp_nat_entry *x = udp_nat_oldest(&t); x; x = udp_nat_newer(x), seen++)
        CHECK(x == &e[seen]);
    CHECK_INT(seen, N);
    for (int i = 0; i < N; i += 2)
        udp_nat_remove(&t, &e[i]);
    CHECK_INT(udp_nat_count(&t), N / 2);
    CHECK(udp_nat_oldest(&t) == &e[1]);
    udp_nat_destroy(&t);
    free(e);
}

TEST(test_udp_nat_seed_changes_placement)
{
    struct udp_nat a, b;
    struct udp_nat_entry ea, eb;
    struct sockaddr_storage c = sockaddr_of("203.0.113.9", 4444);
    CHECK_INT(udp_nat_init(&a, 1), 0);
    CHECK_INT(udp_nat_init(&b, 2), 0);
    udp_nat_insert(&a, &ea, SA(c), 0, 0);
    udp_nat_insert(&b, &eb, SA(c), 0, 0);
    CHECK(ea.node.hash != eb.node.hash);
    udp_nat_destroy(&a);
    udp_nat_destroy(&b);
}

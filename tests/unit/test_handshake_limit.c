/* test_handshake_limit.c: the per-source count of sessions in the handshake
 * (max_handshakes_per_source): the limit per source, sources apart, entries freed at zero. */
#include "autoconfig.h"

#include "handshake_limit.h"
#include "unit.h"

#include "netaddr.h"

static struct sockaddr *addr(struct sockaddr_storage *ss, const char *ip, uint16_t port)
{
    socklen_t len;
    if (netaddr_from_ip(ip, port, ss, &len) < 0)
        return NULL;
    return (struct sockaddr *)ss;
}

TEST(test_handshake_limit_refuses_beyond_max_per_source)
{
    struct handshake_limit h;
    struct sockaddr_storage a, b;
    CHECK_INT(handshake_limit_init(&h, 4), 0);
    for (int i = 0; i < 4; i++)
        CHECK(handshake_limit_enter(&h, addr(&a, "192.0.2.1", (uint16_t)(1000 + i))));
    CHECK(!handshake_limit_enter(&h, addr(&a, "192.0.2.1", 2000))); /* any port: same source */
    CHECK_INT(handshake_limit_count(&h, addr(&a, "192.0.2.1", 1)), 4);
    CHECK(handshake_limit_enter(&h, addr(&b, "192.0.2.2", 1000))); /* another source */
    CHECK_INT(handshake_limit_sources(&h), 2);
    handshake_limit_leave(&h, addr(&a, "192.0.2.1", 1000));
    CHECK(handshake_limit_enter(&h, addr(&a, "192.0.2.1", 3000))); /* a share came back */
    CHECK(!handshake_limit_enter(&h, addr(&a, "192.0.2.1", 3001)));
    for (int i = 0; i < 4; i++)
        handshake_limit_leave(&h, addr(&a, "192.0.2.1", 1));
    handshake_limit_leave(&h, addr(&b, "192.0.2.2", 1));
    CHECK_INT(handshake_limit_sources(&h), 0); /* entries freed at zero */
    CHECK_INT(handshake_limit_count(&h, addr(&a, "192.0.2.1", 1)), 0);
    handshake_limit_destroy(&h);
}

TEST(test_handshake_limit_ipv4_mapped_is_the_same_source)
{
    struct handshake_limit h;
    struct sockaddr_storage a;
    CHECK_INT(handshake_limit_init(&h, 1), 0);
    CHECK(handshake_limit_enter(&h, addr(&a, "198.51.100.7", 1)));
    CHECK(!handshake_limit_enter(&h, addr(&a, "::ffff:198.51.100.7", 2)));
    CHECK(handshake_limit_enter(&h, addr(&a, "2001:db8::7", 1)));
    CHECK(!handshake_limit_enter(&h, addr(&a, "2001:db8::7", 2)));
    CHECK_INT(handshake_limit_sources(&h), 2);
    handshake_limit_destroy(&h); /* frees what is still counted */
}

TEST(test_handshake_limit_many_sources)
{
    struct handshake_limit h;
    struct sockaddr_storage a;
    char ip[32];
    CHECK_INT(handshake_limit_init(&h, 2), 0);
    for (int i = 0; i < 5000; i++) {
        snprintf(ip, sizeof ip, "10.%d.%d.1", i / 256, i % 256);
        CHECK(handshake_limit_enter(&h, addr(&a, ip, 1)));
        CHECK(handshake_limit_enter(&h, addr(&a, ip, 2)));
        CHECK(!handshake_limit_enter(&h, addr(&a, ip, 3)));
    }
    CHECK_INT(handshake_limit_sources(&h), 5000);
    for (int i = 0; i < 5000; i++) {
        snprintf(ip, sizeof ip, "10.%d.%d.1", i / 256, i % 256);
        handshake_limit_leave(&h, addr(&a, ip, 1));
        handshake_limit_leave(&h, addr(&a, ip, 1));
    }
    CHECK_INT(handshake_limit_sources(&h), 0);
    handshake_limit_destroy(&h);
}

TEST(test_handshake_limit_init_refuses_zero)
{
    struct handshake_limit h;
    CHECK_INT(handshake_limit_init(&h, 0), -1);
}

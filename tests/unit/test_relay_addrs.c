/* test_relay_addrs.c: the server's own endpoints, refused as targets (a proxy loop): a
 * specific listener is its address and port only; a wildcard is every local address of its
 * family, all of loopback and the unspecified address; IPv4-mapped targets count as IPv4. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "relay_addrs.h"
#include "unit.h"

static struct sockaddr_storage ss;

/* An address literal with a port, as a sockaddr (one at a time: a static buffer). */
static const struct sockaddr *sa(const char *ip, unsigned port)
{
    memset(&ss, 0, sizeof ss);
    if (strchr(ip, ':')) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
        inet_pton(AF_INET6, ip, &s6->sin6_addr);
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)port);
        inet_pton(AF_INET, ip, &s4->sin_addr);
    }
    return (const struct sockaddr *)&ss;
}

TEST(test_relay_addrs_specific_listener_is_its_address_and_port_only)
{
    struct relay_addrs *a = relay_addrs_new();
    CHECK(a != NULL);
    CHECK_INT(relay_addrs_add_listener(a, sa("198.18.0.1", 8488)), 0);
    CHECK(!relay_addrs_needs_local(a));
    CHECK(relay_addrs_contains(a, sa("198.18.0.1", 8488)));
    CHECK(relay_addrs_contains(a, sa("::ffff:198.18.0.1", 8488))); /* v4-mapped */
    CHECK(!relay_addrs_contains(a, sa("198.18.0.1", 8489)));
    CHECK(!relay_addrs_contains(a, sa("198.18.0.2", 8488)));
    CHECK(!relay_addrs_contains(a, sa("127.0.0.1", 8488)));
    CHECK(!relay_addrs_contains(a, sa("0.0.0.0", 8488)));
    relay_addrs_free(a);
}

TEST(test_relay_addrs_loopback_listener_is_reached_through_the_unspecified_address)
{
    struct relay_addrs *a = relay_addrs_new();
    relay_addrs_add_listener(a, sa("127.0.0.1", 8488));
    CHECK(relay_addrs_contains(a, sa("127.0.0.1", 8488)));
    CHECK(relay_addrs_contains(a, sa("0.0.0.0", 8488)));
    CHECK(!relay_addrs_contains(a, sa("127.0.0.2", 8488))); /* bound to .1 only */
    CHECK(!relay_addrs_contains(a, sa("::1", 8488)));
    relay_addrs_free(a);
}

TEST(test_relay_addrs_wildcard_is_every_local_address_of_its_family)
{
    struct relay_addrs *a = relay_addrs_new();
    relay_addrs_add_listener(a, sa("0.0.0.0", 8488));
    CHECK(relay_addrs_needs_local(a));
    relay_addrs_add_local(a, sa("198.18.0.1", 0));
    relay_addrs_add_local(a, sa("2001:db8::1", 0));
    CHECK(relay_addrs_contains(a, sa("198.18.0.1", 8488)));
    CHECK(relay_addrs_contains(a, sa("127.0.0.1", 8488)));
    CHECK(relay_addrs_contains(a, sa("127.1.2.3", 8488))); /* all of 127/8 is this host */
    CHECK(relay_addrs_contains(a, sa("0.0.0.0", 8488)));
    CHECK(relay_addrs_contains(a, sa("::ffff:198.18.0.1", 8488)));
    CHECK(!relay_addrs_contains(a, sa("198.18.0.2", 8488)));
    CHECK(!relay_addrs_contains(a, sa("198.18.0.1", 80)));
    /* IPV6_V6ONLY: an IPv4 wildcard is not reached over IPv6 */
    CHECK(!relay_addrs_contains(a, sa("2001:db8::1", 8488)));
    CHECK(!relay_addrs_contains(a, sa("::1", 8488)));
    relay_addrs_clear_local(a);
    CHECK(!relay_addrs_contains(a, sa("198.18.0.1", 8488)));
    CHECK(relay_addrs_contains(a, sa("127.0.0.1", 8488)));
    relay_addrs_free(a);
}

TEST(test_relay_addrs_ipv6_wildcard)
{
    struct relay_addrs *a = relay_addrs_new();
    relay_addrs_add_listener(a, sa("::", 8488));
    relay_addrs_add_local(a, sa("2001:db8::1", 0));
    CHECK(relay_addrs_contains(a, sa("2001:db8::1", 8488)));
    CHECK(relay_addrs_contains(a, sa("::1", 8488)));
    CHECK(relay_addrs_contains(a, sa("::", 8488)));
    CHECK(!relay_addrs_contains(a, sa("2001:db8::2", 8488)));
    CHECK(!relay_addrs_contains(a, sa("127.0.0.1", 8488)));
    relay_addrs_free(a);
}

TEST(test_relay_addrs_refresh_reads_the_interfaces_at_most_once_per_max_age)
{
    struct relay_addrs *a = relay_addrs_new();
    relay_addrs_add_listener(a, sa("0.0.0.0", 8488));
    relay_addrs_add_local(a, sa("192.0.2.77", 0)); /* TEST-NET-1: no machine's address */
    CHECK_INT(relay_addrs_refresh(a, 100.0, 10.0), 0);
    CHECK(!relay_addrs_contains(a, sa("192.0.2.77", 8488))); /* replaced by getifaddrs' list */
    relay_addrs_add_local(a, sa("192.0.2.77", 0));
    CHECK_INT(relay_addrs_refresh(a, 105.0, 10.0), 0); /* not due yet: the list stays */
    CHECK(relay_addrs_contains(a, sa("192.0.2.77", 8488)));
    CHECK_INT(relay_addrs_refresh(a, 111.0, 10.0), 0);
    CHECK(!relay_addrs_contains(a, sa("192.0.2.77", 8488)));
    relay_addrs_free(a);
}

TEST(test_relay_addrs_other_families_and_null)
{
    struct relay_addrs *a = relay_addrs_new();
    struct sockaddr un = {.sa_family = AF_UNIX};
    CHECK_INT(relay_addrs_add_listener(a, &un), -1);
    CHECK(!relay_addrs_contains(a, &un));
    CHECK(!relay_addrs_contains(NULL, sa("127.0.0.1", 1)));
    relay_addrs_free(a);
    relay_addrs_free(NULL);
}

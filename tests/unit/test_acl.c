/* test_acl.c: block_private at the edges of every special-purpose range, the libev ACL file's
 * [outbound_block_list] (IPs, CIDRs, hostname regexes, errors with FILE:LINE), and its client
 * lists and modes: which clients a server serves, which targets a client bypasses. */
#include "autoconfig.h"

#include "acl.h"
#include "netaddr.h"
#include "unit.h"

#include <dirent.h>
#include <stdlib.h>
#include <sys/un.h>

struct case_ip {
    const char *ip;
    bool is_private;
};

/* Each range's first and last address, and the addresses just outside it. */
static const struct case_ip v4_cases[] = {
    {"0.0.0.0", true},          {"0.255.255.255", true},   {"1.0.0.0", false},
    {"9.255.255.255", false},   {"10.0.0.0", true},        {"10.255.255.255", true},
    {"11.0.0.0", false},        {"100.63.255.255", false}, {"100.64.0.0", true},
    {"100.127.255.255", true},  {"100.128.0.0", false},    {"126.255.255.255", false},
    {"127.0.0.0", true},        {"127.0.0.1", true},       {"127.255.255.255", true},
    {"128.0.0.0", false},       {"169.253.255.255", false}, {"169.254.0.0", true},
    {"169.254.169.254", true},  {"169.254.255.255", true}, {"169.255.0.0", false},
    {"172.15.255.255", false},  {"172.16.0.0", true},      {"172.31.255.255", true},
    {"172.32.0.0", false},      {"191.255.255.255", false}, {"192.0.0.0", true},
    {"192.0.0.255", true},      {"192.0.1.0", false},      {"192.0.1.255", false},
    {"192.0.2.0", true},        {"192.0.2.255", true},     {"192.0.3.0", false},
    {"192.88.98.255", false},   {"192.88.99.0", true},     {"192.88.99.255", true},
    {"192.88.100.0", false},    {"192.167.255.255", false}, {"192.168.0.0", true},
    {"192.168.255.255", true},  {"192.169.0.0", false},    {"198.17.255.255", false},
    {"198.18.0.0", true},       {"198.19.255.255", true},  {"198.20.0.0", false},
    {"198.51.99.255", false},   {"198.51.100.0", true},    {"198.51.100.255", true},
    {"198.51.101.0", false},    {"203.0.112.255", false},  {"203.0.113.0", true},
    {"203.0.113.255", true},    {"203.0.114.0", false},    {"223.255.255.255", false},
    {"224.0.0.0", true},        {"239.255.255.255", true}, {"240.0.0.0", true},
    {"255.255.255.254", true},  {"255.255.255.255", true}, {"8.8.8.8", false},
    {"1.1.1.1", false},         {"93.184.216.34", false},
};

static const struct case_ip v6_cases[] = {
    {"::", true},
    {"::1", true},
    {"::2", true},
    {"::1.2.3.4", true}, /* IPv4-compatible, deprecated */
    {"::1:0:0", true},   /* unassigned, outside 2000::/3 */
    {"::ffff:127.0.0.1", true},
    {"::ffff:10.1.2.3", true},
    {"::ffff:100.64.0.1", true},
    {"::ffff:0.0.0.0", true},
    {"::ffff:8.8.8.8", false},
    {"::ffff:1.1.1.1", false},
    {"64:ff9b::8.8.8.8", false},
    {"64:ff9b::192.168.1.1", true},
    {"64:ff9b::7f00:1", true},
    {"64:ff9b:1::808:808", true}, /* NAT64 local-use */
    {"100::", true},
    {"100::ffff:ffff:ffff:ffff", true},
    {"1fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", true},
    {"2000::", false},
    {"2000:ffff:ffff:ffff:ffff:ffff:ffff:ffff", false},
    {"2001::", true},
    {"2001::1", true}, /* Teredo, inside 2001::/23 */
    {"2001:1ff:ffff:ffff:ffff:ffff:ffff:ffff", true},
    {"2001:200::", false},
    {"2001:db7:ffff:ffff:ffff:ffff:ffff:ffff", false},
    {"2001:db8::", true},
    {"2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", true},
    {"2001:db9::", false},
    {"2001:4860:4860::8888", false},
    {"2606:4700::1111", false},
    {"2a00:1450:4001::1", false},
    {"3ffe:ffff:ffff:ffff:ffff:ffff:ffff:ffff", false},
    {"3fff::", true},
    {"3fff:fff:ffff:ffff:ffff:ffff:ffff:ffff", true},
    {"3fff:1000::", false},
    {"3fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", false},
    {"4000::", true},
    {"fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", true},
    {"fc00::", true},
    {"fd12:3456::1", true},
    {"fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", true},
    {"fe80::1", true},
    {"febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff", true},
    {"fec0::1", true},
    {"feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", true},
    {"ff00::", true},
    {"ff02::1", true},
    {"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", true},
};

static struct sockaddr_storage addr_of(const char *ip)
{
    struct sockaddr_storage ss;
    socklen_t len;
    if (netaddr_from_ip(ip, 443, &ss, &len) < 0) {
        fprintf(stderr, "bad test address %s\n", ip);
        _Exit(2);
    }
    return ss;
}

static bool allowed(const struct acl *a, const char *ip)
{
    struct sockaddr_storage ss = addr_of(ip);
    return acl_address_allowed(a, (struct sockaddr *)&ss);
}

static bool is_private(const char *ip)
{
    struct sockaddr_storage ss = addr_of(ip);
    return acl_is_private((struct sockaddr *)&ss);
}

static void check_cases(const struct case_ip *cases, size_t n)
{
    struct acl *a = acl_new(true);
    CHECK(a != NULL);
    for (size_t i = 0; i < n; i++) {
        if (is_private(cases[i].ip) != cases[i].is_private ||
            allowed(a, cases[i].ip) == cases[i].is_private) {
            unit_fail(__FILE__, __LINE__, "%s should be %s", cases[i].ip,
                      cases[i].is_private ? "blocked" : "allowed");
        }
    }
    acl_free(a);
}

TEST(test_acl_ipv4_ranges_and_neighbours)
{
    check_cases(v4_cases, sizeof v4_cases / sizeof v4_cases[0]);
}

TEST(test_acl_ipv6_ranges_and_neighbours)
{
    check_cases(v6_cases, sizeof v6_cases / sizeof v6_cases[0]);
}

TEST(test_acl_block_private_off_allows_loopback)
{
    struct acl *a = acl_new(false);
    CHECK(allowed(a, "127.0.0.1"));
    CHECK(allowed(a, "::1"));
    CHECK(allowed(a, "10.0.0.1"));
    CHECK(allowed(a, "::ffff:192.168.0.1"));
    CHECK(is_private("127.0.0.1")); /* the predicate itself does not change */
    acl_free(a);
    a = acl_new(true);
    CHECK(!allowed(a, "127.0.0.1"));
    CHECK(!allowed(a, "::1"));
    acl_free(a);
}

TEST(test_acl_non_ip_family_refused)
{
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    struct acl *a = acl_new(false);
    CHECK(!acl_address_allowed(a, (struct sockaddr *)&un));
    CHECK(!acl_address_allowed(NULL, (struct sockaddr *)&un));
    CHECK(acl_is_private((struct sockaddr *)&un));
    acl_free(a);
}

TEST(test_acl_null_means_no_policy)
{
    CHECK(allowed(NULL, "127.0.0.1"));
    CHECK(!acl_host_blocked(NULL, "anything.example"));
    acl_free(NULL);
}

static const char acl_text[] = "# a shadowsocks-libev ACL file\n"
                               "[proxy_all]\n"
                               "\n"
                               "[bypass_list]\n"
                               "8.8.8.8\n"
                               "(^|\\.)ignored\\.com$\n"
                               "8.8.4.4 # a comment after a rule\n"
                               "\n"
                               "[outbound_block_list]\n"
                               "  1.2.3.4  \n"
                               "10.20.1.2/16\r\n"
                               "2001:4860:1::/32\n"
                               "::ffff:0:0/128\n"
                               "   # indented comment\n"
                               "(^|\\.)blocked\\.example$\n"
                               "^ads\\.\n"
                               "[a-z]+\\.evil\\.org$\n"
                               "Tracker.NET\n"
                               "[white_list]\n"
                               "9.9.9.9\n";

static struct acl *load(bool block_private, const char *text, int *rc, char *err, size_t errlen)
{
    struct acl *a = acl_new(block_private);
    err[0] = '\0';
    *rc = acl_load_file(a, unit_write_file("test.acl", text), err, errlen);
    return a;
}

TEST(test_acl_file_ip_and_cidr_rules)
{
    char err[256];
    int rc;
    struct acl *a = load(false, acl_text, &rc, err, sizeof err);
    CHECK_INT(rc, 0);
    CHECK_STR(err, "");
    CHECK(!allowed(a, "1.2.3.4"));
    CHECK(allowed(a, "1.2.3.5"));
    CHECK(allowed(a, "1.2.3.3"));
    CHECK(!allowed(a, "::ffff:1.2.3.4")); /* dual-stack view of the same address */
    CHECK(allowed(a, "10.19.255.255"));
    CHECK(!allowed(a, "10.20.0.0"));
    CHECK(!allowed(a, "10.20.255.255"));
    CHECK(allowed(a, "10.21.0.0"));
    CHECK(allowed(a, "2001:4859:ffff:ffff:ffff:ffff:ffff:ffff"));
    CHECK(!allowed(a, "2001:4860::"));
    CHECK(!allowed(a, "2001:4860:4860::8888"));
    CHECK(allowed(a, "2001:4861::"));
    CHECK(!allowed(a, "::ffff:0:0"));
    CHECK(allowed(a, "8.8.8.8")); /* bypass_list is a client's business */
    CHECK(allowed(a, "8.8.4.4"));
    CHECK(allowed(a, "9.9.9.9"));
    CHECK(allowed(a, "127.0.0.1")); /* block_private is off here */
    acl_free(a);
}

TEST(test_acl_file_host_rules)
{
    char err[256];
    int rc;
    struct acl *a = load(false, acl_text, &rc, err, sizeof err);
    CHECK_INT(rc, 0);
    CHECK(acl_host_blocked(a, "blocked.example"));
    CHECK(acl_host_blocked(a, "www.blocked.example"));
    CHECK(acl_host_blocked(a, "WWW.Blocked.Example"));
    CHECK(acl_host_blocked(a, "blocked.example.")); /* the root label changes nothing */
    CHECK(!acl_host_blocked(a, "notblocked.example"));
    CHECK(!acl_host_blocked(a, "blocked.example.com"));
    CHECK(acl_host_blocked(a, "ads.example.com"));
    CHECK(!acl_host_blocked(a, "x.ads.example.com"));
    CHECK(acl_host_blocked(a, "www.evil.org"));
    CHECK(!acl_host_blocked(a, "evil.org"));
    CHECK(acl_host_blocked(a, "tracker.net"));
    CHECK(!acl_host_blocked(a, "ignored.com"));
    CHECK(!acl_host_blocked(a, "example.org"));
    /* IP literals as host names go by the CIDR rules. */
    CHECK(acl_host_blocked(a, "1.2.3.4"));
    CHECK(!acl_host_blocked(a, "1.2.3.5"));
    CHECK(acl_host_blocked(a, "2001:4860::1"));
    acl_free(a);
}

TEST(test_acl_file_with_block_private)
{
    char err[256];
    int rc;
    struct acl *a = load(true, acl_text, &rc, err, sizeof err);
    CHECK_INT(rc, 0);
    CHECK(!allowed(a, "127.0.0.1"));
    CHECK(!allowed(a, "1.2.3.4"));
    CHECK(allowed(a, "1.2.3.5"));
    /* A host rule is only about names; private checks happen on the resolved address. */
    CHECK(!acl_host_blocked(a, "127.0.0.1"));
    acl_free(a);
}

static void check_load_error(const char *text, const char *want)
{
    char err[256], path_line[300];
    int rc;
    struct acl *a = load(false, text, &rc, err, sizeof err);
    CHECK_INT(rc, -1);
    snprintf(path_line, sizeof path_line, "%s/test.acl:", unit_tmpdir());
    CHECK_CONTAINS(err, path_line);
    CHECK_CONTAINS(err, want);
    acl_free(a);
}

TEST(test_acl_file_invalid_cidr)
{
    check_load_error("[outbound_block_list]\n10.0.0.0/33\n", ".acl:2: invalid address or CIDR "
                                                             "'10.0.0.0/33'");
    check_load_error("[outbound_block_list]\n\n1.2.3.4/\n", ".acl:3: invalid address or CIDR");
    check_load_error("[outbound_block_list]\n::1/129\n", ".acl:2: invalid address or CIDR");
    check_load_error("[outbound_block_list]\n10.0.0.0/8x\n", ".acl:2: invalid address or CIDR");
    check_load_error("[outbound_block_list]\n10.0.0.0/-1\n", ".acl:2: invalid address or CIDR");
    check_load_error("[outbound_block_list]\n300.1.2.3\n", ".acl:2: invalid address or CIDR");
    check_load_error("[outbound_block_list]\n2001:db8::g/32\n", ".acl:2: invalid address");
}

TEST(test_acl_file_invalid_regex)
{
    check_load_error("# x\n[outbound_block_list]\n(unclosed\n",
                     ".acl:3: invalid regex '(unclosed'");
    check_load_error("[outbound_block_list]\nok\\.com\n[z-a]\\.com\n", ".acl:3: invalid regex");
}

TEST(test_acl_file_unknown_section)
{
    check_load_error("[proxy_all]\n[outbound_blocklist]\n1.2.3.4\n",
                     ".acl:2: unknown section [outbound_blocklist]");
}

TEST(test_acl_file_missing)
{
    char err[256];
    struct acl *a = acl_new(false);
    CHECK_INT(acl_load_file(a, "/nonexistent/dir/x.acl", err, sizeof err), -1);
    CHECK_STR(err, "/nonexistent/dir/x.acl: No such file or directory");
    acl_free(a);
}

TEST(test_acl_file_prefix_bounds)
{
    char err[256];
    int rc;
    struct acl *a = load(false,
                         "[outbound_block_list]\n0.0.0.0/0\n::/0\n", &rc, err, sizeof err);
    CHECK_INT(rc, 0);
    CHECK(!allowed(a, "8.8.8.8"));
    CHECK(!allowed(a, "2606:4700::1111"));
    acl_free(a);
    /* Host bits in a rule are ignored, whether the prefix ends inside a byte or on one. */
    a = load(false,
             "[outbound_block_list]\n192.0.2.1/32\n2001:db8::1/128\n2001:db8:ffff:1::/33\n"
             "2001:4860:12ff::/40\n",
             &rc, err, sizeof err);
    CHECK_INT(rc, 0);
    CHECK(!allowed(a, "192.0.2.1"));
    CHECK(allowed(a, "192.0.2.0"));
    CHECK(!allowed(a, "2001:db8::1"));
    CHECK(allowed(a, "2001:db8::2"));
    CHECK(!allowed(a, "2001:db8:8000::"));
    CHECK(allowed(a, "2001:db8:7fff:ffff:ffff:ffff:ffff:ffff"));
    CHECK(!allowed(a, "2001:4860:1200::1"));
    CHECK(!allowed(a, "2001:4860:12ff::1"));
    CHECK(allowed(a, "2001:4860:1300::"));
    acl_free(a);
}

TEST(test_acl_many_rules)
{
    /* Enough lines to grow every array several times. */
    static char text[64 * 1024];
    size_t off = (size_t)snprintf(text, sizeof text, "[outbound_block_list]\n");
    for (int i = 0; i < 300; i++)
        off += (size_t)snprintf(text + off, sizeof text - off,
                                "10.%d.%d.0/24\n2001:db8:%x::/48\n^host%d\\.example$\n",
                                i / 256, i % 256, i, i);
    char err[256];
    int rc;
    struct acl *a = load(false, text, &rc, err, sizeof err);
    CHECK_INT(rc, 0);
    CHECK(!allowed(a, "10.1.43.9"));   /* i = 299 */
    CHECK(allowed(a, "10.1.44.9"));
    CHECK(!allowed(a, "2001:db8:12b::1"));
    CHECK(allowed(a, "2001:db8:12c::1"));
    CHECK(acl_host_blocked(a, "host299.example"));
    CHECK(acl_host_blocked(a, "host0.example"));
    CHECK(!acl_host_blocked(a, "host300.example"));
    acl_free(a);
}

TEST(test_acl_overlong_host_blocked)
{
    char host[300];
    memset(host, 'a', 299);
    host[299] = '\0';
    struct acl *a = acl_new(false);
    CHECK(acl_host_blocked(a, host));
    host[255] = '\0';
    CHECK(!acl_host_blocked(a, host));
    acl_free(a);
}

/* ---- Client lists and modes --------------------------------------------------------------- */

/* Loads text (block_private off); NULL, with the error reported, if it does not load. */
static struct acl *load_ok(const char *text)
{
    char err[256];
    int rc;
    struct acl *a = load(false, text, &rc, err, sizeof err);
    if (rc == 0)
        return a;
    unit_fail(__FILE__, __LINE__, "%s", err);
    acl_free(a);
    return NULL;
}

static bool client_ok(const struct acl *a, const char *ip)
{
    struct sockaddr_storage ss = addr_of(ip);
    return acl_client_allowed(a, (const struct sockaddr *)&ss);
}

static enum acl_route route_addr(const struct acl *a, const char *ip)
{
    struct sockaddr_storage ss = addr_of(ip);
    return acl_route_address(a, (const struct sockaddr *)&ss);
}

TEST(test_acl_default_mode_is_accept_all)
{
    struct acl *a = load_ok("[black_list]\n192.0.2.0/24\n");
    CHECK(a);
    CHECK_INT(acl_get_mode(a), ACL_ACCEPT_ALL);
    CHECK_INT(acl_sections(a), ACL_SECTION_BLACK | ACL_SECTION_SERVER_NAMES);
    CHECK(!client_ok(a, "192.0.2.7"));
    CHECK(!client_ok(a, "::ffff:192.0.2.7")); /* a dual-stack listener's view */
    CHECK(client_ok(a, "192.0.3.1"));
    CHECK(client_ok(a, "2001:db8::1"));
    acl_free(a);
    CHECK_INT(acl_get_mode(NULL), ACL_ACCEPT_ALL);
    CHECK_INT(acl_sections(NULL), 0);
    CHECK(client_ok(NULL, "192.0.2.7"));
}

TEST(test_acl_accept_all_black_list_clients)
{
    struct acl *a = load_ok("[accept_all]\n[black_list]\n127.0.0.1\n2001:db8:1::/48\n"
                            "[white_list]\n127.0.0.1\n10.0.0.0/8\n");
    CHECK(a);
    CHECK_INT(acl_sections(a),
              ACL_SECTION_MODE | ACL_SECTION_BLACK | ACL_SECTION_WHITE | ACL_SECTION_SERVER_NAMES);
    CHECK(!client_ok(a, "127.0.0.1")); /* in both lists: black wins, as in libev */
    CHECK(client_ok(a, "127.0.0.2"));
    CHECK(!client_ok(a, "2001:db8:1:ffff::1"));
    CHECK(client_ok(a, "2001:db8:2::1"));
    CHECK(client_ok(a, "10.1.1.1"));
    acl_free(a);
}

TEST(test_acl_reject_all_white_list_clients)
{
    struct acl *a = load_ok("[reject_all]\n[white_list]\n10.0.0.0/8\n::1\n2001:db8::/32\n"
                            "[black_list]\n10.9.9.9\n");
    CHECK(a);
    CHECK_INT(acl_get_mode(a), ACL_REJECT_ALL);
    CHECK(client_ok(a, "10.1.2.3"));
    CHECK(client_ok(a, "::ffff:10.1.2.3"));
    CHECK(!client_ok(a, "10.9.9.9")); /* black-listed inside the white network */
    CHECK(!client_ok(a, "11.0.0.1"));
    CHECK(!client_ok(a, "127.0.0.1"));
    CHECK(client_ok(a, "::1"));
    CHECK(client_ok(a, "2001:db8:ffff::1"));
    CHECK(!client_ok(a, "2001:db9::1"));
    acl_free(a);
}

TEST(test_acl_last_mode_header_wins)
{
    struct acl *a = load_ok("[reject_all]\n[accept_all]\n");
    CHECK(a);
    CHECK_INT(acl_get_mode(a), ACL_ACCEPT_ALL);
    CHECK(client_ok(a, "192.0.2.1"));
    acl_free(a);
    a = load_ok("[proxy_all]\n[bypass_all]\n");
    CHECK(a);
    CHECK_INT(acl_get_mode(a), ACL_REJECT_ALL);
    CHECK(!client_ok(a, "192.0.2.1"));
    acl_free(a);
}

TEST(test_acl_lines_before_any_header_are_black)
{
    struct acl *a = load_ok("  192.0.2.1  \n^bad\\.example$\n");
    CHECK(a);
    CHECK_INT(acl_sections(a), ACL_SECTION_BLACK);
    CHECK(!client_ok(a, "192.0.2.1"));
    CHECK_INT(acl_route_host(a, "bad.example"), ACL_BYPASS);
    CHECK(allowed(a, "192.0.2.1")); /* not an outbound block */
    acl_free(a);
}

/* The client section names are libev's synonyms: bypass = black, proxy = white. */
TEST(test_acl_bypass_and_proxy_are_black_and_white)
{
    struct acl *a = load_ok("[bypass_list]\n192.0.2.1\n[proxy_list]\n192.0.2.2\n");
    CHECK(a);
    CHECK_INT(acl_sections(a), ACL_SECTION_BLACK | ACL_SECTION_WHITE | ACL_SECTION_CLIENT_NAMES);
    CHECK(!client_ok(a, "192.0.2.1"));
    CHECK(client_ok(a, "192.0.2.2"));
    acl_free(a);
    a = load_ok("[black_list]\n192.0.2.1\n[white_list]\n192.0.2.2\n");
    CHECK(a);
    CHECK_INT(route_addr(a, "192.0.2.1"), ACL_BYPASS);
    CHECK_INT(route_addr(a, "192.0.2.2"), ACL_PROXY);
    acl_free(a);
}

TEST(test_acl_route_proxy_all)
{
    struct acl *a =
        load_ok("[proxy_all]\n[bypass_list]\n192.0.2.0/24\n2001:db8::/32\n"
                "(^|\\.)direct\\.example$\n[proxy_list]\n(^|\\.)via\\.direct\\.example$\n"
                "192.0.2.99\n");
    CHECK(a);
    CHECK_INT(route_addr(a, "192.0.2.5"), ACL_BYPASS);
    CHECK_INT(route_addr(a, "::ffff:192.0.2.5"), ACL_BYPASS);
    CHECK_INT(route_addr(a, "192.0.2.99"), ACL_BYPASS); /* both lists: bypass wins */
    CHECK_INT(route_addr(a, "192.0.3.5"), ACL_PROXY);
    CHECK_INT(route_addr(a, "2001:db8:5::1"), ACL_BYPASS);
    CHECK_INT(route_addr(a, "2001:db9::1"), ACL_PROXY);
    CHECK_INT(acl_route_host(a, "192.0.2.5"), ACL_BYPASS); /* IP literal: by the networks */
    CHECK_INT(acl_route_host(a, "2001:db8::7"), ACL_BYPASS);
    CHECK_INT(acl_route_host(a, "192.0.4.1"), ACL_PROXY);
    CHECK_INT(acl_route_host(a, "direct.example"), ACL_BYPASS);
    CHECK_INT(acl_route_host(a, "WWW.Direct.Example."), ACL_BYPASS);
    CHECK_INT(acl_route_host(a, "via.direct.example"), ACL_BYPASS); /* bypass rules first */
    CHECK_INT(acl_route_host(a, "indirect.example"), ACL_PROXY);    /* no rule: the mode */
    CHECK_INT(acl_route_host(NULL, "direct.example"), ACL_PROXY);
    acl_free(a);
}

TEST(test_acl_route_bypass_all)
{
    struct acl *a = load_ok("[bypass_all]\n[proxy_list]\n(^|\\.)far\\.example$\n198.51.100.0/24\n"
                            "2001:db8:aa::/48\n[bypass_list]\n198.51.100.7\n");
    CHECK(a);
    CHECK_INT(acl_route_host(a, "far.example"), ACL_PROXY);
    CHECK_INT(acl_route_host(a, "www.far.example"), ACL_PROXY);
    CHECK_INT(acl_route_host(a, "near.example"), ACL_BYPASS); /* no rule: the mode */
    CHECK_INT(route_addr(a, "198.51.100.1"), ACL_PROXY);
    CHECK_INT(route_addr(a, "198.51.100.7"), ACL_BYPASS);
    CHECK_INT(route_addr(a, "198.51.101.1"), ACL_BYPASS);
    CHECK_INT(route_addr(a, "2001:db8:aa::1"), ACL_PROXY);
    CHECK_INT(route_addr(a, "2001:db8:ab::1"), ACL_BYPASS);
    acl_free(a);
}

TEST(test_acl_role_notes_and_description)
{
    char line[200];
    struct acl *a = load_ok("[proxy_all]\n[bypass_list]\n192.0.2.0/24\n");
    CHECK(a);
    CHECK_CONTAINS(acl_role_note(a, true), "filter clients by address");
    CHECK(acl_role_note(a, false) == NULL);
    acl_describe(a, false, line, sizeof line);
    CHECK_STR(line, "mode proxy_all: connects directly only to bypass-listed targets");
    acl_describe(a, true, line, sizeof line);
    CHECK_STR(line, "mode accept_all: serves all clients but black-listed ones");
    acl_free(a);
    a = load_ok("[reject_all]\n[white_list]\n::1\n[outbound_block_list]\n10.0.0.0/8\n");
    CHECK(a);
    CHECK(acl_role_note(a, true) == NULL);
    CHECK(acl_role_note(a, false) == NULL); /* a client role refuses those targets too */
    acl_describe(a, true, line, sizeof line);
    CHECK_STR(line, "mode reject_all: serves only white-listed clients; blocks "
                    "[outbound_block_list] targets");
    acl_describe(a, false, line, sizeof line);
    CHECK_STR(line, "mode bypass_all: connects directly to all but proxy-listed targets; blocks "
                    "[outbound_block_list] targets");
    acl_free(a);
}

TEST(test_acl_client_sections_refuse_invalid_lines)
{
    check_load_error("[bypass_list]\n(unclosed\n", ".acl:2: invalid regex '(unclosed'");
    check_load_error("[white_list]\n1.2.3.4\n10.0.0.0/40 # comment\n",
                     ".acl:3: invalid address or CIDR '10.0.0.0/40'");
    check_load_error("\n192.0.2.256\n", ".acl:2: invalid address or CIDR");
    check_load_error("[reject_all]\n[whitelist]\n", ".acl:2: unknown section [whitelist]");
}

/* Where distributions install the ACL files shadowsocks-libev ships (acl/ in its source), and
 * RP_LIBEV_ACL_DIR for a copy elsewhere: each must load, since the same file is meant to work
 * with both programs. Returns how many files were loaded, or -1 after a failure. */
static int load_dir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;
    if (!d)
        return 0;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        char path[1024], err[512];
        if (len < 5 || strcmp(e->d_name + len - 4, ".acl") != 0)
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct acl *a = acl_new(false);
        int rc = acl_load_file(a, path, err, sizeof err);
        acl_free(a);
        if (rc < 0) {
            unit_fail(__FILE__, __LINE__, "%s", err);
            n = -1;
            break;
        }
        n++;
    }
    closedir(d);
    return n;
}

TEST(test_acl_shipped_libev_files_load)
{
    const char *dirs[] = {getenv("RP_LIBEV_ACL_DIR"), "/usr/share/shadowsocks-libev/acl",
                          "/usr/share/shadowsocks-libev", "/usr/share/doc/shadowsocks-libev/acl",
                          "/etc/shadowsocks-libev"};
    int total = 0;
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        int n = dirs[i] ? load_dir(dirs[i]) : 0;
        CHECK(n >= 0);
        total += n;
    }
    if (total == 0)
        unit_skip("no shadowsocks-libev .acl files installed (set RP_LIBEV_ACL_DIR to its acl/)");
    printf("  loaded %d shadowsocks-libev ACL files\n", total);
}

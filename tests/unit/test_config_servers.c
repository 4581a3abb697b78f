/* test_config_servers.c: config_servers.c. The local roles' servers: "server" as a list and
 * "servers" (shadowsocks-rust's shape, per-server method and password), the check interval and
 * balance_servers, as config_validate() types them into upstreams[]. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "unit.h"

static char err[1024];

/* Loads and validates json into *c; returns 0, or -1 with the message in err. */
static int load_valid(struct config *c, const char *json)
{
    return unit_config_valid(c, json, err, sizeof err);
}

TEST(test_config_servers_each_with_its_method_and_password)
{
    struct config c;
    CHECK_INT(load_valid(&c, "{\"role\": \"local\", \"local_port\": 1080, \"servers\": [\n"
                             " {\"server\": \"127.0.0.1\", \"server_port\": 8388, \"method\": "
                             "\"aes-128-gcm\", \"password\": \"one\"},\n"
                             " {\"server\": \"[::1]:8389\", \"password\": \"two\", \"remarks\": "
                             "\"b\"},\n"
                             " {\"server\": \"127.0.0.2\", \"server_port\": 8390, \"method\": "
                             "\"2022-blake3-aes-128-gcm\", \"password\": "
                             "\"9m/JekTfPGXR0xidFm+PWw==\"}],\n"
                             " \"server_check_interval\": 1, \"balance_servers\": "
                             "\"round-robin\"}"),
              0);
    CHECK_INT(c.n_upstream, 3);
    CHECK_STR(c.upstreams[0].addr.target.host, "127.0.0.1");
    CHECK_INT(c.upstreams[0].addr.target.port, 8388);
    CHECK_STR(crypto_method_info(c.upstreams[0].method)->name, "aes-128-gcm");
    CHECK_INT(c.upstreams[1].addr.target.port, 8389);
    /* no method of its own: the file's default */
    CHECK_STR(crypto_method_info(c.upstreams[1].method)->name, "chacha20-ietf-poly1305");
    CHECK_INT(c.upstreams[2].key.len, 16);
    /* each its own key: "one" and "two" differ */
    CHECK(memcmp(c.upstreams[0].key.bytes, c.upstreams[1].key.bytes, 16) != 0);
    CHECK_INT(c.server_check_interval, 1);
    CHECK_INT(c.balance_servers, BALANCE_SERVERS_ROUND_ROBIN);
    /* no file password: the first server's method and key stand for the file's */
    CHECK_STR(crypto_method_info(c.method)->name, "aes-128-gcm");
    CHECK(c.ports[0].key.len == 16 &&
          memcmp(c.ports[0].key.bytes, c.upstreams[0].key.bytes, 16) == 0);
    config_free(&c);
}

TEST(test_config_server_list_shares_the_file_key)
{
    struct config c;
    CHECK_INT(load_valid(&c, "{\"role\": \"tunnel\", \"local_port\": 53, \"tunnel_address\": "
                             "\"9.9.9.9:53\", \"server\": [\"192.0.2.1\", \"192.0.2.2:9\"], "
                             "\"server_port\": 8488, \"password\": \"x\"}"),
              0);
    CHECK_INT(c.n_upstream, 2);
    CHECK_INT(c.upstreams[0].addr.target.port, 8488);
    CHECK_INT(c.upstreams[1].addr.target.port, 9);
    CHECK(memcmp(c.upstreams[0].key.bytes, c.ports[0].key.bytes, c.ports[0].key.len) == 0);
    CHECK(memcmp(c.upstreams[1].key.bytes, c.ports[0].key.bytes, c.ports[0].key.len) == 0);
    CHECK_INT(c.server_check_interval, 10); /* the default */
    CHECK_INT(c.balance_servers, BALANCE_SERVERS_LATENCY);
    config_free(&c);
}

TEST(test_config_servers_bad)
{
    static const struct unit_bad_config bad[] = {
        {"{\"servers\": []}", "t.json:1:2: \"servers\": expected an array of 1 to 1024 objects"},
        {"{\"servers\": [1]}", "\"servers\"[0]: expected an object, got a number"},
        {"{\"servers\": [{\"server\": \"h\"}]}", "\"servers\"[0]: \"server_port\": expected a port"},
        {"{\"servers\": [{\"server\": \"h\", \"server_port\": 70000}]}", "\"server_port\""},
        {"{\"servers\": [{\"server_port\": 1}]}", "\"servers\"[0]: \"server\": expected"},
        {"{\"servers\": [{\"server\": \"h:1\", \"method\": \"rc4\"}]}", "\"method\": expected one of"},
        {"{\"servers\": [{\"server\": \"h:1\", \"password\": \"\"}]}", "non-empty string"},
        {"{\"servers\": [{\"server\": \"h:1\", \"plugin\": \"x\"}]}", "unknown member \"plugin\""},
        {"{\"server\": \"h\", \"servers\": [{\"server\": \"h:1\"}]}", "given with \"server\""},
        {"{\"servers\": [{\"server\": \"h:1\"}], \"server\": \"h\"}", "given with \"servers\""},
        {"{\"role\": \"local\", \"local_port\": 1, \"servers\": [{\"server\": \"h:1\"}]}",
         "no password"},
        {"{\"role\": \"local\", \"local_port\": 1, \"servers\": [{\"server\": \"h:1\", \"method\": "
         "\"2022-blake3-aes-128-gcm\", \"password\": \"short\"}]}",
         "\"servers\"[0]: the password is not a key for 2022-blake3-aes-128-gcm"},
        {"{\"server_check_interval\": 0}", "\"server_check_interval\""},
        {"{\"balance_servers\": \"fastest\"}", "expected \"latency\" or \"round-robin\""},
    };
    EXPECT_CONFIG_ERRORS(bad);
}

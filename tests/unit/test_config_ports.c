/* test_config_ports.c: config_ports.c. A server's several ports: libev's "port_password" and
 * the server role's "servers" (shadowsocks-rust's shape), as config_validate() types them into
 * ports[] (each its method, mode, key and users) and the listen list of (port, address). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "unit.h"

static char err[1024];

#define PSK16_A "AAECAwQFBgcICQoLDA0ODw=="
#define PSK16_B "EBESExQVFhcYGRobHB0eHw=="

/* Loads and validates json into *c; returns 0, or -1 with the message in err. */
static int load_valid(struct config *c, const char *json)
{
    return unit_config_valid(c, json, err, sizeof err);
}

/* The key libev derives from password for method (EVP_BytesToKey). */
static struct crypto_key key_of(enum crypto_method m, const char *password)
{
    struct crypto_key k;
    crypto_key_from_password(&k, m, password);
    return k;
}

TEST(test_config_port_password_three_ports_each_its_key)
{
    struct config c;
    CHECK_INT(load_valid(&c, "{\"server\": [\"127.0.0.1\", \"::1\"], \"method\": \"aes-128-gcm\",\n"
                             " \"mode\": \"tcp_and_udp\",\n"
                             " \"port_password\": {\"8381\": \"pw1\", \"8382\": \"pw2\",\n"
                             "                     \"8383\": \"pw3\"}}"),
              0);
    CHECK_INT(c.n_port, 3);
    CHECK_INT(c.n_listen, 6); /* every port on both addresses */
    const char *pw[] = {"pw1", "pw2", "pw3"};
    for (int i = 0; i < 3; i++) {
        struct crypto_key want = key_of(CRYPTO_AES_128_GCM, pw[i]);
        CHECK_INT(c.ports[i].port, 8381 + i);
        CHECK_INT(c.ports[i].method, CRYPTO_AES_128_GCM);
        CHECK_INT(c.ports[i].mode, MODE_TCP_AND_UDP);
        CHECK(c.ports[i].has_key);
        CHECK_MEM(c.ports[i].key.bytes, want.bytes, 16);
        CHECK_INT(config_port_index(&c, (uint16_t)(8381 + i)), i);
    }
    for (int l = 0; l < c.n_listen; l++) {
        CHECK_INT(c.listen[l].target.port, c.ports[c.listen_port[l]].port);
        CHECK_STR(c.listen[l].target.host, l % 2 ? "::1" : "127.0.0.1");
    }
    CHECK_INT(config_port_index(&c, 8388), -1);
    config_free(&c);
}

/* libev: port_password wins over server_port, and says so. */
TEST(test_config_port_password_wins_over_server_port)
{
    struct config c;
    unit_capture_stderr_start();
    int rc = load_valid(&c, "{\"server\": \"127.0.0.1\", \"server_port\": 8388,\n"
                            " \"port_password\": {\"8381\": \"pw1\"}}");
    const char *out = unit_capture_stderr_stop();
    CHECK_INT(rc, 0);
    CHECK_INT(c.n_port, 1);
    CHECK_INT(c.ports[0].port, 8381);
    CHECK_INT(c.listen[0].target.port, 8381);
    CHECK_CONTAINS(out, "t.json:1:25: \"server_port\" is ignored: \"port_password\" lists the "
                        "ports");
    config_free(&c);
}

TEST(test_config_port_password_errors_name_the_position)
{
    static const struct unit_bad_config bad[] = {
        {"{\"server\": \"127.0.0.1\",\n \"port_password\": {\"abc\": \"pw\"}}",
         "t.json:2:2: \"port_password\": member \"abc\": expected a port from 1 to 65535"},
        {"{\"server\": \"127.0.0.1\",\n \"port_password\": {\"70000\": \"pw\"}}",
         "t.json:2:2: \"port_password\": member \"70000\": expected a port"},
        {"{\"server\": \"127.0.0.1\",\n \"port_password\": {\"0\": \"pw\"}}",
         "t.json:2:2: \"port_password\": member \"0\""},
        {"{\"server\": \"127.0.0.1\",\n \"port_password\": {\"8381\": 1234}}",
         "t.json:2:2: \"port_password\": port 8381: expected a password (a non-empty string), "
         "got 1234"},
        {"{\"server\": \"127.0.0.1\",\n \"port_password\": {\"8381\": {\"password\": \"x\"}}}",
         "got an object"},
        {"{\"server\": \"127.0.0.1\",\n \"port_password\": {\"8381\": \"a\", \"08381\": \"b\"}}",
         "t.json:2:2: \"port_password\": port 8381 is listed twice"},
        {"{\"server\": \"127.0.0.1\",\n \"port_password\": {}}", "an object of 1 to 1024 members"},
        {"{\"server\": \"127.0.0.1\",\n \"port_password\": [\"8381\"]}", "got an array"},
        {"{\"server\": \"127.0.0.1:8388\",\n \"port_password\": {\"8381\": \"a\"}}",
         "t.json:1:2: \"server\": with \"port_password\", give addresses without a port"},
        {"{\"role\": \"local\", \"server\": \"127.0.0.1\", \"server_port\": 1, \"password\": \"x\", "
         "\"local_port\": 1080,\n \"port_password\": {\"8381\": \"a\"}}",
         "t.json:2:2: \"port_password\": only a server has several ports"},
        {"{\"server\": \"127.0.0.1\", \"users\": [{\"name\": \"a\", \"password\": \"b\"}],\n"
         " \"port_password\": {\"8381\": \"a\"}}",
         "\"users\": with several ports, give each port its users"},
        {"{\"port_password\": {\"8381\": \"a\"},\n \"servers\": [{\"server\": \"h:1\"}]}",
         "t.json:2:2: \"servers\": given with \"port_password\""},
        {"{\"server\": \"0.0.0.0\", \"port_password\": {\"8381\": \"password\"}}",
         "\"port_password\" \"8381\": the password is a placeholder"},
        {"{\"server\": \"127.0.0.1\", \"method\": \"2022-blake3-aes-128-gcm\",\n"
         " \"port_password\": {\"8381\": \"short\"}}",
         "t.json:2:2: \"port_password\" \"8381\": : expected the base64 of a 16-byte key"},
    };
    EXPECT_CONFIG_ERRORS(bad);
}

/* "servers" in the server role: each entry its own port, method, key, users and mode. */
TEST(test_config_servers_as_server_ports)
{
    struct config c;
    CHECK_INT(load_valid(&c, "{\"password\": \"file-pw\", \"method\": \"aes-256-gcm\",\n"
                             " \"servers\": [\n"
                             "  {\"server\": \"127.0.0.1\", \"server_port\": 8381, \"method\": "
                             "\"aes-128-gcm\", \"users\": [{\"name\": \"alice\", \"password\": "
                             "\"a1\"}, {\"name\": \"bob\", \"password\": \"b2\"}]},\n"
                             "  {\"server\": \"::1\", \"server_port\": 8382, \"method\": "
                             "\"2022-blake3-aes-128-gcm\", \"password\": \"" PSK16_A "\", "
                             "\"mode\": \"tcp_and_udp\", \"users\": [{\"name\": \"carol\", "
                             "\"password\": \"" PSK16_B "\"}]},\n"
                             "  {\"server\": \"127.0.0.1:8383\"}]}"),
              0);
    CHECK_INT(c.n_port, 3);
    CHECK_INT(c.n_listen, 3);
    /* SIP004 with users only: no key of its own; tcp_only, the file's mode */
    CHECK_INT(c.ports[0].method, CRYPTO_AES_128_GCM);
    CHECK(!c.ports[0].has_key);
    CHECK_INT(c.ports[0].n_users, 2);
    CHECK_STR(c.ports[0].users[1].name, "bob");
    struct crypto_key b2 = key_of(CRYPTO_AES_128_GCM, "b2");
    CHECK_MEM(c.ports[0].users[1].key.bytes, b2.bytes, 16);
    CHECK_INT(c.ports[0].mode, MODE_TCP_ONLY);
    /* SIP022 with an identity PSK and one user */
    CHECK_INT(c.ports[1].method, CRYPTO_2022_AES_128_GCM);
    CHECK_INT(c.ports[1].mode, MODE_TCP_AND_UDP);
    CHECK_INT(c.ports[1].key.bytes[1], 1);
    CHECK_INT(c.ports[1].users[0].key.bytes[0], 16);
    CHECK_STR(c.listen[1].target.host, "::1");
    CHECK_INT(c.listen_port[1], 1);
    /* the file's method and password */
    struct crypto_key f = key_of(CRYPTO_AES_256_GCM, "file-pw");
    CHECK_INT(c.ports[2].port, 8383);
    CHECK_INT(c.ports[2].method, CRYPTO_AES_256_GCM);
    CHECK_MEM(c.ports[2].key.bytes, f.bytes, 32);
    CHECK_INT(c.n_upstream, 0);
    config_free(&c);
}

TEST(test_config_servers_server_role_errors)
{
    static const struct unit_bad_config bad[] = {
        {"{\"password\": \"x1y2\",\n \"servers\": [{\"server\": \"127.0.0.1:8381\"},\n"
         " {\"server\": \"::1\", \"server_port\": 8381}]}",
         "t.json:2:2: \"servers\"[1]: port 8381 is also servers[0]'s"},
        {"{\"servers\": [{\"server\": \"127.0.0.1:8381\"}]}", "\"servers\"[0]: no password"},
        {"{\"password\": \"x1y2\", \"servers\": [{\"server\": \"127.0.0.1:8381\", \"mode\": "
         "\"both\"}]}",
         "\"servers\"[0]: \"mode\": expected \"tcp_only\""},
        {"{\"servers\": [{\"server\": \"127.0.0.1:8381\", \"mode\": \"tcp_and_udp\", \"users\": "
         "[{\"name\": \"a\", \"password\": \"b\"}]}]}",
         "\"servers\"[0]: \"mode\": a port with \"users\" and chacha20-ietf-poly1305 serves TCP "
         "only"},
        {"{\"servers\": [{\"server\": \"127.0.0.1:8381\", \"users\": [{\"name\": \"a\"}]}]}",
         "\"servers\"[0].\"users\"[0]: expected \"password\" as a non-empty string"},
        {"{\"servers\": [{\"server\": \"127.0.0.1:8381\", \"users\": [{\"name\": \"a\", "
         "\"password\": \"b\"}, {\"name\": \"a\", \"password\": \"c\"}]}]}",
         "\"servers\"[0]: \"users\"[1]: the name \"a\" is also users[0]'s"},
        {"{\"role\": \"local\", \"local_port\": 1, \"servers\": [{\"server\": \"h:1\", "
         "\"password\": \"x\", \"mode\": \"tcp_only\"}]}",
         "\"users\" and \"mode\" belong to a server role's ports"},
    };
    EXPECT_CONFIG_ERRORS(bad);
}

/* The local roles take at most CONFIG_MAX_SERVERS servers; a server up to CONFIG_MAX_PORTS. */
TEST(test_config_servers_many_ports)
{
    size_t cap = 64 + 80 * 300;
    char *json = malloc(cap);
    size_t at = (size_t)snprintf(json, cap, "{\"password\": \"x1y2\", \"servers\": [");
    for (int i = 0; i < 300; i++)
        at += (size_t)snprintf(json + at, cap - at, "%s{\"server\": \"127.0.0.1:%d\"}",
                               i ? "," : "", 10000 + i);
    snprintf(json + at, cap - at, "]}");
    struct config c;
    CHECK_INT(load_valid(&c, json), 0);
    CHECK_INT(c.n_port, 300);
    CHECK_INT(c.ports[299].port, 10299);
    config_free(&c);
    char *local = malloc(cap + 64);
    snprintf(local, cap + 64, "{\"role\": \"local\", \"local_port\": 1080, %s", json + 1);
    CHECK_INT(load_valid(&c, local), -1);
    CHECK_CONTAINS(err, "\"servers\": the local role takes at most 8 servers, but 300 are listed");
    config_free(&c);
    free(local);
    free(json);
}

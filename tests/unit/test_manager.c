/* test_manager.c: the ss-manager API's codec (manager.c): libev's commands (ss-manager(1),
 * "PROTOCOL") and shadowsocks-rust's "list", the replies, and the state file's list. */
#include "autoconfig.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "manager.h"
#include "unit.h"

static struct manager_cmd cmd;
static char why[256];

static int parse(const char *s)
{
    why[0] = '\0';
    return manager_parse(s, strlen(s), &cmd, why, sizeof why);
}

TEST(test_manager_add_as_libev_documents_it)
{
    CHECK_INT(parse("add: {\"server_port\": 8001, \"password\":\"7cd308cc059\"}"), 0);
    CHECK_INT(cmd.verb, MANAGER_ADD);
    CHECK_INT(cmd.port.port, 8001);
    CHECK_STR(cmd.port.password, "7cd308cc059");
    CHECK(!cmd.port.has_method);
}

/* libev reads the port as a string too; shadowsocks-rust's clients end with a newline. */
TEST(test_manager_add_with_method_string_port_and_newline)
{
    CHECK_INT(parse("add: {\"server_port\": \"8002\", \"password\": \"pw\", \"method\": "
                    "\"AES-256-GCM\", \"fast_open\": true}\n"),
              0);
    CHECK_INT(cmd.port.port, 8002);
    CHECK(cmd.port.has_method);
    CHECK_INT(cmd.port.method, crypto_method_lookup("aes-256-gcm"));
}

TEST(test_manager_remove_ping_list)
{
    CHECK_INT(parse("remove: {\"server_port\": 8001}"), 0);
    CHECK_INT(cmd.verb, MANAGER_REMOVE);
    CHECK_INT(cmd.port.port, 8001);
    CHECK_INT(parse("ping"), 0);
    CHECK_INT(cmd.verb, MANAGER_PING);
    CHECK_INT(parse("list\n"), 0);
    CHECK_INT(cmd.verb, MANAGER_LIST);
}

TEST(test_manager_refuses_malformed_commands)
{
    static const char *const bad[] = {
        "",
        "garbage",
        "add",
        "add: ",
        "add: {\"server_port\": 8001",                                          /* bad JSON */
        "add: [8001]",                                                          /* not an object */
        "add: {\"password\": \"pw\"}",                                          /* no port */
        "add: {\"server_port\": 8001}",                                         /* no password */
        "add: {\"server_port\": 0, \"password\": \"pw\"}",                      /* out of range */
        "add: {\"server_port\": 65536, \"password\": \"pw\"}",                  /* out of range */
        "add: {\"server_port\": \"80a\", \"password\": \"pw\"}",                /* not digits */
        "add: {\"server_port\": -1, \"password\": \"pw\"}",                     /* negative */
        "add: {\"server_port\": 1, \"password\": 5}",                           /* not a string */
        "add: {\"server_port\": 1, \"password\": \"a\\u0000b\"}",               /* a NUL inside */
        "add: {\"server_port\": 1, \"password\": \"pw\", \"method\": \"rc4\"}", /* unknown */
        "add: {\"server_port\": 1, \"password\": \"pw\", \"plugin\": \"x\"}",   /* unknown key */
        "add: {\"server_port\": 1, \"key\": \"k\"}", /* libev's API has no key */
        "add: {\"server_port\": 1, \"server_port\": 2, \"password\": \"p\"}", /* twice */
        "remove: {}",
        "remove: {\"server_port\": 1, \"x\": 2}",
        "ping: {}",
        "list: x",
        "stat: {\"8001\": 1}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (parse(bad[i]) != -1 || !why[0]) {
            unit_fail(__FILE__, __LINE__, "accepted \"%s\"", bad[i]);
            return;
        }
    }
    /* a password as long as the field is refused, one byte less is taken */
    char longpw[MANAGER_PASSWORD_MAX + 64];
    snprintf(longpw, sizeof longpw, "add: {\"server_port\": 1, \"password\": \"%0*d\"}",
             MANAGER_PASSWORD_MAX, 0);
    CHECK_INT(parse(longpw), -1);
    snprintf(longpw, sizeof longpw, "add: {\"server_port\": 1, \"password\": \"%0*d\"}",
             MANAGER_PASSWORD_MAX - 1, 0);
    CHECK_INT(parse(longpw), 0);
}

TEST(test_manager_stat_reply)
{
    uint16_t ports[] = {8001, 8002};
    uint64_t bytes[] = {11370, 0};
    char out[64];
    CHECK_INT(manager_format_stat(ports, bytes, 2, out, sizeof out),
              (int)strlen("stat: {\"8001\":11370,\"8002\":0}"));
    CHECK_STR(out, "stat: {\"8001\":11370,\"8002\":0}");
    CHECK_INT(manager_format_stat(ports, bytes, 0, out, sizeof out), 8);
    CHECK_STR(out, "stat: {}");
    CHECK_INT(manager_format_stat(ports, bytes, 2, out, 20), -1);
}

TEST(test_manager_list_round_trips_through_the_state_text)
{
    struct manager_ports p = {0}, q = {0};
    struct manager_port e = {.port = 8001, .method = CRYPTO_AES_256_GCM, .has_method = true};
    strcpy(e.password, "pw \"quoted\"");
    CHECK_INT(manager_ports_add(&p, &e), 0);
    CHECK_INT(manager_ports_add(&p, &e), -1); /* the same port twice */
    e.port = 8002;
    strcpy(e.password, "AAAA");
    CHECK_INT(manager_ports_add(&p, &e), 0);
    char *text = manager_ports_to_json(&p);
    CHECK(text != NULL);
    CHECK_STR(text, "[{\"server_port\":8001,\"password\":\"pw \\\"quoted\\\"\",\"method\":"
                    "\"aes-256-gcm\"},{\"server_port\":8002,\"password\":\"AAAA\",\"method\":"
                    "\"aes-256-gcm\"}]");
    CHECK_INT(manager_ports_from_json(text, strlen(text), &q, why, sizeof why), 0);
    free(text);
    CHECK_INT(q.n, 2);
    CHECK_STR(q.v[0].password, "pw \"quoted\"");
    CHECK(q.v[1].port == 8002);
    CHECK_INT(manager_ports_remove(&q, 8001), 0);
    CHECK_INT(manager_ports_remove(&q, 8001), -1);
    CHECK_INT(q.n, 1);
    CHECK_INT(q.v[0].port, 8002);
    manager_ports_free(&p);
    manager_ports_free(&q);
    CHECK_INT(manager_ports_from_json("[]", 2, &q, why, sizeof why), 0);
    CHECK_INT(q.n, 0);
}

TEST(test_manager_state_text_refuses_bad_entries)
{
    struct manager_ports q = {0};
    const char *twice = "[{\"server_port\":1,\"password\":\"a\",\"method\":\"aes-128-gcm\"},"
                        "{\"server_port\":1,\"password\":\"b\",\"method\":\"aes-128-gcm\"}]";
    CHECK_INT(manager_ports_from_json(twice, strlen(twice), &q, why, sizeof why), -1);
    CHECK_CONTAINS(why, "entry 2");
    CHECK_INT(q.n, 0);
    const char *nomethod = "[{\"server_port\":1,\"password\":\"a\"}]";
    CHECK_INT(manager_ports_from_json(nomethod, strlen(nomethod), &q, why, sizeof why), -1);
    CHECK_INT(manager_ports_from_json("{}", 2, &q, why, sizeof why), -1);
    CHECK_INT(manager_ports_from_json("[", 1, &q, why, sizeof why), -1);
}

/* manager_state: replaced whole (no temporary file left), mode 0600, read back the same; no file
 * yet is an empty list; a damaged one is an error naming it. */
TEST(test_manager_state_file_round_trip)
{
    struct manager_ports p = {0}, q = {0};
    struct manager_port e = {.port = 8001, .method = CRYPTO_CHACHA20_POLY1305, .has_method = true};
    char path[512], tmp[600], errbuf[512];
    struct stat st;

    snprintf(path, sizeof path, "%s/state.json", unit_tmpdir());
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    CHECK_INT(manager_state_load(path, &q, errbuf, sizeof errbuf), 0);
    CHECK_INT(q.n, 0);
    strcpy(e.password, "secret-one");
    CHECK_INT(manager_ports_add(&p, &e), 0);
    CHECK_INT(manager_state_save(path, &p, errbuf, sizeof errbuf), 0);
    e.port = 8002;
    CHECK_INT(manager_ports_add(&p, &e), 0);
    CHECK_INT(manager_state_save(path, &p, errbuf, sizeof errbuf), 0);
    CHECK_INT(stat(path, &st), 0);
    CHECK_INT(st.st_mode & 0777, 0600);
    CHECK(access(tmp, F_OK) != 0);
    CHECK_INT(manager_state_load(path, &q, errbuf, sizeof errbuf), 0);
    CHECK_INT(q.n, 2);
    CHECK_INT(q.v[1].port, 8002);
    CHECK_STR(q.v[1].password, "secret-one");
    CHECK_INT(q.v[1].method, CRYPTO_CHACHA20_POLY1305);
    const char *bad = unit_write_file("bad-state.json", "[{\"server_port\": 1,");
    CHECK_INT(manager_state_load(bad, &q, errbuf, sizeof errbuf), -1);
    CHECK_CONTAINS(errbuf, "bad-state.json");
    CHECK_INT(q.n, 0);
    manager_ports_free(&p);
}

/* ---- The API's ports in a configuration (config_add_manager_ports) ---- */

static struct config cfg;

/* The file text, plus the ports "port:method:password" given, validated: "OK" or the error. */
static const char *with_api_ports(const char *json, const char *const *ports, int n)
{
    static char msg[512];
    struct manager_ports p = {0};

    config_free(&cfg);
    config_defaults(&cfg);
    for (int i = 0; i < n; i++) {
        struct manager_port e = {.has_method = true};
        char method[64];
        unsigned port;
        if (sscanf(ports[i], "%u:%63[^:]:%255s", &port, method, e.password) != 3)
            return "bad test";
        e.port = (uint16_t)port;
        e.method = (enum crypto_method)crypto_method_lookup(method);
        manager_ports_add(&p, &e);
    }
    msg[0] = '\0';
    if (config_load_string(&cfg, json, "t.json", msg, sizeof msg) != 0 ||
        config_add_manager_ports(&cfg, &p, msg, sizeof msg) != 0 ||
        config_validate(&cfg, msg, sizeof msg) != 0) {
        manager_ports_free(&p);
        return msg;
    }
    manager_ports_free(&p);
    return "OK";
}

TEST(test_manager_ports_join_the_file_port)
{
    const char *api[] = {"8001:chacha20-ietf-poly1305:pw-a-long", "8002:aes-128-gcm:pw-b-long"};
    CHECK_STR(with_api_ports("{\"server\": [\"127.0.0.1\", \"::1\"], \"server_port\": 8388, "
                             "\"password\": \"file-pw-long\", \"method\": \"aes-256-gcm\"}",
                             api, 2),
              "OK");
    CHECK_INT(cfg.n_port, 3);
    CHECK_INT(cfg.ports[0].port, 8388);
    CHECK_INT(cfg.ports[0].method, CRYPTO_AES_256_GCM);
    CHECK_INT(cfg.ports[1].port, 8001);
    CHECK_INT(cfg.ports[1].method, CRYPTO_CHACHA20_POLY1305);
    CHECK_INT(cfg.ports[2].method, CRYPTO_AES_128_GCM);
    CHECK_INT(cfg.n_listen, 6); /* each port on both addresses */
    CHECK_INT(cfg.n_manager_ports, 2);
    /* the file's users stay its port's */
    CHECK_STR(with_api_ports("{\"server\": \"127.0.0.1\", \"server_port\": 8388, \"method\": "
                             "\"aes-256-gcm\", \"users\": [{\"name\": \"a\", \"password\": "
                             "\"pa-long\"}, {\"name\": \"b\", \"password\": \"pb-long\"}]}",
                             api, 1),
              "OK");
    CHECK_INT(cfg.n_port, 2);
    CHECK_INT(cfg.ports[0].n_users, 2);
    CHECK_INT(cfg.ports[1].n_users, 0);
    /* without API ports the configuration is the file's alone */
    CHECK_STR(with_api_ports("{\"server\": \"127.0.0.1\", \"server_port\": 8388, \"password\": "
                             "\"file-pw-long\"}",
                             api, 0),
              "OK");
    CHECK_INT(cfg.n_port, 1);
    CHECK(!cfg.file_port_source);
    /* beside a "servers" list: on its first entry's address */
    CHECK_STR(with_api_ports("{\"servers\": [{\"server\": \"127.0.0.2\", \"server_port\": 8381, "
                             "\"method\": \"aes-256-gcm\", \"password\": \"s-pw-long\"}, "
                             "{\"server\": \"::1\", \"server_port\": 8382, \"method\": "
                             "\"aes-128-gcm\", \"password\": \"t-pw-long\"}]}",
                             api, 1),
              "OK");
    CHECK_INT(cfg.n_port, 3);
    CHECK_INT(cfg.ports[2].port, 8001);
    CHECK_INT(cfg.n_listen, 3);
    CHECK_STR(cfg.listen[2].target.host, "127.0.0.2");
    CHECK_INT(cfg.listen[2].target.port, 8001);
    config_free(&cfg);
}

TEST(test_manager_ports_refused_by_the_configuration)
{
    const char *file = "{\"server\": \"127.0.0.1\", \"server_port\": 8388, \"password\": "
                       "\"file-pw-long\", \"method\": \"aes-256-gcm\"}";
    const char *dup[] = {"8388:aes-256-gcm:pw-a-long"};
    CHECK(strcmp(with_api_ports(file, dup, 1), "OK") != 0); /* the file's port */
    const char *bad_psk[] = {"8001:2022-blake3-aes-128-gcm:c2hvcnQ="};
    CHECK_CONTAINS(with_api_ports(file, bad_psk, 1), "16 bytes");
    const char *ok_psk[] = {"8001:2022-blake3-aes-128-gcm:AAAAAAAAAAAAAAAAAAAAAA=="};
    CHECK_STR(with_api_ports(file, ok_psk, 1), "OK");
    config_free(&cfg);
}

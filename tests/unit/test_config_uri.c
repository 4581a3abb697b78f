/* test_config_uri.c: config_uri.c. SIP002 URIs in the configuration ("server_url"), on the
 * command line (-s ss://..., --server-url) and written for clients (--print-uri). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "config.h"
#include "unit.h"

static char err[1024];

#define ARGV(...) ((char *[]){"reuseproxy", __VA_ARGS__, NULL})
#define ARGC(argv) ((int)(sizeof(argv) / sizeof(argv[0])) - 1)
#define PARSE(o, ...)                                                                              \
    (err[0] = '\0', cli_parse((o), ARGC(ARGV(__VA_ARGS__)), ARGV(__VA_ARGS__), err, sizeof err))

/* SIP002's second example with a SIP004 method: base64url("aes-256-gcm:secret pw"). */
#define URI_AES "ss://YWVzLTI1Ni1nY206c2VjcmV0IHB3@192.0.2.1:8388/?plugin=obfs-local%3Bobfs%3Dhttp"

TEST(test_config_server_url_key_fills_the_server)
{
    struct config c;
    config_defaults(&c);
    CHECK_INT(config_load_string(&c, "{\"role\": \"local\", \"server_url\": \"" URI_AES "\"}",
                                 "t.json", err, sizeof err),
              0);
    CHECK_INT(c.n_server, 1);
    CHECK_STR(c.server[0].target.host, "192.0.2.1");
    CHECK_INT(c.server[0].target.port, 8388);
    CHECK_INT(c.server_port, 8388);
    CHECK_STR(c.password, "secret pw");
    CHECK_STR(crypto_method_info(c.method)->name, "aes-256-gcm");
    CHECK_STR(c.plugin.plugin, "obfs-local");
    CHECK_STR(c.plugin.plugin_opts, "obfs=http");
    CHECK_INT(c.pos[CONFIG_KEY_PASSWORD].line, 1); /* messages about it point at the URI */
    config_free(&c);
}

TEST(test_config_server_url_conflicts_and_errors)
{
    struct config c;
    config_defaults(&c);
    CHECK_INT(config_load_string(&c, "{\"server_url\": \"" URI_AES "\",\n  \"password\": \"x\"}",
                                 "t.json", err, sizeof err),
              -1);
    CHECK_STR(err, "t.json:2:3: \"password\": given with \"server_url\" (line 1), whose URI sets "
                   "it too; keep one of them");
    config_free(&c);
    config_defaults(&c);
    CHECK_INT(config_load_string(&c, "{\"server_url\": \"ss://YWVzOnB3@h:1\"}", "t.json", err,
                                 sizeof err),
              -1);
    CHECK(strstr(err, "t.json:1:2: \"server_url\": the URI's method \"aes\" is not one of") == err);
    config_free(&c);
    config_defaults(&c);
    CHECK_INT(config_load_string(&c, "{\"server_url\": \"ss://aes-128-gcm:pw@h\"}", "t.json", err,
                                 sizeof err),
              -1);
    CHECK(strstr(err, "t.json:1:2: \"server_url\": not a SIP002 URI") == err);
    CHECK(strstr(err, "no \":port\" after the host") != NULL);
    config_free(&c);
}

TEST(test_config_server_url_on_the_command_line)
{
    struct cli_options o = {0};
    struct config c;

    CHECK_INT(PARSE(&o, "-s", URI_AES, "-m", "aes-128-gcm"), CLI_OK);
    CHECK_STR(o.server_url, URI_AES);
    config_defaults(&c);
    CHECK_INT(cli_apply(&o, &c, err, sizeof err), 0);
    CHECK_STR(c.server[0].target.host, "192.0.2.1");
    CHECK_STR(c.password, "secret pw");
    CHECK_STR(crypto_method_info(c.method)->name, "aes-128-gcm"); /* -m typed beside it wins */
    config_free(&c);
    struct cli_options o2 = {0};
    CHECK_INT(PARSE(&o2, "--server-url", URI_AES, "-s", "1.2.3.4"), CLI_ERROR);
    CHECK_STR(err, "-s: an address cannot be mixed with a URI's server");
    struct cli_options o3 = {0};
    CHECK_INT(PARSE(&o3, "--server-url", "ss://YWVz@h:1"), CLI_ERROR);
    CHECK(strstr(err, "--server-url: not a SIP002 URI") == err);
}

/* --print-uri: what a client imports, read back into the same server, method and password. */
TEST(test_config_print_uri_round_trip)
{
    struct config c, back;
    char uri[4096];

    config_defaults(&c);
    CHECK_INT(config_load_string(&c,
                                 "{\"server\": \"2001:db8::1\", \"server_port\": 8388, "
                                 "\"method\": \"2022-blake3-aes-128-gcm\", \"password\": "
                                 "\"9m/JekTfPGXR0xidFm+PWw==\", \"plugin\": \"obfs-server\", "
                                 "\"plugin_opts\": \"obfs=http;server\"}",
                                 "t.json", err, sizeof err),
              0);
    CHECK_INT(config_server_url(&c, uri, sizeof uri, err, sizeof err), 0);
    CHECK_STR(uri, "ss://2022-blake3-aes-128-gcm:9m%2FJekTfPGXR0xidFm%2BPWw%3D%3D@[2001:db8::1]:"
                   "8388/?plugin=obfs-local%3Bobfs%3Dhttp");
    config_defaults(&back);
    CHECK_INT(config_apply_server_url(&back, uri, err, sizeof err), 0);
    CHECK_STR(back.server[0].target.host, "2001:db8::1");
    CHECK_INT(back.server_port, 8388);
    CHECK_STR(back.password, c.password);
    CHECK_INT(back.method, c.method);
    config_free(&back);
    config_free(&c);
    config_defaults(&c);
    CHECK_INT(config_load_string(&c,
                                 "{\"server\": \"0.0.0.0\", \"server_port\": 1, "
                                 "\"password\": \"pw\"}",
                                 "t.json", err, sizeof err),
              0);
    CHECK_INT(config_server_url(&c, uri, sizeof uri, err, sizeof err), -1);
    CHECK(strstr(err, "wildcard address") != NULL);
    config_free(&c);
}

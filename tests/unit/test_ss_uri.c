/* test_ss_uri.c: SIP002 URIs (https://shadowsocks.org/doc/sip002.html), read and written. */
#include "autoconfig.h"

#include "ss_uri.h"
#include "unit.h"

static struct ss_uri parsed;
static char err[256];

static int parse(const char *uri)
{
    err[0] = '\0';
    return ss_uri_parse(uri, &parsed, err, sizeof err);
}

/* SIP002's own first example: base64url user info, no padding, a tag. */
TEST(test_ss_uri_base64_userinfo_without_padding)
{
    CHECK_INT(parse("ss://YWVzLTEyOC1nY206dGVzdA@192.168.100.1:8888#Example1"), 0);
    CHECK_STR(parsed.method, "aes-128-gcm");
    CHECK_STR(parsed.password, "test");
    CHECK_STR(parsed.host, "192.168.100.1");
    CHECK_INT(parsed.port, 8888);
    CHECK_STR(parsed.tag, "Example1");
    CHECK_STR(parsed.plugin, "");
}

TEST(test_ss_uri_base64_userinfo_with_padding)
{
    /* base64("aes-256-gcm:pw") = YWVzLTI1Ni1nY206cHc= */
    CHECK_INT(parse("ss://YWVzLTI1Ni1nY206cHc=@example.com:443"), 0);
    CHECK_STR(parsed.method, "aes-256-gcm");
    CHECK_STR(parsed.password, "pw");
    CHECK_STR(parsed.host, "example.com");
    CHECK_INT(parsed.port, 443);
}

/* SIP002's SIP022 example: percent-encoded user info, a password with '+' and '/'. */
TEST(test_ss_uri_percent_encoded_userinfo)
{
    CHECK_INT(
        parse("ss://2022-blake3-aes-256-gcm:YctPZ6U7xPPcU%2Bgp3u%2B0tx%2FtRizJN9K8y%2BuKlW2qjlI%3D"
              "@192.168.100.1:8888#Example3"),
        0);
    CHECK_STR(parsed.method, "2022-blake3-aes-256-gcm");
    CHECK_STR(parsed.password, "YctPZ6U7xPPcU+gp3u+0tx/tRizJN9K8y+uKlW2qjlI=");
    CHECK_STR(parsed.tag, "Example3");
}

/* SIP002's second example: the plugin parameter, "name;options" percent-encoded. */
TEST(test_ss_uri_plugin_parameter)
{
    CHECK_INT(parse("ss://cmM0LW1kNTpwYXNzd2Q@192.168.100.1:8888/"
                    "?plugin=obfs-local%3Bobfs%3Dhttp&other=1#Example2"),
              0);
    CHECK_STR(parsed.method, "rc4-md5");
    CHECK_STR(parsed.password, "passwd");
    CHECK_STR(parsed.plugin, "obfs-local");
    CHECK_STR(parsed.plugin_opts, "obfs=http");
    CHECK_INT(parse("ss://YWVzLTEyOC1nY206dGVzdA@h:1?plugin=v2ray-plugin"), 0);
    CHECK_STR(parsed.plugin, "v2ray-plugin");
    CHECK_STR(parsed.plugin_opts, "");
}

TEST(test_ss_uri_ipv6_host_in_brackets)
{
    CHECK_INT(parse("ss://YWVzLTEyOC1nY206dGVzdA@[2001:db8::1]:8388"), 0);
    CHECK_STR(parsed.host, "2001:db8::1");
    CHECK_INT(parsed.port, 8388);
    CHECK_INT(parse("ss://YWVzLTEyOC1nY206dGVzdA@[::1]:1/"), 0);
    CHECK_STR(parsed.host, "::1");
}

/* The legacy form: ss://base64(method:password@host:port). */
TEST(test_ss_uri_legacy_base64)
{
    /* base64("aes-128-gcm:test@192.168.100.1:8888") */
    CHECK_INT(parse("ss://YWVzLTEyOC1nY206dGVzdEAxOTIuMTY4LjEwMC4xOjg4ODg#x"), 0);
    CHECK_STR(parsed.method, "aes-128-gcm");
    CHECK_STR(parsed.password, "test");
    CHECK_STR(parsed.host, "192.168.100.1");
    CHECK_INT(parsed.port, 8888);
}

/* Each bad URI fails with a message that says what is wrong. */
TEST(test_ss_uri_bad_uris)
{
    static const struct {
        const char *uri, *says;
    } bad[] = {
        {"http://x@h:1", "not an ss:// URI"},
        {"ss://YWVzLTEyOC1nY206dGVzdA@h", "no \":port\""},
        {"ss://YWVzLTEyOC1nY206dGVzdA@h:0", "1..65535"},
        {"ss://YWVzLTEyOC1nY206dGVzdA@h:65536", "1..65535"},
        {"ss://YWVzLTEyOC1nY206dGVzdA@h:8x", "1..65535"},
        {"ss://YWVzLTEyOC1nY206dGVzdA@h:", "port is empty"},
        {"ss://YWVzLTEyOC1nY206dGVzdA@:1", "no host"},
        {"ss://YWVzLTEyOC1nY206dGVzdA@2001:db8::1:1", "must be in brackets"},
        {"ss://YWVzLTEyOC1nY206dGVzdA@[2001:db8::1:1", "closing ']'"},
        {"ss://YWVzLTEyOC1nY206dGVzdA@[::1]", "no \":port\" after the IPv6"},
        {"ss://@h:1", "no user info"},
        {"ss://!!!@h:1", "neither base64url"},
        {"ss://YWVzLTEyOC1nY20@h:1", "not \"method:password\""},
        {"ss://aes-128-gcm:pw%2@h:1", "percent-encoding"},
        {"ss://aes-128-gcm:pw%00x@h:1", "percent-encoding"},
        {"ss://:pw@h:1", "method is empty"},
        {"ss://YWVzLTEyOC1nY206dGVzdA@h:1/path", "a path after the port"},
        {"ss://YWVzLTEyOC1nY206dGVzdA@h:1/?plugin=%3Bopts", "no plugin name"},
        {"ss://YWVzLTEyOC1nY206dGVzdA@h:1#%zz", "#tag"},
        {"ss://notbase64atall", "legacy"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (parse(bad[i].uri) != -1 || !strstr(err, bad[i].says))
            unit_fail(__FILE__, __LINE__, "%s: got \"%s\", expected \"%s\"", bad[i].uri, err,
                      bad[i].says);
    }
    char huge[SS_URI_MAX + 10];
    memset(huge, 'A', sizeof huge - 1);
    memcpy(huge, "ss://", 5);
    huge[sizeof huge - 1] = '\0';
    CHECK_INT(parse(huge), -1);
    CHECK(strstr(err, "longer than") != NULL);
}

/* What ss_uri_format writes, ss_uri_parse reads back the same, in both user info forms. */
TEST(test_ss_uri_round_trip)
{
    struct ss_uri u = {.method = "2022-blake3-aes-128-gcm",
                       .password = "p@ss:w/rd+=?#%",
                       .host = "2001:db8::7",
                       .port = 8388,
                       .plugin = "obfs-local",
                       .plugin_opts = "obfs=http;obfs-host=www.example.com",
                       .tag = "my server #1"};
    char out[SS_URI_MAX];

    for (int plain = 0; plain < 2; plain++) {
        CHECK(ss_uri_format(&u, plain, out, sizeof out) > 0);
        CHECK(strchr(out, ' ') == NULL);
        CHECK_INT(parse(out), 0);
        CHECK_STR(parsed.method, u.method);
        CHECK_STR(parsed.password, u.password);
        CHECK_STR(parsed.host, u.host);
        CHECK_INT(parsed.port, u.port);
        CHECK_STR(parsed.plugin, u.plugin);
        CHECK_STR(parsed.plugin_opts, u.plugin_opts);
        CHECK_STR(parsed.tag, u.tag);
    }
    struct ss_uri v = {
        .method = "aes-128-gcm", .password = "test", .host = "192.168.100.1", .port = 8888};
    CHECK(ss_uri_format(&v, false, out, sizeof out) > 0);
    CHECK_STR(out, "ss://YWVzLTEyOC1nY206dGVzdA@192.168.100.1:8888");
    CHECK_INT(ss_uri_format(&v, false, out, 20), -1);
}

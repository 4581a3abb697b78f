/* test_config.c: config.c. Loading (every error with its exact line and column), libev's
 * leniencies, reuseproxy's own keys, the checks across keys, the small parsers, and the
 * configurations shipped in conf/. */
#include "autoconfig.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "unit.h"

static char err[1024];
static struct config *loaded; /* what load() filled last, freed when it is loaded again */

/* Defaults, then the text as file "t.json". Loading into the same struct again frees what it
 * held, so a test may load one struct many times and config_free() it once at the end. */
static int load(struct config *c, const char *json)
{
    err[0] = '\0';
    if (c == loaded)
        config_free(c);
    loaded = c;
    config_defaults(c);
    return config_load_string(c, json, "t.json", err, sizeof err);
}

/* ---- Defaults ---- */

TEST(test_config_defaults)
{
    struct config c;
    config_defaults(&c);
    CHECK_STR(crypto_method_info(c.method)->name, "chacha20-ietf-poly1305");
    CHECK_INT(c.timeout, 60);
    CHECK_INT(c.mode, MODE_TCP_ONLY);
    CHECK(c.local_address == NULL); /* not given: the local roles listen on 127.0.0.1 */
    CHECK_INT(c.role, ROLE_SERVER);
    CHECK_INT(c.workers, config_default_workers());
    CHECK_INT(c.balance, BALANCE_REUSEPORT);
    CHECK(c.block_private);
    CHECK_INT(c.udp_timeout, 300);
    CHECK_INT(c.udp_max_associations, 65536);
    CHECK_INT(c.drain_timeout, 30);
    CHECK_INT(c.connect_timeout, 10);
    CHECK(c.replay_protection);
    CHECK_INT(c.replay_capacity, 1048576);
    CHECK_INT(c.verbose, 0);
    CHECK_INT(c.n_server, 0);
    CHECK_INT(c.server_port, 0);
    CHECK_INT(c.local_port, 0);
    CHECK(c.password == NULL && c.key == NULL && c.path == NULL && c.metrics_address == NULL);
    CHECK(!c.fast_open && !c.reuse_port && !c.no_delay && !c.ipv6_first && !c.use_syslog);
    CHECK_INT(c.nofile, 0);
    CHECK_INT(c.pos[CONFIG_KEY_SERVER].line, 0);
    config_free(&c);
}

TEST(test_config_default_workers_is_online_cpus)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    int want = cpus < 1 ? 1 : cpus > CONFIG_MAX_WORKERS ? CONFIG_MAX_WORKERS : (int)cpus;
    CHECK_INT(config_default_workers(), want);
}

TEST(test_config_names)
{
    CHECK_STR(config_role_name(ROLE_TUNNEL), "tunnel");
    CHECK_STR(config_balance_name(BALANCE_DISPATCH), "dispatch");
    CHECK_STR(config_mode_name(MODE_UDP_ONLY), "udp_only");
    CHECK_STR(config_mode_name((enum config_mode)7), "?");
    enum config_role r;
    CHECK_INT(config_role_from_name("local", &r), 0);
    CHECK_INT(r, ROLE_LOCAL);
    CHECK_INT(config_role_from_name("Local", &r), -1);
    CHECK_INT(config_role_from_name(NULL, &r), -1);
}

/* ---- Loading: values and positions ---- */

TEST(test_config_load_server_file)
{
    struct config c;
    const char *json = "{\n"
                       "    \"server\": \"0.0.0.0\",\n"
                       "    \"server_port\": 8488,\n"
                       "    \"password\": \"s3cret\",\n"
                       "    \"method\": \"aes-256-gcm\",\n"
                       "    \"timeout\": 300,\n"
                       "    \"mode\": \"tcp_and_udp\",\n"
                       "    \"fast_open\": true,\n"
                       "    \"nameserver\": \"1.1.1.1,8.8.8.8\"\n"
                       "}\n";
    CHECK_INT(load(&c, json), 0);
    CHECK_STR(c.path, "t.json");
    CHECK_INT(c.n_server, 1);
    CHECK_STR(c.server[0].target.host, "0.0.0.0");
    CHECK_INT(c.server[0].target.port, 0);
    CHECK_INT(c.server_port, 8488);
    CHECK_STR(c.password, "s3cret");
    CHECK_STR(crypto_method_info(c.method)->name, "aes-256-gcm");
    CHECK_INT(c.timeout, 300);
    CHECK_INT(c.mode, MODE_TCP_AND_UDP);
    CHECK(c.fast_open);
    CHECK_STR(c.nameserver, "1.1.1.1,8.8.8.8");
    CHECK_INT(c.pos[CONFIG_KEY_SERVER].line, 2);
    CHECK_INT(c.pos[CONFIG_KEY_SERVER].column, 5);
    CHECK_INT(c.pos[CONFIG_KEY_NAMESERVER].line, 9);
    CHECK_INT(c.pos[CONFIG_KEY_NAMESERVER].column, 5);
    CHECK_INT(c.pos[CONFIG_KEY_KEY].line, 0);
    config_free(&c);
}

TEST(test_config_positions_count_characters_and_skip_escapes)
{
    struct config c;
    /* Column 24: "пароль" is 6 characters (12 bytes). "time\u006fut" is "timeout"; the
     * escaped quote and backslash in the user's name do not end its string early. */
    CHECK_INT(load(&c, "{\"password\": \"пароль\", \"method\": \"aes-128-gcm\",\n"
                       "\t\"time\\u006fut\" : 5, \"user\": \"x\\\"y\\\\\", \"sever\": 1}"),
              -1);
    CHECK_STR(err, "t.json:2:40: unknown key \"sever\"; did you mean \"server\"?");
    CHECK_INT(c.pos[CONFIG_KEY_METHOD].line, 1);
    CHECK_INT(c.pos[CONFIG_KEY_METHOD].column, 24);
    CHECK_INT(c.pos[CONFIG_KEY_TIMEOUT].line, 2);
    CHECK_INT(c.pos[CONFIG_KEY_TIMEOUT].column, 2);
    CHECK_INT(c.pos[CONFIG_KEY_USER].column, 22);
    CHECK_INT(c.timeout, 5);
    CHECK_STR(c.password, "пароль");
    CHECK_STR(c.user, "x\"y\\");
    config_free(&c);
}

TEST(test_config_duplicate_key_spelt_with_escape)
{
    struct config c;
    CHECK_INT(load(&c, "{\"password\": \"a\",\n \"pass\\u0077ord\": \"b\"}"), -1);
    CHECK_STR(err, "t.json:2:2: duplicate key \"password\" (first given at line 1, column 2)");
    config_free(&c);
}

TEST(test_config_positions_after_nested_values)
{
    struct config c;
    const char *json = "{\"server\": [\"::1\", \"127.0.0.1\"], "
                       "\"dscp\": {\"8381\": \"a}\",\n"
                       "  \"8382\": [1, {\"x\": \"]\"}]}, \"server_port\": \"8488\",\n"
                       "  \"workers\": 0}";
    unit_capture_stderr_start();
    int rc = load(&c, json);
    unit_capture_stderr_stop();
    CHECK_INT(rc, 0);
    CHECK_INT(c.n_server, 2);
    CHECK_STR(c.server[0].target.host, "::1");
    CHECK_STR(c.server[1].target.host, "127.0.0.1");
    CHECK_INT(c.server_port, 8488);
    CHECK_INT(c.pos[CONFIG_KEY_SERVER_PORT].line, 2);
    CHECK_INT(c.pos[CONFIG_KEY_SERVER_PORT].column, 29);
    CHECK_INT(c.pos[CONFIG_KEY_WORKERS].line, 3);
    CHECK_INT(c.pos[CONFIG_KEY_WORKERS].column, 3);
    CHECK_INT(c.workers, 0);
    config_free(&c);
}

TEST(test_config_load_file_from_disk)
{
    struct config c;
    const char *path = unit_write_file("disk.json", "{\n  \"server\": \"127.0.0.1\",\n"
                                                    "  \"sever_port\": 1\n}\n");
    config_defaults(&c);
    CHECK_INT(config_load(&c, path, err, sizeof err), -1);
    char want[512];
    snprintf(want, sizeof want, "%s:3:3: unknown key \"sever_port\"; did you mean \"server_port\"?",
             path);
    CHECK_STR(err, want);
    CHECK_STR(c.path, path);
    config_free(&c);
}

TEST(test_config_load_missing_file)
{
    struct config c;
    config_defaults(&c);
    CHECK_INT(config_load(&c, "/nonexistent/rp.json", err, sizeof err), -1);
    CHECK_STR(err, "/nonexistent/rp.json: cannot open: No such file or directory");
    config_free(&c);
}

TEST(test_config_load_directory)
{
    struct config c;
    config_defaults(&c);
    CHECK_INT(config_load(&c, unit_tmpdir(), err, sizeof err), -1);
    CHECK_CONTAINS(err, ": cannot read: Is a directory");
    config_free(&c);
}

TEST(test_config_load_too_large)
{
    struct config c;
    char path[256];
    snprintf(path, sizeof path, "%s/big.json", unit_tmpdir());
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    for (int i = 0; i < 1100; i++)
        fprintf(f, "%1023s\n", "");
    fclose(f);
    config_defaults(&c);
    CHECK_INT(config_load(&c, path, err, sizeof err), -1);
    CHECK_CONTAINS(err, "big.json: larger than 1048576 bytes");
    config_free(&c);
}

TEST(test_config_load_over_previous_values)
{
    struct config c;
    CHECK_INT(load(&c, "{\"server_port\": 1000, \"password\": \"a\"}"), 0);
    CHECK_INT(config_load_string(&c, "{\"server_port\": 2000, \"password\": null}", "u.json", err,
                                 sizeof err),
              0);
    CHECK_INT(c.server_port, 2000);
    CHECK_STR(c.password, "a"); /* null leaves it as it was, as libev's to_string(null) */
    CHECK_STR(c.path, "u.json");
    config_free(&c);
}

TEST(test_config_bom_is_skipped)
{
    struct config c;
    CHECK_INT(load(&c, "\xef\xbb\xbf{\"server_port\": 1,\n \"x\": 2}"), -1);
    CHECK_STR(err, "t.json:2:2: unknown key \"x\"");
    config_free(&c);
}

/* ---- Syntax and shape errors ---- */

TEST(test_config_syntax_error_line_3)
{
    struct config c;
    CHECK_INT(load(&c, "{\n  \"server\": \"127.0.0.1\",\n  \"server_port\": ,\n}\n"), -1);
    CHECK_STR(err, "t.json:3:18: invalid JSON: unexpected token near ','");
    config_free(&c);
}

TEST(test_config_syntax_error_trailing_comma)
{
    struct config c;
    CHECK_INT(load(&c, "{\n  \"server_port\": 8488,\n}\n"), -1);
    CHECK_STR(err, "t.json:3:1: invalid JSON: string or '}' expected near '}'");
    config_free(&c);
}

/* Issue 13 item 11: a file cut short after a newline is reported where the text stops, with a
 * 1-based column, never at column 0 of the line after it (jansson's position there). */
TEST(test_config_truncated_file_column_is_one_based)
{
    struct config c;
    CHECK_INT(load(&c, "{\n  \"server\": \"x\",\n"), -1);
    CHECK_STR(err, "t.json:2:16: invalid JSON: string or '}' expected near end of file");
    CHECK_INT(load(&c, "{\"server\": \"x\"\n\n\r\n  \n"), -1);
    CHECK_STR(err, "t.json:1:14: invalid JSON: '}' expected near end of file");
    CHECK_INT(load(&c, "{\n \"password\": \"\xc3\xa9t\xc3\xa9\"\n"), -1);
    CHECK_STR(err, "t.json:2:18: invalid JSON: '}' expected near end of file");
    CHECK_INT(load(&c, "{\n"), -1);
    CHECK_STR(err, "t.json:1:1: invalid JSON: string or '}' expected near end of file");
    /* without the final newline jansson's own column stands */
    CHECK_INT(load(&c, "{\"server\": \"x\""), -1);
    CHECK_STR(err, "t.json:1:14: invalid JSON: '}' expected near end of file");
    /* a newline inside a string: the error is on that line, after its last character */
    CHECK_INT(load(&c, "{\"a\": \"abc\n\"}"), -1);
    CHECK_CONTAINS(err, "t.json:1:");
    CHECK(strstr(err, "t.json:1:0:") == NULL && strstr(err, "t.json:2:0:") == NULL);
    config_free(&c);
}

TEST(test_config_syntax_error_missing_comma)
{
    struct config c;
    CHECK_INT(load(&c, "{\n  \"server\": \"x\"\n  \"server_port\": 1\n}"), -1);
    CHECK_CONTAINS(err, "t.json:3:15: invalid JSON: '}' expected near '\"server_port\"'");
    config_free(&c);
}

TEST(test_config_syntax_error_comment)
{
    struct config c;
    CHECK_INT(load(&c, "{\n  // comment\n  \"server_port\": 1\n}"), -1);
    CHECK_CONTAINS(err, "t.json:2:3: invalid JSON:");
    config_free(&c);
}

TEST(test_config_trailing_garbage)
{
    struct config c;
    CHECK_INT(load(&c, "{\"server_port\": 1}\n{}"), -1);
    CHECK_STR(err, "t.json:2:1: invalid JSON: end of file expected near '{'");
    config_free(&c);
}

TEST(test_config_empty_file)
{
    struct config c;
    CHECK_INT(load(&c, ""), -1);
    CHECK_STR(err, "t.json: the file is empty; expected a JSON object of settings");
    CHECK_INT(load(&c, "  \n\t\r\n"), -1);
    CHECK_STR(err, "t.json: the file is empty; expected a JSON object of settings");
    config_free(&c);
}

TEST(test_config_top_level_not_object)
{
    struct config c;
    CHECK_INT(load(&c, "[{\"server_port\": 1}]"), -1);
    CHECK_STR(err, "t.json:1:1: expected a JSON object ({...}) at the top level, got an array");
    CHECK_INT(load(&c, "\n  \"server\""), -1);
    CHECK_STR(err, "t.json:2:3: expected a JSON object ({...}) at the top level, got \"server\"");
    CHECK_INT(load(&c, "8388"), -1);
    CHECK_STR(err, "t.json:1:1: expected a JSON object ({...}) at the top level, got 8388");
    CHECK_INT(load(&c, "null"), -1);
    CHECK_STR(err, "t.json:1:1: expected a JSON object ({...}) at the top level, got null");
    config_free(&c);
}

TEST(test_config_empty_object_loads)
{
    struct config c;
    CHECK_INT(load(&c, "{}"), 0);
    CHECK_INT(c.n_server, 0);
    config_free(&c);
}

TEST(test_config_duplicate_key)
{
    struct config c;
    CHECK_INT(load(&c, "{\n  \"server_port\": 1,\n  \"method\": \"aes-128-gcm\",\n"
                       "    \"server_port\": 2\n}"),
              -1);
    CHECK_STR(err, "t.json:4:5: duplicate key \"server_port\" (first given at line 2, column 3)");
    config_free(&c);
}

TEST(test_config_duplicate_key_nested)
{
    struct config c;
    CHECK_INT(load(&c, "{\"port_password\": {\"1\": \"a\",\n \"1\": \"b\"}}"), -1);
    CHECK_STR(err, "t.json:2:4: invalid JSON: duplicate object key near '\"1\"'");
    config_free(&c);
}

TEST(test_config_nul_in_string_refused)
{
    struct config c;
    CHECK_INT(load(&c, "{\"password\": \"a\\u0000b\"}"), -1);
    CHECK_CONTAINS(err, "t.json:1:23: invalid JSON: \\u0000 is not allowed");
    config_free(&c);
}

/* ---- Unknown and ignored keys ---- */

TEST(test_config_unknown_key_suggestion)
{
    struct config c;
    CHECK_INT(load(&c, "{\n  \"server\": \"127.0.0.1\",\n    \"sever_port\": 8488\n}"), -1);
    CHECK_STR(err, "t.json:3:5: unknown key \"sever_port\"; did you mean \"server_port\"?");
    config_free(&c);
}

TEST(test_config_unknown_key_transposition_and_case)
{
    struct config c;
    CHECK_INT(load(&c, "{\"mehtod\": \"aes-128-gcm\"}"), -1);
    CHECK_STR(err, "t.json:1:2: unknown key \"mehtod\"; did you mean \"method\"?");
    CHECK_INT(load(&c, "{\"Server_Port\": 1}"), -1);
    CHECK_STR(err, "t.json:1:2: unknown key \"Server_Port\"; did you mean \"server_port\"?");
    CHECK_INT(load(&c, "{\"plugn\": \"x\"}"), -1);
    CHECK_STR(err, "t.json:1:2: unknown key \"plugn\"; did you mean \"plugin\"?");
    /* Two edits apart for plain Levenshtein, too far for a 3-letter key; one transposition. */
    CHECK_INT(load(&c, "{\"kye\": \"x\"}"), -1);
    CHECK_STR(err, "t.json:1:2: unknown key \"kye\"; did you mean \"key\"?");
    CHECK_INT(load(&c, "{\"workrs\": 2}"), -1);
    CHECK_STR(err, "t.json:1:2: unknown key \"workrs\"; did you mean \"workers\"?");
    config_free(&c);
}

TEST(test_config_unknown_key_without_suggestion)
{
    struct config c;
    CHECK_INT(load(&c, "{\"frobnicate\": true}"), -1);
    CHECK_STR(err, "t.json:1:2: unknown key \"frobnicate\"");
    config_free(&c);
}

TEST(test_config_unknown_key_long_and_control_characters)
{
    struct config c;
    CHECK_INT(load(&c, "{\"a\\nb\\u001b\\\"\": 1}"), -1);
    CHECK_STR(err, "t.json:1:2: unknown key \"a\\u000ab\\u001b\\\"\"");
    CHECK_INT(load(&c, "{\"aaaaaaaaaabbbbbbbbbbccccccccccdddddddddd"
                       "eeeeeeeeeeffffffffffgggggggggg\": 1}"),
              -1);
    CHECK_STR(err, "t.json:1:2: unknown key "
                   "\"aaaaaaaaaabbbbbbbbbbccccccccccddddddddddeeeeeee...\"");
    config_free(&c);
}

TEST(test_config_unimplemented_libev_keys_warn)
{
    struct config c;
    const char *json = "{\n  \"server_port\": 8488,\n  \"workdir\": \"/tmp\",\n"
                       "  \"remote_dns\": \"8.8.8.8\",\n  \"tcp_incoming_sndbuf\": 1, \"mtu\": 1492,\n"
                       "  \"dscp\": {\"8488\": \"EF\"},\n  \"tcp_outgoing_sndbuf\": 1\n}";
    unit_capture_stderr_start();
    int rc = load(&c, json);
    const char *out = unit_capture_stderr_stop();
    CHECK_INT(rc, 0);
    CHECK_INT(c.server_port, 8488);
    CHECK_CONTAINS(out, "WARN t.json:3:3: \"workdir\" is a shadowsocks-libev key that reuseproxy "
                        "does not implement; ignored\n");
    CHECK_CONTAINS(out, "t.json:4:3: \"remote_dns\" is a shadowsocks-libev key");
    CHECK_CONTAINS(out, "t.json:5:3: \"tcp_incoming_sndbuf\" is a");
    CHECK_CONTAINS(out, "t.json:5:29: \"mtu\" is a");
    CHECK_CONTAINS(out, "t.json:6:3: \"dscp\" is a");
    CHECK_CONTAINS(out, "t.json:7:3: \"tcp_outgoing_sndbuf\" is a");
    config_free(&c);
}

/* SIP003's keys, typed: "plugin" and "plugin_opts" as libev reads them, "plugin_args" as
 * shadowsocks-rust's array (a string is one argument), "plugin_mode" one of two names. */
TEST(test_config_plugin_keys_parsed)
{
    struct config c;
    CHECK_INT(load(&c, "{\"plugin\": \"obfs-server\", \"plugin_opts\": \"obfs=http\",\n"
                       " \"plugin_args\": [\"-v\", \"--fast-open\"], \"plugin_mode\": "
                       "\"tcp_and_udp\"}"),
              0);
    CHECK_STR(c.plugin.plugin, "obfs-server");
    CHECK_STR(c.plugin.plugin_opts, "obfs=http");
    CHECK_INT(c.plugin.n_plugin_args, 2);
    CHECK_STR(c.plugin.plugin_args[0], "-v");
    CHECK_STR(c.plugin.plugin_args[1], "--fast-open");
    CHECK_INT(c.plugin.plugin_mode, CONFIG_PLUGIN_TCP_AND_UDP);
    CHECK_INT(c.pos[CONFIG_KEY_PLUGIN_ARGS].line, 2);
    config_free(&c);
    CHECK_INT(load(&c, "{\"plugin_args\": \"-v x\"}"), 0);
    CHECK_INT(c.plugin.n_plugin_args, 1);
    CHECK_STR(c.plugin.plugin_args[0], "-v x");
    config_free(&c);
    CHECK_INT(load(&c, "{\"server_port\": 1,\n    \"plugin_mode\": \"udp_only\"}"), -1);
    CHECK_STR(err, "t.json:2:5: \"plugin_mode\": expected \"tcp_only\" or \"tcp_and_udp\", "
                   "got \"udp_only\"");
    config_free(&c);
    CHECK_INT(load(&c, "{\"plugin_args\": [\"a\", 1]}"), -1);
    CHECK_STR(err, "t.json:1:2: \"plugin_args\": expected a string at index 1, got 1");
    config_free(&c);
    CHECK_INT(load(&c, "{\"plugin\": \"\"}"), -1);
    CHECK_CONTAINS(err, "t.json:1:2: \"plugin\": expected a non-empty string");
    config_free(&c);
}

TEST(test_config_more_libev_keys_warn)
{
    struct config c;
    /* clang-format off */
    const char *keys[] = {"workdir", "tcp_incoming_sndbuf",
                          "tcp_incoming_rcvbuf", "tcp_outgoing_sndbuf", "tcp_outgoing_rcvbuf",
                          "remote_dns"};
    /* clang-format on */
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        char json[128], want[128];
        snprintf(json, sizeof json, "{\"%s\": 1}", keys[i]);
        snprintf(want, sizeof want, "t.json:1:2: \"%s\" is a shadowsocks-libev key", keys[i]);
        unit_capture_stderr_start();
        int rc = load(&c, json);
        const char *out = unit_capture_stderr_stop();
        CHECK_INT(rc, 0);
        CHECK_CONTAINS(out, want);
        config_free(&c);
    }
}

TEST(test_config_auth_refused)
{
    struct config c;
    CHECK_INT(load(&c, "{\"auth\": false}"), -1);
    CHECK_STR(err, "t.json:1:2: \"auth\": one-time auth was removed in shadowsocks-libev 3.0, "
                   "which refuses this key too; remove it");
    config_free(&c);
}

/* ---- Values of libev's keys ---- */

TEST(test_config_port_out_of_range)
{
    struct config c;
    CHECK_INT(load(&c, "{\n  \"server_port\": 70000\n}"), -1);
    CHECK_STR(err, "t.json:2:3: \"server_port\": expected an integer from 1 to 65535, got 70000");
    CHECK_INT(load(&c, "{\"local_port\": 0}"), -1);
    CHECK_STR(err, "t.json:1:2: \"local_port\": expected an integer from 1 to 65535, got 0");
    CHECK_INT(load(&c, "{\"server_port\": -1}"), -1);
    CHECK_STR(err, "t.json:1:2: \"server_port\": expected an integer from 1 to 65535, got -1");
    config_free(&c);
}

TEST(test_config_port_wrong_types)
{
    struct config c;
    CHECK_INT(load(&c, "{\"server_port\": true}"), -1);
    CHECK_STR(err, "t.json:1:2: \"server_port\": expected an integer from 1 to 65535, got true");
    CHECK_INT(load(&c, "{\"server_port\": 8388.5}"), -1);
    CHECK_STR(err, "t.json:1:2: \"server_port\": expected an integer from 1 to 65535, got the "
                   "real number 8388.5");
    CHECK_INT(load(&c, "{\"server_port\": [8388]}"), -1);
    CHECK_STR(err, "t.json:1:2: \"server_port\": expected an integer from 1 to 65535, got an "
                   "array");
    CHECK_INT(load(&c, "{\"server_port\": {}}"), -1);
    CHECK_CONTAINS(err, "got an object");
    config_free(&c);
}

TEST(test_config_numbers_as_strings_like_libev)
{
    struct config c;
    CHECK_INT(load(&c, "{\"server_port\": \"8388\", \"local_port\": \"1080\", "
                       "\"timeout\": \"600\"}"),
              0);
    CHECK_INT(c.server_port, 8388);
    CHECK_INT(c.local_port, 1080);
    CHECK_INT(c.timeout, 600);
    CHECK_INT(load(&c, "{\"server_port\": \"83a8\"}"), -1);
    CHECK_STR(err,
              "t.json:1:2: \"server_port\": expected an integer from 1 to 65535, got \"83a8\"");
    CHECK_INT(load(&c, "{\"server_port\": \" 8388\"}"), -1);
    CHECK_INT(load(&c, "{\"server_port\": \"+8388\"}"), -1);
    CHECK_INT(load(&c, "{\"server_port\": \"\"}"), -1);
    CHECK_INT(load(&c, "{\"timeout\": \"99999999999\"}"), -1);
    CHECK_STR(err, "t.json:1:2: \"timeout\": expected an integer from 1 to 2147483, got "
                   "\"99999999999\"");
    config_free(&c);
}

TEST(test_config_null_leaves_libev_keys_unset)
{
    struct config c;
    CHECK_INT(load(&c, "{\"server\": null, \"server_port\": null, \"password\": null, "
                       "\"method\": null, \"timeout\": null, \"mode\": null, \"key\": null}"),
              0);
    CHECK_INT(c.n_server, 0);
    CHECK_INT(c.server_port, 0);
    CHECK(c.password == NULL && c.key == NULL);
    CHECK_STR(crypto_method_info(c.method)->name, "chacha20-ietf-poly1305");
    CHECK_INT(c.timeout, 60);
    CHECK_INT(c.mode, MODE_TCP_ONLY);
    config_free(&c);
}

TEST(test_config_integer_password_like_libev)
{
    struct config c;
    CHECK_INT(load(&c, "{\"password\": 12345678, \"user\": 1000}"), 0);
    CHECK_STR(c.password, "12345678");
    CHECK_STR(c.user, "1000");
    config_free(&c);
}

TEST(test_config_text_wrong_types)
{
    struct config c;
    CHECK_INT(load(&c, "{\"password\": true}"), -1);
    CHECK_STR(err, "t.json:1:2: \"password\": expected a string, got true");
    CHECK_INT(load(&c, "{\"acl\": [\"a\"]}"), -1);
    CHECK_STR(err, "t.json:1:2: \"acl\": expected a string, got an array");
    CHECK_INT(load(&c, "{\"tunnel_address\": \"\"}"), -1);
    CHECK_STR(err, "t.json:1:2: \"tunnel_address\": expected a non-empty string, got \"\"");
    config_free(&c);
}

TEST(test_config_empty_password_kept_for_validation)
{
    struct config c;
    CHECK_INT(load(&c, "{\"password\": \"\"}"), 0);
    CHECK_STR(c.password, "");
    config_free(&c);
}

TEST(test_config_booleans_strict_like_libev)
{
    struct config c;
    CHECK_INT(load(&c, "{\"fast_open\": true, \"reuse_port\": true, \"no_delay\": true, "
                       "\"ipv6_first\": true, \"use_syslog\": true}"),
              0);
    CHECK(c.fast_open && c.reuse_port && c.no_delay && c.ipv6_first && c.use_syslog);
    CHECK_INT(load(&c, "{\"fast_open\": \"true\"}"), -1);
    CHECK_STR(err, "t.json:1:2: \"fast_open\": expected true or false, got \"true\"");
    CHECK_INT(load(&c, "{\"no_delay\": 1}"), -1);
    CHECK_STR(err, "t.json:1:2: \"no_delay\": expected true or false, got 1");
    config_free(&c);
}

TEST(test_config_nofile_integer_only)
{
    struct config c;
    CHECK_INT(load(&c, "{\"nofile\": 51200}"), 0);
    CHECK_INT(c.nofile, 51200);
    CHECK_INT(load(&c, "{\"nofile\": \"51200\"}"), -1);
    CHECK_STR(err, "t.json:1:2: \"nofile\": expected an integer from 0 to 2147483647, got "
                   "\"51200\"");
    config_free(&c);
}

TEST(test_config_methods)
{
    struct config c;
    const char *ok[] = {"aes-128-gcm", "aes-192-gcm", "aes-256-gcm", "chacha20-ietf-poly1305"};
    for (int i = 0; i < 4; i++) {
        char json[96];
        snprintf(json, sizeof json, "{\"method\": \"%s\"}", ok[i]);
        CHECK_INT(load(&c, json), 0);
        CHECK_STR(crypto_method_info(c.method)->name, ok[i]);
        config_free(&c);
    }
    CHECK_INT(load(&c, "{\"method\": \"AES-256-GCM\"}"), 0);
    CHECK_STR(crypto_method_info(c.method)->name, "aes-256-gcm");
    config_free(&c);
}

TEST(test_config_stream_method_refused)
{
    struct config c;
    CHECK_INT(load(&c, "{\n\"method\": \"aes-256-cfb\"}"), -1);
    CHECK_STR(err, "t.json:2:1: \"method\": \"aes-256-cfb\" is not supported; reuseproxy supports "
                   "aes-128-gcm, aes-192-gcm, aes-256-gcm, chacha20-ietf-poly1305, "
                   "2022-blake3-aes-128-gcm, 2022-blake3-aes-256-gcm, "
                   "2022-blake3-chacha20-poly1305 (stream "
                   "ciphers are insecure and were replaced by the AEAD methods of SIP004)");
    config_free(&c);
}

TEST(test_config_other_methods_refused)
{
    struct config c;
    CHECK_INT(load(&c, "{\"method\": \"xchacha20-ietf-poly1305\"}"), -1);
    CHECK_STR(err, "t.json:1:2: \"method\": \"xchacha20-ietf-poly1305\" is not supported; "
                   "reuseproxy supports aes-128-gcm, aes-192-gcm, aes-256-gcm, "
                   "chacha20-ietf-poly1305, 2022-blake3-aes-128-gcm, 2022-blake3-aes-256-gcm, "
                   "2022-blake3-chacha20-poly1305");
    CHECK_INT(load(&c, "{\"method\": \"2022-blake3-aes-192-gcm\"}"), -1);
    CHECK_CONTAINS(err, "is not supported; reuseproxy supports aes-128-gcm");
    CHECK_INT(load(&c, "{\"method\": 5}"), -1);
    CHECK_STR(err, "t.json:1:2: \"method\": expected a method name such as "
                   "\"chacha20-ietf-poly1305\", got 5");
    config_free(&c);
}

TEST(test_config_modes)
{
    struct config c;
    CHECK_INT(load(&c, "{\"mode\": \"udp_only\"}"), 0);
    CHECK_INT(c.mode, MODE_UDP_ONLY);
    CHECK_INT(load(&c, "{\"mode\": \"tcp_and_udp\"}"), 0);
    CHECK_INT(c.mode, MODE_TCP_AND_UDP);
    CHECK_INT(load(&c, "{\"mode\": \"tcp\"}"), -1);
    CHECK_STR(err, "t.json:1:2: \"mode\": expected one of \"tcp_only\", \"tcp_and_udp\", "
                   "\"udp_only\", got \"tcp\"");
    config_free(&c);
}

/* ---- "server" ---- */

TEST(test_config_server_array)
{
    struct config c;
    CHECK_INT(load(&c, "{\"server\": [\"::\", \"0.0.0.0\", \"example.com:8389\", \"[::1]:8390\", "
                       "\"[2001:db8::1]\", \"10.0.0.1:1\"]}"),
              0);
    CHECK_INT(c.n_server, 6);
    CHECK_STR(c.server[0].target.host, "::");
    CHECK_INT(c.server[0].target.port, 0);
    CHECK_STR(c.server[1].target.host, "0.0.0.0");
    CHECK_STR(c.server[2].target.host, "example.com");
    CHECK_INT(c.server[2].target.port, 8389);
    CHECK_STR(c.server[3].target.host, "::1");
    CHECK_INT(c.server[3].target.port, 8390);
    CHECK_STR(c.server[4].target.host, "2001:db8::1");
    CHECK_INT(c.server[4].target.port, 0);
    CHECK_STR(c.server[5].target.host, "10.0.0.1");
    CHECK_INT(c.server[5].target.port, 1);
    config_free(&c);
}

TEST(test_config_server_replaced_by_later_load)
{
    struct config c;
    CHECK_INT(load(&c, "{\"server\": [\"a\", \"b\", \"c\"]}"), 0);
    CHECK_INT(config_load_string(&c, "{\"server\": \"d\"}", "u.json", err, sizeof err), 0);
    CHECK_INT(c.n_server, 1);
    CHECK_STR(c.server[0].target.host, "d");
    CHECK(c.server[1].target.host[0] == '\0');
    config_free(&c);
}

TEST(test_config_server_errors)
{
    struct config c;
    CHECK_INT(load(&c, "{\"server\": []}"), -1);
    CHECK_STR(err, "t.json:1:2: \"server\": expected a string or a non-empty array of strings, "
                   "got an array");
    CHECK_INT(load(&c, "{\"server\": [\"a\", 1]}"), -1);
    CHECK_STR(err, "t.json:1:2: \"server\": expected a string at index 1, got 1");
    CHECK_INT(load(&c, "{\"server\": [\"1\",\"2\",\"3\",\"4\",\"5\",\"6\",\"7\",\"8\",\"9\"]}"),
              -1);
    CHECK_STR(err, "t.json:1:2: \"server\": expected at most 8 addresses, got 9");
    CHECK_INT(load(&c, "{\"server\": \"host:99999\"}"), -1);
    CHECK_STR(err, "t.json:1:2: \"server\": expected an address, \"host:port\" or \"[ipv6]:port\", "
                   "got \"host:99999\"");
    CHECK_INT(load(&c, "{\"server\": \"a b\"}"), -1);
    CHECK_INT(load(&c, "{\"server\": \"\"}"), -1);
    CHECK_INT(load(&c, "{\"server\": \"[::1\"}"), -1);
    CHECK_INT(load(&c, "{\"server\": \"[zz]:80\"}"), -1);
    CHECK_INT(load(&c, "{\"server\": \"[example.com]\"}"), -1);
    CHECK_STR(err, "t.json:1:2: \"server\": expected an address, \"host:port\" or \"[ipv6]:port\", "
                   "got \"[example.com]\"");
    CHECK_INT(load(&c, "{\"server\": 5}"), -1);
    CHECK_STR(err, "t.json:1:2: \"server\": expected a string or a non-empty array of strings, "
                   "got 5");
    config_free(&c);
}

/* ---- reuseproxy's own keys ---- */

TEST(test_config_own_keys)
{
    struct config c;
    const char *json = "{\"role\": \"tunnel\", \"workers\": 256, \"balance\": \"dispatch\", "
                       "\"block_private\": false, \"udp_timeout\": 30, "
                       "\"udp_max_associations\": 1000, \"metrics_address\": \"127.0.0.1:9100\", "
                       "\"drain_timeout\": 0, \"connect_timeout\": 5, "
                       "\"replay_protection\": false, \"replay_capacity\": 4096, \"verbose\": 2}";
    CHECK_INT(load(&c, json), 0);
    CHECK_INT(c.role, ROLE_TUNNEL);
    CHECK_INT(c.workers, 256);
    CHECK_INT(c.balance, BALANCE_DISPATCH);
    CHECK(!c.block_private);
    CHECK_INT(c.udp_timeout, 30);
    CHECK_INT(c.udp_max_associations, 1000);
    CHECK_STR(c.metrics_address, "127.0.0.1:9100");
    CHECK_INT(c.drain_timeout, 0);
    CHECK_INT(c.connect_timeout, 5);
    CHECK(!c.replay_protection);
    CHECK_INT(c.replay_capacity, 4096);
    CHECK_INT(c.verbose, 2);
    config_free(&c);
}

TEST(test_config_own_keys_ranges)
{
    struct config c;
    CHECK_INT(load(&c, "{\"workers\": 257}"), -1);
    CHECK_STR(err, "t.json:1:2: \"workers\": expected an integer from 0 to 256, got 257");
    CHECK_INT(load(&c, "{\"workers\": \"4\"}"), -1);
    CHECK_STR(err, "t.json:1:2: \"workers\": expected an integer from 0 to 256, got \"4\"");
    CHECK_INT(load(&c, "{\"verbose\": 3}"), -1);
    CHECK_STR(err, "t.json:1:2: \"verbose\": expected an integer from 0 to 2, got 3");
    CHECK_INT(load(&c, "{\"connect_timeout\": 0}"), -1);
    CHECK_STR(err, "t.json:1:2: \"connect_timeout\": expected an integer from 1 to 2147483, "
                   "got 0");
    CHECK_INT(load(&c, "{\"udp_max_associations\": 0}"), -1);
    CHECK_INT(load(&c, "{\"replay_capacity\": 16777217}"), -1);
    CHECK_STR(err, "t.json:1:2: \"replay_capacity\": expected an integer from 1 to 16777216, "
                   "got 16777217");
    CHECK_INT(load(&c, "{\"workers\": null}"), -1);
    CHECK_STR(err, "t.json:1:2: \"workers\": expected an integer from 0 to 256, got null");
    config_free(&c);
}

/* max_handshakes_per_source: off (0) unless set; an integer, strictly. */
TEST(test_config_max_handshakes_per_source)
{
    struct config c;
    CHECK_INT(load(&c, "{}"), 0);
    CHECK_INT(c.max_handshakes_per_source, 0);
    CHECK_INT(load(&c, "{\"max_handshakes_per_source\": 16}"), 0);
    CHECK_INT(c.max_handshakes_per_source, 16);
    CHECK_INT(load(&c, "{\"max_handshakes_per_source\": -1}"), -1);
    CHECK_STR(err, "t.json:1:2: \"max_handshakes_per_source\": expected an integer from 0 to "
                   "1048576, got -1");
    CHECK_INT(load(&c, "{\"max_handshakes_per_source\": \"4\"}"), -1);
    config_free(&c);
}

TEST(test_config_own_choices)
{
    struct config c;
    CHECK_INT(load(&c, "{\"role\": \"client\"}"), -1);
    CHECK_STR(err, "t.json:1:2: \"role\": expected one of \"server\", \"local\", \"tunnel\", "
                   "\"redir\", got \"client\"");
    CHECK_INT(load(&c, "{\"balance\": 1}"), -1);
    CHECK_STR(err, "t.json:1:2: \"balance\": expected one of \"reuseport\", \"shared\", "
                   "\"dispatch\", got 1");
    CHECK_INT(load(&c, "{\"balance\": \"shared\", \"role\": \"local\"}"), 0);
    CHECK_INT(c.balance, BALANCE_SHARED);
    CHECK_INT(c.role, ROLE_LOCAL);
    CHECK_INT(load(&c, "{\"metrics_address\": null}"), -1);
    CHECK_STR(err, "t.json:1:2: \"metrics_address\": expected a string, got null");
    CHECK_INT(load(&c, "{\"block_private\": \"no\"}"), -1);
    CHECK_STR(err, "t.json:1:2: \"block_private\": expected true or false, got \"no\"");
    config_free(&c);
}

/* ---- config_validate ---- */

static const char *validate(const char *json)
{
    static char verr[1100];
    struct config c;
    verr[0] = '\0';
    config_defaults(&c);
    if (config_load_string(&c, json, "t.json", err, sizeof err) != 0) {
        snprintf(verr, sizeof verr, "LOAD: %s", err);
        config_free(&c);
        return verr;
    }
    if (config_validate(&c, verr, sizeof verr) == 0)
        snprintf(verr, sizeof verr, "OK");
    config_free(&c);
    return verr;
}

/* config_validate() over json, with what it logged in *logged (valid until the next call). */
static const char *validate_logged(const char *json, const char **logged)
{
    unit_capture_stderr_start();
    const char *r = validate(json);
    *logged = unit_capture_stderr_stop();
    return r;
}

TEST(test_validate_server_ok)
{
    CHECK_STR(validate("{\"server\": \"0.0.0.0\", \"server_port\": 8488, \"password\": "
                       "\"Vq3-long-random\"}"),
              "OK");
    CHECK_STR(validate("{\"server\": \"127.0.0.1\", \"server_port\": 8488, \"key\": "
                       "\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}"),
              "OK");
}

TEST(test_validate_server_needs_address_port_password)
{
    CHECK_STR(validate("{\"server_port\": 8488, \"password\": \"x\"}"),
              "t.json: no server address: set \"server\" (for example \"0.0.0.0\") or use -s");
    CHECK_STR(validate("{\"server\": \"::\", \"password\": \"x\"}"),
              "t.json: no server port: set \"server_port\" or use -p");
    CHECK_STR(validate("{\"server\": \"::\", \"server_port\": 1}"),
              "t.json: no password: set \"password\" (or \"key\") or use -k");
}

/* The ss-manager API: a unix socket, or a loopback address unless manager_allow_remote. */
TEST(test_validate_manager_address)
{
    struct config c;
    CHECK_INT(load(&c, "{\"server\": \"::\", \"server_port\": 1, \"password\": \"Vq3-long\",\n"
                       "\"manager_address\": \"/run/rp/manager.sock\", \"manager_state\": "
                       "\"/var/lib/rp/state.json\"}"),
              0);
    CHECK_INT(config_validate(&c, err, sizeof err), 0);
    CHECK(c.has_manager && c.manager_is_unix);
    CHECK_STR(c.manager_path, "/run/rp/manager.sock");
    CHECK_INT(load(&c, "{\"server\": \"::\", \"server_port\": 1, \"password\": \"Vq3-long\",\n"
                       "\"manager_address\": \"[::1]:6001\"}"),
              0);
    CHECK_INT(config_validate(&c, err, sizeof err), 0);
    CHECK(c.has_manager && !c.manager_is_unix);
    CHECK_INT(c.manager.target.port, 6001);
    CHECK_STR(validate("{\"server\": \"::\", \"server_port\": 1, \"password\": \"Vq3-long\",\n"
                       "  \"manager_address\": \"0.0.0.0:6001\"}"),
              "t.json:2:3: \"manager_address\": \"0.0.0.0:6001\" is not a loopback address, and "
              "whoever reaches the API can add ports and read every password; use a unix socket "
              "path, 127.0.0.1 or ::1, or set \"manager_allow_remote\": true");
    CHECK_STR(validate("{\"server\": \"::\", \"server_port\": 1, \"password\": \"Vq3-long\",\n"
                       "  \"manager_address\": \"0.0.0.0:6001\", \"manager_allow_remote\": true}"),
              "OK");
    CHECK_CONTAINS(validate("{\"server\": \"::\", \"server_port\": 1, \"password\": \"Vq3-long\","
                            "\"manager_address\": \"localhost:6001\"}"),
                   "t.json:1:59: \"manager_address\": expected a unix socket path");
    CHECK_CONTAINS(validate("{\"server\": \"::\", \"server_port\": 1, \"password\": \"Vq3-long\","
                            "\"manager_state\": \"/tmp/s\"}"),
                   "\"manager_state\" keeps the ports of the ss-manager API: it needs");
    config_free(&c);
}

/* "user" must name a user of this system (or a uid, as libev takes): a typo is an error at
 * start and with --check, not a worker that cannot drop root. */
TEST(test_validate_user_exists)
{
    CHECK_STR(validate("{\"server\": \"::\", \"server_port\": 1, \"password\": \"x\", "
                       "\"user\": \"root\"}"),
              "OK");
    CHECK_STR(validate("{\"server\": \"::\", \"server_port\": 1, \"password\": \"x\", "
                       "\"user\": 0}"),
              "OK");
    CHECK_STR(validate("{\"server\": \"::\", \"server_port\": 1, \"password\": \"x\",\n"
                       "  \"user\": \"no-such-user-here\"}"),
              "t.json:2:3: \"user\": no user \"no-such-user-here\" on this system");
    uid_t uid = 1;
    gid_t gid = 1;
    CHECK_INT(config_user_ids("root", &uid, &gid), 0);
    CHECK_INT(uid, 0);
    CHECK_INT(gid, 0);
    CHECK_INT(config_user_ids("0", &uid, NULL), 0);
    CHECK_INT(config_user_ids("", &uid, NULL), -1);
    CHECK_INT(config_user_ids("12x", &uid, NULL), -1);
}

TEST(test_validate_without_file_says_command_line)
{
    struct config c;
    char verr[256];
    config_defaults(&c);
    CHECK_INT(config_validate(&c, verr, sizeof verr), -1);
    CHECK_STR(verr, "command line: no server address: set \"server\" (for example \"0.0.0.0\") "
                    "or use -s");
    config_free(&c);
}

TEST(test_validate_local_and_tunnel_needs)
{
    CHECK_STR(validate("{\"role\": \"local\", \"server_port\": 1, \"password\": \"x\", "
                       "\"local_port\": 1080}"),
              "t.json: no server to connect to: set \"server\" or use -s");
    CHECK_STR(validate("{\"role\": \"local\", \"server\": \"1.2.3.4\", \"server_port\": 1, "
                       "\"password\": \"x\"}"),
              "t.json: no local port: set \"local_port\" or use -l");
    CHECK_STR(validate("{\"role\": \"local\", \"server\": \"1.2.3.4\", \"server_port\": 1, "
                       "\"password\": \"x\", \"local_port\": 1080}"),
              "OK");
    CHECK_STR(validate("{\"role\": \"tunnel\", \"server\": \"1.2.3.4\", \"server_port\": 1, "
                       "\"password\": \"x\", \"local_port\": 5353}"),
              "t.json: the tunnel role needs a destination: set \"tunnel_address\" "
              "(\"host:port\") or use -L");
    CHECK_STR(validate("{\"role\": \"tunnel\", \"server\": \"1.2.3.4\", \"server_port\": 1, "
                       "\"password\": \"x\", \"local_port\": 5353, \"tunnel_address\": "
                       "\"8.8.8.8:53\"}"),
              "OK");
}

TEST(test_validate_tunnel_address_form)
{
    CHECK_STR(validate("{\"role\": \"tunnel\", \"server\": \"1.2.3.4\", \"server_port\": 1,\n"
                       "  \"password\": \"x\", \"local_port\": 5353,\n"
                       "  \"tunnel_address\": \"8.8.8.8\"}"),
              "t.json:3:3: \"tunnel_address\": expected \"host:port\" or \"[ipv6]:port\", got "
              "\"8.8.8.8\"");
    CHECK_STR(validate("{\"role\": \"tunnel\", \"server\": \"1.2.3.4\", \"server_port\": 1, "
                       "\"password\": \"x\", \"local_port\": 5353, \"tunnel_address\": "
                       "\"[2001:4860:4860::8888]:53\"}"),
              "OK");
    /* A server role does not look at tunnel_address, beyond saying that it ignores it. */
    const char *out;
    CHECK_STR(validate_logged("{\"server\": \"::1\", \"server_port\": 1, \"password\": \"x\", "
                              "\"tunnel_address\": \"junk\"}",
                              &out),
              "OK");
    CHECK_CONTAINS(out, "t.json:1:54: \"tunnel_address\": ignored in the server role");
}

TEST(test_validate_metrics_address_form)
{
    CHECK_STR(validate("{\"server\": \"::1\", \"server_port\": 1, \"password\": \"x\",\n"
                       " \"metrics_address\": \"9100\"}"),
              "t.json:2:2: \"metrics_address\": expected \"host:port\" or \"[ipv6]:port\", got "
              "\"9100\"");
    CHECK_STR(validate("{\"server\": \"::1\", \"server_port\": 1, \"password\": \"x\", "
                       "\"metrics_address\": \"[::1]:9100\"}"),
              "OK");
}

TEST(test_validate_key_length)
{
    /* 16 bytes of base64 for a method that needs 32. */
    CHECK_STR(validate("{\"server\": \"::1\", \"server_port\": 1,\n \"key\": "
                       "\"AAAAAAAAAAAAAAAAAAAAAA==\"}"),
              "t.json:2:2: \"key\": decodes to 16 bytes, but chacha20-ietf-poly1305 needs a key of "
              "32 bytes");
    CHECK_STR(validate("{\"server\": \"::1\", \"server_port\": 1, \"method\": \"aes-128-gcm\", "
                       "\"key\": \"AAAAAAAAAAAAAAAAAAAAAA==\"}"),
              "OK");
    CHECK_STR(validate("{\"server\": \"::1\", \"server_port\": 1, \"key\": \"not base64!\"}"),
              "t.json:1:37: \"key\": expected base64 (standard or URL-safe) of 32 bytes");
}

TEST(test_validate_key_wins_over_password)
{
    /* libev's crypto_init() uses the key when both are set; the placeholder is then unused. */
    CHECK_STR(validate("{\"server\": \"0.0.0.0\", \"server_port\": 1, \"password\": \"barfoo!\", "
                       "\"key\": \"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}"),
              "OK");
}

TEST(test_validate_placeholder_on_public_address_refused)
{
    CHECK_STR(validate("{\"server\": \"0.0.0.0\", \"server_port\": 8488,\n"
                       "  \"password\": \"CHANGE-ME\"}"),
              "t.json:2:3: the password \"CHANGE-ME\" is a placeholder, and reuseproxy would "
              "listen on 0.0.0.0, which is not a loopback address: set a real password (or "
              "\"key\"), or listen on 127.0.0.1");
    CHECK_CONTAINS(validate("{\"server\": [\"127.0.0.1\", \"::\"], \"server_port\": 1, "
                            "\"password\": \"barfoo!\"}"),
                   "the password \"barfoo!\" is a placeholder, and reuseproxy would listen on ::,");
    CHECK_CONTAINS(validate("{\"server\": \"example.com\", \"server_port\": 1, \"password\": "
                            "\"\"}"),
                   "t.json:1:45: the password is empty, and reuseproxy would listen on "
                   "example.com,");
    CHECK_CONTAINS(validate("{\"server\": \"::\", \"server_port\": 1, \"password\": "
                            "\"changeme\"}"),
                   "is a placeholder");
    CHECK_CONTAINS(validate("{\"server\": \"::\", \"server_port\": 1, \"password\": "
                            "\"Password\"}"),
                   "is a placeholder");
}

/* Issue 13 item 9: the local roles connect to the first server only; the rest is named. */
/* The local roles use every server (failover, balance_servers): no warning any more. */
TEST(test_validate_local_roles_use_every_server)
{
    const char *out;
    CHECK_STR(validate_logged("{\"role\": \"local\", \"local_port\": 1080, \"password\": \"x\",\n"
                              " \"server\": [\"192.0.2.1\", \"192.0.2.2\", \"192.0.2.3\"], "
                              "\"server_port\": 8488}",
                              &out),
              "OK");
    CHECK(strstr(out, "WARN") == NULL);
    CHECK_STR(validate_logged("{\"role\": \"tunnel\", \"local_port\": 53, \"password\": \"x\", "
                              "\"tunnel_address\": \"9.9.9.9:53\", \"server\": [\"[::1]:1\", "
                              "\"192.0.2.2\"], \"server_port\": 8488}",
                              &out),
              "OK");
    CHECK(strstr(out, "WARN") == NULL);
}

/* Issue 13 item 11: the local roles' keys given to the server role are named as ignored. */
TEST(test_validate_server_role_warns_unused_keys)
{
    const char *out;
    CHECK_STR(validate_logged("{\"server\": \"127.0.0.1\", \"server_port\": 1, \"password\": "
                              "\"x\",\n  \"local_address\": \"127.0.0.1\", \"local_port\": 1080,\n"
                              "  \"tunnel_address\": \"9.9.9.9:53\"}",
                              &out),
              "OK");
    CHECK_CONTAINS(out, "WARN t.json:2:3: \"local_address\": ignored in the server role, which "
                        "listens on \"server\" (-s); it sets where the local and tunnel roles "
                        "listen\n");
    CHECK_CONTAINS(out, "WARN t.json:2:33: \"local_port\": ignored in the server role, which "
                        "listens on \"server_port\" (-p)");
    CHECK_CONTAINS(out, "WARN t.json:3:3: \"tunnel_address\": ignored in the server role; it is "
                        "the tunnel role's destination\n");
    CHECK_STR(validate_logged("{\"server\": \"127.0.0.1\", \"server_port\": 1, \"password\": "
                              "\"x\"}",
                              &out),
              "OK");
    CHECK(strstr(out, "WARN") == NULL);
    /* the local role uses local_address and local_port, not tunnel_address */
    CHECK_STR(validate_logged("{\"role\": \"local\", \"local_port\": 1080, \"password\": \"x\", "
                              "\"server\": \"192.0.2.1\", \"server_port\": 8488, "
                              "\"local_address\": \"127.0.0.1\"}",
                              &out),
              "OK");
    CHECK(strstr(out, "WARN") == NULL);
}

/* Issue 13 item 12: the example passwords the docs use are placeholders too, whatever their
 * case and punctuation; a real password that merely contains one is not. */
TEST(test_validate_placeholder_list_from_the_docs)
{
    const char *refused[] = {"SECRET",      "secret",    "your-password", "Your_Password",
                             "$PASSWORD",   "barfoo!",   "BarFoo",        "CHANGE-ME",
                             "change_me",   "changeit",  "password",      "a long random password",
                             "my password", "foobar!",   "Secret!",       "pass-wd"};
    const char *accepted[] = {"Kx9-real-secret", "my-secret-is-long-7f3a", "passwords-are-fun-2",
                              "!!!",             "xchangeme",              "S3CR3T-q81"};
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++)
        if (!config_is_placeholder_password(refused[i]))
            unit_fail(__FILE__, __LINE__, "\"%s\" should be a placeholder", refused[i]);
    for (size_t i = 0; i < sizeof accepted / sizeof accepted[0]; i++)
        if (config_is_placeholder_password(accepted[i]))
            unit_fail(__FILE__, __LINE__, "\"%s\" should not be a placeholder", accepted[i]);
    CHECK(config_is_placeholder_password(""));
    CHECK(!config_is_placeholder_password(NULL));
    CHECK_CONTAINS(validate("{\"server\": \"0.0.0.0\", \"server_port\": 8488, \"password\": "
                            "\"SECRET\"}"),
                   "t.json:1:44: the password \"SECRET\" is a placeholder, and reuseproxy would "
                   "listen on 0.0.0.0");
}

TEST(test_validate_placeholder_on_loopback_allowed)
{
    CHECK_STR(validate("{\"server\": [\"127.0.0.1\", \"::1\", \"localhost\", \"127.8.9.10\"], "
                       "\"server_port\": 8488, \"password\": \"CHANGE-ME-loopback-only\"}"),
              "OK");
}

TEST(test_validate_placeholder_local_role_uses_local_address)
{
    const char *base = "{\"role\": \"local\", \"server\": \"203.0.113.9\", \"server_port\": 1, "
                       "\"local_port\": 1080, \"password\": \"barfoo!\"";
    char json[512];
    snprintf(json, sizeof json, "%s}", base);
    CHECK_STR(validate(json), "OK");
    snprintf(json, sizeof json, "%s, \"local_address\": \"0.0.0.0\"}", base);
    CHECK_CONTAINS(validate(json), "would listen on 0.0.0.0, which is not a loopback address");
}

TEST(test_validate_local_address_form)
{
    CHECK_STR(validate("{\"role\": \"local\", \"server\": \"203.0.113.9\", \"server_port\": 1, "
                       "\"local_port\": 1080, \"password\": \"x\", \"local_address\": \"a b\"}"),
              "t.json:1:99: \"local_address\": expected an IP address or a host name, got "
              "\"a b\"");
}

/* ---- Typed values: what --check and a start both derive ---- */

static void check_endpoint(const struct netaddr_endpoint *e, const char *host, int port)
{
    CHECK_STR(e->target.host, host);
    CHECK_INT(e->target.port, port);
}

/* A start refuses what it cannot bind without resolving, so config_validate() (run by --check
 * and by a start alike) refuses it first, at the key's position. */
TEST(test_validate_metrics_host_name_refused_like_a_start)
{
    CHECK_STR(validate("{\"server\": \"127.0.0.1\", \"server_port\": 1, \"password\": \"x\",\n"
                       " \"metrics_address\": \"localhost:19100\"}"),
              "t.json:2:2: \"metrics_address\": expected an IP address and a port "
              "(\"127.0.0.1:9100\" or \"[::1]:9100\"; host names are not resolved here), got "
              "\"localhost:19100\"");
}

TEST(test_validate_nameserver_list_parsed)
{
    CHECK_STR(validate("{\"server\": \"127.0.0.1\", \"server_port\": 1, \"password\": \"x\",\n"
                       " \"nameserver\": \"1.1.1.1,dns.google\"}"),
              "t.json:2:2: \"nameserver\": expected IP addresses with optional ports, separated "
              "by commas (\"1.1.1.1\", \"[::1]:5353\"; at most 8), got \"1.1.1.1,dns.google\"");
    struct config c;
    CHECK_INT(load(&c, "{\"server\": \"127.0.0.1\", \"server_port\": 1, \"password\": \"x\", "
                       "\"nameserver\": \"1.1.1.1, [::1]:5353\"}"),
              0);
    CHECK_INT(config_validate(&c, err, sizeof err), 0);
    CHECK_INT(c.n_nameserver, 2);
    check_endpoint(&c.nameservers[0], "1.1.1.1", 0);
    check_endpoint(&c.nameservers[1], "::1", 5353);
    config_free(&c);
}

TEST(test_validate_derives_listen_list_and_key)
{
    struct config c;
    struct crypto_key want;
    CHECK_INT(load(&c, "{\"server\": [\"127.0.0.1\", \"[::1]:8390\"], \"server_port\": 8388, "
                       "\"password\": \"s3cret\", \"method\": \"AES-128-GCM\", "
                       "\"ipv6_first\": true}"),
              0);
    CHECK_INT(c.method, CRYPTO_AES_128_GCM);
    CHECK_INT(config_validate(&c, err, sizeof err), 0);
    CHECK_INT(c.n_listen, 2);
    check_endpoint(&c.listen[0], "127.0.0.1", 8388);
    CHECK_INT(netaddr_port((struct sockaddr *)&c.listen[0].target.addr), 8388);
    CHECK_INT(c.listen[1].target.port, 8390);
    CHECK_INT(c.listen[1].prefer, NETADDR_PREFER_IPV6);
    CHECK_INT(c.n_port, 1);
    CHECK_INT(c.ports[0].port, 8388);
    CHECK_INT(c.ports[0].method, CRYPTO_AES_128_GCM);
    CHECK_INT(c.ports[0].n_users, 0);
    CHECK(c.plugin.plugin == NULL);
    CHECK_INT(c.plugin.n_plugin_args, 0);
    CHECK_INT(crypto_key_from_password(&want, CRYPTO_AES_128_GCM, "s3cret"), 0);
    CHECK_INT(c.ports[0].key.len, 16);
    CHECK_MEM(c.ports[0].key.bytes, want.bytes, 16);
    config_free(&c);
}

TEST(test_validate_local_role_targets)
{
    struct config c;
    CHECK_INT(load(&c, "{\"role\": \"tunnel\", \"server\": \"example.com\", \"server_port\": "
                       "8388, \"password\": \"x\", \"local_port\": 5353, \"local_address\": "
                       "\"::1\", \"tunnel_address\": \"[2001:db8::53]:53\"}"),
              0);
    CHECK_INT(config_validate(&c, err, sizeof err), 0);
    CHECK_INT(c.upstream.target.atyp, NETADDR_ATYP_DOMAIN);
    check_endpoint(&c.upstream, "example.com", 8388);
    CHECK_INT(c.tunnel.target.atyp, NETADDR_ATYP_IPV6);
    CHECK_INT(c.tunnel.target.port, 53);
    CHECK_INT(c.n_listen, 1);
    check_endpoint(&c.listen[0], "::1", 5353);
    config_free(&c);
}

TEST(test_validate_bad_key_has_position)
{
    CHECK_STR(validate("{\"server\": \"127.0.0.1\", \"server_port\": 1,\n  \"key\": \"@@@\"}"),
              "t.json:2:3: \"key\": expected base64 (standard or URL-safe) of 32 bytes");
}

/* ---- The small parsers ---- */

/* "host:port" as the configuration reads tunnel_address: netaddr's one parser, port required. */
static int hostport(const char *s, char *host, size_t hostlen, int *port)
{
    struct netaddr_endpoint e;
    if (!s || netaddr_parse_hostport(s, strlen(s), CONFIG_TUNNEL_FLAGS, &e) != 0 ||
        strlen(e.target.host) >= hostlen)
        return -1;
    strcpy(host, e.target.host);
    *port = e.target.port;
    return 0;
}

TEST(test_config_parse_hostport)
{
    char host[64];
    int port = 0;
    CHECK_INT(hostport("8.8.8.8:53", host, sizeof host, &port), 0);
    CHECK_STR(host, "8.8.8.8");
    CHECK_INT(port, 53);
    CHECK_INT(hostport("[::1]:9100", host, sizeof host, &port), 0);
    CHECK_STR(host, "::1");
    CHECK_INT(port, 9100);
    CHECK_INT(hostport("dns.google:853", host, sizeof host, &port), 0);
    CHECK_STR(host, "dns.google");
    CHECK_INT(hostport("::1:53", host, sizeof host, &port), -1);
    CHECK_INT(hostport("host", host, sizeof host, &port), -1);
    CHECK_INT(hostport("host:", host, sizeof host, &port), -1);
    CHECK_INT(hostport(":53", host, sizeof host, &port), -1);
    CHECK_INT(hostport("host:0", host, sizeof host, &port), -1);
    CHECK_INT(hostport("host:65536", host, sizeof host, &port), -1);
    CHECK_INT(hostport("[::1]53", host, sizeof host, &port), -1);
    CHECK_INT(hostport("[1.2.3.4]:53", host, sizeof host, &port), -1);
    CHECK_INT(hostport("a/b:53", host, sizeof host, &port), -1);
    CHECK_INT(hostport("averyveryverylonghostname.example:1", host, 8, &port), -1);
    CHECK_INT(hostport(NULL, host, sizeof host, &port), -1);
}

TEST(test_config_parse_int)
{
    int v = -7;
    CHECK_INT(config_parse_int("0", 0, 5, &v), 0);
    CHECK_INT(v, 0);
    CHECK_INT(config_parse_int("65535", 1, 65535, &v), 0);
    CHECK_INT(v, 65535);
    CHECK_INT(config_parse_int("65536", 1, 65535, &v), -1);
    CHECK_INT(config_parse_int("-1", -5, 5, &v), -1);
    CHECK_INT(config_parse_int("1 ", 0, 5, &v), -1);
    CHECK_INT(config_parse_int("", 0, 5, &v), -1);
    CHECK_INT(config_parse_int("99999999999999999999", 0, 5, &v), -1);
    CHECK_INT(config_parse_int("2147483647", 0, 2147483647, &v), 0);
    CHECK_INT(v, 2147483647);
}

TEST(test_config_is_loopback)
{
    CHECK(config_is_loopback("127.0.0.1"));
    CHECK(config_is_loopback("127.255.0.3"));
    CHECK(config_is_loopback("::1"));
    CHECK(config_is_loopback("::ffff:127.0.0.1"));
    CHECK(config_is_loopback("LocalHost"));
    CHECK(!config_is_loopback("0.0.0.0"));
    CHECK(!config_is_loopback("::"));
    CHECK(!config_is_loopback("128.0.0.1"));
    CHECK(!config_is_loopback("localhost.example.com"));
    CHECK(!config_is_loopback(NULL));
}

TEST(test_config_placeholder_passwords)
{
    CHECK(config_is_placeholder_password(""));
    CHECK(config_is_placeholder_password("barfoo!"));
    CHECK(config_is_placeholder_password("password"));
    CHECK(config_is_placeholder_password("changeme"));
    CHECK(config_is_placeholder_password("CHANGE-ME"));
    CHECK(config_is_placeholder_password("CHANGE_ME_NOW"));
    CHECK(!config_is_placeholder_password("Xk9-random-9fQ"));
    CHECK(!config_is_placeholder_password("exchange"));
    CHECK(!config_is_placeholder_password(NULL));
}

/* A method's key length from crypto.c's one table, its name matched in any case. */
static int method_key_length(const char *name)
{
    int m = crypto_method_lookup(name);
    return m < 0 ? -1 : (int)crypto_method_info((enum crypto_method)m)->key_len;
}

static const char *method_canonical(const char *name)
{
    int m = crypto_method_lookup(name);
    return m < 0 ? NULL : crypto_method_info((enum crypto_method)m)->name;
}

TEST(test_config_method_helpers)
{
    CHECK_INT(method_key_length("aes-128-gcm"), 16);
    CHECK_INT(method_key_length("aes-192-gcm"), 24);
    CHECK_INT(method_key_length("aes-256-gcm"), 32);
    CHECK_INT(method_key_length("chacha20-ietf-poly1305"), 32);
    CHECK_INT(method_key_length("aes-256-cfb"), -1);
    CHECK_INT(method_key_length(NULL), -1);
    CHECK_STR(method_canonical("ChaCha20-IETF-Poly1305"), "chacha20-ietf-poly1305");
    CHECK(method_canonical("rc4-md5") == NULL);
}

/* One table: the names in messages and the protocol of each method come from crypto.c. */
TEST(test_config_method_table)
{
    CHECK_STR(crypto_method_names(),
              "aes-128-gcm, aes-192-gcm, aes-256-gcm, chacha20-ietf-poly1305, "
              "2022-blake3-aes-128-gcm, 2022-blake3-aes-256-gcm, 2022-blake3-chacha20-poly1305");
    for (int m = 0; m < CRYPTO_METHOD_COUNT; m++)
        CHECK_INT(crypto_method_info((enum crypto_method)m)->proto,
                  m < CRYPTO_SIP004_COUNT ? CRYPTO_PROTO_SIP004 : CRYPTO_PROTO_SIP022);
}

/* ---- Shadowsocks 2022: methods, PSKs, users ---- */

#define PSK16_A "AAECAwQFBgcICQoLDA0ODw=="
#define PSK16_B "EBESExQVFhcYGRobHB0eHw=="
#define PSK16_C "ICEiIyQlJicoKSorLC0uLw=="
#define PSK32_A "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
#define SIP022_SERVER(method, password, rest)                                                      \
    "{\"server\": \"0.0.0.0\", \"server_port\": 8488, \"method\": \"" method "\",\n"               \
    "\"password\": \"" password "\"" rest "}"
#define SIP022_LOCAL(method, password)                                                             \
    "{\"role\": \"local\", \"server\": \"192.0.2.1\", \"server_port\": 8488, \"local_port\": 1080, " \
    "\"method\": \"" method "\",\n\"password\": \"" password "\"}"

/* The three methods of SIP022, in any case, with their protocol. */
TEST(test_config_sip022_methods_any_case)
{
    struct config c;
    static const char *const names[] = {"2022-BLAKE3-AES-128-GCM", "2022-blake3-aes-256-gcm",
                                        "2022-Blake3-ChaCha20-Poly1305"};
    static const enum crypto_method want[] = {CRYPTO_2022_AES_128_GCM, CRYPTO_2022_AES_256_GCM,
                                              CRYPTO_2022_CHACHA20_POLY1305};
    for (size_t i = 0; i < 3; i++) {
        char json[128];
        snprintf(json, sizeof json, "{\"method\": \"%s\"}", names[i]);
        CHECK_INT(load(&c, json), 0);
        CHECK_INT(c.method, want[i]);
        CHECK_INT(crypto_method_info(c.method)->proto, CRYPTO_PROTO_SIP022);
    }
    config_free(&c);
}

/* The password of a SIP022 method is its base64 PSK, of exactly the key's length. */
TEST(test_validate_sip022_psk)
{
    struct config c;
    CHECK_STR(validate(SIP022_SERVER("2022-blake3-aes-128-gcm", PSK16_A, "")), "OK");
    CHECK_STR(validate(SIP022_SERVER("2022-blake3-aes-256-gcm", PSK32_A, "")), "OK");
    CHECK_STR(validate(SIP022_SERVER("2022-blake3-chacha20-poly1305", PSK32_A, "")), "OK");
    CHECK_STR(validate(SIP022_SERVER("2022-blake3-aes-256-gcm", PSK16_A, "")),
              "t.json:2:1: \"password\": decodes to 16 bytes, but 2022-blake3-aes-256-gcm needs a "
              "key of 32 bytes (reuseproxy --genkey 2022-blake3-aes-256-gcm makes one)");
    CHECK_STR(validate(SIP022_SERVER("2022-blake3-aes-128-gcm", "not base64!", "")),
              "t.json:2:1: \"password\": expected the base64 of a 16-byte key for "
              "2022-blake3-aes-128-gcm (reuseproxy --genkey 2022-blake3-aes-128-gcm makes one)");
    CHECK_STR(validate(SIP022_SERVER("2022-blake3-aes-128-gcm", "", "")),
              "t.json:2:1: \"password\": expected the base64 of a 16-byte key for "
              "2022-blake3-aes-128-gcm (reuseproxy --genkey 2022-blake3-aes-128-gcm makes one)");
    /* the key itself, not EVP_BytesToKey of the text */
    config_defaults(&c);
    CHECK_INT(config_load_string(&c, SIP022_SERVER("2022-blake3-aes-128-gcm", PSK16_A, ""), "t.json",
                                 err, sizeof err),
              0);
    CHECK_INT(config_validate(&c, err, sizeof err), 0);
    CHECK_INT(c.ports[0].key.len, 16);
    for (int i = 0; i < 16; i++)
        CHECK_INT(c.ports[0].key.bytes[i], i);
    CHECK_INT(c.ports[0].n_identity_keys, 0);
    config_free(&c);
}

/* A client's "iPSK:uPSK" (SIP023, AES methods): the identity keys in order, the last the
 * session key. Refused on a server and with chacha20. */
TEST(test_validate_sip022_client_identity_keys)
{
    struct config c;
    config_defaults(&c);
    CHECK_INT(config_load_string(&c, SIP022_LOCAL("2022-blake3-aes-128-gcm", PSK16_A ":" PSK16_B),
                                 "t.json", err, sizeof err),
              0);
    CHECK_INT(config_validate(&c, err, sizeof err), 0);
    CHECK_INT(c.ports[0].n_identity_keys, 1);
    CHECK_INT(c.ports[0].identity_keys[0].bytes[0], 0);
    CHECK_INT(c.ports[0].key.bytes[0], 16);
    config_free(&c);
    CHECK_STR(validate(SIP022_LOCAL("2022-blake3-aes-128-gcm", PSK16_A ":" PSK32_A)),
              "t.json:2:1: \"password\": decodes to 32 bytes, but 2022-blake3-aes-128-gcm needs a "
              "key of 16 bytes (reuseproxy --genkey 2022-blake3-aes-128-gcm makes one)");
    CHECK_CONTAINS(validate(SIP022_LOCAL("2022-blake3-chacha20-poly1305", PSK32_A ":" PSK32_A)),
                   "t.json:2:1: \"password\": \"iPSK:uPSK\" is for clients");
    CHECK_CONTAINS(validate(SIP022_SERVER("2022-blake3-aes-128-gcm", PSK16_A ":" PSK16_B, "")),
                   "a server takes one PSK and names its users in \"users\"");
}

/* "users": names and uPSKs of an EIH server; each name and key once; AES methods, server. */
TEST(test_validate_sip022_users)
{
    struct config c;
    const char *two = ",\n\"users\": [{\"name\": \"alice\", \"password\": \"" PSK16_B "\"},\n"
                      "{\"name\": \"bob\", \"password\": \"" PSK16_C "\"}]";
    char json[512];
    snprintf(json, sizeof json, SIP022_SERVER("2022-blake3-aes-128-gcm", PSK16_A, "%s"), two);
    config_defaults(&c);
    CHECK_INT(config_load_string(&c, json, "t.json", err, sizeof err), 0);
    CHECK_INT(config_validate(&c, err, sizeof err), 0);
    CHECK_INT(c.ports[0].n_users, 2);
    CHECK_STR(c.ports[0].users[0].name, "alice");
    CHECK_STR(c.ports[0].users[1].name, "bob");
    CHECK_INT(c.ports[0].users[1].key.bytes[0], 32);
    CHECK_INT(c.ports[0].users[1].key.len, 16);
    config_free(&c);
    CHECK_STR(validate(SIP022_SERVER("2022-blake3-aes-128-gcm", PSK16_A,
                                     ",\n\"users\": [{\"name\": \"a\", \"password\": \"" PSK32_A
                                     "\"}]")),
              "t.json:3:1: \"users\"[0].password: decodes to 32 bytes, but 2022-blake3-aes-128-gcm "
              "needs a key of 16 bytes (reuseproxy --genkey 2022-blake3-aes-128-gcm makes one)");
    CHECK_STR(validate(SIP022_SERVER("2022-blake3-aes-128-gcm", PSK16_A,
                                     ",\n\"users\": [{\"name\": \"a\", \"password\": \"" PSK16_B
                                     "\"}, {\"name\": \"a\", \"password\": \"" PSK16_C "\"}]")),
              "t.json:3:1: \"users\"[1]: the name \"a\" is also users[0]'s");
    CHECK_STR(validate(SIP022_SERVER("2022-blake3-aes-128-gcm", PSK16_A,
                                     ",\n\"users\": [{\"name\": \"a\", \"password\": \"" PSK16_B
                                     "\"}, {\"name\": \"b\", \"password\": \"" PSK16_B "\"}]")),
              "t.json:3:1: \"users\"[1]: the same password as users[0]; each user needs a key of "
              "their own");
    CHECK_CONTAINS(
        validate(SIP022_SERVER("2022-blake3-chacha20-poly1305", PSK32_A,
                               ",\n\"users\": [{\"name\": \"a\", \"password\": \"" PSK32_A "\"}]")),
        "t.json:3:1: \"users\": only a server has users");
}

/* SIP004 users: a password derived as libev derives one, or "key" in base64; the port needs
 * no password of its own; a client has no users. */
TEST(test_validate_sip004_users)
{
    struct config c;
    struct crypto_key want;

    config_defaults(&c);
    CHECK_INT(config_load_string(&c,
                                 "{\"server\": \"0.0.0.0\", \"server_port\": 1, \"method\": "
                                 "\"aes-128-gcm\",\n\"users\": [{\"name\": \"a\", \"password\": "
                                 "\"xyzzy-1\"}, {\"name\": \"b\", \"key\": \"" PSK16_B "\"}]}",
                                 "t.json", err, sizeof err),
              0);
    CHECK_INT(config_validate(&c, err, sizeof err), 0);
    CHECK_INT(c.ports[0].n_users, 2);
    CHECK_INT(crypto_key_from_password(&want, CRYPTO_AES_128_GCM, "xyzzy-1"), 0);
    CHECK(memcmp(c.ports[0].users[0].key.bytes, want.bytes, 16) == 0);
    CHECK_INT(crypto_key_from_base64(&want, CRYPTO_AES_128_GCM, PSK16_B), 0);
    CHECK(memcmp(c.ports[0].users[1].key.bytes, want.bytes, 16) == 0);
    config_free(&c);
    CHECK_STR(validate("{\"server\": \"0.0.0.0\", \"server_port\": 1, \"method\": "
                       "\"aes-128-gcm\",\n\"users\": [{\"name\": \"a\", \"key\": \"" PSK32_A
                       "\"}]}"),
              "t.json:2:1: \"users\"[0].key: decodes to 32 bytes, but aes-128-gcm needs a key of "
              "16 bytes (reuseproxy --genkey aes-128-gcm makes one)");
    CHECK_STR(validate("{\"server\": \"0.0.0.0\", \"server_port\": 1, \"method\": "
                       "\"aes-128-gcm\",\n\"users\": [{\"name\": \"a\", \"password\": \"p\"}, "
                       "{\"name\": \"b\", \"password\": \"p\"}]}"),
              "t.json:2:1: \"users\"[1]: the same password as users[0]; each user needs a key of "
              "their own");
    CHECK_CONTAINS(validate("{\"role\": \"tunnel\", \"server\": \"127.0.0.1\", \"server_port\": 1, "
                            "\"local_port\": 2, \"tunnel_address\": \"127.0.0.1:3\", \"password\": "
                            "\"xyzzy-1\",\n\"users\": [{\"name\": \"a\", \"password\": \"b\"}]}"),
                   "t.json:2:1: \"users\": only a server has users");
    CHECK_CONTAINS(validate("{\"server\": \"0.0.0.0\", \"server_port\": 1, \"method\": "
                            "\"aes-128-gcm\", \"mode\": \"tcp_and_udp\",\n\"users\": [{\"name\": "
                            "\"a\", \"password\": \"b\"}]}"),
                   "\"mode\": a port with \"users\" and aes-128-gcm serves TCP only");
}

/* The shape of "users", checked as the file is loaded. */
TEST(test_config_users_shape)
{
    struct config c;
    CHECK_INT(load(&c, "{\n\"users\": \"x\"}"), -1);
    CHECK_STR(err, "t.json:2:1: \"users\": expected an array of 1 to 65536 objects {\"name\": ..., "
                   "\"password\": ...}, got \"x\"");
    CHECK_INT(load(&c, "{\"users\": [1]}"), -1);
    CHECK_STR(err, "t.json:1:2: \"users\"[0]: expected an object, got 1");
    CHECK_INT(load(&c, "{\"users\": [{\"name\": \"a\"}]}"), -1);
    CHECK_STR(err, "t.json:1:2: \"users\"[0]: expected \"password\" as a non-empty string, got "
                   "nothing");
    CHECK_INT(load(&c, "{\"users\": [{\"name\": \"a\", \"password\": \"b\", \"pw\": 1}]}"), -1);
    CHECK_STR(err, "t.json:1:2: \"users\"[0]: unknown member \"pw\"; a user has \"name\" and "
                   "\"password\" (or \"key\")");
    CHECK_INT(load(&c, "{\"users\": [{\"name\": \"a\", \"password\": \"b\", \"key\": \"c\"}]}"),
              -1);
    CHECK_STR(err, "t.json:1:2: \"users\"[0]: expected \"password\" or \"key\", not both");
    CHECK_INT(load(&c, "{\"users\": [{\"name\": \"\", \"password\": \"b\"}]}"), -1);
    CHECK_STR(err, "t.json:1:2: \"users\"[0]: expected \"name\" as a non-empty string, got \"\"");
    CHECK_INT(load(&c, "{\"users\": null}"), 0);
    CHECK_INT(c.n_users, 0);
    config_free(&c);
}

/* A "server" entry as the configuration reads it (libev's parse_addr). */
static int split_server(const char *s, char **host, int *port)
{
    struct netaddr_endpoint e;
    if (netaddr_parse_hostport(s, strlen(s), CONFIG_SERVER_FLAGS, &e) != 0)
        return -1;
    *host = strdup(e.target.host);
    *port = e.target.port;
    return *host ? 0 : -2;
}

TEST(test_config_split_server)
{
    char *host = NULL;
    int port = -1;
    CHECK_INT(split_server("[fe80::1]:443", &host, &port), 0);
    CHECK_STR(host, "fe80::1");
    CHECK_INT(port, 443);
    free(host);
    CHECK_INT(split_server("fe80::1", &host, &port), 0);
    CHECK_STR(host, "fe80::1");
    CHECK_INT(port, 0);
    free(host);
    CHECK_INT(split_server("a:b:c", &host, &port), -1);
}

/* ---- The configurations shipped in conf/ ---- */

/* The source tree: $RP_SRCDIR (set by make check), else the one this file was compiled from,
 * else the nearest parent of the current directory that holds conf/. */
static const char *source_dir(void)
{
    static char dir[1024];
    const char *env = getenv("RP_SRCDIR");
    char probe[1100];

    if (env && *env)
        return env;
    snprintf(dir, sizeof dir, "%s", __FILE__);
    char *cut = strstr(dir, "tests/unit/test_config.c");
    if (cut) {
        *cut = '\0';
        snprintf(probe, sizeof probe, "%sconf/proxy.json", dir);
        if (access(probe, R_OK) == 0)
            return dir;
    }
    if (!getcwd(dir, sizeof dir - 16))
        return ".";
    while (dir[0]) {
        snprintf(probe, sizeof probe, "%s/conf/proxy.json", dir);
        if (access(probe, R_OK) == 0)
            return dir;
        char *slash = strrchr(dir, '/');
        if (!slash)
            break;
        *slash = '\0';
    }
    return ".";
}

static int load_shipped(struct config *c, const char *name, bool validate_too)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/conf/%s", source_dir(), name);
    config_defaults(c);
    if (config_load(c, path, err, sizeof err) != 0)
        return -1;
    return validate_too ? config_validate(c, err, sizeof err) : 0;
}

TEST(test_conf_proxy_json)
{
    struct config c;
    int rc = load_shipped(&c, "proxy.json", true);
    if (rc != 0)
        unit_fail(__FILE__, __LINE__, "%s", err);
    CHECK_INT(rc, 0);
    CHECK_INT(c.role, ROLE_SERVER);
    CHECK_STR(c.server[0].target.host, "127.0.0.1");
    CHECK_INT(c.server_port, 8488);
    CHECK_STR(crypto_method_info(c.method)->name, "chacha20-ietf-poly1305");
    CHECK(c.block_private);
    CHECK_INT(c.workers, config_default_workers());
    config_free(&c);
}

TEST(test_conf_local_json)
{
    struct config c;
    int rc = load_shipped(&c, "local.json", true);
    if (rc != 0)
        unit_fail(__FILE__, __LINE__, "%s", err);
    CHECK_INT(rc, 0);
    CHECK_INT(c.role, ROLE_LOCAL);
    CHECK_STR(c.local_address, "127.0.0.1");
    CHECK_INT(c.local_port, 1080);
    config_free(&c);
}

TEST(test_conf_tunnel_json)
{
    struct config c;
    int rc = load_shipped(&c, "tunnel.json", true);
    if (rc != 0)
        unit_fail(__FILE__, __LINE__, "%s", err);
    CHECK_INT(rc, 0);
    CHECK_INT(c.role, ROLE_TUNNEL);
    CHECK_INT(c.local_port, 5353);
    CHECK_STR(c.tunnel_address, "8.8.8.8:53");
    config_free(&c);
}

TEST(test_conf_server_json_refuses_its_placeholder)
{
    struct config c;
    CHECK_INT(load_shipped(&c, "server.json", false), 0);
    CHECK_INT(c.mode, MODE_TCP_AND_UDP);
    CHECK_INT(config_validate(&c, err, sizeof err), -1);
    CHECK_CONTAINS(err, "conf/server.json:");
    CHECK_CONTAINS(err, "is a placeholder, and reuseproxy would listen on 0.0.0.0");
    config_free(&c);
}

/* A plugin that cannot be run is refused where the key stands, at a start, a reload and in
 * --check alike (all run config_validate()), not left to a crash loop of the supervisor. */
TEST(test_validate_plugin_binary)
{
    const char *head = "{\"server\": \"127.0.0.1\", \"server_port\": 8488, \"password\": "
                       "\"Vq3-long-random\", \"workers\": 2,\n  \"plugin\": ";
    char json[512];

    snprintf(json, sizeof json, "%s\"no-such-plugin-rp\"}", head);
    CHECK_STR(validate(json), "t.json:2:3: \"plugin\": \"no-such-plugin-rp\" is not an executable "
                              "file in any directory of PATH; install the plugin (Debian: "
                              "simple-obfs, shadowsocks-v2ray-plugin) or give its path");
    snprintf(json, sizeof json, "%s\"/nonexistent/obfs-server\"}", head);
    CHECK_CONTAINS(validate(json), "t.json:2:3: \"plugin\": \"/nonexistent/obfs-server\" is not "
                                   "an executable file; install");
    snprintf(json, sizeof json, "%s\"/etc/passwd\"}", head); /* there, but not executable */
    CHECK_CONTAINS(validate(json), "is not an executable file;");
    snprintf(json, sizeof json, "%s\"sh\"}", head); /* found in PATH, as execvp would */
    CHECK_STR(validate(json), "OK");
    snprintf(json, sizeof json, "%s\"/bin/sh\"}", head);
    CHECK_STR(validate(json), "OK");
    snprintf(json, sizeof json, "%s\"sh\"}", head);
    memcpy(strstr(json, "\"workers\": 2"), "\"workers\": 0", 12);
    CHECK_CONTAINS(validate(json), "t.json:2:3: \"plugin\": needs \"workers\" of 1 or more");
    snprintf(json, sizeof json,
             "{\"server\": [\"127.0.0.1\", \"::1\"], \"server_port\": 8488, "
             "\"password\": \"Vq3-long-random\", \"workers\": 2,\n  \"plugin\": \"sh\"}");
    CHECK_CONTAINS(validate(json), "t.json:2:3: \"plugin\": a server with a plugin listens on "
                                   "one address");
}

TEST(test_config_plugin_path_searches_path)
{
    char out[256], *saved = getenv("PATH") ? strdup(getenv("PATH")) : NULL;

    setenv("PATH", "/nonexistent:/bin", 1);
    CHECK_INT(config_plugin_path("sh", out, sizeof out), 0);
    CHECK_STR(out, "/bin/sh");
    CHECK_INT(config_plugin_path("no-such-plugin-rp", out, sizeof out), -1);
    CHECK_INT(config_plugin_path("", out, sizeof out), -1);
    CHECK_INT(config_plugin_path("/bin", out, sizeof out), -1); /* a directory */
    setenv("PATH", "/nonexistent", 1);
    CHECK_INT(config_plugin_path("sh", out, sizeof out), -1);
    CHECK_INT(config_plugin_path("/bin/sh", out, sizeof out), 0);
    if (saved)
        setenv("PATH", saved, 1);
    free(saved);
}

/* plugin_opts, plugin_args and plugin_mode without "plugin" are named as ignored. */
TEST(test_validate_plugin_companions_without_plugin_warn)
{
    const char *logged;
    CHECK_STR(validate_logged("{\"server\": \"127.0.0.1\", \"server_port\": 8488, \"password\": "
                              "\"Vq3-long-random\",\n \"plugin_opts\": \"obfs=http\", "
                              "\"plugin_mode\": \"tcp_and_udp\"}",
                              &logged),
              "OK");
    CHECK_CONTAINS(logged, "t.json:2:2: \"plugin_opts\": ignored without \"plugin\" (--plugin)");
    CHECK_CONTAINS(logged, "t.json:2:30: \"plugin_mode\": ignored without \"plugin\"");
    CHECK(strstr(logged, "plugin_args") == NULL);
    CHECK_STR(validate_logged("{\"server\": \"127.0.0.1\", \"server_port\": 8488, \"password\": "
                              "\"Vq3-long-random\", \"workers\": 1, \"plugin\": \"sh\", "
                              "\"plugin_opts\": \"x\"}",
                              &logged),
              "OK");
    CHECK(strstr(logged, "ignored") == NULL);
}

/* ---- The local port: protocol and local_users (issue 16) ---- */

#define LOCAL_CFG(extra)                                                                           \
    "{\"role\": \"local\", \"server\": \"192.0.2.1\", \"server_port\": 8388,\n"                    \
    "\"local_port\": 1080, \"password\": \"a real secret\", \"method\": \"aes-256-gcm\"" extra "}"

TEST(test_config_local_protocol_and_users)
{
    struct config c;
    CHECK_INT(load(&c, LOCAL_CFG("")), 0);
    CHECK_INT(c.protocol, PROTOCOL_MIXED);
    CHECK_INT(c.n_local_users, 0);
    CHECK_INT(load(&c, LOCAL_CFG(",\n\"protocol\": \"http\",\n\"local_users\": [{\"name\": "
                                 "\"alice\", \"password\": \"pw\"}]")),
              0);
    CHECK_INT(c.protocol, PROTOCOL_HTTP);
    CHECK_INT(c.n_local_users, 1);
    CHECK_STR(c.local_users[0].name, "alice");
    CHECK_STR(c.local_users[0].password, "pw");
    CHECK_STR(config_protocol_name(c.protocol), "http");
    CHECK_INT(load(&c, LOCAL_CFG(",\n\"protocol\": \"https\"")), -1);
    CHECK_CONTAINS(err, "t.json:3:1: \"protocol\": expected one of \"mixed\", \"socks\", \"http\"");
    CHECK_INT(load(&c, LOCAL_CFG(",\n\"local_users\": [{\"name\": \"a\"}]")), -1);
    CHECK_CONTAINS(err, "t.json:3:1: \"local_users\"[0]: expected \"password\"");
    config_free(&c);
    loaded = NULL;
    CHECK_STR(validate(LOCAL_CFG(",\n\"local_users\": [{\"name\": \"a\", \"password\": \"1\"}, "
                                 "{\"name\": \"a\", \"password\": \"2\"}]")),
              "t.json:3:1: \"local_users\"[1]: the name \"a\" is also local_users[0]'s");
}

/* A local port beyond loopback without users: said at start and in --check. */
TEST(test_config_open_local_port_warns)
{
    const char *logged;
    CHECK_STR(validate_logged(LOCAL_CFG(",\n\"local_address\": \"0.0.0.0\""), &logged), "OK");
    CHECK_CONTAINS(logged, "anyone on the network can use it as a proxy");
    CHECK_STR(validate_logged(LOCAL_CFG(",\n\"local_address\": \"127.0.0.1\""), &logged), "OK");
    CHECK(strstr(logged, "anyone on the network") == NULL);
    CHECK_STR(validate_logged(LOCAL_CFG(",\n\"local_address\": \"0.0.0.0\",\n\"local_users\": "
                                        "[{\"name\": \"a\", \"password\": \"b\"}]"),
                              &logged),
              "OK");
    CHECK(strstr(logged, "anyone on the network") == NULL);
}

/* The redir role and tcp_redir: parsed into their enums; the role listens where local does. */
TEST(test_config_redir_role_and_tcp_redir)
{
    struct config c;
    CHECK_INT(load(&c, "{\"role\": \"redir\", \"tcp_redir\": \"tproxy\"}"), 0);
    CHECK_INT(c.role, ROLE_REDIR);
    CHECK_INT(c.tcp_redir, TCP_REDIR_TPROXY);
    CHECK_STR(config_role_name(ROLE_REDIR), "redir");
    CHECK_INT(load(&c, "{\"role\": \"redir\"}"), 0);
    CHECK_INT(c.tcp_redir, TCP_REDIR_REDIRECT);
    /* libev ss-redir's "tcp_tproxy": true means the same */
    char verr[512];
    CHECK_INT(load(&c, "{\"role\": \"redir\", \"tcp_tproxy\": true, \"server\": \"192.0.2.1\", "
                       "\"server_port\": 1, \"password\": \"x\", \"local_port\": 1}"),
              0);
    CHECK_INT(config_validate(&c, verr, sizeof verr), 0);
    CHECK_INT(c.tcp_redir, TCP_REDIR_TPROXY);
    CHECK_INT(load(&c, "{\"tcp_redir\": \"tproxi\"}"), -1);
    CHECK_STR(err, "t.json:1:2: \"tcp_redir\": expected \"redirect\" or \"tproxy\", got "
                   "\"tproxi\"");
    config_free(&c);
    CHECK_STR(validate("{\"role\": \"redir\", \"server\": \"192.0.2.1\", \"server_port\": 1, "
                       "\"password\": \"x\", \"local_port\": 1234, \"local_address\": \"::\"}"),
              "OK");
}

/* The outgoing-socket keys (libev's local_ipv4_address, local_ipv6_address and mptcp, which
 * were once accepted and ignored; shadowsocks-rust's outbound_bind_interface and keep_alive;
 * fwmark): typed into c.outgoing by config_validate, bad values named with their position. */
TEST(test_config_outgoing_keys_typed)
{
    struct config c;
    char verr[512];
    CHECK_INT(load(&c, "{\"server\": \"::1\", \"server_port\": 1, \"password\": \"x\", "
                       "\"local_ipv4_address\": \"192.0.2.7\", \"local_ipv6_address\": \"2001:db8::7\", "
                       "\"outbound_bind_interface\": \"eth1\", \"keep_alive\": 30, "
                       "\"mptcp\": true, \"fwmark\": 255}"),
              0);
    CHECK_INT(config_validate(&c, verr, sizeof verr), 0);
    CHECK_INT(c.outgoing.bind4.ss_family, AF_INET);
    CHECK_INT(c.outgoing.bind6.ss_family, AF_INET6);
    char a[80];
    CHECK_STR(netaddr_format((struct sockaddr *)&c.outgoing.bind4, a, sizeof a), "192.0.2.7:0");
    CHECK_STR(netaddr_format((struct sockaddr *)&c.outgoing.bind6, a, sizeof a), "[2001:db8::7]:0");
    CHECK_STR(c.outgoing.interface, "eth1");
    CHECK_INT(c.outgoing.keepalive, 30);
    CHECK_INT(c.outgoing.mptcp, 1);
    CHECK_INT(c.outgoing.fwmark, 255);
    config_free(&c);
    CHECK_STR(validate("{\"server\": \"::1\", \"server_port\": 1, \"password\": \"x\",\n"
                       " \"local_ipv4_address\": \"2001:db8::1\"}"),
              "t.json:2:2: \"local_ipv4_address\": expected an IPv4 address (\"192.0.2.1\"), got "
              "\"2001:db8::1\"");
    CHECK_STR(validate("{\"server\": \"::1\", \"server_port\": 1, \"password\": \"x\",\n"
                       " \"local_ipv6_address\": \"host.example\"}"),
              "t.json:2:2: \"local_ipv6_address\": expected an IPv6 address (\"2001:db8::1\"), "
              "got \"host.example\"");
    CHECK_STR(validate("{\"server\": \"::1\", \"server_port\": 1, \"password\": \"x\",\n"
                       " \"outbound_bind_interface\": \"a-very-long-interface\"}"),
              "t.json:2:2: \"outbound_bind_interface\": expected an interface name of 1 to 15 "
              "characters (\"eth1\"), got \"a-very-long-interface\"");
    CHECK_INT(load(&c, "{\"keep_alive\": 40000}"), -1);
    CHECK_STR(err, "t.json:1:2: \"keep_alive\": expected an integer from 0 to 32767, got 40000");
    CHECK_INT(load(&c, "{\"fwmark\": -1}"), -1);
    CHECK_INT(load(&c, "{\"mptcp\": 1}"), -1);
    config_free(&c);
}

/* ---- proxy_protocol (issue 19) ---- */

#define PP_BASE "{\"server\":\"0.0.0.0\",\"server_port\":8388,\"password\":\"a-real-secret\","

TEST(test_config_proxy_protocol_needs_from)
{
    CHECK_STR(validate(PP_BASE "\n \"proxy_protocol\": true}"),
              "t.json:2:2: \"proxy_protocol\": true needs \"proxy_protocol_from\", the networks "
              "of the balancers that may send the header (for example [\"10.0.0.0/8\"]); a header "
              "from anyone else is refused");
    CHECK_STR(validate(PP_BASE "\"proxy_protocol\": true, \"proxy_protocol_from\": "
                               "[\"10.0.0.0/8\", \"2001:db8::/32\", \"127.0.0.1\"]}"),
              "OK");
    /* a server role only */
    CHECK_CONTAINS(validate(PP_BASE "\"role\":\"local\",\"local_port\":1080,"
                                    "\"proxy_protocol\":true,\"proxy_protocol_from\":\"::1\"}"),
                   "\"proxy_protocol\": only a server reads PROXY protocol headers");
}

TEST(test_config_proxy_protocol_from_typed)
{
    struct config c;
    config_defaults(&c);
    CHECK_INT(load(&c, "{\"proxy_protocol_from\": [\"10.1.2.3/8\", \"::1\"]}"), 0);
    CHECK_INT(c.n_proxy_protocol_from, 2);
    CHECK_INT(c.proxy_protocol_from[0].prefix, 96 + 8);
    CHECK_INT(c.proxy_protocol_from[0].addr[12], 10);
    CHECK_INT(c.proxy_protocol_from[0].addr[13], 0); /* host bits cleared */
    CHECK_INT(c.proxy_protocol_from[1].prefix, 128);
    CHECK_INT(load(&c, "{\"proxy_protocol_from\": [\"10.0.0.0/33\"]}"), -1);
    CHECK_STR(err, "t.json:1:2: \"proxy_protocol_from\": expected a network such as "
                   "\"10.0.0.0/8\" or an address at index 0, got \"10.0.0.0/33\"");
    CHECK_INT(load(&c, "{\"proxy_protocol_from\": [\"::1\", 7]}"), -1);
    CHECK_CONTAINS(err, "at index 1, got 7");
    CHECK_INT(load(&c, "{\"proxy_protocol_from\": []}"), -1);
    CHECK_CONTAINS(err, "t.json:1:2: \"proxy_protocol_from\": expected an array of 1 to 64");
    CHECK_INT(load(&c, "{\"proxy_protocol_from\": [\"host.example\"]}"), -1);
    CHECK_INT(load(&c, "{\"proxy_protocol\": \"yes\"}"), -1);
    CHECK_STR(err, "t.json:1:2: \"proxy_protocol\": expected true or false, got \"yes\"");
    config_free(&c);
}

/* ---- shared_store (issue 19) ---- */

TEST(test_config_shared_store_typed)
{
    struct config c;
    char verr[512];
    config_defaults(&c);
    CHECK_INT(c.shared.timeout_ms, 50);
    CHECK_INT(load(&c, PP_BASE "\"shared_store\": \"redis://10.0.0.5:6380/2\", "
                               "\"shared_store_failure\": \"refuse\", "
                               "\"shared_store_timeout_ms\": 80}"),
              0);
    if (config_validate(&c, verr, sizeof verr) != 0) {
#ifdef RP_HAVE_HIREDIS
        unit_fail(__FILE__, __LINE__, "%s", verr);
#else
        CHECK_CONTAINS(verr, "t.json:1:67: \"shared_store\": this build of reuseproxy lacks "
                             "hiredis");
#endif
        config_free(&c);
        return;
    }
    CHECK_STR(c.shared.host, "10.0.0.5");
    CHECK_INT(c.shared.port, 6380);
    CHECK_INT(c.shared.db, 2);
    CHECK(c.shared.refuse);
    CHECK_INT(c.shared.timeout_ms, 80);
    config_free(&c);
}

TEST(test_config_shared_store_errors)
{
#ifdef RP_HAVE_HIREDIS
    CHECK_STR(validate(PP_BASE "\"shared_store\": \"unix:/run/redis/redis.sock\"}"), "OK");
    CHECK_STR(validate(PP_BASE "\"shared_store\": \"redis://127.0.0.1\"}"), "OK");
    CHECK_CONTAINS(validate(PP_BASE "\"shared_store\": \"redis://redis.example:6379\"}"),
                   "\"shared_store\": expected \"redis://IP[:port][/db]\" (an IP address");
    CHECK_CONTAINS(validate(PP_BASE "\"shared_store\": \"redis://127.0.0.1/x\"}"),
                   "t.json:1:67: \"shared_store\": expected");
    CHECK_CONTAINS(validate(PP_BASE "\"shared_store\": \"http://127.0.0.1\"}"), "expected");
#else
    CHECK_CONTAINS(validate(PP_BASE "\"shared_store\": \"redis://127.0.0.1\"}"),
                   "lacks hiredis");
#endif
    CHECK_CONTAINS(validate(PP_BASE "\"shared_store_failure\": \"maybe\"}"),
                   "\"shared_store_failure\": expected \"allow\" or \"refuse\", got \"maybe\"");
    CHECK_CONTAINS(validate(PP_BASE "\"shared_store_timeout_ms\": 0}"),
                   "\"shared_store_timeout_ms\": expected an integer from 1 to 60000, got 0");
    /* the users' hash is read from the shared store: there must be one */
    CHECK_CONTAINS(validate(PP_BASE "\"shared_store_users\": \"rp:users\"}"),
                   "\"shared_store_users\": needs \"shared_store\"");
}

/* test_cli.c: cli.c. Every option, every kind of error (named after the option as typed), and
 * the precedence of the command line over the file. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "unit.h"

static char err[512];

#define ARGV(...) ((char *[]){"reuseproxy", __VA_ARGS__, NULL})
#define ARGC(argv) ((int)(sizeof(argv) / sizeof(argv[0])) - 1)

/* cli_parse over a literal argument list. */
#define PARSE(o, ...)                                                                              \
    (err[0] = '\0', cli_parse((o), ARGC(ARGV(__VA_ARGS__)), ARGV(__VA_ARGS__), err, sizeof err))

static int parse_list(struct cli_options *o, int argc, char **argv)
{
    err[0] = '\0';
    return cli_parse(o, argc, argv, err, sizeof err);
}

/* ---- Parsing ---- */

TEST(test_cli_nothing_given)
{
    struct cli_options o = {0};
    char *argv[] = {"reuseproxy", NULL};
    CHECK_INT(parse_list(&o, 1, argv), CLI_OK);
    CHECK(o.config_path == NULL && o.password == NULL && o.method == NULL && o.role == NULL);
    CHECK_INT(o.n_server, 0);
    CHECK_INT(o.server_port, 0);
    CHECK_INT(o.local_port, 0);
    CHECK_INT(o.timeout, 0);
    CHECK_INT(o.mode, -1);
    CHECK_INT(o.workers, -1);
    CHECK_INT(o.verbose, 0);
    CHECK_INT(o.nofile, 0);
    CHECK(!o.fast_open && !o.reuse_port && !o.no_delay && !o.ipv6_first);
    CHECK(!o.check && !o.help && !o.version);
}

TEST(test_cli_libev_options)
{
    struct cli_options o = {0};
    CHECK_INT(PARSE(&o, "-c", "/etc/rp.json", "-s", "0.0.0.0", "-p", "8488", "-l", "1080", "-b",
                    "127.0.0.2", "-k", "pw", "-m", "aes-128-gcm", "-t", "300", "-d", "1.1.1.1",
                    "-a", "nobody", "-n", "65536", "-6", "--acl", "/etc/rp.acl"),
              CLI_OK);
    CHECK_STR(o.config_path, "/etc/rp.json");
    CHECK_INT(o.n_server, 1);
    CHECK_STR(o.servers[0], "0.0.0.0");
    CHECK_INT(o.server_port, 8488);
    CHECK_INT(o.local_port, 1080);
    CHECK_STR(o.local_address, "127.0.0.2");
    CHECK_STR(o.password, "pw");
    CHECK_STR(o.method, "aes-128-gcm");
    CHECK_INT(o.timeout, 300);
    CHECK_STR(o.nameserver, "1.1.1.1");
    CHECK_STR(o.user, "nobody");
    CHECK_INT(o.nofile, 65536);
    CHECK(o.ipv6_first);
    CHECK_STR(o.acl, "/etc/rp.acl");
}

TEST(test_cli_flags)
{
    struct cli_options o = {0};
    CHECK_INT(PARSE(&o, "--fast-open", "--reuse-port", "--no-delay", "--check", "--version", "-h"),
              CLI_OK);
    CHECK(o.fast_open && o.reuse_port && o.no_delay);
    CHECK_INT(o.check, 1);
    CHECK_INT(o.version, 1);
    CHECK_INT(o.help, 1);
    CHECK_INT(PARSE(&o, "--help"), CLI_OK);
    CHECK_INT(o.help, 1);
}

TEST(test_cli_modes_last_wins)
{
    struct cli_options o = {0};
    CHECK_INT(PARSE(&o, "-u"), CLI_OK);
    CHECK_INT(o.mode, MODE_TCP_AND_UDP);
    CHECK_INT(PARSE(&o, "-U"), CLI_OK);
    CHECK_INT(o.mode, MODE_UDP_ONLY);
    CHECK_INT(PARSE(&o, "-U", "-u"), CLI_OK);
    CHECK_INT(o.mode, MODE_TCP_AND_UDP);
}

TEST(test_cli_verbose_counts)
{
    struct cli_options o = {0};
    CHECK_INT(PARSE(&o, "-v", "-vv", "-v"), CLI_OK);
    CHECK_INT(o.verbose, 4);
}

TEST(test_cli_own_options)
{
    struct cli_options o = {0};
    CHECK_INT(PARSE(&o, "--role", "tunnel", "-w", "4", "-L", "8.8.8.8:53", "--balance", "shared",
                    "--metrics", "[::1]:9100", "--key", "QUJD"),
              CLI_OK);
    CHECK_STR(o.role, "tunnel");
    CHECK_INT(o.workers, 4);
    CHECK_STR(o.tunnel_address, "8.8.8.8:53");
    CHECK_STR(o.balance, "shared");
    CHECK_STR(o.metrics_address, "[::1]:9100");
    CHECK_STR(o.key, "QUJD");
    CHECK_INT(PARSE(&o, "--workers=0", "--role=local"), CLI_OK);
    CHECK_INT(o.workers, 0);
    CHECK_STR(o.role, "local");
    CHECK_INT(PARSE(&o, "--print-uri", "--no-qr"), CLI_OK);
    CHECK_INT(o.print_uri, 1);
    CHECK_INT(o.no_qr, 1);
}

TEST(test_cli_servers_repeat)
{
    struct cli_options o = {0};
    CHECK_INT(PARSE(&o, "-s", "::", "-s", "0.0.0.0", "-s", "[::1]:8389"), CLI_OK);
    CHECK_INT(o.n_server, 3);
    CHECK_STR(o.servers[0], "::");
    CHECK_STR(o.servers[1], "0.0.0.0");
    CHECK_STR(o.servers[2], "[::1]:8389");
}

TEST(test_cli_too_many_servers)
{
    struct cli_options o = {0};
    CHECK_INT(PARSE(&o, "-s", "a", "-s", "b", "-s", "c", "-s", "d", "-s", "e", "-s", "f", "-s", "g",
                    "-s", "h", "-s", "i"),
              CLI_ERROR);
    CHECK_STR(err, "-s: at most 8 servers may be given");
}

TEST(test_cli_bad_server)
{
    struct cli_options o = {0};
    CHECK_INT(PARSE(&o, "-s", "host:port"), CLI_ERROR);
    CHECK_STR(err, "-s: expected an address, host:port or [ipv6]:port, got \"host:port\"");
}

TEST(test_cli_method_canonical_and_refused)
{
    struct cli_options o = {0};
    CHECK_INT(PARSE(&o, "-m", "AES-256-GCM"), CLI_OK);
    CHECK_STR(o.method, "aes-256-gcm");
    CHECK_INT(PARSE(&o, "-m", "aes-256-cfb"), CLI_ERROR);
    CHECK_STR(err, "-m: expected one of aes-128-gcm, aes-192-gcm, aes-256-gcm, "
                   "chacha20-ietf-poly1305, 2022-blake3-aes-128-gcm, 2022-blake3-aes-256-gcm, "
                   "2022-blake3-chacha20-poly1305, got \"aes-256-cfb\"");
    CHECK_INT(PARSE(&o, "-m", "2022-BLAKE3-chacha20-poly1305"), CLI_OK);
    CHECK_STR(o.method, "2022-blake3-chacha20-poly1305");
}

/* --genkey METHOD names a method of the table (any case), kept in its canonical spelling. */
TEST(test_cli_genkey_takes_a_method)
{
    struct cli_options o = {0};
    CHECK_INT(PARSE(&o, "--genkey", "2022-Blake3-AES-128-GCM"), CLI_OK);
    CHECK_STR(o.genkey, "2022-blake3-aes-128-gcm");
    CHECK_INT(PARSE(&o, "--genkey", "rc4"), CLI_ERROR);
    CHECK_CONTAINS(err, "--genkey: expected one of aes-128-gcm");
    CHECK_INT(PARSE(&o, "--genkey"), CLI_ERROR);
    CHECK_INT(PARSE(&o, "-v"), CLI_OK);
    CHECK(o.genkey == NULL);
}

TEST(test_cli_bad_numbers)
{
    struct cli_options o = {0};
    CHECK_INT(PARSE(&o, "-p", "abc"), CLI_ERROR);
    CHECK_STR(err, "-p: expected a port number from 1 to 65535, got \"abc\"");
    CHECK_INT(PARSE(&o, "-p", "65536"), CLI_ERROR);
    CHECK_STR(err, "-p: expected a port number from 1 to 65535, got \"65536\"");
    CHECK_INT(PARSE(&o, "-l", "0"), CLI_ERROR);
    CHECK_STR(err, "-l: expected a port number from 1 to 65535, got \"0\"");
    CHECK_INT(PARSE(&o, "-t", "-5"), CLI_ERROR);
    CHECK_STR(err, "-t: expected a number of seconds from 1 to 2147483, got \"-5\"");
    CHECK_INT(PARSE(&o, "--workers", "257"), CLI_ERROR);
    CHECK_STR(err, "--workers: expected a number of workers from 0 to 256, got \"257\"");
    CHECK_INT(PARSE(&o, "-w", "two"), CLI_ERROR);
    CHECK_STR(err, "-w: expected a number of workers from 0 to 256, got \"two\"");
    CHECK_INT(PARSE(&o, "-n", "0"), CLI_ERROR);
    CHECK_STR(err, "-n: expected a number of files from 1 to 2147483647, got \"0\"");
}

TEST(test_cli_bad_choices)
{
    struct cli_options o = {0};
    CHECK_INT(PARSE(&o, "--role", "client"), CLI_ERROR);
    CHECK_STR(err, "--role: expected server, local, tunnel or redir, got \"client\"");
    CHECK_INT(PARSE(&o, "--balance=fair"), CLI_ERROR);
    CHECK_STR(err, "--balance: expected reuseport, shared or dispatch, got \"fair\"");
    CHECK_INT(PARSE(&o, "-L", "8.8.8.8"), CLI_ERROR);
    CHECK_STR(err, "-L: expected host:port or [ipv6]:port, got \"8.8.8.8\"");
    CHECK_INT(PARSE(&o, "--metrics", "9100"), CLI_ERROR);
    CHECK_STR(err, "--metrics: expected host:port or [ipv6]:port, got \"9100\"");
    CHECK_INT(PARSE(&o, "-k", ""), CLI_ERROR);
    CHECK_STR(err, "-k: expected a non-empty value, got \"\"");
}

TEST(test_cli_missing_argument)
{
    struct cli_options o = {0};
    CHECK_INT(PARSE(&o, "-p"), CLI_ERROR);
    CHECK_STR(err, "-p: missing argument (expected a port number from 1 to 65535)");
    CHECK_INT(PARSE(&o, "-v", "--workers"), CLI_ERROR);
    CHECK_STR(err, "--workers: missing argument (expected a number of workers from 0 to 256)");
    CHECK_INT(PARSE(&o, "-c"), CLI_ERROR);
    CHECK_STR(err, "-c: missing argument (expected a non-empty value)");
    CHECK_INT(PARSE(&o, "--role"), CLI_ERROR);
    CHECK_STR(err, "--role: missing argument (expected server, local, tunnel or redir)");
}

TEST(test_cli_unknown_options)
{
    struct cli_options o = {0};
    CHECK_INT(PARSE(&o, "-z"), CLI_ERROR);
    CHECK_STR(err, "unknown option \"-z\"");
    CHECK_INT(PARSE(&o, "-vz"), CLI_ERROR);
    CHECK_STR(err, "unknown option \"-z\"");
    CHECK_INT(PARSE(&o, "--frobnicate"), CLI_ERROR);
    CHECK_STR(err, "unknown option \"--frobnicate\"");
    CHECK_INT(PARSE(&o, "--frobnicate=3"), CLI_ERROR);
    CHECK_STR(err, "unknown option \"--frobnicate\"");
    CHECK_INT(PARSE(&o, "--check=yes"), CLI_ERROR);
    CHECK_STR(err, "--check: takes no argument");
}

TEST(test_cli_stray_argument)
{
    struct cli_options o = {0};
    CHECK_INT(PARSE(&o, "-v", "config.json"), CLI_ERROR);
    CHECK_STR(err, "unexpected argument \"config.json\" (options start with '-')");
}

TEST(test_cli_daemonize_refused)
{
    struct cli_options o = {0};
    CHECK_INT(PARSE(&o, "-f", "/run/ss.pid"), CLI_ERROR);
    CHECK_STR(err, "-f: reuseproxy does not daemonize; run it under systemd or a supervisor");
}

TEST(test_cli_unimplemented_libev_options_warn)
{
    struct cli_options o = {0};
    unit_capture_stderr_start();
    int rc = PARSE(&o, "--mtu", "1400", "-i", "eth0", "--manager-address", "/tmp/m", "-p", "1");
    const char *out = unit_capture_stderr_stop();
    CHECK_INT(rc, CLI_OK);
    CHECK_INT(o.server_port, 1);
    CHECK_CONTAINS(out, "WARN --mtu: a shadowsocks-libev option that reuseproxy does not "
                        "implement; ignored\n");
    CHECK_CONTAINS(out, "-i: a shadowsocks-libev option");
    CHECK_CONTAINS(out, "--manager-address: a shadowsocks-libev option");
}

static int load_file(struct config *c);

/* libev's --plugin and --plugin-opts set the "plugin" and "plugin_opts" keys (command line
 * wins, and messages then name the option, not the file). */
TEST(test_cli_plugin_options_apply)
{
    struct config c;
    struct cli_options o = {0};
    unit_capture_stderr_start();
    int rc = PARSE(&o, "-p", "1", "--plugin", "obfs-server", "--plugin-opts=obfs=http");
    const char *out = unit_capture_stderr_stop();
    CHECK_INT(rc, CLI_OK);
    CHECK(strstr(out, "WARN") == NULL);
    CHECK_STR(o.plugin, "obfs-server");
    CHECK_STR(o.plugin_opts, "obfs=http");
    CHECK_INT(load_file(&c), 0);
    CHECK_INT(cli_apply(&o, &c, err, sizeof err), 0);
    CHECK_STR(c.plugin.plugin, "obfs-server");
    CHECK_STR(c.plugin.plugin_opts, "obfs=http");
    CHECK_INT(c.pos[CONFIG_KEY_PLUGIN].line, 0);
    config_free(&c);
    CHECK_INT(PARSE(&o, "--plugin="), CLI_ERROR);
    CHECK_STR(err, "--plugin: expected a non-empty value, got \"\"");
}

TEST(test_cli_parse_twice_starts_over)
{
    struct cli_options o = {0};
    CHECK_INT(PARSE(&o, "-p", "1", "-s", "a"), CLI_OK);
    CHECK_INT(PARSE(&o, "-l", "2"), CLI_OK);
    CHECK_INT(o.server_port, 0);
    CHECK_INT(o.n_server, 0);
    CHECK_INT(o.local_port, 2);
}

TEST(test_cli_parse_after_error_mid_cluster)
{
    /* "-zv" stops at z with v still unread; the next parse must not pick it up. */
    struct cli_options o = {0};
    CHECK_INT(PARSE(&o, "-zv"), CLI_ERROR);
    CHECK_INT(PARSE(&o, "-p", "1"), CLI_OK);
    CHECK_INT(o.verbose, 0);
    CHECK_INT(o.server_port, 1);
}

TEST(test_cli_usage_lists_options)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    CHECK(f != NULL);
    cli_usage(f, "reuseproxy");
    fclose(f);
    CHECK(strncmp(text, "usage: reuseproxy [-c FILE] [options]\n", 38) == 0);
    /* clang-format off */
    const char *opts[] = {"-c FILE", "-s ADDR", "-p PORT", "-l PORT", "-b ADDR", "-k PASSWORD",
                          "--key BASE64", "-m METHOD", "-t SECONDS", "-u ", "-U ", "-L HOST:PORT",
                          "-d ADDR", "-6 ", "-a USER", "-n NUMBER", "--acl FILE", "--fast-open",
                          "--reuse-port", "--no-delay", "--role ROLE", "-w, --workers N",
                          "--balance MODE", "--metrics HOST:PORT", "-v ", "--check",
                          "-h, --help", "--version", "--genkey METHOD"};
    /* clang-format on */
    for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++)
        CHECK_CONTAINS(text, opts[i]);
    /* the installed documentation, not a file of the source tree */
    CHECK_CONTAINS(text, "man reuseproxy (options");
    CHECK_CONTAINS(text, "man reuseproxy.json (every configuration key)");
    CHECK(strstr(text, "docs/") == NULL && strstr(text, ".md") == NULL);
    free(text);
}

/* ---- Precedence: the command line over the file ---- */

static const char *file_json = "{\n"
                               "  \"server\": [\"0.0.0.0\", \"::\"],\n"
                               "  \"server_port\": 8388,\n"
                               "  \"password\": \"from-file\",\n"
                               "  \"method\": \"aes-128-gcm\",\n"
                               "  \"timeout\": 60,\n"
                               "  \"mode\": \"tcp_only\",\n"
                               "  \"workers\": 2,\n"
                               "  \"verbose\": 1\n"
                               "}";

static int load_file(struct config *c)
{
    config_defaults(c);
    return config_load_string(c, file_json, "f.json", err, sizeof err);
}

TEST(test_cli_apply_overrides_file)
{
    struct config c;
    struct cli_options o = {0};
    CHECK_INT(load_file(&c), 0);
    CHECK_INT(PARSE(&o, "-s", "127.0.0.1", "-p", "8488", "-k", "from-cli", "-m",
                    "chacha20-ietf-poly1305", "-t", "120", "-u", "-w", "0", "-vvv", "--role",
                    "server", "--balance", "dispatch", "--metrics", "127.0.0.1:9100"),
              CLI_OK);
    CHECK_INT(cli_apply(&o, &c, err, sizeof err), 0);
    CHECK_INT(c.n_server, 1);
    CHECK_STR(c.server[0].target.host, "127.0.0.1");
    CHECK(c.server[1].target.host[0] == '\0');
    CHECK_INT(c.server_port, 8488);
    CHECK_STR(c.password, "from-cli");
    CHECK_STR(crypto_method_info(c.method)->name, "chacha20-ietf-poly1305");
    CHECK_INT(c.timeout, 120);
    CHECK_INT(c.mode, MODE_TCP_AND_UDP);
    CHECK_INT(c.workers, 0);
    CHECK_INT(c.verbose, 2); /* -vvv is clamped to the most there is */
    CHECK_INT(c.balance, BALANCE_DISPATCH);
    CHECK_STR(c.metrics_address, "127.0.0.1:9100");
    /* Overridden keys no longer point into the file. */
    CHECK_INT(c.pos[CONFIG_KEY_SERVER].line, 0);
    CHECK_INT(c.pos[CONFIG_KEY_SERVER_PORT].line, 0);
    CHECK_INT(c.pos[CONFIG_KEY_PASSWORD].line, 0);
    CHECK_INT(c.pos[CONFIG_KEY_WORKERS].line, 0);
    config_free(&c);
}

TEST(test_cli_apply_keeps_what_was_not_given)
{
    struct config c;
    struct cli_options o = {0};
    CHECK_INT(load_file(&c), 0);
    CHECK_INT(PARSE(&o, "-l", "1080"), CLI_OK);
    CHECK_INT(cli_apply(&o, &c, err, sizeof err), 0);
    CHECK_INT(c.local_port, 1080);
    CHECK_INT(c.n_server, 2);
    CHECK_STR(c.server[1].target.host, "::");
    CHECK_INT(c.server_port, 8388);
    CHECK_STR(c.password, "from-file");
    CHECK_STR(crypto_method_info(c.method)->name, "aes-128-gcm");
    CHECK_INT(c.workers, 2);
    CHECK_INT(c.verbose, 1);
    CHECK_INT(c.mode, MODE_TCP_ONLY);
    CHECK_INT(c.pos[CONFIG_KEY_SERVER_PORT].line, 3);
    CHECK_INT(c.pos[CONFIG_KEY_SERVER_PORT].column, 3);
    config_free(&c);
}

TEST(test_cli_apply_every_remaining_option)
{
    struct config c;
    struct cli_options o = {0};
    config_defaults(&c);
    CHECK_INT(PARSE(&o, "-b", "0.0.0.0", "-L", "1.1.1.1:53", "-d", "9.9.9.9", "-a", "proxy", "-n",
                    "4096", "--acl", "x.acl", "--fast-open", "--reuse-port", "--no-delay", "-6",
                    "-U", "--role", "tunnel", "-l", "5353"),
              CLI_OK);
    CHECK_INT(cli_apply(&o, &c, err, sizeof err), 0);
    CHECK_STR(c.local_address, "0.0.0.0");
    CHECK_STR(c.tunnel_address, "1.1.1.1:53");
    CHECK_STR(c.nameserver, "9.9.9.9");
    CHECK_STR(c.user, "proxy");
    CHECK_INT(c.nofile, 4096);
    CHECK_STR(c.acl, "x.acl");
    CHECK(c.fast_open && c.reuse_port && c.no_delay && c.ipv6_first);
    CHECK_INT(c.mode, MODE_UDP_ONLY);
    CHECK_INT(c.role, ROLE_TUNNEL);
    CHECK_INT(c.local_port, 5353);
    config_free(&c);
}

TEST(test_cli_apply_server_with_port)
{
    struct config c;
    struct cli_options o = {0};
    config_defaults(&c);
    CHECK_INT(PARSE(&o, "-s", "[::1]:8389", "-s", "example.com"), CLI_OK);
    CHECK_INT(cli_apply(&o, &c, err, sizeof err), 0);
    CHECK_INT(c.n_server, 2);
    CHECK_STR(c.server[0].target.host, "::1");
    CHECK_INT(c.server[0].target.port, 8389);
    CHECK_STR(c.server[1].target.host, "example.com");
    CHECK_INT(c.server[1].target.port, 0);
    config_free(&c);
}

/* -s replaces a server role's "servers" ports as a whole: one port again, the file's. */
TEST(test_cli_server_replaces_the_servers_ports)
{
    struct config c;
    struct cli_options o = {0};
    config_defaults(&c);
    CHECK_INT(config_load_string(&c,
                                 "{\"password\": \"x1y2z3\", \"server_port\": 8388, \"servers\": "
                                 "[{\"server\": \"127.0.0.1:8381\"}, {\"server\": "
                                 "\"127.0.0.1:8382\", \"password\": \"other\"}]}",
                                 "t.json", err, sizeof err),
              0);
    CHECK_INT(PARSE(&o, "-s", "127.0.0.1"), CLI_OK);
    CHECK_INT(cli_apply(&o, &c, err, sizeof err), 0);
    CHECK_INT(config_validate(&c, err, sizeof err), 0);
    CHECK_INT(c.n_port, 1);
    CHECK_INT(c.ports[0].port, 8388);
    CHECK_INT(c.n_listen, 1);
    config_free(&c);
}

TEST(test_cli_password_drops_file_key)
{
    struct config c;
    struct cli_options o = {0};
    config_defaults(&c);
    CHECK_INT(config_load_string(&c, "{\"key\": \"QUJD\", \"password\": \"f\"}", "k.json", err,
                                 sizeof err),
              0);
    CHECK_INT(PARSE(&o, "-k", "typed"), CLI_OK);
    CHECK_INT(cli_apply(&o, &c, err, sizeof err), 0);
    CHECK_STR(c.password, "typed");
    CHECK(c.key == NULL);
    config_free(&c);
}

TEST(test_cli_key_over_file_password)
{
    struct config c;
    struct cli_options o = {0};
    config_defaults(&c);
    CHECK_INT(config_load_string(&c, "{\"password\": \"f\"}", "k.json", err, sizeof err), 0);
    CHECK_INT(PARSE(&o, "--key", "QUJD"), CLI_OK);
    CHECK_INT(cli_apply(&o, &c, err, sizeof err), 0);
    CHECK_STR(c.key, "QUJD");
    CHECK_STR(c.password, "f"); /* kept; the key wins, as in libev */
    config_free(&c);
}

TEST(test_cli_fixes_placeholder_exposure)
{
    struct config c;
    struct cli_options o = {0};
    const char *json =
        "{\"server\": \"0.0.0.0\", \"server_port\": 8488, \"password\": \"CHANGE-ME\"}";
    config_defaults(&c);
    CHECK_INT(config_load_string(&c, json, "p.json", err, sizeof err), 0);
    CHECK_INT(config_validate(&c, err, sizeof err), -1);
    CHECK_CONTAINS(err, "p.json:1:44: the password \"CHANGE-ME\" is a placeholder");
    CHECK_INT(PARSE(&o, "-s", "127.0.0.1"), CLI_OK);
    CHECK_INT(cli_apply(&o, &c, err, sizeof err), 0);
    CHECK_INT(config_validate(&c, err, sizeof err), 0);
    config_free(&c);
}

TEST(test_cli_placeholder_from_command_line_has_no_position)
{
    struct config c;
    struct cli_options o = {0};
    const char *json = "{\"server\": \"0.0.0.0\", \"server_port\": 8488, \"password\": \"Zq8-x\"}";
    config_defaults(&c);
    CHECK_INT(config_load_string(&c, json, "p.json", err, sizeof err), 0);
    CHECK_INT(PARSE(&o, "-k", "barfoo!"), CLI_OK);
    CHECK_INT(cli_apply(&o, &c, err, sizeof err), 0);
    CHECK_INT(config_validate(&c, err, sizeof err), -1);
    CHECK_STR(err, "p.json: the password \"barfoo!\" is a placeholder, and reuseproxy would listen "
                   "on 0.0.0.0, which is not a loopback address: set a real password (or "
                   "\"key\"), or listen on 127.0.0.1");
    config_free(&c);
}

TEST(test_cli_apply_rejects_unchecked_values)
{
    /* cli_apply() also guards options that did not come through cli_parse(). */
    struct config c;
    struct cli_options o = {0};
    char *argv[] = {"reuseproxy", NULL};
    config_defaults(&c);
    CHECK_INT(parse_list(&o, 1, argv), CLI_OK);
    o.role = "bogus";
    CHECK_INT(cli_apply(&o, &c, err, sizeof err), -1);
    CHECK_STR(err, "--role: expected server, local, tunnel or redir, got \"bogus\"");
    o.role = NULL;
    o.balance = "x";
    CHECK_INT(cli_apply(&o, &c, err, sizeof err), -1);
    CHECK_STR(err, "--balance: expected reuseport, shared or dispatch, got \"x\"");
    o.balance = NULL;
    o.servers[0] = "a b";
    o.n_server = 1;
    CHECK_INT(cli_apply(&o, &c, err, sizeof err), -1);
    CHECK_STR(err, "-s: expected an address, host:port or [ipv6]:port");
    CHECK_INT(c.n_server, 0);
    config_free(&c);
}

/* Issue 13 items 9 and 11: what the role ignores is named after the option as typed. */
TEST(test_cli_warns_options_the_role_ignores)
{
    struct config c;
    struct cli_options o = {0};
    config_defaults(&c);
    CHECK_INT(PARSE(&o, "-s", "127.0.0.1", "-p", "8488", "-k", "x", "-l", "1080", "-b",
                    "127.0.0.1", "-L", "9.9.9.9:53"),
              CLI_OK);
    CHECK_INT(cli_apply(&o, &c, err, sizeof err), 0);
    unit_capture_stderr_start();
    int rc = config_validate(&c, err, sizeof err);
    const char *out = unit_capture_stderr_stop();
    CHECK_INT(rc, 0);
    CHECK_CONTAINS(out, "WARN -b: ignored in the server role, which listens on \"server\" (-s)");
    CHECK_CONTAINS(out, "WARN -l: ignored in the server role, which listens on \"server_port\"");
    CHECK_CONTAINS(out, "WARN -L: ignored in the server role; it is the tunnel role's");
    config_free(&c);

    config_defaults(&c);
    CHECK_INT(PARSE(&o, "--role", "local", "-s", "192.0.2.1", "-s", "192.0.2.2", "-p", "8488",
                    "-k", "x", "-l", "1080"),
              CLI_OK);
    CHECK_INT(cli_apply(&o, &c, err, sizeof err), 0);
    unit_capture_stderr_start();
    rc = config_validate(&c, err, sizeof err);
    out = unit_capture_stderr_stop();
    CHECK_INT(rc, 0);
    CHECK(strstr(out, "WARN") == NULL); /* both servers are used (failover) */
    CHECK_INT(c.n_upstream, 2);
    CHECK_STR(c.upstreams[1].addr.target.host, "192.0.2.2");
    CHECK_INT(c.upstreams[1].addr.target.port, 8488);
    config_free(&c);
}

TEST(test_cli_command_line_only_config_validates)
{
    struct config c;
    struct cli_options o = {0};
    config_defaults(&c);
    CHECK_INT(PARSE(&o, "-s", "::1", "-p", "8488", "-k", "Kx9-real-secret"), CLI_OK);
    CHECK_INT(cli_apply(&o, &c, err, sizeof err), 0);
    CHECK_INT(config_validate(&c, err, sizeof err), 0);
    CHECK(c.path == NULL);
    config_free(&c);
}

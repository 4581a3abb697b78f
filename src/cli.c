/* cli.c: the command line, as shadowsocks-libev's ss-server/ss-local/ss-tunnel spell it (-c -s
 * -p -l -b -k -m -t -u -U -v -6 -d -a -n -L, --fast-open, --reuse-port, --no-delay, --acl,
 * --key) plus reuseproxy's own long options (--role, --workers, --balance, --metrics, --check,
 * --version). cli_parse() only reads argv and checks each value's form; cli_apply() lays what
 * was given over the loaded file, so the command line always wins. */
#include "autoconfig.h"

#include "cli.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "crypto.h"
#include "log.h"
#include "netaddr.h"
#include "ss_uri.h"

enum {
    OPT_VERSION = 256,
    OPT_CHECK,
    OPT_ROLE,
    OPT_FAST_OPEN,
    OPT_REUSE_PORT,
    OPT_NO_DELAY,
    OPT_ACL,
    OPT_BALANCE,
    OPT_METRICS,
    OPT_KEY,
    OPT_GENKEY,
    OPT_PLUGIN,
    OPT_PLUGIN_OPTS,
    OPT_SERVER_URL,
    OPT_PRINT_URI,
    OPT_NO_QR,
    OPT_MPTCP,
    /* libev's, accepted and ignored with a warning */
    OPT_MTU,
    OPT_MANAGER_ADDRESS
};

static const struct option cli_long_options[] = {
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, OPT_VERSION},
    {"check", no_argument, NULL, OPT_CHECK},
    {"workers", required_argument, NULL, 'w'},
    {"role", required_argument, NULL, OPT_ROLE},
    {"fast-open", no_argument, NULL, OPT_FAST_OPEN},
    {"reuse-port", no_argument, NULL, OPT_REUSE_PORT},
    {"no-delay", no_argument, NULL, OPT_NO_DELAY},
    {"acl", required_argument, NULL, OPT_ACL},
    {"balance", required_argument, NULL, OPT_BALANCE},
    {"metrics", required_argument, NULL, OPT_METRICS},
    {"key", required_argument, NULL, OPT_KEY},
    {"genkey", required_argument, NULL, OPT_GENKEY},
    {"plugin", required_argument, NULL, OPT_PLUGIN},
    {"plugin-opts", required_argument, NULL, OPT_PLUGIN_OPTS},
    {"server-url", required_argument, NULL, OPT_SERVER_URL},
    {"print-uri", no_argument, NULL, OPT_PRINT_URI},
    {"no-qr", no_argument, NULL, OPT_NO_QR},
    {"mtu", required_argument, NULL, OPT_MTU},
    {"mptcp", no_argument, NULL, OPT_MPTCP},
    {"manager-address", required_argument, NULL, OPT_MANAGER_ADDRESS},
    {NULL, 0, NULL, 0},
};

/* The leading ':' makes getopt report a missing argument as ':' rather than '?', and keeps it
 * quiet: every message is written here, naming the option. */
static const char cli_short_options[] = ":c:s:p:l:b:k:m:t:uUvhw:L:6d:a:n:i:f:";

/* What an option's argument should be, for messages. */
static const char *cli_expected(int opt)
{
    switch (opt) {
    case 'p':
    case 'l':
        return "a port number from 1 to 65535";
    case 't':
        return "a number of seconds from 1 to 2147483";
    case 'w':
        return "a number of workers from 0 to 256";
    case 'n':
        return "a number of files from 1 to 2147483647";
    case 'L':
    case OPT_METRICS:
        return "host:port or [ipv6]:port";
    case 's':
        return "an address, host:port or [ipv6]:port";
    case 'd':
        return "ip[:port][,ip[:port]...], at most 8";
    case OPT_ROLE:
        return "server, local, tunnel or redir";
    case OPT_BALANCE:
        return "reuseport, shared or dispatch";
    default:
        return "a non-empty value";
    }
}

struct cli_ctx {
    struct cli_options *o;
    const char *name; /* the option as typed: "-p" or "--workers" */
    char *err;
    size_t errlen;
};

static int cli_bad_value(struct cli_ctx *x, int opt, const char *value)
{
    if (opt == 'm' || opt == OPT_GENKEY) /* the names come from crypto.c's method table */
        snprintf(x->err, x->errlen, "%s: expected one of %s, got \"%.64s\"", x->name,
                 crypto_method_names(), value);
    else
        snprintf(x->err, x->errlen, "%s: expected %s, got \"%.64s\"", x->name, cli_expected(opt),
                 value);
    return CLI_ERROR;
}

static int cli_number(struct cli_ctx *x, int opt, const char *value, int min, int max, int *out)
{
    return config_parse_int(value, min, max, out) == 0 ? CLI_OK : cli_bad_value(x, opt, value);
}

/* An address option, checked with the flags of its configuration key (config.h), so that the
 * command line refuses what the file would. Only checked here: config_validate() reads it into
 * the typed config once the command line is merged. */
static int cli_address(struct cli_ctx *x, int opt, const char *value, unsigned flags,
                       const char **out)
{
    struct netaddr_endpoint e[CONFIG_MAX_NAMESERVERS];
    int rc = opt == 'd' ? netaddr_parse_list(value, flags, e, CONFIG_MAX_NAMESERVERS)
                        : netaddr_parse_hostport(value, strlen(value), flags, e);
    if (rc < 0)
        return cli_bad_value(x, opt, value);
    *out = value;
    return CLI_OK;
}

static int cli_text(struct cli_ctx *x, int opt, const char *value, const char **out)
{
    if (!value[0])
        return cli_bad_value(x, opt, value);
    *out = value;
    return CLI_OK;
}

/* A SIP002 URI (--server-url, or -s ss://...): checked here, applied by cli_apply(). One URI
 * stands for the whole server list, so it mixes with no other -s. */
static int cli_server_url(struct cli_ctx *x, const char *value)
{
    struct cli_options *o = x->o;
    struct ss_uri u;
    char why[200];

    if (o->server_url || o->n_server > 0) {
        snprintf(x->err, x->errlen,
                 "%s: a URI gives the one server; it cannot be mixed with another -s or "
                 "--server-url",
                 x->name);
        return CLI_ERROR;
    }
    if (ss_uri_parse(value, &u, why, sizeof why) != 0) {
        snprintf(x->err, x->errlen,
                 "%s: not a SIP002 URI (ss://userinfo@host:port/?plugin=...): "
                 "%s",
                 x->name, why);
        return CLI_ERROR;
    }
    memset(&u, 0, sizeof u);
    o->server_url = value;
    return CLI_OK;
}

static int cli_server(struct cli_ctx *x, const char *value)
{
    struct cli_options *o = x->o;
    struct netaddr_endpoint e;

    if (strncasecmp(value, "ss://", 5) == 0)
        return cli_server_url(x, value);
    if (o->server_url) {
        snprintf(x->err, x->errlen, "%s: an address cannot be mixed with a URI's server", x->name);
        return CLI_ERROR;
    }
    if (o->n_server >= CONFIG_MAX_SERVERS) {
        snprintf(x->err, x->errlen, "%s: at most %d servers may be given", x->name,
                 CONFIG_MAX_SERVERS);
        return CLI_ERROR;
    }
    /* only checked here; cli_apply() reads it into the config */
    if (netaddr_parse_hostport(value, strlen(value), CONFIG_SERVER_FLAGS, &e) != 0)
        return cli_bad_value(x, 's', value);
    o->servers[o->n_server++] = value;
    return CLI_OK;
}

static int cli_choice(struct cli_ctx *x, int opt, const char *value)
{
    enum config_role role;
    enum config_balance balance;
    int method;

    if (opt == OPT_ROLE) {
        if (config_role_from_name(value, &role) != 0)
            return cli_bad_value(x, opt, value);
        x->o->role = value;
    } else if (opt == OPT_BALANCE) {
        if (config_balance_from_name(value, &balance) != 0)
            return cli_bad_value(x, opt, value);
        x->o->balance = value;
    } else {
        method = crypto_method_lookup(value);
        if (method < 0)
            return cli_bad_value(x, opt, value);
        *(opt == OPT_GENKEY ? &x->o->genkey : &x->o->method) =
            crypto_method_info((enum crypto_method)method)->name;
    }
    return CLI_OK;
}

/* libev options that reuseproxy does not implement: the same treatment as their keys. */
static int cli_unimplemented(struct cli_ctx *x, int opt)
{
    if (opt == 'f') {
        snprintf(x->err, x->errlen,
                 "%s: reuseproxy does not daemonize; run it under systemd or a supervisor",
                 x->name);
        return CLI_ERROR;
    }
    log_warn("%s: a shadowsocks-libev option that reuseproxy does not implement; ignored",
             x->name);
    return CLI_OK;
}

/* Options that take a value. */
static int cli_option_value(struct cli_ctx *x, int opt, const char *arg)
{
    struct cli_options *o = x->o;
    switch (opt) {
    case 'c':
        return cli_text(x, opt, arg, &o->config_path);
    case 's':
        return cli_server(x, arg);
    case 'p':
        return cli_number(x, opt, arg, 1, 65535, &o->server_port);
    case 'l':
        return cli_number(x, opt, arg, 1, 65535, &o->local_port);
    case 't':
        return cli_number(x, opt, arg, 1, 2147483, &o->timeout);
    case 'w':
        return cli_number(x, opt, arg, 0, CONFIG_MAX_WORKERS, &o->workers);
    case 'n':
        return cli_number(x, opt, arg, 1, 2147483647, &o->nofile);
    case 'b':
        return cli_text(x, opt, arg, &o->local_address);
    case 'k':
        return cli_text(x, opt, arg, &o->password);
    case OPT_KEY:
        return cli_text(x, opt, arg, &o->key);
    case 'd':
        return cli_address(x, opt, arg, CONFIG_NAMESERVER_FLAGS, &o->nameserver);
    case 'a':
        return cli_text(x, opt, arg, &o->user);
    case OPT_ACL:
        return cli_text(x, opt, arg, &o->acl);
    case 'L':
        return cli_address(x, opt, arg, CONFIG_TUNNEL_FLAGS, &o->tunnel_address);
    case OPT_METRICS:
        return cli_address(x, opt, arg, 0, &o->metrics_address);
    case OPT_PLUGIN:
        return cli_text(x, opt, arg, &o->plugin);
    case OPT_PLUGIN_OPTS:
        return cli_text(x, opt, arg, &o->plugin_opts);
    case OPT_SERVER_URL:
        return cli_server_url(x, arg);
    case 'm':
    case OPT_GENKEY:
    case OPT_ROLE:
    case OPT_BALANCE:
        return cli_choice(x, opt, arg);
    default:
        return cli_unimplemented(x, opt);
    }
}

/* Options without a value. */
static int cli_option_flag(struct cli_ctx *x, int opt)
{
    struct cli_options *o = x->o;
    switch (opt) {
    case 'u':
        o->mode = MODE_TCP_AND_UDP;
        break;
    case 'U':
        o->mode = MODE_UDP_ONLY;
        break;
    case 'v':
        o->verbose++;
        break;
    case 'h':
        o->help = 1;
        break;
    case '6':
        o->ipv6_first = true;
        break;
    case OPT_VERSION:
        o->version = 1;
        break;
    case OPT_CHECK:
        o->check = 1;
        break;
    case OPT_FAST_OPEN:
        o->fast_open = true;
        break;
    case OPT_REUSE_PORT:
        o->reuse_port = true;
        break;
    case OPT_NO_DELAY:
        o->no_delay = true;
        break;
    case OPT_PRINT_URI:
        o->print_uri = 1;
        break;
    case OPT_NO_QR:
        o->no_qr = 1;
        break;
    case OPT_MPTCP:
        o->mptcp = true;
        break;
    default:
        return cli_unimplemented(x, opt);
    }
    return CLI_OK;
}

/* The option as the user typed it: "--name" for a long one (without "=value"), else "-c". */
static void cli_option_name(char *buf, size_t cap, int opt, int long_index, const char *arg)
{
    if (long_index >= 0)
        snprintf(buf, cap, "--%s", cli_long_options[long_index].name);
    else if (arg && strncmp(arg, "--", 2) == 0)
        snprintf(buf, cap, "%.*s", (int)strcspn(arg, "="), arg);
    else if (opt > 0 && opt < 256)
        snprintf(buf, cap, "-%c", opt);
    else
        snprintf(buf, cap, "%s", arg ? arg : "?");
}

static bool cli_takes_value(int opt, int long_index)
{
    const char *p;
    if (long_index >= 0)
        return cli_long_options[long_index].has_arg == required_argument;
    p = opt > 0 && opt < 256 ? strchr(cli_short_options + 1, opt) : NULL;
    return p && p[1] == ':';
}

/* getopt's '?' (unknown option, or an argument given to one that takes none) and ':' (missing
 * argument), with optopt and the argv element it was reading. */
static int cli_getopt_error(int opt, const char *arg, char *err, size_t errlen)
{
    char name[64];
    cli_option_name(name, sizeof name, optopt, -1, arg);
    if (opt == ':')
        snprintf(err, errlen, "%s: missing argument (expected %s)", name, cli_expected(optopt));
    else if (optopt != 0 && strncmp(arg, "--", 2) == 0)
        snprintf(err, errlen, "%s: takes no argument", name);
    else
        snprintf(err, errlen, "unknown option \"%s\"", name); /* main() adds the one hint */
    return CLI_ERROR;
}

static void cli_defaults(struct cli_options *o)
{
    memset(o, 0, sizeof *o);
    o->mode = -1;
    o->workers = -1;
}

int cli_parse(struct cli_options *o, int argc, char **argv, char *err, size_t errlen)
{
    struct cli_ctx x = {o, NULL, err, errlen};
    char name[64];

    cli_defaults(o);
    optind = 0; /* glibc: 0 also resets its internal state, so cli_parse can run again */
    opterr = 0;
    for (;;) {
        int long_index = -1;
        int opt = getopt_long(argc, argv, cli_short_options, cli_long_options, &long_index);
        if (opt == -1)
            break;
        if (opt == '?' || opt == ':')
            return cli_getopt_error(opt, argv[optind - 1], err, errlen);
        cli_option_name(name, sizeof name, opt, long_index, NULL);
        x.name = name;
        int rc = cli_takes_value(opt, long_index) ? cli_option_value(&x, opt, optarg)
                                                  : cli_option_flag(&x, opt);
        if (rc != CLI_OK)
            return CLI_ERROR;
    }
    if (optind < argc) {
        snprintf(err, errlen, "unexpected argument \"%.64s\" (options start with '-')",
                 argv[optind]);
        return CLI_ERROR;
    }
    return CLI_OK;
}

static int cli_set(char **field, const char *value)
{
    char *copy = strdup(value);
    if (!copy)
        return -1;
    free(*field);
    *field = copy;
    return 0;
}

/* The server list of -s replaces the file's "server" as a whole. */
static int cli_apply_servers(const struct cli_options *o, struct config *c)
{
    struct netaddr_endpoint parsed[CONFIG_MAX_SERVERS] = {0};

    for (int i = 0; i < o->n_server; i++)
        if (netaddr_parse_hostport(o->servers[i], strlen(o->servers[i]), CONFIG_SERVER_FLAGS,
                                   &parsed[i]) != 0)
            return -1;
    memset(c->server, 0, sizeof c->server);
    memcpy(c->server, parsed, (size_t)o->n_server * sizeof parsed[0]);
    c->n_server = o->n_server;
    c->pos[CONFIG_KEY_SERVER] = (struct config_pos){0, 0};
    /* the file's "servers" entries go with it: their methods and passwords no longer apply */
    config_servers_clear(c);
    return 0;
}

/* --server-url / -s ss://...: the URI's keys, their file positions forgotten. */
static int cli_apply_url(const struct cli_options *o, struct config *c, char *err, size_t errlen)
{
    static const enum config_key filled[] = {
        CONFIG_KEY_SERVER, CONFIG_KEY_SERVER_PORT, CONFIG_KEY_PASSWORD,   CONFIG_KEY_KEY,
        CONFIG_KEY_METHOD, CONFIG_KEY_PLUGIN,      CONFIG_KEY_PLUGIN_OPTS};
    char why[400];

    if (config_apply_server_url(c, o->server_url, why, sizeof why) != 0) {
        snprintf(err, errlen, "--server-url: %s", why);
        return -1;
    }
    for (size_t i = 0; i < sizeof filled / sizeof filled[0]; i++)
        c->pos[filled[i]] = (struct config_pos){0, 0};
    return 0;
}

/* Each string option: its value, the field it replaces and the key whose file position is then
 * forgotten (messages about it must not point into the file). */
static int cli_apply_strings(const struct cli_options *o, struct config *c)
{
    const struct {
        const char *value;
        char **field;
        enum config_key key;
    } list[] = {
        {o->local_address, &c->local_address, CONFIG_KEY_LOCAL_ADDRESS},
        {o->password, &c->password, CONFIG_KEY_PASSWORD},
        {o->key, &c->key, CONFIG_KEY_KEY},
        {o->tunnel_address, &c->tunnel_address, CONFIG_KEY_TUNNEL_ADDRESS},
        {o->nameserver, &c->nameserver, CONFIG_KEY_NAMESERVER},
        {o->user, &c->user, CONFIG_KEY_USER},
        {o->acl, &c->acl, CONFIG_KEY_ACL},
        {o->metrics_address, &c->metrics_address, CONFIG_KEY_METRICS_ADDRESS},
        {o->plugin, &c->plugin.plugin, CONFIG_KEY_PLUGIN},
        {o->plugin_opts, &c->plugin.plugin_opts, CONFIG_KEY_PLUGIN_OPTS},
    };
    for (size_t i = 0; i < sizeof list / sizeof list[0]; i++) {
        if (!list[i].value)
            continue;
        if (cli_set(list[i].field, list[i].value) != 0)
            return -1;
        c->pos[list[i].key] = (struct config_pos){0, 0};
    }
    /* A file "key" would win over -k (libev's crypto_init prefers the key); the command line
     * is what the user typed last, so -k alone drops the file's key. */
    if (o->password && !o->key && c->key) {
        free(c->key);
        c->key = NULL;
    }
    return 0;
}

static void cli_apply_int(int given, int value, int *field, struct config *c, enum config_key k)
{
    if (!given)
        return;
    *field = value;
    c->pos[k] = (struct config_pos){0, 0};
}

static void cli_apply_bool(bool given, bool *field, struct config *c, enum config_key k)
{
    if (!given)
        return;
    *field = true;
    c->pos[k] = (struct config_pos){0, 0};
}

static void cli_apply_numbers(const struct cli_options *o, struct config *c)
{
    cli_apply_int(o->server_port > 0, o->server_port, &c->server_port, c, CONFIG_KEY_SERVER_PORT);
    cli_apply_int(o->local_port > 0, o->local_port, &c->local_port, c, CONFIG_KEY_LOCAL_PORT);
    cli_apply_int(o->timeout > 0, o->timeout, &c->timeout, c, CONFIG_KEY_TIMEOUT);
    cli_apply_int(o->workers >= 0, o->workers, &c->workers, c, CONFIG_KEY_WORKERS);
    cli_apply_int(o->nofile > 0, o->nofile, &c->nofile, c, CONFIG_KEY_NOFILE);
    cli_apply_int(o->verbose > 0, o->verbose > 2 ? 2 : o->verbose, &c->verbose, c,
                  CONFIG_KEY_VERBOSE);
    cli_apply_bool(o->fast_open, &c->fast_open, c, CONFIG_KEY_FAST_OPEN);
    cli_apply_bool(o->reuse_port, &c->reuse_port, c, CONFIG_KEY_REUSE_PORT);
    cli_apply_bool(o->no_delay, &c->no_delay, c, CONFIG_KEY_NO_DELAY);
    cli_apply_bool(o->mptcp, &c->mptcp, c, CONFIG_KEY_MPTCP);
    cli_apply_bool(o->ipv6_first, &c->ipv6_first, c, CONFIG_KEY_IPV6_FIRST);
    if (o->mode >= 0) {
        c->mode = (enum config_mode)o->mode;
        c->pos[CONFIG_KEY_MODE] = (struct config_pos){0, 0};
    }
}

int cli_apply(const struct cli_options *o, struct config *c, char *err, size_t errlen)
{
    enum config_role role = ROLE_SERVER;
    enum config_balance balance = BALANCE_REUSEPORT;

    if (o->role && config_role_from_name(o->role, &role) != 0) {
        snprintf(err, errlen, "--role: expected %s, got \"%.64s\"", cli_expected(OPT_ROLE),
                 o->role);
        return -1;
    }
    if (o->balance && config_balance_from_name(o->balance, &balance) != 0) {
        snprintf(err, errlen, "--balance: expected %s, got \"%.64s\"",
                 cli_expected(OPT_BALANCE), o->balance);
        return -1;
    }
    if (o->method && crypto_method_lookup(o->method) < 0) {
        snprintf(err, errlen, "-m: expected one of %s, got \"%.64s\"", crypto_method_names(),
                 o->method);
        return -1;
    }
    /* the URI first: -k, -m, -p and --plugin given beside it are typed later, so they win */
    if (o->server_url && cli_apply_url(o, c, err, errlen) != 0)
        return -1;
    if (o->n_server > 0 && cli_apply_servers(o, c) != 0) {
        snprintf(err, errlen, "-s: expected %s", cli_expected('s'));
        return -1;
    }
    if (cli_apply_strings(o, c) != 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    cli_apply_numbers(o, c);
    if (o->method) {
        c->method = (enum crypto_method)crypto_method_lookup(o->method);
        c->pos[CONFIG_KEY_METHOD] = (struct config_pos){0, 0};
    }
    if (o->role) {
        c->role = role;
        c->pos[CONFIG_KEY_ROLE] = (struct config_pos){0, 0};
    }
    if (o->balance) {
        c->balance = balance;
        c->pos[CONFIG_KEY_BALANCE] = (struct config_pos){0, 0};
    }
    return 0;
}

void cli_usage(FILE *out, const char *prog)
{
    fprintf(out,
            "usage: %s [-c FILE] [options]\n"
            "\n"
            "A shadowsocks AEAD proxy (server, SOCKS5 local, tunnel or transparent redir) with one\n"
            "process per CPU.\n"
            "Options override the same settings in the file.\n"
            "\n"
            "  -c FILE            JSON configuration file (shadowsocks-libev format)\n"
            "  -s ADDR            server address, repeatable (server role: where to listen),\n"
            "                     or an ss:// URI (as --server-url)\n"
            "      --server-url URI  server, port, method, password and plugin from a SIP002\n"
            "                     URI (ss://...)\n"
            "  -p PORT            server port\n"
            "  -l PORT            local port (local, tunnel and redir roles)\n"
            "  -b ADDR            local address (default 127.0.0.1)\n"
            "  -k PASSWORD        password\n"
            "      --key BASE64   key instead of a password\n"
            "  -m METHOD          aes-128-gcm, aes-192-gcm, aes-256-gcm,\n"
            "                     chacha20-ietf-poly1305 (default), or Shadowsocks 2022:\n"
            "                     2022-blake3-aes-128-gcm, 2022-blake3-aes-256-gcm,\n"
            "                     2022-blake3-chacha20-poly1305\n"
            "  -t SECONDS         idle timeout (default 60)\n"
            "  -u                 TCP and UDP\n"
            "  -U                 UDP only\n"
            "  -L HOST:PORT       tunnel destination (tunnel role)\n"
            "  -d ADDR[,ADDR]     name servers\n"
            "  -6                 prefer IPv6 when resolving\n"
            "  -a USER            user the workers run as (applied when started as root)\n"
            "  -n NUMBER          open file limit\n"
            "      --acl FILE     shadowsocks-libev ACL file\n"
            "      --fast-open    TCP Fast Open\n"
            "      --reuse-port   SO_REUSEPORT on listeners\n"
            "      --no-delay     TCP_NODELAY\n"
            "      --mptcp        Multipath TCP for outgoing connections\n"
            "      --role ROLE    server (default), local (SOCKS5), tunnel or redir\n"
            "  -w, --workers N    worker processes (default: online CPUs; 0: one process)\n"
            "      --balance MODE reuseport (default), shared or dispatch\n"
            "      --metrics HOST:PORT  serve Prometheus metrics there\n"
            "      --plugin PLUGIN   SIP003 plugin to run (obfs-server, ss-v2ray-plugin...)\n"
            "      --plugin-opts OPTS  its options (SS_PLUGIN_OPTIONS)\n"
            "  -v                 more logging (repeatable)\n"
            "      --check        check the configuration and exit\n"
            "      --print-uri    print the ss:// URI clients import for this server, and on a\n"
            "                     terminal its QR code (when built with libqrencode)\n"
            "      --no-qr        with --print-uri: the URI alone\n"
            "      --genkey METHOD  print a new random key for METHOD (base64): the password\n"
            "                     of the 2022-blake3-* methods, or \"key\" of the others\n"
            "  -h, --help         this help\n"
            "      --version      version and crypto backend\n"
            "\n"
            "Documentation: man reuseproxy (options, signals, examples) and\n"
            "man reuseproxy.json (every configuration key).\n",
            prog);
}

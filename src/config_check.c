/* config_check.c: config_validate(), run once the file and the command line are merged (by
 * --check and by a start alike): the checks across keys, and the typed values derived from
 * them: every address parsed by netaddr_parse_hostport(), the listen list, and the master key.
 * No I/O beyond the user database and no state: each message points at the key's line and
 * column when the key came from the file. Uses config_msg.c for messages and never calls
 * config.c (nor config.c this file). */

#include "autoconfig.h" /* _GNU_SOURCE first: strndup, explicit_bzero */

#include <arpa/inet.h>
#include <netinet/in.h>
#include <ctype.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config_private.h"
#include "crypto.h"
#include "log.h"

bool config_is_loopback(const char *host)
{
    struct in_addr a4;
    struct in6_addr a6;

    if (!host)
        return false;
    if (strcasecmp(host, "localhost") == 0)
        return true;
    if (inet_pton(AF_INET, host, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, host, &a6) == 1) {
        if (IN6_IS_ADDR_LOOPBACK(&a6))
            return true;
        return IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127;
    }
    return false;
}

/* The example passwords of the documentation and of shadowsocks' own (README's "-k SECRET",
 * libev's "barfoo!", the man page's "a long random password", conf/'s "CHANGE-ME..."), and
 * the obvious others, compared with case and everything but letters and digits ignored, so
 * that "your-password", "Your_Password" and "$PASSWORD" (a variable the shell did not expand)
 * are one. Besides these, anything that begins with "change" (CHANGE-ME, changeit) is one. */
/* clang-format off */
static const char *const config_placeholders[] = {
    "password", "passwd", "secret", "yoursecret", "mysecret", "yourpassword", "mypassword",
    "examplepassword", "placeholder", "barfoo", "foobar", "alongrandompassword", NULL};
/* clang-format on */

bool config_is_placeholder_password(const char *password)
{
    char folded[64];
    size_t n = 0;

    if (!password)
        return false;
    if (!password[0])
        return true;
    for (const char *p = password; *p; p++) {
        if (!isalnum((unsigned char)*p))
            continue;
        if (n + 1 >= sizeof folded)
            return false; /* longer than any placeholder */
        folded[n++] = (char)tolower((unsigned char)*p);
    }
    folded[n] = '\0';
    for (int i = 0; config_placeholders[i]; i++)
        if (strcmp(folded, config_placeholders[i]) == 0)
            return true;
    return strncmp(folded, "change", 6) == 0;
}

/* ---- Checks across keys, after the file and the command line are merged ---- */

static int config_check_required(const struct config *c, char *err, size_t errlen)
{
    bool server = c->role == ROLE_SERVER;

    if (c->n_server == 0)
        return config_invalid(c, -1, err, errlen,
                              server ? "no server address: set \"server\" (for example "
                                       "\"0.0.0.0\") or use -s"
                                     : "no server to connect to: set \"server\" or use -s");
    /* a server's "port_password" or "servers" name its ports (config_ports.c checks each) */
    bool ports = server && c->n_port_sources > 0;
    if (c->server_port == 0 && !ports && (server || !config_servers_complete(c, false)))
        return config_invalid(c, -1, err, errlen, "no server port: set \"server_port\" or use -p");
    if (!server && c->local_port == 0)
        return config_invalid(c, -1, err, errlen, "no local port: set \"local_port\" or use -l");
    /* a SIP004 server with users needs no password of its own (SIP022's is the identity PSK) */
    bool users_only = server && c->n_users > 0 &&
                      crypto_method_info(c->method)->proto == CRYPTO_PROTO_SIP004;
    if (!c->password && !c->key && !users_only && !ports &&
        (server || !config_servers_complete(c, true)))
        return config_invalid(c, -1, err, errlen,
                              "no password: set \"password\" (or \"key\") or use -k");
    if (c->proxy_protocol && !server)
        return config_invalid(c, CONFIG_KEY_PROXY_PROTOCOL, err, errlen,
                              "\"proxy_protocol\": only a server reads PROXY protocol headers; "
                              "remove it from a %s configuration",
                              config_role_name(c->role));
    if (c->proxy_protocol && c->n_proxy_protocol_from == 0)
        return config_invalid(c, CONFIG_KEY_PROXY_PROTOCOL, err, errlen,
                              "\"proxy_protocol\": true needs \"proxy_protocol_from\", the "
                              "networks of the balancers that may send the header (for example "
                              "[\"10.0.0.0/8\"]); a header from anyone else is refused");
    if (c->role == ROLE_TUNNEL && !c->tunnel_address)
        return config_invalid(c, -1, err, errlen,
                              "the tunnel role needs a destination: set \"tunnel_address\" "
                              "(\"host:port\") or use -L");
    return 0;
}

static int config_bad_address(const struct config *c, int k, const char *name, const char *expected,
                              const char *value, char *err, size_t errlen)
{
    char q[96];
    return config_invalid(c, k, err, errlen, "\"%s\": expected %s, got %s", name, expected,
                          config_quote(value, q, sizeof q));
}

static int config_parse_address(const char *s, unsigned flags, struct netaddr_endpoint *e)
{
    return netaddr_parse_hostport(s, strlen(s), flags, e);
}

/* The addresses only some roles use: tunnel_address, local_address, metrics_address. */
static int config_check_addresses(struct config *c, char *err, size_t errlen)
{
    if (c->role == ROLE_TUNNEL &&
        config_parse_address(c->tunnel_address, CONFIG_TUNNEL_FLAGS, &c->tunnel) != 0)
        return config_bad_address(c, CONFIG_KEY_TUNNEL_ADDRESS, "tunnel_address",
                                  "\"host:port\" or \"[ipv6]:port\"", c->tunnel_address, err,
                                  errlen);
    c->has_metrics = c->metrics_address != NULL;
    if (c->has_metrics && config_parse_address(c->metrics_address, 0, &c->metrics) != 0)
        return config_bad_address(c, CONFIG_KEY_METRICS_ADDRESS, "metrics_address",
                                  "\"host:port\" or \"[ipv6]:port\"", c->metrics_address, err,
                                  errlen);
    /* The master binds it before forking and does not resolve names: refused here, so that
     * --check says what a start would. */
    if (c->has_metrics &&
        config_parse_address(c->metrics_address, CONFIG_METRICS_FLAGS, &c->metrics) != 0)
        return config_bad_address(c, CONFIG_KEY_METRICS_ADDRESS, "metrics_address",
                                  "an IP address and a port (\"127.0.0.1:9100\" or "
                                  "\"[::1]:9100\"; host names are not resolved here)",
                                  c->metrics_address, err, errlen);
    if (c->role != ROLE_SERVER && c->local_address &&
        (config_parse_address(c->local_address, CONFIG_LOCAL_ADDRESS_FLAGS, &c->local_listen) != 0 ||
         c->local_listen.target.port != 0))
        return config_bad_address(c, CONFIG_KEY_LOCAL_ADDRESS, "local_address",
                                  "an IP address or a host name", c->local_address, err, errlen);
    if (c->nameserver) {
        c->n_nameserver = netaddr_parse_list(c->nameserver, CONFIG_NAMESERVER_FLAGS, c->nameservers,
                                             CONFIG_MAX_NAMESERVERS);
        if (c->n_nameserver < 0) {
            c->n_nameserver = 0;
            return config_bad_address(c, CONFIG_KEY_NAMESERVER, "nameserver",
                                      "IP addresses with optional ports, separated by commas "
                                      "(\"1.1.1.1\", \"[::1]:5353\"; at most 8)",
                                      c->nameserver, err, errlen);
        }
    }
    return 0;
}

/* The outgoing-socket keys into c->outgoing (netaddr.h): the source addresses must be IP
 * literals of their family; an interface name must fit IFNAMSIZ. */
static int config_check_outgoing(struct config *c, char *err, size_t errlen)
{
    struct netaddr_outgoing *o = &c->outgoing;
    const struct {
        const char *value, *name, *expected;
        int key, family;
        struct sockaddr_storage *out;
    } src[] = {{c->local_ipv4_address, "local_ipv4_address", "an IPv4 address (\"192.0.2.1\")",
                CONFIG_KEY_LOCAL_IPV4_ADDRESS, AF_INET, &o->bind4},
               {c->local_ipv6_address, "local_ipv6_address", "an IPv6 address (\"2001:db8::1\")",
                CONFIG_KEY_LOCAL_IPV6_ADDRESS, AF_INET6, &o->bind6}};

    memset(o, 0, sizeof *o);
    for (size_t i = 0; i < sizeof src / sizeof src[0]; i++) {
        socklen_t len;
        if (src[i].value && (netaddr_from_ip(src[i].value, 0, src[i].out, &len) != 0 ||
                             src[i].out->ss_family != src[i].family))
            return config_bad_address(c, src[i].key, src[i].name, src[i].expected, src[i].value,
                                      err, errlen);
    }
    const char *ifname = c->outbound_bind_interface;
    if (ifname && (!*ifname || strlen(ifname) >= sizeof o->interface || strchr(ifname, '/')))
        return config_bad_address(c, CONFIG_KEY_OUTBOUND_BIND_INTERFACE, "outbound_bind_interface",
                                  "an interface name of 1 to 15 characters (\"eth1\")", ifname,
                                  err, errlen);
    if (ifname)
        snprintf(o->interface, sizeof o->interface, "%s", ifname);
    if (c->tcp_tproxy) /* libev's ss-redir key: "tcp_redir" says the same */
        c->tcp_redir = TCP_REDIR_TPROXY;
    o->fwmark = (uint32_t)c->fwmark;
    o->keepalive = c->keep_alive;
    o->mptcp = c->mptcp;
    return 0;
}

static int config_check_formats(const struct config *c, char *err, size_t errlen)
{
    if (!crypto_method_info(c->method))
        return config_invalid(c, CONFIG_KEY_METHOD, err, errlen,
                              "\"method\": method %d is not supported; reuseproxy supports %s",
                              (int)c->method, crypto_method_names());
    if (c->user && config_user_ids(c->user, NULL, NULL) != 0) {
        char q[96];
        return config_invalid(c, CONFIG_KEY_USER, err, errlen,
                              "\"user\": no user %s on this system",
                              config_quote(c->user, q, sizeof q));
    }
    return 0;
}

int config_user_ids(const char *user, uid_t *uid, gid_t *gid)
{
    const struct passwd *pw = getpwnam(user);
    char *end;

    if (!pw && *user) {
        unsigned long n = strtoul(user, &end, 10);
        if (*end == '\0' && isdigit((unsigned char)*user) && n <= (uid_t)-2)
            pw = getpwuid((uid_t)n);
    }
    if (!pw)
        return -1;
    if (uid)
        *uid = pw->pw_uid;
    if (gid)
        *gid = pw->pw_gid;
    return 0;
}

/* Never run silently with a placeholder password where others can reach it. */
static int config_check_placeholder(const struct config *c, char *err, size_t errlen)
{
    const char *exposed = NULL;
    char q[96];

    if (c->key || !c->password || !config_is_placeholder_password(c->password) ||
        crypto_method_info(c->method)->proto == CRYPTO_PROTO_SIP022)
        return 0;
    if (c->role == ROLE_SERVER) {
        for (int i = 0; i < c->n_server && !exposed; i++)
            if (!config_is_loopback(c->server[i].target.host))
                exposed = c->server[i].target.host;
    } else if (c->local_address && !config_is_loopback(c->local_address)) {
        exposed = c->local_address;
    }
    if (!exposed)
        return 0;
    if (c->password[0])
        snprintf(q, sizeof q, "the password %s is a placeholder",
                 config_quote(c->password, (char[80]){0}, 80));
    else
        snprintf(q, sizeof q, "the password is empty");
    return config_invalid(c, CONFIG_KEY_PASSWORD, err, errlen,
                          "%s, and reuseproxy would listen on %s, which is not a loopback "
                          "address: set a real password (or \"key\"), or listen on 127.0.0.1",
                          q, exposed);
}

/* ---- The SIP003 plugin ---- */

static bool config_is_executable(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

/* As execvp() finds it (POSIX exec, "PATH"): a name with a '/' is a path; otherwise each
 * directory of $PATH in turn (an empty entry is the current directory), or the default
 * "/bin:/usr/bin" that glibc's execvp() uses when PATH is unset. */
int config_plugin_path(const char *plugin, char *out, size_t cap)
{
    const char *path = getenv("PATH");

    if (!plugin || !*plugin)
        return -1;
    if (strchr(plugin, '/')) {
        if (strlen(plugin) >= cap || !config_is_executable(plugin))
            return -1;
        snprintf(out, cap, "%s", plugin);
        return 0;
    }
    if (!path)
        path = "/bin:/usr/bin";
    for (const char *p = path;; p++) {
        size_t dir = strcspn(p, ":");
        int n = snprintf(out, cap, "%.*s%s%s", (int)dir, p, dir ? "/" : "", plugin);
        if (n > 0 && (size_t)n < cap && config_is_executable(out))
            return 0;
        p += dir;
        if (!*p)
            return -1;
    }
}

/* A plugin that cannot be run is a configuration error at a start, at a reload and in --check,
 * not a crash loop of the supervisor. The master runs the plugin, so a single process has
 * none; a server's plugin takes one public address (SS_REMOTE_HOST is one host, SIP003). */
static int config_check_plugin(const struct config *c, char *err, size_t errlen)
{
    char path[4096], q[96];

    if (!c->plugin.plugin)
        return 0;
    if (config_plugin_path(c->plugin.plugin, path, sizeof path) != 0)
        return config_invalid(c, CONFIG_KEY_PLUGIN, err, errlen,
                              "\"plugin\": %s is not an executable file%s; install the plugin "
                              "(Debian: simple-obfs, shadowsocks-v2ray-plugin) or give its path",
                              config_quote(c->plugin.plugin, q, sizeof q),
                              strchr(c->plugin.plugin, '/') ? "" : " in any directory of PATH");
    if (c->workers == 0)
        return config_invalid(c, CONFIG_KEY_PLUGIN, err, errlen,
                              "\"plugin\": needs \"workers\" of 1 or more: the master starts "
                              "and supervises the plugin, and workers: 0 runs without one");
    if (c->role == ROLE_SERVER && c->n_port > 1)
        return config_invalid(c, CONFIG_KEY_PLUGIN, err, errlen,
                              "\"plugin\": a server with a plugin has one port (the plugin's "
                              "SS_REMOTE_PORT), but %d are listed",
                              c->n_port);
    if (c->role == ROLE_SERVER && c->n_server > 1)
        return config_invalid(c, CONFIG_KEY_PLUGIN, err, errlen,
                              "\"plugin\": a server with a plugin listens on one address (the "
                              "plugin's SS_REMOTE_HOST), but \"server\" lists %d",
                              c->n_server);
    return 0;
}

/* ---- Warnings about settings the role ignores (at a start, a reload and in --check) ---- */

/* "PATH:LINE:COLUMN: "KEY": message" when key k came from the file, "OPTION: message" when it
 * came from the command line (cli_apply() forgets the file position of what it replaced). */
__attribute__((format(printf, 5, 6))) static void
config_warn(const struct config *c, int k, const char *key, const char *option, const char *fmt,
            ...)
{
    char msg[400];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (c->path && c->pos[k].line > 0)
        log_warn("%s:%d:%d: \"%s\": %s", c->path, c->pos[k].line, c->pos[k].column, key, msg);
    else
        log_warn("%s: %s", option, msg);
}

/* Keys of the local roles given to the server role (which listens on "server" and
 * "server_port"), and the tunnel's destination given to the local role. */
static void config_warn_role_unused(const struct config *c)
{
    const char *role = config_role_name(c->role);

    if (c->role == ROLE_SERVER && c->local_address)
        config_warn(c, CONFIG_KEY_LOCAL_ADDRESS, "local_address", "-b",
                    "ignored in the server role, which listens on \"server\" (-s); it sets "
                    "where the local and tunnel roles listen");
    if (c->role == ROLE_SERVER && c->local_port)
        config_warn(c, CONFIG_KEY_LOCAL_PORT, "local_port", "-l",
                    "ignored in the server role, which listens on \"server_port\" (-p); it sets "
                    "where the local and tunnel roles listen");
    if (c->role != ROLE_TUNNEL && c->tunnel_address)
        config_warn(c, CONFIG_KEY_TUNNEL_ADDRESS, "tunnel_address", "-L",
                    "ignored in the %s role; it is the tunnel role's destination", role);
}

/* The plugin's companions mean nothing without "plugin" (libev ignores them the same way). */
static void config_warn_plugin_unused(const struct config *c)
{
    static const struct {
        int key;
        const char *name, *option;
    } keys[] = {{CONFIG_KEY_PLUGIN_OPTS, "plugin_opts", "--plugin-opts"},
                {CONFIG_KEY_PLUGIN_ARGS, "plugin_args", "plugin_args"},
                {CONFIG_KEY_PLUGIN_MODE, "plugin_mode", "plugin_mode"}};
    bool set[] = {c->plugin.plugin_opts != NULL, c->plugin.n_plugin_args > 0,
                  c->plugin.plugin_mode != CONFIG_PLUGIN_TCP_ONLY};

    for (size_t i = 0; !c->plugin.plugin && i < sizeof keys / sizeof keys[0]; i++)
        if (set[i])
            config_warn(c, keys[i].key, keys[i].name, keys[i].option,
                        "ignored without \"plugin\" (--plugin)");
}

/* "local_users": RFC 1929 carries a name and a password of 1 to 255 bytes each; names unique. */
static int config_check_local_users(const struct config *c, char *err, size_t errlen)
{
    for (int i = 0; i < c->n_local_users; i++) {
        const struct config_user *u = &c->local_users[i];
        if (strlen(u->name) > 255 || strlen(u->password) > 255)
            return config_invalid(c, CONFIG_KEY_LOCAL_USERS, err, errlen,
                                  "\"local_users\"[%d]: a name or password longer than 255 "
                                  "bytes cannot be sent in SOCKS5 (RFC 1929)",
                                  i);
        for (int j = 0; j < i; j++)
            if (strcmp(c->local_users[j].name, u->name) == 0)
                return config_invalid(c, CONFIG_KEY_LOCAL_USERS, err, errlen,
                                      "\"local_users\"[%d]: the name %s is also local_users[%d]'s",
                                      i, config_quote(u->name, (char[80]){0}, 80), j);
    }
    return 0;
}

/* The local port's settings: meaningless in the other roles; and an open proxy on the network
 * when it listens beyond loopback without users. */
static void config_warn_local_port(const struct config *c)
{
    if (c->role != ROLE_LOCAL) {
        if (c->n_local_users)
            config_warn(c, CONFIG_KEY_LOCAL_USERS, "local_users", "local_users",
                        "ignored in the %s role; it protects the local role's port",
                        config_role_name(c->role));
        if (c->pos[CONFIG_KEY_PROTOCOL].line && c->protocol != PROTOCOL_MIXED)
            config_warn(c, CONFIG_KEY_PROTOCOL, "protocol", "protocol",
                        "ignored in the %s role; it sets what the local role's port speaks",
                        config_role_name(c->role));
        return;
    }
    if (c->n_local_users == 0 && c->local_address && !config_is_loopback(c->local_address))
        config_warn(c, CONFIG_KEY_LOCAL_ADDRESS, "local_address", "-b",
                    "the local port listens on %s, which is not a loopback address, without "
                    "\"local_users\": anyone on the network can use it as a proxy",
                    c->local_address);
}

/* "shared_store": "redis://IP[:port][/db]" or "unix:/path", and "shared_store_failure". */
int config_check_shared(struct config *c, char *err, size_t errlen)
{
    struct config_shared *sh = &c->shared;
    const char *u = sh->url;
    char q[96];

    if (sh->failure_text && strcmp(sh->failure_text, "allow") != 0 &&
        strcmp(sh->failure_text, "refuse") != 0)
        return config_invalid(c, CONFIG_KEY_SHARED_STORE_FAILURE, err, errlen,
                              "\"shared_store_failure\": expected \"allow\" or \"refuse\", got %s",
                              config_quote(sh->failure_text, q, sizeof q));
    sh->refuse = sh->failure_text && strcmp(sh->failure_text, "refuse") == 0;
    if (sh->users_key && !u)
        return config_invalid(c, CONFIG_KEY_SHARED_STORE_USERS, err, errlen,
                              "\"shared_store_users\": needs \"shared_store\", the Redis that "
                              "holds the users");
    if (!u)
        return 0;
#ifndef RP_HAVE_HIREDIS
    return config_invalid(c, CONFIG_KEY_SHARED_STORE, err, errlen,
                          "\"shared_store\": this build of reuseproxy lacks hiredis (build it "
                          "with libhiredis-dev installed, configure --with-hiredis)");
#endif
    if (c->role != ROLE_SERVER)
        return config_invalid(c, CONFIG_KEY_SHARED_STORE, err, errlen,
                              "\"shared_store\": only a server shares state in Redis");
    if (strncmp(u, "unix:", 5) == 0 && u[5] == '/' && strlen(u + 5) < sizeof sh->path) {
        sh->is_unix = true;
        strcpy(sh->path, u + 5);
        return 0;
    }
    struct netaddr_endpoint e;
    const char *rest = strncmp(u, "redis://", 8) == 0 ? u + 8 : NULL;
    const char *slash = rest ? strchr(rest, '/') : NULL;
    size_t hlen = rest ? (slash ? (size_t)(slash - rest) : strlen(rest)) : 0;
    if (!rest || netaddr_parse_hostport(rest, hlen, NETADDR_PORT_OPTIONAL | NETADDR_NUMERIC, &e) ||
        (slash && config_parse_int(slash + 1, 0, 1000000, &sh->db) != 0))
        return config_invalid(c, CONFIG_KEY_SHARED_STORE, err, errlen,
                              "\"shared_store\": expected \"redis://IP[:port][/db]\" (an IP "
                              "address: a name would need a blocking lookup) or \"unix:/path\", "
                              "got %s",
                              config_quote(u, q, sizeof q));
    memcpy(sh->host, e.target.host, sizeof sh->host);
    sh->port = e.target.port ? e.target.port : 6379;
    return 0;
}

int config_validate(struct config *c, char *err, size_t errlen)
{
    if (config_check_required(c, err, errlen) != 0 || config_check_formats(c, err, errlen) != 0 ||
        config_check_addresses(c, err, errlen) != 0 || config_check_outgoing(c, err, errlen) != 0 ||
        config_derive_ports(c, err, errlen) != 0 || config_derive_upstreams(c, err, errlen) != 0 ||
        config_check_placeholder(c, err, errlen) != 0 || config_check_plugin(c, err, errlen) != 0 ||
        config_check_local_users(c, err, errlen) != 0 || config_check_shared(c, err, errlen) != 0 ||
        config_check_manager(c, err, errlen) != 0)
        return -1;
    config_warn_role_unused(c);
    config_warn_plugin_unused(c);
    config_warn_local_port(c);
    return 0;
}

/* config_check.c: the checks across keys that config_validate() makes once the file and the
 * command line are merged, and the small value parsers they share with config.c and cli.c
 * (integers, "host:port", server entries, method names, loopback and placeholder tests). No
 * I/O and no state here: each function reads its arguments and returns a result or writes a
 * message, which points at the key's line and column when the key came from the file. */

#include "autoconfig.h" /* _GNU_SOURCE first: strndup, explicit_bzero */

#include <arpa/inet.h>
#include <ctype.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config_private.h"
#include "crypto.h"

/* ---- Methods: crypto.c's SIP004 table, names matched without regard to case ---- */

static const struct crypto_method_info *config_method_find(const char *method)
{
    for (int m = 0; method && m < CRYPTO_METHOD_COUNT; m++) {
        const struct crypto_method_info *info = crypto_method_info((enum crypto_method)m);
        if (strcasecmp(info->name, method) == 0)
            return info;
    }
    return NULL;
}

/* Method names are stored in their canonical spelling. */
const char *config_method_canonical(const char *method)
{
    const struct crypto_method_info *info = config_method_find(method);
    return info ? info->name : NULL;
}

int config_method_key_length(const char *method)
{
    const struct crypto_method_info *info = config_method_find(method);
    return info ? (int)info->key_len : -1;
}

const char *config_method_list(void)
{
    return "aes-128-gcm, aes-192-gcm, aes-256-gcm, chacha20-ietf-poly1305";
}

/* ---- Small parsers shared with the loader and the command line ---- */

int config_parse_int(const char *s, int min, int max, int *out)
{
    long long v = 0;
    if (!s || !*s)
        return -1;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9' || p - s >= 10)
            return -1;
        v = v * 10 + (*p - '0');
    }
    if (v < min || v > max)
        return -1;
    *out = (int)v;
    return 0;
}

/* A host name or an IPv4 literal as it may stand in "host:port": letters, digits, '.', '-',
 * '_' (RFC 1123 section 2.1 names, plus the underscore seen in the wild). */
static bool config_is_hostname(const char *s, size_t len)
{
    if (len == 0 || len > 253)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '.' && s[i] != '-' && s[i] != '_')
            return false;
    return true;
}

static bool config_is_ipv6(const char *s, size_t len)
{
    char buf[INET6_ADDRSTRLEN + 1];
    struct in6_addr a;
    if (len == 0 || len >= sizeof buf)
        return false;
    memcpy(buf, s, len);
    buf[len] = '\0';
    return inet_pton(AF_INET6, buf, &a) == 1;
}

int config_parse_hostport(const char *s, char *host, size_t hostlen, int *port)
{
    const char *colon, *h = s;
    size_t len;

    if (!s)
        return -1;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close || close[1] != ':' || !config_is_ipv6(s + 1, (size_t)(close - s - 1)))
            return -1;
        h = s + 1;
        len = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strchr(s, ':');
        if (!colon || strchr(colon + 1, ':') || !config_is_hostname(s, (size_t)(colon - s)))
            return -1;
        len = (size_t)(colon - s);
    }
    if (len >= hostlen || config_parse_int(colon + 1, 1, 65535, port) != 0)
        return -1;
    memcpy(host, h, len);
    host[len] = '\0';
    return 0;
}

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

bool config_is_placeholder_password(const char *password)
{
    static const char *const placeholders[] = {"", "barfoo!", "password", "changeme", NULL};
    if (!password)
        return false;
    for (int i = 0; placeholders[i]; i++)
        if (strcasecmp(password, placeholders[i]) == 0)
            return true;
    return strncasecmp(password, "change", 6) == 0;
}

int config_split_server(const char *s, char **host, int *port)
{
    size_t len = strlen(s);
    char h[256];

    *port = 0;
    if (config_is_hostname(s, len) || config_is_ipv6(s, len)) {
        *host = strdup(s);
    } else if (len > 2 && s[0] == '[' && s[len - 1] == ']' && config_is_ipv6(s + 1, len - 2)) {
        *host = strndup(s + 1, len - 2);
    } else {
        if (config_parse_hostport(s, h, sizeof h, port) != 0)
            return -1;
        *host = strdup(h);
    }
    return *host ? 0 : -2;
}

/* ---- Checks across keys, after the file and the command line are merged ---- */

/* "PATH:LINE:COLUMN: " where key k was read from the file, "PATH: " otherwise; without a file,
 * "command line: ". Then the message. Returns -1. */
__attribute__((format(printf, 5, 6))) static int
config_invalid(const struct config *c, int k, char *err, size_t errlen, const char *fmt, ...)
{
    struct config_ctx x = {NULL, c->path ? c->path : "command line", err, errlen};
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return config_fail(&x, k >= 0 && c->path ? &c->pos[k] : NULL, "%s", msg);
}

static int config_check_required(const struct config *c, char *err, size_t errlen)
{
    bool server = c->role == ROLE_SERVER;

    if (c->n_server == 0)
        return config_invalid(c, -1, err, errlen,
                              server ? "no server address: set \"server\" (for example "
                                       "\"0.0.0.0\") or use -s"
                                     : "no server to connect to: set \"server\" or use -s");
    if (c->server_port == 0)
        return config_invalid(c, -1, err, errlen, "no server port: set \"server_port\" or use -p");
    if (!server && c->local_port == 0)
        return config_invalid(c, -1, err, errlen, "no local port: set \"local_port\" or use -l");
    if (!c->password && !c->key)
        return config_invalid(c, -1, err, errlen,
                              "no password: set \"password\" (or \"key\") or use -k");
    if (c->role == ROLE_TUNNEL && !c->tunnel_address)
        return config_invalid(c, -1, err, errlen,
                              "the tunnel role needs a destination: set \"tunnel_address\" "
                              "(\"host:port\") or use -L");
    return 0;
}

static int config_check_formats(const struct config *c, char *err, size_t errlen)
{
    char host[256], q[96];
    int port;

    if (config_method_key_length(c->method) < 0)
        return config_invalid(c, CONFIG_KEY_METHOD, err, errlen,
                              "\"method\": %s is not supported; reuseproxy supports %s",
                              config_quote(c->method ? c->method : "", q, sizeof q),
                              config_method_list());
    if (c->role == ROLE_TUNNEL &&
        config_parse_hostport(c->tunnel_address, host, sizeof host, &port) != 0)
        return config_invalid(c, CONFIG_KEY_TUNNEL_ADDRESS, err, errlen,
                              "\"tunnel_address\": expected \"host:port\" or \"[ipv6]:port\", "
                              "got %s",
                              config_quote(c->tunnel_address, q, sizeof q));
    if (c->metrics_address &&
        config_parse_hostport(c->metrics_address, host, sizeof host, &port) != 0)
        return config_invalid(c, CONFIG_KEY_METRICS_ADDRESS, err, errlen,
                              "\"metrics_address\": expected \"host:port\" or \"[ipv6]:port\", "
                              "got %s",
                              config_quote(c->metrics_address, q, sizeof q));
    if (c->role != ROLE_SERVER && c->local_address &&
        !config_is_hostname(c->local_address, strlen(c->local_address)) &&
        !config_is_ipv6(c->local_address, strlen(c->local_address)))
        return config_invalid(c, CONFIG_KEY_LOCAL_ADDRESS, err, errlen,
                              "\"local_address\": expected an IP address or a host name, got %s",
                              config_quote(c->local_address, q, sizeof q));
    if (c->user && config_user_ids(c->user, NULL, NULL) != 0)
        return config_invalid(c, CONFIG_KEY_USER, err, errlen,
                              "\"user\": no user %s on this system",
                              config_quote(c->user, q, sizeof q));
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

/* libev lets "key" win over "password" when both are set (crypto_init); so does reuseproxy. */
static int config_check_key(const struct config *c, char *err, size_t errlen)
{
    unsigned char raw[64];
    int want = config_method_key_length(c->method), rc;
    size_t got = 0;

    if (!c->key)
        return 0;
    rc = crypto_base64_decode(c->key, raw, sizeof raw, &got);
    explicit_bzero(raw, sizeof raw);
    if (rc != 0)
        return config_invalid(c, CONFIG_KEY_KEY, err, errlen,
                              "\"key\": expected base64 (standard or URL-safe) of %d bytes", want);
    if ((int)got != want)
        return config_invalid(c, CONFIG_KEY_KEY, err, errlen,
                              "\"key\": decodes to %zu bytes, but %s needs a key of %d bytes", got,
                              c->method, want);
    return 0;
}

/* Never run silently with a placeholder password where others can reach it. */
static int config_check_placeholder(const struct config *c, char *err, size_t errlen)
{
    const char *exposed = NULL;
    char q[96];

    if (c->key || !config_is_placeholder_password(c->password))
        return 0;
    if (c->role == ROLE_SERVER) {
        for (int i = 0; i < c->n_server && !exposed; i++)
            if (!config_is_loopback(c->server[i]))
                exposed = c->server[i];
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

int config_validate(const struct config *c, char *err, size_t errlen)
{
    if (config_check_required(c, err, errlen) != 0 || config_check_formats(c, err, errlen) != 0 ||
        config_check_key(c, err, errlen) != 0 || config_check_placeholder(c, err, errlen) != 0)
        return -1;
    return 0;
}

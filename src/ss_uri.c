/* ss_uri.c: SIP002 URIs (https://shadowsocks.org/doc/sip002.html), read and written. Pure: a
 * string in, a struct ss_uri out (or the reverse), nothing else touched. */
#include "autoconfig.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "crypto.h"
#include "ss_uri.h"

__attribute__((format(printf, 3, 4))) static int uri_fail(char *err, size_t errlen, const char *fmt,
                                                          ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* RFC 3986 section 2.1: %XX decoded, everything else kept ('+' is not a space in a URI). A
 * decoded NUL would cut the string short, so it is refused like a broken escape. */
static int pct_decode(const char *in, size_t len, char *out, size_t cap)
{
    size_t n = 0;

    for (size_t i = 0; i < len; i++) {
        char c = in[i];
        if (c == '%') {
            if (len - i < 3 || hex_value(in[i + 1]) < 0 || hex_value(in[i + 2]) < 0)
                return -1;
            c = (char)(hex_value(in[i + 1]) * 16 + hex_value(in[i + 2]));
            if (c == '\0')
                return -1;
            i += 2;
        }
        if (n + 1 >= cap)
            return -1;
        out[n++] = c;
    }
    out[n] = '\0';
    return 0;
}

/* "method:password" split at its first ':' (a method name has none; a password may). */
static int split_userinfo(const char *plain, struct ss_uri *out, char *err, size_t errlen)
{
    const char *colon = strchr(plain, ':');

    if (!colon)
        return uri_fail(err, errlen, "the user info is not \"method:password\"");
    size_t mlen = (size_t)(colon - plain);
    if (mlen == 0 || mlen >= sizeof out->method)
        return uri_fail(err, errlen, "the method is %s", mlen ? "too long" : "empty");
    if (strlen(colon + 1) >= sizeof out->password)
        return uri_fail(err, errlen, "the password is too long");
    memcpy(out->method, plain, mlen);
    out->method[mlen] = '\0';
    strcpy(out->password, colon + 1);
    return 0;
}

/* s[0..len) (len < SS_URI_MAX) as base64, standard or URL-safe, of text: decoded into
 * plain[0..cap), NUL-terminated. -1 when it is not base64, does not fit, or holds a NUL (which
 * would cut the text short). */
static int b64_text(const char *s, size_t len, char *plain, size_t cap)
{
    char b64[SS_URI_MAX];
    size_t n = 0;

    memcpy(b64, s, len);
    b64[len] = '\0';
    if (crypto_base64_decode(b64, (uint8_t *)plain, cap - 1, &n) != 0 || memchr(plain, '\0', n))
        return -1;
    plain[n] = '\0';
    return 0;
}

/* SIP002: the user info is percent-encoded "method:password" when it holds ':' or '%' (neither
 * is a base64 character), else base64url of it. */
static int parse_userinfo(const char *s, size_t len, struct ss_uri *out, char *err, size_t errlen)
{
    char plain[sizeof out->method + sizeof out->password + 2];

    if (len == 0)
        return uri_fail(err, errlen, "no user info before '@'");
    if (memchr(s, ':', len) || memchr(s, '%', len)) {
        if (pct_decode(s, len, plain, sizeof plain) != 0)
            return uri_fail(err, errlen,
                            "the user info has a bad percent-encoding or is too "
                            "long");
        return split_userinfo(plain, out, err, errlen);
    }
    if (b64_text(s, len, plain, sizeof plain) != 0)
        return uri_fail(err, errlen,
                        "the user info is neither base64url of "
                        "\"method:password\" nor percent-encoded with a ':'");
    return split_userinfo(plain, out, err, errlen);
}

/* host:port, or [IPv6]:port (RFC 3986 section 3.2.2). */
static int parse_hostport(const char *s, size_t len, struct ss_uri *out, char *err, size_t errlen)
{
    const char *end = s + len, *colon;
    size_t hlen;

    if (len > 0 && s[0] == '[') {
        const char *close = memchr(s, ']', len);
        if (!close)
            return uri_fail(err, errlen, "an IPv6 host without its closing ']'");
        if (close + 1 == end || close[1] != ':')
            return uri_fail(err, errlen, "no \":port\" after the IPv6 host");
        hlen = (size_t)(close - s - 1);
        if (hlen == 0 || !memchr(s + 1, ':', hlen))
            return uri_fail(err, errlen, "the host in brackets is not an IPv6 address");
        memcpy(out->host, s + 1, hlen < sizeof out->host ? hlen : 0);
        colon = close + 1;
    } else {
        colon = memrchr(s, ':', len);
        if (!colon)
            return uri_fail(err, errlen, "no \":port\" after the host");
        hlen = (size_t)(colon - s);
        if (memchr(s, ':', hlen))
            return uri_fail(err, errlen, "an IPv6 host must be in brackets");
        if (hlen == 0)
            return uri_fail(err, errlen, "no host before \":port\"");
        memcpy(out->host, s, hlen < sizeof out->host ? hlen : 0);
    }
    if (hlen >= sizeof out->host)
        return uri_fail(err, errlen, "the host is too long");
    out->host[hlen] = '\0';
    long port = 0;
    const char *p = colon + 1;
    if (p == end)
        return uri_fail(err, errlen, "the port is empty");
    for (; p < end; p++) {
        if (*p < '0' || *p > '9' || (port = port * 10 + (*p - '0')) > 65535)
            return uri_fail(err, errlen, "the port is not a number in 1..65535");
    }
    if (port == 0)
        return uri_fail(err, errlen, "the port is not a number in 1..65535");
    out->port = (uint16_t)port;
    return 0;
}

/* The query: "plugin=name;opts" (percent-encoded as a whole); other parameters are skipped. */
static int parse_query(const char *s, size_t len, struct ss_uri *out, char *err, size_t errlen)
{
    const char *end = s + len;
    char plugin[sizeof out->plugin + sizeof out->plugin_opts];

    while (s < end) {
        const char *amp = memchr(s, '&', (size_t)(end - s));
        const char *stop = amp ? amp : end;
        if ((size_t)(stop - s) >= 7 && memcmp(s, "plugin=", 7) == 0) {
            if (pct_decode(s + 7, (size_t)(stop - s - 7), plugin, sizeof plugin) != 0)
                return uri_fail(err, errlen,
                                "the plugin parameter has a bad percent-encoding "
                                "or is too long");
            char *semi = strchr(plugin, ';');
            if (semi)
                *semi = '\0';
            if (!plugin[0] || strlen(plugin) >= sizeof out->plugin ||
                (semi && strlen(semi + 1) >= sizeof out->plugin_opts))
                return uri_fail(err, errlen, "the plugin parameter has %s",
                                plugin[0] ? "a part too long" : "no plugin name");
            strcpy(out->plugin, plugin);
            strcpy(out->plugin_opts, semi ? semi + 1 : "");
        }
        s = amp ? amp + 1 : end;
    }
    return 0;
}

/* The legacy form: ss://base64(method:password@host:port)[#tag], which SIP002 clients read too. */
static int parse_legacy(const char *s, size_t len, struct ss_uri *out, char *err, size_t errlen)
{
    char plain[SS_URI_MAX];

    if (b64_text(s, len, plain, sizeof plain) != 0)
        return uri_fail(err, errlen,
                        "no '@' between the user info and the host (nor the "
                        "legacy base64 form)");
    char *at = strrchr(plain, '@');
    if (!at)
        return uri_fail(err, errlen, "the legacy base64 form has no '@' before the host");
    *at = '\0';
    if (split_userinfo(plain, out, err, errlen) != 0)
        return -1;
    return parse_hostport(at + 1, strlen(at + 1), out, err, errlen);
}

int ss_uri_parse(const char *uri, struct ss_uri *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (!uri || strncasecmp(uri, "ss://", 5) != 0)
        return uri_fail(err, errlen, "not an ss:// URI");
    size_t len = strlen(uri);
    if (len >= SS_URI_MAX)
        return uri_fail(err, errlen, "longer than %d bytes", SS_URI_MAX - 1);
    const char *s = uri + 5, *end = uri + len;
    const char *hash = memchr(s, '#', (size_t)(end - s));
    if (hash && pct_decode(hash + 1, (size_t)(end - hash - 1), out->tag, sizeof out->tag) != 0)
        return uri_fail(err, errlen, "the #tag has a bad percent-encoding or is too long");
    if (hash)
        end = hash;
    const char *query = memchr(s, '?', (size_t)(end - s));
    const char *auth_end = query ? query : end;
    /* an optional '/' between the port and the query (SIP002 writes "host:port/?plugin=") */
    const char *slash = memchr(s, '/', (size_t)(auth_end - s));
    if (slash && slash + 1 != auth_end)
        return uri_fail(err, errlen, "a path after the port (only \"/\" may stand there)");
    if (slash)
        auth_end = slash;
    const char *at = memrchr(s, '@', (size_t)(auth_end - s));
    if (!at) {
        if (query)
            return uri_fail(err, errlen, "no '@' between the user info and the host");
        return parse_legacy(s, (size_t)(auth_end - s), out, err, errlen);
    }
    if (parse_userinfo(s, (size_t)(at - s), out, err, errlen) != 0 ||
        parse_hostport(at + 1, (size_t)(auth_end - at - 1), out, err, errlen) != 0)
        return -1;
    return query ? parse_query(query + 1, (size_t)(end - query - 1), out, err, errlen) : 0;
}

/* ---- Writing ---- */

/* Appends to out at *n; false when it does not fit. */
static bool put(char *out, size_t cap, size_t *n, const char *s, size_t len)
{
    if (*n + len >= cap)
        return false;
    memcpy(out + *n, s, len);
    *n += len;
    out[*n] = '\0';
    return true;
}

/* RFC 3986 unreserved characters stay, everything else is %XX; keep: more characters to leave
 * alone (":" between method and password). */
static bool put_pct(char *out, size_t cap, size_t *n, const char *s, const char *keep)
{
    static const char hex[] = "0123456789ABCDEF";

    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        bool plain = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                     strchr("-._~", c) || strchr(keep, c);
        char esc[3] = {'%', hex[c >> 4], hex[c & 15]};
        if (!(plain ? put(out, cap, n, (const char *)&c, 1) : put(out, cap, n, esc, 3)))
            return false;
    }
    return true;
}

/* RFC 4648 section 5 (base64url), without padding, as SIP002 writes the user info. */
static bool put_base64url(char *out, size_t cap, size_t *n, const char *s, size_t len)
{
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const unsigned char *p = (const unsigned char *)s;

    for (size_t i = 0; i < len; i += 3) {
        unsigned v = (unsigned)p[i] << 16 | (i + 1 < len ? (unsigned)p[i + 1] << 8 : 0) |
                     (i + 2 < len ? p[i + 2] : 0);
        char q[4] = {abc[v >> 18 & 63], abc[v >> 12 & 63], abc[v >> 6 & 63], abc[v & 63]};
        if (!put(out, cap, n, q, len - i >= 3 ? 4 : len - i + 1))
            return false;
    }
    return true;
}

int ss_uri_format(const struct ss_uri *u, bool plain, char *out, size_t cap)
{
    char userinfo[sizeof u->method + sizeof u->password + 2];
    size_t n = 0;
    char port[8];
    bool v6 = strchr(u->host, ':') != NULL;

    if (cap == 0)
        return -1;
    out[0] = '\0';
    snprintf(userinfo, sizeof userinfo, "%s:%s", u->method, u->password);
    snprintf(port, sizeof port, ":%u", (unsigned)u->port);
    bool ok = put(out, cap, &n, "ss://", 5) &&
              (plain ? put_pct(out, cap, &n, u->method, "") && put(out, cap, &n, ":", 1) &&
                           put_pct(out, cap, &n, u->password, "")
                     : put_base64url(out, cap, &n, userinfo, strlen(userinfo))) &&
              put(out, cap, &n, "@[", v6 ? 2 : 1) && put(out, cap, &n, u->host, strlen(u->host)) &&
              put(out, cap, &n, "]", v6 ? 1 : 0) && put(out, cap, &n, port, strlen(port));
    if (ok && u->plugin[0]) {
        char plugin[sizeof u->plugin + sizeof u->plugin_opts + 2];
        snprintf(plugin, sizeof plugin, "%s%s%s", u->plugin, u->plugin_opts[0] ? ";" : "",
                 u->plugin_opts);
        ok = put(out, cap, &n, "/?plugin=", 9) && put_pct(out, cap, &n, plugin, "");
    }
    if (ok && u->tag[0])
        ok = put(out, cap, &n, "#", 1) && put_pct(out, cap, &n, u->tag, "");
    memset(userinfo, 0, sizeof userinfo);
    return ok ? (int)n : -1;
}

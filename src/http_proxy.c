/* http_proxy.c: the HTTP proxy request (http_proxy.h) as a pure parser and writers over bytes.
 * Like socks5.c, each call says NEED_MORE, DONE (with the head's length) or BAD, so the same
 * code serves a request that arrives one byte at a time and a fuzz target. The limits are
 * checked against the bytes received so far, so a client that never ends its line or its
 * headers is refused once it has sent more than an acceptable request could hold. */
#include "autoconfig.h"

#include "http_proxy.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

/* The 403 body: an access list refused the target (RFC 9110 section 15.5.4 allows a reason). */
#define HTTP_PROXY_FORBIDDEN_BODY "The proxy's access list refuses this target.\n"

/* RFC 9110 section 5.6.2: tchar. */
static bool http_is_tchar(uint8_t c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

static int http_bad(struct http_proxy_request *r, int status)
{
    r->status = status;
    return HTTP_PROXY_BAD;
}

/* The end of the line starting at off (one past its LF), or 0 when no LF is in buf yet. */
static size_t http_line_end(const uint8_t *buf, size_t len, size_t off)
{
    const uint8_t *lf = memchr(buf + off, '\n', len - off);
    return lf ? (size_t)(lf - buf) + 1 : 0;
}

/* The line's length without its CRLF or LF. */
static size_t http_line_body(const uint8_t *buf, size_t off, size_t end)
{
    size_t n = end - off - 1;
    return n > 0 && buf[off + n - 1] == '\r' ? n - 1 : n;
}

/* RFC 9112 section 3.2.3 (CONNECT: authority-form, port required) and 3.2.2 (absolute-form,
 * http only: there is no TLS here to speak https to the origin; a client sends CONNECT for
 * that). */
static int http_parse_target(const uint8_t *buf, size_t off, size_t n, struct http_proxy_request *r)
{
    struct netaddr_endpoint e;
    size_t auth_off = off, auth_len = n;

    if (!r->connect) {
        if (n < 7 || strncasecmp((const char *)buf + off, "http://", 7) != 0)
            return -1;
        auth_off = off + 7;
        auth_len = 0;
        while (auth_off + auth_len < off + n && !strchr("/?#", buf[auth_off + auth_len]))
            auth_len++;
        r->path_off = auth_off + auth_len;
        r->path_len = off + n - r->path_off;
        if (r->path_len && buf[r->path_off] == '#')
            return -1;
    }
    r->authority_off = auth_off;
    r->authority_len = auth_len;
    /* netaddr_parse_hostport refuses userinfo ('@') and anything but a name or a literal */
    if (netaddr_parse_hostport((const char *)buf + auth_off, auth_len,
                               r->connect ? 0 : NETADDR_PORT_OPTIONAL, &e) != 0)
        return -1;
    r->target = e.target;
    if (!r->target.port)
        netaddr_set_target_port(&r->target, 80);
    return 0;
}

/* RFC 9112 section 3: method SP request-target SP HTTP-version. */
static int http_parse_request_line(const uint8_t *buf, size_t n, struct http_proxy_request *r)
{
    size_t m = 0;
    while (m < n && http_is_tchar(buf[m]))
        m++;
    if (m == 0 || m >= n || buf[m] != ' ')
        return -1;
    if (n < m + 1 + 1 + 9 || buf[n - 9] != ' ' || memcmp(buf + n - 8, "HTTP/1.", 7) != 0 ||
        (buf[n - 1] != '0' && buf[n - 1] != '1'))
        return -1;
    size_t t_off = m + 1, t_len = n - 9 - t_off;
    for (size_t i = t_off; i < t_off + t_len; i++)
        if (buf[i] <= ' ' || buf[i] >= 0x7f)
            return -1;
    r->method_len = m;
    r->version_off = n - 8;
    r->connect = m == 7 && memcmp(buf, "CONNECT", 7) == 0;
    return http_parse_target(buf, t_off, t_len, r);
}

static bool http_name_is(const uint8_t *buf, const struct http_proxy_header *h, const char *name)
{
    return h->name_len == strlen(name) &&
           strncasecmp((const char *)buf + h->off, name, h->name_len) == 0;
}

/* The value of a header line, without leading and trailing white space. */
static void http_value(const uint8_t *buf, const struct http_proxy_header *h, size_t *off,
                       size_t *len)
{
    size_t a = h->off + h->name_len + 1, b = h->off + h->len;
    while (b > a &&
           (buf[b - 1] == '\n' || buf[b - 1] == '\r' || buf[b - 1] == ' ' || buf[b - 1] == '\t'))
        b--;
    while (a < b && (buf[a] == ' ' || buf[a] == '\t'))
        a++;
    *off = a;
    *len = b - a;
}

/* Marks the headers a Connection value names (RFC 9110 section 7.6.1). */
static void http_drop_named(const uint8_t *buf, size_t off, size_t len,
                            struct http_proxy_request *r)
{
    size_t i = off, end = off + len;
    while (i < end) {
        while (i < end && (buf[i] == ',' || buf[i] == ' ' || buf[i] == '\t'))
            i++;
        size_t t = i;
        while (i < end && http_is_tchar(buf[i]))
            i++;
        for (int k = 0; i > t && k < r->n_header; k++) {
            struct http_proxy_header *h = &r->header[k];
            if (h->name_len == i - t &&
                strncasecmp((const char *)buf + h->off, (const char *)buf + t, i - t) == 0)
                h->drop = true;
        }
        while (i < end && buf[i] != ',')
            i++;
    }
}

/* What the proxy itself reads from the headers, and which are hop-by-hop. */
static void http_classify(const uint8_t *buf, struct http_proxy_request *r)
{
    static const char *const hop[] = {
        "Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authorization",
        "TE",         "Upgrade",          NULL};
    for (int k = 0; k < r->n_header; k++) {
        struct http_proxy_header *h = &r->header[k];
        size_t off, len;
        for (int j = 0; hop[j]; j++)
            h->drop |= http_name_is(buf, h, hop[j]);
        http_value(buf, h, &off, &len);
        if (http_name_is(buf, h, "Host"))
            r->has_host = true;
        if (http_name_is(buf, h, "Connection"))
            http_drop_named(buf, off, len, r);
        /* RFC 7617 section 2: "Basic" (any case) SP token68 */
        if (http_name_is(buf, h, "Proxy-Authorization") && len > 6 &&
            strncasecmp((const char *)buf + off, "Basic ", 6) == 0) {
            r->auth_off = off + 6;
            r->auth_len = len - 6;
            while (r->auth_len && buf[r->auth_off] == ' ')
                r->auth_off++, r->auth_len--;
        }
    }
}

/* One header line buf[off..end): "name:value". */
static int http_parse_header(const uint8_t *buf, size_t off, size_t end,
                             struct http_proxy_request *r)
{
    size_t n = 0, body = http_line_body(buf, off, end);
    while (n < body && http_is_tchar(buf[off + n]))
        n++;
    /* no name, white space before the colon, or an obsolete folded line (section 5.2) */
    if (n == 0 || n >= body || buf[off + n] != ':')
        return -1;
    for (size_t i = off + n + 1; i < off + body; i++)
        if ((buf[i] < ' ' && buf[i] != '\t') || buf[i] == 0x7f)
            return -1;
    struct http_proxy_header *h = &r->header[r->n_header++];
    h->off = (uint32_t)off;
    h->len = (uint32_t)(end - off);
    h->name_len = (uint32_t)n;
    return 0;
}

int http_proxy_parse(const uint8_t *buf, size_t len, struct http_proxy_request *r)
{
    memset(r, 0, sizeof *r);
    size_t end = http_line_end(buf, len, 0);
    if (!end)
        return len > HTTP_PROXY_LINE_MAX ? http_bad(r, 414) : HTTP_PROXY_NEED_MORE;
    if (end > HTTP_PROXY_LINE_MAX)
        return http_bad(r, 414);
    if (http_parse_request_line(buf, http_line_body(buf, 0, end), r) != 0)
        return http_bad(r, 400);
    size_t off = end, headers = end;
    for (;;) {
        end = http_line_end(buf, len, off);
        size_t have = (end ? end : len) - headers;
        if (have > HTTP_PROXY_HEADER_BYTES_MAX + 2)
            return http_bad(r, 431);
        if (!end)
            return HTTP_PROXY_NEED_MORE;
        if (http_line_body(buf, off, end) == 0)
            break;
        if (r->n_header == HTTP_PROXY_HEADERS_MAX)
            return http_bad(r, 431);
        if (http_parse_header(buf, off, end, r) != 0)
            return http_bad(r, 400);
        off = end;
    }
    r->head_len = end;
    http_classify(buf, r);
    return HTTP_PROXY_DONE;
}

static int http_put(uint8_t *out, size_t cap, size_t *n, const void *b, size_t len)
{
    if (cap - *n < len)
        return -1;
    memcpy(out + *n, b, len);
    *n += len;
    return 0;
}

long http_proxy_rewrite(const uint8_t *in, const struct http_proxy_request *r, uint8_t *out,
                        size_t cap)
{
    size_t n = 0;
    int bad = http_put(out, cap, &n, in, r->method_len) | http_put(out, cap, &n, " ", 1);

    if (r->path_len)
        bad |= http_put(out, cap, &n, in + r->path_off, r->path_len);
    else
        bad |= http_put(out, cap, &n, "/", 1);
    bad |= http_put(out, cap, &n, " ", 1) | http_put(out, cap, &n, in + r->version_off, 8) |
           http_put(out, cap, &n, "\r\n", 2);
    if (!r->has_host) /* RFC 9112 section 3.2: a request without Host takes the URI's */
        bad |= http_put(out, cap, &n, "Host: ", 6) |
               http_put(out, cap, &n, in + r->authority_off, r->authority_len) |
               http_put(out, cap, &n, "\r\n", 2);
    for (int k = 0; k < r->n_header; k++)
        if (!r->header[k].drop)
            bad |= http_put(out, cap, &n, in + r->header[k].off, r->header[k].len);
    bad |= http_put(out, cap, &n, "Connection: close\r\n\r\n", 21);
    return bad ? -1 : (long)n;
}

static const char *http_reason(int status)
{
    switch (status) {
    case 200:
        return "Connection established";
    case 400:
        return "Bad Request";
    case 403:
        return "Forbidden";
    case 407:
        return "Proxy Authentication Required";
    case 414:
        return "URI Too Long";
    case 431:
        return "Request Header Fields Too Large";
    case 504:
        return "Gateway Timeout";
    default:
        return "Bad Gateway";
    }
}

int http_proxy_write_status(uint8_t *out, size_t cap, int status)
{
    int n;
    if (status == 200)
        n = snprintf((char *)out, cap, "HTTP/1.1 200 %s\r\n\r\n", http_reason(200));
    else if (status == 403) /* a person behind a browser should learn who refused, and why */
        n = snprintf((char *)out, cap,
                     "HTTP/1.1 403 %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n%s",
                     http_reason(403), strlen(HTTP_PROXY_FORBIDDEN_BODY),
                     HTTP_PROXY_FORBIDDEN_BODY);
    else
        n = snprintf((char *)out, cap,
                     "HTTP/1.1 %d %s\r\n%sContent-Length: 0\r\nConnection: close\r\n\r\n", status,
                     http_reason(status),
                     status == 407 ? "Proxy-Authenticate: Basic realm=\"reuseproxy\"\r\n" : "");
    return n < 0 || (size_t)n >= cap ? -1 : n;
}

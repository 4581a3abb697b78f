/* http_proxy.h: an HTTP/1.x proxy request (RFC 9112, RFC 9110 section 9.3.6 CONNECT) as a pure
 * parser over bytes, and the writers of what the local role sends on: no I/O inside. The local
 * port tells it apart from SOCKS by the first byte (handshake.c). Two request forms are served:
 *   CONNECT host:port HTTP/1.1        authority-form: a tunnel (HTTPS);
 *   GET http://host[:port]/path ...   absolute-form: one plain HTTP request, rewritten to
 *                                     origin-form with the hop-by-hop headers dropped. */
#ifndef RP_HTTP_PROXY_H
#define RP_HTTP_PROXY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "netaddr.h"

/* Limits of what a client may send before its request is refused (issue 16, bad input): a
 * request line longer than this is answered 414; more header lines, or more header bytes, 431. */
#define HTTP_PROXY_LINE_MAX 8192
#define HTTP_PROXY_HEADERS_MAX 100
#define HTTP_PROXY_HEADER_BYTES_MAX 16384
/* The longest head (request line, headers, blank line) that can be accepted. */
#define HTTP_PROXY_HEAD_MAX (HTTP_PROXY_LINE_MAX + HTTP_PROXY_HEADER_BYTES_MAX + 2)
/* What http_proxy_rewrite adds at most to a head: a Host line and "Connection: close". */
#define HTTP_PROXY_REWRITE_EXTRA (6 + 255 + 8 + 2 + 19)

enum http_proxy_result { HTTP_PROXY_NEED_MORE = 0, HTTP_PROXY_DONE = 1, HTTP_PROXY_BAD = -1 };

struct http_proxy_header {
    uint32_t off;      /* the line's first byte in the input */
    uint32_t len;      /* the line, its CRLF (or LF) included */
    uint32_t name_len; /* the name before ':' */
    bool drop;         /* hop-by-hop: not forwarded (RFC 9110 section 7.6.1) */
};

struct http_proxy_request {
    bool connect;                 /* CONNECT (a tunnel), else an absolute-form request */
    struct netaddr_target target; /* the host and port to connect to */
    size_t head_len;              /* request line + headers + blank line */
    /* absolute-form: the pieces http_proxy_rewrite puts together */
    size_t method_len;         /* the method at offset 0 */
    size_t path_off, path_len; /* origin-form: "/path?query" (empty: "/") */
    size_t authority_off, authority_len;
    size_t version_off; /* "HTTP/1.x", 8 bytes */
    bool has_host;      /* a Host header was sent */
    /* Proxy-Authorization: Basic <credentials>: the credentials' span, auth_len 0 when absent
     * (or another scheme) */
    size_t auth_off, auth_len;
    struct http_proxy_header header[HTTP_PROXY_HEADERS_MAX];
    int n_header;
    int status; /* HTTP_PROXY_BAD: the status to answer with (400, 414, 431) */
};

/* Parses the head at buf[0..len). HTTP_PROXY_DONE with r filled (r->head_len is what it used),
 * HTTP_PROXY_NEED_MORE, or HTTP_PROXY_BAD with r->status set: a malformed line, a target that is
 * neither authority-form for CONNECT nor an http:// absolute URI, or a limit above exceeded (as
 * soon as the bytes received exceed it, complete or not). */
int http_proxy_parse(const uint8_t *buf, size_t len, struct http_proxy_request *r);
/* Writes the absolute-form request r (parsed from in) as the origin server must receive it:
 * origin-form request line, a Host header when the client sent none, the headers but the
 * hop-by-hop ones (Connection and the headers it names, Proxy-Connection, Keep-Alive,
 * Proxy-Authorization, TE, Upgrade), and "Connection: close": one request per connection (the
 * client opens a new one for its next request). Returns its length, or -1 if cap is too small. */
long http_proxy_rewrite(const uint8_t *in, const struct http_proxy_request *r, uint8_t *out,
                        size_t cap);
/* Writes a status reply: 200 "Connection established" for a CONNECT, or an error (400, 403
 * with a short text body, 407 with Proxy-Authenticate: Basic, 414, 431, 502, 504) that closes
 * the connection. Returns its length (under 160 bytes), or -1 if cap is too small. */
int http_proxy_write_status(uint8_t *out, size_t cap, int status);

#endif

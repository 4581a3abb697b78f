/* test_http_proxy.c: the HTTP proxy request parser and writers (http_proxy.h) against the forms
 * of RFC 9112 section 3.2 and the limits of issue 16 (a line over 8 KiB, header floods). */
#include "autoconfig.h"

#include "http_proxy.h"
#include "unit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int parse(const char *text, struct http_proxy_request *r)
{
    return http_proxy_parse((const uint8_t *)text, strlen(text), r);
}

static char *rewrite(const char *text)
{
    static struct http_proxy_request r;
    static char out[4096];
    if (parse(text, &r) != HTTP_PROXY_DONE)
        return NULL;
    long n = http_proxy_rewrite((const uint8_t *)text, &r, (uint8_t *)out, sizeof out - 1);
    if (n < 0)
        return NULL;
    out[n] = '\0';
    return out;
}

TEST(test_http_proxy_connect_authority_form)
{
    static const char req[] = "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"
                              "\x16\x03";
    struct http_proxy_request r;
    CHECK_INT(parse(req, &r), HTTP_PROXY_DONE);
    CHECK(r.connect);
    CHECK_STR(r.target.host, "example.com");
    CHECK_INT(r.target.port, 443);
    CHECK_INT(r.head_len, strlen(req) - 2); /* the TLS bytes after it are not the head's */
}

TEST(test_http_proxy_connect_ipv6_literal)
{
    struct http_proxy_request r;
    CHECK_INT(parse("CONNECT [::1]:8443 HTTP/1.1\r\n\r\n", &r), HTTP_PROXY_DONE);
    CHECK_STR(r.target.host, "::1");
    CHECK_INT(r.target.port, 8443);
    CHECK(r.target.addrlen > 0);
}

TEST(test_http_proxy_connect_needs_a_port)
{
    struct http_proxy_request r;
    CHECK_INT(parse("CONNECT example.com HTTP/1.1\r\n\r\n", &r), HTTP_PROXY_BAD);
    CHECK_INT(r.status, 400);
}

TEST(test_http_proxy_absolute_form_default_port)
{
    struct http_proxy_request r;
    CHECK_INT(parse("GET http://example.com/a?b=1 HTTP/1.1\r\nHost: example.com\r\n\r\n", &r),
              HTTP_PROXY_DONE);
    CHECK(!r.connect);
    CHECK_STR(r.target.host, "example.com");
    CHECK_INT(r.target.port, 80);
}

TEST(test_http_proxy_every_prefix_needs_more)
{
    static const char req[] = "GET http://127.0.0.1:8080/x HTTP/1.1\r\nHost: h\r\n\r\n";
    struct http_proxy_request r;
    for (size_t k = 0; k < strlen(req); k++)
        CHECK_INT(http_proxy_parse((const uint8_t *)req, k, &r), HTTP_PROXY_NEED_MORE);
    CHECK_INT(parse(req, &r), HTTP_PROXY_DONE);
    CHECK_INT(r.target.port, 8080);
}

TEST(test_http_proxy_rewrite_origin_form_drops_hop_by_hop)
{
    const char *out = rewrite("GET http://example.com:8080/path?q HTTP/1.1\r\n"
                              "Host: example.com:8080\r\n"
                              "Proxy-Connection: keep-alive\r\n"
                              "Proxy-Authorization: Basic dTpw\r\n"
                              "Connection: keep-alive, X-Secret\r\n"
                              "X-Secret: 1\r\n"
                              "Keep-Alive: 300\r\n"
                              "Accept: */*\r\n"
                              "\r\n");
    CHECK(out != NULL);
    CHECK_STR(out, "GET /path?q HTTP/1.1\r\n"
                   "Host: example.com:8080\r\n"
                   "Accept: */*\r\n"
                   "Connection: close\r\n"
                   "\r\n");
}

TEST(test_http_proxy_rewrite_adds_host_and_root_path)
{
    const char *out = rewrite("HEAD http://a.test HTTP/1.0\r\n\r\n");
    CHECK(out != NULL);
    CHECK_STR(out, "HEAD / HTTP/1.0\r\nHost: a.test\r\nConnection: close\r\n\r\n");
}

TEST(test_http_proxy_basic_credentials_span)
{
    static const char req[] =
        "CONNECT h:1 HTTP/1.1\r\nproxy-authorization:  basic YWxpY2U6cHc=  \r\n\r\n";
    struct http_proxy_request r;
    CHECK_INT(parse(req, &r), HTTP_PROXY_DONE);
    CHECK_INT(r.auth_len, 12);
    CHECK_MEM(req + r.auth_off, "YWxpY2U6cHc=", 12);
    CHECK_INT(parse("CONNECT h:1 HTTP/1.1\r\nProxy-Authorization: Digest x\r\n\r\n", &r),
              HTTP_PROXY_DONE);
    CHECK_INT(r.auth_len, 0);
}

TEST(test_http_proxy_refuses_malformed)
{
    static const char *const bad[] = {
        "GET /origin-form HTTP/1.1\r\n\r\n",         /* not a proxy request */
        "GET https://example.com/ HTTP/1.1\r\n\r\n", /* no TLS to the origin: use CONNECT */
        "GET http://user@example.com/ HTTP/1.1\r\n\r\n",
        "GET http://example.com/ HTTP/2.0\r\n\r\n",
        "GET  http://example.com/ HTTP/1.1\r\n\r\n",
        "CONNECT h:1 HTTP/1.1\r\nNo colon\r\n\r\n",
        "CONNECT h:1 HTTP/1.1\r\nName : value\r\n\r\n",
        "CONNECT h:1 HTTP/1.1\r\nA: b\r\n folded\r\n\r\n",
        "CONNECT h:1 HTTP/1.1\r\nA: b\x01\r\n\r\n",
        "CONNECT h:99999 HTTP/1.1\r\n\r\n",
    };
    struct http_proxy_request r;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK_INT(parse(bad[i], &r), HTTP_PROXY_BAD);
        CHECK_INT(r.status, 400);
    }
}

/* Issue 16, bad input: a request line over 8 KiB is refused (414) as soon as it is too long,
 * whether or not its end has arrived. */
TEST(test_http_proxy_request_line_over_8k)
{
    size_t n = HTTP_PROXY_LINE_MAX + 100;
    char *req = malloc(n + 1);
    struct http_proxy_request r;
    CHECK(req != NULL);
    memcpy(req, "GET http://a.test/", 18);
    memset(req + 18, 'x', n - 18);
    req[n] = '\0';
    CHECK_INT(parse(req, &r), HTTP_PROXY_BAD); /* no end of line yet */
    CHECK_INT(r.status, 414);
    memcpy(req + n - 13, " HTTP/1.1\r\n\r\n", 13);
    CHECK_INT(parse(req, &r), HTTP_PROXY_BAD);
    CHECK_INT(r.status, 414);
    free(req);
}

static char *header_flood(int count, size_t value_len)
{
    size_t cap = 64 + (size_t)count * (value_len + 8);
    char *req = malloc(cap), *p = req;
    p += sprintf(p, "CONNECT h:1 HTTP/1.1\r\n");
    for (int i = 0; i < count; i++) {
        p += sprintf(p, "X: ");
        memset(p, 'v', value_len);
        p += value_len;
        p += sprintf(p, "\r\n");
    }
    sprintf(p, "\r\n");
    return req;
}

/* Issue 16, bad input: more than 100 headers, or more than 16 KiB of them: 431. */
TEST(test_http_proxy_header_floods)
{
    struct http_proxy_request r;
    char *req = header_flood(HTTP_PROXY_HEADERS_MAX, 1);
    CHECK_INT(parse(req, &r), HTTP_PROXY_DONE);
    free(req);
    req = header_flood(HTTP_PROXY_HEADERS_MAX + 1, 1);
    CHECK_INT(parse(req, &r), HTTP_PROXY_BAD);
    CHECK_INT(r.status, 431);
    free(req);
    req = header_flood(20, 1000); /* 20 KB in 20 headers */
    CHECK_INT(parse(req, &r), HTTP_PROXY_BAD);
    CHECK_INT(r.status, 431);
    req[10000] = '\0'; /* refused before the headers end, too */
    CHECK_INT(parse(req, &r), HTTP_PROXY_NEED_MORE);
    free(req);
    req = header_flood(1, HTTP_PROXY_HEADER_BYTES_MAX + 10);
    req[22 + HTTP_PROXY_HEADER_BYTES_MAX + 5] = '\0'; /* no end of line yet */
    CHECK_INT(parse(req, &r), HTTP_PROXY_BAD);
    CHECK_INT(r.status, 431);
    free(req);
}

TEST(test_http_proxy_status_replies)
{
    uint8_t out[256];
    int n = http_proxy_write_status(out, sizeof out, 200);
    CHECK_INT(n, strlen("HTTP/1.1 200 Connection established\r\n\r\n"));
    CHECK_MEM(out, "HTTP/1.1 200 Connection established\r\n\r\n", (size_t)n);
    n = http_proxy_write_status(out, sizeof out, 407);
    CHECK(n > 0);
    out[n] = '\0';
    CHECK_CONTAINS((char *)out, "HTTP/1.1 407 Proxy Authentication Required\r\n");
    CHECK_CONTAINS((char *)out, "Proxy-Authenticate: Basic realm=\"reuseproxy\"\r\n");
    CHECK_CONTAINS((char *)out, "Connection: close\r\n\r\n");
    CHECK_INT(http_proxy_write_status(out, 10, 502), -1);
    /* 403: a body that says who refused, its length declared */
    n = http_proxy_write_status(out, sizeof out, 403);
    CHECK(n > 0 && n < 160);
    out[n] = '\0';
    const char *body = strstr((char *)out, "\r\n\r\n");
    CHECK(body != NULL);
    char want[64];
    snprintf(want, sizeof want, "Content-Length: %zu\r\n", strlen(body + 4));
    CHECK_CONTAINS((char *)out, want);
    CHECK_CONTAINS(body, "access list");
}

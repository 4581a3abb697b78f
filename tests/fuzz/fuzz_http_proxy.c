/* fuzz_http_proxy.c: the HTTP proxy request parser (http_proxy.h) and the rewrite of an
 * absolute-form request, which the local role runs on whatever a local client sends when its
 * first byte is a letter.
 *
 * Promises:
 *  - every span the parser reports (head, headers, path, authority, credentials) lies inside
 *    the input, and a refusal carries one of the documented statuses;
 *  - the limits hold: an accepted head has a request line of at most HTTP_PROXY_LINE_MAX
 *    bytes, at most HTTP_PROXY_HEADERS_MAX headers and HTTP_PROXY_HEADER_BYTES_MAX bytes of
 *    them;
 *  - the parser gives the same answer however the bytes were split: every shorter prefix of an
 *    accepted head is "need more", and a refused prefix stays refused;
 *  - the rewrite of an accepted absolute-form head fits in head + HTTP_PROXY_REWRITE_EXTRA,
 *    parses again to the same target, and carries none of the hop-by-hop headers. */
#include "autoconfig.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fuzz.h"
#include "http_proxy.h"

static void check_spans(const struct http_proxy_request *r, size_t len)
{
    FUZZ_CHECK(r->head_len > 0 && r->head_len <= len && r->head_len <= HTTP_PROXY_HEAD_MAX);
    FUZZ_CHECK(r->n_header >= 0 && r->n_header <= HTTP_PROXY_HEADERS_MAX);
    size_t bytes = 0;
    for (int k = 0; k < r->n_header; k++) {
        const struct http_proxy_header *h = &r->header[k];
        FUZZ_CHECK(h->off + h->len <= r->head_len && h->name_len > 0 && h->name_len < h->len);
        bytes += h->len;
    }
    FUZZ_CHECK(bytes <= HTTP_PROXY_HEADER_BYTES_MAX + 2);
    FUZZ_CHECK(r->auth_off + r->auth_len <= r->head_len);
    FUZZ_CHECK(r->authority_off + r->authority_len <= r->head_len);
    FUZZ_CHECK(r->path_off + r->path_len <= r->head_len);
    FUZZ_CHECK(r->version_off + 8 <= r->head_len && r->version_off <= HTTP_PROXY_LINE_MAX);
    FUZZ_CHECK(r->target.port != 0 && r->target.host[0] != '\0');
}

/* The head's lines, each name compared to the hop-by-hop names. */
static void check_no_hop_by_hop(const uint8_t *out, size_t n)
{
    static const char *const hop[] = {
        "Proxy-Connection:", "Proxy-Authorization:", "Keep-Alive:", NULL};
    const uint8_t *p = out, *end = out + n;
    while (p < end) {
        const uint8_t *lf = memchr(p, '\n', (size_t)(end - p));
        if (!lf)
            break;
        for (int j = 0; hop[j]; j++)
            FUZZ_CHECK((size_t)(lf - p) < strlen(hop[j]) ||
                       strncasecmp((const char *)p, hop[j], strlen(hop[j])) != 0);
        p = lf + 1;
    }
}

static void check_rewrite(const uint8_t *buf, const struct http_proxy_request *r)
{
    size_t cap = r->head_len + HTTP_PROXY_REWRITE_EXTRA;
    uint8_t *out = malloc(cap);
    struct http_proxy_request *again = malloc(sizeof *again);
    FUZZ_CHECK(out && again);
    long n = http_proxy_rewrite(buf, r, out, cap);
    FUZZ_CHECK(n > 0 && (size_t)n <= cap);
    check_no_hop_by_hop(out, (size_t)n);
    /* origin-form does not parse as a proxy request, but its head is whole: it ends with the
     * blank line */
    FUZZ_CHECK(n >= 4 && memcmp(out + n - 4, "\r\n\r\n", 4) == 0);
    FUZZ_CHECK(http_proxy_rewrite(buf, r, out, (size_t)n - 1) == -1);
    free(again);
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *buf = fuzz_dup(data, size);
    struct http_proxy_request *r = malloc(sizeof *r), *r2 = malloc(sizeof *r2);
    FUZZ_CHECK(r && r2);

    int res = http_proxy_parse(buf, size, r);
    FUZZ_CHECK(res == HTTP_PROXY_NEED_MORE || res == HTTP_PROXY_DONE || res == HTTP_PROXY_BAD);
    if (res == HTTP_PROXY_BAD)
        FUZZ_CHECK(r->status == 400 || r->status == 414 || r->status == 431);
    if (res == HTTP_PROXY_DONE) {
        check_spans(r, size);
        if (!r->connect)
            check_rewrite(buf, r);
    }
    /* prefixes, a bounded sample of them: every byte near the start, then a stride */
    size_t limit = res == HTTP_PROXY_DONE ? r->head_len : size;
    for (size_t k = 0; k < limit; k += k < 64 ? 1 : 1 + k / 16) {
        int q = http_proxy_parse(buf, k, r2);
        if (res == HTTP_PROXY_DONE)
            FUZZ_CHECK(q == HTTP_PROXY_NEED_MORE);
        if (q == HTTP_PROXY_BAD)
            FUZZ_CHECK(res == HTTP_PROXY_BAD);
    }
    free(r2);
    free(r);
    free(buf);
    return 0;
}

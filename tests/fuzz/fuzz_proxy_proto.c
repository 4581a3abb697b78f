/* fuzz_proxy_proto.c: the PROXY protocol header parser (proxy_proto_parse, versions 1 and 2),
 * which a server with "proxy_protocol" runs on the first bytes of every connection from its
 * balancer, before anything else.
 *
 * Promises checked:
 *  - the result is -1, 0 (incomplete) or the header length, which fits in the input, and a v1
 *    header is at most 107 bytes;
 *  - arrival order does not matter: every shorter prefix of a good header is "incomplete", a
 *    prefix already refused stays refused, and bytes after a header do not change it;
 *  - a header with an address gives an IPv4 or IPv6 source and destination of the same family. */
#include "autoconfig.h"

#include <netinet/in.h>
#include <string.h>

#include "fuzz.h"
#include "proxy_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *buf = fuzz_dup(data, size);
    struct proxy_proto_header h, again;
    long n = proxy_proto_parse(buf, size, &h);

    FUZZ_CHECK(n >= -1 && n <= (long)size);
    if (n > 0) {
        FUZZ_CHECK(h.version == 1 || h.version == 2);
        if (h.version == 1)
            FUZZ_CHECK(n <= PROXY_PROTO_V1_MAX);
        else
            FUZZ_CHECK(n >= PROXY_PROTO_V2_HEAD && n <= PROXY_PROTO_V2_HEAD + 65535);
        if (h.has_address) {
            FUZZ_CHECK(h.src.ss_family == AF_INET || h.src.ss_family == AF_INET6);
            FUZZ_CHECK(h.dst.ss_family == h.src.ss_family);
        }
        /* what follows the header is the client's: it does not change the verdict */
        FUZZ_CHECK(proxy_proto_parse(buf, (size_t)n, &again) == n);
    }
    /* Prefixes (a bounded number, so that a 64 KiB v2 header stays fast). */
    size_t limit = size > 600 ? 600 : size;
    for (size_t k = 0; k < limit; k++) {
        long m = proxy_proto_parse(buf, k, &again);
        if (n > 0 && k < (size_t)n)
            FUZZ_CHECK(m == 0);
        if (m < 0)
            FUZZ_CHECK(n < 0);
        if (m > 0)
            FUZZ_CHECK(m == n);
    }
    free(buf);
    return 0;
}

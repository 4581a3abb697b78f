/* fuzz_ss2022_request.c: the SIP022 TCP first flight as a server parses it
 * (ss2022_request_parse: salt, optional identity header, fixed header, variable header), run on
 * every connection from anyone.
 *
 * Input: [method][mode][rest].
 *   mode 0, wire: rest is what a client sent. It is parsed whole, then every prefix of it.
 *   mode 1, build: rest gives the fields of a request (padding length, then the payload); it is
 *               built with ss2022_request_build, parsed back, and parsed again after one bit
 *               flipped (at a position taken from the input) and with the last byte cut off.
 * Promises: consumed never passes the input; a prefix of a request that parsed says NEED_MORE
 * or fails the same way the whole did, never DONE with other fields; what was built parses back
 * to its target, padding and payload; any changed bit fails; a cut request is NEED_MORE. */
#include "autoconfig.h"

#include <string.h>

#include "fuzz.h"
#include "ss2022.h"

#define NOW 1700000000ull

static const struct ss2022_psk *fuzz_psk(enum ss2022_method m)
{
    static struct ss2022_psk keys[SS2022_METHOD_COUNT];
    struct ss2022_psk *k = &keys[m];
    if (k->len == 0) {
        k->method = m;
        k->len = ss2022_method_info(m)->key_len;
        for (size_t i = 0; i < k->len; i++)
            k->bytes[i] = (uint8_t)(0x5a ^ (i * 13));
    }
    return k;
}

/* Parses a heap copy of exactly len bytes; returns the verdict and fills *r and *consumed. */
static int parse_copy(const struct ss2022_psk *k, const uint8_t *in, size_t len,
                      struct ss2022_request *r, size_t *consumed, uint8_t **copy_out)
{
    struct ss2022_server_keys keys = {.psk = k};
    struct ss_stream s;
    uint8_t *copy = fuzz_dup(in, len);

    memset(&s, 0, sizeof s);
    memset(r, 0, sizeof *r);
    *consumed = 0;
    int v = ss2022_request_parse(&s, &keys, copy, len, NOW, r, consumed);
    FUZZ_CHECK(v == SS2022_NEED_MORE || v == SS2022_DONE || v == SS2022_BAD);
    if (v == SS2022_DONE) {
        FUZZ_CHECK(*consumed <= len);
        FUZZ_CHECK(r->payload_len == 0 ||
                   (r->payload >= copy && r->payload + r->payload_len <= copy + len));
        FUZZ_CHECK(r->padding_len <= SS2022_MAX_PADDING);
        FUZZ_CHECK(ss2022_timestamp_ok(r->timestamp, NOW));
    }
    if (v == SS2022_BAD)
        FUZZ_CHECK(r->error != SS2022_OK);
    ss_stream_free(&s);
    if (copy_out)
        *copy_out = copy;
    else
        free(copy);
    return v;
}

static void mode_wire(const struct ss2022_psk *k, const uint8_t *in, size_t n)
{
    struct ss2022_request whole, part;
    size_t used, used_part;
    int v = parse_copy(k, in, n, &whole, &used, NULL);
    if (v == SS2022_NEED_MORE)
        return;
    /* a prefix that is whole enough to decide decides the same way */
    for (size_t cut = 0; cut < n; cut += 1 + cut / 8) {
        int p = parse_copy(k, in, cut, &part, &used_part, NULL);
        if (p == SS2022_DONE) {
            FUZZ_CHECK(v == SS2022_DONE && used_part == used);
            FUZZ_CHECK(part.padding_len == whole.padding_len);
        }
        if (p == SS2022_BAD)
            FUZZ_CHECK(v == SS2022_BAD && part.error == whole.error);
    }
}

static void mode_build(const struct ss2022_psk *k, struct fuzz_input *in)
{
    uint8_t salt[SS2022_MAX_KEY], out[2 * SS2022_MAX_KEY + 1024 + 900 + 128];
    struct netaddr_target t;
    struct ss_stream s;
    size_t padding = (fuzz_u8(in) | (size_t)fuzz_u8(in) << 8) % (SS2022_MAX_PADDING + 1);
    size_t plen = in->n > 1024 ? 1024 : in->n;

    memset(&s, 0, sizeof s);
    for (size_t i = 0; i < sizeof salt; i++)
        salt[i] = (uint8_t)(i * 7 + plen);
    FUZZ_CHECK(netaddr_target_from_string("127.0.0.1:8080", &t) == 0);
    if (plen == 0 && padding == 0)
        padding = 1; /* padding or payload is required (SIP022 3.1.3) */
    struct ss2022_request_spec spec = {.keys = k, .nkeys = 1, .salt = salt, .timestamp = NOW,
                                       .target = &t, .padding_len = padding,
                                       .payload = in->p, .payload_len = plen};
    long len = ss2022_request_build(&s, &spec, out, sizeof out);
    ss_stream_free(&s);
    FUZZ_CHECK(len > 0 && (size_t)len <= sizeof out);

    struct ss2022_request r;
    size_t used;
    uint8_t *copy;
    FUZZ_CHECK(parse_copy(k, out, (size_t)len, &r, &used, &copy) == SS2022_DONE);
    FUZZ_CHECK(used == (size_t)len && r.padding_len == padding && r.payload_len == plen);
    FUZZ_CHECK(plen == 0 || memcmp(r.payload, in->p, plen) == 0);
    FUZZ_CHECK(r.target.port == t.port && memcmp(r.salt, salt, k->len) == 0);
    free(copy);

    size_t pos = (padding * 131 + plen) % (size_t)len;
    out[pos] ^= (uint8_t)(1u << (pos % 8));
    FUZZ_CHECK(parse_copy(k, out, (size_t)len, &r, &used, NULL) == SS2022_BAD);
    out[pos] ^= (uint8_t)(1u << (pos % 8));
    FUZZ_CHECK(parse_copy(k, out, (size_t)len - 1, &r, &used, NULL) == SS2022_NEED_MORE);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_input in = {data, size};
    enum ss2022_method m = (enum ss2022_method)(fuzz_u8(&in) % SS2022_METHOD_COUNT);
    uint8_t mode = fuzz_u8(&in) % 2;
    const struct ss2022_psk *k = fuzz_psk(m);

    if (in.n > 70000)
        return 0;
    if (mode == 0)
        mode_wire(k, in.p, in.n);
    else
        mode_build(k, &in);
    return 0;
}

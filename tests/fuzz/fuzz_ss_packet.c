/* fuzz_ss_packet.c: the UDP packet decoder (ss_packet_open, SIP004 UDP: salt, sealed payload,
 * tag), run by a server on every datagram from anyone, followed by the address header parser on
 * what it opened, as udp_relay.c does.
 *
 * Input: [method][mode][rest].
 *   mode 0, wire: rest is a datagram, opened as received.
 *   mode 1, seal: rest is a plaintext; it is sealed, opened back, and then opened again after
 *                 each of: one bit flipped (at a position taken from the plaintext), the last
 *                 byte cut off, everything but salt + tag cut off.
 * Promises: an opened payload lies inside the packet and is exactly packet - salt - tag long;
 * a sealed packet opens to its plaintext; a packet no longer than salt + tag, or with any bit
 * changed, never opens. */
#include "autoconfig.h"

#include <string.h>

#include "fuzz.h"
#include "netaddr.h"
#include "ss_packet.h"

#define PASSWORD "reuseproxy-fuzz"

static struct ss_packet_ctx *fuzz_ctx(enum crypto_method m)
{
    static struct crypto_key keys[CRYPTO_SIP004_COUNT];
    static struct ss_packet_ctx ctx[CRYPTO_SIP004_COUNT];
    static bool ready[CRYPTO_SIP004_COUNT];

    if (!ready[m]) {
        FUZZ_CHECK(crypto_key_from_password(&keys[m], m, PASSWORD) == 0);
        FUZZ_CHECK(ss_packet_ctx_init(&ctx[m], &keys[m]) == 0);
        ready[m] = true;
    }
    return &ctx[m];
}

/* Opens pkt[0..len) (a heap copy of exactly len bytes) and checks the result; returns the
 * plaintext length or -1. */
static long open_checked(struct ss_packet_ctx *p, const uint8_t *pkt, size_t len,
                         uint8_t *plain_out)
{
    size_t overhead = ss_packet_overhead(p->key);
    uint8_t *copy = fuzz_dup(pkt, len);
    uint8_t *plain = NULL;
    long n = ss_packet_open(p, copy, len, &plain);

    FUZZ_CHECK(n >= -1);
    if (len <= overhead)
        FUZZ_CHECK(n == -1);
    if (n >= 0) {
        FUZZ_CHECK((size_t)n == len - overhead);
        FUZZ_CHECK(plain == copy + (overhead - CRYPTO_TAG_LEN));
        /* what udp_relay.c does next */
        struct netaddr_target t;
        int h = netaddr_parse_header(plain, (size_t)n, &t);
        FUZZ_CHECK(h <= n);
        if (plain_out)
            memcpy(plain_out, plain, (size_t)n);
    }
    free(copy);
    return n;
}

static void mode_seal(struct ss_packet_ctx *p, const uint8_t *in, size_t n)
{
    size_t overhead = ss_packet_overhead(p->key);
    uint8_t *pkt = malloc(n + overhead);
    uint8_t *back = malloc(n + 1);
    FUZZ_CHECK(pkt && back);

    long sealed = ss_packet_seal(p, in, n, pkt);
    if (n == 0) {
        FUZZ_CHECK(sealed == -1); /* no address header: never sent */
        goto out;
    }
    FUZZ_CHECK(sealed == (long)(n + overhead));
    FUZZ_CHECK(open_checked(p, pkt, (size_t)sealed, back) == (long)n);
    FUZZ_CHECK(memcmp(back, in, n) == 0);

    size_t pos = 0;
    for (size_t i = 0; i < n; i++)
        pos = pos * 31 + in[i];
    pos %= (size_t)sealed;
    pkt[pos] ^= (uint8_t)(1u << (pos % 8));
    FUZZ_CHECK(open_checked(p, pkt, (size_t)sealed, NULL) == -1);
    pkt[pos] ^= (uint8_t)(1u << (pos % 8));
    FUZZ_CHECK(open_checked(p, pkt, (size_t)sealed - 1, NULL) == -1);
    FUZZ_CHECK(open_checked(p, pkt, overhead, NULL) == -1);
out:
    free(pkt);
    free(back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_input in = {data, size};
    enum crypto_method m = (enum crypto_method)(fuzz_u8(&in) % CRYPTO_SIP004_COUNT);
    uint8_t mode = fuzz_u8(&in) % 2;
    struct ss_packet_ctx *p = fuzz_ctx(m);

    if (in.n > 65535)
        return 0; /* no datagram is larger */
    if (mode == 0)
        open_checked(p, in.p, in.n, NULL);
    else
        mode_seal(p, in.p, in.n);
    return 0;
}

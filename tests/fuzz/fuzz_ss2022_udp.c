/* fuzz_ss2022_udp.c: SIP022 UDP packets as a server receives them from anyone (ss2022_udp_peek,
 * then ss2022_udp_open), and the per-session sliding replay window (ss2022_window_*).
 *
 * Input: [method][mode][rest].
 *   mode 0, wire: rest is a datagram, peeked and opened as received.
 *   mode 1, seal: rest is a payload; a client packet is sealed, opened back, then opened again
 *               after one bit flipped and with the last byte cut off.
 *   mode 2, window: rest is a list of 16-bit id steps (forward or back) run through a window.
 * Promises: an opened payload lies inside the packet; a sealed packet opens to its fields; a
 * changed bit or a cut packet never opens; the window accepts an id at most once, always
 * accepts a new highest id, agrees with its own check, and never accepts an id more than
 * SS2022_WINDOW_SIZE behind the highest. */
#include "autoconfig.h"

#include <string.h>

#include "fuzz.h"
#include "ss2022.h"

#define NOW 1700000000ull
#define SESSION 0x0102030405060708ull

/* The server's side of one session of each method: keys as udp_relay would hold them. */
static struct ss2022_udp_keys *fuzz_keys(enum ss2022_method m)
{
    static struct ss2022_udp_keys keys[SS2022_METHOD_COUNT];
    static bool ready[SS2022_METHOD_COUNT];
    struct ss2022_udp_keys *k = &keys[m];

    if (!ready[m]) {
        const struct ss2022_method_info *info = ss2022_method_info(m);
        struct ss2022_psk psk = {.method = m, .len = info->key_len};
        uint8_t sid[8], subkey[SS2022_MAX_KEY];
        for (size_t i = 0; i < psk.len; i++)
            psk.bytes[i] = (uint8_t)(0xa5 ^ (i * 29));
        for (int i = 0; i < 8; i++)
            sid[i] = (uint8_t)(SESSION >> (56 - 8 * i));
        k->method = m;
        if (m == SS2022_CHACHA20_POLY1305) {
            k->xchacha = crypto_xchacha_new(psk.bytes);
            FUZZ_CHECK(k->xchacha != NULL);
        } else {
            ss2022_session_subkey(&psk, sid, sizeof sid, subkey);
            k->block = crypto_block_new(psk.bytes, psk.len);
            k->aead = crypto_aead_new(info->aead, subkey);
            FUZZ_CHECK(k->block && k->aead);
        }
        ready[m] = true;
    }
    return k;
}

/* Opens a heap copy of exactly len bytes; returns the verdict, *p filled. */
static int open_copy(const struct ss2022_udp_keys *k, const uint8_t *pkt, size_t len,
                     struct ss2022_udp_packet *p, uint8_t *payload_out)
{
    uint8_t *copy = fuzz_dup(pkt, len);
    uint64_t sid, pid;

    memset(p, 0, sizeof *p);
    if (k->method != SS2022_CHACHA20_POLY1305)
        (void)ss2022_udp_peek(k, copy, len, &sid, &pid, NULL);
    int v = ss2022_udp_open(k, copy, len, 0, SS2022_TYPE_CLIENT, NOW, p);
    FUZZ_CHECK(v == SS2022_DONE || v == SS2022_BAD);
    if (v == SS2022_DONE) {
        FUZZ_CHECK(p->payload_len == 0 ||
                   (p->payload >= copy && p->payload + p->payload_len <= copy + len));
        FUZZ_CHECK(p->padding_len <= SS2022_MAX_PADDING);
        if (payload_out && p->payload_len)
            memcpy(payload_out, p->payload, p->payload_len);
    } else {
        FUZZ_CHECK(p->error != SS2022_OK);
    }
    free(copy);
    return v;
}

static void mode_seal(const struct ss2022_udp_keys *k, const uint8_t *in, size_t n)
{
    size_t cap = n + 1024;
    uint8_t *pkt = malloc(cap), *back = malloc(n + 1), nonce[SS2022_UDP_NONCE];
    struct ss2022_udp_packet p = {.session_id = SESSION, .packet_id = n, .type = SS2022_TYPE_CLIENT,
                                  .timestamp = NOW, .payload = in, .payload_len = n};
    FUZZ_CHECK(pkt && back);
    FUZZ_CHECK(netaddr_target_from_string("127.0.0.1:53", &p.target) == 0);
    for (size_t i = 0; i < sizeof nonce; i++)
        nonce[i] = (uint8_t)(i + n);

    long len = ss2022_udp_seal(k, &p, NULL, nonce, pkt, cap);
    FUZZ_CHECK(len > 0 && (size_t)len <= cap);
    struct ss2022_udp_packet got;
    FUZZ_CHECK(open_copy(k, pkt, (size_t)len, &got, back) == SS2022_DONE);
    FUZZ_CHECK(got.payload_len == n && (n == 0 || memcmp(back, in, n) == 0));
    FUZZ_CHECK(got.session_id == SESSION && got.packet_id == n && got.target.port == 53);

    size_t pos = (n * 131 + 7) % (size_t)len;
    pkt[pos] ^= (uint8_t)(1u << (pos % 8));
    FUZZ_CHECK(open_copy(k, pkt, (size_t)len, &got, NULL) == SS2022_BAD);
    pkt[pos] ^= (uint8_t)(1u << (pos % 8));
    FUZZ_CHECK(open_copy(k, pkt, (size_t)len - 1, &got, NULL) == SS2022_BAD);
    free(pkt);
    free(back);
}

static void mode_window(struct fuzz_input *in)
{
    struct ss2022_window w;
    uint64_t id = 1u << 20, top = 0;
    bool any = false;
    /* ids accepted so far, for the at-most-once promise (steps are bounded, so few) */
    uint64_t seen[512];
    size_t nseen = 0;

    memset(&w, 0, sizeof w);
    while (in->n >= 2 && nseen < sizeof seen / sizeof seen[0]) {
        unsigned step = fuzz_u16(in);
        uint64_t d = step & 0x7fff;
        id = step & 0x8000 ? (id > d ? id - d : 1) : id + d; /* stays >= 1, far from wrapping */
        bool check = ss2022_window_check(&w, id);
        bool accepted = ss2022_window_accept(&w, id);
        FUZZ_CHECK(check == accepted);
        bool before = false;
        for (size_t i = 0; i < nseen; i++)
            before = before || seen[i] == id;
        if (before)
            FUZZ_CHECK(!accepted);
        if (!any || id > top)
            FUZZ_CHECK(accepted);
        if (any && id < top && top - id > SS2022_WINDOW_SIZE)
            FUZZ_CHECK(!accepted);
        if (accepted) {
            seen[nseen++] = id;
            FUZZ_CHECK(!ss2022_window_check(&w, id));
            if (!any || id > top)
                top = id;
            any = true;
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_input in = {data, size};
    enum ss2022_method m = (enum ss2022_method)(fuzz_u8(&in) % SS2022_METHOD_COUNT);
    uint8_t mode = fuzz_u8(&in) % 3;

    if (in.n > 65535)
        return 0; /* no datagram is larger */
    if (mode == 0)
        open_copy(fuzz_keys(m), in.p, in.n, &(struct ss2022_udp_packet){0}, NULL);
    else if (mode == 1)
        mode_seal(fuzz_keys(m), in.p, in.n > 8192 ? 8192 : in.n);
    else
        mode_window(&in);
    return 0;
}

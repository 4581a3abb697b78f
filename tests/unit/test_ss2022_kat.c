/* test_ss2022_kat.c: byte compatibility with sing-shadowsocks (the library of sing-box and
 * Xray) without the peer: first flights ss2022ref's tunnel sent on loopback (ss2022_kat.h, made
 * by tests/tools/ss2022-capture.py) are parsed by the codec as a server would, and must yield
 * the target, payload, salt or session id and timestamp recorded at capture time. The tunnel
 * sent "GET /kat HTTP/1.0\r\n\r\n" (TCP) and "kat datagram" (UDP) to 127.0.0.1:9. */
#include <stdint.h>
#include <stdlib.h>

#include "ss2022.h"
#include "unit.h"

struct kat_tcp {
    const char *name, *method, *psks; /* PSK, or iPSK:uPSK */
    uint64_t now, timestamp;
    const char *salt, *wire;
};
struct kat_udp {
    const char *name, *method, *psks;
    uint64_t now, timestamp, session_id;
    const char *wire;
};

#include "ss2022_kat.h"

static const char kat_payload[] = "GET /kat HTTP/1.0\r\n\r\n";

/* Splits "a:b" into one or two keys. Returns how many, or -1. */
static int kat_keys(const char *method, const char *psks, struct ss2022_psk keys[2])
{
    char copy[128];
    int m = ss2022_method_by_name(method);
    snprintf(copy, sizeof copy, "%s", psks);
    char *colon = strchr(copy, ':');
    if (colon)
        *colon = '\0';
    if (m < 0 || ss2022_psk_from_base64(&keys[0], (enum ss2022_method)m, copy) != 0)
        return -1;
    if (!colon)
        return 1;
    return ss2022_psk_from_base64(&keys[1], (enum ss2022_method)m, colon + 1) == 0 ? 2 : -1;
}

static const struct ss2022_psk *kat_find_user(void *ctx, const uint8_t hash[16], void **user)
{
    uint8_t want[16];
    ss2022_psk_hash(ctx, want);
    *user = ctx;
    return memcmp(want, hash, 16) == 0 ? ctx : NULL;
}

TEST(test_ss2022_kat_tcp_requests_from_sing_shadowsocks)
{
    CHECK(sizeof kat_tcp / sizeof kat_tcp[0] >= 5);
    for (size_t i = 0; i < sizeof kat_tcp / sizeof kat_tcp[0]; i++) {
        const struct kat_tcp *v = &kat_tcp[i];
        struct ss2022_psk keys[2];
        static uint8_t wire[4096];
        uint8_t salt[32];
        struct ss2022_request r;
        struct ss_stream s = {0};
        size_t consumed = 0;
        int n = kat_keys(v->method, v->psks, keys);
        CHECK(n > 0);
        long len = unit_hex(v->wire, wire, sizeof wire);
        CHECK(len > 0);
        struct ss2022_server_keys sk = {&keys[0], n == 2 ? kat_find_user : NULL, &keys[1]};
        int ret = ss2022_request_parse(&s, &sk, wire, (size_t)len, v->now, &r, &consumed);
        ss_stream_free(&s);
        if (ret != SS2022_DONE)
            unit_fail(__FILE__, __LINE__, "%s: %d (%s)", v->name, ret, ss2022_error_name(r.error));
        CHECK_INT(ret, SS2022_DONE);
        CHECK_INT(consumed, len); /* the tunnel sent the header and nothing more */
        CHECK_INT(r.timestamp, v->timestamp);
        CHECK_INT(unit_hex(v->salt, salt, sizeof salt), keys[0].len);
        CHECK_MEM(r.salt, salt, keys[0].len);
        CHECK_STR(r.target.host, "127.0.0.1");
        CHECK_INT(r.target.port, 9);
        CHECK_INT(r.payload_len, strlen(kat_payload));
        CHECK_MEM(r.payload, kat_payload, r.payload_len);
        CHECK(r.key == &keys[n - 1]);
        /* sing-shadowsocks pads short first payloads (under 900 bytes). */
        CHECK(r.padding_len >= 1 && r.padding_len <= SS2022_MAX_PADDING);
    }
}

TEST(test_ss2022_kat_udp_packets_from_sing_shadowsocks)
{
    for (size_t i = 0; i < sizeof kat_udp / sizeof kat_udp[0]; i++) {
        const struct kat_udp *v = &kat_udp[i];
        struct ss2022_psk keys[2];
        uint8_t wire[2048], sid_bytes[8], subkey[32];
        uint64_t sid, pid;
        struct ss2022_udp_packet p;
        CHECK_INT(kat_keys(v->method, v->psks, keys), 1);
        long len = unit_hex(v->wire, wire, sizeof wire);
        CHECK(len > 0);
        struct ss2022_udp_keys uk = {keys[0].method, crypto_block_new(keys[0].bytes, keys[0].len),
                                     NULL, NULL};
        CHECK(uk.block != NULL);
        CHECK_INT(ss2022_udp_peek(&uk, wire, (size_t)len, &sid, &pid, NULL), 0);
        CHECK_INT(sid, v->session_id);
        CHECK_INT(pid, 0); /* the first packet of the session */
        for (int b = 0; b < 8; b++)
            sid_bytes[b] = (uint8_t)(sid >> (56 - 8 * b));
        ss2022_session_subkey(&keys[0], sid_bytes, 8, subkey);
        uk.aead = crypto_aead_new(ss2022_method_info(keys[0].method)->aead, subkey);
        CHECK(uk.aead != NULL);
        CHECK_INT(ss2022_udp_open(&uk, wire, (size_t)len, 0, SS2022_TYPE_CLIENT, v->now, &p),
                  SS2022_DONE);
        CHECK_INT(p.timestamp, v->timestamp);
        CHECK_STR(p.target.host, "127.0.0.1");
        CHECK_INT(p.target.port, 9);
        CHECK_INT(p.payload_len, 12);
        CHECK_MEM(p.payload, "kat datagram", 12);
        crypto_aead_free(uk.aead);
        crypto_block_free(uk.block);
    }
}

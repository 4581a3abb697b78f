/* ss_packet.h: shadowsocks AEAD datagrams (SIP004 UDP): [salt][AEAD(payload)][tag], nonce zero,
 * a fresh salt and subkey per packet. payload = address header + data. Pure functions. */
#ifndef RP_SS_PACKET_H
#define RP_SS_PACKET_H

#include <stddef.h>
#include <stdint.h>

#include "crypto.h"

/* Scratch a worker keeps so packets need no allocation: one AEAD context re-keyed per packet. */
struct ss_packet_ctx {
    const struct crypto_key *key;
    struct crypto_aead *aead;
};
int ss_packet_ctx_init(struct ss_packet_ctx *p, const struct crypto_key *key);
void ss_packet_ctx_free(struct ss_packet_ctx *p);

/* Bytes a packet adds to its plaintext: salt + tag. */
size_t ss_packet_overhead(const struct crypto_key *key);

/* Seals plaintext in[0..len) into out (out may not overlap in), with a random salt.
 * out must hold len + ss_packet_overhead() bytes. Returns the packet length or -1 (also for
 * len 0: a packet without an address header, which shadowsocks-libev refuses). */
long ss_packet_seal(struct ss_packet_ctx *p, const uint8_t *in, size_t len, uint8_t *out);
/* Opens pkt[0..len) in place: on success *plain points into pkt and the plaintext length is
 * returned; -1 when the packet is too short (up to salt + tag bytes: an empty payload is
 * refused too) or fails authentication. */
long ss_packet_open(struct ss_packet_ctx *p, uint8_t *pkt, size_t len, uint8_t **plain);

#endif

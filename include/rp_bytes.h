/* rp_bytes.h: integers in a wire byte order, read and written a byte at a time, so neither the
 * host's order nor alignment matters: big-endian as SIP022 carries its lengths, timestamps,
 * session ids and packet ids (SIP022 sections 3.1 and 3.2), and the little-endian 32-bit words
 * BLAKE3 (spec section 2.1) and ChaCha (RFC 8439 section 2.1) take their input as. */
#ifndef RP_BYTES_H
#define RP_BYTES_H

#include <stdint.h>

static inline void rp_put_be16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static inline uint16_t rp_get_be16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static inline void rp_put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static inline uint64_t rp_get_be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

static inline uint32_t rp_get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline void rp_put_le32(uint8_t *p, uint32_t w)
{
    p[0] = (uint8_t)w;
    p[1] = (uint8_t)(w >> 8);
    p[2] = (uint8_t)(w >> 16);
    p[3] = (uint8_t)(w >> 24);
}

#endif

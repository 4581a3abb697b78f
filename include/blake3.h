/* blake3.h: BLAKE3 in the two modes Shadowsocks 2022 uses: derive_key (SIP022 section 2.2, the
 * session and identity subkeys) and the plain hash (SIP023, the identity header's PSK hash).
 * Any input and output length; one call per digest, no state kept between calls.
 *
 * src/blake3.c is a small portable implementation of the BLAKE3 specification (compression
 * function, 1 KiB chunks, binary tree, extendable output). When configure finds a system
 * BLAKE3 library (pkg-config libblake3, RP_HAVE_LIBBLAKE3) the same two calls run on it. */
#ifndef RP_BLAKE3_H
#define RP_BLAKE3_H

#include <stddef.h>
#include <stdint.h>

/* BLAKE3's default output length; longer outputs are the same stream continued. */
#define BLAKE3_OUT_LEN 32

/* out[0..outlen) = BLAKE3 derive_key(context, material[0..len)). context is a NUL-terminated
 * string (its NUL is not hashed). */
void blake3_derive_key(const char *context, const uint8_t *material, size_t len, uint8_t *out,
                       size_t outlen);

/* out[0..outlen) = BLAKE3 hash(in[0..len)). */
void blake3_hash(const uint8_t *in, size_t len, uint8_t *out, size_t outlen);

/* Only src/blake3.c asks for the system library's declarations (its own header has the same
 * name as this one; #include_next skips this directory to find it). */
#if defined(RP_BLAKE3_IMPL) && defined(RP_HAVE_LIBBLAKE3)
#include_next <blake3.h>
#endif

#endif

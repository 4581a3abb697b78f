/* ss_stream.h: shadowsocks AEAD stream framing (SIP004). A stream starts with the sender's salt;
 * then chunks: [encrypted 2-byte big-endian length][tag][encrypted payload][tag], payload at most
 * 0x3FFF bytes, nonce a little-endian counter from zero, incremented after every seal/open.
 * Pure functions over caller-owned buffers: no I/O, no allocation per chunk, crypto in place. */
#ifndef RP_SS_STREAM_H
#define RP_SS_STREAM_H

#include <stddef.h>
#include <stdint.h>

#include "crypto.h"

#define SS_CHUNK_MAX 0x3FFF
#define SS_LEN_FIELD 2
/* Bytes in front of a chunk's payload: the sealed length and its tag. */
#define SS_CHUNK_HEAD (SS_LEN_FIELD + CRYPTO_TAG_LEN)
/* Bytes a chunk adds to its payload. */
#define SS_CHUNK_OVERHEAD (SS_CHUNK_HEAD + CRYPTO_TAG_LEN)
/* The largest chunk on the wire. */
#define SS_CHUNK_WIRE_MAX (SS_CHUNK_MAX + SS_CHUNK_OVERHEAD)

/* Payload bytes of the chunks a bulk sender seals: 127 * 128 rather than the maximum 0x3FFF.
 * libcrypto's ChaCha20-Poly1305 runs about 15 % faster on lengths that are a multiple of 128
 * bytes (its wide code takes no partial-block tail); AES-GCM does not care, the 34 bytes of
 * chunk overhead grow by 0.2 %, and every peer accepts any length up to 0x3FFF. */
#define SS_SEAL_CHUNK (127 * 128)
/* Room one chunk of SS_SEAL_CHUNK payload bytes takes on the wire: a slot, see below. */
#define SS_SEAL_SLOT (SS_SEAL_CHUNK + SS_CHUNK_OVERHEAD)

/* pending_len when no length is waiting for its payload. */
#define SS_PENDING_NONE (-1)
/* pending_len once an open failed (or a seal failed half-way): every later call fails. */
#define SS_STREAM_DEAD (-2)

/* One direction of one connection. Zero it (or call ss_stream_init on a zeroed one) before
 * first use. */
struct ss_stream {
    struct crypto_aead *aead;          /* keyed with the session subkey */
    uint8_t nonce[CRYPTO_NONCE_LEN];
    int pending_len;                   /* open side: decrypted length of the next chunk, or -1 */
    unsigned chunk_max;                /* largest payload length: SS_CHUNK_MAX (SIP004), or
                                        * 0xFFFF (SIP022, set by ss2022_stream_init) */
};

/* Derives the subkey from (key, salt), keys s->aead (allocating it on first use, re-keying it
 * after; re-allocating if the method changed), resets the nonce and pending_len, and sets
 * chunk_max to SS_CHUNK_MAX. salt holds the method's salt_len bytes. Returns 0 or -1. */
int ss_stream_init(struct ss_stream *s, const struct crypto_key *key, const uint8_t *salt);
/* Frees the AEAD context; the struct is zeroed and may be initialised again. */
void ss_stream_free(struct ss_stream *s);

/* Seals one chunk in place. chunk points at SS_CHUNK_HEAD bytes of room, then payload_len
 * (1..SS_CHUNK_MAX) plaintext bytes, then CRYPTO_TAG_LEN bytes of room. Returns the chunk's wire
 * length (payload_len + SS_CHUNK_OVERHEAD), or -1. */
int ss_stream_seal_chunk(struct ss_stream *s, uint8_t *chunk, size_t payload_len);

/* Seals len plaintext bytes from in (any length) into out as consecutive chunks (copying;
 * out must not overlap in). out must hold ss_stream_sealed_size(len) bytes. len 0 writes
 * nothing. Returns bytes written or -1. */
long ss_stream_seal(struct ss_stream *s, const uint8_t *in, size_t len, uint8_t *out);
/* Wire size of len plaintext bytes cut into full chunks; SIZE_MAX when that overflows. */
size_t ss_stream_sealed_size(size_t len);

/* Seals, where they lie, len plaintext bytes that were read into consecutive slots of buf:
 * slot i starts at i * SS_SEAL_SLOT, its payload at SS_CHUNK_HEAD inside it, and every slot but
 * the last is full (SS_SEAL_CHUNK bytes, as one readv() over the slots' payloads leaves them).
 * The chunks come out back to back from buf on. Returns their wire length, or -1. */
long ss_stream_seal_slots(struct ss_stream *s, uint8_t *buf, size_t len);

enum ss_open_result { SS_OPEN_NEED_MORE = 0, SS_OPEN_CHUNK = 1, SS_OPEN_ERROR = -1 };
/* Opens the chunk at the start of buf[0..len) in place. On SS_OPEN_CHUNK sets *consumed to the
 * chunk's wire length and *payload / *payload_len to the plaintext inside buf. SS_OPEN_NEED_MORE:
 * the chunk is not complete yet (the length may have been decrypted and remembered in
 * pending_len; call again with the same buffer start once more bytes arrived). SS_OPEN_ERROR: a
 * tag failed or the length is out of range (0, or above chunk_max); the stream is unusable. */
int ss_stream_open_chunk(struct ss_stream *s, uint8_t *buf, size_t len, size_t *consumed,
                         uint8_t **payload, size_t *payload_len);

#endif

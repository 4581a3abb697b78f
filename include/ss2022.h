/* ss2022.h: the Shadowsocks 2022 codec (SIP022, with SIP023 identity headers), as pure
 * functions over caller-owned bytes: no I/O, no globals, the clock passed in. Keys and
 * subkeys (section 2); the TCP request and response headers (3.1); the UDP packets of the AES
 * methods (3.2) and of 2022-blake3-chacha20-poly1305 (4.1); the packet-id sliding window
 * (3.2.4). Parsers return SS2022_NEED_MORE / SS2022_DONE / SS2022_BAD, like ss_stream.c and
 * socks5.c, and say why in an enum ss2022_error so callers can count refusals.
 *
 * src/ss2022.c has keys and TCP, src/ss2022_udp.c UDP and the window. */
#ifndef RP_SS2022_H
#define RP_SS2022_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "crypto.h"
#include "netaddr.h"
#include "ss_stream.h"

enum ss2022_method {
    SS2022_AES_128_GCM = 0,
    SS2022_AES_256_GCM,
    SS2022_CHACHA20_POLY1305,
    SS2022_METHOD_COUNT
};

struct ss2022_method_info {
    const char *name;        /* "2022-blake3-aes-128-gcm", ... */
    size_t key_len;          /* PSK = salt = subkey length: 16, 32, 32 */
    enum crypto_method aead; /* the TCP chunk AEAD (and the AES methods' UDP body AEAD) */
    bool eih;                /* SIP023 identity headers are defined (AES methods only) */
};

/* Method by name, case-insensitive (issue 14); -1 if unknown. */
int ss2022_method_by_name(const char *name);
/* The codec's method for a method of crypto.c's table, or -1 when it is not SIP022. */
int ss2022_method_of(enum crypto_method m);
const struct ss2022_method_info *ss2022_method_info(enum ss2022_method m);

#define SS2022_MAX_KEY 32
/* Standard base64 of a 32-byte key with padding, and its NUL. */
#define SS2022_KEY_B64_MAX 45

/* A pre-shared key (SIP022 2.1): the server PSK, an identity PSK or a user PSK. */
struct ss2022_psk {
    enum ss2022_method method;
    size_t len;
    uint8_t bytes[SS2022_MAX_KEY];
};

/* Base64 (standard or URL-safe, padding optional) of exactly the method's key length. Returns
 * 0, or -1 (bad base64 or another length; the caller names the expected length from
 * ss2022_method_info). */
int ss2022_psk_from_base64(struct ss2022_psk *k, enum ss2022_method m, const char *b64);
/* The PSK of a key derived by the configuration (crypto_key_from_base64 of a SIP022 method).
 * Returns 0, or -1 when the key is not a SIP022 method's. */
int ss2022_psk_from_key(struct ss2022_psk *psk, const struct crypto_key *key);
/* A new random key for a method named as in the config, printed as standard base64 with
 * padding into out (SS2022_KEY_B64_MAX bytes). Returns 0, or -1 for an unknown method or no
 * randomness. For `reuseproxy --genkey METHOD`. */
int ss2022_genkey(const char *method, char out_b64[SS2022_KEY_B64_MAX]);
/* Standard base64 with padding of len bytes into out (4 * ceil(len / 3) + 1 bytes). */
void ss2022_base64_encode(const uint8_t *in, size_t len, char *out);

/* session_subkey = BLAKE3 derive_key("shadowsocks 2022 session subkey", key || salt), where
 * the salt is key->len bytes (TCP) or the 8-byte session id (UDP, section 3.2.1). out holds
 * key->len bytes. */
void ss2022_session_subkey(const struct ss2022_psk *key, const uint8_t *salt, size_t salt_len,
                           uint8_t *out);
/* The first 16 bytes of BLAKE3(psk): how a SIP023 identity header names the next layer. */
void ss2022_psk_hash(const struct ss2022_psk *psk, uint8_t out[CRYPTO_BLOCK_LEN]);

/* Section 3.1.3: more than 30 seconds apart, in either direction, is a replay. */
#define SS2022_TIMESTAMP_WINDOW 30
bool ss2022_timestamp_ok(uint64_t timestamp, uint64_t now);

enum ss2022_result { SS2022_NEED_MORE = 0, SS2022_DONE = 1, SS2022_BAD = -1 };

/* Why a parser said SS2022_BAD. */
enum ss2022_error {
    SS2022_OK = 0,
    SS2022_ERR_AUTH,      /* a tag did not verify: wrong key, or not SIP022 */
    SS2022_ERR_TYPE,      /* the header type is not the one this direction carries */
    SS2022_ERR_TIMESTAMP, /* more than 30 s off */
    SS2022_ERR_LENGTH,    /* a length field outside the spec's bounds */
    SS2022_ERR_ADDRESS,   /* the SOCKS address is malformed or does not fit */
    SS2022_ERR_PADDING,   /* padding over 900 bytes, or neither padding nor payload */
    SS2022_ERR_SALT,      /* the response echoes another request salt */
    SS2022_ERR_USER,      /* the identity header names no known user */
    SS2022_ERR_SESSION,   /* UDP: a packet of another session than expected */
    SS2022_ERR_INTERNAL,  /* allocation or crypto library failure */
};
const char *ss2022_error_name(enum ss2022_error e);

/* ---- TCP (section 3.1) ---- */

#define SS2022_TYPE_CLIENT 0
#define SS2022_TYPE_SERVER 1
#define SS2022_MAX_PADDING 900
/* A request's fixed-length header: type, timestamp, variable header length. */
#define SS2022_REQUEST_FIXED 11
/* Payload length bound of SIP022 chunks (the 0x3FFF cap of SIP004 does not apply). */
#define SS2022_CHUNK_MAX 0xFFFF
/* Size of a request whose salt, identity headers and header chunks are all given. */
#define SS2022_REQUEST_SIZE(key_len, identities, varlen)                                           \
    ((key_len) + 16 * (identities) + SS2022_REQUEST_FIXED + 16 + (varlen) + 16)

/* Keys a stream's AEAD with the session subkey of (key, salt) and resets its nonce: the same
 * struct ss_stream as SIP004, another subkey derivation. Returns 0 or -1. */
int ss2022_stream_init(struct ss_stream *s, const struct ss2022_psk *key, const uint8_t *salt);

/* What a client sends first. keys[0..nkeys): the identity PSKs then the user PSK
 * (iPSK1:...:uPSK as in the client's password), or just the PSK; the stream is keyed with the
 * last one. */
struct ss2022_request_spec {
    const struct ss2022_psk *keys;
    size_t nkeys;
    const uint8_t *salt; /* key_len random bytes */
    uint64_t timestamp;
    const struct netaddr_target *target;
    size_t padding_len; /* 0..900; at least 1 when there is no payload */
    const uint8_t *payload;
    size_t payload_len;
};
/* Builds salt | identity headers | sealed fixed header | sealed variable header into out and
 * keys s for the rest of the request stream (nonce 2). Returns the length, or -1 when a bound
 * is broken (padding, payload so long the variable header passes 0xFFFF, keys of several
 * lengths, identity headers on chacha) or out is too small. */
long ss2022_request_build(struct ss_stream *s, const struct ss2022_request_spec *spec, uint8_t *out,
                          size_t cap);

/* A server's keys. With find_user (SIP023, AES methods), psk is the identity PSK and every
 * request carries one identity header, which find_user maps, from the first 16 bytes of the
 * BLAKE3 hash of the user's PSK, to that PSK (and the caller's user) or NULL; without it psk is
 * the only key. */
struct ss2022_server_keys {
    const struct ss2022_psk *psk;
    const struct ss2022_psk *(*find_user)(void *ctx, const uint8_t hash[CRYPTO_BLOCK_LEN],
                                          void **user);
    void *ctx;
};

/* What the server learned from a request. */
struct ss2022_request {
    uint8_t salt[SS2022_MAX_KEY]; /* the request salt, to echo and to remember (replay) */
    size_t salt_len;
    uint64_t timestamp;
    struct netaddr_target target;
    size_t padding_len;
    const uint8_t *payload; /* inside the caller's buffer, decrypted in place */
    size_t payload_len;
    const struct ss2022_psk *key; /* the key the stream runs on: the PSK or the user's */
    void *user;                   /* find_user's user, or NULL */
    enum ss2022_error error;      /* why SS2022_BAD */
};
/* Parses a request from the start of buf[0..len) (call again from the start with more bytes
 * after SS2022_NEED_MORE: nothing is changed until the header is complete). SS2022_DONE: s is
 * keyed (nonce 2), *consumed covers the salt and both header chunks, the variable header was
 * decrypted in place. Checks (section 3.1.3): type 0, timestamp within 30 s of now, variable
 * header holds the address, the padding length and the padding (at most 900), and padding or
 * payload is present. The salt is not checked against earlier ones: that is the caller's
 * replay store. */
int ss2022_request_parse(struct ss_stream *s, const struct ss2022_server_keys *keys, uint8_t *buf,
                         size_t len, uint64_t now, struct ss2022_request *r, size_t *consumed);

/* The response's salt and sealed fixed header: salt | sealed {type 1, timestamp, request salt,
 * length of the first payload}. */
#define SS2022_RESPONSE_HEAD(key_len) (2 * (key_len) + 1 + 8 + 2 + CRYPTO_TAG_LEN)
/* Writes the response head (SS2022_RESPONSE_HEAD bytes) for a first payload of payload_len
 * (1..0xFFFF) bytes into out and keys s (nonce 1: the payload's). Returns its length or -1. */
long ss2022_response_head(struct ss_stream *s, const struct ss2022_psk *key, const uint8_t *salt,
                          const uint8_t *request_salt, uint64_t timestamp, size_t payload_len,
                          uint8_t *out);
/* Seals len bytes at payload in place with the stream's next nonce, the tag after them: the
 * response's first payload, whose length the head carries. Returns 0 or -1. */
int ss2022_stream_seal_payload(struct ss_stream *s, uint8_t *payload, size_t len);
/* Builds the response start: salt | sealed {type 1, timestamp, request salt, length} | sealed
 * payload (1..0xFFFF bytes: the header always travels with data, section 3.1.3). Keys s
 * (nonce 2). Returns the length or -1. */
long ss2022_response_build(struct ss_stream *s, const struct ss2022_psk *key, const uint8_t *salt,
                           const uint8_t *request_salt, uint64_t timestamp, const uint8_t *payload,
                           size_t payload_len, uint8_t *out, size_t cap);

struct ss2022_response {
    uint64_t timestamp;
    const uint8_t *payload; /* inside the caller's buffer, decrypted in place */
    size_t payload_len;
    enum ss2022_error error;
};
/* Parses a response start from buf[0..len) like ss2022_request_parse: type 1, timestamp
 * within 30 s, the echoed salt equal to request_salt (all of it), then the first payload
 * chunk. */
int ss2022_response_parse(struct ss_stream *s, const struct ss2022_psk *key,
                          const uint8_t *request_salt, uint8_t *buf, size_t len, uint64_t now,
                          struct ss2022_response *r, size_t *consumed);

/* ---- UDP (sections 3.2 and 4.1) ---- */

/* The AES methods' separate header, and the chacha method's nonce. */
#define SS2022_UDP_SEPARATE 16
#define SS2022_UDP_NONCE 24

/* The keys of one side of UDP. AES: block is keyed with the key that encrypts the separate
 * header (the server PSK / identity PSK; an EIH client's first iPSK), aead is the caller's
 * context keyed with the packet's session subkey (ss2022_session_subkey over the session id),
 * which the caller caches per session as section 3.2.4 suggests. Chacha: xchacha, keyed with
 * the PSK. */
struct ss2022_udp_keys {
    enum ss2022_method method;
    struct crypto_block *block;
    struct crypto_aead *aead;
    struct crypto_xchacha *xchacha;
};

/* One packet's fields (section 3.2.3 / 4.1). */
struct ss2022_udp_packet {
    uint64_t session_id, packet_id;
    int type; /* SS2022_TYPE_CLIENT or SS2022_TYPE_SERVER */
    uint64_t timestamp;
    uint64_t client_session_id; /* server-to-client only */
    size_t padding_len;
    struct netaddr_target target;
    const uint8_t *payload;
    size_t payload_len;
    enum ss2022_error error;
};

/* Seals a packet into out. AES: p's ids and the body; with identity (an EIH client), the
 * identity header for the next layer: the first 16 bytes of the BLAKE3 hash of the user PSK
 * (ss2022_psk_hash), XORed with the separate header and encrypted under keys->block (SIP023).
 * Chacha: nonce is the packet's 24 random bytes. Returns the length or -1. */
long ss2022_udp_seal(const struct ss2022_udp_keys *keys, const struct ss2022_udp_packet *p,
                     const uint8_t identity[CRYPTO_BLOCK_LEN],
                     const uint8_t nonce[SS2022_UDP_NONCE], uint8_t *out, size_t cap);

/* AES methods: decrypts the separate header (session id, packet id) so the caller can find the
 * session, check the window and key keys->aead; with identity non-NULL (an EIH server) also
 * recovers the 16-byte PSK hash from the identity header. Does not authenticate. Returns 0, or
 * -1 for a short packet or a chacha method. */
int ss2022_udp_peek(const struct ss2022_udp_keys *keys, const uint8_t *pkt, size_t len,
                    uint64_t *session_id, uint64_t *packet_id, uint8_t identity[CRYPTO_BLOCK_LEN]);

/* Opens pkt[0..len) in place and parses its body: the type must be want_type, the timestamp
 * within 30 s of now, padding at most 900, the address whole. identities: identity headers
 * after the separate header (1 on an EIH server, else 0). SS2022_DONE or SS2022_BAD (p->error);
 * the replay window is the caller's, after this authenticated the packet. */
int ss2022_udp_open(const struct ss2022_udp_keys *keys, uint8_t *pkt, size_t len, size_t identities,
                    int want_type, uint64_t now, struct ss2022_udp_packet *p);

/* The sliding-window packet-id filter (RFC 6479): a ring of 64-bit words; ids more than
 * SS2022_WINDOW_SIZE behind the highest seen are refused, as is any id seen before. */
#define SS2022_WINDOW_WORDS 64
#define SS2022_WINDOW_SIZE ((SS2022_WINDOW_WORDS - 1) * 64)
struct ss2022_window {
    uint64_t top; /* highest id accepted so far */
    bool started;
    uint64_t bits[SS2022_WINDOW_WORDS];
};
/* Whether id may be accepted (not a replay, not behind the window). Changes nothing. */
bool ss2022_window_check(const struct ss2022_window *w, uint64_t id);
/* Records id once its packet authenticated; returns false (and changes nothing) when
 * ss2022_window_check would refuse it. */
bool ss2022_window_accept(struct ss2022_window *w, uint64_t id);

#endif

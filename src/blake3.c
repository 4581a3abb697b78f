/* blake3.c: BLAKE3 derive_key and hash, written from the BLAKE3 specification (O'Connor,
 * Aumasson, Neves, Wilcox-O'Hearn, "BLAKE3: one function, fast everywhere", 2020): the
 * compression function (section 2.2), 1024-byte chunks of 64-byte blocks (2.3), the binary tree
 * of parent nodes (2.4), the key derivation mode's two hashes (2.3, "derive_key") and the
 * extendable output of the root node (2.6).
 *
 * Shadowsocks 2022 hashes 32 to 64 bytes per session, so this is the plain portable form: one
 * compression at a time, no SIMD. The tree is still complete (a chaining-value stack merged as
 * chunks complete, spec section 5.1.2), so any input length hashes correctly and the official
 * test vectors up to 100 KiB pass. With a system libblake3 the calls forward to it instead. */
#ifdef HAVE_CONFIG_H
#include "autoconfig.h"
#endif

#define RP_BLAKE3_IMPL
#include "blake3.h"
#include "rp_bytes.h"

#include <string.h>

#ifdef RP_HAVE_LIBBLAKE3

void blake3_derive_key(const char *context, const uint8_t *material, size_t len, uint8_t *out,
                       size_t outlen)
{
    blake3_hasher h;
    blake3_hasher_init_derive_key(&h, context);
    blake3_hasher_update(&h, material, len);
    blake3_hasher_finalize(&h, out, outlen);
}

void blake3_hash(const uint8_t *in, size_t len, uint8_t *out, size_t outlen)
{
    blake3_hasher h;
    blake3_hasher_init(&h);
    blake3_hasher_update(&h, in, len);
    blake3_hasher_finalize(&h, out, outlen);
}

#else

#define B3_BLOCK_LEN 64
#define B3_CHUNK_LEN 1024
/* A stack entry per tree level: 2^54 chunks of 1 KiB are 2^64 bytes, more than size_t holds. */
#define B3_MAX_DEPTH 54

/* Domain flags of the compression function (spec table 3). */
enum {
    B3_CHUNK_START = 1u << 0,
    B3_CHUNK_END = 1u << 1,
    B3_PARENT = 1u << 2,
    B3_ROOT = 1u << 3,
    B3_DERIVE_KEY_CONTEXT = 1u << 5,
    B3_DERIVE_KEY_MATERIAL = 1u << 6,
};

/* The IV is SHA-256's (spec section 2.1). */
static const uint32_t b3_iv[8] = {0x6A09E667, 0xBB67AE85, 0x3C6EF372, 0xA54FF53A,
                                  0x510E527F, 0x9B05688C, 0x1F83D9AB, 0x5BE0CD19};

/* The message word permutation applied between rounds (spec table 2). */
static const uint8_t b3_perm[16] = {2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8};

static uint32_t b3_rotr(uint32_t x, int n)
{
    return (x >> n) | (x << (32 - n));
}

/* The quarter-round G (spec section 2.2), mixing message words x and y into one column or
 * diagonal of the state. */
static void b3_g(uint32_t *v, int a, int b, int c, int d, uint32_t x, uint32_t y)
{
    v[a] += v[b] + x;
    v[d] = b3_rotr(v[d] ^ v[a], 16);
    v[c] += v[d];
    v[b] = b3_rotr(v[b] ^ v[c], 12);
    v[a] += v[b] + y;
    v[d] = b3_rotr(v[d] ^ v[a], 8);
    v[c] += v[d];
    v[b] = b3_rotr(v[b] ^ v[c], 7);
}

/* The compression function: 7 rounds over the 16-word state; out receives all 16 output words
 * (the first 8 are the chaining value, all 16 are a root's extended output). */
static void b3_compress(const uint32_t cv[8], const uint8_t block[B3_BLOCK_LEN], uint64_t counter,
                        uint32_t block_len, uint32_t flags, uint32_t out[16])
{
    uint32_t m[16], t[16], v[16];

    for (int i = 0; i < 16; i++)
        m[i] = rp_get_le32(block + 4 * i);
    memcpy(v, cv, 8 * sizeof v[0]);
    memcpy(v + 8, b3_iv, 4 * sizeof v[0]);
    v[12] = (uint32_t)counter;
    v[13] = (uint32_t)(counter >> 32);
    v[14] = block_len;
    v[15] = flags;
    for (int r = 0; r < 7; r++) {
        b3_g(v, 0, 4, 8, 12, m[0], m[1]);
        b3_g(v, 1, 5, 9, 13, m[2], m[3]);
        b3_g(v, 2, 6, 10, 14, m[4], m[5]);
        b3_g(v, 3, 7, 11, 15, m[6], m[7]);
        b3_g(v, 0, 5, 10, 15, m[8], m[9]);
        b3_g(v, 1, 6, 11, 12, m[10], m[11]);
        b3_g(v, 2, 7, 8, 13, m[12], m[13]);
        b3_g(v, 3, 4, 9, 14, m[14], m[15]);
        for (int i = 0; i < 16; i++)
            t[i] = m[b3_perm[i]];
        memcpy(m, t, sizeof m);
    }
    for (int i = 0; i < 8; i++) {
        out[i] = v[i] ^ v[i + 8];
        out[i + 8] = v[i + 8] ^ cv[i];
    }
}

/* A node's inputs before its last compression: kept rather than compressed at once, because
 * only the root gets B3_ROOT (and its extended output). */
struct b3_output {
    uint32_t cv[8];
    uint8_t block[B3_BLOCK_LEN];
    uint64_t counter;
    uint32_t block_len, flags;
};

struct b3_hasher {
    uint32_t key[8];
    uint32_t flags; /* the mode's flag, on every compression */
    /* The chunk being filled. */
    uint32_t chunk_cv[8];
    uint64_t chunk_counter;
    uint8_t block[B3_BLOCK_LEN];
    size_t block_len;
    unsigned blocks_done;
    /* Chaining values of completed subtrees, one per set bit of chunk_counter. */
    uint32_t stack[B3_MAX_DEPTH][8];
    unsigned depth;
};

static void b3_init(struct b3_hasher *h, const uint32_t key[8], uint32_t flags)
{
    memset(h, 0, sizeof *h);
    memcpy(h->key, key, sizeof h->key);
    memcpy(h->chunk_cv, key, sizeof h->chunk_cv);
    h->flags = flags;
}

static uint32_t b3_chunk_flags(const struct b3_hasher *h)
{
    return h->flags | (h->blocks_done == 0 ? B3_CHUNK_START : 0);
}

/* The pending output of the current chunk (its last, possibly partial, block). */
static void b3_chunk_output(const struct b3_hasher *h, struct b3_output *o)
{
    memcpy(o->cv, h->chunk_cv, sizeof o->cv);
    memset(o->block, 0, sizeof o->block);
    memcpy(o->block, h->block, h->block_len);
    o->counter = h->chunk_counter;
    o->block_len = (uint32_t)h->block_len;
    o->flags = b3_chunk_flags(h) | B3_CHUNK_END;
}

static void b3_parent_output(const struct b3_hasher *h, const uint32_t left[8],
                             const uint32_t right[8], struct b3_output *o)
{
    memcpy(o->cv, h->key, sizeof o->cv);
    for (int i = 0; i < 8; i++) {
        rp_put_le32(o->block + 4 * i, left[i]);
        rp_put_le32(o->block + 32 + 4 * i, right[i]);
    }
    o->counter = 0;
    o->block_len = B3_BLOCK_LEN;
    o->flags = h->flags | B3_PARENT;
}

static void b3_output_cv(const struct b3_output *o, uint32_t cv[8])
{
    uint32_t words[16];
    b3_compress(o->cv, o->block, o->counter, o->block_len, o->flags, words);
    memcpy(cv, words, 8 * sizeof cv[0]);
}

/* A chunk is complete: merge it into the stack. After chunk number n (from 1), as many
 * subtrees are merged as n has trailing zero bits, so the stack always holds one chaining
 * value per set bit of n (spec section 5.1.2). */
static void b3_push_chunk(struct b3_hasher *h, uint32_t cv[8])
{
    struct b3_output o;
    uint64_t total = h->chunk_counter + 1;

    while ((total & 1) == 0) {
        b3_parent_output(h, h->stack[--h->depth], cv, &o);
        b3_output_cv(&o, cv);
        total >>= 1;
    }
    memcpy(h->stack[h->depth++], cv, 8 * sizeof cv[0]);
}

static void b3_update(struct b3_hasher *h, const uint8_t *in, size_t len)
{
    while (len > 0) {
        /* A full chunk is only closed when more input follows: the last chunk may be the root. */
        if (h->blocks_done * B3_BLOCK_LEN + h->block_len == B3_CHUNK_LEN) {
            struct b3_output o;
            uint32_t cv[8];
            b3_chunk_output(h, &o);
            b3_output_cv(&o, cv);
            b3_push_chunk(h, cv);
            h->chunk_counter++;
            memcpy(h->chunk_cv, h->key, sizeof h->chunk_cv);
            h->block_len = 0;
            h->blocks_done = 0;
        }
        /* Likewise a full block is compressed only once more input follows. */
        if (h->block_len == B3_BLOCK_LEN) {
            uint32_t words[16];
            b3_compress(h->chunk_cv, h->block, h->chunk_counter, B3_BLOCK_LEN, b3_chunk_flags(h),
                        words);
            memcpy(h->chunk_cv, words, sizeof h->chunk_cv);
            h->blocks_done++;
            h->block_len = 0;
        }
        size_t n = B3_BLOCK_LEN - h->block_len;
        if (n > len)
            n = len;
        memcpy(h->block + h->block_len, in, n);
        h->block_len += n;
        in += n;
        len -= n;
    }
}

/* Folds the stack into the root node, then squeezes it: block i of the output is the root
 * compressed with counter i (spec section 2.6). */
static void b3_finalize(const struct b3_hasher *h, uint8_t *out, size_t outlen)
{
    struct b3_output o;
    uint32_t cv[8], words[16];
    uint8_t block[B3_BLOCK_LEN];

    b3_chunk_output(h, &o);
    for (unsigned i = h->depth; i > 0; i--) {
        b3_output_cv(&o, cv);
        b3_parent_output(h, h->stack[i - 1], cv, &o);
    }
    for (uint64_t counter = 0; outlen > 0; counter++) {
        b3_compress(o.cv, o.block, counter, o.block_len, o.flags | B3_ROOT, words);
        for (int i = 0; i < 16; i++)
            rp_put_le32(block + 4 * i, words[i]);
        size_t n = outlen < sizeof block ? outlen : sizeof block;
        memcpy(out, block, n);
        out += n;
        outlen -= n;
    }
}

/* derive_key: the context string is hashed first (its own mode flag, IV as key) into a context
 * key, which then keys the hash of the material (spec section 2.3). */
void blake3_derive_key(const char *context, const uint8_t *material, size_t len, uint8_t *out,
                       size_t outlen)
{
    struct b3_hasher h;
    uint8_t context_key[BLAKE3_OUT_LEN];
    uint32_t key[8];

    b3_init(&h, b3_iv, B3_DERIVE_KEY_CONTEXT);
    b3_update(&h, (const uint8_t *)context, strlen(context));
    b3_finalize(&h, context_key, sizeof context_key);
    for (int i = 0; i < 8; i++)
        key[i] = rp_get_le32(context_key + 4 * i);
    b3_init(&h, key, B3_DERIVE_KEY_MATERIAL);
    b3_update(&h, material, len);
    b3_finalize(&h, out, outlen);
    /* The material is key material: leave none of it behind on the stack. */
    memset(&h, 0, sizeof h);
    __asm__ __volatile__("" : : "r"(&h) : "memory");
}

void blake3_hash(const uint8_t *in, size_t len, uint8_t *out, size_t outlen)
{
    struct b3_hasher h;

    b3_init(&h, b3_iv, 0);
    b3_update(&h, in, len);
    b3_finalize(&h, out, outlen);
    memset(&h, 0, sizeof h);
    __asm__ __volatile__("" : : "r"(&h) : "memory");
}

#endif

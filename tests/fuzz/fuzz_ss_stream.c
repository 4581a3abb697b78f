/* fuzz_ss_stream.c: the AEAD chunk decoder (ss_stream_open_chunk, SIP004), the first code that
 * touches a stranger's bytes on a server.
 *
 * Random bytes almost never pass a tag, so besides feeding raw wire bytes the target builds
 * streams itself from a description in the input and checks the decoder against what it built.
 *
 * Input: [method][mode][step][rest]. method picks the cipher (every method has its own key,
 * derived from a fixed password); step picks how the wire is handed over: 0 all at once, 1..127
 * that many bytes at a time (1: byte by byte), 128..255 (step - 127) * 509 bytes at a time;
 * the decoder is driven as relay.c drives it (same buffer start until a chunk is complete, and
 * an extra call with no new bytes after every "need more").
 *   mode 0, wire:   rest is salt + chunks, opened as a server would.
 *   mode 1, frames: rest is a list of 4-byte frames [flags][length:2][fill]; each becomes one
 *                   chunk, sealed with ss_stream_seal_chunk() (flags & 4) or by hand with the raw
 *                   AEAD, so any length can be sent: flags & 8 takes the 16 bits as they are (0,
 *                   reserved bits, > 0x3FFF), otherwise length % 0x3FFF + 1. flags & 1 breaks the
 *                   length's tag, flags & 2 the payload's. The payload is fill, fill + 131, ...
 *   mode 2, seal:   rest is plaintext, sealed with ss_stream_seal() into full chunks.
 *   mode 3, flip:   as mode 2, after flipping one bit of the wire at the position given by the
 *                   first two bytes of rest.
 * Promises: a chunk comes out exactly when every byte of it is there and both tags verify, with
 * the payload that was sealed, whatever the split; the first bad length or tag gives
 * SS_OPEN_ERROR and every later call fails too; nothing is read outside the wire buffer (it is
 * allocated to its exact size). */
#include "autoconfig.h"

#include <string.h>

#include "fuzz.h"
#include "ss_stream.h"

/* Chunks per input, in modes 1 and 2-3 (where up to 16 full chunks of plaintext are sealed). */
#define MAX_FRAMES 16
#define PASSWORD "reuseproxy-fuzz"

struct frame {
    unsigned len; /* the length sealed into the chunk */
    bool valid_len;
    bool bad_len_tag;
    bool bad_payload;
    bool good;       /* none of the above: the decoder must return it */
    bool by_library; /* sealed with ss_stream_seal_chunk() instead of by hand */
    uint8_t fill;
};

/* What the decoder must produce: the payloads of the good chunks in order, then an error at the
 * first bad one (or none). */
struct expect {
    const uint8_t *plain; /* concatenated payloads */
    size_t plain_len;
    size_t chunk_lens[MAX_FRAMES + 1]; /* payload length of each good chunk */
    size_t nchunks;
    bool error; /* the stream ends with a bad chunk */
};

static const struct crypto_key *fuzz_key(enum crypto_method m)
{
    static struct crypto_key keys[CRYPTO_SIP004_COUNT];
    static bool ready[CRYPTO_SIP004_COUNT];

    if (!ready[m]) {
        FUZZ_CHECK(crypto_key_from_password(&keys[m], m, PASSWORD) == 0);
        ready[m] = true;
    }
    return &keys[m];
}

static size_t step_size(uint8_t b)
{
    if (b == 0)
        return SIZE_MAX;
    if (b < 128)
        return b;
    return (size_t)(b - 127) * 509;
}

/* Drives the decoder over wire[0..len) handed over step bytes at a time. With e, checks every
 * result against it; without, checks only what holds for any input. */
static void decode(struct ss_stream *rx, uint8_t *wire, size_t len, size_t step,
                   const struct expect *e)
{
    size_t pos = 0, avail = step < len ? step : len;
    size_t got_chunks = 0, got_plain = 0;
    bool again = false;

    for (;;) {
        size_t used = 0, plen = 0;
        uint8_t *payload = NULL;
        int r = ss_stream_open_chunk(rx, wire + pos, avail - pos, &used, &payload, &plen);
        if (r == SS_OPEN_CHUNK) {
            FUZZ_CHECK(!again);
            FUZZ_CHECK(plen >= 1 && plen <= SS_CHUNK_MAX);
            FUZZ_CHECK(used == plen + SS_CHUNK_OVERHEAD && used <= avail - pos);
            FUZZ_CHECK(payload == wire + pos + SS_CHUNK_HEAD);
            if (e) {
                FUZZ_CHECK(got_chunks < e->nchunks);
                FUZZ_CHECK(plen == e->chunk_lens[got_chunks]);
                FUZZ_CHECK(memcmp(payload, e->plain + got_plain, plen) == 0);
            }
            got_chunks++;
            got_plain += plen;
            pos += used;
            continue;
        }
        if (r == SS_OPEN_ERROR) {
            FUZZ_CHECK(!again);
            FUZZ_CHECK(rx->pending_len == SS_STREAM_DEAD);
            /* dead for good: even a call with every byte fails */
            FUZZ_CHECK(ss_stream_open_chunk(rx, wire + pos, len - pos, &used, &payload, &plen) ==
                       SS_OPEN_ERROR);
            if (e) {
                FUZZ_CHECK(e->error);
                FUZZ_CHECK(got_chunks == e->nchunks);
            }
            return;
        }
        FUZZ_CHECK(r == SS_OPEN_NEED_MORE);
        if (!again) {
            /* relay.c may ask again before new bytes arrive: nothing may move */
            again = true;
            continue;
        }
        again = false;
        if (avail == len)
            break;
        avail = len - avail > step ? avail + step : len;
    }
    if (e) {
        FUZZ_CHECK(!e->error);
        FUZZ_CHECK(got_chunks == e->nchunks && got_plain == e->plain_len);
        FUZZ_CHECK(pos == len);
    }
}

static void mode_wire(enum crypto_method m, size_t step, const uint8_t *rest, size_t n)
{
    size_t salt_len = crypto_method_info(m)->salt_len;
    if (n < salt_len)
        return;
    struct ss_stream rx = {0};
    if (ss_stream_init(&rx, fuzz_key(m), rest) == 0) {
        uint8_t *wire = fuzz_dup(rest + salt_len, n - salt_len);
        decode(&rx, wire, n - salt_len, step, NULL);
        free(wire);
    }
    ss_stream_free(&rx);
}

static void fill_payload(uint8_t *p, size_t len, uint8_t fill)
{
    for (size_t i = 0; i < len; i++)
        p[i] = (uint8_t)(fill + i * 131);
}

/* Seals one part (a length or a payload) by hand with the sender's nonce, as
 * ss_stream_seal_chunk() would, but for any length. */
static void seal_part(struct ss_stream *tx, uint8_t *data, size_t len)
{
    FUZZ_CHECK(crypto_aead_seal(tx->aead, tx->nonce, data, len, data, data + len) == 0);
    crypto_nonce_increment(tx->nonce);
}

static void mode_frames(enum crypto_method m, size_t step, struct fuzz_input *in)
{
    static const uint8_t salt[CRYPTO_MAX_SALT] = "frames-salt-frames-salt-frames-";
    struct frame f[MAX_FRAMES];
    size_t nf = 0, wire_len = 0;

    while (nf < MAX_FRAMES && in->n >= 4) {
        uint8_t flags = fuzz_u8(in);
        unsigned raw = fuzz_u16(in);
        struct frame *fr = &f[nf++];
        fr->fill = fuzz_u8(in);
        fr->len = flags & 8 ? raw : raw % SS_CHUNK_MAX + 1;
        fr->valid_len = fr->len >= 1 && fr->len <= SS_CHUNK_MAX;
        fr->bad_len_tag = flags & 1;
        fr->bad_payload = (flags & 2) && fr->valid_len;
        fr->good = fr->valid_len && !fr->bad_len_tag && !fr->bad_payload;
        fr->by_library = fr->good && (flags & 4);
        wire_len += SS_CHUNK_HEAD + (fr->valid_len ? fr->len + CRYPTO_TAG_LEN : 0);
        if (!fr->good)
            break; /* nothing after a bad chunk can be read anyway */
    }
    if (nf == 0)
        return;

    struct expect *e = calloc(1, sizeof *e);
    uint8_t *plain = malloc(wire_len + 1);
    uint8_t *wire = malloc(wire_len ? wire_len : 1);
    struct ss_stream tx = {0}, rx = {0};
    FUZZ_CHECK(e && plain && wire);
    FUZZ_CHECK(ss_stream_init(&tx, fuzz_key(m), salt) == 0);
    FUZZ_CHECK(ss_stream_init(&rx, fuzz_key(m), salt) == 0);

    size_t at = 0;
    for (size_t i = 0; i < nf; i++) {
        uint8_t *chunk = wire + at;
        if (f[i].valid_len)
            fill_payload(chunk + SS_CHUNK_HEAD, f[i].len, f[i].fill);
        if (f[i].by_library) {
            FUZZ_CHECK(ss_stream_seal_chunk(&tx, chunk, f[i].len) ==
                       (int)(f[i].len + SS_CHUNK_OVERHEAD));
        } else {
            chunk[0] = (uint8_t)(f[i].len >> 8);
            chunk[1] = (uint8_t)f[i].len;
            seal_part(&tx, chunk, SS_LEN_FIELD);
            if (f[i].bad_len_tag)
                chunk[SS_LEN_FIELD + f[i].fill % CRYPTO_TAG_LEN] ^= 0x01;
            if (f[i].valid_len) {
                seal_part(&tx, chunk + SS_CHUNK_HEAD, f[i].len);
                if (f[i].bad_payload)
                    chunk[SS_CHUNK_HEAD + f[i].fill % (f[i].len + CRYPTO_TAG_LEN)] ^= 0x80;
            }
        }
        at += SS_CHUNK_HEAD + (f[i].valid_len ? f[i].len + CRYPTO_TAG_LEN : 0);
        if (f[i].good) {
            fill_payload(plain + e->plain_len, f[i].len, f[i].fill);
            e->plain_len += f[i].len;
            e->chunk_lens[e->nchunks++] = f[i].len;
        } else {
            e->error = true;
        }
    }
    FUZZ_CHECK(at == wire_len);
    e->plain = plain;
    decode(&rx, wire, wire_len, step, e);

    ss_stream_free(&tx);
    ss_stream_free(&rx);
    free(wire);
    free(plain);
    free(e);
}

static void mode_seal(enum crypto_method m, size_t step, struct fuzz_input *in, bool flip)
{
    static const uint8_t salt[CRYPTO_MAX_SALT] = "seal-salt-seal-salt-seal-salt-s";
    unsigned flip_at = flip ? fuzz_u16(in) : 0;
    size_t n = in->n;
    size_t wire_len = ss_stream_sealed_size(n);

    if (n > 16 * SS_CHUNK_MAX)
        return;
    struct expect *e = calloc(1, sizeof *e);
    uint8_t *wire = malloc(wire_len ? wire_len : 1);
    struct ss_stream tx = {0}, rx = {0};
    FUZZ_CHECK(e && wire);
    FUZZ_CHECK(ss_stream_init(&tx, fuzz_key(m), salt) == 0);
    FUZZ_CHECK(ss_stream_init(&rx, fuzz_key(m), salt) == 0);
    FUZZ_CHECK(ss_stream_seal(&tx, in->p, n, wire) == (long)wire_len);

    e->plain = in->p;
    e->plain_len = n;
    for (size_t done = 0; done < n; done += SS_CHUNK_MAX)
        e->chunk_lens[e->nchunks++] = n - done < SS_CHUNK_MAX ? n - done : SS_CHUNK_MAX;
    if (flip && wire_len > 0) {
        size_t pos = flip_at % wire_len;
        wire[pos] ^= (uint8_t)(1u << (flip_at % 8));
        /* the chunk holding pos and everything after it is lost */
        size_t chunk = pos / SS_CHUNK_WIRE_MAX;
        e->nchunks = chunk;
        e->plain_len = chunk * SS_CHUNK_MAX;
        e->error = true;
    }
    decode(&rx, wire, wire_len, step, e);

    ss_stream_free(&tx);
    ss_stream_free(&rx);
    free(wire);
    free(e);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_input in = {data, size};
    enum crypto_method m = (enum crypto_method)(fuzz_u8(&in) % CRYPTO_SIP004_COUNT);
    uint8_t mode = fuzz_u8(&in) % 4;
    size_t step = step_size(fuzz_u8(&in));

    switch (mode) {
    case 0:
        mode_wire(m, step, in.p, in.n);
        break;
    case 1:
        mode_frames(m, step, &in);
        break;
    default:
        mode_seal(m, step, &in, mode == 3);
        break;
    }
    return 0;
}
